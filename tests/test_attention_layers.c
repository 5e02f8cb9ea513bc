/* Keras's attention layers beyond the shapes PyTorch's nn.MultiheadAttention takes:
 * MultiHeadAttention with key_dim and value_dim of their own, output_shape, attention_axes
 * and the causal mask, Attention ("dot", "concat", use_scale, causal) and AdditiveAttention,
 * each with return_attention_scores: outputs, scores and gradients (inputs and variables)
 * against a transcription of Keras's formulas in PyTorch float64
 * (tests/fixtures/keras_attention_golden.txt, tools/make_keras_attention_fixtures.py);
 * dropout in training only, seeded; the errors for shapes that do not fit. */
#include "check.h"
#include "fixture.h"
#include "tmpfiles.h"

#define MAXV     1024
#define MAX_VARS 8

typedef struct arr {
    tg_shape shape;
    double v[MAXV];
    bool present;
} arr;

enum { QUERY, VALUE, KEY, R, RS, OUTPUT, SCORES, GRAD_QUERY, GRAD_VALUE, GRAD_KEY, VAR0, GRAD_VAR0 = VAR0 + MAX_VARS };
#define N_ARRAYS (GRAD_VAR0 + MAX_VARS)
static const char *const fixed_names[VAR0] = {"query",  "value",  "key",        "r",          "rs",
                                              "output", "scores", "grad_query", "grad_value", "grad_key"};

typedef struct acase {
    char name[48], layer[16];
    int opts[16], n_opts;
    arr a[N_ARRAYS];
} acase;

static int array_index(const char *tag)
{
    for (int k = 0; k < VAR0; k++)
        if (!strcmp(tag, fixed_names[k]))
            return k;
    int i;
    if (sscanf(tag, "grad_var%d", &i) == 1 && i >= 0 && i < MAX_VARS)
        return GRAD_VAR0 + i;
    if (sscanf(tag, "var%d", &i) == 1 && i >= 0 && i < MAX_VARS)
        return VAR0 + i;
    return -1;
}

static tg_tensor *tensor_of(const arr *a) { return tg_tensor_from(TG_F64, a->shape, a->v); }

static tg_shape example_of(tg_shape s)
{
    tg_shape e = {.rank = s.rank - 1};
    for (int i = 1; i < s.rank; i++)
        e.dims[i - 1] = s.dims[i];
    return e;
}

static tg_layer *layer_for(const acase *c)
{
    const int *o = c->opts;
    if (!strcmp(c->layer, "mha")) {
        tg_multi_head_attention_opts m = {.dtype = TG_F64,
                                          .use_bias = true,
                                          .num_heads = o[0],
                                          .key_dim = o[1],
                                          .value_dim = o[2],
                                          .use_causal_mask = o[3] != 0,
                                          .return_attention_scores = true};
        int n_out = o[4];
        m.output_shape.rank = n_out;
        for (int i = 0; i < n_out; i++)
            m.output_shape.dims[i] = o[5 + i];
        m.attention_axes.n = o[5 + n_out];
        for (int i = 0; i < m.attention_axes.n; i++)
            m.attention_axes.axis[i] = o[6 + n_out + i];
        return tg_multi_head_attention_at(TG_LOC, m);
    }
    if (!strcmp(c->layer, "additive"))
        return tg_additive_attention(.use_scale = o[0] != 0, .use_causal_mask = o[1] != 0,
                                     .return_attention_scores = true, .dtype = TG_F64);
    return tg_attention_layer(.use_scale = o[0] != 0, .score_mode = o[1] ? TG_SCORE_CONCAT : TG_SCORE_DOT,
                              .use_causal_mask = o[2] != 0, .return_attention_scores = true, .dtype = TG_F64);
}

static bool matches(const acase *c, int k, const tg_tensor *t)
{
    char label[96];
    const char *name = k < VAR0 ? fixed_names[k] : k < GRAD_VAR0 ? "var" : "grad_var";
    snprintf(label, sizeof label, "%s %s", c->name, name);
    if (k >= VAR0)
        snprintf(label, sizeof label, "%s %s%d", c->name, name, (k - VAR0) % MAX_VARS);
    return tensor_matches_(__FILE__, __LINE__, label, t, &c->a[k].shape, c->a[k].v, fx_size(&c->a[k].shape), 1e-11);
}

