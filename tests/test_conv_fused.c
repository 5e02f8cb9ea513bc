/* conv2d_bias_act (Conv2D's convolution, bias and activation in one op) and the
 * bfloat16 convolutions.
 *
 * conv2d_bias_act: with oneDNN off, its values and gradients are those of conv2d then
 * bias_add_act (the same kernels); with oneDNN on (float32 ReLU or no activation: one
 * primitive with bias and ReLU post-ops), both paths agree within float32 rounding; its
 * float64 gradients agree with finite differences.
 *
 * bfloat16: conv2d and its two adjoints against float64 sums of the same bfloat16 values
 * (the error of one rounding to bfloat16 plus float32 sums), against the float32 rows on
 * the widened values, and oneDNN's against the widened path; a Conv2D -> MaxPooling2D ->
 * Dense step under mixed_bfloat16 against the same step in float32. */
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
    {2, 11, 10, 3, 3, 3, 5, 1, 1, 2, 3, TG_PADDING_SAME},  {3, 4, 4, 2, 1, 1, 3, 1, 1, 1, 1, TG_PADDING_SAME},
    {5, 13, 7, 17, 5, 3, 19, 3, 2, 1, 1, TG_PADDING_SAME}, {2, 8, 8, 16, 3, 3, 32, 1, 1, 1, 1, TG_PADDING_SAME},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static tg_conv2d_opts opts_of(const conv_case *k)
{
    return (tg_conv2d_opts){.strides = {k->sh, k->sw}, .padding = k->pad, .dilations = {k->dh, k->dw}};
}

static double max_abs(const tg_tensor *t) { return tg_item(tg_max(tg_abs(tg_cast((tg_tensor *)t, TG_F64)))); }

typedef struct inputs {
    tg_tensor *x, *k, *b, *r; /* image, kernel, bias, the loss's weights sum(y * r) */
} inputs;

static inputs make_inputs(const conv_case *cc, uint64_t seed, tg_dtype dt)
{
    inputs in = {
        .x = tg_cast(gc_input(seed, TG_SHAPE(cc->n, cc->h, cc->w, cc->c), -1, 1), dt),
        .k = tg_cast(gc_input(seed + 1, TG_SHAPE(cc->kh, cc->kw, cc->c, cc->f), -1, 1), dt),
        .b = tg_cast(gc_input(seed + 2, TG_SHAPE(cc->f), -0.5, 0.5), dt),
    };
    tg_tensor *y = tg_conv2d_at(TG_LOC, in.x, in.k, opts_of(cc));
    in.r = y ? tg_cast(gc_input(seed + 3, tg_shape_of(y), -1, 1), dt) : NULL;
    return in;
}

/* y and the gradients of sum(y * r) for x, k and b: fused (conv2d_bias_act) or not. */
static void run(const conv_case *cc, const inputs *in, tg_bias_act act, bool fused, tg_tensor **out)
{
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, in->x);
    tg_watch(t, in->k);
    tg_watch(t, in->b);
    out[0] = fused ? tg_conv2d_bias_act_at(TG_LOC, in->x, in->k, in->b, act, opts_of(cc))
                   : tg_bias_add_act(tg_conv2d_at(TG_LOC, in->x, in->k, opts_of(cc)), in->b, act);
    tg_tensor *loss = tg_sum(tg_mul(tg_cast(out[0], TG_F64), tg_cast(in->r, TG_F64))); /* bfloat16: no broadcast_to */
    tg_tape_end(t);
    out[1] = tg_gradient(t, loss, in->x);
    out[2] = tg_gradient(t, loss, in->k);
    out[3] = tg_gradient(t, loss, in->b);
    tg_tape_free(t);
}

/* Portable path: the fused op gives conv2d + bias_add_act's values bit for bit, and its
 * gradients those of the unfused chain (the bias's sums in one pass: within rounding). */
