/* Keras losses from tapegrad ops: a tape differentiates them, to any order.
 *
 * Each follows Keras 3's TensorFlow backend (keras/src/losses/losses.py,
 * keras/src/backend/tensorflow/nn.py): the same rank matching, the same clipping of
 * probabilities to [epsilon, 1 - epsilon] with epsilon = 1e-7, the same label smoothing
 * and the same "sum_over_batch_size" reduction. */
#include <math.h>
#include <strings.h>

#include "../tensor/tensor_impl.h"
#include "tapegrad/losses.h"

#define EPSILON 1e-7 /* keras.backend.epsilon() */

static const char *const loss_names[TG_LOSS_COUNT] = {
    [TG_LOSS_NONE] = "none",
    [TG_LOSS_MSE] = "mean_squared_error",
    [TG_LOSS_MAE] = "mean_absolute_error",
    [TG_LOSS_HUBER] = "huber",
    [TG_LOSS_BINARY_CROSSENTROPY] = "binary_crossentropy",
    [TG_LOSS_CATEGORICAL_CROSSENTROPY] = "categorical_crossentropy",
    [TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY] = "sparse_categorical_crossentropy",
    [TG_LOSS_KL_DIVERGENCE] = "kl_divergence",
    [TG_LOSS_HINGE] = "hinge",
    [TG_LOSS_SQUARED_HINGE] = "squared_hinge",
    [TG_LOSS_LOG_COSH] = "log_cosh",
    [TG_LOSS_POISSON] = "poisson",
    [TG_LOSS_COSINE_SIMILARITY] = "cosine_similarity",
    [TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY] = "categorical_focal_crossentropy",
    [TG_LOSS_CUSTOM] = "custom_loss",
};

const char *tg_loss_name(tg_loss_kind kind) { return (unsigned)kind < TG_LOSS_COUNT ? loss_names[kind] : "?"; }

tg_loss_kind tg_loss_kind_from_name(const char *name)
{
    static const struct {
        const char *alias;
        tg_loss_kind kind;
    } aliases[] = {
        {"mse", TG_LOSS_MSE},
        {"mae", TG_LOSS_MAE},
        {"huber_loss", TG_LOSS_HUBER},
        {"bce", TG_LOSS_BINARY_CROSSENTROPY},
        {"cce", TG_LOSS_CATEGORICAL_CROSSENTROPY},
        {"scce", TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY},
        {"kld", TG_LOSS_KL_DIVERGENCE},
        {"kullback_leibler_divergence", TG_LOSS_KL_DIVERGENCE},
        {"logcosh", TG_LOSS_LOG_COSH},
    };
    if (!name)
        return TG_LOSS_NONE;
    for (int k = TG_LOSS_MSE; k < TG_LOSS_CUSTOM; k++)
        if (!strcasecmp(name, loss_names[k]))
            return (tg_loss_kind)k;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcasecmp(name, aliases[i].alias))
            return aliases[i].kind;
    return TG_LOSS_NONE;
}

/* ---- helpers --------------------------------------------------------------------------------- */
#define SHAPE_STR(name, t)                     \
    char name[TG_SHAPE_STR_MAX];               \
    do {                                       \
        tg_shape s_ = tg__shape(t);            \
        tg__shape_str(&s_, name, sizeof name); \
    } while (0)

/* The name errors use: the functional form the user called. */
static const char *fn_name(tg_loss_kind kind)
{
    static const char *const names[TG_LOSS_COUNT] = {
        [TG_LOSS_NONE] = "tg_compute_loss",
        [TG_LOSS_MSE] = "tg_mean_squared_error",
        [TG_LOSS_MAE] = "tg_mean_absolute_error",
        [TG_LOSS_HUBER] = "tg_huber",
        [TG_LOSS_BINARY_CROSSENTROPY] = "tg_binary_crossentropy",
        [TG_LOSS_CATEGORICAL_CROSSENTROPY] = "tg_categorical_crossentropy",
        [TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY] = "tg_sparse_categorical_crossentropy",
        [TG_LOSS_KL_DIVERGENCE] = "tg_kl_divergence",
        [TG_LOSS_HINGE] = "tg_hinge",
        [TG_LOSS_SQUARED_HINGE] = "tg_squared_hinge",
        [TG_LOSS_LOG_COSH] = "tg_log_cosh",
        [TG_LOSS_POISSON] = "tg_poisson",
        [TG_LOSS_COSINE_SIMILARITY] = "tg_cosine_similarity",
        [TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY] = "tg_categorical_focal_crossentropy",
        [TG_LOSS_CUSTOM] = "custom loss",
    };
    return (unsigned)kind < TG_LOSS_COUNT ? names[kind] : "tg_compute_loss";
}

