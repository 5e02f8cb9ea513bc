/* Threads using the library at once: each thread has its own error slot, scopes, tapes,
 * check modes and warning handler, so models trained on two threads at once give exactly
 * what each gives alone, and nothing that happens on one thread shows on another.
 * Threads that end give their memory back (make test-asan checks for leaks), and what
 * they leave (variables) stays usable from other threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "check.h"

/* ---- two fits at once ------------------------------------------------------------------------ */
enum { MAX_WEIGHTS = 16384 };

typedef struct fit_job {
    int kind;                 /* which model and data */
    pthread_barrier_t *start; /* NULL: run alone */
    double w[MAX_WEIGHTS];    /* the final weights */
    int64_t n;
    char error[256];
} fit_job;

static tg_tensor *rows_x(int rows, int cols, int salt)
{
    float *v = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int i = 0; i < rows * cols; i++)
        v[i] = (float)(((unsigned)(i + salt) * 2654435761u) % 1000) / 1000.0f - 0.5f;
    tg_tensor *t = tg_tensor_from(TG_F32, TG_SHAPE(rows, cols), v);
    free(v);
    return t;
}

static tg_tensor *labels(int rows, int classes)
{
    int32_t *v = malloc(sizeof(int32_t) * (size_t)rows);
    for (int i = 0; i < rows; i++)
        v[i] = (i * 7) % classes;
    tg_tensor *t = tg_tensor_from(TG_I32, TG_SHAPE(rows), v);
    free(v);
    return t;
}

/* Kind 0: a wide MLP with Adam (its activations are big enough for the loop threads);
 * kind 1: a deeper one with dropout and SGD with momentum. */
static void *fit_thread(void *arg)
{
    fit_job *j = arg;
    tg_scope *s = tg_scope_begin();
    tg_model *m = j->kind == 0 ? tg_sequential_with(tg_sequential_options(.seed = 1),
                                                    tg_dense(.units = 1024, .activation = TG_RELU, .input_dim = 6),
                                                    tg_dense(.units = 4))
                               : tg_sequential_with(tg_sequential_options(.seed = 2),
                                                    tg_dense(.units = 32, .activation = TG_TANH, .input_dim = 10),
                                                    tg_dropout(.rate = 0.25),
                                                    tg_dense(.units = 16, .activation = TG_RELU), tg_dense(.units = 3));
    tg_optimizer *opt = j->kind == 0 ? tg_adam(.learning_rate = 0.01) : tg_sgd(.learning_rate = 0.05, .momentum = 0.9);
    tg_compile(m, .optimizer = opt, .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true);
    tg_tensor *x = j->kind == 0 ? rows_x(256, 6, 3) : rows_x(90, 10, 5);
    tg_tensor *y = j->kind == 0 ? labels(256, 4) : labels(90, 3);
    if (j->start)
        pthread_barrier_wait(j->start);
    tg_history *h = tg_fit(m, x, y, .epochs = j->kind == 0 ? 2 : 6, .batch_size = j->kind == 0 ? 128 : 16, .seed = 9,
                           .verbose = TG_VERBOSE_SILENT);
    j->n = 0;
    int nv = 0;
    tg_tensor *const *vars = h ? tg_model_variables(m, &nv) : NULL;
    for (int i = 0; i < nv; i++) {
        int64_t n = tg_size(vars[i]);
        if (j->n + n > MAX_WEIGHTS || tg_copy_out_f64(vars[i], j->w + j->n, n) != 0)
            break;
        j->n += n;
    }
    snprintf(j->error, sizeof j->error, "%s", h ? "" : tg_last_error() ? tg_last_error() : "no message");
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
    return NULL;
}

