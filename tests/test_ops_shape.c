/* Shape ops: forward values, gradient values by hand (first and second order), storage
 * sharing of reshape, and every error path. Finite differences and float32 against
 * float64 are the op table test's (tests/test_op_table.c). */
#include "check.h"
#include "tensor/tensor_impl.h"

/* ---- forward values ---------------------------------------------------------------------- */
static void test_reshape_forward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_arange(TG_F32, 0, 6, 1);
    tg_tensor *r = tg_reshape(x, TG_SHAPE(3, -1));
    CHECK(tg_rank(r) == 2 && tg_dim(r, 0) == 3 && tg_dim(r, 1) == 2);
    CHECK_VALUES(r, 0, 0, 1, 2, 3, 4, 5);
    tg_tensor *i = tg_reshape(tg_from_i32(TG_SHAPE(2, 2), 7, 8, 9, 10), TG_SHAPE(-1));
    CHECK(tg_dtype_of(i) == TG_I32 && tg_rank(i) == 1 && tg_dim(i, 0) == 4);
    CHECK_VALUES(i, 0, 7, 8, 9, 10);
    tg_tensor *sc = tg_reshape(tg_from_f64(TG_SHAPE(1, 1), 2.5), TG_SCALAR_SHAPE);
    CHECK(tg_rank(sc) == 0 && tg_item(sc) == 2.5);
    tg_tensor *e = tg_expand_dims(x, -1);
    CHECK(tg_rank(e) == 2 && tg_dim(e, 0) == 6 && tg_dim(e, 1) == 1);
    tg_tensor *e0 = tg_expand_dims(x, 0);
    CHECK(tg_rank(e0) == 2 && tg_dim(e0, 0) == 1 && tg_dim(e0, 1) == 6);
    tg_tensor *q = tg_squeeze(tg_reshape(x, TG_SHAPE(1, 2, 1, 3)), (tg_axes){0});
    CHECK(tg_rank(q) == 2 && tg_dim(q, 0) == 2 && tg_dim(q, 1) == 3);
    tg_tensor *q2 = tg_squeeze(tg_reshape(x, TG_SHAPE(1, 2, 1, 3)), TG_AXES(-2));
    CHECK(tg_rank(q2) == 3 && tg_dim(q2, 0) == 1 && tg_dim(q2, 1) == 2 && tg_dim(q2, 2) == 3);
    CHECK_VALUES(q2, 0, 0, 1, 2, 3, 4, 5);
    tg_scope_end(s);
}

