/* The diagnosis of missing gradients: each cause told apart, with the user's line. */
#include "check.h"
#include "tmpfiles.h"

static char warning[2048];
static int n_warnings;

static void on_warning(const char *msg, void *user)
{
    (void)user;
    n_warnings++;
    snprintf(warning, sizeof warning, "%s", msg);
}

static void setup(void)
{
    n_warnings = 0;
    warning[0] = 0;
    tg_set_warning_handler(on_warning, NULL);
}

/* Explains y w.r.t. x on tape t and checks the cause and the line it names. */
#define CHECK_CAUSE(t, y, x, expected_cause, expected_line)                                                \
    do {                                                                                                   \
        tg_diagnosis d_;                                                                                   \
        CHECK(tg_explain(t, y, x, &d_) == 0);                                                              \
        if (d_.cause != (expected_cause) || d_.where.line != (expected_line))                              \
            printf("  got cause %s at line %d: %s\n", tg_cause_name(d_.cause), d_.where.line, d_.message); \
        CHECK(d_.cause == (expected_cause));                                                               \
        CHECK(d_.where.line == (expected_line));                                                           \
    } while (0)

static void not_read(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(2.0), .name = "w"), *u = tg_variable(tg_scalar(3.0), .name = "u");
    tg_tape *t = tg_tape_begin();
    int tape_line = __LINE__ - 1;
    tg_tensor *y = tg_square(u);
    tg_tape_end(t);
    CHECK(tg_gradient(t, y, w) == NULL && !tg_has_error());
    CHECK_CAUSE(t, y, w, TG_CAUSE_NOT_READ, tape_line);
    tg_diagnosis d;
    tg_explain(t, y, w, &d);
    CHECK(strstr(d.message, "variable 'w': it was never read") != NULL);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_variable_free(u);
    tg_scope_end(s);
}

static void forward_pass_before_the_tape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 1), 0.5, -1), .name = "dense/kernel");
    tg_tensor *x = tg_from_f32(TG_SHAPE(1, 2), 1, 2);
    int pred_line = __LINE__ + 1;
    tg_tensor *pred = tg_matmul(x, w);
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_mean(tg_square(pred));
    tg_tape_end(t);
    CHECK(tg_gradient(t, loss, w) == NULL);
    CHECK_CAUSE(t, loss, w, TG_CAUSE_OUTSIDE_TAPE, pred_line);
    tg_diagnosis d;
    tg_explain(t, loss, w, &d);
    CHECK(d.op && strcmp(d.op, "tg_matmul") == 0);
    CHECK(strstr(d.message, "before the tape began") != NULL);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void not_watched(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *frozen = tg_variable(tg_scalar(2.0), .name = "frozen", .trainable = false);
    tg_tensor *v = tg_variable(tg_scalar(2.0), .name = "v");
    tg_tensor *c = tg_scalar(4.0);
    tg_tape *t = tg_tape_begin(.persistent = true);
    int read_line = __LINE__ + 1;
    tg_tensor *y1 = tg_mul(frozen, frozen);
    tg_tensor *y2 = tg_mul(c, c);
    tg_tape_end(t);
    CHECK_CAUSE(t, y1, frozen, TG_CAUSE_NOT_WATCHED, read_line);
    tg_diagnosis d;
    tg_explain(t, y1, frozen, &d);
    CHECK(strstr(d.message, "not trainable") != NULL);
    CHECK_CAUSE(t, y2, c, TG_CAUSE_NOT_WATCHED, tg_tensor_loc(c).line);
    tg_explain(t, y2, c, &d);
    CHECK(strstr(d.message, "tg_watch") != NULL);
    /* a plain tensor fed straight into an op the tape records (its other input is watched) */
    tg_tensor *image = tg_from_f32(TG_SHAPE(1, 2), 0.5, 0.25);
    tg_tape *t2 = tg_tape_begin();
    tg_tensor *score = tg_sum(tg_mul(image, v));
    tg_tape_end(t2);
    CHECK(tg_gradient(t2, score, image) == NULL && !tg_has_error());
    CHECK_CAUSE(t2, score, image, TG_CAUSE_NOT_WATCHED, tg_tensor_loc(image).line);
    tg_tape_free(t2);
    tg_tape_free(t);

    tg_tape *off = tg_tape_begin(.watch_accessed_variables = false);
    int off_line = __LINE__ + 1;
    tg_tensor *y3 = tg_square(v);
    tg_tape_end(off);
    CHECK(tg_gradient(off, y3, v) == NULL);
    CHECK_CAUSE(off, y3, v, TG_CAUSE_NOT_WATCHED, off_line);
    tg_explain(off, y3, v, &d);
    CHECK(strstr(d.message, "watch_accessed_variables=false") != NULL);
    tg_tape_free(off);
    tg_variable_free(frozen);
    tg_variable_free(v);
    tg_scope_end(s);
}

