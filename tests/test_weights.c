/* Keras's get_weights / set_weights on models and layers, and Sequential.pop: hand values
 * through a forward pass, Keras's order of weights, and the refusals (count, shape,
 * dtype, an empty model) that assign nothing. */
#include "check.h"

/* Dense(2) then Dense(1) in float64 on 2 features. */
static tg_model *two_dense(void)
{
    return tg_sequential_with(tg_sequential_options(.dtype = TG_F64), tg_dense(.units = 2, .input_dim = 2),
                              tg_dense(.units = 1));
}

/* W1 = [[1, 2], [3, 4]], b1 = [0.5, -0.5], W2 = [[1], [-1]], b2 = [0.25] on x = [1, 1]:
 * h = [4.5, 5.5], y = 4.5 - 5.5 + 0.25 = -0.75. */
static void model_weights_round_trip(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = two_dense();
    REQUIRE(m);
    const tg_tensor *w[4] = {tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 4), tg_from_f64(TG_SHAPE(2), 0.5, -0.5),
                             tg_from_f64(TG_SHAPE(2, 1), 1, -1), tg_from_f64(TG_SHAPE(1), 0.25)};
    CHECK(tg_model_set_weights(m, w, 4) == 0);
    CHECK_VALUES(tg_model_call(m, tg_from_f64(TG_SHAPE(1, 2), 1, 1)), 1e-15, -0.75);
    tg_tensor *got[4] = {0};
    CHECK(tg_model_get_weights(m, got, 4) == 0);
    CHECK_TENSOR(got[0], TG_SHAPE(2, 2), 0, 1, 2, 3, 4);
    CHECK_TENSOR(got[1], TG_SHAPE(2), 0, 0.5, -0.5);
    CHECK_TENSOR(got[2], TG_SHAPE(2, 1), 0, 1, -1);
    CHECK_TENSOR(got[3], TG_SHAPE(1), 0, 0.25);
    /* copies: a later update leaves them */
    int n;
    tg_tensor *const *v = tg_model_variables(m, &n);
    CHECK(n == 4 && tg_assign(v[3], tg_from_f64(TG_SHAPE(1), 9)) == 0);
    CHECK_VALUES(got[3], 0, 0.25);
    /* float32 values go into float64 variables, as Keras's assign converts */
    const tg_tensor *w32[4] = {tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), tg_from_f32(TG_SHAPE(2), 0.5, -0.5),
                               tg_from_f32(TG_SHAPE(2, 1), 1, -1), tg_from_f32(TG_SHAPE(1), 0.25)};
    CHECK(tg_model_set_weights(m, w32, 4) == 0);
    CHECK(tg_dtype_of(v[3]) == TG_F64);
    CHECK_VALUES(v[3], 0, 0.25);
    tg_model_free(m);
    tg_scope_end(s);
}

/* BatchNormalization's weights: gamma, beta (trainable), then moving_mean and
 * moving_variance, after the Dense layer's kernel and bias. */
static void keras_order(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), tg_dense(.units = 1, .input_dim = 1),
                                     tg_batch_normalization());
    REQUIRE(m);
    const tg_tensor *w[6] = {tg_from_f64(TG_SHAPE(1, 1), 1), tg_from_f64(TG_SHAPE(1), 2), tg_from_f64(TG_SHAPE(1), 3),
                             tg_from_f64(TG_SHAPE(1), 4),    tg_from_f64(TG_SHAPE(1), 5), tg_from_f64(TG_SHAPE(1), 6)};
    CHECK(tg_model_set_weights(m, w, 6) == 0);
    const char *names[6] = {"dense/kernel",
                            "dense/bias",
                            "batch_normalization/gamma",
                            "batch_normalization/beta",
                            "batch_normalization/moving_mean",
                            "batch_normalization/moving_variance"};
    int n;
    tg_tensor *const *v = tg_model_variables(m, &n);
    REQUIRE(n == 6);
    for (int i = 0; i < 6; i++) {
        int k = 0;
        while (k < n && strcmp(tg_variable_name(v[k]), names[i]) != 0)
            k++;
        REQUIRE(k < n);
        CHECK_VALUES(v[k], 0, i + 1.0);
    }
    tg_tensor *got[4] = {0};
    CHECK(tg_layer_get_weights(tg_model_layer(m, 1), got, 4) == 0);
    CHECK_VALUES(got[0], 0, 3);
    CHECK_VALUES(got[3], 0, 6);
    tg_model_free(m);
    tg_scope_end(s);
}

