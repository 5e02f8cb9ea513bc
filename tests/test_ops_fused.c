/* Fused ops (bias_add_act, the softmax cross-entropies) and the direct pools, against the
 * unfused chains of public ops they replace: the same values bit for bit, gradients equal
 * to the chain's, a Hessian-vector product by hand, hand-computed values and the error
 * messages. Finite differences for first and second derivatives (the backward ops of the
 * fused ops have backward rules of their own) and float32 against float64 are the op
 * table test's (tests/test_op_table.c). */
#include "gradcheck.h"

/* ---- helpers ------------------------------------------------------------------------------ */
/* a against b (check.h's comparison): bit for bit when tol is 0 (NaN payloads and -0
 * included), else each within tol * (1 + |b|); `what` names it in a failure. */
static bool agree(const char *what, const tg_tensor *a, const tg_tensor *b, double tol)
{
    return tensors_agree_(__FILE__, __LINE__, what, a, b, tol == 0 ? CHECK_BITS : tol);
}

/* Values in [0.2, 1] with random signs: x + b (|b| <= 0.05) stays away from relu's kink. */
static tg_tensor *away_from_zero(uint64_t seed, tg_shape shape)
{
    tg_tensor *m = gc_input(seed, shape, 0.2, 1.0), *s = gc_input(seed + 1, shape, -1, 1);
    return tg_mul(m, tg_sign(s));
}

/* dL/dx_i for L = sum(f(x) * w) on one tape. */
static void grads_of(tg_tensor *(*f)(tg_tensor *const *, int, void *), tg_tensor *const *xs, int n, void *user,
                     const tg_tensor *w, tg_tensor **out)
{
    tg_tape *t = tg_tape_begin(.persistent = true);
    for (int i = 0; i < n; i++)
        tg_watch(t, xs[i]);
    tg_tensor *y = f(xs, n, user);
    tg_tensor *loss = tg_sum(tg_mul(y, w));
    tg_tape_end(t);
    tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = xs, .n_sources = n, .out = out);
    tg_tape_free(t);
}

/* ---- bias_add_act ---------------------------------------------------------------------------- */
static const tg_bias_act ACTS[] = {TG_BIAS_LINEAR, TG_BIAS_RELU, TG_BIAS_SIGMOID, TG_BIAS_TANH};

static tg_tensor *fused_bias(tg_tensor *const *xs, int n, void *u)
{
    (void)n;
    return tg_bias_add_act(xs[0], xs[1], *(tg_bias_act *)u);
}

static tg_tensor *unfused_bias(tg_tensor *const *xs, int n, void *u)
{
    (void)n;
    tg_tensor *z = tg_add(xs[0], xs[1]);
    switch (*(tg_bias_act *)u) {
    case TG_BIAS_RELU: return tg_relu(z);
    case TG_BIAS_SIGMOID: return tg_sigmoid(z);
    case TG_BIAS_TANH: return tg_tanh(z);
    default: return z;
    }
}

static void test_bias_act_values(void)
{
    tg_scope *s = tg_scope_begin();
    /* By hand: relu([[-1, 2], [3, -4]] + [0.5, -2.5]) and the linear form. */
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 2), -1, 2, 3, -4), *b = tg_from_f32(TG_SHAPE(2), 0.5, -2.5);
    CHECK_VALUES(tg_bias_add_act(x, b, TG_BIAS_RELU), 0, 0, 0, 3.5, 0);
    CHECK_VALUES(tg_bias_add_act(x, b, TG_BIAS_LINEAR), 0, -0.5, -0.5, 3.5, -6.5);
    CHECK_VALUES(tg_bias_add_act(tg_zeros(TG_F64, TG_SHAPE(1, 2)), tg_from_f64(TG_SHAPE(2), 0, 1), TG_BIAS_SIGMOID),
                 1e-15, 0.5, 1 / (1 + exp(-1.0)));
    /* The chain's bits, for both dtypes, small and large (threaded), rank 2 and 3. */
    const tg_shape shapes[] = {TG_SHAPE(3, 5), TG_SHAPE(2, 3, 4), TG_SHAPE(300, 500)};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int a = 0; a < 4; a++)
            for (int d = 0; d < 2; d++) {
                tg_shape bs = {.rank = 1, .dims = {shapes[k].dims[shapes[k].rank - 1]}};
                tg_tensor *xs[2] = {gc_input(10 + k, shapes[k], -3, 3), gc_input(20 + k, bs, -1, 1)};
                if (d) {
                    xs[0] = tg_cast(xs[0], TG_F32);
                    xs[1] = tg_cast(xs[1], TG_F32);
                }
                tg_bias_act act = ACTS[a];
                char name[64];
                snprintf(name, sizeof name, "bias_add_act act %d shape %zu %s", a, k, d ? "f32" : "f64");
                CHECK(agree(name, fused_bias(xs, 2, &act), unfused_bias(xs, 2, &act), 0));
            }
    tg_scope_end(s);
}

