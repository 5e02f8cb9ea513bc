/* Tracing: the graph a function's first call builds, one value per tensor seen and one
 * node per op, side effect and variable read, in the order they ran. */
#include <stdlib.h>

#include "graph_impl.h"

/* ---- the graph's own memory --------------------------------------------------------------- */
struct tg_gblock {
    tg_gblock *next;
    max_align_t pad[];
};

void *tg__fgraph_alloc(tg_fgraph *g, size_t bytes)
{
    tg_gblock *b = NULL;
    size_t size = sizeof *b + (bytes ? bytes : 1) + 64;
    if (posix_memalign((void **)&b, 64, size) != 0)
        return NULL;
    memset(b, 0, size);
    b->next = g->blocks;
    g->blocks = b;
    return (char *)b + 64;
}

static void *grow(tg_fgraph *g, void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return p;
    int cap2 = *cap ? *cap * 2 : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(p, (size_t)cap2 * elem);
    if (!q) {
        g->failed = true;
        return NULL;
    }
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(cap2 - *cap) * elem);
    *cap = cap2;
    return q;
}

tg_fgraph *tg__fgraph_new(tg_loc loc, tg_fgraph *parent)
{
    tg_fgraph *g = calloc(1, sizeof *g);
    if (!g)
        return tg__fail(loc, "tg_function: out of memory for a graph");
    g->loc = loc;
    g->parent = parent;
    g->abstract = parent && parent->abstract;
    return g;
}

void tg__fgraph_free(tg_fgraph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        tg_ctrl *c = g->nodes[i].ctrl;
        if (!c)
            continue;
        for (int s = 0; s < c->n_sub; s++)
            if (c->kind != TG_CTRL_WHILE_GRAD || s == 2) /* its cond and body are the loop's */
                tg__fgraph_free(c->sub[s]);
        free(c->stage);
        free(c->stack);
        free(c->hdrs);
    }
    for (tg_gblock *b = g->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->cap_outer);
    free(g->map);
    free(g->arena);
    free(g->ptr);
    free(g->scratch);
    tg__fgraph_batch_free(g);
    free(g);
}

/* ---- the map from tensors to values ---------------------------------------------------------- */
static size_t slot_of(const tg_fgraph *g, const tg_tensor *t, uint32_t gen)
{
    uint64_t h = (uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15ull ^ gen;
    return (size_t)(h >> 17) & (g->map_cap - 1);
}

static int map_find(const tg_fgraph *g, const tg_tensor *t)
{
    if (!g->map_cap)
        return -1;
    for (size_t i = slot_of(g, t, t->gen);; i = (i + 1) & (g->map_cap - 1)) {
        const tg_gmap_slot *s = &g->map[i];
        if (!s->t)
            return -1;
        if (s->t == t && s->gen == t->gen)
            return s->id;
    }
}

int tg__fgraph_find(const tg_fgraph *g, const tg_tensor *t) { return t ? map_find(g, t) : -1; }

static void raw_put(tg_fgraph *g, const tg_tensor *t, uint32_t gen, int id)
{
    size_t i = slot_of(g, t, gen);
    while (g->map[i].t && !(g->map[i].t == t && g->map[i].gen == gen))
        i = (i + 1) & (g->map_cap - 1);
    g->map_count += !g->map[i].t;
    g->map[i] = (tg_gmap_slot){t, gen, id};
}

static bool map_put(tg_fgraph *g, const tg_tensor *t, int id)
{
    if ((g->map_count + 1) * 2 > g->map_cap) {
        size_t cap = g->map_cap ? g->map_cap * 2 : 256, old_cap = g->map_cap;
        tg_gmap_slot *old = g->map;
        if (!(g->map = calloc(cap, sizeof *g->map))) {
            g->map = old;
            g->failed = true;
            return false;
        }
        g->map_cap = cap;
        g->map_count = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].t)
                raw_put(g, old[i].t, old[i].gen, old[i].id);
        free(old);
    }
    raw_put(g, t, t->gen, id);
    return true;
}

