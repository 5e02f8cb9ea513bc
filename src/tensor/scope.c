/* Memory scopes: growable arenas that own every tensor made while they are innermost.
 *
 * Tensor headers come from a per-thread pool and are never returned to the system
 * while the thread runs: a header whose scope has ended is marked dead, so a stale
 * pointer is reported as an error instead of reading freed memory. Dead headers are
 * reused first-in first-out, which keeps a freed header recognisable for as long as
 * possible. Arena chunks are cached, so a training loop that opens and closes one scope
 * per step stops calling malloc after its first step.
 *
 * When a thread ends, its cached chunks and scopes are freed, and its headers go to a
 * process-wide pool that threads started later draw from: a header may outlive its
 * thread (a variable it made) or still be read through a stale pointer, so slabs are
 * never freed, but they are reused. */
#include <pthread.h>
#include <stdlib.h>

#include "tensor_impl.h"

#define CHUNK_MIN       (64u << 10)
#define CHUNK_CACHE_MAX ((size_t)512 << 20)
#define HEADER_SLAB     512
#define ALIGN           64

typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    _Alignas(ALIGN) unsigned char data[];
} chunk;

struct tg_scope {
    tg_scope *parent;
    chunk *chunks;      /* current chunk first */
    tg_tensor *tensors; /* headers owned by this scope */
    size_t bytes;       /* handed out by tg__arena_alloc */
    tg_loc loc;
};

typedef struct slab {
    struct slab *next;
    tg_tensor headers[HEADER_SLAB];
} slab;

static _Thread_local tg_context ctx;
static _Thread_local chunk *chunk_cache;
static _Thread_local size_t chunk_cache_bytes;
static _Thread_local tg_tensor *free_head, *free_tail;
static _Thread_local slab *slabs;
static _Thread_local tg_scope *scope_cache;
static _Thread_local size_t arena_live, arena_peak; /* tg__arena_alloc's bytes in open scopes */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static slab *pool_slabs;                 /* the slabs of ended threads */
static tg_tensor *pool_head, *pool_tail; /* their free headers */

tg_context *tg__ctx(void) { return &ctx; }

/* ---- the end of a thread ----------------------------------------------------------------- */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static _Thread_local bool exit_registered;

static void thread_exit(void *unused)
{
    (void)unused;
    for (chunk *c = chunk_cache, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    for (tg_scope *s = scope_cache, *n; s; s = n) {
        n = s->parent;
        free(s);
    }
    chunk_cache = NULL;
    chunk_cache_bytes = 0;
    scope_cache = NULL;
    pthread_mutex_lock(&pool_lock);
    while (slabs) {
        slab *s = slabs;
        slabs = s->next;
        s->next = pool_slabs;
        pool_slabs = s;
    }
    if (free_head) {
        if (pool_tail)
            pool_tail->next = free_head;
        else
            pool_head = free_head;
        pool_tail = free_tail;
    }
    pthread_mutex_unlock(&pool_lock);
    free_head = free_tail = NULL;
}

static void make_exit_key(void) { pthread_key_create(&exit_key, thread_exit); }

/* Called before a thread first keeps memory in its caches. */
static void register_thread(void)
{
    if (exit_registered)
        return;
    exit_registered = true;
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, &exit_registered);
}

/* The free headers of ended threads, when there are any. */
static void adopt_pool(void)
{
    pthread_mutex_lock(&pool_lock);
    free_head = pool_head;
    free_tail = pool_tail;
    pool_head = pool_tail = NULL;
    pthread_mutex_unlock(&pool_lock);
}

