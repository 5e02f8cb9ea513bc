/* UpSampling2D, ZeroPadding2D and Cropping2D (keras/src/layers/reshaping/): images
 * (batch, height, width, channels) resized, padded or cropped by tg_resize, tg_pad and
 * tg_slice. */
#include "layer_impl.h"

static bool check_image(tg_layer *l, tg_loc loc, const tg_shape *in)
{
    if (in->rank == 3)
        return true;
    char buf[TG_SHAPE_STR_MAX];
    return tg__failb(loc,
                     "%s \"%s\": expects batches of images (batch, height, width, channels), NHWC, but one "
                     "example has shape %s",
                     l->kind->class_name, l->name, tg__shape_str(in, buf, sizeof buf));
}

/* Every amount of a {{top, bottom}, {left, right}} must be >= 0. */
static bool check_amounts(tg_loc loc, const char *func, const char *what, int64_t a[2][2])
{
    if (a[0][0] >= 0 && a[0][1] >= 0 && a[1][0] >= 0 && a[1][1] >= 0)
        return true;
    return tg__failb(loc, "%s: %s must be >= 0, got {{%lld, %lld}, {%lld, %lld}}", func, what, (long long)a[0][0],
                     (long long)a[0][1], (long long)a[1][0], (long long)a[1][1]);
}

/* ---- UpSampling2D ------------------------------------------------------------------------------------ */
static bool up_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const int64_t *f = l->o.up.size;
    if (!check_image(l, loc, in))
        return false;
    *out = (tg_shape){.rank = 3, .dims = {in->dims[0] * f[0], in->dims[1] * f[1], in->dims[2]}};
    return true;
}

/* Nearest with a whole factor is TF2's nearest resize: output o reads floor((o + 0.5) / f),
 * that is floor(o / f): each row and column repeated, as Keras's ops.repeat. */
static tg_tensor *up_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_resize_at(loc, x, l->out_shape.dims[0], l->out_shape.dims[1],
                        (tg_resize_opts){.method = l->o.up.interpolation});
}

static const tg_layer_kind up_kind = {
    .base_name = "up_sampling2d", .class_name = "UpSampling2D", .autocast = true, .build = up_build, .call = up_call};

tg_layer *tg_up_sampling2d_at(tg_loc loc, tg_up_sampling2d_opts o)
{
    const char *f = "tg_up_sampling2d";
    if (o.size[0] == 0 && o.size[1] == 0)
        o.size[0] = o.size[1] = 2;
    else if (o.size[1] == 0)
        o.size[1] = o.size[0];
    if (o.size[0] <= 0 || o.size[1] <= 0)
        return tg__fail(loc, "%s: size must be positive, got {%lld, %lld}", f, (long long)o.size[0],
                        (long long)o.size[1]);
    if (o.interpolation != TG_RESIZE_NEAREST && o.interpolation != TG_RESIZE_BILINEAR)
        return tg__fail(loc, "%s: interpolation %d is neither TG_RESIZE_NEAREST nor TG_RESIZE_BILINEAR", f,
                        (int)o.interpolation);
    tg_layer *l = TG__LAYER_NEW(loc, &up_kind, o);
    if (l)
        l->o.up = o;
    return l;
}

/* ---- ZeroPadding2D ----------------------------------------------------------------------------------- */
static bool zpad_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    int64_t(*p)[2] = l->o.zpad.padding;
    if (!check_image(l, loc, in))
        return false;
    *out =
        (tg_shape){.rank = 3, .dims = {in->dims[0] + p[0][0] + p[0][1], in->dims[1] + p[1][0] + p[1][1], in->dims[2]}};
    return true;
}

static tg_tensor *zpad_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    int64_t(*p)[2] = l->o.zpad.padding;
    return tg_pad_at(loc, x, TG_SHAPE(0, p[0][0], p[1][0], 0), TG_SHAPE(0, p[0][1], p[1][1], 0), 0.0);
}

static const tg_layer_kind zpad_kind = {.base_name = "zero_padding2d",
                                        .class_name = "ZeroPadding2D",
                                        .autocast = true,
                                        .build = zpad_build,
                                        .call = zpad_call};

tg_layer *tg_zero_padding2d_at(tg_loc loc, tg_zero_padding2d_opts o)
{
    int64_t(*p)[2] = o.padding;
    if (!p[0][0] && !p[0][1] && !p[1][0] && !p[1][1]) /* Keras's padding=(1, 1) */
        p[0][0] = p[0][1] = p[1][0] = p[1][1] = 1;
    if (!check_amounts(loc, "tg_zero_padding2d", "padding", p))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, &zpad_kind, o);
    if (l)
        l->o.zpad = o;
    return l;
}

/* ---- Cropping2D -------------------------------------------------------------------------------------- */
static bool crop_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    int64_t(*c)[2] = l->o.crop.cropping;
    if (!check_image(l, loc, in))
        return false;
    *out =
        (tg_shape){.rank = 3, .dims = {in->dims[0] - c[0][0] - c[0][1], in->dims[1] - c[1][0] - c[1][1], in->dims[2]}};
    if (out->dims[0] > 0 && out->dims[1] > 0)
        return true;
    return tg__failb(loc,
                     "Cropping2D \"%s\": cropping {{%lld, %lld}, {%lld, %lld}} leaves nothing of a %lldx%lld image",
                     l->name, (long long)c[0][0], (long long)c[0][1], (long long)c[1][0], (long long)c[1][1],
                     (long long)in->dims[0], (long long)in->dims[1]);
}

static tg_tensor *crop_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    int64_t(*c)[2] = l->o.crop.cropping;
    const tg_shape *o = &l->out_shape;
    return tg_slice_at(loc, x, TG_SHAPE(0, c[0][0], c[1][0], 0), TG_SHAPE(-1, o->dims[0], o->dims[1], -1));
}

static const tg_layer_kind crop_kind = {
    .base_name = "cropping2d", .class_name = "Cropping2D", .autocast = true, .build = crop_build, .call = crop_call};

tg_layer *tg_cropping2d_at(tg_loc loc, tg_cropping2d_opts o)
{
    if (!check_amounts(loc, "tg_cropping2d", "cropping", o.cropping))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, &crop_kind, o);
    if (l)
        l->o.crop = o;
    return l;
}
