/* Keras's layer wrappers, Bidirectional and TimeDistributed (keras/src/layers/rnn/
 * bidirectional.py, keras/src/layers/core/... time_distributed.py).
 *
 * A wrapper keeps its inner layers in `kept` (they outlive builds) and builds them inside
 * its own build, under "<wrapper>/<inner>" names. It then takes their variables over: the
 * wrapper's vars list them (so models, tapes, trainable and checkpoints see them as the
 * wrapper's) and frees them; an inner layer keeps the pointers for its call with n_vars 0. */
#include <stdlib.h>

#include "layer_impl.h"

typedef struct wrapped {
    int n;
    tg_layer *inner[2];
    char *base[2]; /* the inner layer's name under the wrapper: "forward_lstm", "dense" */
} wrapped;

static void wrapped_free(void *p)
{
    wrapped *w = p;
    for (int k = 0; w && k < w->n; k++) {
        tg__layer_destroy(w->inner[k]);
        free(w->base[k]);
    }
    free(w);
}

static wrapped *wrapped_of(const tg_layer *l) { return l->kept; }

const tg_layer *tg__wrapped_layer(const tg_layer *l, const char **base)
{
    *base = wrapped_of(l)->base[0];
    return wrapped_of(l)->inner[0];
}

/* Unbuilt again with the wrapper; the variables went with the wrapper's. */
static void wrapped_release(tg_layer *l)
{
    wrapped *w = wrapped_of(l);
    for (int k = 0; k < w->n; k++)
        tg__layer_unbuild(w->inner[k]);
}

/* Builds inner layer k on examples of `in` and moves its variables into the wrapper. */
static bool build_inner(tg_layer *l, tg_loc loc, int k, const tg_shape *in, tg_shape *out)
{
    wrapped *w = wrapped_of(l);
    tg_layer *inner = w->inner[k];
    char name[512];
    snprintf(name, sizeof name, "%s/%s", l->name, w->base[k]);
    if (tg__layer_rename(inner, name) != 0)
        return tg__failb(loc, "%s \"%s\": out of memory", l->kind->class_name, l->name);
    inner->trainable = l->trainable;
    if (!tg__layer_build(inner, loc, in, l->dtype, tg__derive_seed(l->seed, (uint64_t)k)))
        return false;
    if (!tg__layer_reserve_vars(l, l->n_vars + inner->n_vars)) {
        tg__layer_unbuild(inner);
        return tg__failb(loc, "%s \"%s\": out of memory", l->kind->class_name, l->name);
    }
    for (int i = 0; i < inner->n_vars; i++) {
        l->vars[l->n_vars] = inner->vars[i];
        l->var_trainable[l->n_vars] = inner->var_trainable[i];
        l->var_reg[l->n_vars++] = inner->var_reg[i];
    }
    inner->n_vars = 0;
    *out = inner->out_shape;
    return true;
}

/* A wrapper of `kind` around `inner` (and `second`, or NULL), which it owns from here on. */
static tg_layer *wrap(tg_loc loc, const tg_layer_kind *kind, tg_layer *inner, tg_layer *second,
                      const char *const base[2], const char *name, tg_dtype dtype, uint64_t seed, tg_shape input_shape)
{
    wrapped *w = calloc(1, sizeof *w);
    if (!w) {
        tg__layer_destroy(inner);
        tg__layer_destroy(second);
        return tg__fail(loc, "tg_%s: out of memory", kind->base_name);
    }
    w->inner[0] = inner, w->inner[1] = second;
    w->n = second ? 2 : 1;
    tg_layer *l = tg__layer_new(loc, kind, name, dtype, seed, input_shape);
    if (!l) {
        wrapped_free(w);
        return NULL;
    }
    l->kept = w;
    l->kept_free = wrapped_free;
    for (int k = 0; k < w->n; k++)
        if (!(w->base[k] = strdup(base[k]))) {
            tg__layer_destroy(l);
            return tg__fail(loc, "tg_%s: out of memory", kind->base_name);
        }
    return l;
}