static void test_bias_act_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    for (int a = 0; a < 4; a++) {
        tg_bias_act act = ACTS[a];
        /* The chain's gradients: the same formulas, so the same bits, in float32 too. */
        tg_tensor *x32[2] = {tg_cast(away_from_zero(32, TG_SHAPE(64, 40)), TG_F32),
                             tg_cast(gc_input(33, TG_SHAPE(40), -0.05, 0.05), TG_F32)};
        tg_tensor *w = gc_input(34, TG_SHAPE(64, 40), 0.5, 1.5), *gf[2], *gu[2];
        w = tg_cast(w, TG_F32);
        grads_of(fused_bias, x32, 2, &act, w, gf);
        grads_of(unfused_bias, x32, 2, &act, w, gu);
        CHECK(agree("d/dx fused vs chain", gf[0], gu[0], 0));
        CHECK(agree("d/dbias fused vs chain", gf[1], gu[1], 0));
    }
    tg_scope_end(s);
}

/* The bias's gradient comes with dz from one pass (act_grad_bias_sum), on a CNN's shape
 * and a batch of rows, over several chunks of rows: dz has the chain's bits; the bias's
 * double sums are added per chunk, then the chunks in order, so they differ from tg_sum's
 * in double's last bits (1e-13 here), and after float32's rounding not at all on these.
 * By hand: relu([[-1, 2], [3, -4]] + [0.5, -2.5]) weighted by [[1, 2], [3, 4]]. */
static void test_bias_act_gradient_one_pass(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x[2] = {tg_from_f32(TG_SHAPE(2, 2), -1, 2, 3, -4), tg_from_f32(TG_SHAPE(2), 0.5, -2.5)}, *g[2];
    tg_bias_act relu = TG_BIAS_RELU;
    grads_of(fused_bias, x, 2, &relu, tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), g);
    CHECK_VALUES(g[0], 0, 0, 0, 3, 0);
    CHECK_VALUES(g[1], 0, 3, 0);
    const tg_shape shapes[] = {TG_SHAPE(8, 26, 26, 32), TG_SHAPE(700, 130)};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int a = 1; a < 4; a++)
            for (int d = 0; d < 2; d++) {
                tg_shape bs = {.rank = 1, .dims = {shapes[k].dims[shapes[k].rank - 1]}};
                tg_dtype dt = d ? TG_F32 : TG_F64;
                tg_tensor *xs[2] = {tg_cast(away_from_zero(40 + k, shapes[k]), dt),
                                    tg_cast(gc_input(50 + k, bs, -0.05, 0.05), dt)};
                tg_tensor *w = tg_cast(gc_input(60 + k, shapes[k], -1.5, 1.5), dt), *gf[2], *gu[2];
                tg_bias_act act = ACTS[a];
                grads_of(fused_bias, xs, 2, &act, w, gf);
                grads_of(unfused_bias, xs, 2, &act, w, gu);
                char name[64];
                snprintf(name, sizeof name, "d/dx act %d shape %zu %s", a, k, d ? "f32" : "f64");
                CHECK(agree(name, gf[0], gu[0], 0));
                snprintf(name, sizeof name, "d/dbias act %d shape %zu %s", a, k, d ? "f32" : "f64");
                CHECK(agree(name, gf[1], gu[1], d ? 0 : 1e-13));
            }
    tg_scope_end(s);
}

