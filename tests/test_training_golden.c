/* Whole training steps against an independent framework: tests/fixtures/training_golden.txt,
 * written by tools/make_training_fixtures.py with PyTorch float64 (Keras 3's layouts,
 * losses, Adam and SGD formulas and fit history; see the script).
 *
 * Two models, built with tapegrad's layers and given the fixture's weights:
 *   mlp  Dense(4 -> 5, relu) -> Dense(5 -> 3), sparse categorical cross-entropy from logits
 *   cnn  Conv2D(3, 3x3, SAME, relu) -> MaxPooling2D(2) -> Flatten -> Dense(4), NHWC input
 *        [2, 6, 6, 2], categorical cross-entropy from logits
 * Checked in float64 to a relative 1e-10: the logits, the loss, the gradient of every
 * trainable variable, the variables after one Adam step (tg_apply_gradients), and tg_fit's
 * "loss" history over full-batch epochs (Adam for both, SGD with momentum for the MLP) with
 * the variables where fit ends. The MLP step also runs in float32, checked to 1e-5.
 * Errors are relative to each golden value, or to 1e-3 (float32: 1e-2) of the largest in
 * its array where the value is smaller than that; the largest seen is printed at the end.
 *
 * A missing fixture, case or record fails the test. */
#include <stdlib.h>

#include "check.h"
#include "fixture.h"

/* ---- the fixture ------------------------------------------------------------------------- */
#define MAXV    512
#define MAXVARS 8
#define MAXTRAJ 2

typedef struct arr {
    bool present;
    char name[64];
    tg_shape shape;
    int n;
    double v[MAXV];
} arr;

typedef struct traj {
    char opt[16];
    int steps;
    double lr, momentum;
    int n_loss;
    double loss[64];
    int n_final;
    arr final[MAXVARS];
} traj;

typedef struct gcase {
    char name[32];
    arr x, y, logits;
    int n_vars, n_grads, n_adam, n_traj;
    arr vars[MAXVARS], grads[MAXVARS], adam[MAXVARS];
    bool has_loss;
    double loss, adam_lr;
    traj traj[MAXTRAJ];
    bool ended;
} gcase;

static gcase cases[4];
static int n_cases = -1;

/* "[NAME] RANK DIM... : V V ..." with as many values as the shape holds. */
static bool parse_array(char *s, bool named, arr *a)
{
    if (named && !fx_word(&s, a->name, sizeof a->name))
        return false;
    a->present = fx_array(&s, &a->shape, a->v, MAXV);
    a->n = (int)fx_size(&a->shape);
    return a->present;
}

static bool parse_record(gcase *c, const char *tag, char *rest)
{
    if (!strcmp(tag, "x"))
        return parse_array(rest, false, &c->x);
    if (!strcmp(tag, "y"))
        return parse_array(rest, false, &c->y);
    if (!strcmp(tag, "logits"))
        return parse_array(rest, false, &c->logits);
    if (!strcmp(tag, "loss"))
        return (c->has_loss = fx_number(&rest, &c->loss));
    if (!strcmp(tag, "adam_step"))
        return fx_number(&rest, &c->adam_lr);
    if (!strcmp(tag, "var"))
        return c->n_vars < MAXVARS && parse_array(rest, true, &c->vars[c->n_vars++]);
    if (!strcmp(tag, "grad"))
        return c->n_grads < MAXVARS && parse_array(rest, true, &c->grads[c->n_grads++]);
    if (!strcmp(tag, "adam"))
        return c->n_adam < MAXVARS && parse_array(rest, true, &c->adam[c->n_adam++]);
    if (!strcmp(tag, "trajectory")) {
        if (c->n_traj == MAXTRAJ)
            return false;
        traj *t = &c->traj[c->n_traj++];
        if (!fx_word(&rest, t->opt, sizeof t->opt) || !fx_int(&rest, &t->steps) || !fx_number(&rest, &t->lr) ||
            !fx_number(&rest, &t->momentum) || !fx_char(&rest, ':'))
            return false;
        t->n_loss = fx_numbers(&rest, t->loss, 64);
        return t->n_loss == t->steps;
    }
    if (!strcmp(tag, "final")) {
        char opt[16];
        if (c->n_traj == 0 || !fx_word(&rest, opt, sizeof opt))
            return false;
        traj *t = &c->traj[c->n_traj - 1];
        return !strcmp(opt, t->opt) && t->n_final < MAXVARS && parse_array(rest, true, &t->final[t->n_final++]);
    }
    return false;
}

