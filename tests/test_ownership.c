/* Who owns what: compile's optimizer (recompiling, sharing, failing), and handles
 * (tapes, optimizers, models, callbacks) used after they were freed, which must be
 * refused with a message and leave every live object alone. Run under ASan too: a
 * use after free or a double free there fails the test. */
#include <stdlib.h>

#include "check.h"

static tg_tensor *xor_x(void) { return tg_from_f32(TG_SHAPE(4, 2), 0, 0, 0, 1, 1, 0, 1, 1); }
static tg_tensor *xor_y(void) { return tg_from_f32(TG_SHAPE(4, 1), 0, 1, 1, 0); }

static tg_model *small_model(void) { return tg_sequential(tg_dense(.units = 1, .input_dim = 2)); }

static int fit_once(tg_model *m)
{
    tg_scope *s = tg_scope_begin();
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT);
    tg_scope_end(s);
    int ok = h ? 0 : -1;
    tg_history_free(h);
    return ok;
}

/* ---- compile's optimizer ------------------------------------------------------------------ */
static void test_recompile_same_optimizer_keeps_it(void)
{
    tg_model *m = small_model();
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    CHECK(tg_compile(m, .optimizer = opt, .loss = TG_LOSS_MSE) == 0);
    CHECK(fit_once(m) == 0);
    /* Keras allows compiling again, here with another loss and the same optimizer. */
    CHECK(tg_compile(m, .optimizer = opt, .loss = TG_LOSS_MAE) == 0);
    CHECK(tg_model_optimizer(m) == opt);
    CHECK(fit_once(m) == 0);
    CHECK(tg_optimizer_iterations(opt) == 2);
    tg_model_free(m); /* frees opt once */
}

static void test_recompile_other_optimizer_frees_old(void)
{
    tg_model *m = small_model();
    tg_optimizer *a = tg_sgd(.learning_rate = 0.1), *b = tg_adam();
    CHECK(tg_compile(m, .optimizer = a, .loss = TG_LOSS_MSE) == 0);
    CHECK(tg_compile(m, .optimizer = b, .loss = TG_LOSS_MSE) == 0);
    CHECK(tg_model_optimizer(m) == b);
    CHECK(fit_once(m) == 0);
    CHECK(tg_optimizer_iterations(b) == 1);
    /* `a` went with the first compile: using it is refused, not a read of freed memory */
    tg_clear_error();
    EXPECT_ERROR(tg_optimizer_set_learning_rate(a, 0.5) == -1, "freed");
    tg_model_free(m);
}

static void test_optimizer_in_two_models_refused(void)
{
    tg_model *m1 = small_model(), *m2 = small_model();
    tg_optimizer *opt = tg_adam();
    CHECK(tg_compile(m1, .optimizer = opt, .loss = TG_LOSS_MSE) == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_compile(m2, .optimizer = opt, .loss = TG_LOSS_MSE) == -1, "test_ownership.c");
    CHECK_ERROR("already compiled into another model");
    CHECK(tg_model_optimizer(m2) == NULL);
    tg_clear_error();
    tg_optimizer_free(opt); /* the model's to free */
    CHECK_ERROR("free the model with tg_model_free");
    CHECK(fit_once(m1) == 0);
    tg_model_free(m2);
    tg_model_free(m1); /* the only owner: one free */
}

static void test_failed_compile_keeps_callers_optimizer(void)
{
    tg_model *m = small_model();
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    tg_clear_error();
    CHECK(tg_compile(m, .optimizer = opt) == -1); /* no loss */
    CHECK_ERROR("give .loss");
    CHECK(tg_compile(NULL, .optimizer = opt, .loss = TG_LOSS_MSE) == -1);
    /* still the caller's: usable, and compiled later */
    CHECK(tg_optimizer_set_learning_rate(opt, 0.2) == 0);
    CHECK(tg_compile(m, .optimizer = opt, .loss = TG_LOSS_MSE) == 0);
    CHECK(fit_once(m) == 0);
    tg_model_free(m);
}

static void test_failed_recompile_keeps_old_compile(void)
{
    /* categorical cross-entropy on a 1-unit output is refused once the model is built */
    tg_model *m = small_model();
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1), *other = tg_adam();
    CHECK(tg_compile(m, .optimizer = opt, .loss = TG_LOSS_MSE) == 0);
    CHECK(fit_once(m) == 0);
    tg_clear_error();
    CHECK(tg_compile(m, .optimizer = other, .loss = TG_LOSS_CATEGORICAL_CROSSENTROPY) == -1);
    CHECK(tg_model_optimizer(m) == opt);
    CHECK(fit_once(m) == 0);
    CHECK(tg_optimizer_iterations(opt) == 2);
    tg_optimizer_free(other); /* the failed compile did not take it */
    tg_model_free(m);
}

/* ---- stale handles ----------------------------------------------------------------------- */
static void test_stale_tape_free_leaves_live_tape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(1), 3);
    tg_tape *old = tg_tape_begin();
    tg_tape_free(old);
    tg_tape *live = tg_tape_begin(); /* may reuse old's struct */
    tg_watch(live, x);
    tg_tensor *y = tg_mul(x, x);
    tg_clear_error();
    tg_tape_free(old); /* stale: refused, live untouched */
    CHECK_ERROR("already freed");
    CHECK(tg_tape_is_recording(live));
    tg_tape_end(live);
    CHECK_VALUES(tg_gradient(live, y, x), 0, 6);
    tg_clear_error();
    EXPECT_ERROR(tg_tape_end(old) == -1, "already freed");
    EXPECT_ERROR(tg_gradient(old, y, x) == NULL, "already freed");
    tg_tape_free(live);
    tg_scope_end(s);
}

static void test_stale_optimizer_and_model(void)
{
    tg_optimizer *opt = tg_adam();
    tg_optimizer_free(opt);
    tg_clear_error();
    tg_optimizer_free(opt); /* a second free is refused, not a double free */
    CHECK_ERROR("already freed");
    tg_model *m = small_model();
    tg_clear_error();
    EXPECT_ERROR(tg_compile(m, .optimizer = opt, .loss = TG_LOSS_MSE) == -1, "already freed");
    tg_model_free(m);
    tg_clear_error();
    tg_model_free(m);
    CHECK_ERROR("already freed");
    EXPECT_ERROR(tg_model_summary(m, NULL) == -1, "already freed");
}

static void test_stale_callback(void)
{
    tg_callback *es = tg_early_stopping(.monitor = "loss");
    tg_callback_free(es);
    tg_clear_error();
    tg_callback_free(es);
    CHECK_ERROR("already freed");
    tg_model *m = small_model();
    CHECK(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE) == 0);
    tg_scope *s = tg_scope_begin();
    tg_clear_error();
    tg_history *h = tg_fit(m, xor_x(), xor_y(), .batch_size = 4, .verbose = TG_VERBOSE_SILENT,
                           .callbacks = (tg_callback *[]){es}, .n_callbacks = 1);
    EXPECT_ERROR(h == NULL, "freed");
    tg_scope_end(s);
    tg_model_free(m);
}

int main(void)
{
    RUN(test_recompile_same_optimizer_keeps_it);
    RUN(test_recompile_other_optimizer_frees_old);
    RUN(test_optimizer_in_two_models_refused);
    RUN(test_failed_compile_keeps_callers_optimizer);
    RUN(test_failed_recompile_keeps_old_compile);
    RUN(test_stale_tape_free_leaves_live_tape);
    RUN(test_stale_optimizer_and_model);
    RUN(test_stale_callback);
    return TEST_SUMMARY();
}
