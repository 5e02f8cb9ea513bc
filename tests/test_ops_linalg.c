/* Matmul: forward values by hand and against a naive loop, broadcasting batch dims,
 * gradients by hand (one summed over broadcast batch dims), and errors. Finite differences for every transpose combination and
 * broadcast batch, float32 against float64 and second order are the op table test's
 * (tests/test_op_table.c). */
#include "gradcheck.h"

#define INDEX_GOLDEN_PATH TG_FIXTURES_DIR "/linalg_golden.txt"
#include "index_golden.h"

/* Naive product of a [..., m, k] and b [..., k, n] (before any transpose flag), with
 * numpy broadcasting of the batch dims, compared with tg_matmul's result. */
static bool matches_naive(const tg_tensor *a, const tg_tensor *b, bool ta, bool tb, const tg_tensor *c, double tol)
{
    tg_shape sa = tg_shape_of(a), sb = tg_shape_of(b), sc = tg_shape_of(c);
    int ra = sa.rank, rb = sb.rank, rc = sc.rank;
    int64_t m = sc.dims[rc - 2], n = sc.dims[rc - 1], k = ta ? sa.dims[ra - 2] : sa.dims[ra - 1];
    int64_t na = tg_size(a), nb = tg_size(b), ncount = tg_size(c);
    double *va = malloc(sizeof(double) * (size_t)na), *vb = malloc(sizeof(double) * (size_t)nb);
    double *vc = malloc(sizeof(double) * (size_t)ncount);
    tg_copy_out_f64(a, va, na);
    tg_copy_out_f64(b, vb, nb);
    tg_copy_out_f64(c, vc, ncount);
    bool ok = true;
    for (int64_t bi = 0; bi < ncount / (m * n) && ok; bi++) {
        /* Batch coordinates of the output, mapped to a and b (size-1 dims repeat). */
        int64_t rem = bi, oa = 0, ob = 0, stra = 1, strb = 1;
        for (int d = rc - 3; d >= 0; d--) {
            int64_t coord = rem % sc.dims[d];
            rem /= sc.dims[d];
            int da = d - (rc - ra), db = d - (rc - rb);
            if (da >= 0) {
                oa += (sa.dims[da] == 1 ? 0 : coord) * stra;
                stra *= sa.dims[da];
            }
            if (db >= 0) {
                ob += (sb.dims[db] == 1 ? 0 : coord) * strb;
                strb *= sb.dims[db];
            }
        }
        const double *A = va + oa * sa.dims[ra - 2] * sa.dims[ra - 1], *B = vb + ob * sb.dims[rb - 2] * sb.dims[rb - 1];
        int64_t lda = sa.dims[ra - 1], ldb = sb.dims[rb - 1];
        for (int64_t i = 0; i < m && ok; i++)
            for (int64_t j = 0; j < n && ok; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += (ta ? A[p * lda + i] : A[i * lda + p]) * (tb ? B[j * ldb + p] : B[p * ldb + j]);
                double got = vc[bi * m * n + i * n + j];
                if (!(fabs(got - s) <= tol * (1 + fabs(s)))) {
                    printf("  matmul batch %lld [%lld,%lld] = %.10g, naive %.10g\n", (long long)bi, (long long)i,
                           (long long)j, got, s);
                    ok = false;
                }
            }
    }
    free(va), free(vb), free(vc);
    return ok;
}

static void test_forward_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), *b = tg_from_f32(TG_SHAPE(2, 2), 5, 6, 7, 8);
    CHECK_VALUES(tg_matmul(a, b), 0, 19, 22, 43, 50);
    CHECK_VALUES(tg_matmul(a, b, .transpose_a = true), 0, 26, 30, 38, 44);
    CHECK_VALUES(tg_matmul(a, b, .transpose_b = true), 0, 17, 23, 39, 53);
    CHECK_VALUES(tg_matmul(a, b, .transpose_a = true, .transpose_b = true), 0, 23, 31, 34, 46);
    /* (2, 3) x (3, 1) */
    tg_tensor *r = tg_matmul(tg_from_f64(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6), tg_from_f64(TG_SHAPE(3, 1), 1, 0, -1));
    CHECK_VALUES(r, 0, -2, -2);
    tg_shape rs = tg_shape_of(r);
    CHECK(rs.rank == 2 && rs.dims[0] == 2 && rs.dims[1] == 1);
    CHECK(tg_dtype_of(r) == TG_F64);
    /* A batch of two against one matrix: [[1,2],[3,4]] and the identity, times b. */
    tg_tensor *batch = tg_from_f32(TG_SHAPE(2, 2, 2), 1, 2, 3, 4, 1, 0, 0, 1);
    CHECK_VALUES(tg_matmul(batch, b), 0, 19, 22, 43, 50, 5, 6, 7, 8);
    CHECK_VALUES(tg_matmul(b, batch), 0, 23, 34, 31, 46, 5, 6, 7, 8);
    tg_scope_end(s);
}

