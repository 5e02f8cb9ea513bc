/* Samplers of the op table's rows (see op_samples.h). */
#include "op_samples.h"

#include <math.h>
#include <string.h>

#define LOC TG_LOC

unsigned tg_sample_byte(tg_sample *s) { return s->at < s->n_param ? s->param[s->at++] : (s->at++, 0u); }

static void use(tg_sample *s, const tg_tensor *t)
{
    if (s->n_in < TG_SAMPLE_MAX_IN)
        s->in[s->n_in++] = t;
}

static void zero_kink(tg_sample *s, const tg_tensor *t)
{
    if (s->n_zero < 2)
        s->zero[s->n_zero++] = t;
}

tg_tensor *tg_sample_fit(const tg_tensor *x, tg_shape shape)
{
    int64_t m = 1, n = x ? tg_size(x) : 0;
    for (int i = 0; i < shape.rank; i++)
        m *= shape.dims[i];
    if (n < 1 || m < 0 || m > 4096)
        return NULL;
    tg_tensor *all = tg_reshape_at(LOC, x, TG_SHAPE(n));
    for (int k = 1; all && tg_size(all) < m; k++) { /* doubles: x, then affine maps of it */
        tg_tensor *scale = tg_scalar_like_at(LOC, all, 1 + 0.37 * k), *shift = tg_scalar_like_at(LOC, all, 0.11 * k);
        tg_tensor *copy = tg_add_at(LOC, tg_mul_at(LOC, all, scale), shift);
        all = tg_concat_at(LOC, (tg_tensor *[]){all, copy}, 2, 0);
    }
    tg_tensor *cut = tg_slice_at(LOC, all, TG_SHAPE(0), TG_SHAPE(m));
    return tg_reshape_at(LOC, cut, shape);
}

static tg_shape shape_of(const tg_tensor *x) { return tg_shape_of(x); }

/* x flattened when it has the largest rank: stack and broadcast_to add an axis. */
static tg_tensor *room_for_an_axis(tg_tensor *x)
{
    return tg_rank(x) < TG_MAX_RANK ? x : tg_reshape_at(LOC, x, TG_SHAPE(tg_size(x)));
}

/* x with at least one axis. */
static tg_tensor *with_axis(tg_tensor *x) { return tg_rank(x) >= 1 ? x : tg_sample_fit(x, TG_SHAPE(2)); }

static tg_tensor *apply(tg_sample *s, const tg_attrs *a, tg_tensor *const *in, int n)
{
    for (int i = 0; i < n; i++)
        if (in[i] && tg_dtype_is_float(tg_dtype_of(in[i])))
            use(s, in[i]);
    for (int i = 0; i < n; i++)
        if (!in[i])
            return NULL;
    return tg__apply(LOC, s->op, (const tg_tensor *const *)in, n, a);
}

/* An int64 vector of n indices, each in [lo, lo + range). */
static tg_tensor *indices(tg_sample *s, int64_t n, int64_t lo, int64_t range)
{
    int64_t v[16];
    for (int64_t i = 0; i < n && i < 16; i++)
        v[i] = lo + (int64_t)(tg_sample_byte(s) % (unsigned)range);
    return tg_tensor_from_at(LOC, TG_I64, TG_SHAPE(n), v);
}

/* ---- element-wise ---------------------------------------------------------------------------- */
static tg_tensor *s_unary(tg_sample *s, tg_tensor *const *x) { return apply(s, &(tg_attrs){0}, x, 1); }

/* b fitted to a's shape, to a's last axis (broadcast) or to a scalar. */
static tg_tensor *s_binary(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = x[0];
    tg_shape bs = shape_of(a);
    switch (tg_sample_byte(s) % 3) {
    case 1: bs = bs.rank ? TG_SHAPE(bs.dims[bs.rank - 1]) : bs; break;
    case 2: bs = TG_SCALAR_SHAPE; break;
    default: break;
    }
    return apply(s, &(tg_attrs){0}, (tg_tensor *[]){a, tg_sample_fit(x[1], bs)}, 2);
}

static tg_tensor *positive_part(tg_sample *s, const tg_tensor *x)
{
    zero_kink(s, x);
    return tg_greater_at(LOC, x, tg_scalar_like_at(LOC, x, 0));
}

/* floormod, floordiv, truncatemod: s_binary's operands; the op jumps where a / b is an
 * integer, so a / b - round(a / b) is handed over as a value with a kink at 0. */
static tg_tensor *s_quotient(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *y = s_binary(s, x);
    if (y && s->n_in == 2) {
        tg_tensor *q = tg_div_at(LOC, s->in[0], s->in[1]);
        zero_kink(s, tg_sub_at(LOC, q, tg_round_at(LOC, q)));
    }
    return y;
}

/* truncatediv takes integers: 8a and 3b cast to int64 (b's zeros made 1), steps at the
 * integers of 8a and 3b. */
static tg_tensor *s_truncatediv(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = tg_mul_at(LOC, x[0], tg_scalar_like_at(LOC, x[0], 8));
    tg_tensor *b = tg_sample_fit(x[1], shape_of(x[0]));
    b = b ? tg_mul_at(LOC, b, tg_scalar_like_at(LOC, b, 3)) : NULL;
    use(s, a);
    use(s, b);
    s->kinks = TG_KINK_STEPS;
    tg_tensor *ai = tg_cast_at(LOC, a, TG_I64), *bi = tg_cast_at(LOC, b, TG_I64);
    if (!ai || !bi)
        return NULL;
    tg_tensor *one = tg_scalar_like_at(LOC, bi, 1);
    bi = tg_where_at(LOC, tg_equal_at(LOC, bi, tg_scalar_like_at(LOC, bi, 0)), one, bi);
    return tg_truncatediv_at(LOC, ai, bi);
}

static tg_tensor *s_logical(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = positive_part(s, x[0]);
    if (s->op == TG_OP_LOGICAL_NOT)
        return apply(s, &(tg_attrs){0}, &a, 1);
    tg_tensor *b = positive_part(s, tg_sample_fit(x[1], shape_of(x[0])));
    return apply(s, &(tg_attrs){0}, (tg_tensor *[]){a, b}, 2);
}

static tg_tensor *s_where(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *cond = positive_part(s, tg_sample_fit(x[2], shape_of(x[0])));
    return apply(s, &(tg_attrs){0}, (tg_tensor *[]){cond, x[0], tg_sample_fit(x[1], shape_of(x[0]))}, 3);
}

