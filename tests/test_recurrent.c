/* SimpleRNN, LSTM and GRU: outputs and gradients (for the inputs and the three
 * variables) against PyTorch float64 with Keras's weights mapped onto torch's
 * (tests/fixtures/rnn_golden.txt, tools/make_rnn_fixtures.py), return_sequences and
 * go_backwards; GRU's reset_after=False against finite differences; Keras's initial
 * values (orthogonal recurrent kernels, the forget gate's bias of ones); a model that
 * learns; the errors. */
#include "check.h"
#include "fixture.h"
#include "gradcheck.h"

#define MAXV 512

typedef struct arr {
    tg_shape shape;
    double v[MAXV];
} arr;

enum { X, KERNEL, RECURRENT, BIAS, R, OUTPUT, GRAD_X, GRAD_KERNEL, GRAD_RECURRENT, GRAD_BIAS, N_ARRAYS };
static const char *const array_names[N_ARRAYS] = {
    "x",      "kernel",      "recurrent_kernel",      "bias",     "r", "output",
    "grad_x", "grad_kernel", "grad_recurrent_kernel", "grad_bias"};

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
                     .dtype = TG_F64};
    if (!strcmp(c->kind, "lstm"))
        return tg_lstm_at(TG_LOC, o);
    if (!strcmp(c->kind, "gru"))
        return tg_gru_at(TG_LOC, o);
    return tg_simple_rnn_at(TG_LOC, o);
}

static void check_case(const rcase *c)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = layer_for(c);
    tg_tensor *x = tensor_of(&c->a[X]);
    REQUIRE(l && tg_layer_call(l, x) != NULL); /* builds */
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    REQUIRE(n == 3);
    for (int k = 0; k < 3; k++)
        CHECK(tg_assign(vars[k], tensor_of(&c->a[KERNEL + k])) == 0);
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
    for (int k = 0; k < 3; k++) {
        const arr *want = &c->a[GRAD_KERNEL + k];
        snprintf(label, sizeof label, "%s %s", c->name, array_names[GRAD_KERNEL + k]);
        CHECK(tensor_matches_(__FILE__, __LINE__, label, tg_gradient(t, loss, vars[k]), &want->shape, want->v,
                              fx_size(&want->shape), 1e-12));
    }
    tg_tape_free(t);
    tg_layer_free(l);
    tg_scope_end(s);
}

static void test_against_pytorch(void)
{
    static fx_reader r;
    static rcase c;
    REQUIRE(fx_open(&r, "rnn_golden.txt", "tools/make_rnn_fixtures.py"));
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
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases == 9);
}

/* GRU with reset_after=False (Keras 2's form; torch has none): finite differences. */
static tg_tensor *gru_v1(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    return tg_sum(tg_layer_call((tg_layer *)user, xs[0]));
}

typedef struct gru_case {
    tg_layer *l;
    tg_tensor *x;
} gru_case;

static tg_tensor *gru_v1_of_variables(void *user)
{
    gru_case *c = user;
    return tg_sum(tg_layer_call(c->l, c->x));
}

static void test_gru_reset_before_finite_differences(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = tg_gru(.units = 3, .reset_after = false, .return_sequences = true, .dtype = TG_F64, .seed = 7);
    tg_tensor *x = gc_input(11, TG_SHAPE(2, 4, 3), -1, 1);
    REQUIRE(tg_layer_call(l, x) != NULL);
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    CHECK(n == 3 && tg_rank(vars[2]) == 1 && tg_dim(vars[2], 0) == 9); /* one bias (9,) without reset_after */
    CHECK(gradcheck("gru reset_after=false", gru_v1, &x, 1, l, 1e-6, 1e-7));
    gru_case gc = {l, x};
    CHECK(gradcheck_variables("gru reset_after=false variables", gru_v1_of_variables, vars, n, &gc, 1e-6, 1e-7));
    tg_layer_free(l);
    tg_scope_end(s);
}

/* Keras's initial values: an orthogonal recurrent kernel (the (units, 4 units) matrix has
 * orthonormal rows, U U^T = I), and the forget gate's bias 1. */
static void test_initial_values(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = tg_lstm(.units = 5, .dtype = TG_F64, .seed = 3);
    REQUIRE(tg_layer_call(l, tg_zeros(TG_F64, TG_SHAPE(1, 2, 3))) != NULL);
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    CHECK(!strcmp(tg_variable_name(vars[1]), "lstm/recurrent_kernel"));
    tg_tensor *uu = tg_matmul(vars[1], vars[1], .transpose_b = true); /* (5, 20) x (20, 5) */
    double g[25], b[20];
    REQUIRE(tg_copy_out_f64(uu, g, 25) == 0 && tg_copy_out_f64(vars[2], b, 20) == 0);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            CHECK_NEAR(g[i * 5 + j], i == j ? 1.0 : 0.0, 1e-12);
    for (int i = 0; i < 20; i++)
        CHECK_NEAR(b[i], i >= 5 && i < 10 ? 1.0 : 0.0, 0);
    tg_tensor *tall = tg_initialize(tg_init_orthogonal(), TG_F64, TG_SHAPE(6, 4), 9);
    tg_tensor *qtq = tg_matmul(tall, tall, .transpose_a = true);
    double q[16];
    REQUIRE(tg_copy_out_f64(qtq, q, 16) == 0);
    for (int i = 0; i < 16; i++)
        CHECK_NEAR(q[i], i % 5 == 0 ? 1.0 : 0.0, 1e-12);
    tg_layer_free(l);
    tg_scope_end(s);
}

/* An LSTM learns to tell rising sequences from falling ones. */
static void test_lstm_learns(void)
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
    tg_model *m = tg_sequential(tg_lstm(.units = 8, .input_shape = TG_SHAPE(6, 1), .seed = 1),
                                tg_dense(.units = 1, .activation = TG_SIGMOID));
    REQUIRE(m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.02), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                            .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    tg_history *h = tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(64, 6, 1), x), tg_tensor_from(TG_F32, TG_SHAPE(64, 1), y),
                           .epochs = 40, .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
    int n = 0;
    const double *acc = tg_history_get(h, "accuracy", &n);
    CHECK(acc && n == 40 && acc[n - 1] >= 0.95);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_lstm(.units = 0) == NULL, "tg_lstm: units must be a positive integer, got 0");
    tg_layer *g = tg_gru(.units = 2);
    EXPECT_ERROR(tg_layer_call(g, tg_zeros(TG_F32, TG_SHAPE(4, 3))) == NULL,
                 "GRU \"gru\": expects inputs of shape (batch, time, features)");
    tg_layer_free(g);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_against_pytorch);
    RUN(test_gru_reset_before_finite_differences);
    RUN(test_initial_values);
    RUN(test_lstm_learns);
    RUN(test_errors);
    return TEST_SUMMARY();
}
