/* Why is a gradient missing? tg_explain walks what the tape recorded (and the little
 * provenance a tensor keeps: its line, when it was made, the inputs of an op that ran
 * unrecorded while the tape recorded) and names the cause, the user's line behind it,
 * and the fix. Nothing here runs on the recording path unless asked for. */
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad/ops.h"
#include "tape_impl.h"

static const char *const cause_names[] = {
    [TG_CAUSE_NONE] = "none",
    [TG_CAUSE_NOT_READ] = "not_read",
    [TG_CAUSE_NOT_WATCHED] = "not_watched",
    [TG_CAUSE_STOP_GRADIENT] = "stop_gradient",
    [TG_CAUSE_NON_DIFFERENTIABLE] = "non_differentiable",
    [TG_CAUSE_OUTSIDE_TAPE] = "outside_tape",
    [TG_CAUSE_TAPE_USED] = "tape_used",
    [TG_CAUSE_STALE_READ] = "stale_read",
    [TG_CAUSE_INTEGER_DTYPE] = "integer_dtype",
    [TG_CAUSE_ZERO_GRADIENT] = "zero_gradient",
    [TG_CAUSE_UNCONNECTED] = "unconnected",
};

const char *tg_cause_name(tg_cause c)
{
    return (unsigned)c < sizeof cause_names / sizeof *cause_names ? cause_names[c] : "unknown";
}

static const char *file_of(tg_loc l) { return l.file ? l.file : "?"; }

