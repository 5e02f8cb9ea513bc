/* The functional API: keras tensors (symbolic: one example's shape, no data), layers
 * applied to them recording nodes, and tg_functional making a model of the graph, as
 * Keras's keras/src/models/functional.py and ops/function.py (map_graph). */
#include <stdlib.h>

#include "layer_impl.h"

enum { MODEL_ALIVE = 0x30DE11 }; /* as model.c */

/* ---- InputLayer ----------------------------------------------------------------------------- */
static bool input_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    (void)l, (void)loc;
    *out = *in;
    return true;
}

static tg_tensor *input_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)l, (void)loc, (void)training;
    return (tg_tensor *)x;
}

static const tg_layer_kind input_kind = {
    .base_name = "input_layer", .class_name = "InputLayer", .build = input_build, .call = input_call};

static bool is_input_layer(const tg_layer *l) { return l->kind == &input_kind; }

/* A new node of l on `in`, its output of `shape`; NULL with an error. */
static tg_node *add_node(tg_layer *l, tg_loc loc, const tg_keras_tensor *const *in, int n, const tg_shape *shape,
                         tg_dtype dtype)
{
    if (l->n_nodes == l->cap_nodes) {
        int cap = l->cap_nodes ? 2 * l->cap_nodes : 2;
        tg_node **p = realloc(l->nodes, sizeof *p * (size_t)cap);
        if (!p)
            return tg__fail(loc, "tg_layer_apply: out of memory");
        l->nodes = p;
        l->cap_nodes = cap;
    }
    tg_node *node = calloc(1, sizeof *node);
    const tg_keras_tensor **ins = malloc(sizeof *ins * (size_t)(n > 0 ? n : 1));
    if (!node || !ins) {
        free(node);
        free(ins);
        return tg__fail(loc, "tg_layer_apply: out of memory");
    }
    for (int i = 0; i < n; i++)
        ins[i] = in[i];
    *node = (tg_node){.layer = l, .index = l->n_nodes, .n_in = n, .in = ins};
    node->out = (tg_keras_tensor){.shape = *shape, .dtype = dtype, .node = node};
    l->nodes[l->n_nodes++] = node;
    return node;
}

tg_keras_tensor *tg_input_at(tg_loc loc, tg_shape shape, tg_input_opts o)
{
    if (shape.rank < 0 || shape.rank >= TG_MAX_RANK)
        return tg__fail(loc, "tg_input: shape has rank %d; one example's shape may have rank 0 to %d", shape.rank,
                        TG_MAX_RANK - 1);
    for (int i = 0; i < shape.rank; i++)
        if (shape.dims[i] <= 0) {
            char s[TG_SHAPE_STR_MAX];
            return tg__fail(loc, "tg_input: shape %s has a dim that is not positive; leave the batch dim out",
                            tg__shape_str(&shape, s, sizeof s));
        }
    if (tg__shape_size(&shape) < 0)
        return tg__fail(loc, "tg_input: shape is too large");
    if (!tg_dtype_name(o.dtype))
        return tg__fail(loc, "tg_input: dtype %d is not a tg_dtype", (int)o.dtype);
    tg_layer *l = tg__layer_new(loc, &input_kind, o.name, TG_DTYPE_INHERIT, 0, (tg_shape){0});
    if (!l)
        return NULL;
    tg_node *node = add_node(l, loc, NULL, 0, &shape, o.dtype);
    if (!node) {
        tg__layer_destroy(l);
        return NULL;
    }
    return &node->out;
}

tg_shape tg_keras_tensor_shape(const tg_keras_tensor *t) { return t ? t->shape : (tg_shape){.rank = -1}; }
tg_layer *tg_keras_tensor_layer(const tg_keras_tensor *t) { return t ? t->node->layer : NULL; }

/* ---- applying a layer --------------------------------------------------------------------- */
/* The output shape of l on examples of `in`, from its build: an unbuilt layer is built
 * for the check and unbuilt again (its variables are made once the model names it). */
