/* Why is a gradient missing? tg_explain searches the provenance graph (provenance.h) for
 * a path from the target back to the source and names the first hop, from the source's
 * side, that carries no gradient: an op without one, a value computed while the tape did
 * not record, values copied out of tapegrad and built into a new tensor, an assign. With
 * no path at all it tells a variable created anew, a non-trainable one, a dead end, or a
 * target made of constants. Nothing here runs on the recording path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tapegrad/ops.h"
#include "provenance.h"

typedef struct why {
    tg_tape *t;
    const tg_tensor *y, *x;
    tg_loc call; /* the gradient call (or tg_explain) that asks */
    tg_diagnosis *d;
    tg_graph *g;
    tg_step brk;         /* the hop named, when the cause is on a path (for pictures) */
    char name[192];      /* the source, as messages call it */
    char labels[4][160]; /* ops as messages call them (node_label) */
    int n_labels;
} why;

static int source_entries(const tg_tape *t, const tg_tensor *x, tg_entry **out, int max);

static const char *file_of(tg_loc l) { return l.file ? l.file : "?"; }
/* "file", line for "%s:%d": the user's line, never one inside tapegrad (tg__user_loc). */
#define AT(l) file_of(tg__user_loc(l)), tg__user_loc(l).line

static void say(why *w, tg_cause cause, tg_loc where, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void say(why *w, tg_cause cause, tg_loc where, const char *op, const char *fmt, ...)
{
    tg_diagnosis *d = w->d;
    d->cause = cause;
    d->where = tg__user_loc(where);
    d->op = op;
    int n = snprintf(d->message, sizeof d->message, "%s: ", w->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message + n, sizeof d->message - (size_t)n, fmt, ap);
    va_end(ap);
}

void tg__source_name(const tg_tensor *x, char *buf, size_t size)
{
    if (x->flags & TG_T_VARIABLE)
        snprintf(buf, size, "variable '%s'", x->var->name);
    else
        snprintf(buf, size, "the tensor made at %s:%d", AT(x->loc));
}

/* An op as the user knows it, with the layer it ran in: "tg_bias_add_act in layer 'dense'". */
static const char *node_label(why *w, const tg_node *nd)
{
    char *buf = w->labels[w->n_labels++ % 4];
    if (nd->layer)
        snprintf(buf, sizeof w->labels[0], "%s in layer '%s'", tg__op_name(nd->op), nd->layer);
    else
        snprintf(buf, sizeof w->labels[0], "%s", tg__op_name(nd->op));
    return buf;
}

/* The op that made z, as the user knows it, or "a constant". */
static const char *op_name(why *w, const tg_tensor *z)
{
    tg_entry *e = tg__tape_lookup(w->t, z);
    if (e && e->node)
        return node_label(w, e->node);
    return z->op ? tg__op_name(z->op) : "a constant";
}

/* When, relative to the tape's recording, clock time `stamp` was; NULL while it recorded. */
static const char *when(const tg_tape *t, uint64_t stamp, char *buf, size_t size)
{
    if (stamp <= t->begin_stamp) {
        if (t->reset_loc.file)
            snprintf(buf, size, "before the tape was reset at %s:%d", AT(t->reset_loc));
        else
            snprintf(buf, size, "before the tape began at %s:%d", AT(t->loc));
        return buf;
    }
    if (t->end_stamp && stamp >= t->end_stamp) {
        snprintf(buf, size, "after the tape ended at %s:%d", AT(t->end_loc));
        return buf;
    }
    for (size_t i = 0; i < t->n_pauses; i++)
        if (stamp > t->pauses[i].from && stamp < t->pauses[i].to) {
            snprintf(buf, size, "inside stop_recording (begun at %s:%d)", AT(t->pauses[i].loc));
            return buf;
        }
    return NULL;
}

static const char *const unconnected_zero =
    " If the target is not meant to depend on it, pass .unconnected = TG_UNCONNECTED_ZERO to get zeros";

/* ---- integer dtypes --------------------------------------------------------------------- */
/* The op that used integer source x as indices (an embedding lookup), if any. */
static const tg_node *lookup_of(const tg_tape *t, const tg_tensor *x)
{
    for (size_t k = 0; k < t->n_nodes; k++) {
        const tg_node *nd = t->nodes[k];
        if ((nd->op == TG_OP_GATHER || nd->op == TG_OP_ONE_HOT) && nd->n > 1 && nd->in[1] == x)
            return nd;
        if (nd->op == TG_OP_ONE_HOT && nd->in[0] == x)
            return nd;
    }
    return NULL;
}

static void integer_source(why *w)
{
    const tg_node *lookup = lookup_of(w->t, w->x);
    if (lookup)
        say(w, TG_CAUSE_INTEGER_DTYPE, lookup->loc, tg__op_name(lookup->op),
            "it has dtype %s and is used as indices by %s at %s:%d: indices have no gradient (TF returns None). "
            "Differentiate with respect to the embedding output instead: the tensor %s made at %s:%d (pass it as "
            "the source, or tg_watch it)",
            tg_dtype_name(w->x->dtype), node_label(w, lookup), AT(lookup->loc), tg__op_name(lookup->op),
            AT(lookup->loc));
    else
        say(w, TG_CAUSE_INTEGER_DTYPE, w->x->loc, NULL,
            "it has dtype %s: only float32 and float64 tensors have gradients (TF returns None). Use a float dtype, "
            "and cast to an integer only outside the differentiated path",
            tg_dtype_name(w->x->dtype));
}

static void integer_target(why *w)
{
    const tg_tensor *y = w->y;
    say(w, TG_CAUSE_INTEGER_DTYPE, y->loc, y->op ? tg__op_name(y->op) : NULL,
        "the target (%s at %s:%d) has dtype %s: an integer or bool target has no gradient (TF returns None). "
        "Differentiate a float value: the probabilities instead of an argmax, the value before a cast to an "
        "integer",
        op_name(w, y), AT(y->loc), tg_dtype_name(y->dtype));
}

/* ---- variables that are not watched ------------------------------------------------------- */
static bool watched_variable(const tg_tape *t, const tg_tensor *v)
{
    for (size_t i = 0; i < t->n_watched; i++)
        if (t->watched[i] == v && t->watched_gen[i] == v->gen)
            return true;
    return false;
}

static const tg_unwatched_read *unwatched_read(const tg_tape *t, const tg_tensor *v)
{
    for (size_t i = 0; i < t->n_unwatched; i++)
        if (t->unwatched[i].var == v && t->unwatched[i].gen == v->gen)
            return &t->unwatched[i];
    return NULL;
}

static void not_trainable(why *w)
{
    const tg_var *v = w->x->var;
    const tg_unwatched_read *u = unwatched_read(w->t, w->x);
    char frozen[128] = "";
    if (v->frozen.file)
        snprintf(frozen, sizeof frozen, " (its layer was frozen at %s:%d)", AT(v->frozen));
    if (v->listed.file)
        say(w, TG_CAUSE_NOT_WATCHED, v->listed, NULL,
            "it is not trainable%s, like a moving statistic or a frozen layer's weight, so the tape does not watch "
            "it and it has no gradient (as in TF). It came in a list of all variables at %s:%d: pass "
            "tg_model_trainable_variables(model, &n) instead, or leave it out of the sources",
            frozen, AT(v->listed));
    else if (v->frozen.file)
        say(w, TG_CAUSE_NOT_WATCHED, v->frozen, NULL,
            "it is not trainable: its layer was frozen at %s:%d, so the tape does not watch it and it has no "
            "gradient (as in TF). Pass only trainable variables (tg_model_trainable_variables(model, &n)), or "
            "unfreeze the layer if it is meant to be trained",
            AT(v->frozen));
    else
        say(w, TG_CAUSE_NOT_WATCHED, u ? u->loc : w->x->loc, NULL,
            "it is not trainable (trainable=false), so the tape does not watch it%s and it has no gradient (as in "
            "TF). Leave it out of the sources, make it trainable, or watch it with tg_watch(tape, var) before it is "
            "read",
            u ? " when it was read" : "");
}

static void watching_off(why *w, tg_loc read)
{
    say(w, TG_CAUSE_NOT_WATCHED, read, NULL,
        "it was read at %s:%d, but the tape (begun at %s:%d) has watch_accessed_variables=false and was not asked "
        "to watch it. Call tg_watch(tape, var) before the read",
        AT(read), AT(w->t->loc));
}

static void plain_tensor(why *w)
{
    for (const tg_tape *o = tg__live_tapes(); o; o = o->next_live)
        if (o != w->t && tg__tape_lookup(o, w->x)) {
            say(w, TG_CAUSE_NOT_WATCHED, w->x->loc, NULL,
                "it is watched by the tape begun at %s:%d, not by this one (begun at %s:%d). Ask the tape that "
                "watches it, or tg_watch it on this one",
                AT(o->loc), AT(w->t->loc));
            return;
        }
    say(w, TG_CAUSE_NOT_WATCHED, w->x->loc, NULL,
        "it is a plain tensor, not a variable, and the tape (begun at %s:%d) was not asked to watch it. Call "
        "tg_watch(tape, x) before using it, or make it a tg_variable",
        AT(w->t->loc));
}

/* ---- the first break on a path ---------------------------------------------------------- */
static void cut(why *w, const tg_node *nd)
{
    if (tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a) == TG_GRAD_STOP)
        say(w, TG_CAUSE_STOP_GRADIENT, nd->loc, tg__op_name(nd->op),
            "its path to the target is cut by tg_stop_gradient at %s:%d. Remove it, or keep it only on the paths "
            "that must not be trained",
            AT(nd->loc));
    else
        say(w, TG_CAUSE_NON_DIFFERENTIABLE, nd->loc, tg__op_name(nd->op),
            "its path to the target is cut by %s at %s:%d, which has no gradient (as in TF). Use a differentiable "
            "surrogate (for example softmax instead of argmax, a sigmoid instead of a comparison, a float cast "
            "instead of an integer one), or keep it out of the loss",
            node_label(w, nd), AT(nd->loc));
}

