/* The training benchmark of ../BENCH.md for tapegrad: Fashion-MNIST, Dense 784->500 ReLU,
 * Dense 500->10, sparse softmax cross-entropy from logits, Glorot-uniform kernels, zero
 * biases, Adam (1e-3, 0.9, 0.999, 1e-7), reshuffled every epoch, through the Keras-style
 * tg_fit with its default training step (what a user writes). Timed: each epoch of fit
 * (from the epoch-begin to the epoch-end callback: shuffling, the per-batch gather of
 * rows, forward, backward, Adam and the running loss); data loading is not timed.
 * Printed: one line per epoch and a RESULT line with the median of epochs 2..N, the test
 * accuracy after the last epoch, the process's peak resident memory and that of training
 * alone (train_peak_rss_mb: fit and the test set's predict, the peak reset after loading,
 * when the process held train_base_rss_mb).
 *
 * With --model cnn: Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Flatten -> Dense(10) on
 * the first --samples training images (default 60000), same loss and optimizer. With
 * --model lstm: LSTM(128) over the 28 rows of each image as steps -> Dense(10).
 *
 *   bench_fmnist [--batch 500] [--epochs 5] [--threads 2] [--model mlp|cnn|lstm] [--samples N]
 *                [--seed 0] [--dir FMNIST_DIR] [--profile] [--precision float32|mixed_bfloat16] [--eager]
 * --profile prints tapegrad's op profile of the training (tg_profile_print).
 * --eager runs fit's step and the test set's predict eagerly (.run_eagerly); by default
 * they are traced (graph mode).
 *
 * With --memory: the peak resident memory of what a user writes with the public API,
 * OpenBLAS's buffers included: Fashion-MNIST loaded as data sets (tg_load_fashion_mnist),
 * Dense(128, relu) -> Dense(10), Adam, one epoch of fit on the training set with a 10%
 * validation split, then evaluate on the test set; batch 32 unless --batch is given.
 * --tensors passes tg_dataset_x/tg_dataset_y copies instead of the data sets. Printed: a
 * RESULT line with the peak (getrusage's ru_maxrss) and the float32 training set's size. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <tapegrad.h>

#include "kernels/gemm.h"
#include "kernels/onednn.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

/* Per-epoch wall and cpu times, from fit's callbacks. */
typedef struct timing {
    double t0, c0;
    double wall[64], cpu[64]; /* cpu: the process's CPU time, steadier than wall time on a shared machine */
    int n;
} timing;

static int epoch_begin(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m, (void)epoch, (void)logs;
    timing *t = cb->user;
    t->t0 = now();
    t->c0 = cpu_now();
    return 0;
}

static int epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m;
    timing *t = cb->user;
    double w = now() - t->t0, c = cpu_now() - t->c0;
    if (t->n < 64)
        t->cpu[t->n] = c, t->wall[t->n++] = w;
    printf("epoch %d: %.3f s  loss %.4f (cpu/wall %.2f)\n", epoch + 1, w, tg_logs_get(logs, "loss"), c / w);
    fflush(stdout);
    return 0;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return true;
    return false;
}

static tg_tensor *read_idx(const char *dir, const char *name, bool labels)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    return labels ? tg_read_idx(path, .dtype = TG_I32) : tg_read_idx(path, .scale = 1.0 / 255);
}

/* Fraction of test images whose largest logit is their label. */
static double accuracy(tg_model *m, const tg_tensor *x, const tg_tensor *y, bool eager)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *logits = tg_predict(m, x, .batch_size = 1000, .run_eagerly = eager);
    tg_tensor *hit = logits ? tg_equal(tg_argmax(logits, -1), tg_cast(y, TG_I64)) : NULL;
    double acc = hit ? tg_item(tg_mean(tg_cast(hit, TG_F64))) : -1;
    tg_scope_end(s);
    return acc;
}

/* The peak resident memory of training alone: Linux's high-water mark is reset once the
 * data is loaded (clear_refs 5; loading's own peak, the compressed and decoded images
 * together, would hide the steps' memory) and read after fit and predict. NAN where the
 * kernel does not have it. */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

