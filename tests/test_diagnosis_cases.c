/* The diagnosis of missing gradients on programs written the way users write them:
 * helpers, custom layers as structs with a call function, models, training loops,
 * custom train steps, values transformed in C between a copy-out and a rebuild.
 *
 * Each case checks the cause, the user's line behind it (recorded as __LINE__ + 1 on the
 * line before the culprit call) and the key words of the fix. The classes
 * follow the issue "Diagnosis on real mistakes": c1 copied out and rebuilt, c2 predict
 * or evaluate inside the tape, c3 an assign on the path, c4 a variable created on every
 * call, c5 non-trainable variables in the list, c6 unconnected and identically zero,
 * c7 the target computed after the tape ended, c8 one break per variable, c9 integer
 * ids into an embedding, e eager checking; s the two semantic fixes, a the grouped
 * apply_gradients report, b bad input.
 *
 * TG_DIAG_VERBOSE=1 in the environment prints every diagnosis the cases look at. */
#include <math.h>
#include <stdlib.h>

#include "check.h"

/* The cause codes of the new classes (values copied out of the tape, an assign on the
 * path, a re-created variable), as numbers until autodiff.h names them. */
enum { CAUSE_COPIED_OUT = 11, CAUSE_ASSIGNED = 12, CAUSE_RECREATED = 13 };

/* ---- helpers ---------------------------------------------------------------------------- */
static char warnings_all[32768];
static int n_warnings;
static int verbose;

static void on_warning(const char *msg, void *user)
{
    (void)user;
    n_warnings++;
    size_t used = strlen(warnings_all);
    if (used < sizeof warnings_all - 1)
        snprintf(warnings_all + used, sizeof warnings_all - used, "%s\n", msg);
}

/* Collects warnings instead of printing them. */
static void collect_warnings(void)
{
    n_warnings = 0;
    warnings_all[0] = 0;
    tg_set_warning_handler(on_warning, NULL);
}

static void restore_warnings(void)
{
    tg_set_check(0);
    tg_set_warning_handler(NULL, NULL);
}

/* `text` names `line` as ":<line>" not followed by another digit. */
static bool names_line(const char *text, int line)
{
    char needle[24];
    snprintf(needle, sizeof needle, ":%d", line);
    size_t n = strlen(needle);
    for (const char *p = text ? strstr(text, needle) : NULL; p; p = strstr(p + 1, needle))
        if (p[n] < '0' || p[n] > '9')
            return true;
    return false;
}

static bool in_this_file(const char *file) { return file && strstr(file, "test_diagnosis_cases.c") != NULL; }

#define ANY_LINE     0 /* the exact line is not fixed: nonzero and in this file */
#define WORDS(...)   ((const char *const[]){__VA_ARGS__, NULL})
#define NONE_OF(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_WORDS     ((const char *const[]){NULL})

/* Checks a diagnosis: its cause, its line (ANY_LINE: nonzero and in this file), words it
 * must contain (an entry "a|b" is satisfied by either) and words it must not. */
static void check_diagnosis_(int at, const char *fn, const tg_diagnosis *d, int cause, int line,
                             const char *const *words, const char *const *banned)
{
    int before = check_failures_in_test;
    if ((int)d->cause != cause) {
        printf("  FAIL %s:%d (%s): cause %s (%d), expected %s (%d)\n", __FILE__, at, fn, tg_cause_name(d->cause),
               (int)d->cause, tg_cause_name((tg_cause)cause), cause);
        check_failures_in_test++;
    }
    if (line == ANY_LINE ? (d->where.line == 0 || !in_this_file(d->where.file)) : d->where.line != line) {
        if (line == ANY_LINE)
            printf("  FAIL %s:%d (%s): where %s:%d, expected a line of this file\n", __FILE__, at, fn,
                   d->where.file ? d->where.file : "(null)", d->where.line);
        else
            printf("  FAIL %s:%d (%s): where line %d, expected %d\n", __FILE__, at, fn, d->where.line, line);
        check_failures_in_test++;
    }
    for (int i = 0; words && words[i]; i++) {
        char alt[256];
        snprintf(alt, sizeof alt, "%s", words[i]);
        bool found = false;
        for (char *save = NULL, *w = strtok_r(alt, "|", &save); w && !found; w = strtok_r(NULL, "|", &save))
            found = strstr(d->message, w) != NULL;
        if (!found) {
            printf("  FAIL %s:%d (%s): message lacks \"%s\"\n", __FILE__, at, fn, words[i]);
            check_failures_in_test++;
        }
    }
    for (int i = 0; banned && banned[i]; i++)
        if (strstr(d->message, banned[i])) {
            printf("  FAIL %s:%d (%s): message contains \"%s\"\n", __FILE__, at, fn, banned[i]);
            check_failures_in_test++;
        }
    if (verbose || check_failures_in_test != before)
        printf("    got [%s] %s:%d op=%s: %s\n", tg_cause_name(d->cause), d->where.file ? d->where.file : "(null)",
               d->where.line, d->op ? d->op : "-", d->message);
}
#define CHECK_DIAG(d, cause, line, words) check_diagnosis_(__LINE__, __func__, d, cause, line, words, NULL)
#define CHECK_DIAG_NOT(d, cause, line, words, banned) \
    check_diagnosis_(__LINE__, __func__, d, cause, line, words, banned)

/* tg_explain into *d; a failed call leaves an empty diagnosis (and fails the case). */
#define EXPLAIN(t, y, x, d)                 \
    do {                                    \
        memset((d), 0, sizeof *(d));        \
        CHECK(tg_explain(t, y, x, d) == 0); \
    } while (0)
/* The diagnosis kept by the last gradient call that left `v` without a gradient. */
#define MISSING(v, d)                         \
    do {                                      \
        memset((d), 0, sizeof *(d));          \
        CHECK(tg_explain_missing(v, d) == 0); \
    } while (0)

static void report_warnings(const char *fn)
{
    if (verbose || n_warnings)
        printf("    %s: %d warning(s)%s%s", fn, n_warnings, n_warnings ? ":\n" : "\n", warnings_all);
}

/* Copies a model's variable list (the model's array changes when the model does). */
static int copy_vars(tg_tensor *const *from, int n, tg_tensor **to, int max)
{
    for (int i = 0; i < n && i < max; i++)
        to[i] = from[i];
    return n < max ? n : max;
}

static tg_tensor *find_var(tg_tensor *const *vars, int n, const char *part)
{
    for (int i = 0; i < n; i++)
        if (strstr(tg_variable_name(vars[i]), part))
            return vars[i];
    return NULL;
}

/* Data most cases share: 4 examples of 3 features, one target each. */
static tg_tensor *batch_x(void)
{
    return tg_from_f32(TG_SHAPE(4, 3), 0.5, 1.0, -0.5, 1.5, -1.0, 0.25, 0.0, 2.0, 1.0, -0.75, 0.5, 1.25);
}
static tg_tensor *batch_y(void) { return tg_from_f32(TG_SHAPE(4, 1), 1.0, 0.0, 2.0, -1.0); }
static tg_model *small_regressor(uint64_t seed)
{
    return tg_sequential_with(tg_sequential_options(.seed = seed),
                              tg_dense(.units = 5, .activation = TG_TANH, .input_dim = 3), tg_dense(.units = 1));
}

/* =========================================================================================
 * Class 1: values copied out of the tape and a tensor rebuilt from them.
 * ========================================================================================= */

/* The C form of `loss = np.mean((y - model(x).numpy()) ** 2) * 0.5`: the predictions are
 * copied out, squared errors computed in C, a tensor rebuilt, a literal constant applied. */