static void run(fit_job *jobs, int n, bool together)
{
    pthread_t th[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        jobs[i].start = together ? &start : NULL;
        pthread_create(&th[i], NULL, fit_thread, &jobs[i]);
        if (!together)
            pthread_join(th[i], NULL);
    }
    for (int i = 0; together && i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
}

static void two_models_trained_at_once_match_each_trained_alone(void)
{
    static fit_job alone[2], together[2];
    alone[0].kind = together[0].kind = 0;
    alone[1].kind = together[1].kind = 1;
    run(alone, 2, false);
    for (int round = 0; round < 3; round++) {
        run(together, 2, true);
        for (int i = 0; i < 2; i++) {
            if (together[i].error[0])
                printf("  model %d: %s\n", i, together[i].error);
            CHECK(!alone[i].error[0] && !together[i].error[0]);
            CHECK(alone[i].n > 0 && alone[i].n == together[i].n);
            CHECK(memcmp(alone[i].w, together[i].w, sizeof(double) * (size_t)alone[i].n) == 0);
        }
    }
    CHECK(alone[0].n == 6 * 1024 + 1024 + 1024 * 4 + 4);
}

/* ---- errors, scopes, modes, warnings ------------------------------------------------------------ */
typedef struct probe {
    pthread_barrier_t *step;
    int rounds;
    int leaked; /* errors or warnings seen that this thread did not cause */
    int own;    /* errors this thread caused and saw */
} probe;

static _Thread_local int warnings_here;
static void count_warning(const char *msg, void *user)
{
    (void)msg;
    (void)user;
    warnings_here++;
}

/* Fails on purpose every round: a shape mismatch, a numerics error, an eager warning. */
static void *failing_thread(void *arg)
{
    probe *p = arg;
    tg_set_check(TG_CHECK_NUMERICS | TG_CHECK_EAGER);
    tg_set_warning_handler(count_warning, NULL);
    for (int r = 0; r < p->rounds; r++) {
        pthread_barrier_wait(p->step);
        tg_scope *s = tg_scope_begin();
        tg_tensor *a = tg_ones(TG_F32, TG_SHAPE(2, 3)), *b = tg_ones(TG_F32, TG_SHAPE(4));
        p->own += tg_add(a, b) == NULL && tg_last_error() && strstr(tg_last_error(), "cannot be broadcast");
        p->own += tg_log(tg_scalar(-1.0)) == NULL && strstr(tg_last_error(), "check_numerics");
        tg_tensor *w = tg_variable(tg_scalar(1.0), .name = "w");
        tg_tape *tape = tg_tape_begin();
        tg_tape_end(tape);
        tg_mul(w, w); /* a trainable variable read while no tape records, a tape alive: a warning */
        tg_tape_free(tape);
        tg_variable_free(w);
        tg_scope_end(s);
        pthread_barrier_wait(p->step);
    }
    return NULL;
}

/* Works cleanly every round and watches its own slots stay empty. */
static void *clean_thread(void *arg)
{
    probe *p = arg;
    tg_set_warning_handler(count_warning, NULL);
    for (int r = 0; r < p->rounds; r++) {
        pthread_barrier_wait(p->step);
        tg_scope *s = tg_scope_begin();
        for (int k = 0; k < 50; k++) {
            tg_scope *inner = tg_scope_begin();
            tg_tensor *x = tg_fill(TG_F32, TG_SHAPE(3, 3), 0.5);
            tg_tensor *y = tg_log(tg_sub(x, tg_scalar(0.5))); /* -Inf: not an error on this thread */
            p->leaked += !y || tg_has_error();
            tg_scope_end(inner);
        }
        p->leaked += tg_get_check() != 0 || tg_last_warning() != NULL || warnings_here != 0;
        tg_scope_end(s);
        pthread_barrier_wait(p->step);
    }
    return NULL;
}

static void errors_scopes_modes_and_warnings_stay_on_their_thread(void)
{
    pthread_barrier_t step;
    pthread_barrier_init(&step, NULL, 2);
    probe bad = {.step = &step, .rounds = 20}, good = {.step = &step, .rounds = 20};
    pthread_t a, b;
    pthread_create(&a, NULL, failing_thread, &bad);
    pthread_create(&b, NULL, clean_thread, &good);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&step);
    CHECK(bad.own == 40); /* the failing thread saw its own errors */
    CHECK(good.leaked == 0);
    CHECK(!tg_has_error() && tg_get_check() == 0); /* nor did the main thread see any */
}

