/* Keras's attention layers (keras/src/layers/attention/): MultiHeadAttention made of
 * einsums with Keras's equations for its inputs' rank and attention axes, and Attention
 * and AdditiveAttention over one query and one value sequence. */
#include <math.h>
#include <stdlib.h>

#include "layer_impl.h"

/* ---- shared: masks, softmax, dropout ---------------------------------------------------------- */
/* Keras's Softmax layer with a mask (where(mask, x, -1e9), the softmax, where(mask, y, 0))
 * over the last n_axes axes of scores; mask is a bool tensor that broadcasts to scores, or
 * NULL. The one place where masks meet MultiHeadAttention's scores: the causal mask, the
 * inputs' masks and the attention_mask, combined by attention_mask(). */
static tg_tensor *masked_softmax(tg_loc loc, tg_tensor *scores, const tg_tensor *mask, int n_axes)
{
    if (mask)
        scores = tg_where_at(loc, mask, scores, tg_scalar_like_at(loc, scores, -1e9));
    tg_tensor *p;
    if (n_axes == 1) {
        p = tg_softmax_at(loc, scores, -1);
    } else { /* Keras: exp(x - logsumexp(x, axes, keepdims)) */
        tg_axes axes = {.n = n_axes};
        for (int i = 0; i < n_axes; i++)
            axes.axis[i] = -n_axes + i;
        p = tg_exp_at(loc, tg_sub_at(loc, scores,
                                     tg_logsumexp_at(loc, scores, (tg_reduce_opts){.axes = axes, .keepdims = true})));
    }
    return mask ? tg_where_at(loc, mask, p, tg_scalar_like_at(loc, p, 0.0)) : p;
}

/* Keras's causal mask, true where key step <= query step, (t, s) with leading 1s to `rank`. */
static tg_tensor *causal_mask(tg_loc loc, int64_t t, int64_t s, int rank)
{
    bool *m = malloc((size_t)(t * s > 0 ? t * s : 1));
    if (!m)
        return tg__fail(loc, "causal mask: out of memory");
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = 0; j < s; j++)
            m[i * s + j] = j <= i;
    tg_shape shape = {.rank = rank};
    for (int i = 0; i < rank; i++)
        shape.dims[i] = 1;
    shape.dims[rank - 2] = t, shape.dims[rank - 1] = s;
    tg_tensor *mask = tg_tensor_from_at(loc, TG_BOOL, shape, m);
    free(m);
    return mask;
}

/* Keras: the output carries the query's mask. */
static tg_tensor *query_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n)
{
    (void)l, (void)loc, (void)xs, (void)n;
    return (tg_tensor *)masks[0];
}

static bool make_rng(tg_layer *l, tg_loc loc, double rate)
{
    if (rate == 0.0)
        return true;
    l->rng = tg_rng_new(tg__derive_seed(l->seed, 0));
    return l->rng || tg__failb(loc, "%s \"%s\": out of memory", l->kind->class_name, l->name);
}

static void release_rng(tg_layer *l)
{
    tg_rng_free(l->rng);
    l->rng = NULL;
}

static const char *shape_str(const tg_shape *s, char *buf, size_t size) { return tg__batch_shape_str(s, buf, size); }

/* ---- MultiHeadAttention ------------------------------------------------------------------------- */
enum { QUERY, KEY, VALUE, OUTPUT }; /* the projections; each a kernel, then a bias with use_bias */

static int64_t value_dim(const tg_layer *l) { return l->o.mha.value_dim > 0 ? l->o.mha.value_dim : l->o.mha.key_dim; }

/* The attention axes for inputs of `rank` (batch included), Keras's way: negative axes
 * count from the features (-1); none given: every axis but the batch and the features.
 * Returns their count, 0 with an error. */
static int attention_axes(const tg_layer *l, tg_loc loc, int rank, int *axes)
{
    const tg_axes *a = &l->o.mha.attention_axes;
    if (a->n == 0) {
        for (int i = 1; i < rank - 1; i++)
            axes[i - 1] = i;
        return rank - 2;
    }
    for (int i = 0; i < a->n; i++) {
        int ax = a->axis[i] >= 0 ? a->axis[i] : rank + a->axis[i];
        bool seen = false;
        for (int k = 0; k < i; k++)
            seen |= axes[k] == ax;
        if (ax < 1 || ax > rank - 2 || seen)
            return tg__failb(loc,
                             "MultiHeadAttention \"%s\": attention_axes has %d, not an axis of inputs of rank %d "
                             "between the batch and the features (1 to %d), or given twice",
                             l->name, a->axis[i], rank, rank - 2),
                   0;
        axes[i] = ax;
    }
    return a->n;
}

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

