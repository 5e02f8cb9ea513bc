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
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/fastmath.h"
#include "../kernels/gemm.h"
#include "../kernels/parallel.h"

/* The tensors of one call: forward (h set) or backward (dz set). */
typedef struct cell_rows {
    const tg_tensor *a, *b, *cp, *c, *dh, *dc;
    tg_tensor *h, *dz, *dcp;
    int64_t units;
} cell_rows;

/* One step of lstm_sequence (forward: z set) or lstm_sequence_grad (dxw set): the
 * (time, batch, .) tensors' data, the previous c (c0 or the last step's) and the step's
 * buffers z (the product h U) or dhn and dcn (the next step's dh and dc). */
typedef struct seq_step {
    const void *xw, *z, *cp, *dhs, *dcs, *dgates, *dhn;
    void *gates, *hs, *cs, *dcn, *dxw;
    int64_t units, batch, step;
    bool f64;
} seq_step;

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

/* The backward of a grad op whose outputs the public ops of `ops` compute from its
 * inputs: their vector-Jacobian product, from a tape of its own (an outer tape records it
 * in turn, for higher orders). */
static bool vjp_of_ops(const tg_grad_ctx *g, bool (*ops)(tg_loc, tg_tensor *const *, tg_tensor **), tg_tensor **dx)
{
    tg_tape *t = tg_tape_begin_at(g->loc, (tg_tape_opts){.watch_accessed_variables = false});
    if (!t)
        return false;
    for (int k = 0; k < g->n; k++)
        tg_watch_at(g->loc, t, g->in[k]);
    tg_tensor *out[4];
    bool ok = ops(g->loc, g->in, out);
    tg_tape_end_at(g->loc, t);
    ok = ok && tg_gradients_at(g->loc, t,
                               (tg_gradient_opts){.targets = out,
                                                  .n_targets = g->n_out,
                                                  .sources = g->in,
                                                  .n_sources = g->n,
                                                  .output_gradients = g->dys,
                                                  .unconnected = TG_UNCONNECTED_ZERO,
                                                  .out = dx}) == 0;
    tg_tape_free_at(g->loc, t);
    return ok;
}

/* lstm_cell_grad's own backward: the vector-Jacobian product of grad_ops. */
bool tg__lstm_cell_grad_backward(const tg_grad_ctx *g, tg_tensor **dx) { return vjp_of_ops(g, grad_ops, dx); }

int tg_lstm_cell_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, const tg_tensor *c_prev, tg_tensor **out)
{
    if (!out)
        return tg__failf(loc, "tg_lstm_cell: needs an array `out` of 2 tensors (h, c), got NULL");
    return tg__apply_n(loc, TG_OP_LSTM_CELL, (const tg_tensor *const[]){a, b, c_prev}, 3, NULL, 2, out);
}

/* ---- lstm_sequence: the whole sequence in one op ------------------------------------------------ */
/* Time-major, as TF's BlockLSTM, so that each step's rows are one block:
 * lstm_sequence(xw, u, h0, c0) -> (hs, cs, gates): the steps s = 0 .. time - 1 of
 *     z = xw[s] + h U, gates = (sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)) of z's blocks,
 *     c = f c + i g, h = o tanh(c), from h0 and c0; hs and cs (time, batch, units) are every
 *     step's h and c, gates (time, batch, 4 units) every step's activated gates, kept for
 *     the backward pass (TF's BlockLSTM keeps them too).
 * lstm_sequence_grad(u, h0, c0, hs, cs, gates, dhs, dcs, dgates) -> (dxw, du, dh0, dc0):
 *     the steps in reverse, each one product dz U^T for the previous step's dh; then du as
 *     ONE product of every step's previous h with its dz (all steps and rows at once). dxw
 *     is every step's dz. */
enum { SEQ_XW, SEQ_U, SEQ_H0, SEQ_C0 };

