/* Conv1D, MaxPooling1D, AveragePooling1D and the global poolings (1-D, and 2-D's maximum):
 * layers over the 1-D convolution ops and the reductions, (batch, steps, channels), with
 * Keras's names and defaults (keras/src/layers/convolutional, keras/src/layers/pooling). */
#include "layer_impl.h"

static bool check_padding(tg_loc loc, const char *func, tg_padding p)
{
    if (p == TG_PADDING_VALID || p == TG_PADDING_SAME)
        return true;
    return tg__failb(loc, "%s: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME", func, (int)p);
}

/* One example must be `rank` axes: a sequence (steps, channels) or an image. */
static bool check_rank(tg_layer *l, tg_loc loc, const tg_shape *in, int rank)
{
    if (in->rank == rank)
        return true;
    char buf[TG_SHAPE_STR_MAX];
    return tg__failb(loc, "%s \"%s\": expects batches of %s, but one example has shape %s", l->kind->class_name,
                     l->name,
                     rank == 2 ? "sequences (batch, steps, channels)" : "images (batch, height, width, channels), NHWC",
                     tg__shape_str(in, buf, sizeof buf));
}

/* TF's output length: VALID floor((n - span) / s) + 1, SAME ceil(n / s), span the
 * dilated window; false with an error when the window does not fit. */
static bool window_length(tg_layer *l, tg_loc loc, int64_t n, int64_t k, int64_t s, int64_t d, tg_padding p,
                          int64_t *out)
{
    int64_t span = (k - 1) * d + 1;
    *out = p == TG_PADDING_SAME ? n / s + (n % s != 0) : n >= span ? (n - span) / s + 1 : 0;
    if (*out > 0)
        return true;
    return tg__failb(loc,
                     "%s \"%s\": a window of %lld steps does not fit in a sequence of %lld with TG_PADDING_VALID; "
                     "use TG_PADDING_SAME or a smaller window",
                     l->kind->class_name, l->name, (long long)span, (long long)n);
}

/* ---- Conv1D ------------------------------------------------------------------------------------- */
static bool conv1d_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_conv1d_layer_opts *o = &l->o.conv1d;
    *out = (tg_shape){.rank = 2, .dims = {0, o->filters}};
    if (!check_rank(l, loc, in, 2) ||
        !window_length(l, loc, in->dims[0], o->kernel_size, o->strides, o->dilation_rate, o->padding, &out->dims[0]))
        return false;
    tg_initializer k = o->kernel_initializer.kind ? o->kernel_initializer : tg_init_glorot_uniform();
    tg_initializer b = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    if (!tg__layer_add_variable(l, loc, "kernel", k, TG_SHAPE(o->kernel_size, in->dims[1], o->filters), true))
        return false;
    return !o->use_bias || tg__layer_add_variable(l, loc, "bias", b, TG_SHAPE(o->filters), true);
}

static tg_tensor *conv1d_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    const tg_conv1d_layer_opts *o = &l->o.conv1d;
    tg_conv1d_opts c = {.stride = o->strides, .padding = o->padding, .dilation = o->dilation_rate};
    tg_tensor *y = tg_conv1d_at(loc, x, l->vars[0], c);
    return tg__bias_activate(loc, y, o->use_bias ? l->vars[1] : NULL, l->activation);
}

static const tg_layer_kind conv1d_kind = {
    .base_name = "conv1d", .class_name = "Conv1D", .autocast = true, .build = conv1d_build, .call = conv1d_call};

tg_layer *tg_conv1d_layer_at(tg_loc loc, tg_conv1d_layer_opts o)
{
    const char *f = "tg_conv1d_layer";
    if (o.filters <= 0)
        return tg__fail(loc, "%s: filters must be a positive integer, got %lld", f, (long long)o.filters);
    if (o.kernel_size <= 0)
        return tg__fail(loc, "%s: kernel_size must be positive (e.g. .kernel_size = 3), got %lld", f,
                        (long long)o.kernel_size);
    o.strides = o.strides ? o.strides : 1;
    o.dilation_rate = o.dilation_rate ? o.dilation_rate : 1;
    if (o.strides < 0 || o.dilation_rate < 0)
        return tg__fail(loc, "%s: strides and dilation_rate must be positive, got %lld and %lld", f,
                        (long long)o.strides, (long long)o.dilation_rate);
    if (o.strides > 1 && o.dilation_rate > 1)
        return tg__fail(loc, "%s: strides > 1 does not go with dilation_rate > 1 (got %lld and %lld), as Keras", f,
                        (long long)o.strides, (long long)o.dilation_rate);
    if (!check_padding(loc, f, o.padding) || !tg__check_activation(loc, f, o.activation))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, &conv1d_kind, o);
    if (l) {
        l->o.conv1d = o;
        l->activation = o.activation;
    }
    return l;
}

/* ---- MaxPooling1D, AveragePooling1D --------------------------------------------------------------- */
static bool pool1d_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_pooling1d_opts *o = &l->o.pool1d;
    *out = (tg_shape){.rank = 2, .dims = {0, in->dims[1]}};
    return check_rank(l, loc, in, 2) &&
           window_length(l, loc, in->dims[0], o->pool_size, o->strides, 1, o->padding, &out->dims[0]);
}

