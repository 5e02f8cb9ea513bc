/* Convolution and pooling over NHWC images.
 *
 * Two ops do all the work: extract_patches (im2col) copies every window of the image
 * into one row, [N, H, W, C] -> [N, OH, OW, KH*KW*C], ordered (kh, kw, c) like a TF
 * kernel [KH, KW, C, F]; patches_to_image (col2im) is its adjoint, summing each row
 * back where it came from. Both are linear and each one's backward is the other, so
 * derivatives of any order need nothing more. conv2d is patches times the kernel seen
 * as a [KH*KW*C, F] matrix (one GEMM); the pools reduce patches seen as
 * [N, OH, OW, KH*KW, C] over the window axis.
 *
 * Padding follows TF: VALID uses whole windows only; SAME gives ceil(in / stride)
 * outputs and pads max((out - 1) * stride + k - in, 0) positions, the smaller half
 * before and the rest after.
 *
 * Every op here reads its window from attrs.window (tg_window_attrs, op.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/gemm.h"
#include "../kernels/onednn.h"
#include "../kernels/parallel.h"

/* One sliding window over an image, resolved against its shape. */
typedef struct window {
    int64_t kh, kw, sh, sw;
    int64_t dh, dw; /* dilation: taps dh rows and dw columns apart */
    bool same;
    int64_t n, h, w, c;     /* the image */
    int64_t oh, ow, pt, pl; /* output size, padding before (top, left) */
} window;

#define SHAPE_STR(name, s)       \
    char name[TG_SHAPE_STR_MAX]; \
    tg__shape_str(s, name, sizeof name)

static int64_t out_size(int64_t in, int64_t k, int64_t s, bool same, int64_t *pad_before)
{
    if (!same) {
        *pad_before = 0;
        return (in - k) / s + 1;
    }
    /* ceil(in / s) and the padding, written so that no step overflows for a huge s or k:
     * (out - 1) * s <= in - 1 */
    int64_t out = in / s + (in % s != 0), total = k - (in - (out - 1) * s);
    *pad_before = total > 0 ? total / 2 : 0;
    return out;
}

/* Checks the window against an image of shape [n, h, w, c] and resolves it; `name` is
 * the function the user called. */
static bool resolve_window(tg_loc loc, const char *name, const tg_shape *img, const int64_t k[2], const int64_t s[2],
                           const int64_t d[2], int padding, window *win)
{
    SHAPE_STR(str, img);
    if (img->rank != 4) {
        tg__fail(loc, "%s: the input must have rank 4, [batch, height, width, channels] (NHWC), but has shape %s", name,
                 str);
        return false;
    }
    if (k[0] < 1 || k[1] < 1) {
        tg__fail(loc, "%s: the window size (%lld, %lld) must be positive", name, (long long)k[0], (long long)k[1]);
        return false;
    }
    if (s[0] < 1 || s[1] < 1) {
        tg__fail(loc, "%s: strides (%lld, %lld) must be positive", name, (long long)s[0], (long long)s[1]);
        return false;
    }
    if (padding != TG_PADDING_VALID && padding != TG_PADDING_SAME) {
        tg__fail(loc, "%s: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME", name, padding);
        return false;
    }
    int64_t dh = d && d[0] ? d[0] : 1, dw = d && d[1] ? d[1] : 1;
    if (dh < 1 || dw < 1 || dh > TG_MAX_ELEMENTS || dw > TG_MAX_ELEMENTS) {
        tg__fail(loc, "%s: dilations (%lld, %lld) must be positive", name, (long long)dh, (long long)dw);
        return false;
    }
    if ((dh > 1 || dw > 1) && (s[0] > 1 || s[1] > 1)) {
        tg__fail(loc,
                 "%s: strides (%lld, %lld) above 1 cannot be combined with dilations (%lld, %lld) above 1, as "
                 "in TF; use strides 1 and subsample the result, or no dilation",
                 name, (long long)s[0], (long long)s[1], (long long)dh, (long long)dw);
        return false;
    }
    int64_t ekh, ekw; /* the dilated window's extent */
    if (tg__mul_overflow(k[0] - 1, dh, &ekh) || tg__mul_overflow(k[1] - 1, dw, &ekw) || ekh >= TG_MAX_ELEMENTS ||
        ekw >= TG_MAX_ELEMENTS) {
        tg__fail(loc, "%s: the window (%lld, %lld) with dilations (%lld, %lld) is too large", name, (long long)k[0],
                 (long long)k[1], (long long)dh, (long long)dw);
        return false;
    }
    ekh++, ekw++;
    *win = (window){.kh = k[0],
                    .dh = dh,
                    .dw = dw,
                    .kw = k[1],
                    .sh = s[0],
                    .sw = s[1],
                    .same = padding == TG_PADDING_SAME,
                    .n = img->dims[0],
                    .h = img->dims[1],
                    .w = img->dims[2],
                    .c = img->dims[3]};
    if (!win->same && (win->h < ekh || win->w < ekw)) {
        char dil[64] = "";
        if (dh > 1 || dw > 1)
            snprintf(dil, sizeof dil, ", dilated to (%lld, %lld),", (long long)ekh, (long long)ekw);
        tg__fail(loc,
                 "%s: with VALID padding the window (%lld, %lld)%s must fit in the input's height and width, "
                 "but the input has shape %s; use TG_PADDING_SAME or a smaller window",
                 name, (long long)k[0], (long long)k[1], dil, str);
        return false;
    }
    int64_t kk, len;
    if (tg__mul_overflow(k[0], k[1], &kk) || tg__mul_overflow(kk, win->c ? win->c : 1, &len) || len > TG_MAX_ELEMENTS) {
        tg__fail(loc,
                 "%s: the window (%lld, %lld) is too large: a patch of it would have more elements than "
                 "memory can hold",
                 name, (long long)k[0], (long long)k[1]);
        return false;
    }
    win->oh = out_size(win->h, ekh, win->sh, win->same, &win->pt);
    win->ow = out_size(win->w, ekw, win->sw, win->same, &win->pl);
    return true;
}

static tg_attrs window_attrs(const window *w, double pad_value)
{
    return (tg_attrs){.window = {.kh = w->kh,
                                 .kw = w->kw,
                                 .stride_h = w->sh,
                                 .stride_w = w->sw,
                                 .height = w->h,
                                 .width = w->w,
                                 .same = w->same,
                                 .pad_value = pad_value,
                                 .dilation_h = w->dh,
                                 .dilation_w = w->dw}};
}

static bool attrs_window(tg_loc loc, const char *name, const tg_attrs *a, const tg_shape *img, window *w)
{
    const tg_window_attrs *k = &a->window;
    return resolve_window(loc, name, img, (const int64_t[]){k->kh, k->kw}, (const int64_t[]){k->stride_h, k->stride_w},
                          (const int64_t[]){k->dilation_h, k->dilation_w}, k->same ? TG_PADDING_SAME : TG_PADDING_VALID,
                          w);
}

static int64_t patch_len(const window *w) { return w->kh * w->kw * w->c; }

/* ---- the window loops (conv_tmpl.h, once per float type) ------------------------------------------ */
typedef struct pool_ctx {
    const tg_call *c;
    tg_tensor *out;
    window w;
    bool padded_avg; /* SAME with padding: the chain divided by a count tensor */
} pool_ctx;

/* The real rows [*y0, *y1) and columns [*x0, *x1) of window (oy, ox). */
static void window_span(const window *w, int64_t oy, int64_t ox, int64_t *y0, int64_t *y1, int64_t *x0, int64_t *x1)
{
    int64_t ty = oy * w->sh - w->pt, tx = ox * w->sw - w->pl;
    *y0 = ty > 0 ? ty : 0;
    *y1 = ty + w->kh < w->h ? ty + w->kh : w->h;
    *x0 = tx > 0 ? tx : 0;
    *x1 = tx + w->kw < w->w ? tx + w->kw : w->w;
}

#define PIXEL(base, G, n, y, x)  ((base) + (((n) * (G)->h + (y)) * (G)->w + (x)) * (G)->c)
#define CELL(base, G, n, oy, ox) ((base) + (((n) * (G)->oh + (oy)) * (G)->ow + (ox)) * (G)->c)

enum { POOL_CH = 64 }; /* channels per pass: the accumulators stay in registers or L1 */

#define T   float
#define SFX f32
#include "conv_tmpl.h"
#undef T
#undef SFX
#define T   double
#define SFX f64
#include "conv_tmpl.h"
#undef T
#undef SFX

