/* The differential op-graph gradient fuzzer (tg_fuzz_opgraph, see targets.h).
 *
 * The bytes are a small program over the op table's rows: each step picks a row
 * (generically: any row, so ops added later are covered), operands among the values made
 * so far, and attribute bytes for the row's sampler (op_samples.c). The program runs in
 * float64 with a tape; L is a fixed weighted sum of every value it made. The tape's
 * gradient of L is checked against central finite differences, and so is the gradient of
 * s = sum(dL/dx * v) (nested tapes: Hessian-vector products, the second order).
 *
 * Kinks: a step is dropped when its inputs lie within DELTA of a kink of its row
 * (op.h: tg_op_def.kinks, narrowed by the sampler) or it makes a value that is not
 * finite or is huge. A row's domain (tg_op_def.domain) is met by mapping the operand
 * first (x^2 + c > 0). The finite differences then step far less than DELTA. If the tape
 * and the central difference disagree, the difference is taken again with half the step:
 * when the two differences disagree with each other beyond the tolerance, the point is
 * not smooth (a kink the descriptions missed) and is skipped and counted; otherwise the
 * tape must match their Richardson extrapolation, or it is wrong and the target fails.
 * Only points where L itself is not smooth are skipped, so a wrong gradient rule cannot
 * hide. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_samples.h"
#include "targets.h"

#define LOC TG_LOC

enum { MAX_STEPS = 6, MAX_VALUES = 2 + MAX_STEPS, MAX_ELEMS = 64, STEP_BYTES = 10, N_PARAM = 7 };

static const double DELTA = 1e-3; /* distance kept from kinks */
static const double H1 = 1e-6;    /* finite-difference steps: first order, second order */
static const double H2 = 1e-5;
static const double RTOL = 1e-5; /* relative tolerance of a derivative */
static const double BIG = 1e4;   /* larger values are dropped */

long tg_fuzz_opgraph_checked, tg_fuzz_opgraph_skipped;

typedef struct step {
    tg_op_kind op;
    uint8_t operands, domain;
    const uint8_t *param;
    size_t n_param;
    bool kept;   /* decided by the first run */
    bool frozen; /* stop_gradient or no gradient (the path is cut): later runs reuse the first run's value */
    double value[MAX_ELEMS];
    tg_shape shape;
} step;

typedef struct program {
    int n_src, n_steps;
    tg_shape src_shape[2];
    double src[2][8];
    step steps[MAX_STEPS];
    const char *why; /* why the first run failed, when it did */
} program;

/* ---- decoding --------------------------------------------------------------------------------- */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void decode(program *p, const uint8_t *data, size_t size)
{
    static const tg_shape shapes[] = {{0}, {1, {4}}, {2, {2, 3}}, {2, {3, 1}}, {3, {2, 2, 2}}, {4, {1, 2, 3, 1}}};
    uint64_t seed = 0;
    for (size_t i = 0; i < 8 && i < size; i++)
        seed |= (uint64_t)data[i] << (8 * i);
    uint8_t cfg = size > 8 ? data[8] : 0;
    memset(p, 0, sizeof *p);
    p->n_src = 1 + (cfg & 1);
    for (int k = 0; k < p->n_src; k++) {
        p->src_shape[k] = shapes[(cfg >> (1 + 3 * k)) % 6];
        for (int i = 0; i < 8; i++)
            p->src[k][i] = -2 + 4 * (double)(splitmix(&seed) >> 11) / 9007199254740992.0;
    }
    for (size_t at = 9; at < size && p->n_steps < MAX_STEPS; at += STEP_BYTES) {
        step *s = &p->steps[p->n_steps++];
        s->op = (tg_op_kind)(1 + data[at] % (TG_OP_COUNT - 1));
        s->operands = at + 1 < size ? data[at + 1] : 0;
        s->domain = at + 2 < size ? data[at + 2] : 0;
        s->param = data + (at + 3 < size ? at + 3 : size);
        s->n_param = at + 3 < size ? (size - at - 3 < N_PARAM ? size - at - 3 : N_PARAM) : 0;
        s->kept = true;
        s->frozen = tg__op_table[s->op].grad == TG_GRAD_STOP || tg__op_table[s->op].grad == TG_GRAD_NONE;
    }
}

