/* Bidirectional and TimeDistributed: Bidirectional(LSTM) and Bidirectional(GRU) outputs and
 * gradients (the input and all six variables) against PyTorch float64's bidirectional
 * nn.LSTM and nn.GRU (tests/fixtures/wrappers_golden.txt, tools/make_wrapper_fixtures.py),
 * with and without return_sequences; merge modes sum, mul and ave against concat's halves;
 * Keras's variable names; TimeDistributed(Dense) against the formula on the folded steps,
 * TimeDistributed(Conv2D)'s shape; both in a Sequential that fits and in a functional
 * model; the errors. */
#include "check.h"
#include "fixture.h"

#define MAXV 256

/* t has `shape` and the values of the array `want`. */
#define CHECK_TENSOR_ARRAY(t, shape, want, tol)                                                                     \
    do {                                                                                                            \
        tg_shape s_ = (shape);                                                                                      \
        CHECK(tensor_matches_(__FILE__, __LINE__, #t, t, &s_, want, (int64_t)(sizeof want / sizeof want[0]), tol)); \
    } while (0)

typedef struct arr {
    tg_shape shape;
    double v[MAXV];
} arr;

enum {
    X,
    R,
    OUTPUT,
    GRAD_X,
    VAR0, /* forward kernel, recurrent_kernel, bias, then the backward ones */
    GRAD0 = VAR0 + 6,
    N_ARRAYS = GRAD0 + 6
};
static const char *const array_names[N_ARRAYS] = {"x",
                                                  "r",
                                                  "output",
                                                  "grad_x",
                                                  "forward_kernel",
                                                  "forward_recurrent_kernel",
                                                  "forward_bias",
                                                  "backward_kernel",
                                                  "backward_recurrent_kernel",
                                                  "backward_bias",
                                                  "grad_forward_kernel",
                                                  "grad_forward_recurrent_kernel",
                                                  "grad_forward_bias",
                                                  "grad_backward_kernel",
                                                  "grad_backward_recurrent_kernel",
                                                  "grad_backward_bias"};

typedef struct bcase {
    char name[48], kind[16];
    int units, return_sequences;
    arr a[N_ARRAYS];
} bcase;

static tg_tensor *tensor_of(const arr *a) { return tg_tensor_from(TG_F64, a->shape, a->v); }

/* A Bidirectional over the case's layer, built on x and given the fixture's weights. */
static tg_layer *bidirectional_for(const bcase *c, tg_merge_mode mode, tg_tensor *x)
{
    tg_rnn_opts o = {.units = c->units,
                     .activation = TG_TANH,
                     .recurrent_activation = TG_SIGMOID,
                     .use_bias = true,
                     .unit_forget_bias = true,
                     .reset_after = true,
                     .return_sequences = c->return_sequences,
                     .dtype = TG_F64};
    tg_layer *rnn = !strcmp(c->kind, "lstm") ? tg_lstm_at(TG_LOC, o) : tg_gru_at(TG_LOC, o);
    tg_layer *l = tg_bidirectional(rnn, .merge_mode = mode, .dtype = TG_F64);
    if (!l || !tg_layer_call(l, x))
        return l;
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    CHECK(n == 6);
    for (int k = 0; k < 6 && k < n; k++)
        CHECK(tg_assign(vars[k], tensor_of(&c->a[VAR0 + k])) == 0);
    return l;
}

static void check_merge_modes(const bcase *c, tg_tensor *x, tg_tensor *concat)
{
    int64_t size = fx_size(&c->a[OUTPUT].shape), half = size / 2, u = c->units;
    double *all = malloc(sizeof(double) * (size_t)size), *want = malloc(sizeof(double) * (size_t)half);
    REQUIRE(all && want && tg_copy_out_f64(concat, all, size) == 0);
    static const tg_merge_mode modes[] = {TG_MERGE_SUM, TG_MERGE_MUL, TG_MERGE_AVE};
    for (int m = 0; m < 3; m++) {
        for (int64_t i = 0; i < half; i++) { /* row i / u of concat holds forward then backward */
            double f = all[(i / u) * 2 * u + i % u], b = all[(i / u) * 2 * u + u + i % u];
            want[i] = modes[m] == TG_MERGE_SUM ? f + b : modes[m] == TG_MERGE_MUL ? f * b : (f + b) / 2;
        }
        tg_layer *l = bidirectional_for(c, modes[m], x);
        REQUIRE(l);
        tg_tensor *y = tg_layer_call(l, x);
        tg_shape shape = c->a[OUTPUT].shape;
        shape.dims[shape.rank - 1] = u;
        char label[96];
        snprintf(label, sizeof label, "%s merge mode %d", c->name, (int)modes[m]);
        CHECK(tensor_matches_(__FILE__, __LINE__, label, y, &shape, want, half, 1e-15));
        tg_layer_free(l);
    }
    free(all);
    free(want);
}

static void check_case(const bcase *c)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tensor_of(&c->a[X]);
    tg_layer *l = bidirectional_for(c, TG_MERGE_CONCAT, x);
    REQUIRE(l && tg_layer_built(l));
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_tensor *y = tg_layer_call(l, x);
    tg_tensor *loss = tg_sum(tg_mul(y, tensor_of(&c->a[R])));
    tg_tape_end(t);
    char label[96];
    snprintf(label, sizeof label, "%s output", c->name);
    CHECK(tensor_matches_(__FILE__, __LINE__, label, y, &c->a[OUTPUT].shape, c->a[OUTPUT].v,
                          fx_size(&c->a[OUTPUT].shape), 1e-12));
    snprintf(label, sizeof label, "%s grad_x", c->name);
    CHECK(tensor_matches_(__FILE__, __LINE__, label, tg_gradient(t, loss, x), &c->a[GRAD_X].shape, c->a[GRAD_X].v,
                          fx_size(&c->a[GRAD_X].shape), 1e-12));
    for (int k = 0; k < 6; k++) {
        const arr *want = &c->a[GRAD0 + k];
        snprintf(label, sizeof label, "%s %s", c->name, array_names[GRAD0 + k]);
        CHECK(tensor_matches_(__FILE__, __LINE__, label, tg_gradient(t, loss, vars[k]), &want->shape, want->v,
                              fx_size(&want->shape), 1e-12));
    }
    tg_tape_free(t);
    check_merge_modes(c, x, y);
    tg_layer_free(l);
    tg_scope_end(s);
}

static void test_bidirectional_against_pytorch(void)
{
    static fx_reader r;
    static bcase c;
    REQUIRE(fx_open(&r, "wrappers_golden.txt", "tools/make_wrapper_fixtures.py"));
    char tag[40], *rest;
    int cases = 0;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        if (!strcmp(tag, "case")) {
            memset(&c, 0, sizeof c);
            if (!fx_word(&rest, c.name, sizeof c.name) || !fx_word(&rest, c.kind, sizeof c.kind) ||
                !fx_int(&rest, &c.units) || !fx_int(&rest, &c.return_sequences))
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
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases == 4);
}

/* Keras 3's names (without the cell's level, as the recurrent layers'), and the shapes. */
static void test_bidirectional_names_and_shapes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m =
        tg_sequential(tg_bidirectional(tg_lstm(.units = 3, .return_sequences = true, .input_shape = TG_SHAPE(5, 2))),
                      tg_bidirectional(tg_gru(.units = 4), .merge_mode = TG_MERGE_SUM));
    REQUIRE(m);
    int n;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    REQUIRE(n == 12);
    static const char *const want[12] = {"bidirectional/forward_lstm/kernel",
                                         "bidirectional/forward_lstm/recurrent_kernel",
                                         "bidirectional/forward_lstm/bias",
                                         "bidirectional/backward_lstm/kernel",
                                         "bidirectional/backward_lstm/recurrent_kernel",
                                         "bidirectional/backward_lstm/bias",
                                         "bidirectional_1/forward_gru/kernel",
                                         "bidirectional_1/forward_gru/recurrent_kernel",
                                         "bidirectional_1/forward_gru/bias",
                                         "bidirectional_1/backward_gru/kernel",
                                         "bidirectional_1/backward_gru/recurrent_kernel",
                                         "bidirectional_1/backward_gru/bias"};
    for (int i = 0; i < 12; i++)
        if (strcmp(tg_variable_name(vars[i]), want[i]) != 0) {
            printf("  variable %d is \"%s\", want \"%s\"\n", i, tg_variable_name(vars[i]), want[i]);
            CHECK(false);
        }
    CHECK(tg_dim(vars[0], 0) == 2 && tg_dim(vars[0], 1) == 12 && tg_dim(vars[6], 0) == 6);
    tg_layer *first = tg_model_layer(m, 0);
    CHECK(!strcmp(tg_layer_class_name(first), "Bidirectional"));
    tg_shape o1 = tg_layer_output_shape(first), o2 = tg_layer_output_shape(tg_model_layer(m, 1));
    CHECK(o1.rank == 2 && o1.dims[0] == 5 && o1.dims[1] == 6);
    CHECK(o2.rank == 1 && o2.dims[0] == 4);
    /* two independent directions: fresh, different weights */
    double a[24], b[24];
    REQUIRE(tg_copy_out_f64(vars[0], a, 24) == 0 && tg_copy_out_f64(vars[3], b, 24) == 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    tg_tensor *y = tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(7, 5, 2)));
    CHECK(y && tg_rank(y) == 2 && tg_dim(y, 0) == 7 && tg_dim(y, 1) == 4);
    tg_model_free(m);
    tg_scope_end(s);
}

