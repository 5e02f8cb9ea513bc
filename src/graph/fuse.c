/* Fusions at the end of a trace, as grappler's remapper rewrites a tf.function's graph:
 * node pairs replaced by one node giving the same values bit for bit.
 *
 * max_pool2d_grad then act_grad_bias_sum: a Conv2D(relu) -> MaxPooling2D(2) backward.
 * When the pool's gradient g = max_pool2d_grad(y, p, dp) (2x2 windows, stride 2, no
 * padding) is read only by act_grad_bias_sum(y, g) of the ReLU whose output y the pool
 * read, the pair becomes act_grad_bias_sum(y, p, dp): one pass that routes dp to each
 * window's first maximum, keeps it where y > 0 and sums the bias's gradient (fused.c),
 * instead of writing g and reading it back. */
#include "graph_impl.h"
#include "tapegrad/ops.h"

static bool pool_2x2(const tg_gnode *n)
{
    const tg_window_attrs *w = &n->a.window;
    return n->kind == TG_GN_OP && n->op == TG_OP_MAX_POOL2D_GRAD && !n->widened && n->n_in == 3 && n->n_out == 1 &&
           w->kh == 2 && w->kw == 2 && w->stride_h == 2 && w->stride_w == 2 && !w->same && w->dilation_h <= 1 &&
           w->dilation_w <= 1;
}

/* Whether value v is read by node `reader` alone: no other node, view or output reads it,
 * and no node takes its batch size from it. */
static bool read_only_by(const tg_fgraph *g, int v, int reader)
{
    for (int k = 0; k < g->n_outputs; k++)
        if (g->values[g->outputs[k]].root == v)
            return false;
    for (int i = 0; i < g->n_nodes; i++) {
        const tg_gnode *n = &g->nodes[i];
        if (n->shape_from && g->values[n->shape_from - 1].root == v)
            return false;
        for (int j = 0; i != reader && j < n->n_in; j++)
            if (n->in[j] >= 0 && g->values[n->in[j]].root == v)
                return false;
    }
    return true;
}

static void remove_node(tg_fgraph *g, int i)
{
    for (int k = 0; k < g->nodes[i].n_out; k++)
        g->values[g->nodes[i].out[k]].def = -1; /* read by nothing now */
    memmove(&g->nodes[i], &g->nodes[i + 1], sizeof *g->nodes * (size_t)(g->n_nodes - i - 1));
    g->n_nodes--;
    for (int id = 0; id < g->n_values; id++)
        if (g->values[id].def > i)
            g->values[id].def--;
}

static bool fuse_pool_relu(tg_fgraph *g, int i)
{
    tg_gnode *b = &g->nodes[i];
    if (b->kind != TG_GN_OP || b->op != TG_OP_ACT_GRAD_BIAS_SUM || b->widened || b->n_in != 2 ||
        b->a.act != TG_BIAS_RELU || b->in[1] < 0)
        return false;
    int v = b->in[1], def = g->values[v].def;
    if (g->values[v].kind != TG_GV_NODE || g->values[v].root != v || def < 0 || def >= i)
        return false;
    const tg_gnode *a = &g->nodes[def];
    if (!pool_2x2(a) || a->in[0] != b->in[0] || a->in_backward != b->in_backward || !read_only_by(g, v, i))
        return false;
    int *in = tg__fgraph_alloc(g, sizeof(int) * 3);
    if (!in)
        return false;
    memcpy(in, a->in, sizeof(int) * 3);
    b->in = in;
    b->n_in = 3;
    remove_node(g, def);
    return true;
}

void tg__fgraph_fuse(tg_fgraph *g)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (fuse_pool_relu(g, i))
            i--; /* the node now sits one place earlier */
}
