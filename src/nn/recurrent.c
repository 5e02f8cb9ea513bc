/* Keras's recurrent layers, SimpleRNN, LSTM and GRU (keras/src/layers/rnn/), made of ops.
 *
 * The inputs' product with the kernel is one matmul over every step; each step then adds
 * the state's product with the recurrent kernel and applies the cell's formula. A tape
 * records the steps, so the gradient is backpropagation through time. */
#include <stdlib.h>

#include "layer_impl.h"

typedef enum { CELL_SIMPLE, CELL_LSTM, CELL_GRU } cell_kind;

typedef struct cell {
    cell_kind kind;
    int gates; /* 1, 4 or 3 blocks of units in the kernels */
    const char *name;
} cell;

static const cell cells[] = {
    [CELL_SIMPLE] = {CELL_SIMPLE, 1, "SimpleRNN"},
    [CELL_LSTM] = {CELL_LSTM, 4, "LSTM"},
    [CELL_GRU] = {CELL_GRU, 3, "GRU"},
};

enum { KERNEL, RECURRENT, BIAS };

static cell_kind kind_of(const tg_layer *l);

/* ---- build ------------------------------------------------------------------------------------- */
/* LSTM's unit_forget_bias: the bias of its forget gate (the second block) starts at 1. */
static bool forget_bias_ones(tg_layer *l, tg_loc loc)
{
    int64_t u = l->o.rnn.units;
    tg_scope *scope = tg_scope_begin_at(loc);
    tg_tensor *b = l->vars[BIAS];
    double *v = malloc(sizeof(double) * (size_t)(4 * u));
    bool ok = scope && v && tg_copy_out_f64_at(loc, b, v, 4 * u) == 0;
    for (int64_t i = u; ok && i < 2 * u; i++)
        v[i] = 1.0;
    ok = ok && tg_assign_at(loc, b, tg_cast_at(loc, tg_tensor_from_at(loc, TG_F64, tg_shape_of(b), v), l->dtype)) == 0;
    free(v);
    if (scope)
        tg_scope_end_at(loc, scope);
    return ok;
}

static bool rnn_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_rnn_opts *o = &l->o.rnn;
    const cell *c = &cells[kind_of(l)];
    if (in->rank != 2) {
        char s[TG_SHAPE_STR_MAX];
        return tg__failb(loc,
                         "%s \"%s\": expects inputs of shape (batch, time, features); one example has shape %s "
                         "(reshape rows of an image into steps, e.g. Fashion-MNIST as (28, 28))",
                         c->name, l->name, tg__batch_shape_str(in, s, sizeof s));
    }
    int64_t u = o->units, g = c->gates * u;
    tg_initializer kernel = o->kernel_initializer.kind ? o->kernel_initializer : tg_init_glorot_uniform();
    tg_initializer recurrent = o->recurrent_initializer.kind ? o->recurrent_initializer : tg_init_orthogonal();
    tg_initializer bias = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    bool two_biases = c->kind == CELL_GRU && o->reset_after;
    if (!tg__layer_add_variable(l, loc, "kernel", kernel, TG_SHAPE(in->dims[1], g), true) ||
        !tg__layer_add_variable(l, loc, "recurrent_kernel", recurrent, TG_SHAPE(u, g), true))
        return false;
    if (o->use_bias && !tg__layer_add_variable(l, loc, "bias", bias, two_biases ? TG_SHAPE(2, g) : TG_SHAPE(g), true))
        return false;
    if (o->use_bias && c->kind == CELL_LSTM && o->unit_forget_bias && !o->bias_initializer.kind &&
        !forget_bias_ones(l, loc))
        return false;
    l->var_reg[KERNEL] = o->kernel_regularizer;
    l->var_reg[RECURRENT] = o->recurrent_regularizer;
    if (o->use_bias)
        l->var_reg[BIAS] = o->bias_regularizer;
    if (tg__variable_set_constraint(loc, l->vars[KERNEL], o->kernel_constraint) != 0 ||
        tg__variable_set_constraint(loc, l->vars[RECURRENT], o->recurrent_constraint) != 0 ||
        (o->use_bias && tg__variable_set_constraint(loc, l->vars[BIAS], o->bias_constraint) != 0))
        return false;
    *out = o->return_sequences ? TG_SHAPE(in->dims[0], u) : TG_SHAPE(u);
    return true;
}

