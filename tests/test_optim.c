/* Optimizers, clipping and schedules.
 *
 * Update formulas: every optimizer and option against tests/fixtures/optim_golden.txt,
 * written by tools/make_optim_fixtures.py from a numpy transcription of Keras 3's
 * update_step code, in float64 and float32, five steps on a two-variable quadratic.
 * The rest: Keras's defaults, schedules and clipping against hand-computed numbers,
 * apply_gradients' messages (with the diagnosis of each missing gradient from a real
 * tape), validation, state layout, minimize, and the interplay with tapes. */
#include <stdlib.h>

#include "check.h"
#include "fixture.h"

/* float64 matches the transcription up to summation order (clipnorm); float32 to a few
 * units in the last place (sums of squares are taken in double here, in float32 there;
 * powf/sqrtf may differ by an ulp between libraries). */
#define RTOL_F64 1e-12
#define RTOL_F32 2e-6

static char warning[4096];
static int n_warnings;

static void on_warning(const char *msg, void *user)
{
    (void)user;
    n_warnings++;
    snprintf(warning, sizeof warning, "%s", msg);
}

static void catch_warnings(void)
{
    n_warnings = 0;
    warning[0] = 0;
    tg_set_warning_handler(on_warning, NULL);
}

static double value_at(const tg_tensor *t, int64_t i)
{
    double v[64];
    return tg_copy_out_f64(t, v, tg_size(t)) == 0 ? v[i] : NAN;
}

/* ---- the golden fixture ------------------------------------------------------------------ */

#define OG_STEPS     5
#define OG_MAX_CASES 128
#define OG_MAX_N     8

typedef struct og_var {
    char name[8];
    tg_shape shape;
    int n;
    double init[OG_MAX_N], scale[OG_MAX_N], center[OG_MAX_N];
} og_var;

typedef struct og_case {
    char name[48];
    tg_dtype dtype;
    double step[OG_STEPS][2][OG_MAX_N]; /* after update k, variable j */
    int seen;                           /* step records read */
} og_case;

static og_var og_vars[2];
static int og_n_vars;
static og_case og_cases[OG_MAX_CASES];
static int og_n_cases;
static char og_error[1400];

static int og_var_index(const char *name)
{
    for (int j = 0; j < og_n_vars; j++)
        if (!strcmp(og_vars[j].name, name))
            return j;
    return -1;
}

static bool og_record(fx_reader *r, const char *word, char *rest, og_case **cur)
{
    char name[48], extra[16];
    if (!strcmp(word, "var")) {
        og_var *v = &og_vars[og_n_vars];
        if (og_n_vars == 2 || !fx_word(&rest, v->name, sizeof v->name) || !fx_shape(&rest, &v->shape) ||
            v->shape.rank < 1 || v->shape.rank > 2 || !fx_char(&rest, ':'))
            return fx_fail(r, "bad `var`");
        v->n = fx_numbers(&rest, v->init, OG_MAX_N);
        if (v->n != fx_size(&v->shape))
            return fx_fail(r, "`var` values do not match its shape");
        og_n_vars++;
        return true;
    }
    if (!strcmp(word, "scale") || !strcmp(word, "center")) {
        int j = fx_word(&rest, name, sizeof name) ? og_var_index(name) : -1;
        if (j < 0 || !fx_char(&rest, ':'))
            return fx_fail(r, "`scale`/`center` of an unknown variable");
        double *dst = word[0] == 's' ? og_vars[j].scale : og_vars[j].center;
        return fx_numbers(&rest, dst, OG_MAX_N) == og_vars[j].n || fx_fail(r, "bad count");
    }
    if (!strcmp(word, "case")) {
        if (*cur || og_n_cases == OG_MAX_CASES || !fx_word(&rest, name, sizeof name) ||
            !fx_word(&rest, extra, sizeof extra))
            return fx_fail(r, "bad `case`");
        *cur = memset(&og_cases[og_n_cases], 0, sizeof og_cases[0]);
        snprintf((*cur)->name, sizeof(*cur)->name, "%s", name);
        (*cur)->dtype = !strcmp(extra, "float32") ? TG_F32 : TG_F64;
        return true;
    }
    if (!*cur)
        return fx_fail(r, "a record outside a case");
    if (!strcmp(word, "step")) {
        int k, j;
        if (!fx_int(&rest, &k) || !fx_word(&rest, name, sizeof name) || k < 1 || k > OG_STEPS ||
            (j = og_var_index(name)) < 0 || !fx_char(&rest, ':'))
            return fx_fail(r, "bad `step`");
        (*cur)->seen++;
        return fx_numbers(&rest, (*cur)->step[k - 1][j], OG_MAX_N) == og_vars[j].n || fx_fail(r, "bad count");
    }
    if (!strcmp(word, "end")) {
        if ((*cur)->seen != OG_STEPS * og_n_vars)
            return fx_fail(r, "a case without every step");
        og_n_cases++;
        *cur = NULL;
        return true;
    }
    return fx_fail(r, "unknown record");
}

static bool og_load(void)
{
    static fx_reader r;
    if (!fx_open(&r, "optim_golden.txt", "tools/make_optim_fixtures.py")) {
        snprintf(og_error, sizeof og_error, "%s", r.error);
        return false;
    }
    og_case *cur = NULL;
    char word[16], *rest;
    while (fx_next(&r, word, sizeof word, &rest))
        og_record(&r, word, rest, &cur);
    fx_close(&r);
    if (!r.failed && cur)
        fx_fail(&r, "the file ends inside a case");
    if (!r.failed && og_n_vars != 2)
        fx_fail(&r, "need 2 vars");
    snprintf(og_error, sizeof og_error, "%s", r.error);
    return !r.failed;
}

