/* Data-parallel training under mpirun (tests/mpi/run.sh starts it with -np 2 and -np 3).
 *
 * Every rank also trains the same model alone, as one process would, and checks that
 * the distributed weights and logs match it (float32 within 1e-5, float64 within 1e-12)
 * and are bitwise the same on every rank. The data has a partial last batch of 2 rows,
 * so under -np 3 rank 0 has no rows of it and still joins. Each rank prints its own
 * summary line; run.sh fails when any rank fails. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tapegrad/function.h"
#include "dist/dist_impl.h" /* tg__dist_allreduce_f64: the same on every rank? */

enum { N = 130, BATCH = 64, FEATURES = 5, CLASSES = 3, EPOCHS = 2 };
static int rank, size;

/* Deterministic data, the same on every rank: x uniform in [-1, 1), y the class of a
 * linear rule (classification) or a smooth target (regression). */
static void make_data(tg_dtype dtype, int64_t n, bool regression, tg_tensor **x, tg_tensor **y)
{
    double *xv = malloc(sizeof(double) * (size_t)(n * FEATURES)), *yv = malloc(sizeof(double) * (size_t)n);
    uint64_t s = 0x243F6A8885A308D3ull;
    for (int64_t i = 0; i < n * FEATURES; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        xv[i] = (double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    }
    for (int64_t i = 0; i < n; i++) {
        const double *r = xv + i * FEATURES;
        double a = r[0] - 0.5 * r[1] + 0.25 * r[2], b = r[3] + r[4];
        yv[i] = regression ? sin(a) + 0.5 * b * b : (a > 0.2 ? 2 : b > 0 ? 1 : 0);
    }
    tg_tensor *xf = tg_tensor_from(TG_F64, TG_SHAPE(n, FEATURES), xv);
    *x = dtype == TG_F64 ? xf : tg_cast(xf, dtype);
    *y = regression ? tg_tensor_from(TG_F64, TG_SHAPE(n, 1), yv) : tg_tensor_from(TG_F64, TG_SHAPE(n), yv);
    if (regression && dtype != TG_F64)
        *y = tg_cast(*y, dtype);
    free(xv);
    free(yv);
}

static tg_model *mlp(tg_dtype dtype, uint64_t seed, int outputs)
{
    return tg_sequential_with(tg_sequential_options(.seed = seed, .dtype = dtype),
                              tg_dense(.units = 16, .activation = TG_TANH, .input_dim = FEATURES),
                              tg_dense(.units = outputs));
}

/* Every value of every trainable weight, in order, as doubles (exact for float32). */
static int weights(tg_model *m, double *out, int cap)
{
    int nv = 0, at = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &nv);
    for (int i = 0; i < nv; i++) {
        int64_t k = tg_size(vars[i]);
        if (at + k > cap)
            return -1;
        tg_copy_out_f64(vars[i], out + at, k);
        at += (int)k;
    }
    return at;
}

/* The same values on every rank, bit for bit (the smallest and largest agree). */
static bool same_on_every_rank(const double *v, int n)
{
    double *lo = malloc(sizeof(double) * (size_t)n), *hi = malloc(sizeof(double) * (size_t)n);
    memcpy(lo, v, sizeof(double) * (size_t)n);
    memcpy(hi, v, sizeof(double) * (size_t)n);
    bool same = tg__dist_allreduce_f64(TG_LOC, "test", lo, n, TG_DIST_MIN) == 0 &&
                tg__dist_allreduce_f64(TG_LOC, "test", hi, n, TG_DIST_MAX) == 0 &&
                memcmp(lo, hi, sizeof(double) * (size_t)n) == 0;
    free(lo);
    free(hi);
    return same;
}

static double max_rel_diff(const double *a, const double *b, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - b[i]) / (1.0 + fabs(b[i])));
    return worst;
}

static void test_ranks(void)
{
    const char *announced = getenv("OMPI_COMM_WORLD_SIZE");
    CHECK(announced && atoi(announced) == size);
    CHECK(size >= 2 && rank >= 0 && rank < size);
    for (int r = 0; r < size; r++)
        CHECK(tg_distributed_host(r)[0] != '\0');
    CHECK(tg_distributed_host(size)[0] == '\0');
}

/* Each rank's gradients weigh its samples; a rank with none joins with zeros. */
static void test_allreduce_weighted(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *g[3] = {tg_fill(TG_F32, TG_SHAPE(3), rank + 1), NULL, tg_fill(TG_F64, TG_SHAPE(2), 10.0 * (rank + 1))};
    tg_tensor *old = g[0];
    CHECK(tg_allreduce_gradients(g, 3, .samples = rank) == 0);
    double num = 0, den = 0;
    for (int r = 0; r < size; r++) {
        num += (double)r * (r + 1);
        den += r;
    }
    CHECK(g[0] != old && g[1] == NULL && tg_dtype_of(g[0]) == TG_F32 && tg_dtype_of(g[2]) == TG_F64);
    CHECK_VALUES(g[0], 1e-7, num / den, num / den, num / den);
    CHECK_VALUES(g[2], 1e-15, 10 * num / den, 10 * num / den);
    /* plain mean */
    tg_tensor *h[1] = {tg_fill(TG_F64, TG_SHAPE(1), rank)};
    CHECK(tg_allreduce_gradients(h, 1) == 0);
    CHECK_VALUES(h[0], 1e-15, (size - 1) / 2.0);
    /* .samples on some ranks only is refused on every rank */
    tg_tensor *k[1] = {tg_fill(TG_F64, TG_SHAPE(1), 1)};
    CHECK(tg_allreduce_gradients(k, 1, .samples = rank == 0 ? 1 : -1) == -1);
    CHECK_ERROR("whether .samples is given");
    tg_clear_error();
    tg_scope_end(s);
}

/* A rank that failed joins; every rank returns -1, the others naming it. */
static void test_allreduce_failed(void)
{
    tg_scope *s = tg_scope_begin();
    bool failing = rank == size - 1;
    tg_tensor *g[1] = {failing ? NULL : tg_fill(TG_F32, TG_SHAPE(4), 1)};
    if (failing)
        tg__failf(TG_LOC, "the cause on the failing rank");
    CHECK(tg_allreduce_gradients(failing ? NULL : g, 1, .failed = failing) == -1);
    if (failing) {
        CHECK_ERROR("the cause on the failing rank");
    } else {
        char want[64];
        snprintf(want, sizeof want, "rank %d of %d failed", size - 1, size);
        CHECK_ERROR(want);
    }
    tg_clear_error();
    tg_scope_end(s);
}

