/* Keras's get_config and from_config: a layer's options as JSON, a model's architecture
 * (Sequential, or Functional with its nodes as Keras's functional config writes them),
 * the registry of class names that loading rebuilds layers by, and the comparison of two
 * architectures that names their first difference.
 *
 * Built-in kinds are described by tables of their option structs' fields (one row per
 * option: its Keras name, how it is written, where it lives), so writing and reading are
 * the same two loops for every kind. A kind outside the table (a user's custom layer)
 * writes its options through its kind's get_config hook and is rebuilt by the function
 * it registered with tg__layer_register. */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../io/io_impl.h"
#include "layer_impl.h"
#include "tapegrad/layer.h"

/* ---- option tables ------------------------------------------------------------------------- */
typedef enum {
    F_I64,
    F_INT,
    F_F64,
    F_BOOL,
    F_ACT,
    F_ENUM, /* an int-sized enum written as one of `names` */
    F_INIT,
    F_REG,
    F_CONSTRAINT,
    F_I64X2,
    F_I64X2X2,
    F_INTX2,
    F_AXES,
    F_SHAPE,
} field_type;

typedef struct field {
    const char *key;
    field_type type;
    size_t off;
    const char *const *names; /* F_ENUM: value i is names[i] */
    int n_names;
} field;

static const char *const padding_names[] = {"valid", "same"};
static const char *const interpolation_names[] = {"bilinear", "nearest"};
static const char *const flip_names[] = {"horizontal_and_vertical", "horizontal", "vertical"};
static const char *const merge_names[] = {"concat", "sum", "mul", "ave"};

#define F(S, key, type)                       \
    {                                         \
#key, type, offsetof(S, key), NULL, 0 \
    }
#define FE(S, key, names)                                                            \
    {                                                                                \
#key, F_ENUM, offsetof(S, key), names, (int)(sizeof names / sizeof names[0]) \
    }
#define FK(S, key, m, type)                \
    {                                      \
        key, type, offsetof(S, m), NULL, 0 \
    }
#define END                 \
    {                       \
        NULL, 0, 0, NULL, 0 \
    }

static const field dense_fields[] = {F(tg_dense_opts, units, F_I64),
                                     F(tg_dense_opts, activation, F_ACT),
                                     F(tg_dense_opts, use_bias, F_BOOL),
                                     F(tg_dense_opts, kernel_initializer, F_INIT),
                                     F(tg_dense_opts, bias_initializer, F_INIT),
                                     F(tg_dense_opts, kernel_regularizer, F_REG),
                                     F(tg_dense_opts, bias_regularizer, F_REG),
                                     F(tg_dense_opts, activity_regularizer, F_REG),
                                     F(tg_dense_opts, kernel_constraint, F_CONSTRAINT),
                                     F(tg_dense_opts, bias_constraint, F_CONSTRAINT),
                                     END};
static const field prelu_fields[] = {F(tg_prelu_layer_opts, alpha_initializer, F_INIT),
                                     F(tg_prelu_layer_opts, shared_axes, F_AXES), END};
static const field dropout_fields[] = {F(tg_dropout_opts, rate, F_F64), END};
static const field reshape_fields[] = {F(tg_reshape_layer_opts, target_shape, F_SHAPE), END};
static const field bn_fields[] = {F(tg_batch_normalization_opts, axis, F_INT),
                                  F(tg_batch_normalization_opts, momentum, F_F64),
                                  F(tg_batch_normalization_opts, epsilon, F_F64),
                                  F(tg_batch_normalization_opts, center, F_BOOL),
                                  F(tg_batch_normalization_opts, scale, F_BOOL),
                                  F(tg_batch_normalization_opts, beta_initializer, F_INIT),
                                  F(tg_batch_normalization_opts, gamma_initializer, F_INIT),
                                  F(tg_batch_normalization_opts, moving_mean_initializer, F_INIT),
                                  F(tg_batch_normalization_opts, moving_variance_initializer, F_INIT),
                                  END};
static const field ln_fields[] = {F(tg_layer_normalization_opts, axis, F_INT),
                                  F(tg_layer_normalization_opts, epsilon, F_F64),
                                  F(tg_layer_normalization_opts, center, F_BOOL),
                                  F(tg_layer_normalization_opts, scale, F_BOOL),
                                  F(tg_layer_normalization_opts, beta_initializer, F_INIT),
                                  F(tg_layer_normalization_opts, gamma_initializer, F_INIT),
                                  END};
static const field embedding_fields[] = {
    F(tg_embedding_opts, input_dim, F_I64), F(tg_embedding_opts, output_dim, F_I64),
    F(tg_embedding_opts, embeddings_initializer, F_INIT), F(tg_embedding_opts, mask_zero, F_BOOL), END};
static const field masking_fields[] = {F(tg_masking_opts, mask_value, F_F64), END};
static const field conv_fields[] = {F(tg_conv2d_layer_opts, filters, F_I64),
                                    F(tg_conv2d_layer_opts, kernel_size, F_I64X2),
                                    F(tg_conv2d_layer_opts, strides, F_I64X2),
                                    FE(tg_conv2d_layer_opts, padding, padding_names),
                                    F(tg_conv2d_layer_opts, activation, F_ACT),
                                    F(tg_conv2d_layer_opts, use_bias, F_BOOL),
                                    F(tg_conv2d_layer_opts, kernel_initializer, F_INIT),
                                    F(tg_conv2d_layer_opts, bias_initializer, F_INIT),
                                    F(tg_conv2d_layer_opts, kernel_regularizer, F_REG),
                                    F(tg_conv2d_layer_opts, bias_regularizer, F_REG),
                                    F(tg_conv2d_layer_opts, activity_regularizer, F_REG),
                                    F(tg_conv2d_layer_opts, kernel_constraint, F_CONSTRAINT),
                                    F(tg_conv2d_layer_opts, bias_constraint, F_CONSTRAINT),
                                    END};
static const field pool_fields[] = {F(tg_pooling2d_opts, pool_size, F_I64X2), F(tg_pooling2d_opts, strides, F_I64X2),
                                    FE(tg_pooling2d_opts, padding, padding_names), END};
static const field conv1d_fields[] = {
    F(tg_conv1d_layer_opts, filters, F_I64),           F(tg_conv1d_layer_opts, kernel_size, F_I64),
    F(tg_conv1d_layer_opts, strides, F_I64),           FE(tg_conv1d_layer_opts, padding, padding_names),
    F(tg_conv1d_layer_opts, dilation_rate, F_I64),     F(tg_conv1d_layer_opts, activation, F_ACT),
    F(tg_conv1d_layer_opts, use_bias, F_BOOL),         F(tg_conv1d_layer_opts, kernel_initializer, F_INIT),
    F(tg_conv1d_layer_opts, bias_initializer, F_INIT), END};
static const field pool1d_fields[] = {F(tg_pooling1d_opts, pool_size, F_I64), F(tg_pooling1d_opts, strides, F_I64),
                                      FE(tg_pooling1d_opts, padding, padding_names), END};
static const field convt_fields[] = {F(tg_conv2d_transpose_layer_opts, filters, F_I64),
                                     F(tg_conv2d_transpose_layer_opts, kernel_size, F_I64X2),
                                     F(tg_conv2d_transpose_layer_opts, strides, F_I64X2),
                                     FE(tg_conv2d_transpose_layer_opts, padding, padding_names),
                                     F(tg_conv2d_transpose_layer_opts, dilation_rate, F_I64X2),
                                     F(tg_conv2d_transpose_layer_opts, activation, F_ACT),
                                     F(tg_conv2d_transpose_layer_opts, use_bias, F_BOOL),
                                     F(tg_conv2d_transpose_layer_opts, kernel_initializer, F_INIT),
                                     F(tg_conv2d_transpose_layer_opts, bias_initializer, F_INIT),
                                     END};
static const field sep_fields[] = {F(tg_separable_conv2d_layer_opts, filters, F_I64),
                                   F(tg_separable_conv2d_layer_opts, kernel_size, F_I64X2),
                                   F(tg_separable_conv2d_layer_opts, strides, F_I64X2),
                                   FE(tg_separable_conv2d_layer_opts, padding, padding_names),
                                   F(tg_separable_conv2d_layer_opts, depth_multiplier, F_I64),
                                   F(tg_separable_conv2d_layer_opts, dilation_rate, F_I64X2),
                                   F(tg_separable_conv2d_layer_opts, activation, F_ACT),
                                   F(tg_separable_conv2d_layer_opts, use_bias, F_BOOL),
                                   F(tg_separable_conv2d_layer_opts, depthwise_initializer, F_INIT),
                                   F(tg_separable_conv2d_layer_opts, pointwise_initializer, F_INIT),
                                   F(tg_separable_conv2d_layer_opts, bias_initializer, F_INIT),
                                   END};
static const field up_fields[] = {F(tg_up_sampling2d_opts, size, F_I64X2),
                                  FE(tg_up_sampling2d_opts, interpolation, interpolation_names), END};
static const field zpad_fields[] = {F(tg_zero_padding2d_opts, padding, F_I64X2X2), END};
static const field crop_fields[] = {F(tg_cropping2d_opts, cropping, F_I64X2X2), END};
static const field rescaling_fields[] = {F(tg_rescaling_opts, scale, F_F64), F(tg_rescaling_opts, offset, F_F64), END};
static const field flip_fields[] = {FE(tg_random_flip_opts, mode, flip_names), END};
static const field rcrop_fields[] = {F(tg_random_crop_opts, height, F_I64), F(tg_random_crop_opts, width, F_I64), END};
static const field norm_fields[] = {F(tg_normalization_opts, axis, F_AXES), F(tg_normalization_opts, axis_none, F_BOOL),
                                    F(tg_normalization_opts, invert, F_BOOL), END};
static const field rnn_fields[] = {F(tg_rnn_opts, units, F_I64),
                                   F(tg_rnn_opts, activation, F_ACT),
                                   F(tg_rnn_opts, recurrent_activation, F_ACT),
                                   F(tg_rnn_opts, use_bias, F_BOOL),
                                   F(tg_rnn_opts, kernel_initializer, F_INIT),
                                   F(tg_rnn_opts, recurrent_initializer, F_INIT),
                                   F(tg_rnn_opts, bias_initializer, F_INIT),
                                   F(tg_rnn_opts, unit_forget_bias, F_BOOL),
                                   F(tg_rnn_opts, reset_after, F_BOOL),
                                   F(tg_rnn_opts, return_sequences, F_BOOL),
                                   F(tg_rnn_opts, go_backwards, F_BOOL),
                                   F(tg_rnn_opts, kernel_regularizer, F_REG),
                                   F(tg_rnn_opts, recurrent_regularizer, F_REG),
                                   F(tg_rnn_opts, bias_regularizer, F_REG),
                                   F(tg_rnn_opts, kernel_constraint, F_CONSTRAINT),
                                   F(tg_rnn_opts, recurrent_constraint, F_CONSTRAINT),
                                   F(tg_rnn_opts, bias_constraint, F_CONSTRAINT),
                                   F(tg_rnn_opts, return_state, F_BOOL),
                                   END};
