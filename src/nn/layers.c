/* Layers: the machinery every kind shares (naming, variables, build, call, trainable)
 * and the core kinds: Dense, Activation, Dropout, Flatten, Reshape, Embedding. */
#include <stdlib.h>

#include "layer_impl.h"

/* ---- helpers ------------------------------------------------------------------------- */
uint64_t tg__derive_seed(uint64_t seed, uint64_t k)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (k + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

const char *tg__batch_shape_str(const tg_shape *s, char *buf, size_t size)
{
    int n = snprintf(buf, size, "(None");
    for (int i = 0; i < s->rank && n >= 0 && (size_t)n < size; i++)
        n += snprintf(buf + n, size - (size_t)n, ", %lld", (long long)s->dims[i]);
    if (n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ")");
    return buf;
}

int tg__layer_axis(tg_loc loc, const tg_layer *l, int axis, int rank)
{
    int a = axis < 0 ? axis + rank : axis;
    if (a <= 0 || a >= rank) {
        tg__fail(loc,
                 "%s \"%s\": axis %d is out of range for inputs of rank %d (batch included); "
                 "use -1 for the last axis, and never 0, the batch axis",
                 l->kind->class_name, l->name, axis, rank);
        return -1;
    }
    return a;
}

/* ---- activations ------------------------------------------------------------------------ */
static const char *const activation_names[TG_ACTIVATION_COUNT] = {
    [TG_LINEAR] = "linear",
    [TG_RELU] = "relu",
    [TG_SIGMOID] = "sigmoid",
    [TG_TANH] = "tanh",
    [TG_SOFTMAX] = "softmax",
    [TG_SOFTPLUS] = "softplus",
    [TG_ELU] = "elu",
    [TG_GELU] = "gelu",
    [TG_LEAKY_RELU] = "leaky_relu",
    [TG_RELU6] = "relu6",
    [TG_SELU] = "selu",
    [TG_SILU] = "silu",
    [TG_HARD_SIGMOID] = "hard_sigmoid",
    [TG_SOFTSIGN] = "softsign",
    [TG_LOG_SIGMOID] = "log_sigmoid",
};

const char *tg_activation_name(tg_activation a)
{
    return (unsigned)a < TG_ACTIVATION_COUNT ? activation_names[a] : NULL;
}

bool tg__check_activation(tg_loc loc, const char *func, tg_activation a)
{
    if ((unsigned)a < TG_ACTIVATION_COUNT)
        return true;
    tg__fail(loc,
             "%s: activation %d is not a tg_activation (TG_LINEAR, TG_RELU, TG_SIGMOID, TG_TANH, "
             "TG_SOFTMAX, TG_SOFTPLUS, TG_ELU, TG_GELU, TG_LEAKY_RELU, TG_RELU6, TG_SELU, TG_SILU, "
             "TG_HARD_SIGMOID, TG_SOFTSIGN, TG_LOG_SIGMOID)",
             func, (int)a);
    return false;
}

tg_tensor *tg__activate(tg_loc loc, const tg_tensor *x, tg_activation a)
{
    switch (a) {
    case TG_LINEAR: return (tg_tensor *)x;
    case TG_RELU: return tg_relu_at(loc, x);
    case TG_SIGMOID: return tg_sigmoid_at(loc, x);
    case TG_TANH: return tg_tanh_at(loc, x);
    case TG_SOFTMAX: return tg_softmax_at(loc, x, -1);
    case TG_SOFTPLUS: return tg_softplus_at(loc, x);
    case TG_ELU: return tg_elu_at(loc, x, 1.0);
    case TG_GELU: return tg_gelu_at(loc, x, false);
    case TG_LEAKY_RELU: return tg_leaky_relu_at(loc, x, 0.2);
    case TG_RELU6: return tg_relu6_at(loc, x);
    case TG_SELU: return tg_selu_at(loc, x);
    case TG_SILU: return tg_silu_at(loc, x, 1.0);
    case TG_HARD_SIGMOID: return tg_hard_sigmoid_at(loc, x);
    case TG_SOFTSIGN: return tg_softsign_at(loc, x);
    case TG_LOG_SIGMOID: return tg_log_sigmoid_at(loc, x);
    default: tg__check_activation(loc, "tg_activate", a); return NULL;
    }
}

tg_tensor *tg__bias_activate(tg_loc loc, const tg_tensor *y, const tg_tensor *bias, tg_activation a)
{
    /* One fused pass for the activations tg_bias_add_act knows; the same values either way. */
    static const int fused[TG_ACTIVATION_COUNT] = {[TG_LINEAR] = TG_BIAS_LINEAR + 1,
                                                   [TG_RELU] = TG_BIAS_RELU + 1,
                                                   [TG_SIGMOID] = TG_BIAS_SIGMOID + 1,
                                                   [TG_TANH] = TG_BIAS_TANH + 1};
    if (!bias)
        return tg__activate(loc, y, a);
    if ((unsigned)a < TG_ACTIVATION_COUNT && fused[a])
        return tg_bias_add_act_at(loc, y, bias, (tg_bias_act)(fused[a] - 1));
    return tg__activate(loc, tg_add_at(loc, y, bias), a);
}

tg_tensor *tg_activate_at(tg_loc loc, const tg_tensor *x, tg_activation a)
{
    if (!tg__check_activation(loc, "tg_activate", a))
        return NULL;
    return a == TG_LINEAR ? tg_identity_at(loc, x) : tg__activate(loc, x, a);
}

/* ---- common layer machinery ------------------------------------------------------------------ */
tg_layer *tg__layer_new(tg_loc loc, const tg_layer_kind *kind, const char *name, tg_dtype dtype, uint64_t seed,
                        tg_shape input_shape)
{
    return tg__layer_new_p(loc, kind, name, dtype, seed, input_shape, NULL);
}

/* Keras resolves a layer's policy when the layer is made: its own, else its dtype, else
 * the global policy. float32 left to the model keeps TG_DTYPE_INHERIT (the model's dtype). */
static bool resolve_policy(tg_loc loc, const tg_layer_kind *kind, const char *policy, tg_dtype *dtype, bool *mixed)
{
    char func[64];
    snprintf(func, sizeof func, "tg_%s", kind->base_name);
    tg__policy p = tg__global_policy();
    if (policy && !tg__policy_parse(loc, func, policy, &p))
        return false;
    if (!policy && *dtype != TG_DTYPE_INHERIT)
        return true;
    tg_dtype want = p == TG__POLICY_FLOAT64 ? TG_F64 : TG_F32;
    if (policy && *dtype != TG_DTYPE_INHERIT && *dtype != want)
        return tg__failb(loc, "%s: dtype %s and dtype_policy \"%s\" disagree; give one of them", func,
                         tg_dtype_name(*dtype) ? tg_dtype_name(*dtype) : "(unknown)", policy);
    *mixed = p == TG__POLICY_MIXED_BF16;
    if (policy || p != TG__POLICY_FLOAT32)
        *dtype = want;
    return true;
}

tg_layer *tg__layer_new_p(tg_loc loc, const tg_layer_kind *kind, const char *name, tg_dtype dtype, uint64_t seed,
                          tg_shape input_shape, const char *dtype_policy)
{
    bool mixed = false;
    if (!resolve_policy(loc, kind, dtype_policy, &dtype, &mixed))
        return NULL;
    if (dtype != TG_DTYPE_INHERIT && dtype != TG_F32 && dtype != TG_F64)
        return tg__fail(loc, "tg_%s: dtype must be float32, float64 or TG_DTYPE_INHERIT, not %s", kind->base_name,
                        tg_dtype_name(dtype) ? tg_dtype_name(dtype) : "an unknown dtype");
    if (input_shape.rank < 0 || input_shape.rank > TG_MAX_RANK - 1)
        return tg__fail(loc, "tg_%s: input_shape has rank %d; one example's shape may have rank 0 to %d",
                        kind->base_name, input_shape.rank, TG_MAX_RANK - 1);
    for (int i = 0; i < input_shape.rank; i++)
        if (input_shape.dims[i] <= 0)
            return tg__fail(loc,
                            "tg_%s: input_shape dim %d is %lld; every dim must be positive (leave the "
                            "batch dim out)",
                            kind->base_name, i, (long long)input_shape.dims[i]);
    if (tg__shape_size(&input_shape) < 0) {
        char str[TG_SHAPE_STR_MAX];
        return tg__fail(loc, "tg_%s: input_shape %s is too large: its dims multiply past %lld elements",
                        kind->base_name, tg__shape_str(&input_shape, str, sizeof str), (long long)TG_MAX_ELEMENTS);
    }
    tg_layer *l = calloc(1, sizeof *l);
    char *nm = strdup(name ? name : kind->base_name);
    if (!l || !nm) {
        free(l);
        free(nm);
        return tg__fail(loc, "tg_%s: out of memory", kind->base_name);
    }
    l->kind = kind;
    l->name = nm;
    l->auto_named = name == NULL;
    l->dtype_opt = l->dtype = dtype;
    l->mixed = mixed;
    l->seed_opt = seed;
    l->input_shape = input_shape.rank > 0 ? input_shape : (tg_shape){.rank = -1};
    l->trainable = true;
    l->in_shape.rank = l->out_shape.rank = -1;
    return l;
}

int tg__layer_rename(tg_layer *l, const char *name)
{
    char *nm = strdup(name);
    if (!nm)
        return -1;
    free(l->name);
    l->name = nm;
    return 0;
}

bool tg__layer_reserve_vars(tg_layer *l, int n)
{
    if (n <= l->cap_vars)
        return true;
    int cap = l->cap_vars ? 2 * l->cap_vars : TG_LAYER_MIN_VARS;
    while (cap < n)
        cap *= 2;
    tg_tensor **v = realloc(l->vars, sizeof *v * (size_t)cap);
    if (v)
        l->vars = v;
    bool *t = v ? realloc(l->var_trainable, sizeof *t * (size_t)cap) : NULL;
    if (t)
        l->var_trainable = t;
    tg_regularizer *r = t ? realloc(l->var_reg, sizeof *r * (size_t)cap) : NULL;
    if (!r)
        return false;
    l->var_reg = r;
    for (int i = l->cap_vars; i < cap; i++) /* a kind may set a penalty before its variable */
        r[i] = (tg_regularizer){0};
    l->cap_vars = cap;
    return true;
}

tg_tensor *tg__layer_add_variable(tg_layer *l, tg_loc loc, const char *name, tg_initializer init, tg_shape shape,
                                  bool trainable)
{
    if (!tg__layer_reserve_vars(l, l->n_vars + 1))
        return tg__fail(loc, "%s \"%s\": out of memory adding a variable", l->kind->class_name, l->name);
    char full[512];
    snprintf(full, sizeof full, "%s/%s", l->name, name);
    tg_scope *s = tg_scope_begin_at(loc);
    if (!s)
        return NULL;
    tg_tensor *value = tg_initialize_at(loc, init, l->dtype, shape, tg__derive_seed(l->seed, (uint64_t)l->n_vars));
    /* Keras: a variable made trainable in a frozen layer starts frozen. */
    tg_tensor *v =
        value ? tg_variable_at(loc, value, (tg_variable_opts){.name = full, .trainable = trainable && l->trainable})
              : NULL;
    tg_scope_end_at(loc, s);
    if (!v)
        return NULL;
    l->vars[l->n_vars] = v;
    l->var_reg[l->n_vars] = (tg_regularizer){0};
    l->var_trainable[l->n_vars++] = trainable;
    return v;
}

void tg__layer_unbuild(tg_layer *l)
{
    for (int i = 0; !l->kind->borrows_variables && i < l->n_vars; i++)
        tg_variable_free(l->vars[i]);
    for (int i = 0; i < l->cap_vars; i++)
        l->var_reg[i] = (tg_regularizer){0};
    l->n_vars = 0;
    if (l->kind->release)
        l->kind->release(l);
    free(l->in_shapes);
    l->in_shapes = NULL;
    l->n_in = 0;
    l->built = false;
    l->in_shape.rank = l->out_shape.rank = -1;
}

bool tg__layer_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_dtype model_dtype, uint64_t seed)
{
    l->dtype = l->dtype_opt != TG_DTYPE_INHERIT ? l->dtype_opt : model_dtype;
    l->seed = l->seed_opt ? l->seed_opt : seed;
    tg_shape out = {0};
    struct tg_fgraph *g = tg__trace_pause(); /* variables are made once, as in TF's first trace */
    bool ok = l->kind->build(l, loc, in, &out);
    tg__trace_resume(g);
    if (!ok) {
        tg__layer_unbuild(l);
        return false;
    }
    l->in_shape = *in;
    l->out_shape = out;
    l->n_in = 1;
    l->built = true;
    return true;
}

