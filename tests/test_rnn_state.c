/* Recurrent layers of several inputs and outputs in functional models: Keras's
 * initial_state (tg_layer_apply(lstm, x, h0, c0)) and return_state (output, h, c through
 * tg_layer_apply_outputs), outputs and gradients (x, the initial states, the variables)
 * against PyTorch float64's h0/c0 and h_n/c_n (tests/fixtures/rnn_state_golden.txt,
 * tools/make_rnn_fixtures.py); the errors. */
#include "check.h"
#include "fixture.h"

#define MAXV 512

typedef struct arr {
    tg_shape shape;
    double v[MAXV];
    bool present;
} arr;

enum {
    X,
    KERNEL,
    RECURRENT,
    BIAS,
    R,
    OUTPUT,
    GRAD_X,
    GRAD_KERNEL,
    GRAD_RECURRENT,
    GRAD_BIAS,
    H0,
    RH,
    H,
    GRAD_H0,
    C0,
    RC,
    C,
    GRAD_C0,
    N_ARRAYS
};
static const char *const array_names[N_ARRAYS] = {"x",         "kernel",      "recurrent_kernel",
                                                  "bias",      "r",           "output",
                                                  "grad_x",    "grad_kernel", "grad_recurrent_kernel",
                                                  "grad_bias", "h0",          "rh",
                                                  "h",         "grad_h0",     "c0",
                                                  "rc",        "c",           "grad_c0"};

typedef struct rcase {
    char name[48], kind[16];
    int units, return_sequences, go_backwards;
    arr a[N_ARRAYS];
} rcase;

static tg_tensor *tensor_of(const arr *a) { return tg_tensor_from(TG_F64, a->shape, a->v); }

static tg_layer *layer_for(const rcase *c)
{
    tg_rnn_opts o = {.units = c->units,
                     .activation = TG_TANH,
                     .recurrent_activation = TG_SIGMOID,
                     .use_bias = true,
                     .unit_forget_bias = true,
                     .reset_after = true,
                     .return_sequences = c->return_sequences,
                     .go_backwards = c->go_backwards,
                     .return_state = true,
                     .dtype = TG_F64};
    if (!strcmp(c->kind, "lstm"))
        return tg_lstm_at(TG_LOC, o);
    if (!strcmp(c->kind, "gru"))
        return tg_gru_at(TG_LOC, o);
    return tg_simple_rnn_at(TG_LOC, o);
}

static tg_shape example_of(tg_shape s)
{
    tg_shape e = {.rank = s.rank - 1};
    for (int i = 1; i < s.rank; i++)
        e.dims[i - 1] = s.dims[i];
    return e;
}

static bool check_array(const rcase *c, int k, const tg_tensor *t)
{
    char label[96];
    snprintf(label, sizeof label, "%s %s", c->name, array_names[k]);
    return tensor_matches_(__FILE__, __LINE__, label, t, &c->a[k].shape, c->a[k].v, fx_size(&c->a[k].shape), 1e-12);
}

