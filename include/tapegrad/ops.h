/* tapegrad/ops.h: the operations. Each is one entry of the op table (src/ops/): shape
 * rule, forward kernel, and a backward rule or "not differentiable".
 *
 * Every op has a function NAME_at(tg_loc, ...) and a macro NAME(...) that passes the
 * caller's file:line. Binary element-wise ops broadcast as numpy does; both operands
 * must have the same dtype (mixing float32 and float64 is an error, as in TF). */
#ifndef TAPEGRAD_OPS_H
#define TAPEGRAD_OPS_H

#include "tensor.h"

TG_BEGIN_DECLS

/* ---- element-wise, binary (broadcasting) ------------------------------------------ */
tg_tensor *tg_add_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_sub_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_mul_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_div_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_pow_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_maximum_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_minimum_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
#define tg_add(a, b)     tg_add_at(TG_LOC, a, b)
#define tg_sub(a, b)     tg_sub_at(TG_LOC, a, b)
#define tg_mul(a, b)     tg_mul_at(TG_LOC, a, b)
#define tg_div(a, b)     tg_div_at(TG_LOC, a, b)
#define tg_pow(a, b)     tg_pow_at(TG_LOC, a, b)
#define tg_maximum(a, b) tg_maximum_at(TG_LOC, a, b)
#define tg_minimum(a, b) tg_minimum_at(TG_LOC, a, b)

/* Comparisons and logic give bool tensors and are not differentiable. */
tg_tensor *tg_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_not_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_greater_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_greater_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_less_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_less_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_logical_and_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_logical_or_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_logical_not_at(tg_loc loc, const tg_tensor *a);
#define tg_equal(a, b)         tg_equal_at(TG_LOC, a, b)
#define tg_not_equal(a, b)     tg_not_equal_at(TG_LOC, a, b)
#define tg_greater(a, b)       tg_greater_at(TG_LOC, a, b)
#define tg_greater_equal(a, b) tg_greater_equal_at(TG_LOC, a, b)
#define tg_less(a, b)          tg_less_at(TG_LOC, a, b)
#define tg_less_equal(a, b)    tg_less_equal_at(TG_LOC, a, b)
#define tg_logical_and(a, b)   tg_logical_and_at(TG_LOC, a, b)
#define tg_logical_or(a, b)    tg_logical_or_at(TG_LOC, a, b)
#define tg_logical_not(a)      tg_logical_not_at(TG_LOC, a)

/* TF's division family and NaN-safe arithmetic (binary, broadcasting). floormod and
 * floordiv round toward -Inf, so floormod's result has b's sign (Python's % and //);
 * truncatediv (integers only) and truncatemod round toward zero (C's / and %, fmod). An
 * integer b with a zero element is an error ("integer division by zero"), as in TF.
 * div_no_nan and mul_no_nan give 0 wherever b == 0, whatever a is. */
tg_tensor *tg_floormod_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_floordiv_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);    /* not differentiable */
tg_tensor *tg_truncatediv_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b); /* not differentiable */
tg_tensor *tg_truncatemod_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_div_no_nan_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_mul_no_nan_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
tg_tensor *tg_squared_difference_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b);
/* atan2(y, x): the angle of the point (x, y), in [-pi, pi]. */
tg_tensor *tg_atan2_at(tg_loc loc, const tg_tensor *y, const tg_tensor *x);
#define tg_floormod(a, b)           tg_floormod_at(TG_LOC, a, b)
#define tg_floordiv(a, b)           tg_floordiv_at(TG_LOC, a, b)
#define tg_truncatediv(a, b)        tg_truncatediv_at(TG_LOC, a, b)
#define tg_truncatemod(a, b)        tg_truncatemod_at(TG_LOC, a, b)
#define tg_div_no_nan(a, b)         tg_div_no_nan_at(TG_LOC, a, b)
#define tg_mul_no_nan(a, b)         tg_mul_no_nan_at(TG_LOC, a, b)
#define tg_squared_difference(a, b) tg_squared_difference_at(TG_LOC, a, b)
#define tg_atan2(y, x)              tg_atan2_at(TG_LOC, y, x)

/* where(cond, a, b): a where cond is true, else b; cond is bool; all three broadcast. */
tg_tensor *tg_where_at(tg_loc loc, const tg_tensor *cond, const tg_tensor *a, const tg_tensor *b);
#define tg_where(cond, a, b) tg_where_at(TG_LOC, cond, a, b)

/* ---- element-wise, unary ---------------------------------------------------------- */
tg_tensor *tg_neg_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_abs_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_square_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_sqrt_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_rsqrt_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_exp_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_log_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_log1p_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_erf_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_sign_at(tg_loc loc, const tg_tensor *x);     /* gradient: zeros, as in TF */
tg_tensor *tg_floor_at(tg_loc loc, const tg_tensor *x);    /* not differentiable */
tg_tensor *tg_ceil_at(tg_loc loc, const tg_tensor *x);     /* not differentiable */
tg_tensor *tg_round_at(tg_loc loc, const tg_tensor *x);    /* half to even; not differentiable */
tg_tensor *tg_identity_at(tg_loc loc, const tg_tensor *x); /* also reads a variable's value */
tg_tensor *tg_stop_gradient_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_clip_by_value_at(tg_loc loc, const tg_tensor *x, double lo, double hi);
/* Between float dtypes: differentiable. To or from an integer or bool: not. */
tg_tensor *tg_cast_at(tg_loc loc, const tg_tensor *x, tg_dtype dtype);
#define tg_neg(x)                   tg_neg_at(TG_LOC, x)
#define tg_abs(x)                   tg_abs_at(TG_LOC, x)
#define tg_square(x)                tg_square_at(TG_LOC, x)
#define tg_sqrt(x)                  tg_sqrt_at(TG_LOC, x)
#define tg_rsqrt(x)                 tg_rsqrt_at(TG_LOC, x)
#define tg_exp(x)                   tg_exp_at(TG_LOC, x)
#define tg_log(x)                   tg_log_at(TG_LOC, x)
#define tg_log1p(x)                 tg_log1p_at(TG_LOC, x)
#define tg_erf(x)                   tg_erf_at(TG_LOC, x)
#define tg_sign(x)                  tg_sign_at(TG_LOC, x)
#define tg_floor(x)                 tg_floor_at(TG_LOC, x)
#define tg_ceil(x)                  tg_ceil_at(TG_LOC, x)
#define tg_round(x)                 tg_round_at(TG_LOC, x)
#define tg_identity(x)              tg_identity_at(TG_LOC, x)
#define tg_stop_gradient(x)         tg_stop_gradient_at(TG_LOC, x)
#define tg_clip_by_value(x, lo, hi) tg_clip_by_value_at(TG_LOC, x, lo, hi)
#define tg_cast(x, dtype)           tg_cast_at(TG_LOC, x, dtype)