static void cut_by_stop_gradient_and_non_differentiable_ops(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(3), 1.5, -0.5, 2.5), .name = "w");
    tg_tape *t = tg_tape_begin(.persistent = true);
    int stop_line = __LINE__ + 1;
    tg_tensor *a = tg_stop_gradient(tg_square(w));
    tg_tensor *ya = tg_sum(a);
    int floor_line = __LINE__ + 1;
    tg_tensor *f = tg_floor(w);
    tg_tensor *yf = tg_sum(tg_mul(f, f));
    int argmax_line = __LINE__ + 1;
    tg_tensor *am = tg_cast(tg_argmax(w, 0), TG_F32);
    int greater_line = __LINE__ + 1;
    tg_tensor *g = tg_cast(tg_greater(w, tg_scalar(0)), TG_F32);
    tg_tensor *yg = tg_sum(g);
    int cast_line = __LINE__ + 1;
    tg_tensor *ci = tg_cast(tg_cast(w, TG_I32), TG_F32);
    tg_tensor *yc = tg_sum(ci);
    tg_tape_end(t);
    CHECK_CAUSE(t, ya, w, TG_CAUSE_STOP_GRADIENT, stop_line);
    CHECK_CAUSE(t, yf, w, TG_CAUSE_NON_DIFFERENTIABLE, floor_line);
    CHECK_CAUSE(t, am, w, TG_CAUSE_NON_DIFFERENTIABLE, argmax_line);
    CHECK_CAUSE(t, yg, w, TG_CAUSE_NON_DIFFERENTIABLE, greater_line);
    CHECK_CAUSE(t, yc, w, TG_CAUSE_NON_DIFFERENTIABLE, cast_line);
    tg_diagnosis d;
    tg_explain(t, yf, w, &d);
    CHECK(d.op && strcmp(d.op, "tg_floor") == 0 && strstr(d.message, "has no gradient"));
    tg_explain(t, am, w, &d);
    CHECK(d.op && strcmp(d.op, "tg_argmax") == 0);
    /* one cut path and one open path: the gradient is there */
    tg_tape *t2 = tg_tape_begin();
    tg_tensor *mixed = tg_add(tg_sum(tg_floor(w)), tg_sum(w));
    tg_tape_end(t2);
    CHECK_CAUSE(t2, mixed, w, TG_CAUSE_NONE, tg_tensor_loc(mixed).line);
    tg_tape_free(t2);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void computed_outside_the_tape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(3.0), .name = "w");
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_tensor *h = tg_square(w);
    int stop_line = __LINE__ + 1;
    tg_tape_stop_recording(t);
    int paused_line = __LINE__ + 1;
    tg_tensor *p = tg_mul(h, h);
    tg_tape_resume_recording(t);
    tg_tensor *yp = tg_add(p, tg_scalar(1));
    float raw;
    int copy_line = __LINE__ + 1;
    tg_copy_out(h, &raw, sizeof raw);
    int raw_line = __LINE__ + 1;
    tg_tensor *copied = tg_tensor_from(TG_F32, TG_SCALAR_SHAPE, &raw);
    tg_tensor *yr = tg_mul(copied, tg_scalar(2));
    int end_line = __LINE__ + 1;
    tg_tape_end(t);
    int after_line = __LINE__ + 1;
    tg_tensor *after = tg_mul(h, tg_scalar(2));
    CHECK_CAUSE(t, yp, w, TG_CAUSE_OUTSIDE_TAPE, paused_line);
    tg_diagnosis d;
    tg_explain(t, yp, w, &d);
    char expect[128];
    snprintf(expect, sizeof expect, "inside stop_recording (begun at %s:%d)", __FILE__, stop_line);
    CHECK(strstr(d.message, expect) != NULL);
    CHECK_CAUSE(t, yr, w, TG_CAUSE_COPIED_OUT, copy_line);
    tg_explain(t, yr, w, &d);
    snprintf(expect, sizeof expect, "built from those values at %s:%d is a constant", __FILE__, raw_line);
    CHECK(strstr(d.message, "tg_copy_out copied") != NULL && strstr(d.message, expect) != NULL);
    CHECK_CAUSE(t, after, w, TG_CAUSE_OUTSIDE_TAPE, after_line);
    tg_explain(t, after, w, &d);
    snprintf(expect, sizeof expect, "after the tape ended at %s:%d", __FILE__, end_line);
    CHECK(strstr(d.message, expect) != NULL);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void a_constant_is_not_blamed_without_a_copy_out(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(3.0), .name = "w"), *u = tg_variable(tg_scalar(1.0), .name = "u");
    tg_tape *t = tg_tape_begin();
    tg_tensor *labels = tg_from_f32(TG_SHAPE(2), 1, 2); /* real data, made while recording */
    tg_tensor *y = tg_sum(tg_mul(tg_square(u), labels));
    tg_tape_end(t);
    tg_diagnosis d;
    CHECK(tg_explain(t, y, w, &d) == 0 && d.cause == TG_CAUSE_NOT_READ);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_variable_free(u);
    tg_scope_end(s);
}