/* ---- extract_patches (im2col) ------------------------------------------------------------------- */
bool tg__extract_patches_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    window w;
    tg_shape xs = tg__shape(x);
    if (!tg__require_float(c, x, "x") || !attrs_window(c->loc, "tg_extract_patches", c->a, &xs, &w))
        return false;
    *shape = (tg_shape){.rank = 4, .dims = {w.n, w.oh, w.ow, patch_len(&w)}};
    *dtype = x->dtype;
    return true;
}

bool tg__extract_patches_forward(const tg_call *c, tg_tensor *out)
{
    window w;
    tg_shape xs = tg__shape(c->in[0]);
    attrs_window(c->loc, "tg_extract_patches", c->a, &xs, &w);
    if (out->dtype == TG_F32)
        window_copy_f32(c->in[0]->data, out->data, &w, (float)c->a->window.pad_value, false);
    else
        window_copy_f64(c->in[0]->data, out->data, &w, c->a->window.pad_value, false);
    return true;
}

bool tg__extract_patches_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_attrs a = *g->a;
    a.window.height = g->in[0]->shape[1];
    a.window.width = g->in[0]->shape[2];
    a.window.pad_value = 0.0;
    dx[0] = TG__APPLY(g->loc, TG_OP_PATCHES_TO_IMAGE, &a, g->dy);
    return dx[0] != NULL;
}

/* Patches padded with `pad_value` (max pooling pads with -inf so padding never wins). */
static tg_tensor *patches_padded(tg_loc loc, const tg_tensor *x, const window *w, double pad_value)
{
    tg_attrs a = window_attrs(w, pad_value);
    return TG__APPLY(loc, TG_OP_EXTRACT_PATCHES, &a, x);
}

tg_tensor *tg_extract_patches_at(tg_loc loc, const tg_tensor *x, int64_t kh, int64_t kw, int64_t stride_h,
                                 int64_t stride_w, tg_padding padding)
{
    tg_attrs a = {
        .window = {.kh = kh, .kw = kw, .stride_h = stride_h, .stride_w = stride_w, .same = padding == TG_PADDING_SAME}};
    if (padding != TG_PADDING_VALID && padding != TG_PADDING_SAME)
        return tg__fail(loc, "tg_extract_patches: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME",
                        (int)padding);
    return TG__APPLY(loc, TG_OP_EXTRACT_PATCHES, &a, x);
}

/* ---- patches_to_image (col2im) ------------------------------------------------------------------- */
bool tg__patches_to_image_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *p = c->in[0];
    tg_shape ps = tg__shape(p);
    SHAPE_STR(str, &ps);
    if (!tg__require_float(c, p, "patches"))
        return false;
    if (p->rank != 4) {
        tg__fail(c->loc,
                 "tg_patches_to_image: `patches` must have rank 4, [batch, out_height, out_width, "
                 "kh*kw*channels], but has shape %s",
                 str);
        return false;
    }
    int64_t kk;
    if (tg__mul_overflow(c->a->window.kh, c->a->window.kw, &kk) || kk < 1 || p->shape[3] % kk) {
        tg__fail(c->loc,
                 "tg_patches_to_image: the last axis of `patches` (shape %s) must be kh*kw*channels, "
                 "a multiple of kh*kw = %lld*%lld",
                 str, (long long)c->a->window.kh, (long long)c->a->window.kw);
        return false;
    }
    if (c->a->window.height < 0 || c->a->window.width < 0) {
        tg__fail(c->loc, "tg_patches_to_image: the image size (%lld, %lld) must not be negative",
                 (long long)c->a->window.height, (long long)c->a->window.width);
        return false;
    }
    tg_shape img = {.rank = 4, .dims = {p->shape[0], c->a->window.height, c->a->window.width, p->shape[3] / kk}};
    window w;
    if (!attrs_window(c->loc, "tg_patches_to_image", c->a, &img, &w))
        return false;
    if (w.oh != p->shape[1] || w.ow != p->shape[2]) {
        SHAPE_STR(istr, &img);
        tg__fail(c->loc,
                 "tg_patches_to_image: an image of shape %s gives %lld x %lld windows, but `patches` has "
                 "shape %s",
                 istr, (long long)w.oh, (long long)w.ow, str);
        return false;
    }
    *shape = img;
    *dtype = p->dtype;
    return true;
}

bool tg__patches_to_image_forward(const tg_call *c, tg_tensor *out)
{
    window w;
    tg_shape img = tg__shape(out);
    attrs_window(c->loc, "tg_patches_to_image", c->a, &img, &w);
    memset(out->data, 0, (size_t)out->size * tg__dsize(out->dtype));
    if (out->dtype == TG_F32)
        window_copy_f32(out->data, c->in[0]->data, &w, 0.0f, true);
    else
        window_copy_f64(out->data, c->in[0]->data, &w, 0.0, true);
    return true;
}

bool tg__patches_to_image_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_attrs a = *g->a;
    a.window.pad_value = 0.0;
    dx[0] = TG__APPLY(g->loc, TG_OP_EXTRACT_PATCHES, &a, g->dy);
    return dx[0] != NULL;
}

tg_tensor *tg_patches_to_image_at(tg_loc loc, const tg_tensor *patches, int64_t height, int64_t width, int64_t kh,
                                  int64_t kw, int64_t stride_h, int64_t stride_w, tg_padding padding)
{
    tg_attrs a = {.window = {.kh = kh,
                             .kw = kw,
                             .stride_h = stride_h,
                             .stride_w = stride_w,
                             .height = height,
                             .width = width,
                             .same = padding == TG_PADDING_SAME}};
    if (padding != TG_PADDING_VALID && padding != TG_PADDING_SAME)
        return tg__fail(loc, "tg_patches_to_image: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME",
                        (int)padding);
    return TG__APPLY(loc, TG_OP_PATCHES_TO_IMAGE, &a, patches);
}

/* ---- conv2d --------------------------------------------------------------------------------------- */
/* Checks x (and, for conv2d, the kernel) and resolves the window; false with an error. */
static bool check_image(tg_loc loc, const char *name, const tg_tensor *x, const int64_t k[2], const int64_t s[2],
                        const int64_t d[2], tg_padding padding, window *w)
{
    if (!tg__check_input(loc, name, x, "x"))
        return false;
    if (!tg__dtype_is_real(x->dtype)) { /* bfloat16: the rows that take it say so */
        tg__fail(loc, "%s: `x` must be float32 or float64, not %s (cast it with tg_cast)", name,
                 tg_dtype_name(x->dtype));
        return false;
    }
    tg_shape xs = tg__shape(x);
    return resolve_window(loc, name, &xs, k, s, d, (int)padding, w);
}

/* The kernel [KH, KW, C, F] of `name` against x: checks both and resolves the window. */
static bool check_conv(tg_loc loc, const char *name, const tg_tensor *x, const tg_tensor *kernel, const char *kname,
                       const int64_t s[2], const int64_t d[2], tg_padding padding, window *w)
{
    if (!tg__check_input(loc, name, x, "x") || !tg__check_input(loc, name, kernel, kname))
        return false;
    tg_shape ks = tg__shape(kernel);
    SHAPE_STR(kstr, &ks);
    if (kernel->rank != 4) {
        tg__fail(loc, "%s: `%s` must have rank 4, [kh, kw, in_channels, %s], but has shape %s", name, kname,
                 strcmp(name, "tg_depthwise_conv2d") && strcmp(name, "tg_separable_conv2d") ? "filters"
                                                                                            : "channel_multiplier",
                 kstr);
        return false;
    }
    if (x->dtype != kernel->dtype) {
        tg__fail(loc, "%s: cannot mix %s `x` and %s `%s` (cast one with tg_cast)", name, tg_dtype_name(x->dtype),
                 tg_dtype_name(kernel->dtype), kname);
        return false;
    }
    if (!check_image(loc, name, x, ks.dims, s, d, padding, w))
        return false;
    if (w->c != ks.dims[2]) {
        tg_shape xs = tg__shape(x);
        SHAPE_STR(xstr, &xs);
        tg__fail(loc, "%s: `x` of shape %s has %lld channels but `%s` of shape %s expects %lld (its axis 2)", name,
                 xstr, (long long)w->c, kname, kstr, (long long)ks.dims[2]);
        return false;
    }
    return true;
}

/* conv2d and its adjoints in x and in the kernel are three rows, each the other two's
 * backward, so derivatives of any order are made of them. Each runs through oneDNN for
 * float32 where it is loaded (kernels/onednn.h), else as patches times the kernel seen
 * as a [KH*KW*C, F] matrix: the same extract_patches and GEMM calls, in the same order,
 * as the composite of extract_patches, reshape and matmul, so the portable path gives
 * that composite's bits, its gradients included. */
