/* Metrics: each kind over several batches against hand-computed weighted means (Keras's
 * total / count), sample weights, resets, names, which accuracy metrics=['accuracy']
 * becomes, and every error message; the confusion metrics (Precision, Recall, AUC,
 * F1Score, MeanIoU) streamed over batches against scikit-learn's scores of the whole
 * (tests/fixtures/metric_golden.txt, from tools/make_metric_fixtures.py). */
#include "check.h"
#include "fixture.h"

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

/* ---- the confusion metrics against scikit-learn ------------------------------------------------- */
static tg_metric_kind kind_named(const char *name)
{
    for (int k = 0; k < TG_METRIC_COUNT; k++)
        if (!strcmp(tg_metric_kind_name((tg_metric_kind)k), name))
            return (tg_metric_kind)k;
    return TG_METRIC_COUNT;
}

/* One option line of the fixture into o. */
static bool set_option(tg_metric_opts *o, const char *key, double v)
{
    if (!strcmp(key, "threshold"))
        o->threshold = v;
    else if (!strcmp(key, "num_thresholds"))
        o->num_thresholds = (int)v;
    else if (!strcmp(key, "curve"))
        o->curve = (tg_auc_curve)v;
    else if (!strcmp(key, "summation"))
        o->summation = (tg_auc_summation)v;
    else if (!strcmp(key, "from_logits"))
        o->from_logits = v != 0;
    else if (!strcmp(key, "average"))
        o->average = (tg_f1_average)v;
    else if (!strcmp(key, "beta"))
        o->beta = v;
    else if (!strcmp(key, "use_threshold"))
        o->use_threshold = v != 0;
    else if (!strcmp(key, "num_classes"))
        o->num_classes = (int64_t)v;
    else if (!strcmp(key, "argmax_y_true"))
        o->argmax_y_true = v != 0;
    else if (!strcmp(key, "argmax_y_pred"))
        o->argmax_y_pred = v != 0;
    else
        return false;
    return true;
}

typedef struct mcase {
    char name[64];
    tg_metric *m;
    tg_metric_opts o;
    tg_metric_kind kind;
    tg_tensor *pending[3]; /* y_true, y_pred, sample_weight of the batch being read */
    int batches;
} mcase;

/* Feeds the batch read so far to the metric. */
static void flush_batch(mcase *c)
{
    if (!c->pending[1])
        return;
    if (!c->m)
        c->m = tg_metric_new_at(TG_LOC, c->kind, c->o);
    CHECK(c->m && tg_metric_update_state(c->m, c->pending[0], c->pending[1], c->pending[2]) == 0);
    c->batches++;
    c->pending[0] = c->pending[1] = c->pending[2] = NULL;
}

static void test_confusion_metrics_against_sklearn(void)
{
    static fx_reader r;
    REQUIRE(fx_open(&r, "metric_golden.txt", "tools/make_metric_fixtures.py"));
    tg_scope *s = tg_scope_begin();
    mcase c = {0};
    bool in_case = false;
    int cases = 0, kinds_seen[TG_METRIC_COUNT] = {0};
    char tag[32], *rest;
    static double v[4096];
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        if (!strcmp(tag, "case")) {
            char kind[32];
            c = (mcase){.o = {.k = 5, .threshold = 0.5, .num_thresholds = 200, .beta = 1.0}};
            in_case = fx_word(&rest, c.name, sizeof c.name) && fx_word(&rest, kind, sizeof kind) &&
                      (c.kind = kind_named(kind)) != TG_METRIC_COUNT;
            if (!in_case)
                fx_fail(&r, "a bad `case`");
        } else if (in_case && !strcmp(tag, "opt")) {
            char key[32];
            double value;
            if (!fx_word(&rest, key, sizeof key) || !fx_number(&rest, &value) || !set_option(&c.o, key, value))
                fx_fail(&r, "a bad `opt`");
        } else if (in_case && (!strcmp(tag, "y_true") || !strcmp(tag, "y_pred") || !strcmp(tag, "sample_weight"))) {
            int slot = tag[2] == 't' ? 0 : tag[2] == 'p' ? 1 : 2;
            if (slot == 0)
                flush_batch(&c);
            tg_shape shape;
            if (!fx_array(&rest, &shape, v, 4096))
                fx_fail(&r, "a bad array");
            else
                c.pending[slot] = tg_tensor_from(TG_F64, shape, v);
        } else if (in_case && !strcmp(tag, "result")) {
            double want;
            flush_batch(&c);
            if (!fx_number(&rest, &want)) {
                fx_fail(&r, "a bad `result`");
                continue;
            }
            /* F1 divides by x + 1e-7 where scikit-learn divides exactly */
            double tol = c.kind == TG_METRIC_F1_SCORE ? 1e-6 : 1e-12, got = tg_metric_result(c.m);
            if (!(fabs(got - want) <= tol * (1 + fabs(want)))) {
                printf("  FAIL %s: %.17g, scikit-learn %.17g (%d batches)\n", c.name, got, want, c.batches);
                check_failures_in_test++;
            }
            CHECK(c.batches >= 2); /* every case streams */
            tg_metric_reset_state(c.m);
            CHECK(tg_metric_result(c.m) == 0);
            kinds_seen[c.kind]++;
            cases++;
        } else if (in_case && !strcmp(tag, "end")) {
            tg_metric_free(c.m);
            in_case = false;
        } else {
            fx_fail(&r, "an unexpected `%s`", tag);
        }
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases >= 20);
    for (int k = TG_METRIC_PRECISION; k <= TG_METRIC_MEAN_IOU; k++)
        CHECK(kinds_seen[k] > 0);
    tg_scope_end(s);
}