static void check_case(const acase *c)
{
    tg_scope *s = tg_scope_begin();
    int n_in = c->a[KEY].present ? 3 : 2, n_vars = 0;
    while (n_vars < MAX_VARS && c->a[VAR0 + n_vars].present)
        n_vars++;
    tg_keras_tensor *in[3] = {0}, *outs[2] = {0};
    for (int i = 0; i < n_in; i++)
        in[i] = tg_input(example_of(c->a[QUERY + i].shape), .dtype = TG_F64);
    tg_layer *l = layer_for(c);
    REQUIRE(tg_layer_apply_outputs_at(TG_LOC, l, (const tg_keras_tensor *const *)in, n_in, outs, 2) == 0);
    tg_shape want_scores = example_of(c->a[SCORES].shape), got_scores = tg_keras_tensor_shape(outs[1]);
    bool same = want_scores.rank == got_scores.rank;
    for (int i = 0; same && i < got_scores.rank; i++)
        same = want_scores.dims[i] == got_scores.dims[i];
    CHECK(same); /* the scores' symbolic shape */
    tg_model *m =
        tg_functional_at(TG_LOC, (const tg_keras_tensor *const *)in, n_in, (const tg_keras_tensor *const *)outs, 2,
                         (tg_functional_opts){.name = "m", .dtype = TG_F64});
    REQUIRE(m);
    int nv;
    tg_tensor *const *vars = tg_layer_variables(l, &nv);
    CHECK(nv == n_vars);
    for (int k = 0; k < nv && k < n_vars; k++)
        CHECK(tg_assign(vars[k], tensor_of(&c->a[VAR0 + k])) == 0);
    const tg_tensor *xs[3] = {0};
    for (int i = 0; i < n_in; i++)
        xs[i] = tensor_of(&c->a[QUERY + i]);
    tg_tensor *ys[2];
    tg_tape *t = tg_tape_begin(.persistent = true);
    for (int i = 0; i < n_in; i++)
        tg_watch(t, xs[i]);
    REQUIRE(tg_model_call_list(m, xs, n_in, ys, 2, .training = true) == 0); /* no dropout: the same */
    tg_tensor *loss = tg_add(tg_sum(tg_mul(ys[0], tensor_of(&c->a[R]))), tg_sum(tg_mul(ys[1], tensor_of(&c->a[RS]))));
    tg_tape_end(t);
    CHECK(matches(c, OUTPUT, ys[0]));
    CHECK(matches(c, SCORES, ys[1]));
    for (int i = 0; i < n_in; i++)
        CHECK(matches(c, GRAD_QUERY + i, tg_gradient(t, loss, xs[i])));
    for (int k = 0; k < nv && k < n_vars; k++)
        CHECK(matches(c, GRAD_VAR0 + k, tg_gradient(t, loss, vars[k])));
    tg_tape_free(t);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_against_keras_formulas(void)
{
    static fx_reader r;
    static acase c;
    REQUIRE(fx_open(&r, "keras_attention_golden.txt", "tools/make_keras_attention_fixtures.py"));
    char tag[32], *rest;
    int cases = 0;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        if (!strcmp(tag, "case")) {
            memset(&c, 0, sizeof c);
            if (!fx_word(&rest, c.name, sizeof c.name) || !fx_word(&rest, c.layer, sizeof c.layer))
                fx_fail(&r, "a bad `case`");
            continue;
        }
        if (!strcmp(tag, "opts")) {
            while (c.n_opts < 16 && fx_int(&rest, &c.opts[c.n_opts]))
                c.n_opts++;
            continue;
        }
        if (!strcmp(tag, "end")) {
            check_case(&c);
            cases++;
            continue;
        }
        int k = array_index(tag);
        if (k < 0 || !fx_array(&rest, &c.a[k].shape, c.a[k].v, MAXV))
            fx_fail(&r, "a bad `%s`", tag);
        else
            c.a[k].present = true;
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases == 12);
}

/* Attention's dropout on an identity value shows the kept probabilities themselves: each
 * is 0 or the probability / (1 - rate); only in training; the same seed, the same draws. */
