/* The confusion metrics: Precision, Recall and AUC (keras/src/metrics/confusion_metrics.py,
 * metrics_utils.update_confusion_matrix_variables), F1Score/FBetaScore
 * (f_score_metrics.py) and MeanIoU (iou_metrics.py). Each keeps weighted counts and
 * computes its result from them, so a result over many batches is the result over their
 * union. Counts are doubles, summed in the order the elements come. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metric_impl.h"

#define EPSILON 1e-7 /* keras.backend.epsilon() */

bool tg__metric_is_confusion(tg_metric_kind k)
{
    return k == TG_METRIC_PRECISION || k == TG_METRIC_RECALL || k == TG_METRIC_AUC || k == TG_METRIC_F1_SCORE ||
           k == TG_METRIC_MEAN_IOU;
}

static double divide_no_nan(double a, double b) { return b == 0 ? 0 : a / b; }

static bool alloc_counts(tg_loc loc, tg_metric *m, int64_t n)
{
    if (!(m->counts = calloc((size_t)n, sizeof(double))))
        return tg__failb(loc, "tg_metric_new: out of memory");
    m->n_counts = n;
    return true;
}

/* F1's counts for C classes (one set for micro). */
static bool f1_alloc(tg_loc loc, tg_metric *m, int64_t classes)
{
    return alloc_counts(loc, m, 4 * (m->o.average == TG_F1_MICRO ? 1 : classes));
}

bool tg__confusion_init(tg_loc loc, tg_metric *m)
{
    const tg_metric_opts *o = &m->o;
    switch (m->kind) {
    case TG_METRIC_PRECISION:
    case TG_METRIC_RECALL:
        if (!isfinite(o->threshold))
            return tg__failb(loc, "tg_metric_new: %s needs a finite threshold (got %g)", m->name, o->threshold);
        return alloc_counts(loc, m, 3);
    case TG_METRIC_AUC: {
        int n = o->num_thresholds;
        if (n <= 1 || n > (1 << 20))
            return tg__failb(loc,
                             "tg_metric_new: AUC: Argument `num_thresholds` must be an integer > 1 (and at most "
                             "2^20). Received: num_thresholds=%d",
                             n);
        if ((unsigned)o->curve > TG_AUC_PR || (unsigned)o->summation > TG_AUC_MAJORING)
            return tg__failb(loc, "tg_metric_new: AUC: .curve %d or .summation %d is not one of the enum's values",
                             (int)o->curve, (int)o->summation);
        if (!(m->thresholds = malloc(sizeof(double) * (size_t)n)))
            return tg__failb(loc, "tg_metric_new: out of memory");
        m->thresholds[0] = 0.0 - EPSILON; /* endpoints past [0, 1], for rounding */
        for (int i = 1; i < n - 1; i++)
            m->thresholds[i] = i * 1.0 / (n - 1);
        m->thresholds[n - 1] = 1.0 + EPSILON;
        return alloc_counts(loc, m, 4 * (int64_t)n);
    }
    case TG_METRIC_F1_SCORE:
        if ((unsigned)o->average > TG_F1_WEIGHTED || !(o->beta > 0) || !isfinite(o->beta))
            return tg__failb(loc, "tg_metric_new: F1Score: .average must be a tg_f1_average and .beta > 0 (got %g)",
                             o->beta);
        if (o->use_threshold && !(o->threshold >= 0 && o->threshold <= 1))
            return tg__failb(loc, "tg_metric_new: F1Score: threshold %g must lie in [0, 1], as Keras requires",
                             o->threshold);
        if (o->num_classes < 0)
            return tg__failb(loc, "tg_metric_new: F1Score: num_classes %lld is negative", (long long)o->num_classes);
        return o->num_classes == 0 || f1_alloc(loc, m, o->num_classes);
    case TG_METRIC_MEAN_IOU:
        if (o->num_classes < 1 || o->num_classes > 4096)
            return tg__failb(loc,
                             "tg_metric_new: MeanIoU needs .num_classes, the number of classes (1 to 4096); "
                             "got %lld",
                             (long long)o->num_classes);
        return alloc_counts(loc, m, o->num_classes * o->num_classes);
    default: return true;
    }
}

