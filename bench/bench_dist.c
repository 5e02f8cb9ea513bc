/* The cost of data-parallel training (docs/distributed.md), run under mpirun by
 * `make bench-dist` with 1, 2, ... ranks (alone, it is one rank):
 *
 * 1. tg_allreduce_gradients of float32 gradients of P values (P from 10,000 to 1.6
 *    million; 397,510 is mlp:500's), the best and the median of 30 calls, and the rate
 *    of gradient bytes averaged per second;
 * 2. one epoch of Fashion-MNIST through tg_fit with .distribute: Dense 784->500 ReLU,
 *    Dense 500->10, Adam, global batches of 32 and 256; the time per step, the epoch's
 *    loss, the test accuracy (every rank evaluates its shard) and the time blocked in the gradients'
 *    allreduce (exposed: what the backward pass did not hide), per step and as a share
 *    of the fit's time, with the buckets of TAPEGRAD_BUCKET_MB (make bench-dist runs 0,
 *    the blocking allreduce after the pass, and smaller buckets that overlap it).
 *
 * Each rank runs one thread (--threads). Rank 0 prints RESULT lines. The fits run their
 * step traced (graph mode, fit's default) or, with --mode eager, eagerly (.run_eagerly);
 * --part mlp runs only the fits of 2. (and --part deep only 3.).
 *
 *   mpirun -np 2 bench_dist [--threads 1] [--epochs 1] [--dir FMNIST_DIR] [--part all|mlp|deep]
 *                           [--mode traced|eager] */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tapegrad.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

static int rank, size;
static const char *bucket_mb = "25"; /* TAPEGRAD_BUCKET_MB, as the ranks read it */
static bool deep_only;               /* --part deep: only the deeper model (3.) */
static bool mlp_only;                /* --part mlp: only the fits of 2. */
static bool eager;                   /* --mode eager: fit's step runs eagerly */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void allreduce_bench(void)
{
    static const int64_t sizes[] = {10000, 100000, 397510, 1600000};
    enum { CALLS = 30 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        tg_scope *s = tg_scope_begin();
        tg_tensor *g = tg_fill(TG_F32, TG_SHAPE(sizes[k]), 1.0 + rank);
        double t[CALLS];
        for (int i = 0; i < CALLS; i++) {
            tg_scope *step = tg_scope_begin();
            tg_tensor *h = g;
            double t0 = now();
            if (tg_allreduce_gradients(&h, 1, .samples = 16) != 0) {
                fprintf(stderr, "bench_dist: %s\n", tg_last_error());
                exit(1);
            }
            t[i] = now() - t0;
            tg_scope_end(step);
        }
        qsort(t, CALLS, sizeof t[0], cmp_double);
        if (rank == 0)
            printf("RESULT allreduce ranks=%d P=%lld bytes=%lld best_ms=%.3f median_ms=%.3f GB_per_s=%.2f\n", size,
                   (long long)sizes[k], (long long)sizes[k] * 4, t[0] * 1e3, t[CALLS / 2] * 1e3,
                   (double)sizes[k] * 4 / t[CALLS / 2] / 1e9);
        tg_scope_end(s);
    }
}

/* 3. A deeper model, where the gradients spread over layers the backward pass finishes
 *    one after another: Dense 784->1024, three Dense 1024->1024 (ReLU), Dense 1024->10,
 *    3.9 million weights (15.7 MB of float32 gradients), Adam, global batch 256, the
 *    first DEEP_STEPS batches of Fashion-MNIST. */
enum { DEEP_STEPS = 30, DEEP_BATCH = 256 };

static void report(const char *what, int64_t batch, int64_t steps, double wall, tg_distributed_stats before,
                   const char *extra)
{
    tg_distributed_stats after = tg_distributed_get_stats();
    double waited = after.wait_seconds - before.wait_seconds;
    int64_t reductions = after.reductions - before.reductions;
    double per = reductions ? 1.0 / (double)reductions : 0.0;
    if (rank == 0)
        printf("RESULT %s ranks=%d bucket_mb=%s global_batch=%lld ms_per_step=%.3f exposed_wait_ms=%.3f "
               "exposed_share=%.3f buckets_per_step=%.2f in_pass_per_step=%.2f%s\n",
               what, size, bucket_mb, (long long)batch, wall / (double)steps * 1e3, waited * per * 1e3, waited / wall,
               (double)(after.buckets - before.buckets) * per,
               (double)(after.buckets_in_pass - before.buckets_in_pass) * per, extra);
}

static int deep_bench(const tg_dataset *train)
{
    tg_scope *s = tg_scope_begin();
    int64_t rows = (int64_t)DEEP_STEPS * DEEP_BATCH;
    tg_tensor *x = tg_slice(tg_dataset_x(train), TG_SHAPE(0, 0), TG_SHAPE(rows, -1));
    tg_tensor *y = tg_slice(tg_dataset_y(train), TG_SHAPE(0), TG_SHAPE(rows));
    tg_model *m = tg_sequential_with(
        tg_sequential_options(.seed = 1), tg_dense(.units = 1024, .activation = TG_RELU, .input_dim = 784),
        tg_dense(.units = 1024, .activation = TG_RELU), tg_dense(.units = 1024, .activation = TG_RELU),
        tg_dense(.units = 1024, .activation = TG_RELU), tg_dense(.units = 10));
    if (!x || !y || !m ||
        tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                   .distribute = true) != 0) {
        fprintf(stderr, "bench_dist: %s\n", tg_last_error());
        return 1;
    }
    tg_distributed_stats before = tg_distributed_get_stats();
    double t0 = now();
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = DEEP_BATCH, .seed = 2, .verbose = TG_VERBOSE_SILENT,
                           .run_eagerly = eager);
    double wall = now() - t0;
    if (!h) {
        fprintf(stderr, "bench_dist: rank %d: %s\n", rank, tg_last_error());
        return 1;
    }
    report("deep", DEEP_BATCH, DEEP_STEPS, wall, before, "");
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
    return 0;
}

