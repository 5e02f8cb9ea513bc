/* Layers one by one: Dense against hand-computed values, initializers (formulas, fans,
 * statistics, seeding), Dropout, BatchNormalization, LayerNormalization, Embedding,
 * Flatten/Reshape/Activation, and the messages for bad options. */
#include <stdlib.h>

#include "check.h"

/* The values of a tensor as doubles (malloc'd). */
static double *values(const tg_tensor *t, int64_t *n)
{
    *n = tg_size(t);
    double *v = malloc(sizeof(double) * (size_t)(*n ? *n : 1));
    tg_copy_out_f64(t, v, *n);
    return v;
}

/* The layer's i-th variable, assigned from doubles (converted to its dtype). */
static void set_var(tg_layer *l, int i, const double *vals)
{
    int n;
    tg_tensor *v = tg_layer_variables(l, &n)[i];
    tg_scope *s = tg_scope_begin();
    tg_tensor *t = tg_cast(tg_tensor_from(TG_F64, tg_shape_of(v), vals), tg_dtype_of(v));
    CHECK(tg_assign(v, t) == 0);
    tg_scope_end(s);
}

static void test_dense_forward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *d = tg_dense(.units = 2, .activation = TG_RELU);
    CHECK(d && !tg_layer_built(d));
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 0, -1, 2, 1, 0);
    CHECK(tg_layer_call(d, x) != NULL); /* builds: kernel (3, 2), bias (2,) */
    int n;
    tg_tensor *const *v = tg_layer_variables(d, &n);
    CHECK(n == 2 && tg_dim(v[0], 0) == 3 && tg_dim(v[0], 1) == 2 && tg_dim(v[1], 0) == 2);
    CHECK(strcmp(tg_variable_name(v[0]), "dense/kernel") == 0 && strcmp(tg_variable_name(v[1]), "dense/bias") == 0);
    CHECK_VALUES(v[1], 0, 0, 0); /* bias_initializer zeros */
    set_var(d, 0, (double[]){1, 2, 3, 4, 5, 6});
    set_var(d, 1, (double[]){0.5, -1});
    /* x @ K = [[1-5, 2-6], [2+3, 4+4]] = [[-4, -4], [5, 8]]; + b; relu */
    CHECK_VALUES(tg_layer_call(d, x), 0, 0, 0, 5.5, 7);
    tg_layer *lin = tg_dense(.units = 2, .use_bias = false);
    tg_layer_call(lin, x);
    CHECK(tg_layer_variables(lin, &n) && n == 1);
    set_var(lin, 0, (double[]){1, 2, 3, 4, 5, 6});
    CHECK_VALUES(tg_layer_call(lin, x), 0, -4, -4, 5, 8);
    /* Dense acts on the last axis of a rank-3 batch. */
    tg_layer *d3 = tg_dense(.units = 1, .input_shape = TG_SHAPE(2, 3));
    tg_tensor *x3 = tg_from_f32(TG_SHAPE(1, 2, 3), 1, 2, 3, 4, 5, 6);
    tg_layer_call(d3, x3);
    set_var(d3, 0, (double[]){1, 0, -1});
    tg_tensor *y3 = tg_layer_call(d3, x3);
    CHECK(y3 && tg_rank(y3) == 3 && tg_dim(y3, 2) == 1);
    CHECK_VALUES(y3, 0, -2, -2);
    tg_layer_free(d);
    tg_layer_free(lin);
    tg_layer_free(d3);
    tg_scope_end(s);
}

