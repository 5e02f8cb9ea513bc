/* compile, fit, evaluate, predict, callbacks and the progress output. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static int n_warnings;
static char warning[2048];

static void on_warning(const char *msg, void *user)
{
    (void)user;
    n_warnings++;
    snprintf(warning, sizeof warning, "%s", msg);
}

static bool same_weights(tg_model *m, const double *w, int64_t n)
{
    int64_t k;
    double *now = weights_of(m, &k);
    bool same = k == n && memcmp(now, w, sizeof(double) * (size_t)n) == 0;
    free(now);
    return same;
}

/* ---- data ------------------------------------------------------------------------------- */
static tg_tensor *xor_x(void) { return tg_from_f32(TG_SHAPE(4, 2), 0, 0, 0, 1, 1, 0, 1, 1); }
static tg_tensor *xor_y(void) { return tg_from_f32(TG_SHAPE(4, 1), 0, 1, 1, 0); }

/* Two interleaved noisy spirals, labels 0/1 as int32. */
static void spiral(int n, tg_tensor **x, tg_tensor **y, uint64_t seed)
{
    float *xs = malloc(sizeof(float) * (size_t)n * 2);
    int32_t *ys = malloc(sizeof(int32_t) * (size_t)n);
    tg_rng *r = tg_rng_new(seed);
    for (int i = 0; i < n; i++) {
        int cls = i % 2;
        double t = 0.25 + 3.0 * tg_rng_uniform01(r);
        double angle = t * 2.5 + cls * M_PI;
        xs[2 * i] = (float)(t * cos(angle) + 0.1 * (tg_rng_uniform01(r) - 0.5));
        xs[2 * i + 1] = (float)(t * sin(angle) + 0.1 * (tg_rng_uniform01(r) - 0.5));
        ys[i] = cls;
    }
    *x = tg_tensor_from(TG_F32, TG_SHAPE(n, 2), xs);
    *y = tg_tensor_from(TG_I32, TG_SHAPE(n), ys);
    tg_rng_free(r);
    free(xs);
    free(ys);
}

