/* Fused ops: what the common training path repeats, done in one pass over memory.
 *
 *   bias_add_act(x, b, act)      act(x + b), b along x's last axis (Dense, Conv2D)
 *   act_grad(y, dy, act)         dy * act'(y) from the output y (TF's ReluGrad and kin)
 *   act_grad_bias_sum(y, dy, act)
 *                                (act_grad(y, dy), its sums over every axis but the last):
 *                                bias_add_act's backward for x and the bias, one pass
 *   sparse_softmax_cross_entropy_with_logits(labels, logits)
 *   softmax_cross_entropy_with_logits(labels, logits)
 *                                per example: logsumexp(z) - z[label], or
 *                                -sum(labels * log_softmax(z)), without the softmax tensor
 *   xent_grad(labels, logits, dy)
 *                                dy * (softmax(z) * sum(labels) - labels) (one-hot for
 *                                integer labels): the cross-entropies' backward, one pass
 *
 * Each gives exactly the values of the unfused chain of public ops (the same formulas,
 * in the same order, in the same precision; act_grad_bias_sum's sums past one chunk of
 * rows are added chunk by chunk, a double rounding apart from tg_sum's). Each backward rule is made of public ops and
 * these ops, whose own backward rules are made of public ops too, so a tape recording a
 * gradient records it and derivatives of any order work. Rows are spread over the loop
 * pool (src/kernels/parallel.h); each row is computed by one thread, so the results do
 * not depend on the number of threads. */
#include <tgmath.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/parallel.h"

#define UNUSED __attribute__((unused))

static tg_tensor *scalar_like(tg_loc loc, const tg_tensor *x, double v) { return tg_scalar_like_at(loc, x, v); }

static bool check_act(const tg_call *c, int act)
{
    if (act >= TG_BIAS_LINEAR && act <= TG_BIAS_TANH)
        return true;
    tg__fail(c->loc,
             "%s: activation %d is not a tg_bias_act (TG_BIAS_LINEAR, TG_BIAS_RELU, TG_BIAS_SIGMOID or "
             "TG_BIAS_TANH)",
             tg__op_name(c->op), act);
    return false;
}

/* ---- bias_add_act ---------------------------------------------------------------------------- */
bool tg__bias_act_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0], *b = c->in[1];
    if (!tg__require_float(c, x, "x") || !tg__same_dtype(c, x, b) || !check_act(c, c->a->act))
        return false;
    tg_shape xs = tg__shape(x), bs = tg__shape(b);
    char sx[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
    if (x->rank < 1 || b->rank != 1 || b->shape[0] != x->shape[x->rank - 1]) {
        tg__fail(c->loc,
                 "tg_bias_add_act: `bias` must be a vector as long as the last axis of `x`; got x %s and "
                 "bias %s",
                 tg__shape_str(&xs, sx, sizeof sx), tg__shape_str(&bs, sb, sizeof sb));
        return false;
    }
    *shape = xs;
    *dtype = x->dtype;
    return true;
}

typedef struct rows_ctx {
    const tg_call *c;
    tg_tensor *out;
    int64_t len; /* elements per row */
} rows_ctx;

static int64_t label_at(const tg_tensor *labels, int64_t i)
{
    return labels->dtype == TG_I32 ? ((const int32_t *)labels->data)[i] : ((const int64_t *)labels->data)[i];
}

typedef struct sum_ctx {
    const tg_call *c;
    int64_t len, grain; /* columns; rows per chunk */
    double *partial;    /* per chunk, len column sums */
} sum_ctx;

typedef struct xent_ctx {
    const tg_call *c;
    tg_tensor *out;
    int64_t len;
    bool sparse;
} xent_ctx;

#define T   float
#define SFX f32
#include "fused_tmpl.h"
#undef T
#undef SFX
#define T   double
#define SFX f64
#include "fused_tmpl.h"
#undef T
#undef SFX

static void bias_act_rows(void *p, int64_t r0, int64_t r1)
{
    const rows_ctx *r = p;
    if (r->out->dtype == TG_F32)
        bias_act_rows_f32(r, r0, r1);
    else
        bias_act_rows_f64(r, r0, r1);
}

bool tg__bias_act_forward(const tg_call *c, tg_tensor *out)
{
    rows_ctx r = {.c = c, .out = out, .len = c->in[1]->size};
    if (r.len > 0)
        tg__parallel_for(out->size / r.len, tg__rows_grain(r.len, TG_GRAIN), bias_act_rows, &r);
    return true;
}