/* Empty inner dimension: the product is zeros, as in TF. */
static void test_empty_inner_dim(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *r = tg_matmul(tg_zeros(TG_F32, TG_SHAPE(2, 0)), tg_zeros(TG_F32, TG_SHAPE(0, 3)));
    CHECK_VALUES(r, 0, 0, 0, 0, 0, 0, 0);
    tg_tensor *e = tg_matmul(tg_ones(TG_F64, TG_SHAPE(0, 4)), tg_ones(TG_F64, TG_SHAPE(4, 3)));
    CHECK(e && tg_size(e) == 0);
    tg_scope_end(s);
}

/* Larger, broadcast and transposed cases against the naive loop, both dtypes. */
static void test_forward_against_naive(void)
{
    const struct {
        tg_shape a, b;
        bool ta, tb;
    } cases[] = {
        {TG_SHAPE(70, 80), TG_SHAPE(80, 90), false, false},
        {TG_SHAPE(80, 70), TG_SHAPE(90, 80), true, true},
        {TG_SHAPE(2, 3, 4), TG_SHAPE(4, 5), false, false},
        {TG_SHAPE(2, 4, 3), TG_SHAPE(4, 5), true, false},
        {TG_SHAPE(2, 1, 3, 4), TG_SHAPE(3, 4, 2), false, false},
        {TG_SHAPE(2, 1, 4, 3), TG_SHAPE(3, 2, 4), true, true},
        {TG_SHAPE(3, 4), TG_SHAPE(2, 2, 5, 4), false, true},
        {TG_SHAPE(1, 3, 4), TG_SHAPE(2, 1, 4, 6), false, false},
        {TG_SHAPE(2, 1, 1, 3, 4), TG_SHAPE(3, 1, 4, 2), false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *a = gc_input(10 + i, cases[i].a, -1, 1), *b = gc_input(20 + i, cases[i].b, -1, 1);
        tg_tensor *c64 = tg_matmul(a, b, .transpose_a = cases[i].ta, .transpose_b = cases[i].tb);
        tg_tensor *c32 =
            tg_matmul(tg_cast(a, TG_F32), tg_cast(b, TG_F32), .transpose_a = cases[i].ta, .transpose_b = cases[i].tb);
        CHECK(c64 && c32);
        if (c64 && c32) {
            CHECK(matches_naive(a, b, cases[i].ta, cases[i].tb, c64, 1e-12));
            CHECK(matches_naive(a, b, cases[i].ta, cases[i].tb, c32, 1e-5));
        }
        tg_scope_end(s);
    }
    /* The output shape of a broadcast batch. */
    tg_scope *s = tg_scope_begin();
    tg_shape o = tg_shape_of(tg_matmul(tg_zeros(TG_F32, TG_SHAPE(2, 1, 3, 4)), tg_zeros(TG_F32, TG_SHAPE(3, 4, 2))));
    CHECK(o.rank == 4 && o.dims[0] == 2 && o.dims[1] == 3 && o.dims[2] == 3 && o.dims[3] == 2);
    tg_scope_end(s);
}

/* d/dA sum(A B) = ones B^T, by hand. */
static void test_gradient_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 4), *b = tg_from_f64(TG_SHAPE(2, 2), 5, 6, 7, 8);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, a);
    tg_watch(t, b);
    tg_tensor *y = tg_sum(tg_matmul(a, b));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, y, a), 0, 11, 15, 11, 15);
    CHECK_VALUES(tg_gradient(t, y, b), 0, 4, 4, 6, 6);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* Broadcast batch dims: each gradient is summed back over the batch axes its input was
 * broadcast along, to the input's own shape (size-1 batch axes kept). a [2,1,2] x b [2,3]
 * and x b [1,2,3]: d/db sum(a b) [p][j] = sum over the batch of a[.][0][p]. */