/* A line of /proc/self/status ("VmHWM", "VmRSS") in MB. */
static double status_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = NAN;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%lf", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb / 1024.0;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* --memory: fit and evaluate from data sets, as a user would write it. */
static int memory_run(const char *dir, int64_t batch, int threads, bool tensors)
{
    tg_set_num_threads(threads);
    tg_dataset *train = NULL, *test = NULL;
    if (tg_load_fashion_mnist(dir, &train, &test) != 0 || tg_dataset_reshape(train, TG_SHAPE(784)) != 0 ||
        tg_dataset_reshape(test, TG_SHAPE(784)) != 0) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 1;
    }
    double loaded = peak_rss_mb();
    tg_scope *outer = tg_scope_begin();
    tg_model *m = tg_sequential(tg_dense(.units = 128, .activation = TG_RELU, .input_dim = 784), tg_dense(.units = 10));
    if (!m || tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                         .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) != 0) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 1;
    }
    double t0 = now();
    tg_history *h = NULL;
    tg_logs logs = {0};
    int rc = -1;
    if (tensors) {
        tg_tensor *x = tg_dataset_x(train), *y = tg_dataset_y(train);
        h = tg_fit(m, x, y, .epochs = 1, .batch_size = batch, .validation_split = 0.1, .verbose = TG_VERBOSE_SILENT);
        rc = h ? tg_evaluate(m, tg_dataset_x(test), tg_dataset_y(test), &logs, .batch_size = batch) : -1;
    } else {
        h = tg_fit(m, NULL, NULL, .dataset = train, .epochs = 1, .batch_size = batch, .validation_split = 0.1,
                   .verbose = TG_VERBOSE_SILENT);
        rc = h ? tg_evaluate(m, NULL, NULL, &logs, .dataset = test, .batch_size = batch) : -1;
    }
    if (rc != 0) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 1;
    }
    double train_mb = (double)tg_dataset_size(train) * 784 * 4 / (1024.0 * 1024.0);
    const double *val = tg_history_get(h, "val_accuracy", NULL);
    printf("RESULT tapegrad-memory data=%s B=%lld epochs=1 validation_split=0.1 fit_and_evaluate_s=%.2f "
           "val_acc=%.4f test_acc=%.4f train_f32_mb=%.1f peak_rss_after_load_mb=%.1f peak_rss_mb=%.1f gemm=%s\n",
           tensors ? "tensors" : "dataset", (long long)batch, now() - t0, val ? val[0] : NAN,
           tg_logs_get(&logs, "accuracy"), train_mb, loaded, peak_rss_mb(), tg__gemm_backend());
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(outer);
    tg_dataset_free(train);
    tg_dataset_free(test);
    return 0;
}

/* The median of v[1..n) (v[0] alone when n is 1): epoch 1 warms caches and primitives. */
static double median_after_first(const double *v, int n)
{
    double sorted[64];
    memcpy(sorted, v, sizeof(double) * (size_t)n);
    int from = n > 1 ? 1 : 0;
    qsort(sorted + from, (size_t)(n - from), sizeof(double), cmp_double);
    double median = sorted[from + (n - from) / 2];
    if ((n - from) % 2 == 0)
        median = 0.5 * (sorted[from + (n - from) / 2 - 1] + sorted[from + (n - from) / 2]);
    return median;
}

/* The default step as a function, traced once on the first batch (after the timed fit): the
 * bytes of its intermediates, each in its own buffer as eagerly, and its planned buffer. */
static int one_step(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    static tg_logs logs; /* the recorded logs update writes here at every call */
    (void)n, (void)out;
    return tg_train_step_default(user, in[0], in[1], NULL, &logs, NULL);
}

static tg_function_stats step_plan(tg_model *m, const tg_tensor *x, const tg_tensor *y, int64_t batch)
{
    tg_function_stats st = {0};
    tg_scope *s = tg_scope_begin();
    tg_function *f = tg_function_new(one_step, m, .name = "train_step");
    tg_shape begin = {.rank = tg_rank(x)}, size = {.rank = tg_rank(x), .dims = {batch}}; /* the first batch */
    for (int i = 1; i < size.rank; i++)
        size.dims[i] = -1;
    tg_tensor *in[2] = {tg_slice(x, begin, size), tg_slice(y, TG_SHAPE(0), TG_SHAPE(batch))};
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    if (tg_function_call(f, in, 2, out) == 0)
        st = tg_function_get_stats(f);
    tg_function_free(f);
    tg_scope_end(s);
    return st;
}

