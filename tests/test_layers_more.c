/* The sequence, image-shape and preprocessing layers over existing ops: Conv1D, the 1-D and
 * global poolings, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, UpSampling2D,
 * ZeroPadding2D, Cropping2D, Rescaling, RandomFlip, RandomCrop. Values against PyTorch
 * (tests/fixtures/layer_golden.txt, tools/make_layer_fixtures.py, which maps Keras's
 * kernel layouts to torch's) or by hand; variable names and shapes as Keras 3's; gradients
 * against float64 finite differences; a Sequential that fits; errors naming the layer. */
#define INDEX_GOLDEN_PATH TG_FIXTURES_DIR "/layer_golden.txt"
#include "gradcheck.h"
#include "index_golden.h"

/* Sums of a few products in another order; bilinear weights in float32 as TF's. */
#define LAYER_TOL    1e-12
#define BILINEAR_TOL 1e-6
#define GRAD_EPS     1e-6
#define GRAD_TOL     1e-6

static bool shape_eq(tg_shape a, tg_shape b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dims[i] != b.dims[i])
            return false;
    return true;
}

static tg_tensor *layer_fn(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    return tg_layer_call((tg_layer *)user, xs[0], .training = false);
}

typedef struct var_loss_ctx {
    tg_layer *layer;
    tg_tensor *x, *w;
} var_loss_ctx;

static tg_tensor *var_loss(void *user)
{
    var_loss_ctx *c = user;
    return tg_sum(tg_mul(tg_layer_call(c->layer, c->x), c->w));
}

/* Case `c` of the fixtures on a float64 `layer`: its variables are named "<layer>/<var>"
 * for vars[0..nv-1] with the fixture's shapes (and take its values), the output matches
 * c.y, and the gradients in x and in the variables match finite differences. */
static bool golden_layer(const char *c, tg_layer *layer, const char *const *vars, int nv, double tol)
{
    char name[96];
    snprintf(name, sizeof name, "%s.x", c);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = golden(name);
    bool ok = x && tg_layer_call(layer, x) != NULL;
    int n = 0;
    tg_tensor *const *v = ok ? tg_layer_variables(layer, &n) : NULL;
    if (ok && n != nv) {
        printf("  %s: %d variables, expected %d\n", c, n, nv);
        ok = false;
    }
    for (int i = 0; ok && i < nv; i++) {
        char want[96];
        snprintf(want, sizeof want, "%s/%s", tg_layer_name(layer), vars[i]);
        snprintf(name, sizeof name, "%s.%s", c, vars[i]);
        tg_tensor *g = golden(name);
        ok = g && strcmp(tg_variable_name(v[i]), want) == 0 && shape_eq(tg_shape_of(v[i]), tg_shape_of(g)) &&
             tg_assign(v[i], g) == 0;
        if (!ok)
            printf("  %s: variable %d is \"%s\", expected \"%s\" shaped as %s\n", c, i, tg_variable_name(v[i]), want,
                   name);
    }
    snprintf(name, sizeof name, "%s.y", c);
    ok = ok && golden_matches(c, tg_layer_call(layer, x), name, tol);
    tg_tensor *xs[1] = {x};
    ok = ok && gradcheck(c, layer_fn, xs, 1, layer, GRAD_EPS, GRAD_TOL);
    if (ok && nv) {
        var_loss_ctx ctx = {layer, x, gc_weights(tg_layer_call(layer, x), 99)};
        ok = gradcheck_variables(c, var_loss, v, n, &ctx, GRAD_EPS, GRAD_TOL);
    }
    tg_scope_end(s);
    return ok;
}

static bool output_shape_is(const tg_layer *l, tg_shape want) { return shape_eq(tg_layer_output_shape(l), want); }

