/* The convolution family beyond conv2d (issue 15): dilations, conv1d, depthwise_conv2d,
 * separable_conv2d, conv2d_transpose, the 1-D pools, and tf.image.resize. Forward values
 * and gradients against PyTorch's (tests/fixtures/conv_golden.txt, from
 * tools/make_conv_fixtures.py, which builds TF's conventions from PyTorch pieces), TF2's
 * nearest rule by hand (PyTorch's "nearest" differs), the adjoint identities, float64
 * finite differences and float32 against float64 (second order: the op table test),
 * errors naming the op and the caller's line. */
#define INDEX_GOLDEN_PATH TG_FIXTURES_DIR "/conv_golden.txt"
#include "gradcheck.h"
#include "index_golden.h"

/* ---- golden cases: NAME.x (NAME.k), NAME.y, NAME.w, NAME.dx (NAME.dk) ---------------------------- */
/* Sums of a few products in another order: rounding only. */
#define CONV_TOL 1e-12
/* TF computes resize's source coordinates and weights in float32 (kept here, so an index
 * on a rounding boundary lands where TF's does); PyTorch in float64: the weights differ
 * by up to float32's rounding, 6e-8 of a value. */
#define BILINEAR_TOL 1e-6

static bool golden_case2(const char *c, gc_fn f, int n, void *u, double tol)
{
    char name[4][80];
    const char *sfx[4] = {"x", "k", "dx", "dk"};
    tg_scope *s = tg_scope_begin();
    tg_tensor *xs[2] = {0};
    bool ok = true;
    for (int i = 0; i < n; i++) {
        snprintf(name[i], sizeof name[i], "%s.%s", c, sfx[i]);
        xs[i] = golden(name[i]);
        ok = ok && xs[i];
    }
    char ny[80], nw[80];
    snprintf(ny, sizeof ny, "%s.y", c);
    snprintf(nw, sizeof nw, "%s.w", c);
    if (ok) {
        tg_tape *tape = tg_tape_begin(.persistent = true);
        for (int i = 0; i < n; i++)
            tg_watch(tape, xs[i]);
        tg_tensor *y = f(xs, n, u), *w = golden(nw);
        tg_tensor *loss = y && w ? tg_sum(tg_mul(y, w)) : NULL;
        tg_tape_end(tape);
        ok = golden_matches(c, y, ny, tol);
        for (int i = 0; ok && i < n; i++) {
            snprintf(name[2 + i], sizeof name[2 + i], "%s.%s", c, sfx[2 + i]);
            ok = golden_matches(name[2 + i], loss ? tg_gradient(tape, loss, xs[i]) : NULL, name[2 + i], tol);
        }
        tg_tape_free(tape);
    }
    tg_scope_end(s);
    return ok;
}

typedef struct conv_args {
    int64_t sh, sw, dh, dw;
    tg_padding pad;
    tg_shape out;          /* conv2d_transpose's output_shape; resize's size in dims[0..1] */
    tg_resize_method mode; /* resize */
    const char *extra;     /* separable: the golden pointwise filter */
} conv_args;

static tg_conv2d_opts opts_of(const conv_args *a)
{
    return (tg_conv2d_opts){
        .strides = {a->sh ? a->sh : 1, a->sw ? a->sw : 1}, .padding = a->pad, .dilations = {a->dh, a->dw}};
}

#define CA                  \
    const conv_args *a = u; \
    (void)n
static tg_tensor *c_conv2d(tg_tensor *const *x, int n, void *u)
{
    CA;
    return tg_conv2d_at(TG_LOC, x[0], x[1], opts_of(a));
}
static tg_tensor *c_conv1d(tg_tensor *const *x, int n, void *u)
{
    CA;
    return tg_conv1d(x[0], x[1], .stride = a->sw ? a->sw : 1, .padding = a->pad, .dilation = a->dw);
}
static tg_tensor *c_depthwise(tg_tensor *const *x, int n, void *u)
{
    CA;
    return tg_depthwise_conv2d_at(TG_LOC, x[0], x[1], opts_of(a));
}
static tg_tensor *c_separable(tg_tensor *const *x, int n, void *u)
{
    CA;
    return tg_separable_conv2d_at(TG_LOC, x[0], x[1], tg_cast(golden(a->extra), tg_dtype_of(x[0])), opts_of(a));
}
static tg_tensor *c_transpose(tg_tensor *const *x, int n, void *u)
{
    CA;
    return tg_conv2d_transpose_at(TG_LOC, x[0], x[1], a->out, opts_of(a));
}
static tg_tensor *c_resize(tg_tensor *const *x, int n, void *u)
{
    CA;
    return tg_resize(x[0], a->out.dims[0], a->out.dims[1], .method = a->mode);
}

