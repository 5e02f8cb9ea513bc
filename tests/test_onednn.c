/* conv2d's two paths: oneDNN (float32, where libdnnl.so.2 is installed) against the
 * portable patches-times-kernel one, values and gradients, on many shapes; and the
 * portable path against the composite it replaced (extract_patches, reshape, matmul),
 * bit for bit. Without oneDNN the comparison is skipped with a note. */
#include "check.h"
#include "gradcheck.h"
#include "kernels/onednn.h"

typedef struct conv_case {
    int64_t n, h, w, c, kh, kw, f;
    int64_t sh, sw, dh, dw;
    tg_padding pad;
} conv_case;

static const conv_case cases[] = {
    {1, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, TG_PADDING_VALID},   {32, 28, 28, 1, 3, 3, 32, 1, 1, 1, 1, TG_PADDING_VALID},
    {2, 7, 6, 3, 3, 2, 4, 1, 1, 1, 1, TG_PADDING_SAME},    {3, 9, 8, 5, 3, 3, 7, 2, 2, 1, 1, TG_PADDING_SAME},
    {2, 9, 8, 5, 3, 3, 7, 2, 2, 1, 1, TG_PADDING_VALID},   {1, 6, 5, 2, 2, 3, 3, 2, 1, 1, 1, TG_PADDING_SAME},
    {2, 11, 10, 3, 3, 3, 5, 1, 1, 2, 3, TG_PADDING_SAME},  {2, 11, 10, 3, 3, 2, 5, 1, 1, 2, 2, TG_PADDING_VALID},
    {3, 4, 4, 2, 1, 1, 3, 1, 1, 1, 1, TG_PADDING_SAME},    {1, 5, 5, 1, 4, 4, 2, 2, 2, 1, 1, TG_PADDING_SAME},
    {5, 13, 7, 17, 5, 3, 19, 3, 2, 1, 1, TG_PADDING_SAME}, {2, 8, 8, 16, 3, 3, 32, 1, 1, 1, 1, TG_PADDING_SAME},
    {1, 7, 7, 4, 7, 7, 3, 1, 1, 1, 1, TG_PADDING_VALID},   {4, 10, 9, 3, 2, 2, 6, 3, 3, 1, 1, TG_PADDING_VALID},
    {3, 6, 6, 8, 1, 1, 8, 2, 2, 1, 1, TG_PADDING_VALID},
};

static tg_conv2d_opts opts_of(const conv_case *k)
{
    return (tg_conv2d_opts){.strides = {k->sh, k->sw}, .padding = k->pad, .dilations = {k->dh, k->dw}};
}

/* y = conv2d(x, k) and the gradients of sum(y * r) for x and k, on the path now active. */
static void conv_and_grads(const conv_case *cc, tg_tensor *x, tg_tensor *k, tg_tensor *r, tg_tensor **out)
{
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_watch(t, k);
    out[0] = tg_conv2d_at(TG_LOC, x, k, opts_of(cc));
    tg_tensor *loss = tg_sum(tg_mul(out[0], r));
    tg_tape_end(t);
    out[1] = tg_gradient(t, loss, x);
    out[2] = tg_gradient(t, loss, k);
    tg_tape_free(t);
}

/* The composite tg_conv2d was: patches, reshape, one matmul. */
static void composite_and_grads(const conv_case *cc, tg_tensor *x, tg_tensor *k, tg_tensor *r, tg_tensor **out)
{
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_watch(t, k);
    bool pointwise = cc->kh == 1 && cc->kw == 1 && cc->sh == 1 && cc->sw == 1;
    tg_tensor *cols = pointwise ? x : tg_extract_patches_dilated_at(TG_LOC, x, cc->kh, cc->kw, opts_of(cc));
    tg_shape cs = tg_shape_of(cols);
    int64_t len = cc->kh * cc->kw * cc->c, rows = tg_size(cols) / len;
    tg_tensor *y = tg_matmul(tg_reshape(cols, TG_SHAPE(rows, len)), tg_reshape(k, TG_SHAPE(len, cc->f)));
    out[0] = tg_reshape(y, TG_SHAPE(cs.dims[0], cs.dims[1], cs.dims[2], cc->f));
    tg_tensor *loss = tg_sum(tg_mul(out[0], r));
    tg_tape_end(t);
    out[1] = tg_gradient(t, loss, x);
    out[2] = tg_gradient(t, loss, k);
    tg_tape_free(t);
}

static void inputs(const conv_case *cc, uint64_t seed, tg_tensor **x, tg_tensor **k, tg_tensor **r)
{
    *x = tg_cast(gc_input(seed, TG_SHAPE(cc->n, cc->h, cc->w, cc->c), -1, 1), TG_F32);
    *k = tg_cast(gc_input(seed + 1, TG_SHAPE(cc->kh, cc->kw, cc->c, cc->f), -1, 1), TG_F32);
    tg_tensor *y = tg_conv2d_at(TG_LOC, *x, *k, opts_of(cc));
    *r = y ? tg_cast(gc_input(seed + 2, tg_shape_of(y), -1, 1), TG_F32) : NULL;
}