/* An error in a function that returns bool. */
#define FAIL(loc, ...) (tg__fail(loc, __VA_ARGS__), false)

static tg_tensor *num(tg_loc loc, const tg_tensor *like, double v) { return tg_scalar_like_at(loc, like, v); }

/* Keras's squeeze_or_expand_to_same_rank: when the ranks differ by one and the longer
 * has a last axis of size 1, that axis is dropped, or (against a vector) added to it. */
static void match_ranks(tg_loc loc, const tg_tensor **a, const tg_tensor **b)
{
    int ra = (*a)->rank, rb = (*b)->rank;
    if (ra == rb + 1 && (*a)->shape[ra - 1] == 1) {
        if (rb == 1)
            *b = tg_expand_dims_at(loc, *b, -1);
        else
            *a = tg_squeeze_at(loc, *a, TG_AXES(-1));
    } else if (rb == ra + 1 && (*b)->shape[rb - 1] == 1) {
        if (ra == 1)
            *a = tg_expand_dims_at(loc, *a, -1);
        else
            *b = tg_squeeze_at(loc, *b, TG_AXES(-1));
    }
}

static bool same_shape(const tg_tensor *a, const tg_tensor *b)
{
    tg_shape sa = tg__shape(a), sb = tg__shape(b);
    return tg__shape_eq(&sa, &sb);
}

static bool check_options(tg_loc loc, const tg_loss *l)
{
    if ((unsigned)l->kind >= TG_LOSS_COUNT)
        return FAIL(loc, "tg_compute_loss: %d is not a tg_loss_kind", (int)l->kind);
    if (l->kind == TG_LOSS_NONE)
        return FAIL(loc, "tg_compute_loss: no loss to compute: set .kind (TG_LOSS_MSE, "
                         "TG_LOSS_BINARY_CROSSENTROPY, ...) or give a TG_LOSS_CUSTOM .fn");
    if (l->kind == TG_LOSS_CUSTOM && !l->fn)
        return FAIL(loc, "tg_compute_loss: TG_LOSS_CUSTOM needs .fn, a function (y_true, y_pred, user) "
                         "returning the loss");
    if (!(l->label_smoothing >= 0 && l->label_smoothing <= 1))
        return FAIL(loc, "%s: label_smoothing %g must lie in [0, 1]", fn_name(l->kind), l->label_smoothing);
    if (!(l->delta >= 0) || isinf(l->delta))
        return FAIL(loc, "tg_huber: delta %g must be positive (0 means the default, 1.0)", l->delta);
    if (!(l->alpha >= 0) || !(l->gamma >= 0) || isinf(l->alpha) || isinf(l->gamma))
        return FAIL(loc,
                    "tg_categorical_focal_crossentropy: alpha %g and gamma %g must be finite and >= 0 (0 means "
                    "Keras's defaults, 0.25 and 2.0)",
                    l->alpha, l->gamma);
    return true;
}

/* y_pred must be a float tensor with a batch axis. */
static bool check_pred(tg_loc loc, const char *name, const tg_tensor *y_pred)
{
    if (!tg_dtype_is_float(y_pred->dtype))
        return FAIL(loc, "%s: y_pred must be float32 or float64, not %s (cast it with tg_cast)", name,
                    tg_dtype_name(y_pred->dtype));
    if (y_pred->rank == 0)
        return FAIL(loc, "%s: y_pred is a scalar; a loss needs a batch axis (shape [batch, ...])", name);
    return true;
}