static bool output_shape(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    if (l->built) {
        bool same = l->n_in == n;
        for (int i = 0; same && i < n; i++)
            same = tg__shape_eq(n == 1 ? &l->in_shape : &l->in_shapes[i], &in[i]);
        if (!same) {
            char want[TG_SHAPE_STR_MAX], got[TG_SHAPE_STR_MAX];
            const tg_shape *w = n == 1 || !l->in_shapes ? &l->in_shape : &l->in_shapes[0];
            return tg__failb(loc, "layer \"%s\" (%s) is built for examples of shape %s, not %s", l->name,
                             l->kind->class_name, tg__batch_shape_str(w, want, sizeof want),
                             tg__batch_shape_str(&in[0], got, sizeof got));
        }
        *out = l->out_shape;
        return true;
    }
    if (!tg__layer_build_n(l, loc, in, n, TG_F32, 1))
        return false;
    *out = l->out_shape;
    tg__layer_unbuild(l);
    return true;
}

/* A shared layer takes the same example shapes at every call. */
static bool same_as_first_call(const tg_layer *l, tg_loc loc, const tg_keras_tensor *const *in, int n)
{
    if (l->n_nodes == 0)
        return true;
    const tg_node *first = l->nodes[0];
    bool same = first->n_in == n;
    for (int i = 0; same && i < n; i++)
        same = tg__shape_eq(&first->in[i]->shape, &in[i]->shape);
    if (same)
        return true;
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    return tg__failb(loc,
                     "tg_layer_apply: layer \"%s\" (%s) is shared, and its first call took examples of shape %s "
                     "(%d inputs), this one %s (%d inputs): a shared layer takes the same shapes at every call",
                     l->name, l->kind->class_name, tg__batch_shape_str(&first->in[0]->shape, a, sizeof a), first->n_in,
                     tg__batch_shape_str(&in[0]->shape, b, sizeof b), n);
}

tg_keras_tensor *tg_layer_apply_at(tg_loc loc, tg_layer *l, const tg_keras_tensor *const *in, int n)
{
    if (!l) {
        if (!tg_has_error())
            tg__null_arg(loc, "tg_layer_apply", "layer");
        return NULL;
    }
    if (n < 1 || !in)
        return tg__fail(loc, "tg_layer_apply: layer \"%s\" needs at least one keras tensor", l->name);
    for (int i = 0; i < n; i++)
        if (!in[i]) {
            if (!tg_has_error())
                tg__fail(loc, "tg_layer_apply: input %d of layer \"%s\" is NULL", i, l->name);
            return NULL;
        }
    if (l->model)
        return tg__fail(loc,
                        "tg_layer_apply: layer \"%s\" already belongs to model \"%s\"; a layer can be in one model "
                        "only",
                        l->name, tg_model_name(l->model));
    if (is_input_layer(l))
        return tg__fail(loc, "tg_layer_apply: \"%s\" is an InputLayer; make a new input with tg_input", l->name);
    if (!same_as_first_call(l, loc, in, n))
        return NULL;
    tg_shape shapes[n > 0 ? n : 1], out = {0};
    for (int i = 0; i < n; i++)
        shapes[i] = in[i]->shape;
    if (!output_shape(l, loc, shapes, n, &out))
        return NULL;
    tg_dtype dtype = l->dtype_opt != TG_DTYPE_INHERIT ? l->dtype_opt : TG_F32;
    tg_node *node = add_node(l, loc, in, n, &out, dtype);
    return node ? &node->out : NULL;
}

/* ---- the graph (Keras's map_graph) ---------------------------------------------------------- */
typedef struct graph {
    tg_node **nodes; /* post-order from the outputs: inputs before what uses them */
    int n_nodes, cap_nodes;
    tg_layer **layers; /* in first-visit order (Keras's operation_indices) */
    int n_layers, cap_layers;
} graph;

static bool push(void ***arr, int *n, int *cap, void *item)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 16;
        void **p = realloc(*arr, sizeof *p * (size_t)c);
        if (!p)
            return false;
        *arr = p;
        *cap = c;
    }
    (*arr)[(*n)++] = item;
    return true;
}

static int layer_index(const graph *g, const tg_layer *l)
{
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i] == l)
            return i;
    return -1;
}