/* ---- call ---------------------------------------------------------------------------------------- */
typedef struct rnn_step {
    tg_loc loc;
    const tg_layer *l;
    tg_tensor *input_bias, *recurrent_bias; /* GRU with reset_after: the two rows of its bias */
} rnn_step;

static tg_tensor *act(const rnn_step *s, const tg_tensor *x) { return tg__activate(s->loc, x, s->l->o.rnn.activation); }

static tg_tensor *rec_act(const rnn_step *s, const tg_tensor *x)
{
    return tg__activate(s->loc, x, s->l->o.rnn.recurrent_activation);
}

static tg_tensor *h_times_u(const rnn_step *s, const tg_tensor *h)
{
    return tg_matmul_at(s->loc, h, s->l->vars[RECURRENT], (tg_matmul_opts){0});
}

/* GRU's new state: z h + (1 - z) hh. */
static tg_tensor *gru_mix(tg_loc loc, const tg_tensor *z, const tg_tensor *h, const tg_tensor *hh)
{
    return tg_add_at(loc, tg_mul_at(loc, z, h), tg_mul_at(loc, tg_sub_at(loc, tg_scalar_like_at(loc, z, 1), z), hh));
}

/* Whether an LSTM step is tg_lstm_cell: tanh and sigmoid, the op's float dtypes. */
static bool fused_lstm_cell(const tg_layer *l, const tg_tensor *z)
{
    tg_dtype d = z ? tg_dtype_of(z) : TG_F32;
    return l->o.rnn.activation == TG_TANH && l->o.rnn.recurrent_activation == TG_SIGMOID &&
           (d == TG_F32 || d == TG_F64);
}

/* One step: the new h (and, for LSTM, c), from xw, this step's input product with bias. */
static tg_tensor *step(const rnn_step *s, const tg_tensor *xw, const tg_tensor *h, tg_tensor **c)
{
    tg_loc loc = s->loc;
    switch (kind_of(s->l)) {
    case CELL_SIMPLE: return act(s, tg_add_at(loc, xw, h_times_u(s, h)));
    case CELL_LSTM: {
        tg_tensor *z[4], *hu = h_times_u(s, h);
        if (fused_lstm_cell(s->l, hu)) { /* Keras's default activations: one op after the products */
            tg_tensor *hc[2];
            if (tg_lstm_cell_at(loc, xw, hu, *c, hc) != 0)
                return NULL;
            *c = hc[1];
            return hc[0];
        }
        if (tg_split_at(loc, tg_add_at(loc, xw, hu), 4, z, (tg_split_opts){.axis = 1}) != 0)
            return NULL;
        tg_tensor *i = rec_act(s, z[0]), *f = rec_act(s, z[1]), *o = rec_act(s, z[3]);
        *c = tg_add_at(loc, tg_mul_at(loc, f, *c), tg_mul_at(loc, i, act(s, z[2])));
        return tg_mul_at(loc, o, act(s, *c));
    }
    case CELL_GRU: {
        tg_tensor *x3[3], *h3[3];
        if (tg_split_at(loc, xw, 3, x3, (tg_split_opts){.axis = 1}) != 0)
            return NULL;
        tg_tensor *hh;
        if (s->l->o.rnn.reset_after) { /* r scales the recurrent product (and its bias) */
            tg_tensor *hu = h_times_u(s, h);
            if (s->recurrent_bias)
                hu = tg_add_at(loc, hu, s->recurrent_bias);
            if (tg_split_at(loc, hu, 3, h3, (tg_split_opts){.axis = 1}) != 0)
                return NULL;
            tg_tensor *z = rec_act(s, tg_add_at(loc, x3[0], h3[0])), *r = rec_act(s, tg_add_at(loc, x3[1], h3[1]));
            hh = act(s, tg_add_at(loc, x3[2], tg_mul_at(loc, r, h3[2])));
            return gru_mix(loc, z, h, hh);
        }
        /* reset before the product: the candidate's recurrent kernel sees r * h */
        tg_tensor *u3[3];
        if (tg_split_at(loc, s->l->vars[RECURRENT], 3, u3, (tg_split_opts){.axis = 1}) != 0)
            return NULL;
        tg_tensor *z = rec_act(s, tg_add_at(loc, x3[0], tg_matmul_at(loc, h, u3[0], (tg_matmul_opts){0})));
        tg_tensor *r = rec_act(s, tg_add_at(loc, x3[1], tg_matmul_at(loc, h, u3[1], (tg_matmul_opts){0})));
        hh = act(s, tg_add_at(loc, x3[2], tg_matmul_at(loc, tg_mul_at(loc, r, h), u3[2], (tg_matmul_opts){0})));
        return gru_mix(loc, z, h, hh);
    }
    }
    return NULL;
}

