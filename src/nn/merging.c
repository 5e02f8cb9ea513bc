/* Merging layers, Keras's layers/merging: Add, Subtract, Multiply, Average, Maximum,
 * Minimum (element-wise, with Keras's Merge shape rule), Concatenate and Dot. Made of
 * public ops, so their gradients come from the tape. */
#include <stdlib.h>

#include "layer_impl.h"

/* "[(None, 3), (None, 4)]": the inputs' shapes as Keras writes input_shape. */
static const char *shapes_str(const tg_shape *in, int n, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at + 1 < size; i++) {
        char one[TG_SHAPE_STR_MAX];
        int k = snprintf(buf + at, size - at, "%s%s", i ? ", " : "[", tg__batch_shape_str(&in[i], one, sizeof one));
        at += k > 0 ? (size_t)k : 0;
    }
    if (at + 1 < size)
        snprintf(buf + at, size - at, "]");
    return buf;
}

#define SHAPES_MAX 1024

/* ---- element-wise merges ------------------------------------------------------------------ */
/* Keras's _compute_elemwise_op_output_shape: right-aligned, a 1 takes the other's size. */
static bool elementwise_shape(const tg_layer *l, tg_loc loc, const tg_shape *a, const tg_shape *b, tg_shape *out)
{
    const tg_shape *hi = a->rank >= b->rank ? a : b, *lo = a->rank >= b->rank ? b : a;
    *out = *hi;
    for (int k = 0; k < lo->rank; k++) {
        int i = hi->rank - lo->rank + k;
        int64_t x = hi->dims[i], y = lo->dims[k];
        if (x == 1)
            out->dims[i] = y;
        else if (y != 1 && x != y) {
            char sa[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
            return tg__failb(loc, "%s \"%s\": Inputs have incompatible shapes. Received shapes %s and %s",
                             l->kind->class_name, l->name, tg__batch_shape_str(a, sa, sizeof sa),
                             tg__batch_shape_str(b, sb, sizeof sb));
        }
    }
    return true;
}

static bool merge_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    if (n < 1) {
        return tg__failb(loc,
                         "%s \"%s\": A merge layer should be called on a list of at least 1 input. Received 0 inputs",
                         l->kind->class_name, l->name);
    }
    *out = in[0];
    for (int i = 1; i < n; i++)
        if (!elementwise_shape(l, loc, out, &in[i], out))
            return false;
    return true;
}

static bool subtract_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    if (n != 2) {
        char s[SHAPES_MAX];
        return tg__failb(loc,
                         "Subtract \"%s\": A `Subtract` layer should be called on exactly 2 inputs. Received: "
                         "input_shape=%s",
                         l->name, shapes_str(in, n, s, sizeof s));
    }
    return merge_build(l, loc, in, n, out);
}

/* Inputs of lower rank get 1s after the batch axis (Keras's expand_dims(x, 1)). */
static tg_tensor *to_rank(tg_loc loc, tg_tensor *x, int rank)
{
    int r = tg_rank(x);
    if (!x || r >= rank)
        return x;
    tg_shape s = {.rank = rank, .dims = {tg_dim(x, 0)}};
    for (int i = 1; i < rank; i++)
        s.dims[i] = i < rank - r + 1 ? 1 : tg_dim(x, i - (rank - r));
    return tg_reshape_at(loc, x, s);
}

typedef tg_tensor *(*binary_op)(tg_loc, const tg_tensor *, const tg_tensor *);

static tg_tensor *fold(tg_loc loc, tg_tensor *const *xs, int n, binary_op op)
{
    int rank = 0;
    for (int i = 0; i < n; i++)
        rank = tg_rank(xs[i]) > rank ? tg_rank(xs[i]) : rank;
    tg_tensor *y = to_rank(loc, xs[0], rank);
    for (int i = 1; i < n && y; i++)
        y = op(loc, y, to_rank(loc, xs[i], rank));
    return y;
}

static tg_tensor *add_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)l, (void)training;
    return fold(loc, xs, n, tg_add_at);
}

static tg_tensor *subtract_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)l, (void)training;
    return fold(loc, xs, n, tg_sub_at);
}