static tg_tensor *act_grad(tg_loc loc, const tg_tensor *y, const tg_tensor *dy, int act)
{
    return TG__APPLY(loc, TG_OP_ACT_GRAD, &(tg_attrs){.act = act}, y, dy);
}

/* dz = dy * act'(z), from the output, for x and for the bias (summed over every axis but
 * the last): both from one pass where there is an act'. bfloat16 keeps the two ops (its
 * dz is rounded before the sum), as does a vector x (its bias's gradient is dz itself). */
bool tg__bias_act_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    int act = g->a->act;
    const tg_tensor *y = g->out;
    if (act != TG_BIAS_LINEAR && tg__grad_wanted(g, 1) && y->dtype != TG_BF16 && y->rank >= 2)
        return tg__apply_n(g->loc, TG_OP_ACT_GRAD_BIAS_SUM, (const tg_tensor *const[]){y, g->dy}, 2,
                           &(tg_attrs){.act = act}, 2, dx) == 0;
    tg_tensor *dz = act == TG_BIAS_LINEAR ? g->dy : act_grad(g->loc, y, g->dy, act);
    dx[0] = dz;
    dx[1] = tg__grad_wanted(g, 1) ? dz : NULL;
    return dz != NULL;
}

tg_tensor *tg_bias_add_act_at(tg_loc loc, const tg_tensor *x, const tg_tensor *bias, tg_bias_act act)
{
    return TG__APPLY(loc, TG_OP_BIAS_ADD_ACT, &(tg_attrs){.act = act}, x, bias);
}

/* ---- act_grad: dy * act'(y) ---------------------------------------------------------------------- */
bool tg__act_grad_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *y = c->in[0], *dy = c->in[1];
    if (!tg__require_float(c, y, "y") || !tg__same_dtype(c, y, dy) || !check_act(c, c->a->act))
        return false;
    if (!tg__same_shape(y, dy)) {
        tg_shape a = tg__shape(y), b = tg__shape(dy);
        char sa[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
        tg__fail(c->loc, "%s: `y` %s and `dy` %s must have one shape", tg__op_name(c->op),
                 tg__shape_str(&a, sa, sizeof sa), tg__shape_str(&b, sb, sizeof sb));
        return false;
    }
    *shape = tg__shape(y);
    *dtype = y->dtype;
    return true;
}

static void act_grad_range(void *p, int64_t b, int64_t e)
{
    const rows_ctx *r = p;
    if (r->out->dtype == TG_F32)
        act_grad_range_f32(r, b, e);
    else
        act_grad_range_f64(r, b, e);
}

bool tg__act_grad_forward(const tg_call *c, tg_tensor *out)
{
    rows_ctx r = {.c = c, .out = out};
    tg__parallel_for(out->size, TG_GRAIN, act_grad_range, &r);
    return true;
}

/* act_grad is linear in dy (its gradient is act_grad again); in y: relu 0 (nothing),
 * sigmoid H dy (1 - 2y), tanh H dy (-2y). */
bool tg__act_grad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    int act = g->a->act;
    const tg_tensor *y = g->in[0], *d = g->in[1], *h = g->dy;
    dx[1] = tg__grad_wanted(g, 1) ? act_grad(l, y, h, act) : NULL;
    if (tg__grad_wanted(g, 0) && act == TG_BIAS_SIGMOID)
        dx[0] =
            tg_mul_at(l, tg_mul_at(l, h, d), tg_sub_at(l, scalar_like(l, y, 1), tg_mul_at(l, y, scalar_like(l, y, 2))));
    else if (tg__grad_wanted(g, 0) && act == TG_BIAS_TANH)
        dx[0] = tg_mul_at(l, tg_mul_at(l, h, d), tg_mul_at(l, y, scalar_like(l, y, -2)));
    return true;
}

/* ---- act_grad_bias_sum: act_grad and its column sums -------------------------------------------- */
/* The form with three inputs, (y, p, dp) for (y, max_pool2d_grad(y, p, dp)) with 2x2
 * windows and a ReLU, is made only by the graph's fusion (src/graph/fuse.c): the
 * dispatcher takes two inputs. */
