/* The loop pool: every threaded kernel gives the same bits with 1, 2, 3 or 8 threads
 * (loops are cut into chunks that depend only on their length; reductions combine
 * per-chunk partials in chunk order), and the threaded results are the right values. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "kernels/parallel.h"

/* Seeded random float64 inputs in [lo, hi). */
static tg_tensor *gc_input(uint64_t seed, tg_shape shape, double lo, double hi)
{
    tg_rng *r = tg_rng_new(seed);
    tg_tensor *x = tg_random_uniform(r, TG_F64, shape, .minval = lo, .maxval = hi);
    tg_rng_free(r);
    return x;
}

enum { MAX_RESULTS = 40 };

typedef struct results {
    int n;
    const char *name[MAX_RESULTS];
    double *v[MAX_RESULTS];
    int64_t size[MAX_RESULTS];
} results;

static void keep(results *r, const char *name, const tg_tensor *t)
{
    if (!t) {
        printf("  %s failed: %s\n", name, tg_last_error() ? tg_last_error() : "?");
        check_failures_in_test++;
        return;
    }
    int64_t n = tg_size(t);
    r->name[r->n] = name;
    r->size[r->n] = n;
    r->v[r->n] = malloc(sizeof(double) * (size_t)(n ? n : 1));
    tg_copy_out_f64(t, r->v[r->n], n);
    r->n++;
}

static void drop(results *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->v[i]);
    r->n = 0;
}

