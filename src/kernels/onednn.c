/* Float32 and bfloat16 convolutions (the forward optionally with a bias and a ReLU as
 * post-ops) and bfloat16 matrix products through oneDNN, loaded at run time (onednn.h).
 *
 * Why dlopen, as gemm.c loads OpenBLAS: oneDNN is an optional accelerator. A linked
 * libdnnl would be needed to build and to start every program; loaded at the first
 * convolution, it is used where installed and the portable path runs elsewhere. The
 * build needs no oneDNN headers: the few calls and constants of oneDNN 2.x's C API used
 * here are declared below. oneDNN 2.x passes its descriptors (memory and operation
 * descriptors) by pointer into caller-owned storage; this file only passes them on, so
 * each is an opaque buffer, larger than oneDNN 2.6's own (696 and 5976 bytes). The major
 * version is checked at load (3.x changed these calls).
 *
 * Threads: Debian's oneDNN runs its loops on OpenMP. Run beside tapegrad's loop pool with
 * its own OpenMP team, every call measured 6-8 ms (two pools spinning on the same cores);
 * so each call splits the batch over the loop pool and every chunk runs with one OpenMP
 * thread (omp_set_num_threads(1) around it, the thread's setting restored after).
 * TAPEGRAD_ONEDNN_THREADS=omp instead runs the whole batch on the calling thread with an
 * OpenMP team of the loop pool's size (kept to measure the two against each other).
 *
 * Primitives are made once per shape (kind, geometry, batch of a chunk, data type and
 * post-ops) and kept for the process's life; their scratch space is the executing
 * thread's (oneDNN's "user" scratchpad mode), so chunks run one primitive concurrently. */
#include "onednn.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#define ONEDNN_LIBRARY "libdnnl.so.2"

/* ---- oneDNN 2.x's C API: the calls and constant values used (dnnl_types.h of 2.x) ------------ */
enum {
    DNNL_OK = 0,
    ENGINE_CPU = 1,
    STREAM_IN_ORDER = 1,
    DT_BF16 = 2,
    DT_F32 = 3,
    TAG_ANY = 1,
    TAG_A = 2,
    TAG_NHWC = 20,
    TAG_HWIO = 30,
    PROP_FORWARD_TRAINING = 64,
    ALG_CONV_DIRECT = 1,
    ALG_ELTWISE_RELU = 31,
    ARG_SRC = 1,
    ARG_DST = 17,
    ARG_WEIGHTS = 33,
    ARG_BIAS = 41,
    ARG_SCRATCHPAD = 80,
    ARG_DIFF_SRC = 129,
    ARG_DIFF_DST = 145,
    ARG_DIFF_WEIGHTS = 161,
    QUERY_WEIGHTS_MD = 131,
    QUERY_DIFF_WEIGHTS_MD = 132,
    QUERY_SCRATCHPAD_MD = 136,
    SCRATCHPAD_USER = 1,
    MAX_DIMS = 12,
};
#define ARG_FROM ARG_SRC
#define ARG_TO   ARG_DST

typedef struct md {
    _Alignas(16) unsigned char bytes[1024];
} md;
typedef struct op_desc {
    _Alignas(16) unsigned char bytes[8192];
} op_desc;
typedef int64_t dims[MAX_DIMS];
typedef struct exec_arg {
    int arg;
    void *memory;
} exec_arg;
typedef struct dnnl_version_info {
    int major, minor, patch;
    const char *hash;
    unsigned cpu_runtime, gpu_runtime;
} dnnl_version_info;

static struct {
    pthread_once_t once;
    atomic_bool on;
    bool omp_mode; /* TAPEGRAD_ONEDNN_THREADS=omp */
    char name[96];
    void *engine;
    struct {
        int (*engine_create)(void **, int, size_t);
        int (*stream_create)(void **, void *, unsigned);
        int (*stream_wait)(void *);
        int (*md_init_by_tag)(md *, int, const int64_t *, int, int);
        int (*md_init_by_strides)(md *, int, const int64_t *, int, const int64_t *);
        int (*matmul_init)(op_desc *, const md *, const md *, const md *, const md *);
        size_t (*md_get_size)(const md *);
        int (*md_equal)(const md *, const md *);
        int (*conv_forward_init)(op_desc *, int, int, const md *, const md *, const md *, const md *, const int64_t *,
                                 const int64_t *, const int64_t *, const int64_t *);
        int (*conv_backward_data_init)(op_desc *, int, const md *, const md *, const md *, const int64_t *,
                                       const int64_t *, const int64_t *, const int64_t *);
        int (*conv_backward_weights_init)(op_desc *, int, const md *, const md *, const md *, const md *,
                                          const int64_t *, const int64_t *, const int64_t *, const int64_t *);
        int (*attr_create)(void **);
        int (*attr_set_scratchpad_mode)(void *, int);
        int (*attr_destroy)(void *);
        int (*attr_set_post_ops)(void *, const void *);
        int (*post_ops_create)(void **);
        int (*post_ops_append_eltwise)(void *, float, int, float, float);
        int (*post_ops_destroy)(void *);
        int (*pd_create)(void **, const void *, const void *, void *, const void *);
        const md *(*pd_query_md)(const void *, int, int);
        int (*pd_destroy)(void *);
        int (*reorder_pd_create)(void **, const md *, void *, const md *, void *, const void *);
        int (*primitive_create)(void **, const void *);
        int (*primitive_execute)(const void *, void *, int, const exec_arg *);
        int (*memory_create)(void **, const md *, void *, void *);
        int (*memory_destroy)(void *);
        const dnnl_version_info *(*version)(void);
        void (*omp_set_num_threads)(int);
        int (*omp_get_max_threads)(void);
    } f;
} dnnl = {.once = PTHREAD_ONCE_INIT, .name = "not loaded"};