/* With oneDNN off, conv2d and its gradients are the composite's, bit for bit (float32 and
 * float64): training results do not depend on the rows. */
static void test_portable_is_the_composite(void)
{
    bool was = tg__onednn_active();
    tg__onednn_set_enabled(false);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x, *k, *r, *a[3], *b[3];
        inputs(&cases[i], 10 * i, &x, &k, &r);
        REQUIRE(r);
        for (int d = 0; d < 2; d++) {
            if (d) {
                x = tg_cast(x, TG_F64), k = tg_cast(k, TG_F64), r = tg_cast(r, TG_F64);
            }
            conv_and_grads(&cases[i], x, k, r, a);
            composite_and_grads(&cases[i], x, k, r, b);
            for (int j = 0; j < 3; j++)
                if (!TENSORS_AGREE(a[j], b[j], CHECK_BITS))
                    printf("  (case %zu, output %d, %s)\n", i, j, d ? "float64" : "float32");
        }
        tg_scope_end(s);
    }
    tg__onednn_set_enabled(was);
}

/* The largest magnitude of t, for a tolerance relative to the result's scale. */
static double max_abs(const tg_tensor *t) { return tg_item(tg_max(tg_abs(tg_cast((tg_tensor *)t, TG_F64)))); }

/* Both paths agree within float32's rounding of sums of `terms` products, which grows
 * about as its square root (5e-7 per root term: some 4 roundings' worth), measured
 * against the result's largest value. A wrong tap or padding gives errors of the
 * order of the values themselves. */
static void test_onednn_agrees_with_portable(void)
{
    if (!tg__onednn_active()) {
        printf("  note: oneDNN is not in use (%s): the path comparison is skipped\n", tg__onednn_backend());
        return;
    }
    printf("  %s\n", tg__onednn_backend());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x, *k, *r, *a[3], *b[3];
        inputs(&cases[i], 10 * i + 1, &x, &k, &r);
        REQUIRE(r);
        conv_and_grads(&cases[i], x, k, r, a);
        tg__onednn_set_enabled(false);
        conv_and_grads(&cases[i], x, k, r, b);
        tg__onednn_set_enabled(true);
        const conv_case *cc = &cases[i];
        int64_t ohw = tg_size(a[0]) / cc->f;
        double terms[3] = {(double)(cc->kh * cc->kw * cc->c), (double)(cc->kh * cc->kw * cc->f), (double)ohw};
        for (int j = 0; j < 3; j++) {
            REQUIRE(a[j] && b[j]);
            double scale = max_abs(b[j]), err = max_abs(tg_sub(a[j], b[j]));
            if (!(err <= 5e-7 * sqrt(terms[j]) * (1 + scale))) {
                printf("  FAIL case %zu output %d: largest difference %g at scale %g\n", i, j, err, scale);
                check_failures_in_test++;
            }
        }
        tg_scope_end(s);
    }
}

/* The backprop ops by themselves: oneDNN's against the portable ones, and each the
 * adjoint of conv2d: <conv2d(x, k), d> = <x, backprop_input(d, k)> = <k, backprop_filter(x, d)>. */
static void test_backprop_ops(void)
{
    for (int on = 0; on < 2; on++) {
        if (on && !tg__onednn_active())
            break;
        bool was = tg__onednn_active();
        tg__onednn_set_enabled(on);
        tg_scope *s = tg_scope_begin();
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const conv_case *cc = &cases[i];
            tg_tensor *x, *k, *d;
            inputs(cc, 10 * i + 2, &x, &k, &d);
            REQUIRE(d);
            double a = tg_item(tg_sum(tg_cast(tg_mul(tg_conv2d_at(TG_LOC, x, k, opts_of(cc)), d), TG_F64)));
            double b = tg_item(tg_sum(
                tg_cast(tg_mul(x, tg_conv2d_backprop_input_at(TG_LOC, d, k, cc->h, cc->w, opts_of(cc))), TG_F64)));
            double c = tg_item(tg_sum(
                tg_cast(tg_mul(k, tg_conv2d_backprop_filter_at(TG_LOC, x, d, cc->kh, cc->kw, opts_of(cc))), TG_F64)));
            CHECK(fabs(a - b) <= 1e-4 * (1 + fabs(a)));
            CHECK(fabs(a - c) <= 1e-4 * (1 + fabs(a)));
        }
        tg_scope_end(s);
        tg__onednn_set_enabled(was);
    }
}

/* Second order through the rows (float64, the portable path): the gradient of
 * sum(grad_x(sum(conv2d(x, k)^2))) for k against finite differences. */
