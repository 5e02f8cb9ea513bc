/* Values and gradients of composite expressions against golden numbers computed by
 * PyTorch in float64 (tests/fixtures/golden.txt, written by tools/make_fixtures.py).
 *
 * Each case of the fixture is rebuilt here, by name, from tapegrad's public API; its
 * loss and its gradient with respect to every input that has a `grad` line must match
 * to 1e-9 relative. A missing fixture, a case missing from it, or a case in it that no
 * builder here knows, all fail: nothing is skipped silently. */
#include <stdlib.h>

#include "check.h"
#include "fixture.h"

#define GOLDEN_PATH TG_FIXTURES_DIR "/golden.txt"

#define GT_MAX_ARRAYS 8
#define GT_MAX_VALUES 256
#define GT_MAX_CASES  32
#define GT_NAME       48

/* Both parts matter: the relative one for ordinary values, the tiny absolute floor for
 * entries that are exactly 0 (e.g. maximum's gradient on the losing side). */
#define GT_RTOL 1e-9
#define GT_ATOL 1e-12

typedef struct gt_array {
    char name[GT_NAME];
    tg_shape shape;
    int n;
    double v[GT_MAX_VALUES];
} gt_array;

typedef struct gt_case {
    char name[GT_NAME];
    int n_inputs, n_grads;
    gt_array inputs[GT_MAX_ARRAYS];
    gt_array grads[GT_MAX_ARRAYS];
    bool has_value;
    double value;
} gt_case;

static gt_case cases[GT_MAX_CASES];
static int n_cases;
static char load_error[1400];

/* ---- the fixture parser (fixture.h reads the records) ----------------------------- */

/* "input NAME RANK DIM... : V..." */
static bool parse_input(fx_reader *r, char *rest, gt_case *c)
{
    if (c->n_inputs == GT_MAX_ARRAYS)
        return fx_fail(r, "too many inputs");
    gt_array *a = &c->inputs[c->n_inputs];
    if (!fx_word(&rest, a->name, sizeof a->name) || !fx_shape(&rest, &a->shape) || !fx_char(&rest, ':'))
        return fx_fail(r, "expected `input NAME RANK DIM... : VALUES`");
    if ((a->n = fx_numbers(&rest, a->v, GT_MAX_VALUES)) < 0)
        return fx_fail(r, "a value is not a number, or too many values");
    if (a->n != fx_size(&a->shape))
        return fx_fail(r, "the number of values does not match the shape");
    c->n_inputs++;
    return true;
}

/* "grad NAME : V..." (the shape is that of the input of the same name). */
static bool parse_grad(fx_reader *r, char *rest, gt_case *c)
{
    if (c->n_grads == GT_MAX_ARRAYS)
        return fx_fail(r, "too many grads");
    gt_array *a = &c->grads[c->n_grads];
    if (!fx_word(&rest, a->name, sizeof a->name) || !fx_char(&rest, ':'))
        return fx_fail(r, "expected `grad NAME : VALUES`");
    if ((a->n = fx_numbers(&rest, a->v, GT_MAX_VALUES)) < 0)
        return fx_fail(r, "a value is not a number, or too many values");
    c->n_grads++;
    return true;
}

static bool parse_record(fx_reader *r, const char *word, char *rest, gt_case **cur)
{
    if (!strcmp(word, "case")) {
        if (*cur)
            return fx_fail(r, "`case` before the previous case's `end`");
        if (n_cases == GT_MAX_CASES)
            return fx_fail(r, "too many cases");
        *cur = memset(&cases[n_cases], 0, sizeof cases[0]);
        return fx_word(&rest, (*cur)->name, sizeof(*cur)->name) || fx_fail(r, "`case` without a name");
    }
    if (!*cur)
        return fx_fail(r, "a record outside `case` ... `end`");
    if (!strcmp(word, "input"))
        return parse_input(r, rest, *cur);
    if (!strcmp(word, "grad"))
        return parse_grad(r, rest, *cur);
    if (!strcmp(word, "value"))
        return ((*cur)->has_value = fx_number(&rest, &(*cur)->value)) || fx_fail(r, "`value` without a number");
    if (!strcmp(word, "end")) {
        if (!(*cur)->has_value)
            return fx_fail(r, "a case without a `value`");
        n_cases++;
        *cur = NULL;
        return true;
    }
    return fx_fail(r, "unknown record");
}

