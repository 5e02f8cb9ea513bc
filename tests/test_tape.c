/* GradientTape semantics: one test per behaviour of ../shared/tf-semantics.md section 1
 * (row numbers in the names), each asserting TF's value or None (NULL). */
#include "check.h"

static int warnings_seen;
static char last_warning[1024];

static void count_warning(const char *msg, void *user)
{
    (void)user;
    warnings_seen++;
    snprintf(last_warning, sizeof last_warning, "%s", msg);
}

/* Runs a test body inside a scope, with warnings captured. */
#define SCOPED(...)                                  \
    do {                                             \
        warnings_seen = 0;                           \
        last_warning[0] = 0;                         \
        tg_set_warning_handler(count_warning, NULL); \
        tg_scope *scope_ = tg_scope_begin();         \
        __VA_ARGS__;                                 \
        tg_scope_end(scope_);                        \
        tg_set_warning_handler(NULL, NULL);          \
    } while (0)

static void row01_trainable_variable_is_watched(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(3.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *y = tg_square(x);
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 6.0);
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row02_03_variable_created_before_or_inside(void)
{
    SCOPED({
        tg_tensor *v = tg_variable(tg_scalar(1.0));
        tg_tape *g = tg_tape_begin();
        tg_tensor *w = tg_variable(tg_scalar(1.0)); /* created inside the block */
        tg_tensor *vv = tg_mul(v, v);               /* separate statements: C leaves argument order open */
        tg_tensor *y = tg_add(vv, tg_mul(w, w));
        tg_tape_end(g);
        int n = 0;
        tg_tensor *const *watched = tg_watched_variables(g, &n);
        CHECK(n == 2 && watched[0] == v && watched[1] == w);
        tg_tensor *out[2];
        CHECK(tg_gradients(g, .targets = &y, .n_targets = 1, .sources = (tg_tensor *[]){v, w}, .n_sources = 2,
                           .out = out) == 0);
        CHECK_VALUES(out[0], 0, 2.0);
        CHECK_VALUES(out[1], 0, 2.0);
        tg_tape_free(g);
        tg_variable_free(v);
        tg_variable_free(w);
    });
}

static void row04_05_watch_accessed_variables_off(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0)), *w = tg_variable(tg_scalar(5.0));
        tg_tape *t = tg_tape_begin(.watch_accessed_variables = false, .persistent = true);
        tg_watch(t, x);
        tg_tensor *y = tg_square(x);
        tg_tensor *z = tg_mul(tg_square(w), w);
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 4.0);
        CHECK(tg_gradient(t, z, w) == NULL && !tg_has_error());
        int n = 0;
        tg_watched_variables(t, &n);
        CHECK(n == 1);
        tg_tape_free(t);
        tg_variable_free(x);
        tg_variable_free(w);
    });
}

static void row06_constants_need_watch(void)
{
    SCOPED({
        tg_tensor *x = tg_scalar(3.0);
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *y_unwatched = tg_mul(x, x);
        tg_watch(t, x);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 6.0);
        CHECK(tg_gradient(t, y_unwatched, x) == NULL && !tg_has_error());
        tg_tape_free(t);
    });
}

static void row07_non_trainable_and_derived_tensors(void)
{
    SCOPED({
        tg_tensor *x0 = tg_variable(tg_scalar(3.0), .name = "x0");
        tg_tensor *x1 = tg_variable(tg_scalar(3.0), .name = "x1", .trainable = false);
        tg_tensor *x2v = tg_variable(tg_scalar(2.0), .name = "x2");
        tg_tensor *x2 = tg_add(x2v, tg_scalar(1.0)); /* a Variable plus a number is a plain tensor */
        tg_tensor *x3 = tg_scalar(3.0);
        tg_tape *t = tg_tape_begin();
        tg_tensor *y = tg_add(tg_add(tg_square(x0), tg_square(x1)), tg_square(x2));
        tg_tape_end(t);
        int n = 0;
        tg_tensor *const *w = tg_watched_variables(t, &n);
        CHECK(n == 1 && w[0] == x0);
        tg_tensor *out[4];
        CHECK(tg_gradients(t, .targets = &y, .n_targets = 1, .sources = (tg_tensor *[]){x0, x1, x2, x3}, .n_sources = 4,
                           .out = out) == 0);
        CHECK_VALUES(out[0], 0, 6.0);
        CHECK(out[1] == NULL && out[2] == NULL && out[3] == NULL);
        tg_tape_free(t);
        tg_variable_free(x0);
        tg_variable_free(x1);
        tg_variable_free(x2v);
    });
}