static tg_conv_geom conv_geom(const window *w, int64_t f)
{
    return (tg_conv_geom){.n = w->n,
                          .h = w->h,
                          .w = w->w,
                          .c = w->c,
                          .f = f,
                          .kh = w->kh,
                          .kw = w->kw,
                          .sh = w->sh,
                          .sw = w->sw,
                          .dh = w->dh,
                          .dw = w->dw,
                          .oh = w->oh,
                          .ow = w->ow,
                          .pt = w->pt,
                          .pl = w->pl};
}

/* A 1x1 window with unit strides needs no patches: the image rows are the patches. */
static bool pointwise(const window *w) { return w->kh == 1 && w->kw == 1 && w->sh == 1 && w->sw == 1; }

static bool conv_gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                      const void *B, int64_t ldb, void *C, int64_t ldc)
{
    if (dt == TG_F32)
        return tg__gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    return tg__gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

/* The patches of image x (x itself for a pointwise window) in *cols, from the scope's arena. */
static bool conv_patches(const tg_call *c, const void *x, const window *w, tg_dtype dt, void **cols)
{
    *cols = (void *)x;
    if (pointwise(w))
        return true;
    size_t bytes = (size_t)(w->n * w->oh * w->ow * patch_len(w)) * tg__dsize(dt);
    if (!(*cols = tg__arena_alloc(tg__ctx()->scope, bytes ? bytes : 1))) {
        tg__fail(c->loc, "%s: out of memory for the image's patches", tg__op_table[c->op].name);
        return false;
    }
    if (dt == TG_F32)
        window_copy_f32((void *)x, *cols, w, 0.0f, false);
    else
        window_copy_f64((void *)x, *cols, w, 0.0, false);
    return true;
}

static bool gemm_failed(const tg_call *c)
{
    tg__fail(c->loc, "%s: out of memory for the product's packing buffers", tg__op_table[c->op].name);
    return false;
}

/* The conv rows take bfloat16 themselves (TG_OPF_BF16_NATIVE), float32 and float64. */
static bool require_real(const tg_call *c, const tg_tensor *x, const char *arg)
{
    if (tg__dtype_is_real(x->dtype))
        return true;
    return tg__failb(c->loc, "%s: `%s` must be float32, float64 or bfloat16, not %s (cast it with tg_cast)",
                     tg__op_table[c->op].name, arg, tg_dtype_name(x->dtype));
}

/* A rank-4 float operand of a conv row, of x's dtype. */
static bool conv_operand(const tg_call *c, const tg_tensor *t, const char *arg, const char *layout)
{
    tg_shape ts = tg__shape(t);
    SHAPE_STR(str, &ts);
    const char *name = tg__op_table[c->op].name;
    if (t->rank != 4) {
        tg__fail(c->loc, "%s: `%s` must have rank 4, %s, but has shape %s", name, arg, layout, str);
        return false;
    }
    if (t->dtype != c->in[0]->dtype) {
        tg__fail(c->loc, "%s: cannot mix %s and %s operands (cast one with tg_cast)", name,
                 tg_dtype_name(c->in[0]->dtype), tg_dtype_name(t->dtype));
        return false;
    }
    return true;
}

/* The window of a conv row on `img`, its kernel's [KH, KW, C, F] and its output
 * gradient [N, OH, OW, F] checked against it (either may be NULL). */
static bool conv_window(const tg_call *c, const tg_shape *img, const tg_tensor *kernel, const tg_tensor *dy, window *w)
{
    const char *name = tg__op_table[c->op].name;
    if (!attrs_window(c->loc, name, c->a, img, w))
        return false;
    if (kernel && (kernel->shape[0] != w->kh || kernel->shape[1] != w->kw || kernel->shape[2] != w->c)) {
        tg_shape ks = tg__shape(kernel), is = *img;
        SHAPE_STR(kstr, &ks);
        SHAPE_STR(istr, &is);
        tg__fail(c->loc, "%s: `kernel` of shape %s does not fit a %lld x %lld window over %lld channels (image %s)",
                 name, kstr, (long long)w->kh, (long long)w->kw, (long long)w->c, istr);
        return false;
    }
    if (dy && (dy->shape[0] != w->n || dy->shape[1] != w->oh || dy->shape[2] != w->ow ||
               (kernel && dy->shape[3] != kernel->shape[3]))) {
        tg_shape ds = tg__shape(dy), is = *img;
        SHAPE_STR(dstr, &ds);
        SHAPE_STR(istr, &is);
        tg__fail(c->loc, "%s: `dy` of shape %s is not the output of a convolution of an image %s (%lld x %lld outputs)",
                 name, dstr, istr, (long long)w->oh, (long long)w->ow);
        return false;
    }
    return true;
}

bool tg__conv2d_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0], *k = c->in[1];
    window w;
    tg_shape xs = tg__shape(x);
    if (!require_real(c, x, "x") || !conv_operand(c, k, "kernel", "[kh, kw, in_channels, filters]") ||
        !conv_window(c, &xs, k, NULL, &w))
        return false;
    *shape = (tg_shape){.rank = 4, .dims = {w.n, w.oh, w.ow, k->shape[3]}};
    *dtype = x->dtype;
    return true;
}

/* ---- bfloat16: oneDNN's bfloat16 kernels, else the float32 path widened ------------------------------ */
/* Where oneDNN cannot take a bfloat16 convolution (not loaded, TAPEGRAD_ONEDNN=0, a shape
 * it has no primitive for), the float32 one runs on the inputs widened (exactly) and its
 * output is rounded once, as the dispatcher widens the rows without a bfloat16 kernel: the
 * same bits as before the rows took bfloat16 themselves. */
typedef struct convert_job {
    const uint16_t *from16;
    const float *from32;
    float *to32;
    uint16_t *to16;
} convert_job;

static void widen_range(void *ctx, int64_t i0, int64_t i1)
{
    const convert_job *j = ctx;
    for (int64_t i = i0; i < i1; i++)
        j->to32[i] = tg__f32_from_bf16(j->from16[i]);
}

static void narrow_range(void *ctx, int64_t i0, int64_t i1)
{
    const convert_job *j = ctx;
    for (int64_t i = i0; i < i1; i++)
        j->to16[i] = tg__bf16_from_f32(j->from32[i]);
}

/* n floats from the scope's arena */
static float *scratch_floats(const tg_call *c, int64_t n)
{
    float *p = tg__arena_alloc(tg__ctx()->scope, sizeof(float) * (size_t)(n ? n : 1));
    if (!p)
        tg__fail(c->loc, "%s: out of memory for a float32 copy of %lld elements", tg__op_table[c->op].name,
                 (long long)n);
    return p;
}

static float *widened(const tg_call *c, const tg_tensor *t)
{
    float *to = scratch_floats(c, t->size);
    if (to)
        tg__parallel_for(t->size, 32768, widen_range, &(convert_job){.from16 = t->data, .to32 = to});
    return to;
}

static bool narrowed(const float *from, tg_tensor *out)
{
    tg__parallel_for(out->size, 32768, narrow_range, &(convert_job){.from32 = from, .to16 = out->data});
    return true;
}

/* y = x (*) k of float type dt: oneDNN for float32 where it runs, else patches and one GEMM. */
static bool conv_forward_data(const tg_call *c, const window *w, int64_t f, tg_dtype dt, const void *x, const void *k,
                              void *y)
{
    int64_t len = patch_len(w), rows = w->n * w->oh * w->ow;
    tg_conv_geom g = conv_geom(w, f);
    if (dt == TG_F32 && tg__onednn_conv_forward(&g, x, k, y))
        return true;
    void *cols;
    if (!conv_patches(c, x, w, dt, &cols))
        return false;
    return conv_gemm(dt, false, false, rows, f, len, cols, len, k, f, y, f) || gemm_failed(c);
}

/* conv2d of tensors of any float type into out (bfloat16 as the note above says). */
static bool conv_forward_tensors(const tg_call *c, const window *w, const tg_tensor *x, const tg_tensor *k,
                                 tg_tensor *out)
{
    int64_t f = k->shape[3];
    if (out->dtype != TG_BF16)
        return conv_forward_data(c, w, f, out->dtype, x->data, k->data, out->data);
    tg_conv_geom g = conv_geom(w, f);
    if (tg__onednn_conv_forward_bf16(&g, x->data, k->data, out->data))
        return true;
    float *x32 = widened(c, x), *k32 = x32 ? widened(c, k) : NULL, *y32 = k32 ? scratch_floats(c, out->size) : NULL;
    return y32 && conv_forward_data(c, w, f, TG_F32, x32, k32, y32) && narrowed(y32, out);
}