/* Large enough for several chunks of every kernel (TG_GRAIN is 32768 elements). */
static void compute_all(results *r)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_cast(gc_input(1, TG_SHAPE(700, 300), -3, 3), TG_F32);
    tg_tensor *b = tg_cast(gc_input(2, TG_SHAPE(300), -1, 1), TG_F32);
    tg_tensor *x64 = gc_input(3, TG_SHAPE(257, 300), -3, 3);
    keep(r, "add broadcast", tg_add(x, b));
    keep(r, "mul", tg_mul(x, x));
    keep(r, "where", tg_where(tg_greater(x, tg_scalar(0)), x, tg_scalar(-1)));
    keep(r, "relu", tg_relu(x));
    keep(r, "sigmoid f64", tg_sigmoid(x64));
    keep(r, "exp", tg_exp(x));
    keep(r, "softmax -1", tg_softmax(x, -1));
    keep(r, "softmax 0", tg_softmax(x, 0));
    keep(r, "log_softmax", tg_log_softmax(x64, -1));
    keep(r, "sum all", tg_sum(x));
    keep(r, "sum all f64", tg_sum(x64));
    keep(r, "sum axis 0", tg_sum(x, .axes = TG_AXES(0)));
    keep(r, "sum axis 1", tg_sum(x, .axes = TG_AXES(1)));
    keep(r, "mean", tg_mean(x64));
    keep(r, "max all", tg_max(x));
    keep(r, "min axis 0", tg_min(x, .axes = TG_AXES(0)));
    keep(r, "logsumexp", tg_logsumexp(x, .axes = TG_AXES(-1)));
    keep(r, "variance", tg_variance(x64));
    keep(r, "sum int", tg_sum(tg_cast(tg_mul(x, tg_scalar(1000)), TG_I32)));
    keep(r, "bias relu", tg_bias_add_act(x, b, TG_BIAS_RELU));
    int64_t rows[300]; /* unsorted, with repeats, over several chunks */
    for (int64_t i = 0; i < 300; i++)
        rows[i] = (i * 389 + 17) % 700;
    keep(r, "gather rows", tg_gather(x, tg_tensor_from(TG_I64, TG_SHAPE(300), rows), 0));
    tg_tensor *labels = tg_cast(tg_argmax(x, -1), TG_I32);
    tg_tensor *logits = tg_reshape(x, TG_SHAPE(7000, 30));
    tg_tensor *l2 = tg_reshape(tg_cast(tg_argmax(logits, -1), TG_I64), TG_SHAPE(7000));
    (void)labels;
    keep(r, "sparse xent", tg_sparse_softmax_cross_entropy_with_logits(l2, logits));
    tg_tensor *img =
        tg_reshape(tg_cast(gc_input(4, TG_SHAPE(16 * 28 * 28 * 8), -1, 1), TG_F32), TG_SHAPE(16, 28, 28, 8));
    keep(r, "max_pool", tg_max_pool2d(img, .pool_size = {3, 3}, .strides = {2, 2}, .padding = TG_PADDING_SAME));
    keep(r, "avg_pool", tg_avg_pool2d(img));

    /* Gradients: the backward kernels (act_grad, xent_grad, pool grads, column sums). */
    tg_tape *t = tg_tape_begin(.persistent = true);
    tg_watch(t, x);
    tg_watch(t, b);
    tg_watch(t, img);
    tg_tensor *h = tg_bias_add_act(x, b, TG_BIAS_TANH);
    tg_tensor *loss = tg_add(
        tg_sum(tg_sparse_softmax_cross_entropy_with_logits(l2, tg_reshape(h, TG_SHAPE(7000, 30)))),
        tg_sum(tg_square(tg_max_pool2d(img, .pool_size = {3, 3}, .strides = {2, 2}, .padding = TG_PADDING_SAME))));
    tg_tape_end(t);
    tg_tensor *srcs[3] = {x, b, img}, *g[3] = {0};
    tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = srcs, .n_sources = 3, .out = g);
    keep(r, "d/dx", g[0]);
    keep(r, "d/db", g[1]);
    keep(r, "d/dimg", g[2]);
    tg_tape_free(t);

    /* Adam over two variables, two steps: one joined loop over the state. */
    tg_tensor *w1 = tg_variable(tg_cast(gc_input(5, TG_SHAPE(400, 300), -1, 1), TG_F32), .name = "w1");
    tg_tensor *w2 = tg_variable(tg_cast(gc_input(6, TG_SHAPE(300), -1, 1), TG_F32), .name = "w2");
    tg_optimizer *opt = tg_adam(.learning_rate = 0.01);
    tg_tensor *vars[2] = {w1, w2};
    tg_tensor *grads[2] = {tg_cast(gc_input(7, TG_SHAPE(400, 300), -1, 1), TG_F32),
                           tg_cast(gc_input(8, TG_SHAPE(300), -1, 1), TG_F32)};
    for (int k = 0; k < 2; k++)
        CHECK(tg_apply_gradients(opt, grads, vars, 2) == 0);
    keep(r, "adam w1", w1);
    keep(r, "adam w2", w2);
    tg_optimizer_free(opt);
    tg_variable_free(w1);
    tg_variable_free(w2);
    tg_scope_end(s);
}

static void test_same_bits_for_any_thread_count(void)
{
    static const int counts[] = {1, 2, 3, 8};
    results base = {0}, other = {0};
    tg_set_num_threads(counts[0]);
    compute_all(&base);
    for (size_t c = 1; c < sizeof counts / sizeof counts[0]; c++) {
        tg_set_num_threads(counts[c]);
        compute_all(&other);
        CHECK(other.n == base.n);
        for (int i = 0; i < base.n && i < other.n; i++)
            if (other.size[i] != base.size[i] ||
                memcmp(other.v[i], base.v[i], sizeof(double) * (size_t)base.size[i]) != 0) {
                printf("  %s differs between 1 and %d threads\n", base.name[i], counts[c]);
                check_failures_in_test++;
            }
        drop(&other);
    }
    drop(&base);
    tg_set_num_threads(2);
}

/* Threaded results are the right values: reductions against double sums here, the
 * element-wise ops against a loop here. */
