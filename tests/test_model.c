/* The Sequential model: Keras names, seeded building, input checks, variable lists and
 * trainable semantics (tf-semantics K5), gradients of whole models against finite
 * differences, and the summary text.
 *
 * The expected summaries are what Keras 3's print_summary renders through rich for the
 * same layers (rich's Table with Keras's column positions, widths and totals). */
#include <stdlib.h>

#include "gradcheck.h"

static const char summary_A88[] =
    "Model: \"sequential\"\n"
    "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓\n"
    "┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃\n"
    "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩\n"
    "│ dense (Dense)                        │ (None, 128)                 │           1,408 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ dropout (Dropout)                    │ (None, 128)                 │               0 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ dense_1 (Dense)                      │ (None, 1)                   │             129 │\n"
    "└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘\n"
    " Total params: 1,537 (6.00 KB)\n"
    " Trainable params: 1,537 (6.00 KB)\n"
    " Non-trainable params: 0 (0.00 B)\n";

static const char summary_A76[] = "Model: \"sequential\"\n"
                                  "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓\n"
                                  "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃\n"
                                  "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩\n"
                                  "│ dense (Dense)                   │ (None, 128)            │         1,408 │\n"
                                  "├─────────────────────────────────┼────────────────────────┼───────────────┤\n"
                                  "│ dropout (Dropout)               │ (None, 128)            │             0 │\n"
                                  "├─────────────────────────────────┼────────────────────────┼───────────────┤\n"
                                  "│ dense_1 (Dense)                 │ (None, 1)              │           129 │\n"
                                  "└─────────────────────────────────┴────────────────────────┴───────────────┘\n"
                                  " Total params: 1,537 (6.00 KB)\n"
                                  " Trainable params: 1,537 (6.00 KB)\n"
                                  " Non-trainable params: 0 (0.00 B)\n";

static const char summary_B[] =
    "Model: \"mlp\"\n"
    "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓\n"
    "┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃\n"
    "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩\n"
    "│ dense (Dense)                        │ (None, 1000)                │         785,000 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ batch_normalization                  │ (None, 1000)                │           4,000 │\n"
    "│ (BatchNormalization)                 │                             │                 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ dense_1 (Dense)                      │ (None, 10)                  │          10,010 │\n"
    "└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘\n"
    " Total params: 799,010 (3.05 MB)\n"
    " Trainable params: 797,010 (3.04 MB)\n"
    " Non-trainable params: 2,000 (7.81 KB)\n";

static const char summary_C[] = "Model: \"sequential\"\n"
                                "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓\n"
                                "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃\n"
                                "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩\n"
                                "│ embedding (Embedding)           │ (None, 5, 8)           │         8,000 │\n"
                                "├─────────────────────────────────┼────────────────────────┼───────────────┤\n"
                                "│ flatten (Flatten)               │ (None, 40)             │             0 │\n"
                                "├─────────────────────────────────┼────────────────────────┼───────────────┤\n"
                                "│ a_rather_long_layer_name_for_w… │ (None, 4)              │           164 │\n"
                                "│ (Dense)                         │                        │               │\n"
                                "└─────────────────────────────────┴────────────────────────┴───────────────┘\n"
                                " Total params: 8,164 (63.78 KB)\n"
                                " Trainable params: 8,000 (62.50 KB)\n"
                                " Non-trainable params: 164 (1.28 KB)\n";

static const char summary_U[] = "Model: \"sequential\"\n"
                                "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓\n"
                                "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃\n"
                                "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩\n"
                                "│ dense (Dense)                   │ ?                      │   0 (unbuilt) │\n"
                                "├─────────────────────────────────┼────────────────────────┼───────────────┤\n"
                                "│ dense_1 (Dense)                 │ ?                      │   0 (unbuilt) │\n"
                                "└─────────────────────────────────┴────────────────────────┴───────────────┘\n"
                                " Total params: 0 (0.00 B)\n"
                                " Trainable params: 0 (0.00 B)\n"
                                " Non-trainable params: 0 (0.00 B)\n";
