/* The element-wise maths ops (trigonometric and hyperbolic, TF's division family, the
 * NaN-safe products, the predicates, the newer activations): forward values against
 * tests/fixtures/math_golden.txt (PyTorch in float64, TF's rule where they differ:
 * tools/make_math_fixtures.py), integer edge cases by hand, gradients against float64
 * central differences with broadcasting, float32 against float64, second order through
 * nested tapes for every row marked TWICE, TF's special gradients, and error messages. */
#include <stdlib.h>

#include "fixture.h"
#include "gradcheck.h"

/* Tolerances: measured errors with 10x or more to spare. The central differences' own
 * rounding (a weighted sum of up to 15 terms, over 2 EPS) reaches 3e-9 (1 + |n|); float32
 * stays within 3e-7 of float64; libm and PyTorch agree to 1e-13. */
#define EPS         1e-6
#define TOL         1e-7 /* first order: |g - n| <= TOL (1 + |n|) */
#define TOL2        1e-6 /* second order: the differences of a gradient */
#define F32_TOL     3e-6 /* float32 against float64, relative */
#define GOLDEN_RTOL 1e-13

/* ---- the ops, as functions of a list of inputs ------------------------------------------------ */
typedef tg_tensor *(*unary_fn)(tg_loc, const tg_tensor *);
typedef tg_tensor *(*binary_fn)(tg_loc, const tg_tensor *, const tg_tensor *);

static tg_tensor *silu1_at(tg_loc loc, const tg_tensor *x) { return tg_silu_at(loc, x, 1.0); }
static tg_tensor *silu2_at(tg_loc loc, const tg_tensor *x) { return tg_silu_at(loc, x, 2.0); }
static tg_tensor *silu07_at(tg_loc loc, const tg_tensor *x) { return tg_silu_at(loc, x, 0.7); }

typedef struct op_ref {
    const char *name;
    unary_fn f1;
    binary_fn f2;
} op_ref;

/* xs holds n inputs: 1 for a unary op, 2 for a binary one. */
static tg_tensor *call_op(const op_ref *op, tg_tensor *const *xs, int n)
{
    if (n == 1 && op->f1)
        return op->f1(TG_LOC, xs[0]);
    return n == 2 && op->f2 ? op->f2(TG_LOC, xs[0], xs[1]) : NULL;
}

static tg_tensor *fn_op(tg_tensor *const *xs, int n, void *u) { return call_op(u, xs, n); }

/* ---- golden values ----------------------------------------------------------------------------- */
/* Each fixture case by name: the op it runs. */
static const op_ref GOLDEN_OPS[] = {
    {"sin", tg_sin_at, NULL},
    {"cos", tg_cos_at, NULL},
    {"tan", tg_tan_at, NULL},
    {"asin", tg_asin_at, NULL},
    {"acos", tg_acos_at, NULL},
    {"atan", tg_atan_at, NULL},
    {"sinh", tg_sinh_at, NULL},
    {"cosh", tg_cosh_at, NULL},
    {"asinh", tg_asinh_at, NULL},
    {"acosh", tg_acosh_at, NULL},
    {"atanh", tg_atanh_at, NULL},
    {"asin_outside", tg_asin_at, NULL},
    {"acosh_outside", tg_acosh_at, NULL},
    {"atanh_ends", tg_atanh_at, NULL},
    {"atan2", NULL, tg_atan2_at},
    {"atan2_column", NULL, tg_atan2_at},
    {"reciprocal", tg_reciprocal_at, NULL},
    {"expm1", tg_expm1_at, NULL},
    {"squared_difference", NULL, tg_squared_difference_at},
    {"squared_difference_int", NULL, tg_squared_difference_at},
    {"floormod", NULL, tg_floormod_at},
    {"floormod_int", NULL, tg_floormod_at},
    {"floormod_broadcast", NULL, tg_floormod_at},
    {"floormod_zero", NULL, tg_floormod_at},
    {"floordiv", NULL, tg_floordiv_at},
    {"floordiv_int", NULL, tg_floordiv_at},
    {"floordiv_rounding", NULL, tg_floordiv_at},
    {"floordiv_zero", NULL, tg_floordiv_at},
    {"truncatediv_int", NULL, tg_truncatediv_at},
    {"truncatemod", NULL, tg_truncatemod_at},
    {"truncatemod_int", NULL, tg_truncatemod_at},
    {"div_no_nan", NULL, tg_div_no_nan_at},
    {"mul_no_nan", NULL, tg_mul_no_nan_at},
    {"div_no_nan_broadcast", NULL, tg_div_no_nan_at},
    {"is_nan", tg_is_nan_at, NULL},
    {"is_inf", tg_is_inf_at, NULL},
    {"is_finite", tg_is_finite_at, NULL},
    {"log_sigmoid", tg_log_sigmoid_at, NULL},
    {"relu6", tg_relu6_at, NULL},
    {"selu", tg_selu_at, NULL},
    {"silu", silu1_at, NULL},
    {"silu_beta2", silu2_at, NULL},
    {"hard_sigmoid", tg_hard_sigmoid_at, NULL},
    {"softsign", tg_softsign_at, NULL},
};
enum { N_GOLDEN = sizeof GOLDEN_OPS / sizeof GOLDEN_OPS[0], MAX_VALUES = 64 };

