/* The op table: one row per op, made from ops.def.
 *
 * A row holds the op's shape rule, its forward kernel and its backward rule (or says
 * that it has no gradient), with what the engine and the checks need to know of it.
 * Every public op function packs its arguments into a tg_call and hands it to tg__apply,
 * which checks the inputs, runs the shape rule, allocates the output in the innermost
 * scope, runs the forward kernel and, when a tape is recording, records the call
 * (autodiff/tape.c). Adding an op means one row in ops.def, its functions, and its
 * cases in tests/test_op_table.c. */
#ifndef TG_OP_H
#define TG_OP_H

#include "../tensor/tensor_impl.h"
#include "tapegrad/autodiff.h"

typedef enum tg_op_kind {
    TG_OP_NONE = 0,
#define OP(KIND, ...) TG_OP_##KIND,
#define COMPOSITE(...)
#include "ops.def"
#undef OP
#undef COMPOSITE
    TG_OP_COUNT
} tg_op_kind;

/* What the tape does with an op. */
typedef enum tg_grad_kind {
    TG_GRAD_RULE = 0, /* differentiable: run `backward` */
    TG_GRAD_NONE,     /* registered as not differentiable (TF: None): cuts the path */
    TG_GRAD_ZERO,     /* the gradient is zeros of the input's shape (TF: sign) */
    TG_GRAD_STOP,     /* stop_gradient: cuts the path on purpose */
} tg_grad_kind;

/* The non-tensor arguments of one call: one named member per kind of op, which only
 * the ops named beside it read. A recorded call keeps a copy. */
typedef struct tg_window_attrs { /* extract_patches, patches_to_image, the pools */
    int64_t kh, kw, stride_h, stride_w;
    int64_t height, width;          /* the image's, for the ops that make one */
    bool same;                      /* TF's SAME padding, else VALID */
    double pad_value;               /* extract_patches: what padding reads */
    int64_t dilation_h, dilation_w; /* extract_patches, patches_to_image: 0 or 1 for none */
    int act;                        /* conv2d_bias_act: a tg_bias_act */
} tg_window_attrs;

typedef struct tg_attrs {
    union {
        struct {
            double lo, hi;
        } clip;           /* clip_by_value */
        double alpha;     /* leaky_relu, elu */
        double beta;      /* silu: x * sigmoid(beta * x) */
        bool approximate; /* gelu: the tanh form */
        int axis;         /* softmax, log_softmax, argmax, argmin,
                                                                  concat, stack, gather */
        struct {
            int axis;
            const int64_t *sizes;
        } split;                   /* split (sizes: during the call only), unstack */
        struct {                   /* sum, mean, max, min, logsumexp, variance */
            int n;                 /* every axis when the call named none */
            int axes[TG_MAX_RANK]; /* normalised, in the order given */
            bool keepdims;
        } reduce;
        struct {
            bool transpose_a, transpose_b;
        } matmul;
        tg_shape shape; /* reshape, broadcast_to: the result's */
        struct {
            int n;
            int64_t perm[TG_MAX_RANK];
        } transpose; /* n 0: the axes reversed */
        struct {
            int n;
            int64_t begin[TG_MAX_RANK], size[TG_MAX_RANK];
        } slice; /* size -1: to the end */
        struct {
            int n;
            int64_t before[TG_MAX_RANK], after[TG_MAX_RANK];
            double value;
        } pad;
        struct {
            tg_shape shape;
            int axis;
        } scatter;     /* scatter_add: the result's shape */
        int64_t depth; /* one_hot */
        tg_window_attrs window;
        struct {
            int64_t height, width; /* the result's */
            int method;            /* tg_resize_method */
        } resize;                  /* resize, resize_grad (resize.c) */
        int act;                   /* bias_add_act, act_grad: tg_bias_act */
        tg_dtype dtype;            /* cast: the target */
        struct {
            tg_custom_backward_fn backward;
            void *user;
        } custom; /* custom_gradient */
        struct {
            const char *message;
            bool in_backward;
        } check; /* check_numerics */
        /* ---- scan.c and index.c ---- */
        struct {
            int axis;
            bool exclusive, reverse;
        } scan;    /* cumsum, cumprod */
        int64_t k; /* top_k */
        struct {
            int n;
            int64_t multiples[TG_MAX_RANK];
        } tile; /* tile: one per axis of x */
        struct {
            bool axis[TG_MAX_RANK];
        } reverse; /* reverse: the axes reversed */
        struct {
            int64_t shift[TG_MAX_RANK];
        } roll; /* roll: per axis, in [0, dim) */
        struct {
            int n;
            int64_t before[TG_MAX_RANK], after[TG_MAX_RANK];
            bool symmetric;
        } mirror_pad;
        int64_t num_segments; /* unsorted_segment_* */
    };
} tg_attrs;