static const char summary_D[] =
    "Model: \"sequential\"\n"
    "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓\n"
    "┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃\n"
    "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩\n"
    "│ conv2d (Conv2D)                      │ (None, 26, 26, 8)           │              80 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ max_pooling2d (MaxPooling2D)         │ (None, 13, 13, 8)           │               0 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ conv2d_1 (Conv2D)                    │ (None, 13, 13, 16)          │           1,168 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ global_average_pooling2d             │ (None, 16)                  │               0 │\n"
    "│ (GlobalAveragePooling2D)             │                             │                 │\n"
    "├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤\n"
    "│ dense (Dense)                        │ (None, 10)                  │             170 │\n"
    "└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘\n"
    " Total params: 1,418 (5.54 KB)\n"
    " Trainable params: 1,418 (5.54 KB)\n"
    " Non-trainable params: 0 (0.00 B)\n";

/* ---- helpers ------------------------------------------------------------------------- */
static char *summary_text(tg_model *m, int line_length)
{
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    int rc = line_length ? tg_model_summary(m, f, .line_length = line_length) : tg_model_summary(m, f);
    long n = ftell(f);
    char *buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(f);
    if (rc != 0 || n < 0 || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void check_summary(tg_model *m, int line_length, const char *want)
{
    char *got = summary_text(m, line_length);
    CHECK(got != NULL);
    if (got && strcmp(got, want) != 0) {
        printf("  summary differs; got:\n%s  expected:\n%s", got, want);
        CHECK(strcmp(got, want) == 0);
    }
    free(got);
}

static bool names_are(tg_tensor *const *vars, int n, const char *const *want, int n_want)
{
    if (n != n_want)
        return printf("  %d variables, expected %d\n", n, n_want), false;
    for (int i = 0; i < n; i++)
        if (strcmp(tg_variable_name(vars[i]), want[i]) != 0)
            return printf("  variable %d is %s, expected %s\n", i, tg_variable_name(vars[i]), want[i]), false;
    return true;
}

static double *var_values(const tg_tensor *v)
{
    int64_t n = tg_size(v);
    double *d = malloc(sizeof(double) * (size_t)n);
    tg_copy_out_f64(v, d, n);
    return d;
}

/* ---- names ---------------------------------------------------------------------------- */
static void test_keras_names(void)
{
    for (int k = 0; k < 2; k++) { /* numbering is per model: both models have dense, dense_1 */
        tg_model *m = tg_sequential(tg_dense(.units = 4, .input_dim = 3), tg_dense(.units = 2));
        CHECK(m && tg_model_built(m) && tg_model_n_layers(m) == 2);
        CHECK(strcmp(tg_model_name(m), "sequential") == 0);
        CHECK(strcmp(tg_layer_name(tg_model_layer(m, 0)), "dense") == 0);
        CHECK(strcmp(tg_layer_name(tg_model_layer(m, -1)), "dense_1") == 0);
        int n;
        tg_tensor *const *v = tg_model_variables(m, &n);
        CHECK(names_are(v, n, (const char *[]){"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}, 4));
        tg_model_free(m);
    }
    tg_model *m = tg_sequential(tg_dense(.units = 2, .input_dim = 2), tg_dropout(.rate = 0.5), tg_dense(.units = 2),
                                tg_batch_normalization(), tg_dense(.units = 1, .name = "out"), tg_dense(.units = 1));
    const char *want[] = {"dense", "dropout", "dense_1", "batch_normalization", "out", "dense_2"};
    for (int i = 0; i < 6; i++)
        CHECK(strcmp(tg_layer_name(tg_model_layer(m, i)), want[i]) == 0);
    CHECK(strcmp(tg_layer_class_name(tg_model_get_layer(m, "out")), "Dense") == 0);
    int n;
    tg_tensor *const *v = tg_model_variables(m, &n);
    CHECK(n == 12 && strcmp(tg_variable_name(v[6]), "batch_normalization/moving_mean") == 0 &&
          strcmp(tg_variable_name(v[8]), "out/kernel") == 0 && strcmp(tg_variable_name(v[11]), "dense_2/bias") == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_model_get_layer(m, "nope") == NULL, "no layer named \"nope\" in model \"sequential\"");
    EXPECT_ERROR(tg_model_layer(m, 6) == NULL, "index 6 is out of range for model \"sequential\" with 6 layers");
    tg_model_free(m);

    tg_clear_error();
    EXPECT_ERROR(tg_sequential(tg_dense(.units = 1, .name = "x"), tg_dense(.units = 1, .name = "x")) == NULL,
                 "name \"x\" is already the name of a layer in model \"sequential\"");
    /* model.add numbers the same way and builds when the shape is known */
    m = tg_sequential();
    CHECK(m && tg_model_n_layers(m) == 0 && !tg_model_built(m));
    CHECK(tg_model_add(m, tg_dense(.units = 2, .input_dim = 3)) == 0 && tg_model_built(m));
    CHECK(tg_model_add(m, tg_dense(.units = 1)) == 0);
    CHECK(strcmp(tg_layer_name(tg_model_layer(m, 1)), "dense_1") == 0 && tg_layer_built(tg_model_layer(m, 1)));
    tg_model_variables(m, &n);
    CHECK(n == 4);
    tg_model_free(m);
}

/* ---- seeds ---------------------------------------------------------------------------------- */
static tg_model *seeded(uint64_t seed)
{
    return tg_sequential_with(tg_sequential_options(.seed = seed), tg_dense(.units = 30, .input_dim = 50),
                              tg_dense(.units = 30), tg_dense(.units = 3, .seed = 99));
}

static bool same_values(const tg_tensor *a, const tg_tensor *b)
{
    double *x = var_values(a), *y = var_values(b);
    bool same = tg_size(a) == tg_size(b) && memcmp(x, y, sizeof(double) * (size_t)tg_size(a)) == 0;
    free(x);
    free(y);
    return same;
}

static void test_seeded_weights(void)
{
    tg_model *a = seeded(42), *b = seeded(42), *c = seeded(43);
    int n;
    tg_tensor *const *va = tg_model_variables(a, &n);
    tg_tensor *const *vb = tg_model_variables(b, &n);
    tg_tensor *const *vc = tg_model_variables(c, &n);
    CHECK(n == 6);
    for (int i = 0; i < n; i++)
        CHECK(same_values(va[i], vb[i]));                            /* the same seed: bit-identical */
    CHECK(!same_values(va[0], vc[0]) && !same_values(va[2], vc[2])); /* another seed: other weights */
    CHECK(same_values(va[4], vc[4])); /* an explicit layer seed does not follow the model's */
    /* glorot_uniform: within sqrt(6 / (50 + 30)), and filling most of that range */
    tg_scope *s = tg_scope_begin();
    double limit = sqrt(6.0 / 80), hi = tg_item(tg_max(tg_abs(va[0])));
    CHECK(hi <= limit && hi > 0.95 * limit);
    CHECK(fabs(tg_item(tg_mean(va[0]))) < 0.02);
    /* two layers of the same shape in one model differ (per-layer seeds) */
    tg_tensor *w1 = tg_slice(va[0], TG_SHAPE(0, 0), TG_SHAPE(30, 30));
    CHECK(tg_item(tg_sum(tg_abs(tg_sub(w1, va[2])))) > 1);
    CHECK_VALUES(va[1], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    /* each variable of a layer has its own seed: a bias drawn like the kernel differs from it */
    tg_model *d = tg_sequential(tg_dense(.units = 4, .input_dim = 4, .bias_initializer = tg_init_glorot_uniform()));
    tg_tensor *const *vd = tg_model_variables(d, &n);
    tg_tensor *row0 = tg_reshape(tg_slice(vd[0], TG_SHAPE(0, 0), TG_SHAPE(1, 4)), TG_SHAPE(4));
    CHECK(n == 2 && tg_item(tg_sum(tg_abs(tg_sub(row0, vd[1])))) > 0.1);
    CHECK(tg_item(tg_max(tg_abs(vd[1]))) <= sqrt(6.0 / 8));
    tg_model_free(d);
    tg_scope_end(s);
    tg_model_free(a);
    tg_model_free(b);
    tg_model_free(c);
}

static void test_dtype(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), tg_dense(.units = 2, .input_dim = 3),
                                     tg_dense(.units = 2, .dtype = TG_F32), tg_dense(.units = 1));
    int n;
    tg_tensor *const *v = tg_model_variables(m, &n);
    CHECK(n == 6 && tg_dtype_of(v[0]) == TG_F64 && tg_dtype_of(v[2]) == TG_F32 && tg_dtype_of(v[4]) == TG_F64);
    tg_tensor *y = tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(4, 3))); /* inputs autocast to each layer */
    CHECK(y && tg_dtype_of(y) == TG_F64 && tg_dim(y, 0) == 4 && tg_dim(y, 1) == 1);
    tg_model_free(m);
    tg_clear_error();
    EXPECT_ERROR(tg_sequential_with(tg_sequential_options(.dtype = TG_I64), tg_dense(.units = 1)) == NULL,
                 "tg_sequential: dtype must be float32 or float64, not int64");
    tg_scope_end(s);
}

/* ---- building and input checks ---------------------------------------------------------------- */
static void test_deferred_build(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 3), tg_dense(.units = 1));
    int n = -1;
    CHECK(!tg_model_built(m) && tg_model_variables(m, &n) && n == 0); /* Keras: [] before building */
    check_summary(m, 0, summary_U);
    tg_tensor *y = tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(2, 4)));
    CHECK(y && tg_dim(y, 0) == 2 && tg_dim(y, 1) == 1 && tg_model_built(m));
    tg_model_trainable_variables(m, &n);
    CHECK(n == 4);
    CHECK(tg_model_build(m, TG_SHAPE(4)) == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_model_build(m, TG_SHAPE(5)) == -1,
                 "model \"sequential\" is already built for examples of shape (4,), not (5,)");
    EXPECT_ERROR(tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(2, 5))) == NULL,
                 "expected shape=(None, 4), found shape=(2, 5)");
    tg_model_free(m);
    /* a build that fails leaves the model unbuilt, with no variables */
    m = tg_sequential(tg_dense(.units = 6), tg_reshape_layer(.target_shape = TG_SHAPE(4, 2)));
    tg_clear_error();
    EXPECT_ERROR(tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(1, 2))) == NULL,
                 "the total size of the new array must be unchanged");
    CHECK(!tg_model_built(m) && !tg_layer_built(tg_model_layer(m, 0)) && tg_model_variables(m, &n) && n == 0);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_wrong_input_width(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 10), tg_dense(.units = 1));
    tg_clear_error();
    CHECK(tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(32, 5))) == NULL);
    CHECK_ERROR("tg_model_call: input 0 of layer \"dense\" is incompatible with the layer: expected shape=(None, 10), "
                "found shape=(32, 5) (model \"sequential\" was built for examples of shape (10,)");
    EXPECT_ERROR(tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(10))) == NULL, "found shape=(10,)");
    CHECK(tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(2, 10))) != NULL);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_bad_models(void)
{
    tg_scope *s = tg_scope_begin();
    tg_clear_error();
    CHECK(tg_sequential(tg_dense(.units = 2), NULL) == NULL); /* the dense is freed (ASan checks) */
    CHECK_ERROR("tg_sequential: layer 1 is NULL");
    tg_clear_error();
    CHECK(tg_sequential(tg_dense(.units = 0), tg_dense(.units = 1)) == NULL);
    CHECK_ERROR("tg_dense: units must be a positive integer, got 0"); /* the first error is kept */
    tg_clear_error();
    EXPECT_ERROR(tg_sequential(tg_dense(.units = 2), tg_dropout(.rate = 2)) == NULL,
                 "tg_dropout: rate must be in [0, 1)");
    tg_layer *d = tg_dense(.units = 2);
    tg_model *m = tg_sequential(d);
    tg_clear_error();
    EXPECT_ERROR(tg_sequential(tg_dense(.units = 1), d) == NULL,
                 "layer \"dense\" already belongs to model \"sequential\"");
    EXPECT_ERROR(tg_model_add(m, d) == -1, "already belongs to model");
    tg_layer *e = tg_dense(.units = 1);
    tg_clear_error();
    EXPECT_ERROR(tg_sequential(e, e) == NULL, "is given twice");
    tg_clear_error();
    EXPECT_ERROR(tg_model_add(m, NULL) == -1, "tg_model_add: layer 0 is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_model_call(NULL, tg_ones(TG_F32, TG_SHAPE(1, 2))) == NULL, "tg_model_call: `model` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_model_call(m, NULL) == NULL, "tg_model_call: `x` is NULL");
    tg_model_free(m);
    m = tg_sequential();
    tg_clear_error();
    EXPECT_ERROR(tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(1, 2))) == NULL, "model \"sequential\" has no layers");
    tg_model_free(m);
    tg_clear_error();
    EXPECT_ERROR(tg_sequential(tg_dense(.units = 2, .input_dim = 3), tg_reshape_layer(.target_shape = TG_SHAPE(5))) ==
                     NULL,
                 "Reshape \"reshape\": the total size of the new array must be unchanged");
    m = tg_sequential(tg_dense(.units = 2, .input_dim = 3));
    tg_clear_error();
    EXPECT_ERROR(tg_model_summary(m, stdout, .line_length = 10) == -1, "insufficient console width to print summary");
    EXPECT_ERROR(tg_model_summary(m, NULL) == -1, "`out` is NULL");
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- trainable (tf-semantics K5) ---------------------------------------------------------------- */
static void test_trainable_false_on_one_layer(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 3, .activation = TG_TANH, .input_dim = 2), tg_dense(.units = 1));
    tg_layer *first = tg_model_layer(m, 0);
    CHECK(tg_layer_set_trainable(first, false) == 0 && !tg_layer_trainable(first));
    int nt, nn, na;
    tg_tensor *const *tv = tg_model_trainable_variables(m, &nt);
    tg_tensor *const *fv = tg_model_non_trainable_variables(m, &nn);
    tg_tensor *const *all = tg_model_variables(m, &na);
    CHECK(names_are(tv, nt, (const char *[]){"dense_1/kernel", "dense_1/bias"}, 2));
    CHECK(names_are(fv, nn, (const char *[]){"dense/kernel", "dense/bias"}, 2));
    CHECK(na == 4 && !tg_variable_trainable(all[0]) && !tg_variable_trainable(all[1]) && tg_variable_trainable(all[2]));
    int64_t tr, ntr;
    CHECK(tg_model_n_params(m, &tr, &ntr) == 13 && tr == 4 && ntr == 9);

    /* a tape watches only the trainable layer; the frozen one gets no gradient, and no error */
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 2), 1, 2, -1, 0.5);
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_sum(tg_square(tg_model_call(m, x, .training = true)));
    tg_tape_end(t);
    int nw;
    tg_watched_variables(t, &nw);
    CHECK(nw == 2);
    tg_tensor *g[4];
    tg_clear_error();
    CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = all, .n_sources = 4, .out = g) == 0);
    CHECK(g[0] == NULL && g[1] == NULL && g[2] != NULL && g[3] != NULL && !tg_has_error());
    tg_tape_free(t);

    /* unfreeze: all four again */
    tg_layer_set_trainable(first, true);
    tg_model_trainable_variables(m, &nt);
    CHECK(nt == 4 && tg_variable_trainable(all[0]));
    /* model.trainable = False: nothing trainable, every layer frozen */
    tg_model_set_trainable(m, false);
    tg_model_trainable_variables(m, &nt);
    tg_model_non_trainable_variables(m, &nn);
    CHECK(nt == 0 && nn == 4 && !tg_model_trainable(m) && !tg_layer_trainable(tg_model_layer(m, 1)));
    /* Keras 3: a frozen model lists no trainable weights even when one of its layers is
     * unfrozen again (that layer's variables are trainable, and tapes watch them) */
    tg_layer_set_trainable(first, true);
    tg_model_trainable_variables(m, &nt);
    CHECK(nt == 0 && tg_variable_trainable(all[0]) && !tg_variable_trainable(all[2]));
    tg_model_set_trainable(m, true);
    tg_model_trainable_variables(m, &nt);
    CHECK(nt == 4);
    tg_model_free(m);

    /* BatchNormalization's moving statistics stay non-trainable through freeze and unfreeze */
    m = tg_sequential(tg_batch_normalization(.input_shape = TG_SHAPE(3)));
    tg_model_set_trainable(m, false);
    tg_model_set_trainable(m, true);
    tv = tg_model_trainable_variables(m, &nt);
    CHECK(names_are(tv, nt, (const char *[]){"batch_normalization/gamma", "batch_normalization/beta"}, 2));
    CHECK(tg_model_n_params(m, &tr, &ntr) == 12 && tr == 6 && ntr == 6);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- gradients of whole models ----------------------------------------------------------------- */