/* ---- Conv1D, poolings ----------------------------------------------------------------------------- */
static void test_conv1d(void)
{
    static const char *const kb[] = {"kernel", "bias"};
    tg_layer *a = tg_conv1d_layer(.filters = 4, .kernel_size = 3, .padding = TG_PADDING_SAME, .dtype = TG_F64);
    CHECK(golden_layer("conv1d_same", a, kb, 2, LAYER_TOL) && output_shape_is(a, TG_SHAPE(7, 4)));
    tg_layer *b =
        tg_conv1d_layer(.filters = 4, .kernel_size = 3, .strides = 2, .padding = TG_PADDING_SAME, .dtype = TG_F64);
    CHECK(golden_layer("conv1d_s2_same", b, kb, 2, LAYER_TOL) && output_shape_is(b, TG_SHAPE(4, 4)));
    tg_layer *c = tg_conv1d_layer(.filters = 4, .kernel_size = 3, .dilation_rate = 2, .dtype = TG_F64);
    CHECK(golden_layer("conv1d_dil2_valid", c, kb, 2, LAYER_TOL) && output_shape_is(c, TG_SHAPE(3, 4)));
    CHECK(strcmp(tg_layer_class_name(a), "Conv1D") == 0 && strcmp(tg_layer_name(a), "conv1d") == 0);
    /* without a bias, with an activation: relu of the same convolution, one variable */
    tg_scope *s = tg_scope_begin();
    tg_layer *d =
        tg_conv1d_layer(.filters = 1, .kernel_size = 2, .use_bias = false, .activation = TG_RELU, .dtype = TG_F64);
    tg_tensor *x = tg_reshape(tg_arange(TG_F64, 1, 5, 1), TG_SHAPE(1, 4, 1)); /* 1 2 3 4 */
    int n;
    CHECK(tg_layer_call(d, x) && tg_layer_variables(d, &n) && n == 1);
    static const double k[] = {1, -2};
    CHECK(tg_assign(tg_layer_variables(d, &n)[0], tg_tensor_from(TG_F64, TG_SHAPE(2, 1, 1), k)) == 0);
    CHECK_VALUES(tg_layer_call(d, x), 0, 0, 0, 0); /* 1-4, 2-6, 3-8: all negative */
    tg_scope_end(s);
    tg_layer_free(a);
    tg_layer_free(b);
    tg_layer_free(c);
    tg_layer_free(d);
}

static void test_poolings(void)
{
    tg_layer *mp = tg_max_pooling1d(.pool_size = 3, .strides = 2, .dtype = TG_F64);
    CHECK(golden_layer("max_pool1d_k3_s2", mp, NULL, 0, LAYER_TOL) && output_shape_is(mp, TG_SHAPE(3, 3)));
    tg_layer *ap = tg_average_pooling1d(.padding = TG_PADDING_SAME, .dtype = TG_F64); /* 2, strides 2 */
    CHECK(golden_layer("avg_pool1d_same", ap, NULL, 0, LAYER_TOL) && output_shape_is(ap, TG_SHAPE(4, 3)));
    tg_layer *gm1 = tg_global_max_pooling1d(.dtype = TG_F64);
    CHECK(golden_layer("global_max1d", gm1, NULL, 0, LAYER_TOL) && output_shape_is(gm1, TG_SHAPE(3)));
    tg_layer *ga1 = tg_global_average_pooling1d(.dtype = TG_F64);
    CHECK(golden_layer("global_avg1d", ga1, NULL, 0, LAYER_TOL) && output_shape_is(ga1, TG_SHAPE(3)));
    tg_layer *gm2 = tg_global_max_pooling2d(.dtype = TG_F64);
    CHECK(golden_layer("global_max2d", gm2, NULL, 0, LAYER_TOL) && output_shape_is(gm2, TG_SHAPE(2)));
    CHECK(strcmp(tg_layer_name(mp), "max_pooling1d") == 0 && strcmp(tg_layer_name(ap), "average_pooling1d") == 0 &&
          strcmp(tg_layer_name(gm1), "global_max_pooling1d") == 0 &&
          strcmp(tg_layer_name(ga1), "global_average_pooling1d") == 0 &&
          strcmp(tg_layer_class_name(gm2), "GlobalMaxPooling2D") == 0);
    tg_layer_free(mp);
    tg_layer_free(ap);
    tg_layer_free(gm1);
    tg_layer_free(ga1);
    tg_layer_free(gm2);
}

static void test_sequence_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_clear_error();
    EXPECT_ERROR(tg_conv1d_layer(.filters = 0, .kernel_size = 3) == NULL,
                 "tg_conv1d_layer: filters must be a positive integer, got 0");
    EXPECT_ERROR(tg_conv1d_layer(.filters = 2) == NULL, "tg_conv1d_layer: kernel_size must be positive");
    EXPECT_ERROR(tg_conv1d_layer(.filters = 2, .kernel_size = 3, .strides = 2, .dilation_rate = 2) == NULL,
                 "tg_conv1d_layer: strides > 1 does not go with dilation_rate > 1 (got 2 and 2)");
    EXPECT_ERROR(tg_conv1d_layer(.filters = 2, .kernel_size = 3, .padding = (tg_padding)4) == NULL,
                 "tg_conv1d_layer: padding 4 is neither TG_PADDING_VALID nor TG_PADDING_SAME");
    EXPECT_ERROR(tg_max_pooling1d(.pool_size = -2) == NULL, "tg_max_pooling1d: pool_size and strides must be positive");
    tg_layer *c = tg_conv1d_layer(.filters = 2, .kernel_size = 3);
    EXPECT_ERROR(tg_layer_call(c, tg_ones(TG_F32, TG_SHAPE(2, 4, 4, 1))) == NULL,
                 "Conv1D \"conv1d\": expects batches of sequences (batch, steps, channels), but one example has "
                 "shape (4, 4, 1)");
    EXPECT_ERROR(tg_layer_call(c, tg_ones(TG_F32, TG_SHAPE(2, 2, 1))) == NULL,
                 "Conv1D \"conv1d\": a window of 3 steps does not fit in a sequence of 2 with TG_PADDING_VALID");
    tg_layer *g = tg_global_max_pooling2d();
    EXPECT_ERROR(tg_layer_call(g, tg_ones(TG_F32, TG_SHAPE(2, 4, 1))) == NULL,
                 "GlobalMaxPooling2D \"global_max_pooling2d\": expects batches of images");
    tg_layer_free(c);
    tg_layer_free(g);
    tg_scope_end(s);
}