/* The number of cases, or -1 (with a message) when the file is missing or malformed. */
static int load_cases(void)
{
    static fx_reader r;
    if (!fx_open(&r, "training_golden.txt", "tools/make_training_fixtures.py")) {
        printf("  %s\n", r.error);
        return -1;
    }
    int n = 0;
    gcase *c = NULL;
    char tag[32], *rest;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        bool ok;
        if (!strcmp(tag, "case")) {
            ok = !c && n < (int)(sizeof cases / sizeof cases[0]);
            if (ok) {
                c = &cases[n++];
                memset(c, 0, sizeof *c);
                ok = fx_word(&rest, c->name, sizeof c->name);
            }
        } else if (!strcmp(tag, "end")) {
            ok = c != NULL;
            if (ok)
                c->ended = true;
            c = NULL;
        } else {
            ok = c && parse_record(c, tag, rest);
        }
        if (!ok)
            fx_fail(&r, "a malformed `%s` record", tag);
    }
    fx_close(&r);
    if (!r.failed && c)
        fx_fail(&r, "the file ends inside case %s", c->name);
    if (r.failed)
        printf("  %s\n", r.error);
    return r.failed ? -1 : n;
}

static const gcase *find_case(const char *name)
{
    for (int i = 0; i < n_cases; i++)
        if (!strcmp(cases[i].name, name))
            return &cases[i];
    printf("  the fixture has no case \"%s\"\n", name);
    return NULL;
}

static const traj *find_traj(const gcase *c, const char *opt)
{
    if (!c)
        return NULL; /* find_case said why */
    for (int i = 0; i < c->n_traj; i++)
        if (!strcmp(c->traj[i].opt, opt))
            return &c->traj[i];
    printf("  case \"%s\" has no %s trajectory\n", c->name, opt);
    return NULL;
}

/* ---- comparisons ------------------------------------------------------------------------- */
/* Relative error of each element, where values much smaller than the array's largest count
 * against that floor (floor_frac * max |golden|) rather than their own size. */
typedef struct tolerance {
    double rtol, floor_frac;
    double *worst; /* the largest deviation seen, for the summary */
} tolerance;
static double worst64, worst32;
static const tolerance TOL64 = {1e-10, 1e-3, &worst64};
static const tolerance TOL32 = {1e-5, 1e-2, &worst32};

/* got[i]'s deviation from golden[i] under tol; NaN counts as infinite. */
static double element_deviation(double got, double golden, double scale, tolerance tol)
{
    double d = fabs(got - golden) / fmax(fabs(golden), tol.floor_frac * scale);
    return isnan(d) ? INFINITY : d;
}

/* The largest deviation of t from golden (above tol.rtol is a failure), or INFINITY when t
 * is NULL or its shape differs. Copies t's values to got (MAXV doubles) and the index of
 * the worst element to *at. */
static double deviation_at(const tg_tensor *t, const arr *golden, tolerance tol, double *got, int *at)
{
    *at = -1;
    if (!t || !golden->present || tg_size(t) != golden->n || tg_rank(t) != golden->shape.rank)
        return INFINITY;
    for (int i = 0; i < golden->shape.rank; i++)
        if (tg_dim(t, i) != golden->shape.dims[i])
            return INFINITY;
    if (tg_copy_out_f64(t, got, golden->n) != 0)
        return INFINITY;
    double scale = 0, worst = 0;
    for (int i = 0; i < golden->n; i++)
        scale = fmax(scale, fabs(golden->v[i]));
    for (int i = 0; i < golden->n; i++) {
        double d = element_deviation(got[i], golden->v[i], scale, tol);
        if (d > worst || *at < 0)
            worst = d, *at = i;
    }
    return worst;
}

static double deviation(const tg_tensor *t, const arr *golden, tolerance tol)
{
    double got[MAXV];
    int at;
    return deviation_at(t, golden, tol, got, &at);
}

