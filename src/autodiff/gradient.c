/* tape.gradient, jacobian and batch_jacobian: one reverse loop over the recorded nodes.
 *
 * Backward rules are written with public ops, so when an outer tape is recording, the
 * gradient computation is itself recorded and can be differentiated again. */
#include <stdatomic.h>

#include <stdlib.h>

#include "../dist/dist_impl.h" /* .allreduce */
#include "tapegrad/ops.h"
#include "tape_impl.h"

static atomic_bool persistent_inside_warned; /* once per process, whichever thread comes first */

/* Marks every entry that lies on a path from a requested source forward. */
static void mark_needed(tg_tape *t, uint32_t serial)
{
    for (size_t k = 0; k < t->n_nodes; k++) {
        tg_node *nd = t->nodes[k];
        tg_grad_kind kind = tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a);
        if (kind == TG_GRAD_NONE || kind == TG_GRAD_STOP)
            continue;
        for (int i = 0; i < nd->n; i++)
            if (nd->in_entry[i] && nd->in_entry[i]->needed_serial == serial) {
                for (int k = 0; k < nd->n_out; k++)
                    nd->outs[k]->needed_serial = serial;
                break;
            }
    }
}

static bool accumulate(tg_loc loc, tg_entry *e, tg_tensor *g, uint32_t serial)
{
    if (e->grad_serial != serial) {
        e->grad_serial = serial;
        e->grad = g;
        return true;
    }
    e->grad = tg_add_at(loc, e->grad, g);
    return e->grad != NULL;
}

static bool saved_alive(tg_loc loc, const tg_node *nd)
{
    bool alive = true;
    for (int k = 0; k < nd->n_out && alive; k++)
        alive = nd->outs[k]->t->state == TG_HEADER_ALIVE && nd->outs[k]->t->gen == nd->outs[k]->gen;
    for (int i = 0; i < nd->n && alive; i++)
        alive = nd->in[i]->state == TG_HEADER_ALIVE && nd->in[i]->gen == nd->in_gen[i];
    if (!alive)
        tg__fail(loc,
                 "tg_gradient: a tensor that %s (recorded at %s:%d) saved for backward was freed when its "
                 "scope ended; compute gradients before ending the scopes of the recorded computation",
                 tg__op_name(nd->op), nd->loc.file, nd->loc.line);
    return alive;
}

/* Whether x broadcasts to the shape of g: then a gradient of g's shape sums back to x. */
static bool broadcasts_to(const tg_tensor *x, const tg_tensor *g)
{
    if (x->rank > g->rank)
        return false;
    for (int i = 0; i < x->rank; i++) {
        int64_t d = x->shape[x->rank - 1 - i];
        if (d != 1 && d != g->shape[g->rank - 1 - i])
            return false;
    }
    return true;
}

bool tg__rule_gradients(const tg_grad_ctx *g, tg_op_kind op, tg_tensor **dx)
{
    if (!tg__op_table[op].backward(g, dx))
        return false;
    for (int i = 0; i < g->n; i++)
        if (dx[i] && !tg__same_shape(dx[i], g->in[i]) && broadcasts_to(g->in[i], dx[i])) {
            tg_shape s = tg__shape(g->in[i]);
            if (!(dx[i] = tg__unbroadcast(g->loc, dx[i], &s)))
                return false;
            tg__trace_shape_like(dx[i], g->in[i]);
        }
    return true;
}

/* Whether any output of the node got a gradient in this pass. */
static bool reached(const tg_node *nd, uint32_t serial)
{
    for (int k = 0; k < nd->n_out; k++)
        if (nd->outs[k]->grad_serial == serial && nd->outs[k]->needed_serial == serial)
            return true;
    return false;
}

/* The outputs and their gradients, for a rule: zeros for an output no gradient reached,
 * as TF gives a multi-output op's rule. */
