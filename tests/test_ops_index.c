/* Index moves (src/ops/index.c): tile, reverse, roll. Forward values and gradients against
 * PyTorch's (tests/fixtures/index_golden.txt), TF's documented examples, float64 finite
 * differences to second order, float32 vs float64, every dtype, and every error message. */
#include "gradcheck.h"
#include "index_golden.h"

/* ---- golden values ------------------------------------------------------------------------ */
static tg_tensor *tile_2_1(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(2, 1)); }
static tg_tensor *tile_2_3(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(2, 3)); }
static tg_tensor *tile_1_2_1(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(1, 2, 1)); }
static tg_tensor *reverse_0(const tg_tensor *x) { return tg_reverse(x, TG_AXES(0)); }
static tg_tensor *reverse_1_2(const tg_tensor *x) { return tg_reverse(x, TG_AXES(-1, 1)); }
static tg_tensor *roll_1_a1(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(1), TG_AXES(1)); }
static tg_tensor *roll_m1_5_a2_0(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(-1, 5), TG_AXES(2, 0)); }
static tg_tensor *roll_2_2_a1_1(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(2, 2), TG_AXES(1, -2)); }

typedef tg_tensor *(*unary_fn)(const tg_tensor *x);
static const struct { const char *name; unary_fn f; } CASES[] = {
    {"tile_2_1", tile_2_1}, {"tile_2_3", tile_2_3}, {"tile_1_2_1", tile_1_2_1},
    {"reverse_0", reverse_0}, {"reverse_1_2", reverse_1_2},
    {"roll_1_a1", roll_1_a1}, {"roll_m1_5_a2_0", roll_m1_5_a2_0}, {"roll_2_2_a1_1", roll_2_2_a1_1},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

static void test_golden(void)
{
    for (int k = 0; k < N_CASES; k++)
        /* moves are exact; tile's gradient sums up to 6 copies, in another order than PyTorch */
        if (!golden_case(CASES[k].name, CASES[k].f, true, strncmp(CASES[k].name, "tile", 4) ? 0 : 1e-15)) {
            printf("  in case %s\n", CASES[k].name);
            CHECK(false);
        }
}

/* ---- TF's documented examples ---------------------------------------------------------------- */
static void test_tf_doc_examples(void)
{
    tg_scope *s = tg_scope_begin();
    /* tf.tile: a = [[1, 2, 3], [4, 5, 6]]; tile(a, [1, 2]); tile(a, [2, 1]) */
    tg_tensor *a = tg_from_i32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    tg_tensor *t12 = tg_tile(a, TG_SHAPE(1, 2));
    CHECK(t12 && tg_dtype_of(t12) == TG_I32 && tg_dim(t12, 0) == 2 && tg_dim(t12, 1) == 6);
    CHECK_VALUES(t12, 0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6);
    CHECK_VALUES(tg_tile(a, TG_SHAPE(2, 1)), 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(tg_tile(a, TG_SHAPE(2, 2)), 0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5,
                 6);
    /* tf.reverse: t = [[[[ 0, 1, 2, 3], [ 4, 5, 6, 7], [ 8, 9, 10, 11]],
     *                   [[12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]]]], dims [3] and [1] */
    tg_tensor *t = tg_reshape(tg_arange(TG_I64, 0, 24, 1), TG_SHAPE(1, 2, 3, 4));
    CHECK_VALUES(tg_reverse(t, TG_AXES(3)), 0, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16,
                 23, 22, 21, 20);
    CHECK_VALUES(tg_reverse(t, TG_AXES(1)), 0, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7,
                 8, 9, 10, 11);
    CHECK_VALUES(tg_reverse(t, TG_AXES(2)), 0, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 20, 21, 22, 23, 16, 17, 18, 19,
                 12, 13, 14, 15);
    /* tf.roll: [0..4] by 2 -> [3, 4, 0, 1, 2]; [[0..4], [5..9]] by [1, -2] on [0, 1] ->
     * [[7, 8, 9, 5, 6], [2, 3, 4, 0, 1]]; by [2, -3] on [1, 1] -> [[1, 2, 3, 4, 0], [6, 7, 8, 9, 5]] */
    CHECK_VALUES(tg_roll(tg_arange(TG_I32, 0, 5, 1), TG_SHAPE(2), TG_AXES(0)), 0, 3, 4, 0, 1, 2);
    tg_tensor *m = tg_reshape(tg_arange(TG_F32, 0, 10, 1), TG_SHAPE(2, 5));
    CHECK_VALUES(tg_roll(m, TG_SHAPE(1, -2), TG_AXES(0, 1)), 0, 7, 8, 9, 5, 6, 2, 3, 4, 0, 1);
    CHECK_VALUES(tg_roll(m, TG_SHAPE(2, -3), TG_AXES(1, 1)), 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 5);
    tg_scope_end(s);
}

/* Every dtype moves as bytes; empty and scalar cases. */
static void test_dtypes_and_edges(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *b = tg_cast(tg_from_i32(TG_SHAPE(2, 2), 1, 0, 0, 1), TG_BOOL);
    tg_tensor *rb = tg_reverse(b, TG_AXES(1));
    CHECK(rb && tg_dtype_of(rb) == TG_BOOL);
    CHECK_VALUES(tg_cast(rb, TG_I32), 0, 0, 1, 1, 0);
    CHECK_VALUES(tg_cast(tg_tile(b, TG_SHAPE(1, 2)), TG_I32), 0, 1, 0, 1, 0, 0, 1, 0, 1);
    CHECK_VALUES(tg_roll(tg_from_i64(TG_SHAPE(3), 1, 2, 3), TG_SHAPE(-4), TG_AXES(0)), 0, 2, 3, 1);
    CHECK_VALUES(tg_roll(tg_from_f64(TG_SHAPE(3), 1, 2, 3), TG_SHAPE(300000000000LL), TG_AXES(0)), 0, 1, 2, 3);
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(tg_reverse(x, (tg_axes){0}), 0, 1, 2, 3, 4, 5, 6);   /* no axes: unchanged */
    tg_tensor *z = tg_tile(x, TG_SHAPE(0, 2));
    CHECK(z && tg_size(z) == 0 && tg_dim(z, 0) == 0 && tg_dim(z, 1) == 6);
    tg_tensor *sc = tg_tile(tg_scalar_of(TG_F64, 2.5), TG_SCALAR_SHAPE);
    CHECK(sc && tg_rank(sc) == 0 && tg_item(sc) == 2.5);
    tg_tensor *e = tg_roll(tg_zeros(TG_F64, TG_SHAPE(0, 2)), TG_SHAPE(1), TG_AXES(0));
    CHECK(e && tg_size(e) == 0);
    tg_scope_end(s);
}

/* ---- gradients ------------------------------------------------------------------------------------ */
static tg_tensor *call_unary(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    return ((unary_fn)user)(xs[0]);
}

/* The first gradient of sum(f(x)^2 * w): gradcheck of it checks second order (the square
 * makes the second derivative depend on the rule's adjoint of the adjoint). */
static tg_tensor *first_gradient(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, xs[0]);
    tg_tensor *y = ((unary_fn)user)(xs[0]);
    tg_tensor *loss = y ? tg_sum(tg_mul(tg_square(y), gc_weights(y, 77))) : NULL;
    tg_tape_end(inner);
    tg_tensor *g = loss ? tg_gradient(inner, loss, xs[0]) : NULL;
    tg_tape_free(inner);
    return g;
}

static tg_tensor *tile_big(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(2, 1, 3, 1, 2)); }
static tg_tensor *reverse_all(const tg_tensor *x) { return tg_reverse(x, TG_AXES(0, 1, 2, 3, 4)); }
static tg_tensor *roll_many(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(1, -1, 2, 7), TG_AXES(0, 4, 2, 3)); }

