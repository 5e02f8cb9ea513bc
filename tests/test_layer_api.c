/* The layer interface (include/tapegrad/layer.h) used as a user would, with public calls
 * only: a Dense written as a custom layer trains, its gradients match finite differences,
 * it round-trips through a checkpoint file and through its registered class's config, and
 * gets the summary row, weights order and diagnosis of a built-in layer; add_weight outside
 * build is refused naming the line; Lambda with and without an output-shape function;
 * models used as layers (Sequential in Sequential, a shared Sequential in a functional
 * model: its variables listed once, the gradient the sum of both paths against finite
 * differences, the trainable flag, one summary row, checkpoints). */
#include <tapegrad.h>

#include "check.h"
#include "gradcheck.h"
#include "tmpfiles.h"

/* ---- a Dense written with the public API ---------------------------------------------------- */
typedef struct my_dense {
    int64_t units;
    tg_tensor *kernel, *bias, *calls;
} my_dense;

static int my_dense_build(tg_layer *l, tg_shape in)
{
    my_dense *s = tg_layer_state(l);
    s->kernel = tg_layer_add_weight(l, "kernel", TG_SHAPE(in.dims[in.rank - 1], s->units));
    s->calls = tg_layer_add_weight(l, "calls", TG_SHAPE(1), .initializer = tg_init_zeros(), .trainable = false);
    s->bias = tg_layer_add_weight(l, "bias", TG_SHAPE(s->units), .initializer = tg_init_constant(0.1));
    return s->kernel && s->bias && s->calls ? 0 : -1;
}

static tg_tensor *my_dense_call(tg_layer *l, const tg_tensor *x, bool training, const tg_tensor *mask)
{
    (void)training, (void)mask;
    my_dense *s = tg_layer_state(l);
    return tg_tanh(tg_add(tg_matmul(x, s->kernel), s->bias));
}

static int my_dense_config(const tg_layer *l, char *json, size_t size)
{
    return snprintf(json, size, "{\"units\": %lld}", (long long)((my_dense *)tg_layer_state(l))->units);
}

static int my_dense_from_config(tg_layer *l, const char *json)
{
    my_dense *s = calloc(1, sizeof *s);
    const char *units = strstr(json, "\"units\":");
    if (!s || !units || sscanf(units + 8, "%lld", (long long *)&s->units) != 1) {
        free(s);
        return -1;
    }
    return tg_layer_set_state(l, s);
}

static const tg_layer_class my_dense_class = {.class_name = "MyDense",
                                              .build = my_dense_build,
                                              .call = my_dense_call,
                                              .get_config = my_dense_config,
                                              .from_config = my_dense_from_config,
                                              .supports_masking = true,
                                              .free_state = free};

static tg_layer *my_dense_layer(int64_t units, tg_shape input_shape)
{
    my_dense *s = calloc(1, sizeof *s);
    s->units = units;
    return tg_custom_layer(&my_dense_class, .state = s, .input_shape = input_shape);
}

static tg_tensor *data(uint64_t seed, tg_shape shape) { return gc_input(seed, shape, -1, 1); }

static tg_model *two_layer_model(uint64_t seed)
{
    return tg_sequential_with(tg_sequential_options(.seed = seed, .dtype = TG_F64), my_dense_layer(4, TG_SHAPE(3)),
                              tg_dense(.units = 1));
}

static void test_custom_layer_trains(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = two_layer_model(1);
    REQUIRE(m != NULL);
    tg_tensor *x = data(2, TG_SHAPE(64, 3));
    tg_tensor *y = tg_sum(tg_mul(x, tg_tensor_from(TG_F64, TG_SHAPE(3), ((double[]){0.5, -1, 0.25}))),
                          .axes = TG_AXES(1), .keepdims = true);
    REQUIRE(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .loss = TG_LOSS_MSE) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 30, .batch_size = 16, .seed = 3, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h != NULL);
    int n = 0;
    const double *loss = tg_history_get(h, "loss", &n);
    REQUIRE(loss && n == 30);
    CHECK(loss[n - 1] < 0.2 * loss[0]);
    int nv = 0, nt = 0;
    tg_tensor *const *vars = tg_model_variables(m, &nv);
    tg_model_trainable_variables(m, &nt);
    CHECK(nv == 5 && nt == 4); /* kernel, calls, bias, dense/kernel, dense/bias; calls is not trainable */
    CHECK(!strcmp(tg_variable_name(vars[0]), "my_dense/kernel") && !strcmp(tg_variable_name(vars[2]), "my_dense/bias"));
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

