/* Faults: allocations that fail, writes that fail or come up short, a full disk, and a
 * training process killed with SIGKILL. The promises: every failure is an error message,
 * never a crash or a leak (make test-asan runs this under LeakSanitizer); a failed or
 * interrupted save leaves the previous checkpoint as it was; a fit killed at any point
 * and resumed from its last checkpoint ends with the weights of an uninterrupted fit.
 *
 * The faults are injected at the link: CMake links this test with --wrap for malloc,
 * calloc, realloc, aligned_alloc, strdup, write, fsync, rename and open, so every call the
 * library makes goes through the wrappers below (the library itself is unchanged). */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tensor/tensor_impl.h" /* tg__ctx: the thread's scopes and tapes after a failure */
#include "tmpfiles.h"

#ifndef TG_CLI
#error "CMake defines TG_CLI, the path of the tapegrad command"
#endif

/* ---- the wrappers ------------------------------------------------------------------------ */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
char *__real_strdup(const char *s);
ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_fsync(int fd);
int __real_rename(const char *from, const char *to);
int __real_open(const char *path, int flags, ...);

/* Allocation k from arming fails (per thread: helper threads of the library are spared). */
static _Thread_local long alloc_countdown, allocs_failed;
static bool alloc_fails(void)
{
    if (alloc_countdown <= 0 || --alloc_countdown > 0)
        return false;
    allocs_failed++;
    if (getenv("TG_FAULT_TRACE")) { /* where each injected failure lands, to debug one */
        void *frames[12];
        backtrace_symbols_fd(frames, backtrace(frames, 12), 2);
        fputs("----\n", stderr);
    }
    errno = ENOMEM;
    return true;
}
void *__wrap_malloc(size_t n) { return alloc_fails() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return alloc_fails() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return alloc_fails() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { return alloc_fails() ? NULL : __real_aligned_alloc(a, n); }
char *__wrap_strdup(const char *s) { return alloc_fails() ? NULL : __real_strdup(s); }

/* Write k from arming fails with write_errno (or kills the process); short_writes makes
 * every write take at most half of what it is given. */
static long write_countdown;
static int write_errno;
static bool kill_on_write, short_writes, fsync_fails, rename_fails;
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (write_countdown > 0 && --write_countdown == 0) {
        if (kill_on_write)
            raise(SIGKILL);
        errno = write_errno;
        return -1;
    }
    return __real_write(fd, buf, short_writes && n > 1 ? n / 2 : n);
}
int __wrap_fsync(int fd)
{
    if (fsync_fails)
        return errno = EIO, -1;
    return __real_fsync(fd);
}
int __wrap_rename(const char *from, const char *to)
{
    if (rename_fails)
        return errno = EXDEV, -1;
    return __real_rename(from, to);
}

/* Another process's save, right after the library opens `swap_path`: `swap_with` is
 * renamed over it, as an atomic save does. */
static const char *swap_path, *swap_with;
static int opens_of_swap_path;
int __wrap_open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = flags & O_CREAT ? va_arg(ap, mode_t) : 0;
    va_end(ap);
    int fd = __real_open(path, flags, mode);
    if (swap_path && strcmp(path, swap_path) == 0 && opens_of_swap_path++ == 0)
        __real_rename(swap_with, swap_path);
    return fd;
}

static long faults_injected, faults_survived;

/* ---- helpers --------------------------------------------------------------------------------- */
static tg_model *mlp(uint64_t seed)
{
    tg_model *m = tg_sequential_with(tg_sequential_options(.seed = seed),
                                     tg_dense(.units = 8, .activation = TG_RELU, .input_dim = 3), tg_dense(.units = 3));
    tg_optimizer *opt = tg_adam(.learning_rate = 0.01);
    if (!m ||
        tg_compile(m, .optimizer = opt, .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true) != 0) {
        tg_optimizer_free(opt); /* a failed compile leaves it ours */
        tg_model_free(m);
        return NULL;
    }
    return m;
}