/* ---- headers ------------------------------------------------------------------------- */
tg_tensor *tg__header_alloc(void)
{
    if (!free_head) {
        register_thread();
        adopt_pool();
    }
    if (!free_head) {
        slab *s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        s->next = slabs;
        slabs = s;
        for (int i = 0; i < HEADER_SLAB; i++)
            tg__header_release(&s->headers[i]);
    }
    tg_tensor *t = free_head;
    free_head = t->next;
    if (!free_head)
        free_tail = NULL;
    /* Field by field: cheaper than clearing the whole header, whose shape the caller sets. */
    t->state = TG_HEADER_ALIVE;
    t->flags = 0;
    t->rank = 0;
    t->size = 0;
    t->data = NULL;
    t->scope = NULL;
    t->var = NULL;
    t->loc = (tg_loc){0};
    t->op = 0;
    t->next = t->snap_prev = t->snap_next = NULL;
    t->stamp = 0;
    t->src[0] = t->src[1] = NULL;
    t->built_from = 0;
    return t;
}

void tg__header_release(tg_tensor *t)
{
    t->state = TG_HEADER_DEAD;
    t->gen++;
    t->next = NULL;
    if (free_tail)
        free_tail->next = t;
    else
        free_head = t;
    free_tail = t;
}

/* ---- chunks ---------------------------------------------------------------------------- */
static chunk *chunk_get(size_t need)
{
    for (chunk **p = &chunk_cache; *p; p = &(*p)->next) {
        if ((*p)->cap >= need) {
            chunk *c = *p;
            *p = c->next;
            chunk_cache_bytes -= c->cap;
            c->used = 0;
            return c;
        }
    }
    size_t cap = need < CHUNK_MIN ? CHUNK_MIN : need, total;
    if (tg__size_add_overflow(sizeof(chunk) + ALIGN - 1, cap, &total))
        return NULL;
    register_thread();
    chunk *c = aligned_alloc(ALIGN, total / ALIGN * ALIGN);
    if (!c)
        return NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

static void chunk_put(chunk *c)
{
    if (chunk_cache_bytes + c->cap > CHUNK_CACHE_MAX) {
        free(c);
        return;
    }
    c->next = chunk_cache;
    chunk_cache = c;
    chunk_cache_bytes += c->cap;
}

void *tg__arena_alloc(tg_scope *s, size_t bytes)
{
    if (tg__size_add_overflow(bytes, ALIGN - 1, &bytes))
        return NULL;
    bytes = bytes / ALIGN * ALIGN;
    chunk *c = s->chunks;
    if (!c || c->cap - c->used < bytes) {
        size_t grow = CHUNK_MIN;
        if (c && tg__size_mul_overflow(c->cap, 2, &grow))
            grow = bytes;
        chunk *n = chunk_get(bytes > grow ? bytes : grow);
        if (!n)
            return NULL;
        n->next = c;
        s->chunks = n;
        c = n;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    s->bytes += bytes;
    if ((arena_live += bytes) > arena_peak)
        arena_peak = arena_live;
    return p;
}

size_t tg__arena_peak_reset(void) { return arena_peak = arena_live; }
size_t tg__arena_peak(void) { return arena_peak; }

/* ---- scopes ----------------------------------------------------------------------------- */
tg_scope *tg_scope_begin_at(tg_loc loc)
{
    tg_scope *s = scope_cache;
    if (s)
        scope_cache = s->parent;
    else if (register_thread(), !(s = malloc(sizeof *s)))
        return tg__fail(loc, "tg_scope_begin: out of memory");
    *s = (tg_scope){.parent = ctx.scope, .loc = loc};
    ctx.scope = s;
    return s;
}

int tg_scope_end_at(tg_loc loc, tg_scope *s)
{
    if (!s)
        return tg__failf(loc, "tg_scope_end: `scope` is NULL");
    if (s != ctx.scope) {
        if (!ctx.scope)
            return tg__failf(loc, "tg_scope_end: no scope is open (was this scope already ended?)");
        return tg__failf(loc,
                         "tg_scope_end: this is not the innermost open scope (that one began at %s:%d); "
                         "end scopes in the reverse order of tg_scope_begin",
                         ctx.scope->loc.file, ctx.scope->loc.line);
    }
    for (tg_tensor *t = s->tensors, *next; t; t = next) {
        next = t->next;
        if (t->flags & TG_T_SNAPSHOT)
            tg__snapshot_unlink(t);
        tg__header_release(t);
    }
    for (chunk *c = s->chunks, *next; c; c = next) {
        next = c->next;
        chunk_put(c);
    }
    arena_live -= s->bytes;
    ctx.scope = s->parent;
    s->parent = scope_cache;
    scope_cache = s;
    return 0;
}

static tg_tensor *header_in_scope(tg_loc loc)
{
    if (!ctx.scope)
        return tg__fail(loc, "no scope is open: call tg_scope_begin() before making tensors, "
                             "and tg_scope_end() to free them");
    tg_tensor *t = tg__header_alloc();
    if (!t)
        return tg__fail(loc, "out of memory for a tensor header");
    t->scope = ctx.scope;
    t->loc = loc;
    t->next = ctx.scope->tensors;
    ctx.scope->tensors = t;
    if (ctx.n_recording == 0)
        t->flags |= TG_T_UNRECORDED;
    t->stamp = ++ctx.clock;
    return t;
}

static TG_HOT_INLINE bool set_shape(tg_loc loc, tg_tensor *t, const tg_shape *shape)
{
    if (shape->rank < 0 || shape->rank > TG_MAX_RANK) {
        tg__fail(loc, "rank %d is not supported: tapegrad tensors have rank 0 to %d", shape->rank, TG_MAX_RANK);
        return false;
    }
    for (int i = 0; i < shape->rank; i++)
        if (shape->dims[i] < 0) {
            tg__fail(loc, "dimension %d of a shape is negative (%lld)", i, (long long)shape->dims[i]);
            return false;
        }
    int64_t size = tg__shape_size(shape);
    if (size < 0) {
        char s[TG_SHAPE_STR_MAX];
        tg__fail(loc, "shape %s is too large: its dims multiply past %lld, more elements than memory can hold",
                 tg__shape_str(shape, s, sizeof s), (long long)TG_MAX_ELEMENTS);
        return false;
    }
    memcpy(t->shape, shape->dims, sizeof(int64_t) * (size_t)shape->rank);
    t->rank = shape->rank;
    t->size = size;
    return true;
}

tg_tensor *tg__tensor_new(tg_loc loc, tg_dtype dtype, const tg_shape *shape)
{
    if ((unsigned)dtype >= TG_DTYPE_COUNT)
        return tg__fail(loc, "unknown dtype %d", (int)dtype);
    tg_tensor *t = header_in_scope(loc);
    if (!t || !set_shape(loc, t, shape))
        return NULL; /* the header stays in the scope and is freed with it */
    t->dtype = dtype;
    size_t bytes = (size_t)t->size * tg__dsize(dtype);
    t->data = tg__arena_alloc(ctx.scope, bytes ? bytes : 1);
    if (!t->data)
        return tg__fail(loc, "out of memory for a tensor of %zu bytes", bytes);
    return t;
}

tg_tensor *tg__tensor_abstract(tg_loc loc, tg_dtype dtype, const tg_shape *shape)
{
    tg_tensor *t = header_in_scope(loc);
    if (!t || !set_shape(loc, t, shape))
        return NULL;
    t->dtype = dtype;
    return t; /* data stays NULL: any read crashes at once */
}

tg_tensor *tg__tensor_view(tg_loc loc, const tg_tensor *src, const tg_shape *shape)
{
    tg_tensor *t = header_in_scope(loc);
    if (!t || !set_shape(loc, t, shape))
        return NULL;
    t->dtype = src->dtype;
    t->data = src->data;
    return t;
}

tg_tensor *tg__tensor_wrap(tg_loc loc, tg_dtype dtype, const tg_shape *shape, void *data)
{
    if ((unsigned)dtype >= TG_DTYPE_COUNT)
        return tg__fail(loc, "unknown dtype %d", (int)dtype);
    tg_tensor *t = header_in_scope(loc);
    if (!t || !set_shape(loc, t, shape))
        return NULL;
    t->dtype = dtype;
    t->data = data;
    return t;
}