static void test_fused_is_the_chain(void)
{
    bool was = tg__onednn_active();
    tg__onednn_set_enabled(false);
    for (int i = 0; i < N_CASES; i++)
        for (int act = TG_BIAS_LINEAR; act <= TG_BIAS_TANH; act++)
            for (int d = 0; d < 2; d++) {
                tg_scope *s = tg_scope_begin();
                inputs in = make_inputs(&cases[i], 10 * (uint64_t)i, d ? TG_F64 : TG_F32);
                REQUIRE(in.r);
                tg_tensor *a[4], *b[4];
                run(&cases[i], &in, act, true, a);
                run(&cases[i], &in, act, false, b);
                bool ok = TENSORS_AGREE(a[0], b[0], CHECK_BITS) && TENSORS_AGREE(a[1], b[1], CHECK_BITS) &&
                          TENSORS_AGREE(a[2], b[2], CHECK_BITS) && TENSORS_AGREE(a[3], b[3], d ? 1e-12 : 1e-5);
                if (!ok)
                    printf("  (case %d, act %d, %s)\n", i, act, d ? "float64" : "float32");
                tg_scope_end(s);
            }
    tg__onednn_set_enabled(was);
}

/* oneDNN (one primitive for ReLU and none) against the portable path: float32 sums of
 * `terms` products, 5e-7 per root term of the result's scale, as test_onednn. */
static void test_onednn_agrees_with_portable(void)
{
    if (!tg__onednn_active()) {
        printf("  note: oneDNN is not in use (%s): the path comparison is skipped\n", tg__onednn_backend());
        return;
    }
    for (int i = 0; i < N_CASES; i++)
        for (int act = TG_BIAS_LINEAR; act <= TG_BIAS_TANH; act++) {
            const conv_case *cc = &cases[i];
            tg_scope *s = tg_scope_begin();
            inputs in = make_inputs(cc, 10 * (uint64_t)i + 1, TG_F32);
            REQUIRE(in.r);
            tg_tensor *a[4], *b[4];
            run(cc, &in, act, true, a);
            tg__onednn_set_enabled(false);
            run(cc, &in, act, true, b);
            tg__onednn_set_enabled(true);
            double ohw = (double)(tg_size(a[0]) / cc->f);
            double terms[4] = {(double)(cc->kh * cc->kw * cc->c), (double)(cc->kh * cc->kw * cc->f), ohw, ohw};
            for (int j = 0; j < 4; j++) {
                REQUIRE(a[j] && b[j]);
                double scale = max_abs(b[j]), err = max_abs(tg_sub(a[j], b[j]));
                if (!(err <= 5e-7 * sqrt(terms[j]) * (1 + scale))) {
                    printf("  FAIL case %d act %d output %d: largest difference %g at scale %g\n", i, act, j, err,
                           scale);
                    check_failures_in_test++;
                }
            }
            tg_scope_end(s);
        }
}

/* The benchmark's layer and pool, 2x2 max pooling of conv2d_bias_act's ReLU with a bias
 * that leaves many windows all zero (oneDNN stores -0.0 there, the portable path +0.0):
 * the pooled values and the gradients for x, kernel and bias agree across the paths; each
 * path routes a window's gradient to its first maximum (tapegrad's pooling on both). */
static void test_relu_pool_paths(void)
{
    if (!tg__onednn_active())
        return;
    const conv_case *cc = &cases[1];
    tg_scope *s = tg_scope_begin();
    inputs in = make_inputs(cc, 77, TG_F32);
    REQUIRE(in.r);
    in.b = tg_sub(in.b, tg_scalar_like(in.b, 1.0)); /* biases in [-1.5, -0.5]: about half the sums below 0 */
    tg_tensor *got[2][4];
    for (int on = 1; on >= 0; on--) {
        tg__onednn_set_enabled(on);
        tg_tape *t = tg_tape_begin(.persistent = true);
        tg_watch(t, in.x);
        tg_watch(t, in.k);
        tg_watch(t, in.b);
        tg_tensor *p = tg_max_pool2d(tg_conv2d_bias_act_at(TG_LOC, in.x, in.k, in.b, TG_BIAS_RELU, opts_of(cc)),
                                     .pool_size = {2, 2});
        tg_tensor *w = p ? tg_cast(gc_input(78, tg_shape_of(p), -1, 1), TG_F32) : NULL;
        tg_tensor *loss = tg_sum(tg_mul(p, w));
        tg_tape_end(t);
        got[on][0] = p;
        got[on][1] = tg_gradient(t, loss, in.x);
        got[on][2] = tg_gradient(t, loss, in.k);
        got[on][3] = tg_gradient(t, loss, in.b);
        tg_tape_free(t);
    }
    tg__onednn_set_enabled(true);
    CHECK(tg_item(tg_mean(tg_cast(tg_equal(got[0][0], tg_zeros_like(got[0][0])), TG_F64))) > 0.1); /* zero windows */
    for (int j = 0; j < 4; j++) {
        REQUIRE(got[0][j] && got[1][j]);
        double scale = max_abs(got[0][j]), err = max_abs(tg_sub(got[1][j], got[0][j]));
        CHECK(err <= 5e-7 * sqrt(26.0 * 26 * 32) * (1 + scale));
    }
    tg_scope_end(s);
}

