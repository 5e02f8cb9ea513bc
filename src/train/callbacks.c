/* Callbacks (EarlyStopping, CSVLogger, LearningRateScheduler), the history of a fit,
 * and saved weights for restore_best_weights. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor_impl.h"
#include "train_impl.h"

/* The free hook of a freed callback. Its struct is retired (kept, never reused), so a
 * stale handle finds this mark instead of freed memory or another callback. */
static void freed_mark(tg_callback *cb) { (void)cb; }

void tg__callback_retire(tg_callback *cb)
{
    *cb = (tg_callback){.free = freed_mark};
    tg__retire(cb);
}

bool tg__callback_freed(const tg_callback *cb) { return cb && cb->free == freed_mark; }

void tg_callback_free_at(tg_loc loc, tg_callback *cb)
{
    if (tg__callback_freed(cb)) {
        tg__fail(loc, "tg_callback_free: the callback was already freed");
        return;
    }
    if (cb && cb->free)
        cb->free(cb);
}

/* ---- history --------------------------------------------------------------------------------- */
typedef struct history_key {
    const char *name; /* the logs' (kept for the program's life) */
    double *values;   /* one per epoch; NaN where an epoch did not log it */
} history_key;

struct tg_history {
    int epochs;
    int n_keys, cap_keys;
    history_key *keys;
};

tg_history *tg__history_new(void) { return calloc(1, sizeof(tg_history)); }

bool tg__history_append(tg_history *h, const tg_logs *logs)
{
    for (int i = 0; i < logs->n; i++) {
        int k = 0;
        while (k < h->n_keys && strcmp(h->keys[k].name, logs->names[i]) != 0)
            k++;
        if (k == h->n_keys) {
            if (h->n_keys == h->cap_keys) {
                int cap = h->cap_keys ? 2 * h->cap_keys : 16;
                history_key *p = realloc(h->keys, sizeof *p * (size_t)cap);
                if (!p)
                    return tg__failb((tg_loc){0}, "tg_fit: out of memory for the history");
                h->keys = p;
                h->cap_keys = cap;
            }
            h->keys[k] = (history_key){.name = logs->names[i]};
            if (h->epochs > 0) { /* a key new after the first epoch: NaN before it */
                if (!(h->keys[k].values = malloc(sizeof(double) * (size_t)h->epochs)))
                    return tg__failb((tg_loc){0}, "tg_fit: out of memory for the history");
                for (int e = 0; e < h->epochs; e++)
                    h->keys[k].values[e] = NAN;
            }
            h->n_keys++;
        }
    }
    for (int k = 0; k < h->n_keys; k++) {
        double *v = realloc(h->keys[k].values, sizeof(double) * (size_t)(h->epochs + 1));
        if (!v)
            return tg__failb((tg_loc){0}, "tg_fit: out of memory for the history");
        h->keys[k].values = v;
        v[h->epochs] = tg_logs_get(logs, h->keys[k].name);
        if (k >= logs->n && isnan(v[h->epochs]) && h->epochs > 0)
            v[h->epochs] = NAN;
    }
    h->epochs++;
    return true;
}

int tg_history_epochs(const tg_history *h) { return h ? h->epochs : 0; }
int tg_history_n_keys(const tg_history *h) { return h ? h->n_keys : 0; }
const char *tg_history_key(const tg_history *h, int i) { return h && i >= 0 && i < h->n_keys ? h->keys[i].name : NULL; }

const double *tg_history_get(const tg_history *h, const char *key, int *n)
{
    for (int k = 0; h && key && k < h->n_keys; k++)
        if (strcmp(h->keys[k].name, key) == 0) {
            if (n)
                *n = h->epochs;
            return h->keys[k].values;
        }
    if (n)
        *n = 0;
    return NULL;
}

void tg_history_free(tg_history *h)
{
    if (!h)
        return;
    for (int k = 0; k < h->n_keys; k++)
        free(h->keys[k].values);
    free(h->keys);
    free(h);
}