typedef struct {
    tg_model *m;
    tg_tensor *x, *w;
    bool training;
} fd_case;

static tg_tensor *fd_loss(void *user)
{
    const fd_case *c = user;
    return tg_sum(tg_mul(tg_square(tg_model_call(c->m, c->x, .training = c->training)), c->w));
}

/* The tape's gradient of the loss for every trainable variable against central
 * differences taken by assigning perturbed values (gradcheck.h). */
static bool model_gradcheck(const fd_case *c, double eps, double tol)
{
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(c->m, &n), *vs[16];
    if (n > 16)
        return false;
    memcpy(vs, vars, sizeof(tg_tensor *) * (size_t)n); /* the model's array may move as it runs */
    return gradcheck_variables("model", fd_loss, vs, n, (void *)c, eps, tol);
}

static void test_model_gradients_vs_finite_differences(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(5);
    fd_case c = {0};
    c.m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64, .seed = 3),
                             tg_dense(.units = 5, .activation = TG_TANH, .input_dim = 3), tg_layer_normalization(),
                             tg_dense(.units = 2, .activation = TG_SOFTPLUS));
    c.x = tg_random_uniform(r, TG_F64, TG_SHAPE(4, 3), .minval = -1, .maxval = 1);
    c.w = tg_random_uniform(r, TG_F64, TG_SHAPE(4, 2), .minval = 0.5, .maxval = 1.5);
    /* non-trivial gamma and beta, so their gradients are not special */
    int n;
    tg_tensor *const *v = tg_model_variables(c.m, &n);
    CHECK(n == 6);
    tg_assign(v[2], tg_random_uniform(r, TG_F64, TG_SHAPE(5), .minval = 0.5, .maxval = 1.5));
    tg_assign(v[3], tg_random_uniform(r, TG_F64, TG_SHAPE(5), .minval = -0.5, .maxval = 0.5));
    CHECK(model_gradcheck(&c, 1e-6, 1e-6));
    tg_model_free(c.m);

    /* BatchNormalization while training: the batch statistics are differentiated too */
    c.m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64, .seed = 4), tg_dense(.units = 3, .input_dim = 3),
                             tg_batch_normalization(), tg_dense(.units = 2, .activation = TG_SIGMOID));
    c.x = tg_random_uniform(r, TG_F64, TG_SHAPE(6, 3), .minval = -1, .maxval = 1);
    c.w = tg_random_uniform(r, TG_F64, TG_SHAPE(6, 2), .minval = 0.5, .maxval = 1.5);
    c.training = true;
    tg_model_trainable_variables(c.m, &n);
    CHECK(n == 6); /* kernels, biases, gamma, beta: not the moving statistics */
    CHECK(model_gradcheck(&c, 1e-6, 1e-6));
    tg_model_free(c.m);

    /* convolutions: Conv2D (SAME, stride 2) -> AveragePooling2D -> Conv2D -> Flatten -> Dense */
    c.m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64, .seed = 5),
                             tg_conv2d_layer(.filters = 2, .kernel_size = {2, 3}, .strides = {2},
                                             .padding = TG_PADDING_SAME, .activation = TG_TANH,
                                             .input_shape = TG_SHAPE(5, 5, 2)),
                             tg_average_pooling2d(.pool_size = {2}, .strides = {1}),
                             tg_conv2d_layer(.filters = 2, .kernel_size = {1}), tg_flatten(), tg_dense(.units = 1));
    c.x = tg_random_uniform(r, TG_F64, TG_SHAPE(2, 5, 5, 2), .minval = -1, .maxval = 1);
    c.w = tg_random_uniform(r, TG_F64, TG_SHAPE(2, 1), .minval = 0.5, .maxval = 1.5);
    c.training = false;
    tg_model_trainable_variables(c.m, &n);
    CHECK(n == 6);
    CHECK(model_gradcheck(&c, 1e-6, 1e-6));
    tg_model_free(c.m);
    tg_rng_free(r);
    tg_scope_end(s);
}