static void copied_out(why *w, const tg_event *e, const tg_tensor *built)
{
    char from[192] = "", at[96] = "";
    if (built)
        snprintf(at, sizeof at, " at %s:%d", AT(built->loc));
    if (e->kind == TG_EVENT_MODEL_VALUES) {
        bool predict = !strcmp(e->func, "tg_predict");
        say(w, TG_CAUSE_COPIED_OUT, e->loc, e->func,
            "the path stops at %s:%d: %s returns %s, not a recorded tensor (as Keras's %s gives NumPy values), so "
            "the tensor built from them%s is a constant to the tape. Call tg_model_call(model, x, .training = true) "
            "inside the tape instead%s",
            AT(e->loc), e->func, predict ? "values" : "numbers", predict ? "predict" : "evaluate", at,
            predict ? "" : ", and compute the loss from its output with tg_model_compute_loss");
        return;
    }
    if (tg__alive(e->t, e->gen))
        snprintf(from, sizeof from, "the tensor made at %s:%d (%s)", AT(e->t->loc), op_name(w, e->t));
    else
        snprintf(from, sizeof from, "a recorded tensor");
    say(w, TG_CAUSE_COPIED_OUT, e->loc, e->func,
        "the path stops at %s:%d: %s copied %s out of the tape; the tensor built from those values%s is a constant "
        "to the tape. Values that leave tapegrad carry no gradient (TF's .numpy(), float(), np.* in a loss): keep "
        "the computation in tapegrad ops from the source to the target",
        AT(e->loc), e->func, from, at);
}

