/* Internal view of layers: a small vtable per kind, and the state every layer shares.
 *
 * A layer is built once, from the shape of one example (no batch dim): `build` creates
 * the variables through tg__layer_add_variable and says the output shape. `call` is made
 * of public ops only, so a recording tape records it and its gradients come for free. */
#ifndef TG_NN_LAYER_IMPL_H
#define TG_NN_LAYER_IMPL_H

#include "../tensor/tensor_impl.h"
#include "tapegrad/nn.h"
#include "tapegrad/metrics.h"
#include "tapegrad/ops.h"

#define TG_LAYER_MIN_VARS    8 /* the variable arrays' first capacity: a kind may write var_reg[1] unasked */
#define TG_LAYER_MAX_OUTPUTS 3 /* an LSTM's output, h and c (return_state) */

/* Kinds are written with designated initialisers: a hook a kind does not need stays NULL. */
typedef struct tg_layer_kind {
    const char *base_name;  /* "dense": automatic names are dense, dense_1, ... */
    const char *class_name; /* "Dense", as the summary prints it */
    bool autocast;          /* inputs of another dtype are cast to the layer's (Keras autocast) */
    /* Creates the variables for examples of shape `in` and sets *out; false with an error. */
    bool (*build)(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out);
    /* The layer on a batch whose example shape is the built one. */
    tg_tensor *(*call)(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training);
    void (*release)(tg_layer *l); /* kind-specific state (not the variables); may be NULL */
    /* Layers of several inputs (merging): build and call take lists in place of the two
     * above, which stay NULL. */
    bool (*build_n)(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out);
    tg_tensor *(*call_n)(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training);
    /* Under the mixed_bfloat16 policy the call computes in bfloat16: inputs cast to it, and
     * variables read through tg__layer_read. Kinds without it run in float32 there. */
    bool computes_bf16;
    /* Masks (Keras's supports_masking, compute_mask and call(..., mask)): a mask is a bool
     * tensor of the input's first two axes (batch, steps), NULL for none. A kind with
     * `call_mask` takes the incoming mask in its call (it is used in place of `call`, also
     * without a mask). `compute_mask` gives the output's mask from the input and its mask;
     * NULL with supports_masking passes the mask on, NULL without drops it with Keras's
     * warning. The list forms are the same for layers of several inputs. */
    bool supports_masking;
    tg_tensor *(*call_mask)(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training);
    tg_tensor *(*compute_mask)(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask);
    tg_tensor *(*call_mask_n)(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                              bool training);
    tg_tensor *(*compute_mask_n)(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n);
    /* `layer.trainable = value` for kinds whose variables are another object's (a model
     * used as a layer); NULL: the layer's own variables follow. */
    void (*set_trainable)(tg_layer *l, tg_loc loc, bool trainable);
    /* The variables are another object's (a model used as a layer): not freed on unbuild. */
    bool borrows_variables;
    /* Layers of several outputs (a recurrent layer's return_state, attention's scores): the
     * count for the layer's options, and each one's example shape into out[0..count) once
     * built (out may be NULL: the count only); the call filling ys[0..count). Its inputs
     * are checked and cast as call_n's; masks[0..n) are the inputs' masks (NULL entries: none),
     * and the output's mask comes from compute_mask as for call_mask. call and call_n, where
     * set, give ys[0] alone. */
    int (*output_shapes)(const tg_layer *l, tg_shape *out);
    bool (*call_outs)(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                      bool training, tg_tensor **ys);
    /* Saving (Keras's get_config): the kind's own options as the text of a JSON object
     * (malloc'd), written into the layer's config after the options every layer has (name,
     * trainable, dtype, ...); NULL with an error. The built-in kinds leave it NULL: the
     * tables of config.c describe their options. A kind with this hook is rebuilt by the
     * function its class name was registered with (tg__layer_register). */
    char *(*get_config)(const tg_layer *l, tg_loc loc);
} tg_layer_kind;

/* A symbolic tensor of the functional API: one example's shape and what made it. */
typedef struct tg_node tg_node;
struct tg_keras_tensor {
    tg_shape shape; /* one example's, no batch dim */
    tg_dtype dtype;
    tg_node *node; /* the call that made it */
    int index;     /* which of its outputs (Keras's tensor_index) */
};

/* One call of a layer on symbolic tensors (Keras's Node): the layer owns it, and the node
 * owns its output. */