bool tg__conv2d_forward(const tg_call *c, tg_tensor *out)
{
    window w;
    tg_shape xs = tg__shape(c->in[0]);
    attrs_window(c->loc, "tg_conv2d", c->a, &xs, &w);
    return conv_forward_tensors(c, &w, c->in[0], c->in[1], out);
}

/* conv2d's gradient for dz, the gradient of its output: its adjoints in x and in the kernel. */
static bool conv_grads(const tg_grad_ctx *g, const tg_tensor *dz, tg_tensor **dx)
{
    tg_attrs a = *g->a;
    a.window.height = g->in[0]->shape[1];
    a.window.width = g->in[0]->shape[2];
    a.window.act = 0;
    dx[0] = tg__grad_wanted(g, 0) ? TG__APPLY(g->loc, TG_OP_CONV2D_BACKPROP_INPUT, &a, dz, g->in[1]) : NULL;
    dx[1] = tg__grad_wanted(g, 1) ? TG__APPLY(g->loc, TG_OP_CONV2D_BACKPROP_FILTER, &a, g->in[0], dz) : NULL;
    return (!tg__grad_wanted(g, 0) || dx[0]) && (!tg__grad_wanted(g, 1) || dx[1]);
}

bool tg__conv2d_backward(const tg_grad_ctx *g, tg_tensor **dx) { return conv_grads(g, g->dy, dx); }

/* ---- conv2d_backprop_input: dy [N, OH, OW, F], kernel -> the image's gradient [N, H, W, C] ---- */
bool tg__conv2d_backprop_input_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *dy = c->in[0], *k = c->in[1];
    if (!require_real(c, dy, "dy") || !conv_operand(c, dy, "dy", "[batch, out_height, out_width, filters]") ||
        !conv_operand(c, k, "kernel", "[kh, kw, in_channels, filters]"))
        return false;
    if (c->a->window.height < 0 || c->a->window.width < 0) {
        tg__fail(c->loc, "tg_conv2d_backprop_input: the image size (%lld, %lld) must not be negative",
                 (long long)c->a->window.height, (long long)c->a->window.width);
        return false;
    }
    tg_shape img = {.rank = 4, .dims = {dy->shape[0], c->a->window.height, c->a->window.width, k->shape[2]}};
    window w;
    if (!conv_window(c, &img, k, dy, &w))
        return false;
    *shape = img;
    *dtype = dy->dtype;
    return true;
}

/* dx of dtype dt (float32 or float64), n elements, from dy and k. */
static bool conv_backprop_input_data(const tg_call *c, const window *w, int64_t f, tg_dtype dt, const void *dy,
                                     const void *k, void *dx, int64_t n)
{
    int64_t len = patch_len(w), rows = w->n * w->oh * w->ow;
    tg_conv_geom g = conv_geom(w, f);
    if (dt == TG_F32 && tg__onednn_conv_backward_data(&g, dy, k, dx))
        return true;
    if (pointwise(w))
        return conv_gemm(dt, false, true, rows, len, f, dy, f, k, f, dx, len) || gemm_failed(c);
    size_t bytes = (size_t)(rows * len) * tg__dsize(dt);
    void *cols = tg__arena_alloc(tg__ctx()->scope, bytes ? bytes : 1);
    if (!cols) {
        tg__fail(c->loc, "tg_conv2d_backprop_input: out of memory for the patches' gradient");
        return false;
    }
    bool ok = conv_gemm(dt, false, true, rows, len, f, dy, f, k, f, cols, len);
    if (ok) { /* col2im, as patches_to_image */
        memset(dx, 0, (size_t)n * tg__dsize(dt));
        if (dt == TG_F32)
            window_copy_f32(dx, cols, w, 0.0f, true);
        else
            window_copy_f64(dx, cols, w, 0.0, true);
    }
    return ok || gemm_failed(c);
}

bool tg__conv2d_backprop_input_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *dy = c->in[0], *k = c->in[1];
    window w;
    tg_shape img = tg__shape(out);
    attrs_window(c->loc, "tg_conv2d_backprop_input", c->a, &img, &w);
    int64_t f = k->shape[3];
    if (out->dtype != TG_BF16)
        return conv_backprop_input_data(c, &w, f, out->dtype, dy->data, k->data, out->data, out->size);
    tg_conv_geom g = conv_geom(&w, f);
    if (tg__onednn_conv_backward_data_bf16(&g, dy->data, k->data, out->data))
        return true;
    float *d32 = widened(c, dy), *k32 = d32 ? widened(c, k) : NULL, *x32 = k32 ? scratch_floats(c, out->size) : NULL;
    return x32 && conv_backprop_input_data(c, &w, f, TG_F32, d32, k32, x32, out->size) && narrowed(x32, out);
}

/* Linear in each input: h's products with the kernel and with dy. */
bool tg__conv2d_backprop_input_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg__grad_wanted(g, 0) ? TG__APPLY(g->loc, TG_OP_CONV2D, g->a, g->dy, g->in[1]) : NULL;
    dx[1] = tg__grad_wanted(g, 1) ? TG__APPLY(g->loc, TG_OP_CONV2D_BACKPROP_FILTER, g->a, g->dy, g->in[0]) : NULL;
    return (!tg__grad_wanted(g, 0) || dx[0]) && (!tg__grad_wanted(g, 1) || dx[1]);
}

/* ---- conv2d_backprop_filter: x [N, H, W, C], dy [N, OH, OW, F] -> the kernel's gradient ---- */
bool tg__conv2d_backprop_filter_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0], *dy = c->in[1];
    window w;
    tg_shape xs = tg__shape(x);
    if (!require_real(c, x, "x") || !conv_operand(c, x, "x", "[batch, height, width, channels]") ||
        !conv_operand(c, dy, "dy", "[batch, out_height, out_width, filters]") || !conv_window(c, &xs, NULL, dy, &w))
        return false;
    *shape = (tg_shape){.rank = 4, .dims = {w.kh, w.kw, w.c, dy->shape[3]}};
    *dtype = x->dtype;
    return true;
}

/* dk of dtype dt (float32 or float64) from x and dy. */
static bool conv_backprop_filter_data(const tg_call *c, const window *w, int64_t f, tg_dtype dt, const void *x,
                                      const void *dy, void *dk)
{
    int64_t len = patch_len(w), rows = w->n * w->oh * w->ow;
    tg_conv_geom g = conv_geom(w, f);
    if (dt == TG_F32 && tg__onednn_conv_backward_weights(&g, x, dy, dk))
        return true;
    void *cols;
    if (!conv_patches(c, x, w, dt, &cols))
        return false;
    return conv_gemm(dt, true, false, len, f, rows, cols, len, dy, f, dk, f) || gemm_failed(c);
}

bool tg__conv2d_backprop_filter_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0], *dy = c->in[1];
    window w;
    tg_shape xs = tg__shape(x);
    attrs_window(c->loc, "tg_conv2d_backprop_filter", c->a, &xs, &w);
    int64_t f = dy->shape[3];
    if (out->dtype != TG_BF16)
        return conv_backprop_filter_data(c, &w, f, out->dtype, x->data, dy->data, out->data);
    tg_conv_geom g = conv_geom(&w, f);
    float *k32 = scratch_floats(c, out->size);
    if (k32 && tg__onednn_conv_backward_weights_bf16(&g, x->data, dy->data, k32))
        return narrowed(k32, out);
    float *x32 = k32 ? widened(c, x) : NULL, *d32 = x32 ? widened(c, dy) : NULL;
    return d32 && conv_backprop_filter_data(c, &w, f, TG_F32, x32, d32, k32) && narrowed(k32, out);
}

/* Linear in each input: x's and dy's products with h. */
bool tg__conv2d_backprop_filter_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_attrs a = *g->a;
    a.window.height = g->in[0]->shape[1];
    a.window.width = g->in[0]->shape[2];
    dx[0] = tg__grad_wanted(g, 0) ? TG__APPLY(g->loc, TG_OP_CONV2D_BACKPROP_INPUT, &a, g->in[1], g->dy) : NULL;
    dx[1] = tg__grad_wanted(g, 1) ? TG__APPLY(g->loc, TG_OP_CONV2D, &a, g->in[0], g->dy) : NULL;
    return (!tg__grad_wanted(g, 0) || dx[0]) && (!tg__grad_wanted(g, 1) || dx[1]);
}

