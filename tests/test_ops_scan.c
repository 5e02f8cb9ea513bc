/* Products, scans, logical reductions and ranking (src/ops/scan.c): reduce_prod,
 * reduce_any, reduce_all, cumsum, cumprod, top_k, sort, argsort. Forward values and
 * gradients against PyTorch's (tests/fixtures/index_golden.txt, with TF's rule where the
 * two differ), float64 finite differences, second order, float32 vs float64, integer
 * dtypes, NaN's place, and every error message. */
#include "gradcheck.h"
#include "index_golden.h"

/* ---- golden values ------------------------------------------------------------------------ */
static tg_tensor *prod_axis1(const tg_tensor *x) { return tg_reduce_prod(x, .axes = TG_AXES(1)); }
static tg_tensor *prod_axes02_keep(const tg_tensor *x)
{
    return tg_reduce_prod(x, .axes = TG_AXES(0, -1), .keepdims = true);
}
static tg_tensor *prod_all(const tg_tensor *x) { return tg_reduce_prod(x); }

static void test_reduce_prod_golden(void)
{
    CHECK(golden_case("prod_axis1", prod_axis1, true, 1e-12));
    CHECK(golden_case("prod_axes02_keep", prod_axes02_keep, true, 1e-12));
    CHECK(golden_case("prod_all", prod_all, true, 1e-12));
}

/* One golden scan case per op, axis, exclusive and reverse: the table below. */
static struct {
    bool prod;
    int axis;
    bool exclusive, reverse;
} scan_case;
static tg_tensor *scan_fn(const tg_tensor *x)
{
    tg_scan_opts o = {.axis = scan_case.axis, .exclusive = scan_case.exclusive, .reverse = scan_case.reverse};
    return scan_case.prod ? tg_cumprod_at(TG_LOC, x, o) : tg_cumsum_at(TG_LOC, x, o);
}

static void test_cumsum_cumprod_golden(void)
{
    for (int p = 0; p < 2; p++)
        for (int axis = 0; axis < 2; axis++)
            for (int e = 0; e < 2; e++)
                for (int r = 0; r < 2; r++) {
                    char name[64];
                    snprintf(name, sizeof name, "%s_a%d_e%d_r%d", p ? "cumprod" : "cumsum", axis, e, r);
                    scan_case.prod = p;
                    scan_case.axis = axis ? -1 : 0; /* -1 is axis 1 of a matrix */
                    scan_case.exclusive = e;
                    scan_case.reverse = r;
                    if (!golden_case(name, scan_fn, true, 1e-12)) {
                        printf("  in case %s\n", name);
                        CHECK(false);
                    }
                }
}

/* TF's cumprod gradient is 0 where x is 0 (div_no_nan), not the derivative. */
static tg_tensor *cumprod_1(const tg_tensor *x) { return tg_cumprod(x, .axis = 1); }
static void test_cumprod_gradient_at_zero_is_tfs(void)
{
    CHECK(golden_case("cumprod_zero_tf", cumprod_1, true, 1e-12));
}

static tg_tensor *top3_values(const tg_tensor *x)
{
    tg_tensor *out[2];
    return tg_top_k(x, 3, out) == 0 ? out[0] : NULL;
}
static tg_tensor *sort_desc_axis0(const tg_tensor *x) { return tg_sort(x, .axis = 0, .direction = TG_DESCENDING); }
static tg_tensor *sort_asc(const tg_tensor *x) { return tg_sort(x); }

static void test_top_k_and_sort_golden(void)
{
    CHECK(golden_case("top_k3", top3_values, true, 0));
    CHECK(golden_case("sort_desc_axis0", sort_desc_axis0, true, 0));
    CHECK(golden_case("sort_asc", sort_asc, true, 0));
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = golden("top_k3.x"), *out[2];
    CHECK(tg_top_k(x, 3, out) == 0 && tg_dtype_of(out[1]) == TG_I32);
    CHECK(golden_matches("top_k indices", out[1], "top_k3.i", 0));
    tg_tensor *asc = tg_argsort(x), *desc0 = tg_argsort(x, .axis = 0, .direction = TG_DESCENDING);
    CHECK(asc && tg_dtype_of(asc) == TG_I32);
    CHECK(golden_matches("argsort ascending", asc, "argsort_asc.y", 0));
    CHECK(golden_matches("argsort descending, axis 0", desc0, "argsort_desc_axis0.y", 0));
    tg_scope_end(s);
}

