/* Masks together with layers of several inputs and outputs: a recurrent layer's mask with
 * its initial states and returned states (Keras's masked steps carry h and c over, from
 * the initial ones), Attention's and AdditiveAttention's query and value masks, and
 * MultiHeadAttention's masks with its returned scores and its refusal for inputs of more
 * axes. The references are the same layers on the unmasked steps alone. */
#include "check.h"
#include <math.h>

#include "tapegrad/layer.h"

/* x (steps, 3) masked by Masking, h0 and c0 (2,) into an LSTM of return_state. */
static tg_model *lstm_model(int steps, bool masked, tg_layer **lstm)
{
    tg_keras_tensor *x = tg_input(TG_SHAPE(steps, 3)), *h0 = tg_input(TG_SHAPE(2)), *c0 = tg_input(TG_SHAPE(2));
    tg_keras_tensor *seq = masked ? tg_layer_apply(tg_masking(), x) : x;
    *lstm = tg_lstm(.units = 2, .return_state = true);
    tg_keras_tensor *outs[3];
    if (tg_layer_apply_outputs(*lstm, outs, 3, seq, h0, c0) != 0)
        return NULL;
    return tg_functional(TG_KERAS_TENSORS(x, h0, c0), TG_KERAS_TENSORS(outs[0], outs[1], outs[2]), .dtype = TG_F64,
                         .seed = 5);
}

static double feature(int k) { return (k % 7 + 1) * 0.13 - 0.5; } /* never 0 */

/* Example 0 is padded at the end (steps 3, 4), example 1 at the start (steps 0, 1): the
 * masked run equals the unmasked layer on each example's three real steps, from the same
 * h0 and c0, in the output and both returned states. */
static void test_masked_steps_with_initial_and_returned_states(void)
{
    tg_scope *s = tg_scope_begin();
    tg_layer *full_lstm, *ref_lstm;
    tg_model *full = lstm_model(5, true, &full_lstm), *ref = lstm_model(3, false, &ref_lstm);
    REQUIRE(full && ref);
    tg_tensor *w[3];
    REQUIRE(tg_layer_get_weights(full_lstm, w, 3) == 0);
    REQUIRE(tg_layer_set_weights(ref_lstm, (const tg_tensor *const *)w, 3) == 0);
    double x[2 * 5 * 3] = {0}, xr[2 * 3 * 3];
    for (int t = 0; t < 3; t++)
        for (int f = 0; f < 3; f++) {
            x[(0 * 5 + t) * 3 + f] = xr[(0 * 3 + t) * 3 + f] = feature(3 * t + f);
            x[(1 * 5 + t + 2) * 3 + f] = xr[(1 * 3 + t) * 3 + f] = feature(3 * t + f + 4);
        }
    tg_tensor *h0 = tg_tensor_from(TG_F64, TG_SHAPE(2, 2), ((double[]){0.3, -0.4, 0.1, 0.2}));
    tg_tensor *c0 = tg_tensor_from(TG_F64, TG_SHAPE(2, 2), ((double[]){-0.2, 0.5, 0.6, -0.1}));
    const tg_tensor *in[3] = {tg_tensor_from(TG_F64, TG_SHAPE(2, 5, 3), x), h0, c0};
    const tg_tensor *in_ref[3] = {tg_tensor_from(TG_F64, TG_SHAPE(2, 3, 3), xr), h0, c0};
    tg_tensor *ys[3], *ys_ref[3];
    REQUIRE(tg_model_call_list(full, in, 3, ys, 3) == 0);
    REQUIRE(tg_model_call_list(ref, in_ref, 3, ys_ref, 3) == 0);
    for (int k = 0; k < 3; k++)
        CHECK(tg_item(tg_max(tg_abs(tg_sub(ys[k], ys_ref[k])))) < 1e-12);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(ys[2], c0)))) > 1e-3); /* the steps did run */
    tg_model_free(full);
    tg_model_free(ref);
    tg_scope_end(s);
}

/* With return_sequences the sequences' mask goes on, also with an initial state; the
 * returned state carries none. */