static bool close_to(const char *what, const tg_tensor *t, const arr *golden, tolerance tol)
{
    double got[MAXV];
    int at;
    double d = deviation_at(t, golden, tol, got, &at);
    *tol.worst = fmax(*tol.worst, d);
    if (d <= tol.rtol)
        return true;
    if (!t)
        printf("  %s: NULL (%s)\n", what, tg_last_error() ? tg_last_error() : "no error");
    else if (at < 0)
        printf("  %s: %lld values, golden %d (or a shape that differs)\n", what, (long long)tg_size(t), golden->n);
    else
        printf("  %s[%d] = %.17g, golden %.17g: relative deviation %.3g > %g\n", what, at, got[at], golden->v[at], d,
               tol.rtol);
    return false;
}

static bool scalar_close(const char *what, double got, double golden, tolerance tol)
{
    double d = element_deviation(got, golden, fabs(golden), tol);
    *tol.worst = fmax(*tol.worst, d);
    if (d <= tol.rtol)
        return true;
    printf("  %s = %.17g, golden %.17g: relative deviation %.3g > %g\n", what, got, golden, d, tol.rtol);
    return false;
}

/* ---- the models ----------------------------------------------------------------------------- */
static tg_tensor *golden_tensor(const arr *a, tg_dtype dtype)
{
    tg_tensor *t = tg_tensor_from(TG_F64, a->shape, a->v);
    return dtype == TG_F64 ? t : tg_cast(t, dtype);
}

/* Integer class labels, as the sparse loss takes them. */
static tg_tensor *golden_labels(const arr *a)
{
    int32_t v[MAXV];
    for (int i = 0; i < a->n; i++)
        v[i] = (int32_t)a->v[i];
    return tg_tensor_from(TG_I32, a->shape, v);
}

static tg_model *make_model(const char *name, tg_dtype dtype)
{
    tg_sequential_opts o = tg_sequential_options(.seed = 7, .dtype = dtype);
    if (!strcmp(name, "mlp"))
        return tg_sequential_with(o, tg_dense(.units = 5, .activation = TG_RELU, .input_dim = 4), tg_dense(.units = 3));
    return tg_sequential_with(o,
                              tg_conv2d_layer(.filters = 3, .kernel_size = {3, 3}, .padding = TG_PADDING_SAME,
                                              .activation = TG_RELU, .input_shape = TG_SHAPE(6, 6, 2)),
                              tg_max_pooling2d(.pool_size = {2, 2}), tg_flatten(), tg_dense(.units = 4));
}

static tg_loss loss_of(const char *name)
{
    return (tg_loss){.kind = !strcmp(name, "mlp") ? TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY
                                                  : TG_LOSS_CATEGORICAL_CROSSENTROPY,
                     .from_logits = true};
}

static tg_tensor *labels_of(const gcase *c, tg_dtype dtype)
{
    return !strcmp(c->name, "mlp") ? golden_labels(&c->y) : golden_tensor(&c->y, dtype);
}

/* The model of case c with the fixture's weights, its trainable variables matching the
 * fixture's names and order (which the golden gradients and updates follow). */