#define CARGS(...) (&(conv_args){__VA_ARGS__})
#define SHAPE4(a, b, c, d)                       \
    (tg_shape)                                   \
    {                                            \
        .rank = 4, .dims = {(a), (b), (c), (d) } \
    }

static const struct {
    const char *name;
    gc_fn f;
    int n;
    const conv_args *a;
    double tol;
} GOLDEN[] = {
    {"conv_dil22_valid", c_conv2d, 2, CARGS(.dh = 2, .dw = 2), CONV_TOL},
    {"conv_dil21_same", c_conv2d, 2, CARGS(.dh = 2, .dw = 1, .pad = TG_PADDING_SAME), CONV_TOL},
    {"conv_dil13_same_even", c_conv2d, 2, CARGS(.dh = 1, .dw = 3, .pad = TG_PADDING_SAME), CONV_TOL},
    {"conv1d_s2_same", c_conv1d, 2, CARGS(.sw = 2, .pad = TG_PADDING_SAME), CONV_TOL},
    {"conv1d_dil2_valid", c_conv1d, 2, CARGS(.dw = 2), CONV_TOL},
    {"depthwise_m2_s2_same", c_depthwise, 2, CARGS(.sh = 2, .sw = 2, .pad = TG_PADDING_SAME), CONV_TOL},
    {"depthwise_m1_dil2_valid", c_depthwise, 2, CARGS(.dh = 2, .dw = 2), CONV_TOL},
    {"separable_same", c_separable, 2, CARGS(.pad = TG_PADDING_SAME, .extra = "separable_same.pw"), CONV_TOL},
    {"transpose_s2_same", c_transpose, 2, CARGS(.sh = 2, .sw = 2, .pad = TG_PADDING_SAME, .out = {4, {1, 6, 5, 2}}),
     CONV_TOL},
    {"transpose_s2_valid_extra", c_transpose, 2, CARGS(.sh = 2, .sw = 2, .out = {4, {2, 6, 6, 1}}), CONV_TOL},
    {"transpose_dil2_valid", c_transpose, 2, CARGS(.dh = 2, .dw = 2, .out = {4, {1, 5, 5, 2}}), CONV_TOL},
    {"resize_bilinear_up", c_resize, 1, CARGS(.out = {2, {6, 7}}, .mode = TG_RESIZE_BILINEAR), BILINEAR_TOL},
    {"resize_bilinear_down", c_resize, 1, CARGS(.out = {2, {3, 2}}, .mode = TG_RESIZE_BILINEAR), BILINEAR_TOL},
    {"resize_nearest_up", c_resize, 1, CARGS(.out = {2, {7, 6}}, .mode = TG_RESIZE_NEAREST), 0},
    {"resize_nearest_down", c_resize, 1, CARGS(.out = {2, {3, 2}}, .mode = TG_RESIZE_NEAREST), 0},
};
#define N_GOLDEN ((int)(sizeof GOLDEN / sizeof GOLDEN[0]))

static void test_golden(void)
{
    for (int k = 0; k < N_GOLDEN; k++)
        if (!golden_case2(GOLDEN[k].name, GOLDEN[k].f, GOLDEN[k].n, (void *)GOLDEN[k].a, GOLDEN[k].tol)) {
            printf("  FAIL golden case %s\n", GOLDEN[k].name);
            check_failures_in_test++;
        }
}

/* Finite differences in float64 and float32 against float64, on the golden geometries. */
static void test_gradients_and_f32(void)
{
    for (int k = 0; k < N_GOLDEN; k++) {
        tg_scope *s = tg_scope_begin();
        char nx[80], nk[80];
        snprintf(nx, sizeof nx, "%s.x", GOLDEN[k].name);
        snprintf(nk, sizeof nk, "%s.k", GOLDEN[k].name);
        tg_tensor *xs[2] = {golden(nx), GOLDEN[k].n > 1 ? golden(nk) : NULL};
        /* linear in each input: central differences are exact up to rounding */
        CHECK(gradcheck(GOLDEN[k].name, GOLDEN[k].f, xs, GOLDEN[k].n, (void *)GOLDEN[k].a, 1e-4, 1e-8));
        CHECK(f32_matches_f64(GOLDEN[k].name, GOLDEN[k].f, xs, GOLDEN[k].n, (void *)GOLDEN[k].a, 1e-6));
        tg_scope_end(s);
    }
}