int main(int argc, char **argv)
{
    int64_t batch = atoll(arg(argc, argv, "--batch", "500"));
    int epochs = atoi(arg(argc, argv, "--epochs", "5"));
    int threads = atoi(arg(argc, argv, "--threads", "2"));
    int64_t samples = atoll(arg(argc, argv, "--samples", "60000"));
    uint64_t seed = strtoull(arg(argc, argv, "--seed", "0"), NULL, 10);
    const char *model_kind = arg(argc, argv, "--model", "mlp");
    const char *dir = getenv("FMNIST_DIR") ? getenv("FMNIST_DIR") : "/usr/share/datasets/fashion-mnist";
    dir = arg(argc, argv, "--dir", dir);
    if (flag(argc, argv, "--memory"))
        return memory_run(dir, atoll(arg(argc, argv, "--batch", "32")), threads, flag(argc, argv, "--tensors"));
    bool cnn = !strcmp(model_kind, "cnn"), lstm = !strcmp(model_kind, "lstm");
    const char *precision = arg(argc, argv, "--precision", "float32"); /* Keras's dtype policy */
    if (tg_set_dtype_policy(precision) != 0) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 2;
    }
    if (batch < 1 || epochs < 1 || epochs > 64 || threads < 1 || samples < 1) {
        fprintf(
            stderr,
            "usage: %s [--batch B] [--epochs 1..64] [--threads T] [--model mlp|cnn|lstm] [--samples N] [--profile]\n",
            argv[0]);
        return 2;
    }
    tg_set_num_threads(threads);

    tg_scope *outer = tg_scope_begin();
    tg_tensor *xtr = read_idx(dir, "train-images-idx3-ubyte", false);
    tg_tensor *ytr = read_idx(dir, "train-labels-idx1-ubyte", true);
    tg_tensor *xte = read_idx(dir, "t10k-images-idx3-ubyte", false);
    tg_tensor *yte = read_idx(dir, "t10k-labels-idx1-ubyte", true);
    if (!xtr || !ytr || !xte || !yte) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 1;
    }
    int64_t n = tg_dim(xtr, 0) < samples ? tg_dim(xtr, 0) : samples;
    tg_shape row = cnn ? TG_SHAPE(28, 28, 1) : lstm ? TG_SHAPE(28, 28) : TG_SHAPE(784);
    tg_shape all = {.rank = row.rank + 1, .dims = {n}}, test = {.rank = row.rank + 1, .dims = {tg_dim(xte, 0)}};
    for (int i = 0; i < row.rank; i++)
        all.dims[i + 1] = test.dims[i + 1] = row.dims[i];
    if (n < tg_dim(xtr, 0)) {
        xtr = tg_slice(xtr, TG_SHAPE(0, 0, 0), TG_SHAPE(n, -1, -1));
        ytr = tg_slice(ytr, TG_SHAPE(0), TG_SHAPE(n));
    }
    xtr = tg_reshape(xtr, all);
    xte = tg_reshape(xte, test);

    tg_sequential_opts so = tg_sequential_options(.seed = seed);
    tg_model *m = lstm  ? tg_sequential_with(so, tg_lstm(.units = 128, .input_shape = row), tg_dense(.units = 10))
                  : cnn ? tg_sequential_with(so,
                                             tg_conv2d_layer(.filters = 32, .kernel_size = {3, 3},
                                                             .activation = TG_RELU, .input_shape = row),
                                             tg_max_pooling2d(.pool_size = {2, 2}), tg_flatten(), tg_dense(.units = 10))
                        : tg_sequential_with(so, tg_dense(.units = 500, .activation = TG_RELU, .input_dim = 784),
                                             tg_dense(.units = 10));
    if (!m ||
        tg_compile(m, .optimizer = tg_adam(.learning_rate = 1e-3, .beta_1 = 0.9, .beta_2 = 0.999, .epsilon = 1e-7),
                   .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true) != 0) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 1;
    }

    bool profile = flag(argc, argv, "--profile"), eager = flag(argc, argv, "--eager");
    timing t = {0};
    reset_peak_rss();
    double train_base = status_mb("VmRSS");
    if (profile)
        tg_profile_start();
    tg_callback cb = {.on_epoch_begin = epoch_begin, .on_epoch_end = epoch_end, .user = &t};
    tg_history *h =
        tg_fit(m, xtr, ytr, .epochs = epochs, .batch_size = batch, .seed = seed + 1, .verbose = TG_VERBOSE_SILENT,
               .callbacks = (tg_callback *[]){&cb}, .n_callbacks = 1, .run_eagerly = eager);
    if (!h) {
        fprintf(stderr, "bench_fmnist: %s\n", tg_last_error());
        return 1;
    }
    if (profile) {
        tg_profile_stop();
        tg_profile_print(stdout);
    }
    double acc = accuracy(m, xte, yte, eager);
    double train_peak = status_mb("VmHWM");
    tg_function_stats plan = !cnn ? step_plan(m, xtr, ytr, batch) : (tg_function_stats){0};
    double median = median_after_first(t.wall, t.n), median_cpu = median_after_first(t.cpu, t.n);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT tapegrad-%s B=%lld epochs=%d samples=%lld median_s_per_epoch(2..N)=%.3f "
           "median_cpu_s_per_epoch(2..N)=%.3f test_acc=%.4f peak_rss_mb=%.1f train_peak_rss_mb=%.1f "
           "train_base_rss_mb=%.1f mode=%s "
           "step_values_mb=%.2f "
           "step_buffer_mb=%.2f step_nodes=%lld gemm=%s precision=%s\n",
           cnn    ? "cnn"
           : lstm ? "lstm"
                  : "mlp",
           (long long)batch, epochs, (long long)n, median, median_cpu, acc, (double)ru.ru_maxrss / 1024.0, train_peak,
           train_base, eager ? "eager" : "traced", (double)plan.value_bytes / 1048576.0,
           (double)plan.buffer_bytes / 1048576.0, (long long)plan.nodes, tg__gemm_backend(), precision);
    if (strcmp(precision, "float32") != 0)
        printf("bfloat16 products: %s\n", tg__gemm_bf16_backend());
    if (cnn)
        printf("conv: %s\n", tg__onednn_active() ? tg__onednn_backend() : "patches times the kernel (GEMM)");
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(outer);
    return 0;
}