static void test_broadcast(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_variable(tg_fill(TG_F64, TG_SHAPE(2, 2), rank + 0.5), .name = "v");
    uint64_t before = tg_variable_version(v);
    CHECK(tg_broadcast_variables(&v, 1, 1) == 0);
    CHECK_VALUES(v, 0, 1.5, 1.5, 1.5, 1.5);
    CHECK(rank == 1 ? tg_variable_version(v) == before : tg_variable_version(v) > before);
    CHECK(tg_broadcast_variables(&v, 1, size) == -1);
    CHECK_ERROR("is not a rank");
    tg_clear_error();
    tg_variable_free(v);
    tg_scope_end(s);
}

/* A digest of the weights a fit trained, which rank 0 prints: run.sh requires the same
 * digest whatever the buckets (TAPEGRAD_BUCKET_MB), blocking allreduce included. */
static void print_digest(const char *what, const double *v, int n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < sizeof(double) * (size_t)n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    if (rank == 0)
        printf("digest %s %016llx\n", what, (unsigned long long)h);
}

/* One model over the ranks against the same model in one process: same seed, global
 * batch 64, a partial last batch of 2 rows. Each rank starts from its own initial
 * weights (seed + rank), which the broadcast from rank 0 must replace. Then a second fit
 * after spoiling the weights and the optimizer state on ranks other than 0: the
 * broadcast at its start must restore rank 0's. */
static void fit_matches_one_process(tg_dtype dtype, bool regression, double tol)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(dtype, N, regression, &x, &y);
    int outputs = regression ? 1 : CLASSES;
    tg_model *one = mlp(dtype, 11, outputs), *dist = mlp(dtype, 11 + (uint64_t)rank, outputs);
    tg_loss_kind loss = regression ? TG_LOSS_MSE : TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    tg_metric_list metrics = regression ? TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR) : TG_METRICS(TG_ACCURACY);
    /* float32: SGD with momentum (Adam's division by sqrt(v) turns rounding noise on a
     * near-zero gradient into a visible step); float64: Adam */
#define OPT() (dtype == TG_F32 ? tg_sgd(.learning_rate = 0.1, .momentum = 0.9) : tg_adam(.learning_rate = 0.01))
    CHECK(tg_compile(one, .optimizer = OPT(), .loss = loss, .from_logits = true, .metrics = metrics) == 0);
    CHECK(tg_compile(dist, .optimizer = OPT(), .loss = loss, .from_logits = true, .metrics = metrics,
                     .distribute = true) == 0);
    CHECK(!tg_model_distributed(one) && tg_model_distributed(dist));
    char csv[128];
    snprintf(csv, sizeof csv, "/tmp/tapegrad_mpi_%d_rank%d.csv", (int)getppid(), rank);
    tg_callback *log = tg_csv_logger(.filename = csv);
    for (int round = 0; round < 2; round++) {
        tg_history *h1 =
            tg_fit(one, x, y, .epochs = EPOCHS, .batch_size = BATCH, .seed = 5 + round, .verbose = TG_VERBOSE_SILENT);
        tg_history *hd = tg_fit(dist, x, y, .epochs = EPOCHS, .batch_size = BATCH, .seed = 5 + round,
                                .verbose = TG_VERBOSE_SILENT, .callbacks = &log, .n_callbacks = 1);
        CHECK(h1 && hd);
        if (!h1 || !hd)
            break;
        double w1[512], wd[512];
        int n1 = weights(one, w1, 512), nd = weights(dist, wd, 512);
        CHECK(n1 > 0 && n1 == nd);
        double worst = max_rel_diff(wd, w1, n1);
        if (getenv("TG_TEST_VERBOSE") || !(worst <= tol))
            printf("  rank %d, %s, round %d: weights differ from one process's by %g\n", rank, tg_dtype_name(dtype),
                   round, worst);
        CHECK(worst <= tol);
        CHECK(same_on_every_rank(wd, nd));
        char what[32];
        snprintf(what, sizeof what, "fit-%s-%d", tg_dtype_name(dtype), round);
        print_digest(what, wd, nd);
        /* every rank logs the whole batch's loss and metric, as the one process does */
        const char *keys[2] = {"loss", regression ? "mean_absolute_error" : "accuracy"};
        for (int k = 0; k < 2; k++) {
            int e1 = 0, ed = 0;
            const double *v1 = tg_history_get(h1, keys[k], &e1), *vd = tg_history_get(hd, keys[k], &ed);
            CHECK(v1 && vd && e1 == EPOCHS && ed == EPOCHS);
            for (int e = 0; v1 && vd && e < EPOCHS && e < ed; e++)
                CHECK_NEAR(vd[e], v1[e], tol);
            CHECK(vd && same_on_every_rank(vd, ed));
        }
        tg_history_free(h1);
        tg_history_free(hd);
        /* spoil the state of every rank but 0: the next fit starts from rank 0's */
        if (rank != 0) {
            int nv = 0;
            tg_tensor *const *vars = tg_model_variables(dist, &nv);
            for (int i = 0; i < nv; i++)
                tg_assign(vars[i], tg_fill(dtype, tg_shape_of(vars[i]), 0.125 * rank));
            tg_optimizer *opt = tg_model_optimizer(dist);
            for (int i = 0; i < tg_optimizer_state_count(opt); i++) {
                tg_optimizer_slot slot;
                tg_optimizer_state(opt, i, &slot);
                memset(slot.data, 0, (size_t)slot.count * tg_dtype_size(slot.dtype));
            }
            tg_optimizer_set_iterations(opt, 1000);
        }
    }
    /* only rank 0 wrote the CSV log */
    CHECK((access(csv, F_OK) == 0) == (rank == 0));
    unlink(csv);
    tg_callback_free(log);
    tg_model_free(one);
    tg_model_free(dist);
    tg_scope_end(s);
}

/* Gradient accumulation (2 steps) over the ranks: the gradients stay on each rank between
 * updates, which average the accumulated sums; the weights are one process's with the
 * same accumulation (float64, full batches: each rank's rows are the same every step),
 * and only the updates average gradients. */
