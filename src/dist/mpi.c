/* MPI, loaded at run time: the ranks of a job and the collectives data-parallel training
 * runs on (allreduce, broadcast, allgather).
 *
 * Why dlopen, as gemm.c loads OpenBLAS: a program linked with libmpi loads it (and Open
 * MPI's run-time, its plugins, its hwloc) before main, whether or not it trains over
 * several processes, and cannot start where Open MPI is not installed. Loaded here, it
 * is opened only by a process that mpirun started with more than one rank, which the
 * environment says before anything is loaded; everyone else never maps it, and the build
 * needs no MPI headers.
 *
 * Open MPI's handles (MPI_COMM_WORLD, MPI_DOUBLE, MPI_SUM...) are the addresses of
 * global objects (`ompi_mpi_comm_world`, ...; mpi.h's OMPI_PREDEFINED_GLOBAL), so dlsym
 * gives them; MPI_Comm, MPI_Datatype, MPI_Op and MPI_Errhandler are pointers. The
 * constants below are Open MPI's (mpi.h, Open MPI 4.1). */
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist_impl.h"

#define MPI_LIBRARY  "libmpi.so.40"
#define INSTALL_HINT "install Open MPI (Debian, Ubuntu: apt-get install openmpi-bin libopenmpi-dev)"

typedef void *mpi_handle;
enum { DEFAULT_BUCKET_MB = 25 }; /* PyTorch DDP's bucket_cap_mb */
enum { MPI_OK = 0, THREAD_FUNNELED = 1, PROCESSOR_NAME_MAX = 256, ERROR_STRING_MAX = 256 };
#define IN_PLACE ((void *)1)

static struct {
    pthread_mutex_t mu;
    bool tried; /* init ran: status and error are its outcome */
    int status;
    char error[1024];
    int rank, size;
    void *lib;
    char (*hosts)[PROCESSOR_NAME_MAX];
    struct {
        int (*Initialized)(int *);
        int (*Init_thread)(int *, char ***, int, int *);
        int (*Finalized)(int *);
        int (*Finalize)(void);
        int (*Comm_rank)(mpi_handle, int *);
        int (*Comm_size)(mpi_handle, int *);
        int (*Comm_set_errhandler)(mpi_handle, mpi_handle);
        int (*Allreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle);
        int (*Iallreduce)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle, mpi_handle *);
        int (*Testall)(int, mpi_handle *, int *, void *);
        int (*Waitall)(int, mpi_handle *, void *);
        int (*Bcast)(void *, int, mpi_handle, int, mpi_handle);
        int (*Allgather)(const void *, int, mpi_handle, void *, int, mpi_handle, mpi_handle);
        int (*Abort)(mpi_handle, int);
        int (*Get_processor_name)(char *, int *);
        int (*Error_string)(int, char *, int *);
    } f;
    mpi_handle world, f32, f64, byte, sum, min, max, errors_return;
    void *buf[2]; /* the flat buffers of tg_allreduce_gradients: float, double */
    size_t buf_bytes[2];
    tg_distributed_stats stats;
    size_t bucket_bytes; /* TAPEGRAD_BUCKET_MB, read at init; 0: one blocking allreduce per dtype */
} mpi = {.mu = PTHREAD_MUTEX_INITIALIZER, .size = 1};

/* ---- the environment mpirun leaves ---------------------------------------------------------- */
/* The number of ranks the launcher announced: Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE;
 * other PMIx or PMI launchers (srun) set PMIX_RANK or PMI_RANK, and PMI_SIZE. 1 when
 * nothing says this process was launched as part of a job; 0 when launched but the size
 * is only known to MPI. */
static long launched_size(const char **by)
{
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *v = getenv(sizes[i]);
        char *end;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v && end != v && *end == '\0' && n >= 1) {
            *by = sizes[i];
            return n;
        }
    }
    static const char *const ranks[] = {"PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++)
        if (getenv(ranks[i])) {
            *by = ranks[i];
            return 0;
        }
    *by = NULL;
    return 1;
}