static void test_gradient_broadcast_batch(void)
{
    const tg_shape bshapes[] = {TG_SHAPE(2, 3), TG_SHAPE(1, 2, 3)};
    for (size_t i = 0; i < sizeof bshapes / sizeof bshapes[0]; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *a = tg_from_f64(TG_SHAPE(2, 1, 2), 1, 2, 3, 4);
        tg_tensor *b = tg_reshape(tg_from_f64(TG_SHAPE(6), 1, 2, 3, 4, 5, 6), bshapes[i]);
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_watch(t, a);
        tg_watch(t, b);
        tg_tensor *y = tg_sum(tg_matmul(a, b));
        tg_tape_end(t);
        CHECK_TENSOR(tg_gradient(t, y, a), TG_SHAPE(2, 1, 2), 0, 6, 15, 6, 15);
        CHECK_TENSOR(tg_gradient(t, y, b), bshapes[i], 0, 4, 4, 4, 6, 6, 6);
        tg_tape_free(t);
        tg_scope_end(s);
    }
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *m23 = tg_zeros(TG_F32, TG_SHAPE(2, 3)), *m45 = tg_zeros(TG_F32, TG_SHAPE(4, 5));
    tg_tensor *v3 = tg_zeros(TG_F32, TG_SHAPE(3));
    EXPECT_ERROR(tg_matmul(m23, v3) == NULL, "tg_matmul: `b` has rank 1 (shape (3,)); both inputs need rank >= 2");
    EXPECT_ERROR(tg_matmul(v3, m23) == NULL, "tg_matmul: `a` has rank 1");
    CHECK(tg_matmul(m23, m45) == NULL);
    CHECK_ERROR("tg_matmul: inner dimensions differ: a (2, 3) with transpose_a=false has k=3, "
                "b (4, 5) with transpose_b=false has k=4");
    EXPECT_ERROR(tg_matmul(m23, m45, .transpose_a = true, .transpose_b = true) == NULL,
                 "a (2, 3) with transpose_a=true has k=2, b (4, 5) with transpose_b=true has k=5");
    CHECK(tg_matmul(tg_zeros(TG_F32, TG_SHAPE(2, 2, 3)), tg_zeros(TG_F32, TG_SHAPE(3, 3, 4))) == NULL);
    CHECK_ERROR("tg_matmul: the batch dims (all but the last two) of a (2, 2, 3) and b (3, 3, 4) cannot be "
                "broadcast together");
    EXPECT_ERROR(tg_matmul(m23, tg_zeros(TG_F64, TG_SHAPE(3, 2))) == NULL, "tg_matmul: cannot mix float32 and float64");
    EXPECT_ERROR(tg_matmul(tg_from_i32(TG_SHAPE(1, 1), 1), tg_from_i32(TG_SHAPE(1, 1), 2)) == NULL,
                 "tg_matmul: `a` must be float32 or float64, not int32");
    tg_clear_error();
    EXPECT_ERROR(tg_matmul(NULL, m23) == NULL, "tg_matmul: `a` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_matmul(m23, NULL) == NULL, "tg_matmul: `b` is NULL");
    tg_scope_end(s);
}

/* tf.tensordot by hand: axes as an int (2, 1, 0) and as two lists; a contraction over a
 * [2,3,4] . [4,3,5] pair against tg_matmul of the reshaped operands; errors. */
static void test_tensordot(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 4), *b = tg_from_f64(TG_SHAPE(2, 2), 5, 6, 7, 8);
    CHECK_TENSOR(tg_tensordot(a, b, .n = 1), TG_SHAPE(2, 2), 0, 19, 22, 43, 50);
    CHECK_TENSOR(tg_tensordot(a, b, .n = 2), TG_SHAPE(), 0, 70);
    CHECK_TENSOR(tg_tensordot(a, b), TG_SHAPE(2, 2, 2, 2), 0, 5, 6, 7, 8, 10, 12, 14, 16, 15, 18, 21, 24, 20, 24, 28,
                 32);
    CHECK_TENSOR(tg_tensordot(a, b, .axes_a = TG_AXES(0), .axes_b = TG_AXES(0)), TG_SHAPE(2, 2), 0, 26, 30, 38, 44);
    CHECK_TENSOR(tg_tensordot(a, b, .axes_a = TG_AXES(-1), .axes_b = TG_AXES(1)), TG_SHAPE(2, 2), 0, 17, 23, 39, 53);
    /* [2,3,4] with [4,3,5] over (1, 2) and (1, 0): the same as [2,12] x [12,5] after moving b's axes. */
    tg_tensor *x = gc_input(31, TG_SHAPE(2, 3, 4), -1, 1), *y = gc_input(32, TG_SHAPE(4, 3, 5), -1, 1);
    tg_tensor *want =
        tg_matmul(tg_reshape(x, TG_SHAPE(2, 12)), tg_reshape(tg_transpose(y, TG_AXES(1, 0, 2)), TG_SHAPE(12, 5)));
    tg_tensor *got = tg_tensordot(x, y, .axes_a = TG_AXES(1, 2), .axes_b = TG_AXES(1, 0));
    CHECK(got && want &&
          matches_naive(tg_reshape(x, TG_SHAPE(2, 12)), tg_reshape(tg_transpose(y, TG_AXES(1, 0, 2)), TG_SHAPE(12, 5)),
                        false, false, got, 1e-12));
    tg_tensor *got32 =
        tg_tensordot(tg_cast(x, TG_F32), tg_cast(y, TG_F32), .axes_a = TG_AXES(1, 2), .axes_b = TG_AXES(1, 0));
    CHECK(got32 && matches_naive(want, tg_eye(TG_F64, 5), false, false, got32, 1e-5));
    EXPECT_ERROR(tg_tensordot(a, b, .n = 3) == NULL, "tg_tensordot: axes=3, but a has rank 2 and b rank 2");
    EXPECT_ERROR(tg_tensordot(a, b, .axes_a = TG_AXES(0, 1), .axes_b = TG_AXES(0)) == NULL,
                 "tg_tensordot: 2 axes of a but 1 of b");
    EXPECT_ERROR(tg_tensordot(a, b, .axes_a = TG_AXES(0, 0), .axes_b = TG_AXES(0, 1)) == NULL,
                 "tg_tensordot: axis 0 of a (rank 2) is out of range or repeated");
    EXPECT_ERROR(tg_tensordot(x, y, .n = 2) == NULL, "tg_tensordot: axis 1 of a has size 3 but axis 0 of b has size 4");
    tg_scope_end(s);
}

