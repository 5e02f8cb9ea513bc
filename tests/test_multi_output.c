/* Ops with several outputs (tf.split, tf.unstack): the values and shapes of TF's
 * documented examples, gradients when only some outputs reach the target (TF's rules get
 * zeros for the others), float64 finite differences to second order, and the errors. */
#include "check.h"
#include "gradcheck.h"

static tg_tensor *iota(tg_dtype dtype, tg_shape shape)
{
    int64_t size = 1;
    for (int i = 0; i < shape.rank; i++)
        size *= shape.dims[i];
    return tg_reshape(tg_arange(dtype, 0, (double)size, 1), shape);
}

static void check_shape(const tg_tensor *t, tg_shape want)
{
    tg_shape s = t ? tg_shape_of(t) : (tg_shape){.rank = -1};
    CHECK(s.rank == want.rank);
    for (int i = 0; i < want.rank && s.rank == want.rank; i++)
        CHECK(s.dims[i] == want.dims[i]);
}

/* tf.split's docstring: x of shape [5, 30] split into [4, 15, 11] along 1 gives [5, 4],
 * [5, 15], [5, 11]; into 3 equal pieces, [5, 10] each. */
static void test_split_shapes_from_tf_docs(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = iota(TG_F32, TG_SHAPE(5, 30)), *out[3];
    CHECK(tg_split(x, 3, out, .axis = 1, .sizes = (int64_t[]){4, 15, 11}) == 0);
    check_shape(out[0], TG_SHAPE(5, 4));
    check_shape(out[1], TG_SHAPE(5, 15));
    check_shape(out[2], TG_SHAPE(5, 11));
    CHECK(tg_split(x, 3, out, .axis = 1) == 0);
    for (int k = 0; k < 3; k++)
        check_shape(out[k], TG_SHAPE(5, 10));
    CHECK(tg_split(x, 3, out, .axis = -1, .sizes = (int64_t[]){4, -1, 11}) == 0); /* -1: what is left */
    check_shape(out[1], TG_SHAPE(5, 15));
    tg_scope_end(s);
}

static void test_split_values(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = iota(TG_F64, TG_SHAPE(2, 6)), *out[3];
    CHECK(tg_split(x, 3, out, .axis = 1) == 0);
    CHECK_VALUES(out[0], 0, 0, 1, 6, 7);
    CHECK_VALUES(out[1], 0, 2, 3, 8, 9);
    CHECK_VALUES(out[2], 0, 4, 5, 10, 11);
    CHECK(tg_split(x, 2, out, .sizes = (int64_t[]){1, 1}) == 0);
    CHECK_VALUES(out[1], 0, 6, 7, 8, 9, 10, 11);
    CHECK(tg_split(x, 3, out, .axis = 1, .sizes = (int64_t[]){0, 6, 0}) == 0); /* empty pieces */
    check_shape(out[0], TG_SHAPE(2, 0));
    CHECK_VALUES(out[1], 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    tg_tensor *ints = iota(TG_I32, TG_SHAPE(4)); /* every dtype: split moves bytes */
    CHECK(tg_split(ints, 2, out) == 0 && tg_dtype_of(out[1]) == TG_I32);
    CHECK_VALUES(out[1], 0, 2, 3);
    tg_scope_end(s);
}

/* tf.unstack's docstring: x of shape (A, B, C, D) unstacked along axis 0 gives A tensors
 * of shape (B, C, D); along axis 1, B of shape (A, C, D). */
static void test_unstack(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = iota(TG_F64, TG_SHAPE(2, 3, 4, 5)), *out[3];
    CHECK(tg_unstack(x, 2, out, 0) == 0);
    check_shape(out[1], TG_SHAPE(3, 4, 5));
    CHECK(tg_unstack(x, 3, out, 1) == 0);
    check_shape(out[2], TG_SHAPE(2, 4, 5));
    tg_tensor *m = iota(TG_F64, TG_SHAPE(2, 3));
    CHECK(tg_unstack(m, 3, out, -1) == 0); /* columns */
    CHECK_VALUES(out[0], 0, 0, 3);
    CHECK_VALUES(out[2], 0, 2, 5);
    tg_scope_end(s);
}

/* Only out[1] reaches the target: x's gradient is zero outside its piece, as TF's
 * _SplitGrad fills the other pieces with zeros. */
static void test_gradient_of_one_piece(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_variable(iota(TG_F64, TG_SHAPE(2, 6)), .name = "x"), *out[3];
    tg_tape *tape = tg_tape_begin();
    CHECK(tg_split(x, 3, out, .axis = 1) == 0);
    tg_tensor *y = tg_sum(tg_mul(out[1], out[1]));
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, y, x);
    CHECK_VALUES(g, 0, 0, 0, 4, 6, 0, 0, 0, 0, 16, 18, 0, 0); /* 2 * x on columns 2 and 3 */
    tg_tape_free(tape);

    tape = tg_tape_begin();
    tg_tensor *rows[2];
    CHECK(tg_unstack(x, 2, rows, 0) == 0);
    y = tg_sum(tg_mul(rows[0], tg_scalar_of(TG_F64, 3.0)));
    tg_tape_end(tape);
    g = tg_gradient(tape, y, x);
    CHECK_VALUES(g, 0, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0);
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_variable_free(x);
}

