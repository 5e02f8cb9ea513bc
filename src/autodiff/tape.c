/* GradientTape: beginning and ending the block, watching, and recording ops. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "tape_impl.h"

struct tape_chunk {
    tape_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

#define TAPE_CHUNK_MIN (16u << 10)

/* Tape structs are recycled, never returned to the system, so a loop making one tape
 * per step allocates nothing once warm. When a thread ends, its freed tapes go to a pool
 * that threads started later draw from.
 *
 * Because a struct is recycled, its address cannot be the user's handle: a handle kept
 * after tg_tape_free would name the next tape made from that struct. A handle is the
 * struct's slot in a process-wide table (structs keep their slot for ever) and the
 * struct's generation, bumped by every free; a stale handle no longer matches its
 * struct's generation and is refused, whatever the struct does now. Handles are multiples
 * of 8 that never point to memory, so nothing can mistake one for a struct. */
static _Thread_local tg_tape *free_tapes;
static _Thread_local tg_tape *live_tapes;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static tg_tape *pool_tapes;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

enum { SLOT_BITS = 20, CHUNK_BITS = 10, TAG_BITS = 4, TAG = 8 };
/* The generation bits a handle holds: 40 on 64-bit systems, so a handle is refused
 * until its struct has been reused 2^40 times. */
#define GEN_MASK ((uintptr_t)-1 >> (SLOT_BITS + TAG_BITS))
static _Atomic(tg_tape **) slot_chunks[1u << (SLOT_BITS - CHUNK_BITS)];
static uint32_t n_slots; /* under pool_lock */

/* Gives a new struct its slot (under pool_lock); false when the table is full. */
static bool assign_slot(tg_tape *t)
{
    if (n_slots == 1u << SLOT_BITS)
        return false;
    uint32_t k = n_slots >> CHUNK_BITS;
    tg_tape **chunk = atomic_load_explicit(&slot_chunks[k], memory_order_relaxed);
    if (!chunk) {
        if (!(chunk = calloc(1u << CHUNK_BITS, sizeof *chunk)))
            return false;
        atomic_store_explicit(&slot_chunks[k], chunk, memory_order_release);
    }
    t->slot = n_slots++;
    chunk[t->slot & ((1u << CHUNK_BITS) - 1)] = t;
    return true;
}

static tg_tape *handle_of(const tg_tape *t)
{
    return (tg_tape *)((t->gen & GEN_MASK) << (SLOT_BITS + TAG_BITS) | (uintptr_t)t->slot << TAG_BITS | TAG);
}

/* The live tape a handle names, or NULL (NULL, not a handle, or freed since). */
static tg_tape *struct_of(const tg_tape *h)
{
    uintptr_t v = (uintptr_t)h;
    if ((v & ((1u << TAG_BITS) - 1)) != TAG)
        return NULL;
    uint32_t slot = (uint32_t)(v >> TAG_BITS) & ((1u << SLOT_BITS) - 1);
    tg_tape **chunk = atomic_load_explicit(&slot_chunks[slot >> CHUNK_BITS], memory_order_acquire);
    tg_tape *t = chunk ? chunk[slot & ((1u << CHUNK_BITS) - 1)] : NULL;
    if (!t || t->magic != TG_TAPE_ALIVE || (t->gen & GEN_MASK) != v >> (SLOT_BITS + TAG_BITS))
        return NULL;
    return t;
}

tg_tape *tg__live_tapes(void) { return live_tapes; }

static void thread_exit(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&pool_lock);
    while (free_tapes) {
        tg_tape *t = free_tapes;
        free_tapes = t->next_free;
        t->next_free = pool_tapes;
        pool_tapes = t;
    }
    pthread_mutex_unlock(&pool_lock);
}

static void make_exit_key(void) { pthread_key_create(&exit_key, thread_exit); }

/* A recycled tape struct: this thread's, an ended thread's, or a new one. */
static tg_tape *tape_struct(void)
{
    tg_tape *t = free_tapes;
    if (t) {
        free_tapes = t->next_free;
        return t;
    }
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, &free_tapes); /* this thread keeps tapes from now on */
    pthread_mutex_lock(&pool_lock);
    if ((t = pool_tapes))
        pool_tapes = t->next_free;
    pthread_mutex_unlock(&pool_lock);
    if (t)
        return t;
    if (!(t = calloc(1, sizeof *t))) /* zeroed: no buffers to keep (tg_tape_begin) */
        return NULL;
    pthread_mutex_lock(&pool_lock);
    bool ok = assign_slot(t);
    pthread_mutex_unlock(&pool_lock);
    if (!ok)
        free(t);
    return ok ? t : NULL;
}