static tg_tensor *s_clip(tg_sample *s, tg_tensor *const *x)
{
    s->lo = -1.5 + tg_sample_byte(s) / 128.0;
    s->hi = s->lo + 0.25 + tg_sample_byte(s) / 128.0;
    return apply(s, &(tg_attrs){.clip = {s->lo, s->hi}}, x, 1);
}

/* To float64 (smooth), an integer (steps) or bool (a step at 0). */
static tg_tensor *s_cast(tg_sample *s, tg_tensor *const *x)
{
    static const tg_dtype to[] = {TG_F64, TG_I32, TG_I64, TG_BOOL};
    tg_dtype d = to[tg_sample_byte(s) % 4];
    s->kinks = d == TG_I32 || d == TG_I64 ? TG_KINK_STEPS : 0;
    if (d == TG_BOOL)
        zero_kink(s, x[0]);
    return apply(s, &(tg_attrs){.dtype = d}, x, 1);
}

/* ---- activations ------------------------------------------------------------------------------- */
static tg_tensor *s_alpha(tg_sample *s, tg_tensor *const *x)
{
    return apply(s, &(tg_attrs){.alpha = 0.05 + tg_sample_byte(s) / 200.0}, x, 1);
}

static tg_tensor *s_gelu(tg_sample *s, tg_tensor *const *x)
{
    return apply(s, &(tg_attrs){.approximate = tg_sample_byte(s) & 1}, x, 1);
}

/* relu6 (kinks at 0 and 6) and hard_sigmoid (at -3 and 3). */
static tg_tensor *s_bounded(tg_sample *s, tg_tensor *const *x)
{
    bool relu6 = s->op == TG_OP_RELU6;
    s->lo = relu6 ? 0 : -3;
    s->hi = relu6 ? 6 : 3;
    return apply(s, &(tg_attrs){0}, x, 1);
}

static tg_tensor *s_silu(tg_sample *s, tg_tensor *const *x)
{
    return apply(s, &(tg_attrs){.beta = 0.5 + tg_sample_byte(s) / 128.0}, x, 1);
}

/* One axis, from the front or (negative) from the back: softmax, argmax. */
static tg_tensor *s_axis(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int r = tg_rank(a), b = (int)tg_sample_byte(s), axis = b % r;
    return apply(s, &(tg_attrs){.axis = b & 64 ? axis - r : axis}, &a, 1);
}

/* ---- reductions ---------------------------------------------------------------------------------- */
static tg_tensor *s_reduce(tg_sample *s, tg_tensor *const *x)
{
    unsigned mask = tg_sample_byte(s), flags = tg_sample_byte(s);
    int r = tg_rank(x[0]);
    tg_attrs a = {.reduce.keepdims = flags & 1};
    for (int k = 0; k < r; k++)
        if (mask >> k & 1)
            a.reduce.axes[a.reduce.n++] = k;
    if (a.reduce.n == 0) /* every axis, as the public functions' empty list */
        for (int k = 0; k < r; k++)
            a.reduce.axes[a.reduce.n++] = k;
    return apply(s, &a, x, 1);
}

/* ---- linear algebra and shapes ------------------------------------------------------------------------ */
static tg_tensor *s_matmul(tg_sample *s, tg_tensor *const *x)
{
    int64_t m = 1 + tg_sample_byte(s) % 3, k = 1 + tg_sample_byte(s) % 3, n = 1 + tg_sample_byte(s) % 3;
    unsigned f = tg_sample_byte(s);
    bool ta = f & 1, tb = f & 2, batch = f & 4;
    tg_shape as = ta ? TG_SHAPE(k, m) : TG_SHAPE(m, k), bs = tb ? TG_SHAPE(n, k) : TG_SHAPE(k, n);
    if (batch)
        as = ta ? TG_SHAPE(2, k, m) : TG_SHAPE(2, m, k);
    tg_tensor *a = tg_sample_fit(x[0], as), *b = tg_sample_fit(x[1], bs);
    use(s, a);
    use(s, b);
    return tg_matmul_at(LOC, a, b, (tg_matmul_opts){.transpose_a = ta, .transpose_b = tb});
}

/* inv, det, slogdet (log|det|) of n x n matrices, one or a batch of 2, plus 4 I: away from
 * singular for operands of moderate size (a singular one is refused by inv: skipped). */
static tg_tensor *s_linalg(tg_sample *s, tg_tensor *const *x)
{
    int64_t n = 1 + tg_sample_byte(s) % 3;
    bool batch = tg_sample_byte(s) & 1;
    tg_tensor *a = tg_sample_fit(x[0], batch ? TG_SHAPE(2, n, n) : TG_SHAPE(n, n));
    use(s, a);
    a = tg_add_at(LOC, a, tg_mul_at(LOC, tg_eye_at(LOC, TG_F64, n), tg_scalar_like_at(LOC, a, 4)));
    if (s->op == TG_OP_LINALG_SLOGDET) {
        tg_tensor *out[2];
        return tg_linalg_slogdet_at(LOC, a, out) == 0 ? out[1] : NULL;
    }
    return s->op == TG_OP_LINALG_INV ? tg_linalg_inv_at(LOC, a) : tg_linalg_det_at(LOC, a);
}

static tg_tensor *s_reshape(tg_sample *s, tg_tensor *const *x)
{
    int64_t n = tg_size(x[0]);
    unsigned b = tg_sample_byte(s) % 3;
    use(s, x[0]);
    return tg_reshape_at(LOC, x[0], b == 0 ? TG_SHAPE(n) : b == 1 ? TG_SHAPE(1, n) : TG_SHAPE(n, -1));
}

static tg_tensor *s_transpose(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = tg_rank(x[0]) >= 2 ? x[0] : tg_sample_fit(x[0], TG_SHAPE(2, 3));
    tg_axes perm = {0};
    if (tg_sample_byte(s) & 1) { /* a rotation; else the reversal (the empty list) */
        perm.n = tg_rank(a);
        for (int i = 0; i < perm.n; i++)
            perm.axis[i] = (i + 1) % perm.n;
    }
    use(s, a);
    return tg_transpose_at(LOC, a, perm);
}

static tg_tensor *s_broadcast(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = room_for_an_axis(x[0]);
    tg_shape to = shape_of(a);
    memmove(to.dims + 1, to.dims, sizeof(int64_t) * (size_t)to.rank);
    to.dims[0] = 1 + tg_sample_byte(s) % 3;
    to.rank++;
    use(s, a);
    return tg_broadcast_to_at(LOC, a, to);
}

