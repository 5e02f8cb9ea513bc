/* Reductions: sum, mean, max, min, logsumexp and (population) variance over any set of
 * axes, and argmax/argmin along one axis.
 *
 * The public functions normalise the axes before the call reaches tg__apply, so the
 * recorded attrs hold them in a->reduce (every axis when the list was empty); the
 * backward rules read them from there. */
#include <math.h>
#include <stdlib.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/parallel.h"

/* ---- axes ----------------------------------------------------------------------------------- */
static const char *axes_str(const tg_axes *axes, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int k = 0; k < axes->n && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, k ? ", %d" : "%d", axes->axis[k]);
    if (n < size)
        snprintf(buf + n, size - n, ")");
    return buf;
}

/* Checks `axes` against x and stores them, normalised, in a->reduce. */
static bool norm_axes(tg_loc loc, tg_op_kind op, const tg_tensor *x, const tg_axes *axes, tg_attrs *a)
{
    const char *name = tg__op_name(op);
    if (axes->n < 0 || axes->n > TG_MAX_RANK) {
        tg__fail(loc, "%s: axes has %d entries; give 0 (every axis) to %d", name, axes->n, TG_MAX_RANK);
        return false;
    }
    if (axes->n == 0) {
        a->reduce.n = x->rank;
        for (int k = 0; k < x->rank; k++)
            a->reduce.axes[k] = k;
        return true;
    }
    char buf[TG_SHAPE_STR_MAX];
    bool seen[TG_MAX_RANK] = {false};
    tg_call c = {.loc = loc, .op = op};
    for (int k = 0; k < axes->n; k++) {
        int ax;
        if (x->rank == 0) {
            tg__fail(loc, "%s: axis %d is out of range for a tensor of rank 0 (a scalar has no axes; pass no axes)",
                     name, axes->axis[k]);
            return false;
        }
        if (!tg__norm_axis(&c, axes->axis[k], x->rank, &ax))
            return false;
        if (seen[ax]) {
            tg__fail(loc, "%s: axes %s name axis %d twice (tensor of rank %d); list each axis once", name,
                     axes_str(axes, buf, sizeof buf), ax, x->rank);
            return false;
        }
        seen[ax] = true;
        a->reduce.axes[k] = ax;
    }
    a->reduce.n = axes->n;
    return true;
}

static void reduced_mask(const tg_attrs *a, bool red[TG_MAX_RANK])
{
    memset(red, 0, sizeof(bool) * TG_MAX_RANK);
    for (int k = 0; k < a->reduce.n; k++)
        red[a->reduce.axes[k]] = true;
}

static bool require_number(const tg_call *c, const tg_tensor *x)
{
    if (x->dtype != TG_BOOL)
        return true;
    tg__fail(c->loc, "%s: `x` is bool; reductions need a number dtype (cast it with tg_cast)", tg__op_name(c->op));
    return false;
}

/* ---- shape rule ------------------------------------------------------------------------------ */
bool tg__reduce_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    bool float_only = c->op == TG_OP_MEAN || c->op == TG_OP_LOGSUMEXP || c->op == TG_OP_VARIANCE;
    if (float_only ? !tg__require_float(c, x, "x") : !require_number(c, x))
        return false;
    bool red[TG_MAX_RANK];
    reduced_mask(c->a, red);
    shape->rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (!red[i] || c->a->reduce.keepdims)
            shape->dims[shape->rank++] = red[i] ? 1 : x->shape[i];
    *dtype = x->dtype;
    return true;
}

/* ---- forward --------------------------------------------------------------------------------- */
/* The input seen as alternating runs of reduced and kept axes: size-1 axes dropped and
 * neighbours of the same kind merged, so the innermost loop is as long as possible. */
typedef struct plan {
    int rank;
    int64_t dims[TG_MAX_RANK];
    bool red[TG_MAX_RANK];
    int64_t ostride[TG_MAX_RANK]; /* output stride of each axis; 0 for reduced axes */
    int64_t count;                /* input elements that reduce into one output */
    int64_t size;
} plan;

static plan make_plan(const tg_tensor *x, const tg_attrs *a)
{
    bool red[TG_MAX_RANK];
    reduced_mask(a, red);
    plan p = {.count = 1, .size = x->size};
    for (int i = 0; i < x->rank; i++) {
        if (red[i])
            p.count *= x->shape[i];
        if (x->shape[i] == 1)
            continue;
        if (p.rank && p.red[p.rank - 1] == red[i]) {
            p.dims[p.rank - 1] *= x->shape[i];
        } else {
            p.dims[p.rank] = x->shape[i];
            p.red[p.rank++] = red[i];
        }
    }
    int64_t s = 1;
    for (int i = p.rank - 1; i >= 0; i--) {
        p.ostride[i] = p.red[i] ? 0 : s;
        s *= p.red[i] ? 1 : p.dims[i];
    }
    return p;
}