bool tg__layer_build_n(tg_layer *l, tg_loc loc, const tg_shape *in, int n, tg_dtype model_dtype, uint64_t seed)
{
    if (!l->kind->build_n) {
        if (n != 1)
            return tg__failb(loc, "layer \"%s\" (%s) takes one input, but it was called on %d", l->name,
                             l->kind->class_name, n);
        return tg__layer_build(l, loc, in, model_dtype, seed);
    }
    l->dtype = l->dtype_opt != TG_DTYPE_INHERIT ? l->dtype_opt : model_dtype;
    l->seed = l->seed_opt ? l->seed_opt : seed;
    tg_shape out = {0};
    l->in_shapes = malloc(sizeof *l->in_shapes * (size_t)(n > 0 ? n : 1));
    if (!l->in_shapes)
        return tg__failb(loc, "layer \"%s\": out of memory", l->name);
    if (!l->kind->build_n(l, loc, in, n, &out)) {
        tg__layer_unbuild(l);
        return false;
    }
    memcpy(l->in_shapes, in, sizeof *in * (size_t)n);
    l->n_in = n;
    l->in_shape = in[0];
    l->out_shape = out;
    l->built = true;
    return true;
}

static bool same_example(const tg_shape *example, const tg_tensor *x)
{
    if (tg_rank(x) != example->rank + 1)
        return false;
    for (int i = 0; i < example->rank; i++)
        if (tg_dim(x, i + 1) != example->dims[i])
            return false;
    return true;
}

