/* fit, evaluate and predict.
 *
 * fit checks everything it is given before the first step, then runs epochs of
 * shuffled batches through a training step (tg_train_step_default unless the user gives
 * one), each batch in its own scope, so memory stays flat however long it trains.
 *
 * The data (tensors, lists of them or a data set) is read in place: a data set through
 * headers over its rows, a validation split as headers over the last rows, and each
 * batch gathered into a buffer made once per call and reused by every step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../dist/dist_impl.h"
#include "../tensor/tensor_impl.h"
#include "tapegrad/function.h" /* the step in graph mode */
#include "train_impl.h"

/* ---- the default training step: only public calls ----------------------------------------- */
/* A distributed step on a rank whose shard of the batch is empty (a last batch with fewer
 * rows than ranks): it joins the average with zero gradients and no samples. */
static int empty_shard_step(tg_model *m, tg_tensor *const *vars, int n, tg_logs *logs)
{
    int rc = 0;
    tg_tensor **grads = n > 0 ? tg__arena_alloc(tg__ctx()->scope, sizeof *grads * (size_t)n) : NULL;
    if (n > 0 && !grads)
        return -1;
    for (int i = 0; i < n && rc == 0; i++)
        rc = (grads[i] = tg_zeros_like(vars[i])) ? 0 : -1;
    if (tg__accumulates_locally(m)) { /* no rows to add; the update averages with the others */
        int agreed = tg__agree_step((tg_loc){0}, m, rc != 0, 0);
        rc = rc ? rc : agreed;
    } else if (n > 0) {
        int joined = tg_allreduce_gradients(grads, n, .samples = 0, .failed = rc != 0);
        rc = rc ? rc : joined;
    }
    if (rc == 0 && n > 0)
        rc = tg_apply_gradients(tg_model_optimizer(m), grads, vars, n);
    if (rc == 0)
        tg_model_metric_logs(m, logs);
    return rc;
}

int tg_train_step_default(tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_tensor *sample_weight,
                          tg_logs *logs, void *user)
{
    (void)user;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    if (!vars) /* out of memory (no trainable variables is an empty list) */
        return -1;
    bool distributed = tg_model_distributed(m);
    if (distributed && tg_dim(x, 0) == 0)
        return empty_shard_step(m, vars, n, logs);
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y_pred = tg_model_call(m, x, .training = true);
    tg_tensor *loss = tg_model_compute_loss(m, y, y_pred, sample_weight);
    tg_tape_end(tape);
    int rc = loss ? 0 : -1;
    tg_tensor **grads = NULL;
    if (rc == 0 && n > 0)
        grads = tg__arena_alloc(tg__ctx()->scope, sizeof *grads * (size_t)n); /* the step's scope */
    /* Over several ranks: the gradient of the whole global batch, each rank's weighed by
     * its rows, averaged in buckets during the backward pass; a rank that failed before
     * still joins, so that every rank stops. */
    bool local = tg__accumulates_locally(m); /* gradient accumulation: averaged at its updates */
    if (grads)
        rc = tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads,
                          .allreduce = distributed && !local, .samples = (double)tg_dim(x, 0));
    else if (n > 0 && distributed && !local)
        rc = tg_allreduce_gradients(NULL, n, .failed = true);
    else if (n > 0)
        rc = -1;
    if (local) {
        int agreed = tg__agree_step((tg_loc){0}, m, rc != 0, (double)tg_dim(x, 0));
        rc = rc ? rc : agreed;
    }
    /* Freed before the update: the tape's reads of the variables need not keep their old
     * values then (tape.c), which saves a copy of every variable per step. */
    tg_tape_free(tape);
    if (rc == 0 && n > 0)
        rc = tg_apply_gradients(tg_model_optimizer(m), grads, vars, n);
    if (rc == 0)
        rc = tg_model_update_metrics(m, y, y_pred, sample_weight, loss);
    if (rc == 0)
        tg_model_metric_logs(m, logs);
    return rc;
}

/* The default step on lists (a model of several inputs or outputs): the same as
 * tg_train_step_default, each output's loss weighted and summed. */
int tg_train_step_list_default(tg_model *m, tg_tensor *const *xs, int nx, tg_tensor *const *ys, int ny,
                               const tg_tensor *sample_weight, tg_logs *logs, void *user)
{
    (void)user;
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_scope *scope = tg__ctx()->scope;
    tg_tensor **pred = tg__arena_alloc(scope, sizeof *pred * (size_t)ny);
    tg_tensor **parts = tg__arena_alloc(scope, sizeof *parts * (size_t)ny);
    if (!vars || !pred || !parts)
        return -1;
    tg_tape *tape = tg_tape_begin();
    int rc = tg_model_call_list(m, (const tg_tensor *const *)xs, nx, pred, ny, .training = true);
    tg_tensor *loss =
        rc == 0 ? tg_model_compute_loss_list(m, (const tg_tensor *const *)ys, pred, ny, sample_weight, parts) : NULL;
    tg_tape_end(tape);
    rc = loss ? 0 : -1;
    tg_tensor **grads = NULL;
    if (rc == 0 && n > 0) {
        grads = tg__arena_alloc(scope, sizeof *grads * (size_t)n);
        rc = grads ? tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads)
                   : -1;
    }
    tg_tape_free(tape);
    if (rc == 0 && n > 0)
        rc = tg_apply_gradients(tg_model_optimizer(m), grads, vars, n);
    if (rc == 0)
        rc = tg_model_update_metrics_list(m, (const tg_tensor *const *)ys, pred, ny, sample_weight, parts, loss);
    if (rc == 0)
        tg_model_metric_logs(m, logs);
    return rc;
}

static tg_tensor *row_range(tg_loc loc, const tg_tensor *t, int64_t from, int64_t to);

/* ---- argument checks --------------------------------------------------------------------------- */
static bool check_model(tg_loc loc, const char *func, tg_model *m, bool need_compiled)
{
    if (!m)
        return tg__failb(loc, "%s: `model` is NULL", func);
    if (need_compiled && !tg__compiled(m))
        return tg__failb(loc,
                         "%s: No loss to compute. Provide a `loss` argument in `compile()`: call tg_compile "
                         "before training",
                         func);
    return true;
}

/* x is [N, ...] matching the model's input; y (when given) has N rows. Builds the model. */
static bool check_data(tg_loc loc, const char *func, tg_model *m, const tg_tensor *x, const tg_tensor *y,
                       const char *xname, const char *yname)
{
    if (!tg__check_input(loc, func, x, xname) || (y && !tg__check_input(loc, func, y, yname)))
        return false;
    if (x->rank < 1)
        return tg__failb(loc, "%s: `%s` must have a batch axis (shape (N, ...)), got a scalar", func, xname);
    if (y && (y->rank < 1 || y->shape[0] != x->shape[0]))
        return tg__failb(loc, "%s: `%s` has %lld rows but `%s` has %lld: they must have one row per sample", func,
                         xname, (long long)x->shape[0], yname, y->rank ? (long long)y->shape[0] : 0LL);
    tg_shape one = {.rank = x->rank - 1};
    memcpy(one.dims, x->shape + 1, sizeof(int64_t) * (size_t)one.rank);
    if (!tg_model_built(m) && tg_model_build_at(loc, m, one) != 0)
        return false;
    if (x->shape[0] == 0)
        return true;
    /* One row through the model: a wrong input width fails here, before any step. */
    tg_scope *s = tg_scope_begin_at(loc);
    if (!s)
        return false;
    tg_tensor *first = row_range(loc, x, 0, 1);
    bool ok = first && tg_model_call_at(loc, m, first, (tg_model_call_opts){.training = false}) != NULL;
    tg_scope_end_at(loc, s);
    return ok;
}

static bool check_finite(tg_loc loc, const char *func, const tg_tensor *x, const char *name)
{
    int64_t i = tg__first_nonfinite(x);
    if (i < 0)
        return true;
    int64_t per = x->size / x->shape[0]; /* x has a row per sample: i is inside one */
    return tg__failb(loc,
                     "%s: `%s` holds %g at row %lld, column %lld: clean or impute the data first "
                     "(a NaN or Inf input makes every weight NaN after one step)",
                     func, name, tg__get(x, i), (long long)(i / per), (long long)(i % per));
}

/* ---- the data: tensors, lists of them or a data set ------------------------------------------ */

typedef struct data_args {
    const tg_tensor *x, *y; /* the positional arguments */
    const tg_dataset *ds;
    const tg_tensor *const *inputs, *const *targets;
    int n_inputs, n_targets;
} data_args;

/* The data of a model of several inputs or outputs: one tensor per input and per output
 * (the caller's lists). */
typedef struct io_lists {
    int nx, ny;
    const tg_tensor *const *x, *const *y;
} io_lists;

/* n pointers in the innermost scope (a batch's lists live as long as the batch). */
static void *scratch_list(int n) { return tg__arena_alloc(tg__ctx()->scope, sizeof(void *) * (size_t)(n > 0 ? n : 1)); }

static bool several_io(const tg_model *m) { return tg_model_n_inputs(m) > 1 || tg_model_n_outputs(m) > 1; }

/* The lists for a model of several inputs or outputs (`y` false: no labels wanted). */
static bool resolve_lists(tg_loc loc, const char *func, tg_model *m, const data_args *a, bool y, io_lists *io)
{
    int ni = tg_model_n_inputs(m), no = tg_model_n_outputs(m);
    if (a->x || a->y || a->ds)
        return tg__failb(loc,
                         "%s: model \"%s\" has %d inputs and %d outputs: give its data as lists, .inputs (one "
                         "tensor per input) and .targets (one per output), with x and y NULL",
                         func, tg_model_name(m), ni, no);
    if (a->n_inputs != ni || !a->inputs || (y && (a->n_targets != no || !a->targets)))
        return tg__failb(loc,
                         "%s: model \"%s\" has %d inputs and %d outputs, but .inputs holds %d tensors and .targets "
                         "%d: give one tensor per input%s",
                         func, tg_model_name(m), ni, no, a->inputs ? a->n_inputs : 0, a->targets ? a->n_targets : 0,
                         y ? " and one per output" : "");
    *io = (io_lists){.nx = ni, .ny = y ? no : 0, .x = a->inputs, .y = a->targets};
    return true;
}

/* Each tensor of the lists has a batch axis and the same rows, and one row goes through
 * the model (a wrong shape fails here, before any step). */
