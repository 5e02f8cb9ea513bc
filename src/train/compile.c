/* compile: the optimizer, the loss and the metrics a model trains with, and the check
 * that the loss fits the model's output before any step. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../dist/dist_impl.h"   /* the metrics of every rank's samples */
#include "../optim/optim_impl.h" /* tg__optimizer_take: who frees the optimizer */
#include "../tensor/tensor_impl.h"
#include "tapegrad/layer.h"
#include "train_impl.h"

/* Frees the compile and the optimizer it owns (none when a recompile took it over). */
static void compiled_free(void *p)
{
    tg_compiled *c = p;
    if (!c)
        return;
    if (c->optimizer) {
        tg__optimizer_set_reducer(c->optimizer, NULL, NULL);
        tg__optimizer_drop(c->optimizer, c->model);
        tg_optimizer_free_at(c->loc, c->optimizer);
    }
    tg_metric_free(c->loss_mean);
    for (int i = 0; i < c->n_metrics; i++)
        tg_metric_free(c->metrics[i]);
    free(c->metrics);
    free((void *)c->requested.kind);
    for (int i = 0; i < c->n_outputs; i++) {
        tg_metric_free(c->outputs[i].loss_mean);
        for (int k = 0; k < c->outputs[i].n_metrics; k++)
            tg_metric_free(c->outputs[i].metrics[k]);
        free(c->outputs[i].metrics);
        free((void *)c->outputs[i].requested.kind);
    }
    free(c->outputs);
    free(c);
}

tg_compiled *tg__compiled(const tg_model *m) { return m ? tg__model_attachment(m) : NULL; }

tg_shape tg__model_output_shape(tg_model *m)
{
    tg_layer *out = tg__model_output_layer(m, 0);
    return out ? tg_layer_output_shape(out) : (tg_shape){.rank = -1};
}

static bool resolve(tg_loc loc, tg_model *m, tg_compiled *c);

/* What is wrong with the options, or NULL. */
static const char *opts_problem(const tg_compile_opts *o)
{
    if (!o->optimizer)
        return "give .optimizer, e.g. .optimizer = tg_adam()";
    if (o->losses || o->n_losses) {
        if (o->loss != TG_LOSS_NONE)
            return "give .loss (one for every output) or .losses (one per output), not both";
        if (!o->losses || o->n_losses < 1)
            return "give .losses with .n_losses >= 1";
        for (int i = 0; i < o->n_losses; i++) {
            if (o->losses[i].kind <= TG_LOSS_NONE || o->losses[i].kind >= TG_LOSS_COUNT)
                return "every entry of .losses needs a .kind, e.g. {.kind = TG_LOSS_MSE}";
            if (o->losses[i].kind == TG_LOSS_CUSTOM && !o->losses[i].fn)
                return "a custom loss in .losses needs .fn";
        }
    } else {
        if (o->loss <= TG_LOSS_NONE || o->loss >= TG_LOSS_COUNT)
            return "give .loss, e.g. .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY";
        if (o->loss == TG_LOSS_CUSTOM && !o->loss_fn)
            return "a custom loss needs .loss_fn";
    }
    if (!o->loss_weights != !o->n_loss_weights || o->n_loss_weights < 0)
        return "give .loss_weights with its count .n_loss_weights";
    for (int i = 0; i < o->n_loss_weights; i++)
        if (!isfinite(o->loss_weights[i]))
            return "every loss weight must be finite";
    if (!o->output_metrics != !o->n_output_metrics || o->n_output_metrics < 0)
        return "give .output_metrics with its count .n_output_metrics";
    if (o->output_metrics && o->metrics.n)
        return "give .metrics (a model of one output) or .output_metrics (one list per output), not both";
    for (int i = 0; i < o->n_output_metrics; i++)
        if (o->output_metrics[i].n < 0 || (o->output_metrics[i].n && !o->output_metrics[i].kind))
            return "each of .output_metrics needs .kind for its .n metrics (TG_METRICS(...))";
    if (o->metrics.n < 0 || (o->metrics.n && !o->metrics.kind))
        return ".metrics needs .kind for its .n metrics (TG_METRICS(...))";
    return NULL;
}

/* A copy of a list's kinds that the compile owns (the caller's array lives only as long as
 * the call). */
static bool copy_metric_list(tg_loc loc, tg_metric_list *to, const tg_metric_list *from)
{
    free((void *)to->kind);
    *to = (tg_metric_list){0};
    if (from->n == 0)
        return true;
    tg_metric_kind *k = malloc(sizeof *k * (size_t)from->n);
    if (!k)
        return tg__failb(loc, "tg_compile: out of memory");
    memcpy(k, from->kind, sizeof *k * (size_t)from->n);
    *to = (tg_metric_list){.n = from->n, .kind = k};
    return true;
}

