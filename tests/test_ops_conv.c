/* Convolution and pooling: extract_patches / patches_to_image by hand and as adjoints,
 * conv2d and the pools against naive loops written here (TF's padding rule), hand-made
 * SAME cases (even kernels, stride 2, padding before and after), pool gradients by hand,
 * errors. Finite differences, second order through conv2d and float32 against float64
 * are the op table test's (tests/test_op_table.c), on the same geometries. */
#include "gradcheck.h"

/* ---- naive references ------------------------------------------------------------------------ */
typedef struct geom {
    int64_t kh, kw, sh, sw;
    tg_padding pad;
} geom;

/* TF's output size and padding before, for one axis. */
static int64_t ref_out(int64_t in, int64_t k, int64_t s, tg_padding pad, int64_t *before)
{
    if (pad == TG_PADDING_VALID) {
        *before = 0;
        return (in - k) / s + 1;
    }
    int64_t out = (in + s - 1) / s, total = (out - 1) * s + k - in;
    *before = total > 0 ? total / 2 : 0;
    return out;
}

static double *values_of(const tg_tensor *t)
{
    double *v = malloc(sizeof(double) * (size_t)(tg_size(t) ? tg_size(t) : 1));
    tg_copy_out_f64(t, v, tg_size(t));
    return v;
}

/* got against the naive values (check.h's comparison); `what` names it in a failure. */
static bool same_values(const char *what, const tg_tensor *got, const double *want, tg_shape want_shape, double tol)
{
    int64_t n = 1;
    for (int i = 0; i < want_shape.rank; i++)
        n *= want_shape.dims[i];
    return tensor_matches_(__FILE__, __LINE__, what, got, &want_shape, want, n, tol);
}

/* Direct convolution (cross-correlation, as TF), out-of-image positions read as 0. */
static bool conv_matches_naive(const tg_tensor *x, const tg_tensor *k, geom g, double tol)
{
    tg_shape xs = tg_shape_of(x), ks = tg_shape_of(k);
    int64_t N = xs.dims[0], H = xs.dims[1], W = xs.dims[2], C = xs.dims[3], F = ks.dims[3], pt, pl;
    int64_t OH = ref_out(H, g.kh, g.sh, g.pad, &pt), OW = ref_out(W, g.kw, g.sw, g.pad, &pl);
    double *xv = values_of(x), *kv = values_of(k), *want = calloc((size_t)(N * OH * OW * F), sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++)
                for (int64_t f = 0; f < F; f++) {
                    double s = 0;
                    for (int64_t a = 0; a < g.kh; a++)
                        for (int64_t b = 0; b < g.kw; b++) {
                            int64_t r = i * g.sh - pt + a, c = j * g.sw - pl + b;
                            if (r < 0 || r >= H || c < 0 || c >= W)
                                continue;
                            for (int64_t q = 0; q < C; q++)
                                s += xv[((n * H + r) * W + c) * C + q] * kv[((a * g.kw + b) * C + q) * F + f];
                        }
                    want[((n * OH + i) * OW + j) * F + f] = s;
                }
    tg_tensor *y = tg_conv2d(x, k, .strides = {g.sh, g.sw}, .padding = g.pad);
    bool ok = same_values("conv2d", y, want, TG_SHAPE(N, OH, OW, F), tol);
    free(xv), free(kv), free(want);
    return ok;
}