static void test_reshape_shares_storage(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    tg_tensor *r = tg_reshape(x, TG_SHAPE(3, 2));
    CHECK(r && r->data == x->data);
    tg_tensor *e = tg_expand_dims(x, 1);
    CHECK(e && e->data == x->data);

    tg_tensor *v = tg_variable(x);
    tg_tensor *rv = tg_reshape(v, TG_SHAPE(6));
    tg_tensor *ev = tg_expand_dims(v, 0);
    CHECK(rv && rv->data != v->data && ev && ev->data != v->data);
    /* the same under a recording tape, where the tape reads the variable as a snapshot */
    tg_tape *tape = tg_tape_begin();
    tg_tensor *rt = tg_reshape(v, TG_SHAPE(3, 2));
    tg_tape_end(tape);
    CHECK(rt && rt->data != v->data);
    CHECK(tg_assign(v, tg_zeros(TG_F32, TG_SHAPE(2, 3))) == 0);
    CHECK_VALUES(rv, 0, 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(ev, 0, 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(rt, 0, 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(tg_reshape(v, TG_SHAPE(6)), 0, 0, 0, 0, 0, 0, 0);
    tg_tape_free(tape);
    tg_variable_free(v);
    tg_scope_end(s);
}

static void test_transpose_forward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    tg_tensor *t = tg_transpose(x, (tg_axes){0});
    CHECK(tg_dim(t, 0) == 3 && tg_dim(t, 1) == 2);
    CHECK_VALUES(t, 0, 1, 4, 2, 5, 3, 6);
    CHECK_VALUES(tg_transpose(x, TG_AXES(-1, 0)), 0, 1, 4, 2, 5, 3, 6);
    CHECK_VALUES(tg_transpose(x, TG_AXES(0, 1)), 0, 1, 2, 3, 4, 5, 6);
    /* (2, 2, 2): out[i][j][k] = x[j][k][i] for perm (2, 0, 1) */
    tg_tensor *y = tg_from_i64(TG_SHAPE(2, 2, 2), 0, 1, 2, 3, 4, 5, 6, 7);
    tg_tensor *ty = tg_transpose(y, TG_AXES(2, 0, 1));
    CHECK(tg_dtype_of(ty) == TG_I64);
    CHECK_VALUES(ty, 0, 0, 2, 4, 6, 1, 3, 5, 7);
    tg_tensor *b = tg_transpose(tg_cast(tg_from_i32(TG_SHAPE(2, 2), 1, 0, 0, 0), TG_BOOL), (tg_axes){0});
    CHECK(tg_dtype_of(b) == TG_BOOL);
    CHECK_VALUES(b, 0, 1, 0, 0, 0);
    tg_scope_end(s);
}

/* Transpose and slice of a 4-d tensor against index arithmetic done here. */
static void test_strided_copy_4d(void)
{
    tg_scope *s = tg_scope_begin();
    enum { A = 3, B = 4, C = 5, D = 2 };
    tg_tensor *x = tg_reshape(tg_arange(TG_F64, 0, A * B * C * D, 1), TG_SHAPE(A, B, C, D));
    tg_tensor *t = tg_transpose(x, TG_AXES(3, 1, 0, 2)); /* shape (D, B, A, C) */
    double got[A * B * C * D];
    CHECK(tg_dim(t, 0) == D && tg_dim(t, 1) == B && tg_dim(t, 2) == A && tg_dim(t, 3) == C);
    CHECK(tg_copy_out_f64(t, got, A * B * C * D) == 0);
    int bad = 0;
    for (int d = 0; d < D; d++)
        for (int b = 0; b < B; b++)
            for (int a = 0; a < A; a++)
                for (int c = 0; c < C; c++)
                    bad += got[((d * B + b) * A + a) * C + c] != ((a * B + b) * C + c) * D + d;
    CHECK(bad == 0);
    /* a slice whose two inner axes are whole, so the copy merges them */
    tg_tensor *sl = tg_slice(x, TG_SHAPE(1, 1, 0, 0), TG_SHAPE(2, 2, -1, -1));
    CHECK(tg_copy_out_f64(sl, got, 2 * 2 * C * D) == 0);
    bad = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < C; c++)
                for (int d = 0; d < D; d++)
                    bad += got[((a * 2 + b) * C + c) * D + d] != (((a + 1) * B + b + 1) * C + c) * D + d;
    CHECK(bad == 0);
    /* pad then slice back gives x again */
    tg_tensor *p = tg_pad(x, TG_SHAPE(0, 2, 1, 0), TG_SHAPE(1, 0, 3, 1), -1.0);
    tg_tensor *back = tg_slice(p, TG_SHAPE(0, 2, 1, 0), TG_SHAPE(A, B, C, D));
    double want[A * B * C * D];
    tg_copy_out_f64(x, want, A * B * C * D);
    CHECK(tg_copy_out_f64(back, got, A * B * C * D) == 0 && memcmp(got, want, sizeof got) == 0);
    CHECK_NEAR(tg_item(tg_sum(p)), (A * B * C * D - 1) * (A * B * C * D) / 2.0 - (double)(tg_size(p) - A * B * C * D),
               1e-12);
    tg_scope_end(s);
}

static void test_broadcast_to_forward(void)
{
    tg_scope *s = tg_scope_begin();
    CHECK_VALUES(tg_broadcast_to(tg_from_f32(TG_SHAPE(2, 1), 1, 2), TG_SHAPE(2, 3)), 0, 1, 1, 1, 2, 2, 2);
    CHECK_VALUES(tg_broadcast_to(tg_from_i32(TG_SHAPE(3), 1, 2, 3), TG_SHAPE(2, 3)), 0, 1, 2, 3, 1, 2, 3);
    tg_tensor *b = tg_broadcast_to(tg_scalar_of(TG_F64, 4), TG_SHAPE(2, 2));
    CHECK(tg_rank(b) == 2);
    CHECK_VALUES(b, 0, 4, 4, 4, 4);
    CHECK_VALUES(tg_broadcast_to(tg_from_f32(TG_SHAPE(1, 2), 5, 6), TG_SHAPE(2, 2, 2)), 0, 5, 6, 5, 6, 5, 6, 5, 6);
    tg_scope_end(s);
}

static void test_concat_stack_forward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), *b = tg_from_f32(TG_SHAPE(2, 1), 5, 6);
    tg_tensor *c = tg_from_f32(TG_SHAPE(1, 2), 7, 8);
    tg_tensor *ab = tg_concat(((tg_tensor *[]){a, b}), 2, 1);
    CHECK(tg_dim(ab, 0) == 2 && tg_dim(ab, 1) == 3);
    CHECK_VALUES(ab, 0, 1, 2, 5, 3, 4, 6);
    CHECK_VALUES(tg_concat(((tg_tensor *[]){a, b, b}), 3, -1), 0, 1, 2, 5, 5, 3, 4, 6, 6);
    tg_tensor *ac = tg_concat(((tg_tensor *[]){a, c}), 2, 0);
    CHECK(tg_dim(ac, 0) == 3 && tg_dim(ac, 1) == 2);
    CHECK_VALUES(ac, 0, 1, 2, 3, 4, 7, 8);
    tg_tensor *p = tg_from_i64(TG_SHAPE(2), 1, 2), *q = tg_from_i64(TG_SHAPE(2), 3, 4);
    tg_tensor *s0 = tg_stack(((tg_tensor *[]){p, q}), 2, 0);
    CHECK(tg_dtype_of(s0) == TG_I64 && tg_dim(s0, 0) == 2 && tg_dim(s0, 1) == 2);
    CHECK_VALUES(s0, 0, 1, 2, 3, 4);
    tg_tensor *s1 = tg_stack(((tg_tensor *[]){p, q, p}), 3, -1);
    CHECK(tg_dim(s1, 0) == 2 && tg_dim(s1, 1) == 3);
    CHECK_VALUES(s1, 0, 1, 3, 1, 2, 4, 2);
    tg_tensor *sc = tg_stack(((tg_tensor *[]){tg_scalar(1), tg_scalar(2)}), 2, 0);
    CHECK(tg_rank(sc) == 1);
    CHECK_VALUES(sc, 0, 1, 2);
    tg_scope_end(s);
}