static bool check_lists(tg_loc loc, const char *func, tg_model *m, const io_lists *io)
{
    char name[32];
    for (int i = 0; i < io->nx + io->ny; i++) {
        const tg_tensor *t = i < io->nx ? io->x[i] : io->y[i - io->nx];
        snprintf(name, sizeof name, i < io->nx ? "inputs[%d]" : "targets[%d]", i < io->nx ? i : i - io->nx);
        if (!tg__check_input(loc, func, t, name))
            return false;
        if (t->rank < 1 || t->shape[0] != io->x[0]->shape[0])
            return tg__failb(loc, "%s: `%s` has %lld rows but `inputs[0]` has %lld: they must have one row per sample",
                             func, name, t->rank ? (long long)t->shape[0] : 0LL, (long long)io->x[0]->shape[0]);
    }
    if (io->x[0]->shape[0] == 0)
        return true;
    tg_scope *s = tg_scope_begin_at(loc);
    if (!s)
        return false;
    tg_tensor **rows = scratch_list(io->nx), **out = scratch_list(tg_model_n_outputs(m));
    bool ok = rows && out;
    for (int i = 0; ok && i < io->nx; i++)
        ok = (rows[i] = row_range(loc, io->x[i], 0, 1)) != NULL;
    ok = ok && tg_model_call_list_at(loc, m, (const tg_tensor *const *)rows, io->nx, out, tg_model_n_outputs(m),
                                     (tg_model_call_opts){.training = false}) == 0;
    tg_scope_end_at(loc, s);
    return ok;
}

/* The model's input and labels from what the call was given, one way only; a data set's
 * as headers over its rows in the innermost scope. `y` NULL: no labels wanted. */
static bool resolve_data(tg_loc loc, const char *func, const data_args *a, const tg_tensor **x, const tg_tensor **y)
{
    bool tensors = a->x || a->y, lists = a->inputs || a->n_inputs || a->targets || a->n_targets, ds = a->ds;
    if (tensors + lists + ds > 1)
        return tg__failb(loc,
                         "%s: the data is given twice, %s: give x and y, or .inputs and .targets, or .dataset "
                         "(the others NULL)",
                         func,
                         tensors && ds ? "as tensors and as a data set"
                         : tensors     ? "as tensors and as lists (.inputs/.targets)"
                                       : "as lists and as a data set");
    if (a->n_inputs < 0 || a->n_targets < 0 || !a->inputs != !a->n_inputs || !a->targets != !a->n_targets)
        return tg__failb(loc,
                         "%s: give each list with its count: .inputs with .n_inputs >= 1, .targets with "
                         ".n_targets >= 1 (got %d inputs, %d targets)",
                         func, a->n_inputs, a->n_targets);
    if (a->n_inputs > 1)
        return tg__failb(loc,
                         "%s: .inputs holds %d tensors but the model takes 1 input: a Sequential model has "
                         "one input (give it as x, or a list of one)",
                         func, a->n_inputs);
    if (a->n_targets > 1)
        return tg__failb(loc,
                         "%s: .targets holds %d tensors but the model has 1 output: a Sequential model has "
                         "one output (give its labels as y, or a list of one)",
                         func, a->n_targets);
    *x = lists ? (a->n_inputs ? a->inputs[0] : NULL) : a->x;
    if (y)
        *y = lists ? (a->n_targets ? a->targets[0] : NULL) : a->y;
    if (!ds)
        return true;
    if (!(*x = tg_dataset_x_view_at(loc, a->ds)))
        return false;
    if (y && !(*y = tg_dataset_y_view_at(loc, a->ds)))
        return tg__failb(loc,
                         "%s: the data set has no labels: %s compares the predictions with labels (make it "
                         "with tg_dataset_new(x, y))",
                         func, func);
    return true;
}

/* Rows [from, to) of t as a header over t's own data (a validation split): no copy. */
static tg_tensor *view_rows(tg_loc loc, const tg_tensor *t, int64_t from, int64_t to)
{
    tg_shape s = tg_shape_of(t);
    s.dims[0] = to - from;
    size_t row = t->shape[0] ? (size_t)(t->size / t->shape[0]) * tg_dtype_size(t->dtype) : 0;
    return tg__tensor_wrap(loc, t->dtype, &s, (unsigned char *)t->data + (size_t)from * row);
}

/* ---- batches ------------------------------------------------------------------------------------- */
/* Each batch's rows are gathered into a buffer per part (inputs, labels, weights) made
 * once per call and reused by every step, 64-byte aligned as the arena's tensors are, and
 * handed to the step as headers over it in the step's scope: a warm step allocates
 * nothing, and no batch outlives its step. */
typedef struct batcher {
    int n;
    const tg_tensor **src; /* NULL parts are skipped */
    unsigned char **buf;
    size_t *row_bytes;
} batcher;

static void batcher_free(batcher *b)
{
    for (int i = 0; b->buf && i < b->n; i++)
        free(b->buf[i]);
    free(b->src);
    free(b->buf);
    free(b->row_bytes);
    *b = (batcher){0};
}

/* Buffers for batches of up to `rows` rows of each part (rows at most a part's rows, so
 * the sizes are those of data that exists). */
static bool batcher_init(tg_loc loc, const char *func, batcher *b, const tg_tensor *const *src, int n, int64_t rows)
{
    *b = (batcher){.n = n,
                   .src = calloc((size_t)n, sizeof *b->src),
                   .buf = calloc((size_t)n, sizeof *b->buf),
                   .row_bytes = calloc((size_t)n, sizeof *b->row_bytes)};
    if (!b->src || !b->buf || !b->row_bytes) {
        batcher_free(b);
        return tg__failb(loc, "%s: out of memory", func);
    }
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = b->src[i] = src[i];
        if (!t)
            continue;
        int64_t r = t->shape[0] < rows ? t->shape[0] : rows;
        b->row_bytes[i] = t->shape[0] ? (size_t)(t->size / t->shape[0]) * tg_dtype_size(t->dtype) : 0;
        size_t bytes = (size_t)r * b->row_bytes[i];
        if (!(b->buf[i] = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64))) {
            batcher_free(b);
            return tg__failb(loc, "%s: out of memory for a batch of %lld rows", func, (long long)rows);
        }
    }
    return true;
}

/* Rows idx[0..count) of every part (idx NULL: rows first..first+count), gathered into the
 * buffers, as headers in the innermost scope (out[i] NULL for a NULL part). */
static bool batcher_fill(tg_loc loc, batcher *b, const int64_t *idx, int64_t first, int64_t count, tg_tensor **out)
{
    for (int i = 0; i < b->n; i++) {
        out[i] = NULL;
        const tg_tensor *t = b->src[i];
        if (!t)
            continue;
        size_t rb = b->row_bytes[i];
        const unsigned char *data = t->data;
        if (idx)
            for (int64_t k = 0; k < count; k++)
                memcpy(b->buf[i] + (size_t)k * rb, data + (size_t)idx[k] * rb, rb);
        else
            memcpy(b->buf[i], data + (size_t)first * rb, (size_t)count * rb);
        tg_shape s = tg_shape_of(t);
        s.dims[0] = count;
        if (!(out[i] = tg__tensor_wrap(loc, t->dtype, &s, b->buf[i])))
            return false;
    }
    return true;
}

/* Rows [from, to) of t as a new tensor (the one-row probe of check_data). */
static tg_tensor *row_range(tg_loc loc, const tg_tensor *t, int64_t from, int64_t to)
{
    tg_shape begin = {.rank = t->rank}, size = {.rank = t->rank};
    for (int i = 0; i < t->rank; i++)
        size.dims[i] = i ? -1 : to - from;
    begin.dims[0] = from;
    return tg_slice_at(loc, t, begin, size);
}

/* Each epoch's order depends only on (seed, epoch), so a fit resumed at initial_epoch
 * shuffles exactly as the uninterrupted one did. */
static bool shuffle(tg_loc loc, int64_t *idx, int64_t n, uint64_t seed, int epoch)
{
    tg_rng *rng = tg_rng_new(seed ^ ((uint64_t)(epoch + 1) * 0x9E3779B97F4A7C15ull));
    if (!rng) /* not an unshuffled epoch, which would train to other weights silently */
        return tg__failb(loc, "tg_fit: out of memory for the shuffle of epoch %d", epoch + 1);
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(tg_rng_next(rng) % (uint64_t)(i + 1));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    tg_rng_free(rng);
    return true;
}

/* A non-finite weight, like a non-finite input, turns the model NaN while fit goes on. */
#define NONFINITE_WHY "(a NaN or Inf weight makes every model weight NaN after one step)"

static bool check_finite_weights(tg_loc loc, const tg_tensor *w)
{
    int64_t i = tg__first_nonfinite(w);
    return i < 0 ||
           tg__failb(loc, "tg_fit: `sample_weight` holds %g at sample %lld: every weight must be finite " NONFINITE_WHY,
                     tg__get(w, i), (long long)i);
}

/* Per-sample weights from sample_weight and class_weight (NULL when neither is given). */
static tg_tensor *sample_weights(tg_loc loc, const tg_tensor *y, const tg_fit_opts *o, tg_dtype dtype)
{
    if (!o->sample_weight && !o->class_weight)
        return NULL;
    int64_t n = y->shape[0], per = n ? y->size / n : 0;
    double *w = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!w)
        return tg__fail(loc, "tg_fit: out of memory");
    for (int64_t i = 0; i < n; i++) {
        w[i] = o->sample_weight ? tg__get(o->sample_weight, i) : 1.0;
        if (!o->class_weight)
            continue;
        int64_t cls = 0;
        if (per == 1)
            cls = (int64_t)llround(tg__get(y, i));
        else /* one-hot: the class is the largest entry */
            for (int64_t k = 1; k < per; k++)
                if (tg__get(y, i * per + k) > tg__get(y, i * per + cls))
                    cls = k;
        if (cls < 0 || cls >= o->n_class_weight) {
            free(w);
            return tg__fail(loc, "tg_fit: class_weight has %d entries but sample %lld has class %lld",
                            o->n_class_weight, (long long)i, (long long)cls);
        }
        double sw = w[i];
        w[i] *= o->class_weight[cls];
        if (!isfinite(w[i])) {
            free(w);
            return tg__fail(loc,
                            "tg_fit: the weight of sample %lld, sample_weight %g times class_weight[%lld] %g, "
                            "overflows " NONFINITE_WHY,
                            (long long)i, sw, (long long)cls, o->class_weight[cls]);
        }
    }
    tg_tensor *t = tg_tensor_from_at(loc, TG_F64, (tg_shape){.rank = 1, .dims = {n}}, w);
    free(w);
    return t && dtype != TG_F64 ? tg_cast_at(loc, t, dtype) : t;
}

/* ---- callbacks --------------------------------------------------------------------------------- */
/* The optimizer's finalize_variable_values on the trainable variables (with use_ema,
 * their moving averages become the weights), as Keras's fit does before on_train_end. */