static bool load_fixture(FILE *f)
{
    static fx_reader r;
    fx_from(&r, f, "golden.txt");
    gt_case *cur = NULL;
    n_cases = 0;
    char word[16], *rest;
    while (fx_next(&r, word, sizeof word, &rest))
        parse_record(&r, word, rest, &cur);
    if (!r.failed && cur)
        fx_fail(&r, "the file ends inside a case (no `end`)");
    snprintf(load_error, sizeof load_error, "%s", r.error);
    return !r.failed;
}

static const gt_case *find_case(const char *name)
{
    for (int i = 0; i < n_cases; i++)
        if (!strcmp(cases[i].name, name))
            return &cases[i];
    return NULL;
}

static const gt_array *find_array(const gt_array *arrays, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(arrays[i].name, name))
            return &arrays[i];
    return NULL;
}

/* ---- the expressions, as tapegrad builds them -------------------------------------- */

typedef tg_tensor *(*gt_build)(tg_tensor *const *in);

static tg_tensor *build_tanh_affine(tg_tensor *const *in)
{
    return tg_sum(tg_tanh(tg_add(tg_matmul(in[0], in[1]), in[2])));
}

static tg_tensor *build_log_softmax_onehot(tg_tensor *const *in)
{
    return tg_mean(tg_mul(tg_log_softmax(in[0], -1), in[1]));
}

static tg_tensor *build_sigmoid_gauss(tg_tensor *const *in)
{
    tg_tensor *x = in[0];
    return tg_sum(tg_mul(tg_sigmoid(x), tg_exp(tg_neg(tg_mul(x, x)))));
}

static tg_tensor *build_logsumexp_mean(tg_tensor *const *in)
{
    return tg_mean(tg_logsumexp(in[0], .axes = TG_AXES(1)));
}

static tg_tensor *build_maximum_div_abs(tg_tensor *const *in)
{
    tg_tensor *x = in[0], *y = in[1];
    return tg_sum(tg_div(tg_maximum(x, y), tg_add(tg_scalar_like(y, 1.0), tg_abs(y))));
}

static tg_tensor *build_gelu_exact(tg_tensor *const *in) { return tg_sum(tg_gelu(in[0], false)); }

static tg_tensor *build_variance_axis0(tg_tensor *const *in) { return tg_sum(tg_variance(in[0], .axes = TG_AXES(0))); }

static tg_tensor *build_softplus_elu(tg_tensor *const *in)
{
    return tg_sum(tg_mul(tg_softplus(in[0]), tg_elu(in[1], 1.0)));
}

/* in: x, W1, b1, W2, b2, onehot; the parameters are trainable variables. */
static tg_tensor *build_mlp_xent(tg_tensor *const *in)
{
    tg_tensor *h = tg_relu(tg_add(tg_matmul(in[0], in[1]), in[2]));
    tg_tensor *logits = tg_add(tg_matmul(h, in[3]), in[4]);
    tg_tensor *per_example = tg_sum(tg_mul(tg_log_softmax(logits, -1), in[5]), .axes = TG_AXES(-1));
    return tg_neg(tg_mean(per_example));
}

/* sum(d/dx sum(x^3 + exp(x))): the inner tape's gradient is computed while the outer
 * tape (opened by the runner) records, which is how a second derivative is taken. */
static tg_tensor *build_second_derivative(tg_tensor *const *in)
{
    tg_tensor *x = in[0];
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    tg_tensor *y = tg_sum(tg_add(tg_mul(tg_mul(x, x), x), tg_exp(x)));
    tg_tape_end(inner);
    tg_tensor *g = tg_gradient(inner, y, x);
    tg_tape_free(inner);
    return tg_sum(g);
}

/* sum((d/dx sum(tanh(x * w)))^2), differentiated by the outer tape w.r.t. x and w. */
static tg_tensor *build_gradient_penalty(tg_tensor *const *in)
{
    tg_tensor *x = in[0], *w = in[1];
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    tg_tensor *y = tg_sum(tg_tanh(tg_mul(x, w)));
    tg_tape_end(inner);
    tg_tensor *g = tg_gradient(inner, y, x);
    tg_tape_free(inner);
    return tg_sum(tg_mul(g, g));
}

typedef struct gt_spec {
    const char *name;
    const char *inputs[GT_MAX_ARRAYS]; /* the order the builder takes them in */
    bool variables;                    /* differentiated inputs as trainable variables */
    gt_build build;
} gt_spec;

