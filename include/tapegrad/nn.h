/* tapegrad/nn.h: Keras layers, initializers and the Sequential model.
 *
 *   tg_model *m = tg_sequential(
 *       tg_dense(.units = 128, .activation = TG_RELU, .input_dim = 10),
 *       tg_dense(.units = 1, .activation = TG_SIGMOID));
 *   tg_tensor *y = tg_model_call(m, x, .training = true);   // recorded by an open tape
 *   int n;
 *   tg_tensor *const *w = tg_model_trainable_variables(m, &n);
 *   ...
 *   tg_model_free(m);                                          // layers and variables too
 *
 * Names, defaults and behaviour are Keras 3's: Dense(units) is linear with a bias,
 * glorot_uniform kernel and zeros bias; variables are named "dense/kernel",
 * "dense_1/bias", ... (numbered per kind within a model); a frozen layer's variables
 * leave the trainable list and stop being watched by tapes. Weights come from seeded
 * initializers: the same model seed gives bit-identical weights. There is no global RNG.
 *
 * Layers are built (their variables created) when the shape of one example is known:
 * from .input_dim / .input_shape on the first layer, from tg_model_build, or from the
 * first call. Every constructor returns NULL with an error on bad options. */
#ifndef TAPEGRAD_NN_H
#define TAPEGRAD_NN_H

#include "autodiff.h"
#include "ops.h"

TG_BEGIN_DECLS

typedef struct tg_layer tg_layer;
typedef struct tg_model tg_model;

/* A layer option `.dtype` left at TG_DTYPE_INHERIT takes the model's dtype (float32). */
#define TG_DTYPE_INHERIT TG_DTYPE_COUNT

/* ---- initializers ------------------------------------------------------------------- */
typedef enum tg_init_kind {
    TG_INIT_DEFAULT = 0,    /* the layer's Keras default (glorot_uniform for kernels) */
    TG_INIT_GLOROT_UNIFORM, /* U(-l, l), l = sqrt(6 / (fan_in + fan_out)) */
    TG_INIT_GLOROT_NORMAL,  /* truncated normal, stddev sqrt(2 / (fan_in + fan_out)) / .8796 */
    TG_INIT_HE_UNIFORM,     /* l = sqrt(6 / fan_in) */
    TG_INIT_HE_NORMAL,      /* stddev sqrt(2 / fan_in) / .8796 */
    TG_INIT_LECUN_UNIFORM,  /* l = sqrt(3 / fan_in) */
    TG_INIT_LECUN_NORMAL,   /* stddev sqrt(1 / fan_in) / .8796 */
    TG_INIT_ZEROS,
    TG_INIT_ONES,
    TG_INIT_CONSTANT,         /* .value */
    TG_INIT_RANDOM_UNIFORM,   /* U(.minval, .maxval) */
    TG_INIT_RANDOM_NORMAL,    /* N(.mean, .stddev) */
    TG_INIT_TRUNCATED_NORMAL, /* N(.mean, .stddev) redrawn beyond two stddevs */
    TG_INIT_ORTHOGONAL,       /* .value (gain, 0 means 1) times Q of a normal matrix's QR */
    TG_INIT_COUNT
} tg_init_kind;

typedef struct tg_initializer {
    tg_init_kind kind;
    double value;          /* constant */
    double minval, maxval; /* random_uniform */
    double mean, stddev;   /* random_normal, truncated_normal */
} tg_initializer;

#define tg_init_glorot_uniform() ((tg_initializer){.kind = TG_INIT_GLOROT_UNIFORM})
#define tg_init_orthogonal()     ((tg_initializer){.kind = TG_INIT_ORTHOGONAL})
#define tg_init_glorot_normal()  ((tg_initializer){.kind = TG_INIT_GLOROT_NORMAL})
#define tg_init_he_uniform()     ((tg_initializer){.kind = TG_INIT_HE_UNIFORM})
#define tg_init_he_normal()      ((tg_initializer){.kind = TG_INIT_HE_NORMAL})
#define tg_init_lecun_uniform()  ((tg_initializer){.kind = TG_INIT_LECUN_UNIFORM})
#define tg_init_lecun_normal()   ((tg_initializer){.kind = TG_INIT_LECUN_NORMAL})
#define tg_init_zeros()          ((tg_initializer){.kind = TG_INIT_ZEROS})
#define tg_init_ones()           ((tg_initializer){.kind = TG_INIT_ONES})
#define tg_init_constant(v)      ((tg_initializer){.kind = TG_INIT_CONSTANT, .value = (v)})
#define tg_init_random_uniform(lo, hi) \
    ((tg_initializer){.kind = TG_INIT_RANDOM_UNIFORM, .minval = (lo), .maxval = (hi)})
#define tg_init_random_normal(m, sd) ((tg_initializer){.kind = TG_INIT_RANDOM_NORMAL, .mean = (m), .stddev = (sd)})
#define tg_init_truncated_normal(m, sd) \
    ((tg_initializer){.kind = TG_INIT_TRUNCATED_NORMAL, .mean = (m), .stddev = (sd)})

/* Keras's regularizers (keras.regularizers.L1, L2, L1L2): a penalty l1 * sum(|w|) + l2 *
 * sum(w^2) on a layer's variable, added to the loss as Keras adds `model.losses`
 * (tg_model_compute_loss, so fit's and evaluate's loss include it). {0} is none. */
typedef struct tg_regularizer {
    double l1, l2;
} tg_regularizer;
#define tg_l1(l1_)       ((tg_regularizer){.l1 = (l1_)})
#define tg_l2(l2_)       ((tg_regularizer){.l2 = (l2_)})
#define tg_l1_l2(a_, b_) ((tg_regularizer){.l1 = (a_), .l2 = (b_)})

const char *tg_initializer_name(tg_init_kind kind); /* "glorot_uniform", ... */
/* Keras's fans: a vector (n) has n and n; a matrix (in, out) has in and out; a conv
 * kernel (..., in, out) multiplies both by the receptive field (the product of ...). */
void tg_initializer_fans(tg_shape shape, double *fan_in, double *fan_out);
/* Values of `init` for a variable of `shape`, in the innermost scope; the same seed gives
 * the same values. TG_INIT_DEFAULT means glorot_uniform. */
tg_tensor *tg_initialize_at(tg_loc loc, tg_initializer init, tg_dtype dtype, tg_shape shape, uint64_t seed);
#define tg_initialize(init, dtype, shape, seed) tg_initialize_at(TG_LOC, init, dtype, shape, seed)

/* ---- activations -------------------------------------------------------------------- */
typedef enum tg_activation {
    TG_LINEAR = 0, /* Keras activation=None */
    TG_RELU,
    TG_SIGMOID,
    TG_TANH,
    TG_SOFTMAX, /* over the last axis */
    TG_SOFTPLUS,
    TG_ELU,        /* alpha 1.0 */
    TG_GELU,       /* exact (approximate=False), as Keras 3 */
    TG_LEAKY_RELU, /* negative_slope 0.2, as Keras 3 */
    TG_RELU6,
    TG_SELU,
    TG_SILU,         /* x * sigmoid(x): Keras's "silu" and "swish" */
    TG_HARD_SIGMOID, /* relu6(x + 3) / 6, as Keras 3 */
    TG_SOFTSIGN,
    TG_LOG_SIGMOID,
    TG_ACTIVATION_COUNT
} tg_activation;

