/* Keras's masks: SimpleRNN, LSTM and GRU on masked sequences (outputs and gradients)
 * against PyTorch float64 run on each sequence's unmasked steps alone
 * (tests/fixtures/masked_rnn_golden.txt, tools/make_masked_rnn_fixtures.py), with and
 * without go_backwards; Embedding(mask_zero), Masking, GlobalAveragePooling1D, merges and
 * the flow of masks through Sequential and functional models (hand values); a layer that
 * drops a mask with Keras's warning; the loss and metrics weighed by the output's mask as
 * Keras's apply_mask; masks of the wrong shape. */
#include "check.h"
#include "fixture.h"
#include "gradcheck.h"

#define MAXV 512

typedef struct arr {
    tg_shape shape;
    double v[MAXV];
} arr;

enum { X, MASK, KERNEL, RECURRENT, BIAS, R, OUTPUT, GRAD_X, GRAD_KERNEL, GRAD_RECURRENT, GRAD_BIAS, N_ARRAYS };
static const char *const array_names[N_ARRAYS] = {
    "x",      "mask",   "kernel",      "recurrent_kernel",      "bias",     "r",
    "output", "grad_x", "grad_kernel", "grad_recurrent_kernel", "grad_bias"};

typedef struct rcase {
    char name[48], kind[16];
    int units, return_sequences, go_backwards;
    arr a[N_ARRAYS];
} rcase;

static tg_tensor *tensor_of(const arr *a) { return tg_tensor_from(TG_F64, a->shape, a->v); }

static tg_layer *rnn_for(const char *kind, int units, bool sequences, bool backwards)
{
    tg_rnn_opts o = {.units = units,
                     .activation = TG_TANH,
                     .recurrent_activation = TG_SIGMOID,
                     .use_bias = true,
                     .unit_forget_bias = true,
                     .reset_after = true,
                     .return_sequences = sequences,
                     .go_backwards = backwards,
                     .dtype = TG_F64};
    if (!strcmp(kind, "lstm"))
        return tg_lstm_at(TG_LOC, o);
    if (!strcmp(kind, "gru"))
        return tg_gru_at(TG_LOC, o);
    return tg_simple_rnn_at(TG_LOC, o);
}

static void check_case(const rcase *c)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *l = rnn_for(c->kind, c->units, c->return_sequences, c->go_backwards);
    tg_tensor *x = tensor_of(&c->a[X]), *mask = tg_cast(tensor_of(&c->a[MASK]), TG_BOOL);
    REQUIRE(l && tg_layer_call(l, x) != NULL); /* builds */
    int n;
    tg_tensor *const *vars = tg_layer_variables(l, &n);
    REQUIRE(n == 3);
    for (int k = 0; k < 3; k++)
        CHECK(tg_assign(vars[k], tensor_of(&c->a[KERNEL + k])) == 0);
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_tensor *y = tg_layer_call(l, x, .mask = mask);
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
    /* Keras's compute_mask: the mask goes on with the sequences only */
    tg_tensor *out_mask = tg_layer_compute_mask(l, x, mask);
    CHECK(c->return_sequences ? out_mask == mask : out_mask == NULL);
    tg_tape_free(t);
    tg_layer_free(l);
    tg_scope_end(s);
}

static void test_rnn_against_pytorch(void)
{
    static fx_reader r;
    static rcase c;
    REQUIRE(fx_open(&r, "masked_rnn_golden.txt", "tools/make_masked_rnn_fixtures.py"));
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
    CHECK(!r.failed && cases == 12);
}

/* Embedding(mask_zero=True): the mask is tokens != 0, and GlobalAveragePooling1D averages
 * the unmasked steps' embeddings (Keras's masked mean), in a Sequential model. */
static void test_embedding_mask_zero_and_average_pooling(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *emb = tg_embedding(.input_dim = 4, .output_dim = 2, .mask_zero = true, .input_length = 3);
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), emb, tg_global_average_pooling1d());
    REQUIRE(m != NULL);
    const double table[] = {9, 9, 1, 2, 3, 4, 5, 6};
    tg_tensor *w[1] = {tg_tensor_from(TG_F64, TG_SHAPE(4, 2), table)};
    REQUIRE(tg_model_set_weights(m, (const tg_tensor *const *)w, 1) == 0);
    tg_tensor *tokens = tg_tensor_from(TG_I32, TG_SHAPE(2, 3), ((int32_t[]){1, 0, 3, 0, 2, 0}));
    CHECK_TENSOR(tg_cast(tg_layer_compute_mask(emb, tokens, NULL), TG_F64), TG_SHAPE(2, 3), 0, 1, 0, 1, 0, 1, 0);
    /* row 0: mean of rows 1 and 3 of the table; row 1: row 2 alone (the zeros' 9s never count) */
    CHECK_TENSOR(tg_model_call(m, tokens), TG_SHAPE(2, 2), 1e-12, 3, 4, 3, 4);
    CHECK(tg_model_output_mask(m, tg_model_call(m, tokens)) == NULL); /* the pooling ends the mask */
    tg_model_free(m);
    tg_scope_end(s);
}