static void row08_integer_sources_get_none_and_a_warning(void)
{
    SCOPED({
        tg_tensor *x = tg_scalar_of(TG_I32, 10);
        tg_tape *t = tg_tape_begin();
        CHECK(tg_watch(t, x) == 0);
        CHECK(warnings_seen == 1 && strstr(last_warning, "must be floating"));
        tg_tensor *y = tg_cast(tg_mul(x, x), TG_F32);
        tg_tape_end(t);
        CHECK(tg_gradient(t, y, x) == NULL && !tg_has_error());
        CHECK(warnings_seen == 2 && strstr(last_warning, "int32"));
        tg_tape_free(t);
    });
}

static void row09_26_comparisons_and_integer_casts_cut(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(1.5));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *y1 = tg_cast(tg_greater(x, tg_scalar(0.0)), TG_F32);
        tg_tensor *y2 = tg_cast(tg_cast(x, TG_I32), TG_F32);
        tg_tensor *y3 = tg_cast(tg_cast(x, TG_F64), TG_F32); /* float <-> float is differentiable */
        tg_tape_end(t);
        CHECK(tg_gradient(t, y1, x) == NULL && !tg_has_error());
        CHECK(tg_gradient(t, y2, x) == NULL && !tg_has_error());
        CHECK_VALUES(tg_gradient(t, y3, x), 0, 1.0);
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row10_11_unconnected_none_or_zero(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_from_f32(TG_SHAPE(2), 2, 2)), *y = tg_variable(tg_scalar(3.0));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *z = tg_square(y);
        tg_tape_end(t);
        CHECK(tg_gradient(t, z, x) == NULL && !tg_has_error());
        tg_tensor *g = NULL;
        CHECK(tg_gradients(t, .targets = &z, .n_targets = 1, .sources = &x, .n_sources = 1,
                           .unconnected = TG_UNCONNECTED_ZERO, .out = &g) == 0);
        CHECK_VALUES(g, 0, 0.0, 0.0);
        CHECK(tg_gradients(t, .targets = &z, .n_targets = 1, .sources = &x, .n_sources = 1,
                           .unconnected = (tg_unconnected)7, .out = &g) == -1);
        CHECK_ERROR("TG_UNCONNECTED_NONE or TG_UNCONNECTED_ZERO");
        tg_tape_free(t);
        tg_variable_free(x);
        tg_variable_free(y);
    });
}

static void row12_non_persistent_tape_is_used_once(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *y1 = tg_square(x), *y2 = tg_mul(y1, x);
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y1, x), 0, 4.0);
        EXPECT_ERROR(tg_gradient(t, y2, x) == NULL,
                     "A non-persistent GradientTape can only be used to compute one set of gradients");
        CHECK_ERROR("test_tape.c:");
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row13_persistent_tape_many_calls(void)
{
    SCOPED({
        tg_tensor *x = tg_scalar(3.0);
        tg_tape *g = tg_tape_begin(.persistent = true);
        tg_watch(g, x);
        tg_tensor *y = tg_mul(x, x), *z = tg_mul(y, y);
        tg_tape_end(g);
        CHECK_VALUES(tg_gradient(g, z, x), 0, 108.0);
        CHECK_VALUES(tg_gradient(g, y, x), 0, 6.0);
        tg_tape_free(g);
    });
}