static bool pooled_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *y = c->in[0], *p = c->in[1], *d = c->in[2];
    if (y->rank != 4 || !tg__same_shape(p, d) || p->rank != 4 || p->shape[0] != y->shape[0] ||
        p->shape[1] != y->shape[1] / 2 || p->shape[2] != y->shape[2] / 2 || p->shape[3] != y->shape[3] ||
        p->dtype != y->dtype || d->dtype != y->dtype || (y->dtype != TG_F32 && y->dtype != TG_F64))
        return tg__failb(c->loc, "%s: the pooled form takes an image and its 2x2 pool's output and gradient",
                         tg__op_name(c->op));
    shape[0] = tg__shape(y);
    shape[1] = (tg_shape){.rank = 1, .dims = {y->shape[3]}};
    dtype[0] = dtype[1] = y->dtype;
    return true;
}

bool tg__act_grad_bias_sum_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    if (c->n == 3)
        return pooled_shape(c, shape, dtype);
    if (!tg__act_grad_shape(c, shape, dtype))
        return false;
    if (shape[0].rank < 1)
        return tg__failb(c->loc, "%s: `y` is a scalar; the bias runs along its last axis", tg__op_name(c->op));
    shape[1] = (tg_shape){.rank = 1, .dims = {shape[0].dims[shape[0].rank - 1]}};
    dtype[1] = dtype[0];
    return true;
}

static void act_grad_sum_rows(void *p, int64_t r0, int64_t r1)
{
    const sum_ctx *r = p;
    double *acc = r->partial + r0 / r->grain * r->len;
    if (r->c->n == 3) {
        if (r->c->in[0]->dtype == TG_F32)
            pool_relu_sum_rows_f32(r, r0, r1, acc);
        else
            pool_relu_sum_rows_f64(r, r0, r1, acc);
        return;
    }
    if (r->c->in[0]->dtype == TG_F32)
        act_grad_sum_rows_f32(r, r0, r1, acc);
    else
        act_grad_sum_rows_f64(r, r0, r1, acc);
}

/* One pass over rows spread over the pool: each chunk of rows sums its columns in row
 * order in double, the chunks' sums are added in chunk order (the same bits for any
 * number of threads). Up to one chunk (32768 elements: a Dense layer's batch) that is
 * tg_sum's order exactly; beyond, the double sums differ from tg_sum's by rounding
 * (about 2^-53 of the sum of magnitudes), far below float32's. */
bool tg__act_grad_bias_sum_forward(const tg_call *c, tg_tensor *out)
{
    tg_tensor *db = c->outs[1];
    int64_t len = db->size, rows = len ? out->size / len : 0;
    sum_ctx r = {.c = c, .len = len, .grain = tg__rows_grain(len, TG_GRAIN)};
    int64_t chunks = (rows + r.grain - 1) / r.grain;
    size_t bytes = (size_t)((chunks ? chunks : 1) * (len ? len : 1)) * sizeof(double);
    if (!(r.partial = tg__arena_alloc(tg__ctx()->scope, bytes)))
        return tg__failb(c->loc, "%s: out of memory for %lld sums", tg__op_name(c->op), (long long)(chunks * len));
    memset(r.partial, 0, bytes);
    if (rows > 0)
        tg__parallel_for(rows, r.grain, act_grad_sum_rows, &r);
    for (int64_t k = 0; k < len; k++) {
        double s = r.partial[k];
        for (int64_t j = 1; j < chunks; j++)
            s += r.partial[j * len + k];
        if (db->dtype == TG_F32)
            ((float *)db->data)[k] = (float)s;
        else
            ((double *)db->data)[k] = s;
    }
    return true;
}

/* The gradient reaching dz is its own plus db's, broadcast back over the rows (the sum's
 * backward); act_grad's rule takes it from there. */
bool tg__act_grad_bias_sum_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_grad_ctx whole = *g;
    whole.dy = tg_add_at(g->loc, g->dys[0], g->dys[1]);
    return whole.dy && tg__act_grad_backward(&whole, dx);
}

/* ---- softmax cross-entropy from logits ------------------------------------------------------------- */
/* labels (c->in[0]) against logits (c->in[1]): integer labels of logits' shape without
 * its last axis, each in [0, classes); or float labels of logits' shape. */
