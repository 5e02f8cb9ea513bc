/* Activations: forward values (hand-computed), stability at +-1000, gradient values at
 * chosen points (0 included), second derivatives against closed forms through nested
 * tapes, and error messages. Finite differences and float32 against float64 are the op
 * table test's (tests/test_op_table.c). */
#include "gradcheck.h"

static tg_tensor *f_relu(const tg_tensor *x) { return tg_relu(x); }
static tg_tensor *f_leaky(const tg_tensor *x) { return tg_leaky_relu(x, 0.2); }
static tg_tensor *f_tanh(const tg_tensor *x) { return tg_tanh(x); }
static tg_tensor *f_sigmoid(const tg_tensor *x) { return tg_sigmoid(x); }
static tg_tensor *f_softplus(const tg_tensor *x) { return tg_softplus(x); }
static tg_tensor *f_elu(const tg_tensor *x) { return tg_elu(x, 0.7); }
static tg_tensor *f_gelu(const tg_tensor *x) { return tg_gelu(x, false); }

static tg_tensor *grad_of(tg_tensor *(*f)(const tg_tensor *), tg_tensor *x, tg_tensor **y)
{
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    *y = f(x);
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, *y, x);
    tg_tape_free(t);
    return g;
}

/* ---- forward values ------------------------------------------------------------------------ */
static void test_pointwise_values(void)
{
    tg_scope *s = tg_scope_begin();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *x = tg_cast(tg_from_f64(TG_SHAPE(4), -2.0, -0.5, 0.0, 1.0), dt);
        CHECK_VALUES(tg_relu(x), 0, 0, 0, 0, 1);
        CHECK_VALUES(tg_leaky_relu(x, 0.2), 1e-7, -0.4, -0.1, 0, 1);
        /* elu(x) = alpha (e^x - 1) for x <= 0 */
        CHECK_VALUES(tg_elu(x, 1.0), 1e-7, -0.8646647167633873, -0.3934693402873666, 0, 1);
        CHECK_VALUES(tg_elu(x, 0.5), 1e-7, -0.43233235838169365, -0.1967346701436833, 0, 1);
        CHECK_VALUES(tg_gelu(x, false), 1e-6, -0.04550026389635842, -0.15426876936299347, 0, 0.8413447460685429);
        CHECK_VALUES(tg_gelu(x, true), 1e-6, -0.04540230591222494, -0.15428599017485606, 0, 0.8411919906082768);
        CHECK_VALUES(tg_sigmoid(x), 1e-7, 0.11920292202211755, 0.3775406687981454, 0.5, 0.7310585786300049);
        CHECK_VALUES(tg_tanh(x), 1e-7, -0.9640275800758169, -0.46211715726000974, 0, 0.7615941559557649);
        CHECK_VALUES(tg_softplus(x), 1e-7, 0.1269280110429725, 0.4740769841801067, 0.6931471805599453,
                     1.3132616875182228);
        CHECK(tg_dtype_of(tg_gelu(x, true)) == dt);
    }
    tg_scope_end(s);
}