/* TimeDistributed(Dense(4)) on (batch, time, features): x W + b at every step, and the
 * gradient of sum(y * R), from the formulas here. */
static void test_time_distributed_dense(void)
{
    tg_scope *s = tg_scope_begin();
    enum { B = 2, T = 3, F = 5, U = 4 };
    double x[B * T * F], r[B * T * U], w[F * U], bias[U];
    for (int i = 0; i < B * T * F; i++)
        x[i] = sin(0.7 * i + 0.3);
    for (int i = 0; i < B * T * U; i++)
        r[i] = cos(1.3 * i);
    tg_layer *l = tg_time_distributed(tg_dense(.units = U, .dtype = TG_F64, .seed = 4));
    REQUIRE(l);
    tg_tensor *xt = tg_tensor_from(TG_F64, TG_SHAPE(B, T, F), x);
    REQUIRE(tg_layer_call(l, xt)); /* builds */
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    REQUIRE(n == 2);
    CHECK(!strcmp(tg_variable_name(vars[0]), "time_distributed/dense/kernel"));
    CHECK(!strcmp(tg_variable_name(vars[1]), "time_distributed/dense/bias"));
    REQUIRE(tg_assign(vars[1], tg_tensor_from(TG_F64, TG_SHAPE(U), ((double[]){0.1, -0.2, 0.3, -0.4}))) == 0);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, xt);
    tg_tensor *y = tg_layer_call(l, xt, .training = true);
    tg_tensor *loss = tg_sum(tg_mul(y, tg_tensor_from(TG_F64, TG_SHAPE(B, T, U), r)));
    tg_tape_end(t);
    REQUIRE(y);
    REQUIRE(tg_copy_out_f64(vars[0], w, F * U) == 0 && tg_copy_out_f64(vars[1], bias, U) == 0);
    double want_y[B * T * U] = {0}, want_w[F * U] = {0}, want_b[U] = {0}, want_x[B * T * F] = {0};
    for (int i = 0; i < B * T; i++)
        for (int o = 0; o < U; o++) {
            want_y[i * U + o] = bias[o];
            want_b[o] += r[i * U + o];
            for (int f = 0; f < F; f++) {
                want_y[i * U + o] += x[i * F + f] * w[f * U + o];
                want_w[f * U + o] += x[i * F + f] * r[i * U + o];
                want_x[i * F + f] += w[f * U + o] * r[i * U + o];
            }
        }
    CHECK_TENSOR_ARRAY(y, TG_SHAPE(B, T, U), want_y, 1e-14);
    CHECK_TENSOR_ARRAY(tg_gradient(t, loss, vars[0]), TG_SHAPE(F, U), want_w, 1e-14);
    CHECK_TENSOR_ARRAY(tg_gradient(t, loss, vars[1]), TG_SHAPE(U), want_b, 1e-14);
    CHECK_TENSOR_ARRAY(tg_gradient(t, loss, xt), TG_SHAPE(B, T, F), want_x, 1e-14);
    tg_shape o = tg_layer_output_shape(l);
    CHECK(o.rank == 2 && o.dims[0] == T && o.dims[1] == U);
    tg_tape_free(t);
    tg_layer_free(l);
    tg_scope_end(s);
}

