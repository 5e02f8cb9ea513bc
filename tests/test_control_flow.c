/* tg_cond and tg_while_loop (TF's cond_v2 and while_v2): values and gradients, eagerly and
 * traced in a tg_function, against hand values and float64 finite differences; the errors. */
#include "check.h"

/* ---- tg_cond ------------------------------------------------------------------------------- */
typedef struct {
    tg_tensor *x;
    int runs[2]; /* C runs of each branch */
} branch_data;

static int cube(void *user, tg_tensor **out)
{
    branch_data *d = user;
    d->runs[0]++;
    out[0] = tg_mul(d->x, tg_mul(d->x, d->x));
    return 0;
}

static int sine(void *user, tg_tensor **out)
{
    branch_data *d = user;
    d->runs[1]++;
    out[0] = tg_sin(d->x);
    return 0;
}

static void cond_eager_runs_the_branch_taken(void)
{
    tg_scope *s = tg_scope_begin();
    branch_data d = {.x = tg_from_f64(TG_SHAPE(2), 0.5, -2)};
    tg_tensor *y;
    REQUIRE(tg_cond(tg_greater(tg_sum(d.x), tg_scalar_of(TG_F64, 0)), cube, sine, &d, 1, &y) == 0);
    CHECK_VALUES(y, CHECK_BITS, sin(0.5), sin(-2.0)); /* sum -1.5: false */
    CHECK(d.runs[0] == 0 && d.runs[1] == 1);
    /* on a tape: the gradient goes to the branch taken */
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, d.x);
    REQUIRE(tg_cond(tg_less(tg_sum(d.x), tg_scalar_of(TG_F64, 0)), cube, sine, &d, 1, &y) == 0);
    tg_tensor *sy = tg_sum(y);
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, sy, d.x);
    CHECK_VALUES(g, 1e-15, 3 * 0.25, 3 * 4.0); /* d x^3 = 3 x^2 */
    tg_tape_free(tape);
    tg_scope_end(s);
}

/* f(x, p) = (cond(p, x^3, sin x), d sum(cond) / dx), traced */
static int cond_and_gradient(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    branch_data *d = user;
    (void)n;
    d->x = in[0];
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, in[0]);
    tg_tensor *y;
    if (tg_cond(in[1], cube, sine, d, 1, &y) != 0)
        return -1;
    tg_tensor *sy = tg_sum(y);
    tg_tape_end(tape);
    out[0] = y;
    out[1] = tg_gradient(tape, sy, in[0]);
    tg_tape_free(tape);
    return 2;
}

static void cond_traced_picks_a_branch_at_every_call(void)
{
    branch_data d = {0}, e = {0};
    tg_function *f = tg_function_new(cond_and_gradient, &d);
    tg_function *eager = tg_function_new(cond_and_gradient, &e, .run_eagerly = true);
    for (int i = 0; i < 4; i++) {
        tg_scope *s = tg_scope_begin();
        double x0 = 0.3 + i, x1 = -1.1 * i;
        tg_tensor *in[2] = {tg_from_f64(TG_SHAPE(2), x0, x1), tg_tensor_from(TG_BOOL, TG_SHAPE(), &(bool){i % 2 == 0})};
        tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
        REQUIRE(tg_function_call(f, in, 2, out) == 2);
        REQUIRE(tg_function_call(eager, in, 2, ref) == 2);
        if (i % 2 == 0) {
            CHECK_VALUES(out[0], 1e-15, x0 * x0 * x0, x1 * x1 * x1);
            CHECK_VALUES(out[1], 1e-15, 3 * x0 * x0, 3 * x1 * x1);
        } else {
            CHECK_VALUES(out[0], 1e-15, sin(x0), sin(x1));
            CHECK_VALUES(out[1], 1e-15, cos(x0), cos(x1));
        }
        TENSORS_AGREE(out[0], ref[0], CHECK_BITS);
        TENSORS_AGREE(out[1], ref[1], CHECK_BITS);
        tg_scope_end(s);
    }
    CHECK(tg_function_trace_count(f) == 1);
    /* traced once: each branch's C ran once for the value, and once more for its gradient */
    CHECK(d.runs[0] == 2 && d.runs[1] == 2);
    tg_function_free(f);
    tg_function_free(eager);
}