static void test_bias_act_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    EXPECT_ERROR(
        tg_bias_add_act(x, tg_zeros(TG_F32, TG_SHAPE(2)), TG_BIAS_RELU) == NULL,
        "tg_bias_add_act: `bias` must be a vector as long as the last axis of `x`; got x (2, 3) and bias (2,)");
    EXPECT_ERROR(tg_bias_add_act(x, tg_zeros(TG_F32, TG_SHAPE(1, 3)), TG_BIAS_RELU) == NULL,
                 "got x (2, 3) and bias (1, 3)");
    EXPECT_ERROR(tg_bias_add_act(x, tg_zeros(TG_F64, TG_SHAPE(3)), TG_BIAS_RELU) == NULL,
                 "tg_bias_add_act: cannot mix float32 and float64");
    EXPECT_ERROR(tg_bias_add_act(tg_zeros(TG_I32, TG_SHAPE(2, 3)), tg_zeros(TG_I32, TG_SHAPE(3)), TG_BIAS_RELU) == NULL,
                 "tg_bias_add_act: `x` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_bias_add_act(x, tg_zeros(TG_F32, TG_SHAPE(3)), (tg_bias_act)9) == NULL,
                 "tg_bias_add_act: activation 9 is not a tg_bias_act");
    tg_clear_error();
    EXPECT_ERROR(tg_bias_add_act(NULL, x, TG_BIAS_RELU) == NULL, "tg_bias_add_act: `a` is NULL");
    tg_scope_end(s);
}

/* ---- softmax cross-entropy ---------------------------------------------------------------------- */
typedef struct xent_case {
    const tg_tensor *labels; /* int labels (sparse) or float labels */
} xent_case;

static tg_tensor *fused_xent(tg_tensor *const *xs, int n, void *u)
{
    const tg_tensor *labels = n > 1 ? xs[1] : ((xent_case *)u)->labels;
    return tg_dtype_is_float(tg_dtype_of(labels)) ? tg_softmax_cross_entropy_with_logits(labels, xs[0])
                                                  : tg_sparse_softmax_cross_entropy_with_logits(labels, xs[0]);
}

/* The chain the losses used before: -sum(onehot * log_softmax(z), -1). */
static tg_tensor *unfused_xent(tg_tensor *const *xs, int n, void *u)
{
    const tg_tensor *labels = n > 1 ? xs[1] : ((xent_case *)u)->labels;
    const tg_tensor *z = xs[0];
    tg_tensor *y = tg_dtype_is_float(tg_dtype_of(labels)) ? (tg_tensor *)labels
                                                          : tg_cast(tg_one_hot(labels, tg_dim(z, -1)), tg_dtype_of(z));
    if (y && tg_dtype_of(y) != tg_dtype_of(z))
        y = tg_cast(y, tg_dtype_of(z));
    return tg_neg(tg_sum(tg_mul(y, tg_log_softmax(z, -1)), .axes = TG_AXES(-1)));
}

static tg_tensor *labels_of(uint64_t seed, tg_shape shape, int64_t classes, tg_dtype dtype)
{
    tg_rng *r = tg_rng_new(seed);
    int64_t n = 1;
    for (int i = 0; i < shape.rank; i++)
        n *= shape.dims[i];
    int64_t *v = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = (int64_t)(tg_rng_next(r) % (uint64_t)classes);
    tg_rng_free(r);
    tg_tensor *t = tg_cast(tg_tensor_from(TG_I64, shape, v), dtype);
    free(v);
    return t;
}

/* Rows of probabilities (each row sums to 1), like smoothed one-hot labels. */
static tg_tensor *soft_labels(uint64_t seed, tg_shape shape) { return tg_softmax(gc_input(seed, shape, -2, 2), -1); }

