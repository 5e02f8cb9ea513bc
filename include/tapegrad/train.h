/* tapegrad/train.h: compile, fit, evaluate and predict, Keras style.
 *
 *   tg_model *m = tg_sequential(tg_dense(.units = 64, .activation = TG_RELU, .input_dim = 2),
 *                               tg_dense(.units = 1, .activation = TG_SIGMOID));
 *   tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_BINARY_CROSSENTROPY,
 *              .metrics = TG_METRICS(TG_ACCURACY));
 *   tg_history *h = tg_fit(m, x, y, .epochs = 10, .batch_size = 32, .validation_split = 0.1);
 *
 * compile checks that the loss fits the model's output before any step. fit validates
 * all of its input before the first step, so nothing is half-trained silently. The
 * training step is built only on public calls (tg_train_step_default in
 * src/train/fit.c): copy it, change it, and pass yours as .train_step. */
#ifndef TAPEGRAD_TRAIN_H
#define TAPEGRAD_TRAIN_H

#include "distributed.h"
#include "io.h"
#include "losses.h"
#include "metrics.h"
#include "nn.h"
#include "optim.h"

TG_BEGIN_DECLS

/* ---- logs: named values of one step or epoch ----------------------------------------- */
/* Any number of values: the first TG_LOGS_INLINE live in the struct itself, so logs made
 * with {0} (or filled by tg_evaluate) need no freeing until they grow past that; past it
 * they grow on the heap, and tg_logs_free gives that back. Read them as names[i] and
 * values[i] for i < n. Logs that grew are not copied by value (two would free one room). */
#define TG_LOGS_INLINE 64
typedef struct tg_logs {
    int n;
    const char **names; /* of any length; each string lives as long as the program */
    double *values;
    int cap; /* the heap room's entries; 0 while the struct's own room serves */
    const char *inline_names[TG_LOGS_INLINE];
    double inline_values[TG_LOGS_INLINE];
} tg_logs;
/* Sets (or adds) a value; returns 0, or -1 when out of memory. */
int tg_logs_set(tg_logs *logs, const char *name, double value);
/* The value named `name`, or NaN when absent. */
double tg_logs_get(const tg_logs *logs, const char *name);
/* Gives back the room the logs grew into, leaving them empty ({0}); NULL is ignored. */
void tg_logs_free(tg_logs *logs);

/* ---- compile -------------------------------------------------------------------------- */
/* Keras's metrics=['accuracy']: binary, categorical or sparse, chosen from the loss and the
 * output shape at compile time (tg_resolve_accuracy). */
#define TG_ACCURACY ((tg_metric_kind)(TG_METRIC_COUNT + 1))
/* A list of metrics, of any length: TG_METRICS(TG_ACCURACY, TG_METRIC_AUC) points at an
 * array made where it is written, which compile copies. */
typedef struct tg_metric_list {
    int n;
    const tg_metric_kind *kind;
} tg_metric_list;
#define TG_METRICS(...)                                       \
    tg__metric_list((const tg_metric_kind[]){0, __VA_ARGS__}, \
                    (int)(sizeof((const tg_metric_kind[]){0, __VA_ARGS__}) / sizeof(tg_metric_kind)) - 1)
static inline tg_metric_list tg__metric_list(const tg_metric_kind *k, int n)
{
    tg_metric_list l;
    l.n = n;
    l.kind = k + 1;
    return l;
}

