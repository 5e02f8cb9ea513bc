/* Keras's BackupAndRestore: a fit interrupted by an error (a crash) and run again with the
 * same callback ends with the weights of the uninterrupted fit, bit for bit, whether the
 * backup was written at epoch ends or every few batches; the backup is the --resume file
 * (weights, optimizer state, fit position); it is deleted at a successful end; errors. */
#include <sys/stat.h>

#include "check.h"
#include "tmpfiles.h"

enum { ROWS = 40, FEATURES = 3, EPOCHS = 3, BATCH = 8 }; /* 5 steps per epoch */

static float xs[ROWS * FEATURES], ys[ROWS];

static void make_data(void)
{
    tg_rng *rng = tg_rng_new(11);
    for (int i = 0; i < ROWS; i++) {
        double s = 0;
        for (int j = 0; j < FEATURES; j++) {
            xs[i * FEATURES + j] = (float)(2 * tg_rng_uniform01(rng) - 1);
            s += (j + 1) * xs[i * FEATURES + j];
        }
        ys[i] = (float)(s > 0);
    }
    tg_rng_free(rng);
}

/* A model seeded with `seed`, compiled with a fresh Adam. */
static tg_model *new_model(uint64_t seed)
{
    tg_model *m =
        tg_sequential(tg_dense(.units = 6, .activation = TG_RELU, .input_shape = TG_SHAPE(FEATURES), .seed = seed),
                      tg_dense(.units = 1, .activation = TG_SIGMOID, .seed = seed + 1));
    if (m && tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.05), .loss = TG_LOSS_BINARY_CROSSENTROPY) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* Stops the fit with an error after `at` batches in all: the process "crashes". */
static int64_t batches_seen;
static int crash_after(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)m, (void)batch, (void)logs;
    return ++batches_seen < *(int64_t *)cb->user ? 0 : -1;
}

static tg_history *fit(tg_model *m, tg_callback *const *cbs, int n)
{
    return tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(ROWS, FEATURES), xs),
                  tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 1), ys), .epochs = EPOCHS, .batch_size = BATCH, .seed = 77,
                  .verbose = TG_VERBOSE_SILENT, .callbacks = cbs, .n_callbacks = n);
}