static void say(tg_diagnosis *d, tg_cause cause, tg_loc where, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void say(tg_diagnosis *d, tg_cause cause, tg_loc where, const char *op, const char *fmt, ...)
{
    d->cause = cause;
    d->where = where;
    d->op = op;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
}

/* The name of a source for messages: a variable's name, or where a tensor was made. */
static const char *source_name(const tg_tensor *x, char *buf, size_t size)
{
    if (x->flags & TG_T_VARIABLE)
        snprintf(buf, size, "variable '%s'", x->var->name);
    else
        snprintf(buf, size, "the tensor made at %s:%d", file_of(x->loc), x->loc.line);
    return buf;
}

/* When, relative to the tape's recording, clock time `stamp` was; NULL while it recorded. */
static const char *when(const tg_tape *t, uint64_t stamp, char *buf, size_t size)
{
    if (stamp <= t->begin_stamp) {
        if (t->reset_loc.file)
            snprintf(buf, size, "before the tape was reset at %s:%d", file_of(t->reset_loc), t->reset_loc.line);
        else
            snprintf(buf, size, "before the tape began at %s:%d", file_of(t->loc), t->loc.line);
        return buf;
    }
    if (t->end_stamp && stamp >= t->end_stamp) {
        snprintf(buf, size, "after the tape ended at %s:%d", file_of(t->end_loc), t->end_loc.line);
        return buf;
    }
    for (size_t i = 0; i < t->n_pauses; i++)
        if (stamp > t->pauses[i].from && stamp < t->pauses[i].to) {
            snprintf(buf, size, "inside stop_recording (begun at %s:%d)", file_of(t->pauses[i].loc),
                     t->pauses[i].loc.line);
            return buf;
        }
    return NULL;
}

static bool alive(const tg_tensor *x, uint32_t gen) { return x && x->state == TG_HEADER_ALIVE && x->gen == gen; }

/* ---- where the path left the tape ------------------------------------------------------- */
#define WALK_MAX 4096

typedef struct walk {
    const tg_tape *t;
    const tg_tensor *x;
    int visited;
    tg_diagnosis *d;
} walk;

/* Searches the computation behind z for the place where it stopped being recorded:
 * a tensor computed while the tape did not record, one made from raw data while it
 * did, or the unwatched source itself. True when found (d filled). */
static bool find_break(walk *w, const tg_tensor *z)
{
    if (!z || z->state != TG_HEADER_ALIVE || ++w->visited > WALK_MAX)
        return false;
    char sb[160], wb[200];
    if (z == w->x || ((z->flags & TG_T_SNAPSHOT) && (w->x->flags & TG_T_VARIABLE) && z->data == w->x->data))
        return false;   /* reached the source through unrecorded ops: handled by the caller */
    tg_entry *e = tg__tape_lookup(w->t, z);
    if (e && e->node) {
        for (int i = 0; i < e->node->n; i++)
            if (!e->node->in_entry[i] && alive(e->node->in[i], e->node->in_gen[i]) && find_break(w, e->node->in[i]))
                return true;
        return false;
    }
    if (e)
        return false;   /* a watched leaf */
    if (z->flags & TG_T_VARIABLE)
        return false;
    const char *w_ = when(w->t, z->stamp, wb, sizeof wb);
    if (w_ && z->op != 0) {
        say(w->d, TG_CAUSE_OUTSIDE_TAPE, z->loc, tg__op_name(z->op),
            "the gradient of %s is missing: on the way to the target, %s at %s:%d was computed %s, so the tape "
            "never saw it. Compute it while the tape records (move the line inside the tape's block, after "
            "tg_tape_begin and before tg_tape_end)",
            source_name(w->x, sb, sizeof sb), tg__op_name(z->op), file_of(z->loc), z->loc.line, w_);
        return true;
    }
    uint64_t copied = tg__ctx()->copied_out;
    if (!w_ && (z->flags & TG_T_FROM_DATA) && copied > w->t->begin_stamp && copied < z->stamp) {
        say(w->d, TG_CAUSE_OUTSIDE_TAPE, z->loc, NULL,
            "the gradient of %s is missing: on the way to the target, the tensor made at %s:%d was built from C "
            "values after a recorded tensor was copied out of tapegrad (tg_copy_out or tg_item); values that leave "
            "tapegrad carry no gradient. Keep the computation in tapegrad ops from the source to the target",
            source_name(w->x, sb, sizeof sb), file_of(z->loc), z->loc.line);
        return true;
    }
    for (int i = 0; i < 2; i++)
        if (alive(z->src[i], z->src_gen[i]) && find_break(w, z->src[i]))
            return true;
    return false;
}

/* ---- reachability on the tape --------------------------------------------------------- */
enum { REACH_NONE = 0, REACH_GRAD = 1, REACH_CUT = 2 };

/* Marks how the target reaches every entry: through differentiable ops only, or only
 * through paths that an op without gradient (or stop_gradient) cuts. */
static void reach_from(tg_tape *t, tg_entry *target)
{
    for (size_t k = 0; k < t->map_cap; k++)
        if (t->map[k]) {
            t->map[k]->reach = REACH_NONE;
            t->map[k]->cut = NULL;
        }
    target->reach = REACH_GRAD;
    for (size_t k = t->n_nodes; k-- > 0;) {
        tg_node *nd = t->nodes[k];
        tg_entry *o = nd->out;
        if (o->reach == REACH_NONE)
            continue;
        tg_grad_kind kind = tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a);
        bool cuts = kind == TG_GRAD_NONE || kind == TG_GRAD_STOP;
        for (int i = 0; i < nd->n; i++) {
            tg_entry *e = nd->in_entry[i];
            if (!e)
                continue;
            if (!cuts && o->reach == REACH_GRAD)
                e->reach = REACH_GRAD;
            else if (e->reach == REACH_NONE) {
                e->reach = REACH_CUT;
                e->cut = cuts ? nd : o->cut;
            }
        }
    }
}

/* The source's entries: its recorded reads (a variable) or its own entry. */
static int source_entries(const tg_tape *t, const tg_tensor *x, tg_entry **out, int max)
{
    int n = 0;
    if (!(x->flags & TG_T_VARIABLE)) {
        tg_entry *e = tg__tape_lookup(t, x);
        if (e)
            out[n++] = e;
        return n;
    }
    for (size_t k = 0; k < t->n_reads && n < max; k++)
        if (t->reads[k]->var == x && t->reads[k]->var_gen == x->gen)
            out[n++] = t->reads[k];
    return n;
}