/* ---- TF's documented examples ---------------------------------------------------------------- */
/* tf.math.cumsum's docs: x = [2, 4, 6, 8]; tf.math.cumprod's: [a, b, c] -> [a, a*b, a*b*c],
 * exclusive [1, a, a*b], reverse [a*b*c, b*c, c], both [b*c, c, 1]. */
static void test_tf_doc_examples(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_from_i32(TG_SHAPE(4), 2, 4, 6, 8);
    CHECK_VALUES(tg_cumsum(v), 0, 2, 6, 12, 20);
    CHECK_VALUES(tg_cumsum(v, .exclusive = true), 0, 0, 2, 6, 12);
    CHECK_VALUES(tg_cumsum(v, .reverse = true), 0, 20, 18, 14, 8);
    CHECK_VALUES(tg_cumsum(v, .exclusive = true, .reverse = true), 0, 18, 14, 8, 0);
    tg_tensor *abc = tg_from_f32(TG_SHAPE(3), 2, 3, 5);
    CHECK_VALUES(tg_cumprod(abc), 0, 2, 6, 30);
    CHECK_VALUES(tg_cumprod(abc, .exclusive = true), 0, 1, 2, 6);
    CHECK_VALUES(tg_cumprod(abc, .reverse = true), 0, 30, 15, 5);
    CHECK_VALUES(tg_cumprod(abc, .exclusive = true, .reverse = true), 0, 15, 5, 1);
    /* tf.math.reduce_prod's docs: [[1., 2.], [3., 4.]] -> 24; axis 0 [3, 8]; axis 1 [2, 12] */
    tg_tensor *m = tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4);
    CHECK_VALUES(tg_reduce_prod(m), 0, 24);
    CHECK_VALUES(tg_reduce_prod(m, .axes = TG_AXES(0)), 0, 3, 8);
    CHECK_VALUES(tg_reduce_prod(m, .axes = TG_AXES(1)), 0, 2, 12);
    /* tf.math.reduce_any / reduce_all docs: [[True, True], [False, False]] */
    tg_tensor *b = tg_cast(tg_from_i32(TG_SHAPE(2, 2), 1, 1, 0, 0), TG_BOOL);
    tg_tensor *any = tg_reduce_any(b), *all = tg_reduce_all(b);
    CHECK(any && tg_dtype_of(any) == TG_BOOL && tg_item(any) == 1 && tg_item(all) == 0);
    CHECK_VALUES(tg_cast(tg_reduce_any(b, .axes = TG_AXES(0)), TG_I32), 0, 1, 1);
    CHECK_VALUES(tg_cast(tg_reduce_any(b, .axes = TG_AXES(1)), TG_I32), 0, 1, 0);
    CHECK_VALUES(tg_cast(tg_reduce_all(b, .axes = TG_AXES(0)), TG_I32), 0, 0, 0);
    CHECK_VALUES(tg_cast(tg_reduce_all(b, .axes = TG_AXES(1), .keepdims = true), TG_I32), 0, 1, 0);
    /* tf.math.top_k's docs: [1, 2, 98, 1, 1, 99, 3, 1, 3, 96, 4, 1], k=3 -> [99, 98, 96], [5, 2, 9] */
    tg_tensor *out[2];
    CHECK(tg_top_k(tg_from_i32(TG_SHAPE(12), 1, 2, 98, 1, 1, 99, 3, 1, 3, 96, 4, 1), 3, out) == 0);
    CHECK(tg_dtype_of(out[0]) == TG_I32 && tg_dtype_of(out[1]) == TG_I32);
    CHECK_VALUES(out[0], 0, 99, 98, 96);
    CHECK_VALUES(out[1], 0, 5, 2, 9);
    /* tf.sort's and tf.argsort's docs: [1, 10, 26.9, 2.8, 166.32, 62.3] */
    tg_tensor *a = tg_from_f64(TG_SHAPE(6), 1, 10, 26.9, 2.8, 166.32, 62.3);
    CHECK_VALUES(tg_sort(a), 0, 1, 2.8, 10, 26.9, 62.3, 166.32);
    CHECK_VALUES(tg_sort(a, .direction = TG_DESCENDING), 0, 166.32, 62.3, 26.9, 10, 2.8, 1);
    CHECK_VALUES(tg_argsort(a), 0, 0, 3, 1, 2, 5, 4);
    CHECK_VALUES(tg_argsort(a, .direction = TG_DESCENDING), 0, 4, 5, 2, 1, 3, 0);
    tg_scope_end(s);
}