/* The query, value and key shapes fit Keras's einsums: one rank, the key's dims but the
 * last equal to the value's, the query's dims off the attention axes equal to the value's. */
static bool check_mha_shapes(tg_layer *l, tg_loc loc, const tg_shape *in, int n, const int *axes, int n_axes)
{
    const tg_shape *q = &in[0], *v = &in[1], *k = n >= 3 ? &in[2] : &in[1];
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX], c[TG_SHAPE_STR_MAX];
    bool same = k->rank == v->rank;
    for (int i = 0; same && i < v->rank - 1; i++)
        same = k->dims[i] == v->dims[i];
    if (!same)
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": All dimensions of `value` and `key`, except the last one, must "
                         "be equal. Received: value_shape=%s and key_shape=%s",
                         l->name, shape_str(v, a, sizeof a), shape_str(k, b, sizeof b));
    if (q->rank != v->rank)
        return tg__failb(loc, "MultiHeadAttention \"%s\": the query %s and the value %s need the same rank", l->name,
                         shape_str(q, a, sizeof a), shape_str(v, b, sizeof b));
    for (int i = 0; i < q->rank - 1; i++) {
        bool attended = false;
        for (int k2 = 0; k2 < n_axes; k2++)
            attended |= axes[k2] == i + 1;
        if (!attended && q->dims[i] != v->dims[i])
            return tg__failb(loc,
                             "MultiHeadAttention \"%s\": the query %s and the value %s differ in axis %d, which "
                             "is not an attention axis (attention_axes: the axes the query and value may differ "
                             "in)",
                             l->name, shape_str(q, a, sizeof a), shape_str(v, c, sizeof c), i + 1);
    }
    return true;
}

/* The 4th input, attention_mask: (batch, query steps, value steps), for a query of rank 3. */
static bool check_attention_mask_shape(tg_layer *l, tg_loc loc, const tg_shape *in)
{
    char a[TG_SHAPE_STR_MAX], want[TG_SHAPE_STR_MAX];
    if (in[0].rank != 2)
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": attention_mask is taken for a query of (batch, steps, "
                         "features); this query is %s",
                         l->name, tg__batch_shape_str(&in[0], a, sizeof a));
    if (in[3].rank == 2 && in[3].dims[0] == in[0].dims[0] && in[3].dims[1] == in[1].dims[0])
        return true;
    tg_shape ts = TG_SHAPE(in[0].dims[0], in[1].dims[0]);
    return tg__failb(loc,
                     "MultiHeadAttention \"%s\": attention_mask has shape %s, but it needs (batch, query steps, "
                     "value steps) = %s",
                     l->name, tg__batch_shape_str(&in[3], a, sizeof a), tg__batch_shape_str(&ts, want, sizeof want));
}

static bool mha_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    const tg_multi_head_attention_opts *o = &l->o.mha;
    if (n < 2 || n > 4)
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": apply it to (query, value), (query, value, key) or (query, "
                         "value, key, attention_mask), not %d inputs",
                         l->name, n);
    for (int i = 0; i < (n < 3 ? n : 3); i++)
        if (in[i].rank < 2) {
            char s[TG_SHAPE_STR_MAX];
            return tg__failb(loc,
                             "MultiHeadAttention \"%s\": input %d has shape %s; the query, value and key need "
                             "(batch, steps, features) or more axes",
                             l->name, i, shape_str(&in[i], s, sizeof s));
        }
    int axes[TG_MAX_RANK], rank = in[0].rank + 1; /* the inputs', batch included */
    int n_axes = attention_axes(l, loc, rank, axes);
    if (n_axes == 0 || !check_mha_shapes(l, loc, in, n, axes, n_axes) ||
        (n == 4 && !check_attention_mask_shape(l, loc, in)))
        return false;
    if (o->use_causal_mask && (n_axes != 1 || axes[0] != 1))
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": use_causal_mask needs one attention axis, the first after the "
                         "batch (Keras's causal mask runs along axis 1)",
                         l->name);
    const tg_shape *q = &in[0], *v = &in[1], *k = n == 3 ? &in[2] : &in[1];
    int64_t h = o->num_heads, kd = o->key_dim, vd = value_dim(l), dq = q->dims[q->rank - 1];
    tg_shape out_dims = o->output_shape.rank > 0 ? o->output_shape : TG_SHAPE(dq);
    tg_shape out_kernel = TG_SHAPE(h, vd);
    for (int i = 0; i < out_dims.rank; i++)
        out_kernel.dims[out_kernel.rank++] = out_dims.dims[i];
    if (!projection(l, loc, "query", TG_SHAPE(dq, h, kd), TG_SHAPE(h, kd)) ||
        !projection(l, loc, "key", TG_SHAPE(k->dims[k->rank - 1], h, kd), TG_SHAPE(h, kd)) ||
        !projection(l, loc, "value", TG_SHAPE(v->dims[v->rank - 1], h, vd), TG_SHAPE(h, vd)) ||
        !projection(l, loc, "attention_output", out_kernel, out_dims) || !make_rng(l, loc, o->dropout))
        return false;
    *out = (tg_shape){.rank = q->rank - 1};
    for (int i = 0; i < q->rank - 1; i++)
        out->dims[i] = q->dims[i];
    for (int i = 0; i < out_dims.rank; i++)
        out->dims[out->rank++] = out_dims.dims[i];
    return true;
}