static tg_tensor *data_x(int n)
{
    float v[64 * 3];
    for (int i = 0; i < n * 3; i++)
        v[i] = (float)((i * 37) % 11) / 11.0f + (i % 3 == (i / 3) % 3 ? 1.0f : 0.0f);
    return tg_tensor_from(TG_F32, TG_SHAPE(n, 3), v);
}

static tg_tensor *data_y(int n)
{
    int32_t v[64];
    for (int i = 0; i < n; i++)
        v[i] = i % 3;
    return tg_tensor_from(TG_I32, TG_SHAPE(n), v);
}

/* All the model's weights, as doubles, into w (room for `cap`); the count. */
static int64_t weights(tg_model *m, double *w, int64_t cap)
{
    int n = 0;
    int64_t k = 0;
    tg_tensor *const *v = tg_model_variables(m, &n);
    for (int i = 0; i < n; i++) {
        int64_t s = tg_size(v[i]);
        if (k + s > cap || tg_copy_out_f64(v[i], w + k, s) != 0)
            return -1;
        k += s;
    }
    return k;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f)
        return NULL;
    unsigned char *buf = malloc(1 << 20);
    *n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

static bool same_file(const char *path, const unsigned char *data, size_t n)
{
    size_t m = 0;
    unsigned char *now = slurp(path, &m);
    bool same = now && m == n && memcmp(now, data, n) == 0;
    free(now);
    return same;
}

/* Files in the temporary folder whose name contains `part`. */
static int count_files(const char *part)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, part) != NULL;
    if (d)
        closedir(d);
    return n;
}

static void remove_files(const char *part)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, part))
            remove(at(e->d_name));
    if (d)
        closedir(d);
}

/* After a failed call: a message, and the thread's scopes and tapes as they were. */
static bool failed_cleanly(tg_scope *s, const char *what, long k)
{
    const char *err = tg_last_error();
    bool ok = err && *err && tg__ctx()->scope == s && tg__ctx()->n_active == 0 && tg__ctx()->n_recording == 0;
    if (!ok)
        printf("  %s, allocation %ld: %s (scope %s, %d tapes active)\n", what, k, err ? err : "no error message",
               tg__ctx()->scope == s ? "ok" : "left open", tg__ctx()->n_active);
    return ok;
}

/* ---- allocation failures ------------------------------------------------------------------------ */
/* Each scenario runs in a thread of its own, so it starts with empty per-thread caches
 * and every allocation path is taken; allocation k (counted from where the scenario arms
 * the countdown) fails. A scenario returns 1 when the fault fired and every promise held,
 * 0 when it needed fewer than k allocations (the sweep is over), -1 when a promise broke. */
typedef int (*scenario_fn)(long k);

typedef struct sweep_arg {
    scenario_fn fn;
    long k;
    int result;
} sweep_arg;

static void *sweep_thread(void *p)
{
    sweep_arg *a = p;
    a->result = a->fn(a->k);
    return NULL;
}

/* Runs the scenario with k = 1, 2, ... until it no longer meets a failure; the count. */
static long sweep(const char *what, scenario_fn fn)
{
    long k = 1;
    for (;; k++) {
        sweep_arg a = {fn, k, -1};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, sweep_thread, &a) == 0);
        pthread_join(th, NULL);
        if (a.result == 0)
            break;
        faults_injected++;
        faults_survived += a.result == 1;
        if (a.result != 1)
            printf("  %s: allocation %ld broke a promise\n", what, k);
        CHECK(a.result == 1);
        if (a.result != 1)
            break;
    }
    printf("  %s: %ld allocations, each made to fail once\n", what, k - 1);
    return k - 1;
}

static void arm(long k)
{
    allocs_failed = 0;
    alloc_countdown = k;
}

/* Disarms; true when the fault fired. */
static bool disarm(void)
{
    alloc_countdown = 0;
    return allocs_failed > 0;
}

/* Making, compiling and fitting a model: building, the tape, gradients, the optimizer's
 * first step, metrics, history. After a failure the model (when there is one) still fits. */
