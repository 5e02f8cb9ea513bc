/* Keras's MultiHeadAttention (keras/src/layers/attention/multi_head_attention.py), made of
 * einsums with Keras's equations for inputs (batch, steps, features). */
#include <math.h>

#include "layer_impl.h"

enum { QUERY, KEY, VALUE, OUTPUT }; /* the projections; each a kernel, then a bias with use_bias */

static int64_t value_dim(const tg_layer *l) { return l->o.mha.value_dim > 0 ? l->o.mha.value_dim : l->o.mha.key_dim; }

/* kernel (and bias) of one projection, named "<part>/kernel" as Keras's EinsumDense. */
static bool projection(tg_layer *l, tg_loc loc, const char *part, tg_shape kernel, tg_shape bias)
{
    const tg_multi_head_attention_opts *o = &l->o.mha;
    char name[64];
    snprintf(name, sizeof name, "%s/kernel", part);
    tg_initializer k = o->kernel_initializer.kind ? o->kernel_initializer : tg_init_glorot_uniform();
    tg_initializer b = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    if (!tg__layer_add_variable(l, loc, name, k, kernel, true))
        return false;
    if (!o->use_bias)
        return true;
    snprintf(name, sizeof name, "%s/bias", part);
    return tg__layer_add_variable(l, loc, name, b, bias, true) != NULL;
}

static bool mha_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    const tg_multi_head_attention_opts *o = &l->o.mha;
    if (n < 2 || n > 4)
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": apply it to (query, value), (query, value, key) or (query, "
                         "value, key, attention_mask), not %d inputs",
                         l->name, n);
    const tg_shape *q = &in[0], *v = &in[1], *k = n >= 3 ? &in[2] : &in[1];
    if (n == 4 && (in[3].rank != 2 || in[3].dims[0] != q->dims[0] || in[3].dims[1] != v->dims[0])) {
        char a[TG_SHAPE_STR_MAX], want[TG_SHAPE_STR_MAX];
        tg_shape ts = TG_SHAPE(q->dims[0], v->dims[0]);
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": attention_mask has shape %s, but it needs (batch, query steps, "
                         "value steps) = %s",
                         l->name, tg__batch_shape_str(&in[3], a, sizeof a),
                         tg__batch_shape_str(&ts, want, sizeof want));
    }
    for (int i = 0; i < (n < 3 ? n : 3); i++)
        if (in[i].rank != 2) {
            char s[TG_SHAPE_STR_MAX];
            return tg__failb(loc,
                             "MultiHeadAttention \"%s\": input %d has shape %s; the query, value and key need "
                             "(batch, steps, features)",
                             l->name, i, tg__batch_shape_str(&in[i], s, sizeof s));
        }
    if (k->dims[0] != v->dims[0]) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        return tg__failb(loc, "MultiHeadAttention \"%s\": the key %s and the value %s need the same number of steps",
                         l->name, tg__batch_shape_str(k, a, sizeof a), tg__batch_shape_str(v, b, sizeof b));
    }
    int64_t h = o->num_heads, kd = o->key_dim, vd = value_dim(l);
    if (!projection(l, loc, "query", TG_SHAPE(q->dims[1], h, kd), TG_SHAPE(h, kd)) ||
        !projection(l, loc, "key", TG_SHAPE(k->dims[1], h, kd), TG_SHAPE(h, kd)) ||
        !projection(l, loc, "value", TG_SHAPE(v->dims[1], h, vd), TG_SHAPE(h, vd)) ||
        !projection(l, loc, "attention_output", TG_SHAPE(h, vd, q->dims[1]), TG_SHAPE(q->dims[1])))
        return false;
    *out = *q;
    return true;
}

static tg_tensor *einsum2(tg_loc loc, const char *eq, tg_tensor *a, tg_tensor *b)
{
    return tg_einsum_at(loc, eq, (tg_tensor *[]){a, b}, 2);
}

static tg_tensor *project(tg_layer *l, tg_loc loc, const char *eq, tg_tensor *x, int which)
{
    bool bias = l->o.mha.use_bias;
    tg_tensor *y = einsum2(loc, eq, x, l->vars[bias ? 2 * which : which]);
    return bias ? tg_add_at(loc, y, l->vars[2 * which + 1]) : y;
}

/* Keras's causal mask on scores (batch, heads, T, S): -1e9 where key step > query step. */
static tg_tensor *causal(tg_loc loc, tg_tensor *scores)
{
    int64_t t = tg_dim(scores, 2), s = tg_dim(scores, 3);
    tg_tensor *mask = tg_fill_at(loc, tg_dtype_of(scores), TG_SHAPE(t, s), 0.0);
    for (int64_t i = 0; mask && i < t; i++)
        for (int64_t j = i + 1; j < s; j++)
            tg__set(mask, i * s + j, -1e9);
    return tg_add_at(loc, scores, mask);
}