/* Keras's _build_proj_equation: `free` letters kept, `bound` summed, `outs` added. */
static void proj_equation(int free, int bound, int outs, char *eq)
{
    char in[32] = "", kernel[32] = "", out[32] = "";
    int ni = 0, nk = 0, no = 0, letter = 0;
    for (int i = 0; i < free; i++, letter++)
        in[ni++] = out[no++] = (char)('a' + letter);
    for (int i = 0; i < bound; i++, letter++)
        in[ni++] = kernel[nk++] = (char)('a' + letter);
    for (int i = 0; i < outs; i++, letter++)
        kernel[nk++] = out[no++] = (char)('a' + letter);
    sprintf(eq, "%s,%s->%s", in, kernel, out);
}

/* Keras's _build_attention_equation for projections of `rank` (batch, ..., heads,
 * channels): the query-key product and the combination with the value. */
static void attention_equations(int rank, const int *axes, int n_axes, char *dot, char *combine)
{
    char target[32] = "", source[32] = "", product[32] = "";
    int np = 0, letter = rank;
    for (int i = 0; i < rank; i++)
        target[i] = (char)('a' + i);
    for (int i = 0; i < rank; i++) {
        bool attended = false;
        for (int k = 0; k < n_axes; k++)
            attended |= axes[k] == i;
        source[i] = attended ? (char)('a' + letter++) : target[i];
        if (!attended && i != rank - 1) /* a batch dim (the heads' included) */
            product[np++] = target[i];
    }
    for (int k = 0; k < n_axes; k++)
        product[np++] = target[axes[k]];
    for (int k = 0; k < n_axes; k++)
        product[np++] = source[axes[k]];
    sprintf(dot, "%s,%s->%s", source, target, product);
    sprintf(combine, "%s,%s->%s", product, source, target);
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

/* Keras's _compute_attention_mask: the query's mask (B, T, 1), the value's and the key's
 * (B, 1, S; the key's only when the key is not the value) and the attention_mask (B, T, S),
 * AND-ed, with an axis for the heads: (B, 1, T, S); then the causal mask (1, 1, T, S).
 * NULL when there is none. Masks other than the causal one are taken for inputs of rank 3
 * (batch, steps, features), where Keras defines them. */
static bool attention_mask(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                           int scores_rank, tg_tensor **out)
{
    const tg_tensor *parts[4] = {masks[0] ? tg_expand_dims_at(loc, masks[0], -1) : NULL,
                                 masks[1] ? tg_expand_dims_at(loc, masks[1], -2) : NULL,
                                 n >= 3 && xs[2] != xs[1] && masks[2] ? tg_expand_dims_at(loc, masks[2], -2) : NULL,
                                 n == 4 ? tg_cast_at(loc, xs[3], TG_BOOL) : NULL};
    tg_tensor *m = NULL;
    for (int i = 0; i < 4; i++)
        if (parts[i])
            m = m ? tg_logical_and_at(loc, m, parts[i]) : (tg_tensor *)parts[i];
    if (m && tg_rank(xs[0]) != 3)
        return tg__failb(loc,
                         "MultiHeadAttention \"%s\": masks of the query, value and key are taken for inputs of "
                         "(batch, steps, features); this query has %d axes",
                         l->name, tg_rank(xs[0]));
    if (m)
        m = tg_expand_dims_at(loc, m, 1);
    if (l->o.mha.use_causal_mask) {
        tg_tensor *causal = causal_mask(loc, tg_dim(xs[0], 1), tg_dim(xs[1], 1), scores_rank);
        m = m ? tg_logical_and_at(loc, m, causal) : causal;
    }
    *out = m;
    return true;
}

static bool mha_call_outs(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                          bool training, tg_tensor **ys)
{
    const tg_multi_head_attention_opts *o = &l->o.mha;
    tg_tensor *query = xs[0], *value = xs[1], *key = n >= 3 ? xs[2] : xs[1];
    int rank = tg_rank(query) + 1, axes[TG_MAX_RANK]; /* the projections' rank */
    int n_axes = attention_axes(l, loc, rank - 1, axes);
    char proj[64], dot[64], combine[64], out_eq[64];
    proj_equation(rank - 2, 1, 2, proj);
    attention_equations(rank, axes, n_axes, dot, combine);
    proj_equation(rank - 2, 2, o->output_shape.rank > 0 ? o->output_shape.rank : 1, out_eq);
    tg_tensor *q = project(l, loc, proj, query, QUERY); /* (B, T..., heads, key_dim) */
    tg_tensor *k = project(l, loc, proj, key, KEY);
    tg_tensor *v = project(l, loc, proj, value, VALUE);
    q = tg_mul_at(loc, q, tg_scalar_like_at(loc, q, 1.0 / sqrt((double)o->key_dim)));
    tg_tensor *scores = einsum2(loc, dot, k, q); /* (B, other axes, heads, T..., S...) */
    tg_tensor *mask = NULL;
    if (!scores || !attention_mask(l, loc, xs, masks, n, tg_rank(scores), &mask))
        return false;
    tg_tensor *probs = masked_softmax(loc, scores, mask, n_axes);
    tg_tensor *kept =
        probs && training && o->dropout > 0 ? tg__dropout(loc, l->rng, probs, o->dropout, l->name) : probs;
    ys[0] = project(l, loc, out_eq, einsum2(loc, combine, kept, v), OUTPUT);
    if (o->return_attention_scores)
        ys[1] = probs;
    return ys[0] != NULL;
}

static tg_tensor *mha_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    const tg_tensor *none[4] = {0};
    tg_tensor *ys[TG_LAYER_MAX_OUTPUTS];
    return mha_call_outs(l, loc, xs, none, n, training, ys) ? ys[0] : NULL;
}