/* ---- inv, det, slogdet ------------------------------------------------------------------------ */
static tg_tensor *inv1(const tg_tensor *x) { return tg_linalg_inv(x); }
static tg_tensor *det1(const tg_tensor *x) { return tg_linalg_det(x); }
static tg_tensor *diag1(const tg_tensor *x) { return tg_linalg_diag_part(x); }
static tg_tensor *logabsdet1(const tg_tensor *x)
{
    tg_tensor *out[2];
    return tg_linalg_slogdet(x, out) == 0 ? out[1] : NULL;
}

/* Values and gradients of sum(y * w) against PyTorch (tools/make_linalg_fixtures.py). */
static void test_lu_golden(void)
{
    CHECK(golden_case("inv3", inv1, true, 1e-10));
    CHECK(golden_case("inv_batch", inv1, true, 1e-10));
    CHECK(golden_case("det3", det1, true, 1e-10));
    CHECK(golden_case("det_batch", det1, true, 1e-10));
    CHECK(golden_case("det1", det1, true, 1e-10));
    CHECK(golden_case("slogdet_batch", logabsdet1, true, 1e-10));
    tg_scope *s = tg_scope_begin();
    tg_tensor *out[2];
    REQUIRE(tg_linalg_slogdet(golden("slogdet_batch.x"), out) == 0);
    CHECK(golden_matches("slogdet sign", out[0], "slogdet_batch.sign", 0));
    /* float32 in, float32 out, within float32's rounding of the float64 answer */
    tg_tensor *x32 = tg_cast(golden("inv_batch.x"), TG_F32);
    tg_tensor *inv32 = tg_linalg_inv(x32);
    CHECK(inv32 && tg_dtype_of(inv32) == TG_F32 && golden_matches("inv float32", inv32, "inv_batch.y", 1e-5));
    CHECK(golden_matches("det float32", tg_linalg_det(tg_cast(golden("det_batch.x"), TG_F32)), "det_batch.y", 1e-5));
    tg_scope_end(s);
}

/* big_matrix(64) of the fixture script: a[i][j] = sin(i * n + j + 1) + 4 [i == j]. */
static tg_tensor *big_matrix(int64_t n, tg_dtype dt)
{
    double *v = malloc(sizeof(double) * (size_t)(n * n));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            v[i * n + j] = sin((double)(i * n + j + 1)) + (i == j ? 4.0 : 0.0);
    tg_tensor *t = tg_cast(tg_tensor_from(TG_F64, TG_SHAPE(n, n), v), dt);
    free(v);
    return t;
}

/* 64 x 64, the largest size the docs promise tested: inverse and slogdet against PyTorch,
 * and A A^-1 = I. */
static void test_lu_64(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = big_matrix(64, TG_F64), *out[2];
    tg_tensor *inv = tg_linalg_inv(a);
    REQUIRE(inv && tg_linalg_slogdet(a, out) == 0);
    CHECK(golden_matches("64 sign", out[0], "big.sign", 0));
    CHECK(golden_matches("64 logabsdet", out[1], "big.logabsdet", 1e-12));
    CHECK(golden_matches("64 inv row 0", tg_reshape(tg_slice(inv, TG_SHAPE(0, 0), TG_SHAPE(1, 64)), TG_SHAPE(64)),
                         "big.inv_row0", 1e-12));
    CHECK(golden_matches("64 inv diagonal", tg_linalg_diag_part(inv), "big.inv_diag", 1e-12));
    tg_tensor *err = tg_max(tg_abs(tg_sub(tg_matmul(a, inv), tg_eye(TG_F64, 64))));
    CHECK(err && tg_item(err) < 1e-13);
    tg_tensor *d = tg_linalg_det(a);
    CHECK(d && fabs(tg_item(d) + exp(87.67349701160364)) <= 1e-9 * exp(87.67349701160364));
    /* float32: the factorisation runs in double, so only the final rounding differs */
    tg_tensor *inv32 = tg_linalg_inv(big_matrix(64, TG_F32));
    CHECK(golden_matches("64 inv float32 diagonal", tg_linalg_diag_part(inv32), "big.inv_diag", 1e-5));
    tg_scope_end(s);
}

/* Singular matrices as TF: inv refuses (naming the batch index), det 0, slogdet (0, -inf);
 * a NaN gives NaN; an empty matrix has determinant 1. */