/* Keras's Masking: steps whose features all equal mask_value are zeroed and masked; an
 * LSTM after it in a Sequential model gives what it gives on the explicit mask. */
static void test_masking_layer(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *masking = tg_masking(.mask_value = -1);
    tg_tensor *x = tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 2), ((double[]){1, 2, -1, -1, -1, 4}));
    CHECK_TENSOR(tg_layer_call(masking, x), TG_SHAPE(1, 3, 2), 0, 1, 2, 0, 0, -1, 4);
    CHECK_TENSOR(tg_cast(tg_layer_compute_mask(masking, x, NULL), TG_F64), TG_SHAPE(1, 3), 0, 1, 0, 1);
    tg_layer_free(masking);

    tg_layer *lstm = tg_lstm(.units = 2, .return_sequences = true, .dtype = TG_F64, .seed = 3);
    tg_model *m = tg_sequential_with(tg_sequential_options(.dtype = TG_F64), tg_masking(.mask_value = -1), lstm);
    tg_tensor *y = tg_model_call(m, x);
    tg_tensor *mask = tg_tensor_from(TG_BOOL, TG_SHAPE(1, 3), ((bool[]){true, false, true}));
    tg_tensor *zeroed = tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 2), ((double[]){1, 2, 0, 0, -1, 4}));
    REQUIRE(y != NULL);
    TENSORS_AGREE(y, tg_layer_call(lstm, zeroed, .mask = mask), 0);
    CHECK_TENSOR(tg_cast(tg_model_output_mask(m, y), TG_F64), TG_SHAPE(1, 3), 0, 1, 0, 1);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A functional model: Embedding(mask_zero) -> Dense (passes masks on) -> GRU sequences
 * -> GlobalAveragePooling1D equals the layers called one by one with the masks. */
static void test_masks_flow_through_functional(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *in = tg_input(TG_SHAPE(4), .dtype = TG_I32);
    tg_layer *emb = tg_embedding(.input_dim = 5, .output_dim = 3, .mask_zero = true);
    tg_layer *dense = tg_dense(.units = 3, .activation = TG_TANH);
    tg_layer *gru = tg_gru(.units = 2, .return_sequences = true);
    tg_layer *pool = tg_global_average_pooling1d();
    tg_keras_tensor *h = tg_layer_apply(gru, tg_layer_apply(dense, tg_layer_apply(emb, in)));
    tg_model *m =
        tg_functional(TG_KERAS_TENSORS(in), TG_KERAS_TENSORS(tg_layer_apply(pool, h)), .seed = 5, .dtype = TG_F64);
    REQUIRE(m != NULL);
    tg_tensor *tokens = tg_tensor_from(TG_I32, TG_SHAPE(2, 4), ((int32_t[]){3, 1, 0, 0, 0, 2, 4, 0}));
    tg_tensor *mask = tg_not_equal(tokens, tg_scalar_like(tokens, 0));
    tg_tensor *e = tg_layer_call(emb, tokens), *d = tg_layer_call(dense, e, .mask = mask);
    tg_tensor *want = tg_layer_call(pool, tg_layer_call(gru, d, .mask = mask), .mask = mask);
    tg_tensor *unmasked = tg_layer_call(pool, tg_layer_call(gru, d));
    tg_tensor *y = tg_model_call(m, tokens);
    REQUIRE(y && want && unmasked);
    TENSORS_AGREE(y, want, 1e-15);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(y, unmasked)))) > 1e-3); /* the mask changed the result */
    tg_model_free(m);
    tg_scope_end(s);
}

static char warned[512];
static int n_warnings;
static void keep_warning(const char *message, void *user)
{
    (void)user;
    snprintf(warned, sizeof warned, "%s", message);
    n_warnings++;
}