/* One call of an op, as seen by its shape rule and forward kernel. */
typedef struct tg_call {
    tg_loc loc;
    tg_op_kind op;
    const tg_tensor *const *in;
    int n;
    const tg_attrs *a;      /* never NULL */
    int n_out;              /* the number of outputs (the row's, or the call's when it says -1) */
    tg_tensor *const *outs; /* every output, for the forward of an op with several */
} tg_call;

/* What a backward rule sees: the recorded call, its outputs and their gradients. */
typedef struct tg_grad_ctx {
    tg_loc loc;           /* the line of the recorded forward call */
    tg_tensor *const *in; /* the recorded inputs (variable reads are snapshots) */
    int n;
    const tg_tensor *out; /* outs[0] */
    tg_tensor *dy;        /* dys[0]: the output's gradient (read only) */
    const tg_attrs *a;
    uint32_t skip; /* bit i: input i needs no gradient (not on a path to a source) */
    int n_out;
    tg_tensor *const *outs;
    tg_tensor *const *dys; /* one per output; zeros for an output no gradient reached */
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
    TG_DOMAIN_NONZERO_0,       /* input 0 != 0: reciprocal */
    TG_DOMAIN_UNIT_OPEN,       /* -1 < input 0 < 1: asin, acos, atanh; tan (away from its poles) */
    TG_DOMAIN_ABOVE_ONE,       /* input 0 > 1: acosh */
} tg_op_domain;

enum {                        /* tg_op_def.kinks: bits */
       TG_KINK_ZERO = 1,      /* at an input element equal to 0 (relu, abs, elu's curvature) */
       TG_KINK_TIES = 2,      /* where two compared elements are equal (maximum, max, pools) */
       TG_KINK_BOUNDS = 4,    /* at two bounds the sampler names: clip_by_value's lo and hi, relu6's 0 and 6,
                                  hard_sigmoid's -3 and 3 */
       TG_KINK_STEPS = 8,     /* piecewise constant, steps at integers and halves (floor, round) */
       TG_KINK_QUOTIENT = 16, /* where a / b is an integer (floormod, floordiv, truncatemod): the
                                  sampler hands a / b - round(a / b) over as a value with a kink at 0 */
};

enum { /* tg_op_def.flags: bits (ops.def says what they mean) */
       TG_OPF_ELEMENTWISE = 1,
       TG_OPF_TWICE = 2,
       TG_OPF_VIEW = 4,
       TG_OPF_FLOAT_GRAD = 8,
       TG_OPF_BF16_NATIVE = 16, /* the kernel takes bfloat16 itself; other rows taking it are promoted */
};

enum { /* tg_op_def.dtypes: bit d for dtype d */
       TG_DTYPES_FLOAT = 1u << TG_F32 | 1u << TG_F64,
       TG_DTYPES_INT = 1u << TG_I32 | 1u << TG_I64,
       TG_DTYPES_BOOL = 1u << TG_BOOL,
       TG_DTYPES_NUMBER = TG_DTYPES_FLOAT | TG_DTYPES_INT,
       TG_DTYPES_ANY = TG_DTYPES_NUMBER | TG_DTYPES_BOOL,
       TG_DTYPES_CASTABLE = TG_DTYPES_ANY | 1u << TG_BF16, /* tg_cast: bfloat16 too */
       /* float ops that also take bfloat16 (mixed precision): unless the row is
        * TG_OPF_BF16_NATIVE, the dispatcher runs the float32 kernel on the inputs widened
        * exactly and rounds the output to bfloat16, as Eigen's bfloat16 kernels do in TF */
       TG_DTYPES_FLOAT_BF16 = TG_DTYPES_FLOAT | 1u << TG_BF16,
       TG_DTYPES_NUMBER_BF16 = TG_DTYPES_NUMBER | 1u << TG_BF16,
       TG_DTYPES_ANY_BF16 = TG_DTYPES_ANY | 1u << TG_BF16,
};