static const field mha_fields[] = {F(tg_multi_head_attention_opts, num_heads, F_INT),
                                   F(tg_multi_head_attention_opts, key_dim, F_I64),
                                   F(tg_multi_head_attention_opts, value_dim, F_I64),
                                   F(tg_multi_head_attention_opts, use_bias, F_BOOL),
                                   F(tg_multi_head_attention_opts, use_causal_mask, F_BOOL),
                                   F(tg_multi_head_attention_opts, kernel_initializer, F_INIT),
                                   F(tg_multi_head_attention_opts, bias_initializer, F_INIT),
                                   F(tg_multi_head_attention_opts, dropout, F_F64),
                                   F(tg_multi_head_attention_opts, output_shape, F_SHAPE),
                                   F(tg_multi_head_attention_opts, attention_axes, F_AXES),
                                   F(tg_multi_head_attention_opts, return_attention_scores, F_BOOL),
                                   END};
static const char *const score_mode_names[] = {"dot", "concat"};
static const field attention_fields[] = {F(tg_attention_opts, use_scale, F_BOOL),
                                         FE(tg_attention_opts, score_mode, score_mode_names),
                                         F(tg_attention_opts, dropout, F_F64),
                                         F(tg_attention_opts, use_causal_mask, F_BOOL),
                                         F(tg_attention_opts, return_attention_scores, F_BOOL),
                                         END};
static const field concat_fields[] = {F(tg_merge_opts, axis, F_INT), END};
static const field dot_fields[] = {F(tg_dot_opts, axes, F_INTX2), F(tg_dot_opts, normalize, F_BOOL), END};
static const field bidi_fields[] = {FE(tg_bidirectional_opts, merge_mode, merge_names), END};
/* Activation keeps its activation in the layer, not in stored options. */
static const field activation_fields[] = {END};
static const field no_fields[] = {END};

/* One built-in class: its options and its constructor on an options struct (wrappers
 * also get their wrapped layer). */
typedef struct builtin {
    const char *class_name;
    const field *fields;
    size_t size; /* of the options struct */
    tg_layer *(*make)(tg_loc loc, const void *o, tg_layer *inner);
    bool in_kept; /* the layer keeps its options in `kept`, not in `o` (Masking) */
} builtin;

#define MAKE(fn, S)                                                        \
    static tg_layer *make_##fn(tg_loc loc, const void *o, tg_layer *inner) \
    {                                                                      \
        return (void)inner, fn(loc, *(const S *)o);                        \
    }
MAKE(tg_dense_at, tg_dense_opts)
MAKE(tg_activation_layer_at, tg_activation_layer_opts)
MAKE(tg_prelu_layer_at, tg_prelu_layer_opts)
MAKE(tg_dropout_at, tg_dropout_opts)
MAKE(tg_flatten_at, tg_flatten_opts)
MAKE(tg_reshape_layer_at, tg_reshape_layer_opts)
MAKE(tg_batch_normalization_at, tg_batch_normalization_opts)
MAKE(tg_layer_normalization_at, tg_layer_normalization_opts)
MAKE(tg_embedding_at, tg_embedding_opts)
MAKE(tg_conv2d_layer_at, tg_conv2d_layer_opts)
MAKE(tg_max_pooling2d_at, tg_pooling2d_opts)
MAKE(tg_average_pooling2d_at, tg_pooling2d_opts)
MAKE(tg_global_average_pooling2d_at, tg_global_pooling2d_opts)
MAKE(tg_conv1d_layer_at, tg_conv1d_layer_opts)
MAKE(tg_max_pooling1d_at, tg_pooling1d_opts)
MAKE(tg_average_pooling1d_at, tg_pooling1d_opts)
MAKE(tg_global_max_pooling1d_at, tg_global_pooling2d_opts)
MAKE(tg_global_average_pooling1d_at, tg_global_pooling2d_opts)
MAKE(tg_global_max_pooling2d_at, tg_global_pooling2d_opts)
MAKE(tg_conv2d_transpose_layer_at, tg_conv2d_transpose_layer_opts)
MAKE(tg_depthwise_conv2d_layer_at, tg_depthwise_conv2d_layer_opts)
MAKE(tg_separable_conv2d_layer_at, tg_separable_conv2d_layer_opts)
MAKE(tg_up_sampling2d_at, tg_up_sampling2d_opts)
MAKE(tg_zero_padding2d_at, tg_zero_padding2d_opts)
MAKE(tg_cropping2d_at, tg_cropping2d_opts)
MAKE(tg_rescaling_at, tg_rescaling_opts)
MAKE(tg_random_flip_at, tg_random_flip_opts)
MAKE(tg_random_crop_at, tg_random_crop_opts)
MAKE(tg_normalization_at, tg_normalization_opts)
MAKE(tg_simple_rnn_at, tg_rnn_opts)
MAKE(tg_lstm_at, tg_rnn_opts)
MAKE(tg_gru_at, tg_rnn_opts)
MAKE(tg_multi_head_attention_at, tg_multi_head_attention_opts)
MAKE(tg_attention_layer_at, tg_attention_opts)
MAKE(tg_additive_attention_at, tg_attention_opts)
MAKE(tg_add_layer_at, tg_merge_opts)
MAKE(tg_subtract_layer_at, tg_merge_opts)
MAKE(tg_multiply_layer_at, tg_merge_opts)
MAKE(tg_average_layer_at, tg_merge_opts)
MAKE(tg_maximum_layer_at, tg_merge_opts)
MAKE(tg_minimum_layer_at, tg_merge_opts)
MAKE(tg_concatenate_at, tg_merge_opts)
MAKE(tg_dot_layer_at, tg_dot_opts)
MAKE(tg_masking_at, tg_masking_opts)

static tg_layer *make_bidirectional(tg_loc loc, const void *o, tg_layer *inner)
{
    return tg_bidirectional_at(loc, inner, *(const tg_bidirectional_opts *)o);
}
static tg_layer *make_time_distributed(tg_loc loc, const void *o, tg_layer *inner)
{
    return tg_time_distributed_at(loc, inner, *(const tg_time_distributed_opts *)o);
}

#define B(name, fields, S, fn)                    \
    {                                             \
        name, fields, sizeof(S), make_##fn, false \
    }
static const builtin builtins[] = {
    B("Dense", dense_fields, tg_dense_opts, tg_dense_at),
    B("Activation", activation_fields, tg_activation_layer_opts, tg_activation_layer_at),
    B("PReLU", prelu_fields, tg_prelu_layer_opts, tg_prelu_layer_at),
    B("Dropout", dropout_fields, tg_dropout_opts, tg_dropout_at),
    B("Flatten", no_fields, tg_flatten_opts, tg_flatten_at),
    B("Reshape", reshape_fields, tg_reshape_layer_opts, tg_reshape_layer_at),
    B("BatchNormalization", bn_fields, tg_batch_normalization_opts, tg_batch_normalization_at),
    B("LayerNormalization", ln_fields, tg_layer_normalization_opts, tg_layer_normalization_at),
    B("Embedding", embedding_fields, tg_embedding_opts, tg_embedding_at),
    B("Conv2D", conv_fields, tg_conv2d_layer_opts, tg_conv2d_layer_at),
    B("MaxPooling2D", pool_fields, tg_pooling2d_opts, tg_max_pooling2d_at),
    B("AveragePooling2D", pool_fields, tg_pooling2d_opts, tg_average_pooling2d_at),
    B("GlobalAveragePooling2D", no_fields, tg_global_pooling2d_opts, tg_global_average_pooling2d_at),
    B("Conv1D", conv1d_fields, tg_conv1d_layer_opts, tg_conv1d_layer_at),
    B("MaxPooling1D", pool1d_fields, tg_pooling1d_opts, tg_max_pooling1d_at),
    B("AveragePooling1D", pool1d_fields, tg_pooling1d_opts, tg_average_pooling1d_at),
    B("GlobalMaxPooling1D", no_fields, tg_global_pooling2d_opts, tg_global_max_pooling1d_at),
    B("GlobalAveragePooling1D", no_fields, tg_global_pooling2d_opts, tg_global_average_pooling1d_at),
    B("GlobalMaxPooling2D", no_fields, tg_global_pooling2d_opts, tg_global_max_pooling2d_at),
    B("Conv2DTranspose", convt_fields, tg_conv2d_transpose_layer_opts, tg_conv2d_transpose_layer_at),
    B("DepthwiseConv2D", sep_fields, tg_depthwise_conv2d_layer_opts, tg_depthwise_conv2d_layer_at),
    B("SeparableConv2D", sep_fields, tg_separable_conv2d_layer_opts, tg_separable_conv2d_layer_at),
    B("UpSampling2D", up_fields, tg_up_sampling2d_opts, tg_up_sampling2d_at),
    B("ZeroPadding2D", zpad_fields, tg_zero_padding2d_opts, tg_zero_padding2d_at),
    B("Cropping2D", crop_fields, tg_cropping2d_opts, tg_cropping2d_at),
    B("Rescaling", rescaling_fields, tg_rescaling_opts, tg_rescaling_at),
    B("RandomFlip", flip_fields, tg_random_flip_opts, tg_random_flip_at),
    B("RandomCrop", rcrop_fields, tg_random_crop_opts, tg_random_crop_at),
    B("Normalization", norm_fields, tg_normalization_opts, tg_normalization_at),
    B("SimpleRNN", rnn_fields, tg_rnn_opts, tg_simple_rnn_at),
    B("LSTM", rnn_fields, tg_rnn_opts, tg_lstm_at),
    B("GRU", rnn_fields, tg_rnn_opts, tg_gru_at),
    B("MultiHeadAttention", mha_fields, tg_multi_head_attention_opts, tg_multi_head_attention_at),
    B("Attention", attention_fields, tg_attention_opts, tg_attention_layer_at),
    B("AdditiveAttention", attention_fields, tg_attention_opts, tg_additive_attention_at),
    B("Add", no_fields, tg_merge_opts, tg_add_layer_at),
    B("Subtract", no_fields, tg_merge_opts, tg_subtract_layer_at),
    B("Multiply", no_fields, tg_merge_opts, tg_multiply_layer_at),
    B("Average", no_fields, tg_merge_opts, tg_average_layer_at),
    B("Maximum", no_fields, tg_merge_opts, tg_maximum_layer_at),
    B("Minimum", no_fields, tg_merge_opts, tg_minimum_layer_at),
    B("Concatenate", concat_fields, tg_merge_opts, tg_concatenate_at),
    B("Dot", dot_fields, tg_dot_opts, tg_dot_layer_at),
    B("Bidirectional", bidi_fields, tg_bidirectional_opts, bidirectional),
    B("TimeDistributed", no_fields, tg_time_distributed_opts, time_distributed),
    {"Masking", masking_fields, sizeof(tg_masking_opts), make_tg_masking_at, true},
};
enum { N_BUILTINS = sizeof builtins / sizeof builtins[0] };