typedef struct tg_compile_opts {
    tg_optimizer *optimizer;   /* required. Once compile succeeds, the model owns it and frees
                                     it (with the model, or when compiled again with another);
                                     a failed compile leaves it the caller's. One optimizer per
                                     model: compiling it into a second model is refused */
    tg_loss_kind loss;         /* required */
    bool from_logits;          /* cross-entropies */
    double label_smoothing;    /* binary and categorical cross-entropy */
    double delta;              /* huber; default 1.0 */
    tg_custom_loss_fn loss_fn; /* TG_LOSS_CUSTOM: per-sample values or a scalar, from ops */
    void *loss_user;
    tg_metric_list metrics;
    bool distribute; /* data-parallel over the ranks of an MPI job (distributed.h):
                                     compile calls tg_distributed_init, and fit then
                                     broadcasts rank 0's weights and optimizer state, gives
                                     each rank its shard of every global batch, averages the
                                     gradients over the batch's samples on every rank, logs
                                     the loss and metrics of the whole batch on every rank,
                                     and leaves printing, checkpoints and CSV logs to rank 0;
                                     evaluate, predict and validation shard the rows over
                                     the ranks (every rank calls them). With one process it
                                     changes nothing */
    /* Models of several outputs (tg_functional), Keras's loss=[...], loss_weights=[...],
     * metrics=[[...], ...]: one entry per output, in the model's output order. .loss alone
     * applies to every output. The total loss is the sum of each output's loss times its
     * weight; logs name each output's part "<output>_loss" and its metrics
     * "<output>_<metric>" (the output layer's name), "loss" being the total. */
    const tg_loss *losses; /* in place of .loss */
    int n_losses;
    const double *loss_weights; /* default 1 each */
    int n_loss_weights;
    const tg_metric_list *output_metrics; /* in place of .metrics */
    int n_output_metrics;
} tg_compile_opts;
int tg_compile_at(tg_loc loc, tg_model *m, tg_compile_opts o);
/* Arrays written in the call (.losses = (tg_loss[]){...}) live until compile returns; it
 * copies them. */
#define tg_compile(m, ...) TG__CALL(tg_compile_opts, tg_compile_at(TG_LOC, m, tg__o), .delta = 1.0, __VA_ARGS__)

/* What compile set, for custom training steps. */
tg_optimizer *tg_model_optimizer(const tg_model *m);
/* Whether fit trains m over several ranks: compiled with .distribute in a job of more
 * than one rank. A custom .train_step then averages its gradients itself, with
 * tg_allreduce_gradients(grads, n, .samples = rows of x), as the default step does; every
 * rank must make the same collective calls in the same order, so a step that fails
 * before its average still joins it (.failed), or the program ends the job
 * (tg_distributed_abort). */
bool tg_model_distributed(const tg_model *m);
/* The compiled loss of a batch (a scalar on the tape when one records). */
tg_tensor *tg_model_compute_loss_at(tg_loc loc, tg_model *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                                    const tg_tensor *sample_weight);
#define tg_model_compute_loss(m, y_true, y_pred, sample_weight) \
    tg_model_compute_loss_at(TG_LOC, m, y_true, y_pred, sample_weight)
/* The same for a model of several outputs: y_true[i] against y_pred[i] for each of the n
 * outputs; the total loss, each output's weighted part written to per_output[i] when
 * per_output is not NULL. */
tg_tensor *tg_model_compute_loss_list_at(tg_loc loc, tg_model *m, const tg_tensor *const *y_true,
                                         tg_tensor *const *y_pred, int n, const tg_tensor *sample_weight,
                                         tg_tensor **per_output);
#define tg_model_compute_loss_list(m, y_true, y_pred, n, sample_weight, per_output) \
    tg_model_compute_loss_list_at(TG_LOC, m, y_true, y_pred, n, sample_weight, per_output)
/* Adds a batch of every output to the compiled metrics: the total `loss`, each output's
 * part (per_output, as tg_model_compute_loss_list gave them) and its metrics. */
int tg_model_update_metrics_list(tg_model *m, const tg_tensor *const *y_true, tg_tensor *const *y_pred, int n,
                                 const tg_tensor *sample_weight, tg_tensor *const *per_output, const tg_tensor *loss);
/* Adds a batch to the compiled metrics (and `loss` to the running loss mean). */
int tg_model_update_metrics(tg_model *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                            const tg_tensor *sample_weight, const tg_tensor *loss);
/* The running results: "loss" then each metric by its Keras name. */
void tg_model_metric_logs(const tg_model *m, tg_logs *logs);
void tg_model_reset_metrics(tg_model *m);

/* ---- callbacks ------------------------------------------------------------------------- */
typedef struct tg_callback tg_callback;
/* Each hook may be NULL. A hook returning nonzero stops training after the current batch
 * (Keras's model.stop_training); a negative value is an error, kept in tg_last_error. */
