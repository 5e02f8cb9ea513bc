/* Index moves (src/ops/index.c): tile, reverse, roll. Forward values and gradients against
 * PyTorch's (tests/fixtures/index_golden.txt), TF's documented examples, float64 finite
 * differences to second order, float32 vs float64, every dtype, and every error message. */
#include "gradcheck.h"
#include "index_golden.h"

#include <float.h>

/* ---- golden values ------------------------------------------------------------------------ */
static tg_tensor *tile_2_1(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(2, 1)); }
static tg_tensor *tile_2_3(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(2, 3)); }
static tg_tensor *tile_1_2_1(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(1, 2, 1)); }
static tg_tensor *reverse_0(const tg_tensor *x) { return tg_reverse(x, TG_AXES(0)); }
static tg_tensor *reverse_1_2(const tg_tensor *x) { return tg_reverse(x, TG_AXES(-1, 1)); }
static tg_tensor *roll_1_a1(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(1), TG_AXES(1)); }
static tg_tensor *roll_m1_5_a2_0(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(-1, 5), TG_AXES(2, 0)); }
static tg_tensor *roll_2_2_a1_1(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(2, 2), TG_AXES(1, -2)); }

static const struct {
    const char *name;
    gc_unary_fn f;
} CASES[] = {
    {"tile_2_1", tile_2_1},
    {"tile_2_3", tile_2_3},
    {"tile_1_2_1", tile_1_2_1},
    {"reverse_0", reverse_0},
    {"reverse_1_2", reverse_1_2},
    {"roll_1_a1", roll_1_a1},
    {"roll_m1_5_a2_0", roll_m1_5_a2_0},
    {"roll_2_2_a1_1", roll_2_2_a1_1},
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
    CHECK_VALUES(tg_tile(a, TG_SHAPE(2, 2)), 0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6);
    /* tf.reverse: t = [[[[ 0, 1, 2, 3], [ 4, 5, 6, 7], [ 8, 9, 10, 11]],
     *                   [[12, 13, 14, 15], [16, 17, 18, 19], [20, 21, 22, 23]]]], dims [3] and [1] */
    tg_tensor *t = tg_reshape(tg_arange(TG_I64, 0, 24, 1), TG_SHAPE(1, 2, 3, 4));
    CHECK_VALUES(tg_reverse(t, TG_AXES(3)), 0, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16, 23,
                 22, 21, 20);
    CHECK_VALUES(tg_reverse(t, TG_AXES(1)), 0, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7,
                 8, 9, 10, 11);
    CHECK_VALUES(tg_reverse(t, TG_AXES(2)), 0, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 20, 21, 22, 23, 16, 17, 18, 19, 12,
                 13, 14, 15);
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
    CHECK_VALUES(tg_reverse(x, (tg_axes){0}), 0, 1, 2, 3, 4, 5, 6); /* no axes: unchanged */
    tg_tensor *z = tg_tile(x, TG_SHAPE(0, 2));
    CHECK(z && tg_size(z) == 0 && tg_dim(z, 0) == 0 && tg_dim(z, 1) == 6);
    tg_tensor *sc = tg_tile(tg_scalar_of(TG_F64, 2.5), TG_SCALAR_SHAPE);
    CHECK(sc && tg_rank(sc) == 0 && tg_item(sc) == 2.5);
    tg_tensor *e = tg_roll(tg_zeros(TG_F64, TG_SHAPE(0, 2)), TG_SHAPE(1), TG_AXES(0));
    CHECK(e && tg_size(e) == 0);
    tg_scope_end(s);
}

/* ---- gradients ------------------------------------------------------------------------------------ */

static tg_tensor *tile_big(const tg_tensor *x) { return tg_tile(x, TG_SHAPE(2, 1, 3, 1, 2)); }
static tg_tensor *reverse_all(const tg_tensor *x) { return tg_reverse(x, TG_AXES(0, 1, 2, 3, 4)); }
static tg_tensor *roll_many(const tg_tensor *x) { return tg_roll(x, TG_SHAPE(1, -1, 2, 7), TG_AXES(0, 4, 2, 3)); }