static void test_slice_pad_forward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_arange(TG_F32, 0, 12, 1), TG_SHAPE(3, 4));
    tg_tensor *sl = tg_slice(x, TG_SHAPE(1, 1), TG_SHAPE(-1, 2));
    CHECK(tg_dim(sl, 0) == 2 && tg_dim(sl, 1) == 2);
    CHECK_VALUES(sl, 0, 5, 6, 9, 10);
    CHECK_VALUES(tg_slice(x, TG_SHAPE(2, 3), TG_SHAPE(1, 1)), 0, 11);
    CHECK(tg_size(tg_slice(x, TG_SHAPE(3, 0), TG_SHAPE(-1, -1))) == 0);
    tg_tensor *p = tg_pad(tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), TG_SHAPE(1, 0), TG_SHAPE(0, 1), 9);
    CHECK(tg_dim(p, 0) == 3 && tg_dim(p, 1) == 3);
    CHECK_VALUES(p, 0, 9, 9, 9, 1, 2, 9, 3, 4, 9);
    tg_tensor *pi = tg_pad(tg_from_i32(TG_SHAPE(2), 5, 6), TG_SHAPE(2), TG_SHAPE(1), -3);
    CHECK(tg_dtype_of(pi) == TG_I32);
    CHECK_VALUES(pi, 0, -3, -3, 5, 6, -3);
    CHECK_VALUES(tg_pad(tg_from_f64(TG_SHAPE(1), 2), TG_SHAPE(1), TG_SHAPE(1), 0), 0, 0, 2, 0);
    tg_scope_end(s);
}

