/* The op table, row by row (src/ops/ops.def, tg__op_table).
 *
 * Every row has cases below. A case calls the op through its public function (tg_add,
 * tg_conv2d...); the rows that no user calls directly (the backward ops act_grad,
 * xent_grad and the pools' gradients) are reached through the gradient of the public op
 * whose backward they are. For each case the test
 *   - checks that the call recorded the row's op: a tape watching the inputs holds a
 *     node of that op producing the case's output (the tape's own record, not a guess);
 *   - for a differentiable row (gradient RULE): compares the tape's gradient with float64
 *     central differences, the float32 forward with the float64 forward, and, where the
 *     row says TG_OPF_TWICE, the gradient of the gradient with finite differences of the
 *     first-order gradient;
 *   - for a row with no gradient: NONE cuts the path (no gradient, no error, and the
 *     diagnosis names the cut), ZERO gives zeros of the input's shape, STOP cuts it as
 *     stop_gradient.
 * Inputs are drawn from the row's domain (TG_DOMAIN_*), away from its kinks (TG_KINK_*):
 * values near 0 are pushed off 0, values that could tie are distinct by construction,
 * values near clip bounds are moved off them. The kinks themselves are checked by the
 * kink cases, against the values the rows document there (TensorFlow's).
 * Each row's dtypes column is checked: its forward accepts every dtype listed, and
 * refuses one that is not (an error naming the op, no crash).
 * A row with no case, or a differentiable row with kinks and no kink case, fails the
 * test with the row's name. The composites (conv2d, the losses...) have gradient cases too. */
#include "gradcheck.h"

#include "autodiff/tape_impl.h"

/* ---- what a case calls -------------------------------------------------------------------- */
typedef struct args {
    int axis;
    tg_axes axes;
    bool keepdims, flag; /* reductions; gelu's tanh form */
    bool ta, tb;         /* matmul's transposes */
    double lo, hi, alpha;
    int act;
    tg_padding pad;
    int64_t kh, kw, sh, sw; /* a window */
    int64_t depth;          /* one_hot */
    tg_shape s1, s2;        /* a target shape, slice begin/size, pad before/after; s2: the indices' shape */
    int64_t idx[12];        /* integer indices or labels, n_idx of them */
    int n_idx;
    tg_dtype dtype;
    tg_loss loss;
    int pieces, piece;       /* split, unstack: how many outputs, and the one a case returns */
    bool exclusive, reverse; /* cumsum, cumprod */
    int mode;                /* sort's direction, norm's ord, mirror_pad's mode */
    int64_t k;               /* top_k's k, the segments' count */
    int64_t dh, dw;          /* the convolution family: dilations */
    int n_dot;               /* tensordot's axes as an int; axes and axes_b as lists */
    tg_axes axes_b;
    const char *eq; /* einsum's equation */
} args;

#define A(...) (&(args){__VA_ARGS__})
#define UNUSED (void)n, (void)u
#define ARGS           \
    const args *a = u; \
    UNUSED

static tg_tensor *index_tensor(const args *a, tg_shape shape) { return tg_tensor_from(TG_I64, shape, a->idx); }

/* The gradient of `target` with respect to `source`, seeded with `seed`, from a tape of its own. */
#define SEEDED_GRADIENT(target_expr, source, seed, result)                                                   \
    do {                                                                                                     \
        tg_tape *t_ = tg_tape_begin();                                                                       \
        tg_watch(t_, source);                                                                                \
        tg_tensor *y_ = (target_expr);                                                                       \
        tg_tape_end(t_);                                                                                     \
        tg_tensor *g_[1] = {0};                                                                              \
        tg_gradients(t_, .targets = &y_, .n_targets = 1, .sources = (tg_tensor *[]){source}, .n_sources = 1, \
                     .output_gradients = (tg_tensor *[]){seed}, .out = g_);                                  \
        tg_tape_free(t_);                                                                                    \
        result = g_[0];                                                                                      \
    } while (0)

/* element-wise */
static tg_tensor *f_add(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_add(x[0], x[1]);
}
static tg_tensor *f_sub(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_sub(x[0], x[1]);
}
static tg_tensor *f_mul(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_mul(x[0], x[1]);
}
static tg_tensor *f_div(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_div(x[0], x[1]);
}
static tg_tensor *f_pow(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_pow(x[0], x[1]);
}
static tg_tensor *f_maximum(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_maximum(x[0], x[1]);
}
static tg_tensor *f_minimum(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_minimum(x[0], x[1]);
}
static tg_tensor *f_equal(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_equal(x[0], x[1]);
}
static tg_tensor *f_not_equal(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_not_equal(x[0], x[1]);
}
static tg_tensor *f_greater(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_greater(x[0], x[1]);
}
static tg_tensor *f_greater_equal(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_greater_equal(x[0], x[1]);
}
static tg_tensor *f_less(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_less(x[0], x[1]);
}
static tg_tensor *f_less_equal(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_less_equal(x[0], x[1]);
}
/* logical ops take bools: x > 0 */
static tg_tensor *positive(const tg_tensor *x) { return tg_greater(x, tg_scalar_like(x, 0)); }
static tg_tensor *f_logical_and(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_logical_and(positive(x[0]), positive(x[1]));
}
static tg_tensor *f_logical_or(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_logical_or(positive(x[0]), positive(x[1]));
}
static tg_tensor *f_logical_not(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_logical_not(positive(x[0]));
}
/* where: the condition from idx (one flag per element of x[0]'s shape, broadcast) */
static tg_tensor *f_where(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *cond = tg_cast(index_tensor(a, a->s1), TG_BOOL);
    return tg_where(cond, x[0], x[1]);
}
static tg_tensor *f_neg(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_neg(x[0]);
}
static tg_tensor *f_abs(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_abs(x[0]);
}
static tg_tensor *f_square(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_square(x[0]);
}
static tg_tensor *f_sqrt(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_sqrt(x[0]);
}
static tg_tensor *f_rsqrt(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_rsqrt(x[0]);
}
static tg_tensor *f_exp(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_exp(x[0]);
}
static tg_tensor *f_log(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_log(x[0]);
}
static tg_tensor *f_log1p(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_log1p(x[0]);
}
static tg_tensor *f_erf(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_erf(x[0]);
}
static tg_tensor *f_sign(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_sign(x[0]);
}
static tg_tensor *f_floor(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_floor(x[0]);
}
static tg_tensor *f_ceil(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_ceil(x[0]);
}
static tg_tensor *f_round(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_round(x[0]);
}
static tg_tensor *f_identity(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_identity(x[0]);
}
static tg_tensor *f_stop_gradient(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_stop_gradient(x[0]);
}
static tg_tensor *f_clip(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_clip_by_value(x[0], a->lo, a->hi);
}
/* to float32 and back: the gradient crosses two float casts */
static tg_tensor *f_cast(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_cast(tg_cast(x[0], a->dtype), TG_F64);
}
static tg_tensor *f_check_numerics(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_check_numerics(x[0], "table case");
}

/* activations */
static tg_tensor *f_relu(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_relu(x[0]);
}
static tg_tensor *f_leaky_relu(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_leaky_relu(x[0], a->alpha);
}
static tg_tensor *f_elu(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_elu(x[0], a->alpha);
}
static tg_tensor *f_gelu(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_gelu(x[0], a->flag);
}
static tg_tensor *f_sigmoid(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_sigmoid(x[0]);
}
static tg_tensor *f_tanh(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_tanh(x[0]);
}
static tg_tensor *f_softplus(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_softplus(x[0]);
}
static tg_tensor *f_softmax(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_softmax(x[0], a->axis);
}
static tg_tensor *f_log_softmax(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_log_softmax(x[0], a->axis);
}

/* reductions */
#define REDUCER(op)                                                                                    \
    static tg_tensor *f_##op(tg_tensor *const *x, int n, void *u)                                      \
    {                                                                                                  \
        ARGS;                                                                                          \
        return tg_##op##_at(TG_LOC, x[0], (tg_reduce_opts){.axes = a->axes, .keepdims = a->keepdims}); \
    }
REDUCER(sum)
REDUCER(mean)
REDUCER(max)
REDUCER(min)
REDUCER(logsumexp)
REDUCER(variance)
static tg_tensor *f_argmax(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_argmax(x[0], a->axis);
}
static tg_tensor *f_argmin(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_argmin(x[0], a->axis);
}

/* linear algebra and shapes */
static tg_tensor *f_matmul(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_matmul(x[0], x[1], .transpose_a = a->ta, .transpose_b = a->tb);
}
static tg_tensor *f_reshape(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_reshape(x[0], a->s1);
}
static tg_tensor *f_transpose(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_transpose(x[0], a->axes);
}
static tg_tensor *f_broadcast_to(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_broadcast_to(x[0], a->s1);
}
static tg_tensor *f_concat(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_concat(x, n, a->axis);
}
static tg_tensor *f_stack(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_stack(x, n, a->axis);
}
/* Several outputs: a case returns one piece, so each piece's gradient is checked by a
 * case of its own (the others get zeros, as TF gives them). Sizes: idx, when given. */
static tg_tensor *f_split(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[8];
    int rc = tg_split(x[0], a->pieces, out, .axis = a->axis, .sizes = a->n_idx ? a->idx : NULL);
    return rc == 0 ? out[a->piece] : NULL;
}
static tg_tensor *f_unstack(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[8];
    return tg_unstack(x[0], a->pieces, out, a->axis) == 0 ? out[a->piece] : NULL;
}
/* products, scans, ranking (scan.c) */
REDUCER(reduce_prod)
static tg_tensor *f_reduce_any(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_reduce_any_at(TG_LOC, positive(x[0]), (tg_reduce_opts){.axes = a->axes, .keepdims = a->keepdims});
}
static tg_tensor *f_reduce_all(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_reduce_all_at(TG_LOC, positive(x[0]), (tg_reduce_opts){.axes = a->axes, .keepdims = a->keepdims});
}
static tg_tensor *f_cumsum(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_cumsum(x[0], .axis = a->axis, .exclusive = a->exclusive, .reverse = a->reverse);
}
static tg_tensor *f_cumprod(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_cumprod(x[0], .axis = a->axis, .exclusive = a->exclusive, .reverse = a->reverse);
}
/* top_k's values (its indices are int32: no gradient) */
static tg_tensor *f_top_k(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[2];
    return tg_top_k(x[0], a->k, out) == 0 ? out[0] : NULL;
}
static tg_tensor *f_sort(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_sort(x[0], .axis = a->axis, .direction = (tg_sort_direction)a->mode);
}
/* x gathered in argsort's order: its gradient flows through the gather, not the indices */
static tg_tensor *f_argsort(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *order = tg_argsort(x[0], .axis = a->axis, .direction = (tg_sort_direction)a->mode);
    return tg_gather(x[0], order, 0);
}
static tg_tensor *f_norm(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_norm(x[0], .ord = (tg_norm_ord)a->mode, .axes = a->axes, .keepdims = a->keepdims);
}
static tg_tensor *f_prelu(tg_tensor *const *x, int n, void *u)
{
    (void)n, (void)u;
    return tg_prelu(x[0], x[1]);
}

static tg_tensor *f_l2_normalize(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_l2_normalize(x[0], .axes = a->axes);
}

/* index moves (index.c) */
static tg_tensor *f_tile(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_tile(x[0], a->s1);
}
static tg_tensor *f_reverse(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_reverse(x[0], a->axes);
}
static tg_tensor *f_roll(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_roll(x[0], a->s1, a->axes);
}
static tg_tensor *f_mirror_pad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_mirror_pad(x[0], a->s1, a->s2, (tg_mirror_pad_mode)a->mode);
}
static tg_tensor *f_gather_nd(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_gather_nd(x[0], index_tensor(a, a->s2), .batch_dims = (int)a->k);
}
static tg_tensor *f_scatter_nd(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_scatter_nd(index_tensor(a, a->s2), x[0], a->s1);
}
#define SEGMENTS(op)                                                                      \
    static tg_tensor *f_segment_##op(tg_tensor *const *x, int n, void *u)                 \
    {                                                                                     \
        ARGS;                                                                             \
        return tg_unsorted_segment_##op(x[0], index_tensor(a, TG_SHAPE(a->n_idx)), a->k); \
    }
SEGMENTS(sum)
SEGMENTS(mean)
SEGMENTS(max)
SEGMENTS(min)
SEGMENTS(prod)
SEGMENTS(sqrt_n)
static tg_tensor *f_repeat(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_repeat(x[0], index_tensor(a, TG_SHAPE(a->n_idx)), a->axis);
}
static tg_tensor *f_boolean_mask(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_boolean_mask(x[0], tg_cast(index_tensor(a, a->s2), TG_BOOL), a->axis);
}
static tg_tensor *f_tensordot(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_tensordot(x[0], x[1], .n = a->n_dot, .axes_a = a->axes, .axes_b = a->axes_b);
}
/* inv, det, slogdet: the input plus 3 I, far from singular (each call, so the gradient is the op's) */
static tg_tensor *well_conditioned(const tg_tensor *x)
{
    int64_t m = tg_shape_of(x).dims[tg_rank(x) - 1];
    tg_tensor *eye = tg_eye(TG_F64, m);
    return tg_add(x, tg_cast(tg_mul(eye, tg_scalar_like(eye, 3.0)), tg_dtype_of(x)));
}
static tg_tensor *f_linalg_inv(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_linalg_inv(well_conditioned(x[0]));
}
static tg_tensor *f_linalg_det(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_linalg_det(well_conditioned(x[0]));
}
/* slogdet's log|det| (its sign has no gradient) */
static tg_tensor *f_linalg_slogdet(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    tg_tensor *out[2];
    return tg_linalg_slogdet(well_conditioned(x[0]), out) == 0 ? out[1] : NULL;
}
static tg_tensor *f_linalg_diag_part(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_linalg_diag_part(x[0]);
}
/* lstm_cell's h (piece 0) or c (piece 1) */
static tg_tensor *f_lstm_cell(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[2];
    return tg_lstm_cell(x[0], x[1], x[2], out) == 0 ? out[a->piece] : NULL;
}
/* lstm_cell_grad's dz (piece 0) or dc_prev (piece 1), from a, c_prev, c and dh; b = a / 3,
 * dc = dh / 2 */
static tg_tensor *f_lstm_cell_grad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[2];
    const tg_tensor *in[] = {x[0], tg_mul(x[0], tg_scalar_like(x[0], 1.0 / 3)), x[1], x[2],
                             x[3], tg_mul(x[3], tg_scalar_like(x[3], 0.5))};
    return tg__apply_n(TG_LOC, TG_OP_LSTM_CELL_GRAD, in, 6, NULL, 2, out) == 0 ? out[a->piece] : NULL;
}
/* lstm_sequence's hs (piece 0), cs (1) or gates (2) from xw, u, h0, c0 */
static tg_tensor *f_lstm_sequence(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[3];
    return tg_lstm_sequence(x[0], x[1], x[2], x[3], out) == 0 ? out[a->piece] : NULL;
}
/* lstm_sequence_grad's dxw, du, dh0 or dc0 (pieces 0 to 3) from u, hs, gates and dhs
 * (time-major); h0 = hs's first step / 2, c0 = -0.8 h0, cs = 1.3 hs, dcs = dhs / 2, dgates = -0.2 gates */
static tg_tensor *f_lstm_sequence_grad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[4], *hs = x[1];
    int64_t b = tg_dim(hs, 1), units = tg_dim(hs, 2);
    tg_tensor *h0 = tg_mul(tg_reshape(tg_slice(hs, TG_SHAPE(0, 0, 0), TG_SHAPE(1, -1, -1)), TG_SHAPE(b, units)),
                           tg_scalar_like(hs, 0.5));
    const tg_tensor *in[] = {x[0],
                             h0,
                             tg_mul(h0, tg_scalar_like(h0, -0.8)),
                             hs,
                             tg_mul(hs, tg_scalar_like(hs, 1.3)),
                             x[2],
                             x[3],
                             tg_mul(x[3], tg_scalar_like(x[3], 0.5)),
                             tg_mul(x[2], tg_scalar_like(x[2], -0.2))};
    return tg__apply_n(TG_LOC, TG_OP_LSTM_SEQUENCE_GRAD, in, 9, NULL, 4, out) == 0 ? out[a->piece] : NULL;
}
static tg_tensor *f_einsum(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_einsum(a->eq, x, n);
}
static tg_tensor *f_slice(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_slice(x[0], a->s1, a->s2);
}
static tg_tensor *f_gather(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_gather(x[0], index_tensor(a, a->s2.rank ? a->s2 : TG_SHAPE(a->n_idx)), a->axis);
}
static tg_tensor *f_scatter_add(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_scatter_add(index_tensor(a, a->s2.rank ? a->s2 : TG_SHAPE(a->n_idx)), x[0], a->s1, a->axis);
}
/* one_hot of indices cast from x (in [0, depth + 1): the last one past the end, a row of zeros) */
static tg_tensor *f_one_hot(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_one_hot(tg_cast(x[0], TG_I64), a->depth);
}
static tg_tensor *f_pad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_pad(x[0], a->s1, a->s2, a->alpha);
}

