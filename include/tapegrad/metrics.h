/* tapegrad/metrics.h: Keras metrics, with running state over an epoch.
 *
 *   tg_metric *acc = tg_metric_new(TG_METRIC_SPARSE_CATEGORICAL_ACCURACY);
 *   for each batch: tg_metric_update_state(acc, y_true, y_pred, NULL);
 *   printf("%s: %.4f\n", tg_metric_name(acc), tg_metric_result(acc));
 *   tg_metric_reset_state(acc);                // next epoch
 *   tg_metric_free(acc);
 *
 * Every metric is a weighted mean, as in Keras: each batch gives one value per sample
 * (the mean over any further axes), total += sum(value * weight), count += sum(weight)
 * (the number of samples without weights), result = total / count (0 before any
 * update). Values are read out of the tensors and summed in double; nothing is
 * recorded on a tape. Rank-1 inputs of the error metrics count as [B, 1], one value
 * per sample, as the losses do.
 *
 * The confusion metrics (Precision, Recall, AUC, F1Score, MeanIoU) keep Keras's counts
 * instead (true and false positives and negatives, per threshold or class, weighted),
 * and compute their result from the counts (keras/src/metrics/confusion_metrics.py,
 * f_score_metrics.py, iou_metrics.py). Their sample weights are one per sample ([B] or
 * [B, 1]) or one per element of y_pred. */
#ifndef TAPEGRAD_METRICS_H
#define TAPEGRAD_METRICS_H

#include "losses.h"

TG_BEGIN_DECLS

typedef struct tg_metric tg_metric;

typedef enum tg_metric_kind {
    TG_METRIC_MEAN = 0,                    /* of the values given as y_pred (the loss) */
    TG_METRIC_BINARY_ACCURACY,             /* (y_pred > threshold) == y_true */
    TG_METRIC_CATEGORICAL_ACCURACY,        /* argmax(y_pred) == argmax(y_true), one-hot y_true */
    TG_METRIC_SPARSE_CATEGORICAL_ACCURACY, /* argmax(y_pred) == y_true, class indices */
    TG_METRIC_MEAN_SQUARED_ERROR,
    TG_METRIC_MEAN_ABSOLUTE_ERROR,
    TG_METRIC_TOP_K_CATEGORICAL_ACCURACY,        /* argmax(y_true) among the k largest of y_pred */
    TG_METRIC_SPARSE_TOP_K_CATEGORICAL_ACCURACY, /* y_true among the k largest of y_pred */
    TG_METRIC_PRECISION,                         /* tp / (tp + fp), y_pred > threshold, every element */
    TG_METRIC_RECALL,                            /* tp / (tp + fn), the same */
    TG_METRIC_AUC,                               /* area under the ROC or PR curve, num_thresholds */
    TG_METRIC_F1_SCORE,                          /* F-beta per class of one-hot y_true, averaged */
    TG_METRIC_MEAN_IOU,                          /* mean over classes of tp / (tp + fp + fn) */
    TG_METRIC_COUNT
} tg_metric_kind;

typedef enum tg_auc_curve { TG_AUC_ROC = 0, TG_AUC_PR } tg_auc_curve;
typedef enum tg_auc_summation {
    TG_AUC_INTERPOLATION = 0, /* trapezoids (ROC); Davis and Goadrich's interpolation (PR) */
    TG_AUC_MINORING,          /* the lower of each pair of heights */
    TG_AUC_MAJORING,          /* the higher */
} tg_auc_summation;
typedef enum tg_f1_average { TG_F1_MACRO = 0, TG_F1_MICRO, TG_F1_WEIGHTED } tg_f1_average;

typedef struct tg_metric_opts {
    int k;                      /* top-k metrics: default 5 */
    double threshold;           /* binary accuracy, precision, recall: default 0.5 */
    const char *name;           /* default: Keras's, e.g. "binary_accuracy" (copied) */
    int num_thresholds;         /* AUC: default 200 (evenly spaced in [0, 1], and -1e-7, 1 + 1e-7) */
    tg_auc_curve curve;         /* AUC: default ROC */
    tg_auc_summation summation; /* AUC: default interpolation */
    bool from_logits;           /* AUC: y_pred are logits (a sigmoid first) */
    tg_f1_average average;      /* F1: default macro (Keras's default, None, gives one score per class) */
    double beta;                /* F1: default 1 (Keras's FBetaScore otherwise) */
    bool use_threshold;         /* F1: y_pred > threshold, instead of Keras's default, the row's maximum */
    int64_t num_classes;        /* MeanIoU: required; F1: taken from y_pred when 0 */
    bool argmax_y_true;         /* MeanIoU: y_true one-hot or scores (Keras's sparse_y_true=False) */
    bool argmax_y_pred;         /* MeanIoU: y_pred scores (Keras's sparse_y_pred=False) */
} tg_metric_opts;

/* NULL with an error on a bad kind or option. */
tg_metric *tg_metric_new_at(tg_loc loc, tg_metric_kind kind, tg_metric_opts o);
#define tg_metric_new(kind, ...) \
    tg_metric_new_at(            \
        TG_LOC, kind,            \
        TG__OPTS(tg_metric_opts, .k = 5, .threshold = 0.5, .num_thresholds = 200, .beta = 1.0, __VA_ARGS__))
void tg_metric_free(tg_metric *m);

/* Adds one batch. y_true may be NULL for TG_METRIC_MEAN; sample_weight may be NULL, or
 * one weight per sample ([B] or [B, 1]). Returns 0, or -1 with an error (and the state
 * unchanged). */
int tg_metric_update_state_at(tg_loc loc, tg_metric *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                              const tg_tensor *sample_weight);
#define tg_metric_update_state(m, y_true, y_pred, sample_weight) \
    tg_metric_update_state_at(TG_LOC, m, y_true, y_pred, sample_weight)
/* TG_METRIC_MEAN only: adds one value with a weight (Keras's loss tracker passes the
 * batch size). Returns 0 or -1. */
int tg_metric_update_value_at(tg_loc loc, tg_metric *m, double value, double weight);
#define tg_metric_update_value(m, value, weight) tg_metric_update_value_at(TG_LOC, m, value, weight)

double tg_metric_result(const tg_metric *m); /* total / count; 0 when count is 0 */
void tg_metric_reset_state(tg_metric *m);
const char *tg_metric_name(const tg_metric *m);
tg_metric_kind tg_metric_kind_of(const tg_metric *m);
const char *tg_metric_kind_name(tg_metric_kind kind); /* Keras's default names */

/* What metrics=['accuracy'] becomes for a loss and the model's output shape, by the rule
 * of Keras 2 (compile time, no labels seen): sparse categorical cross-entropy gives
 * sparse categorical accuracy; binary cross-entropy or an output whose last axis is 1
 * gives binary accuracy; anything else categorical accuracy. y_pred_shape may be NULL
 * (not known yet). */
tg_metric_kind tg_resolve_accuracy(tg_loss_kind loss, const tg_shape *y_pred_shape);
/* Keras 3's rule, from the shapes of the labels and the output: a last output axis of 1
 * is binary; labels of lower rank, or a last label axis of 1 against more than one
 * output unit, are sparse; anything else categorical. */
tg_metric_kind tg_resolve_accuracy_from_shapes(const tg_shape *y_true_shape, const tg_shape *y_pred_shape);

TG_END_DECLS
#endif