static void test_xent_values(void)
{
    tg_scope *s = tg_scope_begin();
    /* By hand: -log_softmax([1, 2, 3])[2] = log(1 + e^-1 + e^-2). */
    tg_tensor *z = tg_from_f32(TG_SHAPE(2, 3), 1, 2, 3, 0, 0, 0);
    CHECK_VALUES(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i32(TG_SHAPE(2), 2, 1), z), 1e-7,
                 log(1 + exp(-1.0) + exp(-2.0)), log(3.0));
    CHECK_VALUES(tg_softmax_cross_entropy_with_logits(tg_from_f32(TG_SHAPE(2, 3), 0, 0, 1, 0.5, 0.5, 0), z), 1e-7,
                 log(1 + exp(-1.0) + exp(-2.0)), log(3.0));
    /* Stable at large logits. */
    CHECK_VALUES(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i64(TG_SHAPE(1), 0),
                                                             tg_from_f32(TG_SHAPE(1, 2), 1000, -1000)),
                 0, 0);
    /* The chain's bits: sparse (int32, int64) and dense labels, rank 2 and 3, small and
     * large (threaded), float32 and float64. */
    const tg_shape shapes[] = {TG_SHAPE(4, 5), TG_SHAPE(2, 3, 7), TG_SHAPE(4000, 10)};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        tg_shape ls = shapes[k];
        ls.rank--;
        int64_t classes = shapes[k].dims[shapes[k].rank - 1];
        for (int d = 0; d < 2; d++) {
            tg_tensor *z64 = gc_input(40 + k, shapes[k], -4, 4);
            tg_tensor *zs[1] = {d ? tg_cast(z64, TG_F32) : z64};
            xent_case c32 = {labels_of(50 + k, ls, classes, TG_I32)}, c64 = {labels_of(50 + k, ls, classes, TG_I64)};
            tg_tensor *dense = soft_labels(60 + k, shapes[k]);
            xent_case cd = {d ? tg_cast(dense, TG_F32) : dense};
            CHECK(agree("sparse xent int32", fused_xent(zs, 1, &c32), unfused_xent(zs, 1, &c32), 0));
            CHECK(agree("sparse xent int64", fused_xent(zs, 1, &c64), unfused_xent(zs, 1, &c64), 0));
            CHECK(agree("dense xent", fused_xent(zs, 1, &cd), unfused_xent(zs, 1, &cd), 0));
        }
    }
    tg_scope_end(s);
}

static void test_xent_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    /* Against the chain's gradients in float32: the same within rounding. */
    tg_tensor *z32 = tg_cast(gc_input(73, TG_SHAPE(300, 10), -4, 4), TG_F32);
    tg_tensor *w = tg_cast(gc_input(74, TG_SHAPE(300), 0.5, 1.5), TG_F32), *gf, *gu;
    xent_case big = {labels_of(75, TG_SHAPE(300), 10, TG_I32)};
    grads_of(fused_xent, &z32, 1, &big, w, &gf);
    grads_of(unfused_xent, &z32, 1, &big, w, &gu);
    CHECK(agree("sparse xent gradient vs chain", gf, gu, 3e-7));
    tg_tensor *d32[2] = {z32, tg_cast(soft_labels(76, TG_SHAPE(300, 10)), TG_F32)}, *gfd[2], *gud[2];
    grads_of(fused_xent, d32, 2, NULL, w, gfd);
    grads_of(unfused_xent, d32, 2, NULL, w, gud);
    CHECK(agree("dense xent d/dlogits vs chain", gfd[0], gud[0], 3e-7));
    CHECK(agree("dense xent d/dlabels vs chain", gfd[1], gud[1], 3e-7));
    tg_scope_end(s);
}

static void test_xent_second_order(void)
{
    tg_scope *s = tg_scope_begin();
    /* The Hessian of logsumexp(z) - z_k is diag(p) - p p^T; its product with v is
     * p * (v - p.v). */
    const double zv[3] = {0.2, -1.0, 1.5}, vv[3] = {1.0, -2.0, 0.5};
    tg_tensor *z = tg_tensor_from(TG_F64, TG_SHAPE(1, 3), zv), *v = tg_tensor_from(TG_F64, TG_SHAPE(1, 3), vv);
    tg_tape *outer = tg_tape_begin();
    tg_watch(outer, z);
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, z);
    tg_tensor *loss = tg_sum(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i32(TG_SHAPE(1), 1), z));
    tg_tape_end(inner);
    tg_tensor *g = tg_gradient(inner, loss, z);
    tg_tensor *gv = tg_sum(tg_mul(g, v));
    tg_tape_end(outer);
    tg_tensor *hv = tg_gradient(outer, gv, z);
    double p[3], sum = 0, pv = 0;
    for (int i = 0; i < 3; i++)
        sum += exp(zv[i]);
    for (int i = 0; i < 3; i++)
        pv += (p[i] = exp(zv[i]) / sum) * vv[i];
    CHECK_VALUES(hv, 1e-12, p[0] * (vv[0] - pv), p[1] * (vv[1] - pv), p[2] * (vv[2] - pv));
    tg_tape_free(inner);
    tg_tape_free(outer);
    tg_scope_end(s);
}

