/* NaN in, NaN out (docs/reliability.md, "NaN"). Every row of the op table, through its
 * sampler (fuzz/op_samples.c): an output element that depends on an input element (it
 * changes when that element does) must be NaN when that element is NaN. The rows whose
 * NaN behaviour differs (bool and index outputs, cast, check_numerics) are checked one
 * by one against what the docs say, and predict on a NaN row gives NaN, not a class. */
#include "../fuzz/op_samples.h"
#include "check.h"

enum { N = 6, MAX_OUT = 1024, N_PARAMS = 6 }; /* operands are [2, 3] */

/* Attribute bytes: each row runs with several attribute choices. */
static const uint8_t PARAMS[N_PARAMS][8] = {
    {0},
    {1, 2, 3, 4, 5, 6, 7, 8},
    {0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55},
    {0xAA, 0x0F, 0xAA, 0x0F, 0xAA, 0x0F, 0xAA, 0x0F},
    {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
    {7, 200, 33, 91, 2, 150, 64, 3},
};

/* Runs row `op` on operands [2, 3]; the output's size (its elements in out), or -1. */
static int run_row(tg_op_kind op, const uint8_t *param, double ops[][N], double *out)
{
    tg_scope *sc = tg_scope_begin();
    tg_tensor *x[3];
    for (int k = 0; k < 3; k++)
        x[k] = tg_tensor_from(TG_F64, TG_SHAPE(2, 3), ops[k]);
    tg_sample s = {.op = op, .param = param, .n_param = 8};
    tg_tensor *y = tg_sample_run(&s, x);
    int n = y && tg_size(y) <= MAX_OUT ? (int)tg_size(y) : -1;
    if (n >= 0 && tg_copy_out_f64(y, out, n) != 0)
        n = -1;
    if (n < 0)
        printf("  %s: the sampled call failed: %s\n", tg__op_table[op].name, tg_last_error());
    tg_scope_end(sc);
    return n;
}

static bool same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* Element e of operand k: which outputs depend on it (some probe value changes them), and
 * are those NaN when it is NaN? */
static bool element_keeps_nan(tg_op_kind op, const uint8_t *param, double ops[][N], int k, int e, const double *base,
                              int n)
{
    static const double probes[] = {-3.0, -0.6, 0.45, 2.7};
    static double out[MAX_OUT];
    static bool dep[MAX_OUT];
    double saved = ops[k][e];
    memset(dep, 0, sizeof dep);
    bool ok = true;
    for (int p = 0; p < 4 && ok; p++) {
        ops[k][e] = probes[p];
        ok = run_row(op, param, ops, out) == n;
        for (int j = 0; ok && j < n; j++)
            dep[j] |= !same(out[j], base[j]);
    }
    ops[k][e] = NAN;
    ok = ok && run_row(op, param, ops, out) == n;
    for (int j = 0; ok && j < n; j++)
        if (dep[j] && !isnan(out[j])) {
            printf("  %s: operand %d element %d is NaN but output %d is %g\n", tg__op_table[op].name, k, e, j, out[j]);
            ok = false;
        }
    ops[k][e] = saved;
    return ok;
}

static bool row_keeps_nan(tg_op_kind op, const uint8_t *param)
{
    const tg_op_sampler *r = &tg_op_samplers[op];
    double ops[3][N], base[MAX_OUT];
    for (int k = 0; k < 3; k++)
        for (int e = 0; e < N; e++)
            ops[k][e] = -1.9 + 0.61 * ((k * N + e) * 7 % 13) + 0.013 * e; /* distinct, none 0 */
    int n = run_row(op, param, ops, base);
    if (n < 0)
        return false;
    bool ok = true;
    for (int k = 0; k < r->arity && ok; k++)
        for (int e = 0; (r->nan_operands >> k & 1) && e < N && ok; e++)
            ok = element_keeps_nan(op, param, ops, k, e, base, n);
    return ok;
}

/* ---- every row --------------------------------------------------------------------------------- */
static void every_row_has_a_sampler(void)
{
    for (int op = TG_OP_NONE + 1; op < TG_OP_COUNT; op++)
        if (!tg_op_samplers[op].fn) {
            printf("  %s has no sampler: add its row to fuzz/op_samples.c\n", tg__op_table[op].name);
            CHECK(tg_op_samplers[op].fn != NULL);
        }
}

static void every_float_op_keeps_nan(void)
{
    int rows = 0;
    for (int op = TG_OP_NONE + 1; op < TG_OP_COUNT; op++) {
        if (!tg_op_samplers[op].fn || !tg_op_samplers[op].nan_operands)
            continue;
        rows++;
        for (int p = 0; p < N_PARAMS; p++)
            CHECK(row_keeps_nan((tg_op_kind)op, PARAMS[p]));
    }
    printf("  %d rows, %d attribute choices each\n", rows, N_PARAMS);
    CHECK(rows > 60);
}

/* ---- the kernels the sampled shapes may miss: long vectorised runs, fused relu ---------------------- */
static void long_runs_keep_nan(void)
{
    tg_scope *s = tg_scope_begin();
    enum { LEN = 4099 };
    static double v[LEN];
    for (int i = 0; i < LEN; i++)
        v[i] = i % 3 ? 1.5 : -1.5;
    v[17] = v[4097] = NAN;
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(LEN), v), *xf = tg_cast(x, TG_F32);
    tg_tensor *outs[] = {
        tg_relu(x),
        tg_relu(xf),
        tg_leaky_relu(xf, 0.2),
        tg_elu(xf, 1.0),
        tg_clip_by_value(xf, -1, 1),
        tg_maximum(xf, tg_scalar_like(xf, 0)),
        tg_minimum(xf, tg_scalar_like(xf, 0)),
        tg_bias_add_act(tg_reshape(xf, TG_SHAPE(LEN, 1)), tg_zeros(TG_F32, TG_SHAPE(1)), TG_BIAS_RELU)};
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
        double o[LEN];
        CHECK(outs[k] && tg_copy_out_f64(outs[k], o, LEN) == 0);
        CHECK(isnan(o[17]) && isnan(o[4097]) && !isnan(o[18]));
    }
    tg_reduce_opts all = {0};
    CHECK(isnan(tg_item(tg_max_at(TG_LOC, xf, all))) && isnan(tg_item(tg_min_at(TG_LOC, xf, all))));
    CHECK(isnan(tg_item(tg_sum_at(TG_LOC, x, all))));
    tg_scope_end(s);
}