/* Every call used, or false with dnnl.name saying which is missing. */
static bool resolve(void *lib)
{
#define SYM(field, symbol)                                                                     \
    do {                                                                                       \
        *(void **)(&dnnl.f.field) = dlsym(lib, symbol);                                        \
        if (!dnnl.f.field)                                                                     \
            return snprintf(dnnl.name, sizeof dnnl.name, "not usable (no %s)", symbol), false; \
    } while (0)
    SYM(engine_create, "dnnl_engine_create");
    SYM(stream_create, "dnnl_stream_create");
    SYM(stream_wait, "dnnl_stream_wait");
    SYM(md_init_by_tag, "dnnl_memory_desc_init_by_tag");
    SYM(md_get_size, "dnnl_memory_desc_get_size");
    SYM(md_init_by_strides, "dnnl_memory_desc_init_by_strides");
    SYM(matmul_init, "dnnl_matmul_desc_init");
    SYM(md_equal, "dnnl_memory_desc_equal");
    SYM(conv_forward_init, "dnnl_dilated_convolution_forward_desc_init");
    SYM(conv_backward_data_init, "dnnl_dilated_convolution_backward_data_desc_init");
    SYM(conv_backward_weights_init, "dnnl_dilated_convolution_backward_weights_desc_init");
    SYM(attr_create, "dnnl_primitive_attr_create");
    SYM(attr_set_scratchpad_mode, "dnnl_primitive_attr_set_scratchpad_mode");
    SYM(attr_destroy, "dnnl_primitive_attr_destroy");
    SYM(attr_set_post_ops, "dnnl_primitive_attr_set_post_ops");
    SYM(post_ops_create, "dnnl_post_ops_create");
    SYM(post_ops_append_eltwise, "dnnl_post_ops_append_eltwise");
    SYM(post_ops_destroy, "dnnl_post_ops_destroy");
    SYM(pd_create, "dnnl_primitive_desc_create");
    SYM(pd_query_md, "dnnl_primitive_desc_query_md");
    SYM(pd_destroy, "dnnl_primitive_desc_destroy");
    SYM(reorder_pd_create, "dnnl_reorder_primitive_desc_create");
    SYM(primitive_create, "dnnl_primitive_create");
    SYM(primitive_execute, "dnnl_primitive_execute");
    SYM(memory_create, "dnnl_memory_create");
    SYM(memory_destroy, "dnnl_memory_destroy");
    SYM(version, "dnnl_version");
#undef SYM
    /* OpenMP's, from oneDNN's dependencies; absent in a oneDNN built on other threads */
    *(void **)(&dnnl.f.omp_set_num_threads) = dlsym(lib, "omp_set_num_threads");
    *(void **)(&dnnl.f.omp_get_max_threads) = dlsym(lib, "omp_get_max_threads");
    if (!dnnl.f.omp_set_num_threads != !dnnl.f.omp_get_max_threads)
        dnnl.f.omp_set_num_threads = NULL, dnnl.f.omp_get_max_threads = NULL;
    return true;
}

static void dnnl_load(void)
{
    const char *want = getenv("TAPEGRAD_ONEDNN");
    if (want && !strcmp(want, "0")) {
        snprintf(dnnl.name, sizeof dnnl.name, "off (TAPEGRAD_ONEDNN=0)");
        return;
    }
#ifdef TG_ONEDNN_DEFAULT_OFF
    if (!want || strcmp(want, "1")) {
        snprintf(dnnl.name, sizeof dnnl.name, "off in sanitizer builds (TAPEGRAD_ONEDNN=1 turns it on)");
        return;
    }
#endif
    void *lib = dlopen(ONEDNN_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(dnnl.name, sizeof dnnl.name, "not installed (no %s)", ONEDNN_LIBRARY);
        return;
    }
    if (!resolve(lib))
        return;
    const dnnl_version_info *v = dnnl.f.version();
    if (!v || v->major != 2) {
        snprintf(dnnl.name, sizeof dnnl.name, "not usable (version %d, 2.x needed)", v ? v->major : -1);
        return;
    }
    if (dnnl.f.engine_create(&dnnl.engine, ENGINE_CPU, 0) != DNNL_OK) {
        snprintf(dnnl.name, sizeof dnnl.name, "not usable (no CPU engine)");
        return;
    }
    const char *threads = getenv("TAPEGRAD_ONEDNN_THREADS");
    dnnl.omp_mode = threads && !strcmp(threads, "omp") && dnnl.f.omp_set_num_threads;
    snprintf(dnnl.name, sizeof dnnl.name, "onednn %d.%d.%d (%s)", v->major, v->minor, v->patch,
             dnnl.omp_mode ? "its own OpenMP team" : "one thread per worker");
    atomic_store(&dnnl.on, true);
}