static tg_tensor *multiply_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)l, (void)training;
    return fold(loc, xs, n, tg_mul_at);
}

static tg_tensor *maximum_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)l, (void)training;
    return fold(loc, xs, n, tg_maximum_at);
}

static tg_tensor *minimum_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)l, (void)training;
    return fold(loc, xs, n, tg_minimum_at);
}

/* Keras's Average: the sum divided by the number of inputs. */
static tg_tensor *average_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    tg_tensor *sum = add_call(l, loc, xs, n, training);
    return sum ? tg_div_at(loc, sum, tg_scalar_like_at(loc, sum, (double)n)) : NULL;
}

/* Keras's Merge.compute_mask: the masks OR-ed when every input has one, else none. */
static tg_tensor *merge_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n)
{
    (void)l, (void)xs;
    tg_tensor *m = (tg_tensor *)masks[0];
    for (int i = 1; m && i < n; i++)
        m = masks[i] ? tg_logical_or_at(loc, m, masks[i]) : NULL;
    return m;
}

static const tg_layer_kind add_kind = {.base_name = "add",
                                       .class_name = "Add",
                                       .autocast = true,
                                       .build_n = merge_build,
                                       .call_n = add_call,
                                       .compute_mask_n = merge_mask};
static const tg_layer_kind subtract_kind = {.base_name = "subtract",
                                            .class_name = "Subtract",
                                            .autocast = true,
                                            .build_n = subtract_build,
                                            .call_n = subtract_call,
                                            .compute_mask_n = merge_mask};
static const tg_layer_kind multiply_kind = {.base_name = "multiply",
                                            .class_name = "Multiply",
                                            .autocast = true,
                                            .build_n = merge_build,
                                            .call_n = multiply_call,
                                            .compute_mask_n = merge_mask};
static const tg_layer_kind average_kind = {.base_name = "average",
                                           .class_name = "Average",
                                           .autocast = true,
                                           .build_n = merge_build,
                                           .call_n = average_call,
                                           .compute_mask_n = merge_mask};
static const tg_layer_kind maximum_kind = {.base_name = "maximum",
                                           .class_name = "Maximum",
                                           .autocast = true,
                                           .build_n = merge_build,
                                           .call_n = maximum_call,
                                           .compute_mask_n = merge_mask};
static const tg_layer_kind minimum_kind = {.base_name = "minimum",
                                           .class_name = "Minimum",
                                           .autocast = true,
                                           .build_n = merge_build,
                                           .call_n = minimum_call,
                                           .compute_mask_n = merge_mask};

static tg_layer *merge_new(tg_loc loc, const tg_layer_kind *kind, tg_merge_opts o)
{
    tg_layer *l = TG__LAYER_NEW(loc, kind, o);
    if (l)
        l->o.merge = o;
    return l;
}

tg_layer *tg_add_layer_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &add_kind, o); }
tg_layer *tg_subtract_layer_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &subtract_kind, o); }
tg_layer *tg_multiply_layer_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &multiply_kind, o); }
tg_layer *tg_average_layer_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &average_kind, o); }
tg_layer *tg_maximum_layer_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &maximum_kind, o); }
tg_layer *tg_minimum_layer_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &minimum_kind, o); }

/* ---- Concatenate ---------------------------------------------------------------------------- */
/* The axis among one example's axes (Keras counts the batch as axis 0). */
static bool concat_axis(const tg_layer *l, tg_loc loc, int rank, int *axis)
{
    int a = l->o.merge.axis < 0 ? l->o.merge.axis + rank + 1 : l->o.merge.axis;
    if (a < 1 || a > rank)
        return tg__failb(loc,
                         "Concatenate \"%s\": axis %d is out of range for inputs of rank %d (batch included); use "
                         "-1 for the last axis, and never 0, the batch axis",
                         l->name, l->o.merge.axis, rank + 1);
    *axis = a - 1;
    return true;
}

