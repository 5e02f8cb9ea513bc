/* Keras's weight constraints (keras/src/constraints/constraints.py) on Dense, Conv2D and
 * the recurrent layers: each formula by hand, with Keras's epsilon 1e-7, through a custom
 * loop's tg_apply_gradients with zero gradients (the update leaves the weights, the
 * constraint then projects them), and one fit step that equals the unconstrained update
 * constrained. */
#include "check.h"
#include "fixture.h"

#define EPS 1e-7 /* keras.backend.epsilon() */

/* A float64 Dense(2) on 2 features with kernel `w` (in, units), bias 0, and constraint c on
 * the kernel, after one SGD update with zero gradients. NULL with an error. */
static tg_tensor *dense_kernel_after_step(tg_constraint c, const double *w)
{
    tg_layer *d = tg_dense(.units = 2, .input_dim = 2, .kernel_constraint = c);
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), d);
    if (!m)
        return NULL;
    int n;
    tg_tensor *const *v = tg_layer_variables(d, &n);
    tg_tensor *grads[2] = {tg_zeros_like(v[0]), tg_zeros_like(v[1])};
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    tg_tensor *out = NULL;
    if (tg_assign(v[0], tg_from_f64(TG_SHAPE(2, 2), w[0], w[1], w[2], w[3])) == 0 &&
        tg_apply_gradients(opt, grads, v, 2) == 0)
        out = tg_identity(v[0]); /* a copy in the scope: the model goes */
    tg_optimizer_free(opt);
    tg_model_free(m);
    return out;
}

/* Kernel columns (axis 0) [3, 4] and [0.6, 0.8]: norms 5 and 1. */
static const double columns[4] = {3, 0.6, 4, 0.8};

static void max_norm(void)
{
    tg_scope *s = tg_scope_begin();
    /* clip(5, 0, 2) / (eps + 5) and clip(1, 0, 2) / (eps + 1) */
    CHECK_VALUES(dense_kernel_after_step(tg_max_norm(), columns), 1e-15, 3 * 2 / (EPS + 5), 0.6 / (EPS + 1),
                 4 * 2 / (EPS + 5), 0.8 / (EPS + 1));
    CHECK_VALUES(dense_kernel_after_step(tg_max_norm(.max_value = 0.5), columns), 1e-15, 3 * 0.5 / (EPS + 5),
                 0.6 * 0.5 / (EPS + 1), 4 * 0.5 / (EPS + 5), 0.8 * 0.5 / (EPS + 1));
    tg_scope_end(s);
}

static void non_neg(void)
{
    tg_scope *s = tg_scope_begin();
    const double w[4] = {-1, 2, 3, -4};
    CHECK_VALUES(dense_kernel_after_step(tg_non_neg(), w), 0, 0, 2, 3, 0);
    tg_scope_end(s);
}

static void unit_norm(void)
{
    tg_scope *s = tg_scope_begin();
    CHECK_VALUES(dense_kernel_after_step(tg_unit_norm(), columns), 1e-15, 3 / (EPS + 5), 0.6 / (EPS + 1), 4 / (EPS + 5),
                 0.8 / (EPS + 1));
    /* rows (axis 1) [3, 4] and [0.6, 0.8], given as the last axis */
    const double rows[4] = {3, 4, 0.6, 0.8};
    CHECK_VALUES(dense_kernel_after_step(tg_unit_norm(.axis = TG_AXES(-1)), rows), 1e-15, 3 / (EPS + 5), 4 / (EPS + 5),
                 0.6 / (EPS + 1), 0.8 / (EPS + 1));
    tg_scope_end(s);
}

static void min_max_norm(void)
{
    tg_scope *s = tg_scope_begin();
    /* defaults min 0, max 1, rate 1: desired norms 1 and 1 */
    CHECK_VALUES(dense_kernel_after_step(tg_min_max_norm(), columns), 1e-15, 3 / (EPS + 5), 0.6 / (EPS + 1),
                 4 / (EPS + 5), 0.8 / (EPS + 1));
    /* min 2, max 3, rate 0.5: desired 0.5 * 3 + 0.5 * 5 = 4 and 0.5 * 2 + 0.5 * 1 = 1.5 */
    CHECK_VALUES(dense_kernel_after_step(tg_min_max_norm(.min_value = 2, .max_value = 3, .rate = 0.5), columns), 1e-15,
                 3 * 4 / (EPS + 5), 0.6 * 1.5 / (EPS + 1), 4 * 4 / (EPS + 5), 0.8 * 1.5 / (EPS + 1));
    tg_scope_end(s);
}

/* Conv2D's kernel (1, 1, 2, 2) with the norm over (0, 1, 2): one per filter, 5 and 1; the
 * bias, a vector, under NonNeg. */