/* The per-output lists against the model's outputs; fills the compile's outputs. */
static bool set_outputs(tg_loc loc, tg_model *m, tg_compiled *c, const tg_compile_opts *o)
{
    int n = tg_model_n_outputs(m);
    const char *name = tg_model_name(m);
    if ((o->n_losses && o->n_losses != n) || (o->n_loss_weights && o->n_loss_weights != n) ||
        (o->n_output_metrics && o->n_output_metrics != n))
        return tg__failb(loc,
                         "tg_compile: model \"%s\" has %d output%s, but .losses has %d entries, .loss_weights %d "
                         "and .output_metrics %d: give one per output (or none)",
                         name, n, n == 1 ? "" : "s", o->n_losses, o->n_loss_weights, o->n_output_metrics);
    if (n > 1 && o->metrics.n)
        return tg__failb(loc,
                         "tg_compile: model \"%s\" has %d outputs: give its metrics as .output_metrics, one list "
                         "per output (Keras: metrics=[[...], [...]])",
                         name, n);
    if (n > 1 && o->distribute)
        return tg__failb(loc, "tg_compile: .distribute trains models of one output only (model \"%s\" has %d)", name,
                         n);
    if (n == 1) { /* the one-output compile, as before */
        if (o->n_losses)
            c->loss = o->losses[0];
        if (o->n_output_metrics && !copy_metric_list(loc, &c->requested, &o->output_metrics[0]))
            return false;
        c->weight = o->n_loss_weights ? o->loss_weights[0] : 1.0;
        return true;
    }
    if (!(c->outputs = calloc((size_t)n, sizeof *c->outputs)))
        return tg__failb(loc, "tg_compile: out of memory");
    c->n_outputs = n;
    for (int i = 0; i < n; i++) {
        tg__output_compile *out = &c->outputs[i];
        out->loss = o->n_losses ? o->losses[i] : c->loss;
        out->weight = o->n_loss_weights ? o->loss_weights[i] : 1.0;
        if (o->n_output_metrics && !copy_metric_list(loc, &out->requested, &o->output_metrics[i]))
            return false;
        char full[256];
        snprintf(full, sizeof full, "%s_loss", tg_model_output_name(m, i));
        if (!(out->loss_mean = tg_metric_new_at(loc, TG_METRIC_MEAN, (tg_metric_opts){.name = full})))
            return false;
    }
    return true;
}

static tg_compiled *new_compiled(tg_loc loc, tg_model *m, const tg_compile_opts *o)
{
    tg_compiled *c = calloc(1, sizeof *c);
    if (!c)
        return tg__fail(loc, "tg_compile: out of memory");
    *c = (tg_compiled){
        .optimizer = o->optimizer,
        .model = m,
        .loss = {.kind = o->loss,
                 .from_logits = o->from_logits,
                 .delta = o->delta,
                 .label_smoothing = o->label_smoothing,
                 .fn = o->loss_fn,
                 .user = o->loss_user},
        .loc = loc,
        .distribute = o->distribute,
    };
    c->loss_mean = tg_metric_new_at(loc, TG_METRIC_MEAN, (tg_metric_opts){.name = "loss"});
    if (!c->loss_mean || !copy_metric_list(loc, &c->requested, &o->metrics) || !set_outputs(loc, m, c, o) ||
        (tg_model_built(m) && !resolve(loc, m, c))) {
        c->optimizer = NULL; /* still the caller's */
        compiled_free(c);
        return NULL;
    }
    return c;
}

/* The model owns the optimizer only once compile succeeds; a failed compile leaves both
 * the caller's optimizer and the model's previous compile as they were. */
/* The optimizer's reducer at an accumulation boundary: the summed gradients averaged
 * over the ranks, each weighed by the rows it saw since the last update. */
static int reduce_window(tg_loc loc, tg_tensor **grads, int n, void *user)
{
    tg_compiled *c = user;
    double samples = c->window_samples;
    c->window_samples = 0;
    return tg_allreduce_gradients_at(loc, grads, n, (tg_allreduce_opts){.samples = samples});
}

int tg_compile_at(tg_loc loc, tg_model *m, tg_compile_opts o)
{
    if (!tg__model_check(loc, "tg_compile", m))
        return -1;
    const char *bad = opts_problem(&o);
    if (bad)
        return tg__failf(loc, "tg_compile: %s", bad);
    for (int k = -1; k < o.n_output_metrics; k++) {
        const tg_metric_list *l = k < 0 ? &o.metrics : &o.output_metrics[k];
        for (int i = 0; i < l->n; i++)
            if (l->kind[i] != TG_ACCURACY && (unsigned)l->kind[i] >= TG_METRIC_COUNT)
                return tg__failf(loc,
                                 "tg_compile: metric %d is not a tg_metric_kind (use TG_ACCURACY or TG_METRIC_...)",
                                 (int)l->kind[i]);
    }
    if (o.distribute && tg_distributed_init_at(loc) != 0)
        return -1;
    tg_compiled *old = tg__compiled(m);
    bool kept = old && old->optimizer == o.optimizer; /* Keras's recompile with the same optimizer */
    tg_compiled *c = new_compiled(loc, m, &o);
    if (!c)
        return -1;
    if (!tg__optimizer_take(loc, o.optimizer, m)) {
        c->optimizer = NULL;
        compiled_free(c);
        return -1;
    }
    if (kept)
        old->optimizer = NULL; /* the new compile owns it; freeing the old one keeps it */
    tg__model_attach(m, c, compiled_free);
    tg__optimizer_set_reducer(c->optimizer, tg__accumulates_locally(m) ? reduce_window : NULL, c);
    return 0;
}

bool tg__accumulates_locally(const tg_model *m)
{
    return tg_model_distributed(m) && tg__optimizer_accumulation_steps(tg_model_optimizer(m)) > 1;
}

