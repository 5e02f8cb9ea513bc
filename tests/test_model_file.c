/* Whole-model files: every built-in layer rebuilt by tg_model_load_file to the same
 * predictions, bit for bit (Sequential and functional models, merges, shared layers,
 * wrappers); training resumed from a file equal to training without a stop; the files of
 * the command and the library from before architectures were stored; the refusals. */
#include <tapegrad/layer.h>

#include "check.h"
#include "nn/layer_impl.h" /* the registry of layer classes, and a kind of the test's own */
#include "tmpfiles.h"

/* Every class name the configs of the round-trip cases wrote (wrapped layers' too). */
static char seen[4096] = " ";

static void note_classes(const char *config_json)
{
    for (const char *p = config_json; (p = strstr(p, "\"class_name\":\"")); p++) {
        char name[64];
        if (sscanf(p + 14, "%63[^\"]", name) == 1 && strlen(seen) + strlen(name) + 2 < sizeof seen) {
            char word[70];
            snprintf(word, sizeof word, " %s ", name);
            if (!strstr(seen, word))
                strcat(strcat(seen, name), " ");
        }
    }
}

/* ---- the models, one per row ------------------------------------------------------------------ */
typedef struct model_case {
    const char *name;
    tg_model *(*make)(void);
    tg_shape in[2]; /* one example of each input */
    int n_in;
    bool int_input; /* Embedding's indices */
} model_case;

static tg_model *dense_stack_for(int64_t in)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 3, .name = "dense_stack"),
        tg_dense(.units = 5, .activation = TG_RELU, .input_dim = in, .kernel_regularizer = tg_l2(0.01),
                 .kernel_constraint = tg_max_norm(.max_value = 3), .bias_initializer = tg_init_constant(0.1)),
        tg_dropout(.rate = 0.25),
        tg_dense(.units = 3, .activation = TG_GELU, .use_bias = false,
                 .kernel_initializer = tg_init_random_normal(0, 0.3)),
        tg_activation_layer(.activation = TG_SOFTPLUS), tg_dense(.units = 2, .name = "head"));
}

static tg_model *dense_stack(void) { return dense_stack_for(4); }

/* Without Dropout, whose generator a file does not keep. */
static tg_model *mlp(void)
{
    return tg_sequential_with(tg_sequential_options(.seed = 12),
                              tg_dense(.units = 6, .activation = TG_TANH, .input_dim = 4), tg_batch_normalization(),
                              tg_dense(.units = 2, .kernel_regularizer = tg_l1_l2(0.01, 0.02)));
}

/* float64, one layer frozen. */
static tg_model *float64_frozen(void)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 13, .dtype = TG_F64),
                                     tg_dense(.units = 4, .activation = TG_ELU, .input_dim = 3),
                                     tg_dense(.units = 2, .dtype = TG_F64, .seed = 77));
    if (m && tg_layer_set_trainable(tg_model_layer(m, 0), false) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* Models used as layers: a Sequential inside a Sequential, and inside a functional model. */
static tg_model *nested(void)
{
    tg_model *inner =
        tg_sequential_with(tg_sequential_options(.name = "encoder", .seed = 2),
                           tg_dense(.units = 3, .activation = TG_RELU, .input_dim = 4), tg_dense(.units = 2));
    return tg_sequential_with(tg_sequential_options(.seed = 16, .name = "outer"), tg_model_as_layer(inner),
                              tg_dense(.units = 1));
}

static tg_model *nested_functional(void)
{
    tg_model *inner = tg_sequential_with(tg_sequential_options(.name = "block", .seed = 3),
                                         tg_dense(.units = 3, .activation = TG_TANH, .input_dim = 4));
    tg_keras_tensor *a = tg_input(TG_SHAPE(4), .name = "x");
    tg_keras_tensor *h = tg_layer_apply(tg_model_as_layer(inner), a);
    tg_keras_tensor *y = tg_layer_apply(tg_concatenate(), h, a);
    return tg_functional(TG_KERAS_TENSORS(a), TG_KERAS_TENSORS(tg_layer_apply(tg_dense(.units = 2), y)), .seed = 17);
}

/* Keras's mixed_bfloat16 policy on some layers. */
static tg_model *mixed(void)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 15),
        tg_dense(.units = 4, .activation = TG_RELU, .input_dim = 3, .dtype_policy = "mixed_bfloat16"),
        tg_dense(.units = 2));
}

/* Masks: Embedding's mask_zero, and Masking, flowing into recurrent layers. */
static tg_model *masked(void)
{
    return tg_sequential_with(tg_sequential_options(.seed = 14),
                              tg_embedding(.input_dim = 10, .output_dim = 3, .mask_zero = true, .input_length = 5),
                              tg_lstm(.units = 3, .return_sequences = true), tg_masking(.mask_value = 0.25),
                              tg_gru(.units = 2), tg_dense(.units = 1));
}

static tg_model *normalizing(void)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 4), tg_reshape_layer(.target_shape = TG_SHAPE(6), .input_shape = TG_SHAPE(2, 3)),
        tg_batch_normalization(.momentum = 0.9), tg_prelu_layer(), tg_layer_normalization(.epsilon = 1e-4),
        tg_dense(.units = 4), tg_reshape_layer(.target_shape = TG_SHAPE(2, -1)), tg_flatten(), tg_dense(.units = 1));
}

static tg_model *embedding(void)
{
    return tg_sequential_with(tg_sequential_options(.seed = 5),
                              tg_embedding(.input_dim = 10, .output_dim = 4, .input_length = 5),
                              tg_global_average_pooling1d(), tg_dense(.units = 2));
}