/* Float32 and float64 maths. */
tg_tensor *tg_sin_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_cos_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_tan_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_asin_at(tg_loc loc, const tg_tensor *x); /* NaN outside [-1, 1] */
tg_tensor *tg_acos_at(tg_loc loc, const tg_tensor *x); /* NaN outside [-1, 1] */
tg_tensor *tg_atan_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_sinh_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_cosh_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_asinh_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_acosh_at(tg_loc loc, const tg_tensor *x); /* NaN below 1 */
tg_tensor *tg_atanh_at(tg_loc loc, const tg_tensor *x); /* +-Inf at +-1, NaN beyond */
tg_tensor *tg_reciprocal_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_expm1_at(tg_loc loc, const tg_tensor *x);
/* Bool results; not differentiable. */
tg_tensor *tg_is_nan_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_is_inf_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_is_finite_at(tg_loc loc, const tg_tensor *x);
#define tg_sin(x)        tg_sin_at(TG_LOC, x)
#define tg_cos(x)        tg_cos_at(TG_LOC, x)
#define tg_tan(x)        tg_tan_at(TG_LOC, x)
#define tg_asin(x)       tg_asin_at(TG_LOC, x)
#define tg_acos(x)       tg_acos_at(TG_LOC, x)
#define tg_atan(x)       tg_atan_at(TG_LOC, x)
#define tg_sinh(x)       tg_sinh_at(TG_LOC, x)
#define tg_cosh(x)       tg_cosh_at(TG_LOC, x)
#define tg_asinh(x)      tg_asinh_at(TG_LOC, x)
#define tg_acosh(x)      tg_acosh_at(TG_LOC, x)
#define tg_atanh(x)      tg_atanh_at(TG_LOC, x)
#define tg_reciprocal(x) tg_reciprocal_at(TG_LOC, x)
#define tg_expm1(x)      tg_expm1_at(TG_LOC, x)
#define tg_is_nan(x)     tg_is_nan_at(TG_LOC, x)
#define tg_is_inf(x)     tg_is_inf_at(TG_LOC, x)
#define tg_is_finite(x)  tg_is_finite_at(TG_LOC, x)

/* TF's check_numerics: x itself when every value is finite; otherwise NULL with an error
 * that gives `message`, NaN or Inf, where it is and the op (and line) that made x. Its
 * gradient checks the gradient flowing back the same way. Float tensors only. For every
 * op at once, see TG_CHECK_NUMERICS (autodiff.h). */
tg_tensor *tg_check_numerics_at(tg_loc loc, const tg_tensor *x, const char *message);
#define tg_check_numerics(x, message) tg_check_numerics_at(TG_LOC, x, message)

/* ---- activations ------------------------------------------------------------------ */
tg_tensor *tg_relu_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_leaky_relu_at(tg_loc loc, const tg_tensor *x, double alpha); /* TF default 0.2 */
tg_tensor *tg_elu_at(tg_loc loc, const tg_tensor *x, double alpha);        /* Keras default 1.0 */
tg_tensor *tg_gelu_at(tg_loc loc, const tg_tensor *x, bool approximate);   /* Keras default false */
tg_tensor *tg_sigmoid_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_tanh_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_softplus_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_softmax_at(tg_loc loc, const tg_tensor *x, int axis);
tg_tensor *tg_log_softmax_at(tg_loc loc, const tg_tensor *x, int axis);
tg_tensor *tg_log_sigmoid_at(tg_loc loc, const tg_tensor *x); /* -softplus(-x) */
tg_tensor *tg_relu6_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_selu_at(tg_loc loc, const tg_tensor *x);              /* SELU's fixed alpha and scale */
tg_tensor *tg_silu_at(tg_loc loc, const tg_tensor *x, double beta); /* tf.nn.silu (swish); TF default beta 1 */
tg_tensor *tg_hard_sigmoid_at(tg_loc loc, const tg_tensor *x);      /* Keras 3: relu6(x + 3) / 6 */
tg_tensor *tg_softsign_at(tg_loc loc, const tg_tensor *x);
#define tg_relu(x)              tg_relu_at(TG_LOC, x)
#define tg_leaky_relu(x, alpha) tg_leaky_relu_at(TG_LOC, x, alpha)
#define tg_elu(x, alpha)        tg_elu_at(TG_LOC, x, alpha)
#define tg_gelu(x, approximate) tg_gelu_at(TG_LOC, x, approximate)
#define tg_sigmoid(x)           tg_sigmoid_at(TG_LOC, x)
#define tg_tanh(x)              tg_tanh_at(TG_LOC, x)
#define tg_softplus(x)          tg_softplus_at(TG_LOC, x)
#define tg_softmax(x, axis)     tg_softmax_at(TG_LOC, x, axis)
#define tg_log_softmax(x, axis) tg_log_softmax_at(TG_LOC, x, axis)
#define tg_log_sigmoid(x)       tg_log_sigmoid_at(TG_LOC, x)
#define tg_relu6(x)             tg_relu6_at(TG_LOC, x)
#define tg_selu(x)              tg_selu_at(TG_LOC, x)
#define tg_silu(x, beta)        tg_silu_at(TG_LOC, x, beta)
#define tg_hard_sigmoid(x)      tg_hard_sigmoid_at(TG_LOC, x)
#define tg_softsign(x)          tg_softsign_at(TG_LOC, x)
/* Keras's PReLU: relu(x) - alpha * relu(-x), alpha (learned) broadcast against x. */
tg_tensor *tg_prelu_at(tg_loc loc, const tg_tensor *x, const tg_tensor *alpha);
#define tg_prelu(x, alpha) tg_prelu_at(TG_LOC, x, alpha)