static int agree_step_now(tg_loc loc, tg_model *m, bool failed, double rows)
{
    double v[2] = {failed, failed ? tg_distributed_rank() : 0};
    if (tg__dist_allreduce_f64(loc, "tg_fit", v, 2, TG_DIST_SUM) != 0 || failed)
        return -1; /* a failed rank keeps its own error */
    if (v[0] > 0)
        return tg__failf(loc, "tg_fit: %s failed in this step (its own error says why)",
                         v[0] == 1 ? "a rank" : "several ranks");
    tg__compiled(m)->window_samples += rows;
    return 0;
}

typedef struct agree_arg {
    tg_model *m;
    double rows;
} agree_arg;

static int agree_step_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const agree_arg *a = arg;
    (void)in, (void)n;
    return agree_step_now(loc, a->m, false, a->rows);
}

int tg__agree_step(tg_loc loc, tg_model *m, bool failed, double rows)
{
    if (failed || !tg__ctx()->trace) /* a failed step is not kept as a graph */
        return agree_step_now(loc, m, failed, rows);
    if (tg__trace_nested())
        return tg__failf(loc, "tg_fit: a distributed step with gradient accumulation inside tg_cond or "
                              "tg_while_loop is not supported");
    tg__trace_keeps_batch("gradient accumulation's rows");
    if (tg__trace_host(loc, agree_step_replayed, &(agree_arg){m, rows}, sizeof(agree_arg), NULL, 0, NULL, 0) != 0)
        return -1;
    struct tg_fgraph *g = tg__trace_pause();
    int rc = agree_step_now(loc, m, false, rows);
    tg__trace_resume(g);
    return rc;
}

tg_optimizer *tg_model_optimizer(const tg_model *m)
{
    tg_compiled *c = tg__compiled(m);
    return c ? c->optimizer : NULL;
}

bool tg_model_distributed(const tg_model *m)
{
    tg_compiled *c = tg__compiled(m);
    return c && c->distribute && tg_distributed_size() > 1;
}

bool tg__writes_files(const tg_model *m) { return !tg_model_distributed(m) || tg_distributed_rank() == 0; }

/* ---- does the loss fit the output? ------------------------------------------------------- */
static bool is_cross_entropy(tg_loss_kind k)
{
    return k == TG_LOSS_BINARY_CROSSENTROPY || k == TG_LOSS_CATEGORICAL_CROSSENTROPY ||
           k == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
}

static bool check_loss_fits(tg_loc loc, tg_model *m, const tg_loss *loss, int output)
{
    tg_layer *out_layer = tg__model_output_layer(m, output);
    tg_shape out = tg_layer_output_shape(out_layer);
    int64_t width = out.rank > 0 ? out.dims[out.rank - 1] : 1;
    tg_loss_kind k = loss->kind;
    const char *name = tg_loss_name(k);
    if ((k == TG_LOSS_CATEGORICAL_CROSSENTROPY || k == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) && width == 1) {
        tg__fail(loc,
                 "tg_compile: %s on a 1-unit output is always zero: normalising one class over itself gives "
                 "1, so the gradient is zero and the model cannot learn (TF trains silently with loss ~1e-7). Use "
                 "TG_LOSS_BINARY_CROSSENTROPY with a sigmoid output for two classes, or give the last layer one "
                 "unit per class",
                 name);
        return false;
    }
    tg_activation act = tg_layer_activation(out_layer);
    bool probs = act == TG_SOFTMAX || act == TG_SIGMOID;
    if (is_cross_entropy(k) && loss->from_logits && probs)
        tg__warn(loc,
                 "tg_compile: %s received .from_logits = true, but the output is produced by a %s activation "
                 "and thus does not represent logits. Was this intended?",
                 name, tg_activation_name(act));
    if (is_cross_entropy(k) && !loss->from_logits && act == TG_LINEAR)
        tg__warn(loc,
                 "tg_compile: %s expects probabilities, but the last layer has no activation (its outputs are "
                 "logits): pass .from_logits = true, or end the model with a %s activation",
                 name, k == TG_LOSS_BINARY_CROSSENTROPY ? "sigmoid" : "softmax");
    if (k == TG_LOSS_BINARY_CROSSENTROPY && act == TG_SOFTMAX && width == 1)
        tg__warn(loc, "tg_compile: softmax over a 1-unit output is always 1: use a sigmoid activation with "
                      "binary_crossentropy");
    return true;
}

bool tg__resolve_compiled(tg_loc loc, tg_model *m)
{
    tg_compiled *c = tg__compiled(m);
    return !c || resolve(loc, m, c);
}

/* The options of a compiled metric: Keras's defaults; MeanIoU counts the output's classes,
 * takes the argmax of its scores, and reads labels as the loss does. */
static tg_metric_opts compiled_metric_opts(tg_metric_kind k, tg_loss_kind loss, const tg_shape *out, const char *name)
{
    tg_metric_opts o = {.k = 5, .threshold = 0.5, .num_thresholds = 200, .beta = 1.0, .name = name};
    if (k == TG_METRIC_MEAN_IOU) {
        o.num_classes = out->rank ? out->dims[out->rank - 1] : 1;
        o.argmax_y_pred = true;
        o.argmax_y_true = loss != TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    }
    return o;
}