static void test_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x3 = gc_input(21, TG_SHAPE(2, 3, 4), -1.5, 1.5), *x2 = gc_input(22, TG_SHAPE(2, 3), -1.5, 1.5);
    tg_tensor *x5 = gc_input(23, TG_SHAPE(2, 1, 3, 2, 2), -1.5, 1.5);
    struct {
        const char *name;
        gc_unary_fn f;
        tg_tensor *x;
    } cases[] = {
        {"tile (2, 1)", tile_2_1, x2},
        {"tile (2, 3)", tile_2_3, x2},
        {"tile (1, 2, 1)", tile_1_2_1, x3},
        {"tile, rank 5", tile_big, x5},
        {"reverse 0", reverse_0, x3},
        {"reverse (-1, 1)", reverse_1_2, x3},
        {"reverse every axis", reverse_all, x5},
        {"roll 1 on 1", roll_1_a1, x3},
        {"roll (-1, 5) on (2, 0)", roll_m1_5_a2_0, x3},
        {"roll of four axes", roll_many, x5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tensor *in[1] = {cases[k].x};
        if (!gradcheck(cases[k].name, gc_unary, in, 1, (void *)cases[k].f, 1e-6, 1e-8) ||
            !gradcheck(cases[k].name, gc_unary_gradient, in, 1, (void *)cases[k].f, 1e-6, 1e-7) ||
            !f32_matches_f64(cases[k].name, gc_unary, in, 1, (void *)cases[k].f, 1e-7)) {
            printf("  in case %s\n", cases[k].name);
            CHECK(false);
        }
    }
    tg_scope_end(s);
}

/* ---- mirror_pad, gather_nd, scatter_nd, segments, repeat, boolean_mask ---------------------------- */
static tg_tensor *mirror_reflect(const tg_tensor *x)
{
    return tg_mirror_pad(x, TG_SHAPE(1, 2, 0), TG_SHAPE(0, 2, 3), TG_MIRROR_REFLECT);
}
static tg_tensor *mirror_symmetric(const tg_tensor *x)
{
    return tg_mirror_pad(x, TG_SHAPE(2, 0, 4), TG_SHAPE(1, 3, 1), TG_MIRROR_SYMMETRIC);
}
static tg_tensor *gather_nd_2(const tg_tensor *x)
{
    return tg_gather_nd(x, tg_from_i32(TG_SHAPE(4, 2), 2, 1, 0, 3, 2, 1, 1, 0));
}
static tg_tensor *gather_nd_3(const tg_tensor *x)
{
    return tg_gather_nd(x, tg_from_i64(TG_SHAPE(2, 1, 3), 0, 0, 1, 2, 3, 0));
}
static tg_tensor *scatter_nd(const tg_tensor *u)
{
    return tg_scatter_nd(tg_from_i64(TG_SHAPE(4, 2), 2, 1, 0, 3, 2, 1, 1, 0), u, TG_SHAPE(3, 4, 2));
}
static tg_tensor *segment_ids(void) { return tg_from_i32(TG_SHAPE(6), 0, 2, -1, 0, 4, 2); }
static tg_tensor *segment_sum(const tg_tensor *x) { return tg_unsorted_segment_sum(x, segment_ids(), 5); }
static tg_tensor *segment_mean(const tg_tensor *x) { return tg_unsorted_segment_mean(x, segment_ids(), 5); }
static tg_tensor *segment_max(const tg_tensor *x)
{
    return tg_unsorted_segment_max(x, tg_cast(segment_ids(), TG_I64), 5);
}
static tg_tensor *segment_min(const tg_tensor *x) { return tg_unsorted_segment_min(x, segment_ids(), 5); }
static tg_tensor *segment_sqrt_n(const tg_tensor *x) { return tg_unsorted_segment_sqrt_n(x, segment_ids(), 5); }
static tg_tensor *segment_prod(const tg_tensor *x) { return tg_unsorted_segment_prod(x, segment_ids(), 5); }
static tg_tensor *repeat_a1(const tg_tensor *x) { return tg_repeat(x, tg_from_i32(TG_SHAPE(3), 2, 0, 3), 1); }
static tg_tensor *repeat_flat(const tg_tensor *x)
{
    return tg_repeat(x, tg_tensor_from(TG_I64, TG_SCALAR_SHAPE, (int64_t[]){2}), TG_AXIS_NONE);
}
static tg_tensor *boolean_mask_2d(const tg_tensor *x)
{
    return tg_boolean_mask(x, tg_cast(tg_from_i32(TG_SHAPE(3, 2), 1, 0, 1, 1, 0, 0), TG_BOOL), 0);
}
static tg_tensor *boolean_mask_axis2(const tg_tensor *x)
{
    return tg_boolean_mask(x, tg_cast(tg_from_i32(TG_SHAPE(4), 0, 1, 1, 0), TG_BOOL), -1);
}