static tg_model *golden_model(const gcase *c, tg_dtype dtype)
{
    tg_model *m = make_model(c->name, dtype);
    CHECK(m != NULL);
    if (!m)
        return NULL;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    bool ok = n == c->n_vars;
    if (!ok)
        printf("  %s: the model has %d trainable variables, the fixture %d\n", c->name, n, c->n_vars);
    tg_scope *s = tg_scope_begin();
    for (int i = 0; ok && i < n; i++) {
        ok = !strcmp(tg_variable_name(vars[i]), c->vars[i].name);
        if (!ok)
            printf("  %s: variable %d is %s, the fixture's %s\n", c->name, i, tg_variable_name(vars[i]),
                   c->vars[i].name);
        else
            ok = tg_assign(vars[i], golden_tensor(&c->vars[i], dtype)) == 0;
    }
    tg_scope_end(s);
    CHECK(ok);
    if (!ok) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* ---- one step: forward, loss, gradients, one Adam update ------------------------------------ */
static void check_step(const char *name, tg_dtype dtype, tolerance tol)
{
    const gcase *c = find_case(name);
    REQUIRE(c != NULL);
    tg_scope *s = tg_scope_begin();
    tg_model *m = golden_model(c, dtype);
    if (!m) {
        tg_scope_end(s);
        return;
    }
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_tensor *x = golden_tensor(&c->x, dtype), *y = labels_of(c, dtype);
    tg_loss loss_kind = loss_of(name);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *logits = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_compute_loss(&loss_kind, y, logits, NULL);
    tg_tape_end(tape);
    CHECK(logits && tg_dtype_of(logits) == dtype);
    CHECK(loss && tg_rank(loss) == 0 && tg_dtype_of(loss) == dtype);
    CHECK(close_to("logits", logits, &c->logits, tol));
    CHECK(c->has_loss && scalar_close("loss", loss ? tg_item(loss) : NAN, c->loss, tol));

    tg_tensor *grads[MAXVARS] = {NULL};
    CHECK(n <= MAXVARS && c->n_grads == n);
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads) == 0);
    tg_tape_free(tape);
    for (int i = 0; i < n && i < c->n_grads; i++) {
        char what[96];
        snprintf(what, sizeof what, "d loss / d %s", tg_variable_name(vars[i]));
        CHECK(!strcmp(c->grads[i].name, tg_variable_name(vars[i])));
        CHECK(grads[i] && tg_dtype_of(grads[i]) == dtype);
        CHECK(close_to(what, grads[i], &c->grads[i], tol));
    }

    tg_optimizer *adam = tg_adam(.learning_rate = c->adam_lr);
    CHECK(c->adam_lr > 0 && adam != NULL);
    CHECK(tg_apply_gradients(adam, grads, vars, n) == 0);
    CHECK(c->n_adam == n);
    for (int i = 0; i < n && i < c->n_adam; i++) {
        char what[96];
        snprintf(what, sizeof what, "%s after one Adam step", tg_variable_name(vars[i]));
        CHECK(!strcmp(c->adam[i].name, tg_variable_name(vars[i])));
        CHECK(close_to(what, vars[i], &c->adam[i], tol));
    }
    tg_optimizer_free(adam);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- fit: the per-epoch loss and the weights at the end ---------------------------------------- */
/* Fit's step traced (graph mode, the default) or eager (.run_eagerly): each against the
 * goldens, and the two the same bits (the same ops in the same order). */
static double fit_losses[2][64], fit_weights[2][4096];
static int fit_counts[2][2];

static void check_fit_mode(const char *name, const char *opt, bool eager)
{
    const gcase *c = find_case(name);
    const traj *t = c ? find_traj(c, opt) : NULL;
    REQUIRE(t != NULL);
    tg_scope *s = tg_scope_begin();
    tg_model *m = golden_model(c, TG_F64);
    if (!m) {
        tg_scope_end(s);
        return;
    }
    tg_optimizer *o = !strcmp(opt, "adam") ? tg_adam(.learning_rate = t->lr)
                                           : tg_sgd(.learning_rate = t->lr, .momentum = t->momentum);
    tg_loss l = loss_of(name);
    CHECK(tg_compile(m, .optimizer = o, .loss = l.kind, .from_logits = true) == 0);
    tg_tensor *x = golden_tensor(&c->x, TG_F64), *y = labels_of(c, TG_F64);
    tg_history *h = tg_fit(m, x, y, .epochs = t->steps, .batch_size = tg_dim(x, 0), .shuffle = false,
                           .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager);
    CHECK(h != NULL);
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    CHECK(loss != NULL && n == t->steps);
    for (int i = 0; loss && i < n && i < t->n_loss; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s %s epoch %d loss", name, opt, i + 1);
        CHECK(scalar_close(what, loss[i], t->loss[i], TOL64));
    }
    int nv = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &nv);
    CHECK(t->n_final == nv);
    for (int i = 0; i < nv && i < t->n_final; i++) {
        char what[96];
        snprintf(what, sizeof what, "%s after fit with %s", tg_variable_name(vars[i]), opt);
        CHECK(!strcmp(t->final[i].name, tg_variable_name(vars[i])));
        CHECK(close_to(what, vars[i], &t->final[i], TOL64));
    }
    fit_counts[eager][0] = n < 64 ? n : 64;
    memcpy(fit_losses[eager], loss ? loss : fit_losses[eager], sizeof(double) * (size_t)fit_counts[eager][0]);
    int at = 0;
    for (int i = 0; i < nv; i++) {
        int64_t k = tg_size(vars[i]);
        if (at + k <= 4096 && tg_copy_out_f64(vars[i], fit_weights[eager] + at, k) == 0)
            at += (int)k;
    }
    fit_counts[eager][1] = at;
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void check_fit(const char *name, const char *opt)
{
    check_fit_mode(name, opt, false);
    check_fit_mode(name, opt, true);
    CHECK(fit_counts[0][0] == fit_counts[1][0] && fit_counts[0][1] == fit_counts[1][1] && fit_counts[0][1] > 0);
    CHECK(!memcmp(fit_losses[0], fit_losses[1], sizeof(double) * (size_t)fit_counts[0][0]));
    CHECK(!memcmp(fit_weights[0], fit_weights[1], sizeof(double) * (size_t)fit_counts[0][1]));
}