static bool same_shape(const tg_shape *a, const tg_shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

/* Shapes of the inputs: what each must be, from xw (forward) or hs (grad) and u. */
bool tg__lstm_sequence_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    static const char *const fwd_names[] = {"xw", "recurrent_kernel", "h0", "c0"};
    static const char *const grad_names[] = {
        "recurrent_kernel", "h0", "c0", "hs", "cs", "gates", "dhs", "dcs", "dgates"};
    bool grad = c->op == TG_OP_LSTM_SEQUENCE_GRAD;
    const char *const *names = grad ? grad_names : fwd_names;
    const tg_tensor *seq = c->in[grad ? 3 : 0], *u = c->in[grad ? 0 : 1];
    if (!tg__require_float(c, c->in[0], names[0]))
        return false;
    for (int k = 1; k < c->n; k++)
        if (!tg__same_dtype(c, c->in[0], c->in[k]))
            return false;
    int64_t t = seq->rank == 3 ? seq->shape[0] : -1, b = seq->rank == 3 ? seq->shape[1] : -1;
    int64_t n = u->rank == 2 ? u->shape[0] : -1;
    tg_shape want_u = TG_SHAPE(n, 4 * n), state = TG_SHAPE(b, n), h_seq = TG_SHAPE(t, b, n),
             z_seq = TG_SHAPE(t, b, 4 * n);
    tg_shape fwd[] = {z_seq, want_u, state, state},
             bwd[] = {want_u, state, state, h_seq, h_seq, z_seq, h_seq, h_seq, z_seq};
    const tg_shape *want = grad ? bwd : fwd;
    for (int k = 0; k < c->n; k++) {
        tg_shape got = tg__shape(c->in[k]);
        if (b < 0 || n < 0 || !same_shape(&got, &want[k])) {
            char sg[TG_SHAPE_STR_MAX], ss[TG_SHAPE_STR_MAX];
            tg_shape ts = tg__shape(seq), us = tg__shape(u);
            return tg__failb(c->loc,
                             "%s: %s must be (time, batch, %s) and recurrent_kernel (units, 4 * units), the states "
                             "(batch, units); got %s %s and recurrent_kernel %s",
                             tg__op_name(c->op), names[grad ? 3 : 0], grad ? "units" : "4 * units", names[grad ? 3 : 0],
                             tg__shape_str(&ts, sg, sizeof sg), tg__shape_str(&us, ss, sizeof ss));
        }
    }
    if (grad) {
        shape[0] = z_seq, shape[1] = want_u, shape[2] = shape[3] = state;
    } else {
        shape[0] = shape[1] = h_seq, shape[2] = z_seq;
    }
    for (int k = 0; k < c->n_out; k++)
        dtype[k] = c->in[0]->dtype;
    return true;
}

static void seq_range(void *p, int64_t r0, int64_t r1)
{
    const seq_step *k = p;
    if (k->f64)
        seq_rows_f64(k, r0, r1);
    else
        seq_rows_f32(k, r0, r1);
}

static void seq_grad_range(void *p, int64_t r0, int64_t r1)
{
    const seq_step *k = p;
    if (k->f64)
        seq_grad_rows_f64(k, r0, r1);
    else
        seq_grad_rows_f32(k, r0, r1);
}

/* C = op(A) B + beta C for either float dtype. */
static bool gemm(bool f64, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a, int64_t lda, const void *b,
                 int64_t ldb, double beta, void *c, int64_t ldc)
{
    return f64 ? tg__gemm_f64(ta, tb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
               : tg__gemm_f32(ta, tb, m, n, k, 1, a, lda, b, ldb, (float)beta, c, ldc);
}

static size_t elem_size(const tg_tensor *t) { return t->dtype == TG_F64 ? sizeof(double) : sizeof(float); }

/* Row `at` of a tensor whose rows hold `width` elements. */
static const void *row_of(const tg_tensor *t, int64_t at, int64_t width)
{
    return (const char *)t->data + (size_t)(at * width) * elem_size(t);
}

/* Whether every element of t is zero (+0 or -0): the gradient of an output nothing used. */
static bool all_zero(const tg_tensor *t)
{
    if (t->dtype == TG_F64) {
        const double *v = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (v[i] != 0)
                return false;
    } else {
        const float *v = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (v[i] != 0)
                return false;
    }
    return true;
}

bool tg__lstm_sequence_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *xw = c->in[SEQ_XW], *u = c->in[SEQ_U];
    int64_t t = xw->shape[0], b = xw->shape[1], n = u->shape[0];
    bool f64 = xw->dtype == TG_F64;
    if (b == 0 || t == 0 || n == 0)
        return true;
    void *z = malloc((size_t)(b * 4 * n) * elem_size(xw));
    if (!z)
        return tg__failb(c->loc, "tg_lstm_sequence: out of memory for a (%lld, %lld) step buffer", (long long)b,
                         (long long)(4 * n));
    seq_step k = {.xw = xw->data,
                  .z = z,
                  .gates = c->outs[2]->data,
                  .hs = out->data,
                  .cs = c->outs[1]->data,
                  .units = n,
                  .batch = b,
                  .f64 = f64};
    int64_t grain = tg__rows_grain(12 * n, TG_GRAIN / 4);
    bool ok = true, h0_zero = all_zero(c->in[SEQ_H0]); /* Keras's default initial state: no product */
    for (int64_t s = 0; ok && s < t; s++) {
        /* the previous h and c: the initial states, or step s - 1's block of hs and cs */
        const void *hp = s ? row_of(out, (s - 1) * b, n) : c->in[SEQ_H0]->data;
        k.cp = s ? row_of(c->outs[1], (s - 1) * b, n) : c->in[SEQ_C0]->data;
        k.step = s;
        if (s == 0 && h0_zero)
            memset(z, 0, (size_t)(b * 4 * n) * elem_size(xw));
        else
            ok = gemm(f64, false, false, b, 4 * n, n, hp, n, u->data, 4 * n, 0, z, 4 * n);
        if (ok)
            tg__parallel_for(b, grain, seq_range, &k);
    }
    free(z);
    return ok || tg__failb(c->loc, "tg_lstm_sequence: out of memory for the product's buffers");
}