/* windows */
static tg_tensor *f_extract_patches(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_extract_patches(x[0], a->kh, a->kw, a->sh, a->sw, a->pad);
}
static tg_tensor *f_patches_to_image(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_patches_to_image(x[0], a->s1.dims[1], a->s1.dims[2], a->kh, a->kw, a->sh, a->sw, a->pad);
}
static tg_pool2d_opts pool_opts(const args *a)
{
    return (tg_pool2d_opts){.pool_size = {a->kh, a->kw}, .strides = {a->sh, a->sw}, .padding = a->pad};
}
static tg_tensor *f_max_pool2d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_max_pool2d_at(TG_LOC, x[0], pool_opts(a));
}
static tg_tensor *f_avg_pool2d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_avg_pool2d_at(TG_LOC, x[0], pool_opts(a));
}
/* max_pool2d's backward: its gradient, seeded with x[1] */
static tg_tensor *f_max_pool2d_grad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *g;
    SEEDED_GRADIENT(tg_max_pool2d_at(TG_LOC, x[0], pool_opts(a)), x[0], x[1], g);
    return g;
}
/* max_pool2d_grad's adjoint: the gradient of <max_pool2d_grad(x; d), h> with respect to d */
static tg_tensor *f_max_pool2d_gather(tg_tensor *const *x, int n, void *u)
{
    (void)n;
    tg_tensor *d = x[1], *g;
    SEEDED_GRADIENT(f_max_pool2d_grad((tg_tensor *[]){x[0], d}, 2, u), d, x[2], g);
    return g;
}
/* avg_pool2d's backward: its gradient, seeded with x[0], for an image of shape s1 */
static tg_tensor *f_avg_pool2d_grad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *img = tg_zeros(tg_dtype_of(x[0]), a->s1), *g;
    SEEDED_GRADIENT(tg_avg_pool2d_at(TG_LOC, img, pool_opts(a)), img, x[0], g);
    return g;
}

/* the element-wise maths */
static tg_tensor *f_sin(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_sin(x[0]);
}
static tg_tensor *f_cos(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_cos(x[0]);
}
static tg_tensor *f_tan(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_tan(x[0]);
}
static tg_tensor *f_asin(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_asin(x[0]);
}
static tg_tensor *f_acos(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_acos(x[0]);
}
static tg_tensor *f_atan(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_atan(x[0]);
}
static tg_tensor *f_atan2(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_atan2(x[0], x[1]);
}
static tg_tensor *f_sinh(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_sinh(x[0]);
}
static tg_tensor *f_cosh(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_cosh(x[0]);
}
static tg_tensor *f_asinh(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_asinh(x[0]);
}
static tg_tensor *f_acosh(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_acosh(x[0]);
}
static tg_tensor *f_atanh(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_atanh(x[0]);
}
static tg_tensor *f_reciprocal(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_reciprocal(x[0]);
}
static tg_tensor *f_expm1(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_expm1(x[0]);
}
static tg_tensor *f_squared_difference(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_squared_difference(x[0], x[1]);
}
static tg_tensor *f_floormod(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_floormod(x[0], x[1]);
}
static tg_tensor *f_floordiv(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_floordiv(x[0], x[1]);
}
static tg_tensor *f_truncatemod(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_truncatemod(x[0], x[1]);
}
/* truncatediv takes integers: float inputs become int64 (4x, truncated) on the way in */
static tg_tensor *as_int(const tg_tensor *x)
{
    return tg_dtype_is_float(tg_dtype_of(x)) ? tg_cast(tg_mul(x, tg_scalar_like(x, 4)), TG_I64) : (tg_tensor *)x;
}
static tg_tensor *f_truncatediv(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_truncatediv(as_int(x[0]), as_int(x[1]));
}
static tg_tensor *f_div_no_nan(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_div_no_nan(x[0], x[1]);
}
static tg_tensor *f_mul_no_nan(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_mul_no_nan(x[0], x[1]);
}
static tg_tensor *f_is_nan(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_is_nan(x[0]);
}
static tg_tensor *f_is_inf(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_is_inf(x[0]);
}
static tg_tensor *f_is_finite(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_is_finite(x[0]);
}
static tg_tensor *f_log_sigmoid(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_log_sigmoid(x[0]);
}
static tg_tensor *f_relu6(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_relu6(x[0]);
}
static tg_tensor *f_selu(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_selu(x[0]);
}
static tg_tensor *f_silu(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_silu(x[0], a->alpha);
}
static tg_tensor *f_hard_sigmoid(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_hard_sigmoid(x[0]);
}
static tg_tensor *f_softsign(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_softsign(x[0]);
}

/* fused */
static tg_tensor *f_bias_add_act(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_bias_add_act(x[0], x[1], (tg_bias_act)a->act);
}
/* bias_add_act's backward: the gradient with respect to x, seeded with x[2] */
static tg_tensor *f_act_grad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *g;
    SEEDED_GRADIENT(tg_bias_add_act(x[0], x[1], (tg_bias_act)a->act), x[0], x[2], g);
    return g;
}
/* act_grad_bias_sum's dz (piece 0) or db (piece 1) from y and dy */
static tg_tensor *f_act_grad_bias_sum(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *out[2];
    const tg_tensor *in[] = {x[0], x[1]};
    return tg__apply_n(TG_LOC, TG_OP_ACT_GRAD_BIAS_SUM, in, 2, &(tg_attrs){.act = a->act}, 2, out) == 0 ? out[a->piece]
                                                                                                        : NULL;
}
static tg_tensor *f_sparse_xent(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_sparse_softmax_cross_entropy_with_logits(index_tensor(a, TG_SHAPE(a->n_idx)), x[0]);
}
/* dense labels x[0] (any reals: the op does not normalise them), logits x[1] */
static tg_tensor *f_xent(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_softmax_cross_entropy_with_logits(x[0], x[1]);
}
/* the cross-entropies' backward: the gradient with respect to the logits, seeded */
static tg_tensor *f_xent_grad_sparse(tg_tensor *const *x, int n, void *u)
{
    (void)n;
    tg_tensor *g;
    SEEDED_GRADIENT(f_sparse_xent(x, 1, u), x[0], x[1], g);
    return g;
}
static tg_tensor *f_xent_grad_dense(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    tg_tensor *g;
    SEEDED_GRADIENT(tg_softmax_cross_entropy_with_logits(x[0], x[1]), x[1], x[2], g);
    return g;
}

/* the user's own gradient: x^3 with the rule 3 x^2 dy, written with public ops */
static tg_tensor *cube_forward(tg_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    return tg_mul(tg_mul(in[0], in[0]), in[0]);
}
static int cube_backward(const tg_tensor *dy, tg_tensor *const *in, int n, const tg_tensor *out, tg_tensor **dx,
                         void *user)
{
    (void)n, (void)out, (void)user;
    dx[0] = tg_mul(tg_mul(dy, tg_square(in[0])), tg_scalar_like(in[0], 3));
    return dx[0] ? 0 : -1;
}
static tg_tensor *f_custom(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_custom_gradient(x, 1, cube_forward, cube_backward, NULL);
}