/* The configurations of make_optim_fixtures.py, by name. */
static tg_optimizer *og_build(const char *name)
{
    static const int64_t bounds[] = {1, 3};
    static const double values[] = {0.1, 0.05, 0.01};
    if (!strcmp(name, "sgd"))
        return tg_sgd(.learning_rate = 0.1);
    if (!strcmp(name, "sgd_momentum"))
        return tg_sgd(.learning_rate = 0.1, .momentum = 0.9);
    if (!strcmp(name, "sgd_nesterov"))
        return tg_sgd(.learning_rate = 0.1, .momentum = 0.9, .nesterov = true);
    if (!strcmp(name, "adam"))
        return tg_adam(.learning_rate = 0.1);
    if (!strcmp(name, "adam_amsgrad"))
        return tg_adam(.learning_rate = 0.3, .beta_2 = 0.5, .amsgrad = true);
    if (!strcmp(name, "adam_no_amsgrad"))
        return tg_adam(.learning_rate = 0.3, .beta_2 = 0.5);
    if (!strcmp(name, "adamw"))
        return tg_adamw(.learning_rate = 0.1, .weight_decay = 0.5);
    if (!strcmp(name, "rmsprop"))
        return tg_rmsprop(.learning_rate = 0.01);
    if (!strcmp(name, "rmsprop_momentum"))
        return tg_rmsprop(.learning_rate = 0.01, .momentum = 0.5);
    if (!strcmp(name, "rmsprop_centered"))
        return tg_rmsprop(.learning_rate = 0.01, .centered = true);
    if (!strcmp(name, "rmsprop_centered_momentum"))
        return tg_rmsprop(.learning_rate = 0.01, .momentum = 0.5, .centered = true);
    if (!strcmp(name, "adagrad"))
        return tg_adagrad(.learning_rate = 0.1);
    if (!strcmp(name, "sgd_clipnorm"))
        return tg_sgd(.learning_rate = 0.1, .clipnorm = 1.0);
    if (!strcmp(name, "sgd_global_clipnorm"))
        return tg_sgd(.learning_rate = 0.1, .global_clipnorm = 2.0);
    if (!strcmp(name, "sgd_clipvalue"))
        return tg_sgd(.learning_rate = 0.1, .clipvalue = 0.5);
    if (!strcmp(name, "adam_clipnorm"))
        return tg_adam(.learning_rate = 0.1, .clipnorm = 0.5);
    if (!strcmp(name, "sgd_exponential_decay"))
        return tg_sgd(.schedule =
                          tg_exponential_decay(.initial_learning_rate = 0.1, .decay_steps = 2, .decay_rate = 0.5));
    if (!strcmp(name, "sgd_piecewise_constant"))
        return tg_sgd(.momentum = 0.5, .schedule = tg_piecewise_constant(bounds, values, 2));
    if (!strcmp(name, "adam_cosine_decay"))
        return tg_adam(.schedule = tg_cosine_decay(.initial_learning_rate = 0.1, .decay_steps = 3, .alpha = 0.1));
    if (!strcmp(name, "nadam"))
        return tg_nadam(.learning_rate = 0.1);
    if (!strcmp(name, "adamax"))
        return tg_adamax(.learning_rate = 0.1);
    if (!strcmp(name, "adadelta") || !strcmp(name, "torch_adadelta"))
        return tg_adadelta(.learning_rate = 1.0);
    if (!strcmp(name, "torch_adamax"))
        return tg_adamax(.learning_rate = 0.1, .epsilon = 1e-15);
    if (!strcmp(name, "ftrl"))
        return tg_ftrl(.learning_rate = 0.1);
    if (!strcmp(name, "ftrl_regularized"))
        return tg_ftrl(.learning_rate = 0.1, .learning_rate_power = -0.7, .l1_regularization_strength = 0.05,
                       .l2_regularization_strength = 0.1, .l2_shrinkage_regularization_strength = 0.2, .beta = 0.5);
    if (!strcmp(name, "lion"))
        return tg_lion(.learning_rate = 0.01);
    if (!strcmp(name, "sgd_polynomial_decay"))
        return tg_sgd(.schedule = tg_polynomial_decay(.initial_learning_rate = 0.1, .decay_steps = 3,
                                                      .end_learning_rate = 0.01, .power = 0.5));
    if (!strcmp(name, "sgd_polynomial_cycle"))
        return tg_sgd(.schedule = tg_polynomial_decay(.initial_learning_rate = 0.1, .decay_steps = 2,
                                                      .end_learning_rate = 0.01, .power = 2.0, .cycle = true));
    if (!strcmp(name, "sgd_inverse_time_decay"))
        return tg_sgd(.schedule =
                          tg_inverse_time_decay(.initial_learning_rate = 0.1, .decay_steps = 2, .decay_rate = 0.5));
    if (!strcmp(name, "sgd_inverse_time_staircase"))
        return tg_sgd(.schedule = tg_inverse_time_decay(.initial_learning_rate = 0.1, .decay_steps = 2,
                                                        .decay_rate = 0.5, .staircase = true));
    if (!strcmp(name, "adam_cosine_warmup"))
        return tg_adam(.schedule = tg_cosine_decay(.initial_learning_rate = 0.0, .decay_steps = 3, .alpha = 0.1,
                                                   .warmup_target = 0.1, .warmup_steps = 2));
    if (!strcmp(name, "sgd_cosine_restarts"))
        return tg_sgd(.schedule = tg_cosine_decay_restarts(.initial_learning_rate = 0.1, .first_decay_steps = 1,
                                                           .t_mul = 2.0, .m_mul = 0.5));
    if (!strcmp(name, "adam_accumulated"))
        return tg_adam(.learning_rate = 0.1, .gradient_accumulation_steps = 2);
    if (!strcmp(name, "sgd_momentum_accumulated_schedule"))
        return tg_sgd(.momentum = 0.9, .gradient_accumulation_steps = 3,
                      .schedule =
                          tg_exponential_decay(.initial_learning_rate = 0.1, .decay_steps = 2, .decay_rate = 0.5));
    if (!strcmp(name, "adam_ema_overwrite"))
        return tg_adam(.learning_rate = 0.1, .use_ema = true, .ema_momentum = 0.9, .ema_overwrite_frequency = 2);
    if (!strcmp(name, "sgd_ema_finalized"))
        return tg_sgd(.learning_rate = 0.1, .use_ema = true, .ema_momentum = 0.5);
    if (!strcmp(name, "adam_accumulated_ema"))
        return tg_adam(.learning_rate = 0.1, .gradient_accumulation_steps = 2, .use_ema = true, .ema_momentum = 0.8,
                       .ema_overwrite_frequency = 1);
    if (!strcmp(name, "sgd_cosine_restarts_even"))
        return tg_sgd(.schedule = tg_cosine_decay_restarts(.initial_learning_rate = 0.1, .first_decay_steps = 2,
                                                           .t_mul = 1.0, .alpha = 0.2));
    return NULL;
}

/* grad = a * (x - c), element by element in the variable's dtype, as the script does. */
static tg_tensor *og_grad(const tg_tensor *x, const og_var *v)
{
    double xv[OG_MAX_N];
    tg_copy_out_f64(x, xv, v->n);
    if (tg_dtype_of(x) == TG_F32) {
        float g[OG_MAX_N];
        for (int i = 0; i < v->n; i++)
            g[i] = (float)v->scale[i] * ((float)xv[i] - (float)v->center[i]);
        return tg_tensor_from(TG_F32, v->shape, g);
    }
    double g[OG_MAX_N];
    for (int i = 0; i < v->n; i++)
        g[i] = v->scale[i] * (xv[i] - v->center[i]);
    return tg_tensor_from(TG_F64, v->shape, g);
}