static void test_activations(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(1, 3), -1.0, 0.5, 2.0);
    CHECK_VALUES(tg_activate(x, TG_LINEAR), 1e-15, -1.0, 0.5, 2.0);
    CHECK_VALUES(tg_activate(x, TG_RELU), 1e-15, 0, 0.5, 2.0);
    CHECK_VALUES(tg_activate(x, TG_LEAKY_RELU), 1e-12, -0.2, 0.5, 2.0); /* Keras 3 slope 0.2 */
    CHECK_VALUES(tg_activate(x, TG_ELU), 1e-12, exp(-1.0) - 1, 0.5, 2.0);
    CHECK_VALUES(tg_activate(x, TG_SIGMOID), 1e-12, 1 / (1 + exp(1.0)), 1 / (1 + exp(-0.5)), 1 / (1 + exp(-2.0)));
    CHECK_VALUES(tg_activate(x, TG_TANH), 1e-12, tanh(-1.0), tanh(0.5), tanh(2.0));
    CHECK_VALUES(tg_activate(x, TG_SOFTPLUS), 1e-12, log1p(exp(-1.0)), log1p(exp(0.5)), log1p(exp(2.0)));
    /* exact gelu: x * Phi(x) */
    CHECK_VALUES(tg_activate(x, TG_GELU), 1e-10, -0.5 * (1 + erf(-1 / sqrt(2))), 0.25 * (1 + erf(0.5 / sqrt(2))),
                 1.0 * (1 + erf(2 / sqrt(2))));
    /* Keras 3's formulas, written out */
    CHECK_VALUES(tg_activate(x, TG_RELU6), 1e-15, 0, 0.5, 2.0);
    const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
    CHECK_VALUES(tg_activate(x, TG_SELU), 1e-12, scale * alpha * (exp(-1.0) - 1), scale * 0.5, scale * 2.0);
    CHECK_VALUES(tg_activate(x, TG_SILU), 1e-12, -1 / (1 + exp(1.0)), 0.5 / (1 + exp(-0.5)), 2 / (1 + exp(-2.0)));
    CHECK_VALUES(tg_activate(x, TG_HARD_SIGMOID), 1e-15, 2.0 / 6, 3.5 / 6, 5.0 / 6);
    CHECK_VALUES(tg_activate(x, TG_SOFTSIGN), 1e-15, -0.5, 0.5 / 1.5, 2.0 / 3.0);
    CHECK_VALUES(tg_activate(x, TG_LOG_SIGMOID), 1e-12, -log1p(exp(1.0)), -log1p(exp(-0.5)), -log1p(exp(-2.0)));
    CHECK(strcmp(tg_activation_name(TG_SILU), "silu") == 0 &&
          strcmp(tg_activation_name(TG_LOG_SIGMOID), "log_sigmoid") == 0);
    double z = exp(-1.0) + exp(0.5) + exp(2.0);
    CHECK_VALUES(tg_activate(x, TG_SOFTMAX), 1e-12, exp(-1.0) / z, exp(0.5) / z, exp(2.0) / z);
    CHECK(strcmp(tg_activation_name(TG_GELU), "gelu") == 0 && tg_activation_name((tg_activation)99) == NULL);
    tg_clear_error();
    EXPECT_ERROR(tg_activate(x, (tg_activation)42) == NULL, "activation 42 is not a tg_activation");

    tg_layer *a = tg_activation_layer(.activation = TG_TANH);
    CHECK_VALUES(tg_layer_call(a, x), 1e-6, tanh(-1.0), tanh(0.5), tanh(2.0)); /* float32 layer */
    CHECK(strcmp(tg_layer_class_name(a), "Activation") == 0 && tg_layer_activation(a) == TG_TANH);
    tg_layer *d = tg_dense(.units = 1, .activation = TG_SOFTMAX), *f = tg_flatten();
    CHECK(tg_layer_activation(d) == TG_SOFTMAX && tg_layer_activation(f) == TG_LINEAR);
    tg_layer_free(a);
    tg_layer_free(d);
    tg_layer_free(f);
    tg_scope_end(s);
}

/* ---- initializers ------------------------------------------------------------------- */
static void test_initializer_fans(void)
{
    double in, out;
    tg_initializer_fans(TG_SHAPE(7), &in, &out);
    CHECK(in == 7 && out == 7);
    tg_initializer_fans(TG_SHAPE(3, 5), &in, &out);
    CHECK(in == 3 && out == 5);
    tg_initializer_fans(TG_SHAPE(3, 2, 4, 8), &in, &out); /* conv kernel: receptive field 6 */
    CHECK(in == 24 && out == 48);
    tg_initializer_fans(TG_SHAPE(), &in, &out);
    CHECK(in == 1 && out == 1);
}

typedef struct {
    tg_initializer init;
    double mean, std; /* expected */
    double bound;     /* every |value - mean| <= bound */
} init_case;

static void check_stats(const char *name, const tg_tensor *t, double mean, double sd, double bound)
{
    int64_t n;
    double *v = values(t, &n), sum = 0, sq = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        sum += v[i];
    double m = sum / (double)n;
    for (int64_t i = 0; i < n; i++) {
        sq += (v[i] - m) * (v[i] - m);
        worst = fmax(worst, fabs(v[i] - mean));
    }
    double s = sqrt(sq / (double)n);
    /* mean within 5 standard errors, std within 3% (about 6 standard errors for 20000 draws) */
    bool ok = fabs(m - mean) <= 5 * sd / sqrt((double)n) + 1e-12 && fabs(s - sd) <= 0.03 * sd + 1e-12 &&
              worst <= bound * (1 + 1e-6) + 1e-12;
    if (!ok)
        printf("  %s: mean %.6g (want %.6g), std %.6g (want %.6g), max dev %.6g (bound %.6g)\n", name, m, mean, s, sd,
               worst, bound);
    CHECK(ok);
    free(v);
}