/* Keras's Layer.__call__: add_loss(activity_regularizer(output)) into the owning model. */
static bool add_activity_loss(tg_layer *l, tg_loc loc, const tg_tensor *y)
{
    if ((l->activity_reg.l1 == 0 && l->activity_reg.l2 == 0) || !l->model)
        return true;
    tg_tensor *p = tg__regularizer_penalty(loc, y, l->activity_reg);
    return p && tg__model_add_call_loss(l->model, loc, p);
}

/* The calls that give one tensor refuse a layer of several outputs. */
static bool one_output(const tg_layer *l, tg_loc loc)
{
    int n_out = tg__layer_output_shapes(l, NULL);
    if (n_out > 1)
        return tg__failb(loc,
                         "layer \"%s\" (%s) has %d outputs: apply it to keras tensors with "
                         "tg_layer_apply_outputs in a functional model",
                         l->name, l->kind->class_name, n_out);
    return true;
}

/* Keras's __call__ on one input: the shape check, autocast, the kind's call (with the mask
 * when the kind takes one), then add_loss of the activity penalty. */
static tg_tensor *call_one(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    if (!same_example(&l->in_shape, x)) {
        char want[TG_SHAPE_STR_MAX], got[TG_SHAPE_STR_MAX];
        tg_shape xs = tg_shape_of(x);
        return tg__fail(loc,
                        "input 0 of layer \"%s\" is incompatible with the layer: expected shape=%s, "
                        "found shape=%s",
                        l->name, tg__batch_shape_str(&l->in_shape, want, sizeof want),
                        tg__shape_str(&xs, got, sizeof got));
    }
    if (!one_output(l, loc))
        return NULL;
    tg_context *ctx = tg__ctx();
    const char *outer = ctx->layer;
    ctx->layer = l->name;                     /* names the layer in TG_CHECK_NUMERICS reports */
    tg_dtype cd = tg__layer_compute_dtype(l); /* Keras casts only floating inputs to bfloat16 */
    if (l->kind->autocast && tg_dtype_of(x) != cd && (cd != TG_BF16 || tg__dtype_is_real(tg_dtype_of(x))))
        x = tg_cast_at(loc, x, cd);
    tg_tensor *y = !x                   ? NULL
                   : l->kind->call_mask ? l->kind->call_mask(l, loc, x, mask, training)
                                        : l->kind->call(l, loc, x, training);
    ctx->layer = outer;
    return y && !add_activity_loss(l, loc, y) ? NULL : y;
}