static void og_run(const og_case *c)
{
    tg_scope *s = tg_scope_begin();
    tg_optimizer *opt = og_build(c->name);
    CHECK(opt != NULL);
    if (!opt) {
        printf("  no builder for case %s\n", c->name);
        tg_scope_end(s);
        return;
    }
    tg_tensor *vars[2];
    for (int j = 0; j < 2; j++) {
        const og_var *v = &og_vars[j];
        tg_tensor *init = tg_tensor_from(TG_F64, v->shape, v->init);
        vars[j] = tg_variable(c->dtype == TG_F32 ? tg_cast(init, TG_F32) : init, .name = v->name);
    }
    double rtol = c->dtype == TG_F32 ? RTOL_F32 : RTOL_F64;
    int bad = 0;
    for (int k = 0; k < OG_STEPS; k++) { /* the first mismatch is reported */
        tg_tensor *grads[2] = {og_grad(vars[0], &og_vars[0]), og_grad(vars[1], &og_vars[1])};
        CHECK(tg_apply_gradients(opt, grads, vars, 2) == 0);
        if (k == OG_STEPS - 1 && strstr(c->name, "_finalized")) /* the last record is the averages */
            CHECK(tg_optimizer_finalize_variable_values(opt, vars, 2) == 0);
        for (int j = 0; j < 2 && !bad; j++)
            for (int i = 0; i < og_vars[j].n && !bad; i++) {
                double got = value_at(vars[j], i), want = c->step[k][j][i];
                if (!(fabs(got - want) <= rtol * fabs(want) + 1e-15)) {
                    printf("  FAIL case %s %s step %d %s[%d] = %.17g, expected %.17g\n", c->name,
                           tg_dtype_name(c->dtype), k + 1, og_vars[j].name, i, got, want);
                    bad = 1;
                    check_failures_in_test++;
                }
            }
    }
    CHECK(tg_optimizer_iterations(opt) == OG_STEPS);
    tg_optimizer_free(opt);
    tg_variable_free(vars[0]);
    tg_variable_free(vars[1]);
    tg_scope_end(s);
}

static void golden_updates(void)
{
    if (!og_load()) {
        printf("  FAIL %s\n", og_error);
        check_failures_in_test++;
        return;
    }
    static const char *const expected[] = {"sgd",
                                           "sgd_momentum",
                                           "sgd_nesterov",
                                           "adam",
                                           "adam_amsgrad",
                                           "adamw",
                                           "rmsprop",
                                           "rmsprop_momentum",
                                           "rmsprop_centered",
                                           "rmsprop_centered_momentum",
                                           "adagrad",
                                           "sgd_clipnorm",
                                           "sgd_global_clipnorm",
                                           "sgd_clipvalue",
                                           "sgd_exponential_decay",
                                           "sgd_piecewise_constant",
                                           "adam_cosine_decay",
                                           "nadam",
                                           "adamax",
                                           "adadelta",
                                           "ftrl",
                                           "ftrl_regularized",
                                           "lion",
                                           "sgd_polynomial_decay",
                                           "sgd_polynomial_cycle",
                                           "sgd_inverse_time_decay",
                                           "sgd_inverse_time_staircase",
                                           "adam_cosine_warmup",
                                           "sgd_cosine_restarts",
                                           "sgd_cosine_restarts_even",
                                           "adam_accumulated",
                                           "sgd_momentum_accumulated_schedule",
                                           "adam_ema_overwrite",
                                           "sgd_ema_finalized",
                                           "adam_accumulated_ema"};
    for (size_t e = 0; e < sizeof expected / sizeof *expected; e++) { /* nothing skipped silently */
        int found = 0;
        for (int i = 0; i < og_n_cases; i++)
            found += !strcmp(og_cases[i].name, expected[e]);
        if (found != 2) {
            printf("  FAIL the fixture has %d cases named %s (expected float32 and float64)\n", found, expected[e]);
            check_failures_in_test++;
        }
    }
    static const char *const torch_cases[] = {"torch_adamax", "torch_adadelta"}; /* float64 only */
    for (int e = 0; e < 2; e++) {
        int found = 0;
        for (int i = 0; i < og_n_cases; i++)
            found += !strcmp(og_cases[i].name, torch_cases[e]);
        if (found != 1) {
            printf("  FAIL the fixture has %d cases named %s (expected one)\n", found, torch_cases[e]);
            check_failures_in_test++;
        }
    }
    for (int i = 0; i < og_n_cases; i++)
        og_run(&og_cases[i]);
}

/* ---- Keras's defaults (tf-semantics K10), one float64 step each ----------------------------- */

/* The change of a scalar variable x0 = 1 after one step with gradient g. */
static double one_step(tg_optimizer *opt, double g)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar_of(TG_F64, 1.0), .name = "x");
    tg_tensor *grad = tg_scalar_of(TG_F64, g);
    CHECK(tg_apply_gradients(opt, &grad, &x, 1) == 0);
    double d = value_at(x, 0) - 1.0;
    tg_variable_free(x);
    tg_optimizer_free(opt);
    tg_scope_end(s);
    return d;
}

static void keras_defaults(void)
{
    double g = 2.0, e = 1e-7;
    tg_optimizer *o = tg_sgd();
    CHECK_NEAR(tg_optimizer_current_lr(o), 0.01, 1e-15);
    CHECK_NEAR(one_step(o, g), -0.01 * g, 1e-14);
    o = tg_adam();
    CHECK_NEAR(tg_optimizer_current_lr(o), 1e-3, 1e-15);
    /* m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(1 - 0.999) / (1 - 0.9) */
    double adam = -(1e-3 * sqrt(0.001) / 0.1) * (0.1 * g) / (sqrt(0.001 * g * g) + e);
    CHECK_NEAR(one_step(o, g), adam, 1e-12);
    /* AdamW: x = 1 - 1 * 0.004 * lr first */
    CHECK_NEAR(one_step(tg_adamw(), g), -0.004 * 1e-3 + adam, 1e-12);
    o = tg_rmsprop();
    CHECK_NEAR(tg_optimizer_current_lr(o), 1e-3, 1e-15);
    CHECK_NEAR(one_step(o, g), -1e-3 * g / sqrt(0.1 * g * g + e), 1e-12);
    o = tg_adagrad();
    CHECK_NEAR(tg_optimizer_current_lr(o), 1e-3, 1e-15);
    CHECK_NEAR(one_step(o, g), -1e-3 * g / sqrt(0.1 + g * g + e), 1e-12);
    /* Nadam, t = 1: u_1 = 0.9 (1 - 0.5 * 0.96), u_2 = 0.9 (1 - 0.5 * 0.96^2), m = 0.1 g,
     * v_hat = g^2 */
    double u1 = 0.9 * (1 - 0.5 * 0.96), u2 = 0.9 * (1 - 0.5 * 0.96 * 0.96);
    double m_hat = u2 * 0.1 * g / (1 - u1 * u2) + (1 - u1) * g / (1 - u1);
    CHECK_NEAR(one_step(tg_nadam(), g), -1e-3 * m_hat / (g + e), 1e-12);
    /* Adamax: m = 0.1 g, u = |g| */
    CHECK_NEAR(one_step(tg_adamax(), g), -1e-3 * 0.1 * g / (0.1 * (g + e)), 1e-12);
    /* Adadelta (rho 0.95): the first delta is -sqrt(e) g / sqrt(0.05 g^2 + e) */
    CHECK_NEAR(one_step(tg_adadelta(), g), -1e-3 * sqrt(e) * g / sqrt(0.05 * g * g + e), 1e-12);
    /* Ftrl (power -0.5, n = 0.1): linear = g - (sqrt(n') - sqrt(n)) / lr, w = -linear lr / sqrt(n') */
    double n1 = 0.1 + g * g, linear = g - (sqrt(n1) - sqrt(0.1)) / 1e-3;
    CHECK_NEAR(one_step(tg_ftrl(), g), -linear / (sqrt(n1) / 1e-3) - 1.0, 1e-12);
    /* Lion: lr times the sign of 0.1 g */
    CHECK_NEAR(one_step(tg_lion(), g), -1e-3, 1e-15);
}