static tg_tensor *s_concat(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int axis = (int)(tg_sample_byte(s) % (unsigned)tg_rank(a));
    tg_shape bs = shape_of(a);
    bs.dims[axis] = 1 + tg_sample_byte(s) % 3;
    tg_tensor *b = tg_sample_fit(x[1], bs);
    use(s, a);
    use(s, b);
    return tg_concat_at(LOC, (tg_tensor *[]){a, b}, 2, axis);
}

static tg_tensor *s_stack(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = room_for_an_axis(x[0]), *b = tg_sample_fit(x[1], shape_of(a));
    int axis = (int)(tg_sample_byte(s) % (unsigned)(tg_rank(a) + 1));
    use(s, a);
    use(s, b);
    return tg_stack_at(LOC, (tg_tensor *[]){a, b}, 2, axis);
}

/* The pieces of a multi-output op joined back into one output that depends on each,
 * piece k scaled by k + 1 so that a gradient sent to the wrong piece shows. */
static tg_tensor *join_pieces(tg_tensor **piece, int n, int axis, bool stacking)
{
    for (int k = 0; k < n; k++)
        piece[k] = tg_mul_at(LOC, piece[k], tg_scalar_like_at(LOC, piece[k], k + 1));
    return stacking ? tg_stack_at(LOC, piece, n, axis) : tg_concat_at(LOC, piece, n, axis);
}

/* Equal pieces, or the first n - 1 of a given length and the last what is left. */
static tg_tensor *s_split(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]), *piece[3];
    if (!a)
        return NULL;
    int axis = (int)(tg_sample_byte(s) % (unsigned)tg_rank(a)), n = 1 + (int)(tg_sample_byte(s) % 3);
    int64_t len = tg_shape_of(a).dims[axis], sizes[3] = {len / n, len / n, -1};
    sizes[n - 1] = -1;
    use(s, a);
    bool equal = len % n == 0 && tg_sample_byte(s) % 2;
    if (tg_split_at(LOC, a, n, piece, (tg_split_opts){.axis = axis, .sizes = equal ? NULL : sizes}) != 0)
        return NULL;
    return join_pieces(piece, n, axis, false);
}

static tg_tensor *s_unstack(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    if (!a)
        return NULL;
    int axis = (int)(tg_sample_byte(s) % (unsigned)tg_rank(a));
    int64_t n = tg_shape_of(a).dims[axis];
    if (n < 1 || n > 8) { /* too long to join back piece by piece: a short vector instead */
        a = tg_sample_fit(a, TG_SHAPE(1 + tg_sample_byte(s) % 4));
        axis = 0;
        n = a ? tg_shape_of(a).dims[0] : 0;
    }
    tg_tensor *piece[8];
    use(s, a);
    if (!a || tg_unstack_at(LOC, a, (int)n, piece, axis) != 0)
        return NULL;
    return join_pieces(piece, (int)n, axis, true);
}

static tg_tensor *s_slice(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    tg_shape as = shape_of(a), begin = {.rank = as.rank}, size = {.rank = as.rank};
    for (int i = 0; i < as.rank; i++) {
        begin.dims[i] = tg_sample_byte(s) % (unsigned)as.dims[i];
        size.dims[i] = 1 + tg_sample_byte(s) % (unsigned)(as.dims[i] - begin.dims[i]);
    }
    use(s, a);
    return tg_slice_at(LOC, a, begin, size);
}

static tg_tensor *s_gather(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int axis = (int)(tg_sample_byte(s) % (unsigned)tg_rank(a));
    tg_tensor *idx = indices(s, 1 + tg_sample_byte(s) % 4, 0, tg_dim(a, axis));
    use(s, a);
    return tg_gather_at(LOC, a, idx, axis);
}

/* Rows of updates added into a [rows, k] output (repeated indices add up). */
static tg_tensor *s_scatter_add(tg_sample *s, tg_tensor *const *x)
{
    int64_t rows = 1 + tg_sample_byte(s) % 4, k = 1 + tg_sample_byte(s) % 3, m = 1 + tg_sample_byte(s) % 4;
    tg_tensor *idx = indices(s, m, 0, rows), *upd = tg_sample_fit(x[0], TG_SHAPE(m, k));
    use(s, upd);
    return tg_scatter_add_at(LOC, idx, upd, TG_SHAPE(rows, k), 0);
}

/* Indices one past either end give rows of zeros. */
static tg_tensor *s_one_hot(tg_sample *s, tg_tensor *const *x)
{
    (void)x;
    int64_t depth = 1 + tg_sample_byte(s) % 4;
    return tg_one_hot_at(LOC, indices(s, 1 + tg_sample_byte(s) % 4, -1, depth + 2), depth);
}

static tg_tensor *s_pad(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    tg_shape before = {.rank = tg_rank(a)}, after = before;
    for (int i = 0; i < before.rank; i++) {
        before.dims[i] = tg_sample_byte(s) % 3;
        after.dims[i] = tg_sample_byte(s) % 3;
    }
    use(s, a);
    return tg_pad_at(LOC, a, before, after, tg_sample_byte(s) / 64.0 - 2);
}

/* ---- windows: patches and pools ------------------------------------------------------------------- */
typedef struct geometry {
    int64_t h, w, c, kh, kw, sh, sw;
    tg_padding pad;
    int64_t dh, dw; /* the patches' dilations (1 for the pools) */
} geometry;

/* A small image [1, h, w, c] and a window that fits it. */
static geometry pick_window(tg_sample *s)
{
    geometry g = {.h = 2 + tg_sample_byte(s) % 3, .w = 2 + tg_sample_byte(s) % 3, .c = 1 + tg_sample_byte(s) % 2};
    unsigned b = tg_sample_byte(s);
    g.kh = 1 + b % 2;
    g.kw = 1 + (b >> 1) % 3;
    g.kw = g.kw > g.w ? g.w : g.kw;
    g.sh = 1 + (b >> 3) % 2;
    g.sw = 1 + (b >> 4) % 2;
    g.pad = b & 64 ? TG_PADDING_SAME : TG_PADDING_VALID;
    g.dh = g.dw = 1;
    return g;
}

/* pick_window, sometimes dilated by 2 (strides 1 only, and a window that still fits). */
static geometry pick_dilated_window(tg_sample *s)
{
    geometry g = pick_window(s);
    if (g.sh == 1 && g.sw == 1 && tg_sample_byte(s) & 1) {
        bool same = g.pad == TG_PADDING_SAME;
        g.dh = same || 2 * (g.kh - 1) + 1 <= g.h ? 2 : 1;
        g.dw = same || 2 * (g.kw - 1) + 1 <= g.w ? 2 : 1;
    }
    return g;
}