static void test_attention_dropout(void)
{
    tg_scope *s = tg_scope_begin();
    enum { B = 4, TQ = 6, TV = 5 };
    tg_keras_tensor *q = tg_input(TG_SHAPE(TQ, 3), .dtype = TG_F64), *v = tg_input(TG_SHAPE(TV, TV), .dtype = TG_F64);
    tg_keras_tensor *k = tg_input(TG_SHAPE(TV, 3), .dtype = TG_F64), *outs[2];
    REQUIRE(tg_layer_apply_outputs(tg_attention_layer(.dropout = 0.4, .return_attention_scores = true, .seed = 5), outs,
                                   2, q, v, k) == 0);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(q, v, k), TG_KERAS_TENSORS(outs[0], outs[1]), .dtype = TG_F64);
    REQUIRE(m);
    tg_rng *rng = tg_rng_new(3);
    const tg_tensor *xs[3] = {tg_random_uniform(rng, TG_F64, TG_SHAPE(B, TQ, 3)),
                              tg_tile(tg_reshape(tg_eye(TG_F64, TV), TG_SHAPE(1, TV, TV)), TG_SHAPE(B, 1, 1)),
                              tg_random_uniform(rng, TG_F64, TG_SHAPE(B, TV, 3))};
    tg_rng_free(rng);
    tg_tensor *ys[2], *again[2];
    REQUIRE(tg_model_call_list(m, xs, 3, ys, 2, .training = true) == 0);
    double out[B * TQ * TV], p[B * TQ * TV];
    REQUIRE(tg_copy_out_f64(ys[0], out, B * TQ * TV) == 0 && tg_copy_out_f64(ys[1], p, B * TQ * TV) == 0);
    int dropped = 0, kept = 0;
    for (int i = 0; i < B * TQ * TV; i++) {
        if (out[i] == 0)
            dropped++;
        else if (fabs(out[i] - p[i] / 0.6) <= 1e-15)
            kept++;
    }
    CHECK(dropped + kept == B * TQ * TV && dropped > 20 && kept > 20); /* 120 draws at 0.4 */
    REQUIRE(tg_model_call_list(m, xs, 3, again, 2) == 0);              /* inference: the probabilities */
    CHECK(tg_item(tg_max(tg_abs(tg_sub(again[0], ys[1])))) < 1e-15);
    tg_model_free(m);
    tg_scope_end(s);
}

/* MultiHeadAttention's dropout: off at inference, where the layer is the one without;
 * in training different, and the same for the same seed. */
static tg_model *mha_model(double rate)
{
    tg_keras_tensor *q = tg_input(TG_SHAPE(4, 6));
    tg_keras_tensor *y = tg_layer_apply(tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .dropout = rate), q, q);
    return tg_functional(TG_KERAS_TENSORS(q), TG_KERAS_TENSORS(y), .seed = 8);
}

static void test_mha_dropout(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *plain = mha_model(0), *a = mha_model(0.5), *b = mha_model(0.5);
    REQUIRE(plain && a && b);
    tg_rng *rng = tg_rng_new(4);
    tg_tensor *x = tg_random_uniform(rng, TG_F32, TG_SHAPE(3, 4, 6));
    tg_rng_free(rng);
    tg_tensor *y0 = tg_model_call(plain, x), *ya = tg_model_call(a, x);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(y0, ya)))) == 0); /* the same weights, no dropout */
    tg_tensor *ta = tg_model_call(a, x, .training = true), *tb = tg_model_call(b, x, .training = true);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(ta, tb)))) == 0);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(ta, y0)))) > 1e-3);
    tg_model_free(plain);
    tg_model_free(a);
    tg_model_free(b);
    tg_scope_end(s);
}

/* The scalar variables of Attention (shape ()) and AdditiveAttention's (dim,) go through a
 * model file and come back. */
static tg_model *scored_model(void)
{
    tg_keras_tensor *q = tg_input(TG_SHAPE(3, 4)), *v = tg_input(TG_SHAPE(5, 4));
    tg_keras_tensor *a = tg_layer_apply(tg_attention_layer(.use_scale = true, .score_mode = TG_SCORE_CONCAT), q, v);
    tg_keras_tensor *b = tg_layer_apply(tg_additive_attention(), q, v);
    return tg_functional(TG_KERAS_TENSORS(q, v), TG_KERAS_TENSORS(tg_layer_apply(tg_add_layer(), a, b)), .seed = 2);
}