/* x W + b for every step at once: (batch, time, gates * units), or (time, batch, ...)
 * from x time-major; the batch's dim is left to the reshape (-1), so a graph's batch dim
 * stays unknown. */
static tg_tensor *input_products(const rnn_step *s, const tg_tensor *x, bool time_major)
{
    tg_loc loc = s->loc;
    const tg_layer *l = s->l;
    int64_t t = tg_dim(x, time_major ? 0 : 1), f = tg_dim(x, 2), g = tg_dim(l->vars[KERNEL], 1);
    tg_tensor *p = tg_matmul_at(loc, tg_reshape_at(loc, x, TG_SHAPE(-1, f)), l->vars[KERNEL], (tg_matmul_opts){0});
    if (s->input_bias)
        p = tg_add_at(loc, p, s->input_bias);
    else if (l->o.rnn.use_bias)
        p = tg_add_at(loc, p, l->vars[BIAS]);
    return tg_reshape_at(loc, p, time_major ? TG_SHAPE(t, -1, g) : TG_SHAPE(-1, t, g));
}

/* Zeros of (batch, units) for x's batch: the default initial states. */
static tg_tensor *zero_state(tg_loc loc, const tg_tensor *x, tg_dtype dtype, int64_t units)
{
    tg_tensor *zeros = tg_broadcast_to_at(loc, tg_scalar_at(loc, dtype, 0.0), TG_SHAPE(tg_dim(x, 0), units));
    tg__trace_batch_like(zeros, x); /* a graph's batch dim stays unknown */
    return zeros;
}

/* Keras's masked step (backend rnn): where the step is masked, the state and the output
 * carry the previous step's over. */
static tg_tensor *carry(tg_loc loc, const tg_tensor *keep, tg_tensor *fresh, tg_tensor *old)
{
    return keep ? tg_where_at(loc, keep, fresh, old) : fresh;
}

/* Step k's h (or c) of a (time, batch, units) sequence. */
static tg_tensor *at_step(tg_loc loc, const tg_tensor *seq, int64_t k)
{
    int64_t u = tg_dim(seq, 2);
    return tg_reshape_at(loc, tg_slice_at(loc, seq, TG_SHAPE(k, 0, 0), TG_SHAPE(1, -1, -1)), TG_SHAPE(-1, u));
}

/* An unmasked LSTM with Keras's default activations: the whole sequence as one op
 * (tg_lstm_sequence), time-major, go_backwards as the steps reversed before it. */
