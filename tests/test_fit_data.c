/* fit's data contract: tensors, lists of them or a data set, read in place (a validation
 * split is a view, batches go through one reused buffer); the position in an epoch saved
 * by a checkpoint and resumed bit for bit; shards of every global batch; refusals of data
 * given badly. */
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"
#include "tensor/tensor_impl.h" /* a tensor's data pointer: which memory a batch is */
#include "tmpfiles.h"

#include "malloc_count.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Bit for bit. */
static bool same_weights(tg_model *a, tg_model *b)
{
    int64_t na, nb;
    double *wa = weights_of(a, &na), *wb = weights_of(b, &nb);
    bool same = na == nb && na > 0 && memcmp(wa, wb, sizeof(double) * (size_t)na) == 0;
    free(wa);
    free(wb);
    return same;
}

/* n rows of 6 features and labels 0..2, seeded. */
static void data(int64_t n, uint64_t seed, tg_tensor **x, tg_tensor **y)
{
    tg_rng *r = tg_rng_new(seed);
    *x = tg_random_normal(r, TG_F32, TG_SHAPE(n, 6));
    *y = tg_cast(tg_mul(tg_random_uniform(r, TG_F32, TG_SHAPE(n)), tg_scalar(2.999)), TG_I32);
    tg_rng_free(r);
}