/* The output, and with return_attention_scores the probabilities: (other axes, heads,
 * the query's attention dims, the key's). */
static int mha_output_shapes(const tg_layer *l, tg_shape *out)
{
    int n = l->o.mha.return_attention_scores ? 2 : 1;
    if (!out)
        return n;
    out[0] = l->out_shape;
    if (n == 2) {
        const tg_shape *q = &l->in_shapes[0], *k = &l->in_shapes[l->n_in >= 3 ? 2 : 1];
        int axes[TG_MAX_RANK], rank = q->rank + 2; /* the projections', batch included */
        int n_axes = attention_axes(l, (tg_loc){0}, rank - 1, axes);
        tg_shape s = {0};
        for (int i = 1; i < rank - 2; i++) {
            bool attended = false;
            for (int k2 = 0; k2 < n_axes; k2++)
                attended |= axes[k2] == i;
            if (!attended)
                s.dims[s.rank++] = q->dims[i - 1];
        }
        s.dims[s.rank++] = l->o.mha.num_heads;
        for (int k2 = 0; k2 < n_axes; k2++)
            s.dims[s.rank++] = q->dims[axes[k2] - 1];
        for (int k2 = 0; k2 < n_axes; k2++)
            s.dims[s.rank++] = k->dims[axes[k2] - 1];
        out[1] = s;
    }
    return n;
}

static const tg_layer_kind mha_kind = {.base_name = "multi_head_attention",
                                       .class_name = "MultiHeadAttention",
                                       .autocast = true,
                                       .build_n = mha_build,
                                       .call_n = mha_call,
                                       .supports_masking = true,
                                       .compute_mask_n = query_mask,
                                       .release = release_rng,
                                       .output_shapes = mha_output_shapes,
                                       .call_outs = mha_call_outs};