/* ---- convergence ----------------------------------------------------------------------------- */
static void xor_converges(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 3),
                                     tg_dense(.units = 8, .activation = TG_TANH, .input_dim = 2),
                                     tg_dense(.units = 1, .activation = TG_SIGMOID));
    CHECK(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                     .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .epochs = 300, .batch_size = 4, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    int n = 0;
    const double *loss = tg_history_get(h, "loss", &n), *acc = tg_history_get(h, "accuracy", NULL);
    CHECK(n == 300 && loss && acc);
    if (loss && acc) {
        CHECK(loss[299] < 0.05);
        CHECK(acc[299] == 1.0);
        CHECK(loss[299] < loss[0]);
    }
    tg_logs logs;
    CHECK(tg_evaluate(m, xor_x(), xor_y(), &logs) == 0);
    CHECK(tg_logs_get(&logs, "accuracy") == 1.0 && tg_logs_get(&logs, "loss") < 0.05);
    tg_tensor *p = tg_predict(m, xor_x());
    CHECK(p && tg_dim(p, 0) == 4 && tg_dim(p, 1) == 1);
    double pv[4];
    tg_copy_out_f64(p, pv, 4);
    CHECK(pv[0] < 0.2 && pv[1] > 0.8 && pv[2] > 0.8 && pv[3] < 0.2);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void linear_regression_converges(void)
{
    tg_scope *s = tg_scope_begin();
    enum { N = 256 };
    float xs[N * 2], ys[N];
    tg_rng *r = tg_rng_new(11);
    for (int i = 0; i < N; i++) {
        xs[2 * i] = (float)(2 * tg_rng_uniform01(r) - 1);
        xs[2 * i + 1] = (float)(2 * tg_rng_uniform01(r) - 1);
        ys[i] = (float)(3 * xs[2 * i] - 2 * xs[2 * i + 1] + 1 + 0.01 * (tg_rng_uniform01(r) - 0.5));
    }
    tg_rng_free(r);
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    CHECK(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE,
                     .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR)) == 0);
    tg_history *h = tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(N, 2), xs), tg_tensor_from(TG_F32, TG_SHAPE(N), ys),
                           .epochs = 40, .verbose = TG_VERBOSE_SILENT, .seed = 5);
    int n = 0;
    const double *loss = tg_history_get(h, "loss", &n);
    CHECK(n == 40 && loss && loss[39] < 1e-3);
    CHECK(tg_history_get(h, "mean_absolute_error", NULL) != NULL);
    tg_tensor *const *v = tg_model_variables(m, &n);
    CHECK_VALUES(v[0], 0.02, 3.0, -2.0);
    CHECK_VALUES(v[1], 0.02, 1.0);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void spiral_converges_with_validation(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    spiral(400, &x, &y, 7);
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 1),
                                     tg_dense(.units = 32, .activation = TG_RELU, .input_dim = 2),
                                     tg_dense(.units = 32, .activation = TG_RELU), tg_dense(.units = 2));
    CHECK(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 150, .batch_size = 32, .validation_split = 0.2,
                           .verbose = TG_VERBOSE_SILENT, .seed = 2);
    int n = 0;
    const double *acc = tg_history_get(h, "accuracy", &n), *val_acc = tg_history_get(h, "val_accuracy", NULL);
    CHECK(n == 150 && acc && val_acc && tg_history_get(h, "val_loss", NULL));
    if (acc && val_acc) {
        CHECK(acc[149] > 0.95);
        CHECK(val_acc[149] > 0.9);
    }
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- compile checks ------------------------------------------------------------------------- */
static void compile_refuses_a_loss_that_cannot_fit(void)
{
    tg_set_warning_handler(on_warning, NULL);
    n_warnings = 0;
    tg_model *m = tg_sequential(tg_dense(.units = 128, .activation = TG_RELU, .input_dim = 10),
                                tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_optimizer *refused = tg_adam();
    EXPECT_ERROR(tg_compile(m, .optimizer = refused, .loss = TG_LOSS_CATEGORICAL_CROSSENTROPY) == -1,
                 "categorical_crossentropy on a 1-unit output is always zero");
    CHECK_ERROR("TG_LOSS_BINARY_CROSSENTROPY");
    tg_optimizer_free(refused); /* a failed compile leaves it the caller's */
    CHECK(tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_BINARY_CROSSENTROPY, .from_logits = true) == 0);
    CHECK(n_warnings == 1 && strstr(warning, "does not represent logits"));
    tg_model_free(m);

    tg_model *logits = tg_sequential(tg_dense(.units = 3, .input_dim = 4));
    CHECK(tg_compile(logits, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) == 0);
    CHECK(n_warnings == 2 && strstr(warning, "pass .from_logits = true"));
    tg_model_free(logits);

    tg_model *nothing = tg_sequential(tg_dense(.units = 3, .input_dim = 4));
    refused = tg_sgd();
    EXPECT_ERROR(tg_compile(nothing, .optimizer = refused) == -1, "give .loss");
    tg_optimizer_free(refused);
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_fit(nothing, tg_zeros(TG_F32, TG_SHAPE(2, 4)), tg_zeros(TG_F32, TG_SHAPE(2, 3))) == NULL,
                 "No loss to compute. Provide a `loss` argument in `compile()`");
    tg_scope_end(s);
    tg_model_free(nothing);
    tg_set_warning_handler(NULL, NULL);
}

