/* Keras metrics as running weighted means, computed in double outside any tape.
 *
 * An update does what Keras 3's MeanMetricWrapper does: the metric's function gives
 * values (one per sample, or one per element for binary accuracy), then
 * reduce_to_samplewise_values folds the sample weights in and Mean adds
 * sum(value * weight) to the total and sum(weight) to the count
 * (keras/src/metrics/reduction_metrics.py, accuracy_metrics.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layer_impl.h" /* tg__metric_state */
#include "metric_impl.h"

static const char *const kind_names[TG_METRIC_COUNT] = {
    [TG_METRIC_MEAN] = "mean",
    [TG_METRIC_BINARY_ACCURACY] = "binary_accuracy",
    [TG_METRIC_CATEGORICAL_ACCURACY] = "categorical_accuracy",
    [TG_METRIC_SPARSE_CATEGORICAL_ACCURACY] = "sparse_categorical_accuracy",
    [TG_METRIC_MEAN_SQUARED_ERROR] = "mean_squared_error",
    [TG_METRIC_MEAN_ABSOLUTE_ERROR] = "mean_absolute_error",
    [TG_METRIC_TOP_K_CATEGORICAL_ACCURACY] = "top_k_categorical_accuracy",
    [TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY] = "sparse_top_k_categorical_accuracy",
    [TG_METRIC_PRECISION] = "precision",
    [TG_METRIC_RECALL] = "recall",
    [TG_METRIC_AUC] = "auc",
    [TG_METRIC_F1_SCORE] = "f1_score",
    [TG_METRIC_MEAN_IOU] = "mean_iou",
};

const char *tg_metric_kind_name(tg_metric_kind kind)
{
    return (unsigned)kind < TG_METRIC_COUNT ? kind_names[kind] : "?";
}

/* ---- lifetime ---------------------------------------------------------------------------------- */
tg_metric *tg_metric_new_at(tg_loc loc, tg_metric_kind kind, tg_metric_opts o)
{
    if ((unsigned)kind >= TG_METRIC_COUNT)
        return tg__fail(loc, "tg_metric_new: %d is not a tg_metric_kind", (int)kind);
    bool top_k = kind == TG_METRIC_TOP_K_CATEGORICAL_ACCURACY || kind == TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY;
    if (top_k && o.k < 1)
        return tg__fail(loc, "tg_metric_new: %s needs k >= 1 (got %d)", kind_names[kind], o.k);
    if (kind == TG_METRIC_BINARY_ACCURACY && !isfinite(o.threshold))
        return tg__fail(loc, "tg_metric_new: binary_accuracy needs a finite threshold (got %g)", o.threshold);
    tg_metric *m = calloc(1, sizeof *m);
    char *name = strdup(o.name ? o.name : kind_names[kind]);
    if (!m || !name) {
        free(m);
        free(name);
        return tg__fail(loc, "tg_metric_new: out of memory");
    }
    o.name = name;
    *m = (tg_metric){.kind = kind, .o = o, .name = name};
    if (tg__metric_is_confusion(kind) && !tg__confusion_init(loc, m)) {
        tg_metric_free(m);
        return NULL;
    }
    return m;
}

void tg_metric_free(tg_metric *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->counts);
    free(m->thresholds);
    free(m);
}

double tg_metric_result(const tg_metric *m)
{
    if (m && tg__metric_is_confusion(m->kind))
        return m->counts ? tg__confusion_result(m) : 0.0;
    return m && m->count != 0 ? m->total / m->count : 0.0;
}

double *tg__metric_counts(const tg_metric *m, int64_t *n)
{
    *n = m ? m->n_counts : 0;
    return m ? m->counts : NULL;
}

void tg__metric_state(const tg_metric *m, double *total, double *count)
{
    *total = m ? m->total : 0.0;
    *count = m ? m->count : 0.0;
}

void tg_metric_reset_state(tg_metric *m)
{
    if (!m)
        return;
    m->total = m->count = 0;
    if (m->counts)
        memset(m->counts, 0, sizeof(double) * (size_t)m->n_counts);
}

const char *tg_metric_name(const tg_metric *m) { return m ? m->name : "?"; }
tg_metric_kind tg_metric_kind_of(const tg_metric *m) { return m ? m->kind : TG_METRIC_COUNT; }

