/* Graph mode fuses max_pool2d_grad (2x2, stride 2, VALID) and the ReLU's
 * act_grad_bias_sum into one pass (src/graph/fuse.c). The traced gradients are the eager
 * ones bit for bit: on odd heights and widths, ties, windows all zero after the ReLU,
 * NaN, a partial batch (the fused node's shapes at another batch size), and on a CNN's
 * fit (Conv2D relu -> MaxPooling2D(2) -> Flatten -> Dense) traced against run_eagerly.
 * The fusion happens: the graph has one node fewer than the same function pooled with
 * SAME padding (no padding on even sizes, the same values, not fused). float32 and
 * float64. */
#include <stdint.h>

#include "check.h"

static uint32_t rng_state = 2024;

static uint32_t next_random(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Few distinct values (ties, many below zero: windows all zero after the ReLU), both
 * zeros, and now and then a NaN. */
static float tie_value(bool nan)
{
    uint32_t r = next_random() % 24;
    if (r == 0 && nan)
        return NAN;
    if (r == 1)
        return -0.0f;
    return (float)(r % 6) - 3.0f;
}

enum { SMOOTH, TIES, TIES_NAN };

static tg_tensor *random_tensor(tg_shape shape, int kind)
{
    int64_t n = 1;
    for (int i = 0; i < shape.rank; i++)
        n *= shape.dims[i];
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!v)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        v[i] = kind != SMOOTH ? tie_value(kind == TIES_NAN)
               : i % 5 == 0   ? -0.0f
                              : (float)(next_random() % 1000) / 128.0f - 3.0f;
    tg_tensor *t = tg_tensor_from(TG_F32, shape, v);
    free(v);
    return t;
}

typedef struct pool_case {
    bool same;
    tg_tensor *bias; /* a variable: the inputs z and w share the batch dimension */
} pool_case;

/* inputs: z, w; outputs: d sum(max_pool2d(relu(z + bias)) * w) / dz and / dbias */
static int pool_relu_grads(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    (void)n;
    const pool_case *pc = user;
    tg_tape *t = tg_tape_begin();
    tg_watch(t, in[0]);
    tg_tensor *y = tg_bias_add_act(in[0], pc->bias, TG_BIAS_RELU);
    tg_tensor *p = tg_max_pool2d(y, .padding = pc->same ? TG_PADDING_SAME : TG_PADDING_VALID);
    tg_tensor *loss = tg_sum(tg_mul(p, in[1]));
    tg_tape_end(t);
    int rc = tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = (tg_tensor *[]){in[0], pc->bias},
                          .n_sources = 2, .out = out);
    tg_tape_free(t);
    return rc == 0 ? 2 : -1;
}

static void check_shape(int64_t n, int64_t h, int64_t w, int64_t c, tg_dtype dtype)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *bias = tg_variable(tg_cast(random_tensor(TG_SHAPE(c), SMOOTH), dtype), .name = "bias");
    REQUIRE(bias);
    pool_case valid = {.same = false, .bias = bias}, same = {.same = true, .bias = bias};
    tg_function *f = tg_function_new(pool_relu_grads, &valid, .name = "pool_relu");
    tg_function *fs = tg_function_new(pool_relu_grads, &same, .name = "pool_relu_same");
    REQUIRE(f && fs);
    bool even = h % 2 == 0 && w % 2 == 0;
    for (int64_t batch = n; batch >= n - 1 && batch >= 1; batch--) { /* the traced batch, then one less */
        tg_tensor *in[2] = {tg_cast(random_tensor(TG_SHAPE(batch, h, w, c), TIES_NAN), dtype),
                            tg_cast(random_tensor(TG_SHAPE(batch, h / 2, w / 2, c), SMOOTH), dtype)};
        REQUIRE(in[0] && in[1]);
        tg_tensor *eager[2], *traced[2], *unfused[2];
        REQUIRE(pool_relu_grads(&valid, in, 2, eager) == 2);
        for (int call = 0; call < 2; call++) /* the trace, then a replay */
            REQUIRE(tg_function_call(f, in, 2, traced) == 2);
        TENSORS_AGREE(traced[0], eager[0], CHECK_BITS);
        TENSORS_AGREE(traced[1], eager[1], CHECK_BITS);
        for (int call = 0; even && call < 2; call++)
            REQUIRE(tg_function_call(fs, in, 2, unfused) == 2);
        if (even) {
            TENSORS_AGREE(unfused[0], eager[0], CHECK_BITS);
            TENSORS_AGREE(unfused[1], eager[1], CHECK_BITS);
        }
    }
    if (tg_function_trace_count(f) != 1)
        printf("  [%lld, %lld, %lld, %lld]: %d traces\n", (long long)n, (long long)h, (long long)w, (long long)c,
               tg_function_trace_count(f));
    CHECK(tg_function_trace_count(f) == 1); /* the partial batch replayed the graph */
    if (even)
        CHECK(tg_function_get_stats(f).nodes == tg_function_get_stats(fs).nodes - 1);
    tg_function_free(f);
    tg_function_free(fs);
    tg_variable_free(bias);
    tg_scope_end(s);
}