/* Max or mean over the real positions of each window. */
static bool pool_matches_naive(const tg_tensor *x, geom g, bool is_max, double tol)
{
    tg_shape xs = tg_shape_of(x);
    int64_t N = xs.dims[0], H = xs.dims[1], W = xs.dims[2], C = xs.dims[3], pt, pl;
    int64_t OH = ref_out(H, g.kh, g.sh, g.pad, &pt), OW = ref_out(W, g.kw, g.sw, g.pad, &pl);
    double *xv = values_of(x), *want = calloc((size_t)(N * OH * OW * C), sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++)
                for (int64_t q = 0; q < C; q++) {
                    double acc = is_max ? -INFINITY : 0;
                    int count = 0;
                    for (int64_t a = 0; a < g.kh; a++)
                        for (int64_t b = 0; b < g.kw; b++) {
                            int64_t r = i * g.sh - pt + a, c = j * g.sw - pl + b;
                            if (r < 0 || r >= H || c < 0 || c >= W)
                                continue;
                            double v = xv[((n * H + r) * W + c) * C + q];
                            acc = is_max ? fmax(acc, v) : acc + v;
                            count++;
                        }
                    want[((n * OH + i) * OW + j) * C + q] = is_max ? acc : acc / count;
                }
    tg_pool2d_opts o = {.pool_size = {g.kh, g.kw}, .strides = {g.sh, g.sw}, .padding = g.pad};
    tg_tensor *y = is_max ? tg_max_pool2d_at(TG_LOC, x, o) : tg_avg_pool2d_at(TG_LOC, x, o);
    bool ok = same_values(is_max ? "max_pool2d" : "avg_pool2d", y, want, TG_SHAPE(N, OH, OW, C), tol);
    free(xv), free(want);
    return ok;
}

/* ---- extract_patches and patches_to_image ---------------------------------------------------- */
static void test_patches_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    /* x[r][c][ch] = 10r + c + 100ch on a 3x3 image with two channels. */
    double xv[18];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            for (int ch = 0; ch < 2; ch++)
                xv[(r * 3 + c) * 2 + ch] = 10 * r + c + 100 * ch;
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 3, 2), xv);
    tg_tensor *p = tg_extract_patches(x, 2, 2, 1, 1, TG_PADDING_VALID);
    CHECK(tg_rank(p) == 4 && tg_dim(p, 1) == 2 && tg_dim(p, 2) == 2 && tg_dim(p, 3) == 8);
    /* Rows ordered (kh, kw, channel), as a kernel [KH, KW, C, F]. */
    CHECK_VALUES(p, 0, 0, 100, 1, 101, 10, 110, 11, 111, /* window at (0, 0) */
                 1, 101, 2, 102, 11, 111, 12, 112,       /* (0, 1) */
                 10, 110, 11, 111, 20, 120, 21, 121,     /* (1, 0) */
                 11, 111, 12, 112, 21, 121, 22, 122);    /* (1, 1) */

    /* SAME, 2x2, stride 2 on 3x3: pad 1 after (none before); padded positions are 0. */
    tg_tensor *y = tg_reshape(tg_arange(TG_F32, 1, 10, 1), TG_SHAPE(1, 3, 3, 1));
    CHECK_VALUES(tg_extract_patches(y, 2, 2, 2, 2, TG_PADDING_SAME), 0, 1, 2, 4, 5, 3, 0, 6, 0, 7, 8, 0, 0, 9, 0, 0, 0);
    /* SAME, 3x3, stride 1 on a 1x2 image: one position of padding on every side. */
    tg_tensor *z = tg_from_f64(TG_SHAPE(1, 1, 2, 1), 5, 6);
    CHECK_VALUES(tg_extract_patches(z, 3, 3, 1, 1, TG_PADDING_SAME), 0, 0, 0, 0, 0, 5, 6, 0, 0, 0, /* (0, 0) */
                 0, 0, 0, 5, 6, 0, 0, 0, 0);                                                       /* (0, 1) */

    /* col2im of ones counts how many windows cover each pixel. */
    tg_tensor *ones = tg_ones(TG_F64, TG_SHAPE(1, 2, 2, 4));
    CHECK_VALUES(tg_patches_to_image(ones, 3, 3, 2, 2, 1, 1, TG_PADDING_VALID), 0, 1, 2, 1, 2, 4, 2, 1, 2, 1);
    tg_tensor *ones_same = tg_ones(TG_F32, TG_SHAPE(1, 2, 2, 4));
    CHECK_VALUES(tg_patches_to_image(ones_same, 3, 3, 2, 2, 2, 2, TG_PADDING_SAME), 0, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    tg_scope_end(s);
}