/* A Sequential of the sequence layers learns a target the pooled features give. */
static void test_sequence_model_fits(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(5);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(32, 8, 2));
    tg_rng_free(r);
    tg_tensor *y = tg_mean(x, .axes = TG_AXES(1, 2)); /* one number per example */
    tg_model *m = tg_sequential(tg_conv1d_layer(.filters = 4, .kernel_size = 3, .padding = TG_PADDING_SAME,
                                                .activation = TG_RELU, .input_shape = TG_SHAPE(8, 2)),
                                tg_max_pooling1d(), tg_average_pooling1d(.pool_size = 2, .strides = 1),
                                tg_global_average_pooling1d(), tg_dense(.units = 1));
    CHECK(m != NULL);
    CHECK(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_MSE) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 20, .batch_size = 8, .verbose = TG_VERBOSE_SILENT);
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    CHECK(loss && n == 20 && loss[n - 1] < loss[0]);
    if (loss)
        printf("  sequence model loss %g -> %g\n", loss[0], loss[n - 1]);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* The layers in a functional graph: Keras tensors get their shapes from the builds. */
static void test_functional_graph(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *a = tg_input(TG_SHAPE(10, 3));
    tg_keras_tensor *h = tg_layer_apply(tg_conv1d_layer(.filters = 5, .kernel_size = 3, .strides = 2), a);
    tg_keras_tensor *p = tg_layer_apply(tg_max_pooling1d(), h);
    tg_keras_tensor *y = tg_layer_apply(tg_global_average_pooling1d(), p);
    CHECK(h && p && y && shape_eq(tg_keras_tensor_shape(h), TG_SHAPE(4, 5)) &&
          shape_eq(tg_keras_tensor_shape(p), TG_SHAPE(2, 5)) && shape_eq(tg_keras_tensor_shape(y), TG_SHAPE(5)));
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a), TG_KERAS_TENSORS(y));
    tg_tensor *out = m ? tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(2, 10, 3))) : NULL;
    CHECK(out && tg_rank(out) == 2 && tg_dim(out, 0) == 2 && tg_dim(out, 1) == 5);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- Conv2DTranspose, DepthwiseConv2D, SeparableConv2D ------------------------------------------- */
static void test_conv2d_transpose(void)
{
    static const char *const kb[] = {"kernel", "bias"};
    tg_layer *a = tg_conv2d_transpose_layer(.filters = 2, .kernel_size = {3}, .strides = {2},
                                            .padding = TG_PADDING_SAME, .dtype = TG_F64);
    CHECK(golden_layer("conv2d_transpose_s2_same", a, kb, 2, LAYER_TOL) && output_shape_is(a, TG_SHAPE(6, 6, 2)));
    tg_layer *b = tg_conv2d_transpose_layer(.filters = 2, .kernel_size = {3, 3}, .strides = {2, 2}, .dtype = TG_F64);
    CHECK(golden_layer("conv2d_transpose_s2_valid", b, kb, 2, LAYER_TOL) && output_shape_is(b, TG_SHAPE(7, 7, 2)));
    tg_layer *c = tg_conv2d_transpose_layer(.filters = 2, .kernel_size = {3}, .dtype = TG_F64);
    CHECK(golden_layer("conv2d_transpose_s1_valid", c, kb, 2, LAYER_TOL) && output_shape_is(c, TG_SHAPE(5, 5, 2)));
    CHECK(strcmp(tg_layer_name(a), "conv2d_transpose") == 0 && strcmp(tg_layer_class_name(a), "Conv2DTranspose") == 0);
    /* a 1x1 kernel with stride 3 (smaller than the stride): each pixel lands alone, the
     * rest is the bias; Keras's length in * s */
    tg_scope *s = tg_scope_begin();
    tg_layer *d = tg_conv2d_transpose_layer(.filters = 1, .kernel_size = {1}, .strides = {3}, .dtype = TG_F64,
                                            .bias_initializer = tg_init_constant(0.5));
    tg_tensor *x = tg_reshape(tg_arange(TG_F64, 1, 3, 1), TG_SHAPE(1, 1, 2, 1));
    tg_tensor *y = tg_layer_call(d, x);
    int n;
    tg_tensor *k = tg_layer_variables(d, &n)[0];
    CHECK(tg_assign(k, tg_fill(TG_F64, TG_SHAPE(1, 1, 1, 1), 2.0)) == 0);
    y = tg_layer_call(d, x);
    CHECK(y && tg_dim(y, 1) == 3 && tg_dim(y, 2) == 6);
    CHECK_VALUES(tg_slice(y, TG_SHAPE(0, 0, 0, 0), TG_SHAPE(1, 1, 6, 1)), 0, 2.5, 0.5, 0.5, 4.5, 0.5, 0.5);
    tg_scope_end(s);
    tg_layer_free(a);
    tg_layer_free(b);
    tg_layer_free(c);
    tg_layer_free(d);
}