static bool is_model_input(const tg_keras_tensor *t, const tg_keras_tensor *const *inputs, int n)
{
    for (int i = 0; i < n; i++)
        if (inputs[i] == t)
            return true;
    return false;
}

/* Keras's _build_map_helper: a depth-first walk up from `t`. */
static bool visit(tg_loc loc, graph *g, const tg_keras_tensor *t, const tg_keras_tensor *const *inputs, int n_in)
{
    tg_node *node = t->node;
    if (node->done)
        return true;
    if (node->in_progress) /* the API cannot make one: a node's inputs exist before it */
        return tg__failb(loc, "tg_functional: the output of layer \"%s\" is part of a cycle", node->layer->name);
    if (node->layer->model)
        return tg__failb(loc,
                         "tg_functional: layer \"%s\" already belongs to model \"%s\"; a layer can be in one model "
                         "only",
                         node->layer->name, tg_model_name(node->layer->model));
    if (layer_index(g, node->layer) < 0 && !push((void ***)&g->layers, &g->n_layers, &g->cap_layers, node->layer))
        return tg__failb(loc, "tg_functional: out of memory");
    node->in_progress = true;
    if (!is_model_input(t, inputs, n_in))
        for (int i = 0; i < node->n_in; i++)
            if (!visit(loc, g, node->in[i], inputs, n_in))
                return false;
    node->in_progress = false;
    node->done = true;
    node->depth = -1;
    return push((void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, node) ||
           tg__failb(loc, "tg_functional: out of memory");
}

/* Every layer reachable up from the tensors, for freeing after a failure. */
static void collect_all(graph *g, const tg_keras_tensor *t)
{
    tg_layer *l = t->node->layer;
    if (l->model || layer_index(g, l) >= 0 || !push((void ***)&g->layers, &g->n_layers, &g->cap_layers, l))
        return;
    for (int k = 0; k < l->n_nodes; k++)
        for (int i = 0; i < l->nodes[k]->n_in; i++)
            collect_all(g, l->nodes[k]->in[i]);
}

static void clear_marks(graph *g)
{
    for (int i = 0; i < g->n_layers; i++)
        for (int k = 0; k < g->layers[i]->n_nodes; k++) {
            tg_node *n = g->layers[i]->nodes[k];
            n->done = n->in_progress = false;
            n->depth = n->order = n->slot = 0;
        }
}

/* Keras's depths: an output's node has depth 0, a node's parents at least one more; a
 * layer takes the largest depth of its nodes. */
static void set_depths(graph *g, int *layer_depth)
{
    for (int i = 0; i < g->n_layers; i++)
        layer_depth[i] = -1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        tg_node *node = g->nodes[i];
        int li = layer_index(g, node->layer);
        int depth = node->depth < 0 ? 0 : node->depth;
        if (layer_depth[li] > depth)
            depth = layer_depth[li];
        layer_depth[li] = depth;
        node->depth = depth;
        for (int k = 0; k < node->n_in; k++) {
            tg_node *parent = node->in[k]->node;
            if (parent->depth < depth + 1)
                parent->depth = depth + 1;
        }
    }
}

static int by_depth_desc(const void *a, const void *b, const int *depth, const int *order)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (depth[x] != depth[y])
        return depth[y] - depth[x];
    return order[x] - order[y];
}

/* Sorts idx[0..n) by depth, deepest first, then by `order` (insertion sort: a few layers). */
static void sort_by_depth(int *idx, int n, const int *depth, const int *order)
{
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && by_depth_desc(&idx[k - 1], &idx[k], depth, order) > 0; k--) {
            int t = idx[k];
            idx[k] = idx[k - 1];
            idx[k - 1] = t;
        }
}

/* ---- the model ------------------------------------------------------------------------------ */
static bool name_taken(tg_layer *const *layers, int n, const char *name, const tg_layer *except)
{
    for (int i = 0; i < n; i++)
        if (layers[i] != except && !(layers[i]->auto_named && !layers[i]->built) && strcmp(layers[i]->name, name) == 0)
            return true;
    return false;
}

/* Keras numbers default names per kind (dense, dense_1, ...): here within the model, in
 * its layer order; then every name must be unique. */
