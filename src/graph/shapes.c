/* Graph mode's unknown batch dimension (TF's None): a graph traced at batch size B runs at
 * another b >= 2 when nothing in it bakes B in.
 *
 * A function's inputs that all share dim 0 make it a batch (function.c). When tracing ends,
 * a probe runs every node's shape rule on shapes whose batch dim is another size; the graph
 * stays polymorphic only when every rule accepts them and nothing holds the batch size as a
 * number: no shape attr (reshape, broadcast_to, slice, pad, split, scatter sizes...), no
 * constant's or fixed host output's shape, no side effect that keeps a batch-sized tensor,
 * no control-flow node, and no public shape accessor (tg_dim, tg_shape_of, tg_size) that
 * gave the user's C code the batch size or a multiple. Anything else retraces, as before:
 * a retrace is safe, a replay with a baked number would be silently wrong.
 *
 * The library's own shape-derived targets say where their dims come from
 * (tg__trace_shape_map and its forms); its counts (a mean's divisor) and fills
 * (tg_zeros_like: a fill whose values C changes after must be a plain tg_fill) are host
 * nodes that read the shape at every run.
 *
 * At a replay with another batch size, the same pass sets every value's shape, then a plan
 * for those sizes (kept per batch size) places the buffers: switching sizes allocates only
 * the first time a size is seen. */
#include <stdlib.h>

#include "graph_impl.h"

enum { MAX_PLANS = 8 };

typedef struct batch_plan {
    int64_t batch;
    size_t extent, value_bytes;
    size_t *offset; /* per value */
} batch_plan;

struct tg_gbatch {
    tg_shape *traced; /* per value: its shape when traced */
    tg_shape *cur;    /* per value: a pass's shapes */
    tg_tensor *tmp;   /* a node's inputs, with the pass's shapes */
    const tg_tensor **tmp_ptr;
    tg_shape *out_shape;
    tg_dtype *out_dtype;
    batch_plan plans[MAX_PLANS];
    int n_plans;
    int64_t run_batch; /* the batch size the headers and buffers are for */
    size_t arena_cap;
    void *zeros; /* what shape rules that check values (labels, segment ids) read in a pass */
    size_t zeros_bytes;
};

void tg__fgraph_batch_free(tg_fgraph *g)
{
    struct tg_gbatch *gb = g->gb;
    if (!gb)
        return;
    for (int i = 0; i < gb->n_plans; i++)
        free(gb->plans[i].offset);
    free(gb->zeros), free(gb->traced), free(gb->cur), free(gb->tmp), free(gb->tmp_ptr), free(gb->out_shape),
        free(gb->out_dtype);
    free(gb);
    g->gb = NULL;
}

/* ---- while tracing --------------------------------------------------------------------------- */
static tg_fgraph *top_graph(void)
{
    tg_fgraph *g = tg__ctx()->trace;
    while (g && g->parent)
        g = g->parent;
    return g;
}

static bool holds(const tg_shape *s, int64_t b, bool multiples)
{
    for (int k = 0; k < s->rank; k++)
        if (s->dims[k] == b || (multiples && s->dims[k] && s->dims[k] % b == 0))
            return true;
    return false;
}

void tg__trace_shape_read(const tg_tensor *t, const char *func, int what)
{
    tg_fgraph *g = top_graph();
    if (!g || !t || t->state != TG_HEADER_ALIVE || g->batch < 2 || g->fixed_why)
        return;
    tg_shape s = tg__shape(t);
    if (what >= 0 && what < s.rank) /* one dim */
        s = (tg_shape){.rank = 1, .dims = {s.dims[what]}};
    else if (what == TG_SHAPE_READ_SIZE)
        s = (tg_shape){.rank = 1, .dims = {t->size}};
    if (holds(&s, g->batch, true))
        g->fixed_why = func; /* the C number may end up in the graph: this graph keeps its batch size */
}

void tg__trace_keeps_batch(const char *why)
{
    tg_fgraph *g = top_graph();
    if (g && !g->fixed_why)
        g->fixed_why = why;
}

/* The reshape or broadcast_to node that made out in the graph being traced, when that graph
 * may be polymorphic; its value of `like` in *like_id. */
static tg_gnode *target_node(const tg_tensor *out, const tg_tensor *like, int *like_id)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!g || g->parent || g->batch < 2 || !out || !like)
        return NULL;
    int id = tg__fgraph_find(g, out);
    if (id < 0 || g->values[id].def < 0 || (*like_id = tg__fgraph_find(g, like)) < 0)
        return NULL;
    tg_gnode *n = &g->nodes[g->values[id].def];
    if ((n->op != TG_OP_RESHAPE && n->op != TG_OP_BROADCAST_TO) || n->kind == TG_GN_HOST || n->n_out != 1 ||
        n->out[0] != id)
        return NULL;
    return n;
}