struct tg_node {
    tg_layer *layer;
    int index; /* in layer->nodes: Keras's node_index */
    int n_in;
    const tg_keras_tensor **in;
    tg_keras_tensor outs[TG_LAYER_MAX_OUTPUTS];
    int n_out;
    bool in_model; /* a node of its layer's model (Keras's relevant_nodes) */
    /* scratch of the graph walk in tg_functional */
    int depth, order, slot; /* output k's slot is slot + k */
    bool done, in_progress;
};

struct tg_layer {
    const tg_layer_kind *kind;
    char *name;
    bool auto_named;         /* the name is the default one: a model may renumber it */
    tg_dtype dtype_opt;      /* as given (TG_DTYPE_INHERIT: the model's) */
    tg_dtype dtype;          /* resolved when built */
    uint64_t seed_opt, seed; /* as given (0: derive), and as used */
    tg_shape input_shape;    /* declared example shape; rank -1 when none */
    bool built, trainable;
    tg_activation activation;     /* Dense, Conv2D, Activation; TG_LINEAR for the others */
    tg_shape in_shape, out_shape; /* one example's, once built */
    tg_model *model;              /* owner, or NULL */
    int n_vars, cap_vars;
    tg_tensor **vars;
    bool *var_trainable;           /* made trainable: follows layer.trainable */
    tg_regularizer *var_reg;       /* each variable's penalty ({0}: none) */
    tg_regularizer activity_reg;   /* the penalty of each call's output ({0}: none) */
    tg_rng *rng;                   /* the random layers' generator (Dropout, RandomFlip, ...) */
    void *kept;                    /* kind-specific state that outlives builds, or NULL */
    void (*kept_free)(void *kept); /* frees it with the layer */
    tg_node **nodes;               /* its calls on symbolic tensors */
    int n_nodes, cap_nodes;
    tg_shape *in_shapes; /* layers of several inputs: each one's example shape, once built */
    int n_in;            /* the number of inputs it was built for */
    union {
        tg_dense_opts dense;
        tg_dropout_opts dropout;
        tg_reshape_layer_opts reshape;
        tg_batch_normalization_opts bn;
        tg_layer_normalization_opts ln;
        tg_embedding_opts embedding;
        tg_conv2d_layer_opts conv;
        tg_pooling2d_opts pool;
        tg_conv1d_layer_opts conv1d;
        tg_pooling1d_opts pool1d;
        tg_conv2d_transpose_layer_opts convt;
        tg_separable_conv2d_layer_opts sep;
        tg_up_sampling2d_opts up;
        tg_zero_padding2d_opts zpad;
        tg_cropping2d_opts crop;
        tg_rescaling_opts rescaling;
        tg_random_flip_opts flip;
        tg_random_crop_opts rcrop;
        tg_normalization_opts norm;
        tg_rnn_opts rnn;
        tg_multi_head_attention_opts mha;
        tg_attention_opts attention;
        tg_prelu_layer_opts prelu;
        tg_merge_opts merge;
        tg_dot_opts dot;
        tg_bidirectional_opts bidi;
        tg_time_distributed_opts td;
    } o;
    bool mixed;       /* the mixed_bfloat16 dtype policy: float32 variables, bfloat16 computation */
    bool mask_warned; /* Keras's warning that the layer drops a mask, given once */
};

/* ---- dtype policies (dtype_policy.c) ---------------------------------------------------------- */
typedef enum tg__policy { TG__POLICY_FLOAT32, TG__POLICY_FLOAT64, TG__POLICY_MIXED_BF16 } tg__policy;
/* The policy of that name, or false with an error naming the valid ones. */
bool tg__policy_parse(tg_loc loc, const char *func, const char *name, tg__policy *out);
const char *tg__policy_name(tg__policy p);
tg__policy tg__global_policy(void);
/* What the layer computes in: bfloat16 for a mixed layer whose kind can, else its dtype. */
tg_dtype tg__layer_compute_dtype(const tg_layer *l);
/* A model output of bfloat16 cast to float32 (recorded); any other returned as it is. */
tg_tensor *tg__model_output_f32(tg_loc loc, tg_tensor *y);
/* Variable i as the call uses it: cast (and recorded) to bfloat16 under mixed_bfloat16. */
tg_tensor *tg__layer_read(tg_layer *l, tg_loc loc, int i);