static tg_model *mlp(void)
{
    tg_model *m =
        tg_sequential_with(tg_sequential_options(.seed = 11),
                           tg_dense(.units = 16, .activation = TG_RELU, .input_dim = 6), tg_dense(.units = 3));
    CHECK(m &&
          tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    return m;
}

static bool same_history(const tg_history *a, const tg_history *b, const char *key)
{
    int na = 0, nb = 0;
    const double *va = tg_history_get(a, key, &na), *vb = tg_history_get(b, key, &nb);
    return va && vb && na == nb && memcmp(va, vb, sizeof(double) * (size_t)na) == 0;
}

/* ---- one contract, three ways to give the data -------------------------------------------------- */
static void a_data_set_and_lists_train_as_tensors_do(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    data(203, 1, &x, &y);
    tg_dataset *ds = tg_dataset_new(x, y);
    tg_model *a = mlp(), *b = mlp(), *c = mlp();
    tg_history *ha = tg_fit(a, x, y, .epochs = 3, .batch_size = 16, .validation_split = 0.2, .seed = 5,
                            .verbose = TG_VERBOSE_SILENT);
    tg_history *hb = tg_fit(b, NULL, NULL, .dataset = ds, .epochs = 3, .batch_size = 16, .validation_split = 0.2,
                            .seed = 5, .verbose = TG_VERBOSE_SILENT);
    tg_history *hc = tg_fit(c, NULL, NULL, .inputs = (const tg_tensor *[]){x}, .n_inputs = 1,
                            .targets = (const tg_tensor *[]){y}, .n_targets = 1, .epochs = 3, .batch_size = 16,
                            .validation_split = 0.2, .seed = 5, .verbose = TG_VERBOSE_SILENT);
    CHECK(ha && hb && hc);
    CHECK(same_weights(a, b) && same_weights(a, c));
    CHECK(same_history(ha, hb, "loss") && same_history(ha, hb, "val_loss") && same_history(ha, hc, "val_accuracy"));

    /* evaluate and predict read the data set in place too */
    tg_logs la, lb, lc;
    CHECK(tg_evaluate(a, x, y, &la, .batch_size = 7) == 0);
    CHECK(tg_evaluate(a, NULL, NULL, &lb, .dataset = ds, .batch_size = 7) == 0);
    CHECK(tg_evaluate(a, NULL, NULL, &lc, .inputs = (const tg_tensor *[]){x}, .n_inputs = 1,
                      .targets = (const tg_tensor *[]){y}, .n_targets = 1, .batch_size = 7) == 0);
    CHECK(la.n == 2 && tg_logs_get(&la, "loss") == tg_logs_get(&lb, "loss") &&
          tg_logs_get(&la, "accuracy") == tg_logs_get(&lc, "accuracy"));
    tg_tensor *pa = tg_predict(a, x, .batch_size = 9), *pb = tg_predict(a, NULL, .dataset = ds, .batch_size = 9);
    CHECK(pa && pb && tg_dim(pb, 0) == 203 && tg_item(tg_max(tg_abs(tg_sub(pa, pb)))) == 0.0);
    /* validation_dataset: the same rows as validation_x/validation_y */
    tg_tensor *vx = tg_slice(x, TG_SHAPE(150, 0), TG_SHAPE(-1, -1)), *vy = tg_slice(y, TG_SHAPE(150), TG_SHAPE(-1));
    tg_dataset *vds = tg_dataset_new(vx, vy);
    tg_model *d = mlp(), *e = mlp();
    tg_history *hd =
        tg_fit(d, x, y, .validation_x = vx, .validation_y = vy, .epochs = 2, .seed = 2, .verbose = TG_VERBOSE_SILENT);
    tg_history *he = tg_fit(e, NULL, NULL, .dataset = ds, .validation_dataset = vds, .epochs = 2, .seed = 2,
                            .verbose = TG_VERBOSE_SILENT);
    CHECK(hd && he && same_history(hd, he, "val_loss") && same_weights(d, e));
    tg_history_free(ha), tg_history_free(hb), tg_history_free(hc), tg_history_free(hd), tg_history_free(he);
    tg_model_free(a), tg_model_free(b), tg_model_free(c), tg_model_free(d), tg_model_free(e);
    tg_dataset_free(ds);
    tg_dataset_free(vds);
    tg_scope_end(s);
}

static void dataset_views_read_in_place(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    data(20, 2, &x, &y);
    tg_dataset *ds = tg_dataset_new(x, y), *unlabelled = tg_dataset_new(x, NULL);
    tg_tensor *vx = tg_dataset_x_view(ds), *vy = tg_dataset_y_view(ds), *cx = tg_dataset_x(ds);
    CHECK(vx && vy && tg_dim(vx, 0) == 20 && tg_dim(vx, 1) == 6 && tg_dim(vy, 0) == 20);
    CHECK(tg_item(tg_max(tg_abs(tg_sub(vx, x)))) == 0.0 && tg_item(tg_sum(tg_abs(tg_sub(vy, y)))) == 0);
    CHECK(vx->data != cx->data); /* the copy is elsewhere; the view is the data set's */
    CHECK(tg_dataset_has_labels(ds) && !tg_dataset_has_labels(unlabelled) && !tg_dataset_has_labels(NULL));
    CHECK(tg_dataset_y_view(unlabelled) == NULL);
    CHECK(tg_dataset_x_view(NULL) == NULL);
    CHECK_ERROR("ds");
    tg_dataset_free(ds);
    tg_dataset_free(unlabelled);
    tg_scope_end(s);
}

/* ---- what a step is given ------------------------------------------------------------------------- */
#define MAX_STEPS 64
typedef struct seen {
    int steps;
    const void *data[MAX_STEPS];
    int64_t rows[MAX_STEPS];
    float first[MAX_STEPS][32]; /* column 0 of each row */
} seen;

/* Records the batch and trains nothing. */
static int record_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *w, tg_logs *logs,
                       void *user)
{
    (void)m, (void)y, (void)w, (void)logs;
    seen *s = user;
    if (s->steps >= MAX_STEPS)
        return -1;
    int k = s->steps++;
    s->data[k] = x->data;
    s->rows[k] = tg_dim(x, 0);
    tg_tensor *col = tg_slice(x, TG_SHAPE(0, 0), TG_SHAPE(-1, 1));
    return col && tg_dim(x, 0) <= 32 && tg_copy_out(col, s->first[k], sizeof(float) * (size_t)tg_dim(x, 0)) == 0 ? 0
                                                                                                                 : -1;
}

/* x[i] = (i, i, ...): a row's first value is its number. */
static tg_tensor *numbered(int64_t n)
{
    float *v = malloc(sizeof(float) * (size_t)n * 6);
    for (int64_t i = 0; i < n * 6; i++)
        v[i] = (float)(i / 6);
    tg_tensor *t = tg_tensor_from(TG_F32, TG_SHAPE(n, 6), v);
    free(v);
    return t;
}

