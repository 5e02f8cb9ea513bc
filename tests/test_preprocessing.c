/* Keras's Normalization layer: the examples of its API documentation
 * (keras/src/layers/preprocessing/normalization.py), axes kept two at a time against
 * hand sums, a model that carries it through a checkpoint, and the errors. */
#include "check.h"
#include "tmpfiles.h"

/* Keras: adapt on [1, 2, 3, 4, 5] with axis=None; on [1, 2, 3] it gives
 * [-1.4142135, -0.70710677, 0]. */
static void test_keras_axis_none(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = tg_normalization(.axis_none = true);
    REQUIRE(tg_normalization_adapt(l, tg_from_f32(TG_SHAPE(5), 1, 2, 3, 4, 5)) == 0);
    CHECK_TENSOR(tg_layer_call(l, tg_from_f32(TG_SHAPE(3), 1, 2, 3)), TG_SHAPE(3), 1e-6, -1.4142135, -0.70710677, 0);
    int n;
    tg_tensor *const *v = tg_layer_variables(l, &n);
    CHECK(n == 2 && tg_rank(v[0]) == 0 && strcmp(tg_variable_name(v[0]), "normalization/mean") == 0);
    CHECK_VALUES(v[0], 0, 3);
    CHECK_VALUES(v[1], 0, 2); /* the population variance, as numpy's var */
    CHECK(!tg_variable_trainable(v[0]) && !tg_variable_trainable(v[1]));
    tg_layer_free(l);
    tg_scope_end(s);
}

/* Keras: per index of the last axis; adapt on four rows, [[0, 7, 4]] gives [-1, -1, -1];
 * inverted, [[1, 2, 3]] gives [2, 10, 8]. */
static void test_keras_last_axis_and_invert(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *data = tg_from_f32(TG_SHAPE(4, 3), 0, 7, 4, 2, 9, 6, 0, 7, 4, 2, 9, 6);
    tg_layer *l = tg_normalization(), *inv = tg_normalization(.invert = true);
    REQUIRE(tg_normalization_adapt(l, data) == 0 && tg_normalization_adapt(inv, data) == 0);
    CHECK_TENSOR(tg_layer_call(l, tg_from_f32(TG_SHAPE(1, 3), 0, 7, 4)), TG_SHAPE(1, 3), 1e-6, -1, -1, -1);
    CHECK_TENSOR(tg_layer_call(inv, tg_from_f32(TG_SHAPE(1, 3), 1, 2, 3)), TG_SHAPE(1, 3), 1e-6, 2, 10, 8);
    tg_layer_free(l);
    tg_layer_free(inv);
    tg_scope_end(s);
}

/* Keras: mean=3, variance=2 given; [[1], [2], [3]] gives [-1.4142135, -0.70710677, 0]. A
 * zero variance divides by epsilon (1e-7) instead of 0. */
static void test_given_statistics(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = tg_normalization(.mean = (double[]){3}, .variance = (double[]){2}, .n_values = 1);
    CHECK_TENSOR(tg_layer_call(l, tg_from_f32(TG_SHAPE(3, 1), 1, 2, 3)), TG_SHAPE(3, 1), 1e-6, -1.4142135, -0.70710677,
                 0);
    tg_layer *flat =
        tg_normalization(.mean = (double[]){1, 2}, .variance = (double[]){0, 4}, .n_values = 2, .dtype = TG_F64);
    CHECK_TENSOR(tg_layer_call(flat, tg_from_f64(TG_SHAPE(1, 2), 1.5, 6)), TG_SHAPE(1, 2), 1e-12, 0.5 / 1e-7, 2);
    tg_layer_free(l);
    tg_layer_free(flat);
    tg_scope_end(s);
}

/* Kept axes 1 and 3 of a (2, 2, 2, 2) batch: each (i, k) pair has its own mean and
 * variance over the batch and axis 2, four numbers each, summed here by hand. */