static void test_lu_singular(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f64(TG_SHAPE(2, 2, 2), 2, 1, 1, 1, 1, 2, 2, 4); /* batch 1 is singular */
    char want[160];
    int line = __LINE__ + 1;
    tg_tensor *inv = tg_linalg_inv(a);
    snprintf(want, sizeof want, "%s:%d: ", __FILE__, line);
    EXPECT_ERROR(inv == NULL,
                 "tg_linalg_inv: input is not invertible: the 2 x 2 matrix at batch index [1] is singular");
    EXPECT_ERROR(inv == NULL, want);
    tg_clear_error();
    CHECK_VALUES(tg_linalg_det(a), 0, 1, 0);
    tg_tensor *out[2];
    REQUIRE(tg_linalg_slogdet(a, out) == 0);
    CHECK_VALUES(out[0], 0, 1, 0);
    double la[2];
    tg_copy_out_f64(out[1], la, 2);
    CHECK(fabs(la[0]) < 1e-15 && isinf(la[1]) && la[1] < 0);
    /* a zero matrix in a batch of [2,1]: the index names both axes */
    EXPECT_ERROR(tg_linalg_inv(tg_zeros(TG_F32, TG_SHAPE(2, 1, 3, 3))) == NULL, "at batch index [0, 0]");
    /* NaN in, NaN out, for that matrix only */
    tg_tensor *nan = tg_from_f64(TG_SHAPE(2, 2, 2), NAN, 1, 1, 1, 2, 0, 0, 4);
    double v[8];
    tg_copy_out_f64(tg_linalg_inv(nan), v, 8);
    CHECK(isnan(v[0]) && isnan(v[3]) && v[4] == 0.5 && v[7] == 0.25);
    tg_copy_out_f64(tg_linalg_det(nan), v, 2);
    CHECK(isnan(v[0]) && v[1] == 8);
    /* the empty matrix: det 1, as numpy and TF */
    CHECK_VALUES(tg_linalg_det(tg_zeros(TG_F64, TG_SHAPE(3, 0, 0))), 0, 1, 1, 1);
    CHECK(tg_size(tg_linalg_inv(tg_zeros(TG_F64, TG_SHAPE(0, 0)))) == 0);
    /* hand math: det [[1,2],[3,4]] = -2, inverse [[-2,1],[1.5,-0.5]] */
    tg_tensor *h = tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4);
    CHECK_VALUES(tg_linalg_det(h), 1e-6, -2);
    CHECK_VALUES(tg_linalg_inv(h), 1e-6, -2, 1, 1.5, -0.5);
    REQUIRE(tg_linalg_slogdet(h, out) == 0);
    CHECK_VALUES(out[0], 0, -1);
    CHECK_VALUES(out[1], 1e-6, log(2.0));
    tg_scope_end(s);
}

static void test_lu_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *out[2];
    EXPECT_ERROR(tg_linalg_inv(tg_zeros(TG_F32, TG_SHAPE(3))) == NULL,
                 "tg_linalg_inv: `x` has rank 1 (shape (3,)); it needs square matrices [..., n, n]");
    EXPECT_ERROR(tg_linalg_det(tg_zeros(TG_F32, TG_SHAPE(2, 2, 3))) == NULL,
                 "tg_linalg_det: `x` of shape (2, 2, 3) is not square in its last two axes (2 x 3)");
    EXPECT_ERROR(tg_linalg_slogdet(tg_zeros(TG_F64, TG_SHAPE(2, 3)), out) != 0, "tg_linalg_slogdet: `x` of shape");
    EXPECT_ERROR(tg_linalg_slogdet(tg_eye(TG_F64, 2), NULL) != 0, "needs an array `out` of 2 tensors");
    EXPECT_ERROR(tg_linalg_inv(tg_from_i32(TG_SHAPE(1, 1), 1)) == NULL, "tg_linalg_inv");
    tg_clear_error();
    EXPECT_ERROR(tg_linalg_det(NULL) == NULL, "tg_linalg_det");
    tg_clear_error();
    EXPECT_ERROR(tg_linalg_diag_part(tg_zeros(TG_F32, TG_SHAPE(3))) == NULL, "tg_linalg_diag_part: `x` has rank 1");
    tg_scope_end(s);
}

/* Inputs well away from singular: random plus 3 I. */
static tg_tensor *conditioned(uint64_t seed, tg_shape shape)
{
    tg_tensor *x = gc_input(seed, shape, -1, 1);
    return tg_add(x, tg_mul(tg_eye(TG_F64, shape.dims[shape.rank - 1]), tg_scalar_like(x, 3)));
}

/* Finite differences, first and second order (nested tapes), batched. */
static void test_lu_gradcheck(void)
{
    const gc_unary_fn fns[] = {inv1, det1, logabsdet1};
    const char *names[] = {"inv", "det", "slogdet"};
    for (int k = 0; k < 3; k++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x = conditioned(40 + (uint64_t)k, TG_SHAPE(2, 3, 3));
        CHECK(gradcheck(names[k], gc_unary, &x, 1, (void *)fns[k], 1e-6, 1e-6));
        CHECK(gradcheck(names[k], gc_unary_gradient, &x, 1, (void *)fns[k], 1e-5, 1e-5));
        tg_scope_end(s);
    }
    /* diag_part of a non-square batch, its gradient the scattered dy */
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = gc_input(45, TG_SHAPE(2, 3, 4), -1, 1);
    CHECK(gradcheck("diag_part", gc_unary, &x, 1, (void *)diag1, 1e-6, 1e-8));
    CHECK_TENSOR(tg_linalg_diag_part(tg_from_f64(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6)), TG_SHAPE(2), 0, 1, 5);
    tg_scope_end(s);
}

/* ---- tf.norm's matrix norms 1 and inf ------------------------------------------------------------ */
static tg_tensor *norm1(const tg_tensor *x) { return tg_norm(x, .ord = TG_NORM_1, .axes = TG_AXES(-2, -1)); }
static tg_tensor *norm_inf(const tg_tensor *x) { return tg_norm(x, .ord = TG_NORM_INF, .axes = TG_AXES(0, 2)); }