static void row14_gradient_inside_the_block(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *y = tg_square(x);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 4.0); /* a non-persistent tape stops recording */
        CHECK(!tg_tape_is_recording(t));
        tg_tape *p = tg_tape_begin(.persistent = true);
        tg_tensor *y2 = tg_square(x);
        CHECK_VALUES(tg_gradient(p, y2, x), 0, 4.0);
        CHECK(tg_tape_is_recording(p) && strstr(last_warning, "persistent tape inside its context"));
        tg_tape_end(p);
        tg_tape_free(p);
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row15_assign_after_recording_gives_the_recorded_value(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(3.0), .name = "x");
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 6.0);
        CHECK(warnings_seen == 0);
        CHECK(tg_assign_sub(x, tg_scalar(1.0)) == 0);
        CHECK_NEAR(tg_item(x), 2.0, 0);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 6.0); /* stale, as in TF: no error */
        CHECK(warnings_seen == 1 && strstr(last_warning, "'x' was assigned at"));
        CHECK_NEAR(tg_item(y), 9.0, 0);
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row16_stop_recording(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0)), *y = tg_variable(tg_scalar(3.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *x_sq = tg_mul(x, x);
        CHECK(tg_tape_stop_recording(t) == 0);
        tg_tensor *y_sq = tg_mul(y, y);
        EXPECT_ERROR(tg_tape_stop_recording(t) == -1, "Trying to stop recording a tape which is not recording.");
        CHECK(tg_tape_resume_recording(t) == 0);
        tg_tensor *z = tg_add(x_sq, y_sq);
        tg_tape_end(t);
        tg_tensor *out[2];
        CHECK(tg_gradients(t, .targets = &z, .n_targets = 1, .sources = (tg_tensor *[]){x, y}, .n_sources = 2,
                           .out = out) == 0);
        CHECK_VALUES(out[0], 0, 4.0);
        CHECK(out[1] == NULL);
        tg_tape_free(t);
        tg_variable_free(x);
        tg_variable_free(y);
    });
}

static void row17_reset(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0)), *y = tg_variable(tg_scalar(3.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *y_sq = tg_mul(y, y);
        tg_tape_reset(t);
        int n = -1;
        tg_watched_variables(t, &n);
        CHECK(n == 0);
        tg_tensor *z = tg_add(tg_mul(x, x), y_sq);
        tg_tape_end(t);
        tg_tensor *out[2];
        CHECK(tg_gradients(t, .targets = &z, .n_targets = 1, .sources = (tg_tensor *[]){x, y}, .n_sources = 2,
                           .out = out) == 0);
        CHECK_VALUES(out[0], 0, 4.0);
        CHECK(out[1] == NULL);
        tg_tape_free(t);
        tg_variable_free(x);
        tg_variable_free(y);
    });
}

static void row18_nested_tapes_second_and_third_order(void)
{
    SCOPED({
        tg_tensor *x = tg_scalar(5.0);
        tg_tape *g = tg_tape_begin();
        tg_watch(g, x);
        tg_tape *gg = tg_tape_begin();
        tg_watch(gg, x);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(gg);
        tg_tensor *dy_dx = tg_gradient(gg, y, x);
        tg_tape_end(g);
        CHECK_VALUES(dy_dx, 0, 10.0);
        CHECK_VALUES(tg_gradient(g, dy_dx, x), 0, 2.0);
        tg_tape_free(gg);
        tg_tape_free(g);

        /* x^3 at x = 2: 3x^2 = 12, 6x = 12, 6 */
        tg_tensor *v = tg_variable(tg_scalar(2.0));
        tg_tape *t1 = tg_tape_begin(), *t2 = tg_tape_begin(), *t3 = tg_tape_begin();
        tg_tensor *c = tg_mul(tg_mul(v, v), v);
        tg_tape_end(t3);
        tg_tensor *d1 = tg_gradient(t3, c, v);
        tg_tape_end(t2);
        tg_tensor *d2 = tg_gradient(t2, d1, v);
        tg_tape_end(t1);
        tg_tensor *d3 = tg_gradient(t1, d2, v);
        CHECK_VALUES(d1, 0, 12.0);
        CHECK_VALUES(d2, 0, 12.0);
        CHECK_VALUES(d3, 0, 6.0);
        tg_tape_free(t3);
        tg_tape_free(t2);
        tg_tape_free(t1);
        tg_variable_free(v);
    });
}

