/* BatchNormalization and LayerNormalization, with Keras 3's variables and formulas. */
#include <stdlib.h>

#include "layer_impl.h"

/* Where gamma, beta and the moving statistics sit in l->vars (-1: absent). */
typedef struct {
    int gamma, beta, moving_mean, moving_variance;
} var_slots;

static var_slots slots(bool scale, bool center, bool moving)
{
    var_slots s = {-1, -1, -1, -1};
    int k = 0;
    if (scale)
        s.gamma = k++;
    if (center)
        s.beta = k++;
    if (moving) {
        s.moving_mean = k++;
        s.moving_variance = k++;
    }
    return s;
}

/* A (C,) parameter shaped to broadcast against inputs of `rank` along `axis`. */
static tg_tensor *along(tg_loc loc, const tg_tensor *p, int axis, int rank)
{
    if (axis == rank - 1)
        return (tg_tensor *)p;
    tg_shape s = {.rank = rank};
    for (int i = 0; i < rank; i++)
        s.dims[i] = i == axis ? tg_size(p) : 1;
    return tg_reshape_at(loc, p, s);
}

/* (x - mean) * rsqrt(var + eps) [* gamma] [+ beta]. */
static tg_tensor *normalize(tg_loc loc, tg_layer *l, const tg_tensor *x, const tg_tensor *mean, const tg_tensor *var,
                            double eps, var_slots s, int axis)
{
    int rank = tg_rank(x);
    tg_tensor *inv = tg_rsqrt_at(loc, tg_add_at(loc, var, tg_scalar_like_at(loc, x, eps)));
    if (s.gamma >= 0)
        inv = tg_mul_at(loc, inv, along(loc, l->vars[s.gamma], axis, rank));
    tg_tensor *y = tg_mul_at(loc, tg_sub_at(loc, x, mean), inv);
    if (s.beta >= 0)
        y = tg_add_at(loc, y, along(loc, l->vars[s.beta], axis, rank));
    return y;
}

/* Every axis but `axis`. */
static tg_reduce_opts all_but(int axis, int rank)
{
    tg_reduce_opts r = {.keepdims = true};
    for (int i = 0; i < rank; i++)
        if (i != axis)
            r.axes.axis[r.axes.n++] = i;
    return r;
}

/* Adds gamma and beta (and the moving statistics) of shape (C,) for the feature axis. */
static bool add_params(tg_layer *l, tg_loc loc, const tg_shape *in, int axis_opt, bool scale, bool center,
                       tg_initializer gamma_init, tg_initializer beta_init, const tg_initializer *moving)
{
    int axis = tg__layer_axis(loc, l, axis_opt, in->rank + 1);
    if (axis < 0)
        return false;
    tg_shape p = TG_SHAPE(in->dims[axis - 1]);
    if (scale && !tg__layer_add_variable(l, loc, "gamma", gamma_init.kind ? gamma_init : tg_init_ones(), p, true))
        return false;
    if (center && !tg__layer_add_variable(l, loc, "beta", beta_init.kind ? beta_init : tg_init_zeros(), p, true))
        return false;
    if (moving) {
        tg_initializer mm = moving[0].kind ? moving[0] : tg_init_zeros();
        tg_initializer mv = moving[1].kind ? moving[1] : tg_init_ones();
        if (!tg__layer_add_variable(l, loc, "moving_mean", mm, p, false) ||
            !tg__layer_add_variable(l, loc, "moving_variance", mv, p, false))
            return false;
    }
    return true;
}

/* ---- BatchNormalization -------------------------------------------------------------------- */
static bool bn_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_batch_normalization_opts *o = &l->o.bn;
    tg_initializer moving[2] = {o->moving_mean_initializer, o->moving_variance_initializer};
    if (!add_params(l, loc, in, o->axis, o->scale, o->center, o->gamma_initializer, o->beta_initializer, moving))
        return false;
    *out = *in;
    return true;
}

/* moving = moving * momentum + batch * (1 - momentum), computed off the tape (an assign
 * is not differentiable, and nothing here should be recorded). */