static void test_time_distributed_conv2d_shape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = tg_time_distributed(tg_conv2d_layer(.filters = 4, .kernel_size = {3}));
    REQUIRE(l);
    tg_tensor *y = tg_layer_call(l, tg_ones(TG_F32, TG_SHAPE(2, 3, 8, 7, 1)));
    REQUIRE(y);
    CHECK(tg_rank(y) == 5 && tg_dim(y, 0) == 2 && tg_dim(y, 1) == 3 && tg_dim(y, 2) == 6 && tg_dim(y, 3) == 5 &&
          tg_dim(y, 4) == 4);
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    CHECK(n == 2 && !strcmp(tg_variable_name(vars[0]), "time_distributed/conv2d/kernel"));
    tg_layer_free(l);
    tg_scope_end(s);
}

/* Rising sequences against falling ones: a Bidirectional LSTM of sequences, a
 * TimeDistributed Dense per step, then a classifier; the loss falls as it fits. */
static void test_sequential_fits(void)
{
    tg_scope *s = tg_scope_begin();
    float x[64 * 6], y[64];
    tg_rng *rng = tg_rng_new(5);
    for (int i = 0; i < 64; i++) {
        float start = (float)tg_rng_uniform01(rng), step = (float)(0.05 + 0.1 * tg_rng_uniform01(rng));
        y[i] = (float)(i % 2);
        for (int t = 0; t < 6; t++)
            x[i * 6 + t] = start + (y[i] ? 1.0f : -1.0f) * step * (float)t;
    }
    tg_rng_free(rng);
    tg_model *m = tg_sequential_with(
        tg_sequential_options(.seed = 3),
        tg_bidirectional(tg_lstm(.units = 4, .return_sequences = true), .input_shape = TG_SHAPE(6, 1)),
        tg_time_distributed(tg_dense(.units = 2, .activation = TG_TANH)), tg_flatten(),
        tg_dense(.units = 1, .activation = TG_SIGMOID));
    REQUIRE(m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.02), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                            .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    int n;
    tg_model_trainable_variables(m, &n);
    CHECK(n == 6 + 2 + 2);
    tg_history *h = tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(64, 6, 1), x), tg_tensor_from(TG_F32, TG_SHAPE(64, 1), y),
                           .epochs = 15, .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
    int e = 0;
    const double *loss = tg_history_get(h, "loss", &e), *acc = tg_history_get(h, "accuracy", &e);
    REQUIRE(loss && acc && e == 15);
    CHECK(loss[e - 1] < 0.5 * loss[0]);
    CHECK(acc[e - 1] >= 0.9);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* In a functional graph: tg_layer_apply checks the shapes through the inner layers. */
