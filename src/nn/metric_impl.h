/* Internal view of metrics: the state every metric keeps, and the confusion metrics'
 * entry points (confusion_metrics.c), which metrics.c calls for those kinds. */
#ifndef TG_NN_METRIC_IMPL_H
#define TG_NN_METRIC_IMPL_H

#include "../tensor/tensor_impl.h"
#include "tapegrad/metrics.h"

struct tg_metric {
    tg_metric_kind kind;
    tg_metric_opts o; /* as given; o.name is the copy below */
    char *name;
    double total, count; /* the weighted means */
    /* The confusion metrics' counts (NULL until their size is known; summed over ranks):
     * Precision, Recall: tp, fp, fn. AUC: tp, fp, tn, fn per threshold (4 blocks of
     * n_thresholds). F1: tp, fp, fn and the weight of y_true per class (4 blocks of C;
     * C = 1 for micro). MeanIoU: the C x C confusion matrix, [true][pred]. */
    double *counts;
    int64_t n_counts;
    double *thresholds; /* AUC */
};

bool tg__metric_is_confusion(tg_metric_kind kind);
/* Checks the options and sizes the counts where they are known. False with an error. */
bool tg__confusion_init(tg_loc loc, tg_metric *m);
bool tg__confusion_update(tg_loc loc, tg_metric *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                          const tg_tensor *sample_weight);
double tg__confusion_result(const tg_metric *m);

#endif