static tg_conv2d_opts dilated_opts(const geometry *g)
{
    return (tg_conv2d_opts){.strides = {g->sh, g->sw}, .padding = g->pad, .dilations = {g->dh, g->dw}};
}

static tg_shape image(const geometry *g) { return TG_SHAPE(1, g->h, g->w, g->c); }

static tg_attrs window_attrs(const geometry *g)
{
    return (tg_attrs){.window = {.kh = g->kh,
                                 .kw = g->kw,
                                 .stride_h = g->sh,
                                 .stride_w = g->sw,
                                 .height = g->h,
                                 .width = g->w,
                                 .same = g->pad == TG_PADDING_SAME}};
}

static tg_pool2d_opts pool_opts(const geometry *g)
{
    return (tg_pool2d_opts){.pool_size = {g->kh, g->kw}, .strides = {g->sh, g->sw}, .padding = g->pad};
}

static tg_tensor *s_patches(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_dilated_window(s);
    tg_tensor *img = tg_sample_fit(x[0], image(&g));
    use(s, img);
    return tg_extract_patches_dilated_at(LOC, img, g.kh, g.kw, dilated_opts(&g));
}

static tg_tensor *s_patches_to_image(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_dilated_window(s);
    tg_tensor *like = tg_extract_patches_dilated_at(LOC, tg_zeros(TG_F64, image(&g)), g.kh, g.kw, dilated_opts(&g));
    tg_tensor *p = like ? tg_sample_fit(x[0], shape_of(like)) : NULL;
    use(s, p);
    return tg_patches_to_image_dilated_at(LOC, p, g.h, g.w, g.kh, g.kw, dilated_opts(&g));
}

/* conv2d and its adjoints in x and in the kernel, on a picked window with 1 or 2 filters. */
static tg_tensor *s_conv(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_dilated_window(s);
    tg_conv2d_opts o = dilated_opts(&g);
    tg_tensor *p = tg_extract_patches_dilated_at(LOC, tg_zeros(TG_F64, image(&g)), g.kh, g.kw, o);
    if (!p)
        return NULL;
    int64_t f = 1 + tg_sample_byte(s) % 2;
    tg_shape dys = TG_SHAPE(1, shape_of(p).dims[1], shape_of(p).dims[2], f), ks = TG_SHAPE(g.kh, g.kw, g.c, f);
    bool grad_in = s->op == TG_OP_CONV2D_BACKPROP_INPUT, grad_k = s->op == TG_OP_CONV2D_BACKPROP_FILTER;
    tg_tensor *a = tg_sample_fit(x[0], grad_in ? dys : image(&g)), *b = tg_sample_fit(x[1], grad_k ? dys : ks);
    use(s, a);
    use(s, b);
    if (grad_in)
        return tg_conv2d_backprop_input_at(LOC, a, b, g.h, g.w, o);
    return grad_k ? tg_conv2d_backprop_filter_at(LOC, a, b, g.kh, g.kw, o) : tg_conv2d_at(LOC, a, b, o);
}

/* conv2d_bias_act: s_conv's forward with a bias of its 1 or 2 filters and a picked activation. */
static tg_tensor *s_conv_bias_act(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_dilated_window(s);
    int64_t f = 1 + tg_sample_byte(s) % 2;
    int act = (int)(tg_sample_byte(s) % 4);
    tg_tensor *img = tg_sample_fit(x[0], image(&g)), *k = tg_sample_fit(x[1], TG_SHAPE(g.kh, g.kw, g.c, f)),
              *b = tg_sample_fit(x[2], TG_SHAPE(f));
    use(s, img);
    use(s, k);
    use(s, b);
    s->kinks = 0; /* relu's kink is at conv2d + b = 0, not at the operands */
    if (act == TG_BIAS_RELU)
        zero_kink(s, tg_conv2d_bias_act_at(LOC, img, k, b, TG_BIAS_LINEAR, dilated_opts(&g)));
    return tg_conv2d_bias_act_at(LOC, img, k, b, (tg_bias_act)act, dilated_opts(&g));
}

static tg_tensor *s_pool(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_window(s);
    tg_tensor *img = tg_sample_fit(x[0], image(&g));
    use(s, img);
    return s->op == TG_OP_MAX_POOL2D ? tg_max_pool2d_at(LOC, img, pool_opts(&g))
                                     : tg_avg_pool2d_at(LOC, img, pool_opts(&g));
}

/* max_pool2d_grad(x, y, d) and max_pool2d_gather(x, y, h), with y = max_pool2d(x): the
 * ties are x's, so only x is looked at for kinks. */
static tg_tensor *s_max_pool_adjoint(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_window(s);
    tg_tensor *img = tg_sample_fit(x[0], image(&g));
    tg_tensor *y = tg_max_pool2d_at(LOC, img, pool_opts(&g));
    if (!y)
        return NULL;
    bool grad = s->op == TG_OP_MAX_POOL2D_GRAD;
    tg_tensor *d = tg_sample_fit(x[1], grad ? shape_of(y) : image(&g));
    tg_attrs a = window_attrs(&g);
    use(s, img);
    return d ? tg__apply(LOC, s->op, (const tg_tensor *const[]){img, y, d}, 3, &a) : NULL;
}

static tg_tensor *s_avg_pool_grad(tg_sample *s, tg_tensor *const *x)
{
    geometry g = pick_window(s);
    tg_tensor *y = tg_avg_pool2d_at(LOC, tg_zeros(TG_F64, image(&g)), pool_opts(&g));
    tg_tensor *d = y ? tg_sample_fit(x[0], shape_of(y)) : NULL;
    tg_attrs a = window_attrs(&g);
    return apply(s, &a, &d, 1);
}

/* ---- resize.c: a small image and a size, either method ------------------------------------------- */
static tg_tensor *s_resize(tg_sample *s, tg_tensor *const *x)
{
    unsigned b = tg_sample_byte(s);
    int64_t h = 1 + b % 3, w = 1 + (b >> 2) % 3, oh = 1 + (b >> 4) % 4, ow = 1 + tg_sample_byte(s) % 4;
    tg_attrs a = {.resize = {.method = b & 64 ? TG_RESIZE_NEAREST : TG_RESIZE_BILINEAR}};
    bool grad = s->op == TG_OP_RESIZE_GRAD;
    a.resize.height = grad ? h : oh;
    a.resize.width = grad ? w : ow;
    tg_tensor *img = tg_sample_fit(x[0], grad ? TG_SHAPE(1, oh, ow, 1) : TG_SHAPE(1, h, w, 1));
    return apply(s, &a, &img, 1);
}