/* ---- reductions ------------------------------------------------------------------- */
typedef struct tg_reduce_opts {
    tg_axes axes; /* default: every axis */
    bool keepdims;
} tg_reduce_opts;
tg_tensor *tg_sum_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
tg_tensor *tg_mean_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
tg_tensor *tg_max_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o); /* ties share the gradient */
tg_tensor *tg_min_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
tg_tensor *tg_logsumexp_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
tg_tensor *tg_variance_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o); /* population */
#define TG__REDUCE_OPTS(...) TG__OPTS(tg_reduce_opts, .keepdims = false, __VA_ARGS__)
#define tg_sum(x, ...)       tg_sum_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_mean(x, ...)      tg_mean_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_max(x, ...)       tg_max_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_min(x, ...)       tg_min_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_logsumexp(x, ...) tg_logsumexp_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_variance(x, ...)  tg_variance_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))

/* Index of the largest (smallest) element along `axis`, as int64; not differentiable. */
tg_tensor *tg_argmax_at(tg_loc loc, const tg_tensor *x, int axis);
tg_tensor *tg_argmin_at(tg_loc loc, const tg_tensor *x, int axis);
#define tg_argmax(x, axis) tg_argmax_at(TG_LOC, x, axis)
#define tg_argmin(x, axis) tg_argmin_at(TG_LOC, x, axis)

/* ---- linear algebra --------------------------------------------------------------- */
typedef struct tg_matmul_opts {
    bool transpose_a, transpose_b;
} tg_matmul_opts;
/* [..., m, k] x [..., k, n] -> [..., m, n]; leading (batch) dims broadcast. */
tg_tensor *tg_matmul_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, tg_matmul_opts o);
#define tg_matmul(a, b, ...) tg_matmul_at(TG_LOC, a, b, TG__OPTS(tg_matmul_opts, .transpose_a = false, __VA_ARGS__))

/* tf.tensordot: contracts the last n axes of a with the first n of b (.n = 2), or the
 * axes paired by two lists (.axes_a = TG_AXES(1, 0), .axes_b = TG_AXES(0, 2)); the result
 * has a's free axes then b's. No axes is the outer product. */
typedef struct tg_tensordot_opts {
    int n;
    tg_axes axes_a, axes_b; /* used instead of n when either is given */
} tg_tensordot_opts;
tg_tensor *tg_tensordot_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, tg_tensordot_opts o);
#define tg_tensordot(a, b, ...) tg_tensordot_at(TG_LOC, a, b, TG__OPTS(tg_tensordot_opts, .n = 0, __VA_ARGS__))

/* tf.linalg.inv, det and slogdet of square matrices [..., n, n], float32 or float64 (LU
 * with partial pivoting, in double). inv of a singular matrix is an error naming its
 * batch index; det gives 0 there, slogdet sign 0 and log_abs_det -inf. slogdet fills
 * out[0] (sign) and out[1] (log_abs_det), both of the batch's shape; 0, or -1 with an error. */
tg_tensor *tg_linalg_inv_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_linalg_det_at(tg_loc loc, const tg_tensor *x);
int tg_linalg_slogdet_at(tg_loc loc, const tg_tensor *x, tg_tensor **out);
/* tf.linalg.diag_part: the main diagonal of matrices [..., n, m], [..., min(n, m)]. */
tg_tensor *tg_linalg_diag_part_at(tg_loc loc, const tg_tensor *x);
#define tg_linalg_inv(x)          tg_linalg_inv_at(TG_LOC, x)
#define tg_linalg_det(x)          tg_linalg_det_at(TG_LOC, x)
#define tg_linalg_slogdet(x, out) tg_linalg_slogdet_at(TG_LOC, x, out)
#define tg_linalg_diag_part(x)    tg_linalg_diag_part_at(TG_LOC, x)

/* tf.einsum: "ij,jk->ik" over n operands (an array of n tensors). Subscripts a-z, A-Z;
 * `...` for broadcast axes; without "->" the output is numpy's (the `...` axes, then
 * the subscripts that occur once, in ASCII order). A subscript repeated in one operand
 * takes its diagonal ("ii->i"); one missing from the output is summed. Several operands
 * are contracted left to right, each pair as one batched matmul. */
tg_tensor *tg_einsum_at(tg_loc loc, const char *equation, tg_tensor *const *operands, int n);
#define tg_einsum(equation, operands, n) tg_einsum_at(TG_LOC, equation, operands, n)

/* ---- shape ------------------------------------------------------------------------ */
tg_tensor *tg_reshape_at(tg_loc loc, const tg_tensor *x, tg_shape shape); /* one dim may be -1 */
tg_tensor *tg_transpose_at(tg_loc loc, const tg_tensor *x, tg_axes perm); /* empty: reverse */
tg_tensor *tg_expand_dims_at(tg_loc loc, const tg_tensor *x, int axis);
tg_tensor *tg_squeeze_at(tg_loc loc, const tg_tensor *x, tg_axes axes); /* empty: all size-1 */
tg_tensor *tg_broadcast_to_at(tg_loc loc, const tg_tensor *x, tg_shape shape);
tg_tensor *tg_concat_at(tg_loc loc, tg_tensor *const *xs, int n, int axis);
tg_tensor *tg_stack_at(tg_loc loc, tg_tensor *const *xs, int n, int axis);
/* size[i] == -1 takes everything from begin[i] to the end of axis i. */
tg_tensor *tg_slice_at(tg_loc loc, const tg_tensor *x, tg_shape begin, tg_shape size);
/* Rows of `params` along `axis` picked by the integer `indices`; gradient: scatter-add. */
tg_tensor *tg_gather_at(tg_loc loc, const tg_tensor *params, const tg_tensor *indices, int axis);
/* float32 one-hot of integer `indices` with a new last axis of size `depth`. */
tg_tensor *tg_one_hot_at(tg_loc loc, const tg_tensor *indices, int64_t depth);
/* paddings: before[i] and after[i] elements on axis i, filled with `value`. */
tg_tensor *tg_pad_at(tg_loc loc, const tg_tensor *x, tg_shape before, tg_shape after, double value);
/* The inverse of gather: rows of `updates` summed into zeros of `shape` at `indices`. */
tg_tensor *tg_scatter_add_at(tg_loc loc, const tg_tensor *indices, const tg_tensor *updates, tg_shape shape, int axis);
#define tg_reshape(x, shape)                          tg_reshape_at(TG_LOC, x, shape)
#define tg_transpose(x, perm)                         tg_transpose_at(TG_LOC, x, perm)
#define tg_expand_dims(x, axis)                       tg_expand_dims_at(TG_LOC, x, axis)
#define tg_squeeze(x, axes)                           tg_squeeze_at(TG_LOC, x, axes)
#define tg_broadcast_to(x, shape)                     tg_broadcast_to_at(TG_LOC, x, shape)
#define tg_concat(xs, n, axis)                        tg_concat_at(TG_LOC, xs, n, axis)
#define tg_stack(xs, n, axis)                         tg_stack_at(TG_LOC, xs, n, axis)
#define tg_slice(x, begin, size)                      tg_slice_at(TG_LOC, x, begin, size)
#define tg_gather(params, indices, axis)              tg_gather_at(TG_LOC, params, indices, axis)
#define tg_one_hot(indices, depth)                    tg_one_hot_at(TG_LOC, indices, depth)
#define tg_pad(x, before, after, value)               tg_pad_at(TG_LOC, x, before, after, value)
#define tg_scatter_add(indices, updates, shape, axis) tg_scatter_add_at(TG_LOC, indices, updates, shape, axis)