/* ---- loading ----------------------------------------------------------------------------------- */
static void mpi_reason(int rc, char *buf, size_t size)
{
    char s[ERROR_STRING_MAX + 1] = "";
    int len = 0;
    if (mpi.f.Error_string && mpi.f.Error_string(rc, s, &len) == MPI_OK && len > 0)
        snprintf(buf, size, "%.*s", len, s);
    else
        snprintf(buf, size, "MPI error %d", rc);
}

/* Every function and handle used, or false with the name missing. */
static bool resolve(const char **missing)
{
#define SYM(field, name)                                 \
    do {                                                 \
        *(void **)(&mpi.f.field) = dlsym(mpi.lib, name); \
        if (!mpi.f.field)                                \
            return *missing = name, false;               \
    } while (0)
#define HANDLE(var, name)                      \
    do {                                       \
        if (!(mpi.var = dlsym(mpi.lib, name))) \
            return *missing = name, false;     \
    } while (0)
    SYM(Initialized, "MPI_Initialized");
    SYM(Init_thread, "MPI_Init_thread");
    SYM(Finalized, "MPI_Finalized");
    SYM(Finalize, "MPI_Finalize");
    SYM(Comm_rank, "MPI_Comm_rank");
    SYM(Comm_size, "MPI_Comm_size");
    SYM(Comm_set_errhandler, "MPI_Comm_set_errhandler");
    SYM(Allreduce, "MPI_Allreduce");
    SYM(Iallreduce, "MPI_Iallreduce");
    SYM(Testall, "MPI_Testall");
    SYM(Waitall, "MPI_Waitall");
    SYM(Bcast, "MPI_Bcast");
    SYM(Allgather, "MPI_Allgather");
    SYM(Abort, "MPI_Abort");
    SYM(Get_processor_name, "MPI_Get_processor_name");
    SYM(Error_string, "MPI_Error_string");
    HANDLE(world, "ompi_mpi_comm_world");
    HANDLE(f32, "ompi_mpi_float");
    HANDLE(f64, "ompi_mpi_double");
    HANDLE(byte, "ompi_mpi_byte");
    HANDLE(sum, "ompi_mpi_op_sum");
    HANDLE(min, "ompi_mpi_op_min");
    HANDLE(max, "ompi_mpi_op_max");
    HANDLE(errors_return, "ompi_mpi_errors_return");
#undef SYM
#undef HANDLE
    return true;
}

static void finalize_at_exit(void)
{
    int done = 0;
    if (mpi.f.Finalized && mpi.f.Finalized(&done) == MPI_OK && !done)
        mpi.f.Finalize();
    free(mpi.buf[0]);
    free(mpi.buf[1]);
    free(mpi.hosts);
    mpi.buf[0] = mpi.buf[1] = NULL;
    mpi.hosts = NULL;
}