/* Keras's _compute_attention_mask: the query's mask (B, T, 1), the value's and the key's
 * (B, 1, S; the key's only when the key is not the value), the attention_mask (B, T, S)
 * and the causal mask (1, T, S), AND-ed; NULL when there is none but the causal mask. */
static tg_tensor *attention_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n)
{
    tg_tensor *m = NULL;
    const tg_tensor *parts[4] = {masks[0] ? tg_expand_dims_at(loc, masks[0], -1) : NULL,
                                 masks[1] ? tg_expand_dims_at(loc, masks[1], -2) : NULL,
                                 n >= 3 && xs[2] != xs[1] && masks[2] ? tg_expand_dims_at(loc, masks[2], -2) : NULL,
                                 n == 4 ? tg_cast_at(loc, xs[3], TG_BOOL) : NULL};
    for (int i = 0; i < 4; i++)
        if (parts[i])
            m = m ? tg_logical_and_at(loc, m, parts[i]) : (tg_tensor *)parts[i];
    if (m && l->o.mha.use_causal_mask) {
        int64_t t = tg_dim(xs[0], 1), s = tg_dim(xs[1], 1);
        tg_tensor *causal = tg_fill_at(loc, TG_BOOL, TG_SHAPE(t, s), 1.0);
        for (int64_t i = 0; causal && i < t; i++)
            for (int64_t j = i + 1; j < s; j++)
                ((bool *)causal->data)[i * s + j] = false;
        m = tg_logical_and_at(loc, m, causal);
    }
    return m;
}

/* Keras's Softmax with a mask: masked scores become -1e9, and their weights 0 after. */
static tg_tensor *masked_softmax(tg_loc loc, tg_tensor *scores, tg_tensor *mask)
{
    tg_tensor *keep = tg_broadcast_to_at(loc, tg_expand_dims_at(loc, mask, 1), tg_shape_of(scores));
    tg_tensor *probs = tg_softmax_at(loc, tg_where_at(loc, keep, scores, tg_scalar_like_at(loc, scores, -1e9)), -1);
    return tg_where_at(loc, keep, probs, tg_scalar_like_at(loc, scores, 0.0));
}

static tg_tensor *mha_call_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                                bool training)
{
    (void)training;
    tg_tensor *query = xs[0], *value = xs[1], *key = n >= 3 ? xs[2] : xs[1];
    tg_tensor *mask = attention_mask(l, loc, xs, masks, n);
    tg_tensor *q = project(l, loc, "abc,cde->abde", query, QUERY); /* (B, T, heads, key_dim) */
    tg_tensor *k = project(l, loc, "abc,cde->abde", key, KEY);
    tg_tensor *v = project(l, loc, "abc,cde->abde", value, VALUE);
    q = tg_mul_at(loc, q, tg_scalar_like_at(loc, q, 1.0 / sqrt((double)l->o.mha.key_dim)));
    tg_tensor *scores = einsum2(loc, "aecd,abcd->acbe", k, q); /* (B, heads, T, S) */
    if (l->o.mha.use_causal_mask && !mask)
        scores = causal(loc, scores);
    tg_tensor *probs = mask ? masked_softmax(loc, scores, mask) : tg_softmax_at(loc, scores, -1);
    tg_tensor *o = einsum2(loc, "acbe,aecd->abcd", probs, v); /* (B, T, heads, value_dim) */
    return project(l, loc, "abcd,cde->abe", o, OUTPUT);
}

static tg_tensor *mha_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    const tg_tensor *none[4] = {0};
    return mha_call_mask(l, loc, xs, none, n, training);
}

/* Keras: the output carries the query's mask. */
static tg_tensor *mha_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n)
{
    (void)l, (void)loc, (void)xs, (void)n;
    return (tg_tensor *)masks[0];
}

static const tg_layer_kind mha_kind = {.base_name = "multi_head_attention",
                                       .class_name = "MultiHeadAttention",
                                       .autocast = true,
                                       .build_n = mha_build,
                                       .call_n = mha_call,
                                       .supports_masking = true,
                                       .call_mask_n = mha_call_mask,
                                       .compute_mask_n = mha_mask};

tg_layer *tg_multi_head_attention_at(tg_loc loc, tg_multi_head_attention_opts o)
{
    if (o.num_heads <= 0 || o.key_dim <= 0 || o.value_dim < 0)
        return tg__fail(loc,
                        "tg_multi_head_attention: num_heads and key_dim must be positive (and value_dim not "
                        "negative), got %d, %lld, %lld",
                        o.num_heads, (long long)o.key_dim, (long long)o.value_dim);
    tg_layer *l = TG__LAYER_NEW(loc, &mha_kind, o);
    if (l)
        l->o.mha = o;
    return l;
}