static void test_functional(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *in = tg_input(TG_SHAPE(5, 2));
    tg_keras_tensor *h = tg_layer_apply(tg_bidirectional(tg_gru(.units = 3, .return_sequences = true)), in);
    tg_keras_tensor *out = tg_layer_apply(tg_time_distributed(tg_dense(.units = 2)), h);
    tg_shape hs = tg_keras_tensor_shape(h), os = tg_keras_tensor_shape(out);
    CHECK(hs.rank == 2 && hs.dims[0] == 5 && hs.dims[1] == 6);
    CHECK(os.rank == 2 && os.dims[0] == 5 && os.dims[1] == 2);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(in), TG_KERAS_TENSORS(out), .seed = 2);
    REQUIRE(m);
    int n;
    tg_model_variables(m, &n);
    CHECK(n == 6 + 2);
    tg_tensor *y = tg_model_call(m, tg_ones(TG_F32, TG_SHAPE(4, 5, 2)));
    CHECK(y && tg_rank(y) == 3 && tg_dim(y, 0) == 4 && tg_dim(y, 1) == 5 && tg_dim(y, 2) == 2);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_bidirectional(tg_dense(.units = 2)) == NULL,
                 "tg_bidirectional: layer \"dense\" (Dense) is not a recurrent layer");
    EXPECT_ERROR(tg_bidirectional(tg_lstm(.units = 0)) == NULL, "tg_lstm: units must be a positive integer");
    EXPECT_ERROR(tg_bidirectional(tg_simple_rnn(.units = 2, .go_backwards = true)) == NULL,
                 "tg_bidirectional: layer \"simple_rnn\" (SimpleRNN) has go_backwards set");
    EXPECT_ERROR(tg_bidirectional(tg_gru(.units = 2), .merge_mode = (tg_merge_mode)9) == NULL,
                 "merge_mode 9 is not a tg_merge_mode");
    tg_layer *td = tg_time_distributed(tg_dense(.units = 2));
    REQUIRE(td);
    EXPECT_ERROR(tg_layer_call(td, tg_zeros(TG_F32, TG_SHAPE(4, 3))) == NULL,
                 "TimeDistributed \"time_distributed\": expects inputs of rank at least 3, (batch, time, ...); one "
                 "example has shape (None, 3)");
    CHECK(!tg_layer_built(td));
    tg_layer_free(td);
    tg_layer *b = tg_bidirectional(tg_lstm(.units = 2));
    REQUIRE(b);
    EXPECT_ERROR(tg_layer_call(b, tg_zeros(TG_F32, TG_SHAPE(4, 3))) == NULL,
                 "LSTM \"bidirectional/forward_lstm\": expects inputs of shape (batch, time, features)");
    tg_layer_free(b);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_bidirectional_against_pytorch);
    RUN(test_bidirectional_names_and_shapes);
    RUN(test_time_distributed_dense);
    RUN(test_time_distributed_conv2d_shape);
    RUN(test_sequential_fits);
    RUN(test_functional);
    RUN(test_errors);
    return TEST_SUMMARY();
}