/* Loads and starts MPI; 0, or -1 with mpi.error set. */
static int start(const char *by, long announced)
{
    const char *name = getenv("TAPEGRAD_MPI_LIBRARY");
    if (!name || !*name)
        name = MPI_LIBRARY;
    /* RTLD_GLOBAL: Open MPI's plugins, which it dlopens in turn, look up its symbols. */
    if (!(mpi.lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL))) {
        const char *why = dlerror();
        char launched[64] = "";
        if (announced > 1)
            snprintf(launched, sizeof launched, "=%ld", announced);
        snprintf(
            mpi.error, sizeof mpi.error,
            "this process was started by mpirun (%s%s in the environment) but MPI cannot be loaded: %s: " INSTALL_HINT
            ", or name Open MPI 4's libmpi.so.40 in TAPEGRAD_MPI_LIBRARY",
            by, launched, why ? why : name);
        return -1;
    }
    const char *missing = NULL;
    if (!resolve(&missing)) {
        snprintf(mpi.error, sizeof mpi.error,
                 "%s has no symbol %s: tapegrad needs Open MPI 4 (libmpi.so.40); " INSTALL_HINT, name, missing);
        dlclose(mpi.lib);
        mpi.lib = NULL;
        memset(&mpi.f, 0, sizeof mpi.f);
        return -1;
    }
    int inited = 0, provided = 0, rc = mpi.f.Initialized(&inited);
    if (rc == MPI_OK && !inited) /* otherwise the application started MPI and finalizes it */
        rc = mpi.f.Init_thread(NULL, NULL, THREAD_FUNNELED, &provided);
    if (rc == MPI_OK && !inited)
        atexit(finalize_at_exit);
    char reason[ERROR_STRING_MAX + 32];
    if (rc == MPI_OK)
        rc = mpi.f.Comm_set_errhandler(mpi.world, mpi.errors_return); /* errors come back, never abort */
    if (rc == MPI_OK)
        rc = mpi.f.Comm_rank(mpi.world, &mpi.rank);
    if (rc == MPI_OK)
        rc = mpi.f.Comm_size(mpi.world, &mpi.size);
    if (rc == MPI_OK && !(mpi.hosts = calloc((size_t)mpi.size, sizeof *mpi.hosts))) {
        snprintf(mpi.error, sizeof mpi.error, "out of memory for the names of %d ranks", mpi.size);
        mpi.rank = 0;
        mpi.size = 1;
        return -1;
    }
    char host[PROCESSOR_NAME_MAX] = "";
    int len = 0;
    if (rc == MPI_OK && mpi.f.Get_processor_name(host, &len) != MPI_OK)
        snprintf(host, sizeof host, "?");
    if (rc == MPI_OK)
        rc = mpi.f.Allgather(host, PROCESSOR_NAME_MAX, mpi.byte, mpi.hosts, PROCESSOR_NAME_MAX, mpi.byte, mpi.world);
    if (rc != MPI_OK) {
        mpi_reason(rc, reason, sizeof reason);
        snprintf(mpi.error, sizeof mpi.error, "MPI failed to start: %s", reason);
        mpi.rank = 0;
        mpi.size = 1;
        return -1;
    }
    for (int r = 0; r < mpi.size; r++)
        mpi.hosts[r][PROCESSOR_NAME_MAX - 1] = '\0';
    return 0;
}

/* TAPEGRAD_BUCKET_MB (megabytes, as DDP's bucket_cap_mb; Horovod's
 * HOROVOD_FUSION_THRESHOLD): the size of the gradients' buckets; 0 turns the buckets off. */
static size_t bucket_bytes_from_env(void)
{
    const char *v = getenv("TAPEGRAD_BUCKET_MB");
    char *end;
    double mb = v && *v ? strtod(v, &end) : DEFAULT_BUCKET_MB;
    if (v && *v && (*end != '\0' || !(mb >= 0) || mb > 1e6))
        mb = DEFAULT_BUCKET_MB;
    return (size_t)(mb * 1024 * 1024);
}

size_t tg__dist_bucket_bytes(void) { return mpi.bucket_bytes; }

int tg_distributed_init_at(tg_loc loc)
{
    pthread_mutex_lock(&mpi.mu);
    if (!mpi.tried) {
        mpi.tried = true;
        const char *by;
        long announced = launched_size(&by);
        mpi.status = announced == 1 ? 0 : start(by, announced);
        mpi.bucket_bytes = bucket_bytes_from_env();
    }
    int status = mpi.status;
    pthread_mutex_unlock(&mpi.mu);
    if (status != 0)
        return tg__failf(loc, "tg_distributed_init: %s", mpi.error);
    return 0;
}

int tg_distributed_rank(void) { return mpi.rank; }
int tg_distributed_size(void) { return mpi.size; }

const char *tg_distributed_host(int rank) { return mpi.hosts && rank >= 0 && rank < mpi.size ? mpi.hosts[rank] : ""; }

bool tg__dist_active(void) { return mpi.size > 1; }

double tg__dist_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tg_distributed_abort(int code, const char *message)
{
    fprintf(stderr, "tapegrad: rank %d of %d: %s\n", mpi.rank, mpi.size, message ? message : "aborting");
    fflush(stderr);
    if (!tg__dist_active())
        return -1;
    mpi.f.Abort(mpi.world, code ? code : 1);
    return -1; /* MPI_Abort does not return */
}