/* Ops with several outputs fill an array the caller gives and return 0, or -1 with an
 * error and every out[k] NULL. */
/* tf.split: x cut along `axis` into n pieces out[0..n-1], equal ones (the axis's length
 * must divide by n) or `sizes[0..n-1]` long, one of which may be -1 (what is left).
 * tg_split(x, 3, out, .axis = 1); tg_split(x, 2, out, .sizes = (int64_t[]){2, -1}). */
typedef struct tg_split_opts {
    int axis;             /* default 0; negative counts from the end */
    const int64_t *sizes; /* NULL: n equal pieces */
} tg_split_opts;
int tg_split_at(tg_loc loc, const tg_tensor *x, int n, tg_tensor **out, tg_split_opts o);
#define tg_split(x, n, out, ...) TG__CALL(tg_split_opts, tg_split_at(TG_LOC, x, n, out, tg__o), .axis = 0, __VA_ARGS__)
/* tf.unstack: out[k] is x's k-th slice along `axis`, without that axis; n must be x's
 * length there (TF's num). */
int tg_unstack_at(tg_loc loc, const tg_tensor *x, int n, tg_tensor **out, int axis);
#define tg_unstack(x, n, out, axis) tg_unstack_at(TG_LOC, x, n, out, axis)

/* ---- products, scans, logical reductions, ranking (src/ops/scan.c) ------------------- */
/* tf.reduce_prod over `axes` (default: every axis). Its gradient is TF's: the product of
 * the other elements, from exclusive cumprods, so zeros in x give exact gradients. */
tg_tensor *tg_reduce_prod_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
/* tf.reduce_any / tf.reduce_all of a bool x; bool results, not differentiable. */
tg_tensor *tg_reduce_any_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
tg_tensor *tg_reduce_all_at(tg_loc loc, const tg_tensor *x, tg_reduce_opts o);
#define tg_reduce_prod(x, ...) tg_reduce_prod_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_reduce_any(x, ...)  tg_reduce_any_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))
#define tg_reduce_all(x, ...)  tg_reduce_all_at(TG_LOC, x, TG__REDUCE_OPTS(__VA_ARGS__))

/* tf.cumsum / tf.cumprod along `axis` (default 0): exclusive starts from 0 (1) and leaves
 * the element itself out; reverse runs from the end. tg_cumsum(x, .axis = 1, .reverse = true).
 * Gradients are TF's; cumprod's divides by x with div_no_nan, so it is 0 where x is 0. */
typedef struct tg_scan_opts {
    int axis;
    bool exclusive, reverse;
} tg_scan_opts;
tg_tensor *tg_cumsum_at(tg_loc loc, const tg_tensor *x, tg_scan_opts o);
tg_tensor *tg_cumprod_at(tg_loc loc, const tg_tensor *x, tg_scan_opts o);
#define tg_cumsum(x, ...)  tg_cumsum_at(TG_LOC, x, TG__OPTS(tg_scan_opts, .axis = 0, __VA_ARGS__))
#define tg_cumprod(x, ...) tg_cumprod_at(TG_LOC, x, TG__OPTS(tg_scan_opts, .axis = 0, __VA_ARGS__))

/* tf.math.top_k: out[0] the k largest along the last axis (largest first), out[1] their
 * int32 indices. Equal values keep the lower index first, as TF; NaN ranks above +inf
 * (TF leaves NaN's place undefined). The gradient goes to the selected elements.
 * .sorted = false is accepted and gives the sorted order too: TF leaves the order
 * unspecified then (its CPU kernel's heap order), and sorted is one such order. */
typedef struct tg_top_k_opts {
    bool sorted; /* default true */
} tg_top_k_opts;
int tg_top_k_at(tg_loc loc, const tg_tensor *x, int64_t k, tg_tensor **out, tg_top_k_opts o);
#define tg_top_k(x, k, out, ...) tg_top_k_at(TG_LOC, x, k, out, TG__OPTS(tg_top_k_opts, .sorted = true, __VA_ARGS__))

/* tf.sort and tf.argsort (stable) along `axis` (default -1), from top_k as TF builds
 * them: ascending sorts -x descending (-x - 1 for integers). NaN ranks above +inf, so
 * NaNs come first either way. argsort gives int32 indices. */
typedef enum tg_sort_direction { TG_ASCENDING = 0, TG_DESCENDING = 1 } tg_sort_direction;
typedef struct tg_sort_opts {
    int axis;
    tg_sort_direction direction;
} tg_sort_opts;
tg_tensor *tg_sort_at(tg_loc loc, const tg_tensor *x, tg_sort_opts o);
tg_tensor *tg_argsort_at(tg_loc loc, const tg_tensor *x, tg_sort_opts o);
#define tg_sort(x, ...)    tg_sort_at(TG_LOC, x, TG__OPTS(tg_sort_opts, .axis = -1, __VA_ARGS__))
#define tg_argsort(x, ...) tg_argsort_at(TG_LOC, x, TG__OPTS(tg_sort_opts, .axis = -1, __VA_ARGS__))