static void test_second_order(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = gc_input(41, TG_SHAPE(2, 6, 5, 2), -1, 1), *k = gc_input(42, TG_SHAPE(3, 2, 2, 3), -1, 1);
    tg_conv2d_opts o = {.strides = {2, 1}, .padding = TG_PADDING_SAME, .dilations = {1, 1}};
    double h = 1e-5, *kv = malloc(sizeof(double) * 36), want[36];
    REQUIRE(kv && tg_copy_out_f64(k, kv, 36) == 0);
    /* f(k) = sum(grad_x sum(conv^2)) */
    for (int p = 0; p < 36; p++) {
        double f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            double saved = kv[p];
            kv[p] = saved + (sgn ? -h : h);
            tg_tensor *kk = tg_tensor_from_at(TG_LOC, TG_F64, TG_SHAPE(3, 2, 2, 3), kv);
            tg_tape *t = tg_tape_begin();
            tg_watch(t, x);
            tg_tensor *y = tg_conv2d_at(TG_LOC, x, kk, o);
            tg_tensor *l = tg_sum(tg_mul(y, y));
            tg_tape_end(t);
            f[sgn] = tg_item(tg_sum(tg_gradient(t, l, x)));
            tg_tape_free(t);
            kv[p] = saved;
        }
        want[p] = (f[0] - f[1]) / (2 * h);
    }
    tg_tape *outer = tg_tape_begin();
    tg_watch(outer, k);
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    tg_tensor *y = tg_conv2d_at(TG_LOC, x, k, o);
    tg_tensor *l = tg_sum(tg_mul(y, y));
    tg_tape_end(inner);
    tg_tensor *gx = tg_sum(tg_gradient(inner, l, x));
    tg_tape_end(outer);
    TENSOR_MATCHES(tg_gradient(outer, gx, k), NULL, want, 36, 1e-6);
    tg_tape_free(inner);
    tg_tape_free(outer);
    free(kv);
    tg_scope_end(s);
}

/* Bad operands of the backprop ops give errors naming the call. */
/* oneDNN's weight layout, kept per thread between calls with the same kernel values: a
 * variable's new values (same storage) are used at once, a repeated call gives the same
 * bits, and both match the portable path. */
static void test_kept_weight_layout(void)
{
    if (!tg__onednn_active())
        return;
    const conv_case *cc = &cases[1]; /* 32 x 28 x 28 x 1, 32 filters: a reordered layout */
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *k, *r;
    inputs(cc, 7, &x, &k, &r);
    tg_tensor *v = tg_variable(k, .name = "kernel");
    REQUIRE(v);
    for (int round = 0; round < 2; round++) {
        tg_tensor *y1 = tg_conv2d_at(TG_LOC, x, v, opts_of(cc)), *y2 = tg_conv2d_at(TG_LOC, x, v, opts_of(cc));
        tg__onednn_set_enabled(false);
        tg_tensor *want = tg_conv2d_at(TG_LOC, x, v, opts_of(cc));
        tg__onednn_set_enabled(true);
        REQUIRE(y1 && y2 && want);
        CHECK(max_abs(tg_sub(y1, y2)) == 0);
        CHECK(max_abs(tg_sub(y1, want)) <= 5e-7 * 3 * (1 + max_abs(want)));
        CHECK(tg_assign(v, tg_mul(k, tg_scalar_like(k, -2.5))) == 0); /* new values, same storage */
    }
    tg_variable_free(v);
    tg_scope_end(s);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *dy = tg_zeros(TG_F32, TG_SHAPE(1, 3, 3, 2)), *k = tg_zeros(TG_F32, TG_SHAPE(3, 3, 1, 2));
    EXPECT_ERROR(!tg_conv2d_backprop_input(dy, k, 4, 4), "tg_conv2d_backprop_input: `dy` of shape (1, 3, 3, 2)");
    EXPECT_ERROR(!tg_conv2d_backprop_input(dy, tg_zeros(TG_F32, TG_SHAPE(3, 3, 2)), 5, 5), "must have rank 4");
    EXPECT_ERROR(!tg_conv2d_backprop_input(dy, k, 5, 5, .padding = 7), "padding 7");
    EXPECT_ERROR(!tg_conv2d_backprop_filter(tg_zeros(TG_F32, TG_SHAPE(1, 5, 5, 1)), tg_cast(dy, TG_F64), 3, 3),
                 "cannot mix float32 and float64");
    EXPECT_ERROR(!tg_conv2d_backprop_filter(tg_zeros(TG_F32, TG_SHAPE(1, 6, 5, 1)), dy, 3, 3),
                 "tg_conv2d_backprop_filter: `dy` of shape (1, 3, 3, 2)");
    CHECK(has_shape(tg_conv2d_backprop_input(dy, k, 5, 5), TG_SHAPE(1, 5, 5, 1)));
    CHECK(has_shape(tg_conv2d_backprop_filter(tg_zeros(TG_F32, TG_SHAPE(1, 5, 5, 1)), dy, 3, 3), TG_SHAPE(3, 3, 1, 2)));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_portable_is_the_composite);
    RUN(test_onednn_agrees_with_portable);
    RUN(test_backprop_ops);
    RUN(test_second_order);
    RUN(test_kept_weight_layout);
    RUN(test_errors);
    return TEST_SUMMARY();
}
