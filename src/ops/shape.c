/* Shape ops: reshape (and expand_dims/squeeze through it), transpose, broadcast_to,
 * concat, stack, split, unstack, slice, pad, gather, scatter_add and one_hot.
 *
 * They move bytes and never look at values (except gather/scatter/one_hot indices and
 * the pad value), so every dtype works. transpose, slice, pad, concat, stack and
 * broadcast_to are all one N-d strided copy with different strides and offsets. */
#include <math.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/parallel.h"

/* ---- helpers ------------------------------------------------------------------------------ */
static void contiguous_strides(const int64_t *dims, int rank, int64_t *st)
{
    int64_t s = 1;
    for (int k = rank - 1; k >= 0; k--) {
        st[k] = s;
        s *= dims[k];
    }
}

/* One row of `n` elements of `esz` bytes; constant-size memcpy compiles to a move. */
static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t esz)
{
    if (ss == 1 && ds == 1) {
        memcpy(dst, src, (size_t)n * esz);
        return;
    }
#define ROW(E)                                             \
    for (int64_t k = 0; k < n; k++)                        \
        memcpy(dst + k * ds * (E), src + k * ss * (E), E); \
    break;
    switch (esz) {
    case 1: ROW(1)
    case 4: ROW(4)
    case 8: ROW(8)
    default: ROW(esz)
    }
#undef ROW
}

/* Copies a block of `dims` elements of `esz` bytes from src (element strides ss) to dst
 * (element strides ds). Size-1 axes are dropped and axes contiguous in both are merged
 * first, so contiguous blocks become a few long memcpy calls. */
static void strided_copy(void *dst, const int64_t *ds, const void *src, const int64_t *ss, const int64_t *dims,
                         int rank, size_t esz)
{
    int64_t n[TG_MAX_RANK], s[TG_MAX_RANK], d[TG_MAX_RANK];
    int r = 0;
    for (int k = 0; k < rank; k++) {
        if (dims[k] == 0)
            return;
        if (dims[k] == 1)
            continue;
        if (r && s[r - 1] == ss[k] * dims[k] && d[r - 1] == ds[k] * dims[k]) {
            n[r - 1] *= dims[k];
            s[r - 1] = ss[k];
            d[r - 1] = ds[k];
        } else {
            n[r] = dims[k], s[r] = ss[k], d[r] = ds[k];
            r++;
        }
    }
    if (r == 0) {
        memcpy(dst, src, esz);
        return;
    }
    int64_t idx[TG_MAX_RANK] = {0}, rows = 1, so = 0, dof = 0;
    for (int k = 0; k < r - 1; k++)
        rows *= n[k];
    for (int64_t row = 0; row < rows; row++) {
        copy_row((char *)dst + dof * (int64_t)esz, d[r - 1], (const char *)src + so * (int64_t)esz, s[r - 1], n[r - 1],
                 esz);
        for (int k = r - 2; k >= 0; k--) { /* odometer over the outer axes */
            so += s[k], dof += d[k];
            if (++idx[k] < n[k])
                break;
            so -= s[k] * n[k], dof -= d[k] * n[k];
            idx[k] = 0;
        }
    }
}

/* Every element of t set to v (converted to t's dtype), by doubling memcpy. */
static void fill_value(tg_tensor *t, double v)
{
    size_t esz = tg__dsize(t->dtype), total = (size_t)t->size * esz;
    if (!t->size)
        return;
    if (v == 0 && !signbit(v)) {
        memset(t->data, 0, total);
        return;
    }
    tg__set(t, 0, v);
    for (size_t done = esz; done < total;) {
        size_t m = done < total - done ? done : total - done;
        memcpy((char *)t->data + done, t->data, m);
        done += m;
    }
}

static int64_t index_at(const tg_tensor *t, int64_t i)
{
    return t->dtype == TG_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
}

static bool require_int(const tg_call *c, const tg_tensor *t, const char *arg)
{
    if (t->dtype == TG_I32 || t->dtype == TG_I64)
        return true;
    tg__fail(c->loc, "%s: `%s` must be int32 or int64, not %s (cast it with tg_cast)", tg__op_name(c->op), arg,
             tg_dtype_name(t->dtype));
    return false;
}

static bool check_rank(const tg_call *c, int rank, const char *what)
{
    if (rank >= 0 && rank <= TG_MAX_RANK)
        return true;
    tg__fail(c->loc, "%s: %s would have rank %d; tapegrad supports ranks 0 to %d", tg__op_name(c->op), what, rank,
             TG_MAX_RANK);
    return false;
}

static tg_shape attr_shape(const int64_t *v, int n)
{
    tg_shape s = {.rank = n};
    for (int k = 0; k < n; k++)
        s.dims[k] = v[k];
    return s;
}

static int64_t prod(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    for (int k = from; k < to; k++)
        p *= dims[k];
    return p;
}

#define SHAPE_STR(name, s)       \
    char name[TG_SHAPE_STR_MAX]; \
    tg__shape_str(s, name, sizeof name)