tg_layer *tg_multi_head_attention_at(tg_loc loc, tg_multi_head_attention_opts o)
{
    if (o.num_heads <= 0 || o.key_dim <= 0 || o.value_dim < 0)
        return tg__fail(loc,
                        "tg_multi_head_attention: num_heads and key_dim must be positive (and value_dim not "
                        "negative), got %d, %lld, %lld",
                        o.num_heads, (long long)o.key_dim, (long long)o.value_dim);
    if (!(o.dropout >= 0 && o.dropout < 1))
        return tg__fail(loc, "tg_multi_head_attention: dropout must be in [0, 1), got %g", o.dropout);
    bool dims_ok = o.output_shape.rank >= 0 && o.output_shape.rank <= 4;
    for (int i = 0; dims_ok && i < o.output_shape.rank; i++)
        dims_ok = o.output_shape.dims[i] > 0;
    if (!dims_ok || o.attention_axes.n < 0 || o.attention_axes.n > TG_MAX_RANK - 3)
        return tg__fail(loc,
                        "tg_multi_head_attention: output_shape needs 1 to 4 positive dims (or none) and "
                        "attention_axes at most %d axes",
                        TG_MAX_RANK - 3);
    tg_layer *l = TG__LAYER_NEW(loc, &mha_kind, o);
    if (l)
        l->o.mha = o;
    return l;
}

/* ---- Attention and AdditiveAttention ------------------------------------------------------------ */
static bool is_additive(const tg_layer *l);

static bool attention_build(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_shape *out)
{
    const tg_attention_opts *o = &l->o.attention;
    const char *cls = l->kind->class_name;
    if (n < 2 || n > 3)
        return tg__failb(loc,
                         "%s \"%s\": layer accepts inputs list of length 2 or 3, namely [query, value] or [query, "
                         "value, key]. Received length: %d",
                         cls, l->name, n);
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    for (int i = 0; i < n; i++)
        if (in[i].rank != 2)
            return tg__failb(loc, "%s \"%s\": input %d has shape %s; the query, value and key need (batch, steps, dim)",
                             cls, l->name, i, shape_str(&in[i], a, sizeof a));
    const tg_shape *q = &in[0], *v = &in[1], *k = n == 3 ? &in[2] : &in[1];
    if (k->dims[0] != v->dims[0])
        return tg__failb(loc, "%s \"%s\": the key %s and the value %s need the same number of steps", cls, l->name,
                         shape_str(k, a, sizeof a), shape_str(v, b, sizeof b));
    if (k->dims[1] != q->dims[1])
        return tg__failb(loc, "%s \"%s\": the query %s and the %s %s need the same last dim", cls, l->name,
                         shape_str(q, a, sizeof a), n == 3 ? "key" : "value (the key)", shape_str(k, b, sizeof b));
    if (is_additive(l)) {
        if (o->use_scale &&
            !tg__layer_add_variable(l, loc, "scale", tg_init_glorot_uniform(), TG_SHAPE(q->dims[1]), true))
            return false;
    } else {
        if (o->use_scale && !tg__layer_add_variable(l, loc, "scale", tg_init_ones(), TG_SHAPE(), true))
            return false;
        if (o->score_mode == TG_SCORE_CONCAT &&
            !tg__layer_add_variable(l, loc, "concat_score_weight", tg_init_ones(), TG_SHAPE(), true))
            return false;
    }
    if (!make_rng(l, loc, o->dropout))
        return false;
    *out = TG_SHAPE(q->dims[0], v->dims[1]);
    return true;
}

/* Keras's _calculate_scores: (B, Tq, Tv). */
static tg_tensor *attention_scores(tg_layer *l, tg_loc loc, tg_tensor *q, tg_tensor *k)
{
    const tg_attention_opts *o = &l->o.attention;
    tg_tensor *scale = o->use_scale ? l->vars[0] : NULL;
    if (!is_additive(l) && o->score_mode == TG_SCORE_DOT) {
        tg_tensor *s = tg_matmul_at(loc, q, k, (tg_matmul_opts){.transpose_b = true});
        return scale ? tg_mul_at(loc, s, scale) : s;
    }
    /* q (B, Tq, 1, dim) + k (B, 1, Tv, dim) */
    tg_tensor *sum = tg_add_at(loc, tg_expand_dims_at(loc, q, -2), tg_expand_dims_at(loc, k, -3));
    tg_reduce_opts last = {.axes = TG_AXES(-1)};
    if (is_additive(l))
        return tg_sum_at(loc, scale ? tg_mul_at(loc, scale, tg_tanh_at(loc, sum)) : tg_tanh_at(loc, sum), last);
    tg_tensor *weight = l->vars[o->use_scale ? 1 : 0];
    return tg_mul_at(loc, weight, tg_sum_at(loc, tg_tanh_at(loc, scale ? tg_mul_at(loc, scale, sum) : sum), last));
}