static bool output_gradients(const tg_node *nd, uint32_t serial, tg_tensor **outs, tg_tensor **dys)
{
    for (int k = 0; k < nd->n_out; k++) {
        const tg_entry *e = nd->outs[k];
        outs[k] = e->t;
        dys[k] = e->grad_serial == serial ? e->grad : tg_zeros_like_at(nd->loc, e->t);
        if (!dys[k])
            return false;
    }
    return true;
}

/* Runs one node's backward rule and accumulates into the inputs that need it. */
static bool backward_node(tg_node *nd, uint32_t serial)
{
    const tg_op_def *def = &tg__op_table[nd->op];
    tg_grad_kind kind = tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a);
    if (kind == TG_GRAD_NONE || kind == TG_GRAD_STOP)
        return true;
    if (!saved_alive(nd->loc, nd))
        return false;
    tg_tensor *small[8] = {0}, **dx = small;
    if (nd->n > 8 && !(dx = tg__arena_alloc(tg__ctx()->scope, sizeof(tg_tensor *) * (size_t)nd->n)))
        return tg__fail(nd->loc, "out of memory in backward of %s", def->name);
    memset(dx, 0, sizeof(tg_tensor *) * (size_t)nd->n);
    uint64_t errors = tg__error_count(); /* a rule's op that failed is no "no gradient" */
    if (kind == TG_GRAD_ZERO) {
        for (int i = 0; i < nd->n; i++)
            dx[i] = tg_zeros_like_at(nd->loc, nd->in[i]);
    } else {
        tg_tensor *one_out, *one_dy, **outs = &one_out, **dys = &one_dy;
        if (nd->n_out > 1 && (!(outs = tg__arena_alloc(tg__ctx()->scope, sizeof *outs * (size_t)nd->n_out)) ||
                              !(dys = tg__arena_alloc(tg__ctx()->scope, sizeof *dys * (size_t)nd->n_out))))
            return tg__fail(nd->loc, "out of memory in backward of %s", def->name);
        if (!output_gradients(nd, serial, outs, dys))
            return false;
        tg_grad_ctx g = {.loc = nd->loc,
                         .in = nd->in,
                         .n = nd->n,
                         .out = outs[0],
                         .dy = dys[0],
                         .a = &nd->a,
                         .n_out = nd->n_out,
                         .outs = outs,
                         .dys = dys};
        for (int i = 0; i < nd->n && i < 32; i++) /* inputs whose gradient would be dropped */
            if (!nd->in_entry[i] || nd->in_entry[i]->needed_serial != serial)
                g.skip |= 1u << i;
        tg_context *ctx = tg__ctx();
        bool outer = ctx->in_backward;
        ctx->in_backward = true; /* numerics checks look at the gradients it gives, below */
        bool ok = tg__rule_gradients(&g, nd->op, dx);
        ctx->in_backward = outer;
        if (!ok)
            return false;
    }
    if (tg__error_count() != errors)
        return false;
    for (int i = 0; i < nd->n; i++) {
        tg_entry *e = nd->in_entry[i];
        if (!dx[i] || !e || e->needed_serial != serial)
            continue;
        if (!tg__same_shape(dx[i], nd->in[i])) {
            char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
            tg_shape sa = tg__shape(dx[i]), sb = tg__shape(nd->in[i]);
            return tg__fail(nd->loc,
                            "internal error: the backward rule of %s gave a gradient of shape %s for input %d "
                            "of shape %s",
                            def->name, tg__shape_str(&sa, a, sizeof a), i, tg__shape_str(&sb, b, sizeof b));
        }
        if ((tg__ctx()->check & TG_CHECK_NUMERICS) &&
            !tg__numerics_gradient(nd->op, nd->loc, nd->layer, (const tg_tensor *const *)nd->in, nd->n, i, dx[i],
                                   nd->out->grad_serial == serial ? nd->out->grad : NULL))
            return false;
        if (!accumulate(nd->loc, e, dx[i], serial))
            return false;
    }
    return true;
}