/* ---- reshape (also expand_dims and squeeze) --------------------------------------------------- */
bool tg__reshape_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    if (!check_rank(c, c->a->shape.rank, "the result"))
        return false;
    *shape = c->a->shape;
    *dtype = x->dtype;
    tg_shape xs = tg__shape(x);
    SHAPE_STR(from, &xs);
    SHAPE_STR(to, shape);
    int infer = -1;
    int64_t known = 1, span = 1; /* span: zeros counted as ones */
    for (int k = 0; k < shape->rank; k++) {
        int64_t d = shape->dims[k];
        if (d == -1 && infer >= 0) {
            tg__fail(c->loc,
                     "tg_reshape: shape %s has more than one -1 (axes %d and %d); at most one size "
                     "can be inferred",
                     to, infer, k);
            return false;
        }
        if (d < -1) {
            tg__fail(c->loc, "tg_reshape: shape %s has a negative size on axis %d (only -1 is allowed)", to, k);
            return false;
        }
        if (d == -1)
            infer = k;
        else if (tg__mul_overflow(span, d ? d : 1, &span) || span > TG_MAX_ELEMENTS) {
            tg__fail(c->loc, "tg_reshape: shape %s has too many elements", to);
            return false;
        } else
            known *= d;
    }
    if (infer >= 0 && known == 0) {
        tg__fail(c->loc,
                 "tg_reshape: cannot infer the -1 axis of shape %s when another axis has size 0 "
                 "(x has shape %s)",
                 to, from);
        return false;
    }
    if (infer >= 0 && x->size % known == 0) {
        shape->dims[infer] = x->size / known;
        return true;
    }
    if (infer < 0 && known == x->size)
        return true;
    tg__fail(c->loc, "tg_reshape: cannot reshape a tensor of shape %s (%lld elements) into shape %s%s", from,
             (long long)x->size, to,
             infer >= 0 ? " (no size for the -1 axis makes the element counts match)" : " (the element counts differ)");
    return false;
}

/* Runs only for variables and snapshots: other inputs get a view sharing their data. */
bool tg__reshape_forward(const tg_call *c, tg_tensor *out)
{
    memcpy(out->data, c->in[0]->data, (size_t)out->size * tg__dsize(out->dtype));
    return true;
}

bool tg__reshape_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_reshape_at(g->loc, g->dy, tg__shape(g->in[0]));
    tg__trace_shape_like(dx[0], g->in[0]);
    return dx[0] != NULL;
}

tg_tensor *tg_reshape_at(tg_loc loc, const tg_tensor *x, tg_shape shape)
{
    return TG__APPLY(loc, TG_OP_RESHAPE, &(tg_attrs){.shape = shape}, x);
}

tg_tensor *tg_expand_dims_at(tg_loc loc, const tg_tensor *x, int axis)
{
    if (!tg__check_input(loc, "tg_expand_dims", x, "x"))
        return NULL;
    int r = x->rank;
    if (axis < -r - 1 || axis > r)
        return tg__fail(loc, "tg_expand_dims: axis %d is out of range [%d, %d] for a tensor of rank %d", axis, -r - 1,
                        r, r);
    if (r == TG_MAX_RANK)
        return tg__fail(loc, "tg_expand_dims: the tensor already has the largest rank tapegrad supports (%d)", r);
    int at = axis < 0 ? axis + r + 1 : axis;
    tg_shape s = {.rank = r + 1};
    int8_t from[TG_MAX_RANK] = {0}; /* in a graph, x's dims follow x's shape */
    for (int k = 0, src = 0; k <= r; k++) {
        from[k] = (int8_t)(k == at ? 0 : src + 1);
        s.dims[k] = k == at ? 1 : x->shape[src++];
    }
    tg_tensor *y = TG__APPLY(loc, TG_OP_RESHAPE, &(tg_attrs){.shape = s}, x);
    tg__trace_shape_map(y, x, from);
    return y;
}

tg_tensor *tg_squeeze_at(tg_loc loc, const tg_tensor *x, tg_axes axes)
{
    if (!tg__check_input(loc, "tg_squeeze", x, "x"))
        return NULL;
    int r = x->rank;
    bool drop[TG_MAX_RANK] = {0};
    if (axes.n < 0 || axes.n > TG_MAX_RANK)
        return tg__fail(loc, "tg_squeeze: %d axes given; at most %d", axes.n, TG_MAX_RANK);
    for (int k = 0; k < r && axes.n == 0; k++)
        drop[k] = x->shape[k] == 1;
    for (int i = 0; i < axes.n; i++) {
        int ax = axes.axis[i] < 0 ? axes.axis[i] + r : axes.axis[i];
        if (ax < 0 || ax >= r)
            return tg__fail(loc, "tg_squeeze: axis %d is out of range for a tensor of rank %d", axes.axis[i], r);
        if (x->shape[ax] != 1) {
            tg_shape xs = tg__shape(x);
            SHAPE_STR(str, &xs);
            return tg__fail(loc, "tg_squeeze: axis %d of shape %s has size %lld; only axes of size 1 can be squeezed",
                            axes.axis[i], str, (long long)x->shape[ax]);
        }
        drop[ax] = true;
    }
    tg_shape s = {.rank = 0};
    int8_t from[TG_MAX_RANK] = {0}; /* in a graph, x's dims follow x's shape */
    for (int k = 0; k < r; k++)
        if (!drop[k]) {
            from[s.rank] = (int8_t)(k + 1);
            s.dims[s.rank++] = x->shape[k];
        }
    tg_tensor *y = TG__APPLY(loc, TG_OP_RESHAPE, &(tg_attrs){.shape = s}, x);
    tg__trace_shape_map(y, x, from);
    return y;
}