typedef struct golden_array {
    tg_shape shape;
    int n;
    double v[MAX_VALUES];
} golden_array;

static bool same_value(double got, double want, bool exact)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want) || exact)
        return got == want;
    return fabs(got - want) <= GOLDEN_RTOL * fabs(want) + 1e-300;
}

/* One case: builds the inputs in its dtype, runs the op, compares every element (and the
 * sign of zeros, which atan2 and reciprocal turn into +-pi and +-Inf). */
static bool run_case(const char *name, const char *dtype, const golden_array *in, int n_in, const golden_array *out)
{
    const op_ref *op = NULL;
    for (int k = 0; k < N_GOLDEN; k++)
        if (strcmp(GOLDEN_OPS[k].name, name) == 0)
            op = &GOLDEN_OPS[k];
    if (!op || n_in != (op->f1 ? 1 : 2)) {
        printf("  case %s: %s\n", name, op ? "wrong number of inputs" : "no op for it in test_ops_math.c");
        return false;
    }
    bool ints = strcmp(dtype, "i64") == 0, ok = true;
    tg_scope *s = tg_scope_begin();
    tg_tensor *xs[2];
    for (int k = 0; k < n_in; k++) {
        xs[k] = tg_tensor_from(TG_F64, in[k].shape, in[k].v);
        if (ints)
            xs[k] = tg_cast(xs[k], TG_I64);
    }
    tg_tensor *y = call_op(op, xs, n_in);
    double got[MAX_VALUES];
    if (!y || tg_size(y) != out->n || tg_copy_out_f64(y, got, out->n) != 0) {
        printf("  case %s: %s\n", name, y ? "wrong size" : tg_last_error());
        ok = false;
    }
    bool exact = ints || (y && tg_dtype_of(y) == TG_BOOL);
    if (ok && !ints && tg_dtype_of(y) != TG_F64 && tg_dtype_of(y) != TG_BOOL)
        ok = false;
    for (int i = 0; ok && i < out->n; i++)
        if (!same_value(got[i], out->v[i], exact) || (out->v[i] == 0 && signbit(got[i]) != signbit(out->v[i]))) {
            printf("  case %s: element %d is %.17g, expected %.17g\n", name, i, got[i], out->v[i]);
            ok = false;
        }
    tg_scope_end(s);
    return ok;
}

static void test_golden_values(void)
{
    static fx_reader r;
    if (!fx_open(&r, "math_golden.txt", "tools/make_math_fixtures.py")) {
        printf("  %s\n", r.error);
        CHECK(false);
        return;
    }
    char tag[16], *rest, name[64] = "", dtype[8] = "", input[8];
    static golden_array in[2], out;
    int n_in = 0, cases = 0;
    bool seen[N_GOLDEN] = {0}, have_out = false;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        bool ok;
        if (strcmp(tag, "case") == 0) {
            ok = fx_word(&rest, name, sizeof name) && fx_word(&rest, dtype, sizeof dtype) && fx_done(rest);
            n_in = 0;
            have_out = false;
        } else if (strcmp(tag, "input") == 0) {
            ok = n_in < 2 && fx_word(&rest, input, sizeof input) &&
                 fx_array(&rest, &in[n_in].shape, in[n_in].v, MAX_VALUES);
            if (ok) {
                in[n_in].n = (int)fx_size(&in[n_in].shape);
                n_in++;
            }
        } else if (strcmp(tag, "out") == 0) {
            ok = have_out = fx_array(&rest, &out.shape, out.v, MAX_VALUES);
            out.n = (int)fx_size(&out.shape);
        } else if (strcmp(tag, "end") == 0) {
            ok = have_out;
            if (ok) {
                CHECK(run_case(name, dtype, in, n_in, &out));
                cases++;
                for (int k = 0; k < N_GOLDEN; k++)
                    seen[k] |= strcmp(GOLDEN_OPS[k].name, name) == 0;
            }
        } else {
            ok = false;
        }
        if (!ok)
            fx_fail(&r, "a `%s` record that cannot be read", tag);
    }
    if (r.failed) {
        printf("  %s\n", r.error);
        CHECK(!r.failed);
    }
    fx_close(&r);
    for (int k = 0; k < N_GOLDEN; k++)
        if (!seen[k]) {
            printf("  case %s is not in the fixture (rerun tools/make_math_fixtures.py)\n", GOLDEN_OPS[k].name);
            CHECK(seen[k]);
        }
    printf("  %d golden cases\n", cases);
    CHECK(cases == N_GOLDEN);
}