/* A warning once per call site: a training loop repeats the same call every step, as
 * Python's warnings module shows a warning once per line. */
static bool first_time_at(tg_loc loc)
{
    static _Thread_local tg_loc seen[16];
    static _Thread_local int n_seen;
    for (int i = 0; i < n_seen; i++)
        if (seen[i].line == loc.line && seen[i].file == loc.file)
            return false;
    if (n_seen < 16)
        seen[n_seen++] = loc;
    return true;
}

/* ---- element-wise losses ---------------------------------------------------------------------- */
/* Rank-matched y_true (cast to y_pred's dtype) and y_pred of one shape; vectors count as
 * [B, 1] when `vector_is_batch`. */
static bool match_targets(tg_loc loc, const char *name, const tg_tensor **yt, const tg_tensor **yp,
                          bool vector_is_batch)
{
    if ((*yt)->dtype != (*yp)->dtype)
        *yt = tg_cast_at(loc, *yt, (*yp)->dtype);
    if (!*yt)
        return false;
    match_ranks(loc, yt, yp);
    if (!*yt || !*yp)
        return false;
    if (!same_shape(*yt, *yp)) {
        SHAPE_STR(ts, *yt);
        SHAPE_STR(ps, *yp);
        return FAIL(loc,
                    "%s: Arguments `target` and `output` must have the same shape. Received: "
                    "target.shape=%s, output.shape=%s (y_true and y_pred; a last axis of size 1 may be "
                    "missing from one of them)",
                    name, ts, ps);
    }
    if (vector_is_batch && (*yp)->rank == 1) {
        *yt = tg_expand_dims_at(loc, *yt, -1);
        *yp = tg_expand_dims_at(loc, *yp, -1);
    }
    return *yt && *yp;
}

static tg_tensor *mean_last(tg_loc loc, const tg_tensor *v)
{
    return tg_mean_at(loc, v, (tg_reduce_opts){.axes = TG_AXES(-1)});
}

static tg_tensor *huber_values(tg_loc loc, const tg_tensor *yt, const tg_tensor *yp, double delta)
{
    tg_tensor *err = tg_sub_at(loc, yp, yt), *abs_err = tg_abs_at(loc, err);
    tg_tensor *quad = tg_mul_at(loc, num(loc, yp, 0.5), tg_square_at(loc, err));
    tg_tensor *lin = tg_sub_at(loc, tg_mul_at(loc, num(loc, yp, delta), abs_err), num(loc, yp, 0.5 * delta * delta));
    return tg_where_at(loc, tg_less_equal_at(loc, abs_err, num(loc, yp, delta)), quad, lin);
}

/* TF's sigmoid_cross_entropy_with_logits: max(x, 0) - x z + log1p(exp(-|x|)), written
 * with where(x >= 0) so that x = 0 gets TF's gradient, sigmoid(0) - z. */
static tg_tensor *sigmoid_xent(tg_loc loc, const tg_tensor *z, const tg_tensor *x)
{
    tg_tensor *pos = tg_greater_equal_at(loc, x, num(loc, x, 0)), *zero = num(loc, x, 0);
    tg_tensor *relu = tg_where_at(loc, pos, x, zero);
    tg_tensor *neg_abs = tg_where_at(loc, pos, tg_neg_at(loc, x), x);
    return tg_add_at(loc, tg_sub_at(loc, relu, tg_mul_at(loc, x, z)), tg_log1p_at(loc, tg_exp_at(loc, neg_abs)));
}

static tg_tensor *clip_probs(tg_loc loc, const tg_tensor *p)
{
    return tg_clip_by_value_at(loc, p, EPSILON, 1 - EPSILON);
}