static void c1_numpy_style_loss_on_copied_predictions(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(3);
    tg_tensor *x = batch_x();
    const float targets[4] = {1.0f, 0.0f, 2.0f, -1.0f};
    int n;
    tg_tensor *vars[4];
    {
        tg_tensor *const *listed = tg_model_trainable_variables(model, &n);
        n = copy_vars(listed, n, vars, 4);
    }

    tg_tape *tape = tg_tape_begin();
    tg_tensor *y_true = tg_tensor_from(TG_F32, TG_SHAPE(4, 1), targets); /* labels made inside the tape */
    tg_tensor *pred = tg_model_call(model, x, .training = true);
    float p[4];
    int line = __LINE__ + 1;
    tg_copy_out(pred, p, sizeof p);
    for (int i = 0; i < 4; i++)
        p[i] = (p[i] - targets[i]) * (p[i] - targets[i]);
    tg_tensor *sq = tg_tensor_from(TG_F32, TG_SHAPE(4, 1), p);
    tg_tensor *loss = tg_mul(tg_mean(tg_add(sq, tg_mul(y_true, tg_scalar(0.0)))), tg_scalar(0.5));
    tg_tape_end(tape);

    tg_tensor *grads[4] = {0};
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads) == 0);
    CHECK(grads[0] == NULL && grads[n - 1] == NULL);
    tg_diagnosis d;
    EXPLAIN(tape, loss, vars[0], &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_copy_out", "constant"));
    EXPLAIN(tape, loss, vars[n - 1], &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_copy_out", "constant"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* `loss = float(mse)`, then the value is transformed (a square root, a scale) and put
 * back with tg_scalar, and the loss is printed with tg_item after the rebuild. */
static void c1_float_of_loss_then_rescaled(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.2, -0.4, 0.1), .name = "weights");
    tg_tensor *b = tg_variable(tg_scalar(0.3), .name = "intercept");
    tg_tensor *x = batch_x(), *y = batch_y();

    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *yhat = tg_add(tg_matmul(x, w), b);
    tg_tensor *mse = tg_mean(tg_square(tg_sub(yhat, y)));
    int line = __LINE__ + 1;
    double value = tg_item(mse);
    double rmse = sqrt(value) * 100.0 / 100.0;
    tg_tensor *loss = tg_scalar(rmse);
    tg_tensor *l2 = tg_scalar(1e-3); /* a literal in the formula: never blamed */
    loss = tg_add(loss, tg_mul(l2, tg_scalar(rmse * rmse)));
    char shown[64];
    snprintf(shown, sizeof shown, "loss %.4f", tg_item(loss)); /* printing inside the block */
    tg_tape_end(tape);

    CHECK(tg_gradient(tape, loss, w) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, w, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_item", "constant"));
    EXPLAIN(tape, loss, b, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_item", "constant"));
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_scope_end(s);
}

/* A helper computes the loss "in numpy": it copies the logits out as doubles, does a
 * softmax cross-entropy in C and returns a tensor built from the result. One-hot labels
 * are made inside the tape after the copy-out. */
static int helper_copy_line;
static tg_tensor *cross_entropy_in_c(const tg_tensor *logits, const int32_t *labels, int rows, int classes)
{
    double v[4 * 3];
    helper_copy_line = __LINE__ + 1;
    tg_copy_out_f64(logits, v, (int64_t)rows * classes);
    float per_row[4];
    for (int r = 0; r < rows; r++) {
        double mx = v[r * classes], sum = 0;
        for (int c = 1; c < classes; c++)
            mx = fmax(mx, v[r * classes + c]);
        for (int c = 0; c < classes; c++)
            sum += exp(v[r * classes + c] - mx);
        per_row[r] = (float)(mx + log(sum) - v[r * classes + labels[r]]);
    }
    return tg_tensor_from(TG_F32, TG_SHAPE(4), per_row);
}

static void c1_helper_copies_out_f64(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *clf = tg_sequential_with(tg_sequential_options(.seed = 5), tg_dense(.units = 3, .input_dim = 3));
    const int32_t labels[4] = {0, 2, 1, 2};
    tg_tensor *x = batch_x();
    int n;
    tg_tensor *const *params = tg_model_trainable_variables(clf, &n);
    tg_tensor *kernel = params[0];

    tg_tape *tape = tg_tape_begin();
    tg_tensor *logits = tg_model_call(clf, x, .training = true);
    tg_tensor *per_example = cross_entropy_in_c(logits, labels, 4, 3);
    tg_tensor *onehot = tg_one_hot(tg_tensor_from(TG_I32, TG_SHAPE(4), labels), 3);
    tg_tensor *loss = tg_add(tg_mean(per_example), tg_mul(tg_sum(onehot), tg_scalar(0.0)));
    double shown = tg_item(loss); /* print(loss.numpy()) inside the block */
    (void)shown;
    tg_tape_end(tape);

    CHECK(tg_gradient(tape, loss, kernel) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, kernel, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, helper_copy_line, WORDS("tg_copy_out_f64", "constant"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(clf);
}

/* Two copy-outs before the rebuild: the input's mean (for a log line) and then the
 * predictions. The rebuilt loss comes from the predictions: that copy-out is named. */
static void c1_two_copy_outs_the_one_on_the_path(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.5, 0.5, -0.5), .name = "w");
    tg_tensor *x = batch_x();
    const float y[4] = {1, 0, 2, -1};

    tg_tape *tape = tg_tape_begin();
    double input_mean = tg_item(tg_mean(x)); /* logging, not on the path */
    tg_tensor *out = tg_sigmoid(tg_matmul(x, w));
    float o[4];
    int line = __LINE__ + 1;
    tg_copy_out(out, o, sizeof o);
    float err[4];
    for (int i = 0; i < 4; i++)
        err[i] = fabsf(o[i] - y[i]) + (float)(input_mean * 0.0);
    tg_tensor *loss = tg_mean(tg_tensor_from(TG_F32, TG_SHAPE(4), err));
    tg_tape_end(tape);

    CHECK(tg_gradient(tape, loss, w) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, w, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_copy_out", "constant"));
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* tensorflow#30190: each sample's loss taken out with float(loss) in a loop, a distance
 * between their distribution and a normal computed in Python, the result converted back
 * with tf.convert_to_tensor. Here: tg_item on each row, the distance in C, tg_scalar. */
static tg_tensor *distribution_distance_loss(tg_model *model, const tg_tensor *x, const tg_tensor *labels,
                                             int *item_line)
{
    tg_tensor *logits = tg_model_call(model, x, .training = true);
    tg_tensor *per_sample = tg_sparse_categorical_crossentropy(labels, logits, .from_logits = true);
    double losses[4];
    for (int i = 0; i < 4; i++) {
        tg_tensor *one = tg_slice(per_sample, TG_SHAPE(i), TG_SHAPE(1));
        *item_line = __LINE__ + 1;
        losses[i] = tg_item(one);
    }
    for (int i = 1; i < 4; i++) /* sort the sample */
        for (int j = i; j > 0 && losses[j - 1] > losses[j]; j--) {
            double t = losses[j];
            losses[j] = losses[j - 1];
            losses[j - 1] = t;
        }
    const double normal_quantiles[4] = {-0.674, -0.319, 0.319, 0.674};
    double mean = (losses[0] + losses[1] + losses[2] + losses[3]) / 4, dist = 0;
    for (int i = 0; i < 4; i++)
        dist += fabs(losses[i] - mean - normal_quantiles[i]);
    return tg_scalar(dist / 4);
}

static void c1_per_sample_float_losses_in_a_loop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *iris =
        tg_sequential_with(tg_sequential_options(.seed = 8),
                           tg_dense(.units = 10, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 3));
    tg_tensor *features = batch_x();
    tg_tensor *labels = tg_from_i32(TG_SHAPE(4), 0, 2, 1, 1);
    int n;
    tg_tensor *const *trainable = tg_model_trainable_variables(iris, &n);
    tg_tensor *vars[4];
    n = copy_vars(trainable, n, vars, 4);
    int line = 0;
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss_value = distribution_distance_loss(iris, features, labels, &line);
    tg_tape_end(tape);
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = &loss_value, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    CHECK(grads[0] == NULL && grads[3] == NULL);
    tg_diagnosis d;
    EXPLAIN(tape, loss_value, vars[2], &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_item", "constant"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(iris);
}

/* tensorflow#31919: a GAN whose generator output goes through `.numpy()` to compute its
 * moments before the discriminator sees them. The discriminator still trains; the
 * generator's weights get nothing, and the copy-out is the line to change. */
static void c1_gan_moments_computed_in_c(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *generator = tg_sequential_with(tg_sequential_options(.seed = 13, .name = "generator"),
                                             tg_dense(.units = 4, .activation = TG_TANH, .input_dim = 2));
    tg_model *discriminator = tg_sequential_with(tg_sequential_options(.seed = 14, .name = "discriminator"),
                                                 tg_dense(.units = 1, .activation = TG_SIGMOID, .input_dim = 4));
    tg_tensor *g_kernel = tg_model_trainable_variables(generator, NULL)[0];
    tg_tensor *d_kernel = tg_model_trainable_variables(discriminator, NULL)[0];
    tg_tensor *gen_input = tg_from_f32(TG_SHAPE(4, 2), 0.1, 0.9, -0.3, 0.4, 0.7, -0.8, 0.2, 0.2);
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *fake = tg_model_call(generator, gen_input, .training = true);
    float v[16];
    int line = __LINE__ + 1;
    tg_copy_out(fake, v, sizeof v);
    float moments[4] = {0}; /* mean, std, skew, kurtosis of all values */
    for (int i = 0; i < 16; i++)
        moments[0] += v[i] / 16;
    for (int i = 0; i < 16; i++) {
        float c = v[i] - moments[0];
        moments[1] += c * c / 16;
        moments[2] += c * c * c / 16;
        moments[3] += c * c * c * c / 16;
    }
    moments[1] = sqrtf(moments[1]);
    moments[2] /= moments[1] * moments[1] * moments[1] + 1e-6f;
    moments[3] /= moments[1] * moments[1] * moments[1] * moments[1] + 1e-6f;
    tg_tensor *decision =
        tg_model_call(discriminator, tg_tensor_from(TG_F32, TG_SHAPE(1, 4), moments), .training = true);
    tg_tensor *g_error = tg_mean(tg_binary_crossentropy(tg_ones(TG_F32, TG_SHAPE(1, 1)), decision));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, g_error, d_kernel) != NULL);
    CHECK(tg_gradient(tape, g_error, g_kernel) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, g_error, g_kernel, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_copy_out", "constant"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(generator);
    tg_model_free(discriminator);
}

/* A custom train step given to tg_fit computes the loss from values copied out of
 * y_pred (tensorflow#50111). fit stops with "No gradients provided"; each variable's
 * kept diagnosis names the copy-out inside the step. */
static int step_copy_line;
static int numpy_loss_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sample_weight,
                           tg_logs *logs, void *user)
{
    (void)sample_weight, (void)user;
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y_pred = tg_model_call(m, x, .training = true);
    int64_t rows = tg_dim(y_pred, 0);
    double p[64], t[64];
    step_copy_line = __LINE__ + 1;
    tg_copy_out_f64(y_pred, p, rows);
    tg_copy_out_f64(y, t, rows);
    double total = 0;
    for (int64_t i = 0; i < rows; i++)
        total += fabs(p[i] - t[i]);
    tg_tensor *loss = tg_scalar(total / (double)rows);
    tg_tape_end(tape);
    tg_tensor *grads[8] = {0};
    int rc = tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_tape_free(tape);
    if (rc == 0)
        rc = tg_apply_gradients(tg_model_optimizer(m), grads, vars, n);
    tg_logs_set(logs, "loss", total / (double)rows);
    return rc;
}

static void c1_custom_train_step_in_fit(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(9);
    tg_compile(model, .optimizer = tg_sgd(), .loss = TG_LOSS_MAE);
    tg_tensor *kernel = tg_model_trainable_variables(model, NULL)[0];
    tg_history *h = tg_fit(model, batch_x(), batch_y(), .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT,
                           .train_step = numpy_loss_step);
    EXPECT_ERROR(h == NULL, "No gradients provided for any variable");
    if (h)
        tg_history_free(h);
    tg_diagnosis d;
    MISSING(kernel, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, step_copy_line, WORDS("tg_copy_out_f64", "constant"));
    tg_clear_error();
    tg_scope_end(s);
    tg_model_free(model);
    restore_warnings();
}

/* =========================================================================================
 * Class 2: tg_predict or tg_evaluate inside the tape.
 * ========================================================================================= */

static void c2_predict_inside_tape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(11);
    tg_optimizer *opt = tg_adam(.learning_rate = 0.01);
    tg_tensor *x = batch_x(), *y = batch_y();
    int n;
    tg_tensor *vars[4];
    {
        tg_tensor *const *listed = tg_model_trainable_variables(model, &n);
        n = copy_vars(listed, n, vars, 4);
    }

    tg_tape *tape = tg_tape_begin();
    int line = __LINE__ + 1;
    tg_tensor *outputs = tg_predict(model, x, .batch_size = 2);
    tg_tensor *loss = tg_mean(tg_mean_squared_error(y, outputs));
    tg_tape_end(tape);
    tg_tensor *grads[4] = {0};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_diagnosis d;
    EXPLAIN(tape, loss, vars[0], &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_predict", "tg_model_call"));
    EXPECT_ERROR(tg_apply_gradients(opt, grads, vars, n) == -1, "No gradients provided");
    tg_clear_error();
    tg_tape_free(tape);
    tg_optimizer_free(opt);
    tg_scope_end(s);
    tg_model_free(model);
}

/* The loss read from evaluate's logs and put back into a tensor. */
static void c2_evaluate_inside_tape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(12);
    tg_compile(model, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE);
    tg_tensor *x = batch_x(), *y = batch_y();
    tg_tensor *bias = tg_model_trainable_variables(model, NULL)[1];

    tg_tape *tape = tg_tape_begin();
    tg_logs logs = {0};
    int line = __LINE__ + 1;
    tg_evaluate(model, x, y, &logs, .batch_size = 4);
    tg_tensor *val_loss = tg_scalar(tg_logs_get(&logs, "loss"));
    tg_tensor *objective = tg_mul(val_loss, tg_scalar(2.0));
    tg_tape_end(tape);

    CHECK(tg_gradient(tape, objective, bias) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, objective, bias, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, line, WORDS("tg_evaluate", "tg_model_call"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* A custom train step that asks the model for its predictions with tg_predict. */
static int predict_step_line;
static int predict_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sample_weight,
                        tg_logs *logs, void *user)
{
    (void)user;
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_tape *tape = tg_tape_begin();
    predict_step_line = __LINE__ + 1;
    tg_tensor *y_pred = tg_predict(m, x);
    tg_tensor *loss = tg_model_compute_loss(m, y, y_pred, sample_weight);
    tg_tape_end(tape);
    tg_tensor *grads[8] = {0};
    int rc = tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_tape_free(tape);
    if (rc == 0)
        rc = tg_apply_gradients(tg_model_optimizer(m), grads, vars, n);
    if (rc == 0)
        tg_model_metric_logs(m, logs);
    return rc;
}

static void c2_predict_in_custom_train_step(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_model *model = tg_sequential(tg_dense(.units = 4, .activation = TG_RELU, .input_dim = 3),
                                    tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_compile(model, .optimizer = tg_rmsprop(), .loss = TG_LOSS_BINARY_CROSSENTROPY);
    tg_tensor *y01 = tg_from_f32(TG_SHAPE(4, 1), 1, 0, 1, 0);
    tg_tensor *last_bias = tg_model_trainable_variables(model, NULL)[3];
    tg_history *h = tg_fit(model, batch_x(), y01, .epochs = 2, .batch_size = 2, .verbose = TG_VERBOSE_SILENT,
                           .train_step = predict_step);
    CHECK(h == NULL);
    if (h)
        tg_history_free(h);
    tg_diagnosis d;
    MISSING(last_bias, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, predict_step_line, WORDS("tg_predict", "tg_model_call"));
    tg_clear_error();
    tg_scope_end(s);
    tg_model_free(model);
    restore_warnings();
}

/* =========================================================================================
 * Class 3: a recorded value assigned into a variable and read back.
 * ========================================================================================= */

/* A recurrent-style cell keeps its state in a non-trainable variable (tensorflow#17735:
 * CNN outputs assigned into a custom layer's variables, then read by it). */
typedef struct memory_cell {
    tg_tensor *kernel;
    tg_tensor *memory;
} memory_cell;
static int cell_assign_line;
static tg_tensor *memory_cell_call(memory_cell *cell, const tg_tensor *x)
{
    tg_tensor *h = tg_tanh(tg_matmul(x, cell->kernel));
    cell_assign_line = __LINE__ + 1;
    tg_assign(cell->memory, h);
    return tg_add(tg_identity(cell->memory), x);
}

static void c3_memory_cell_layer_assigns_state(void)
{
    tg_scope *s = tg_scope_begin();
    memory_cell cell = {
        .kernel = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 3), 0.1), .name = "cell/kernel"),
        .memory = tg_variable(tg_zeros(TG_F32, TG_SHAPE(4, 3)), .name = "cell/memory", .trainable = false),
    };
    tg_tensor *x = batch_x();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *out = memory_cell_call(&cell, x);
    tg_tensor *loss = tg_mean(tg_square(out));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, cell.kernel) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, cell.kernel, &d);
    CHECK_DIAG(&d, CAUSE_ASSIGNED, cell_assign_line, WORDS("tg_assign", "cell/memory"));
    tg_tape_free(tape);
    tg_variable_free(cell.kernel);
    tg_variable_free(cell.memory);
    tg_scope_end(s);
}