static void test_threaded_values(void)
{
    tg_set_num_threads(4);
    tg_scope *s = tg_scope_begin();
    const int64_t R = 700, C = 300;
    tg_tensor *x = gc_input(11, TG_SHAPE(R, C), -3, 3);
    double *v = malloc(sizeof(double) * R * C), *col = calloc(C, sizeof(double)), *got = malloc(sizeof(double) * R * C);
    tg_copy_out_f64(x, v, R * C);
    double total = 0, mx = -INFINITY;
    for (int64_t i = 0; i < R * C; i++) {
        total += v[i];
        col[i % C] += v[i];
        mx = v[i] > mx ? v[i] : mx;
    }
    CHECK_NEAR(tg_item(tg_sum(x)), total, 1e-12);
    CHECK_NEAR(tg_item(tg_max(x)), mx, 0);
    tg_copy_out_f64(tg_sum(x, .axes = TG_AXES(0)), got, C);
    for (int64_t j = 0; j < C; j++)
        CHECK_NEAR(got[j], col[j], 1e-12);
    tg_copy_out_f64(tg_relu(x), got, R * C);
    bool ok = true;
    for (int64_t i = 0; i < R * C; i++)
        ok &= got[i] == (v[i] > 0 ? v[i] : 0);
    CHECK(ok);
    /* Rows gathered in an order that is not sorted, repeats rows and spans many chunks. */
    int64_t idx[900];
    for (int64_t i = 0; i < 900; i++)
        idx[i] = (i * 389 + 17) % R;
    double *rows = malloc(sizeof(double) * 900 * C);
    tg_copy_out_f64(tg_gather(x, tg_tensor_from(TG_I64, TG_SHAPE(900), idx), 0), rows, 900 * C);
    ok = true;
    for (int64_t i = 0; i < 900; i++)
        ok &= memcmp(rows + i * C, v + idx[i] * C, sizeof(double) * C) == 0;
    CHECK(ok);
    free(rows);
    free(v), free(col), free(got);
    tg_scope_end(s);
    tg_set_num_threads(2);
}

/* A loop pool of one thread runs everything on the caller; 0 threads is refused. */
static void test_thread_count_argument(void)
{
    CHECK(tg_set_num_threads(0) == -1);
    CHECK(tg_set_num_threads(-3) == -1);
    CHECK(tg_set_num_threads(1) == 0);
    CHECK(tg_set_num_threads(2) == 0);
}

/* The pool does use its workers: chunks that take a while are shared between threads,
 * and every chunk runs exactly once. */
typedef struct spread {
    pthread_t who[64];
    atomic_int runs[64];
} spread;

static void busy_chunk(void *p, int64_t b, int64_t e)
{
    spread *s = p;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do /* about 2 ms of work */
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 2000000L);
    for (int64_t i = b; i < e; i++) {
        s->who[i] = pthread_self();
        atomic_fetch_add(&s->runs[i], 1);
    }
}

static void test_workers_share_the_chunks(void)
{
    static spread s;
    tg_set_num_threads(2);
    tg__parallel_for(64, 1, busy_chunk, &s);
    int others = 0;
    for (int i = 0; i < 64; i++) {
        CHECK(atomic_load(&s.runs[i]) == 1);
        others += !pthread_equal(s.who[i], pthread_self());
    }
    printf("  %d of 64 chunks ran on a worker\n", others);
    CHECK(others > 0);
    /* One thread: everything on the caller. */
    memset(&s, 0, sizeof s);
    tg_set_num_threads(1);
    tg__parallel_for(8, 1, busy_chunk, &s);
    for (int i = 0; i < 8; i++)
        CHECK(pthread_equal(s.who[i], pthread_self()) && atomic_load(&s.runs[i]) == 1);
    tg_set_num_threads(2);
}

int main(void)
{
    RUN(test_workers_share_the_chunks);
    RUN(test_thread_count_argument);
    RUN(test_same_bits_for_any_thread_count);
    RUN(test_threaded_values);
    return TEST_SUMMARY();
}