/* A NaN in the image reaches every output whose window holds it, through the ReLU, on
 * both paths (tg_relu passes NaN, as TF's). */
static void test_nan_passes_relu(void)
{
    for (int on = 0; on < 2; on++) {
        if (on && !tg__onednn_active())
            break;
        bool was = tg__onednn_active();
        tg__onednn_set_enabled(on);
        tg_scope *s = tg_scope_begin();
        const conv_case *cc = &cases[1];
        inputs in = make_inputs(cc, 91, TG_F32);
        REQUIRE(in.r);
        int64_t nx = tg_size(in.x);
        double *v = malloc(sizeof(double) * (size_t)nx);
        REQUIRE(v && tg_copy_out_f64(in.x, v, nx) == 0);
        v[5 * 28 + 7] = NAN; /* image 0, row 5, column 7 */
        tg_tensor *x = tg_cast(tg_tensor_from(TG_F64, tg_shape_of(in.x), v), TG_F32);
        free(v);
        tg_tensor *y = tg_conv2d_bias_act_at(TG_LOC, x, in.k, in.b, TG_BIAS_RELU, opts_of(cc));
        REQUIRE(y);
        int64_t ny = tg_size(y);
        double *yv = malloc(sizeof(double) * (size_t)ny);
        REQUIRE(yv && tg_copy_out_f64(y, yv, ny) == 0);
        int nans = 0;
        for (int64_t i = 0; i < ny; i++)
            nans += isnan(yv[i]);
        free(yv);
        printf("  oneDNN %s: %d NaNs\n", on ? "on" : "off", nans);
        CHECK(nans == 9 * 32); /* 3 x 3 windows hold it, 32 filters each */
        tg_scope_end(s);
        tg__onednn_set_enabled(was);
    }
}

static tg_tensor *f_bias_act(tg_tensor *const *x, int n, void *u)
{
    (void)n;
    const int *act = u;
    tg_conv2d_opts o = {.strides = {2, 1}, .padding = TG_PADDING_SAME, .dilations = {1, 1}};
    return tg_conv2d_bias_act_at(TG_LOC, x[0], x[1], x[2], (tg_bias_act)*act, o);
}

/* float64 gradients for x, kernel and bias against central differences, every activation. */
static void test_gradcheck(void)
{
    for (int act = TG_BIAS_LINEAR; act <= TG_BIAS_TANH; act++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *x[] = {gc_input(51, TG_SHAPE(2, 5, 4, 2), -1, 1), gc_input(52, TG_SHAPE(3, 2, 2, 3), -1, 1),
                          gc_input(53, TG_SHAPE(3), -0.5, 0.5)};
        CHECK(gradcheck("conv2d_bias_act", f_bias_act, x, 3, &act, 1e-6, 1e-6));
        tg_scope_end(s);
    }
}

/* ---- bfloat16 ---------------------------------------------------------------------------- */
/* |got - exact| within one rounding to bfloat16 (2^-8 relative) of the float32 sum, whose
 * own error is at most about terms * 2^-24 of the sum of the products' magnitudes S. */