/* composites */
static tg_tensor *f_conv2d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv2d(x[0], x[1], .strides = {a->sh, a->sw}, .padding = a->pad);
}
/* the convolution family (conv.c): dilation, 1-D, depthwise, separable, transpose, 1-D pools */
static tg_conv2d_opts conv_opts(const args *a)
{
    return (tg_conv2d_opts){.strides = {a->sh, a->sw}, .padding = a->pad, .dilations = {a->dh, a->dw}};
}
static tg_tensor *f_extract_patches_dilated(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_extract_patches_dilated_at(TG_LOC, x[0], a->kh, a->kw, conv_opts(a));
}
static tg_tensor *f_patches_to_image_dilated(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_patches_to_image_dilated_at(TG_LOC, x[0], a->s1.dims[1], a->s1.dims[2], a->kh, a->kw, conv_opts(a));
}
static tg_tensor *f_conv2d_dilated(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv2d_at(TG_LOC, x[0], x[1], conv_opts(a));
}
static tg_tensor *f_conv2d_backprop_input(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv2d_backprop_input_at(TG_LOC, x[0], x[1], a->s1.dims[1], a->s1.dims[2], conv_opts(a));
}
static tg_tensor *f_conv2d_backprop_filter(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv2d_backprop_filter_at(TG_LOC, x[0], x[1], a->kh, a->kw, conv_opts(a));
}
static tg_tensor *f_conv2d_bias_act(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv2d_bias_act_at(TG_LOC, x[0], x[1], x[2], (tg_bias_act)a->act, conv_opts(a));
}
static tg_tensor *f_conv1d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv1d(x[0], x[1], .stride = a->sw, .padding = a->pad, .dilation = a->dw);
}
static tg_tensor *f_depthwise_conv2d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_depthwise_conv2d_at(TG_LOC, x[0], x[1], conv_opts(a));
}
static tg_tensor *f_separable_conv2d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_separable_conv2d_at(TG_LOC, x[0], x[1], x[2], conv_opts(a));
}
static tg_tensor *f_conv2d_transpose(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_conv2d_transpose_at(TG_LOC, x[0], x[1], a->s1, conv_opts(a));
}
static tg_tensor *f_max_pool1d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_max_pool1d(x[0], .pool_size = a->kw, .strides = a->sw, .padding = a->pad);
}
static tg_tensor *f_avg_pool1d(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_avg_pool1d(x[0], .pool_size = a->kw, .strides = a->sw, .padding = a->pad);
}
/* resize (resize.c): s1 holds the size, mode the method */
static tg_tensor *f_resize(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_resize(x[0], a->s1.dims[0], a->s1.dims[1], .method = (tg_resize_method)a->mode);
}
/* resize's backward: its gradient, seeded with x[0], for an image of shape s2 */
static tg_tensor *f_resize_grad(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    tg_tensor *img = tg_zeros(tg_dtype_of(x[0]), a->s2), *g;
    SEEDED_GRADIENT(tg_resize(img, a->s1.dims[0], a->s1.dims[1], .method = (tg_resize_method)a->mode), img, x[0], g);
    return g;
}
static tg_tensor *f_global_avg_pool2d(tg_tensor *const *x, int n, void *u)
{
    UNUSED;
    return tg_global_avg_pool2d(x[0]);
}
static tg_tensor *f_expand_dims(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_expand_dims(x[0], a->axis);
}
static tg_tensor *f_squeeze(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_squeeze(x[0], a->axes);
}
/* y_true x[0], y_pred x[1]; sparse labels from idx */
static tg_tensor *f_loss_values(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    if (a->loss.kind == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        return tg_loss_values(&a->loss, index_tensor(a, TG_SHAPE(a->n_idx)), x[0]);
    return tg_loss_values(&a->loss, x[0], x[1]);
}
/* y_true x[0], y_pred x[1], sample weights x[2] */
static tg_tensor *f_compute_loss(tg_tensor *const *x, int n, void *u)
{
    ARGS;
    return tg_compute_loss(&a->loss, x[0], x[1], n > 2 ? x[2] : NULL);
}

/* Tolerances are relative-or-absolute, |got - want| <= tol (1 + |want|). */
#define EPS        1e-6 /* first order: central differences in float64 */
#define TOL        1e-7
#define LINEAR_EPS 1e-4 /* a linear row: the differences are exact up to rounding */
#define LINEAR_TOL 1e-8
#define EPS2       1e-5 /* second order: differences of the first-order gradient */
#define TOL2       1e-6
#define F32_TOL    1e-6 /* float32 forward against float64 */

/* ---- the cases ---------------------------------------------------------------------------------- */
enum {
    C_NO_F32 = 1,     /* the float32 comparison does not apply (said where used) */
    C_TWICE = 2,      /* a composite whose primitives are all TG_OPF_TWICE, away from kinks: second order too */
    C_CUT_BEFORE = 4, /* a NONE row whose inputs come through another cut (bools, indices) */
};

typedef struct op_case {
    tg_op_kind op; /* the row; TG_OP_NONE for a composite */
    const char *label;
    gc_fn f;
    const args *a;
    int n; /* float inputs */
    tg_shape shape[GC_MAX_INPUTS];
    const char *composite;          /* a composite's public name */
    tg_op_kind prim[3];             /* a composite: primitives its call must record */
    double range[GC_MAX_INPUTS][2]; /* input i's range; 0, 0: the row's domain */
    double eps, tol, f32_tol;       /* 0: the defaults above */
    unsigned flags;
} op_case;

/* Constant shapes and axes for the table (TG_SHAPE and TG_AXES are function calls). */
#define NARGS_(_1, _2, _3, _4, _5, _6, N, ...) N
#define NARGS(...)                             NARGS_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define S(...)                                              \
    {                                                       \
        .rank = NARGS(__VA_ARGS__), .dims = { __VA_ARGS__ } \
    }
#define SC        \
    {             \
        .rank = 0 \
    }
#define AX(...)                                          \
    {                                                    \
        .n = NARGS(__VA_ARGS__), .axis = { __VA_ARGS__ } \
    }
#define COMMA ,
#define CASE(KIND, label_, f_, a_, n_, ...)                                                      \
    {                                                                                            \
        .op = TG_OP_##KIND, .label = label_, .f = f_, .a = a_, .n = n_, .shape = { __VA_ARGS__ } \
    }
#define CASEX(KIND, label_, f_, a_, n_, extra, ...)                                                     \
    {                                                                                                   \
        .op = TG_OP_##KIND, .label = label_, .f = f_, .a = a_, .n = n_, extra, .shape = { __VA_ARGS__ } \
    }
#define COMP(name_, label_, f_, a_, n_, prims, ...)                                                               \
    {                                                                                                             \
        .composite = name_, .label = label_, .f = f_, .a = a_, .n = n_, .prim = {prims}, .shape = { __VA_ARGS__ } \
    }
#define COMPX(name_, label_, f_, a_, n_, prims, extra, ...)                                                \
    {                                                                                                      \
        .composite = name_, .label = label_, .f = f_, .a = a_, .n = n_, .prim = {prims}, extra, .shape = { \
            __VA_ARGS__                                                                                    \
        }                                                                                                  \
    }

static const op_case cases[] = {
    /* element-wise arithmetic: same shapes, numpy broadcasting both ways, scalars */
    CASE(ADD, "same shape", f_add, NULL, 2, S(2, 3), S(2, 3)),
    CASE(ADD, "[2,1] + [3]", f_add, NULL, 2, S(2, 1), S(3)),
    CASE(ADD, "scalar + [2,2]", f_add, NULL, 2, SC, S(2, 2)),
    CASE(ADD, "[2,1,3] + [4,1]", f_add, NULL, 2, S(2, 1, 3), S(4, 1)),
    CASE(ADD, "[2,3] + scalar", f_add, NULL, 2, S(2, 3), SC),
    CASE(ADD, "empty [0,3] + [3]: b's gradient sums nothing", f_add, NULL, 2, S(0, 3), S(3)),
    CASE(SUB, "[2,3] - [3]", f_sub, NULL, 2, S(2, 3), S(3)),
    CASE(SUB, "[1,3] - [2,1]", f_sub, NULL, 2, S(1, 3), S(2, 1)),
    CASE(SUB, "scalar - [2,3]", f_sub, NULL, 2, SC, S(2, 3)),
    CASE(MUL, "[2,3] * [2,3]", f_mul, NULL, 2, S(2, 3), S(2, 3)),
    CASE(MUL, "[3] * [2,2,3]", f_mul, NULL, 2, S(3), S(2, 2, 3)),
    CASE(MUL, "[2,1,3] * [4,1]", f_mul, NULL, 2, S(2, 1, 3), S(4, 1)),
    CASE(DIV, "[2,3] / [3]", f_div, NULL, 2, S(2, 3), S(3)),
    CASE(DIV, "scalar / [4]", f_div, NULL, 2, SC, S(4)),
    CASE(DIV, "[2,1,3] / [4,1]", f_div, NULL, 2, S(2, 1, 3), S(4, 1)),
    CASE(DIV, "[2,3] / scalar", f_div, NULL, 2, S(2, 3), SC),
    CASE(POW, "[2,3] ** [2,3]", f_pow, NULL, 2, S(2, 3), S(2, 3)),
    CASE(POW, "[2,3] ** scalar", f_pow, NULL, 2, S(2, 3), SC),
    CASE(POW, "[2,1,3] ** [4,1]", f_pow, NULL, 2, S(2, 1, 3), S(4, 1)),
    CASE(POW, "scalar ** [2,3]", f_pow, NULL, 2, SC, S(2, 3)),
    CASE(MAXIMUM, "[2,3] vs [3]", f_maximum, NULL, 2, S(2, 3), S(3)),
    CASE(MAXIMUM, "[4] vs [4]", f_maximum, NULL, 2, S(4), S(4)),
    CASE(MAXIMUM, "[2,1,3] vs [4,1]", f_maximum, NULL, 2, S(2, 1, 3), S(4, 1)),
    CASE(MINIMUM, "[2,3] vs [2,1]", f_minimum, NULL, 2, S(2, 3), S(2, 1)),
    CASE(MINIMUM, "[4] vs [4]", f_minimum, NULL, 2, S(4), S(4)),
    CASE(MINIMUM, "scalar vs [2,3]", f_minimum, NULL, 2, SC, S(2, 3)),
    /* comparisons and logic */
    CASE(EQUAL, "[2,3] vs [3]", f_equal, NULL, 2, S(2, 3), S(3)),
    CASE(NOT_EQUAL, "[2,3] vs [3]", f_not_equal, NULL, 2, S(2, 3), S(3)),
    CASE(GREATER, "[2,3] vs [3]", f_greater, NULL, 2, S(2, 3), S(3)),
    CASE(GREATER_EQUAL, "[2,3] vs [3]", f_greater_equal, NULL, 2, S(2, 3), S(3)),
    CASE(LESS, "[2,3] vs [3]", f_less, NULL, 2, S(2, 3), S(3)),
    CASE(LESS_EQUAL, "[2,3] vs [3]", f_less_equal, NULL, 2, S(2, 3), S(3)),
    CASEX(LOGICAL_AND, "[2,3] and [3]", f_logical_and, NULL, 2, .flags = C_CUT_BEFORE, S(2, 3), S(3)),
    CASEX(LOGICAL_OR, "[2,3] or [3]", f_logical_or, NULL, 2, .flags = C_CUT_BEFORE, S(2, 3), S(3)),
    CASEX(LOGICAL_NOT, "[5]", f_logical_not, NULL, 1, .flags = C_CUT_BEFORE, S(5)),
    CASE(WHERE, "cond [2,3]", f_where, A(.s1 = S(2, 3), .idx = {1, 0, 0, 1, 1, 0}), 2, S(2, 3), S(2, 3)),
    CASE(WHERE, "cond [3], a [2,3], b [3]", f_where, A(.s1 = S(3), .idx = {0, 1, 1}), 2, S(2, 3), S(3)),
    CASE(WHERE, "cond [2,1,3], a [2,1,3], b [4,1]", f_where, A(.s1 = S(2, 1, 3), .idx = {0, 1, 1, 1, 0, 1}), 2,
         S(2, 1, 3), S(4, 1)),
    /* element-wise unary */
    CASE(NEG, "[2,3]", f_neg, NULL, 1, S(2, 3)),
    CASE(ABS, "[2,3]", f_abs, NULL, 1, S(2, 3)),
    CASE(SQUARE, "[2,3]", f_square, NULL, 1, S(2, 3)),
    CASE(SQUARE, "scalar", f_square, NULL, 1, SC),
    CASE(SQRT, "[2,3]", f_sqrt, NULL, 1, S(2, 3)),
    CASE(RSQRT, "[2,3]", f_rsqrt, NULL, 1, S(2, 3)),
    CASE(EXP, "[2,3]", f_exp, NULL, 1, S(2, 3)),
    CASE(LOG, "[2,3]", f_log, NULL, 1, S(2, 3)),
    CASE(LOG1P, "[2,3]", f_log1p, NULL, 1, S(2, 3)),
    CASE(ERF, "[2,3]", f_erf, NULL, 1, S(2, 3)),
    CASE(SIGN, "[2,3]", f_sign, NULL, 1, S(2, 3)),
    CASE(FLOOR, "[2,3]", f_floor, NULL, 1, S(2, 3)),
    CASE(CEIL, "[2,3]", f_ceil, NULL, 1, S(2, 3)),
    CASE(ROUND, "[2,3]", f_round, NULL, 1, S(2, 3)),
    CASE(IDENTITY, "[2,3]", f_identity, NULL, 1, S(2, 3)),
    CASE(STOP_GRADIENT, "[2,3]", f_stop_gradient, NULL, 1, S(2, 3)),
    CASE(CLIP_BY_VALUE, "[-0.5, 0.7]", f_clip, A(.lo = -0.5, .hi = 0.7), 1, S(3, 4)),
    /* float32 rounds x +- eps: a wide step, a tolerance above float32's rounding over it; the
     * output is float64 whatever the input, so the float32 comparison does not apply */
    CASEX(CAST, "float64 to float32 and back", f_cast, A(.dtype = TG_F32), 1,
          .eps = 1e-2 COMMA .tol = 1e-4 COMMA .flags = C_NO_F32, S(2, 3)),
    CASE(CHECK_NUMERICS, "[2,3]", f_check_numerics, NULL, 1, S(2, 3)),
    /* activations */
    CASE(RELU, "[3,4]", f_relu, NULL, 1, S(3, 4)),
    CASE(LEAKY_RELU, "alpha 0.2", f_leaky_relu, A(.alpha = 0.2), 1, S(3, 4)),
    CASE(ELU, "alpha 0.7", f_elu, A(.alpha = 0.7), 1, S(3, 4)),
    CASE(GELU, "exact", f_gelu, A(.flag = false), 1, S(3, 4)),
    CASE(GELU, "tanh", f_gelu, A(.flag = true), 1, S(3, 4)),
    CASEX(GELU, "tanh, [-4, 4]", f_gelu, A(.flag = true), 1, .range = {{-4 COMMA 4}}, S(3, 4)),
    CASEX(SIGMOID, "[-4, 4]", f_sigmoid, NULL, 1, .range = {{-4 COMMA 4}}, S(3, 4)),
    CASEX(TANH, "[-4, 4]", f_tanh, NULL, 1, .range = {{-4 COMMA 4}}, S(3, 4)),
    CASEX(SOFTPLUS, "[-4, 4]", f_softplus, NULL, 1, .range = {{-4 COMMA 4}}, S(3, 4)),
    CASE(SIGMOID, "[3,4]", f_sigmoid, NULL, 1, S(3, 4)),
    CASE(TANH, "[3,4]", f_tanh, NULL, 1, S(3, 4)),
    CASE(SOFTPLUS, "[3,4]", f_softplus, NULL, 1, S(3, 4)),
    CASE(SOFTMAX, "axis -1", f_softmax, A(.axis = -1), 1, S(2, 4)),
    CASE(SOFTMAX, "axis 0 of 3", f_softmax, A(.axis = 0), 1, S(3, 2, 2)),
    CASE(SOFTMAX, "axis -2 of 3", f_softmax, A(.axis = -2), 1, S(2, 3, 2)),
    CASE(SOFTMAX, "rank 1", f_softmax, A(.axis = 0), 1, S(5)),
    CASE(LOG_SOFTMAX, "axis -1", f_log_softmax, A(.axis = -1), 1, S(2, 4)),
    CASE(LOG_SOFTMAX, "axis 1 of 3", f_log_softmax, A(.axis = 1), 1, S(2, 3, 2)),
    CASE(LOG_SOFTMAX, "axis 0 of 3", f_log_softmax, A(.axis = 0), 1, S(3, 2, 2)),
    CASE(LOG_SOFTMAX, "rank 1", f_log_softmax, A(.axis = 0), 1, S(5)),
    /* reductions: every axis, some axes, keepdims, a scalar */
    CASE(SUM, "all", f_sum, A(0), 1, S(2, 3)),
    CASE(SUM, "empty [0,3], axis 0", f_sum, A(.axes = AX(0)), 1, S(0, 3)),
    CASE(SUM, "axis 1 keepdims", f_sum, A(.axes = AX(1), .keepdims = true), 1, S(2, 3, 2)),
    CASE(MEAN, "axes 0, 2", f_mean, A(.axes = AX(0, 2)), 1, S(2, 3, 2)),
    CASE(MEAN, "all keepdims", f_mean, A(.keepdims = true), 1, S(2, 3)),
    CASE(MAX, "axis -1", f_max, A(.axes = AX(-1)), 1, S(3, 4)),
    CASE(MAX, "all", f_max, A(0), 1, S(2, 3)),
    CASE(MIN, "axis 0 keepdims", f_min, A(.axes = AX(0), .keepdims = true), 1, S(3, 4)),
    CASE(LOGSUMEXP, "axis 1", f_logsumexp, A(.axes = AX(1)), 1, S(3, 4)),
    CASE(LOGSUMEXP, "all", f_logsumexp, A(0), 1, S(2, 3)),
    CASE(VARIANCE, "axis 0", f_variance, A(.axes = AX(0)), 1, S(4, 3)),
    CASE(VARIANCE, "all keepdims", f_variance, A(.keepdims = true), 1, S(2, 3)),
    CASE(SUM, "rank 4, axes -1 and 1, keepdims", f_sum, A(.axes = AX(-1, 1), .keepdims = true), 1, S(2, 3, 2, 2)),
    CASE(SUM, "rank 1, axis 0, keepdims", f_sum, A(.axes = AX(0), .keepdims = true), 1, S(5)),
    CASE(SUM, "a scalar", f_sum, A(0), 1, SC),
    CASE(MEAN, "rank 4, axes -1 and 1, keepdims", f_mean, A(.axes = AX(-1, 1), .keepdims = true), 1, S(2, 3, 2, 2)),
    CASE(MEAN, "rank 1, axis 0, keepdims", f_mean, A(.axes = AX(0), .keepdims = true), 1, S(5)),
    CASE(MEAN, "a scalar", f_mean, A(0), 1, SC),
    CASE(MAX, "rank 4, axes -1 and 1, keepdims", f_max, A(.axes = AX(-1, 1), .keepdims = true), 1, S(2, 3, 2, 2)),
    CASE(MAX, "rank 1, axis 0, keepdims", f_max, A(.axes = AX(0), .keepdims = true), 1, S(5)),
    CASE(MAX, "a scalar", f_max, A(0), 1, SC),
    CASE(MIN, "rank 4, axes -1 and 1, keepdims", f_min, A(.axes = AX(-1, 1), .keepdims = true), 1, S(2, 3, 2, 2)),
    CASE(MIN, "rank 1, axis 0, keepdims", f_min, A(.axes = AX(0), .keepdims = true), 1, S(5)),
    CASE(MIN, "a scalar", f_min, A(0), 1, SC),
    CASE(LOGSUMEXP, "rank 4, axes -1 and 1, keepdims", f_logsumexp, A(.axes = AX(-1, 1), .keepdims = true), 1, S(2, 3, 2, 2)),
    CASE(LOGSUMEXP, "rank 1, axis 0, keepdims", f_logsumexp, A(.axes = AX(0), .keepdims = true), 1, S(5)),
    CASE(LOGSUMEXP, "a scalar", f_logsumexp, A(0), 1, SC),
    CASE(VARIANCE, "rank 4, axes -1 and 1, keepdims", f_variance, A(.axes = AX(-1, 1), .keepdims = true), 1, S(2, 3, 2, 2)),
    CASE(VARIANCE, "rank 1, axis 0, keepdims", f_variance, A(.axes = AX(0), .keepdims = true), 1, S(5)),
    CASE(VARIANCE, "a scalar", f_variance, A(0), 1, SC),
    /* logsumexp's gradient (a softmax) stays right far from 0 */
    CASEX(LOGSUMEXP, "[-300, 300]", f_logsumexp, A(.axes = AX(1)), 1, .range = {{-300 COMMA 300}} COMMA .eps = 1e-5, S(3, 5)),
    CASE(ARGMAX, "axis 1", f_argmax, A(.axis = 1), 1, S(3, 4)),
    CASE(ARGMIN, "axis 0", f_argmin, A(.axis = 0), 1, S(3, 4)),
    /* linear algebra: plain, transposed, batched with broadcast batches */
    CASE(MATMUL, "[2,3] x [3,4]", f_matmul, A(0), 2, S(2, 3), S(3, 4)),
    CASE(MATMUL, "[2,0] x [0,3]: an empty inner axis", f_matmul, A(0), 2, S(2, 0), S(0, 3)),
    CASE(MATMUL, "transposes", f_matmul, A(.ta = true, .tb = true), 2, S(3, 2), S(4, 3)),
    CASE(MATMUL, "[2,2,3] x [3,2]", f_matmul, A(0), 2, S(2, 2, 3), S(3, 2)),
    CASE(MATMUL, "[2,1,2,3] x [3,3,2]", f_matmul, A(0), 2, S(2, 1, 2, 3), S(3, 3, 2)),
    CASE(MATMUL, "transpose_a", f_matmul, A(.ta = true), 2, S(4, 3), S(4, 2)),
    CASE(MATMUL, "transpose_b", f_matmul, A(.tb = true), 2, S(3, 4), S(2, 4)),
    CASE(MATMUL, "[2,1,4,3]' x [3,2,4]'", f_matmul, A(.ta = true, .tb = true), 2, S(2, 1, 4, 3), S(3, 2, 4)),
    CASE(MATMUL, "[3,4] x [2,5,4]'", f_matmul, A(.tb = true), 2, S(3, 4), S(2, 5, 4)),
    CASE(MATMUL, "[2,4,3]' x [1,4,2]", f_matmul, A(.ta = true), 2, S(2, 4, 3), S(1, 4, 2)),
    /* shapes */
    CASE(RESHAPE, "[2,3] to [3,-1]", f_reshape, A(.s1 = S(3, -1)), 1, S(2, 3)),
    CASE(TRANSPOSE, "reversed", f_transpose, A(0), 1, S(2, 3, 2)),
    CASE(TRANSPOSE, "perm 1,2,0", f_transpose, A(.axes = AX(1, 2, 0)), 1, S(2, 3, 2)),
    CASE(TRANSPOSE, "perm -2,-1,0", f_transpose, A(.axes = AX(-2, -1, 0)), 1, S(2, 3, 4)),
    CASE(BROADCAST_TO, "[3] to [2,3]", f_broadcast_to, A(.s1 = S(2, 3)), 1, S(3)),
    CASE(BROADCAST_TO, "[2,1] to [2,2,3]", f_broadcast_to, A(.s1 = S(2, 2, 3)), 1, S(2, 1)),
    CASE(BROADCAST_TO, "[3,1] to [2,3,4]", f_broadcast_to, A(.s1 = S(2, 3, 4)), 1, S(3, 1)),
    CASE(CONCAT, "axis 1 of 3", f_concat, A(.axis = 1), 3, S(2, 1), S(2, 3), S(2, 2)),
    CASE(CONCAT, "axis -1", f_concat, A(.axis = -1), 2, S(2, 2), S(2, 1)),
    CASE(CONCAT, "an empty part", f_concat, A(.axis = 0), 2, S(0, 2), S(3, 2)),
    CASE(STACK, "axis 0", f_stack, A(.axis = 0), 2, S(2, 3), S(2, 3)),
    CASE(STACK, "last axis", f_stack, A(.axis = 2), 3, S(2, 2), S(2, 2), S(2, 2)),
    CASE(STACK, "axis -1", f_stack, A(.axis = -1), 2, S(2, 3), S(2, 3)),
    CASE(SPLIT, "3 equal pieces, the middle one", f_split, A(.axis = 1, .pieces = 3, .piece = 1), 1, S(2, 6)),
    CASE(SPLIT, "sizes {1, -1, 2}, the rest", f_split,
         A(.axis = -1, .pieces = 3, .piece = 1, .idx = {1, -1, 2}, .n_idx = 3), 1, S(3, 6)),
    CASE(SPLIT, "axis 0, the last piece", f_split, A(.axis = 0, .pieces = 2, .piece = 1), 1, S(4, 2, 2)),
    CASE(UNSTACK, "axis 0, the first slice", f_unstack, A(.axis = 0, .pieces = 3, .piece = 0), 1, S(3, 2)),
    CASE(UNSTACK, "axis -1, a column", f_unstack, A(.axis = -1, .pieces = 4, .piece = 2), 1, S(2, 3, 4)),
    /* products, scans, ranking */
    CASE(REDUCE_PROD, "all", f_reduce_prod, A(0), 1, S(2, 3)),
    CASE(REDUCE_PROD, "axis 1 keepdims", f_reduce_prod, A(.axes = AX(1), .keepdims = true), 1, S(2, 4, 2)),
    CASE(REDUCE_PROD, "empty [0,3], axis 0", f_reduce_prod, A(.axes = AX(0)), 1, S(0, 3)),
    CASEX(REDUCE_ANY, "axis 1 of x > 0", f_reduce_any, A(.axes = AX(1)), 1, .flags = C_CUT_BEFORE, S(3, 4)),
    CASEX(REDUCE_ALL, "all of x > 0", f_reduce_all, A(0), 1, .flags = C_CUT_BEFORE, S(3, 4)),
    CASE(CUMSUM, "axis 0", f_cumsum, A(.axis = 0), 1, S(4, 3)),
    CASE(CUMSUM, "axis -1, exclusive and reverse", f_cumsum, A(.axis = -1, .exclusive = true, .reverse = true), 1,
         S(2, 5)),
    CASE(CUMPROD, "axis 1", f_cumprod, A(.axis = 1), 1, S(2, 4)),
    CASE(CUMPROD, "axis 0, exclusive", f_cumprod, A(.axis = 0, .exclusive = true), 1, S(4, 2)),
    CASE(CUMPROD, "axis -1, reverse", f_cumprod, A(.axis = -1, .reverse = true), 1, S(3, 3)),
    CASE(TOP_K, "k 2 of rows of 5", f_top_k, A(.k = 2), 1, S(3, 5)),
    CASE(TOP_K, "k all of a vector", f_top_k, A(.k = 4), 1, S(4)),
    /* index moves */
    CASE(TILE, "[2,3] by (2,1)", f_tile, A(.s1 = S(2, 1)), 1, S(2, 3)),
    CASE(TILE, "[1,2,2] by (3,1,2)", f_tile, A(.s1 = S(3, 1, 2)), 1, S(1, 2, 2)),
    CASE(REVERSE, "axes 0 and 2", f_reverse, A(.axes = AX(0, 2)), 1, S(2, 3, 2)),
    CASE(REVERSE, "axis -1", f_reverse, A(.axes = AX(-1)), 1, S(3, 4)),
    CASE(ROLL, "shift 2 on axis 1, -1 on axis 0", f_roll, A(.s1 = S(2, -1), .axes = AX(1, 0)), 1, S(3, 4)),
    CASE(ROLL, "two shifts of one axis add", f_roll, A(.s1 = S(1, 3), .axes = AX(0, 0)), 1, S(5)),
    CASE(MIRROR_PAD, "reflect", f_mirror_pad, A(.s1 = S(1, 2), .s2 = S(2, 1), .mode = TG_MIRROR_REFLECT), 1, S(3, 3)),
    CASE(MIRROR_PAD, "symmetric", f_mirror_pad, A(.s1 = S(2, 0), .s2 = S(1, 3), .mode = TG_MIRROR_SYMMETRIC), 1,
         S(2, 3)),
    CASE(GATHER_ND, "pairs of indices, repeated", f_gather_nd, A(.s2 = S(3, 2), .idx = {1, 2, 0, 0, 1, 2}), 1,
         S(2, 3)),
    CASE(GATHER_ND, "rows", f_gather_nd, A(.s2 = S(2, 1), .idx = {2, 0}), 1, S(3, 2)),
    CASE(SCATTER_ND, "pairs, repeats add", f_scatter_nd, A(.s1 = S(2, 3), .s2 = S(3, 2), .idx = {1, 2, 0, 0, 1, 2}), 1,
         S(3)),
    CASE(SCATTER_ND, "rows", f_scatter_nd, A(.s1 = S(4, 2), .s2 = S(2, 1), .idx = {3, 1}), 1, S(2, 2)),
    CASE(UNSORTED_SEGMENT_SUM, "rows, a dropped id, an empty segment", f_segment_sum,
         A(.k = 4, .idx = {2, 0, -1, 2, 0}, .n_idx = 5), 1, S(5, 2)),
    /* (an empty segment's lowest or highest value is test_ops_index's: no difference quotient there) */
    CASE(UNSORTED_SEGMENT_MAX, "rows", f_segment_max, A(.k = 2, .idx = {1, 0, 1, 1}, .n_idx = 4), 1, S(4, 3)),
    CASE(UNSORTED_SEGMENT_MIN, "rows, a dropped id", f_segment_min, A(.k = 2, .idx = {0, -1, 1, 1}, .n_idx = 4), 1,
         S(4, 2)),
    CASE(SLICE, "box", f_slice, A(.s1 = S(1, 0), .s2 = S(2, -1)), 1, S(3, 4)),
    CASE(SLICE, "rank 3", f_slice, A(.s1 = S(1, 0, 2), .s2 = S(2, -1, 2)), 1, S(3, 4, 5)),
    CASE(GATHER, "axis 0, repeats", f_gather, A(.axis = 0, .idx = {2, 0, 2, 1}, .n_idx = 4), 1, S(3, 2)),
    CASE(GATHER, "axis 1", f_gather, A(.axis = 1, .idx = {1, 3}, .n_idx = 2), 1, S(2, 4)),
    CASE(GATHER, "axis -1, 2-d indices", f_gather, A(.axis = -1, .idx = {2, 2, 0, 1}, .s2 = S(2, 2)), 1, S(4, 3)),
    CASE(SCATTER_ADD, "rows, repeats", f_scatter_add, A(.s1 = S(4, 2), .idx = {3, 0, 3}, .n_idx = 3), 1, S(3, 2)),
    CASE(SCATTER_ADD, "axis 1", f_scatter_add, A(.axis = 1, .s1 = S(2, 3), .idx = {2, 0}, .n_idx = 2), 1, S(2, 2)),
    CASE(SCATTER_ADD, "axis -1, 2-d indices", f_scatter_add, A(.axis = -1, .s1 = S(2, 3), .idx = {0, 2, 2, 0}, .s2 = S(2, 2)),
         1, S(2, 2, 2)),
    CASEX(ONE_HOT, "depth 3, indices 0 to 3", f_one_hot, A(.depth = 3), 1,
          .range = {{0 COMMA 3.95}} COMMA .flags = C_CUT_BEFORE, S(8)),
    CASE(PAD, "before and after", f_pad, A(.s1 = S(1, 0), .s2 = S(0, 2), .alpha = 0.5), 1, S(2, 3)),
    /* windows */
    CASE(EXTRACT_PATCHES, "2x2 valid", f_extract_patches, A(.kh = 2, .kw = 2, .sh = 1, .sw = 1), 1, S(1, 3, 3, 2)),
    CASE(EXTRACT_PATCHES, "2x3 same strides 2", f_extract_patches,
         A(.kh = 2, .kw = 3, .sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 1, S(2, 3, 4, 1)),
    CASE(EXTRACT_PATCHES, "3x2 same strides 2, 1", f_extract_patches,
         A(.kh = 3, .kw = 2, .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 1, S(2, 5, 4, 2)),
    CASE(PATCHES_TO_IMAGE, "3x2 same strides 2, 1", f_patches_to_image,
         A(.s1 = S(2, 5, 4, 2), .kh = 3, .kw = 2, .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 1, S(2, 3, 4, 12)),
    CASE(PATCHES_TO_IMAGE, "2x2 valid", f_patches_to_image, A(.s1 = S(1, 3, 3, 2), .kh = 2, .kw = 2, .sh = 1, .sw = 1),
         1, S(1, 2, 2, 8)),
    CASE(PATCHES_TO_IMAGE, "2x3 same strides 2", f_patches_to_image,
         A(.s1 = S(1, 3, 4, 1), .kh = 2, .kw = 3, .sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 1, S(1, 2, 2, 6)),
    CASE(MAX_POOL2D, "2x2", f_max_pool2d, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2), 1, S(1, 4, 4, 2)),
    CASE(MAX_POOL2D, "3x2 same strides 1", f_max_pool2d, A(.kh = 3, .kw = 2, .sh = 1, .sw = 1, .pad = TG_PADDING_SAME),
         1, S(1, 3, 3, 1)),
    CASE(MAX_POOL2D, "2x2 valid strides 2, 2", f_max_pool2d, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2, .pad = TG_PADDING_VALID), 1,
         S(1, 5, 4, 2)),
    CASE(MAX_POOL2D, "2x2 same strides 2, 2", f_max_pool2d, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(MAX_POOL2D, "3x3 same strides 1, 1", f_max_pool2d, A(.kh = 3, .kw = 3, .sh = 1, .sw = 1, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(MAX_POOL2D, "3x2 same strides 2, 1", f_max_pool2d, A(.kh = 3, .kw = 2, .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(MAX_POOL2D, "2x3 valid strides 1, 2", f_max_pool2d, A(.kh = 2, .kw = 3, .sh = 1, .sw = 2, .pad = TG_PADDING_VALID), 1,
         S(1, 5, 4, 2)),
    CASE(MAX_POOL2D, "4x4 same strides 3, 3", f_max_pool2d, A(.kh = 4, .kw = 4, .sh = 3, .sw = 3, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "2x2 valid strides 2, 2", f_avg_pool2d, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2, .pad = TG_PADDING_VALID), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "2x2 same strides 2, 2", f_avg_pool2d, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "3x3 same strides 1, 1", f_avg_pool2d, A(.kh = 3, .kw = 3, .sh = 1, .sw = 1, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "3x2 same strides 2, 1", f_avg_pool2d, A(.kh = 3, .kw = 2, .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "2x3 valid strides 1, 2", f_avg_pool2d, A(.kh = 2, .kw = 3, .sh = 1, .sw = 2, .pad = TG_PADDING_VALID), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "4x4 same strides 3, 3", f_avg_pool2d, A(.kh = 4, .kw = 4, .sh = 3, .sw = 3, .pad = TG_PADDING_SAME), 1,
         S(1, 5, 4, 2)),
    CASE(AVG_POOL2D, "2x2", f_avg_pool2d, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2), 1, S(1, 4, 4, 2)),
    CASE(AVG_POOL2D, "3x2 same strides 1", f_avg_pool2d, A(.kh = 3, .kw = 2, .sh = 1, .sw = 1, .pad = TG_PADDING_SAME),
         1, S(1, 3, 3, 1)),
    CASE(MAX_POOL2D_GRAD, "2x2", f_max_pool2d_grad, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2), 2, S(1, 4, 4, 1),
         S(1, 2, 2, 1)),
    CASE(MAX_POOL2D_GRAD, "overlapping 2x2 strides 1", f_max_pool2d_grad, A(.kh = 2, .kw = 2, .sh = 1, .sw = 1), 2,
         S(1, 3, 3, 1), S(1, 2, 2, 1)),
    CASE(MAX_POOL2D_GATHER, "2x2", f_max_pool2d_gather, A(.kh = 2, .kw = 2, .sh = 2, .sw = 2), 3, S(1, 4, 4, 1),
         S(1, 2, 2, 1), S(1, 4, 4, 1)),
    CASE(AVG_POOL2D_GRAD, "2x2", f_avg_pool2d_grad, A(.s1 = S(1, 4, 4, 2), .kh = 2, .kw = 2, .sh = 2, .sw = 2), 1,
         S(1, 2, 2, 2)),
    CASE(AVG_POOL2D_GRAD, "3x2 same strides 1", f_avg_pool2d_grad,
         A(.s1 = S(1, 3, 3, 1), .kh = 3, .kw = 2, .sh = 1, .sw = 1, .pad = TG_PADDING_SAME), 1, S(1, 3, 3, 1)),
    /* the element-wise maths: domains (-1, 1), > 1, != 0 from the rows; the mods' quotients
     * a / b kept inside (2, 3) or (-3, -2), away from the integers where they jump */
    CASE(SIN, "[2,3]", f_sin, NULL, 1, S(2, 3)),
    CASE(COS, "[3,2]", f_cos, NULL, 1, S(3, 2)),
    CASE(TAN, "[2,3]", f_tan, NULL, 1, S(2, 3)),
    CASE(ASIN, "[2,3]", f_asin, NULL, 1, S(2, 3)),
    CASE(ACOS, "[2,3]", f_acos, NULL, 1, S(2, 3)),
    CASE(ATAN, "[2,3]", f_atan, NULL, 1, S(2, 3)),
    CASE(ATAN2, "[2,3] against [3]", f_atan2, NULL, 2, S(2, 3), S(3)),
    CASE(ATAN2, "[2,1] against [2,3]", f_atan2, NULL, 2, S(2, 1), S(2, 3)),
    CASE(SINH, "[2,3]", f_sinh, NULL, 1, S(2, 3)),
    CASE(COSH, "[2,3]", f_cosh, NULL, 1, S(2, 3)),
    CASE(ASINH, "[2,3]", f_asinh, NULL, 1, S(2, 3)),
    CASE(ACOSH, "[2,3]", f_acosh, NULL, 1, S(2, 3)),
    CASE(ATANH, "[2,3]", f_atanh, NULL, 1, S(2, 3)),
    CASE(RECIPROCAL, "[2,3]", f_reciprocal, NULL, 1, S(2, 3)),
    CASE(EXPM1, "[2,3]", f_expm1, NULL, 1, S(2, 3)),
    CASE(SQUARED_DIFFERENCE, "[2,3] and [3]", f_squared_difference, NULL, 2, S(2, 3), S(3)),
    CASE(SQUARED_DIFFERENCE, "scalar and [2,2]", f_squared_difference, NULL, 2, SC, S(2, 2)),
    CASEX(FLOORMOD, "[2,3] % [3], b > 0", f_floormod, NULL, 2, .range = {{2.3 COMMA 2.7} COMMA {1 COMMA 1.1}},
          S(2, 3), S(3)),
    CASEX(FLOORMOD, "[2,3] % [2,1], b < 0", f_floormod, NULL, 2,
          .range = {{2.3 COMMA 2.7} COMMA {-1.1 COMMA -1}}, S(2, 3), S(2, 1)),
    CASEX(FLOORDIV, "[2,3] // [3]", f_floordiv, NULL, 2, .range = {{2.3 COMMA 2.7} COMMA {1 COMMA 1.1}}, S(2, 3),
          S(3)),
    /* integers through a cast (a cut before the row); b in [1.3, 2] is 5 to 8 */
    CASEX(TRUNCATEDIV, "int64 [2,3] / [3]", f_truncatediv, NULL, 2,
          .range = {{-4 COMMA 4} COMMA {1.3 COMMA 2}} COMMA .flags = C_CUT_BEFORE, S(2, 3), S(3)),
    CASEX(TRUNCATEMOD, "[2,3] % [3], b > 0", f_truncatemod, NULL, 2,
          .range = {{2.3 COMMA 2.7} COMMA {1 COMMA 1.1}}, S(2, 3), S(3)),
    CASEX(TRUNCATEMOD, "negative a, [2,3] % [2,1]", f_truncatemod, NULL, 2,
          .range = {{-2.7 COMMA -2.3} COMMA {1 COMMA 1.1}}, S(2, 3), S(2, 1)),
    CASE(DIV_NO_NAN, "[2,3] / [3]", f_div_no_nan, NULL, 2, S(2, 3), S(3)),
    CASE(MUL_NO_NAN, "[2,3] * [2,1]", f_mul_no_nan, NULL, 2, S(2, 3), S(2, 1)),
    CASE(IS_NAN, "[2,3]", f_is_nan, NULL, 1, S(2, 3)),
    CASE(IS_INF, "[2,3]", f_is_inf, NULL, 1, S(2, 3)),
    CASE(IS_FINITE, "[2,3]", f_is_finite, NULL, 1, S(2, 3)),
    CASE(LOG_SIGMOID, "[3,4]", f_log_sigmoid, NULL, 1, S(3, 4)),
    CASEX(RELU6, "[3,4] over both bounds", f_relu6, A(.lo = 0, .hi = 6), 1, .range = {{-2 COMMA 8}}, S(3, 4)),
    CASE(SELU, "[3,4]", f_selu, NULL, 1, S(3, 4)),
    CASE(SILU, "beta 1", f_silu, A(.alpha = 1), 1, S(3, 4)),
    CASE(SILU, "beta 1.7", f_silu, A(.alpha = 1.7), 1, S(2, 3)),
    CASEX(HARD_SIGMOID, "[3,4] over both bounds", f_hard_sigmoid, A(.lo = -3, .hi = 3), 1, .range = {{-5 COMMA 5}},
          S(3, 4)),
    CASE(SOFTSIGN, "[3,4]", f_softsign, NULL, 1, S(3, 4)),
    /* fused */
    CASE(BIAS_ADD_ACT, "linear", f_bias_add_act, A(.act = TG_BIAS_LINEAR), 2, S(2, 3), S(3)),
    CASE(BIAS_ADD_ACT, "relu", f_bias_add_act, A(.act = TG_BIAS_RELU), 2, S(2, 3), S(3)),
    CASE(BIAS_ADD_ACT, "sigmoid", f_bias_add_act, A(.act = TG_BIAS_SIGMOID), 2, S(2, 2, 3), S(3)),
    CASE(BIAS_ADD_ACT, "tanh", f_bias_add_act, A(.act = TG_BIAS_TANH), 2, S(2, 3), S(3)),
    CASE(ACT_GRAD, "relu", f_act_grad, A(.act = TG_BIAS_RELU), 3, S(2, 3), S(3), S(2, 3)),
    CASE(ACT_GRAD, "sigmoid", f_act_grad, A(.act = TG_BIAS_SIGMOID), 3, S(2, 3), S(3), S(2, 3)),
    CASE(ACT_GRAD, "tanh", f_act_grad, A(.act = TG_BIAS_TANH), 3, S(2, 3), S(3), S(2, 3)),
    CASE(SPARSE_SOFTMAX_XENT, "3 rows of 4", f_sparse_xent, A(.idx = {2, 0, 3}, .n_idx = 3), 1, S(3, 4)),
    CASE(SOFTMAX_XENT, "labels and logits", f_xent, NULL, 2, S(3, 4), S(3, 4)),
    CASE(XENT_GRAD, "sparse labels", f_xent_grad_sparse, A(.idx = {1, 3, 0}, .n_idx = 3), 2, S(3, 4), S(3)),
    CASE(XENT_GRAD, "dense labels", f_xent_grad_dense, NULL, 3, S(2, 3), S(2, 3), S(2)),
    /* the user's gradient */
    CASE(CUSTOM, "cube", f_custom, NULL, 1, S(2, 3)),
    /* composites: their gradient is their primitives', checked through the public call */
    CASE(CONV2D, "3x3 image, 2x2 kernel, valid", f_conv2d, A(.sh = 1, .sw = 1), 2, S(1, 3, 3, 2), S(2, 2, 2, 3)),
    CASE(CONV2D, "same, strides 2", f_conv2d, A(.sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 2, S(2, 4, 3, 1), S(3, 2, 1, 2)),
    CASE(CONV2D, "[2,5,5,3] * [3,3,3,2] valid strides 1, 1", f_conv2d, A(.sh = 1, .sw = 1, .pad = TG_PADDING_VALID), 2, S(2, 5, 5, 3), S(3, 3, 3, 2)),
    CASE(CONV2D, "[1,6,5,2] * [2,3,2,3] same strides 2, 1", f_conv2d, A(.sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 2, S(1, 6, 5, 2), S(2, 3, 2, 3)),
    /* a 1x1 kernel at stride 1 needs no patches: a product per pixel */
    CASE(CONV2D, "[2,4,4,2] * [1,1,2,3] same strides 1, 1", f_conv2d, A(.sh = 1, .sw = 1, .pad = TG_PADDING_SAME), 2, S(2, 4, 4, 2), S(1, 1, 2, 3)),
    CASE(CONV2D, "[1,5,5,1] * [4,4,1,2] same strides 2, 2", f_conv2d, A(.sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 2, S(1, 5, 5, 1), S(4, 4, 1, 2)),
    CASE(CONV2D, "[1,7,6,2] * [3,2,2,2] valid strides 3, 2", f_conv2d, A(.sh = 3, .sw = 2, .pad = TG_PADDING_VALID), 2, S(1, 7, 6, 2), S(3, 2, 2, 2)),
    CASE(CONV2D, "[2,3,3,2] * [1,1,2,1] valid strides 2, 2", f_conv2d, A(.sh = 2, .sw = 2, .pad = TG_PADDING_VALID), 2, S(2, 3, 3, 2), S(1, 1, 2, 1)),
    CASE(CONV2D, "[1,4,5,2] * [2,2,2,2] same strides 2, 2", f_conv2d, A(.sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 2, S(1, 4, 5, 2), S(2, 2, 2, 2)),
    COMP("tg_global_avg_pool2d", "[2,3,3,2]", f_global_avg_pool2d, NULL, 1, TG_OP_MEAN, S(2, 3, 3, 2)),
    COMPX("tg_global_avg_pool2d", "[2,3,4,2]", f_global_avg_pool2d, NULL, 1, TG_OP_MEAN,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(2, 3, 4, 2)),

    COMP("tg_expand_dims", "axis 1", f_expand_dims, A(.axis = 1), 1, TG_OP_RESHAPE, S(2, 3)),
    COMP("tg_squeeze", "all size-1 axes", f_squeeze, A(0), 1, TG_OP_RESHAPE, S(2, 1, 3, 1)),
    COMPX("tg_sort", "ascending, last axis", f_sort, A(.axis = -1, .mode = TG_ASCENDING), 1, TG_OP_TOP_K,
          .flags = C_TWICE, S(3, 4)),
    COMPX("tg_sort", "descending, axis 0", f_sort, A(.axis = 0, .mode = TG_DESCENDING), 1, TG_OP_TOP_K COMMA TG_OP_TRANSPOSE,
          .flags = C_TWICE, S(4, 2)),
    COMPX("tg_argsort", "a vector gathered in its order", f_argsort, A(.axis = 0, .mode = TG_DESCENDING), 1,
          TG_OP_TOP_K COMMA TG_OP_GATHER, .flags = C_TWICE, S(5)),
    COMPX("tg_norm", "euclidean, axis 1", f_norm, A(.mode = TG_NORM_EUCLIDEAN, .axes = AX(1)), 1, TG_OP_SQRT,
          .flags = C_TWICE, S(3, 4)),
    COMPX("tg_norm", "Frobenius, keepdims", f_norm, A(.mode = TG_NORM_EUCLIDEAN, .axes = AX(0, 1), .keepdims = true),
          1, TG_OP_SQRT, .flags = C_TWICE, S(2, 3)),
    COMP("tg_norm", "ord 1", f_norm, A(.mode = TG_NORM_1, .axes = AX(-1)), 1, TG_OP_ABS, S(2, 3)),
    COMP("tg_norm", "ord inf", f_norm, A(.mode = TG_NORM_INF), 1, TG_OP_MAX, S(2, 3)),
    COMPX("tg_l2_normalize", "axis 1", f_l2_normalize, A(.axes = AX(1)), 1, TG_OP_RSQRT, .flags = C_TWICE, S(3, 4)),
    COMPX("tg_unsorted_segment_mean", "rows, an empty segment", f_segment_mean,
          A(.k = 3, .idx = {0, 2, 0, 0}, .n_idx = 4), 1, TG_OP_UNSORTED_SEGMENT_SUM, .flags = C_TWICE, S(4, 2)),
    COMPX("tg_repeat", "axis 0, repeats per row", f_repeat, A(.axis = 0, .idx = {2, 0, 1}, .n_idx = 3), 1,
          TG_OP_GATHER, .flags = C_TWICE, S(3, 2)),
    COMPX("tg_repeat", "flattened, twice each", f_repeat, A(.axis = TG_AXIS_NONE, .idx = {2}, .n_idx = 1), 1,
          TG_OP_GATHER, .flags = C_TWICE, S(2, 2)),
    COMPX("tg_boolean_mask", "rows of a [3,2] mask over [3,2,2]", f_boolean_mask,
          A(.axis = 0, .s2 = S(3, 2), .idx = {1, 0, 0, 1, 1, 1}), 1, TG_OP_GATHER, .flags = C_TWICE, S(3, 2, 2)),
    /* ---- tensordot (linalg.c) ---- */
    COMPX("tg_tensordot", "axes=2, [2,3,4] . [3,4,2]", f_tensordot, A(.n_dot = 2), 2, TG_OP_MATMUL, .flags = C_TWICE,
          S(2, 3, 4), S(3, 4, 2)),
    COMPX("tg_tensordot", "axes=1, a matrix product", f_tensordot, A(.n_dot = 1), 2, TG_OP_MATMUL, .flags = C_TWICE,
          S(2, 3), S(3, 2)),
    COMPX("tg_tensordot", "axes=0, the outer product", f_tensordot, A(.n_dot = 0), 2, TG_OP_MATMUL, .flags = C_TWICE,
          S(2, 3), S(2)),
    COMPX("tg_tensordot", "lists [2,0] of [3,2,4] with [0,-1] of [4,3]", f_tensordot,
          A(.axes = AX(2, 0), .axes_b = AX(0, -1)), 2, TG_OP_MATMUL COMMA TG_OP_TRANSPOSE, .flags = C_TWICE,
          S(3, 2, 4), S(4, 3)),
    COMPX("tg_loss_values", "mse", f_loss_values, A(.loss = {.kind = TG_LOSS_MSE}), 2, TG_OP_SQUARE, .flags = C_TWICE,
          S(3, 2), S(3, 2)),
    /* mae's kink is at y_true == y_pred: the two ranges do not meet */
    COMPX("tg_loss_values", "mae", f_loss_values, A(.loss = {.kind = TG_LOSS_MAE}), 2, TG_OP_ABS,
          .range = {{-2 COMMA -0.5} COMMA {0 COMMA 2}} COMMA .flags = C_TWICE, S(3, 2), S(3, 2)),
    COMP("tg_loss_values", "huber, delta 0.5", f_loss_values, A(.loss = {.kind = TG_LOSS_HUBER, .delta = 0.5}), 2,
         TG_OP_WHERE, S(3, 2), S(3, 2)),
    COMPX("tg_loss_values", "binary crossentropy from logits", f_loss_values,
          A(.loss = {.kind = TG_LOSS_BINARY_CROSSENTROPY, .from_logits = true}), 2, TG_OP_LOG1P, .flags = C_TWICE,
          S(3, 2), S(3, 2)),
    /* probabilities well inside Keras's clip to [1e-7, 1 - 1e-7] */
    COMPX("tg_loss_values", "binary crossentropy, probabilities", f_loss_values,
          A(.loss = {.kind = TG_LOSS_BINARY_CROSSENTROPY}), 2, TG_OP_LOG,
          .range = {{0 COMMA 1} COMMA {0.05 COMMA 0.95}} COMMA .flags = C_TWICE, S(3, 2), S(3, 2)),
    COMPX("tg_loss_values", "categorical crossentropy from logits", f_loss_values,
          A(.loss = {.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY, .from_logits = true, .label_smoothing = 0.1}), 2,
          TG_OP_SOFTMAX_XENT, .flags = C_TWICE, S(2, 3), S(2, 3)),
    COMPX("tg_loss_values", "categorical crossentropy, probabilities", f_loss_values,
          A(.loss = {.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY}), 2, TG_OP_LOG,
          .range = {{0 COMMA 1} COMMA {0.05 COMMA 0.95}} COMMA .flags = C_TWICE, S(2, 3), S(2, 3)),
    COMPX("tg_loss_values", "sparse categorical crossentropy, probabilities", f_loss_values,
          A(.loss = {.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY}, .idx = {1, 2}, .n_idx = 2), 1, TG_OP_LOG,
          .range = {{0.05 COMMA 0.95}} COMMA .flags = C_TWICE, S(2, 3)),
    COMPX("tg_loss_values", "sparse categorical crossentropy from logits", f_loss_values,
          A(.loss = {.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true}, .idx = {2, 0}, .n_idx = 2),
          1, TG_OP_SPARSE_SOFTMAX_XENT, .flags = C_TWICE, S(2, 3)),
    COMPX("tg_compute_loss", "mse with sample weights", f_compute_loss, A(.loss = {.kind = TG_LOSS_MSE}), 3,
          TG_OP_SUM, .flags = C_TWICE, S(3, 2), S(3, 2), S(3)),
    /* ---- the convolution family (conv.c): dilation, 1-D, depthwise, separable, transpose, 1-D pools ---- */
    CASE(EXTRACT_PATCHES, "2x2 valid dilations 2, 2", f_extract_patches_dilated,
         A(.kh = 2, .kw = 2, .sh = 1, .sw = 1, .dh = 2, .dw = 2), 1, S(1, 5, 5, 2)),
    CASE(EXTRACT_PATCHES, "3x2 same dilations 2, 3", f_extract_patches_dilated,
         A(.kh = 3, .kw = 2, .sh = 1, .sw = 1, .dh = 2, .dw = 3, .pad = TG_PADDING_SAME), 1, S(2, 5, 4, 1)),
    CASE(PATCHES_TO_IMAGE, "2x2 valid dilations 2, 1", f_patches_to_image_dilated,
         A(.s1 = S(1, 5, 4, 2), .kh = 2, .kw = 2, .sh = 1, .sw = 1, .dh = 2, .dw = 1), 1, S(1, 3, 3, 8)),
    CASE(PATCHES_TO_IMAGE, "3x2 same dilations 2, 3", f_patches_to_image_dilated,
         A(.s1 = S(2, 5, 4, 1), .kh = 3, .kw = 2, .sh = 1, .sw = 1, .dh = 2, .dw = 3, .pad = TG_PADDING_SAME), 1,
         S(2, 5, 4, 6)),
    CASE(CONV2D, "[1,5,5,2] * [2,2,2,2] valid dilations 2, 2", f_conv2d_dilated, A(.sh = 1, .sw = 1, .dh = 2, .dw = 2), 2, S(1, 5, 5, 2), S(2, 2, 2, 2)),
    CASE(CONV2D, "[2,5,4,1] * [3,2,1,2] same dilations 2, 3", f_conv2d_dilated, A(.sh = 1, .sw = 1, .dh = 2, .dw = 3, .pad = TG_PADDING_SAME), 2, S(2, 5, 4, 1), S(3, 2, 1, 2)),
    CASE(CONV2D_BACKPROP_INPUT, "[1,3,5,3] * [2,3,2,3] -> [1,5,5,2] same strides 2, 1", f_conv2d_backprop_input,
         A(.s1 = S(1, 5, 5, 2), .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 2, S(1, 3, 5, 3), S(2, 3, 2, 3)),
    CASE(CONV2D_BACKPROP_INPUT, "[2,4,4,2] * [2,2,1,2] -> [2,6,5,1] valid dilations 2, 1", f_conv2d_backprop_input,
         A(.s1 = S(2, 6, 5, 1), .sh = 1, .sw = 1, .dh = 2, .dw = 1), 2, S(2, 4, 4, 2), S(2, 2, 1, 2)),
    CASE(CONV2D_BACKPROP_FILTER, "[1,5,5,2] and [1,3,5,3] -> [2,3,2,3] same strides 2, 1", f_conv2d_backprop_filter,
         A(.kh = 2, .kw = 3, .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 2, S(1, 5, 5, 2), S(1, 3, 5, 3)),
    CASE(CONV2D_BACKPROP_FILTER, "[2,6,5,1] and [2,4,4,2] -> [2,2,1,2] valid dilations 2, 1",
         f_conv2d_backprop_filter, A(.kh = 2, .kw = 2, .sh = 1, .sw = 1, .dh = 2, .dw = 1), 2, S(2, 6, 5, 1),
         S(2, 4, 4, 2)),
    COMPX("tg_conv1d", "[2,6,2] * [3,2,3] same stride 2", f_conv1d, A(.sw = 2, .pad = TG_PADDING_SAME), 2, TG_OP_CONV2D,
          .flags = C_TWICE, S(2, 6, 2), S(3, 2, 3)),
    COMPX("tg_conv1d", "[1,7,2] * [2,2,2] valid dilation 3", f_conv1d, A(.sw = 1, .dw = 3), 2, TG_OP_CONV2D,
          .flags = C_TWICE, S(1, 7, 2), S(2, 2, 2)),
    COMPX("tg_depthwise_conv2d", "[1,5,5,2] * [3,3,2,2] same strides 2", f_depthwise_conv2d,
          A(.sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 2, TG_OP_EXTRACT_PATCHES COMMA TG_OP_MATMUL COMMA TG_OP_TRANSPOSE, .flags = C_TWICE,
          S(1, 5, 5, 2), S(3, 3, 2, 2)),
    COMPX("tg_depthwise_conv2d", "[2,5,6,3] * [2,2,3,1] valid dilations 2, 2", f_depthwise_conv2d,
          A(.sh = 1, .sw = 1, .dh = 2, .dw = 2), 2, TG_OP_EXTRACT_PATCHES COMMA TG_OP_MATMUL COMMA TG_OP_TRANSPOSE, .flags = C_TWICE, S(2, 5, 6, 3),
          S(2, 2, 3, 1)),
    COMPX("tg_separable_conv2d", "[1,4,4,2] * [2,2,2,2] * [1,1,4,3] same", f_separable_conv2d,
          A(.sh = 1, .sw = 1, .pad = TG_PADDING_SAME), 3, TG_OP_EXTRACT_PATCHES COMMA TG_OP_MATMUL COMMA TG_OP_TRANSPOSE, .flags = C_TWICE,
          S(1, 4, 4, 2), S(2, 2, 2, 2), S(1, 1, 4, 3)),
    COMPX("tg_conv2d_transpose", "[1,2,2,3] -> [1,4,4,2] same strides 2", f_conv2d_transpose,
          A(.s1 = S(1, 4, 4, 2), .sh = 2, .sw = 2, .pad = TG_PADDING_SAME), 2,
          TG_OP_MATMUL COMMA TG_OP_PATCHES_TO_IMAGE, .flags = C_TWICE, S(1, 2, 2, 3), S(3, 3, 2, 3)),
    COMPX("tg_conv2d_transpose", "[2,2,2,1] -> [2,6,5,2] valid strides 2", f_conv2d_transpose,
          A(.s1 = S(2, 6, 5, 2), .sh = 2, .sw = 2), 2, TG_OP_MATMUL COMMA TG_OP_PATCHES_TO_IMAGE,
          .flags = C_TWICE, S(2, 2, 2, 1), S(3, 3, 2, 1)),
    COMPX("tg_max_pool1d", "[2,6,2] pool 2", f_max_pool1d, A(.kw = 2, .sw = 0), 1, TG_OP_MAX_POOL2D,
          .flags = C_TWICE, S(2, 6, 2)),
    COMPX("tg_max_pool1d", "[1,7,3] pool 3 same strides 2", f_max_pool1d,
          A(.kw = 3, .sw = 2, .pad = TG_PADDING_SAME), 1, TG_OP_MAX_POOL2D, .flags = C_TWICE, S(1, 7, 3)),
    COMPX("tg_avg_pool1d", "[2,6,2] pool 2", f_avg_pool1d, A(.kw = 2, .sw = 0), 1, TG_OP_AVG_POOL2D,
          .flags = C_TWICE, S(2, 6, 2)),
    COMPX("tg_avg_pool1d", "[1,7,3] pool 3 same strides 2", f_avg_pool1d,
          A(.kw = 3, .sw = 2, .pad = TG_PADDING_SAME), 1, TG_OP_AVG_POOL2D, .flags = C_TWICE, S(1, 7, 3)),
    /* ---- resize.c ---- */
    CASEX(RESIZE, "bilinear [1,3,4,2] -> 5x7", f_resize, A(.s1 = S(5, 7), .mode = TG_RESIZE_BILINEAR), 1,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(1, 3, 4, 2)),
    CASEX(RESIZE, "bilinear [2,5,6,1] -> 3x2", f_resize, A(.s1 = S(3, 2), .mode = TG_RESIZE_BILINEAR), 1,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(2, 5, 6, 1)),
    CASEX(RESIZE, "nearest [1,3,4,2] -> 5x7", f_resize, A(.s1 = S(5, 7), .mode = TG_RESIZE_NEAREST), 1,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(1, 3, 4, 2)),
    CASEX(RESIZE, "nearest [2,5,6,1] -> 3x2", f_resize, A(.s1 = S(3, 2), .mode = TG_RESIZE_NEAREST), 1,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(2, 5, 6, 1)),
    CASEX(RESIZE_GRAD, "bilinear 5x7 -> [1,3,4,2]", f_resize_grad,
          A(.s1 = S(5, 7), .s2 = S(1, 3, 4, 2), .mode = TG_RESIZE_BILINEAR), 1,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(1, 5, 7, 2)),
    CASEX(RESIZE_GRAD, "nearest 3x2 -> [2,5,6,1]", f_resize_grad,
          A(.s1 = S(3, 2), .s2 = S(2, 5, 6, 1), .mode = TG_RESIZE_NEAREST), 1,
          .eps = LINEAR_EPS COMMA .tol = LINEAR_TOL, S(2, 3, 2, 1)),
    /* ---- linalg_lu.c and einsum.c (last: the cases above keep their seeds) ---- */
    COMPX("tg_norm", "matrix ord 1 over axes (-2, -1)", f_norm, A(.mode = TG_NORM_1, .axes = AX(-2, -1)), 1, TG_OP_MAX,
          .flags = C_TWICE, S(2, 3, 4)),
    COMPX("tg_norm", "matrix ord inf over axes (0, 1), keepdims", f_norm,
          A(.mode = TG_NORM_INF, .axes = AX(0, 1), .keepdims = true), 1, TG_OP_MAX, .flags = C_TWICE, S(3, 4)),
    CASE(UNSORTED_SEGMENT_PROD, "rows, a dropped id, an empty segment", f_segment_prod,
         A(.k = 4, .idx = {2, 0, -1, 2, 0}, .n_idx = 5), 1, S(5, 2)),
    COMPX("tg_unsorted_segment_sqrt_n", "rows, an empty segment", f_segment_sqrt_n,
          A(.k = 3, .idx = {0, 2, 0, 0}, .n_idx = 4), 1, TG_OP_UNSORTED_SEGMENT_SUM COMMA TG_OP_DIV, .flags = C_TWICE,
          S(4, 2)),
    COMPX("tg_gather_nd", "batch_dims 1: a row of each batch", f_gather_nd, A(.s2 = S(2, 2, 1), .idx = {1, 0, 2, 2}, .k = 1),
          1, TG_OP_GATHER_ND COMMA TG_OP_RESHAPE, .flags = C_TWICE, S(2, 3, 2)),
    CASE(LINALG_INV, "[3,3] + 3 I", f_linalg_inv, NULL, 1, S(3, 3)),
    CASE(LINALG_INV, "a batch [2,2,2,2] + 3 I", f_linalg_inv, NULL, 1, S(2, 2, 2, 2)),
    CASE(LINALG_DET, "[3,3] + 3 I", f_linalg_det, NULL, 1, S(3, 3)),
    CASE(LINALG_DET, "a batch [2,4,4] + 3 I", f_linalg_det, NULL, 1, S(2, 4, 4)),
    CASE(LINALG_SLOGDET, "log|det| of [2,3,3] + 3 I", f_linalg_slogdet, NULL, 1, S(2, 3, 3)),
    COMPX("tg_linalg_diag_part", "[2,3,4]", f_linalg_diag_part, NULL, 1, TG_OP_GATHER, .flags = C_TWICE, S(2, 3, 4)),
    COMPX("tg_einsum", "bij,bjk->bik", f_einsum, A(.eq = "bij,bjk->bik"), 2, TG_OP_MATMUL, .flags = C_TWICE,
          S(2, 2, 3), S(2, 3, 2)),
    COMPX("tg_einsum", "bii->b, a trace", f_einsum, A(.eq = "bii->b"), 1, TG_OP_GATHER COMMA TG_OP_SUM,
          .flags = C_TWICE, S(2, 3, 3)),
    COMPX("tg_einsum", "...ij,jk broadcast, implicit output", f_einsum, A(.eq = "...ij,jk"), 2,
          TG_OP_MATMUL COMMA TG_OP_RESHAPE, .flags = C_TWICE, S(2, 2, 3), S(3, 4)),
    COMPX("tg_einsum", "bi,ij,bj->b, three operands", f_einsum, A(.eq = "bi,ij,bj->b"), 3, TG_OP_MATMUL,
          .flags = C_TWICE, S(2, 3), S(3, 4), S(2, 4)),
    COMPX("tg_einsum", "ij->ji, a transpose", f_einsum, A(.eq = "ij->ji"), 1, TG_OP_TRANSPOSE, .flags = C_TWICE,
          S(2, 3)),
    COMPX("tg_prelu", "alpha per feature", f_prelu, NULL, 2, TG_OP_RELU, .flags = C_TWICE, S(3, 4), S(4)),
    COMPX("tg_prelu", "one alpha", f_prelu, NULL, 2, TG_OP_RELU, .flags = C_TWICE, S(2, 3), SC),
    CASE(LSTM_CELL, "h", f_lstm_cell, A(.piece = 0), 3, S(2, 8), S(2, 8), S(2, 2)),
    CASE(LSTM_CELL, "c", f_lstm_cell, A(.piece = 1), 3, S(3, 4), S(3, 4), S(3, 1)),
    CASE(LSTM_CELL_GRAD, "dz", f_lstm_cell_grad, A(.piece = 0), 4, S(2, 8), S(2, 2), S(2, 2), S(2, 2)),
    CASE(LSTM_CELL_GRAD, "dc_prev", f_lstm_cell_grad, A(.piece = 1), 4, S(2, 8), S(2, 2), S(2, 2), S(2, 2)),
    CASE(ACT_GRAD_BIAS_SUM, "relu dz", f_act_grad_bias_sum, A(.act = TG_BIAS_RELU, .piece = 0), 2, S(2, 3), S(2, 3)),
    CASE(ACT_GRAD_BIAS_SUM, "relu db", f_act_grad_bias_sum, A(.act = TG_BIAS_RELU, .piece = 1), 2, S(3, 2), S(3, 2)),
    CASE(ACT_GRAD_BIAS_SUM, "sigmoid db, rank 3", f_act_grad_bias_sum, A(.act = TG_BIAS_SIGMOID, .piece = 1), 2,
         S(2, 2, 3), S(2, 2, 3)),
    CASE(ACT_GRAD_BIAS_SUM, "tanh dz", f_act_grad_bias_sum, A(.act = TG_BIAS_TANH, .piece = 0), 2, S(2, 3), S(2, 3)),
    CASE(ACT_GRAD_BIAS_SUM, "tanh db", f_act_grad_bias_sum, A(.act = TG_BIAS_TANH, .piece = 1), 2, S(2, 3), S(2, 3)),
    CASE(ACT_GRAD_BIAS_SUM, "linear db", f_act_grad_bias_sum, A(.act = TG_BIAS_LINEAR, .piece = 1), 2, S(2, 3),
         S(2, 3)),
    CASE(CONV2D_BIAS_ACT, "relu, [2,5,5,3] * [3,3,3,2] valid", f_conv2d_bias_act, A(.act = TG_BIAS_RELU, .sh = 1, .sw = 1), 3, S(2, 5, 5, 3), S(3, 3, 3, 2), S(2)),
    CASE(CONV2D_BIAS_ACT, "sigmoid, [1,6,5,2] * [2,3,2,3] same strides 2, 1", f_conv2d_bias_act, A(.act = TG_BIAS_SIGMOID, .sh = 2, .sw = 1, .pad = TG_PADDING_SAME), 3, S(1, 6, 5, 2), S(2, 3, 2, 3), S(3)),
    CASE(CONV2D_BIAS_ACT, "tanh, [1,5,5,2] * [2,2,2,2] dilations 2, 2", f_conv2d_bias_act, A(.act = TG_BIAS_TANH, .sh = 1, .sw = 1, .dh = 2, .dw = 2), 3, S(1, 5, 5, 2), S(2, 2, 2, 2), S(2)),
    CASE(CONV2D_BIAS_ACT, "linear, [2,4,4,2] * [1,1,2,3] same", f_conv2d_bias_act, A(.act = TG_BIAS_LINEAR, .sh = 1, .sw = 1, .pad = TG_PADDING_SAME), 3, S(2, 4, 4, 2), S(1, 1, 2, 3), S(3)),
    CASE(LSTM_SEQUENCE, "hs", f_lstm_sequence, A(.piece = 0), 4, S(2, 3, 8), S(2, 8), S(3, 2), S(3, 2)),
    CASE(LSTM_SEQUENCE, "cs", f_lstm_sequence, A(.piece = 1), 4, S(3, 2, 4), S(1, 4), S(2, 1), S(2, 1)),
    CASE(LSTM_SEQUENCE, "gates", f_lstm_sequence, A(.piece = 2), 4, S(2, 2, 8), S(2, 8), S(2, 2), S(2, 2)),
    CASE(LSTM_SEQUENCE_GRAD, "dxw", f_lstm_sequence_grad, A(.piece = 0), 4, S(2, 8), S(2, 3, 2), S(2, 3, 8),
         S(2, 3, 2)),
    CASE(LSTM_SEQUENCE_GRAD, "du", f_lstm_sequence_grad, A(.piece = 1), 4, S(2, 8), S(2, 3, 2), S(2, 3, 8),
         S(2, 3, 2)),
    CASE(LSTM_SEQUENCE_GRAD, "dh0", f_lstm_sequence_grad, A(.piece = 2), 4, S(1, 4), S(3, 2, 1), S(3, 2, 4),
         S(3, 2, 1)),
    CASE(LSTM_SEQUENCE_GRAD, "dc0", f_lstm_sequence_grad, A(.piece = 3), 4, S(2, 8), S(2, 2, 2), S(2, 2, 8),
         S(2, 2, 2)),
};

enum { N_CASES = (int)(sizeof cases / sizeof cases[0]) };

/* The rows whose output is linear (pad: affine) in their float inputs. */
static bool linear_row(tg_op_kind op)
{
    static const tg_op_kind linear[] = {
        TG_OP_ADD,
        TG_OP_SUB,
        TG_OP_NEG,
        TG_OP_IDENTITY,
        TG_OP_SUM,
        TG_OP_MEAN,
        TG_OP_RESHAPE,
        TG_OP_TRANSPOSE,
        TG_OP_BROADCAST_TO,
        TG_OP_CONCAT,
        TG_OP_STACK,
        TG_OP_SLICE,
        TG_OP_GATHER,
        TG_OP_SCATTER_ADD,
        TG_OP_PAD,
        TG_OP_EXTRACT_PATCHES,
        TG_OP_PATCHES_TO_IMAGE,
        TG_OP_AVG_POOL2D,
        TG_OP_AVG_POOL2D_GRAD,
        TG_OP_RESIZE,
        TG_OP_RESIZE_GRAD,
    };
    for (size_t i = 0; i < sizeof linear / sizeof linear[0]; i++)
        if (linear[i] == op)
            return true;
    return false;
}

static const char *case_name(const op_case *c, char *buf, size_t size)
{
    snprintf(buf, size, "%s (%s)", c->composite ? c->composite : tg__op_table[c->op].name, c->label);
    return buf;
}

/* ---- inputs: the row's domain, away from its kinks --------------------------------------------- */
static void input_range(const op_case *c, int i, double *lo, double *hi, bool *nonzero)
{
    *lo = -2, *hi = 2, *nonzero = false;
    if (c->range[i][0] != 0 || c->range[i][1] != 0) {
        *lo = c->range[i][0], *hi = c->range[i][1];
        return;
    }
    tg_op_domain d = c->composite ? TG_DOMAIN_REAL : tg__op_table[c->op].domain;
    if (d == TG_DOMAIN_POSITIVE && i == 0)
        *lo = 0.3;
    else if (d == TG_DOMAIN_ABOVE_MINUS_ONE && i == 0)
        *lo = -0.7;
    else if ((d == TG_DOMAIN_NONZERO_1 && i == 1) || (d == TG_DOMAIN_NONZERO_0 && i == 0))
        *nonzero = true; /* |b| in [0.3, 2], either sign */
    else if (d == TG_DOMAIN_UNIT_OPEN && i == 0)
        *lo = -0.9, *hi = 0.9;
    else if (d == TG_DOMAIN_ABOVE_ONE && i == 0)
        *lo = 1.2, *hi = 4;
}

/* Input i of case c, seeded. A row with ties gets distinct values by construction: a
 * shuffled grid, offset per input (`apart` then checks that no two compared values are
 * close). */
static tg_tensor *make_input(const op_case *c, int i, uint64_t seed)
{
    tg_shape shape = c->shape[i];
    int64_t m = 1;
    for (int k = 0; k < shape.rank; k++)
        m *= shape.dims[k];
    double *v = malloc(sizeof(double) * (size_t)(m ? m : 1));
    double lo, hi;
    bool nonzero;
    input_range(c, i, &lo, &hi, &nonzero);
    unsigned kinks = c->composite ? 0 : tg__op_table[c->op].kinks;
    tg_rng *r = tg_rng_new(seed);
    tg_tensor *u = tg_random_uniform(r, TG_F64, shape, .minval = 0, .maxval = 1);
    tg_copy_out_f64(u, v, m);
    if (kinks & TG_KINK_TIES) {
        int64_t *perm = malloc(sizeof(int64_t) * (size_t)(m ? m : 1));
        for (int64_t k = 0; k < m; k++)
            perm[k] = k;
        for (int64_t k = m - 1; k > 0; k--) { /* Fisher-Yates on the uniform draws */
            int64_t j = (int64_t)(v[k] * (double)(k + 1));
            int64_t t = perm[k];
            perm[k] = perm[j > k ? k : j];
            perm[j > k ? k : j] = t;
        }
        for (int64_t k = 0; k < m; k++)
            v[k] = lo + (hi - lo) * ((double)perm[k] + 0.5 + 0.3 * i / GC_MAX_INPUTS) / (double)m;
        free(perm);
    } else {
        for (int64_t k = 0; k < m; k++)
            v[k] = nonzero ? (v[k] < 0.5 ? -1 : 1) * (0.3 + 3.4 * fabs(v[k] - 0.5)) : lo + (hi - lo) * v[k];
    }
    bool pre_activation = c->op == TG_OP_BIAS_ADD_ACT || c->op == TG_OP_ACT_GRAD;
    for (int64_t k = 0; k < m; k++) {
        if (pre_activation) { /* the kink is at x + bias = 0: |x| >= 0.5, |bias| <= 0.3 */
            if (i == 0 && fabs(v[k]) < 0.5)
                v[k] = v[k] < 0 ? v[k] - 0.5 : v[k] + 0.5;
            if (i == 1)
                v[k] *= 0.15;
        } else if ((kinks & TG_KINK_ZERO) && fabs(v[k]) < 0.1) {
            v[k] = v[k] < 0 ? v[k] - 0.1 : v[k] + 0.1;
        }
        if (kinks & TG_KINK_BOUNDS)
            for (int b = 0; b < 2; b++) {
                double bound = b ? c->a->hi : c->a->lo;
                if (fabs(v[k] - bound) < 0.05)
                    v[k] += v[k] < bound ? -0.05 : 0.05;
            }
    }
    tg_tensor *x = tg_tensor_from(TG_F64, shape, v);
    tg_rng_free(r);
    free(v);
    return x;
}

static void make_inputs(const op_case *c, int k, tg_tensor **xs)
{
    for (int i = 0; i < c->n; i++)
        xs[i] = make_input(c, i, 1000 + 16 * (uint64_t)k + (uint64_t)i);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* For a row with ties: no two values that the op compares are within `gap` (each input's
 * own values; an element-wise row compares its inputs with each other too). */
static bool apart(const op_case *c, tg_tensor *const *xs, double gap, const char *name)
{
    if (c->composite || !(tg__op_table[c->op].kinks & TG_KINK_TIES))
        return true;
    bool across = tg__op_table[c->op].flags & TG_OPF_ELEMENTWISE;
    double v[4096];
    int64_t n = 0;
    for (int i = 0; i < c->n; i++) {
        if (!across)
            n = 0;
        int64_t m = tg_size(xs[i]);
        if (n + m > 4096 || tg_copy_out_f64(xs[i], v + n, m) != 0)
            return false;
        n += m;
        if (!across || i == c->n - 1) {
            qsort(v, (size_t)n, sizeof v[0], by_value);
            for (int64_t k = 1; k < n; k++)
                if (v[k] - v[k - 1] < gap) {
                    printf("  FAIL %s: inputs %.10g and %.10g are within %g: a tie\n", name, v[k - 1], v[k], gap);
                    return false;
                }
        }
    }
    return true;
}

/* ---- the checks of one case ---------------------------------------------------------------------- */
/* The call recorded the row's op: a tape watching the inputs holds the node that made the
 * output, of the row's kind; a composite's call recorded each primitive it names. */
static bool recorded(const op_case *c, tg_tensor *const *xs, const char *name)
{
    tg_scope *s = tg_scope_begin();
    tg_tape *tape = tg_tape_begin(.persistent = true);
    for (int i = 0; i < c->n; i++)
        tg_watch(tape, xs[i]);
    tg_tensor *y = c->f(xs, c->n, (void *)c->a);
    tg_tape_end(tape);
    tg_tape *t = tg__tape_get(TG_LOC, "recorded", tape);
    bool ok = y && t;
    if (!ok) {
        printf("  FAIL %s: the call failed: %s\n", name, tg_last_error() ? tg_last_error() : "?");
    } else if (!c->composite) {
        tg_entry *e = tg__tape_lookup(t, y);
        ok = e && e->node && e->node->op == c->op;
        if (!ok)
            printf("  FAIL %s: the tape did not record the output as %s (it has %s)\n", name, tg__op_table[c->op].name,
                   e && e->node ? tg__op_name(e->node->op) : "no node");
    } else {
        for (int p = 0; p < 3 && c->prim[p]; p++) {
            bool seen = false;
            for (size_t k = 0; k < t->n_nodes; k++)
                seen |= t->nodes[k]->op == c->prim[p];
            if (!seen) {
                printf("  FAIL %s: the tape recorded no %s\n", name, tg__op_name(c->prim[p]));
                ok = false;
            }
        }
    }
    tg_tape_free(tape);
    tg_scope_end(s);
    return ok;
}

/* The case's first-order gradient, flattened: d sum(w f(x)^2) / dx for a fixed w, every
 * input's gradient concatenated. An outer tape differentiates it again. The square makes
 * the output's gradient depend on x, so a piecewise-linear op's backward rule is
 * differentiated too (its dy path), not only its zero second derivative. */
static tg_tensor *first_gradient(tg_tensor *const *x, int n, void *u)
{
    const op_case *c = u;
    tg_tape *t = tg_tape_begin();
    for (int i = 0; i < n; i++)
        tg_watch(t, x[i]);
    tg_tensor *y = c->f(x, n, (void *)c->a);
    tg_tensor *loss = y ? tg_sum(tg_mul(tg_square(y), gc_weights(y, 99))) : NULL;
    tg_tape_end(t);
    tg_tensor *g[GC_MAX_INPUTS] = {0}, *flat[GC_MAX_INPUTS];
    int rc = loss ? tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = x, .n_sources = n,
                                 .unconnected = TG_UNCONNECTED_ZERO, .out = g)
                  : -1;
    tg_tape_free(t);
    if (rc != 0)
        return NULL;
    for (int i = 0; i < n; i++)
        flat[i] = tg_reshape(g[i], TG_SHAPE(-1));
    return n == 1 ? flat[0] : tg_concat(flat, n, 0);
}

static bool all_zero(const tg_tensor *g)
{
    int64_t m = tg_size(g);
    double *v = malloc(sizeof(double) * (size_t)(m ? m : 1));
    bool zero = tg_copy_out_f64(g, v, m) == 0;
    for (int64_t k = 0; zero && k < m; k++)
        zero = v[k] == 0;
    free(v);
    return zero;
}

/* A row without a backward rule: its gradient is what the row says. */
static bool no_rule_gradient(const op_case *c, tg_tensor *const *xs, const char *name)
{
    tg_grad_kind kind = tg__op_table[c->op].grad;
    tg_scope *s = tg_scope_begin();
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_watch(tape, xs[0]);
    tg_tensor *y = c->f(xs, c->n, (void *)c->a);
    if (y && !tg_dtype_is_float(tg_dtype_of(y))) /* a float target: a bool or integer one has no gradient anyway */
        y = tg_cast(y, TG_F64);
    tg_tape_end(tape);
    tg_clear_error();
    tg_tensor *g = y ? tg_gradient(tape, y, xs[0]) : NULL;
    bool ok = y != NULL && !tg_has_error();
    if (kind == TG_GRAD_ZERO) { /* zeros of the input's shape */
        ok = ok && g && has_shape(g, tg_shape_of(xs[0])) && all_zero(g);
    } else { /* NONE and STOP: no gradient, and the diagnosis names the cut */
        tg_diagnosis d = {0};
        ok = ok && !g && tg_explain(tape, y, xs[0], &d) == 0;
        tg_cause want = kind == TG_GRAD_STOP ? TG_CAUSE_STOP_GRADIENT : TG_CAUSE_NON_DIFFERENTIABLE;
        if (ok &&
            (d.cause != want || (!(c->flags & C_CUT_BEFORE) && (!d.op || strcmp(d.op, tg__op_table[c->op].name))))) {
            printf("  %s: diagnosis %s at %s, expected %s at %s\n", name, tg_cause_name(d.cause), d.op ? d.op : "-",
                   tg_cause_name(want), tg__op_table[c->op].name);
            ok = false;
        }
    }
    if (!ok)
        printf("  FAIL %s: the gradient is not what a %s row gives (%s)\n", name,
               kind == TG_GRAD_ZERO   ? "ZERO"
               : kind == TG_GRAD_STOP ? "STOP"
                                      : "NONE",
               tg_last_error() ? tg_last_error()
               : g             ? "a gradient came back"
                               : "no error");
    tg_tape_free(tape);
    tg_scope_end(s);
    return ok;
}

static bool check_case(const op_case *c, int k)
{
    char name[160];
    case_name(c, name, sizeof name);
    tg_scope *s = tg_scope_begin();
    tg_tensor *xs[GC_MAX_INPUTS];
    make_inputs(c, k, xs);
    bool ok = apart(c, xs, 1e-3, name);
    ok &= recorded(c, xs, name);
    bool rule = c->composite || tg__op_table[c->op].grad == TG_GRAD_RULE;
    bool twice = c->composite ? (c->flags & C_TWICE) : (tg__op_table[c->op].flags & TG_OPF_TWICE);
    if (rule) {
        bool linear = !c->composite && linear_row(c->op);
        double eps = c->eps ? c->eps : linear ? LINEAR_EPS : EPS, tol = c->tol ? c->tol : linear ? LINEAR_TOL : TOL;
        if (!gradcheck(name, c->f, xs, c->n, (void *)c->a, eps, tol)) {
            printf("  FAIL %s: gradient against finite differences\n", name);
            ok = false;
        }
        if (twice &&
            !gradcheck(name, first_gradient, xs, c->n, (void *)c, c->eps ? c->eps : EPS2, c->tol ? c->tol : TOL2)) {
            printf("  FAIL %s: second order against finite differences of the gradient\n", name);
            ok = false;
        }
    } else {
        ok &= no_rule_gradient(c, xs, name);
    }
    if (!(c->flags & C_NO_F32) &&
        !f32_matches_f64(name, c->f, xs, c->n, (void *)c->a, c->f32_tol ? c->f32_tol : F32_TOL)) {
        printf("  FAIL %s: float32 forward against float64\n", name);
        ok = false;
    }
    tg_scope_end(s);
    return ok;
}

static void test_cases(void)
{
    for (int k = 0; k < N_CASES; k++)
        if (!check_case(&cases[k], k))
            check_failures_in_test++;
}

/* ---- coverage: every row and every composite has a case ------------------------------------------ */
static const char *const composites[] = {
#define OP(...)
#define COMPOSITE(name, ...) name,
#include "ops/ops.def"
#undef OP
#undef COMPOSITE
};

static bool same_shape(tg_shape a, tg_shape b)
{
    return a.rank == b.rank && !memcmp(a.dims, b.dims, sizeof(int64_t) * (size_t)a.rank);
}

static void test_coverage(void)
{
    for (int op = TG_OP_NONE + 1; op < TG_OP_COUNT; op++) {
        int n = 0;
        for (int k = 0; k < N_CASES; k++)
            n += !cases[k].composite && (int)cases[k].op == op;
        if (!n) {
            printf("  FAIL the op table's row %s has no case in tests/test_op_table.c\n", tg__op_table[op].name);
            check_failures_in_test++;
        }
    }
    /* an element-wise row of several inputs broadcasts: one case at least has inputs of two shapes */
    for (int op = TG_OP_NONE + 1; op < TG_OP_COUNT; op++) {
        if (!(tg__op_table[op].flags & TG_OPF_ELEMENTWISE) || tg__op_table[op].n_in < 2)
            continue;
        bool broadcast = false;
        for (int k = 0; k < N_CASES; k++)
            if (!cases[k].composite && (int)cases[k].op == op)
                for (int i = 1; i < cases[k].n; i++)
                    broadcast |= !same_shape(cases[k].shape[0], cases[k].shape[i]);
        if (!broadcast) {
            printf("  FAIL the op table's row %s broadcasts and has no case that does in tests/test_op_table.c\n",
                   tg__op_table[op].name);
            check_failures_in_test++;
        }
    }
    for (size_t i = 0; i < sizeof composites / sizeof composites[0]; i++) {
        int n = 0;
        for (int k = 0; k < N_CASES; k++)
            n += cases[k].composite && !strcmp(cases[k].composite, composites[i]);
        if (!n) {
            printf("  FAIL the composite %s has no case in tests/test_op_table.c\n", composites[i]);
            check_failures_in_test++;
        }
    }
}

/* ---- the dtypes column --------------------------------------------------------------------------- */
/* x as dtype d, with values |x| + 1 (no zero divisor, true as a bool). */
static tg_tensor *as_dtype(const tg_tensor *x, tg_dtype d)
{
    return tg_cast(tg_add(tg_abs(x), tg_scalar_like(x, 1)), d);
}

static tg_attrs window_attrs(const args *a, int64_t h, int64_t w)
{
    return (tg_attrs){.window = {.kh = a->kh,
                                 .kw = a->kw,
                                 .stride_h = a->sh,
                                 .stride_w = a->sw,
                                 .height = h,
                                 .width = w,
                                 .same = a->pad == TG_PADDING_SAME}};
}

static tg_tensor *identity_forward(tg_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    return tg_identity(in[0]);
}

/* Calls row c->op with its input 0 of dtype d, the other inputs as its first case has them
 * (or of dtype d where the row wants them alike). The rows with a public function are
 * called through it; the backward ops, which have none, through the dispatcher. */
static tg_tensor *call_with_dtype(const op_case *c, tg_tensor *const *xs, tg_dtype d)
{
    const args *a = c->a;
    tg_tensor *idx = a ? tg_tensor_from(TG_I64, TG_SHAPE(a->n_idx ? a->n_idx : 1), a->idx) : NULL;
    switch (c->op) {
    case TG_OP_WHERE: return tg_where(tg_cast(tg_tensor_from(TG_I64, a->s1, a->idx), d), xs[0], xs[1]);
    case TG_OP_SCATTER_ADD: return tg_scatter_add(tg_cast(idx, d), xs[0], a->s1, a->axis);
    case TG_OP_ONE_HOT: return tg_one_hot(tg_cast(tg_from_i64(TG_SHAPE(3), 0, 2, 1), d), a->depth);
    case TG_OP_SPARSE_SOFTMAX_XENT: return tg_sparse_softmax_cross_entropy_with_logits(tg_cast(idx, d), xs[0]);
    case TG_OP_TRUNCATEDIV: return tg_truncatediv(as_dtype(xs[0], d), as_dtype(xs[1], d));
    case TG_OP_LOGICAL_AND: return tg_logical_and(as_dtype(xs[0], d), as_dtype(xs[1], d));
    case TG_OP_LOGICAL_OR: return tg_logical_or(as_dtype(xs[0], d), as_dtype(xs[1], d));
    case TG_OP_LOGICAL_NOT: return tg_logical_not(as_dtype(xs[0], d));
    case TG_OP_REDUCE_ANY: return tg_reduce_any(as_dtype(xs[0], d));
    case TG_OP_REDUCE_ALL: return tg_reduce_all(as_dtype(xs[0], d));
    case TG_OP_SCATTER_ND: return tg_scatter_nd(tg_cast(tg_tensor_from(TG_I64, a->s2, a->idx), d), xs[0], a->s1);
    case TG_OP_CUSTOM: {
        tg_tensor *x = as_dtype(xs[0], d);
        return tg_custom_gradient(&x, 1, identity_forward, cube_backward, NULL);
    }
    case TG_OP_XENT_GRAD: /* labels: integer (sparse), or float (dense) of the logits' dtype */
        if (tg_dtype_is_float(d))
            return TG__APPLY(TG_LOC, TG_OP_XENT_GRAD, NULL, as_dtype(xs[0], d), tg_cast(xs[0], d), tg_cast(xs[1], d));
        return TG__APPLY(TG_LOC, TG_OP_XENT_GRAD, NULL, tg_cast(idx, d), xs[0], xs[1]);
    case TG_OP_ACT_GRAD:
        return TG__APPLY(TG_LOC, TG_OP_ACT_GRAD, &(tg_attrs){.act = a->act}, as_dtype(xs[0], d), as_dtype(xs[2], d));
    case TG_OP_MAX_POOL2D_GRAD:
    case TG_OP_MAX_POOL2D_GATHER: {
        tg_tensor *x = as_dtype(xs[0], d), *y = as_dtype(xs[1], d);
        tg_tensor *h = as_dtype(c->op == TG_OP_MAX_POOL2D_GRAD ? xs[1] : xs[2], d);
        tg_attrs w = window_attrs(a, c->shape[0].dims[1], c->shape[0].dims[2]);
        return TG__APPLY(TG_LOC, c->op, &w, x, y, h);
    }
    case TG_OP_AVG_POOL2D_GRAD: {
        tg_attrs w = window_attrs(a, a->s1.dims[1], a->s1.dims[2]);
        return TG__APPLY(TG_LOC, TG_OP_AVG_POOL2D_GRAD, &w, as_dtype(xs[0], d));
    }
    case TG_OP_RESIZE_GRAD: {
        tg_attrs r = {.resize = {.height = a->s2.dims[1], .width = a->s2.dims[2], .method = a->mode}};
        return TG__APPLY(TG_LOC, TG_OP_RESIZE_GRAD, &r, as_dtype(xs[0], d));
    }
    default: {
        tg_tensor *in[GC_MAX_INPUTS];
        for (int i = 0; i < c->n; i++)
            in[i] = as_dtype(xs[i], d);
        return c->f(in, c->n, (void *)a);
    }
    }
}

static void test_dtypes_column(void)
{
    static const tg_dtype all[] = {TG_F32, TG_F64, TG_I32, TG_I64, TG_BOOL, TG_BF16};
    for (int op = TG_OP_NONE + 1; op < TG_OP_COUNT; op++) {
        const op_case *c = NULL;
        for (int k = 0; k < N_CASES && !c; k++)
            c = !cases[k].composite && (int)cases[k].op == op ? &cases[k] : NULL;
        if (!c)
            continue; /* test_coverage names it */
        const tg_op_def *def = &tg__op_table[op];
        tg_scope *s = tg_scope_begin();
        tg_tensor *xs[GC_MAX_INPUTS];
        make_inputs(c, 0, xs);
        bool refused_one = false;
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
            tg_dtype d = all[k];
            bool listed = def->dtypes >> d & 1u;
            if (!listed && refused_one)
                continue;
            tg_clear_error();
            tg_tensor *y = call_with_dtype(c, xs, d);
            if (listed && (!y || y->op != (uint32_t)op)) {
                printf("  FAIL %s with input 0 %s (listed): %s\n", def->name, tg_dtype_name(d),
                       y ? tg__op_name((tg_op_kind)y->op) : tg_last_error());
                check_failures_in_test++;
            } else if (!listed) {
                refused_one = true;
                const char *m = tg_last_error();
                if (y || !m || !strstr(m, def->name)) {
                    printf("  FAIL %s with input 0 %s (not listed): expected an error naming the op, got %s\n",
                           def->name, tg_dtype_name(d),
                           y   ? "a result"
                           : m ? m
                               : "no error");
                    check_failures_in_test++;
                }
            }
        }
        tg_scope_end(s);
    }
    tg_clear_error();
}

/* ---- kinks: the values TensorFlow gives there ---------------------------------------------------- */
/* d sum(f(x) * seed) / dx[i] on a tape of its own (seed NULL: ones). */
static tg_tensor *grad_of(gc_fn f, tg_tensor *const *xs, int n, const args *a, int i)
{
    tg_tape *t = tg_tape_begin();
    for (int k = 0; k < n; k++)
        tg_watch(t, xs[k]);
    tg_tensor *y = f(xs, n, (void *)a);
    tg_tensor *loss = y ? tg_sum(y) : NULL;
    tg_tape_end(t);
    tg_tensor *g = loss ? tg_gradient(t, loss, xs[i]) : NULL;
    tg_tape_free(t);
    return g;
}

#define X1(...) \
    (tg_tensor *[]) { tg_from_f64(TG_SHAPE(NARGS(__VA_ARGS__)), __VA_ARGS__) }

static void kink_abs(void) { CHECK_VALUES(grad_of(f_abs, X1(-1, 0, 2), 1, NULL, 0), 0, -1, 0, 1); }
static void kink_relu(void) { CHECK_VALUES(grad_of(f_relu, X1(-1, 0, 2), 1, NULL, 0), 0, 0, 0, 1); }
/* TF's LeakyReluGrad: x > 0 ? dy : alpha dy */
static void kink_leaky_relu(void)
{
    CHECK_VALUES(grad_of(f_leaky_relu, X1(-1, 0, 2), 1, A(.alpha = 0.2), 0), 1e-15, 0.2, 0.2, 1);
}
/* Keras's ELU(alpha): where(x > 0, elu(x), alpha elu(x)), and EluGrad gives 1 at y = 0 */
static void kink_elu(void)
{
    CHECK_VALUES(grad_of(f_elu, X1(-1, 0, 2), 1, A(.alpha = 0.7), 0), 1e-15, 0.7 * exp(-1.0), 0.7, 1);
}
/* TF's _MaximumMinimumGrad: where(x >= y) (x <= y for minimum): a takes the tie */
static void kink_maximum(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(3), 1, 2, 5), tg_from_f64(TG_SHAPE(3), 1, 3, 4)};
    CHECK_VALUES(grad_of(f_maximum, x, 2, NULL, 0), 0, 1, 0, 1);
    CHECK_VALUES(grad_of(f_maximum, x, 2, NULL, 1), 0, 0, 1, 0);
}
static void kink_minimum(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(3), 1, 2, 5), tg_from_f64(TG_SHAPE(3), 1, 3, 4)};
    CHECK_VALUES(grad_of(f_minimum, x, 2, NULL, 0), 0, 1, 1, 0);
    CHECK_VALUES(grad_of(f_minimum, x, 2, NULL, 1), 0, 0, 0, 1);
}
/* reduce_max and reduce_min: the ties share the gradient evenly */
static void kink_max(void) { CHECK_VALUES(grad_of(f_max, X1(3, 1, 3, 2), 1, A(0), 0), 1e-15, 0.5, 0, 0.5, 0); }
static void kink_min(void)
{
    CHECK_VALUES(grad_of(f_min, X1(1, 1, 3, 1), 1, A(0), 0), 1e-15, 1. / 3, 1. / 3, 0, 1. / 3);
}
/* clip_by_value: the bounds themselves pass the gradient (TF zeroes only x < lo, x > hi) */
static void kink_clip(void)
{
    CHECK_VALUES(grad_of(f_clip, X1(-0.5, 0.7, 1, -1, 0), 1, A(.lo = -0.5, .hi = 0.7), 0), 0, 1, 1, 0, 0, 1);
}
/* cast to an integer: the path is cut (TF: None) */
static void kink_cast(void)
{
    tg_tensor *x = tg_from_f64(TG_SHAPE(2), 0.5, 1.5);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_cast(tg_cast(x, TG_I32), TG_F64);
    tg_tape_end(t);
    CHECK(tg_gradient(t, y, x) == NULL);
    CHECK(!tg_has_error());
    tg_tape_free(t);
}
/* max_pool2d: a window's gradient goes whole to its first maximum in row-major order, as
 * TF's CPU MaxPoolGrad gives it */
static const args pool2 = {.kh = 2, .kw = 2, .sh = 2, .sw = 2};
static tg_tensor *tied_image(void) { return tg_from_f64(TG_SHAPE(1, 2, 2, 1), 1, 3, 3, 0); }
static void kink_max_pool2d(void)
{
    CHECK_VALUES(grad_of(f_max_pool2d, (tg_tensor *[]){tied_image()}, 1, &pool2, 0), 1e-15, 0, 1, 0, 0);
}
static void kink_max_pool2d_grad(void)
{
    tg_tensor *x[] = {tied_image(), tg_from_f64(TG_SHAPE(1, 1, 1, 1), 5)};
    CHECK_VALUES(f_max_pool2d_grad(x, 2, (void *)&pool2), 1e-15, 0, 5, 0, 0);
}
static void kink_max_pool2d_gather(void)
{
    tg_tensor *x[] = {tied_image(), tg_from_f64(TG_SHAPE(1, 1, 1, 1), 5),
                      tg_from_f64(TG_SHAPE(1, 2, 2, 1), 7, 8, 9, 10)};
    CHECK_VALUES(f_max_pool2d_gather(x, 3, (void *)&pool2), 1e-15, 8);
}
/* the fused relu: 0 at x + bias = 0, as relu */
static void kink_bias_add_act(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(1, 2), 0.5, 2), tg_from_f64(TG_SHAPE(2), -0.5, 1)};
    CHECK_VALUES(grad_of(f_bias_add_act, x, 2, A(.act = TG_BIAS_RELU), 0), 0, 0, 1);
}
static void kink_act_grad(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(1, 2), 0.5, 2), tg_from_f64(TG_SHAPE(2), -0.5, 1),
                      tg_from_f64(TG_SHAPE(1, 2), 3, 4)};
    CHECK_VALUES(f_act_grad(x, 3, A(.act = TG_BIAS_RELU)), 0, 0, 4);
}

/* relu's backward at y = 0: dz 0 there (TF's ReluGrad: y > 0), and the sums without it */
static void kink_act_grad_bias_sum(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(2, 2), 0, 2, 0, -1), tg_from_f64(TG_SHAPE(2, 2), 3, 4, 5, 6)};
    CHECK_VALUES(f_act_grad_bias_sum(x, 2, A(.act = TG_BIAS_RELU, .piece = 0)), 0, 0, 4, 0, 0);
    CHECK_VALUES(f_act_grad_bias_sum(x, 2, A(.act = TG_BIAS_RELU, .piece = 1)), 0, 0, 4);
}

/* conv2d_bias_act's ReLU where conv2d + bias is 0: no gradient there (TF's ReluGrad: y > 0),
 * for the image, the kernel and the bias; 2 * 0.5 - 1 = 0 and 4 * 0.5 - 1 = 1 */
static void kink_conv2d_bias_act(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(1, 1, 2, 1), 2, 4), tg_from_f64(TG_SHAPE(1, 1, 1, 1), 0.5),
                      tg_from_f64(TG_SHAPE(1), -1)};
    const args *relu = A(.act = TG_BIAS_RELU, .sh = 1, .sw = 1);
    CHECK_VALUES(f_conv2d_bias_act(x, 3, (void *)relu), 0, 0, 1);
    CHECK_VALUES(grad_of(f_conv2d_bias_act, x, 3, relu, 0), 0, 0, 0.5);
    CHECK_VALUES(grad_of(f_conv2d_bias_act, x, 3, relu, 1), 0, 4);
    CHECK_VALUES(grad_of(f_conv2d_bias_act, x, 3, relu, 2), 0, 1);
}

/* atan2: at y = 0 (x < 0, the branch cut) the rule's value, 1 / x for y and 0 for x;
 * at the origin 0 / 0, NaN for both, as TF's rule */
static void kink_atan2(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(2), 0, 0), tg_from_f64(TG_SHAPE(2), -2, 0)};
    double gy[2], gx[2];
    CHECK(tg_copy_out_f64(grad_of(f_atan2, x, 2, NULL, 0), gy, 2) == 0 && gy[0] == -0.5 && isnan(gy[1]));
    CHECK(tg_copy_out_f64(grad_of(f_atan2, x, 2, NULL, 1), gx, 2) == 0 && gx[0] == 0 && isnan(gx[1]));
}
/* the mods where a / b is an integer (the result jumps): dy for a, -dy * floor(a / b)
 * (trunc for truncatemod) for b, at the integer itself */