typedef struct loss_case {
    tg_model *m;
    tg_tensor *x, *w;
} loss_case;

static tg_tensor *weighted_output(void *user)
{
    loss_case *c = user;
    return tg_sum(tg_mul(tg_model_call(c->m, c->x), c->w));
}

static void test_custom_layer_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    loss_case c = {.m = two_layer_model(4), .x = data(5, TG_SHAPE(5, 3)), .w = data(6, TG_SHAPE(5, 1))};
    REQUIRE(c.m && tg_model_call(c.m, c.x));
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(c.m, &n);
    REQUIRE(n == 4);
    CHECK(gradcheck_variables("custom layer", weighted_output, vars, n, &c, 1e-6, 1e-7));
    tg_model_free(c.m);
    tg_scope_end(s);
}

static void test_custom_layer_checkpoint(void)
{
    REQUIRE(make_tmpdir("tg-layer-api"));
    tg_scope *s = tg_scope_begin();
    tg_model *a = two_layer_model(7), *b = two_layer_model(8);
    tg_tensor *x = data(9, TG_SHAPE(4, 3));
    tg_tensor *ya = tg_model_call(a, x), *yb = tg_model_call(b, x);
    REQUIRE(ya && yb);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(ya, yb)))) > 1e-3); /* different seeds, different weights */
    REQUIRE(tg_model_save(a, at("custom.safetensors"), NULL) == 0);
    REQUIRE(tg_model_load(b, at("custom.safetensors")) == 0);
    TENSORS_AGREE(tg_model_call(b, x), ya, CHECK_BITS);
    /* get/set_weights: each layer's trainable ones first (kernel, bias), then calls */
    tg_tensor *w[3];
    tg_layer *la = tg_model_layer(a, 0);
    REQUIRE(tg_layer_get_weights(la, w, 3) == 0);
    CHECK(tg_rank(w[0]) == 2 && tg_dim(w[1], 0) == 4 && tg_dim(w[2], 0) == 1);
    CHECK_VALUES(w[1], 0, 0.1, 0.1, 0.1, 0.1);
    tg_model_free(a);
    tg_model_free(b);
    tg_scope_end(s);
    remove_tmpdir();
}

static void test_custom_layer_config_and_registry(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = my_dense_layer(6, TG_SHAPE(2));
    char json[64];
    CHECK(tg_custom_layer_config(l, json, sizeof json) == 12 && !strcmp(json, "{\"units\": 6}"));
    EXPECT_ERROR(tg_custom_layer_from_config("MyDense", "again", json) == NULL, "Unknown layer: 'MyDense'");
    REQUIRE(tg_register_layer_class(&my_dense_class) == 0);
    CHECK(tg_register_layer_class(&my_dense_class) == 0); /* the same class again */
    CHECK(tg_find_layer_class("MyDense") == &my_dense_class);
    tg_layer *again = tg_custom_layer_from_config("MyDense", "again", json);
    REQUIRE(again != NULL);
    CHECK(!strcmp(tg_layer_name(again), "again") && !strcmp(tg_layer_class_name(again), "MyDense"));
    tg_tensor *y = tg_layer_call(again, data(10, TG_SHAPE(3, 2)));
    CHECK(y && tg_dim(y, 1) == 6); /* the units came from the config */
    static const tg_layer_class impostor = {.class_name = "MyDense", .call = my_dense_call};
    EXPECT_ERROR(tg_register_layer_class(&impostor) == -1, "another class is already registered as \"MyDense\"");
    static const tg_layer_class no_call = {.class_name = "NoCall"}, no_name = {.call = my_dense_call};
    EXPECT_ERROR(tg_custom_layer(&no_call) == NULL, "tg_custom_layer: class \"NoCall\" has no call");
    EXPECT_ERROR(tg_custom_layer(&no_name) == NULL, "tg_custom_layer: the class has no class_name");
    tg_layer *input = tg_keras_tensor_layer(tg_input(TG_SHAPE(2)));
    EXPECT_ERROR(tg_custom_layer_config(input, json, sizeof json) < 0, "is not a custom layer");
    tg_layer_free(input);
    tg_layer_free(l);
    tg_layer_free(again);
    tg_scope_end(s);
}