tg_tensor *tg__layer_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    return call_one(l, loc, x, NULL, training);
}

int tg__layer_output_shapes(const tg_layer *l, tg_shape *out)
{
    if (l->kind->output_shapes)
        return l->kind->output_shapes(l, out);
    if (out)
        out[0] = l->out_shape;
    return 1;
}

/* The one path of the calls on a list of inputs: every output into ys, with the inputs'
 * masks (NULL: none; checked by the caller) given to the kinds that take them. */
static bool call_several(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                         bool training, tg_tensor **ys)
{
    const tg_layer_kind *k = l->kind;
    if (!k->call_n && !k->call_outs)
        return n == 1 ? (ys[0] = call_one(l, loc, xs[0], masks ? masks[0] : NULL, training)) != NULL
                      : tg__failb(loc, "layer \"%s\" (%s) takes one input, but it was called on %d", l->name,
                                  k->class_name, n);
    if (n != l->n_in)
        return tg__failb(loc, "layer \"%s\" (%s) was built for %d inputs, but it was called on %d", l->name,
                         l->kind->class_name, l->n_in, n);
    for (int i = 0; i < n; i++) {
        const tg_shape *want = l->in_shapes ? &l->in_shapes[i] : &l->in_shape;
        if (!same_example(want, xs[i])) {
            char w[TG_SHAPE_STR_MAX], got[TG_SHAPE_STR_MAX];
            tg_shape xs_i = tg_shape_of(xs[i]);
            return tg__failb(loc,
                             "input %d of layer \"%s\" is incompatible with the layer: expected shape=%s, "
                             "found shape=%s",
                             i, l->name, tg__batch_shape_str(want, w, sizeof w), tg__shape_str(&xs_i, got, sizeof got));
        }
    }
    tg_tensor **cast = tg__arena_alloc(tg__ctx()->scope, sizeof *cast * (size_t)n); /* with the batch's tensors */
    if (!cast)
        return tg__failb(loc, "layer \"%s\": out of memory", l->name);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        cast[i] = xs[i];
        if (l->kind->autocast && tg_dtype_of(xs[i]) != l->dtype)
            ok &= (cast[i] = tg_cast_at(loc, xs[i], l->dtype)) != NULL;
    }
    tg_context *ctx = tg__ctx();
    const char *outer = ctx->layer;
    ctx->layer = l->name;
    const tg_tensor *none[n];
    for (int i = 0; i < n; i++)
        none[i] = NULL;
    const tg_tensor *const *m = masks ? masks : none;
    if (ok && k->call_outs)
        ok = k->call_outs(l, loc, cast, m, n, training, ys);
    else if (ok && k->call_mask_n)
        ok = (ys[0] = k->call_mask_n(l, loc, cast, m, n, training)) != NULL;
    else if (ok)
        ok = (ys[0] = k->call_n(l, loc, cast, n, training)) != NULL;
    ctx->layer = outer;
    return ok;
}

tg_tensor *tg__layer_call_n(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training)
{
    tg_tensor *ys[TG_LAYER_MAX_OUTPUTS];
    return call_several(l, loc, xs, NULL, n, training, ys) ? ys[0] : NULL;
}

bool tg__layer_call_outs(tg_layer *l, tg_loc loc, tg_tensor *const *xs, int n, bool training, tg_tensor **ys)
{
    return call_several(l, loc, xs, NULL, n, training, ys);
}

bool tg__check_mask(tg_loc loc, const tg_layer *l, int i, const tg_tensor *x, const tg_tensor *mask,
                    const tg_tensor **out)
{
    *out = NULL;
    if (!mask)
        return true;
    if (!tg__check_input(loc, "the mask", mask, "mask"))
        return false;
    tg_shape ms = tg_shape_of(mask), xs = tg_shape_of(x);
    bool fits = ms.rank >= 1 && ms.rank < xs.rank;
    for (int k = 0; fits && k < ms.rank; k++)
        fits = ms.dims[k] == xs.dims[k];
    if (!fits) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        return tg__failb(loc,
                         "layer \"%s\" (%s): the mask of input %d has shape %s, but the input has shape %s; a mask "
                         "holds one value per step, the input's leading axes (batch, steps)",
                         l->name, l->kind->class_name, i, tg__shape_str(&ms, a, sizeof a),
                         tg__shape_str(&xs, b, sizeof b));
    }
    *out = tg_dtype_of(mask) == TG_BOOL ? mask : tg_cast_at(loc, mask, TG_BOOL);
    return *out != NULL;
}

static bool takes_masks(const tg_layer_kind *k)
{
    return k->supports_masking || k->call_mask || k->compute_mask || k->call_mask_n || k->compute_mask_n;
}