tg_tensor *tg_conv2d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *kernel, tg_conv2d_opts o)
{
    window w;
    if (!check_conv(loc, "tg_conv2d", x, kernel, "kernel", o.strides, o.dilations, o.padding, &w))
        return NULL;
    tg_attrs a = window_attrs(&w, 0.0);
    return TG__APPLY(loc, TG_OP_CONV2D, &a, x, kernel);
}

/* ---- conv2d_bias_act: act(conv2d(x, kernel) + bias), Conv2D's call in one op ---------------------- */
bool tg__conv2d_bias_act_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *b = c->in[2];
    if (!tg__conv2d_shape(c, shape, dtype))
        return false;
    if (c->a->window.act < TG_BIAS_LINEAR || c->a->window.act > TG_BIAS_TANH)
        return tg__failb(c->loc,
                         "tg_conv2d_bias_act: activation %d is not a tg_bias_act (TG_BIAS_LINEAR, TG_BIAS_RELU, "
                         "TG_BIAS_SIGMOID or TG_BIAS_TANH)",
                         c->a->window.act);
    if (b->dtype != c->in[0]->dtype)
        return tg__failb(c->loc, "tg_conv2d_bias_act: cannot mix %s `x` and %s `bias` (cast one with tg_cast)",
                         tg_dtype_name(c->in[0]->dtype), tg_dtype_name(b->dtype));
    if (b->rank != 1 || b->shape[0] != shape->dims[3]) {
        tg_shape bs = tg__shape(b);
        SHAPE_STR(str, &bs);
        return tg__failb(c->loc, "tg_conv2d_bias_act: `bias` must be a vector of the %lld filters, but has shape %s",
                         (long long)shape->dims[3], str);
    }
    return true;
}

typedef struct bias_job {
    uint16_t *y;
    const uint16_t *b;
    int64_t f;
    bool relu;
} bias_job;

/* bfloat16 rows of y: y + b in float32, ReLU'd as bias_add_act (v <= 0: 0, NaN passes), rounded once. */
static void bias_relu_bf16_rows(void *ctx, int64_t r0, int64_t r1)
{
    const bias_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        uint16_t *y = j->y + r * j->f;
        for (int64_t i = 0; i < j->f; i++) {
            float v = tg__f32_from_bf16(y[i]) + tg__f32_from_bf16(j->b[i]);
            y[i] = tg__bf16_from_f32(j->relu && v <= 0 ? 0.0f : v);
        }
    }
}

/* y = act(y + b) in place, with bias_add_act's kernel: its values to the bit (bfloat16: on
 * y and b widened, rounded once, as the dispatcher runs bias_add_act; one pass for ReLU
 * and none). */
static bool bias_act_in_place(const tg_call *c, tg_tensor *y, const tg_tensor *b, int act)
{
    tg_tensor *y32 = y, *b32 = (tg_tensor *)b;
    if (y->dtype == TG_BF16 && (act == TG_BIAS_LINEAR || act == TG_BIAS_RELU)) {
        int64_t f = b->size, rows = f ? y->size / f : 0;
        bias_job j = {.y = y->data, .b = b->data, .f = f, .relu = act == TG_BIAS_RELU};
        tg__parallel_for(rows, tg__rows_grain(f, TG_GRAIN), bias_relu_bf16_rows, &j);
        return true;
    }
    if (y->dtype == TG_BF16) {
        tg_shape ys = tg__shape(y), bs = tg__shape(b);
        if (!(y32 = tg__tensor_new(c->loc, TG_F32, &ys)) || !(b32 = tg__tensor_new(c->loc, TG_F32, &bs)))
            return false;
        tg__parallel_for(y->size, 32768, widen_range, &(convert_job){.from16 = y->data, .to32 = y32->data});
        tg__parallel_for(b->size, 32768, widen_range, &(convert_job){.from16 = b->data, .to32 = b32->data});
    }
    const tg_tensor *in[] = {y32, b32};
    tg_call bc = {.loc = c->loc, .op = TG_OP_BIAS_ADD_ACT, .in = in, .n = 2, .a = &(tg_attrs){.act = act}};
    bc.n_out = 1, bc.outs = &y32;
    if (!tg__bias_act_forward(&bc, y32))
        return false;
    return y == y32 || narrowed(y32->data, y);
}

/* The largest |v| of n floats, or +Inf when one is NaN (or infinite). */
static double max_abs_f32(const float *v, int64_t n)
{
    float m = 0;
    bool nan = false;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(v[i]);
        m = a > m ? a : m;
        nan |= a != a;
    }
    return nan ? INFINITY : (double)m;
}

/* Whether every sum of conv2d + bias stays finite: no NaN or Inf among the operands and
 * no product sum that can overflow. oneDNN's ReLU post-op (max(v, 0) for alpha 0) turns
 * a NaN sum into 0 where tg_relu passes it, so a convolution that could make one runs
 * the ReLU as bias_add_act does. One read of x, usually a fraction of the output. */
static bool sums_finite(const tg_tensor *x, const tg_tensor *k, const tg_tensor *b, int64_t taps)
{
    double mk = max_abs_f32(k->data, k->size), mb = max_abs_f32(b->data, b->size);
    if (!isfinite(mk) || !isfinite(mb))
        return false;
    double mx = max_abs_f32(x->data, x->size);
    return isfinite(mx) && mx * mk * (double)taps + mb < 0x1p120;
}

/* float32 with ReLU or no activation: one oneDNN primitive, the bias and the ReLU applied
 * to each sum before it is stored (the ReLU only where no sum can be NaN); else conv2d's
 * kernel, then bias_add_act's in place. */
bool tg__conv2d_bias_act_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0], *k = c->in[1], *b = c->in[2];
    int act = c->a->window.act;
    window w;
    tg_shape xs = tg__shape(x);
    attrs_window(c->loc, "tg_conv2d_bias_act", c->a, &xs, &w);
    tg_conv_geom g = conv_geom(&w, k->shape[3]);
    if (out->dtype == TG_F32 && (act == TG_BIAS_LINEAR || act == TG_BIAS_RELU) && tg__onednn_active() &&
        (act == TG_BIAS_LINEAR || sums_finite(x, k, b, patch_len(&w))) &&
        tg__onednn_conv_forward_bias(&g, x->data, k->data, b->data, act == TG_BIAS_RELU, out->data))
        return true;
    return conv_forward_tensors(c, &w, x, k, out) && bias_act_in_place(c, out, b, act);
}

/* bias_add_act's backward, then conv2d's for dz: dz = dy act'(y) and the bias's sums in
 * one pass (act_grad_bias_sum; bfloat16: act_grad, then tg_sum), then conv2d's two adjoints
 * of dz. */
bool tg__conv2d_bias_act_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    int act = g->a->window.act;
    const tg_tensor *y = g->out;
    tg_tensor *dz = g->dy, *pair[2];
    tg_reduce_opts rows = {.axes = {.n = 3, .axis = {0, 1, 2}}};
    bool bias = tg__grad_wanted(g, 2);
    dx[2] = NULL;
    if (act != TG_BIAS_LINEAR && bias && y->dtype != TG_BF16) {
        if (tg__apply_n(l, TG_OP_ACT_GRAD_BIAS_SUM, (const tg_tensor *const[]){y, g->dy}, 2, &(tg_attrs){.act = act}, 2,
                        pair) != 0)
            return false;
        dz = pair[0], dx[2] = pair[1];
    } else {
        if (act != TG_BIAS_LINEAR && !(dz = TG__APPLY(l, TG_OP_ACT_GRAD, &(tg_attrs){.act = act}, y, g->dy)))
            return false;
        if (bias && !(dx[2] = tg_sum_at(l, dz, rows)))
            return false;
    }
    return conv_grads(g, dz, dx);
}

tg_tensor *tg_conv2d_bias_act_at(tg_loc loc, const tg_tensor *x, const tg_tensor *kernel, const tg_tensor *bias,
                                 tg_bias_act act, tg_conv2d_opts o)
{
    window w;
    if (!check_conv(loc, "tg_conv2d_bias_act", x, kernel, "kernel", o.strides, o.dilations, o.padding, &w) ||
        !tg__check_input(loc, "tg_conv2d_bias_act", bias, "bias"))
        return NULL;
    tg_attrs a = window_attrs(&w, 0.0);
    a.window.act = (int)act;
    return TG__APPLY(loc, TG_OP_CONV2D_BIAS_ACT, &a, x, kernel, bias);
}