static void tape_used(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(3.0), .name = "w");
    tg_tape *t = tg_tape_begin();
    tg_tensor *y = tg_square(w);
    tg_tape_end(t);
    CHECK(tg_gradient(t, y, w) != NULL);
    CHECK_CAUSE(t, y, w, TG_CAUSE_NONE, tg_tensor_loc(y).line); /* used once: nothing wrong yet */
    int refused_line = __LINE__ + 1;
    CHECK(tg_gradient(t, y, w) == NULL);
    CHECK_ERROR("A non-persistent GradientTape can only be used");
    CHECK_CAUSE(t, y, w, TG_CAUSE_TAPE_USED, refused_line);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void stale_read_and_strict_mode(void)
{
    setup();
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(3.0), .name = "w");
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_tensor *y = tg_square(w);
    tg_tape_end(t);
    int assign_line = __LINE__ + 1;
    tg_assign_sub(w, tg_scalar(1.0));
    CHECK_VALUES(tg_gradient(t, y, w), 0, 6.0);
    CHECK(n_warnings == 1 && strstr(warning, "'w' was assigned at"));
    CHECK_CAUSE(t, y, w, TG_CAUSE_STALE_READ, assign_line);
    tg_set_check(TG_CHECK_STRICT);
    EXPECT_ERROR(tg_gradient(t, y, w) == NULL, "an error in strict mode");
    tg_set_check(0);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
    tg_set_warning_handler(NULL, NULL);
}

static void integer_dtype(void)
{
    setup();
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_scalar_of(TG_I32, 3);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_cast(tg_square(x), TG_F32);
    tg_tape_end(t);
    CHECK_CAUSE(t, y, x, TG_CAUSE_INTEGER_DTYPE, tg_tensor_loc(x).line);
    tg_tape_free(t);
    tg_scope_end(s);
    tg_set_warning_handler(NULL, NULL);
}