static tg_model *images(void)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 6), tg_rescaling(.scale = 0.5, .offset = 0.1, .input_shape = TG_SHAPE(8, 8, 2)),
        tg_random_flip(.mode = TG_FLIP_HORIZONTAL),
        tg_conv2d_layer(.filters = 3, .kernel_size = {3}, .padding = TG_PADDING_SAME, .activation = TG_RELU,
                        .bias_regularizer = tg_l1(0.01)),
        tg_max_pooling2d(.pool_size = {2}), tg_zero_padding2d(.padding = {{1, 0}, {0, 1}}),
        tg_average_pooling2d(.pool_size = {2, 1}, .strides = {1, 1}), tg_cropping2d(.cropping = {{0, 1}, {1, 0}}),
        tg_up_sampling2d(.size = {2}, .interpolation = TG_RESIZE_BILINEAR), tg_random_crop(.height = 4, .width = 4),
        tg_global_average_pooling2d(), tg_dense(.units = 2));
}

static tg_model *more_convs(void)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 7),
        tg_conv2d_transpose_layer(.filters = 2, .kernel_size = {2}, .strides = {2}, .input_shape = TG_SHAPE(4, 4, 2)),
        tg_depthwise_conv2d_layer(.kernel_size = {3}, .depth_multiplier = 2, .activation = TG_TANH),
        tg_separable_conv2d_layer(.filters = 3, .kernel_size = {2}, .dilation_rate = {2, 2}), tg_global_max_pooling2d(),
        tg_dense(.units = 2));
}

static tg_model *sequences(void)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 8),
        tg_conv1d_layer(.filters = 4, .kernel_size = 3, .padding = TG_PADDING_SAME, .input_shape = TG_SHAPE(10, 3)),
        tg_max_pooling1d(.pool_size = 2), tg_average_pooling1d(.pool_size = 2, .strides = 1),
        tg_simple_rnn(.units = 3, .return_sequences = true), tg_lstm(.units = 4, .return_sequences = true),
        tg_gru(.units = 3, .return_sequences = true, .go_backwards = true), tg_global_max_pooling1d(),
        tg_dense(.units = 2));
}

static tg_model *wrappers(void)
{
    return tg_sequential_with(
        tg_sequential_options(.seed = 9), tg_normalization(.input_shape = TG_SHAPE(6, 3)),
        tg_bidirectional(tg_lstm(.units = 3, .return_sequences = true), .merge_mode = TG_MERGE_SUM),
        tg_time_distributed(tg_dense(.units = 2, .activation = TG_SIGMOID)),
        tg_bidirectional(tg_gru(.units = 2, .name = "last")), tg_dense(.units = 1));
}

static tg_model *merges(void)
{
    tg_keras_tensor *a = tg_input(TG_SHAPE(4), .name = "a"), *b = tg_input(TG_SHAPE(4), .name = "b");
    tg_layer *shared = tg_dense(.units = 4, .activation = TG_TANH, .name = "shared");
    tg_keras_tensor *ha = tg_layer_apply(shared, a), *hb = tg_layer_apply(shared, b);
    tg_keras_tensor *sum = tg_layer_apply(tg_add_layer(), ha, hb), *diff = tg_layer_apply(tg_subtract_layer(), ha, hb);
    tg_keras_tensor *prod = tg_layer_apply(tg_multiply_layer(), sum, diff);
    tg_keras_tensor *avg = tg_layer_apply(tg_average_layer(), ha, hb, prod);
    tg_keras_tensor *hi = tg_layer_apply(tg_maximum_layer(), avg, ha),
                    *lo = tg_layer_apply(tg_minimum_layer(), avg, hb);
    tg_keras_tensor *cat = tg_layer_apply(tg_concatenate(.axis = -1), hi, lo);
    tg_keras_tensor *dot = tg_layer_apply(tg_dot_layer(.axes = {1}, .normalize = true), hi, lo);
    tg_keras_tensor *y1 = tg_layer_apply(tg_dense(.units = 2, .name = "out1"), cat);
    tg_keras_tensor *y2 =
        tg_layer_apply(tg_dense(.units = 1, .name = "out2"), tg_layer_apply(tg_concatenate(), dot, sum));
    return tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(y1, y2), .name = "merges", .seed = 10);
}

static tg_model *attention(void)
{
    tg_keras_tensor *q = tg_input(TG_SHAPE(5, 4), .name = "query"), *v = tg_input(TG_SHAPE(3, 4), .name = "value");
    tg_keras_tensor *h =
        tg_layer_apply(tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .use_causal_mask = false), q, v);
    tg_keras_tensor *y = tg_layer_apply(tg_global_average_pooling1d(), h);
    return tg_functional(TG_KERAS_TENSORS(q, v), TG_KERAS_TENSORS(y), .seed = 11);
}

/* Layers of several outputs: an encoder's states start the decoder (return_state and
 * initial states), Attention's scores are a second output, MultiHeadAttention with its
 * rank-general options. */
static tg_model *states_and_scores(void)
{
    tg_keras_tensor *x = tg_input(TG_SHAPE(5, 4), .name = "x"), *c = tg_input(TG_SHAPE(3, 4), .name = "context");
    tg_keras_tensor *enc[3] = {0}, *att[2] = {0};
    if (tg_layer_apply_outputs(tg_lstm(.units = 4, .return_sequences = true, .return_state = true), enc, 3, c) != 0)
        return NULL;
    tg_keras_tensor *dec = tg_layer_apply(tg_lstm(.units = 4, .return_sequences = true), x, enc[1], enc[2]);
    tg_layer *dot =
        tg_attention_layer(.use_scale = true, .score_mode = TG_SCORE_CONCAT, .return_attention_scores = true);
    if (tg_layer_apply_outputs(dot, att, 2, dec, enc[0]) != 0)
        return NULL;
    tg_keras_tensor *add = tg_layer_apply(tg_additive_attention(.dropout = 0.2), dec, enc[0]);
    tg_keras_tensor *mha =
        tg_layer_apply(tg_multi_head_attention(.num_heads = 2, .key_dim = 2, .value_dim = 3, .dropout = 0.1,
                                               .output_shape = TG_SHAPE(6), .attention_axes = TG_AXES(1)),
                       att[0], add);
    tg_keras_tensor *y1 = tg_layer_apply(tg_global_average_pooling1d(), mha);
    tg_keras_tensor *y2 = tg_layer_apply(tg_dense(.units = 1), tg_layer_apply(tg_flatten(), att[1]));
    return tg_functional(TG_KERAS_TENSORS(x, c), TG_KERAS_TENSORS(y1, y2), .seed = 12);
}