static void warn_stale_read(tg_loc loc, const tg_entry *e)
{
    tg_var *v = e->var->var;
    tg__warn(loc,
             "variable '%s' was assigned at %s:%d after the tape read it at %s:%d; the gradient is computed at "
             "the value the tape recorded (as TF does), not at the variable's current value",
             v->name, v->last_assign.file ? v->last_assign.file : "?", v->last_assign.line, e->loc.file, e->loc.line);
}

/* The gradient of source x: its entry's, or the sum over the recorded reads of a variable.
 * *out stays NULL when x is not connected. */
static bool collect(tg_loc loc, tg_tape *t, const tg_tensor *x, uint32_t serial, tg_tensor **out)
{
    *out = NULL;
    if (!(x->flags & TG_T_VARIABLE)) {
        tg_entry *e = tg__tape_lookup(t, x);
        if (e && e->grad_serial == serial)
            *out = e->grad;
        return true;
    }
    for (size_t k = 0; k < t->n_reads; k++) {
        tg_entry *e = t->reads[k];
        if (e->var != x || e->var_gen != x->gen || e->grad_serial != serial)
            continue;
        if (e->var_version != x->var->version) {
            if (tg__ctx()->check & TG_CHECK_STRICT)
                return tg__fail(loc,
                                "tg_gradient: variable '%s' was assigned at %s:%d after the tape read it at "
                                "%s:%d (an error in strict mode; TF would return the gradient at the recorded value)",
                                x->var->name, x->var->last_assign.file ? x->var->last_assign.file : "?",
                                x->var->last_assign.line, e->loc.file, e->loc.line);
            warn_stale_read(loc, e);
        }
        *out = *out ? tg_add_at(loc, *out, e->grad) : e->grad;
        if (!*out)
            return false;
    }
    return true;
}

static void mark_source(tg_tape *t, const tg_tensor *x, uint32_t serial)
{
    if (x->flags & TG_T_VARIABLE) {
        for (size_t k = 0; k < t->n_reads; k++)
            if (t->reads[k]->var == x && t->reads[k]->var_gen == x->gen)
                t->reads[k]->needed_serial = serial;
    } else {
        tg_entry *e = tg__tape_lookup(t, x);
        if (e)
            e->needed_serial = serial;
    }
}

/* A variable that is itself a target (`y = v` chosen by a C `if`) gets that target's seed,
 * as TF gives 1.0: the variable is the target, read or not. */
static bool seed_itself(tg_loc loc, tg_tensor *const *targets, tg_tensor *const *seeds, int nt, const tg_tensor *x,
                        tg_tensor **out)
{
    for (int i = 0; i < nt; i++) {
        if (targets[i] != x || !(x->flags & TG_T_VARIABLE) || !tg__dtype_is_real(x->dtype))
            continue;
        *out = *out ? tg_add_at(loc, *out, seeds[i]) : seeds[i];
        if (!*out)
            return false;
    }
    return true;
}

/* One backward pass: seeds[i] flows from targets[i]; results in out[]. The op profile
 * counts every op the pass runs (rules, accumulation) as backward. With a reducer
 * (.allreduce over several ranks), each source's gradient is handed to it as soon as it
 * is final, so its bucket's allreduce runs during the rest of the pass. */
static bool backward_pass(tg_loc loc, tg_tape *t, tg_tensor *const *targets, tg_tensor *const *seeds, int nt,
                          tg_tensor *const *sources, int ns, tg_tensor **out, tg__reducer *r);

bool tg__backward(tg_loc loc, tg_tape *t, tg_tensor *const *targets, tg_tensor *const *seeds, int nt,
                  tg_tensor *const *sources, int ns, tg_tensor **out)
{
    tg_context *ctx = tg__ctx();
    ctx->gradient_depth++;
    bool ok = backward_pass(loc, t, targets, seeds, nt, sources, ns, out, NULL);
    ctx->gradient_depth--;
    return ok;
}