/* ---- fused ---------------------------------------------------------------------------------------- */
static tg_tensor *s_bias_add_act(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    tg_tensor *b = tg_sample_fit(x[1], TG_SHAPE(tg_dim(a, tg_rank(a) - 1)));
    tg_bias_act act = (tg_bias_act)(tg_sample_byte(s) % 4);
    s->kinks = 0; /* relu's kink is at a + b = 0, not at a or b */
    if (act == TG_BIAS_RELU)
        zero_kink(s, tg_add_at(LOC, a, b));
    return tg_bias_add_act_at(LOC, a, b, act);
}

static tg_tensor *s_act_grad(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *d = tg_sample_fit(x[1], shape_of(x[0]));
    int act = (int)(tg_sample_byte(s) % 4);
    s->kinks = 0;
    if (act == TG_BIAS_RELU)
        zero_kink(s, x[0]);
    return apply(s, &(tg_attrs){.act = act}, (tg_tensor *[]){x[0], d}, 2);
}

/* dz seen as [rows, last] with db under it as one more row. */
static tg_tensor *s_act_grad_bias_sum(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *y = with_axis(x[0]), *d = y ? tg_sample_fit(x[1], shape_of(y)) : NULL, *out[2];
    int act = (int)(tg_sample_byte(s) % 4);
    s->kinks = 0;
    if (!y || !d)
        return NULL;
    if (act == TG_BIAS_RELU)
        zero_kink(s, y);
    use(s, y);
    use(s, d);
    const tg_tensor *in[] = {y, d};
    if (tg__apply_n(LOC, s->op, in, 2, &(tg_attrs){.act = act}, 2, out) != 0)
        return NULL;
    int64_t last = shape_of(y).dims[tg_rank(y) - 1], rows = last ? tg_size(y) / last : 0;
    out[0] = tg_reshape_at(LOC, out[0], TG_SHAPE(rows, last));
    out[1] = tg_reshape_at(LOC, out[1], TG_SHAPE(1, last));
    return join_pieces(out, 2, 0, false);
}

static tg_tensor *sparse_labels(tg_sample *s, int64_t rows, int64_t classes) { return indices(s, rows, 0, classes); }

static tg_tensor *s_xent(tg_sample *s, tg_tensor *const *x)
{
    int64_t r = 1 + tg_sample_byte(s) % 3, c = 2 + tg_sample_byte(s) % 3;
    tg_tensor *z = tg_sample_fit(x[0], TG_SHAPE(r, c));
    use(s, z);
    if (s->op == TG_OP_SPARSE_SOFTMAX_XENT)
        return tg_sparse_softmax_cross_entropy_with_logits_at(LOC, sparse_labels(s, r, c), z);
    tg_tensor *labels = tg_sample_fit(x[1], TG_SHAPE(r, c));
    use(s, labels);
    return tg_softmax_cross_entropy_with_logits_at(LOC, labels, z);
}

static tg_tensor *s_xent_grad(tg_sample *s, tg_tensor *const *x)
{
    int64_t r = 1 + tg_sample_byte(s) % 3, c = 2 + tg_sample_byte(s) % 3;
    tg_tensor *z = tg_sample_fit(x[0], TG_SHAPE(r, c)), *dy = tg_sample_fit(x[2], TG_SHAPE(r));
    tg_tensor *labels = tg_sample_byte(s) & 1 ? sparse_labels(s, r, c) : tg_sample_fit(x[1], TG_SHAPE(r, c));
    return apply(s, &(tg_attrs){0}, (tg_tensor *[]){labels, z, dy}, 3);
}

/* ---- custom gradients and check_numerics --------------------------------------------------------------- */
static tg_tensor *square_forward(tg_tensor *const *in, int n, void *user)
{
    (void)n;
    (void)user;
    return tg_mul_at(LOC, in[0], in[0]);
}

static int square_backward(const tg_tensor *dy, tg_tensor *const *in, int n, const tg_tensor *out, tg_tensor **dx,
                           void *user)
{
    (void)n;
    (void)out;
    (void)user;
    dx[0] = tg_mul_at(LOC, tg_mul_at(LOC, dy, in[0]), tg_scalar_like_at(LOC, in[0], 2));
    return dx[0] ? 0 : -1;
}

static tg_tensor *s_custom(tg_sample *s, tg_tensor *const *x)
{
    use(s, x[0]);
    return tg_custom_gradient_at(LOC, x, 1, square_forward, square_backward, NULL);
}

static tg_tensor *s_check_numerics(tg_sample *s, tg_tensor *const *x)
{
    use(s, x[0]);
    return tg_check_numerics_at(LOC, x[0], "sampled");
}

/* ---- products, scans, ranking (scan.c) and index moves (index.c) ---------------------------------------- */
/* reduce_any and reduce_all: x > 0 reduced over sampled axes. */
static tg_tensor *s_logical_reduce(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *b = positive_part(s, x[0]);
    return b ? s_reduce(s, &b) : NULL;
}

static tg_tensor *s_scan(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int r = tg_rank(a), b = (int)tg_sample_byte(s), axis = b % r;
    tg_attrs at = {.scan = {.axis = b & 64 ? axis - r : axis, .exclusive = b & 32, .reverse = b & 16}};
    return apply(s, &at, &a, 1);
}

/* Values and (as float64 constants) indices joined along the last axis. */
static tg_tensor *s_top_k(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]), *out[2];
    if (!a)
        return NULL;
    int64_t n = tg_dim(a, tg_rank(a) - 1), k = 1 + (int64_t)(tg_sample_byte(s) % (unsigned)n);
    use(s, a);
    if (tg_top_k_at(LOC, a, k, out, (tg_top_k_opts){.sorted = tg_sample_byte(s) & 1}) != 0)
        return NULL;
    out[1] = tg_cast_at(LOC, out[1], tg_dtype_of(out[0]));
    return join_pieces(out, 2, tg_rank(a) - 1, false);
}

/* One axis tiled 2 or 3 times, the others once. */
static tg_tensor *s_tile(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    tg_shape m = {.rank = tg_rank(a)};
    for (int i = 0; i < m.rank; i++)
        m.dims[i] = 1;
    m.dims[tg_sample_byte(s) % (unsigned)m.rank] = 2 + tg_sample_byte(s) % 2;
    use(s, a);
    return tg_tile_at(LOC, a, m);
}