/* Without the empty segment, whose -DBL_MAX overflows a finite difference and is
 * -FLT_MAX in float32. */
static tg_tensor *segment_max_full(const tg_tensor *x)
{
    return tg_unsorted_segment_max(x, tg_from_i32(TG_SHAPE(6), 0, 2, -1, 0, 1, 2), 3);
}
static tg_tensor *segment_min_full(const tg_tensor *x)
{
    return tg_unsorted_segment_min(x, tg_from_i64(TG_SHAPE(6), 1, 2, 0, -1, 1, 2), 3);
}

static const struct {
    const char *name;
    gc_unary_fn f;
    double tol;
} INDEXING[] = {
    {"mirror_reflect", mirror_reflect, 1e-15},
    {"mirror_symmetric", mirror_symmetric, 1e-15},
    {"gather_nd_2", gather_nd_2, 1e-15},
    {"gather_nd_3", gather_nd_3, 0},
    {"scatter_nd", scatter_nd, 1e-15},
    {"segment_sum", segment_sum, 1e-15},
    {"segment_mean", segment_mean, 1e-15},
    {"segment_max", segment_max, 0},
    {"segment_min", segment_min, 0},
    {"segment_sqrt_n", segment_sqrt_n, 1e-15},
    {"segment_prod", segment_prod, 1e-15},
    {"repeat_a1", repeat_a1, 1e-15},
    {"repeat_flat", repeat_flat, 1e-15},
    {"boolean_mask_2d", boolean_mask_2d, 0},
    {"boolean_mask_axis2", boolean_mask_axis2, 0},
};
enum { N_INDEXING = sizeof INDEXING / sizeof INDEXING[0] };

static void test_indexing_golden(void)
{
    for (int k = 0; k < N_INDEXING; k++)
        if (!golden_case(INDEXING[k].name, INDEXING[k].f, true, INDEXING[k].tol)) {
            printf("  in case %s\n", INDEXING[k].name);
            CHECK(false);
        }
}

static void test_indexing_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    for (int k = 0; k < N_INDEXING; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.x", INDEXING[k].name);
        tg_tensor *in[1] = {golden(name)};
        gc_unary_fn f = INDEXING[k].f == segment_max   ? segment_max_full
                        : INDEXING[k].f == segment_min ? segment_min_full
                                                       : INDEXING[k].f;
        if (!in[0] || !gradcheck(INDEXING[k].name, gc_unary, in, 1, (void *)f, 1e-6, 1e-8) ||
            !gradcheck(INDEXING[k].name, gc_unary_gradient, in, 1, (void *)f, 1e-6, 1e-7) ||
            !f32_matches_f64(INDEXING[k].name, gc_unary, in, 1, (void *)f, 1e-7)) {
            printf("  in case %s\n", INDEXING[k].name);
            CHECK(false);
        }
    }
    tg_scope_end(s);
}

/* gather_nd with batch_dims: the gradient puts dy back in each tuple's own batch, repeats
 * adding up (by hand), and finite differences of the first and second order. */
static tg_tensor *batch_gather(const tg_tensor *x)
{
    return tg_gather_nd(x, tg_from_i32(TG_SHAPE(2, 3, 1), 1, 0, 1, 2, 2, 0), .batch_dims = 1);
}

static void test_gather_nd_batch_dims_gradient(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *p = tg_from_f64(TG_SHAPE(2, 3, 2), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, p);
    tg_tensor *y = tg_sum(batch_gather(p));
    tg_tape_end(t);
    CHECK_TENSOR(tg_gradient(t, y, p), TG_SHAPE(2, 3, 2), 0, 1, 1, 2, 2, 0, 0, 1, 1, 0, 0, 2, 2);
    tg_tape_free(t);
    tg_tensor *in[1] = {gc_input(71, TG_SHAPE(2, 3, 2), -1, 1)};
    CHECK(gradcheck("gather_nd batch_dims", gc_unary, in, 1, (void *)batch_gather, 1e-6, 1e-8));
    CHECK(gradcheck("gather_nd batch_dims 2nd", gc_unary_gradient, in, 1, (void *)batch_gather, 1e-6, 1e-7));
    tg_scope_end(s);
}