/* Empty reductions give the identity; integers wrap; sort of integers ascending is exact at
 * the ends of the range (TF's -x - 1). */
static void test_edges_and_integers(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *e = tg_zeros(TG_F64, TG_SHAPE(2, 0));
    CHECK_VALUES(tg_reduce_prod(e, .axes = TG_AXES(1)), 0, 1, 1);
    tg_tensor *eb = tg_cast(tg_zeros(TG_F32, TG_SHAPE(0, 3)), TG_BOOL);
    CHECK_VALUES(tg_cast(tg_reduce_any(eb, .axes = TG_AXES(0)), TG_I32), 0, 0, 0, 0);
    CHECK_VALUES(tg_cast(tg_reduce_all(eb, .axes = TG_AXES(0)), TG_I32), 0, 1, 1, 1);
    tg_tensor *big = tg_from_i32(TG_SHAPE(2), 65536, 65537); /* 2^32 + 2^16 wraps to 65536 */
    CHECK(tg_dtype_of(tg_reduce_prod(big)) == TG_I32);
    CHECK_VALUES(tg_reduce_prod(big), 0, 65536);
    CHECK_VALUES(tg_cumsum(tg_from_i64(TG_SHAPE(2, 2), 1, 2, 3, 4), .axis = 0, .reverse = true), 0, 4, 6, 3, 4);
    CHECK_VALUES(tg_cumprod(tg_from_i32(TG_SHAPE(3), 2, -3, 4), .exclusive = true), 0, 1, 2, -6);
    tg_tensor *ends = tg_from_i32(TG_SHAPE(5), 3, INT32_MIN, INT32_MAX, -1, INT32_MIN);
    CHECK_VALUES(tg_sort(ends), 0, INT32_MIN, INT32_MIN, -1, 3, INT32_MAX);
    CHECK_VALUES(tg_argsort(ends), 0, 1, 4, 3, 0, 2);
    CHECK_VALUES(tg_sort(ends, .direction = TG_DESCENDING), 0, INT32_MAX, 3, -1, INT32_MIN, INT32_MIN);
    tg_tensor *out[2];
    CHECK(tg_top_k(tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6), 0, out) == 0);
    CHECK(tg_size(out[0]) == 0 && tg_dim(out[0], 0) == 2 && tg_dim(out[1], 1) == 0);
    CHECK_VALUES(tg_reduce_prod(tg_scalar_of(TG_F64, 2.5)), 0, 2.5);
    tg_scope_end(s);
}

/* NaN ranks above +inf (TF leaves it undefined): first in top_k and in both sorts. */
static void test_nan_ranks_first(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(5), 1, NAN, INFINITY, NAN, -2), *out[2];
    CHECK(tg_top_k(x, 3, out) == 0);
    CHECK_VALUES(out[1], 0, 1, 3, 2);
    CHECK_VALUES(tg_argsort(x), 0, 1, 3, 4, 0, 2);
    CHECK_VALUES(tg_argsort(x, .direction = TG_DESCENDING), 0, 1, 3, 2, 0, 4);
    double v[5];
    CHECK(tg_copy_out_f64(tg_sort(tg_cast(x, TG_F32)), v, 5) == 0 && isnan(v[0]) && isnan(v[1]) && v[2] == -2 &&
          v[4] == INFINITY);
    CHECK(isnan(tg_item(tg_reduce_prod(x))));
    CHECK(tg_copy_out_f64(tg_cumsum(x), v, 5) == 0 && v[0] == 1 && isnan(v[1]) && isnan(v[4]));
    tg_scope_end(s);
}