static bool lstm_sequence(const rnn_step *s, const tg_tensor *x, tg_tensor *h0, tg_tensor *c0, tg_tensor **ys)
{
    tg_loc loc = s->loc;
    const tg_rnn_opts *o = &s->l->o.rnn;
    int64_t t = tg_dim(x, 1);
    if (o->go_backwards)
        x = tg_reverse_at(loc, x, TG_AXES(1));
    tg_tensor *xw = input_products(s, tg_transpose_at(loc, x, TG_AXES(1, 0, 2)), true), *out[3] = {0};
    tg_tensor *zeros = xw ? zero_state(loc, x, tg_dtype_of(xw), o->units) : NULL;
    if (!zeros || tg_lstm_sequence_at(loc, xw, s->l->vars[RECURRENT], h0 ? h0 : zeros, c0 ? c0 : zeros, out) != 0)
        return false;
    tg_tensor *h = t > 0 ? at_step(loc, out[0], t - 1) : h0 ? h0 : zeros;
    ys[0] = o->return_sequences ? tg_transpose_at(loc, out[0], TG_AXES(1, 0, 2)) : h;
    if (o->return_state) {
        ys[1] = h;
        ys[2] = t > 0 ? at_step(loc, out[1], t - 1) : c0 ? c0 : zeros;
    }
    return ys[0] != NULL;
}

/* The layer on x under its mask (NULL: every step) from the states h0 and c0 (NULL: zeros):
 * ys[0] the output, then with return_state the last h (and, for LSTM, c), the carried ones
 * where the last steps are masked, as Keras's. */
static bool rnn_run(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, tg_tensor *h0, tg_tensor *c0,
                    tg_tensor **ys)
{
    const tg_rnn_opts *o = &l->o.rnn;
    rnn_step s = {.loc = loc, .l = l};
    if (kind_of(l) == CELL_GRU && o->reset_after && o->use_bias) {
        tg_tensor *rows[2];
        if (tg_unstack_at(loc, l->vars[BIAS], 2, rows, 0) != 0)
            return false;
        s.input_bias = rows[0], s.recurrent_bias = rows[1];
    }
    if (kind_of(l) == CELL_LSTM && !mask && fused_lstm_cell(l, x))
        return lstm_sequence(&s, x, h0, c0, ys);
    int64_t t = tg_dim(x, 1);
    tg_tensor **xw = calloc((size_t)(3 * t + 1), sizeof(tg_tensor *)), **outs = xw + t, **keep = xw + 2 * t;
    if (!xw)
        return tg__failb(loc, "%s \"%s\": out of memory", cells[kind_of(l)].name, l->name);
    tg_tensor *h = NULL, *c = NULL;
    bool ok = !mask || tg_unstack_at(loc, tg_expand_dims_at(loc, mask, -1), (int)t, keep, 1) == 0;
    if (ok && tg_unstack_at(loc, input_products(&s, x, false), (int)t, xw, 1) == 0) {
        tg_tensor *zeros = zero_state(loc, x, tg_dtype_of(xw[0]), o->units);
        h = h0 ? h0 : zeros;
        c = c0 ? c0 : zeros;
        for (int64_t k = 0; h && k < t; k++) {
            int64_t at = o->go_backwards ? t - 1 - k : k;
            tg_tensor *c_old = c, *h_new = step(&s, xw[at], h, &c);
            if (mask && c != c_old)
                c = carry(loc, keep[at], c, c_old);
            h = outs[k] = h_new ? carry(loc, mask ? keep[at] : NULL, h_new, h) : NULL;
        }
    }
    ys[0] = h && o->return_sequences ? tg_stack_at(loc, outs, (int)t, 1) : h;
    free(xw);
    if (o->return_state) {
        ys[1] = h;
        if (kind_of(l) == CELL_LSTM)
            ys[2] = c;
    }
    return ys[0] != NULL;
}

static tg_tensor *rnn_call(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    (void)training;
    tg_tensor *ys[TG_LAYER_MAX_OUTPUTS];
    return rnn_run(l, loc, x, mask, NULL, NULL, ys) ? ys[0] : NULL;
}

/* ---- initial states and return_state (functional models) -------------------------------- */
static int n_states(const tg_layer *l) { return kind_of(l) == CELL_LSTM ? 2 : 1; }

