/* The op table: one entry per op, keyed by tg_op_kind.
 *
 * An entry holds the op's shape rule, its forward kernel and its backward rule (or says
 * that it has no gradient). Every public op function packs its arguments into a
 * tg_call and hands it to tg__apply, which checks the inputs, runs the shape rule,
 * allocates the output in the innermost scope, runs the forward kernel and, when a tape
 * is recording, records the call (autodiff/tape.c). Adding an op means one enum value,
 * one entry, and its test. */
#ifndef TG_OP_H
#define TG_OP_H

#include "../tensor/tensor_impl.h"
#include "tapegrad/autodiff.h"

typedef enum tg_op_kind {
    TG_OP_NONE = 0,
    /* element-wise binary */
    TG_OP_ADD, TG_OP_SUB, TG_OP_MUL, TG_OP_DIV, TG_OP_POW, TG_OP_MAXIMUM, TG_OP_MINIMUM,
    /* comparisons and logic (not differentiable) */
    TG_OP_EQUAL, TG_OP_NOT_EQUAL, TG_OP_GREATER, TG_OP_GREATER_EQUAL, TG_OP_LESS, TG_OP_LESS_EQUAL,
    TG_OP_LOGICAL_AND, TG_OP_LOGICAL_OR, TG_OP_LOGICAL_NOT,
    TG_OP_WHERE,
    /* element-wise unary */
    TG_OP_NEG, TG_OP_ABS, TG_OP_SQUARE, TG_OP_SQRT, TG_OP_RSQRT, TG_OP_EXP, TG_OP_LOG, TG_OP_LOG1P,
    TG_OP_ERF, TG_OP_SIGN, TG_OP_FLOOR, TG_OP_CEIL, TG_OP_ROUND, TG_OP_IDENTITY, TG_OP_STOP_GRADIENT,
    TG_OP_CLIP_BY_VALUE, TG_OP_CAST,
    /* activations */
    TG_OP_RELU, TG_OP_LEAKY_RELU, TG_OP_ELU, TG_OP_GELU, TG_OP_SIGMOID, TG_OP_TANH, TG_OP_SOFTPLUS,
    TG_OP_SOFTMAX, TG_OP_LOG_SOFTMAX,
    /* reductions */
    TG_OP_SUM, TG_OP_MEAN, TG_OP_MAX, TG_OP_MIN, TG_OP_LOGSUMEXP, TG_OP_VARIANCE, TG_OP_ARGMAX, TG_OP_ARGMIN,
    /* linear algebra */
    TG_OP_MATMUL,
    /* shape */
    TG_OP_RESHAPE, TG_OP_TRANSPOSE, TG_OP_BROADCAST_TO, TG_OP_CONCAT, TG_OP_STACK, TG_OP_SLICE,
    TG_OP_GATHER, TG_OP_SCATTER_ADD, TG_OP_ONE_HOT, TG_OP_PAD,
    /* convolution (im2col and its adjoint) */
    TG_OP_EXTRACT_PATCHES, TG_OP_PATCHES_TO_IMAGE,
    /* fused (fused.c): one pass where the unfused chain makes several */
    TG_OP_BIAS_ADD_ACT, TG_OP_ACT_GRAD, TG_OP_SPARSE_SOFTMAX_XENT, TG_OP_SOFTMAX_XENT, TG_OP_XENT_GRAD,
    /* pooling (conv.c): each window read in place, the gradients in adjoint pairs */
    TG_OP_MAX_POOL2D, TG_OP_MAX_POOL2D_GRAD, TG_OP_MAX_POOL2D_GATHER, TG_OP_AVG_POOL2D, TG_OP_AVG_POOL2D_GRAD,
    /* user-supplied backward */
    TG_OP_CUSTOM,
    /* identity that fails on NaN or Inf (numerics.c) */
    TG_OP_CHECK_NUMERICS,
    TG_OP_COUNT
} tg_op_kind;

/* What the tape does with an op. */
typedef enum tg_grad_kind {
    TG_GRAD_RULE = 0,     /* differentiable: run `backward` */
    TG_GRAD_NONE,         /* registered as not differentiable (TF: None): cuts the path */
    TG_GRAD_ZERO,         /* the gradient is zeros of the input's shape (TF: sign) */
    TG_GRAD_STOP,         /* stop_gradient: cuts the path on purpose */
} tg_grad_kind;

/* The non-tensor arguments of a call; which fields an op uses is its own business. */
typedef struct tg_attrs {
    double f[2];                  /* alpha, clip bounds, pad value, ... */
    int64_t i[TG_MAX_RANK];       /* axes, permutation, slice begin, pad before, ... */
    int64_t j[TG_MAX_RANK];       /* slice size, pad after, target shape, ... */
    int n;                        /* number of values used in i (and j) */
    int axis;
    bool keepdims, flag_a, flag_b;
    tg_dtype dtype;               /* cast target */
    /* custom gradients */
    tg_custom_backward_fn custom_backward;
    void *user;
} tg_attrs;

/* One call of an op, as seen by its shape rule and forward kernel. */
typedef struct tg_call {
    tg_loc loc;
    tg_op_kind op;
    const tg_tensor *const *in;
    int n;
    const tg_attrs *a;            /* never NULL */
} tg_call;

/* What a backward rule sees: the recorded call, its output and the output's gradient. */
typedef struct tg_grad_ctx {
    tg_loc loc;                   /* the line of the recorded forward call */
    tg_tensor *const *in;         /* the recorded inputs (variable reads are snapshots) */
    int n;
    const tg_tensor *out;
    const tg_tensor *dy;
    const tg_attrs *a;
    uint32_t skip;                /* bit i: input i needs no gradient (not on a path to a source) */
} tg_grad_ctx;

