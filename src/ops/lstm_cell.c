/* Keras's LSTM cell after its products, as one op (what recurrent.c runs per step):
 *
 *   lstm_cell(a, b, c_prev) -> (h, c)
 *       z = a + b (x W + bias, and h U: (batch, 4 units), gates i, f, g, o):
 *       c = sigmoid(f) c_prev + sigmoid(i) tanh(g), h = sigmoid(o) tanh(c)
 *   lstm_cell_grad(a, b, c_prev, c, dh, dc) -> (dz, dc_prev)
 *       its backward in one pass, the gates recomputed from a + b; dz is the gradient of
 *       both a and b
 *
 * Float32 takes Eigen's sigmoid and tanh, as TF's CPU kernels do (kernels/fastmath.h),
 * in one vectorised pass per row; float64 libm's, with activation.c's formulas. The
 * backward rule runs lstm_cell_grad; when a tape records the gradient (a second
 * derivative is wanted) it is the chain of public ops instead, and lstm_cell_grad's own
 * rule is that chain's vector-Jacobian product, so derivatives of any order work. Rows are
 * spread over the loop pool, one thread each. */
#include <math.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/fastmath.h"
#include "../kernels/parallel.h"

/* The tensors of one call: forward (h set) or backward (dz set). */
typedef struct cell_rows {
    const tg_tensor *a, *b, *cp, *c, *dh, *dc;
    tg_tensor *h, *dz, *dcp;
    int64_t units;
} cell_rows;

static inline float sig_f32(float a) { return tg__logistic_f32(a); }
static inline float sig_any_f32(float a) { return tg__logistic_any_f32(a); }
static inline float tanh_f32(float a) { return tg__tanh_f32(a); }
static inline int tail_f32(float a) { return tg__logistic_tail_f32(a); }
static inline double sig_f64(double a) { return a >= 0 ? 1 / (1 + exp(-a)) : exp(a) / (1 + exp(a)); }
static inline double sig_any_f64(double a) { return sig_f64(a); }
static inline double tanh_f64(double a) { return tanh(a); }
static inline int tail_f64(double a)
{
    (void)a;
    return 0;
}

#define T   float
#define SFX f32
#include "lstm_cell_tmpl.h"
#undef T
#undef SFX
#define T   double
#define SFX f64
#include "lstm_cell_tmpl.h"
#undef T
#undef SFX

/* ---- shapes ------------------------------------------------------------------------------------ */
/* a and b (batch, 4 units), c_prev (batch, units), and for lstm_cell_grad c, dh and dc of
 * c_prev's shape; one float dtype. */
bool tg__lstm_cell_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    static const char *const names[] = {"a", "b", "c_prev", "c", "dh", "dc"};
    const tg_tensor *a = c->in[0], *cp = c->in[2];
    if (!tg__require_float(c, a, "a"))
        return false;
    for (int k = 1; k < c->n; k++)
        if (!tg__same_dtype(c, a, c->in[k]))
            return false;
    int64_t rows = a->rank == 2 ? a->shape[0] : -1, units = cp->rank == 2 ? cp->shape[1] : -1;
    for (int k = 0; k < c->n; k++) {
        const tg_tensor *t = c->in[k];
        int64_t width = k < 2 ? 4 * units : units;
        if (t->rank != 2 || t->shape[0] != rows || t->shape[1] != width) {
            char sa[TG_SHAPE_STR_MAX], st[TG_SHAPE_STR_MAX];
            tg_shape as = tg__shape(a), ts = tg__shape(t);
            return tg__failb(c->loc,
                             "%s: a and b must be (batch, 4 * units), the others (batch, units) as c_prev; got a "
                             "%s and %s %s",
                             tg__op_name(c->op), tg__shape_str(&as, sa, sizeof sa), names[k],
                             tg__shape_str(&ts, st, sizeof st));
        }
    }
    bool grad = c->op == TG_OP_LSTM_CELL_GRAD;
    shape[0] = grad ? tg__shape(a) : tg__shape(cp);
    shape[1] = tg__shape(cp);
    dtype[0] = dtype[1] = a->dtype;
    return true;
}

/* ---- forward ----------------------------------------------------------------------------------- */
static void cell_range(void *p, int64_t r0, int64_t r1)
{
    const cell_rows *k = p;
    if (k->h->dtype == TG_F32)
        cell_rows_f32(k, r0, r1);
    else
        cell_rows_f64(k, r0, r1);
}

static void cell_grad_range(void *p, int64_t r0, int64_t r1)
{
    const cell_rows *k = p;
    if (k->dz->dtype == TG_F32)
        cell_grad_rows_f32(k, r0, r1);
    else
        cell_grad_rows_f64(k, r0, r1);
}

bool tg__lstm_cell_forward(const tg_call *c, tg_tensor *out)
{
    cell_rows k = {.a = c->in[0], .b = c->in[1], .cp = c->in[2], .c = c->outs[1], .h = out};
    k.units = k.cp->shape[1];
    if (k.units > 0)
        tg__parallel_for(k.cp->shape[0], tg__rows_grain(12 * k.units, TG_GRAIN / 4), cell_range, &k);
    return true;
}

