/* Products, scans, logical reductions and ranking: reduce_prod, reduce_any, reduce_all,
 * cumsum, cumprod, top_k, and sort/argsort built from top_k.
 *
 * The reductions keep their normalised axes in a->reduce, as reduce.c's do; the scans
 * their axis and flags in a->scan. Every backward rule is TF's, made of public ops. */
#include <math.h>
#include <stdlib.h>

#include "op.h"
#include "tapegrad/ops.h"

/* ---- reductions: prod, any, all ------------------------------------------------------------ */
/* Checks `axes` against x and stores them, normalised, in a->reduce (every axis when none
 * are given); false with an error naming the op. */
static bool scan_axes(tg_loc loc, tg_op_kind op, const tg_tensor *x, const tg_axes *axes, tg_attrs *a)
{
    const char *name = tg__op_name(op);
    if (axes->n < 0 || axes->n > TG_MAX_RANK)
        return tg__failb(loc, "%s: axes has %d entries; give 0 (every axis) to %d", name, axes->n, TG_MAX_RANK);
    a->reduce.n = axes->n ? axes->n : x->rank;
    bool seen[TG_MAX_RANK] = {false};
    for (int k = 0; k < a->reduce.n; k++) {
        int ax = axes->n ? axes->axis[k] : k, norm = ax < 0 ? ax + x->rank : ax;
        if (norm < 0 || norm >= x->rank)
            return tg__failb(loc, "%s: axis %d is out of range for a tensor of rank %d", name, ax, x->rank);
        if (seen[norm])
            return tg__failb(loc, "%s: axis %d is named twice (tensor of rank %d); list each axis once", name, norm,
                             x->rank);
        seen[norm] = true;
        a->reduce.axes[k] = norm;
    }
    return true;
}

bool tg__scan_reduce_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    bool logical = c->op != TG_OP_REDUCE_PROD;
    if (logical && x->dtype != TG_BOOL)
        return tg__failb(c->loc, "%s: `x` is %s; it needs bool (compare first, or cast with tg_cast)",
                         tg__op_name(c->op), tg_dtype_name(x->dtype));
    if (!logical && x->dtype == TG_BOOL)
        return tg__failb(c->loc, "tg_reduce_prod: `x` is bool; it needs a number dtype (cast it with tg_cast)");
    bool red[TG_MAX_RANK] = {false};
    for (int k = 0; k < c->a->reduce.n; k++)
        red[c->a->reduce.axes[k]] = true;
    shape->rank = 0;
    for (int i = 0; i < x->rank; i++)
        if (!red[i] || c->a->reduce.keepdims)
            shape->dims[shape->rank++] = red[i] ? 1 : x->shape[i];
    *dtype = x->dtype;
    return true;
}

/* One pass over x in order, each element combined into its output (odometer over x's
 * axes, output stride 0 on the reduced ones). Products of floats are accumulated in
 * double, of integers in int64 wrapping as TF's do. */
bool tg__scan_reduce_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    bool red[TG_MAX_RANK] = {false};
    for (int k = 0; k < c->a->reduce.n; k++)
        red[c->a->reduce.axes[k]] = true;
    int64_t ostride[TG_MAX_RANK], s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        ostride[i] = red[i] ? 0 : s;
        s *= red[i] ? 1 : x->shape[i];
    }
    int64_t n = out->size;
    void *acc = tg__arena_alloc(tg__ctx()->scope, (size_t)(n ? n : 1) * 8);
    if (!acc)
        return tg__failb(c->loc, "%s: out of memory for %lld accumulators", tg__op_name(c->op), (long long)n);
    double *fa = acc;
    uint64_t *ia = acc;
    bool *ba = out->data;
    for (int64_t o = 0; o < n; o++) {
        if (c->op == TG_OP_REDUCE_PROD && tg_dtype_is_float(x->dtype))
            fa[o] = 1.0;
        else if (c->op == TG_OP_REDUCE_PROD)
            ia[o] = 1;
        else
            ba[o] = c->op == TG_OP_REDUCE_ALL;
    }
    int64_t idx[TG_MAX_RANK] = {0}, o = 0;
    for (int64_t e = 0; e < x->size; e++) {
        switch (x->dtype) {
        case TG_F32: fa[o] *= ((const float *)x->data)[e]; break;
        case TG_F64: fa[o] *= ((const double *)x->data)[e]; break;
        case TG_I32: ia[o] *= (uint64_t)(int64_t)((const int32_t *)x->data)[e]; break;
        case TG_I64: ia[o] *= (uint64_t)((const int64_t *)x->data)[e]; break;
        case TG_BOOL:
            if (c->op == TG_OP_REDUCE_ANY)
                ba[o] = ba[o] || ((const bool *)x->data)[e];
            else
                ba[o] = ba[o] && ((const bool *)x->data)[e];
            break;
        default: break;
        }
        for (int d = x->rank - 1; d >= 0; d--) { /* odometer */
            o += ostride[d];
            if (++idx[d] < x->shape[d])
                break;
            o -= ostride[d] * x->shape[d];
            idx[d] = 0;
        }
    }
    for (int64_t i = 0; c->op == TG_OP_REDUCE_PROD && i < n; i++) {
        switch (out->dtype) {
        case TG_F32: ((float *)out->data)[i] = (float)fa[i]; break;
        case TG_F64: ((double *)out->data)[i] = fa[i]; break;
        case TG_I32: ((int32_t *)out->data)[i] = (int32_t)(uint32_t)ia[i]; break;
        case TG_I64: ((int64_t *)out->data)[i] = (int64_t)ia[i]; break;
        default: break;
        }
    }
    return true;
}