/* Output i's metrics, named "<output>_<metric>" (Keras's names for several outputs). */
static bool resolve_output(tg_loc loc, tg_model *m, tg_compiled *c, int i)
{
    tg__output_compile *out = &c->outputs[i];
    if (!check_loss_fits(c->loc, m, &out->loss, i))
        return false;
    tg_shape s = tg_layer_output_shape(tg__model_output_layer(m, i));
    tg_shape batch_out = {.rank = s.rank + 1, .dims = {1}};
    memcpy(batch_out.dims + 1, s.dims, sizeof(int64_t) * (size_t)s.rank);
    if (out->requested.n && !out->metrics && !(out->metrics = calloc((size_t)out->requested.n, sizeof *out->metrics)))
        return tg__failb(loc, "tg_compile: out of memory");
    for (int k = 0; k < out->requested.n; k++) {
        tg_metric_kind kind = out->requested.kind[k];
        const char *base = kind == TG_ACCURACY ? "accuracy" : tg_metric_kind_name(kind);
        if (kind == TG_ACCURACY)
            kind = tg_resolve_accuracy(out->loss.kind, &batch_out);
        char name[256];
        snprintf(name, sizeof name, "%s_%s", tg_model_output_name(m, i), base);
        if (!(out->metrics[out->n_metrics] =
                  tg_metric_new_at(loc, kind, compiled_metric_opts(kind, out->loss.kind, &s, name))))
            return false;
        out->n_metrics++;
    }
    return true;
}

static bool resolve(tg_loc loc, tg_model *m, tg_compiled *c)
{
    if (c->resolved)
        return true;
    for (int i = 0; i < c->n_outputs; i++)
        if (!resolve_output(loc, m, c, i))
            return false;
    if (c->n_outputs) {
        c->resolved = true;
        return true;
    }
    if (!check_loss_fits(c->loc, m, &c->loss, 0))
        return false;
    tg_shape out = tg__model_output_shape(m);
    tg_shape batch_out = {.rank = out.rank + 1, .dims = {1}};
    memcpy(batch_out.dims + 1, out.dims, sizeof(int64_t) * (size_t)out.rank);
    if (c->requested.n && !c->metrics && !(c->metrics = calloc((size_t)c->requested.n, sizeof *c->metrics)))
        return tg__failb(loc, "tg_compile: out of memory");
    for (int i = 0; i < c->requested.n; i++) {
        tg_metric_kind k = c->requested.kind[i];
        tg_metric_opts o = compiled_metric_opts(k, c->loss.kind, &out, NULL);
        if (k == TG_ACCURACY) {
            k = tg_resolve_accuracy(c->loss.kind, &batch_out);
            o.name = "accuracy"; /* Keras logs metrics=['accuracy'] as "accuracy" */
        }
        if (!(c->metrics[c->n_metrics] = tg_metric_new_at(loc, k, o)))
            return false;
        c->n_metrics++;
    }
    c->resolved = true;
    return true;
}

/* ---- labels ------------------------------------------------------------------------------ */
static bool integral_values(const tg_tensor *y)
{
    int64_t n = tg_size(y);
    for (int64_t i = 0; i < n; i++) {
        double v = tg__get(y, i);
        if (v != floor(v))
            return false;
    }
    return true;
}

static bool check_labels(tg_loc loc, tg_shape out, tg_loss_kind k, const tg_tensor *y, const char *what);

bool tg__check_labels(tg_loc loc, tg_model *m, const tg_tensor *y, const char *what)
{
    tg_compiled *c = tg__compiled(m);
    if (c->n_outputs)
        return tg__check_output_labels(loc, m, 0, y, what);
    return check_labels(loc, tg__model_output_shape(m), c->loss.kind, y, what);
}

bool tg__check_output_labels(tg_loc loc, tg_model *m, int i, const tg_tensor *y, const char *what)
{
    tg_compiled *c = tg__compiled(m);
    tg_shape out = tg_layer_output_shape(tg__model_output_layer(m, i));
    return check_labels(loc, out, c->n_outputs ? c->outputs[i].loss.kind : c->loss.kind, y, what);
}

static bool check_labels(tg_loc loc, tg_shape out, tg_loss_kind k, const tg_tensor *y, const char *what)
{
    int64_t width = out.rank > 0 ? out.dims[out.rank - 1] : 1;
    char ys[TG_SHAPE_STR_MAX];
    tg_shape yshape = tg_shape_of(y);
    tg__shape_str(&yshape, ys, sizeof ys);
    if (k == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY) {
        /* Keras: one class index per position of the output but its last axis, e.g. per
         * step of a sequence model's (steps, classes) output: labels (N, steps) */
        bool per_step =
            out.rank >= 2 && (yshape.rank == out.rank || (yshape.rank == out.rank + 1 && yshape.dims[out.rank] == 1));
        for (int d = 0; per_step && d + 1 < out.rank; d++)
            per_step = yshape.dims[d + 1] == out.dims[d];
        if (out.rank < 2 && yshape.rank == 2 && yshape.dims[1] == width && width > 1 && tg_dtype_is_float(y->dtype))
            return tg__failb(loc,
                             "%s has shape %s, one column per class: these look like one-hot labels. Use "
                             "TG_LOSS_CATEGORICAL_CROSSENTROPY, or pass class indices of shape (N,)",
                             what, ys);
        if (!per_step && (yshape.rank > 2 || (yshape.rank == 2 && yshape.dims[1] != 1)))
            return tg__failb(loc,
                             "%s has shape %s; sparse_categorical_crossentropy takes one class index per "
                             "sample, shape (N,) or (N, 1)%s",
                             what, ys, out.rank >= 2 ? ", or one per position of the output but its last axis" : "");
        if (tg_dtype_is_float(y->dtype) && !integral_values(y))
            return tg__failb(loc, "%s holds non-integer values; sparse_categorical_crossentropy takes class indices",
                             what);
        int64_t n = tg_size(y);
        for (int64_t i = 0; i < n; i++) {
            double v = tg__get(y, i);
            if (v < 0 || v >= (double)width)
                return tg__failb(loc,
                                 "%s[%lld] = %g is out of range: the model has %lld classes, so labels must be "
                                 "in [0, %lld)",
                                 what, (long long)i, v, (long long)width, (long long)width);
        }
        return true;
    }
    if (k == TG_LOSS_CATEGORICAL_CROSSENTROPY && yshape.rank == 1 && width > 1)
        return tg__failb(loc,
                         "%s has shape %s: class indices, but categorical_crossentropy takes one-hot labels of "
                         "shape (N, %lld). Use TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY for class indices",
                         what, ys, (long long)width);
    if (k != TG_LOSS_CUSTOM) {
        int64_t label_width = yshape.rank >= 2 ? yshape.dims[yshape.rank - 1] : 1;
        if (label_width != width)
            return tg__failb(loc,
                             "%s has shape %s but the model's output has %lld values per sample; %s compares "
                             "them one to one",
                             what, ys, (long long)width, tg_loss_name(k));
    }
    return true;
}