static void test_xent_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *z = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    CHECK(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i32(TG_SHAPE(2), 0, 3), z) == NULL);
    CHECK_ERROR("tg_sparse_softmax_cross_entropy_with_logits: Received a label value of 3 (labels[1]) which is outside "
                "the valid range of [0, 3)");
    EXPECT_ERROR(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i64(TG_SHAPE(2), -1, 0), z) == NULL,
                 "Received a label value of -1 (labels[0])");
    EXPECT_ERROR(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i32(TG_SHAPE(3), 0, 1, 2), z) == NULL,
                 "`labels` (3,) must have the shape of `logits` (2, 3) without its last axis");
    EXPECT_ERROR(tg_sparse_softmax_cross_entropy_with_logits(tg_zeros(TG_F32, TG_SHAPE(2)), z) == NULL,
                 "`labels` must hold int32 or int64 class indices, not float32");
    CHECK(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i32(TG_SHAPE(2), 0, 1),
                                                      tg_zeros(TG_I32, TG_SHAPE(2, 3))) == NULL);
    CHECK_ERROR("`logits` must be float32 or float64, not int32");
    EXPECT_ERROR(tg_sparse_softmax_cross_entropy_with_logits(tg_from_i32(TG_SHAPE(1), 0), tg_scalar(1.0)) == NULL,
                 "`logits` is a scalar; it needs a last axis of classes");
    EXPECT_ERROR(tg_softmax_cross_entropy_with_logits(tg_zeros(TG_F32, TG_SHAPE(2, 2)), z) == NULL,
                 "tg_softmax_cross_entropy_with_logits: `labels` (2, 2) and `logits` (2, 3) must have one shape");
    EXPECT_ERROR(tg_softmax_cross_entropy_with_logits(tg_zeros(TG_F64, TG_SHAPE(2, 3)), z) == NULL,
                 "cannot mix float64 and float32");
    tg_clear_error();
    EXPECT_ERROR(tg_softmax_cross_entropy_with_logits(NULL, z) == NULL,
                 "tg_softmax_cross_entropy_with_logits: `a` is NULL");
    tg_scope_end(s);
}

/* ---- pools: the direct ops against the chain they replace ---------------------------------------- */
typedef struct pool_case {
    int64_t kh, kw, sh, sw;
    tg_padding pad;
    bool is_max;
} pool_case;

static tg_tensor *direct_pool(tg_tensor *const *xs, int n, void *u)
{
    (void)n;
    const pool_case *p = u;
    tg_pool2d_opts o = {.pool_size = {p->kh, p->kw}, .strides = {p->sh, p->sw}, .padding = p->pad};
    return p->is_max ? tg_max_pool2d_at(TG_LOC, xs[0], o) : tg_avg_pool2d_at(TG_LOC, xs[0], o);
}

/* max or mean over extract_patches seen as [N, OH, OW, KH*KW, C] (-inf padding for the
 * max; SAME averages divide by the real positions). */
static tg_tensor *chain_pool(tg_tensor *const *xs, int n, void *u)
{
    (void)n;
    const pool_case *p = u;
    const tg_tensor *x = xs[0];
    tg_tensor *patches = tg_extract_patches(x, p->kh, p->kw, p->sh, p->sw, p->pad);
    if (!patches)
        return NULL;
    int64_t N = tg_dim(patches, 0), OH = tg_dim(patches, 1), OW = tg_dim(patches, 2), C = tg_dim(x, 3);
    if (p->is_max) { /* padded positions must never win: push them to -inf */
        tg_tensor *ones = tg_extract_patches(tg_ones_like(x), p->kh, p->kw, p->sh, p->sw, p->pad);
        tg_tensor *real = tg_greater(ones, tg_scalar_like(ones, 0.5));
        patches = tg_where(real, patches, tg_scalar_like(patches, -INFINITY));
    }
    tg_tensor *win = tg_reshape(patches, TG_SHAPE(N, OH, OW, p->kh * p->kw, C));
    if (p->is_max)
        return tg_max(win, .axes = TG_AXES(3));
    int64_t H = tg_dim(x, 1), W = tg_dim(x, 2);
    bool padded = p->pad == TG_PADDING_SAME && ((OH - 1) * p->sh + p->kh > H || (OW - 1) * p->sw + p->kw > W);
    if (!padded)
        return tg_mean(win, .axes = TG_AXES(3));
    tg_tensor *count = tg_extract_patches(tg_ones_like(x), p->kh, p->kw, p->sh, p->sw, p->pad);
    count = tg_sum(tg_reshape(count, TG_SHAPE(N, OH, OW, p->kh * p->kw, C)), .axes = TG_AXES(3));
    return tg_div(tg_sum(win, .axes = TG_AXES(3)), count);
}