/* TF's _ProdGrad: the reduced axes moved to the front and flattened into one, x seen as
 * [reduced, other]; each element's gradient is dy times the product of the others,
 * exclusive cumprod from the left times exclusive cumprod from the right: no division,
 * so zeros in x are exact. */
bool tg__reduce_prod_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_shape xs = tg__shape(x), kept = xs;
    bool red[TG_MAX_RANK] = {false};
    for (int k = 0; k < g->a->reduce.n; k++) {
        red[g->a->reduce.axes[k]] = true;
        kept.dims[g->a->reduce.axes[k]] = 1;
    }
    tg_axes perm = {.n = x->rank}, inv = {.n = x->rank};
    tg_shape permuted = {.rank = x->rank};
    int64_t reduced_num = 1, other_num = 1;
    int p = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < x->rank; i++)
            if (red[i] == (pass == 0)) {
                inv.axis[i] = p;
                permuted.dims[p] = xs.dims[i];
                perm.axis[p++] = i;
                *(pass == 0 ? &reduced_num : &other_num) *= xs.dims[i];
            }
    tg_tensor *grad = tg_broadcast_to_at(l, tg_reshape_at(l, g->dy, kept), xs);
    tg_tensor *flat = tg_reshape_at(l, x->rank ? tg_transpose_at(l, x, perm) : x, TG_SHAPE(reduced_num, other_num));
    tg_tensor *left = tg_cumprod_at(l, flat, (tg_scan_opts){.axis = 0, .exclusive = true});
    tg_tensor *right = tg_cumprod_at(l, flat, (tg_scan_opts){.axis = 0, .exclusive = true, .reverse = true});
    tg_tensor *y = tg_reshape_at(l, tg_mul_at(l, left, right), permuted);
    dx[0] = tg_mul_at(l, grad, x->rank ? tg_transpose_at(l, y, inv) : y);
    return dx[0] != NULL;
}

static tg_tensor *reduction(tg_loc loc, tg_op_kind op, const tg_tensor *x, const tg_reduce_opts *o)
{
    tg_attrs a = {.reduce.keepdims = o->keepdims};
    if (!tg__check_input(loc, tg__op_name(op), x, "x") || !scan_axes(loc, op, x, &o->axes, &a))
        return NULL;
    return TG__APPLY(loc, op, &a, x);
}

tg_tensor *tg_reduce_prod_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o)
{
    return reduction(loc, TG_OP_REDUCE_PROD, x, &o);
}
tg_tensor *tg_reduce_any_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o)
{
    return reduction(loc, TG_OP_REDUCE_ANY, x, &o);
}
tg_tensor *tg_reduce_all_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o)
{
    return reduction(loc, TG_OP_REDUCE_ALL, x, &o);
}