static int fit_bench(const char *dir, int epochs)
{
    int rc;
    tg_dataset *train = NULL, *test = NULL;
    if (tg_load_fashion_mnist(dir, &train, &test) != 0 || tg_dataset_reshape(train, TG_SHAPE(784)) != 0 ||
        tg_dataset_reshape(test, TG_SHAPE(784)) != 0) {
        fprintf(stderr, "bench_dist: %s\n", tg_last_error());
        return 1;
    }
    static const int64_t batches[] = {32, 256};
    for (size_t k = 0; k < sizeof batches / sizeof batches[0] && !deep_only; k++) {
        tg_scope *s = tg_scope_begin();
        tg_model *m =
            tg_sequential_with(tg_sequential_options(.seed = 1),
                               tg_dense(.units = 500, .activation = TG_RELU, .input_dim = 784), tg_dense(.units = 10));
        if (!m || tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                             .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY), .distribute = true) != 0) {
            fprintf(stderr, "bench_dist: %s\n", tg_last_error());
            return 1;
        }
        tg_distributed_stats before = tg_distributed_get_stats();
        double t0 = now(), c0 = cpu_now();
        tg_history *h = tg_fit(m, NULL, NULL, .dataset = train, .epochs = epochs, .batch_size = batches[k], .seed = 2,
                               .verbose = TG_VERBOSE_SILENT, .run_eagerly = eager);
        double wall = now() - t0, cpu = cpu_now() - c0;
        tg_distributed_stats after = tg_distributed_get_stats();
        double waited = after.wait_seconds - before.wait_seconds;
        int64_t reductions = after.reductions - before.reductions, buckets = after.buckets - before.buckets,
                in_pass = after.buckets_in_pass - before.buckets_in_pass;
        tg_logs logs = {0};
        if (!h || tg_evaluate(m, NULL, NULL, &logs, .dataset = test, .batch_size = 500) != 0) { /* sharded */
            fprintf(stderr, "bench_dist: rank %d: %s\n", rank, tg_last_error());
            return 1;
        }
        int64_t steps = (tg_dataset_size(train) + batches[k] - 1) / batches[k] * epochs;
        const double *loss = tg_history_get(h, "loss", NULL);
        if (rank == 0)
            printf("RESULT fit mode=%s ranks=%d bucket_mb=%s global_batch=%lld rows_per_rank=%lld epochs=%d "
                   "ms_per_step=%.3f cpu_ms_per_step=%.3f samples_per_s=%.0f loss=%.4f test_acc=%.4f "
                   "exposed_wait_ms=%.3f exposed_share=%.3f buckets_per_step=%.2f in_pass_per_step=%.2f\n",
                   eager ? "eager" : "traced", size, bucket_mb, (long long)batches[k], (long long)(batches[k] / size),
                   epochs, wall / (double)steps * 1e3, cpu / (double)steps * 1e3,
                   (double)tg_dataset_size(train) * epochs / wall, loss[epochs - 1], tg_logs_get(&logs, "accuracy"),
                   reductions ? waited / (double)reductions * 1e3 : 0.0, waited / wall,
                   reductions ? (double)buckets / (double)reductions : 0.0,
                   reductions ? (double)in_pass / (double)reductions : 0.0);
        tg_history_free(h);
        tg_model_free(m);
        tg_scope_end(s);
    }
    rc = mlp_only ? 0 : deep_bench(train);
    tg_dataset_free(train);
    tg_dataset_free(test);
    return rc;
}

int main(int argc, char **argv)
{
    int threads = 1, epochs = 1;
    const char *dir = NULL, *part = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs"))
            epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--part"))
            part = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            eager = !strcmp(argv[i + 1], "eager");
        else
            return fprintf(stderr, "usage: bench_dist [--threads N] [--epochs N] [--dir FMNIST_DIR] [--part "
                                   "all|mlp|deep] [--mode traced|eager]\n"),
                   2;
    }
    if (tg_distributed_init() != 0) {
        fprintf(stderr, "bench_dist: %s\n", tg_last_error());
        return 1;
    }
    const char *mb = getenv("TAPEGRAD_BUCKET_MB");
    if (mb && *mb)
        bucket_mb = mb;
    rank = tg_distributed_rank();
    size = tg_distributed_size();
    tg_set_num_threads(threads > 0 ? threads : 1);
    deep_only = !strcmp(part, "deep");
    mlp_only = !strcmp(part, "mlp");
    if (size > 1 && !deep_only && !mlp_only)
        allreduce_bench();
    return fit_bench(dir, epochs > 0 ? epochs : 1);
}
