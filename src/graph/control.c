/* tg_cond and tg_while_loop (TF's cond_v2 and while_v2). Eagerly they are the C branch and
 * the C loop, whose ops a tape records like any others. Traced, each branch, the loop's
 * condition and its body are traced once into subgraphs of a control node, whose
 * captures (tensors from around them) are inputs of the node. Under a recording tape, a
 * traced node's outputs pass through custom gradients: cond's is a cond of the branches'
 * gradients (the branch taken gets it), while_loop's runs the loop forward again, keeping
 * each iteration's variables, then the body's vector-Jacobian product backward over them. */
#include <stdlib.h>

#include "graph_impl.h"
#include "tapegrad/ops.h"

void tg__tapes_hide(tg_tapes_saved *s)
{
    tg_context *ctx = tg__ctx();
    memcpy(s->active, ctx->active, sizeof s->active);
    s->n_active = ctx->n_active;
    s->n_recording = ctx->n_recording;
    ctx->n_active = ctx->n_recording = 0;
}

void tg__tapes_restore(const tg_tapes_saved *s)
{
    tg_context *ctx = tg__ctx();
    memcpy(ctx->active, s->active, sizeof s->active);
    ctx->n_active = s->n_active;
    ctx->n_recording = s->n_recording;
}

static size_t bytes_of(const tg_tensor *t) { return (size_t)t->size * tg__dsize(t->dtype); }

/* An abstract trace's tensors hold no values: a header will do. */
static tg_tensor *fresh_header(tg_loc loc, tg_dtype dtype, const tg_shape *s)
{
    return tg__trace_abstract() ? tg__tensor_abstract(loc, dtype, s) : tg__tensor_new(loc, dtype, s);
}

/* Runs a control node now: an abstract trace leaves it to the graph's run. */
static bool run_now(tg_loc loc, tg_ctrl *c, const tg_tensor *const *in, int n_in, tg_tensor *const *out, int n_out)
{
    return tg__trace_abstract() || tg__ctrl_run(loc, c, in, n_in, out, n_out);
}

static tg_tensor *fresh_copy(tg_loc loc, const tg_tensor *t)
{
    tg_shape s = tg__shape(t);
    if (tg__trace_abstract())
        return tg__tensor_abstract(loc, t->dtype, &s);
    tg_tensor *c = tg__tensor_new(loc, t->dtype, &s);
    if (c)
        memcpy(c->data, t->data, bytes_of(t));
    return c;
}

static bool bool_scalar(tg_loc loc, const char *func, const char *what, const tg_tensor *t)
{
    if (!tg__check_input(loc, func, t, what))
        return false;
    if (t->dtype == TG_BOOL && t->size == 1)
        return true;
    char s[TG_SHAPE_STR_MAX];
    tg_shape sh = tg__shape(t);
    return tg__failb(loc, "%s: %s must be a bool scalar, not %s of shape %s (compare with tg_less, tg_greater...)",
                     func, what, tg_dtype_name(t->dtype), tg__shape_str(&sh, s, sizeof s));
}

static bool outputs_alive(tg_loc loc, const char *func, const char *fn, tg_tensor *const *out, int n)
{
    for (int k = 0; k < n; k++)
        if (!out[k] || out[k]->state != TG_HEADER_ALIVE) {
            if (!tg_has_error() || out[k])
                tg__fail(loc, "%s: %s gave no output %d (%s)", func, fn, k,
                         out[k] ? "a tensor whose scope ended" : "NULL");
            return false;
        }
    return true;
}