/* One pass over the input, combining each element into acc[output index]. */
enum pass { P_SUM, P_MAX, P_MIN, P_EXPSUM, P_SQDEV };

typedef struct pass_ctx {
    enum pass pass;
    const void *x;
    void *acc;         /* double[] for float inputs, int64_t[] for integer inputs */
    const double *ref; /* per output: the shift for P_EXPSUM, the mean for P_SQDEV */
} pass_ctx;

typedef void (*run_fn)(const pass_ctx *c, int64_t in, int64_t out, int64_t n, int64_t ostep);

/* Integer sums wrap (as TF's do) instead of overflowing into undefined behaviour. */
static inline int64_t add_wrapping(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }

/* The kernels for one element type (reduce_tmpl.h): run_<SFX> combines n contiguous
 * inputs into the accumulators, arg_<SFX> scans for argmax and argmin. */
#define T         float
#define A         double
#define ADD(a, b) ((a) + (b))
#define ISNAN(v)  ((v) != (v))
#define SFX       f32
#include "reduce_tmpl.h"
#undef T
#undef SFX
#define T   double
#define SFX f64
#include "reduce_tmpl.h"
#undef T
#undef A
#undef ADD
#undef ISNAN
#undef SFX
#define T         int32_t
#define A         int64_t
#define ADD(a, b) add_wrapping(a, b)
#define ISNAN(v)  false
#define SFX       i32
#include "reduce_tmpl.h"
#undef T
#undef SFX
#define T   int64_t
#define SFX i64
#include "reduce_tmpl.h"
#undef T
#undef A
#undef ADD
#undef ISNAN
#undef SFX

/* ---- the three common shapes of a reduction, spread over the loop pool --------------------- */
/* Each output is computed by one thread in the serial order, or (a whole contiguous
 * tensor into one value) from per-chunk partials combined in chunk order: either way the
 * bits do not depend on the number of threads. */
typedef struct par_ctx {
    pass_ctx c;
    run_fn fn;
    int64_t rows, len; /* [rows, len] */
    void *partial;     /* whole reductions: one accumulator per chunk */
    tg_dtype dtype;
} par_ctx;

/* [rows kept, len reduced]: row r is output r. */
static void rows_range(void *p, int64_t b, int64_t e)
{
    par_ctx *r = p;
    for (int64_t row = b; row < e; row++)
        r->fn(&r->c, row * r->len, row, r->len, 0);
}

/* [rows reduced, len kept]: columns [b, e) over every row, in row order. */
static void cols_range(void *p, int64_t b, int64_t e)
{
    par_ctx *r = p;
    if (r->c.pass == P_SUM) {
        (r->dtype == TG_F32   ? col_sums_f32
         : r->dtype == TG_F64 ? col_sums_f64
         : r->dtype == TG_I32 ? col_sums_i32
                              : col_sums_i64)(&r->c, r->rows, r->len, b, e);
        return;
    }
    for (int64_t row = 0; row < r->rows; row++)
        r->fn(&r->c, row * r->len + b, b, e - b, 1);
}

/* One contiguous run into one value: chunk k into partial[k]. */
static void whole_range(void *p, int64_t b, int64_t e)
{
    par_ctx *r = p;
    pass_ctx c = r->c;
    c.acc = (char *)r->partial + (size_t)(b / TG_GRAIN) * 8;
    r->fn(&c, b, 0, e - b, 0);
}

static void combine(enum pass pass, tg_dtype dtype, void *acc, const void *part)
{
    if (!tg_dtype_is_float(dtype)) {
        int64_t *a = acc, v = *(const int64_t *)part;
        if (pass == P_SUM)
            *a = add_wrapping(*a, v);
        else if (pass == P_MAX ? v > *a : v < *a)
            *a = v;
        return;
    }
    double *a = acc, v = *(const double *)part;
    if (pass == P_MAX || pass == P_MIN) {
        if ((pass == P_MAX ? v > *a : v < *a) || v != v)
            *a = v;
    } else {
        *a += v;
    }
}

/* Runs the pass in parallel when the plan has one of the three shapes and is large;
 * false to leave it to the serial loop. */