static bool xent_inputs(const tg_call *c, bool sparse)
{
    const tg_tensor *labels = c->in[0], *logits = c->in[1];
    const char *name = tg__op_name(c->op);
    if (!tg__require_float(c, logits, "logits"))
        return false;
    tg_shape ls = tg__shape(labels), zs = tg__shape(logits);
    char sl[TG_SHAPE_STR_MAX], sz[TG_SHAPE_STR_MAX];
    tg__shape_str(&ls, sl, sizeof sl);
    tg__shape_str(&zs, sz, sizeof sz);
    if (logits->rank < 1) {
        tg__fail(c->loc, "%s: `logits` is a scalar; it needs a last axis of classes", name);
        return false;
    }
    if (!sparse) {
        if (!tg__same_dtype(c, labels, logits))
            return false;
        if (!tg__same_shape(labels, logits)) {
            tg__fail(c->loc,
                     "%s: `labels` %s and `logits` %s must have one shape (probabilities per class; "
                     "integer class indices go to tg_sparse_softmax_cross_entropy_with_logits)",
                     name, sl, sz);
            return false;
        }
        return true;
    }
    if (labels->dtype != TG_I32 && labels->dtype != TG_I64) {
        tg__fail(c->loc, "%s: `labels` must hold int32 or int64 class indices, not %s", name,
                 tg_dtype_name(labels->dtype));
        return false;
    }
    bool fits = labels->rank == logits->rank - 1;
    for (int k = 0; fits && k < labels->rank; k++)
        fits = labels->shape[k] == logits->shape[k];
    if (!fits) {
        tg__fail(c->loc, "%s: `labels` %s must have the shape of `logits` %s without its last axis", name, sl, sz);
        return false;
    }
    return true;
}

/* Integer labels index the logits' last axis: checked by the kernels (TF's checks them
 * there too), so a graph's run checks the labels it is given, and an abstract trace, which
 * has no values, none. */
static bool labels_in_range(const tg_call *c)
{
    const tg_tensor *labels = c->in[0], *logits = c->in[1];
    if (tg_dtype_is_float(labels->dtype))
        return true;
    int64_t classes = logits->shape[logits->rank - 1];
    for (int64_t i = 0; i < labels->size; i++) {
        int64_t v = labels->dtype == TG_I32 ? ((const int32_t *)labels->data)[i] : ((const int64_t *)labels->data)[i];
        if (v < 0 || v >= classes)
            return tg__failb(c->loc,
                             "%s: Received a label value of %lld (labels[%lld]) which is outside the valid range of "
                             "[0, %lld)",
                             tg__op_name(c->op), (long long)v, (long long)i, (long long)classes);
    }
    return true;
}

static bool xent_shape_any(const tg_call *c, tg_shape *shape, tg_dtype *dtype, bool sparse)
{
    if (!xent_inputs(c, sparse))
        return false;
    *shape = tg__shape(c->in[1]);
    shape->rank--;
    *dtype = c->in[1]->dtype;
    return true;
}

bool tg__sparse_xent_shape(const tg_call *c, tg_shape *s, tg_dtype *d) { return xent_shape_any(c, s, d, true); }
bool tg__dense_xent_shape(const tg_call *c, tg_shape *s, tg_dtype *d) { return xent_shape_any(c, s, d, false); }

static void xent_rows(void *p, int64_t r0, int64_t r1)
{
    const xent_ctx *r = p;
    if (r->out->dtype == TG_F32)
        xent_rows_f32(r, r0, r1);
    else
        xent_rows_f64(r, r0, r1);
}

bool tg__xent_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *z = c->in[1];
    xent_ctx r = {.c = c, .out = out, .len = z->shape[z->rank - 1], .sparse = c->op == TG_OP_SPARSE_SOFTMAX_XENT};
    if (!labels_in_range(c))
        return false;
    if (r.len > 0)
        tg__parallel_for(out->size, tg__rows_grain(r.len, TG_GRAIN), xent_rows, &r);
    else /* no classes (float labels only): an empty sum */
        memset(out->data, 0, (size_t)out->size * tg__dsize(out->dtype));
    return true;
}

static tg_tensor *xent_grad(tg_loc loc, const tg_tensor *labels, const tg_tensor *logits, const tg_tensor *dy)
{
    return TG__APPLY(loc, TG_OP_XENT_GRAD, NULL, labels, logits, dy);
}

static tg_tensor *last_axis(tg_loc loc, const tg_tensor *t) { return tg_expand_dims_at(loc, t, -1); }

