/* Element-wise ops: forward values (hand-computed), broadcasting, integer and bool
 * dtypes, error messages, gradient values at chosen points and second derivatives
 * against closed forms. Finite differences, float32 against float64 and second order
 * against finite differences are the op table test's (tests/test_op_table.c). */
#include <stdint.h>

#include "gradcheck.h"

/* ---- forward values ---------------------------------------------------------------------- */
static void test_binary_forward_values(void)
{
    tg_scope *s = tg_scope_begin();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *a = tg_cast(tg_from_f64(TG_SHAPE(4), 1.0, -2.0, 3.0, 0.5), dt);
        tg_tensor *b = tg_cast(tg_from_f64(TG_SHAPE(4), 4.0, 5.0, -2.0, 0.5), dt);
        CHECK_VALUES(tg_add(a, b), 1e-7, 5.0, 3.0, 1.0, 1.0);
        CHECK_VALUES(tg_sub(a, b), 1e-7, -3.0, -7.0, 5.0, 0.0);
        CHECK_VALUES(tg_mul(a, b), 1e-7, 4.0, -10.0, -6.0, 0.25);
        CHECK_VALUES(tg_div(a, b), 1e-7, 0.25, -0.4, -1.5, 1.0);
        CHECK_VALUES(tg_maximum(a, b), 0, 4.0, 5.0, 3.0, 0.5);
        CHECK_VALUES(tg_minimum(a, b), 0, 1.0, -2.0, -2.0, 0.5);
        CHECK(tg_dtype_of(tg_add(a, b)) == dt);
        tg_tensor *base = tg_cast(tg_from_f64(TG_SHAPE(4), 2.0, 9.0, 4.0, -2.0), dt);
        tg_tensor *ex = tg_cast(tg_from_f64(TG_SHAPE(4), 3.0, 0.5, -1.0, 2.0), dt);
        CHECK_VALUES(tg_pow(base, ex), 1e-6, 8.0, 3.0, 0.25, 4.0);
    }
    /* NaN propagates through maximum and minimum from either side */
    tg_tensor *n = tg_from_f64(TG_SHAPE(2), NAN, 1.0), *m = tg_from_f64(TG_SHAPE(2), 2.0, NAN);
    double got[2];
    tg_copy_out_f64(tg_maximum(n, m), got, 2);
    CHECK(isnan(got[0]) && isnan(got[1]));
    tg_copy_out_f64(tg_minimum(n, m), got, 2);
    CHECK(isnan(got[0]) && isnan(got[1]));
    tg_scope_end(s);
}