struct tg_callback {
    int (*on_train_begin)(tg_callback *cb, tg_model *m, tg_logs *logs);
    int (*on_train_end)(tg_callback *cb, tg_model *m, tg_logs *logs);
    int (*on_epoch_begin)(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs);
    int (*on_epoch_end)(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs);
    int (*on_batch_begin)(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs);
    int (*on_batch_end)(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs);
    void (*free)(tg_callback *cb); /* for callbacks made by tapegrad; NULL for yours */
    void *user;
};
/* Frees a callback made by tapegrad (one of yours: its .free hook, when set). Freeing a
 * tapegrad callback twice, or passing it to fit after, is an error, never a crash. */
void tg_callback_free_at(tg_loc loc, tg_callback *cb);
#define tg_callback_free(cb) tg_callback_free_at(TG_LOC, cb)

typedef enum tg_monitor_mode { TG_MODE_AUTO = 0, TG_MODE_MIN, TG_MODE_MAX } tg_monitor_mode;

typedef struct tg_early_stopping_opts {
    const char *monitor; /* default "val_loss" */
    double min_delta;
    int patience;
    tg_monitor_mode mode; /* auto: max for names with "acc", else min */
    bool restore_best_weights;
    int start_from_epoch;
} tg_early_stopping_opts;
tg_callback *tg_early_stopping_at(tg_loc loc, tg_early_stopping_opts o);
#define tg_early_stopping(...) \
    tg_early_stopping_at(TG_LOC, TG__OPTS(tg_early_stopping_opts, .monitor = "val_loss", __VA_ARGS__))
/* The epoch at which the last early stop happened (0 when it did not stop). */
int tg_early_stopping_stopped_epoch(const tg_callback *cb);

typedef struct tg_csv_logger_opts {
    const char *filename; /* required */
    char separator;       /* default ',' */
    bool append;
} tg_csv_logger_opts;
tg_callback *tg_csv_logger_at(tg_loc loc, tg_csv_logger_opts o);
#define tg_csv_logger(...) tg_csv_logger_at(TG_LOC, TG__OPTS(tg_csv_logger_opts, .separator = ',', __VA_ARGS__))

/* Keras's ReduceLROnPlateau: after `patience` epochs whose `monitor` did not improve by
 * more than min_delta, lr = max(lr * factor, min_lr), then `cooldown` epochs without
 * counting; it logs "learning_rate" each epoch. Refused for an optimizer with a schedule. */
typedef struct tg_reduce_lr_on_plateau_opts {
    const char *monitor;  /* default "val_loss" */
    double factor;        /* default 0.1, < 1 */
    int patience;         /* default 10 */
    tg_monitor_mode mode; /* auto: max for accuracy, AUC, precision, recall, F1 and IoU */
    double min_delta;     /* default 1e-4 */
    int cooldown;         /* default 0 */
    double min_lr;        /* default 0 */
} tg_reduce_lr_on_plateau_opts;
tg_callback *tg_reduce_lr_on_plateau_at(tg_loc loc, tg_reduce_lr_on_plateau_opts o);
#define tg_reduce_lr_on_plateau(...)                                                                                \
    tg_reduce_lr_on_plateau_at(TG_LOC, TG__OPTS(tg_reduce_lr_on_plateau_opts, .monitor = "val_loss", .factor = 0.1, \
                                                .patience = 10, .min_delta = 1e-4, __VA_ARGS__))

/* Keras's TerminateOnNaN: stops training after a batch whose "loss" is NaN or Inf, saying
 * so on stderr; with raise_error, fit fails with that message instead. */
typedef struct tg_terminate_on_nan_opts {
    bool raise_error;
} tg_terminate_on_nan_opts;
tg_callback *tg_terminate_on_nan_at(tg_loc loc, tg_terminate_on_nan_opts o);
#define tg_terminate_on_nan(...) tg_terminate_on_nan_at(TG_LOC, TG__OPTS(tg_terminate_on_nan_opts, __VA_ARGS__))

/* schedule(epoch, current learning rate, user) -> the learning rate for that epoch. */
typedef double (*tg_lr_schedule_fn)(int epoch, double lr, void *user);
tg_callback *tg_learning_rate_scheduler_at(tg_loc loc, tg_lr_schedule_fn schedule, void *user);
#define tg_learning_rate_scheduler(schedule, user) tg_learning_rate_scheduler_at(TG_LOC, schedule, user)