static tg_tensor *binary_xent(tg_loc loc, const tg_loss *l, const tg_tensor *z, const tg_tensor *yp)
{
    if (l->label_smoothing > 0)
        z = tg_add_at(loc, tg_mul_at(loc, z, num(loc, yp, 1 - l->label_smoothing)),
                      num(loc, yp, 0.5 * l->label_smoothing));
    if (l->from_logits)
        return sigmoid_xent(loc, z, yp);
    tg_tensor *p = clip_probs(loc, yp), *one = num(loc, yp, 1);
    tg_tensor *ll = tg_add_at(loc, tg_mul_at(loc, z, tg_log_at(loc, p)),
                              tg_mul_at(loc, tg_sub_at(loc, one, z), tg_log_at(loc, tg_sub_at(loc, one, p))));
    return tg_neg_at(loc, ll);
}

static tg_tensor *categorical_xent(tg_loc loc, const tg_loss *l, const tg_tensor *z, const tg_tensor *yp)
{
    int64_t classes = yp->shape[yp->rank - 1];
    tg_reduce_opts last = {.axes = TG_AXES(-1)}, last_kept = {.axes = TG_AXES(-1), .keepdims = true};
    if (classes == 1 && first_time_at(loc)) {
        SHAPE_STR(ps, yp);
        tg__warn(loc,
                 "In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, num_classes) with "
                 "num_classes > 1. Received: y_pred.shape=%s. Consider using 'binary_crossentropy' if you only have "
                 "2 classes. (With one class the loss is a constant and every gradient is zero.)",
                 ps);
    }
    if (l->label_smoothing > 0)
        z = tg_add_at(loc, tg_mul_at(loc, z, num(loc, yp, 1 - l->label_smoothing)),
                      num(loc, yp, l->label_smoothing / (double)classes));
    if (l->from_logits) /* -sum(z * log_softmax(yp)) in one fused op */
        return tg_softmax_cross_entropy_with_logits_at(loc, z, yp);
    /* Keras rescales each row to sum to 1 before clipping. */
    tg_tensor *p = tg_div_at(loc, yp, tg_sum_at(loc, yp, last_kept));
    tg_tensor *logp = tg_log_at(loc, clip_probs(loc, p));
    return tg_neg_at(loc, tg_sum_at(loc, tg_mul_at(loc, z, logp), last));
}

/* ---- the rest of Keras's losses (keras/src/losses/losses.py) ------------------------------------ */
static tg_tensor *sum_last(tg_loc loc, const tg_tensor *v)
{
    return tg_sum_at(loc, v, (tg_reduce_opts){.axes = TG_AXES(-1)});
}

static tg_tensor *kl_divergence(tg_loc loc, const tg_tensor *t, const tg_tensor *p)
{
    t = tg_clip_by_value_at(loc, t, EPSILON, 1);
    p = tg_clip_by_value_at(loc, p, EPSILON, 1);
    return sum_last(loc, tg_mul_at(loc, t, tg_log_at(loc, tg_div_at(loc, t, p))));
}

/* convert_binary_labels_to_hinge: labels that are all 0 or 1 become -1 or 1. Labels an
 * abstract trace computed have no values yet: the choice is made by the graph (Keras's
 * tf.cond on the same test). */
static const tg_tensor *hinge_labels(tg_loc loc, const tg_tensor *t)
{
    if (!t->data) {
        tg_tensor *binary = tg_reduce_all_at(
            loc, tg_logical_or_at(loc, tg_equal_at(loc, t, num(loc, t, 0)), tg_equal_at(loc, t, num(loc, t, 1))),
            (tg_reduce_opts){0});
        return tg_where_at(loc, binary, tg_sub_at(loc, tg_mul_at(loc, num(loc, t, 2), t), num(loc, t, 1)), t);
    }
    for (int64_t i = 0; i < t->size; i++) {
        double v = tg__get(t, i);
        if (v != 0 && v != 1)
            return t;
    }
    return tg_sub_at(loc, tg_mul_at(loc, num(loc, t, 2), t), num(loc, t, 1));
}

/* max(1 - t p, 0), squared for squared hinge. */
static tg_tensor *hinge(tg_loc loc, const tg_tensor *t, const tg_tensor *p, bool squared)
{
    t = hinge_labels(loc, t);
    tg_tensor *margin = tg_maximum_at(loc, tg_sub_at(loc, num(loc, p, 1), tg_mul_at(loc, t, p)), num(loc, p, 0));
    return mean_last(loc, squared ? tg_square_at(loc, margin) : margin);
}