/* ---- kinks ----------------------------------------------------------------------------------------- */
static int values_of(const tg_tensor *t, double *v)
{
    int64_t n = t ? tg_size(t) : -1;
    return n >= 0 && n <= MAX_ELEMS && tg_copy_out_f64(t, v, n) == 0 ? (int)n : -1;
}

static bool near_zero(const tg_tensor *t)
{
    double v[MAX_ELEMS];
    int n = values_of(t, v);
    for (int i = 0; i < n; i++)
        if (fabs(v[i]) < DELTA)
            return true;
    return n < 0;
}

/* Any two elements of the inputs (together) within DELTA of each other. */
static bool near_ties(const tg_sample *s)
{
    double v[4 * MAX_ELEMS];
    int n = 0;
    for (int k = 0; k < s->n_in; k++) {
        int m = values_of(s->in[k], v + n);
        if (m < 0)
            return true;
        n += m;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (fabs(v[i] - v[j]) < DELTA * (1 + fabs(v[i])))
                return true;
    return false;
}

static bool near_kink(const tg_sample *s)
{
    for (int k = 0; k < s->n_zero; k++)
        if (near_zero(s->zero[k]))
            return true;
    if ((s->kinks & TG_KINK_TIES) && near_ties(s))
        return true;
    for (int k = 0; k < s->n_in; k++) {
        double v[MAX_ELEMS];
        int n = values_of(s->in[k], v);
        for (int i = 0; i < n; i++) {
            double x = v[i], half = 2 * x - nearbyint(2 * x);
            if (((s->kinks & TG_KINK_ZERO) && fabs(x) < DELTA) ||
                ((s->kinks & TG_KINK_BOUNDS) && (fabs(x - s->lo) < DELTA || fabs(x - s->hi) < DELTA)) ||
                ((s->kinks & TG_KINK_STEPS) && fabs(half) < 2 * DELTA))
                return true;
        }
        if (n < 0)
            return true;
    }
    return false;
}

/* ---- one run -------------------------------------------------------------------------------------- */
/* The row's domain met by mapping one operand: x^2 + c (> 0), x^2 + c - 1 (> -1),
 * x^2 + c + 1 (> 1), +-(x^2 + c) (!= 0), s tanh(x) with s < 1 (in (-1, 1)). */
static tg_tensor *in_domain(const step *st, tg_tensor *x, int k)
{
    tg_op_domain d = tg__op_table[st->op].domain;
    bool nonzero = (k == 0 && d == TG_DOMAIN_NONZERO_0) || (k == 1 && d == TG_DOMAIN_NONZERO_1);
    bool mapped = nonzero || (k == 0 && (d == TG_DOMAIN_POSITIVE || d == TG_DOMAIN_ABOVE_MINUS_ONE ||
                                         d == TG_DOMAIN_ABOVE_ONE || d == TG_DOMAIN_UNIT_OPEN));
    if (!mapped)
        return x;
    if (d == TG_DOMAIN_UNIT_OPEN)
        return tg_mul_at(LOC, tg_tanh_at(LOC, x), tg_scalar_like_at(LOC, x, 0.2 + (st->domain & 127) / 200.0));
    double c = 0.1 + (st->domain & 127) / 128.0;
    c += d == TG_DOMAIN_ABOVE_MINUS_ONE ? -1 : d == TG_DOMAIN_ABOVE_ONE ? 1 : 0;
    tg_tensor *y = tg_add_at(LOC, tg_square_at(LOC, x), tg_scalar_like_at(LOC, x, c));
    return nonzero && (st->domain & 128) ? tg_neg_at(LOC, y) : y;
}

static tg_tensor *weights_like(const tg_tensor *t, int k)
{
    double w[MAX_ELEMS];
    for (int64_t i = 0; i < tg_size(t); i++)
        w[i] = 0.3 + (double)((k * 31 + i * 17) % 13) / 10;
    return tg_tensor_from_at(LOC, TG_F64, tg_shape_of(t), w);
}

/* Steps kept by the first run, on values[0..n): returns the step's value, or NULL when the
 * first run drops it (`first`) or the program fails (p->why). */
static tg_tensor *run_step(program *p, step *st, tg_tensor **values, int n, bool first)
{
    const tg_op_sampler *r = &tg_op_samplers[st->op];
    if (!r->fn)
        return NULL;
    if (!first && st->frozen)
        return tg_tensor_from_at(LOC, TG_F64, st->shape, st->value);
    tg_tensor *x[3] = {0};
    for (int k = 0; k < r->arity; k++) {
        int back = (st->operands >> (2 * k) & 3) % (n < 4 ? n : 4);
        x[k] = in_domain(st, values[n - 1 - back], k);
    }
    tg_sample s = {.op = st->op, .param = st->param, .n_param = st->n_param};
    tg_tensor *y = tg_sample_run(&s, x);
    if (y && tg_dtype_of(y) != TG_F64)
        y = tg_cast_at(LOC, y, TG_F64); /* bool, index and float32 results: constants */
    if (!y) {
        p->why = "a sampled call failed";
        return NULL;
    }
    if (!first)
        return y;
    double v[MAX_ELEMS];
    int m = values_of(y, v);
    st->kept = m > 0 && !near_kink(&s);
    for (int i = 0; i < m && st->kept; i++)
        st->kept = isfinite(v[i]) && fabs(v[i]) <= BIG;
    if (st->kept && st->frozen) {
        memcpy(st->value, v, sizeof(double) * (size_t)m);
        st->shape = tg_shape_of(y);
    }
    return st->kept ? y : NULL;
}

/* L = sum over every value made of sum(value * weights); *mag: sum of |terms| (the
 * rounding scale). NULL with p->why when something failed. */
static tg_tensor *evaluate(program *p, tg_tensor *const *src, bool first, double *mag)
{
    tg_tensor *values[MAX_VALUES], *terms = NULL;
    int n = 0;
    for (int k = 0; k < p->n_src; k++)
        values[n++] = src[k];
    for (int i = 0; i < p->n_steps; i++) {
        step *st = &p->steps[i];
        if (!st->kept)
            continue;
        tg_clear_error();
        tg_tensor *y = run_step(p, st, values, n, first);
        if (p->why) {
            fprintf(stderr, "opgraph: step %d (%s): %s\n", i, tg__op_table[st->op].name,
                    tg_last_error() ? tg_last_error() : "no message");
            return NULL;
        }
        if (!y)
            continue;
        tg_tensor *t = tg_mul_at(LOC, y, weights_like(y, n));
        if (mag)
            *mag += tg_item(tg_sum_at(LOC, tg_abs_at(LOC, t), (tg_reduce_opts){0}));
        tg_tensor *sum = tg_sum_at(LOC, t, (tg_reduce_opts){0});
        terms = terms ? tg_add_at(LOC, terms, sum) : sum;
        values[n++] = y;
    }
    return terms ? terms : tg_scalar_at(LOC, TG_F64, 0.0);
}

static tg_tensor *source(const program *p, int k, const double *v)
{
    return tg_tensor_from_at(LOC, TG_F64, p->src_shape[k], v);
}

static int64_t src_size(const program *p, int k)
{
    int64_t n = 1;
    for (int i = 0; i < p->src_shape[k].rank; i++)
        n *= p->src_shape[k].dims[i];
    return n;
}

/* L (order 1) or s = sum(dL/dx * dir) (order 2) at the sources src; NAN when the run
 * failed. */
static double value_at(program *p, double src[2][8], int order, const double *dir)
{
    tg_scope *sc = tg_scope_begin();
    tg_tensor *x[2];
    for (int k = 0; k < p->n_src; k++)
        x[k] = source(p, k, src[k]);
    double out = NAN;
    if (order == 1) {
        tg_tensor *L = evaluate(p, x, false, NULL);
        out = L ? tg_item(L) : NAN;
    } else {
        tg_tape *tape = tg_tape_begin();
        for (int k = 0; k < p->n_src; k++)
            tg_watch(tape, x[k]);
        tg_tensor *L = evaluate(p, x, false, NULL), *g[2] = {0};
        tg_tape_end(tape);
        if (L && tg_gradients(tape, .targets = &L, .n_targets = 1, .sources = x, .n_sources = p->n_src,
                              .unconnected = TG_UNCONNECTED_ZERO, .out = g) == 0) {
            double s = 0;
            for (int k = 0; k < p->n_src; k++) {
                double gv[8];
                tg_copy_out_f64(g[k], gv, src_size(p, k));
                for (int64_t i = 0; i < src_size(p, k); i++)
                    s += gv[i] * dir[k * 8 + i];
            }
            out = s;
        }
        tg_tape_free(tape);
    }
    tg_scope_end(sc);
    return out;
}

/* The central difference of order `order`'s function along source k, element i. */
static double central(program *p, int order, const double *dir, int k, int64_t i, double h)
{
    double x[2][8];
    memcpy(x, p->src, sizeof x);
    double saved = x[k][i];
    x[k][i] = saved + h;
    double up = value_at(p, x, order, dir);
    x[k][i] = saved - h;
    double down = value_at(p, x, order, dir);
    return (up - down) / (2 * h);
}

/* The program's steps; a dropped one in brackets. */
static void describe(const program *p)
{
    fprintf(stderr, "opgraph program:");
    for (int i = 0; i < p->n_steps; i++)
        fprintf(stderr, p->steps[i].kept ? " %s" : " [%s]", tg__op_table[p->steps[i].op].name);
    fprintf(stderr, "\n");
}

enum verdict { MATCH, NOT_SMOOTH, MISMATCH };

/* The tape's t against central differences d1 (step h) and d2 (h/2). Smooth here if the
 * two agree; then Richardson's extrapolation removes the h^2 error they share, and t must
 * match it. */
static enum verdict judge(double t, double d1, double d2, double tol)
{
    double rich = (4 * d2 - d1) / 3;
    if (fabs(t - rich) <= 2 * tol)
        return MATCH;
    return isnan(d1) || isnan(d2) || fabs(d1 - d2) > tol ? NOT_SMOOTH : MISMATCH;
}

/* Compares the tape's derivatives `tape` (order 1: dL/dx; 2: H v) with central differences. */
static int compare(program *p, int order, const double *dir, const double *tape, double mag)
{
    double h = order == 1 ? H1 : H2;
    double round = 1e-13 * (1 + mag) / h; /* the rounding of the function values, divided by h */
    for (int k = 0; k < p->n_src; k++)
        for (int64_t i = 0; i < src_size(p, k); i++) {
            double t = tape[k * 8 + i], d1 = central(p, order, dir, k, i, h);
            double tol = RTOL * (1 + fabs(d1)) + 4 * round;
            if (fabs(t - d1) <= tol) { /* the common case: one difference is enough */
                tg_fuzz_opgraph_checked++;
                continue;
            }
            double d2 = central(p, order, dir, k, i, h / 2);
            enum verdict v = judge(t, d1, d2, tol);
            tg_fuzz_opgraph_checked += v == MATCH;
            tg_fuzz_opgraph_skipped += v == NOT_SMOOTH;
            if (v != MISMATCH)
                continue;
            describe(p);
            fprintf(stderr,
                    "opgraph: order %d, source %d element %lld: tape %.12g, central differences %.12g (h) "
                    "and %.12g (h/2), tolerance %.3g\n",
                    order, k, (long long)i, t, d1, d2, tol);
            return 1;
        }
    return 0;
}

/* ---- the target ---------------------------------------------------------------------------------------- */
/* The first run, under two tapes: L's gradient g, and the gradient of s = sum(g * dir). */
static int first_run(program *p, const double *dir, double *g, double *hv, double *mag1, double *mag2)
{
    int rc = 0;
    tg_tensor *x[2], *gr[2] = {0}, *hvr[2] = {0};
    for (int k = 0; k < p->n_src; k++)
        x[k] = source(p, k, p->src[k]);
    tg_tape *outer = tg_tape_begin(), *inner = tg_tape_begin();
    for (int k = 0; k < p->n_src; k++) {
        tg_watch(outer, x[k]);
        tg_watch(inner, x[k]);
    }
    tg_tensor *L = evaluate(p, x, true, mag1);
    tg_tape_end(inner);
    if (!L || tg_gradients(inner, .targets = &L, .n_targets = 1, .sources = x, .n_sources = p->n_src,
                           .unconnected = TG_UNCONNECTED_ZERO, .out = gr) != 0) {
        if (!p->why) /* evaluate said why it failed */
            fprintf(stderr, "opgraph: the gradient failed: %s\n", tg_last_error());
        tg_tape_free(inner);
        tg_tape_free(outer);
        return 1;
    }
    tg_tensor *s = tg_scalar_at(LOC, TG_F64, 0.0);
    for (int k = 0; k < p->n_src; k++)
        s = tg_add_at(LOC, s, tg_sum_at(LOC, tg_mul_at(LOC, gr[k], source(p, k, dir + 8 * k)), (tg_reduce_opts){0}));
    tg_tape_end(outer);
    if (tg_gradients(outer, .targets = &s, .n_targets = 1, .sources = x, .n_sources = p->n_src,
                     .unconnected = TG_UNCONNECTED_ZERO, .out = hvr) != 0) {
        fprintf(stderr, "opgraph: the second-order gradient failed: %s\n", tg_last_error());
        rc = 1;
    }
    for (int k = 0; k < p->n_src && rc == 0; k++) {
        tg_copy_out_f64(gr[k], g + 8 * k, src_size(p, k));
        tg_copy_out_f64(hvr[k], hv + 8 * k, src_size(p, k));
        for (int64_t i = 0; i < src_size(p, k); i++)
            *mag2 += fabs(g[8 * k + i] * dir[8 * k + i]);
    }
    tg_tape_free(inner);
    tg_tape_free(outer);
    return rc;
}

int tg_fuzz_opgraph(const uint8_t *data, size_t size)
{
    tg_fuzz_runs++;
    program p;
    decode(&p, data, size);
    double dir[16], g[16] = {0}, hv[16] = {0}, mag1 = 0, mag2 = 0;
    for (int i = 0; i < 16; i++)
        dir[i] = 0.5 + (double)(i * 7 % 11) / 10;
    tg_clear_error();
    tg_scope *sc = tg_scope_begin();
    if (!sc)
        return 1;
    int rc = first_run(&p, dir, g, hv, &mag1, &mag2);
    tg_scope_end(sc);
    if (rc != 0) {
        describe(&p);
        return 1;
    }
    int kept = 0;
    for (int i = 0; i < p.n_steps; i++)
        kept += p.steps[i].kept;
    if (getenv("TAPEGRAD_OPGRAPH_TRACE")) /* what each input runs */
        describe(&p);
    if (kept == 0) {
        tg_fuzz_rejected++; /* nothing to check: every step was dropped */
        return 0;
    }
    rc = compare(&p, 1, dir, g, mag1);
    return rc ? rc : compare(&p, 2, dir, hv, mag1 + mag2);
}