/* ---- fit ------------------------------------------------------------------------------ */
typedef struct tg_history tg_history;

/* One training step on a batch: run a tape and the optimizer, then fill `logs` (usually
 * tg_model_metric_logs). Returns 0, or -1 with an error to stop fit.
 *
 * The contract fit keeps with a step (tg_train_step_default or yours, .train_step):
 * - x is one batch of the model's input, [B, ...] with B <= batch_size (the last batch of
 *   an epoch may be smaller; with .shard, this process's part of the global batch, and
 *   with a distributed compile possibly no rows at all, tg_model_distributed), rows
 *   in the epoch's shuffled order; y is the same rows of the labels; sample_weight is
 *   NULL or their [B] weights (sample_weight times class_weight), float.
 * - x, y and sample_weight are read-only and live in a scope fit opens for this step
 *   alone: they, and every tensor the step makes, end when the step returns. Their data
 *   is a buffer fit reuses for the next batch, so keep values (tg_copy_out), never the
 *   tensors or their data.
 * - The step runs with no tape recording around it, inside tg_fit's call (errors name
 *   the user's tg_fit line). It updates the model's weights (usually through the compiled
 *   optimizer) and the compiled metrics, and leaves what it logs in `logs`.
 * - `user` is fit's .user. The step must not change the data fit reads (x, y, the data
 *   set) nor free the model.
 * This signature is the one of one input and one output; a model of several inputs or
 * outputs trains with a step of lists (tg_train_step_list_fn), under the same contract. */
typedef int (*tg_train_step_fn)(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sample_weight,
                                tg_logs *logs, void *user);
/* Keras's train_step: forward and loss on a tape, gradients of the trainable variables,
 * apply_gradients, metrics. */
int tg_train_step_default(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sample_weight,
                          tg_logs *logs, void *user);
/* A step on lists: xs[0..n_inputs) one batch per model input, ys[0..n_outputs) the same
 * rows of each output's labels (sample_weight as above, for every output). */
typedef int (*tg_train_step_list_fn)(tg_model *m, tg_tensor *const *xs, int n_inputs, tg_tensor *const *ys,
                                     int n_outputs, const tg_tensor *sample_weight, tg_logs *logs, void *user);
/* The default step on lists: tg_model_call_list, tg_model_compute_loss_list (each output's
 * loss times its weight, summed), gradients, apply_gradients, tg_model_update_metrics_list.
 * It averages nothing over ranks (a distributed compile takes models of one output, whose
 * default step does). */
int tg_train_step_list_default(tg_model *m, tg_tensor *const *xs, int n_inputs, tg_tensor *const *ys, int n_outputs,
                               const tg_tensor *sample_weight, tg_logs *logs, void *user);

typedef enum tg_verbose { TG_VERBOSE_AUTO = 0, TG_VERBOSE_SILENT, TG_VERBOSE_BAR, TG_VERBOSE_EPOCH } tg_verbose;

/* This process's part of every global batch, for data-parallel training: of a global
 * batch of B rows, shard `rank` of `count` gets rows [B * rank / count, B * (rank + 1) /
 * count) of it, so the shards' parts are disjoint and together the global batch. The
 * order, steps and position are the global ones: every process shuffles alike. count 0
 * or 1: no sharding. Validation is not sharded (under .distribute it is: by rank). */
typedef struct tg_fit_shard {
    int rank, count;
} tg_fit_shard;

/* The data, given one way: tensors x and y (the arguments), lists of them (.inputs and
 * .targets, x and y NULL) or a data set (.dataset, x and y NULL). fit, evaluate and
 * predict read it in place: a validation_split is a view of its last rows, and each batch
 * is gathered into a buffer reused by every step, so nothing of the size of the data is
 * copied. The data must not change until the call returns. */
