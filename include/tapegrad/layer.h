/* tapegrad/layer.h: one's own layers (Keras's subclassed keras.layers.Layer), the Lambda
 * layer, masks (Embedding's mask_zero, Masking, compute_mask) and models used as layers.
 *
 *   typedef struct { int64_t units; tg_tensor *w; } scale_state;
 *   static int scale_build(tg_layer *l, tg_shape in) {
 *       scale_state *s = tg_layer_state(l);
 *       s->w = tg_layer_add_weight(l, "w", TG_SHAPE(in.dims[in.rank - 1]), .initializer = tg_init_ones());
 *       return s->w ? 0 : -1;
 *   }
 *   static tg_tensor *scale_call(tg_layer *l, const tg_tensor *x, bool training, const tg_tensor *mask) {
 *       return tg_mul(x, ((scale_state *)tg_layer_state(l))->w);
 *   }
 *   static const tg_layer_class scale_class = {.class_name = "Scale", .build = scale_build,
 *                                              .call = scale_call, .supports_masking = true};
 *   tg_layer *l = tg_custom_layer(&scale_class, .state = calloc(1, sizeof(scale_state)));
 *
 * A custom layer is a tg_layer like the built-in ones: Sequential and functional models
 * take it, its variables are named "<layer>/<name>", seeded from the model's seed, listed,
 * frozen, regularised, checkpointed and diagnosed as theirs, and it gets its summary row.
 * Its call is made of public ops, so tapes differentiate it. */
#ifndef TAPEGRAD_LAYER_H
#define TAPEGRAD_LAYER_H

#include "nn.h"

TG_BEGIN_DECLS

/* ---- custom layers ------------------------------------------------------------------------ */
typedef struct tg_layer_class {
    const char *class_name; /* required: "Scale", as the summary and model files name it */
    const char *base_name;  /* default names (scale, scale_1, ...); default: class_name in snake_case */
    /* Keras's build(input_shape): one example's shape (no batch dim). Makes the weights
     * with tg_layer_add_weight. 0, or -1 (with an error, or one is written naming the
     * layer). Optional: a layer without weights. */
    int (*build)(tg_layer *layer, tg_shape input_shape);
    /* Keras's call(inputs, training, mask): the output for a batch x, made of ops. mask is
     * x's mask (bool, x's leading axes) or NULL. NULL for an error. Required. */
    tg_tensor *(*call)(tg_layer *layer, const tg_tensor *x, bool training, const tg_tensor *mask);
    /* Keras's compute_output_shape: one example's output shape into *out, 0 or -1.
     * Optional: without it the call is traced on a batch of one zero example. */
    int (*compute_output_shape)(tg_layer *layer, tg_shape input_shape, tg_shape *out);
    /* Keras's compute_mask(inputs, mask): the output's mask (NULL: none). Optional: without
     * it, supports_masking passes the input's mask on, and otherwise the layer drops it
     * with Keras's warning. */
    tg_tensor *(*compute_mask)(tg_layer *layer, const tg_tensor *x, const tg_tensor *mask);
    bool supports_masking;
    /* Keras's get_config: the layer's own options as the text of a JSON object (such as
     * {"units": 4}), written as snprintf writes (at most size bytes, NUL included), returning
     * the length it needs (negative for an error). Optional: "{}". */
    int (*get_config)(const tg_layer *layer, char *json, size_t size);
    /* Keras's from_config: sets up a new layer's state from get_config's text (a layer
     * rebuilt from a model file); 0 or -1. Optional: the state stays NULL. */
    int (*from_config)(tg_layer *layer, const char *json);
    void (*free_state)(void *state); /* frees the state with the layer; NULL: the caller's */
} tg_layer_class;

typedef struct tg_custom_layer_opts {
    TG__LAYER_FIELDS;
    void *state; /* per-layer state for the callbacks (tg_layer_state); freed by free_state */
} tg_custom_layer_opts;
/* A new layer of `cls` (the class must outlive the layer). */
tg_layer *tg_custom_layer_at(tg_loc loc, const tg_layer_class *cls, tg_custom_layer_opts o);
#define tg_custom_layer(cls, ...) \
    tg_custom_layer_at(TG_LOC, cls, TG__OPTS(tg_custom_layer_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))
/* The state given to tg_custom_layer (or set by from_config); NULL for other layers. */
void *tg_layer_state(const tg_layer *layer);
/* Sets a custom layer's state (from_config does); the state it replaces is the caller's. */
int tg_layer_set_state(tg_layer *layer, void *state);
/* The dtype of the layer's variables and computation (its own, or the model's), once built. */
tg_dtype tg_layer_dtype(const tg_layer *layer);

/* Keras's add_weight: inside build only, a variable "<layer>/<name>" of `shape`, from the
 * initializer (seeded from the layer's seed), registered as the layer's (in creation
 * order: get_weights, checkpoints). The layer owns it. NULL with an error naming the
 * caller's line when called outside the layer's build. */