int tg_metric_update_value_at(tg_loc loc, tg_metric *m, double value, double weight)
{
    if (!m)
        return tg__failf(loc, "tg_metric_update_value: `m` is NULL");
    if (m->kind != TG_METRIC_MEAN)
        return tg__failf(loc,
                         "tg_metric_update_value: metric `%s` is a %s; only a mean takes plain values (use "
                         "tg_metric_update_state)",
                         m->name, kind_names[m->kind]);
    m->total += value * weight;
    m->count += weight;
    return 0;
}

/* ---- values: an array of doubles with a shape ----------------------------------------------------- */
typedef struct vals {
    tg_shape shape;
    double *v;
} vals;

static int64_t shape_size(const tg_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dims[i];
    return n;
}

static const char *shape_str(const tg_shape *s, char *buf) { return tg__shape_str(s, buf, TG_SHAPE_STR_MAX); }

/* Keras's squeeze_or_expand_to_same_rank, on shapes (the data does not move). */
static void match_shapes(tg_shape *a, tg_shape *b)
{
    if (a->rank == b->rank + 1 && a->dims[a->rank - 1] == 1) {
        if (b->rank == 1)
            b->dims[b->rank++] = 1;
        else
            a->rank--;
    } else if (b->rank == a->rank + 1 && b->dims[b->rank - 1] == 1) {
        if (a->rank == 1)
            a->dims[a->rank++] = 1;
        else
            b->rank--;
    }
}

/* Means of consecutive blocks of `block` values: the trailing axes from `from` on. */
static void mean_trailing(vals *x, int from)
{
    tg_shape kept = x->shape;
    kept.rank = from;
    int64_t outer = shape_size(&kept), block = outer ? shape_size(&x->shape) / outer : 0;
    for (int64_t i = 0; i < outer; i++) {
        double s = 0;
        for (int64_t j = 0; j < block; j++)
            s += x->v[i * block + j];
        x->v[i] = block ? s / (double)block : 0;
    }
    x->shape = kept;
}

/* The index of the first largest value of a row (TF's argmax). */
static int64_t argmax_row(const tg_tensor *t, int64_t row, int64_t n)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        if (tg__get(t, row * n + j) > tg__get(t, row * n + best))
            best = j;
    return best;
}

/* tf.math.in_top_k: fewer than k classes score strictly higher than the target (ties
 * count in); an out-of-range target or a non-finite score is not in the top k. */
static double in_top_k(const tg_tensor *pred, int64_t row, int64_t n, double target, int k)
{
    if (!(target >= 0 && target < (double)n) || target != floor(target))
        return 0;
    double t = tg__get(pred, row * n + (int64_t)target);
    if (!isfinite(t))
        return 0;
    int higher = 0;
    for (int64_t j = 0; j < n && higher < k; j++)
        higher += tg__get(pred, row * n + j) > t;
    return higher < k;
}

/* ---- each kind's values --------------------------------------------------------------------------- */
typedef struct update {
    tg_loc loc;
    const tg_metric *m;
    const tg_tensor *yt, *yp;
} update;

static bool fail_shapes(const update *u, const tg_shape *t, const tg_shape *p, const char *need)
{
    char ts[TG_SHAPE_STR_MAX], ps[TG_SHAPE_STR_MAX];
    tg__fail(u->loc, "tg_metric_update_state: metric `%s` (%s): y_true of shape %s and y_pred of shape %s %s",
             u->m->name, kind_names[u->m->kind], shape_str(t, ts), shape_str(p, ps), need);
    return false;
}

/* y_true and y_pred of one shape after matching ranks; `rows`/`width` view it as rows of
 * the last axis. */
static bool same_shapes(const update *u, tg_shape *shape, int64_t *rows, int64_t *width)
{
    tg_shape t = tg__shape(u->yt), p = tg__shape(u->yp);
    match_shapes(&t, &p);
    if (!tg__shape_eq(&t, &p))
        return fail_shapes(u, &t, &p, "must have the same shape");
    *shape = p;
    *width = p.rank ? p.dims[p.rank - 1] : 1;
    *rows = *width ? u->yp->size / *width : 0;
    return true;
}