typedef struct tg_fit_opts {
    int epochs;              /* default 1 */
    int64_t batch_size;      /* default 32 */
    double validation_split; /* the last fraction of x and y, before shuffling */
    const tg_tensor *validation_x, *validation_y;
    const tg_dataset *validation_dataset; /* validation rows and labels from a data set */
    bool shuffle;                         /* default true */
    uint64_t seed;                        /* for shuffling */
    int initial_epoch;
    int64_t initial_step;           /* resume inside initial_epoch: skip its first steps (the
                                     order is the same; tg_model_get_fit_position) */
    const tg_tensor *sample_weight; /* [N], finite (NaN or Inf is refused, as in x) */
    const double *class_weight;     /* [number of classes], finite */
    int n_class_weight;             /* 0 when class_weight is NULL */
    tg_verbose verbose;             /* auto: a bar on a terminal, a line per epoch otherwise */
    FILE *out;                      /* default stdout */
    tg_callback *const *callbacks;
    int n_callbacks;
    tg_train_step_fn train_step;           /* default tg_train_step_default */
    tg_train_step_list_fn train_step_list; /* any model, its data as lists (default for a model
                                              of several inputs or outputs:
                                              tg_train_step_list_default) */
    void *user;
    bool check_numerics;            /* stop at the first NaN or Inf, forward, backward or in an
                                     update, naming the op, layer or variable, and its line
                                     (TG_CHECK_NUMERICS for the whole fit) */
    const tg_dataset *dataset;      /* the features and labels of a data set, in place of x, y;
                                     its own batch size, order and cursor are not used */
    const tg_tensor *const *inputs; /* one tensor per model input, in place of x */
    int n_inputs;
    const tg_tensor *const *targets; /* one tensor per model output, in place of y */
    int n_targets;
    /* Validation data of a model of several inputs or outputs, as Keras's
     * validation_data=([x1, x2], [y1, y2]): one tensor per input and one per output. */
    const tg_tensor *const *validation_inputs;
    int n_validation_inputs;
    const tg_tensor *const *validation_targets;
    int n_validation_targets;
    tg_fit_shard shard; /* this process's part of each batch */
    bool run_eagerly;   /* Keras's run_eagerly: the step runs as C every time; by default it
                           is a tg_function, traced once per batch shape and replayed (a step
                           that reads values or draws random numbers in C runs eagerly, with a
                           one-time note naming the line) */
} tg_fit_opts;
tg_history *tg_fit_at(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_fit_opts o);
/* Arrays written in the call, such as `.callbacks = (tg_callback *[]){es, log}`, live
 * until fit returns. */
#define tg_fit(m, x, y, ...)                                                                                 \
    TG__CALL(tg_fit_opts, tg_fit_at(TG_LOC, m, x, y, tg__o), .epochs = 1, .batch_size = 32, .shuffle = true, \
             __VA_ARGS__)

/* Where fit left off, so that a checkpoint can resume mid-epoch: the epoch and step of the
 * next batch (0-based, fit's initial_epoch and initial_step) and the shuffle seed. After
 * each step fit sets {epoch, step + 1, seed} (before the batch-end callbacks run, so a
 * checkpoint saved there resumes after that step), and {epoch + 1, 0, seed} once every
 * step of an epoch ran (before the epoch-end callbacks). tg_model_save stores it in the
 * file's metadata (tapegrad_epoch, tapegrad_step, tapegrad_seed) and tg_model_load
 * restores it: a fresh model loaded from the file and fit with .initial_epoch = epoch,
 * .initial_step = step, .seed = seed (same data, batch size and shard) sees exactly the
 * batches the uninterrupted run would have seen, and ends with the same weights when the
 * model has no state outside the file (Dropout's generator is not saved). The metrics of
 * a resumed epoch cover its remaining steps only. */
typedef struct tg_model_fit_position {
    int epoch;
    int64_t step;
    uint64_t seed;
} tg_model_fit_position;
/* Returns 1 with *pos set, 0 (and zeros) when the model never trained nor loaded a
 * position, -1 with an error for a NULL or freed model or a NULL pos. */
int tg_model_get_fit_position_at(tg_loc loc, const tg_model *m, tg_model_fit_position *pos);
#define tg_model_get_fit_position(m, pos) tg_model_get_fit_position_at(TG_LOC, m, pos)