static void test_training_flag_reaches_layers(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dropout(.rate = 0.5, .input_shape = TG_SHAPE(200)));
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(1, 200));
    CHECK(tg_item(tg_sum(tg_model_call(m, x))) == 200);
    double kept = tg_item(tg_sum(tg_model_call(m, x, .training = true))) / 2; /* kept ones are 2 */
    CHECK(kept > 60 && kept < 140);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- summary --------------------------------------------------------------------------------------- */
static void test_summary(void)
{
    tg_model *a = tg_sequential(tg_dense(.units = 128, .activation = TG_RELU, .input_dim = 10), tg_dropout(.rate = 0.5),
                                tg_dense(.units = 1, .activation = TG_SIGMOID));
    check_summary(a, 88, summary_A88);
    check_summary(a, 0, summary_A76); /* not a terminal: Keras's 80 columns minus 4 */
    tg_model_free(a);

    tg_model *b = tg_sequential_with(tg_sequential_options(.name = "mlp"), tg_dense(.units = 1000, .input_dim = 784),
                                     tg_batch_normalization(), tg_dense(.units = 10, .activation = TG_SOFTMAX));
    check_summary(b, 88, summary_B);
    tg_model_free(b);

    tg_model *c = tg_sequential_with(tg_sequential_options(.dtype = TG_F64),
                                     tg_embedding(.input_dim = 1000, .output_dim = 8, .input_length = 5), tg_flatten(),
                                     tg_dense(.units = 4, .name = "a_rather_long_layer_name_for_wrapping_tests"));
    tg_layer_set_trainable(tg_model_layer(c, 2), false);
    check_summary(c, 76, summary_C);
    tg_model_free(c);

    tg_model *d = tg_sequential(
        tg_conv2d_layer(.filters = 8, .kernel_size = {3, 3}, .activation = TG_RELU, .input_shape = TG_SHAPE(28, 28, 1)),
        tg_max_pooling2d(), tg_conv2d_layer(.filters = 16, .kernel_size = {3}, .padding = TG_PADDING_SAME),
        tg_global_average_pooling2d(), tg_dense(.units = 10, .activation = TG_SOFTMAX));
    check_summary(d, 88, summary_D);
    tg_model_free(d);
}

int main(void)
{
    RUN(test_keras_names);
    RUN(test_seeded_weights);
    RUN(test_dtype);
    RUN(test_deferred_build);
    RUN(test_wrong_input_width);
    RUN(test_bad_models);
    RUN(test_trainable_false_on_one_layer);
    RUN(test_model_gradients_vs_finite_differences);
    RUN(test_training_flag_reaches_layers);
    RUN(test_summary);
    return TEST_SUMMARY();
}