static void test_depthwise_separable(void)
{
    static const char *const dwv[] = {"kernel", "bias"};
    tg_layer *dw = tg_depthwise_conv2d_layer(.kernel_size = {3}, .strides = {2}, .padding = TG_PADDING_SAME,
                                             .depth_multiplier = 2, .dtype = TG_F64);
    CHECK(golden_layer("depthwise_m2_s2_same", dw, dwv, 2, LAYER_TOL) && output_shape_is(dw, TG_SHAPE(3, 3, 6)));
    static const char *const sepv[] = {"depthwise_kernel", "pointwise_kernel", "bias"};
    tg_layer *sep = tg_separable_conv2d_layer(.filters = 3, .kernel_size = {2}, .depth_multiplier = 2,
                                              .padding = TG_PADDING_SAME, .dtype = TG_F64);
    CHECK(golden_layer("separable_same", sep, sepv, 3, LAYER_TOL) && output_shape_is(sep, TG_SHAPE(5, 5, 3)));
    CHECK(strcmp(tg_layer_name(dw), "depthwise_conv2d") == 0 && strcmp(tg_layer_name(sep), "separable_conv2d") == 0 &&
          strcmp(tg_layer_class_name(sep), "SeparableConv2D") == 0);
    /* dilation 2, VALID: a 3x3 kernel spans 5 pixels */
    tg_scope *s = tg_scope_begin();
    tg_layer *dd = tg_depthwise_conv2d_layer(.kernel_size = {3}, .dilation_rate = {2}, .use_bias = false);
    tg_tensor *y = tg_layer_call(dd, tg_ones(TG_F32, TG_SHAPE(1, 6, 7, 2)));
    CHECK(y && output_shape_is(dd, TG_SHAPE(2, 3, 2)));
    int n;
    CHECK(tg_layer_variables(dd, &n) && n == 1);
    tg_scope_end(s);
    tg_layer_free(dw);
    tg_layer_free(sep);
    tg_layer_free(dd);
}

static void test_conv2d_family_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_clear_error();
    EXPECT_ERROR(tg_conv2d_transpose_layer(.filters = 0, .kernel_size = {3}) == NULL,
                 "tg_conv2d_transpose_layer: filters must be a positive integer, got 0");
    EXPECT_ERROR(tg_conv2d_transpose_layer(.filters = 1) == NULL,
                 "tg_conv2d_transpose_layer: kernel_size (e.g. .kernel_size = {3, 3}) must be positive");
    EXPECT_ERROR(tg_depthwise_conv2d_layer(.kernel_size = {3}, .strides = {2}, .dilation_rate = {2}) == NULL,
                 "tg_depthwise_conv2d_layer: strides > 1 does not go with dilation_rate > 1");
    EXPECT_ERROR(tg_depthwise_conv2d_layer(.kernel_size = {3}, .depth_multiplier = -1) == NULL,
                 "tg_depthwise_conv2d_layer: depth_multiplier must be positive, got -1");
    EXPECT_ERROR(tg_depthwise_conv2d_layer(.kernel_size = {3}, .filters = 4) == NULL,
                 "tg_depthwise_conv2d_layer: takes no filters (its output has in * depth_multiplier channels), got 4");
    EXPECT_ERROR(tg_separable_conv2d_layer(.kernel_size = {3}) == NULL,
                 "tg_separable_conv2d_layer: filters must be a positive integer, got 0");
    tg_layer *sep = tg_separable_conv2d_layer(.filters = 2, .kernel_size = {3});
    EXPECT_ERROR(tg_layer_call(sep, tg_ones(TG_F32, TG_SHAPE(2, 5, 3))) == NULL,
                 "SeparableConv2D \"separable_conv2d\": expects batches of images");
    tg_layer *dw = tg_depthwise_conv2d_layer(.kernel_size = {3}, .dilation_rate = {3});
    EXPECT_ERROR(tg_layer_call(dw, tg_ones(TG_F32, TG_SHAPE(1, 6, 8, 1))) == NULL,
                 "DepthwiseConv2D \"depthwise_conv2d\": a 7x7 window does not fit in a 6x8 image");
    tg_layer_free(sep);
    tg_layer_free(dw);
    tg_scope_end(s);
}