/* ---- values ---------------------------------------------------------------------------------- */
static int new_value(tg_fgraph *g, tg_gvalue_kind kind, const tg_tensor *t)
{
    tg_gvalue *v = grow(g, g->values, &g->cap_values, g->n_values + 1, sizeof *g->values);
    if (!v)
        return -1;
    g->values = v;
    int id = g->n_values++;
    tg_gvalue *x = &g->values[id];
    *x = (tg_gvalue){.kind = kind, .root = id, .def = -1, .last_use = -1, .input = -1};
    x->hdr.state = TG_HEADER_ALIVE;
    x->hdr.dtype = t->dtype;
    x->hdr.rank = t->rank;
    memcpy(x->hdr.shape, t->shape, sizeof x->hdr.shape);
    x->hdr.size = t->size;
    x->hdr.loc = t->loc;
    return id;
}

static bool push_input(tg_fgraph *g, int id)
{
    int *p = grow(g, g->inputs, &g->cap_inputs, g->n_inputs + 1, sizeof *g->inputs);
    if (!p)
        return false;
    g->inputs = p;
    g->values[id].input = g->n_inputs;
    g->inputs[g->n_inputs++] = id;
    return true;
}

int tg__fgraph_add_input(tg_fgraph *g, const tg_tensor *t)
{
    int id = new_value(g, TG_GV_INPUT, t);
    if (id < 0 || !push_input(g, id))
        return -1;
    g->n_explicit = g->n_inputs;
    g->values[id].seen = t;
    if (map_find(g, t) < 0 && !map_put(g, t, id))
        return -1;
    return id;
}

/* The value of t in g or in a graph around it, made a capture of g (and of every graph
 * between) when it comes from outside; -1 when no graph knows it. */
static int find_or_capture(tg_fgraph *g, const tg_tensor *t)
{
    int id = map_find(g, t);
    if (id >= 0 || !g->parent)
        return id;
    int outer = find_or_capture(g->parent, t);
    if (outer < 0)
        return -1;
    if ((id = new_value(g, TG_GV_INPUT, t)) < 0 || !push_input(g, id))
        return -1;
    int *caps = realloc(g->cap_outer, sizeof *caps * (size_t)(g->n_inputs - g->n_explicit));
    if (!caps)
        return g->failed = true, -1;
    g->cap_outer = caps;
    caps[g->n_inputs - g->n_explicit - 1] = outer;
    g->values[id].seen = t;
    return map_put(g, t, id) ? id : -1;
}

static int constant(tg_fgraph *g, const tg_tensor *t)
{
    if (!t->data && t->size) /* an abstract output from no graph around: a bug of tapegrad's */
        return g->failed = true, tg__failf(t->loc, "tg_function: a traced value reached a graph that did not make it");
    int id = new_value(g, TG_GV_CONST, t);
    if (id < 0)
        return -1;
    size_t bytes = (size_t)t->size * tg__dsize(t->dtype);
    void *data = tg__fgraph_alloc(g, bytes);
    if (!data)
        return g->failed = true, -1;
    if (bytes)
        memcpy(data, t->data, bytes);
    g->values[id].hdr.data = data;
    return map_put(g, t, id) ? id : -1;
}

int tg__fgraph_value(tg_fgraph *g, const tg_tensor *t)
{
    if (!t)
        return -1;
    if (t->flags & TG_T_VARIABLE) { /* by reference: a branch captures it like any value */
        int id = g->parent ? find_or_capture(g, t) : map_find(g, t);
        if (id >= 0)
            return id;
        if (g->parent) {
            tg_fgraph *top = g;
            while (top->parent)
                top = top->parent;
            if (tg__fgraph_value(top, t) < 0)
                return -1;
            return find_or_capture(g, t);
        }
        if ((id = new_value(g, TG_GV_VAR, t)) < 0)
            return -1;
        g->values[id].var = (tg_tensor *)t;
        return map_put(g, t, id) ? id : -1;
    }
    int id = find_or_capture(g, t);
    if (id >= 0)
        return id;
    if ((t->flags & TG_T_SNAPSHOT) && t->var) /* a read kept before the trace began */
        return tg__fgraph_value(g, t->var->handle);
    return constant(g, t);
}

int tg__fgraph_node_value(tg_fgraph *g, const tg_tensor *t, int node)
{
    int id = new_value(g, TG_GV_NODE, t);
    if (id < 0)
        return -1;
    g->values[id].def = node;
    return map_put(g, t, id) ? id : -1;
}