static void test_add_weight_outside_build(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = my_dense_layer(2, TG_SHAPE(2));
    char where[64];
    int line = __LINE__ + 1;
    tg_tensor *w = tg_layer_add_weight(l, "late", TG_SHAPE(2));
    snprintf(where, sizeof where, "test_layer_api.c:%d", line);
    EXPECT_ERROR(w == NULL, where);
    EXPECT_ERROR(w == NULL, "tg_layer_add_weight: layer \"my_dense\" (MyDense) is not being built");
    tg_layer_free(l);
    tg_scope_end(s);
}

static char summary[8192];
static const char *summary_of(tg_model *m)
{
    FILE *f = fmemopen(summary, sizeof summary, "w");
    if (!f || tg_model_summary(m, f, .line_length = 80) != 0)
        snprintf(summary, sizeof summary, "(failed)");
    if (f)
        fclose(f);
    return summary;
}

/* the summary row, and the diagnosis naming the custom layer's variables */
static void test_custom_layer_summary_and_diagnosis(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = two_layer_model(11);
    REQUIRE(m != NULL);
    CHECK(strstr(summary_of(m), "my_dense (MyDense)") && strstr(summary, "(None, 4)") && strstr(summary, " 17 │") &&
          strstr(summary, "Total params: 22") && strstr(summary, "Non-trainable params: 1 "));
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_tensor *grads[4] = {0};
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_sum(tg_floor(tg_model_call(m, data(12, TG_SHAPE(2, 3)))));
    tg_tape_end(t);
    REQUIRE(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads) == 0);
    tg_optimizer *opt = tg_sgd();
    EXPECT_ERROR(tg_apply_gradients(opt, grads, vars, n) == -1, "my_dense/kernel");
    EXPECT_ERROR(true, "floor");
    tg_optimizer_free(opt);
    tg_tape_free(t);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A custom layer that reads the mask: the sum over the unmasked steps, ending the mask. */
static tg_tensor *masked_sum_call(tg_layer *l, const tg_tensor *x, bool training, const tg_tensor *mask)
{
    (void)l, (void)training;
    tg_tensor *keep = mask ? tg_cast(tg_expand_dims(mask, -1), tg_dtype_of(x)) : tg_ones_like(x);
    return tg_sum(tg_mul(x, keep), .axes = TG_AXES(1));
}

static tg_tensor *no_mask(tg_layer *l, const tg_tensor *x, const tg_tensor *mask)
{
    (void)l, (void)x, (void)mask;
    return NULL;
}

static const tg_layer_class masked_sum_class = {
    .class_name = "MaskedSum", .call = masked_sum_call, .compute_mask = no_mask};

/* In a functional model, masks pass through a custom layer that supports them and reach
 * one whose call reads them. */