void tg__trace_shape_map(const tg_tensor *out, const tg_tensor *like, const int8_t *map)
{
    int like_id;
    tg_gnode *n = target_node(out, like, &like_id);
    if (!n)
        return;
    for (int k = 0; k < n->a.shape.rank; k++) /* only dims that are like's now */
        if (map[k] > 0 && map[k] <= like->rank && n->a.shape.dims[k] == like->shape[map[k] - 1]) {
            n->shape_map[k] = map[k];
            n->shape_from = like_id + 1;
        }
}

void tg__trace_shape_like(const tg_tensor *out, const tg_tensor *like)
{
    int8_t map[TG_MAX_RANK] = {0};
    for (int k = 0; like && out && k < like->rank && like->rank == out->rank; k++)
        map[k] = (int8_t)(k + 1);
    tg__trace_shape_map(out, like, map);
}

void tg__trace_batch_like(const tg_tensor *out, const tg_tensor *like)
{
    tg__trace_shape_map(out, like, (int8_t[TG_MAX_RANK]){1});
}

void tg__trace_host_shape_free(void)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (g && g->n_nodes && g->nodes[g->n_nodes - 1].kind == TG_GN_HOST)
        g->nodes[g->n_nodes - 1].shape_free = true;
}

static int host_like(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, const tg_tensor *like,
                     tg_tensor *out, bool follows)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!g)
        return 0;
    int in = tg__fgraph_value(g, like), node = g->n_nodes;
    tg_gnode *nd = in >= 0 ? tg__fgraph_add_node(g, TG_GN_HOST, loc, 1, 1) : NULL;
    void *a = tg__fgraph_alloc(g, arg_bytes);
    int id = nd && a ? tg__fgraph_node_value(g, out, node) : -1;
    if (id < 0)
        return g->failed = true, tg__failf(loc, "tg_function: out of memory while tracing");
    memcpy(a, arg, arg_bytes);
    nd = &g->nodes[node];
    nd->host = fn;
    nd->arg = a;
    nd->in[0] = in;
    nd->out[0] = id;
    nd->shape_free = true;
    if (follows && out->rank == like->rank) {
        nd->shape_from = in + 1;
        for (int k = 0; k < out->rank; k++)
            nd->shape_map[k] = (int8_t)(k + 1);
    }
    return 0;
}

int tg__trace_host_like(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, const tg_tensor *like,
                        tg_tensor *out)
{
    return host_like(loc, fn, arg, arg_bytes, like, out, true);
}

/* ---- counts and fills that read the shape at every run --------------------------------------- */
typedef struct count_arg {
    unsigned axes; /* bit k: dim k counts */
    double value;  /* fills; a count's numerator */
    bool per;      /* value / count instead of the count */
} count_arg;

static double count_of(const tg_tensor *x, unsigned axes)
{
    double n = 1;
    for (int k = 0; k < x->rank; k++)
        if (axes >> k & 1u)
            n *= (double)x->shape[k];
    return n;
}

static int count_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    (void)loc;
    const count_arg *a = arg;
    double count = count_of(in[0], a->axes);
    tg__set(in[n - 1], 0, a->per ? a->value / count : count);
    return 0;
}

static tg_tensor *count_scalar(tg_loc loc, const tg_tensor *x, const tg_tensor *like, count_arg a)
{
    if (!x || !like)
        return NULL;
    tg_tensor *t = tg_scalar_like_at(loc, like, 0.0);
    if (!t || host_like(loc, count_replayed, &a, sizeof a, x, t, false) != 0)
        return NULL;
    count_replayed(loc, &a, (tg_tensor *const[]){(tg_tensor *)x, t}, 2);
    return t;
}

tg_tensor *tg__count_like(tg_loc loc, const tg_tensor *x, const tg_tensor *like, unsigned axes)
{
    return count_scalar(loc, x, like, (count_arg){.axes = axes});
}

tg_tensor *tg__per_count_like(tg_loc loc, double numerator, const tg_tensor *x, const tg_tensor *like, unsigned axes)
{
    return count_scalar(loc, x, like, (count_arg){.axes = axes, .value = numerator, .per = true});
}