static void test_fit_accumulated(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F64, 128, true, &x, &y);
    tg_model *one = mlp(TG_F64, 11, 1), *dist = mlp(TG_F64, 11, 1);
    CHECK(tg_compile(one, .optimizer = tg_adam(.learning_rate = 0.01, .gradient_accumulation_steps = 2),
                     .loss = TG_LOSS_MSE) == 0);
    CHECK(tg_compile(dist, .optimizer = tg_adam(.learning_rate = 0.01, .gradient_accumulation_steps = 2),
                     .loss = TG_LOSS_MSE, .distribute = true) == 0);
    tg_history *h1 = tg_fit(one, x, y, .epochs = 2, .batch_size = 64, .seed = 3, .verbose = TG_VERBOSE_SILENT);
    int64_t before = tg_distributed_get_stats().reductions;
    tg_history *hd = tg_fit(dist, x, y, .epochs = 2, .batch_size = 64, .seed = 3, .verbose = TG_VERBOSE_SILENT);
    int64_t averaged = tg_distributed_get_stats().reductions - before;
    CHECK(h1 && hd);
    double w1[512], wd[512];
    int n1 = weights(one, w1, 512), nd = weights(dist, wd, 512);
    CHECK(n1 > 0 && n1 == nd && max_rel_diff(wd, w1, n1) <= 1e-12);
    CHECK(same_on_every_rank(wd, nd));
    if (averaged != 2) /* 4 steps, 2 updates */
        printf("  rank %d: %lld gradient averages for 2 updates\n", rank, (long long)averaged);
    CHECK(averaged == 2);
    tg_history_free(h1);
    tg_history_free(hd);
    tg_model_free(one);
    tg_model_free(dist);
    tg_scope_end(s);
}

/* ---- the step as a traced graph (graph mode) against the eager step ---------------------- */
static int step_runs;
static int counting_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *w, tg_logs *logs,
                         void *user)
{
    step_runs++; /* C code: runs at every eager step, and in graph mode only while tracing */
    return tg_train_step_default(m, x, y, w, logs, user);
}

/* After every batch: the optimizer's iteration count and a digest of the weights. */
enum { MAX_BATCHES = 16 };
typedef struct batch_notes {
    int n;
    int64_t iterations[MAX_BATCHES];
    uint64_t digest[MAX_BATCHES];
} batch_notes;

static uint64_t digest_of(const double *v, int n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < sizeof(double) * (size_t)n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int note_batch(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    batch_notes *b = cb->user;
    (void)batch, (void)logs;
    double w[512];
    int n = weights(m, w, 512);
    if (b->n < MAX_BATCHES && n > 0) {
        b->iterations[b->n] = tg_optimizer_iterations(tg_model_optimizer(m));
        b->digest[b->n++] = digest_of(w, n);
    }
    return 0;
}

static tg_model *traced_model(tg_dtype dtype, bool batch_norm, int outputs, int accumulate)
{
    tg_sequential_opts so = tg_sequential_options(.seed = 11 + (uint64_t)rank, .dtype = dtype);
    tg_model *m = batch_norm
                      ? tg_sequential_with(so, tg_dense(.units = 16, .activation = TG_TANH, .input_dim = FEATURES),
                                           tg_batch_normalization(), tg_dense(.units = outputs))
                      : tg_sequential_with(so, tg_dense(.units = 16, .activation = TG_TANH, .input_dim = FEATURES),
                                           tg_dense(.units = outputs));
    tg_optimizer *opt = dtype == TG_F32
                            ? tg_sgd(.learning_rate = 0.1, .momentum = 0.9, .gradient_accumulation_steps = accumulate)
                            : tg_adam(.learning_rate = 0.01, .gradient_accumulation_steps = accumulate);
    bool regression = outputs == 1;
    if (tg_compile(m, .optimizer = opt, .loss = regression ? TG_LOSS_MSE : TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                   .from_logits = true,
                   .metrics = regression ? TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR) : TG_METRICS(TG_ACCURACY),
                   .distribute = true) != 0) {
        printf("  rank %d: compile: %s\n", rank, tg_last_error());
        return NULL;
    }
    return m;
}

/* The same distributed fit eagerly (.run_eagerly) and traced: the same history and
 * weights, bit for bit, the same number of gradient averages, and the step traced
 * `traces` times (once per batch shape this rank sees). With gradient accumulation
 * (`accumulate` steps) the weights change, and the applied updates advance, only at the
 * window's last step. */
static void traced_equals_eager(tg_dtype dtype, bool regression, int64_t rows, bool batch_norm, int accumulate,
                                int traces)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(dtype, rows, regression, &x, &y);
    int outputs = regression ? 1 : CLASSES;
    tg_model *me = traced_model(dtype, batch_norm, outputs, accumulate);
    tg_model *mt = traced_model(dtype, batch_norm, outputs, accumulate);
    REQUIRE(me && mt);
    batch_notes ne = {0}, nt = {0};
    tg_callback ce = {.on_batch_end = note_batch, .user = &ne}, ct = {.on_batch_end = note_batch, .user = &nt};
    tg_callback *cbe = &ce, *cbt = &ct;
    int64_t r0 = tg_distributed_get_stats().reductions;
    step_runs = 0;
    tg_history *he = tg_fit(me, x, y, .epochs = EPOCHS, .batch_size = BATCH, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                            .run_eagerly = true, .train_step = counting_step, .callbacks = &cbe, .n_callbacks = 1);
    int eager_runs = step_runs;
    int64_t r1 = tg_distributed_get_stats().reductions;
    step_runs = 0;
    tg_history *ht = tg_fit(mt, x, y, .epochs = EPOCHS, .batch_size = BATCH, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                            .train_step = counting_step, .callbacks = &cbt, .n_callbacks = 1);
    int64_t r2 = tg_distributed_get_stats().reductions;
    if (!he || !ht)
        printf("  rank %d: fit failed: %s\n", rank, tg_last_error());
    REQUIRE(he && ht);
    int steps = (int)(EPOCHS * ((rows + BATCH - 1) / BATCH));
    CHECK(eager_runs == steps);
    if (step_runs != traces)
        printf("  rank %d: the step was traced %d times, not %d\n", rank, step_runs, traces);
    CHECK(step_runs == traces);
    CHECK(r2 - r1 == r1 - r0); /* every replay averaged, as every eager step */
    CHECK(r1 - r0 == (accumulate > 1 ? steps / accumulate : steps));
    const char *keys[2] = {"loss", regression ? "mean_absolute_error" : "accuracy"};
    for (int k = 0; k < 2; k++) {
        int e1 = 0, e2 = 0;
        const double *ve = tg_history_get(he, keys[k], &e1), *vt = tg_history_get(ht, keys[k], &e2);
        CHECK(ve && vt && e1 == EPOCHS && e2 == EPOCHS);
        CHECK(ve && vt && memcmp(ve, vt, sizeof(double) * EPOCHS) == 0);
    }
    int nve = 0, nvt = 0; /* every variable: BatchNormalization's moving statistics too */
    tg_tensor *const *ve = tg_model_variables(me, &nve), *const *vt = tg_model_variables(mt, &nvt);
    CHECK(nve == nvt && nve > 0);
    for (int i = 0; i < nve && i < nvt; i++) {
        int64_t k = tg_size(ve[i]);
        double *a = calloc((size_t)k + 1, sizeof *a), *b = calloc((size_t)k + 1, sizeof *b);
        CHECK(k == tg_size(vt[i]) && tg_copy_out_f64(ve[i], a, k) == 0 && tg_copy_out_f64(vt[i], b, k) == 0 &&
              memcmp(a, b, sizeof *a * (size_t)k) == 0);
        free(a);
        free(b);
    }
    double wt[512];
    int nw = weights(mt, wt, 512);
    CHECK(nw > 0 && same_on_every_rank(wt, nw));
    CHECK(ne.n == steps && nt.n == steps);
    CHECK(memcmp(ne.digest, nt.digest, sizeof ne.digest) == 0 &&
          memcmp(ne.iterations, nt.iterations, sizeof ne.iterations) == 0);
    for (int b = 0; accumulate > 1 && b < nt.n; b++) { /* steps are numbered from 1: b + 1 */
        bool boundary = (b + 1) % accumulate == 0;
        CHECK(nt.iterations[b] == b + 1);                             /* every call counts (Keras's _iterations) ... */
        CHECK(nt.iterations[b] / accumulate == (b + 1) / accumulate); /* ... the updates at boundaries */
        if (b > 0)
            CHECK((nt.digest[b] != nt.digest[b - 1]) == boundary);
    }
    tg_history_free(he);
    tg_history_free(ht);
    tg_model_free(me);
    tg_model_free(mt);
    tg_scope_end(s);
}