static void test_broadcast_shapes(void)
{
    tg_scope *s = tg_scope_begin();
    /* (2,3) x (3,) */
    tg_tensor *a = tg_from_f64(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    tg_tensor *r = tg_from_f64(TG_SHAPE(3), 10, 20, 30);
    tg_tensor *y = tg_add(a, r);
    CHECK(has_shape(y, TG_SHAPE(2, 3)));
    CHECK_VALUES(y, 0, 11, 22, 33, 14, 25, 36);
    CHECK_VALUES(tg_sub(r, a), 0, 9, 18, 27, 6, 15, 24);
    /* (2,1,3) x (4,1) -> (2,4,3): y[i][j][k] = p[i][k] * 10 + q[j] */
    tg_tensor *p = tg_from_f64(TG_SHAPE(2, 1, 3), 1, 2, 3, 4, 5, 6);
    tg_tensor *q = tg_from_f64(TG_SHAPE(4, 1), 0.1, 0.2, 0.3, 0.4);
    y = tg_add(tg_mul(p, tg_scalar_of(TG_F64, 10)), q);
    CHECK(has_shape(y, TG_SHAPE(2, 4, 3)));
    double got[24];
    CHECK(tg_copy_out_f64(y, got, 24) == 0);
    const double pv[2][3] = {{1, 2, 3}, {4, 5, 6}}, qv[4] = {0.1, 0.2, 0.3, 0.4};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                CHECK_NEAR(got[(i * 4 + j) * 3 + k], pv[i][k] * 10 + qv[j], 1e-12);
    /* (4,1) x (2,1,3), the other operand order: y[i][j][k] = q[j] - p[i][k] */
    y = tg_sub(q, p);
    CHECK(has_shape(y, TG_SHAPE(2, 4, 3)));
    CHECK(tg_copy_out_f64(y, got, 24) == 0);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                CHECK_NEAR(got[(i * 4 + j) * 3 + k], qv[j] - pv[i][k], 1e-12);
    /* scalar x (2,3), both orders */
    tg_tensor *two = tg_scalar_of(TG_F64, 2);
    CHECK_VALUES(tg_mul(two, a), 0, 2, 4, 6, 8, 10, 12);
    CHECK_VALUES(tg_div(a, two), 0, 0.5, 1, 1.5, 2, 2.5, 3);
    CHECK(has_shape(tg_mul(two, two), TG_SCALAR_SHAPE));
    /* (3,1) x (1,4) -> (3,4): an outer product */
    tg_tensor *col = tg_from_f64(TG_SHAPE(3, 1), 1, 2, 3), *row = tg_from_f64(TG_SHAPE(1, 4), 1, 10, 100, 1000);
    y = tg_mul(col, row);
    CHECK(has_shape(y, TG_SHAPE(3, 4)));
    CHECK_VALUES(y, 0, 1, 10, 100, 1000, 2, 20, 200, 2000, 3, 30, 300, 3000);
    /* a broadcast middle axis: (2,1,2) x (2,3,2) */
    tg_tensor *m = tg_from_f64(TG_SHAPE(2, 1, 2), 100, 200, 300, 400);
    y = tg_add(m, tg_from_f64(TG_SHAPE(2, 3, 2), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
    CHECK_VALUES(y, 0, 100, 201, 102, 203, 104, 205, 306, 407, 308, 409, 310, 411);
    /* empty tensors broadcast to empty results */
    tg_tensor *e = tg_zeros(TG_F32, TG_SHAPE(0, 3));
    y = tg_add(e, tg_ones(TG_F32, TG_SHAPE(3)));
    CHECK(has_shape(y, TG_SHAPE(0, 3)) && tg_size(y) == 0);
    tg_scope_end(s);
}

static void test_integer_arithmetic(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_i32(TG_SHAPE(4), 7, -7, 6, -1), *b = tg_from_i32(TG_SHAPE(4), 2, 2, -4, 3);
    CHECK(tg_dtype_of(tg_add(a, b)) == TG_I32);
    CHECK_VALUES(tg_add(a, b), 0, 9, -5, 2, 2);
    CHECK_VALUES(tg_sub(a, b), 0, 5, -9, 10, -4);
    CHECK_VALUES(tg_mul(a, b), 0, 14, -14, -24, -3);
    CHECK_VALUES(tg_div(a, b), 0, 3, -3, -1, 0); /* truncates toward zero, as C */
    CHECK_VALUES(tg_maximum(a, b), 0, 7, 2, 6, 3);
    CHECK_VALUES(tg_minimum(a, b), 0, 2, -7, -4, -1);
    CHECK_VALUES(tg_neg(a), 0, -7, 7, -6, 1);
    CHECK_VALUES(tg_abs(a), 0, 7, 7, 6, 1);
    CHECK_VALUES(tg_square(b), 0, 4, 4, 16, 9);
    CHECK_VALUES(tg_sign(tg_from_i32(TG_SHAPE(3), -5, 0, 9)), 0, -1, 0, 1);
    /* int64 with broadcasting, beyond the 2^53 a double holds exactly */
    tg_tensor *big = tg_from_i64(TG_SHAPE(2), INT64_C(9007199254740993), INT64_C(-4));
    int64_t out[2];
    CHECK(tg_copy_out(tg_add(big, tg_from_i64(TG_SHAPE(1), 2)), out, sizeof out) == 0);
    CHECK(out[0] == INT64_C(9007199254740995) && out[1] == -2);
    CHECK(tg_dtype_of(tg_mul(big, big)) == TG_I64);
    /* overflow wraps instead of being undefined */
    int32_t w[2];
    CHECK(tg_copy_out(tg_add(tg_from_i32(TG_SHAPE(2), INT32_MAX, INT32_MIN), tg_from_i32(TG_SHAPE(2), 1, -1)), w,
                      sizeof w) == 0);
    CHECK(w[0] == INT32_MIN && w[1] == INT32_MAX);
    CHECK(tg_copy_out(tg_div(tg_from_i32(TG_SHAPE(1), INT32_MIN), tg_from_i32(TG_SHAPE(1), -1)), w, 4) == 0);
    CHECK(w[0] == INT32_MIN);
    /* division by zero is an error, not a crash */
    EXPECT_ERROR(tg_div(a, tg_from_i32(TG_SHAPE(4), 1, 0, 1, 1)) == NULL,
                 "tg_div: integer division by zero (element 1");
    tg_scope_end(s);
}

static void test_comparisons(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6), *b = tg_from_f32(TG_SHAPE(3), 2, 2, 7);
    tg_tensor *eq = tg_equal(a, b);
    CHECK(tg_dtype_of(eq) == TG_BOOL && has_shape(eq, TG_SHAPE(2, 3)));
    CHECK_VALUES(eq, 0, 0, 1, 0, 0, 0, 0);
    CHECK_VALUES(tg_not_equal(a, b), 0, 1, 0, 1, 1, 1, 1);
    CHECK_VALUES(tg_greater(a, b), 0, 0, 0, 0, 1, 1, 0);
    CHECK_VALUES(tg_greater_equal(a, b), 0, 0, 1, 0, 1, 1, 0);
    CHECK_VALUES(tg_less(a, b), 0, 1, 0, 1, 0, 0, 1);
    CHECK_VALUES(tg_less_equal(a, b), 0, 1, 1, 1, 0, 0, 1);
    /* NaN compares unequal to everything */
    tg_tensor *n = tg_from_f64(TG_SHAPE(1), NAN);
    CHECK_VALUES(tg_equal(n, n), 0, 0);
    CHECK_VALUES(tg_not_equal(n, n), 0, 1);
    /* integers and bools */
    tg_tensor *i = tg_from_i64(TG_SHAPE(3), -1, 0, 5), *j = tg_from_i64(TG_SHAPE(1), 0);
    CHECK_VALUES(tg_less(i, j), 0, 1, 0, 0);
    tg_tensor *t = tg_greater(i, j), *u = tg_greater_equal(i, j);
    CHECK_VALUES(tg_equal(t, u), 0, 1, 0, 1);
    EXPECT_ERROR(tg_less(a, tg_from_i32(TG_SHAPE(1), 1)) == NULL, "tg_less: cannot mix float32 and int32");
    tg_scope_end(s);
}

static void test_logical(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_i32(TG_SHAPE(4), 0, 1, 2, 3);
    tg_tensor *p = tg_greater(x, tg_from_i32(TG_SHAPE(1), 1));                                  /* 0 0 1 1 */
    tg_tensor *q = tg_equal(tg_from_i32(TG_SHAPE(4), 0, 1, 0, 1), tg_from_i32(TG_SHAPE(1), 1)); /* 0 1 0 1 */
    CHECK_VALUES(tg_logical_and(p, q), 0, 0, 0, 0, 1);
    CHECK_VALUES(tg_logical_or(p, q), 0, 0, 1, 1, 1);
    CHECK_VALUES(tg_logical_not(p), 0, 1, 1, 0, 0);
    CHECK(tg_dtype_of(tg_logical_not(p)) == TG_BOOL);
    /* broadcast against a bool scalar */
    tg_tensor *yes = tg_cast(tg_scalar(1), TG_BOOL);
    CHECK_VALUES(tg_logical_and(q, yes), 0, 0, 1, 0, 1);
    EXPECT_ERROR(tg_logical_and(x, x) == NULL, "tg_logical_and: `a` must be bool, not int32");
    EXPECT_ERROR(tg_logical_not(tg_scalar(1)) == NULL, "tg_logical_not: `x` must be bool, not float32");
    tg_scope_end(s);
}

static void test_where_forward(void)
{
    tg_scope *s = tg_scope_begin();
    /* cond (2,1), a (3,), b scalar -> (2,3) */
    tg_tensor *c = tg_less(tg_from_f32(TG_SHAPE(2, 1), 1, 5), tg_scalar(3));
    tg_tensor *y = tg_where(c, tg_from_f32(TG_SHAPE(3), 1, 2, 3), tg_scalar(-1));
    CHECK(has_shape(y, TG_SHAPE(2, 3)));
    CHECK_VALUES(y, 0, 1, 2, 3, -1, -1, -1);
    /* cond (3,), a (2,1), b (2,3) */
    tg_tensor *c3 = tg_greater(tg_from_i32(TG_SHAPE(3), 1, 0, 1), tg_from_i32(TG_SHAPE(1), 0));
    y = tg_where(c3, tg_from_i64(TG_SHAPE(2, 1), 7, 8), tg_from_i64(TG_SHAPE(2, 3), 0, 1, 2, 3, 4, 5));
    CHECK(tg_dtype_of(y) == TG_I64);
    CHECK_VALUES(y, 0, 7, 1, 7, 8, 4, 8);
    /* errors */
    EXPECT_ERROR(tg_where(tg_scalar(1), tg_scalar(1), tg_scalar(2)) == NULL,
                 "tg_where: `cond` must be bool, not float32");
    EXPECT_ERROR(tg_where(c, tg_scalar(1), tg_scalar_of(TG_F64, 2)) == NULL, "cannot mix float32 and float64");
    EXPECT_ERROR(tg_where(c, tg_zeros(TG_F32, TG_SHAPE(3, 3)), tg_scalar(2)) == NULL, "cannot be broadcast");
    tg_scope_end(s);
}

static void test_unary_forward_values(void)
{
    tg_scope *s = tg_scope_begin();
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *x = tg_cast(tg_from_f64(TG_SHAPE(4), -2.0, -0.5, 0.0, 4.0), dt);
        tg_tensor *p = tg_cast(tg_from_f64(TG_SHAPE(3), 0.25, 1.0, 4.0), dt);
        CHECK_VALUES(tg_neg(x), 0, 2.0, 0.5, 0.0, -4.0);
        CHECK_VALUES(tg_abs(x), 0, 2.0, 0.5, 0.0, 4.0);
        CHECK_VALUES(tg_square(x), 0, 4.0, 0.25, 0.0, 16.0);
        CHECK_VALUES(tg_sign(x), 0, -1.0, -1.0, 0.0, 1.0);
        CHECK_VALUES(tg_sqrt(p), 1e-7, 0.5, 1.0, 2.0);
        CHECK_VALUES(tg_rsqrt(p), 1e-7, 2.0, 1.0, 0.5);
        CHECK_VALUES(tg_exp(x), 1e-6, 0.1353352832366127, 0.6065306597126334, 1.0, 54.598150033144236);
        CHECK_VALUES(tg_log(p), 1e-6, -1.3862943611198906, 0.0, 1.3862943611198906);
        CHECK_VALUES(tg_log1p(tg_cast(tg_from_f64(TG_SHAPE(2), 1e-10, 1.0), dt)), 1e-6, 1e-10, 0.6931471805599453);
        CHECK_VALUES(tg_erf(x), 1e-6, -0.9953222650189527, -0.5204998778130465, 0.0, 0.9999999845827421);
        tg_tensor *r = tg_cast(tg_from_f64(TG_SHAPE(8), 0.5, 1.5, 2.5, -0.5, -1.5, -2.7, 2.2, -0.2), dt);
        CHECK_VALUES(tg_round(r), 0, 0.0, 2.0, 2.0, -0.0, -2.0, -3.0, 2.0, -0.0); /* half to even */
        CHECK_VALUES(tg_floor(r), 0, 0.0, 1.0, 2.0, -1.0, -2.0, -3.0, 2.0, -1.0);
        CHECK_VALUES(tg_ceil(r), 0, 1.0, 2.0, 3.0, -0.0, -1.0, -2.0, 3.0, -0.0);
        CHECK_VALUES(tg_clip_by_value(r, -1.0, 2.0), 1e-7, 0.5, 1.5, 2.0, -0.5, -1.0, -1.0, 2.0, -0.2);
        CHECK_VALUES(tg_identity(r), 1e-7, 0.5, 1.5, 2.5, -0.5, -1.5, -2.7, 2.2, -0.2);
        CHECK_VALUES(tg_stop_gradient(r), 1e-7, 0.5, 1.5, 2.5, -0.5, -1.5, -2.7, 2.2, -0.2);
        CHECK(tg_dtype_of(tg_exp(x)) == dt && has_shape(tg_exp(x), TG_SHAPE(4)));
    }
    /* sign(NaN) is NaN, as in TF */
    double got[1];
    tg_copy_out_f64(tg_sign(tg_from_f64(TG_SHAPE(1), NAN)), got, 1);
    CHECK(isnan(got[0]));
    /* identity and stop_gradient copy any dtype, bool included */
    tg_tensor *b = tg_greater(tg_from_i32(TG_SHAPE(2), 1, -1), tg_from_i32(TG_SHAPE(1), 0));
    CHECK_VALUES(tg_identity(b), 0, 1, 0);
    CHECK(tg_dtype_of(tg_stop_gradient(b)) == TG_BOOL);
    CHECK_VALUES(tg_identity(tg_from_i64(TG_SHAPE(2), 5, -5)), 0, 5, -5);
    tg_scope_end(s);
}

static void test_cast(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(6), 1.7, -1.7, 0.0, 1e10, -1e10, NAN);
    tg_tensor *i = tg_cast(x, TG_I32);
    CHECK(tg_dtype_of(i) == TG_I32);
    int32_t got[6];
    CHECK(tg_copy_out(i, got, sizeof got) == 0);
    /* truncation toward zero; out of range saturates, NaN becomes 0 */
    CHECK(got[0] == 1 && got[1] == -1 && got[2] == 0 && got[3] == INT32_MAX && got[4] == INT32_MIN && got[5] == 0);
    CHECK_VALUES(tg_cast(x, TG_BOOL), 0, 1, 1, 0, 1, 1, 1);
    CHECK_VALUES(tg_cast(tg_cast(x, TG_BOOL), TG_F32), 0, 1, 1, 0, 1, 1, 1);
    CHECK_VALUES(tg_cast(tg_from_f64(TG_SHAPE(2), 0.1, 3.0), TG_F32), 1e-7, 0.1, 3.0);
    CHECK(tg_dtype_of(tg_cast(x, TG_F32)) == TG_F32);
    int64_t big[2];
    CHECK(tg_copy_out(tg_cast(tg_from_i32(TG_SHAPE(2), -3, INT32_MAX), TG_I64), big, sizeof big) == 0);
    CHECK(big[0] == -3 && big[1] == INT32_MAX);
    CHECK(tg_copy_out(tg_cast(tg_from_f64(TG_SHAPE(2), 1e19, -1e19), TG_I64), big, sizeof big) == 0);
    CHECK(big[0] == INT64_MAX && big[1] == INT64_MIN);
    CHECK_VALUES(tg_cast(tg_from_i64(TG_SHAPE(2), -4, 1 << 20), TG_F64), 0, -4, 1 << 20);
    EXPECT_ERROR(tg_cast(x, (tg_dtype)42) == NULL, "tg_cast: 42 is not a dtype");
    tg_scope_end(s);
}