static int finalize_variables(tg_loc loc, tg_model *m)
{
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    tg_optimizer *opt = tg_model_optimizer(m);
    return opt ? tg_optimizer_finalize_variable_values_at(loc, opt, vars, n) : 0;
}

typedef enum { TRAIN_BEGIN, TRAIN_END, EPOCH_BEGIN, EPOCH_END, BATCH_BEGIN, BATCH_END } hook;

/* Runs one hook of every callback: 1 to stop, -1 on error, 0 to go on. */
static int run_hooks(const tg_fit_opts *o, hook h, tg_model *m, int64_t i, tg_logs *logs)
{
    int stop = 0;
    for (int k = 0; k < o->n_callbacks; k++) {
        tg_callback *cb = o->callbacks[k];
        int rc = 0;
        switch (h) {
        case TRAIN_BEGIN: rc = cb->on_train_begin ? cb->on_train_begin(cb, m, logs) : 0; break;
        case TRAIN_END: rc = cb->on_train_end ? cb->on_train_end(cb, m, logs) : 0; break;
        case EPOCH_BEGIN: rc = cb->on_epoch_begin ? cb->on_epoch_begin(cb, m, (int)i, logs) : 0; break;
        case EPOCH_END: rc = cb->on_epoch_end ? cb->on_epoch_end(cb, m, (int)i, logs) : 0; break;
        case BATCH_BEGIN: rc = cb->on_batch_begin ? cb->on_batch_begin(cb, m, i, logs) : 0; break;
        case BATCH_END: rc = cb->on_batch_end ? cb->on_batch_end(cb, m, i, logs) : 0; break;
        }
        if (rc < 0)
            return -1;
        stop |= rc > 0;
    }
    return stop;
}

/* ---- evaluate ------------------------------------------------------------------------------------ */
/* Loss and metrics over (x, y) in batches, into logs (names prefixed with `prefix`). */
/* predict and evaluate give values, not recorded tensors (TF gives NumPy arrays): no tape
 * records what they run, and an event lets a diagnosis name the call when those values
 * end up in a loss. */
static int recording_off(void)
{
    int n = tg__ctx()->n_recording;
    tg__ctx()->n_recording = 0;
    return n;
}

/* Under .distribute over several ranks, evaluation and prediction are sharded: of n
 * rows, rank r of N takes [n r / N, (n (r + 1) / N). Otherwise every row. */
static void eval_shard(const tg_model *m, int64_t n, int64_t *lo, int64_t *hi)
{
    *lo = 0;
    *hi = n;
    if (tg_model_distributed(m)) {
        int64_t r = tg_distributed_rank(), ranks = tg_distributed_size();
        *lo = n * r / ranks;
        *hi = n * (r + 1) / ranks;
    }
}

/* One batch of a model of several inputs or outputs: parts are the nx inputs, the ny
 * labels and the weights. */
static bool evaluate_batch_list(tg_loc loc, tg_model *m, tg_tensor *const *part, int nx, int ny)
{
    tg_tensor **pred = scratch_list(ny), **per = scratch_list(ny);
    if (!pred || !per)
        return false;
    if (tg_model_call_list_at(loc, m, (const tg_tensor *const *)part, nx, pred, ny,
                              (tg_model_call_opts){.training = false}) != 0)
        return false;
    const tg_tensor *const *ys = (const tg_tensor *const *)part + nx;
    tg_tensor *loss = tg_model_compute_loss_list_at(loc, m, ys, pred, ny, part[nx + ny], per);
    return loss && tg_model_update_metrics_list(m, ys, pred, ny, part[nx + ny], per, loss) == 0;
}

/* ---- evaluate and predict in graph mode ------------------------------------------------------ */
/* Keras's test_function and predict_function: a batch's forward pass (for evaluate, with
 * its loss and the metrics' update) as a function. Traced abstractly with no tape (evaluate
 * and predict record none), its replays run the forward's kernels with no gradient
 * bookkeeping. A model whose C code reads a value runs eagerly from then on, with the
 * one-time note. Inputs: the nx inputs, the ny labels, then the weights if any. */
typedef struct forward_call {
    tg_loc loc;
    tg_model *m;
    int nx, ny; /* ny 0: predict */
} forward_call;

static bool evaluate_batch_list(tg_loc loc, tg_model *m, tg_tensor *const *part, int nx, int ny);

static int test_step(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    const forward_call *f = user;
    (void)out;
    tg_tensor **part = scratch_list(f->nx + f->ny + 1);
    if (!part)
        return -1;
    memcpy(part, in, sizeof *part * (size_t)n);
    part[f->nx + f->ny] = n > f->nx + f->ny ? in[n - 1] : NULL;
    if (f->nx > 1 || f->ny > 1)
        return evaluate_batch_list(f->loc, f->m, part, f->nx, f->ny) ? 0 : -1;
    tg_tensor *pred = tg_model_call_at(f->loc, f->m, part[0], (tg_model_call_opts){.training = false});
    tg_tensor *loss = tg_model_compute_loss_at(f->loc, f->m, part[1], pred, part[2]);
    return loss && tg_model_update_metrics(f->m, part[1], pred, part[2], loss) == 0 ? 0 : -1;
}

static int predict_step(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    const forward_call *f = user;
    int no = tg_model_n_outputs(f->m);
    if (f->nx == 1 && no == 1)
        return (out[0] = tg_model_call_at(f->loc, f->m, in[0], (tg_model_call_opts){.training = false})) ? 1 : -1;
    return tg_model_call_list_at(f->loc, f->m, (const tg_tensor *const *)in, n, out, no,
                                 (tg_model_call_opts){.training = false}) == 0
               ? no
               : -1;
}

/* The function for f (f->ny labels: evaluate's; none: predict's), or NULL to run eagerly:
 * asked to, or under numerics checks, or more outputs than a function gives. */
static tg_function *forward_function(tg_loc loc, forward_call *f, bool run_eagerly, bool *failed)
{
    *failed = false;
    if (run_eagerly || (tg_get_check() & TG_CHECK_NUMERICS) || tg_model_n_outputs(f->m) > TG_FUNCTION_MAX_OUTPUTS)
        return NULL;
    tg_function *fn =
        tg_function_new_at(loc, f->ny ? test_step : predict_step, f,
                           (tg_function_opts){.name = f->ny ? "test_step" : "predict_step", .eager_fallback = true});
    *failed = fn == NULL;
    tg__function_trace_abstract(fn);
    return fn;
}

/* Runs one batch of evaluate through fn: part holds the nx inputs, ny labels and the
 * weights or NULL. */
static bool test_batch(tg_function *fn, tg_tensor *const *part, int nx, int ny)
{
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    return tg_function_call_at((tg_loc){0}, fn, part, nx + ny + (part[nx + ny] != NULL), out) >= 0;
}

/* Loss and metrics over the rows of b's parts (the nx inputs, ny labels and weights or
 * NULL) in batches, into logs (names prefixed with `prefix`). Distributed: this rank's
 * shard, then every metric's total and count summed over the ranks, so each has the
 * numbers of all rows; a rank that fails still joins the sum, and every rank fails. */
static bool evaluate_into(tg_loc loc, tg_model *m, batcher *b, int nx, int ny, int64_t batch_size, const char *prefix,
                          tg_logs *logs, tg_function *fn)
{
    tg_model_reset_metrics(m);
    int64_t lo, hi;
    eval_shard(m, b->src[0]->shape[0], &lo, &hi);
    bool ok = true;
    for (int64_t from = lo; ok && from < hi; from += batch_size) {
        int64_t to = from + batch_size < hi ? from + batch_size : hi;
        tg_scope *s = tg_scope_begin_at(loc);
        if (!s) {
            ok = false;
            break;
        }
        tg_tensor *three[3], **part = b->n <= 3 ? three : scratch_list(b->n);
        ok = part && batcher_fill(loc, b, NULL, from, to - from, part);
        if (fn) {
            ok = ok && test_batch(fn, part, nx, ny);
        } else if (nx == 1 && ny == 1) {
            tg_tensor *pred = ok ? tg_model_call_at(loc, m, part[0], (tg_model_call_opts){.training = false}) : NULL;
            tg_tensor *loss = tg_model_compute_loss_at(loc, m, part[1], pred, part[2]);
            ok = loss && tg_model_update_metrics(m, part[1], pred, part[2], loss) == 0;
        } else {
            ok = ok && evaluate_batch_list(loc, m, part, nx, ny);
        }
        tg_scope_end_at(loc, s);
    }
    tg_logs all = {0};
    tg_model_metric_logs(m, &all);
    if (tg_model_distributed(m) && tg__reduce_metrics(loc, m, prefix[0] ? "tg_fit" : "tg_evaluate", !ok, &all) != 0)
        ok = false;
    for (int i = 0; ok && i < all.n; i++) {
        char name[strlen(prefix) + strlen(all.names[i]) + 1];
        snprintf(name, sizeof name, "%s%s", prefix, all.names[i]);
        if (tg_logs_set(logs, name, all.values[i]) != 0)
            ok = tg__failb(loc, "%s: out of memory", prefix[0] ? "tg_fit" : "tg_evaluate");
    }
    tg_logs_free(&all);
    return ok;
}

static int evaluate_lists(tg_loc loc, tg_model *m, const data_args *a, tg_logs *logs, tg_evaluate_opts o)
{
    io_lists io;
    if (!resolve_lists(loc, "tg_evaluate", m, a, true, &io) || !check_lists(loc, "tg_evaluate", m, &io))
        return -1;
    int64_t n = io.x[0]->shape[0];
    if (o.batch_size < 1)
        return tg__failf(loc, "tg_evaluate: batch_size must be at least 1 (got %lld)", (long long)o.batch_size);
    if (n == 0)
        return tg__failf(loc, "tg_evaluate: the inputs have no rows: give at least one sample");
    if (o.sample_weight && (!tg__check_input(loc, "tg_evaluate", o.sample_weight, "sample_weight") ||
                            o.sample_weight->size != n || o.sample_weight->shape[0] != n))
        return tg__failf(loc, "tg_evaluate: sample_weight must hold one weight per sample (%lld)", (long long)n);
    if (!tg__resolve_compiled(loc, m))
        return -1;
    for (int i = 0; i < io.ny; i++) {
        char what[32];
        snprintf(what, sizeof what, "targets[%d]", i);
        if (!tg__check_output_labels(loc, m, i, io.y[i], what))
            return -1;
    }
    const tg_tensor **src = scratch_list(io.nx + io.ny + 1);
    if (!src)
        return -1;
    memcpy(src, io.x, sizeof *src * (size_t)io.nx);
    memcpy(src + io.nx, io.y, sizeof *src * (size_t)io.ny);
    src[io.nx + io.ny] = o.sample_weight;
    batcher b;
    if (!batcher_init(loc, "tg_evaluate", &b, src, io.nx + io.ny + 1, o.batch_size))
        return -1;
    int recording = recording_off();
    forward_call fc = {.loc = loc, .m = m, .nx = io.nx, .ny = io.ny};
    bool failed;
    tg_function *fn = forward_function(loc, &fc, o.run_eagerly, &failed);
    bool ok = !failed && evaluate_into(loc, m, &b, io.nx, io.ny, o.batch_size, "", logs, fn);
    tg_function_free(fn);
    tg__ctx()->n_recording = recording;
    batcher_free(&b);
    return ok ? 0 : -1;
}