/* TF's documented examples of tf.pad (REFLECT, SYMMETRIC), gather_nd, scatter_nd, the
 * unsorted segment ops, repeat and boolean_mask. */
static void test_indexing_tf_doc_examples(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *t = tg_from_i32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(tg_mirror_pad(t, TG_SHAPE(1, 2), TG_SHAPE(1, 2), TG_MIRROR_REFLECT), 0, 6, 5, 4, 5, 6, 5, 4, 3, 2, 1,
                 2, 3, 2, 1, 6, 5, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 2, 1);
    CHECK_VALUES(tg_mirror_pad(t, TG_SHAPE(1, 2), TG_SHAPE(1, 2), TG_MIRROR_SYMMETRIC), 0, 2, 1, 1, 2, 3, 3, 2, 2, 1, 1,
                 2, 3, 3, 2, 5, 4, 4, 5, 6, 6, 5, 5, 4, 4, 5, 6, 6, 5);
    tg_tensor *ab = tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4); /* [['a', 'b'], ['c', 'd']] */
    CHECK_VALUES(tg_gather_nd(ab, tg_from_i32(TG_SHAPE(2, 2), 0, 0, 1, 1)), 0, 1, 4);
    CHECK_VALUES(tg_gather_nd(ab, tg_from_i32(TG_SHAPE(2, 1), 1, 0)), 0, 3, 4, 1, 2);
    /* batch_dims = 1: the examples of tf.gather_nd's docs, a0 b0 c0 d0 a1 b1 c1 d1 as 1..8 */
    tg_tensor *p = tg_from_f64(TG_SHAPE(2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8);
    CHECK_TENSOR(tg_gather_nd(p, tg_from_i32(TG_SHAPE(2, 1, 1), 1, 0), .batch_dims = 1), TG_SHAPE(2, 1, 2), 0, 3, 4, 5,
                 6);
    CHECK_TENSOR(tg_gather_nd(p, tg_from_i64(TG_SHAPE(2, 2, 2), 0, 1, 1, 0, 0, 0, 1, 1), .batch_dims = 1),
                 TG_SHAPE(2, 2), 0, 2, 3, 5, 8);
    CHECK_TENSOR(tg_gather_nd(p, tg_from_i32(TG_SHAPE(2, 1), 1, 0), .batch_dims = 1), TG_SHAPE(2, 2), 0, 3, 4, 5, 6);
    /* batch_dims = 2 over [2,2,2]: one element of each row; and an empty batch */
    CHECK_TENSOR(tg_gather_nd(p, tg_from_i32(TG_SHAPE(2, 2, 1), 1, 0, 0, 1), .batch_dims = 2), TG_SHAPE(2, 2), 0, 2, 3,
                 5, 8);
    tg_tensor *empty =
        tg_gather_nd(tg_zeros(TG_F32, TG_SHAPE(0, 3)), tg_zeros(TG_I32, TG_SHAPE(0, 2, 1)), .batch_dims = 1);
    CHECK(empty && tg_size(empty) == 0 && tg_shape_of(empty).rank == 2);
    tg_tensor *sc =
        tg_scatter_nd(tg_from_i32(TG_SHAPE(4, 1), 4, 3, 1, 7), tg_from_i32(TG_SHAPE(4), 9, 10, 11, 12), TG_SHAPE(8));
    CHECK(sc && tg_dtype_of(sc) == TG_I32);
    CHECK_VALUES(sc, 0, 0, 11, 0, 10, 9, 0, 0, 12);
    tg_tensor *c = tg_from_f64(TG_SHAPE(3, 4), 1, 2, 3, 4, 5, 6, 7, 8, 4, 3, 2, 1);
    tg_tensor *ids = tg_from_i32(TG_SHAPE(3), 0, 1, 0);
    CHECK_VALUES(tg_unsorted_segment_sum(c, ids, 2), 0, 5, 5, 5, 5, 5, 6, 7, 8);
    CHECK_VALUES(tg_unsorted_segment_max(c, ids, 2), 0, 4, 3, 3, 4, 5, 6, 7, 8);
    CHECK_VALUES(tg_unsorted_segment_min(c, ids, 2), 0, 1, 2, 2, 1, 5, 6, 7, 8);
    CHECK_VALUES(tg_unsorted_segment_mean(c, ids, 2), 0, 2.5, 2.5, 2.5, 2.5, 5, 6, 7, 8);
    CHECK_VALUES(tg_repeat(tg_from_i32(TG_SHAPE(3), 1, 2, 3), tg_from_i32(TG_SHAPE(3), 3, 0, 2), 0), 0, 1, 1, 1, 3, 3);
    CHECK_VALUES(tg_repeat(ab, tg_from_i64(TG_SHAPE(2), 2, 3), 0), 0, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4);
    CHECK_VALUES(tg_repeat(ab, tg_from_i32(TG_SHAPE(1), 2), TG_AXIS_NONE), 0, 1, 1, 2, 2, 3, 3, 4, 4);
    tg_tensor *m = tg_cast(tg_from_i32(TG_SHAPE(4), 1, 0, 1, 0), TG_BOOL);
    CHECK_VALUES(tg_boolean_mask(tg_from_i64(TG_SHAPE(4), 0, 1, 2, 3), m, 0), 0, 0, 2);
    tg_tensor *m3 = tg_cast(tg_from_i32(TG_SHAPE(3), 1, 0, 1), TG_BOOL);
    tg_tensor *bm = tg_boolean_mask(tg_from_f32(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6), m3, 0);
    CHECK(bm && tg_dim(bm, 0) == 2 && tg_dim(bm, 1) == 2);
    CHECK_VALUES(bm, 0, 1, 2, 5, 6);
    tg_scope_end(s);
}