/* tensorflow#54532: `self.w.assign(x @ k)` in the forward pass, then the output reads w.
 * w itself (trainable) gets its gradient; k's value reaches w only through the assign. */
static void c3_assign_recorded_value_into_trainable_variable(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *k = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 1, 2, 3), .name = "k");
    tg_tensor *w = tg_variable(tg_zeros(TG_F32, TG_SHAPE(4, 1)), .name = "w");
    tg_tensor *x = batch_x(), *y = batch_y();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *projected = tg_matmul(x, k);
    int line = __LINE__ + 1;
    tg_assign(w, projected);
    tg_tensor *output = tg_mul(w, tg_scalar(2.0));
    tg_tensor *loss = tg_mean(tg_square(tg_sub(output, y)));
    tg_tape_end(tape);
    tg_tensor *g[2] = {0};
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = (tg_tensor *[]){k, w}, .n_sources = 2,
                       .out = g) == 0);
    CHECK(g[0] == NULL && g[1] != NULL);
    tg_diagnosis d;
    EXPLAIN(tape, loss, k, &d);
    CHECK_DIAG(&d, CAUSE_ASSIGNED, line, WORDS("tg_assign", "'w'"));
    tg_tape_free(tape);
    tg_variable_free(k);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* A step function normalises the loss by a running total kept with tg_assign_add. */
static int accumulate_line;
static tg_tensor *normalised_step_loss(tg_tensor *w, tg_tensor *running, const tg_tensor *x, const tg_tensor *y)
{
    tg_tensor *err = tg_sub(tg_matmul(x, w), y);
    accumulate_line = __LINE__ + 1;
    tg_assign_add(running, tg_sum(tg_square(err)));
    return tg_mul(running, tg_scalar(0.25));
}

static void c3_running_total_assign_add_in_step(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.1, 0.2, 0.3), .name = "linear/w");
    tg_tensor *running = tg_variable(tg_scalar(0.0), .name = "running_sse", .trainable = false);
    tg_optimizer *sgd = tg_sgd(.learning_rate = 0.01);
    tg_tensor *x = batch_x(), *y = batch_y();
    for (int step = 0; step < 2; step++) {
        tg_scope *it = tg_scope_begin();
        tg_tape *tape = tg_tape_begin();
        tg_tensor *loss = normalised_step_loss(w, running, x, y);
        tg_tape_end(tape);
        tg_tensor *grad = tg_gradient(tape, loss, w);
        CHECK(grad == NULL);
        if (step == 1) {
            tg_diagnosis d;
            EXPLAIN(tape, loss, w, &d);
            CHECK_DIAG(&d, CAUSE_ASSIGNED, accumulate_line, WORDS("tg_assign", "running_sse"));
        }
        tg_apply_gradients(sgd, &grad, &w, 1);
        tg_clear_error();
        tg_tape_free(tape);
        tg_scope_end(it);
    }
    tg_optimizer_free(sgd);
    tg_variable_free(w);
    tg_variable_free(running);
    tg_scope_end(s);
}

/* =========================================================================================
 * Class 4: a variable created anew on every call.
 * ========================================================================================= */

typedef struct lazy_dense {
    int64_t units;
    tg_tensor *kernel;
    tg_tensor *made[8];
    int n_made;
} lazy_dense;
static int lazy_kernel_line;
static tg_tensor *lazy_dense_call(lazy_dense *layer, const tg_tensor *x)
{
    tg_tensor *init = tg_fill(TG_F32, TG_SHAPE(tg_dim(x, -1), layer->units), 0.1);
    lazy_kernel_line = __LINE__ + 1;
    layer->kernel = tg_variable(init, .name = "lazy_dense/kernel");
    layer->made[layer->n_made++] = layer->kernel;
    return tg_matmul(x, layer->kernel);
}

/* tensorflow#32729 (a NoisyDense that made its weights in call): the layer was "built"
 * once, the trainer kept those weights, and every later call read new ones. */
static void c4_layer_call_creates_its_kernel(void)
{
    tg_scope *s = tg_scope_begin();
    lazy_dense layer = {.units = 2};
    tg_tensor *x = batch_x();
    lazy_dense_call(&layer, x); /* "build" it once */
    tg_tensor *trainable[1] = {layer.kernel};
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss = tg_mean(tg_square(lazy_dense_call(&layer, x)));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, trainable[0]) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, trainable[0], &d);
    CHECK_DIAG(&d, CAUSE_RECREATED, lazy_kernel_line, WORDS("lazy_dense/kernel", "create it once|every call"));
    tg_tape_free(tape);
    for (int i = 0; i < layer.n_made; i++)
        tg_variable_free(layer.made[i]);
    tg_scope_end(s);
}

/* A training loop whose step makes its bias with tg_variable each time; the parameter
 * list was collected in the first step. */
static int step_bias_line;
static tg_tensor *fresh_bias_loss(tg_tensor *w, const tg_tensor *x, const tg_tensor *y, tg_tensor **bias_out)
{
    step_bias_line = __LINE__ + 1;
    tg_tensor *bias = tg_variable(tg_zeros(TG_F32, TG_SHAPE(1)), .name = "bias");
    *bias_out = bias;
    return tg_mean(tg_square(tg_sub(tg_add(tg_matmul(x, w), bias), y)));
}

static void c4_step_function_creates_bias_each_step(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.3, -0.2, 0.1), .name = "w");
    tg_tensor *x = batch_x(), *y = batch_y();
    tg_tensor *params[2] = {w, NULL}, *made[3] = {0};
    for (int step = 0; step < 3; step++) {
        tg_scope *it = tg_scope_begin();
        tg_tape *tape = tg_tape_begin();
        tg_tensor *loss = fresh_bias_loss(w, x, y, &made[step]);
        tg_tape_end(tape);
        if (step == 0)
            params[1] = made[0];
        tg_tensor *g[2] = {0};
        tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = params, .n_sources = 2, .out = g);
        if (step == 0)
            CHECK(g[0] && g[1]);
        if (step == 2) {
            CHECK(g[0] && !g[1]);
            tg_diagnosis d;
            EXPLAIN(tape, loss, params[1], &d);
            CHECK_DIAG(&d, CAUSE_RECREATED, step_bias_line, WORDS("'bias'", "create it once|every call"));
        }
        tg_tape_free(tape);
        tg_scope_end(it);
    }
    for (int i = 0; i < 3; i++)
        if (made[i])
            tg_variable_free(made[i]);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* A helper `dense_forward` creates its weights with an initializer on every call; the
 * loop applies the gradients to the first ones. */
static int helper_weights_line;
static tg_tensor *dense_forward(const tg_tensor *x, int64_t units, tg_tensor **made, int *n_made)
{
    tg_tensor *init = tg_initialize(tg_init_glorot_uniform(), TG_F32, TG_SHAPE(tg_dim(x, 1), units), 7);
    helper_weights_line = __LINE__ + 1; /* one line: compilers disagree on __LINE__ in a call of several */
    tg_tensor *kernel = tg_variable(init, .name = "hidden/kernel");
    made[(*n_made)++] = kernel;
    return tg_relu(tg_matmul(x, kernel));
}