static void test_traced_float32(void) { traced_equals_eager(TG_F32, false, 128, false, 0, 1); }
/* a partial last batch (under -np 3, rank 0's shard of it is empty) and BatchNormalization */
static void test_traced_partial_batch_norm(void) { traced_equals_eager(TG_F32, false, 130, true, 0, 2); }
static void test_traced_accumulated(void) { traced_equals_eager(TG_F64, true, 192, false, 3, 1); }
static void test_traced_accumulated_partial(void) { traced_equals_eager(TG_F32, false, 130, false, 3, 2); }

/* A custom step as a tg_function: tg_gradients(.allreduce) and the update, replayed every
 * step, gives the eager function's weights bit for bit, traced once. */
typedef struct loop_step {
    tg_model *m;
    tg_optimizer *opt;
} loop_step;

static int shard_step(void *user, tg_tensor *const *in, int n_in, tg_tensor **out)
{
    loop_step *l = user;
    (void)n_in;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(l->m, &n);
    tg_tensor *g[4];
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_mean(tg_square(tg_sub(tg_model_call(l->m, in[0], .training = true), in[1])));
    tg_tape_end(t);
    int rc = tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = g,
                          .allreduce = true, .samples = (double)tg_dim(in[0], 0));
    tg_tape_free(t);
    if (rc != 0 || tg_apply_gradients(l->opt, g, vars, n) != 0)
        return -1;
    out[0] = loss;
    return 1;
}

static int allreduce_branch(void *user, tg_tensor **out)
{
    tg_tensor *g = tg_fill(TG_F64, TG_SHAPE(2), 1.0);
    out[0] = tg_allreduce_gradients(&g, 1, .samples = 1) == 0 ? g : NULL;
    (void)user;
    return out[0] ? 0 : -1;
}

static int plain_branch(void *user, tg_tensor **out)
{
    (void)user;
    out[0] = tg_fill(TG_F64, TG_SHAPE(2), 0.0);
    return 0;
}

static int branching_step(void *user, tg_tensor *const *in, int n_in, tg_tensor **out)
{
    (void)user, (void)n_in;
    return tg_cond(tg_greater(tg_sum(in[0]), tg_scalar_of(TG_F64, 0)), allreduce_branch, plain_branch, NULL, 1, out) ==
                   0
               ? 1
               : -1;
}

static void test_custom_step_traced(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F64, 128, true, &x, &y);
    loop_step le = {mlp(TG_F64, 41, 1), tg_adam(.learning_rate = 0.01)};
    loop_step lt = {mlp(TG_F64, 41, 1), tg_adam(.learning_rate = 0.01)};
    tg_model_build(le.m, TG_SHAPE(FEATURES));
    tg_model_build(lt.m, TG_SHAPE(FEATURES));
    tg_function *fe = tg_function_new(shard_step, &le, .run_eagerly = true), *ft = tg_function_new(shard_step, &lt);
    for (int epoch = 0; epoch < 2; epoch++)
        for (int64_t from = 0; from < 128; from += BATCH) {
            tg_scope *step = tg_scope_begin();
            int64_t lo = from + BATCH * rank / size, hi = from + BATCH * (rank + 1) / size;
            tg_tensor *in[2] = {tg_slice(x, TG_SHAPE(lo, 0), TG_SHAPE(hi - lo, -1)),
                                tg_slice(y, TG_SHAPE(lo, 0), TG_SHAPE(hi - lo, -1))};
            tg_tensor *oe[TG_FUNCTION_MAX_OUTPUTS], *ot[TG_FUNCTION_MAX_OUTPUTS];
            CHECK(tg_function_call(fe, in, 2, oe) == 1 && tg_function_call(ft, in, 2, ot) == 1);
            TENSORS_AGREE(ot[0], oe[0], CHECK_BITS);
            tg_scope_end(step);
        }
    CHECK(tg_function_trace_count(ft) == 1);
    double we[512], wt[512];
    int ne = weights(le.m, we, 512), nt = weights(lt.m, wt, 512);
    CHECK(ne > 0 && ne == nt && memcmp(we, wt, sizeof(double) * (size_t)ne) == 0);
    CHECK(same_on_every_rank(wt, nt));
    /* an allreduce in a branch of a traced tg_cond is refused on every rank, naming it */
    tg_function *fb = tg_function_new(branching_step, NULL);
    tg_tensor *ob[TG_FUNCTION_MAX_OUTPUTS];
    CHECK(tg_function_call(fb, (tg_tensor *[]){x}, 1, ob) < 0);
    CHECK(strstr(tg_last_error(), "inside tg_cond or tg_while_loop is not supported") != NULL);
    tg_function_free(fb);
    tg_function_free(fe);
    tg_function_free(ft);
    tg_optimizer_free(le.opt);
    tg_optimizer_free(lt.opt);
    tg_model_free(le.m);
    tg_model_free(lt.m);
    tg_scope_end(s);
}

static void test_fit_float32(void) { fit_matches_one_process(TG_F32, false, 1e-5); }
static void test_fit_float64(void) { fit_matches_one_process(TG_F64, true, 1e-12); }