/* ---- when each source's gradient is final ------------------------------------------------- */
/* An entry's gradient is final once the reverse loop has run every node that reads it,
 * that is after the first of them in recording order; a source's, once all its entries'
 * are (a variable has one per recorded read). The plan: the sources in the order the
 * reverse loop finalises them, each with the node after which it is final. Sources no
 * node reads, and targets (seed_itself adds to them at the end), wait for the end. */
typedef struct final_plan final_plan;
static bool backward_loop(tg_loc loc, tg_tape *t, tg_tensor *const *targets, tg_tensor *const *seeds, int nt,
                          tg_tensor *const *sources, int ns, tg_tensor **out, tg__reducer *r, final_plan *plan);

typedef struct source_entry {
    const tg_entry *e;
    int source;
} source_entry;

struct final_plan {
    int *order;      /* sources by the node that finalises them, latest node first */
    size_t *after;   /* per source: that node's index; SIZE_MAX: at the end */
    bool *given;     /* per source: collected and handed over during the loop */
    int count, next; /* order[0, count); order[next] is the next to finalise */
};

static int by_entry(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const source_entry *)a)->e, y = (uintptr_t)((const source_entry *)b)->e;
    return (x > y) - (x < y);
}

static _Thread_local const size_t *sort_after; /* qsort's key below */

static int by_node_desc(const void *a, const void *b)
{
    size_t x = sort_after[*(const int *)a], y = sort_after[*(const int *)b];
    return (x < y) - (x > y);
}

static bool is_target(tg_tensor *const *targets, int nt, const tg_tensor *x)
{
    for (int i = 0; i < nt; i++)
        if (targets[i] == x)
            return true;
    return false;
}

static bool plan_finals(tg_loc loc, const tg_tape *t, size_t n_nodes, tg_tensor *const *targets, int nt,
                        tg_tensor *const *sources, int ns, uint32_t serial, final_plan *p)
{
    if (ns < 1)
        return true;
    size_t n_pairs = 0, cap = 0;
    for (int i = 0; i < ns; i++) /* each source's entries: its reads, or its own */
        cap += sources[i]->flags & TG_T_VARIABLE ? t->n_reads : 1;
    source_entry *pairs = malloc(sizeof *pairs * (cap ? cap : 1));
    p->order = malloc(sizeof *p->order * (size_t)ns);
    p->after = malloc(sizeof *p->after * (size_t)ns);
    p->given = calloc((size_t)ns, sizeof *p->given);
    if (!pairs || !p->order || !p->after || !p->given) {
        free(pairs);
        return tg__fail(loc, "tg_gradients: out of memory");
    }
    for (int i = 0; i < ns; i++) {
        const tg_tensor *x = sources[i];
        p->after[i] = SIZE_MAX;
        if (!tg__dtype_is_real(x->dtype) || is_target(targets, nt, x))
            continue;
        if (!(x->flags & TG_T_VARIABLE)) {
            const tg_entry *e = tg__tape_lookup(t, x);
            if (e && e->needed_serial == serial && n_pairs < cap)
                pairs[n_pairs++] = (source_entry){e, i};
            continue;
        }
        for (size_t k = 0; k < t->n_reads && n_pairs < cap; k++)
            if (t->reads[k]->var == x && t->reads[k]->var_gen == x->gen)
                pairs[n_pairs++] = (source_entry){t->reads[k], i};
    }
    qsort(pairs, n_pairs, sizeof *pairs, by_entry);
    for (size_t k = 0; k < n_nodes && n_pairs; k++) {
        const tg_node *nd = t->nodes[k];
        for (int j = 0; j < nd->n; j++) {
            source_entry key = {nd->in_entry[j], 0}, *hit;
            if (!key.e || !(hit = bsearch(&key, pairs, n_pairs, sizeof *pairs, by_entry)))
                continue;
            /* The first reader of any of a source's entries (a variable has one per
             * read) is the last node of the reverse loop to add to its gradient. */
            size_t lo = (size_t)(hit - pairs), hi = lo + 1;
            while (lo > 0 && pairs[lo - 1].e == key.e) /* the same entry for a source listed twice */
                lo--;
            while (hi < n_pairs && pairs[hi].e == key.e)
                hi++;
            for (size_t q = lo; q < hi; q++)
                if (p->after[pairs[q].source] == SIZE_MAX)
                    p->after[pairs[q].source] = k;
        }
    }
    free(pairs);
    for (int i = 0; i < ns; i++)
        if (p->after[i] != SIZE_MAX)
            p->order[p->count++] = i;
    sort_after = p->after;
    qsort(p->order, (size_t)p->count, sizeof *p->order, by_node_desc);
    return true;
}