/* A scope belongs to the thread that began it: another thread cannot end it. */
typedef struct scope_arg {
    tg_scope *scope;
    int rc;
    char error[256];
} scope_arg;

static void *end_foreign_scope(void *arg)
{
    scope_arg *a = arg;
    a->rc = tg_scope_end(a->scope);
    snprintf(a->error, sizeof a->error, "%s", tg_last_error() ? tg_last_error() : "");
    return NULL;
}

static void a_scope_cannot_be_ended_from_another_thread(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(2));
    scope_arg a = {.scope = s};
    pthread_t th;
    pthread_create(&th, NULL, end_foreign_scope, &a);
    pthread_join(th, NULL);
    CHECK(a.rc == -1 && strstr(a.error, "no scope is open"));
    CHECK(tg_is_alive(x) && !tg_has_error());
    CHECK(tg_scope_end(s) == 0 && !tg_is_alive(x));
}

/* A warning TF gives once per process stays once when two threads race for it. */
static atomic_int persistent_warnings;
static void count_persistent(const char *msg, void *user)
{
    (void)user;
    if (strstr(msg, "persistent tape inside its context"))
        atomic_fetch_add(&persistent_warnings, 1);
}

static void *gradient_inside_persistent_tape(void *arg)
{
    pthread_barrier_t *start = arg;
    tg_set_warning_handler(count_persistent, NULL);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_scalar(3.0);
    pthread_barrier_wait(start);
    for (int i = 0; i < 20; i++) {
        tg_tape *tape = tg_tape_begin(.persistent = true);
        tg_watch(tape, x);
        tg_tensor *y = tg_mul(x, x);
        tg_gradient(tape, y, x); /* inside the block: TF's warning */
        tg_tape_free(tape);
    }
    tg_scope_end(s);
    return NULL;
}

static void a_once_per_process_warning_is_given_once(void)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    pthread_t a, b;
    pthread_create(&a, NULL, gradient_inside_persistent_tape, &start);
    pthread_create(&b, NULL, gradient_inside_persistent_tape, &start);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&start);
    CHECK(atomic_load(&persistent_warnings) == 1);
}

/* ---- threads that end -------------------------------------------------------------------------- */
typedef struct var_arg {
    tg_tensor *var;
    double sum;
} var_arg;

static void *make_variable(void *arg)
{
    var_arg *a = arg;
    tg_scope *s = tg_scope_begin();
    a->var = tg_variable(tg_from_f64(TG_SHAPE(3), 1.0, 2.0, 3.0), .name = "kept");
    tg_scope_end(s);
    return NULL;
}

static void *use_and_free_variable(void *arg)
{
    var_arg *a = arg;
    tg_scope *s = tg_scope_begin();
    a->sum = tg_item(tg_sum(a->var));
    tg_variable_free(a->var);
    tg_scope_end(s);
    return NULL;
}

/* Four hundred short threads (a thread pool's churn): each gives its caches back when it
 * ends; a variable made by one that ended is used and freed by the next. */
static void threads_that_end_give_their_memory_back(void)
{
    for (int i = 0; i < 200; i++) {
        var_arg a = {0};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, make_variable, &a);
        pthread_join(t1, NULL);
        pthread_create(&t2, NULL, use_and_free_variable, &a);
        pthread_join(t2, NULL);
        CHECK(a.sum == 6.0);
        if (check_failures_in_test)
            break;
    }
    tg_scope *s = tg_scope_begin();
    CHECK(tg_item(tg_sum(tg_ones(TG_F32, TG_SHAPE(4)))) == 4.0);
    tg_scope_end(s);
}

int main(void)
{
    RUN(two_models_trained_at_once_match_each_trained_alone);
    RUN(errors_scopes_modes_and_warnings_stay_on_their_thread);
    RUN(a_scope_cannot_be_ended_from_another_thread);
    RUN(a_once_per_process_warning_is_given_once);
    RUN(threads_that_end_give_their_memory_back);
    return TEST_SUMMARY();
}