static bool same_kind(tg_loc loc, const char *func, const char *what, int k, const tg_tensor *a, const char *a_name,
                      const tg_tensor *b, const char *b_name)
{
    if (a->dtype == b->dtype && tg__same_shape(a, b))
        return true;
    char sa[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
    tg_shape ha = tg__shape(a), hb = tg__shape(b);
    return tg__failb(loc, "%s: %s %d is %s of shape %s %s and %s of shape %s %s; %s", func, what, k,
                     tg_dtype_name(a->dtype), tg__shape_str(&ha, sa, sizeof sa), a_name, tg_dtype_name(b->dtype),
                     tg__shape_str(&hb, sb, sizeof sb), b_name,
                     !strcmp(func, "tg_cond") ? "both branches must give the same dtypes and shapes"
                                              : "a loop variable keeps its dtype and shape (TF's shape invariants)");
}

/* ---- subgraphs ------------------------------------------------------------------------------- */
typedef int (*sub_fn)(void *arg, tg_tensor *const *in, tg_tensor **out);

/* Traces fn(arg, in, out) into a subgraph of the thread's trace, with no tape active: the
 * explicit inputs are fresh copies of in[0..n_in). NULL with an error. */
static tg_fgraph *trace_sub(tg_loc loc, tg_tensor *const *in, int n_in, sub_fn fn, void *arg, tg_tensor **out,
                            int n_out)
{
    tg_context *ctx = tg__ctx();
    tg_fgraph *outer = ctx->trace, *g = tg__fgraph_new(loc, outer);
    tg_tensor **x = tg__arena_alloc(ctx->scope, sizeof *x * (size_t)(n_in + 1));
    if (!g || !x) {
        tg__fgraph_free(g);
        return tg__fail(loc, "tg_function: out of memory while tracing");
    }
    for (int i = 0; i < n_in; i++)
        if (!(x[i] = fresh_copy(loc, in[i])) || tg__fgraph_add_input(g, x[i]) < 0) {
            tg__fgraph_free(g);
            return NULL;
        }
    tg_tapes_saved saved;
    tg__tapes_hide(&saved);
    ctx->trace = g;
    int rc = fn(arg, x, out);
    ctx->trace = outer;
    tg__tapes_restore(&saved);
    if (rc != 0 || g->failed || !tg__fgraph_finish(g, out, n_out)) {
        if (!tg_has_error())
            tg__fail(loc, "tg_function: tracing a branch or loop body failed");
        tg__fgraph_free(g);
        return NULL;
    }
    return g;
}

/* A control node in the thread's trace: explicit inputs, then the captures of every subgraph
 * (each once), and outputs standing for out[]. Fills node_in with the tensors its inputs
 * are now, for running it at once. */
static tg_ctrl *add_ctrl_node(tg_loc loc, tg_ctrl_kind kind, tg_fgraph *const *subs, int ns, tg_tensor *const *explicit,
                              int n_explicit, tg_tensor *const *out, int n_out, const tg_tensor ***node_in)
{
    tg_fgraph *g = tg__ctx()->trace;
    int total = n_explicit;
    for (int s = 0; s < ns; s++)
        total += subs[s]->n_inputs - subs[s]->n_explicit;
    int *ids = tg__fgraph_alloc(g, sizeof(int) * (size_t)(total + 1));
    const tg_tensor **tensors = tg__arena_alloc(tg__ctx()->scope, sizeof *tensors * (size_t)(total + 1));
    tg_ctrl *c = tg__fgraph_alloc(g, sizeof *c);
    if (!ids || !tensors || !c)
        return tg__fail(loc, "tg_function: out of memory while tracing");
    *c = (tg_ctrl){.kind = kind, .n_sub = ns};
    int n = 0;
    for (; n < n_explicit; n++) {
        tensors[n] = explicit[n];
        if ((ids[n] = tg__fgraph_value(g, explicit[n])) < 0)
            return tg__fail(loc, "tg_function: out of memory while tracing");
    }
    for (int s = 0; s < ns; s++) {
        tg_fgraph *sub = subs[s];
        int caps = sub->n_inputs - sub->n_explicit;
        c->sub[s] = sub;
        if (!(c->cap_index[s] = tg__fgraph_alloc(g, sizeof(int) * (size_t)(caps + 1))))
            return tg__fail(loc, "tg_function: out of memory while tracing");
        for (int j = 0; j < caps; j++) {
            int outer = sub->cap_outer[j], at = n_explicit;
            while (at < n && ids[at] != outer)
                at++;
            if (at == n) {
                ids[n] = outer;
                tensors[n++] = sub->values[sub->inputs[sub->n_explicit + j]].seen;
            }
            c->cap_index[s][j] = at;
        }
    }
    c->n_caps = n - n_explicit;
    int node = g->n_nodes;
    tg_gnode *nd = tg__fgraph_add_node(g, TG_GN_CTRL, loc, n, n_out);
    if (!nd)
        return tg__fail(loc, "tg_function: out of memory while tracing");
    memcpy(nd->in, ids, sizeof(int) * (size_t)n);
    for (int k = 0; k < n_out; k++)
        if ((g->nodes[node].out[k] = tg__fgraph_node_value(g, out[k], node)) < 0)
            return tg__fail(loc, "tg_function: out of memory while tracing");
    g->nodes[node].ctrl = c; /* from here the graph owns the subgraphs */
    *node_in = tensors;
    return c;
}

/* Runs subgraph s of c: explicit inputs `x`, captures from the node's inputs. */
static bool run_sub(tg_ctrl *c, int s, const tg_tensor *const *x, const tg_tensor *const *node_in)
{
    tg_fgraph *g = c->sub[s];
    const tg_tensor *bind[g->n_inputs + 1];
    for (int i = 0; i < g->n_explicit; i++)
        bind[i] = x[i];
    for (int j = 0; j < g->n_inputs - g->n_explicit; j++)
        bind[g->n_explicit + j] = node_in[c->cap_index[s][j]];
    return tg__fgraph_run(g, bind);
}

/* Space for the while nodes' staging (n variables) and headers; made once per node. */
static bool ctrl_scratch(tg_loc loc, tg_ctrl *c, const tg_tensor *const *vars, int n)
{
    if (c->hdrs)
        return true;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += (bytes_of(vars[i]) + 63) / 64 * 64;
    c->stage_bytes = total;
    if (!(c->stage = malloc(total ? total : 1)) || !(c->hdrs = calloc((size_t)n + 1, sizeof *c->hdrs)))
        return tg__failb(loc, "tg_while_loop: out of memory");
    for (int i = 0; i < n; i++) {
        c->hdrs[i] = *vars[i];
        c->hdrs[i].flags = 0;
        c->hdrs[i].var = NULL;
    }
    return true;
}

/* vars = body(vars), through the stage (the body may give its inputs back, swapped). */
static void copy_through_stage(tg_ctrl *c, tg_tensor *const *dst, int n)
{
    tg_fgraph *body = c->sub[1];
    char *p = c->stage;
    for (int i = 0; i < n; i++) {
        memcpy(p, tg__fgraph_output(body, i)->data, bytes_of(dst[i]));
        p += (bytes_of(dst[i]) + 63) / 64 * 64;
    }
    p = c->stage;
    for (int i = 0; i < n; i++) {
        memcpy(dst[i]->data, p, bytes_of(dst[i]));
        p += (bytes_of(dst[i]) + 63) / 64 * 64;
    }
}

static int past_maximum(tg_loc loc, int64_t maximum)
{
    return tg__failf(loc,
                     "tg_while_loop: the condition still holds after maximum_iterations (%lld) iterations, and "
                     ".strict_maximum makes that an error; raise the bound, or drop .strict_maximum to stop "
                     "there as TF does",
                     (long long)maximum);
}

/* One test of the loop's condition on vars: 1 go on, 0 stop, -1 error. */
static int keep_going(tg_loc loc, tg_ctrl *c, const tg_tensor *const *vars, const tg_tensor *const *node_in, int64_t it)
{
    bool at_maximum = c->maximum_iterations > 0 && it >= c->maximum_iterations;
    if (at_maximum && !c->strict_maximum)
        return 0;
    if (!run_sub(c, 0, vars, node_in))
        return -1;
    bool go = *(const bool *)tg__fgraph_output(c->sub[0], 0)->data;
    return go && at_maximum ? past_maximum(loc, c->maximum_iterations) : go;
}

static bool run_while(tg_loc loc, tg_ctrl *c, const tg_tensor *const *in, tg_tensor *const *out)
{
    int n = c->n_vars;
    for (int i = 0; i < n; i++)
        memcpy(out[i]->data, in[i]->data, bytes_of(in[i]));
    for (int64_t it = 0;; it++) {
        int go = keep_going(loc, c, (const tg_tensor *const *)out, in, it);
        if (go <= 0)
            return go == 0;
        if (!run_sub(c, 1, (const tg_tensor *const *)out, in))
            return false;
        copy_through_stage(c, out, n);
    }
}

static void accumulate(tg_tensor *acc, const tg_tensor *d)
{
    if (acc->dtype == TG_F32)
        for (int64_t i = 0; i < acc->size; i++)
            ((float *)acc->data)[i] += ((const float *)d->data)[i];
    else if (acc->dtype == TG_F64)
        for (int64_t i = 0; i < acc->size; i++)
            ((double *)acc->data)[i] += ((const double *)d->data)[i];
}

/* The loop's gradient: inputs (initial vars, dy of output k, captures), outputs (their
 * gradients): the loop again, keeping each iteration's variables, then the body's VJP from
 * the last iteration back to the first. */
static bool run_while_grad(tg_loc loc, tg_ctrl *c, const tg_tensor *const *in, tg_tensor *const *out)
{
    int n = c->n_vars;
    tg_tensor *cur = c->hdrs; /* n headers over the stack's current row */
    size_t row = c->stage_bytes;
    for (int i = 0; i < n; i++)
        memcpy(out[i]->data, in[i]->data, bytes_of(in[i])); /* out[0..n): the loop state, then dv */
    int64_t it = 0;
    for (;; it++) {
        int go = keep_going(loc, c, (const tg_tensor *const *)out, in, it);
        if (go < 0)
            return false;
        if (!go)
            break;
        if ((size_t)(it + 1) * row > c->stack_bytes) {
            size_t bytes = c->stack_bytes ? c->stack_bytes * 2 : row * 8;
            while (bytes < (size_t)(it + 1) * row)
                bytes *= 2;
            void *s = realloc(c->stack, bytes ? bytes : 1);
            if (!s)
                return tg__failb(loc, "tg_while_loop: out of memory for the gradient's %lld iterations",
                                 (long long)it + 1);
            c->stack = s;
            c->stack_bytes = bytes;
        }
        char *p = (char *)c->stack + (size_t)it * row;
        for (int i = 0; i < n; p += (bytes_of(out[i]) + 63) / 64 * 64, i++)
            memcpy(p, out[i]->data, bytes_of(out[i]));
        if (!run_sub(c, 1, (const tg_tensor *const *)out, in))
            return false;
        copy_through_stage(c, out, n);
    }
    for (int i = 0; i < n; i++) /* dv: dy at output k */
        if (i == c->k)
            memcpy(out[i]->data, in[n]->data, bytes_of(out[i]));
        else
            memset(out[i]->data, 0, bytes_of(out[i]));
    for (int j = n; j < n + c->n_grads; j++)
        memset(out[j]->data, 0, bytes_of(out[j]));
    tg_fgraph *vjp = c->sub[2];
    const tg_tensor *x[2 * n + 1];
    for (int64_t t = it - 1; t >= 0; t--) {
        char *p = (char *)c->stack + (size_t)t * row;
        for (int i = 0; i < n; p += (bytes_of(out[i]) + 63) / 64 * 64, i++) {
            cur[i].data = p;
            x[i] = &cur[i];
            x[n + i] = out[i];
        }
        if (!run_sub(c, 2, x, in))
            return false;
        for (int i = 0; i < n; i++)
            memcpy(out[i]->data, tg__fgraph_output(vjp, i)->data, bytes_of(out[i]));
        for (int j = 0; j < c->n_grads; j++)
            accumulate(out[n + j], tg__fgraph_output(vjp, n + j));
    }
    return true;
}

bool tg__ctrl_run(tg_loc loc, tg_ctrl *c, const tg_tensor *const *in, int n_in, tg_tensor *const *out, int n_out)
{
    (void)n_in;
    switch (c->kind) {
    case TG_CTRL_COND: {
        int s = *(const bool *)in[0]->data ? 0 : 1;
        if (!run_sub(c, s, NULL, in))
            return false;
        for (int k = 0; k < n_out; k++)
            memcpy(out[k]->data, tg__fgraph_output(c->sub[s], k)->data, bytes_of(out[k]));
        return true;
    }
    case TG_CTRL_WHILE: return run_while(loc, c, in, out);
    case TG_CTRL_WHILE_GRAD: return run_while_grad(loc, c, in, out);
    }
    return false;
}

/* New tensors shaped as the given ones, for a control node's outputs. */
static bool new_like(tg_loc loc, tg_tensor *const *like, int n, tg_tensor **out)
{
    for (int k = 0; k < n; k++) {
        tg_shape s = tg__shape(like[k]);
        if (!(out[k] = fresh_header(loc, like[k]->dtype, &s)))
            return false;
    }
    return true;
}

/* ---- gradients through traced nodes: custom gradients ------------------------------------------ */
/* Output y of a traced node, passed through a custom gradient over `in` (the node's
 * differentiable inputs) that calls backward(user) for it. */
static tg_tensor *with_gradient(tg_loc loc, tg_tensor *y, tg_tensor *const *in, int n, tg_custom_backward_fn backward,
                                void *user)
{
    if (!tg_dtype_is_float(y->dtype) || n == 0)
        return y;
    /* as tg_custom_gradient does: y is the op's last input, which its forward copies */
    tg_context *ctx = tg__ctx();
    const tg_tensor **all = tg__arena_alloc(ctx->scope, sizeof *all * (size_t)(n + 1));
    if (!all)
        return tg__fail(loc, "tg_function: out of memory");
    memcpy(all, in, sizeof *all * (size_t)n);
    all[n] = y;
    return tg__apply(loc, TG_OP_CUSTOM, all, n + 1, &(tg_attrs){.custom = {backward, user}});
}

/* Gradients of target (output k of fn, seeded with dy) with respect to the sources: zeros
 * for an unconnected one, and for a non-float one (which gets none). */
static int vjp(tg_loc loc, tg_tensor *const *targets, tg_tensor *const *seeds, int nt, tg_tensor *const *sources,
               int ns, tg_tape *tape, tg_tensor **out)
{
    tg_context *ctx = tg__ctx();
    tg_tensor **t = tg__arena_alloc(ctx->scope, sizeof *t * (size_t)(nt + 1));
    tg_tensor **d = tg__arena_alloc(ctx->scope, sizeof *d * (size_t)(nt + 1));
    tg_tensor **s = tg__arena_alloc(ctx->scope, sizeof *s * (size_t)(ns + 1));
    tg_tensor **g = tg__arena_alloc(ctx->scope, sizeof *g * (size_t)(ns + 1));
    if (!t || !d || !s || !g)
        return tg__failf(loc, "tg_function: out of memory");
    int m = 0, q = 0;
    for (int i = 0; i < nt; i++)
        if (tg_dtype_is_float(targets[i]->dtype)) {
            t[m] = targets[i];
            d[m++] = seeds[i];
        }
    for (int j = 0; j < ns; j++)
        if (tg_dtype_is_float(sources[j]->dtype))
            s[q++] = sources[j];
    int rc = m && q ? tg_gradients_at(loc, tape,
                                      (tg_gradient_opts){.targets = t,
                                                         .n_targets = m,
                                                         .output_gradients = d,
                                                         .sources = s,
                                                         .n_sources = q,
                                                         .unconnected = TG_UNCONNECTED_ZERO,
                                                         .out = g})
                    : 0;
    if (rc != 0)
        return -1;
    for (int j = 0, at = 0; j < ns; j++)
        if (tg_dtype_is_float(sources[j]->dtype) && m)
            out[j] = g[at++];
        else if (!(out[j] = tg_zeros_like_at(loc, sources[j])))
            return -1;
        else if (tg_dtype_is_float(sources[j]->dtype))
            at++;
    return 0;
}

/* ---- tg_cond ------------------------------------------------------------------------------ */
typedef struct cond_call {
    tg_loc loc;
    const tg_tensor *pred;
    tg_branch_fn fn[2];
    void *user;
    int n_out;
    /* for the gradient of output k: */
    int k, n_caps;
    tg_tensor **caps;
    const tg_tensor *dy;
} cond_call;

static int branch_true(void *arg, tg_tensor *const *in, tg_tensor **out)
{
    const cond_call *c = arg;
    (void)in;
    return c->fn[0](c->user, out);
}

static int branch_false(void *arg, tg_tensor *const *in, tg_tensor **out)
{
    const cond_call *c = arg;
    (void)in;
    return c->fn[1](c->user, out);
}

static int cond_grad_branch(const cond_call *c, int b, tg_tensor **out)
{
    tg_tape *tape = tg_tape_begin_at(c->loc, (tg_tape_opts){.persistent = false, .watch_accessed_variables = false});
    if (!tape)
        return -1;
    int rc = 0;
    for (int j = 0; j < c->n_caps && rc == 0; j++)
        if (tg_dtype_is_float(c->caps[j]->dtype))
            rc = tg_watch_at(c->loc, tape, c->caps[j]);
    tg_tensor *y[TG_FUNCTION_MAX_OUTPUTS] = {0};
    if (rc == 0)
        rc = c->fn[b](c->user, y);
    tg_tape_end_at(c->loc, tape);
    if (rc == 0 && !outputs_alive(c->loc, "tg_cond", b ? "false_fn" : "true_fn", y, c->n_out))
        rc = -1;
    if (rc == 0)
        rc = vjp(c->loc, &y[c->k], (tg_tensor *const[]){(tg_tensor *)c->dy}, 1, c->caps, c->n_caps, tape, out);
    tg_tape_free_at(c->loc, tape);
    return rc;
}

static int grad_true(void *user, tg_tensor **out) { return cond_grad_branch(user, 0, out); }
static int grad_false(void *user, tg_tensor **out) { return cond_grad_branch(user, 1, out); }

static int cond_backward(const tg_tensor *dy, tg_tensor *const *inputs, int n, const tg_tensor *output, tg_tensor **dx,
                         void *user)
{
    (void)inputs, (void)output;
    const cond_call *c = user;
    /* kept past this call: a tape recording this gradient keeps it for the next order */
    cond_call *g = tg__arena_alloc(tg__ctx()->scope, sizeof *g);
    if (!g)
        return tg__failf(c->loc, "tg_cond: out of memory");
    *g = *c;
    g->dy = dy;
    if (n > TG_FUNCTION_MAX_OUTPUTS * 4)
        return tg__failf(g->loc, "tg_cond: the gradient flows to %d captured tensors; at most %d", n,
                         TG_FUNCTION_MAX_OUTPUTS * 4);
    if (tg_cond_at(g->loc, g->pred, grad_true, grad_false, g, n, dx) != 0)
        return -1;
    for (int j = 0; j < n; j++)
        if (!tg_dtype_is_float(g->caps[j]->dtype))
            dx[j] = NULL;
    return 0;
}

static int cond_traced(cond_call *c, tg_tensor **outputs)
{
    tg_loc loc = c->loc;
    tg_tensor *o[2][TG_FUNCTION_MAX_OUTPUTS] = {{0}};
    tg_fgraph *br[2] = {0};
    sub_fn fns[2] = {branch_true, branch_false};
    for (int b = 0; b < 2; b++) {
        br[b] = trace_sub(loc, NULL, 0, fns[b], c, o[b], c->n_out);
        if (!br[b] || !outputs_alive(loc, "tg_cond", b ? "false_fn" : "true_fn", o[b], c->n_out)) {
            tg__fgraph_free(br[0]);
            tg__fgraph_free(br[1]);
            return -1;
        }
    }
    bool ok = true;
    for (int k = 0; ok && k < c->n_out; k++)
        ok = same_kind(loc, "tg_cond", "output", k, o[0][k], "from true_fn", o[1][k], "from false_fn");
    tg_tensor *y[TG_FUNCTION_MAX_OUTPUTS];
    const tg_tensor **node_in = NULL;
    tg_ctrl *ctrl = ok && new_like(loc, o[0], c->n_out, y)
                        ? add_ctrl_node(loc, TG_CTRL_COND, br, 2, (tg_tensor *const[]){(tg_tensor *)c->pred}, 1, y,
                                        c->n_out, &node_in)
                        : NULL;
    if (!ctrl) {
        tg__fgraph_free(br[0]);
        tg__fgraph_free(br[1]);
        return -1;
    }
    ctrl->n_vars = c->n_out;
    int n_in = 1 + ctrl->n_caps;
    if (!run_now(loc, ctrl, node_in, n_in, y, c->n_out))
        return -1;
    if (!tg__ctx()->n_recording) {
        memcpy(outputs, y, sizeof *y * (size_t)c->n_out);
        return 0;
    }
    tg_tensor **caps = tg__arena_alloc(tg__ctx()->scope, sizeof *caps * (size_t)(ctrl->n_caps + 1));
    if (!caps)
        return tg__failf(loc, "tg_cond: out of memory");
    memcpy(caps, node_in + 1, sizeof *caps * (size_t)ctrl->n_caps);
    for (int k = 0; k < c->n_out; k++) {
        cond_call *g = tg__arena_alloc(tg__ctx()->scope, sizeof *g);
        if (!g)
            return tg__failf(loc, "tg_cond: out of memory");
        *g = *c;
        g->k = k;
        g->n_caps = ctrl->n_caps;
        g->caps = caps;
        if (!(outputs[k] = with_gradient(loc, y[k], caps, ctrl->n_caps, cond_backward, g)))
            return -1;
    }
    return 0;
}

int tg_cond_at(tg_loc loc, const tg_tensor *pred, tg_branch_fn true_fn, tg_branch_fn false_fn, void *user,
               int n_outputs, tg_tensor **outputs)
{
    if (!bool_scalar(loc, "tg_cond", "`pred`", pred))
        return -1;
    if (!true_fn || !false_fn || !outputs || n_outputs < 0 || n_outputs > TG_FUNCTION_MAX_OUTPUTS * 4)
        return tg__failf(loc, "tg_cond: give true_fn, false_fn, and an outputs array for 0 to %d outputs",
                         TG_FUNCTION_MAX_OUTPUTS * 4);
    memset(outputs, 0, sizeof *outputs * (size_t)n_outputs);
    cond_call c = {.loc = loc, .pred = pred, .fn = {true_fn, false_fn}, .user = user, .n_out = n_outputs};
    if (tg__ctx()->trace)
        return cond_traced(&c, outputs);
    bool taken = *(const bool *)pred->data; /* eagerly: the C branch, on the tape */
    if ((taken ? true_fn : false_fn)(user, outputs) != 0) {
        if (!tg_has_error())
            tg__fail(loc, "tg_cond: %s returned -1 without an error", taken ? "true_fn" : "false_fn");
        return -1;
    }
    return outputs_alive(loc, "tg_cond", taken ? "true_fn" : "false_fn", outputs, n_outputs) ? 0 : -1;
}

/* ---- tg_while_loop ------------------------------------------------------------------------- */
typedef struct loop_call {
    tg_loc loc;
    tg_loop_cond_fn cond;
    tg_loop_body_fn body;
    void *user;
    int n;
    tg_tensor *const *init;
    int64_t maximum_iterations;
    bool strict_maximum;
    /* traced: the graph and its loop node's pieces, for the gradient */
    tg_fgraph *graph;
    tg_fgraph *cond_g, *body_g;
    int k, n_caps;
    tg_tensor **caps;
} loop_call;

static bool check_next(const loop_call *l, tg_tensor *const *vars, tg_tensor *const *next)
{
    if (!outputs_alive(l->loc, "tg_while_loop", "body_fn", next, l->n))
        return false;
    for (int i = 0; i < l->n; i++)
        if (!same_kind(l->loc, "tg_while_loop", "loop variable", i, next[i], "after body_fn", vars[i], "before it"))
            return false;
    return true;
}

static int loop_cond(void *arg, tg_tensor *const *in, tg_tensor **out)
{
    const loop_call *l = arg;
    if (l->cond(l->user, in, l->n, out) != 0)
        return -1;
    return bool_scalar(l->loc, "tg_while_loop", "what cond_fn gave", out[0]) ? 0 : -1;
}

static int loop_body(void *arg, tg_tensor *const *in, tg_tensor **out)
{
    const loop_call *l = arg;
    if (l->body(l->user, in, l->n, out) != 0)
        return -1;
    return check_next(l, in, out) ? 0 : -1;
}

static int loop_eager(const loop_call *l, tg_tensor **outputs)
{
    tg_context *ctx = tg__ctx();
    tg_tensor **cur = tg__arena_alloc(ctx->scope, sizeof *cur * (size_t)(l->n + 1));
    tg_tensor **next = tg__arena_alloc(ctx->scope, sizeof *next * (size_t)(l->n + 1));
    if (!cur || !next)
        return tg__failf(l->loc, "tg_while_loop: out of memory");
    memcpy(cur, l->init, sizeof *cur * (size_t)l->n);
    for (int64_t it = 0;; it++) {
        bool at_maximum = l->maximum_iterations > 0 && it >= l->maximum_iterations;
        if (at_maximum && !l->strict_maximum)
            break;
        tg_tensor *go = NULL;
        if (loop_cond((void *)l, cur, &go) != 0)
            return -1;
        if (!*(const bool *)go->data)
            break;
        if (at_maximum)
            return past_maximum(l->loc, l->maximum_iterations);
        memset(next, 0, sizeof *next * (size_t)l->n);
        if (loop_body((void *)l, cur, next) != 0)
            return -1;
        memcpy(cur, next, sizeof *cur * (size_t)l->n);
    }
    memcpy(outputs, cur, sizeof *cur * (size_t)l->n);
    return 0;
}

/* The body's VJP, traced: inputs (vars, dv), captures; outputs the gradients of
 * sum(dv * body(vars)) with respect to vars and the loop's captures. */
static int body_vjp(void *arg, tg_tensor *const *in, tg_tensor **out)
{
    const loop_call *l = arg;
    int n = l->n;
    tg_tape *tape = tg_tape_begin_at(l->loc, (tg_tape_opts){.persistent = false, .watch_accessed_variables = false});
    if (!tape)
        return -1;
    tg_tensor **src = tg__arena_alloc(tg__ctx()->scope, sizeof *src * (size_t)(n + l->n_caps + 1));
    tg_tensor **next = tg__arena_alloc(tg__ctx()->scope, sizeof *next * (size_t)(n + 1));
    int rc = src && next ? 0 : tg__failf(l->loc, "tg_while_loop: out of memory");
    for (int i = 0; i < n && rc == 0; i++)
        if (tg_dtype_is_float((src[i] = in[i])->dtype))
            rc = tg_watch_at(l->loc, tape, in[i]);
    for (int j = 0; j < l->n_caps && rc == 0; j++)
        if (tg_dtype_is_float((src[n + j] = l->caps[j])->dtype))
            rc = tg_watch_at(l->loc, tape, l->caps[j]);
    if (rc == 0)
        memset(next, 0, sizeof *next * (size_t)n), rc = l->body(l->user, in, n, next);
    tg_tape_end_at(l->loc, tape);
    if (rc == 0 && !check_next(l, in, next))
        rc = -1;
    if (rc == 0)
        rc = vjp(l->loc, next, in + n, n, src, n + l->n_caps, tape, out);
    tg_tape_free_at(l->loc, tape);
    return rc;
}

/* ---- the loop's gradient as a loop of ops, for a tape that records it (second derivatives) ----
 * The fast gradient below keeps every iteration's variables on a stack, outside any tape's
 * sight. When a tape records the backward pass, the gradient is built from tg_while_loops
 * instead, which are differentiable again: the loop counts its iterations N, then for
 * t = N-1 .. 0 recomputes the variables of iteration t from the initial ones (N^2 / 2 body
 * runs: TF keeps them in a TensorList) and applies the body's VJP to them. */
typedef struct replay_call {
    const loop_call *l;
    tg_tensor *const *init; /* the loop's initial variables */
    const tg_tensor *t;     /* recompute: the iterations to run */
} replay_call;

static int counting_cond(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    const loop_call *l = ((const replay_call *)user)->l;
    (void)n;
    return loop_cond((void *)l, v + 1, go);
}

static int counting_body(void *user, tg_tensor *const *v, int n, tg_tensor **next)
{
    const loop_call *l = ((const replay_call *)user)->l;
    (void)n;
    next[0] = tg_add_at(l->loc, v[0], tg_scalar_at(l->loc, TG_I64, 1));
    return next[0] ? loop_body((void *)l, v + 1, next + 1) : -1;
}

static int before_t(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    const replay_call *r = user;
    (void)n;
    return (*go = tg_less_at(r->l->loc, v[0], r->t)) ? 0 : -1;
}

/* The variables of iteration t: the loop from the start, t times; (v, counter) in out. */
static int variables_at(const replay_call *r, const tg_tensor *t, tg_tensor **out)
{
    const loop_call *l = r->l;
    int n = l->n;
    tg_context *ctx = tg__ctx();
    tg_tensor **init = tg__arena_alloc(ctx->scope, sizeof *init * (size_t)(n + 2));
    if (!init)
        return tg__failf(l->loc, "tg_while_loop: out of memory");
    init[0] = tg_scalar_at(l->loc, TG_I64, 0);
    memcpy(init + 1, r->init, sizeof *init * (size_t)n);
    replay_call *at = tg__arena_alloc(ctx->scope, sizeof *at); /* a later order's gradient reads it */
    if (!at)
        return tg__failf(l->loc, "tg_while_loop: out of memory");
    *at = (replay_call){.l = l, .init = r->init, .t = t};
    return tg_while_loop_at(l->loc, before_t, counting_body, init, n + 1, out, (tg_while_opts){.user = at});
}

static int from_the_last(void *user, tg_tensor *const *v, int n, tg_tensor **go)
{
    const replay_call *r = user;
    (void)n;
    return (*go = tg_greater_equal_at(r->l->loc, v[0], tg_scalar_at(r->l->loc, TG_I64, 0))) ? 0 : -1;
}

/* (t, dv, dcaps) -> (t - 1, VJP of the body at iteration t's variables, dcaps + its part) */
static int back_one(void *user, tg_tensor *const *v, int nv, tg_tensor **next)
{
    const replay_call *r = user;
    const loop_call *l = r->l;
    int n = l->n, m = l->n_caps;
    (void)nv;
    tg_context *ctx = tg__ctx();
    tg_tensor **at = tg__arena_alloc(ctx->scope, sizeof *at * (size_t)(n + 2));
    tg_tensor **x = tg__arena_alloc(ctx->scope, sizeof *x * (size_t)(2 * n + 1));
    tg_tensor **g = tg__arena_alloc(ctx->scope, sizeof *g * (size_t)(n + m + 1));
    if (!at || !x || !g)
        return tg__failf(l->loc, "tg_while_loop: out of memory");
    if (variables_at(r, v[0], at) != 0)
        return -1;
    memcpy(x, at + 1, sizeof *x * (size_t)n);
    memcpy(x + n, v + 1, sizeof *x * (size_t)n);
    if (body_vjp((void *)l, x, g) != 0)
        return -1;
    if (!(next[0] = tg_sub_at(l->loc, v[0], tg_scalar_at(l->loc, TG_I64, 1))))
        return -1;
    memcpy(next + 1, g, sizeof *next * (size_t)n);
    for (int j = 0; j < m; j++)
        if (!(next[1 + n + j] = tg_add_at(l->loc, v[1 + n + j], g[n + j])))
            return -1;
    return 0;
}

static int recorded_backward(loop_call *l, const tg_tensor *dy, tg_tensor *const *inputs, tg_tensor **dx)
{
    int n = l->n, m = l->n_caps;
    tg_context *ctx = tg__ctx();
    replay_call *r = tg__arena_alloc(ctx->scope, sizeof *r); /* a later order's gradient reads it */
    tg_tensor **v = tg__arena_alloc(ctx->scope, sizeof *v * (size_t)(2 + n + m));
    tg_tensor **out = tg__arena_alloc(ctx->scope, sizeof *out * (size_t)(2 + n + m));
    if (!r || !v || !out)
        return tg__failf(l->loc, "tg_while_loop: out of memory");
    *r = (replay_call){.l = l, .init = inputs};
    v[0] = tg_scalar_at(l->loc, TG_I64, 0);
    memcpy(v + 1, inputs, sizeof *v * (size_t)n);
    if (tg_while_loop_at(l->loc, counting_cond, counting_body, v, n + 1, out,
                         (tg_while_opts){.user = r, .maximum_iterations = l->maximum_iterations}) != 0 ||
        !(v[0] = tg_sub_at(l->loc, out[0], tg_scalar_at(l->loc, TG_I64, 1))))
        return -1;
    for (int i = 0; i < n; i++)
        if (!(v[1 + i] = i == l->k ? (tg_tensor *)dy : tg_zeros_like_at(l->loc, inputs[i])))
            return -1;
    for (int j = 0; j < m; j++)
        if (!(v[1 + n + j] = tg_zeros_like_at(l->loc, l->caps[j])))
            return -1;
    if (tg_while_loop_at(l->loc, from_the_last, back_one, v, 1 + n + m, out, (tg_while_opts){.user = r}) != 0)
        return -1;
    for (int j = 0; j < n + m; j++)
        dx[j] = tg_dtype_is_float(j < n ? inputs[j]->dtype : l->caps[j - n]->dtype) ? out[1 + j] : NULL;
    return 0;
}

static int while_backward(const tg_tensor *dy, tg_tensor *const *inputs, int n_in, const tg_tensor *output,
                          tg_tensor **dx, void *user)
{
    (void)output;
    loop_call *l = user;
    int n = l->n;
    tg_context *ctx = tg__ctx();
    if (ctx->trace == l->graph && ctx->n_recording)
        return recorded_backward(l, dy, inputs, dx);
    if (ctx->trace != l->graph)
        return tg__failf(l->loc, "tg_while_loop: the gradient of a traced loop must be taken in the same "
                                 "function (tape and tg_gradients inside it)");
    /* the VJP's inputs: the variables (any values of their shapes) and their gradients */
    tg_tensor **x = tg__arena_alloc(ctx->scope, sizeof *x * (size_t)(2 * n + 1));
    if (!x)
        return tg__failf(l->loc, "tg_while_loop: out of memory");
    for (int i = 0; i < n; i++)
        if (!(x[i] = inputs[i]) || !(x[n + i] = tg_zeros_like_at(l->loc, inputs[i])))
            return -1;
    tg_tensor **vout = tg__arena_alloc(ctx->scope, sizeof *vout * (size_t)(n_in + 1));
    tg_fgraph *vg = vout ? trace_sub(l->loc, x, 2 * n, body_vjp, l, vout, n_in) : NULL;
    if (!vg)
        return -1;
    tg_tensor **explicit = tg__arena_alloc(ctx->scope, sizeof *explicit * (size_t)(n + 2));
    tg_tensor **out = tg__arena_alloc(ctx->scope, sizeof *out * (size_t)(n_in + 1));
    if (!explicit || !out || !new_like(l->loc, inputs, n_in, out)) {
        tg__fgraph_free(vg);
        return -1;
    }
    memcpy(explicit, inputs, sizeof *explicit * (size_t)n);
    explicit[n] = (tg_tensor *)dy;
    const tg_tensor **node_in = NULL;
    tg_ctrl *c = add_ctrl_node(l->loc, TG_CTRL_WHILE_GRAD, (tg_fgraph *const[]){l->cond_g, l->body_g, vg}, 3, explicit,
                               n + 1, out, n_in, &node_in);
    if (!c) {
        tg__fgraph_free(vg);
        return -1;
    }
    c->n_vars = n;
    c->k = l->k;
    c->maximum_iterations = l->maximum_iterations;
    c->strict_maximum = l->strict_maximum;
    c->n_grads = n_in - n; /* the loop's captures: the VJP gives their gradients in that order */
    if (!ctrl_scratch(l->loc, c, (const tg_tensor *const *)inputs, n) || !run_now(l->loc, c, node_in, n + 1, out, n_in))
        return -1;
    for (int j = 0; j < n_in; j++)
        dx[j] = tg_dtype_is_float(inputs[j]->dtype) ? out[j] : NULL;
    return 0;
}

static int loop_traced(loop_call *l, tg_tensor **outputs)
{
    tg_loc loc = l->loc;
    int n = l->n;
    tg_tensor *go = NULL;
    tg_tensor **next = tg__arena_alloc(tg__ctx()->scope, sizeof *next * (size_t)(n + 1));
    if (!next)
        return tg__failf(loc, "tg_while_loop: out of memory");
    tg_fgraph *cg = trace_sub(loc, l->init, n, loop_cond, l, &go, 1);
    tg_fgraph *bg = cg ? trace_sub(loc, l->init, n, loop_body, l, next, n) : NULL;
    tg_tensor **y = tg__arena_alloc(tg__ctx()->scope, sizeof *y * (size_t)(n + 1));
    const tg_tensor **node_in = NULL;
    tg_ctrl *c = bg && y && new_like(loc, l->init, n, y)
                     ? add_ctrl_node(loc, TG_CTRL_WHILE, (tg_fgraph *const[]){cg, bg}, 2, l->init, n, y, n, &node_in)
                     : NULL;
    if (!c) {
        tg__fgraph_free(cg);
        tg__fgraph_free(bg);
        return -1;
    }
    c->n_vars = n;
    c->maximum_iterations = l->maximum_iterations;
    c->strict_maximum = l->strict_maximum;
    if (!ctrl_scratch(loc, c, (const tg_tensor *const *)l->init, n) || !run_now(loc, c, node_in, n, y, n))
        return -1;
    if (!tg__ctx()->n_recording) {
        memcpy(outputs, y, sizeof *y * (size_t)n);
        return 0;
    }
    /* the custom gradient's inputs: the initial variables, then the captures */
    int m = n + c->n_caps;
    tg_tensor **in = tg__arena_alloc(tg__ctx()->scope, sizeof *in * (size_t)(m + 1));
    if (!in)
        return tg__failf(loc, "tg_while_loop: out of memory");
    memcpy(in, node_in, sizeof *in * (size_t)m);
    for (int k = 0; k < n; k++) {
        loop_call *g = tg__arena_alloc(tg__ctx()->scope, sizeof *g);
        if (!g)
            return tg__failf(loc, "tg_while_loop: out of memory");
        *g = *l;
        g->graph = tg__ctx()->trace;
        g->cond_g = cg;
        g->body_g = bg;
        g->k = k;
        g->n_caps = c->n_caps;
        g->caps = in + n;
        if (!(outputs[k] = with_gradient(loc, y[k], in, m, while_backward, g)))
            return -1;
    }
    return 0;
}

int tg_while_loop_at(tg_loc loc, tg_loop_cond_fn cond_fn, tg_loop_body_fn body_fn, tg_tensor *const *loop_vars, int n,
                     tg_tensor **outputs, tg_while_opts o)
{
    if (!cond_fn || !body_fn || n < 1 || !loop_vars || !outputs)
        return tg__failf(loc, "tg_while_loop: give cond_fn, body_fn, n >= 1 loop variables and an outputs array");
    for (int i = 0; i < n; i++)
        if (!tg__check_input(loc, "tg_while_loop", loop_vars[i], "loop_vars[i]"))
            return -1;
    if (o.maximum_iterations < 0)
        return tg__failf(loc, "tg_while_loop: maximum_iterations is %lld; it must be >= 0 (0: no bound)",
                         (long long)o.maximum_iterations);
    loop_call l = {.loc = loc,
                   .cond = cond_fn,
                   .body = body_fn,
                   .user = o.user,
                   .n = n,
                   .init = loop_vars,
                   .maximum_iterations = o.maximum_iterations,
                   .strict_maximum = o.strict_maximum};
    return tg__ctx()->trace ? loop_traced(&l, outputs) : loop_eager(&l, outputs);
}