static void c4_helper_dense_forward_creates_weights(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_tensor *made[4] = {0};
    int n_made = 0;
    tg_tensor *x = batch_x(), *y = batch_y();
    dense_forward(x, 1, made, &n_made);
    tg_tensor *train_vars[1] = {made[0]};
    tg_optimizer *opt = tg_adam();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss = tg_mean(tg_square(tg_sub(dense_forward(x, 1, made, &n_made), y)));
    tg_tape_end(tape);
    tg_tensor *grads[1] = {0};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = train_vars, .n_sources = 1, .out = grads);
    tg_tape_free(tape);
    CHECK(tg_apply_gradients(opt, grads, train_vars, 1) == -1);
    tg_clear_error();
    tg_diagnosis d;
    MISSING(train_vars[0], &d);
    CHECK_DIAG(&d, CAUSE_RECREATED, helper_weights_line, WORDS("hidden/kernel", "create it once|every call"));
    tg_optimizer_free(opt);
    for (int i = 0; i < n_made; i++)
        tg_variable_free(made[i]);
    tg_scope_end(s);
    restore_warnings();
}

/* =========================================================================================
 * Class 5: non-trainable variables in the list.
 * ========================================================================================= */

static void c5_batchnorm_moving_statistics_in_the_list(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 21), tg_dense(.units = 4, .input_dim = 3),
                                         tg_batch_normalization(), tg_dense(.units = 1));
    int n;
    tg_tensor *all[12];
    {
        tg_tensor *const *listed = tg_model_variables(model, &n);
        n = copy_vars(listed, n, all, 12);
    }
    tg_tensor *moving_mean = find_var(all, n, "moving_mean");
    tg_tensor *gamma = find_var(all, n, "gamma");
    CHECK(moving_mean && gamma);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss = tg_mean(tg_mean_squared_error(batch_y(), tg_model_call(model, batch_x(), .training = true)));
    tg_tape_end(tape);
    tg_tensor *grads[12] = {0};
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = all, .n_sources = n, .out = grads) == 0);
    for (int i = 0; i < n; i++)
        if (all[i] == gamma)
            CHECK(grads[i] != NULL);
    tg_diagnosis d;
    if (moving_mean) {
        EXPLAIN(tape, loss, moving_mean, &d);
        CHECK_DIAG_NOT(&d, TG_CAUSE_NOT_WATCHED, ANY_LINE, WORDS("not trainable", "tg_model_trainable_variables"),
                       NONE_OF("owns this variable"));
    }
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
    restore_warnings();
}

/* Transfer learning: the first layer frozen, then every variable passed to the loop. */
static void c5_frozen_layer_in_full_variable_list(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_model *base =
        tg_sequential_with(tg_sequential_options(.seed = 4),
                           tg_dense(.units = 6, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 1));
    tg_layer_set_trainable(tg_model_layer(base, 0), false);
    int n;
    tg_tensor *everything[4];
    {
        tg_tensor *const *listed = tg_model_variables(base, &n);
        n = copy_vars(listed, n, everything, 4);
    }
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.05);
    for (int epoch = 0; epoch < 2; epoch++) {
        tg_scope *it = tg_scope_begin();
        tg_tape *tape = tg_tape_begin();
        tg_tensor *pred = tg_model_call(base, batch_x(), .training = true);
        tg_tensor *loss = tg_mean(tg_huber(batch_y(), pred));
        tg_tape_end(tape);
        tg_tensor *grads[4] = {0};
        tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = everything, .n_sources = n, .out = grads);
        tg_tape_free(tape);
        CHECK(grads[0] == NULL && grads[2] != NULL);
        CHECK(tg_apply_gradients(opt, grads, everything, n) == 0);
        tg_scope_end(it);
    }
    CHECK(strstr(warnings_all, "Gradients do not exist for variables") != NULL);
    tg_diagnosis d;
    MISSING(everything[0], &d);
    CHECK_DIAG_NOT(&d, TG_CAUSE_NOT_WATCHED, ANY_LINE, WORDS("not trainable", "tg_model_trainable_variables"),
                   NONE_OF("owns this variable"));
    tg_optimizer_free(opt);
    tg_scope_end(s);
    tg_model_free(base);
    restore_warnings();
}

/* A hand-written model with a temperature variable made non-trainable on purpose, still
 * listed with the weights. */
static void c5_non_trainable_temperature_variable(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 2), 0.25), .name = "logits/w");
    tg_tensor *temperature = tg_variable(tg_scalar(2.0), .name = "temperature", .trainable = false);
    tg_tensor *labels = tg_from_i32(TG_SHAPE(4), 0, 1, 1, 0);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *logits = tg_div(tg_matmul(batch_x(), w), temperature);
    tg_tensor *loss = tg_mean(tg_sparse_softmax_cross_entropy_with_logits(labels, logits));
    tg_tape_end(tape);
    tg_tensor *g[2] = {0};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = (tg_tensor *[]){w, temperature}, .n_sources = 2,
                 .out = g);
    CHECK(g[0] != NULL && g[1] == NULL);
    tg_diagnosis d;
    EXPLAIN(tape, loss, temperature, &d);
    CHECK_DIAG_NOT(&d, TG_CAUSE_NOT_WATCHED, ANY_LINE, WORDS("not trainable"), NONE_OF("owns this variable"));
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_variable_free(temperature);
    tg_scope_end(s);
}

/* =========================================================================================
 * Class 6: unconnected, and identically zero.
 * ========================================================================================= */

/* A block whose output is overwritten by a line meant to add a skip connection. */
typedef struct skip_block {
    tg_tensor *kernel;
} skip_block;
static int block_dense_line, overwrite_line;
static tg_tensor *skip_block_call(const skip_block *block, const tg_tensor *x)
{
    block_dense_line = __LINE__ + 1;
    tg_tensor *out = tg_relu(tg_matmul(x, block->kernel));
    overwrite_line = __LINE__ + 1;
    out = tg_add(x, tg_relu(x)); /* meant tg_add(x, out) */
    return out;
}

static void c6_layer_output_overwritten(void)
{
    tg_scope *s = tg_scope_begin();
    skip_block block = {tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 3), 0.2), .name = "block/kernel")};
    tg_tensor *readout = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 1), 0.5), .name = "readout");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *h = skip_block_call(&block, batch_x());
    tg_tensor *loss = tg_mean(tg_square(tg_sub(tg_matmul(h, readout), batch_y())));
    tg_tape_end(tape);
    tg_tensor *g[2] = {0};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = (tg_tensor *[]){block.kernel, readout},
                 .n_sources = 2, .out = g);
    CHECK(g[0] == NULL && g[1] != NULL);
    tg_diagnosis d;
    EXPLAIN(tape, loss, block.kernel, &d);
    /* the line to change takes the block's input instead of its output; the dense line is named too */
    CHECK_DIAG(&d, TG_CAUSE_UNCONNECTED, overwrite_line, WORDS("TG_UNCONNECTED_ZERO"));
    CHECK(names_line(d.message, block_dense_line));
    tg_tape_free(tape);
    tg_variable_free(block.kernel);
    tg_variable_free(readout);
    tg_scope_end(s);
}

/* A two-headed model whose forward function returns its first output while the head
 * being trained feeds the second. */
typedef struct two_heads {
    tg_layer *trunk, *head_a, *head_b;
} two_heads;
static int head_b_line;
static tg_tensor *two_heads_forward(two_heads *m, const tg_tensor *x, tg_tensor **second)
{
    tg_tensor *h = tg_layer_call(m->trunk, x, .training = true);
    tg_tensor *a = tg_layer_call(m->head_a, h);
    head_b_line = __LINE__ + 1;
    *second = tg_layer_call(m->head_b, h);
    return a;
}

static void c6_model_returns_its_first_output(void)
{
    tg_scope *s = tg_scope_begin();
    two_heads m = {tg_dense(.units = 4, .activation = TG_TANH, .seed = 1), tg_dense(.units = 1, .seed = 2),
                   tg_dense(.units = 1, .seed = 3)};
    tg_tensor *second = NULL;
    two_heads_forward(&m, batch_x(), &second); /* builds the layers */
    int nb;
    tg_tensor *head_b_kernel = tg_layer_variables(m.head_b, &nb)[0];
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = two_heads_forward(&m, batch_x(), &second);
    tg_tensor *loss = tg_mean(tg_mean_absolute_error(batch_y(), pred)); /* meant to train head_b */
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, head_b_kernel) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, head_b_kernel, &d);
    CHECK_DIAG(&d, TG_CAUSE_UNCONNECTED, head_b_line, WORDS("TG_UNCONNECTED_ZERO"));
    tg_tape_free(tape);
    tg_layer_free(m.trunk);
    tg_layer_free(m.head_a);
    tg_layer_free(m.head_b);
    tg_scope_end(s);
}

/* SimCLR-style: the projection head is called but the loss uses the encoder's output. */
static void c6_second_layer_call_unused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *encoder = tg_dense(.units = 2, .seed = 5), *projection = tg_dense(.units = 2, .seed = 6);
    tg_layer_call(projection, tg_layer_call(encoder, batch_x())); /* build */
    tg_tensor *proj_kernel = tg_layer_variables(projection, NULL)[0];
    tg_tensor *target = tg_from_f32(TG_SHAPE(4, 2), 1, 0, 0, 1, 1, 1, 0, 0);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *z = tg_layer_call(encoder, batch_x(), .training = true);
    int line = __LINE__ + 1;
    tg_tensor *p = tg_layer_call(projection, z, .training = true);
    (void)p;
    int loss_line = __LINE__ + 1;
    tg_tensor *loss = tg_mean(tg_square(tg_sub(z, target))); /* meant p */
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, proj_kernel) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, proj_kernel, &d);
    /* the loss takes the encoder's output where the projection's was meant: that line is to
     * change; the projection's line is named too */
    CHECK_DIAG(&d, TG_CAUSE_UNCONNECTED, loss_line, WORDS("TG_UNCONNECTED_ZERO"));
    CHECK(names_line(d.message, line));
    tg_tape_free(tape);
    tg_layer_free(encoder);
    tg_layer_free(projection);
    tg_scope_end(s);
}

/* Saliency taken with respect to a stand-in for the model's input (preprocessed, then
 * forgotten) instead of the batch actually fed. */