/* tf.norm: ord TG_NORM_EUCLIDEAN (default) sqrt(sum(x * x)), TG_NORM_1 sum(|x|),
 * TG_NORM_INF max(|x|), over `axes` (none: all of x as one vector). Two axes (rows, cols)
 * name matrices: euclidean is the Frobenius norm, TG_NORM_1 the largest column sum of
 * |x|, TG_NORM_INF the largest row sum. Composites, so the gradients are TF's: the
 * euclidean one is NaN at x = 0, as TF's. */
typedef enum tg_norm_ord { TG_NORM_EUCLIDEAN = 0, TG_NORM_1 = 1, TG_NORM_INF = 2 } tg_norm_ord;
typedef struct tg_norm_opts {
    tg_norm_ord ord;
    tg_axes axes;
    bool keepdims;
} tg_norm_opts;
tg_tensor *tg_norm_at(tg_loc loc, const tg_tensor *x, tg_norm_opts o);
#define tg_norm(x, ...) tg_norm_at(TG_LOC, x, TG__OPTS(tg_norm_opts, .ord = TG_NORM_EUCLIDEAN, __VA_ARGS__))
/* tf.math.l2_normalize: x * rsqrt(max(sum(x * x), epsilon)) over `axes` (default every
 * axis), epsilon 1e-12 by default. */
typedef struct tg_l2_normalize_opts {
    tg_axes axes;
    double epsilon;
} tg_l2_normalize_opts;
tg_tensor *tg_l2_normalize_at(tg_loc loc, const tg_tensor *x, tg_l2_normalize_opts o);
#define tg_l2_normalize(x, ...) \
    tg_l2_normalize_at(TG_LOC, x, TG__OPTS(tg_l2_normalize_opts, .epsilon = 1e-12, __VA_ARGS__))

/* ---- index moves (src/ops/index.c) ---------------------------------------------------- */
/* tf.tile: x repeated multiples.dims[i] times along axis i (one per axis, each >= 0). */
tg_tensor *tg_tile_at(tg_loc loc, const tg_tensor *x, tg_shape multiples);
/* tf.reverse: the order of the listed axes reversed (none listed: x unchanged). */
tg_tensor *tg_reverse_at(tg_loc loc, const tg_tensor *x, tg_axes axes);
/* tf.roll: x shifted circularly by shift.dims[k] along axes.axis[k]; shifts of one axis
 * add up; negative shifts go the other way. tg_roll(x, TG_SHAPE(2, -1), TG_AXES(0, 1)). */
tg_tensor *tg_roll_at(tg_loc loc, const tg_tensor *x, tg_shape shift, tg_axes axes);
#define tg_tile(x, multiples)   tg_tile_at(TG_LOC, x, multiples)
#define tg_reverse(x, axes)     tg_reverse_at(TG_LOC, x, axes)
#define tg_roll(x, shift, axes) tg_roll_at(TG_LOC, x, shift, axes)

/* tf.pad's REFLECT and SYMMETRIC modes: before.dims[i] and after.dims[i] mirrored elements
 * on axis i; REFLECT leaves the edge out ([1, 2, 3] by 2: 3 2 | 1 2 3 | 2 1), so pads up
 * to the length - 1, SYMMETRIC repeats it (2 1 | 1 2 3 | 3 2), up to the length. */
typedef enum tg_mirror_pad_mode { TG_MIRROR_REFLECT = 0, TG_MIRROR_SYMMETRIC = 1 } tg_mirror_pad_mode;
tg_tensor *tg_mirror_pad_at(tg_loc loc, const tg_tensor *x, tg_shape before, tg_shape after, tg_mirror_pad_mode mode);
#define tg_mirror_pad(x, before, after, mode) tg_mirror_pad_at(TG_LOC, x, before, after, mode)

/* tf.gather_nd: indices [..., d] (int32/int64) hold index tuples into the first d axes of
 * params; the result is indices.shape[:-1] + params.shape[d:]. An index out of range is
 * an error (TF's CPU kernel). Gradient: scatter_nd. With .batch_dims = b, the first b axes
 * of params and indices are a batch (the same sizes in both) and each tuple indexes its
 * own batch's params: the result is indices.shape[:-1] + params.shape[b + d:]. */
typedef struct tg_gather_nd_opts {
    int batch_dims;
} tg_gather_nd_opts;
tg_tensor *tg_gather_nd_at(tg_loc loc, const tg_tensor *params, const tg_tensor *indices, tg_gather_nd_opts o);
/* tf.scatter_nd: updates summed into zeros of `shape` at index tuples (repeats add up). */
tg_tensor *tg_scatter_nd_at(tg_loc loc, const tg_tensor *indices, const tg_tensor *updates, tg_shape shape);
#define tg_gather_nd(params, indices, ...) \
    tg_gather_nd_at(TG_LOC, params, indices, TG__OPTS(tg_gather_nd_opts, .batch_dims = 0, __VA_ARGS__))
#define tg_scatter_nd(indices, updates, shape) tg_scatter_nd_at(TG_LOC, indices, updates, shape)

/* tf.math.unsorted_segment_*: the rows data[i...] (segment_ids' shape is a prefix of
 * data's) combined into output row segment_ids[i...]; the result is [num_segments] +
 * data.shape[segment_ids.rank:]. Negative ids are dropped; ids >= num_segments are an
 * error. An empty segment gives 0 (sum, mean) or the dtype's lowest (max: -FLT_MAX for
 * float32, not -inf) or highest (min) value, as TF. max and min share a segment's
 * gradient evenly among its elements equal to the result; mean is sum / max(count, 1). */
tg_tensor *tg_unsorted_segment_sum_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                      int64_t num_segments);
tg_tensor *tg_unsorted_segment_mean_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                       int64_t num_segments);
tg_tensor *tg_unsorted_segment_max_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                      int64_t num_segments);
tg_tensor *tg_unsorted_segment_min_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                      int64_t num_segments);
/* unsorted_segment_prod: an empty segment gives 1; its gradient is TF's, the product of the
 * segment's other elements (exact at zeros). unsorted_segment_sqrt_n: the sums over
 * sqrt(count), 0 for an empty segment, float data only. */