/* ---- errors ----------------------------------------------------------------------------------- */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *f = tg_ones(TG_F32, TG_SHAPE(2, 3)), *d = tg_ones(TG_F64, TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_add(f, d) == NULL, "tg_add: cannot mix float32 and float64");
    EXPECT_ERROR(tg_pow(d, f) == NULL, "tg_pow: cannot mix float64 and float32");
    EXPECT_ERROR(tg_mul(f, tg_ones(TG_F32, TG_SHAPE(3, 2))) == NULL,
                 "tg_mul: shapes (2, 3) and (3, 2) cannot be broadcast together");
    EXPECT_ERROR(tg_maximum(tg_ones(TG_F32, TG_SHAPE(2, 1, 3)), tg_ones(TG_F32, TG_SHAPE(4, 2))) == NULL,
                 "cannot be broadcast together");
    /* a NULL input returns NULL and keeps the first error */
    tg_clear_error();
    tg_tensor *bad = tg_log(tg_from_i32(TG_SHAPE(1), 3));
    EXPECT_ERROR(bad == NULL, "tg_log: `x` must be float32 or float64, not int32");
    CHECK(tg_add(bad, f) == NULL);
    EXPECT_ERROR(tg_exp(tg_mul(f, tg_add(bad, f))) == NULL, "tg_log: `x` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_where(NULL, f, f) == NULL, "tg_log");
    /* with no earlier error, a NULL argument is named */
    tg_clear_error();
    EXPECT_ERROR(tg_add(NULL, f) == NULL, "tg_add: `a` is NULL");
    /* integers are rejected by float-only ops */
    tg_tensor *i = tg_from_i32(TG_SHAPE(2), 1, 2);
    struct {
        tg_tensor *(*fn)(tg_loc, const tg_tensor *);
        const char *msg;
    } float_only[] = {
        {tg_sqrt_at, "tg_sqrt: `x` must be float32 or float64, not int32"},
        {tg_rsqrt_at, "tg_rsqrt: `x` must be float32"},
        {tg_exp_at, "tg_exp: `x` must be float32"},
        {tg_log1p_at, "tg_log1p: `x` must be float32"},
        {tg_erf_at, "tg_erf: `x` must be float32"},
        {tg_floor_at, "tg_floor: `x` must be float32"},
        {tg_ceil_at, "tg_ceil: `x` must be float32"},
        {tg_round_at, "tg_round: `x` must be float32"},
    };
    for (size_t k = 0; k < sizeof float_only / sizeof float_only[0]; k++) {
        EXPECT_ERROR(float_only[k].fn(TG_LOC, i) == NULL, float_only[k].msg);
    }
    EXPECT_ERROR(tg_pow(i, i) == NULL, "tg_pow: `a` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_clip_by_value(i, 0, 1) == NULL, "tg_clip_by_value: `x` must be float32");
    /* bools are not numbers for arithmetic */
    tg_tensor *b = tg_cast(i, TG_BOOL);
    EXPECT_ERROR(tg_add(b, b) == NULL, "tg_add: `a` must be float32, float64, int32 or int64, not bool");
    EXPECT_ERROR(tg_neg(b) == NULL, "tg_neg: `x` must be float32, float64, int32 or int64, not bool");
    EXPECT_ERROR(tg_clip_by_value(f, 2.0, 1.0) == NULL, "tg_clip_by_value: `lo` (2) must not exceed `hi` (1)");
    /* the error names the caller's line */
    tg_add(f, d);
    char here[64];
    snprintf(here, sizeof here, "%s:%d", __FILE__, __LINE__ - 2);
    CHECK_ERROR(here);
    tg_scope_end(s);
}

/* ---- gradients (finite differences and float32: tests/test_op_table.c) ------------------------ */
static void test_gradients_where(void)
{
    tg_scope *s = tg_scope_begin();
    /* the values: dy to a where cond, to b elsewhere, summed over broadcast axes */
    tg_tensor *a = tg_from_f64(TG_SHAPE(3), 1, 2, 3), *b = tg_from_f64(TG_SHAPE(1), 10);
    tg_tensor *c = tg_greater(a, tg_scalar_of(TG_F64, 1.5));
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, a);
    tg_watch(t, b);
    tg_tensor *y = tg_where(c, a, b);
    tg_tape_end(t);
    CHECK_VALUES(y, 0, 10, 2, 3);
    CHECK_VALUES(tg_gradient(t, y, a), 0, 0, 1, 1);
    CHECK_VALUES(tg_gradient(t, y, b), 0, 1);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* Exact gradient values at chosen points, including where TF makes a choice. */
static void test_gradient_values(void)
{
    tg_scope *s = tg_scope_begin();
    /* maximum/minimum ties go to a, as TF */
    tg_tensor *a = tg_from_f64(TG_SHAPE(3), 1, 2, 3), *b = tg_from_f64(TG_SHAPE(3), 1, 5, 0);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, a);
    tg_watch(t, b);
    tg_tensor *mx = tg_maximum(a, b), *mn = tg_minimum(a, b);
    tg_tensor *pw = tg_pow(tg_from_f64(TG_SHAPE(3), -2, 0, 3), b);            /* bases not watched */
    tg_tensor *pa = tg_pow(tg_mul(a, tg_from_f64(TG_SHAPE(3), -2, 0, 1)), b); /* a*(-2,0,1) ^ b */
    tg_tensor *clip = tg_clip_by_value(tg_mul(a, tg_scalar_of(TG_F64, 1)), 1.0, 2.5);
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, mx, a), 0, 1, 0, 1);
    CHECK_VALUES(tg_gradient(t, mx, b), 0, 0, 1, 0);
    CHECK_VALUES(tg_gradient(t, mn, a), 0, 1, 1, 0);
    CHECK_VALUES(tg_gradient(t, mn, b), 0, 0, 0, 1);
    CHECK_VALUES(pw, 0, -2, 0, 1);
    /* pow: d/db is 0 where the base is <= 0 (no NaN); 3^0 * log 3 where it is 3 */
    CHECK_VALUES(tg_gradient(t, pw, b), 1e-12, 0, 0, log(3.0));
    /* base (-2, 0, 3), exponent (1, 5, 0): d/da = b * base^(b-1) * (-2, 0, 1) */
    CHECK_VALUES(tg_gradient(t, pa, a), 1e-12, -2, 0, 0);
    /* clip passes the gradient inside [lo, hi], bounds included */
    CHECK_VALUES(tg_gradient(t, clip, a), 0, 1, 1, 0);
    tg_tape_free(t);

    /* not differentiable ops: floor/ceil/round and comparisons give no gradient,
     * sign gives zeros, stop_gradient cuts the path, integer casts too */
    tg_tensor *x = tg_from_f64(TG_SHAPE(2), 0.3, -1.2);
    t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_tensor *fl = tg_floor(x), *ce = tg_ceil(x), *ro = tg_round(x), *sg = tg_sign(x);
    tg_tensor *st = tg_stop_gradient(x), *ci = tg_cast(tg_cast(x, TG_I32), TG_F64);
    tg_tensor *mixed = tg_add(tg_mul(x, tg_stop_gradient(x)), tg_sign(x));
    tg_tape_end(t);
    tg_clear_error();
    CHECK(tg_gradient(t, fl, x) == NULL && !tg_has_error());
    CHECK(tg_gradient(t, ce, x) == NULL && !tg_has_error());
    CHECK(tg_gradient(t, ro, x) == NULL && !tg_has_error());
    CHECK(tg_gradient(t, st, x) == NULL && !tg_has_error());
    CHECK(tg_gradient(t, ci, x) == NULL && !tg_has_error());
    CHECK_VALUES(tg_gradient(t, sg, x), 0, 0, 0);
    CHECK_VALUES(tg_gradient(t, mixed, x), 0, 0.3, -1.2);
    tg_tape_free(t);

    /* float32 -> float64 cast: the gradient comes back as float32 */
    tg_tensor *f = tg_from_f32(TG_SHAPE(2), 1, 2);
    t = tg_tape_begin();
    tg_watch(t, f);
    tg_tensor *y = tg_square(tg_cast(f, TG_F64));
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, y, f);
    CHECK(tg_dtype_of(g) == TG_F32);
    CHECK_VALUES(g, 0, 2, 4);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* Reading a variable through tg_identity copies its value: a later assign leaves the
 * copy alone and the gradient flows to the variable. */