/* ---- causes at the source ------------------------------------------------------------ */
static void explain_unseen_source(walk *w, const tg_tensor *y)
{
    const tg_tape *t = w->t;
    const tg_tensor *x = w->x;
    tg_diagnosis *d = w->d;
    char sb[160], wb[200];
    if (x->flags & TG_T_VARIABLE) {
        for (size_t i = 0; i < t->n_unwatched; i++) {
            const tg_unwatched_read *u = &t->unwatched[i];
            if (u->var != x || u->gen != x->gen)
                continue;
            if (!x->var->trainable)
                say(d, TG_CAUSE_NOT_WATCHED, u->loc, NULL,
                    "variable '%s' is not trainable (trainable=false), so the tape did not watch it when %s:%d read "
                    "it. Make it trainable, or watch it explicitly with tg_watch(tape, var)",
                    x->var->name, file_of(u->loc), u->loc.line);
            else
                say(d, TG_CAUSE_NOT_WATCHED, u->loc, NULL,
                    "variable '%s' was read at %s:%d, but the tape (begun at %s:%d) has watch_accessed_variables=false "
                    "and was not asked to watch it. Call tg_watch(tape, var) before the read",
                    x->var->name, file_of(u->loc), u->loc.line, file_of(t->loc), t->loc.line);
            return;
        }
    }
    if (find_break(w, y))
        return;
    if (x->flags & TG_T_VARIABLE) {
        const char *w_ = x->var->last_read.file ? when(t, x->var->last_read_stamp, wb, sizeof wb) : NULL;
        if (w_)
            say(d, TG_CAUSE_NOT_READ, x->var->last_read, NULL,
                "variable '%s' was never read while the tape (begun at %s:%d) recorded; its last read, at %s:%d, was %s. "
                "Compute the forward pass and the loss inside the tape's block",
                x->var->name, file_of(t->loc), t->loc.line, file_of(x->var->last_read), x->var->last_read.line, w_);
        else
            say(d, TG_CAUSE_NOT_READ, t->loc, NULL,
                "variable '%s' was never read while the tape (begun at %s:%d) recorded: the target does not use it. "
                "Check that the loss is computed from the model that owns this variable",
                x->var->name, file_of(t->loc), t->loc.line);
        return;
    }
    say(d, TG_CAUSE_NOT_WATCHED, x->loc, NULL,
        "%s is a plain tensor, not a variable, and the tape (begun at %s:%d) was not asked to watch it. "
        "Call tg_watch(tape, x) before using it, or make it a tg_variable",
        source_name(x, sb, sizeof sb), file_of(t->loc), t->loc.line);
}

/* ---- gradients that exist --------------------------------------------------------------- */
static bool all_zero(const tg_tensor *g)
{
    for (int64_t i = 0; i < g->size; i++)
        if (tg__get(g, i) != 0.0)
            return false;
    return true;
}

static bool saved_tensors_alive(const tg_tape *t)
{
    for (size_t k = 0; k < t->n_nodes; k++) {
        const tg_node *nd = t->nodes[k];
        if (!alive(nd->out->t, nd->out->gen))
            return false;
        for (int i = 0; i < nd->n; i++)
            if (!alive(nd->in[i], nd->in_gen[i]))
                return false;
    }
    return true;
}

/* The node, nearest the target, where a non-zero gradient meets only zeros below it. */
static tg_node *vanishing_point(tg_tape *t)
{
    uint32_t serial = t->grad_serial;
    for (size_t k = t->n_nodes; k-- > 0;) {
        tg_node *nd = t->nodes[k];
        if (nd->out->grad_serial != serial || nd->out->needed_serial != serial || all_zero(nd->out->grad))
            continue;
        bool zeros_below = true;
        for (int i = 0; i < nd->n && zeros_below; i++) {
            tg_entry *e = nd->in_entry[i];
            if (e && e->needed_serial == serial)
                zeros_below = e->grad_serial == serial && all_zero(e->grad);
        }
        if (zeros_below)
            return nd;
    }
    return NULL;
}

/* Runs the gradient privately (nothing recorded, nothing marked used) and reports an
 * identically zero one with the op where it vanished. */