static void dnnl_ready(void) { pthread_once(&dnnl.once, dnnl_load); }

bool tg__onednn_active(void)
{
    dnnl_ready();
    return atomic_load_explicit(&dnnl.on, memory_order_relaxed);
}

void tg__onednn_set_enabled(bool on)
{
    dnnl_ready();
    atomic_store(&dnnl.on, on && dnnl.engine);
}

const char *tg__onednn_backend(void)
{
    dnnl_ready();
    if (dnnl.engine && !atomic_load(&dnnl.on))
        return "off (turned off)";
    return dnnl.name;
}

/* ---- primitives, one per shape ------------------------------------------------------------------- */
typedef enum kind { FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS } kind;

/* What a primitive computes beyond its kind and geometry: the images' and kernel's data
 * type (bfloat16 backward weights sum into a float32 kernel), and for the forward a bias
 * added and a ReLU applied to the sums before they are stored (oneDNN's post-ops). */
typedef struct variant {
    int dt; /* DT_F32 or DT_BF16 */
    bool bias, relu;
} variant;

typedef struct prim {
    kind kind;
    tg_conv_geom g; /* g.n: the chunk's batch */
    variant v;
    void *exec;
    void *reorder; /* HWIO to wmd (forward, backward data), wmd to HWIO (weights); NULL if equal */
    md image, out, wmd, hwio, bias, scratch;
    size_t wbytes, hwio_bytes, scratch_bytes;
} prim;