static bool concatenate_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    char s[SHAPES_MAX];
    if (n < 1)
        return tg__failb(
            loc, "Concatenate \"%s\": A `Concatenate` layer should be called on a list of at least 1 input", l->name);
    int axis = 0;
    if (!concat_axis(l, loc, in[0].rank, &axis))
        return false;
    *out = in[0];
    for (int i = 1; i < n; i++) {
        bool ok = in[i].rank == in[0].rank;
        for (int k = 0; ok && k < in[0].rank; k++)
            ok = k == axis || in[i].dims[k] == in[0].dims[k];
        if (!ok)
            return tg__failb(loc,
                             "Concatenate \"%s\": A `Concatenate` layer requires inputs with matching shapes except "
                             "for the concatenation axis. Received: input_shape=%s",
                             l->name, shapes_str(in, n, s, sizeof s));
        out->dims[axis] += in[i].dims[axis];
    }
    return true;
}

static tg_tensor *concatenate_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)training;
    int axis = 0;
    return concat_axis(l, loc, tg_rank(xs[0]) - 1, &axis) ? tg_concat_at(loc, xs, n, axis + 1) : NULL;
}

/* Keras's Concatenate.compute_mask: each input's mask broadcast over its shape (all true
 * for an input without one), concatenated along the axis, then any() over the last axis. */
static tg_tensor *concatenate_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n)
{
    int axis = 0;
    tg_tensor **full = tg__arena_alloc(tg__ctx()->scope, sizeof *full * (size_t)n);
    if (!full || !concat_axis(l, loc, tg_rank(xs[0]) - 1, &axis))
        return full ? NULL : tg__fail(loc, "Concatenate \"%s\": out of memory", l->name);
    for (int i = 0; i < n; i++) {
        tg_tensor *m = masks[i] ? (tg_tensor *)masks[i] : tg_fill_at(loc, TG_BOOL, TG_SHAPE(1), 1.0);
        for (int r = masks[i] ? tg_rank(m) : 1; m && r < tg_rank(xs[i]); r++)
            m = tg_expand_dims_at(loc, m, -1);
        full[i] = tg_broadcast_to_at(loc, m, tg_shape_of(xs[i]));
    }
    return tg_reduce_any_at(loc, tg_concat_at(loc, full, n, axis + 1), (tg_reduce_opts){.axes = TG_AXES(-1)});
}

static const tg_layer_kind concatenate_kind = {.base_name = "concatenate",
                                               .class_name = "Concatenate",
                                               .autocast = true,
                                               .build_n = concatenate_build,
                                               .call_n = concatenate_call,
                                               .compute_mask_n = concatenate_mask};

tg_layer *tg_concatenate_at(tg_loc loc, tg_merge_opts o) { return merge_new(loc, &concatenate_kind, o); }

/* ---- Dot ------------------------------------------------------------------------------------ */
/* The two axes, batch included, for inputs of ranks r0 and r1 (batch included). */
static bool dot_axes(const tg_layer *l, tg_loc loc, int r0, int r1, int *a0, int *a1)
{
    const int *ax = l->o.dot.axes;
    *a0 = ax[0] < 0 ? ax[0] + r0 : ax[0];
    *a1 = ax[1] < 0 ? ax[1] + r1 : ax[1];
    if (*a0 < 1 || *a0 >= r0 || *a1 < 1 || *a1 >= r1)
        return tg__failb(loc,
                         "Dot \"%s\": axes {%d, %d} are out of range for inputs of ranks %d and %d (batch "
                         "included): Cannot perform batch_dot over axis 0",
                         l->name, ax[0], ax[1], r0, r1);
    return true;
}

static bool dot_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    char s[SHAPES_MAX];
    if (n != 2)
        return tg__failb(loc,
                         "Dot \"%s\": A `Dot` layer should be called on a list of 2 inputs. Received: input_shape=%s",
                         l->name, shapes_str(in, n, s, sizeof s));
    int a0 = 0, a1 = 0;
    if (!dot_axes(l, loc, in[0].rank + 1, in[1].rank + 1, &a0, &a1))
        return false;
    if (in[0].dims[a0 - 1] != in[1].dims[a1 - 1]) {
        char sa[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
        return tg__failb(loc,
                         "Dot \"%s\": Incompatible input shapes: axis values %lld (at axis %d) != %lld (at axis %d). "
                         "Full input shapes: %s, %s",
                         l->name, (long long)in[0].dims[a0 - 1], a0, (long long)in[1].dims[a1 - 1], a1,
                         tg__batch_shape_str(&in[0], sa, sizeof sa), tg__batch_shape_str(&in[1], sb, sizeof sb));
    }
    /* x's axes but a0, then y's but the batch and a1; a rank of 1 (batch only) gets a 1 */
    *out = (tg_shape){0};
    for (int i = 0; i < in[0].rank; i++)
        if (i != a0 - 1)
            out->dims[out->rank++] = in[0].dims[i];
    for (int i = 0; i < in[1].rank; i++)
        if (i != a1 - 1)
            out->dims[out->rank++] = in[1].dims[i];
    if (out->rank == 0)
        out->dims[out->rank++] = 1;
    if (out->rank >= TG_MAX_RANK)
        return tg__failb(loc, "Dot \"%s\": the output would have rank %d", l->name, out->rank + 1);
    return true;
}