/* ---- shapes and weights ---------------------------------------------------------------------------- */
static bool fail_shapes(tg_loc loc, const tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, const char *need)
{
    char ts[TG_SHAPE_STR_MAX], ps[TG_SHAPE_STR_MAX];
    tg_shape t = tg__shape(yt), p = tg__shape(yp);
    return tg__failb(loc, "tg_metric_update_state: metric `%s`: y_true of shape %s and y_pred of shape %s %s", m->name,
                     tg__shape_str(&t, ts, sizeof ts), tg__shape_str(&p, ps, sizeof ps), need);
}

/* y_true and y_pred with the same number of elements once a trailing 1 is ignored (Keras's
 * squeeze_or_expand_to_same_rank), read element by element. */
static bool same_elements(tg_loc loc, const tg_metric *m, const tg_tensor *yt, const tg_tensor *yp)
{
    tg_shape t = tg__shape(yt), p = tg__shape(yp);
    if (t.rank == p.rank + 1 && t.dims[t.rank - 1] == 1)
        t.rank--;
    if (p.rank == t.rank + 1 && p.dims[p.rank - 1] == 1)
        p.rank--;
    return tg__shape_eq(&t, &p) || fail_shapes(loc, m, yt, yp, "must have the same shape");
}

/* Weights: NULL (all 1), one per sample (`rows` of them) or one per element (`n`). */
typedef struct weights {
    const tg_tensor *w;
    int64_t per; /* elements per weight */
} weights;

static bool weights_for(tg_loc loc, const tg_metric *m, const tg_tensor *sw, int64_t rows, int64_t n, weights *out)
{
    *out = (weights){.w = sw, .per = 1};
    if (!sw || sw->size == n)
        return true;
    if (rows > 0 && sw->size == rows) {
        out->per = n / rows;
        return true;
    }
    char ws[TG_SHAPE_STR_MAX];
    tg_shape s = tg__shape(sw);
    return tg__failb(loc,
                     "tg_metric_update_state: metric `%s`: sample_weight of shape %s fits neither the %lld samples "
                     "nor the %lld values of y_pred; give one weight per sample or per value",
                     m->name, tg__shape_str(&s, ws, sizeof ws), (long long)rows, (long long)n);
}

static double weight_at(const weights *w, int64_t e) { return w->w ? tg__get(w->w, e / w->per) : 1.0; }

static int64_t rows_of(const tg_tensor *t) { return t->rank ? t->shape[0] : 1; }

/* ---- Precision, Recall ------------------------------------------------------------------------------- */
static bool binary_update(tg_loc loc, tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, const weights *w)
{
    double *c = m->counts; /* tp, fp, fn */
    for (int64_t e = 0; e < yp->size; e++) {
        bool label = tg__get(yt, e) != 0, pos = tg__get(yp, e) > m->o.threshold;
        double wt = weight_at(w, e);
        c[0] += label && pos ? wt : 0;
        c[1] += !label && pos ? wt : 0;
        c[2] += label && !pos ? wt : 0;
    }
    (void)loc;
    return true;
}

/* ---- AUC ------------------------------------------------------------------------------------------------ */
/* Each prediction is positive at the thresholds strictly below it: a histogram of how many
 * that is, then sums from the top give every threshold's counts in one pass. */
static bool auc_update(tg_loc loc, tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, const weights *w)
{
    int n = m->o.num_thresholds;
    double *hist = calloc(2 * (size_t)(n + 1), sizeof(double)); /* [below][label] */
    if (!hist)
        return tg__failb(loc, "tg_metric_update_state: out of memory");
    for (int64_t e = 0; e < yp->size; e++) {
        double p = tg__get(yp, e);
        if (m->o.from_logits)
            p = 1.0 / (1.0 + exp(-p));
        int lo = 0, hi = n; /* the number of thresholds < p */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (m->thresholds[mid] < p)
                lo = mid + 1;
            else
                hi = mid;
        }
        hist[2 * lo + (tg__get(yt, e) != 0)] += weight_at(w, e);
    }
    double *tp = m->counts, *fp = tp + n, *tn = fp + n, *fn = tn + n, pos_true = 0, pos_false = 0;
    double all_true = 0, all_false = 0;
    for (int b = 0; b <= n; b++)
        all_false += hist[2 * b], all_true += hist[2 * b + 1];
    for (int j = n - 1; j >= 0; j--) { /* positive at threshold j: the buckets above it */
        pos_false += hist[2 * (j + 1)];
        pos_true += hist[2 * (j + 1) + 1];
        tp[j] += pos_true;
        fp[j] += pos_false;
        tn[j] += all_false - pos_false;
        fn[j] += all_true - pos_true;
    }
    free(hist);
    return true;
}