static int evaluate_checked(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_logs *logs,
                            tg_evaluate_opts o, bool *joined)
{
    if (!logs)
        return tg__failf(loc, "tg_evaluate: `logs` is NULL");
    *logs = (tg_logs){0};
    data_args a = {.x = x,
                   .y = y,
                   .ds = o.dataset,
                   .inputs = o.inputs,
                   .n_inputs = o.n_inputs,
                   .targets = o.targets,
                   .n_targets = o.n_targets};
    if (!check_model(loc, "tg_evaluate", m, true))
        return -1;
    if (several_io(m))
        return evaluate_lists(loc, m, &a, logs, o);
    if (!resolve_data(loc, "tg_evaluate", &a, &x, &y) || !check_data(loc, "tg_evaluate", m, x, y, "x", "y"))
        return -1;
    if (!y)
        return tg__failf(loc, "tg_evaluate: `y` is NULL: evaluation compares the predictions with labels");
    if (o.batch_size < 1)
        return tg__failf(loc, "tg_evaluate: batch_size must be at least 1 (got %lld)", (long long)o.batch_size);
    if (x->shape[0] == 0)
        return tg__failf(loc, "tg_evaluate: `x` has no rows: the loss and metrics of no samples are undefined "
                              "(Keras: \"Expected input data to be non-empty\"); give at least one sample");
    if (o.sample_weight && !tg__check_input(loc, "tg_evaluate", o.sample_weight, "sample_weight"))
        return -1;
    if (o.sample_weight &&
        (o.sample_weight->rank < 1 || o.sample_weight->shape[0] != x->shape[0] || o.sample_weight->size != x->shape[0]))
        return tg__failf(loc, "tg_evaluate: sample_weight must hold one weight per sample (%lld)",
                         (long long)x->shape[0]);
    if (!tg__resolve_compiled(loc, m) || !tg__check_labels(loc, m, y, "y"))
        return -1;
    batcher b;
    if (!batcher_init(loc, "tg_evaluate", &b, (const tg_tensor *[]){x, y, o.sample_weight}, 3, o.batch_size))
        return -1;
    tg_progress p;
    tg_verbose mode = o.verbose == TG_VERBOSE_AUTO ? TG_VERBOSE_BAR : o.verbose;
    if (tg_model_distributed(m) && tg_distributed_rank() != 0) /* rank 0 prints for the job */
        mode = TG_VERBOSE_SILENT;
    tg__progress_begin(&p, o.out ? o.out : stdout, mode, (x->shape[0] + o.batch_size - 1) / o.batch_size);
    int recording = recording_off();
    *joined = true;
    forward_call fc = {.loc = loc, .m = m, .nx = 1, .ny = 1};
    bool failed;
    tg_function *fn = forward_function(loc, &fc, o.run_eagerly, &failed);
    bool ok = !failed && evaluate_into(loc, m, &b, 1, 1, o.batch_size, "", logs, fn);
    tg_function_free(fn);
    tg__ctx()->n_recording = recording;
    batcher_free(&b);
    if (!ok)
        return -1;
    tg__event((tg_event){
        .kind = TG_EVENT_MODEL_VALUES, .loc = loc, .func = "tg_evaluate", .first = logs->n ? logs->values[0] : NAN});
    tg__progress_update(&p, p.target, logs);
    tg__progress_end(&p, logs);
    return 0;
}

/* Errors raised inside evaluate, fit and predict (a layer, a callback's save) name the
 * user's call, never a line of tapegrad's sources. The scope holds the headers over a
 * data set's rows. */
int tg_evaluate_at(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_logs *logs, tg_evaluate_opts o)
{
    tg_loc outer = tg__enter_user_call(loc);
    tg_scope *s = tg_scope_begin_at(loc);
    bool joined = false;
    int rc = s ? evaluate_checked(loc, m, x, y, logs, o, &joined) : -1;
    tg_logs ignored = {0};
    if (!joined && tg_model_distributed(m)) /* refused here: the other ranks wait in the metrics' sum */
        tg__reduce_metrics(loc, m, "tg_evaluate", true, &ignored);
    tg_logs_free(&ignored);
    if (s)
        tg_scope_end_at(loc, s);
    tg__leave_user_call(outer);
    return rc;
}

/* ---- predict ------------------------------------------------------------------------------------- */
typedef struct prediction {
    int64_t n;          /* rows */
    unsigned char *buf; /* malloc'd rows, NULL when x has none (or, distributed, none of this rank's) */
    tg_shape shape;
    tg_dtype dtype;
} prediction;

static bool predict_rows(tg_loc loc, tg_model *m, const tg_tensor *x, tg_predict_opts o, prediction *r);

/* Distributed: each rank predicted its shard into its place of r; every rank gets the
 * others' (a broadcast from each rank in turn), so all hold every row in order. The
 * ranks first agree that none failed and on the rows' dtype (a rank with no rows has
 * none of its own). */
static bool gather_predictions(tg_loc loc, tg_model *m, bool failed, prediction *r)
{
    int ranks = tg_distributed_size(), me = tg_distributed_rank();
    double v[6] = {failed ? me : -1,
                   r->buf ? (double)r->dtype : -1,
                   (double)r->n,
                   failed ? -me : -ranks,
                   -(double)(r->buf ? (double)r->dtype : 1e9),
                   -(double)r->n};
    if (tg__dist_allreduce_f64(loc, "tg_predict", v, 6, TG_DIST_MAX) != 0)
        return false;
    if (failed)
        return false; /* this rank keeps its own error */
    if (v[0] >= 0)
        return tg__failb(loc, "tg_predict: rank %d of %d failed (its own error says why)", (int)-v[3], ranks);
    if (v[2] != -v[5])
        return tg__failb(loc,
                         "tg_predict: the ranks disagree on the number of rows (from %g to %g): every rank passes "
                         "the same data",
                         -v[5], v[2]);
    if (v[1] < 0) /* no rows anywhere */
        return true;
    if (r->buf && v[1] != -v[4])
        return tg__failb(loc, "tg_predict: the ranks' predictions have different dtypes");
    tg_shape one = tg__model_output_shape(m);
    int64_t per_row = 1;
    for (int i = 0; i < one.rank; i++)
        per_row *= one.dims[i];
    if (!r->buf) {
        r->dtype = (tg_dtype)v[1];
        r->shape = (tg_shape){.rank = one.rank + 1, .dims = {r->n}};
        memcpy(r->shape.dims + 1, one.dims, sizeof(int64_t) * (size_t)one.rank);
        if (!(r->buf = malloc((size_t)(per_row * r->n) * tg_dtype_size(r->dtype) + 1)))
            return tg__failb(loc, "tg_predict: out of memory");
    }
    size_t row_bytes = (size_t)per_row * tg_dtype_size(r->dtype);
    for (int q = 0; q < ranks; q++) {
        int64_t lo = r->n * q / ranks, hi = r->n * (q + 1) / ranks;
        if (hi > lo &&
            tg__dist_bcast(loc, "tg_predict", r->buf + row_bytes * (size_t)lo, row_bytes * (size_t)(hi - lo), q) != 0)
            return false;
    }
    return true;
}

/* Every output of a model of several inputs or outputs, batch by batch; output i into
 * o.outputs[i] (the first is also returned). */
static tg_tensor *predict_lists(tg_loc loc, tg_model *m, const tg_tensor *x, tg_predict_opts o)
{
    data_args a = {.x = x, .ds = o.dataset, .inputs = o.inputs, .n_inputs = o.n_inputs};
    io_lists io;
    int no = tg_model_n_outputs(m);
    if (no > 1 && (!o.outputs || o.n_outputs != no))
        return tg__fail(loc,
                        "tg_predict: model \"%s\" has %d outputs: give .outputs, room for one tensor per output, "
                        "and .n_outputs = %d",
                        tg_model_name(m), no, no);
    if (!resolve_lists(loc, "tg_predict", m, &a, false, &io) || !check_lists(loc, "tg_predict", m, &io))
        return NULL;
    if (o.batch_size < 1)
        return tg__fail(loc, "tg_predict: batch_size must be at least 1 (got %lld)", (long long)o.batch_size);
    int64_t n = io.x[0]->shape[0];
    prediction *r = calloc((size_t)no, sizeof *r);
    size_t *row_bytes = calloc((size_t)no, sizeof *row_bytes);
    batcher b;
    if (!r || !row_bytes || !batcher_init(loc, "tg_predict", &b, io.x, io.nx, o.batch_size)) {
        free(r);
        free(row_bytes);
        return r && row_bytes ? NULL : tg__fail(loc, "tg_predict: out of memory");
    }
    forward_call fc = {.loc = loc, .m = m, .nx = io.nx};
    bool failed;
    tg_function *fn = forward_function(loc, &fc, o.run_eagerly, &failed);
    bool ok = !failed;
    for (int64_t from = 0; ok && from < n; from += o.batch_size) {
        int64_t to = from + o.batch_size < n ? from + o.batch_size : n;
        tg_scope *s = tg_scope_begin_at(loc);
        tg_tensor **xb = s ? scratch_list(io.nx) : NULL, **pred = s ? scratch_list(TG_FUNCTION_MAX_OUTPUTS) : NULL;
        ok = s && xb && pred && batcher_fill(loc, &b, NULL, from, to - from, xb) &&
             (fn ? tg_function_call_at((tg_loc){0}, fn, xb, io.nx, pred) == no
                 : tg_model_call_list_at(loc, m, (const tg_tensor *const *)xb, io.nx, pred, no,
                                         (tg_model_call_opts){.training = false}) == 0);
        for (int k = 0; ok && k < no; k++) {
            if (!r[k].buf) {
                r[k].shape = tg_shape_of(pred[k]);
                r[k].shape.dims[0] = n;
                r[k].dtype = pred[k]->dtype;
                row_bytes[k] = (size_t)(pred[k]->size / pred[k]->shape[0]) * tg_dtype_size(r[k].dtype);
                if (!(r[k].buf = malloc(row_bytes[k] * (size_t)n + 1)))
                    ok = tg__failb(loc, "tg_predict: out of memory");
            }
            ok = ok && tg_copy_out_at((tg_loc){0}, pred[k], r[k].buf + row_bytes[k] * (size_t)from,
                                      row_bytes[k] * (size_t)(to - from)) == 0;
        }
        if (s)
            tg_scope_end_at(loc, s);
    }
    tg_function_free(fn);
    batcher_free(&b);
    tg_tensor *first = NULL;
    for (int k = 0; k < no; k++) {
        tg_tensor *t = NULL;
        if (ok && r[k].buf)
            t = tg_tensor_from_at(loc, r[k].dtype, r[k].shape, r[k].buf);
        else if (ok) { /* no rows: an empty output of the output's shape */
            tg_shape one = tg_layer_output_shape(tg__model_output_layer(m, k));
            tg_shape e = {.rank = one.rank + 1};
            memcpy(e.dims + 1, one.dims, sizeof(int64_t) * (size_t)one.rank);
            t = tg_fill_at(loc, TG_F32, e, 0.0);
        }
        ok = ok && t;
        free(r[k].buf);
        if (o.outputs && k < o.n_outputs)
            o.outputs[k] = ok ? t : NULL;
        if (k == 0)
            first = t;
    }
    free(r);
    free(row_bytes);
    return ok ? first : NULL;
}