static void count_warning(const char *msg, void *user)
{
    (void)msg;
    ++*(int *)user;
}

static void test_identity_reads_variable(void)
{
    int warnings = 0;
    tg_set_warning_handler(count_warning, &warnings);
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_variable(tg_from_f64(TG_SHAPE(2), 1, 2));
    tg_tape *t = tg_tape_begin();
    tg_tensor *r = tg_identity(v);
    tg_tensor *y = tg_mul(r, r);
    tg_tape_end(t);
    CHECK(tg_assign(v, tg_from_f64(TG_SHAPE(2), 7, 8)) == 0);
    CHECK_VALUES(r, 0, 1, 2);
    CHECK_VALUES(tg_gradient(t, y, v), 0, 2, 4);
    CHECK(warnings == 1); /* the tape says it differentiates at the value it read */
    tg_tape_free(t);
    tg_variable_free(v);
    tg_scope_end(s);
    tg_set_warning_handler(NULL, NULL);
}

static tg_tensor *f_cube(const tg_tensor *x) { return tg_pow(x, tg_scalar_like(x, 3)); }
static tg_tensor *f_erf(const tg_tensor *x) { return tg_erf(x); }
static tg_tensor *f_recip(const tg_tensor *x) { return tg_div(tg_scalar_like(x, 1), x); }
static tg_tensor *f_sqrt(const tg_tensor *x) { return tg_sqrt(x); }
static tg_tensor *f_where_exp(const tg_tensor *x)
{
    return tg_where(tg_greater(x, tg_scalar_like(x, 0)), tg_exp(x), tg_mul(x, x));
}