/* NULL (a failed constructor's, keeping its error) or a layer no model owns yet. */
static bool check_wrapped(tg_loc loc, const char *func, tg_layer *layer)
{
    if (!layer)
        return false;
    if (layer->model)
        return tg__failb(loc, "%s: layer \"%s\" already belongs to a model; wrap a new layer", func, layer->name);
    if (layer->built)
        tg__layer_unbuild(layer); /* Keras: the wrapper's copies start fresh */
    return true;
}

/* ---- Bidirectional --------------------------------------------------------------------------- */
static bool bidi_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    tg_shape back;
    if (!build_inner(l, loc, 0, in, out) || !build_inner(l, loc, 1, in, &back))
        return false;
    if (l->o.bidi.merge_mode == TG_MERGE_CONCAT)
        out->dims[out->rank - 1] *= 2;
    return true;
}

/* An inner layer on x and the wrapper's mask (Keras passes it to both directions). */
static tg_tensor *call_inner(tg_layer *inner, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    tg_tensor *in = (tg_tensor *)x, *out_mask = NULL, *ys[TG_LAYER_MAX_OUTPUTS];
    if (!mask)
        return tg__layer_call(inner, loc, x, training);
    return tg__layer_call_masked(inner, loc, &in, &mask, 1, training, ys, &out_mask) ? ys[0] : NULL;
}

static tg_tensor *bidi_call(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    wrapped *w = wrapped_of(l);
    tg_tensor *y = call_inner(w->inner[0], loc, x, mask, training);
    tg_tensor *y_rev = y ? call_inner(w->inner[1], loc, x, mask, training) : NULL;
    if (!y_rev)
        return NULL;
    if (w->inner[0]->o.rnn.return_sequences) /* step t of both directions lines up */
        y_rev = tg_reverse_at(loc, y_rev, TG_AXES(1));
    switch (l->o.bidi.merge_mode) {
    case TG_MERGE_SUM: return tg_add_at(loc, y, y_rev);
    case TG_MERGE_MUL: return tg_mul_at(loc, y, y_rev);
    case TG_MERGE_AVE: return tg_div_at(loc, tg_add_at(loc, y, y_rev), tg_scalar_like_at(loc, y, 2.0));
    default: return tg_concat_at(loc, (tg_tensor *const[]){y, y_rev}, 2, -1);
    }
}

/* Keras's Bidirectional.compute_mask: the mask goes on with the sequences. */
static tg_tensor *bidi_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    (void)loc, (void)x;
    return wrapped_of(l)->inner[0]->o.rnn.return_sequences ? (tg_tensor *)mask : NULL;
}

static const tg_layer_kind bidi_kind = {.base_name = "bidirectional",
                                        .class_name = "Bidirectional",
                                        .build = bidi_build,
                                        .release = wrapped_release,
                                        .call_mask = bidi_call,
                                        .compute_mask = bidi_mask};

tg_layer *tg_bidirectional_at(tg_loc loc, tg_layer *layer, tg_bidirectional_opts o)
{
    if (!check_wrapped(loc, "tg_bidirectional", layer))
        return NULL;
    if (!tg__is_recurrent(layer)) {
        tg__fail(loc,
                 "tg_bidirectional: layer \"%s\" (%s) is not a recurrent layer; Bidirectional wraps SimpleRNN, "
                 "LSTM or GRU",
                 layer->name, layer->kind->class_name);
        tg__layer_destroy(layer);
        return NULL;
    }
    if (layer->o.rnn.go_backwards) { /* Keras's backward copy would read forwards then */
        tg__fail(loc,
                 "tg_bidirectional: layer \"%s\" (%s) has go_backwards set; Bidirectional makes the backward copy "
                 "itself, so wrap the layer reading forwards",
                 layer->name, layer->kind->class_name);
        tg__layer_destroy(layer);
        return NULL;
    }
    if (layer->o.rnn.return_state) { /* Keras's list of both directions' states: not yet */
        tg__fail(loc, "tg_bidirectional: layer \"%s\" (%s) has return_state set; Bidirectional does not return states",
                 layer->name, layer->kind->class_name);
        tg__layer_destroy(layer);
        return NULL;
    }
    if ((unsigned)o.merge_mode > TG_MERGE_AVE) {
        tg__fail(loc,
                 "tg_bidirectional: merge_mode %d is not a tg_merge_mode (TG_MERGE_CONCAT, TG_MERGE_SUM, "
                 "TG_MERGE_MUL, TG_MERGE_AVE)",
                 (int)o.merge_mode);
        tg__layer_destroy(layer);
        return NULL;
    }
    char fwd[300], bwd[300];
    snprintf(fwd, sizeof fwd, "forward_%s", layer->name);
    snprintf(bwd, sizeof bwd, "backward_%s", layer->name);
    /* the backward copy gets its own seed when the layer has one (fresh weights otherwise
     * come from the wrapper's seed, as the forward one's) */
    tg_layer *back = tg__rnn_reversed_copy(loc, layer, NULL, layer->seed_opt ? tg__derive_seed(layer->seed_opt, 1) : 0);
    if (!back) {
        tg__layer_destroy(layer);
        return NULL;
    }
    /* the wrapped layer's input_shape serves the wrapper: both see the same sequences */
    tg_shape input_shape = o.input_shape.rank > 0 || layer->input_shape.rank <= 0 ? o.input_shape : layer->input_shape;
    tg_layer *l =
        wrap(loc, &bidi_kind, layer, back, (const char *const[]){fwd, bwd}, o.name, o.dtype, o.seed, input_shape);
    if (l)
        l->o.bidi = o;
    return l;
}