/* ---- UpSampling2D, ZeroPadding2D, Cropping2D --------------------------------------------------------- */
static void test_reshaping(void)
{
    tg_layer *un = tg_up_sampling2d(.size = {2, 3}, .dtype = TG_F64);
    CHECK(golden_layer("up_sampling_nearest_2x3", un, NULL, 0, LAYER_TOL) && output_shape_is(un, TG_SHAPE(6, 12, 2)));
    tg_layer *ub = tg_up_sampling2d(.interpolation = TG_RESIZE_BILINEAR, .dtype = TG_F64); /* size 2 */
    CHECK(golden_layer("up_sampling_bilinear_2x2", ub, NULL, 0, BILINEAR_TOL) &&
          output_shape_is(ub, TG_SHAPE(6, 8, 2)));
    tg_layer *zp = tg_zero_padding2d(.padding = {{1, 2}, {0, 1}}, .dtype = TG_F64);
    CHECK(golden_layer("zero_padding_1_2_0_1", zp, NULL, 0, 0) && output_shape_is(zp, TG_SHAPE(6, 5, 2)));
    tg_layer *cr = tg_cropping2d(.cropping = {{1, 0}, {1, 2}}, .dtype = TG_F64);
    CHECK(golden_layer("cropping_1_0_1_2", cr, NULL, 0, 0) && output_shape_is(cr, TG_SHAPE(2, 1, 2)));
    CHECK(strcmp(tg_layer_name(un), "up_sampling2d") == 0 && strcmp(tg_layer_name(zp), "zero_padding2d") == 0 &&
          strcmp(tg_layer_name(cr), "cropping2d") == 0 && strcmp(tg_layer_class_name(zp), "ZeroPadding2D") == 0);
    /* the defaults: padding (1, 1) all round, no cropping */
    tg_scope *s = tg_scope_begin();
    tg_layer *zd = tg_zero_padding2d(), *cd = tg_cropping2d();
    tg_tensor *one = tg_ones(TG_F32, TG_SHAPE(1, 1, 1, 1));
    CHECK_VALUES(tg_layer_call(zd, one), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0);
    CHECK_VALUES(tg_layer_call(cd, one), 0, 1);
    tg_scope_end(s);
    tg_layer_free(un);
    tg_layer_free(ub);
    tg_layer_free(zp);
    tg_layer_free(cr);
    tg_layer_free(zd);
    tg_layer_free(cd);
}

static void test_reshaping_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_clear_error();
    EXPECT_ERROR(tg_up_sampling2d(.size = {2, -1}) == NULL, "tg_up_sampling2d: size must be positive, got {2, -1}");
    EXPECT_ERROR(tg_up_sampling2d(.interpolation = (tg_resize_method)7) == NULL,
                 "tg_up_sampling2d: interpolation 7 is neither TG_RESIZE_NEAREST nor TG_RESIZE_BILINEAR");
    EXPECT_ERROR(tg_zero_padding2d(.padding = {{1, -1}, {0, 0}}) == NULL,
                 "tg_zero_padding2d: padding must be >= 0, got {{1, -1}, {0, 0}}");
    EXPECT_ERROR(tg_cropping2d(.cropping = {{0, 0}, {-2, 0}}) == NULL, "tg_cropping2d: cropping must be >= 0");
    tg_layer *cr = tg_cropping2d(.cropping = {{2, 2}, {0, 0}});
    EXPECT_ERROR(tg_layer_call(cr, tg_ones(TG_F32, TG_SHAPE(1, 4, 4, 1))) == NULL,
                 "Cropping2D \"cropping2d\": cropping {{2, 2}, {0, 0}} leaves nothing of a 4x4 image");
    tg_layer *up = tg_up_sampling2d();
    EXPECT_ERROR(tg_layer_call(up, tg_ones(TG_F32, TG_SHAPE(1, 4))) == NULL,
                 "UpSampling2D \"up_sampling2d\": expects batches of images (batch, height, width, channels)");
    tg_layer_free(cr);
    tg_layer_free(up);
    tg_scope_end(s);
}

