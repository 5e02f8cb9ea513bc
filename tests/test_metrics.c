/* Metrics: each kind over several batches against hand-computed weighted means (Keras's
 * total / count), sample weights, resets, names, which accuracy metrics=['accuracy']
 * becomes, and every error message. */
#include "check.h"

#define NEAR 1e-12

static void test_binary_accuracy(void)
{
    tg_scope *s = tg_scope_begin();
    tg_metric *m = tg_metric_new(TG_METRIC_BINARY_ACCURACY);
    CHECK(m && !strcmp(tg_metric_name(m), "binary_accuracy"));
    CHECK(tg_metric_result(m) == 0); /* no update yet: 0, not NaN */
    /* Batch 1: right, right, wrong, wrong. */
    CHECK(tg_metric_update_state(m, tg_from_f32(TG_SHAPE(4, 1), 1, 0, 1, 0),
                                 tg_from_f32(TG_SHAPE(4, 1), 0.7f, 0.2f, 0.4f, 0.6f), NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 0.5, NEAR);
    /* Batch 2: labels [B] against [B, 1]; 0.5 is not above the threshold. */
    CHECK(tg_metric_update_state(m, tg_from_i32(TG_SHAPE(3), 1, 1, 0), tg_from_f64(TG_SHAPE(3, 1), 0.9, 0.5, 0.1),
                                 NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 4.0 / 7, NEAR);
    /* Batch 3, weighted 3 and 1: right, wrong. */
    CHECK(tg_metric_update_state(m, tg_from_f32(TG_SHAPE(2, 1), 1, 0), tg_from_f32(TG_SHAPE(2, 1), 0.8f, 0.9f),
                                 tg_from_f32(TG_SHAPE(2), 3, 1)) == 0);
    CHECK_NEAR(tg_metric_result(m), 7.0 / 11, NEAR);
    tg_metric_reset_state(m);
    CHECK(tg_metric_result(m) == 0);

    /* Several outputs per sample: the mean over them per sample (2/3 and 1/3). */
    tg_tensor *yt = tg_from_f32(TG_SHAPE(2, 3), 1, 0, 1, 0, 0, 1);
    tg_tensor *yp = tg_from_f32(TG_SHAPE(2, 3), 0.6f, 0.7f, 0.8f, 0.1f, 0.6f, 0.3f);
    CHECK(tg_metric_update_state(m, yt, yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 0.5, NEAR);
    tg_metric_reset_state(m);
    CHECK(tg_metric_update_state(m, yt, yp, tg_from_f64(TG_SHAPE(2), 1, 3)) == 0);
    CHECK_NEAR(tg_metric_result(m), (2.0 / 3 + 3 * (1.0 / 3)) / 4, NEAR);
    tg_metric_reset_state(m);
    /* Weights of every output: (1*1 + 0*0 + 1*2) / 3 for sample 1, (0 + 1 + 0) / 3. */
    CHECK(tg_metric_update_state(m, yt, yp, tg_from_f64(TG_SHAPE(2, 3), 1, 1, 2, 1, 1, 1)) == 0);
    CHECK_NEAR(tg_metric_result(m), (3.0 / 3 + 1.0 / 3) / (4.0 / 3 + 1), NEAR);
    tg_metric_free(m);

    m = tg_metric_new(TG_METRIC_BINARY_ACCURACY, .threshold = 0.75);
    CHECK(tg_metric_update_state(m, tg_from_f32(TG_SHAPE(4, 1), 1, 0, 1, 0),
                                 tg_from_f32(TG_SHAPE(4, 1), 0.7f, 0.2f, 0.8f, 0.6f), NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 0.75, NEAR);
    tg_metric_free(m);
    tg_scope_end(s);
}

static void test_categorical_accuracy(void)
{
    tg_scope *s = tg_scope_begin();
    tg_metric *m = tg_metric_new(TG_METRIC_CATEGORICAL_ACCURACY);
    /* Right, wrong, right; row 2's tie goes to the first index (0), as TF's argmax. */
    tg_tensor *yt = tg_from_f32(TG_SHAPE(3, 4), 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0);
    tg_tensor *yp = tg_from_f32(TG_SHAPE(3, 4), 0.1f, 0.2f, 0.6f, 0.1f, 0.4f, 0.4f, 0.2f, 0, 3, 1, 2, 0);
    CHECK(tg_metric_update_state(m, yt, yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 2.0 / 3, NEAR);
    CHECK(tg_metric_update_state(m, tg_from_f64(TG_SHAPE(1, 2), 1, 0), tg_from_f64(TG_SHAPE(1, 2), -1, -2), NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 3.0 / 4, NEAR);
    CHECK(tg_metric_update_state(m, yt, yp, tg_from_f32(TG_SHAPE(3, 1), 0, 5, 1)) == 0);
    CHECK_NEAR(tg_metric_result(m), (3.0 + 1) / (4 + 6), NEAR);
    tg_metric_free(m);
    tg_scope_end(s);
}

static void test_sparse_categorical_accuracy(void)
{
    tg_scope *s = tg_scope_begin();
    tg_metric *m = tg_metric_new(TG_METRIC_SPARSE_CATEGORICAL_ACCURACY, .name = "accuracy");
    CHECK(!strcmp(tg_metric_name(m), "accuracy"));
    tg_tensor *yp = tg_from_f32(TG_SHAPE(4, 3), 0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f, 0.2f, 0.2f, 0.6f, 0.3f, 0.3f, 0.4f);
    /* argmax: 1, 0, 2, 2. */
    CHECK(tg_metric_update_state(m, tg_from_i32(TG_SHAPE(4), 1, 0, 1, 2), yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 0.75, NEAR);
    CHECK(tg_metric_update_state(m, tg_from_i64(TG_SHAPE(4, 1), 0, 0, 2, 1), yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 5.0 / 8, NEAR);
    /* Float labels, weighted: right (w 2), wrong (w 0), right (w 1), wrong (w 1). */
    CHECK(tg_metric_update_state(m, tg_from_f32(TG_SHAPE(4), 1, 1, 2, 0), yp, tg_from_f32(TG_SHAPE(4), 2, 0, 1, 1)) ==
          0);
    CHECK_NEAR(tg_metric_result(m), (5.0 + 3) / (8 + 4), NEAR);
    /* An out-of-range label is simply wrong, as in Keras. */
    tg_metric_reset_state(m);
    CHECK(tg_metric_update_state(m, tg_from_i32(TG_SHAPE(4), 1, 7, 2, -1), yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 0.5, NEAR);
    tg_metric_free(m);
    tg_scope_end(s);
}

static void test_regression_metrics(void)
{
    tg_scope *s = tg_scope_begin();
    tg_metric *mse = tg_metric_new(TG_METRIC_MEAN_SQUARED_ERROR), *mae = tg_metric_new(TG_METRIC_MEAN_ABSOLUTE_ERROR);
    CHECK(!strcmp(tg_metric_name(mse), "mean_squared_error") && !strcmp(tg_metric_name(mae), "mean_absolute_error"));
    /* Errors per sample: (1, -2) and (3, 0): squared means 2.5 and 4.5; absolute 1.5 and 1.5. */
    tg_tensor *yt = tg_from_f64(TG_SHAPE(2, 2), 1, 0, 3, 5), *yp = tg_from_f64(TG_SHAPE(2, 2), 0, 2, 0, 5);
    CHECK(tg_metric_update_state(mse, yt, yp, NULL) == 0 && tg_metric_update_state(mae, yt, yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(mse), 3.5, NEAR);
    CHECK_NEAR(tg_metric_result(mae), 1.5, NEAR);
    /* Vectors are one value per sample: errors 2, -1, 0.5. */
    tg_tensor *vt = tg_from_f32(TG_SHAPE(3), 2, 1, 0.5f), *vp = tg_from_f32(TG_SHAPE(3, 1), 0, 2, 0);
    CHECK(tg_metric_update_state(mse, vt, vp, NULL) == 0 && tg_metric_update_state(mae, vt, vp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(mse), (7 + 4 + 1 + 0.25) / 5, NEAR);
    CHECK_NEAR(tg_metric_result(mae), (3 + 2 + 1 + 0.5) / 5, NEAR);
    tg_metric_reset_state(mse);
    CHECK(tg_metric_update_state(mse, vt, vp, tg_from_f32(TG_SHAPE(3), 1, 2, 4)) == 0);
    CHECK_NEAR(tg_metric_result(mse), (4 + 2 + 1) / 7.0, NEAR);
    tg_metric_free(mse);
    tg_metric_free(mae);
    tg_scope_end(s);
}

static void test_top_k(void)
{
    tg_scope *s = tg_scope_begin();
    tg_metric *m = tg_metric_new(TG_METRIC_TOP_K_CATEGORICAL_ACCURACY, .k = 2);
    tg_metric *sp = tg_metric_new(TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY, .k = 2);
    CHECK(!strcmp(tg_metric_name(m), "top_k_categorical_accuracy"));
    /* Row 1: class 2 is second best: in. Row 2: class 0 ties class 3 below two higher
     * scores: out. Row 3: three-way tie at the top: TF counts ties in, so in. */
    tg_tensor *yp = tg_from_f32(TG_SHAPE(3, 4), 0.1f, 0.5f, 0.3f, 0.1f, 0.1f, 0.5f, 0.3f, 0.1f, 0.4f, 0.4f, 0.4f, 0.1f);
    tg_tensor *labels = tg_from_i32(TG_SHAPE(3), 2, 0, 2);
    tg_tensor *onehot = tg_one_hot(labels, 4);
    CHECK(tg_metric_update_state(m, onehot, yp, NULL) == 0);
    CHECK(tg_metric_update_state(sp, labels, yp, NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 2.0 / 3, NEAR);
    CHECK_NEAR(tg_metric_result(sp), 2.0 / 3, NEAR);
    CHECK(tg_metric_update_state(sp, tg_from_i64(TG_SHAPE(3, 1), 1, 3, 3), yp, tg_from_f32(TG_SHAPE(3), 1, 1, 2)) == 0);
    CHECK_NEAR(tg_metric_result(sp), (2.0 + 1) / (3 + 4), NEAR);
    tg_metric_free(m);
    tg_metric_free(sp);

    /* Keras's default k is 5: with 6 classes only the lowest score is out. */
    tg_metric *k5 = tg_metric_new(TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY);
    tg_tensor *six = tg_from_f32(TG_SHAPE(2, 6), 6, 5, 4, 3, 2, 1, 6, 5, 4, 3, 2, 1);
    CHECK(tg_metric_update_state(k5, tg_from_i32(TG_SHAPE(2), 4, 5), six, NULL) == 0);
    CHECK_NEAR(tg_metric_result(k5), 0.5, NEAR);
    tg_metric_free(k5);
    tg_scope_end(s);
}

static void test_mean(void)
{
    tg_scope *s = tg_scope_begin();
    tg_metric *m = tg_metric_new(TG_METRIC_MEAN, .name = "loss");
    CHECK(!strcmp(tg_metric_name(m), "loss") && tg_metric_kind_of(m) == TG_METRIC_MEAN);
    CHECK(tg_metric_update_state(m, NULL, tg_from_f32(TG_SHAPE(3), 1, 2, 3), NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), 2, NEAR);
    /* The loss tracker's way: one value weighted by the batch size. */
    CHECK(tg_metric_update_value(m, 10, 2) == 0);
    CHECK_NEAR(tg_metric_result(m), 26.0 / 5, NEAR);
    tg_metric_reset_state(m);
    CHECK(tg_metric_update_state(m, NULL, tg_from_f64(TG_SHAPE(3), 1, 2, 3), tg_from_f64(TG_SHAPE(3), 1, 0, 1)) == 0);
    CHECK_NEAR(tg_metric_result(m), 2, NEAR);
    /* A scalar counts once; a matrix counts its rows, each the mean of its row. */
    CHECK(tg_metric_update_state(m, NULL, tg_scalar_of(TG_F64, 8), NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), (4 + 8) / 3.0, NEAR);
    CHECK(tg_metric_update_state(m, NULL, tg_from_f64(TG_SHAPE(2, 2), 0, 2, 4, 6), NULL) == 0);
    CHECK_NEAR(tg_metric_result(m), (12 + 1 + 5) / 5.0, NEAR);
    tg_metric_free(m);

    /* The name is copied. */
    char name[16] = "val_loss";
    m = tg_metric_new(TG_METRIC_MEAN, .name = name);
    strcpy(name, "changed");
    CHECK(!strcmp(tg_metric_name(m), "val_loss"));
    tg_metric_free(m);
    tg_metric_free(NULL);
    tg_scope_end(s);
}

static void test_names_and_resolution(void)
{
    CHECK(!strcmp(tg_metric_kind_name(TG_METRIC_SPARSE_CATEGORICAL_ACCURACY), "sparse_categorical_accuracy"));
    CHECK(!strcmp(tg_metric_kind_name(TG_METRIC_MEAN), "mean"));
    CHECK(
        !strcmp(tg_metric_kind_name(TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY), "sparse_top_k_categorical_accuracy"));
    CHECK(!strcmp(tg_metric_kind_name((tg_metric_kind)77), "?"));

    tg_shape p10 = TG_SHAPE(32, 10), p1 = TG_SHAPE(32, 1), p5 = TG_SHAPE(32, 5);
    CHECK(tg_resolve_accuracy(TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, &p10) == TG_METRIC_SPARSE_CATEGORICAL_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_BINARY_CROSSENTROPY, &p5) == TG_METRIC_BINARY_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_BINARY_CROSSENTROPY, &p1) == TG_METRIC_BINARY_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_MSE, &p1) == TG_METRIC_BINARY_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_CATEGORICAL_CROSSENTROPY, &p10) == TG_METRIC_CATEGORICAL_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_CATEGORICAL_CROSSENTROPY, &p1) == TG_METRIC_BINARY_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_CUSTOM, &p5) == TG_METRIC_CATEGORICAL_ACCURACY);
    CHECK(tg_resolve_accuracy(TG_LOSS_MSE, NULL) == TG_METRIC_CATEGORICAL_ACCURACY);

    tg_shape t_vec = TG_SHAPE(32), t_col = TG_SHAPE(32, 1), t10 = TG_SHAPE(32, 10), t5 = TG_SHAPE(32, 5);
    CHECK(tg_resolve_accuracy_from_shapes(&t_vec, &p10) == TG_METRIC_SPARSE_CATEGORICAL_ACCURACY);
    CHECK(tg_resolve_accuracy_from_shapes(&t_col, &p10) == TG_METRIC_SPARSE_CATEGORICAL_ACCURACY);
    CHECK(tg_resolve_accuracy_from_shapes(&t10, &p10) == TG_METRIC_CATEGORICAL_ACCURACY);
    CHECK(tg_resolve_accuracy_from_shapes(&t_vec, &p1) == TG_METRIC_BINARY_ACCURACY);
    CHECK(tg_resolve_accuracy_from_shapes(&t_col, &p1) == TG_METRIC_BINARY_ACCURACY);
    CHECK(tg_resolve_accuracy_from_shapes(&t5, &p5) == TG_METRIC_CATEGORICAL_ACCURACY); /* Keras 3, multi-label */
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_metric_new((tg_metric_kind)42) == NULL, "tg_metric_new: 42 is not a tg_metric_kind");
    EXPECT_ERROR(tg_metric_new(TG_METRIC_TOP_K_CATEGORICAL_ACCURACY, .k = 0) == NULL,
                 "tg_metric_new: top_k_categorical_accuracy needs k >= 1 (got 0)");
    EXPECT_ERROR(tg_metric_new(TG_METRIC_BINARY_ACCURACY, .threshold = NAN) == NULL,
                 "tg_metric_new: binary_accuracy needs a finite threshold");

    tg_metric *cat = tg_metric_new(TG_METRIC_CATEGORICAL_ACCURACY, .name = "acc");
    CHECK(tg_metric_update_state(cat, tg_from_f32(TG_SHAPE(1, 2), 1, 0), tg_from_f32(TG_SHAPE(1, 2), 3, 1), NULL) == 0);
    CHECK(tg_metric_update_state(cat, tg_zeros(TG_F32, TG_SHAPE(3, 4)), tg_zeros(TG_F32, TG_SHAPE(3, 5)), NULL) == -1);
    CHECK_ERROR("tg_metric_update_state: metric `acc` (categorical_accuracy): y_true of shape (3, 4) and y_pred of "
                "shape (3, 5) must have the same shape");
    CHECK(tg_metric_update_state(cat, tg_zeros(TG_F32, TG_SHAPE(1, 2)), tg_zeros(TG_F32, TG_SHAPE(1, 2)),
                                 tg_ones(TG_F32, TG_SHAPE(3))) == -1);
    CHECK_ERROR("tg_metric_update_state: metric `acc`: sample_weight of shape (3,) does not fit the values of shape "
                "(1,); give one weight per sample, shape (1,)");
    EXPECT_ERROR(tg_metric_update_state(cat, tg_scalar(1), tg_scalar(1), NULL) == -1,
                 "are scalars; this metric needs a last axis to reduce");
    CHECK_NEAR(tg_metric_result(cat), 1, 0); /* failed updates change nothing */
    tg_clear_error();
    EXPECT_ERROR(tg_metric_update_state(cat, NULL, tg_zeros(TG_F32, TG_SHAPE(1, 2)), NULL) == -1,
                 "tg_metric_update_state: `y_true` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_metric_update_state(cat, tg_zeros(TG_F32, TG_SHAPE(1, 2)), NULL, NULL) == -1,
                 "tg_metric_update_state: `y_pred` is NULL");
    EXPECT_ERROR(tg_metric_update_value(cat, 1, 1) == -1,
                 "tg_metric_update_value: metric `acc` is a categorical_accuracy; only a mean takes plain values");
    EXPECT_ERROR(tg_metric_update_state(NULL, NULL, NULL, NULL) == -1, "tg_metric_update_state: `m` is NULL");
    tg_metric_free(cat);

    tg_metric *sp = tg_metric_new(TG_METRIC_SPARSE_CATEGORICAL_ACCURACY);
    CHECK(tg_metric_update_state(sp, tg_from_i32(TG_SHAPE(2), 0, 1), tg_zeros(TG_F32, TG_SHAPE(3, 4)), NULL) == -1);
    CHECK_ERROR("metric `sparse_categorical_accuracy` (sparse_categorical_accuracy): y_true of shape (2,) and y_pred "
                "of shape (3, 4) do not fit: class indices need y_pred's shape without its last axis");
    EXPECT_ERROR(tg_metric_update_state(sp, tg_zeros(TG_F32, TG_SHAPE(3, 4)), tg_zeros(TG_F32, TG_SHAPE(3, 4)), NULL) ==
                     -1,
                 "y_true of shape (3, 4) and y_pred of shape (3, 4) do not fit");
    tg_metric_free(sp);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_binary_accuracy);
    RUN(test_categorical_accuracy);
    RUN(test_sparse_categorical_accuracy);
    RUN(test_regression_metrics);
    RUN(test_top_k);
    RUN(test_mean);
    RUN(test_names_and_resolution);
    RUN(test_errors);
    return TEST_SUMMARY();
}