/* ---- loss and metrics of a batch ------------------------------------------------------------ */
/* Keras's Trainer.compute_loss: the compiled loss plus sum(model.losses), the
 * regularizers' penalties, in the loss's dtype. */
static tg_tensor *with_regularization(tg_loc loc, tg_model *m, tg_tensor *loss)
{
    uint64_t errors = tg__error_count();
    tg_tensor *reg = loss ? tg_model_regularization_loss_at(loc, m) : NULL;
    if (!reg) /* none, or a failure (a new error) */
        return tg__error_count() != errors ? NULL : loss;
    if (tg_dtype_of(reg) != tg_dtype_of(loss))
        reg = tg_cast_at(loc, reg, tg_dtype_of(loss));
    return tg_add_at(loc, loss, reg);
}

/* Keras's apply_mask: y_pred's mask (tg_model_output_mask) folded into the sample weights.
 * For a loss's mean (sum_over_batch_size) the valid steps weigh total / (valid + 1e-7), so
 * the mean runs over them; metrics ("sum") weigh them 1. */
static const tg_tensor *mask_weights_of(tg_loc loc, const tg_tensor *mask, const tg_tensor *y_pred, const tg_tensor *sw,
                                        bool mean)
{
    if (!mask || !y_pred)
        return sw;
    tg_tensor *w = tg_cast_at(loc, mask, tg_dtype_of(y_pred));
    if (mean) {
        tg_tensor *valid = tg_sum_at(loc, w, (tg_reduce_opts){0});
        tg_tensor *scale = tg_div_at(loc, tg__count_like(loc, mask, valid, ~0u),
                                     tg_add_at(loc, valid, tg_scalar_like_at(loc, valid, 1e-7)));
        w = tg_mul_at(loc, w, scale);
    }
    if (!sw || !w)
        return w;
    tg_tensor *s = tg_cast_at(loc, sw, tg_dtype_of(w)); /* (batch,) against (batch, steps): Keras's expand */
    while (s && tg_rank(s) < tg_rank(w))
        s = tg_expand_dims_at(loc, s, -1);
    return tg_mul_at(loc, w, s);
}

static const tg_tensor *mask_weights(tg_loc loc, const tg_model *m, const tg_tensor *y_pred, const tg_tensor *sw,
                                     bool mean)
{
    return mask_weights_of(loc, y_pred ? tg_model_output_mask(m, y_pred) : NULL, y_pred, sw, mean);
}

tg_tensor *tg_model_compute_loss_at(tg_loc loc, tg_model *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                                    const tg_tensor *sample_weight)
{
    sample_weight = mask_weights(loc, m, y_pred, sample_weight, true);
    tg_compiled *c = tg__compiled(m);
    if (!c)
        return tg__fail(loc, "No loss to compute. Provide a `loss` argument in `compile()` (call tg_compile first).");
    if (c->n_outputs)
        return tg__fail(loc,
                        "tg_model_compute_loss: model \"%s\" has %d outputs: use tg_model_compute_loss_list with "
                        "one label tensor and one prediction per output",
                        tg_model_name(m), c->n_outputs);
    tg_tensor *loss = tg_compute_loss_at(loc, &c->loss, y_true, y_pred, sample_weight);
    if (loss && c->weight != 1.0)
        loss = tg_mul_at(loc, loss, tg_scalar_like_at(loc, loss, c->weight));
    return with_regularization(loc, m, loss);
}

