/* A training step allocates nothing from the system once warm: tensors, gradients and
 * scratch come from the step scope's arena (whose chunks are recycled), the optimizer's
 * state and the tape's buffers are kept. Counted by wrapping malloc and friends in this
 * process (glibc's __libc_* entry points); not under the sanitizers, whose allocator
 * owns these names. */
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"

#include "kernels/onednn.h"
#include "malloc_count.h"

#ifdef MALLOC_CAN_COUNT
/* Counts from the start of batch `from` of epoch `epoch` to the end of that epoch. */
typedef struct window {
    int64_t from;
    int epoch, now;
} window;

static int epoch_begin(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m, (void)logs;
    ((window *)cb->user)->now = epoch;
    return 0;
}

static int batch_begin(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)m, (void)logs;
    const window *w = cb->user;
    if (batch == w->from && w->now == w->epoch)
        malloc_count_start();
    return 0;
}

static int epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m, (void)logs;
    if (epoch == ((window *)cb->user)->epoch)
        malloc_count_stop();
    return 0;
}

/* The benchmark's model, smaller: Dense(64, relu) -> Dense(10), Adam, sparse
 * cross-entropy from logits, through fit's default step; 2 threads. */
static void fit_counting_from(int64_t batch, tg_model *(*make)(void), tg_shape row, bool dataset);

static void fit_counting(int64_t batch, tg_model *(*make)(void), tg_shape row)
{
    fit_counting_from(batch, make, row, false);
}

/* With dataset: the same rows from a data set, read in place, a quarter of them held out
 * for validation (evaluated inside the counted window, before the epoch-end hook), counted
 * in the second epoch: the first epoch's validation traces its function. */
static void fit_counting_from(int64_t batch, tg_model *(*make)(void), tg_shape row, bool dataset)
{
    tg_scope *s = tg_scope_begin();
    tg_shape xs = {.rank = row.rank + 1, .dims = {640}};
    for (int i = 0; i < row.rank; i++)
        xs.dims[i + 1] = row.dims[i];
    tg_rng *r = tg_rng_new(3);
    tg_tensor *x = tg_random_uniform(r, TG_F32, xs);
    tg_tensor *y = tg_cast(tg_mul(tg_random_uniform(r, TG_F32, TG_SHAPE(640)), tg_scalar(9.99)), TG_I32);
    tg_rng_free(r);
    tg_model *m = make();
    CHECK(tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true) ==
          0);
    window w = {.from = 3, .epoch = dataset ? 1 : 0};
    tg_callback cb = {
        .on_epoch_begin = epoch_begin, .on_batch_begin = batch_begin, .on_epoch_end = epoch_end, .user = &w};
    tg_dataset *ds = dataset ? tg_dataset_new(x, y) : NULL;
    tg_history *h =
        dataset ? tg_fit(m, NULL, NULL, .dataset = ds, .validation_split = 0.25, .epochs = 2, .batch_size = batch,
                         .verbose = TG_VERBOSE_SILENT, .callbacks = (tg_callback *[]){&cb}, .n_callbacks = 1)
                : tg_fit(m, x, y, .epochs = 1, .batch_size = batch, .verbose = TG_VERBOSE_SILENT,
                         .callbacks = (tg_callback *[]){&cb}, .n_callbacks = 1);
    CHECK(h != NULL);
    long n = (long)atomic_load(&malloc_calls);
    int64_t rows = dataset ? 480 : 640;
    printf("  batch %lld%s: %ld allocations in batches %lld..%lld\n", (long long)batch,
           dataset ? " (a data set, validation split)" : "", n, (long long)w.from,
           (long long)((rows + batch - 1) / batch - 1));
    tg_dataset_free(ds);
    CHECK(n == 0);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static tg_model *mlp(void)
{
    return tg_sequential(tg_dense(.units = 64, .activation = TG_RELU, .input_dim = 20), tg_dense(.units = 10));
}

static tg_model *cnn(void)
{
    return tg_sequential(
        tg_conv2d_layer(.filters = 4, .kernel_size = {3, 3}, .activation = TG_RELU, .input_shape = TG_SHAPE(8, 8, 1)),
        tg_max_pooling2d(), tg_flatten(), tg_dense(.units = 10));
}

static void test_mlp_steps_allocate_nothing(void)
{
    tg_set_num_threads(2);
    fit_counting(32, mlp, TG_SHAPE(20));
    fit_counting(128, mlp, TG_SHAPE(20));
    fit_counting_from(32, mlp, TG_SHAPE(20), true);
}

/* On the portable path: oneDNN allocates inside every execution (its argument maps), so
 * with it the convolutions are the exception. */
static void test_cnn_steps_allocate_nothing(void)
{
    bool was = tg__onednn_active();
    tg__onednn_set_enabled(false);
    fit_counting(32, cnn, TG_SHAPE(8, 8, 1));
    tg__onednn_set_enabled(was);
}
#endif

int main(void)
{
#ifdef MALLOC_CAN_COUNT
    RUN(test_mlp_steps_allocate_nothing);
    RUN(test_cnn_steps_allocate_nothing);
#else
    puts("  skipped: allocations are not counted under the sanitizers");
#endif
    return TEST_SUMMARY();
}