/* ---- transpose ---------------------------------------------------------------------------------- */
/* The permutation in attrs.transpose (empty: reversed axes), checked and with negative axes resolved. */
static bool resolve_perm(tg_loc loc, const tg_attrs *a, int rank, int *perm)
{
    int n = a->transpose.n;
    bool seen[TG_MAX_RANK] = {0}, ok = n == 0 || n == rank;
    for (int k = 0; k < rank; k++) {
        int p = n == 0 ? rank - 1 - k : (int)a->transpose.perm[k];
        if (ok && p < 0)
            p += rank;
        ok = ok && p >= 0 && p < rank && !seen[p];
        if (ok)
            seen[p] = true, perm[k] = p;
    }
    if (ok)
        return true;
    tg_shape given = attr_shape(a->transpose.perm, n >= 0 && n <= TG_MAX_RANK ? n : 0);
    SHAPE_STR(str, &given);
    tg__fail(loc,
             "tg_transpose: perm %s is not a permutation of the %d axes of a rank-%d tensor "
             "(each of 0..%d exactly once; negative values count from the end)",
             str, rank, rank, rank - 1);
    return false;
}

bool tg__transpose_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    int perm[TG_MAX_RANK];
    if (!resolve_perm(c->loc, c->a, x->rank, perm))
        return false;
    shape->rank = x->rank;
    for (int k = 0; k < x->rank; k++)
        shape->dims[k] = x->shape[perm[k]];
    *dtype = x->dtype;
    return true;
}

bool tg__transpose_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int perm[TG_MAX_RANK];
    int64_t xst[TG_MAX_RANK], ss[TG_MAX_RANK], ds[TG_MAX_RANK];
    resolve_perm(c->loc, c->a, x->rank, perm);
    contiguous_strides(x->shape, x->rank, xst);
    contiguous_strides(out->shape, out->rank, ds);
    for (int k = 0; k < x->rank; k++)
        ss[k] = xst[perm[k]];
    strided_copy(out->data, ds, x->data, ss, out->shape, out->rank, tg__dsize(x->dtype));
    return true;
}

bool tg__transpose_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    int perm[TG_MAX_RANK];
    int r = g->in[0]->rank;
    if (!resolve_perm(g->loc, g->a, r, perm))
        return false;
    tg_axes inv = {.n = r};
    for (int k = 0; k < r; k++)
        inv.axis[perm[k]] = k;
    dx[0] = tg_transpose_at(g->loc, g->dy, inv);
    return dx[0] != NULL;
}

tg_tensor *tg_transpose_at(tg_loc loc, const tg_tensor *x, tg_axes perm)
{
    tg_attrs a = {.transpose.n = perm.n};
    for (int k = 0; k < perm.n && k < TG_MAX_RANK; k++)
        a.transpose.perm[k] = perm.axis[k];
    return TG__APPLY(loc, TG_OP_TRANSPOSE, &a, x);
}

/* ---- broadcast_to ----------------------------------------------------------------------------- */
bool tg__broadcast_to_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    if (!check_rank(c, c->a->shape.rank, "the target shape"))
        return false;
    *shape = c->a->shape;
    *dtype = x->dtype;
    int lead = shape->rank - x->rank;
    bool ok = lead >= 0;
    for (int k = 0; k < shape->rank; k++)
        ok = ok && shape->dims[k] >= 0 && (k < lead || x->shape[k - lead] == 1 || x->shape[k - lead] == shape->dims[k]);
    if (ok)
        return true;
    tg_shape xs = tg__shape(x);
    SHAPE_STR(from, &xs);
    SHAPE_STR(to, shape);
    tg__fail(c->loc,
             "tg_broadcast_to: shape %s cannot be broadcast to %s (numpy rules: aligned from the last "
             "axis, each size must equal the target's or be 1, and the target may only add leading axes)",
             from, to);
    return false;
}

bool tg__broadcast_to_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int64_t xst[TG_MAX_RANK], ss[TG_MAX_RANK], ds[TG_MAX_RANK];
    int lead = out->rank - x->rank;
    contiguous_strides(x->shape, x->rank, xst);
    contiguous_strides(out->shape, out->rank, ds);
    for (int k = 0; k < out->rank; k++)
        ss[k] = k < lead || x->shape[k - lead] != out->shape[k] ? 0 : xst[k - lead];
    strided_copy(out->data, ds, x->data, ss, out->shape, out->rank, tg__dsize(x->dtype));
    return true;
}

bool tg__broadcast_to_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = g->dy; /* the engine sums it over the broadcast axes */
    return true;
}

tg_tensor *tg_broadcast_to_at(tg_loc loc, const tg_tensor *x, tg_shape shape)
{
    return TG__APPLY(loc, TG_OP_BROADCAST_TO, &(tg_attrs){.shape = shape}, x);
}

/* ---- concat and stack ----------------------------------------------------------------------------- */
/* Inputs with equal dtype; for concat (axis >= 0) every dim but `axis` equal to input 0's,
 * for stack (axis < 0) every dim. */
