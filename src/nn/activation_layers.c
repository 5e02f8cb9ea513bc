/* Keras's activation layers with weights: PReLU (keras/src/layers/activations/prelu.py). */
#include "layer_impl.h"

static bool prelu_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_prelu_layer_opts *o = &l->o.prelu;
    tg_shape alpha = *in;
    for (int i = 0; i < o->shared_axes.n; i++) {
        int a = tg__layer_axis(loc, l, o->shared_axes.axis[i], in->rank + 1);
        if (a < 0)
            return false;
        alpha.dims[a - 1] = 1;
    }
    tg_initializer init = o->alpha_initializer.kind ? o->alpha_initializer : tg_init_zeros();
    if (!tg__layer_add_variable(l, loc, "alpha", init, alpha, true))
        return false;
    *out = *in;
    return true;
}

static tg_tensor *prelu_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg_prelu_at(loc, x, l->vars[0]); /* alpha broadcasts over the batch */
}

static const tg_layer_kind prelu_kind = {.base_name = "p_re_lu",
                                         .class_name = "PReLU",
                                         .autocast = true,
                                         .build = prelu_build,
                                         .call = prelu_call,
                                         .supports_masking = true};

tg_layer *tg_prelu_layer_at(tg_loc loc, tg_prelu_layer_opts o)
{
    if (o.shared_axes.n < 0 || o.shared_axes.n > TG_MAX_RANK)
        return tg__fail(loc, "tg_prelu_layer: .shared_axes lists %d axes", o.shared_axes.n);
    tg_layer *l = TG__LAYER_NEW(loc, &prelu_kind, o);
    if (l)
        l->o.prelu = o;
    return l;
}