/* A custom loop: each rank takes its shard of every batch and tg_gradients(...,
 * .allreduce = true, .samples = rows) averages the gradients over the ranks; it trains
 * what one process trains on the whole batches (float64, within 1e-12). A rank whose
 * shard is empty joins with zeros and no samples. */
static void test_custom_loop(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F64, N, true, &x, &y);
    tg_model *one = mlp(TG_F64, 31, 1), *mine = mlp(TG_F64, 31 + (uint64_t)rank, 1);
    tg_model_build(one, TG_SHAPE(FEATURES));
    tg_model_build(mine, TG_SHAPE(FEATURES));
    tg_optimizer *o1 = tg_sgd(.learning_rate = 0.05, .momentum = 0.5),
                 *o2 = tg_sgd(.learning_rate = 0.05, .momentum = 0.5);
    int n = 0;
    tg_tensor *const *v1 = tg_model_trainable_variables(one, &n), *const *v2 = tg_model_trainable_variables(mine, &n);
    CHECK(tg_broadcast_variables(v2, n, 0) == 0);
    for (int epoch = 0; epoch < 2; epoch++)
        for (int64_t from = 0; from < N; from += BATCH) {
            tg_scope *step = tg_scope_begin();
            int64_t count = from + BATCH < N ? BATCH : N - from;
            int64_t lo = from + count * rank / size, hi = from + count * (rank + 1) / size;
            tg_tensor *g1[4], *g2[4];
            /* one process: the whole batch */
            tg_tape *t = tg_tape_begin();
            tg_tensor *xb = tg_slice(x, TG_SHAPE(from, 0), TG_SHAPE(count, -1));
            tg_tensor *yb = tg_slice(y, TG_SHAPE(from, 0), TG_SHAPE(count, -1));
            tg_tensor *loss = tg_mean(tg_square(tg_sub(tg_model_call(one, xb, .training = true), yb)));
            tg_tape_end(t);
            CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = v1, .n_sources = n, .out = g1) == 0);
            tg_tape_free(t);
            CHECK(tg_apply_gradients(o1, g1, v1, n) == 0);
            /* this rank: its shard */
            if (hi > lo) {
                t = tg_tape_begin();
                xb = tg_slice(x, TG_SHAPE(lo, 0), TG_SHAPE(hi - lo, -1));
                yb = tg_slice(y, TG_SHAPE(lo, 0), TG_SHAPE(hi - lo, -1));
                loss = tg_mean(tg_square(tg_sub(tg_model_call(mine, xb, .training = true), yb)));
                tg_tape_end(t);
                CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = v2, .n_sources = n, .out = g2,
                                   .allreduce = true, .samples = (double)(hi - lo)) == 0);
                tg_tape_free(t);
            } else {
                for (int i = 0; i < n; i++)
                    g2[i] = tg_zeros_like(v2[i]);
                CHECK(tg_allreduce_gradients(g2, n, .samples = 0) == 0);
            }
            CHECK(tg_apply_gradients(o2, g2, v2, n) == 0);
            tg_scope_end(step);
        }
    double w1[512], w2[512];
    int n1 = weights(one, w1, 512), n2 = weights(mine, w2, 512);
    CHECK(n1 > 0 && n1 == n2);
    CHECK(max_rel_diff(w2, w1, n1) <= 1e-12);
    CHECK(same_on_every_rank(w2, n2));
    print_digest("custom-loop", w2, n2);
    tg_optimizer_free(o1);
    tg_optimizer_free(o2);
    tg_model_free(one);
    tg_model_free(mine);
    tg_scope_end(s);
}

/* The buckets of tg_gradients(.allreduce): TAPEGRAD_BUCKET_MB (run.sh runs this program
 * with several) decides how many, and all but the last start during the backward pass;
 * TAPEGRAD_BUCKET_MB=0 gives the blocking allreduce. Weights cut into buckets from the
 * last: b2 (3 values), W2 (48), b1 (16), W1 (80). */
static void test_buckets(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F32, 12, false, &x, &y);
    tg_model *m = mlp(TG_F32, 3, CLASSES);
    tg_model_build(m, TG_SHAPE(FEATURES));
    CHECK(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true) ==
          0);
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    CHECK(n == 4);
    const char *env = getenv("TAPEGRAD_BUCKET_MB");
    double mb = env ? atof(env) : 25;
    int64_t bytes = (int64_t)(mb * 1024 * 1024);
    /* by hand: buckets close once they hold `bytes` */
    int want = 0;
    if (bytes == 0)
        want = 1; /* one blocking allreduce: float32 only */
    else {
        static const int64_t sizes[4] = {3 * 4, 48 * 4, 16 * 4, 80 * 4};
        int64_t open = 0;
        for (int i = 0; i < 4; i++) {
            open += sizes[i];
            if (open >= bytes || i == 3) {
                want++;
                open = 0;
            }
        }
    }
    tg_distributed_stats before = tg_distributed_get_stats();
    tg_tape *t = tg_tape_begin();
    tg_tensor *logits = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_model_compute_loss(m, y, logits, NULL);
    tg_tape_end(t);
    tg_tensor *g[4] = {0};
    CHECK(loss && tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = g,
                               .allreduce = true, .samples = 12) == 0);
    tg_tape_free(t);
    tg_distributed_stats after = tg_distributed_get_stats();
    CHECK(after.reductions == before.reductions + 1);
    CHECK(after.buckets - before.buckets == want);
    CHECK(after.buckets_in_pass - before.buckets_in_pass == (bytes == 0 ? 0 : want - 1));
    CHECK(after.wait_seconds >= before.wait_seconds);
    if (getenv("TG_TEST_VERBOSE") && rank == 0)
        printf("  TAPEGRAD_BUCKET_MB=%s: %lld buckets, %lld started in the pass\n", env ? env : "(default)",
               (long long)(after.buckets - before.buckets),
               (long long)(after.buckets_in_pass - before.buckets_in_pass));
    /* every rank has the same data: the average is each rank's own gradient */
    tg_tensor *own[4] = {0};
    t = tg_tape_begin();
    loss = tg_model_compute_loss(m, y, tg_model_call(m, x, .training = true), NULL);
    tg_tape_end(t);
    CHECK(loss && tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = own) == 0);
    tg_tape_free(t);
    for (int i = 0; i < 4; i++) {
        double a[80], o[80];
        CHECK(g[i] && own[i] && tg_size(g[i]) == tg_size(own[i]) && tg_size(g[i]) <= 80);
        if (!g[i] || !own[i] || tg_size(g[i]) > 80)
            continue;
        tg_copy_out_f64(g[i], a, tg_size(g[i]));
        tg_copy_out_f64(own[i], o, tg_size(own[i]));
        CHECK(max_rel_diff(a, o, (int)tg_size(g[i])) <= 1e-6);
    }
    tg_model_free(m);
    tg_scope_end(s);
}