/* ---- integers, by hand: int32 edges and division by zero -------------------------------------------- */
static void test_integer_division(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_i32(TG_SHAPE(6), 7, -7, 7, -7, INT32_MIN, INT32_MIN);
    tg_tensor *b = tg_from_i32(TG_SHAPE(6), 2, 2, -2, -2, -1, 3);
    /* INT32_MIN / -1 overflows: it wraps to INT32_MIN, as TF's CPU kernels; its remainder is 0 */
    CHECK_VALUES(tg_floordiv(a, b), 0, 3, -4, -4, 3, INT32_MIN, -715827883);
    CHECK_VALUES(tg_floormod(a, b), 0, 1, 1, -1, -1, 0, 1);
    CHECK_VALUES(tg_truncatediv(a, b), 0, 3, -3, -3, 3, INT32_MIN, -715827882);
    CHECK_VALUES(tg_truncatemod(a, b), 0, 1, -1, 1, -1, 0, -2);
    CHECK(tg_dtype_of(tg_floordiv(a, b)) == TG_I32 && tg_dtype_of(tg_squared_difference(a, b)) == TG_I32);
    /* a // b * b + a % b == a, for both roundings, with broadcasting */
    tg_tensor *m = tg_from_i64(TG_SHAPE(2, 3), -9, 0, 13, 5, -1, 100), *d = tg_from_i64(TG_SHAPE(3), 4, -3, -7);
    CHECK_VALUES(tg_add(tg_mul(tg_floordiv(m, d), d), tg_floormod(m, d)), 0, -9, 0, 13, 5, -1, 100);
    CHECK_VALUES(tg_add(tg_mul(tg_truncatediv(m, d), d), tg_truncatemod(m, d)), 0, -9, 0, 13, 5, -1, 100);
    /* an integer zero divisor is an error naming the op, the element and the caller's line */
    tg_tensor *z = tg_from_i64(TG_SHAPE(3), 1, 0, 2);
    binary_fn div_ops[] = {tg_floormod_at, tg_floordiv_at, tg_truncatediv_at, tg_truncatemod_at};
    const char *names[] = {"tg_floormod", "tg_floordiv", "tg_truncatediv", "tg_truncatemod"};
    for (int k = 0; k < 4; k++) {
        tg_clear_error();
        CHECK(div_ops[k](TG_LOC, tg_from_i64(TG_SHAPE(3), 5, 6, 7), z) == NULL);
        char want[96];
        snprintf(want, sizeof want, "%s: integer division by zero (element 1 of `b`)", names[k]);
        CHECK_ERROR(want);
    }
    tg_clear_error();
    CHECK(tg_floormod(m, tg_from_i64(TG_SCALAR_SHAPE, 0)) == NULL);
    char here[64];
    snprintf(here, sizeof here, "%s:%d", __FILE__, __LINE__ - 2);
    CHECK_ERROR(here);
    /* floats divide by zero as IEEE says */
    tg_tensor *fz = tg_from_f64(TG_SHAPE(2), 0.0, 0.0), *fa = tg_from_f64(TG_SHAPE(2), 3.0, -3.0);
    double v[2];
    CHECK(tg_copy_out_f64(tg_floordiv(fa, fz), v, 2) == 0 && v[0] == INFINITY && v[1] == -INFINITY);
    CHECK(tg_copy_out_f64(tg_truncatemod(fa, fz), v, 2) == 0 && isnan(v[0]) && isnan(v[1]));
    tg_scope_end(s);
}