bool tg__layer_call_masked(tg_layer *l, tg_loc loc, tg_tensor *const *xs, const tg_tensor *const *masks, int n,
                           bool training, tg_tensor **ys, tg_tensor **out_mask)
{
    *out_mask = NULL;
    const tg_tensor *m[n > 0 ? n : 1];
    bool any = false;
    for (int i = 0; i < n; i++) {
        if (!tg__check_input(loc, "tg_model_call", xs[i], "x") ||
            !tg__check_mask(loc, l, i, xs[i], masks ? masks[i] : NULL, &m[i]))
            return false;
        any |= m[i] != NULL;
    }
    const tg_layer_kind *k = l->kind;
    if (!call_several(l, loc, xs, any ? m : NULL, n, training, ys))
        return false;
    uint64_t errors = tg__error_count(); /* a recurrent layer's mask is its sequences' (input 0) */
    if (k->compute_mask && (n == 1 || (k->call_outs && !k->compute_mask_n)))
        *out_mask = k->compute_mask(l, loc, xs[0], m[0]);
    else if (n > 1 && k->compute_mask_n)
        *out_mask = any ? k->compute_mask_n(l, loc, xs, m, n) : NULL;
    else if (n == 1 && k->supports_masking)
        *out_mask = (tg_tensor *)m[0];
    else if (any && !takes_masks(k) && !l->mask_warned && (l->mask_warned = true))
        tg__warn(loc,
                 "Layer '%s' (of type %s) was passed an input with a mask attached to it. However, this layer "
                 "does not support masking and will therefore destroy the mask information. Downstream layers "
                 "will not see the mask.",
                 l->name, k->class_name);
    return tg__error_count() == errors;
}

void tg__layer_destroy(tg_layer *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n_nodes; i++) {
        free(l->nodes[i]->in);
        free(l->nodes[i]);
    }
    free(l->nodes);
    tg__layer_unbuild(l);
    if (l->kept_free)
        l->kept_free(l->kept);
    free(l->vars);
    free(l->var_trainable);
    free(l->var_reg);
    free(l->name);
    free(l);
}

/* ---- public layer API ------------------------------------------------------------------------ */
#define CHECK_LAYER(func, l, ret)             \
    do {                                      \
        if (!(l)) {                           \
            tg__null_arg(loc, func, "layer"); \
            return ret;                       \
        }                                     \
    } while (0)

tg_tensor *tg_layer_call_at(tg_loc loc, tg_layer *l, const tg_tensor *x, tg_model_call_opts o)
{
    CHECK_LAYER("tg_layer_call", l, NULL);
    if (!tg__check_input(loc, "tg_layer_call", x, "x"))
        return NULL;
    if (l->kind->call_n)
        return tg__fail(loc,
                        "tg_layer_call: layer \"%s\" (%s) merges several inputs: apply it to keras tensors with "
                        "tg_layer_apply(layer, a, b) in a functional model",
                        l->name, l->kind->class_name);
    if (!l->built) {
        if (tg_rank(x) < 1)
            return tg__fail(loc, "tg_layer_call: x is a scalar; a layer takes a batch, whose first axis is "
                                 "the batch");
        tg_shape xs = tg_shape_of(x), ex = {.rank = xs.rank - 1};
        for (int i = 1; i < xs.rank; i++)
            ex.dims[i - 1] = xs.dims[i];
        if (!tg__layer_build(l, loc, &ex, TG_F32, 0))
            return NULL;
    }
    if (!o.mask)
        return tg__layer_call(l, loc, x, o.training);
    if (!one_output(l, loc))
        return NULL;
    tg_tensor *in = (tg_tensor *)x, *out_mask = NULL, *ys[TG_LAYER_MAX_OUTPUTS];
    return tg__layer_call_masked(l, loc, &in, &o.mask, 1, o.training, ys, &out_mask) ? ys[0] : NULL;
}

const char *tg_layer_name(const tg_layer *l) { return l ? l->name : NULL; }
const char *tg_layer_class_name(const tg_layer *l) { return l ? l->kind->class_name : NULL; }
bool tg_layer_built(const tg_layer *l) { return l && l->built; }

tg_activation tg_layer_activation(const tg_layer *l) { return l ? l->activation : TG_LINEAR; }
bool tg_layer_trainable(const tg_layer *l) { return l && l->trainable; }

tg_shape tg_layer_output_shape(const tg_layer *l) { return l && l->built ? l->out_shape : (tg_shape){.rank = -1}; }

tg_tensor *const *tg_layer_variables_at(tg_loc loc, const tg_layer *l, int *count)
{
    if (count)
        *count = l ? l->n_vars : 0;
    for (int i = 0; l && loc.file && i < l->n_vars; i++) /* for a diagnosis: where they were handed out */
        if (!l->vars[i]->var->trainable)
            l->vars[i]->var->listed = loc;
    return l ? l->vars : NULL;
}

int tg__layer_weights(const tg_layer *l, tg_tensor **out)
{
    int n = 0;
    for (int pass = 0; pass < 2; pass++) /* Keras: _trainable_variables + _non_trainable_variables */
        for (int k = 0; k < l->n_vars; k++)
            if (l->var_trainable[k] == (pass == 0))
                out[n++] = l->vars[k];
    return n;
}

static bool weight_count_ok(tg_loc loc, const char *func, const char *owner, int n_vars, int n)
{
    if (n == n_vars)
        return true;
    return tg__failb(loc, "%s: %s has %d weights, but %d were given", func, owner, n_vars, n);
}

int tg__weights_get(tg_loc loc, const char *func, tg_tensor *const *vars, int n_vars, tg_tensor **out, int n)
{
    if (n != n_vars)
        return tg__failf(loc, "%s: there are %d weights, but out holds %d", func, n_vars, n);
    if (n > 0 && !out)
        return tg__null_arg(loc, func, "out"), -1;
    for (int i = 0; i < n; i++)
        if (!(out[i] = tg_tensor_from_at(loc, vars[i]->dtype, tg_shape_of(vars[i]), vars[i]->data)))
            return -1;
    return 0;
}