static void test_gather_scatter_one_hot_forward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *params = tg_from_f32(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    tg_tensor *g0 = tg_gather(params, tg_from_i32(TG_SHAPE(3), 2, 0, 2), 0);
    CHECK(tg_dim(g0, 0) == 3 && tg_dim(g0, 1) == 2);
    CHECK_VALUES(g0, 0, 5, 6, 1, 2, 5, 6);
    tg_tensor *g1 = tg_gather(params, tg_from_i64(TG_SHAPE(1, 2), 1, 0), -1);
    CHECK(tg_rank(g1) == 3 && tg_dim(g1, 0) == 3 && tg_dim(g1, 1) == 1 && tg_dim(g1, 2) == 2);
    CHECK_VALUES(g1, 0, 2, 1, 4, 3, 6, 5);
    tg_tensor *g2 = tg_gather(params, tg_from_i32(TG_SCALAR_SHAPE, 1), 0);
    CHECK(tg_rank(g2) == 1);
    CHECK_VALUES(g2, 0, 3, 4);

    tg_tensor *sa = tg_scatter_add(tg_from_i32(TG_SHAPE(3), 0, 2, 0), tg_from_f32(TG_SHAPE(3, 2), 1, 1, 2, 2, 3, 3),
                                   TG_SHAPE(3, 2), 0);
    CHECK(tg_dtype_of(sa) == TG_F32);
    CHECK_VALUES(sa, 0, 4, 4, 0, 0, 2, 2);
    tg_tensor *si =
        tg_scatter_add(tg_from_i64(TG_SHAPE(2), 1, 1), tg_from_i32(TG_SHAPE(2, 2), 1, 2, 3, 4), TG_SHAPE(2, 3), 1);
    CHECK(tg_dtype_of(si) == TG_I32);
    CHECK_VALUES(si, 0, 0, 3, 0, 0, 7, 0);

    tg_tensor *oh = tg_one_hot(tg_from_i32(TG_SHAPE(4), 0, 2, -1, 3), 3);
    CHECK(tg_dtype_of(oh) == TG_F32 && tg_dim(oh, 0) == 4 && tg_dim(oh, 1) == 3);
    CHECK_VALUES(oh, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0);
    tg_tensor *oh2 = tg_one_hot(tg_from_i64(TG_SHAPE(2, 1), 1, 0), 2);
    CHECK(tg_rank(oh2) == 3 && tg_dim(oh2, 2) == 2);
    CHECK_VALUES(oh2, 0, 0, 1, 1, 0);
    tg_scope_end(s);
}

/* ---- gradients (finite differences and float32: tests/test_op_table.c) --------------------- */
static void test_grad_gather_counts(void)
{
    tg_scope *s = tg_scope_begin();
    /* the gradient of sum(gather(x, [0, 2, 0, 0])) counts how often each row was picked */
    tg_tensor *x = tg_from_f64(TG_SHAPE(4), 1, 2, 3, 4);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    tg_tensor *y = tg_sum(tg_gather(x, tg_from_i32(TG_SHAPE(4), 0, 2, 0, 0), 0));
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, y, x), 0, 3, 0, 1, 0);
    tg_tape_free(tape);

    tg_scope_end(s);
}

/* Backward rules are built from ops, so a second tape differentiates them: for
 * y = sum(gather(x, i)^2) the gradient is 2 * scatter_add(x[i]), whose own gradient
 * w.r.t. x, summed, counts 2 * picks per element. */