/* ---- gradients against central differences; float32 against float64 ------------------------------------ */
static void check_op(const op_ref *op, tg_tensor *const *xs)
{
    int n = op->f1 ? 1 : 2;
    if (!gradcheck(op->name, fn_op, xs, n, (void *)op, EPS, TOL)) {
        printf("  FAIL gradcheck %s\n", op->name);
        check_failures_in_test++;
    }
    if (!f32_matches_f64(op->name, fn_op, xs, n, (void *)op, F32_TOL)) {
        printf("  FAIL f32_matches_f64 %s\n", op->name);
        check_failures_in_test++;
    }
}

/* Inputs in [lo, hi] kept DELTA away from the points `avoid` (kinks, poles). */
static tg_tensor *input_avoiding(uint64_t seed, tg_shape shape, double lo, double hi, const double *avoid, int n)
{
    tg_tensor *x = gc_input(seed, shape, lo, hi);
    double v[64];
    int64_t m = tg_size(x);
    tg_copy_out_f64(x, v, m);
    for (int64_t i = 0; i < m; i++)
        for (int k = 0; k < n; k++)
            if (fabs(v[i] - avoid[k]) < 0.05)
                v[i] = avoid[k] + (v[i] < avoid[k] ? -0.05 : 0.05);
    return tg_tensor_from(TG_F64, shape, v);
}

typedef struct unary_case {
    op_ref op;
    double lo, hi;
    double avoid[2];
    int n_avoid;
} unary_case;

static const unary_case UNARY[] = {
    {{"sin", tg_sin_at, NULL}, -4, 4, {0}, 0},
    {{"cos", tg_cos_at, NULL}, -4, 4, {0}, 0},
    {{"tan", tg_tan_at, NULL}, -1.3, 1.3, {0}, 0},
    {{"asin", tg_asin_at, NULL}, -0.9, 0.9, {0}, 0},
    {{"acos", tg_acos_at, NULL}, -0.9, 0.9, {0}, 0},
    {{"atan", tg_atan_at, NULL}, -4, 4, {0}, 0},
    {{"sinh", tg_sinh_at, NULL}, -3, 3, {0}, 0},
    {{"cosh", tg_cosh_at, NULL}, -3, 3, {0}, 0},
    {{"asinh", tg_asinh_at, NULL}, -4, 4, {0}, 0},
    {{"acosh", tg_acosh_at, NULL}, 1.1, 5, {0}, 0},
    {{"atanh", tg_atanh_at, NULL}, -0.9, 0.9, {0}, 0},
    {{"reciprocal", tg_reciprocal_at, NULL}, -3, 3, {0}, 1},
    {{"expm1", tg_expm1_at, NULL}, -3, 3, {0}, 0},
    {{"log_sigmoid", tg_log_sigmoid_at, NULL}, -8, 8, {0}, 0},
    {{"relu6", tg_relu6_at, NULL}, -2, 8, {0, 6}, 2},
    {{"selu", tg_selu_at, NULL}, -3, 3, {0}, 1},
    {{"silu", silu1_at, NULL}, -6, 6, {0}, 0},
    {{"silu beta 0.7", silu07_at, NULL}, -6, 6, {0}, 0},
    {{"hard_sigmoid", tg_hard_sigmoid_at, NULL}, -5, 5, {-3, 3}, 2},
    {{"softsign", tg_softsign_at, NULL}, -4, 4, {0}, 1},
};
enum { N_UNARY = sizeof UNARY / sizeof UNARY[0] };

static void test_gradients_unary(void)
{
    tg_scope *s = tg_scope_begin();
    for (int k = 0; k < N_UNARY; k++) {
        const unary_case *u = &UNARY[k];
        tg_tensor *x = input_avoiding(300 + (uint64_t)k, TG_SHAPE(3, 5), u->lo, u->hi, u->avoid, u->n_avoid);
        check_op(&u->op, &x);
    }
    tg_scope_end(s);
}

typedef struct binary_case {
    op_ref op;
    double lo_a, hi_a, lo_b, hi_b;
} binary_case;

/* b's range keeps it away from 0 where 0 is special; floormod and truncatemod get a and b
 * whose quotient stays away from integers (below). */
static const binary_case BINARY[] = {
    {{"atan2", NULL, tg_atan2_at}, 0.2, 2, -2, 2},
    {{"squared_difference", NULL, tg_squared_difference_at}, -2, 2, -2, 2},
    {{"div_no_nan", NULL, tg_div_no_nan_at}, -2, 2, 0.5, 2},
    {{"mul_no_nan", NULL, tg_mul_no_nan_at}, -2, 2, 0.5, 2},
    {{"floormod", NULL, tg_floormod_at}, -6, 6, 0.7, 2},
    {{"truncatemod", NULL, tg_truncatemod_at}, -6, 6, 0.7, 2},
};
enum { N_BINARY = sizeof BINARY / sizeof BINARY[0] };