/* The hand-over on a graph with a variable read three times in two places, one source
 * no path reaches (zeros with TG_UNCONNECTED_ZERO, NULL on every rank without) and a
 * watched tensor as a source: with the same data on every rank, the average is each
 * rank's own gradient (float64, within 1e-12), whatever the buckets. */
static tg_tensor *f64s(int64_t n, const double *v) { return tg_tensor_from(TG_F64, TG_SHAPE(n), v); }

static tg_tensor *graph_loss(tg_tensor *w, tg_tensor *z, tg_tensor *c)
{
    tg_tensor *first = tg_sum(tg_tanh(tg_mul(w, f64s(4, (double[]){0.5, -1.0, 2.0, 0.25}))));
    tg_tensor *middle = tg_sum(tg_mul(tg_mul(z, z), c));
    return tg_add(tg_add(first, middle), tg_sum(tg_mul(w, w)));
}

static void test_buckets_graph(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(f64s(4, (double[]){0.3, -0.2, 0.1, 0.7}), .name = "w");
    tg_tensor *u = tg_variable(tg_fill(TG_F64, TG_SHAPE(3), 1.0), .name = "u");
    tg_tensor *z = tg_variable(f64s(2, (double[]){1.5, -2.0}), .name = "z");
    for (int mode = 0; mode < 2; mode++) {
        tg_unconnected unconnected = mode ? TG_UNCONNECTED_ZERO : TG_UNCONNECTED_NONE;
        tg_tensor *g[4] = {0}, *own[4] = {0};
        for (int pass = 0; pass < 2; pass++) {
            tg_tensor *c = f64s(2, (double[]){3.0, 0.5});
            tg_tape *t = tg_tape_begin();
            tg_watch(t, c);
            tg_tensor *loss = graph_loss(w, z, c);
            tg_tape_end(t);
            CHECK(loss && tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = (tg_tensor *[]){w, u, z, c},
                                       .n_sources = 4, .out = pass ? own : g, .unconnected = unconnected,
                                       .allreduce = pass == 0) == 0);
            tg_tape_free(t);
        }
        for (int i = 0; i < 4; i++) {
            CHECK((g[i] == NULL) == (own[i] == NULL));
            CHECK((g[i] == NULL) == (i == 1 && !mode));
            if (!g[i] || !own[i])
                continue;
            double a[4], o[4];
            tg_copy_out_f64(g[i], a, tg_size(g[i]));
            tg_copy_out_f64(own[i], o, tg_size(own[i]));
            CHECK(max_rel_diff(a, o, (int)tg_size(g[i])) <= 1e-12);
        }
    }
    tg_variable_free(w);
    tg_variable_free(u);
    tg_variable_free(z);
    tg_scope_end(s);
}

/* A rank whose backward pass fails after some buckets started (a non-finite gradient
 * under TG_CHECK_NUMERICS, on the last rank only) completes the buckets as failed; every
 * rank returns -1, the others naming it, and nothing hangs. */
static void test_backward_fails_on_one_rank(void)
{
    tg_scope *s = tg_scope_begin();
    bool failing = rank == size - 1;
    tg_tensor *w1 = tg_variable(tg_fill(TG_F64, TG_SHAPE(3), 1.0), .name = "w1");
    tg_tensor *w2 = tg_variable(tg_fill(TG_F64, TG_SHAPE(3), 2.0), .name = "w2");
    tg_tensor *scale = tg_fill(TG_F64, TG_SHAPE(3), failing ? 0.0 : 1.0);
    if (failing)
        tg_set_check(TG_CHECK_NUMERICS);
    tg_tape *t = tg_tape_begin();
    /* sqrt first: its rule, the last to run, gives 1/0 on the failing rank after w2's
     * gradient was handed over */
    tg_tensor *first = tg_sum(tg_sqrt(tg_mul(w1, scale)));
    tg_tensor *loss = tg_add(first, tg_sum(tg_square(w2)));
    tg_tape_end(t);
    tg_tensor *g[2] = {0};
    tg_distributed_stats before = tg_distributed_get_stats();
    CHECK(loss && tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = (tg_tensor *[]){w1, w2}, .n_sources = 2,
                               .out = g, .allreduce = true) == -1);
    tg_distributed_stats after = tg_distributed_get_stats();
    tg_set_check(0);
    CHECK(g[0] == NULL && g[1] == NULL);
    if (!failing) {
        char want[96];
        snprintf(want, sizeof want, "rank %d of %d failed", size - 1, size);
        CHECK_ERROR(want);
    } else
        CHECK(tg_has_error());
    if (tg__dist_bucket_bytes() > 0 && tg__dist_bucket_bytes() < 24) /* w2 alone in the first bucket */
        CHECK(after.buckets_in_pass - before.buckets_in_pass == 1);
    tg_clear_error();
    tg_tape_free(t);
    /* every rank still agrees afterwards */
    tg_tensor *h[1] = {tg_fill(TG_F64, TG_SHAPE(1), rank)};
    CHECK(tg_allreduce_gradients(h, 1) == 0);
    CHECK_VALUES(h[0], 1e-15, (size - 1) / 2.0);
    tg_variable_free(w1);
    tg_variable_free(w2);
    tg_scope_end(s);
}

/* Under .distribute, evaluate, predict and fit's validation are sharded: each rank runs
 * its rows, and every rank gets the numbers (the rows, in order) of all of them, those
 * of one process (float32: within 1e-6, other batch boundaries). Under -np 3, 2 rows
 * leave rank 0 none. A rank whose evaluate is refused (a label out of range on it
 * alone) still joins: every rank fails, the others naming it. */