static void constructor_errors(void)
{
    EXPECT_ERROR(tg_sgd(.momentum = 1.5) == NULL,
                 "tg_sgd: `momentum` must be a float between [0, 1]. Received: momentum=1.5");
    CHECK(tg_adam(.clipnorm = 1, .clipvalue = 0.5) == NULL);
    CHECK_ERROR("tg_adam: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                "clipnorm=1, clipvalue=0.5, global_clipnorm=None");
    EXPECT_ERROR(tg_rmsprop(.global_clipnorm = -1) == NULL,
                 "`global_clipnorm` must be a finite number >= 0 (0 turns it off)");
    EXPECT_ERROR(tg_adagrad(.initial_accumulator_value = -0.1) == NULL,
                 "`initial_accumulator_value` must be non-negative");
    EXPECT_ERROR(tg_adamw(.learning_rate = NAN) == NULL, "tg_adamw: `learning_rate` must be a finite number");
    /* out of range: each refused with the name, the range and the value */
    tg_clear_error();
    EXPECT_ERROR(tg_sgd(.learning_rate = -0.1) == NULL,
                 "tg_sgd: `learning_rate` must be >= 0. Received: learning_rate=-0.1");
    CHECK_ERROR("test_optim.c");
    tg_clear_error();
    EXPECT_ERROR(tg_adam(.beta_1 = 1) == NULL, "tg_adam: `beta_1` must be in [0, 1). Received: beta_1=1");
    tg_clear_error();
    EXPECT_ERROR(tg_adamw(.beta_2 = -0.5) == NULL, "tg_adamw: `beta_2` must be in [0, 1). Received: beta_2=-0.5");
    tg_clear_error();
    EXPECT_ERROR(tg_adam(.epsilon = 0) == NULL, "tg_adam: `epsilon` must be > 0");
    tg_clear_error();
    EXPECT_ERROR(tg_rmsprop(.rho = 1.5) == NULL, "tg_rmsprop: `rho` must be in [0, 1). Received: rho=1.5");
    tg_clear_error();
    EXPECT_ERROR(tg_rmsprop(.momentum = -1) == NULL, "tg_rmsprop: `momentum` must be in [0, 1]");
    tg_clear_error();
    EXPECT_ERROR(tg_adagrad(.epsilon = -1e-7) == NULL, "tg_adagrad: `epsilon` must be > 0");
    tg_clear_error();
    EXPECT_ERROR(tg_nadam(.amsgrad = true) == NULL, "tg_nadam: `amsgrad` is Adam's and AdamW's option; nadam has none");
    tg_clear_error();
    EXPECT_ERROR(tg_adamax(.beta_2 = 1) == NULL, "tg_adamax: `beta_2` must be in [0, 1). Received: beta_2=1");
    tg_clear_error();
    EXPECT_ERROR(tg_adadelta(.rho = 1) == NULL, "tg_adadelta: `rho` must be in [0, 1)");
    tg_clear_error();
    EXPECT_ERROR(tg_ftrl(.learning_rate_power = 0.5) == NULL,
                 "tg_ftrl: `learning_rate_power` needs to be negative or zero. Received: learning_rate_power=0.5");
    tg_clear_error();
    EXPECT_ERROR(tg_ftrl(.l1_regularization_strength = -1) == NULL,
                 "`l1_regularization_strength` needs to be positive or zero");
    tg_clear_error();
    EXPECT_ERROR(tg_lion(.beta_1 = 0) == NULL, "tg_lion: Argument `beta_1` must be in the [0, 1] range");
    tg_clear_error();
    EXPECT_ERROR(tg_adam(.gradient_accumulation_steps = 1) == NULL,
                 "`gradient_accumulation_steps` must be an integer >= 2 (0 turns it off). Received: "
                 "gradient_accumulation_steps=1");
    tg_clear_error();
    EXPECT_ERROR(tg_sgd(.use_ema = true, .ema_momentum = 1.5) == NULL, "`ema_momentum` must be in the range [0, 1]");
    tg_optimizer *ok = tg_sgd(.learning_rate = 0); /* a frozen model is allowed */
    CHECK(ok != NULL);
    tg_clear_error();
    EXPECT_ERROR(tg_optimizer_set_learning_rate(ok, -1) == -1, "a finite number >= 0, got -1");
    tg_optimizer_free(ok);
    /* A failed schedule makes the optimizer fail, with the schedule's message. */
    EXPECT_ERROR(tg_sgd(.schedule = tg_cosine_decay(.initial_learning_rate = 0.1)) == NULL,
                 "tg_cosine_decay: Argument `decay_steps` must be > 0. Received: decay_steps=0");
    tg_clear_error();
    EXPECT_ERROR(tg_sgd(.schedule = (tg_schedule){.kind = TG_SCHEDULE_EXPONENTIAL_DECAY}) == NULL,
                 "`.schedule` has decay_steps=0");
}

/* ---- schedules --------------------------------------------------------------------------------- */

static void schedules(void)
{
    tg_schedule e = tg_exponential_decay(.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.5);
    CHECK_NEAR(tg_schedule_value(&e, 0), 0.1, 1e-15);
    CHECK_NEAR(tg_schedule_value(&e, 5), 0.07071067811865475, 1e-14); /* 0.1 * 0.5^0.5 */
    CHECK_NEAR(tg_schedule_value(&e, 10), 0.05, 1e-15);
    CHECK_NEAR(tg_schedule_value(&e, 25), 0.017677669529663688, 1e-14); /* 0.1 * 0.5^2.5 */
    tg_schedule st =
        tg_exponential_decay(.initial_learning_rate = 0.1, .decay_steps = 10, .decay_rate = 0.5, .staircase = true);
    CHECK_NEAR(tg_schedule_value(&st, 5), 0.1, 1e-15);
    CHECK_NEAR(tg_schedule_value(&st, 19), 0.05, 1e-15);
    CHECK_NEAR(tg_schedule_value(&st, 25), 0.025, 1e-15);

    tg_schedule p = tg_piecewise_constant(((int64_t[]){10, 20}), ((double[]){1.0, 0.5, 0.1}), 2);
    int64_t steps[] = {0, 10, 11, 20, 21, 1000};
    double want[] = {1.0, 1.0, 0.5, 0.5, 0.1, 0.1};
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(tg_schedule_value(&p, steps[i]), want[i], 0);

    tg_schedule c = tg_cosine_decay(.initial_learning_rate = 1.0, .decay_steps = 10, .alpha = 0.2);
    CHECK_NEAR(tg_schedule_value(&c, 0), 1.0, 1e-15);
    CHECK_NEAR(tg_schedule_value(&c, 3), 0.8351141009169893, 1e-14); /* 0.4 (1 + cos 0.3 pi) + 0.2 */
    CHECK_NEAR(tg_schedule_value(&c, 5), 0.6, 1e-14);
    CHECK_NEAR(tg_schedule_value(&c, 10), 0.2, 1e-14);
    CHECK_NEAR(tg_schedule_value(&c, 15), 0.2, 1e-14); /* held after decay_steps */

    tg_schedule none = {0};
    CHECK(isnan(tg_schedule_value(&none, 3)));
}

static void schedule_errors(void)
{
    tg_schedule s = tg_exponential_decay(.initial_learning_rate = 0.1, .decay_steps = -2, .decay_rate = 0.5);
    CHECK(s.kind == TG_SCHEDULE_INVALID);
    CHECK_ERROR("tg_exponential_decay: Argument `decay_steps` must be > 0. Received: decay_steps=-2");
    s = tg_piecewise_constant(((int64_t[]){5, 5}), ((double[]){1, 2, 3}), 2);
    CHECK(s.kind == TG_SCHEDULE_INVALID);
    CHECK_ERROR("the boundaries must be strictly increasing; boundaries[1] = 5 follows boundaries[0] = 5");
    s = tg_piecewise_constant(((int64_t[]){5}), ((double[]){1, 2}), 0);
    CHECK_ERROR("0 boundaries given; between 1 and 16 are supported");
    tg_clear_error(); /* a NULL argument keeps an earlier error */
    s = tg_piecewise_constant(NULL, ((double[]){1, 2}), 1);
    CHECK_ERROR("tg_piecewise_constant: `boundaries` is NULL");
    s = tg_polynomial_decay(.initial_learning_rate = 0.1);
    CHECK(s.kind == TG_SCHEDULE_INVALID);
    CHECK_ERROR("tg_polynomial_decay: Argument `decay_steps` must be > 0. Received: decay_steps=0");
    s = tg_inverse_time_decay(.initial_learning_rate = 0.1, .decay_steps = -1, .decay_rate = 1);
    CHECK_ERROR("tg_inverse_time_decay: Argument `decay_steps` must be > 0");
    s = tg_cosine_decay_restarts(.initial_learning_rate = 0.1);
    CHECK_ERROR("Argument `first_decay_steps` must be > 0. Received: first_decay_steps=0");
    s = tg_cosine_decay_restarts(.initial_learning_rate = 0.1, .first_decay_steps = 3, .t_mul = 0);
    CHECK_ERROR("`t_mul` must be a positive number");
    s = tg_cosine_decay(.initial_learning_rate = 0.1, .decay_steps = 3, .warmup_target = 1, .warmup_steps = -1);
    CHECK(s.kind == TG_SCHEDULE_INVALID);
    CHECK_ERROR("`warmup_steps` must be >= 0");
}

/* The optimizer evaluates its schedule at `iterations` before each update. */
static void schedule_follows_iterations(void)
{
    tg_scope *s = tg_scope_begin();
    tg_optimizer *opt =
        tg_sgd(.schedule = tg_exponential_decay(.initial_learning_rate = 1.0, .decay_steps = 1, .decay_rate = 0.5));
    tg_tensor *x = tg_variable(tg_scalar_of(TG_F64, 0.0), .name = "x");
    tg_tensor *g = tg_scalar_of(TG_F64, -1.0);
    double expect = 0;
    for (int k = 0; k < 4; k++) {
        CHECK_NEAR(tg_optimizer_current_lr(opt), pow(0.5, k), 1e-15);
        CHECK(tg_apply_gradients(opt, &g, &x, 1) == 0);
        expect += pow(0.5, k); /* x -= lr * g with the rate of step k */
        CHECK_NEAR(value_at(x, 0), expect, 1e-15);
    }
    EXPECT_ERROR(tg_optimizer_set_learning_rate(opt, 0.1) == -1,
                 "This optimizer was created with a `LearningRateSchedule` object");
    tg_optimizer *plain = tg_adam();
    CHECK(tg_optimizer_set_learning_rate(plain, 0.25) == 0);
    CHECK_NEAR(tg_optimizer_current_lr(plain), 0.25, 0);
    tg_optimizer_free(plain);
    tg_optimizer_free(opt);
    tg_variable_free(x);
    tg_scope_end(s);
}

/* ---- clipping, by hand ---------------------------------------------------------------------- */

static void clipping(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_variable(tg_zeros(TG_F64, TG_SHAPE(2)), .name = "a");
    tg_tensor *b = tg_variable(tg_zeros(TG_F64, TG_SHAPE(3)), .name = "b");
    tg_tensor *vars[] = {a, b};

    /* clipnorm: each gradient alone; (3, 4) has norm 5 -> (0.6, 0.8); (0, 0.3, 0.4) is kept. */
    tg_optimizer *opt = tg_sgd(.learning_rate = 1.0, .clipnorm = 1.0);
    tg_tensor *grads[] = {tg_from_f64(TG_SHAPE(2), 3, 4), tg_from_f64(TG_SHAPE(3), 0, 0.3, 0.4)};
    CHECK(tg_apply_gradients(opt, grads, vars, 2) == 0);
    CHECK_VALUES(a, 1e-15, -0.6, -0.8);
    CHECK_VALUES(b, 1e-15, 0, -0.3, -0.4);
    /* a zero gradient stays zero (no 0/0) */
    tg_tensor *zero[] = {tg_zeros(TG_F64, TG_SHAPE(2)), tg_zeros(TG_F64, TG_SHAPE(3))};
    CHECK(tg_apply_gradients(opt, zero, vars, 2) == 0);
    CHECK_VALUES(a, 1e-15, -0.6, -0.8);
    tg_optimizer_free(opt);

    /* global_clipnorm: norms 5 and 12 -> global 13, every gradient scaled by 6.5 / 13 */
    tg_assign(a, tg_zeros(TG_F64, TG_SHAPE(2)));
    tg_assign(b, tg_zeros(TG_F64, TG_SHAPE(3)));
    opt = tg_sgd(.learning_rate = 1.0, .global_clipnorm = 6.5);
    tg_tensor *g2[] = {tg_from_f64(TG_SHAPE(2), 3, 4), tg_from_f64(TG_SHAPE(3), 0, 0, 12)};
    CHECK(tg_apply_gradients(opt, g2, vars, 2) == 0);
    CHECK_VALUES(a, 1e-15, -1.5, -2.0);
    CHECK_VALUES(b, 1e-15, 0, 0, -6.0);
    /* below the limit: unchanged */
    tg_tensor *g3[] = {tg_from_f64(TG_SHAPE(2), 0.3, 0.4), tg_from_f64(TG_SHAPE(3), 0, 0, 1.2)};
    CHECK(tg_apply_gradients(opt, g3, vars, 2) == 0);
    CHECK_VALUES(a, 1e-14, -1.8, -2.4);
    CHECK_VALUES(b, 1e-14, 0, 0, -7.2);
    /* a missing gradient does not count in the global norm: (3, 4) alone is scaled by 6.5 / 5 */
    catch_warnings();
    tg_tensor *g4[] = {tg_from_f64(TG_SHAPE(2), 30, 40), NULL};
    CHECK(tg_apply_gradients(opt, g4, vars, 2) == 0);
    CHECK(n_warnings == 1);
    CHECK_VALUES(a, 1e-14, -1.8 - 3.9, -2.4 - 5.2);
    CHECK_VALUES(b, 1e-14, 0, 0, -7.2);
    tg_set_warning_handler(NULL, NULL);
    tg_optimizer_free(opt);

    /* clipvalue: element-wise to [-0.5, 0.5] */
    tg_assign(b, tg_zeros(TG_F64, TG_SHAPE(3)));
    opt = tg_sgd(.learning_rate = 1.0, .clipvalue = 0.5);
    tg_tensor *g5 = tg_from_f64(TG_SHAPE(3), -2, 0.3, 0.7);
    CHECK(tg_apply_gradients(opt, &g5, &b, 1) == 0);
    CHECK_VALUES(b, 1e-15, 0.5, -0.3, -0.5);
    /* the caller's gradient is not modified */
    CHECK_VALUES(g5, 0, -2, 0.3, 0.7);
    tg_optimizer_free(opt);

    tg_variable_free(a);
    tg_variable_free(b);
    tg_scope_end(s);
}

/* ---- missing gradients: Keras's messages with a diagnosis per variable ----------------------- */

static void all_gradients_missing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2), 1, 2), .name = "w");
    tg_tensor *b = tg_variable(tg_from_f32(TG_SHAPE(2), 3, 4), .name = "b");
    tg_tensor *c = tg_from_f32(TG_SHAPE(2), 5, 6);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, c);
    tg_tensor *loss = tg_sum(tg_square(c)); /* reads neither w nor b */
    tg_tape_end(tape);
    tg_tensor *vars[] = {w, b}, *grads[2] = {w, w};
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 2, .out = grads) == 0);
    CHECK(grads[0] == NULL && grads[1] == NULL);
    tg_tape_free(tape);

    tg_optimizer *opt = tg_adam();
    uint64_t version = tg_variable_version(w);
    CHECK(tg_apply_gradients(opt, grads, vars, 2) == -1);
    /* one line per distinct cause: both were never read, so one line names both */
    CHECK_ERROR(
        "tg_apply_gradients: No gradients provided for any variable: (['w', 'b'],).\n  w, b (each): it was never read");
    /* the line gives the diagnosis the gradient call kept, without its subject */
    tg_diagnosis d;
    CHECK(tg_explain_missing(w, &d) == 0 && d.cause == TG_CAUSE_NOT_READ);
    CHECK(strncmp(d.message, "variable 'w': ", 14) == 0);
    CHECK_ERROR(d.message + 14);
    CHECK(tg_explain_missing(b, &d) == 0 && d.cause == TG_CAUSE_NOT_READ);
    const char *err = tg_last_error();
    int lines = 0;
    for (const char *p = err; p && (p = strstr(p, "\n  ")); p++)
        lines++;
    CHECK(lines == 1);
    /* nothing happened */
    CHECK(tg_optimizer_iterations(opt) == 0);
    CHECK(tg_variable_version(w) == version);
    CHECK(tg_optimizer_state_count(opt) == 0);

    /* a NULL that no gradient call produced still gets its line */
    tg_tensor *z = tg_variable(tg_scalar(1.0), .name = "z");
    tg_tensor *none = NULL;
    EXPECT_ERROR(tg_apply_gradients(opt, &none, &z, 1) == -1,
                 "No gradients provided for any variable: (['z'],).\n  z: no diagnosis is known");

    /* many variables: the lines stop before the message would be cut, and say so */
    enum { MANY = 40 };
    tg_tensor *many[MANY], *nulls[MANY] = {0};
    for (int i = 0; i < MANY; i++) {
        char name[64];
        snprintf(name, sizeof name, "block_%02d/a_rather_long_variable_name", i);
        many[i] = tg_variable(tg_scalar(0.0), .name = name);
    }
    EXPECT_ERROR(tg_apply_gradients(opt, nulls, many, MANY) == -1,
                 "\n  block_00/a_rather_long_variable_name, block_01/a_rather_long_variable_name, ");
    err = tg_last_error();
    CHECK(err && strlen(err) < 2000 && strstr(err, " more (each): no diagnosis is known") != NULL);
    for (int i = 0; i < MANY; i++)
        tg_variable_free(many[i]);

    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_variable_free(z);
    tg_scope_end(s);
}