/* ---- by hand ------------------------------------------------------------------------------------ */
/* TF2's nearest: floor((o + 0.5) * in / out). [1, 2] to 3: [1, 2, 2] (PyTorch's "nearest",
 * floor(o * in / out), gives [1, 1, 2]); [1, 2, 3, 4] to 3: in/out = 4/3, [1, 3, 4]. */
static void test_resize_by_hand(void)
{
    tg_scope *s = tg_scope_begin();
    CHECK_VALUES(tg_resize(tg_from_f64(TG_SHAPE(1, 1, 2, 1), 1, 2), 1, 3, .method = TG_RESIZE_NEAREST), 1e-15, 1, 2, 2);
    CHECK_VALUES(tg_resize(tg_from_f64(TG_SHAPE(1, 1, 4, 1), 1, 2, 3, 4), 1, 3, .method = TG_RESIZE_NEAREST), 1e-15, 1,
                 3, 4);
    /* bilinear [0, 4] to 4: sources -0.25, 0.25, 0.75, 1.25, clamped at the edges */
    CHECK_VALUES(tg_resize(tg_from_f64(TG_SHAPE(1, 1, 2, 1), 0, 4), 1, 4), 1e-15, 0, 1, 3, 4);
    /* rank 3 images, and the same size is the identity */
    tg_tensor *img = tg_from_f64(TG_SHAPE(2, 2, 1), 1, 2, 3, 4);
    CHECK_VALUES(tg_resize(img, 2, 2), 1e-15, 1, 2, 3, 4);
    CHECK(tg_rank(tg_resize(img, 3, 5)) == 3);
    /* nearest's gradient routes dy: [1, 2] to 3 gives dx = [dy0, dy1 + dy2] */
    tg_tensor *x = tg_from_f64(TG_SHAPE(1, 1, 2, 1), 1, 2);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_resize(x, 1, 3, .method = TG_RESIZE_NEAREST);
    tg_tensor *loss = tg_sum(tg_mul(y, tg_from_f64(TG_SHAPE(1, 1, 3, 1), 1, 10, 100)));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, loss, x), 1e-15, 1, 110);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* <conv2d(x), y> = <x, conv2d_transpose(y)>; <resize(x), y> = <x, resize_grad(y)>. */
static void test_adjoints(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = gc_input(1, TG_SHAPE(2, 7, 6, 3), -1, 1), *k = gc_input(2, TG_SHAPE(3, 2, 3, 4), -1, 1);
    tg_tensor *yc = tg_conv2d(x, k, .padding = TG_PADDING_SAME, .dilations = {2, 3});
    tg_tensor *y = gc_input(3, tg_shape_of(yc), -1, 1);
    tg_tensor *xt = tg_conv2d_transpose(y, k, tg_shape_of(x), .padding = TG_PADDING_SAME, .dilations = {2, 3});
    double a = tg_item(tg_sum(tg_mul(yc, y))), b = tg_item(tg_sum(tg_mul(x, xt)));
    CHECK(fabs(a - b) <= 1e-12 * (1 + fabs(a)));
    tg_tensor *xr = gc_input(4, TG_SHAPE(1, 5, 3, 2), -1, 1), *yr = tg_resize(xr, 7, 8);
    tg_tensor *h = gc_input(5, tg_shape_of(yr), -1, 1), *g;
    tg_tape *t = tg_tape_begin();
    tg_watch(t, xr);
    tg_tensor *l = tg_sum(tg_mul(tg_resize(xr, 7, 8), h));
    tg_tape_end(t);
    g = tg_gradient(t, l, xr);
    tg_tape_free(t);
    a = tg_item(tg_sum(tg_mul(yr, h)));
    b = tg_item(tg_sum(tg_mul(xr, g)));
    CHECK(fabs(a - b) <= 1e-12 * (1 + fabs(a)));
    tg_scope_end(s);
}