static void assigned(why *w, const tg_event *e)
{
    const char *var = tg__alive(e->var, e->var_gen) ? e->var->var->name : "?";
    say(w, TG_CAUSE_ASSIGNED, e->loc, e->func,
        "the value computed from it reaches the target only through %s at %s:%d into variable '%s', which has no "
        "gradient (an assign writes values; TF's has no gradient either). Use the computed tensor itself on the "
        "way to the target, and assign it only for later steps",
        e->func, AT(e->loc), var);
}

static void computed_outside(why *w, const tg_tensor *z)
{
    char wb[224];
    const char *w_ = when(w->t, z->stamp, wb, sizeof wb);
    const tg_tensor *y = w->y;
    if (w->call.file && w->t->end_stamp && y->stamp >= w->t->end_stamp && z->stamp >= w->t->end_stamp) {
        say(w, TG_CAUSE_OUTSIDE_TAPE, w->call, y->op ? tg__op_name(y->op) : NULL,
            "the target given to the gradient call at %s:%d was computed after the tape ended at %s:%d (its last op, "
            "%s at %s:%d), so the tape recorded nothing that leads to it. Compute the target inside the tape's "
            "block, before tg_tape_end",
            AT(w->call), AT(w->t->end_loc), op_name(w, y), AT(y->loc));
        return;
    }
    say(w, TG_CAUSE_OUTSIDE_TAPE, z->loc, z->op ? tg__op_name(z->op) : NULL,
        "on the way to the target, %s at %s:%d was computed %s, so the tape never saw it. Compute it while the tape "
        "records (move the line inside the tape's block, after tg_tape_begin and before tg_tape_end)",
        op_name(w, z), AT(z->loc), w_ ? w_ : "while the tape did not record");
}

/* Names the first hop of the path, from the source's side, that carries no gradient.
 * False when every hop is recorded. */
static bool first_break(why *w)
{
    const tg_graph *g = w->g;
    for (int i = 0; i < g->n_path; i++) {
        const tg_step *s = &g->path[i];
        w->brk = *s;
        switch (s->from.how) {
        case TG_HOP_CUT: cut(w, s->from.node); return true;
        case TG_HOP_LEFT: copied_out(w, s->from.event, s->child); return true;
        case TG_HOP_ASSIGN: assigned(w, s->from.event); return true;
        case TG_HOP_READ:
            if (i == 0 && !tg__tape_lookup(w->t, s->child)) {
                watching_off(w, s->child->loc);
                return true;
            }
            break;
        case TG_HOP_UNRECORDED:
            if (!tg__tape_recorded_at(w->t, s->child->stamp)) {
                computed_outside(w, s->child);
                return true;
            }
            if (i == 0) { /* an op on the source ran unrecorded while the tape recorded */
                if (w->x->flags & TG_T_VARIABLE)
                    watching_off(w, s->child->loc);
                else
                    plain_tensor(w);
                return true;
            }
            break;
        case TG_HOP_TAPE: /* an input the tape does not know: a constant to it */
            if (i == 0 && !tg__tape_lookup(w->t, w->x) && !(w->x->flags & TG_T_VARIABLE)) {
                plain_tensor(w);
                return true;
            }
            break;
        }
    }
    w->brk = (tg_step){0};
    return false;
}