static bool update_moving(tg_loc loc, tg_tensor *moving, const tg_tensor *batch, double momentum)
{
    int64_t c = tg_size(moving);
    double *v = malloc(sizeof(double) * (size_t)(2 * c));
    float *f = malloc(sizeof(float) * (size_t)c);
    if (!v || !f) {
        free(v);
        free(f);
        return tg__fail(loc, "BatchNormalization: out of memory"), false;
    }
    bool ok =
        tg_copy_out_f64_at((tg_loc){0}, moving, v, c) == 0 && tg_copy_out_f64_at((tg_loc){0}, batch, v + c, c) == 0;
    for (int64_t i = 0; ok && i < c; i++) {
        v[i] = v[i] * momentum + v[c + i] * (1.0 - momentum);
        f[i] = (float)v[i];
    }
    bool f32 = tg_dtype_of(moving) == TG_F32;
    tg_tensor *t =
        ok ? tg_tensor_from_at(loc, tg_dtype_of(moving), tg_shape_of(moving), f32 ? (void *)f : (void *)v) : NULL;
    free(v);
    free(f);
    return t && tg_assign_at(loc, moving, t) == 0;
}

static tg_tensor *bn_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    const tg_batch_normalization_opts *o = &l->o.bn;
    var_slots s = slots(o->scale, o->center, true);
    int rank = tg_rank(x), axis = tg__layer_axis(loc, l, o->axis, rank);
    if (axis < 0)
        return NULL;
    const tg_tensor *mean, *var;
    if (training && l->trainable) { /* Keras 3: a frozen BatchNormalization runs in inference mode */
        tg_reduce_opts r = all_but(axis, rank);
        mean = tg_mean_at(loc, x, r);
        var = tg_variance_at(loc, x, r);
        if (!mean || !var || !update_moving(loc, l->vars[s.moving_mean], mean, o->momentum) ||
            !update_moving(loc, l->vars[s.moving_variance], var, o->momentum))
            return NULL;
    } else {
        mean = along(loc, l->vars[s.moving_mean], axis, rank);
        var = along(loc, l->vars[s.moving_variance], axis, rank);
    }
    return normalize(loc, l, x, mean, var, o->epsilon, s, axis);
}

static const tg_layer_kind bn_kind = {.base_name = "batch_normalization",
                                      .class_name = "BatchNormalization",
                                      .autocast = true,
                                      .build = bn_build,
                                      .call = bn_call,
                                      .supports_masking = true};

tg_layer *tg_batch_normalization_at(tg_loc loc, tg_batch_normalization_opts o)
{
    if (!(o.momentum >= 0.0 && o.momentum <= 1.0))
        return tg__fail(loc, "tg_batch_normalization: momentum must be in [0, 1], got %g", o.momentum);
    if (!(o.epsilon > 0.0))
        return tg__fail(loc, "tg_batch_normalization: epsilon must be positive, got %g", o.epsilon);
    tg_layer *l = TG__LAYER_NEW(loc, &bn_kind, o);
    if (l)
        l->o.bn = o;
    return l;
}

/* ---- LayerNormalization ------------------------------------------------------------------- */
static bool ln_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_layer_normalization_opts *o = &l->o.ln;
    if (!add_params(l, loc, in, o->axis, o->scale, o->center, o->gamma_initializer, o->beta_initializer, NULL))
        return false;
    *out = *in;
    return true;
}

static tg_tensor *ln_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    const tg_layer_normalization_opts *o = &l->o.ln;
    int rank = tg_rank(x), axis = tg__layer_axis(loc, l, o->axis, rank);
    if (axis < 0)
        return NULL;
    tg_reduce_opts r = {.axes = {.n = 1, .axis = {axis}}, .keepdims = true};
    tg_tensor *mean = tg_mean_at(loc, x, r), *var = tg_variance_at(loc, x, r);
    return normalize(loc, l, x, mean, var, o->epsilon, slots(o->scale, o->center, false), axis);
}

static const tg_layer_kind ln_kind = {.base_name = "layer_normalization",
                                      .class_name = "LayerNormalization",
                                      .autocast = true,
                                      .build = ln_build,
                                      .call = ln_call,
                                      .supports_masking = true};

tg_layer *tg_layer_normalization_at(tg_loc loc, tg_layer_normalization_opts o)
{
    if (!(o.epsilon > 0.0))
        return tg__fail(loc, "tg_layer_normalization: epsilon must be positive, got %g", o.epsilon);
    tg_layer *l = TG__LAYER_NEW(loc, &ln_kind, o);
    if (l)
        l->o.ln = o;
    return l;
}