/* For the mods, a moved so that a / b is at least 0.1 from an integer (b broadcasts over
 * a's rows: shape [3] against [2, 3], or a column [2, 1]). */
static tg_tensor *quotient_safe(tg_tensor *a, const tg_tensor *b)
{
    tg_tensor *q = tg_div(a, b);
    double qv[64], bv[64];
    int64_t n = tg_size(q);
    tg_copy_out_f64(q, qv, n);
    tg_copy_out_f64(tg_broadcast_to(b, tg_shape_of(q)), bv, n);
    for (int64_t i = 0; i < n; i++) {
        double f = qv[i] - floor(qv[i]);
        if (f < 0.1 || f > 0.9)
            qv[i] = floor(qv[i]) + 0.5;
        qv[i] *= bv[i];
    }
    return tg_tensor_from(TG_F64, tg_shape_of(q), qv);
}

static const tg_shape BROADCASTS[][2] = {
    {{2, {2, 3}}, {2, {2, 3}}},
    {{2, {2, 3}}, {1, {3}}},
    {{2, {2, 3}}, {2, {2, 1}}},
    {{0}, {2, {2, 3}}},
};

static void test_gradients_binary(void)
{
    tg_scope *s = tg_scope_begin();
    for (int k = 0; k < N_BINARY; k++)
        for (int j = 0; j < 4; j++) {
            const binary_case *c = &BINARY[k];
            tg_tensor *xs[2] = {gc_input(400 + (uint64_t)(k * 4 + j), BROADCASTS[j][0], c->lo_a, c->hi_a),
                                gc_input(500 + (uint64_t)(k * 4 + j), BROADCASTS[j][1], c->lo_b, c->hi_b)};
            bool mod = strstr(c->op.name, "mod") != NULL;
            if (mod && BROADCASTS[j][0].rank == 0)
                continue; /* a scalar a against a tensor b: a cannot be moved per element */
            if (mod)
                xs[0] = quotient_safe(xs[0], xs[1]);
            op_ref named = c->op;
            char name[64];
            snprintf(name, sizeof name, "%s shapes %d", c->op.name, j);
            named.name = name;
            check_op(&named, xs);
        }
    tg_scope_end(s);
}

/* ---- second order: the gradient of each rule, itself differentiated ----------------------------- */
typedef struct inner_grad {
    const op_ref *op;
    int wrt; /* the input whose gradient is returned */
} inner_grad;

/* dL/dxs[wrt] for L = sum(op(xs) * w), taken on an inner tape: the outer tape of gradcheck
 * records it, so gradcheck checks the rule's own derivatives (the Hessian's rows). */
static tg_tensor *fn_inner_grad(tg_tensor *const *xs, int n, void *u)
{
    const inner_grad *ig = u;
    tg_tape *t = tg_tape_begin();
    for (int i = 0; i < n; i++)
        tg_watch(t, xs[i]);
    tg_tensor *y = call_op(ig->op, xs, n);
    tg_tensor *L = y ? tg_sum(tg_mul(y, gc_weights(y, 77))) : NULL;
    tg_tape_end(t);
    tg_tensor *g = L ? tg_gradient(t, L, xs[ig->wrt]) : NULL;
    tg_tape_free(t);
    return g;
}

static void check_second_order(const op_ref *op, tg_tensor *const *xs, int n)
{
    for (int wrt = 0; wrt < n; wrt++) {
        inner_grad ig = {op, wrt};
        char name[80];
        snprintf(name, sizeof name, "d/dx of %s's gradient %d", op->name, wrt);
        if (!gradcheck(name, fn_inner_grad, xs, n, &ig, EPS, TOL2)) {
            printf("  FAIL second order %s\n", name);
            check_failures_in_test++;
        }
    }
}

static void test_second_order(void)
{
    tg_scope *s = tg_scope_begin();
    int rows = 0;
    for (int k = 0; k < N_UNARY; k++) {
        const unary_case *u = &UNARY[k];
        tg_tensor *x = input_avoiding(600 + (uint64_t)k, TG_SHAPE(2, 3), u->lo, u->hi, u->avoid, u->n_avoid);
        check_second_order(&u->op, &x, 1);
        rows++;
    }
    for (int k = 0; k < N_BINARY; k++) {
        const binary_case *c = &BINARY[k];
        tg_tensor *xs[2] = {gc_input(700 + (uint64_t)k, TG_SHAPE(2, 3), c->lo_a, c->hi_a),
                            gc_input(800 + (uint64_t)k, TG_SHAPE(3), c->lo_b, c->hi_b)};
        if (strstr(c->op.name, "mod"))
            xs[0] = quotient_safe(xs[0], xs[1]);
        check_second_order(&c->op, xs, 2);
        rows++;
    }
    printf("  %d ops to second order\n", rows);
    tg_scope_end(s);
}

