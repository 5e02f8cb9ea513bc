/* tapegrad/losses.h: Keras losses, built from tapegrad ops so a tape differentiates them
 * (to any order).
 *
 *   tg_loss bce = {.kind = TG_LOSS_BINARY_CROSSENTROPY, .from_logits = true};
 *   tg_tensor *loss = tg_compute_loss(&bce, y_true, y_pred, NULL);   // a scalar
 *
 * Semantics are Keras 3's (TensorFlow backend). A loss first matches the ranks of y_true
 * and y_pred (a trailing axis of size 1 is squeezed or added, so labels [B] fit a
 * prediction [B, 1]), computes one value per sample by reducing the last axis, then
 * reduces with "sum_over_batch_size": sum(values * sample_weight) / number of values.
 * One difference: rank-1 inputs count as [B, 1] (one value per sample), where Keras
 * would average them into one number before weighting; without weights both agree.
 *
 * Probabilities (from_logits = false) are clipped to [1e-7, 1 - 1e-7] as Keras does;
 * categorical cross-entropy first divides by the sum over the last axis, so on a
 * 1-unit output its loss is a constant and its gradient is zeros (not NULL), exactly as
 * in TF (a warning says so). Logits use the stable forms: log_softmax, and
 * max(x, 0) - x z + log1p(exp(-|x|)) for the sigmoid. */
#ifndef TAPEGRAD_LOSSES_H
#define TAPEGRAD_LOSSES_H

#include "ops.h"

TG_BEGIN_DECLS

typedef enum tg_loss_kind {
    TG_LOSS_NONE = 0,                        /* no loss (a zeroed tg_loss) */
    TG_LOSS_MSE,                             /* mean_squared_error */
    TG_LOSS_MAE,                             /* mean_absolute_error */
    TG_LOSS_HUBER,                           /* huber, .delta */
    TG_LOSS_BINARY_CROSSENTROPY,             /* .from_logits, .label_smoothing */
    TG_LOSS_CATEGORICAL_CROSSENTROPY,        /* .from_logits, .label_smoothing; one-hot labels */
    TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, /* .from_logits; integer labels [B] or [B, 1] */
    TG_LOSS_KL_DIVERGENCE,                   /* sum(t log(t / p)), t and p clipped to [1e-7, 1] */
    TG_LOSS_HINGE,                           /* mean(max(1 - t p, 0)); labels 0/1 become -1/1 */
    TG_LOSS_SQUARED_HINGE,                   /* mean(max(1 - t p, 0)^2); the same labels */
    TG_LOSS_LOG_COSH,                        /* mean(log(cosh(p - t))), without overflow */
    TG_LOSS_POISSON,                         /* mean(p - t log(p + 1e-7)) */
    TG_LOSS_COSINE_SIMILARITY,               /* -sum(l2_normalize(t) * l2_normalize(p)) */
    TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY,  /* .alpha, .gamma, .from_logits, .label_smoothing */
    TG_LOSS_CUSTOM,                          /* .fn(y_true, y_pred, .user) */
    TG_LOSS_COUNT
} tg_loss_kind;

/* A user loss: per-sample values (or any shape, or a scalar), from tapegrad ops. NULL
 * (with an error set) to fail. */
typedef tg_tensor *(*tg_custom_loss_fn)(const tg_tensor *y_true, const tg_tensor *y_pred, void *user);

typedef struct tg_loss {
    tg_loss_kind kind;
    bool from_logits;       /* cross-entropies: y_pred are logits, not probabilities */
    double delta;           /* huber: where it turns linear; 0 means Keras's 1.0 */
    double label_smoothing; /* binary, categorical and focal cross-entropy, in [0, 1] */
    double alpha, gamma;    /* focal: alpha (1 - p)^gamma weighs the cross-entropy; 0 means Keras's 0.25, 2.0 */
    tg_custom_loss_fn fn;   /* TG_LOSS_CUSTOM */
    void *user;             /* passed to fn */
    const char *name;       /* TG_LOSS_CUSTOM: its name (default "custom_loss") */
} tg_loss;

/* The scalar loss (y_pred's dtype): per-sample values, weighted, summed and divided by
 * their number (0 for an empty batch). sample_weight may be NULL, or one weight per
 * sample ([B] or [B, 1]), or any shape that broadcasts to the values. */
tg_tensor *tg_compute_loss_at(tg_loc loc, const tg_loss *loss, const tg_tensor *y_true, const tg_tensor *y_pred,
                              const tg_tensor *sample_weight);
#define tg_compute_loss(loss, y_true, y_pred, sample_weight) \
    tg_compute_loss_at(TG_LOC, loss, y_true, y_pred, sample_weight)

/* The per-sample values: y_pred's shape without its last axis ([B] for [B, D]). */
tg_tensor *tg_loss_values_at(tg_loc loc, const tg_loss *loss, const tg_tensor *y_true, const tg_tensor *y_pred);
#define tg_loss_values(loss, y_true, y_pred) tg_loss_values_at(TG_LOC, loss, y_true, y_pred)

/* Keras's functional forms, per sample; options as in tg_loss, e.g.
 * tg_binary_crossentropy(y, logits, .from_logits = true, .label_smoothing = 0.1). */
#define tg_mean_squared_error(y_true, y_pred) tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_MSE}, y_true, y_pred)
#define tg_mean_absolute_error(y_true, y_pred) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_MAE}, y_true, y_pred)
#define tg_huber(y_true, y_pred, ...) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_HUBER, __VA_ARGS__}, y_true, y_pred)
#define tg_binary_crossentropy(y_true, y_pred, ...) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_BINARY_CROSSENTROPY, __VA_ARGS__}, y_true, y_pred)
#define tg_categorical_crossentropy(y_true, y_pred, ...) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY, __VA_ARGS__}, y_true, y_pred)
#define tg_sparse_categorical_crossentropy(y_true, y_pred, ...) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, __VA_ARGS__}, y_true, y_pred)

#define tg_kl_divergence(y_true, y_pred) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_KL_DIVERGENCE}, y_true, y_pred)
#define tg_hinge(y_true, y_pred) tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_HINGE}, y_true, y_pred)
#define tg_squared_hinge(y_true, y_pred) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_SQUARED_HINGE}, y_true, y_pred)
#define tg_log_cosh(y_true, y_pred) tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_LOG_COSH}, y_true, y_pred)
#define tg_poisson(y_true, y_pred)  tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_POISSON}, y_true, y_pred)
#define tg_cosine_similarity(y_true, y_pred) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_COSINE_SIMILARITY}, y_true, y_pred)
#define tg_categorical_focal_crossentropy(y_true, y_pred, ...) \
    tg_loss_values_at(TG_LOC, &(tg_loss){.kind = TG_LOSS_CATEGORICAL_FOCAL_CROSSENTROPY, __VA_ARGS__}, y_true, y_pred)

/* "mean_squared_error", "binary_crossentropy", ... ("none", "custom_loss"). */
const char *tg_loss_name(tg_loss_kind kind);
/* The kind for a Keras name or alias ("mse", "mean_squared_error", "mae", "huber",
 * "binary_crossentropy", "bce", ...), or TG_LOSS_NONE when it is unknown. */
tg_loss_kind tg_loss_kind_from_name(const char *name);

TG_END_DECLS
#endif