static void c6_gradient_wrt_symbolic_input(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(31);
    tg_tensor *inputs = tg_zeros(TG_F32, TG_SHAPE(4, 3)); /* keras.Input stand-in */
    tg_tensor *images = batch_x();
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_watch(tape, inputs);
    int line = __LINE__ + 1;
    tg_tensor *scaled = tg_div(inputs, tg_scalar(255.0));
    (void)scaled;
    tg_tensor *score = tg_sum(tg_model_call(model, images));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, score, inputs) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, score, inputs, &d);
    CHECK_DIAG(&d, TG_CAUSE_UNCONNECTED, line, WORDS("TG_UNCONNECTED_ZERO"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* The same mistake without anything computed from the watched stand-in. */
static void c6_watched_input_never_fed(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(32);
    tg_tensor *placeholder = tg_ones(TG_F32, TG_SHAPE(4, 3));
    tg_tensor *batch = batch_x();
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, placeholder);
    tg_tensor *out = tg_model_call(model, batch);
    tg_tensor *objective = tg_mean(out);
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, objective, placeholder) == NULL && !tg_has_error());
    tg_diagnosis d;
    memset(&d, 0, sizeof d);
    CHECK(tg_explain(tape, objective, placeholder, &d) == 0);
    if (d.cause != TG_CAUSE_UNCONNECTED || !strstr(d.message, "TG_UNCONNECTED_ZERO")) {
        printf("  FAIL %s:%d: expected [unconnected] naming TG_UNCONNECTED_ZERO\n", __FILE__, __LINE__);
        check_failures_in_test++;
    }
    if (verbose || d.cause != TG_CAUSE_UNCONNECTED || !strstr(d.message, "TG_UNCONNECTED_ZERO"))
        printf("    got [%s] line %d: %s\n", tg_cause_name(d.cause), d.where.line, d.message);
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* A loss computed from the labels alone (y written twice). The loss line is the one to
 * change; the prediction's line is named, and the message says the loss depends on no
 * variable (it is a constant). */
static void c6_loss_from_labels_alone(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(33);
    tg_tensor *kernel = tg_model_trainable_variables(model, NULL)[0];
    tg_tensor *y = batch_y();
    tg_tape *tape = tg_tape_begin();
    int pred_line = __LINE__ + 1;
    tg_tensor *y_pred = tg_model_call(model, batch_x(), .training = true);
    (void)y_pred;
    int loss_line = __LINE__ + 1;
    tg_tensor *loss = tg_mean(tg_square(tg_sub(y, tg_mean(y))));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, kernel) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, kernel, &d);
    /* the loss line is the one to change (it ignores the prediction); the prediction's line is named */
    CHECK_DIAG(&d, TG_CAUSE_UNCONNECTED, loss_line, WORDS("constant|no variable", "TG_UNCONNECTED_ZERO"));
    CHECK(names_line(d.message, pred_line));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* A custom loss given to fit that ignores y_pred: caught at the first step, never blamed
 * on fit's own batch gather. */
static tg_tensor *label_spread_loss(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    (void)y_pred, (void)user;
    return tg_square(tg_sub(y_true, tg_mean(y_true)));
}

static void c6_fit_with_a_loss_that_ignores_y_pred(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(34);
    tg_compile(model, .optimizer = tg_adam(), .loss = TG_LOSS_CUSTOM, .loss_fn = label_spread_loss);
    tg_tensor *kernel = tg_model_trainable_variables(model, NULL)[0];
    tg_history *h = tg_fit(model, batch_x(), batch_y(), .epochs = 3, .batch_size = 2, .verbose = TG_VERBOSE_SILENT);
    EXPECT_ERROR(h == NULL, "No gradients provided");
    CHECK_ERROR("TG_UNCONNECTED_ZERO");
    const char *err = tg_last_error();
    CHECK(!err || !strstr(err, "src/train"));
    if (verbose && err)
        printf("    fit error: %s\n", err);
    if (h)
        tg_history_free(h);
    tg_diagnosis d;
    MISSING(kernel, &d);
    CHECK_DIAG(&d, TG_CAUSE_UNCONNECTED, ANY_LINE, WORDS("y_pred|constant|no variable", "TG_UNCONNECTED_ZERO"));
    tg_clear_error();
    tg_scope_end(s);
    tg_model_free(model);
    restore_warnings();
}

/* Probabilities clipped to [0, 1] from a linear output that is above 1 everywhere. */
static void c6_zero_gradient_at_a_saturated_clip(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 1), 2.0, 2.0), .name = "w");
    tg_tensor *x = tg_from_f32(TG_SHAPE(3, 2), 1, 1, 2, 0.5, 0.75, 1);
    tg_tensor *y = tg_from_f32(TG_SHAPE(3, 1), 0, 1, 0);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *logit = tg_matmul(x, w);
    int line = __LINE__ + 1;
    tg_tensor *prob = tg_clip_by_value(logit, 0.0, 1.0);
    tg_tensor *loss = tg_mean(tg_square(tg_sub(prob, y)));
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, loss, w), 0, 0, 0);
    tg_diagnosis d;
    EXPLAIN(tape, loss, w, &d);
    CHECK_DIAG(&d, TG_CAUSE_ZERO_GRADIENT, line, NO_WORDS);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* A TD-style loss against a "target" that is a stop_gradient sample of the same value:
 * (q - q')^2 with q' == q, whose gradient 2 (q - q') vanishes at the square. */
static void c6_zero_gradient_against_a_sample_of_itself(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *q_w = tg_variable(tg_from_f32(TG_SHAPE(3, 2), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6), .name = "q/kernel");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *q = tg_matmul(batch_x(), q_w);
    tg_tensor *q_target = tg_stop_gradient(q); /* meant: the target network's values */
    int line = __LINE__ + 1;
    tg_tensor *td = tg_square(tg_sub(q, q_target));
    tg_tensor *loss = tg_mean(td);
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, loss, q_w), 0, 0, 0, 0, 0, 0, 0);
    tg_diagnosis d;
    EXPLAIN(tape, loss, q_w, &d);
    CHECK_DIAG(&d, TG_CAUSE_ZERO_GRADIENT, line, NO_WORDS);
    tg_tape_free(tape);
    tg_variable_free(q_w);
    tg_scope_end(s);
}

/* Every hidden unit dead: a hand-written layer, then a Sequential one. */
static void c6_zero_gradient_dead_relu(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 4), -1.0), .name = "hidden/w");
    tg_tensor *b = tg_variable(tg_fill(TG_F32, TG_SHAPE(4), -5.0), .name = "hidden/b");
    tg_tensor *x = tg_abs(batch_x());
    tg_tape *tape = tg_tape_begin();
    int line = __LINE__ + 1;
    tg_tensor *h = tg_relu(tg_add(tg_matmul(x, w), b));
    tg_tensor *loss = tg_mean(tg_square(tg_sub(tg_sum(h, .axes = TG_AXES(1), .keepdims = true), batch_y())));
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, loss, w), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    tg_diagnosis d;
    EXPLAIN(tape, loss, w, &d);
    CHECK_DIAG(&d, TG_CAUSE_ZERO_GRADIENT, line, NO_WORDS);
    tg_tape_free(tape);

    int dense_line = __LINE__ + 1;
    tg_layer *hidden = tg_dense(.units = 3, .activation = TG_RELU, .kernel_initializer = tg_init_constant(-1.0),
                                .bias_initializer = tg_init_constant(-1.0), .input_dim = 3);
    tg_model *model = tg_sequential(hidden, tg_dense(.units = 1));
    tg_tensor *kernel = tg_model_trainable_variables(model, NULL)[0];
    tape = tg_tape_begin();
    int call_line = __LINE__ + 1;
    tg_tensor *pred = tg_model_call(model, x, .training = true);
    loss = tg_mean(tg_mean_squared_error(batch_y(), pred));
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, loss, kernel), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    EXPLAIN(tape, loss, kernel, &d);
    CHECK_DIAG(&d, TG_CAUSE_ZERO_GRADIENT, d.where.line == dense_line ? dense_line : call_line, NO_WORDS);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_scope_end(s);
    tg_model_free(model);
}

/* =========================================================================================
 * Class 7: the target computed after the tape ended, through a helper.
 * ========================================================================================= */

static int sq_error_line;
static tg_tensor *squared_error(const tg_tensor *w, const tg_tensor *x, const tg_tensor *y)
{
    tg_tensor *r = tg_sub(tg_matmul(x, w), y);
    sq_error_line = __LINE__ + 1;
    tg_tensor *e = tg_mul(r, r);
    return e;
}

static void c7_helper_called_in_the_gradient_call(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 1, 1, 1), .name = "w");
    tg_tensor *x = batch_x(), *y = batch_y();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *warmup = tg_matmul(x, w);
    (void)warmup;
    tg_tape_end(tape);
    int line = __LINE__ + 1;
    tg_tensor *g = tg_gradient(tape, squared_error(w, x, y), w);
    CHECK(g == NULL && !tg_has_error());
    tg_diagnosis d;
    MISSING(w, &d);
    CHECK_DIAG(&d, TG_CAUSE_OUTSIDE_TAPE, line, WORDS("tg_mul"));
    CHECK(names_line(d.message, sq_error_line));
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* The same through tg_gradients, with a helper that runs the model and the loss. */
static tg_tensor *model_loss(tg_model *m, const tg_tensor *x, const tg_tensor *y)
{
    tg_tensor *pred = tg_model_call(m, x, .training = true);
    return tg_mean(tg_mean_squared_error(y, pred));
}

static void c7_model_loss_helper_in_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(41);
    int n;
    tg_tensor *vars[4];
    {
        tg_tensor *const *listed = tg_model_trainable_variables(model, &n);
        n = copy_vars(listed, n, vars, 4);
    }
    tg_tensor *x = batch_x(), *y = batch_y();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = tg_model_call(model, x, .training = true);
    (void)pred;
    tg_tape_end(tape);
    tg_tensor *grads[4] = {0};
    tg_tensor *targets[] = {model_loss(model, x, y)}; /* made after the tape ended */
    int line = __LINE__ + 1; /* one line: compilers disagree on __LINE__ in a call of several */
    tg_gradients(tape, .targets = targets, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    CHECK(grads[0] == NULL);
    tg_diagnosis d;
    MISSING(vars[0], &d);
    CHECK_DIAG(&d, TG_CAUSE_OUTSIDE_TAPE, line, WORDS("tg_mean"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* Saliency: the input is watched inside the block, the class score computed by a helper
 * only in the gradient call. */
static tg_tensor *class_score(tg_model *m, const tg_tensor *images) { return tg_sum(tg_model_call(m, images)); }

static void c7_saliency_score_after_the_block(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(42);
    tg_tensor *images = batch_x();
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, images);
    tg_tape_end(tape);
    int line = __LINE__ + 1;
    tg_tensor *saliency = tg_gradient(tape, class_score(model, images), images);
    CHECK(saliency == NULL && !tg_has_error());
    tg_diagnosis d;
    MISSING(images, &d);
    CHECK_DIAG(&d, TG_CAUSE_OUTSIDE_TAPE, line, WORDS("tg_sum"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
}

/* =========================================================================================
 * Class 8: each variable gets the break on its own path.
 * ========================================================================================= */

/* Actor-critic: the actor's probabilities are copied out to take a log in C; the critic's
 * loss is computed from an advantage that was detached. */
static void c8_actor_copied_out_critic_stopped(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *actor = tg_variable(tg_from_f32(TG_SHAPE(3, 2), 0.1, -0.1, 0.2, 0.3, -0.2, 0.1), .name = "actor/kernel");
    tg_tensor *critic = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.5, -0.5, 0.25), .name = "critic/kernel");
    tg_tensor *states = batch_x();
    const int actions[4] = {0, 1, 1, 0};
    tg_tensor *returns = tg_from_f32(TG_SHAPE(4), 1.0, 0.5, -0.5, 2.0);
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *probs = tg_softmax(tg_matmul(states, actor), -1);
    float p[8], logp[4];
    int actor_line = __LINE__ + 1;
    tg_copy_out(probs, p, sizeof p);
    for (int i = 0; i < 4; i++)
        logp[i] = logf(p[i * 2 + actions[i]]);
    tg_tensor *log_prob = tg_tensor_from(TG_F32, TG_SHAPE(4), logp);
    tg_tensor *value = tg_reshape(tg_matmul(states, critic), TG_SHAPE(4));
    int critic_line = __LINE__ + 1;
    tg_tensor *advantage = tg_stop_gradient(tg_sub(returns, value));
    tg_tensor *actor_loss = tg_neg(tg_mean(tg_mul(log_prob, advantage)));
    tg_tensor *critic_loss = tg_mean(tg_square(advantage));
    tg_tensor *loss = tg_add(actor_loss, tg_mul(critic_loss, tg_scalar(0.5)));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, actor) == NULL && tg_gradient(tape, loss, critic) == NULL);
    tg_diagnosis d;
    EXPLAIN(tape, loss, actor, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, actor_line, WORDS("tg_copy_out"));
    EXPLAIN(tape, loss, critic, &d);
    CHECK_DIAG(&d, TG_CAUSE_STOP_GRADIENT, critic_line, WORDS("tg_stop_gradient"));
    tg_tape_free(tape);
    tg_variable_free(actor);
    tg_variable_free(critic);
    tg_scope_end(s);
}