static int to_vector(void *user, tg_tensor **out)
{
    out[0] = tg_fill(TG_F32, TG_SHAPE(3), 1);
    (void)user;
    return 0;
}

static int to_scalar(void *user, tg_tensor **out)
{
    out[0] = tg_scalar(1.0f);
    (void)user;
    return 0;
}

static int cond_line;
static int mismatched_branches(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    cond_line = __LINE__ + 1;
    return tg_cond(in[0], to_vector, to_scalar, NULL, 1, out) == 0 ? 1 : -1;
}

static void cond_branches_must_agree(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(mismatched_branches, NULL);
    tg_tensor *p = tg_tensor_from(TG_BOOL, TG_SHAPE(), &(bool){true}), *out[TG_FUNCTION_MAX_OUTPUTS];
    EXPECT_ERROR(tg_function_call(f, &p, 1, out) == -1,
                 "tg_cond: output 0 is float32 of shape (3,) from true_fn and float32 of shape () from false_fn; "
                 "both branches must give the same dtypes and shapes");
    char where[64];
    snprintf(where, sizeof where, "test_control_flow.c:%d", cond_line);
    CHECK(tg_last_error() && strstr(tg_last_error(), where));
    tg_function_free(f);
    EXPECT_ERROR(tg_cond(tg_scalar(1.0f), to_vector, to_scalar, NULL, 1, out) == -1,
                 "tg_cond: `pred` must be a bool scalar, not float32 of shape ()");
    tg_scope_end(s);
}

/* ---- gradients against float64 finite differences ------------------------------------------- */
typedef struct {
    tg_tensor *x, *w;
} xw;

static int weighted_squares(void *user, tg_tensor **out)
{
    xw *d = user;
    out[0] = tg_sum(tg_mul(d->w, tg_square(d->x)));
    return 0;
}

static int exp_sum(void *user, tg_tensor **out)
{
    xw *d = user;
    out[0] = tg_mul(tg_sum(tg_exp(d->x)), tg_sum(d->w));
    return 0;
}

/* (L, dL/dx, dL/dw) with L = cond(sum(x) > 0, sum(w x^2), sum(e^x) sum(w)) */
static int cond_loss(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    xw d = {in[0], in[1]};
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, in[0]);
    tg_watch(tape, in[1]);
    tg_tensor *l;
    if (tg_cond(tg_greater(tg_sum(in[0]), tg_scalar_of(TG_F64, 0)), weighted_squares, exp_sum, &d, 1, &l) != 0)
        return -1;
    tg_tape_end(tape);
    out[0] = l;
    int rc = tg_gradients(tape, .targets = &l, .n_targets = 1, .sources = in, .n_sources = 2, .out = out + 1);
    tg_tape_free(tape);
    return rc == 0 ? 3 : -1;
}

/* Every gradient of f's first output (given as outputs 1..n) against central differences. */
static void check_by_finite_differences(tg_function *f, double *x, int nx, double *w, int nw)
{
    const double h = 1e-6;
    tg_scope *s = tg_scope_begin();
    tg_tensor *in[2] = {tg_tensor_from(TG_F64, TG_SHAPE(nx), x), tg_tensor_from(TG_F64, TG_SHAPE(nw), w)};
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, in, 2, out) == 3);
    double g[2][8];
    REQUIRE(tg_copy_out_f64(out[1], g[0], nx) == 0 && tg_copy_out_f64(out[2], g[1], nw) == 0);
    double *vals[2] = {x, w};
    int sizes[2] = {nx, nw};
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < sizes[a]; i++) {
            double keep = vals[a][i], l[2];
            for (int side = 0; side < 2; side++) {
                vals[a][i] = keep + (side ? -h : h);
                tg_tensor *p[2] = {tg_tensor_from(TG_F64, TG_SHAPE(nx), x), tg_tensor_from(TG_F64, TG_SHAPE(nw), w)};
                REQUIRE(tg_function_call(f, p, 2, out) == 3);
                l[side] = tg_item(out[0]);
            }
            vals[a][i] = keep;
            CHECK_NEAR(g[a][i], (l[0] - l[1]) / (2 * h), 1e-7);
        }
    tg_scope_end(s);
}