static bool check_parts(const tg_call *c, int axis)
{
    const tg_tensor *x0 = c->in[0];
    for (int i = 1; i < c->n; i++) {
        const tg_tensor *x = c->in[i];
        if (!tg__same_dtype(c, x0, x))
            return false;
        bool ok = x->rank == x0->rank;
        for (int k = 0; ok && k < x->rank; k++)
            ok = k == axis || x->shape[k] == x0->shape[k];
        if (ok)
            continue;
        tg_shape s0 = tg__shape(x0), si = tg__shape(x);
        SHAPE_STR(a, &s0);
        SHAPE_STR(b, &si);
        if (axis >= 0)
            tg__fail(c->loc,
                     "tg_concat: input %d has shape %s but input 0 has shape %s; all dimensions except "
                     "the concat axis %d must match",
                     i, b, a, axis);
        else
            tg__fail(c->loc,
                     "tg_stack: input %d has shape %s but input 0 has shape %s; stacked tensors must "
                     "have the same shape",
                     i, b, a);
        return false;
    }
    return true;
}

/* A result shape built by adding sizes the user gave: refused when too large to hold. */
static bool result_fits(const tg_call *c, const char *op, const tg_shape *shape)
{
    if (tg__shape_size(shape) >= 0)
        return true;
    char str[TG_SHAPE_STR_MAX];
    tg__shape_str(shape, str, sizeof str);
    return tg__failb(c->loc, "%s: the result would have shape %s, too large: its dims multiply past %lld elements", op,
                     str, (long long)TG_MAX_ELEMENTS);
}

bool tg__concat_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x0 = c->in[0];
    int axis;
    if (x0->rank == 0) {
        tg__fail(c->loc, "tg_concat: cannot concatenate scalars (rank 0); use tg_stack to make a new axis");
        return false;
    }
    if (!tg__norm_axis(c, c->a->axis, x0->rank, &axis) || !check_parts(c, axis))
        return false;
    *shape = tg__shape(x0);
    *dtype = x0->dtype;
    for (int i = 1; i < c->n; i++)
        shape->dims[axis] = tg__dim_add(shape->dims[axis], c->in[i]->shape[axis]);
    return result_fits(c, "tg_concat", shape);
}

/* Copies each input, seen with shape `part` (its own, or with a size-1 axis inserted
 * for stack), into out at increasing offsets along `axis`. */
static void copy_parts(const tg_call *c, tg_tensor *out, int axis, bool stacking)
{
    int64_t ds[TG_MAX_RANK], ss[TG_MAX_RANK], off = 0;
    size_t esz = tg__dsize(out->dtype);
    contiguous_strides(out->shape, out->rank, ds);
    for (int i = 0; i < c->n; i++) {
        const tg_tensor *x = c->in[i];
        tg_shape part = tg__shape(out);
        part.dims[axis] = stacking ? 1 : x->shape[axis];
        contiguous_strides(part.dims, part.rank, ss);
        strided_copy((char *)out->data + off * ds[axis] * (int64_t)esz, ds, x->data, ss, part.dims, part.rank, esz);
        off += part.dims[axis];
    }
}

bool tg__concat_forward(const tg_call *c, tg_tensor *out)
{
    int axis = c->a->axis < 0 ? c->a->axis + out->rank : c->a->axis;
    copy_parts(c, out, axis, false);
    return true;
}

bool tg__concat_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    int r = g->out->rank, axis = g->a->axis < 0 ? g->a->axis + r : g->a->axis;
    tg_shape begin = {.rank = r};
    for (int i = 0; i < g->n; i++) {
        dx[i] = tg_slice_at(g->loc, g->dy, begin, tg__shape(g->in[i]));
        if (!dx[i])
            return false;
        begin.dims[axis] += g->in[i]->shape[axis];
    }
    return true;
}

bool tg__stack_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x0 = c->in[0];
    int r = x0->rank, axis = c->a->axis;
    if (!check_rank(c, r + 1, "the stacked result"))
        return false;
    if (axis < -r - 1 || axis > r) {
        tg__fail(c->loc, "tg_stack: axis %d is out of range [%d, %d] for inputs of rank %d", axis, -r - 1, r, r);
        return false;
    }
    if (!check_parts(c, -1))
        return false;
    axis = axis < 0 ? axis + r + 1 : axis;
    shape->rank = r + 1;
    for (int k = 0, src = 0; k <= r; k++)
        shape->dims[k] = k == axis ? c->n : x0->shape[src++];
    *dtype = x0->dtype;
    return true;
}

bool tg__stack_forward(const tg_call *c, tg_tensor *out)
{
    int axis = c->a->axis < 0 ? c->a->axis + out->rank : c->a->axis;
    copy_parts(c, out, axis, true);
    return true;
}

bool tg__stack_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    int r = g->out->rank, axis = g->a->axis < 0 ? g->a->axis + r : g->a->axis;
    tg_shape begin = {.rank = r}, size = {.rank = r};
    for (int k = 0; k < r; k++)
        size.dims[k] = k == axis ? 1 : -1; /* to the end: no batch size in a graph */
    for (int i = 0; i < g->n; i++) {
        begin.dims[axis] = i;
        dx[i] = tg_reshape_at(g->loc, tg_slice_at(g->loc, g->dy, begin, size), tg__shape(g->in[i]));
        tg__trace_shape_like(dx[i], g->in[i]);
        if (!dx[i])
            return false;
    }
    return true;
}

static tg_tensor *apply_list(tg_loc loc, tg_op_kind op, const char *name, tg_tensor *const *xs, int n, int axis)
{
    if (!xs || n < 1)
        return tg__fail(loc, "%s: needs at least one tensor (got %s, n = %d)", name, xs ? "a list" : "NULL", n);
    return tg__apply(loc, op, (const tg_tensor *const *)xs, n, &(tg_attrs){.axis = axis});
}

