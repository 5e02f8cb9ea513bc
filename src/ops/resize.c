/* Image resizing (tf.image.resize, TF2): bilinear and nearest, half-pixel centers,
 * antialias off, NHWC.
 *
 * Both methods are linear in the image: each output pixel is a fixed weighted sum of at
 * most four input pixels, the weights depending on the sizes only. resize is that map and
 * resize_grad its adjoint (each dy scattered back with the same weights, TF's
 * ResizeBilinearGrad / ResizeNearestNeighborGrad); each one's backward is the other, so
 * derivatives of any order need nothing more.
 *
 * The source coordinates are computed in float32, as TF's kernels do (so an index on a
 * rounding boundary lands where TF's does), with scale = in / out:
 *   bilinear: f = (o + 0.5) * scale - 0.5; rows floor(f) and ceil(f), clamped to the
 *             image; weight f - floor(f) on the second;
 *   nearest:  min(floor((o + 0.5) * scale), in - 1) (TF2's rule; PyTorch's "nearest"
 *             uses floor(o * scale), its "nearest-exact" this one).
 * Attrs: resize.height, resize.width, the result's; resize.method. */
#include <math.h>
#include <string.h>

#include "op.h"
#include "tapegrad/ops.h"

/* For output index o along an axis of `in` inputs and `out` outputs: the two inputs and
 * the weight of the second (nearest: one input, twice, weight 0). */
typedef struct tap {
    int64_t lo, hi;
    double w;
} tap;

static tap tap_of(int64_t o, int64_t in, int64_t out, int method)
{
    float scale = (float)in / (float)out;
    if (method == TG_RESIZE_NEAREST) {
        int64_t i = (int64_t)floorf(((float)o + 0.5f) * scale);
        i = i < in - 1 ? i : in - 1;
        i = i > 0 ? i : 0;
        return (tap){i, i, 0.0};
    }
    float f = ((float)o + 0.5f) * scale - 0.5f, fl = floorf(f);
    int64_t lo = (int64_t)fl, hi = (int64_t)ceilf(f);
    lo = lo > 0 ? lo : 0;
    hi = hi < in - 1 ? hi : in - 1;
    return (tap){lo, hi, (double)(f - fl)};
}

/* The image side [n, h, w, c] and the resized side [n, oh, ow, c] of a call. */
typedef struct sides {
    int64_t n, h, w, c, oh, ow;
} sides;

static bool resize_sides(const tg_call *c, sides *s, tg_shape *out)
{
    const tg_tensor *x = c->in[0];
    bool grad = c->op == TG_OP_RESIZE_GRAD;
    const char *name = tg__op_name(c->op);
    if (!tg__require_float(c, x, grad ? "dy" : "images"))
        return false;
    tg_shape xs = tg__shape(x);
    char str[TG_SHAPE_STR_MAX];
    tg__shape_str(&xs, str, sizeof str);
    if (x->rank != 4) {
        tg__fail(c->loc, "%s: the input must have rank 4, [batch, height, width, channels] (NHWC), but has shape %s",
                 name, str);
        return false;
    }
    int64_t th = c->a->resize.height, tw = c->a->resize.width;
    if (th < 1 || tw < 1 || th > TG_MAX_ELEMENTS || tw > TG_MAX_ELEMENTS) {
        tg__fail(c->loc, "%s: the size (%lld, %lld) must be positive", name, (long long)th, (long long)tw);
        return false;
    }
    if (c->a->resize.method != TG_RESIZE_BILINEAR && c->a->resize.method != TG_RESIZE_NEAREST) {
        tg__fail(c->loc, "%s: method %d is neither TG_RESIZE_BILINEAR nor TG_RESIZE_NEAREST", name,
                 c->a->resize.method);
        return false;
    }
    if (x->shape[1] < 1 || x->shape[2] < 1) {
        tg__fail(c->loc, "%s: the input (shape %s) must have a positive height and width", name, str);
        return false;
    }
    *s = (sides){.n = x->shape[0], .c = x->shape[3]};
    if (grad)
        s->h = th, s->w = tw, s->oh = x->shape[1], s->ow = x->shape[2];
    else
        s->h = x->shape[1], s->w = x->shape[2], s->oh = th, s->ow = tw;
    int64_t m1, m2;
    if (tg__mul_overflow(s->n, th, &m1) || tg__mul_overflow(m1, tw, &m2) || tg__mul_overflow(m2, s->c, &m1) ||
        m1 > TG_MAX_ELEMENTS) {
        tg__fail(c->loc, "%s: the result [%lld, %lld, %lld, %lld] would have more elements than memory can hold", name,
                 (long long)s->n, (long long)th, (long long)tw, (long long)s->c);
        return false;
    }
    *out = (tg_shape){.rank = 4, .dims = {s->n, th, tw, s->c}};
    return true;
}