static void test_initializer_statistics(void)
{
    tg_scope *s = tg_scope_begin();
    tg_shape shape = TG_SHAPE(200, 100); /* fan_in 200, fan_out 100 */
    double g = sqrt(2.0 / 300), he = sqrt(2.0 / 200), le = sqrt(1.0 / 200), cut = 2 / 0.87962566103423978;
    init_case cases[] = {
        {tg_init_glorot_uniform(), 0, g, g * sqrt(3.0)}, /* limit sqrt(6 / 300) = std * sqrt(3) */
        {tg_init_glorot_normal(), 0, g, g * cut},        /* truncated at two stddev / .8796 */
        {tg_init_he_uniform(), 0, he, he * sqrt(3.0)},
        {tg_init_he_normal(), 0, he, he * cut},
        {tg_init_lecun_uniform(), 0, le, le * sqrt(3.0)},
        {tg_init_lecun_normal(), 0, le, le * cut},
        {tg_init_random_uniform(-0.05, 0.05), 0, 0.1 / sqrt(12.0), 0.05},
        {tg_init_random_normal(1.0, 0.5), 1.0, 0.5, 0.5 * 6},
        {tg_init_truncated_normal(0.0, 1.0), 0, 0.87962566103423978, 2.0},
        {(tg_initializer){0}, 0, g, g * sqrt(3.0)}, /* TG_INIT_DEFAULT: glorot_uniform */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_tensor *t = tg_initialize(cases[i].init, i % 2 ? TG_F64 : TG_F32, shape, 1000 + i);
        CHECK(t && tg_dtype_of(t) == (i % 2 ? TG_F64 : TG_F32));
        if (t)
            check_stats(tg_initializer_name(cases[i].init.kind), t, cases[i].mean, cases[i].std, cases[i].bound);
    }
    /* uniform kinds reach close to their limit (a wrong, smaller limit would not) */
    int64_t n;
    double *v = values(tg_initialize(tg_init_he_uniform(), TG_F64, shape, 5), &n), worst = 0;
    for (int64_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(v[i]));
    CHECK(worst > 0.99 * sqrt(6.0 / 200) && worst <= sqrt(6.0 / 200));
    free(v);
    CHECK_VALUES(tg_initialize(tg_init_zeros(), TG_F32, TG_SHAPE(2), 0), 0, 0, 0);
    CHECK_VALUES(tg_initialize(tg_init_ones(), TG_F64, TG_SHAPE(2), 0), 0, 1, 1);
    CHECK_VALUES(tg_initialize(tg_init_constant(0.25), TG_F32, TG_SHAPE(3), 0), 0, 0.25, 0.25, 0.25);
    CHECK(strcmp(tg_initializer_name(TG_INIT_HE_NORMAL), "he_normal") == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_initialize(tg_init_he_normal(), TG_I32, TG_SHAPE(2), 0) == NULL,
                 "he_normal needs a float dtype, not int32");
    EXPECT_ERROR(tg_initialize((tg_initializer){.kind = (tg_init_kind)77}, TG_F32, TG_SHAPE(2), 0) == NULL,
                 "initializer kind 77 is not a tg_init_kind");
    tg_scope_end(s);
}

static void test_initializer_seeding(void)
{
    tg_scope *s = tg_scope_begin();
    int64_t n1, n2, n3;
    double *a = values(tg_initialize(tg_init_glorot_normal(), TG_F32, TG_SHAPE(8, 8), 42), &n1);
    double *b = values(tg_initialize(tg_init_glorot_normal(), TG_F32, TG_SHAPE(8, 8), 42), &n2);
    double *c = values(tg_initialize(tg_init_glorot_normal(), TG_F32, TG_SHAPE(8, 8), 43), &n3);
    CHECK(n1 == 64 && memcmp(a, b, sizeof(double) * 64) == 0);
    int same = 0;
    for (int i = 0; i < 64; i++)
        same += a[i] == c[i];
    CHECK(same < 4);
    free(a);
    free(b);
    free(c);
    tg_scope_end(s);
}