static const gt_spec specs[] = {
    {"tanh_affine", {"x", "W", "b"}, false, build_tanh_affine},
    {"log_softmax_onehot", {"z", "onehot"}, false, build_log_softmax_onehot},
    {"sigmoid_gauss", {"x"}, false, build_sigmoid_gauss},
    {"logsumexp_mean", {"x"}, false, build_logsumexp_mean},
    {"maximum_div_abs", {"x", "y"}, false, build_maximum_div_abs},
    {"gelu_exact", {"x"}, false, build_gelu_exact},
    {"variance_axis0", {"x"}, false, build_variance_axis0},
    {"softplus_elu", {"x", "y"}, false, build_softplus_elu},
    {"mlp_xent", {"x", "W1", "b1", "W2", "b2", "onehot"}, true, build_mlp_xent},
    {"second_derivative", {"x"}, false, build_second_derivative},
    {"gradient_penalty", {"x", "w"}, false, build_gradient_penalty},
};
#define N_SPECS ((int)(sizeof specs / sizeof specs[0]))

static const gt_spec *find_spec(const char *name)
{
    for (int i = 0; i < N_SPECS; i++)
        if (!strcmp(specs[i].name, name))
            return &specs[i];
    return NULL;
}

/* ---- running a case ------------------------------------------------------------------ */

static bool close_enough(double got, double want) { return fabs(got - want) <= GT_RTOL * fabs(want) + GT_ATOL; }

static void check_tensor(const char *cname, const char *what, const tg_tensor *t, const tg_shape *shape,
                         const double *want, int n)
{
    if (!t) {
        printf("  FAIL %s: %s is NULL (%s)\n", cname, what, tg_last_error() ? tg_last_error() : "not connected");
        check_failures_in_test++;
        return;
    }
    tg_shape got_shape = tg_shape_of(t);
    bool same = got_shape.rank == shape->rank && tg_size(t) == n;
    for (int i = 0; same && i < shape->rank; i++)
        same = got_shape.dims[i] == shape->dims[i];
    if (!same || tg_dtype_of(t) != TG_F64) {
        printf("  FAIL %s: %s has the wrong shape or dtype (%s)\n", cname, what, tg_dtype_name(tg_dtype_of(t)));
        check_failures_in_test++;
        return;
    }
    double got[GT_MAX_VALUES];
    CHECK(tg_copy_out_f64(t, got, n) == 0);
    for (int i = 0; i < n; i++) {
        if (!close_enough(got[i], want[i])) {
            printf("  FAIL %s: %s[%d] = %.17g, PyTorch gives %.17g\n", cname, what, i, got[i], want[i]);
            check_failures_in_test++;
            return;
        }
    }
}

/* Makes the spec's inputs from the fixture; returns the number made (-1 on error) and
 * sets src[] to those to differentiate with respect to, in the fixture's grad order. */
static int make_inputs(const gt_spec *sp, const gt_case *c, tg_tensor **in, tg_tensor **src, tg_tensor **vars)
{
    int n = 0;
    for (; n < GT_MAX_ARRAYS && sp->inputs[n]; n++) {
        const gt_array *a = find_array(c->inputs, c->n_inputs, sp->inputs[n]);
        if (!a) {
            printf("  FAIL %s: the fixture has no input `%s`\n", c->name, sp->inputs[n]);
            check_failures_in_test++;
            return -1;
        }
        in[n] = tg_tensor_from(TG_F64, a->shape, a->v);
        bool differentiated = find_array(c->grads, c->n_grads, a->name) != NULL;
        if (sp->variables && differentiated)
            in[n] = vars[n] = tg_variable(in[n], .name = a->name);
        CHECK(in[n] != NULL);
    }
    for (int g = 0; g < c->n_grads; g++) {
        src[g] = NULL;
        for (int i = 0; i < n; i++)
            if (!strcmp(sp->inputs[i], c->grads[g].name))
                src[g] = in[i];
        if (!src[g]) {
            printf("  FAIL %s: grad `%s` is not an input of the expression\n", c->name, c->grads[g].name);
            check_failures_in_test++;
            return -1;
        }
    }
    return n;
}