static void conv2d_kernel_and_bias(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *c =
        tg_conv2d_layer(.filters = 2, .kernel_size = {1, 1}, .input_shape = TG_SHAPE(1, 1, 2),
                        .kernel_constraint = tg_max_norm(.axis = TG_AXES(0, 1, 2)), .bias_constraint = tg_non_neg());
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), c);
    REQUIRE(m);
    int n;
    tg_tensor *const *v = tg_layer_variables(c, &n);
    REQUIRE(n == 2);
    CHECK(tg_assign(v[0], tg_from_f64(TG_SHAPE(1, 1, 2, 2), 3, 0.6, 4, 0.8)) == 0 &&
          tg_assign(v[1], tg_from_f64(TG_SHAPE(2), -1, 1)) == 0);
    tg_tensor *grads[2] = {tg_zeros_like(v[0]), tg_zeros_like(v[1])};
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    CHECK(tg_apply_gradients(opt, grads, v, 2) == 0);
    CHECK_VALUES(v[0], 1e-15, 3 * 2 / (EPS + 5), 0.6 / (EPS + 1), 4 * 2 / (EPS + 5), 0.8 / (EPS + 1));
    CHECK_VALUES(v[1], 0, 0, 1);
    CHECK(tg_variable_constraint(v[1]).kind == TG_CONSTRAINT_NON_NEG);
    tg_optimizer_free(opt);
    tg_model_free(m);
    tg_scope_end(s);
}

/* SimpleRNN's recurrent kernel under NonNeg: after an update, nothing negative is left and
 * the positive entries are untouched; the kernel, without one, keeps its negatives. */
static void recurrent_constraint(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *r = tg_simple_rnn(.units = 3, .input_shape = TG_SHAPE(2, 2), .recurrent_constraint = tg_non_neg());
    tg_model *m = tg_sequential(r);
    REQUIRE(m);
    int n;
    tg_tensor *const *v = tg_layer_variables(r, &n);
    REQUIRE(n == 3);
    float before[9], after[9], kernel[6];
    REQUIRE(tg_copy_out(v[1], before, sizeof before) == 0);
    tg_tensor *grads[3] = {tg_zeros_like(v[0]), tg_zeros_like(v[1]), tg_zeros_like(v[2])};
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    CHECK(tg_apply_gradients(opt, grads, v, 3) == 0);
    REQUIRE(tg_copy_out(v[1], after, sizeof after) == 0 && tg_copy_out(v[0], kernel, sizeof kernel) == 0);
    int negatives = 0;
    for (int i = 0; i < 9; i++) {
        CHECK(after[i] == (before[i] >= 0 ? before[i] : 0));
        negatives += before[i] < 0;
    }
    CHECK(negatives > 0); /* an orthogonal 3 x 3 has some */
    negatives = 0;
    for (int i = 0; i < 6; i++)
        negatives += kernel[i] < 0;
    CHECK(negatives > 0);
    tg_optimizer_free(opt);
    tg_model_free(m);
    tg_scope_end(s);
}

/* fit's step: Dense(1) with W = [1, 2], b = -0.5 on x = I, y = [1, 1] with MSE and SGD(0.1):
 * dW = [-0.5, 0.5], db = 0, so the unconstrained update is W = [1.05, 1.95], b = -0.5
 * (checked on a model without constraints); MaxNorm(2) on the kernel scales it by
 * 2 / (eps + sqrt(4.905)), NonNeg on the bias zeroes it. */
static void fit_step_applies_them(void)
{
    tg_scope *s = tg_scope_begin();
    double w_unconstrained[2] = {0}, b_unconstrained = 0;
    for (int constrained = 0; constrained < 2; constrained++) {
        tg_constraint kc = constrained ? tg_max_norm() : (tg_constraint){0};
        tg_constraint bc = constrained ? tg_non_neg() : (tg_constraint){0};
        tg_layer *d = tg_dense(.units = 1, .input_dim = 2, .kernel_constraint = kc, .bias_constraint = bc);
        tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), d);
        REQUIRE(m && tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_MSE) == 0);
        int n;
        tg_tensor *const *v = tg_layer_variables(d, &n);
        CHECK(tg_assign(v[0], tg_from_f64(TG_SHAPE(2, 1), 1, 2)) == 0 &&
              tg_assign(v[1], tg_from_f64(TG_SHAPE(1), -0.5)) == 0);
        tg_tensor *x = tg_from_f64(TG_SHAPE(2, 2), 1, 0, 0, 1), *y = tg_from_f64(TG_SHAPE(2, 1), 1, 1);
        tg_history_free(tg_fit(m, x, y, .epochs = 1, .batch_size = 2, .verbose = TG_VERBOSE_SILENT));
        if (!constrained) {
            CHECK_VALUES(v[0], 1e-14, 1.05, 1.95);
            CHECK_VALUES(v[1], 1e-14, -0.5);
            REQUIRE(tg_copy_out_f64(v[0], w_unconstrained, 2) == 0 && tg_copy_out_f64(v[1], &b_unconstrained, 1) == 0);
        } else {
            double k = 2 / (EPS + sqrt(1.05 * 1.05 + 1.95 * 1.95));
            CHECK_VALUES(v[0], 1e-14, 1.05 * k, 1.95 * k);
            CHECK_VALUES(v[0], 1e-14, w_unconstrained[0] * k, w_unconstrained[1] * k);
            CHECK_VALUES(v[1], 0, 0);
            CHECK(b_unconstrained < 0);
        }
        tg_model_free(m);
    }
    tg_scope_end(s);
}