static tg_tensor *f_sin(const tg_tensor *x) { return tg_sin(x); }
static tg_tensor *f_tan(const tg_tensor *x) { return tg_tan(x); }
static tg_tensor *f_asin(const tg_tensor *x) { return tg_asin(x); }
static tg_tensor *f_atanh(const tg_tensor *x) { return tg_atanh(x); }
static tg_tensor *f_log_sigmoid(const tg_tensor *x) { return tg_log_sigmoid(x); }
static tg_tensor *f_softsign(const tg_tensor *x) { return tg_softsign(x); }

/* Second derivatives in closed form at a few points. */
static void test_second_derivative_values(void)
{
    tg_scope *s = tg_scope_begin();
    const double v[3] = {-0.5, 0.2, 0.7};
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(3), v);
    double e[6][3];
    for (int i = 0; i < 3; i++) {
        double t = v[i], p = 1 / (1 + exp(-t));
        e[0][i] = -sin(t);
        e[1][i] = 2 * tan(t) / (cos(t) * cos(t));
        e[2][i] = t / pow(1 - t * t, 1.5);
        e[3][i] = 2 * t / ((1 - t * t) * (1 - t * t));
        e[4][i] = -p * (1 - p);                                /* log_sigmoid'' = -sigmoid' */
        e[5][i] = -2 * (t > 0 ? 1 : -1) / pow(1 + fabs(t), 3); /* softsign'' */
    }
    tg_tensor *(*f[6])(const tg_tensor *) = {f_sin, f_tan, f_asin, f_atanh, f_log_sigmoid, f_softsign};
    for (int k = 0; k < 6; k++)
        CHECK_VALUES(second_derivative(f[k], x), 1e-12, e[k][0], e[k][1], e[k][2]);
    tg_scope_end(s);
}

/* ---- TF's special cases ------------------------------------------------------------------------------ */
/* The gradients of sum(op(a, b)) (dy = 1) with respect to a and b. */
static void grads_of(binary_fn op, tg_tensor *a, tg_tensor *b, tg_tensor **ga, tg_tensor **gb)
{
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, a);
    tg_watch(t, b);
    tg_tensor *y = tg_sum(op(TG_LOC, a, b));
    tg_tape_end(t);
    *ga = tg_gradient(t, y, a);
    *gb = tg_gradient(t, y, b);
    tg_tape_free(t);
}

static tg_tensor *grad1(unary_fn op, tg_tensor *x)
{
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = op(TG_LOC, x);
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, y, x);
    tg_tape_free(t);
    return g;
}