/* <P x, y> == <x, P^T y>: patches_to_image is exactly extract_patches' adjoint. */
static void test_patches_adjoint(void)
{
    static const struct {
        int64_t h, w, c;
        geom g;
    } cases[] = {
        {5, 5, 2, {3, 3, 1, 1, TG_PADDING_VALID}}, {5, 6, 3, {2, 2, 2, 2, TG_PADDING_SAME}},
        {4, 7, 1, {4, 3, 1, 2, TG_PADDING_SAME}},  {6, 6, 2, {2, 3, 3, 1, TG_PADDING_VALID}},
        {3, 3, 2, {1, 1, 2, 2, TG_PADDING_SAME}},  {5, 4, 2, {5, 4, 1, 1, TG_PADDING_SAME}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_scope *s = tg_scope_begin();
        geom g = cases[i].g;
        tg_tensor *x = gc_input(100 + i, TG_SHAPE(2, cases[i].h, cases[i].w, cases[i].c), -1, 1);
        tg_tensor *px = tg_extract_patches(x, g.kh, g.kw, g.sh, g.sw, g.pad);
        tg_tensor *y = gc_input(200 + i, tg_shape_of(px), -1, 1);
        tg_tensor *pty = tg_patches_to_image(y, cases[i].h, cases[i].w, g.kh, g.kw, g.sh, g.sw, g.pad);
        CHECK_NEAR(tg_item(tg_sum(tg_mul(px, y))), tg_item(tg_sum(tg_mul(x, pty))), 1e-12);
        tg_scope_end(s);
    }
}

/* ---- conv2d ---------------------------------------------------------------------------------------- */
static void test_conv_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    /* A 2x2 kernel [[1, 2], [3, 4]] over x[r][c] = 5r + c + 1 (5x5), stride 2, SAME:
     * 3x3 outputs, one row and column of padding after. Inside: 10a + 41 for the
     * window's top-left a; right column a + 3(a + 5); bottom row a + 2(a + 1). */
    tg_tensor *x = tg_reshape(tg_arange(TG_F64, 1, 26, 1), TG_SHAPE(1, 5, 5, 1));
    tg_tensor *k = tg_reshape(tg_from_f64(TG_SHAPE(4), 1, 2, 3, 4), TG_SHAPE(2, 2, 1, 1));
    tg_tensor *y = tg_conv2d(x, k, .strides = {2, 2}, .padding = TG_PADDING_SAME);
    CHECK(tg_rank(y) == 4 && tg_dim(y, 1) == 3 && tg_dim(y, 2) == 3 && tg_dim(y, 3) == 1);
    CHECK_VALUES(y, 0, 51, 71, 35, 151, 171, 75, 65, 71, 25);
    /* VALID drops the last row and column: 2x2. */
    CHECK_VALUES(tg_conv2d(x, k, .strides = {2, 2}), 0, 51, 71, 151, 171);

    /* A 1x4 kernel over [1, 2, 3, 4], SAME, stride 1: 3 positions of padding, 1 before
     * and 2 after, so the windows are [0 1 2 3], [1 2 3 4], [2 3 4 0], [3 4 0 0]. */
    tg_tensor *row = tg_from_f32(TG_SHAPE(1, 1, 4, 1), 1, 2, 3, 4);
    tg_tensor *k4 = tg_reshape(tg_from_f32(TG_SHAPE(4), 1, 10, 100, 1000), TG_SHAPE(1, 4, 1, 1));
    CHECK_VALUES(tg_conv2d(row, k4, .padding = TG_PADDING_SAME), 0, 3210, 4321, 432, 43);

    /* Two channels in, two filters out, 1x1 kernel: a matrix product per pixel. */
    tg_tensor *px = tg_from_f64(TG_SHAPE(1, 1, 2, 2), 1, 2, 3, 4);
    tg_tensor *k11 = tg_from_f64(TG_SHAPE(1, 1, 2, 2), 1, 10, 100, 1000);
    CHECK_VALUES(tg_conv2d(px, k11), 0, 201, 2010, 403, 4030);
    CHECK_VALUES(tg_conv2d(px, k11, .strides = {1, 2}), 0, 201, 2010);
    tg_scope_end(s);
}