/* logits: xent_grad; float labels: -dy * log_softmax(logits) (integer labels have none). */
bool tg__xent_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    dx[1] = tg__grad_wanted(g, 1) ? xent_grad(l, g->in[0], g->in[1], g->dy) : NULL;
    if (tg__grad_wanted(g, 0) && tg_dtype_is_float(g->in[0]->dtype))
        dx[0] = tg_mul_at(l, tg_neg_at(l, last_axis(l, g->dy)), tg_log_softmax_at(l, g->in[1], -1));
    return !tg__grad_wanted(g, 1) || dx[1];
}

tg_tensor *tg_sparse_softmax_cross_entropy_with_logits_at(tg_loc loc, const tg_tensor *labels, const tg_tensor *logits)
{
    return TG__APPLY(loc, TG_OP_SPARSE_SOFTMAX_XENT, NULL, labels, logits);
}

tg_tensor *tg_softmax_cross_entropy_with_logits_at(tg_loc loc, const tg_tensor *labels, const tg_tensor *logits)
{
    return TG__APPLY(loc, TG_OP_SOFTMAX_XENT, NULL, labels, logits);
}

/* ---- xent_grad: dy * (softmax(z) * sum(labels) - labels) ------------------------------------------- */
bool tg__xent_grad_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    bool sparse = c->in[0]->dtype == TG_I32 || c->in[0]->dtype == TG_I64;
    const tg_tensor *z = c->in[1], *dy = c->in[2];
    if (!xent_inputs(c, sparse) || !tg__same_dtype(c, z, dy))
        return false;
    bool fits = dy->rank == z->rank - 1;
    for (int k = 0; fits && k < dy->rank; k++)
        fits = dy->shape[k] == z->shape[k];
    if (!fits) {
        tg__fail(c->loc, "tg_xent_grad: `dy` must have the shape of `logits` without its last axis");
        return false;
    }
    *shape = tg__shape(z);
    *dtype = z->dtype;
    return true;
}

static void xent_grad_rows(void *p, int64_t r0, int64_t r1)
{
    const xent_ctx *r = p;
    if (r->out->dtype == TG_F32)
        xent_grad_rows_f32(r, r0, r1);
    else
        xent_grad_rows_f64(r, r0, r1);
}

bool tg__xent_grad_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *z = c->in[1];
    xent_ctx r = {.c = c, .out = out, .len = z->shape[z->rank - 1], .sparse = !tg_dtype_is_float(c->in[0]->dtype)};
    if (!labels_in_range(c))
        return false;
    if (r.len > 0)
        tg__parallel_for(out->size / r.len, tg__rows_grain(r.len, TG_GRAIN), xent_grad_rows, &r);
    return true;
}

/* G = dy (P L - Y) with P = softmax(z), L = sum(labels) (1 for integer labels), Y the
 * labels (one-hot). With H the gradient of G:
 *   d dy     = sum(H * (P L - Y))          = sum(H * xent_grad(labels, z, 1))
 *   d z      = dy L P (H - sum(H P))       (softmax's backward)
 *   d labels = dy (sum(H P) - H)           (float labels only) */
bool tg__xent_grad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *labels = g->in[0], *z = g->in[1], *dy = g->in[2], *h = g->dy;
    bool dense = tg_dtype_is_float(labels->dtype);
    tg_reduce_opts last = {.axes = {.n = 1, .axis = {-1}}}, kept = {.axes = {.n = 1, .axis = {-1}}, .keepdims = true};
    if (tg__grad_wanted(g, 2))
        dx[2] = tg_sum_at(l, tg_mul_at(l, h, xent_grad(l, labels, z, tg_ones_like_at(l, dy))), last);
    if (!tg__grad_wanted(g, 1) && !(dense && tg__grad_wanted(g, 0)))
        return true;
    tg_tensor *p = tg_softmax_at(l, z, -1), *hp = tg_sum_at(l, tg_mul_at(l, h, p), kept);
    tg_tensor *d = last_axis(l, dy);
    if (tg__grad_wanted(g, 1)) {
        tg_tensor *scale = dense ? tg_mul_at(l, d, tg_sum_at(l, labels, kept)) : d;
        dx[1] = tg_mul_at(l, tg_mul_at(l, scale, p), tg_sub_at(l, h, hp));
    }
    if (dense && tg__grad_wanted(g, 0))
        dx[0] = tg_mul_at(l, d, tg_sub_at(l, hp, h));
    return true;
}