/* ---- Dropout ----------------------------------------------------------------------------- */
static void test_dropout(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *d = tg_dropout(.rate = 0.3, .seed = 11);
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(100, 100));
    /* inference: x unchanged */
    CHECK_VALUES(tg_slice(tg_layer_call(d, x), TG_SHAPE(0, 0), TG_SHAPE(1, 3)), 0, 1, 1, 1);
    int64_t n;
    double *v = values(tg_layer_call(d, x, .training = true), &n);
    int kept = 0, other = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(v[i] - 1 / 0.7) < 1e-6)
            kept++;
        else if (v[i] != 0)
            other++;
    }
    /* keep rate 0.7 within 4 binomial standard deviations (sqrt(.21 / 10000) = .0046) */
    CHECK(other == 0);
    CHECK(fabs(kept / 1e4 - 0.7) < 4 * 0.0046);
    free(v);
    /* the same seed gives the same masks, and each call draws a new one */
    tg_layer *d2 = tg_dropout(.rate = 0.3, .seed = 11);
    tg_tensor *small = tg_ones(TG_F64, TG_SHAPE(4, 16));
    tg_tensor *m1 = tg_layer_call(d2, small, .training = true), *m2 = tg_layer_call(d2, small, .training = true);
    tg_layer *d3 = tg_dropout(.rate = 0.3, .seed = 11);
    tg_tensor *n1 = tg_layer_call(d3, small, .training = true);
    CHECK(tg_dtype_of(m1) == TG_F32); /* a float32 layer casts its inputs, as Keras autocasts */
    CHECK(tg_item(tg_sum(tg_abs(tg_sub(m1, n1)))) == 0);
    CHECK(tg_item(tg_sum(tg_abs(tg_sub(m1, m2)))) > 0);
    /* gradient: the mask */
    tg_tensor *xv = tg_variable(tg_fill(TG_F32, TG_SHAPE(100, 100), 2.0));
    tg_tape *t = tg_tape_begin();
    tg_tensor *y = tg_layer_call(d, xv, .training = true);
    tg_tensor *loss = tg_sum(y);
    tg_tape_end(t);
    tg_tensor *gx = tg_gradient(t, loss, xv);
    CHECK(gx && tg_item(tg_sum(tg_abs(tg_sub(tg_mul(gx, tg_scalar(2.0)), y)))) < 1e-4); /* y = 2 * mask */
    tg_tape_free(t);
    tg_variable_free(xv);
    /* rate 0: identity while training */
    tg_layer *d0 = tg_dropout(.rate = 0);
    CHECK_VALUES(tg_slice(tg_layer_call(d0, x, .training = true), TG_SHAPE(5, 5), TG_SHAPE(1, 2)), 0, 1, 1);
    tg_layer_free(d);
    tg_layer_free(d0);
    tg_layer_free(d2);
    tg_layer_free(d3);
    tg_scope_end(s);
}

/* ---- BatchNormalization ----------------------------------------------------------------------- */
static void test_batch_normalization(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *bn = tg_batch_normalization(.dtype = TG_F64);
    /* two features; column 0: 1, 2, 3, 6 (mean 3, var 3.5); column 1: 0, 0, 4, 4 (mean 2, var 4) */
    tg_tensor *x = tg_from_f64(TG_SHAPE(4, 2), 1, 0, 2, 0, 3, 4, 6, 4);
    CHECK(tg_layer_call(bn, x) != NULL); /* builds; inference with mean 0, var 1 */
    int n;
    tg_tensor *const *v = tg_layer_variables(bn, &n);
    CHECK(n == 4);
    const char *want[4] = {"batch_normalization/gamma", "batch_normalization/beta", "batch_normalization/moving_mean",
                           "batch_normalization/moving_variance"};
    for (int i = 0; i < 4 && i < n; i++) {
        CHECK(strcmp(tg_variable_name(v[i]), want[i]) == 0);
        CHECK(tg_variable_trainable(v[i]) == (i < 2));
    }
    set_var(bn, 0, (double[]){2, 1});    /* gamma */
    set_var(bn, 1, (double[]){0.5, -1}); /* beta */
    double e = 1e-3;
    /* training: batch statistics */
    tg_tensor *y = tg_layer_call(bn, x, .training = true);
    double a0 = 2 / sqrt(3.5 + e), a1 = 1 / sqrt(4 + e);
    CHECK_VALUES(y, 1e-12, -2 * a0 + 0.5, -2 * a1 - 1, -1 * a0 + 0.5, -2 * a1 - 1, 0.5, 2 * a1 - 1, 3 * a0 + 0.5,
                 2 * a1 - 1);
    /* moving = moving * 0.99 + batch * 0.01 */
    double mm0 = 0.03, mm1 = 0.02, mv0 = 0.99 + 0.035, mv1 = 0.99 + 0.04;
    CHECK_VALUES(v[2], 1e-12, mm0, mm1);
    CHECK_VALUES(v[3], 1e-12, mv0, mv1);
    /* inference: the moving statistics */
    tg_tensor *yi = tg_layer_call(bn, tg_from_f64(TG_SHAPE(1, 2), 1, 0));
    CHECK_VALUES(yi, 1e-12, (1 - mm0) * 2 / sqrt(mv0 + e) + 0.5, (0 - mm1) / sqrt(mv1 + e) - 1);
    /* a second training step moves them again */
    tg_layer_call(bn, x, .training = true);
    CHECK_VALUES(v[2], 1e-12, mm0 * 0.99 + 0.03, mm1 * 0.99 + 0.02);
    /* frozen (Keras 3): inference mode even when training, no update */
    tg_layer_set_trainable(bn, false);
    tg_tensor *yf = tg_layer_call(bn, tg_from_f64(TG_SHAPE(1, 2), 1, 0), .training = true);
    double mm0b = mm0 * 0.99 + 0.03, mv0b = mv0 * 0.99 + 0.035;
    CHECK_VALUES(tg_slice(yf, TG_SHAPE(0, 0), TG_SHAPE(1, 1)), 1e-12, (1 - mm0b) * 2 / sqrt(mv0b + e) + 0.5);
    CHECK_VALUES(v[2], 1e-12, mm0b, mm1 * 0.99 + 0.02);
    CHECK(!tg_variable_trainable(v[0]) && !tg_variable_trainable(v[3]));
    tg_layer_set_trainable(bn, true);
    CHECK(tg_variable_trainable(v[0]) && tg_variable_trainable(v[1]) && !tg_variable_trainable(v[2]) &&
          !tg_variable_trainable(v[3]));
    tg_layer_free(bn);
    tg_scope_end(s);
}