static const struct ccase {
    int64_t n, h, w, c, f;
    geom g;
} conv_cases[] = {
    {2, 5, 5, 3, 2, {3, 3, 1, 1, TG_PADDING_VALID}}, {1, 6, 5, 2, 3, {2, 3, 2, 1, TG_PADDING_SAME}},
    {2, 4, 4, 2, 3, {1, 1, 1, 1, TG_PADDING_SAME}},  {1, 5, 5, 1, 2, {4, 4, 2, 2, TG_PADDING_SAME}},
    {1, 7, 6, 2, 2, {3, 2, 3, 2, TG_PADDING_VALID}}, {2, 3, 3, 2, 1, {1, 1, 2, 2, TG_PADDING_VALID}},
    {1, 4, 5, 2, 2, {2, 2, 2, 2, TG_PADDING_SAME}},
};
#define N_CONV ((int)(sizeof conv_cases / sizeof conv_cases[0]))

static void test_conv_matches_naive(void)
{
    for (int i = 0; i < N_CONV; i++) {
        tg_scope *s = tg_scope_begin();
        const struct ccase *c = &conv_cases[i];
        tg_tensor *x = gc_input(10 + i, TG_SHAPE(c->n, c->h, c->w, c->c), -1, 1);
        tg_tensor *k = gc_input(30 + i, TG_SHAPE(c->g.kh, c->g.kw, c->c, c->f), -1, 1);
        CHECK(conv_matches_naive(x, k, c->g, 1e-12));
        CHECK(conv_matches_naive(tg_cast(x, TG_F32), tg_cast(k, TG_F32), c->g, 1e-5));
        tg_scope_end(s);
    }
}

/* ---- pooling ---------------------------------------------------------------------------------------- */
static void test_pool_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_arange(TG_F32, 1, 10, 1), TG_SHAPE(1, 3, 3, 1));
    /* SAME 2x2 stride 2 on 3x3: windows {1,2,4,5}, {3,6}, {7,8}, {9}; TF averages over
     * the real positions only. */
    CHECK_VALUES(tg_max_pool2d(x, .padding = TG_PADDING_SAME), 0, 5, 6, 8, 9);
    CHECK_VALUES(tg_avg_pool2d(x, .padding = TG_PADDING_SAME), 1e-7, 3, 4.5, 7.5, 9);
    CHECK_VALUES(tg_max_pool2d(x), 0, 5); /* VALID: the default strides are the pool size */
    CHECK_VALUES(tg_avg_pool2d(x, .strides = {1, 1}), 1e-7, 3, 4, 6, 7);
    /* All negative: padding must never win the max (it would give 0 here). */
    tg_tensor *neg = tg_neg(x);
    CHECK_VALUES(tg_max_pool2d(neg, .padding = TG_PADDING_SAME), 0, -1, -3, -7, -9);
    CHECK_VALUES(tg_max_pool2d(neg, .pool_size = {3, 3}, .strides = {1, 1}, .padding = TG_PADDING_SAME), 0, -1, -1, -2,
                 -1, -1, -2, -4, -4, -5);
    /* Per channel: channel 1 is channel 0 times 10. */
    tg_tensor *two = tg_from_f64(TG_SHAPE(1, 2, 2, 2), 1, 10, 4, 40, 2, 20, 3, 30);
    CHECK_VALUES(tg_max_pool2d(two), 0, 4, 40);
    CHECK_VALUES(tg_avg_pool2d(two), 1e-12, 2.5, 25);
    CHECK_VALUES(tg_global_avg_pool2d(two), 1e-12, 2.5, 25);
    CHECK(tg_rank(tg_global_avg_pool2d(two)) == 2);
    tg_scope_end(s);
}