static tg_tensor *s_reverse(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    unsigned mask = tg_sample_byte(s);
    tg_axes axes = {0};
    for (int i = 0; i < tg_rank(a); i++)
        if (mask >> i & 1)
            axes.axis[axes.n++] = mask & 128 ? i - tg_rank(a) : i;
    use(s, a);
    return tg_reverse_at(LOC, a, axes);
}

/* One or two shifts, either sign, possibly of one axis twice. */
static tg_tensor *s_roll(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int r = tg_rank(a), n = 1 + (int)(tg_sample_byte(s) % 2);
    tg_shape shift = {.rank = n};
    tg_axes axes = {.n = n};
    for (int k = 0; k < n; k++) {
        shift.dims[k] = (int64_t)(tg_sample_byte(s) % 7) - 3;
        axes.axis[k] = (int)(tg_sample_byte(s) % (unsigned)r);
    }
    use(s, a);
    return tg_roll_at(LOC, a, shift, axes);
}

/* Each axis mirrored by up to 2 (within what the mode allows). */
static tg_tensor *s_mirror_pad(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    bool sym = tg_sample_byte(s) & 1;
    tg_shape before = {.rank = tg_rank(a)}, after = before;
    for (int i = 0; i < before.rank; i++) {
        unsigned most = (unsigned)(tg_dim(a, i) - (sym ? 0 : 1));
        most = most > 2 ? 2 : most;
        before.dims[i] = tg_sample_byte(s) % (most + 1);
        after.dims[i] = tg_sample_byte(s) % (most + 1);
    }
    use(s, a);
    return tg_mirror_pad_at(LOC, a, before, after, sym ? TG_MIRROR_SYMMETRIC : TG_MIRROR_REFLECT);
}

/* 1 to 3 index tuples of length 1 to rank (repeats possible). */
static tg_tensor *s_gather_nd(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int r = tg_rank(a), d = 1 + (int)(tg_sample_byte(s) % (unsigned)r), m = 1 + (int)(tg_sample_byte(s) % 3);
    int64_t v[3 * TG_MAX_RANK];
    for (int t = 0; t < m; t++)
        for (int k = 0; k < d; k++)
            v[t * d + k] = (int64_t)(tg_sample_byte(s) % (unsigned)tg_dim(a, k));
    use(s, a);
    return tg_gather_nd_at(LOC, a, tg_tensor_from_at(LOC, TG_I64, TG_SHAPE(m, d), v), (tg_gather_nd_opts){0});
}

/* Into [rows, k]: tuples of length 1 (rows of updates) or 2 (single elements). */
static tg_tensor *s_scatter_nd(tg_sample *s, tg_tensor *const *x)
{
    int64_t rows = 1 + tg_sample_byte(s) % 4, k = 1 + tg_sample_byte(s) % 3, m = 1 + tg_sample_byte(s) % 4;
    int d = 1 + (int)(tg_sample_byte(s) % 2);
    int64_t v[8];
    for (int64_t t = 0; t < m; t++) {
        v[t * d] = (int64_t)(tg_sample_byte(s) % (unsigned)rows);
        if (d == 2)
            v[t * d + 1] = (int64_t)(tg_sample_byte(s) % (unsigned)k);
    }
    tg_tensor *upd = tg_sample_fit(x[0], d == 1 ? TG_SHAPE(m, k) : TG_SHAPE(m));
    use(s, upd);
    return tg_scatter_nd_at(LOC, tg_tensor_from_at(LOC, TG_I64, TG_SHAPE(m, d), v), upd, TG_SHAPE(rows, k));
}

/* Rows of x (its first axis) into 1 to 3 segments; id -1 drops a row. */
static tg_tensor *s_segment(tg_sample *s, tg_tensor *const *x)
{
    tg_tensor *a = with_axis(x[0]);
    int64_t rows = tg_dim(a, 0), n = 1 + tg_sample_byte(s) % 3, v[64];
    if (rows > 64)
        return NULL;
    for (int64_t i = 0; i < rows; i++)
        v[i] = (int64_t)(tg_sample_byte(s) % (unsigned)(n + 1)) - 1;
    tg_tensor *ids = tg_tensor_from_at(LOC, TG_I64, TG_SHAPE(rows), v);
    if (tg_sample_byte(s) & 1)
        ids = tg_cast_at(LOC, ids, TG_I32);
    return apply(s, &(tg_attrs){.num_segments = n}, (tg_tensor *[]){a, ids}, 2);
}

/* ---- the LSTM cell --------------------------------------------------------------------------------- */
/* a (rows, 4 units) from x[0], b from x[1], c_prev (rows, units) from x[2]; h and c joined. */
static tg_tensor *s_lstm_cell(tg_sample *s, tg_tensor *const *x)
{
    int64_t r = 1 + tg_sample_byte(s) % 2, u = 1 + tg_sample_byte(s) % 2;
    tg_tensor *a = tg_sample_fit(x[0], TG_SHAPE(r, 4 * u)), *b = tg_sample_fit(x[1], TG_SHAPE(r, 4 * u));
    tg_tensor *cp = tg_sample_fit(x[2], TG_SHAPE(r, u)), *out[2];
    if (!a || !b || !cp)
        return NULL;
    use(s, a);
    use(s, b);
    use(s, cp);
    return tg_lstm_cell_at(LOC, a, b, cp, out) == 0 ? join_pieces(out, 2, 1, false) : NULL;
}

/* a from x[0], b = a / 3; c_prev and c from x[1]; dh from x[2], dc = dh / 2; dz and
 * dc_prev joined. */
static tg_tensor *s_lstm_cell_grad(tg_sample *s, tg_tensor *const *x)
{
    int64_t r = 1 + tg_sample_byte(s) % 2, u = 1 + tg_sample_byte(s) % 2;
    tg_tensor *a = tg_sample_fit(x[0], TG_SHAPE(r, 4 * u)), *cp = tg_sample_fit(x[1], TG_SHAPE(r, u));
    tg_tensor *dh = tg_sample_fit(x[2], TG_SHAPE(r, u)), *out[2];
    if (!a || !cp || !dh)
        return NULL;
    tg_tensor *b = tg_mul_at(LOC, a, tg_scalar_like_at(LOC, a, 1.0 / 3));
    tg_tensor *c = tg_mul_at(LOC, cp, tg_scalar_like_at(LOC, cp, 0.7));
    tg_tensor *dc = tg_mul_at(LOC, dh, tg_scalar_like_at(LOC, dh, 0.5));
    const tg_tensor *in[] = {a, b, cp, c, dh, dc};
    use(s, a);
    use(s, cp);
    use(s, dh);
    return tg__apply_n(LOC, TG_OP_LSTM_CELL_GRAD, in, 6, NULL, 2, out) == 0 ? join_pieces(out, 2, 1, false) : NULL;
}