/* ---- gradients: float64 finite differences, second order, float32 ------------------------------ */

static tg_tensor *prod_0(const tg_tensor *x) { return tg_reduce_prod(x, .axes = TG_AXES(0)); }
static tg_tensor *prod_12_keep(const tg_tensor *x)
{
    return tg_reduce_prod(x, .axes = TG_AXES(2, 1), .keepdims = true);
}
static tg_tensor *cumsum_ex_rev(const tg_tensor *x)
{
    return tg_cumsum(x, .axis = 1, .exclusive = true, .reverse = true);
}
static tg_tensor *cumprod_0(const tg_tensor *x) { return tg_cumprod(x); }
static tg_tensor *cumprod_ex(const tg_tensor *x) { return tg_cumprod(x, .axis = -1, .exclusive = true); }
static tg_tensor *cumprod_rev(const tg_tensor *x) { return tg_cumprod(x, .axis = 2, .reverse = true); }
static tg_tensor *top2(const tg_tensor *x)
{
    tg_tensor *out[2];
    return tg_top_k(x, 2, out) == 0 ? out[0] : NULL;
}
static tg_tensor *sort_1_asc(const tg_tensor *x) { return tg_sort(x, .axis = 1); }
static tg_tensor *sort_0_desc(const tg_tensor *x) { return tg_sort(x, .axis = 0, .direction = TG_DESCENDING); }

static void test_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = gc_input(11, TG_SHAPE(3, 2, 4), -1.5, 1.5);
    tg_tensor *pos = gc_input(12, TG_SHAPE(3, 2, 4), 0.5, 1.5);
    struct {
        const char *name;
        gc_unary_fn f;
        tg_tensor *x;
    } cases[] = {
        {"reduce_prod axis 0", prod_0, x},
        {"reduce_prod axes (2, 1) keepdims", prod_12_keep, x},
        {"reduce_prod all", prod_all, gc_input(13, TG_SHAPE(2, 3), -1.5, 1.5)},
        {"cumsum exclusive reverse", cumsum_ex_rev, x},
        {"cumprod", cumprod_0, x},
        {"cumprod exclusive", cumprod_ex, x},
        {"cumprod reverse", cumprod_rev, pos},
        {"top_k 2", top2, x},
        {"sort axis 1 ascending", sort_1_asc, x},
        {"sort axis 0 descending", sort_0_desc, x},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tensor *in[1] = {cases[k].x};
        if (!gradcheck(cases[k].name, gc_unary, in, 1, (void *)cases[k].f, 1e-6, 1e-7)) {
            printf("  first order: %s\n", cases[k].name);
            CHECK(false);
        }
        /* second order: the products' rules are made of cumprod, mul and where */
        if (!gradcheck(cases[k].name, gc_unary_gradient, in, 1, (void *)cases[k].f, 1e-6, 1e-6)) {
            printf("  second order: %s\n", cases[k].name);
            CHECK(false);
        }
        if (!f32_matches_f64(cases[k].name, gc_unary, in, 1, (void *)cases[k].f, 1e-5)) {
            printf("  float32: %s\n", cases[k].name);
            CHECK(false);
        }
    }
    tg_scope_end(s);
}

/* Zeros in x: prod's gradient is the product of the others (exact, TF's rule); with two
 * zeros in a slice, 0 everywhere in it. Checked by hand and by finite differences. */