static void some_gradients_missing(void)
{
    tg_scope *s = tg_scope_begin();
    catch_warnings();
    tg_tensor *w = tg_variable(tg_from_f64(TG_SHAPE(2), 1, 2), .name = "w");
    tg_tensor *b = tg_variable(tg_from_f64(TG_SHAPE(2), 3, 4), .name = "b");
    tg_tensor *frozen = tg_variable(tg_from_f64(TG_SHAPE(2), 5, 6), .name = "frozen", .trainable = false);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss = tg_sum(tg_mul(tg_square(w), frozen)); /* b not read; frozen not watched */
    tg_tape_end(tape);
    tg_tensor *vars[] = {w, b, frozen}, *grads[3];
    CHECK(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 3, .out = grads) == 0);
    CHECK(grads[0] != NULL && grads[1] == NULL && grads[2] == NULL);
    tg_tape_free(tape);

    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    uint64_t vb = tg_variable_version(b);
    CHECK(tg_apply_gradients(opt, grads, vars, 3) == 0);
    CHECK(n_warnings == 1);
    CHECK(strstr(warning, "Gradients do not exist for variables ['b', 'frozen'] when minimizing the loss. If using "
                          "`model.compile()`, did you forget to provide a `loss` argument?\n  b: ") != NULL);
    CHECK(strstr(warning, "\n  frozen: ") != NULL);
    CHECK(strstr(warning, "\n  w: ") == NULL);
    tg_diagnosis d;
    CHECK(tg_explain_missing(frozen, &d) == 0 && d.cause == TG_CAUSE_NOT_WATCHED);
    CHECK(strstr(warning, d.message + strlen("variable 'frozen': ")) != NULL);
    CHECK(strstr(d.message, "not trainable") != NULL);
    /* w updated (dloss/dw = 2 w frozen = (10, 24)), the others not; iterations advanced */
    CHECK_VALUES(w, 1e-15, 1 - 0.1 * 10, 2 - 0.1 * 24);
    CHECK_VALUES(b, 0, 3, 4);
    CHECK(tg_variable_version(b) == vb);
    CHECK(tg_optimizer_iterations(opt) == 1);

    tg_set_warning_handler(NULL, NULL);
    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_variable_free(frozen);
    tg_scope_end(s);
}