static void test_second_derivatives(void)
{
    tg_scope *s = tg_scope_begin();
    const double v[3] = {-1.5, 0.5, 2.0};
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(3), v);
    double e[3];
    for (int i = 0; i < 3; i++) /* erf'' = -4x/sqrt(pi) exp(-x^2) */
        e[i] = -4 * v[i] / sqrt(M_PI) * exp(-v[i] * v[i]);
    CHECK_VALUES(second_derivative(f_cube, x), 1e-10, 6 * v[0], 6 * v[1], 6 * v[2]);
    CHECK_VALUES(second_derivative(f_erf, x), 1e-10, e[0], e[1], e[2]);
    CHECK_VALUES(second_derivative(f_recip, x), 1e-10, 2 / (v[0] * v[0] * v[0]), 2 / (v[1] * v[1] * v[1]),
                 2 / (v[2] * v[2] * v[2]));
    CHECK_VALUES(second_derivative(f_where_exp, x), 1e-10, 2, exp(v[1]), exp(v[2]));
    tg_tensor *p = tg_from_f64(TG_SHAPE(2), 0.25, 4); /* sqrt'' = -x^(-3/2) / 4 */
    CHECK_VALUES(second_derivative(f_sqrt, p), 1e-10, -0.25 * pow(0.25, -1.5), -0.25 * pow(4.0, -1.5));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_binary_forward_values);
    RUN(test_broadcast_shapes);
    RUN(test_integer_arithmetic);
    RUN(test_comparisons);
    RUN(test_logical);
    RUN(test_where_forward);
    RUN(test_unary_forward_values);
    RUN(test_cast);
    RUN(test_errors);
    RUN(test_gradients_where);
    RUN(test_gradient_values);
    RUN(test_identity_reads_variable);
    RUN(test_second_derivatives);
    return TEST_SUMMARY();
}