/* Whether a backward rule should compute input i's gradient: rules may leave dx[i] NULL
 * when it is not wanted (a product's gradient for a data batch, say), to save the work. */
static inline bool tg__grad_wanted(const tg_grad_ctx *g, int i) { return i >= 32 || !(g->skip >> i & 1u); }

/* Where an op is smooth, for the generic checks that call every row of the table on
 * random values (the op-graph gradient fuzzer, fuzz/opgraph.c): the inputs' domain, and
 * the points where the op or its first derivative jumps. Finite differences are only
 * taken away from those. */
typedef enum tg_op_domain {
    TG_DOMAIN_REAL = 0,        /* every input may be any real */
    TG_DOMAIN_POSITIVE,        /* input 0 > 0: sqrt, rsqrt, log, pow's base */
    TG_DOMAIN_ABOVE_MINUS_ONE, /* input 0 > -1: log1p */
    TG_DOMAIN_NONZERO_1,       /* input 1 != 0: a divisor */
} tg_op_domain;

enum {                         /* tg_op_def.kinks: bits */
    TG_KINK_ZERO = 1,          /* at an input element equal to 0 (relu, abs, elu's curvature) */
    TG_KINK_TIES = 2,          /* where two compared elements are equal (maximum, max, pools) */
    TG_KINK_BOUNDS = 4,        /* at the bounds attrs f[0], f[1] (clip_by_value) */
    TG_KINK_STEPS = 8,         /* piecewise constant, steps at integers and halves (floor, round) */
};

typedef struct tg_op_def {
    const char *name;             /* as the user calls it: "tg_mul" */
    tg_grad_kind grad;
    /* Sets *shape and *dtype of the output, or sets an error and returns false. */
    bool (*shape)(const tg_call *c, tg_shape *shape, tg_dtype *dtype);
    /* Fills `out` (allocated with the shape's size). Returns false with an error set. */
    bool (*forward)(const tg_call *c, tg_tensor *out);
    /* Sets dx[i] to the gradient contribution for input i (NULL for none), built from
     * public ops so that outer tapes record it. The tape accumulates the contributions.
     * Returns false with an error set. */
    bool (*backward)(const tg_grad_ctx *g, tg_tensor **dx);
    /* The output may share the input's storage (reshape): forward is then skipped when
     * the input is an ordinary scope tensor. */
    bool view;
    /* Optional: the gradient kind of one call, for ops whose differentiability depends
     * on their arguments (cast: only between float dtypes). */
    tg_grad_kind (*grad_for)(const tg_tensor *const *in, const tg_attrs *a);
    tg_op_domain domain;
    unsigned kinks;               /* TG_KINK_* bits */
} tg_op_def;

extern const tg_op_def *const tg_op_table[TG_OP_COUNT];

static inline tg_grad_kind tg__grad_kind(tg_op_kind op, const tg_tensor *const *in, const tg_attrs *a)
{
    const tg_op_def *d = tg_op_table[op];
    return d->grad_for ? d->grad_for(in, a) : d->grad;
}

/* Runs one op. NULL with the first error kept when an input is NULL. */
tg_tensor *tg__apply(tg_loc loc, tg_op_kind op, const tg_tensor *const *in, int n, const tg_attrs *a);
#define TG__APPLY(loc, op, attrs, ...) \
    tg__apply(loc, op, (const tg_tensor *const[]){__VA_ARGS__}, \
              (int)(sizeof((const tg_tensor *const[]){__VA_ARGS__}) / sizeof(tg_tensor *)), attrs)

/* ---- helpers shared by shape rules and kernels ---------------------------------------- */
/* numpy broadcasting of a and b into out; false with an error naming op and shapes. */
bool tg__broadcast_shapes(const tg_call *c, const tg_shape *a, const tg_shape *b, tg_shape *out);
/* Both inputs must share one dtype (float32 and float64 never mix, as in TF). */
bool tg__same_dtype(const tg_call *c, const tg_tensor *a, const tg_tensor *b);
bool tg__require_float(const tg_call *c, const tg_tensor *x, const char *arg);
/* Normalises axis (negative counts from the end) for a rank; false with an error. */
bool tg__norm_axis(const tg_call *c, int axis, int rank, int *out);
const char *tg__op_name(tg_op_kind op);

/* The op profile (profile.c): seconds now, an op's kernel time, a named section's time
 * (`section` a static string). */
double tg__profile_now(void);
void tg__profile_op(tg_op_kind op, double seconds);
void tg__profile_add(const char *section, double seconds);

/* Sums a gradient over the axes that broadcasting added or stretched, so it has `shape`
 * again. Public ops only: outer tapes can differentiate it. */
tg_tensor *tg__unbroadcast(tg_loc loc, const tg_tensor *grad, const tg_shape *shape);

/* The tape's side of recording (autodiff/tape.c); called by tg__apply when any tape
 * records. Returns false with an error set. */
bool tg__tape_record(const tg_call *c, tg_tensor *out);
/* TG_CHECK_* flags from the environment (TAPEGRAD_CHECK). */
unsigned tg__env_check(void);
/* With TG_CHECK_NUMERICS (numerics.c): the dispatcher's check of a forward output, and
 * the tape's check of the gradient a backward rule gave for input i of node `op`
 * (recorded at `loc` in `layer`, which may be NULL). False with an error naming them. */
bool tg__numerics_forward(const tg_call *c, const tg_tensor *out);
bool tg__numerics_gradient(tg_op_kind op, tg_loc loc, const char *layer, const tg_tensor *const *in, int n, int i,
                           const tg_tensor *dx, const tg_tensor *dy);

#endif