/* ---- the rows whose NaN behaviour differs, as documented -------------------------------------------- */
static void comparisons_with_nan_are_false(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(3), NAN, 1, NAN), *b = tg_from_f32(TG_SHAPE(3), 1, NAN, NAN);
    CHECK_VALUES(tg_cast(tg_equal(a, b), TG_F32), 0, 0, 0, 0);
    CHECK_VALUES(tg_cast(tg_not_equal(a, b), TG_F32), 0, 1, 1, 1);
    CHECK_VALUES(tg_cast(tg_greater(a, b), TG_F32), 0, 0, 0, 0);
    CHECK_VALUES(tg_cast(tg_greater_equal(a, b), TG_F32), 0, 0, 0, 0);
    CHECK_VALUES(tg_cast(tg_less(a, b), TG_F32), 0, 0, 0, 0);
    CHECK_VALUES(tg_cast(tg_less_equal(a, b), TG_F32), 0, 0, 0, 0);
    tg_scope_end(s);
}

/* numpy's rule: the first NaN is both the largest and the smallest. */
static void argmax_and_argmin_pick_the_first_nan(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 4), 1, NAN, 3, NAN, -1, 5, 2, 0);
    CHECK_VALUES(tg_argmax(x, 1), 0, 1, 1);
    CHECK_VALUES(tg_argmin(x, 1), 0, 1, 0);
    CHECK_VALUES(tg_argmax(tg_cast(x, TG_F32), -1), 0, 1, 1);
    tg_scope_end(s);
}

static void cast_and_check_numerics_on_nan(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(2), NAN, 2.5);
    double f[2];
    CHECK(tg_copy_out_f64(tg_cast(x, TG_F32), f, 2) == 0 && isnan(f[0]) && f[1] == 2.5);
    CHECK_VALUES(tg_cast(x, TG_I32), 0, 0, 2); /* NaN to an integer: 0 (C leaves it undefined) */
    CHECK_VALUES(tg_cast(x, TG_I64), 0, 0, 2);
    CHECK_VALUES(tg_cast(tg_cast(x, TG_BOOL), TG_F32), 0, 1, 1); /* non-zero: true */
    EXPECT_ERROR(tg_check_numerics(x, "x") == NULL, "NaN");
    tg_clear_error();
    tg_scope_end(s);
}

/* The gradient of relu at a NaN input is 0, as TF's ReluGrad (the NaN output reaches the
 * loss, whose gradient is NaN anyway); max pooling's is 0 for the NaN's window. */
static void relu_gradient_at_nan_is_zero(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(3), NAN, 2, -1);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    tg_tensor *y = tg_relu(x);
    tg_tape_end(tape);
    double v[3];
    CHECK(tg_copy_out_f64(y, v, 3) == 0 && isnan(v[0]) && v[1] == 2 && v[2] == 0);
    CHECK_VALUES(tg_gradient(tape, y, x), 0, 0, 1, 0);
    tg_tape_free(tape);
    tg_tensor *img = tg_from_f64(TG_SHAPE(1, 2, 4, 1), NAN, 1, 5, 6, 2, 3, 7, 8);
    tape = tg_tape_begin();
    tg_watch(tape, img);
    tg_tensor *pooled = tg_max_pool2d(img);
    tg_tape_end(tape);
    CHECK(tg_copy_out_f64(pooled, v, 2) == 0 && isnan(v[0]) && v[1] == 8);
    CHECK_VALUES(tg_gradient(tape, pooled, img), 0, 0, 0, 0, 0, 0, 0, 0, 1);
    tg_tape_free(tape);
    tg_scope_end(s);
}

/* ---- the symptom: predict on a NaN row gave a confident class ------------------------------------------- */
static void predict_on_nan_gives_nan(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 3),
                                tg_dense(.units = 3, .activation = TG_SOFTMAX));
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 0.5, NAN, -1, 0.5, 0.2, -1);
    tg_tensor *p = tg_predict(m, x);
    double v[6];
    CHECK(p && tg_copy_out_f64(p, v, 6) == 0);
    CHECK(isnan(v[0]) && isnan(v[1]) && isnan(v[2]));
    CHECK(isfinite(v[3]) && isfinite(v[4]) && isfinite(v[5]));
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    RUN(every_row_has_a_sampler);
    RUN(every_float_op_keeps_nan);
    RUN(long_runs_keep_nan);
    RUN(comparisons_with_nan_are_false);
    RUN(argmax_and_argmin_pick_the_first_nan);
    RUN(cast_and_check_numerics_on_nan);
    RUN(relu_gradient_at_nan_is_zero);
    RUN(predict_on_nan_gives_nan);
    return TEST_SUMMARY();
}