static void test_prod_gradient_with_zeros(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(3, 3), 2, 0, 3, 0, 5, 0, 1, 2, 4);
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    tg_tensor *y = tg_reduce_prod(x, .axes = TG_AXES(1));
    tg_tape_end(tape);
    CHECK_VALUES(y, 0, 0, 0, 8);
    CHECK_VALUES(tg_gradient(tape, y, x), 0, 0, 6, 0, 0, 0, 0, 8, 4, 2);
    tg_tape_free(tape);
    tg_tensor *in[1] = {x};
    CHECK(gradcheck("reduce_prod with zeros", gc_unary, in, 1, (void *)prod_axis1, 1e-6, 1e-8));
    tg_scope_end(s);
}

/* ---- norm and l2_normalize (composites) ------------------------------------------------------------ */
static tg_tensor *norm_all(const tg_tensor *x) { return tg_norm(x); }
static tg_tensor *norm_a1(const tg_tensor *x) { return tg_norm(x, .axes = TG_AXES(1)); }
static tg_tensor *norm_1_a0_keep(const tg_tensor *x)
{
    return tg_norm(x, .ord = TG_NORM_1, .axes = TG_AXES(0), .keepdims = true);
}
static tg_tensor *norm_inf_a1(const tg_tensor *x) { return tg_norm(x, .ord = TG_NORM_INF, .axes = TG_AXES(-1)); }
static tg_tensor *l2n_a1(const tg_tensor *x) { return tg_l2_normalize(x, .axes = TG_AXES(1)); }
static tg_tensor *l2n_all(const tg_tensor *x) { return tg_l2_normalize(x); }
static tg_tensor *norm_frobenius(const tg_tensor *x) { return tg_norm(x, .axes = TG_AXES(0, 2)); }

static void test_norm_and_l2_normalize(void)
{
    CHECK(golden_case("norm_euclidean_all", norm_all, true, 1e-14));
    CHECK(golden_case("norm_euclidean_a1", norm_a1, true, 1e-14));
    CHECK(golden_case("norm_1_a0_keep", norm_1_a0_keep, true, 1e-14));
    CHECK(golden_case("norm_inf_a1", norm_inf_a1, true, 1e-14));
    CHECK(golden_case("l2_normalize_a1", l2n_a1, true, 1e-14));
    CHECK(golden_case("l2_normalize_all", l2n_all, true, 1e-14));
    tg_scope *s = tg_scope_begin();
    /* tf.norm's docs: the euclidean norm of [3, 4] is 5; tf.math.l2_normalize's: [3, 4] -> [0.6, 0.8] */
    tg_tensor *v = tg_from_f32(TG_SHAPE(2), 3, 4);
    CHECK_VALUES(tg_norm(v), 1e-7, 5);
    CHECK_VALUES(tg_l2_normalize(v), 1e-7, 0.6, 0.8);
    CHECK_VALUES(tg_l2_normalize(tg_zeros(TG_F64, TG_SHAPE(2))), 0, 0, 0); /* epsilon: no NaN */
    tg_tensor *x = gc_input(31, TG_SHAPE(3, 2, 4), -1.5, 1.5);
    CHECK_VALUES(tg_sub(tg_norm(x, .axes = TG_AXES(0, 2)), tg_sqrt(tg_sum(tg_square(x), .axes = TG_AXES(0, 2)))), 0, 0,
                 0);
    tg_tensor *in[1] = {x};
    gc_unary_fn fns[] = {norm_all, norm_a1, norm_1_a0_keep, norm_inf_a1, l2n_a1, l2n_all, norm_frobenius};
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        tg_tensor *xk = k == 1 || k == 2 || k == 3 || k == 4 ? tg_reshape(x, TG_SHAPE(6, 4)) : x;
        in[0] = xk;
        CHECK(gradcheck("norm", gc_unary, in, 1, (void *)fns[k], 1e-6, 1e-7));
        CHECK(gradcheck("norm, second order", gc_unary_gradient, in, 1, (void *)fns[k], 1e-6, 1e-6));
        CHECK(f32_matches_f64("norm", gc_unary, in, 1, (void *)fns[k], 1e-5));
    }
    /* TF's euclidean norm has a NaN gradient at 0 (sqrt's 1 / (2 * 0) times 0) */
    tg_tensor *z = tg_zeros(TG_F64, TG_SHAPE(2));
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, z);
    tg_tensor *n = tg_norm(z);
    tg_tape_end(tape);
    double g[2];
    CHECK(tg_item(n) == 0 && tg_copy_out_f64(tg_gradient(tape, n, z), g, 2) == 0 && isnan(g[0]) && isnan(g[1]));
    tg_tape_free(tape);
    CHECK(tg_norm(x, .axes = TG_AXES(0, 1, 2)) == NULL);
    CHECK_ERROR("tg_norm: 3 axes; give none");
    CHECK(tg_norm(x, .ord = TG_NORM_1, .axes = TG_AXES(0, -3)) == NULL);
    CHECK_ERROR("tg_norm: the two axes (0, -3) of a matrix norm are the same axis");
    CHECK(tg_norm(x, .ord = (tg_norm_ord)9) == NULL);
    CHECK_ERROR("tg_norm: ord 9 is not");
    CHECK(tg_norm(tg_from_i32(TG_SHAPE(1), 3)) == NULL);
    CHECK_ERROR("tg_norm: `x` is int32; it needs float32 or float64");
    CHECK_ERROR("test_ops_scan.c:");
    CHECK(tg_norm(x, .axes = TG_AXES(3)) == NULL);
    CHECK_ERROR("tg_norm: axis 3 is out of range for a tensor of rank 3");
    CHECK(tg_l2_normalize(x, .axes = TG_AXES(-4)) == NULL);
    CHECK_ERROR("tg_l2_normalize: axis -4 is out of range for a tensor of rank 3");
    CHECK(tg_l2_normalize(tg_from_i64(TG_SHAPE(1), 3)) == NULL);
    CHECK_ERROR("tg_l2_normalize: `x` is int64");
    tg_clear_error();
    tg_scope_end(s);
}

