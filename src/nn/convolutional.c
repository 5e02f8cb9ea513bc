/* Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, MaxPooling2D,
 * AveragePooling2D and GlobalAveragePooling2D: layers over the convolution ops
 * (src/ops/conv.c), NHWC, with Keras's names, defaults and kernel layouts. */
#include "layer_impl.h"

/* {k} means {k, k}; {0, 0} means {dflt, dflt}. */
static void resolve_pair(int64_t p[2], int64_t dflt)
{
    if (p[0] == 0 && p[1] == 0)
        p[0] = p[1] = dflt;
    else if (p[1] == 0)
        p[1] = p[0];
}

static bool check_pair(tg_loc loc, const char *func, const char *what, const int64_t p[2])
{
    if (p[0] > 0 && p[1] > 0)
        return true;
    tg__fail(loc, "%s: %s must be positive, got {%lld, %lld}", func, what, (long long)p[0], (long long)p[1]);
    return false;
}

static bool check_padding(tg_loc loc, const char *func, tg_padding p)
{
    if (p == TG_PADDING_VALID || p == TG_PADDING_SAME)
        return true;
    tg__fail(loc, "%s: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME", func, (int)p);
    return false;
}

/* One example must be an image (height, width, channels). */
static bool check_image(tg_layer *l, tg_loc loc, const tg_shape *in)
{
    if (in->rank == 3)
        return true;
    char buf[TG_SHAPE_STR_MAX];
    tg__fail(loc,
             "%s \"%s\": expects batches of images (batch, height, width, channels), NHWC, but one example "
             "has shape %s",
             l->kind->class_name, l->name, tg__shape_str(in, buf, sizeof buf));
    return false;
}

static const int64_t undilated[2] = {1, 1};

/* TF's output size: VALID floor((in - span) / s) + 1, SAME ceil(in / s), span the window
 * dilated by d. Sets out to (oh, ow, channels); false with an error when the window does
 * not fit. */
static bool window_shape(tg_layer *l, tg_loc loc, const tg_shape *in, const int64_t k[2], const int64_t s[2],
                         const int64_t d[2], tg_padding p, int64_t channels, tg_shape *out)
{
    *out = (tg_shape){.rank = 3, .dims = {0, 0, channels}};
    int64_t span[2];
    for (int a = 0; a < 2; a++) {
        int64_t n = in->dims[a];
        span[a] = (k[a] - 1) * d[a] + 1;
        /* ceil(n / s), with no n + s - 1 to overflow for a huge stride */
        out->dims[a] = p == TG_PADDING_SAME ? n / s[a] + (n % s[a] != 0) : n >= span[a] ? (n - span[a]) / s[a] + 1 : 0;
    }
    if (out->dims[0] > 0 && out->dims[1] > 0)
        return true;
    tg__fail(loc,
             "%s \"%s\": a %lldx%lld window does not fit in a %lldx%lld image with TG_PADDING_VALID; use "
             "TG_PADDING_SAME or a smaller window",
             l->kind->class_name, l->name, (long long)span[0], (long long)span[1], (long long)in->dims[0],
             (long long)in->dims[1]);
    return false;
}

/* ---- Conv2D --------------------------------------------------------------------------------- */
static bool conv_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_conv2d_layer_opts *o = &l->o.conv;
    if (!check_image(l, loc, in) ||
        !window_shape(l, loc, in, o->kernel_size, o->strides, undilated, o->padding, o->filters, out))
        return false;
    tg_initializer k = o->kernel_initializer.kind ? o->kernel_initializer : tg_init_glorot_uniform();
    tg_initializer b = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    if (!tg__layer_add_variable(l, loc, "kernel", k,
                                TG_SHAPE(o->kernel_size[0], o->kernel_size[1], in->dims[2], o->filters), true))
        return false;
    l->var_reg[0] = o->kernel_regularizer;
    if (tg__variable_set_constraint(loc, l->vars[0], o->kernel_constraint) != 0)
        return false;
    if (o->use_bias && (!tg__layer_add_variable(l, loc, "bias", b, TG_SHAPE(o->filters), true) ||
                        tg__variable_set_constraint(loc, l->vars[1], o->bias_constraint) != 0))
        return false;
    l->var_reg[1] = o->bias_regularizer;
    return true;
}