static const builtin *find_builtin(const char *class_name)
{
    for (int i = 0; i < N_BUILTINS; i++)
        if (!strcmp(builtins[i].class_name, class_name))
            return &builtins[i];
    return NULL;
}

const char *tg__builtin_layer_class(int i) { return i >= 0 && i < N_BUILTINS ? builtins[i].class_name : NULL; }

static bool is_wrapper(const builtin *b) { return b->make == make_bidirectional || b->make == make_time_distributed; }

/* ---- the registry of other classes ---------------------------------------------------------- */
typedef struct registered {
    char *class_name;
    tg__layer_from_config_fn fn;
    void *user;
} registered;
static registered *registry; /* under registry_lock: registered while other threads load */
static int n_registry, cap_registry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static void registry_free(void)
{
    for (int i = 0; i < n_registry; i++)
        free(registry[i].class_name);
    free(registry);
    registry = NULL;
    n_registry = cap_registry = 0;
}

/* A copy of the entry of class_name (its name is not copied); false when none. */
static bool find_registered(const char *class_name, registered *out)
{
    pthread_mutex_lock(&registry_lock);
    bool found = false;
    for (int i = 0; i < n_registry && !found; i++)
        if (!strcmp(registry[i].class_name, class_name)) {
            *out = (registered){NULL, registry[i].fn, registry[i].user};
            found = true;
        }
    pthread_mutex_unlock(&registry_lock);
    return found;
}

