/* NaN and Inf: tg_check_numerics (TF's check_numerics), the TG_CHECK_NUMERICS mode that
 * reports the first non-finite value where it appears (forward or backward, with the op,
 * the line, the layer and the variable), fit's .check_numerics, and how gradient clipping
 * meets a NaN gradient (as Keras: clip_by_norm of a NaN gradient is NaN). */
#include <stdlib.h>

#include "check.h"

/* "test_numerics.c:<line><tail>": the error prefix of a call made on `line` (tail ":"),
 * or a reference to that line inside a message. A few rotating buffers. */
static const char *ref(int line, const char *tail)
{
    static char bufs[4][64];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "test_numerics.c:%d%s", line, tail);
    return b;
}
#define at_line(line) ref(line, ":")

static void check_numerics_passes_finite_values_and_their_gradient(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(3), 1.0, -2.0, 0.5);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    tg_tensor *y = tg_check_numerics(x, "x is finite");
    tg_tensor *loss = tg_sum(tg_mul(y, y));
    tg_tape_end(tape);
    CHECK_VALUES(y, 0, 1.0, -2.0, 0.5);
    tg_tensor *g = tg_gradient(tape, loss, x);
    CHECK_VALUES(g, 1e-12, 2.0, -4.0, 1.0);
    tg_tape_free(tape);
    CHECK(!tg_has_error());
    tg_scope_end(s);
}

static void check_numerics_names_the_value_where_it_is_and_the_op_that_made_it(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 2), 1.0f, 2.0f, -3.0f, 4.0f);
    int made = __LINE__ + 1;
    tg_tensor *l = tg_log(x);
    int checked = __LINE__ + 1;
    EXPECT_ERROR(tg_check_numerics(l, "log of the inputs") == NULL, at_line(checked));
    CHECK_ERROR("tg_check_numerics: log of the inputs: the tensor holds NaN at [1, 0] of a (2, 2) tensor");
    CHECK_ERROR("it is the output of tg_log at ");
    CHECK_ERROR(ref(made, ""));

    tg_clear_error();
    EXPECT_ERROR(tg_check_numerics(tg_from_f64(TG_SHAPE(3), 0.0, 1.0, -INFINITY), "m") == NULL,
                 "holds -Inf at [2] of a (3,) tensor; it is a tensor made at");
    tg_clear_error();
    EXPECT_ERROR(tg_check_numerics(tg_scalar(INFINITY), "m") == NULL, "holds Inf in a scalar");

    tg_tensor *v = tg_variable(tg_from_f32(TG_SHAPE(1), NAN), .name = "w");
    tg_clear_error();
    EXPECT_ERROR(tg_check_numerics(v, "weights") == NULL, "it is variable \"w\" (never updated)");
    tg_variable_free(v);

    tg_clear_error();
    EXPECT_ERROR(tg_check_numerics(tg_from_i32(TG_SHAPE(1), 1), "ints") == NULL, "must be float32 or float64");
    tg_clear_error();
    EXPECT_ERROR(tg_check_numerics(NULL, "m") == NULL, "is NULL");
    tg_scope_end(s);
}

/* The gradient through tg_check_numerics is checked too, as TF's CheckNumerics gradient. */
static void check_numerics_checks_the_gradient_flowing_back(void)
{
    tg_scope *s = tg_scope_begin();
    char msg[32];
    strcpy(msg, "before sqrt"); /* a buffer the op must copy: it is gone before the gradient */
    tg_tensor *x = tg_from_f64(TG_SHAPE(3), 0.0, 1.0, 4.0);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    int line = __LINE__ + 1;
    tg_tensor *y = tg_check_numerics(x, msg);
    memset(msg, 'x', sizeof msg - 1);
    tg_tensor *loss = tg_sum(tg_sqrt(y)); /* d sqrt(y) / dy at 0 is Inf */
    tg_tape_end(tape);
    CHECK(loss && tg_item(loss) == 3.0);
    tg_tensor *g = NULL;
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = &x, .n_sources = 1, .out = &g) == -1);
    EXPECT_ERROR(g == NULL, at_line(line));
    CHECK_ERROR(
        "tg_check_numerics: before sqrt: the gradient flowing back to this check holds Inf at [0] of a (3,) tensor");
    tg_tape_free(tape);
    tg_scope_end(s);
}