/* Keras's initial_state: inputs after the sequences are the states, each (units,). */
static bool rnn_build_n(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    const char *name = cells[kind_of(l)].name;
    if (n != 1 && n != 1 + n_states(l))
        return tg__failb(loc,
                         "%s \"%s\": called on %d inputs; it takes the sequences, then optionally its %d "
                         "initial state%s (%s)",
                         name, l->name, n, n_states(l), n_states(l) > 1 ? "s" : "",
                         kind_of(l) == CELL_LSTM ? "h and c" : "h");
    for (int i = 1; i < n; i++)
        if (in[i].rank != 1 || in[i].dims[0] != l->o.rnn.units) {
            char s[TG_SHAPE_STR_MAX];
            return tg__failb(loc, "%s \"%s\": initial state %d has shape %s; a state is (batch, units) = (None, %lld)",
                             name, l->name, i - 1, tg__batch_shape_str(&in[i], s, sizeof s), (long long)l->o.rnn.units);
        }
    return rnn_build(l, loc, &in[0], out);
}

static int rnn_output_shapes(const tg_layer *l, tg_shape *out)
{
    int n = l->o.rnn.return_state ? 1 + n_states(l) : 1;
    for (int k = 0; out && k < n; k++)
        out[k] = k == 0 ? l->out_shape : TG_SHAPE(l->o.rnn.units);
    return n;
}

/* Masks of the initial states are not used: the sequences' mask alone says which steps run. */
static bool rnn_call_outs(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                          bool training, tg_tensor **ys)
{
    (void)training;
    return rnn_run(l, loc, xs[0], masks[0], n > 1 ? xs[1] : NULL, n > 2 ? xs[2] : NULL, ys);
}

/* Keras's RNN.compute_mask: the mask goes on with the sequences, not with the last state. */
static tg_tensor *rnn_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    (void)loc, (void)x;
    return l->o.rnn.return_sequences ? (tg_tensor *)mask : NULL;
}

/* ---- the three kinds ------------------------------------------------------------------------------- */
#define RNN_KIND(base, class)                                                                                \
    {                                                                                                        \
        .base_name = base, .class_name = class, .autocast = true, .build = rnn_build, .call_mask = rnn_call, \
        .compute_mask = rnn_mask, .build_n = rnn_build_n, .output_shapes = rnn_output_shapes,                \
        .call_outs = rnn_call_outs                                                                           \
    }
static const tg_layer_kind simple_kind = RNN_KIND("simple_rnn", "SimpleRNN");
static const tg_layer_kind lstm_kind = RNN_KIND("lstm", "LSTM");
static const tg_layer_kind gru_kind = RNN_KIND("gru", "GRU");

static cell_kind kind_of(const tg_layer *l)
{
    return l->kind == &lstm_kind ? CELL_LSTM : l->kind == &gru_kind ? CELL_GRU : CELL_SIMPLE;
}

static tg_layer *rnn_new(tg_loc loc, const tg_layer_kind *kind, const char *func, tg_rnn_opts o)
{
    if (o.units <= 0)
        return tg__fail(loc, "%s: units must be a positive integer, got %lld", func, (long long)o.units);
    if (!tg__check_activation(loc, func, o.activation) || !tg__check_activation(loc, func, o.recurrent_activation))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, kind, o);
    if (l)
        l->o.rnn = o;
    return l;
}

tg_layer *tg_simple_rnn_at(tg_loc loc, tg_rnn_opts o) { return rnn_new(loc, &simple_kind, "tg_simple_rnn", o); }
tg_layer *tg_lstm_at(tg_loc loc, tg_rnn_opts o) { return rnn_new(loc, &lstm_kind, "tg_lstm", o); }
tg_layer *tg_gru_at(tg_loc loc, tg_rnn_opts o) { return rnn_new(loc, &gru_kind, "tg_gru", o); }

bool tg__is_recurrent(const tg_layer *l)
{
    return l->kind == &simple_kind || l->kind == &lstm_kind || l->kind == &gru_kind;
}

tg_layer *tg__rnn_reversed_copy(tg_loc loc, const tg_layer *l, const char *name, uint64_t seed)
{
    tg_rnn_opts o = l->o.rnn;
    o.name = name;
    o.seed = seed;
    o.go_backwards = !o.go_backwards;
    return rnn_new(loc, l->kind, l->kind->base_name, o);
}