/* ---- cumsum, cumprod ------------------------------------------------------------------------- */
bool tg__cumulative_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    int axis;
    if (x->dtype == TG_BOOL)
        return tg__failb(c->loc, "%s: `x` is bool; it needs a number dtype (cast it with tg_cast)", tg__op_name(c->op));
    if (x->rank == 0)
        return tg__failb(c->loc, "%s: `x` is a scalar; it needs a tensor of rank >= 1", tg__op_name(c->op));
    if (!tg__norm_axis(c, c->a->scan.axis, x->rank, &axis))
        return false;
    *shape = tg__shape(x);
    *dtype = x->dtype;
    return true;
}

/* out[i] = x[0] op ... op x[i] along the axis (exclusive: up to x[i - 1], starting at the
 * identity; reverse: from the end), in x's dtype, in order, as TF's scan. T is the
 * element, A the accumulator: T itself for floats, the unsigned type for integers, which
 * wrap as TF's do. */
#define SCAN_LOOP(T, A)                                                              \
    {                                                                                \
        const T *xp = x->data;                                                       \
        T *op_ = out->data;                                                          \
        for (int64_t o = 0; o < outer; o++)                                          \
            for (int64_t q = 0; q < inner; q++) {                                    \
                A acc = prod ? (A)1 : (A)0;                                          \
                for (int64_t j = 0; j < n; j++) {                                    \
                    int64_t jj = rev ? n - 1 - j : j, at = (o * n + jj) * inner + q; \
                    A v = (A)xp[at], next = prod ? (A)(acc * v) : (A)(acc + v);      \
                    op_[at] = (T)(excl ? acc : next);                                \
                    acc = next;                                                      \
                }                                                                    \
            }                                                                        \
    }                                                                                \
    break;

bool tg__cumulative_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int axis = c->a->scan.axis < 0 ? c->a->scan.axis + x->rank : c->a->scan.axis;
    int64_t outer = 1, inner = 1, n = x->shape[axis];
    for (int i = 0; i < axis; i++)
        outer *= x->shape[i];
    for (int i = axis + 1; i < x->rank; i++)
        inner *= x->shape[i];
    bool prod = c->op == TG_OP_CUMPROD, excl = c->a->scan.exclusive, rev = c->a->scan.reverse;
    switch (x->dtype) {
    case TG_F32: SCAN_LOOP(float, float)
    case TG_F64: SCAN_LOOP(double, double)
    case TG_I32: SCAN_LOOP(int32_t, uint32_t)
    case TG_I64: SCAN_LOOP(int64_t, uint64_t)
    default: break;
    }
    return true;
}
#undef SCAN_LOOP

static tg_scan_opts scan_opts(const tg_attrs *a, bool flip)
{
    return (tg_scan_opts){.axis = a->scan.axis, .exclusive = a->scan.exclusive, .reverse = a->scan.reverse != flip};
}

/* TF's _CumsumGrad: the running sum of dy the other way. */
bool tg__cumsum_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return (dx[0] = tg_cumsum_at(g->loc, g->dy, scan_opts(g->a, true))) != NULL;
}

/* TF's _CumprodGrad: cumsum(out * dy) the other way, divided by x with div_no_nan (0
 * where x is 0: TF's rule, which is not the derivative there). */
bool tg__cumprod_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_tensor *s = tg_cumsum_at(l, tg_mul_at(l, g->out, g->dy), scan_opts(g->a, true));
    tg_tensor *zero = tg_equal_at(l, x, tg_scalar_like_at(l, x, 0));
    tg_tensor *safe = tg_where_at(l, zero, tg_scalar_like_at(l, x, 1), x);
    dx[0] = tg_where_at(l, zero, tg_scalar_like_at(l, x, 0), tg_div_at(l, s, safe));
    return dx[0] != NULL;
}

tg_tensor *tg_cumsum_at(tg_loc loc, const tg_tensor *x, tg_scan_opts o)
{
    tg_attrs a = {.scan = {o.axis, o.exclusive, o.reverse}};
    return TG__APPLY(loc, TG_OP_CUMSUM, &a, x);
}

tg_tensor *tg_cumprod_at(tg_loc loc, const tg_tensor *x, tg_scan_opts o)
{
    tg_attrs a = {.scan = {o.axis, o.exclusive, o.reverse}};
    return TG__APPLY(loc, TG_OP_CUMPROD, &a, x);
}