static void bad_weights_are_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = two_dense();
    REQUIRE(m);
    const tg_tensor *w[4] = {tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 4), tg_from_f64(TG_SHAPE(3), 0, 0, 0),
                             tg_from_f64(TG_SHAPE(2, 1), 1, -1), tg_from_f64(TG_SHAPE(1), 0.25)};
    EXPECT_ERROR(tg_model_set_weights(m, w, 3) != 0, "tg_model_set_weights: model \"sequential\" has 4 weights, but 3 "
                                                     "were given");
    EXPECT_ERROR(tg_model_set_weights(m, w, 4) != 0,
                 "tg_model_set_weights: weights[1] has shape (3,), but variable dense/bias has shape (2,)");
    const tg_tensor *wi[2] = {tg_from_i32(TG_SHAPE(2, 2), 1, 2, 3, 4), tg_from_f64(TG_SHAPE(2), 0, 0)};
    EXPECT_ERROR(tg_layer_set_weights(tg_model_layer(m, 0), wi, 2) != 0,
                 "tg_layer_set_weights: weights[0] is int32, but variable dense/kernel is float64");
    EXPECT_ERROR(tg_layer_set_weights(tg_model_layer(m, 0), wi, 1) != 0,
                 "tg_layer_set_weights: layer \"dense\" has 2 weights, but 1 were given");
    const tg_tensor *wn[2] = {NULL, NULL};
    EXPECT_ERROR(tg_layer_set_weights(tg_model_layer(m, 0), wn, 2) != 0,
                 "tg_layer_set_weights: weights[0] (for dense/kernel) is NULL");
    tg_tensor *got[2];
    EXPECT_ERROR(tg_model_get_weights(m, got, 2) != 0, "tg_model_get_weights: there are 4 weights, but out holds 2");
    tg_model_free(m);
    tg_scope_end(s);
}

/* A refused set assigns nothing: the kernel keeps its value when a later weight is wrong. */
static void refused_set_assigns_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = two_dense();
    REQUIRE(m);
    int n;
    tg_tensor *const *v = tg_model_variables(m, &n);
    double before[4], after[4];
    REQUIRE(tg_copy_out_f64(v[0], before, 4) == 0);
    const tg_tensor *w[4] = {tg_from_f64(TG_SHAPE(2, 2), 7, 7, 7, 7), tg_from_f64(TG_SHAPE(2), 0, 0),
                             tg_from_f64(TG_SHAPE(2, 1), 1, -1), tg_from_f64(TG_SHAPE(2), 0, 0)};
    CHECK(tg_model_set_weights(m, w, 4) != 0);
    REQUIRE(tg_copy_out_f64(v[0], after, 4) == 0);
    CHECK(memcmp(before, after, sizeof before) == 0);
    tg_model_free(m);
    tg_scope_end(s);
}

/* pop removes the last Dense: the model gives h = [4.5, 5.5] of the first one, keeps its
 * two weights, and an empty model is refused. */
static void sequential_pop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = two_dense();
    REQUIRE(m);
    const tg_tensor *w[2] = {tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 4), tg_from_f64(TG_SHAPE(2), 0.5, -0.5)};
    CHECK(tg_layer_set_weights(tg_model_layer(m, 0), w, 2) == 0);
    CHECK(tg_sequential_pop(m) == 0);
    CHECK(tg_model_n_layers(m) == 1);
    int n;
    tg_model_variables(m, &n);
    CHECK(n == 2);
    CHECK_TENSOR(tg_model_call(m, tg_from_f64(TG_SHAPE(1, 2), 1, 1)), TG_SHAPE(1, 2), 1e-15, 4.5, 5.5);
    CHECK(tg_model_add(m, tg_dense(.units = 3)) == 0); /* named dense_1 again */
    CHECK(tg_model_n_layers(m) == 2 && strcmp(tg_layer_name(tg_model_layer(m, 1)), "dense_1") == 0);
    CHECK(tg_sequential_pop(m) == 0 && tg_sequential_pop(m) == 0);
    CHECK(tg_model_n_layers(m) == 0 && !tg_model_built(m));
    EXPECT_ERROR(tg_sequential_pop(m) != 0, "tg_sequential_pop: model \"sequential\" has no layers to pop");
    tg_model_free(m);
    tg_scope_end(s);
}

/* A compiled, trained model trains on after a pop: the optimizer forgets the popped
 * layer's variables, and the new last layer's output is the one compared to y. */
static void pop_after_training(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), tg_dense(.units = 1, .input_dim = 2),
                                     tg_dense(.units = 1));
    REQUIRE(m && tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_MSE) == 0);
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 2), 1, 0, 0, 1), *y = tg_from_f64(TG_SHAPE(2, 1), 1, 1);
    tg_history_free(tg_fit(m, x, y, .epochs = 2, .batch_size = 2, .verbose = TG_VERBOSE_SILENT));
    CHECK(tg_sequential_pop(m) == 0);
    double before[2], after[2];
    int n;
    tg_tensor *const *v = tg_model_variables(m, &n);
    REQUIRE(n == 2 && tg_copy_out_f64(v[0], before, 2) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = 2, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    REQUIRE(tg_copy_out_f64(v[0], after, 2) == 0);
    CHECK(before[0] != after[0] && before[1] != after[1]);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    RUN(model_weights_round_trip);
    RUN(keras_order);
    RUN(bad_weights_are_refused);
    RUN(refused_set_assigns_nothing);
    RUN(sequential_pop);
    RUN(pop_after_training);
    return TEST_SUMMARY();
}
