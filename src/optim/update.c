/* The update and clipping kernels, instantiated for float32 and float64 from one
 * template (update_tmpl.h), so each formula is written once. */
#include <math.h>

#include "optim_impl.h"

#define T float
#define SFX f32
#define SQRT sqrtf
#define POW powf
#include "update_tmpl.h"
#undef T
#undef SFX
#undef SQRT
#undef POW

#define T double
#define SFX f64
#define SQRT sqrt
#define POW pow
#include "update_tmpl.h"
#undef T
#undef SFX
#undef SQRT
#undef POW

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