tg_tensor *tg_concat_at(tg_loc loc, tg_tensor *const *xs, int n, int axis)
{
    return apply_list(loc, TG_OP_CONCAT, "tg_concat", xs, n, axis);
}

tg_tensor *tg_stack_at(tg_loc loc, tg_tensor *const *xs, int n, int axis)
{
    return apply_list(loc, TG_OP_STACK, "tg_stack", xs, n, axis);
}

/* ---- split and unstack: one input, several outputs ------------------------------------------------ */
/* attrs.split: the axis and, for split, the pieces' sizes (NULL: equal pieces), read
 * during the call only: the backward rules need the outputs' shapes alone. */
static bool split_size(const tg_call *c, int k, int axis, int64_t *size)
{
    const tg_tensor *x = c->in[0];
    const int64_t *sizes = c->a->split.sizes;
    int64_t len = x->shape[axis];
    if (!sizes) {
        if (len % c->n_out == 0)
            return *size = len / c->n_out, true;
        tg_shape xs = tg__shape(x);
        SHAPE_STR(str, &xs);
        return tg__failb(c->loc,
                         "tg_split: axis %d of x (shape %s) has %lld elements, which do not split into %d "
                         "equal pieces; give the pieces' lengths with .sizes",
                         axis, str, (long long)len, c->n_out);
    }
    if (sizes[k] < -1)
        return tg__failb(c->loc, "tg_split: sizes[%d] is %lld; a piece's length is >= 0, or -1 for what is left", k,
                         (long long)sizes[k]);
    for (int j = 0; j < k && sizes[k] == -1; j++)
        if (sizes[j] == -1)
            return tg__failb(c->loc,
                             "tg_split: sizes[%d] and sizes[%d] are both -1; at most one piece takes what is "
                             "left",
                             j, k);
    return *size = sizes[k], true;
}

bool tg__split_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    int axis, rest = -1;
    if (x->rank == 0)
        return tg__failb(c->loc, "tg_split: cannot split a scalar (rank 0)");
    if (!tg__norm_axis(c, c->a->split.axis, x->rank, &axis))
        return false;
    int64_t len = x->shape[axis], used = 0;
    for (int k = 0; k < c->n_out; k++) {
        int64_t size;
        if (!split_size(c, k, axis, &size))
            return false;
        shape[k] = tg__shape(x);
        shape[k].dims[axis] = size;
        dtype[k] = x->dtype;
        if (size < 0)
            rest = k;
        else if ((used += size) > len)
            break;
    }
    if (rest >= 0 && used <= len)
        shape[rest].dims[axis] = len - used;
    if (rest >= 0 ? used <= len : used == len)
        return true;
    return tg__failb(c->loc, "tg_split: the pieces' lengths add up to %s%lld, but axis %d of x has %lld elements",
                     used > len ? "more than " : "", (long long)(used > len ? len : used), axis, (long long)len);
}

bool tg__unstack_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    int axis;
    if (x->rank == 0)
        return tg__failb(c->loc, "tg_unstack: cannot unstack a scalar (rank 0)");
    if (!tg__norm_axis(c, c->a->split.axis, x->rank, &axis))
        return false;
    if (x->shape[axis] != c->n_out) {
        tg_shape xs = tg__shape(x);
        SHAPE_STR(str, &xs);
        return tg__failb(c->loc,
                         "tg_unstack: x (shape %s) has %lld slices along axis %d, but n is %d; n must be "
                         "x's length on that axis (TF's num)",
                         str, (long long)x->shape[axis], axis, c->n_out);
    }
    for (int k = 0; k < c->n_out; k++) {
        shape[k].rank = x->rank - 1;
        for (int d = 0, src = 0; src < x->rank; src++)
            if (src != axis)
                shape[k].dims[d++] = x->shape[src];
        dtype[k] = x->dtype;
    }
    return true;
}

/* Copies into each output its piece of x along `axis`, at increasing offsets; an
 * output of unstack is a piece of length 1 whose axis is dropped. */
static void copy_pieces(const tg_call *c, int axis, bool unstacking)
{
    const tg_tensor *x = c->in[0];
    int64_t xs[TG_MAX_RANK], ps[TG_MAX_RANK], off = 0;
    size_t esz = tg__dsize(x->dtype);
    contiguous_strides(x->shape, x->rank, xs);
    for (int k = 0; k < c->n_out; k++) {
        tg_shape part = tg__shape(x);
        part.dims[axis] = unstacking ? 1 : c->outs[k]->shape[axis];
        contiguous_strides(part.dims, part.rank, ps);
        strided_copy(c->outs[k]->data, ps, (const char *)x->data + off * xs[axis] * (int64_t)esz, xs, part.dims,
                     part.rank, esz);
        off += part.dims[axis];
    }
}

static int piece_axis(const tg_attrs *a, int rank) { return a->split.axis < 0 ? a->split.axis + rank : a->split.axis; }

bool tg__split_forward(const tg_call *c, tg_tensor *out)
{
    (void)out; /* c->outs[0] */
    copy_pieces(c, piece_axis(c->a, c->in[0]->rank), false);
    return true;
}