static bool run_pass_parallel(const plan *p, run_fn fn, const pass_ctx *c, tg_dtype dtype)
{
    par_ctx r = {.c = *c, .fn = fn, .dtype = dtype};
    if (p->rank == 1 && p->red[0]) {
        int64_t chunks = (p->size + TG_GRAIN - 1) / TG_GRAIN;
        if (chunks < 2)
            return false; /* one chunk: the serial loop is the same computation */
        r.partial = tg__arena_alloc(tg__ctx()->scope, (size_t)chunks * 8);
        if (!r.partial)
            return false;
        for (int64_t k = 0; k < chunks; k++) /* each starts where the output starts */
            memcpy((char *)r.partial + k * 8, c->acc, 8);
        tg__parallel_for(p->size, TG_GRAIN, whole_range, &r);
        memcpy(c->acc, r.partial, 8);
        for (int64_t k = 1; k < chunks; k++)
            combine(c->pass, dtype, c->acc, (char *)r.partial + k * 8);
        return true;
    }
    if (p->rank != 2 || p->size < 2 * TG_GRAIN)
        return false;
    r.rows = p->dims[0];
    r.len = p->dims[1];
    if (!p->red[0] && p->red[1]) {
        tg__parallel_for(r.rows, tg__rows_grain(r.len, TG_GRAIN), rows_range, &r);
        return true;
    }
    if (p->red[0] && !p->red[1]) { /* a column's sum is one thread's, whatever the chunks: wide
                                       ones, so that each row's run is long (a quarter of it) */
        int64_t cols = tg__rows_grain(r.rows, TG_GRAIN), quarter = (r.len + 3) / 4;
        cols = ((cols > quarter ? cols : quarter) + 15) / 16 * 16;
        tg__parallel_for(r.len, cols, cols_range, &r);
        return true;
    }
    return false;
}

static void run_pass(const plan *p, const tg_tensor *x, enum pass pass, void *acc, const double *ref)
{
    if (p->size == 0)
        return;
    run_fn fn = x->dtype == TG_F32 ? run_f32 : x->dtype == TG_F64 ? run_f64 : x->dtype == TG_I32 ? run_i32 : run_i64;
    pass_ctx c = {.pass = pass, .x = x->data, .acc = acc, .ref = ref};
    if (run_pass_parallel(p, fn, &c, x->dtype))
        return;
    int last = p->rank - 1;
    int64_t n = last >= 0 ? p->dims[last] : 1, ostep = last >= 0 ? p->ostride[last] : 0;
    int64_t idx[TG_MAX_RANK] = {0}, out = 0;
    for (int64_t in = 0; in < p->size; in += n) {
        fn(&c, in, out, n, ostep);
        for (int d = last - 1; d >= 0; d--) { /* odometer over the outer axes */
            out += p->ostride[d];
            if (++idx[d] < p->dims[d])
                break;
            out -= p->ostride[d] * p->dims[d];
            idx[d] = 0;
        }
    }
}

/* acc (double or int64 per the dtype) starts at the identity of max (lowest) or min. */
static void fill_extreme(void *acc, int64_t n, tg_dtype dtype, bool lowest)
{
    for (int64_t i = 0; i < n; i++) {
        if (tg_dtype_is_float(dtype))
            ((double *)acc)[i] = lowest ? -INFINITY : INFINITY;
        else if (dtype == TG_I32)
            ((int64_t *)acc)[i] = lowest ? INT32_MIN : INT32_MAX;
        else
            ((int64_t *)acc)[i] = lowest ? INT64_MIN : INT64_MAX;
    }
}

static void store(tg_tensor *out, const void *acc)
{
    for (int64_t i = 0; i < out->size; i++) {
        switch (out->dtype) {
        case TG_F32: ((float *)out->data)[i] = (float)((const double *)acc)[i]; break;
        case TG_F64: ((double *)out->data)[i] = ((const double *)acc)[i]; break;
        case TG_I32: ((int32_t *)out->data)[i] = (int32_t)((const int64_t *)acc)[i]; break;
        case TG_I64: ((int64_t *)out->data)[i] = ((const int64_t *)acc)[i]; break;
        default: break;
        }
    }
}

static void scale(double *v, int64_t n, double by)
{
    for (int64_t i = 0; i < n; i++)
        v[i] *= by;
}

