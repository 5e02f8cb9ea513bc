/* Keras's mixed_bfloat16 dtype policy: the global policy and the per-layer option, their
 * names and refusals; under it variables, gradients and optimizer state stay float32,
 * layer outputs are bfloat16 and a model's outputs float32; and a training step's values
 * and gradients against the exact (float64) ones within the bound bfloat16's rounding
 * gives, for Dense and Conv2D.
 *
 * The bound. With u = 2^-8 (bfloat16's unit roundoff: 8 significant bits) and g(K) the
 * float32 bound of a sum of K terms ((K - 1) 2^-24 / (1 - (K - 1) 2^-24)): a product of
 * two operands each rounded to bfloat16 is within (2u + u^2) of the exact product, their
 * float32 sum adds g S, and the result's rounding to bfloat16 u of it. So for a sum of
 * products whose absolute values add up to S (a layer's pre-activation, a kernel's
 * gradient), |mixed - exact| <= (2u + u^2 + g) (1 + u) S + u |exact|; the bias's gradient,
 * a sum of the rounded upstream gradients, is within (u + g) (1 + u) S + u |exact|; and a
 * layer's output (the product rounded, the rounded bias added in float32 and rounded
 * again) within (2u + u^2 + g) (1 + u)^3 S + u (1 + u)^2 (|s| + |b|) + u |exact| + 2^-24 (|s| + |b|),
 * s the product. The test computes the exact values in float64 from the same float32
 * weights and inputs, asserts each element within its bound, and that the mixed values are
 * not the float32 ones (bfloat16 did run). */
#include <math.h>
#include <stdlib.h>

#include "check.h"

static const double U = 0x1p-8;

static double g_k(int64_t k) { return (double)(k - 1) * 0x1p-24 / (1 - (double)(k - 1) * 0x1p-24); }

static double *values(const tg_tensor *t)
{
    int64_t n = tg_size(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!v || tg_copy_out_f64(t, v, n) != 0) {
        printf("  FAIL values: %s\n", tg_last_error());
        exit(1);
    }
    return v;
}

static void test_policy_names(void)
{
    CHECK(strcmp(tg_dtype_policy(), "float32") == 0);
    CHECK(tg_set_dtype_policy("mixed_bfloat16") == 0 && strcmp(tg_dtype_policy(), "mixed_bfloat16") == 0);
    CHECK(tg_set_dtype_policy("float64") == 0 && strcmp(tg_dtype_policy(), "float64") == 0);
    EXPECT_ERROR(tg_set_dtype_policy("mixed_bfloat8") == -1,
                 "tg_set_dtype_policy: unknown dtype policy \"mixed_bfloat8\"; valid policies are \"float32\", "
                 "\"float64\" and \"mixed_bfloat16\"");
    EXPECT_ERROR(tg_set_dtype_policy("mixed_float16") == -1,
                 "\"mixed_float16\" is Keras's but not tapegrad's (no float16; variables stay float32 or float64); "
                 "valid policies are \"float32\", \"float64\" and \"mixed_bfloat16\"");
    EXPECT_ERROR(tg_set_dtype_policy(NULL) == -1, "unknown dtype policy \"(null)\"");
    CHECK(strcmp(tg_dtype_policy(), "float64") == 0); /* a refused name changes nothing */
    CHECK(tg_set_dtype_policy("float32") == 0);
    EXPECT_ERROR(tg_dense(.units = 2, .dtype_policy = "bfloat32") == NULL,
                 "tg_dense: unknown dtype policy \"bfloat32\"; valid policies are");
    EXPECT_ERROR(tg_conv2d_layer(.filters = 2, .kernel_size = {3}, .dtype = TG_F64, .dtype_policy = "mixed_bfloat16") ==
                     NULL,
                 "tg_conv2d: dtype float64 and dtype_policy \"mixed_bfloat16\" disagree; give one of them");
}

/* Which layers a policy reaches: those made after tg_set_dtype_policy, unless their own
 * option says otherwise; variables float32, a layer's output bfloat16, the model's float32. */