static void cond_gradient_matches_finite_differences(void)
{
    tg_function *f = tg_function_new(cond_loss, NULL);
    double x1[3] = {0.5, -0.2, 0.9}, w[3] = {1.5, -0.7, 0.3}; /* sum > 0: w x^2 */
    check_by_finite_differences(f, x1, 3, w, 3);
    double x2[3] = {-0.5, 0.2, -0.9}; /* sum < 0: e^x sum(w) */
    check_by_finite_differences(f, x2, 3, w, 3);
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
}

/* ---- tg_while_loop ------------------------------------------------------------------------- */
/* vars (i, x, n): while i < n: i += 1, x = x * x */
static int below_n(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    (void)user, (void)n;
    *go = tg_less(v[0], v[2]);
    return 0;
}

static int square_step(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    (void)user, (void)n;
    next[0] = tg_add(v[0], tg_scalar_of(TG_I32, 1));
    next[1] = tg_mul(v[1], v[1]);
    next[2] = v[2];
    return 0;
}

static void while_eager_values_and_nested_tapes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(2), 1.1, -0.9), *out[3];
    tg_tape *outer = tg_tape_begin(.persistent = true);
    tg_watch(outer, x);
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    REQUIRE(tg_while_loop(below_n, square_step, ((tg_tensor *[]){tg_scalar_of(TG_I32, 0), x, tg_scalar_of(TG_I32, 3)}),
                          3, out) == 0);
    tg_tensor *sy = tg_sum(out[1]);
    tg_tape_end(inner);
    CHECK_VALUES(out[0], CHECK_BITS, 3);
    CHECK_VALUES(out[1], 1e-14, pow(1.1, 8), pow(-0.9, 8));
    tg_tensor *g = tg_gradient(inner, sy, x); /* 8 x^7 */
    tg_tensor *sg = tg_sum(g);
    tg_tape_end(outer);
    CHECK_VALUES(g, 1e-14, 8 * pow(1.1, 7), 8 * pow(-0.9, 7));
    tg_tensor *g2 = tg_gradient(outer, sg, x); /* 56 x^6, through the loop twice */
    CHECK_VALUES(g2, 1e-14, 56 * pow(1.1, 6), 56 * pow(-0.9, 6));
    tg_tape_free(inner);
    tg_tape_free(outer);
    tg_scope_end(s);
}

/* (x^(2^n), d sum / dx) with the trip count n an input: one graph for every n */
static int power_loop(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    int *c_runs = user;
    (void)n;
    ++*c_runs;
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, in[0]);
    tg_tensor *v[3];
    if (tg_while_loop(below_n, square_step, ((tg_tensor *[]){tg_scalar_of(TG_I32, 0), in[0], in[1]}), 3, v) != 0)
        return -1;
    tg_tensor *sy = tg_sum(v[1]);
    tg_tape_end(tape);
    out[0] = v[1];
    out[1] = tg_gradient(tape, sy, in[0]);
    out[2] = v[0];
    tg_tape_free(tape);
    return 3;
}

static void while_traced_loops_as_many_times_as_the_data_says(void)
{
    int runs = 0;
    tg_function *f = tg_function_new(power_loop, &runs);
    for (int trips = 0; trips <= 3; trips++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *in[2] = {tg_from_f64(TG_SHAPE(2), 1.1, -0.9), tg_scalar_of(TG_I32, trips)}, *out[4];
        REQUIRE(tg_function_call(f, in, 2, out) == 3);
        double p = pow(2, trips);
        CHECK_VALUES(out[2], CHECK_BITS, trips);
        CHECK_VALUES(out[0], 1e-14, pow(1.1, p), pow(-0.9, p));
        CHECK_VALUES(out[1], 1e-14, p * pow(1.1, p - 1), p * pow(-0.9, p - 1));
        tg_scope_end(s);
    }
    CHECK(runs == 1 && tg_function_trace_count(f) == 1);
    tg_function_free(f);
}

static int forever(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    (void)user, (void)n;
    *go = tg_greater(tg_sum(v[0]), tg_scalar_of(TG_F64, -1)); /* true here */
    return 0;
}