static int fill_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    (void)loc;
    tg_tensor *t = in[n - 1];
    double v = ((const count_arg *)arg)->value;
    if (v == 0.0)
        memset(t->data, 0, (size_t)t->size * tg__dsize(t->dtype));
    else
        for (int64_t i = 0; i < t->size; i++)
            tg__set(t, i, v);
    return 0;
}

tg_tensor *tg__trace_fill_like(tg_loc loc, const tg_tensor *like, tg_tensor *t, double value)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!t || !g || g->parent || g->batch < 2)
        return t;
    return tg__trace_host_like(loc, fill_replayed, &(count_arg){.value = value}, sizeof(count_arg), like, t) ? NULL : t;
}

/* ---- the shape pass ------------------------------------------------------------------------- */
/* Whether a node's own numbers hold b: sizes, offsets and targets kept in its attrs (the
 * dims of a target that follows a value's shape aside). */
static bool attrs_hold(const tg_gnode *n, int64_t b)
{
    const tg_attrs *a = &n->a;
    const int64_t *v = NULL;
    int count = 0;
    switch (n->op) {
    case TG_OP_RESHAPE:
    case TG_OP_BROADCAST_TO:
        for (int k = 0; k < a->shape.rank; k++)
            if (!n->shape_map[k] && a->shape.dims[k] == b)
                return true;
        return false;
    case TG_OP_SLICE:
        for (int k = 0; k < a->slice.n; k++)
            if (a->slice.begin[k] == b || a->slice.size[k] == b)
                return true;
        return false;
    case TG_OP_PAD:
        for (int k = 0; k < a->pad.n; k++)
            if (a->pad.before[k] == b || a->pad.after[k] == b)
                return true;
        return false;
    case TG_OP_MIRROR_PAD:
        for (int k = 0; k < a->mirror_pad.n; k++)
            if (a->mirror_pad.before[k] == b || a->mirror_pad.after[k] == b)
                return true;
        return false;
    case TG_OP_SCATTER_ADD: return holds(&a->scatter.shape, b, false);
    case TG_OP_SPLIT: v = a->split.sizes, count = v ? n->n_out : 0; break;
    case TG_OP_TILE: v = a->tile.multiples, count = a->tile.n; break;
    case TG_OP_ROLL: v = a->roll.shift, count = TG_MAX_RANK; break;
    case TG_OP_ONE_HOT: return a->depth == b;
    case TG_OP_TOP_K: return a->k == b;
    case TG_OP_UNSORTED_SEGMENT_SUM:
    case TG_OP_UNSORTED_SEGMENT_MAX:
    case TG_OP_UNSORTED_SEGMENT_MIN:
    case TG_OP_UNSORTED_SEGMENT_PROD: return a->num_segments == b;
    case TG_OP_RESIZE:
    case TG_OP_RESIZE_GRAD: return a->resize.height == b || a->resize.width == b;
    case TG_OP_EXTRACT_PATCHES:
    case TG_OP_PATCHES_TO_IMAGE:
    case TG_OP_CONV2D_BACKPROP_INPUT:
    case TG_OP_CONV2D_BACKPROP_FILTER:
    case TG_OP_MAX_POOL2D:
    case TG_OP_MAX_POOL2D_GRAD:
    case TG_OP_MAX_POOL2D_GATHER:
    case TG_OP_AVG_POOL2D:
    case TG_OP_AVG_POOL2D_GRAD: return a->window.height == b || a->window.width == b;
    default: return false;
    }
    for (int k = 0; k < count; k++)
        if (v[k] == b)
            return true;
    return false;
}

static void follow(const tg_gnode *n, const tg_shape *like, tg_shape *s)
{
    for (int k = 0; k < s->rank; k++)
        if (n->shape_map[k] && n->shape_map[k] - 1 < like->rank)
            s->dims[k] = like->dims[n->shape_map[k] - 1];
}

static bool same_shape(const tg_shape *a, const tg_shape *b)
{
    return a->rank == b->rank && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0;
}

static int64_t size_of(const tg_shape *s)
{
    int64_t n = 1;
    for (int k = 0; k < s->rank; k++)
        n *= s->dims[k];
    return n;
}

/* Zeros for every input of a pass's shape rule: the rules that check values (labels in
 * range) read valid ones, inside their buffer. Grown only to a size not seen before. */
static bool zeros_for(struct tg_gbatch *gb, size_t bytes)
{
    if (bytes <= gb->zeros_bytes)
        return true;
    void *z = calloc(1, bytes);
    if (!z)
        return false;
    free(gb->zeros);
    gb->zeros = z;
    gb->zeros_bytes = bytes;
    return true;
}

static const char no_memory[] = "out of memory"; /* a pass's answer: the error is set */