/* ---- saved weights ------------------------------------------------------------------------- */
struct tg_weights {
    int n;
    void **data;
};

tg_weights *tg__weights_save(tg_model *m)
{
    int n = 0;
    tg_tensor *const *vars = tg_model_variables_at((tg_loc){0}, m, &n);
    if (!vars)
        return NULL;
    tg_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->data = calloc((size_t)(n ? n : 1), sizeof(void *)))) {
        free(w);
        return tg__fail((tg_loc){0}, "out of memory saving weights");
    }
    w->n = n;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)vars[i]->size * tg_dtype_size(vars[i]->dtype);
        if (!(w->data[i] = malloc(bytes ? bytes : 1))) {
            tg__weights_free(w);
            return tg__fail((tg_loc){0}, "out of memory saving weights");
        }
        memcpy(w->data[i], vars[i]->data, bytes);
    }
    return w;
}

int tg__weights_restore(tg_model *m, const tg_weights *w)
{
    int n = 0;
    tg_tensor *const *vars = tg_model_variables_at((tg_loc){0}, m, &n);
    if (n != w->n)
        return tg__failf((tg_loc){0}, "restore weights: the model has %d variables, %d were saved", n, w->n);
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)vars[i]->size * tg_dtype_size(vars[i]->dtype);
        memcpy(tg__variable_begin_write((tg_loc){__FILE__, __LINE__}, vars[i]), w->data[i], bytes);
    }
    return 0;
}

void tg__weights_free(tg_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->data[i]);
    free(w->data);
    free(w);
}

/* ---- EarlyStopping (Keras 3's rules) --------------------------------------------------------- */
typedef struct early_stopping {
    tg_callback cb;
    tg_early_stopping_opts o;
    char *monitor; /* a copy, of any length */
    bool maximize;
    double best;
    int wait, stopped_epoch, best_epoch;
    tg_weights *best_weights;
} early_stopping;

/* Whether a monitored value should grow: Keras's mode, and for auto its metrics whose
 * direction is "up" (accuracies, AUC, precision, recall, F-scores, IoU). */
static bool maximizes(const char *monitor, tg_monitor_mode mode)
{
    static const char *const up[] = {"acc", "auc", "precision", "recall", "f1", "iou"};
    if (mode != TG_MODE_AUTO)
        return mode == TG_MODE_MAX;
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++)
        if (strstr(monitor, up[i]))
            return true;
    return false;
}

/* MonitorCallback._is_improvement: better than best by more than min_delta. */
static bool better(bool maximize, double current, double best, double min_delta)
{
    double delta = fabs(min_delta);
    return maximize ? current - delta > best : current + delta < best;
}

static bool improved(const early_stopping *e, double current)
{
    return better(e->maximize, current, e->best, e->o.min_delta);
}

static int es_train_begin(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)m;
    (void)logs;
    early_stopping *e = (early_stopping *)cb;
    e->wait = e->stopped_epoch = e->best_epoch = 0;
    e->best = e->maximize ? -INFINITY : INFINITY;
    tg__weights_free(e->best_weights);
    e->best_weights = NULL;
    return 0;
}

static int es_epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    early_stopping *e = (early_stopping *)cb;
    double current = tg_logs_get(logs, e->monitor);
    if (isnan(current)) {
        tg__warn(e->o.monitor ? (tg_loc){0} : (tg_loc){0},
                 "EarlyStopping: early stopping conditioned on metric `%s` which is not available", e->monitor);
        return 0;
    }
    if (epoch < e->o.start_from_epoch)
        return 0;
    e->wait++;
    if (improved(e, current)) {
        e->best = current;
        e->best_epoch = epoch;
        if (e->o.restore_best_weights) {
            tg__weights_free(e->best_weights);
            if (!(e->best_weights = tg__weights_save(m)))
                return -1;
        }
        e->wait = 0;
        return 0;
    }
    if (e->wait >= e->o.patience && epoch > 0) {
        e->stopped_epoch = epoch;
        return 1;
    }
    return 0;
}

