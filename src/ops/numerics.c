/* NaN and Inf checks: the op tg_check_numerics (TF's check_numerics) and, with
 * TG_CHECK_NUMERICS, the dispatcher's check of every forward output and the tape's check
 * of every gradient a backward rule gives. A report says where the first non-finite
 * value appeared: the op, its line and layer, and the input it came in through (a
 * variable, data) when it did not start at that op. */
#include "op.h"
#include "tapegrad/ops.h"

static const char *value_name(const tg_tensor *t, int64_t i)
{
    double v = tg__get(t, i);
    return v != v ? "NaN" : v > 0 ? "Inf" : "-Inf";
}

/* "at [1, 2] of a (2, 3) tensor", "in a scalar" */
static const char *where(const tg_tensor *t, int64_t i, char *buf, size_t size)
{
    if (t->rank == 0)
        return snprintf(buf, size, "in a scalar"), buf;
    int64_t at[TG_MAX_RANK];
    for (int k = t->rank - 1; k >= 0; k--) {
        at[k] = t->shape[k] ? i % t->shape[k] : 0;
        i = t->shape[k] ? i / t->shape[k] : 0;
    }
    char shape[TG_SHAPE_STR_MAX];
    tg_shape s = tg__shape(t);
    size_t n = (size_t)snprintf(buf, size, "at [");
    for (int k = 0; k < t->rank && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, k ? ", %lld" : "%lld", (long long)at[k]);
    if (n < size)
        snprintf(buf + n, size - n, "] of a %s tensor", tg__shape_str(&s, shape, sizeof shape));
    return buf;
}

/* What a tensor is, for a report: a variable, an op's output, data. */
static const char *origin(const tg_tensor *x, char *buf, size_t size)
{
    const tg_var *v = x->flags & (TG_T_VARIABLE | TG_T_SNAPSHOT) ? x->var : NULL;
    if (v && v->version)
        snprintf(buf, size, "variable \"%s\" (last updated at %s:%d)", v->name,
                 v->last_assign.file ? v->last_assign.file : "?", v->last_assign.line);
    else if (v)
        snprintf(buf, size, "variable \"%s\" (never updated)", v->name);
    else if (x->flags & TG_T_SNAPSHOT)
        snprintf(buf, size, "a recorded read of a variable");
    else if (x->op != TG_OP_NONE)
        snprintf(buf, size, "the output of %s at %s:%d", tg__op_name((tg_op_kind)x->op),
                 x->loc.file ? x->loc.file : "?", x->loc.line);
    else
        snprintf(buf, size, "a tensor made at %s:%d", x->loc.file ? x->loc.file : "?", x->loc.line);
    return buf;
}

static const char *arg_name(int i, int n)
{
    static const char *const names[] = {"a", "b", "c"};
    return n == 1 ? "x" : i < 3 ? names[i] : "input";
}

/* ---- TG_CHECK_NUMERICS ---------------------------------------------------------------------- */
bool tg__numerics_forward(const tg_call *c, const tg_tensor *out)
{
    if (tg__ctx()->in_backward || c->op == TG_OP_CHECK_NUMERICS || !tg__dtype_is_real(out->dtype))
        return true;
    int64_t bad = tg__first_nonfinite(out);
    if (bad < 0)
        return true;
    char at[2 * TG_SHAPE_STR_MAX], layer[300] = "", cause[1024] = "; its inputs are finite: it starts here";
    const char *name = tg__ctx()->layer;
    if (name)
        snprintf(layer, sizeof layer, " in layer \"%s\"", name);
    for (int i = 0; i < c->n; i++) {
        int64_t j = tg__dtype_is_real(c->in[i]->dtype) ? tg__first_nonfinite(c->in[i]) : -1;
        if (j < 0)
            continue;
        char o[600], w[2 * TG_SHAPE_STR_MAX];
        snprintf(cause, sizeof cause, "; it came in through input %s, %s, which already holds %s %s", arg_name(i, c->n),
                 origin(c->in[i], o, sizeof o), value_name(c->in[i], j), where(c->in[i], j, w, sizeof w));
        break;
    }
    return tg__failb(c->loc, "check_numerics: %s%s produced %s %s in the forward pass%s", tg__op_name(c->op), layer,
                     value_name(out, bad), where(out, bad, at, sizeof at), cause);
}

bool tg__numerics_gradient(tg_op_kind op, tg_loc loc, const char *layer, const tg_tensor *const *in, int n, int i,
                           const tg_tensor *dx, const tg_tensor *dy)
{
    int64_t bad = tg__dtype_is_real(dx->dtype) ? tg__first_nonfinite(dx) : -1;
    if (bad < 0)
        return true;
    int64_t up = dy ? tg__first_nonfinite(dy) : -1;
    char at[2 * TG_SHAPE_STR_MAX], o[600], in_layer[300] = "";
    if (layer)
        snprintf(in_layer, sizeof in_layer, " in layer \"%s\"", layer);
    return tg__failb(loc,
                     "check_numerics: the gradient of %s%s (recorded at this line) for its input %s, %s, holds "
                     "%s %s in the backward pass; %s",
                     tg__op_name(op), in_layer, arg_name(i, n), origin(in[i], o, sizeof o), value_name(dx, bad),
                     where(dx, bad, at, sizeof at),
                     up >= 0 ? "the gradient flowing into it already held one (from a seed, or a sum of gradients)"
                             : "the gradient flowing into it is finite: it starts here");
}

/* ---- tg_check_numerics ------------------------------------------------------------------------ */
bool tg__check_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    if (!tg__require_float(c, c->in[0], "x"))
        return false;
    *shape = tg__shape(c->in[0]);
    *dtype = c->in[0]->dtype;
    return true;
}

/* attrs.check: the message (a copy in the output's scope), and whether a gradient is checked. */
bool tg__check_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int64_t bad = tg__first_nonfinite(x);
    if (bad >= 0) {
        char at[2 * TG_SHAPE_STR_MAX], o[600];
        const char *msg = c->a->check.message ? c->a->check.message : "";
        if (c->a->check.in_backward)
            return tg__failb(c->loc, "tg_check_numerics: %s: the gradient flowing back to this check holds %s %s", msg,
                             value_name(x, bad), where(x, bad, at, sizeof at));
        return tg__failb(c->loc, "tg_check_numerics: %s: the tensor holds %s %s; it is %s", msg, value_name(x, bad),
                         where(x, bad, at, sizeof at), origin(x, o, sizeof o));
    }
    memcpy(out->data, x->data, (size_t)x->size * tg__dsize(x->dtype));
    return true;
}

bool tg__check_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_attrs a = {.check = {g->a->check.message, true}};
    dx[0] = TG__APPLY(g->loc, TG_OP_CHECK_NUMERICS, &a, g->dy);
    return dx[0] != NULL;
}

tg_tensor *tg_check_numerics_at(tg_loc loc, const tg_tensor *x, const char *message)
{
    /* The message outlives the call (the gradient repeats it): a copy in the current scope. */
    tg_scope *s = tg__ctx()->scope;
    const char *m = message ? message : "";
    char *copy = s ? tg__arena_alloc(s, strlen(m) + 1) : NULL;
    if (s && !copy)
        return tg__fail(loc, "tg_check_numerics: out of memory");
    if (copy)
        strcpy(copy, m);
    return TG__APPLY(loc, TG_OP_CHECK_NUMERICS, &(tg_attrs){.check.message = copy}, x);
}
