/* The op table. Each entry is defined beside its kernels (elementwise.c, activation.c,
 * reduce.c, linalg.c, shape.c, conv.c, fused.c, custom.c). */
#include "op.h"

#define OPS(X)                                                                                     \
    X(ADD, add) X(SUB, sub) X(MUL, mul) X(DIV, div) X(POW, pow) X(MAXIMUM, maximum) X(MINIMUM, minimum) \
    X(EQUAL, equal) X(NOT_EQUAL, not_equal) X(GREATER, greater) X(GREATER_EQUAL, greater_equal)     \
    X(LESS, less) X(LESS_EQUAL, less_equal) X(LOGICAL_AND, logical_and) X(LOGICAL_OR, logical_or)   \
    X(LOGICAL_NOT, logical_not) X(WHERE, where)                                                    \
    X(NEG, neg) X(ABS, abs) X(SQUARE, square) X(SQRT, sqrt) X(RSQRT, rsqrt) X(EXP, exp) X(LOG, log) \
    X(LOG1P, log1p) X(ERF, erf) X(SIGN, sign) X(FLOOR, floor) X(CEIL, ceil) X(ROUND, round)         \
    X(IDENTITY, identity) X(STOP_GRADIENT, stop_gradient) X(CLIP_BY_VALUE, clip_by_value) X(CAST, cast) \
    X(RELU, relu) X(LEAKY_RELU, leaky_relu) X(ELU, elu) X(GELU, gelu) X(SIGMOID, sigmoid)          \
    X(TANH, tanh) X(SOFTPLUS, softplus) X(SOFTMAX, softmax) X(LOG_SOFTMAX, log_softmax)            \
    X(SUM, sum) X(MEAN, mean) X(MAX, max) X(MIN, min) X(LOGSUMEXP, logsumexp) X(VARIANCE, variance) \
    X(ARGMAX, argmax) X(ARGMIN, argmin) X(MATMUL, matmul)                                          \
    X(RESHAPE, reshape) X(TRANSPOSE, transpose) X(BROADCAST_TO, broadcast_to) X(CONCAT, concat)    \
    X(STACK, stack) X(SLICE, slice) X(GATHER, gather) X(SCATTER_ADD, scatter_add)                  \
    X(ONE_HOT, one_hot) X(PAD, pad)                                                               \
    X(EXTRACT_PATCHES, extract_patches) X(PATCHES_TO_IMAGE, patches_to_image)                      \
    X(BIAS_ADD_ACT, bias_add_act) X(ACT_GRAD, act_grad) X(SPARSE_SOFTMAX_XENT, sparse_softmax_xent)   \
    X(SOFTMAX_XENT, softmax_xent) X(XENT_GRAD, xent_grad)                                          \
    X(MAX_POOL2D, max_pool2d) X(MAX_POOL2D_GRAD, max_pool2d_grad) X(MAX_POOL2D_GATHER, max_pool2d_gather) \
    X(AVG_POOL2D, avg_pool2d) X(AVG_POOL2D_GRAD, avg_pool2d_grad) X(CUSTOM, custom)                \
    X(CHECK_NUMERICS, check_numerics)

#define DECLARE(KIND, name) extern const tg_op_def tg__op_##name;
OPS(DECLARE)
#undef DECLARE

#define ENTRY(KIND, name) [TG_OP_##KIND] = &tg__op_##name,
const tg_op_def *const tg_op_table[TG_OP_COUNT] = {OPS(ENTRY)};
#undef ENTRY

const char *tg__op_name(tg_op_kind op)
{
    return op > TG_OP_NONE && op < TG_OP_COUNT && tg_op_table[op] ? tg_op_table[op]->name : "?";
}