/* Keras's Attention.call with its masks: the value's mask (B, 1, Tv) and the causal mask
 * (1, Tq, Tv) take 1e9 off the scores they mask, and the query's mask zeroes the output's
 * masked steps; the key's mask is not used (Keras's neither). */
static bool attention_call_outs(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                                bool training, tg_tensor **ys)
{
    const tg_attention_opts *o = &l->o.attention;
    tg_tensor *q = xs[0], *v = xs[1], *k = n == 3 ? xs[2] : xs[1];
    tg_tensor *scores = attention_scores(l, loc, q, k);
    tg_tensor *mask = masks[1] ? tg_expand_dims_at(loc, masks[1], -2) : NULL;
    if (scores && o->use_causal_mask) {
        tg_tensor *causal = causal_mask(loc, tg_dim(scores, 1), tg_dim(scores, 2), 3);
        mask = mask ? tg_logical_and_at(loc, mask, causal) : causal;
    }
    if (scores && mask) /* Keras: where(padding, scores - 1e9, scores) */
        scores = tg_where_at(loc, mask, scores, tg_sub_at(loc, scores, tg_scalar_like_at(loc, scores, 1e9)));
    tg_tensor *weights = tg_softmax_at(loc, scores, -1);
    tg_tensor *kept =
        weights && training && o->dropout > 0 ? tg__dropout(loc, l->rng, weights, o->dropout, l->name) : weights;
    tg_tensor *y = tg_matmul_at(loc, kept, v, (tg_matmul_opts){0});
    if (y && masks[0])
        y = tg_mul_at(loc, y, tg_cast_at(loc, tg_expand_dims_at(loc, masks[0], -1), tg_dtype_of(y)));
    ys[0] = y;
    if (o->return_attention_scores)
        ys[1] = weights;
    return ys[0] != NULL;
}

static tg_tensor *attention_call(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    const tg_tensor *none[3] = {0};
    tg_tensor *ys[TG_LAYER_MAX_OUTPUTS];
    return attention_call_outs(l, loc, xs, none, n, training, ys) ? ys[0] : NULL;
}

static int attention_output_shapes(const tg_layer *l, tg_shape *out)
{
    int n = l->o.attention.return_attention_scores ? 2 : 1;
    if (out) {
        out[0] = l->out_shape;
        if (n == 2)
            out[1] = TG_SHAPE(l->in_shapes[0].dims[0], l->in_shapes[1].dims[0]);
    }
    return n;
}

static const tg_layer_kind attention_kind = {.base_name = "attention",
                                             .class_name = "Attention",
                                             .autocast = true,
                                             .build_n = attention_build,
                                             .call_n = attention_call,
                                             .release = release_rng,
                                             .output_shapes = attention_output_shapes,
                                             .call_outs = attention_call_outs,
                                             .supports_masking = true,
                                             .compute_mask_n = query_mask};
static const tg_layer_kind additive_kind = {.base_name = "additive_attention",
                                            .class_name = "AdditiveAttention",
                                            .autocast = true,
                                            .build_n = attention_build,
                                            .call_n = attention_call,
                                            .release = release_rng,
                                            .output_shapes = attention_output_shapes,
                                            .call_outs = attention_call_outs,
                                            .supports_masking = true,
                                            .compute_mask_n = query_mask};

static bool is_additive(const tg_layer *l) { return l->kind == &additive_kind; }

static tg_layer *attention_new(tg_loc loc, const tg_layer_kind *kind, const char *func, tg_attention_opts o)
{
    if (!(o.dropout >= 0 && o.dropout < 1))
        return tg__fail(loc, "%s: dropout must be in [0, 1), got %g", func, o.dropout);
    if ((unsigned)o.score_mode > TG_SCORE_CONCAT || (kind == &additive_kind && o.score_mode != TG_SCORE_DOT))
        return tg__fail(loc,
                        "%s: Invalid value for argument score_mode. Expected one of {'dot', 'concat'} "
                        "(AdditiveAttention: none). Received: score_mode=%d",
                        func, (int)o.score_mode);
    tg_layer *l = TG__LAYER_NEW(loc, kind, o);
    if (l)
        l->o.attention = o;
    return l;
}

tg_layer *tg_attention_layer_at(tg_loc loc, tg_attention_opts o)
{
    return attention_new(loc, &attention_kind, "tg_attention_layer", o);
}

tg_layer *tg_additive_attention_at(tg_loc loc, tg_attention_opts o)
{
    return attention_new(loc, &additive_kind, "tg_additive_attention", o);
}