static void test_layer_semantics(void)
{
    tg_layer *before = tg_dense(.units = 3);
    REQUIRE(tg_set_dtype_policy("mixed_bfloat16") == 0);
    tg_layer *d1 = tg_dense(.units = 6, .activation = TG_RELU, .input_dim = 5);
    tg_layer *d2 = tg_dense(.units = 3, .dtype_policy = "float32");
    REQUIRE(tg_set_dtype_policy("float32") == 0);
    tg_layer *own = tg_dense(.units = 3, .dtype_policy = "mixed_bfloat16");
    REQUIRE(before && d1 && d2 && own);
    CHECK(strcmp(tg_layer_dtype_policy(before), "float32") == 0);
    CHECK(strcmp(tg_layer_dtype_policy(d1), "mixed_bfloat16") == 0);
    CHECK(strcmp(tg_layer_dtype_policy(d2), "float32") == 0);
    CHECK(strcmp(tg_layer_dtype_policy(own), "mixed_bfloat16") == 0);
    tg_model *m = tg_sequential(d1, d2);
    tg_model *m2 = tg_sequential(tg_dense(.units = 4, .input_dim = 5), own);
    REQUIRE(m && m2);
    tg_layer_free(before);
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(3);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(4, 5));
    tg_rng_free(r);
    tg_tensor *y = tg_model_call(m, x);
    CHECK(y && tg_dtype_of(y) == TG_F32);
    int n = 0;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    CHECK(n == 4);
    for (int i = 0; i < n; i++)
        CHECK(tg_dtype_of(vars[i]) == TG_F32);
    tg_tensor *h = tg_layer_call(d1, x);
    CHECK(h && tg_dtype_of(h) == TG_BF16); /* the compute dtype */
    tg_tensor *h2 = tg_layer_call(d2, h);
    CHECK(h2 && tg_dtype_of(h2) == TG_F32); /* a float32 layer casts its input back */
    tg_tensor *y2 = tg_model_call(m2, x);
    CHECK(y2 && tg_dtype_of(y2) == TG_F32); /* the mixed last layer's output cast for the loss */
    CHECK(tg_dtype_of(tg_layer_call(own, tg_layer_call(tg_model_layer(m2, 0), x))) == TG_BF16);
    tg_scope_end(s);
    tg_model_free(m);
    tg_model_free(m2);
}

/* One element's check: |got - exact| <= bound; counts failures, keeps the largest error. */
typedef struct tally {
    int bad;
    double max_err;
} tally;

static void within(tally *t, const char *what, int64_t i, double got, double exact, double bound)
{
    double e = fabs(got - exact);
    t->max_err = fmax(t->max_err, e);
    if (!(e <= bound) && t->bad++ < 3)
        printf("  %s[%lld]: %.9g, exact %.9g, error %.3g above the bound %.3g\n", what, (long long)i, got, exact, e,
               bound);
}

static double product_bound(double S, double exact, int64_t k)
{
    return (2 * U + U * U + g_k(k)) * (1 + U) * S + U * fabs(exact);
}

static double output_bound(double S, double s, double b, double exact, int64_t k)
{
    return (2 * U + U * U + g_k(k)) * pow(1 + U, 3) * S + U * (1 + U) * (1 + U) * (fabs(s) + fabs(b)) +
           U * fabs(exact) + 0x1p-24 * (fabs(s) + fabs(b));
}

/* A Dense layer under mixed_bfloat16, loss sum(c * y): y, dL/dkernel and dL/dbias against
 * float64, and Adam's update keeps float32 variables and state. */