static int halve(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    (void)user, (void)n;
    next[0] = tg_mul(v[0], tg_scalar_of(TG_F64, 0.5));
    return 0;
}

static int bounded(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    return tg_while_loop(forever, halve, in, 1, out, .maximum_iterations = 5) == 0 ? 1 : -1;
}

static void maximum_iterations_bounds_the_loop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_scalar_of(TG_F64, 64), *out[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_while_loop(forever, halve, &x, 1, out, .maximum_iterations = 5) == 0); /* TF: a bound */
    CHECK_VALUES(out[0], CHECK_BITS, 2);
    tg_function *f = tg_function_new(bounded, NULL);
    for (int i = 0; i < 2; i++) {
        REQUIRE(tg_function_call(f, &x, 1, out) == 1);
        CHECK_VALUES(out[0], CHECK_BITS, 2);
    }
    tg_function_free(f);
    tg_scope_end(s);
}

static int positive(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    (void)user, (void)n;
    *go = tg_greater(v[0], tg_scalar_of(TG_F64, 0));
    return 0;
}

static int decrement(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    (void)user, (void)n;
    next[0] = tg_sub(v[0], tg_scalar_of(TG_F64, 1));
    return 0;
}

static int strict_line;
static int strict_loop(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    strict_line = __LINE__ + 1;
    return tg_while_loop(positive, decrement, in, 1, out, .maximum_iterations = 3, .strict_maximum = true) == 0 ? 1
                                                                                                                : -1;
}

/* The reading of maximum_iterations, on request: a loop still going at the bound is an
 * error naming the loop's line, eagerly and at every replay; one that ends by the bound runs. */
static void strict_maximum_refuses_a_longer_loop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *three = tg_scalar_of(TG_F64, 3), *four = tg_scalar_of(TG_F64, 4), *out[TG_FUNCTION_MAX_OUTPUTS];
    char where[64];
    REQUIRE(strict_loop(NULL, &three, 1, out) == 1); /* three iterations: within the bound */
    CHECK_VALUES(out[0], CHECK_BITS, 0);
    EXPECT_ERROR(strict_loop(NULL, &four, 1, out) == -1, "still holds after maximum_iterations (3)");
    snprintf(where, sizeof where, "test_control_flow.c:%d", strict_line);
    CHECK(tg_last_error() && strstr(tg_last_error(), where));
    tg_function *f = tg_function_new(strict_loop, NULL);
    REQUIRE(tg_function_call(f, &three, 1, out) == 1);
    CHECK_VALUES(out[0], CHECK_BITS, 0);
    for (int i = 0; i < 2; i++) { /* traced with 3: the replay with 4 fails at the bound */
        EXPECT_ERROR(tg_function_call(f, &four, 1, out) == -1, "still holds after maximum_iterations (3)");
        CHECK(tg_last_error() && strstr(tg_last_error(), where));
    }
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_scope_end(s);
}

static int grows(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    (void)user, (void)n;
    tg_tensor *both[2] = {v[0], v[0]};
    next[0] = tg_concat(both, 2, 0);
    return 0;
}

static int loop_line;
static int growing_loop(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    loop_line = __LINE__ + 1;
    return tg_while_loop(forever, grows, in, 1, out, .maximum_iterations = 3) == 0 ? 1 : -1;
}

static void loop_variables_keep_their_shapes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(2), 1, 2), *out[TG_FUNCTION_MAX_OUTPUTS];
    const char *want = "tg_while_loop: loop variable 0 is float64 of shape (4,) after body_fn and float64 of "
                       "shape (2,) before it; a loop variable keeps its dtype and shape";
    EXPECT_ERROR(tg_while_loop(forever, grows, &x, 1, out, .maximum_iterations = 3) == -1, want);
    tg_function *f = tg_function_new(growing_loop, NULL);
    EXPECT_ERROR(tg_function_call(f, &x, 1, out) == -1, want);
    char where[64];
    snprintf(where, sizeof where, "test_control_flow.c:%d", loop_line);
    CHECK(tg_last_error() && strstr(tg_last_error(), where));
    tg_function_free(f);
    tg_scope_end(s);
}