static int es_train_end(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)logs;
    early_stopping *e = (early_stopping *)cb;
    if (e->o.restore_best_weights && e->best_weights)
        return tg__weights_restore(m, e->best_weights) == 0 ? 0 : -1;
    return 0;
}

static void es_free(tg_callback *cb)
{
    early_stopping *e = (early_stopping *)cb;
    tg__weights_free(e->best_weights);
    free(e->monitor);
    tg__callback_retire(&e->cb);
}

tg_callback *tg_early_stopping_at(tg_loc loc, tg_early_stopping_opts o)
{
    if (!o.monitor || !*o.monitor)
        return tg__fail(loc, "tg_early_stopping: .monitor must name a logged value, e.g. \"val_loss\"");
    if (o.patience < 0 || (unsigned)o.mode > TG_MODE_MAX)
        return tg__fail(loc, "tg_early_stopping: patience must be >= 0 and mode a tg_monitor_mode");
    early_stopping *e = calloc(1, sizeof *e);
    if (!e || !(e->monitor = strdup(o.monitor))) {
        free(e);
        return tg__fail(loc, "tg_early_stopping: out of memory");
    }
    e->o = o;
    e->maximize = maximizes(o.monitor, o.mode);
    e->cb = (tg_callback){
        .on_train_begin = es_train_begin, .on_epoch_end = es_epoch_end, .on_train_end = es_train_end, .free = es_free};
    return &e->cb;
}

int tg_early_stopping_stopped_epoch(const tg_callback *cb)
{
    return cb && cb->free == es_free ? ((const early_stopping *)cb)->stopped_epoch : 0;
}

/* ---- CSVLogger ------------------------------------------------------------------------------- */
typedef struct csv_logger {
    tg_callback cb;
    char *filename;
    char sep;
    bool append;
    FILE *f;
    bool header_written;
    tg_logs keys; /* the columns, fixed by the first epoch, sorted as Keras does */
} csv_logger;

static int cmp_names(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int csv_train_begin(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)logs;
    csv_logger *c = (csv_logger *)cb;
    if (!tg__writes_files(m)) /* a distributed fit: rank 0 logs the same values once */
        return 0;
    bool had_content = false;
    if (c->append) {
        FILE *r = fopen(c->filename, "r");
        if (r) {
            had_content = fgetc(r) != EOF;
            fclose(r);
        }
    }
    if (!(c->f = fopen(c->filename, c->append ? "a" : "w")))
        return tg__failf((tg_loc){0}, "CSVLogger: cannot open '%s' for writing: %s", c->filename, strerror(errno));
    c->header_written = had_content;
    tg_logs_free(&c->keys);
    return 0;
}

static int csv_epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m;
    csv_logger *c = (csv_logger *)cb;
    if (!c->f)
        return 0;
    if (c->keys.n == 0) {
        for (int i = 0; i < logs->n; i++)
            if (tg_logs_set(&c->keys, logs->names[i], 0) != 0)
                return tg__failf((tg_loc){0}, "CSVLogger: out of memory");
        qsort(c->keys.names, (size_t)c->keys.n, sizeof c->keys.names[0], cmp_names);
    }
    if (!c->header_written) {
        fprintf(c->f, "epoch");
        for (int i = 0; i < c->keys.n; i++)
            fprintf(c->f, "%c%s", c->sep, c->keys.names[i]);
        fputc('\n', c->f);
        c->header_written = true;
    }
    fprintf(c->f, "%d", epoch);
    for (int i = 0; i < c->keys.n; i++) {
        double v = tg_logs_get(logs, c->keys.names[i]);
        if (isnan(v))
            fprintf(c->f, "%cNA", c->sep);
        else
            fprintf(c->f, "%c%.17g", c->sep, v);
    }
    fputc('\n', c->f);
    fflush(c->f);
    return 0;
}

