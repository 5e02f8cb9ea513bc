/* The provenance graph (provenance.h): parents of a tensor, and searches over them.
 * Only the diagnosis walks it; recording pays two stores per op for it (tg__apply). */
#include <stdlib.h>

#include "provenance.h"

enum { UNSEEN = 0, SEARCHING, NOT_BEHIND, BEHIND };

void tg__graph_init(tg_graph *g, const tg_tape *t, const tg_tensor *x)
{
    memset(g, 0, sizeof *g);
    g->t = t;
    g->x = x;
}

void tg__graph_free(tg_graph *g)
{
    free(g->keys);
    free(g->state);
    g->keys = NULL;
    g->state = NULL;
    g->cap = g->count = 0;
}

static void forget_all(tg_graph *g)
{
    if (g->cap) {
        memset(g->keys, 0, sizeof *g->keys * g->cap);
        memset(g->state, 0, g->cap);
    }
    g->count = 0;
    g->n_path = 0;
    g->depth = 0;
    g->truncated = false;
}

static size_t slot(const tg_tensor *z, size_t cap)
{
    return (size_t)(((uint64_t)(uintptr_t)z * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* The verdict slot of z, made on first use; NULL when out of memory. */
static uint8_t *state_of(tg_graph *g, const tg_tensor *z)
{
    if ((g->count + 1) * 2 > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        const tg_tensor **keys = calloc(cap, sizeof *keys);
        uint8_t *state = calloc(cap, 1);
        if (!keys || !state) {
            free(keys);
            free(state);
            return NULL;
        }
        for (size_t i = 0; i < g->cap; i++) {
            if (!g->keys[i])
                continue;
            size_t j = slot(g->keys[i], cap);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = g->keys[i];
            state[j] = g->state[i];
        }
        tg__graph_free(g);
        g->keys = keys;
        g->state = state;
        g->cap = cap;
    }
    size_t i = slot(z, g->cap);
    while (g->keys[i] && g->keys[i] != z)
        i = (i + 1) & (g->cap - 1);
    if (!g->keys[i]) {
        g->keys[i] = z;
        g->count++;
    }
    return &g->state[i];
}

static uint8_t peek(const tg_graph *g, const tg_tensor *z)
{
    if (!g->cap)
        return UNSEEN;
    for (size_t i = slot(z, g->cap); g->keys[i]; i = (i + 1) & (g->cap - 1))
        if (g->keys[i] == z)
            return g->state[i];
    return UNSEEN;
}

/* ---- parents ------------------------------------------------------------------------------ */
static bool is_cut(const tg_node *nd)
{
    tg_grad_kind k = tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a);
    return k == TG_GRAD_NONE || k == TG_GRAD_STOP;
}

/* Did the tape record at the moment z was made? */
static bool made_while_recording(const tg_tape *t, const tg_tensor *z) { return tg__tape_recorded_at(t, z->stamp); }

static bool event_parents(tg_graph *g, const tg_tensor *z, tg_parent_fn fn, void *user)
{
    tg_context *ctx = tg__ctx();
    bool variable = z->flags & TG_T_VARIABLE;
    bool built = (z->flags & TG_T_FROM_DATA) && !variable;
    bool weak = built && g->weak && (!g->only_weak || g->only_weak == z) && made_while_recording(g->t, z);
    if (!variable && !(built && (z->built_from || weak)))
        return false;
    for (uint64_t k = 0; k < ctx->n_events && k < TG_EVENTS_MAX; k++) {
        const tg_event *e = &ctx->events[(ctx->n_events - 1 - k) % TG_EVENTS_MAX];
        if (!variable && e->stamp >= z->stamp && e->stamp != z->built_from) /* tg_predict links after */
            continue;
        tg_parent p = {.t = e->t, .event = e};
        if (variable) {
            if (e->kind != TG_EVENT_ASSIGN || e->var != z || e->var_gen != z->gen || !tg__alive(e->t, e->gen))
                continue;
            p.how = TG_HOP_ASSIGN;
        } else {
            if (e->kind == TG_EVENT_ASSIGN || (e->t && !tg__alive(e->t, e->gen)))
                continue;
            p.how = TG_HOP_LEFT;
            p.weak = e->stamp != z->built_from;
            if (p.weak && (!weak || e->stamp <= g->t->begin_stamp))
                continue;
        }
        if (fn(g, z, &p, user))
            return true;
    }
    return false;
}

bool tg__each_parent(tg_graph *g, const tg_tensor *z, tg_parent_fn fn, void *user)
{
    const tg_tape *t = g->t;
    tg_entry *e = tg__tape_lookup(t, z);
    if (e && e->node) {
        const tg_node *nd = e->node;
        tg_hop how = is_cut(nd) ? TG_HOP_CUT : TG_HOP_TAPE;
        for (int i = 0; i < nd->n; i++)
            if (tg__alive(nd->in[i], nd->in_gen[i]) &&
                fn(g, z, &(tg_parent){.t = nd->in[i], .how = how, .node = nd}, user))
                return true;
        return false;
    }
    if (e && e->var) /* a watched read */
        return tg__alive(e->var, e->var_gen) && fn(g, z, &(tg_parent){.t = e->var, .how = TG_HOP_READ}, user);
    if (e)
        return false;                                           /* a watched tensor */
    if ((z->flags & TG_T_SNAPSHOT) && z->var && z->var->handle) /* an unwatched read */
        return fn(g, z, &(tg_parent){.t = z->var->handle, .how = TG_HOP_READ}, user);
    for (int i = 0; i < 2; i++) {
        tg_parent p = {.t = z->src[i], .how = TG_HOP_UNRECORDED};
        if (tg__alive(z->src[i], z->src_gen[i]) && fn(g, z, &p, user))
            return true;
    }
    return event_parents(g, z, fn, user);
}

/* ---- is x behind z? ------------------------------------------------------------------------- */
static bool is_source(const tg_graph *g, const tg_parent *p)
{
    return p->t ? p->t == g->x : (g->x->flags & TG_T_VARIABLE) != 0;
}

static bool search(tg_graph *g, const tg_tensor *z);

static bool visit_parent(tg_graph *g, const tg_tensor *z, const tg_parent *p, void *user)
{
    bool *found = user;
    bool behind = is_source(g, p) || (p->t && search(g, p->t));
    if (behind && !*found && !g->exhaustive) { /* the path is pushed as the search unwinds */
        if (g->n_path < TG_PATH_MAX)
            g->path[g->n_path++] = (tg_step){.child = z, .from = *p};
        else
            g->truncated = true;
    }
    *found |= behind;
    return *found && !g->exhaustive;
}

static bool search(tg_graph *g, const tg_tensor *z)
{
    uint8_t *s = state_of(g, z);
    if (!s || *s == SEARCHING || *s == NOT_BEHIND || g->depth >= TG_PATH_MAX)
        return false;
    if (*s == BEHIND) /* known already (an exhaustive search); no second path is pushed */
        return g->exhaustive;
    *s = SEARCHING;
    g->depth++;
    bool found = false;
    tg__each_parent(g, z, visit_parent, &found);
    g->depth--;
    if ((s = state_of(g, z))) /* the table may have grown meanwhile */
        *s = found ? BEHIND : NOT_BEHIND;
    return found;
}

bool tg__find_path(tg_graph *g, const tg_tensor *y)
{
    forget_all(g);
    if (y == g->x)
        return true;
    return search(g, y);
}

bool tg__behind(const tg_graph *g, const tg_tensor *z) { return z == g->x || peek(g, z) == BEHIND; }

bool tg__mark(tg_graph *g, const tg_tensor *z)
{
    uint8_t *s = state_of(g, z);
    if (s && *s == UNSEEN)
        *s = NOT_BEHIND;
    return s != NULL;
}

bool tg__seen(const tg_graph *g, const tg_tensor *z) { return peek(g, z) != UNSEEN; }

/* ---- ancestors ------------------------------------------------------------------------------ */
typedef struct collect {
    const tg_tensor **out;
    int max, n;
} collect;

static void gather_from(tg_graph *g, const tg_tensor *z, collect *c);

static bool gather_parent(tg_graph *g, const tg_tensor *z, const tg_parent *p, void *user)
{
    (void)z;
    if (p->t)
        gather_from(g, p->t, user);
    return false;
}

static void gather_from(tg_graph *g, const tg_tensor *z, collect *c)
{
    uint8_t *s = state_of(g, z);
    if (!s || *s != UNSEEN || c->n >= c->max || g->depth >= TG_PATH_MAX)
        return;
    *s = NOT_BEHIND;
    c->out[c->n++] = z;
    g->depth++;
    tg__each_parent(g, z, gather_parent, c);
    g->depth--;
}

int tg__ancestors(tg_graph *g, const tg_tensor *y, const tg_tensor **out, int max)
{
    forget_all(g);
    collect c = {.out = out, .max = max};
    gather_from(g, y, &c);
    return c.n;
}
