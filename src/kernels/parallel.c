/* The loop pool: workers that sleep on a condition variable, and chunks taken from an
 * atomic counter by whoever is free (the calling thread first). After a loop a worker may
 * stay awake a short while (tg__pool_set_spin) for the next one: a training step runs
 * several loops in a row, and waking a sleeping thread (a virtual CPU, often) can take
 * longer than the loop.
 *
 * A loop is posted as a job on the caller's stack. A worker that wakes takes a reference
 * to the job under the mutex, runs chunks until none is left, and drops the reference.
 * When the caller has run out of chunks it withdraws the job (late workers then find
 * nothing to do) and waits for the references to drop, which takes at most one chunk's
 * time: the job can then leave the stack. */
#include "parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { MAX_THREADS = 64 };

typedef struct job {
    tg_range_fn fn;
    void *ctx;
    bool flush; /* flush denormals while running it */
    int64_t n, grain, chunks;
    atomic_int_fast64_t next; /* the next chunk to take */
    int slots;                /* workers that may still join (under the pool's mutex) */
    atomic_int refs;          /* workers holding the job */
} job;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_once_t once;
    int threads;         /* wanted, the caller included; 0 until first asked */
    int started;         /* workers running */
    job *current;        /* NULL when there is nothing to join */
    uint64_t generation; /* bumped by each posted job */
    atomic_bool busy;    /* a loop is running: nested or concurrent loops run serially */
    atomic_int spin_us;  /* how long a worker waits awake for the next loop */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .once = PTHREAD_ONCE_INIT};

/* ---- denormals ------------------------------------------------------------------------------ */
/* TF flushes denormal floats to zero (FTZ) and reads them as zero (DAZ) in its kernels and
 * pool threads: otherwise values that decay towards zero (Adam's moments where a gradient
 * stays zero) run through microcode at a tenth of the speed. Here every loop of the pool
 * runs so, on the workers and on the calling thread, which gets its own mode back after
 * the loop. Loops too small for the pool (under two chunks) run in the caller's mode. */
static atomic_int flush_mode = -1; /* -1: not read from TAPEGRAD_DENORMALS yet */

bool tg__flush_denormals(void)
{
    int m = atomic_load_explicit(&flush_mode, memory_order_relaxed);
    if (m < 0) {
        const char *v = getenv("TAPEGRAD_DENORMALS");
        m = !(v && strcmp(v, "keep") == 0);
        atomic_store(&flush_mode, m);
    }
    return m != 0;
}

void tg__set_flush_denormals(bool on) { atomic_store(&flush_mode, on); }

#if defined(__x86_64__) || defined(__i386__)
enum { FTZ_DAZ = 0x8040 }; /* MXCSR bits: flush to zero (15), denormals are zero (6) */

static unsigned flush_begin(bool flush)
{
    unsigned saved = _mm_getcsr();
    unsigned want = flush ? saved | FTZ_DAZ : saved & ~(unsigned)FTZ_DAZ;
    if (want != saved)
        _mm_setcsr(want);
    return saved;
}

static void flush_end(unsigned saved)
{
    if (_mm_getcsr() != saved)
        _mm_setcsr(saved);
}
#else
static unsigned flush_begin(bool flush) { return (void)flush, 0; }
static void flush_end(unsigned saved) { (void)saved; }
#endif

static void run_chunks(job *j)
{
    for (;;) {
        int64_t k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (k >= j->chunks)
            return;
        int64_t b = k * j->grain, e = b + j->grain < j->n ? b + j->grain : j->n;
        j->fn(j->ctx, b, e);
    }
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *worker(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        double spin = 1e-6 * atomic_load_explicit(&pool.spin_us, memory_order_relaxed);
        if (spin > 0 && pool.generation == seen) { /* the next loop often follows at once */
            pthread_mutex_unlock(&pool.mu);
            double t0 = now_seconds();
            while (__atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE) == seen && now_seconds() - t0 < spin)
                CPU_RELAX();
            pthread_mutex_lock(&pool.mu);
        }
        while (pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.mu);
        seen = pool.generation;
        job *j = pool.current;
        if (!j || j->slots == 0)
            continue; /* withdrawn before this worker woke, or enough workers joined */
        j->slots--;
        atomic_fetch_add_explicit(&j->refs, 1, memory_order_acquire);
        pthread_mutex_unlock(&pool.mu);
        flush_begin(j->flush); /* a worker keeps the mode of the last loop it ran */
        run_chunks(j);
        atomic_fetch_sub_explicit(&j->refs, 1, memory_order_release);
        pthread_mutex_lock(&pool.mu);
    }
    return NULL;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static void init_threads(void)
{
    pthread_mutex_lock(&pool.mu);
    if (!pool.threads)
        pool.threads = default_threads();
    pthread_mutex_unlock(&pool.mu);
}

int tg__pool_threads(void)
{
    pthread_once(&pool.once, init_threads);
    return pool.threads;
}

void tg__pool_set_threads(int n)
{
    pthread_once(&pool.once, init_threads);
    pthread_mutex_lock(&pool.mu);
    pool.threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    pthread_mutex_unlock(&pool.mu);
}

void tg__pool_set_spin(int microseconds) { atomic_store(&pool.spin_us, microseconds > 0 ? microseconds : 0); }

/* Starts workers up to threads - 1 (a pool never shrinks: extra workers just sleep, as
 * only threads - 1 of them are woken). Returns how many may take part. Under the mutex. */
static int ensure_workers(void)
{
    while (pool.started < pool.threads - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0)
            break; /* fewer threads: the loop still completes on the caller */
        pool.started++;
    }
    return pool.started < pool.threads - 1 ? pool.started : pool.threads - 1;
}

void tg__parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    bool expected = false;
    if (chunks < 2 || tg__pool_threads() < 2 || !atomic_compare_exchange_strong(&pool.busy, &expected, true)) {
        job j = {.fn = fn, .ctx = ctx, .n = n, .grain = grain, .chunks = chunks};
        unsigned caller_mode = chunks < 2 ? 0 : flush_begin(tg__flush_denormals());
        run_chunks(&j); /* the same chunks, in order, on this thread */
        if (chunks >= 2)
            flush_end(caller_mode);
        return;
    }
    job j = {.fn = fn, .ctx = ctx, .n = n, .grain = grain, .chunks = chunks, .flush = tg__flush_denormals()};
    unsigned caller_mode = flush_begin(j.flush);
    pthread_mutex_lock(&pool.mu);
    int workers = ensure_workers();
    if (workers > chunks - 1)
        workers = (int)(chunks - 1);
    if (workers > 0) {
        j.slots = workers;
        pool.current = &j;
        __atomic_store_n(&pool.generation, pool.generation + 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&pool.wake);
    }
    pthread_mutex_unlock(&pool.mu);
    run_chunks(&j);
    if (workers > 0) {
        pthread_mutex_lock(&pool.mu);
        pool.current = NULL;
        pthread_mutex_unlock(&pool.mu);
        while (atomic_load_explicit(&j.refs, memory_order_acquire) > 0)
            CPU_RELAX(); /* at most the chunk a worker is finishing */
    }
    flush_end(caller_mode);
    atomic_store(&pool.busy, false);
}