enum { CACHE_MAX = 256 };
static struct {
    pthread_mutex_t mu;
    prim *e[CACHE_MAX];
    int n;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool same_geom(const tg_conv_geom *a, const tg_conv_geom *b) { return !memcmp(a, b, sizeof *a); }

static bool same_variant(const variant *a, const variant *b)
{
    return a->dt == b->dt && a->bias == b->bias && a->relu == b->relu;
}

/* The attributes of every primitive here: scratch space given by the caller, and the
 * variant's ReLU as a post-op. */
static void *make_attr(const variant *v)
{
    void *attr = NULL, *ops = NULL;
    bool ok = dnnl.f.attr_create(&attr) == DNNL_OK && dnnl.f.attr_set_scratchpad_mode(attr, SCRATCHPAD_USER) == DNNL_OK;
    if (ok && v->relu)
        ok = dnnl.f.post_ops_create(&ops) == DNNL_OK &&
             dnnl.f.post_ops_append_eltwise(ops, 1.0f, ALG_ELTWISE_RELU, 0.0f, 0.0f) == DNNL_OK &&
             dnnl.f.attr_set_post_ops(attr, ops) == DNNL_OK;
    if (ops)
        dnnl.f.post_ops_destroy(ops);
    if (!ok && attr)
        dnnl.f.attr_destroy(attr), attr = NULL;
    return attr;
}

/* A reorder primitive from `from` to `to`, or NULL. */
static void *make_reorder(const md *from, const md *to)
{
    void *pd = NULL, *p = NULL;
    if (dnnl.f.reorder_pd_create(&pd, from, dnnl.engine, to, dnnl.engine, NULL) != DNNL_OK)
        return NULL;
    if (dnnl.f.primitive_create(&p, pd) != DNNL_OK)
        p = NULL;
    dnnl.f.pd_destroy(pd);
    return p;
}

/* The operation descriptor and primitive of kind k for geometry g and variant v, into p;
 * false if oneDNN has none. */
static bool build(kind k, const tg_conv_geom *g, const variant *v, prim *p)
{
    const dims img = {g->n, g->c, g->h, g->w}, out = {g->n, g->f, g->oh, g->ow}, wts = {g->f, g->c, g->kh, g->kw};
    int64_t ekh = (g->kh - 1) * g->dh + 1, ekw = (g->kw - 1) * g->dw + 1;
    int64_t prh = (g->oh - 1) * g->sh + ekh - g->h - g->pt, prw = (g->ow - 1) * g->sw + ekw - g->w - g->pl;
    const dims strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, pad_l = {g->pt, g->pl},
               pad_r = {prh > 0 ? prh : 0, prw > 0 ? prw : 0}; /* VALID's leftover rows: floor division */
    const dims nb = {g->f};
    int wdt = k == BACKWARD_WEIGHTS ? DT_F32 : v->dt; /* bfloat16's weight gradient: float32 sums */
    md any, hint_any;
    if (dnnl.f.md_init_by_tag(&p->image, 4, img, v->dt, TAG_NHWC) != DNNL_OK ||
        dnnl.f.md_init_by_tag(&p->out, 4, out, v->dt, TAG_NHWC) != DNNL_OK ||
        dnnl.f.md_init_by_tag(&p->hwio, 4, wts, wdt, TAG_HWIO) != DNNL_OK ||
        dnnl.f.md_init_by_tag(&any, 4, wts, wdt, TAG_ANY) != DNNL_OK ||
        dnnl.f.md_init_by_tag(&hint_any, 4, wts, v->dt, TAG_ANY) != DNNL_OK ||
        dnnl.f.md_init_by_tag(&p->bias, 1, nb, DT_F32, TAG_A) != DNNL_OK)
        return false;
    void *attr = make_attr(v), *plain = k == FORWARD ? NULL : make_attr(&(variant){.dt = v->dt});
    void *fwd = NULL, *pd = NULL;
    op_desc d;
    bool ok =
        attr && (k == FORWARD || plain) &&
        dnnl.f.conv_forward_init(&d, PROP_FORWARD_TRAINING, ALG_CONV_DIRECT, &p->image, k == FORWARD ? &any : &hint_any,
                                 v->bias ? &p->bias : NULL, &p->out, strides, dil, pad_l, pad_r) == DNNL_OK &&
        dnnl.f.pd_create(&fwd, &d, k == FORWARD ? attr : plain, dnnl.engine, NULL) == DNNL_OK;
    if (ok && k == FORWARD) {
        pd = fwd, fwd = NULL;
    } else if (ok && k == BACKWARD_DATA) {
        ok = dnnl.f.conv_backward_data_init(&d, ALG_CONV_DIRECT, &p->image, &any, &p->out, strides, dil, pad_l,
                                            pad_r) == DNNL_OK &&
             dnnl.f.pd_create(&pd, &d, attr, dnnl.engine, fwd) == DNNL_OK;
    } else if (ok) {
        ok = dnnl.f.conv_backward_weights_init(&d, ALG_CONV_DIRECT, &p->image, &any, NULL, &p->out, strides, dil, pad_l,
                                               pad_r) == DNNL_OK &&
             dnnl.f.pd_create(&pd, &d, attr, dnnl.engine, fwd) == DNNL_OK;
    }
    const md *w =
        ok ? dnnl.f.pd_query_md(pd, k == BACKWARD_WEIGHTS ? QUERY_DIFF_WEIGHTS_MD : QUERY_WEIGHTS_MD, 0) : NULL;
    const md *s = ok ? dnnl.f.pd_query_md(pd, QUERY_SCRATCHPAD_MD, 0) : NULL;
    ok = w && s;
    if (ok) {
        memcpy(&p->wmd, w, sizeof p->wmd);
        memcpy(&p->scratch, s, sizeof p->scratch);
        p->wbytes = dnnl.f.md_get_size(&p->wmd);
        p->hwio_bytes = dnnl.f.md_get_size(&p->hwio);
        p->scratch_bytes = dnnl.f.md_get_size(&p->scratch);
        if (!dnnl.f.md_equal(&p->wmd, &p->hwio)) {
            p->reorder = k == BACKWARD_WEIGHTS ? make_reorder(&p->wmd, &p->hwio) : make_reorder(&p->hwio, &p->wmd);
            ok = p->reorder != NULL;
        }
        ok = ok && dnnl.f.primitive_create(&p->exec, pd) == DNNL_OK;
    }
    if (pd)
        dnnl.f.pd_destroy(pd);
    if (fwd)
        dnnl.f.pd_destroy(fwd);
    if (attr)
        dnnl.f.attr_destroy(attr);
    if (plain)
        dnnl.f.attr_destroy(plain);
    return ok;
}

/* The primitive of kind k for g and v, made at its first use; NULL if oneDNN has none or
 * the cache is full (the caller takes the portable path). */
static const prim *find_prim(kind k, const tg_conv_geom *g, const variant *v, int omp_threads)
{
    pthread_mutex_lock(&cache.mu);
    prim *found = NULL;
    for (int i = 0; i < cache.n && !found; i++)
        if (cache.e[i]->kind == k && same_geom(&cache.e[i]->g, g) && same_variant(&cache.e[i]->v, v))
            found = cache.e[i];
    if (!found && cache.n < CACHE_MAX && (found = calloc(1, sizeof *found))) {
        found->kind = k;
        found->g = *g;
        found->v = *v;
        /* oneDNN fixes a primitive's split of the work (and its scratch size) for the
         * OpenMP thread count of the thread that makes it: the count it will run with.
         * A shape oneDNN cannot run is kept too (exec NULL), so it is not tried again. */
        int kept = dnnl.f.omp_get_max_threads ? dnnl.f.omp_get_max_threads() : 0;
        if (kept && kept != omp_threads)
            dnnl.f.omp_set_num_threads(omp_threads);
        if (!build(k, g, v, found))
            found->exec = NULL;
        if (kept && kept != omp_threads)
            dnnl.f.omp_set_num_threads(kept);
        cache.e[cache.n++] = found;
    }
    pthread_mutex_unlock(&cache.mu);
    return found && found->exec ? found : NULL;
}

/* ---- running a primitive on this thread -------------------------------------------------------------- */
/* This thread's stream and buffers, kept for the thread's life so that a warm call
 * allocates nothing of its own: oneDNN's scratch space, and for the calling thread the
 * kernel in oneDNN's layouts and backward weights' partial kernels. */
enum { SCRATCH, WEIGHTS0, WEIGHTS1, KEPT0, KEPT1, PARTS, PARTS_NATIVE, N_BUFS };
static _Thread_local void *stream;
static _Thread_local void *bufs[N_BUFS];
static _Thread_local size_t buf_caps[N_BUFS];
/* The primitive whose layout WEIGHTS0 + i holds, reordered from the HWIO kernel kept in
 * KEPT0 + i (prims are never freed, so the pointer names one). */
static _Thread_local const prim *weights_of[2];

/* 64-byte aligned, as oneDNN's kernels prefer (the raw block is kept to grow it). */
static void *thread_buffer(int which, size_t bytes)
{
    bytes = (bytes ? bytes : 1) + 64;
    if (buf_caps[which] < bytes) {
        void *p = realloc(bufs[which], bytes);
        if (!p)
            return NULL;
        bufs[which] = p, buf_caps[which] = bytes;
    }
    return (void *)(((uintptr_t)bufs[which] + 63) & ~(uintptr_t)63);
}

/* Executes primitive `exec` with n (argument, descriptor, data) triples, on this
 * thread's stream, with one OpenMP thread (the thread's own setting kept), or
 * `omp_threads` of them. */
static bool execute(void *exec, int n, const int *args, const md *const *mds, void *const *data, int omp_threads)
{
    if (!stream && dnnl.f.stream_create(&stream, dnnl.engine, STREAM_IN_ORDER) != DNNL_OK) {
        stream = NULL;
        return false;
    }
    exec_arg a[8];
    bool ok = true;
    int made = 0;
    for (; made < n && ok; made++) {
        a[made].arg = args[made];
        ok = dnnl.f.memory_create(&a[made].memory, mds[made], dnnl.engine, data[made]) == DNNL_OK;
    }
    if (!ok)
        made--;
    int kept = dnnl.f.omp_get_max_threads ? dnnl.f.omp_get_max_threads() : 0;
    if (kept && kept != omp_threads)
        dnnl.f.omp_set_num_threads(omp_threads);
    ok = ok && dnnl.f.primitive_execute(exec, stream, n, a) == DNNL_OK && dnnl.f.stream_wait(stream) == DNNL_OK;
    if (kept && kept != omp_threads)
        dnnl.f.omp_set_num_threads(kept);
    for (int i = 0; i < made; i++)
        dnnl.f.memory_destroy(a[i].memory);
    return ok;
}

/* ---- a call: the batch in chunks over the loop pool ------------------------------------------------ */
typedef struct call {
    kind kind;
    tg_conv_geom g;
    variant v;
    size_t es; /* bytes per element of the images */
    int chunks, omp_threads;
    const prim *p[2]; /* for chunks of base and base + 1 images */
    void *weights[2]; /* forward, backward data: the kernel in each primitive's layout */
    float *parts;     /* backward weights, several chunks: one HWIO kernel per chunk */
    size_t native_bytes;
    void *part_native;     /* backward weights: one kernel in oneDNN's layout per chunk */
    const char *in0, *in1; /* images of c->es bytes per element */
    char *out;             /* backward weights: a float32 HWIO kernel */
    const float *bias;     /* forward with v.bias */
    atomic_bool failed;
} call;

static int64_t chunk_start(const call *c, int64_t i)
{
    int64_t base = c->g.n / c->chunks, extra = c->g.n % c->chunks;
    return i * base + (i < extra ? i : extra);
}

/* The primitive for chunk i: p[1] for the first n % chunks chunks (base + 1 images). */
static const prim *chunk_prim(const call *c, int64_t i)
{
    return c->g.n % c->chunks && i < c->g.n % c->chunks ? c->p[1] : c->p[0];
}

static bool run_chunk(call *c, int64_t i)
{
    const prim *p = chunk_prim(c, i);
    int which = p == c->p[1] && c->p[1] != c->p[0];
    int64_t n0 = chunk_start(c, i);
    const tg_conv_geom *g = &c->g;
    size_t img = c->es * (size_t)(g->h * g->w * g->c), out = c->es * (size_t)(g->oh * g->ow * g->f);
    void *scratch = thread_buffer(SCRATCH, p->scratch_bytes);
    if (!scratch)
        return false;
    if (c->kind == FORWARD) {
        const int args[] = {ARG_SRC, ARG_WEIGHTS, ARG_DST, ARG_SCRATCHPAD, ARG_BIAS};
        const md *mds[] = {&p->image, &p->wmd, &p->out, &p->scratch, &p->bias};
        void *data[] = {(void *)(c->in0 + n0 * img), c->weights[which], c->out + n0 * out, scratch, (void *)c->bias};
        return execute(p->exec, c->v.bias ? 5 : 4, args, mds, data, c->omp_threads);
    }
    if (c->kind == BACKWARD_DATA) {
        const int args[] = {ARG_DIFF_DST, ARG_WEIGHTS, ARG_DIFF_SRC, ARG_SCRATCHPAD};
        const md *mds[] = {&p->out, &p->wmd, &p->image, &p->scratch};
        void *data[] = {(void *)(c->in0 + n0 * out), c->weights[which], c->out + n0 * img, scratch};
        return execute(p->exec, 4, args, mds, data, c->omp_threads);
    }
    /* backward weights: this chunk's sum into its own kernel, then to HWIO */
    size_t ksize = (size_t)(g->kh * g->kw * g->c * g->f);
    float *hwio = c->chunks == 1 ? (float *)c->out : c->parts + (size_t)i * ksize;
    void *native = p->reorder ? (char *)c->part_native + (size_t)i * c->native_bytes : (void *)hwio;
    const int args[] = {ARG_SRC, ARG_DIFF_DST, ARG_DIFF_WEIGHTS, ARG_SCRATCHPAD};
    const md *mds[] = {&p->image, &p->out, &p->wmd, &p->scratch};
    void *data[] = {(void *)(c->in0 + n0 * img), (void *)(c->in1 + n0 * out), native, scratch};
    if (!execute(p->exec, 4, args, mds, data, c->omp_threads))
        return false;
    if (!p->reorder)
        return true;
    const int rargs[] = {ARG_FROM, ARG_TO};
    const md *rmds[] = {&p->wmd, &p->hwio};
    void *rdata[] = {native, hwio};
    return execute(p->reorder, 2, rargs, rmds, rdata, 1);
}

static void chunks_fn(void *ctx, int64_t i0, int64_t i1)
{
    call *c = ctx;
    for (int64_t i = i0; i < i1; i++)
        if (!atomic_load_explicit(&c->failed, memory_order_relaxed) && !run_chunk(c, i))
            atomic_store(&c->failed, true);
}

/* Chunks, primitives and buffers for a call; false if oneDNN cannot take it. */
static bool plan(call *c, kind k, const tg_conv_geom *g, const variant *v)
{
    if (!tg__onednn_active() || g->n < 1 || g->h < 1 || g->w < 1 || g->c < 1 || g->f < 1 || g->oh < 1 || g->ow < 1)
        return false;
    int threads = tg__pool_threads();
    *c = (call){.kind = k,
                .g = *g,
                .v = *v,
                .es = v->dt == DT_BF16 ? 2 : 4,
                .chunks = dnnl.omp_mode ? 1 : (int)(g->n < threads ? g->n : threads)};
    c->omp_threads = dnnl.omp_mode ? threads : 1;
    atomic_init(&c->failed, false);
    tg_conv_geom part = *g;
    part.n = g->n / c->chunks;
    c->p[0] = c->p[1] = find_prim(k, &part, v, c->omp_threads);
    if (g->n % c->chunks) {
        part.n++;
        c->p[1] = find_prim(k, &part, v, c->omp_threads);
    }
    return c->p[0] && c->p[1];
}

/* Forward and backward data: the kernel in each primitive's layout (the caller's HWIO
 * kernel itself where the primitive takes it as it is). The layout is kept per thread
 * with a copy of the kernel it came from: a call with the same values (a kernel between
 * two updates: the forward and the backward-data call of a step, or evaluation) reuses it,
 * for the price of comparing the values instead of a oneDNN reorder. */
static bool prepare_weights(call *c, const void *k)
{
    for (int i = 0; i < 2; i++) {
        const prim *p = c->p[i];
        c->weights[i] = (void *)k;
        if (i == 1 && p == c->p[0])
            c->weights[1] = c->weights[0];
        if (!p->reorder || (i == 1 && p == c->p[0]))
            continue;
        size_t hwio_bytes = p->hwio_bytes;
        void *kept = thread_buffer(KEPT0 + i, hwio_bytes);
        if (!kept || !(c->weights[i] = thread_buffer(WEIGHTS0 + i, p->wbytes)))
            return false;
        if (weights_of[i] == p && !memcmp(kept, k, hwio_bytes))
            continue; /* the same kernel as this thread's last call: its layout is still there */
        weights_of[i] = NULL;
        const int args[] = {ARG_FROM, ARG_TO};
        const md *mds[] = {&p->hwio, &p->wmd};
        void *data[] = {(void *)k, c->weights[i]};
        if (!execute(p->reorder, 2, args, mds, data, 1))
            return false;
        memcpy(kept, k, hwio_bytes);
        weights_of[i] = p;
    }
    return true;
}

/* Runs the chunks; the partial kernels of backward weights are summed in chunk order. */
static bool run(call *c)
{
    if (c->chunks == 1)
        chunks_fn(c, 0, 1);
    else
        tg__parallel_for(c->chunks, 1, chunks_fn, c);
    bool ok = !atomic_load(&c->failed);
    if (ok && c->kind == BACKWARD_WEIGHTS && c->chunks > 1) {
        const tg_conv_geom *g = &c->g;
        size_t ksize = (size_t)(g->kh * g->kw * g->c * g->f);
        for (size_t j = 0; j < ksize; j++) {
            float s = c->parts[j];
            for (int i = 1; i < c->chunks; i++)
                s += c->parts[(size_t)i * ksize + j];
            ((float *)c->out)[j] = s;
        }
    }
    return ok;
}

static const variant f32 = {.dt = DT_F32}, bf16 = {.dt = DT_BF16};

static bool forward(const tg_conv_geom *g, const variant *v, const void *x, const void *k, const float *bias, void *y)
{
    call c;
    if (!plan(&c, FORWARD, g, v))
        return false;
    c.in0 = x, c.out = y, c.bias = bias;
    return prepare_weights(&c, k) && run(&c);
}

/* Images of under 4 channels go the portable way: oneDNN 2.6's backward-data kernel took
 * twice the portable path's time for one channel (28x28, 32 filters, batch 32). */
static bool backward_data(const tg_conv_geom *g, const variant *v, const void *dy, const void *k, void *dx)
{
    call c;
    if (g->c < 4 || !plan(&c, BACKWARD_DATA, g, v))
        return false;
    c.in0 = dy, c.out = dx;
    return prepare_weights(&c, k) && run(&c);
}

static bool backward_weights(const tg_conv_geom *g, const variant *v, const void *x, const void *dy, float *dk)
{
    call c;
    if (!plan(&c, BACKWARD_WEIGHTS, g, v))
        return false;
    c.in0 = x, c.in1 = dy, c.out = (char *)dk;
    size_t ksize = (size_t)(g->kh * g->kw * g->c * g->f);
    size_t native = c.p[0]->wbytes > c.p[1]->wbytes ? c.p[0]->wbytes : c.p[1]->wbytes;
    c.native_bytes = native;
    if ((c.chunks > 1 && !(c.parts = thread_buffer(PARTS, sizeof(float) * ksize * (size_t)c.chunks))) ||
        ((c.p[0]->reorder || c.p[1]->reorder) &&
         !(c.part_native = thread_buffer(PARTS_NATIVE, native * (size_t)c.chunks))))
        return false;
    return run(&c);
}

bool tg__onednn_conv_forward(const tg_conv_geom *g, const float *x, const float *k, float *y)
{
    return forward(g, &f32, x, k, NULL, y);
}

bool tg__onednn_conv_forward_bias(const tg_conv_geom *g, const float *x, const float *k, const float *bias, bool relu,
                                  float *y)
{
    return forward(g, &(variant){.dt = DT_F32, .bias = true, .relu = relu}, x, k, bias, y);
}

bool tg__onednn_conv_backward_data(const tg_conv_geom *g, const float *dy, const float *k, float *dx)
{
    return backward_data(g, &f32, dy, k, dx);
}

bool tg__onednn_conv_backward_weights(const tg_conv_geom *g, const float *x, const float *dy, float *dk)
{
    return backward_weights(g, &f32, x, dy, dk);
}

bool tg__onednn_conv_forward_bf16(const tg_conv_geom *g, const uint16_t *x, const uint16_t *k, uint16_t *y)
{
    return forward(g, &bf16, x, k, NULL, y);
}

bool tg__onednn_conv_backward_data_bf16(const tg_conv_geom *g, const uint16_t *dy, const uint16_t *k, uint16_t *dx)
{
    return backward_data(g, &bf16, dy, k, dx);
}

bool tg__onednn_conv_backward_weights_bf16(const tg_conv_geom *g, const uint16_t *x, const uint16_t *dy, float *dk)
{
    return backward_weights(g, &bf16, x, dy, dk);
}

/* ---- bfloat16 matrix products ------------------------------------------------------------------ */
/* One primitive per block shape: the rows of a block, the product's n and k, the
 * transposes and the row strides (a block of rows keeps the whole product's strides). */
typedef struct mm_key {
    int64_t m, n, k, lda, ldb, ldc;
    int64_t ta, tb; /* int64 for a padding-free key compared with memcmp */
} mm_key;

typedef struct mm_prim {
    mm_key key;
    void *exec;
    md a, b, c, scratch;
    size_t scratch_bytes;
} mm_prim;

static struct {
    pthread_mutex_t mu;
    mm_prim *e[CACHE_MAX];
    int n;
} mm_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool mm_build(const mm_key *k, mm_prim *p)
{
    const dims ad = {k->m, k->k}, bd = {k->k, k->n}, cd = {k->m, k->n};
    const dims as = {k->ta ? 1 : k->lda, k->ta ? k->lda : 1}, bs = {k->tb ? 1 : k->ldb, k->tb ? k->ldb : 1},
               cs = {k->ldc, 1};
    if (dnnl.f.md_init_by_strides(&p->a, 2, ad, DT_BF16, as) != DNNL_OK ||
        dnnl.f.md_init_by_strides(&p->b, 2, bd, DT_BF16, bs) != DNNL_OK ||
        dnnl.f.md_init_by_strides(&p->c, 2, cd, DT_BF16, cs) != DNNL_OK)
        return false;
    void *attr = NULL, *pd = NULL;
    op_desc d;
    bool ok = dnnl.f.attr_create(&attr) == DNNL_OK &&
              dnnl.f.attr_set_scratchpad_mode(attr, SCRATCHPAD_USER) == DNNL_OK &&
              dnnl.f.matmul_init(&d, &p->a, &p->b, NULL, &p->c) == DNNL_OK &&
              dnnl.f.pd_create(&pd, &d, attr, dnnl.engine, NULL) == DNNL_OK;
    const md *s = ok ? dnnl.f.pd_query_md(pd, QUERY_SCRATCHPAD_MD, 0) : NULL;
    if ((ok = s != NULL)) {
        memcpy(&p->scratch, s, sizeof p->scratch);
        p->scratch_bytes = dnnl.f.md_get_size(&p->scratch);
        ok = dnnl.f.primitive_create(&p->exec, pd) == DNNL_OK;
    }
    if (pd)
        dnnl.f.pd_destroy(pd);
    if (attr)
        dnnl.f.attr_destroy(attr);
    return ok;
}

static const mm_prim *mm_find(const mm_key *k, int omp_threads)
{
    pthread_mutex_lock(&mm_cache.mu);
    mm_prim *found = NULL;
    for (int i = 0; i < mm_cache.n && !found; i++)
        if (!memcmp(&mm_cache.e[i]->key, k, sizeof *k))
            found = mm_cache.e[i];
    if (!found && mm_cache.n < CACHE_MAX && (found = calloc(1, sizeof *found))) {
        found->key = *k;
        int kept = dnnl.f.omp_get_max_threads ? dnnl.f.omp_get_max_threads() : 0;
        if (kept && kept != omp_threads)
            dnnl.f.omp_set_num_threads(omp_threads);
        if (!mm_build(k, found))
            found->exec = NULL;
        if (kept && kept != omp_threads)
            dnnl.f.omp_set_num_threads(kept);
        mm_cache.e[mm_cache.n++] = found;
    }
    pthread_mutex_unlock(&mm_cache.mu);
    return found && found->exec ? found : NULL;
}

typedef struct mm_call {
    bool ta;
    int64_t M, chunks, lda, ldc;
    int omp_threads;
    const mm_prim *p[2]; /* blocks of base and base + 1 rows */
    const uint16_t *A, *B;
    uint16_t *C;
    atomic_bool failed;
} mm_call;

static void mm_chunks(void *ctx, int64_t i0, int64_t i1)
{
    mm_call *c = ctx;
    int64_t base = c->M / c->chunks, extra = c->M % c->chunks;
    for (int64_t i = i0; i < i1 && !atomic_load_explicit(&c->failed, memory_order_relaxed); i++) {
        int64_t r0 = i * base + (i < extra ? i : extra);
        const mm_prim *p = i < extra ? c->p[1] : c->p[0];
        void *scratch = thread_buffer(SCRATCH, p->scratch_bytes);
        const uint16_t *a = c->A + (c->ta ? r0 : r0 * c->lda);
        const int args[] = {ARG_SRC, ARG_WEIGHTS, ARG_DST, ARG_SCRATCHPAD};
        const md *mds[] = {&p->a, &p->b, &p->c, &p->scratch};
        void *data[] = {(void *)a, (void *)c->B, c->C + r0 * c->ldc, scratch};
        if (!scratch || !execute(p->exec, 4, args, mds, data, c->omp_threads))
            atomic_store(&c->failed, true);
    }
}

bool tg__onednn_matmul_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                            const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc)
{
    if (!tg__onednn_active() || M < 1 || N < 1 || K < 1)
        return false;
    int threads = tg__pool_threads();
    /* a million multiply-adds or more: one block of rows per thread, as gemm.c splits */
    int64_t chunks = dnnl.omp_mode || M * N * K < (1 << 20) ? 1 : M < threads ? M : threads;
    mm_call c = {.ta = ta, .M = M, .chunks = chunks, .lda = lda, .ldc = ldc, .A = A, .B = B, .C = C};
    c.omp_threads = dnnl.omp_mode ? threads : 1;
    atomic_init(&c.failed, false);
    mm_key k = {.m = M / chunks, .n = N, .k = K, .lda = lda, .ldb = ldb, .ldc = ldc, .ta = ta, .tb = tb};
    c.p[0] = c.p[1] = mm_find(&k, c.omp_threads);
    if (M % chunks) {
        k.m++;
        c.p[1] = mm_find(&k, c.omp_threads);
    }
    if (!c.p[0] || !c.p[1])
        return false;
    if (chunks == 1)
        mm_chunks(&c, 0, 1);
    else
        tg__parallel_for(chunks, 1, mm_chunks, &c);
    return !atomic_load(&c.failed);
}