bool tg__reduce_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    plan p = make_plan(x, c->a);
    int64_t n = out->size;
    bool two_pass = c->op == TG_OP_LOGSUMEXP || c->op == TG_OP_VARIANCE;
    /* 8-byte accumulators: double for floats (f64 sums even for f32), int64 for integers;
     * scratch from the scope's arena, so a training step allocates nothing once warm. */
    size_t bytes = (size_t)(n ? n : 1) * 8;
    void *acc = tg__arena_alloc(tg__ctx()->scope, bytes);
    double *ref = two_pass ? tg__arena_alloc(tg__ctx()->scope, bytes) : NULL;
    if (!acc || (two_pass && !ref)) {
        tg__fail(c->loc, "%s: out of memory for %lld accumulators", tg__op_name(c->op), (long long)n);
        return false;
    }
    memset(acc, 0, bytes);
    if (ref)
        memset(ref, 0, bytes);
    double inv_count = 1.0 / (double)p.count; /* NaN results for empty reductions, as TF */
    switch (c->op) {
    case TG_OP_SUM: run_pass(&p, x, P_SUM, acc, NULL); break;
    case TG_OP_MEAN:
        run_pass(&p, x, P_SUM, acc, NULL);
        scale(acc, n, inv_count);
        break;
    case TG_OP_MAX:
    case TG_OP_MIN:
        fill_extreme(acc, n, x->dtype, c->op == TG_OP_MAX);
        run_pass(&p, x, c->op == TG_OP_MAX ? P_MAX : P_MIN, acc, NULL);
        break;
    case TG_OP_LOGSUMEXP:
        /* max + log(sum(exp(x - max))); a non-finite max shifts by 0 instead, as TF does. */
        fill_extreme(ref, n, x->dtype, true);
        run_pass(&p, x, P_MAX, ref, NULL);
        for (int64_t i = 0; i < n; i++)
            ref[i] = isfinite(ref[i]) ? ref[i] : 0;
        run_pass(&p, x, P_EXPSUM, acc, ref);
        for (int64_t i = 0; i < n; i++)
            ((double *)acc)[i] = log(((double *)acc)[i]) + ref[i];
        break;
    case TG_OP_VARIANCE:
        /* Two passes (mean, then squared deviations): no cancellation. */
        run_pass(&p, x, P_SUM, ref, NULL);
        scale(ref, n, inv_count);
        run_pass(&p, x, P_SQDEV, acc, ref);
        scale(acc, n, inv_count);
        break;
    default: break;
    }
    store(out, acc);
    return true;
}

/* ---- backward (public ops only) ------------------------------------------------------------- */
/* x's shape with the reduced axes kept as size 1: the keepdims shape of the output. */
static tg_shape kept_shape(const tg_grad_ctx *g)
{
    tg_shape s = tg__shape(g->in[0]);
    for (int k = 0; k < g->a->reduce.n; k++)
        s.dims[g->a->reduce.axes[k]] = 1;
    return s;
}

static tg_tensor *kept(const tg_grad_ctx *g, const tg_tensor *t)
{
    tg_tensor *r = tg_reshape_at(g->loc, t, kept_shape(g));
    tg__trace_shape_like(r, g->in[0]); /* a graph's batch dim stays unknown */
    return r;
}

/* dy (kept) broadcast back to x's shape. */
static tg_tensor *spread(const tg_grad_ctx *g, const tg_tensor *d)
{
    tg_tensor *r = tg_broadcast_to_at(g->loc, kept(g, d), tg__shape(g->in[0]));
    tg__trace_shape_like(r, g->in[0]);
    return r;
}

static tg_reduce_opts kept_opts(const tg_grad_ctx *g)
{
    tg_reduce_opts o = {.keepdims = true};
    o.axes.n = g->a->reduce.n;
    for (int k = 0; k < g->a->reduce.n; k++)
        o.axes.axis[k] = g->a->reduce.axes[k];
    return o;
}

/* The reduced axes, as bits: their count is read from x's shape at every run of a graph. */
static unsigned reduced_axes(const tg_grad_ctx *g)
{
    unsigned axes = 0;
    for (int k = 0; k < g->a->reduce.n; k++)
        axes |= 1u << g->a->reduce.axes[k];
    return axes;
}

bool tg__sum_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = spread(g, g->dy);
    return dx[0] != NULL;
}

bool tg__mean_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *d = tg_div_at(g->loc, g->dy, tg__count_like(g->loc, g->in[0], g->dy, reduced_axes(g)));
    dx[0] = spread(g, d);
    return dx[0] != NULL;
}

/* TF's rule: dy is shared equally by the elements equal to the extreme. */
bool tg__extreme_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *x = g->in[0];
    tg_tensor *mask = tg_cast_at(g->loc, tg_equal_at(g->loc, x, kept(g, g->out)), x->dtype);
    tg_tensor *ties = tg_sum_at(g->loc, mask, kept_opts(g));
    dx[0] = tg_mul_at(g->loc, tg_div_at(g->loc, mask, ties), kept(g, g->dy));
    return dx[0] != NULL;
}

