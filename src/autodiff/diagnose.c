/* Diagnoses of missing gradients kept from gradient calls (for optimizers and training
 * loops that see only gradient and variable pairs), the eager check that reports them as
 * they happen, and the check modes. The diagnosis itself is explain.c. */
#include <stdlib.h>

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
    [TG_CAUSE_COPIED_OUT] = "copied_out",
    [TG_CAUSE_ASSIGNED] = "assigned",
    [TG_CAUSE_RECREATED] = "recreated_variable",
};

const char *tg_cause_name(tg_cause c)
{
    return (unsigned)c < sizeof cause_names / sizeof *cause_names ? cause_names[c] : "unknown";
}

/* ---- diagnoses kept from gradient calls ---------------------------------------------------- */
#define MISSING_MAX 64 /* diagnoses kept per thread; each is about 1 KB of thread storage */

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

void tg__remember_missing(tg_loc call, tg_tape *t, const tg_gradient_opts *o)
{
    /* Eager checking reports missing and all-zero gradients, except where zeros were asked for. */
    bool eager = (tg__ctx()->check & TG_CHECK_EAGER) && o->unconnected == TG_UNCONNECTED_NONE;
    for (int i = 0; i < o->n_sources; i++) {
        const tg_tensor *x = o->sources[i];
        if (o->out[i] && n_kept)
            forget(x);
        if (o->out[i] && (!eager || !tg__all_zero(o->out[i])))
            continue;
        tg_diagnosis d = {0};
        for (int k = 0; k < o->n_targets && d.cause == TG_CAUSE_NONE; k++)
            tg__explain(t, o->targets[k], x, call, &d, NULL);
        if (d.cause == TG_CAUSE_NONE)
            continue;
        keep(x, &d);
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