static bool name_layers(tg_loc loc, tg_model *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        tg_layer *l = m->layers[i];
        if (!l->auto_named || l->built)
            continue;
        char name[256];
        for (int k = 0;; k++) {
            if (k == 0)
                snprintf(name, sizeof name, "%s", l->kind->base_name);
            else
                snprintf(name, sizeof name, "%s_%d", l->kind->base_name, k);
            bool taken = name_taken(m->layers, m->n_layers, name, l);
            for (int j = 0; !taken && j < i; j++)
                taken = strcmp(m->layers[j]->name, name) == 0;
            if (!taken)
                break;
        }
        if (tg__layer_rename(l, name) != 0)
            return tg__failb(loc, "tg_functional: out of memory");
        l->auto_named = false; /* named for good: it is the model's now */
    }
    for (int i = 0; i < m->n_layers; i++) {
        int count = 0;
        for (int j = 0; j < m->n_layers; j++)
            count += strcmp(m->layers[i]->name, m->layers[j]->name) == 0;
        if (count > 1)
            return tg__failb(loc,
                             "tg_functional: The name \"%s\" is used %d times in the model. All layer names should "
                             "be unique: pass a unique .name",
                             m->layers[i]->name, count);
    }
    return true;
}

/* Keras's computability check: every node's inputs are the model's inputs or outputs
 * of nodes that run before it. */
static bool check_connected(tg_loc loc, tg_node *const *run, int n_run, const tg_keras_tensor *const *inputs, int n_in)
{
    for (int i = 0; i < n_run; i++) {
        tg_node *node = run[i];
        for (int k = 0; k < node->n_in; k++) {
            const tg_keras_tensor *t = node->in[k];
            bool ok = is_model_input(t, inputs, n_in);
            for (int j = 0; !ok && j < i; j++) /* an Input not among the model's is not */
                ok = &run[j]->out == t && run[j]->n_in > 0;
            if (ok)
                continue;
            char shape[TG_SHAPE_STR_MAX], seen[1024] = "";
            size_t at = 0;
            for (int j = 0; j < i && at + 1 < sizeof seen; j++) {
                int w = snprintf(seen + at, sizeof seen - at, "%s\"%s\"", j ? ", " : "", run[j]->layer->name);
                at += w > 0 ? (size_t)w : 0;
            }
            return tg__failb(loc,
                             "tg_functional: Graph disconnected: cannot find parent for tensor %s (the output of "
                             "\"%s\") at layer \"%s\": it comes from an input that is not among the model's "
                             "inputs (%d given). The following previous layers were accessed without issue: [%s]",
                             tg__batch_shape_str(&t->shape, shape, sizeof shape), t->node->layer->name,
                             node->layer->name, n_in, seen);
        }
    }
    return true;
}

/* The layers built in order, each from the shapes of its first call in the graph, seeded
 * by its index. */
static bool build_layers(tg_loc loc, tg_model *m)
{
    for (int i = 0; i < m->n_layers; i++) {
        tg_layer *l = m->layers[i];
        if (l->built)
            continue;
        const tg_node *first = l->nodes[0];
        for (int k = l->n_nodes - 1; k >= 0; k--) /* its first call in this graph */
            if (l->nodes[k]->done)
                first = l->nodes[k];
        tg_shape shapes[first->n_in > 0 ? first->n_in : 1];
        int n = first->n_in;
        if (n == 0) { /* an InputLayer: its own shape */
            shapes[0] = first->out.shape;
            n = 1;
        }
        for (int k = 0; k < first->n_in; k++)
            shapes[k] = first->in[k]->shape;
        if (!tg__layer_build_n(l, loc, shapes, n, m->dtype, tg__derive_seed(m->seed, (uint64_t)i)))
            return false;
    }
    return true;
}

/* The forward pass as steps over slots: slot i < n_in holds input i, and each node's
 * output gets the next. */