/* ---- errors: each names the op and the caller's line ------------------------------------------------ */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 4, 5, 6), *out[2];
    tg_tensor *b = tg_cast(x, TG_BOOL);
    CHECK(tg_reduce_prod(x, .axes = TG_AXES(2)) == NULL);
    CHECK_ERROR("tg_reduce_prod: axis 2 is out of range for a tensor of rank 2");
    CHECK_ERROR("test_ops_scan.c:");
    CHECK(tg_reduce_prod(x, .axes = TG_AXES(1, -1)) == NULL);
    CHECK_ERROR("named twice");
    CHECK(tg_reduce_prod(b) == NULL);
    CHECK_ERROR("tg_reduce_prod: `x` is bool");
    CHECK(tg_reduce_any(x) == NULL);
    CHECK_ERROR("tg_reduce_any: `x` is float32; it needs bool");
    CHECK(tg_reduce_all(b, .axes = TG_AXES(-3)) == NULL);
    CHECK_ERROR("tg_reduce_all: axis -3 is out of range");
    CHECK(tg_cumsum(x, .axis = 2) == NULL);
    CHECK_ERROR("tg_cumsum: axis 2 is out of range for a tensor of rank 2");
    CHECK(tg_cumprod(tg_scalar_of(TG_F32, 1)) == NULL);
    CHECK_ERROR("tg_cumprod: `x` is a scalar");
    CHECK(tg_cumsum(b) == NULL);
    CHECK_ERROR("tg_cumsum: `x` is bool");
    CHECK(tg_top_k(x, 4, out) != 0 && out[0] == NULL && out[1] == NULL);
    CHECK_ERROR("tg_top_k: k = 4, but the last axis of x (shape (2, 3)) has 3 elements");
    CHECK_ERROR("test_ops_scan.c:");
    CHECK(tg_top_k(x, -1, out) != 0);
    CHECK_ERROR("k must be in [0, 3]");
    CHECK(tg_top_k(tg_scalar_of(TG_F64, 1), 1, out) != 0);
    CHECK_ERROR("tg_top_k: `x` is a scalar");
    CHECK(tg_top_k(b, 1, out) != 0);
    CHECK_ERROR("tg_top_k: `x` is bool");
    CHECK(tg_top_k(x, 1, NULL) != 0);
    CHECK_ERROR("tg_top_k: needs an array `out`");
    CHECK(tg_sort(x, .axis = 2) == NULL);
    CHECK_ERROR("tg_sort: axis 2 is out of range for a tensor of rank 2");
    CHECK(tg_argsort(b) == NULL);
    CHECK_ERROR("tg_argsort: `x` is bool");
    CHECK(tg_sort(x, .direction = (tg_sort_direction)7) == NULL);
    CHECK_ERROR("neither TG_ASCENDING nor TG_DESCENDING");
    CHECK(tg_argsort(tg_scalar_of(TG_F32, 1)) == NULL);
    CHECK_ERROR("tg_argsort: `x` is a scalar");
    /* NULL operands: NULL back, with an error naming the op, never a crash */
    const char *names[] = {"tg_reduce_prod", "tg_reduce_any", "tg_cumsum", "tg_cumprod",     "tg_top_k",
                           "tg_sort",        "tg_argsort",    "tg_norm",   "tg_l2_normalize"};
    for (int k = 0; k < 9; k++) {
        tg_clear_error();
        bool failed;
        switch (k) {
        case 0: failed = tg_reduce_prod(NULL) == NULL; break;
        case 1: failed = tg_reduce_any(NULL) == NULL; break;
        case 2: failed = tg_cumsum(NULL) == NULL; break;
        case 3: failed = tg_cumprod(NULL) == NULL; break;
        case 4: failed = tg_top_k(NULL, 1, out) != 0 && out[0] == NULL; break;
        case 5: failed = tg_sort(NULL) == NULL; break;
        case 6: failed = tg_argsort(NULL) == NULL; break;
        case 7: failed = tg_norm(NULL) == NULL; break;
        default: failed = tg_l2_normalize(NULL) == NULL; break;
        }
        CHECK(failed);
        CHECK_ERROR(names[k]);
    }
    tg_clear_error();
    tg_scope_end(s);
}