/* x's axis `a` moved to the end. */
static tg_tensor *axis_to_end(tg_loc loc, const tg_tensor *x, int a)
{
    int r = tg_rank(x);
    tg_axes perm = {.n = r};
    for (int i = 0, k = 0; i < r; i++)
        if (i != a)
            perm.axis[k++] = i;
    perm.axis[r - 1] = a;
    return a == r - 1 ? (tg_tensor *)x : tg_transpose_at(loc, x, perm);
}

/* Keras's batch_dot: the products summed over the two axes, as one batched matmul of
 * x (B, m, k) and y (B, k, n), reshaped to Keras's output shape. */
static tg_tensor *dot_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    (void)n, (void)training;
    tg_tensor *x = xs[0], *y = xs[1];
    int a0 = 0, a1 = 0;
    if (!dot_axes(l, loc, tg_rank(x), tg_rank(y), &a0, &a1))
        return NULL;
    if (l->o.dot.normalize) { /* Keras's normalize: x * min(rsqrt(sum(x^2)), 1 / 1e-7) */
        x = tg_l2_normalize_at(loc, x, (tg_l2_normalize_opts){.axes = {.n = 1, .axis = {a0}}, .epsilon = 1e-14});
        y = tg_l2_normalize_at(loc, y, (tg_l2_normalize_opts){.axes = {.n = 1, .axis = {a1}}, .epsilon = 1e-14});
    }
    int64_t batch = tg_dim(xs[0], 0), k = tg_dim(xs[0], a0);
    tg_tensor *xt = axis_to_end(loc, x, a0);                        /* (B, ..., k) */
    tg_tensor *yt = axis_to_end(loc, y, a1);                        /* (B, ..., k) */
    tg_tensor *x3 = tg_reshape_at(loc, xt, TG_SHAPE(batch, -1, k)); /* (B, m, k) */
    tg_tensor *y3 = tg_reshape_at(loc, yt, TG_SHAPE(batch, -1, k)); /* (B, n, k) */
    tg_tensor *p = tg_matmul_at(loc, x3, y3, (tg_matmul_opts){.transpose_b = true});
    if (!p)
        return NULL;
    tg_shape s = {.rank = l->out_shape.rank + 1, .dims = {batch}};
    memcpy(s.dims + 1, l->out_shape.dims, sizeof(int64_t) * (size_t)l->out_shape.rank);
    return tg_reshape_at(loc, p, s);
}

/* Keras's Dot.compute_mask: none. */
static tg_tensor *dot_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n)
{
    (void)l, (void)loc, (void)xs, (void)masks, (void)n;
    return NULL;
}

static const tg_layer_kind dot_kind = {.base_name = "dot",
                                       .class_name = "Dot",
                                       .autocast = true,
                                       .build_n = dot_build,
                                       .call_n = dot_call,
                                       .compute_mask_n = dot_mask};

tg_layer *tg_dot_layer_at(tg_loc loc, tg_dot_opts o)
{
    if (o.axes[0] == 0 && o.axes[1] == 0)
        return tg__fail(loc, "tg_dot_layer: give .axes, e.g. .axes = {1} or {1, 2} (axis 0 is the batch)");
    if (o.axes[1] == 0)
        o.axes[1] = o.axes[0];
    tg_layer *l = TG__LAYER_NEW(loc, &dot_kind, o);
    if (l)
        l->o.dot = o;
    return l;
}
