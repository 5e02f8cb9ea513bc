/* The end of a trace: liveness, the memory plan (one buffer, each node output at an
 * offset reused once its last reader has run, as ggml's graph allocator), and the replay. */
#include <stdlib.h>

#include "graph_impl.h"

enum { ALIGN = 64 };

static size_t value_bytes(const tg_gvalue *v)
{
    size_t b = (size_t)v->hdr.size * tg__dsize(v->hdr.dtype);
    return (b + ALIGN - 1) / ALIGN * ALIGN + (b ? 0 : ALIGN);
}

/* ---- first-fit over free blocks, kept sorted by offset and merged ------------------------- */
typedef struct span {
    size_t off, size;
} span;

typedef struct allocator {
    span *free;
    int n, cap;
    size_t extent;
    bool failed;
} allocator;

static size_t take(allocator *a, size_t size)
{
    for (int i = 0; i < a->n; i++)
        if (a->free[i].size >= size) {
            size_t off = a->free[i].off;
            a->free[i].off += size;
            a->free[i].size -= size;
            if (!a->free[i].size)
                memmove(&a->free[i], &a->free[i + 1], sizeof(span) * (size_t)(a->n-- - i - 1));
            return off;
        }
    if (a->n && a->free[a->n - 1].off + a->free[a->n - 1].size == a->extent) { /* grow the last */
        size_t off = a->free[--a->n].off;
        a->extent = off + size;
        return off;
    }
    size_t off = a->extent;
    a->extent += size;
    return off;
}

static void give_back(allocator *a, size_t off, size_t size)
{
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 32;
        span *f = realloc(a->free, sizeof *f * (size_t)cap);
        if (!f) {
            a->failed = true;
            return;
        }
        a->free = f;
        a->cap = cap;
    }
    int i = 0;
    while (i < a->n && a->free[i].off < off)
        i++;
    memmove(&a->free[i + 1], &a->free[i], sizeof(span) * (size_t)(a->n - i));
    a->free[i] = (span){off, size};
    a->n++;
    if (i + 1 < a->n && a->free[i].off + a->free[i].size == a->free[i + 1].off) {
        a->free[i].size += a->free[i + 1].size;
        memmove(&a->free[i + 1], &a->free[i + 2], sizeof(span) * (size_t)(a->n-- - i - 2));
    }
    if (i > 0 && a->free[i - 1].off + a->free[i - 1].size == a->free[i].off) {
        a->free[i - 1].size += a->free[i].size;
        memmove(&a->free[i], &a->free[i + 1], sizeof(span) * (size_t)(a->n-- - i - 1));
    }
}

/* ---- liveness -------------------------------------------------------------------------------- */
static bool graph_writes(const tg_fgraph *g, const tg_tensor *var);

static bool node_writes(const tg_gnode *n, const tg_tensor *var)
{
    for (int w = 0; w < n->n_writes; w++)
        if (n->writes[w] == var)
            return true;
    if (n->ctrl)
        for (int s = 0; s < n->ctrl->n_sub; s++)
            if (graph_writes(n->ctrl->sub[s], var))
                return true;
    return false;
}

static bool graph_writes(const tg_fgraph *g, const tg_tensor *var)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (node_writes(&g->nodes[i], var))
            return true;
    return false;
}

static void mark_uses(tg_fgraph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] >= 0) {
                tg_gvalue *r = &g->values[g->values[g->nodes[i].in[j]].root];
                r->last_use = i > r->last_use ? i : r->last_use;
            }
    for (int k = 0; k < g->n_outputs; k++)
        g->values[g->values[g->outputs[k]].root].last_use = g->n_nodes;
    /* A kept read aliases its variable unless a write comes before its last reader. */
    for (int i = 0; i < g->n_nodes; i++) {
        tg_gnode *n = &g->nodes[i];
        if (n->kind != TG_GN_READ)
            continue;
        const tg_tensor *var = g->values[n->in[0]].var;
        int last = g->values[n->out[0]].last_use;
        n->alias = var != NULL;
        for (int j = i + 1; n->alias && j <= last && j < g->n_nodes; j++)
            if (node_writes(&g->nodes[j], var))
                n->alias = false;
    }
}

/* Offsets for every node output that owns its buffer: made at its node, given back after
 * its last reader. */
bool tg__fgraph_plan(tg_fgraph *g)
{
    int *first = malloc(sizeof(int) * (size_t)(g->n_nodes + 2));
    int *next = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    allocator a = {0};
    if (!first || !next) {
        free(first), free(next);
        return false;
    }
    for (int i = 0; i <= g->n_nodes; i++)
        first[i] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        tg_gnode *n = &g->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            tg_gvalue *v = &g->values[n->out[k]];
            if (n->kind == TG_GN_VIEW || (n->kind == TG_GN_READ && n->alias))
                continue;
            v->planned = true;
            v->offset = take(&a, value_bytes(v));
            int end = v->last_use < i ? i : v->last_use; /* unread: given back at once */
            next[n->out[k]] = first[end];
            first[end] = n->out[k];
        }
        for (int id = first[i]; id >= 0; id = next[id])
            give_back(&a, g->values[id].offset, value_bytes(&g->values[id]));
    }
    free(first), free(next);
    free(a.free);
    g->arena_bytes = a.extent;
    return !a.failed;
}