static tg_tensor *conv_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    const tg_conv2d_layer_opts *o = &l->o.conv;
    tg_conv2d_opts c = {.strides = {o->strides[0], o->strides[1]}, .padding = o->padding};
    /* the activations bias_add_act knows, in one op with the convolution (the same values) */
    static const int fused[TG_ACTIVATION_COUNT] = {[TG_LINEAR] = TG_BIAS_LINEAR + 1,
                                                   [TG_RELU] = TG_BIAS_RELU + 1,
                                                   [TG_SIGMOID] = TG_BIAS_SIGMOID + 1,
                                                   [TG_TANH] = TG_BIAS_TANH + 1};
    if (o->use_bias && (unsigned)l->activation < TG_ACTIVATION_COUNT && fused[l->activation])
        return tg_conv2d_bias_act_at(loc, x, tg__layer_read(l, loc, 0), tg__layer_read(l, loc, 1),
                                     (tg_bias_act)(fused[l->activation] - 1), c);
    tg_tensor *y = tg_conv2d_at(loc, x, tg__layer_read(l, loc, 0), c);
    return tg__bias_activate(loc, y, o->use_bias ? tg__layer_read(l, loc, 1) : NULL, l->activation);
}

static const tg_layer_kind conv_kind = {.base_name = "conv2d",
                                        .class_name = "Conv2D",
                                        .autocast = true,
                                        .build = conv_build,
                                        .call = conv_call,
                                        .computes_bf16 = true};

tg_layer *tg_conv2d_layer_at(tg_loc loc, tg_conv2d_layer_opts o)
{
    const char *f = "tg_conv2d_layer";
    if (o.filters <= 0)
        return tg__fail(loc, "%s: filters must be a positive integer, got %lld", f, (long long)o.filters);
    resolve_pair(o.kernel_size, 0);
    resolve_pair(o.strides, 1);
    if (!check_pair(loc, f, "kernel_size (e.g. .kernel_size = {3, 3})", o.kernel_size) ||
        !check_pair(loc, f, "strides", o.strides) || !check_padding(loc, f, o.padding) ||
        !tg__check_activation(loc, f, o.activation))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, &conv_kind, o);
    if (l) {
        l->o.conv = o;
        l->activation = o.activation;
        l->activity_reg = o.activity_regularizer;
    }
    return l;
}

/* ---- MaxPooling2D, AveragePooling2D ------------------------------------------------------------ */
static bool pool_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_pooling2d_opts *o = &l->o.pool;
    return check_image(l, loc, in) &&
           window_shape(l, loc, in, o->pool_size, o->strides, undilated, o->padding, in->dims[2], out);
}

static tg_pool2d_opts pool_opts(const tg_layer *l)
{
    const tg_pooling2d_opts *o = &l->o.pool;
    return (tg_pool2d_opts){.pool_size = {o->pool_size[0], o->pool_size[1]},
                            .strides = {o->strides[0], o->strides[1]},
                            .padding = o->padding};
}

static tg_tensor *max_pool_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_max_pool2d_at(loc, x, pool_opts(l));
}

static tg_tensor *avg_pool_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_avg_pool2d_at(loc, x, pool_opts(l));
}

static const tg_layer_kind max_pool_kind = {.base_name = "max_pooling2d",
                                            .class_name = "MaxPooling2D",
                                            .autocast = true,
                                            .build = pool_build,
                                            .call = max_pool_call,
                                            .computes_bf16 = true};
static const tg_layer_kind avg_pool_kind = {.base_name = "average_pooling2d",
                                            .class_name = "AveragePooling2D",
                                            .autocast = true,
                                            .build = pool_build,
                                            .call = avg_pool_call,
                                            .computes_bf16 = true};

static tg_layer *pooling(tg_loc loc, const tg_layer_kind *kind, const char *func, tg_pooling2d_opts o)
{
    resolve_pair(o.pool_size, 2);
    if (o.strides[0] == 0 && o.strides[1] == 0) /* Keras: strides=None is the pool size */
        o.strides[0] = o.pool_size[0], o.strides[1] = o.pool_size[1];
    else
        resolve_pair(o.strides, 0);
    if (!check_pair(loc, func, "pool_size", o.pool_size) || !check_pair(loc, func, "strides", o.strides) ||
        !check_padding(loc, func, o.padding))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, kind, o);
    if (l)
        l->o.pool = o;
    return l;
}

tg_layer *tg_max_pooling2d_at(tg_loc loc, tg_pooling2d_opts o)
{
    return pooling(loc, &max_pool_kind, "tg_max_pooling2d", o);
}

tg_layer *tg_average_pooling2d_at(tg_loc loc, tg_pooling2d_opts o)
{
    return pooling(loc, &avg_pool_kind, "tg_average_pooling2d", o);
}

/* ---- GlobalAveragePooling2D -------------------------------------------------------------------- */
static bool global_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    if (!check_image(l, loc, in))
        return false;
    *out = (tg_shape){.rank = 1, .dims = {in->dims[2]}};
    return true;
}