static const geom pool_cases[] = {
    {2, 2, 2, 2, TG_PADDING_VALID}, {2, 2, 2, 2, TG_PADDING_SAME},  {3, 3, 1, 1, TG_PADDING_SAME},
    {3, 2, 2, 1, TG_PADDING_SAME},  {2, 3, 1, 2, TG_PADDING_VALID}, {4, 4, 3, 3, TG_PADDING_SAME},
};
#define N_POOL ((int)(sizeof pool_cases / sizeof pool_cases[0]))

static void test_pool_matches_naive(void)
{
    for (int i = 0; i < N_POOL; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x = gc_input(120 + i, TG_SHAPE(2, 5, 6, 3), -2, 1);
        CHECK(pool_matches_naive(x, pool_cases[i], true, 0));
        CHECK(pool_matches_naive(x, pool_cases[i], false, 1e-12));
        CHECK(pool_matches_naive(tg_cast(x, TG_F32), pool_cases[i], false, 1e-6));
        tg_scope_end(s);
    }
}

/* Gradient values by hand (finite differences and float32: tests/test_op_table.c). */
static void test_pool_gradients(void)
{
    tg_scope *s = tg_scope_begin();
    /* The max's gradient goes to the window's winner only: x = 1..9 (3x3), SAME 2x2
     * stride 2: winners 5, 6, 8 and 9 get 1 each. */
    tg_tensor *v = tg_reshape(tg_arange(TG_F64, 1, 10, 1), TG_SHAPE(1, 3, 3, 1));
    tg_tape *t = tg_tape_begin();
    tg_watch(t, v);
    tg_tensor *y = tg_sum(tg_max_pool2d(v, .padding = TG_PADDING_SAME));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, y, v), 0, 0, 0, 0, 0, 1, 1, 0, 1, 1);
    tg_tape_free(t);
    /* The average's gradient is 1 / (real positions of the window). */
    t = tg_tape_begin();
    tg_watch(t, v);
    y = tg_sum(tg_avg_pool2d(v, .padding = TG_PADDING_SAME));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, y, v), 1e-12, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* ---- errors ----------------------------------------------------------------------------------------- */