static void test_dense_step_bound(void)
{
    enum { B = 48, K = 40, N = 12 };
    REQUIRE(tg_set_dtype_policy("mixed_bfloat16") == 0);
    tg_model *m = tg_sequential(tg_dense(.units = N, .input_dim = K, .bias_initializer = tg_init_random_normal(0, 1)));
    REQUIRE(tg_set_dtype_policy("float32") == 0);
    REQUIRE(m && tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_MSE) == 0);
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(11);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(B, K)), *c = tg_random_normal(r, TG_F32, TG_SHAPE(B, N));
    tg_rng_free(r);
    int nv = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &nv);
    REQUIRE(nv == 2);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_sum(tg_mul(y, c));
    tg_tape_end(tape);
    tg_tensor *grads[2];
    REQUIRE(tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 2, .out = grads) == 0);
    tg_tape_free(tape);
    REQUIRE(grads[0] && grads[1]);
    CHECK(tg_dtype_of(y) == TG_F32 && tg_dtype_of(grads[0]) == TG_F32 && tg_dtype_of(grads[1]) == TG_F32);
    double *xv = values(x), *cv = values(c), *w = values(vars[0]), *b = values(vars[1]), *yv = values(y),
           *gw = values(grads[0]), *gb = values(grads[1]);
    tally ty = {0}, tw = {0}, tb = {0};
    for (int i = 0; i < B; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0, S = 0;
            for (int k = 0; k < K; k++)
                sum += xv[i * K + k] * w[k * N + j], S += fabs(xv[i * K + k] * w[k * N + j]);
            within(&ty, "y", i * N + j, yv[i * N + j], sum + b[j], output_bound(S, sum, b[j], sum + b[j], K));
        }
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++) {
            double sum = 0, S = 0;
            for (int i = 0; i < B; i++)
                sum += xv[i * K + k] * cv[i * N + j], S += fabs(xv[i * K + k] * cv[i * N + j]);
            within(&tw, "dkernel", k * N + j, gw[k * N + j], sum, product_bound(S, sum, B));
        }
    for (int j = 0; j < N; j++) {
        double sum = 0, S = 0;
        for (int i = 0; i < B; i++)
            sum += cv[i * N + j], S += fabs(cv[i * N + j]);
        within(&tb, "dbias", j, gb[j], sum, (U + g_k(B)) * (1 + U) * S + U * fabs(sum));
    }
    CHECK(ty.bad == 0 && tw.bad == 0 && tb.bad == 0);
    /* bfloat16 ran: float32 alone would be within about 2^-20 of these sums */
    CHECK(ty.max_err > 1e-4 && tw.max_err > 1e-4);
    printf("  largest errors: y %.3g, dkernel %.3g, dbias %.3g\n", ty.max_err, tw.max_err, tb.max_err);
    CHECK(tg_apply_gradients(tg_model_optimizer(m), grads, vars, 2) == 0);
    CHECK(tg_dtype_of(vars[0]) == TG_F32 && tg_dtype_of(vars[1]) == TG_F32);
    int no = tg_optimizer_state_count(tg_model_optimizer(m));
    CHECK(no == 4); /* Adam's momentum and velocity of both variables */
    for (int i = 0; i < no; i++) {
        tg_optimizer_slot slot;
        CHECK(tg_optimizer_state(tg_model_optimizer(m), i, &slot) == 0 && slot.dtype == TG_F32);
    }
    free(xv), free(cv), free(w), free(b), free(yv), free(gw), free(gb);
    tg_scope_end(s);
    tg_model_free(m);
}

/* Conv2D under mixed_bfloat16 (VALID, 3x3, stride 1): y and dL/dkernel against float64. */
static void test_conv_step_bound(void)
{
    enum { B = 3, H = 7, W = 6, C = 3, F = 4, KH = 3, KW = 3, OH = H - KH + 1, OW = W - KW + 1 };
    tg_layer *conv = tg_conv2d_layer(.filters = F, .kernel_size = {KH, KW}, .use_bias = false,
                                     .input_shape = TG_SHAPE(H, W, C), .dtype_policy = "mixed_bfloat16");
    tg_model *m = tg_sequential(conv);
    REQUIRE(m);
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(21);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(B, H, W, C)),
              *c = tg_random_normal(r, TG_F32, TG_SHAPE(B, OH, OW, F));
    tg_rng_free(r);
    int nv = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &nv);
    REQUIRE(nv == 1);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_sum(tg_mul(y, c));
    tg_tape_end(tape);
    tg_tensor *gk = tg_gradient(tape, loss, vars[0]);
    tg_tape_free(tape);
    REQUIRE(y && gk && tg_dtype_of(gk) == TG_F32);
    double *xv = values(x), *cv = values(c), *k = values(vars[0]), *yv = values(y), *gv = values(gk);
    tally ty = {0}, tk = {0};
#define X(n, i, j, ch)    xv[(((n)*H + (i)) * W + (j)) * C + (ch)]
#define KER(a, b2, ch, f) k[(((a)*KW + (b2)) * C + (ch)) * F + (f)]
#define CY(n, i, j, f)    cv[(((n)*OH + (i)) * OW + (j)) * F + (f)]
    for (int n = 0; n < B; n++)
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++)
                for (int f = 0; f < F; f++) {
                    double sum = 0, S = 0;
                    for (int a = 0; a < KH; a++)
                        for (int b2 = 0; b2 < KW; b2++)
                            for (int ch = 0; ch < C; ch++) {
                                double p = X(n, i + a, j + b2, ch) * KER(a, b2, ch, f);
                                sum += p, S += fabs(p);
                            }
                    int64_t at = ((n * OH + i) * OW + j) * F + f;
                    within(&ty, "conv y", at, yv[at], sum, product_bound(S, sum, KH * KW * C));
                }
    for (int a = 0; a < KH; a++)
        for (int b2 = 0; b2 < KW; b2++)
            for (int ch = 0; ch < C; ch++)
                for (int f = 0; f < F; f++) {
                    double sum = 0, S = 0;
                    for (int n = 0; n < B; n++)
                        for (int i = 0; i < OH; i++)
                            for (int j = 0; j < OW; j++) {
                                double p = X(n, i + a, j + b2, ch) * CY(n, i, j, f);
                                sum += p, S += fabs(p);
                            }
                    int64_t at = ((a * KW + b2) * C + ch) * F + f;
                    within(&tk, "conv dkernel", at, gv[at], sum, product_bound(S, sum, B * OH * OW));
                }