static void kink_floormod(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(2), 6, -6), tg_from_f64(TG_SHAPE(2), 3, 3)};
    CHECK_VALUES(f_floormod(x, 2, NULL), 0, 0, 0);
    CHECK_VALUES(grad_of(f_floormod, x, 2, NULL, 0), 0, 1, 1);
    CHECK_VALUES(grad_of(f_floormod, x, 2, NULL, 1), 0, -2, 2);
}
static void kink_truncatemod(void)
{
    tg_tensor *x[] = {tg_from_f64(TG_SHAPE(2), 6, -6), tg_from_f64(TG_SHAPE(2), 3, 3)};
    CHECK_VALUES(grad_of(f_truncatemod, x, 2, NULL, 0), 0, 1, 1);
    CHECK_VALUES(grad_of(f_truncatemod, x, 2, NULL, 1), 0, -2, 2);
}
/* relu6 and hard_sigmoid: 0 at the bounds (TF's Relu6Grad passes strictly inside) */
static void kink_relu6(void) { CHECK_VALUES(grad_of(f_relu6, X1(0, 6, 3), 1, NULL, 0), 0, 0, 0, 1); }
static void kink_hard_sigmoid(void)
{
    CHECK_VALUES(grad_of(f_hard_sigmoid, X1(-3, 3, 0), 1, NULL, 0), 1e-15, 0, 0, 1. / 6);
}
/* selu at 0: scale (TF's SeluGrad reads the output, and 0 is not below 0) */
static void kink_selu(void)
{
    CHECK_VALUES(grad_of(f_selu, X1(0), 1, NULL, 0), 1e-15, 1.0507009873554804934193349852946);
}
/* softsign at 0: 1 (its curvature jumps there, not its slope) */
static void kink_softsign(void) { CHECK_VALUES(grad_of(f_softsign, X1(0, -1, 1), 1, NULL, 0), 1e-15, 1, 0.25, 0.25); }