/* ---- bad input: a clear error each, and no weight moves ----------------------------------------- */
static void bad_input_trains_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 3, .activation = TG_SOFTMAX, .input_dim = 4));
    CHECK(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.5), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    int64_t nw;
    double *before = weights_of(m, &nw);
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(6, 4));
    tg_tensor *y = tg_from_i32(TG_SHAPE(6), 0, 1, 2, 0, 1, 2);
    const char *expect[] = {
        "has 6 rows but `y` has 5",
        "expected shape=(None, 4)",
        "y[2] = 3 is out of range: the model has 3 classes",
        "holds nan at row 0, column 2",
        "batch_size must be at least 1",
        "verbose must be a tg_verbose value",
        "validation_split must be in [0, 1)",
        "epochs must not be negative",
        "these look like one-hot labels",
        "Target data is missing",
    };
    for (int i = 0; i < 10; i++) {
        tg_clear_error();
        tg_history *h = NULL;
        switch (i) {
        case 0: h = tg_fit(m, x, tg_from_i32(TG_SHAPE(5), 0, 1, 2, 0, 1), .verbose = TG_VERBOSE_SILENT); break;
        case 1: h = tg_fit(m, tg_ones(TG_F32, TG_SHAPE(6, 5)), y, .verbose = TG_VERBOSE_SILENT); break;
        case 2: h = tg_fit(m, x, tg_from_i32(TG_SHAPE(6), 0, 1, 3, 0, 1, 2), .verbose = TG_VERBOSE_SILENT); break;
        case 3:
            h = tg_fit(m, tg_from_f32(TG_SHAPE(2, 4), 1, 2, NAN, 4, 5, 6, 7, 8), tg_from_i32(TG_SHAPE(2), 0, 1),
                       .verbose = TG_VERBOSE_SILENT);
            break;
        case 4: h = tg_fit(m, x, y, .batch_size = 0, .verbose = TG_VERBOSE_SILENT); break;
        case 5: h = tg_fit(m, x, y, .verbose = (tg_verbose)9); break;
        case 6: h = tg_fit(m, x, y, .validation_split = 1.5, .verbose = TG_VERBOSE_SILENT); break;
        case 7: h = tg_fit(m, x, y, .epochs = -1, .verbose = TG_VERBOSE_SILENT); break;
        case 8: h = tg_fit(m, x, tg_one_hot(y, 3), .verbose = TG_VERBOSE_SILENT); break;
        case 9: h = tg_fit(m, x, NULL, .verbose = TG_VERBOSE_SILENT); break;
        }
        EXPECT_ERROR(h == NULL, expect[i]);
    }
    CHECK(same_weights(m, before, nw));
    free(before);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- determinism ------------------------------------------------------------------------------ */
static double *train_once(uint64_t seed, int64_t *n)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    spiral(64, &x, &y, 9);
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = seed),
                                     tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 2),
                                     tg_dropout(.rate = 0.2), tg_dense(.units = 2));
    tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true);
    tg_history_free(tg_fit(m, x, y, .epochs = 3, .batch_size = 8, .seed = seed, .verbose = TG_VERBOSE_SILENT));
    double *w = weights_of(m, n);
    tg_model_free(m);
    tg_scope_end(s);
    return w;
}

static void same_seed_gives_identical_weights(void)
{
    int64_t n1, n2, n3;
    double *a = train_once(42, &n1), *b = train_once(42, &n2), *c = train_once(43, &n3);
    CHECK(n1 == n2 && memcmp(a, b, sizeof(double) * (size_t)n1) == 0);
    CHECK(n1 == n3 && memcmp(a, c, sizeof(double) * (size_t)n1) != 0);
    free(a);
    free(b);
    free(c);
}

/* ---- trainable = false on one layer of two (TF's behaviour) ----------------------------------- */
static void frozen_layer_stays_put(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    spiral(64, &x, &y, 4);
    tg_model *m = tg_sequential(tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 2), tg_dense(.units = 2));
    tg_layer_set_trainable(tg_model_layer(m, 0), false);
    CHECK(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .from_logits = true) == 0);
    int n0 = 0, n1 = 0;
    tg_tensor *const *v0 = tg_layer_variables(tg_model_layer(m, 0), &n0);
    tg_tensor *const *v1 = tg_layer_variables(tg_model_layer(m, 1), &n1);
    double k0[16], k1[16], after[16];
    tg_copy_out_f64(v0[0], k0, 16);
    tg_copy_out_f64(v1[0], k1, 16);
    tg_history *h = tg_fit(m, x, y, .epochs = 2, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    tg_copy_out_f64(v0[0], after, 16);
    CHECK(memcmp(k0, after, sizeof k0) == 0);
    tg_copy_out_f64(v1[0], after, 16);
    CHECK(memcmp(k1, after, sizeof k1) != 0);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- weights --------------------------------------------------------------------------------- */
static void zero_sample_weights_move_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE);
    int64_t nw;
    double *before = weights_of(m, &nw);
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .sample_weight = tg_zeros(TG_F32, TG_SHAPE(4)), .epochs = 2,
                           .verbose = TG_VERBOSE_SILENT);
    CHECK(h && same_weights(m, before, nw));
    const double *loss = tg_history_get(h, "loss", NULL);
    CHECK(loss && loss[1] == 0.0);
    tg_history_free(h);
    /* class_weight 0 for class 0: only the class-1 samples count */
    h = tg_fit(m, xor_x(), xor_y(), .class_weight = (const double[]){0.0, 1.0}, .n_class_weight = 2, .epochs = 1,
               .shuffle = false, .verbose = TG_VERBOSE_SILENT);
    CHECK(h && !same_weights(m, before, nw));
    tg_history_free(h);
    free(before);
    tg_model_free(m);
    tg_scope_end(s);
}

