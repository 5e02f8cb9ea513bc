/* Rescaling, RandomFlip and RandomCrop (keras/src/layers/preprocessing/): the random ones
 * act only with training, drawing from a generator seeded per layer (as Dropout). */
#include <math.h>
#include <stdlib.h>

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

/* The layer's generator, from its seed (the model's when it has none). */
static bool make_rng(tg_layer *l, tg_loc loc)
{
    tg_rng_free(l->rng);
    l->rng = tg_rng_new(tg__derive_seed(l->seed, 0));
    return l->rng || tg__failb(loc, "%s \"%s\": out of memory", l->kind->class_name, l->name);
}

static void release_rng(tg_layer *l)
{
    tg_rng_free(l->rng);
    l->rng = NULL;
}

/* ---- Rescaling ------------------------------------------------------------------------------------- */
static bool rescaling_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    (void)l, (void)loc;
    *out = *in;
    return true;
}

static tg_tensor *rescaling_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    tg_dtype d = tg_dtype_of(x);
    tg_tensor *y = tg_mul_at(loc, x, tg_scalar_at(loc, d, l->o.rescaling.scale));
    return l->o.rescaling.offset == 0 ? y : tg_add_at(loc, y, tg_scalar_at(loc, d, l->o.rescaling.offset));
}

static const tg_layer_kind rescaling_kind = {.base_name = "rescaling",
                                             .class_name = "Rescaling",
                                             .autocast = true,
                                             .build = rescaling_build,
                                             .call = rescaling_call,
                                             .supports_masking = true};

tg_layer *tg_rescaling_at(tg_loc loc, tg_rescaling_opts o)
{
    if (o.scale == 0 || !isfinite(o.scale) || !isfinite(o.offset))
        return tg__fail(loc,
                        "tg_rescaling: scale must be finite and nonzero (e.g. .scale = 1.0 / 255) and offset "
                        "finite, got scale %g, offset %g",
                        o.scale, o.offset);
    tg_layer *l = TG__LAYER_NEW(loc, &rescaling_kind, o);
    if (l)
        l->o.rescaling = o;
    return l;
}

/* ---- RandomFlip ------------------------------------------------------------------------------------ */
static bool flip_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    *out = *in;
    return check_image(l, loc, in) && make_rng(l, loc);
}

/* x where the draw says keep, its flip elsewhere: flipped * m + x * (1 - m), m 0 or 1 per
 * image, so the values are exact and the gradient is the flip's. */
static tg_tensor *flip_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    if (!training)
        return (tg_tensor *)x;
    tg_flip_mode mode = l->o.flip.mode;
    tg_axes axes = mode == TG_FLIP_HORIZONTAL ? TG_AXES(2) : mode == TG_FLIP_VERTICAL ? TG_AXES(1) : TG_AXES(1, 2);
    int64_t n = tg_dim(x, 0);
    double *m = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!m)
        return tg__fail(loc, "RandomFlip \"%s\": out of memory", l->name);
    for (int64_t i = 0; i < n; i++)
        m[i] = tg_rng_uniform01(l->rng) <= 0.5; /* Keras: uniform() <= 0.5 flips */
    tg_tensor *mt = tg_cast_at(loc, tg_tensor_from_at(loc, TG_F64, TG_SHAPE(n, 1, 1, 1), m), tg_dtype_of(x));
    free(m);
    tg_tensor *flipped = tg_reverse_at(loc, x, axes);
    return tg_add_at(loc, x, tg_mul_at(loc, tg_sub_at(loc, flipped, x), mt));
}

static const tg_layer_kind flip_kind = {.base_name = "random_flip",
                                        .class_name = "RandomFlip",
                                        .autocast = true,
                                        .build = flip_build,
                                        .call = flip_call,
                                        .release = release_rng};

tg_layer *tg_random_flip_at(tg_loc loc, tg_random_flip_opts o)
{
    if (o.mode != TG_FLIP_HORIZONTAL_AND_VERTICAL && o.mode != TG_FLIP_HORIZONTAL && o.mode != TG_FLIP_VERTICAL)
        return tg__fail(loc,
                        "tg_random_flip: mode %d is not TG_FLIP_HORIZONTAL_AND_VERTICAL, TG_FLIP_HORIZONTAL or "
                        "TG_FLIP_VERTICAL",
                        (int)o.mode);
    tg_layer *l = TG__LAYER_NEW(loc, &flip_kind, o);
    if (l)
        l->o.flip = o;
    return l;
}

/* ---- RandomCrop ------------------------------------------------------------------------------------ */
static bool rcrop_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    if (!check_image(l, loc, in))
        return false;
    *out = (tg_shape){.rank = 3, .dims = {l->o.rcrop.height, l->o.rcrop.width, in->dims[2]}};
    return make_rng(l, loc);
}

/* A start in [0, room], as Keras's int(uniform(0, room + 1)). */
static int64_t draw_start(tg_rng *rng, int64_t room)
{
    int64_t s = (int64_t)(tg_rng_uniform01(rng) * (double)(room + 1));
    return s > room ? room : s;
}

static tg_tensor *rcrop_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    int64_t H = tg_dim(x, 1), W = tg_dim(x, 2), h = l->o.rcrop.height, w = l->o.rcrop.width;
    if (training && H > h && W > w) {
        int64_t top = draw_start(l->rng, H - h), left = draw_start(l->rng, W - w);
        return tg_slice_at(loc, x, TG_SHAPE(0, top, left, 0), TG_SHAPE(-1, h, w, -1));
    }
    /* Keras's other path: the largest centered box of the target's aspect ratio, resized */
    int64_t ch = (int64_t)((double)W * (double)h / (double)w), cw = (int64_t)((double)H * (double)w / (double)h);
    ch = ch < H ? ch : H, cw = cw < W ? cw : W;
    ch = ch > 1 ? ch : 1, cw = cw > 1 ? cw : 1;
    tg_tensor *box = tg_slice_at(loc, x, TG_SHAPE(0, (H - ch) / 2, (W - cw) / 2, 0), TG_SHAPE(-1, ch, cw, -1));
    if (ch == h && cw == w)
        return box;
    return tg_resize_at(loc, box, h, w, (tg_resize_opts){.method = TG_RESIZE_BILINEAR});
}

static const tg_layer_kind rcrop_kind = {.base_name = "random_crop",
                                         .class_name = "RandomCrop",
                                         .autocast = true,
                                         .build = rcrop_build,
                                         .call = rcrop_call,
                                         .release = release_rng};

tg_layer *tg_random_crop_at(tg_loc loc, tg_random_crop_opts o)
{
    if (o.height <= 0 || o.width <= 0)
        return tg__fail(loc, "tg_random_crop: height and width must be positive, got %lld and %lld",
                        (long long)o.height, (long long)o.width);
    tg_layer *l = TG__LAYER_NEW(loc, &rcrop_kind, o);
    if (l)
        l->o.rcrop = o;
    return l;
}