static void test_second_order_gather(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(3), 1, 2, 3);
    tg_tensor *idx = tg_from_i32(TG_SHAPE(3), 2, 2, 0);
    tg_tape *outer = tg_tape_begin();
    tg_watch(outer, x);
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    tg_tensor *y = tg_sum(tg_square(tg_gather(x, idx, 0)));
    tg_tape_end(inner);
    tg_tensor *dx = tg_gradient(inner, y, x);
    CHECK_VALUES(dx, 1e-12, 2, 0, 12);
    tg_tensor *z = tg_sum(dx);
    tg_tape_end(outer);
    CHECK_VALUES(tg_gradient(outer, z, x), 1e-12, 2, 0, 4);
    tg_tape_free(inner);
    tg_tape_free(outer);
    tg_scope_end(s);
}

/* one_hot inside a recorded expression: the gradient flows to the other operand only. */
static void test_one_hot_in_tape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *i = tg_from_i32(TG_SHAPE(2), 1, 1);
    tg_tensor *x = tg_from_f32(TG_SHAPE(2), 1, 2);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    tg_tensor *y = tg_sum(tg_mul(tg_one_hot(i, 2), x));
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, y, x), 0, 0, 2); /* the column sums of the one-hot rows */
    tg_tape_free(tape);
    tg_scope_end(s);
}

/* ---- errors ------------------------------------------------------------------------------------ */
static void test_errors_reshape_transpose_broadcast(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_reshape(x, TG_SHAPE(4, 2)) == NULL,
                 "cannot reshape a tensor of shape (2, 3) (6 elements) into shape (4, 2)");
    EXPECT_ERROR(tg_reshape(x, TG_SHAPE(4, -1)) == NULL, "into shape (4, -1)");
    EXPECT_ERROR(tg_reshape(x, TG_SHAPE(-1, 3, -1)) == NULL, "more than one -1");
    EXPECT_ERROR(tg_reshape(x, TG_SHAPE(-2, -3)) == NULL, "negative size on axis 0");
    EXPECT_ERROR(tg_reshape(tg_zeros(TG_F32, TG_SHAPE(0, 3)), TG_SHAPE(0, -1)) == NULL, "cannot infer the -1 axis");
    tg_clear_error();
    EXPECT_ERROR(tg_reshape(NULL, TG_SHAPE(2)) == NULL, "is NULL");

    EXPECT_ERROR(tg_expand_dims(x, 3) == NULL, "tg_expand_dims: axis 3 is out of range [-3, 2]");
    EXPECT_ERROR(tg_squeeze(tg_zeros(TG_F32, TG_SHAPE(1, 3)), TG_AXES(1)) == NULL,
                 "only axes of size 1 can be squeezed");
    EXPECT_ERROR(tg_squeeze(x, TG_AXES(2)) == NULL, "tg_squeeze: axis 2 is out of range");

    EXPECT_ERROR(tg_transpose(x, TG_AXES(0, 0)) == NULL, "tg_transpose: perm (0, 0) is not a permutation");
    EXPECT_ERROR(tg_transpose(x, TG_AXES(1, 0, 2)) == NULL, "is not a permutation of the 2 axes");
    EXPECT_ERROR(tg_transpose(x, TG_AXES(0, 2)) == NULL, "not a permutation");

    EXPECT_ERROR(tg_broadcast_to(x, TG_SHAPE(3, 3)) == NULL,
                 "tg_broadcast_to: shape (2, 3) cannot be broadcast to (3, 3)");
    EXPECT_ERROR(tg_broadcast_to(x, TG_SHAPE(3)) == NULL, "cannot be broadcast to (3,)");
    tg_scope_end(s);
}