static void test_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x3 = gc_input(21, TG_SHAPE(2, 3, 4), -1.5, 1.5), *x2 = gc_input(22, TG_SHAPE(2, 3), -1.5, 1.5);
    tg_tensor *x5 = gc_input(23, TG_SHAPE(2, 1, 3, 2, 2), -1.5, 1.5);
    struct { const char *name; unary_fn f; tg_tensor *x; } cases[] = {
        {"tile (2, 1)", tile_2_1, x2}, {"tile (2, 3)", tile_2_3, x2}, {"tile (1, 2, 1)", tile_1_2_1, x3},
        {"tile, rank 5", tile_big, x5}, {"reverse 0", reverse_0, x3}, {"reverse (-1, 1)", reverse_1_2, x3},
        {"reverse every axis", reverse_all, x5}, {"roll 1 on 1", roll_1_a1, x3},
        {"roll (-1, 5) on (2, 0)", roll_m1_5_a2_0, x3}, {"roll of four axes", roll_many, x5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tensor *in[1] = {cases[k].x};
        if (!gradcheck(cases[k].name, call_unary, in, 1, (void *)cases[k].f, 1e-6, 1e-8) ||
            !gradcheck(cases[k].name, first_gradient, in, 1, (void *)cases[k].f, 1e-6, 1e-7) ||
            !f32_matches_f64(cases[k].name, call_unary, in, 1, (void *)cases[k].f, 1e-7)) {
            printf("  in case %s\n", cases[k].name);
            CHECK(false);
        }
    }
    tg_scope_end(s);
}

/* ---- errors --------------------------------------------------------------------------------------- */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    CHECK(tg_tile(x, TG_SHAPE(2)) == NULL);
    CHECK_ERROR("tg_tile: multiples has 1 entries, but x (shape (2, 3)) has rank 2");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_tile(x, TG_SHAPE(1, -2)) == NULL);
    CHECK_ERROR("tg_tile: multiples[1] is -2; each must be >= 0");
    CHECK(tg_tile(x, TG_SHAPE(1, INT64_MAX / 2)) == NULL);
    CHECK_ERROR("tg_tile: axis 1 of 3 elements times");
    CHECK(tg_reverse(x, TG_AXES(2)) == NULL);
    CHECK_ERROR("tg_reverse: axis 2 is out of range for a tensor of rank 2");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_reverse(x, TG_AXES(1, -1)) == NULL);
    CHECK_ERROR("tg_reverse: axis 1 is named twice");
    CHECK(tg_reverse(tg_scalar_of(TG_F32, 1), (tg_axes){0}) == NULL);
    CHECK_ERROR("tg_reverse: `x` is a scalar");
    CHECK(tg_roll(x, TG_SHAPE(1, 2), TG_AXES(0)) == NULL);
    CHECK_ERROR("tg_roll: 2 shifts and 1 axes; give one shift per axis");
    CHECK(tg_roll(x, TG_SHAPE(1), TG_AXES(-3)) == NULL);
    CHECK_ERROR("tg_roll: axis -3 is out of range for a tensor of rank 2");
    CHECK(tg_roll(x, TG_SCALAR_SHAPE, (tg_axes){0}) == NULL);
    CHECK_ERROR("tg_roll: 0 shifts and 0 axes");
    CHECK(tg_roll(NULL, TG_SHAPE(1), TG_AXES(0)) == NULL);
    CHECK_ERROR("tg_roll");
    tg_clear_error();
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_golden);
    RUN(test_tf_doc_examples);
    RUN(test_dtypes_and_edges);
    RUN(test_gradients);
    RUN(test_errors);
    return TEST_SUMMARY();
}