static int fit_scenario(long k)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = data_x(12), *y = data_y(12);
    tg_scope *inner = tg_scope_begin();
    arm(k);
    tg_model *m = mlp(5);
    tg_history *h = m ? tg_fit(m, x, y, .epochs = 2, .batch_size = 4, .verbose = TG_VERBOSE_SILENT) : NULL;
    int rc = !disarm() ? 0 : !h && failed_cleanly(inner, "fit", k) ? 1 : -1;
    tg_history_free(h);
    if (rc == 1) {
        if (!m)
            m = mlp(5);
        h = tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT);
        if (!h)
            printf("  fit again after allocation %ld failed: %s\n", k, tg_last_error());
        rc = h ? 1 : -1;
        tg_history_free(h);
    }
    tg_model_free(m);
    if (tg_scope_end(inner) != 0 || tg_scope_end(s) != 0)
        rc = -1;
    return rc;
}

/* A persistent tape, a gradient and a jacobian. */
static int gradient_scenario(long k)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_from_f64(TG_SHAPE(3, 2), 1.0, 0.0, 0.5, 2.0, -1.0, 1.0);
    arm(k);
    tg_tensor *w = tg_variable(tg_from_f64(TG_SHAPE(2, 2), 1.0, 2.0, -1.0, 0.5), .name = "w");
    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *y = tg_tanh(tg_matmul(x, w));
    tg_tensor *loss = tg_sum(tg_square(y));
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, loss, w);
    bool explained = g || tg_has_error(); /* (a gradient call that succeeds clears the slot) */
    tg_tensor *j = tg_jacobian(tape, y, w);
    explained &= j || tg_has_error();
    tg_tape_free(tape);
    int rc = !disarm() ? (g && j && tg_rank(j) == 4 ? 0 : -1)
             : (!g || !j) && explained && tg__ctx()->scope == s && tg__ctx()->n_active == 0 ? 1
                                                                                            : -1;
    tg_variable_free(w);
    return tg_scope_end(s) == 0 ? rc : -1;
}