static tg_tensor *predict(tg_loc loc, tg_model *m, const tg_tensor *x, tg_predict_opts o)
{
    if (several_io(m))
        return predict_lists(loc, m, x, o);
    prediction r = {.dtype = TG_F32};
    tg_scope *s = tg_scope_begin_at(loc); /* the data's headers and the batches */
    if (!s)
        return NULL;
    bool ok = predict_rows(loc, m, x, o, &r);
    if (tg_model_distributed(m))
        ok = gather_predictions(loc, m, !ok, &r);
    tg_scope_end_at(loc, s);
    if (!ok) {
        free(r.buf);
        return NULL;
    }
    if (!r.buf) { /* no rows: an empty output of the model's shape */
        tg_shape one = tg__model_output_shape(m);
        r.shape = (tg_shape){.rank = one.rank + 1};
        memcpy(r.shape.dims + 1, one.dims, sizeof(int64_t) * (size_t)one.rank);
        return tg_fill_at(loc, TG_F32, r.shape, 0.0);
    }
    tg_tensor *out = tg_tensor_from_at(loc, r.dtype, r.shape, r.buf);
    free(r.buf);
    return out;
}

tg_tensor *tg_predict_at(tg_loc loc, tg_model *m, const tg_tensor *x, tg_predict_opts o)
{
    int recording = recording_off();
    tg_loc outer = tg__enter_user_call(loc);
    tg_tensor *out = predict(loc, m, x, o);
    tg__leave_user_call(outer);
    tg__ctx()->n_recording = recording;
    if (out)
        out->built_from = tg__event((tg_event){.kind = TG_EVENT_MODEL_VALUES, .loc = loc, .func = "tg_predict"});
    return out;
}

static bool predict_rows(tg_loc loc, tg_model *m, const tg_tensor *x, tg_predict_opts o, prediction *r)
{
    data_args a = {.x = x, .ds = o.dataset, .inputs = o.inputs, .n_inputs = o.n_inputs};
    if (!check_model(loc, "tg_predict", m, false) || !resolve_data(loc, "tg_predict", &a, &x, NULL) ||
        !check_data(loc, "tg_predict", m, x, NULL, "x", NULL))
        return false;
    if (o.batch_size < 1)
        return tg__failb(loc, "tg_predict: batch_size must be at least 1 (got %lld)", (long long)o.batch_size);
    int64_t n = r->n = x->shape[0], lo, hi;
    eval_shard(m, n, &lo, &hi);
    size_t row_bytes = 0;
    batcher b;
    if (!batcher_init(loc, "tg_predict", &b, &x, 1, o.batch_size))
        return false;
    forward_call fc = {.loc = loc, .m = m, .nx = 1};
    bool failed;
    tg_function *fn = forward_function(loc, &fc, o.run_eagerly, &failed);
    bool ok = !failed;
    for (int64_t from = lo; ok && from < hi; from += o.batch_size) {
        int64_t to = from + o.batch_size < hi ? from + o.batch_size : hi;
        tg_scope *s = tg_scope_begin_at(loc);
        if (!s) {
            ok = false;
            break;
        }
        tg_tensor *xb, *pred = NULL, *out[TG_FUNCTION_MAX_OUTPUTS];
        if (batcher_fill(loc, &b, NULL, from, to - from, &xb))
            pred = !fn ? tg_model_call_at(loc, m, xb, (tg_model_call_opts){.training = false})
                   : tg_function_call_at((tg_loc){0}, fn, &xb, 1, out) == 1 ? out[0]
                                                                            : NULL;
        if (pred && !r->buf) {
            r->shape = tg_shape_of(pred);
            r->shape.dims[0] = n;
            r->dtype = pred->dtype;
            row_bytes = (size_t)(pred->size / pred->shape[0]) * tg_dtype_size(r->dtype);
            r->buf = malloc(row_bytes * (size_t)n + 1);
        }
        size_t at = row_bytes * (size_t)from, bytes = row_bytes * (size_t)(to - from);
        ok = pred && r->buf && tg_copy_out_at((tg_loc){0}, pred, r->buf + at, bytes) == 0;
        if (pred && !r->buf && !tg_has_error())
            tg__fail(loc, "tg_predict: out of memory");
        tg_scope_end_at(loc, s);
    }
    tg_function_free(fn);
    batcher_free(&b);
    return ok;
}

/* ---- fit ----------------------------------------------------------------------------------------- */
typedef struct fit_data {
    const tg_tensor *x, *y, *w; /* training rows (views of the data, no copies) */
    const tg_tensor *vx, *vy;   /* validation rows, or NULL */
    int64_t steps;              /* per epoch */
    int shards, rank;           /* .shard, count 0 read as 1 */
    bool distributed;           /* compiled with .distribute over several ranks */
    double *stats;              /* the moving statistics averaged over the ranks */
    size_t stats_n;
    batcher train, val; /* the reused batch buffers */
    tg_function *test;  /* the validation's forward pass as a function, or NULL: eagerly */
    forward_call test_call;
    /* a model of several inputs or outputs: each one's rows (x, y, vx, vy are the first),
     * lists in fit's scope */
    int nx, ny;
    const tg_tensor **xs, **ys, **vxs, **vys;
    tg_function *step; /* the step as a function (graph mode), or NULL: eagerly */
} fit_data;

static bool check_fit_opts(tg_loc loc, const tg_fit_opts *o)
{
    if (o->epochs < 0)
        return tg__failb(loc, "tg_fit: epochs must not be negative (got %d)", o->epochs);
    if (o->batch_size < 1)
        return tg__failb(loc, "tg_fit: batch_size must be at least 1 (got %lld)", (long long)o->batch_size);
    if (!(o->validation_split >= 0 && o->validation_split < 1))
        return tg__failb(loc, "tg_fit: validation_split must be in [0, 1) (got %g)", o->validation_split);
    int validations = (o->validation_split > 0) + (o->validation_x || o->validation_y) +
                      (o->validation_dataset != NULL) + (o->validation_inputs || o->validation_targets);
    if (validations > 1)
        return tg__failb(loc, "tg_fit: give one of validation_split, validation_x/validation_y, "
                              "validation_dataset and validation_inputs/validation_targets, not several");
    if (!o->validation_x != !o->validation_y)
        return tg__failb(loc, "tg_fit: validation_x and validation_y go together");
    if (o->initial_epoch < 0 || o->initial_epoch > o->epochs)
        return tg__failb(loc, "tg_fit: initial_epoch must be in [0, epochs] (got %d with epochs %d)", o->initial_epoch,
                         o->epochs);
    if (o->initial_step < 0)
        return tg__failb(loc, "tg_fit: initial_step must not be negative (got %lld)", (long long)o->initial_step);
    if (o->initial_step > 0 && o->initial_epoch >= o->epochs)
        return tg__failb(loc,
                         "tg_fit: initial_step %lld is a step of epoch %d, but initial_epoch %d with epochs %d "
                         "runs no epoch: raise epochs",
                         (long long)o->initial_step, o->initial_epoch + 1, o->initial_epoch, o->epochs);
    if (o->shard.count < 0 || o->shard.rank < 0 || o->shard.rank >= (o->shard.count ? o->shard.count : 1))
        return tg__failb(loc,
                         "tg_fit: shard rank %d of count %d: give 0 <= rank < count (count 0 or 1: no "
                         "sharding)",
                         o->shard.rank, o->shard.count);
    if (o->train_step && o->train_step_list)
        return tg__failb(loc, "tg_fit: give .train_step (one input and one output) or .train_step_list, not both");
    if ((unsigned)o->verbose > TG_VERBOSE_EPOCH)
        return tg__failb(loc, "tg_fit: verbose must be a tg_verbose value (got %d)", (int)o->verbose);
    if (o->n_callbacks < 0 || (o->n_callbacks && !o->callbacks))
        return tg__failb(loc, "tg_fit: callbacks: give an array and its count");
    for (int i = 0; i < o->n_callbacks; i++)
        if (!o->callbacks[i] || tg__callback_freed(o->callbacks[i]))
            return tg__failb(loc, "tg_fit: callbacks[%d] is %s", i,
                             o->callbacks[i] ? "already freed (tg_callback_free): make a new one" : "NULL");
    if (o->class_weight && o->n_class_weight < 1)
        return tg__failb(loc, "tg_fit: class_weight needs n_class_weight >= 1");
    if (!o->class_weight && o->n_class_weight != 0) /* it would be read through NULL */
        return tg__failb(loc, "tg_fit: class_weight is NULL but n_class_weight is %d: give the array or a count of 0",
                         o->n_class_weight);
    for (int i = 0; o->class_weight && i < o->n_class_weight; i++)
        if (!isfinite(o->class_weight[i]))
            return tg__failb(loc, "tg_fit: class_weight[%d] is %g: every class weight must be finite " NONFINITE_WHY, i,
                             o->class_weight[i]);
    return true;
}