static void test_custom_layers_with_masks(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *in = tg_input(TG_SHAPE(3), .dtype = TG_I32);
    tg_layer *emb = tg_embedding(.input_dim = 4, .output_dim = 2, .mask_zero = true),
             *dense = my_dense_layer(2, (tg_shape){0});
    tg_layer *msum = tg_custom_layer(&masked_sum_class);
    tg_keras_tensor *h = tg_layer_apply(dense, tg_layer_apply(emb, in));
    tg_model *m = tg_functional(TG_KERAS_TENSORS(in), TG_KERAS_TENSORS(tg_layer_apply(msum, h)), .dtype = TG_F64);
    REQUIRE(m != NULL);
    CHECK(!strcmp(tg_layer_name(msum), "masked_sum") && tg_layer_output_shape(msum).rank == 1);
    tg_tensor *tokens = tg_tensor_from(TG_I32, TG_SHAPE(2, 3), ((int32_t[]){1, 0, 2, 0, 3, 0}));
    tg_tensor *d = tg_layer_call(dense, tg_layer_call(emb, tokens));
    REQUIRE(d != NULL);
    double v[12], want[4] = {0};
    REQUIRE(tg_copy_out_f64(d, v, 12) == 0);
    const int keep[2][3] = {{1, 0, 1}, {0, 1, 0}};
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++)
            for (int k = 0; k < 2; k++)
                want[b * 2 + k] += keep[b][t] * v[(b * 3 + t) * 2 + k];
    tg_tensor *y = tg_model_call(m, tokens);
    tg_shape two_by_two = TG_SHAPE(2, 2);
    CHECK(TENSOR_MATCHES(y, &two_by_two, want, 4, 1e-15));
    CHECK(tg_model_output_mask(m, y) == NULL);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A model used as a layer passes masks through: Embedding(mask_zero) then a Sequential of
 * an LSTM of sequences, whose output keeps the mask. */
static void test_model_layer_with_masks(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *inner = tg_sequential_with(tg_sequential_options(.name = "inner", .dtype = TG_F64),
                                         tg_lstm(.units = 2, .return_sequences = true));
    tg_layer *emb = tg_embedding(.input_dim = 4, .output_dim = 3, .mask_zero = true, .input_length = 3);
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), emb, tg_model_as_layer(inner));
    REQUIRE(m && tg_model_built(m) && tg_model_built(inner));
    tg_tensor *tokens = tg_tensor_from(TG_I32, TG_SHAPE(2, 3), ((int32_t[]){1, 2, 0, 0, 3, 1}));
    tg_tensor *mask = tg_not_equal(tokens, tg_scalar_like(tokens, 0));
    tg_tensor *y = tg_model_call(m, tokens);
    REQUIRE(y != NULL);
    TENSORS_AGREE(y, tg_model_call(inner, tg_layer_call(emb, tokens), .mask = mask), 0);
    TENSORS_AGREE(tg_model_output_mask(m, y), mask, CHECK_BITS);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- Lambda ---------------------------------------------------------------------------------- */
static tg_tensor *square_sum(const tg_tensor *x, void *user)
{
    return tg_sum(tg_mul(tg_square(x), (const tg_tensor *)user), .axes = TG_AXES(-1));
}

static int last_axis_dropped(tg_shape in, tg_shape *out, void *user)
{
    (void)user;
    *out = in;
    out->rank--;
    return 0;
}

static void test_lambda(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *scale = tg_tensor_from(TG_F64, TG_SHAPE(2), ((double[]){1, 10}));
    tg_layer *traced = tg_lambda(square_sum, .user = scale, .dtype = TG_F64);
    tg_layer *declared = tg_lambda(square_sum, .user = scale, .dtype = TG_F64, .output_shape = last_axis_dropped);
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(2, 2), ((double[]){1, 2, 3, -1}));
    CHECK_TENSOR(tg_layer_call(traced, x), TG_SHAPE(2), 0, 41, 19);
    CHECK_TENSOR(tg_layer_call(declared, x), TG_SHAPE(2), 0, 41, 19);
    tg_shape o1 = tg_layer_output_shape(traced), o2 = tg_layer_output_shape(declared);
    CHECK(o1.rank == 0 && o2.rank == 0 && !strcmp(tg_layer_class_name(traced), "Lambda"));
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_sum(tg_layer_call(traced, x));
    tg_tape_end(t);
    CHECK_TENSOR(tg_gradient(t, y, x), TG_SHAPE(2, 2), 0, 2, 40, 6, -20); /* 2 x scale */
    tg_tape_free(t);
    tg_model *m = tg_sequential(tg_dense(.units = 2, .input_dim = 3, .dtype = TG_F64),
                                tg_lambda(square_sum, .user = scale, .dtype = TG_F64));
    CHECK(strstr(summary_of(m), "lambda (Lambda)") && strstr(summary, "(None)"));
    tg_model_free(m);
    tg_layer_free(traced);
    tg_layer_free(declared);
    tg_scope_end(s);
}

