/* Reductions: forward values by hand, gradients by hand (ties included), argmax/argmin,
 * and every error path. Finite differences over axes, keepdims and ranks, float32
 * against float64 and second order are the op table test's (tests/test_op_table.c). */
#include "check.h"

typedef tg_tensor *(*reduce_fn)(tg_loc, const tg_tensor *, tg_reduce_opts);

/* ---- forward values ------------------------------------------------------------------------ */
static void test_forward_values(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(tg_sum(x), 0, 21);
    CHECK_VALUES(tg_sum(x, .axes = TG_AXES(0)), 0, 5, 7, 9);
    CHECK_VALUES(tg_sum(x, .axes = TG_AXES(-1)), 0, 6, 15);
    CHECK_VALUES(tg_sum(x, .axes = TG_AXES(1, 0)), 0, 21);
    CHECK_VALUES(tg_mean(x, .axes = TG_AXES(1)), 1e-7, 2, 5);
    CHECK_VALUES(tg_mean(x), 1e-7, 3.5);
    CHECK_VALUES(tg_max(x, .axes = TG_AXES(0)), 0, 4, 5, 6);
    CHECK_VALUES(tg_min(x, .axes = TG_AXES(1)), 0, 1, 4);
    CHECK_VALUES(tg_max(x), 0, 6);
    CHECK_VALUES(tg_variance(x, .axes = TG_AXES(1)), 1e-6, 2.0 / 3, 2.0 / 3);
    CHECK_VALUES(tg_variance(x, .axes = TG_AXES(0)), 1e-6, 2.25, 2.25, 2.25);
    CHECK_VALUES(tg_variance(x), 1e-6, 17.5 / 6);
    /* log(e + e^2 + e^3) and log(e^4 + e^5 + e^6) */
    CHECK_VALUES(tg_logsumexp(x, .axes = TG_AXES(1)), 1e-6, 3.4076059644443806, 6.4076059644443806);
    CHECK(tg_dtype_of(tg_sum(x)) == TG_F32);

    /* x[i,j,k] = 12i + 4j + k; summing over i and k gives 60 + 32j. */
    tg_tensor *r3 = tg_reshape(tg_arange(TG_F64, 0, 24, 1), TG_SHAPE(2, 3, 4));
    CHECK_VALUES(tg_sum(r3, .axes = TG_AXES(0, 2)), 0, 60, 92, 124);
    CHECK_VALUES(tg_sum(r3, .axes = TG_AXES(-1, 0), .keepdims = true), 0, 60, 92, 124);
    CHECK_VALUES(tg_max(r3, .axes = TG_AXES(1)), 0, 8, 9, 10, 11, 20, 21, 22, 23);
    CHECK_VALUES(tg_min(r3, .axes = TG_AXES(0, 1)), 0, 0, 1, 2, 3);
    CHECK_VALUES(tg_mean(r3, .axes = TG_AXES(2)), 1e-12, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5);

    /* A scalar reduces to itself. */
    tg_tensor *sc = tg_scalar_of(TG_F64, 2.5);
    CHECK_VALUES(tg_sum(sc), 0, 2.5);
    CHECK_VALUES(tg_variance(sc), 0, 0);
    CHECK(tg_rank(tg_mean(sc)) == 0);
    tg_scope_end(s);
}

static void test_keepdims_shapes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2, 3, 4, 5));
    tg_shape a = tg_shape_of(tg_sum(x, .axes = TG_AXES(1, 3), .keepdims = true));
    CHECK(a.rank == 4 && a.dims[0] == 2 && a.dims[1] == 1 && a.dims[2] == 4 && a.dims[3] == 1);
    tg_shape b = tg_shape_of(tg_mean(x, .axes = TG_AXES(1, 3)));
    CHECK(b.rank == 2 && b.dims[0] == 2 && b.dims[1] == 4);
    tg_shape c = tg_shape_of(tg_max(x, .keepdims = true));
    CHECK(c.rank == 4 && c.dims[0] == 1 && c.dims[1] == 1 && c.dims[2] == 1 && c.dims[3] == 1);
    CHECK(tg_rank(tg_logsumexp(x)) == 0);
    tg_shape d = tg_shape_of(tg_variance(x, .axes = TG_AXES(-4)));
    CHECK(d.rank == 3 && d.dims[0] == 3 && d.dims[1] == 4 && d.dims[2] == 5);
    tg_scope_end(s);
}

