/* Model checkpoints: weights and optimizer state round trip, refusals that change
 * nothing, and ModelCheckpoint's save_best_only. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tmpfiles.h"

static tg_model *mlp(int hidden, uint64_t seed)
{
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.seed = seed),
                           tg_dense(.units = hidden, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 2));
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

    tg_model *b = mlp(4, 99); /* other initial weights, same architecture */
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
    EXPECT_ERROR(
        tg_model_load(wide, at("small.safetensors")) == -1,
        "the file's model differs from this one: layer 0 (\"dense\", Dense): units is 4 in the file, 5 in the model");
    CHECK(first_weight(wide) == before);
    EXPECT_ERROR(tg_model_load(wide, at("absent.safetensors")) == -1, "absent.safetensors");
    EXPECT_ERROR(tg_model_save(a, at("bad.safetensors"), "not json") == -1, "metadata must be a JSON object");
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
    tg_callback *ck =
        tg_model_checkpoint(.filepath = at("best.safetensors"), .monitor = "loss", .save_best_only = true);
    tg_history *h =
        tg_fit(m, x, y, .epochs = 6, .batch_size = 4, .verbose = TG_VERBOSE_SILENT, .callbacks = &ck, .n_callbacks = 1);
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
    EXPECT_ERROR(tg_model_checkpoint(.filepath = "") == NULL, "give .filepath");
    tg_history_free(h);
    tg_callback_free(ck);
    tg_model_free(m);
    tg_scope_end(s);
}

/* The model's variables saved again with `meta` as the metadata, as a damaged or
 * crafted file would have it. */
static void save_with_metadata(tg_model *m, const char *path, const char *meta)
{
    int n = 0;
    tg_tensor *const *v = tg_model_variables(m, &n);
    CHECK(tg_save_safetensors(path, v, NULL, n, meta) == 0);
}

/* tapegrad_iterations of 10^23 saturated to INT64_MAX and the next step overflowed; every
 * metadata value is now checked, the message naming the key, and nothing is loaded. */
static void metadata_out_of_range_is_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *a = mlp(4, 1), *b = mlp(4, 2);
    static const char *const bad[] = {
        "{\"tapegrad_iterations\": \"100000000000000000000000\"}",
        "{\"tapegrad_iterations\": \"1e23\"}",
        "{\"tapegrad_iterations\": \"-1\"}",
        "{\"tapegrad_iterations\": \" 3\"}",
        "{\"tapegrad_iterations\": \"9007199254740993\"}",
        "{\"tapegrad_iterations\": \"3\\u0000\"}",
    };
    double before = first_weight(b);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        save_with_metadata(a, at("crafted.safetensors"), bad[i]);
        EXPECT_ERROR(tg_model_load(b, at("crafted.safetensors")) == -1, "metadata \"tapegrad_iterations\"");
        CHECK(first_weight(b) == before && tg_optimizer_iterations(tg_model_optimizer(b)) == 0);
    }
    CHECK_ERROR("contains a NUL byte");
    save_with_metadata(a, at("crafted.safetensors"), "{\"tapegrad_iterations\": \"9007199254740992\"}");
    CHECK(tg_model_load(b, at("crafted.safetensors")) == 0);
    CHECK(tg_optimizer_iterations(tg_model_optimizer(b)) == INT64_C(9007199254740992));
    tg_model_free(a);
    tg_model_free(b);
    tg_scope_end(s);
}

/* The validator on each kind, and the writer: quotes, backslashes, control characters
 * and long values round-trip. */