static bool plan_steps(tg_loc loc, tg_model *m, tg_node *const *run, int n_run, const tg_keras_tensor *const *inputs,
                       const tg_keras_tensor *const *outputs)
{
    m->steps = calloc((size_t)(n_run > 0 ? n_run : 1), sizeof *m->steps);
    m->input_slots = malloc(sizeof(int) * (size_t)m->n_inputs);
    m->output_slots = malloc(sizeof(int) * (size_t)m->n_outputs);
    if (!m->steps || !m->input_slots || !m->output_slots)
        return tg__failb(loc, "tg_functional: out of memory");
    for (int i = 0; i < m->n_inputs; i++) {
        m->input_slots[i] = i;
        inputs[i]->node->slot = i;
    }
    m->n_slots = m->n_inputs;
    for (int i = 0; i < n_run; i++) {
        tg_node *node = run[i];
        node->in_model = true;
        if (node->n_in == 0) /* an InputLayer's node: its slot is the input's */
            continue;
        tg__graph_step *s = &m->steps[m->n_steps++];
        s->layer = node->layer;
        s->n_in = node->n_in;
        if (!(s->in = malloc(sizeof(int) * (size_t)node->n_in)))
            return tg__failb(loc, "tg_functional: out of memory");
        for (int k = 0; k < node->n_in; k++)
            s->in[k] = node->in[k]->node->slot;
        s->out = node->slot = m->n_slots++;
    }
    for (int i = 0; i < m->n_outputs; i++)
        m->output_slots[i] = outputs[i]->node->slot;
    return true;
}

static bool check_endpoints(tg_loc loc, const tg_keras_tensor *const *inputs, int n_in,
                            const tg_keras_tensor *const *outputs, int n_out)
{
    if (n_in < 1 || !inputs || n_out < 1 || !outputs)
        return tg__failb(loc, "tg_functional: give at least one input and one output (got %d and %d)", n_in, n_out);
    for (int i = 0; i < n_in + n_out; i++) {
        const tg_keras_tensor *t = i < n_in ? inputs[i] : outputs[i - n_in];
        if (!t)
            return !tg_has_error() && tg__failb(loc, "tg_functional: %s %d is NULL", i < n_in ? "input" : "output",
                                                i < n_in ? i : i - n_in);
    }
    for (int i = 0; i < n_in; i++) {
        if (!is_input_layer(inputs[i]->node->layer))
            return tg__failb(loc,
                             "tg_functional: input %d is the output of layer \"%s\", not of tg_input: a model's "
                             "inputs must come from tg_input",
                             i, inputs[i]->node->layer->name);
        for (int k = 0; k < i; k++)
            if (inputs[k] == inputs[i])
                return tg__failb(loc, "tg_functional: input %d is given twice (at %d and %d)", i, k, i);
    }
    return true;
}

/* Frees the layers of a graph that failed to make a model (those of no model). */
static void drop_graph(const tg_keras_tensor *const *inputs, int n_in, const tg_keras_tensor *const *outputs, int n_out)
{
    graph g = {0};
    for (int i = 0; inputs && i < n_in; i++)
        if (inputs[i])
            collect_all(&g, inputs[i]);
    for (int i = 0; outputs && i < n_out; i++)
        if (outputs[i])
            collect_all(&g, outputs[i]);
    for (int i = 0; i < g.n_layers; i++)
        tg__layer_destroy(g.layers[i]);
    free(g.layers);
}

