/* GEMM: OpenBLAS, loaded at run time, or else a portable cache-blocked kernel. Each
 * kernel is written once as a macro and instantiated for float and double.
 *
 * Why OpenBLAS is loaded with dlopen instead of linked: OpenBLAS picks its kernel set
 * when it is loaded, from the CPU it recognises. Debian's OpenBLAS 0.3.21 does not
 * recognise recent AMD CPUs and falls back to its AVX2 kernels, at half the speed of its
 * AVX-512 ones; the choice can only be changed by OPENBLAS_CORETYPE, read during that
 * load. A linked OpenBLAS is loaded before main, too early for the library to choose.
 * Loading it at the first GEMM lets tapegrad choose SkylakeX on AVX-512 CPUs when the
 * user has not chosen, and lets one binary run (on the blocked kernel) where OpenBLAS is
 * not installed. The build needs no OpenBLAS headers: the CBLAS prototypes are below. */
#include "gemm.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TG_OPENBLAS_RUNTIME
#include <dlfcn.h>
#endif

#include "parallel.h"
#include "tapegrad/base.h"

/* Block sizes: an MC x KC block of op(A) and a KC x NC panel of op(B) stay in cache
 * while the C block is updated. */
enum { MC = 64, KC = 256, NC = 512 };

/* Per-thread packing buffers for transposed operands, kept for the thread's life so a
 * product allocates nothing once warm. */
static _Thread_local void *pack_buf[2];
static _Thread_local size_t pack_cap[2];

static void *pack_space(int which, size_t bytes)
{
    if (pack_cap[which] < bytes) {
        void *p = realloc(pack_buf[which], bytes);
        if (!p)
            return NULL;
        pack_buf[which] = p;
        pack_cap[which] = bytes;
    }
    return pack_buf[which];
}

/* One band of MC rows of C for a fixed (j0, k0): the parallel unit of the blocked kernel. */
typedef struct band_job {
    bool ta;
    int64_t M, nc, kc, k0, j0;
    double alpha;
    const void *A, *b;
    int64_t lda, bs;
    void *C;
    int64_t ldc;
    atomic_bool failed; /* a thread found no memory to pack its block of A */
} band_job;

/* ---- OpenBLAS at run time ------------------------------------------------------------------------- */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                         int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *, int, const double *, int, double,
                         double *, int);

static struct {
    pthread_once_t once;
    sgemm_fn sgemm;
    dgemm_fn dgemm;
    void (*set_threads)(int);
    bool split; /* OpenBLAS on one thread, products split over the loop pool */
    char name[96];
    pthread_mutex_t mu;
    int threads; /* asked for by tg_set_num_threads; 0: the default */
} blas = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER, .name = "blocked"};

#ifdef TG_OPENBLAS_RUNTIME
/* SkylakeX's kernels need AVX-512 F, DQ, BW and VL, with the OS saving the registers
 * (__builtin_cpu_supports checks that too). */
static bool cpu_has_avx512(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

/* Sets an environment variable for the load when the user has not set it; true if set. */
static bool set_for_load(const char *name, const char *value) { return !getenv(name) && setenv(name, value, 0) == 0; }

/* *ours: this call loaded it (not the application before us). */
static void *open_openblas(bool *chose, bool *ours)
{
    static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
    *chose = *ours = false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (h)
            return h; /* already in the process: its kernel set and threads are chosen */
    }
    /* setenv is not safe against getenv on other threads; this runs once, at the first
     * product, and gives the environment back as it was right after the load. One
     * OpenBLAS thread: products are split over the loop pool instead, so the process has
     * one pool of threads, not two competing for the cores. */
    *chose = cpu_has_avx512() && set_for_load("OPENBLAS_CORETYPE", "SkylakeX");
    bool one = set_for_load("OPENBLAS_NUM_THREADS", "1");
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (*chose)
        unsetenv("OPENBLAS_CORETYPE");
    if (one)
        unsetenv("OPENBLAS_NUM_THREADS");
    *ours = h != NULL;
    return h;
}
#endif

static void blas_load(void)
{
#ifdef TG_OPENBLAS_RUNTIME
    const char *want = getenv("TAPEGRAD_GEMM");
    if (want && !strcmp(want, "blocked"))
        return;
    bool chose, ours;
    void *h = open_openblas(&chose, &ours);
    if (!h)
        return;
    sgemm_fn s = (sgemm_fn)dlsym(h, "cblas_sgemm");
    dgemm_fn d = (dgemm_fn)dlsym(h, "cblas_dgemm");
    if (!s || !d)
        return;
    char *(*corename)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    blas.set_threads = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    snprintf(blas.name, sizeof blas.name, "openblas %s%s%s", corename ? corename() : "?",
             chose ? " (chosen by tapegrad)" : "", ours && blas.set_threads ? ", split over the loop pool" : "");
    pthread_mutex_lock(&blas.mu);
    blas.split = ours && blas.set_threads;
    if (blas.set_threads && (blas.split || blas.threads))
        blas.set_threads(blas.split ? 1 : blas.threads);
    blas.sgemm = s;
    blas.dgemm = d;
    pthread_mutex_unlock(&blas.mu);
#endif
}

/* The pool's workers may wait awake between loops unless OpenBLAS runs threads of its own
 * (an OpenBLAS the application loaded): 200 us covers the gaps within a training step. */
static void gemm_load(void)
{
    blas_load();
    tg__pool_set_spin(blas.sgemm && !blas.split ? 0 : 200);
}

static void blas_ready(void) { pthread_once(&blas.once, gemm_load); }

/* cblas takes int sizes; larger problems (and empty ones) go to the portable kernel. */
static bool cblas_ok(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc)
{
    return M > 0 && N > 0 && K > 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
           ldb <= INT_MAX && ldc <= INT_MAX;
}
#define TRANS(t) ((t) ? CBLAS_TRANS : CBLAS_NO_TRANS)

/* A product split over the loop pool: one block of rows of C per thread (or of columns,
 * when C is wider than tall), one OpenBLAS call each. Each call packs its own block of
 * op(A) and all of op(B); splitting the longer side measured 3-6% faster than splitting
 * columns on the training step's square-ish products. Products under a million
 * multiply-adds stay whole. The kernels are made once per float type (gemm_tmpl.h). */
#define T       float
#define SFX     f32
#define BLAS_FN sgemm
#include "gemm_tmpl.h"
#undef T
#undef SFX
#undef BLAS_FN
#define T       double
#define SFX     f64
#define BLAS_FN dgemm
#include "gemm_tmpl.h"
#undef T
#undef SFX
#undef BLAS_FN

const char *tg__gemm_backend(void)
{
    blas_ready();
    return blas.name;
}

void tg_set_flush_denormals(bool on) { tg__set_flush_denormals(on); }
bool tg_flush_denormals(void) { return tg__flush_denormals(); }

int tg_set_num_threads(int n)
{
    if (n < 1)
        return -1;
    tg__pool_set_threads(n);
    pthread_mutex_lock(&blas.mu);
    blas.threads = n;
    if (blas.set_threads && !blas.split) /* an OpenBLAS the application loaded runs its own threads */
        blas.set_threads(n);
    pthread_mutex_unlock(&blas.mu);
    return 0;
}