static void test_sharded_evaluation(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F32, N, false, &x, &y);
    tg_model *one = mlp(TG_F32, 21, CLASSES), *dist = mlp(TG_F32, 21, CLASSES);
    CHECK(tg_compile(one, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                     .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    CHECK(tg_compile(dist, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                     .metrics = TG_METRICS(TG_ACCURACY), .distribute = true) == 0);
    for (int64_t rows = N; rows >= 2; rows = rows == N ? 2 : 0) {
        tg_tensor *xs = tg_slice(x, TG_SHAPE(0, 0), TG_SHAPE(rows, -1)), *ys = tg_slice(y, TG_SHAPE(0), TG_SHAPE(rows));
        tg_logs l1 = {0}, ld = {0};
        CHECK(tg_evaluate(one, xs, ys, &l1, .batch_size = 16) == 0);
        CHECK(tg_evaluate(dist, xs, ys, &ld, .batch_size = 16) == 0);
        double v[2] = {tg_logs_get(&ld, "loss"), tg_logs_get(&ld, "accuracy")};
        CHECK_NEAR(v[0], tg_logs_get(&l1, "loss"), 1e-6);
        CHECK_NEAR(v[1], tg_logs_get(&l1, "accuracy"), 1e-12);
        CHECK(same_on_every_rank(v, 2));
        tg_tensor *p1 = tg_predict(one, xs, .batch_size = 16), *pd = tg_predict(dist, xs, .batch_size = 16);
        CHECK(p1 && pd && tg_size(pd) == rows * CLASSES && tg_size(p1) == tg_size(pd));
        double a[N * CLASSES], b[N * CLASSES];
        if (p1 && pd && tg_size(pd) == rows * CLASSES) {
            tg_copy_out_f64(p1, a, rows * CLASSES);
            tg_copy_out_f64(pd, b, rows * CLASSES);
            CHECK(max_rel_diff(b, a, (int)(rows * CLASSES)) <= 1e-6);
            CHECK(same_on_every_rank(b, (int)(rows * CLASSES)));
        }
    }
    /* fit's validation: the same numbers as one process, on every rank */
    tg_tensor *xv = tg_slice(x, TG_SHAPE(100, 0), TG_SHAPE(30, -1)), *yv = tg_slice(y, TG_SHAPE(100), TG_SHAPE(30));
    tg_history *h1 = tg_fit(one, x, y, .epochs = 1, .batch_size = BATCH, .seed = 4, .validation_x = xv,
                            .validation_y = yv, .verbose = TG_VERBOSE_SILENT);
    tg_history *hd = tg_fit(dist, x, y, .epochs = 1, .batch_size = BATCH, .seed = 4, .validation_x = xv,
                            .validation_y = yv, .verbose = TG_VERBOSE_SILENT);
    CHECK(h1 && hd);
    const char *keys[2] = {"val_loss", "val_accuracy"};
    for (int k = 0; h1 && hd && k < 2; k++) {
        const double *v1 = tg_history_get(h1, keys[k], NULL), *vd = tg_history_get(hd, keys[k], NULL);
        CHECK(v1 && vd);
        if (v1 && vd) {
            CHECK_NEAR(vd[0], v1[0], 1e-5);
            CHECK(same_on_every_rank(vd, 1));
        }
    }
    tg_history_free(h1);
    tg_history_free(hd);
    /* a rank refused alone */
    tg_tensor *ybad = rank == size - 1 ? tg_fill(TG_F64, TG_SHAPE(N), CLASSES + 5) : y;
    tg_logs lb = {0};
    CHECK(tg_evaluate(dist, x, ybad, &lb) == -1);
    if (rank != size - 1) {
        char want[96];
        snprintf(want, sizeof want, "tg_evaluate: rank %d of %d failed", size - 1, size);
        CHECK_ERROR(want);
    }
    tg_clear_error();
    tg_model_free(one);
    tg_model_free(dist);
    tg_scope_end(s);
}

/* A BatchNormalization model stays the same on every rank, moving statistics included:
 * each rank updates them from its own rows, and fit averages them after every step. */
static void test_batch_normalization_identical(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F32, N, false, &x, &y);
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 21 + (uint64_t)rank),
                                     tg_dense(.units = 8, .input_dim = FEATURES), tg_batch_normalization(),
                                     tg_dense(.units = CLASSES));
    CHECK(tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .from_logits = true, .distribute = true) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = EPOCHS, .batch_size = BATCH, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    int nv = 0, at = 0;
    tg_tensor *const *vars = tg_model_variables(m, &nv);
    double all[512];
    for (int i = 0; i < nv && at + tg_size(vars[i]) <= 512; i++) {
        tg_copy_out_f64(vars[i], all + at, tg_size(vars[i]));
        at += (int)tg_size(vars[i]);
    }
    CHECK(nv == 8 && at == 5 * 8 + 8 + 4 * 8 + 8 * 3 + 3);
    CHECK(same_on_every_rank(all, at));
    double mean[8];
    tg_tensor *moving = tg_model_non_trainable_variables(m, NULL)[0];
    CHECK(strstr(tg_variable_name(moving), "moving_mean") != NULL);
    tg_copy_out_f64(moving, mean, 8);
    CHECK(mean[0] != 0 && mean[7] != 0); /* it moved */
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Dropout: the weights stay the same on every rank, but each rank draws its own masks
 * (the same input in training gives other outputs on other ranks). */
static void test_dropout_per_rank(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F32, N, false, &x, &y);
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = 41),
                                     tg_dense(.units = 16, .activation = TG_RELU, .input_dim = FEATURES),
                                     tg_dropout(.rate = 0.5), tg_dense(.units = CLASSES));
    CHECK(tg_compile(m, .optimizer = tg_sgd(.learning_rate = 0.1), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                     .from_logits = true, .distribute = true) == 0);
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = BATCH, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    double w[512];
    int n = weights(m, w, 512);
    CHECK(n > 0 && same_on_every_rank(w, n));
    double out[8 * CLASSES];
    tg_tensor *first = tg_slice(x, TG_SHAPE(0, 0), TG_SHAPE(8, -1));
    CHECK(tg_copy_out_f64(tg_model_call(m, first, .training = true), out, 8 * CLASSES) == 0);
    CHECK(!same_on_every_rank(out, 8 * CLASSES));
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

/* Ranks started with different data sizes are refused, on every rank, before any step. */
static void test_mismatch_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    make_data(TG_F32, N + rank, false, &x, &y);
    tg_model *m = mlp(TG_F32, 3, CLASSES);
    CHECK(tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                     .distribute = true) == 0);
    tg_history *h = tg_fit(m, x, y, .batch_size = BATCH, .verbose = TG_VERBOSE_SILENT);
    CHECK(h == NULL);
    CHECK_ERROR("the ranks disagree on the number of training samples");
    tg_clear_error();
    /* one rank's own check fails: every rank stops, the others naming it */
    tg_tensor *y2 = rank == 1 ? tg_fill(TG_F32, TG_SHAPE(N + rank), 7) : y; /* class 7 of 3 */
    CHECK(tg_fit(m, x, y2, .batch_size = BATCH, .verbose = TG_VERBOSE_SILENT) == NULL);
    CHECK_ERROR(rank == 1 ? "out of range" : "rank 1 of");
    tg_clear_error();
    tg_model_free(m);
    tg_scope_end(s);
}