/* A new, unbuilt layer of `kind` with the common options; NULL with an error. */
tg_layer *tg__layer_new(tg_loc loc, const tg_layer_kind *kind, const char *name, tg_dtype dtype, uint64_t seed,
                        tg_shape input_shape);
/* The same with the `.dtype_policy` option (NULL: `dtype` if given, else the global policy). */
tg_layer *tg__layer_new_p(tg_loc loc, const tg_layer_kind *kind, const char *name, tg_dtype dtype, uint64_t seed,
                          tg_shape input_shape, const char *dtype_policy);
#define TG__LAYER_NEW(loc, kind, o) \
    tg__layer_new_p(loc, kind, (o).name, (o).dtype, (o).seed, (o).input_shape, (o).dtype_policy)
/* Room for n variables in the layer's arrays (at least TG_LAYER_MIN_VARS); false when out
 * of memory. */
bool tg__layer_reserve_vars(tg_layer *l, int n);
/* Creates "<layer name>/<name>" from `init` and appends it to the layer's variables. */
tg_tensor *tg__layer_add_variable(tg_layer *l, tg_loc loc, const char *name, tg_initializer init, tg_shape shape,
                                  bool trainable);
/* Builds for examples of `in`: resolves dtype and seed (from the model's when 0), then
 * the kind's build. On failure the layer is left unbuilt with no variables. */
bool tg__layer_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_dtype model_dtype, uint64_t seed);
/* Checks x against the built example shape, autocasts, calls the kind. */
tg_tensor *tg__layer_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training);
/* The same for a layer of `n` inputs (a merge layer, or any layer with n == 1). */
bool tg__layer_build_n(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_dtype model_dtype, uint64_t seed);
tg_tensor *tg__layer_call_n(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training);
/* The calls with masks (Keras's __call__): masks[i] is input i's (NULL: none). Every output
 * goes to ys[0..tg__layer_output_shapes(l, NULL)) and the first output's mask to *out_mask
 * (NULL: none). A mask is checked against its input (bool, the input's batch and steps) and
 * refused naming the layer and both shapes. */
bool tg__layer_call_masked(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                           bool training, tg_tensor **ys, tg_tensor **out_mask);
/* A mask given for x: bool (another dtype is cast, as Keras casts), of x's first two axes. */
bool tg__check_mask(tg_loc loc, const tg_layer *l, int i, const tg_tensor *x, const tg_tensor *mask,
                    const tg_tensor **out);
/* Every output of the layer into ys[0..tg__layer_output_shapes(l, NULL)). */
bool tg__layer_call_outs(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training, tg_tensor **ys);
/* The number of outputs and, with out and a built layer, their example shapes. */
int tg__layer_output_shapes(const tg_layer *l, tg_shape *out);
/* Frees the variables and kind state of a built layer: it is unbuilt again. */
void tg__layer_unbuild(tg_layer *l);
int tg__layer_rename(tg_layer *l, const char *name);
/* The layer's weights in Keras's order (made trainable first, then the others, each in
 * creation order) into out[0..n_vars); returns n_vars. */
int tg__layer_weights(const tg_layer *l, tg_tensor **out);
/* get_weights / set_weights over a list of variables: copies into out, or the checked
 * assignment of every value (count, then each shape and dtype, before any is assigned). */
int tg__weights_get(tg_loc loc, const char *func, tg_tensor *const *vars, int n_vars, tg_tensor **out, int n);
int tg__weights_set(tg_loc loc, const char *func, const char *owner, tg_tensor *const *vars, int n_vars,
                    const tg_tensor *const *weights, int n);
void tg__layer_destroy(tg_layer *l);

/* State that layers above nn (train/: compile's optimizer, loss and metrics) attach to a
 * model; the model frees it with `free_fn` when it is freed or the state is replaced. */
void tg__model_attach(tg_model *m, void *state, void (*free_fn)(void *));
void *tg__model_attachment(const tg_model *m);
/* Where fit left off: the epoch and step of the next batch and the shuffle seed. train/
 * writes it after each step and reads it for checkpoints; nn only keeps it, so it outlives
 * a new compile. NULL for NULL or a freed model. */