bool tg__lstm_sequence_grad_forward(const tg_call *c, tg_tensor *out)
{
    enum { U, H0, C0, HS, CS, GATES, DHS, DCS, DGATES };
    const tg_tensor *const *in = c->in;
    int64_t t = in[HS]->shape[0], b = in[HS]->shape[1], n = in[U]->shape[0];
    bool f64 = out->dtype == TG_F64;
    size_t es = elem_size(out);
    tg_tensor *du = c->outs[1], *dh0 = c->outs[2], *dc0 = c->outs[3];
    memset(du->data, 0, (size_t)du->size * es);
    memset(dh0->data, 0, (size_t)dh0->size * es); /* the step after the last passes no dh or dc back */
    memset(dc0->data, 0, (size_t)dc0->size * es);
    if (b == 0 || t == 0 || n == 0)
        return true;
    /* dh0 and dc0 are the running dh and dc passed back from step to step */
    seq_step k = {.gates = in[GATES]->data,
                  .cs = in[CS]->data,
                  .dhs = in[DHS]->data,
                  .dcs = in[DCS]->data,
                  .dgates = all_zero(in[DGATES]) ? NULL : in[DGATES]->data,
                  .dhn = dh0->data,
                  .dcn = dc0->data,
                  .dxw = out->data,
                  .units = n,
                  .batch = b,
                  .f64 = f64};
    int64_t grain = tg__rows_grain(16 * n, TG_GRAIN / 4);
    bool ok = true;
    for (int64_t s = t - 1; ok && s >= 0; s--) {
        k.cp = s ? row_of(in[CS], (s - 1) * b, n) : in[C0]->data;
        k.step = s;
        tg__parallel_for(b, grain, seq_grad_range, &k);
        ok = gemm(f64, false, true, b, n, 4 * n, row_of(out, s * b, 4 * n), 4 * n, in[U]->data, 4 * n, 0, dh0->data, n);
    }
    /* du: h0 with step 0's dz, then hs's first time - 1 steps with the rest, as one product */
    ok = ok && (all_zero(in[H0]) ||
                gemm(f64, true, false, n, 4 * n, b, in[H0]->data, n, out->data, 4 * n, 0, du->data, 4 * n));
    ok = ok && (t == 1 || gemm(f64, true, false, n, 4 * n, (t - 1) * b, in[HS]->data, n, row_of(out, b, 4 * n), 4 * n,
                               1, du->data, 4 * n));
    return ok || tg__failb(c->loc, "tg_lstm_sequence_grad: out of memory for the product's buffers");
}

/* lstm_sequence_grad's outputs from public ops, step by step (all differentiable); in: u,
 * h0, c0, hs, cs, gates, dhs, dcs, dgates. */