bool tg__unstack_forward(const tg_call *c, tg_tensor *out)
{
    (void)out;
    copy_pieces(c, piece_axis(c->a, c->in[0]->rank), true);
    return true;
}

/* TF's _SplitGrad and _UnpackGrad: the pieces' gradients joined back. */
bool tg__split_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return (dx[0] = tg_concat_at(g->loc, g->dys, g->n_out, piece_axis(g->a, g->in[0]->rank))) != NULL;
}

bool tg__unstack_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return (dx[0] = tg_stack_at(g->loc, g->dys, g->n_out, piece_axis(g->a, g->in[0]->rank))) != NULL;
}

static int apply_pieces(tg_loc loc, tg_op_kind op, const tg_tensor *x, int n, tg_tensor **out, const tg_attrs *a)
{
    if (!out || n < 1)
        return tg__failf(loc, "%s: needs n >= 1 and an array `out` of n tensors (got n = %d, out %s)", tg__op_name(op),
                         n, out ? "given" : "NULL");
    return tg__apply_n(loc, op, &x, 1, a, n, out);
}

int tg_split_at(tg_loc loc, const tg_tensor *x, int n, tg_tensor **out, tg_split_opts o)
{
    return apply_pieces(loc, TG_OP_SPLIT, x, n, out, &(tg_attrs){.split = {.axis = o.axis, .sizes = o.sizes}});
}

int tg_unstack_at(tg_loc loc, const tg_tensor *x, int n, tg_tensor **out, int axis)
{
    return apply_pieces(loc, TG_OP_UNSTACK, x, n, out, &(tg_attrs){.split = {.axis = axis}});
}

/* ---- slice ------------------------------------------------------------------------------------------ */
/* attrs.slice: begin and size (-1: to the end) per axis. */
bool tg__slice_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    tg_shape xs = tg__shape(x);
    SHAPE_STR(str, &xs);
    if (c->a->slice.n != x->rank) {
        tg__fail(c->loc, "tg_slice: begin and size have %d entries but x has shape %s (rank %d)", c->a->slice.n, str,
                 x->rank);
        return false;
    }
    shape->rank = x->rank;
    *dtype = x->dtype;
    for (int k = 0; k < x->rank; k++) {
        int64_t b = c->a->slice.begin[k], s = c->a->slice.size[k], dim = x->shape[k];
        if (b < 0 || b > dim) {
            tg__fail(c->loc, "tg_slice: begin %lld on axis %d is out of range [0, %lld] for x of shape %s",
                     (long long)b, k, (long long)dim, str);
            return false;
        }
        if (s == -1)
            s = dim - b;
        if (s < 0 || s > dim - b) { /* not b + s > dim: that sum may overflow */
            tg__fail(c->loc,
                     "tg_slice: on axis %d, begin %lld + size %lld runs past the end of x of shape %s "
                     "(size must be -1 or 0..%lld)",
                     k, (long long)b, (long long)s, str, (long long)(dim - b));
            return false;
        }
        shape->dims[k] = s;
    }
    return true;
}

bool tg__slice_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int64_t ss[TG_MAX_RANK], ds[TG_MAX_RANK], off = 0;
    size_t esz = tg__dsize(x->dtype);
    contiguous_strides(x->shape, x->rank, ss);
    contiguous_strides(out->shape, out->rank, ds);
    for (int k = 0; k < x->rank; k++)
        off += c->a->slice.begin[k] * ss[k];
    strided_copy(out->data, ds, (const char *)x->data + off * (int64_t)esz, ss, out->shape, out->rank, esz);
    return true;
}

bool tg__slice_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    const tg_tensor *x = g->in[0];
    tg_shape before = attr_shape(g->a->slice.begin, x->rank), after = {.rank = x->rank};
    for (int k = 0; k < x->rank; k++)
        after.dims[k] = x->shape[k] - before.dims[k] - g->out->shape[k];
    dx[0] = tg_pad_at(g->loc, g->dy, before, after, 0.0);
    return dx[0] != NULL;
}

/* Two shapes, one entry per axis of x, into first and second (*n their rank), after
 * checking that they agree in rank. */
static bool pack_pair(tg_loc loc, const char *name, const char *na, const char *nb, const tg_tensor *x,
                      const tg_shape *a, const tg_shape *b, int *n, int64_t *first, int64_t *second)
{
    if (!tg__check_input(loc, name, x, "x"))
        return false;
    if (a->rank != b->rank || a->rank < 0 || a->rank > TG_MAX_RANK) {
        tg__fail(loc, "%s: `%s` has rank %d and `%s` has rank %d; both need one entry per axis of x (rank %d)", name,
                 na, a->rank, nb, b->rank, x->rank);
        return false;
    }
    *n = a->rank;
    for (int k = 0; k < a->rank; k++) {
        first[k] = a->dims[k];
        second[k] = b->dims[k];
    }
    return true;
}

tg_tensor *tg_slice_at(tg_loc loc, const tg_tensor *x, tg_shape begin, tg_shape size)
{
    tg_attrs a = {0};
    if (!pack_pair(loc, "tg_slice", "begin", "size", x, &begin, &size, &a.slice.n, a.slice.begin, a.slice.size))
        return NULL;
    return TG__APPLY(loc, TG_OP_SLICE, &a, x);
}