/* ---- values rebuilt from copies, linked by time order ------------------------------------- */
typedef struct rebuild {
    why *w;
    const tg_tensor *built;
    const tg_event *event;
    int64_t score;
} rebuild;

/* Is the source behind the values of event e? */
static bool event_from_source(why *w, const tg_event *e)
{
    if (!e->t)
        return (w->x->flags & TG_T_VARIABLE) != 0; /* a model's values */
    tg_graph g2;
    tg__graph_init(&g2, w->t, w->x);
    bool found = tg__find_path(&g2, e->t);
    tg__graph_free(&g2);
    return found;
}

/* A value a person writes in a formula (0.5, 2, 1e-3), not one computed from data. */
static bool literal_value(const tg_tensor *z)
{
    if (z->size != 1 || !z->data) /* an abstract trace's value: not a literal */
        return false;
    double v = fabs(tg__get(z, 0)), scale = 1;
    while (v != 0 && v * scale < 100)
        scale *= 10;
    return fabs(v * scale - round(v * scale)) < 1e-6 * v * scale;
}

/* The likeliest rebuild of copied values: the size of what was copied, then a value no
 * formula would write, then the first tensor built after the copy. */
static bool score_link(tg_graph *g, const tg_tensor *z, const tg_parent *p, void *user)
{
    (void)g;
    rebuild *r = user;
    if (p->how != TG_HOP_LEFT || !p->weak || !event_from_source(r->w, p->event))
        return false;
    int64_t score = (p->event->t && p->event->t->size == z->size ? INT64_C(1) << 41 : 0) +
                    (literal_value(z) ? 0 : INT64_C(1) << 40) - (int64_t)(z->stamp - p->event->stamp);
    if (!r->built || score > r->score)
        *r = (rebuild){.w = r->w, .built = z, .event = p->event, .score = score};
    return false;
}

static bool weak_rebuild(why *w)
{
    enum { MAX = 4096 };
    const tg_tensor **anc = malloc(sizeof *anc * MAX);
    if (!anc)
        return false;
    int n = tg__ancestors(w->g, w->y, anc, MAX);
    rebuild r = {.w = w};
    tg_graph g2;
    tg__graph_init(&g2, w->t, w->x);
    g2.weak = true;
    for (int i = 0; i < n; i++)
        if ((anc[i]->flags & TG_T_FROM_DATA) && !anc[i]->built_from)
            tg__each_parent(&g2, anc[i], score_link, &r);
    tg__graph_free(&g2);
    free(anc);
    if (!r.built)
        return false;
    copied_out(w, r.event, r.built);
    w->brk = (tg_step){.child = r.built, .from = {.t = r.event->t, .how = TG_HOP_LEFT, .event = r.event, .weak = true}};
    return true;
}

/* ---- no path ------------------------------------------------------------------------------ */
static bool same_loc(tg_loc a, tg_loc b)
{
    return a.file && b.file && a.line == b.line && (a.file == b.file || !strcmp(a.file, b.file));
}

/* A variable of the same name or line that the target reads instead of the source,
 * which the tape never read. */
static bool recreated(why *w, const tg_tensor *const *anc, int n)
{
    const tg_tensor *x = w->x;
    tg_entry *reads[1];
    if (!(x->flags & TG_T_VARIABLE) || source_entries(w->t, x, reads, 1) || unwatched_read(w->t, x))
        return false;
    for (int i = 0; i < n; i++) {
        const tg_tensor *v = anc[i];
        if (!(v->flags & TG_T_VARIABLE) || v == x)
            continue;
        /* made where the source was, or under its name while the tape recorded: not a second,
         * unrelated variable made beside it */
        bool line = same_loc(v->loc, x->loc), name = !strcmp(v->var->name, x->var->name);
        bool now = tg__tape_recorded_at(w->t, v->stamp);
        if (!(line && (name || now)) && !(name && now))
            continue;
        say(w, TG_CAUSE_RECREATED, v->loc, NULL,
            "the tape read a new variable named '%s', made %s %s:%d, instead of this one: the code creates a new "
            "variable on every call. Create it once, outside the code that computes the loss (as a layer makes its "
            "weights once, in build), and reuse it",
            v->var->name, line ? "at the same line" : "at", AT(v->loc));
        return true;
    }
    return false;
}

/* For a target made of constants, the line to change: the first op the user's own code
 * ran on the way to the target after `after` (a loss function given to tg_compile runs
 * inside tg_fit, its ops at the user's lines); else the target's line. */