typedef struct tg_op_def {
    const char *name; /* as the user calls it: "tg_mul" */
    int n_in, n_out;  /* n_in -1: a list of any length; n_out -1: as many as the call says */
    unsigned dtypes;  /* TG_DTYPES_*: what input 0 may be */
    /* Sets *shape and *dtype of the output (shape[k] and dtype[k] for each of several),
     * or sets an error and returns false. */
    bool (*shape)(const tg_call *c, tg_shape *shape, tg_dtype *dtype);
    /* Fills `out` (allocated with the shape's size; an op with several outputs fills
     * every c->outs[k], out being the first). Returns false with an error set. */
    bool (*forward)(const tg_call *c, tg_tensor *out);
    tg_grad_kind grad;
    /* Sets dx[i] to the gradient contribution for input i (NULL for none), built from
     * public ops so that outer tapes record it. dx[i] may have the output's broadcast
     * shape: the engine sums it over the broadcast axes (tg__rule_gradients). The tape
     * accumulates the contributions. Returns false with an error set. */
    bool (*backward)(const tg_grad_ctx *g, tg_tensor **dx);
    unsigned flags; /* TG_OPF_* bits */
    tg_op_domain domain;
    unsigned kinks;  /* TG_KINK_* bits */
    const char *doc; /* one line for the op list */
} tg_op_def;

extern const tg_op_def tg__op_table[TG_OP_COUNT];

/* Each op's functions, declared from its row. */
#define RULE(backward) bool backward(const tg_grad_ctx *g, tg_tensor **dx);
#define NONE
#define ZERO
#define STOP
#define OP(KIND, NAME, IN, OUT, DTYPES, SHAPE, FORWARD, GRAD, ...)  \
    bool SHAPE(const tg_call *c, tg_shape *shape, tg_dtype *dtype); \
    bool FORWARD(const tg_call *c, tg_tensor *out);                 \
    GRAD
#define COMPOSITE(...)
#include "ops.def"
#undef OP
#undef COMPOSITE
#undef RULE
#undef NONE
#undef ZERO
#undef STOP

/* What the tape does with one recorded call: the row's kind, except for a FLOAT_GRAD op
 * (cast) between a float and an integer or bool, which has no gradient (TF's None). */
static inline tg_grad_kind tg__grad_kind(tg_op_kind op, const tg_tensor *const *in, const tg_attrs *a)
{
    const tg_op_def *d = &tg__op_table[op];
    if ((d->flags & TG_OPF_FLOAT_GRAD) && !(tg__dtype_is_real(in[0]->dtype) && tg__dtype_is_real(a->dtype)))
        return TG_GRAD_NONE;
    return d->grad;
}

/* Runs the backward rule of a differentiable call and sums each dx[i] that kept the
 * output's broadcast shape back to its input's shape. False with an error set. */
bool tg__rule_gradients(const tg_grad_ctx *g, tg_op_kind op, tg_tensor **dx);

/* Runs one op. NULL with the first error kept when an input is NULL. */
tg_tensor *tg__apply(tg_loc loc, tg_op_kind op, const tg_tensor *const *in, int n, const tg_attrs *a);
/* Rows without a bfloat16 kernel run on bfloat16 inputs widened to float32 (dispatch.c):
 * whether c is such a call, and its forward into a given output (a replayed graph's). */
bool tg__needs_widening(const tg_call *c, const tg_op_def *def);
bool tg__forward_widened(const tg_call *c, tg_tensor *out);
/* Runs an op with n_out outputs into outs[]. Returns 0, or -1 with every outs[k] NULL. */
int tg__apply_n(tg_loc loc, tg_op_kind op, const tg_tensor *const *in, int n, const tg_attrs *a, int n_out,
                tg_tensor **outs);
#define TG__APPLY(loc, op, attrs, ...)                          \
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

/* The tape's side of recording (autodiff/tape.c) of a call and its outputs c->outs;
 * called by tg__apply when any tape records. Returns false with an error set. */
bool tg__tape_record(const tg_call *c);
/* Graph mode's side (graph/trace.c) of a call run while a function is traced. */
void tg__trace_op(const tg_call *c);
/* TG_CHECK_* flags from the environment (TAPEGRAD_CHECK). */
unsigned tg__env_check(void);
/* With TG_CHECK_NUMERICS (numerics.c): the dispatcher's check of a forward output, and
 * the tape's check of the gradient a backward rule gave for input i of node `op`
 * (recorded at `loc` in `layer`, which may be NULL). False with an error naming them. */
bool tg__numerics_forward(const tg_call *c, const tg_tensor *out);
bool tg__numerics_gradient(tg_op_kind op, tg_loc loc, const char *layer, const tg_tensor *const *in, int n, int i,
                           const tg_tensor *dx, const tg_tensor *dy);

#endif