/* unsorted_segment_prod at zeros: one 0 in a segment, two in another (the golden gradient
 * is the product of each element's segment neighbours, written out by the fixture script);
 * first-order finite differences there. TF's rule zeroes a two-zero segment's dy, so its
 * second derivative there is not the function's: not checked, as TF. Empty segments: 1
 * (prod), 0 (sqrt_n); integers wrap. */
static void test_segment_prod(void)
{
    CHECK(golden_case("segment_prod_zeros", segment_prod, true, 1e-15));
    tg_scope *s = tg_scope_begin();
    tg_tensor *in[1] = {golden("segment_prod_zeros.x")};
    CHECK(in[0] && gradcheck("segment_prod zeros", gc_unary, in, 1, (void *)segment_prod, 1e-6, 1e-8));
    tg_tensor *x = tg_from_f32(TG_SHAPE(3), 2, 3, 4), *ids = tg_from_i64(TG_SHAPE(3), 0, 0, 2);
    CHECK_VALUES(tg_unsorted_segment_prod(x, ids, 3), 0, 6, 1, 4);
    CHECK_VALUES(tg_unsorted_segment_sqrt_n(x, ids, 3), 1e-6, 5 / sqrt(2.0), 0, 4);
    CHECK_VALUES(tg_unsorted_segment_prod(tg_from_i32(TG_SHAPE(2), 65536, 65536), tg_from_i32(TG_SHAPE(2), 0, 0), 1), 0,
                 0);
    CHECK_VALUES(tg_unsorted_segment_prod(tg_from_i64(TG_SHAPE(3), 5, -7, 3), tg_from_i32(TG_SHAPE(3), 1, 1, -1), 2), 0,
                 1, -35);
    EXPECT_ERROR(tg_unsorted_segment_sqrt_n(tg_from_i32(TG_SHAPE(2), 1, 2), tg_from_i32(TG_SHAPE(2), 0, 0), 1) == NULL,
                 "tg_unsorted_segment_sqrt_n: `data` is int32; it needs float32 or float64");
    EXPECT_ERROR(tg_unsorted_segment_prod(x, tg_from_i32(TG_SHAPE(3), 0, 3, 0), 3) == NULL,
                 "tg_unsorted_segment_prod: segment_ids[1] = 3 is out of range [0, 3)");
    tg_scope_end(s);
}