/* Keras 3: a layer that does not support masking drops the mask with a warning, once. */
static void test_layer_without_masking_drops_mask(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = tg_sequential(tg_embedding(.input_dim = 3, .output_dim = 2, .mask_zero = true, .input_length = 2),
                                tg_flatten(), tg_dense(.units = 1));
    tg_set_warning_handler(keep_warning, NULL);
    n_warnings = 0;
    tg_tensor *tokens = tg_tensor_from(TG_I32, TG_SHAPE(1, 2), ((int32_t[]){1, 0}));
    tg_tensor *y = tg_model_call(m, tokens);
    tg_model_call(m, tokens);
    tg_set_warning_handler(NULL, NULL);
    CHECK(y != NULL && tg_model_output_mask(m, y) == NULL);
    CHECK(n_warnings == 1);
    CHECK(strstr(warned, "Layer 'flatten' (of type Flatten) was passed an input with a mask attached to it. "
                         "However, this layer does not support masking and will therefore destroy the mask "
                         "information.") != NULL);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Keras's merges: Add ORs the masks when every input has one; Concatenate on the features
 * ORs them too, an input without one counting as all true. */
static void test_merge_masks(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *add = tg_add_layer(), *cat = tg_concatenate();
    tg_keras_tensor *a = tg_input(TG_SHAPE(3, 2)), *b = tg_input(TG_SHAPE(3, 2));
    tg_keras_tensor *ma = tg_layer_apply(tg_masking(), a), *mb = tg_layer_apply(tg_masking(), b);
    tg_model *m_add = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(tg_layer_apply(add, ma, mb)));
    tg_keras_tensor *c = tg_input(TG_SHAPE(3, 2)), *d = tg_input(TG_SHAPE(3, 2));
    tg_model *m_cat = tg_functional(TG_KERAS_TENSORS(c, d),
                                    TG_KERAS_TENSORS(tg_layer_apply(cat, tg_layer_apply(tg_masking(), c), d)));
    REQUIRE(m_add && m_cat);
    tg_tensor *xa = tg_tensor_from(TG_F32, TG_SHAPE(1, 3, 2), ((float[]){1, 1, 0, 0, 0, 0}));
    tg_tensor *xb = tg_tensor_from(TG_F32, TG_SHAPE(1, 3, 2), ((float[]){0, 0, 2, 0, 0, 0}));
    const tg_tensor *xs[] = {xa, xb};
    tg_tensor *ys[1];
    REQUIRE(tg_model_call_list(m_add, xs, 2, ys, 1) == 0);
    CHECK_TENSOR(tg_cast(tg_model_output_mask(m_add, ys[0]), TG_F64), TG_SHAPE(1, 3), 0, 1, 1, 0);
    REQUIRE(tg_model_call_list(m_cat, xs, 2, ys, 1) == 0);
    CHECK_TENSOR(tg_cast(tg_model_output_mask(m_cat, ys[0]), TG_F64), TG_SHAPE(1, 3), 0, 1, 1, 1);
    tg_model_free(m_add);
    tg_model_free(m_cat);
    tg_scope_end(s);
}

/* Keras's apply_mask: the compiled loss is the mean over the unmasked steps, sum(loss *
 * mask) / (valid + 1e-7); the metrics count only those steps. */
static void test_loss_and_metrics_weighed_by_mask(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.dtype = TG_F64),
                           tg_embedding(.input_dim = 3, .output_dim = 1, .mask_zero = true, .input_length = 3));
    REQUIRE(m != NULL);
    tg_tensor *w[1] = {tg_tensor_from(TG_F64, TG_SHAPE(3, 1), ((double[]){7, 1, 2}))};
    REQUIRE(tg_model_set_weights(m, (const tg_tensor *const *)w, 1) == 0);
    REQUIRE(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_MSE,
                       .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR)) == 0);
    tg_tensor *tokens = tg_tensor_from(TG_I32, TG_SHAPE(2, 3), ((int32_t[]){1, 2, 0, 0, 0, 2}));
    tg_tensor *y = tg_tensor_from(TG_F64, TG_SHAPE(2, 3, 1), ((double[]){0, 0, 0, 0, 0, 5}));
    tg_tensor *pred = tg_model_call(m, tokens);
    /* unmasked steps: (1-0)^2, (2-0)^2, (2-5)^2 over 3 steps; the masked 7s never count */
    CHECK_NEAR(tg_item(tg_model_compute_loss(m, y, pred, NULL)), (1.0 + 4.0 + 9.0) / (3 + 1e-7), 1e-12);
    /* a sample weight of 2 on the second row: (1 + 4 + 2 * 9) / (3 + 1e-7) */
    tg_tensor *sw = tg_tensor_from(TG_F64, TG_SHAPE(2), ((double[]){1, 2}));
    CHECK_NEAR(tg_item(tg_model_compute_loss(m, y, pred, sw)), (1.0 + 4.0 + 18.0) / (3 + 1e-7), 1e-12);
    tg_logs logs = {0};
    REQUIRE(tg_evaluate(m, tokens, y, &logs, .batch_size = 2) == 0);
    CHECK_NEAR(tg_logs_get(&logs, "mean_absolute_error"), (1.0 + 2.0 + 3.0) / 3, 1e-12);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Bidirectional passes the mask to both directions: its output is the forward LSTM's and
 * the go_backwards LSTM's (each checked against PyTorch above) with the same weights, the
 * backward one reversed in time, concatenated. */