/* ---- models as layers ------------------------------------------------------------------------ */
static tg_model *small(const char *name, uint64_t seed)
{
    return tg_sequential_with(tg_sequential_options(.name = name, .seed = seed, .dtype = TG_F64),
                              tg_dense(.units = 3, .input_dim = 2, .activation = TG_TANH));
}

typedef struct shared_case {
    tg_model *m;
    tg_tensor *xa, *xb, *w;
} shared_case;

static tg_tensor *shared_loss(void *user)
{
    shared_case *c = user;
    const tg_tensor *xs[] = {c->xa, c->xb};
    tg_tensor *ys[1];
    return tg_model_call_list(c->m, xs, 2, ys, 1) == 0 ? tg_sum(tg_mul(ys[0], c->w)) : NULL;
}

static void test_shared_model_in_functional(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *inner = small("inner", 21);
    tg_layer *as_layer = tg_model_as_layer(inner);
    REQUIRE(as_layer && tg_model_as_layer(inner) == as_layer);
    tg_keras_tensor *a = tg_input(TG_SHAPE(2), .name = "a"), *b = tg_input(TG_SHAPE(2), .name = "b");
    tg_keras_tensor *y = tg_layer_apply(tg_add_layer(), tg_layer_apply(as_layer, a), tg_layer_apply(as_layer, b));
    shared_case c = {.m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(y), .dtype = TG_F64),
                     .xa = data(22, TG_SHAPE(4, 2)),
                     .xb = data(23, TG_SHAPE(4, 2)),
                     .w = data(24, TG_SHAPE(4, 3))};
    REQUIRE(c.m != NULL);
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(c.m, &n);
    REQUIRE(n == 2); /* the inner model's kernel and bias, once */
    CHECK(!strcmp(tg_variable_name(vars[0]), "inner/dense/kernel") &&
          !strcmp(tg_variable_name(vars[1]), "inner/dense/bias"));
    /* the output is the inner model on each input, added */
    const tg_tensor *xs[] = {c.xa, c.xb};
    tg_tensor *out[1];
    REQUIRE(tg_model_call_list(c.m, xs, 2, out, 1) == 0);
    TENSORS_AGREE(out[0], tg_add(tg_model_call(inner, c.xa), tg_model_call(inner, c.xb)), 1e-15);
    /* the gradient sums both paths: against finite differences, and against the inner
     * model's gradients on each input alone, added */
    CHECK(gradcheck_variables("shared model", shared_loss, vars, n, &c, 1e-6, 1e-7));
    tg_tensor *both[2], *path_a[2], *path_b[2];
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = shared_loss(&c);
    tg_tape_end(t);
    REQUIRE(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 2, .out = both) == 0);
    for (int k = 0; k < 2; k++) {
        tg_tape *ta = tg_tape_begin();
        tg_tensor *la = tg_sum(tg_mul(tg_model_call(inner, k == 0 ? c.xa : c.xb), c.w));
        tg_tape_end(ta);
        REQUIRE(tg_gradients(ta, .targets = &la, .n_targets = 1, .sources = vars, .n_sources = 2,
                             .out = k == 0 ? path_a : path_b) == 0);
    }
    TENSORS_AGREE(both[0], tg_add(path_a[0], path_b[0]), 1e-14);
    TENSORS_AGREE(both[1], tg_add(path_a[1], path_b[1]), 1e-14);
    /* one row for the inner model */
    CHECK(strstr(summary_of(c.m), "inner (Sequential)") && !strstr(summary, "dense (Dense)"));
    /* its trainable flag is honoured both ways */
    REQUIRE(tg_model_set_trainable(inner, false) == 0);
    tg_model_trainable_variables(c.m, &n);
    CHECK(n == 0);
    tg_model_non_trainable_variables(c.m, &n);
    CHECK(n == 2);
    REQUIRE(tg_layer_set_trainable(as_layer, true) == 0);
    tg_model_trainable_variables(c.m, &n);
    CHECK(n == 2 && tg_model_trainable(inner));
    EXPECT_ERROR((tg_model_free(inner), tg_has_error()), "model \"inner\" is a layer of model \"functional\"");
    CHECK(tg_model_name(inner) != NULL); /* still alive: the outer model frees it */
    tg_model_free(c.m);
    CHECK(tg_model_name(inner) == NULL);
    tg_scope_end(s);
}

