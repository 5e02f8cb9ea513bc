/* Internal view of the training layer. */
#ifndef TG_TRAIN_IMPL_H
#define TG_TRAIN_IMPL_H

#include "../nn/layer_impl.h" /* tg__model_attach: the model keeps this layer's state */
#include "tapegrad/train.h"

/* What compile keeps for each output of a model of several. */
typedef struct tg__output_compile {
    tg_loss loss;
    double weight;
    tg_metric_list requested; /* its kinds copied: the compile owns them */
    tg_metric *loss_mean;     /* "<output>_loss" */
    tg_metric **metrics;      /* requested.n of them, once resolved */
    int n_metrics;
} tg__output_compile;

/* What tg_compile attaches to a model. */
typedef struct tg_compiled {
    tg_optimizer *optimizer; /* owned: freed with the compile */
    const tg_model *model;   /* the optimizer's owner */
    tg_loss loss;
    tg_metric_list requested; /* its kinds copied: the compile owns them */
    tg_metric *loss_mean;     /* the running "loss" */
    tg_metric **metrics;      /* resolved once the output shape is known */
    int n_metrics;
    bool resolved;   /* metrics resolved and the loss checked */
    bool distribute; /* .distribute: data-parallel when there are ranks */
    tg_loc loc;      /* the user's compile line */
    double weight;   /* a model of one output: its loss weight (1: not applied) */
    int n_outputs;   /* > 1: a model of several outputs, each with its own in `outputs` */
    tg__output_compile *outputs;
    double window_samples; /* distributed with gradient accumulation: rows since the last update */
} tg_compiled;

/* Distributed with gradient accumulation: the gradients stay on each rank between the
 * optimizer's updates, which average the accumulated sums over the ranks (weighed by the
 * rows each saw); every step the ranks only agree that none failed. */
bool tg__accumulates_locally(const tg_model *m);
/* That agreement, after this rank's step (`failed`): -1 on every rank if one failed; on
 * success this step's `rows` join the window's. In a traced step, recorded: every replay
 * agrees and counts. */
int tg__agree_step(tg_loc loc, tg_model *m, bool failed, double rows);

tg_compiled *tg__compiled(const tg_model *m);
/* False on the ranks other than 0 of a distributed fit: they train but do not write
 * (checkpoints, CSV logs); true everywhere else. */
bool tg__writes_files(const tg_model *m);
/* Replaces the loss and metric values in logs by those of every rank's samples together
 * (one allreduce of each metric's total and count), when m trains distributed. */
int tg__reduce_metric_logs(tg_loc loc, tg_model *m, tg_logs *logs);
/* The same for `func` (evaluate, validation), where a rank that failed (`failed`) still
 * joins: every rank then returns -1, the others with an error naming it. */
int tg__reduce_metrics(tg_loc loc, tg_model *m, const char *func, bool failed, tg_logs *logs);

/* A freed tapegrad callback keeps its struct (never reused) with a mark, so a stale
 * handle is refused: tg__callback_retire in each callback's free hook. */
void tg__callback_retire(tg_callback *cb);
bool tg__callback_freed(const tg_callback *cb);
/* Resolves TG_ACCURACY and checks that the loss fits the output, once the model is built.
 * Returns false with an error. */
bool tg__resolve_compiled(tg_loc loc, tg_model *m);
/* Checks labels against the loss and the output width before any step (output i of a
 * model of several outputs). */
bool tg__check_labels(tg_loc loc, tg_model *m, const tg_tensor *y, const char *what);
bool tg__check_output_labels(tg_loc loc, tg_model *m, int i, const tg_tensor *y, const char *what);

/* The model's input shape for one example, and its output width (last dim). */
tg_shape tg__model_output_shape(tg_model *m);

/* ---- whole-model files (model_file.c) ---------------------------------------------------- */
/* `meta` (a JSON object of strings) with the model's architecture and compile added
 * (tapegrad_model, tapegrad_format_version); malloc'd, or NULL with an error. A model with
 * a layer that cannot be saved keeps its weights only, with a warning. */
char *tg__model_file_metadata(tg_loc loc, const tg_model *m, const char *meta);
/* Before weights are loaded into m from st: an unbuilt m is built for the file's input
 * shape, and a file with an architecture must describe m's (else -1 naming the first
 * difference). */
int tg__model_file_prepare(tg_loc loc, tg_model *m, const tg_safetensors *st);

/* ---- progress ------------------------------------------------------------------------ */
typedef struct tg_progress {
    FILE *out;
    tg_verbose mode; /* TG_VERBOSE_BAR, TG_VERBOSE_EPOCH or TG_VERBOSE_SILENT */
    int64_t target;  /* steps in the epoch */
    double start, last_update;
} tg_progress;
void tg__progress_begin(tg_progress *p, FILE *out, tg_verbose mode, int64_t target);
void tg__progress_epoch_header(tg_progress *p, int epoch, int epochs);
void tg__progress_update(tg_progress *p, int64_t step, const tg_logs *logs);
void tg__progress_end(tg_progress *p, const tg_logs *logs);
double tg__now(void);

/* ---- history ----------------------------------------------------------------------------- */
tg_history *tg__history_new(void);
bool tg__history_append(tg_history *h, const tg_logs *logs);

/* ---- weights, for restore_best_weights ------------------------------------------------------ */
typedef struct tg_weights tg_weights;
tg_weights *tg__weights_save(tg_model *m);
int tg__weights_restore(tg_model *m, const tg_weights *w);
void tg__weights_free(tg_weights *w);

#endif