/* Every piece used differently and non-linearly, so each output's gradient matters. */
static tg_tensor *pieces_mixed(tg_tensor *const *xs, int n, void *user)
{
    (void)n, (void)user;
    tg_tensor *p[3], *r[4];
    if (tg_split(xs[0], 3, p, .axis = 1, .sizes = (int64_t[]){1, -1, 2}) != 0 || tg_unstack(xs[0], 4, r, 0) != 0)
        return NULL;
    tg_tensor *a = tg_mul(tg_mul(p[0], p[0]), tg_sum(p[1], .axes = TG_AXES(1), .keepdims = true));
    tg_tensor *b = tg_tanh(p[2]);
    tg_tensor *parts[] = {tg_reshape(a, TG_SHAPE(-1)), tg_reshape(b, TG_SHAPE(-1)), tg_mul(r[3], tg_exp(r[1]))};
    return tg_concat(parts, 3, 0);
}

/* The gradient of pieces_mixed, taken on a tape: its own gradient is the second order. */
static tg_tensor *pieces_mixed_gradient(tg_tensor *const *xs, int n, void *user)
{
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, xs[0]);
    tg_tensor *y = tg_sum(tg_square(pieces_mixed(xs, n, user)));
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, y, xs[0]);
    tg_tape_free(tape);
    return g;
}

static void test_gradients_match_finite_differences(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = gc_input(7, TG_SHAPE(4, 6), -1.0, 1.0);
    CHECK(gradcheck("split/unstack", pieces_mixed, &x, 1, NULL, 1e-6, 1e-7));
    CHECK(gradcheck("split/unstack, second order", pieces_mixed_gradient, &x, 1, NULL, 1e-6, 1e-6));
    CHECK(f32_matches_f64("split/unstack", pieces_mixed, &x, 1, NULL, 1e-6));
    tg_scope_end(s);
}

/* A source whose only path runs through a piece the target never uses: the diagnosis
 * names it as unconnected and points at the user's line. */
static void test_diagnosis_through_pieces(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = iota(TG_F64, TG_SHAPE(4)), *w = tg_variable(tg_scalar_of(TG_F64, 2.0), .name = "w"), *out[2];
    tg_tape *tape = tg_tape_begin(.persistent = true);
    CHECK(tg_split(tg_mul(x, w), 2, out) == 0);
    tg_tensor *unused = tg_mul(out[0], w), *y = tg_sum(tg_reshape(x, TG_SHAPE(2, 2)));
    (void)unused;
    tg_tape_end(tape);
    CHECK(tg_gradient(tape, y, w) == NULL && !tg_has_error());
    tg_diagnosis d;
    CHECK(tg_explain(tape, y, w, &d) == 0);
    CHECK(d.cause == TG_CAUSE_UNCONNECTED);
    CHECK(d.where.file && strstr(d.where.file, "test_multi_output.c"));
    tg_tape_free(tape);
    tg_scope_end(s);
    tg_variable_free(w);
}