/* ---- collectives --------------------------------------------------------------------------------- */
static int mpi_fail(tg_loc loc, const char *func, const char *what, int rc)
{
    char reason[ERROR_STRING_MAX + 32];
    mpi_reason(rc, reason, sizeof reason);
    return tg__failf(loc, "%s: rank %d of %d: %s failed: %s", func, mpi.rank, mpi.size, what, reason);
}

/* buf[0..n) of float32 or float64 values, combined in place. */
static int allreduce(tg_loc loc, const char *func, void *buf, tg_dtype dtype, int64_t n, tg_dist_op op)
{
    if (!tg__dist_active())
        return 0;
    mpi_handle h = op == TG_DIST_SUM ? mpi.sum : op == TG_DIST_MIN ? mpi.min : mpi.max;
    size_t size = tg_dtype_size(dtype);
    for (int64_t at = 0; at < n;) { /* MPI counts are ints */
        int count = n - at > INT_MAX / 2 ? INT_MAX / 2 : (int)(n - at);
        int rc = mpi.f.Allreduce(IN_PLACE, (unsigned char *)buf + (size_t)at * size, count,
                                 dtype == TG_F32 ? mpi.f32 : mpi.f64, h, mpi.world);
        if (rc != MPI_OK)
            return mpi_fail(loc, func, "MPI_Allreduce", rc);
        at += count;
    }
    return 0;
}

/* ---- non-blocking sums, for the buckets (buckets.c) ----------------------------------------- */
int tg__dist_iallreduce_sum(tg_loc loc, const char *func, void *buf, tg_dtype dtype, int count, void **request)
{
    int rc = mpi.f.Iallreduce(IN_PLACE, buf, count, dtype == TG_F32 ? mpi.f32 : mpi.f64, mpi.sum, mpi.world,
                              (mpi_handle *)request);
    return rc == MPI_OK ? 0 : mpi_fail(loc, func, "MPI_Iallreduce", rc);
}

/* MPI_STATUSES_IGNORE is a null pointer in Open MPI. */
int tg__dist_test(tg_loc loc, const char *func, void **requests, int n)
{
    int done = 0, rc = n > 0 ? mpi.f.Testall(n, (mpi_handle *)requests, &done, NULL) : MPI_OK;
    return rc == MPI_OK ? 0 : mpi_fail(loc, func, "MPI_Testall", rc);
}

int tg__dist_wait(tg_loc loc, const char *func, void **requests, int n)
{
    int rc = n > 0 ? mpi.f.Waitall(n, (mpi_handle *)requests, NULL) : MPI_OK;
    return rc == MPI_OK ? 0 : mpi_fail(loc, func, "MPI_Waitall", rc);
}

void tg__dist_count_wait(double seconds, int buckets, int in_pass)
{
    mpi.stats.buckets_in_pass += in_pass;
    mpi.stats.wait_seconds += seconds;
    mpi.stats.reductions++;
    mpi.stats.buckets += buckets;
}

tg_distributed_stats tg_distributed_get_stats(void) { return mpi.stats; }

int tg__dist_allreduce_f64(tg_loc loc, const char *func, double *buf, int64_t n, tg_dist_op op)
{
    return allreduce(loc, func, buf, TG_F64, n, op);
}

int tg__dist_bcast(tg_loc loc, const char *func, void *buf, size_t bytes, int root)
{
    if (!tg__dist_active())
        return 0;
    for (size_t at = 0; at < bytes;) {
        int count = bytes - at > (size_t)INT_MAX ? INT_MAX : (int)(bytes - at);
        int rc = mpi.f.Bcast((unsigned char *)buf + at, count, mpi.byte, root, mpi.world);
        if (rc != MPI_OK)
            return mpi_fail(loc, func, "MPI_Bcast", rc);
        at += (size_t)count;
    }
    return 0;
}

/* ---- gradients ------------------------------------------------------------------------------------ */
/* The flat buffer of one dtype (0 float32, 1 float64), grown as needed. */
void *tg__dist_flat(int which, size_t bytes)
{
    if (mpi.buf_bytes[which] < bytes) {
        void *p = realloc(mpi.buf[which], bytes);
        if (!p)
            return NULL;
        mpi.buf[which] = p;
        mpi.buf_bytes[which] = bytes;
    }
    return mpi.buf[which];
}

