/* Variables: long-lived, named tensors with a version counter.
 *
 * A read of a variable recorded on a tape is a snapshot header that aliases the
 * variable's data. An assign first gives every live snapshot its own copy of the old
 * value, so a tape differentiates at the value it recorded, as TF does, and the common
 * case (no assign while a tape holds a read) copies nothing. */
#include <stdlib.h>

#include "tensor_impl.h"

static bool check_var(tg_loc loc, const char *func, const tg_tensor *v)
{
    if (!tg__check_input(loc, func, v, "var"))
        return false;
    if (!(v->flags & TG_T_VARIABLE)) {
        tg__fail(loc, "%s: the tensor made at %s:%d is not a variable (make one with tg_variable)", func,
                 v->loc.file ? v->loc.file : "?", v->loc.line);
        return false;
    }
    return true;
}

tg_tensor *tg_variable_at(tg_loc loc, const tg_tensor *init, tg_variable_opts o)
{
    if (!tg__check_input(loc, "tg_variable", init, "initial"))
        return NULL;
    tg_tensor *t = tg__header_alloc();
    tg_var *v = calloc(1, sizeof *v);
    size_t bytes = (size_t)init->size * tg_dtype_size(init->dtype);
    void *data = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    char *name = strdup(o.name ? o.name : "Variable");
    if (!t || !v || !data || !name) {
        if (t)
            tg__header_release(t);
        free(v);
        free(data);
        free(name);
        return tg__fail(loc, "tg_variable: out of memory");
    }
    memcpy(data, init->data, bytes);
    t->dtype = init->dtype;
    t->rank = init->rank;
    memcpy(t->shape, init->shape, sizeof t->shape);
    t->size = init->size;
    t->data = data;
    t->flags = TG_T_VARIABLE;
    t->var = v;
    t->loc = loc;
    t->stamp = ++tg__ctx()->clock;
    *v = (tg_var){.name = name, .trainable = o.trainable, .handle = t};
    return t;
}

void tg_variable_free_at(tg_loc loc, tg_tensor *t)
{
    if (!t)
        return;
    if (t->state != TG_HEADER_ALIVE) {
        tg__fail(loc, "tg_variable_free: `var` was already freed (or its scope ended)");
        return;
    }
    if (!(t->flags & TG_T_VARIABLE)) {
        tg__fail(loc,
                 "tg_variable_free: `var` is not a variable (it was made at %s:%d): only what tg_variable "
                 "made is freed this way; other tensors are freed when their scope ends",
                 t->loc.file ? t->loc.file : "?", t->loc.line);
        return;
    }
    tg__variable_detach_snapshots(t->var);
    free(t->var->name);
    free(t->var);
    free(t->data);
    tg__header_release(t);
}

bool tg_is_variable(const tg_tensor *t) { return t && t->state == TG_HEADER_ALIVE && (t->flags & TG_T_VARIABLE); }

const char *tg_variable_name(const tg_tensor *t)
{
    return check_var((tg_loc){0}, "tg_variable_name", t) ? t->var->name : NULL;
}

bool tg_variable_trainable(const tg_tensor *t)
{
    return check_var((tg_loc){0}, "tg_variable_trainable", t) && t->var->trainable;
}

int tg_variable_set_trainable(tg_tensor *t, bool trainable)
{
    if (!check_var((tg_loc){0}, "tg_variable_set_trainable", t))
        return -1;
    t->var->trainable = trainable;
    return 0;
}

uint64_t tg_variable_version(const tg_tensor *t)
{
    return check_var((tg_loc){0}, "tg_variable_version", t) ? t->var->version : 0;
}

/* ---- snapshots --------------------------------------------------------------------------- */
tg_tensor *tg__variable_snapshot(tg_loc loc, tg_tensor *vt)
{
    tg_shape shape = tg__shape(vt);
    tg_tensor *s = tg__tensor_view(loc, vt, &shape);
    if (!s)
        return NULL;
    s->flags |= TG_T_SNAPSHOT;
    s->var = vt->var;
    if (tg__ctx()->trace)
        tg__trace_snapshot(s, vt);
    s->snap_prev = NULL;
    s->snap_next = vt->var->snapshots;
    if (s->snap_next)
        s->snap_next->snap_prev = s;
    vt->var->snapshots = s;
    return s;
}

void tg__snapshot_unlink(tg_tensor *s)
{
    if (!s->var)
        return;
    if (s->snap_prev)
        s->snap_prev->snap_next = s->snap_next;
    else
        s->var->snapshots = s->snap_next;
    if (s->snap_next)
        s->snap_next->snap_prev = s->snap_prev;
    s->snap_prev = s->snap_next = NULL;
    s->var = NULL; /* the snapshot keeps its value; the link to the variable is gone */
}