#undef X
#undef KER
#undef CY
    CHECK(ty.bad == 0 && tk.bad == 0);
    CHECK(ty.max_err > 1e-4 && tk.max_err > 1e-4);
    printf("  largest errors: conv y %.3g, dkernel %.3g\n", ty.max_err, tk.max_err);
    free(xv), free(cv), free(k), free(yv), free(gv);
    tg_scope_end(s);
    tg_model_free(m);
}

/* A whole fit under the policy trains (the loss falls) with float32 variables; its traced
 * step (the default) gives the losses and weights of the eager one, bit for bit: the
 * replayed bfloat16 ops run as the dispatcher runs them. */
static tg_model *mixed_mlp(void)
{
    if (tg_set_dtype_policy("mixed_bfloat16") != 0)
        return NULL;
    tg_model *m = tg_sequential(tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 4), tg_dropout(.rate = 0.1),
                                tg_dense(.units = 3));
    tg_set_dtype_policy("float32");
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                        .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

static void test_fit(void)
{
    tg_model *m = mixed_mlp(), *eager = mixed_mlp();
    REQUIRE(m && eager);
    tg_scope *s = tg_scope_begin();
    enum { N = 96 };
    float xs[N * 4];
    int32_t ys[N];
    tg_rng *r = tg_rng_new(4);
    for (int i = 0; i < N; i++) {
        ys[i] = i % 3;
        for (int k = 0; k < 4; k++)
            xs[i * 4 + k] = (float)((k == ys[i] ? 2.0 : 0.0) + 0.5 * tg_rng_uniform01(r));
    }
    tg_rng_free(r);
    tg_tensor *x = tg_tensor_from(TG_F32, TG_SHAPE(N, 4), xs), *y = tg_tensor_from(TG_I32, TG_SHAPE(N), ys);
    tg_history *h = tg_fit(m, x, y, .epochs = 8, .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
    tg_history *he =
        tg_fit(eager, x, y, .epochs = 8, .batch_size = 16, .verbose = TG_VERBOSE_SILENT, .run_eagerly = true);
    REQUIRE(h && he);
    int ne = 0, nee = 0;
    const double *loss = tg_history_get(h, "loss", &ne), *loss_eager = tg_history_get(he, "loss", &nee);
    CHECK(loss && ne == 8 && loss[7] < 0.5 * loss[0]);
    for (int e = 0; loss && loss_eager && e < ne && e < nee; e++)
        CHECK(loss[e] == loss_eager[e]);
    int nv = 0;
    tg_tensor *const *v = tg_model_variables(m, &nv), *const *ve = tg_model_variables(eager, &nv);
    for (int i = 0; v && ve && i < nv; i++)
        TENSORS_AGREE(v[i], ve[i], CHECK_BITS);
    tg_history_free(h);
    tg_history_free(he);
    tg_scope_end(s);
    tg_model_free(m);
    tg_model_free(eager);
}

/* TG_CHECK_NUMERICS sees bfloat16 too: an Inf made in a mixed layer's bfloat16 product is
 * reported at that op, not at the cast back to float32. */
static void test_numerics(void)
{
    tg_model *m = tg_sequential(tg_dense(.units = 2, .input_dim = 2, .dtype_policy = "mixed_bfloat16"));
    REQUIRE(m);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(1, 2), 3e38f, 3e38f); /* finite in float32 and bfloat16; the sum is not */
    REQUIRE(tg_model_call(m, x) != NULL);
    int n = 0;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    REQUIRE(n == 2 && tg_assign(vars[0], tg_ones(TG_F32, TG_SHAPE(2, 2))) == 0);
    tg_set_check(TG_CHECK_NUMERICS);
    EXPECT_ERROR(tg_model_call(m, x) == NULL, "check_numerics: tg_matmul in layer \"dense");
    tg_set_check(0);
    tg_scope_end(s);
    tg_model_free(m);
}

int main(void)
{
    RUN(test_policy_names);
    RUN(test_layer_semantics);
    RUN(test_dense_step_bound);
    RUN(test_conv_step_bound);
    RUN(test_fit);
    RUN(test_numerics);
    return TEST_SUMMARY();
}