static void test_bidirectional_mask(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *bidi = tg_bidirectional(tg_lstm(.units = 2, .return_sequences = true), .dtype = TG_F64, .seed = 9);
    tg_layer *fwd = tg_lstm(.units = 2, .return_sequences = true, .dtype = TG_F64);
    tg_layer *bwd = tg_lstm(.units = 2, .return_sequences = true, .go_backwards = true, .dtype = TG_F64);
    tg_tensor *x = gc_input(13, TG_SHAPE(2, 4, 3), -1, 1);
    tg_tensor *mask = tg_tensor_from(TG_BOOL, TG_SHAPE(2, 4), ((bool[]){1, 1, 0, 0, 0, 1, 1, 1}));
    REQUIRE(tg_layer_call(bidi, x) && tg_layer_call(fwd, x) && tg_layer_call(bwd, x));
    tg_tensor *w[6];
    REQUIRE(tg_layer_get_weights(bidi, w, 6) == 0);
    REQUIRE(tg_layer_set_weights(fwd, (const tg_tensor *const *)w, 3) == 0);
    REQUIRE(tg_layer_set_weights(bwd, (const tg_tensor *const *)w + 3, 3) == 0);
    tg_tensor *parts[2] = {tg_layer_call(fwd, x, .mask = mask),
                           tg_reverse(tg_layer_call(bwd, x, .mask = mask), TG_AXES(1))};
    TENSORS_AGREE(tg_layer_call(bidi, x, .mask = mask), tg_concat(parts, 2, -1), 0);
    CHECK(tg_layer_compute_mask(bidi, x, mask) == mask);
    tg_layer_free(bidi);
    tg_layer_free(fwd);
    tg_layer_free(bwd);
    tg_scope_end(s);
}

/* MultiHeadAttention with the query's and the value's masks (from Masking layers) and an
 * attention_mask input, with and without the causal mask, against PyTorch float64
 * (tests/fixtures/masked_attention_golden.txt, tools/make_masked_attention_fixtures.py). */
enum {
    A_QUERY,
    A_VALUE,
    A_MASK,
    A_VARS,
    A_R = A_VARS + 8,
    A_OUTPUT,
    A_GRAD_QUERY,
    A_GRAD_VALUE,
    A_GRAD_VARS,
    N_ATT = A_GRAD_VARS + 8
};
static const char *const att_names[N_ATT] = {"query",           "value",
                                             "attention_mask",  "query_kernel",
                                             "query_bias",      "key_kernel",
                                             "key_bias",        "value_kernel",
                                             "value_bias",      "output_kernel",
                                             "output_bias",     "r",
                                             "output",          "grad_query",
                                             "grad_value",      "grad_query_kernel",
                                             "grad_query_bias", "grad_key_kernel",
                                             "grad_key_bias",   "grad_value_kernel",
                                             "grad_value_bias", "grad_output_kernel",
                                             "grad_output_bias"};

typedef struct acase {
    char name[48];
    int heads, key_dim, causal;
    arr a[N_ATT];
} acase;