const char *tg_activation_name(tg_activation a); /* "relu", ...; NULL if out of range */
/* The activation applied to x (linear gives a copy). */
tg_tensor *tg_activate_at(tg_loc loc, const tg_tensor *x, tg_activation a);
#define tg_activate(x, a) tg_activate_at(TG_LOC, x, a)

/* ---- dtype policies ------------------------------------------------------------------ */
/* Keras's global dtype policy (keras.config.set_dtype_policy), read by each layer made
 * after it is set: "float32" (the default: layers take the model's dtype), "float64", or
 * "mixed_bfloat16": variables, optimizer state and the loss stay float32 while Dense,
 * Conv2D, the 2-D poolings, Activation and Dropout compute in bfloat16 (their inputs and
 * variables cast to it inside the call, the casts recorded, so gradients reach the float32
 * variables); a model's outputs are cast back to float32. Layers of other kinds compute in
 * float32 under it. An unknown name is an error naming the valid ones; returns 0 or -1. */
int tg_set_dtype_policy_at(tg_loc loc, const char *name);
#define tg_set_dtype_policy(name) tg_set_dtype_policy_at(TG_LOC, name)
const char *tg_dtype_policy(void); /* the global policy's name */

/* ---- layers ------------------------------------------------------------------------- */
/* Options every layer takes. */
#define TG__LAYER_FIELDS                                                                         \
    const char *name;         /* default: Keras's, numbered per kind within the model */         \
    tg_dtype dtype;           /* of the variables and the computation; default the model's */    \
    uint64_t seed;            /* nonzero: this layer's seed; 0: derived from the model's */      \
    const char *dtype_policy; /* Keras's: "float32", "float64", "mixed_bfloat16"; default the  \
                                 global policy (tg_set_dtype_policy) when dtype is not given */ \
    tg_shape input_shape      /* on the first layer: one example's shape, without the batch */
#define TG__LAYER_DEFAULTS .dtype = TG_DTYPE_INHERIT

typedef struct tg_dense_opts {
    TG__LAYER_FIELDS;
    int64_t units;                                       /* required, > 0 */
    tg_activation activation;                            /* default TG_LINEAR */
    bool use_bias;                                       /* default true */
    tg_initializer kernel_initializer;                   /* default glorot_uniform */
    tg_initializer bias_initializer;                     /* default zeros */
    int64_t input_dim;                                   /* on the first layer: input_shape (input_dim,) */
    tg_regularizer kernel_regularizer, bias_regularizer; /* default none */
    tg_constraint kernel_constraint, bias_constraint;    /* default none */
    tg_regularizer activity_regularizer;                 /* of the output; default none */
} tg_dense_opts;
tg_layer *tg_dense_at(tg_loc loc, tg_dense_opts o);
#define tg_dense(...) tg_dense_at(TG_LOC, TG__OPTS(tg_dense_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))