static void *tape_alloc(tg_tape *t, size_t bytes)
{
    if (tg__size_add_overflow(bytes, 15, &bytes))
        return NULL;
    bytes &= ~(size_t)15;
    tape_chunk *c = t->chunks;
    if (!c || c->cap - c->used < bytes) {
        size_t cap = TAPE_CHUNK_MIN;
        if (c && tg__size_mul_overflow(c->cap, 2, &cap))
            cap = bytes;
        if (cap < bytes)
            cap = bytes;
        size_t total;
        tape_chunk *n = tg__size_add_overflow(sizeof *n, cap, &total) ? NULL : malloc(total);
        if (!n)
            return NULL;
        n->next = c;
        n->cap = cap;
        n->used = 0;
        t->chunks = c = n;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    return p;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

/* ---- the tensor -> entry map --------------------------------------------------------------- */
static size_t slot_of(const tg_tensor *x, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)x * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

tg_entry *tg__tape_lookup(const tg_tape *t, const tg_tensor *x)
{
    if (!t->map_count)
        return NULL;
    for (size_t i = slot_of(x, t->map_cap);; i = (i + 1) & (t->map_cap - 1)) {
        tg_entry *e = t->map[i];
        if (!e)
            return NULL;
        if (e->t == x && e->gen == x->gen)
            return e;
    }
}

static bool map_insert(tg_tape *t, tg_entry *e)
{
    if ((t->map_count + 1) * 2 > t->map_cap) {
        size_t cap = t->map_cap ? t->map_cap * 2 : 64;
        tg_entry **m = calloc(cap, sizeof *m);
        if (!m)
            return false;
        for (size_t i = 0; i < t->map_cap; i++) {
            tg_entry *o = t->map[i];
            if (!o)
                continue;
            size_t j = slot_of(o->t, cap);
            while (m[j])
                j = (j + 1) & (cap - 1);
            m[j] = o;
        }
        free(t->map);
        t->map = m;
        t->map_cap = cap;
    }
    size_t i = slot_of(e->t, t->map_cap);
    while (t->map[i])
        i = (i + 1) & (t->map_cap - 1);
    t->map[i] = e;
    t->map_count++;
    return true;
}

static tg_entry *add_entry(tg_tape *t, tg_tensor *x, tg_node *node, tg_loc loc)
{
    tg_entry *e = tape_alloc(t, sizeof *e);
    if (!e)
        return NULL;
    *e = (tg_entry){.t = x, .gen = x->gen, .node = node, .loc = loc};
    return map_insert(t, e) ? e : NULL;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */
tg_tape *tg__tape_get(tg_loc loc, const char *func, const tg_tape *handle)
{
    if (!handle)
        return tg__null_arg(loc, func, "tape");
    tg_tape *t = struct_of(handle);
    if (!t)
        return tg__fail(loc,
                        "%s: the tape was already freed with tg_tape_free (or is not a tape): begin a new "
                        "one with tg_tape_begin",
                        func);
    return t;
}

static void recount_recording(void)
{
    tg_context *ctx = tg__ctx();
    ctx->n_recording = 0;
    for (int i = 0; i < ctx->n_active; i++)
        ctx->n_recording += !ctx->active[i]->paused;
}

tg_tape *tg_tape_begin_at(tg_loc loc, tg_tape_opts o)
{
    tg_context *ctx = tg__ctx();
    if (ctx->n_active == TG_MAX_TAPES)
        return tg__fail(loc, "tg_tape_begin: %d tapes are already recording on this thread; end one first",
                        TG_MAX_TAPES);
    if (!ctx->check_from_env) {
        ctx->check_from_env = true;
        ctx->check |= tg__env_check();
    }
    tg_tape *t = tape_struct();
    if (!t)
        return tg__fail(loc, "tg_tape_begin: out of memory");
    tg_tape kept = *t; /* the empty buffers a freed tape left in its struct (tg__tape_clear) */
    *t = (tg_tape){.magic = TG_TAPE_ALIVE,
                   .loc = loc,
                   .persistent = o.persistent,
                   .watch_accessed = o.watch_accessed_variables,
                   .active = true,
                   .begin_stamp = ++ctx->clock,
                   .next_live = live_tapes,
                   .chunks = kept.chunks,
                   .map = kept.map,
                   .map_cap = kept.map_cap,
                   .nodes = kept.nodes,
                   .cap_nodes = kept.cap_nodes,
                   .reads = kept.reads,
                   .cap_reads = kept.cap_reads,
                   .watched = kept.watched,
                   .watched_gen = kept.watched_gen,
                   .cap_watched = kept.cap_watched,
                   .unwatched = kept.unwatched,
                   .cap_unwatched = kept.cap_unwatched,
                   .slot = kept.slot,
                   .gen = kept.gen};
    if (live_tapes)
        live_tapes->prev_live = t;
    live_tapes = t;
    ctx->active[ctx->n_active++] = t;
    recount_recording();
    return handle_of(t);
}

void tg__tape_deactivate(tg_tape *t, tg_loc loc)
{
    tg_context *ctx = tg__ctx();
    if (t->paused)
        t->pauses[t->n_pauses - 1].to = ctx->clock + 1;
    t->end_stamp = ++ctx->clock;
    t->end_loc = loc;
    for (int i = 0; i < ctx->n_active; i++) {
        if (ctx->active[i] != t)
            continue;
        memmove(&ctx->active[i], &ctx->active[i + 1], sizeof(tg_tape *) * (size_t)(ctx->n_active - i - 1));
        ctx->n_active--;
        break;
    }
    t->active = false;
    t->paused = false;
    recount_recording();
}

int tg_tape_end_at(tg_loc loc, tg_tape *h)
{
    tg_tape *t = tg__tape_get(loc, "tg_tape_end", h);
    if (!t)
        return -1;
    if (!t->active)
        return tg__failf(loc, "tg_tape_end: the tape begun at %s:%d is not recording (already ended?)", t->loc.file,
                         t->loc.line);
    tg_context *ctx = tg__ctx();
    tg_tape *inner = ctx->active[ctx->n_active - 1];
    if (inner != t)
        return tg__failf(loc,
                         "tg_tape_end: the tape begun at %s:%d is still recording inside this one; "
                         "end the inner tape first",
                         inner->loc.file, inner->loc.line);
    tg__tape_deactivate(t, loc);
    return 0;
}

/* Frees an array of more than KEEP_SLOTS entries; a kept one is emptied by its count. */
enum { KEEP_SLOTS = 1 << 16 };
#define KEEP_CHUNK ((size_t)1 << 20)
#define DROP_IF_BIG(arr, cap)     \
    do {                          \
        if ((cap) > KEEP_SLOTS) { \
            free(arr);            \
            (arr) = NULL;         \
            (cap) = 0;            \
        }                         \
    } while (0)

/* Forgets every node and entry but keeps the newest chunk and the arrays (up to a bound)
 * for the next recording, by this tape (a reset) or by the next tape made from its struct:
 * a loop with one tape per step stops calling malloc after its first step. */
void tg__tape_clear(tg_tape *t)
{
    tape_chunk *keep = t->chunks && t->chunks->cap <= KEEP_CHUNK ? t->chunks : NULL;
    for (tape_chunk *c = t->chunks, *n; c; c = n) {
        n = c->next;
        if (c != keep)
            free(c);
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    t->chunks = keep;
    DROP_IF_BIG(t->map, t->map_cap);
    if (t->map)
        memset(t->map, 0, sizeof *t->map * t->map_cap);
    DROP_IF_BIG(t->nodes, t->cap_nodes);
    DROP_IF_BIG(t->reads, t->cap_reads);
    DROP_IF_BIG(t->unwatched, t->cap_unwatched);
    if (t->cap_watched > KEEP_SLOTS) {
        free(t->watched_gen);
        t->watched_gen = NULL;
    }
    DROP_IF_BIG(t->watched, t->cap_watched);
    t->map_count = t->n_nodes = t->n_reads = t->n_watched = t->n_unwatched = 0;
    t->layer_seen = t->layer_copy = NULL;
}

/* The variable reads only this tape kept: nothing can read their old value any more, so
 * they stop tracking the variable, and the next update of the variable (an optimizer
 * step) need not copy its old value into them. Other live tapes may share a read, so
 * this is done only when no other tape is alive on the thread. */
static void release_reads(tg_tape *t)
{
    if (t->next_live || t->prev_live)
        return;
    for (size_t k = 0; k < t->n_nodes; k++) {
        const tg_node *nd = t->nodes[k];
        for (int i = 0; i < nd->n; i++) {
            tg_tensor *x = nd->in[i];
            if ((x->flags & TG_T_SNAPSHOT) && x->state == TG_HEADER_ALIVE && x->gen == nd->in_gen[i])
                tg__snapshot_unlink(x);
        }
    }
}

void tg_tape_free_at(tg_loc loc, tg_tape *h)
{
    if (!h)
        return;
    tg_tape *t = tg__tape_get(loc, "tg_tape_free", h);
    if (!t)
        return; /* a stale handle: the struct may be another live tape's now */
    if (t->active)
        tg__tape_deactivate(t, t->loc);
    release_reads(t);
    tg__tape_clear(t);
    free(t->pauses);
    t->magic = TG_TAPE_DEAD;
    t->gen++; /* every handle to this tape is stale from here on */
    if (t->prev_live)
        t->prev_live->next_live = t->next_live;
    else
        live_tapes = t->next_live;
    if (t->next_live)
        t->next_live->prev_live = t->prev_live;
    t->next_free = free_tapes;
    free_tapes = t;
}

int tg_tape_stop_recording_at(tg_loc loc, tg_tape *h)
{
    tg_tape *t = tg__tape_get(loc, "tg_tape_stop_recording", h);
    if (!t)
        return -1;
    if (!t->active || t->paused)
        return tg__failf(loc, "tg_tape_stop_recording: Trying to stop recording a tape which is not recording.");
    if (!grow((void **)&t->pauses, &t->cap_pauses, t->n_pauses + 1, sizeof *t->pauses))
        return tg__failf(loc, "tg_tape_stop_recording: out of memory");
    t->pauses[t->n_pauses++] = (tg_pause){.from = ++tg__ctx()->clock, .to = UINT64_MAX, .loc = loc};
    t->paused = true;
    recount_recording();
    return 0;
}

int tg_tape_resume_recording_at(tg_loc loc, tg_tape *h)
{
    tg_tape *t = tg__tape_get(loc, "tg_tape_resume_recording", h);
    if (!t)
        return -1;
    if (!t->active || !t->paused)
        return tg__failf(loc, "tg_tape_resume_recording: the tape begun at %s:%d is not inside stop_recording",
                         t->loc.file, t->loc.line);
    t->pauses[t->n_pauses - 1].to = ++tg__ctx()->clock;
    t->paused = false;
    recount_recording();
    return 0;
}

bool tg__tape_recorded_at(const tg_tape *t, uint64_t stamp)
{
    if (stamp <= t->begin_stamp || (t->end_stamp && stamp >= t->end_stamp))
        return false;
    for (size_t i = 0; i < t->n_pauses; i++)
        if (stamp > t->pauses[i].from && stamp < t->pauses[i].to)
            return false;
    return true;
}

int tg_tape_reset_at(tg_loc loc, tg_tape *h)
{
    tg_tape *t = tg__tape_get(loc, "tg_tape_reset", h);
    if (!t)
        return -1;
    tg__tape_clear(t);
    t->used = false;
    t->begin_stamp = ++tg__ctx()->clock; /* what came before the reset is forgotten */
    t->reset_loc = loc;
    t->n_pauses = 0;
    if (t->paused) /* still inside stop_recording: the pause goes on (its slot exists) */
        t->pauses[t->n_pauses++] = (tg_pause){.from = t->begin_stamp, .to = UINT64_MAX, .loc = loc};
    return 0;
}

bool tg_tape_is_recording(const tg_tape *h)
{
    const tg_tape *t = struct_of(h);
    return t && t->active && !t->paused;
}

tg_tensor *const *tg_watched_variables(const tg_tape *h, int *count)
{
    tg_tape *m = tg__tape_get((tg_loc){0}, "tg_watched_variables", h);
    if (!m) {
        if (count)
            *count = 0;
        return NULL;
    }
    /* Drop variables freed since they were watched. */
    size_t k = 0;
    for (size_t i = 0; i < m->n_watched; i++)
        if (m->watched[i]->state == TG_HEADER_ALIVE && m->watched[i]->gen == m->watched_gen[i]) {
            m->watched_gen[k] = m->watched_gen[i];
            m->watched[k++] = m->watched[i];
        }
    m->n_watched = k;
    if (count)
        *count = (int)k;
    return m->watched;
}

/* ---- watching ----------------------------------------------------------------------------- */
static bool is_watched_var(const tg_tape *t, const tg_tensor *v)
{
    for (size_t i = 0; i < t->n_watched; i++)
        if (t->watched[i] == v && t->watched_gen[i] == v->gen)
            return true;
    return false;
}

static bool watch_var(tg_tape *t, tg_tensor *v)
{
    if (is_watched_var(t, v))
        return true;
    if (t->n_watched == t->cap_watched) {
        size_t cap = t->cap_watched ? t->cap_watched * 2 : 16;
        tg_tensor **w = realloc(t->watched, cap * sizeof *w);
        if (w)
            t->watched = w;
        uint32_t *g = realloc(t->watched_gen, cap * sizeof *g);
        if (g)
            t->watched_gen = g;
        if (!w || !g)
            return false;
        t->cap_watched = cap;
    }
    t->watched[t->n_watched] = v;
    t->watched_gen[t->n_watched++] = v->gen;
    return true;
}

int tg_watch_at(tg_loc loc, tg_tape *h, const tg_tensor *x)
{
    tg_tape *t = tg__tape_get(loc, "tg_watch", h);
    if (!t || !tg__check_input(loc, "tg_watch", x, "t"))
        return -1;
    if (!tg__dtype_is_real(x->dtype)) {
        tg__warn(loc, "The dtype of the watched tensor must be floating (e.g. tf.float32), got %s",
                 tg_dtype_name(x->dtype));
        return 0;
    }
    tg_tensor *m = (tg_tensor *)x;
    if (x->flags & TG_T_VARIABLE)
        return watch_var(t, m) ? 0 : tg__failf(loc, "tg_watch: out of memory");
    if (tg__tape_lookup(t, x))
        return 0;
    return add_entry(t, m, NULL, loc) ? 0 : tg__failf(loc, "tg_watch: out of memory");
}

/* ---- recording ----------------------------------------------------------------------------- */
/* Does op input x connect to tape t? Reading a trainable variable watches it (TF's
 * watch_accessed_variables), whatever the op. */
static void note_unwatched_read(tg_tape *t, const tg_tensor *v, tg_loc loc)
{
    for (size_t i = 0; i < t->n_unwatched; i++)
        if (t->unwatched[i].var == v && t->unwatched[i].gen == v->gen)
            return;
    if (grow((void **)&t->unwatched, &t->cap_unwatched, t->n_unwatched + 1, sizeof *t->unwatched))
        t->unwatched[t->n_unwatched++] = (tg_unwatched_read){(tg_tensor *)v, v->gen, loc};
}

static int connects(tg_tape *t, const tg_tensor *x, tg_loc loc)
{
    if (x->flags & TG_T_VARIABLE) {
        if (t->watch_accessed && x->var->trainable && !is_watched_var(t, x) && !watch_var(t, (tg_tensor *)x))
            return -1; /* out of memory: not "unwatched", which would drop the gradient silently */
        if (is_watched_var(t, x))
            return 1;
        note_unwatched_read(t, x, loc);
        return 0;
    }
    return tg__tape_lookup(t, x) != NULL;
}

/* The layer an op ran in, for reports and diagnoses: a copy on the tape (the layer may be
 * freed first), one per run of ops in the same layer. */
static const char *layer_copy(tg_tape *t, const char *layer)
{
    if (!layer)
        return NULL;
    if (layer == t->layer_seen && !strcmp(layer, t->layer_copy))
        return t->layer_copy;
    char *copy = tape_alloc(t, strlen(layer) + 1);
    t->layer_seen = copy ? layer : NULL;
    return t->layer_copy = copy ? strcpy(copy, layer) : NULL;
}

static bool record_on(tg_tape *t, const tg_call *c, tg_tensor *const *ins)
{
    int n = c->n;
    tg_node *node = tape_alloc(t, sizeof *node);
    tg_tensor **in = tape_alloc(t, sizeof(tg_tensor *) * (size_t)n);
    uint32_t *gen = tape_alloc(t, sizeof(uint32_t) * (size_t)n);
    tg_entry **ie = tape_alloc(t, sizeof(tg_entry *) * (size_t)n);
    if (!node || !in || !gen || !ie || !grow((void **)&t->nodes, &t->cap_nodes, t->n_nodes + 1, sizeof *t->nodes))
        return false;
    for (int i = 0; i < n; i++) {
        in[i] = ins[i];
        gen[i] = ins[i]->gen;
        ie[i] = tg__tape_lookup(t, ins[i]);
        const tg_tensor *orig = c->in[i];
        if (!ie[i] && (orig->flags & TG_T_VARIABLE) && is_watched_var(t, orig)) {
            /* a recorded read of a watched variable: a leaf that remembers the variable */
            if (!(ie[i] = add_entry(t, ins[i], NULL, c->loc)) ||
                !grow((void **)&t->reads, &t->cap_reads, t->n_reads + 1, sizeof *t->reads))
                return false;
            ie[i]->var = (tg_tensor *)orig;
            ie[i]->var_gen = orig->gen;
            ie[i]->var_version = orig->var->version;
            t->reads[t->n_reads++] = ie[i];
        }
    }
    tg_entry **outs = c->n_out == 1 ? &node->out : tape_alloc(t, sizeof(tg_entry *) * (size_t)c->n_out);
    if (!outs)
        return false;
    *node = (tg_node){.op = c->op,
                      .n = n,
                      .in = in,
                      .in_gen = gen,
                      .in_entry = ie,
                      .a = *c->a,
                      .loc = c->loc,
                      .n_out = c->n_out,
                      .outs = outs};
    node->layer = layer_copy(t, tg__ctx()->layer);
    for (int k = 0; k < c->n_out; k++)
        if (!(outs[k] = add_entry(t, c->outs[k], node, c->loc)))
            return false;
    node->out = outs[0];
    t->nodes[t->n_nodes++] = node;
    return true;
}

bool tg__tape_record(const tg_call *c)
{
    tg_context *ctx = tg__ctx();
    bool any = false;
    for (int k = 0; k < ctx->n_active; k++) {
        tg_tape *t = ctx->active[k];
        t->pending = false;
        if (t->paused)
            continue;
        for (int i = 0; i < c->n; i++) {
            int r = connects(t, c->in[i], c->loc);
            if (r < 0)
                return tg__fail(c->loc, "out of memory while recording %s on the tape begun at %s:%d",
                                tg__op_name(c->op), t->loc.file, t->loc.line);
            t->pending |= r > 0;
        }
        any |= t->pending;
    }
    if (!any) { /* unrecorded while a tape records */
        for (int k = 0; k < c->n_out; k++)
            tg__keep_inputs(c->outs[k], c->in, c->n);
        return true;
    }
    for (int k = 0; k < c->n_out; k++)
        c->outs[k]->flags &= ~(uint32_t)TG_T_UNRECORDED;
    /* Variable reads become snapshots, so the tape keeps the value it saw. */
    tg_tensor *small[8], **ins = small;
    if (c->n > 8 && !(ins = tg__arena_alloc(ctx->scope, sizeof(tg_tensor *) * (size_t)c->n)))
        return tg__fail(c->loc, "out of memory while recording %s", tg__op_name(c->op));
    for (int i = 0; i < c->n; i++) {
        ins[i] = (tg_tensor *)c->in[i];
        if (ins[i]->flags & TG_T_VARIABLE) {
            if (i && c->in[i] == c->in[i - 1])
                ins[i] = ins[i - 1]; /* tg_mul(v, v): one read */
            else if (!(ins[i] = tg__variable_snapshot(c->loc, ins[i])))
                return false;
        }
    }
    for (int k = 0; k < ctx->n_active; k++) {
        tg_tape *t = ctx->active[k];
        if (t->pending && !record_on(t, c, ins))
            return tg__fail(c->loc, "out of memory while recording %s on the tape begun at %s:%d", tg__op_name(c->op),
                            t->loc.file, t->loc.line);
    }
    return true;
}