/* Class indices: y_true has y_pred's shape without its last axis (or with a last axis of 1). */
static bool sparse_shapes(const update *u, tg_shape *shape, int64_t *rows, int64_t *width)
{
    tg_shape t = tg__shape(u->yt), p = tg__shape(u->yp);
    if (p.rank == 0)
        return fail_shapes(u, &t, &p, "do not fit: y_pred needs a class axis");
    if (t.rank == p.rank && t.dims[t.rank - 1] == 1)
        t.rank--;
    tg_shape want = p;
    want.rank--;
    if (!tg__shape_eq(&t, &want))
        return fail_shapes(u, &t, &p, "do not fit: class indices need y_pred's shape without its last axis");
    *shape = want;
    *width = p.dims[p.rank - 1];
    *rows = shape_size(&want);
    return true;
}

/* The metric's value for element (or row of `width`) i. */
static double value_at(const tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, int64_t i, int64_t width)
{
    switch (m->kind) {
    case TG_METRIC_MEAN: return tg__get(yp, i);
    case TG_METRIC_BINARY_ACCURACY: return (double)(tg__get(yp, i) > m->o.threshold) == tg__get(yt, i);
    case TG_METRIC_CATEGORICAL_ACCURACY: return argmax_row(yt, i, width) == argmax_row(yp, i, width);
    case TG_METRIC_SPARSE_CATEGORICAL_ACCURACY: return (double)argmax_row(yp, i, width) == tg__get(yt, i);
    case TG_METRIC_TOP_K_CATEGORICAL_ACCURACY: return in_top_k(yp, i, width, (double)argmax_row(yt, i, width), m->o.k);
    case TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY: return in_top_k(yp, i, width, tg__get(yt, i), m->o.k);
    default: break;
    }
    double v = 0; /* mean squared or absolute error over the row */
    for (int64_t j = 0; j < width; j++) {
        double d = tg__get(yt, i * width + j) - tg__get(yp, i * width + j);
        v += m->kind == TG_METRIC_MEAN_SQUARED_ERROR ? d * d : fabs(d);
    }
    return width ? v / (double)width : 0;
}

static bool compute_values(const update *u, vals *out)
{
    const tg_tensor *yt = u->yt, *yp = u->yp;
    const tg_metric *m = u->m;
    int64_t rows = 0, width = 1;
    tg_shape shape;
    bool ok;
    switch (m->kind) {
    case TG_METRIC_MEAN: shape = tg__shape(yp), ok = true; break;
    case TG_METRIC_SPARSE_CATEGORICAL_ACCURACY:
    case TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY: ok = sparse_shapes(u, &shape, &rows, &width); break;
    default: ok = same_shapes(u, &shape, &rows, &width); break;
    }
    if (!ok)
        return false;
    bool per_row = m->kind != TG_METRIC_MEAN && m->kind != TG_METRIC_BINARY_ACCURACY;
    bool errors = m->kind == TG_METRIC_MEAN_SQUARED_ERROR || m->kind == TG_METRIC_MEAN_ABSOLUTE_ERROR;
    bool sparse =
        m->kind == TG_METRIC_SPARSE_CATEGORICAL_ACCURACY || m->kind == TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY;
    if (per_row && !sparse) {
        if (shape.rank == 0)
            return fail_shapes(u, &shape, &shape, "are scalars; this metric needs a last axis to reduce");
        if (errors && shape.rank == 1) {
            width = 1, rows = shape.dims[0]; /* a vector is one value per sample */
            shape.dims[shape.rank++] = 1;
        }
        shape.rank--; /* the last axis is reduced away */
    }
    int64_t n = per_row ? rows : yp->size;
    out->shape = shape;
    out->v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!out->v) {
        tg__fail(u->loc, "tg_metric_update_state: out of memory");
        return false;
    }
    for (int64_t i = 0; i < n; i++)
        out->v[i] = value_at(m, yt, yp, i, width);
    return true;
}