/* ---- TimeDistributed ------------------------------------------------------------------------- */
static bool td_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    if (in->rank < 2) {
        char s[TG_SHAPE_STR_MAX];
        return tg__failb(loc,
                         "TimeDistributed \"%s\": expects inputs of rank at least 3, (batch, time, ...); one "
                         "example has shape %s",
                         l->name, tg__batch_shape_str(in, s, sizeof s));
    }
    tg_shape step = {.rank = in->rank - 1}, y;
    for (int i = 1; i < in->rank; i++)
        step.dims[i - 1] = in->dims[i];
    if (!build_inner(l, loc, 0, &step, &y))
        return false;
    if (y.rank + 1 > TG_MAX_RANK - 1)
        return tg__failb(loc, "TimeDistributed \"%s\": the wrapped layer's output has too high a rank", l->name);
    *out = (tg_shape){.rank = y.rank + 1, .dims = {in->dims[0]}};
    for (int i = 0; i < y.rank; i++)
        out->dims[i + 1] = y.dims[i];
    return true;
}

static tg_tensor *td_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    int64_t b = tg_dim(x, 0), t = tg_dim(x, 1);
    tg_shape folded = {.rank = tg_rank(x) - 1, .dims = {b * t}};
    for (int i = 2; i < tg_rank(x); i++)
        folded.dims[i - 1] = tg_dim(x, i);
    tg_tensor *y = tg__layer_call(wrapped_of(l)->inner[0], loc, tg_reshape_at(loc, x, folded), training);
    if (!y)
        return NULL;
    tg_shape unfolded = {.rank = tg_rank(y) + 1, .dims = {b, t}};
    for (int i = 1; i < tg_rank(y); i++)
        unfolded.dims[i + 1] = tg_dim(y, i);
    return tg_reshape_at(loc, y, unfolded);
}

static const tg_layer_kind td_kind = {.base_name = "time_distributed",
                                      .class_name = "TimeDistributed",
                                      .build = td_build,
                                      .call = td_call,
                                      .release = wrapped_release};

tg_layer *tg_time_distributed_at(tg_loc loc, tg_layer *layer, tg_time_distributed_opts o)
{
    if (!check_wrapped(loc, "tg_time_distributed", layer))
        return NULL;
    if (!layer->kind->build) {
        tg__fail(loc,
                 "tg_time_distributed: layer \"%s\" (%s) takes several inputs; TimeDistributed wraps a layer "
                 "of one input",
                 layer->name, layer->kind->class_name);
        tg__layer_destroy(layer);
        return NULL;
    }
    char base[300];
    snprintf(base, sizeof base, "%s", layer->name);
    tg_layer *l =
        wrap(loc, &td_kind, layer, NULL, (const char *const[]){base, NULL}, o.name, o.dtype, o.seed, o.input_shape);
    if (l)
        l->o.td = o;
    return l;
}