static tg_tensor *global_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)l, (void)training;
    return tg_global_avg_pool2d_at(loc, x);
}

static const tg_layer_kind global_kind = {.base_name = "global_average_pooling2d",
                                          .class_name = "GlobalAveragePooling2D",
                                          .autocast = true,
                                          .build = global_build,
                                          .call = global_call,
                                          .computes_bf16 = true};

tg_layer *tg_global_average_pooling2d_at(tg_loc loc, tg_global_pooling2d_opts o)
{
    return TG__LAYER_NEW(loc, &global_kind, o);
}

/* ---- Conv2DTranspose, DepthwiseConv2D, SeparableConv2D ------------------------------------------ */
/* Checks the pairs shared by the three and fills their defaults; false with an error. */
static bool check_conv_pairs(tg_loc loc, const char *func, int64_t kernel_size[2], int64_t strides[2],
                             int64_t dilation_rate[2], tg_padding padding, tg_activation activation)
{
    resolve_pair(kernel_size, 0);
    resolve_pair(strides, 1);
    resolve_pair(dilation_rate, 1);
    if (!check_pair(loc, func, "kernel_size (e.g. .kernel_size = {3, 3})", kernel_size) ||
        !check_pair(loc, func, "strides", strides) || !check_pair(loc, func, "dilation_rate", dilation_rate) ||
        !check_padding(loc, func, padding) || !tg__check_activation(loc, func, activation))
        return false;
    if ((strides[0] > 1 || strides[1] > 1) && (dilation_rate[0] > 1 || dilation_rate[1] > 1))
        return tg__failb(loc,
                         "%s: strides > 1 does not go with dilation_rate > 1 (got {%lld, %lld} and {%lld, %lld}), "
                         "as Keras",
                         func, (long long)strides[0], (long long)strides[1], (long long)dilation_rate[0],
                         (long long)dilation_rate[1]);
    return true;
}

static tg_conv2d_opts conv_opts(const int64_t strides[2], tg_padding padding, const int64_t dilation_rate[2])
{
    return (tg_conv2d_opts){
        .strides = {strides[0], strides[1]}, .padding = padding, .dilations = {dilation_rate[0], dilation_rate[1]}};
}

/* Keras's deconv_output_length without output_padding. */
static int64_t transposed_length(int64_t n, int64_t k, int64_t s, int64_t d, tg_padding p)
{
    int64_t span = (k - 1) * d + 1;
    return p == TG_PADDING_SAME ? n * s : n * s + (span > s ? span - s : 0);
}

static bool convt_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_conv2d_transpose_layer_opts *o = &l->o.convt;
    if (!check_image(l, loc, in))
        return false;
    *out = (tg_shape){.rank = 3, .dims = {0, 0, o->filters}};
    for (int a = 0; a < 2; a++)
        out->dims[a] =
            transposed_length(in->dims[a], o->kernel_size[a], o->strides[a], o->dilation_rate[a], o->padding);
    tg_initializer k = o->kernel_initializer.kind ? o->kernel_initializer : tg_init_glorot_uniform();
    tg_initializer b = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    if (!tg__layer_add_variable(l, loc, "kernel", k,
                                TG_SHAPE(o->kernel_size[0], o->kernel_size[1], o->filters, in->dims[2]), true))
        return false;
    return !o->use_bias || tg__layer_add_variable(l, loc, "bias", b, TG_SHAPE(o->filters), true);
}

static tg_tensor *convt_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    const tg_conv2d_transpose_layer_opts *o = &l->o.convt;
    tg_shape os = l->out_shape;
    tg_shape full = TG_SHAPE(tg_dim(x, 0), os.dims[0], os.dims[1], os.dims[2]);
    tg_tensor *y =
        tg_conv2d_transpose_at(loc, x, l->vars[0], full, conv_opts(o->strides, o->padding, o->dilation_rate));
    return tg__bias_activate(loc, y, o->use_bias ? l->vars[1] : NULL, l->activation);
}

static const tg_layer_kind convt_kind = {.base_name = "conv2d_transpose",
                                         .class_name = "Conv2DTranspose",
                                         .autocast = true,
                                         .build = convt_build,
                                         .call = convt_call};

tg_layer *tg_conv2d_transpose_layer_at(tg_loc loc, tg_conv2d_transpose_layer_opts o)
{
    const char *f = "tg_conv2d_transpose_layer";
    if (o.filters <= 0)
        return tg__fail(loc, "%s: filters must be a positive integer, got %lld", f, (long long)o.filters);
    if (!check_conv_pairs(loc, f, o.kernel_size, o.strides, o.dilation_rate, o.padding, o.activation))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, &convt_kind, o);
    if (l) {
        l->o.convt = o;
        l->activation = o.activation;
    }
    return l;
}