static void metadata_validator_and_writer(void)
{
    char long_value[6000];
    memset(long_value, 'z', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = 0;
    const char *keys[] = {"path", "shape", "n", "long", "nul"};
    const char *values[] = {"csv:a \"quoted\" name\\x\n.csv", "28,28,1", "-42", long_value, "x"};
    char *json = tg_metadata_json(keys, values, 5);
    CHECK(json != NULL);
    tg_scope *s = tg_scope_begin();
    tg_tensor *t = tg_from_f32(TG_SHAPE(1), 1);
    const char *names[] = {"t"};
    CHECK(tg_save_safetensors(at("meta.safetensors"), &t, names, 1, json) == 0);
    free(json);
    tg_safetensors *st = tg_safetensors_open(at("meta.safetensors"));
    tg_meta_key k[] = {
        {"path", TG_META_TEXT, 1, 100, true, NULL}, {"shape", TG_META_DIMS, 1, 1000, true, NULL},
        {"n", TG_META_INT, -100, 100, true, NULL},  {"long", TG_META_TEXT, 1, 10000, true, NULL},
        {"absent", TG_META_INT, 0, 1, false, NULL},
    };
    tg_meta_value v[5];
    CHECK(st && tg_safetensors_read_metadata(st, k, 5, v) == 0);
    CHECK(v[0].present && strcmp(v[0].text, values[0]) == 0);
    CHECK(v[1].dims.rank == 3 && v[1].dims.dims[0] == 28 && v[1].dims.dims[2] == 1);
    CHECK(v[2].i == -42 && strlen(v[3].text) == sizeof long_value - 1 && !v[4].present);
    tg_meta_key tight[] = {{"shape", TG_META_DIMS, 1, 27, true, NULL}};
    EXPECT_ERROR(tg_safetensors_read_metadata(st, tight, 1, v) == -1,
                 "metadata \"shape\" is \"28,28,1\": it must be 1 to 8 dimensions from 1 to 27");
    tg_meta_key need[] = {{"model", TG_META_TEXT, 1, 9, true, "tapegrad fit"}};
    EXPECT_ERROR(tg_safetensors_read_metadata(st, need, 1, v) == -1,
                 "has no metadata \"model\" (was it written by tapegrad fit?)");
    tg_meta_key short_text[] = {{"long", TG_META_TEXT, 1, 10, true, NULL}};
    EXPECT_ERROR(tg_safetensors_read_metadata(st, short_text, 1, v) == -1,
                 "metadata \"long\" is 5999 bytes long: it must be 1 to 10");
    tg_safetensors_close(st);
    const char *dup[] = {"a", "a"};
    EXPECT_ERROR(tg_metadata_json(dup, values, 2) == NULL, "metadata key \"a\" appears twice");
    tg_model *m = mlp(4, 1); /* the library's own keys are not the user's to give */
    EXPECT_ERROR(tg_model_save(m, at("own.safetensors"), "{\"tapegrad_iterations\": \"5\"}") == -1,
                 "metadata key \"tapegrad_iterations\" is written by tapegrad itself");
    tg_model_free(m);
    tg_scope_end(s);
}

/* An error raised inside tg_fit (here by ModelCheckpoint's save) names the user's tg_fit
 * line, never a line of tapegrad's sources. */
static void errors_inside_fit_name_the_fit_line(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = mlp(4, 3);
    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 3), 1, 0, 0, 0, 1, 0), *y = tg_from_i32(TG_SHAPE(2), 0, 1);
    CHECK(mkfifo(at("fifo.safetensors"), 0600) == 0);
    tg_callback *ck = tg_model_checkpoint(.filepath = at("fifo.safetensors"), .monitor = "loss");
    int line = __LINE__ + 1;
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .verbose = TG_VERBOSE_SILENT, .callbacks = &ck, .n_callbacks = 1);
    char want[512];
    snprintf(want, sizeof want, "%s:%d: ", __FILE__, line);
    const char *e = tg_last_error();
    CHECK(!h && e && strncmp(e, want, strlen(want)) == 0 && strstr(e, "is a FIFO"));
    CHECK(e && !strstr(e, "/src/"));
    tg_history_free(h);
    tg_callback_free(ck);
    tg_model_free(m);
    unlink(at("fifo.safetensors"));
    tg_scope_end(s);
}

int main(void)
{
    if (!make_tmpdir("tapegrad-ckpt"))
        return 1;
    RUN(round_trip_with_optimizer_state);
    RUN(mismatched_model_is_refused_and_untouched);
    RUN(checkpoint_saves_only_the_best);
    RUN(metadata_out_of_range_is_refused);
    RUN(metadata_validator_and_writer);
    RUN(errors_inside_fit_name_the_fit_line);
    remove_tmpdir();
    return TEST_SUMMARY();
}