static void row19_non_scalar_and_multiple_targets_are_summed(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *y = tg_mul(x, tg_from_f32(TG_SHAPE(2), 3, 4));
        tg_tensor *y0 = tg_square(x), *y1 = tg_div(tg_scalar(1.0), x);
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, x), 0, 7.0);
        tg_tensor *g = NULL;
        CHECK(tg_gradients(t, .targets = (tg_tensor *[]){y0, y1}, .n_targets = 2, .sources = &x, .n_sources = 1,
                           .out = &g) == 0);
        CHECK_VALUES(g, 1e-7, 3.75);
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row21_output_gradients(void)
{
    SCOPED({
        tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1, 2);
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_watch(t, x);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(t);
        tg_tensor *g = NULL, *seed = tg_from_f32(TG_SHAPE(2), 3, 4);
        CHECK(tg_gradients(t, .targets = &y, .n_targets = 1, .sources = &x, .n_sources = 1, .output_gradients = &seed,
                           .out = &g) == 0);
        CHECK_VALUES(g, 0, 6.0, 16.0);
        tg_tensor *bad = tg_from_f32(TG_SHAPE(3), 1, 1, 1);
        CHECK(tg_gradients(t, .targets = &y, .n_targets = 1, .sources = &x, .n_sources = 1, .output_gradients = &bad,
                           .out = &g) == -1);
        CHECK_ERROR("output_gradients[0] has shape (3,)");
        tg_tape_free(t);
    });
}

static void row22_stop_gradient_blocks_one_path(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(2.0)), *y = tg_variable(tg_scalar(3.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *z = tg_add(tg_square(x), tg_stop_gradient(tg_square(y)));
        tg_tape_end(t);
        tg_tensor *out[2];
        CHECK(tg_gradients(t, .targets = &z, .n_targets = 1, .sources = (tg_tensor *[]){x, y}, .n_sources = 2,
                           .out = out) == 0);
        CHECK_VALUES(out[0], 0, 4.0);
        CHECK(out[1] == NULL);
        CHECK_NEAR(tg_item(z), 13.0, 0);
        tg_tape_free(t);
        tg_variable_free(x);
        tg_variable_free(y);
    });
}