static int add_registered(const char *class_name, tg__layer_from_config_fn fn, void *user)
{
    for (int i = 0; i < n_registry; i++)
        if (!strcmp(registry[i].class_name, class_name)) { /* registering again replaces it */
            registry[i].fn = fn;
            registry[i].user = user;
            return 0;
        }
    if (n_registry == cap_registry) {
        int cap = cap_registry ? 2 * cap_registry : 8;
        registered *p = realloc(registry, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        if (!registry)
            atexit(registry_free);
        registry = p;
        cap_registry = cap;
    }
    char *name = strdup(class_name);
    if (!name)
        return -1;
    registry[n_registry++] = (registered){name, fn, user};
    return 0;
}

int tg__layer_register(tg_loc loc, const char *class_name, tg__layer_from_config_fn fn, void *user)
{
    if (!class_name || !*class_name || !fn)
        return tg__failf(loc, "tg__layer_register: give a class name and a function");
    if (find_builtin(class_name))
        return tg__failf(loc, "tg__layer_register: \"%s\" is a built-in layer's class name; give yours another",
                         class_name);
    pthread_mutex_lock(&registry_lock);
    int rc = add_registered(class_name, fn, user);
    pthread_mutex_unlock(&registry_lock);
    return rc == 0 ? 0 : tg__failf(loc, "tg__layer_register: out of memory");
}

/* ---- writing --------------------------------------------------------------------------------- */
static const char *const init_class[TG_INIT_COUNT] = {
    [TG_INIT_GLOROT_UNIFORM] = "GlorotUniform",
    [TG_INIT_GLOROT_NORMAL] = "GlorotNormal",
    [TG_INIT_HE_UNIFORM] = "HeUniform",
    [TG_INIT_HE_NORMAL] = "HeNormal",
    [TG_INIT_LECUN_UNIFORM] = "LecunUniform",
    [TG_INIT_LECUN_NORMAL] = "LecunNormal",
    [TG_INIT_ZEROS] = "Zeros",
    [TG_INIT_ONES] = "Ones",
    [TG_INIT_CONSTANT] = "Constant",
    [TG_INIT_RANDOM_UNIFORM] = "RandomUniform",
    [TG_INIT_RANDOM_NORMAL] = "RandomNormal",
    [TG_INIT_TRUNCATED_NORMAL] = "TruncatedNormal",
    [TG_INIT_ORTHOGONAL] = "Orthogonal",
};
static const char *const constraint_class[] = {NULL, "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm"};

static void put_str(tg__jbuf *b, const char *s) { tg__jbuf_str(b, s, strlen(s)); }
static void put_key(tg__jbuf *b, const char *key)
{
    put_str(b, key);
    tg__jbuf_put(b, ":", 1);
}
static void put_f64(tg__jbuf *b, double v) { tg__jbuf_printf(b, "%.17g", v); }

static void put_i64s(tg__jbuf *b, const int64_t *v, int n)
{
    tg__jbuf_put(b, "[", 1);
    for (int i = 0; i < n; i++)
        tg__jbuf_printf(b, "%s%lld", i ? "," : "", (long long)v[i]);
    tg__jbuf_put(b, "]", 1);
}

static void put_axes(tg__jbuf *b, const tg_axes *a)
{
    tg__jbuf_put(b, "[", 1);
    for (int i = 0; i < a->n && i < TG_MAX_RANK; i++)
        tg__jbuf_printf(b, "%s%d", i ? "," : "", a->axis[i]);
    tg__jbuf_put(b, "]", 1);
}

/* [null, d0, d1, ...]: Keras's batch shapes. */
static void put_batch_shape(tg__jbuf *b, const tg_shape *s)
{
    tg__jbuf_put(b, "[null", 5);
    for (int i = 0; i < s->rank; i++)
        tg__jbuf_printf(b, ",%lld", (long long)s->dims[i]);
    tg__jbuf_put(b, "]", 1);
}

static void put_init(tg__jbuf *b, const tg_initializer *in)
{
    if ((unsigned)in->kind >= TG_INIT_COUNT || !init_class[in->kind]) {
        tg__jbuf_put(b, "null", 4); /* the layer's default */
        return;
    }
    tg__jbuf_printf(b, "{\"class_name\":\"%s\",\"config\":{", init_class[in->kind]);
    switch (in->kind) {
    case TG_INIT_CONSTANT: tg__jbuf_put(b, "\"value\":", 8), put_f64(b, in->value); break;
    case TG_INIT_ORTHOGONAL: tg__jbuf_put(b, "\"gain\":", 7), put_f64(b, in->value); break;
    case TG_INIT_RANDOM_UNIFORM:
        tg__jbuf_put(b, "\"minval\":", 9), put_f64(b, in->minval);
        tg__jbuf_put(b, ",\"maxval\":", 10), put_f64(b, in->maxval);
        break;
    case TG_INIT_RANDOM_NORMAL:
    case TG_INIT_TRUNCATED_NORMAL:
        tg__jbuf_put(b, "\"mean\":", 7), put_f64(b, in->mean);
        tg__jbuf_put(b, ",\"stddev\":", 10), put_f64(b, in->stddev);
        break;
    default: break;
    }
    tg__jbuf_put(b, "}}", 2);
}

static void put_reg(tg__jbuf *b, const tg_regularizer *r)
{
    if (r->l1 == 0 && r->l2 == 0) {
        tg__jbuf_put(b, "null", 4);
        return;
    }
    tg__jbuf_put(b, "{\"class_name\":\"L1L2\",\"config\":{\"l1\":", 36);
    put_f64(b, r->l1);
    tg__jbuf_put(b, ",\"l2\":", 6);
    put_f64(b, r->l2);
    tg__jbuf_put(b, "}}", 2);
}

static void put_constraint(tg__jbuf *b, const tg_constraint *c)
{
    if (c->kind <= TG_CONSTRAINT_NONE || c->kind > TG_CONSTRAINT_MIN_MAX_NORM) {
        tg__jbuf_put(b, "null", 4);
        return;
    }
    tg__jbuf_printf(b, "{\"class_name\":\"%s\",\"config\":{\"max_value\":", constraint_class[c->kind]);
    put_f64(b, c->max_value);
    tg__jbuf_put(b, ",\"min_value\":", 13);
    put_f64(b, c->min_value);
    tg__jbuf_put(b, ",\"rate\":", 8);
    put_f64(b, c->rate);
    tg__jbuf_put(b, ",\"axis\":", 8);
    put_axes(b, &c->axis);
    tg__jbuf_put(b, "}}", 2);
}

static void put_field(tg__jbuf *b, const field *f, const void *opts)
{
    const char *p = (const char *)opts + f->off;
    tg__jbuf_put(b, ",", 1);
    put_key(b, f->key);
    switch (f->type) {
    case F_I64: tg__jbuf_printf(b, "%lld", (long long)*(const int64_t *)p); break;
    case F_INT: tg__jbuf_printf(b, "%d", *(const int *)p); break;
    case F_F64: put_f64(b, *(const double *)p); break;
    case F_BOOL: tg__jbuf_printf(b, "%s", *(const bool *)p ? "true" : "false"); break;
    case F_ACT: {
        const char *n = tg_activation_name(*(const tg_activation *)p);
        put_str(b, n ? n : "linear");
        break;
    }
    case F_ENUM: {
        int v = *(const int *)p;
        put_str(b, v >= 0 && v < f->n_names ? f->names[v] : "?");
        break;
    }
    case F_INIT: put_init(b, (const tg_initializer *)p); break;
    case F_REG: put_reg(b, (const tg_regularizer *)p); break;
    case F_CONSTRAINT: put_constraint(b, (const tg_constraint *)p); break;
    case F_I64X2: put_i64s(b, (const int64_t *)p, 2); break;
    case F_I64X2X2: {
        const int64_t(*v)[2] = (const int64_t(*)[2])p;
        tg__jbuf_put(b, "[", 1);
        put_i64s(b, v[0], 2);
        tg__jbuf_put(b, ",", 1);
        put_i64s(b, v[1], 2);
        tg__jbuf_put(b, "]", 1);
        break;
    }
    case F_INTX2: tg__jbuf_printf(b, "[%d,%d]", ((const int *)p)[0], ((const int *)p)[1]); break;
    case F_AXES: put_axes(b, (const tg_axes *)p); break;
    case F_SHAPE: {
        const tg_shape *s = (const tg_shape *)p;
        put_i64s(b, s->dims, s->rank > 0 && s->rank <= TG_MAX_RANK ? s->rank : 0);
        break;
    }
    }
}

static bool put_layer(tg_loc loc, tg__jbuf *b, const tg_layer *l, const char *name);

/* The config object of a layer: the options every layer has, then its kind's. `name`
 * replaces the layer's own (a wrapped layer's name before its wrapper renamed it). */
static bool put_input_config(tg__jbuf *b, const tg_layer *l);

/* The members of a JSON object's text (a get_config's), after a comma; false when the text
 * is not an object. */
static bool put_members(tg__jbuf *b, const char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t'))
        n--;
    if (n < 2 || s[0] != '{' || s[n - 1] != '}')
        return false;
    const char *body = s + 1;
    size_t inner = n - 2;
    while (inner && (*body == ' ' || *body == '\n' || *body == '\t'))
        body++, inner--;
    if (inner)
        tg__jbuf_put(b, ",", 1), tg__jbuf_put(b, body, inner);
    return true;
}

/* A custom layer's own options (its class's get_config; "{}" without one), malloc'd; NULL
 * for the other layers (tg_custom_layer_config refuses them). */
static char *custom_config(const tg_layer *l)
{
    bool had_error = tg_has_error();
    int n = tg_custom_layer_config(l, NULL, 0);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (n < 0 || !text || tg_custom_layer_config(l, text, (size_t)n + 1) != n) {
        free(text);
        if (!had_error)
            tg_clear_error();
        return NULL;
    }
    return text;
}

static bool put_model_config(tg_loc loc, tg__jbuf *b, const tg_model *m);
static void put_build_config(tg__jbuf *b, const tg_model *m);

static bool put_config(tg_loc loc, tg__jbuf *b, const tg_layer *l, const char *name)
{
    if (!strcmp(l->kind->class_name, "InputLayer"))
        return put_input_config(b, l);
    if (tg__layer_inner_model(l)) /* a model used as a layer: the model's config (Keras's) */
        return put_model_config(loc, b, tg__layer_inner_model(l));
    tg__jbuf_put(b, "{\"name\":", 8);
    put_str(b, name ? name : l->name);
    tg__jbuf_printf(b, ",\"trainable\":%s,\"dtype\":", l->trainable ? "true" : "false");
    tg_dtype dt = l->built ? l->dtype : l->dtype_opt;
    if (tg_dtype_name(dt))
        put_str(b, tg_dtype_name(dt));
    else
        tg__jbuf_put(b, "null", 4);
    if (l->mixed)
        tg__jbuf_printf(b, ",\"dtype_policy\":\"%s\"", tg_layer_dtype_policy(l));
    if (l->seed_opt)
        tg__jbuf_printf(b, ",\"seed\":\"%llu\"", (unsigned long long)l->seed_opt);
    if (l->input_shape.rank > 0) {
        tg__jbuf_put(b, ",\"batch_input_shape\":", 21);
        put_batch_shape(b, &l->input_shape);
    }
    char *custom = custom_config(l);
    const builtin *bi = l->kind->get_config || custom ? NULL : find_builtin(l->kind->class_name);
    if (custom) {
        bool ok = put_members(b, custom);
        free(custom);
        if (!ok)
            return tg__failb(loc, "layer \"%s\" (%s): its get_config gave text that is not a JSON object", l->name,
                             l->kind->class_name);
    } else if (bi) {
        if (!strcmp(bi->class_name, "Activation")) {
            tg__jbuf_put(b, ",\"activation\":", 14);
            put_str(b, tg_activation_name(l->activation) ? tg_activation_name(l->activation) : "linear");
        }
        for (const field *f = bi->fields; f->key; f++)
            put_field(b, f, bi->in_kept ? l->kept : (const void *)&l->o);
        if (is_wrapper(bi)) {
            const char *base = NULL;
            const tg_layer *inner = tg__wrapped_layer(l, &base);
            if (!strcmp(bi->class_name, "Bidirectional") && !strncmp(base, "forward_", 8))
                base += 8;
            tg__jbuf_put(b, ",\"layer\":", 9);
            if (!put_layer(loc, b, inner, base))
                return false;
        }
    } else if (l->kind->get_config) {
        char *own = l->kind->get_config(l, loc);
        if (!own)
            return false;
        bool ok = put_members(b, own);
        free(own);
        if (!ok)
            return tg__failb(loc, "layer \"%s\" (%s): its get_config gave text that is not a JSON object", l->name,
                             l->kind->class_name);
    } else {
        return tg__failb(loc,
                         "layer \"%s\" (%s) cannot be saved: its class has no get_config (give its kind a "
                         "get_config hook and register its class name)",
                         l->name, l->kind->class_name);
    }
    tg__jbuf_put(b, "}", 1);
    return true;
}

/* {"class_name": ..., "config": {...}}: Keras's serialised layer. */
static bool put_layer(tg_loc loc, tg__jbuf *b, const tg_layer *l, const char *name)
{
    tg__jbuf_put(b, "{\"class_name\":", 14);
    put_str(b, l->kind->class_name);
    tg__jbuf_put(b, ",\"config\":", 10);
    if (!put_config(loc, b, l, name))
        return false;
    if (tg__layer_inner_model(l))
        put_build_config(b, tg__layer_inner_model(l));
    tg__jbuf_put(b, "}", 1);
    return true;
}

static char *finish(tg_loc loc, const char *func, tg__jbuf *b, bool ok)
{
    tg__jbuf_put(b, "", 1);
    if (ok && b->oom)
        ok = tg__failb(loc, "%s: out of memory", func);
    if (!ok) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

char *tg_layer_get_config_at(tg_loc loc, const tg_layer *layer)
{
    if (!layer)
        return tg__fail(loc, "tg_layer_get_config: the layer is NULL");
    tg__jbuf b = {0};
    return finish(loc, "tg_layer_get_config", &b, put_config(loc, &b, layer, NULL));
}

/* ---- a model's architecture ------------------------------------------------------------------- */
static bool is_input_layer(const tg_layer *l) { return !strcmp(l->kind->class_name, "InputLayer"); }

/* An InputLayer's config: its name, batch shape and dtype (Keras's keras.Input). */
static bool put_input_config(tg__jbuf *b, const tg_layer *l)
{
    const tg_keras_tensor *t = &l->nodes[0]->outs[0];
    tg__jbuf_put(b, "{\"name\":", 8);
    put_str(b, l->name);
    tg__jbuf_put(b, ",\"batch_input_shape\":", 21);
    put_batch_shape(b, &t->shape);
    tg__jbuf_put(b, ",\"dtype\":", 9);
    put_str(b, tg_dtype_name(t->dtype));
    tg__jbuf_put(b, "}", 1);
    return true;
}

/* The node's index among its layer's nodes that belong to the model (Keras's node_index
 * in a model's config). */
static int model_node_index(const tg_node *node)
{
    int k = 0;
    for (int i = 0; i < node->index; i++)
        k += node->layer->nodes[i]->in_model;
    return k;
}

static void put_tensor_ref(tg__jbuf *b, const tg_keras_tensor *t, bool kwargs)
{
    tg__jbuf_put(b, "[", 1);
    put_str(b, t->node->layer->name);
    tg__jbuf_printf(b, ",%d,%d%s]", model_node_index(t->node), t->index, kwargs ? ",{}" : "");
}

static bool put_functional_layer(tg_loc loc, tg__jbuf *b, const tg_layer *l)
{
    tg__jbuf_put(b, "{\"class_name\":", 14);
    put_str(b, l->kind->class_name);
    tg__jbuf_put(b, ",\"name\":", 8);
    put_str(b, l->name);
    tg__jbuf_put(b, ",\"config\":", 10);
    if (!put_config(loc, b, l, NULL))
        return false;
    tg__jbuf_put(b, ",\"inbound_nodes\":[", 18);
    bool first = true;
    for (int i = 0; i < l->n_nodes && !is_input_layer(l); i++) {
        const tg_node *node = l->nodes[i];
        if (!node->in_model)
            continue;
        tg__jbuf_put(b, first ? "[" : ",[", first ? 1 : 2);
        first = false;
        for (int k = 0; k < node->n_in; k++) {
            if (k)
                tg__jbuf_put(b, ",", 1);
            put_tensor_ref(b, node->in[k], true);
        }
        tg__jbuf_put(b, "]", 1);
    }
    tg__jbuf_put(b, "]}", 2);
    return true;
}

static void put_model_common(tg__jbuf *b, const tg_model *m)
{
    tg__jbuf_put(b, "{\"name\":", 8);
    put_str(b, m->name);
    tg__jbuf_printf(b, ",\"trainable\":%s,\"dtype\":", m->trainable ? "true" : "false");
    put_str(b, tg_dtype_name(m->dtype));
    tg__jbuf_printf(b, ",\"seed\":\"%llu\",\"layers\":[", (unsigned long long)m->seed);
}

/* A model's config object: its options, layers and (functional) connections. */
static bool put_model_config(tg_loc loc, tg__jbuf *b, const tg_model *m)
{
    put_model_common(b, m);
    for (int i = 0; i < m->n_layers; i++) {
        if (i)
            tg__jbuf_put(b, ",", 1);
        if (!(m->functional ? put_functional_layer(loc, b, m->layers[i]) : put_layer(loc, b, m->layers[i], NULL)))
            return false;
    }
    tg__jbuf_put(b, "]", 1);
    if (m->functional) {
        const char *keys[2] = {"input_layers", "output_layers"};
        for (int side = 0; side < 2; side++) {
            tg__jbuf_printf(b, ",\"%s\":[", keys[side]);
            int n = side ? m->n_outputs : m->n_inputs;
            for (int i = 0; i < n; i++) {
                const tg_layer *l = side ? m->output_layers[i] : m->input_layers[i];
                const tg_node *node = l->nodes[0];
                int out = 0;
                for (int k = 0; side && k < l->n_nodes; k++) { /* the node and output that are the model's */
                    const tg_node *nk = l->nodes[k];
                    int at = m->output_slots[i] - nk->slot;
                    if (nk->in_model && at >= 0 && at < nk->n_out)
                        node = nk, out = at;
                }
                if (i)
                    tg__jbuf_put(b, ",", 1);
                put_tensor_ref(b, &node->outs[out], false);
            }
            tg__jbuf_put(b, "]", 1);
        }
    }
    tg__jbuf_put(b, "}", 1);
    return true;
}

/* ,"build_config": {"input_shape": [null, ...]} of a built Sequential. */
static void put_build_config(tg__jbuf *b, const tg_model *m)
{
    if (m->built && !m->functional) {
        tg__jbuf_put(b, ",\"build_config\":{\"input_shape\":", 31);
        put_batch_shape(b, &m->in_shape);
        tg__jbuf_put(b, "}", 1);
    }
}

static bool put_model(tg_loc loc, tg__jbuf *b, const tg_model *m)
{
    tg__jbuf_printf(b, "{\"class_name\":\"%s\",\"config\":", m->functional ? "Functional" : "Sequential");
    if (!put_model_config(loc, b, m))
        return false;
    put_build_config(b, m);
    tg__jbuf_put(b, "}", 1);
    return true;
}

char *tg__model_config_json(tg_loc loc, const tg_model *m)
{
    tg__jbuf b = {0};
    return finish(loc, "tg_model_save", &b, put_model(loc, &b, m));
}

/* ---- reading ------------------------------------------------------------------------------------ */
/* Where a reader is, for its messages: "tg_model_load_file: 'm.safetensors'" and the layer. */
typedef struct reader {
    tg_loc loc;
    const char *what;
    const tg__json *d;
    char where[192];
} reader;

static bool bad(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad(reader *r, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return tg__failb(r->loc, "%s: %s%s%s", r->what, r->where, *r->where ? ": " : "", why);
}

/* The last error without its "file:line: " prefix (the user's line), to be said again of a
 * file and a layer. */
static const char *last_error_text(const reader *r)
{
    const char *e = tg_last_error() ? tg_last_error() : "refused";
    size_t n = r->loc.file ? strlen(r->loc.file) : 0;
    if (n && !strncmp(e, r->loc.file, n) && e[n] == ':') {
        const char *rest = strstr(e + n + 1, ": ");
        if (rest)
            return rest + 2;
    }
    return e;
}

/* The last error, said again of the file (and the layer being read). */
static void said_of_file(reader *r)
{
    if (tg_last_error() && strstr(tg_last_error(), r->what))
        return;
    char why[1024];
    snprintf(why, sizeof why, "%s", last_error_text(r));
    bad(r, "%s", why);
}

static const tg__json_node *node_at(const reader *r, int32_t i) { return &r->d->nodes[i]; }

static int32_t member(const reader *r, int32_t obj, const char *key)
{
    if (obj < 0 || node_at(r, obj)->kind != TG__J_OBJ)
        return -1;
    size_t n = strlen(key);
    for (int32_t c = node_at(r, obj)->child; c >= 0; c = node_at(r, c)->next)
        if (node_at(r, c)->key_len == n && !memcmp(node_at(r, c)->key, key, n))
            return c;
    return -1;
}

static const char *kind_word(tg__json_kind k)
{
    static const char *const w[] = {"null", "false", "true", "a number", "a string", "an array", "an object"};
    return w[k];
}

static bool want(reader *r, int32_t v, tg__json_kind kind, const char *key, const char *expected)
{
    if (v >= 0 && node_at(r, v)->kind == kind)
        return true;
    return v < 0 ? bad(r, "\"%s\" is missing: it must be %s", key, expected)
                 : bad(r, "\"%s\" is %s: it must be %s", key, kind_word(node_at(r, v)->kind), expected);
}

static bool get_i64(reader *r, int32_t v, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    if (!want(r, v, TG__J_NUM, key, "a whole number"))
        return false;
    const tg__json_node *n = node_at(r, v);
    if (!n->is_int || n->i < lo || n->i > hi)
        return bad(r, "\"%s\" is %.17g: it must be a whole number from %lld to %lld", key, n->d, (long long)lo,
                   (long long)hi);
    *out = n->i;
    return true;
}

static bool get_f64(reader *r, int32_t v, const char *key, double *out)
{
    if (!want(r, v, TG__J_NUM, key, "a number"))
        return false;
    *out = node_at(r, v)->d;
    return true;
}

static bool get_bool(reader *r, int32_t v, const char *key, bool *out)
{
    if (v >= 0 && (node_at(r, v)->kind == TG__J_TRUE || node_at(r, v)->kind == TG__J_FALSE)) {
        *out = node_at(r, v)->kind == TG__J_TRUE;
        return true;
    }
    return want(r, v, TG__J_TRUE, key, "true or false");
}

static const char *get_str(reader *r, int32_t v, const char *key)
{
    if (!want(r, v, TG__J_STR, key, "a string"))
        return NULL;
    if (strlen(node_at(r, v)->str) != node_at(r, v)->str_len)
        return bad(r, "\"%s\" holds a NUL byte", key), NULL;
    return node_at(r, v)->str;
}

/* An array of up to `max` whole numbers in [lo, hi]; *n gets the count. */
static bool get_ints(reader *r, int32_t v, const char *key, int64_t *out, int max, int64_t lo, int64_t hi, int *n,
                     bool leading_null)
{
    if (!want(r, v, TG__J_ARR, key, "an array of whole numbers"))
        return false;
    int k = 0;
    for (int32_t c = node_at(r, v)->child; c >= 0; c = node_at(r, c)->next, k++) {
        if (leading_null && k == 0) {
            if (node_at(r, c)->kind != TG__J_NULL)
                return bad(r, "\"%s\" must start with null, the batch dim", key);
            continue;
        }
        int at = k - leading_null;
        if (at >= max)
            return bad(r, "\"%s\" has more than %d numbers", key, max);
        if (!get_i64(r, c, key, lo, hi, &out[at]))
            return false;
    }
    *n = k - leading_null;
    return true;
}

static bool get_enum(reader *r, int32_t v, const char *key, const char *const *names, int n, int *out)
{
    const char *s = get_str(r, v, key);
    if (!s)
        return false;
    for (int i = 0; i < n; i++)
        if (names[i] && !strcmp(names[i], s)) {
            *out = i;
            return true;
        }
    char list[256] = "";
    size_t at = 0;
    for (int i = 0; i < n && at + 40 < sizeof list; i++)
        if (names[i])
            at += (size_t)snprintf(list + at, sizeof list - at, "%s\"%s\"", at ? ", " : "", names[i]);
    return bad(r, "\"%s\" is \"%.40s\": it must be one of %s", key, s, list);
}

static bool get_axes(reader *r, int32_t v, const char *key, tg_axes *out)
{
    int64_t a[TG_MAX_RANK];
    int n = 0;
    if (!get_ints(r, v, key, a, TG_MAX_RANK, -TG_MAX_RANK, TG_MAX_RANK, &n, false))
        return false;
    *out = (tg_axes){.n = n};
    for (int i = 0; i < n; i++)
        out->axis[i] = (int)a[i];
    return true;
}

/* {"class_name": X, "config": {...}} or null: the class index into `classes` (0 for null)
 * and the config object. */
static bool get_object_class(reader *r, int32_t v, const char *key, const char *const *classes, int n, int *cls,
                             int32_t *cfg)
{
    *cls = 0;
    *cfg = -1;
    if (v >= 0 && node_at(r, v)->kind == TG__J_NULL)
        return true;
    if (!want(r, v, TG__J_OBJ, key, "null or {\"class_name\": ..., \"config\": {...}}"))
        return false;
    if (!get_enum(r, member(r, v, "class_name"), key, classes, n, cls))
        return false;
    *cfg = member(r, v, "config");
    return want(r, *cfg, TG__J_OBJ, key, "an object with a \"config\" object");
}

static bool get_init(reader *r, int32_t v, const char *key, tg_initializer *out)
{
    int cls;
    int32_t c;
    *out = (tg_initializer){0};
    if (!get_object_class(r, v, key, init_class, TG_INIT_COUNT, &cls, &c))
        return false;
    out->kind = (tg_init_kind)cls;
    switch (out->kind) {
    case TG_INIT_CONSTANT: return get_f64(r, member(r, c, "value"), key, &out->value);
    case TG_INIT_ORTHOGONAL: return get_f64(r, member(r, c, "gain"), key, &out->value);
    case TG_INIT_RANDOM_UNIFORM:
        return get_f64(r, member(r, c, "minval"), key, &out->minval) &&
               get_f64(r, member(r, c, "maxval"), key, &out->maxval);
    case TG_INIT_RANDOM_NORMAL:
    case TG_INIT_TRUNCATED_NORMAL:
        return get_f64(r, member(r, c, "mean"), key, &out->mean) &&
               get_f64(r, member(r, c, "stddev"), key, &out->stddev);
    default: return true;
    }
}

static bool get_reg(reader *r, int32_t v, const char *key, tg_regularizer *out)
{
    static const char *const classes[] = {NULL, "L1L2"};
    int cls;
    int32_t c;
    *out = (tg_regularizer){0};
    if (!get_object_class(r, v, key, classes, 2, &cls, &c))
        return false;
    return cls == 0 || (get_f64(r, member(r, c, "l1"), key, &out->l1) && get_f64(r, member(r, c, "l2"), key, &out->l2));
}

static bool get_constraint(reader *r, int32_t v, const char *key, tg_constraint *out)
{
    int cls;
    int32_t c;
    *out = (tg_constraint){0};
    if (!get_object_class(r, v, key, constraint_class, 5, &cls, &c))
        return false;
    out->kind = (tg_constraint_kind)cls;
    return cls == 0 ||
           (get_f64(r, member(r, c, "max_value"), key, &out->max_value) &&
            get_f64(r, member(r, c, "min_value"), key, &out->min_value) &&
            get_f64(r, member(r, c, "rate"), key, &out->rate) && get_axes(r, member(r, c, "axis"), key, &out->axis));
}

static bool get_field(reader *r, int32_t cfg, const field *f, void *opts)
{
    char *p = (char *)opts + f->off;
    int32_t v = member(r, cfg, f->key);
    const char *k = f->key;
    int64_t a[4];
    int n = 0;
    switch (f->type) {
    case F_I64: return get_i64(r, v, k, INT64_MIN, INT64_MAX, (int64_t *)p);
    case F_INT: return get_i64(r, v, k, -1000000, 1000000, a) && (*(int *)p = (int)a[0], true);
    case F_F64: return get_f64(r, v, k, (double *)p);
    case F_BOOL: return get_bool(r, v, k, (bool *)p);
    case F_ACT: {
        const char *names[TG_ACTIVATION_COUNT];
        for (int i = 0; i < TG_ACTIVATION_COUNT; i++)
            names[i] = tg_activation_name((tg_activation)i);
        int act = 0;
        return get_enum(r, v, k, names, TG_ACTIVATION_COUNT, &act) && (*(tg_activation *)p = (tg_activation)act, true);
    }
    case F_ENUM: return get_enum(r, v, k, f->names, f->n_names, (int *)p);
    case F_INIT: return get_init(r, v, k, (tg_initializer *)p);
    case F_REG: return get_reg(r, v, k, (tg_regularizer *)p);
    case F_CONSTRAINT: return get_constraint(r, v, k, (tg_constraint *)p);
    case F_I64X2:
        if (!get_ints(r, v, k, (int64_t *)p, 2, INT64_MIN, INT64_MAX, &n, false))
            return false;
        return n == 2 || bad(r, "\"%s\" must hold 2 numbers", k);
    case F_I64X2X2: {
        if (!want(r, v, TG__J_ARR, k, "[[top, bottom], [left, right]]") || node_at(r, v)->count != 2)
            return bad(r, "\"%s\" must be [[top, bottom], [left, right]]", k);
        int32_t c0 = node_at(r, v)->child, c1 = node_at(r, c0)->next;
        int n1 = 0;
        if (!get_ints(r, c0, k, (int64_t *)p, 2, INT64_MIN, INT64_MAX, &n, false) ||
            !get_ints(r, c1, k, (int64_t *)p + 2, 2, INT64_MIN, INT64_MAX, &n1, false))
            return false;
        return (n == 2 && n1 == 2) || bad(r, "\"%s\" must be [[top, bottom], [left, right]]", k);
    }
    case F_INTX2:
        if (!get_ints(r, v, k, a, 2, -1000000, 1000000, &n, false))
            return false;
        if (n != 2)
            return bad(r, "\"%s\" must hold 2 numbers", k);
        ((int *)p)[0] = (int)a[0], ((int *)p)[1] = (int)a[1];
        return true;
    case F_AXES: return get_axes(r, v, k, (tg_axes *)p);
    case F_SHAPE: {
        tg_shape *s = (tg_shape *)p;
        *s = (tg_shape){0};
        if (!get_ints(r, v, k, s->dims, TG_MAX_RANK - 1, -1, INT64_MAX, &n, false))
            return false;
        s->rank = n;
        return true;
    }
    }
    return false;
}

/* The options every layer has, from its config: name, dtype, seed, batch_input_shape. */
typedef struct {
    TG__LAYER_FIELDS;
} common_opts;

static bool get_common(reader *r, int32_t cfg, common_opts *c, bool *trainable)
{
    if (!(c->name = get_str(r, member(r, cfg, "name"), "name")) ||
        !get_bool(r, member(r, cfg, "trainable"), "trainable", trainable))
        return false;
    int32_t v = member(r, cfg, "dtype");
    c->dtype = TG_DTYPE_INHERIT;
    if (v >= 0 && node_at(r, v)->kind != TG__J_NULL) {
        static const char *const dtypes[] = {"float32", "float64"};
        int d;
        if (!get_enum(r, v, "dtype", dtypes, 2, &d))
            return false;
        c->dtype = d ? TG_F64 : TG_F32;
    }
    if ((v = member(r, cfg, "dtype_policy")) >= 0) {
        static const char *const policies[] = {"mixed_bfloat16"};
        int k;
        if (!get_enum(r, v, "dtype_policy", policies, 1, &k))
            return false;
        c->dtype_policy = policies[k];
    }
    if ((v = member(r, cfg, "seed")) >= 0) {
        const char *s = get_str(r, v, "seed");
        char *end;
        if (!s)
            return false;
        c->seed = strtoull(s, &end, 10);
        if (!*s || *end || *s == '-')
            return bad(r, "\"seed\" is \"%.30s\": it must be a whole number in digits", s);
    }
    if ((v = member(r, cfg, "batch_input_shape")) >= 0) {
        int n = 0;
        if (!get_ints(r, v, "batch_input_shape", c->input_shape.dims, TG_MAX_RANK - 1, 1, INT64_MAX, &n, true))
            return false;
        c->input_shape.rank = n;
    }
    return true;
}

/* The names every layer's config may hold, besides its kind's options. */
static bool known_key(const builtin *bi, const char *key)
{
    static const char *const common[] = {"name", "trainable", "dtype", "dtype_policy", "seed", "batch_input_shape"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        if (!strcmp(key, common[i]))
            return true;
    for (const field *f = bi->fields; f->key; f++)
        if (!strcmp(key, f->key))
            return true;
    return (!strcmp(bi->class_name, "Activation") && !strcmp(key, "activation")) ||
           (is_wrapper(bi) && !strcmp(key, "layer"));
}

/* The JSON text of node v (a custom layer's config handed to its function). */
static void put_node(tg__jbuf *b, const reader *r, int32_t v)
{
    const tg__json_node *n = node_at(r, v);
    switch (n->kind) {
    case TG__J_NULL: tg__jbuf_put(b, "null", 4); break;
    case TG__J_FALSE: tg__jbuf_put(b, "false", 5); break;
    case TG__J_TRUE: tg__jbuf_put(b, "true", 4); break;
    case TG__J_NUM:
        if (n->is_int)
            tg__jbuf_printf(b, "%lld", (long long)n->i);
        else
            put_f64(b, n->d);
        break;
    case TG__J_STR: tg__jbuf_str(b, n->str, n->str_len); break;
    case TG__J_ARR:
    case TG__J_OBJ:
        tg__jbuf_put(b, n->kind == TG__J_ARR ? "[" : "{", 1);
        for (int32_t c = n->child; c >= 0; c = node_at(r, c)->next) {
            if (c != n->child)
                tg__jbuf_put(b, ",", 1);
            if (n->kind == TG__J_OBJ) {
                tg__jbuf_str(b, node_at(r, c)->key, node_at(r, c)->key_len);
                tg__jbuf_put(b, ":", 1);
            }
            put_node(b, r, c);
        }
        tg__jbuf_put(b, n->kind == TG__J_ARR ? "]" : "}", 1);
        break;
    }
}

static tg_layer *layer_from(reader *r, int32_t obj, int depth);
static tg_layer *builtin_from(reader *r, const builtin *bi, int32_t cfg, const common_opts *c, int depth);

/* A layer of a registered class: its function on the config's text. */
static tg_layer *registered_from(reader *r, const registered *reg, int32_t cfg)
{
    tg__jbuf b = {0};
    put_node(&b, r, cfg);
    char *text = finish(r->loc, r->what, &b, true);
    tg_layer *l = text ? reg->fn(r->loc, text, reg->user) : NULL;
    free(text);
    if (!l && !tg_has_error())
        bad(r, "the function registered for its class made no layer");
    return l;
}

/* A built-in class's layer: its options struct filled from the config (every struct starts
 * with the options every layer has, `c`), then its constructor. */
static tg_layer *builtin_from(reader *r, const builtin *bi, int32_t cfg, const common_opts *c, int depth)
{
    for (int32_t k = node_at(r, cfg)->child; k >= 0; k = node_at(r, k)->next)
        if (!known_key(bi, node_at(r, k)->key))
            return bad(r, "%s has no option \"%.60s\"", bi->class_name, node_at(r, k)->key), NULL;
    char *o = calloc(1, bi->size);
    if (!o)
        return bad(r, "out of memory"), NULL;
    memcpy(o, c, sizeof *c);
    bool ok = true;
    for (const field *f = bi->fields; ok && f->key; f++)
        ok = get_field(r, cfg, f, o);
    if (ok && !strcmp(bi->class_name, "Activation")) {
        static const field act = {"activation", F_ACT, offsetof(tg_activation_layer_opts, activation), NULL, 0};
        ok = get_field(r, cfg, &act, o);
    }
    tg_layer *inner = NULL, *l = NULL;
    if (ok && is_wrapper(bi)) {
        int32_t in = member(r, cfg, "layer");
        ok = want(r, in, TG__J_OBJ, "layer", "the wrapped layer's {\"class_name\", \"config\"}") &&
             (inner = layer_from(r, in, depth + 1)) != NULL;
    }
    if (ok)
        l = bi->make(r->loc, o, inner);
    free(o);
    return l;
}

/* A layer of a class registered with tg_register_layer_class: its from_config on the
 * config's text. */
static tg_layer *custom_from(reader *r, const char *cls, int32_t cfg)
{
    tg__jbuf b = {0};
    put_node(&b, r, cfg);
    char *text = finish(r->loc, r->what, &b, true);
    tg_layer *l = text ? tg_custom_layer_from_config_at(r->loc, cls, NULL, text) : NULL;
    free(text);
    return l;
}

static tg_model *model_from_object(reader *r, int32_t root, const char *cls, int32_t cfg, int depth);

/* A model used as a layer (Keras's nested model): the model its config describes. */
static tg_layer *nested_from(reader *r, int32_t obj, const char *cls, int32_t cfg, int depth)
{
    char where[sizeof r->where];
    snprintf(where, sizeof where, "%s", r->where);
    tg_model *m = model_from_object(r, obj, cls, cfg, depth + 1);
    snprintf(r->where, sizeof r->where, "%s", where);
    tg_layer *l = m ? tg_model_as_layer_at(r->loc, m) : NULL;
    if (m && !l) {
        said_of_file(r);
        tg_model_free_at(r->loc, m);
    }
    return l;
}

/* {"class_name": ..., "config": {...}}: the layer it describes, unbuilt. */
static tg_layer *layer_from(reader *r, int32_t obj, int depth)
{
    if (depth > 4)
        return bad(r, "layers are wrapped more than 4 deep"), NULL;
    const char *cls = get_str(r, member(r, obj, "class_name"), "class_name");
    int32_t cfg = member(r, obj, "config");
    if (!cls || !want(r, cfg, TG__J_OBJ, "config", "an object"))
        return NULL;
    const builtin *bi = find_builtin(cls);
    registered found;
    const registered *reg = !bi && find_registered(cls, &found) ? &found : NULL;
    const tg_layer_class *custom = !bi && !reg ? tg_find_layer_class(cls) : NULL;
    if (!bi && !reg && !custom && (!strcmp(cls, "Sequential") || !strcmp(cls, "Functional")))
        return nested_from(r, obj, cls, cfg, depth);
    if (!bi && !reg && !custom)
        return bad(r,
                   "names the layer class \"%.60s\", which tapegrad does not know: it is neither a built-in layer nor "
                   "a class registered before loading",
                   cls),
               NULL;
    common_opts c = {0};
    bool trainable = true;
    if (!get_common(r, cfg, &c, &trainable))
        return NULL;
    tg_layer *l = reg      ? registered_from(r, reg, cfg)
                  : custom ? custom_from(r, cls, cfg)
                           : builtin_from(r, bi, cfg, &c, depth);
    if (!l && !strstr(tg_last_error() ? tg_last_error() : "", r->what)) { /* the constructor's, of this layer */
        char why[1024];
        snprintf(why, sizeof why, "%s", last_error_text(r));
        return bad(r, "%s", why), NULL;
    }
    if (!l)
        return NULL;
    if (strcmp(l->name, c.name) && tg__layer_rename(l, c.name) != 0) {
        tg__layer_destroy(l);
        return bad(r, "out of memory"), NULL;
    }
    l->auto_named = false;
    if (!trainable)
        l->trainable = false;
    return l;
}

/* ---- models from their config ------------------------------------------------------------------- */
static void say_layer(reader *r, int i, int32_t obj, int32_t cfg)
{
    int32_t name = member(r, cfg, "name"), cls = member(r, obj, "class_name");
    snprintf(r->where, sizeof r->where, "layer %d (\"%.60s\", %.40s)", i,
             name >= 0 && node_at(r, name)->kind == TG__J_STR ? node_at(r, name)->str : "?",
             cls >= 0 && node_at(r, cls)->kind == TG__J_STR ? node_at(r, cls)->str : "?");
}

static tg_model *sequential_from(reader *r, int32_t layers, tg_sequential_opts so, int32_t build)
{
    int n = node_at(r, layers)->count, k = 0;
    tg_layer **ls = calloc((size_t)(n ? n : 1), sizeof *ls);
    if (!ls)
        return bad(r, "out of memory"), NULL;
    bool ok = true;
    for (int32_t c = node_at(r, layers)->child; c >= 0 && ok; c = node_at(r, c)->next, k++) {
        say_layer(r, k, c, member(r, c, "config"));
        ok = (ls[k] = layer_from(r, c, 0)) != NULL;
    }
    *r->where = 0;
    tg_shape in = {0};
    if (ok && build >= 0) {
        int nd = 0;
        ok = get_ints(r, member(r, build, "input_shape"), "build_config.input_shape", in.dims, TG_MAX_RANK - 1, 1,
                      INT64_MAX, &nd, true);
        in.rank = nd;
    }
    if (!ok) {
        for (int i = 0; i < k; i++)
            tg_layer_free(ls[i]);
        free(ls);
        return NULL;
    }
    tg_model *m = tg_sequential_at(r->loc, so, ls, n);
    free(ls);
    if (m && build >= 0 && tg_model_build_at(r->loc, m, in) != 0) {
        tg_model_free_at(r->loc, m);
        m = NULL;
    }
    if (!m)
        said_of_file(r);
    return m;
}

/* A functional model's layers, applied node by node as their inputs become known. */
typedef struct fn_layer {
    tg_layer *layer;
    int32_t obj, nodes; /* its entry and its inbound_nodes */
    int n_nodes, done;
    const tg_keras_tensor **outs; /* each applied node's first output (its node holds the others) */
    bool reached;                 /* on a path to an output */
} fn_layer;

static int find_layer(const fn_layer *fl, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (fl[i].layer && !strcmp(fl[i].layer->name, name))
            return i;
    return -1;
}

/* [name, node_index, tensor_index(, kwargs)]: the keras tensor it names, NULL while its
 * node is not applied yet, or with an error (*bad_ref) when it cannot be. */
static const tg_keras_tensor *tensor_ref(reader *r, fn_layer *fl, int n, int32_t ref, bool *bad_ref)
{
    *bad_ref = true;
    if (!want(r, ref, TG__J_ARR, "inbound node", "[layer name, node index, tensor index]") ||
        node_at(r, ref)->count < 3)
        return bad(r, "an inbound tensor must be [layer name, node index, tensor index]"), NULL;
    int32_t c0 = node_at(r, ref)->child, c1 = node_at(r, c0)->next, c2 = node_at(r, c1)->next;
    const char *name = get_str(r, c0, "inbound layer");
    int64_t node = 0, tensor = 0;
    if (!name || !get_i64(r, c1, "node index", 0, INT32_MAX, &node) ||
        !get_i64(r, c2, "tensor index", 0, TG_LAYER_MAX_OUTPUTS - 1, &tensor))
        return NULL;
    int at = find_layer(fl, n, name);
    if (at < 0)
        return bad(r, "an inbound tensor names layer \"%.60s\", which the model does not have", name), NULL;
    if (node >= fl[at].n_nodes)
        return bad(r, "an inbound tensor names node %lld of layer \"%.60s\", which has %d", (long long)node, name,
                   fl[at].n_nodes),
               NULL;
    if (node < fl[at].done && tensor >= fl[at].outs[node]->node->n_out)
        return bad(r, "an inbound tensor names output %lld of layer \"%.60s\", which has %d", (long long)tensor, name,
                   fl[at].outs[node]->node->n_out),
               NULL;
    *bad_ref = false;
    return node < fl[at].done ? &fl[at].outs[node]->node->outs[tensor] : NULL;
}

/* Applies layer i's next node when its inputs are known: 1 applied, 0 not yet, -1 error. */
static int apply_next(reader *r, fn_layer *fl, int n, int i)
{
    int32_t node = node_at(r, fl[i].nodes)->child;
    for (int k = 0; k < fl[i].done; k++)
        node = node_at(r, node)->next;
    if (!want(r, node, TG__J_ARR, "inbound node", "an array of inbound tensors") || node_at(r, node)->count < 1)
        return bad(r, "an inbound node must list its input tensors"), -1;
    int n_in = node_at(r, node)->count;
    const tg_keras_tensor **in = calloc((size_t)n_in, sizeof *in);
    if (!in)
        return bad(r, "out of memory"), -1;
    int k = 0, rc = 1;
    for (int32_t c = node_at(r, node)->child; c >= 0 && rc == 1; c = node_at(r, c)->next, k++) {
        bool bad_ref;
        if (!(in[k] = tensor_ref(r, fl, n, c, &bad_ref)))
            rc = bad_ref ? -1 : 0;
    }
    tg_keras_tensor *made[TG_LAYER_MAX_OUTPUTS] = {0};
    int n_out = rc == 1 ? tg__layer_output_shapes(fl[i].layer, NULL) : 0;
    if (rc == 1 && tg_layer_apply_outputs_at(r->loc, fl[i].layer, in, n_in, made, n_out) == 0)
        fl[i].outs[fl[i].done] = made[0];
    else if (rc == 1) {
        char why[1024];
        snprintf(why, sizeof why, "%s", last_error_text(r));
        bad(r, "%s", why);
        rc = -1;
    }
    if (rc == 1)
        fl[i].done++;
    free((void *)in);
    return rc;
}

static void mark_reached(fn_layer *fl, int n, const tg_keras_tensor *t)
{
    int at = find_layer(fl, n, t->node->layer->name);
    if (at < 0 || fl[at].reached)
        return;
    fl[at].reached = true;
    for (int k = 0; k < fl[at].done; k++)
        for (int j = 0; j < fl[at].outs[k]->node->n_in; j++)
            mark_reached(fl, n, fl[at].outs[k]->node->in[j]);
}

static bool tensor_list(reader *r, fn_layer *fl, int n, int32_t list, const char *key, const tg_keras_tensor ***out,
                        int *count)
{
    if (!want(r, list, TG__J_ARR, key, "an array of [layer name, node index, tensor index]") ||
        node_at(r, list)->count < 1)
        return bad(r, "\"%s\" must list at least one tensor", key);
    *count = node_at(r, list)->count;
    if (!(*out = calloc((size_t)*count, sizeof **out)))
        return bad(r, "out of memory");
    int k = 0;
    for (int32_t c = node_at(r, list)->child; c >= 0; c = node_at(r, c)->next, k++) {
        bool bad_ref;
        if (!((*out)[k] = tensor_ref(r, fl, n, c, &bad_ref)))
            return bad_ref ? false : bad(r, "\"%s\" names a tensor that no node makes", key);
    }
    return true;
}

static tg_model *functional_from(reader *r, int32_t cfg, int32_t layers, tg_functional_opts fo)
{
    int n = node_at(r, layers)->count, k = 0;
    fn_layer *fl = calloc((size_t)(n ? n : 1), sizeof *fl);
    const tg_keras_tensor **ins = NULL, **outs = NULL;
    int n_ins = 0, n_outs = 0;
    bool ok = fl != NULL;
    if (!ok)
        bad(r, "out of memory");
    for (int32_t c = ok ? node_at(r, layers)->child : -1; c >= 0 && ok; c = node_at(r, c)->next, k++) {
        int32_t lc = member(r, c, "config");
        say_layer(r, k, c, lc);
        const char *cls = get_str(r, member(r, c, "class_name"), "class_name");
        fl[k].obj = c;
        fl[k].nodes = member(r, c, "inbound_nodes");
        ok = cls && want(r, fl[k].nodes, TG__J_ARR, "inbound_nodes", "an array of nodes");
        if (ok && !strcmp(cls, "InputLayer")) {
            tg_shape s = {0};
            int nd = 0;
            const char *name = get_str(r, member(r, lc, "name"), "name");
            static const char *const dtypes[] = {"float32", "float64", "int32", "int64"};
            static const tg_dtype dts[] = {TG_F32, TG_F64, TG_I32, TG_I64};
            int d = 0;
            ok = name &&
                 get_ints(r, member(r, lc, "batch_input_shape"), "batch_input_shape", s.dims, TG_MAX_RANK - 1, 1,
                          INT64_MAX, &nd, true) &&
                 get_enum(r, member(r, lc, "dtype"), "dtype", dtypes, 4, &d);
            s.rank = nd;
            const tg_keras_tensor *t =
                ok ? tg_input_at(r->loc, s, (tg_input_opts){.name = name, .dtype = dts[d]}) : NULL;
            if (ok && !t)
                said_of_file(r);
            ok = t && (fl[k].outs = calloc(1, sizeof *fl[k].outs));
            if (t) {
                fl[k].layer = tg_keras_tensor_layer(t);
                fl[k].layer->auto_named = false;
            }
            if (ok) {
                fl[k].outs[0] = t;
                fl[k].n_nodes = fl[k].done = 1;
            }
        } else if (ok) {
            ok = (fl[k].layer = layer_from(r, c, 0)) != NULL;
            fl[k].n_nodes = ok ? node_at(r, fl[k].nodes)->count : 0;
            ok = ok && (fl[k].outs = calloc((size_t)(fl[k].n_nodes + 1), sizeof *fl[k].outs));
        }
        if (ok && find_layer(fl, k, fl[k].layer->name) >= 0)
            ok = bad(r, "the name is used by an earlier layer too");
    }
    /* every node, in passes: a node waits for the nodes its inputs come from */
    for (bool progress = true; ok && progress;) {
        progress = false;
        for (int i = 0; i < n && ok; i++) {
            say_layer(r, i, fl[i].obj, member(r, fl[i].obj, "config"));
            while (ok && fl[i].done < fl[i].n_nodes) {
                int rc = apply_next(r, fl, n, i);
                ok = rc >= 0;
                if (rc <= 0)
                    break;
                progress = true;
            }
        }
    }
    for (int i = 0; ok && i < n; i++)
        if (fl[i].done < fl[i].n_nodes) {
            say_layer(r, i, fl[i].obj, member(r, fl[i].obj, "config"));
            ok = bad(r, "node %d cannot be computed: its inputs come from a cycle or from nodes that do not exist",
                     fl[i].done);
        }
    *r->where = 0;
    ok = ok && tensor_list(r, fl, n, member(r, cfg, "input_layers"), "input_layers", &ins, &n_ins) &&
         tensor_list(r, fl, n, member(r, cfg, "output_layers"), "output_layers", &outs, &n_outs);
    for (int i = 0; ok && i < n_outs; i++)
        mark_reached(fl, n, outs[i]);
    for (int i = 0; ok && i < n; i++)
        if (!fl[i].reached) {
            say_layer(r, i, fl[i].obj, member(r, fl[i].obj, "config"));
            ok = bad(r, "the layer is not on a path to any of the model's outputs");
        }
    tg_model *m = NULL;
    if (ok) { /* tg_functional owns every layer from here, also when it fails */
        if (!(m = tg_functional_at(r->loc, ins, n_ins, outs, n_outs, fo)))
            said_of_file(r);
        for (int i = 0; i < n; i++)
            fl[i].layer = NULL;
    }
    for (int i = 0; fl && i < n; i++) {
        if (fl[i].layer && fl[i].layer->n_nodes == 0)
            tg_layer_free(fl[i].layer);
        else if (fl[i].layer) /* applied: its nodes hold keras tensors of other layers */
            tg__layer_destroy(fl[i].layer);
        free(fl[i].outs);
    }
    free(fl);
    free((void *)ins);
    free((void *)outs);
    return m;
}

tg_model *tg__model_from_config(tg_loc loc, const char *what, const char *json, size_t len)
{
    tg__json doc;
    char err[160];
    size_t pos = 0;
    reader r = {.loc = loc, .what = what, .d = &doc};
    if (!tg__json_parse(json, len, &doc, err, sizeof err, &pos)) {
        tg__json_free(&doc);
        return tg__fail(loc, "%s: the model's architecture is not valid JSON: %s at byte %zu", what, err, pos);
    }
    int32_t cfg = member(&r, 0, "config");
    const char *cls = get_str(&r, member(&r, 0, "class_name"), "class_name");
    tg_model *m = cls ? model_from_object(&r, 0, cls, cfg, 0) : NULL;
    tg__json_free(&doc);
    return m;
}

/* The model of {"class_name": cls, "config": cfg, "build_config": ...} at root (the file's
 * model, or a model used as a layer in it). */
static tg_model *model_from_object(reader *r, int32_t root, const char *cls, int32_t cfg, int depth)
{
    if (depth > 4)
        return bad(r, "models are nested more than 4 deep"), NULL;
    tg_model *m = NULL;
    int32_t layers = member(r, cfg, "layers");
    const char *name = get_str(r, member(r, cfg, "name"), "name");
    common_opts c = {0};
    bool trainable = true;
    if (name && want(r, layers, TG__J_ARR, "layers", "an array of layers") && get_common(r, cfg, &c, &trainable)) {
        tg_dtype dt = c.dtype == TG_DTYPE_INHERIT ? TG_F32 : c.dtype;
        if (!strcmp(cls, "Sequential"))
            m = sequential_from(r, layers, (tg_sequential_opts){.name = name, .seed = c.seed, .dtype = dt},
                                member(r, root, "build_config"));
        else if (!strcmp(cls, "Functional"))
            m = functional_from(r, cfg, layers, (tg_functional_opts){.name = name, .seed = c.seed, .dtype = dt});
        else
            bad(r, "the model's class is \"%.60s\": tapegrad rebuilds Sequential and Functional models", cls);
    }
    if (m && !trainable && tg_model_set_trainable_at(r->loc, m, false) != 0) {
        said_of_file(r);
        tg_model_free_at(r->loc, m);
        m = NULL;
    }
    return m;
}

/* ---- comparing two architectures ----------------------------------------------------------------- */
typedef struct differ {
    reader file, model; /* the two documents */
    char where[192];    /* the layer being compared */
    char path[192];     /* the option inside it */
    bool sequential;
} differ;

/* A short text of a value for a message. */
static const char *value_text(const reader *r, int32_t v, char *buf, size_t size)
{
    if (v < 0)
        return "absent";
    tg__jbuf b = {0};
    put_node(&b, r, v);
    snprintf(buf, size, "%.*s%s", b.n > 80 ? 80 : (int)b.n, b.s ? b.s : "?", b.n > 80 ? "..." : "");
    free(b.s);
    return buf;
}

static bool differs(differ *df, int32_t a, int32_t b)
{
    char va[100], vb[100];
    return tg__failb(df->file.loc,
                     "%s: the file's model differs from this one: %s%s%s is %s in the file, %s in the model",
                     df->file.what, df->where, *df->where ? ": " : "", *df->path ? df->path : "the architecture",
                     value_text(&df->file, a, va, sizeof va), value_text(&df->model, b, vb, sizeof vb));
}

/* Not compared: names of models, trainable flags, seeds, initializers (the loaded weights
 * replace what they drew); and in a Sequential the input shape its first layer declares
 * (its build_config's input shape is compared). */
static bool skipped(const differ *df, const char *key, bool top)
{
    size_t n = strlen(key), suffix = strlen("_initializer");
    return !strcmp(key, "trainable") || !strcmp(key, "seed") || (top && !strcmp(key, "name")) ||
           (n > suffix && !strcmp(key + n - suffix, "_initializer")) ||
           (df->sequential && !strcmp(key, "batch_input_shape"));
}

static bool same_value(differ *df, int32_t a, int32_t b, int depth);

/* Each layer of two "layers" arrays, then their counts. */
static bool same_layers(differ *df, int32_t a, int32_t b)
{
    int32_t ca = node_at(&df->file, a)->child, cb = node_at(&df->model, b)->child;
    char path[sizeof df->path];
    snprintf(path, sizeof path, "%s", df->path);
    for (int i = 0; ca >= 0 && cb >= 0; i++, ca = node_at(&df->file, ca)->next, cb = node_at(&df->model, cb)->next) {
        say_layer(&df->model, i, cb, member(&df->model, cb, "config"));
        snprintf(df->where, sizeof df->where, "%s", df->model.where);
        *df->path = 0;
        if (!same_value(df, ca, cb, 1))
            return false;
    }
    *df->where = 0;
    snprintf(df->path, sizeof df->path, "%s", path);
    if (ca >= 0 || cb >= 0)
        return tg__failb(df->file.loc, "%s: the file's model differs from this one: it has %d layers, this one %d",
                         df->file.what, node_at(&df->file, a)->count, node_at(&df->model, b)->count);
    return true;
}

static bool same_value(differ *df, int32_t a, int32_t b, int depth)
{
    const tg__json_node *x = node_at(&df->file, a), *y = node_at(&df->model, b);
    if (x->kind != y->kind)
        return differs(df, a, b);
    size_t len = strlen(df->path);
    switch (x->kind) {
    case TG__J_NUM: return (x->d == y->d && x->is_int == y->is_int && x->i == y->i) || differs(df, a, b);
    case TG__J_STR: return (x->str_len == y->str_len && !memcmp(x->str, y->str, x->str_len)) || differs(df, a, b);
    case TG__J_ARR: {
        bool scalars = true;
        for (int32_t c = x->child; c >= 0; c = node_at(&df->file, c)->next)
            scalars = scalars && node_at(&df->file, c)->kind < TG__J_ARR;
        if (x->count != y->count)
            return differs(df, a, b);
        int32_t ca = x->child, cb = y->child;
        for (int i = 0; ca >= 0; i++, ca = node_at(&df->file, ca)->next, cb = node_at(&df->model, cb)->next) {
            if (!scalars)
                snprintf(df->path + len, sizeof df->path - len, "[%d]", i);
            if (!same_value(df, ca, cb, depth + 1)) {
                if (scalars) /* a shape or a list of numbers: both whole */
                    return df->path[len] = 0, differs(df, a, b);
                return false;
            }
            df->path[len] = 0;
        }
        return true;
    }
    case TG__J_OBJ:
        for (int pass = 0; pass < 2; pass++) { /* the file's members, then the model's */
            const reader *r = pass ? &df->model : &df->file;
            for (int32_t c = (pass ? y : x)->child; c >= 0; c = node_at(r, c)->next) {
                const char *key = node_at(r, c)->key;
                if (skipped(df, key, depth == 0 && len == 0 && !*df->where))
                    continue;
                int32_t other = member(pass ? &df->file : &df->model, pass ? a : b, key);
                bool options = len == 0 && *df->where && !strcmp(key, "config"); /* a layer's own */
                snprintf(df->path + len, sizeof df->path - len, "%s%s", len ? "." : "", options ? "" : key);
                bool same;
                if (other < 0)
                    same = pass ? differs(df, -1, c) : differs(df, c, -1);
                else if (pass)
                    same = true; /* compared in the first pass */
                else if (!strcmp(key, "layers") && node_at(&df->file, c)->kind == TG__J_ARR &&
                         node_at(&df->model, other)->kind == TG__J_ARR)
                    same = same_layers(df, c, other);
                else
                    same = same_value(df, c, other, depth + 1);
                if (!same)
                    return false;
                df->path[len] = 0;
            }
        }
        return true;
    default: return true;
    }
}

int tg__model_config_compare(tg_loc loc, const char *what, const tg_model *m, const char *file_json, size_t len)
{
    char *mine = tg__model_config_json(loc, m);
    if (!mine) { /* a layer without get_config: there is nothing to compare the file with */
        tg_clear_error();
        return 0;
    }
    tg__json a, b;
    char err[160];
    size_t pos = 0;
    int rc = -1;
    if (!tg__json_parse(file_json, len, &a, err, sizeof err, &pos))
        tg__failf(loc, "%s: the model's architecture is not valid JSON: %s at byte %zu", what, err, pos);
    else if (!tg__json_parse(mine, strlen(mine), &b, err, sizeof err, &pos)) {
        tg__json_free(&b);
        tg__failf(loc, "%s: out of memory", what);
    } else {
        differ df = {.file = {.loc = loc, .what = what, .d = &a}, .model = {.loc = loc, .what = what, .d = &b}};
        int32_t fa = member(&df.file, 0, "config"), fb = member(&df.model, 0, "config");
        int32_t ca = member(&df.file, 0, "class_name"), cb = member(&df.model, 0, "class_name");
        snprintf(df.path, sizeof df.path, "the model's class");
        df.sequential =
            cb >= 0 && node_at(&df.model, cb)->kind == TG__J_STR && !strcmp(node_at(&df.model, cb)->str, "Sequential");
        if (ca < 0 || fa < 0)
            tg__failf(loc, "%s: the model's architecture has no \"class_name\" and \"config\"", what);
        else if (same_value(&df, ca, cb, 1) && (*df.path = 0, same_value(&df, fa, fb, 0))) {
            int32_t ba = member(&df.file, 0, "build_config"), bb = member(&df.model, 0, "build_config");
            snprintf(df.path, sizeof df.path, "the input shape");
            ba = ba >= 0 ? member(&df.file, ba, "input_shape") : -1;
            bb = bb >= 0 ? member(&df.model, bb, "input_shape") : -1;
            rc = (ba < 0 || bb < 0 || same_value(&df, ba, bb, 1)) ? 0 : -1;
        }
        tg__json_free(&b);
    }
    tg__json_free(&a);
    free(mine);
    return rc;
}