static void plan_free(final_plan *p)
{
    free(p->order);
    free(p->after);
    free(p->given);
}

/* Hands over the sources final after node k. */
static bool hand_over(tg_loc loc, tg_tape *t, size_t k, tg_tensor *const *sources, uint32_t serial, tg_tensor **out,
                      final_plan *p, tg__reducer *r)
{
    while (p->next < p->count && p->after[p->order[p->next]] == k) {
        int i = p->order[p->next++];
        if (!collect(loc, t, sources[i], serial, &out[i]))
            return false;
        p->given[i] = true;
        tg__reducer_ready(r, i, out[i]);
    }
    return true;
}

static bool backward_pass(tg_loc loc, tg_tape *t, tg_tensor *const *targets, tg_tensor *const *seeds, int nt,
                          tg_tensor *const *sources, int ns, tg_tensor **out, tg__reducer *r)
{
    final_plan plan = {0};
    bool ok = backward_loop(loc, t, targets, seeds, nt, sources, ns, out, r, &plan);
    plan_free(&plan);
    return ok;
}

static bool backward_loop(tg_loc loc, tg_tape *t, tg_tensor *const *targets, tg_tensor *const *seeds, int nt,
                          tg_tensor *const *sources, int ns, tg_tensor **out, tg__reducer *r, final_plan *plan)
{
    uint32_t serial = ++t->grad_serial;
    size_t n_nodes = t->n_nodes; /* a persistent tape may record the backward ops too */
    for (int i = 0; i < ns; i++)
        mark_source(t, sources[i], serial);
    mark_needed(t, serial);
    if (r && !plan_finals(loc, t, n_nodes, targets, nt, sources, ns, serial, plan))
        return false;
    for (int i = 0; i < nt; i++) {
        tg_entry *e = tg__dtype_is_real(targets[i]->dtype) ? tg__tape_lookup(t, targets[i]) : NULL;
        if (e && e->needed_serial == serial && !accumulate(loc, e, seeds[i], serial))
            return false;
    }
    for (size_t k = n_nodes; k-- > 0;) {
        tg_node *nd = t->nodes[k];
        if (reached(nd, serial) && !backward_node(nd, serial))
            return false;
        if (r && !hand_over(loc, t, k, sources, serial, out, plan, r))
            return false;
        tg__reducer_progress(r);
    }
    for (int i = 0; i < ns; i++)
        if (!(plan->given && plan->given[i]) && (!collect(loc, t, sources[i], serial, &out[i]) ||
                                                 !seed_itself(loc, targets, seeds, nt, sources[i], &out[i])))
            return false;
    return true;
}

/* ---- argument checks ------------------------------------------------------------------------ */
/* An integer or bool target is no error: it has no gradient (TF returns None and, at a
 * verbose log level, says why). */
static bool check_target(tg_loc loc, const tg_tensor *y)
{
    if (!tg__check_input(loc, "tg_gradient", y, "target"))
        return false;
    if (!tg__dtype_is_real(y->dtype))
        tg__warn(loc,
                 "The dtype of the target tensor must be floating (e.g. tf.float32) when calling "
                 "GradientTape.gradient, got %s: it has no gradient",
                 tg_dtype_name(y->dtype));
    return true;
}