/* Saving over a checkpoint: an error, the old file as it was, no temporary file left. */
static int save_scenario(long k)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = mlp(5);
    const char *path = at("model.safetensors");
    size_t n = 0;
    unsigned char *before = slurp(path, &n);
    tg_history_free(tg_fit(m, data_x(12), data_y(12), .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    arm(k);
    int saved = tg_model_save(m, path, "{\"epoch\": \"2\"}");
    int rc = !disarm() ? (saved == 0 ? 0 : -1)
                       : saved == -1 && failed_cleanly(s, "save", k) && same_file(path, before, n) &&
                             count_files(".tmp") == 0;
    if (rc == 0)
        rc = tg_model_save(m, path, "{\"epoch\": \"1\"}") == 0 ? 0 : -1; /* the old file again, for the next run */
    free(before);
    tg_model_free(m);
    return tg_scope_end(s) == 0 ? rc : -1;
}

/* Loading: an error, and the model exactly as it was. */
static int load_scenario(long k)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = mlp(6);
    tg_history_free(tg_fit(m, data_x(12), data_y(12), .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    double w0[256], w1[256];
    int64_t nw = weights(m, w0, 256);
    arm(k);
    int loaded = tg_model_load(m, at("model.safetensors"));
    int rc = !disarm() ? (loaded == 0 ? 0 : -1)
                       : loaded == -1 && failed_cleanly(s, "load", k) && weights(m, w1, 256) == nw &&
                             memcmp(w0, w1, sizeof(double) * (size_t)nw) == 0;
    if (loaded == -1 && rc != 1)
        printf("  load with allocation %ld failing: %s\n", k, tg_last_error() ? tg_last_error() : "no message");
    tg_model_free(m);
    return tg_scope_end(s) == 0 ? rc : -1;
}

/* The readers of every format, and safetensors' get and load_into. */
static int reader_scenario(long k)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_variable(tg_from_f32(TG_SHAPE(2), 0.0f, 0.0f), .name = "v");
    arm(k);
    tg_csv c = tg_read_csv(at("r.csv"), .label = "label");
    tg_tensor *i = c.x ? tg_read_idx(at("r.idx")) : NULL, *n = i ? tg_read_npy(at("r.npy")) : NULL;
    tg_safetensors *st = n ? tg_safetensors_open(at("r.safetensors")) : NULL;
    bool got = st && tg_safetensors_get(st, "v") && tg_load_into(at("r.safetensors"), &v, 1) == 0;
    tg_safetensors_close(st);
    int rc = !disarm() ? (got ? 0 : -1) : !got && failed_cleanly(s, "readers", k) ? 1 : -1;
    tg_variable_free(v);
    return tg_scope_end(s) == 0 ? rc : -1;
}

static void every_allocation_can_fail(void)
{
    const char csv[] = "a,b,label\n1,2,0\n3,4,1\n5,6.5,2\n";
    const unsigned char idx[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    /* .npy 1.0: magic, version, header length 118, the header padded to 128 bytes, data */
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    const float two[2] = {1.5f, -2.0f};
    unsigned char npy[136];
    memcpy(npy, "\x93NUMPY\x01\x00\x76\x00", 10);
    memset(npy + 10, ' ', 118);
    memcpy(npy + 10, dict, strlen(dict));
    npy[127] = '\n';
    memcpy(npy + 128, two, sizeof two);
    write_file("r.csv", csv, sizeof csv - 1);
    write_file("r.idx", idx, sizeof idx);
    write_file("r.npy", npy, sizeof npy);
    tg_scope *s = tg_scope_begin();
    tg_tensor *v = tg_variable(tg_from_f32(TG_SHAPE(2), 1.0f, 2.0f), .name = "v");
    CHECK(tg_save_safetensors(at("r.safetensors"), &v, NULL, 1, "{\"k\": \"v\"}") == 0);
    tg_model *m = mlp(5);
    CHECK(tg_model_save(m, at("model.safetensors"), "{\"epoch\": \"1\"}") == 0);
    tg_model_free(m);
    tg_variable_free(v);
    tg_scope_end(s);

    /* (the counts only show the sweeps ran: the fewer allocations a step needs, the better) */
    CHECK(sweep("make, compile and fit a model", fit_scenario) > 10);
    CHECK(sweep("a tape, a gradient and a jacobian", gradient_scenario) > 1);
    CHECK(sweep("save a model over its checkpoint", save_scenario) > 5);
    CHECK(sweep("load a model", load_scenario) > 5);
    CHECK(sweep("read CSV, IDX, NPY and safetensors", reader_scenario) > 10);
}

/* ---- failing writes ------------------------------------------------------------------------------ */
static void a_save_that_fails_part_way_keeps_the_previous_checkpoint(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = data_x(12), *y = data_y(12);
    tg_model *m = mlp(5);
    tg_history_free(tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    const char *path = at("ckpt.safetensors");
    CHECK(tg_model_save(m, path, NULL) == 0);
    size_t n = 0;
    unsigned char *before = slurp(path, &n);
    tg_history_free(tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));

    /* Each write in turn fails with a full disk. */
    long k = 1;
    for (;; k++) {
        tg_clear_error();
        write_errno = ENOSPC;
        write_countdown = k;
        int rc = tg_model_save(m, path, NULL);
        bool fired = write_countdown == 0;
        write_countdown = 0;
        if (!fired) {
            CHECK(rc == 0);
            break;
        }
        faults_injected++;
        bool ok = rc == -1 && same_file(path, before, n) && count_files(".tmp") == 0;
        CHECK(ok);
        CHECK_ERROR("No space left on device while writing the temporary file");
        CHECK_ERROR("any previous file is unchanged");
        faults_survived += ok;
    }
    CHECK(k > 2);
    free(before);
    before = slurp(path, &n);

    /* A failing flush, a failing rename. */
    tg_history_free(tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    for (int f = 0; f < 2; f++) {
        fsync_fails = f == 0;
        rename_fails = f == 1;
        tg_clear_error();
        int rc = tg_model_save(m, path, NULL);
        fsync_fails = rename_fails = false;
        faults_injected++;
        bool ok = rc == -1 && same_file(path, before, n) && count_files(".tmp") == 0;
        CHECK(ok);
        CHECK_ERROR(f == 0 ? "Input/output error while flushing" : "while renaming");
        faults_survived += ok;
    }

    /* Short writes are not errors: the save goes on until everything is written. */
    short_writes = true;
    CHECK(tg_model_save(m, path, NULL) == 0);
    short_writes = false;
    tg_model *back = mlp(77);
    double a[256], b[256];
    CHECK(tg_model_load(back, path) == 0);
    int64_t na = weights(m, a, 256), nb = weights(back, b, 256);
    CHECK(na > 0 && na == nb && memcmp(a, b, sizeof(double) * (size_t)na) == 0);
    free(before);
    tg_model_free(back);
    tg_model_free(m);
    tg_scope_end(s);
}

/* A full disk for real: RLIMIT_FSIZE below the checkpoint's size, in a child process with
 * SIGXFSZ ignored, so write() fails with EFBIG part-way through the file. */
static void a_full_disk_keeps_the_previous_checkpoint(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = data_x(12), *y = data_y(12);
    tg_model *m = mlp(5);
    tg_history_free(tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    const char *path = at("disk.safetensors");
    CHECK(tg_model_save(m, path, NULL) == 0);
    size_t n = 0;
    unsigned char *before = slurp(path, &n);
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {.rlim_cur = n / 2, .rlim_max = n / 2};
        setrlimit(RLIMIT_FSIZE, &lim);
        tg_history_free(tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
        int rc = tg_model_save(m, path, NULL);
        const char *err = tg_last_error() ? tg_last_error() : "";
        if (write(fds[1], err, strlen(err)) < 0)
            rc = 1;
        _exit(rc == -1 ? 0 : 1);
    }
    close(fds[1]);
    char msg[2048] = "";
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    faults_injected++;
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(msg, "File too large while writing") &&
              same_file(path, before, n) && count_files(".tmp") == 0;
    if (!ok)
        printf("  child: status %d, message: %s\n", status, msg);
    CHECK(ok);
    faults_survived += ok;
    free(before);
    tg_model_free(m);
    tg_scope_end(s);
}

/* ---- SIGKILL during fit ---------------------------------------------------------------------- */
enum { KILL_EPOCHS = 6, KILL_ROWS = 40 };

typedef struct killer {
    tg_callback cb;
    int epoch;
    int64_t batch; /* kill at this batch of `epoch` (-1: not on a batch) */
    long write;    /* or arm a kill at this write from the start of `epoch` */
} killer;

static int kill_on_batch(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)m;
    (void)logs;
    killer *k = (killer *)cb;
    if (k->batch >= 0 && batch == k->batch && k->epoch < 0)
        raise(SIGKILL);
    return 0;
}

static int kill_epoch_begin(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m;
    (void)logs;
    killer *k = (killer *)cb;
    if (epoch == k->epoch) {
        k->epoch = -1; /* the batch hook takes over */
        if (k->write > 0) {
            kill_on_write = true;
            write_countdown = k->write;
        }
    }
    return 0;
}

static tg_history *fit_from(tg_model *m, int initial_epoch, tg_callback *const *cbs, int ncb)
{
    tg_tensor *x = data_x(KILL_ROWS), *y = data_y(KILL_ROWS);
    return tg_fit(m, x, y, .epochs = KILL_EPOCHS, .batch_size = 8, .seed = 11, .initial_epoch = initial_epoch,
                  .verbose = TG_VERBOSE_SILENT, .callbacks = cbs, .n_callbacks = ncb);
}

/* A child fits with a ModelCheckpoint and is killed as `k` says; the parent resumes from
 * the checkpoint and must end where an uninterrupted fit ends. */
static void kill_and_resume(killer k, const char *what, const double *reference, int64_t nref)
{
    const char *path = at("killed.safetensors");
    remove(path);
    remove_files(".tmp");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        tg_scope *s = tg_scope_begin();
        tg_model *m = mlp(3);
        killer *kc = malloc(sizeof *kc);
        *kc = k;
        kc->cb = (tg_callback){.on_epoch_begin = kill_epoch_begin, .on_batch_end = kill_on_batch};
        tg_callback *cbs[2] = {tg_model_checkpoint(.filepath = path, .monitor = "loss"), &kc->cb};
        fit_from(m, 0, cbs, 2);
        tg_scope_end(s);
        _exit(3); /* not killed: a failure */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    faults_injected++;
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    tg_scope *s = tg_scope_begin();
    tg_safetensors *st = tg_safetensors_open(path);
    const char *epoch = st ? tg_safetensors_metadata(st, "epoch") : NULL;
    int done = epoch ? atoi(epoch) : -1;
    tg_safetensors_close(st);
    tg_model *m = mlp(99); /* other initial weights: everything must come from the file */
    CHECK(done >= 1 && tg_model_load(m, path) == 0);
    tg_history *h = fit_from(m, done, NULL, 0);
    double w[256];
    bool same = h && weights(m, w, 256) == nref && memcmp(w, reference, sizeof(double) * (size_t)nref) == 0;
    if (!same)
        printf("  killed %s (checkpoint of epoch %d): the resumed fit ends elsewhere\n", what, done);
    CHECK(same);
    faults_survived += same;
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);
}

static void a_fit_killed_mid_epoch_or_mid_save_resumes_to_the_same_weights(void)
{
    tg_scope *s = tg_scope_begin();
    tg_model *m = mlp(3);
    tg_history *h = fit_from(m, 0, NULL, 0);
    double ref[256];
    int64_t nref = weights(m, ref, 256);
    CHECK(h && nref > 0);
    tg_history_free(h);
    tg_model_free(m);
    tg_scope_end(s);

    kill_and_resume((killer){.epoch = 3, .batch = 2}, "in epoch 4, batch 3", ref, nref);
    kill_and_resume((killer){.epoch = 1, .batch = 0}, "in epoch 2, batch 1", ref, nref);
    /* Killed at the 1st, 2nd or 4th write of the checkpoint of epoch 5: the one of epoch 4
     * is intact; the unfinished temporary file is all that is left over. */
    for (long w = 1; w <= 6; w *= 2) {
        kill_and_resume((killer){.epoch = 4, .batch = -1, .write = w}, "while saving", ref, nref);
        CHECK(count_files(".tmp") == 1);
    }
    remove_files(".tmp");
}

/* The tapegrad command, killed with SIGKILL from outside at moments the test does not
 * choose, then resumed with --resume: the same final weights as one uninterrupted run. */
static int run_cli(const char *args, bool wait)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && exec %s %s >/dev/null 2>&1", tmpdir, TG_CLI, args);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (!wait)
        return pid;
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int saved_epoch(const char *path)
{
    tg_scope *s = tg_scope_begin();
    tg_safetensors *st = tg_safetensors_open(path);
    const char *e = st ? tg_safetensors_metadata(st, "epoch") : NULL;
    int epoch = e ? atoi(e) : -1;
    tg_safetensors_close(st);
    tg_scope_end(s);
    return epoch;
}

/* Enough epochs that the kills below land before the end even where a save costs nothing. */
#define CLI_EPOCHS     100
#define CLI_EPOCHS_STR "100"
#define CLI_FIT                                                                                      \
    "fit --data csv:train.csv --label label --model mlp:16 --batch-size 16 --quiet --history h.csv " \
    "--plot h.svg --epochs " CLI_EPOCHS_STR " "

static void the_command_killed_at_any_moment_resumes_to_the_same_weights(void)
{
    FILE *f = fopen(at("train.csv"), "w");
    fprintf(f, "a,b,c,d,label\n");
    for (int i = 0; i < 240; i++)
        fprintf(f, "%.3f,%.3f,%.3f,%.3f,%d\n", (i % 3 == 0) + 0.01 * (i % 7), (i % 3 == 1) + 0.02 * (i % 5),
                (i % 3 == 2) + 0.03 * (i % 4), 0.1 * (i % 10), i % 3);
    fclose(f);
    CHECK(run_cli(CLI_FIT "--save full.safetensors", true) == 0);
    CHECK(saved_epoch(at("full.safetensors")) == CLI_EPOCHS);
    srand((unsigned)time(NULL));
    int kills = 0, resumed_equal = 0;
    for (int trial = 0; trial < 4; trial++) {
        remove(at("run.safetensors"));
        pid_t pid = run_cli(CLI_FIT "--save run.safetensors", false);
        /* Wait for a checkpoint of epoch >= 2 + trial, then a random few hundred microseconds. */
        for (int i = 0; i < 20000 && saved_epoch(at("run.safetensors")) < 2 + trial * 3; i++)
            usleep(100);
        usleep((useconds_t)(rand() % 2000));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status))
            continue; /* it finished first: nothing to resume */
        kills++;
        faults_injected++;
        int epoch = saved_epoch(at("run.safetensors"));
        CHECK(epoch >= 2 && epoch <= CLI_EPOCHS); /* a whole, readable checkpoint */
        CHECK(run_cli(CLI_FIT "--resume run.safetensors --save run.safetensors", true) == 0);
        bool same = saved_epoch(at("run.safetensors")) == CLI_EPOCHS &&
                    same_model_files(at("full.safetensors"), at("run.safetensors"));
        if (!same)
            printf("  killed after epoch %d: the resumed run ends elsewhere\n", epoch);
        CHECK(same);
        resumed_equal += same;
        faults_survived += same;
    }
    printf("  the command: %d SIGKILLs, %d resumed to the same weights\n", kills, resumed_equal);
    CHECK(kills >= 2);
    remove_files(".tmp");
}