/* (L, dL/dx, dL/dw): x = tanh(w * x) + 0.1 sum(w) four times, L = sum(x^2) */
static int tanh_step(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    tg_tensor *w = user;
    (void)n;
    next[0] = tg_add(v[0], tg_scalar_of(TG_I32, 1));
    next[1] = tg_add(tg_tanh(tg_mul(w, v[1])), tg_mul(tg_sum(w), tg_scalar_of(TG_F64, 0.1)));
    return 0;
}

static int four_times(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    (void)user, (void)n;
    *go = tg_less(v[0], tg_scalar_of(TG_I32, 4));
    return 0;
}

static int loop_loss(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, in[0]);
    tg_watch(tape, in[1]);
    tg_tensor *v[2];
    if (tg_while_loop(four_times, tanh_step, ((tg_tensor *[]){tg_scalar_of(TG_I32, 0), in[0]}), 2, v, .user = in[1]) !=
        0)
        return -1;
    tg_tensor *l = tg_sum(tg_square(v[1]));
    tg_tape_end(tape);
    out[0] = l;
    int rc = tg_gradients(tape, .targets = &l, .n_targets = 1, .sources = in, .n_sources = 2, .out = out + 1);
    tg_tape_free(tape);
    return rc == 0 ? 3 : -1;
}

static void while_gradient_matches_finite_differences_and_eager(void)
{
    tg_function *f = tg_function_new(loop_loss, NULL);
    double x[3] = {0.5, -0.2, 0.9}, w[3] = {1.5, -0.7, 0.3};
    check_by_finite_differences(f, x, 3, w, 3);
    tg_function *eager = tg_function_new(loop_loss, NULL, .run_eagerly = true);
    tg_scope *s = tg_scope_begin();
    tg_tensor *in[2] = {tg_tensor_from(TG_F64, TG_SHAPE(3), x), tg_tensor_from(TG_F64, TG_SHAPE(3), w)};
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, in, 2, out) == 3 && tg_function_call(eager, in, 2, ref) == 3);
    for (int k = 0; k < 3; k++)
        TENSORS_AGREE(out[k], ref[k], 1e-14);
    tg_scope_end(s);
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_function_free(eager);
}

/* Newton's method for sqrt(2), each step's derivative from a tape inside the body. */
static int newton_step(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    (void)user, (void)n;
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, v[1]);
    tg_tensor *fx = tg_sub(tg_square(v[1]), tg_scalar_of(TG_F64, 2));
    tg_tape_end(tape);
    tg_tensor *d = tg_gradient(tape, fx, v[1]);
    tg_tape_free(tape);
    next[0] = tg_add(v[0], tg_scalar_of(TG_I32, 1));
    next[1] = tg_sub(v[1], tg_div(fx, d));
    return 0;
}

static int newton(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tensor *v[2];
    if (tg_while_loop(four_times, newton_step, ((tg_tensor *[]){tg_scalar_of(TG_I32, 0), in[0]}), 2, v) != 0)
        return -1;
    out[0] = v[1];
    return 1;
}

static void a_tape_inside_a_loop_body(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(newton, NULL);
    tg_function *eager = tg_function_new(newton, NULL, .run_eagerly = true);
    double x = 1, hand = 1; /* x - (x^2 - 2) / 2x, four times */
    for (int i = 0; i < 4; i++)
        hand = hand - (hand * hand - 2) / (2 * hand);
    tg_tensor *in = tg_scalar_of(TG_F64, x), *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
    for (int i = 0; i < 2; i++) {
        REQUIRE(tg_function_call(f, &in, 1, out) == 1);
        CHECK_VALUES(out[0], 1e-15, hand);
    }
    CHECK_NEAR(tg_item(out[0]), sqrt(2.0), 1e-12);
    REQUIRE(tg_function_call(eager, &in, 1, ref) == 1);
    TENSORS_AGREE(out[0], ref[0], CHECK_BITS);
    tg_function_free(f);
    tg_function_free(eager);
    tg_scope_end(s);
}