tg_tensor *tg_unsorted_segment_prod_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                       int64_t num_segments);
tg_tensor *tg_unsorted_segment_sqrt_n_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                         int64_t num_segments);
#define tg_unsorted_segment_prod(data, ids, n)   tg_unsorted_segment_prod_at(TG_LOC, data, ids, n)
#define tg_unsorted_segment_sqrt_n(data, ids, n) tg_unsorted_segment_sqrt_n_at(TG_LOC, data, ids, n)
#define tg_unsorted_segment_sum(data, ids, n)    tg_unsorted_segment_sum_at(TG_LOC, data, ids, n)
#define tg_unsorted_segment_mean(data, ids, n)   tg_unsorted_segment_mean_at(TG_LOC, data, ids, n)
#define tg_unsorted_segment_max(data, ids, n)    tg_unsorted_segment_max_at(TG_LOC, data, ids, n)
#define tg_unsorted_segment_min(data, ids, n)    tg_unsorted_segment_min_at(TG_LOC, data, ids, n)

/* tf.repeat: each element along `axis` repeated repeats[j] times (repeats an int32/int64
 * scalar or vector, of one or one per element); axis TG_AXIS_NONE (TF's None) flattens x
 * first. A gather, so the gradient sums each element's copies. */
#define TG_AXIS_NONE (-2147483647 - 1)
tg_tensor *tg_repeat_at(tg_loc loc, const tg_tensor *x, const tg_tensor *repeats, int axis);
#define tg_repeat(x, repeats, axis) tg_repeat_at(TG_LOC, x, repeats, axis)
/* tf.boolean_mask: mask (bool, rank k >= 1) matches x's axes [axis, axis + k); the result
 * keeps the slices where it is true, those k axes merged into one. A gather. */
tg_tensor *tg_boolean_mask_at(tg_loc loc, const tg_tensor *x, const tg_tensor *mask, int axis);
#define tg_boolean_mask(x, mask, axis) tg_boolean_mask_at(TG_LOC, x, mask, axis)

/* ---- convolution (NHWC) ------------------------------------------------------------ */
/* TF's padding: VALID uses whole windows only; SAME gives ceil(in / stride) outputs and
 * pads max((out - 1) * stride + k - in, 0) positions, the smaller half before. */
typedef enum tg_padding { TG_PADDING_VALID = 0, TG_PADDING_SAME = 1 } tg_padding;

/* im2col: [N, H, W, C] -> [N, OH, OW, KH*KW*C], each row one window ordered (kh, kw, c)
 * like a kernel [KH, KW, C, F]; padded positions are 0. */
tg_tensor *tg_extract_patches_at(tg_loc loc, const tg_tensor *x, int64_t kh, int64_t kw, int64_t stride_h,
                                 int64_t stride_w, tg_padding padding);
/* col2im, the adjoint of extract_patches: sums each window back into an image of
 * `height` x `width` (overlaps add up, padded positions are dropped). */
tg_tensor *tg_patches_to_image_at(tg_loc loc, const tg_tensor *patches, int64_t height, int64_t width, int64_t kh,
                                  int64_t kw, int64_t stride_h, int64_t stride_w, tg_padding padding);
#define tg_extract_patches(x, kh, kw, stride_h, stride_w, padding) \
    tg_extract_patches_at(TG_LOC, x, kh, kw, stride_h, stride_w, padding)
#define tg_patches_to_image(patches, height, width, kh, kw, stride_h, stride_w, padding) \
    tg_patches_to_image_at(TG_LOC, patches, height, width, kh, kw, stride_h, stride_w, padding)

typedef struct tg_conv2d_opts {
    int64_t strides[2];   /* default {1, 1} */
    tg_padding padding;   /* default TG_PADDING_VALID */
    int64_t dilations[2]; /* default {1, 1} ({0, 0} too); above 1 only with strides 1, as TF */
} tg_conv2d_opts;
/* x [N, H, W, C] (*) kernel [KH, KW, C, F] -> [N, OH, OW, F]: TF's conv2d (a
 * cross-correlation): float32 through oneDNN where it is installed (TAPEGRAD_ONEDNN=0:
 * never), else patches times the kernel (one GEMM). */