static void test_special_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *ga, *gb;
    double v[4];
    /* div_no_nan: 0 where b == 0, for both inputs, even for a NaN a */
    tg_tensor *a = tg_from_f64(TG_SHAPE(3), 2.0, NAN, 3.0), *b = tg_from_f64(TG_SHAPE(3), 0.0, 0.0, 2.0);
    grads_of(tg_div_no_nan_at, a, b, &ga, &gb);
    CHECK_VALUES(ga, 0, 0, 0, 0.5);
    CHECK_VALUES(gb, 1e-15, 0, 0, -0.75);
    /* mul_no_nan: a's gradient is mul_no_nan(dy, b), b's is mul_no_nan(a, dy): a NaN a
     * still reaches b's gradient, as in TF */
    grads_of(tg_mul_no_nan_at, a, b, &ga, &gb);
    CHECK_VALUES(ga, 0, 0, 0, 2);
    CHECK(tg_copy_out_f64(gb, v, 3) == 0 && v[0] == 2 && isnan(v[1]) && v[2] == 3);
    /* floormod: dy for a, -dy * floor(a / b) for b; truncatemod: -dy * trunc(a / b) */
    tg_tensor *m = tg_from_f64(TG_SHAPE(4), 7.0, -7.0, 7.5, -7.5), *d = tg_from_f64(TG_SHAPE(4), 3.0, 3.0, -2.0, -2.0);
    grads_of(tg_floormod_at, m, d, &ga, &gb);
    CHECK_VALUES(ga, 0, 1, 1, 1, 1);
    CHECK_VALUES(gb, 0, -2, 3, 4, -3);
    grads_of(tg_truncatemod_at, m, d, &ga, &gb);
    CHECK_VALUES(ga, 0, 1, 1, 1, 1);
    CHECK_VALUES(gb, 1e-15, -2, 2, 3, -3);
    /* atan2 at the origin: 0 / 0, NaN, as TF's rule gives */
    grads_of(tg_atan2_at, tg_from_f64(TG_SHAPE(2), 0.0, 1.0), tg_from_f64(TG_SHAPE(2), 0.0, 1.0), &ga, &gb);
    CHECK(tg_copy_out_f64(ga, v, 2) == 0 && isnan(v[0]) && fabs(v[1] - 0.5) < 1e-15);
    CHECK(tg_copy_out_f64(gb, v, 2) == 0 && isnan(v[0]) && fabs(v[1] + 0.5) < 1e-15);
    /* relu6 and hard_sigmoid: 0 at the bounds themselves (TF's Relu6Grad: strictly inside) */
    CHECK_VALUES(grad1(tg_relu6_at, tg_from_f64(TG_SHAPE(4), -1.0, 0.0, 3.0, 6.0)), 0, 0, 0, 1, 0);
    CHECK_VALUES(grad1(tg_hard_sigmoid_at, tg_from_f64(TG_SHAPE(4), -3.0, -1.0, 3.0, 4.0)), 1e-15, 0, 1.0 / 6, 0, 0);
    /* at a NaN input: 0, as TF's Relu6Grad (the forward passes the NaN on) */
    CHECK_VALUES(grad1(tg_relu6_at, tg_from_f64(TG_SHAPE(2), NAN, 2.0)), 0, 0, 1);
    CHECK_VALUES(grad1(tg_hard_sigmoid_at, tg_from_f64(TG_SHAPE(2), NAN, 2.0)), 1e-15, 0, 1.0 / 6);
    /* selu at 0: scale (TF's SeluGrad reads the output: 0 is not below 0) */
    const double scale = 1.0507009873554804934193349852946, alpha = 1.6732632423543772848170429916717;
    CHECK_VALUES(grad1(tg_selu_at, tg_from_f64(TG_SHAPE(3), -1.0, 0.0, 2.0)), 1e-14, scale * alpha * exp(-1.0), scale,
                 scale);
    /* the tails stay finite */
    tg_tensor *tails = tg_from_f64(TG_SHAPE(4), -800, -40, 40, 800);
    CHECK_VALUES(grad1(tg_log_sigmoid_at, tails), 1e-15, 1, 1, exp(-40.0), 0);
    CHECK_VALUES(grad1(silu1_at, tails), 1e-15, 0, -39 * exp(-40.0), 1, 1);
    CHECK_VALUES(grad1(tg_softsign_at, tails), 1e-15, 1 / (801.0 * 801), 1 / (41.0 * 41), 1 / (41.0 * 41),
                 1 / (801.0 * 801));
    tg_scope_end(s);
}

/* floordiv, truncatediv and the predicates have no gradient (TF's None); sign-like cuts. */
static void test_not_differentiable(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f64(TG_SHAPE(2), 5.0, -3.5), *b = tg_from_f64(TG_SHAPE(2), 2.0, 2.0);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, a);
    tg_tensor *q = tg_floordiv(a, b), *n = tg_is_nan(a), *i = tg_is_inf(a), *f = tg_is_finite(a);
    tg_tape_end(t);
    CHECK_VALUES(q, 0, 2, -2);
    CHECK(tg_dtype_of(n) == TG_BOOL && tg_dtype_of(i) == TG_BOOL && tg_dtype_of(f) == TG_BOOL);
    CHECK(tg_gradient(t, q, a) == NULL);
    tg_tensor *g = NULL;
    CHECK(tg_gradients(t, .targets = &q, .n_targets = 1, .sources = &a, .n_sources = 1,
                       .unconnected = TG_UNCONNECTED_ZERO, .out = &g) == 0);
    CHECK_VALUES(g, 0, 0, 0);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* A gradient that vanishes because every input is past a flat end is explained so. */