static void test_two_kept_axes(void)
{
    tg_scope *s = tg_scope_begin();
    double x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (double)(i * i % 7);
    tg_layer *l = tg_normalization(.axis = TG_AXES(1, -1), .dtype = TG_F64);
    tg_tensor *xt = tg_tensor_from(TG_F64, TG_SHAPE(2, 2, 2, 2), x);
    REQUIRE(tg_normalization_adapt(l, xt) == 0);
    int n;
    tg_tensor *const *v = tg_layer_variables(l, &n);
    CHECK(tg_rank(v[0]) == 2 && tg_dim(v[0], 0) == 2 && tg_dim(v[0], 1) == 2);
    double mean[4], var[4], got[4];
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 2; c++) {
            double sum = 0, sq = 0;
            for (int b = 0; b < 2; b++)
                for (int h = 0; h < 2; h++)
                    sum += x[b * 8 + a * 4 + h * 2 + c];
            mean[a * 2 + c] = sum / 4;
            for (int b = 0; b < 2; b++)
                for (int h = 0; h < 2; h++)
                    sq += pow(x[b * 8 + a * 4 + h * 2 + c] - sum / 4, 2);
            var[a * 2 + c] = sq / 4;
        }
    tg_copy_out_f64(v[0], got, 4);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(got[i], mean[i], 1e-15);
    tg_copy_out_f64(v[1], got, 4);
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(got[i], var[i], 1e-15);
    tg_tensor *y = tg_layer_call(l, xt);
    double yv[16];
    REQUIRE(y && tg_copy_out_f64(y, yv, 16) == 0);
    for (int e = 0; e < 16; e++) {
        int k = ((e / 4) % 2) * 2 + e % 2;
        CHECK_NEAR(yv[e], (x[e] - mean[k]) / sqrt(var[k]), 1e-12);
    }
    tg_layer_free(l);
    tg_scope_end(s);
}

/* In a model: not trained (no gradient reaches its statistics), and a checkpoint keeps them. */
static void test_in_a_model(void)
{
    REQUIRE(make_tmpdir("tg-preprocessing"));
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(4, 2), 1, 100, 2, 200, 3, 300, 4, 400);
    tg_layer *norm = tg_normalization(.input_shape = TG_SHAPE(2));
    REQUIRE(tg_normalization_adapt(norm, x) == 0);
    tg_model *m = tg_sequential(norm, tg_dense(.units = 1));
    REQUIRE(m && tg_model_build(m, TG_SHAPE(2)) == 0);
    int n_trainable;
    tg_model_trainable_variables(m, &n_trainable);
    CHECK(n_trainable == 2); /* the Dense's kernel and bias only */
    tg_tensor *y = tg_model_call(m, x);
    CHECK(tg_model_save(m, at("norm.safetensors"), NULL) == 0);
    tg_layer *norm2 = tg_normalization(.input_shape = TG_SHAPE(2));
    tg_model *m2 = tg_sequential(norm2, tg_dense(.units = 1));
    REQUIRE(m2 && tg_model_build(m2, TG_SHAPE(2)) == 0);
    CHECK(tg_model_load(m2, at("norm.safetensors")) == 0);
    CHECK(TENSORS_AGREE(tg_model_call(m2, x), y, CHECK_BITS));
    CHECK_VALUES(tg_layer_variables(norm2, &n_trainable)[0], 0, 2.5, 250);
    tg_model_free(m);
    tg_model_free(m2);
    tg_scope_end(s);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_normalization(.mean = (double[]){1}) == NULL, "give both .mean and .variance");
    EXPECT_ERROR(tg_normalization(.mean = (double[]){1}, .variance = (double[]){-1}, .n_values = 1) == NULL,
                 ".variance[0] = -1");
    tg_layer *three = tg_normalization(.mean = (double[]){0, 0, 0}, .variance = (double[]){1, 1, 1}, .n_values = 3);
    EXPECT_ERROR(tg_layer_call(three, tg_from_f32(TG_SHAPE(1, 2), 1, 2)) == NULL, "hold 3 values");
    EXPECT_ERROR(tg_normalization_adapt(three, tg_from_f32(TG_SHAPE(1, 3), 1, 2, 3)) == -1,
                 "was given its .mean and .variance");
    tg_layer *l = tg_normalization();
    EXPECT_ERROR(tg_normalization_adapt(l, tg_from_f32(TG_SHAPE(2, 2), 1, NAN, 3, 4)) == -1, "finite data");
    REQUIRE(tg_normalization_adapt(l, tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4)) == 0);
    EXPECT_ERROR(tg_normalization_adapt(l, tg_from_f32(TG_SHAPE(1, 3), 1, 2, 3)) == -1, "was built for inputs");
    tg_layer *batch_axis = tg_normalization(.axis = TG_AXES(0));
    EXPECT_ERROR(tg_normalization_adapt(batch_axis, tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4)) == -1,
                 "never 0, the batch axis");
    tg_layer *dense = tg_dense(.units = 1);
    EXPECT_ERROR(tg_normalization_adapt(dense, tg_from_f32(TG_SHAPE(1, 1), 1)) == -1, "not a Normalization layer");
    tg_layer_free(three);
    tg_layer_free(l);
    tg_layer_free(batch_axis);
    tg_layer_free(dense);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_keras_axis_none);
    RUN(test_keras_last_axis_and_invert);
    RUN(test_given_statistics);
    RUN(test_two_kept_axes);
    RUN(test_in_a_model);
    RUN(test_errors);
    return TEST_SUMMARY();
}
