/* Matmul: forward values by hand and against a naive loop, broadcasting batch dims,
 * gradients by hand (one summed over broadcast batch dims), and errors. Finite differences for every transpose combination and
 * broadcast batch, float32 against float64 and second order are the op table test's
 * (tests/test_op_table.c). */
#include "gradcheck.h"

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

int main(void)
{
    RUN(test_forward_by_hand);
    RUN(test_empty_inner_dim);
    RUN(test_forward_against_naive);
    RUN(test_gradient_by_hand);
    RUN(test_gradient_broadcast_batch);
    RUN(test_tensordot);
    RUN(test_errors);
    return TEST_SUMMARY();
}