/* --abort: the last rank fails in its third step without joining the others, which wait
 * for it in a collective; the program, as the tapegrad command does, ends the job with
 * tg_distributed_abort naming the rank and the cause. --abort-after: the last rank fails
 * in its third step after the gradients' average and its update (as a NaN found in its
 * weights would), while the others go on to the next collective. run.sh checks that
 * either job ends soon, with that message. */
typedef struct fault {
    int steps;
    bool after_average;
} fault;

static int failing_step(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *w, tg_logs *logs,
                        void *user)
{
    fault *f = user;
    bool here = rank == size - 1 && ++f->steps == 3;
    if (here && !f->after_average)
        return tg__failf(TG_LOC, "a fault injected in step 3");
    int rc = tg_train_step_default(m, x, y, w, logs, NULL);
    if (here && rc == 0)
        return tg__failf(TG_LOC, "a fault injected after the average of step 3");
    return rc;
}

static int abort_run(bool after_average)
{
    tg_scope_begin(); /* ended at exit */
    tg_tensor *x, *y;
    make_data(TG_F32, N, false, &x, &y);
    tg_model *m = mlp(TG_F32, 3, CLASSES);
    tg_compile(m, .optimizer = tg_sgd(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
               .distribute = true);
    fault f = {.after_average = after_average};
    /* eagerly: the fault is C code, which a traced step runs only while tracing */
    tg_history *h = tg_fit(m, x, y, .epochs = 5, .batch_size = 16, .verbose = TG_VERBOSE_SILENT,
                           .train_step = failing_step, .user = &f, .run_eagerly = true);
    if (!h) {
        char why[1200];
        snprintf(why, sizeof why, "failed: %s; ending every rank", tg_last_error());
        tg_distributed_abort(3, why);
    }
    return 0; /* the ranks that did not fail never get here: the abort ends them */
}

/* A checkpoint taken mid-epoch by one rank count resumes under another: --save-mid PATH
 * (run.sh: 2 ranks) stops a float64 Adam fit after its second step, rank 0 saving the
 * model, the optimizer state and the position; --resume-mid PATH (3 ranks) loads it into
 * models that started elsewhere, resumes at the stored position, and must end with the
 * weights of one process's uninterrupted fit, within 1e-12, on every rank. */
static tg_model *resumable(uint64_t seed, bool distribute)
{
    tg_model *m = mlp(TG_F64, seed, 1);
    tg_compile(m, .optimizer = tg_adam(.learning_rate = 0.01), .loss = TG_LOSS_MSE, .distribute = distribute);
    return m;
}

static int save_at_step_2(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)logs;
    if (batch != 1)
        return 0;
    if (rank == 0 && tg_model_save(m, cb->user, NULL) != 0)
        return -1;
    return 1; /* stop: the run is interrupted here */
}

static int mid_epoch(const char *mode, const char *path)
{
    tg_scope_begin(); /* ended at exit */
    tg_tensor *x, *y;
    make_data(TG_F64, N, true, &x, &y);
    if (strcmp(mode, "--save-mid") == 0) {
        tg_model *m = resumable(11 + (uint64_t)rank, true);
        tg_callback save = {.on_batch_end = save_at_step_2, .user = (void *)path};
        tg_history *h = tg_fit(m, x, y, .epochs = 2, .batch_size = BATCH, .seed = 5, .verbose = TG_VERBOSE_SILENT,
                               .callbacks = (tg_callback *[]){&save}, .n_callbacks = 1);
        printf("rank %d: %s\n", rank, h ? "saved" : tg_last_error());
        return h ? 0 : 1;
    }
    tg_model *one = resumable(11, false), *m = resumable(99 + (uint64_t)rank, true);
    tg_model_fit_position pos;
    int rc = tg_model_load(m, path) == 0 && tg_model_get_fit_position(m, &pos) == 1 ? 0 : 1;
    rc |= pos.epoch != 0 || pos.step != 2 || pos.seed != 5;
    tg_history *h1 = tg_fit(one, x, y, .epochs = 2, .batch_size = BATCH, .seed = 5, .verbose = TG_VERBOSE_SILENT);
    tg_history *h = rc ? NULL
                       : tg_fit(m, x, y, .epochs = 2, .batch_size = BATCH, .seed = pos.seed, .initial_epoch = pos.epoch,
                                .initial_step = pos.step, .verbose = TG_VERBOSE_SILENT);
    double w1[512], w[512];
    int n1 = weights(one, w1, 512), n = weights(m, w, 512);
    double worst = n1 == n ? max_rel_diff(w, w1, n) : INFINITY;
    bool same = h && same_on_every_rank(w, n);
    printf("rank %d: resumed at epoch %d step %lld under %d ranks: weights differ from one process's by %g, %s on "
           "every rank: %s\n",
           rank, pos.epoch + 1, (long long)pos.step, size, worst, same ? "the same" : "NOT the same",
           h1 && h && worst <= 1e-12 && same ? "ok" : "FAILED");
    return h1 && h && worst <= 1e-12 && same ? 0 : 1;
}

int main(int argc, char **argv)
{
    tg_set_num_threads(1); /* several ranks share the machine's cores */
    if (tg_distributed_init() != 0) {
        printf("tg_distributed_init failed: %s\n", tg_last_error());
        return 1;
    }
    rank = tg_distributed_rank();
    size = tg_distributed_size();
    if (argc > 1 && (strcmp(argv[1], "--abort") == 0 || strcmp(argv[1], "--abort-after") == 0))
        return abort_run(strcmp(argv[1], "--abort-after") == 0);
    if (argc > 2 && (strcmp(argv[1], "--save-mid") == 0 || strcmp(argv[1], "--resume-mid") == 0))
        return mid_epoch(argv[1], argv[2]);
    printf("rank %d of %d on %s\n", rank, size, tg_distributed_host(rank));
    RUN(test_ranks);
    RUN(test_allreduce_weighted);
    RUN(test_allreduce_failed);
    RUN(test_broadcast);
    RUN(test_fit_float32);
    RUN(test_fit_float64);
    RUN(test_fit_accumulated);
    RUN(test_traced_float32);
    RUN(test_traced_partial_batch_norm);
    RUN(test_traced_accumulated);
    RUN(test_traced_accumulated_partial);
    RUN(test_custom_step_traced);
    RUN(test_custom_loop);
    RUN(test_buckets);
    RUN(test_buckets_graph);
    RUN(test_backward_fails_on_one_rank);
    RUN(test_sharded_evaluation);
    RUN(test_batch_normalization_identical);
    RUN(test_dropout_per_rank);
    RUN(test_mismatch_refused);
    printf("rank %d: ", rank);
    return TEST_SUMMARY();
}