static void test_matrix_norms(void)
{
    CHECK(golden_case("norm1", norm1, true, 1e-12));
    CHECK(golden_case("norm_inf", norm_inf, true, 1e-12));
    tg_scope *s = tg_scope_begin();
    /* by hand: column sums 4 and 6, row sums 3 and 7 */
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 2), 1, -2, 3, 4);
    CHECK_TENSOR(tg_norm(x, .ord = TG_NORM_1, .axes = TG_AXES(0, 1)), TG_SHAPE(), 0, 6);
    CHECK_TENSOR(tg_norm(x, .ord = TG_NORM_INF, .axes = TG_AXES(0, 1), .keepdims = true), TG_SHAPE(1, 1), 0, 7);
    /* axes (1, 0): the transpose's norms */
    CHECK_TENSOR(tg_norm(x, .ord = TG_NORM_1, .axes = TG_AXES(1, 0)), TG_SHAPE(), 0, 7);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_norm(x, .ord = TG_NORM_1, .axes = TG_AXES(0, 1));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, y, x), 0, 0, -1, 0, 1); /* sign(x) in the largest column */
    tg_tape_free(t);
    tg_tensor *in[1] = {gc_input(81, TG_SHAPE(2, 3, 4), -1, 1)};
    CHECK(gradcheck("norm1", gc_unary, in, 1, (void *)norm1, 1e-6, 1e-8));
    tg_scope_end(s);
}

/* ---- einsum ------------------------------------------------------------------------------------ */
static const struct {
    const char *name, *equation;
} einsum_cases[] = {
    {"matmul", "ij,jk->ik"},
    {"implicit_matmul", "ij,jk"},
    {"batch_matmul", "bij,bjk->bik"},
    {"batch_bt", "bij,bkj->bik"},
    {"outer", "i,j->ij"},
    {"dot", "i,i->"},
    {"hadamard", "ij,ij->ij"},
    {"frobenius", "ij,ij"},
    {"transpose", "ij->ji"},
    {"implicit_transpose", "ba"},
    {"permute", "abc->cab"},
    {"diag", "ii->i"},
    {"trace", "ii->"},
    {"implicit_trace", "ii"},
    {"batch_trace", "bii->b"},
    {"batch_diag", "bii->bi"},
    {"diag_mid", "iji->j"},
    {"sum_all", "ijk->"},
    {"sum_some", "ijk->j"},
    {"sum_keep_order", "ijk->ki"},
    {"ellipsis_matmul", "...ij,...jk->...ik"},
    {"ellipsis_broadcast", "...ij,...jk->...ik"},
    {"ellipsis_implicit", "...ij,jk"},
    {"ellipsis_sum", "i...->..."},
    {"ellipsis_transpose", "...ij->...ji"},
    {"free_sum_in_operand", "ij,jk->k"},
    {"contract_all", "ij,jk->"},
    {"bilinear", "bi,ij,bj->b"},
    {"chain", "ij,jk,kl->il"},
    {"attention", "bhqd,bhkd->bhqk"},
    {"diag_times", "ii,i->i"},
    {"triple_diag", "iii->i"},
    {"diag_around_ellipsis", "i...i->..."},
    {"ellipsis_diag", "...ii->..."},
    {"ellipsis_last", "ij...,jk...->ik..."},
    {"ellipsis_only", "...,...->..."},
    {"four", "ab,bc,cd,de->ae"},
    {"reversed_out", "ij,jk->kji"},
    {"upper_case", "iJ,Jk->ik"},
    {"implicit_scalar", "Ba,aB"},
};

/* einsum_<name>: operands x0.., y, and the gradients of sum(y * w), against PyTorch. */
static bool einsum_golden(const char *name, const char *equation, tg_dtype dt, double tol)
{
    char key[96];
    tg_scope *s = tg_scope_begin();
    tg_tensor *x[GC_MAX_INPUTS];
    int n = 0;
    golden_load();
    for (; n < GC_MAX_INPUTS; n++) {
        snprintf(key, sizeof key, "einsum_%s.x%d", name, n);
        bool found = false;
        for (int i = 0; i < golden_count && !found; i++)
            found = !strcmp(golden_arrays[i].name, key);
        if (!found)
            break;
        x[n] = tg_cast(golden(key), dt);
    }
    bool ok = n > 0;
    tg_tape *tape = tg_tape_begin();
    for (int i = 0; i < n; i++)
        tg_watch(tape, x[i]);
    tg_tensor *y = tg_einsum(equation, x, n);
    snprintf(key, sizeof key, "einsum_%s.w", name);
    tg_tensor *loss = y ? tg_sum(tg_mul(y, tg_cast(golden(key), dt))) : NULL;
    tg_tape_end(tape);
    char what[160];
    snprintf(what, sizeof what, "einsum \"%s\" %s", equation, tg_dtype_name(dt));
    snprintf(key, sizeof key, "einsum_%s.y", name);
    ok = ok && golden_matches(what, y, key, tol);
    tg_tensor *g[GC_MAX_INPUTS] = {0};
    ok = ok && tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = x, .n_sources = n, .out = g) == 0;
    for (int i = 0; ok && i < n; i++) {
        snprintf(key, sizeof key, "einsum_%s.dx%d", name, i);
        ok = golden_matches(what, g[i], key, tol);
    }
    tg_tape_free(tape);
    tg_scope_end(s);
    return ok;
}