/* The other way round: the actor's log-probability detached, the critic's value read
 * with tg_item as a baseline, and a third variable read but on no path at all. */
static void c8_actor_stopped_critic_item_and_an_unused_variable(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *policy_w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 2), 0.1), .name = "policy/w");
    tg_tensor *value_w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 1), 0.2), .name = "value/w");
    tg_tensor *aux_w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 1), 0.3), .name = "aux/w");
    tg_tensor *states = batch_x();
    tg_tensor *onehot = tg_one_hot(tg_from_i32(TG_SHAPE(4), 1, 0, 0, 1), 2);
    const double reward = 1.5;
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *log_probs = tg_log_softmax(tg_matmul(states, policy_w), -1);
    int policy_line = __LINE__ + 1;
    tg_tensor *picked = tg_stop_gradient(tg_sum(tg_mul(log_probs, onehot), .axes = TG_AXES(1)));
    int value_line = __LINE__ + 1;
    double baseline = tg_item(tg_mean(tg_matmul(states, value_w)));
    int aux_line = __LINE__ + 1;
    tg_tensor *aux = tg_matmul(states, aux_w);
    (void)aux;
    tg_tensor *adv = tg_scalar(reward - baseline);
    tg_tensor *policy_loss = tg_neg(tg_mean(tg_mul(picked, adv)));
    tg_tensor *value_loss = tg_square(tg_sub(tg_scalar(reward), tg_scalar(baseline)));
    tg_tensor *loss = tg_add(policy_loss, value_loss);
    tg_tape_end(tape);
    tg_diagnosis d;
    EXPLAIN(tape, loss, policy_w, &d);
    CHECK_DIAG(&d, TG_CAUSE_STOP_GRADIENT, policy_line, WORDS("tg_stop_gradient"));
    EXPLAIN(tape, loss, value_w, &d);
    CHECK_DIAG(&d, CAUSE_COPIED_OUT, value_line, WORDS("tg_item"));
    EXPLAIN(tape, loss, aux_w, &d);
    CHECK_DIAG_NOT(&d, TG_CAUSE_UNCONNECTED, aux_line, NO_WORDS, NONE_OF("tg_stop_gradient", "tg_item"));
    tg_tape_free(tape);
    tg_variable_free(policy_w);
    tg_variable_free(value_w);
    tg_variable_free(aux_w);
    tg_scope_end(s);
}

/* One tg_gradients call for both networks: the actor's action rounded, the critic's
 * value detached. Each kept diagnosis names its own cut. */
static void c8_gradients_list_round_and_stop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *actor = tg_sequential_with(tg_sequential_options(.seed = 51, .name = "actor"),
                                         tg_dense(.units = 1, .activation = TG_SIGMOID, .input_dim = 3));
    tg_model *critic =
        tg_sequential_with(tg_sequential_options(.seed = 52, .name = "critic"), tg_dense(.units = 1, .input_dim = 3));
    tg_tensor *sources[4];
    copy_vars(tg_model_trainable_variables(actor, NULL), 2, sources, 2);
    copy_vars(tg_model_trainable_variables(critic, NULL), 2, sources + 2, 2);
    tg_tape *tape = tg_tape_begin();
    int actor_line = __LINE__ + 1;
    tg_tensor *action = tg_round(tg_model_call(actor, batch_x()));
    int critic_line = __LINE__ + 1;
    tg_tensor *q = tg_stop_gradient(tg_model_call(critic, batch_x()));
    tg_tensor *objective = tg_neg(tg_mean(tg_mul(action, q)));
    tg_tape_end(tape);
    tg_tensor *grads[4] = {0};
    CHECK(tg_gradients(tape, .targets = &objective, .n_targets = 1, .sources = sources, .n_sources = 4, .out = grads) ==
          0);
    tg_diagnosis d;
    MISSING(sources[0], &d);
    CHECK_DIAG(&d, TG_CAUSE_NON_DIFFERENTIABLE, actor_line, WORDS("tg_round"));
    MISSING(sources[2], &d);
    CHECK_DIAG(&d, TG_CAUSE_STOP_GRADIENT, critic_line, WORDS("tg_stop_gradient"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(actor);
    tg_model_free(critic);
}

/* =========================================================================================
 * Class 9: integer ids into an embedding, the gradient asked w.r.t. the ids.
 * ========================================================================================= */

static void c9_sequential_embedding_ids(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 61),
                                         tg_embedding(.input_dim = 10, .output_dim = 4, .input_length = 3),
                                         tg_flatten(), tg_dense(.units = 1));
    tg_tensor *ids = tg_from_i32(TG_SHAPE(2, 3), 1, 4, 7, 2, 2, 9);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, ids);
    int line = __LINE__ + 1;
    tg_tensor *logits = tg_model_call(model, ids);
    tg_tensor *score = tg_sum(logits);
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, score, ids) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, score, ids, &d);
    CHECK_DIAG(&d, TG_CAUSE_INTEGER_DTYPE, line, WORDS("embedding output|output of"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
    restore_warnings();
}

static void c9_embedding_layer_call(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_layer *emb = tg_embedding(.input_dim = 20, .output_dim = 3, .seed = 62);
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.5, -0.5, 1.0), .name = "classifier/w");
    tg_tensor *token_ids = tg_from_i32(TG_SHAPE(2, 4), 3, 5, 0, 0, 19, 2, 2, 0);
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_watch(tape, token_ids);
    int line = __LINE__ + 1;
    tg_tensor *vectors = tg_layer_call(emb, token_ids, .training = true);
    tg_tensor *pooled = tg_mean(vectors, .axes = TG_AXES(1));
    tg_tensor *loss = tg_mean(tg_sigmoid(tg_matmul(pooled, w)));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, token_ids) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, loss, token_ids, &d);
    CHECK_DIAG(&d, TG_CAUSE_INTEGER_DTYPE, line, WORDS("embedding output|output of"));
    tg_tape_free(tape);
    tg_layer_free(emb);
    tg_variable_free(w);
    tg_scope_end(s);
    restore_warnings();
}

static void c9_gather_on_int32_ids(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_tensor *table = tg_variable(tg_fill(TG_F32, TG_SHAPE(6, 2), 0.5), .name = "item_embeddings");
    tg_tensor *user_items = tg_from_i32(TG_SHAPE(3), 0, 5, 3);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, user_items);
    int line = __LINE__ + 1;
    tg_tensor *rows = tg_gather(table, user_items, 0);
    tg_tensor *rating = tg_sum(tg_square(rows));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, rating, user_items) == NULL && !tg_has_error());
    tg_diagnosis d;
    EXPLAIN(tape, rating, user_items, &d);
    CHECK_DIAG(&d, TG_CAUSE_INTEGER_DTYPE, line, WORDS("embedding output|output of"));
    tg_tape_free(tape);
    tg_variable_free(table);
    tg_scope_end(s);
    restore_warnings();
}

/* =========================================================================================
 * Class 10: eager checking. Correct programs: no warning at all.
 * ========================================================================================= */

#define EAGER_BEGIN()   \
    collect_warnings(); \
    tg_set_check(TG_CHECK_EAGER)
#define EXPECT_NO_WARNINGS()       \
    do {                           \
        CHECK(n_warnings == 0);    \
        report_warnings(__func__); \
        restore_warnings();        \
    } while (0)
#define EXPECT_WARNING_AT(line)                                                                                 \
    do {                                                                                                        \
        if (!names_line(warnings_all, line)) {                                                                  \
            printf("  FAIL %s:%d: no warning names :%d\n", __FILE__, __LINE__, line);                           \
            check_failures_in_test++;                                                                           \
            printf("    %s: %d warning(s)%s%s", __func__, n_warnings, n_warnings ? ":\n" : "\n", warnings_all); \
        } else if (verbose) {                                                                                   \
            report_warnings(__func__);                                                                          \
        }                                                                                                       \
        restore_warnings();                                                                                     \
    } while (0)

static void e_correct_fit(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_model *model =
        tg_sequential_with(tg_sequential_options(.seed = 71),
                           tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 1));
    tg_compile(model, .optimizer = tg_adam(), .loss = TG_LOSS_MSE,
               .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR));
    tg_history *h = tg_fit(model, batch_x(), batch_y(), .epochs = 2, .batch_size = 2, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    if (h)
        tg_history_free(h);
    tg_scope_end(s);
    tg_model_free(model);
    EXPECT_NO_WARNINGS();
}

/* fit, then evaluate and predict outside any tape: reading the weights there is normal. */
static void e_correct_evaluate_and_predict_after_fit(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(72);
    tg_compile(model, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE);
    tg_history *h = tg_fit(model, batch_x(), batch_y(), .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT);
    if (h)
        tg_history_free(h);
    tg_logs logs = {0};
    CHECK(tg_evaluate(model, batch_x(), batch_y(), &logs) == 0);
    CHECK(tg_predict(model, batch_x()) != NULL);
    tg_scope_end(s);
    tg_model_free(model);
    EXPECT_NO_WARNINGS();
}

