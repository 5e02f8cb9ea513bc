/* Models used as layers (Keras's "a Model is a Layer"): a layer that runs a Sequential or
 * functional model of one output inside another model. The layer borrows the model's
 * variables (listed, checkpointed and trained through the outer model, freed with the
 * inner one) and owns the model, which it frees with itself. */
#include <stdlib.h>

#include "tapegrad/layer.h"
#include "layer_impl.h"

typedef struct nested {
    tg_model *m;
    tg_tensor *out, *out_mask; /* the last call's output and its mask, for compute_mask */
    uint32_t out_gen;
} nested;

static tg_model *inner_of(const tg_layer *l) { return ((const nested *)l->kept)->m; }

tg_model *tg__layer_inner_model(const tg_layer *l)
{
    return l && l->kind->borrows_variables && l->kept ? inner_of(l) : NULL;
}

static void nested_free(void *p)
{
    nested *n = p;
    if (n && n->m) {
        n->m->as_layer = NULL; /* the layer is going: the model goes with it */
        tg_model_free_at((tg_loc){0}, n->m);
    }
    free(n);
}

/* The inner model's variables become the layer's, renamed "<layer>/<variable>". */
static bool borrow_variables(tg_layer *l, tg_loc loc)
{
    tg_model *m = inner_of(l);
    int n = 0;
    for (int i = 0; i < m->n_layers; i++)
        n += m->layers[i]->n_vars;
    if (!tg__layer_reserve_vars(l, n))
        return tg__failb(loc, "layer \"%s\": out of memory", l->name);
    size_t prefix = strlen(l->name);
    for (int i = 0; i < m->n_layers; i++) {
        const tg_layer *in = m->layers[i];
        for (int k = 0; k < in->n_vars; k++) {
            tg_var *v = in->vars[k]->var;
            if (strncmp(v->name, l->name, prefix) != 0 || v->name[prefix] != '/') {
                size_t len = prefix + strlen(v->name) + 2;
                char *name = malloc(len);
                if (!name)
                    return tg__failb(loc, "layer \"%s\": out of memory", l->name);
                snprintf(name, len, "%s/%s", l->name, v->name);
                free(v->name);
                v->name = name;
            }
            l->vars[l->n_vars] = in->vars[k];
            l->var_trainable[l->n_vars] = in->var_trainable[k];
            l->var_reg[l->n_vars++] = in->var_reg[k];
        }
    }
    return true;
}

static bool nested_build_n(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    tg_model *m = inner_of(l);
    if (n != tg__model_n_inputs(m))
        return tg__failb(loc, "model \"%s\" used as a layer takes %d inputs, but it was called on %d", m->name,
                         tg__model_n_inputs(m), n);
    for (int i = 0; m->functional && i < n; i++) {
        tg_shape want = tg__model_input_shape(m, i);
        if (!tg__shape_eq(&want, &in[i])) {
            char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
            return tg__failb(loc,
                             "input %d of model \"%s\" (used as a layer) is incompatible with the layer: expected "
                             "shape=%s, found shape=%s",
                             i, m->name, tg__batch_shape_str(&want, a, sizeof a),
                             tg__batch_shape_str(&in[i], b, sizeof b));
        }
    }
    if (!m->functional && tg_model_build_at(loc, m, in[0]) != 0)
        return false;
    *out = tg__model_output_layer(m, 0)->out_shape;
    return borrow_variables(l, loc);
}

static bool nested_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    return nested_build_n(l, loc, in, 1, out);
}

static tg_tensor *nested_call_n(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                                bool training)
{
    (void)n;
    nested *s = l->kept;
    tg_model *m = s->m;
    tg__model_clear_call_losses(m);
    tg_tensor *y = NULL, *y_mask = NULL;
    if (!tg__model_forward(m, loc, (const tg_tensor *const *)xs, masks, &y, &y_mask, training))
        return NULL;
    for (int i = 0; l->model && i < m->n_call_losses; i++) /* the inner activity penalties join the outer's */
        if (!tg__model_add_call_loss(l->model, loc, m->call_losses[i]))
            return NULL;
    *s = (nested){.m = m, .out = y, .out_mask = y_mask, .out_gen = y->gen};
    return y;
}