static bool make_graph(tg_loc loc, tg_model *m, const tg_keras_tensor *const *inputs, int n_in,
                       const tg_keras_tensor *const *outputs, int n_out)
{
    graph g = {0};
    bool ok = true;
    for (int i = 0; ok && i < n_out; i++)
        ok = visit(loc, &g, outputs[i], inputs, n_in);
    int n_walked = g.n_layers;
    for (int i = 0; ok && i < n_in; i++) /* inputs that reach no output: depth 0, first */
        if (layer_index(&g, inputs[i]->node->layer) < 0)
            ok = push((void ***)&g.layers, &g.n_layers, &g.cap_layers, inputs[i]->node->layer);
    int *depth = ok ? malloc(sizeof(int) * (size_t)(g.n_layers + 1)) : NULL;
    int *order = ok ? malloc(sizeof(int) * (size_t)(g.n_layers + 1)) : NULL;
    int *idx = ok ? malloc(sizeof(int) * (size_t)(g.n_layers + g.n_nodes + 1)) : NULL;
    tg_node **run = ok ? malloc(sizeof *run * (size_t)(g.n_nodes + 1)) : NULL;
    m->layers = ok ? malloc(sizeof *m->layers * (size_t)(g.n_layers + 1)) : NULL;
    ok = ok && depth && order && idx && run && m->layers;
    if (ok) {
        set_depths(&g, depth);
        for (int i = 0; i < g.n_layers; i++) {
            order[i] = i < n_walked ? i : -1;
            depth[i] = depth[i] < 0 ? 0 : depth[i];
            idx[i] = i;
        }
        sort_by_depth(idx, g.n_layers, depth, order);
        for (int i = 0; i < g.n_layers; i++)
            m->layers[i] = g.layers[idx[i]];
        m->n_layers = m->cap_layers = g.n_layers;
        /* the nodes run deepest first; within a depth, in walk order */
        int *nd = malloc(sizeof(int) * (size_t)(g.n_nodes + 1)), *no = malloc(sizeof(int) * (size_t)(g.n_nodes + 1));
        ok = nd && no;
        for (int i = 0; ok && i < g.n_nodes; i++) {
            nd[i] = g.nodes[i]->depth;
            no[i] = g.n_nodes - 1 - i; /* Keras's dict order: from the outputs */
            idx[i] = i;
        }
        if (ok)
            sort_by_depth(idx, g.n_nodes, nd, no);
        for (int i = 0; ok && i < g.n_nodes; i++)
            run[i] = g.nodes[idx[i]];
        free(nd);
        free(no);
        if (!ok)
            tg__fail(loc, "tg_functional: out of memory");
    } else if (!tg_has_error()) {
        tg__fail(loc, "tg_functional: out of memory");
    }
    ok = ok && check_connected(loc, run, g.n_nodes, inputs, n_in) && name_layers(loc, m) && build_layers(loc, m) &&
         plan_steps(loc, m, run, g.n_nodes, inputs, outputs);
    clear_marks(&g);
    free(depth);
    free(order);
    free(idx);
    free(run);
    free(g.nodes);
    free(g.layers);
    return ok;
}

tg_model *tg_functional_at(tg_loc loc, const tg_keras_tensor *const *inputs, int n_in,
                           const tg_keras_tensor *const *outputs, int n_out, tg_functional_opts o)
{
    if (!check_endpoints(loc, inputs, n_in, outputs, n_out) || (o.dtype != TG_F32 && o.dtype != TG_F64)) {
        if (o.dtype != TG_F32 && o.dtype != TG_F64 && !tg_has_error())
            tg__fail(loc, "tg_functional: dtype must be float32 or float64, not %s",
                     tg_dtype_name(o.dtype) ? tg_dtype_name(o.dtype) : "an unknown dtype");
        drop_graph(inputs, n_in, outputs, n_out);
        return NULL;
    }
    tg_model *m = calloc(1, sizeof *m);
    char *name = strdup(o.name ? o.name : "functional");
    tg_layer **in_layers = malloc(sizeof *in_layers * (size_t)n_in);
    tg_layer **out_layers = malloc(sizeof *out_layers * (size_t)n_out);
    if (!m || !name || !in_layers || !out_layers) {
        free(m);
        free(name);
        free(in_layers);
        free(out_layers);
        drop_graph(inputs, n_in, outputs, n_out);
        return tg__fail(loc, "tg_functional: out of memory");
    }
    *m = (tg_model){.magic = MODEL_ALIVE,
                    .name = name,
                    .seed = o.seed,
                    .dtype = o.dtype,
                    .trainable = true,
                    .functional = true,
                    .n_inputs = n_in,
                    .n_outputs = n_out,
                    .input_layers = in_layers,
                    .output_layers = out_layers};
    for (int i = 0; i < n_in; i++)
        in_layers[i] = inputs[i]->node->layer;
    for (int i = 0; i < n_out; i++)
        out_layers[i] = outputs[i]->node->layer;
    if (!make_graph(loc, m, inputs, n_in, outputs, n_out)) {
        for (int i = 0; i < m->n_layers; i++) /* not the model's: drop_graph frees them */
            m->layers[i] = NULL;
        m->n_layers = 0;
        tg__model_destroy(m);
        free(m);
        drop_graph(inputs, n_in, outputs, n_out);
        return NULL;
    }
    for (int i = 0; i < m->n_layers; i++)
        m->layers[i]->model = m;
    m->in_shape = inputs[0]->shape;
    m->built = true;
    return m;
}