static tg_constraint constraint_named(const char *kind, double max_value, double min_value, double rate, tg_axes axis)
{
    if (!strcmp(kind, "max_norm"))
        return tg_max_norm(.max_value = max_value, .axis = axis);
    if (!strcmp(kind, "unit_norm"))
        return tg_unit_norm(.axis = axis);
    if (!strcmp(kind, "min_max_norm"))
        return tg_min_max_norm(.min_value = min_value, .max_value = max_value, .rate = rate, .axis = axis);
    return tg_non_neg();
}

/* A Conv2D kernel (2, 3, 2, 4) after one zero-gradient update under `c`, against the
 * numpy transcription. */
static bool conv_case_matches(tg_constraint c, const double *w, const double *want)
{
    tg_layer *conv =
        tg_conv2d_layer(.filters = 4, .kernel_size = {2, 3}, .input_shape = TG_SHAPE(4, 4, 2), .kernel_constraint = c);
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), conv);
    if (!m)
        return false;
    int n;
    tg_tensor *const *v = tg_layer_variables(conv, &n);
    tg_tensor *grads[2] = {tg_zeros_like(v[0]), tg_zeros_like(v[1])};
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    tg_shape shape = TG_SHAPE(2, 3, 2, 4);
    bool ok = tg_assign(v[0], tg_tensor_from(TG_F64, shape, w)) == 0 && tg_apply_gradients(opt, grads, v, 2) == 0 &&
              TENSOR_MATCHES(v[0], &shape, want, 48, 1e-13);
    tg_optimizer_free(opt);
    tg_model_free(m);
    return ok;
}

static void against_numpy(void)
{
    static fx_reader r;
    REQUIRE(fx_open(&r, "constraint_golden.txt", "tools/make_constraint_fixtures.py"));
    char tag[32], *rest, kind[32] = "";
    double max_value = 0, min_value = 0, rate = 0, w[48], want[48];
    tg_axes axis = {0};
    tg_shape shape;
    int cases = 0;
    tg_scope *s = tg_scope_begin();
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        if (!strcmp(tag, "case")) {
            if (!fx_word(&rest, kind, sizeof kind) || !fx_number(&rest, &max_value) || !fx_number(&rest, &min_value) ||
                !fx_number(&rest, &rate) || !fx_int(&rest, &axis.n) || axis.n > TG_MAX_RANK)
                fx_fail(&r, "a bad case");
            for (int i = 0; i < axis.n && !r.failed; i++)
                if (!fx_int(&rest, &axis.axis[i]))
                    fx_fail(&r, "a bad axis");
        } else if (!strcmp(tag, "w") || !strcmp(tag, "want")) {
            if (!fx_array(&rest, &shape, tag[1] == 'a' ? want : w, 48) || fx_size(&shape) != 48)
                fx_fail(&r, "a bad array");
        } else if (!strcmp(tag, "end")) {
            /* a non_neg case gives no axes: the constraint's default then */
            CHECK(conv_case_matches(constraint_named(kind, max_value, min_value, rate, axis), w, want));
            cases++;
        } else {
            fx_fail(&r, "unknown tag %s", tag);
        }
    }
    fx_close(&r);
    CHECK(!r.failed && cases == 8);
    if (r.failed)
        printf("%s\n", r.error);
    tg_scope_end(s);
}

static void bad_axes_are_refused(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(!tg_sequential(tg_dense(.units = 2, .input_dim = 2, .name = "d",
                                         .kernel_constraint = tg_max_norm(.axis = TG_AXES(2)))),
                 "constraint of d/kernel: axis 2 is out of range for a variable of rank 2");
    EXPECT_ERROR(!tg_sequential(tg_dense(.units = 2, .input_dim = 2, .name = "e",
                                         .bias_constraint = tg_min_max_norm(.min_value = 2, .max_value = 1))),
                 "constraint of e/bias: MinMaxNorm's min_value 2 is above its max_value 1");
    tg_scope_end(s);
}

int main(void)
{
    RUN(max_norm);
    RUN(non_neg);
    RUN(unit_norm);
    RUN(min_max_norm);
    RUN(conv2d_kernel_and_bias);
    RUN(recurrent_constraint);
    RUN(fit_step_applies_them);
    RUN(bad_axes_are_refused);
    RUN(against_numpy);
    return TEST_SUMMARY();
}