static void test_softmax_values(void)
{
    tg_scope *s = tg_scope_begin();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *x = tg_cast(tg_from_f64(TG_SHAPE(2, 3), 1, 2, 3, 0, 0, 0), dt);
        const double p1 = 0.09003057317038046, p2 = 0.24472847105479767, p3 = 0.6652409557748219;
        CHECK_VALUES(tg_softmax(x, -1), 1e-6, p1, p2, p3, 1.0 / 3, 1.0 / 3, 1.0 / 3);
        CHECK_VALUES(tg_softmax(x, 1), 1e-6, p1, p2, p3, 1.0 / 3, 1.0 / 3, 1.0 / 3);
        CHECK_VALUES(tg_log_softmax(x, -1), 1e-6, -2.4076059644443806, -1.4076059644443806, -0.4076059644443806,
                     -log(3.0), -log(3.0), -log(3.0));
        /* along axis 0: columns (1,0), (2,0), (3,0) */
        const double c1 = 1 / (1 + exp(-1.0)), c2 = 1 / (1 + exp(-2.0)), c3 = 1 / (1 + exp(-3.0));
        CHECK_VALUES(tg_softmax(x, 0), 1e-6, c1, c2, c3, 1 - c1, 1 - c2, 1 - c3);
        CHECK_VALUES(tg_softmax(x, -2), 1e-6, c1, c2, c3, 1 - c1, 1 - c2, 1 - c3);
        CHECK_VALUES(tg_log_softmax(x, 0), 1e-6, log(c1), log(c2), log(c3), log(1 - c1), log(1 - c2), log(1 - c3));
    }
    /* the middle axis of a rank-3 tensor: every line along axis 1 sums to 1 and matches
     * exp(x - logsumexp) computed here */
    tg_tensor *x = gc_input(3, TG_SHAPE(2, 3, 4), -3, 3);
    double xv[24], sv[24], lv[24];
    tg_copy_out_f64(x, xv, 24);
    CHECK(tg_copy_out_f64(tg_softmax(x, 1), sv, 24) == 0);
    CHECK(tg_copy_out_f64(tg_log_softmax(x, -2), lv, 24) == 0);
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 4; i++) {
            double sum = 0, total = 0;
            for (int k = 0; k < 3; k++)
                sum += exp(xv[(o * 3 + k) * 4 + i]);
            for (int k = 0; k < 3; k++) {
                int at = (o * 3 + k) * 4 + i;
                CHECK_NEAR(sv[at], exp(xv[at]) / sum, 1e-12);
                CHECK_NEAR(lv[at], xv[at] - log(sum), 1e-12);
                total += sv[at];
            }
            CHECK_NEAR(total, 1.0, 1e-12);
        }
    /* an axis of length 1 gives 1 (and 0 for log_softmax) */
    CHECK_VALUES(tg_softmax(tg_from_f32(TG_SHAPE(2, 1), 5, -7), 1), 0, 1, 1);
    CHECK_VALUES(tg_log_softmax(tg_from_f32(TG_SHAPE(2, 1), 5, -7), 1), 0, 0, 0);
    tg_scope_end(s);
}

/* Inputs like +-1000 overflow exp(); the results must still be finite and right. */
static void test_stability(void)
{
    tg_scope *s = tg_scope_begin();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *x = tg_cast(tg_from_f64(TG_SHAPE(4), -1000, -100, 100, 1000), dt);
        CHECK_VALUES(tg_sigmoid(x), 1e-7, 0, exp(-100.0), 1, 1);
        CHECK_VALUES(tg_softplus(x), 1e-7, 0, exp(-100.0), 100, 1000);
        CHECK_VALUES(tg_tanh(x), 0, -1, -1, 1, 1);
        CHECK_VALUES(tg_elu(x, 1.0), 0, -1, -1, 100, 1000);
        CHECK_VALUES(tg_gelu(x, false), 0, 0, 0, 100, 1000);
        CHECK_VALUES(tg_gelu(x, true), 0, 0, 0, 100, 1000);
        tg_tensor *big = tg_cast(tg_from_f64(TG_SHAPE(2, 3), 1000, 0, -1000, 1000, 1000, 999), dt);
        const double e1 = exp(-1.0);
        CHECK_VALUES(tg_softmax(big, -1), 1e-6, 1, 0, 0, 1 / (2 + e1), 1 / (2 + e1), e1 / (2 + e1));
        CHECK_VALUES(tg_log_softmax(big, -1), 1e-6, 0, -1000, -2000, -log(2 + e1), -log(2 + e1), -1 - log(2 + e1));
        CHECK_VALUES(tg_softmax(big, 0), 1e-6, 0.5, 0, 0, 0.5, 1, 1);
        /* the gradients stay finite at the tails too */
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_watch(t, x);
        tg_watch(t, big);
        tg_tensor *ys = tg_sigmoid(x), *yp = tg_softplus(x), *yl = tg_log_softmax(big, -1);
        tg_tensor *ym = tg_mul(tg_softmax(big, -1), tg_cast(tg_from_f64(TG_SHAPE(3), 1, 2, 3), dt));
        tg_tape_end(t);
        CHECK_VALUES(tg_gradient(t, ys, x), 1e-7, 0, exp(-100.0), exp(-100.0), 0);
        CHECK_VALUES(tg_gradient(t, yp, x), 1e-7, 0, exp(-100.0), 1, 1);
        /* d sum(log_softmax) / dx = 1 - n softmax(x) */
        const double q = 1 / (2 + e1);
        CHECK_VALUES(tg_gradient(t, yl, big), 1e-6, -2, 1, 1, 1 - 3 * q, 1 - 3 * q, 1 - 3 * e1 * q);
        /* d sum(softmax * w) / dx_i = p_i (w_i - sum p w); first row is one-hot: zeros */
        const double pw = q * 1 + q * 2 + e1 * q * 3;
        CHECK_VALUES(tg_gradient(t, ym, big), 1e-6, 0, 0, 0, q * (1 - pw), q * (2 - pw), e1 * q * (3 - pw));
        tg_tape_free(t);
    }
    tg_scope_end(s);
}