/* The list's shape, the same on every rank or an error on every rank: one MAX allreduce
 * of each value and its negation gives both the largest and the smallest. A rank that
 * failed says so here, before the gradients' reduction, whose size it may not know. */
int tg__dist_agree(tg_loc loc, const char *F, tg_tensor *const *grads, int n, int64_t elems, const tg_allreduce_opts *o)
{
    size_t k = 5 + 2 * (size_t)n;
    double *m = calloc(2 * k, sizeof *m);
    if (!m)
        return tg__failf(loc, "%s: out of memory", F);
    m[0] = o->failed ? mpi.rank : -1;
    m[1] = n;
    m[2] = (double)elems;
    m[3] = o->samples >= 0;
    m[4] = (double)mpi.bucket_bytes; /* the same buckets, or the ranks' calls would not match */
    for (int i = 0; i < n; i++) {
        m[5 + 2 * i] = grads && grads[i];
        m[6 + 2 * i] = grads && grads[i] ? (double)grads[i]->dtype : -1;
    }
    for (size_t i = 1; i < k; i++)
        m[k + i] = -m[i];
    m[k] = o->failed ? -mpi.rank : -(double)mpi.size; /* -(lowest failed rank) */
    int rc = tg__dist_allreduce_f64(loc, F, m, (int64_t)(2 * k), TG_DIST_MAX);
    if (rc == 0 && o->failed) /* this rank keeps its own error */
        rc = -1;
    else if (rc == 0 && m[0] >= 0) {
        int last = (int)m[0], first = (int)-m[k];
        rc = first == last ? tg__failf(loc,
                                       "%s: rank %d of %d failed before its gradients were ready (its own error "
                                       "says why); no rank updates",
                                       F, last, mpi.size)
                           : tg__failf(loc,
                                       "%s: ranks %d to %d of %d failed before their gradients were ready (their "
                                       "own errors say why); no rank updates",
                                       F, first, last, mpi.size);
    }
    static const char *const what[] = {"", "the number of gradients", "the number of gradient values",
                                       "whether .samples is given", "the bucket size (TAPEGRAD_BUCKET_MB)"};
    for (size_t i = 1; rc == 0 && i < k; i++) {
        if (m[i] == -m[k + i])
            continue;
        if (i < 5)
            rc = tg__failf(loc,
                           "%s: the ranks disagree on %s (from %.17g to %.17g): every rank passes the same "
                           "list%s",
                           F, what[i], -m[k + i], m[i], i == 3 ? ", with .samples on all ranks or none" : "");
        else
            rc = tg__failf(loc,
                           "%s: the ranks disagree on grads[%zu]: %s on some, %s on others: every rank passes the "
                           "same list (NULL at the same places, the same dtypes)",
                           F, (i - 5) / 2, (i - 5) % 2 ? "one dtype" : "NULL", (i - 5) % 2 ? "another" : "a tensor");
    }
    free(m);
    return rc;
}

/* The gradients of one dtype, times the rank's weight, summed over the ranks in one
 * buffer whose first value is the weight (so its sum is the divisor), then divided: each
 * grads[i] of that dtype becomes a new tensor with the average. The sums are in the
 * gradients' dtype, as Horovod's and NCCL's are. */