static void test_errors_concat_stack(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_zeros(TG_F32, TG_SHAPE(2, 3)), *b = tg_zeros(TG_F32, TG_SHAPE(3, 3));
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){a, b}), 2, 1) == NULL,
                 "tg_concat: input 1 has shape (3, 3) but input 0 has shape (2, 3)");
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){a, tg_zeros(TG_F32, TG_SHAPE(2, 3, 1))}), 2, 0) == NULL,
                 "all dimensions except the concat axis 0 must match");
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){a, tg_zeros(TG_F64, TG_SHAPE(2, 3))}), 2, 0) == NULL,
                 "cannot mix float32 and float64");
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){a, b}), 2, 2) == NULL, "axis 2 is out of range");
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){tg_scalar(1), tg_scalar(2)}), 2, 0) == NULL, "cannot concatenate scalars");
    EXPECT_ERROR(tg_concat(NULL, 2, 0) == NULL, "tg_concat: needs at least one tensor");
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){a}), 0, 0) == NULL, "n = 0");
    tg_clear_error();
    EXPECT_ERROR(tg_concat(((tg_tensor *[]){a, NULL}), 2, 0) == NULL, "is NULL");

    EXPECT_ERROR(tg_stack(((tg_tensor *[]){a, b}), 2, 0) == NULL,
                 "tg_stack: input 1 has shape (3, 3) but input 0 has shape (2, 3)");
    EXPECT_ERROR(tg_stack(((tg_tensor *[]){a, a}), 2, 3) == NULL, "tg_stack: axis 3 is out of range [-3, 2]");
    EXPECT_ERROR(tg_stack(((tg_tensor *[]){a, a}), 2, -4) == NULL, "axis -4 is out of range");
    tg_scope_end(s);
}

static void test_errors_slice_pad(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(3, 0), TG_SHAPE(1, 1)) == NULL,
                 "tg_slice: begin 3 on axis 0 is out of range [0, 2]");
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(0, 1), TG_SHAPE(1, 3)) == NULL,
                 "on axis 1, begin 1 + size 3 runs past the end of x of shape (2, 3)");
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(-1, 0), TG_SHAPE(1, 1)) == NULL, "begin -1 on axis 0 is out of range");
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(0, 0), TG_SHAPE(1, -2)) == NULL, "size -2");
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(0), TG_SHAPE(1)) == NULL, "begin and size have 1 entries but x has shape (2, 3)");
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(0, 0), TG_SHAPE(1)) == NULL, "`begin` has rank 2 and `size` has rank 1");

    EXPECT_ERROR(tg_pad(x, TG_SHAPE(0, -1), TG_SHAPE(1, 1), 0) == NULL,
                 "tg_pad: negative padding on axis 1 (before -1, after 1)");
    EXPECT_ERROR(tg_pad(x, TG_SHAPE(1), TG_SHAPE(1), 0) == NULL, "before and after have 1 entries");
    tg_scope_end(s);
}

/* Huge sizes from the user: a clear error naming the op, never a wrapped value (UBSan
 * sees any signed overflow in the size arithmetic). */
static void test_errors_size_overflow(void)
{
    tg_scope *sc = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(4), 1, 2, 3, 4);
    tg_clear_error();
    EXPECT_ERROR(tg_slice(x, TG_SHAPE(2), TG_SHAPE(INT64_MAX)) == NULL,
                 "tg_slice: on axis 0, begin 2 + size 9223372036854775807 runs past the end");
    tg_clear_error();
    EXPECT_ERROR(tg_pad(x, TG_SHAPE(1), TG_SHAPE(INT64_MAX), 0.0) == NULL, "tg_pad");
    CHECK_ERROR("too large");
    /* a zero-size tensor with a huge axis: its strides would overflow */
    tg_clear_error();
    EXPECT_ERROR(tg_zeros(TG_F32, TG_SHAPE(0, (int64_t)1 << 40, (int64_t)1 << 40)) == NULL, "test_ops_shape.c");
    CHECK_ERROR("too large");
    tg_clear_error();
    tg_tensor *wide = tg_zeros(TG_F32, TG_SHAPE(0, (int64_t)1 << 58));
    CHECK(wide != NULL);
    tg_tensor *parts[32];
    for (int i = 0; i < 32; i++)
        parts[i] = wide;
    EXPECT_ERROR(tg_concat(parts, 32, 1) == NULL, "tg_concat");
    CHECK_ERROR("too large");
    /* a layer's input shape whose element count does not fit */
    tg_clear_error();
    tg_model *m =
        tg_sequential(tg_flatten(.input_shape = TG_SHAPE((int64_t)1 << 40, (int64_t)1 << 40)), tg_dense(.units = 2));
    EXPECT_ERROR(m == NULL, "too large");
    tg_model_free(m);
    tg_clear_error();
    /* SAME with a stride past the image: one output row, ceil(4 / stride) */
    tg_tensor *p = tg_max_pool2d(tg_zeros(TG_F32, TG_SHAPE(1, 4, 4, 1)), .pool_size = {2, 2}, .strides = {INT64_MAX, 1},
                                 .padding = TG_PADDING_SAME);
    CHECK(p && tg_dim(p, 1) == 1 && tg_dim(p, 2) == 4);
    /* a window whose patch length kh*kw*c overflows */
    tg_clear_error();
    CHECK(tg_extract_patches(tg_zeros(TG_F32, TG_SHAPE(1, 4, 4, 1)), (int64_t)1 << 40, (int64_t)1 << 40, 1, 1,
                             TG_PADDING_SAME) == NULL);
    CHECK_ERROR("too large");
    tg_scope_end(sc);
}