/* Keras's CompileLoss: each output's loss times its weight, summed. */
tg_tensor *tg_model_compute_loss_list_at(tg_loc loc, tg_model *m, const tg_tensor *const *y_true,
                                         tg_tensor *const *y_pred, int n, const tg_tensor *sample_weight,
                                         tg_tensor **per_output)
{
    tg_compiled *c = tg__compiled(m);
    if (!c)
        return tg__fail(loc, "No loss to compute. Provide a `loss` argument in `compile()` (call tg_compile first).");
    int want = c->n_outputs ? c->n_outputs : 1;
    if (n != want || !y_true || !y_pred)
        return tg__fail(loc, "tg_model_compute_loss_list: model \"%s\" has %d output%s, but %d were given",
                        tg_model_name(m), want, want == 1 ? "" : "s", n);
    if (!c->n_outputs) {
        tg_tensor *loss = tg_model_compute_loss_at(loc, m, y_true[0], y_pred[0], sample_weight);
        if (per_output)
            per_output[0] = loss;
        return loss;
    }
    tg_tensor *total = NULL;
    for (int i = 0; i < n; i++) {
        const tg__output_compile *out = &c->outputs[i];
        tg_tensor *v = tg_compute_loss_at(loc, &out->loss, y_true[i], y_pred[i],
                                          mask_weights(loc, m, y_pred[i], sample_weight, true));
        if (v && out->weight != 1.0)
            v = tg_mul_at(loc, v, tg_scalar_like_at(loc, v, out->weight));
        if (!v)
            return NULL;
        if (per_output)
            per_output[i] = v;
        total = total ? tg_add_at(loc, total, v) : v;
    }
    return with_regularization(loc, m, total);
}

static int update_metrics_list(tg_model *m, const tg_tensor *const *y_true, tg_tensor *const *y_pred, int n,
                               const tg_tensor *sample_weight, tg_tensor *const *per_output, const tg_tensor *loss,
                               tg_tensor *const *folded);
static int update_metrics(tg_model *m, const tg_tensor *y_true, const tg_tensor *y_pred, const tg_tensor *sample_weight,
                          const tg_tensor *loss, bool folded);

/* In a traced step the metrics' update is recorded (Keras's metric update ops): it runs on
 * the step's values at every call. Its inputs: y_true[n], y_pred[n], per_output[n] (NULL
 * where none), sample_weight, loss, then each output's metric weights: the sample weights
 * with y_pred's mask folded in while tracing (a graph's values carry no mask). */
typedef struct metrics_arg {
    tg_model *m;
    int n;
    bool list, per_output;
} metrics_arg;

static int update_metrics_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int count)
{
    const metrics_arg *a = arg;
    int n = a->n;
    (void)loc, (void)count;
    if (!a->list)
        return update_metrics(a->m, in[0], in[1], in[5], in[4], true);
    return update_metrics_list(a->m, (const tg_tensor *const *)in, in + n, n, in[3 * n],
                               a->per_output ? in + 2 * n : NULL, in[3 * n + 1], in + 3 * n + 2);
}

static int traced_metrics(metrics_arg a, const tg_tensor *const *y_true, tg_tensor *const *y_pred,
                          const tg_tensor *sample_weight, tg_tensor *const *per_output, const tg_tensor *loss)
{
    int n = a.n;
    tg_tensor **in = tg__arena_alloc(tg__ctx()->scope, sizeof *in * (size_t)(4 * n + 2));
    if (!in)
        return tg__failf((tg_loc){0}, "tg_model_update_metrics: out of memory");
    for (int i = 0; i < n; i++) {
        in[i] = (tg_tensor *)y_true[i];
        in[n + i] = y_pred[i];
        in[2 * n + i] = per_output ? per_output[i] : NULL;
        in[3 * n + 2 + i] = (tg_tensor *)mask_weights((tg_loc){0}, a.m, y_pred[i], sample_weight, false);
    }
    in[3 * n] = (tg_tensor *)sample_weight;
    in[3 * n + 1] = (tg_tensor *)loss;
    int r = tg__trace_host((tg_loc){0}, update_metrics_replayed, &a, sizeof a, in, 4 * n + 2, NULL, 0);
    tg__trace_host_shape_free(); /* the metrics read the shapes they get */
    if (r != 0)
        return r < 0 ? -1 : 0;
    struct tg_fgraph *g = tg__trace_pause();
    int rc = update_metrics_replayed((tg_loc){0}, &a, in, 4 * n + 2);
    tg__trace_resume(g);
    return rc;
}

int tg_model_update_metrics_list(tg_model *m, const tg_tensor *const *y_true, tg_tensor *const *y_pred, int n,
                                 const tg_tensor *sample_weight, tg_tensor *const *per_output, const tg_tensor *loss)
{
    if (tg__ctx()->trace && n > 0 && y_true && y_pred)
        return traced_metrics((metrics_arg){m, n, true, per_output != NULL}, y_true, y_pred, sample_weight, per_output,
                              loss);
    return update_metrics_list(m, y_true, y_pred, n, sample_weight, per_output, loss, NULL);
}

/* folded: each output's metric weights, its mask already folded in (a traced update's), or
 * NULL to fold them here. */
static int update_metrics_list(tg_model *m, const tg_tensor *const *y_true, tg_tensor *const *y_pred, int n,
                               const tg_tensor *sample_weight, tg_tensor *const *per_output, const tg_tensor *loss,
                               tg_tensor *const *folded)
{
    tg_compiled *c = tg__compiled(m);
    if (!c)
        return tg__failf((tg_loc){0}, "tg_model_update_metrics_list: the model is not compiled");
    if (!c->n_outputs)
        return n == 1
                   ? update_metrics(m, y_true[0], y_pred[0], folded ? folded[0] : sample_weight, loss, folded != NULL)
                   : tg__failf((tg_loc){0}, "tg_model_update_metrics_list: the model has 1 output, not %d", n);
    if (n != c->n_outputs)
        return tg__failf((tg_loc){0}, "tg_model_update_metrics_list: the model has %d outputs, not %d", c->n_outputs,
                         n);
    double rows = (double)tg_dim(y_pred[0], 0);
    if (loss && tg_metric_update_value(c->loss_mean, tg_item_at((tg_loc){0}, loss), rows) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        tg__output_compile *out = &c->outputs[i];
        if (per_output && per_output[i] &&
            tg_metric_update_value(out->loss_mean, tg_item_at((tg_loc){0}, per_output[i]), rows) != 0)
            return -1;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c->outputs[i].n_metrics; k++)
            if (tg_metric_update_state(c->outputs[i].metrics[k], y_true[i], y_pred[i],
                                       folded ? folded[i]
                                              : mask_weights((tg_loc){0}, m, y_pred[i], sample_weight, false)) != 0)
                return -1;
    return 0;
}