#define REDUCE_DTYPE(T, DTYPE, WHICH)                                                                   \
    static int reduce_##T(tg_loc loc, const char *F, tg_tensor **grads, int n, int64_t elems, double w, \
                          double *waited)                                                               \
    {                                                                                                   \
        T *b = tg__dist_flat(WHICH, sizeof(T) * (size_t)(elems + 1));                                   \
        if (!b)                                                                                         \
            return tg__failf(loc, "%s: out of memory for %lld gradient values", F, (long long)elems);   \
        b[0] = (T)w;                                                                                    \
        size_t at = 1;                                                                                  \
        for (int i = 0; i < n; i++) {                                                                   \
            const tg_tensor *g = grads[i];                                                              \
            if (!g || g->dtype != DTYPE)                                                                \
                continue;                                                                               \
            const T *v = g->data;                                                                       \
            for (int64_t j = 0; j < g->size; j++)                                                       \
                b[at + (size_t)j] = (T)w * v[j];                                                        \
            at += (size_t)g->size;                                                                      \
        }                                                                                               \
        double t0 = tg__dist_now();                                                                     \
        int rc = allreduce(loc, F, b, DTYPE, elems + 1, TG_DIST_SUM);                                   \
        *waited += tg__dist_now() - t0;                                                                 \
        if (rc != 0)                                                                                    \
            return -1;                                                                                  \
        T total = b[0]; /* no samples on any rank: zeros */                                             \
        at = 1;                                                                                         \
        for (int i = 0; i < n; i++) {                                                                   \
            const tg_tensor *g = grads[i];                                                              \
            if (!g || g->dtype != DTYPE)                                                                \
                continue;                                                                               \
            tg_shape s = tg__shape(g);                                                                  \
            tg_tensor *t = tg__tensor_new(loc, DTYPE, &s);                                              \
            if (!t)                                                                                     \
                return -1;                                                                              \
            T *out = t->data;                                                                           \
            for (int64_t j = 0; j < g->size; j++)                                                       \
                out[j] = total > 0 ? b[at + (size_t)j] / total : (T)0;                                  \
            at += (size_t)g->size;                                                                      \
            grads[i] = t;                                                                               \
        }                                                                                               \
        return 0;                                                                                       \
    }
REDUCE_DTYPE(float, TG_F32, 0)
REDUCE_DTYPE(double, TG_F64, 1)
#undef REDUCE_DTYPE

static int allreduce_gradients(tg_loc loc, tg_tensor **grads, int n, tg_allreduce_opts o)
{
    static const char F[] = "tg_allreduce_gradients";
    if (n < 0 || (n > 0 && !grads && !o.failed))
        return tg__failf(loc, "%s: give the gradients and their count (got %d%s)", F, n, grads ? "" : " and NULL");
    if (isnan(o.samples) || isinf(o.samples))
        return tg__failf(loc, "%s: .samples must be a count of samples (got %g)", F, o.samples);
    int64_t elems[2] = {0, 0}; /* float32, float64 */
    for (int i = 0; i < n && !o.failed; i++) {
        const tg_tensor *g = grads[i];
        if (!g)
            continue;
        if (!tg__check_input(loc, F, g, "gradient"))
            return -1;
        if (!tg_dtype_is_float(g->dtype))
            return tg__failf(loc, "%s: grads[%d] has dtype %s: gradients are float32 or float64", F, i,
                             tg_dtype_name(g->dtype));
        elems[g->dtype == TG_F64] += g->size;
    }
    if (!tg__dist_active())
        return o.failed ? tg__failf(loc, "%s: this rank failed before its gradients were ready", F) : 0;
    if (mpi.bucket_bytes > 0)
        return tg__reduce_all(loc, grads, n, o);
    double t0 = tg__dist_now();
    int rc = tg__dist_agree(loc, F, grads, n, elems[0] + elems[1], &o);
    double w = o.samples >= 0 ? o.samples : 1.0, waited = tg__dist_now() - t0;
    if (rc == 0 && elems[0] > 0)
        rc = reduce_float(loc, F, grads, n, elems[0], w, &waited);
    if (rc == 0 && elems[1] > 0)
        rc = reduce_double(loc, F, grads, n, elems[1], w, &waited);
    tg__dist_count_wait(waited, (elems[0] > 0) + (elems[1] > 0), 0);
    return rc;
}

/* In a traced function the average is a host node (graph/trace.c) of the gradients in and
 * the averages out, so every replay averages, with the same collectives as the eager call:
 * its replay averages the replayed gradients and copies the results into the graph's. */
typedef struct allreduce_arg {
    int n;
    tg_allreduce_opts o;
} allreduce_arg;