/* ---- weighting (reduce_to_samplewise_values, then Mean) -------------------------------------------- */
/* Adds the batch to *total and *count; false with an error when the weights do not fit. */
static bool weigh(const update *u, vals *x, const tg_tensor *sw, double *total, double *count)
{
    if (!sw) {
        if (x->shape.rank > 1)
            mean_trailing(x, 1);
        int64_t n = shape_size(&x->shape);
        for (int64_t i = 0; i < n; i++)
            *total += x->v[i];
        *count += x->shape.rank ? (double)x->shape.dims[0] : 1;
        return true;
    }
    tg_shape ws = tg__shape(sw);
    match_shapes(&x->shape, &ws);
    if (x->shape.rank > ws.rank)
        mean_trailing(x, ws.rank);
    bool fits = x->shape.rank == ws.rank;
    for (int i = 0; fits && i < ws.rank; i++)
        fits = ws.dims[i] == 1 || ws.dims[i] == x->shape.dims[i];
    if (!fits) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        tg__fail(u->loc,
                 "tg_metric_update_state: metric `%s`: sample_weight of shape %s does not fit the "
                 "values of shape %s; give one weight per sample, shape (%lld,)",
                 u->m->name, shape_str(&ws, a), shape_str(&x->shape, b),
                 (long long)(x->shape.rank ? x->shape.dims[0] : 1));
        return false;
    }
    /* Broadcast the weights over the values: size-1 weight axes have stride 0. */
    int r = ws.rank;
    int64_t n = shape_size(&x->shape), wstride[TG_MAX_RANK], step = 1;
    for (int i = r - 1; i >= 0; i--) {
        wstride[i] = ws.dims[i] == 1 ? 0 : step;
        step *= ws.dims[i];
    }
    int64_t rows = r ? x->shape.dims[0] : 1, inner = rows ? n / rows : 0;
    for (int64_t row = 0; row < rows; row++) {
        double vsum = 0, wsum = 0;
        for (int64_t j = 0; j < inner; j++) {
            int64_t flat = row * inner + j, rem = flat, wi = 0;
            for (int i = r - 1; i >= 0; i--) {
                wi += (rem % x->shape.dims[i]) * wstride[i];
                rem /= x->shape.dims[i];
            }
            double w = tg__get(sw, wi);
            vsum += x->v[flat] * w;
            wsum += w;
        }
        /* Per sample: the mean over the further axes of value * weight and of weight. */
        *total += inner ? vsum / (double)inner : 0;
        *count += inner ? wsum / (double)inner : 0;
    }
    return true;
}

int tg_metric_update_state_at(tg_loc loc, tg_metric *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                              const tg_tensor *sample_weight)
{
    if (!m)
        return tg__failf(loc, "tg_metric_update_state: `m` is NULL");
    if (!tg__check_input(loc, "tg_metric_update_state", y_pred, "y_pred") ||
        (m->kind != TG_METRIC_MEAN && !tg__check_input(loc, "tg_metric_update_state", y_true, "y_true")) ||
        (sample_weight && !tg__check_input(loc, "tg_metric_update_state", sample_weight, "sample_weight")))
        return -1;
    if (tg__metric_is_confusion(m->kind))
        return tg__confusion_update(loc, m, y_true, y_pred, sample_weight) ? 0 : -1;
    update u = {.loc = loc, .m = m, .yt = y_true, .yp = y_pred};
    vals x = {0};
    double total = 0, count = 0;
    bool ok = compute_values(&u, &x) && weigh(&u, &x, sample_weight, &total, &count);
    free(x.v);
    if (!ok)
        return -1;
    m->total += total;
    m->count += count;
    return 0;
}

/* ---- which accuracy ------------------------------------------------------------------------------ */
static int64_t last_dim(const tg_shape *s) { return s && s->rank > 0 ? s->dims[s->rank - 1] : 1; }

tg_metric_kind tg_resolve_accuracy(tg_loss_kind loss, const tg_shape *y_pred_shape)
{
    if (loss == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        return TG_METRIC_SPARSE_CATEGORICAL_ACCURACY;
    if (loss == TG_LOSS_BINARY_CROSSENTROPY || (y_pred_shape && last_dim(y_pred_shape) == 1))
        return TG_METRIC_BINARY_ACCURACY;
    return TG_METRIC_CATEGORICAL_ACCURACY;
}

tg_metric_kind tg_resolve_accuracy_from_shapes(const tg_shape *y_true_shape, const tg_shape *y_pred_shape)
{
    int64_t t_last = last_dim(y_true_shape), p_last = last_dim(y_pred_shape);
    int t_rank = y_true_shape ? y_true_shape->rank : 0, p_rank = y_pred_shape ? y_pred_shape->rank : 0;
    if (p_last == 1)
        return TG_METRIC_BINARY_ACCURACY;
    if (t_rank < p_rank || (t_last == 1 && p_last > 1))
        return TG_METRIC_SPARSE_CATEGORICAL_ACCURACY;
    return TG_METRIC_CATEGORICAL_ACCURACY;
}