bool tg__logsumexp_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *softmax = tg_exp_at(g->loc, tg_sub_at(g->loc, g->in[0], kept(g, g->out)));
    dx[0] = tg_mul_at(g->loc, kept(g, g->dy), softmax);
    return dx[0] != NULL;
}

bool tg__variance_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *x = g->in[0];
    tg_tensor *dev = tg_sub_at(g->loc, x, tg_mean_at(g->loc, x, kept_opts(g)));
    tg_tensor *k = tg_mul_at(g->loc, kept(g, g->dy), tg__per_count_like(g->loc, 2.0, g->in[0], g->dy, reduced_axes(g)));
    dx[0] = tg_mul_at(g->loc, dev, k);
    return dx[0] != NULL;
}

/* ---- argmax / argmin -------------------------------------------------------------------------- */
bool tg__arg_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    const char *name = tg__op_name(c->op);
    int ax;
    if (!require_number(c, x))
        return false;
    if (x->rank == 0) {
        tg__fail(c->loc, "%s: `x` is a scalar; it needs a tensor of rank >= 1", name);
        return false;
    }
    if (!tg__norm_axis(c, c->a->axis, x->rank, &ax))
        return false;
    if (x->shape[ax] == 0) {
        char s[TG_SHAPE_STR_MAX];
        tg_shape xs = tg__shape(x);
        tg__fail(c->loc, "%s: axis %d of a tensor of shape %s is empty; there is no index to return", name, c->a->axis,
                 tg__shape_str(&xs, s, sizeof s));
        return false;
    }
    shape->rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (i != ax)
            shape->dims[shape->rank++] = x->shape[i];
    *dtype = TG_I64;
    return true;
}

bool tg__arg_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int ax;
    tg__norm_axis(c, c->a->axis, x->rank, &ax); /* checked by tg__arg_shape */
    int64_t outer = 1, inner = 1, n = x->shape[ax];
    for (int i = 0; i < ax; i++)
        outer *= x->shape[i];
    for (int i = ax + 1; i < x->rank; i++)
        inner *= x->shape[i];
    void *best = tg__arena_alloc(tg__ctx()->scope, tg__dsize(x->dtype) * (size_t)(inner ? inner : 1));
    if (!best) {
        tg__fail(c->loc, "%s: out of memory", tg__op_name(c->op));
        return false;
    }
    bool want_max = c->op == TG_OP_ARGMAX;
    int64_t *idx = out->data;
    switch (x->dtype) {
    case TG_F32: arg_f32(x->data, outer, n, inner, want_max, idx, best); break;
    case TG_F64: arg_f64(x->data, outer, n, inner, want_max, idx, best); break;
    case TG_I32: arg_i32(x->data, outer, n, inner, want_max, idx, best); break;
    case TG_I64: arg_i64(x->data, outer, n, inner, want_max, idx, best); break;
    default: break;
    }
    return true;
}

/* ---- public functions and table entries --------------------------------------------------------- */
static tg_tensor *reduce(tg_loc loc, tg_op_kind op, const tg_tensor *x, const tg_reduce_opts *o)
{
    tg_attrs a = {.reduce.keepdims = o->keepdims};
    if (!tg__check_input(loc, tg__op_name(op), x, "x") || !norm_axes(loc, op, x, &o->axes, &a))
        return NULL;
    return TG__APPLY(loc, op, &a, x);
}

tg_tensor *tg_sum_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o) { return reduce(loc, TG_OP_SUM, x, &o); }
tg_tensor *tg_mean_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o) { return reduce(loc, TG_OP_MEAN, x, &o); }
tg_tensor *tg_max_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o) { return reduce(loc, TG_OP_MAX, x, &o); }
tg_tensor *tg_min_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o) { return reduce(loc, TG_OP_MIN, x, &o); }
tg_tensor *tg_logsumexp_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o)
{
    return reduce(loc, TG_OP_LOGSUMEXP, x, &o);
}
tg_tensor *tg_variance_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o)
{
    return reduce(loc, TG_OP_VARIANCE, x, &o);
}

tg_tensor *tg_argmax_at(tg_loc loc, const tg_tensor *x, int axis)
{
    return TG__APPLY(loc, TG_OP_ARGMAX, &(tg_attrs){.axis = axis}, x);
}
tg_tensor *tg_argmin_at(tg_loc loc, const tg_tensor *x, int axis)
{
    return TG__APPLY(loc, TG_OP_ARGMIN, &(tg_attrs){.axis = axis}, x);
}