static void test_mask_goes_on_with_initial_state(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *x = tg_input(TG_SHAPE(3, 2)), *h0 = tg_input(TG_SHAPE(2)), *outs[2];
    tg_layer *gru = tg_gru(.units = 2, .return_sequences = true, .return_state = true);
    REQUIRE(tg_layer_apply_outputs(gru, outs, 2, tg_layer_apply(tg_masking(), x), h0) == 0);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(x, h0), TG_KERAS_TENSORS(outs[0], outs[1]), .dtype = TG_F64);
    REQUIRE(m);
    const tg_tensor *in[2] = {tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 2), ((double[]){0.5, 0.1, 0, 0, -0.3, 0.2})),
                              tg_tensor_from(TG_F64, TG_SHAPE(1, 2), ((double[]){0.2, -0.1}))};
    tg_tensor *ys[2];
    REQUIRE(tg_model_call_list(m, in, 2, ys, 2) == 0);
    CHECK_TENSOR(tg_cast(tg_model_output_mask(m, ys[0]), TG_F64), TG_SHAPE(1, 3), 0, 1, 0, 1);
    CHECK(tg_model_output_mask(m, ys[1]) == NULL);
    double y[6];
    REQUIRE(tg_copy_out_f64(ys[0], y, 6) == 0);
    CHECK(y[2] == y[0] && y[3] == y[1]); /* the masked step 1 carries step 0's output over */
    tg_model_free(m);
    tg_scope_end(s);
}

/* Keras's Attention with mask=[query_mask, value_mask]: the masked value step gets no
 * weight (the layer on the three other value steps), the masked query step's output is
 * zero, and the output carries the query's mask. */
static void check_attention_masks(tg_layer *full, tg_layer *ref)
{
    tg_keras_tensor *q = tg_input(TG_SHAPE(3, 2)), *v = tg_input(TG_SHAPE(4, 2));
    tg_keras_tensor *y = tg_layer_apply(full, tg_layer_apply(tg_masking(), q), tg_layer_apply(tg_masking(), v));
    tg_model *m = tg_functional(TG_KERAS_TENSORS(q, v), TG_KERAS_TENSORS(y), .dtype = TG_F64, .seed = 2);
    tg_keras_tensor *q2 = tg_input(TG_SHAPE(3, 2)), *v2 = tg_input(TG_SHAPE(3, 2));
    tg_model *r = tg_functional(TG_KERAS_TENSORS(q2, v2), TG_KERAS_TENSORS(tg_layer_apply(ref, q2, v2)),
                                .dtype = TG_F64, .seed = 2);
    REQUIRE(m && r);
    int nv;
    tg_layer_variables(full, &nv);
    tg_tensor *w[2];
    REQUIRE(nv <= 2 && tg_layer_get_weights(full, w, nv) == 0);
    REQUIRE(tg_layer_set_weights(ref, (const tg_tensor *const *)w, nv) == 0);
    double qv[] = {0.3, -0.2, 0, 0, 0.5, 0.4}, vv[] = {0.1, 0.7, -0.6, 0.2, 0.9, -0.3, 0, 0};
    const tg_tensor *in[2] = {tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 2), qv),
                              tg_tensor_from(TG_F64, TG_SHAPE(1, 4, 2), vv)};
    const tg_tensor *in_ref[2] = {in[0], tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 2), vv)};
    tg_tensor *ys[1], *ys_ref[1];
    REQUIRE(tg_model_call_list(m, in, 2, ys, 1) == 0);
    REQUIRE(tg_model_call_list(r, in_ref, 2, ys_ref, 1) == 0);
    double got[6], want[6];
    REQUIRE(tg_copy_out_f64(ys[0], got, 6) == 0 && tg_copy_out_f64(ys_ref[0], want, 6) == 0);
    for (int t = 0; t < 3; t++)
        for (int f = 0; f < 2; f++)
            CHECK(fabs(got[t * 2 + f] - (t == 1 ? 0.0 : want[t * 2 + f])) < 1e-12);
    CHECK(fabs(want[2]) > 1e-3); /* the reference's query step 1 is not zero: the mask made it so */
    CHECK_TENSOR(tg_cast(tg_model_output_mask(m, ys[0]), TG_F64), TG_SHAPE(1, 3), 0, 1, 0, 1);
    tg_model_free(m);
    tg_model_free(r);
}