/* weights[i] for variable v: given, of its shape, and a float when v is one. */
static bool weight_fits(tg_loc loc, const char *func, const tg_tensor *v, const tg_tensor *w, int i)
{
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    if (!w)
        return tg__failb(loc, "%s: weights[%d] (for %s) is NULL", func, i, v->var->name);
    if (!tg__check_input(loc, func, w, "weights[i]"))
        return false;
    tg_shape vs = tg__shape(v), ws = tg__shape(w);
    if (!tg__shape_eq(&vs, &ws))
        return tg__failb(loc, "%s: weights[%d] has shape %s, but variable %s has shape %s", func, i,
                         tg__shape_str(&ws, a, sizeof a), v->var->name, tg__shape_str(&vs, b, sizeof b));
    bool floats = (w->dtype == TG_F32 || w->dtype == TG_F64) && (v->dtype == TG_F32 || v->dtype == TG_F64);
    if (w->dtype != v->dtype && !floats)
        return tg__failb(loc, "%s: weights[%d] is %s, but variable %s is %s", func, i, tg_dtype_name(w->dtype),
                         v->var->name, tg_dtype_name(v->dtype));
    return true;
}

int tg__weights_set(tg_loc loc, const char *func, const char *owner, tg_tensor *const *vars, int n_vars,
                    const tg_tensor *const *weights, int n)
{
    if (!weight_count_ok(loc, func, owner, n_vars, n))
        return -1;
    if (n > 0 && !weights)
        return tg__null_arg(loc, func, "weights"), -1;
    for (int i = 0; i < n; i++)
        if (!weight_fits(loc, func, vars[i], weights[i], i))
            return -1;
    for (int i = 0; i < n; i++) {
        const tg_tensor *w =
            weights[i]->dtype == vars[i]->dtype ? weights[i] : tg_cast_at(loc, weights[i], vars[i]->dtype);
        if (!w || tg_assign_at(loc, vars[i], w) != 0)
            return -1;
    }
    return 0;
}

int tg_layer_get_weights_at(tg_loc loc, const tg_layer *l, tg_tensor **out, int n)
{
    CHECK_LAYER("tg_layer_get_weights", l, -1);
    tg_tensor **vars = malloc(sizeof *vars * (size_t)(l->n_vars + 1));
    if (!vars)
        return tg__failf(loc, "tg_layer_get_weights: out of memory");
    int rc = tg__weights_get(loc, "tg_layer_get_weights", vars, tg__layer_weights(l, vars), out, n);
    free(vars);
    return rc;
}

int tg_layer_set_weights_at(tg_loc loc, tg_layer *l, const tg_tensor *const *weights, int n)
{
    CHECK_LAYER("tg_layer_set_weights", l, -1);
    tg_tensor **vars = malloc(sizeof *vars * (size_t)(l->n_vars + 1));
    if (!vars)
        return tg__failf(loc, "tg_layer_set_weights: out of memory");
    char owner[300];
    snprintf(owner, sizeof owner, "layer \"%s\"", l->name);
    int rc = tg__weights_set(loc, "tg_layer_set_weights", owner, vars, tg__layer_weights(l, vars), weights, n);
    free(vars);
    return rc;
}

int tg_layer_set_trainable_at(tg_loc loc, tg_layer *l, bool trainable)
{
    CHECK_LAYER("tg_layer_set_trainable", l, -1);
    l->trainable = trainable;
    if (l->kind->set_trainable) {
        l->kind->set_trainable(l, loc, trainable);
        return 0;
    }
    for (int i = 0; i < l->n_vars; i++)
        if (l->var_trainable[i]) {
            tg_variable_set_trainable(l->vars[i], trainable);
            l->vars[i]->var->frozen = trainable ? (tg_loc){0} : loc; /* for a diagnosis */
        }
    return 0;
}

void tg_layer_free(tg_layer *l)
{
    if (l && !l->model)
        tg__layer_destroy(l);
}

/* ---- Dense ---------------------------------------------------------------------------------- */
static bool dense_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_dense_opts *o = &l->o.dense;
    if (in->rank < 1)
        return tg__fail(loc,
                        "Dense \"%s\": inputs need at least 2 axes (batch, features), but one example "
                        "is a scalar; reshape the batch to (batch, 1)",
                        l->name),
               false;
    int64_t in_dim = in->dims[in->rank - 1];
    tg_initializer k = o->kernel_initializer.kind ? o->kernel_initializer : tg_init_glorot_uniform();
    tg_initializer b = o->bias_initializer.kind ? o->bias_initializer : tg_init_zeros();
    if (!tg__layer_add_variable(l, loc, "kernel", k, TG_SHAPE(in_dim, o->units), true))
        return false;
    l->var_reg[0] = o->kernel_regularizer;
    if (tg__variable_set_constraint(loc, l->vars[0], o->kernel_constraint) != 0)
        return false;
    if (o->use_bias && (!tg__layer_add_variable(l, loc, "bias", b, TG_SHAPE(o->units), true) ||
                        tg__variable_set_constraint(loc, l->vars[1], o->bias_constraint) != 0))
        return false;
    l->var_reg[1] = o->bias_regularizer;
    *out = *in;
    out->dims[out->rank - 1] = o->units;
    return true;
}