/* ---- calling -------------------------------------------------------------------------------- */
static bool check_input(tg_loc loc, const tg_model *m, int i, const tg_tensor *x)
{
    const tg_layer *l = m->input_layers[i];
    bool ok = tg_rank(x) == l->out_shape.rank + 1;
    for (int k = 0; ok && k < l->out_shape.rank; k++)
        ok = tg_dim(x, k + 1) == l->out_shape.dims[k];
    if (ok)
        return true;
    char want[TG_SHAPE_STR_MAX], got[TG_SHAPE_STR_MAX];
    tg_shape xs = tg_shape_of(x);
    return tg__failb(loc,
                     "input %d of model \"%s\" (layer \"%s\") is incompatible with the layer: expected shape=%s, "
                     "found shape=%s",
                     i, m->name, l->name, tg__batch_shape_str(&l->out_shape, want, sizeof want),
                     tg__shape_str(&xs, got, sizeof got));
}

bool tg__functional_call_masked(tg_model *m, tg_loc loc, const tg_tensor *const *xs, const tg_tensor *const *masks,
                                tg_tensor **ys, tg_tensor **y_masks, bool training)
{
    for (int i = 0; i < m->n_inputs; i++) {
        if (!tg__check_input(loc, "tg_model_call", xs[i], "x") || !check_input(loc, m, i, xs[i]))
            return false;
        if (i > 0 && tg_dim(xs[i], 0) != tg_dim(xs[0], 0))
            return tg__failb(loc,
                             "tg_model_call: the inputs of model \"%s\" have different batch sizes: input 0 has "
                             "%lld rows, input %d has %lld",
                             m->name, (long long)tg_dim(xs[0], 0), i, (long long)tg_dim(xs[i], 0));
    }
    /* the slots and each step's inputs live in the caller's scope, with the tensors they
     * hold: a warm step allocates nothing */
    tg_scope *scope = tg__ctx()->scope;
    if (!scope)
        return tg__failb(loc, "tg_model_call: no scope is open: call tg_scope_begin() before making tensors");
    tg_tensor **slot = tg__arena_alloc(scope, sizeof *slot * (size_t)m->n_slots * 2), **mask = slot + m->n_slots;
    if (!slot)
        return tg__failb(loc, "tg_model_call: out of memory");
    for (int i = 0; i < m->n_inputs; i++) {
        slot[i] = (tg_tensor *)xs[i];
        mask[i] = masks ? (tg_tensor *)masks[i] : NULL;
    }
    bool ok = true;
    for (int i = 0; ok && i < m->n_steps; i++) {
        const tg__graph_step *s = &m->steps[i];
        tg_tensor **in = tg__arena_alloc(scope, sizeof *in * (size_t)s->n_in * 2), **in_mask = in + s->n_in;
        if (!in) {
            ok = tg__failb(loc, "tg_model_call: out of memory");
            break;
        }
        bool masked = false;
        for (int k = 0; k < s->n_in; k++) {
            in[k] = slot[s->in[k]];
            masked |= (in_mask[k] = mask[s->in[k]]) != NULL;
        }
        mask[s->out] = NULL;
        slot[s->out] = tg__layer_call_masked(s->layer, loc, in, masked ? (const tg_tensor *const *)in_mask : NULL,
                                             s->n_in, training, &mask[s->out]);
        ok = slot[s->out] != NULL;
    }
    for (int i = 0; ok && i < m->n_outputs; i++) {
        ok = (ys[i] = tg__model_output_f32(loc, slot[m->output_slots[i]])) != NULL;
        if (y_masks)
            y_masks[i] = mask[m->output_slots[i]];
    }
    return ok;
}

bool tg__functional_call(tg_model *m, tg_loc loc, const tg_tensor *const *xs, tg_tensor **ys, bool training)
{
    return tg__functional_call_masked(m, loc, xs, NULL, ys, NULL, training);
}