static void test_integer_reductions(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *i32 = tg_from_i32(TG_SHAPE(2, 2), 1, -2, 3, 4);
    tg_tensor *sum = tg_sum(i32, .axes = TG_AXES(0));
    CHECK(tg_dtype_of(sum) == TG_I32);
    CHECK_VALUES(sum, 0, 4, 2);
    CHECK_VALUES(tg_max(i32, .axes = TG_AXES(1)), 0, 1, 4);
    CHECK_VALUES(tg_min(i32), 0, -2);
    /* int64 beyond 2^53 stays exact. */
    tg_tensor *i64 = tg_from_i64(TG_SHAPE(3), INT64_C(9007199254740993), 1, INT64_C(-5));
    int64_t got[2];
    tg_copy_out(tg_max(i64), &got[0], sizeof got[0]);
    tg_copy_out(tg_sum(i64), &got[1], sizeof got[1]);
    CHECK(got[0] == INT64_C(9007199254740993));
    CHECK(got[1] == INT64_C(9007199254740989));
    tg_scope_end(s);
}

/* logsumexp shifts by the max: no overflow for large inputs; -inf everywhere gives -inf. */
static void test_logsumexp_stable(void)
{
    tg_scope *s = tg_scope_begin();
    CHECK_VALUES(tg_logsumexp(tg_from_f32(TG_SHAPE(2), 1000, 1000)), 1e-7, 1000.6931471805599);
    CHECK_VALUES(tg_logsumexp(tg_from_f32(TG_SHAPE(2), -1000, -1000)), 1e-7, -999.3068528194401);
    CHECK_VALUES(tg_logsumexp(tg_from_f64(TG_SHAPE(3), 710, 0, -710)), 1e-12, 710);
    double v = tg_item(tg_logsumexp(tg_from_f64(TG_SHAPE(2), -INFINITY, -INFINITY)));
    CHECK(isinf(v) && v < 0);
    v = tg_item(tg_logsumexp(tg_from_f64(TG_SHAPE(2), INFINITY, 1)));
    CHECK(isinf(v) && v > 0);
    tg_scope_end(s);
}

/* Empty reductions give each op's identity (TF): 0 for sum, -inf for max, NaN for mean. */
static void test_empty_reductions(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *e = tg_zeros(TG_F32, TG_SHAPE(0, 3));
    CHECK_VALUES(tg_sum(e, .axes = TG_AXES(0)), 0, 0, 0, 0);
    double m[3];
    tg_copy_out_f64(tg_max(e, .axes = TG_AXES(0)), m, 3);
    CHECK(isinf(m[0]) && m[0] < 0 && isinf(m[2]));
    CHECK(isnan(tg_item(tg_mean(e))));
    CHECK(tg_size(tg_sum(e, .axes = TG_AXES(1))) == 0);
    tg_scope_end(s);
}

static void test_nan_propagates_through_max(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 3), 1, NAN, 3, 4, 5, 6);
    double v[2];
    tg_copy_out_f64(tg_max(x, .axes = TG_AXES(1)), v, 2);
    CHECK(isnan(v[0]) && v[1] == 6);
    tg_copy_out_f64(tg_min(x, .axes = TG_AXES(1)), v, 2);
    CHECK(isnan(v[0]) && v[1] == 4);
    tg_scope_end(s);
}