/* NaN or Inf in a weight turns every model weight NaN after one step while fit reports
 * success; a count without its class_weight array reads through NULL. Each is refused
 * before training, with the caller's line (never a path inside the library). */
static void non_finite_weights_are_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE);
    int64_t nw;
    double *before = weights_of(m, &nw);
    const double nan_cw[] = {1.0, NAN}, inf_cw[] = {INFINITY, 1.0}, big_cw[] = {1e300, 1e300};
    tg_tensor *x = xor_x(), *y = xor_y(), *nan_sw = tg_from_f32(TG_SHAPE(4), 1, 1, NAN, 1);
    tg_tensor *inf_sw = tg_from_f64(TG_SHAPE(4), INFINITY, 1, 1, 1), *big_sw = tg_from_f64(TG_SHAPE(4), 1, 1e300, 1, 1);
    const char *expect[] = {
        "`sample_weight` holds nan at sample 2",
        "`sample_weight` holds inf at sample 0",
        "class_weight[1] is nan",
        "class_weight[0] is inf",
        "class_weight is NULL but n_class_weight is 2",
        "the weight of sample 1, sample_weight 1e+300 times class_weight[1] 1e+300, overflows",
    };
    for (int i = 0; i < 6; i++) {
        tg_clear_error();
        tg_history *h = NULL;
        int line = 0; /* the line of the call */
        switch (i) {
        case 0:
            line = __LINE__ + 1;
            h = tg_fit(m, x, y, .sample_weight = nan_sw, .verbose = TG_VERBOSE_SILENT);
            break;
        case 1:
            line = __LINE__ + 1;
            h = tg_fit(m, x, y, .sample_weight = inf_sw, .verbose = TG_VERBOSE_SILENT);
            break;
        case 2:
            line = __LINE__ + 1;
            h = tg_fit(m, x, y, .class_weight = nan_cw, .n_class_weight = 2, .verbose = TG_VERBOSE_SILENT);
            break;
        case 3:
            line = __LINE__ + 1;
            h = tg_fit(m, x, y, .class_weight = inf_cw, .n_class_weight = 2, .verbose = TG_VERBOSE_SILENT);
            break;
        case 4:
            line = __LINE__ + 1;
            h = tg_fit(m, x, y, .class_weight = NULL, .n_class_weight = 2, .verbose = TG_VERBOSE_SILENT);
            break;
        case 5:
            line = __LINE__ + 1; /* one line: compilers disagree on __LINE__ in a call of several */
            h = tg_fit(m, x, y, .sample_weight = big_sw, .class_weight = big_cw, .n_class_weight = 2);
            break;
        }
        EXPECT_ERROR(h == NULL, expect[i]);
        char where[64];
        snprintf(where, sizeof where, "test_train.c:%d: tg_fit: ", line);
        CHECK_ERROR(where);
        const char *err = tg_last_error();
        CHECK(err && !strstr(err, "src/"));
        tg_history_free(h);
    }
    CHECK(same_weights(m, before, nw));
    free(before);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- a custom train step --------------------------------------------------------------------- */