typedef struct tg_activation_layer_opts {
    TG__LAYER_FIELDS;
    tg_activation activation;
} tg_activation_layer_opts;
tg_layer *tg_activation_layer_at(tg_loc loc, tg_activation_layer_opts o);
#define tg_activation_layer(...) \
    tg_activation_layer_at(TG_LOC, TG__OPTS(tg_activation_layer_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's PReLU: relu(x) - alpha * relu(-x) with a learned alpha of one example's shape
 * (alpha_initializer zeros), shared (size 1) along the axes listed in shared_axes (batch
 * axis counted, e.g. TG_AXES(1, 2) for one alpha per channel of an image). */
typedef struct tg_prelu_layer_opts {
    TG__LAYER_FIELDS;
    tg_initializer alpha_initializer; /* default zeros */
    tg_axes shared_axes;              /* default none */
} tg_prelu_layer_opts;
tg_layer *tg_prelu_layer_at(tg_loc loc, tg_prelu_layer_opts o);
#define tg_prelu_layer(...) tg_prelu_layer_at(TG_LOC, TG__OPTS(tg_prelu_layer_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Inverted dropout: while training, each element is zeroed with probability `rate` and
 * the others are scaled by 1 / (1 - rate); at inference it passes x through. */
typedef struct tg_dropout_opts {
    TG__LAYER_FIELDS;
    double rate; /* in [0, 1) */
} tg_dropout_opts;
tg_layer *tg_dropout_at(tg_loc loc, tg_dropout_opts o);
#define tg_dropout(...) tg_dropout_at(TG_LOC, TG__OPTS(tg_dropout_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

typedef struct tg_flatten_opts {
    TG__LAYER_FIELDS;
} tg_flatten_opts;
tg_layer *tg_flatten_at(tg_loc loc, tg_flatten_opts o);
#define tg_flatten(...) tg_flatten_at(TG_LOC, TG__OPTS(tg_flatten_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

typedef struct tg_reshape_layer_opts {
    TG__LAYER_FIELDS;
    tg_shape target_shape; /* without the batch dim; one dim may be -1 */
} tg_reshape_layer_opts;
tg_layer *tg_reshape_layer_at(tg_loc loc, tg_reshape_layer_opts o);
#define tg_reshape_layer(...) \
    tg_reshape_layer_at(TG_LOC, TG__OPTS(tg_reshape_layer_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Training (and trainable): normalises with the batch's mean and (biased) variance and
 * moves moving_mean/moving_variance toward them: moving = moving * momentum + batch *
 * (1 - momentum). Inference, or a frozen layer: uses the moving statistics. */
typedef struct tg_batch_normalization_opts {
    TG__LAYER_FIELDS;
    int axis;                                                            /* the feature axis; default -1 */
    double momentum;                                                     /* default 0.99 */
    double epsilon;                                                      /* default 1e-3 */
    bool center, scale;                                                  /* beta, gamma; default true */
    tg_initializer beta_initializer, gamma_initializer;                  /* zeros, ones */
    tg_initializer moving_mean_initializer, moving_variance_initializer; /* zeros, ones */
} tg_batch_normalization_opts;
tg_layer *tg_batch_normalization_at(tg_loc loc, tg_batch_normalization_opts o);
#define tg_batch_normalization(...)                                                                                   \
    tg_batch_normalization_at(TG_LOC,                                                                                 \
                              TG__OPTS(tg_batch_normalization_opts, TG__LAYER_DEFAULTS, .axis = -1, .momentum = 0.99, \
                                       .epsilon = 1e-3, .center = true, .scale = true, __VA_ARGS__))

/* Normalises each example over `axis`: (x - mean) / sqrt(var + epsilon) * gamma + beta. */
typedef struct tg_layer_normalization_opts {
    TG__LAYER_FIELDS;
    int axis;                                           /* default -1 */
    double epsilon;                                     /* default 1e-3 */
    bool center, scale;                                 /* default true */
    tg_initializer beta_initializer, gamma_initializer; /* zeros, ones */
} tg_layer_normalization_opts;
tg_layer *tg_layer_normalization_at(tg_loc loc, tg_layer_normalization_opts o);
#define tg_layer_normalization(...)                                                                         \
    tg_layer_normalization_at(TG_LOC, TG__OPTS(tg_layer_normalization_opts, TG__LAYER_DEFAULTS, .axis = -1, \
                                               .epsilon = 1e-3, .center = true, .scale = true, __VA_ARGS__))

/* Rows of an (input_dim, output_dim) table picked by integer inputs; float inputs are
 * cast to integers, as Keras does. */
typedef struct tg_embedding_opts {
    TG__LAYER_FIELDS;
    int64_t input_dim;                     /* vocabulary size, > 0 */
    int64_t output_dim;                    /* > 0 */
    tg_initializer embeddings_initializer; /* default random_uniform(-0.05, 0.05) */
    int64_t input_length;                  /* on the first layer: input_shape (input_length,) */
    bool mask_zero; /* index 0 is padding: the output's mask is inputs != 0 (Keras's compute_mask) */
} tg_embedding_opts;
tg_layer *tg_embedding_at(tg_loc loc, tg_embedding_opts o);
#define tg_embedding(...) tg_embedding_at(TG_LOC, TG__OPTS(tg_embedding_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- convolution and pooling (NHWC: batch, height, width, channels) ------------------- */
/* Keras's Conv2D (named _layer because tg_conv2d is the op): a kernel (kh, kw, in, filters)
 * slid over the image, plus a bias, then the activation. Pairs like kernel_size take
 * {h, w}; {k} means {k, k}. */
typedef struct tg_conv2d_layer_opts {
    TG__LAYER_FIELDS;
    int64_t filters;                                     /* required, > 0 */
    int64_t kernel_size[2];                              /* required, e.g. {3, 3} or {3} */
    int64_t strides[2];                                  /* default {1, 1} */
    tg_padding padding;                                  /* TG_PADDING_VALID (default) or TG_PADDING_SAME */
    tg_activation activation;                            /* default TG_LINEAR */
    bool use_bias;                                       /* default true */
    tg_initializer kernel_initializer;                   /* default glorot_uniform (fans include kh * kw) */
    tg_initializer bias_initializer;                     /* default zeros */
    tg_regularizer kernel_regularizer, bias_regularizer; /* default none */
    tg_constraint kernel_constraint, bias_constraint;    /* default none */
    tg_regularizer activity_regularizer;                 /* of the output; default none */
} tg_conv2d_layer_opts;
tg_layer *tg_conv2d_layer_at(tg_loc loc, tg_conv2d_layer_opts o);
#define tg_conv2d_layer(...) \
    tg_conv2d_layer_at(TG_LOC, TG__OPTS(tg_conv2d_layer_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))

/* MaxPooling2D and AveragePooling2D. */
typedef struct tg_pooling2d_opts {
    TG__LAYER_FIELDS;
    int64_t pool_size[2]; /* default {2, 2} */
    int64_t strides[2];   /* default: the pool size */
    tg_padding padding;   /* default TG_PADDING_VALID */
} tg_pooling2d_opts;
tg_layer *tg_max_pooling2d_at(tg_loc loc, tg_pooling2d_opts o);
tg_layer *tg_average_pooling2d_at(tg_loc loc, tg_pooling2d_opts o);
#define tg_max_pooling2d(...) tg_max_pooling2d_at(TG_LOC, TG__OPTS(tg_pooling2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))
#define tg_average_pooling2d(...) \
    tg_average_pooling2d_at(TG_LOC, TG__OPTS(tg_pooling2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* GlobalAveragePooling2D: the mean over height and width, (h, w, c) -> (c). */
typedef struct tg_global_pooling2d_opts {
    TG__LAYER_FIELDS;
} tg_global_pooling2d_opts;
tg_layer *tg_global_average_pooling2d_at(tg_loc loc, tg_global_pooling2d_opts o);
#define tg_global_average_pooling2d(...) \
    tg_global_average_pooling2d_at(TG_LOC, TG__OPTS(tg_global_pooling2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- more convolution and pooling (docs/keras.md lists them beside Keras's names) ------- */
/* Keras's Conv1D on sequences (batch, steps, channels): a kernel (kernel_size, in, filters)
 * slid along the steps, plus a bias, then the activation. */
typedef struct tg_conv1d_layer_opts {
    TG__LAYER_FIELDS;
    int64_t filters;                   /* required, > 0 */
    int64_t kernel_size;               /* required, > 0 */
    int64_t strides;                   /* default 1 */
    tg_padding padding;                /* TG_PADDING_VALID (default) or TG_PADDING_SAME */
    int64_t dilation_rate;             /* default 1; above 1 only with strides 1, as Keras */
    tg_activation activation;          /* default TG_LINEAR */
    bool use_bias;                     /* default true */
    tg_initializer kernel_initializer; /* default glorot_uniform */
    tg_initializer bias_initializer;   /* default zeros */
} tg_conv1d_layer_opts;
tg_layer *tg_conv1d_layer_at(tg_loc loc, tg_conv1d_layer_opts o);
#define tg_conv1d_layer(...) \
    tg_conv1d_layer_at(TG_LOC, TG__OPTS(tg_conv1d_layer_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))

/* MaxPooling1D and AveragePooling1D on (batch, steps, channels). */
typedef struct tg_pooling1d_opts {
    TG__LAYER_FIELDS;
    int64_t pool_size;  /* default 2 */
    int64_t strides;    /* default: the pool size */
    tg_padding padding; /* default TG_PADDING_VALID */
} tg_pooling1d_opts;
tg_layer *tg_max_pooling1d_at(tg_loc loc, tg_pooling1d_opts o);
tg_layer *tg_average_pooling1d_at(tg_loc loc, tg_pooling1d_opts o);
#define tg_max_pooling1d(...) tg_max_pooling1d_at(TG_LOC, TG__OPTS(tg_pooling1d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))
#define tg_average_pooling1d(...) \
    tg_average_pooling1d_at(TG_LOC, TG__OPTS(tg_pooling1d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* GlobalMaxPooling1D, GlobalAveragePooling1D ((steps, c) -> (c)) and GlobalMaxPooling2D
 * ((h, w, c) -> (c)); they take GlobalAveragePooling2D's options. */
tg_layer *tg_global_max_pooling1d_at(tg_loc loc, tg_global_pooling2d_opts o);
tg_layer *tg_global_average_pooling1d_at(tg_loc loc, tg_global_pooling2d_opts o);
tg_layer *tg_global_max_pooling2d_at(tg_loc loc, tg_global_pooling2d_opts o);
#define tg_global_max_pooling1d(...) \
    tg_global_max_pooling1d_at(TG_LOC, TG__OPTS(tg_global_pooling2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))
#define tg_global_average_pooling1d(...) \
    tg_global_average_pooling1d_at(TG_LOC, TG__OPTS(tg_global_pooling2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))
#define tg_global_max_pooling2d(...) \
    tg_global_max_pooling2d_at(TG_LOC, TG__OPTS(tg_global_pooling2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's Conv2DTranspose: conv2d's adjoint, a kernel (kh, kw, filters, in) as Keras
 * stores it; the output is (h * s + max(k - s, 0), ...) with TG_PADDING_VALID and
 * (h * s, ...) with TG_PADDING_SAME (k dilated). */
typedef struct tg_conv2d_transpose_layer_opts {
    TG__LAYER_FIELDS;
    int64_t filters;                   /* required, > 0 */
    int64_t kernel_size[2];            /* required, e.g. {3, 3} or {3} */
    int64_t strides[2];                /* default {1, 1} */
    tg_padding padding;                /* TG_PADDING_VALID (default) or TG_PADDING_SAME */
    int64_t dilation_rate[2];          /* default {1, 1}; above 1 only with strides 1 */
    tg_activation activation;          /* default TG_LINEAR */
    bool use_bias;                     /* default true */
    tg_initializer kernel_initializer; /* default glorot_uniform */
    tg_initializer bias_initializer;   /* default zeros */
} tg_conv2d_transpose_layer_opts;
tg_layer *tg_conv2d_transpose_layer_at(tg_loc loc, tg_conv2d_transpose_layer_opts o);
#define tg_conv2d_transpose_layer(...) \
    tg_conv2d_transpose_layer_at(      \
        TG_LOC, TG__OPTS(tg_conv2d_transpose_layer_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))

/* Keras's DepthwiseConv2D (variables kernel (kh, kw, in, depth_multiplier) and bias
 * (in * depth_multiplier)) and SeparableConv2D (depthwise_kernel (kh, kw, in,
 * depth_multiplier), pointwise_kernel (1, 1, in * depth_multiplier, filters), bias
 * (filters)). */
typedef struct tg_separable_conv2d_layer_opts {
    TG__LAYER_FIELDS;
    int64_t filters;                      /* SeparableConv2D: required, > 0; DepthwiseConv2D: none */
    int64_t kernel_size[2];               /* required, e.g. {3, 3} or {3} */
    int64_t strides[2];                   /* default {1, 1} */
    tg_padding padding;                   /* TG_PADDING_VALID (default) or TG_PADDING_SAME */
    int64_t depth_multiplier;             /* default 1 */
    int64_t dilation_rate[2];             /* default {1, 1}; above 1 only with strides 1 */
    tg_activation activation;             /* default TG_LINEAR */
    bool use_bias;                        /* default true */
    tg_initializer depthwise_initializer; /* default glorot_uniform */
    tg_initializer pointwise_initializer; /* SeparableConv2D: default glorot_uniform */
    tg_initializer bias_initializer;      /* default zeros */
} tg_separable_conv2d_layer_opts;
typedef tg_separable_conv2d_layer_opts tg_depthwise_conv2d_layer_opts;
tg_layer *tg_depthwise_conv2d_layer_at(tg_loc loc, tg_depthwise_conv2d_layer_opts o);
tg_layer *tg_separable_conv2d_layer_at(tg_loc loc, tg_separable_conv2d_layer_opts o);
#define tg_depthwise_conv2d_layer(...) \
    tg_depthwise_conv2d_layer_at(      \
        TG_LOC, TG__OPTS(tg_depthwise_conv2d_layer_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))
#define tg_separable_conv2d_layer(...) \
    tg_separable_conv2d_layer_at(      \
        TG_LOC, TG__OPTS(tg_separable_conv2d_layer_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))

/* ---- reshaping images (NHWC) --------------------------------------------------------------- */
/* Keras's UpSampling2D: rows repeated size[0] times and columns size[1] times (nearest,
 * the default), or tf.image.resize's bilinear to (h * size[0], w * size[1]). */
typedef struct tg_up_sampling2d_opts {
    TG__LAYER_FIELDS;
    int64_t size[2];                /* default {2, 2}; {k} means {k, k} */
    tg_resize_method interpolation; /* TG_RESIZE_NEAREST (default) or TG_RESIZE_BILINEAR */
} tg_up_sampling2d_opts;
tg_layer *tg_up_sampling2d_at(tg_loc loc, tg_up_sampling2d_opts o);
#define tg_up_sampling2d(...) \
    tg_up_sampling2d_at(      \
        TG_LOC, TG__OPTS(tg_up_sampling2d_opts, TG__LAYER_DEFAULTS, .interpolation = TG_RESIZE_NEAREST, __VA_ARGS__))

/* Keras's ZeroPadding2D: zero rows and columns {{top, bottom}, {left, right}} around each
 * image (default {{1, 1}, {1, 1}}, Keras's padding=(1, 1)). */
typedef struct tg_zero_padding2d_opts {
    TG__LAYER_FIELDS;
    int64_t padding[2][2]; /* each >= 0; all 0 means the default */
} tg_zero_padding2d_opts;
tg_layer *tg_zero_padding2d_at(tg_loc loc, tg_zero_padding2d_opts o);
#define tg_zero_padding2d(...) \
    tg_zero_padding2d_at(TG_LOC, TG__OPTS(tg_zero_padding2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's Cropping2D: {{top, bottom}, {left, right}} rows and columns cut off each image
 * (default none). */
typedef struct tg_cropping2d_opts {
    TG__LAYER_FIELDS;
    int64_t cropping[2][2]; /* each >= 0 */
} tg_cropping2d_opts;
tg_layer *tg_cropping2d_at(tg_loc loc, tg_cropping2d_opts o);
#define tg_cropping2d(...) tg_cropping2d_at(TG_LOC, TG__OPTS(tg_cropping2d_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- image preprocessing (keras/src/layers/preprocessing/) ------------------------------------ */
/* Keras's Rescaling: x * scale + offset, any shape. */
typedef struct tg_rescaling_opts {
    TG__LAYER_FIELDS;
    double scale;  /* required, nonzero (e.g. 1.0 / 255) */
    double offset; /* default 0 */
} tg_rescaling_opts;
tg_layer *tg_rescaling_at(tg_loc loc, tg_rescaling_opts o);
#define tg_rescaling(...) tg_rescaling_at(TG_LOC, TG__OPTS(tg_rescaling_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's RandomFlip: with training, each image of the batch is flipped with probability
 * 1/2 (one draw per image; "horizontal_and_vertical" flips both axes on that draw, as
 * Keras 3); without training, the identity. Draws come from the layer's seed. */
typedef enum tg_flip_mode {
    TG_FLIP_HORIZONTAL_AND_VERTICAL = 0, /* Keras's default */
    TG_FLIP_HORIZONTAL,                  /* left-right: the width axis */
    TG_FLIP_VERTICAL                     /* top-bottom: the height axis */
} tg_flip_mode;
typedef struct tg_random_flip_opts {
    TG__LAYER_FIELDS;
    tg_flip_mode mode;
} tg_random_flip_opts;
tg_layer *tg_random_flip_at(tg_loc loc, tg_random_flip_opts o);
#define tg_random_flip(...) tg_random_flip_at(TG_LOC, TG__OPTS(tg_random_flip_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's RandomCrop to height x width: with training and an image larger in both axes,
 * one random window per batch (from the layer's seed); otherwise (inference) Keras's
 * center crop to the target's aspect ratio, resized (bilinear) to height x width when
 * its size differs. */
typedef struct tg_random_crop_opts {
    TG__LAYER_FIELDS;
    int64_t height, width; /* required, > 0 */
} tg_random_crop_opts;
tg_layer *tg_random_crop_at(tg_loc loc, tg_random_crop_opts o);
#define tg_random_crop(...) tg_random_crop_at(TG_LOC, TG__OPTS(tg_random_crop_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- recurrent layers (batch, time, features) ------------------------------------------ */
/* Keras's SimpleRNN, LSTM and GRU, with its gate order (LSTM: i, f, c, o; GRU: z, r, h),
 * variables (kernel (features, gates * units), recurrent_kernel (units, gates * units),
 * bias; GRU with reset_after: bias (2, 3 * units), the input's and the recurrent one's),
 * initializers (glorot_uniform, orthogonal, zeros; LSTM's unit_forget_bias puts ones in
 * the forget gate's bias) and formulas. The output is the last state (units,) or, with
 * return_sequences, every step's (time, units); go_backwards reads the steps from the
 * last, and returns them in that order, as Keras does. Made of ops: a tape
 * differentiates through time. A mask (Embedding's mask_zero, Masking, or .mask of the
 * call) skips steps as Keras does: a masked step carries the state and the output over
 * (the initial state before the first unmasked one); with return_sequences the mask goes
 * on. In a functional model, tg_layer_apply(lstm, x, h0, c0) starts from initial states
 * (Keras's initial_state=[h0, c0]; GRU and SimpleRNN take h0 alone), each (units,) per
 * example; the mask, x's, applies with them. With .return_state the layer has several
 * outputs, taken with tg_layer_apply_outputs(lstm, outs, 3, x): the output, then the last
 * h (and c), the carried ones where the last steps are masked; the states carry no mask. */
typedef struct tg_rnn_opts {
    TG__LAYER_FIELDS;
    int64_t units;                        /* required, > 0 */
    tg_activation activation;             /* default tanh */
    tg_activation recurrent_activation;   /* LSTM, GRU: default sigmoid */
    bool use_bias;                        /* default true */
    tg_initializer kernel_initializer;    /* default glorot_uniform */
    tg_initializer recurrent_initializer; /* default orthogonal */
    tg_initializer bias_initializer;      /* default zeros */
    bool unit_forget_bias;                /* LSTM: default true */
    bool reset_after;                     /* GRU: default true */
    bool return_sequences, go_backwards;
    tg_regularizer kernel_regularizer, recurrent_regularizer, bias_regularizer; /* default none */
    tg_constraint kernel_constraint, recurrent_constraint, bias_constraint;     /* default none */
    bool return_state; /* outputs (output, h, c) for LSTM, (output, h) for GRU and SimpleRNN */
} tg_rnn_opts;
tg_layer *tg_simple_rnn_at(tg_loc loc, tg_rnn_opts o);
tg_layer *tg_lstm_at(tg_loc loc, tg_rnn_opts o);
tg_layer *tg_gru_at(tg_loc loc, tg_rnn_opts o);
#define TG__RNN_DEFAULTS                                                                             \
    TG__LAYER_DEFAULTS, .activation = TG_TANH, .recurrent_activation = TG_SIGMOID, .use_bias = true, \
                        .unit_forget_bias = true, .reset_after = true
#define tg_simple_rnn(...) tg_simple_rnn_at(TG_LOC, TG__OPTS(tg_rnn_opts, TG__RNN_DEFAULTS, __VA_ARGS__))
#define tg_lstm(...)       tg_lstm_at(TG_LOC, TG__OPTS(tg_rnn_opts, TG__RNN_DEFAULTS, __VA_ARGS__))
#define tg_gru(...)        tg_gru_at(TG_LOC, TG__OPTS(tg_rnn_opts, TG__RNN_DEFAULTS, __VA_ARGS__))

/* ---- wrappers (Keras's Bidirectional and TimeDistributed) ------------------------------ */
/* Keras's Bidirectional: a forward copy of a recurrent layer (SimpleRNN, LSTM, GRU) and a
 * backward one (go_backwards flipped), both freshly initialised, run on the same input
 * and merged. With return_sequences the backward output is reversed in time first, so
 * step t of both lines up (torch's bidirectional output); without, each direction's last
 * state is merged (the backward one's saw the first step last: torch's h_n). Variables
 * are the forward layer's then the backward one's, named "bidirectional/forward_lstm/kernel",
 * "bidirectional/backward_lstm/kernel", ... (Keras 3's paths without the cell's level, as
 * the recurrent layers name theirs). Concat doubles the last dim; sum, mul and ave keep it.
 * The wrapper takes `layer` over (also when it fails): it is freed with the wrapper, never
 * by the caller (a layer that a model already owns is refused and stays the model's). A
 * layer with go_backwards set is refused, as Keras refuses two backward directions. Keras's merge_mode=None (a list of both) is not supported. */
typedef enum tg_merge_mode {
    TG_MERGE_CONCAT = 0, /* Keras's default */
    TG_MERGE_SUM,
    TG_MERGE_MUL,
    TG_MERGE_AVE
} tg_merge_mode;
typedef struct tg_bidirectional_opts {
    TG__LAYER_FIELDS;
    tg_merge_mode merge_mode; /* default TG_MERGE_CONCAT */
} tg_bidirectional_opts;
tg_layer *tg_bidirectional_at(tg_loc loc, tg_layer *layer, tg_bidirectional_opts o);
#define tg_bidirectional(layer, ...) \
    tg_bidirectional_at(TG_LOC, layer, TG__OPTS(tg_bidirectional_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's TimeDistributed: `layer` on every step of inputs (batch, time, ...), as one call
 * on the steps folded into the batch, (batch * time, ...), unfolded after (what Keras does
 * when the shapes are known). The layer's variables become the wrapper's, named
 * "time_distributed/dense/kernel", ... The wrapper takes `layer` over as Bidirectional
 * does. */
typedef struct tg_time_distributed_opts {
    TG__LAYER_FIELDS;
} tg_time_distributed_opts;
tg_layer *tg_time_distributed_at(tg_loc loc, tg_layer *layer, tg_time_distributed_opts o);
#define tg_time_distributed(layer, ...) \
    tg_time_distributed_at(TG_LOC, layer, TG__OPTS(tg_time_distributed_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- preprocessing ------------------------------------------------------------------ */
/* Keras's Normalization: (x - mean) / max(sqrt(variance), 1e-7) with a mean and variance
 * per index of the kept axes (`.axis`, batch axis counted; empty, the default, keeps the
 * last, as Keras's axis=-1; `.axis_none` keeps none, Keras's axis=None: one mean and one
 * variance). The statistics come from `tg_normalization_adapt` or are given (`.mean`,
 * `.variance`: `.n_values` numbers each, 1 for a scalar or one per kept index); they are the
 * non-trainable variables "mean" and "variance", so checkpoints keep them. `.invert`
 * computes mean + x * sd instead. */
typedef struct tg_normalization_opts {
    TG__LAYER_FIELDS;
    tg_axes axis;                  /* default: the last axis */
    bool axis_none;                /* one mean and variance for every value */
    const double *mean, *variance; /* given statistics (copied), or NULL to adapt */
    int64_t n_values;              /* how many numbers .mean and .variance hold */
    bool invert;
} tg_normalization_opts;
tg_layer *tg_normalization_at(tg_loc loc, tg_normalization_opts o);
#define tg_normalization(...) \
    TG__CALL(tg_normalization_opts, tg_normalization_at(TG_LOC, tg__o), TG__LAYER_DEFAULTS, __VA_ARGS__)

/* Keras's adapt: the population mean and variance of x (a batch, first axis the rows) over
 * every axis but the kept ones, computed in float64, written into the layer's variables.
 * Builds the layer from x's example shape if it is not built; a built layer needs x's kept
 * dims to match. Adapt on the training rows only (tg_slice, or a data set's view). */
int tg_normalization_adapt_at(tg_loc loc, tg_layer *layer, const tg_tensor *x);
#define tg_normalization_adapt(layer, x) tg_normalization_adapt_at(TG_LOC, layer, x)

/* ---- merging layers (Keras's layers/merging) ------------------------------------------ */
/* Keras's MultiHeadAttention (keras/src/layers/attention/multi_head_attention.py), applied
 * with tg_layer_apply(layer, query, value) or (query, value, key), each (batch, ...,
 * features) of one rank: query/kernel (Dq, heads, key_dim), key/kernel (Dk, heads,
 * key_dim), value/kernel (Dv, heads, value_dim) and attention_output/kernel (heads,
 * value_dim, *output_shape), each with a bias; the projections, scores and output are
 * Keras's einsums for that rank and attention_axes. Scores are softmax(q k / sqrt(key_dim))
 * over the key's attention axes, the output (batch, ..., *output_shape).
 * .use_causal_mask (a call argument in Keras) lets step i attend to steps <= i, as Keras's
 * causal mask (masked scores -1e9, then 0), with one attention axis, the first.
 * For inputs (batch, steps, features), a fourth input is Keras's attention_mask (batch,
 * query steps, value steps), nonzero where a query step may attend; it, the query's and
 * the value's masks (and the key's, when the key is another tensor) and the causal mask
 * are AND-ed as Keras's _compute_attention_mask, and the output carries the query's mask.
 * Inputs of more axes take the causal mask only: an attention_mask or an input's mask is
 * refused there.
 * .dropout drops attention probabilities in training only, from the layer's seed.
 * .return_attention_scores (a call argument in Keras) gives the layer a second output, the
 * probabilities before dropout, (batch, other axes, heads, query steps, key steps): take
 * both with tg_layer_apply_outputs. */
typedef struct tg_multi_head_attention_opts {
    TG__LAYER_FIELDS;
    int num_heads;     /* required, > 0 */
    int64_t key_dim;   /* required, > 0 */
    int64_t value_dim; /* default key_dim */
    bool use_bias;     /* default true */
    bool use_causal_mask;
    tg_initializer kernel_initializer, bias_initializer; /* glorot_uniform, zeros */
    double dropout;                                      /* in [0, 1), default 0 */
    tg_shape output_shape;        /* the output's last dims; rank 0 (default): the query's last dim */
    tg_axes attention_axes;       /* Keras's axes, batch counted (negative: from the features, -1);
                                     default (none given): every axis but the batch and the features */
    bool return_attention_scores; /* outputs (output, scores) */
} tg_multi_head_attention_opts;
tg_layer *tg_multi_head_attention_at(tg_loc loc, tg_multi_head_attention_opts o);
#define tg_multi_head_attention(...) \
    tg_multi_head_attention_at(      \
        TG_LOC, TG__OPTS(tg_multi_head_attention_opts, TG__LAYER_DEFAULTS, .use_bias = true, __VA_ARGS__))

/* Keras's Attention (keras/src/layers/attention/attention.py, Luong-style) and
 * AdditiveAttention (additive_attention.py, Bahdanau-style), applied with
 * tg_layer_apply(layer, query, value) or (query, value, key): query (batch, Tq, dim), value
 * (batch, Tv, dv), key (batch, Tv, dim), default the value. Scores (batch, Tq, Tv): Attention's
 * "dot" q k^T (times the scalar variable "scale" with use_scale), or "concat"
 * concat_score_weight * sum(tanh(scale * (q + k))) over dim; AdditiveAttention's
 * sum(scale * tanh(q + k)) over dim, scale a (dim,) variable (glorot_uniform) with use_scale
 * (its default). Then the softmax over Tv (after the masks: scores - 1e9 where the value's
 * mask or the causal mask, use_causal_mask, is false), dropout in training, and the
 * probabilities times the value: (batch, Tq, dv), zero at the query mask's false steps; the
 * output carries the query's mask (Keras's; the key's mask is not used). return_attention_scores
 * adds the probabilities (before dropout) as a second output. */
typedef enum tg_score_mode { TG_SCORE_DOT = 0, TG_SCORE_CONCAT } tg_score_mode;
typedef struct tg_attention_opts {
    TG__LAYER_FIELDS;
    bool use_scale;           /* Attention: default false; AdditiveAttention: default true */
    tg_score_mode score_mode; /* Attention only: default TG_SCORE_DOT */
    double dropout;           /* in [0, 1), default 0 */
    bool use_causal_mask;
    bool return_attention_scores;
} tg_attention_opts;
tg_layer *tg_attention_layer_at(tg_loc loc, tg_attention_opts o);
tg_layer *tg_additive_attention_at(tg_loc loc, tg_attention_opts o);
#define tg_attention_layer(...) \
    tg_attention_layer_at(TG_LOC, TG__OPTS(tg_attention_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))
#define tg_additive_attention(...) \
    tg_additive_attention_at(TG_LOC, TG__OPTS(tg_attention_opts, TG__LAYER_DEFAULTS, .use_scale = true, __VA_ARGS__))

/* Add, Subtract, Multiply, Average, Maximum and Minimum combine their inputs element by
 * element; one example's shapes must match or broadcast (a 1 against any size, and a
 * lower rank gets 1s inserted after the batch axis, as Keras's Merge). Subtract takes
 * exactly two inputs. Concatenate joins them along `axis` (default -1), all other dims
 * equal. Dot takes two inputs and sums the products along axes[0] of the first and
 * axes[1] of the second (batch included in the numbering, never 0; {-1} means the last of
 * both), after an L2 normalisation along them with .normalize (cosine proximity). Apply
 * them with tg_layer_apply(layer, a, b, ...). */
typedef struct tg_merge_opts {
    TG__LAYER_FIELDS;
    int axis; /* Concatenate's; default -1 */
} tg_merge_opts;
tg_layer *tg_add_layer_at(tg_loc loc, tg_merge_opts o);
tg_layer *tg_subtract_layer_at(tg_loc loc, tg_merge_opts o);
tg_layer *tg_multiply_layer_at(tg_loc loc, tg_merge_opts o);
tg_layer *tg_average_layer_at(tg_loc loc, tg_merge_opts o);
tg_layer *tg_maximum_layer_at(tg_loc loc, tg_merge_opts o);
tg_layer *tg_minimum_layer_at(tg_loc loc, tg_merge_opts o);
tg_layer *tg_concatenate_at(tg_loc loc, tg_merge_opts o);
#define TG__MERGE_OPTS(...)    TG__OPTS(tg_merge_opts, TG__LAYER_DEFAULTS, .axis = -1, __VA_ARGS__)
#define tg_add_layer(...)      tg_add_layer_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))
#define tg_subtract_layer(...) tg_subtract_layer_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))
#define tg_multiply_layer(...) tg_multiply_layer_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))
#define tg_average_layer(...)  tg_average_layer_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))
#define tg_maximum_layer(...)  tg_maximum_layer_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))
#define tg_minimum_layer(...)  tg_minimum_layer_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))
#define tg_concatenate(...)    tg_concatenate_at(TG_LOC, TG__MERGE_OPTS(__VA_ARGS__))

typedef struct tg_dot_opts {
    TG__LAYER_FIELDS;
    int axes[2];    /* required; {a} means {a, a} */
    bool normalize; /* L2-normalise along the axes first */
} tg_dot_opts;
tg_layer *tg_dot_layer_at(tg_loc loc, tg_dot_opts o);
#define tg_dot_layer(...) tg_dot_layer_at(TG_LOC, TG__OPTS(tg_dot_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- using a layer ------------------------------------------------------------------ */
typedef struct tg_model_call_opts {
    bool training; /* default false (inference) */
    /* Keras's call(x, mask=...): a bool mask of x's leading axes (batch, steps), true where
     * a step counts; NULL: x's own (none, or what the layers compute). tg_model_call_list
     * takes one per input in .masks (NULL entries for none). */
    const tg_tensor *mask;
    const tg_tensor *const *masks;
} tg_model_call_opts;

/* Calls one layer on a batch, building it on the first call. */
tg_tensor *tg_layer_call_at(tg_loc loc, tg_layer *layer, const tg_tensor *x, tg_model_call_opts o);
#define tg_layer_call(layer, x, ...) \
    tg_layer_call_at(TG_LOC, layer, x, TG__OPTS(tg_model_call_opts, .training = false, __VA_ARGS__))

const char *tg_layer_name(const tg_layer *layer); /* "dense_1" */
/* The layer's dtype policy: "float32", "float64" or "mixed_bfloat16" (a layer left to the
 * model's dtype says "float32" until it is built). */
const char *tg_layer_dtype_policy(const tg_layer *layer);
const char *tg_layer_class_name(const tg_layer *layer); /* "Dense" */
/* The activation of a Dense, Conv2D or Activation layer; TG_LINEAR for the others. */
tg_activation tg_layer_activation(const tg_layer *layer);
bool tg_layer_built(const tg_layer *layer);
/* One example's output shape (no batch dim); rank -1 until the layer is built. */
tg_shape tg_layer_output_shape(const tg_layer *layer);
/* The layer's variables in creation order (Keras's layer.weights). The array belongs to
 * the layer. */
tg_tensor *const *tg_layer_variables_at(tg_loc loc, const tg_layer *layer, int *count);
#define tg_layer_variables(layer, count) tg_layer_variables_at(TG_LOC, layer, count)
bool tg_layer_trainable(const tg_layer *layer);
/* Keras's layer.get_weights() / set_weights(): the layer's weights in Keras's order (the
 * variables it made trainable, then the others, each in creation order; n of them, as
 * tg_layer_variables counts). get fills out[0..n) with copies of their values in the
 * innermost scope; set checks every count, shape and dtype before assigning any (a float
 * of the other width is cast, as Keras's assign converts). 0, or -1 with an error naming
 * the variable. */
int tg_layer_get_weights_at(tg_loc loc, const tg_layer *layer, tg_tensor **out, int n);
int tg_layer_set_weights_at(tg_loc loc, tg_layer *layer, const tg_tensor *const *weights, int n);
#define tg_layer_get_weights(layer, out, n)     tg_layer_get_weights_at(TG_LOC, layer, out, n)
#define tg_layer_set_weights(layer, weights, n) tg_layer_set_weights_at(TG_LOC, layer, weights, n)

/* Keras 3's `layer.trainable = value`: the variables the layer made trainable follow
 * (so a frozen layer's variables are not watched by tapes and leave the model's
 * trainable list); moving statistics stay non-trainable. Returns 0 or -1. */
int tg_layer_set_trainable_at(tg_loc loc, tg_layer *layer, bool trainable);
#define tg_layer_set_trainable(layer, trainable) tg_layer_set_trainable_at(TG_LOC, layer, trainable)
/* Keras's layer.get_config(): the layer's options as the text of a JSON object ({"name":
 * "dense", "trainable": true, "dtype": "float32", "units": 4, "activation": "relu", ...},
 * Keras's names and values), what tg_model_save stores of each layer. Malloc'd (free it),
 * or NULL with an error. */
char *tg_layer_get_config_at(tg_loc loc, const tg_layer *layer);
#define tg_layer_get_config(layer) tg_layer_get_config_at(TG_LOC, layer)

/* ---- the functional API (Keras's keras.Input, layer(x) and keras.Model(inputs, outputs)) ----
 *   tg_keras_tensor *a = tg_input(TG_SHAPE(3), .name = "a"), *b = tg_input(TG_SHAPE(2));
 *   tg_layer *shared = tg_dense(.units = 4);
 *   tg_keras_tensor *h = tg_layer_apply(tg_concatenate(), tg_layer_apply(shared, a), b);
 *   tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(h), .name = "m");
 * A keras tensor is symbolic: one example's shape, no data. Applying a layer to keras
 * tensors records a node and gives its output; the layer's variables are made when the
 * model is (named and seeded by the model, as in a Sequential). A layer applied twice is
 * shared: one set of variables, whose gradient sums both paths. Keras tensors belong to the
 * layers that made them (an input's to its InputLayer, tg_keras_tensor_layer): they live
 * until the model that takes those layers is freed; a layer that no model took (a branch
 * left out of every model) is the caller's to free with tg_layer_free. */
typedef struct tg_keras_tensor tg_keras_tensor;
typedef struct tg_input_opts {
    const char *name; /* default: "input_layer", numbered within the model */
    tg_dtype dtype;   /* default float32 */
} tg_input_opts;
/* keras.Input(shape): an InputLayer's symbolic output for examples of `shape` (no
 * batch dim). */
tg_keras_tensor *tg_input_at(tg_loc loc, tg_shape shape, tg_input_opts o);
#define tg_input(shape, ...) tg_input_at(TG_LOC, shape, TG__OPTS(tg_input_opts, .dtype = TG_F32, __VA_ARGS__))
/* Keras's layer(x) or layer([a, b]) on keras tensors: checks the shapes as the layer's
 * build would (errors name the layer and the shapes) and records the call. A NULL input
 * (a call that failed) makes it fail, keeping that error. */
tg_keras_tensor *tg_layer_apply_at(tg_loc loc, tg_layer *layer, const tg_keras_tensor *const *inputs, int n);
#define TG_KERAS_TENSORS(...)                                  \
    ((const tg_keras_tensor *const[]){NULL, __VA_ARGS__} + 1), \
        (int)(sizeof((const tg_keras_tensor *const[]){NULL, __VA_ARGS__}) / sizeof(tg_keras_tensor *)) - 1
#define tg_layer_apply(layer, ...) tg_layer_apply_at(TG_LOC, layer, TG_KERAS_TENSORS(__VA_ARGS__))
/* A layer of several outputs applied (Keras's `out, h, c = lstm(x)`: a recurrent layer
 * with return_state, attention with return_attention_scores): its n_outs outputs into
 * outs[0..n_outs), n_outs being the layer's count. Returns 0, or -1 with an error (and
 * outs NULL). tg_layer_apply refuses such a layer, naming its count. */
int tg_layer_apply_outputs_at(tg_loc loc, tg_layer *layer, const tg_keras_tensor *const *inputs, int n,
                              tg_keras_tensor **outs, int n_outs);
#define tg_layer_apply_outputs(layer, outs, n_outs, ...) \
    tg_layer_apply_outputs_at(TG_LOC, layer, TG_KERAS_TENSORS(__VA_ARGS__), outs, n_outs)
/* One example's shape (rank -1 for NULL), and the layer whose call made it. */
tg_shape tg_keras_tensor_shape(const tg_keras_tensor *t);
tg_layer *tg_keras_tensor_layer(const tg_keras_tensor *t);

typedef struct tg_functional_opts {
    const char *name; /* default "functional" */
    uint64_t seed;    /* every layer's seed derives from it; default 0 */
    tg_dtype dtype;   /* of layers left at TG_DTYPE_INHERIT; default float32 */
} tg_functional_opts;
/* keras.Model(inputs, outputs): the model of the graph from `inputs` (keras tensors of
 * tg_input) to `outputs`. Layers come in Keras's order (by depth from the inputs, the
 * InputLayers first), and so do the variables. The graph must be computable from the
 * inputs ("Graph disconnected" names the layer and the tensor otherwise) and its layer
 * names unique. The model owns the graph's layers from here on, also when it fails (it
 * frees then those that belong to no model). It is the same tg_model as a Sequential:
 * compile, fit, evaluate, predict, summary, save and the variable lists work alike;
 * tg_model_call takes a model of one input and one output, tg_model_call_list any. */
tg_model *tg_functional_at(tg_loc loc, const tg_keras_tensor *const *inputs, int n_inputs,
                           const tg_keras_tensor *const *outputs, int n_outputs, tg_functional_opts o);
#define tg_functional(inputs, outputs, ...)   \
    tg_functional_at(TG_LOC, inputs, outputs, \
                     TG__OPTS(tg_functional_opts, .name = "functional", .dtype = TG_F32, __VA_ARGS__))

/* Frees a layer that no model owns (a model frees its own layers). */
void tg_layer_free(tg_layer *layer);

/* ---- Sequential --------------------------------------------------------------------- */
typedef struct tg_sequential_opts {
    const char *name; /* default "sequential" */
    uint64_t seed;    /* every layer's seed derives from it; default 0 */
    tg_dtype dtype;   /* of layers left at TG_DTYPE_INHERIT; default float32 */
} tg_sequential_opts;
#define tg_sequential_options(...) TG__OPTS(tg_sequential_opts, .name = "sequential", .dtype = TG_F32, __VA_ARGS__)

/* The model owns the layers from here on, also when it fails (it frees them then). A
 * NULL layer (a constructor that failed) makes it fail, keeping that error. */
tg_model *tg_sequential_at(tg_loc loc, tg_sequential_opts o, tg_layer *const *layers, int n);
#define TG__LAYER_LIST(...)                       \
    ((tg_layer *const[]){NULL, __VA_ARGS__} + 1), \
        (int)(sizeof((tg_layer *const[]){NULL, __VA_ARGS__}) / sizeof(tg_layer *)) - 1
#define tg_sequential(...) tg_sequential_at(TG_LOC, tg_sequential_options(), TG__LAYER_LIST(__VA_ARGS__))
/* tg_sequential_with(tg_sequential_options(.seed = 42, .dtype = TG_F64), layers...) */
#define tg_sequential_with(opts, ...) tg_sequential_at(TG_LOC, opts, TG__LAYER_LIST(__VA_ARGS__))

/* Keras's model.add: appends (and owns) a layer; on failure the layer is freed. */
int tg_model_add_at(tg_loc loc, tg_model *m, tg_layer *layer);
#define tg_model_add(m, layer) tg_model_add_at(TG_LOC, m, layer)

/* Builds the layers for examples of `input_shape` (without the batch dim). */
int tg_model_build_at(tg_loc loc, tg_model *m, tg_shape input_shape);
#define tg_model_build(m, input_shape) tg_model_build_at(TG_LOC, m, input_shape)

/* The model on a batch x of shape (batch,) + the example shape; builds the model on the
 * first call. Inside a recording tape, the forward pass is recorded. */
tg_tensor *tg_model_call_at(tg_loc loc, tg_model *m, const tg_tensor *x, tg_model_call_opts o);
#define tg_model_call(m, x, ...) \
    tg_model_call_at(TG_LOC, m, x, TG__OPTS(tg_model_call_opts, .training = false, __VA_ARGS__))

/* Any model on a list of inputs (one batch per model input, in order), writing one tensor
 * per output into ys[0..n_outputs). Returns 0 or -1. */
int tg_model_call_list_at(tg_loc loc, tg_model *m, const tg_tensor *const *xs, int n_inputs, tg_tensor **ys,
                          int n_outputs, tg_model_call_opts o);
#define tg_model_call_list(m, xs, n_inputs, ys, n_outputs, ...)                                        \
    TG__CALL(tg_model_call_opts, tg_model_call_list_at(TG_LOC, m, xs, n_inputs, ys, n_outputs, tg__o), \
             .training = false, __VA_ARGS__)
/* The number of inputs and outputs (1 and 1 for a Sequential); the name of output i, the
 * name of the layer that makes it (Keras's output_names), NULL when out of range. */
int tg_model_n_inputs(const tg_model *m);
int tg_model_n_outputs(const tg_model *m);
const char *tg_model_output_name(const tg_model *m, int i);

const char *tg_model_name(const tg_model *m);
bool tg_model_built(const tg_model *m);
int tg_model_n_layers(const tg_model *m);
tg_layer *tg_model_layer(const tg_model *m, int i); /* negative i counts from the end */
tg_layer *tg_model_get_layer(const tg_model *m, const char *name);

/* Variable lists, in layer order. Each array belongs to the model and stays valid until
 * the model is built, changed (add, set_trainable) or freed; *count may be NULL. An
 * unbuilt model has none (as Keras). */
tg_tensor *const *tg_model_variables_at(tg_loc loc, tg_model *m, int *count);
#define tg_model_variables(m, count) tg_model_variables_at(TG_LOC, m, count)
tg_tensor *const *tg_model_trainable_variables(tg_model *m, int *count);
tg_tensor *const *tg_model_non_trainable_variables(tg_model *m, int *count);
/* Number of weights (Keras count_params); the split into trainable and not is written
 * where the pointers are non-NULL. */
int64_t tg_model_n_params(const tg_model *m, int64_t *trainable, int64_t *non_trainable);
/* Keras's sum(model.losses): the regularizers' penalties on the trainable variables, plus
 * the activity regularizers' penalties of the outputs of the model's last call (Keras 3
 * adds them at each call, not divided by the batch size; those whose scope has ended are
 * gone), a scalar made of ops (a tape differentiates it); NULL, with no error, when there
 * are none. */
tg_tensor *tg_model_regularization_loss_at(tg_loc loc, tg_model *m);
#define tg_model_regularization_loss(m) tg_model_regularization_loss_at(TG_LOC, m)

/* Keras's model.get_weights() / set_weights(): every layer's weights in layer order, each
 * layer's in Keras's order (tg_layer_get_weights); n is the model's number of variables
 * (tg_model_variables's count; 0 for an unbuilt model). Checked as the layer's. */
int tg_model_get_weights_at(tg_loc loc, tg_model *m, tg_tensor **out, int n);
int tg_model_set_weights_at(tg_loc loc, tg_model *m, const tg_tensor *const *weights, int n);
#define tg_model_get_weights(m, out, n)     tg_model_get_weights_at(TG_LOC, m, out, n)
#define tg_model_set_weights(m, weights, n) tg_model_set_weights_at(TG_LOC, m, weights, n)

/* Keras's Sequential.pop(): removes the model's last layer and frees it (Keras returns
 * it); the layers before it keep their weights. An empty or functional model is refused. */
int tg_sequential_pop_at(tg_loc loc, tg_model *m);
#define tg_sequential_pop(m) tg_sequential_pop_at(TG_LOC, m)

/* Keras 3's `model.trainable = value`: every layer follows. */
int tg_model_set_trainable_at(tg_loc loc, tg_model *m, bool trainable);
#define tg_model_set_trainable(m, trainable) tg_model_set_trainable_at(TG_LOC, m, trainable)
bool tg_model_trainable(const tg_model *m);

/* Keras 3's model.summary() as plain text (no colours): a table of layers, output
 * shapes and parameter counts, then the totals with their memory size. */
typedef struct tg_summary_opts {
    int line_length; /* default 0: Keras's, min(88, terminal columns - 4), where a
                                * stream that is not a terminal counts as 80 columns */
} tg_summary_opts;
int tg_model_summary_at(tg_loc loc, tg_model *m, FILE *out, tg_summary_opts o);
#define tg_model_summary(m, out, ...) \
    tg_model_summary_at(TG_LOC, m, out, TG__OPTS(tg_summary_opts, .line_length = 0, __VA_ARGS__))

/* Frees the model, its layers and their variables, and the optimizer compiled into it.
 * Freeing it twice, or using it after, is an error (tg_last_error), never a crash. */
void tg_model_free_at(tg_loc loc, tg_model *m);
#define tg_model_free(m) tg_model_free_at(TG_LOC, m)

TG_END_DECLS
#endif