/* ---- pad ---------------------------------------------------------------------------------------------- */
/* attrs.pad: before and after per axis, and the fill value. */
bool tg__pad_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    tg_shape xs = tg__shape(x);
    SHAPE_STR(str, &xs);
    if (c->a->pad.n != x->rank) {
        tg__fail(c->loc, "tg_pad: before and after have %d entries but x has shape %s (rank %d)", c->a->pad.n, str,
                 x->rank);
        return false;
    }
    shape->rank = x->rank;
    *dtype = x->dtype;
    for (int k = 0; k < x->rank; k++) {
        if (c->a->pad.before[k] < 0 || c->a->pad.after[k] < 0) {
            tg__fail(c->loc, "tg_pad: negative padding on axis %d (before %lld, after %lld); paddings must be >= 0", k,
                     (long long)c->a->pad.before[k], (long long)c->a->pad.after[k]);
            return false;
        }
        shape->dims[k] = tg__dim_add(tg__dim_add(x->shape[k], c->a->pad.before[k]), c->a->pad.after[k]);
    }
    return result_fits(c, "tg_pad", shape);
}

bool tg__pad_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int64_t ss[TG_MAX_RANK], ds[TG_MAX_RANK], off = 0;
    size_t esz = tg__dsize(x->dtype);
    fill_value(out, c->a->pad.value);
    contiguous_strides(x->shape, x->rank, ss);
    contiguous_strides(out->shape, out->rank, ds);
    for (int k = 0; k < x->rank; k++)
        off += c->a->pad.before[k] * ds[k];
    if (x->size)
        strided_copy((char *)out->data + off * (int64_t)esz, ds, x->data, ss, x->shape, x->rank, esz);
    return true;
}

bool tg__pad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    const tg_tensor *x = g->in[0];
    dx[0] = tg_slice_at(g->loc, g->dy, attr_shape(g->a->pad.before, x->rank), tg__shape(x));
    return dx[0] != NULL;
}

tg_tensor *tg_pad_at(tg_loc loc, const tg_tensor *x, tg_shape before, tg_shape after, double value)
{
    tg_attrs a = {.pad.value = value};
    if (!pack_pair(loc, "tg_pad", "before", "after", x, &before, &after, &a.pad.n, a.pad.before, a.pad.after))
        return NULL;
    return TG__APPLY(loc, TG_OP_PAD, &a, x);
}

/* ---- gather and scatter_add ------------------------------------------------------------------------ */
/* table.shape[:axis] + indices.shape + table.shape[axis+1:]; table has rank >= 1. */
static bool indexed_shape(const tg_call *c, const tg_shape *table, const tg_tensor *idx, int given_axis, int *axis,
                          tg_shape *out)
{
    if (table->rank == 0) {
        tg__fail(c->loc, "%s: %s must have rank >= 1, not be a scalar", tg__op_name(c->op),
                 c->op == TG_OP_GATHER ? "`params`" : "the output shape");
        return false;
    }
    if (!tg__norm_axis(c, given_axis, table->rank, axis) || !require_int(c, idx, "indices") ||
        !check_rank(c, table->rank - 1 + idx->rank, "the indexed shape"))
        return false;
    out->rank = 0;
    for (int k = 0; k < table->rank; k++) {
        if (k != *axis) {
            out->dims[out->rank++] = table->dims[k];
            continue;
        }
        for (int q = 0; q < idx->rank; q++)
            out->dims[out->rank++] = idx->shape[q];
    }
    return true;
}

/* Every index within [0, dim), else an error naming it. */
static bool check_indices(const tg_call *c, const tg_tensor *idx, int64_t dim, int axis, const tg_shape *table)
{
    for (int64_t i = 0; i < idx->size; i++) {
        int64_t v = index_at(idx, i);
        if (v >= 0 && v < dim)
            continue;
        SHAPE_STR(str, table);
        tg__fail(c->loc, "%s: indices[%lld] = %lld is out of range [0, %lld) for axis %d of %s %s", tg__op_name(c->op),
                 (long long)i, (long long)v, (long long)dim, axis,
                 c->op == TG_OP_GATHER ? "params of shape" : "the output shape", str);
        return false;
    }
    return true;
}

bool tg__gather_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    int axis;
    tg_shape ps = tg__shape(c->in[0]);
    *dtype = c->in[0]->dtype;
    return indexed_shape(c, &ps, c->in[1], c->a->axis, &axis, shape);
}

/* Output rows [begin, end) of a gather: row r is source row (r / n) * dim + idx[r % n]. */
typedef struct gather_job {
    const char *src;
    char *dst;
    const tg_tensor *idx;
    int64_t dim;
    size_t row;
} gather_job;

static void gather_rows(void *ctx, int64_t begin, int64_t end)
{
    const gather_job *j = ctx;
    int64_t n = j->idx->size;
    for (int64_t r = begin; r < end; r++)
        memcpy(j->dst + (size_t)r * j->row, j->src + (size_t)((r / n) * j->dim + index_at(j->idx, r % n)) * j->row,
               j->row);
}