typedef struct step_state {
    int calls;
} step_state;

/* Keras's train_step, by hand: the tape, the loss, apply_gradients, and a logged extra. */
static int my_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs, void *user)
{
    step_state *st = user;
    st->calls++;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_model_compute_loss(m, y, pred, sw);
    tg_tape_end(tape);
    tg_tensor *grads[8];
    if (n > 8)
        return -1;
    int rc = tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    if (rc == 0)
        rc = tg_apply_gradients(tg_model_optimizer(m), grads, vars, n);
    tg_tape_free(tape);
    if (rc == 0)
        rc = tg_model_update_metrics(m, y, pred, sw, loss);
    tg_model_metric_logs(m, logs);
    tg_logs_set(logs, "steps", st->calls);
    return rc;
}

static void custom_train_step_is_driven_by_fit(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 3),
                                     tg_dense(.units = 8, .activation = TG_TANH, .input_dim = 2),
                                     tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .loss = TG_LOSS_BINARY_CROSSENTROPY);
    step_state st = {0};
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .epochs = 200, .batch_size = 2, .train_step = my_step, .user = &st,
                           .verbose = TG_VERBOSE_SILENT);
    CHECK(h && st.calls == 400);
    int n = 0;
    const double *steps = tg_history_get(h, "steps", &n), *loss = tg_history_get(h, "loss", NULL);
    CHECK(n == 200 && steps && steps[199] == 400 && loss && loss[199] < 0.1);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- callbacks --------------------------------------------------------------------------------- */
typedef struct counts {
    int train_begin, train_end, epoch_begin, epoch_end, batch_begin, batch_end;
} counts;

static int cb_tb(tg_callback *cb, tg_model *m, tg_logs *l)
{
    (void)m;
    (void)l;
    ((counts *)cb->user)->train_begin++;
    return 0;
}
static int cb_te(tg_callback *cb, tg_model *m, tg_logs *l)
{
    (void)m;
    (void)l;
    ((counts *)cb->user)->train_end++;
    return 0;
}
static int cb_eb(tg_callback *cb, tg_model *m, int e, tg_logs *l)
{
    (void)m;
    (void)e;
    (void)l;
    ((counts *)cb->user)->epoch_begin++;
    return 0;
}
static int cb_ee(tg_callback *cb, tg_model *m, int e, tg_logs *l)
{
    (void)m;
    (void)l;
    ((counts *)cb->user)->epoch_end++;
    return e == 2;
}
static int cb_bb(tg_callback *cb, tg_model *m, int64_t b, tg_logs *l)
{
    (void)m;
    (void)b;
    (void)l;
    ((counts *)cb->user)->batch_begin++;
    return 0;
}
static int cb_be(tg_callback *cb, tg_model *m, int64_t b, tg_logs *l)
{
    (void)m;
    (void)b;
    (void)l;
    ((counts *)cb->user)->batch_end++;
    return 0;
}

static double halve(int epoch, double lr, void *user)
{
    (void)user;
    return epoch == 0 ? lr : lr / 2;
}