/* lstm_sequence: xw (steps, rows, 4 units) from x[0], u from x[1], h0 from x[2], c0 = h0 / 2;
 * hs, cs and gates flattened and joined. */
static tg_tensor *flat(tg_tensor *t) { return tg_reshape_at(LOC, t, TG_SHAPE(tg_size(t))); }

static tg_tensor *s_lstm_sequence(tg_sample *s, tg_tensor *const *x)
{
    int64_t r = 1 + tg_sample_byte(s) % 2, t = 1 + tg_sample_byte(s) % 3, u = 1 + tg_sample_byte(s) % 2;
    tg_tensor *xw = tg_sample_fit(x[0], TG_SHAPE(t, r, 4 * u)), *w = tg_sample_fit(x[1], TG_SHAPE(u, 4 * u));
    tg_tensor *h0 = tg_sample_fit(x[2], TG_SHAPE(r, u)), *out[3];
    if (!xw || !w || !h0)
        return NULL;
    use(s, xw);
    use(s, w);
    use(s, h0);
    if (tg_lstm_sequence_at(LOC, xw, w, h0, tg_mul_at(LOC, h0, tg_scalar_like_at(LOC, h0, 0.5)), out) != 0)
        return NULL;
    tg_tensor *pieces[3] = {flat(out[0]), flat(out[1]), flat(out[2])};
    return join_pieces(pieces, 3, 0, false);
}

/* lstm_sequence_grad (time-major): u from x[0]; hs from x[1], h0 = c0 from x[1] too, cs = hs / 2;
 * gates from x[0]; dhs from x[2], dcs = dhs / 2, dgates from x[2]; the four results
 * flattened and joined. */
static tg_tensor *s_lstm_sequence_grad(tg_sample *s, tg_tensor *const *x)
{
    int64_t r = 1 + tg_sample_byte(s) % 2, t = 1 + tg_sample_byte(s) % 3, u = 1 + tg_sample_byte(s) % 2;
    tg_tensor *w = tg_sample_fit(x[0], TG_SHAPE(u, 4 * u)), *g = tg_sample_fit(x[0], TG_SHAPE(t, r, 4 * u));
    tg_tensor *hs = tg_sample_fit(x[1], TG_SHAPE(t, r, u)), *h0 = tg_sample_fit(x[1], TG_SHAPE(r, u));
    tg_tensor *dhs = tg_sample_fit(x[2], TG_SHAPE(t, r, u)), *dg = tg_sample_fit(x[2], TG_SHAPE(t, r, 4 * u)), *out[4];
    if (!w || !g || !hs || !h0 || !dhs || !dg)
        return NULL;
    use(s, w);
    use(s, hs);
    use(s, dhs);
    const tg_tensor *in[] = {w,
                             h0,
                             h0,
                             hs,
                             tg_mul_at(LOC, hs, tg_scalar_like_at(LOC, hs, 0.5)),
                             g,
                             dhs,
                             tg_mul_at(LOC, dhs, tg_scalar_like_at(LOC, dhs, 0.5)),
                             dg};
    if (tg__apply_n(LOC, TG_OP_LSTM_SEQUENCE_GRAD, in, 9, NULL, 4, out) != 0)
        return NULL;
    tg_tensor *pieces[4] = {flat(out[0]), flat(out[1]), flat(out[2]), flat(out[3])};
    return join_pieces(pieces, 4, 0, false);
}