static tg_loc users_first_op(const tg_tensor *const *anc, int n, uint64_t after)
{
    const tg_tensor *first = NULL;
    for (int i = 0; i < n; i++)
        if (anc[i]->op && anc[i]->stamp > after && anc[i]->loc.file && !tg__in_library(anc[i]->loc.file) &&
            (!first || anc[i]->stamp < first->stamp))
            first = anc[i];
    return first ? first->loc : n ? anc[0]->loc : (tg_loc){0};
}

/* When the target depends on no variable and no watched tensor: a sentence saying so. */
static bool made_of_constants(why *w, const tg_tensor *const *anc, int n, char *text, size_t size)
{
    const tg_tensor *first = NULL;
    for (int i = 0; i < n; i++) {
        const tg_tensor *z = anc[i];
        if ((z->flags & (TG_T_VARIABLE | TG_T_SNAPSHOT)) || tg__tape_lookup(w->t, z))
            return false;
        if (!z->op && (!first || z->stamp < first->stamp))
            first = z;
    }
    const tg_tensor *y = w->y;
    char from[96] = "";
    if (first)
        snprintf(from, sizeof from, " (the first made at %s:%d)", AT(first->loc));
    snprintf(text, size,
             "The target (%s at %s:%d) depends on no variable and no watched tensor: it is computed "
             "from constants only%s, for example from the labels alone (a loss that ignores y_pred) or a metric's "
             "running state. Compute the loss from the model's output (tg_model_call inside the tape).",
             op_name(w, y), AT(y->loc), from);
    return true;
}

/* The inputs the source's computation was made from (not literal scalars): a target
 * that takes one of them after that computation bypassed it. */
typedef struct bypass {
    tg_graph *inputs;
    const tg_tensor *found;
} bypass;

static bool takes_an_input(tg_graph *g, const tg_tensor *z, const tg_parent *p, void *user)
{
    (void)g, (void)z;
    bypass *b = user;
    return p->t && p->how != TG_HOP_LEFT && tg__seen(b->inputs, p->t);
}

/* The first op on the target's path, after `after`, that takes an input of the source's
 * computation instead of its result: where the target's path went another way. */
static const tg_tensor *bypassing_op(why *w, tg_graph *inputs, uint64_t after, const tg_tensor *const *anc, int n)
{
    bypass b = {.inputs = inputs};
    tg_graph walk;
    tg__graph_init(&walk, w->t, w->x);
    for (int i = 0; i < n; i++) {
        const tg_tensor *z = anc[i];
        if (z->op && z->stamp > after && (!b.found || z->stamp < b.found->stamp) &&
            tg__each_parent(&walk, z, takes_an_input, &b))
            b.found = z;
    }
    tg__graph_free(&walk);
    return b.found;
}

/* The last op computed from the source, and where the target's path went another way.
 * The line to change: that op, when the target took an input of the source's computation
 * instead of its result; else (a target of constants) the user's first op on the way to
 * the target after it; else the last op computed from the source. */
static bool dead_end(why *w, const char *constants, const tg_tensor *const *anc, int n)
{
    const tg_tape *t = w->t;
    tg_graph from, inputs; /* the outputs computed from the source, and what they were computed from */
    tg__graph_init(&from, t, w->x);
    tg__graph_init(&inputs, t, w->x);
    const tg_node *last = NULL;
    for (size_t k = 0; k < t->n_nodes; k++) {
        const tg_node *nd = t->nodes[k];
        bool computed = false;
        for (int i = 0; i < nd->n && !computed; i++) {
            const tg_entry *e = nd->in_entry[i];
            computed = nd->in[i] == w->x || (e && e->var == w->x) || tg__seen(&from, nd->in[i]);
        }
        bool marked = false;
        for (int k = 0; computed && k < nd->n_out; k++)
            marked |= tg__mark(&from, nd->outs[k]->t);
        if (!marked)
            continue;
        last = nd;
        for (int i = 0; i < nd->n; i++) {
            const tg_tensor *in = nd->in[i];
            const tg_entry *e = nd->in_entry[i];
            bool literal = (in->flags & TG_T_FROM_DATA) && in->size == 1;
            if (in != w->x && !(e && e->var == w->x) && !tg__seen(&from, in) && !literal)
                tg__mark(&inputs, in);
        }
    }
    tg__graph_free(&from);
    const tg_tensor *other = last && !*constants ? bypassing_op(w, &inputs, last->out->t->stamp, anc, n) : NULL;
    tg__graph_free(&inputs);
    if (!last)
        return false;
    char on[200] = "";
    if (other)
        snprintf(on, sizeof on,
                 "; the target's path goes on at %s:%d (%s) with an input of that computation "
                 "instead of its result",
                 AT(other->loc), op_name(w, other));
    tg_loc where = other ? other->loc : *constants ? users_first_op(anc, n, last->out->t->stamp) : last->loc;
    say(w, TG_CAUSE_UNCONNECTED, where,
        other        ? tg__op_name(other->op)
        : *constants ? NULL
                     : tg__op_name(last->op),
        "nothing computed from it reaches the target. The last op computed from it is %s at %s:%d, and the target "
        "never uses its result%s. %s%s",
        node_label(w, last), AT(last->loc), on,
        *constants ? constants
                   : "Use that result on the way to the target (was a layer's output overwritten, or "
                     "the wrong output returned?).",
        unconnected_zero);
    return true;
}