/* A model (x, h0[, c0]) -> (output, h[, c]) in float64, the fixture's weights set. */
static void check_case(const rcase *c)
{
    tg_scope *s = tg_scope_begin();
    bool lstm = !strcmp(c->kind, "lstm");
    int n = lstm ? 3 : 2;
    tg_keras_tensor *x = tg_input(example_of(c->a[X].shape));
    tg_keras_tensor *h0 = tg_input(TG_SHAPE(c->units)), *c0 = lstm ? tg_input(TG_SHAPE(c->units)) : NULL;
    tg_keras_tensor *outs[3] = {0};
    tg_layer *l = layer_for(c);
    const tg_keras_tensor *ins[3] = {x, h0, c0};
    REQUIRE(tg_layer_apply_outputs_at(TG_LOC, l, ins, n, outs, n) == 0);
    CHECK(tg_keras_tensor_shape(outs[1]).rank == 1 && tg_keras_tensor_shape(outs[1]).dims[0] == c->units);
    tg_model *m = tg_functional_at(TG_LOC, ins, n, (const tg_keras_tensor *const *)outs, n,
                                   (tg_functional_opts){.name = "m", .dtype = TG_F64});
    REQUIRE(m);
    int nv;
    tg_tensor *const *vars = tg_layer_variables(l, &nv);
    REQUIRE(nv == 3);
    for (int k = 0; k < 3; k++)
        CHECK(tg_assign(vars[k], tensor_of(&c->a[KERNEL + k])) == 0);
    const tg_tensor *xs[3] = {tensor_of(&c->a[X]), tensor_of(&c->a[H0]), lstm ? tensor_of(&c->a[C0]) : NULL};
    tg_tensor *ys[3] = {0};
    tg_tape *t = tg_tape_begin(.persistent = true);
    for (int i = 0; i < n; i++)
        tg_watch(t, xs[i]);
    REQUIRE(tg_model_call_list(m, xs, n, ys, n) == 0);
    tg_tensor *loss = tg_add(tg_sum(tg_mul(ys[0], tensor_of(&c->a[R]))), tg_sum(tg_mul(ys[1], tensor_of(&c->a[RH]))));
    if (lstm)
        loss = tg_add(loss, tg_sum(tg_mul(ys[2], tensor_of(&c->a[RC]))));
    tg_tape_end(t);
    CHECK(check_array(c, OUTPUT, ys[0]));
    CHECK(check_array(c, H, ys[1]));
    CHECK(check_array(c, GRAD_X, tg_gradient(t, loss, xs[0])));
    CHECK(check_array(c, GRAD_H0, tg_gradient(t, loss, xs[1])));
    if (lstm) {
        CHECK(check_array(c, C, ys[2]));
        CHECK(check_array(c, GRAD_C0, tg_gradient(t, loss, xs[2])));
    }
    for (int k = 0; k < 3; k++)
        CHECK(check_array(c, GRAD_KERNEL + k, tg_gradient(t, loss, vars[k])));
    tg_tape_free(t);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_against_pytorch(void)
{
    static fx_reader r;
    static rcase c;
    REQUIRE(fx_open(&r, "rnn_state_golden.txt", "tools/make_rnn_fixtures.py"));
    char tag[32], *rest;
    int cases = 0;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        if (!strcmp(tag, "case")) {
            memset(&c, 0, sizeof c);
            if (!fx_word(&rest, c.name, sizeof c.name) || !fx_word(&rest, c.kind, sizeof c.kind) ||
                !fx_int(&rest, &c.units) || !fx_int(&rest, &c.return_sequences) || !fx_int(&rest, &c.go_backwards))
                fx_fail(&r, "a bad `case`");
            continue;
        }
        if (!strcmp(tag, "end")) {
            check_case(&c);
            cases++;
            continue;
        }
        int k = 0;
        while (k < N_ARRAYS && strcmp(tag, array_names[k]))
            k++;
        if (k == N_ARRAYS || !fx_array(&rest, &c.a[k].shape, c.a[k].v, MAXV))
            fx_fail(&r, "a bad `%s`", tag);
        c.a[k].present = true;
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases == 6);
}

/* The states feed other layers, and the summary names each output's tensor index. */
static void test_states_in_a_model(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *x = tg_input(TG_SHAPE(4, 3), .name = "x");
    tg_keras_tensor *outs[3];
    REQUIRE(tg_layer_apply_outputs(tg_lstm(.units = 2, .return_state = true), outs, 3, x) == 0);
    tg_keras_tensor *y = tg_layer_apply(tg_concatenate(), outs[0], outs[2]); /* output and c */
    tg_model *m = tg_functional(TG_KERAS_TENSORS(x), TG_KERAS_TENSORS(y), .seed = 3);
    REQUIRE(m);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    REQUIRE(f && tg_model_summary(m, f) == 0);
    fclose(f);
    CHECK(buf && strstr(buf, "lstm[0][0],") && strstr(buf, "lstm[0][2]")); /* the output and c */
    free(buf);
    /* the output (the last h) and the returned h are the same values */
    tg_keras_tensor *x2 = tg_input(TG_SHAPE(4, 3));
    tg_keras_tensor *o2[2];
    REQUIRE(tg_layer_apply_outputs(tg_gru(.units = 2, .return_state = true), o2, 2, x2) == 0);
    tg_model *g = tg_functional(TG_KERAS_TENSORS(x2), TG_KERAS_TENSORS(o2[0], o2[1]), .seed = 3);
    REQUIRE(g);
    tg_rng *rng = tg_rng_new(2);
    const tg_tensor *in[1] = {tg_random_uniform(rng, TG_F32, TG_SHAPE(5, 4, 3))};
    tg_rng_free(rng);
    tg_tensor *ys[2];
    REQUIRE(tg_model_call_list(g, in, 1, ys, 2) == 0);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(ys[0], ys[1])))) == 0);
    tg_model_free(g);
    tg_model_free(m);
    tg_scope_end(s);
}

/* An encoder's states start a decoder (Keras's seq2seq): fit trains through both, the
 * decoder's gradient reaching the encoder only through the states. */