/* ---- tests ---------------------------------------------------------------------------------- */
static void test_fixture_complete(void)
{
    n_cases = load_cases();
    CHECK(n_cases == 2);
    const char *names[] = {"mlp", "cnn"};
    for (int k = 0; k < 2; k++) {
        const gcase *c = find_case(names[k]);
        CHECK(c != NULL);
        if (!c)
            continue;
        CHECK(c->ended && c->x.present && c->y.present && c->logits.present && c->has_loss);
        CHECK(c->n_vars == 4 && c->n_grads == 4 && c->n_adam == 4 && c->adam_lr > 0);
        for (int i = 0; i < c->n_vars; i++)
            CHECK(!strcmp(c->grads[i].name, c->vars[i].name) && !strcmp(c->adam[i].name, c->vars[i].name));
        const traj *t = find_traj(c, "adam");
        CHECK(t && t->steps == 10 && t->n_final == 4);
    }
    const traj *sgd = find_traj(find_case("mlp"), "sgd");
    CHECK(sgd && sgd->steps == 5 && sgd->momentum == 0.9 && sgd->n_final == 4);
}

static void test_mlp_step_f64(void) { check_step("mlp", TG_F64, TOL64); }
static void test_cnn_step_f64(void) { check_step("cnn", TG_F64, TOL64); }
static void test_mlp_step_f32(void) { check_step("mlp", TG_F32, TOL32); }
static void test_mlp_fit_adam(void) { check_fit("mlp", "adam"); }
static void test_mlp_fit_sgd(void) { check_fit("mlp", "sgd"); }
static void test_cnn_fit_adam(void) { check_fit("cnn", "adam"); }

/* The float64 tolerance is tight enough to see one golden value moved by 1e-8 of itself. */
static void test_tolerance_catches_small_errors(void)
{
    const gcase *c = find_case("cnn");
    REQUIRE(c != NULL);
    tg_scope *s = tg_scope_begin();
    tg_model *m = golden_model(c, TG_F64);
    if (m) {
        tg_tensor *logits = tg_model_call(m, golden_tensor(&c->x, TG_F64));
        static arr moved;
        moved = c->logits;
        CHECK(deviation(logits, &moved, TOL64) <= TOL64.rtol);
        for (int i = 0; i < moved.n; i++) {
            moved = c->logits;
            moved.v[i] *= 1 + 1e-8;
            CHECK(deviation(logits, &moved, TOL64) > TOL64.rtol);
        }
        tg_model_free(m);
    }
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_fixture_complete);
    RUN(test_mlp_step_f64);
    RUN(test_cnn_step_f64);
    RUN(test_mlp_step_f32);
    RUN(test_mlp_fit_adam);
    RUN(test_mlp_fit_sgd);
    RUN(test_cnn_fit_adam);
    RUN(test_tolerance_catches_small_errors);
    printf("largest relative deviation from the golden values: float64 %.3g (tolerance %g), float32 %.3g "
           "(tolerance %g)\n",
           worst64, TOL64.rtol, worst32, TOL32.rtol);
    return TEST_SUMMARY();
}