static void explain_zero(tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_diagnosis *d)
{
    if (!saved_tensors_alive(t))
        return;
    tg_context *ctx = tg__ctx();
    int recording = ctx->n_recording;
    ctx->n_recording = 0;
    tg_scope *s = tg_scope_begin_at((tg_loc){__FILE__, __LINE__});
    tg_tensor *g = NULL, *seed = tg_ones_like_at(y->loc, y);
    bool ok = seed && tg__backward(y->loc, t, (tg_tensor *const[]){(tg_tensor *)y}, &seed, 1,
                                   (tg_tensor *const[]){(tg_tensor *)x}, 1, &g);
    if (ok && g && all_zero(g)) {
        char sb[160];
        tg_node *v = vanishing_point(t);
        if (v)
            say(d, TG_CAUSE_ZERO_GRADIENT, v->loc, tg__op_name(v->op),
                "the gradient of %s exists but is identically zero: it vanishes at %s (%s:%d), where every value "
                "flowing back is zero (for example every ReLU unit inactive, a saturated clip, or a softmax or "
                "normalisation over an axis of size 1). The target does not vary with this source here",
                source_name(x, sb, sizeof sb), tg__op_name(v->op), file_of(v->loc), v->loc.line);
        else
            say(d, TG_CAUSE_ZERO_GRADIENT, y->loc, NULL,
                "the gradient of %s exists but is identically zero: the target does not vary with it here",
                source_name(x, sb, sizeof sb));
    }
    tg_scope_end_at((tg_loc){__FILE__, __LINE__}, s);
    ctx->n_recording = recording;
    tg_clear_error();
}

static void explain_present(tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_entry **xe, int nx, tg_diagnosis *d)
{
    char sb[160];
    if (t->used && t->refused_loc.file) {
        say(d, TG_CAUSE_TAPE_USED, t->refused_loc, NULL,
            "the tape begun at %s:%d is not persistent and already gave its gradients at %s:%d, so the gradient "
            "call at %s:%d was refused. Begin it with tg_tape_begin(.persistent = true) to take several, or "
            "compute all gradients in one tg_gradients call",
            file_of(t->loc), t->loc.line, file_of(t->used_loc), t->used_loc.line, file_of(t->refused_loc),
            t->refused_loc.line);
        return;
    }
    for (int i = 0; i < nx; i++) {
        tg_entry *e = xe[i];
        if (e->var && e->var->var && e->var_version != e->var->var->version) {
            tg_var *v = e->var->var;
            say(d, TG_CAUSE_STALE_READ, v->last_assign, NULL,
                "variable '%s' was assigned at %s:%d after the tape read it at %s:%d: the gradient is computed at the "
                "value the tape recorded (as TF does), not at the variable's current value. Record a new tape after "
                "updating the variable",
                v->name, file_of(v->last_assign), v->last_assign.line, file_of(e->loc), e->loc.line);
            return;
        }
    }
    explain_zero(t, y, x, d);
    if (d->cause == TG_CAUSE_NONE)
        say(d, TG_CAUSE_NONE, y->loc, NULL, "the gradient of %s is present", source_name(x, sb, sizeof sb));
}