/* A small image model of the 2-D layers (a decoder's shapes) learns its target. */
static void test_image_model_fits(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(6);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(16, 4, 4, 2));
    tg_rng_free(r);
    tg_tensor *y = tg_max(x, .axes = TG_AXES(1, 2, 3));
    tg_model *m =
        tg_sequential(tg_zero_padding2d(.input_shape = TG_SHAPE(4, 4, 2)),
                      tg_depthwise_conv2d_layer(.kernel_size = {3}, .depth_multiplier = 2, .activation = TG_RELU),
                      tg_up_sampling2d(), tg_conv2d_transpose_layer(.filters = 2, .kernel_size = {3}, .strides = {2}),
                      tg_cropping2d(.cropping = {{1, 1}, {1, 1}}),
                      tg_separable_conv2d_layer(.filters = 3, .kernel_size = {3}, .padding = TG_PADDING_SAME),
                      tg_global_max_pooling2d(), tg_dense(.units = 1));
    CHECK(m != NULL);
    tg_shape out = tg_layer_output_shape(tg_model_layer(m, 4));
    CHECK(shape_eq(out, TG_SHAPE(15, 15, 2))); /* 4+2-2 = 4, x2 = 8, 8*2+1 = 17, -2 */
    CHECK(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_MSE) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 15, .batch_size = 8, .verbose = TG_VERBOSE_SILENT);
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    CHECK(loss && n == 15 && loss[n - 1] < loss[0]);
    if (loss)
        printf("  image model loss %g -> %g\n", loss[0], loss[n - 1]);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- Rescaling, RandomFlip, RandomCrop --------------------------------------------------------------- */
static void test_rescaling(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *r = tg_rescaling(.scale = 1.0 / 127.5, .offset = -1, .dtype = TG_F64);
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(1, 3), ((double[]){0, 127.5, 255}));
    CHECK_VALUES(tg_layer_call(r, x), 1e-15, -1, 0, 1);
    CHECK(strcmp(tg_layer_name(r), "rescaling") == 0 && output_shape_is(r, TG_SHAPE(3)));
    int n = -1;
    CHECK(tg_layer_variables(r, &n) != NULL || n == 0);
    CHECK(n == 0);
    tg_tensor *xs[1] = {gc_input(3, TG_SHAPE(2, 3), -1, 1)};
    tg_layer *r2 = tg_rescaling(.scale = -3, .dtype = TG_F64);
    CHECK(gradcheck("rescaling", layer_fn, xs, 1, r2, GRAD_EPS, GRAD_TOL));
    tg_clear_error();
    EXPECT_ERROR(tg_rescaling() == NULL, "tg_rescaling: scale must be finite and nonzero (e.g. .scale = 1.0 / 255)");
    EXPECT_ERROR(tg_rescaling(.scale = 1, .offset = NAN) == NULL, "offset nan");
    tg_layer_free(r);
    tg_layer_free(r2);
    tg_scope_end(s);
}

/* Example i of a batch of 1x2x3 images: values 100 i + 0..5, so every value says where it is. */
static tg_tensor *numbered_images(int64_t n, int64_t h, int64_t w)
{
    return tg_reshape(tg_arange(TG_F64, 0, (double)(n * h * w), 1), TG_SHAPE(n, h, w, 1));
}

/* How many examples of y are x's flip (along `axes`) rather than x; -1 when one is neither. */
static int count_flipped(const tg_tensor *x, const tg_tensor *y, tg_axes axes)
{
    int64_t n = tg_dim(x, 0), k = tg_size(x) / n;
    tg_tensor *f = tg_reverse(x, axes);
    double *xv = malloc(sizeof(double) * (size_t)(n * k)), *yv = malloc(sizeof(double) * (size_t)(n * k)),
           *fv = malloc(sizeof(double) * (size_t)(n * k));
    tg_copy_out_f64(x, xv, n * k);
    tg_copy_out_f64(y, yv, n * k);
    tg_copy_out_f64(f, fv, n * k);
    int flipped = 0;
    for (int64_t i = 0; i < n && flipped >= 0; i++) {
        bool same = !memcmp(xv + i * k, yv + i * k, sizeof(double) * (size_t)k);
        bool flip = !memcmp(fv + i * k, yv + i * k, sizeof(double) * (size_t)k);
        flipped = same ? flipped : flip ? flipped + 1 : -1;
    }
    free(xv);
    free(yv);
    free(fv);
    return flipped;
}