static tg_tensor *dense_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    tg_tensor *y = tg_matmul_at(loc, x, tg__layer_read(l, loc, 0), (tg_matmul_opts){0});
    return tg__bias_activate(loc, y, l->o.dense.use_bias ? tg__layer_read(l, loc, 1) : NULL, l->activation);
}

static const tg_layer_kind dense_kind = {.base_name = "dense",
                                         .class_name = "Dense",
                                         .autocast = true,
                                         .build = dense_build,
                                         .call = dense_call,
                                         .computes_bf16 = true,
                                         .supports_masking = true};

tg_layer *tg_dense_at(tg_loc loc, tg_dense_opts o)
{
    if (o.units <= 0)
        return tg__fail(loc, "tg_dense: units must be a positive integer, got %lld (the number of outputs)",
                        (long long)o.units);
    if (o.input_dim < 0)
        return tg__fail(loc, "tg_dense: input_dim must be positive, got %lld", (long long)o.input_dim);
    if (!tg__check_activation(loc, "tg_dense", o.activation))
        return NULL;
    if (o.input_dim > 0 && o.input_shape.rank == 0)
        o.input_shape = TG_SHAPE(o.input_dim);
    tg_layer *l = TG__LAYER_NEW(loc, &dense_kind, o);
    if (l) {
        l->o.dense = o;
        l->activity_reg = o.activity_regularizer;
        l->activation = o.activation;
    }
    return l;
}

/* ---- Activation ------------------------------------------------------------------------------- */
static bool same_shape_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    (void)l, (void)loc;
    *out = *in;
    return true;
}

static tg_tensor *activation_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    return tg__activate(loc, x, l->activation);
}

static const tg_layer_kind activation_kind = {.base_name = "activation",
                                              .class_name = "Activation",
                                              .autocast = true,
                                              .build = same_shape_build,
                                              .call = activation_call,
                                              .computes_bf16 = true,
                                              .supports_masking = true};

tg_layer *tg_activation_layer_at(tg_loc loc, tg_activation_layer_opts o)
{
    if (!tg__check_activation(loc, "tg_activation_layer", o.activation))
        return NULL;
    tg_layer *l = TG__LAYER_NEW(loc, &activation_kind, o);
    if (l)
        l->activation = o.activation;
    return l;
}

/* ---- Dropout ---------------------------------------------------------------------------------- */
static bool dropout_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    l->rng = tg_rng_new(tg__derive_seed(l->seed, 0));
    if (!l->rng)
        return tg__fail(loc, "Dropout \"%s\": out of memory", l->name), false;
    *out = *in;
    return true;
}

/* A mask of zeros (probability rate) and 1 / (1 - rate), drawn into t. */
typedef struct dropout_arg {
    tg_rng *rng;
    double rate;
} dropout_arg;

static void draw_mask(const dropout_arg *a, tg_tensor *t)
{
    double scale = 1.0 / (1.0 - a->rate);
    for (int64_t i = 0; i < t->size; i++) {
        double m = tg_rng_uniform01(a->rng) >= a->rate ? scale : 0.0;
        if (t->dtype == TG_F64)
            ((double *)t->data)[i] = m;
        else
            ((float *)t->data)[i] = (float)m;
    }
}

/* In a traced step the mask is drawn again at every call (graph mode). */
static int mask_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    (void)loc;
    draw_mask(arg, in[n - 1]);
    return 0;
}

/* x times a mask of zeros (probability rate) and 1 / (1 - rate), as TF's dropout: the
 * Dropout layer's and attention's. */
tg_tensor *tg__dropout(tg_loc loc, tg_rng *rng, const tg_tensor *x, double rate, const char *layer)
{
    (void)layer;
    bool bf16 = tg_dtype_of(x) == TG_BF16; /* the mask made in float32, then rounded as TF's bfloat16 */
    tg_tensor *mt = tg_fill_at(loc, bf16 ? TG_F32 : tg_dtype_of(x), tg_shape_of(x), 0.0);
    if (!mt)
        return NULL;
    dropout_arg a = {rng, rate};
    bool abstract = tg__trace_abstract(); /* the graph's run draws it */
    struct tg_fgraph *g = tg__trace_pause();
    if (!abstract)
        draw_mask(&a, mt);
    tg__trace_resume(g);
    if (g && tg__trace_host_like(loc, mask_replayed, &a, sizeof a, x, mt) != 0) /* x's shape at every call */
        return NULL;
    if (bf16)
        mt = tg_cast_at(loc, mt, TG_BF16);
    return tg_mul_at(loc, x, mt);
}

static tg_tensor *dropout_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    double rate = l->o.dropout.rate;
    if (!training || rate == 0.0)
        return (tg_tensor *)x;
    return tg__dropout(loc, l->rng, x, rate, l->name);
}

static void dropout_release(tg_layer *l)
{
    tg_rng_free(l->rng);
    l->rng = NULL;
}

static const tg_layer_kind dropout_kind = {.base_name = "dropout",
                                           .class_name = "Dropout",
                                           .autocast = true,
                                           .build = dropout_build,
                                           .call = dropout_call,
                                           .release = dropout_release,
                                           .computes_bf16 = true,
                                           .supports_masking = true};

tg_layer *tg_dropout_at(tg_loc loc, tg_dropout_opts o)
{
    if (!(o.rate >= 0.0 && o.rate < 1.0))
        return tg__fail(loc, "tg_dropout: rate must be in [0, 1) (the fraction of inputs to drop), got %g", o.rate);
    tg_layer *l = TG__LAYER_NEW(loc, &dropout_kind, o);
    if (l)
        l->o.dropout = o;
    return l;
}