/* ---- validation ------------------------------------------------------------------------------------- */

static void validation_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_zeros(TG_F32, TG_SHAPE(2, 2)), .name = "w");
    tg_tensor *b = tg_variable(tg_zeros(TG_F32, TG_SHAPE(3)), .name = "b");
    tg_tensor *k = tg_variable(tg_from_i32(TG_SHAPE(1), 7), .name = "count");
    tg_tensor *plain = tg_zeros(TG_F32, TG_SHAPE(3));
    tg_optimizer *opt = tg_sgd();
    tg_tensor *vars[] = {w, b};

    tg_tensor *shape_bad[] = {tg_zeros(TG_F32, TG_SHAPE(3)), tg_zeros(TG_F32, TG_SHAPE(3))};
    EXPECT_ERROR(tg_apply_gradients(opt, shape_bad, vars, 2) == -1,
                 "tg_apply_gradients: grads[0] has shape (3,) but variable 'w' has shape (2, 2)");
    tg_tensor *dtype_bad[] = {tg_ones(TG_F32, TG_SHAPE(2, 2)), tg_zeros(TG_F64, TG_SHAPE(3))};
    EXPECT_ERROR(tg_apply_gradients(opt, dtype_bad, vars, 2) == -1,
                 "grads[1] has dtype float64 but variable 'b' has dtype float32");
    /* an error in the second pair leaves the first variable alone */
    CHECK_VALUES(w, 0, 0, 0, 0, 0);
    CHECK(tg_optimizer_iterations(opt) == 0);

    tg_tensor *g3 = tg_ones(TG_F32, TG_SHAPE(3));
    EXPECT_ERROR(tg_apply_gradients(opt, &g3, &plain, 1) == -1, "vars[0] (the tensor made at");
    CHECK_ERROR("is not a variable; optimizers update variables made with tg_variable");
    tg_tensor *gi = tg_from_i32(TG_SHAPE(1), 1);
    EXPECT_ERROR(tg_apply_gradients(opt, &gi, &k, 1) == -1,
                 "variable 'count' (vars[0]) has dtype int32; optimizers update float32 and float64 variables");
    tg_clear_error(); /* a NULL argument keeps an earlier error */
    EXPECT_ERROR(tg_apply_gradients(NULL, &g3, &b, 1) == -1, "tg_apply_gradients: `opt` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_apply_gradients(opt, &g3, &b, -1) == -1, "n = -1; it must be >= 0");
    tg_clear_error();
    EXPECT_ERROR(tg_apply_gradients(opt, NULL, vars, 2) == -1, "`grads` is NULL");
    tg_clear_error();
    tg_tensor *nullvar[] = {NULL};
    EXPECT_ERROR(tg_apply_gradients(opt, &g3, nullvar, 1) == -1, "`vars[0]` is NULL");

    /* a gradient whose scope ended */
    tg_scope *inner = tg_scope_begin();
    tg_tensor *dead = tg_ones(TG_F32, TG_SHAPE(3));
    tg_scope_end(inner);
    EXPECT_ERROR(tg_apply_gradients(opt, &dead, &b, 1) == -1, "`grads[0]` was used after its scope ended");

    /* empty list: a no-op, even with NULL arrays */
    tg_clear_error();
    CHECK(tg_apply_gradients(opt, NULL, NULL, 0) == 0);
    CHECK(!tg_has_error());
    CHECK(tg_optimizer_iterations(opt) == 0);

    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_variable_free(k);
    tg_scope_end(s);
}