bool tg__gather_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *p = c->in[0], *idx = c->in[1];
    int axis = c->a->axis < 0 ? c->a->axis + p->rank : c->a->axis;
    tg_shape ps = tg__shape(p);
    int64_t dim = p->shape[axis], outer = prod(p->shape, 0, axis), inner = prod(p->shape, axis + 1, p->rank);
    size_t row = (size_t)inner * tg__dsize(p->dtype);
    if (!check_indices(c, idx, dim, axis, &ps))
        return false;
    gather_job j = {.src = p->data, .dst = out->data, .idx = idx, .dim = dim, .row = row};
    /* Rows picked at random from a large table are memory-latency bound: several threads
     * keep more of them in flight (fit's shuffled batches). Chunks of about 128 KB. */
    tg__parallel_for(outer * idx->size, tg__rows_grain((int64_t)row, 1 << 17), gather_rows, &j);
    return true;
}

bool tg__gather_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_scatter_add_at(g->loc, g->in[1], g->dy, tg__shape(g->in[0]), g->a->axis);
    return dx[0] != NULL;
}

tg_tensor *tg_gather_at(tg_loc loc, const tg_tensor *params, const tg_tensor *indices, int axis)
{
    return TG__APPLY(loc, TG_OP_GATHER, &(tg_attrs){.axis = axis}, params, indices);
}

/* Inputs: indices, updates; attrs.scatter: the output shape and the axis. */
bool tg__scatter_add_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *idx = c->in[0], *upd = c->in[1];
    int axis;
    tg_shape want;
    if (!check_rank(c, c->a->scatter.shape.rank, "the output"))
        return false;
    *shape = c->a->scatter.shape;
    *dtype = upd->dtype;
    for (int k = 0; k < shape->rank; k++)
        if (shape->dims[k] < 0) {
            SHAPE_STR(str, shape);
            tg__fail(c->loc, "tg_scatter_add: the output shape %s has a negative size", str);
            return false;
        }
    if (upd->dtype == TG_BOOL) {
        tg__fail(c->loc, "tg_scatter_add: `updates` must be numeric, not bool");
        return false;
    }
    if (!indexed_shape(c, shape, idx, c->a->scatter.axis, &axis, &want))
        return false;
    tg_shape us = tg__shape(upd);
    if (tg__shape_eq(&us, &want))
        return true;
    SHAPE_STR(got, &us);
    SHAPE_STR(exp, &want);
    SHAPE_STR(str, shape);
    tg__fail(c->loc,
             "tg_scatter_add: updates have shape %s but indices into axis %d of shape %s need updates of "
             "shape %s",
             got, axis, str, exp);
    return false;
}

bool tg__scatter_add_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *idx = c->in[0], *upd = c->in[1];
    int axis = c->a->scatter.axis < 0 ? c->a->scatter.axis + out->rank : c->a->scatter.axis;
    tg_shape os = tg__shape(out);
    int64_t dim = out->shape[axis], outer = prod(out->shape, 0, axis), inner = prod(out->shape, axis + 1, out->rank);
    if (!check_indices(c, idx, dim, axis, &os))
        return false;
    memset(out->data, 0, (size_t)out->size * tg__dsize(out->dtype));
#define SCATTER(T)                                                  \
    {                                                               \
        T *o_ = out->data;                                          \
        const T *u_ = upd->data;                                    \
        for (int64_t o = 0; o < outer; o++)                         \
            for (int64_t i = 0; i < idx->size; i++, u_ += inner) {  \
                T *dst = o_ + (o * dim + index_at(idx, i)) * inner; \
                for (int64_t q = 0; q < inner; q++)                 \
                    dst[q] += u_[q];                                \
            }                                                       \
    }                                                               \
    break;
    switch (out->dtype) {
    case TG_F32: SCATTER(float)
    case TG_F64: SCATTER(double)
    case TG_I32: SCATTER(int32_t)
    case TG_I64: SCATTER(int64_t)
    default: break;
    }
#undef SCATTER
    return true;
}

bool tg__scatter_add_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[1] = tg_gather_at(g->loc, g->dy, g->in[0], g->a->scatter.axis);
    return dx[1] != NULL;
}

tg_tensor *tg_scatter_add_at(tg_loc loc, const tg_tensor *indices, const tg_tensor *updates, tg_shape shape, int axis)
{
    tg_attrs a = {.scatter = {shape, axis}};
    return TG__APPLY(loc, TG_OP_SCATTER_ADD, &a, indices, updates);
}

/* ---- one_hot ------------------------------------------------------------------------------------- */
bool tg__one_hot_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *idx = c->in[0];
    if (!require_int(c, idx, "indices") || !check_rank(c, idx->rank + 1, "the one-hot result"))
        return false;
    if (c->a->depth < 0) {
        tg__fail(c->loc, "tg_one_hot: depth must be >= 0 (got %lld)", (long long)c->a->depth);
        return false;
    }
    *shape = tg__shape(idx);
    shape->dims[shape->rank++] = c->a->depth;
    *dtype = TG_F32;
    return true;
}

/* An index outside [0, depth) gives a row of zeros, as in TF. */
bool tg__one_hot_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *idx = c->in[0];
    int64_t depth = c->a->depth;
    float *o = out->data;
    memset(o, 0, (size_t)out->size * sizeof *o);
    for (int64_t i = 0; i < idx->size; i++) {
        int64_t v = index_at(idx, i);
        if (v >= 0 && v < depth)
            o[i * depth + v] = 1.0f;
    }
    return true;
}

tg_tensor *tg_one_hot_at(tg_loc loc, const tg_tensor *indices, int64_t depth)
{
    return TG__APPLY(loc, TG_OP_ONE_HOT, &(tg_attrs){.depth = depth}, indices);
}