static int bf16_misses(const char *what, const tg_tensor *got, const tg_tensor *exact, const tg_tensor *S, double terms)
{
    int64_t n = tg_size(exact);
    double *g = malloc(sizeof(double) * (size_t)n), *e = malloc(sizeof(double) * (size_t)n),
           *m = malloc(sizeof(double) * (size_t)n);
    int bad = 0;
    if (!g || !e || !m || tg_copy_out_f64(got, g, n) || tg_copy_out_f64(exact, e, n) || tg_copy_out_f64(S, m, n))
        bad = 1;
    double gam = terms * 0x1p-24;
    for (int64_t i = 0; i < n && !bad; i++) {
        double bound = 0x1p-8 * (fabs(e[i]) + gam * m[i]) + gam * m[i] + 1e-30;
        if (!(fabs(g[i] - e[i]) <= bound) && bad++ < 3)
            printf("  %s[%lld]: %.9g, exact %.9g, error %.3g above %.3g\n", what, (long long)i, g[i], e[i],
                   fabs(g[i] - e[i]), bound);
    }
    free(g), free(e), free(m);
    return bad;
}

/* The three rows of bfloat16 operands: y, the image's and the kernel's gradients. */
static void rows_of(const conv_case *cc, tg_tensor *x, tg_tensor *k, tg_tensor *d, tg_tensor **out)
{
    out[0] = tg_conv2d_at(TG_LOC, x, k, opts_of(cc));
    out[1] = tg_conv2d_backprop_input_at(TG_LOC, d, k, cc->h, cc->w, opts_of(cc));
    out[2] = tg_conv2d_backprop_filter_at(TG_LOC, x, d, cc->kh, cc->kw, opts_of(cc));
}

static tg_tensor *as(tg_tensor *t, tg_dtype dt) { return tg_cast(t, dt); }

/* bfloat16 rows against float64 sums of the same values (and of their magnitudes, for the
 * bound), and oneDNN's bfloat16 against the widened path within one bfloat16 rounding of
 * either side. */
static void test_bf16_rows(void)
{
    bool onednn = tg__onednn_active();
    printf("  %s\n", tg__onednn_backend());
    for (int i = 0; i < N_CASES; i++) {
        const conv_case *cc = &cases[i];
        tg_scope *s = tg_scope_begin();
        inputs in = make_inputs(cc, 10 * (uint64_t)i + 5, TG_F32);
        REQUIRE(in.r);
        tg_tensor *x = as(in.x, TG_BF16), *k = as(in.k, TG_BF16), *d = as(in.r, TG_BF16), *got[3], *want[3], *mag[3],
                  *wide[3];
        rows_of(cc, x, k, d, got);
        rows_of(cc, as(x, TG_F64), as(k, TG_F64), as(d, TG_F64), want);
        rows_of(cc, tg_abs(as(x, TG_F64)), tg_abs(as(k, TG_F64)), tg_abs(as(d, TG_F64)), mag);
        double ohw = (double)(tg_size(want[0]) / cc->f);
        double terms[3] = {(double)(cc->kh * cc->kw * cc->c), (double)(cc->kh * cc->kw * cc->f), cc->n * ohw};
        static const char *names[] = {"conv2d", "conv2d_backprop_input", "conv2d_backprop_filter"};
        for (int j = 0; j < 3; j++) {
            REQUIRE(got[j] && want[j] && mag[j]);
            CHECK(tg_dtype_of(got[j]) == TG_BF16);
            if (bf16_misses(names[j], got[j], want[j], mag[j], terms[j])) {
                printf("  FAIL case %d %s against float64\n", i, names[j]);
                check_failures_in_test++;
            }
        }
        /* the float32 rows on the widened values, rounded: within one bfloat16 rounding */
        rows_of(cc, as(x, TG_F32), as(k, TG_F32), as(d, TG_F32), wide);
        for (int j = 0; j < 3; j++)
            if (bf16_misses(names[j], got[j], as(wide[j], TG_F64), mag[j], 2 * terms[j])) {
                printf("  FAIL case %d %s against float32\n", i, names[j]);
                check_failures_in_test++;
            }
        if (onednn) { /* oneDNN's bfloat16 kernels against the widened path */
            tg_tensor *port[3];
            tg__onednn_set_enabled(false);
            rows_of(cc, x, k, d, port);
            tg__onednn_set_enabled(true);
            for (int j = 0; j < 3; j++)
                if (bf16_misses(names[j], got[j], as(port[j], TG_F64), mag[j], 2 * terms[j])) {
                    printf("  FAIL case %d %s: oneDNN against the widened path\n", i, names[j]);
                    check_failures_in_test++;
                }
        }
        tg_scope_end(s);
    }
}