static void zero_gradient(void)
{
    tg_scope *s = tg_scope_begin();
    /* every ReLU unit inactive */
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2), -1, -2), .name = "w");
    tg_tape *t = tg_tape_begin(.persistent = true);
    int relu_line = __LINE__ + 1;
    tg_tensor *r = tg_relu(w);
    tg_tensor *y = tg_sum(r);
    /* categorical cross-entropy over a last axis of size 1: p / sum(p) == 1 */
    tg_tensor *p = tg_sigmoid(tg_reshape(w, TG_SHAPE(2, 1)));
    tg_tensor *norm = tg_div(p, tg_sum(p, .axes = TG_AXES(-1), .keepdims = true));
    tg_tensor *cce = tg_neg(tg_sum(tg_log(tg_clip_by_value(norm, 1e-7, 1 - 1e-7))));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, y, w), 0, 0, 0);
    CHECK_CAUSE(t, y, w, TG_CAUSE_ZERO_GRADIENT, relu_line);
    tg_diagnosis d;
    tg_explain(t, y, w, &d);
    CHECK(d.op && strcmp(d.op, "tg_relu") == 0);
    CHECK_VALUES(tg_gradient(t, cce, w), 0, 0, 0);
    tg_explain(t, cce, w, &d);
    CHECK(d.cause == TG_CAUSE_ZERO_GRADIENT);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void unconnected(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(2.0), .name = "w"), *u = tg_variable(tg_scalar(3.0), .name = "u");
    tg_tape *t = tg_tape_begin();
    int unused_line = __LINE__ + 1;
    tg_tensor *unused = tg_square(w);
    int y_line = __LINE__ + 1;
    tg_tensor *y = tg_square(u);
    tg_tape_end(t);
    (void)unused;
    /* named where w's value stops (the last op computed from it); the target takes nothing
     * w's computation was made from, so that is the line */
    CHECK_CAUSE(t, y, w, TG_CAUSE_UNCONNECTED, unused_line);
    tg_diagnosis d;
    tg_explain(t, y, w, &d);
    CHECK(strstr(d.message, "TG_UNCONNECTED_ZERO") != NULL && strstr(d.message, "goes on at") == NULL);
    (void)y_line;
    tg_tape_free(t);
    tg_variable_free(w);
    tg_variable_free(u);
    tg_scope_end(s);
}

static void kept_for_optimizers_after_the_tape_is_freed(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(2.0), .name = "w"), *b = tg_variable(tg_scalar(1.0), .name = "b");
    tg_tape *t = tg_tape_begin();
    int floor_line = __LINE__ + 1;
    tg_tensor *y = tg_add(tg_floor(w), b);
    tg_tape_end(t);
    tg_tensor *g[2];
    CHECK(tg_gradients(t, .targets = &y, .n_targets = 1, .sources = (tg_tensor *[]){w, b}, .n_sources = 2, .out = g) ==
          0);
    CHECK(g[0] == NULL && g[1] != NULL);
    tg_tape_free(t);
    tg_diagnosis d;
    CHECK(tg_explain_missing(w, &d) == 0 && d.cause == TG_CAUSE_NON_DIFFERENTIABLE && d.where.line == floor_line);
    CHECK(tg_explain_missing(b, &d) == -1 && d.cause == TG_CAUSE_NONE && d.message[0] == 0);
    /* a later call that gives w a gradient forgets the old diagnosis */
    t = tg_tape_begin();
    y = tg_mul(w, b);
    tg_tape_end(t);
    CHECK(tg_gradient(t, y, w) != NULL);
    CHECK(tg_explain_missing(w, &d) == -1);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_scope_end(s);
}

/* Eager checking warns at gradient calls, at the culprit line, and never about an op
 * that may be fine (a floor for a metric, a read of a variable outside a tape). */
static void eager_checks_warn_at_the_gradient_call(void)
{
    setup();
    tg_set_check(TG_CHECK_EAGER);
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar(2.0), .name = "w");
    tg_tape *t = tg_tape_begin();
    int floor_line = __LINE__ + 1;
    tg_tensor *f = tg_floor(w);
    tg_tape_end(t);
    tg_tensor *late = tg_mul(w, tg_scalar(2));
    CHECK(n_warnings == 0);
    tg_tensor *g = tg_gradient(t, f, w);
    char expect[64];
    snprintf(expect, sizeof expect, ":%d: [non_differentiable] ", floor_line);
    CHECK(g == NULL && n_warnings == 1 && strstr(warning, expect));
    (void)late;
    tg_tape_free(t);
    /* zeros asked for: no warning */
    t = tg_tape_begin();
    f = tg_floor(w);
    tg_tape_end(t);
    tg_tensor *z[1];
    CHECK(tg_gradients(t, .targets = &f, .n_targets = 1, .sources = &w, .n_sources = 1, .out = z,
                       .unconnected = TG_UNCONNECTED_ZERO) == 0);
    CHECK(z[0] && n_warnings == 1);
    tg_tape_free(t);
    tg_variable_free(w);
    tg_scope_end(s);
    tg_set_check(0);
    tg_set_warning_handler(NULL, NULL);
}