/* .sorted = false: TF's order is unspecified; tapegrad gives the sorted one (docs/ops.md),
 * the same values, indices and gradient as .sorted = true. */
static void test_top_k_unsorted(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(5), 1, 3, 2, 3, 0), *out[2];
    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    REQUIRE(tg_top_k(x, 3, out, .sorted = false) == 0);
    tg_tensor *y = tg_sum(tg_mul(out[0], tg_from_f64(TG_SHAPE(3), 1, 2, 3)));
    tg_tape_end(tape);
    CHECK_VALUES(out[0], 0, 3, 3, 2);
    CHECK_VALUES(out[1], 0, 1, 3, 2);
    CHECK_VALUES(tg_gradient(tape, y, x), 0, 0, 1, 3, 2, 0);
    tg_tape_free(tape);
    tg_scope_end(s);
}

/* The indices output has no gradient; asking for it through a cast gives none (TF's None). */
static void test_top_k_indices_cut_the_path(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(4), 0.5, 3, -1, 2), *out[2];
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_watch(tape, x);
    CHECK(tg_top_k(x, 2, out) == 0);
    tg_tensor *both = tg_add(out[0], tg_cast(out[1], TG_F64));
    tg_tape_end(tape);
    CHECK_VALUES(tg_gradient(tape, both, x), 0, 0, 1, 0, 1);
    CHECK(tg_gradient(tape, tg_cast(out[1], TG_F64), x) == NULL);
    tg_tape_free(tape);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_reduce_prod_golden);
    RUN(test_cumsum_cumprod_golden);
    RUN(test_cumprod_gradient_at_zero_is_tfs);
    RUN(test_top_k_and_sort_golden);
    RUN(test_tf_doc_examples);
    RUN(test_edges_and_integers);
    RUN(test_nan_ranks_first);
    RUN(test_gradients);
    RUN(test_prod_gradient_with_zeros);
    RUN(test_norm_and_l2_normalize);
    RUN(test_errors);
    RUN(test_top_k_indices_cut_the_path);
    RUN(test_top_k_unsorted);
    return TEST_SUMMARY();
}