void tg__variable_detach_snapshots(tg_var *v)
{
    size_t bytes = (size_t)v->handle->size * tg_dtype_size(v->handle->dtype);
    while (v->snapshots) {
        tg_tensor *s = v->snapshots;
        void *copy = tg__arena_alloc(s->scope, bytes ? bytes : 1);
        if (copy) {
            memcpy(copy, s->data, bytes);
            s->data = copy;
        }
        tg__snapshot_unlink(s);
    }
}

void *tg__variable_begin_write(tg_loc loc, tg_tensor *vt)
{
    tg__variable_detach_snapshots(vt->var);
    vt->var->version++;
    vt->var->last_assign = loc;
    return vt->data;
}

/* ---- assignment ---------------------------------------------------------------------------- */
typedef enum { ASSIGN, ASSIGN_ADD, ASSIGN_SUB } assign_kind;

static int assign(tg_loc loc, const char *func, tg_tensor *vt, const tg_tensor *x, assign_kind kind)
{
    if (!check_var(loc, func, vt) || !tg__check_input(loc, func, x, "value"))
        return -1;
    tg_shape vs = tg__shape(vt), xs = tg__shape(x);
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    if (x->dtype != vt->dtype)
        return tg__failf(loc, "%s: variable '%s' has dtype %s, the value has dtype %s (cast it with tg_cast)", func,
                         vt->var->name, tg_dtype_name(vt->dtype), tg_dtype_name(x->dtype));
    if (!tg__shape_eq(&vs, &xs) && !(x->size == 1 && kind != ASSIGN))
        return tg__failf(loc, "%s: variable '%s' has shape %s, the value has shape %s", func, vt->var->name,
                         tg__shape_str(&vs, a, sizeof a), tg__shape_str(&xs, b, sizeof b));
    tg__variable_detach_snapshots(vt->var);
    int64_t n = vt->size;
    bool scalar = x->size == 1 && vs.rank != 0;
    switch (vt->dtype) {
#define LOOP(T)                                                                                  \
    {                                                                                            \
        T *d = vt->data;                                                                         \
        const T *s = x->data;                                                                    \
        if (kind == ASSIGN)                                                                      \
            memmove(d, s, (size_t)n * sizeof(T));                                                \
        else                                                                                     \
            for (int64_t i = 0; i < n; i++)                                                      \
                d[i] = kind == ASSIGN_ADD ? d[i] + s[scalar ? 0 : i] : d[i] - s[scalar ? 0 : i]; \
        break;                                                                                   \
    }
    case TG_F32: LOOP(float)
    case TG_F64: LOOP(double)
    case TG_I32: LOOP(int32_t)
    case TG_I64: LOOP(int64_t)
    case TG_BOOL:
        if (kind != ASSIGN)
            return tg__failf(loc, "%s: variable '%s' is bool; only tg_assign applies", func, vt->var->name);
        memmove(vt->data, x->data, (size_t)n);
        break;
    default: break;
#undef LOOP
    }
    vt->var->version++;
    vt->var->last_assign = loc;
    if (loc.file) /* the value's gradient path ends here */
        tg__event((tg_event){.kind = TG_EVENT_ASSIGN,
                             .loc = loc,
                             .func = func,
                             .t = (tg_tensor *)x,
                             .gen = x->gen,
                             .var = vt,
                             .var_gen = vt->gen});
    return 0;
}

/* An assign in a traced function is recorded: it acts at every call (TF's assign ops). */
typedef struct assign_arg {
    const char *func;
    assign_kind kind;
} assign_arg;

static int assign_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const assign_arg *a = arg;
    (void)n;
    return assign(loc, a->func, in[0], in[1], a->kind);
}

static int traced_assign(tg_loc loc, const char *func, tg_tensor *vt, const tg_tensor *x, assign_kind kind)
{
    if (!tg__ctx()->trace || !check_var(loc, func, vt) || !tg__check_input(loc, func, x, "value"))
        return assign(loc, func, vt, x, kind);
    int r = tg__trace_host(loc, assign_replayed, &(assign_arg){func, kind}, sizeof(assign_arg),
                           (tg_tensor *const[]){vt, (tg_tensor *)x}, 2, &vt, 1);
    if (r != 0)
        return r < 0 ? -1 : 0;
    struct tg_fgraph *g = tg__trace_pause();
    int rc = assign(loc, func, vt, x, kind);
    tg__trace_resume(g);
    return rc;
}

int tg_assign_at(tg_loc loc, tg_tensor *v, const tg_tensor *x) { return traced_assign(loc, "tg_assign", v, x, ASSIGN); }
int tg_assign_add_at(tg_loc loc, tg_tensor *v, const tg_tensor *x)
{
    return traced_assign(loc, "tg_assign_add", v, x, ASSIGN_ADD);
}
int tg_assign_sub_at(tg_loc loc, tg_tensor *v, const tg_tensor *x)
{
    return traced_assign(loc, "tg_assign_sub", v, x, ASSIGN_SUB);
}