/* log(cosh(x)) = x + softplus(-2 x) - log 2, x = p - t: no overflow for large |x|. */
static tg_tensor *log_cosh(tg_loc loc, const tg_tensor *t, const tg_tensor *p)
{
    tg_tensor *x = tg_sub_at(loc, p, t);
    tg_tensor *lc = tg_add_at(loc, x, tg_softplus_at(loc, tg_mul_at(loc, x, num(loc, x, -2.0))));
    return mean_last(loc, tg_sub_at(loc, lc, num(loc, x, log(2.0))));
}

static tg_tensor *poisson(tg_loc loc, const tg_tensor *t, const tg_tensor *p)
{
    tg_tensor *logp = tg_log_at(loc, tg_add_at(loc, p, num(loc, p, EPSILON)));
    return mean_last(loc, tg_sub_at(loc, p, tg_mul_at(loc, t, logp)));
}

/* keras.ops.normalize: x * rsqrt(max(sum(x^2), epsilon^2)) along the last axis. */
static tg_tensor *l2_normalize_last(tg_loc loc, const tg_tensor *x)
{
    tg_tensor *ss = tg_sum_at(loc, tg_square_at(loc, x), (tg_reduce_opts){.axes = TG_AXES(-1), .keepdims = true});
    return tg_mul_at(loc, x, tg_rsqrt_at(loc, tg_maximum_at(loc, ss, num(loc, x, EPSILON * EPSILON))));
}

static tg_tensor *cosine_similarity(tg_loc loc, const tg_tensor *t, const tg_tensor *p)
{
    return tg_neg_at(loc, sum_last(loc, tg_mul_at(loc, l2_normalize_last(loc, t), l2_normalize_last(loc, p))));
}

/* sum(alpha (1 - q)^gamma * -t log(q)), q the rows rescaled to sum 1 and clipped. */
static tg_tensor *focal_xent(tg_loc loc, const tg_loss *l, const tg_tensor *t, const tg_tensor *p)
{
    double alpha = l->alpha > 0 ? l->alpha : 0.25, gamma = l->gamma > 0 ? l->gamma : 2.0;
    int64_t classes = p->shape[p->rank - 1];
    if (l->label_smoothing > 0)
        t = tg_add_at(loc, tg_mul_at(loc, t, num(loc, p, 1 - l->label_smoothing)),
                      num(loc, p, l->label_smoothing / (double)classes));
    if (l->from_logits)
        p = tg_softmax_at(loc, p, -1);
    tg_tensor *q = tg_div_at(loc, p, tg_sum_at(loc, p, (tg_reduce_opts){.axes = TG_AXES(-1), .keepdims = true}));
    q = clip_probs(loc, q);
    tg_tensor *cce = tg_mul_at(loc, tg_neg_at(loc, t), tg_log_at(loc, q));
    tg_tensor *factor = tg_pow_at(loc, tg_sub_at(loc, num(loc, q, 1), q), num(loc, q, gamma));
    return sum_last(loc, tg_mul_at(loc, tg_mul_at(loc, factor, num(loc, q, alpha)), cce));
}