static void run_golden(const char *name)
{
    const gt_case *c = find_case(name);
    const gt_spec *sp = find_spec(name);
    if (!c || !sp) {
        printf("  FAIL %s: %s\n", name,
               !c ? "not in " GOLDEN_PATH " (rerun tools/make_fixtures.py)" : "no builder in test_golden.c");
        check_failures_in_test++;
        return;
    }
    tg_scope *scope = tg_scope_begin();
    tg_tensor *in[GT_MAX_ARRAYS] = {0}, *src[GT_MAX_ARRAYS] = {0}, *vars[GT_MAX_ARRAYS] = {0};
    int n = make_inputs(sp, c, in, src, vars);
    if (n >= 0) {
        tg_tape *tape = tg_tape_begin();
        for (int g = 0; g < c->n_grads && !sp->variables; g++)
            CHECK(tg_watch(tape, src[g]) == 0);
        tg_tensor *loss = sp->build(in);
        tg_tape_end(tape);
        check_tensor(name, "value", loss, &TG_SCALAR_SHAPE, &c->value, 1);

        tg_tensor *grads[GT_MAX_ARRAYS] = {0};
        int rc =
            tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = src, .n_sources = c->n_grads, .out = grads);
        CHECK(rc == 0);
        for (int g = 0; rc == 0 && g < c->n_grads; g++) {
            char what[64];
            snprintf(what, sizeof what, "d value / d %s", c->grads[g].name);
            tg_shape shape = tg_shape_of(src[g]);
            check_tensor(name, what, grads[g], &shape, c->grads[g].v, c->grads[g].n);
        }
        tg_tape_free(tape);
    }
    tg_scope_end(scope);
    for (int i = 0; i < GT_MAX_ARRAYS; i++)
        if (vars[i])
            tg_variable_free(vars[i]);
}

/* ---- tests ------------------------------------------------------------------------- */

static bool fixture_loaded;

static void test_fixture_loads(void)
{
    if (!fixture_loaded)
        printf("  FAIL cannot use %s: %s\n", GOLDEN_PATH, load_error);
    CHECK(fixture_loaded);
    CHECK(n_cases == N_SPECS);
}

/* Every case of the fixture has a builder here (new cases cannot be forgotten). */
static void test_every_fixture_case_is_built(void)
{
    for (int i = 0; i < n_cases; i++) {
        if (!find_spec(cases[i].name)) {
            printf("  FAIL case `%s` of the fixture has no builder\n", cases[i].name);
            check_failures_in_test++;
        }
        CHECK(cases[i].n_grads > 0);
    }
}

/* The parser itself rejects what it should, so a damaged fixture cannot pass. */
static bool parses(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    bool ok = f && load_fixture(f);
    if (f)
        fclose(f);
    return ok;
}

static void test_parser(void)
{
    CHECK(parses("# c\ncase a\ninput x 2 1 2 : 1.5 -2e-3\nvalue 3\ngrad x : 1 2\nend\n"));
    CHECK(n_cases == 1 && cases[0].inputs[0].shape.dims[1] == 2 && cases[0].inputs[0].v[1] == -2e-3);
    CHECK(cases[0].value == 3.0 && cases[0].grads[0].n == 2);
    CHECK(!parses("case a\ninput x 1 3 : 1 2\nvalue 3\nend\n")); /* count vs shape */
    CHECK(strstr(load_error, "line 2") != NULL);
    CHECK(!parses("case a\ninput x 1 2 : 1 zz\nvalue 3\nend\n")); /* not a number */
    CHECK(!parses("case a\ninput x 1 1 : 1\ngrad x : 1\nend\n")); /* no value */
    CHECK(!parses("case a\nvalue 1\n"));                          /* no end */
    CHECK(!parses("value 1\n"));                                  /* outside a case */
    CHECK(!parses("case a\nvalue 1\nweird 2\nend\n"));            /* unknown record */
}

#define GOLDEN_TEST(name) \
    static void test_##name(void) { run_golden(#name); }
GOLDEN_TEST(tanh_affine)
GOLDEN_TEST(log_softmax_onehot)
GOLDEN_TEST(sigmoid_gauss)
GOLDEN_TEST(logsumexp_mean)
GOLDEN_TEST(maximum_div_abs)
GOLDEN_TEST(gelu_exact)
GOLDEN_TEST(variance_axis0)
GOLDEN_TEST(softplus_elu)
GOLDEN_TEST(mlp_xent)
GOLDEN_TEST(second_derivative)
GOLDEN_TEST(gradient_penalty)

int main(void)
{
    FILE *f = fopen(GOLDEN_PATH, "r");
    if (!f)
        snprintf(load_error, sizeof load_error, "the file is missing (run /usr/bin/python3 tools/make_fixtures.py)");
    fixture_loaded = f && load_fixture(f);
    if (f)
        fclose(f);

    RUN(test_fixture_loads);
    RUN(test_every_fixture_case_is_built);
    RUN(test_tanh_affine);
    RUN(test_log_softmax_onehot);
    RUN(test_sigmoid_gauss);
    RUN(test_logsumexp_mean);
    RUN(test_maximum_div_abs);
    RUN(test_gelu_exact);
    RUN(test_variance_axis0);
    RUN(test_softplus_elu);
    RUN(test_mlp_xent);
    RUN(test_second_derivative);
    RUN(test_gradient_penalty);
    RUN(test_parser); /* last: it replaces the loaded cases */
    return TEST_SUMMARY();
}