/* Every logged value per epoch: "loss", metrics, "val_loss", "val_..." and "lr". */
int tg_history_epochs(const tg_history *h);
int tg_history_n_keys(const tg_history *h);
const char *tg_history_key(const tg_history *h, int i);
/* The values of `key`, one per epoch (NULL when absent); *n gets the count. */
const double *tg_history_get(const tg_history *h, const char *key, int *n);
void tg_history_free(tg_history *h);

/* ---- checkpoints ------------------------------------------------------------------------- */
/* Keras's model.save: every variable of the model (Keras names) and, when it is compiled
 * and has stepped, the optimizer's state ("optimizer/<slot>/<variable>") and iteration
 * count, in one safetensors file, atomically; its __metadata__ also holds the
 * architecture and the compile as Keras's get_config JSON ("tapegrad_model", format
 * "tapegrad_format_version" 1; docs/keras.md), which tg_model_load_file rebuilds the model
 * from. `metadata_json` is NULL or a JSON object of string values, stored beside them (of
 * any size). Returns 0 or -1. */
int tg_model_save_at(tg_loc loc, tg_model *m, const char *path, const char *metadata_json);
#define tg_model_save(m, path, metadata_json) tg_model_save_at(TG_LOC, m, path, metadata_json)
/* Loads what tg_model_save wrote into a model of the same architecture (built first for
 * the file's input shape when it is not built); the optimizer state too when the model is
 * compiled and the file has it. A file whose architecture differs from the model's is
 * refused, naming the first difference (the layer, the option, both values); nothing is
 * changed when anything differs. Returns 0 or -1. */
int tg_model_load_at(tg_loc loc, tg_model *m, const char *path);
#define tg_model_load(m, path) tg_model_load_at(TG_LOC, m, path)
/* The same from a file already open (tg_safetensors_open), whose metadata the caller has
 * read: everything comes through its one descriptor, so a save by another process in
 * between cannot mix two files. tg_model_load is this on a file it opens once. */
int tg_model_load_from_at(tg_loc loc, tg_model *m, const tg_safetensors *st);
#define tg_model_load_from(m, st) tg_model_load_from_at(TG_LOC, m, st)

/* Keras's keras.models.load_model: the model a file of tg_model_save describes, rebuilt
 * from its architecture (Sequential or functional, any built-in layer, wrappers included;
 * custom layers by their registered class name), with its weights, compiled as it was
 * saved (the optimizer with its hyper-parameters, schedule, state and iteration count;
 * losses, loss weights, metrics) and where fit left off: ready to predict or to train on.
 * Files the tapegrad command wrote before architectures were stored (metadata "model":
 * "mlp:512,256", ...) are rebuilt as the command built them. A file with weights only is
 * refused (build the model and use tg_model_load). The model is the caller's to free;
 * NULL with an error naming the file and what is wrong (the layer and the option). */
tg_model *tg_model_load_file_at(tg_loc loc, const char *path);
#define tg_model_load_file(path) tg_model_load_file_at(TG_LOC, path)
/* The same from a file already open (its one descriptor, as tg_model_load_from). */
tg_model *tg_model_load_file_from_at(tg_loc loc, const tg_safetensors *st);
#define tg_model_load_file_from(st) tg_model_load_file_from_at(TG_LOC, st)

/* Keras's model.to_json(): the architecture and the compile as tg_model_save stores them
 * ({"class_name": "Sequential" or "Functional", "config", "build_config",
 * "compile_config"}); malloc'd (free it), or NULL with an error (a layer whose class has no
 * get_config). */
char *tg_model_to_json_at(tg_loc loc, const tg_model *m);
#define tg_model_to_json(m) tg_model_to_json_at(TG_LOC, m)
/* Keras's keras.models.model_from_json(): a new model of that architecture, with fresh
 * weights (seeded as the JSON's seeds say) and compiled when the JSON has a compile_config
 * (the optimizer fresh too). NULL with an error naming the layer and the option. */
tg_model *tg_model_from_json_at(tg_loc loc, const char *json);
#define tg_model_from_json(json) tg_model_from_json_at(TG_LOC, json)

typedef struct tg_model_checkpoint_opts {
    const char *filepath; /* required */
    const char *monitor;  /* default "val_loss" */
    bool save_best_only;
    tg_monitor_mode mode;
    const char *metadata_json; /* stored in every file written */
} tg_model_checkpoint_opts;
/* Keras's ModelCheckpoint: saves with tg_model_save at each epoch end (only on
 * improvement of `monitor` with save_best_only); the file also records the epoch. */