static void callbacks(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE);
    counts c = {0};
    tg_callback user = {.on_train_begin = cb_tb,
                        .on_train_end = cb_te,
                        .on_epoch_begin = cb_eb,
                        .on_epoch_end = cb_ee,
                        .on_batch_begin = cb_bb,
                        .on_batch_end = cb_be,
                        .user = &c};
    char dir[] = "/tmp/tapegrad_train_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char csv[128];
    snprintf(csv, sizeof csv, "%s/log.csv", dir);
    tg_callback *logger = tg_csv_logger(.filename = csv);
    tg_callback *sched = tg_learning_rate_scheduler(halve, NULL);
    /* as in Keras, the scheduler logs the rate at epoch end, so it comes before the logger */
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .epochs = 10, .batch_size = 3, .verbose = TG_VERBOSE_SILENT,
                           .callbacks = (tg_callback *[]){&user, sched, logger}, .n_callbacks = 3);
    CHECK(h && tg_history_epochs(h) == 3); /* the user callback stopped it after epoch 2 */
    CHECK(c.train_begin == 1 && c.train_end == 1 && c.epoch_begin == 3 && c.epoch_end == 3);
    CHECK(c.batch_begin == 6 && c.batch_end == 6);
    const double *lr = tg_history_get(h, "learning_rate", NULL);
    CHECK(lr && fabs(lr[0] - 0.1) < 1e-12 && fabs(lr[1] - 0.05) < 1e-12 && fabs(lr[2] - 0.025) < 1e-12);
    FILE *f = fopen(csv, "r");
    char line[256] = "";
    int lines = 0;
    CHECK(f != NULL);
    if (f) {
        CHECK(fgets(line, sizeof line, f) && strcmp(line, "epoch,learning_rate,loss\n") == 0);
        while (fgets(line, sizeof line, f))
            lines++;
        fclose(f);
    }
    CHECK(lines == 3 && strncmp(line, "2,0.025", 7) == 0);
    remove(csv);
    rmdir(dir);
    tg_history_free(h);
    tg_callback_free(logger);
    tg_callback_free(sched);
    tg_model_free(m);
    tg_scope_end(s);
}

static void early_stopping_restores_the_best(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    /* learning rate 0: the monitored value never improves after epoch 0 */
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.0), .loss = TG_LOSS_MSE);
    tg_callback *es = tg_early_stopping(.monitor = "loss", .patience = 2, .restore_best_weights = true);
    tg_history *h =
        tg_fit(m, xor_x(), xor_y(), .epochs = 20, .verbose = TG_VERBOSE_SILENT, .callbacks = &es, .n_callbacks = 1);
    CHECK(h && tg_history_epochs(h) == 3 && tg_early_stopping_stopped_epoch(es) == 2);
    tg_history_free(h);
    tg_callback_free(es);
    EXPECT_ERROR(tg_early_stopping(.monitor = "") == NULL, ".monitor must name a logged value");
    tg_model_free(m);
    tg_scope_end(s);
}

/* ReduceLROnPlateau, traced by hand from Keras's on_epoch_end: a rate of 1e-9 leaves the
 * float32 weights as they are, so the loss never improves after epoch 0. With patience 2
 * and cooldown 1 the rate halves at the ends of epochs 2, 4 and 6; each epoch logs the
 * rate it ran with. */
static void reduce_lr_on_plateau(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 1e-9), .loss = TG_LOSS_MSE);
    tg_callback *cb = tg_reduce_lr_on_plateau(.monitor = "loss", .factor = 0.5, .patience = 2, .cooldown = 1);
    tg_history *h =
        tg_fit(m, xor_x(), xor_y(), .epochs = 7, .verbose = TG_VERBOSE_SILENT, .callbacks = &cb, .n_callbacks = 1);
    int n = 0;
    const double *lr = tg_history_get(h, "learning_rate", &n);
    const double want[] = {1e-9, 1e-9, 1e-9, 5e-10, 5e-10, 2.5e-10, 2.5e-10};
    CHECK(lr && n == 7);
    for (int i = 0; lr && i < n && i < 7; i++)
        CHECK_NEAR(lr[i], want[i], 1e-15);
    CHECK_NEAR(tg_optimizer_current_lr(tg_model_optimizer(m)), 1.25e-10, 1e-15);
    tg_history_free(h);
    tg_callback_free(cb);
    /* min_lr floors the rate; a scheduled optimizer cannot be changed */
    tg_compile(m, .optimizer = tg_sgd(.learning_rate = 1e-9), .loss = TG_LOSS_MSE);
    cb = tg_reduce_lr_on_plateau(.monitor = "loss", .patience = 1, .min_lr = 4e-10);
    tg_history_free(
        tg_fit(m, xor_x(), xor_y(), .epochs = 5, .verbose = TG_VERBOSE_SILENT, .callbacks = &cb, .n_callbacks = 1));
    CHECK_NEAR(tg_optimizer_current_lr(tg_model_optimizer(m)), 4e-10, 1e-15);
    tg_callback_free(cb);
    tg_compile(m, .optimizer = tg_sgd(.schedule = tg_cosine_decay(.initial_learning_rate = 1e-9, .decay_steps = 100)),
               .loss = TG_LOSS_MSE);
    cb = tg_reduce_lr_on_plateau(.monitor = "loss", .patience = 1);
    CHECK(tg_fit(m, xor_x(), xor_y(), .epochs = 3, .verbose = TG_VERBOSE_SILENT, .callbacks = &cb, .n_callbacks = 1) ==
          NULL);
    CHECK_ERROR("hence its learning rate is not settable");
    tg_callback_free(cb);
    EXPECT_ERROR(tg_reduce_lr_on_plateau(.factor = 1.0) == NULL, "does not support a factor >= 1.0");
    tg_model_free(m);
    tg_scope_end(s);
}

