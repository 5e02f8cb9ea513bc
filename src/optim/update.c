/* The update and clipping kernels, instantiated for float32 and float64 from one
 * template (update_tmpl.h), so each formula is written once. */
#include <math.h>

#include "optim_impl.h"
#include "../kernels/parallel.h"
#include "../ops/op.h"

#define T    float
#define SFX  f32
#define SQRT sqrtf
#define POW  powf
#include "update_tmpl.h"
#undef T
#undef SFX
#undef SQRT
#undef POW

#define T    double
#define SFX  f64
#define SQRT sqrt
#define POW  pow
#include "update_tmpl.h"
#undef T
#undef SFX
#undef SQRT
#undef POW

typedef struct run_ctx {
    const tg_optim_step *steps;
    const int64_t *starts;
    int n;
} run_ctx;

/* Elements [b, e) of the joined loop: the part of each step that falls in it. */
static void run_range(void *p, int64_t b, int64_t e)
{
    const run_ctx *r = p;
    int lo = 0, hi = r->n - 1;
    while (lo < hi) { /* the last step starting at or before b */
        int mid = (lo + hi + 1) / 2;
        if (r->starts[mid] <= b)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (int k = lo; k < r->n && r->starts[k] < e; k++) {
        int64_t from = b > r->starts[k] ? b : r->starts[k], to = e < r->starts[k + 1] ? e : r->starts[k + 1];
        if (from >= to)
            continue;
        tg_optim_step st = r->steps[k];
        size_t off = (size_t)(from - r->starts[k]) * tg__dsize(st.dtype);
        st.n = to - from;
        st.w = (char *)st.w + off;
        st.g = (const char *)st.g + off;
        for (int j = 0; j < TG_OPTIM_MAX_SLOTS; j++)
            st.s[j] = st.s[j] ? (char *)st.s[j] + off : NULL;
        if (st.dtype == TG_F32)
            tg__optim_update_f32(&st);
        else
            tg__optim_update_f64(&st);
    }
}

void tg__optim_run(const tg_optim_step *steps, const int64_t *starts, int n)
{
    run_ctx r = {.steps = steps, .starts = starts, .n = n};
    if (n <= 0)
        return;
    bool profiling = tg__ctx()->profiling;
    double t0 = profiling ? tg__profile_now() : 0;
    tg__parallel_for(starts[n], TG_GRAIN / 2, run_range, &r);
    if (profiling)
        tg__profile_add("optimizer update", tg__profile_now() - t0);
}

double tg__optim_sum_squares(const tg_tensor *g)
{
    double ss = 0;
    if (g->dtype == TG_F32) {
        const float *p = g->data;
        for (int64_t i = 0; i < g->size; i++)
            ss += (double)p[i] * p[i];
    } else {
        const double *p = g->data;
        for (int64_t i = 0; i < g->size; i++)
            ss += p[i] * p[i];
    }
    return ss;
}