tg_callback *tg_model_checkpoint_at(tg_loc loc, tg_model_checkpoint_opts o);
#define tg_model_checkpoint(...) \
    tg_model_checkpoint_at(TG_LOC, TG__OPTS(tg_model_checkpoint_opts, .monitor = "val_loss", __VA_ARGS__))

/* Keras's BackupAndRestore: saves the model with tg_model_save into
 * "<backup_dir>/model.safetensors" (the folder made when missing) at each epoch end, or
 * every save_freq batches; the file is a --resume file: weights, optimizer state and the
 * fit position. At train begin, when the file exists, it is loaded (tg_model_load) and the
 * fit goes on from its position, as a fit given .initial_epoch, .initial_step and .seed
 * from it does: an interrupted fit (a crash, a callback's error) run again with the same
 * callback ends with the uninterrupted run's weights. At a successful end the file is
 * deleted, and the folder when that leaves it empty (delete_checkpoint). */
typedef struct tg_backup_and_restore_opts {
    const char *backup_dir; /* required */
    int64_t save_freq;      /* 0: "epoch" (the default); n > 0: every n batches */
    bool delete_checkpoint; /* default true */
} tg_backup_and_restore_opts;
tg_callback *tg_backup_and_restore_at(tg_loc loc, tg_backup_and_restore_opts o);
#define tg_backup_and_restore(...) \
    tg_backup_and_restore_at(TG_LOC, TG__OPTS(tg_backup_and_restore_opts, .delete_checkpoint = true, __VA_ARGS__))

/* ---- evaluate and predict ------------------------------------------------------------------ */
typedef struct tg_evaluate_opts {
    int64_t batch_size; /* default 32 */
    const tg_tensor *sample_weight;
    tg_verbose verbose; /* default silent */
    FILE *out;
    const tg_dataset *dataset;      /* in place of x and y, read in place */
    const tg_tensor *const *inputs; /* in place of x: one per model input */
    int n_inputs;
    const tg_tensor *const *targets; /* in place of y: one per model output */
    int n_targets;
    bool run_eagerly; /* Keras's run_eagerly: each batch runs as C; by default a traced function */
} tg_evaluate_opts;
/* Loss and metrics over (x, y) into *logs (written anew: logs that grew past
 * TG_LOGS_INLINE values are given back with tg_logs_free before they are reused), read in
 * place batch by batch (fit's data contract, above). A model compiled with .distribute in a job of several ranks: a
 * collective; each rank evaluates its shard of the rows and every rank gets the numbers
 * of all of them (docs/distributed.md). Returns 0 or -1. */
int tg_evaluate_at(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_logs *logs, tg_evaluate_opts o);
#define tg_evaluate(m, x, y, logs, ...)                                                        \
    TG__CALL(tg_evaluate_opts, tg_evaluate_at(TG_LOC, m, x, y, logs, tg__o), .batch_size = 32, \
             .verbose = TG_VERBOSE_SILENT, __VA_ARGS__)

typedef struct tg_predict_opts {
    int64_t batch_size;             /* default 32 */
    const tg_dataset *dataset;      /* its features in place of x (x NULL) */
    const tg_tensor *const *inputs; /* in place of x: one per model input */
    int n_inputs;
    tg_tensor **outputs; /* a model of several outputs: room for one per output, filled */
    int n_outputs;
    bool run_eagerly; /* Keras's run_eagerly: each batch runs as C; by default a traced function */
} tg_predict_opts;
/* The model's outputs for every row of x, batch by batch, in the innermost scope (the
 * first output; every one in .outputs for a model of several). With .distribute over
 * several ranks: a collective; each rank predicts its shard and every rank returns all
 * the rows, in order. */
tg_tensor *tg_predict_at(tg_loc loc, tg_model *m, const tg_tensor *x, tg_predict_opts o);
#define tg_predict(m, x, ...) \
    TG__CALL(tg_predict_opts, tg_predict_at(TG_LOC, m, x, tg__o), .batch_size = 32, __VA_ARGS__)

TG_END_DECLS
#endif