/* fit ends as Keras's does with use_ema: each trainable variable takes its moving
 * average, the optimizer's "average" slot. */
static void fit_finalizes_ema(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05, .use_ema = true, .ema_momentum = 0.9),
               .loss = TG_LOSS_MSE);
    tg_history_free(tg_fit(m, xor_x(), xor_y(), .epochs = 3, .batch_size = 2, .verbose = TG_VERBOSE_SILENT));
    tg_optimizer *opt = tg_model_optimizer(m);
    int checked = 0;
    for (int i = 0; i < tg_optimizer_state_count(opt); i++) {
        tg_optimizer_slot slot;
        REQUIRE(tg_optimizer_state(opt, i, &slot) == 0);
        if (strcmp(slot.name, "average") != 0)
            continue;
        float got[4];
        REQUIRE(slot.count <= 4 && tg_copy_out(slot.variable, got, sizeof(float) * (size_t)slot.count) == 0);
        CHECK(memcmp(got, slot.data, sizeof(float) * (size_t)slot.count) == 0);
        checked++;
    }
    CHECK(checked == 2); /* kernel and bias */
    tg_model_free(m);
    tg_scope_end(s);
}

/* Keras's regularizers by hand: Dense(1) with W = [1, 2], b = -0.5, kernel L2(0.1) and bias
 * L1(0.2), on x = I, y = [1, 1]: predictions [0.5, 1.5], MSE 0.25, penalties 0.1 * 5 +
 * 0.2 * 0.5 = 0.6, loss 0.85. One SGD step (0.1): dW = [-0.5, 0.5] + 0.2 W, db = 0 +
 * 0.2 sign(b), so W = [1.03, 1.91] and b = -0.48. A frozen layer adds nothing. */
static void regularizers(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *d =
        tg_dense(.units = 1, .input_dim = 2, .kernel_regularizer = tg_l2(0.1), .bias_regularizer = tg_l1(0.2));
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), d);
    REQUIRE(m && tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE) == 0);
    int n;
    tg_tensor *const *v = tg_layer_variables(d, &n);
    CHECK(tg_assign(v[0], tg_from_f64(TG_SHAPE(2, 1), 1, 2)) == 0 &&
          tg_assign(v[1], tg_from_f64(TG_SHAPE(1), -0.5)) == 0);
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 2), 1, 0, 0, 1), *y = tg_from_f64(TG_SHAPE(2, 1), 1, 1);
    CHECK_VALUES(tg_model_regularization_loss(m), 1e-15, 0.6);
    tg_logs logs;
    REQUIRE(tg_evaluate(m, x, y, &logs) == 0);
    CHECK_NEAR(tg_logs_get(&logs, "loss"), 0.85, 1e-14);
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = 2, .verbose = TG_VERBOSE_SILENT);
    int e = 0;
    const double *loss = tg_history_get(h, "loss", &e);
    CHECK(loss && e == 1 && fabs(loss[0] - 0.85) < 1e-14);
    CHECK_VALUES(v[0], 1e-14, 1.03, 1.91);
    CHECK_VALUES(v[1], 1e-14, -0.48);
    tg_history_free(h);
    CHECK(tg_layer_set_trainable(d, false) == 0);
    tg_clear_error();
    CHECK(tg_model_regularization_loss(m) == NULL && !tg_has_error());
    tg_model_free(m);
    tg_scope_end(s);
}