static tg_tensor *nested_call(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    return nested_call_n(l, loc, (tg_tensor *const *)&x, mask ? &mask : NULL, 1, training);
}

/* The mask the last call gave its output (Keras's Functional.compute_mask runs the graph). */
static tg_tensor *nested_mask(const tg_layer *l)
{
    const nested *s = l->kept;
    return s->out && s->out->state == TG_HEADER_ALIVE && s->out->gen == s->out_gen ? s->out_mask : NULL;
}

static tg_tensor *nested_compute_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    (void)loc, (void)x, (void)mask;
    return nested_mask(l);
}

static tg_tensor *nested_compute_mask_n(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks,
                                        int n)
{
    (void)loc, (void)xs, (void)masks, (void)n;
    return nested_mask(l);
}

static void nested_set_trainable(tg_layer *l, tg_loc loc, bool trainable)
{
    tg_model_set_trainable_at(loc, inner_of(l), trainable);
}

static const tg_layer_kind sequential_kind = {.base_name = "sequential",
                                              .class_name = "Sequential",
                                              .build = nested_build,
                                              .call_mask = nested_call,
                                              .compute_mask = nested_compute_mask,
                                              .set_trainable = nested_set_trainable,
                                              .borrows_variables = true};
static const tg_layer_kind functional_kind = {.base_name = "functional",
                                              .class_name = "Functional",
                                              .build = nested_build,
                                              .call_mask = nested_call,
                                              .compute_mask = nested_compute_mask,
                                              .set_trainable = nested_set_trainable,
                                              .borrows_variables = true};
/* A functional model of several inputs: applied to a list. */
static tg_tensor *nested_call_plain_n(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    return nested_call_n(l, loc, xs, NULL, n, training);
}
static const tg_layer_kind functional_n_kind = {.base_name = "functional",
                                                .class_name = "Functional",
                                                .build_n = nested_build_n,
                                                .call_n = nested_call_plain_n,
                                                .call_mask_n = nested_call_n,
                                                .compute_mask_n = nested_compute_mask_n,
                                                .set_trainable = nested_set_trainable,
                                                .borrows_variables = true};

tg_layer *tg_model_as_layer_at(tg_loc loc, tg_model *m)
{
    if (!tg__model_check(loc, "tg_model_as_layer", m))
        return NULL;
    if (m->as_layer)
        return m->as_layer;
    if (tg__model_n_outputs(m) != 1)
        return tg__fail(loc, "tg_model_as_layer: model \"%s\" has %d outputs; a layer gives one", m->name,
                        tg__model_n_outputs(m));
    if (!m->functional && m->n_layers == 0)
        return tg__fail(loc, "tg_model_as_layer: model \"%s\" has no layers; add some first", m->name);
    const tg_layer_kind *kind = !m->functional     ? &sequential_kind
                                : m->n_inputs == 1 ? &functional_kind
                                                   : &functional_n_kind;
    tg_shape declared = m->functional || m->built ? tg__model_input_shape(m, 0) : (tg_shape){0};
    nested *s = calloc(1, sizeof *s);
    tg_layer *l = s ? tg__layer_new(loc, kind, m->name, m->dtype, 0, declared) : NULL;
    if (!l) {
        free(s);
        return s ? NULL : tg__fail(loc, "tg_model_as_layer: out of memory");
    }
    s->m = m;
    l->kept = s;
    l->kept_free = nested_free;
    l->trainable = m->trainable;
    m->as_layer = l;
    return l;
}

/* tg_model_free of a model used as a layer: refused while another model owns the layer;
 * else the layer goes too. False when refused. */
bool tg__model_free_as_layer(tg_loc loc, tg_model *m)
{
    tg_layer *l = m->as_layer;
    if (!l)
        return true;
    if (l->model)
        return tg__failb(loc, "tg_model_free: model \"%s\" is a layer of model \"%s\", which frees it; free that model",
                         m->name, l->model->name);
    ((nested *)l->kept)->m = NULL;
    m->as_layer = NULL;
    tg__layer_destroy(l);
    return true;
}