/* ---- sparse categorical cross-entropy ---------------------------------------------------------- */
/* Labels as int64 of y_pred's shape without its last axis, each in [0, classes). */
static const tg_tensor *sparse_labels(tg_loc loc, const char *name, const tg_tensor *yt, const tg_tensor *yp)
{
    if (yt->dtype == TG_BOOL)
        return tg__fail(loc, "%s: y_true must hold integer class indices (int32 or int64), not bool", name);
    if (yt->rank == yp->rank && yt->rank > 0 && yt->shape[yt->rank - 1] == 1)
        yt = tg_squeeze_at(loc, yt, TG_AXES(-1));
    if (!yt)
        return NULL;
    bool fits = yt->rank == yp->rank - 1;
    for (int k = 0; fits && k < yt->rank; k++)
        fits = yt->shape[k] == yp->shape[k];
    if (!fits) {
        SHAPE_STR(ts, yt);
        SHAPE_STR(ps, yp);
        tg_shape want = tg__shape(yp);
        want.rank--;
        char ws[TG_SHAPE_STR_MAX];
        tg__shape_str(&want, ws, sizeof ws);
        return tg__fail(loc,
                        "%s: Arguments `target` and `output` must have the same shape up until the last "
                        "dimension: target.shape=%s, output.shape=%s (integer labels for y_pred %s need shape %s, "
                        "or that with a last axis of size 1; one-hot labels go to categorical_crossentropy)",
                        name, ts, ps, ps, ws);
    }
    int64_t classes = yp->shape[yp->rank - 1];
    for (int64_t i = 0; yt->data && i < yt->size; i++) { /* an abstract trace's labels: checked by fit */
        double v = tg__get(yt, i);
        if (v >= 0 && v < (double)classes && v == floor(v))
            continue;
        SHAPE_STR(ps, yp);
        if (v != floor(v))
            return tg__fail(loc,
                            "%s: label y_true[%lld] = %g is not a whole number; sparse labels are class "
                            "indices in [0, %lld)",
                            name, (long long)i, v, (long long)classes);
        return tg__fail(loc,
                        "%s: Received a label value of %g (y_true[%lld]) which is outside the valid range of "
                        "[0, %lld): y_pred of shape %s has %lld classes",
                        name, v, (long long)i, (long long)classes, ps, (long long)classes);
    }
    return yt->dtype == TG_I32 || yt->dtype == TG_I64 ? yt : tg_cast_at(loc, yt, TG_I64);
}

static tg_tensor *sparse_xent(tg_loc loc, const tg_loss *l, const char *name, const tg_tensor *yt, const tg_tensor *yp)
{
    const tg_tensor *labels = sparse_labels(loc, name, yt, yp);
    if (!labels)
        return NULL;
    /* Keras takes log(clip(p)) as logits: the probabilities are renormalised after clipping.
     * -log_softmax(logits)[label] in one fused op, forward and backward. */
    tg_tensor *logits = l->from_logits ? (tg_tensor *)yp : tg_log_at(loc, clip_probs(loc, yp));
    return tg_sparse_softmax_cross_entropy_with_logits_at(loc, labels, logits);
}

/* ---- per-sample values ------------------------------------------------------------------------- */
static tg_tensor *custom_values(tg_loc loc, const tg_loss *l, const tg_tensor *yt, const tg_tensor *yp)
{
    match_ranks(loc, &yt, &yp);
    if (!yt || !yp)
        return NULL;
    tg_clear_error();
    tg_tensor *v = l->fn(yt, yp, l->user);
    const char *name = l->name ? l->name : loss_names[TG_LOSS_CUSTOM];
    if (!v)
        return tg_has_error() ? NULL : tg__fail(loc, "custom loss `%s` returned NULL without an error", name);
    if (!tg_is_alive(v) || !tg_dtype_is_float(v->dtype))
        return tg__fail(loc, "custom loss `%s` must return a live float tensor (got %s)", name,
                        tg_is_alive(v) ? tg_dtype_name(v->dtype) : "a tensor whose scope has ended");
    return v;
}