static void test_saturation_explained(void)
{
    tg_scope *s = tg_scope_begin();
    struct {
        unary_fn f;
        float lo, hi;
        const char *op, *words;
    } cases[] = {
        {tg_relu6_at, -1, 7, "tg_relu6", "outside (0, 6)"},
        {tg_hard_sigmoid_at, -5, 4, "tg_hard_sigmoid", "outside (-3, 3)"},
    };
    for (int k = 0; k < 2; k++) {
        tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2), cases[k].lo, cases[k].hi), .name = "w");
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_tensor *y = tg_sum(cases[k].f(TG_LOC, w));
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, y, w), 0, 0, 0);
        tg_diagnosis d;
        CHECK(tg_explain(t, y, w, &d) == 0);
        CHECK(d.cause == TG_CAUSE_ZERO_GRADIENT && d.op && strcmp(d.op, cases[k].op) == 0);
        CHECK(strstr(d.message, cases[k].words) != NULL);
        tg_tape_free(t);
        tg_variable_free(w);
    }
    tg_scope_end(s);
}

/* ---- errors ----------------------------------------------------------------------------------------- */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *i = tg_from_i32(TG_SHAPE(2), 1, 2), *f = tg_ones(TG_F32, TG_SHAPE(2, 3));
    tg_tensor *d = tg_ones(TG_F64, TG_SHAPE(2, 3)), *bo = tg_cast(i, TG_BOOL);
    /* float-only ops refuse integers, naming the op */
    unary_fn float_only[] = {tg_sin_at,          tg_cos_at,         tg_tan_at,   tg_asin_at,   tg_acos_at,
                             tg_atan_at,         tg_sinh_at,        tg_cosh_at,  tg_asinh_at,  tg_acosh_at,
                             tg_atanh_at,        tg_reciprocal_at,  tg_expm1_at, tg_is_nan_at, tg_is_inf_at,
                             tg_is_finite_at,    tg_log_sigmoid_at, tg_relu6_at, tg_selu_at,   silu1_at,
                             tg_hard_sigmoid_at, tg_softsign_at};
    const char *names[] = {"tg_sin",          "tg_cos",         "tg_tan",   "tg_asin",   "tg_acos",
                           "tg_atan",         "tg_sinh",        "tg_cosh",  "tg_asinh",  "tg_acosh",
                           "tg_atanh",        "tg_reciprocal",  "tg_expm1", "tg_is_nan", "tg_is_inf",
                           "tg_is_finite",    "tg_log_sigmoid", "tg_relu6", "tg_selu",   "tg_silu",
                           "tg_hard_sigmoid", "tg_softsign"};
    for (size_t k = 0; k < sizeof float_only / sizeof float_only[0]; k++) {
        tg_clear_error();
        CHECK(float_only[k](TG_LOC, i) == NULL);
        char want[96];
        snprintf(want, sizeof want, "%s: `x` must be float32 or float64, not int32 (cast it with tg_cast)", names[k]);
        CHECK_ERROR(want);
    }
    /* the message names the caller's line */
    tg_clear_error();
    CHECK(tg_sin(i) == NULL);
    char here[64];
    snprintf(here, sizeof here, "%s:%d: tg_sin", __FILE__, __LINE__ - 2);
    CHECK_ERROR(here);
    /* binary ops: dtypes, mixing, broadcasting */
    tg_clear_error();
    EXPECT_ERROR(tg_atan2(i, i) == NULL, "tg_atan2: `a` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_div_no_nan(i, i) == NULL, "tg_div_no_nan: `a` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_mul_no_nan(i, i) == NULL, "tg_mul_no_nan: `a` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_truncatediv(d, d) == NULL, "tg_truncatediv: `a` must be int32 or int64, not float64");
    EXPECT_ERROR(tg_floormod(bo, bo) == NULL, "tg_floormod: `a` must be float32, float64, int32 or int64, not bool");
    EXPECT_ERROR(tg_floordiv(f, d) == NULL, "tg_floordiv: cannot mix float32 and float64");
    EXPECT_ERROR(tg_squared_difference(i, tg_from_i64(TG_SHAPE(2), 1, 2)) == NULL,
                 "tg_squared_difference: cannot mix int32 and int64");
    EXPECT_ERROR(tg_atan2(d, tg_ones(TG_F64, TG_SHAPE(3, 2))) == NULL,
                 "tg_atan2: shapes (2, 3) and (3, 2) cannot be broadcast together");
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_golden_values);
    RUN(test_integer_division);
    RUN(test_gradients_unary);
    RUN(test_gradients_binary);
    RUN(test_second_order);
    RUN(test_second_derivative_values);
    RUN(test_special_gradients);
    RUN(test_not_differentiable);
    RUN(test_saturation_explained);
    RUN(test_errors);
    return TEST_SUMMARY();
}