static void row23_24_25_floor_round_argmax_none_sign_zero(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_from_f32(TG_SHAPE(3), 1.5, -0.5, 2.5));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *yf = tg_floor(x), *yc = tg_ceil(x), *yr = tg_round(x);
        tg_tensor *ya = tg_cast(tg_argmax(x, 0), TG_F32);
        tg_tensor *ys = tg_sign(x);
        tg_tape_end(t);
        CHECK(tg_gradient(t, yf, x) == NULL && !tg_has_error());
        CHECK(tg_gradient(t, yc, x) == NULL && !tg_has_error());
        CHECK(tg_gradient(t, yr, x) == NULL && !tg_has_error());
        CHECK(tg_gradient(t, ya, x) == NULL && !tg_has_error());
        CHECK_VALUES(tg_gradient(t, ys, x), 0, 0.0, 0.0, 0.0); /* zeros, not None */
        tg_tensor *g = NULL;
        CHECK(tg_gradients(t, .targets = &yf, .n_targets = 1, .sources = &x, .n_sources = 1,
                           .unconnected = TG_UNCONNECTED_ZERO, .out = &g) == 0);
        CHECK_VALUES(g, 0, 0.0, 0.0, 0.0);
        CHECK_VALUES(yr, 0, 2.0, -0.0, 2.0); /* half to even, as TF */
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row27_raw_data_copied_out_breaks_the_chain(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4));
        tg_tape *t = tg_tape_begin();
        tg_tensor *x2 = tg_square(x);
        float raw[4];
        tg_copy_out(x2, raw, sizeof raw); /* leaves tapegrad, like .numpy() */
        tg_tensor *again = tg_tensor_from(TG_F32, TG_SHAPE(2, 2), raw);
        tg_tensor *y = tg_mean(tg_mean(again, .axes = TG_AXES(0)), .axes = TG_AXES(0));
        tg_tape_end(t);
        CHECK_NEAR(tg_item(y), 7.5, 1e-7);
        CHECK(tg_gradient(t, y, x) == NULL && !tg_has_error());
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row28_variable_replaced_by_tensor(void)
{
    SCOPED({
        tg_tensor *v = tg_variable(tg_scalar(2.0));
        tg_tensor *x = v;
        for (int e = 0; e < 2; e++) {
            tg_tape *t = tg_tape_begin();
            tg_tensor *y = tg_add(x, tg_scalar(1.0));
            tg_tape_end(t);
            tg_tensor *g = tg_gradient(t, y, x);
            if (e == 0)
                CHECK_VALUES(g, 0, 1.0);
            else
                CHECK(g == NULL && !tg_has_error());
            tg_tape_free(t);
            x = tg_add(x, tg_scalar(1.0));
        }
        tg_variable_free(v);
    });
}

static void row29_branches_record_what_ran(void)
{
    SCOPED({
        tg_tensor *x = tg_scalar(1.0);
        tg_tensor *v0 = tg_variable(tg_scalar(2.0)), *v1 = tg_variable(tg_scalar(2.0));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_watch(t, x);
        tg_tensor *result = tg_item(x) > 0.0 ? tg_identity(v0) : tg_square(v1);
        tg_tape_end(t);
        tg_tensor *out[2];
        CHECK(tg_gradients(t, .targets = &result, .n_targets = 1, .sources = (tg_tensor *[]){v0, v1}, .n_sources = 2,
                           .out = out) == 0);
        CHECK_VALUES(out[0], 0, 1.0);
        CHECK(out[1] == NULL);
        CHECK(tg_gradient(t, result, x) == NULL && !tg_has_error());
        tg_tape_free(t);
        tg_variable_free(v0);
        tg_variable_free(v1);
    });
}

static void row31_jacobian(void)
{
    SCOPED({
        tg_tape *g = tg_tape_begin();
        tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1, 2);
        tg_watch(g, x);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(g);
        tg_tensor *j = tg_jacobian(g, y, x);
        CHECK(j && tg_rank(j) == 2 && tg_dim(j, 0) == 2 && tg_dim(j, 1) == 2);
        CHECK_VALUES(j, 0, 2, 0, 0, 4);
        EXPECT_ERROR(tg_jacobian(g, y, x) == NULL,
                     "A non-persistent GradientTape can only be used to compute one set of gradients (or jacobians)");
        tg_tape_free(g);
    });
}

static void row32_batch_jacobian(void)
{
    SCOPED({
        tg_tensor *x = tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4);
        tg_tape *g = tg_tape_begin(.persistent = true);
        tg_watch(g, x);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(g);
        tg_tensor *j = tg_batch_jacobian(g, y, x);
        CHECK(j && tg_rank(j) == 3);
        CHECK_VALUES(j, 0, 2, 0, 0, 4, 6, 0, 0, 8);
        tg_tensor *other = tg_from_f32(TG_SHAPE(3, 1), 1, 2, 3);
        EXPECT_ERROR(tg_batch_jacobian(g, other, x) == NULL,
                     "Need first dimension of target shape (3, 1) and source shape (2, 2) to match.");
        tg_tape_free(g);
    });
}