/* A step whose loss turns NaN at its third batch. */
static int nan_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sw, tg_logs *logs, void *user)
{
    (void)m, (void)x, (void)y, (void)sw;
    int *calls = user;
    return tg_logs_set(logs, "loss", ++*calls == 3 ? NAN : 1.0);
}

static void terminate_on_nan(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE);
    tg_callback *cb = tg_terminate_on_nan();
    int calls = 0;
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .epochs = 5, .batch_size = 1, .train_step = nan_step, .user = &calls,
                           .verbose = TG_VERBOSE_SILENT, .callbacks = &cb, .n_callbacks = 1);
    CHECK(h && calls == 3); /* stopped after the batch that gave NaN */
    tg_history_free(h);
    tg_callback_free(cb);
    calls = 0;
    cb = tg_terminate_on_nan(.raise_error = true);
    CHECK(tg_fit(m, xor_x(), xor_y(), .epochs = 5, .batch_size = 1, .train_step = nan_step, .user = &calls,
                 .verbose = TG_VERBOSE_SILENT, .callbacks = &cb, .n_callbacks = 1) == NULL);
    CHECK_ERROR("NaN or Inf loss encountered at batch 2");
    tg_callback_free(cb);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- progress output ------------------------------------------------------------------------ */
static void progress_output(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .activation = TG_SIGMOID, .input_dim = 2));
    tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_BINARY_CROSSENTROPY, .metrics = TG_METRICS(TG_ACCURACY));
    char buf[4096] = "";
    FILE *f = tmpfile();
    tg_history_free(tg_fit(m, xor_x(), xor_y(), .epochs = 2, .batch_size = 2, .verbose = TG_VERBOSE_EPOCH, .out = f));
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strncmp(buf, "Epoch 1/2\n2/2 - 0s - loss: ", 27) == 0);
    CHECK(strstr(buf, " - accuracy: ") && strstr(buf, "/epoch - ") && strstr(buf, "/step\nEpoch 2/2\n"));
    f = tmpfile();
    tg_history_free(tg_fit(m, xor_x(), xor_y(), .epochs = 1, .batch_size = 2, .verbose = TG_VERBOSE_BAR, .out = f));
    rewind(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strstr(buf, "\r2/2 [==============================] - 0s ") != NULL);
    f = tmpfile();
    tg_history_free(tg_fit(m, xor_x(), xor_y(), .epochs = 1, .verbose = TG_VERBOSE_SILENT, .out = f));
    CHECK(ftell(f) == 0);
    fclose(f);
    tg_model_free(m);
    tg_scope_end(s);
}

/* No rows to evaluate: an error, not a loss of 0 (Keras: "Expected input data to be
 * non-empty"). fit on no rows is refused too. */
static void no_rows(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 1, .input_dim = 2));
    CHECK(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE) == 0);
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(0, 2)), *y = tg_zeros(TG_F32, TG_SHAPE(0, 1));
    tg_logs logs;
    tg_clear_error();
    EXPECT_ERROR(tg_evaluate(m, x, y, &logs) == -1, "test_train.c");
    CHECK_ERROR("tg_evaluate: `x` has no rows");
    tg_clear_error();
    EXPECT_ERROR(tg_fit(m, x, y, .verbose = TG_VERBOSE_SILENT) == NULL, "no rows");
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    RUN(xor_converges);
    RUN(linear_regression_converges);
    RUN(spiral_converges_with_validation);
    RUN(compile_refuses_a_loss_that_cannot_fit);
    RUN(bad_input_trains_nothing);
    RUN(same_seed_gives_identical_weights);
    RUN(frozen_layer_stays_put);
    RUN(zero_sample_weights_move_nothing);
    RUN(non_finite_weights_are_refused);
    RUN(custom_train_step_is_driven_by_fit);
    RUN(callbacks);
    RUN(early_stopping_restores_the_best);
    RUN(reduce_lr_on_plateau);
    RUN(terminate_on_nan);
    RUN(fit_finalizes_ema);
    RUN(regularizers);
    RUN(progress_output);
    RUN(no_rows);
    return TEST_SUMMARY();
}