/* A save by another process while tg_model_load reads: the weights and the optimizer
 * state must come from one file (it opened the path twice and mixed them). */
static void a_save_during_a_load_is_not_mixed_in(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = data_x(12), *y = data_y(12);
    tg_model *a = mlp(5), *b = mlp(6), *c = mlp(7);
    tg_history_free(tg_fit(a, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    tg_history_free(tg_fit(b, x, y, .epochs = 2, .batch_size = 4, .verbose = TG_VERBOSE_SILENT));
    CHECK(tg_model_save(a, at("live.safetensors"), NULL) == 0 && tg_model_save(b, at("next.safetensors"), NULL) == 0);
    swap_path = at("live.safetensors");
    swap_with = at("next.safetensors");
    opens_of_swap_path = 0;
    CHECK(tg_model_load(c, swap_path) == 0);
    swap_path = NULL;
    CHECK(opens_of_swap_path == 1);
    int na = 0, nc = 0;
    tg_tensor *const *va = tg_model_variables(a, &na), *const *vc = tg_model_variables(c, &nc);
    for (int i = 0; i < na && na == nc; i++) { /* all from the file as it was opened: a's */
        double u[64], v[64];
        CHECK(tg_size(va[i]) <= 64 && tg_copy_out_f64(va[i], u, 64) == 0 && tg_copy_out_f64(vc[i], v, 64) == 0);
        CHECK(memcmp(u, v, sizeof(double) * (size_t)tg_size(va[i])) == 0);
    }
    CHECK(tg_optimizer_iterations(tg_model_optimizer(c)) == 3); /* a's 12 rows / 4, once */
    tg_model_free(a);
    tg_model_free(b);
    tg_model_free(c);
    unlink(at("live.safetensors"));
    tg_scope_end(s);
}

int main(void)
{
    if (!make_tmpdir("tapegrad_faults"))
        return 1;
    RUN(every_allocation_can_fail);
    RUN(a_save_that_fails_part_way_keeps_the_previous_checkpoint);
    RUN(a_full_disk_keeps_the_previous_checkpoint);
    RUN(a_save_during_a_load_is_not_mixed_in);
    RUN(a_fit_killed_mid_epoch_or_mid_save_resumes_to_the_same_weights);
    RUN(the_command_killed_at_any_moment_resumes_to_the_same_weights);
    printf("%ld faults injected, %ld survived (an error, nothing lost, or the same result)\n", faults_injected,
           faults_survived);
    remove_tmpdir();
    return TEST_SUMMARY();
}