static tg_pool1d_opts pool1d_opts(const tg_layer *l)
{
    const tg_pooling1d_opts *o = &l->o.pool1d;
    return (tg_pool1d_opts){.pool_size = o->pool_size, .strides = o->strides, .padding = o->padding};
}

static tg_tensor *max_pool1d_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_max_pool1d_at(loc, x, pool1d_opts(l));
}

static tg_tensor *avg_pool1d_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_avg_pool1d_at(loc, x, pool1d_opts(l));
}

static const tg_layer_kind max_pool1d_kind = {.base_name = "max_pooling1d",
                                              .class_name = "MaxPooling1D",
                                              .autocast = true,
                                              .build = pool1d_build,
                                              .call = max_pool1d_call};
static const tg_layer_kind avg_pool1d_kind = {.base_name = "average_pooling1d",
                                              .class_name = "AveragePooling1D",
                                              .autocast = true,
                                              .build = pool1d_build,
                                              .call = avg_pool1d_call};

static tg_layer *pooling1d(tg_loc loc, const tg_layer_kind *kind, const char *func, tg_pooling1d_opts o)
{
    o.pool_size = o.pool_size ? o.pool_size : 2;
    o.strides = o.strides ? o.strides : o.pool_size; /* Keras: strides=None is the pool size */
    if (o.pool_size < 0 || o.strides < 0)
        return tg__fail(loc, "%s: pool_size and strides must be positive, got %lld and %lld", func,
                        (long long)o.pool_size, (long long)o.strides);
    if (!check_padding(loc, func, o.padding))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, kind, o);
    if (l)
        l->o.pool1d = o;
    return l;
}

tg_layer *tg_max_pooling1d_at(tg_loc loc, tg_pooling1d_opts o)
{
    return pooling1d(loc, &max_pool1d_kind, "tg_max_pooling1d", o);
}

tg_layer *tg_average_pooling1d_at(tg_loc loc, tg_pooling1d_opts o)
{
    return pooling1d(loc, &avg_pool1d_kind, "tg_average_pooling1d", o);
}

/* ---- GlobalMaxPooling1D, GlobalAveragePooling1D, GlobalMaxPooling2D --------------------------------- */
static bool global_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out, int rank)
{
    if (!check_rank(l, loc, in, rank))
        return false;
    *out = (tg_shape){.rank = 1, .dims = {in->dims[in->rank - 1]}};
    return true;
}

static bool global1d_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    return global_build(l, loc, in, out, 2);
}

static bool global2d_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    return global_build(l, loc, in, out, 3);
}

/* Every axis but the batch and the channels of the built example shape. */
static tg_reduce_opts global_axes(const tg_layer *l)
{
    return l->in_shape.rank == 2 ? (tg_reduce_opts){.axes = TG_AXES(1)} : (tg_reduce_opts){.axes = TG_AXES(1, 2)};
}

static tg_tensor *global_max_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_max_at(loc, x, global_axes(l));
}

static tg_tensor *global_avg_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_mean_at(loc, x, global_axes(l));
}

/* Keras's GlobalAveragePooling1D with a mask: the mean over the unmasked steps. */
static tg_tensor *global_avg_call_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask,
                                       bool training)
{
    if (!mask)
        return global_avg_call(l, loc, x, training);
    tg_tensor *keep = tg_expand_dims_at(loc, mask, 2), *zero = tg_scalar_like_at(loc, x, 0.0);
    tg_tensor *sum = tg_sum_at(loc, tg_where_at(loc, keep, x, zero), (tg_reduce_opts){.axes = TG_AXES(1)});
    tg_tensor *count = tg_sum_at(loc, tg_cast_at(loc, keep, tg_dtype_of(x)), (tg_reduce_opts){.axes = TG_AXES(1)});
    return tg_div_at(loc, sum, count);
}

static tg_tensor *no_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    (void)l, (void)loc, (void)x, (void)mask;
    return NULL;
}

static const tg_layer_kind global_max1d_kind = {.base_name = "global_max_pooling1d",
                                                .class_name = "GlobalMaxPooling1D",
                                                .autocast = true,
                                                .build = global1d_build,
                                                .call = global_max_call};
static const tg_layer_kind global_avg1d_kind = {.base_name = "global_average_pooling1d",
                                                .class_name = "GlobalAveragePooling1D",
                                                .autocast = true,
                                                .build = global1d_build,
                                                .call = global_avg_call,
                                                .supports_masking = true,
                                                .call_mask = global_avg_call_mask,
                                                .compute_mask = no_mask};
static const tg_layer_kind global_max2d_kind = {.base_name = "global_max_pooling2d",
                                                .class_name = "GlobalMaxPooling2D",
                                                .autocast = true,
                                                .build = global2d_build,
                                                .call = global_max_call};

tg_layer *tg_global_max_pooling1d_at(tg_loc loc, tg_global_pooling2d_opts o)
{
    return TG__LAYER_NEW(loc, &global_max1d_kind, o);
}

tg_layer *tg_global_average_pooling1d_at(tg_loc loc, tg_global_pooling2d_opts o)
{
    return TG__LAYER_NEW(loc, &global_avg1d_kind, o);
}

tg_layer *tg_global_max_pooling2d_at(tg_loc loc, tg_global_pooling2d_opts o)
{
    return TG__LAYER_NEW(loc, &global_max2d_kind, o);
}