static int allreduce_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n_in)
{
    const allreduce_arg *a = arg;
    tg_tensor **grads = tg__arena_alloc(tg__ctx()->scope, sizeof *grads * (size_t)(a->n + 1));
    if (!grads)
        return tg__failf(loc, "tg_allreduce_gradients: out of memory");
    memcpy(grads, in, sizeof *grads * (size_t)a->n);
    if (allreduce_gradients(loc, grads, a->n, a->o) != 0)
        return -1;
    tg_tensor *const *into = in + a->n;
    for (int i = 0, k = 0; i < a->n; i++) {
        if (grads[i] == in[i])
            continue;
        if (k >= n_in - a->n || into[k]->size != grads[i]->size || into[k]->dtype != grads[i]->dtype)
            return tg__failf(loc, "tg_allreduce_gradients: the replayed gradients do not match the traced ones");
        memcpy(into[k++]->data, grads[i]->data, (size_t)grads[i]->size * tg__dsize(grads[i]->dtype));
    }
    return 0;
}

int tg_allreduce_gradients_at(tg_loc loc, tg_tensor **grads, int n, tg_allreduce_opts o)
{
    if (!tg__ctx()->trace || !tg__dist_active() || o.failed || n <= 0 || !grads)
        return allreduce_gradients(loc, grads, n, o);
    if (tg__trace_nested())
        return tg__failf(loc, "tg_allreduce_gradients: an allreduce inside tg_cond or tg_while_loop is not supported: "
                              "average the gradients outside the branch or the loop");
    tg_tensor **made = tg__arena_alloc(tg__ctx()->scope, sizeof *made * (size_t)(2 * n + 1));
    if (!made)
        return tg__failf(loc, "tg_allreduce_gradients: out of memory");
    memcpy(made, grads, sizeof *made * (size_t)n); /* made[0, n): the given gradients; then the averages */
    struct tg_fgraph *g = tg__trace_pause();
    int rc = allreduce_gradients(loc, grads, n, o);
    tg__trace_resume(g);
    int k = 0;
    for (int i = 0; rc == 0 && i < n; i++)
        if (grads[i] != made[i])
            made[n + k++] = grads[i];
    if (o.samples >= 0)
        tg__trace_keeps_batch("tg_allreduce_gradients' samples");
    allreduce_arg a = {.n = n, .o = o};
    if (rc == 0 && tg__trace_host_outputs(loc, allreduce_replayed, &a, sizeof a, made, n, made + n, k) != 0)
        rc = -1;
    return rc;
}

/* ---- variables ------------------------------------------------------------------------------------ */
int tg_broadcast_variables_at(tg_loc loc, tg_tensor *const *vars, int n, int root)
{
    static const char F[] = "tg_broadcast_variables";
    if (n < 0 || (n > 0 && !vars))
        return tg__failf(loc, "%s: give the variables and their count (got %d%s)", F, n, vars ? "" : " and NULL");
    if (root < 0 || root >= mpi.size)
        return tg__failf(loc, "%s: root %d is not a rank: there %s %d (0 to %d)", F, root, mpi.size == 1 ? "is" : "are",
                         mpi.size, mpi.size - 1);
    double sig[3] = {n, 0, 0};
    for (int i = 0; i < n; i++) {
        if (!tg_is_variable(vars[i]))
            return tg__failf(loc, "%s: vars[%d] is %s", F, i, vars[i] ? "not a variable" : "NULL");
        sig[1] += (double)vars[i]->size;
        sig[2] += (double)vars[i]->dtype * (i + 1);
    }
    if (!tg__dist_active())
        return 0;
    double check[6] = {sig[0], sig[1], sig[2], -sig[0], -sig[1], -sig[2]};
    if (tg__dist_allreduce_f64(loc, F, check, 6, TG_DIST_MAX) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        if (check[i] != -check[3 + i])
            return tg__failf(loc,
                             "%s: the ranks pass different variables (%s differ): every rank passes the same "
                             "list, same dtypes and shapes",
                             F,
                             i == 0   ? "their counts"
                             : i == 1 ? "their sizes"
                                      : "their dtypes");
    for (int i = 0; i < n; i++) {
        tg_tensor *v = vars[i];
        void *data = mpi.rank == root ? v->data : tg__variable_begin_write(loc, v);
        if (tg__dist_bcast(loc, F, data, (size_t)v->size * tg_dtype_size(v->dtype), root) != 0)
            return -1;
    }
    return 0;
}