/* Davis and Goadrich's interpolation between thresholds (AUC.interpolate_pr_auc). */
static double pr_auc_interpolated(const double *tp, const double *fp, const double *fn, int n)
{
    double auc = 0;
    for (int i = 0; i < n - 1; i++) {
        double p0 = tp[i] + fp[i], p1 = tp[i + 1] + fp[i + 1];
        double dtp = tp[i] - tp[i + 1], dp = p0 - p1;
        double slope = divide_no_nan(dtp, fmax(dp, 0));
        double intercept = tp[i + 1] - slope * p1;
        double ratio = p0 > 0 && p1 > 0 ? divide_no_nan(p0, fmax(p1, 0)) : 1.0;
        auc += divide_no_nan(slope * (dtp + intercept * log(ratio)), fmax(tp[i + 1] + fn[i + 1], 0));
    }
    return auc;
}

static double auc_result(const tg_metric *m)
{
    int n = m->o.num_thresholds;
    const double *tp = m->counts, *fp = tp + n, *tn = fp + n, *fn = tn + n;
    if (m->o.curve == TG_AUC_PR && m->o.summation == TG_AUC_INTERPOLATION)
        return pr_auc_interpolated(tp, fp, fn, n);
    double auc = 0, x0 = 0, y0 = 0;
    for (int i = 0; i < n; i++) {
        double recall = divide_no_nan(tp[i], tp[i] + fn[i]), x, y;
        if (m->o.curve == TG_AUC_ROC)
            x = divide_no_nan(fp[i], fp[i] + tn[i]), y = recall;
        else
            x = recall, y = divide_no_nan(tp[i], tp[i] + fp[i]);
        if (i > 0) {
            double h = m->o.summation == TG_AUC_INTERPOLATION ? (y0 + y) / 2
                       : m->o.summation == TG_AUC_MINORING    ? fmin(y0, y)
                                                              : fmax(y0, y);
            auc += (x0 - x) * h;
        }
        x0 = x, y0 = y;
    }
    return auc;
}

/* ---- F1Score ------------------------------------------------------------------------------------------- */
static bool f1_update(tg_loc loc, tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, const weights *w)
{
    tg_shape t = tg__shape(yt), p = tg__shape(yp);
    if (p.rank != 2 || !tg__shape_eq(&t, &p))
        return fail_shapes(loc, m, yt, yp,
                           "do not fit: F1Score takes one-hot (or multi-label) y_true and y_pred of one shape "
                           "(batch_size, num_classes)");
    int64_t rows = p.dims[0], classes = p.dims[1];
    if (!m->counts && !f1_alloc(loc, m, classes))
        return false;
    int64_t kept = m->o.average == TG_F1_MICRO ? 1 : m->n_counts / 4;
    if (m->o.average != TG_F1_MICRO && kept != classes)
        return fail_shapes(loc, m, yt, yp, "do not fit the number of classes the metric counts");
    double *tp = m->counts, *fp = tp + kept, *fn = fp + kept, *support = fn + kept;
    for (int64_t r = 0; r < rows; r++) {
        double top = -INFINITY;
        for (int64_t j = 0; j < classes; j++)
            top = fmax(top, tg__get(yp, r * classes + j));
        for (int64_t j = 0; j < classes; j++) {
            int64_t e = r * classes + j, k = kept == 1 ? 0 : j;
            double v = tg__get(yp, e), label = tg__get(yt, e), wt = weight_at(w, e);
            double pred = m->o.use_threshold ? v > m->o.threshold : v >= top && fabs(v) > 1e-9;
            tp[k] += pred * label * wt;
            fp[k] += pred * (1 - label) * wt;
            fn[k] += (1 - pred) * label * wt;
            support[k] += label * wt;
        }
    }
    return true;
}