/* ---- tg_explain -------------------------------------------------------------------------- */
static void explain(tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_diagnosis *d)
{
    char sb[160], wb[200];
    *d = (tg_diagnosis){0};
    walk w = {.t = t, .x = x, .d = d};
    if (!tg_dtype_is_float(x->dtype) || !tg_dtype_is_float(y->dtype)) {
        const tg_tensor *i = tg_dtype_is_float(x->dtype) ? y : x;
        say(d, TG_CAUSE_INTEGER_DTYPE, i->loc, NULL,
            "%s has dtype %s: only float32 and float64 tensors have gradients (TF returns None). Use a float dtype, "
            "and cast to an integer only outside the differentiated path",
            i == x ? source_name(x, sb, sizeof sb) : "the target", tg_dtype_name(i->dtype));
        return;
    }
    tg_entry *xe[64];
    int nx = source_entries(t, x, xe, 64);
    tg_entry *ye = tg__tape_lookup(t, y);
    if (!ye) {
        const char *w_ = when(t, y->stamp, wb, sizeof wb);
        if (w_ && y->op != 0)
            say(d, TG_CAUSE_OUTSIDE_TAPE, y->loc, tg__op_name(y->op),
                "the target (%s at %s:%d) was computed %s, so the tape recorded nothing that leads to it. Compute "
                "the loss inside the tape's block",
                tg__op_name(y->op), file_of(y->loc), y->loc.line, w_);
        else if (!nx)
            explain_unseen_source(&w, y);
        else if (!find_break(&w, y))
            say(d, TG_CAUSE_UNCONNECTED, y->loc, NULL,
                "the target (made at %s:%d) does not depend on %s on this tape", file_of(y->loc), y->loc.line,
                source_name(x, sb, sizeof sb));
        return;
    }
    if (!nx) {
        explain_unseen_source(&w, y);
        return;
    }
    reach_from(t, ye);
    int best = REACH_NONE;
    tg_node *cut = NULL;
    for (int i = 0; i < nx; i++) {
        if (xe[i]->reach == REACH_GRAD)
            best = REACH_GRAD;
        else if (xe[i]->reach == REACH_CUT && best == REACH_NONE) {
            best = REACH_CUT;
            cut = xe[i]->cut;
        }
    }
    if (best == REACH_GRAD) {
        explain_present(t, y, x, xe, nx, d);
    } else if (best == REACH_CUT) {
        bool stop = tg__grad_kind(cut->op, (const tg_tensor *const *)cut->in, &cut->a) == TG_GRAD_STOP;
        if (stop)
            say(d, TG_CAUSE_STOP_GRADIENT, cut->loc, tg__op_name(cut->op),
                "every path from %s to the target is cut by tg_stop_gradient at %s:%d. Remove it, or keep it only "
                "on the paths that must not be trained",
                source_name(x, sb, sizeof sb), file_of(cut->loc), cut->loc.line);
        else
            say(d, TG_CAUSE_NON_DIFFERENTIABLE, cut->loc, tg__op_name(cut->op),
                "every path from %s to the target is cut by %s at %s:%d, which has no gradient (as in TF). Use a "
                "differentiable surrogate (for example softmax instead of argmax, a sigmoid instead of a comparison, "
                "a float cast instead of an integer one), or keep it out of the loss",
                source_name(x, sb, sizeof sb), tg__op_name(cut->op), file_of(cut->loc), cut->loc.line);
    } else if (!find_break(&w, y)) {
        say(d, TG_CAUSE_UNCONNECTED, y->loc, NULL,
            "the target (made at %s:%d) does not depend on %s: the tape saw it (read at %s:%d) but nothing from it "
            "reaches the target", file_of(y->loc), y->loc.line, source_name(x, sb, sizeof sb),
            file_of(xe[0]->loc), xe[0]->loc.line);
    }
}

int tg_explain_at(tg_loc loc, tg_tape *h, const tg_tensor *y, const tg_tensor *x, tg_diagnosis *out)
{
    if (!out)
        return tg__failf(loc, "tg_explain: `out` is NULL");
    *out = (tg_diagnosis){0};
    tg_tape *t = tg__tape_get(loc, "tg_explain", h);
    if (!t || !tg__check_input(loc, "tg_explain", y, "target") ||
        !tg__check_input(loc, "tg_explain", x, "source"))
        return -1;
    explain(t, y, x, out);
    return 0;
}

/* ---- diagnoses kept from gradient calls ---------------------------------------------------- */
#define MISSING_MAX 64   /* diagnoses kept per thread; each is about 1 KB of thread storage */

typedef struct missing {
    const tg_tensor *source;
    uint32_t gen;
    tg_diagnosis d;
} missing;

static _Thread_local missing kept[MISSING_MAX];
static _Thread_local int kept_next, n_kept;

static missing *find_kept(const tg_tensor *x)
{
    for (int i = 0; n_kept && i < MISSING_MAX; i++)
        if (kept[i].source == x && kept[i].gen == x->gen)
            return &kept[i];
    return NULL;
}

static void keep(const tg_tensor *x, const tg_diagnosis *d)
{
    missing *m = find_kept(x);
    if (m) {
        m->d = *d;
        return;
    }
    if (!kept[kept_next].source)
        n_kept++;
    kept[kept_next] = (missing){x, x->gen, *d};
    kept_next = (kept_next + 1) % MISSING_MAX;
}

/* A source that has a gradient again has nothing to explain. */
static void forget(const tg_tensor *x)
{
    missing *m = find_kept(x);
    if (m) {
        m->source = NULL;
        n_kept--;
    }
}

