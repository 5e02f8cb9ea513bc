/* Model checkpoints: weights and optimizer state round trip, refusals that change
 * nothing, and ModelCheckpoint's save_best_only. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tmpfiles.h"

static tg_model *mlp(int hidden, uint64_t seed)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = seed),
                                     tg_dense(.units = hidden, .activation = TG_RELU, .input_dim = 3),
                                     tg_dense(.units = 2));
    tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
               .from_logits = true);
    return m;
}

static double first_weight(tg_model *m)
{
    int n = 0;
    tg_tensor *const *v = tg_model_variables(m, &n);
    double w[64];
    tg_copy_out_f64(v[0], w, 64);
    return w[0];
}

static void round_trip_with_optimizer_state(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f32(TG_SHAPE(4, 3), 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1);
    tg_tensor *y = tg_from_i32(TG_SHAPE(4), 0, 1, 0, 1);
    tg_model *a = mlp(4, 1);
    tg_history_free(tg_fit(a, x, y, .epochs = 3, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    CHECK(tg_model_save(a, at("a.safetensors"), "{\"note\": \"hello\"}") == 0);

    tg_model *b = mlp(4, 99);   /* other initial weights, same architecture */
    CHECK(first_weight(a) != first_weight(b));
    CHECK(tg_model_load(b, at("a.safetensors")) == 0);
    CHECK(first_weight(a) == first_weight(b));
    CHECK(tg_optimizer_iterations(tg_model_optimizer(b)) == 3);
    tg_safetensors *st = tg_safetensors_open(at("a.safetensors"));
    CHECK(st && strcmp(tg_safetensors_metadata(st, "note"), "hello") == 0);
    CHECK(st && strcmp(tg_safetensors_metadata(st, "tapegrad_iterations"), "3") == 0);
    CHECK(st && tg_safetensors_info(st, "optimizer/momentum/dense/kernel", NULL, NULL) == 0);
    tg_safetensors_close(st);

    /* one more step on each: the same optimizer state gives the same weights */
    tg_history_free(tg_fit(a, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    tg_history_free(tg_fit(b, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    int na = 0, nb = 0;
    tg_tensor *const *va = tg_model_variables(a, &na), *const *vb = tg_model_variables(b, &nb);
    CHECK(na == nb);
    for (int i = 0; i < na && i < nb; i++) {
        double u[64], v[64];
        int64_t n = tg_size(va[i]);
        tg_copy_out_f64(va[i], u, 64);
        tg_copy_out_f64(vb[i], v, 64);
        CHECK(memcmp(u, v, sizeof(double) * (size_t)n) == 0);
    }
    tg_model_free(a);
    tg_model_free(b);
    tg_scope_end(s);
}

static void mismatched_model_is_refused_and_untouched(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *a = mlp(4, 1), *wide = mlp(5, 2);
    CHECK(tg_model_save(a, at("small.safetensors"), NULL) == 0);
    double before = first_weight(wide);
    CHECK(tg_model_load(wide, at("small.safetensors")) == -1);
    CHECK_ERROR("dense/kernel");
    CHECK(first_weight(wide) == before);
    CHECK(tg_model_load(wide, at("absent.safetensors")) == -1);
    CHECK_ERROR("absent.safetensors");
    CHECK(tg_model_save(a, at("bad.safetensors"), "not json") == -1);
    CHECK_ERROR("metadata must be a JSON object");
    CHECK(access(at("bad.safetensors"), F_OK) != 0);
    tg_model_free(a);
    tg_model_free(wide);
    tg_scope_end(s);
}

static void checkpoint_saves_only_the_best(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = mlp(4, 3);
    tg_tensor *x = tg_from_f32(TG_SHAPE(4, 3), 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1);
    tg_tensor *y = tg_from_i32(TG_SHAPE(4), 0, 1, 0, 1);
    tg_callback *ck = tg_model_checkpoint(.filepath = at("best.safetensors"), .monitor = "loss",
                                          .save_best_only = true);
    tg_history *h = tg_fit(m, x, y, .epochs = 6, .batch_size = 4, .verbose = TG_VERBOSE_SILENT, .callbacks = &ck,
                           .n_callbacks = 1);
    int n = 0;
    const double *loss = tg_history_get(h, "loss", &n);
    int best = 0;
    for (int e = 1; e < n; e++)
        best = loss[e] < loss[best] ? e : best;
    tg_safetensors *st = tg_safetensors_open(at("best.safetensors"));
    char want[16];
    snprintf(want, sizeof want, "%d", best + 1);
    CHECK(st && strcmp(tg_safetensors_metadata(st, "epoch"), want) == 0);
    tg_safetensors_close(st);
    CHECK(tg_model_checkpoint(.filepath = "") == NULL);
    CHECK_ERROR("give .filepath");
    tg_history_free(h);
    tg_callback_free(ck);
    tg_model_free(m);
    tg_scope_end(s);
}

int main(void)
{
    if (!make_tmpdir("tapegrad-ckpt"))
        return 1;
    RUN(round_trip_with_optimizer_state);
    RUN(mismatched_model_is_refused_and_untouched);
    RUN(checkpoint_saves_only_the_best);
    remove_tmpdir();
    return TEST_SUMMARY();
}