bool tg__fgraph_finish(tg_fgraph *g, tg_tensor *const *outputs, int n)
{
    g->outputs = tg__fgraph_alloc(g, sizeof(int) * (size_t)(n + 1));
    g->n_outputs = n;
    for (int k = 0; g->outputs && k < n; k++)
        if ((g->outputs[k] = tg__fgraph_value(g, outputs[k])) < 0)
            g->failed = true;
    if (!g->outputs || g->failed)
        return tg__failb(g->loc, "tg_function: out of memory while tracing");
    tg__fgraph_fuse(g);
    mark_uses(g);
    if (!tg__fgraph_plan(g) || (g->arena_bytes && posix_memalign(&g->arena, ALIGN, g->arena_bytes) != 0) ||
        !(g->ptr = calloc((size_t)g->n_values + 1, sizeof *g->ptr)) ||
        !(g->scratch = calloc((size_t)g->max_in + 1, sizeof *g->scratch)))
        return tg__failb(g->loc, "tg_function: out of memory for the graph's %zu bytes of buffers", g->arena_bytes);
    for (int id = 0; id < g->n_values; id++) {
        tg_gvalue *v = &g->values[id];
        if (v->planned)
            v->hdr.data = (char *)g->arena + v->offset;
        g->ptr[id] = v->kind == TG_GV_VAR ? v->var : v->kind == TG_GV_INPUT ? NULL : &v->hdr;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        tg_gnode *nd = &g->nodes[i];
        if (nd->kind == TG_GN_READ && nd->alias)
            g->ptr[nd->out[0]] = g->values[nd->in[0]].var;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            g->nodes[i].outp[k] = g->ptr[g->nodes[i].out[k]];
    if (!tg__fgraph_batch_finish(g))
        return tg__failb(g->loc, "tg_function: out of memory while tracing");
    free(g->map); /* tracing is over */
    g->map = NULL;
    g->map_cap = g->map_count = 0;
    return true;
}

/* ---- replay ---------------------------------------------------------------------------------- */
static bool run_op(tg_context *ctx, const tg_gnode *n, const tg_tensor *const *in)
{
    tg_call c = {.loc = n->loc, .op = n->op, .in = in, .n = n->n_in, .a = &n->a, .n_out = n->n_out, .outs = n->outp};
    const tg_op_def *def = &tg__op_table[n->op];
    if (n->widened) /* bfloat16 through a float32 kernel, as the dispatcher runs it */
        return tg__forward_widened(&c, n->outp[0]);
    if (!ctx->profiling)
        return def->forward(&c, n->outp[0]);
    double t0 = tg__profile_now();
    bool ok = def->forward(&c, n->outp[0]);
    ctx->gradient_depth += n->in_backward; /* profiled where it was traced */
    tg__profile_op(n->op, tg__profile_now() - t0);
    ctx->gradient_depth -= n->in_backward;
    return ok;
}

static bool run_node(tg_context *ctx, tg_fgraph *g, const tg_gnode *n)
{
    const tg_tensor **in = g->scratch;
    for (int j = 0; j < n->n_in; j++)
        in[j] = n->in[j] >= 0 ? g->ptr[n->in[j]] : NULL;
    switch (n->kind) {
    case TG_GN_OP: return run_op(ctx, n, in);
    case TG_GN_VIEW: n->outp[0]->data = in[0]->data; return true;
    case TG_GN_READ:
        if (!n->alias)
            memcpy(n->outp[0]->data, in[0]->data, (size_t)in[0]->size * tg__dsize(in[0]->dtype));
        return true;
    case TG_GN_HOST:
        for (int k = 0; k < n->n_out; k++)
            in[n->n_in + k] = n->outp[k];
        return n->host(n->loc, n->arg, (tg_tensor *const *)in, n->n_in + n->n_out) == 0;
    case TG_GN_CTRL: {
        /* the subgraphs reuse this scratch: hand them a copy */
        const tg_tensor **copy = tg__arena_alloc(ctx->scope, sizeof *copy * (size_t)(n->n_in + 1));
        if (!copy)
            return tg__failb(n->loc, "tg_function: out of memory");
        memcpy(copy, in, sizeof *copy * (size_t)n->n_in);
        return tg__ctrl_run(n->loc, n->ctrl, copy, n->n_in, n->outp, n->n_out);
    }
    }
    return false;
}

bool tg__fgraph_run(tg_fgraph *g, const tg_tensor *const *inputs)
{
    for (int k = 0; k < g->n_inputs; k++)
        g->ptr[g->inputs[k]] = (tg_tensor *)inputs[k];
    tg_context *ctx = tg__ctx();
    struct tg_fgraph *tracing = tg__trace_pause();
    bool ok = true;
    for (int i = 0; ok && i < g->n_nodes; i++)
        ok = run_node(ctx, g, &g->nodes[i]);
    tg__trace_resume(tracing);
    return ok;
}