/* The window attributes of conv2d's options, for a kh x kw kernel over an image height x width. */
static bool conv_opts_attrs(tg_loc loc, const char *name, tg_conv2d_opts o, int64_t kh, int64_t kw, int64_t height,
                            int64_t width, tg_attrs *a)
{
    if (o.padding != TG_PADDING_VALID && o.padding != TG_PADDING_SAME) {
        tg__fail(loc, "%s: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME", name, (int)o.padding);
        return false;
    }
    *a = (tg_attrs){.window = {.kh = kh,
                               .kw = kw,
                               .stride_h = o.strides[0],
                               .stride_w = o.strides[1],
                               .height = height,
                               .width = width,
                               .same = o.padding == TG_PADDING_SAME,
                               .dilation_h = o.dilations[0],
                               .dilation_w = o.dilations[1]}};
    return true;
}

tg_tensor *tg_conv2d_backprop_input_at(tg_loc loc, const tg_tensor *dy, const tg_tensor *kernel, int64_t height,
                                       int64_t width, tg_conv2d_opts o)
{
    const char *name = "tg_conv2d_backprop_input";
    tg_attrs a;
    if (!tg__check_input(loc, name, dy, "dy") || !tg__check_input(loc, name, kernel, "kernel"))
        return NULL;
    if (kernel->rank != 4)
        return tg__fail(loc, "%s: `kernel` must have rank 4, [kh, kw, in_channels, filters], but has rank %d", name,
                        kernel->rank);
    if (!conv_opts_attrs(loc, name, o, kernel->shape[0], kernel->shape[1], height, width, &a))
        return NULL;
    return TG__APPLY(loc, TG_OP_CONV2D_BACKPROP_INPUT, &a, dy, kernel);
}

tg_tensor *tg_conv2d_backprop_filter_at(tg_loc loc, const tg_tensor *x, const tg_tensor *dy, int64_t kh, int64_t kw,
                                        tg_conv2d_opts o)
{
    const char *name = "tg_conv2d_backprop_filter";
    tg_attrs a;
    if (!tg__check_input(loc, name, x, "x") || !tg__check_input(loc, name, dy, "dy"))
        return NULL;
    if (!conv_opts_attrs(loc, name, o, kh, kw, 0, 0, &a))
        return NULL;
    return TG__APPLY(loc, TG_OP_CONV2D_BACKPROP_FILTER, &a, x, dy);
}

/* extract_patches and patches_to_image with the options of conv2d (strides, padding, dilations). */
tg_tensor *tg_extract_patches_dilated_at(tg_loc loc, const tg_tensor *x, int64_t kh, int64_t kw, tg_conv2d_opts o)
{
    window w;
    if (!check_image(loc, "tg_extract_patches", x, (const int64_t[]){kh, kw}, o.strides, o.dilations, o.padding, &w))
        return NULL;
    return patches_padded(loc, x, &w, 0.0);
}

tg_tensor *tg_patches_to_image_dilated_at(tg_loc loc, const tg_tensor *patches, int64_t height, int64_t width,
                                          int64_t kh, int64_t kw, tg_conv2d_opts o)
{
    if (o.padding != TG_PADDING_VALID && o.padding != TG_PADDING_SAME)
        return tg__fail(loc, "tg_patches_to_image: padding %d is neither TG_PADDING_VALID nor TG_PADDING_SAME",
                        (int)o.padding);
    tg_attrs a = {.window = {.kh = kh,
                             .kw = kw,
                             .stride_h = o.strides[0],
                             .stride_w = o.strides[1],
                             .height = height,
                             .width = width,
                             .same = o.padding == TG_PADDING_SAME,
                             .dilation_h = o.dilations[0],
                             .dilation_w = o.dilations[1]}};
    return TG__APPLY(loc, TG_OP_PATCHES_TO_IMAGE, &a, patches);
}

/* 1-D convolution, NWC: the 2-D one over a height of 1. */
tg_tensor *tg_conv1d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *kernel, tg_conv1d_opts o)
{
    if (!tg__check_input(loc, "tg_conv1d", x, "x") || !tg__check_input(loc, "tg_conv1d", kernel, "kernel"))
        return NULL;
    if (x->rank != 3 || kernel->rank != 3) {
        tg_shape xs = tg__shape(x), ks = tg__shape(kernel);
        SHAPE_STR(xstr, &xs);
        SHAPE_STR(kstr, &ks);
        return tg__fail(loc,
                        "tg_conv1d: `x` must have rank 3, [batch, width, channels] (NWC), and `kernel` rank 3, "
                        "[kw, in_channels, filters], but they have shapes %s and %s",
                        xstr, kstr);
    }
    int64_t dil = o.dilation ? o.dilation : 1;
    if (o.stride < 1 || dil < 1)
        return tg__fail(loc, "tg_conv1d: stride %lld and dilation %lld must be positive", (long long)o.stride,
                        (long long)dil);
    if (o.stride > 1 && dil > 1)
        return tg__fail(loc,
                        "tg_conv1d: stride %lld above 1 cannot be combined with dilation %lld above 1, as in TF; "
                        "use stride 1 and subsample the result, or no dilation",
                        (long long)o.stride, (long long)dil);
    int64_t n = x->shape[0], wd = x->shape[1], c = x->shape[2];
    tg_tensor *x4 = tg_reshape_at(loc, x, TG_SHAPE(n, 1, wd, c));
    tg_tensor *k4 = tg_reshape_at(loc, kernel, TG_SHAPE(1, kernel->shape[0], kernel->shape[1], kernel->shape[2]));
    window w;
    if (!x4 || !k4 ||
        !check_conv(loc, "tg_conv1d", x4, k4, "kernel", (const int64_t[]){1, o.stride},
                    (const int64_t[]){1, o.dilation}, o.padding, &w))
        return NULL;
    tg_tensor *y = tg_conv2d_at(
        loc, x4, k4, (tg_conv2d_opts){.strides = {1, o.stride}, .padding = o.padding, .dilations = {1, o.dilation}});
    return tg_reshape_at(loc, y, TG_SHAPE(n, w.ow, kernel->shape[2]));
}

/* Depthwise: channel c of x meets filter[:, :, c, :] alone, output channel c * M + m.
 * Patches [R, KH*KW, C] seen per channel, [C, R, KH*KW], times the filter per channel,
 * [C, KH*KW, M]: one batched GEMM. */
tg_tensor *tg_depthwise_conv2d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *filter, tg_conv2d_opts o)
{
    window w;
    if (!check_conv(loc, "tg_depthwise_conv2d", x, filter, "filter", o.strides, o.dilations, o.padding, &w))
        return NULL;
    int64_t kk = w.kh * w.kw, m = filter->shape[3], rows = w.n * w.oh * w.ow;
    tg_tensor *cols = tg_reshape_at(loc, patches_padded(loc, x, &w, 0.0), TG_SHAPE(rows, kk, w.c));
    tg_tensor *per_c = tg_transpose_at(loc, cols, TG_AXES(2, 0, 1));
    tg_tensor *f = tg_transpose_at(loc, tg_reshape_at(loc, filter, TG_SHAPE(kk, w.c, m)), TG_AXES(1, 0, 2));
    tg_tensor *y = tg_matmul_at(loc, per_c, f, (tg_matmul_opts){0}); /* [C, R, M] */
    return tg_reshape_at(loc, tg_transpose_at(loc, y, TG_AXES(1, 0, 2)), TG_SHAPE(w.n, w.oh, w.ow, w.c * m));
}

/* Depthwise, then a 1x1 convolution mixing the C*M channels. */
tg_tensor *tg_separable_conv2d_at(tg_loc loc, const tg_tensor *x, const tg_tensor *depthwise_filter,
                                  const tg_tensor *pointwise_filter, tg_conv2d_opts o)
{
    if (!tg__check_input(loc, "tg_separable_conv2d", x, "x") ||
        !tg__check_input(loc, "tg_separable_conv2d", depthwise_filter, "depthwise_filter") ||
        !tg__check_input(loc, "tg_separable_conv2d", pointwise_filter, "pointwise_filter"))
        return NULL;
    window w;
    if (!check_conv(loc, "tg_separable_conv2d", x, depthwise_filter, "depthwise_filter", o.strides, o.dilations,
                    o.padding, &w))
        return NULL;
    int64_t cm = w.c * depthwise_filter->shape[3];
    const tg_tensor *p = pointwise_filter;
    if (p->rank != 4 || p->shape[0] != 1 || p->shape[1] != 1 || p->shape[2] != cm) {
        tg_shape ps = tg__shape(p);
        SHAPE_STR(pstr, &ps);
        return tg__fail(loc,
                        "tg_separable_conv2d: `pointwise_filter` must have shape [1, 1, %lld, filters] "
                        "(in_channels * channel_multiplier = %lld), but has shape %s",
                        (long long)cm, (long long)cm, pstr);
    }
    if (p->dtype != x->dtype)
        return tg__fail(loc, "tg_separable_conv2d: cannot mix %s `x` and %s `pointwise_filter` (cast one with tg_cast)",
                        tg_dtype_name(x->dtype), tg_dtype_name(p->dtype));
    tg_tensor *d = tg_depthwise_conv2d_at(loc, x, depthwise_filter, o);
    return tg_conv2d_at(loc, d, p, (tg_conv2d_opts){.strides = {1, 1}, .padding = TG_PADDING_VALID});
}