/* (d sum(cond)/dx, d2 sum(cond)/dx2) with nested tapes, for f = cond(p, x^3, sin x) */
static int cond_second_derivative(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    branch_data *d = user;
    (void)n;
    d->x = in[0];
    tg_tape *outer = tg_tape_begin(.persistent = true), *inner = tg_tape_begin();
    tg_watch(outer, in[0]);
    tg_watch(inner, in[0]);
    tg_tensor *y = NULL;
    int rc = tg_cond(in[1], cube, sine, d, 1, &y);
    tg_tensor *sy = rc == 0 ? tg_sum(y) : NULL;
    tg_tape_end(inner);
    tg_tensor *g = sy ? tg_gradient(inner, sy, in[0]) : NULL;
    tg_tensor *sg = g ? tg_sum(g) : NULL;
    tg_tape_end(outer);
    out[0] = g;
    out[1] = sg ? tg_gradient(outer, sg, in[0]) : NULL;
    tg_tape_free(inner);
    tg_tape_free(outer);
    return out[1] ? 2 : -1;
}

static void second_derivatives_through_a_traced_cond(void)
{
    tg_scope *s = tg_scope_begin();
    branch_data d = {0}, e = {0};
    tg_function *f = tg_function_new(cond_second_derivative, &d);
    tg_function *eager = tg_function_new(cond_second_derivative, &e, .run_eagerly = true);
    tg_tensor *x = tg_from_f64(TG_SHAPE(2), 0.5, -2), *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
    for (int i = 0; i < 4; i++) { /* both branches, each replayed */
        bool p = i % 2 == 0;
        tg_tensor *in[2] = {x, tg_scalar_of(TG_BOOL, p)};
        REQUIRE(tg_function_call(f, in, 2, out) == 2);
        REQUIRE(tg_function_call(eager, in, 2, ref) == 2);
        if (p) { /* x^3: 3x^2, 6x */
            CHECK_VALUES(out[0], 1e-15, 0.75, 12.0);
            CHECK_VALUES(out[1], 1e-15, 3.0, -12.0);
        } else { /* sin x: cos x, -sin x */
            CHECK_VALUES(out[0], 1e-15, cos(0.5), cos(-2.0));
            CHECK_VALUES(out[1], 1e-15, -sin(0.5), -sin(-2.0));
        }
        TENSORS_AGREE(out[1], ref[1], 1e-15);
    }
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_function_free(eager);
    tg_scope_end(s);
}

/* (d sum(x^(2^n))/dx, d2/dx2) with nested tapes around a loop */
static int second_derivative(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *outer = tg_tape_begin(.persistent = true), *inner = tg_tape_begin();
    tg_watch(outer, in[0]);
    tg_watch(inner, in[0]);
    tg_tensor *v[3];
    int rc = tg_while_loop(below_n, square_step, ((tg_tensor *[]){tg_scalar_of(TG_I32, 0), in[0], in[1]}), 3, v);
    tg_tensor *sy = rc == 0 ? tg_sum(v[1]) : NULL;
    tg_tape_end(inner);
    tg_tensor *g = sy ? tg_gradient(inner, sy, in[0]) : NULL;
    tg_tensor *sg = g ? tg_sum(g) : NULL;
    tg_tape_end(outer);
    out[0] = g;
    out[1] = sg ? tg_gradient(outer, sg, in[0]) : NULL;
    tg_tape_free(inner);
    tg_tape_free(outer);
    return out[1] ? 2 : -1;
}

static void second_derivatives_through_a_traced_loop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(second_derivative, NULL);
    tg_function *eager = tg_function_new(second_derivative, NULL, .run_eagerly = true);
    double x[2] = {1.1, -0.9};
    for (int trips = 1; trips <= 3; trips++) { /* x^(2^trips), replayed with other trip counts */
        tg_tensor *in[2] = {tg_from_f64(TG_SHAPE(2), x[0], x[1]), tg_scalar_of(TG_I32, trips)};
        tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
        REQUIRE(tg_function_call(f, in, 2, out) == 2);
        REQUIRE(tg_function_call(eager, in, 2, ref) == 2);
        double p = pow(2, trips);
        CHECK_VALUES(out[0], 1e-13, p * pow(x[0], p - 1), p * pow(x[1], p - 1));
        CHECK_VALUES(out[1], 1e-13, p * (p - 1) * pow(x[0], p - 2), p * (p - 1) * pow(x[1], p - 2));
        TENSORS_AGREE(out[1], ref[1], 1e-14);
    }
    CHECK(tg_function_trace_count(f) == 1);
    tg_function_free(f);
    tg_function_free(eager);
    tg_scope_end(s);
}