tg_tensor *tg_conv2d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *kernel, tg_conv2d_opts o);
#define tg_conv2d(x, kernel, ...) \
    tg_conv2d_at(TG_LOC, x, kernel, TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
/* tf.nn.conv2d_backprop_input: conv2d's adjoint in x, dy [N, OH, OW, F] with kernel
 * [KH, KW, C, F] -> [N, height, width, C] (conv2d's gradient for x). */
tg_tensor *tg_conv2d_backprop_input_at(tg_loc loc, const tg_tensor *dy, const tg_tensor *kernel, int64_t height,
                                       int64_t width, tg_conv2d_opts o);
#define tg_conv2d_backprop_input(dy, kernel, height, width, ...)   \
    tg_conv2d_backprop_input_at(TG_LOC, dy, kernel, height, width, \
                                TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
/* tf.compat.v1.nn.conv2d_backprop_filter: conv2d's adjoint in the kernel, x [N, H, W, C]
 * with dy [N, OH, OW, F] -> [kh, kw, C, F] (conv2d's gradient for the kernel). */
tg_tensor *tg_conv2d_backprop_filter_at(tg_loc loc, const tg_tensor *x, const tg_tensor *dy, int64_t kh, int64_t kw,
                                        tg_conv2d_opts o);
#define tg_conv2d_backprop_filter(x, dy, kh, kw, ...) \
    tg_conv2d_backprop_filter_at(TG_LOC, x, dy, kh, kw, TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))

/* ---- convolution family (issue 15): dilation, 1-D, depthwise, separable, transpose ---- */
/* extract_patches and patches_to_image with dilations: conv2d's options (strides,
 * padding, dilations); a dilated window takes every dilation-th row and column. */
tg_tensor *tg_extract_patches_dilated_at(tg_loc loc, const tg_tensor *x, int64_t kh, int64_t kw, tg_conv2d_opts o);
tg_tensor *tg_patches_to_image_dilated_at(tg_loc loc, const tg_tensor *patches, int64_t height, int64_t width,
                                          int64_t kh, int64_t kw, tg_conv2d_opts o);
#define tg_extract_patches_dilated(x, kh, kw, ...) \
    tg_extract_patches_dilated_at(TG_LOC, x, kh, kw, TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
#define tg_patches_to_image_dilated(patches, height, width, kh, kw, ...)   \
    tg_patches_to_image_dilated_at(TG_LOC, patches, height, width, kh, kw, \
                                   TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
typedef struct tg_conv1d_opts {
    int64_t stride;     /* default 1 */
    tg_padding padding; /* default TG_PADDING_VALID */
    int64_t dilation;   /* default 1 (0 too); above 1 only with stride 1 */
} tg_conv1d_opts;
/* tf.nn.conv1d: x [N, W, C] (*) kernel [KW, C, F] -> [N, OW, F], conv2d over a height of 1. */
tg_tensor *tg_conv1d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *kernel, tg_conv1d_opts o);
#define tg_conv1d(x, kernel, ...) tg_conv1d_at(TG_LOC, x, kernel, TG__OPTS(tg_conv1d_opts, .stride = 1, __VA_ARGS__))
/* tf.nn.depthwise_conv2d: x [N, H, W, C], filter [KH, KW, C, M] -> [N, OH, OW, C*M], output
 * channel c*M + m from input channel c alone. */
tg_tensor *tg_depthwise_conv2d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *filter, tg_conv2d_opts o);
#define tg_depthwise_conv2d(x, filter, ...) \
    tg_depthwise_conv2d_at(TG_LOC, x, filter, TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
/* tf.nn.separable_conv2d: depthwise_conv2d with depthwise_filter [KH, KW, C, M] (strides,
 * padding, dilations), then a 1x1 conv2d with pointwise_filter [1, 1, C*M, F]. */
tg_tensor *tg_separable_conv2d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *depthwise_filter,
                                  const tg_tensor *pointwise_filter, tg_conv2d_opts o);
#define tg_separable_conv2d(x, depthwise_filter, pointwise_filter, ...)   \
    tg_separable_conv2d_at(TG_LOC, x, depthwise_filter, pointwise_filter, \
                           TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
/* tf.nn.conv2d_transpose: input [N, H, W, F], filters [KH, KW, C, F] -> output_shape
 * [N, OH, OW, C], the adjoint of conv2d (x -> y) for an x of output_shape: output_shape must
 * be one that conv2d with these strides, padding and dilations takes to [N, H, W, F]. */
tg_tensor *tg_conv2d_transpose_at(tg_loc loc, const tg_tensor *input, const tg_tensor *filters, tg_shape output_shape,
                                  tg_conv2d_opts o);
#define tg_conv2d_transpose(input, filters, output_shape, ...)   \
    tg_conv2d_transpose_at(TG_LOC, input, filters, output_shape, \
                           TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))

typedef struct tg_pool1d_opts {
    int64_t pool_size;  /* default 2 */
    int64_t strides;    /* default 0: the pool size */
    tg_padding padding; /* default TG_PADDING_VALID */
} tg_pool1d_opts;
/* tf.nn.max_pool1d and avg_pool1d on [N, W, C]: the 2-D pools over a height of 1 (the same
 * first-maximum gradient, the same SAME counting). */
tg_tensor *tg_max_pool1d_at(tg_loc loc, const tg_tensor *x, tg_pool1d_opts o);
tg_tensor *tg_avg_pool1d_at(tg_loc loc, const tg_tensor *x, tg_pool1d_opts o);
#define tg_max_pool1d(x, ...) tg_max_pool1d_at(TG_LOC, x, TG__OPTS(tg_pool1d_opts, .pool_size = 2, __VA_ARGS__))
#define tg_avg_pool1d(x, ...) tg_avg_pool1d_at(TG_LOC, x, TG__OPTS(tg_pool1d_opts, .pool_size = 2, __VA_ARGS__))

/* ---- image resizing (resize.c) ---- */
typedef enum tg_resize_method { TG_RESIZE_BILINEAR = 0, TG_RESIZE_NEAREST = 1 } tg_resize_method;
typedef struct tg_resize_opts {
    tg_resize_method method; /* default TG_RESIZE_BILINEAR, as TF */
} tg_resize_opts;
/* tf.image.resize (TF2: half-pixel centers, antialias off): images [N, H, W, C] or
 * [H, W, C] to height x width. Bilinear's gradient scatters dy with the same weights;
 * nearest's routes dy to the pixel each output copied. The dtype is kept (TF's bilinear
 * returns float32 for any input). */
tg_tensor *tg_resize_at(tg_loc loc, const tg_tensor *images, int64_t height, int64_t width, tg_resize_opts o);
#define tg_resize(images, height, width, ...) \
    tg_resize_at(TG_LOC, images, height, width, TG__OPTS(tg_resize_opts, .method = TG_RESIZE_BILINEAR, __VA_ARGS__))

typedef struct tg_pool2d_opts {
    int64_t pool_size[2]; /* default {2, 2} */
    int64_t strides[2];   /* default {0, 0}: the pool size, as Keras */
    tg_padding padding;   /* default TG_PADDING_VALID */
} tg_pool2d_opts;
/* Max over each window; SAME padding never wins. A window's gradient goes to its first
 * maximum in row-major order, as TF's MaxPoolGrad gives it. */
tg_tensor *tg_max_pool2d_at(tg_loc loc, const tg_tensor *x, tg_pool2d_opts o);
/* Mean over each window; with SAME, over the real (not padded) positions only, as TF. */
tg_tensor *tg_avg_pool2d_at(tg_loc loc, const tg_tensor *x, tg_pool2d_opts o);
/* Mean over height and width: [N, H, W, C] -> [N, C]. */
tg_tensor *tg_global_avg_pool2d_at(tg_loc loc, const tg_tensor *x);
#define tg_max_pool2d(x, ...)   tg_max_pool2d_at(TG_LOC, x, TG__OPTS(tg_pool2d_opts, .pool_size = {2, 2}, __VA_ARGS__))
#define tg_avg_pool2d(x, ...)   tg_avg_pool2d_at(TG_LOC, x, TG__OPTS(tg_pool2d_opts, .pool_size = {2, 2}, __VA_ARGS__))
#define tg_global_avg_pool2d(x) tg_global_avg_pool2d_at(TG_LOC, x)

/* ---- fused ops -------------------------------------------------------------------- */
/* The training path's chains in one pass each, with the values and gradients (of any
 * order) of the chains they replace. */
typedef enum tg_bias_act { TG_BIAS_LINEAR = 0, TG_BIAS_RELU, TG_BIAS_SIGMOID, TG_BIAS_TANH } tg_bias_act;
/* act(x + bias), bias a vector as long as x's last axis: tg_relu(tg_add(x, bias)) for
 * TG_BIAS_RELU, and so on (TF's bias_add followed by the activation). */
tg_tensor *tg_bias_add_act_at(tg_loc loc, const tg_tensor *x, const tg_tensor *bias, tg_bias_act act);
#define tg_bias_add_act(x, bias, act) tg_bias_add_act_at(TG_LOC, x, bias, act)
/* act(conv2d(x, kernel) + bias), bias [F] along the output's channels: Conv2D's call in
 * one op, with bias_add_act's values and gradients (float32 with TG_BIAS_RELU or
 * TG_BIAS_LINEAR: one oneDNN primitive, the bias and the ReLU applied before each sum is
 * stored). Options as tg_conv2d's. */
tg_tensor *tg_conv2d_bias_act_at(tg_loc loc, const tg_tensor *x, const tg_tensor *kernel, const tg_tensor *bias,
                                 tg_bias_act act, tg_conv2d_opts o);
#define tg_conv2d_bias_act(x, kernel, bias, act, ...) \
    tg_conv2d_bias_act_at(TG_LOC, x, kernel, bias, act, TG__OPTS(tg_conv2d_opts, .strides = {1, 1}, __VA_ARGS__))
/* TF's sparse_softmax_cross_entropy_with_logits: per example -log_softmax(logits)[label];
 * labels int32/int64 of logits' shape without its last axis, each in [0, classes).
 * Labels get no gradient. */
tg_tensor *tg_sparse_softmax_cross_entropy_with_logits_at(tg_loc loc, const tg_tensor *labels, const tg_tensor *logits);
#define tg_sparse_softmax_cross_entropy_with_logits(labels, logits) \
    tg_sparse_softmax_cross_entropy_with_logits_at(TG_LOC, labels, logits)
/* TF's softmax_cross_entropy_with_logits: per example -sum(labels * log_softmax(logits))
 * over the last axis; labels float, of logits' shape (their gradient is -log_softmax). */
tg_tensor *tg_softmax_cross_entropy_with_logits_at(tg_loc loc, const tg_tensor *labels, const tg_tensor *logits);
#define tg_softmax_cross_entropy_with_logits(labels, logits) \
    tg_softmax_cross_entropy_with_logits_at(TG_LOC, labels, logits)
/* Keras's LSTM cell after its products, in one pass (keras/src/layers/rnn/lstm.py,
 * LSTMCell with the default activations): the gates' pre-activations z = a + b (x W + bias
 * and h U), each (batch, 4 units) in Keras's gate order i, f, g, o; c_prev (batch, units).
 * out[0] = h = o * tanh(c), out[1] = c = f * c_prev + i * tanh(g), where i, f, o =
 * sigmoid of their blocks of z. Float32's sigmoid and tanh are Eigen's, as TF's CPU
 * kernels compute them (src/kernels/fastmath.h), so the values may differ from
 * tg_sigmoid/tg_tanh's chain by a few ulp. */
int tg_lstm_cell_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, const tg_tensor *c_prev, tg_tensor **out);
#define tg_lstm_cell(a, b, c_prev, out) tg_lstm_cell_at(TG_LOC, a, b, c_prev, out)
/* Keras's LSTM (default activations) over a whole sequence in one op, time-major as TF's
 * BlockLSTM: xw (time, batch, 4 units) is x W + bias of every step, recurrent_kernel
 * (units, 4 units), h0 and c0 (batch, units) the initial states. Step s runs tg_lstm_cell
 * on xw[s] and h U. out[0] = hs and out[1] = cs (time, batch, units), every step's h and
 * c; out[2] (time, batch, 4 units) every step's activated gates i, f, tanh(g), o, kept for
 * the gradient. The gradient's products with the recurrent kernel over all steps are one
 * matrix product. */