static tg_model *nested_sequential(uint64_t seed)
{
    return tg_sequential_with(tg_sequential_options(.name = "outer", .seed = seed, .dtype = TG_F64),
                              tg_model_as_layer(small("inner", seed + 1)), tg_dense(.units = 1));
}

static void test_sequential_in_sequential(void)
{
    REQUIRE(make_tmpdir("tg-layer-api"));
    tg_scope *s = tg_scope_begin();
    tg_model *m = nested_sequential(31), *other = nested_sequential(41);
    REQUIRE(m && other && tg_model_built(m)); /* the inner model declared its input shape */
    tg_tensor *x = data(32, TG_SHAPE(3, 2));
    tg_layer *inner = tg_model_layer(m, 0), *dense = tg_model_layer(m, 1);
    tg_tensor *y = tg_model_call(m, x);
    REQUIRE(y != NULL);
    TENSORS_AGREE(y, tg_layer_call(dense, tg_layer_call(inner, x)), 0);
    CHECK(tg_model_n_params(m, NULL, NULL) == 9 + 4);
    int n = 0;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    CHECK(n == 4 && !strcmp(tg_variable_name(vars[0]), "inner/dense/kernel") &&
          !strcmp(tg_variable_name(vars[2]), "dense/kernel"));
    REQUIRE(tg_model_save(m, at("nested.safetensors"), NULL) == 0);
    REQUIRE(tg_model_load(other, at("nested.safetensors")) == 0);
    TENSORS_AGREE(tg_model_call(other, x), y, CHECK_BITS);
    tg_model_free(m);
    tg_model_free(other);
    tg_model *lone = small("lone", 1);
    tg_layer *l = tg_model_as_layer(lone);
    tg_model_free(lone); /* in no model: the model and its layer go */
    CHECK(tg_model_name(lone) == NULL);
    (void)l;
    tg_keras_tensor *a = tg_input(TG_SHAPE(2));
    tg_keras_tensor *y1 = tg_layer_apply(tg_dense(.units = 1), a), *y2 = tg_layer_apply(tg_dense(.units = 2), a);
    tg_model *two = tg_functional(TG_KERAS_TENSORS(a), TG_KERAS_TENSORS(y1, y2));
    EXPECT_ERROR(tg_model_as_layer(two) == NULL, "has 2 outputs; a layer gives one");
    tg_model_free(two);
    tg_scope_end(s);
    remove_tmpdir();
}

int main(void)
{
    RUN(test_custom_layer_trains);
    RUN(test_custom_layer_gradients);
    RUN(test_custom_layer_checkpoint);
    RUN(test_custom_layer_config_and_registry);
    RUN(test_add_weight_outside_build);
    RUN(test_custom_layer_summary_and_diagnosis);
    RUN(test_custom_layers_with_masks);
    RUN(test_model_layer_with_masks);
    RUN(test_lambda);
    RUN(test_shared_model_in_functional);
    RUN(test_sequential_in_sequential);
    return TEST_SUMMARY();
}