/* conv2d_bias_act in bfloat16 is conv2d then bias_add_act in bfloat16, on either path:
 * the convolution rounded once, then act(y + b) rounded once. */
static void test_bf16_fused_is_the_chain(void)
{
    for (int on = 0; on < 2; on++) {
        if (on && !tg__onednn_active())
            break;
        bool was = tg__onednn_active();
        tg__onednn_set_enabled(on);
        for (int i = 0; i < N_CASES; i++)
            for (int act = TG_BIAS_LINEAR; act <= TG_BIAS_TANH; act++) {
                tg_scope *s = tg_scope_begin();
                inputs in = make_inputs(&cases[i], 10 * (uint64_t)i + 7, TG_BF16);
                REQUIRE(in.r);
                tg_tensor *a[4], *b[4];
                run(&cases[i], &in, act, true, a);
                run(&cases[i], &in, act, false, b);
                bool ok = TENSORS_AGREE(a[0], b[0], CHECK_BITS) && TENSORS_AGREE(a[1], b[1], CHECK_BITS) &&
                          TENSORS_AGREE(a[2], b[2], CHECK_BITS) && TENSORS_AGREE(a[3], b[3], 1e-2);
                if (!ok)
                    printf("  (case %d, act %d, oneDNN %s)\n", i, act, on ? "on" : "off");
                tg_scope_end(s);
            }
        tg__onednn_set_enabled(was);
    }
}

/* The benchmark's CNN, smaller: Conv2D(8, 3x3, relu) -> MaxPooling2D(2) -> Flatten ->
 * Dense(5), built twice from one seed, float32 and mixed_bfloat16. One step's loss and
 * Dense gradients agree within bfloat16's rounding (a few 2^-8); the Conv2D's gradients
 * less closely: a window whose two largest values round to one bfloat16 order the other
 * way, or a pre-activation near 0 that changes sign, sends that window's gradient to
 * another pixel (the same differences with oneDNN off, measured: 11% and 8% of the
 * norms), so they are held to 25% of the norm and the direction (cosine 0.97). The SGD
 * step taken with each model's gradients lowers both losses alike, and the mixed
 * model's variables and gradients stay float32. */
static tg_model *small_cnn(const char *policy)
{
    CHECK(tg_set_dtype_policy(policy) == 0);
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 3),
                                     tg_conv2d_layer(.filters = 8, .kernel_size = {3, 3}, .activation = TG_RELU,
                                                     .input_shape = TG_SHAPE(10, 9, 2),
                                                     .bias_initializer = tg_init_random_normal(0, 0.1)),
                                     tg_max_pooling2d(.pool_size = {2, 2}), tg_flatten(), tg_dense(.units = 5));
    CHECK(tg_set_dtype_policy("float32") == 0);
    bool ok = m && tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1),
                              .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true) == 0;
    CHECK(ok);
    return ok ? m : NULL;
}

static double loss_of(tg_model *m, tg_tensor *x, tg_tensor *labels)
{
    tg_tensor *y = tg_model_call(m, x, .training = true);
    return tg_item(tg_mean(tg_sparse_softmax_cross_entropy_with_logits(labels, tg_cast(y, TG_F32))));
}

static double step(tg_model *m, tg_tensor *x, tg_tensor *labels, tg_tensor **grads)
{
    int nv = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &nv);
    CHECK(nv == 4);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_mean(tg_sparse_softmax_cross_entropy_with_logits(labels, tg_cast(y, TG_F32)));
    tg_tape_end(tape);
    bool ok = nv == 4 &&
              tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 4, .out = grads) == 0;
    CHECK(ok);
    tg_tape_free(tape);
    return ok ? tg_item(loss) : NAN;
}

static double norm(const tg_tensor *t) { return sqrt(tg_item(tg_sum(tg_square(tg_cast((tg_tensor *)t, TG_F64))))); }