static void row33_assign_is_not_differentiable(void)
{
    SCOPED({
        tg_tensor *x0 = tg_variable(tg_scalar(3.0)), *x1 = tg_variable(tg_scalar(0.0));
        tg_tape *t = tg_tape_begin();
        tg_assign_add(x1, x0);
        tg_tensor *y = tg_square(x1);
        tg_tape_end(t);
        CHECK_NEAR(tg_item(y), 9.0, 0);
        CHECK(tg_gradient(t, y, x0) == NULL && !tg_has_error());
        CHECK(tg_variable_version(x1) == 1);
        tg_tape_free(t);
        tg_variable_free(x0);
        tg_variable_free(x1);
    });
}

/* Row 35: the backward clips dy to norm 0.5. */
static tg_tensor *identity_forward(tg_tensor *const *in, int n, void *user)
{
    (void)n;
    (void)user;
    return tg_identity(in[0]);
}

static int clip_backward(const tg_tensor *dy, tg_tensor *const *in, int n, const tg_tensor *out, tg_tensor **dx,
                         void *user)
{
    (void)in;
    (void)n;
    (void)out;
    (void)user;
    tg_tensor *norm = tg_sqrt(tg_sum(tg_square(dy)));
    tg_tensor *scale = tg_minimum(tg_scalar(1.0), tg_div(tg_scalar(0.5), norm));
    dx[0] = tg_mul(dy, scale);
    return dx[0] ? 0 : -1;
}

static void row35_custom_gradient(void)
{
    SCOPED({
        tg_tensor *v = tg_variable(tg_scalar(2.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *vv = tg_mul(v, v);
        tg_tensor *out = tg_custom_gradient(&vv, 1, identity_forward, clip_backward, NULL);
        tg_tape_end(t);
        CHECK_NEAR(tg_item(out), 4.0, 0);
        CHECK_VALUES(tg_gradient(t, out, v), 1e-7, 2.0);
        tg_tape_free(t);
        tg_variable_free(v);
    });
}

/* A user's backward that returns a bad gradient: the message names the user's
 * tg_custom_gradient line and the fix, not an internal error. */
enum { BAD_DTYPE, BAD_SHAPE, BAD_DEAD };
static tg_tensor *stale_grad;

static int bad_backward(const tg_tensor *dy, tg_tensor *const *in, int n, const tg_tensor *out, tg_tensor **dx,
                        void *user)
{
    (void)n;
    (void)out;
    int how = *(int *)user;
    dx[0] = how == BAD_DTYPE ? tg_cast(dy, TG_F64) : how == BAD_SHAPE ? tg_ones(TG_F32, TG_SHAPE(3)) : stale_grad;
    (void)in;
    return 0;
}

static void custom_gradient_bad_backward(void)
{
    const char *expect[] = {"dtype float64 for input 0 of dtype float32", "shape (3,) for input 0 of shape (2,)",
                            "scope had ended"};
    tg_scope *old = tg_scope_begin();
    stale_grad = tg_ones(TG_F32, TG_SHAPE(2));
    tg_scope_end(old);
    for (int how = BAD_DTYPE; how <= BAD_DEAD; how++) {
        SCOPED({
            tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1, 2);
            tg_tape *t = tg_tape_begin();
            tg_watch(t, x);
            int line = __LINE__ + 1;
            tg_tensor *y = tg_custom_gradient(&x, 1, identity_forward, bad_backward, &how);
            tg_tape_end(t);
            tg_clear_error();
            CHECK(tg_gradient(t, y, x) == NULL);
            char where[64];
            snprintf(where, sizeof where, "test_tape.c:%d", line);
            CHECK_ERROR(where);
            CHECK_ERROR("the backward function given to tg_custom_gradient");
            CHECK_ERROR(expect[how]);
            const char *e = tg_last_error();
            CHECK(e && !strstr(e, "internal error"));
            tg_tape_free(t);
        });
    }
}

static void row37_float64_gradients_and_dtype_mixing(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar_of(TG_F64, 1.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *y = tg_mul(x, tg_scalar_of(TG_F64, 3.0));
        EXPECT_ERROR(tg_add(x, tg_scalar(1.0)) == NULL, "cannot mix float64 and float32");
        tg_tape_end(t);
        tg_tensor *g = tg_gradient(t, y, x);
        CHECK(g && tg_dtype_of(g) == TG_F64);
        CHECK_VALUES(g, 0, 3.0);
        tg_tape_free(t);
        tg_variable_free(x);
    });
}