static void check_attention_case(const acase *c)
{
    tg_scope *s = tg_scope_begin();
    const tg_shape *qs = &c->a[A_QUERY].shape, *vs = &c->a[A_VALUE].shape;
    tg_keras_tensor *q = tg_input(TG_SHAPE(qs->dims[1], qs->dims[2])),
                    *v = tg_input(TG_SHAPE(vs->dims[1], vs->dims[2]));
    tg_keras_tensor *am = tg_input(TG_SHAPE(qs->dims[1], vs->dims[1]));
    tg_keras_tensor *mv = tg_layer_apply(tg_masking(), v);
    tg_layer *mha = tg_multi_head_attention(.num_heads = c->heads, .key_dim = c->key_dim, .use_causal_mask = c->causal);
    tg_keras_tensor *y = tg_layer_apply(mha, tg_layer_apply(tg_masking(), q), mv, mv, am);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(q, v, am), TG_KERAS_TENSORS(y), .dtype = TG_F64);
    REQUIRE(m != NULL);
    const tg_tensor *w[8];
    for (int k = 0; k < 8; k++)
        w[k] = tensor_of(&c->a[A_VARS + k]);
    REQUIRE(tg_model_set_weights(m, w, 8) == 0);
    tg_tensor *xq = tensor_of(&c->a[A_QUERY]), *xv = tensor_of(&c->a[A_VALUE]);
    const tg_tensor *xs[] = {xq, xv, tensor_of(&c->a[A_MASK])};
    tg_tensor *out[1];
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, xq);
    tg_watch(t, xv);
    REQUIRE(tg_model_call_list(m, xs, 3, out, 1) == 0);
    tg_tensor *loss = tg_sum(tg_mul(out[0], tensor_of(&c->a[A_R])));
    tg_tape_end(t);
    char label[96];
    snprintf(label, sizeof label, "%s output", c->name);
    CHECK(tensor_matches_(__FILE__, __LINE__, label, out[0], &c->a[A_OUTPUT].shape, c->a[A_OUTPUT].v,
                          fx_size(&c->a[A_OUTPUT].shape), 1e-12));
    CHECK(tg_model_output_mask(m, out[0]) != NULL); /* the query's mask goes on */
    tg_tensor *inputs[2] = {xq, xv};
    for (int k = 0; k < 2; k++) {
        snprintf(label, sizeof label, "%s %s", c->name, att_names[A_GRAD_QUERY + k]);
        const arr *want = &c->a[A_GRAD_QUERY + k];
        CHECK(tensor_matches_(__FILE__, __LINE__, label, tg_gradient(t, loss, inputs[k]), &want->shape, want->v,
                              fx_size(&want->shape), 1e-12));
    }
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    REQUIRE(n == 8);
    for (int k = 0; k < 8; k++) {
        const arr *want = &c->a[A_GRAD_VARS + k];
        snprintf(label, sizeof label, "%s %s", c->name, att_names[A_GRAD_VARS + k]);
        CHECK(tensor_matches_(__FILE__, __LINE__, label, tg_gradient(t, loss, vars[k]), &want->shape, want->v,
                              fx_size(&want->shape), 1e-12));
    }
    tg_tape_free(t);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_attention_masks_against_pytorch(void)
{
    static fx_reader r;
    static acase c;
    REQUIRE(fx_open(&r, "masked_attention_golden.txt", "tools/make_masked_attention_fixtures.py"));
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
            check_attention_case(&c);
            cases++;
            continue;
        }
        int k = 0;
        while (k < N_ATT && strcmp(tag, att_names[k]))
            k++;
        if (k == N_ATT || !fx_array(&rest, &c.a[k].shape, c.a[k].v, MAXV))
            fx_fail(&r, "a bad `%s`", tag);
    }
    fx_close(&r);
    if (r.failed)
        printf("  FAIL %s\n", r.error);
    CHECK(!r.failed && cases == 2);
}

/* Masks given with the call (Keras's model(x, mask=...)): one per input in .masks. */
static void test_masks_given_to_the_call(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *a = tg_input(TG_SHAPE(3, 2)), *b = tg_input(TG_SHAPE(3, 2));
    tg_model *m = tg_functional(TG_KERAS_TENSORS(a, b), TG_KERAS_TENSORS(tg_layer_apply(tg_add_layer(), a, b)));
    REQUIRE(m != NULL);
    tg_tensor *x = tg_fill(TG_F32, TG_SHAPE(2, 3, 2), 1);
    tg_tensor *ma = tg_tensor_from(TG_BOOL, TG_SHAPE(2, 3), ((bool[]){1, 0, 0, 0, 0, 1}));
    tg_tensor *mb = tg_tensor_from(TG_BOOL, TG_SHAPE(2, 3), ((bool[]){0, 1, 0, 0, 0, 1}));
    const tg_tensor *xs[] = {x, x}, *masks[] = {ma, mb};
    tg_tensor *ys[1];
    REQUIRE(tg_model_call_list(m, xs, 2, ys, 1, .masks = masks) == 0);
    CHECK_TENSOR(tg_cast(tg_model_output_mask(m, ys[0]), TG_F64), TG_SHAPE(2, 3), 0, 1, 1, 0, 0, 0, 1);
    const tg_tensor *one_mask[] = {ma, NULL};
    REQUIRE(tg_model_call_list(m, xs, 2, ys, 1, .masks = one_mask) == 0);
    CHECK(tg_model_output_mask(m, ys[0]) == NULL); /* Keras: none unless every input has one */
    tg_model_free(m);
    tg_scope_end(s);
}