int tg_model_update_metrics(tg_model *m, const tg_tensor *y_true, const tg_tensor *y_pred,
                            const tg_tensor *sample_weight, const tg_tensor *loss)
{
    if (tg__ctx()->trace)
        return traced_metrics((metrics_arg){m, 1, false, false}, &y_true, (tg_tensor *const[]){(tg_tensor *)y_pred},
                              sample_weight, NULL, loss);
    return update_metrics(m, y_true, y_pred, sample_weight, loss, false);
}

/* folded: sample_weight already holds y_pred's mask (a traced update's). */
static int update_metrics(tg_model *m, const tg_tensor *y_true, const tg_tensor *y_pred, const tg_tensor *sample_weight,
                          const tg_tensor *loss, bool folded)
{
    tg_compiled *c = tg__compiled(m);
    if (!c)
        return tg__failf((tg_loc){0}, "tg_model_update_metrics: the model is not compiled");
    if (loss && tg_metric_update_value(c->loss_mean, tg_item_at((tg_loc){0}, loss), (double)tg_dim(y_pred, 0)) != 0)
        return -1;
    if (!folded)
        sample_weight = mask_weights((tg_loc){0}, m, y_pred, sample_weight, false);
    for (int i = 0; i < c->n_metrics; i++)
        if (tg_metric_update_state(c->metrics[i], y_true, y_pred, sample_weight) != 0)
            return -1;
    return 0;
}

static int logs_put(tg_logs *logs, const char *name, double value);
static void metric_logs(const tg_model *m, tg_logs *logs);

/* In a traced step the logs are filled at every call, from the metrics' states. */
typedef struct logs_arg {
    const tg_model *m;
    tg_logs *logs;
} logs_arg;

static int metric_logs_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const logs_arg *a = arg;
    (void)loc, (void)in, (void)n;
    metric_logs(a->m, a->logs);
    return 0;
}

void tg_model_metric_logs(const tg_model *m, tg_logs *logs)
{
    if (tg__trace_host((tg_loc){0}, metric_logs_replayed, &(logs_arg){m, logs}, sizeof(logs_arg), NULL, 0, NULL, 0) ==
        0)
        metric_logs(m, logs);
}

static void metric_logs(const tg_model *m, tg_logs *logs)
{
    tg_compiled *c = tg__compiled(m);
    if (!c || !logs)
        return;
    logs_put(logs, "loss", tg_metric_result(c->loss_mean));
    for (int i = 0; i < c->n_metrics; i++)
        logs_put(logs, tg_metric_name(c->metrics[i]), tg_metric_result(c->metrics[i]));
    for (int i = 0; i < c->n_outputs; i++) /* Keras: the outputs' losses, then their metrics */
        logs_put(logs, tg_metric_name(c->outputs[i].loss_mean), tg_metric_result(c->outputs[i].loss_mean));
    for (int i = 0; i < c->n_outputs; i++)
        for (int k = 0; k < c->outputs[i].n_metrics; k++)
            logs_put(logs, tg_metric_name(c->outputs[i].metrics[k]), tg_metric_result(c->outputs[i].metrics[k]));
}

/* A confusion metric's result over every rank's counts: they are summed into a copy, the
 * result read from it, and the rank's own counts left as they were. (Each rank has the
 * counts once it has seen a batch, and every rank sees every step.) */
static int reduce_counts(tg_loc loc, const char *func, tg_metric *metric, tg_logs *logs)
{
    int64_t n;
    double *counts = tg__metric_counts(metric, &n);
    if (!counts)
        return 0;
    double *mine = malloc(sizeof(double) * (size_t)n);
    if (!mine)
        return tg__failf(loc, "%s: out of memory", func);
    memcpy(mine, counts, sizeof(double) * (size_t)n);
    int rc = tg__dist_allreduce_f64(loc, func, counts, n, TG_DIST_SUM);
    if (rc == 0)
        tg_logs_set(logs, tg_metric_name(metric), tg_metric_result(metric));
    memcpy(counts, mine, sizeof(double) * (size_t)n);
    free(mine);
    return rc;
}