/* The picture of a cut path: DOT that Graphviz renders, the cut in red with its cause and
 * the user's line. A missing or failing `dot` fails the test (tools/install-deps.sh
 * installs Graphviz). */
static void picture_of_the_broken_path(void)
{
    tg_scope *s = tg_scope_begin();
    /* a name with a quote and a backslash: the DOT must escape them */
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 1), 0.5, -1), .name = "dense/\"kernel\\");
    tg_tensor *x = tg_from_f32(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    tg_tape *t = tg_tape_begin();
    int floor_line = __LINE__ + 1;
    tg_tensor *h = tg_floor(tg_matmul(x, w));
    tg_tensor *loss = tg_mean(tg_square(h));
    tg_tape_end(t);
    CHECK(make_tmpdir("tg-explain-dot"));
    FILE *f = fopen(at("path.dot"), "w");
    CHECK(f && tg_explain_dot(t, loss, w, f) == 0);
    if (f)
        fclose(f);
    char cmd[1200], text[1 << 14] = {0};
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s'", at("path.dot"), at("path.svg"));
    CHECK(system(cmd) == 0);
    f = fopen(at("path.svg"), "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = 0;
    char where[64];
    snprintf(where, sizeof where, "test_explain.c:%d", floor_line);
    CHECK(strstr(text, "<svg") && strstr(text, "tg_floor") && strstr(text, where));
    CHECK(strstr(text, "non_differentiable") && strstr(text, "red"));
    remove(at("path.dot"));
    remove(at("path.svg"));
    rmdir(tmpdir);
    /* bad input: a NULL stream, a failed write, a freed tape */
    EXPECT_ERROR(tg_explain_dot(t, loss, w, NULL) == -1, "the stream is NULL");
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        EXPECT_ERROR(tg_explain_dot(t, loss, w, full) == -1, "writing the picture failed");
        fclose(full);
    }
    tg_tape_free(t);
    EXPECT_ERROR(tg_explain_dot(t, loss, w, stdout) == -1, "already freed");
    tg_clear_error();
    tg_variable_free(w);
    tg_scope_end(s);
}

static void bad_input(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_scalar(1);
    tg_diagnosis d;
    EXPECT_ERROR(tg_explain(NULL, x, x, &d) == -1, "`tape` is NULL");
    tg_tape *t = tg_tape_begin();
    tg_tape_end(t);
    EXPECT_ERROR(tg_explain(t, x, x, NULL) == -1, "`out` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_explain(t, NULL, x, &d) == -1, "`target` is NULL");
    tg_scope *inner = tg_scope_begin();
    tg_tensor *dead = tg_scalar(2);
    tg_scope_end(inner);
    EXPECT_ERROR(tg_explain(t, dead, x, &d) == -1, "used after its scope ended");
    tg_tape_free(t);
    EXPECT_ERROR(tg_explain(t, x, x, &d) == -1, "already freed");
    tg_scope_end(s);
}

int main(void)
{
    RUN(not_read);
    RUN(forward_pass_before_the_tape);
    RUN(not_watched);
    RUN(cut_by_stop_gradient_and_non_differentiable_ops);
    RUN(computed_outside_the_tape);
    RUN(a_constant_is_not_blamed_without_a_copy_out);
    RUN(tape_used);
    RUN(stale_read_and_strict_mode);
    RUN(integer_dtype);
    RUN(zero_gradient);
    RUN(unconnected);
    RUN(kept_for_optimizers_after_the_tape_is_freed);
    RUN(eager_checks_warn_at_the_gradient_call);
    RUN(picture_of_the_broken_path);
    RUN(bad_input);
    return TEST_SUMMARY();
}
