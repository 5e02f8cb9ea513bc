/* tg_function: TF's tf.function. One graph per input signature, traced by the first call
 * with that signature and replayed by the later ones. */
#include <stdlib.h>

#include "../dist/dist_impl.h"
#include "graph_impl.h"

enum { FN_ALIVE = 0xF00C7, FN_DEAD = 0xF00DD, RETRACE_WARNING = 5 };

typedef struct trace_entry {
    int n;
    tg_dtype *dtype;
    tg_shape *shape;
    tg_fgraph *g;
    int64_t batch; /* the traced batch size when the graph runs at any (shapes.c); 0 otherwise */
    int n_out;
    tg_dtype out_dtype[TG_FUNCTION_MAX_OUTPUTS];
} trace_entry;

struct tg_function {
    uint32_t magic;
    tg_function_fn fn;
    void *user;
    tg_function_opts o;
    char name[64];
    tg_loc loc;
    trace_entry *entries;
    int n_entries, cap_entries;
    int traces;
    bool warned;
    bool abstract; /* traced abstractly even with eager_fallback (tg__function_trace_abstract) */
};

tg_function *tg_function_new_at(tg_loc loc, tg_function_fn fn, void *user, tg_function_opts o)
{
    if (!fn)
        return tg__null_arg(loc, "tg_function_new", "fn");
    tg_function *f = calloc(1, sizeof *f);
    if (!f)
        return tg__fail(loc, "tg_function_new: out of memory");
    *f = (tg_function){.magic = FN_ALIVE, .fn = fn, .user = user, .o = o, .loc = loc};
    snprintf(f->name, sizeof f->name, "%s", o.name ? o.name : "function");
    return f;
}

static bool alive(tg_loc loc, const tg_function *f, const char *func)
{
    if (f && f->magic == FN_ALIVE)
        return true;
    return tg__failb(loc, "%s: %s", func, f ? "the function was freed" : "`f` is NULL");
}

void tg_function_free(tg_function *f)
{
    if (!f || f->magic != FN_ALIVE)
        return;
    for (int i = 0; i < f->n_entries; i++) {
        tg__fgraph_free(f->entries[i].g);
        free(f->entries[i].dtype);
        free(f->entries[i].shape);
    }
    free(f->entries);
    f->magic = FN_DEAD;
    tg__retire(f);
}

int tg_function_trace_count(const tg_function *f) { return f && f->magic == FN_ALIVE ? f->traces : 0; }

/* ---- signatures ------------------------------------------------------------------------------ */
static bool matches(const trace_entry *e, tg_tensor *const *in, int n)
{
    if (e->n != n)
        return false;
    for (int i = 0; i < n; i++)
        if (e->dtype[i] != in[i]->dtype || e->shape[i].rank != in[i]->rank ||
            memcmp(e->shape[i].dims, in[i]->shape, sizeof(int64_t) * (size_t)in[i]->rank) != 0)
            return false;
    return true;
}

/* The batch size of a call: the dim 0 every input shares (>= 2: a size-1 dim broadcasts),
 * or 0 when there is none. */
static int64_t batch_of(tg_tensor *const *in, int n)
{
    if (n < 1 || in[0]->rank < 1 || in[0]->shape[0] < 2)
        return 0;
    for (int i = 1; i < n; i++)
        if (in[i]->rank < 1 || in[i]->shape[0] != in[0]->shape[0])
            return 0;
    return in[0]->shape[0];
}

/* A polymorphic entry matches inputs that differ from its signature only in dim 0. */
static bool matches_but_batch(const trace_entry *e, tg_tensor *const *in, int n)
{
    if (!e->batch || e->n != n || !batch_of(in, n))
        return false;
    for (int i = 0; i < n; i++)
        if (e->dtype[i] != in[i]->dtype || e->shape[i].rank != in[i]->rank ||
            memcmp(e->shape[i].dims + 1, in[i]->shape + 1, sizeof(int64_t) * (size_t)(in[i]->rank - 1)) != 0)
            return false;
    return true;
}

static trace_entry *find(tg_function *f, tg_tensor *const *in, int n)
{
    for (int i = 0; i < f->n_entries; i++)
        if (matches(&f->entries[i], in, n))
            return &f->entries[i];
    for (int i = 0; i < f->n_entries; i++)
        if (matches_but_batch(&f->entries[i], in, n))
            return &f->entries[i];
    return NULL;
}