tg_gnode *tg__fgraph_add_node(tg_fgraph *g, tg_gnode_kind kind, tg_loc loc, int n_in, int n_out)
{
    tg_gnode *nodes = grow(g, g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes);
    if (!nodes)
        return NULL;
    g->nodes = nodes;
    tg_gnode *n = &g->nodes[g->n_nodes++];
    *n = (tg_gnode){.kind = kind, .loc = loc, .n_in = n_in, .n_out = n_out};
    n->in = tg__fgraph_alloc(g, sizeof(int) * (size_t)(n_in + 1));
    n->out = tg__fgraph_alloc(g, sizeof(int) * (size_t)(n_out + 1));
    n->outp = tg__fgraph_alloc(g, sizeof(tg_tensor *) * (size_t)(n_out + 1));
    if (!n->in || !n->out || !n->outp) {
        g->failed = true;
        g->n_nodes--;
        return NULL;
    }
    if (n_in + n_out > g->max_in) /* a host node gets its outputs after its inputs */
        g->max_in = n_in + n_out;
    return n;
}

/* ---- the hooks ------------------------------------------------------------------------------ */
void tg__trace_op(const tg_call *c)
{
    tg_fgraph *g = tg__ctx()->trace;
    const tg_op_def *def = &tg__op_table[c->op];
    bool view = (def->flags & TG_OPF_VIEW) && !(c->in[0]->flags & (TG_T_VARIABLE | TG_T_SNAPSHOT));
    int node = g->n_nodes;
    tg_gnode *n = tg__fgraph_add_node(g, view ? TG_GN_VIEW : TG_GN_OP, c->loc, c->n, c->n_out);
    if (!n)
        return;
    n->op = c->op;
    n->a = *c->a;
    n->in_backward = tg__ctx()->gradient_depth > 0;
    n->widened = tg__needs_widening(c, def);
    if (c->op == TG_OP_SPLIT && c->a->split.sizes) { /* the sizes live during the call only */
        int64_t *sizes = tg__fgraph_alloc(g, sizeof *sizes * (size_t)c->n_out);
        if (!sizes) {
            g->failed = true;
            return;
        }
        memcpy(sizes, c->a->split.sizes, sizeof *sizes * (size_t)c->n_out);
        n->a.split.sizes = sizes;
    }
    for (int i = 0; i < c->n; i++)
        if ((g->nodes[node].in[i] = tg__fgraph_value(g, c->in[i])) < 0)
            g->failed = true;
    for (int k = 0; k < c->n_out; k++) {
        int id = tg__fgraph_node_value(g, c->outs[k], node);
        if (id < 0) {
            g->failed = true;
            return;
        }
        g->nodes[node].out[k] = id;
        if (view)
            g->values[id].root = g->values[g->nodes[node].in[0]].root;
    }
}

void tg__trace_snapshot(tg_tensor *snap, tg_tensor *var)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!g)
        return;
    int v = tg__fgraph_value(g, var);
    int node = g->n_nodes;
    tg_gnode *n = tg__fgraph_add_node(g, TG_GN_READ, snap->loc, 1, 1);
    if (!n || v < 0) {
        g->failed = true;
        return;
    }
    n->in[0] = v;
    int id = tg__fgraph_node_value(g, snap, node);
    if (id < 0)
        g->failed = true;
    else
        g->nodes[node].out[0] = id;
}

/* With eager_fallback, a read is let through: the trace is an eager run, whose results
 * stand; the graph is noted as unusable and the function runs eagerly after. */
static bool soft_refusal(tg_fgraph *g, tg_loc loc, const char *func)
{
    while (g->parent)
        g = g->parent;
    if (!g->soft)
        return false;
    if (!g->poisoned) {
        g->poisoned = true;
        g->poisoned_loc = loc.file ? tg__user_loc(loc) : tg__ctx()->user_call;
        g->poisoned_func = func;
    }
    return true;
}

bool tg__trace_refuse_random(tg_loc loc, const char *func)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!g || soft_refusal(g, loc, func))
        return true;
    g->failed = true;
    return tg__failb(loc,
                     "%s: random values drawn in C inside a traced function (tg_function) would be drawn once, "
                     "while tracing, and kept in the graph: draw them outside and pass them as inputs, or run "
                     "the function eagerly (.run_eagerly = true)",
                     func);
}