/* A batch of 6 examples of `in`, random (integers below 10 for indices). */
static tg_tensor *batch(tg_rng *rng, tg_shape in, bool ints)
{
    tg_shape s = {.rank = in.rank + 1, .dims = {6}};
    memcpy(s.dims + 1, in.dims, sizeof(int64_t) * (size_t)in.rank);
    tg_tensor *x = tg_random_uniform(rng, TG_F32, s, .minval = ints ? 0 : -1, .maxval = ints ? 9.99 : 1);
    return ints ? tg_cast(tg_floor(x), TG_I32) : x;
}

static bool same_bits(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b || tg_size(a) != tg_size(b) || tg_dtype_of(a) != tg_dtype_of(b))
        return false;
    size_t n = (size_t)tg_size(a) * tg_dtype_size(tg_dtype_of(a));
    void *x = malloc(n ? n : 1), *y = malloc(n ? n : 1);
    bool same = x && y && tg_copy_out(a, x, n) == 0 && tg_copy_out(b, y, n) == 0 && memcmp(x, y, n) == 0;
    free(x);
    free(y);
    return same;
}

static int predict_all(tg_model *m, tg_tensor **xs, int n_in, tg_tensor **ys)
{
    int n_out = tg_model_n_outputs(m);
    tg_tensor *one = tg_predict(m, NULL, .inputs = (const tg_tensor *const *)xs, .n_inputs = n_in,
                                .outputs = n_out > 1 ? ys : NULL, .n_outputs = n_out > 1 ? n_out : 0);
    if (n_out == 1)
        ys[0] = one;
    return one ? n_out : -1;
}

/* Each model: compiled, trained one step (so the optimizer has state), saved, rebuilt by
 * tg_model_load_file: the same predictions, the same compile, the same architecture. */
static void test_every_layer_round_trips(void)
{
    const model_case cases[] = {
        {"dense", dense_stack, {TG_SHAPE(4)}, 1, false},
        {"float64_frozen", float64_frozen, {TG_SHAPE(3)}, 1, false},
        {"normalizing", normalizing, {TG_SHAPE(2, 3)}, 1, false},
        {"embedding", embedding, {TG_SHAPE(5)}, 1, true},
        {"masked", masked, {TG_SHAPE(5)}, 1, true},
        {"mixed", mixed, {TG_SHAPE(3)}, 1, false},
        {"nested", nested, {TG_SHAPE(4)}, 1, false},
        {"nested_functional", nested_functional, {TG_SHAPE(4)}, 1, false},
        {"images", images, {TG_SHAPE(8, 8, 2)}, 1, false},
        {"more_convs", more_convs, {TG_SHAPE(4, 4, 2)}, 1, false},
        {"sequences", sequences, {TG_SHAPE(10, 3)}, 1, false},
        {"wrappers", wrappers, {TG_SHAPE(6, 3)}, 1, false},
        {"merges", merges, {TG_SHAPE(4), TG_SHAPE(4)}, 2, false},
        {"attention", attention, {TG_SHAPE(5, 4), TG_SHAPE(3, 4)}, 2, false},
        {"states_and_scores", states_and_scores, {TG_SHAPE(5, 4), TG_SHAPE(3, 4)}, 2, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const model_case *mc = &cases[c];
        printf("  %s\n", mc->name);
        tg_scope *s = tg_scope_begin();
        tg_rng *rng = tg_rng_new(100 + c);
        tg_model *m = mc->make();
        REQUIRE(m);
        tg_tensor *xs[2], *ys[2], *ys2[2];
        for (int i = 0; i < mc->n_in; i++)
            xs[i] = batch(rng, mc->in[i], mc->int_input);
        if (!strcmp(mc->name, "wrappers"))
            CHECK(tg_normalization_adapt(tg_model_layer(m, 0), xs[0]) == 0);
        int n_out = predict_all(m, xs, mc->n_in, ys);
        REQUIRE(n_out > 0);
        tg_loss losses[2] = {{.kind = TG_LOSS_MSE}, {.kind = TG_LOSS_HUBER, .delta = 0.5}};
        REQUIRE(
            tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01, .clipnorm = 1.0), .losses = losses,
                       .n_losses = n_out, .loss_weights = (double[]){1.0, 0.5}, .n_loss_weights = n_out,
                       .output_metrics = (tg_metric_list[]){TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR), TG_METRICS()},
                       .n_output_metrics = n_out) == 0);
        const tg_tensor *targets[2] = {tg_zeros_like(ys[0]), n_out > 1 ? tg_zeros_like(ys[1]) : NULL};
        tg_history *h = tg_fit(m, NULL, NULL, .inputs = (const tg_tensor *const *)xs, .n_inputs = mc->n_in,
                               .targets = targets, .n_targets = n_out, .batch_size = 6, .verbose = TG_VERBOSE_SILENT);
        REQUIRE(h);
        tg_history_free(h);
        REQUIRE(predict_all(m, xs, mc->n_in, ys) == n_out);
        REQUIRE(tg_model_save(m, at("m.safetensors"), NULL) == 0);
        tg_model *back = tg_model_load_file(at("m.safetensors"));
        REQUIRE(back);
        CHECK(predict_all(back, xs, mc->n_in, ys2) == n_out);
        for (int i = 0; i < n_out; i++)
            CHECK(same_bits(ys[i], ys2[i]));
        CHECK(tg_model_n_layers(back) == tg_model_n_layers(m));
        int nt_a = 0, nt_b = 0;
        CHECK(tg_model_trainable_variables(m, &nt_a) && tg_model_trainable_variables(back, &nt_b) && nt_a == nt_b);
        CHECK(!strcmp(tg_model_name(back), tg_model_name(m)));
        CHECK(tg_model_optimizer(back) && tg_optimizer_iterations(tg_model_optimizer(back)) == 1);
        for (int i = 0; i < tg_model_n_layers(m); i++) { /* Keras's get_config, layer by layer */
            char *a = tg_layer_get_config(tg_model_layer(m, i)), *b = tg_layer_get_config(tg_model_layer(back, i));
            CHECK(a && b && !strcmp(a, b));
            free(a);
            free(b);
        }
        tg_safetensors *st = tg_safetensors_open(at("m.safetensors"));
        const char *arch = st ? tg_safetensors_metadata(st, "tapegrad_model") : NULL;
        CHECK(arch != NULL);
        if (arch)
            note_classes(arch);
        tg_safetensors_close(st);
        /* and loading the file into the first model again: the same architecture */
        CHECK(tg_model_load(m, at("m.safetensors")) == 0);
        tg_model_free(back);
        tg_model_free(m);
        tg_rng_free(rng);
        tg_scope_end(s);
    }
}