/* By hand: Keras's documented examples of Precision, Recall and AUC. */
static void test_confusion_metrics_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    /* keras.metrics.Precision: [0, 1, 1, 1] against [1, 0, 1, 1] is 2/3; with weights
     * [0, 0, 1, 0] it is 1. */
    tg_metric *p = tg_metric_new(TG_METRIC_PRECISION);
    tg_tensor *t = tg_from_f32(TG_SHAPE(4), 0, 1, 1, 1), *q = tg_from_f32(TG_SHAPE(4), 1, 0, 1, 1);
    CHECK(tg_metric_update_state(p, t, q, NULL) == 0);
    CHECK_NEAR(tg_metric_result(p), 2.0 / 3.0, NEAR);
    tg_metric_reset_state(p);
    CHECK(tg_metric_update_state(p, t, q, tg_from_f32(TG_SHAPE(4), 0, 0, 1, 0)) == 0);
    CHECK_NEAR(tg_metric_result(p), 1.0, NEAR);
    /* keras.metrics.Recall: the same labels, 2/3; with weights [0, 0, 1, 0], 1/1 */
    tg_metric *rc = tg_metric_new(TG_METRIC_RECALL);
    CHECK(tg_metric_update_state(rc, t, q, NULL) == 0);
    CHECK_NEAR(tg_metric_result(rc), 2.0 / 3.0, NEAR);
    /* keras.metrics.AUC(num_thresholds=3): [0, 0, 1, 1] against [0, 0.5, 0.3, 0.9]
     * gives tp [2, 1, 0], fp [2, 0, 0], fn [0, 1, 2], tn [0, 2, 2]: tpr [1, 0.5, 0],
     * fpr [1, 0, 0], and the area 0.75. */
    tg_metric *auc = tg_metric_new(TG_METRIC_AUC, .num_thresholds = 3);
    CHECK(tg_metric_update_state(auc, tg_from_f32(TG_SHAPE(4), 0, 0, 1, 1), tg_from_f32(TG_SHAPE(4), 0, 0.5, 0.3, 0.9),
                                 NULL) == 0);
    CHECK_NEAR(tg_metric_result(auc), 0.75, NEAR);
    CHECK(!strcmp(tg_metric_name(auc), "auc") && !strcmp(tg_metric_name(p), "precision"));
    tg_metric_free(p);
    tg_metric_free(rc);
    tg_metric_free(auc);
    tg_scope_end(s);
}

static void test_confusion_metric_errors(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_metric_new(TG_METRIC_MEAN_IOU) == NULL, "MeanIoU needs .num_classes");
    EXPECT_ERROR(tg_metric_new(TG_METRIC_AUC, .num_thresholds = 1) == NULL,
                 "Argument `num_thresholds` must be an integer > 1");
    EXPECT_ERROR(tg_metric_new(TG_METRIC_F1_SCORE, .beta = 0) == NULL, ".beta > 0");
    tg_metric *f1 = tg_metric_new(TG_METRIC_F1_SCORE);
    EXPECT_ERROR(tg_metric_update_state(f1, tg_zeros(TG_F32, TG_SHAPE(4)), tg_zeros(TG_F32, TG_SHAPE(4)), NULL) == -1,
                 "F1Score takes one-hot (or multi-label) y_true and y_pred of one shape (batch_size, num_classes)");
    tg_metric *p = tg_metric_new(TG_METRIC_PRECISION);
    CHECK(tg_metric_update_state(p, tg_from_f32(TG_SHAPE(2), 1, 0), tg_from_f32(TG_SHAPE(2), 0.9, 0.1), NULL) == 0);
    EXPECT_ERROR(tg_metric_update_state(p, tg_zeros(TG_F32, TG_SHAPE(2)), tg_zeros(TG_F32, TG_SHAPE(3)), NULL) == -1,
                 "must have the same shape");
    EXPECT_ERROR(tg_metric_update_state(p, tg_zeros(TG_F32, TG_SHAPE(2, 2)), tg_ones(TG_F32, TG_SHAPE(2, 2)),
                                        tg_ones(TG_F32, TG_SHAPE(3))) == -1,
                 "fits neither the 2 samples nor the 4 values");
    CHECK_NEAR(tg_metric_result(p), 1.0, 0); /* the failed updates changed nothing */
    tg_metric *iou = tg_metric_new(TG_METRIC_MEAN_IOU, .num_classes = 3);
    EXPECT_ERROR(tg_metric_update_state(iou, tg_zeros(TG_F32, TG_SHAPE(4)), tg_zeros(TG_F32, TG_SHAPE(5)), NULL) == -1,
                 "hold different numbers of labels");
    tg_metric_free(f1);
    tg_metric_free(p);
    tg_metric_free(iou);
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
    RUN(test_confusion_metrics_against_sklearn);
    RUN(test_confusion_metrics_by_hand);
    RUN(test_confusion_metric_errors);
    return TEST_SUMMARY();
}