/* ---- top_k ------------------------------------------------------------------------------------ */
bool tg__top_k_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    if (x->dtype == TG_BOOL)
        return tg__failb(c->loc, "tg_top_k: `x` is bool; it needs a number dtype (cast it with tg_cast)");
    if (x->rank == 0)
        return tg__failb(c->loc, "tg_top_k: `x` is a scalar; it needs a tensor of rank >= 1 (k runs along the last "
                                 "axis)");
    int64_t n = x->shape[x->rank - 1];
    if (c->a->k < 0 || c->a->k > n) {
        char s[TG_SHAPE_STR_MAX];
        tg_shape xs = tg__shape(x);
        return tg__failb(c->loc,
                         "tg_top_k: k = %lld, but the last axis of x (shape %s) has %lld elements; k must be "
                         "in [0, %lld]",
                         (long long)c->a->k, tg__shape_str(&xs, s, sizeof s), (long long)n, (long long)n);
    }
    if (n > INT32_MAX)
        return tg__failb(c->loc, "tg_top_k: the last axis has %lld elements, more than int32 indices reach",
                         (long long)n);
    for (int k = 0; k < 2; k++) {
        shape[k] = tg__shape(x);
        shape[k].dims[x->rank - 1] = c->a->k;
    }
    dtype[0] = x->dtype;
    dtype[1] = TG_I32;
    return true;
}

typedef struct rank_key {
    double f;   /* float values */
    int64_t i;  /* integer values */
    int64_t at; /* index along the axis */
} rank_key;

/* Descending, NaN above every number, ties (and NaNs among themselves) by index: a total
 * order, so the sort is stable whatever qsort does. */
static int by_float(const void *pa, const void *pb)
{
    const rank_key *a = pa, *b = pb;
    bool na = isnan(a->f), nb = isnan(b->f);
    if (na != nb)
        return na ? -1 : 1;
    if (!na && a->f != b->f)
        return a->f > b->f ? -1 : 1;
    return (a->at > b->at) - (a->at < b->at);
}

static int by_int(const void *pa, const void *pb)
{
    const rank_key *a = pa, *b = pb;
    if (a->i != b->i)
        return a->i > b->i ? -1 : 1;
    return (a->at > b->at) - (a->at < b->at);
}

bool tg__top_k_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    tg_tensor *idx = c->outs[1];
    int64_t n = x->shape[x->rank - 1], k = c->a->k, rows = n ? x->size / n : 0;
    rank_key *keys = tg__arena_alloc(tg__ctx()->scope, sizeof(rank_key) * (size_t)(n ? n : 1));
    if (!keys)
        return tg__failb(c->loc, "tg_top_k: out of memory for %lld keys", (long long)n);
    bool is_float = tg_dtype_is_float(x->dtype);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < n; j++) {
            int64_t e = r * n + j;
            keys[j].at = j;
            switch (x->dtype) {
            case TG_F32: keys[j].f = ((const float *)x->data)[e]; break;
            case TG_F64: keys[j].f = ((const double *)x->data)[e]; break;
            case TG_I32: keys[j].i = ((const int32_t *)x->data)[e]; break;
            case TG_I64: keys[j].i = ((const int64_t *)x->data)[e]; break;
            default: break;
            }
        }
        qsort(keys, (size_t)n, sizeof *keys, is_float ? by_float : by_int);
        size_t esz = tg__dsize(x->dtype);
        for (int64_t j = 0; j < k; j++) {
            memcpy((char *)out->data + (size_t)(r * k + j) * esz,
                   (const char *)x->data + (size_t)(r * n + keys[j].at) * esz, esz);
            ((int32_t *)idx->data)[r * k + j] = (int32_t)keys[j].at;
        }
    }
    return true;
}

/* TF's _TopKGrad: the values' gradient scattered back to where they came from (each row's
 * indices offset by the row's start in x seen flat). The indices get none. */
bool tg__top_k_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0], *idx = g->outs[1];
    int64_t n = x->shape[x->rank - 1], k = idx->shape[idx->rank - 1];
    tg_tensor *flat = tg__tensor_new(l, TG_I64, &(tg_shape){.rank = 1, .dims = {idx->size}});
    if (!flat)
        return false;
    for (int64_t e = 0; e < idx->size; e++)
        ((int64_t *)flat->data)[e] = (e / (k ? k : 1)) * n + ((const int32_t *)idx->data)[e];
    tg_tensor *d = tg_reshape_at(l, g->dys[0], TG_SHAPE(idx->size));
    dx[0] = tg_reshape_at(l, tg_scatter_add_at(l, flat, d, TG_SHAPE(x->size), 0), tg__shape(x));
    return dx[0] != NULL;
}