/* The shards and the resumed step, once the number of training rows is known. */
static bool check_steps(tg_loc loc, const tg_fit_opts *o, fit_data *d)
{
    int64_t n = d->x->shape[0], last = n % o->batch_size;
    d->steps = n / o->batch_size + (last != 0);
    d->shards = o->shard.count > 1 ? o->shard.count : 1;
    d->rank = o->shard.rank;
    if (o->initial_step > d->steps)
        return tg__failb(loc,
                         "tg_fit: initial_step %lld is past the end of the epoch: %lld training samples in "
                         "batches of %lld make %lld steps (resume with the batch size and data of the run that "
                         "saved the position)",
                         (long long)o->initial_step, (long long)n, (long long)o->batch_size, (long long)d->steps);
    /* A distributed step joins with an empty shard; a step of the user's gets all rows. */
    if (d->shards > 1 && !d->distributed && (o->batch_size < d->shards || (last != 0 && last < d->shards)))
        return tg__failb(loc,
                         "tg_fit: %d shards need at least %d rows in every batch, but batch_size %lld of %lld "
                         "training samples gives a batch of %lld: every shard gets a part of every batch",
                         d->shards, d->shards, (long long)o->batch_size, (long long)n,
                         (long long)(o->batch_size < d->shards ? o->batch_size : last));
    return true;
}

/* Keras's validation_data=([x...], [y...]): the same checks as the training lists. */
static bool validation_lists(tg_loc loc, tg_model *m, const tg_fit_opts *o, const io_lists *train, fit_data *d)
{
    data_args va = {.inputs = o->validation_inputs,
                    .targets = o->validation_targets,
                    .n_inputs = o->n_validation_inputs,
                    .n_targets = o->n_validation_targets};
    io_lists io;
    if (!o->validation_inputs || !o->validation_targets)
        return tg__failb(loc, "tg_fit: validation_inputs and validation_targets go together");
    if (!resolve_lists(loc, "tg_fit (validation lists)", m, &va, true, &io) ||
        !check_lists(loc, "tg_fit (validation lists)", m, &io))
        return false;
    if (io.x[0]->shape[0] == 0)
        return tg__failb(loc, "tg_fit: the validation inputs have no rows: give at least one sample");
    for (int i = 0; i < io.nx; i++) {
        char what[48];
        snprintf(what, sizeof what, "validation_inputs[%d]", i);
        if (tg_dtype_is_float(io.x[i]->dtype) && !check_finite(loc, "tg_fit", io.x[i], what))
            return false;
        d->vxs[i] = io.x[i];
    }
    for (int i = 0; i < train->ny; i++)
        d->vys[i] = io.y[i];
    return true;
}

/* prepare for a model of several inputs or outputs: the same checks on every tensor of
 * the lists; what needs one input and one output is refused. */
static bool prepare_lists(tg_loc loc, tg_model *m, const data_args *a, const tg_fit_opts *o, fit_data *d)
{
    io_lists io;
    if (!resolve_lists(loc, "tg_fit", m, a, true, &io) || !check_lists(loc, "tg_fit", m, &io))
        return false;
    const char *name = tg_model_name(m);
    if (o->train_step)
        return tg__failb(loc,
                         "tg_fit: a custom .train_step takes one input and one output, but model \"%s\" has %d and "
                         "%d: give a step of lists as .train_step_list",
                         name, io.nx, tg_model_n_outputs(m));
    if (o->class_weight)
        return tg__failb(loc,
                         "tg_fit: class_weight is for a model of one output (model \"%s\" has %d): give "
                         "sample_weight",
                         name, io.ny);
    if (o->validation_x || o->validation_dataset)
        return tg__failb(loc,
                         "tg_fit: model \"%s\" has several inputs or outputs: give its validation data as lists, "
                         ".validation_inputs and .validation_targets",
                         name);
    int64_t n = io.x[0]->shape[0];
    if (n == 0)
        return tg__failb(loc,
                         "tg_fit: the inputs have no rows: there is nothing to train on; give at least one sample");
    if (o->sample_weight &&
        (!tg__check_input(loc, "tg_fit", o->sample_weight, "sample_weight") || o->sample_weight->size != n))
        return tg__failb(loc, "tg_fit: sample_weight must hold one weight per sample (%lld)", (long long)n);
    if (o->sample_weight && !check_finite_weights(loc, o->sample_weight))
        return false;
    if (!tg__resolve_compiled(loc, m))
        return false;
    for (int i = 0; i < io.nx; i++) {
        char what[32];
        snprintf(what, sizeof what, "inputs[%d]", i);
        if (tg_dtype_is_float(io.x[i]->dtype) && !check_finite(loc, "tg_fit", io.x[i], what))
            return false;
    }
    d->nx = io.nx;
    d->ny = io.ny;
    d->xs = scratch_list(io.nx);
    d->vxs = scratch_list(io.nx);
    d->ys = scratch_list(io.ny);
    d->vys = scratch_list(io.ny);
    if (!d->xs || !d->vxs || !d->ys || !d->vys)
        return false;
    tg_dtype wd = tg_dtype_is_float(io.x[0]->dtype) ? io.x[0]->dtype : TG_F32;
    d->w = sample_weights(loc, io.y[0], o, wd);
    if (o->sample_weight && !d->w)
        return false;
    int64_t split = o->validation_split > 0 ? (int64_t)((double)n * (1.0 - o->validation_split)) : n;
    if (o->validation_split > 0 && (split < 1 || split >= n))
        return tg__failb(loc, "tg_fit: validation_split %g of %lld samples leaves an empty training or validation set",
                         o->validation_split, (long long)n);
    for (int i = 0; i < io.nx + io.ny; i++) {
        const tg_tensor *t = i < io.nx ? io.x[i] : io.y[i - io.nx];
        const tg_tensor **train = i < io.nx ? &d->xs[i] : &d->ys[i - io.nx];
        const tg_tensor **val = i < io.nx ? &d->vxs[i] : &d->vys[i - io.nx];
        *train = split < n ? view_rows(loc, t, 0, split) : t;
        *val = split < n ? view_rows(loc, t, split, n) : NULL;
        if (!*train || (split < n && !*val))
            return false;
    }
    if (d->w && split < n && !(d->w = view_rows(loc, d->w, 0, split)))
        return false;
    if ((o->validation_inputs || o->validation_targets) && !validation_lists(loc, m, o, &io, d))
        return false;
    for (int i = 0; i < io.ny; i++) {
        char what[48];
        snprintf(what, sizeof what, "targets[%d]", i);
        if (!tg__check_output_labels(loc, m, i, d->ys[i], what))
            return false;
        snprintf(what, sizeof what, "validation targets[%d]", i);
        if (d->vys[i] && !tg__check_output_labels(loc, m, i, d->vys[i], what))
            return false;
    }
    d->x = d->xs[0];
    d->y = d->ys[0];
    d->vx = d->vxs[0];
    d->vy = d->vys[0];
    if (!check_steps(loc, o, d))
        return false;
    const tg_tensor **src = scratch_list(io.nx + io.ny + 1), **vsrc = scratch_list(io.nx + io.ny + 1);
    if (!src || !vsrc)
        return false;
    for (int i = 0; i < io.nx; i++) {
        src[i] = d->xs[i];
        vsrc[i] = d->vxs[i];
    }
    for (int i = 0; i < io.ny; i++) {
        src[io.nx + i] = d->ys[i];
        vsrc[io.nx + i] = d->vys[i];
    }
    src[io.nx + io.ny] = d->w;
    vsrc[io.nx + io.ny] = NULL;
    int parts = io.nx + io.ny + 1;
    int64_t rows = o->batch_size < d->x->shape[0] ? o->batch_size : d->x->shape[0];
    return batcher_init(loc, "tg_fit", &d->train, src, parts, rows) &&
           (!d->vx || batcher_init(loc, "tg_fit", &d->val, vsrc, parts, o->batch_size));
}

/* Checks everything and splits off validation data (views, no copies); nothing trains
 * before this passes. */
static bool prepare(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, const tg_fit_opts *o, fit_data *d)
{
    data_args a = {.x = x,
                   .y = y,
                   .ds = o->dataset,
                   .inputs = o->inputs,
                   .n_inputs = o->n_inputs,
                   .targets = o->targets,
                   .n_targets = o->n_targets};
    if (!check_fit_opts(loc, o) || !check_model(loc, "tg_fit", m, true))
        return false;
    if (several_io(m))
        return prepare_lists(loc, m, &a, o, d);
    d->nx = d->ny = 1;
    if (!resolve_data(loc, "tg_fit", &a, &x, &y) || !check_data(loc, "tg_fit", m, x, y, "x", "y"))
        return false;
    if (!y)
        return tg__failb(loc, "tg_fit: `y` is NULL: Target data is missing. The model was compiled with a loss, "
                              "and therefore expects target data");
    if (x->shape[0] == 0)
        return tg__failb(loc, "tg_fit: `x` has no rows: there is nothing to train on (Keras fails with \"Unexpected "
                              "result of train_function (Empty logs)\"); give at least one sample");
    if (o->sample_weight &&
        (!tg__check_input(loc, "tg_fit", o->sample_weight, "sample_weight") || o->sample_weight->size != x->shape[0]))
        return tg__failb(loc, "tg_fit: sample_weight must hold one weight per sample (%lld)", (long long)x->shape[0]);
    if (o->sample_weight && !check_finite_weights(loc, o->sample_weight))
        return false;
    if (!tg__resolve_compiled(loc, m) || !check_finite(loc, "tg_fit", x, "x"))
        return false;
    d->x = x;
    d->y = y;
    d->w = sample_weights(loc, y, o, tg_dtype_is_float(x->dtype) ? x->dtype : TG_F32);
    if ((o->sample_weight || o->class_weight) && !d->w)
        return false;
    int64_t n = x->shape[0];
    if (o->validation_split > 0) {
        int64_t split = (int64_t)((double)n * (1.0 - o->validation_split));
        if (split < 1 || split >= n)
            return tg__failb(loc,
                             "tg_fit: validation_split %g of %lld samples leaves an empty training or "
                             "validation set",
                             o->validation_split, (long long)n);
        d->x = view_rows(loc, x, 0, split);
        d->y = view_rows(loc, y, 0, split);
        d->vx = view_rows(loc, x, split, n);
        d->vy = view_rows(loc, y, split, n);
        if (d->w)
            d->w = view_rows(loc, d->w, 0, split);
    } else if (o->validation_x || o->validation_dataset || o->validation_inputs || o->validation_targets) {
        data_args va = {.x = o->validation_x,
                        .y = o->validation_y,
                        .ds = o->validation_dataset,
                        .inputs = o->validation_inputs,
                        .n_inputs = o->n_validation_inputs,
                        .targets = o->validation_targets,
                        .n_targets = o->n_validation_targets};
        bool listed = o->validation_inputs || o->validation_targets;
        const char *vxn = o->validation_dataset ? "validation_dataset"
                          : listed              ? "validation_inputs[0]"
                                                : "validation_x";
        const char *vyn = o->validation_dataset ? "its labels" : listed ? "validation_targets[0]" : "validation_y";
        const char *func = listed ? "tg_fit (validation lists)" : "tg_fit";
        if (!resolve_data(loc, func, &va, &d->vx, &d->vy) || !check_data(loc, "tg_fit", m, d->vx, d->vy, vxn, vyn) ||
            !check_finite(loc, "tg_fit", d->vx, vxn))
            return false;
    }
    if (!d->x || !d->y || (d->vx && !d->vy))
        return false;
    if (!tg__check_labels(loc, m, d->y, "y") || (d->vy && !tg__check_labels(loc, m, d->vy, "validation y")))
        return false;
    if (!check_steps(loc, o, d))
        return false;
    int64_t rows = o->batch_size < d->x->shape[0] ? o->batch_size : d->x->shape[0];
    return batcher_init(loc, "tg_fit", &d->train, (const tg_tensor *[]){d->x, d->y, d->w}, 3, rows) &&
           (!d->vx ||
            batcher_init(loc, "tg_fit", &d->val, (const tg_tensor *[]){d->vx, d->vy, NULL}, 3, o->batch_size));
}