static void test_save_and_load(void)
{
    REQUIRE(make_tmpdir("tg-attention"));
    tg_scope *s = tg_scope_begin();
    tg_model *m = scored_model(), *back = scored_model();
    REQUIRE(m && back);
    int n;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    REQUIRE(n == 3);
    CHECK(!strcmp(tg_variable_name(vars[0]), "attention/scale") && tg_rank(vars[0]) == 0);
    CHECK(!strcmp(tg_variable_name(vars[1]), "attention/concat_score_weight"));
    CHECK(!strcmp(tg_variable_name(vars[2]), "additive_attention/scale") && tg_dim(vars[2], 0) == 4);
    CHECK(tg_assign(vars[0], tg_scalar(0.25)) == 0 && tg_assign(vars[1], tg_scalar(-2.0)) == 0);
    REQUIRE(tg_model_save(m, at("m.safetensors"), NULL) == 0 && tg_model_load(back, at("m.safetensors")) == 0);
    tg_tensor *const *got = tg_model_variables(back, &n);
    CHECK(tg_item(got[0]) == 0.25 && tg_item(got[1]) == -2.0);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(got[2], vars[2])))) == 0);
    tg_model_free(m);
    tg_model_free(back);
    tg_scope_end(s);
    remove_tmpdir();
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *q = tg_input(TG_SHAPE(3, 4)), *v = tg_input(TG_SHAPE(5, 4)), *k6 = tg_input(TG_SHAPE(6, 4));
    tg_keras_tensor *k3 = tg_input(TG_SHAPE(5, 3)), *flat = tg_input(TG_SHAPE(4)), *q4 = tg_input(TG_SHAPE(2, 3, 4));
    tg_keras_tensor *v4 = tg_input(TG_SHAPE(3, 5, 4)), *outs[3];
    tg_layer *att = tg_attention_layer();
    EXPECT_ERROR(tg_layer_apply(att, q, v, k6) == NULL,
                 "Attention \"attention\": the key (None, 6, 4) and the value (None, 5, 4) need the same number of "
                 "steps");
    EXPECT_ERROR(tg_layer_apply(att, q, v, k3) == NULL,
                 "Attention \"attention\": the query (None, 3, 4) and the key (None, 5, 3) need the same last dim");
    EXPECT_ERROR(tg_layer_apply(att, q, flat) == NULL,
                 "Attention \"attention\": input 1 has shape (None, 4); the query, value and key need (batch, "
                 "steps, dim)");
    EXPECT_ERROR(tg_layer_apply(att, q) == NULL, "layer accepts inputs list of length 2 or 3");
    tg_layer *add = tg_additive_attention(.return_attention_scores = true);
    EXPECT_ERROR(tg_layer_apply(add, q, v) == NULL,
                 "layer \"additive_attention\" (AdditiveAttention) has 2 outputs here; take them all");
    EXPECT_ERROR(tg_additive_attention(.score_mode = TG_SCORE_CONCAT) == NULL, "Invalid value for argument score_mode");
    EXPECT_ERROR(tg_attention_layer(.dropout = 1) == NULL, "tg_attention_layer: dropout must be in [0, 1), got 1");
    tg_layer *mha = tg_multi_head_attention(.num_heads = 2, .key_dim = 3);
    EXPECT_ERROR(tg_layer_apply(mha, q, q4) == NULL,
                 "MultiHeadAttention \"multi_head_attention\": the query (None, 3, 4) and the value (None, 2, 3, 4) "
                 "need the same rank");
    tg_layer *ax2 = tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .attention_axes = TG_AXES(2));
    EXPECT_ERROR(tg_layer_apply(ax2, q4, v4) == NULL,
                 "the query (None, 2, 3, 4) and the value (None, 3, 5, 4) differ in axis 1, which is not an "
                 "attention axis");
    tg_layer *axes = tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .attention_axes = TG_AXES(3));
    EXPECT_ERROR(tg_layer_apply(axes, q4, q4) == NULL,
                 "attention_axes has 3, not an axis of inputs of rank 4 between the batch and the features (1 to 2)");
    tg_layer *causal =
        tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .attention_axes = TG_AXES(2), .use_causal_mask = true);
    EXPECT_ERROR(tg_layer_apply(causal, q4, q4) == NULL, "use_causal_mask needs one attention axis, the first");
    tg_layer *scores = tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .return_attention_scores = true);
    EXPECT_ERROR(tg_layer_apply_outputs(scores, outs, 3, q, v) != 0, "has 2 outputs here, not 3");
    EXPECT_ERROR(tg_multi_head_attention(.num_heads = 2, .key_dim = 3, .dropout = -0.1) == NULL,
                 "dropout must be in [0, 1)");
    tg_layer *layers[] = {att, add, mha, ax2, axes, causal, scores};
    for (int i = 0; i < 7; i++)
        tg_layer_free(layers[i]);
    tg_keras_tensor *inputs[] = {q, v, k6, k3, flat, q4, v4};
    for (int i = 0; i < 7; i++)
        tg_layer_free(tg_keras_tensor_layer(inputs[i]));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_against_keras_formulas);
    RUN(test_attention_dropout);
    RUN(test_mha_dropout);
    RUN(test_save_and_load);
    RUN(test_errors);
    return TEST_SUMMARY();
}