/* NaN gradients are applied as given (Keras does not check). */
static void nan_is_applied(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_from_f32(TG_SHAPE(2), 1, 2), .name = "x");
    tg_tensor *g = tg_from_f32(TG_SHAPE(2), NAN, 1);
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.5);
    CHECK(tg_apply_gradients(opt, &g, &x, 1) == 0);
    CHECK(isnan(value_at(x, 0)));
    CHECK_NEAR(value_at(x, 1), 1.5, 0);
    tg_optimizer_free(opt);
    tg_variable_free(x);
    tg_scope_end(s);
}

/* ---- state layout --------------------------------------------------------------------------------- */

static void state_layout(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_zeros(TG_F32, TG_SHAPE(2)), .name = "w");
    tg_tensor *b = tg_variable(tg_zeros(TG_F64, TG_SHAPE(3)), .name = "b"); /* mixed dtypes */
    tg_optimizer *opt = tg_adam(.learning_rate = 0.1);
    tg_tensor *gw = tg_from_f32(TG_SHAPE(2), 1, -2), *gb = tg_from_f64(TG_SHAPE(3), 0.5, 0, 4);

    CHECK(tg_apply_gradients(opt, &gw, &w, 1) == 0);
    CHECK(tg_optimizer_iterations(opt) == 1);
    CHECK(tg_optimizer_state_count(opt) == 2); /* momentum, velocity of w */
    /* b is met later: appended; the order given no longer matters */
    tg_tensor *vars[] = {b, w}, *grads[] = {gb, gw};
    CHECK(tg_apply_gradients(opt, grads, vars, 2) == 0);
    CHECK(tg_optimizer_iterations(opt) == 2);
    CHECK(tg_optimizer_state_count(opt) == 4);

    tg_optimizer_slot sl;
    /* slot-major: momentum(w), momentum(b), velocity(w), velocity(b) */
    CHECK(tg_optimizer_state(opt, 0, &sl) == 0);
    CHECK(!strcmp(sl.name, "momentum") && sl.variable == w && sl.dtype == TG_F32 && sl.count == 2);
    /* w saw g twice: m = 0.1 g, then m + (g - m) 0.1 = 0.19 g */
    CHECK_NEAR(((float *)sl.data)[1], 0.19 * -2, 1e-6);
    CHECK(tg_optimizer_state(opt, 1, &sl) == 0);
    CHECK(!strcmp(sl.name, "momentum") && sl.variable == b && sl.dtype == TG_F64 && sl.count == 3);
    CHECK_NEAR(((double *)sl.data)[2], 0.1 * 4, 1e-15);
    CHECK(((uintptr_t)sl.data & 63) == 0); /* each variable's range is 64-byte aligned */
    CHECK(tg_optimizer_state(opt, 3, &sl) == 0);
    CHECK(!strcmp(sl.name, "velocity") && sl.variable == b);
    CHECK_NEAR(((double *)sl.data)[2], 0.001 * 16, 1e-15);
    EXPECT_ERROR(tg_optimizer_state(opt, 4, &sl) == -1,
                 "tg_optimizer_state: index 4 is out of range; the adam optimizer has 4 state arrays");

    /* b's first update used the optimizer's step (t = 2), as Keras's shared iteration count does */
    double m = 0.1 * 4, v = 0.001 * 16, alpha = 0.1 * sqrt(1 - 0.999 * 0.999) / (1 - 0.9 * 0.9);
    CHECK_NEAR(value_at(b, 2), -m * alpha / (sqrt(v) + 1e-7), 1e-14);

    /* a freed variable: its state stays, without the handle */
    tg_variable_free(b);
    CHECK(tg_optimizer_state(opt, 1, &sl) == 0 && sl.variable == NULL);
    CHECK(tg_optimizer_set_iterations(opt, 10) == 0 && tg_optimizer_iterations(opt) == 10);
    CHECK(tg_optimizer_set_iterations(opt, -1) == -1);

    tg_optimizer *plain = tg_sgd();
    CHECK(tg_apply_gradients(plain, &gw, &w, 1) == 0);
    CHECK(tg_optimizer_state_count(plain) == 0); /* no momentum, no state */
    tg_optimizer_free(plain);
    tg_optimizer *ada = tg_adagrad();
    CHECK(tg_apply_gradients(ada, &gw, &w, 1) == 0);
    CHECK(tg_optimizer_state(ada, 0, &sl) == 0 && !strcmp(sl.name, "accumulator"));
    CHECK_NEAR(((float *)sl.data)[1], 0.1 + 4, 1e-6); /* initial_accumulator_value + g^2 */
    tg_optimizer_free(ada);
    tg_optimizer *rms = tg_rmsprop(.momentum = 0.5, .centered = true);
    CHECK(tg_apply_gradients(rms, &gw, &w, 1) == 0);
    const char *names[3];
    for (int i = 0; i < 3; i++)
        names[i] = tg_optimizer_state(rms, i, &sl) == 0 ? sl.name : "";
    CHECK(!strcmp(names[0], "velocity") && !strcmp(names[1], "momentum") && !strcmp(names[2], "average_gradient"));
    tg_optimizer_free(rms);

    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* ---- tapes ------------------------------------------------------------------------------------------ */