/* A custom loop: metrics computed after the tape from the predictions. */
static void e_correct_custom_loop_with_metrics_after_the_tape(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_model *model =
        tg_sequential_with(tg_sequential_options(.seed = 73),
                           tg_dense(.units = 6, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 2));
    tg_optimizer *opt = tg_adam(.learning_rate = 0.01);
    tg_metric *acc = tg_metric_new(TG_METRIC_SPARSE_CATEGORICAL_ACCURACY);
    tg_metric *mean_loss = tg_metric_new(TG_METRIC_MEAN);
    tg_tensor *labels = tg_from_i32(TG_SHAPE(4), 0, 1, 1, 0);
    int n;
    tg_tensor *vars[4];
    {
        tg_tensor *const *listed = tg_model_trainable_variables(model, &n);
        n = copy_vars(listed, n, vars, 4);
    }
    for (int epoch = 0; epoch < 3; epoch++) {
        tg_scope *it = tg_scope_begin();
        tg_tape *tape = tg_tape_begin();
        tg_tensor *logits = tg_model_call(model, batch_x(), .training = true);
        tg_tensor *loss = tg_mean(tg_sparse_categorical_crossentropy(labels, logits, .from_logits = true));
        tg_tape_end(tape);
        tg_tensor *grads[4] = {0};
        tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
        tg_tape_free(tape);
        CHECK(tg_apply_gradients(opt, grads, vars, n) == 0);
        tg_metric_update_state(acc, labels, logits, NULL);
        tg_metric_update_value(mean_loss, tg_item(loss), 4);
        tg_tensor *probs = tg_softmax(logits, -1);
        tg_tensor *predicted = tg_argmax(probs, 1);
        (void)predicted;
        tg_scope_end(it);
    }
    (void)tg_metric_result(acc);
    tg_metric_free(acc);
    tg_metric_free(mean_loss);
    tg_optimizer_free(opt);
    tg_scope_end(s);
    tg_model_free(model);
    EXPECT_NO_WARNINGS();
}

static void e_correct_item_inside_the_tape(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.1, 0.2, 0.3), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss = tg_mean(tg_square(tg_sub(tg_matmul(batch_x(), w), batch_y())));
    char line[64];
    snprintf(line, sizeof line, "step loss %.4f", tg_item(loss)); /* logging inside the block */
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, w) != NULL);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    EXPECT_NO_WARNINGS();
}

static void e_correct_argmax_accuracy_inside_the_tape(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 2), 0.1), .name = "w");
    tg_tensor *labels = tg_from_i64(TG_SHAPE(4), 0, 1, 1, 0);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *logits = tg_matmul(batch_x(), w);
    tg_tensor *loss = tg_mean(tg_sparse_softmax_cross_entropy_with_logits(labels, logits));
    tg_tensor *correct = tg_cast(tg_equal(tg_argmax(logits, 1), labels), TG_F32);
    tg_tensor *accuracy = tg_mean(correct);
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, w) != NULL);
    CHECK(tg_item(accuracy) >= 0);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    EXPECT_NO_WARNINGS();
}

static void e_correct_second_order_with_a_persistent_tape(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.5), .name = "x");
    tg_tape *outer = tg_tape_begin(.persistent = true);
    tg_tape *inner = tg_tape_begin(.persistent = true);
    tg_tensor *y = tg_mul(tg_mul(x, x), x);
    tg_tape_end(inner);
    tg_tensor *dy = tg_gradient(inner, y, x);
    tg_tape_end(outer);
    CHECK_VALUES(tg_gradient(outer, dy, x), 1e-5, 9.0);
    CHECK_VALUES(tg_gradient(inner, y, x), 1e-5, 6.75);
    tg_tape_free(inner);
    tg_tape_free(outer);
    tg_variable_free(x);
    tg_scope_end(s);
    EXPECT_NO_WARNINGS();
}

static void e_correct_jacobian(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_tanh(tg_matmul(batch_x(), w));
    tg_tape_end(tape);
    tg_tensor *j = tg_jacobian(tape, y, w);
    CHECK(j != NULL && tg_rank(j) == 4);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    EXPECT_NO_WARNINGS();
}

/* DQN: the target network's values detached with stop_gradient. */
static void e_correct_stop_gradient_on_a_target_network(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_model *online =
        tg_sequential_with(tg_sequential_options(.seed = 74, .name = "online"), tg_dense(.units = 2, .input_dim = 3));
    tg_model *target_net =
        tg_sequential_with(tg_sequential_options(.seed = 75, .name = "target"), tg_dense(.units = 2, .input_dim = 3));
    tg_tensor *rewards = tg_from_f32(TG_SHAPE(4), 1, 0, 0.5, 1);
    tg_tensor *actions = tg_one_hot(tg_from_i32(TG_SHAPE(4), 0, 1, 1, 0), 2);
    int n;
    tg_tensor *vars[2];
    {
        tg_tensor *const *listed = tg_model_trainable_variables(online, &n);
        n = copy_vars(listed, n, vars, 2);
    }
    tg_optimizer *opt = tg_adam();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *next_q = tg_max(tg_model_call(target_net, batch_x()), .axes = TG_AXES(1));
    tg_tensor *td_target = tg_stop_gradient(tg_add(rewards, tg_mul(tg_scalar(0.99), next_q)));
    tg_tensor *q = tg_sum(tg_mul(tg_model_call(online, batch_x(), .training = true), actions), .axes = TG_AXES(1));
    tg_tensor *loss = tg_mean(tg_square(tg_sub(td_target, q)));
    tg_tape_end(tape);
    tg_tensor *grads[2] = {0};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_tape_free(tape);
    CHECK(grads[0] && grads[1]);
    CHECK(tg_apply_gradients(opt, grads, vars, n) == 0);
    tg_optimizer_free(opt);
    tg_scope_end(s);
    tg_model_free(online);
    tg_model_free(target_net);
    EXPECT_NO_WARNINGS();
}

static void e_correct_batch_normalization_training(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_model *model =
        tg_sequential_with(tg_sequential_options(.seed = 76), tg_dense(.units = 4, .input_dim = 3),
                           tg_batch_normalization(), tg_activation_layer(.activation = TG_RELU), tg_dense(.units = 1));
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.01);
    int n;
    tg_tensor *vars[8];
    {
        tg_tensor *const *listed = tg_model_trainable_variables(model, &n);
        n = copy_vars(listed, n, vars, 8);
    }
    for (int step = 0; step < 2; step++) {
        tg_scope *it = tg_scope_begin();
        tg_tape *tape = tg_tape_begin();
        tg_tensor *loss = tg_mean(tg_mean_squared_error(batch_y(), tg_model_call(model, batch_x(), .training = true)));
        tg_tape_end(tape);
        tg_tensor *grads[8] = {0};
        tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
        tg_tape_free(tape);
        CHECK(tg_apply_gradients(opt, grads, vars, n) == 0);
        tg_scope_end(it);
    }
    tg_optimizer_free(opt);
    tg_scope_end(s);
    tg_model_free(model);
    EXPECT_NO_WARNINGS();
}

/* Class 10: the buggy programs of classes 1-4 and 7 warn at the culprit line. */
static void e_warns_at_a_copy_out(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.1, 0.2, 0.3), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = tg_matmul(batch_x(), w);
    float v[4];
    int line = __LINE__ + 1;
    tg_copy_out(pred, v, sizeof v);
    for (int i = 0; i < 4; i++)
        v[i] = v[i] * v[i];
    tg_tensor *loss = tg_mean(tg_tensor_from(TG_F32, TG_SHAPE(4), v));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, w) == NULL);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    EXPECT_WARNING_AT(line);
}

static void e_warns_at_a_predict_inside_the_tape(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_model *model = small_regressor(81);
    tg_tensor *kernel = tg_model_trainable_variables(model, NULL)[0];
    tg_tape *tape = tg_tape_begin();
    int line = __LINE__ + 1;
    tg_tensor *pred = tg_predict(model, batch_x());
    tg_tensor *loss = tg_mean(tg_mean_squared_error(batch_y(), pred));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, kernel) == NULL);
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_model_free(model);
    EXPECT_WARNING_AT(line);
}

static void e_warns_at_an_assign_on_the_path(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *k = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 1), 0.5), .name = "k");
    tg_tensor *state = tg_variable(tg_zeros(TG_F32, TG_SHAPE(4, 1)), .name = "state", .trainable = false);
    tg_tape *tape = tg_tape_begin();
    int line = __LINE__ + 1;
    tg_assign(state, tg_matmul(batch_x(), k));
    tg_tensor *loss = tg_mean(tg_square(tg_identity(state)));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, k) == NULL);
    tg_tape_free(tape);
    tg_variable_free(k);
    tg_variable_free(state);
    tg_scope_end(s);
    EXPECT_WARNING_AT(line);
}

static void e_warns_at_a_recreated_variable(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *made[2] = {0};
    int line = 0;
    tg_tensor *loss = NULL;
    tg_tape *tape = NULL;
    for (int call = 0; call < 2; call++) {
        if (call == 1)
            tape = tg_tape_begin();
        line = __LINE__ + 1;
        made[call] = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 1), 0.5), .name = "scale");
        if (call == 1)
            loss = tg_mean(tg_matmul(batch_x(), made[call]));
    }
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, loss, made[0]) == NULL);
    tg_tape_free(tape);
    tg_variable_free(made[0]);
    tg_variable_free(made[1]);
    tg_scope_end(s);
    EXPECT_WARNING_AT(line);
}

static void e_warns_at_a_target_computed_after_the_tape(void)
{
    EAGER_BEGIN();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 1, 1, 1), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *h = tg_matmul(batch_x(), w);
    (void)h;
    tg_tape_end(tape);
    int line = __LINE__ + 1;
    tg_tensor *g = tg_gradient(tape, squared_error(w, batch_x(), batch_y()), w);
    CHECK(g == NULL);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    EXPECT_WARNING_AT(line);
}

/* =========================================================================================
 * Semantics (TensorFlow's behaviour).
 * ========================================================================================= */

/* An integer target (argmax): NULL without an error; the non-persistent tape is used. */
static void s_integer_target_gives_null_and_uses_the_tape(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 2), 0.3), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *predicted_class = tg_argmax(tg_matmul(batch_x(), w), 1);
    tg_tape_end(tape);
    tg_clear_error();
    CHECK(tg_gradient(tape, predicted_class, w) == NULL);
    CHECK(!tg_has_error());
    EXPECT_ERROR(tg_gradient(tape, predicted_class, w) == NULL, "non-persistent");
    tg_clear_error();
    tg_tape_free(tape);

    /* a bool target on a persistent tape: NULL, no error, as often as asked */
    tape = tg_tape_begin(.persistent = true);
    tg_tensor *positive = tg_greater(tg_matmul(batch_x(), w), tg_scalar(0.0));
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, positive, w) == NULL && !tg_has_error());
    CHECK(tg_gradient(tape, positive, w) == NULL && !tg_has_error());
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    restore_warnings();
}