/* A watched tensor nothing was computed from: the target used another of its shape. */
static bool other_input(why *w, const tg_tensor *const *anc, int n)
{
    const tg_tensor *x = w->x;
    for (int i = 0; i < n; i++) {
        const tg_tensor *z = anc[i];
        if (z == x || z->op || (z->flags & TG_T_VARIABLE) || !tg__same_shape(z, x))
            continue;
        tg_entry *e = tg__tape_lookup(w->t, x);
        say(w, TG_CAUSE_UNCONNECTED, e ? e->loc : x->loc, NULL,
            "nothing was computed from it while the tape recorded; the target was computed from the tensor made at "
            "%s:%d, of the same shape, instead. Differentiate with respect to the tensor actually used (watch that "
            "one).%s",
            AT(z->loc), unconnected_zero);
        return true;
    }
    return false;
}

static void not_read(why *w)
{
    const tg_tensor *x = w->x;
    const tg_tape *t = w->t;
    char wb[224];
    const char *w_ = x->var->last_read.file ? when(t, x->var->last_read_stamp, wb, sizeof wb) : NULL;
    if (w_)
        say(w, TG_CAUSE_NOT_READ, x->var->last_read, NULL,
            "it was never read while the tape (begun at %s:%d) recorded; its last read, at %s:%d, was %s, and the "
            "target does not use that result. Compute the forward pass and the loss inside the tape's block",
            AT(t->loc), AT(x->var->last_read), w_);
    else
        say(w, TG_CAUSE_NOT_READ, t->loc, NULL,
            "it was never read while the tape (begun at %s:%d) recorded: nothing on the way to the target uses it. "
            "Call the layer or model that owns it inside the tape, on the way to the loss.%s",
            AT(t->loc), unconnected_zero);
}

/* No path from the target back to the source: a variable made anew, a dead end, a target
 * of constants, another input, or nothing read at all. */
static void no_path(why *w)
{
    enum { MAX = 4096 };
    const tg_tensor **anc = malloc(sizeof *anc * MAX);
    if (!anc)
        return (void)say(w, TG_CAUSE_UNCONNECTED, w->y->loc, NULL, "the target does not depend on it.%s",
                         unconnected_zero);
    int n = tg__ancestors(w->g, w->y, anc, MAX);
    const tg_tensor *const *a = anc;
    bool variable = w->x->flags & TG_T_VARIABLE;
    char constants[512] = "";
    bool said = recreated(w, a, n);
    if (!said)
        made_of_constants(w, a, n, constants, sizeof constants);
    said = said || dead_end(w, constants, a, n) || (!variable && !*constants && other_input(w, a, n));
    tg_loc loss = users_first_op(a, n, w->t->begin_stamp);
    free(anc);
    if (said)
        return;
    if (*constants) {
        constants[0] = 't'; /* "The target ..." follows "variable 'w': " */
        say(w, TG_CAUSE_UNCONNECTED, loss, w->y->op ? tg__op_name(w->y->op) : NULL, "%s%s", constants,
            unconnected_zero);
    } else if (variable) {
        not_read(w);
    } else if (!tg__tape_lookup(w->t, w->x)) {
        plain_tensor(w);
    } else {
        say(w, TG_CAUSE_UNCONNECTED, w->y->loc, NULL, "the target (made at %s:%d) does not depend on it.%s",
            AT(w->y->loc), unconnected_zero);
    }
}

/* ---- gradients that exist --------------------------------------------------------------- */
bool tg__all_zero(const tg_tensor *g)
{
    if (!g->data) /* an abstract trace's: no values to judge */
        return false;
    for (int64_t i = 0; i < g->size; i++)
        if (tg__get(g, i) != 0.0)
            return false;
    return true;
}

static bool saved_tensors_alive(const tg_tape *t)
{
    for (size_t k = 0; k < t->n_nodes; k++) {
        const tg_node *nd = t->nodes[k];
        for (int k = 0; k < nd->n_out; k++)
            if (!tg__alive(nd->outs[k]->t, nd->outs[k]->gen))
                return false;
        for (int i = 0; i < nd->n; i++)
            if (!tg__alive(nd->in[i], nd->in_gen[i]))
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
        bool nonzero = false;
        for (int k = 0; k < nd->n_out && !nonzero; k++) {
            const tg_entry *o = nd->outs[k];
            nonzero = o->grad_serial == serial && o->needed_serial == serial && !tg__all_zero(o->grad);
        }
        if (!nonzero)
            continue;
        bool zeros_below = true;
        for (int i = 0; i < nd->n && zeros_below; i++) {
            tg_entry *e = nd->in_entry[i];
            if (e && e->needed_serial == serial)
                zeros_below = e->grad_serial == serial && tg__all_zero(e->grad);
        }
        if (zeros_below)
            return nd;
    }
    return NULL;
}