static bool seq_grad_ops(tg_loc l, tg_tensor *const *in, tg_tensor **out)
{
    int64_t t = tg_dim(in[3], 0), b = tg_dim(in[3], 1), n = tg_dim(in[0], 0);
    tg_dtype d = tg_dtype_of(in[0]);
    tg_tensor **steps = calloc((size_t)(7 * t + 1), sizeof(tg_tensor *));
    if (!steps)
        return tg__failb(l, "tg_lstm_sequence: out of memory");
    tg_tensor **hs = steps, **cs = hs + t, **gs = cs + t, **dhs = gs + t, **dcs = dhs + t, **dgs = dcs + t,
              **dz = dgs + t;
    bool ok = true;
    for (int k = 3; ok && t > 0 && k < 9; k++)
        ok = tg_unstack_at(l, in[k], (int)t, steps + (k - 3) * t, 0) == 0;
    tg_tensor *dh = NULL, *dc = NULL, *du = tg_fill_at(l, d, TG_SHAPE(n, 4 * n), 0.0);
    for (int64_t s = t - 1; ok && s >= 0; s--) {
        tg_tensor *g[4], *dg[4], *hp = s ? hs[s - 1] : in[1], *cp = s ? cs[s - 1] : in[2];
        ok = tg_split_at(l, gs[s], 4, g, (tg_split_opts){.axis = 1}) == 0 &&
             tg_split_at(l, dgs[s], 4, dg, (tg_split_opts){.axis = 1}) == 0;
        if (!ok)
            break;
        tg_tensor *dh_s = dh ? tg_add_at(l, dhs[s], dh) : dhs[s], *dc_s = dc ? tg_add_at(l, dcs[s], dc) : dcs[s];
        tg_tensor *tc = tg_tanh_at(l, cs[s]);
        tg_tensor *dct = tg_add_at(l, dc_s, act_grad(l, tc, tg_mul_at(l, dh_s, g[3]), TG_BIAS_TANH));
        tg_tensor *parts[4] = {act_grad(l, g[0], tg_add_at(l, tg_mul_at(l, dct, g[2]), dg[0]), TG_BIAS_SIGMOID),
                               act_grad(l, g[1], tg_add_at(l, tg_mul_at(l, dct, cp), dg[1]), TG_BIAS_SIGMOID),
                               act_grad(l, g[2], tg_add_at(l, tg_mul_at(l, dct, g[0]), dg[2]), TG_BIAS_TANH),
                               act_grad(l, g[3], tg_add_at(l, tg_mul_at(l, dh_s, tc), dg[3]), TG_BIAS_SIGMOID)};
        dz[s] = tg_concat_at(l, parts, 4, 1);
        dc = tg_mul_at(l, dct, g[1]);
        dh = tg_matmul_at(l, dz[s], in[0], (tg_matmul_opts){.transpose_b = true});
        du = tg_add_at(l, du, tg_matmul_at(l, hp, dz[s], (tg_matmul_opts){.transpose_a = true}));
        ok = dz[s] && dh && dc && du;
    }
    out[0] = ok ? t > 0 ? tg_stack_at(l, dz, (int)t, 0) : tg_fill_at(l, d, TG_SHAPE(0, b, 4 * n), 0.0) : NULL;
    out[1] = du;
    out[2] = dh ? dh : tg_fill_at(l, d, TG_SHAPE(b, n), 0.0);
    out[3] = dc ? dc : tg_fill_at(l, d, TG_SHAPE(b, n), 0.0);
    free(steps);
    return ok && out[0] && out[1] && out[2] && out[3];
}

/* lstm_sequence_grad, or when a tape records the gradient the same rules as public ops. */
bool tg__lstm_sequence_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *in[] = {g->in[SEQ_U], g->in[SEQ_H0], g->in[SEQ_C0], g->outs[0], g->outs[1],
                       g->outs[2],   g->dys[0],     g->dys[1],     g->dys[2]},
              *out[4];
    bool ok = tg__ctx()->n_recording
                  ? seq_grad_ops(g->loc, in, out)
                  : tg__apply_n(g->loc, TG_OP_LSTM_SEQUENCE_GRAD, (const tg_tensor *const *)in, 9, NULL, 4, out) == 0;
    if (!ok)
        return false;
    for (int k = 0; k < 4; k++)
        dx[k] = tg__grad_wanted(g, k) ? out[k] : NULL;
    return true;
}

int tg_lstm_sequence_at(tg_loc loc, const tg_tensor *xw, const tg_tensor *recurrent_kernel, const tg_tensor *h0,
                        const tg_tensor *c0, tg_tensor **out)
{
    if (!out)
        return tg__failf(loc, "tg_lstm_sequence: needs an array `out` of 3 tensors (hs, cs, gates), got NULL");
    return tg__apply_n(loc, TG_OP_LSTM_SEQUENCE, (const tg_tensor *const[]){xw, recurrent_kernel, h0, c0}, 4, NULL, 3,
                       out);
}