/* conv2d's adjoint in x: each input pixel's F values times the filters' [KH*KW*C, F]
 * matrix give a window row, summed into the image by patches_to_image. */
tg_tensor *tg_conv2d_transpose_at(tg_loc loc, const tg_tensor *input, const tg_tensor *filters, tg_shape output_shape,
                                  tg_conv2d_opts o)
{
    const char *name = "tg_conv2d_transpose";
    if (!tg__check_input(loc, name, input, "input") || !tg__check_input(loc, name, filters, "filters"))
        return NULL;
    tg_shape is = tg__shape(input), fs = tg__shape(filters);
    SHAPE_STR(istr, &is);
    SHAPE_STR(fstr, &fs);
    SHAPE_STR(ostr, &output_shape);
    if (!tg_dtype_is_float(input->dtype))
        return tg__fail(loc, "%s: `input` must be float32 or float64, not %s (cast it with tg_cast)", name,
                        tg_dtype_name(input->dtype));
    if (input->dtype != filters->dtype)
        return tg__fail(loc, "%s: cannot mix %s `input` and %s `filters` (cast one with tg_cast)", name,
                        tg_dtype_name(input->dtype), tg_dtype_name(filters->dtype));
    if (input->rank != 4 || filters->rank != 4 || output_shape.rank != 4)
        return tg__fail(loc,
                        "%s: `input` [batch, height, width, in_channels], `filters` [kh, kw, out_channels, "
                        "in_channels] and output_shape [batch, height, width, out_channels] must have rank 4, but "
                        "have shapes %s, %s and %s",
                        name, istr, fstr, ostr);
    window w;
    if (!resolve_window(loc, name, &output_shape, fs.dims, o.strides, o.dilations, (int)o.padding, &w))
        return NULL;
    if (w.n != is.dims[0] || w.oh != is.dims[1] || w.ow != is.dims[2] || fs.dims[2] != w.c || fs.dims[3] != is.dims[3])
        return tg__fail(loc,
                        "%s: output_shape %s does not fit: a conv2d of it with `filters` %s (these strides and "
                        "padding) gives [%lld, %lld, %lld, %lld], but `input` has shape %s",
                        name, ostr, fstr, (long long)w.n, (long long)w.oh, (long long)w.ow, (long long)fs.dims[3],
                        istr);
    int64_t k = patch_len(&w), f = fs.dims[3];
    tg_tensor *rows = tg_matmul_at(loc, tg_reshape_at(loc, input, TG_SHAPE(w.n * w.oh * w.ow, f)),
                                   tg_reshape_at(loc, filters, TG_SHAPE(k, f)), (tg_matmul_opts){.transpose_b = true});
    tg_attrs a = window_attrs(&w, 0.0);
    return TG__APPLY(loc, TG_OP_PATCHES_TO_IMAGE, &a, tg_reshape_at(loc, rows, TG_SHAPE(w.n, w.oh, w.ow, k)));
}

/* ---- pooling ---------------------------------------------------------------------------------------- */
/* The pools are ops of their own, reading each window in place: no patches tensor, one
 * pass forward and one backward. Their values and gradients are those of the chain they
 * replace (a reduction over extract_patches), bit for bit: the same formulas, the same
 * order of additions (ties in a max window aside, below). Backward rules come in adjoint pairs, each one's backward being the
 * other (as extract_patches and patches_to_image), so derivatives of any order work:
 *   max_pool2d(x)           backward: max_pool2d_grad(x, y, dy)
 *   max_pool2d_grad(x,y,d)  linear in d; backward: max_pool2d_gather(x, y, h)
 *   max_pool2d_gather(x,y,h) linear in h; backward: max_pool2d_grad(x, y, g)
 *   avg_pool2d(x)           linear; backward: avg_pool2d_grad(dy), whose backward is avg_pool2d
 * A window's gradient goes whole to its first maximum in row-major order, as TF's
 * MaxPoolGrad (and PyTorch) give it, where the chain (reduce_max) shares it among ties:
 * the bits agree wherever a window has one maximum. With SAME padding the padded
 * positions never win and an average counts the real positions only (TF). Attrs: those of
 * extract_patches, with j[0..1] the image's H, W for avg_pool2d_grad. */

/* Windows that tile the image: each pixel in one window at most. */
static bool tiled(const window *w)
{
    return w->sh == w->kh && w->sw == w->kw && w->pt == 0 && w->pl == 0 && w->oh * w->kh <= w->h &&
           w->ow * w->kw <= w->w;
}

static bool tiled_2x2(const window *w) { return tiled(w) && w->kh == 2 && w->kw == 2 && w->dh == 1 && w->dw == 1; }

static void pool_rows(void *p, int64_t r0, int64_t r1)
{
    const pool_ctx *r = p;
    bool is_max = r->c->op == TG_OP_MAX_POOL2D;
    if (is_max && tiled_2x2(&r->w)) {
        if (r->out->dtype == TG_F32)
            max_pool_2x2_rows_f32(r, r0, r1);
        else
            max_pool_2x2_rows_f64(r, r0, r1);
        return;
    }
    if (r->out->dtype == TG_F32)
        pool_rows_f32(r, r0, r1, is_max);
    else
        pool_rows_f64(r, r0, r1, is_max);
}

/* The image x (in[0]) against the windows of the output-shaped in[1], in[2]; or, for
 * avg_pool2d_grad, the image given by j[0..1]. */
static bool pool_geometry(const tg_call *c, const tg_tensor *img, window *w)
{
    tg_shape xs = tg__shape(img);
    if (!tg__require_float(c, img, "x"))
        return false;
    if (!attrs_window(c->loc, tg__op_name(c->op), c->a, &xs, w))
        return false;
    for (int i = 1; i < c->n; i++) {
        const tg_tensor *t = c->in[i];
        if (!tg__same_dtype(c, img, t))
            return false;
        if (t->rank != 4 || t->shape[0] != w->n || t->shape[1] != w->oh || t->shape[2] != w->ow ||
            t->shape[3] != w->c) {
            tg_shape ts = tg__shape(t);
            SHAPE_STR(str, &ts);
            tg__fail(c->loc, "%s: input %d has shape %s; the windows of x give (%lld, %lld, %lld, %lld)",
                     tg__op_name(c->op), i, str, (long long)w->n, (long long)w->oh, (long long)w->ow, (long long)w->c);
            return false;
        }
    }
    return true;
}

bool tg__pool_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    window w;
    if (!pool_geometry(c, c->in[0], &w))
        return false;
    *shape = (tg_shape){.rank = 4, .dims = {w.n, w.oh, w.ow, w.c}};
    *dtype = c->in[0]->dtype;
    return true;
}

static bool padded(const window *w)
{
    return w->same && ((w->oh - 1) * w->sh + w->kh - w->h > 0 || (w->ow - 1) * w->sw + w->kw - w->w > 0);
}

bool tg__pool_forward(const tg_call *c, tg_tensor *out)
{
    pool_ctx r = {.c = c, .out = out};
    tg_shape xs = tg__shape(c->in[0]);
    attrs_window(c->loc, tg__op_name(c->op), c->a, &xs, &r.w);
    r.padded_avg = padded(&r.w);
    tg__parallel_for(r.w.n * r.w.oh, tg__rows_grain(r.w.ow * r.w.kh * r.w.kw * r.w.c, TG_GRAIN), pool_rows, &r);
    return true;
}

static void pool_grad_images(void *p, int64_t i0, int64_t i1)
{
    const pool_ctx *r = p;
    tg_op_kind op = r->c->op;
    if (op == TG_OP_MAX_POOL2D_GRAD && tiled_2x2(&r->w)) {
        if (r->out->dtype == TG_F32)
            max_pool_grad_2x2_f32(r, i0, i1);
        else
            max_pool_grad_2x2_f64(r, i0, i1);
        return;
    }
    if (op == TG_OP_MAX_POOL2D_GRAD && tiled(&r->w)) {
        if (r->out->dtype == TG_F32)
            max_pool_grad_tiled_f32(r, i0, i1);
        else
            max_pool_grad_tiled_f64(r, i0, i1);
        return;
    }
    if (r->out->dtype == TG_F32)
        pool_grad_images_f32(r, i0, i1, op);
    else
        pool_grad_images_f64(r, i0, i1, op);
}