static void test_batch_normalization_axes(void)
{
    tg_scope *s = tg_scope_begin();
    /* NHWC (1, 2, 1, 2): statistics over batch, height and width for each channel */
    tg_layer *bn = tg_batch_normalization(.dtype = TG_F64, .center = false, .scale = false, .momentum = 0.5);
    tg_tensor *x = tg_from_f64(TG_SHAPE(1, 2, 1, 2), 1, 10, 3, 30);
    tg_tensor *y = tg_layer_call(bn, x, .training = true);
    int n;
    tg_tensor *const *v = tg_layer_variables(bn, &n);
    CHECK(n == 2); /* only the moving statistics */
    CHECK_VALUES(y, 1e-12, -1 / sqrt(1 + 1e-3), -10 / sqrt(100 + 1e-3), 1 / sqrt(1 + 1e-3), 10 / sqrt(100 + 1e-3));
    CHECK_VALUES(v[0], 1e-12, 1, 10);   /* 0 * .5 + mean * .5: means 2 and 20 */
    CHECK_VALUES(v[1], 1e-12, 1, 50.5); /* 1 * .5 + var * .5: vars 1 and 100 */
    tg_layer_free(bn);
    /* axis 1 of (batch, features, time): parameters broadcast along axis 1 */
    tg_layer *b1 = tg_batch_normalization(.dtype = TG_F64, .axis = 1);
    tg_tensor *x1 = tg_from_f64(TG_SHAPE(1, 2, 2), 1, 3, 10, 20);
    CHECK_VALUES(tg_layer_call(b1, x1, .training = true), 1e-12, -1 / sqrt(1 + 1e-3), 1 / sqrt(1 + 1e-3),
                 -5 / sqrt(25 + 1e-3), 5 / sqrt(25 + 1e-3));
    CHECK(tg_layer_variables(b1, &n) && n == 4 && tg_size(tg_layer_variables(b1, &n)[0]) == 2);
    tg_layer_free(b1);
    /* the batch axis is no feature axis */
    tg_clear_error();
    tg_layer *b0 = tg_batch_normalization(.axis = 0);
    EXPECT_ERROR(tg_layer_call(b0, x1) == NULL, "axis 0 is out of range for inputs of rank 3");
    CHECK(!tg_layer_built(b0));
    tg_layer_free(b0);
    tg_scope_end(s);
}

static void test_layer_normalization(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *ln = tg_layer_normalization(.dtype = TG_F64);
    /* rows: 1, 2, 3 (mean 2, var 2/3) and 0, 0, 6 (mean 2, var 8) */
    tg_tensor *x = tg_from_f64(TG_SHAPE(2, 3), 1, 2, 3, 0, 0, 6);
    tg_layer_call(ln, x);
    int n;
    tg_tensor *const *v = tg_layer_variables(ln, &n);
    CHECK(n == 2 && strcmp(tg_variable_name(v[0]), "layer_normalization/gamma") == 0 &&
          strcmp(tg_variable_name(v[1]), "layer_normalization/beta") == 0);
    set_var(ln, 0, (double[]){1, 2, 3});
    set_var(ln, 1, (double[]){0, 1, 0});
    double r0 = 1 / sqrt(2.0 / 3 + 1e-3), r1 = 1 / sqrt(8 + 1e-3);
    tg_tensor *y = tg_layer_call(ln, x, .training = true); /* training or not: the same */
    CHECK_VALUES(y, 1e-12, -r0, 1, 3 * r0, -2 * r1, -4 * r1 + 1, 12 * r1);
    tg_layer_free(ln);
    tg_scope_end(s);
}