/* A target cast to int32, through tg_gradients with TG_UNCONNECTED_ZERO: zeros. */
static void s_integer_target_with_unconnected_zero(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 0.5, 1.5, -0.5), .name = "w");
    tg_tensor *b = tg_variable(tg_scalar(0.25), .name = "b");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *bucket = tg_cast(tg_add(tg_matmul(batch_x(), w), b), TG_I32);
    tg_tape_end(tape);
    tg_tensor *g[2] = {0};
    tg_clear_error();
    CHECK(tg_gradients(tape, .targets = &bucket, .n_targets = 1, .sources = (tg_tensor *[]){w, b}, .n_sources = 2,
                       .unconnected = TG_UNCONNECTED_ZERO, .out = g) == 0);
    CHECK(!tg_has_error());
    CHECK_VALUES(g[0], 0, 0, 0, 0);
    CHECK_VALUES(g[1], 0, 0);
    CHECK(tg_gradients(tape, .targets = &bucket, .n_targets = 1, .sources = (tg_tensor *[]){w, b}, .n_sources = 2,
                       .unconnected = TG_UNCONNECTED_ZERO, .out = g) == -1);
    CHECK_ERROR("non-persistent");
    tg_clear_error();
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_scope_end(s);
    restore_warnings();
}

/* tf-semantics row 29: `result = v0` chosen by an `if`; d result / d v0 = 1, v1: None. */
static void s_variable_itself_is_the_target(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *v0 = tg_variable(tg_scalar(2.0), .name = "v0");
    tg_tensor *v1 = tg_variable(tg_scalar(2.0), .name = "v1");
    double x = 1.0;
    tg_tape *tape = tg_tape_begin();
    tg_tensor *result;
    if (x > 0.0)
        result = v0;
    else
        result = tg_square(v1);
    tg_tape_end(tape);
    tg_tensor *g[2] = {0};
    CHECK(tg_gradients(tape, .targets = &result, .n_targets = 1, .sources = (tg_tensor *[]){v0, v1}, .n_sources = 2,
                       .out = g) == 0);
    CHECK_VALUES(g[0], 0, 1.0);
    CHECK(g[1] == NULL);
    tg_tape_free(tape);
    tg_variable_free(v0);
    tg_variable_free(v1);
    tg_scope_end(s);
}

/* =========================================================================================
 * tg_apply_gradients: one line per distinct cause, listing the variables that share it.
 * ========================================================================================= */

static void a_apply_gradients_groups_variables_by_cause(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_tensor *kernel = tg_variable(tg_fill(TG_F32, TG_SHAPE(3, 1), 0.2), .name = "dense/kernel");
    tg_tensor *bias = tg_variable(tg_zeros(TG_F32, TG_SHAPE(1)), .name = "dense/bias");
    tg_tensor *head = tg_variable(tg_scalar(1.0), .name = "head/scale");
    tg_optimizer *opt = tg_sgd();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *features = tg_stop_gradient(tg_add(tg_matmul(batch_x(), kernel), bias));
    tg_tensor *loss = tg_mean(tg_square(tg_sub(features, batch_y())));
    tg_tape_end(tape);
    tg_tensor *vars[3] = {kernel, bias, head}, *grads[3] = {0};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 3, .out = grads);
    tg_tape_free(tape);
    CHECK(tg_apply_gradients(opt, grads, vars, 3) == -1);
    const char *err = tg_last_error();
    CHECK(err && strstr(err, "No gradients provided for any variable"));
    /* the lines after the first: exactly one names the stop_gradient, and it lists both
     * dense variables; head/scale is on a line of its own */
    int stop_lines = 0, stop_line_has_both = 0, head_lines = 0;
    const char *nl = err ? strchr(err, '\n') : NULL;
    while (nl) {
        const char *next = strchr(nl + 1, '\n');
        size_t len = next ? (size_t)(next - nl - 1) : strlen(nl + 1);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), nl + 1);
        if (strstr(line, "stop_gradient")) {
            stop_lines++;
            stop_line_has_both += strstr(line, "dense/kernel") && strstr(line, "dense/bias");
        }
        head_lines += strstr(line, "head/scale") != NULL;
        nl = next;
    }
    CHECK(stop_lines == 1);
    CHECK(stop_line_has_both == 1);
    CHECK(head_lines == 1);
    if (verbose || check_failures_in_test)
        printf("    apply_gradients said:\n%s\n", err ? err : "(no error)");
    tg_clear_error();
    tg_optimizer_free(opt);
    tg_variable_free(kernel);
    tg_variable_free(bias);
    tg_variable_free(head);
    tg_scope_end(s);
    restore_warnings();
}

/* =========================================================================================
 * Bad input.
 * ========================================================================================= */

static void b_explain_bad_input(void)
{
    collect_warnings();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(2.0), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_square(w);
    tg_tape_end(tape);
    tg_diagnosis d;
    CHECK(tg_explain(tape, y, w, NULL) == -1);
    CHECK(tg_has_error());
    tg_clear_error();
    CHECK(tg_explain(tape, y, NULL, &d) == -1);
    CHECK(tg_has_error());
    tg_clear_error();

    /* a source watched by another tape */
    tg_tensor *c = tg_scalar(3.0);
    tg_tape *other = tg_tape_begin();
    tg_watch(other, c);
    tg_tensor *z = tg_mul(c, c);
    (void)z;
    tg_tape_end(other);
    memset(&d, 0, sizeof d);
    int rc = tg_explain(tape, y, c, &d);
    CHECK(rc == -1 ? tg_has_error() : d.cause != TG_CAUSE_NONE);
    if (verbose)
        printf("    other tape's source: rc %d, [%s] %s %s\n", rc, tg_cause_name(d.cause), d.message,
               tg_last_error() ? tg_last_error() : "");
    tg_clear_error();
    tg_tape_free(other);

    tg_tape_free(tape);
    EXPECT_ERROR(tg_explain(tape, y, w, &d) == -1, "freed");
    tg_clear_error();
    tg_variable_free(w);
    tg_scope_end(s);
    restore_warnings();
}

/* ---- tg_explain_dot: the copy-out gap drawn dashed, and bad input ------------------------ */
static void b_explain_dot(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3, 1), 1, 2, 3), .name = "w");
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = tg_matmul(batch_x(), w);
    float v[4];
    int line = __LINE__ + 1;
    tg_copy_out(pred, v, sizeof v);
    tg_tensor *loss = tg_mean(tg_tensor_from(TG_F32, TG_SHAPE(4), v));
    tg_tape_end(tape);

    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        CHECK(tg_explain_dot(tape, loss, w, f) == 0);
        char text[16384] = {0};
        rewind(f);
        size_t got = fread(text, 1, sizeof text - 1, f);
        text[got] = 0;
        fclose(f);
        CHECK(strstr(text, "digraph") != NULL);
        CHECK(strstr(text, "test_diagnosis_cases.c") != NULL);
        CHECK(names_line(text, line));
        CHECK(strstr(text, "dashed") != NULL); /* the copy-out/rebuild gap */
    }
    CHECK(tg_explain_dot(tape, loss, w, NULL) == -1);
    CHECK(tg_has_error());
    tg_clear_error();
    tg_tape_free(tape);
    f = tmpfile();
    if (f) {
        EXPECT_ERROR(tg_explain_dot(tape, loss, w, f) == -1, "freed");
        fclose(f);
    }
    tg_clear_error();
    tg_variable_free(w);
    tg_scope_end(s);
}

int main(void)
{
    verbose = getenv("TG_DIAG_VERBOSE") && atoi(getenv("TG_DIAG_VERBOSE")) > 0;
    tg_set_num_threads(1);

    RUN(c1_numpy_style_loss_on_copied_predictions);
    RUN(c1_float_of_loss_then_rescaled);
    RUN(c1_helper_copies_out_f64);
    RUN(c1_two_copy_outs_the_one_on_the_path);
    RUN(c1_per_sample_float_losses_in_a_loop);
    RUN(c1_gan_moments_computed_in_c);
    RUN(c1_custom_train_step_in_fit);

    RUN(c2_predict_inside_tape);
    RUN(c2_evaluate_inside_tape);
    RUN(c2_predict_in_custom_train_step);

    RUN(c3_memory_cell_layer_assigns_state);
    RUN(c3_assign_recorded_value_into_trainable_variable);
    RUN(c3_running_total_assign_add_in_step);

    RUN(c4_layer_call_creates_its_kernel);
    RUN(c4_step_function_creates_bias_each_step);
    RUN(c4_helper_dense_forward_creates_weights);

    RUN(c5_batchnorm_moving_statistics_in_the_list);
    RUN(c5_frozen_layer_in_full_variable_list);
    RUN(c5_non_trainable_temperature_variable);

    RUN(c6_layer_output_overwritten);
    RUN(c6_model_returns_its_first_output);
    RUN(c6_second_layer_call_unused);
    RUN(c6_gradient_wrt_symbolic_input);
    RUN(c6_watched_input_never_fed);
    RUN(c6_loss_from_labels_alone);
    RUN(c6_fit_with_a_loss_that_ignores_y_pred);
    RUN(c6_zero_gradient_at_a_saturated_clip);
    RUN(c6_zero_gradient_against_a_sample_of_itself);
    RUN(c6_zero_gradient_dead_relu);

    RUN(c7_helper_called_in_the_gradient_call);
    RUN(c7_model_loss_helper_in_gradients);
    RUN(c7_saliency_score_after_the_block);

    RUN(c8_actor_copied_out_critic_stopped);
    RUN(c8_actor_stopped_critic_item_and_an_unused_variable);
    RUN(c8_gradients_list_round_and_stop);

    RUN(c9_sequential_embedding_ids);
    RUN(c9_embedding_layer_call);
    RUN(c9_gather_on_int32_ids);

    RUN(e_correct_fit);
    RUN(e_correct_evaluate_and_predict_after_fit);
    RUN(e_correct_custom_loop_with_metrics_after_the_tape);
    RUN(e_correct_item_inside_the_tape);
    RUN(e_correct_argmax_accuracy_inside_the_tape);
    RUN(e_correct_second_order_with_a_persistent_tape);
    RUN(e_correct_jacobian);
    RUN(e_correct_stop_gradient_on_a_target_network);
    RUN(e_correct_batch_normalization_training);
    RUN(e_warns_at_a_copy_out);
    RUN(e_warns_at_a_predict_inside_the_tape);
    RUN(e_warns_at_an_assign_on_the_path);
    RUN(e_warns_at_a_recreated_variable);
    RUN(e_warns_at_a_target_computed_after_the_tape);

    RUN(s_integer_target_gives_null_and_uses_the_tape);
    RUN(s_integer_target_with_unconnected_zero);
    RUN(s_variable_itself_is_the_target);

    RUN(a_apply_gradients_groups_variables_by_cause);
    RUN(b_explain_bad_input);
    RUN(b_explain_dot);
    return TEST_SUMMARY();
}