typedef struct tg__fit_position {
    bool set; /* false until the model trains or loads a position */
    int epoch;
    int64_t step;
    uint64_t seed;
    bool resume; /* set at train begin by a callback that loaded it (BackupAndRestore): fit starts there */
} tg__fit_position;
tg__fit_position *tg__model_fit_position(const tg_model *m);
/* Checks a user's model handle: non-NULL and not freed. False with an error. */
bool tg__model_check(tg_loc loc, const char *func, const tg_model *m);

/* ---- models ---------------------------------------------------------------------------- */
/* One step of a functional model's forward pass: a layer on slots, into a slot. */
typedef struct tg__graph_step {
    tg_layer *layer;
    int n_in;
    int *in; /* slots */
    int out;
} tg__graph_step;

struct tg_model {
    uint32_t magic; /* MODEL_DEAD once freed (the struct is retired, never reused) */
    char *name;
    uint64_t seed;
    tg_dtype dtype;
    bool built, trainable;
    tg_shape in_shape; /* one example's, once built (a functional model: its first input's) */
    tg_layer **layers; /* a functional model: Keras's order, by depth from the inputs */
    int n_layers, cap_layers;
    tg_tensor **call_losses; /* the activity penalties of the last call, and their headers' gens */
    uint32_t *call_loss_gens;
    int n_call_losses, cap_call_losses;
    tg_tensor **lists[3]; /* all, trainable, non-trainable: rebuilt on each request */
    int cap_vars;
    void *train_state; /* train/'s, freed by train_free */
    void (*train_free)(void *);
    tg__fit_position position; /* train/'s: where fit left off */
    /* functional models (tg_functional); a Sequential has functional false */
    bool functional;
    int n_inputs, n_outputs;
    tg_layer **input_layers;  /* the InputLayer of each input */
    tg_layer **output_layers; /* the layer that makes each output */
    int *input_slots, *output_slots;
    tg__graph_step *steps; /* in the order they run */
    int n_steps, n_slots;
    /* Keras's _keras_mask of the last call's outputs: each output header (and its gen) with
     * its mask (NULL: none), for the loss and metrics to weigh by. */
    tg_tensor **out_masks, **out_tensors;
    uint32_t *out_gens;
    int n_out_masks;
    tg_layer *as_layer; /* the layer made of this model by tg_model_as_layer, or NULL */
};

/* Frees what a model holds, not the struct (model.c). */
/* L1L2.__call__ on w: l1 * sum(|w|) + l2 * sum(w^2); NULL when r is none. */
tg_tensor *tg__regularizer_penalty(tg_loc loc, const tg_tensor *w, tg_regularizer r);
/* Keras's add_loss during a call: keeps `loss` among the model's losses of its last call;
 * and the start of a call, which clears them. */
bool tg__model_add_call_loss(tg_model *m, tg_loc loc, tg_tensor *loss);
void tg__model_clear_call_losses(tg_model *m);
void tg__model_destroy(tg_model *m);
/* A functional model's forward pass: one tensor per input, into one per output; masks
 * (NULL, or one per input, each NULL or a mask) flow along, the outputs' into y_masks
 * (NULL: not wanted). */
bool tg__functional_call(tg_model *m, tg_loc loc, const tg_tensor *const *xs, tg_tensor **ys, bool training);
bool tg__functional_call_masked(tg_model *m, tg_loc loc, const tg_tensor *const *xs, const tg_tensor *const *masks,
                                tg_tensor **ys, tg_tensor **y_masks, bool training);
/* Any model's forward pass with masks (Sequential: the layers in turn). */
bool tg__model_forward(tg_model *m, tg_loc loc, const tg_tensor *const *xs, const tg_tensor *const *masks,
                       tg_tensor **ys, tg_tensor **y_masks, bool training);
/* tg_model_free of a model used as a layer (model_layer.c): refused (false) while another
 * model owns the layer, else the layer is freed first. */
bool tg__model_free_as_layer(tg_loc loc, tg_model *m);
/* Keeps the outputs' masks of a call for tg_model_output_mask (false when out of memory). */
bool tg__model_keep_masks(tg_model *m, tg_loc loc, tg_tensor *const *ys, tg_tensor *const *masks, int n);
/* The mask of y_pred when it is an output of the model's last call, else NULL. */
tg_tensor *tg__model_output_mask(const tg_model *m, const tg_tensor *y_pred);
/* The number of inputs and outputs (1 and 1 for a Sequential), the layer that makes
 * output i, and one example's shape of input i. */