/* Does the rule of nd give a non-zero gradient to an input whose sum is zero? Then the
 * contributions of several paths cancel there. */
static bool cancels(tg_tape *t, tg_node *nd)
{
    tg_tensor *dx[8] = {0};
    if (nd->n > 8 || nd->n_out > 1 || tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a) != TG_GRAD_RULE)
        return false; /* (a rule with several outputs is not re-run here) */
    tg_tensor *out = nd->out->t, *dy = nd->out->grad;
    tg_grad_ctx g = {.loc = nd->loc,
                     .in = nd->in,
                     .n = nd->n,
                     .out = out,
                     .dy = dy,
                     .a = &nd->a,
                     .n_out = 1,
                     .outs = &out,
                     .dys = &dy};
    if (!tg__rule_gradients(&g, nd->op, dx))
        return false;
    for (int i = 0; i < nd->n; i++)
        if (dx[i] && nd->in_entry[i] && nd->in_entry[i]->grad_serial == t->grad_serial && !tg__all_zero(dx[i]))
            return true;
    return false;
}

static const char *saturation_hint(const tg_node *nd)
{
    /* Keras's cross-entropies clip probabilities to [1e-7, 1 - 1e-7] */
    if (nd->op == TG_OP_CLIP_BY_VALUE && fabs(nd->a.clip.hi - (1 - 1e-7)) < 1e-9)
        return "every probability is clipped at 1 - 1e-7: a cross-entropy over a last axis of size 1, where every "
               "normalised prediction is 1 (use binary cross-entropy and a sigmoid for one unit)";
    switch (nd->op) {
    case TG_OP_RELU:
    case TG_OP_BIAS_ADD_ACT: return "every unit is inactive (dead ReLUs: all inputs negative)";
    case TG_OP_CLIP_BY_VALUE: return "every value lies outside the clip range";
    case TG_OP_RELU6: return "every input lies outside (0, 6), where relu6 is flat";
    case TG_OP_HARD_SIGMOID: return "every input lies outside (-3, 3), where hard_sigmoid is flat";
    case TG_OP_MAXIMUM:
    case TG_OP_MINIMUM: return "the other operand wins everywhere";
    case TG_OP_SQUARE:
    case TG_OP_MUL:
    case TG_OP_POW:
        return "the value it multiplies by is zero everywhere (for example a difference between a "
               "value and a sample or copy of itself)";
    case TG_OP_SOFTMAX:
    case TG_OP_LOG_SOFTMAX:
    case TG_OP_SOFTMAX_XENT: return "it normalises over an axis of size 1";
    case TG_OP_ABS: return "its input is exactly zero";
    default: return "every value flowing back is zero";
    }
}

/* Runs the gradient privately (nothing recorded, nothing marked used) and reports an
 * identically zero one with the op where it vanishes. */
static void explain_zero(why *w)
{
    tg_tape *t = w->t;
    if (!saved_tensors_alive(t))
        return;
    tg_context *ctx = tg__ctx();
    int recording = ctx->n_recording;
    ctx->n_recording = 0;
    tg_scope *s = tg_scope_begin_at((tg_loc){__FILE__, __LINE__});
    tg_tensor *g = NULL, *seed = tg_ones_like_at((tg_loc){0}, w->y);
    bool ok = seed && tg__backward(w->y->loc, t, (tg_tensor *const[]){(tg_tensor *)w->y}, &seed, 1,
                                   (tg_tensor *const[]){(tg_tensor *)w->x}, 1, &g);
    if (ok && g && tg__all_zero(g)) {
        tg_node *v = vanishing_point(t);
        if (v && cancels(t, v))
            say(w, TG_CAUSE_ZERO_GRADIENT, v->loc, tg__op_name(v->op),
                "its gradient exists but is identically zero: the contributions of its paths cancel at %s (%s:%d), "
                "where they add up to zero (a value minus itself, or two terms that offset each other). The target "
                "does not vary with it",
                node_label(w, v), AT(v->loc));
        else if (v)
            say(w, TG_CAUSE_ZERO_GRADIENT, v->loc, tg__op_name(v->op),
                "its gradient exists but is identically zero: it vanishes at %s (%s:%d), where %s. The target does "
                "not vary with it here",
                node_label(w, v), AT(v->loc), saturation_hint(v));
        else
            say(w, TG_CAUSE_ZERO_GRADIENT, w->y->loc, NULL,
                "its gradient exists but is identically zero: the target does not vary with it here");
    }
    tg_scope_end_at((tg_loc){__FILE__, __LINE__}, s);
    ctx->n_recording = recording;
    tg_clear_error();
}