static void test_attention_query_and_value_masks(void)
{
    tg_scope *s = tg_scope_begin();
    check_attention_masks(tg_attention_layer(), tg_attention_layer());
    check_attention_masks(tg_attention_layer(.use_scale = true, .score_mode = TG_SCORE_CONCAT),
                          tg_attention_layer(.use_scale = true, .score_mode = TG_SCORE_CONCAT));
    check_attention_masks(tg_additive_attention(), tg_additive_attention());
    tg_scope_end(s);
}

/* MultiHeadAttention's value mask reaches the returned scores: no weight on the masked
 * step, each query's weights summing to 1. Inputs of more axes refuse masks. */
static void test_mha_masks_with_scores_and_ranks(void)
{
    tg_scope *s = tg_scope_begin();
    tg_keras_tensor *q = tg_input(TG_SHAPE(3, 2)), *v = tg_input(TG_SHAPE(4, 2)), *outs[2];
    tg_layer *mha = tg_multi_head_attention(.num_heads = 2, .key_dim = 2, .return_attention_scores = true);
    REQUIRE(tg_layer_apply_outputs(mha, outs, 2, q, tg_layer_apply(tg_masking(), v)) == 0);
    tg_model *m = tg_functional(TG_KERAS_TENSORS(q, v), TG_KERAS_TENSORS(outs[0], outs[1]), .dtype = TG_F64);
    REQUIRE(m);
    double qv[] = {0.3, -0.2, 0.1, 0.8, 0.5, 0.4}, vv[] = {0.1, 0.7, -0.6, 0.2, 0.9, -0.3, 0, 0};
    const tg_tensor *in[2] = {tg_tensor_from(TG_F64, TG_SHAPE(1, 3, 2), qv),
                              tg_tensor_from(TG_F64, TG_SHAPE(1, 4, 2), vv)};
    tg_tensor *ys[2];
    REQUIRE(tg_model_call_list(m, in, 2, ys, 2) == 0);
    REQUIRE(tg_rank(ys[1]) == 4 && tg_dim(ys[1], 1) == 2 && tg_dim(ys[1], 2) == 3 && tg_dim(ys[1], 3) == 4);
    double p[2 * 3 * 4];
    REQUIRE(tg_copy_out_f64(ys[1], p, 2 * 3 * 4) == 0);
    for (int row = 0; row < 2 * 3; row++) {
        CHECK(p[row * 4 + 3] == 0);
        CHECK(fabs(p[row * 4] + p[row * 4 + 1] + p[row * 4 + 2] - 1) < 1e-12);
    }
    tg_model_free(m);

    tg_keras_tensor *q4 = tg_input(TG_SHAPE(2, 2, 4)), *am = tg_input(TG_SHAPE(2, 2, 2, 2));
    tg_keras_tensor *y4 =
        tg_layer_apply(tg_multi_head_attention(.num_heads = 1, .key_dim = 2), tg_layer_apply(tg_masking(), q4), q4);
    tg_model *m4 = tg_functional(TG_KERAS_TENSORS(q4), TG_KERAS_TENSORS(y4), .dtype = TG_F64);
    REQUIRE(m4);
    tg_rng *rng = tg_rng_new(1);
    tg_tensor *x4 = tg_random_uniform(rng, TG_F64, TG_SHAPE(1, 2, 2, 4));
    tg_rng_free(rng);
    EXPECT_ERROR(tg_model_call(m4, x4) == NULL, "masks of the query, value and key are taken for inputs of (batch, "
                                                "steps, features); this query has 4 axes");
    tg_layer *mha4 = tg_multi_head_attention(.num_heads = 1, .key_dim = 2);
    EXPECT_ERROR(tg_layer_apply(mha4, q4, q4, q4, am) == NULL,
                 "attention_mask is taken for a query of (batch, steps, features)");
    tg_layer_free(mha4);
    tg_layer_free(tg_keras_tensor_layer(am));
    tg_model_free(m4);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_masked_steps_with_initial_and_returned_states);
    RUN(test_mask_goes_on_with_initial_state);
    RUN(test_attention_query_and_value_masks);
    RUN(test_mha_masks_with_scores_and_ranks);
    return TEST_SUMMARY();
}