static void test_random_flip(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = numbered_images(64, 3, 4);
    tg_layer *hf = tg_random_flip(.mode = TG_FLIP_HORIZONTAL, .seed = 11, .dtype = TG_F64);
    tg_tensor *y = tg_layer_call(hf, x, .training = false);
    CHECK(y && count_flipped(x, y, TG_AXES(2)) == 0); /* identity at inference */
    y = tg_layer_call(hf, x, .training = true);
    int k = y ? count_flipped(x, y, TG_AXES(2)) : -1;
    CHECK(k > 16 && k < 48); /* about half of 64; binomial: outside (16, 48) has odds below 1e-4 */
    printf("  RandomFlip horizontal flipped %d of 64\n", k);
    /* the same seed draws the same flips; another seed others */
    tg_layer *same = tg_random_flip(.mode = TG_FLIP_HORIZONTAL, .seed = 11, .dtype = TG_F64);
    tg_layer *other = tg_random_flip(.mode = TG_FLIP_HORIZONTAL, .seed = 12, .dtype = TG_F64);
    tg_tensor *y2 = tg_layer_call(same, x, .training = true), *y3 = tg_layer_call(other, x, .training = true);
    CHECK(y2 && y3 && tg_item(tg_max(tg_abs(tg_sub(y, y2)))) == 0 && tg_item(tg_max(tg_abs(tg_sub(y, y3)))) > 0);
    /* vertical and both: every example is x or its flip along those axes */
    tg_layer *vf = tg_random_flip(.mode = TG_FLIP_VERTICAL, .seed = 3, .dtype = TG_F64);
    k = count_flipped(x, tg_layer_call(vf, x, .training = true), TG_AXES(1));
    CHECK(k > 16 && k < 48);
    tg_layer *bf = tg_random_flip(.seed = 4, .dtype = TG_F64);
    k = count_flipped(x, tg_layer_call(bf, x, .training = true), TG_AXES(1, 2));
    CHECK(k > 16 && k < 48);
    /* the gradient is the flip's: y = P x per example with P its own transpose, so the
     * gradient of sum(y * c), c a constant equal to x, is P c = y */
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *yt = tg_layer_call(bf, x, .training = true);
    tg_tensor *loss = tg_sum(tg_mul(yt, numbered_images(64, 3, 4))); /* c: not watched */
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, loss, x);
    CHECK(g && yt && tg_item(tg_max(tg_abs(tg_sub(g, yt)))) == 0);
    tg_tape_free(t);
    CHECK(strcmp(tg_layer_name(hf), "random_flip") == 0 && strcmp(tg_layer_class_name(hf), "RandomFlip") == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_random_flip(.mode = (tg_flip_mode)9) == NULL, "tg_random_flip: mode 9 is not");
    tg_layer *bad = tg_random_flip();
    EXPECT_ERROR(tg_layer_call(bad, tg_ones(TG_F32, TG_SHAPE(2, 3))) == NULL,
                 "RandomFlip \"random_flip\": expects batches of images");
    tg_layer_free(hf);
    tg_layer_free(same);
    tg_layer_free(other);
    tg_layer_free(vf);
    tg_layer_free(bf);
    tg_layer_free(bad);
    tg_scope_end(s);
}