static void explain_present(why *w, tg_entry **xe, int nx)
{
    tg_tape *t = w->t;
    if (t->used && t->refused_loc.file) {
        say(w, TG_CAUSE_TAPE_USED, t->refused_loc, NULL,
            "the tape begun at %s:%d is not persistent and already gave its gradients at %s:%d, so the gradient "
            "call at %s:%d was refused. Begin it with tg_tape_begin(.persistent = true) to take several, or "
            "compute all gradients in one tg_gradients call",
            AT(t->loc), AT(t->used_loc), AT(t->refused_loc));
        return;
    }
    for (int i = 0; i < nx; i++) {
        tg_entry *e = xe[i];
        if (e->var && e->var->var && e->var_version != e->var->var->version) {
            tg_var *v = e->var->var;
            say(w, TG_CAUSE_STALE_READ, v->last_assign, NULL,
                "it was assigned at %s:%d after the tape read it at %s:%d: the gradient is computed at the value "
                "the tape recorded (as TF does), not at the variable's current value. Record a new tape after "
                "updating the variable",
                AT(v->last_assign), AT(e->loc));
            return;
        }
    }
    explain_zero(w);
    if (w->d->cause == TG_CAUSE_NONE)
        say(w, TG_CAUSE_NONE, w->y->loc, NULL, "its gradient is present");
}

/* ---- tg_explain -------------------------------------------------------------------------- */
enum { REACH_NONE = 0, REACH_GRAD = 1 };

/* Does the target reach an entry of the source through recorded, differentiable ops? */
static bool reached(tg_tape *t, tg_entry *target, tg_entry **xe, int nx)
{
    for (size_t k = 0; k < t->map_cap; k++)
        if (t->map[k])
            t->map[k]->reach = REACH_NONE;
    target->reach = REACH_GRAD;
    for (size_t k = t->n_nodes; k-- > 0;) {
        tg_node *nd = t->nodes[k];
        tg_grad_kind kind = tg__grad_kind(nd->op, (const tg_tensor *const *)nd->in, &nd->a);
        bool on_path = false;
        for (int k = 0; k < nd->n_out; k++)
            on_path |= nd->outs[k]->reach == REACH_GRAD;
        if (!on_path || kind == TG_GRAD_NONE || kind == TG_GRAD_STOP)
            continue;
        for (int i = 0; i < nd->n; i++)
            if (nd->in_entry[i])
                nd->in_entry[i]->reach = REACH_GRAD;
    }
    for (int i = 0; i < nx; i++)
        if (xe[i]->reach == REACH_GRAD)
            return true;
    return false;
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

static void explain_with(why *w)
{
    const tg_tensor *x = w->x, *y = w->y;
    if (!tg__dtype_is_real(x->dtype))
        return integer_source(w);
    if (!tg__dtype_is_real(y->dtype))
        return integer_target(w);
    if (y == x)
        return (void)say(w, TG_CAUSE_NONE, y->loc, NULL, "it is the target itself: its gradient is the seed (ones)");
    if ((x->flags & TG_T_VARIABLE) && !x->var->trainable && !watched_variable(w->t, x))
        return not_trainable(w);
    tg_entry *xe[64], *ye = tg__tape_lookup(w->t, y);
    int nx = source_entries(w->t, x, xe, 64);
    if (ye && nx && reached(w->t, ye, xe, nx))
        return explain_present(w, xe, nx);
    if (tg__find_path(w->g, y)) {
        if (!first_break(w))
            explain_present(w, xe, nx);
        return;
    }
    if (!weak_rebuild(w))
        no_path(w);
}

void tg__explain(tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_loc call, tg_diagnosis *d, tg_step *brk)
{
    *d = (tg_diagnosis){0};
    tg_graph *g = malloc(sizeof *g);
    if (!g) {
        snprintf(d->message, sizeof d->message, "out of memory while explaining a missing gradient");
        return;
    }
    tg__graph_init(g, t, x);
    why w = {.t = t, .y = y, .x = x, .call = call, .d = d, .g = g};
    tg__source_name(x, w.name, sizeof w.name);
    explain_with(&w);
    if (brk)
        *brk = w.brk;
    tg__graph_free(g);
    free(g);
}

int tg_explain_at(tg_loc loc, tg_tape *h, const tg_tensor *y, const tg_tensor *x, tg_diagnosis *out)
{
    if (!out)
        return tg__failf(loc, "tg_explain: `out` is NULL");
    *out = (tg_diagnosis){0};
    tg_tape *t = tg__tape_get(loc, "tg_explain", h);
    if (!t || !tg__check_input(loc, "tg_explain", y, "target") || !tg__check_input(loc, "tg_explain", x, "source"))
        return -1;
    tg__explain(t, y, x, t->grad_loc, out, NULL);
    return 0;
}