/* Before a gradient call: refuse a used tape, end a non-persistent tape's block. */
static tg_tape *begin_use(tg_loc loc, tg_tape *h, const char *func)
{
    tg_tape *t = tg__tape_get(loc, func, h);
    if (!t)
        return NULL;
    t->grad_loc = loc;
    if (t->used) {
        t->refused_loc = loc;
        tg__fail(loc,
                 "%s: A non-persistent GradientTape can only be used to compute one set of gradients (or "
                 "jacobians); the tape begun at %s:%d was already used. Begin it with "
                 "tg_tape_begin(.persistent = true) to take several gradients",
                 func, t->loc.file, t->loc.line);
        return NULL;
    }
    if (t->active && !t->persistent)
        tg__tape_deactivate(t, loc);
    if (t->active && t->persistent && !t->paused && !atomic_exchange(&persistent_inside_warned, true)) {
        tg__warn(loc,
                 "Calling GradientTape.gradient on a persistent tape inside its context is significantly less "
                 "efficient than calling it outside the context (it causes the gradient ops to be recorded on the "
                 "tape, leading to increased CPU and memory usage). Only call GradientTape.gradient inside the "
                 "context if you actually want to trace the gradient in order to compute higher order derivatives.");
    }
    return t;
}

/* A non-persistent tape refuses further gradients; what it recorded stays until
 * tg_tape_free, so tg_explain can still walk it. */
static void end_use(tg_loc loc, tg_tape *t)
{
    if (!t->persistent) {
        t->used = true;
        t->used_loc = loc;
    }
}

static void fill_unconnected(tg_loc loc, tg_unconnected mode, tg_tensor *const *sources, tg_tensor **out, int n)
{
    for (int i = 0; i < n; i++)
        if (!out[i] && mode == TG_UNCONNECTED_ZERO)
            out[i] = tg_zeros_like_at(loc, sources[i]);
}