int tg__model_n_inputs(const tg_model *m);
int tg__model_n_outputs(const tg_model *m);
tg_layer *tg__model_output_layer(const tg_model *m, int i);
tg_shape tg__model_input_shape(const tg_model *m, int i);

/* A metric's running state (total and count; result = total / count), which a
 * distributed fit sums over the ranks. */
void tg__metric_state(const tg_metric *m, double *total, double *count);
/* The confusion metrics' counts (*n of them; NULL and 0 for the others, or before an
 * F1Score without num_classes has seen a batch), which a distributed fit also sums. */
double *tg__metric_counts(const tg_metric *m, int64_t *n);

/* The recurrent layers (recurrent.c): whether l is one, and a new unbuilt copy of its
 * options with go_backwards flipped, named `name` and seeded with `seed`. */
bool tg__is_recurrent(const tg_layer *l);
tg_layer *tg__rnn_reversed_copy(tg_loc loc, const tg_layer *l, const char *name, uint64_t seed);

/* ---- architectures (config.c): Keras's get_config and from_config ------------------------ */
/* Rebuilds a layer of a registered class from its config (the JSON text of its "config"
 * object: name, trainable, dtype, then the options its get_config wrote); NULL with an
 * error. The loader renames the layer to the config's name. */
typedef tg_layer *(*tg__layer_from_config_fn)(tg_loc loc, const char *config_json, void *user);
/* Registers (or replaces) the function that rebuilds layers of `class_name` when a model
 * file is loaded; built-in class names are refused. Returns 0 or -1. */
int tg__layer_register(tg_loc loc, const char *class_name, tg__layer_from_config_fn fn, void *user);
/* The class name of built-in class i that loading rebuilds (i from 0), NULL past the last. */
const char *tg__builtin_layer_class(int i);
/* The model's architecture as Keras's model.to_json(): {"class_name": "Sequential" or
 * "Functional", "config": {...}, "build_config": {...}}; malloc'd, or NULL with an error
 * (a layer that cannot be saved). */
char *tg__model_config_json(tg_loc loc, const tg_model *m);
/* The model that such JSON (len bytes) describes, its layers unbuilt until it is built
 * (a Sequential with a build_config and every functional model are built). `what` starts
 * every message ("tg_model_load_file: 'm.safetensors'"). NULL with an error naming the
 * layer and the option. */
tg_model *tg__model_from_config(tg_loc loc, const char *what, const char *json, size_t len);
/* 0 when the architecture in `file_json` is m's, else -1 with an error naming the first
 * difference (the layer, the option, both values). Names of models, trainable flags and
 * seeds are not compared. */
int tg__model_config_compare(tg_loc loc, const char *what, const tg_model *m, const char *file_json, size_t len);
/* The model a model-as-layer runs (model_layer.c), NULL for any other layer. */
tg_model *tg__layer_inner_model(const tg_layer *l);
/* A wrapper's wrapped layer (Bidirectional: the forward one) and its name under the
 * wrapper ("forward_lstm", "dense") (wrappers.c). */
const tg_layer *tg__wrapped_layer(const tg_layer *l, const char **base);

/* A seed for item `k` of something seeded with `seed` (splitmix64 of both). */
uint64_t tg__derive_seed(uint64_t seed, uint64_t k);
/* The activation, or x itself for TG_LINEAR. */
tg_tensor *tg__activate(tg_loc loc, const tg_tensor *x, tg_activation a);
/* act(y + bias) (bias NULL: act(y)), fused into one op where it can be (Dense, Conv2D). */
tg_tensor *tg__bias_activate(tg_loc loc, const tg_tensor *y, const tg_tensor *bias, tg_activation a);
bool tg__check_activation(tg_loc loc, const char *func, tg_activation a);
/* Normalises a layer's axis for inputs of `rank` (batch included); axis 0 (the batch) is
 * refused. Returns the axis or -1 with an error. */
int tg__layer_axis(tg_loc loc, const tg_layer *l, int axis, int rank);
/* x times a mask of zeros (probability rate, drawn from rng) and 1 / (1 - rate), as TF's
 * dropout (Dropout, and attention's dropout of its probabilities). */
tg_tensor *tg__dropout(tg_loc loc, tg_rng *rng, const tg_tensor *x, double rate, const char *layer);
/* "(None, 3, 4)" for an example shape. */
const char *tg__batch_shape_str(const tg_shape *example, char *buf, size_t size);

#endif