static int csv_train_end(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)m;
    (void)logs;
    csv_logger *c = (csv_logger *)cb;
    if (c->f && fclose(c->f) != 0) {
        c->f = NULL;
        return tg__failf((tg_loc){0}, "CSVLogger: writing '%s' failed: %s", c->filename, strerror(errno));
    }
    c->f = NULL;
    return 0;
}

static void csv_free(tg_callback *cb)
{
    csv_logger *c = (csv_logger *)cb;
    if (c->f)
        fclose(c->f);
    tg_logs_free(&c->keys);
    free(c->filename);
    tg__callback_retire(&c->cb);
}

tg_callback *tg_csv_logger_at(tg_loc loc, tg_csv_logger_opts o)
{
    if (!o.filename || !*o.filename)
        return tg__fail(loc, "tg_csv_logger: give .filename");
    csv_logger *c = calloc(1, sizeof *c);
    if (!c || !(c->filename = strdup(o.filename))) {
        free(c);
        return tg__fail(loc, "tg_csv_logger: out of memory");
    }
    c->sep = o.separator ? o.separator : ',';
    c->append = o.append;
    c->cb = (tg_callback){.on_train_begin = csv_train_begin,
                          .on_epoch_end = csv_epoch_end,
                          .on_train_end = csv_train_end,
                          .free = csv_free};
    return &c->cb;
}

/* ---- ReduceLROnPlateau (keras/src/callbacks/reduce_lr_on_plateau.py) ------------------------------- */
typedef struct plateau {
    tg_callback cb;
    tg_reduce_lr_on_plateau_opts o;
    char *monitor; /* a copy, of any length */
    bool maximize;
    double best;
    int wait, cooldown_counter;
} plateau;

static int plateau_train_begin(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)m, (void)logs;
    plateau *p = (plateau *)cb;
    p->best = p->maximize ? -INFINITY : INFINITY;
    p->wait = p->cooldown_counter = 0;
    return 0;
}

static int plateau_epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)epoch;
    plateau *p = (plateau *)cb;
    tg_optimizer *opt = tg_model_optimizer(m);
    double lr = tg_optimizer_current_lr(opt), current = tg_logs_get(logs, p->monitor);
    tg_logs_set(logs, "learning_rate", lr);
    if (isnan(current)) {
        tg__warn((tg_loc){0}, "Learning rate reduction is conditioned on metric `%s` which is not available",
                 p->monitor);
        return 0;
    }
    if (p->cooldown_counter > 0) {
        p->cooldown_counter--;
        p->wait = 0;
    }
    if (better(p->maximize, current, p->best, p->o.min_delta)) {
        p->best = current;
        p->wait = 0;
    } else if (p->cooldown_counter == 0 && ++p->wait >= p->o.patience && lr > (double)(float)p->o.min_lr) {
        double next = fmax(lr * p->o.factor, p->o.min_lr);
        if (tg_optimizer_set_learning_rate(opt, next) != 0) /* the epoch logs the rate it ran with */
            return -1;
        p->cooldown_counter = p->o.cooldown;
        p->wait = 0;
    }
    return 0;
}

static void plateau_free(tg_callback *cb)
{
    free(((plateau *)cb)->monitor);
    tg__callback_retire(cb);
}