static void test_random_crop(void)
{
    tg_scope *s = tg_scope_begin();
    /* inference, Keras's path: 4x6 to 2x2 takes the centered 4x4 (columns 1..4) and
     * resizes it: bilinear halving averages 2x2 blocks (x = 6 r + c) */
    tg_layer *c = tg_random_crop(.height = 2, .width = 2, .seed = 5, .dtype = TG_F64);
    tg_tensor *x = numbered_images(1, 4, 6);
    CHECK_VALUES(tg_layer_call(c, x, .training = false), 1e-6, 4.5, 6.5, 16.5, 18.5);
    CHECK(output_shape_is(c, TG_SHAPE(2, 2, 1)));
    /* inference when the centered box already has the target's size: a plain center crop
     * (4x4 to 2x4: int(4 * 2 / 4) = 2 rows, rows 1..2) */
    tg_layer *cc = tg_random_crop(.height = 2, .width = 4, .dtype = TG_F64);
    tg_tensor *x2 = numbered_images(1, 4, 4);
    CHECK_VALUES(tg_layer_call(cc, x2, .training = false), 0, 4, 5, 6, 7, 8, 9, 10, 11);
    /* training: one window per batch, every example cut at the same place, at offsets that
     * vary from call to call and cover the room (0..2 rows, 0..4 columns) */
    tg_tensor *xb = numbered_images(3, 4, 6);
    bool seen[3][5] = {{false}};
    int distinct = 0;
    for (int call = 0; call < 200; call++) {
        tg_tensor *y = tg_layer_call(c, xb, .training = true);
        double v[12];
        if (!y || tg_copy_out_f64(y, v, 12) != 0)
            break;
        int top = (int)v[0] / 6, left = (int)v[0] % 6;
        bool ok = top <= 2 && left <= 4;
        for (int i = 0; ok && i < 3; i++)
            ok = v[4 * i] == 24 * i + 6 * top + left && v[4 * i + 1] == v[4 * i] + 1 && v[4 * i + 2] == v[4 * i] + 6;
        CHECK(ok);
        if (!ok)
            break;
        distinct += !seen[top][left];
        seen[top][left] = true;
    }
    CHECK(distinct == 15); /* 3 x 5 offsets, each seen in 200 draws (a miss: odds ~ 15 (14/15)^200, 1e-5) */
    printf("  RandomCrop: %d of the 15 windows drawn\n", distinct);
    /* the same seed, the same windows */
    tg_layer *c2 = tg_random_crop(.height = 2, .width = 2, .seed = 5, .dtype = TG_F64);
    tg_layer *c3 = tg_random_crop(.height = 2, .width = 2, .seed = 5, .dtype = TG_F64);
    tg_tensor *ya = tg_layer_call(c2, xb, .training = true), *yb = tg_layer_call(c3, xb, .training = true);
    CHECK(ya && yb && tg_item(tg_max(tg_abs(tg_sub(ya, yb)))) == 0);
    /* training's gradient: sum(y * c) gives c inside the window drawn, 0 elsewhere (the
     * window read back from y's first value, x = 6 r + c numbering) */
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *yt = tg_layer_call(c, x, .training = true);
    tg_tensor *cw = tg_tensor_from(TG_F64, TG_SHAPE(1, 2, 2, 1), ((double[]){1, 2, 3, 4}));
    tg_tensor *loss = tg_sum(tg_mul(yt, cw));
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, loss, x);
    double y0 = yt ? tg_item(tg_slice(yt, TG_SHAPE(0, 0, 0, 0), TG_SHAPE(1, 1, 1, 1))) : -1;
    int64_t top = (int64_t)y0 / 6, left = (int64_t)y0 % 6;
    CHECK(g && tg_item(tg_sum(g)) == 10 &&
          tg_item(tg_max(tg_abs(tg_sub(tg_slice(g, TG_SHAPE(0, top, left, 0), TG_SHAPE(1, 2, 2, 1)), cw)))) == 0);
    tg_tape_free(t);
    /* gradients: through the center path's crop and resize */
    tg_tensor *xs[1] = {gc_input(8, TG_SHAPE(2, 4, 6, 1), -1, 1)};
    CHECK(gradcheck("random_crop inference", layer_fn, xs, 1, c, GRAD_EPS, GRAD_TOL));
    CHECK(strcmp(tg_layer_name(c), "random_crop") == 0 && strcmp(tg_layer_class_name(c), "RandomCrop") == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_random_crop(.height = 2) == NULL, "tg_random_crop: height and width must be positive, got 2 and 0");
    tg_layer *bad = tg_random_crop(.height = 2, .width = 2);
    EXPECT_ERROR(tg_layer_call(bad, tg_ones(TG_F32, TG_SHAPE(2, 3, 3))) == NULL,
                 "RandomCrop \"random_crop\": expects batches of images");
    tg_layer_free(c);
    tg_layer_free(cc);
    tg_layer_free(c2);
    tg_layer_free(c3);
    tg_layer_free(bad);
    tg_scope_end(s);
}

/* The preprocessing layers in front of a model: fit trains through them (training = true),
 * predict-time calls are deterministic. */
static void test_augmented_model_fits(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(8);
    tg_tensor *x = tg_random_uniform(r, TG_F32, TG_SHAPE(16, 6, 6, 1), .minval = 0, .maxval = 255);
    tg_rng_free(r);
    tg_tensor *y = tg_mean(x, .axes = TG_AXES(1, 2, 3));
    tg_model *m =
        tg_sequential(tg_rescaling(.scale = 1.0 / 255, .input_shape = TG_SHAPE(6, 6, 1)), tg_random_flip(),
                      tg_random_crop(.height = 4, .width = 4), tg_global_average_pooling2d(), tg_dense(.units = 1));
    CHECK(m != NULL);
    CHECK(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .loss = TG_LOSS_MSE) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 10, .batch_size = 4, .verbose = TG_VERBOSE_SILENT);
    int n = 0;
    const double *loss = h ? tg_history_get(h, "loss", &n) : NULL;
    CHECK(loss && n == 10 && loss[n - 1] < loss[0]);
    tg_tensor *p1 = tg_model_call(m, x), *p2 = tg_model_call(m, x);
    CHECK(p1 && p2 && tg_item(tg_max(tg_abs(tg_sub(p1, p2)))) == 0);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    (void)golden_case; /* index_golden.h's op form; the cases here are layers */
    RUN(test_conv1d);
    RUN(test_poolings);
    RUN(test_sequence_errors);
    RUN(test_sequence_model_fits);
    RUN(test_functional_graph);
    RUN(test_conv2d_transpose);
    RUN(test_depthwise_separable);
    RUN(test_conv2d_family_errors);
    RUN(test_reshaping);
    RUN(test_reshaping_errors);
    RUN(test_image_model_fits);
    RUN(test_rescaling);
    RUN(test_random_flip);
    RUN(test_random_crop);
    RUN(test_augmented_model_fits);
    return TEST_SUMMARY();
}