/* top_k: equal values keep the lower index first, and it takes the gradient (TF) */
static void kink_top_k(void) { CHECK_VALUES(grad_of(f_top_k, X1(3, 1, 3, 2), 1, A(.k = 1), 0), 0, 1, 0, 0, 0); }
/* TF's _UnsortedSegmentMinOrMaxGrad: a segment's ties share its gradient evenly */
static void kink_segment_max(void)
{
    CHECK_VALUES(grad_of(f_segment_max, X1(2, 5, 5), 1, A(.k = 1, .idx = {0, 0, 0}, .n_idx = 3), 0), 1e-15, 0, 0.5,
                 0.5);
}
static void kink_segment_min(void)
{
    CHECK_VALUES(grad_of(f_segment_min, X1(1, 1, 4), 1, A(.k = 1, .idx = {0, 0, 0}, .n_idx = 3), 0), 1e-15, 0.5, 0.5,
                 0);
}

typedef struct kink_case {
    tg_op_kind op;
    void (*fn)(void);
} kink_case;

static const kink_case kink_cases[] = {
    {TG_OP_ABS, kink_abs},
    {TG_OP_RELU, kink_relu},
    {TG_OP_LEAKY_RELU, kink_leaky_relu},
    {TG_OP_ELU, kink_elu},
    {TG_OP_MAXIMUM, kink_maximum},
    {TG_OP_MINIMUM, kink_minimum},
    {TG_OP_MAX, kink_max},
    {TG_OP_MIN, kink_min},
    {TG_OP_CLIP_BY_VALUE, kink_clip},
    {TG_OP_CAST, kink_cast},
    {TG_OP_MAX_POOL2D, kink_max_pool2d},
    {TG_OP_MAX_POOL2D_GRAD, kink_max_pool2d_grad},
    {TG_OP_MAX_POOL2D_GATHER, kink_max_pool2d_gather},
    {TG_OP_BIAS_ADD_ACT, kink_bias_add_act},
    {TG_OP_ACT_GRAD, kink_act_grad},
    {TG_OP_ATAN2, kink_atan2},
    {TG_OP_FLOORMOD, kink_floormod},
    {TG_OP_TRUNCATEMOD, kink_truncatemod},
    {TG_OP_RELU6, kink_relu6},
    {TG_OP_HARD_SIGMOID, kink_hard_sigmoid},
    {TG_OP_SELU, kink_selu},
    {TG_OP_SOFTSIGN, kink_softsign},
    {TG_OP_TOP_K, kink_top_k},
    {TG_OP_UNSORTED_SEGMENT_MAX, kink_segment_max},
    {TG_OP_UNSORTED_SEGMENT_MIN, kink_segment_min},
    {TG_OP_ACT_GRAD_BIAS_SUM, kink_act_grad_bias_sum},
    {TG_OP_CONV2D_BIAS_ACT, kink_conv2d_bias_act},
};

/* Each differentiable row with kinks has a kink case; each kink case passes. */
static void test_kinks(void)
{
    for (int op = TG_OP_NONE + 1; op < TG_OP_COUNT; op++) {
        if (tg__op_table[op].grad != TG_GRAD_RULE || !tg__op_table[op].kinks)
            continue;
        bool found = false;
        for (size_t k = 0; k < sizeof kink_cases / sizeof kink_cases[0]; k++)
            found |= (int)kink_cases[k].op == op;
        if (!found) {
            printf("  FAIL the op table's row %s has kinks and no kink case in tests/test_op_table.c\n",
                   tg__op_table[op].name);
            check_failures_in_test++;
        }
    }
    for (size_t k = 0; k < sizeof kink_cases / sizeof kink_cases[0]; k++) {
        int before = check_failures_in_test;
        tg_scope *s = tg_scope_begin();
        kink_cases[k].fn();
        tg_scope_end(s);
        if (check_failures_in_test != before)
            printf("  (in the kink case of %s)\n", tg__op_table[kink_cases[k].op].name);
    }
}

int main(void)
{
    RUN(test_coverage);
    RUN(test_cases);
    RUN(test_dtypes_column);
    RUN(test_kinks);
    return TEST_SUMMARY();
}
