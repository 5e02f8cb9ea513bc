/* tg_lstm_sequence, Keras's LSTM over a whole sequence as one op: its three outputs'
 * gradients (for xw, the recurrent kernel, h0 and c0) against float64 finite differences,
 * float32 against float64 with inputs in the logistic's tail, the LSTM layer's sequence
 * path against its per-step path (an all-true mask takes the per-step one) in values and
 * gradients for go_backwards and return_sequences, and the errors. The layer against
 * PyTorch is test_recurrent's and test_rnn_state's. */
#include <string.h>

#include "check.h"
#include "gradcheck.h"

enum { B = 3, T = 5, U = 2 };

/* hs, cs and gates flattened and joined, so one check covers the three. */
static tg_tensor *all_outputs(tg_tensor *const *x, int n, void *u)
{
    (void)n, (void)u;
    tg_tensor *out[3];
    if (tg_lstm_sequence(x[0], x[1], x[2], x[3], out) != 0)
        return NULL;
    tg_tensor *flat[3];
    for (int k = 0; k < 3; k++)
        flat[k] = tg_reshape(out[k], TG_SHAPE(tg_size(out[k])));
    return tg_concat(flat, 3, 0);
}

/* xw, u, h0, c0 of the sizes above, float64, seeded; xw scaled by `scale`. */
static void inputs(tg_tensor **x, double scale, uint64_t seed)
{
    tg_rng *r = tg_rng_new(seed);
    x[0] = tg_mul(tg_random_normal(r, TG_F64, TG_SHAPE(T, B, 4 * U)), tg_scalar_of(TG_F64, scale));
    x[1] = tg_random_normal(r, TG_F64, TG_SHAPE(U, 4 * U));
    x[2] = tg_random_normal(r, TG_F64, TG_SHAPE(B, U));
    x[3] = tg_random_normal(r, TG_F64, TG_SHAPE(B, U));
    tg_rng_free(r);
}

static void test_gradients_against_finite_differences(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x[4];
    inputs(x, 1.0, 1);
    CHECK(gradcheck("lstm_sequence", all_outputs, x, 4, NULL, 1e-6, 1e-6));
    inputs(x, 3.0, 2); /* gates near saturation */
    CHECK(gradcheck("lstm_sequence, large xw", all_outputs, x, 4, NULL, 1e-6, 1e-6));
    tg_scope_end(s);
}

/* Float32 (Eigen's sigmoid and tanh, some inputs below -9: the logistic's tail) within
 * float32 rounding of float64 over the steps. */
static void test_float32_matches_float64(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x[4];
    inputs(x, 6.0, 3);
    CHECK(tg_item(tg_reduce_any(tg_less(x[0], tg_scalar_of(TG_F64, -9)))) != 0);
    CHECK(f32_matches_f64("lstm_sequence", all_outputs, x, 4, NULL, 1e-5));
    tg_scope_end(s);
}

/* Whether the profile (since the last reset) has a row of op `name`. */
static bool profile_names(const char *name)
{
    tg_profile_row rows[64];
    int n = tg_profile_rows(rows, 64, NULL);
    for (int k = 0; k < n && k < 64; k++)
        if (!strcmp(rows[k].name, name))
            return true;
    return false;
}

/* The layer's output and the gradients of x and its variables, with `mask` (NULL: none). */
static void run_layer(tg_layer *l, tg_tensor *x, const tg_tensor *mask, tg_tensor *const *vars, tg_tensor **got)
{
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_profile_reset();
    tg_profile_start();
    got[0] = tg_layer_call(l, x, .mask = mask, .training = true);
    tg_profile_stop();
    tg_tensor *loss = tg_sum(tg_mul(got[0], tg_sin(got[0])));
    tg_tape_end(t);
    tg_tensor *sources[4] = {x, vars[0], vars[1], vars[2]};
    CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = sources, .n_sources = 4, .out = got + 1) == 0);
    tg_tape_free(t);
}

/* Float32, Fashion-MNIST-like lengths: the sequence op against the per-step cells. */
static void test_layer_matches_per_step_path(void)
{
    for (int v = 0; v < 4; v++) {
        tg_scope *s = tg_scope_begin();
        bool backwards = v & 1, sequences = v & 2;
        tg_layer *l = tg_lstm(.units = 16, .go_backwards = backwards, .return_sequences = sequences, .seed = 7);
        tg_rng *r = tg_rng_new(11 + (uint64_t)v);
        tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(4, 28, 6)), *one[5], *all[5];
        tg_rng_free(r);
        REQUIRE(l && tg_layer_call(l, x));
        int n;
        tg_tensor *const *vars = tg_layer_variables(l, &n);
        REQUIRE(n == 3);
        run_layer(l, x, NULL, vars, one);
        CHECK(profile_names("tg_lstm_sequence"));
        run_layer(l, x, tg_ones(TG_BOOL, TG_SHAPE(4, 28)), vars, all);
        CHECK(!profile_names("tg_lstm_sequence") && profile_names("tg_lstm_cell"));
        for (int k = 0; k < 5; k++)
            CHECK(TENSORS_AGREE(one[k], all[k], 2e-5));
        tg_scope_end(s);
        tg_layer_free(l);
    }
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *xw = tg_zeros(TG_F32, TG_SHAPE(2, 3, 8)), *u = tg_zeros(TG_F32, TG_SHAPE(2, 8));
    tg_tensor *h = tg_zeros(TG_F32, TG_SHAPE(2, 2)), *out[3];
    int line = __LINE__ + 1;
    EXPECT_ERROR(tg_lstm_sequence(xw, u, h, tg_zeros(TG_F32, TG_SHAPE(2, 3)), out) != 0,
                 "tg_lstm_sequence: xw must be (time, batch, 4 * units) and recurrent_kernel (units, 4 * units), the "
                 "states (batch, units); got xw (2, 3, 8) and recurrent_kernel (2, 8)");
    CHECK(strstr(tg_last_error(), "test_lstm_sequence.c") && line > 0);
    EXPECT_ERROR(tg_lstm_sequence(tg_zeros(TG_F32, TG_SHAPE(2, 3, 6)), u, h, h, out) != 0, "got xw (2, 3, 6)");
    EXPECT_ERROR(tg_lstm_sequence(xw, tg_zeros(TG_F64, TG_SHAPE(2, 8)), h, h, out) != 0,
                 "cannot mix float32 and float64");
    EXPECT_ERROR(tg_lstm_sequence(tg_zeros(TG_I32, TG_SHAPE(2, 3, 8)), u, h, h, out) != 0,
                 "must be float32 or float64");
    EXPECT_ERROR(tg_lstm_sequence(xw, u, h, h, NULL) != 0, "needs an array `out` of 3 tensors");
    /* no steps: empty sequences */
    CHECK(tg_lstm_sequence(tg_zeros(TG_F32, TG_SHAPE(0, 2, 8)), u, h, h, out) == 0 && tg_dim(out[0], 0) == 0);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_gradients_against_finite_differences);
    RUN(test_float32_matches_float64);
    RUN(test_layer_matches_per_step_path);
    RUN(test_errors);
    return TEST_SUMMARY();
}