/* ---- gradients (finite differences and float32: tests/test_op_table.c) -------------------------------------------------------------------------------- */
static void test_gradients_pointwise(void)
{
    tg_scope *s = tg_scope_begin();
    /* exact values at chosen points, 0 included: TF's choices there */
    tg_tensor *y, *x = tg_from_f64(TG_SHAPE(4), -1.0, 0.0, 0.5, 2.0);
    CHECK_VALUES(grad_of(f_relu, x, &y), 0, 0, 0, 1, 1);
    CHECK_VALUES(grad_of(f_leaky, x, &y), 1e-15, 0.2, 0.2, 1, 1);
    CHECK_VALUES(grad_of(f_elu, x, &y), 1e-15, 0.7 * exp(-1.0), 0.7, 1, 1);
    CHECK_VALUES(grad_of(f_gelu, x, &y), 1e-12, 0.15865525393145707 - exp(-0.5) / sqrt(2 * M_PI), 0.5,
                 0.6914624612740131 + 0.5 * exp(-0.125) / sqrt(2 * M_PI),
                 0.9772498680518208 + 2 * exp(-2.0) / sqrt(2 * M_PI));
    tg_scope_end(s);
}

/* ---- second derivatives through nested tapes -------------------------------------------------- */
static void test_second_derivatives(void)
{
    tg_scope *s = tg_scope_begin();
    const double v[4] = {-1.5, -0.3, 0.4, 2.0};
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(4), v);
    double th[4], sg[4], sp[4], el[4], ge[4];
    for (int i = 0; i < 4; i++) {
        double t = tanh(v[i]), p = 1 / (1 + exp(-v[i])), phi = exp(-v[i] * v[i] / 2) / sqrt(2 * M_PI);
        th[i] = -2 * t * (1 - t * t);
        sg[i] = p * (1 - p) * (1 - 2 * p);
        sp[i] = p * (1 - p); /* softplus'' = sigmoid' */
        el[i] = v[i] > 0 ? 0 : 0.7 * exp(v[i]);
        ge[i] = phi * (2 - v[i] * v[i]); /* (Phi + x phi)' = 2 phi - x^2 phi */
    }
    CHECK_VALUES(second_derivative(f_tanh, x), 1e-10, th[0], th[1], th[2], th[3]);
    CHECK_VALUES(second_derivative(f_sigmoid, x), 1e-10, sg[0], sg[1], sg[2], sg[3]);
    CHECK_VALUES(second_derivative(f_softplus, x), 1e-10, sp[0], sp[1], sp[2], sp[3]);
    CHECK_VALUES(second_derivative(f_elu, x), 1e-10, el[0], el[1], el[2], el[3]);
    CHECK_VALUES(second_derivative(f_gelu, x), 1e-10, ge[0], ge[1], ge[2], ge[3]);
    tg_scope_end(s);
}