tg_tensor *tg_loss_values_at(tg_loc loc, const tg_loss *l, const tg_tensor *y_true, const tg_tensor *y_pred)
{
    if (!l)
        return tg__fail(loc, "tg_loss_values: `loss` is NULL");
    if (!check_options(loc, l))
        return NULL;
    const char *name = fn_name(l->kind);
    if (!tg__check_input(loc, name, y_true, "y_true") || !tg__check_input(loc, name, y_pred, "y_pred"))
        return NULL;
    if (l->kind == TG_LOSS_CUSTOM)
        return custom_values(loc, l, y_true, y_pred);
    if (!check_pred(loc, name, y_pred))
        return NULL;
    if (l->kind == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        return sparse_xent(loc, l, name, y_true, y_pred);
    /* Losses over a distribution in the last axis keep a vector as one distribution. */
    bool categorical = l->kind == TG_LOSS_CATEGORICAL_CROSSENTROPY || l->kind == TG_LOSS_KL_DIVERGENCE ||
                       l->kind == TG_LOSS_COSINE_SIMILARITY || l->kind == TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY;
    const tg_tensor *yt = y_true, *yp = y_pred;
    if (!match_targets(loc, name, &yt, &yp, !categorical))
        return NULL;
    switch (l->kind) {
    case TG_LOSS_MSE: return mean_last(loc, tg_square_at(loc, tg_sub_at(loc, yt, yp)));
    case TG_LOSS_MAE: return mean_last(loc, tg_abs_at(loc, tg_sub_at(loc, yt, yp)));
    case TG_LOSS_HUBER: return mean_last(loc, huber_values(loc, yt, yp, l->delta > 0 ? l->delta : 1.0));
    case TG_LOSS_BINARY_CROSSENTROPY: return mean_last(loc, binary_xent(loc, l, yt, yp));
    case TG_LOSS_KL_DIVERGENCE: return kl_divergence(loc, yt, yp);
    case TG_LOSS_HINGE: return hinge(loc, yt, yp, false);
    case TG_LOSS_SQUARED_HINGE: return hinge(loc, yt, yp, true);
    case TG_LOSS_LOG_COSH: return log_cosh(loc, yt, yp);
    case TG_LOSS_POISSON: return poisson(loc, yt, yp);
    case TG_LOSS_COSINE_SIMILARITY: return cosine_similarity(loc, yt, yp);
    case TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY: return focal_xent(loc, l, yt, yp);
    default: return categorical_xent(loc, l, yt, yp);
    }
}

/* ---- reduction ---------------------------------------------------------------------------------- */
/* Keras's reduce_weighted_values with "sum_over_batch_size". */
static tg_tensor *reduce_weighted(tg_loc loc, const tg_tensor *values, const tg_tensor *sw, const tg_tensor *yp)
{
    if (sw) {
        if (!tg__check_input(loc, "tg_compute_loss", sw, "sample_weight"))
            return NULL;
        if (sw->dtype != values->dtype)
            sw = tg_cast_at(loc, sw, values->dtype);
        match_ranks(loc, &values, &sw);
        if (!values || !sw)
            return NULL;
        bool fits = sw->rank <= values->rank;
        for (int k = 1; fits && k <= sw->rank; k++) {
            int64_t d = sw->shape[sw->rank - k];
            fits = d == 1 || d == values->shape[values->rank - k];
        }
        if (!fits) {
            SHAPE_STR(ws, sw);
            SHAPE_STR(vs, values);
            SHAPE_STR(ps, yp);
            return tg__fail(loc,
                            "tg_compute_loss: sample_weight of shape %s does not fit the per-sample losses of "
                            "shape %s (y_pred %s); give one weight per sample, shape (%lld,)",
                            ws, vs, ps, (long long)(values->rank ? values->shape[0] : 1));
        }
        values = tg_mul_at(loc, values, sw);
        if (!values)
            return NULL;
    }
    if (values->rank == 0)
        return (tg_tensor *)values;
    tg_tensor *total = tg_sum_at(loc, values, (tg_reduce_opts){0});
    /* the count read from the shape at every run of a graph (its batch dim is unknown) */
    return values->size ? tg_div_at(loc, total, tg__count_like(loc, values, total, ~0u)) : total;
}

tg_tensor *tg_compute_loss_at(tg_loc loc, const tg_loss *loss, const tg_tensor *y_true, const tg_tensor *y_pred,
                              const tg_tensor *sample_weight)
{
    if (!loss)
        return tg__fail(loc, "tg_compute_loss: `loss` is NULL");
    tg_tensor *values = tg_loss_values_at(loc, loss, y_true, y_pred);
    return values ? reduce_weighted(loc, values, sample_weight, y_pred) : NULL;
}