/* Empty segments: 0, or float32's lowest (not -inf) and highest; int32's for integers.
 * Ties share the gradient evenly; a dropped row gets none. */
static void test_segment_edges(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(3), 1, 1, 0), *ids = tg_from_i64(TG_SHAPE(3), 0, 0, 2);
    CHECK_VALUES(tg_unsorted_segment_max(x, ids, 3), 0, 1, -FLT_MAX, 0);
    CHECK_VALUES(tg_unsorted_segment_min(x, ids, 3), 0, 1, FLT_MAX, 0);
    CHECK_VALUES(tg_unsorted_segment_sum(x, ids, 3), 0, 2, 0, 0);
    CHECK_VALUES(tg_unsorted_segment_mean(x, ids, 3), 0, 1, 0, 0);
    tg_tensor *xi = tg_from_i32(TG_SHAPE(2), 5, 7);
    CHECK_VALUES(tg_unsorted_segment_max(xi, tg_from_i32(TG_SHAPE(2), 1, -3), 2), 0, INT32_MIN, 5);
    CHECK_VALUES(tg_unsorted_segment_min(xi, tg_from_i32(TG_SHAPE(2), -1, -1), 1), 0, INT32_MAX);
    tg_tensor *xd = tg_from_f64(TG_SHAPE(4), 2, 2, 0.5, 9);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, xd);
    tg_tensor *y = tg_unsorted_segment_max(xd, tg_from_i32(TG_SHAPE(4), 0, 0, 0, -1), 1);
    tg_tape_end(tape);
    CHECK_VALUES(y, 0, 2);
    CHECK_VALUES(tg_gradient(tape, y, xd), 0, 0.5, 0.5, 0, 0);
    tg_tape_free(tape);
    /* NaN wins a segment (max and min), as it does in tg_max */
    double v[2];
    tg_tensor *xn = tg_from_f64(TG_SHAPE(3), 1, NAN, 3);
    CHECK(tg_copy_out_f64(tg_unsorted_segment_max(xn, tg_from_i32(TG_SHAPE(3), 0, 0, 1), 2), v, 2) == 0 &&
          isnan(v[0]) && v[1] == 3);
    CHECK(tg_copy_out_f64(tg_unsorted_segment_min(xn, tg_from_i32(TG_SHAPE(3), 1, 0, 0), 2), v, 2) == 0 &&
          isnan(v[0]) && v[1] == 1);
    tg_scope_end(s);
}