/* A Hessian-vector product of softmax cross-entropy: the Hessian of logsumexp(x) - x_k
 * is diag(p) - p p^T, so H v = p * (v - p.v). */
static void test_softmax_hessian_vector(void)
{
    tg_scope *s = tg_scope_begin();
    const double xv[3] = {0.2, -1.0, 1.5}, vv[3] = {1.0, -2.0, 0.5};
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(3), xv), *v = tg_tensor_from(TG_F64, TG_SHAPE(3), vv);
    tg_tensor *onehot = tg_from_f64(TG_SHAPE(3), 0, 1, 0);
    tg_tape *outer = tg_tape_begin();
    tg_watch(outer, x);
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    tg_tensor *loss = tg_neg(tg_sum(tg_mul(onehot, tg_log_softmax(x, 0))));
    tg_tape_end(inner);
    tg_tensor *g = tg_gradient(inner, loss, x);
    tg_tensor *gv = tg_sum(tg_mul(g, v));
    tg_tape_end(outer);
    tg_tensor *hv = tg_gradient(outer, gv, x);
    double p[3], z = 0, pv = 0;
    for (int i = 0; i < 3; i++)
        z += exp(xv[i]);
    for (int i = 0; i < 3; i++) {
        p[i] = exp(xv[i]) / z;
        pv += p[i] * vv[i];
    }
    CHECK_VALUES(g, 1e-12, p[0], p[1] - 1, p[2]);
    CHECK_VALUES(hv, 1e-12, p[0] * (vv[0] - pv), p[1] * (vv[1] - pv), p[2] * (vv[2] - pv));
    tg_tape_free(inner);
    tg_tape_free(outer);
    tg_scope_end(s);
}

/* ---- errors ------------------------------------------------------------------------------------ */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *i = tg_from_i32(TG_SHAPE(2), 1, 2);
    EXPECT_ERROR(tg_relu(i) == NULL, "tg_relu: `x` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_sigmoid(tg_cast(i, TG_BOOL)) == NULL, "tg_sigmoid: `x` must be float32 or float64, not bool");
    EXPECT_ERROR(tg_gelu(tg_cast(i, TG_I64), true) == NULL, "tg_gelu: `x` must be float32 or float64, not int64");
    EXPECT_ERROR(tg_softmax(i, 0) == NULL, "tg_softmax: `x` must be float32 or float64, not int32");
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_softmax(x, 2) == NULL, "tg_softmax: axis 2 is out of range for a tensor of rank 2");
    EXPECT_ERROR(tg_log_softmax(x, -3) == NULL, "tg_log_softmax: axis -3 is out of range for a tensor of rank 2");
    EXPECT_ERROR(tg_softmax(tg_scalar(1), 0) == NULL, "tg_softmax: x must have at least one axis");
    /* a NULL input keeps the first error */
    tg_tensor *bad = tg_tanh(i);
    EXPECT_ERROR(tg_softmax(tg_elu(bad, 1.0), -1) == NULL, "tg_tanh: `x` must be float32 or float64, not int32");
    tg_clear_error();
    EXPECT_ERROR(tg_softplus(NULL) == NULL, "tg_softplus: `x` is NULL");
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_pointwise_values);
    RUN(test_softmax_values);
    RUN(test_stability);
    RUN(test_gradients_pointwise);
    RUN(test_second_derivatives);
    RUN(test_softmax_hessian_vector);
    RUN(test_errors);
    return TEST_SUMMARY();
}