/* ---- gradients (finite differences: tests/test_op_table.c) --------------------------------------------------------------------------------- */
static tg_tensor *grad_of_sum(tg_tensor *x, reduce_fn fn, tg_reduce_opts o)
{
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_sum(fn(TG_LOC, x, o));
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, y, x);
    tg_tape_free(t);
    return g;
}

/* TF splits the gradient of max/min equally between tied elements. */
static void test_max_min_ties_split_gradient(void)
{
    tg_scope *s = tg_scope_begin();
    CHECK_VALUES(grad_of_sum(tg_from_f32(TG_SHAPE(3), 1, 3, 3), tg_max_at, (tg_reduce_opts){0}), 0, 0, 0.5, 0.5);
    CHECK_VALUES(grad_of_sum(tg_from_f64(TG_SHAPE(4), 2, 1, 1, 1), tg_min_at, (tg_reduce_opts){0}), 1e-15, 0, 1.0 / 3,
                 1.0 / 3, 1.0 / 3);
    tg_tensor *m = tg_from_f64(TG_SHAPE(2, 3), 1, 3, 3, 2, 0, 2);
    CHECK_VALUES(grad_of_sum(m, tg_max_at, (tg_reduce_opts){TG_AXES(1), false}), 0, 0, .5, .5, .5, 0, .5);
    CHECK_VALUES(grad_of_sum(m, tg_min_at, (tg_reduce_opts){TG_AXES(0), true}), 0, 1, 0, 0, 0, 1, 1);
    /* Everything tied over all axes: each of the six gets 1/6. */
    tg_tensor *flat = tg_fill(TG_F32, TG_SHAPE(2, 3), 4);
    CHECK_VALUES(grad_of_sum(flat, tg_max_at, (tg_reduce_opts){0}), 1e-7, 1. / 6, 1. / 6, 1. / 6, 1. / 6, 1. / 6,
                 1. / 6);
    tg_scope_end(s);
}

/* Hand-derived gradients: mean spreads 1/N; variance gives 2(x - mean)/N. */
static void test_gradients_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 7);
    CHECK_VALUES(grad_of_sum(x, tg_mean_at, (tg_reduce_opts){TG_AXES(0), false}), 0, .5, .5, .5, .5);
    CHECK_VALUES(grad_of_sum(x, tg_sum_at, (tg_reduce_opts){TG_AXES(1), true}), 0, 1, 1, 1, 1);
    /* rows: mean 1.5 and 5, N = 2 */
    CHECK_VALUES(grad_of_sum(x, tg_variance_at, (tg_reduce_opts){TG_AXES(-1), false}), 1e-15, -.5, .5, -2, 2);
    /* softmax of [0, log 3] is [1/4, 3/4] */
    tg_tensor *l = tg_from_f64(TG_SHAPE(2), 0, log(3.0));
    CHECK_VALUES(grad_of_sum(l, tg_logsumexp_at, (tg_reduce_opts){0}), 1e-15, .25, .75);
    tg_scope_end(s);
}

/* ---- argmax / argmin ----------------------------------------------------------------------------- */
static void test_argmax_argmin(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 3, 3, 5, 0, 5);
    tg_tensor *am = tg_argmax(x, 1);
    CHECK(tg_dtype_of(am) == TG_I64 && tg_rank(am) == 1);
    CHECK_VALUES(am, 0, 1, 0); /* ties pick the first */
    CHECK_VALUES(tg_argmax(x, -1), 0, 1, 0);
    CHECK_VALUES(tg_argmax(x, 0), 0, 1, 0, 1);
    CHECK_VALUES(tg_argmin(x, 1), 0, 0, 1);
    CHECK_VALUES(tg_argmin(tg_from_i32(TG_SHAPE(2, 2), 2, 1, 2, 0), 0), 0, 0, 1);
    CHECK_VALUES(tg_argmax(tg_from_i64(TG_SHAPE(4), 7, 9, 9, -1), 0), 0, 1);
    /* rank 3, middle axis: x[i,j,k] = 12i + 4j + k grows along j. */
    tg_tensor *r3 = tg_reshape(tg_arange(TG_F64, 0, 24, 1), TG_SHAPE(2, 3, 4));
    CHECK_VALUES(tg_argmax(r3, 1), 0, 2, 2, 2, 2, 2, 2, 2, 2);
    CHECK_VALUES(tg_argmin(r3, -2), 0, 0, 0, 0, 0, 0, 0, 0, 0);
    tg_scope_end(s);
}