static bool keep(tg_function *f, tg_tensor *const *in, int n, tg_fgraph *g)
{
    if (f->n_entries == f->cap_entries) {
        int cap = f->cap_entries ? f->cap_entries * 2 : 4;
        trace_entry *e = realloc(f->entries, sizeof *e * (size_t)cap);
        if (!e)
            return false;
        f->entries = e;
        f->cap_entries = cap;
    }
    trace_entry e = {.n = n, .g = g};
    e.dtype = malloc(sizeof *e.dtype * (size_t)(n + 1));
    e.shape = malloc(sizeof *e.shape * (size_t)(n + 1));
    if (!e.dtype || !e.shape) {
        free(e.dtype), free(e.shape);
        return false;
    }
    for (int i = 0; i < n; i++) {
        e.dtype[i] = in[i]->dtype;
        e.shape[i] = tg__shape(in[i]);
    }
    f->entries[f->n_entries++] = e;
    return true;
}

/* ---- calls ----------------------------------------------------------------------------------- */
static int check_outputs(tg_loc loc, const tg_function *f, int k, tg_tensor **out)
{
    if (k < 0) {
        if (!tg_has_error())
            tg__fail(loc, "tg_function_call: function '%s' returned -1 without an error", f->name);
        return -1;
    }
    if (k > TG_FUNCTION_MAX_OUTPUTS)
        return tg__failf(loc, "tg_function_call: function '%s' gave %d outputs; at most %d", f->name, k,
                         TG_FUNCTION_MAX_OUTPUTS);
    for (int i = 0; i < k; i++)
        if (!tg__check_input(loc, "tg_function_call", out[i], "outputs[i]"))
            return -1;
    return k;
}

/* The first trace whose inputs had these dtypes (shapes aside): its outputs must not change
 * with the shapes alone. */
static const trace_entry *same_dtypes(const tg_function *f, tg_tensor *const *in, int n)
{
    for (int i = 0; i < f->n_entries; i++) {
        const trace_entry *e = &f->entries[i];
        bool same = e->n == n;
        for (int k = 0; same && k < n; k++)
            same = e->dtype[k] == in[k]->dtype;
        if (same)
            return e;
    }
    return NULL;
}

static bool same_outputs(tg_loc loc, const tg_function *f, tg_tensor *const *in, int n, int k, tg_tensor *const *out)
{
    const trace_entry *e = same_dtypes(f, in, n);
    if (!e)
        return true;
    tg_loc at = e->g->loc;
    if (k != e->n_out)
        return tg__failb(loc,
                         "tg_function_call: function '%s' gave %d outputs in this trace and %d in its first for "
                         "these input dtypes (traced at %s:%d); a function's outputs must keep their number from "
                         "one trace to the next",
                         f->name, k, e->n_out, at.file ? at.file : "?", at.line);
    for (int i = 0; i < k; i++)
        if (out[i]->dtype != e->out_dtype[i])
            return tg__failb(loc,
                             "tg_function_call: output %d of function '%s' is %s in this trace and was %s in its "
                             "first for these input dtypes (traced at %s:%d); a function's outputs must keep their "
                             "dtypes",
                             i, f->name, tg_dtype_name(out[i]->dtype), tg_dtype_name(e->out_dtype[i]),
                             at.file ? at.file : "?", at.line);
    return true;
}

static int replay(tg_loc loc, tg_fgraph *g, tg_tensor *const *in, tg_tensor **out);

void tg__function_trace_abstract(tg_function *f)
{
    if (f && f->magic == FN_ALIVE)
        f->abstract = true;
}

/* A strict function is traced as TF traces: abstractly, its values left to the graph's
 * run. One with eager_fallback (whose C code may read values) runs eagerly while traced,
 * unless its maker knows better; so does any under numerics checks or eager gradient
 * checks (they read outputs and gradients while tracing). */
/* Over several ranks a trace runs the collectives it records (their eager results decide
 * which gradients are averaged into new tensors), so it traces eagerly. */
static bool traces_abstractly(const tg_function *f)
{
    return (!f->o.eager_fallback || f->abstract) && !(tg_get_check() & (TG_CHECK_NUMERICS | TG_CHECK_EAGER)) &&
           !tg__dist_active();
}

/* A soft trace read a value: the function runs eagerly from now on, and this call's
 * results are an eager run's (the trace's own, or, abstract, a second run of the C
 * function with the generators it drew from put back). */
static int fall_back(tg_loc loc, tg_function *f, tg_fgraph *g, uint64_t errors, int k, tg_tensor *const *in, int n,
                     tg_tensor **out)
{
    tg_loc at = g->poisoned_loc;
    tg__warn(loc,
             "function '%s' reads a value while tracing (%s at %s:%d), so it runs eagerly from now on "
             "(Keras's run_eagerly=True); branch with tg_cond or tg_while_loop and print with tg_print to "
             "keep it traced, or pass .run_eagerly = true to say so",
             f->name, g->poisoned_func, at.file ? at.file : "?", at.line);
    f->o.run_eagerly = true;
    if (g->abstract) {
        if (tg__error_count() != errors) /* what failed in a run whose results are dropped */
            tg_clear_error();
        for (int i = g->n_rng - 1; i >= 0; i--)
            tg__rng_set_state(g->rng[i], g->rng_state[i]);
        k = f->fn(f->user, in, n, out);
    }
    tg__fgraph_free(g);
    return check_outputs(loc, f, k, out);
}