static void batches_share_one_buffer(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = numbered(50), *y;
    tg_tensor *unused;
    data(50, 3, &unused, &y);
    tg_model *m = mlp();
    seen st = {0};
    tg_history *h = tg_fit(m, x, y, .epochs = 2, .batch_size = 8, .seed = 9, .train_step = record_step, .user = &st,
                           .verbose = TG_VERBOSE_SILENT);
    CHECK(h && st.steps == 14);
    bool one_buffer = true, each_row_once = true;
    for (int k = 1; k < st.steps; k++)
        one_buffer &= st.data[k] == st.data[0];
    for (int e = 0; e < 2; e++) { /* every row once per epoch */
        int hits[50] = {0};
        for (int k = 7 * e; k < 7 * e + 7; k++)
            for (int64_t r = 0; r < st.rows[k]; r++)
                hits[(int)st.first[k][r]]++;
        for (int i = 0; i < 50; i++)
            each_row_once &= hits[i] == 1;
    }
    CHECK(one_buffer);
    CHECK(each_row_once);
    CHECK(st.data[0] != (const void *)x->data); /* a gather, not the data itself */
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- shards ------------------------------------------------------------------------------------------ */
static void shards_cover_each_global_batch(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = numbered(53), *y, *unused;
    data(53, 4, &unused, &y);
    enum { SHARDS = 3 };
    seen global = {0}, part[SHARDS] = {{0}};
    tg_model *m = mlp();
    tg_history *h = tg_fit(m, x, y, .epochs = 2, .batch_size = 10, .seed = 21, .train_step = record_step,
                           .user = &global, .verbose = TG_VERBOSE_SILENT);
    CHECK(h && global.steps == 12);
    tg_history_free(h);
    for (int r = 0; r < SHARDS; r++) {
        h = tg_fit(m, x, y, .epochs = 2, .batch_size = 10, .seed = 21, .train_step = record_step, .user = &part[r],
                   .shard = {.rank = r, .count = SHARDS}, .verbose = TG_VERBOSE_SILENT);
        CHECK(h && part[r].steps == global.steps);
        tg_history_free(h);
    }
    /* shard 0's rows, then 1's, then 2's, are the global batch: disjoint, and all of it */
    bool covered = true;
    for (int k = 0; k < global.steps; k++) {
        int64_t at = 0;
        for (int r = 0; r < SHARDS; r++) {
            covered &= part[r].rows[k] >= global.rows[k] / SHARDS && part[r].rows[k] <= global.rows[k] / SHARDS + 1;
            for (int64_t i = 0; i < part[r].rows[k] && at < global.rows[k]; i++, at++)
                covered &= part[r].first[k][i] == global.first[k][at];
        }
        covered &= at == global.rows[k] && part[0].rows[k] + part[1].rows[k] + part[2].rows[k] == global.rows[k];
    }
    CHECK(covered);
    /* a batch too small for every shard to get a row is refused */
    CHECK(tg_fit(m, x, y, .batch_size = 2, .shard = {.rank = 0, .count = 3}, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR("3 shards need at least 3 rows in every batch");
    CHECK(tg_fit(m, x, y, .batch_size = 5, .shard = {.rank = 0, .count = 4}, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR("gives a batch of 3"); /* 53 = 10 * 5 + 3 */
    CHECK(tg_fit(m, x, y, .shard = {.rank = 3, .count = 3}, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR("0 <= rank < count");
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- the position in an epoch, checkpointed and resumed ---------------------------------------------- */
typedef struct stopper {
    int64_t global, at; /* steps seen, and the one after which to save and stop */
    const char *path;
} stopper;

static int save_and_stop(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)batch, (void)logs;
    stopper *st = cb->user;
    if (++st->global != st->at)
        return 0;
    return tg_model_save(m, st->path, NULL) == 0 ? 1 : -1;
}

static void a_checkpoint_resumes_mid_epoch_bit_for_bit(void)
{
    CHECK(make_tmpdir("tg-fit-data"));
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    data(100, 6, &x, &y);
    const uint64_t seed = 0xFEEDFACECAFEBEEFull; /* past int64: saved as text */
    /* 90 training rows in batches of 8: 12 steps per epoch; 3 epochs */
    tg_model *whole = mlp();
    tg_history *h = tg_fit(whole, x, y, .epochs = 3, .batch_size = 8, .validation_split = 0.1, .seed = seed,
                           .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    tg_history_free(h);
    tg_model_fit_position pos;
    CHECK(tg_model_get_fit_position(whole, &pos) == 1 && pos.epoch == 3 && pos.step == 0 && pos.seed == seed);

    /* the same run, saved and stopped after its 17th step (epoch 1, step 5) */
    tg_model *first = mlp();
    CHECK(tg_model_get_fit_position(first, &pos) == 0 && pos.epoch == 0 && pos.step == 0);
    stopper st = {.at = 17, .path = at("mid.safetensors")};
    tg_callback cb = {.on_batch_end = save_and_stop, .user = &st};
    h = tg_fit(first, x, y, .epochs = 3, .batch_size = 8, .validation_split = 0.1, .seed = seed,
               .callbacks = (tg_callback *[]){&cb}, .n_callbacks = 1, .verbose = TG_VERBOSE_SILENT);
    CHECK(h && tg_history_epochs(h) == 2 && st.global == 17);
    tg_history_free(h);
    CHECK(!same_weights(first, whole));

    /* the file says where */
    tg_safetensors *f = tg_safetensors_open(st.path);
    const tg_meta_key keys[3] = {{"tapegrad_epoch", TG_META_INT, 0, 100, true, NULL},
                                 {"tapegrad_step", TG_META_INT, 0, 100, true, NULL},
                                 {"tapegrad_seed", TG_META_TEXT, 1, 20, true, NULL}};
    tg_meta_value v[3];
    CHECK(f && tg_safetensors_read_metadata(f, keys, 3, v) == 0 && v[0].i == 1 && v[1].i == 5 &&
          !strcmp(v[2].text, "18369614221190020847"));
    tg_safetensors_close(f);

    /* a fresh model resumes from the file alone */
    tg_model *resumed = mlp();
    CHECK(tg_model_build(resumed, TG_SHAPE(6)) == 0 && tg_model_load(resumed, st.path) == 0);
    CHECK(tg_model_get_fit_position(resumed, &pos) == 1 && pos.epoch == 1 && pos.step == 5 && pos.seed == seed);
    h = tg_fit(resumed, x, y, .epochs = 3, .batch_size = 8, .validation_split = 0.1, .seed = pos.seed,
               .initial_epoch = pos.epoch, .initial_step = pos.step, .verbose = TG_VERBOSE_SILENT);
    CHECK(h && tg_history_epochs(h) == 2);
    tg_history_free(h);
    CHECK(same_weights(resumed, whole));
    /* resuming a step later, or an epoch start, is not the same run */
    tg_model *off = mlp();
    CHECK(tg_model_build(off, TG_SHAPE(6)) == 0 && tg_model_load(off, st.path) == 0);
    h = tg_fit(off, x, y, .epochs = 3, .batch_size = 8, .validation_split = 0.1, .seed = seed, .initial_epoch = 1,
               .initial_step = 6, .verbose = TG_VERBOSE_SILENT);
    CHECK(h && !same_weights(off, whole));
    tg_history_free(h);

    /* refusals: past the epoch's end, negative, no epoch left */
    CHECK(tg_fit(off, x, y, .epochs = 3, .batch_size = 8, .validation_split = 0.1, .initial_epoch = 1,
                 .initial_step = 13, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR("initial_step 13 is past the end of the epoch: 90 training samples in batches of 8 make 12 steps");
    CHECK(tg_fit(off, x, y, .initial_step = -1, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR("initial_step must not be negative");
    CHECK(tg_fit(off, x, y, .epochs = 1, .initial_epoch = 1, .initial_step = 2, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR("runs no epoch");

    /* a file with part of a position is refused, and changes nothing */
    tg_model *fresh = mlp();
    CHECK(tg_model_build(fresh, TG_SHAPE(6)) == 0);
    CHECK(tg_model_save(fresh, at("part.safetensors"), "{\"tapegrad_epoch\": \"2\"}") == 0);
    CHECK(tg_model_load(off, at("part.safetensors")) == -1);
    CHECK_ERROR("a fit position needs all three");
    CHECK(tg_model_get_fit_position(off, &pos) == 1 && pos.epoch == 3 && pos.step == 0);
    CHECK(tg_model_save(off, at("twice.safetensors"), "{\"tapegrad_step\": \"2\"}") == -1);
    CHECK_ERROR("written by tapegrad itself");
    CHECK(tg_model_get_fit_position(NULL, &pos) == -1);

    tg_model_free(whole), tg_model_free(first), tg_model_free(resumed), tg_model_free(off), tg_model_free(fresh);
    tg_scope_end(s);
    remove(at("mid.safetensors"));
    remove(at("part.safetensors"));
    rmdir(tmpdir);
}

/* ---- data given badly ---------------------------------------------------------------------------------- */
static void bad_data_is_refused_and_trains_nothing(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y, *x2, *y2;
    data(40, 7, &x, &y);
    data(39, 8, &x2, &y2);
    tg_dataset *ds = tg_dataset_new(x, y), *unlabelled = tg_dataset_new(x, NULL);
    tg_model *m = mlp(), *ref = mlp();
    CHECK(tg_model_build(m, TG_SHAPE(6)) == 0 && tg_model_build(ref, TG_SHAPE(6)) == 0);
    const tg_tensor *two[] = {x, x};
    const tg_tensor *ys[] = {y, y};
#define REFUSED(call, needle)  \
    do {                       \
        CHECK((call) == NULL); \
        CHECK_ERROR(needle);   \
    } while (0)
    REFUSED(tg_fit(m, x, y, .dataset = ds, .verbose = TG_VERBOSE_SILENT), "given twice, as tensors and as a data set");
    REFUSED(tg_fit(m, x, NULL, .targets = ys, .n_targets = 1, .verbose = TG_VERBOSE_SILENT), "as tensors and as lists");
    REFUSED(tg_fit(m, NULL, NULL, .dataset = ds, .inputs = two, .n_inputs = 1, .verbose = TG_VERBOSE_SILENT),
            "as lists and as a data set");
    REFUSED(tg_fit(m, NULL, NULL, .inputs = two, .n_inputs = 2, .targets = ys, .n_targets = 1,
                   .verbose = TG_VERBOSE_SILENT),
            ".inputs holds 2 tensors but the model takes 1 input");
    REFUSED(tg_fit(m, NULL, NULL, .inputs = two, .n_inputs = 1, .targets = ys, .n_targets = 2,
                   .verbose = TG_VERBOSE_SILENT),
            ".targets holds 2 tensors but the model has 1 output");
    REFUSED(tg_fit(m, NULL, NULL, .inputs = two, .targets = ys, .n_targets = 1, .verbose = TG_VERBOSE_SILENT),
            "give each list with its count");
    REFUSED(tg_fit(m, NULL, NULL, .inputs = (const tg_tensor *[]){x}, .n_inputs = 1,
                   .targets = (const tg_tensor *[]){y2}, .n_targets = 1, .verbose = TG_VERBOSE_SILENT),
            "`x` has 40 rows but `y` has 39");
    REFUSED(tg_fit(m, NULL, NULL, .inputs = (const tg_tensor *[]){NULL}, .n_inputs = 1, .targets = ys, .n_targets = 1,
                   .verbose = TG_VERBOSE_SILENT),
            "x");
    REFUSED(tg_fit(m, NULL, NULL, .dataset = unlabelled, .verbose = TG_VERBOSE_SILENT), "the data set has no labels");
    REFUSED(tg_fit(m, NULL, NULL, .verbose = TG_VERBOSE_SILENT), "x");
    REFUSED(tg_fit(m, x, y, .validation_split = 0.2, .validation_dataset = ds, .verbose = TG_VERBOSE_SILENT),
            "give one of validation_split, validation_x/validation_y, validation_dataset and "
            "validation_inputs/validation_targets, not several");
    REFUSED(tg_fit(m, x, y, .validation_dataset = unlabelled, .verbose = TG_VERBOSE_SILENT),
            "the data set has no labels");
    REFUSED(tg_fit(m, x, y, .sample_weight = tg_ones(TG_F32, TG_SHAPE(39)), .verbose = TG_VERBOSE_SILENT),
            "one weight per sample (40)");
    CHECK(same_weights(m, ref)); /* nothing trained */

    tg_logs logs;
    CHECK(tg_evaluate(m, x, y, &logs, .dataset = ds) == -1);
    CHECK_ERROR("tg_evaluate: the data is given twice");
    CHECK(tg_evaluate(m, NULL, NULL, &logs, .dataset = unlabelled) == -1);
    CHECK_ERROR("the data set has no labels");
    CHECK(tg_evaluate(m, x, y, &logs, .sample_weight = tg_ones(TG_F32, TG_SHAPE(39))) == -1);
    CHECK_ERROR("one weight per sample (40)");
    CHECK(tg_evaluate(m, NULL, NULL, &logs, .inputs = two, .n_inputs = 2, .targets = ys, .n_targets = 1) == -1);
    CHECK_ERROR("takes 1 input");
    CHECK(tg_predict(m, x, .dataset = ds) == NULL);
    CHECK_ERROR("tg_predict: the data is given twice");
    CHECK(tg_predict(m, NULL, .inputs = two, .n_inputs = 2) == NULL);
    CHECK_ERROR("takes 1 input");
    tg_tensor *p = tg_predict(m, NULL, .dataset = unlabelled); /* predict needs no labels */
    CHECK(p && tg_dim(p, 0) == 40 && tg_dim(p, 1) == 3);
#undef REFUSED
    tg_model_free(m);
    tg_model_free(ref);
    tg_dataset_free(ds);
    tg_dataset_free(unlabelled);
    tg_scope_end(s);
}

#ifdef MALLOC_CAN_COUNT
static tg_model *wide(void)
{
    tg_model *m = tg_sequential(tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 64), tg_dense(.units = 3));
    CHECK(m && tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                          .from_logits = true) == 0);
    return m;
}

/* A validation split and a data set cost no copy of the data: what fit asks of malloc is
 * far below the size of x. */
static void no_copy_of_the_data(void)
{
    tg_scope *s = tg_scope_begin();
    tg_rng *r = tg_rng_new(9);
    tg_tensor *x = tg_random_normal(r, TG_F32, TG_SHAPE(20000, 64)); /* 5 MB of features */
    tg_tensor *y = tg_cast(tg_mul(tg_random_uniform(r, TG_F32, TG_SHAPE(20000)), tg_scalar(2.999)), TG_I32);
    tg_rng_free(r);
    long long x_bytes = (long long)tg_size(x) * 4;
    tg_dataset *ds = tg_dataset_new(x, y);
    tg_model *m = wide(), *warm = wide();
    tg_history *h = tg_fit(warm, x, y, .epochs = 1, .batch_size = 64, .verbose = TG_VERBOSE_SILENT); /* caches */
    tg_history_free(h);
    malloc_count_start();
    h = tg_fit(m, x, y, .epochs = 1, .batch_size = 64, .validation_split = 0.5, .verbose = TG_VERBOSE_SILENT);
    malloc_count_stop();
    long long tensors = atomic_load(&malloc_bytes), tensors_max = atomic_load(&malloc_largest);
    CHECK(h != NULL);
    tg_history_free(h);
    malloc_count_start();
    h = tg_fit(m, NULL, NULL, .dataset = ds, .epochs = 1, .batch_size = 64, .validation_split = 0.5,
               .verbose = TG_VERBOSE_SILENT);
    malloc_count_stop();
    long long dataset = atomic_load(&malloc_bytes), dataset_max = atomic_load(&malloc_largest);
    CHECK(h != NULL);
    tg_history_free(h);
    printf("  x is %lld bytes; fit asked malloc for %lld in all, %lld at most at once (tensors), and %lld, %lld "
           "(a data set)\n",
           x_bytes, tensors, tensors_max, dataset, dataset_max);
    /* the largest is the shuffle's order, 8 bytes per training row */
    CHECK(tensors_max <= 8 * 10000 && dataset_max <= 8 * 10000);
    CHECK(tensors < x_bytes / 4 && dataset < x_bytes / 4);
    tg_model_free(m);
    tg_model_free(warm);
    tg_dataset_free(ds);
    tg_scope_end(s);
}
#endif

int main(void)
{
    RUN(a_data_set_and_lists_train_as_tensors_do);
    RUN(dataset_views_read_in_place);
    RUN(batches_share_one_buffer);
    RUN(shards_cover_each_global_batch);
    RUN(a_checkpoint_resumes_mid_epoch_bit_for_bit);
    RUN(bad_data_is_refused_and_trains_nothing);
#ifdef MALLOC_CAN_COUNT
    RUN(no_copy_of_the_data);
#endif
    return TEST_SUMMARY();
}