/* The depthwise kernel (kh, kw, in, depth_multiplier), named `kernel` by DepthwiseConv2D
 * and `depthwise_kernel` by SeparableConv2D. */
static bool depthwise_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out, const char *kernel_name)
{
    const tg_separable_conv2d_layer_opts *o = &l->o.sep;
    if (!check_image(l, loc, in) || !window_shape(l, loc, in, o->kernel_size, o->strides, o->dilation_rate, o->padding,
                                                  in->dims[2] * o->depth_multiplier, out))
        return false;
    tg_initializer k = o->depthwise_initializer.kind ? o->depthwise_initializer : tg_init_glorot_uniform();
    return tg__layer_add_variable(l, loc, kernel_name, k,
                                  TG_SHAPE(o->kernel_size[0], o->kernel_size[1], in->dims[2], o->depth_multiplier),
                                  true) != NULL;
}

static bool add_bias(tg_layer *l, tg_loc loc, int64_t n)
{
    const tg_separable_conv2d_layer_opts *o = &l->o.sep;
    tg_initializer b = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    return !o->use_bias || tg__layer_add_variable(l, loc, "bias", b, TG_SHAPE(n), true);
}

static bool dw_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    return depthwise_build(l, loc, in, out, "kernel") && add_bias(l, loc, out->dims[2]);
}

static tg_tensor *dw_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    const tg_separable_conv2d_layer_opts *o = &l->o.sep;
    tg_tensor *y = tg_depthwise_conv2d_at(loc, x, l->vars[0], conv_opts(o->strides, o->padding, o->dilation_rate));
    return tg__bias_activate(loc, y, o->use_bias ? l->vars[1] : NULL, l->activation);
}

static bool sep_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_separable_conv2d_layer_opts *o = &l->o.sep;
    if (!depthwise_build(l, loc, in, out, "depthwise_kernel"))
        return false;
    tg_initializer p = o->pointwise_initializer.kind ? o->pointwise_initializer : tg_init_glorot_uniform();
    if (!tg__layer_add_variable(l, loc, "pointwise_kernel", p, TG_SHAPE(1, 1, out->dims[2], o->filters), true))
        return false;
    out->dims[2] = o->filters;
    return add_bias(l, loc, o->filters);
}

static tg_tensor *sep_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    const tg_separable_conv2d_layer_opts *o = &l->o.sep;
    tg_tensor *y =
        tg_separable_conv2d_at(loc, x, l->vars[0], l->vars[1], conv_opts(o->strides, o->padding, o->dilation_rate));
    return tg__bias_activate(loc, y, o->use_bias ? l->vars[2] : NULL, l->activation);
}

static const tg_layer_kind dw_kind = {.base_name = "depthwise_conv2d",
                                      .class_name = "DepthwiseConv2D",
                                      .autocast = true,
                                      .build = dw_build,
                                      .call = dw_call};
static const tg_layer_kind sep_kind = {.base_name = "separable_conv2d",
                                       .class_name = "SeparableConv2D",
                                       .autocast = true,
                                       .build = sep_build,
                                       .call = sep_call};

static tg_layer *depthwise_family(tg_loc loc, const tg_layer_kind *kind, const char *f,
                                  tg_separable_conv2d_layer_opts o)
{
    o.depth_multiplier = o.depth_multiplier ? o.depth_multiplier : 1;
    if (o.depth_multiplier < 0)
        return tg__fail(loc, "%s: depth_multiplier must be positive, got %lld", f, (long long)o.depth_multiplier);
    if (!check_conv_pairs(loc, f, o.kernel_size, o.strides, o.dilation_rate, o.padding, o.activation))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, kind, o);
    if (l) {
        l->o.sep = o;
        l->activation = o.activation;
    }
    return l;
}

tg_layer *tg_depthwise_conv2d_layer_at(tg_loc loc, tg_depthwise_conv2d_layer_opts o)
{
    if (o.filters != 0)
        return tg__fail(loc,
                        "tg_depthwise_conv2d_layer: takes no filters (its output has in * depth_multiplier "
                        "channels), got %lld; use .depth_multiplier",
                        (long long)o.filters);
    return depthwise_family(loc, &dw_kind, "tg_depthwise_conv2d_layer", o);
}

tg_layer *tg_separable_conv2d_layer_at(tg_loc loc, tg_separable_conv2d_layer_opts o)
{
    if (o.filters <= 0)
        return tg__fail(loc, "tg_separable_conv2d_layer: filters must be a positive integer, got %lld",
                        (long long)o.filters);
    return depthwise_family(loc, &sep_kind, "tg_separable_conv2d_layer", o);
}