/* Off, the same computations give NaN and Inf without a word (and cost one flag test). */
static void without_the_mode_non_finite_values_flow_silently(void)
{
    CHECK(tg_get_check() == 0);
    tg_scope *s = tg_scope_begin();
    tg_tensor *y = tg_log(tg_from_f32(TG_SHAPE(2), 1.0f, 0.0f));
    float v[2] = {0, 0};
    CHECK(y && tg_copy_out(y, v, sizeof v) == 0 && v[0] == 0.0f && isinf(v[1]) && v[1] < 0);
    CHECK(!tg_has_error());
    tg_scope_end(s);
}

static void the_mode_names_the_op_that_first_made_a_nan_in_the_forward_pass(void)
{
    tg_set_check(TG_CHECK_NUMERICS);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1.0f, 0.0f);
    tg_tensor *e = tg_exp(x); /* finite: nothing to say */
    CHECK(e != NULL);
    int line = __LINE__ + 1;
    tg_tensor *y = tg_log(x);
    EXPECT_ERROR(y == NULL, at_line(line));
    CHECK_ERROR("check_numerics: tg_log produced -Inf at [1] of a (2,) tensor in the forward pass; its inputs are "
                "finite: it starts here");
    /* The expression goes on failing with that first message. */
    EXPECT_ERROR(tg_sum(tg_mul(y, x)) == NULL, "tg_log produced -Inf");

    /* A value that came in from data is named as where it started. */
    tg_clear_error();
    tg_tensor *bad = tg_from_f64(TG_SHAPE(2, 1), 0.5, NAN);
    line = __LINE__ + 1;
    EXPECT_ERROR(tg_add(tg_scalar_of(TG_F64, 1.0), bad) == NULL, at_line(line));
    CHECK_ERROR("tg_add produced NaN at [1, 0] of a (2, 1) tensor in the forward pass; it came in through input b, "
                "a tensor made at");
    CHECK_ERROR("which already holds NaN at [1, 0] of a (2, 1) tensor");

    /* Integer ops are not checked (they have no NaN); overflow to Inf is. */
    tg_clear_error();
    CHECK(tg_add(tg_from_i32(TG_SHAPE(1), 1), tg_from_i32(TG_SHAPE(1), 2)) != NULL);
    EXPECT_ERROR(tg_mul(tg_scalar(3e38), tg_scalar(10)) == NULL,
                 "tg_mul produced Inf in a scalar in the forward pass; its inputs are finite: it starts here");
    tg_scope_end(s);
    tg_set_check(0);
    tg_clear_error();
}

static void the_mode_names_the_op_and_variable_whose_gradient_first_holds_inf(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f64(TG_SHAPE(3), 0.0, 1.0, 4.0), .name = "w");
    tg_tape *tape = tg_tape_begin();
    int line = __LINE__ + 1;
    tg_tensor *r = tg_sqrt(w);
    tg_tensor *loss = tg_sum(r);
    tg_tape_end(tape);
    tg_set_check(TG_CHECK_NUMERICS); /* also when turned on for the gradient only */
    tg_tensor *g = tg_gradient(tape, loss, w);
    EXPECT_ERROR(g == NULL, at_line(line));
    CHECK_ERROR("check_numerics: the gradient of tg_sqrt (recorded at this line) for its input x, variable \"w\" "
                "(never updated), holds Inf at [0] of a (3,) tensor in the backward pass; the gradient flowing into "
                "it is finite: it starts here");
    tg_set_check(0);
    tg_tape_free(tape);
    tg_variable_free(w);
    tg_scope_end(s);
    tg_clear_error();
}

/* A layer's weights: the report names the layer and the variable the NaN came from. */
static void the_mode_names_the_layer_and_its_weight(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 3, .activation = TG_RELU, .input_dim = 2), tg_dense(.units = 1));
    CHECK(m != NULL);
    tg_layer *second = tg_model_get_layer(m, "dense_1");
    int nv = 0;
    tg_tensor *const *vars = tg_layer_variables(second, &nv);
    CHECK(nv == 2);
    int assigned = __LINE__ + 1;
    CHECK(tg_assign(vars[0], tg_fill(TG_F32, TG_SHAPE(3, 1), NAN)) == 0);
    tg_tensor *x = tg_from_f32(TG_SHAPE(1, 2), 1.0f, 2.0f);
    tg_set_check(TG_CHECK_NUMERICS);
    int line = __LINE__ + 1;
    EXPECT_ERROR(tg_model_call(m, x) == NULL, at_line(line));
    CHECK_ERROR("check_numerics: tg_matmul in layer \"dense_1\" produced NaN at [0, 0] of a (1, 1) tensor in the "
                "forward pass; it came in through input b, variable \"dense_1/kernel\" (last updated at");
    CHECK_ERROR(ref(assigned, ")")); /* the line of the assign */
    tg_set_check(0);
    tg_model_free(m);
    tg_scope_end(s);
    tg_clear_error();
}