bool tg__lstm_cell_grad_forward(const tg_call *c, tg_tensor *out)
{
    cell_rows k = {.a = c->in[0],
                   .b = c->in[1],
                   .cp = c->in[2],
                   .c = c->in[3],
                   .dh = c->in[4],
                   .dc = c->in[5],
                   .dz = out,
                   .dcp = c->outs[1]};
    k.units = k.cp->shape[1];
    if (k.units > 0)
        tg__parallel_for(k.cp->shape[0], tg__rows_grain(16 * k.units, TG_GRAIN / 4), cell_grad_range, &k);
    return true;
}

/* ---- backward ---------------------------------------------------------------------------------- */
static tg_tensor *act_grad(tg_loc loc, const tg_tensor *y, const tg_tensor *dy, tg_bias_act act)
{
    return TG__APPLY(loc, TG_OP_ACT_GRAD, &(tg_attrs){.act = act}, y, dy);
}

/* lstm_cell_grad's (dz, dc_prev) from public ops and act_grad, all differentiable; in:
 * a, b, c_prev, c, dh, dc. */
static bool grad_ops(tg_loc l, tg_tensor *const *in, tg_tensor **out)
{
    tg_tensor *z[4], *dh = in[4];
    if (tg_split_at(l, tg_add_at(l, in[0], in[1]), 4, z, (tg_split_opts){.axis = 1}) != 0)
        return false;
    tg_tensor *i = tg_sigmoid_at(l, z[0]), *f = tg_sigmoid_at(l, z[1]), *gt = tg_tanh_at(l, z[2]);
    tg_tensor *o = tg_sigmoid_at(l, z[3]), *tc = tg_tanh_at(l, in[3]);
    tg_tensor *dct = tg_add_at(l, in[5], act_grad(l, tc, tg_mul_at(l, dh, o), TG_BIAS_TANH));
    tg_tensor *dz[4] = {act_grad(l, i, tg_mul_at(l, dct, gt), TG_BIAS_SIGMOID),
                        act_grad(l, f, tg_mul_at(l, dct, in[2]), TG_BIAS_SIGMOID),
                        act_grad(l, gt, tg_mul_at(l, dct, i), TG_BIAS_TANH),
                        act_grad(l, o, tg_mul_at(l, dh, tc), TG_BIAS_SIGMOID)};
    out[0] = tg_concat_at(l, dz, 4, 1);
    out[1] = tg_mul_at(l, dct, f);
    return out[0] && out[1];
}

/* lstm_cell_grad, or when a tape records the gradient (a second derivative is wanted) the
 * same rules as public ops, so an outer tape differentiates them. */
bool tg__lstm_cell_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *in[] = {g->in[0], g->in[1], g->in[2], g->outs[1], g->dys[0], g->dys[1]}, *out[2];
    bool ok = tg__ctx()->n_recording
                  ? grad_ops(g->loc, in, out)
                  : tg__apply_n(g->loc, TG_OP_LSTM_CELL_GRAD, (const tg_tensor *const *)in, 6, NULL, 2, out) == 0;
    if (!ok)
        return false;
    dx[0] = out[0];
    dx[1] = tg__grad_wanted(g, 1) ? out[0] : NULL;
    dx[2] = tg__grad_wanted(g, 2) ? out[1] : NULL;
    return true;
}

/* lstm_cell_grad's own backward: the vector-Jacobian product of grad_ops, from a tape of
 * its own (an outer tape records it in turn, for higher orders). */
bool tg__lstm_cell_grad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tape *t = tg_tape_begin_at(g->loc, (tg_tape_opts){.watch_accessed_variables = false});
    if (!t)
        return false;
    for (int k = 0; k < 6; k++)
        tg_watch_at(g->loc, t, g->in[k]);
    tg_tensor *out[2];
    bool ok = grad_ops(g->loc, g->in, out);
    tg_tape_end_at(g->loc, t);
    ok = ok && tg_gradients_at(g->loc, t,
                               (tg_gradient_opts){.targets = out,
                                                  .n_targets = 2,
                                                  .sources = g->in,
                                                  .n_sources = 6,
                                                  .output_gradients = g->dys,
                                                  .unconnected = TG_UNCONNECTED_ZERO,
                                                  .out = dx}) == 0;
    tg_tape_free_at(g->loc, t);
    return ok;
}

int tg_lstm_cell_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, const tg_tensor *c_prev, tg_tensor **out)
{
    if (!out)
        return tg__failf(loc, "tg_lstm_cell: needs an array `out` of 2 tensors (h, c), got NULL");
    return tg__apply_n(loc, TG_OP_LSTM_CELL, (const tg_tensor *const[]){a, b, c_prev}, 3, NULL, 2, out);
}