static void test_einsum_golden(void)
{
    for (size_t k = 0; k < sizeof einsum_cases / sizeof einsum_cases[0]; k++) {
        if (!einsum_golden(einsum_cases[k].name, einsum_cases[k].equation, TG_F64, 1e-12))
            check_failures_in_test++;
        if (!einsum_golden(einsum_cases[k].name, einsum_cases[k].equation, TG_F32, 1e-5))
            check_failures_in_test++;
    }
}

typedef struct einsum_call {
    const char *equation;
} einsum_call;

static tg_tensor *f_einsum(tg_tensor *const *x, int n, void *u)
{
    return tg_einsum(((einsum_call *)u)->equation, x, n);
}

/* einsum's gradient of the gradient is its composition's: finite differences. */
static tg_tensor *einsum_first_gradient(tg_tensor *const *x, int n, void *u)
{
    tg_tape *t = tg_tape_begin();
    for (int i = 0; i < n; i++)
        tg_watch(t, x[i]);
    tg_tensor *y = f_einsum(x, n, u);
    tg_tensor *loss = y ? tg_sum(tg_mul(tg_square(y), gc_weights(y, 5))) : NULL;
    tg_tape_end(t);
    tg_tensor *g[GC_MAX_INPUTS] = {0}, *flat[GC_MAX_INPUTS];
    int rc = loss ? tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = x, .n_sources = n, .out = g) : -1;
    tg_tape_free(t);
    if (rc != 0)
        return NULL;
    for (int i = 0; i < n; i++)
        flat[i] = tg_reshape(g[i], TG_SHAPE(-1));
    return n == 1 ? flat[0] : tg_concat(flat, n, 0);
}

static void test_einsum_second_order(void)
{
    const struct {
        const char *eq;
        int n;
        tg_shape s[3];
    } cases[] = {
        {"bij,bjk->bik", 2, {TG_SHAPE(2, 2, 3), TG_SHAPE(2, 3, 2)}},
        {"ii,i->i", 2, {TG_SHAPE(3, 3), TG_SHAPE(3)}},
        {"...ij,...jk->...ik", 2, {TG_SHAPE(2, 1, 2, 3), TG_SHAPE(3, 3, 2)}},
        {"bi,ij,bj->b", 3, {TG_SHAPE(2, 3), TG_SHAPE(3, 4), TG_SHAPE(2, 4)}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x[3];
        for (int i = 0; i < cases[k].n; i++)
            x[i] = gc_input(60 + 3 * k + (uint64_t)i, cases[k].s[i], -1, 1);
        einsum_call c = {cases[k].eq};
        CHECK(gradcheck(cases[k].eq, f_einsum, x, cases[k].n, &c, 1e-6, 1e-7));
        CHECK(gradcheck(cases[k].eq, einsum_first_gradient, x, cases[k].n, &c, 1e-5, 1e-6));
        tg_scope_end(s);
    }
}

/* Shapes of the results by hand, and what einsum refuses. */
static void test_einsum_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_zeros(TG_F32, TG_SHAPE(2, 3)), *b = tg_zeros(TG_F32, TG_SHAPE(4, 2)),
              *c = tg_zeros(TG_F32, TG_SHAPE(3));
    tg_tensor *ab[] = {a, b}, *aa[] = {a, a}, *one[] = {a};
    EXPECT_ERROR(tg_einsum("ij,jk->ik", ab, 2) == NULL,
                 "tg_einsum: subscript 'j' has size 3 in operand 0 (axis 1 of shape (2, 3)) but 4 in operand 1 "
                 "(axis 0 of shape (4, 2))");
    EXPECT_ERROR(tg_einsum("ij,jk->ik", one, 1) == NULL,
                 "tg_einsum: \"ij,jk->ik\" has subscripts for 2 operands, but 1 was given");
    EXPECT_ERROR(tg_einsum("ij", ab, 2) == NULL, "has subscripts for 1 operand, but 2 were given");
    EXPECT_ERROR(tg_einsum("i1->i", one, 1) == NULL, "tg_einsum: in \"i1->i\", '1' at position 1 is not a subscript");
    EXPECT_ERROR(tg_einsum("ij->i-", one, 1) == NULL, "'-' at position 5 is not a subscript");
    EXPECT_ERROR(tg_einsum("i.j->i", one, 1) == NULL, "a '.' at position 1 that is not one `...`");
    EXPECT_ERROR(tg_einsum("ijk->i", one, 1) == NULL,
                 "tg_einsum: operand 0 has rank 2, but its subscripts \"ijk\" name 3 axes");
    EXPECT_ERROR(tg_einsum("ijk...->i", one, 1) == NULL, "name at least 3 axes");
    EXPECT_ERROR(tg_einsum("ij->k", one, 1) == NULL, "the output subscript 'k' of \"ij->k\" is in no input");
    EXPECT_ERROR(tg_einsum("ij->ii", one, 1) == NULL, "the output subscript 'i' of \"ij->ii\" is repeated");
    EXPECT_ERROR(tg_einsum("ij->i->j", one, 1) == NULL, "has more than one \"->\"");
    EXPECT_ERROR(tg_einsum("ii->i", one, 1) == NULL, "subscript 'i' has size 2 in operand 0 (axis 0");
    EXPECT_ERROR(tg_einsum("...i,...i->...",
                           ((tg_tensor *[]){tg_zeros(TG_F32, TG_SHAPE(2, 3)), tg_zeros(TG_F32, TG_SHAPE(4, 3))}),
                           2) == NULL,
                 "the axes that `...` stands for cannot be broadcast together");
    EXPECT_ERROR(tg_einsum("ij,jk", ((tg_tensor *[]){a, tg_zeros(TG_F64, TG_SHAPE(3, 2))}), 2) == NULL,
                 "tg_einsum: operand 1 is float64 but operand 0 is float32; every operand needs one dtype");
    EXPECT_ERROR(tg_einsum("i,i", ((tg_tensor *[]){tg_from_i32(TG_SHAPE(1), 1), tg_from_i32(TG_SHAPE(1), 1)}), 2) ==
                     NULL,
                 "tg_einsum: operand 0 is int32; products of operands need float32 or float64");
    /* one integer operand: transposes, diagonals and sums need no product */
    CHECK_TENSOR(tg_einsum("ii", ((tg_tensor *[]){tg_from_i32(TG_SHAPE(2, 2), 1, 2, 3, 4)}), 1), TG_SHAPE(), 0, 5);
    EXPECT_ERROR(tg_einsum(NULL, one, 1) == NULL, "tg_einsum: `equation` is NULL");
    EXPECT_ERROR(tg_einsum("ij", NULL, 0) == NULL, "needs at least one operand");
    tg_clear_error();
    EXPECT_ERROR(tg_einsum("ij,ij", ((tg_tensor *[]){a, NULL}), 2) == NULL, "tg_einsum");
    tg_clear_error();
    /* shapes by hand */
    CHECK_TENSOR(tg_einsum("ij,ij->", aa, 2), TG_SHAPE(), 0, 0);
    tg_shape o = tg_shape_of(tg_einsum("i,j", ((tg_tensor *[]){c, c}), 2));
    CHECK(o.rank == 2 && o.dims[0] == 3 && o.dims[1] == 3);
    CHECK_TENSOR(tg_einsum("ii->i", ((tg_tensor *[]){tg_from_f64(TG_SHAPE(2, 2), 1, 2, 3, 4)}), 1), TG_SHAPE(2), 0, 1,
                 4);
    CHECK_TENSOR(tg_einsum(" i j -> j i ", ((tg_tensor *[]){tg_from_f64(TG_SHAPE(1, 2), 1, 2)}), 1), TG_SHAPE(2, 1), 0,
                 1, 2);
    tg_scope_end(s);
}