/* ---- Flatten and Reshape ------------------------------------------------------------------------- */
static bool flatten_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    (void)l, (void)loc;
    *out = (tg_shape){.rank = 1, .dims = {tg__shape_size(in)}};
    return true;
}

static tg_tensor *reshape_to_out(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    tg_shape s = {.rank = l->out_shape.rank + 1, .dims = {tg_dim(x, 0)}};
    for (int i = 0; i < l->out_shape.rank; i++)
        s.dims[i + 1] = l->out_shape.dims[i];
    tg_tensor *y = tg_reshape_at(loc, x, s);
    tg__trace_batch_like(y, x); /* a graph's batch dim stays unknown */
    return y;
}

static const tg_layer_kind flatten_kind = {
    .base_name = "flatten", .class_name = "Flatten", .build = flatten_build, .call = reshape_to_out};

tg_layer *tg_flatten_at(tg_loc loc, tg_flatten_opts o) { return TG__LAYER_NEW(loc, &flatten_kind, o); }

static bool reshape_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_shape *t = &l->o.reshape.target_shape;
    int64_t known = 1, total = tg__shape_size(in);
    int unknown = -1;
    bool fits = total >= 0;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] == -1)
            unknown = i;
        else
            fits = fits && !tg__mul_overflow(known, t->dims[i], &known);
    }
    *out = *t;
    if (fits && unknown >= 0 && known > 0 && total % known == 0)
        out->dims[unknown] = total / known;
    if (!fits || tg__shape_size(out) != total || (unknown >= 0 && known == 0)) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        return tg__fail(loc,
                        "Reshape \"%s\": the total size of the new array must be unchanged: input_shape = %s "
                        "(%lld elements), target_shape = %s",
                        l->name, tg__shape_str(in, a, sizeof a), (long long)total, tg__shape_str(t, b, sizeof b)),
               false;
    }
    return true;
}

static const tg_layer_kind reshape_kind = {
    .base_name = "reshape", .class_name = "Reshape", .build = reshape_build, .call = reshape_to_out};

tg_layer *tg_reshape_layer_at(tg_loc loc, tg_reshape_layer_opts o)
{
    const tg_shape *t = &o.target_shape;
    int unknown = 0;
    bool ok = t->rank >= 1 && t->rank < TG_MAX_RANK;
    for (int i = 0; ok && i < t->rank; i++) {
        unknown += t->dims[i] == -1;
        ok = t->dims[i] > 0 || t->dims[i] == -1;
    }
    if (!ok || unknown > 1) {
        char b[TG_SHAPE_STR_MAX];
        return tg__fail(loc,
                        "tg_reshape_layer: target_shape %s must have rank 1 to %d, positive dims and at most "
                        "one -1 (it leaves the batch dim out)",
                        tg__shape_str(t, b, sizeof b), TG_MAX_RANK - 1);
    }
    tg_layer *l = TG__LAYER_NEW(loc, &reshape_kind, o);
    if (l)
        l->o.reshape = o;
    return l;
}

/* ---- Embedding ---------------------------------------------------------------------------------- */
static bool embedding_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    const tg_embedding_opts *o = &l->o.embedding;
    if (in->rank + 1 > TG_MAX_RANK - 1)
        return tg__fail(loc, "Embedding \"%s\": inputs of rank %d are too deep", l->name, in->rank + 1), false;
    tg_initializer e = o->embeddings_initializer.kind ? o->embeddings_initializer : tg_init_random_uniform(-0.05, 0.05);
    if (!tg__layer_add_variable(l, loc, "embeddings", e, TG_SHAPE(o->input_dim, o->output_dim), true))
        return false;
    *out = *in;
    out->dims[out->rank++] = o->output_dim;
    return true;
}

static tg_tensor *embedding_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    if (tg_dtype_is_float(tg_dtype_of(x)))
        x = tg_cast_at(loc, x, TG_I64);
    else if (tg_dtype_of(x) == TG_BOOL)
        return tg__fail(loc, "Embedding \"%s\": inputs must be integer indices, not bool", l->name);
    return tg_gather_at(loc, l->vars[0], x, 0);
}

/* Keras's Embedding.compute_mask: inputs != 0 with mask_zero, else none. */
static tg_tensor *embedding_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    (void)mask;
    return l->o.embedding.mask_zero ? tg_not_equal_at(loc, x, tg_scalar_like_at(loc, x, 0)) : NULL;
}

static const tg_layer_kind embedding_kind = {.base_name = "embedding",
                                             .class_name = "Embedding",
                                             .build = embedding_build,
                                             .call = embedding_call,
                                             .compute_mask = embedding_mask};

tg_layer *tg_embedding_at(tg_loc loc, tg_embedding_opts o)
{
    if (o.input_dim <= 0 || o.output_dim <= 0)
        return tg__fail(loc,
                        "tg_embedding: input_dim (the vocabulary size) and output_dim must be positive, got "
                        "input_dim=%lld, output_dim=%lld",
                        (long long)o.input_dim, (long long)o.output_dim);
    if (o.input_length < 0)
        return tg__fail(loc, "tg_embedding: input_length must be positive, got %lld", (long long)o.input_length);
    if (o.input_length > 0 && o.input_shape.rank == 0)
        o.input_shape = TG_SHAPE(o.input_length);
    tg_layer *l = TG__LAYER_NEW(loc, &embedding_kind, o);
    if (l)
        l->o.embedding = o;
    return l;
}