static void test_indexing_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    CHECK(tg_mirror_pad(x, TG_SHAPE(2, 0), TG_SHAPE(0, 0), TG_MIRROR_REFLECT) == NULL);
    CHECK_ERROR("tg_mirror_pad: axis 0 of x (shape (2, 3)) pads 2 before and 0 after; REFLECT mode allows 0 to 1");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_mirror_pad(x, TG_SHAPE(0, 4), TG_SHAPE(0, 0), TG_MIRROR_SYMMETRIC) == NULL);
    CHECK_ERROR("SYMMETRIC mode allows 0 to 3");
    CHECK(tg_mirror_pad(x, TG_SHAPE(0), TG_SHAPE(0), TG_MIRROR_REFLECT) == NULL);
    CHECK_ERROR("tg_mirror_pad: paddings for 1 axes, but x (shape (2, 3)) has rank 2");
    CHECK(tg_mirror_pad(x, TG_SHAPE(0, 0), TG_SHAPE(0), TG_MIRROR_REFLECT) == NULL);
    CHECK_ERROR("tg_mirror_pad: `before` has 2 entries and `after` 1");
    CHECK(tg_mirror_pad(x, TG_SHAPE(0, 0), TG_SHAPE(0, 0), (tg_mirror_pad_mode)3) == NULL);
    CHECK_ERROR("tg_mirror_pad: mode 3 is neither");
    CHECK(tg_gather_nd(x, tg_from_i32(TG_SHAPE(2, 2), 0, 1, 2, 0)) == NULL);
    CHECK_ERROR("tg_gather_nd: index tuple 1 has 2 at position 0, out of range [0, 2) for params of shape (2, 3)");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_gather_nd(x, tg_from_i32(TG_SHAPE(1, 3), 0, 0, 0)) == NULL);
    CHECK_ERROR("tg_gather_nd: index tuples of length 3 (the last axis of indices), but params has rank 2");
    /* batch_dims */
    tg_tensor *p3 = tg_zeros(TG_F32, TG_SHAPE(2, 2, 2));
    EXPECT_ERROR(tg_gather_nd(p3, tg_from_i32(TG_SHAPE(3, 1), 0, 1, 0), .batch_dims = 1) == NULL,
                 "tg_gather_nd: with batch_dims = 1, axis 0 of params (2, 2, 2) has size 2 but of indices (3, 1) 3; "
                 "the batch axes must agree");
    EXPECT_ERROR(tg_gather_nd(p3, tg_from_i32(TG_SHAPE(2, 1), 0, 2), .batch_dims = 1) == NULL,
                 "tg_gather_nd: index tuple 1 has 2 at position 0, out of range [0, 2) for axis 1 of params of shape "
                 "(2, 2, 2) (batch_dims = 1)");
    EXPECT_ERROR(tg_gather_nd(p3, tg_from_i32(TG_SHAPE(2, 3), 0, 0, 0, 0, 0, 0), .batch_dims = 1) == NULL,
                 "tg_gather_nd: index tuples of length 3 (the last axis of indices (2, 3)), but params (2, 2, 2) has 2 "
                 "axes after its 1 batch axes");
    EXPECT_ERROR(tg_gather_nd(p3, tg_from_i32(TG_SHAPE(2, 1), 0, 0), .batch_dims = 2) == NULL,
                 "tg_gather_nd: batch_dims = 2, but indices (2, 1) have rank 2 and params (2, 2, 2) rank 3; it must be "
                 "in [0, 2)");
    EXPECT_ERROR(tg_gather_nd(p3, tg_from_i32(TG_SHAPE(2, 1), 0, 0), .batch_dims = -1) == NULL, "batch_dims = -1");
    EXPECT_ERROR(tg_gather_nd(p3, tg_from_f32(TG_SHAPE(2, 1), 0, 0), .batch_dims = 1) == NULL,
                 "tg_gather_nd: `indices` is float32; it needs int32 or int64");
    CHECK(tg_gather_nd(x, tg_from_f32(TG_SHAPE(1, 1), 0)) == NULL);
    CHECK_ERROR("tg_gather_nd: `indices` is float32; it needs int32 or int64");
    CHECK(tg_gather_nd(x, tg_tensor_from(TG_I32, TG_SCALAR_SHAPE, (int32_t[]){0})) == NULL);
    CHECK_ERROR("tg_gather_nd: `indices` is a scalar");
    CHECK(tg_scatter_nd(tg_from_i32(TG_SHAPE(2, 1), 0, -1), tg_from_f32(TG_SHAPE(2), 1, 2), TG_SHAPE(3)) == NULL);
    CHECK_ERROR("tg_scatter_nd: index tuple 1 has -1 at position 0, out of range [0, 3) for the output of shape (3,)");
    CHECK(tg_scatter_nd(tg_from_i32(TG_SHAPE(2, 1), 0, 1), tg_from_f32(TG_SHAPE(3), 1, 2, 3), TG_SHAPE(3)) == NULL);
    CHECK_ERROR("tg_scatter_nd: updates have shape (3,), but these indices into shape (3,) need (2,)");
    CHECK(tg_scatter_nd(tg_from_i32(TG_SHAPE(1, 1), 0), tg_from_f32(TG_SHAPE(1), 1), TG_SHAPE(-3)) == NULL);
    CHECK_ERROR("negative size");
    tg_tensor *ids = tg_from_i32(TG_SHAPE(2), 0, 3);
    CHECK(tg_unsorted_segment_sum(x, ids, 3) == NULL);
    CHECK_ERROR("tg_unsorted_segment_sum: segment_ids[1] = 3 is out of range [0, 3) (num_segments)");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_unsorted_segment_max(x, tg_from_i32(TG_SHAPE(3), 0, 0, 0), 1) == NULL);
    CHECK_ERROR("tg_unsorted_segment_max: segment_ids has shape (3,), which does not begin data's shape (2, 3)");
    CHECK(tg_unsorted_segment_min(x, tg_from_f32(TG_SHAPE(2), 0, 0), 1) == NULL);
    CHECK_ERROR("tg_unsorted_segment_min: `segment_ids` is float32");
    CHECK(tg_unsorted_segment_sum(x, tg_from_i32(TG_SHAPE(2), 0, 0), -1) == NULL);
    CHECK_ERROR("num_segments is -1");
    CHECK(tg_unsorted_segment_mean(tg_from_i32(TG_SHAPE(2), 1, 2), tg_from_i32(TG_SHAPE(2), 0, 0), 1) == NULL);
    CHECK_ERROR("tg_unsorted_segment_mean: `data` is int32");
    CHECK(tg_repeat(x, tg_from_i32(TG_SHAPE(2), 1, -1), 0) == NULL);
    CHECK_ERROR("tg_repeat: repeats[1] is -1; each must be >= 0");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_repeat(x, tg_from_i32(TG_SHAPE(2), 1, 1), 1) == NULL);
    CHECK_ERROR("tg_repeat: 2 repeats for an axis of 3 elements");
    CHECK(tg_repeat(x, tg_from_i32(TG_SHAPE(1), 1), 2) == NULL);
    CHECK_ERROR("tg_repeat: axis 2 is out of range for a tensor of rank 2");
    CHECK(tg_repeat(x, tg_from_f32(TG_SHAPE(1), 1), 0) == NULL);
    CHECK_ERROR("tg_repeat: `repeats` is float32");
    tg_tensor *m = tg_cast(tg_from_i32(TG_SHAPE(2), 1, 0), TG_BOOL);
    CHECK(tg_boolean_mask(x, m, 1) == NULL);
    CHECK_ERROR("tg_boolean_mask: mask of shape (2,) does not match the tensor's shape (2, 3) at axis 1");
    CHECK_ERROR("test_ops_index.c:");
    CHECK(tg_boolean_mask(x, tg_from_i32(TG_SHAPE(2), 1, 0), 0) == NULL);
    CHECK_ERROR("tg_boolean_mask: `mask` is int32; it needs bool");
    CHECK(tg_boolean_mask(x, m, 2) == NULL);
    CHECK_ERROR("tg_boolean_mask: a mask of rank 1 at axis 2 does not fit a tensor of rank 2");
    tg_clear_error();
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
    /* NULL operands: NULL back, with an error naming the op, never a crash */
    tg_tensor *ids = tg_from_i32(TG_SHAPE(2), 0, 1), *m = tg_cast(tg_from_i32(TG_SHAPE(2), 1, 0), TG_BOOL);
    tg_clear_error();
    CHECK(tg_tile(NULL, TG_SHAPE(1)) == NULL);
    CHECK_ERROR("tg_tile");
    tg_clear_error();
    CHECK(tg_mirror_pad(NULL, TG_SHAPE(1), TG_SHAPE(1), TG_MIRROR_REFLECT) == NULL);
    CHECK_ERROR("tg_mirror_pad");
    tg_clear_error();
    CHECK(tg_gather_nd(x, NULL) == NULL);
    CHECK_ERROR("tg_gather_nd");
    tg_clear_error();
    CHECK(tg_scatter_nd(NULL, x, TG_SHAPE(2)) == NULL);
    CHECK_ERROR("tg_scatter_nd");
    tg_clear_error();
    CHECK(tg_unsorted_segment_max(NULL, ids, 2) == NULL);
    CHECK_ERROR("tg_unsorted_segment_max");
    tg_clear_error();
    CHECK(tg_unsorted_segment_mean(x, NULL, 2) == NULL);
    CHECK_ERROR("tg_unsorted_segment_mean");
    tg_clear_error();
    CHECK(tg_repeat(x, NULL, 0) == NULL);
    CHECK_ERROR("tg_repeat");
    tg_clear_error();
    CHECK(tg_boolean_mask(NULL, m, 0) == NULL);
    CHECK_ERROR("tg_boolean_mask");
    tg_clear_error();
    CHECK(tg_reverse(NULL, TG_AXES(0)) == NULL);
    CHECK_ERROR("tg_reverse");
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
    RUN(test_indexing_golden);
    RUN(test_indexing_gradients);
    RUN(test_indexing_tf_doc_examples);
    RUN(test_gather_nd_batch_dims_gradient);
    RUN(test_segment_edges);
    RUN(test_segment_prod);
    RUN(test_indexing_errors);
    return TEST_SUMMARY();
}