/* argmax is not differentiable: the path through it is cut (TF: None). */
static void test_argmax_has_no_gradient(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(3), 1, 5, 2);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_cast(tg_argmax(x, 0), TG_F32);
    tg_tape_end(t);
    CHECK(tg_gradient(t, y, x) == NULL);
    CHECK(!tg_has_error());
    tg_tape_free(t);
    tg_scope_end(s);
}

/* ---- errors --------------------------------------------------------------------------------------- */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_sum(x, .axes = TG_AXES(2)) == NULL, "tg_sum: axis 2 is out of range for a tensor of rank 2");
    EXPECT_ERROR(tg_max(x, .axes = TG_AXES(0, -3)) == NULL, "tg_max: axis -3 is out of range for a tensor of rank 2");
    EXPECT_ERROR(tg_mean(x, .axes = TG_AXES(1, -1)) == NULL, "tg_mean: axes (1, -1) name axis 1 twice");
    EXPECT_ERROR(tg_variance(x, .axes = TG_AXES(0, 0)) == NULL, "tg_variance: axes (0, 0) name axis 0 twice");
    EXPECT_ERROR(tg_sum(tg_scalar(1), .axes = TG_AXES(0)) == NULL,
                 "tg_sum: axis 0 is out of range for a tensor of rank 0");
    EXPECT_ERROR(tg_sum_at(TG_LOC, x, (tg_reduce_opts){.axes = {.n = 9}}) == NULL, "tg_sum: axes has 9 entries");

    tg_tensor *i = tg_from_i32(TG_SHAPE(2), 1, 2);
    EXPECT_ERROR(tg_mean(i) == NULL, "tg_mean: `x` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_logsumexp(i) == NULL, "tg_logsumexp: `x` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_variance(i) == NULL, "tg_variance: `x` must be float32 or float64");
    tg_tensor *b = tg_equal(i, i);
    EXPECT_ERROR(tg_sum(b) == NULL, "tg_sum: `x` is bool");
    EXPECT_ERROR(tg_argmax(b, 0) == NULL, "tg_argmax: `x` is bool");

    tg_clear_error();
    EXPECT_ERROR(tg_sum(NULL) == NULL, "tg_sum: `x` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_argmax(NULL, 0) == NULL, "tg_argmax: `x` is NULL");

    EXPECT_ERROR(tg_argmax(x, 2) == NULL, "tg_argmax: axis 2 is out of range for a tensor of rank 2");
    EXPECT_ERROR(tg_argmin(x, -3) == NULL, "tg_argmin: axis -3 is out of range");
    EXPECT_ERROR(tg_argmax(tg_scalar(1), 0) == NULL, "tg_argmax: `x` is a scalar");
    EXPECT_ERROR(tg_argmin(tg_zeros(TG_F32, TG_SHAPE(2, 0)), 1) == NULL,
                 "tg_argmin: axis 1 of a tensor of shape (2, 0) is empty");
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_forward_values);
    RUN(test_keepdims_shapes);
    RUN(test_integer_reductions);
    RUN(test_logsumexp_stable);
    RUN(test_empty_reductions);
    RUN(test_nan_propagates_through_max);
    RUN(test_max_min_ties_split_gradient);
    RUN(test_gradients_by_hand);
    RUN(test_argmax_argmin);
    RUN(test_argmax_has_no_gradient);
    RUN(test_errors);
    return TEST_SUMMARY();
}