static void test_encoder_decoder_learns(void)
{
    tg_scope *s = tg_scope_begin();
    enum { N = 64, T = 5 };
    float enc[N * T], dec[N * T], y[N];
    tg_rng *rng = tg_rng_new(7);
    for (int i = 0; i < N; i++) { /* the label is the sign of the encoder's first step */
        for (int t = 0; t < T; t++) {
            enc[i * T + t] = (float)(2 * tg_rng_uniform01(rng) - 1);
            dec[i * T + t] = (float)(2 * tg_rng_uniform01(rng) - 1);
        }
        y[i] = enc[i * T] > 0;
    }
    tg_rng_free(rng);
    tg_keras_tensor *a = tg_input(TG_SHAPE(T, 1), .name = "encoder_in"), *b = tg_input(TG_SHAPE(T, 1));
    tg_keras_tensor *e[3], *d;
    REQUIRE(tg_layer_apply_outputs(tg_lstm(.units = 8, .return_state = true), e, 3, a) == 0);
    d = tg_layer_apply(tg_lstm(.units = 8), b, e[1], e[2]);
    tg_keras_tensor *out = tg_layer_apply(tg_dense(.units = 1, .activation = TG_SIGMOID), d);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(out), .seed = 4);
    REQUIRE(m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.02), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                            .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    const tg_tensor *ins[2] = {tg_tensor_from(TG_F32, TG_SHAPE(N, T, 1), enc),
                               tg_tensor_from(TG_F32, TG_SHAPE(N, T, 1), dec)};
    const tg_tensor *ys[1] = {tg_tensor_from(TG_F32, TG_SHAPE(N, 1), y)};
    tg_history *h = tg_fit(m, NULL, NULL, .inputs = ins, .n_inputs = 2, .targets = ys, .n_targets = 1, .epochs = 40,
                           .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
    int n = 0;
    const double *acc = tg_history_get(h, "accuracy", &n);
    CHECK(acc && n == 40 && acc[n - 1] >= 0.9);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *x = tg_input(TG_SHAPE(4, 3)), *h = tg_input(TG_SHAPE(2)), *bad = tg_input(TG_SHAPE(5));
    tg_keras_tensor *outs[3];
    tg_layer *l = tg_lstm(.units = 2, .return_state = true);
    EXPECT_ERROR(tg_layer_apply(l, x) == NULL, "layer \"lstm\" (LSTM) has 3 outputs here; take them all");
    EXPECT_ERROR(tg_layer_apply_outputs(l, outs, 2, x) != 0, "layer \"lstm\" (LSTM) has 3 outputs here, not 2");
    EXPECT_ERROR(tg_layer_apply_outputs(l, outs, 3, x, h) != 0,
                 "LSTM \"lstm\": called on 2 inputs; it takes the sequences, then optionally its 2 initial states");
    EXPECT_ERROR(tg_layer_apply_outputs(l, outs, 3, x, h, bad) != 0,
                 "LSTM \"lstm\": initial state 1 has shape (None, 5); a state is (batch, units) = (None, 2)");
    EXPECT_ERROR(tg_layer_call(l, tg_zeros(TG_F32, TG_SHAPE(1, 4, 3))) == NULL,
                 "layer \"lstm\" (LSTM) has 3 outputs: apply it to keras tensors with tg_layer_apply_outputs");
    tg_layer *g = tg_gru(.units = 2);
    tg_keras_tensor *flat = tg_input(TG_SHAPE(4)), *deep = tg_input(TG_SHAPE(2, 4, 3));
    EXPECT_ERROR(tg_layer_apply(g, flat) == NULL,
                 "GRU \"gru\": expects inputs of shape (batch, time, features); one example has shape (None, 4)");
    EXPECT_ERROR(tg_layer_apply(g, deep) == NULL,
                 "GRU \"gru\": expects inputs of shape (batch, time, features); one example has shape (None, 2, 4, 3)");
    EXPECT_ERROR(tg_bidirectional(tg_gru(.units = 2, .return_state = true)) == NULL,
                 "has return_state set; Bidirectional does not return states");
    EXPECT_ERROR(tg_sequential(tg_simple_rnn(.units = 2, .return_state = true, .input_shape = TG_SHAPE(4, 3))) == NULL,
                 "has 2 outputs");
    tg_layer_free(l);
    tg_layer_free(g);
    tg_keras_tensor *const inputs[] = {x, h, bad, flat, deep};
    for (int i = 0; i < 5; i++)
        tg_layer_free(tg_keras_tensor_layer(inputs[i]));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_against_pytorch);
    RUN(test_states_in_a_model);
    RUN(test_encoder_decoder_learns);
    RUN(test_errors);
    return TEST_SUMMARY();
}