tg_callback *tg_reduce_lr_on_plateau_at(tg_loc loc, tg_reduce_lr_on_plateau_opts o)
{
    if (!o.monitor || !*o.monitor)
        return tg__fail(loc, "tg_reduce_lr_on_plateau: .monitor must name a logged value, e.g. \"val_loss\"");
    if (!(o.factor < 1.0) || !(o.factor >= 0))
        return tg__fail(loc,
                        "tg_reduce_lr_on_plateau: ReduceLROnPlateau does not support a factor >= 1.0 (or "
                        "negative). Received factor=%g",
                        o.factor);
    if (o.patience < 0 || o.cooldown < 0 || !(o.min_lr >= 0) || (unsigned)o.mode > TG_MODE_MAX)
        return tg__fail(loc, "tg_reduce_lr_on_plateau: patience, cooldown and min_lr must be >= 0 and mode a "
                             "tg_monitor_mode");
    plateau *p = calloc(1, sizeof *p);
    if (!p || !(p->monitor = strdup(o.monitor))) {
        free(p);
        return tg__fail(loc, "tg_reduce_lr_on_plateau: out of memory");
    }
    p->o = o;
    p->maximize = maximizes(o.monitor, o.mode);
    p->cb =
        (tg_callback){.on_train_begin = plateau_train_begin, .on_epoch_end = plateau_epoch_end, .free = plateau_free};
    return &p->cb;
}

/* ---- TerminateOnNaN ---------------------------------------------------------------------------------- */
typedef struct terminate_on_nan {
    tg_callback cb;
    bool raise_error;
} terminate_on_nan;

static bool logged(const tg_logs *logs, const char *name)
{
    for (int i = 0; logs && i < logs->n; i++)
        if (!strcmp(logs->names[i], name))
            return true;
    return false;
}

static int nan_batch_end(tg_callback *cb, tg_model *m, int64_t batch, tg_logs *logs)
{
    (void)m;
    double loss = tg_logs_get(logs, "loss");
    if (isfinite(loss) || !logged(logs, "loss")) /* a step that logs no loss is not checked */
        return 0;
    if (((terminate_on_nan *)cb)->raise_error)
        return tg__failf((tg_loc){0},
                         "NaN or Inf loss encountered at batch %lld. Loss value: %g. Terminating training "
                         "immediately.",
                         (long long)batch, loss);
    fprintf(stderr, "Batch %lld: Invalid loss, terminating training\n", (long long)batch);
    return 1;
}

static void nan_free(tg_callback *cb) { tg__callback_retire(cb); }

tg_callback *tg_terminate_on_nan_at(tg_loc loc, tg_terminate_on_nan_opts o)
{
    terminate_on_nan *t = calloc(1, sizeof *t);
    if (!t)
        return tg__fail(loc, "tg_terminate_on_nan: out of memory");
    t->raise_error = o.raise_error;
    t->cb = (tg_callback){.on_batch_end = nan_batch_end, .free = nan_free};
    return &t->cb;
}

/* ---- LearningRateScheduler ------------------------------------------------------------------ */
typedef struct lr_scheduler {
    tg_callback cb;
    tg_lr_schedule_fn fn;
    void *user;
} lr_scheduler;

static int lr_epoch_begin(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)logs;
    lr_scheduler *s = (lr_scheduler *)cb;
    tg_optimizer *opt = tg_model_optimizer(m);
    double lr = s->fn(epoch, tg_optimizer_current_lr(opt), s->user);
    if (!isfinite(lr))
        return tg__failf((tg_loc){0}, "LearningRateScheduler: the schedule returned %g for epoch %d", lr, epoch);
    return tg_optimizer_set_learning_rate(opt, lr) == 0 ? 0 : -1;
}

static int lr_epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)cb;
    (void)epoch;
    tg_logs_set(logs, "learning_rate", tg_optimizer_current_lr(tg_model_optimizer(m)));
    return 0;
}

static void lr_free(tg_callback *cb) { tg__callback_retire(cb); }

tg_callback *tg_learning_rate_scheduler_at(tg_loc loc, tg_lr_schedule_fn fn, void *user)
{
    if (!fn)
        return tg__fail(loc, "tg_learning_rate_scheduler: the schedule function is NULL");
    lr_scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return tg__fail(loc, "tg_learning_rate_scheduler: out of memory");
    s->fn = fn;
    s->user = user;
    s->cb = (tg_callback){.on_epoch_begin = lr_epoch_begin, .on_epoch_end = lr_epoch_end, .free = lr_free};
    return &s->cb;
}