/* ---- Embedding ------------------------------------------------------------------------------ */
static void test_embedding(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *e = tg_embedding(.input_dim = 5, .output_dim = 2, .dtype = TG_F64);
    tg_tensor *idx = tg_from_i32(TG_SHAPE(2, 2), 0, 3, 3, 4);
    CHECK(tg_layer_call(e, idx) != NULL);
    int n;
    tg_tensor *emb = tg_layer_variables(e, &n)[0];
    CHECK(n == 1 && strcmp(tg_variable_name(emb), "embedding/embeddings") == 0);
    /* Keras's default: uniform(-0.05, 0.05) */
    CHECK(tg_item(tg_max(tg_abs(emb))) <= 0.05 && tg_item(tg_max(tg_abs(emb))) > 0);
    set_var(e, 0, (double[]){0, 1, 10, 11, 20, 21, 30, 31, 40, 41});
    tg_tensor *y = tg_layer_call(e, idx);
    CHECK(y && tg_rank(y) == 3 && tg_dim(y, 2) == 2);
    CHECK_VALUES(y, 0, 0, 1, 30, 31, 30, 31, 40, 41);
    CHECK_VALUES(tg_layer_call(e, tg_from_f32(TG_SHAPE(2, 2), 1, 2, 0, 0)), 0, 10, 11, 20, 21, 0, 1, 0, 1);
    /* gradient: rows summed where an index repeats */
    tg_tape *t = tg_tape_begin();
    tg_tensor *out = tg_layer_call(e, idx);
    tg_tensor *loss = tg_sum(tg_mul(out, tg_from_f64(TG_SHAPE(2), 1, 10)));
    tg_tape_end(t);
    CHECK_VALUES(tg_gradient(t, loss, emb), 0, 1, 10, 0, 0, 0, 0, 2, 20, 1, 10);
    tg_tape_free(t);
    tg_clear_error();
    EXPECT_ERROR(tg_layer_call(e, tg_from_i32(TG_SHAPE(2, 2), 0, 5, 1, 1)) == NULL, "out of range [0, 5)");
    tg_layer_free(e);
    tg_scope_end(s);
}

/* ---- Flatten, Reshape ------------------------------------------------------------------------ */
static void test_flatten_reshape(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_arange(TG_F32, 0, 12, 1);
    tg_tensor *x3 = tg_reshape(x, TG_SHAPE(2, 3, 2));
    tg_layer *f = tg_flatten();
    tg_tensor *y = tg_layer_call(f, x3);
    CHECK(y && tg_rank(y) == 2 && tg_dim(y, 0) == 2 && tg_dim(y, 1) == 6);
    CHECK(tg_layer_output_shape(f).rank == 1 && tg_layer_output_shape(f).dims[0] == 6);
    tg_layer *r = tg_reshape_layer(.target_shape = TG_SHAPE(-1, 3));
    tg_tensor *z = tg_layer_call(r, y);
    CHECK(z && tg_rank(z) == 3 && tg_dim(z, 1) == 2 && tg_dim(z, 2) == 3);
    CHECK_VALUES(tg_slice(z, TG_SHAPE(1, 1, 0), TG_SHAPE(1, 1, 3)), 0, 9, 10, 11);
    tg_layer *bad = tg_reshape_layer(.target_shape = TG_SHAPE(4));
    tg_clear_error();
    EXPECT_ERROR(tg_layer_call(bad, y) == NULL,
                 "total size of the new array must be unchanged: input_shape = (6,) (6 elements), target_shape = (4,)");
    tg_clear_error();
    EXPECT_ERROR(tg_reshape_layer(.target_shape = TG_SHAPE(-1, -1)) == NULL, "at most one -1");
    tg_layer_free(f);
    tg_layer_free(r);
    tg_layer_free(bad);
    tg_scope_end(s);
}

/* ---- convolution and pooling ------------------------------------------------------------------ */
static void test_conv2d_layer(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_arange(TG_F64, 1, 10, 1), TG_SHAPE(1, 3, 3, 1)); /* 1..9 */
    tg_layer *c = tg_conv2d_layer(.filters = 1, .kernel_size = {2}, .dtype = TG_F64);
    tg_tensor *y = tg_layer_call(c, x);
    int n;
    tg_tensor *const *v = tg_layer_variables(c, &n);
    CHECK(y && n == 2 && strcmp(tg_variable_name(v[0]), "conv2d/kernel") == 0 &&
          strcmp(tg_variable_name(v[1]), "conv2d/bias") == 0);
    tg_shape ks = tg_shape_of(v[0]);
    CHECK(ks.rank == 4 && ks.dims[0] == 2 && ks.dims[1] == 2 && ks.dims[2] == 1 && ks.dims[3] == 1);
    /* glorot_uniform with fans 2*2*1 = 4 in and out: limit sqrt(6 / 8) */
    CHECK(tg_item(tg_max(tg_abs(v[0]))) <= sqrt(6.0 / 8));
    set_var(c, 0, (double[]){1, 1, 1, 1});
    set_var(c, 1, (double[]){0.5});
    /* VALID: sums of the 2x2 windows */
    CHECK_VALUES(tg_layer_call(c, x), 1e-12, 12.5, 16.5, 24.5, 28.5);
    /* SAME, stride 2: 2x2 outputs; TF pads one row and column after the image */
    tg_layer *c2 = tg_conv2d_layer(.filters = 1, .kernel_size = {2, 2}, .strides = {2}, .padding = TG_PADDING_SAME,
                                   .use_bias = false, .activation = TG_RELU, .dtype = TG_F64);
    tg_layer_call(c2, x);
    set_var(c2, 0, (double[]){1, 1, 1, -1});
    CHECK_VALUES(tg_layer_call(c2, x), 1e-12, 1 + 2 + 4 - 5, 3 + 6, 7 + 8, 9);
    tg_shape os = tg_layer_output_shape(c2);
    CHECK(os.rank == 3 && os.dims[0] == 2 && os.dims[1] == 2 && os.dims[2] == 1);
    tg_clear_error();
    tg_layer *c3 = tg_conv2d_layer(.filters = 1, .kernel_size = {4});
    EXPECT_ERROR(tg_layer_call(c3, x) == NULL,
                 "Conv2D \"conv2d\": a 4x4 window does not fit in a 3x3 image with TG_PADDING_VALID");
    tg_layer *c4 = tg_conv2d_layer(.filters = 1, .kernel_size = {1});
    EXPECT_ERROR(tg_layer_call(c4, tg_ones(TG_F32, TG_SHAPE(2, 5))) == NULL,
                 "expects batches of images (batch, height, width, channels), NHWC, but one example has shape (5,)");
    EXPECT_ERROR(tg_conv2d_layer(.filters = 0, .kernel_size = {3}) == NULL,
                 "tg_conv2d_layer: filters must be a positive integer, got 0");
    EXPECT_ERROR(tg_conv2d_layer(.filters = 2) == NULL,
                 "kernel_size (e.g. .kernel_size = {3, 3}) must be positive, got {0, 0}");
    EXPECT_ERROR(tg_conv2d_layer(.filters = 2, .kernel_size = {3}, .padding = (tg_padding)5) == NULL,
                 "padding 5 is neither TG_PADDING_VALID nor TG_PADDING_SAME");
    tg_layer_free(c);
    tg_layer_free(c2);
    tg_layer_free(c3);
    tg_layer_free(c4);
    tg_scope_end(s);
}