/* The gradient of sum(dL/dw) for loop_loss's L, with respect to x and w: through the
 * loop's recorded gradient, which captures w */
static int loop_second_order(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)user, (void)n;
    tg_tape *outer = tg_tape_begin(.persistent = true);
    tg_watch(outer, in[0]);
    tg_watch(outer, in[1]);
    tg_tensor *first[3];
    int rc = loop_loss(NULL, in, 2, first) == 3 ? 0 : -1;
    tg_tensor *s = rc == 0 ? tg_sum(first[2]) : NULL;
    tg_tape_end(outer);
    rc = s ? tg_gradients(outer, .targets = &s, .n_targets = 1, .sources = in, .n_sources = 2, .out = out) : -1;
    tg_tape_free(outer);
    return rc == 0 ? 2 : -1;
}

static void while_second_order_with_captures(void)
{
    tg_function *f = tg_function_new(loop_second_order, NULL);
    tg_function *eager = tg_function_new(loop_second_order, NULL, .run_eagerly = true);
    tg_function *first = tg_function_new(loop_loss, NULL);
    double xw[6] = {0.5, -0.2, 0.9, 1.5, -0.7, 0.3}, h = 1e-6;
    tg_scope *s = tg_scope_begin();
    tg_tensor *in[2] = {tg_tensor_from(TG_F64, TG_SHAPE(3), xw), tg_tensor_from(TG_F64, TG_SHAPE(3), xw + 3)};
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS], *ref[TG_FUNCTION_MAX_OUTPUTS];
    REQUIRE(tg_function_call(f, in, 2, out) == 2 && tg_function_call(eager, in, 2, ref) == 2);
    TENSORS_AGREE(out[0], ref[0], 1e-13);
    TENSORS_AGREE(out[1], ref[1], 1e-13);
    for (int i = 0; i < 6; i++) { /* central differences of sum(dL/dw), itself checked above */
        double sum[2];
        for (int side = 0; side < 2; side++) {
            double p[6];
            memcpy(p, xw, sizeof p);
            p[i] += side ? -h : h;
            tg_tensor *pin[2] = {tg_tensor_from(TG_F64, TG_SHAPE(3), p), tg_tensor_from(TG_F64, TG_SHAPE(3), p + 3)};
            tg_tensor *g[TG_FUNCTION_MAX_OUTPUTS];
            REQUIRE(tg_function_call(first, pin, 2, g) == 3);
            sum[side] = tg_item(tg_sum(g[2]));
        }
        double fd = (sum[0] - sum[1]) / (2 * h), got = tg_item(tg_slice(out[i / 3], TG_SHAPE(i % 3), TG_SHAPE(1)));
        CHECK_NEAR(got, fd, 1e-7 * (1 + fabs(fd)));
    }
    CHECK(tg_function_trace_count(f) == 1);
    tg_scope_end(s);
    tg_function_free(f);
    tg_function_free(eager);
    tg_function_free(first);
}

int main(void)
{
    RUN(cond_eager_runs_the_branch_taken);
    RUN(cond_traced_picks_a_branch_at_every_call);
    RUN(cond_branches_must_agree);
    RUN(cond_gradient_matches_finite_differences);
    RUN(while_eager_values_and_nested_tapes);
    RUN(while_traced_loops_as_many_times_as_the_data_says);
    RUN(maximum_iterations_bounds_the_loop);
    RUN(strict_maximum_refuses_a_longer_loop);
    RUN(loop_variables_keep_their_shapes);
    RUN(while_gradient_matches_finite_differences_and_eager);
    RUN(a_tape_inside_a_loop_body);
    RUN(second_derivatives_through_a_traced_cond);
    RUN(second_derivatives_through_a_traced_loop);
    RUN(while_second_order_with_captures);
    return TEST_SUMMARY();
}