static int trace(tg_loc loc, tg_function *f, tg_tensor *const *in, int n, tg_tensor **out)
{
    tg_fgraph *g = tg__fgraph_new(loc, NULL);
    if (!g)
        return -1;
    for (int i = 0; i < n; i++)
        if (tg__fgraph_add_input(g, in[i]) < 0) {
            tg__fgraph_free(g);
            return tg__failf(loc, "tg_function_call: out of memory while tracing");
        }
    tg_context *ctx = tg__ctx();
    g->soft = f->o.eager_fallback;
    g->batch = f->o.exact_shapes ? 0 : batch_of(in, n);
    g->abstract = traces_abstractly(f);
    uint64_t errors = tg__error_count();
    ctx->trace = g;
    int k = f->fn(f->user, in, n, out);
    ctx->trace = NULL;
    if (g->poisoned)
        return fall_back(loc, f, g, errors, k, in, n, out);
    bool failed = g->failed;
    if (failed && k >= 0 && !tg_has_error())
        tg__fail(loc, "tg_function_call: tracing function '%s' failed", f->name);
    if (failed || (k = check_outputs(loc, f, k, out)) < 0 || !same_outputs(loc, f, in, n, k, out) ||
        !tg__fgraph_finish(g, out, k) || !keep(f, in, n, g)) {
        tg__fgraph_free(g);
        return -1;
    }
    trace_entry *e = &f->entries[f->n_entries - 1];
    e->n_out = k;
    e->batch = g->batch;
    for (int i = 0; i < k; i++)
        e->out_dtype[i] = out[i]->dtype;
    if (g->abstract && replay(loc, g, in, out) < 0) /* TF: trace, then run the concrete function */
        return -1;
    if (++f->traces > RETRACE_WARNING && !f->warned) {
        f->warned = true;
        tg__warn(loc,
                 "%d out of the last %d calls to function '%s' (made at %s:%d) triggered retracing. Tracing is "
                 "expensive; each new input signature (dtypes and shapes) traces again: keep the shapes fixed "
                 "(pad or bucket them), and make the function once, outside the loop",
                 f->traces, f->traces, f->name, f->loc.file ? f->loc.file : "?", f->loc.line);
    }
    return k;
}

static int replay(tg_loc loc, tg_fgraph *g, tg_tensor *const *in, tg_tensor **out)
{
    if (g->batch && !tg__fgraph_rebatch(g, in[0]->shape[0]))
        return -1;
    tg_scope *scratch = tg_scope_begin_at(loc); /* the kernels' scratch */
    if (!scratch)
        return -1;
    bool ok = tg__fgraph_run(g, (const tg_tensor *const *)in);
    if (tg_scope_end_at(loc, scratch) != 0 || !ok)
        return -1;
    for (int k = 0; k < g->n_outputs; k++) {
        const tg_tensor *v = tg__fgraph_output(g, k);
        tg_shape s = tg__shape(v);
        if (!(out[k] = tg__tensor_new(loc, v->dtype, &s)))
            return -1;
        memcpy(out[k]->data, v->data, (size_t)v->size * tg__dsize(v->dtype));
    }
    return g->n_outputs;
}

int tg_function_call_at(tg_loc loc, tg_function *f, tg_tensor *const *in, int n, tg_tensor **out)
{
    if (!alive(loc, f, "tg_function_call"))
        return -1;
    if (n < 0 || (n > 0 && !in) || !out)
        return tg__failf(loc, "tg_function_call: give n >= 0 inputs and an outputs array of %d",
                         TG_FUNCTION_MAX_OUTPUTS);
    for (int i = 0; i < n; i++)
        if (!tg__check_input(loc, "tg_function_call", in[i], "inputs[i]"))
            return -1;
    tg_context *ctx = tg__ctx();
    if (f->o.run_eagerly || ctx->trace || ctx->n_recording) /* inside a trace: its ops join it */
        return check_outputs(loc, f, f->fn(f->user, in, n, out), out);
    trace_entry *e = find(f, in, n);
    return e ? replay(loc, e->g, in, out) : trace(loc, f, in, n, out);
}

tg_function_stats tg_function_get_stats(const tg_function *f)
{
    tg_function_stats s = {0};
    if (!f || f->magic != FN_ALIVE)
        return s;
    s.traces = f->traces;
    for (int i = 0; i < f->n_entries; i++) {
        const tg_fgraph *g = f->entries[i].g;
        size_t buffer = 0;
        s.nodes += g->n_nodes;
        s.value_bytes += tg__fgraph_traced_value_bytes(g, &buffer);
        s.buffer_bytes += buffer;
    }
    return s;
}