/* ---- tg_gradients ----------------------------------------------------------------------------- */
int tg_gradients_at(tg_loc loc, tg_tape *h, tg_gradient_opts o)
{
    if (o.out)
        memset(o.out, 0, sizeof(tg_tensor *) * (size_t)(o.n_sources > 0 ? o.n_sources : 0));
    if (!o.targets || o.n_targets < 1 || !o.sources || o.n_sources < 1 || !o.out)
        return tg__failf(loc, "tg_gradients: give .targets/.n_targets >= 1, .sources/.n_sources >= 1 and .out");
    if (o.unconnected != TG_UNCONNECTED_NONE && o.unconnected != TG_UNCONNECTED_ZERO)
        return tg__failf(loc, "tg_gradients: .unconnected must be TG_UNCONNECTED_NONE or TG_UNCONNECTED_ZERO (got %d)",
                         (int)o.unconnected);
    for (int i = 0; i < o.n_targets; i++)
        if (!check_target(loc, o.targets[i]))
            return -1;
    for (int i = 0; i < o.n_sources; i++)
        if (!tg__check_input(loc, "tg_gradient", o.sources[i], "source"))
            return -1;
    tg_tensor *small[8], **seeds = small;
    if (o.n_targets > 8 && !(seeds = tg__arena_alloc(tg__ctx()->scope, sizeof(tg_tensor *) * (size_t)o.n_targets)))
        return tg__failf(loc, "tg_gradients: out of memory");
    for (int i = 0; i < o.n_targets; i++) {
        const tg_tensor *y = o.targets[i], *s = o.output_gradients ? o.output_gradients[i] : NULL;
        if (o.output_gradients) {
            if (!tg__check_input(loc, "tg_gradient", s, "output_gradients[i]"))
                return -1;
            tg_shape ys = tg__shape(y), ss = tg__shape(s);
            if (!tg__shape_eq(&ys, &ss) || s->dtype != y->dtype) {
                char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
                return tg__failf(loc,
                                 "tg_gradient: output_gradients[%d] has shape %s and dtype %s; its target has "
                                 "shape %s and dtype %s",
                                 i, tg__shape_str(&ss, a, sizeof a), tg_dtype_name(s->dtype),
                                 tg__shape_str(&ys, b, sizeof b), tg_dtype_name(y->dtype));
            }
        }
        seeds[i] = s ? (tg_tensor *)s : tg_ones_like_at(loc, y);
        if (!seeds[i])
            return -1;
    }
    tg_tape *t = begin_use(loc, h, "tg_gradient");
    if (!t)
        return -1;
    for (int i = 0; i < o.n_sources; i++)
        if (!tg__dtype_is_real(o.sources[i]->dtype))
            tg__warn(loc,
                     "The dtype of the source tensor must be floating (e.g. tf.float32) when calling "
                     "GradientTape.gradient, got %s: source %d gets no gradient",
                     tg_dtype_name(o.sources[i]->dtype), i);
    double samples = o.samples > 0 ? o.samples : -1;
    tg__reducer *reducer = NULL; /* .allreduce over several ranks, in buckets */
    if (o.allreduce && tg__reducer_begin(loc, &reducer, o.sources, o.n_sources, samples) != 0) {
        end_use(loc, t);
        return -1;
    }
    tg_context *ctx = tg__ctx();
    ctx->gradient_depth++;
    bool ok = backward_pass(loc, t, o.targets, seeds, o.n_targets, o.sources, o.n_sources, o.out, reducer);
    ctx->gradient_depth--;
    end_use(loc, t);
    if (!ok) {
        memset(o.out, 0, sizeof(tg_tensor *) * (size_t)o.n_sources);
        if (reducer) /* the other ranks wait for this one: it completes the buckets as failed */
            tg__reducer_end(reducer, NULL, true);
        else if (o.allreduce) /* the same, through the list's check */
            tg_allreduce_gradients_at(loc, NULL, o.n_sources, (tg_allreduce_opts){.samples = -1, .failed = true});
        return -1;
    }
    for (int i = 0; i < o.n_sources; i++)
        if (!tg__dtype_is_real(o.sources[i]->dtype))
            o.out[i] = NULL;
    tg__remember_missing(loc, t, &o);
    fill_unconnected(loc, o.unconnected, o.sources, o.out, o.n_sources);
    tg_clear_error();
    int rc = reducer       ? tg__reducer_end(reducer, o.out, false)
             : o.allreduce ? tg_allreduce_gradients_at(loc, o.out, o.n_sources, (tg_allreduce_opts){.samples = samples})
                           : 0;
    if (rc != 0)
        memset(o.out, 0, sizeof(tg_tensor *) * (size_t)o.n_sources);
    return rc;
}

tg_tensor *tg_gradient_at(tg_loc loc, tg_tape *t, const tg_tensor *target, const tg_tensor *source)
{
    tg_tensor *out = NULL;
    if (!target)
        return tg__null_arg(loc, "tg_gradient", "target");
    if (!source)
        return tg__null_arg(loc, "tg_gradient", "source");
    tg_gradients_at(loc, t,
                    (tg_gradient_opts){.targets = (tg_tensor *const[]){(tg_tensor *)target},
                                       .n_targets = 1,
                                       .sources = (tg_tensor *const[]){(tg_tensor *)source},
                                       .n_sources = 1,
                                       .out = &out});
    return out;
}

/* ---- jacobians ------------------------------------------------------------------------------- */
/* A one-hot seed of `like`'s shape: 1 at flat index i, or at [b, i] for every batch row b. */
static tg_tensor *unit_seed(tg_loc loc, const tg_tensor *like, int64_t i, bool batched)
{
    tg_tensor *s = tg_fill_at(loc, like->dtype, tg__shape(like), 0.0); /* its values set here: a constant in a graph */
    if (!s)
        return NULL;
    if (!batched) {
        tg__set(s, i, 1.0);
        return s;
    }
    int64_t per = like->size / like->shape[0];
    for (int64_t b = 0; b < like->shape[0]; b++)
        tg__set(s, b * per + i, 1.0);
    return s;
}