/* .sorted = false: TF's order is then unspecified; the sorted one is given (docs/ops.md). */
int tg_top_k_at(tg_loc loc, const tg_tensor *x, int64_t k, tg_tensor **out, tg_top_k_opts o)
{
    (void)o.sorted;
    if (!out)
        return tg__failf(loc, "tg_top_k: needs an array `out` of 2 tensors (values, indices), got NULL");
    return tg__apply_n(loc, TG_OP_TOP_K, &x, 1, &(tg_attrs){.k = k}, 2, out);
}

/* ---- sort, argsort: top_k of the whole axis, moved last ---------------------------------------- */
/* x's `axis` swapped with the last (its own inverse). */
static tg_tensor *swap_last(tg_loc loc, const tg_tensor *x, int axis)
{
    int r = tg_rank(x);
    if (axis == r - 1)
        return (tg_tensor *)x;
    tg_axes perm = {.n = r};
    for (int i = 0; i < r; i++)
        perm.axis[i] = i;
    perm.axis[axis] = r - 1;
    perm.axis[r - 1] = axis;
    return tg_transpose_at(loc, x, perm);
}

/* Ascending: TF's _ascending_sort sorts -x descending (-x - 1 for integers, which cannot
 * overflow); the values come back the same way. */
static tg_tensor *flip(tg_loc loc, const tg_tensor *x)
{
    tg_tensor *m = tg_neg_at(loc, x);
    return tg_dtype_is_float(tg_dtype_of(x)) ? m : tg_sub_at(loc, m, tg_scalar_like_at(loc, x, 1));
}

static int sorted(tg_loc loc, const char *name, const tg_tensor *x, tg_sort_opts o, tg_tensor **out)
{
    if (!tg__check_input(loc, name, x, "x"))
        return -1;
    if (x->rank == 0)
        return tg__failf(loc, "%s: `x` is a scalar; it needs a tensor of rank >= 1", name);
    int axis = o.axis < 0 ? o.axis + x->rank : o.axis;
    if (axis < 0 || axis >= x->rank)
        return tg__failf(loc, "%s: axis %d is out of range for a tensor of rank %d", name, o.axis, x->rank);
    if (o.direction != TG_ASCENDING && o.direction != TG_DESCENDING)
        return tg__failf(loc, "%s: direction %d is neither TG_ASCENDING nor TG_DESCENDING", name, (int)o.direction);
    if (x->dtype == TG_BOOL)
        return tg__failf(loc, "%s: `x` is bool; it needs a number dtype (cast it with tg_cast)", name);
    bool up = o.direction == TG_ASCENDING;
    tg_tensor *t = swap_last(loc, up ? flip(loc, x) : x, axis);
    if (!t || tg_top_k_at(loc, t, t->shape[t->rank - 1], out, (tg_top_k_opts){.sorted = true}) != 0)
        return -1;
    out[0] = swap_last(loc, out[0], axis);
    out[1] = swap_last(loc, out[1], axis);
    if (up)
        out[0] = flip(loc, out[0]);
    return out[0] && out[1] ? 0 : -1;
}

tg_tensor *tg_sort_at(tg_loc loc, const tg_tensor *x, tg_sort_opts o)
{
    tg_tensor *out[2];
    return sorted(loc, "tg_sort", x, o, out) == 0 ? out[0] : NULL;
}

tg_tensor *tg_argsort_at(tg_loc loc, const tg_tensor *x, tg_sort_opts o)
{
    tg_tensor *out[2];
    return sorted(loc, "tg_argsort", x, o, out) == 0 ? out[1] : NULL;
}

/* ---- norm, l2_normalize: composites, as TF writes them ------------------------------------------ */
/* The composites' axes checked here, so that their errors name them and not tg_sum. */
static bool composite_axes(tg_loc loc, const char *name, const tg_tensor *x, const tg_axes *axes)
{
    for (int k = 0; k < axes->n && k < TG_MAX_RANK; k++) {
        int a = axes->axis[k] < 0 ? axes->axis[k] + x->rank : axes->axis[k];
        if (a < 0 || a >= x->rank)
            return tg__failb(loc, "%s: axis %d is out of range for a tensor of rank %d", name, axes->axis[k], x->rank);
    }
    return true;
}