int tg_lstm_sequence_at(tg_loc loc, const tg_tensor *xw, const tg_tensor *recurrent_kernel, const tg_tensor *h0,
                        const tg_tensor *c0, tg_tensor **out);
#define tg_lstm_sequence(xw, recurrent_kernel, h0, c0, out) \
    tg_lstm_sequence_at(TG_LOC, xw, recurrent_kernel, h0, c0, out)

/* ---- profiling -------------------------------------------------------------------- */
/* While this thread profiles (tg_profile_start ... tg_profile_stop), each op's kernel is
 * timed, per op, with the ops that gradient computations run apart ("in backward"), and
 * so is each optimizer update. What the table does not cover is the rest: recording, the
 * program's own code, data loading. Two clock reads per op while on; nothing when off.
 *
 *   tg_profile_start();
 *   tg_fit(model, x, y, .epochs = 1);
 *   tg_profile_stop();
 *   tg_profile_print(stderr);   // op, calls, seconds, share of the time profiled, us per call
 *
 * tg_profile_rows fills up to `max` rows, most time first, returns how many there are,
 * and gives the seconds profiled so far; tg_profile_reset empties the table. */
typedef struct tg_profile_row {
    const char *name; /* the op (tg_matmul) or section (optimizer update) */
    bool backward;    /* run by a gradient computation */
    int64_t calls;
    double seconds;
} tg_profile_row;
void tg_profile_start(void);
void tg_profile_stop(void);
void tg_profile_reset(void);
int tg_profile_rows(tg_profile_row *rows, int max, double *profiled_seconds);
int tg_profile_print(FILE *stream); /* 0, or -1 when the stream failed */

TG_END_DECLS
#endif