static const pool_case POOLS[] = {
    {2, 2, 2, 2, TG_PADDING_VALID, true},  {3, 3, 1, 1, TG_PADDING_SAME, true},  {3, 2, 2, 1, TG_PADDING_SAME, true},
    {2, 2, 2, 2, TG_PADDING_VALID, false}, {3, 3, 2, 2, TG_PADDING_SAME, false}, {2, 3, 1, 2, TG_PADDING_SAME, false},
};
#define N_POOLS ((int)(sizeof POOLS / sizeof POOLS[0]))

static void test_pools_match_chain(void)
{
    tg_scope *s = tg_scope_begin();
    for (int i = 0; i < N_POOLS; i++) {
        pool_case p = POOLS[i];
        char name[64];
        snprintf(name, sizeof name, "pool case %d", i);
        /* Coarse values: ties in max windows, which the values do not mind. */
        tg_tensor *x =
            tg_floor(tg_mul(gc_input(90 + (uint64_t)i, TG_SHAPE(2, 7, 6, 3), -2, 2), tg_scalar_of(TG_F64, 2)));
        tg_tensor *x32 = tg_cast(x, TG_F32), *w = gc_input(99, tg_shape_of(direct_pool(&x, 1, &p)), 0.5, 1.5);
        CHECK(agree(name, direct_pool(&x32, 1, &p), chain_pool(&x32, 1, &p), 0));
        CHECK(agree(name, direct_pool(&x, 1, &p), chain_pool(&x, 1, &p), 0));
        /* Gradients on distinct values: the chain's reduce_max shares a tie, the pool does
         * not (test_max_pool_ties). */
        tg_tensor *xd = gc_input(90 + (uint64_t)i, TG_SHAPE(2, 7, 6, 3), -2, 2), *gd, *gc;
        grads_of(direct_pool, &xd, 1, &p, w, &gd);
        grads_of(chain_pool, &xd, 1, &p, w, &gc);
        CHECK(agree(name, gd, gc, 0));
    }
    tg_scope_end(s);
}

/* Ties in a window: all of its gradient goes to the first maximum in row-major order, as
 * TF's CPU MaxPoolGrad and PyTorch give it (PyTorch's numbers, torch.nn.functional.max_pool2d
 * on this image), unlike reduce_max, which shares it. Second order follows the same choice. */
static void test_max_pool_ties(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(1, 4, 4, 1), 1, 3, 3, 0, 3, 2, 1, 1, 0, 0, 5, 5, 0, 0, 5, 5);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_tensor *y = tg_max_pool2d(x, .pool_size = {2, 2});
    tg_tensor *l = tg_sum(tg_mul(y, tg_from_f64(TG_SHAPE(1, 2, 2, 1), 10, 20, 30, 40)));
    tg_tensor *y3 = tg_max_pool2d(x, .pool_size = {3, 3}, .strides = {1, 1});
    tg_tensor *l3 = tg_sum(tg_mul(y3, tg_from_f64(TG_SHAPE(1, 2, 2, 1), 1, 2, 3, 4)));
    tg_tape_end(t);
    CHECK_VALUES(y, 0, 3, 3, 0, 5);
    CHECK_VALUES(tg_gradient(t, l, x), 0, 0, 10, 20, 0, 0, 0, 0, 0, 30, 0, 40, 0, 0, 0, 0, 0);
    CHECK_VALUES(tg_gradient(t, l3, x), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0);
    tg_tape_free(t);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_bias_act_values);
    RUN(test_bias_act_gradients);
    RUN(test_bias_act_gradient_one_pass);
    RUN(test_bias_act_errors);
    RUN(test_xent_values);
    RUN(test_xent_gradients);
    RUN(test_xent_second_order);
    RUN(test_xent_errors);
    RUN(test_pools_match_chain);
    RUN(test_max_pool_ties);
    return TEST_SUMMARY();
}