int tg__reduce_metrics(tg_loc loc, tg_model *m, const char *func, bool failed, tg_logs *logs)
{
    tg_compiled *c = tg__compiled(m);
    if (!c || !tg_model_distributed(m))
        return failed ? -1 : 0;
    double *state = calloc((size_t)(2 * (c->n_metrics + 1) + 2), sizeof *state);
    if (!state)
        return tg__failf(loc, "%s: out of memory", func);
    tg__metric_state(c->loss_mean, &state[0], &state[1]);
    for (int i = 0; i < c->n_metrics; i++)
        tg__metric_state(c->metrics[i], &state[2 * (i + 1)], &state[2 * (i + 1) + 1]);
    int k = 2 * (c->n_metrics + 1);
    state[k] = failed; /* how many ranks failed, and the sum of their ranks */
    state[k + 1] = failed ? tg_distributed_rank() : 0;
    if (tg__dist_allreduce_f64(loc, func, state, k + 2, TG_DIST_SUM) != 0 || failed) { /* failed: its own error */
        free(state);
        return -1;
    }
    if (state[k] > 0) {
        int rc = state[k] == 1 ? tg__failf(loc, "%s: rank %d of %d failed (its own error says why)", func,
                                           (int)state[k + 1], tg_distributed_size())
                               : tg__failf(loc, "%s: %d of the %d ranks failed (their own errors say why)", func,
                                           (int)state[k], tg_distributed_size());
        free(state);
        return rc;
    }
    /* Keras's Mean, total / count; a value no rank updated (a custom step that logs its
     * own) is left as the step logged it */
    for (int i = 0; i <= c->n_metrics; i++) {
        double total = state[2 * i], count = state[2 * i + 1];
        if (count != 0)
            tg_logs_set(logs, i ? tg_metric_name(c->metrics[i - 1]) : "loss", total / count);
    }
    free(state);
    for (int i = 0; i < c->n_metrics; i++)
        if (reduce_counts(loc, func, c->metrics[i], logs) != 0)
            return -1;
    return 0;
}

int tg__reduce_metric_logs(tg_loc loc, tg_model *m, tg_logs *logs)
{
    return tg__reduce_metrics(loc, m, "tg_fit", false, logs);
}

void tg_model_reset_metrics(tg_model *m)
{
    tg_compiled *c = tg__compiled(m);
    if (!c)
        return;
    tg_metric_reset_state(c->loss_mean);
    for (int i = 0; i < c->n_metrics; i++)
        tg_metric_reset_state(c->metrics[i]);
    for (int i = 0; i < c->n_outputs; i++) {
        tg_metric_reset_state(c->outputs[i].loss_mean);
        for (int k = 0; k < c->outputs[i].n_metrics; k++)
            tg_metric_reset_state(c->outputs[i].metrics[k]);
    }
}

/* ---- logs ------------------------------------------------------------------------------------ */
/* Log names are few and repeat every step: each is kept once for the program's life, so
 * logs copy by value and hold names of any length. */
typedef struct interned {
    struct interned *next;
    char name[];
} interned;
static interned *names_pool;
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *intern(const char *name)
{
    pthread_mutex_lock(&names_lock);
    interned *e = names_pool;
    while (e && strcmp(e->name, name) != 0)
        e = e->next;
    if (!e && (e = malloc(sizeof *e + strlen(name) + 1))) {
        strcpy(e->name, name);
        e->next = names_pool;
        names_pool = e;
    }
    pthread_mutex_unlock(&names_lock);
    return e ? e->name : NULL;
}

/* The room the logs use: their own (pointed at again, as a copy's pointers are the
 * original's) until they grow onto the heap. */
static void logs_room(tg_logs *logs)
{
    if (logs->cap == 0) {
        logs->names = logs->inline_names;
        logs->values = logs->inline_values;
    }
}

/* A value logged from C inside a traced step would be the one traced: the step runs
 * eagerly instead (tg_fit's fallback) or, in a plain tg_function, it is an error. */
int tg_logs_set(tg_logs *logs, const char *name, double value)
{
    if (!tg__trace_refuse_read((tg_loc){0}, "tg_logs_set"))
        return -1;
    return logs_put(logs, name, value);
}

static int logs_put(tg_logs *logs, const char *name, double value)
{
    logs_room(logs);
    for (int i = 0; i < logs->n; i++)
        if (strcmp(logs->names[i], name) == 0) {
            logs->values[i] = value;
            return 0;
        }
    int room = logs->cap ? logs->cap : TG_LOGS_INLINE;
    if (logs->n == room) { /* onto the heap, doubling */
        int cap = 2 * room;
        const char **names = malloc(sizeof *names * (size_t)cap);
        double *values = malloc(sizeof *values * (size_t)cap);
        if (!names || !values) {
            free(names);
            free(values);
            return -1;
        }
        memcpy(names, logs->names, sizeof *names * (size_t)logs->n);
        memcpy(values, logs->values, sizeof *values * (size_t)logs->n);
        if (logs->cap) {
            free(logs->names);
            free(logs->values);
        }
        logs->names = names;
        logs->values = values;
        logs->cap = cap;
    }
    const char *kept = intern(name);
    if (!kept)
        return -1;
    logs->names[logs->n] = kept;
    logs->values[logs->n++] = value;
    return 0;
}

void tg_logs_free(tg_logs *logs)
{
    if (!logs)
        return;
    if (logs->cap) {
        free(logs->names);
        free(logs->values);
    }
    logs->n = logs->cap = 0;
    logs->names = NULL;
    logs->values = NULL;
}

double tg_logs_get(const tg_logs *logs, const char *name)
{
    if (!logs)
        return NAN;
    const char *const *names = logs->cap ? logs->names : logs->inline_names;
    const double *values = logs->cap ? logs->values : logs->inline_values;
    for (int i = 0; i < logs->n; i++)
        if (strcmp(names[i], name) == 0)
            return values[i];
    return NAN;
}