static void row38_edge_errors(void)
{
    SCOPED({
        tg_tensor *x = tg_variable(tg_scalar(1.0));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *y = tg_mul(x, x);
        tg_tape_end(t);
        EXPECT_ERROR(tg_gradient(t, NULL, x) == NULL, "`target` is NULL");
        tg_clear_error();
        EXPECT_ERROR(tg_tape_end(t) == -1, "is not recording");
        tg_tensor *i = tg_cast(y, TG_I32);
        CHECK(tg_gradient(t, i, x) == NULL && !tg_has_error()); /* no gradient, no error (row 8) */
        tg_clear_error(); /* a NULL argument keeps an earlier error: start clean */
        EXPECT_ERROR(tg_gradient(NULL, y, x) == NULL, "`tape` is NULL");
        tg_tape_free(t);
        EXPECT_ERROR(tg_gradient(t, y, x) == NULL, "already freed");
        tg_variable_free(x);
    });
}

/* Row 8: an integer or bool target has no gradient (TF: None, with the reason only at a
 * verbose log level), zeros with UNCONNECTED_ZERO, and it uses a non-persistent tape as
 * backprop.py does (the tape is dropped after imperative_grad). */
static void row08_integer_target_is_none(void)
{
    SCOPED({
        tg_tensor *v = tg_variable(tg_from_f32(TG_SHAPE(3), 0.5, 2.0, -1.0));
        tg_tape *t = tg_tape_begin();
        tg_tensor *best = tg_argmax(v, 0);
        tg_tape_end(t);
        CHECK(tg_dtype_of(best) == TG_I64);
        CHECK(tg_gradient(t, best, v) == NULL && !tg_has_error());
        CHECK(warnings_seen == 1 && strstr(last_warning, "must be floating"));
        EXPECT_ERROR(tg_gradient(t, best, v) == NULL,
                     "A non-persistent GradientTape can only be used to compute one set of gradients");
        tg_tape_free(t);
        tg_clear_error();

        t = tg_tape_begin();
        tg_tensor *positive = tg_greater(v, tg_scalar(0.0));
        tg_tape_end(t);
        tg_tensor *g[1];
        CHECK(tg_gradients(t, .targets = &positive, .n_targets = 1, .sources = &v, .n_sources = 1, .out = g,
                           .unconnected = TG_UNCONNECTED_ZERO) == 0);
        CHECK_VALUES(g[0], 0, 0, 0, 0);
        tg_tape_free(t);
        tg_variable_free(v);
    });
}

/* Row 29 (TF's control-flow guide): `result = v0 if x > 0 else v1**2`. The variable that
 * is itself the target gets 1.0, though no op read it; v1 and x get None. */
static void row29_variable_as_the_target(void)
{
    SCOPED({
        tg_tensor *x = tg_scalar(1.0);
        tg_tensor *v0 = tg_variable(tg_scalar(2.0)), *v1 = tg_variable(tg_scalar(2.0));
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_watch(t, x);
        tg_tensor *result = tg_item(tg_greater(x, tg_scalar(0.0))) ? v0 : tg_square(v1);
        tg_tape_end(t);
        tg_tensor *g[2];
        CHECK(tg_gradients(t, .targets = &result, .n_targets = 1, .sources = (tg_tensor *[]){v0, v1}, .n_sources = 2,
                           .out = g) == 0);
        CHECK_VALUES(g[0], 0, 1.0);
        CHECK(g[1] == NULL);
        CHECK(tg_gradient(t, result, x) == NULL && !tg_has_error());
        tg_diagnosis d;
        CHECK(tg_explain(t, result, v0, &d) == 0 && d.cause == TG_CAUSE_NONE);
        tg_tape_free(t);
        tg_variable_free(v0);
        tg_variable_free(v1);
    });
}