static void test_pooling_layers(void)
{
    tg_scope *s = tg_scope_begin();
    /* one 4x4 image with two channels: channel 0 is 0..15, channel 1 is its negative */
    double img[32];
    for (int i = 0; i < 16; i++)
        img[2 * i] = i, img[2 * i + 1] = -i;
    tg_tensor *x = tg_cast(tg_tensor_from(TG_F64, TG_SHAPE(1, 4, 4, 2), img), TG_F32);
    tg_layer *mp = tg_max_pooling2d(); /* 2x2, strides 2 */
    CHECK_VALUES(tg_layer_call(mp, x), 0, 5, 0, 7, -2, 13, -8, 15, -10);
    tg_layer *ap = tg_average_pooling2d(.pool_size = {2}, .strides = {2, 2});
    CHECK_VALUES(tg_layer_call(ap, x), 1e-6, 2.5, -2.5, 4.5, -4.5, 10.5, -10.5, 12.5, -12.5);
    tg_layer *ap3 = tg_average_pooling2d(.pool_size = {3}, .strides = {1});
    tg_tensor *y3 = tg_layer_call(ap3, x);
    CHECK(y3 && tg_dim(y3, 1) == 2 && tg_dim(y3, 2) == 2 && tg_dim(y3, 3) == 2);
    CHECK_VALUES(tg_slice(y3, TG_SHAPE(0, 0, 0, 0), TG_SHAPE(1, 1, 1, 1)), 1e-6, 5); /* mean of 0 1 2 4 5 6 8 9 10 */
    tg_layer *gp = tg_global_average_pooling2d();
    tg_tensor *g = tg_layer_call(gp, x);
    CHECK(g && tg_rank(g) == 2 && tg_dim(g, 1) == 2);
    CHECK_VALUES(g, 1e-6, 7.5, -7.5);
    CHECK(strcmp(tg_layer_class_name(gp), "GlobalAveragePooling2D") == 0 &&
          strcmp(tg_layer_name(mp), "max_pooling2d") == 0);
    tg_clear_error();
    EXPECT_ERROR(tg_max_pooling2d(.pool_size = {-1}) == NULL,
                 "tg_max_pooling2d: pool_size must be positive, got {-1, -1}");
    EXPECT_ERROR(tg_average_pooling2d(.strides = {0, 3}) == NULL,
                 "tg_average_pooling2d: strides must be positive, got {0, 3}");
    tg_layer_free(mp);
    tg_layer_free(ap);
    tg_layer_free(ap3);
    tg_layer_free(gp);
    tg_scope_end(s);
}