/* ---- the table ---------------------------------------------------------------------------------------- */
#define ROW(KIND, fn_, arity_, nan_) [TG_OP_##KIND] = {.fn = fn_, .arity = arity_, .nan_operands = nan_}
#define UNARY(KIND)                  ROW(KIND, s_unary, 1, 1)
#define BINARY(KIND)                 ROW(KIND, s_binary, 2, 3)
#define COMPARE(KIND)                ROW(KIND, s_binary, 2, 0) /* bool: NaN compares false (docs) */
const tg_op_sampler tg_op_samplers[TG_OP_COUNT] = {
    BINARY(ADD),
    BINARY(SUB),
    BINARY(MUL),
    BINARY(DIV),
    BINARY(POW),
    BINARY(MAXIMUM),
    BINARY(MINIMUM),
    COMPARE(EQUAL),
    COMPARE(NOT_EQUAL),
    COMPARE(GREATER),
    COMPARE(GREATER_EQUAL),
    COMPARE(LESS),
    COMPARE(LESS_EQUAL),
    ROW(LOGICAL_AND, s_logical, 2, 0),
    ROW(LOGICAL_OR, s_logical, 2, 0),
    ROW(LOGICAL_NOT, s_logical, 1, 0),
    ROW(WHERE, s_where, 3, 3), /* the condition's operand goes through x > 0 */
    UNARY(NEG),
    UNARY(ABS),
    UNARY(SQUARE),
    UNARY(SQRT),
    UNARY(RSQRT),
    UNARY(EXP),
    UNARY(LOG),
    UNARY(LOG1P),
    UNARY(ERF),
    UNARY(SIGN),
    UNARY(FLOOR),
    UNARY(CEIL),
    UNARY(ROUND),
    UNARY(IDENTITY),
    UNARY(STOP_GRADIENT),
    ROW(CLIP_BY_VALUE, s_clip, 1, 1),
    ROW(CAST, s_cast, 1, 0), /* cast: docs */
    UNARY(RELU),
    ROW(LEAKY_RELU, s_alpha, 1, 1),
    ROW(ELU, s_alpha, 1, 1),
    ROW(GELU, s_gelu, 1, 1),
    UNARY(SIGMOID),
    UNARY(TANH),
    UNARY(SOFTPLUS),
    ROW(SOFTMAX, s_axis, 1, 1),
    ROW(LOG_SOFTMAX, s_axis, 1, 1),
    ROW(SUM, s_reduce, 1, 1),
    ROW(MEAN, s_reduce, 1, 1),
    ROW(MAX, s_reduce, 1, 1),
    ROW(MIN, s_reduce, 1, 1),
    ROW(LOGSUMEXP, s_reduce, 1, 1),
    ROW(VARIANCE, s_reduce, 1, 1),
    ROW(ARGMAX, s_axis, 1, 0),
    ROW(ARGMIN, s_axis, 1, 0), /* indices: docs */
    ROW(MATMUL, s_matmul, 2, 3),
    ROW(LINALG_INV, s_linalg, 1, 1),
    ROW(LINALG_DET, s_linalg, 1, 1),
    ROW(LINALG_SLOGDET, s_linalg, 1, 1),
    ROW(RESHAPE, s_reshape, 1, 1),
    ROW(TRANSPOSE, s_transpose, 1, 1),
    ROW(BROADCAST_TO, s_broadcast, 1, 1),
    ROW(CONCAT, s_concat, 2, 3),
    ROW(STACK, s_stack, 2, 3),
    ROW(SPLIT, s_split, 1, 1),
    ROW(UNSTACK, s_unstack, 1, 1),
    ROW(SLICE, s_slice, 1, 1),
    ROW(GATHER, s_gather, 1, 1),
    ROW(SCATTER_ADD, s_scatter_add, 1, 1),
    ROW(ONE_HOT, s_one_hot, 0, 0),
    ROW(PAD, s_pad, 1, 1),
    ROW(EXTRACT_PATCHES, s_patches, 1, 1),
    ROW(PATCHES_TO_IMAGE, s_patches_to_image, 1, 1),
    ROW(CONV2D, s_conv, 2, 3),
    ROW(CONV2D_BACKPROP_INPUT, s_conv, 2, 3),
    ROW(CONV2D_BACKPROP_FILTER, s_conv, 2, 3),
    ROW(BIAS_ADD_ACT, s_bias_add_act, 2, 3),
    ROW(ACT_GRAD, s_act_grad, 2, 2), /* relu's backward sends 0 where y is NaN, as TF's ReluGrad */
    ROW(ACT_GRAD_BIAS_SUM, s_act_grad_bias_sum, 2, 2),
    ROW(SPARSE_SOFTMAX_XENT, s_xent, 1, 1),
    ROW(SOFTMAX_XENT, s_xent, 2, 3),
    ROW(XENT_GRAD, s_xent_grad, 3, 7),
    ROW(LSTM_CELL, s_lstm_cell, 3, 7),
    ROW(LSTM_CELL_GRAD, s_lstm_cell_grad, 3, 7),
    ROW(CONV2D_BIAS_ACT, s_conv_bias_act, 3, 7),
    ROW(LSTM_SEQUENCE, s_lstm_sequence, 3, 7),
    ROW(LSTM_SEQUENCE_GRAD, s_lstm_sequence_grad, 3, 7),
    ROW(MAX_POOL2D, s_pool, 1, 1),
    ROW(MAX_POOL2D_GRAD, s_max_pool_adjoint, 2, 2),
    ROW(MAX_POOL2D_GATHER, s_max_pool_adjoint, 2, 2),
    ROW(AVG_POOL2D, s_pool, 1, 1),
    ROW(AVG_POOL2D_GRAD, s_avg_pool_grad, 1, 1),
    ROW(RESIZE, s_resize, 1, 1),
    ROW(RESIZE_GRAD, s_resize, 1, 1),
    ROW(CUSTOM, s_custom, 1, 1),
    ROW(CHECK_NUMERICS, s_check_numerics, 1, 0), /* refuses NaN: its purpose */
    /* scan.c, index.c */
    ROW(REDUCE_PROD, s_reduce, 1, 1),
    ROW(REDUCE_ANY, s_logical_reduce, 1, 0),
    ROW(REDUCE_ALL, s_logical_reduce, 1, 0),
    ROW(CUMSUM, s_scan, 1, 1),
    ROW(CUMPROD, s_scan, 1, 1),
    ROW(TOP_K, s_top_k, 1, 0), /* a NaN moves to the front: docs */
    ROW(TILE, s_tile, 1, 1),
    ROW(REVERSE, s_reverse, 1, 1),
    ROW(ROLL, s_roll, 1, 1),
    ROW(MIRROR_PAD, s_mirror_pad, 1, 1),
    ROW(GATHER_ND, s_gather_nd, 1, 1),
    ROW(SCATTER_ND, s_scatter_nd, 1, 1),
    ROW(UNSORTED_SEGMENT_SUM, s_segment, 1, 1),
    ROW(UNSORTED_SEGMENT_MAX, s_segment, 1, 1),
    ROW(UNSORTED_SEGMENT_MIN, s_segment, 1, 1),
    ROW(UNSORTED_SEGMENT_PROD, s_segment, 1, 1),
    UNARY(SIN),
    UNARY(COS),
    UNARY(TAN),
    UNARY(ASIN),
    UNARY(ACOS),
    UNARY(ATAN),
    BINARY(ATAN2),
    UNARY(SINH),
    UNARY(COSH),
    UNARY(ASINH),
    UNARY(ACOSH),
    UNARY(ATANH),
    UNARY(RECIPROCAL),
    UNARY(EXPM1),
    BINARY(SQUARED_DIFFERENCE),
    ROW(FLOORMOD, s_quotient, 2, 3),
    ROW(FLOORDIV, s_quotient, 2, 3),
    ROW(TRUNCATEMOD, s_quotient, 2, 3),
    ROW(TRUNCATEDIV, s_truncatediv, 2, 0), /* integers: docs */
    BINARY(DIV_NO_NAN),
    BINARY(MUL_NO_NAN), /* b == 0 gives 0 even for a NaN a (docs); b is never 0 here */
    ROW(IS_NAN, s_unary, 1, 0),
    ROW(IS_INF, s_unary, 1, 0),
    ROW(IS_FINITE, s_unary, 1, 0), /* bool: docs */
    UNARY(LOG_SIGMOID),
    ROW(RELU6, s_bounded, 1, 1),
    UNARY(SELU),
    ROW(SILU, s_silu, 1, 1),
    ROW(HARD_SIGMOID, s_bounded, 1, 1),
    UNARY(SOFTSIGN),
};

tg_tensor *tg_sample_run(tg_sample *s, tg_tensor *const *x)
{
    const tg_op_sampler *r = s->op > TG_OP_NONE && s->op < TG_OP_COUNT ? &tg_op_samplers[s->op] : NULL;
    if (!r || !r->fn)
        return NULL;
    s->n_in = s->n_zero = 0;
    s->kinks = tg__op_table[s->op].kinks;
    s->lo = s->hi = 0;
    return r->fn(s, x);
}