/* The cases above cover every class loading knows (a new layer needs a case). */
static void test_every_class_covered(void)
{
    for (int i = 0; tg__builtin_layer_class(i); i++) {
        char word[70];
        snprintf(word, sizeof word, " %s ", tg__builtin_layer_class(i));
        if (!strstr(seen, word))
            printf("  no round-trip case has a %s layer\n", tg__builtin_layer_class(i));
        CHECK(strstr(seen, word));
    }
    CHECK(strstr(seen, " InputLayer ") && strstr(seen, " Adam "));
}

/* ---- a layer class of the test's own, saved by its get_config hook and rebuilt by the
 * function registered for its class name ---------------------------------------------------- */
static bool scale_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    (void)l, (void)loc;
    *out = *in;
    return true;
}

static tg_tensor *scale_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_mul_at(loc, x, tg_scalar_like_at(loc, x, *(double *)l->kept));
}

static char *scale_config(const tg_layer *l, tg_loc loc)
{
    (void)loc;
    char *c = malloc(64);
    if (c)
        snprintf(c, 64, "{\"factor\": %.17g}", *(double *)l->kept);
    return c;
}

static const tg_layer_kind scale_kind = {
    .base_name = "scale", .class_name = "Scale", .build = scale_build, .call = scale_call, .get_config = scale_config};

static tg_layer *scale_layer(tg_loc loc, double factor, const char *name)
{
    tg_layer *l = tg__layer_new(loc, &scale_kind, name, TG_DTYPE_INHERIT, 0, (tg_shape){0});
    double *f = l ? malloc(sizeof *f) : NULL;
    if (!f) {
        tg_layer_free(l);
        return NULL;
    }
    *f = factor;
    l->kept = f;
    l->kept_free = free;
    return l;
}

static int scale_calls;
static tg_layer *scale_from_config(tg_loc loc, const char *config, void *user)
{
    scale_calls += user == &scale_calls;
    const char *f = strstr(config, "\"factor\":");
    return f ? scale_layer(loc, strtod(f + 9, NULL), NULL) : NULL;
}