void tg__remember_missing(tg_tape *t, tg_tensor *const *targets, int nt, tg_tensor *const *sources, int ns,
                          tg_tensor *const *grads)
{
    bool eager = tg__ctx()->check & TG_CHECK_EAGER;
    for (int i = 0; i < ns; i++) {
        if (grads[i] && n_kept)
            forget(sources[i]);
        if (grads[i] && !eager)
            continue;
        tg_diagnosis d = {0};
        for (int k = 0; k < nt && d.cause == TG_CAUSE_NONE; k++)
            explain(t, targets[k], sources[i], &d);
        if (d.cause == TG_CAUSE_NONE)
            continue;
        keep(sources[i], &d);
        if (eager)
            tg__warn(d.where, "[%s] %s", tg_cause_name(d.cause), d.message);
    }
}

int tg_explain_missing(const tg_tensor *x, tg_diagnosis *out)
{
    if (out)
        *out = (tg_diagnosis){0};
    if (!x || !out)
        return -1;
    missing *m = find_kept(x);
    if (!m)
        return -1;
    *out = m->d;
    return 0;
}

/* ---- eager checking ---------------------------------------------------------------------- */
#define WARNED_MAX 256
static _Thread_local tg_loc warned[WARNED_MAX];
static _Thread_local int n_warned;

/* True the first time a line is seen, so each line warns once. */
static bool first_time(tg_loc loc)
{
    for (int i = 0; i < n_warned; i++)
        if (warned[i].file == loc.file && warned[i].line == loc.line)
            return false;
    if (n_warned < WARNED_MAX)
        warned[n_warned++] = loc;
    return true;
}

bool tg__check_unrecorded(const tg_call *c)
{
    if (!(tg__ctx()->check & TG_CHECK_EAGER))
        return true;
    for (int i = 0; i < c->n; i++) {
        const tg_tensor *x = c->in[i];
        if ((x->flags & TG_T_VARIABLE) && x->var->trainable && tg__live_tapes() && first_time(c->loc)) {
            tg__warn(c->loc, "[outside_tape] %s reads trainable variable '%s' while no tape is recording: "
                     "anything computed from this result has no gradient. Begin the tape before this line if it "
                     "is part of the loss", tg__op_name(c->op), x->var->name);
            return true;
        }
        for (tg_tape *t = tg__live_tapes(); t; t = t->next_live)
            if (tg__tape_lookup(t, x) && first_time(c->loc)) {
                tg__warn(c->loc, "[outside_tape] %s uses a tensor recorded by the tape begun at %s:%d after that "
                         "tape stopped recording: its result has no gradient on that tape", tg__op_name(c->op),
                         file_of(t->loc), t->loc.line);
                return true;
            }
    }
    return true;
}

void tg__check_recorded(const tg_call *c)
{
    tg_grad_kind kind = tg__grad_kind(c->op, c->in, c->a);
    if ((kind == TG_GRAD_NONE || kind == TG_GRAD_STOP) && (tg__ctx()->check & TG_CHECK_EAGER) && first_time(c->loc))
        tg__warn(c->loc, "[%s] %s cuts the gradient path here: %s", kind == TG_GRAD_STOP ? "stop_gradient" :
                 "non_differentiable", tg__op_name(c->op), kind == TG_GRAD_STOP ? "stop_gradient passes no gradient" :
                 "it has no gradient (TF: None)");
}

/* ---- check modes ----------------------------------------------------------------------- */
void tg_set_check(unsigned flags) { tg__ctx()->check = flags; }
unsigned tg_get_check(void) { return tg__ctx()->check; }

/* TAPEGRAD_CHECK=eager,strict,numerics in the environment turns checks on for every thread. */
unsigned tg__env_check(void)
{
    const char *v = getenv("TAPEGRAD_CHECK");
    unsigned f = 0;
    if (v && strstr(v, "eager"))
        f |= TG_CHECK_EAGER;
    if (v && strstr(v, "strict"))
        f |= TG_CHECK_STRICT;
    if (v && strstr(v, "numerics"))
        f |= TG_CHECK_NUMERICS;
    if (v && !f && *v && strcmp(v, "0") != 0)
        f = TG_CHECK_EAGER;
    return f;
}
