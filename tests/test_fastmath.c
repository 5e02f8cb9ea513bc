/* Eigen's float32 tanh and logistic (src/kernels/fastmath.h) against float64 libm, and the
 * LSTM cell that uses them (tg_lstm_cell, float32) against the same formulas computed one
 * element at a time here and against the float64 cell.
 *
 * The sweep covers the whole float32 range: every 97th bit pattern (44 million values,
 * both signs, denormals, infinities, NaNs), and every float near the places where the
 * approximations switch: |x| = 0.0004 (tanh returns x below), the clamps 7.905 and 15.64,
 * and -9 (the logistic's exp tail). The bounds asserted are the header's documented ones. */
#include "check.h"

#include <float.h>
#include <stdint.h>

#include "kernels/fastmath.h"

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* The distance in float32 steps between a and the float64 reference r rounded to float32. */
static double ulps(float a, double r)
{
    float rf = (float)r;
    if (a == rf)
        return 0;
    double step = fabs((double)nextafterf(rf, INFINITY) - (double)rf);
    return fabs((double)a - r) / (step > 0 ? step : 1e-45);
}

typedef struct errors {
    double tanh_ulp, sig_abs, sig_rel_body, sig_rel_tail;
    long nan_wrong, range_wrong, count;
} errors;

static double logistic64(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

static void measure(float x, errors *e)
{
    e->count++;
    float t = tg__tanh_f32(x), s = tg__logistic_any_f32(x);
    if (isnan(x)) {
        e->nan_wrong += !isnan(t) || !isnan(s);
        return;
    }
    e->range_wrong += !(t >= -1 && t <= 1 && s >= 0 && s <= 1);
    double rt = tanh((double)x), rs = logistic64((double)x);
    double u = ulps(t, rt);
    if (u > e->tanh_ulp)
        e->tanh_ulp = u;
    double abs_err = fabs((double)s - rs);
    if (abs_err > e->sig_abs)
        e->sig_abs = abs_err;
    if (rs > 1e-30) { /* far below, float32 flushes and relative error means nothing */
        double rel = abs_err / rs;
        double *slot = x < -9 ? &e->sig_rel_tail : &e->sig_rel_body;
        if (rel > *slot)
            *slot = rel;
    }
}

static void sweep_around(float centre, int n, errors *e)
{
    float x = centre;
    for (int i = 0; i < n; i++, x = nextafterf(x, INFINITY))
        measure(x, e), measure(-x, e);
    x = centre;
    for (int i = 0; i < n; i++, x = nextafterf(x, -INFINITY))
        measure(x, e), measure(-x, e);
}

static void test_against_float64(void)
{
    errors e = {0};
    for (uint64_t b = 0; b <= UINT32_MAX; b += 97)
        measure(from_bits((uint32_t)b), &e);
    static const float centres[] = {0.0004f, 7.90531110763549805f, 15.6437711715698242f, 9.0f, 1.0f, 0.0f};
    for (size_t k = 0; k < sizeof centres / sizeof centres[0]; k++)
        sweep_around(centres[k], 200000, &e);
    printf("  %ld values: tanh %.2f ulp; logistic %.3g absolute, %.3g relative above -9, %.3g below\n", e.count,
           e.tanh_ulp, e.sig_abs, e.sig_rel_body, e.sig_rel_tail);
    CHECK(e.count > 44000000);
    CHECK(e.nan_wrong == 0);
    CHECK(e.range_wrong == 0);
    CHECK(e.tanh_ulp <= 7);
    CHECK(e.sig_abs <= 2e-7);
    CHECK(e.sig_rel_body <= 1.3e-3); /* near -9, where the value is 1.2e-4 */
    CHECK(e.sig_rel_tail <= 1.3e-4); /* exp(x) for sigmoid(x): the relative error is sigmoid(-x) */
}

/* Eigen's special values: tanh(x) = x below 0.0004, +-1 from the clamp on; the logistic 1
 * from its upper cut-off, exp(x) below -9, 1/2 at 0. */
static void test_special_values(void)
{
    CHECK(tg__tanh_f32(0.0003f) == 0.0003f);
    CHECK(tg__tanh_f32(-1e-30f) == -1e-30f);
    CHECK(tg__tanh_f32(7.90531110763549805f) == 1.0f);
    CHECK(tg__tanh_f32(-50.0f) == -1.0f);
    CHECK(tg__tanh_f32(INFINITY) == 1.0f);
    CHECK(tg__tanh_f32(-INFINITY) == -1.0f);
    CHECK(signbit(tg__tanh_f32(-0.0f)));
    CHECK(tg__logistic_any_f32(15.6437711715698242f) == 1.0f);
    CHECK(tg__logistic_any_f32(INFINITY) == 1.0f);
    CHECK(tg__logistic_any_f32(0.0f) == 0.5f);
    CHECK(tg__logistic_any_f32(-10.0f) == expf(-10.0f));
    CHECK(tg__logistic_any_f32(-INFINITY) == 0.0f);
    CHECK(isnan(tg__tanh_f32(NAN)) && isnan(tg__logistic_any_f32(NAN)));
}

/* The op's float32 values, from its vectorised pass (tails included), equal the formulas
 * element by element bit for bit, and the float64 cell within float32 rounding. */
static void test_lstm_cell_float32(void)
{
    enum { B = 3, U = 37 }; /* 37: a vector loop's remainder too */
    tg_scope *s = tg_scope_begin();
    static double a[B * 4 * U], b[B * 4 * U], cp[B * U];
    for (int i = 0; i < B * 4 * U; i++) {
        a[i] = 12.0 * sin(0.37 * i + 1.0); /* some below -9: the logistic's tail */
        b[i] = 0.5 * cos(1.3 * i);
    }
    for (int i = 0; i < B * U; i++)
        cp[i] = 2.0 * cos(0.91 * i);
    tg_tensor *a64 = tg_tensor_from(TG_F64, TG_SHAPE(B, 4 * U), a),
              *b64 = tg_tensor_from(TG_F64, TG_SHAPE(B, 4 * U), b);
    tg_tensor *c64 = tg_tensor_from(TG_F64, TG_SHAPE(B, U), cp), *o32[2], *o64[2];
    REQUIRE(tg_lstm_cell(tg_cast(a64, TG_F32), tg_cast(b64, TG_F32), tg_cast(c64, TG_F32), o32) == 0);
    REQUIRE(tg_lstm_cell(a64, b64, c64, o64) == 0);
    float h[B * U], c[B * U];
    double h64[B * U], cc64[B * U];
    REQUIRE(tg_copy_out(o32[0], h, sizeof h) == 0 && tg_copy_out(o32[1], c, sizeof c) == 0);
    REQUIRE(tg_copy_out_f64(o64[0], h64, B * U) == 0 && tg_copy_out_f64(o64[1], cc64, B * U) == 0);
    int tails = 0, bit_diff = 0;
    double worst = 0;
    for (int r = 0; r < B; r++)
        for (int j = 0; j < U; j++) {
            float z[4];
            for (int k = 0; k < 4; k++)
                z[k] = (float)a[r * 4 * U + k * U + j] + (float)b[r * 4 * U + k * U + j];
            tails += z[0] < -9 || z[1] < -9 || z[3] < -9;
            float cw =
                tg__logistic_any_f32(z[1]) * (float)cp[r * U + j] + tg__logistic_any_f32(z[0]) * tg__tanh_f32(z[2]);
            float hw = tg__logistic_any_f32(z[3]) * tg__tanh_f32(cw);
            bit_diff += bits_of(cw) != bits_of(c[r * U + j]) || bits_of(hw) != bits_of(h[r * U + j]);
            double d = fmax(fabs(h[r * U + j] - h64[r * U + j]), fabs(c[r * U + j] - cc64[r * U + j]));
            worst = d > worst ? d : worst;
        }
    CHECK(tails > 5);
    CHECK(bit_diff == 0);
    CHECK(worst < 2e-6);
    tg_scope_end(s);
}

/* Bad input: a clear error naming the op, the argument and the caller's line; no crash. */
static void test_lstm_cell_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_zeros(TG_F32, TG_SHAPE(2, 8)), *c = tg_zeros(TG_F32, TG_SHAPE(2, 2)), *out[2];
    EXPECT_ERROR(tg_lstm_cell(a, a, tg_zeros(TG_F32, TG_SHAPE(2, 3)), out) != 0,
                 "tg_lstm_cell: a and b must be (batch, 4 * units), the others (batch, units) as c_prev; got a (2, 8) "
                 "and a (2, 8)");
    EXPECT_ERROR(tg_lstm_cell(a, tg_zeros(TG_F32, TG_SHAPE(3, 8)), c, out) != 0, "got a (2, 8) and b (3, 8)");
    EXPECT_ERROR(tg_lstm_cell(a, tg_zeros(TG_F64, TG_SHAPE(2, 8)), c, out) != 0, "cannot mix float32 and float64");
    int line = __LINE__ + 1;
    EXPECT_ERROR(tg_lstm_cell(tg_zeros(TG_I32, TG_SHAPE(2, 8)), a, c, out) != 0, "must be float32 or float64");
    char where[64];
    snprintf(where, sizeof where, "test_fastmath.c:%d", line);
    CHECK(strstr(tg_last_error(), where) != NULL);
    EXPECT_ERROR(tg_lstm_cell(a, a, c, NULL) != 0, "needs an array `out` of 2 tensors");
    tg_clear_error();
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_against_float64);
    RUN(test_special_values);
    RUN(test_lstm_cell_float32);
    RUN(test_lstm_cell_errors);
    return TEST_SUMMARY();
}