static void test_errors_gather_scatter_one_hot(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *p = tg_zeros(TG_F32, TG_SHAPE(3, 2));
    EXPECT_ERROR(tg_gather(p, tg_from_i32(TG_SHAPE(2), 0, 5), 0) == NULL,
                 "tg_gather: indices[1] = 5 is out of range [0, 3) for axis 0 of params of shape (3, 2)");
    EXPECT_ERROR(tg_gather(p, tg_from_i64(TG_SHAPE(1), -1), 1) == NULL,
                 "indices[0] = -1 is out of range [0, 2) for axis 1");
    EXPECT_ERROR(tg_gather(p, tg_from_f32(TG_SHAPE(1), 0), 0) == NULL,
                 "tg_gather: `indices` must be int32 or int64, not float32");
    EXPECT_ERROR(tg_gather(p, tg_from_i32(TG_SHAPE(1), 0), 2) == NULL, "axis 2 is out of range");
    EXPECT_ERROR(tg_gather(tg_scalar(1), tg_from_i32(TG_SHAPE(1), 0), 0) == NULL, "`params` must have rank >= 1");

    tg_tensor *idx = tg_from_i32(TG_SHAPE(2), 0, 3);
    EXPECT_ERROR(tg_scatter_add(idx, tg_zeros(TG_F32, TG_SHAPE(2, 2)), TG_SHAPE(3, 2), 0) == NULL,
                 "tg_scatter_add: indices[1] = 3 is out of range [0, 3)");
    EXPECT_ERROR(tg_scatter_add(idx, tg_zeros(TG_F32, TG_SHAPE(2, 3)), TG_SHAPE(4, 2), 0) == NULL,
                 "updates have shape (2, 3) but indices into axis 0 of shape (4, 2) need updates of shape (2, 2)");
    EXPECT_ERROR(tg_scatter_add(tg_from_f64(TG_SHAPE(1), 0), tg_zeros(TG_F32, TG_SHAPE(1)), TG_SHAPE(2), 0) == NULL,
                 "must be int32 or int64, not float64");

    EXPECT_ERROR(tg_one_hot(tg_from_f32(TG_SHAPE(2), 0, 1), 3) == NULL, "tg_one_hot: `indices` must be int32 or int64");
    EXPECT_ERROR(tg_one_hot(tg_from_i32(TG_SHAPE(2), 0, 1), -1) == NULL, "depth must be >= 0");
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_reshape_forward);
    RUN(test_reshape_shares_storage);
    RUN(test_transpose_forward);
    RUN(test_strided_copy_4d);
    RUN(test_broadcast_to_forward);
    RUN(test_concat_stack_forward);
    RUN(test_slice_pad_forward);
    RUN(test_gather_scatter_one_hot_forward);
    RUN(test_grad_gather_counts);
    RUN(test_second_order_gather);
    RUN(test_one_hot_in_tape);
    RUN(test_errors_reshape_transpose_broadcast);
    RUN(test_errors_concat_stack);
    RUN(test_errors_slice_pad);
    RUN(test_errors_gather_scatter_one_hot);
    RUN(test_errors_size_overflow);
    return TEST_SUMMARY();
}