/* A non-trainable variable named .../moving_mean or .../moving_variance. */
static bool is_moving_statistic(const tg_tensor *v)
{
    const char *name = tg_variable_name(v), *slash = name ? strrchr(name, '/') : NULL;
    const char *last = slash ? slash + 1 : name;
    return last && (strcmp(last, "moving_mean") == 0 || strcmp(last, "moving_variance") == 0);
}

/* BatchNormalization's moving statistics, which each rank updates from its own rows,
 * averaged over the ranks after every step, so that every rank keeps the same (TF's
 * MirroredStrategy aggregates them with MEAN). Returns 0 or -1. */
static int average_moving_statistics(tg_loc loc, tg_model *m, fit_data *d)
{
    int n = 0;
    tg_tensor *const *vars = tg_model_non_trainable_variables(m, &n);
    if (!vars)
        return -1;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += is_moving_statistic(vars[i]) ? (size_t)vars[i]->size : 0;
    if (total == 0)
        return 0;
    if (d->stats_n < total) {
        double *p = realloc(d->stats, sizeof *p * total);
        if (!p)
            return tg__failf(loc, "tg_fit: out of memory for %zu moving statistics", total);
        d->stats = p;
        d->stats_n = total;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++)
        if (is_moving_statistic(vars[i]))
            for (int64_t j = 0; j < vars[i]->size; j++)
                d->stats[at++] = tg__get(vars[i], j);
    if (tg__dist_allreduce_f64(loc, "tg_fit", d->stats, (int64_t)total, TG_DIST_SUM) != 0)
        return -1;
    double ranks = tg_distributed_size();
    at = 0;
    for (int i = 0; i < n; i++) {
        if (!is_moving_statistic(vars[i]))
            continue;
        tg__variable_begin_write(loc, vars[i]);
        for (int64_t j = 0; j < vars[i]->size; j++)
            tg__set(vars[i], j, d->stats[at++] / ranks);
    }
    return 0;
}

/* With check_numerics: the trainable weights after a step (the optimizer writes them in
 * place, so no op checked them). Returns 0 or -1. */
static int check_weights(tg_loc loc, tg_model *m)
{
    int n = 0;
    tg_tensor *const *vars = tg_model_trainable_variables(m, &n);
    if (!vars)
        return -1;
    for (int i = 0; i < n; i++)
        if (!tg_check_numerics_at(loc, vars[i], "a weight after the training step"))
            return -1;
    return 0;
}

/* A numerics error found by a step, with where in the fit it happened. */
static void locate_numerics_error(tg_loc loc, int epoch, int64_t batch)
{
    char inner[2048];
    snprintf(inner, sizeof inner, "%s", tg_last_error());
    if (strstr(inner, "check_numerics"))
        tg__fail(loc, "tg_fit: epoch %d, batch %lld: %s", epoch + 1, (long long)batch + 1, inner);
}

static void set_position(tg_model *m, int epoch, int64_t step, uint64_t seed)
{
    tg__fit_position *pos = tg__model_fit_position(m);
    if (pos)
        *pos = (tg__fit_position){.set = true, .epoch = epoch, .step = step, .seed = seed};
}

/* ---- the step in graph mode ------------------------------------------------------------------ */
/* The step as tg_function's C function: inputs x..., y..., then the sample weights if any. */
typedef struct step_call {
    tg_model *m;
    const tg_fit_opts *o;
    int nx, ny;
    tg_logs *logs;
} step_call;

static int traced_step(void *user, tg_tensor *const *in, int n, tg_tensor **out)
{
    const step_call *s = user;
    const tg_fit_opts *o = s->o;
    const tg_tensor *w = n > s->nx + s->ny ? in[n - 1] : NULL;
    (void)out;
    if (s->nx == 1 && s->ny == 1 && !o->train_step_list)
        return (o->train_step ? o->train_step : tg_train_step_default)(s->m, in[0], in[1], w, s->logs, o->user);
    return (o->train_step_list ? o->train_step_list : tg_train_step_list_default)(s->m, in, s->nx, in + s->nx, s->ny, w,
                                                                                  s->logs, o->user);
}

/* Keras's run_eagerly=False: the step becomes a function, unless asked otherwise or under
 * numerics checks. Over several ranks the gradients' allreduce (and, with accumulation,
 * the per-step agreement) are host nodes of the graph (src/dist), replayed every step. */
static bool make_step_function(tg_loc loc, tg_model *m, fit_data *d, const tg_fit_opts *o, step_call *call)
{
    if (o->run_eagerly || o->check_numerics || (tg_get_check() & TG_CHECK_NUMERICS))
        return true;
    *call = (step_call){.m = m, .o = o, .nx = d->nx, .ny = d->ny};
    d->step =
        tg_function_new_at(loc, traced_step, call, (tg_function_opts){.name = "train_step", .eager_fallback = true});
    if (!o->train_step && !o->train_step_list) /* the default step reads no value: traced as TF traces */
        tg__function_trace_abstract(d->step);
    return d->step != NULL;
}

static int run_step(tg_model *m, fit_data *d, const tg_fit_opts *o, step_call *call, tg_tensor **part, tg_logs *logs)
{
    int n = d->nx + d->ny;
    if (!d->step) {
        if (d->nx == 1 && d->ny == 1 && !o->train_step_list)
            return (o->train_step ? o->train_step : tg_train_step_default)(m, part[0], part[1], part[2], logs, o->user);
        return (o->train_step_list ? o->train_step_list : tg_train_step_list_default)(m, part, d->nx, part + d->nx,
                                                                                      d->ny, part[n], logs, o->user);
    }
    tg_tensor *out[TG_FUNCTION_MAX_OUTPUTS];
    call->logs = logs;
    return tg_function_call_at((tg_loc){0}, d->step, part, n + (part[n] != NULL), out) < 0 ? -1 : 0;
}

/* One epoch of batches from step `first` on. Returns 1 when a callback stopped training,
 * 0, or -1 on error. */
static int run_epoch(tg_loc loc, tg_model *m, fit_data *d, const tg_fit_opts *o, int64_t *idx, int epoch, int64_t first,
                     tg_progress *p, tg_logs *logs, step_call *call)
{
    int64_t n = d->x->shape[0];
    if (o->shuffle && !shuffle(loc, idx, n, o->seed, epoch))
        return -1;
    tg_model_reset_metrics(m);
    int stop = 0;
    int64_t next = first; /* the next step to run */
    for (int64_t b = first; b < d->steps; b++) {
        int64_t from = b * o->batch_size, count = from + o->batch_size < n ? o->batch_size : n - from;
        /* this shard's part of the global batch: the rows idx[lo, hi) */
        int64_t lo = from + count * d->rank / d->shards, hi = from + count * (d->rank + 1) / d->shards;
        if ((stop |= run_hooks(o, BATCH_BEGIN, m, b, logs)) < 0)
            return -1;
        tg_scope *s = tg_scope_begin_at(loc);
        if (!s)
            return -1;
        tg_tensor *three[3], **part = d->train.n <= 3 ? three : scratch_list(d->train.n);
        int rc = -1;
        if (part && batcher_fill(loc, &d->train, idx + lo, 0, hi - lo, part))
            rc = run_step(m, d, o, call, part, logs);
        if (rc == 0 && o->check_numerics)
            rc = check_weights(loc, m);
        if (rc == 0 && d->distributed) /* every rank logs the whole batch's values */
            rc = tg__reduce_metric_logs(loc, m, logs);
        if (rc == 0 && d->distributed)
            rc = average_moving_statistics(loc, m, d);
        tg_scope_end_at(loc, s);
        if (rc != 0) {
            if (!tg_has_error())
                tg__fail(loc, "tg_fit: the training step failed at batch %lld", (long long)b);
            else if (o->check_numerics)
                locate_numerics_error(loc, epoch, b);
            return -1;
        }
        next = b + 1;
        set_position(m, epoch, next, o->seed); /* before the hooks: a checkpoint there resumes after b */
        int h = run_hooks(o, BATCH_END, m, b, logs);
        if (h < 0)
            return -1;
        tg__progress_update(p, b + 1, logs);
        if ((stop |= h))
            break;
    }
    if (next == d->steps) /* every step ran: the next one is the next epoch's first */
        set_position(m, epoch + 1, 0, o->seed);
    return stop;
}

/* ---- over several ranks ------------------------------------------------------------------------ */
/* Every rank checks that all ranks train the same model on the same data the same way,
 * or every rank stops: one MAX allreduce of each value and its negation gives the
 * largest and smallest. A rank whose checks failed (`failed`) says so and keeps its own
 * error; the others name it. */