typedef struct error_case {
    const char *what;
    int (*call)(tg_tensor *x, tg_tensor **out);
    const char *message;
} error_case;

static int not_divisible(tg_tensor *x, tg_tensor **out) { return tg_split(x, 4, out, .axis = 1); }
static int sizes_short(tg_tensor *x, tg_tensor **out)
{
    return tg_split(x, 2, out, .axis = 1, .sizes = (int64_t[]){2, 3});
}
static int sizes_long(tg_tensor *x, tg_tensor **out)
{
    return tg_split(x, 2, out, .axis = 1, .sizes = (int64_t[]){7, -1});
}
static int two_rests(tg_tensor *x, tg_tensor **out)
{
    return tg_split(x, 2, out, .axis = 1, .sizes = (int64_t[]){-1, -1});
}
static int negative(tg_tensor *x, tg_tensor **out)
{
    return tg_split(x, 2, out, .axis = 1, .sizes = (int64_t[]){-2, 8});
}
static int bad_axis(tg_tensor *x, tg_tensor **out) { return tg_split(x, 2, out, .axis = 2); }
static int no_array(tg_tensor *x, tg_tensor **out) { return (void)out, tg_split(x, 2, NULL); }
static int zero_pieces(tg_tensor *x, tg_tensor **out) { return tg_split(x, 0, out); }
static int scalar(tg_tensor *x, tg_tensor **out) { return (void)x, tg_split(tg_scalar(1.0), 1, out); }
static int wrong_num(tg_tensor *x, tg_tensor **out) { return tg_unstack(x, 3, out, 1); }
static int null_x(tg_tensor *x, tg_tensor **out) { return (void)x, tg_unstack(NULL, 2, out, 0); }

static void test_errors(void)
{
    static const error_case cases[] = {
        {"axis not divisible", not_divisible, "axis 1 of x (shape (2, 6)) has 6 elements, which do not split into 4"},
        {"sizes short", sizes_short, "add up to 5, but axis 1 of x has 6 elements"},
        {"sizes long", sizes_long, "add up to more than 6, but axis 1 of x has 6 elements"},
        {"two -1", two_rests, "sizes[0] and sizes[1] are both -1"},
        {"negative size", negative, "sizes[0] is -2"},
        {"axis", bad_axis, "axis 2"},
        {"no array", no_array, "an array `out` of n tensors"},
        {"n = 0", zero_pieces, "needs n >= 1"},
        {"scalar", scalar, "cannot split a scalar"},
        {"unstack num", wrong_num, "has 6 slices along axis 1, but n is 3"},
        {"NULL x", null_x, "`x` is NULL"},
    };
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = iota(TG_F32, TG_SHAPE(2, 6));
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_tensor *out[4] = {x, x, x, x};
        tg_clear_error();
        int rc = cases[i].call(x, out);
        if (rc != -1 || !tg_last_error() || !strstr(tg_last_error(), cases[i].message) ||
            !strstr(tg_last_error(), "test_multi_output.c:")) {
            printf("  case \"%s\": rc %d, error \"%s\", expected \"%s\" at this file's line\n", cases[i].what, rc,
                   tg_last_error() ? tg_last_error() : "(none)", cases[i].message);
            check_failures_in_test++;
        }
        if (cases[i].call != no_array && cases[i].call != zero_pieces)
            CHECK(out[0] == NULL); /* a failed call leaves no stale outputs */
    }
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_split_shapes_from_tf_docs);
    RUN(test_split_values);
    RUN(test_unstack);
    RUN(test_gradient_of_one_piece);
    RUN(test_gradients_match_finite_differences);
    RUN(test_diagnosis_through_pieces);
    RUN(test_errors);
    return TEST_SUMMARY();
}