/* fit on padded sequences: Embedding(mask_zero) -> LSTM -> Dense learns to tell two
 * token patterns apart whatever the padding. */
static void test_fit_on_masked_sequences(void)
{
    tg_scope *s = tg_scope_begin();
    enum { N = 64, T = 6 };
    int32_t tokens[N * T] = {0};
    float labels[N];
    for (int i = 0; i < N; i++) {
        int len = 2 + i % 4, cls = (i / 4) % 2;
        for (int t = 0; t < len; t++) /* left padding: the zeros come first */
            tokens[i * T + (T - len) + t] = cls ? 1 + t % 2 : 3;
        labels[i] = (float)cls;
    }
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.seed = 4),
                           tg_embedding(.input_dim = 4, .output_dim = 4, .mask_zero = true, .input_length = T),
                           tg_lstm(.units = 4), tg_dense(.units = 1, .activation = TG_SIGMOID));
    REQUIRE(m != NULL);
    REQUIRE(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .loss = TG_LOSS_BINARY_CROSSENTROPY,
                       .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    tg_history *h =
        tg_fit(m, tg_tensor_from(TG_I32, TG_SHAPE(N, T), tokens), tg_tensor_from(TG_F32, TG_SHAPE(N, 1), labels),
               .epochs = 15, .batch_size = 16, .verbose = TG_VERBOSE_SILENT);
    REQUIRE(h != NULL);
    int n = 0;
    const double *loss = tg_history_get(h, "loss", &n), *acc = tg_history_get(h, "accuracy", &n);
    REQUIRE(loss && acc && n == 15);
    CHECK(loss[n - 1] < 0.5 * loss[0] && acc[n - 1] == 1.0);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void test_bad_masks(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *lstm = tg_lstm(.units = 2);
    tg_tensor *x = tg_fill(TG_F32, TG_SHAPE(2, 5, 3), 0.5);
    tg_tensor *wrong = tg_fill(TG_BOOL, TG_SHAPE(2, 4), 1);
    EXPECT_ERROR(tg_layer_call(lstm, x, .mask = wrong) == NULL,
                 "layer \"lstm\" (LSTM): the mask of input 0 has shape (2, 4), but the input has shape (2, 5, 3)");
    tg_model *m = tg_sequential(tg_masking(), tg_lstm(.units = 2));
    EXPECT_ERROR(tg_model_call(m, x, .mask = tg_fill(TG_BOOL, TG_SHAPE(5), 1)) == NULL,
                 "layer \"masking\" (Masking): the mask of input 0 has shape (5,), but the input has shape (2, 5, 3)");
    tg_model_free(m);
    tg_layer_free(lstm);
    tg_keras_tensor *q = tg_input(TG_SHAPE(3, 4)), *v = tg_input(TG_SHAPE(5, 4)), *am = tg_input(TG_SHAPE(3, 4));
    tg_layer *mha = tg_multi_head_attention(.num_heads = 2, .key_dim = 2);
    EXPECT_ERROR(
        tg_layer_apply(mha, q, v, v, am) == NULL,
        "attention_mask has shape (None, 3, 4), but it needs (batch, query steps, value steps) = (None, 3, 5)");
    tg_layer_free(mha);
    tg_layer_free(tg_keras_tensor_layer(q));
    tg_layer_free(tg_keras_tensor_layer(v));
    tg_layer_free(tg_keras_tensor_layer(am));
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_rnn_against_pytorch);
    RUN(test_embedding_mask_zero_and_average_pooling);
    RUN(test_masking_layer);
    RUN(test_masks_flow_through_functional);
    RUN(test_layer_without_masking_drops_mask);
    RUN(test_merge_masks);
    RUN(test_loss_and_metrics_weighed_by_mask);
    RUN(test_bidirectional_mask);
    RUN(test_attention_masks_against_pytorch);
    RUN(test_masks_given_to_the_call);
    RUN(test_fit_on_masked_sequences);
    RUN(test_bad_masks);
    return TEST_SUMMARY();
}