/* tf.norm's matrix norms 1 and inf over axes (rows, cols): the largest column sum of |x|
 * (ord 1: a sum over rows, then a max over cols) or row sum (inf: the other way round),
 * as TF's linalg_ops.norm writes them; max's ties share the gradient, as TF's. */
static tg_tensor *matrix_norm(tg_loc loc, const tg_tensor *x, tg_norm_opts o)
{
    int a0 = o.axes.axis[0] < 0 ? o.axes.axis[0] + x->rank : o.axes.axis[0];
    int a1 = o.axes.axis[1] < 0 ? o.axes.axis[1] + x->rank : o.axes.axis[1];
    if (a0 == a1)
        return tg__fail(loc, "tg_norm: the two axes (%d, %d) of a matrix norm are the same axis", o.axes.axis[0],
                        o.axes.axis[1]);
    int sum_axis = o.ord == TG_NORM_1 ? a0 : a1, max_axis = o.ord == TG_NORM_1 ? a1 : a0;
    tg_tensor *sums = tg_sum_at(loc, tg_abs_at(loc, x), (tg_reduce_opts){.axes = TG_AXES(sum_axis), .keepdims = true});
    tg_tensor *n = tg_max_at(loc, sums, (tg_reduce_opts){.axes = TG_AXES(max_axis), .keepdims = true});
    return o.keepdims ? n : tg_squeeze_at(loc, n, TG_AXES(a0, a1));
}

/* tf.norm: euclidean sqrt(sum(x * x)), 1 sum(|x|), inf max(|x|) over `axes` (none: every
 * axis, x as one vector); over two axes the euclidean norm is Frobenius's and 1 and inf
 * are the matrix norms (matrix_norm). */
tg_tensor *tg_norm_at(tg_loc loc, const tg_tensor *x, tg_norm_opts o)
{
    if (!tg__check_input(loc, "tg_norm", x, "x"))
        return NULL;
    if (!tg_dtype_is_float(x->dtype))
        return tg__fail(loc, "tg_norm: `x` is %s; it needs float32 or float64", tg_dtype_name(x->dtype));
    if (o.axes.n > 2)
        return tg__fail(loc, "tg_norm: %d axes; give none (every axis), one (vectors) or two (matrices)", o.axes.n);
    if (o.ord != TG_NORM_EUCLIDEAN && o.ord != TG_NORM_1 && o.ord != TG_NORM_INF)
        return tg__fail(loc, "tg_norm: ord %d is not TG_NORM_EUCLIDEAN, TG_NORM_1 or TG_NORM_INF", (int)o.ord);
    if (!composite_axes(loc, "tg_norm", x, &o.axes))
        return NULL;
    if (o.axes.n == 2 && o.ord != TG_NORM_EUCLIDEAN)
        return matrix_norm(loc, x, o);
    tg_reduce_opts r = {.axes = o.axes, .keepdims = o.keepdims};
    switch (o.ord) {
    case TG_NORM_1: return tg_sum_at(loc, tg_abs_at(loc, x), r);
    case TG_NORM_INF: return tg_max_at(loc, tg_abs_at(loc, x), r);
    default: return tg_sqrt_at(loc, tg_sum_at(loc, tg_mul_at(loc, x, x), r));
    }
}

/* tf.math.l2_normalize: x * rsqrt(max(sum(x * x), epsilon)) over `axes`. */
tg_tensor *tg_l2_normalize_at(tg_loc loc, const tg_tensor *x, tg_l2_normalize_opts o)
{
    if (!tg__check_input(loc, "tg_l2_normalize", x, "x"))
        return NULL;
    if (!tg_dtype_is_float(x->dtype))
        return tg__fail(loc, "tg_l2_normalize: `x` is %s; it needs float32 or float64", tg_dtype_name(x->dtype));
    if (!composite_axes(loc, "tg_l2_normalize", x, &o.axes))
        return NULL;
    tg_tensor *ss = tg_sum_at(loc, tg_square_at(loc, x), (tg_reduce_opts){.axes = o.axes, .keepdims = true});
    tg_tensor *eps = ss ? tg_scalar_like_at(loc, ss, o.epsilon) : NULL;
    return tg_mul_at(loc, x, tg_rsqrt_at(loc, tg_maximum_at(loc, ss, eps)));
}