static void test_mixed_cnn_step(void)
{
    tg_model *f32 = small_cnn("float32"), *mixed = small_cnn("mixed_bfloat16");
    REQUIRE(f32 && mixed);
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(17);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(6, 10, 9, 2));
    tg_rng_free(r);
    static const int32_t classes[] = {0, 4, 2, 1, 3, 2};
    tg_tensor *labels = tg_tensor_from(TG_I32, TG_SHAPE(6), classes);
    tg_tensor *ga[4], *gb[4];
    double la = step(f32, x, labels, ga), lb = step(mixed, x, labels, gb);
    REQUIRE(la == la && lb == lb);
    printf("  loss float32 %.6f, mixed_bfloat16 %.6f\n", la, lb);
    CHECK(fabs(la - lb) <= 0x1p-6 * fabs(la));
    CHECK(la != lb); /* bfloat16 ran */
    static const char *names[] = {"conv kernel", "conv bias", "dense kernel", "dense bias"};
    for (int j = 0; j < 4; j++) {
        REQUIRE(ga[j] && gb[j]);
        CHECK(tg_dtype_of(gb[j]) == TG_F32);
        double rel = norm(tg_sub(ga[j], gb[j])) / norm(ga[j]);
        double cosine =
            tg_item(tg_sum(tg_mul(tg_cast(ga[j], TG_F64), tg_cast(gb[j], TG_F64)))) / norm(ga[j]) / norm(gb[j]);
        printf("  %s: relative difference %.3g, cosine %.5f\n", names[j], rel, cosine);
        CHECK(rel <= (j < 2 ? 0.25 : 0x1p-5));
        CHECK(cosine >= (j < 2 ? 0.97 : 0.999));
    }
    int nv = 0;
    CHECK(tg_apply_gradients(tg_model_optimizer(f32), ga, tg_model_trainable_variables(f32, &nv), 4) == 0);
    CHECK(tg_apply_gradients(tg_model_optimizer(mixed), gb, tg_model_trainable_variables(mixed, &nv), 4) == 0);
    double la2 = loss_of(f32, x, labels), lb2 = loss_of(mixed, x, labels);
    printf("  after one SGD step: float32 %.6f, mixed_bfloat16 %.6f\n", la2, lb2);
    CHECK(la2 < la && lb2 < lb);
    CHECK(fabs(la2 - lb2) <= 0x1p-6 * fabs(la2));
    tg_scope_end(s);
    tg_model_free(f32);
    tg_model_free(mixed);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(1, 5, 5, 2)), *k = tg_zeros(TG_F32, TG_SHAPE(3, 3, 2, 4));
    EXPECT_ERROR(!tg_conv2d_bias_act(x, k, tg_zeros(TG_F32, TG_SHAPE(3)), TG_BIAS_RELU),
                 "`bias` must be a vector of the 4 filters, but has shape (3,)");
    EXPECT_ERROR(!tg_conv2d_bias_act(x, k, tg_zeros(TG_F64, TG_SHAPE(4)), TG_BIAS_RELU),
                 "cannot mix float32 `x` and float64 `bias`");
    EXPECT_ERROR(!tg_conv2d_bias_act(x, k, tg_zeros(TG_F32, TG_SHAPE(4)), (tg_bias_act)9),
                 "activation 9 is not a tg_bias_act");
    EXPECT_ERROR(!tg_conv2d_bias_act(x, k, NULL, TG_BIAS_RELU), "tg_conv2d_bias_act");
    CHECK(has_shape(tg_conv2d_bias_act(x, k, tg_zeros(TG_F32, TG_SHAPE(4)), TG_BIAS_RELU), TG_SHAPE(1, 3, 3, 4)));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_fused_is_the_chain);
    RUN(test_onednn_agrees_with_portable);
    RUN(test_relu_pool_paths);
    RUN(test_nan_passes_relu);
    RUN(test_gradcheck);
    RUN(test_bf16_rows);
    RUN(test_bf16_fused_is_the_chain);
    RUN(test_mixed_cnn_step);
    RUN(test_errors);
    return TEST_SUMMARY();
}