typedef struct tg_add_weight_opts {
    tg_initializer initializer; /* default glorot_uniform, as Keras's for floats */
    bool trainable;             /* default true */
    tg_regularizer regularizer; /* default none; joins tg_model_regularization_loss */
    tg_constraint constraint;   /* default none; applied by the optimizer after each update */
} tg_add_weight_opts;
tg_tensor *tg_layer_add_weight_at(tg_loc loc, tg_layer *layer, const char *name, tg_shape shape, tg_add_weight_opts o);
#define tg_layer_add_weight(layer, name, shape, ...) \
    tg_layer_add_weight_at(TG_LOC, layer, name, shape, TG__OPTS(tg_add_weight_opts, .trainable = true, __VA_ARGS__))

/* A custom layer's config (get_config's text, "{}" without one), as snprintf writes;
 * negative with an error for another layer. */
int tg_custom_layer_config(const tg_layer *layer, char *json, size_t size);

/* Keras's register_keras_serializable: the class, found by its class_name when a model
 * file is read (tg_find_layer_class, tg_custom_layer_from_config). Registering the same
 * class twice is fine; another class under a taken name is refused. 0 or -1. */
int tg_register_layer_class_at(tg_loc loc, const tg_layer_class *cls);
#define tg_register_layer_class(cls) tg_register_layer_class_at(TG_LOC, cls)
const tg_layer_class *tg_find_layer_class(const char *class_name);
/* A new layer of the registered class named class_name, named `name` (NULL: the default),
 * its state set by the class's from_config(json). */
tg_layer *tg_custom_layer_from_config_at(tg_loc loc, const char *class_name, const char *name, const char *json);
#define tg_custom_layer_from_config(class_name, name, json) \
    tg_custom_layer_from_config_at(TG_LOC, class_name, name, json)

/* ---- Lambda ---------------------------------------------------------------------------------- */
/* Keras's Lambda(function, output_shape=None, mask=None): a layer without weights whose call
 * is fn(x, user) made of ops; output_shape gives one example's output shape (optional:
 * traced on a batch of one otherwise); mask, optional, is Keras's mask function. */
typedef tg_tensor *(*tg_lambda_fn)(const tg_tensor *x, void *user);
typedef struct tg_lambda_opts {
    TG__LAYER_FIELDS;
    int (*output_shape)(tg_shape input_shape, tg_shape *out, void *user);
    tg_tensor *(*mask)(const tg_tensor *x, const tg_tensor *mask, void *user);
    void *user;
} tg_lambda_opts;
tg_layer *tg_lambda_at(tg_loc loc, tg_lambda_fn fn, tg_lambda_opts o);
#define tg_lambda(fn, ...) tg_lambda_at(TG_LOC, fn, TG__OPTS(tg_lambda_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* ---- masks ------------------------------------------------------------------------------------ */
/* Keras's Masking(mask_value=0.0): steps (axis 1) whose features all equal mask_value get a
 * mask of false and are zeroed; the mask flows to the next layers. */
typedef struct tg_masking_opts {
    TG__LAYER_FIELDS;
    double mask_value; /* default 0 */
} tg_masking_opts;
tg_layer *tg_masking_at(tg_loc loc, tg_masking_opts o);
#define tg_masking(...) tg_masking_at(TG_LOC, TG__OPTS(tg_masking_opts, TG__LAYER_DEFAULTS, __VA_ARGS__))

/* Keras's layer.compute_mask(x, mask): the mask the layer gives its output for input x
 * with mask `mask` (NULL: none). NULL for none, or with an error (tg_has_error). */
tg_tensor *tg_layer_compute_mask_at(tg_loc loc, tg_layer *layer, const tg_tensor *x, const tg_tensor *mask);
#define tg_layer_compute_mask(layer, x, mask) tg_layer_compute_mask_at(TG_LOC, layer, x, mask)
/* Keras's y_pred._keras_mask: the mask of y_pred when it is an output of the model's last
 * call (tg_model_call, tg_model_call_list), else NULL. tg_model_compute_loss weighs the
 * loss by it, and the compiled metrics count only its steps, as Keras does. */
tg_tensor *tg_model_output_mask(const tg_model *m, const tg_tensor *y_pred);

/* ---- models used as layers ------------------------------------------------------------------------ */
/* Keras's "a model is a layer": the layer that runs `m` (Sequential or functional, one
 * output), to be added to a Sequential (tg_model_add) or applied in a functional model
 * (tg_layer_apply). It shares m's variables (listed once in the outer model, renamed
 * "<model>/<layer>/<name>" when the outer one is built), follows m's trainable flag
 * (tg_layer_set_trainable on it freezes m), and is one row in the outer summary. The
 * layer owns m from here on: it is freed with the layer's model (tg_model_free(m) alone
 * is refused then). Calling it again on m gives the same layer. */
tg_layer *tg_model_as_layer_at(tg_loc loc, tg_model *m);
#define tg_model_as_layer(m) tg_model_as_layer_at(TG_LOC, m)

TG_END_DECLS
#endif