bool tg__max_pool_grad_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    window w;
    if (!pool_geometry(c, c->in[0], &w))
        return false;
    *shape =
        c->op == TG_OP_MAX_POOL2D_GRAD ? tg__shape(c->in[0]) : (tg_shape){.rank = 4, .dims = {w.n, w.oh, w.ow, w.c}};
    *dtype = c->in[0]->dtype;
    return true;
}

/* gather's third input has the image's shape, not the windows': checked here. */
bool tg__max_pool_gather_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_call two = {.loc = c->loc, .op = c->op, .in = c->in, .n = 2, .a = c->a};
    if (!tg__max_pool_grad_shape(&two, shape, dtype) || !tg__same_dtype(c, c->in[0], c->in[2]))
        return false;
    if (!tg__same_shape(c->in[0], c->in[2])) {
        tg__fail(c->loc, "%s: `h` must have the shape of `x`", tg__op_name(c->op));
        return false;
    }
    return true;
}

bool tg__avg_pool_grad_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *d = c->in[0];
    if (!tg__require_float(c, d, "dy"))
        return false;
    if (d->rank != 4) {
        tg__fail(c->loc, "%s: `dy` must have rank 4", tg__op_name(c->op));
        return false;
    }
    tg_shape img = {.rank = 4, .dims = {d->shape[0], c->a->window.height, c->a->window.width, d->shape[3]}};
    window w;
    if (!attrs_window(c->loc, tg__op_name(c->op), c->a, &img, &w))
        return false;
    if (w.oh != d->shape[1] || w.ow != d->shape[2]) {
        tg__fail(c->loc, "%s: an image of %lld x %lld gives %lld x %lld windows, not %lld x %lld", tg__op_name(c->op),
                 (long long)w.h, (long long)w.w, (long long)w.oh, (long long)w.ow, (long long)d->shape[1],
                 (long long)d->shape[2]);
        return false;
    }
    *shape = img;
    *dtype = d->dtype;
    return true;
}

bool tg__pool_grad_forward(const tg_call *c, tg_tensor *out)
{
    pool_ctx r = {.c = c, .out = out};
    tg_shape img = c->op == TG_OP_AVG_POOL2D_GRAD ? tg__shape(out) : tg__shape(c->in[0]);
    attrs_window(c->loc, tg__op_name(c->op), c->a, &img, &r.w);
    r.padded_avg = padded(&r.w);
    tg__parallel_for(r.w.n, tg__rows_grain(r.w.h * r.w.w * r.w.c * 4, TG_GRAIN), pool_grad_images, &r);
    return true;
}

static tg_tensor *pool_op(tg_loc loc, tg_op_kind op, const tg_attrs *a, const tg_tensor *x, const tg_tensor *y,
                          const tg_tensor *d)
{
    return y ? tg__apply(loc, op, (const tg_tensor *const[]){x, y, d}, 3, a) : TG__APPLY(loc, op, a, x);
}

bool tg__max_pool_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = pool_op(g->loc, TG_OP_MAX_POOL2D_GRAD, g->a, g->in[0], g->out, g->dy);
    return dx[0] != NULL;
}

/* grad and gather are adjoint maps, linear in their last input; the window's ties (from x
 * and y) are constants. */
bool tg__max_pool_grad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[2] = pool_op(g->loc, TG_OP_MAX_POOL2D_GATHER, g->a, g->in[0], g->in[1], g->dy);
    return dx[2] != NULL;
}

bool tg__max_pool_gather_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[2] = pool_op(g->loc, TG_OP_MAX_POOL2D_GRAD, g->a, g->in[0], g->in[1], g->dy);
    return dx[2] != NULL;
}

bool tg__avg_pool_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_attrs a = *g->a;
    a.window.height = g->in[0]->shape[1];
    a.window.width = g->in[0]->shape[2];
    dx[0] = TG__APPLY(g->loc, TG_OP_AVG_POOL2D_GRAD, &a, g->dy);
    return dx[0] != NULL;
}

bool tg__avg_pool_grad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = TG__APPLY(g->loc, TG_OP_AVG_POOL2D, g->a, g->dy);
    return dx[0] != NULL;
}

/* Strides {0, 0} mean "the pool size", as Keras's strides=None. */
static bool pool_window(tg_loc loc, const char *name, const tg_tensor *x, const tg_pool2d_opts *o, window *w)
{
    const int64_t *s = o->strides[0] == 0 && o->strides[1] == 0 ? o->pool_size : o->strides;
    return check_image(loc, name, x, o->pool_size, s, NULL, o->padding, w);
}

tg_tensor *tg_max_pool2d_at(tg_loc loc, const tg_tensor *x, tg_pool2d_opts o)
{
    window w;
    if (!pool_window(loc, "tg_max_pool2d", x, &o, &w))
        return NULL;
    tg_attrs a = window_attrs(&w, 0.0);
    return TG__APPLY(loc, TG_OP_MAX_POOL2D, &a, x);
}

/* TF divides each SAME window by the number of real positions it covers, not by KH*KW. */
tg_tensor *tg_avg_pool2d_at(tg_loc loc, const tg_tensor *x, tg_pool2d_opts o)
{
    window w;
    if (!pool_window(loc, "tg_avg_pool2d", x, &o, &w))
        return NULL;
    tg_attrs a = window_attrs(&w, 0.0);
    return TG__APPLY(loc, TG_OP_AVG_POOL2D, &a, x);
}

tg_tensor *tg_global_avg_pool2d_at(tg_loc loc, const tg_tensor *x)
{
    if (!tg__check_input(loc, "tg_global_avg_pool2d", x, "x"))
        return NULL;
    if (x->rank != 4) {
        tg_shape xs = tg__shape(x);
        SHAPE_STR(str, &xs);
        return tg__fail(loc,
                        "tg_global_avg_pool2d: the input must have rank 4, [batch, height, width, channels] "
                        "(NHWC), but has shape %s",
                        str);
    }
    return tg_mean_at(loc, x, (tg_reduce_opts){.axes = TG_AXES(1, 2)});
}

/* ---- 1-D pooling (NWC): the 2-D pools over a height of 1 ------------------------------------------- */
static tg_tensor *pool1d(tg_loc loc, const char *name, tg_op_kind op, const tg_tensor *x, tg_pool1d_opts o)
{
    if (!tg__check_input(loc, name, x, "x"))
        return NULL;
    if (x->rank != 3) {
        tg_shape xs = tg__shape(x);
        SHAPE_STR(str, &xs);
        return tg__fail(loc, "%s: the input must have rank 3, [batch, width, channels] (NWC), but has shape %s", name,
                        str);
    }
    if (!tg_dtype_is_float(x->dtype))
        return tg__fail(loc, "%s: `x` must be float32 or float64, not %s (cast it with tg_cast)", name,
                        tg_dtype_name(x->dtype));
    if (o.pool_size < 1 || o.strides < 0)
        return tg__fail(loc, "%s: pool_size %lld must be positive and strides %lld positive (or 0: the pool size)",
                        name, (long long)o.pool_size, (long long)o.strides);
    tg_shape s4 = {.rank = 4, .dims = {x->shape[0], 1, x->shape[1], x->shape[2]}};
    window w;
    int64_t stride = o.strides ? o.strides : o.pool_size;
    if (!resolve_window(loc, name, &s4, (const int64_t[]){1, o.pool_size}, (const int64_t[]){1, stride}, NULL,
                        (int)o.padding, &w))
        return NULL;
    tg_attrs a = window_attrs(&w, 0.0);
    tg_tensor *y = TG__APPLY(loc, op, &a, tg_reshape_at(loc, x, s4));
    return tg_reshape_at(loc, y, TG_SHAPE(w.n, w.ow, w.c));
}

tg_tensor *tg_max_pool1d_at(tg_loc loc, const tg_tensor *x, tg_pool1d_opts o)
{
    return pool1d(loc, "tg_max_pool1d", TG_OP_MAX_POOL2D, x, o);
}

tg_tensor *tg_avg_pool1d_at(tg_loc loc, const tg_tensor *x, tg_pool1d_opts o)
{
    return pool1d(loc, "tg_avg_pool1d", TG_OP_AVG_POOL2D, x, o);
}
