/* MultiHeadAttention: outputs and gradients (inputs and the eight variables) against
 * PyTorch float64's nn.MultiheadAttention with Keras's weights mapped onto torch's
 * (tests/fixtures/attention_golden.txt, tools/make_attention_fixtures.py), cross-attention
 * and causal self-attention; Keras's variable names and shapes; the errors. */
#include "check.h"
#include "fixture.h"

#define MAXV 1024

typedef struct arr {
    tg_shape shape;
    double v[MAXV];
} arr;

enum { QUERY, VALUE, VARS, R = VARS + 8, OUTPUT, GRAD_QUERY, GRAD_VALUE, GRAD_VARS, N_ARRAYS = GRAD_VARS + 8 };
static const char *const names[N_ARRAYS] = {"query",
                                            "value",
                                            "query_kernel",
                                            "query_bias",
                                            "key_kernel",
                                            "key_bias",
                                            "value_kernel",
                                            "value_bias",
                                            "output_kernel",
                                            "output_bias",
                                            "r",
                                            "output",
                                            "grad_query",
                                            "grad_value",
                                            "grad_query_kernel",
                                            "grad_query_bias",
                                            "grad_key_kernel",
                                            "grad_key_bias",
                                            "grad_value_kernel",
                                            "grad_value_bias",
                                            "grad_output_kernel",
                                            "grad_output_bias"};

typedef struct acase {
    char name[32];
    int heads, key_dim, causal;
    arr a[N_ARRAYS];
} acase;

static tg_tensor *tensor_of(const arr *a) { return tg_tensor_from(TG_F64, a->shape, a->v); }

static bool matches(const char *what, const acase *c, const tg_tensor *t, const arr *want, double tol)
{
    char label[96];
    snprintf(label, sizeof label, "%s %s", c->name, what);
    return tensor_matches_(__FILE__, __LINE__, label, t, &want->shape, want->v, fx_size(&want->shape), tol);
}

static void check_case(const acase *c)
{
    tg_scope *s = tg_scope_begin();
    const tg_shape *qs = &c->a[QUERY].shape, *vs = &c->a[VALUE].shape;
    tg_layer *mha = tg_multi_head_attention(.num_heads = c->heads, .key_dim = c->key_dim,
                                            .use_causal_mask = c->causal != 0, .dtype = TG_F64);
    tg_keras_tensor *q = tg_input(TG_SHAPE(qs->dims[1], qs->dims[2]), .dtype = TG_F64);
    tg_keras_tensor *v = c->causal ? q : tg_input(TG_SHAPE(vs->dims[1], vs->dims[2]), .dtype = TG_F64);
    tg_keras_tensor *y = tg_layer_apply(mha, q, v);
    tg_model *m = c->causal ? tg_functional(TG_KERAS_TENSORS(q), TG_KERAS_TENSORS(y), .dtype = TG_F64)
                            : tg_functional(TG_KERAS_TENSORS(q, v), TG_KERAS_TENSORS(y), .dtype = TG_F64);
    REQUIRE(m);
    int n;
    tg_tensor *const *vars = tg_layer_variables(mha, &n);
    REQUIRE(n == 8);
    static const char *const keras_names[8] = {"multi_head_attention/query/kernel",
                                               "multi_head_attention/query/bias",
                                               "multi_head_attention/key/kernel",
                                               "multi_head_attention/key/bias",
                                               "multi_head_attention/value/kernel",
                                               "multi_head_attention/value/bias",
                                               "multi_head_attention/attention_output/kernel",
                                               "multi_head_attention/attention_output/bias"};
    for (int k = 0; k < 8; k++) {
        CHECK(!strcmp(tg_variable_name(vars[k]), keras_names[k]));
        CHECK(tg_assign(vars[k], tensor_of(&c->a[VARS + k])) == 0);
    }
    tg_tensor *xq = tensor_of(&c->a[QUERY]), *xv = tensor_of(&c->a[VALUE]);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, xq);
    tg_watch(t, xv);
    tg_tensor *out[1];
    const tg_tensor *ins[2] = {xq, xv};
    REQUIRE(tg_model_call_list(m, ins, c->causal ? 1 : 2, out, 1) == 0);
    tg_tensor *loss = tg_sum(tg_mul(out[0], tensor_of(&c->a[R])));
    tg_tape_end(t);
    CHECK(matches("output", c, out[0], &c->a[OUTPUT], 1e-12));
    CHECK(matches("grad_query", c, tg_gradient(t, loss, xq), &c->a[GRAD_QUERY], 1e-12));
    if (!c->causal)
        CHECK(matches("grad_value", c, tg_gradient(t, loss, xv), &c->a[GRAD_VALUE], 1e-12));
    for (int k = 0; k < 8; k++)
        CHECK(matches(names[GRAD_VARS + k], c, tg_gradient(t, loss, vars[k]), &c->a[GRAD_VARS + k], 1e-12));
    tg_tape_free(t);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_against_pytorch(void)
{
    static fx_reader r;
    static acase c;
    REQUIRE(fx_open(&r, "attention_golden.txt", "tools/make_attention_fixtures.py"));
    char tag[32], *rest;
    int cases = 0;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        if (!strcmp(tag, "case")) {
            memset(&c, 0, sizeof c);
            if (!fx_word(&rest, c.name, sizeof c.name) || !fx_int(&rest, &c.heads) || !fx_int(&rest, &c.key_dim) ||
                !fx_int(&rest, &c.causal))
                fx_fail(&r, "a bad `case`");
            continue;
        }
        if (!strcmp(tag, "end")) {
            check_case(&c);
            cases++;
            continue;
        }
        int k = 0;
        while (k < N_ARRAYS && strcmp(tag, names[k]))
            k++;
        if (k == N_ARRAYS || !fx_array(&rest, &c.a[k].shape, c.a[k].v, MAXV))
            fx_fail(&r, "a bad `%s`", tag);
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases == 2);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    EXPECT_ERROR(tg_multi_head_attention(.num_heads = 0, .key_dim = 4) == NULL,
                 "num_heads and key_dim must be positive");
    tg_layer *mha = tg_multi_head_attention(.num_heads = 2, .key_dim = 4);
    tg_keras_tensor *q = tg_input(TG_SHAPE(3, 8)), *v = tg_input(TG_SHAPE(5, 8)), *k = tg_input(TG_SHAPE(4, 8));
    EXPECT_ERROR(tg_layer_apply(mha, q, v, k) == NULL,
                 "MultiHeadAttention \"multi_head_attention\": All dimensions of `value` and `key`, except the last "
                 "one, must be equal. Received: value_shape=(None, 5, 8) and key_shape=(None, 4, 8)");
    tg_layer *flat = tg_multi_head_attention(.num_heads = 2, .key_dim = 4);
    tg_keras_tensor *rows = tg_input(TG_SHAPE(8));
    EXPECT_ERROR(tg_layer_apply(flat, rows, rows) == NULL, "need (batch, steps, features) or more axes");
    tg_layer_free(mha);
    tg_layer_free(flat);
    tg_keras_tensor *inputs[] = {q, v, k, rows}; /* their InputLayers, which no model took */
    for (int i = 0; i < 4; i++)
        tg_layer_free(tg_keras_tensor_layer(inputs[i]));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_against_pytorch);
    RUN(test_errors);
    return TEST_SUMMARY();
}