static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(1, 4, 4, 3)), *k = tg_zeros(TG_F32, TG_SHAPE(3, 3, 3, 8));
    CHECK(tg_conv2d(tg_zeros(TG_F32, TG_SHAPE(4, 3)), k) == NULL);
    CHECK_ERROR("tg_conv2d: the input must have rank 4, [batch, height, width, channels] (NHWC), but has shape "
                "(4, 3)");
    EXPECT_ERROR(tg_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(3, 3, 3))) == NULL,
                 "tg_conv2d: `kernel` must have rank 4, [kh, kw, in_channels, filters], but has shape (3, 3, 3)");
    EXPECT_ERROR(tg_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(3, 3, 2, 8))) == NULL,
                 "tg_conv2d: `x` of shape (1, 4, 4, 3) has 3 channels but `kernel` of shape (3, 3, 2, 8) expects 2");
    CHECK(tg_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(5, 5, 3, 1))) == NULL);
    CHECK_ERROR("tg_conv2d: with VALID padding the window (5, 5) must fit in the input's height and width, but the "
                "input has shape (1, 4, 4, 3); use TG_PADDING_SAME or a smaller window");
    CHECK(tg_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(5, 5, 3, 1)), .padding = TG_PADDING_SAME) != NULL);
    EXPECT_ERROR(tg_conv2d(x, k, .strides = {0, 1}) == NULL, "tg_conv2d: strides (0, 1) must be positive");
    EXPECT_ERROR(tg_conv2d(x, k, .strides = {1, -2}) == NULL, "tg_conv2d: strides (1, -2) must be positive");
    EXPECT_ERROR(tg_conv2d(x, k, .padding = (tg_padding)7) == NULL,
                 "tg_conv2d: padding 7 is neither TG_PADDING_VALID nor TG_PADDING_SAME");
    EXPECT_ERROR(tg_conv2d(x, tg_zeros(TG_F64, TG_SHAPE(3, 3, 3, 8))) == NULL,
                 "tg_conv2d: cannot mix float32 `x` and float64 `kernel`");
    EXPECT_ERROR(tg_conv2d(tg_zeros(TG_I32, TG_SHAPE(1, 4, 4, 3)), tg_zeros(TG_I32, TG_SHAPE(3, 3, 3, 8))) == NULL,
                 "tg_conv2d: `x` must be float32 or float64, not int32");
    tg_clear_error();
    EXPECT_ERROR(tg_conv2d(NULL, k) == NULL, "tg_conv2d: `x` is NULL");
    tg_clear_error();
    EXPECT_ERROR(tg_conv2d(x, NULL) == NULL, "tg_conv2d: `kernel` is NULL");

    EXPECT_ERROR(tg_max_pool2d(x, .pool_size = {0, 2}) == NULL,
                 "tg_max_pool2d: the window size (0, 2) must be positive");
    EXPECT_ERROR(tg_avg_pool2d(x, .pool_size = {5, 1}) == NULL,
                 "tg_avg_pool2d: with VALID padding the window (5, 1) must fit");
    EXPECT_ERROR(tg_avg_pool2d(x, .strides = {-1, 2}) == NULL, "tg_avg_pool2d: strides (-1, 2) must be positive");
    EXPECT_ERROR(tg_max_pool2d(tg_zeros(TG_F32, TG_SHAPE(4, 4, 3))) == NULL,
                 "tg_max_pool2d: the input must have rank 4");
    CHECK(tg_global_avg_pool2d(tg_zeros(TG_F32, TG_SHAPE(4, 4))) == NULL);
    CHECK_ERROR("tg_global_avg_pool2d: the input must have rank 4, [batch, height, width, channels] (NHWC), but "
                "has shape (4, 4)");

    EXPECT_ERROR(tg_extract_patches(tg_zeros(TG_F32, TG_SHAPE(4, 4)), 2, 2, 1, 1, TG_PADDING_VALID) == NULL,
                 "tg_extract_patches: the input must have rank 4");
    EXPECT_ERROR(tg_extract_patches(x, 2, 2, 0, 1, TG_PADDING_VALID) == NULL,
                 "tg_extract_patches: strides (0, 1) must be positive");
    EXPECT_ERROR(tg_extract_patches(tg_zeros(TG_BOOL, TG_SHAPE(1, 2, 2, 1)), 1, 1, 1, 1, TG_PADDING_VALID) == NULL,
                 "tg_extract_patches: `x` must be float32 or float64, not bool");
    CHECK(tg_patches_to_image(tg_zeros(TG_F32, TG_SHAPE(1, 2, 2, 4)), 4, 4, 2, 2, 1, 1, TG_PADDING_VALID) == NULL);
    CHECK_ERROR("tg_patches_to_image: an image of shape (1, 4, 4, 1) gives 3 x 3 windows, but `patches` has shape "
                "(1, 2, 2, 4)");
    CHECK(tg_patches_to_image(tg_zeros(TG_F32, TG_SHAPE(1, 2, 2, 5)), 3, 3, 2, 2, 1, 1, TG_PADDING_VALID) == NULL);
    CHECK_ERROR("tg_patches_to_image: the last axis of `patches` (shape (1, 2, 2, 5)) must be kh*kw*channels, a "
                "multiple of kh*kw = 2*2");
    EXPECT_ERROR(tg_patches_to_image(tg_zeros(TG_F32, TG_SHAPE(2, 4)), 3, 3, 2, 2, 1, 1, TG_PADDING_VALID) == NULL,
                 "tg_patches_to_image: `patches` must have rank 4");
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_patches_by_hand);
    RUN(test_patches_adjoint);
    RUN(test_conv_by_hand);
    RUN(test_conv_matches_naive);
    RUN(test_pool_by_hand);
    RUN(test_pool_matches_naive);
    RUN(test_pool_gradients);
    RUN(test_errors);
    return TEST_SUMMARY();
}