bool tg__resize_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    sides s;
    if (!resize_sides(c, &s, shape))
        return false;
    *dtype = c->in[0]->dtype;
    return true;
}

/* resize: out[o] = lerp(lerp(tl, tr, wx), lerp(bl, br, wx), wy), TF's order of operations.
 * resize_grad: the same weights, dy scattered back: img[.] += dy * (1 - wy) * (1 - wx)... */
#define RESIZE_LOOP(T)                                                                                        \
    do {                                                                                                      \
        const T *src = c->in[0]->data;                                                                        \
        T *dst = out->data;                                                                                   \
        if (grad)                                                                                             \
            memset(dst, 0, sizeof(T) * (size_t)out->size);                                                    \
        for (int64_t n = 0; n < s.n; n++)                                                                     \
            for (int64_t oy = 0; oy < s.oh; oy++) {                                                           \
                tap ty = tap_of(oy, s.h, s.oh, method);                                                       \
                T wy = (T)ty.w;                                                                               \
                for (int64_t ox = 0; ox < s.ow; ox++) {                                                       \
                    tap tx = tap_of(ox, s.w, s.ow, method);                                                   \
                    T wx = (T)tx.w;                                                                           \
                    int64_t tl = ((n * s.h + ty.lo) * s.w + tx.lo) * s.c, tr = tl + (tx.hi - tx.lo) * s.c;    \
                    int64_t bl = tl + (ty.hi - ty.lo) * s.w * s.c, br = bl + (tx.hi - tx.lo) * s.c;           \
                    int64_t at = ((n * s.oh + oy) * s.ow + ox) * s.c;                                         \
                    for (int64_t q = 0; q < s.c; q++) {                                                       \
                        if (!grad) {                                                                          \
                            T top = src[tl + q] + (src[tr + q] - src[tl + q]) * wx;                           \
                            T bot = src[bl + q] + (src[br + q] - src[bl + q]) * wx;                           \
                            dst[at + q] = method == TG_RESIZE_NEAREST ? src[tl + q] : top + (bot - top) * wy; \
                        } else if (method == TG_RESIZE_NEAREST) {                                             \
                            dst[tl + q] += src[at + q];                                                       \
                        } else {                                                                              \
                            T d = src[at + q];                                                                \
                            dst[tl + q] += d * (1 - wy) * (1 - wx);                                           \
                            dst[tr + q] += d * (1 - wy) * wx;                                                 \
                            dst[bl + q] += d * wy * (1 - wx);                                                 \
                            dst[br + q] += d * wy * wx;                                                       \
                        }                                                                                     \
                    }                                                                                         \
                }                                                                                             \
            }                                                                                                 \
    } while (0)

bool tg__resize_forward(const tg_call *c, tg_tensor *out)
{
    sides s = {0};
    tg_shape shape;
    if (!resize_sides(c, &s, &shape))
        return false;
    bool grad = c->op == TG_OP_RESIZE_GRAD;
    int method = c->a->resize.method;
    if (out->dtype == TG_F32)
        RESIZE_LOOP(float);
    else
        RESIZE_LOOP(double);
    return true;
}

/* Each one's backward is the other, sized to the other side. */
static tg_tensor *other_side(const tg_grad_ctx *g, tg_op_kind op)
{
    tg_attrs a = *g->a;
    a.resize.height = g->in[0]->shape[1];
    a.resize.width = g->in[0]->shape[2];
    return TG__APPLY(g->loc, op, &a, g->dy);
}

bool tg__resize_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = other_side(g, TG_OP_RESIZE_GRAD);
    return dx[0] != NULL;
}

bool tg__resize_grad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = other_side(g, TG_OP_RESIZE);
    return dx[0] != NULL;
}

tg_tensor *tg_resize_at(tg_loc loc, const tg_tensor *images, int64_t height, int64_t width, tg_resize_opts o)
{
    if (!tg__check_input(loc, "tg_resize", images, "images"))
        return NULL;
    if (images->rank != 3 && images->rank != 4) {
        tg_shape xs = tg__shape(images);
        char str[TG_SHAPE_STR_MAX];
        tg__shape_str(&xs, str, sizeof str);
        return tg__fail(loc,
                        "tg_resize: `images` must have rank 4, [batch, height, width, channels], or 3, [height, "
                        "width, channels], but has shape %s",
                        str);
    }
    tg_attrs a = {.resize = {.height = height, .width = width, .method = (int)o.method}};
    if (images->rank == 4)
        return TG__APPLY(loc, TG_OP_RESIZE, &a, images);
    tg_tensor *x4 = tg_reshape_at(loc, images, TG_SHAPE(1, images->shape[0], images->shape[1], images->shape[2]));
    tg_tensor *y = x4 ? TG__APPLY(loc, TG_OP_RESIZE, &a, x4) : NULL;
    return y ? tg_reshape_at(loc, y, TG_SHAPE(height, width, images->shape[2])) : NULL;
}