static int weights(tg_model *m, double *w, int max)
{
    int n = 0, total = 0;
    tg_tensor *const *vars = tg_model_variables(m, &n);
    for (int i = 0; i < n; i++) {
        int64_t k = tg_size(vars[i]);
        if (total + k > max || tg_copy_out_f64(vars[i], w + total, k) != 0)
            return -1;
        total += (int)k;
    }
    return total;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Interrupted after `crash` batches with backups every `save_freq` batches (0: epochs),
 * then resumed in a fresh model seeded differently: the uninterrupted weights. */
static void interrupted_then_resumed(int64_t save_freq, int64_t crash, int want_epoch, int64_t want_step)
{
    tg_scope *s = tg_scope_begin();
    double want[64], got[64];
    tg_model *ref = new_model(5);
    REQUIRE(ref);
    tg_history *h = fit(ref, NULL, 0);
    REQUIRE(h);
    tg_history_free(h);
    int n = weights(ref, want, 64);
    REQUIRE(n > 0);

    const char *dir = at("backup");
    tg_callback *backup = tg_backup_and_restore(.backup_dir = dir, .save_freq = save_freq);
    batches_seen = 0;
    tg_callback crasher = {.on_batch_end = crash_after, .user = &crash};
    tg_model *first = new_model(5);
    REQUIRE(first && backup);
    CHECK(fit(first, (tg_callback *[]){backup, &crasher}, 2) == NULL && batches_seen == crash);
    CHECK(exists(at("backup/model.safetensors"))); /* an error is no successful end: kept */
    tg_model_free(first);

    /* the backup is a --resume file: its position is where the crash left the last save */
    tg_model *probe = new_model(9);
    tg_model_fit_position pos;
    REQUIRE(probe && tg_model_load(probe, at("backup/model.safetensors")) == 0);
    CHECK(tg_model_get_fit_position(probe, &pos) == 1 && pos.epoch == want_epoch && pos.step == want_step &&
          pos.seed == 77);
    tg_model_free(probe);

    tg_model *second = new_model(6); /* other initial weights: the backup replaces them */
    REQUIRE(second);
    h = fit(second, (tg_callback *[]){backup}, 1);
    CHECK(h && tg_history_epochs(h) == EPOCHS - want_epoch);
    tg_history_free(h);
    CHECK(weights(second, got, 64) == n && memcmp(want, got, sizeof(double) * (size_t)n) == 0);
    CHECK(!exists(at("backup/model.safetensors")) && !exists(dir)); /* deleted at the end */
    tg_model_free(second);
    tg_model_free(ref);
    tg_callback_free(backup);
    tg_scope_end(s);
}

static void test_resume_from_epoch_backup(void) { interrupted_then_resumed(0, 7, 1, 0); }

/* Saves at 3 and 6 batches; the crash after 7 resumes at epoch 1, step 1, mid-epoch. */
static void test_resume_from_batch_backup(void) { interrupted_then_resumed(3, 7, 1, 1); }

/* Without a backup the fit starts afresh; delete_checkpoint false keeps the file. */
static void test_fresh_start_and_keep(void)
{
    tg_scope *s = tg_scope_begin();
    tg_callback *backup = tg_backup_and_restore(.backup_dir = at("kept"), .delete_checkpoint = false);
    tg_model *m = new_model(5);
    REQUIRE(m && backup);
    tg_history *h = fit(m, (tg_callback *[]){backup}, 1);
    CHECK(h && tg_history_epochs(h) == EPOCHS);
    tg_history_free(h);
    CHECK(exists(at("kept/model.safetensors")));
    /* a finished backup resumes at the end: no epoch left */
    tg_model *again = new_model(5);
    h = fit(again, (tg_callback *[]){backup}, 1);
    CHECK(h && tg_history_epochs(h) == 0);
    tg_history_free(h);
    tg_model_free(again);
    tg_model_free(m);
    tg_callback_free(backup);
    tg_scope_end(s);
}

static void test_errors(void)
{
    EXPECT_ERROR(tg_backup_and_restore(.backup_dir = "") == NULL, "Empty `backup_dir` argument passed");
    EXPECT_ERROR(tg_backup_and_restore(.backup_dir = "x", .save_freq = -2) == NULL,
                 "save_freq must be 0 (\"epoch\") or a number of batches, got -2");
    /* a backup of more epochs than this fit has */
    tg_scope *s = tg_scope_begin();
    tg_callback *backup = tg_backup_and_restore(.backup_dir = at("long"), .delete_checkpoint = false);
    tg_model *m = new_model(5);
    REQUIRE(m && backup);
    tg_history *h = fit(m, (tg_callback *[]){backup}, 1);
    tg_history_free(h);
    tg_history *short_fit =
        tg_fit(m, tg_tensor_from(TG_F32, TG_SHAPE(ROWS, FEATURES), xs), tg_tensor_from(TG_F32, TG_SHAPE(ROWS, 1), ys),
               .epochs = 1, .batch_size = BATCH, .verbose = TG_VERBOSE_SILENT, .callbacks = (tg_callback *[]){backup},
               .n_callbacks = 1);
    EXPECT_ERROR(short_fit == NULL, "the restored checkpoint is at epoch 3, step 0, past this fit's 1 epochs");
    tg_model_free(m);
    tg_callback_free(backup);
    tg_scope_end(s);
}

int main(void)
{
    if (!make_tmpdir("tg-backup"))
        return 1;
    make_data();
    RUN(test_resume_from_epoch_backup);
    RUN(test_resume_from_batch_backup);
    RUN(test_fresh_start_and_keep);
    RUN(test_errors);
    remove_tmpdir();
    return TEST_SUMMARY();
}