/* ---- fit ------------------------------------------------------------------------------ */
static tg_tensor *data_x(void)
{
    float v[16 * 2];
    for (int i = 0; i < 16; i++) {
        v[2 * i] = (float)(i % 4) * 0.25f;
        v[2 * i + 1] = (float)(i / 4) * 0.25f - 0.3f;
    }
    return tg_tensor_from(TG_F32, TG_SHAPE(16, 2), v);
}

static int loss_line;
/* A user's loss with a log that meets negative values (labels are 100). */
static tg_tensor *log_loss(const tg_tensor *y_true, const tg_tensor *y_pred, void *user)
{
    (void)user;
    loss_line = __LINE__ + 1;
    tg_tensor *l = tg_log(tg_sub(y_pred, y_true));
    return tg_mean(tg_square(l), .axes = TG_AXES(-1));
}

static tg_model *small_model(tg_optimizer *opt, tg_loss_kind loss)
{
    tg_model *m = tg_sequential(tg_dense(.units = 4, .activation = TG_TANH, .input_dim = 2), tg_dense(.units = 1));
    if (tg_compile(m, .optimizer = opt, .loss = loss, .loss_fn = log_loss) != 0)
        printf("  compile: %s\n", tg_last_error());
    return m;
}

static void fit_check_numerics_stops_at_the_users_line(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = data_x(), *y = tg_fill(TG_F32, TG_SHAPE(16, 1), 100.0);

    /* Without the option, Keras's behaviour: training goes on with a NaN loss. */
    tg_model *m = small_model(tg_sgd(.learning_rate = 0.01), TG_LOSS_CUSTOM);
    tg_history *h = tg_fit(m, x, y, .epochs = 2, .batch_size = 4, .shuffle = false, .verbose = TG_VERBOSE_SILENT);
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    CHECK(loss && n == 2 && isnan(loss[0]));
    tg_history_free(h);
    tg_model_free(m);

    m = small_model(tg_sgd(.learning_rate = 0.01), TG_LOSS_CUSTOM);
    tg_verbose quiet = TG_VERBOSE_SILENT; /* a call on one line: compilers differ on a macro's line */
    int line = __LINE__ + 1;
    h = tg_fit(m, x, y, .epochs = 2, .batch_size = 4, .shuffle = false, .verbose = quiet, .check_numerics = true);
    EXPECT_ERROR(h == NULL, at_line(line));
    CHECK_ERROR("tg_fit: epoch 1, batch 1: ");
    CHECK_ERROR(at_line(loss_line));
    CHECK_ERROR("check_numerics: tg_log produced NaN at [");
    CHECK_ERROR("its inputs are finite: it starts here");
    CHECK(tg_get_check() == 0); /* the mode was for that fit only */
    tg_model_free(m);
    tg_scope_end(s);
    tg_clear_error();
}

/* An update that overflows: the gradient is finite, the new weight is not. */
static void fit_check_numerics_catches_an_update_that_overflows(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = data_x(), *y = tg_fill(TG_F32, TG_SHAPE(16, 1), 100.0);
    tg_model *m = small_model(tg_sgd(.learning_rate = 1e38), TG_LOSS_MSE);
    tg_verbose quiet = TG_VERBOSE_SILENT; /* a call on one line: compilers differ on a macro's line */
    tg_history *h;
    int line = __LINE__ + 1;
    h = tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .shuffle = false, .verbose = quiet, .check_numerics = true);
    EXPECT_ERROR(h == NULL, at_line(line));
    CHECK_ERROR("tg_fit: epoch 1, batch 1: ");
    CHECK_ERROR("tg_check_numerics: a weight after the training step: the tensor holds ");
    CHECK_ERROR("it is variable \"dense");
    CHECK_ERROR("(last updated at");
    tg_model_free(m);
    tg_scope_end(s);
    tg_clear_error();
}