/* The 1-D pools are the 2-D ones over a height of 1: the first maximum takes the gradient. */
static void test_pool1d(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(1, 6, 1), 3, 3, 1, 5, 2, 2);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *m = tg_max_pool1d(x, .pool_size = 2);
    tg_tensor *v = tg_avg_pool1d(x, .pool_size = 3, .strides = 2, .padding = TG_PADDING_SAME);
    tg_tensor *loss = tg_sum(m);
    tg_tape_end(t);
    CHECK_VALUES(m, 1e-15, 3, 5, 2);
    CHECK_VALUES(v, 1e-15, (3 + 3 + 1) / 3.0, (1 + 5 + 2) / 3.0, (2 + 2) / 2.0);
    CHECK_VALUES(tg_gradient(t, loss, x), 1e-15, 1, 0, 0, 1, 1, 0);
    tg_tape_free(t);
    tg_scope_end(s);
}

/* max_pool2d's gradient goes to each window's first maximum in row-major order (TF's CPU
 * kernel), with oneDNN or without (pooling has one path): by hand on ties, and a 4x4
 * image's gradient is, bit for bit, the top-left of a 5x5 one's, whose last row and
 * column no window reaches. */
static void test_max_pool_ties(void)
{
    tg_scope *s = tg_scope_begin();
    /* two channels; channel 0 ties 3 = 3 in the first window, channel 1 ties 5 everywhere */
    tg_tensor *x = tg_from_f64(TG_SHAPE(1, 2, 4, 2), 1, 5, 3, 5, 7, 1, 2, 0, /* row 0 */
                               3, 5, 0, 5, 7, 1, 7, 0);                      /* row 1 */
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *loss =
        tg_sum(tg_mul(tg_max_pool2d(x, .pool_size = {2, 2}), tg_from_f64(TG_SHAPE(1, 1, 2, 2), 10, 20, 30, -0.0)));
    tg_tape_end(t);
    /* window 0 (columns 0-1): channel 0's first 3 is at (0, 1), channel 1's first 5 at (0, 0);
     * window 1 (columns 2-3): channel 0's first 7 at (0, 2), channel 1's maximum 1 at (0, 2) */
    CHECK_VALUES(tg_gradient(t, loss, x), CHECK_BITS, 0, 20, 10, 0, 30, -0.0 + 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    tg_tape_free(t);
    tg_tensor *big = gc_input(7, TG_SHAPE(2, 5, 5, 3), -1, 1);
    big = tg_floor(tg_add(big, big)); /* few values: many ties */
    tg_tensor *small = tg_slice(big, TG_SHAPE(0, 0, 0, 0), TG_SHAPE(2, 4, 4, 3));
    tg_tensor *g[2];
    for (int i = 0; i < 2; i++) {
        tg_tensor *img = i ? small : big;
        tg_tape *u = tg_tape_begin();
        tg_watch(u, img);
        tg_tensor *l =
            tg_sum(tg_mul(tg_max_pool2d(img, .pool_size = {2, 2}), gc_input(8, TG_SHAPE(2, 2, 2, 3), -1, 1)));
        tg_tape_end(u);
        g[i] = tg_gradient(u, l, img);
        tg_tape_free(u);
    }
    TENSORS_AGREE(tg_slice(g[0], TG_SHAPE(0, 0, 0, 0), TG_SHAPE(2, 4, 4, 3)), g[1], CHECK_BITS);
    tg_scope_end(s);
}

/* ---- errors ------------------------------------------------------------------------------------- */
#define EXPECT_HERE(failed, needle)                                                    \
    do {                                                                               \
        EXPECT_ERROR(failed, needle);                                                  \
        CHECK(tg_last_error() && strstr(tg_last_error(), "test_ops_conv2.c") != NULL); \
        tg_clear_error();                                                              \
    } while (0)

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(1, 6, 6, 3)), *k = tg_zeros(TG_F32, TG_SHAPE(2, 2, 3, 4));
    EXPECT_HERE(tg_conv2d(x, k, .strides = {2, 2}, .dilations = {2, 2}) == NULL,
                "tg_conv2d: strides (2, 2) above 1 cannot be combined with dilations (2, 2) above 1");
    EXPECT_HERE(tg_conv2d(x, k, .dilations = {-1, 1}) == NULL, "tg_conv2d: dilations (-1, 1) must be positive");
    EXPECT_HERE(tg_conv2d(x, k, .dilations = {6, 1}) == NULL,
                "tg_conv2d: with VALID padding the window (2, 2), dilated to (7, 2), must fit");
    CHECK(tg_conv2d(x, k, .dilations = {6, 1}, .padding = TG_PADDING_SAME) != NULL);
    EXPECT_HERE(tg_conv1d(x, k) == NULL, "tg_conv1d: `x` must have rank 3, [batch, width, channels] (NWC)");
    EXPECT_HERE(tg_conv1d(tg_zeros(TG_F32, TG_SHAPE(1, 5, 3)), tg_zeros(TG_F32, TG_SHAPE(2, 3, 2)), .stride = 2,
                          .dilation = 2) == NULL,
                "tg_conv1d: stride 2 above 1 cannot be combined with dilation 2 above 1");
    EXPECT_HERE(tg_conv1d(tg_zeros(TG_F32, TG_SHAPE(1, 5, 3)), tg_zeros(TG_F32, TG_SHAPE(2, 3, 2)), .stride = 0) ==
                    NULL,
                "tg_conv1d: stride 0 and dilation 1 must be positive");
    EXPECT_HERE(tg_depthwise_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(2, 2, 2, 1))) == NULL,
                "tg_depthwise_conv2d: `x` of shape (1, 6, 6, 3) has 3 channels but `filter` of shape (2, 2, 2, 1)");
    EXPECT_HERE(tg_depthwise_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(2, 2, 3))) == NULL,
                "tg_depthwise_conv2d: `filter` must have rank 4, [kh, kw, in_channels, channel_multiplier]");
    EXPECT_HERE(
        tg_separable_conv2d(x, tg_zeros(TG_F32, TG_SHAPE(2, 2, 3, 2)), tg_zeros(TG_F32, TG_SHAPE(1, 1, 3, 4))) == NULL,
        "tg_separable_conv2d: `pointwise_filter` must have shape [1, 1, 6, filters]");
    EXPECT_HERE(
        tg_conv2d_transpose(tg_zeros(TG_F32, TG_SHAPE(1, 3, 3, 4)), k, TG_SHAPE(1, 9, 9, 3), .strides = {2, 2}) == NULL,
        "tg_conv2d_transpose: output_shape (1, 9, 9, 3) does not fit: a conv2d of it with `filters` "
        "(2, 2, 3, 4) (these strides and padding) gives [1, 4, 4, 4], but `input` has shape (1, 3, 3, 4)");
    EXPECT_HERE(tg_conv2d_transpose(tg_zeros(TG_F32, TG_SHAPE(1, 3, 3, 4)), k, TG_SHAPE(6, 6, 3)) == NULL,
                "tg_conv2d_transpose: `input` [batch, height, width, in_channels], `filters`");
    EXPECT_HERE(tg_max_pool1d(x) == NULL, "tg_max_pool1d: the input must have rank 3, [batch, width, channels]");
    EXPECT_HERE(tg_avg_pool1d(tg_zeros(TG_F32, TG_SHAPE(1, 2, 1)), .pool_size = 3) == NULL,
                "tg_avg_pool1d: with VALID padding the window (1, 3)");
    EXPECT_HERE(tg_max_pool1d(tg_zeros(TG_F32, TG_SHAPE(1, 6, 1)), .strides = -1) == NULL,
                "tg_max_pool1d: pool_size 2 must be positive and strides -1 positive (or 0: the pool size)");
    EXPECT_HERE(tg_resize(x, 0, 3) == NULL, "tg_resize: the size (0, 3) must be positive");
    EXPECT_HERE(tg_resize(x, 2, 3, .method = (tg_resize_method)5) == NULL,
                "tg_resize: method 5 is neither TG_RESIZE_BILINEAR nor TG_RESIZE_NEAREST");
    EXPECT_HERE(tg_resize(tg_zeros(TG_F32, TG_SHAPE(6, 6)), 2, 3) == NULL, "tg_resize: `images` must have rank 4");
    EXPECT_HERE(tg_resize(tg_zeros(TG_I32, TG_SHAPE(1, 2, 2, 1)), 2, 3) == NULL,
                "tg_resize: `images` must be float32 or float64, not int32");
    tg_scope_end(s);
}

int main(void)
{
    (void)golden_case; /* index_golden.h's one-input form; the cases here have two */
    RUN(test_golden);
    RUN(test_gradients_and_f32);
    RUN(test_resize_by_hand);
    RUN(test_adjoints);
    RUN(test_pool1d);
    RUN(test_max_pool_ties);
    RUN(test_errors);
    return TEST_SUMMARY();
}