bool tg__trace_refuse_read(tg_loc loc, const char *func)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!g)
        return true;
    if (soft_refusal(g, loc, func)) /* abstract: no value to let through; the step reruns eagerly */
        return !g->abstract;
    g->failed = true;
    return tg__failb(loc,
                     "%s: a tensor's value was read inside a traced function (tg_function): while tracing, "
                     "values exist only when the graph runs, so C code cannot branch on them. Branch with "
                     "tg_cond or tg_while_loop, print with tg_print (recorded: it prints at every call), or "
                     "return the tensor and read it after the call (TF refuses .numpy() in a tf.function)",
                     func);
}

/* A host node of fn(arg) on inputs in[0, n) making out[0, n_out), writing the variables
 * writes[0, n_writes); its index, or -1 with an error. */
static int host_node(tg_fgraph *g, tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *const *in,
                     int n, tg_tensor *const *out, int n_out, tg_tensor *const *writes, int n_writes)
{
    int node = g->n_nodes;
    tg_gnode *nd = tg__fgraph_add_node(g, TG_GN_HOST, loc, n, n_out);
    void *a = tg__fgraph_alloc(g, arg_bytes);
    tg_tensor **w = tg__fgraph_alloc(g, sizeof *w * (size_t)(n_writes + 1));
    if (!nd || !a || !w)
        return g->failed = true, tg__failf(loc, "tg_function: out of memory while tracing");
    memcpy(a, arg, arg_bytes);
    if (n_writes)
        memcpy(w, writes, sizeof *w * (size_t)n_writes);
    nd->host = fn;
    nd->arg = a;
    nd->writes = w;
    nd->n_writes = n_writes;
    for (int i = 0; i < n; i++) {
        int id = in[i] ? tg__fgraph_value(g, in[i]) : -1;
        if (in[i] && id < 0)
            return g->failed = true, tg__failf(loc, "tg_function: out of memory while tracing");
        g->nodes[node].in[i] = id;
    }
    for (int k = 0; k < n_out; k++) {
        int id = tg__fgraph_node_value(g, out[k], node);
        if (id < 0)
            return g->failed = true, tg__failf(loc, "tg_function: out of memory while tracing");
        g->nodes[node].out[k] = id;
    }
    return node;
}

int tg__trace_host(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *const *in, int n,
                   tg_tensor *const *writes, int n_writes)
{
    tg_fgraph *g = tg__ctx()->trace;
    if (!g)
        return 0;
    if (host_node(g, loc, fn, arg, arg_bytes, in, n, NULL, 0, writes, n_writes) < 0)
        return -1;
    return g->parent || g->abstract ? 1 : 0;
}

int tg__trace_host_output(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *out)
{
    tg_fgraph *g = tg__ctx()->trace;
    return !g || host_node(g, loc, fn, arg, arg_bytes, NULL, 0, &out, 1, NULL, 0) >= 0 ? 0 : -1;
}

int tg__trace_host_outputs(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *const *in, int n,
                           tg_tensor *const *out, int n_out)
{
    tg_fgraph *g = tg__ctx()->trace;
    return !g || host_node(g, loc, fn, arg, arg_bytes, in, n, out, n_out, NULL, 0) >= 0 ? 0 : -1;
}

void *tg__trace_alloc(size_t bytes)
{
    tg_fgraph *g = tg__ctx()->trace;
    void *p = g ? tg__fgraph_alloc(g, bytes) : NULL;
    if (g && !p)
        g->failed = true;
    return p;
}

bool tg__trace_nested(void) { return tg__ctx()->trace && tg__ctx()->trace->parent; }

bool tg_tracing(void) { return tg__ctx()->trace != NULL; }

bool tg__trace_abstract(void)
{
    tg_fgraph *g = tg__ctx()->trace;
    return g && g->abstract;
}

void tg__trace_note_rng(struct tg_rng *r, const uint64_t state[4])
{
    tg_fgraph *g = tg__ctx()->trace;
    while (g && g->parent)
        g = g->parent;
    if (!g || !g->abstract || !g->soft)
        return;
    for (int i = 0; i < g->n_rng; i++)
        if (g->rng[i] == r)
            return;
    if (g->n_rng == 8) { /* cannot put it back: the step's eager rerun would draw anew */
        g->failed = true;
        tg__fail((tg_loc){0}, "tg_function: more than 8 generators drawn from in C while tracing");
        return;
    }
    g->rng[g->n_rng] = r;
    memcpy(g->rng_state[g->n_rng++], state, sizeof g->rng_state[0]);
}