/* TF semantics: a persistent tape that read w before the update differentiates at the
 * value it read. */
static void persistent_tape_keeps_recorded_value(void)
{
    tg_scope *s = tg_scope_begin();
    catch_warnings();
    tg_tensor *w = tg_variable(tg_scalar_of(TG_F64, 3.0), .name = "w");
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *y = tg_mul(w, w);
    tg_tape_end(tape);
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.5);
    tg_tensor *g = tg_scalar_of(TG_F64, 2.0);
    uint64_t version = tg_variable_version(w);
    CHECK(tg_apply_gradients(opt, &g, &w, 1) == 0);
    CHECK_NEAR(value_at(w, 0), 2.0, 0);
    CHECK(tg_variable_version(w) == version + 1);
    CHECK_NEAR(tg_item(y), 9.0, 0);
    tg_tensor *dy = tg_gradient(tape, y, w);
    CHECK_VALUES(dy, 0, 6.0); /* 2 * 3, not 2 * 2 */
    tg_tape_free(tape);
    tg_set_warning_handler(NULL, NULL);
    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* An update inside a recording tape is not recorded: the tape neither reads nor watches w. */
static void updates_are_not_recorded(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_scalar_of(TG_F64, 1.0), .name = "w");
    tg_optimizer *opt = tg_adam();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *g = tg_scalar_of(TG_F64, 1.0);
    CHECK(tg_apply_gradients(opt, &g, &w, 1) == 0);
    int count = -1;
    tg_watched_variables(tape, &count);
    CHECK(count == 0);
    tg_tape_end(tape);
    tg_tape_free(tape);
    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_scope_end(s);
}

/* ---- minimize ----------------------------------------------------------------------------------------- */

typedef struct quad {
    tg_tensor *x, *y;
    double loss;
    tg_tensor *made;
} quad;

/* (x - 3)^2 + 2 (y + 1)^2, minimum 0 at (3, -1) */
static tg_tensor *quad_loss(void *user)
{
    quad *q = user;
    tg_tensor *dx = tg_sub(q->x, tg_scalar_of(TG_F64, 3.0));
    tg_tensor *dy = tg_add(q->y, tg_scalar_of(TG_F64, 1.0));
    tg_tensor *l = tg_add(tg_square(dx), tg_mul(tg_scalar_of(TG_F64, 2.0), tg_square(dy)));
    q->loss = tg_item(l);
    q->made = l;
    return l;
}

static void minimize_quadratic(void)
{
    tg_scope *s = tg_scope_begin();
    quad q = {.x = tg_variable(tg_scalar_of(TG_F64, 0.0), .name = "x"),
              .y = tg_variable(tg_scalar_of(TG_F64, 0.0), .name = "y")};
    tg_tensor *vars[] = {q.x, q.y};

    /* SGD, lr 0.1: the errors shrink by 0.8 and 0.6 per step, so 3 * 0.8^100 < 1e-9 */
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    for (int k = 0; k < 100; k++)
        CHECK(tg_minimize(opt, quad_loss, &q, vars, 2) == 0);
    CHECK_NEAR(value_at(q.x, 0), 3.0, 1e-9);
    CHECK_NEAR(value_at(q.y, 0), -1.0, 1e-9);
    CHECK(q.loss < 1e-17);
    CHECK(tg_optimizer_iterations(opt) == 100);
    CHECK(!tg_is_alive(q.made)); /* loss_fn ran in tg_minimize's own scope */
    tg_optimizer_free(opt);

    /* Adam with a cosine decay to 0 over 400 steps ends within 1e-3 of the minimum */
    tg_assign(q.x, tg_scalar_of(TG_F64, 0.0));
    tg_assign(q.y, tg_scalar_of(TG_F64, 0.0));
    opt = tg_adam(.schedule = tg_cosine_decay(.initial_learning_rate = 0.1, .decay_steps = 400));
    for (int k = 0; k < 400; k++)
        CHECK(tg_minimize(opt, quad_loss, &q, vars, 2) == 0);
    CHECK(fabs(value_at(q.x, 0) - 3.0) < 1e-3);
    CHECK(fabs(value_at(q.y, 0) + 1.0) < 1e-3);
    tg_optimizer_free(opt);

    tg_variable_free(q.x);
    tg_variable_free(q.y);
    tg_scope_end(s);
}

static tg_tensor *frozen_loss(void *user)
{
    tg_tensor **v = user;
    return tg_sum(tg_square(v[0]));
}

static tg_tensor *failing_loss(void *user)
{
    (void)user;
    return tg_add(NULL, NULL);
}

/* Listed variables are watched, trainable or not (Keras 2 watches var_list); unused ones warn. */
static void minimize_watches_and_warns(void)
{
    tg_scope *s = tg_scope_begin();
    catch_warnings();
    tg_tensor *f = tg_variable(tg_from_f64(TG_SHAPE(2), 1, -2), .name = "f", .trainable = false);
    tg_tensor *unused = tg_variable(tg_scalar_of(TG_F64, 5.0), .name = "unused");
    tg_tensor *vars[] = {f, unused};
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.25);
    CHECK(tg_minimize(opt, frozen_loss, vars, vars, 2) == 0);
    CHECK_VALUES(f, 1e-15, 0.5, -1.0); /* f -= 0.25 * 2 f */
    CHECK_VALUES(unused, 0, 5.0);
    CHECK(n_warnings == 1 && strstr(warning, "Gradients do not exist for variables ['unused']") != NULL);
    CHECK(strstr(warning, "\n  unused: ") != NULL);
    /* the loss function's error comes through */
    EXPECT_ERROR(tg_minimize(opt, failing_loss, NULL, vars, 2) == -1, "`a` is NULL");
    /* all missing: the error names tg_minimize */
    EXPECT_ERROR(tg_minimize(opt, frozen_loss, vars, &unused, 1) == -1,
                 "tg_minimize: No gradients provided for any variable: (['unused'],).\n  unused: ");
    CHECK(tg_optimizer_iterations(opt) == 1);
    /* no variables: a no-op */
    tg_clear_error();
    CHECK(tg_minimize(opt, frozen_loss, vars, NULL, 0) == 0);
    CHECK(!tg_has_error() && tg_optimizer_iterations(opt) == 1);
    tg_set_warning_handler(NULL, NULL);
    tg_optimizer_free(opt);
    tg_variable_free(f);
    tg_variable_free(unused);
    tg_scope_end(s);
}

int main(void)
{
    RUN(golden_updates);
    RUN(keras_defaults);
    RUN(constructor_errors);
    RUN(schedules);
    RUN(schedule_errors);
    RUN(schedule_follows_iterations);
    RUN(clipping);
    RUN(all_gradients_missing);
    RUN(some_gradients_missing);
    RUN(validation_errors);
    RUN(nan_is_applied);
    RUN(state_layout);
    RUN(persistent_tape_keeps_recorded_value);
    RUN(updates_are_not_recorded);
    RUN(minimize_quadratic);
    RUN(minimize_watches_and_warns);
    return TEST_SUMMARY();
}