/* Runs a node's shape rule on the pass's shapes of its inputs into gb->out_shape: 1, 0 when
 * it refuses them, -1 when out of memory (with an error). */
static int node_shapes(const tg_fgraph *g, const tg_gnode *n, const tg_shape *sh)
{
    struct tg_gbatch *gb = g->gb;
    tg_attrs a = n->a;
    if (n->shape_from)
        follow(n, &sh[n->shape_from - 1], &a.shape);
    for (int j = 0; j < n->n_in; j++) {
        const tg_gvalue *v = &g->values[n->in[j]];
        tg_tensor *t = &gb->tmp[j];
        *t = v->kind == TG_GV_VAR ? *v->var : v->hdr;
        const tg_shape *s = &sh[n->in[j]];
        t->rank = s->rank;
        memcpy(t->shape, s->dims, sizeof t->shape);
        t->size = size_of(s);
        if (n->widened && t->dtype == TG_BF16) /* its shape rule sees what the dispatcher gave it */
            t->dtype = TG_F32;
        if (!zeros_for(gb, (size_t)t->size * tg__dsize(t->dtype) + 64))
            return tg__failf(n->loc, "tg_function: out of memory");
        t->data = gb->zeros;
        gb->tmp_ptr[j] = t;
    }
    tg_call c = {
        .loc = n->loc, .op = n->op, .in = gb->tmp_ptr, .n = n->n_in, .a = &a, .n_out = n->n_out, .outs = n->outp};
    return tg__op_table[n->op].shape(&c, gb->out_shape, gb->out_dtype) ? 1 : 0;
}

/* Every value's shape at batch size b into sh. The probe (probe: true) returns what bakes
 * the batch size in, or NULL; a replay returns NULL, or "" with an error set. */
static const char *shape_pass(const tg_fgraph *g, int64_t b, tg_shape *sh, bool probe)
{
    const struct tg_gbatch *gb = g->gb;
    int64_t traced_b = g->batch;
    for (int id = 0; id < g->n_values; id++) {
        sh[id] = gb->traced[id];
        const tg_gvalue *v = &g->values[id];
        if (v->kind == TG_GV_INPUT && v->input < g->n_explicit)
            sh[id].dims[0] = b;
        if (probe && v->kind == TG_GV_CONST && holds(&sh[id], traced_b, false))
            return "a constant whose shape holds the batch size";
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const tg_gnode *n = &g->nodes[i];
        switch (n->kind) {
        case TG_GN_CTRL: return "a tg_cond or tg_while_loop";
        case TG_GN_READ: sh[n->out[0]] = sh[n->in[0]]; break;
        case TG_GN_HOST:
            for (int j = 0; probe && !n->shape_free && j < n->n_in; j++)
                if (n->in[j] >= 0 && !same_shape(&sh[n->in[j]], &gb->traced[n->in[j]]))
                    return "a side effect that keeps a batch-sized tensor";
            for (int k = 0; k < n->n_out; k++) {
                tg_shape *s = &sh[n->out[k]];
                if (n->shape_from)
                    follow(n, &sh[n->shape_from - 1], s);
                else if (probe && holds(s, traced_b, false))
                    return "a side effect that makes a tensor whose shape holds the batch size";
            }
            break;
        case TG_GN_OP:
        case TG_GN_VIEW: {
            if (probe && attrs_hold(n, traced_b))
                return "an op whose arguments hold the batch size";
            bool had_error = tg_has_error();
            int ok = node_shapes(g, n, sh);
            if (ok < 0)
                return no_memory;
            if (!ok) {
                if (probe && !had_error)
                    tg_clear_error();
                return probe ? "an op that refuses another batch size" : "";
            }
            for (int k = 0; k < n->n_out; k++)
                sh[n->out[k]] = gb->out_shape[k];
            break;
        }
        }
    }
    return NULL;
}

/* ---- plans ---------------------------------------------------------------------------------- */
static size_t planned_bytes(const tg_fgraph *g)
{
    size_t n = 0;
    for (int id = 0; id < g->n_values; id++)
        if (g->values[id].planned)
            n += (size_t)g->values[id].hdr.size * tg__dsize(g->values[id].hdr.dtype);
    return n;
}

