/* Custom gradients (tf.custom_gradient): a user forward, unrecorded, and a user backward.
 *
 * The op's inputs are the user's inputs followed by the forward's result; the recorded
 * node copies that result and calls the user's backward for the first n inputs. */
#include "tape_impl.h"

bool tg__custom_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *y = c->in[c->n - 1];
    *shape = tg__shape(y);
    *dtype = y->dtype;
    return true;
}

bool tg__custom_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *y = c->in[c->n - 1];
    memcpy(out->data, y->data, (size_t)y->size * tg_dtype_size(y->dtype));
    return true;
}

#define USER_BACKWARD "tg_custom_gradient: the backward function given to tg_custom_gradient here"

/* What the user's backward returned is the user's to fix: each gradient must be alive and
 * have its input's dtype and shape. g->loc is the tg_custom_gradient call. */
static bool check_user_grad(const tg_grad_ctx *g, int i, const tg_tensor *d)
{
    const tg_tensor *x = g->in[i];
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    if (d->state != TG_HEADER_ALIVE)
        return tg__failb(g->loc,
                         USER_BACKWARD
                         " returned dx[%d], a tensor whose scope had ended (it was made at "
                         "%s:%d); build the gradients inside the backward function from dy and the inputs",
                         i, d->loc.file ? d->loc.file : "?", d->loc.line);
    if (d->dtype != x->dtype)
        return tg__failb(g->loc,
                         USER_BACKWARD " returned dx[%d] of dtype %s for input %d of dtype %s; a gradient "
                                       "has its input's dtype: cast it with tg_cast(dx, %s)",
                         i, tg_dtype_name(d->dtype), i, tg_dtype_name(x->dtype), tg_dtype_name(x->dtype));
    if (!tg__same_shape(d, x)) {
        tg_shape sd = tg__shape(d), sx = tg__shape(x);
        return tg__failb(g->loc,
                         USER_BACKWARD
                         " returned dx[%d] of shape %s for input %d of shape %s; a gradient "
                         "has its input's shape (sum it over broadcast axes with tg_sum, or tg_reshape it)",
                         i, tg__shape_str(&sd, a, sizeof a), i, tg__shape_str(&sx, b, sizeof b));
    }
    return true;
}

bool tg__custom_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    int n = g->n - 1;
    if (g->a->custom.backward(g->dy, g->in, n, g->out, dx, g->a->custom.user) != 0) {
        if (!tg_has_error())
            tg__fail(g->loc, USER_BACKWARD " returned -1 without an error");
        return false;
    }
    dx[n] = NULL;
    for (int i = 0; i < n; i++)
        if (dx[i] && !check_user_grad(g, i, dx[i])) {
            memset(dx, 0, sizeof *dx * (size_t)n);
            return false;
        }
    return true;
}

tg_tensor *tg_custom_gradient_at(tg_loc loc, tg_tensor *const *inputs, int n, tg_custom_forward_fn forward,
                                 tg_custom_backward_fn backward, void *user)
{
    if (!inputs || n < 1 || !forward || !backward)
        return tg__fail(loc, "tg_custom_gradient: give at least one input, a forward and a backward function");
    for (int i = 0; i < n; i++)
        if (!tg__check_input(loc, "tg_custom_gradient", inputs[i], "inputs[i]"))
            return NULL;
    tg_context *ctx = tg__ctx();
    int recording = ctx->n_recording;
    ctx->n_recording = 0; /* nothing the forward does is recorded */
    tg_tensor *y = forward(inputs, n, user);
    ctx->n_recording = recording;
    if (!y) {
        if (!tg_has_error())
            tg__fail(loc, "tg_custom_gradient: the user's forward function returned NULL");
        return NULL;
    }
    const tg_tensor **in = tg__arena_alloc(ctx->scope, sizeof(tg_tensor *) * (size_t)(n + 1));
    if (!in)
        return tg__fail(loc, "tg_custom_gradient: out of memory");
    memcpy(in, inputs, sizeof(tg_tensor *) * (size_t)n);
    in[n] = y;
    return tg__apply(loc, TG_OP_CUSTOM, in, n + 1, &(tg_attrs){.custom = {backward, user}});
}