static void nested_tapes_must_end_in_order(void)
{
    SCOPED({
        tg_tape *outer = tg_tape_begin(), *inner = tg_tape_begin();
        EXPECT_ERROR(tg_tape_end(outer) == -1, "end the inner tape first");
        CHECK(tg_tape_end(inner) == 0 && tg_tape_end(outer) == 0);
        tg_tape_free(inner);
        tg_tape_free(outer);
    });
}

static void gradient_after_scope_ended_is_an_error(void)
{
    tg_scope *outer = tg_scope_begin();
    tg_tensor *x = tg_scalar(2.0);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_scope *inner = tg_scope_begin();
    tg_tensor *h = tg_mul(x, x);
    tg_tensor *y = tg_mul(h, x);
    tg_scope_end(inner);
    tg_tape_end(t);
    EXPECT_ERROR(tg_gradient(t, y, x) == NULL, "was used after its scope ended");
    tg_tape_free(t);
    tg_scope_end(outer);
}

static void shared_variable_reads_accumulate(void)
{
    SCOPED({
        /* fan-out: w used three times; d/dw (w*x + w^2 + 3w) = x + 2w + 3 */
        tg_tensor *w = tg_variable(tg_scalar(1.5));
        tg_tensor *x = tg_scalar(4.0);
        tg_tape *t = tg_tape_begin();
        tg_tensor *y = tg_add(tg_add(tg_mul(w, x), tg_mul(w, w)), tg_mul(tg_scalar(3.0), w));
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, w), 0, 4.0 + 3.0 + 3.0);
        tg_tape_free(t);
        tg_variable_free(w);
    });
}

int main(void)
{
    RUN(row01_trainable_variable_is_watched);
    RUN(row02_03_variable_created_before_or_inside);
    RUN(row04_05_watch_accessed_variables_off);
    RUN(row06_constants_need_watch);
    RUN(row07_non_trainable_and_derived_tensors);
    RUN(row08_integer_sources_get_none_and_a_warning);
    RUN(row09_26_comparisons_and_integer_casts_cut);
    RUN(row10_11_unconnected_none_or_zero);
    RUN(row12_non_persistent_tape_is_used_once);
    RUN(row13_persistent_tape_many_calls);
    RUN(row14_gradient_inside_the_block);
    RUN(row15_assign_after_recording_gives_the_recorded_value);
    RUN(row16_stop_recording);
    RUN(row17_reset);
    RUN(row18_nested_tapes_second_and_third_order);
    RUN(row19_non_scalar_and_multiple_targets_are_summed);
    RUN(row21_output_gradients);
    RUN(row22_stop_gradient_blocks_one_path);
    RUN(row23_24_25_floor_round_argmax_none_sign_zero);
    RUN(row27_raw_data_copied_out_breaks_the_chain);
    RUN(row28_variable_replaced_by_tensor);
    RUN(row29_branches_record_what_ran);
    RUN(row31_jacobian);
    RUN(row32_batch_jacobian);
    RUN(row33_assign_is_not_differentiable);
    RUN(row35_custom_gradient);
    RUN(custom_gradient_bad_backward);
    RUN(row37_float64_gradients_and_dtype_mixing);
    RUN(row38_edge_errors);
    RUN(row08_integer_target_is_none);
    RUN(row29_variable_as_the_target);
    RUN(nested_tapes_must_end_in_order);
    RUN(gradient_after_scope_ended_is_an_error);
    RUN(shared_variable_reads_accumulate);
    return TEST_SUMMARY();
}