static double f1_result(const tg_metric *m)
{
    if (!m->counts)
        return 0;
    int64_t kept = m->n_counts / 4;
    const double *tp = m->counts, *fp = tp + kept, *fn = fp + kept, *support = fn + kept;
    double b2 = m->o.beta * m->o.beta, total_support = 0, sum = 0;
    for (int64_t k = 0; k < kept; k++)
        total_support += support[k];
    for (int64_t k = 0; k < kept; k++) {
        double precision = tp[k] / (tp[k] + fp[k] + EPSILON), recall = tp[k] / (tp[k] + fn[k] + EPSILON);
        double f = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2);
        sum += m->o.average == TG_F1_WEIGHTED ? f * support[k] / (total_support + EPSILON) : f;
    }
    return m->o.average == TG_F1_WEIGHTED ? sum : sum / (double)kept;
}

/* ---- MeanIoU ------------------------------------------------------------------------------------------- */
/* Class ids of t, one per sample position: its values, or the argmax of its last axis. */
static double class_at(const tg_tensor *t, bool argmax, int64_t i)
{
    if (!argmax)
        return tg__get(t, i);
    int64_t width = t->shape[t->rank - 1], best = 0;
    for (int64_t j = 1; j < width; j++)
        if (tg__get(t, i * width + j) > tg__get(t, i * width + best))
            best = j;
    return (double)best;
}

static bool iou_update(tg_loc loc, tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, const tg_tensor *sw)
{
    const tg_metric_opts *o = &m->o;
    if ((o->argmax_y_true && yt->rank == 0) || (o->argmax_y_pred && yp->rank == 0))
        return fail_shapes(loc, m, yt, yp, "do not fit: scores need a class axis to take the argmax of");
    int64_t nt = o->argmax_y_true ? yt->size / yt->shape[yt->rank - 1] : yt->size;
    int64_t np = o->argmax_y_pred ? yp->size / yp->shape[yp->rank - 1] : yp->size;
    if (nt != np)
        return fail_shapes(loc, m, yt, yp, "hold different numbers of labels");
    weights w;
    if (!weights_for(loc, m, sw, rows_of(yt), nt, &w))
        return false;
    int64_t c = o->num_classes;
    for (int64_t i = 0; i < nt; i++) {
        double a = class_at(yt, o->argmax_y_true, i), b = class_at(yp, o->argmax_y_pred, i);
        if (a >= 0 && a < (double)c && b >= 0 && b < (double)c) /* others are dropped, as Keras's mask does */
            m->counts[(int64_t)a * c + (int64_t)b] += weight_at(&w, i);
    }
    return true;
}

static double iou_result(const tg_metric *m)
{
    int64_t c = m->o.num_classes, valid = 0;
    double sum = 0;
    for (int64_t k = 0; k < c; k++) {
        double tp = m->counts[k * c + k], row = 0, col = 0;
        for (int64_t j = 0; j < c; j++)
            row += m->counts[k * c + j], col += m->counts[j * c + k];
        double denominator = row + col - tp;
        valid += denominator != 0;
        sum += divide_no_nan(tp, denominator);
    }
    return divide_no_nan(sum, (double)valid);
}

/* ---- entry points ------------------------------------------------------------------------------------- */
bool tg__confusion_update(tg_loc loc, tg_metric *m, const tg_tensor *yt, const tg_tensor *yp, const tg_tensor *sw)
{
    if (m->kind == TG_METRIC_MEAN_IOU)
        return iou_update(loc, m, yt, yp, sw);
    weights w;
    if (m->kind != TG_METRIC_F1_SCORE && !same_elements(loc, m, yt, yp))
        return false;
    if (!weights_for(loc, m, sw, rows_of(yp), yp->size, &w))
        return false;
    /* each update checks the batch (and allocates) before it counts: a failure leaves the
     * counts as they were */
    return m->kind == TG_METRIC_AUC        ? auc_update(loc, m, yt, yp, &w)
           : m->kind == TG_METRIC_F1_SCORE ? f1_update(loc, m, yt, yp, &w)
                                           : binary_update(loc, m, yt, yp, &w);
}

double tg__confusion_result(const tg_metric *m)
{
    const double *c = m->counts;
    switch (m->kind) {
    case TG_METRIC_PRECISION: return divide_no_nan(c[0], c[0] + c[1]);
    case TG_METRIC_RECALL: return divide_no_nan(c[0], c[0] + c[2]);
    case TG_METRIC_AUC: return auc_result(m);
    case TG_METRIC_F1_SCORE: return f1_result(m);
    case TG_METRIC_MEAN_IOU: return iou_result(m);
    default: return 0;
    }
}