/* ---- bad options and inputs -------------------------------------------------------------------- */
static void test_bad_options(void)
{
    tg_clear_error();
    EXPECT_ERROR(tg_dense(.units = 0) == NULL, "tg_dense: units must be a positive integer, got 0");
    EXPECT_ERROR(tg_dense(.units = -3) == NULL, "got -3");
    EXPECT_ERROR(tg_dense(.units = 2, .activation = (tg_activation)17) == NULL,
                 "tg_dense: activation 17 is not a tg_activation");
    EXPECT_ERROR(tg_dense(.units = 2, .dtype = TG_I32) == NULL,
                 "dtype must be float32, float64 or TG_DTYPE_INHERIT, not int32");
    EXPECT_ERROR(tg_dense(.units = 2, .input_shape = TG_SHAPE(3, 0)) == NULL, "input_shape dim 1 is 0");
    EXPECT_ERROR(tg_dropout(.rate = 1.0) == NULL,
                 "tg_dropout: rate must be in [0, 1) (the fraction of inputs to drop), got 1");
    EXPECT_ERROR(tg_dropout(.rate = -0.1) == NULL, "got -0.1");
    EXPECT_ERROR(tg_dropout(.rate = NAN) == NULL, "got nan");
    EXPECT_ERROR(tg_embedding(.input_dim = 0, .output_dim = 4) == NULL, "input_dim=0, output_dim=4");
    EXPECT_ERROR(tg_batch_normalization(.momentum = 1.5) == NULL, "momentum must be in [0, 1], got 1.5");
    EXPECT_ERROR(tg_layer_normalization(.epsilon = 0) == NULL, "epsilon must be positive, got 0");
    tg_clear_error();
    EXPECT_ERROR(tg_layer_call(NULL, NULL) == NULL, "tg_layer_call: `layer` is NULL");
}

static void test_layer_input_mismatch(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *d = tg_dense(.units = 2);
    CHECK(tg_layer_call(d, tg_ones(TG_F32, TG_SHAPE(4, 3))) != NULL);
    tg_clear_error();
    CHECK(tg_layer_call(d, tg_ones(TG_F32, TG_SHAPE(4, 5))) == NULL);
    CHECK_ERROR("input 0 of layer \"dense\" is incompatible with the layer: expected shape=(None, 3), "
                "found shape=(4, 5)");
    tg_clear_error();
    tg_layer *d2 = tg_dense(.units = 2);
    EXPECT_ERROR(tg_layer_call(d2, tg_ones(TG_F32, TG_SHAPE(4))) == NULL,
                 "inputs need at least 2 axes (batch, features)");
    CHECK(!tg_layer_built(d2) && tg_layer_output_shape(d2).rank == -1);
    tg_layer_free(d);
    tg_layer_free(d2);
    tg_scope_end(s);
}

/* PReLU: relu(x) - alpha * relu(-x) by hand; its gradients (x: 1 or alpha; alpha: the
 * negative part, min(x, 0)); alpha shared along the listed axes. */
static void test_prelu(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = tg_prelu_layer();
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 2), -2, 3, 1, -0.5f);
    REQUIRE(tg_layer_call(l, x) != NULL);
    int n;
    tg_tensor *const *v = tg_layer_variables(l, &n);
    CHECK(n == 1 && !strcmp(tg_variable_name(v[0]), "p_re_lu/alpha") && tg_rank(v[0]) == 1);
    CHECK_VALUES(v[0], 0, 0, 0); /* alpha_initializer zeros: a plain relu at first */
    set_var(l, 0, (double[]){0.1, 0.25});
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_layer_call(l, x), *loss = tg_sum(y);
    tg_tape_end(t);
    CHECK_VALUES(y, 1e-7, -0.2, 3, 1, -0.125);
    tg_tensor *g[2], *src[2] = {x, v[0]};
    CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = src, .n_sources = 2, .out = g) == 0);
    CHECK_VALUES(g[0], 1e-7, 0.1, 1, 1, 0.25);
    CHECK_VALUES(g[1], 1e-7, -2, -0.5);
    tg_tape_free(t);
    tg_layer *shared = tg_prelu_layer(.shared_axes = TG_AXES(1));
    REQUIRE(tg_layer_call(shared, tg_zeros(TG_F32, TG_SHAPE(2, 3, 2))) != NULL);
    tg_tensor *const *sv = tg_layer_variables(shared, &n);
    CHECK(tg_rank(sv[0]) == 2 && tg_dim(sv[0], 0) == 1 && tg_dim(sv[0], 1) == 2);
    tg_layer *bad = tg_prelu_layer(.shared_axes = TG_AXES(0));
    EXPECT_ERROR(tg_layer_call(bad, x) == NULL, "never 0, the batch axis");
    tg_layer_free(l);
    tg_layer_free(shared);
    tg_layer_free(bad);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_dense_forward);
    RUN(test_activations);
    RUN(test_initializer_fans);
    RUN(test_initializer_statistics);
    RUN(test_initializer_seeding);
    RUN(test_dropout);
    RUN(test_batch_normalization);
    RUN(test_batch_normalization_axes);
    RUN(test_layer_normalization);
    RUN(test_embedding);
    RUN(test_flatten_reshape);
    RUN(test_conv2d_layer);
    RUN(test_pooling_layers);
    RUN(test_bad_options);
    RUN(test_layer_input_mismatch);
    RUN(test_prelu);
    return TEST_SUMMARY();
}