static void test_registered_class(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m =
        tg_sequential(tg_dense(.units = 3, .input_dim = 2), scale_layer(TG_LOC, 2.5, "times"), tg_dense(.units = 1));
    REQUIRE(m);
    char *c = tg_layer_get_config(tg_model_layer(m, 1));
    CHECK(c && !strcmp(c, "{\"name\":\"times\",\"trainable\":true,\"dtype\":\"float32\",\"factor\": 2.5}"));
    free(c);
    REQUIRE(tg_model_save(m, at("custom.safetensors"), NULL) == 0);
    EXPECT_ERROR(tg_model_load_file(at("custom.safetensors")) == NULL,
                 "layer 1 (\"times\", Scale): names the layer class \"Scale\", which tapegrad does not know");
    EXPECT_ERROR(tg__layer_register(TG_LOC, "Dense", scale_from_config, NULL) != 0,
                 "\"Dense\" is a built-in layer's class name");
    REQUIRE(tg__layer_register(TG_LOC, "Scale", scale_from_config, &scale_calls) == 0);
    tg_model *back = tg_model_load_file(at("custom.safetensors"));
    REQUIRE(back);
    CHECK(scale_calls == 1);
    CHECK(!strcmp(tg_layer_name(tg_model_layer(back, 1)), "times"));
    tg_tensor *x = tg_tensor_from(TG_F32, TG_SHAPE(2, 2), ((float[]){1, 2, -3, 0.5f}));
    CHECK(same_bits(tg_predict(m, x), tg_predict(back, x)));
    tg_model_free(back);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A layer that cannot say its options (a kind without get_config) and an option JSON has
 * no number for: the file keeps the weights, with a warning, and loads into the model. */
static const tg_layer_kind opaque_kind = {
    .base_name = "opaque", .class_name = "Opaque", .build = scale_build, .call = scale_call};

static char warned[1024];
static void keep_warning(const char *message, void *user)
{
    (void)user;
    snprintf(warned, sizeof warned, "%s", message);
}

static void test_weights_kept_without_architecture(void)
{
    tg_scope *s = tg_scope_begin();
    tg_set_warning_handler(keep_warning, NULL);
    tg_layer *opaque = tg__layer_new(TG_LOC, &opaque_kind, NULL, TG_DTYPE_INHERIT, 0, (tg_shape){0});
    double *f = opaque ? malloc(sizeof *f) : NULL;
    REQUIRE(f);
    *f = 3.0;
    opaque->kept = f;
    opaque->kept_free = free;
    tg_model *m = tg_sequential(tg_dense(.units = 2, .input_dim = 2), opaque);
    REQUIRE(m && tg_model_save(m, at("opaque.safetensors"), NULL) == 0);
    CHECK(strstr(warned, "tg_model_save: the file keeps the weights but not the architecture") &&
          strstr(warned, "layer \"opaque\" (Opaque) cannot be saved"));
    EXPECT_ERROR(tg_model_load_file(at("opaque.safetensors")) == NULL,
                 "holds weights but not the model's architecture");
    CHECK(tg_model_load(m, at("opaque.safetensors")) == 0);
    *warned = 0;
    tg_model *nan_scale =
        tg_sequential(tg_dense(.units = 1, .input_dim = 2, .kernel_initializer = tg_init_constant(NAN)));
    REQUIRE(nan_scale && tg_model_save(nan_scale, at("nan.safetensors"), NULL) == 0);
    CHECK(strstr(warned, "the file keeps the weights but not the architecture: it is not JSON"));
    CHECK(tg_model_load(nan_scale, at("nan.safetensors")) == 0);
    tg_set_warning_handler(NULL, NULL);
    tg_model_free(nan_scale);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Keras's to_json and model_from_json: the same architecture and compile, fresh weights
 * from the same seeds (so the same ones), and a model never compiled loads uncompiled. */
static void test_to_json_and_back(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = merges();
    REQUIRE(m);
    REQUIRE(tg_compile(m, .optimizer = tg_nadam(.learning_rate = 0.002), .loss = TG_LOSS_MSE) == 0);
    char *json = tg_model_to_json(m);
    REQUIRE(json);
    CHECK(strstr(json, "\"class_name\":\"Functional\"") && strstr(json, "\"class_name\":\"Nadam\"") &&
          strstr(json, "\"inbound_nodes\":[[[\"a\",0,0,{}]],[[\"b\",0,0,{}]]]"));
    tg_model *copy = tg_model_from_json(json);
    REQUIRE(copy);
    char *again = tg_model_to_json(copy);
    CHECK(again && !strcmp(json, again));
    CHECK(tg_model_optimizer(copy) && tg_optimizer_iterations(tg_model_optimizer(copy)) == 0);
    tg_tensor *a = tg_ones(TG_F32, TG_SHAPE(2, 4)), *ys[2], *ys2[2];
    tg_tensor *xs[2] = {a, a};
    CHECK(predict_all(m, xs, 2, ys) == 2 && predict_all(copy, xs, 2, ys2) == 2);
    CHECK(same_bits(ys[0], ys2[0]) && same_bits(ys[1], ys2[1]));
    free(json);
    free(again);
    EXPECT_ERROR(tg_model_from_json("{\"class_name\": \"Sequential\"}") == NULL,
                 "tg_model_from_json: \"name\" is missing");
    EXPECT_ERROR(tg_model_from_json(NULL) == NULL, "tg_model_from_json: the JSON is NULL");

    tg_model *plain = dense_stack(); /* never compiled */
    REQUIRE(plain && tg_model_save(plain, at("plain.safetensors"), NULL) == 0);
    tg_model *back = tg_model_load_file(at("plain.safetensors"));
    REQUIRE(back);
    CHECK(tg_model_optimizer(back) == NULL);
    CHECK(same_bits(tg_predict(plain, tg_ones(TG_F32, TG_SHAPE(2, 4))),
                    tg_predict(back, tg_ones(TG_F32, TG_SHAPE(2, 4)))));

    /* the same layers wired otherwise: Keras's layer order follows the wiring, so the first
     * difference is the order of the inputs */
    tg_keras_tensor *p = tg_input(TG_SHAPE(4), .name = "a"), *q = tg_input(TG_SHAPE(4), .name = "b");
    tg_layer *shared = tg_dense(.units = 4, .activation = TG_TANH, .name = "shared");
    tg_keras_tensor *hp = tg_layer_apply(shared, p), *hq = tg_layer_apply(shared, q);
    tg_model *wired = tg_functional(TG_KERAS_TENSORS(p, q), TG_KERAS_TENSORS(tg_layer_apply(tg_add_layer(), hq, hp)));
    REQUIRE(wired);
    REQUIRE(tg_model_save(wired, at("wired.safetensors"), NULL) == 0);
    tg_keras_tensor *p2 = tg_input(TG_SHAPE(4), .name = "a"), *q2 = tg_input(TG_SHAPE(4), .name = "b");
    tg_layer *shared2 = tg_dense(.units = 4, .activation = TG_TANH, .name = "shared");
    tg_keras_tensor *hp2 = tg_layer_apply(shared2, p2), *hq2 = tg_layer_apply(shared2, q2);
    tg_model *crossed =
        tg_functional(TG_KERAS_TENSORS(p2, q2), TG_KERAS_TENSORS(tg_layer_apply(tg_add_layer(), hp2, hq2)));
    REQUIRE(crossed);
    EXPECT_ERROR(tg_model_load(crossed, at("wired.safetensors")) != 0,
                 "layer 0 (\"a\", InputLayer): name is \"b\" in the file, \"a\" in the model");
    tg_model_free(crossed);
    tg_model_free(wired);
    tg_model_free(back);
    tg_model_free(plain);
    tg_model_free(copy);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A class of the public layer interface (tapegrad/layer.h), registered by name: its
 * get_config's options go into the file and its from_config reads them back. */
typedef struct offset_state {
    double offset;
    tg_tensor *w;
} offset_state;

static int offset_build(tg_layer *l, tg_shape in)
{
    offset_state *st = tg_layer_state(l);
    st->w = tg_layer_add_weight(l, "w", TG_SHAPE(in.dims[in.rank - 1]), .initializer = tg_init_random_normal(0, 1));
    return st->w ? 0 : -1;
}

static tg_tensor *offset_call(tg_layer *l, const tg_tensor *x, bool training, const tg_tensor *mask)
{
    (void)training, (void)mask;
    offset_state *st = tg_layer_state(l);
    return tg_add(tg_mul(x, st->w), tg_scalar_like(x, st->offset));
}

static int offset_get_config(const tg_layer *l, char *json, size_t size)
{
    return snprintf(json, size, "{\"offset\": %.17g}", ((offset_state *)tg_layer_state(l))->offset);
}

static int offset_from_config(tg_layer *l, const char *json)
{
    offset_state *st = calloc(1, sizeof *st);
    const char *at = strstr(json, "\"offset\":");
    if (!st || !at) {
        free(st);
        return -1;
    }
    st->offset = strtod(at + 9, NULL);
    return tg_layer_set_state(l, st);
}

static const tg_layer_class offset_class = {.class_name = "Offset",
                                            .build = offset_build,
                                            .call = offset_call,
                                            .get_config = offset_get_config,
                                            .from_config = offset_from_config,
                                            .free_state = free};

static void test_custom_layer_class(void)
{
    tg_scope *s = tg_scope_begin();
    offset_state *st = calloc(1, sizeof *st);
    REQUIRE(st);
    st->offset = -0.75;
    tg_model *m = tg_sequential(tg_dense(.units = 3, .input_dim = 2),
                                tg_custom_layer(&offset_class, .state = st, .name = "shift"));
    REQUIRE(m);
    REQUIRE(tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_MSE) == 0);
    tg_tensor *x = tg_tensor_from(TG_F32, TG_SHAPE(2, 2), ((float[]){1, 2, -3, 0.5f}));
    tg_history *h = tg_fit(m, x, tg_zeros(TG_F32, TG_SHAPE(2, 3)), .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h);
    tg_history_free(h);
    REQUIRE(tg_model_save(m, at("offset.safetensors"), NULL) == 0);
    EXPECT_ERROR(tg_model_load_file(at("offset.safetensors")) == NULL,
                 "layer 1 (\"shift\", Offset): names the layer class \"Offset\", which tapegrad does not know");
    REQUIRE(tg_register_layer_class(&offset_class) == 0);
    tg_model *back = tg_model_load_file(at("offset.safetensors"));
    REQUIRE(back);
    CHECK(!strcmp(tg_layer_name(tg_model_layer(back, 1)), "shift"));
    CHECK(((offset_state *)tg_layer_state(tg_model_layer(back, 1)))->offset == -0.75);
    CHECK(same_bits(tg_predict(m, x), tg_predict(back, x)));
    CHECK(tg_optimizer_iterations(tg_model_optimizer(back)) == 1);
    tg_model_free(back);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_get_config(void)
{
    tg_layer *d = tg_dense(.units = 4, .activation = TG_RELU, .name = "d", .kernel_initializer = tg_init_he_normal());
    REQUIRE(d);
    char *c = tg_layer_get_config(d);
    REQUIRE(c);
    CHECK(strstr(c, "\"name\":\"d\""));
    CHECK(strstr(c, "\"units\":4"));
    CHECK(strstr(c, "\"activation\":\"relu\""));
    CHECK(strstr(c, "\"kernel_initializer\":{\"class_name\":\"HeNormal\""));
    CHECK(strstr(c, "\"use_bias\":true"));
    free(c);
    tg_layer_free(d);
    EXPECT_ERROR(tg_layer_get_config(NULL) == NULL, "tg_layer_get_config: the layer is NULL");
    tg_layer *mixed_dense = tg_dense(.units = 2, .dtype_policy = "mixed_bfloat16");
    REQUIRE(mixed_dense);
    c = tg_layer_get_config(mixed_dense);
    CHECK(c && strstr(c, "\"dtype\":\"float32\",\"dtype_policy\":\"mixed_bfloat16\""));
    free(c);
    tg_layer_free(mixed_dense);
}

/* Training on from a file equals training without a stop, bit for bit. */
static void test_resume_equals_uninterrupted(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *rng = tg_rng_new(7);
    tg_tensor *x = tg_random_normal(rng, TG_F32, TG_SHAPE(40, 4)), *y = tg_random_normal(rng, TG_F32, TG_SHAPE(40, 2));
    tg_model *whole = mlp(), *first = mlp();
    REQUIRE(whole && first);
    tg_schedule lr = tg_exponential_decay(.initial_learning_rate = 0.05, .decay_steps = 3, .decay_rate = 0.9);
    REQUIRE(tg_compile(whole, .optimizer = tg_rmsprop(.schedule = lr, .momentum = 0.5), .loss = TG_LOSS_MSE) == 0);
    REQUIRE(tg_compile(first, .optimizer = tg_rmsprop(.schedule = lr, .momentum = 0.5), .loss = TG_LOSS_MSE) == 0);
    tg_history *h1 = tg_fit(whole, x, y, .epochs = 3, .batch_size = 8, .seed = 21, .verbose = TG_VERBOSE_SILENT);
    tg_history *h2 = tg_fit(first, x, y, .epochs = 1, .batch_size = 8, .seed = 21, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h1 && h2);
    REQUIRE(tg_model_save(first, at("r.safetensors"), NULL) == 0);
    tg_model *rest = tg_model_load_file(at("r.safetensors"));
    REQUIRE(rest);
    tg_model_fit_position pos;
    REQUIRE(tg_model_get_fit_position(rest, &pos) == 1);
    tg_history *h3 = tg_fit(rest, x, y, .epochs = 3, .initial_epoch = pos.epoch, .batch_size = 8, .seed = pos.seed,
                            .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h3);
    CHECK(same_bits(tg_predict(whole, x), tg_predict(rest, x)));
    int n1, n2;
    tg_tensor *const *v1 = tg_model_variables(whole, &n1), *const *v2 = tg_model_variables(rest, &n2);
    CHECK(n1 == n2);
    for (int i = 0; i < n1 && i < n2; i++)
        CHECK(same_bits(v1[i], v2[i]));
    tg_history_free(h1);
    tg_history_free(h2);
    tg_history_free(h3);
    tg_model_free(whole);
    tg_model_free(first);
    tg_model_free(rest);
    tg_rng_free(rng);
    tg_scope_end(s);
}

/* Loading into a model that is not built builds it (train.h's promise). */
static void test_load_builds(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = dense_stack();
    REQUIRE(m && tg_model_save(m, at("b.safetensors"), NULL) == 0);
    tg_model *fresh = tg_sequential_with(
        tg_sequential_options(.seed = 99, .name = "other"),
        tg_dense(.units = 5, .activation = TG_RELU, .kernel_regularizer = tg_l2(0.01),
                 .kernel_constraint = tg_max_norm(.max_value = 3), .bias_initializer = tg_init_constant(0.1)),
        tg_dropout(.rate = 0.25),
        tg_dense(.units = 3, .activation = TG_GELU, .use_bias = false,
                 .kernel_initializer = tg_init_random_normal(0, 0.3)),
        tg_activation_layer(.activation = TG_SOFTPLUS), tg_dense(.units = 2, .name = "head"));
    REQUIRE(fresh && !tg_model_built(fresh));
    CHECK(tg_model_load(fresh, at("b.safetensors")) == 0);
    CHECK(tg_model_built(fresh));
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(3, 4));
    CHECK(same_bits(tg_predict(m, x), tg_predict(fresh, x)));
    tg_model_free(fresh);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A file of another architecture is refused, naming the first difference. */
static void test_mismatch_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = dense_stack();
    REQUIRE(m && tg_model_save(m, at("d.safetensors"), NULL) == 0);
    tg_model *wider = tg_sequential(tg_dense(.units = 6, .activation = TG_RELU, .input_dim = 4), tg_dense(.units = 2));
    int line = __LINE__ + 1;
    int rc = tg_model_load(wider, at("d.safetensors"));
    EXPECT_ERROR(
        rc != 0,
        "the file's model differs from this one: layer 0 (\"dense\", Dense): units is 5 in the file, 6 in the model");
    char where[64];
    snprintf(where, sizeof where, "test_model_file.c:%d: tg_model_load: '", line);
    CHECK(strstr(tg_last_error(), where));
    tg_model *other_in = dense_stack_for(3);
    EXPECT_ERROR(
        tg_model_load(other_in, at("d.safetensors")) != 0,
        "the file's model differs from this one: the input shape is [null,4] in the file, [null,3] in the model");
    tg_model *no_reg = tg_sequential(tg_dense(.units = 5, .activation = TG_RELU, .input_dim = 4));
    EXPECT_ERROR(tg_model_load(no_reg, at("d.safetensors")) != 0,
                 "layer 0 (\"dense\", Dense): kernel_regularizer is "
                 "{\"class_name\":\"L1L2\",\"config\":{\"l1\":0,\"l2\":0.01}} in the file, null in the model");
    /* Initializers are not compared (Keras's load_weights): the file's weights replace what
     * they drew, so the predictions are the saved model's. */
    tg_model *other_init = tg_sequential_with(
        tg_sequential_options(.seed = 9, .name = "dense_stack"),
        tg_dense(.units = 5, .activation = TG_RELU, .input_dim = 4, .kernel_regularizer = tg_l2(0.01),
                 .kernel_constraint = tg_max_norm(.max_value = 3), .kernel_initializer = tg_init_zeros()),
        tg_dropout(.rate = 0.25), tg_dense(.units = 3, .activation = TG_GELU, .use_bias = false),
        tg_activation_layer(.activation = TG_SOFTPLUS), tg_dense(.units = 2, .name = "head"));
    CHECK(tg_model_load(other_init, at("d.safetensors")) == 0);
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(2, 4));
    CHECK(same_bits(tg_predict(m, x), tg_predict(other_init, x)));
    tg_model_free(other_init);
    tg_model *shorter = tg_sequential(
        tg_dense(.units = 5, .activation = TG_RELU, .input_dim = 4, .kernel_regularizer = tg_l2(0.01),
                 .kernel_constraint = tg_max_norm(.max_value = 3), .bias_initializer = tg_init_constant(0.1)));
    EXPECT_ERROR(tg_model_load(shorter, at("d.safetensors")) != 0, "it has 5 layers, this one 1");
    tg_model_free(no_reg);
    tg_model_free(shorter);
    tg_model_free(wider);
    tg_model_free(other_in);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Hand-made architectures: an unknown layer class, a wrong option, a newer format, a
 * cycle, a file without an architecture; each refused naming the file and what. */
static const char *with_arch(const char *name, const char *version, const char *arch)
{
    tg_tensor *w = tg_ones(TG_F32, TG_SHAPE(2, 1));
    const char *keys[2] = {"tapegrad_format_version", "tapegrad_model"}, *values[2] = {version, arch};
    char *meta = tg_metadata_json(keys, values, arch ? 2 : 0);
    const char *p = at(name);
    if (tg_save_safetensors(p, (tg_tensor *[]){w}, (const char *[]){"dense/kernel"}, 1, meta) != 0)
        printf("  cannot write %s: %s\n", p, tg_last_error());
    free(meta);
    return p;
}

static void test_bad_files_refused(void)
{
    tg_scope *s = tg_scope_begin();
    const char *seq = "{\"class_name\":\"Sequential\",\"config\":{\"name\":\"s\",\"trainable\":true,\"dtype\":"
                      "\"float32\",\"seed\":\"0\",\"layers\":[%s]},\"build_config\":{\"input_shape\":[null,2]}}";
    char arch[1024];
    snprintf(arch, sizeof arch, seq,
             "{\"class_name\":\"Fancy\",\"config\":{\"name\":\"f\",\"trainable\":true,\"dtype\":\"float32\"}}");
    EXPECT_ERROR(tg_model_load_file(with_arch("u.safetensors", "1", arch)) == NULL,
                 "layer 0 (\"f\", Fancy): names the layer class \"Fancy\", which tapegrad does not know");
    snprintf(arch, sizeof arch, seq,
             "{\"class_name\":\"Dense\",\"config\":{\"name\":\"dense\",\"trainable\":true,\"dtype\":\"float32\","
             "\"units\":\"one\"}}");
    EXPECT_ERROR(tg_model_load_file(with_arch("o.safetensors", "1", arch)) == NULL,
                 "layer 0 (\"dense\", Dense): \"units\" is a string: it must be a whole number");
    CHECK(strstr(tg_last_error(), "tg_model_load_file: '") && strstr(tg_last_error(), "o.safetensors'"));
    snprintf(arch, sizeof arch, seq,
             "{\"class_name\":\"Dense\",\"config\":{\"name\":\"dense\",\"trainable\":true,\"dtype\":\"float32\","
             "\"unitz\":1}}");
    EXPECT_ERROR(tg_model_load_file(with_arch("k.safetensors", "1", arch)) == NULL, "Dense has no option \"unitz\"");
    snprintf(arch, sizeof arch, seq,
             "{\"class_name\":\"Dropout\",\"config\":{\"name\":\"dropout\",\"trainable\":true,\"dtype\":\"float32\","
             "\"rate\":1.5}}");
    EXPECT_ERROR(tg_model_load_file(with_arch("r.safetensors", "1", arch)) == NULL,
                 "layer 0 (\"dropout\", Dropout): tg_dropout: rate must be in [0, 1)");
    EXPECT_ERROR(tg_model_load_file(with_arch("v.safetensors", "7", arch)) == NULL,
                 "is of model-file format 7, newer than this tapegrad reads (1)");
    EXPECT_ERROR(tg_model_load_file(with_arch("j.safetensors", "1", "{\"class_name\": [")) == NULL,
                 "the model's architecture is not valid JSON");
    EXPECT_ERROR(tg_model_load_file(with_arch("n.safetensors", "1", NULL)) == NULL,
                 "holds weights but not the model's architecture");
    const char *cycle =
        "{\"class_name\":\"Functional\",\"config\":{\"name\":\"f\",\"trainable\":true,\"dtype\":"
        "\"float32\",\"seed\":\"0\",\"layers\":[{\"class_name\":\"InputLayer\",\"name\":\"in\","
        "\"config\":{\"name\":\"in\",\"batch_input_shape\":[null,2],\"dtype\":\"float32\"},"
        "\"inbound_nodes\":[]},{\"class_name\":\"Add\",\"name\":\"add\",\"config\":{\"name\":\"add\","
        "\"trainable\":true,\"dtype\":\"float32\"},\"inbound_nodes\":[[[\"in\",0,0,{}],[\"add\",0,0,{}]]]}],"
        "\"input_layers\":[[\"in\",0,0]],\"output_layers\":[[\"add\",0,0]]}}";
    EXPECT_ERROR(tg_model_load_file(with_arch("c.safetensors", "1", cycle)) == NULL,
                 "layer 1 (\"add\", Add): node 0 cannot be computed");
    tg_scope_end(s);
}

/* Files written before architectures were stored: the command's rebuilds, predicting as
 * that command did (tests/fixtures/model_files/pred.csv, six decimals); the library's
 * loads into the model built in C, predicting as it did (lib_dense_pred.txt, every bit). */
static void test_old_files(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_model_load_file(TG_FIXTURES_DIR "/model_files/cli_mlp.safetensors");
    REQUIRE(m);
    CHECK(tg_model_n_layers(m) == 3);
    CHECK(tg_model_optimizer(m) && tg_optimizer_iterations(tg_model_optimizer(m)) == 6);
    tg_model_fit_position pos;
    CHECK(tg_model_get_fit_position(m, &pos) == 1 && pos.epoch == 2 && pos.seed == 7);
    const float feats[6][3] = {{-0.524f, 0.088f, -0.26f},  {0.208f, 0.251f, -0.869f}, {-0.974f, 0.675f, -0.481f},
                               {-0.531f, 0.991f, -0.059f}, {0.673f, -0.047f, 0.278f}, {-0.699f, 0.27f, 0.736f}};
    const double probs[6][3] = {{0.309358, 0.329385, 0.361258}, {0.460143, 0.276127, 0.263731},
                                {0.286915, 0.321749, 0.391336}, {0.279658, 0.318987, 0.401355},
                                {0.428422, 0.297066, 0.274512}, {0.212782, 0.286319, 0.500899}};
    tg_tensor *p = tg_softmax(tg_predict(m, tg_tensor_from(TG_F32, TG_SHAPE(6, 3), feats)), -1);
    double got[18];
    REQUIRE(p && tg_copy_out_f64(p, got, 18) == 0);
    for (int i = 0; i < 18; i++)
        CHECK_NEAR(got[i], probs[i / 3][i % 3], 1e-6);
    tg_model_free(m);

    tg_model *lib =
        tg_sequential_with(tg_sequential_options(.seed = 1),
                           tg_dense(.units = 4, .activation = TG_TANH, .input_dim = 3), tg_dense(.units = 2));
    REQUIRE(tg_compile(lib, .optimizer = tg_sgd(.learning_rate = 0.1, .momentum = 0.9), .loss = TG_LOSS_MSE) == 0);
    REQUIRE(tg_model_load(lib, TG_FIXTURES_DIR "/model_files/lib_dense.safetensors") == 0);
    float xv[12] = {0.1f, -0.2f, 0.3f, 0.5f, 0.1f, -0.7f, -0.3f, 0.8f, 0.2f, 0.9f, -0.4f, 0.05f};
    float want[8] = {0.153922915f, 1.11639667f,  0.00620824099f, 1.25003624f,
                     0.307312965f, 0.332269251f, -0.206380546f,  1.56811905f},
          out[8];
    tg_tensor *y = tg_predict(lib, tg_tensor_from(TG_F32, TG_SHAPE(4, 3), xv));
    REQUIRE(y && tg_copy_out(y, out, sizeof out) == 0);
    CHECK(memcmp(out, want, sizeof out) == 0);
    CHECK(tg_optimizer_iterations(tg_model_optimizer(lib)) == 4);
    EXPECT_ERROR(tg_model_load_file(TG_FIXTURES_DIR "/model_files/lib_dense.safetensors") == NULL,
                 "holds weights but not the model's architecture");
    tg_model_free(lib);
    tg_scope_end(s);
}

int main(void)
{
    if (!make_tmpdir("tapegrad-model-file"))
        return 1;
    RUN(test_get_config);
    RUN(test_every_layer_round_trips);
    RUN(test_every_class_covered);
    RUN(test_registered_class);
    RUN(test_custom_layer_class);
    RUN(test_weights_kept_without_architecture);
    RUN(test_resume_equals_uninterrupted);
    RUN(test_to_json_and_back);
    RUN(test_load_builds);
    RUN(test_mismatch_refused);
    RUN(test_bad_files_refused);
    RUN(test_old_files);
    remove_tmpdir();
    return TEST_SUMMARY();
}