/* tf.tensordot against torch.tensordot: values and gradients. */
static tg_tensor *td2(tg_tensor *const *x, int n, void *u)
{
    (void)n;
    int k = *(int *)u;
    if (k == 3)
        return tg_tensordot(x[0], x[1], .axes_a = TG_AXES(2, 0), .axes_b = TG_AXES(0, 1));
    return tg_tensordot(x[0], x[1], .n = k);
}

static void test_tensordot_golden(void)
{
    const char *names[] = {"tensordot0", "tensordot1", "tensordot2", "tensordot_lists"};
    for (int k = 0; k < 4; k++) {
        tg_scope *s = tg_scope_begin();
        char key[64];
        tg_tensor *x[2];
        for (int i = 0; i < 2; i++) {
            snprintf(key, sizeof key, "%s.x%d", names[k], i);
            x[i] = golden(key);
        }
        REQUIRE(x[0] && x[1]);
        tg_tape *t = tg_tape_begin();
        tg_watch(t, x[0]);
        tg_watch(t, x[1]);
        tg_tensor *y = td2(x, 2, &k);
        snprintf(key, sizeof key, "%s.w", names[k]);
        tg_tensor *loss = y ? tg_sum(tg_mul(y, golden(key))) : NULL;
        tg_tape_end(t);
        snprintf(key, sizeof key, "%s.y", names[k]);
        CHECK(golden_matches(names[k], y, key, 1e-12));
        tg_tensor *g[2] = {0};
        CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = x, .n_sources = 2, .out = g) == 0);
        for (int i = 0; i < 2; i++) {
            snprintf(key, sizeof key, "%s.dx%d", names[k], i);
            CHECK(golden_matches(names[k], g[i], key, 1e-12));
        }
        tg_tape_free(t);
        tg_scope_end(s);
    }
}

int main(void)
{
    RUN(test_forward_by_hand);
    RUN(test_empty_inner_dim);
    RUN(test_forward_against_naive);
    RUN(test_gradient_by_hand);
    RUN(test_gradient_broadcast_batch);
    RUN(test_tensordot);
    RUN(test_errors);
    RUN(test_tensordot_golden);
    RUN(test_lu_golden);
    RUN(test_lu_64);
    RUN(test_lu_singular);
    RUN(test_lu_errors);
    RUN(test_lu_gradcheck);
    RUN(test_einsum_golden);
    RUN(test_einsum_second_order);
    RUN(test_einsum_errors);
    RUN(test_matrix_norms);
    return TEST_SUMMARY();
}