static bool keep_plan(tg_fgraph *g, int64_t b)
{
    struct tg_gbatch *gb = g->gb;
    if (gb->n_plans == MAX_PLANS) { /* the oldest other than the traced one goes */
        free(gb->plans[1].offset);
        memmove(&gb->plans[1], &gb->plans[2], sizeof gb->plans[0] * (MAX_PLANS - 2));
        gb->n_plans--;
    }
    batch_plan *p = &gb->plans[gb->n_plans];
    if (!(p->offset = malloc(sizeof *p->offset * (size_t)(g->n_values + 1))))
        return false;
    for (int id = 0; id < g->n_values; id++)
        p->offset[id] = g->values[id].offset;
    p->batch = b;
    p->extent = g->arena_bytes;
    p->value_bytes = planned_bytes(g);
    gb->n_plans++;
    return true;
}

bool tg__fgraph_batch_finish(tg_fgraph *g)
{
    int64_t b = g->batch;
    g->batch = 0;
    if (b < 2 || g->parent || g->fixed_why)
        return true;
    struct tg_gbatch *gb = g->gb = calloc(1, sizeof *gb);
    int max_out = 1;
    for (int i = 0; i < g->n_nodes; i++)
        max_out = g->nodes[i].n_out > max_out ? g->nodes[i].n_out : max_out;
    size_t nv = (size_t)g->n_values + 1;
    if (!gb || !(gb->traced = malloc(sizeof *gb->traced * nv)) || !(gb->cur = malloc(sizeof *gb->cur * nv)) ||
        !(gb->tmp = calloc((size_t)g->max_in + 1, sizeof *gb->tmp)) ||
        !(gb->tmp_ptr = calloc((size_t)g->max_in + 1, sizeof *gb->tmp_ptr)) ||
        !(gb->out_shape = calloc((size_t)max_out, sizeof *gb->out_shape)) ||
        !(gb->out_dtype = calloc((size_t)max_out, sizeof *gb->out_dtype))) {
        tg__fgraph_batch_free(g);
        return false;
    }
    for (int id = 0; id < g->n_values; id++) {
        const tg_gvalue *v = &g->values[id];
        gb->traced[id] = tg__shape(v->kind == TG_GV_VAR ? v->var : &v->hdr);
    }
    g->batch = b;
    /* the probe's batch: another size >= 2 (smaller, so that its zeros stay small) */
    const char *why = shape_pass(g, b > 2 ? b - 1 : b + 1, gb->cur, true);
    if (why || !keep_plan(g, b)) {
        g->fixed_why = why;
        g->batch = 0;
        tg__fgraph_batch_free(g);
        return why != NULL && why != no_memory;
    }
    gb->run_batch = b;
    gb->arena_cap = g->arena_bytes;
    return true;
}

bool tg__fgraph_rebatch(tg_fgraph *g, int64_t b)
{
    struct tg_gbatch *gb = g->gb;
    if (!gb || b == gb->run_batch)
        return true;
    gb->run_batch = 0; /* the headers are for no batch size until this pass is through */
    if (shape_pass(g, b, gb->cur, false))
        return false;
    for (int id = 0; id < g->n_values; id++) {
        tg_gvalue *v = &g->values[id];
        if (v->kind != TG_GV_NODE)
            continue;
        v->hdr.rank = gb->cur[id].rank;
        memcpy(v->hdr.shape, gb->cur[id].dims, sizeof v->hdr.shape);
        v->hdr.size = size_of(&gb->cur[id]);
    }
    const batch_plan *p = NULL;
    for (int i = 0; i < gb->n_plans && !p; i++)
        p = gb->plans[i].batch == b ? &gb->plans[i] : NULL;
    size_t traced_bytes = g->arena_bytes;
    if (!p) {
        if (!tg__fgraph_plan(g) || !keep_plan(g, b))
            return tg__failb(g->loc, "tg_function: out of memory for a plan at batch size %lld", (long long)b);
        p = &gb->plans[gb->n_plans - 1];
    }
    g->arena_bytes = traced_bytes; /* the stats report the traced plan */
    if (p->extent > gb->arena_cap) {
        void *arena = NULL;
        if (posix_memalign(&arena, 64, p->extent) != 0)
            return tg__failb(g->loc, "tg_function: out of memory for %zu bytes of buffers", p->extent);
        free(g->arena);
        g->arena = arena;
        gb->arena_cap = p->extent;
    }
    for (int id = 0; id < g->n_values; id++)
        if (g->values[id].planned)
            g->values[id].hdr.data = (char *)g->arena + (g->values[id].offset = p->offset[id]);
    gb->run_batch = b;
    return true;
}

size_t tg__fgraph_traced_value_bytes(const tg_fgraph *g, size_t *buffer_bytes)
{
    *buffer_bytes = g->arena_bytes;
    return g->gb ? g->gb->plans[0].value_bytes : planned_bytes(g);
}