/* ---- clipping --------------------------------------------------------------------------- */
/* Keras's clip_by_norm: g * clipnorm / max(||g||, clipnorm). With a NaN in g the norm is
 * NaN and so is every clipped element: one NaN poisons the whole variable's update. */
static void clipnorm_of_a_nan_gradient_is_nan_everywhere(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3), 1.0f, 2.0f, 3.0f), .name = "w");
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1, .clipnorm = 1.0);
    tg_tensor *g = tg_from_f32(TG_SHAPE(3), 0.5f, NAN, 0.5f);
    CHECK(tg_apply_gradients(opt, &g, &w, 1) == 0);
    float v[3];
    CHECK(tg_copy_out(w, v, sizeof v) == 0);
    CHECK(isnan(v[0]) && isnan(v[1]) && isnan(v[2]));
    /* An Inf gradient: its own element becomes NaN (Inf / Inf), the others 0 (x / Inf). */
    tg_tensor *w2 = tg_variable(tg_from_f32(TG_SHAPE(3), 1.0f, 2.0f, 3.0f), .name = "w2");
    tg_tensor *g2 = tg_from_f32(TG_SHAPE(3), 0.5f, INFINITY, 0.5f);
    tg_optimizer *opt2 = tg_sgd(.learning_rate = 0.1, .clipnorm = 1.0);
    CHECK(tg_apply_gradients(opt2, &g2, &w2, 1) == 0);
    CHECK(tg_copy_out(w2, v, sizeof v) == 0);
    CHECK(v[0] == 1.0f && isnan(v[1]) && v[2] == 3.0f);
    tg_optimizer_free(opt);
    tg_optimizer_free(opt2);
    tg_variable_free(w);
    tg_variable_free(w2);
    tg_scope_end(s);
}

/* With the mode on, the NaN gradient is stopped at the op that made it, before clipping
 * can spread it over the variable. */
static void check_numerics_stops_a_nan_gradient_before_clipping_spreads_it(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3), 0.0f, 1.0f, 4.0f), .name = "w");
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1, .clipnorm = 1.0);
    for (int mode = 0; mode < 2; mode++) {
        tg_set_check(mode ? TG_CHECK_NUMERICS : 0);
        tg_tape *tape = tg_tape_begin();
        int line = __LINE__ + 1;
        tg_tensor *loss = tg_sum(tg_mul(tg_sqrt(w), tg_scalar(0.0))); /* 0 * Inf = NaN in backward */
        tg_tape_end(tape);
        tg_tensor *g = tg_gradient(tape, loss, w);
        tg_tape_free(tape);
        if (!mode) {
            float v[3];
            CHECK(g && tg_copy_out(g, v, sizeof v) == 0 && isnan(v[0]) && v[1] == 0.0f);
            continue;
        }
        EXPECT_ERROR(g == NULL, at_line(line));
        CHECK_ERROR("the gradient of tg_sqrt (recorded at this line) for its input x, variable \"w\"");
        CHECK_ERROR("holds NaN at [0] of a (3,) tensor in the backward pass");
    }
    tg_set_check(0);
    float v[3];
    CHECK(tg_copy_out(w, v, sizeof v) == 0 && v[0] == 0.0f && v[1] == 1.0f && v[2] == 4.0f);
    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_scope_end(s);
    tg_clear_error();
}

int main(void)
{
    RUN(check_numerics_passes_finite_values_and_their_gradient);
    RUN(check_numerics_names_the_value_where_it_is_and_the_op_that_made_it);
    RUN(check_numerics_checks_the_gradient_flowing_back);
    RUN(without_the_mode_non_finite_values_flow_silently);
    RUN(the_mode_names_the_op_that_first_made_a_nan_in_the_forward_pass);
    RUN(the_mode_names_the_op_and_variable_whose_gradient_first_holds_inf);
    RUN(the_mode_names_the_layer_and_its_weight);
    RUN(fit_check_numerics_stops_at_the_users_line);
    RUN(fit_check_numerics_catches_an_update_that_overflows);
    RUN(clipnorm_of_a_nan_gradient_is_nan_everywhere);
    RUN(check_numerics_stops_a_nan_gradient_before_clipping_spreads_it);
    return TEST_SUMMARY();
}