/* Rows of d target[i] / d source, stacked on `axis` and reshaped to `shape`. */
static tg_tensor *jacobian_rows(tg_loc loc, const char *func, tg_tape *h, const tg_tensor *y, const tg_tensor *x,
                                tg_unconnected mode, bool batched, tg_shape shape)
{
    tg_tape *t = NULL;
    if (!check_target(loc, y) || !tg__check_input(loc, func, x, "source") || !(t = begin_use(loc, h, func)))
        return NULL;
    int64_t m = batched ? (y->shape[0] ? y->size / y->shape[0] : 0) : y->size;
    tg_tensor **rows = tg__arena_alloc(tg__ctx()->scope, sizeof(tg_tensor *) * (size_t)(m ? m : 1));
    bool ok = rows != NULL, any = false;
    for (int64_t i = 0; ok && i < m; i++) {
        tg_tensor *seed = unit_seed(loc, y, i, batched);
        ok = seed && tg__backward(loc, t, (tg_tensor *const[]){(tg_tensor *)y}, &seed, 1,
                                  (tg_tensor *const[]){(tg_tensor *)x}, 1, &rows[i]);
        any |= ok && rows[i];
    }
    end_use(loc, t);
    if (!ok)
        return NULL;
    if (!any && mode == TG_UNCONNECTED_NONE) {
        tg_clear_error();
        return NULL;
    }
    for (int64_t i = 0; i < m; i++)
        if (!rows[i] && !(rows[i] = tg_zeros_like_at(loc, x)))
            return NULL;
    tg_tensor *j = m ? tg_stack_at(loc, rows, (int)m, batched ? 1 : 0) : tg_fill_at(loc, x->dtype, shape, 0.0);
    j = tg_reshape_at(loc, j, shape);
    if (j)
        tg_clear_error();
    return j;
}

tg_tensor *tg_jacobian_at(tg_loc loc, tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_jacobian_opts o)
{
    if (!tg__check_input(loc, "tg_jacobian", y, "target") || !tg__check_input(loc, "tg_jacobian", x, "source"))
        return NULL;
    if (y->rank + x->rank > TG_MAX_RANK)
        return tg__fail(loc, "tg_jacobian: target rank %d + source rank %d exceeds the maximum rank %d", y->rank,
                        x->rank, TG_MAX_RANK);
    tg_shape s = tg__shape(y);
    for (int i = 0; i < x->rank; i++)
        s.dims[s.rank++] = x->shape[i];
    return jacobian_rows(loc, "tg_jacobian", t, y, x, o.unconnected, false, s);
}

tg_tensor *tg_batch_jacobian_at(tg_loc loc, tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_jacobian_opts o)
{
    if (!tg__check_input(loc, "tg_batch_jacobian", y, "target") ||
        !tg__check_input(loc, "tg_batch_jacobian", x, "source"))
        return NULL;
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    tg_shape ys = tg__shape(y), xs = tg__shape(x);
    if (y->rank < 1 || x->rank < 1 || y->shape[0] != x->shape[0])
        return tg__fail(loc, "tg_batch_jacobian: Need first dimension of target shape %s and source shape %s to match.",
                        tg__shape_str(&ys, a, sizeof a), tg__shape_str(&xs, b, sizeof b));
    if (y->rank + x->rank - 1 > TG_MAX_RANK)
        return tg__fail(loc, "tg_batch_jacobian: the result would exceed the maximum rank %d", TG_MAX_RANK);
    tg_shape s = ys;
    for (int i = 1; i < x->rank; i++)
        s.dims[s.rank++] = x->shape[i];
    return jacobian_rows(loc, "tg_batch_jacobian", t, y, x, o.unconnected, true, s);
}