static bool join_ranks(tg_loc loc, tg_model *m, const fit_data *d, const tg_fit_opts *o, bool failed)
{
    int nv = 0, nt = 0;
    tg_tensor *const *vars = failed ? NULL : tg_model_variables_at(loc, m, &nv);
    if (!failed && !vars)
        failed = true;
    if (!failed)
        tg_model_trainable_variables(m, &nt);
    double values = 0;
    for (int i = 0; i < nv; i++)
        values += (double)vars[i]->size;
    enum { K = 14 };
    static const char *const what[K] = {"",
                                        "the number of variables",
                                        "the number of trainable variables",
                                        "the number of weights",
                                        "the number of training samples",
                                        "the number of validation samples",
                                        "batch_size",
                                        "epochs",
                                        "initial_epoch",
                                        "initial_step",
                                        "seed",
                                        "seed",
                                        "shuffle",
                                        "the optimizer's state arrays"};
    tg_optimizer *opt = tg_model_optimizer(m);
    double v[2 * K] = {failed ? tg_distributed_rank() : -1,
                       nv,
                       nt,
                       values,
                       failed ? 0 : (double)d->x->shape[0],
                       failed || !d->vx ? 0 : (double)d->vx->shape[0],
                       (double)o->batch_size,
                       o->epochs,
                       o->initial_epoch,
                       (double)o->initial_step,
                       (double)(o->seed & 0xffffffffu),
                       (double)(o->seed >> 32),
                       o->shuffle,
                       failed ? 0 : tg_optimizer_state_count(opt)};
    for (int i = 0; i < K; i++)
        v[K + i] = -v[i];
    v[K] = failed ? -tg_distributed_rank() : -(double)tg_distributed_size();
    if (tg__dist_allreduce_f64(loc, "tg_fit", v, 2 * K, TG_DIST_MAX) != 0)
        return false;
    if (failed) /* this rank's own error says why */
        return false;
    if (v[0] >= 0)
        return tg__failb(loc,
                         "tg_fit: rank %d of %d failed its checks before training (its own error says why); "
                         "no rank trains",
                         (int)-v[K], tg_distributed_size());
    for (int i = 1; i < K; i++)
        if (v[i] != -v[K + i])
            return tg__failb(loc,
                             "tg_fit: the ranks disagree on %s (from %.17g to %.17g): start every rank with the "
                             "same model, data and options (a distributed fit trains one model over all of them)",
                             what[i], -v[K + i], v[i]);
    return true;
}

/* Rank 0's weights (every variable, trainable or not) and optimizer state (each state
 * array, and the iteration count) on every rank, as Horovod's broadcast at the start of
 * training and on resume: whatever each rank initialised or loaded, they start alike;
 * and a Dropout stream of its own for each rank. */
static bool sync_state(tg_loc loc, tg_model *m)
{
    int nv = 0;
    tg_tensor *const *vars = tg_model_variables_at(loc, m, &nv);
    if (!vars || tg_broadcast_variables_at(loc, vars, nv, 0) != 0)
        return false;
    tg_optimizer *opt = tg_model_optimizer(m);
    int64_t iterations = tg_optimizer_iterations(opt);
    if (tg__dist_bcast(loc, "tg_fit", &iterations, sizeof iterations, 0) != 0 ||
        tg_optimizer_set_iterations_at(loc, opt, iterations) != 0)
        return false;
    int n = tg_optimizer_state_count(opt); /* the same on every rank (join_ranks) */
    for (int i = 0; i < n; i++) {
        tg_optimizer_slot slot;
        if (tg_optimizer_state(opt, i, &slot) != 0 ||
            tg__dist_bcast(loc, "tg_fit", slot.data, (size_t)slot.count * tg_dtype_size(slot.dtype), 0) != 0)
            return false;
    }
    /* Dropout: the ranks' rows differ, so must their masks. Each rank draws from its own
     * stream, split by rank from the next value of the layer's generator (each fit splits
     * anew, so a second fit repeats no mask). */
    for (int i = 0; i < tg_model_n_layers(m); i++) {
        tg_layer *l = tg_model_layer(m, i);
        if (!l->rng)
            continue;
        tg_rng *own = tg_rng_new(tg__derive_seed(tg_rng_next(l->rng), (uint64_t)tg_distributed_rank()));
        if (!own)
            return tg__failb(loc, "tg_fit: out of memory for the Dropout generator of \"%s\"", l->name);
        tg_rng_free(l->rng);
        l->rng = own;
    }
    return true;
}

/* The names fit will log, set once before the first step (logs keep each name for the
 * program's life), so that no step or validation allocates one. */
static void name_logs(tg_model *m, bool validation)
{
    tg_logs names = {0}, val = {0};
    tg_model_metric_logs(m, &names);
    for (int i = 0; validation && i < names.n; i++) {
        char name[strlen(names.names[i]) + 5];
        snprintf(name, sizeof name, "val_%s", names.names[i]);
        tg_logs_set(&val, name, 0);
    }
    tg_logs_free(&names);
    tg_logs_free(&val);
}

static tg_history *fit(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_fit_opts o);

/* A callback loaded a checkpoint at train begin (BackupAndRestore): the fit goes on from
 * its position, as a fit given .initial_epoch, .initial_step and .seed from it does. */
static bool resume_at_position(tg_loc loc, tg_model *m, tg_fit_opts *o, fit_data *d)
{
    tg__fit_position *p = tg__model_fit_position(m);
    if (!p || !p->resume)
        return true;
    p->resume = false;
    if (p->epoch > o->epochs || (p->step > 0 && p->epoch >= o->epochs) || p->step > d->steps)
        return tg__failb(loc,
                         "tg_fit: the restored checkpoint is at epoch %d, step %lld, past this fit's %d epochs of "
                         "%lld steps (resume with the epochs, batch size and data of the run that saved it)",
                         p->epoch, (long long)p->step, o->epochs, (long long)d->steps);
    o->initial_epoch = p->epoch;
    o->initial_step = p->step;
    o->seed = p->seed;
    return true;
}

tg_history *tg_fit_at(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_fit_opts o)
{
    tg_loc outer = tg__enter_user_call(loc);
    tg_history *h = fit(loc, m, x, y, o);
    tg__leave_user_call(outer);
    return h;
}

static tg_history *fit(tg_loc loc, tg_model *m, const tg_tensor *x, const tg_tensor *y, tg_fit_opts o)
{
    tg_scope *scope = tg_scope_begin_at(loc);
    fit_data d = {.distributed = tg_model_distributed(m)};
    tg_history *h = NULL;
    int64_t *idx = NULL;
    step_call call = {0};
    tg_logs logs = {0}, epoch_logs = {0}; /* reused: a warm step allocates nothing */
    unsigned check = tg_get_check();
    if (o.check_numerics)
        tg_set_check(check | TG_CHECK_NUMERICS);
    if (d.distributed && o.shard.count > 1) { /* refused on every rank alike: nothing to wait for */
        tg__fail(loc,
                 "tg_fit: .shard {%d, %d} with a model compiled with .distribute, which gives each of the %d "
                 "ranks its shard of every batch itself: leave .shard unset",
                 o.shard.rank, o.shard.count, tg_distributed_size());
        goto done;
    }
    if (d.distributed)
        o.shard = (tg_fit_shard){.rank = tg_distributed_rank(), .count = tg_distributed_size()};
    bool ready = scope && prepare(loc, m, x, y, &o, &d);
    /* Every rank agrees on the set-up or all stop, then starts from rank 0's state. */
    if (d.distributed && (!join_ranks(loc, m, &d, &o, !ready) || !ready || !sync_state(loc, m)))
        goto done;
    if (!ready)
        goto done;
    int64_t n = d.x->shape[0];
    idx = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    h = tg__history_new();
    if (!idx || !h) {
        tg__fail(loc, "tg_fit: out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    if (!make_step_function(loc, m, &d, &o, &call))
        goto fail;
    bool no_test = false;
    d.test_call = (forward_call){.loc = loc, .m = m, .nx = d.nx, .ny = d.ny};
    if (d.vx && !(d.test = forward_function(loc, &d.test_call, o.run_eagerly || o.check_numerics, &no_test)) && no_test)
        goto fail;
    FILE *out = o.out ? o.out : stdout;
    tg_verbose mode = o.verbose;
    if (mode == TG_VERBOSE_AUTO)
        mode = isatty(fileno(out)) ? TG_VERBOSE_BAR : TG_VERBOSE_EPOCH;
    if (d.distributed && tg_distributed_rank() != 0) /* rank 0 prints for the job */
        mode = TG_VERBOSE_SILENT;
    name_logs(m, d.vx != NULL);
    int stop = run_hooks(&o, TRAIN_BEGIN, m, 0, &logs);
    if (stop >= 0 && !resume_at_position(loc, m, &o, &d))
        stop = -1;
    for (int epoch = o.initial_epoch; epoch < o.epochs && stop == 0; epoch++) {
        logs.n = 0;
        if ((stop = run_hooks(&o, EPOCH_BEGIN, m, epoch, &logs)) < 0)
            break;
        tg_progress p;
        tg__progress_begin(&p, out, mode, d.steps);
        tg__progress_epoch_header(&p, epoch, o.epochs);
        stop = run_epoch(loc, m, &d, &o, idx, epoch, epoch == o.initial_epoch ? o.initial_step : 0, &p, &logs, &call);
        if (stop < 0)
            break;
        epoch_logs.n = 0;
        tg_model_metric_logs(m, &epoch_logs);
        if (d.distributed && tg__reduce_metric_logs(loc, m, &epoch_logs) != 0) {
            stop = -1;
            break;
        }
        if (d.vx && !evaluate_into(loc, m, &d.val, d.nx, d.ny, o.batch_size, "val_", &epoch_logs, d.test)) {
            stop = -1;
            break;
        }
        for (int i = 0; i < logs.n; i++) /* what the step or callbacks logged besides metrics */
            if (isnan(tg_logs_get(&epoch_logs, logs.names[i])))
                tg_logs_set(&epoch_logs, logs.names[i], logs.values[i]);
        int hook = run_hooks(&o, EPOCH_END, m, epoch, &epoch_logs);
        tg__progress_end(&p, &epoch_logs);
        if (!tg__history_append(h, &epoch_logs) || hook < 0) {
            stop = -1;
            break;
        }
        stop |= hook; /* a batch's hook that stopped the epoch stops training too */
    }
    if (stop >= 0 && o.epochs > 0 && finalize_variables(loc, m) != 0) /* Keras: the EMA weights go in */
        stop = -1;
    if (stop >= 0 && run_hooks(&o, TRAIN_END, m, 0, &logs) < 0)
        stop = -1;
    if (stop < 0)
        goto fail;
    goto done;
fail:
    tg_history_free(h);
    h = NULL;
done:
    tg_logs_free(&logs);
    tg_logs_free(&epoch_logs);
    tg_set_check(check);
    tg_function_free(d.step);
    tg_function_free(d.test);
    free(idx);
    batcher_free(&d.train);
    batcher_free(&d.val);
    free(d.stats);
    if (scope)
        tg_scope_end_at(loc, scope);
    return h;
}

int tg_model_get_fit_position_at(tg_loc loc, const tg_model *m, tg_model_fit_position *pos)
{
    if (pos)
        *pos = (tg_model_fit_position){0};
    if (!tg__model_check(loc, "tg_model_get_fit_position", m))
        return -1;
    if (!pos)
        return tg__null_arg(loc, "tg_model_get_fit_position", "pos"), -1;
    const tg__fit_position *p = tg__model_fit_position(m);
    if (!p->set)
        return 0;
    *pos = (tg_model_fit_position){.epoch = p->epoch, .step = p->step, .seed = p->seed};
    return 1;
}