static void test_shapes(void)
{
    check_shape(3, 5, 7, 3, TG_F32);    /* odd: the last row and column in no window */
    check_shape(3, 4, 6, 37, TG_F32);   /* channels past a vector */
    check_shape(1, 2, 2, 1, TG_F32);    /* one window */
    check_shape(4, 26, 26, 32, TG_F32); /* the benchmark CNN's */
    check_shape(3, 5, 7, 3, TG_F64);    /* the float64 kernels */
    check_shape(3, 6, 4, 9, TG_F64);
}

static tg_model *cnn(void)
{
    tg_model *m = tg_sequential_with(
        tg_sequential_options(.seed = 5),
        tg_conv2d_layer(.filters = 8, .kernel_size = {3, 3}, .activation = TG_RELU, .input_shape = TG_SHAPE(11, 11, 1)),
        tg_max_pooling2d(.pool_size = {2, 2}), tg_flatten(), tg_dense(.units = 3));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                        .from_logits = true) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* A CNN's fit, traced and eager, from the same initial weights: the same losses and
 * weights bit for bit. */
static void test_cnn_fit(void)
{
    tg_model *m = cnn(), *eager = cnn();
    REQUIRE(m && eager);
    tg_scope *s = tg_scope_begin();
    enum { N = 40 };
    int32_t ys[N];
    for (int i = 0; i < N; i++)
        ys[i] = i % 3;
    tg_tensor *x = random_tensor(TG_SHAPE(N, 11, 11, 1), TIES), *y = tg_tensor_from(TG_I32, TG_SHAPE(N), ys);
    tg_history *h = tg_fit(m, x, y, .epochs = 3, .batch_size = 16, .shuffle = false, .verbose = TG_VERBOSE_SILENT);
    tg_history *he = tg_fit(eager, x, y, .epochs = 3, .batch_size = 16, .shuffle = false, .verbose = TG_VERBOSE_SILENT,
                            .run_eagerly = true);
    REQUIRE(h && he);
    int ne = 0, nee = 0;
    const double *loss = tg_history_get(h, "loss", &ne), *loss_eager = tg_history_get(he, "loss", &nee);
    CHECK(loss && loss_eager && ne == 3 && nee == 3);
    for (int e = 0; loss && loss_eager && e < ne && e < nee; e++)
        CHECK(loss[e] == loss_eager[e]);
    int nv = 0, nve = 0;
    tg_tensor *const *v = tg_model_variables(m, &nv), *const *ve = tg_model_variables(eager, &nve);
    CHECK(nv == 4 && nve == 4);
    for (int i = 0; v && ve && i < nv && i < nve; i++)
        TENSORS_AGREE(v[i], ve[i], CHECK_BITS);
    tg_history_free(h);
    tg_history_free(he);
    tg_scope_end(s);
    tg_model_free(m);
    tg_model_free(eager);
}

int main(void)
{
    RUN(test_shapes);
    RUN(test_cnn_fit);
    return TEST_SUMMARY();
}
