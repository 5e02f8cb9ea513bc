/* Checkpoints of a model: its variables, its optimizer's state and iteration count, in
 * one safetensors file (io layer), and Keras's ModelCheckpoint callback. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../io/io_impl.h"
#include "../tensor/tensor_impl.h"
#include "train_impl.h"

#define OPT_PREFIX "optimizer/"

/* "optimizer/<slot>/<variable>": where a slot of the optimizer's state is saved. */
static const char *slot_name(const tg_optimizer_slot *slot, char *buf, size_t size)
{
    snprintf(buf, size, OPT_PREFIX "%s/%s", slot->name, tg_variable_name(slot->variable));
    return buf;
}

/* The iteration count is a float's exponent in Adam's bias correction: past 2^53 it is
 * no longer exact, and a file that says more is damaged. */
#define MAX_ITERATIONS (INT64_C(1) << 53)

static const tg_meta_key ITERATIONS = {"tapegrad_iterations", TG_META_INT, 0, MAX_ITERATIONS, false, NULL};

/* Where fit left off (tg_model_get_fit_position): all three keys or none. The seed is a
 * uint64_t, beyond TG_META_INT's int64 range, so it is text of 1 to 20 digits. */
enum { POS_EPOCH, POS_STEP, POS_SEED, POS_KEYS };
static const tg_meta_key POSITION[POS_KEYS] = {
    {"tapegrad_epoch", TG_META_INT, 0, INT32_MAX, false, NULL},
    {"tapegrad_step", TG_META_INT, 0, INT64_MAX, false, NULL},
    {"tapegrad_seed", TG_META_TEXT, 1, 20, false, NULL},
};

/* `meta` with the model's fit position added, when it has one; frees `meta`. */
static char *with_position(tg_loc loc, const tg_model *m, char *meta)
{
    const tg__fit_position *p = tg__model_fit_position(m);
    if (!meta || !p || !p->set)
        return meta;
    char values[POS_KEYS][32];
    snprintf(values[POS_EPOCH], sizeof values[0], "%d", p->epoch);
    snprintf(values[POS_STEP], sizeof values[0], "%lld", (long long)p->step);
    snprintf(values[POS_SEED], sizeof values[0], "%llu", (unsigned long long)p->seed);
    for (int k = 0; k < POS_KEYS && meta; k++) {
        char *more = tg__metadata_with(loc, "tg_model_save", meta, POSITION[k].key, values[k]);
        free(meta);
        meta = more;
    }
    return meta;
}

/* The file's fit position into *pos (pos->set false when it has none). Returns 0 or -1. */
static int read_position(tg_loc loc, const tg_safetensors *st, tg__fit_position *pos)
{
    tg_meta_value v[POS_KEYS];
    *pos = (tg__fit_position){0};
    if (tg_safetensors_read_metadata_at(loc, st, POSITION, POS_KEYS, v) != 0)
        return -1;
    int present = v[POS_EPOCH].present + v[POS_STEP].present + v[POS_SEED].present;
    if (present == 0)
        return 0;
    if (present != POS_KEYS)
        return tg__failf(loc,
                         "tg_model_load: the file has %s of tapegrad_epoch, tapegrad_step and tapegrad_seed: "
                         "a fit position needs all three (the file is damaged or was edited)",
                         present == 1 ? "one" : "two");
    const char *t = v[POS_SEED].text;
    bool digits = true;
    for (const char *c = t; *c; c++)
        digits &= *c >= '0' && *c <= '9';
    errno = 0;
    unsigned long long seed = digits ? strtoull(t, NULL, 10) : 0;
    if (!digits || errno == ERANGE)
        return tg__failf(loc,
                         "tg_model_load: tapegrad_seed \"%s\" is not a seed: expected a whole number from 0 to "
                         "%llu",
                         t, (unsigned long long)UINT64_MAX);
    *pos = (tg__fit_position){.set = true, .epoch = (int)v[POS_EPOCH].i, .step = v[POS_STEP].i, .seed = seed};
    return 0;
}

int tg_model_save_at(tg_loc loc, tg_model *m, const char *path, const char *metadata_json)
{
    if (!m || !path)
        return tg__failf(loc, "tg_model_save: give a model and a path");
    if (!tg_model_built(m))
        return tg__failf(loc, "tg_model_save: the model has no weights yet (build it, or call it once)");
    int nv = 0;
    tg_tensor *const *vars = tg_model_variables_at((tg_loc){0}, m, &nv);
    if (!vars) /* out of memory: a file without the weights would replace a good one */
        return -1;
    tg_optimizer *opt = tg_model_optimizer(m);
    int ns = opt ? tg_optimizer_state_count(opt) : 0;
    tg_scope *s = tg_scope_begin_at(loc);
    if (!s)
        return -1;
    tg_tensor **tensors = calloc((size_t)(nv + ns), sizeof *tensors);
    char **names = calloc((size_t)(nv + ns), sizeof *names);
    char *meta = NULL;
    int rc = -1, n = 0;
    if (!tensors || !names) {
        tg__fail(loc, "tg_model_save: out of memory");
        goto done;
    }
    for (; n < nv; n++) {
        tensors[n] = vars[n];
        names[n] = strdup(tg_variable_name(vars[n]));
    }
    for (int i = 0; i < ns; i++) {
        tg_optimizer_slot slot;
        if (tg_optimizer_state(opt, i, &slot) != 0 || !slot.variable)
            continue;
        char name[256];
        tensors[n] = tg_tensor_from_at(loc, slot.dtype, tg_shape_of(slot.variable), slot.data);
        names[n++] = strdup(slot_name(&slot, name, sizeof name));
    }
    for (int i = 0; i < n; i++)
        if (!tensors[i] || !names[i]) {
            if (!tg_has_error())
                tg__fail(loc, "tg_model_save: out of memory");
            goto done;
        }
    char iterations[32];
    snprintf(iterations, sizeof iterations, "%lld", opt ? (long long)tg_optimizer_iterations(opt) : 0LL);
    if (!(meta = with_position(loc, m,
                               tg__metadata_with(loc, "tg_model_save", metadata_json, ITERATIONS.key, iterations))))
        goto done;
    char *whole = tg__model_file_metadata(loc, m, meta); /* the architecture and the compile */
    free(meta);
    if (!(meta = whole))
        goto done;
    rc = tg_save_safetensors_at(loc, path, tensors, (const char *const *)names, n, meta);
done:
    free(meta);
    for (int i = 0; names && i < nv + ns; i++)
        free(names[i]);
    free(names);
    free(tensors);
    tg_scope_end_at(loc, s);
    return rc;
}

/* Restores the optimizer's slots for the model's trainable variables from the file. */
/* The optimizer's slots for the model's trainable variables, read from the file into a
 * scope; with `apply`, copied into the optimizer. Checking first and applying only after
 * the weights loaded means a bad file changes nothing. */
static int load_optimizer(tg_loc loc, tg_model *m, const tg_safetensors *st, bool apply)
{
    tg_optimizer *opt = tg_model_optimizer(m);
    tg_meta_value iters;
    if (tg_safetensors_read_metadata_at(loc, st, &ITERATIONS, 1, &iters) != 0)
        return -1;
    if (!opt || !iters.present)
        return 0;
    int nt = 0;
    tg_tensor *const *train = tg_model_trainable_variables(m, &nt);
    if (!train || tg_optimizer_build_at(loc, opt, train, nt) != 0)
        return -1;
    int ns = tg_optimizer_state_count(opt);
    for (int i = 0; i < ns; i++) {
        tg_optimizer_slot slot;
        if (tg_optimizer_state(opt, i, &slot) != 0 || !slot.variable)
            continue;
        char name[256];
        tg_shape shape;
        if (tg_safetensors_info(st, slot_name(&slot, name, sizeof name), &shape, NULL) != 0)
            continue; /* a file from another optimizer: its state starts fresh */
        tg_tensor *t = tg_safetensors_get_at(loc, st, name);
        if (!t || t->dtype != slot.dtype || t->size != slot.count)
            return tg__failf(loc, "tg_model_load: optimizer state '%s' does not match its variable", name);
        if (apply)
            memcpy(slot.data, t->data, (size_t)t->size * tg_dtype_size(t->dtype));
    }
    return apply ? tg_optimizer_set_iterations_at(loc, opt, iters.i) : 0;
}

/* Weights, optimizer state and metadata all come through st's one descriptor: a save by
 * another process meanwhile (a rename over the path) cannot mix two files. */
int tg_model_load_from_at(tg_loc loc, tg_model *m, const tg_safetensors *st)
{
    if (!m || !st)
        return tg__failf(loc, "tg_model_load: give a model and a file");
    if (tg__model_file_prepare(loc, m, st) != 0) /* built for the file; its architecture checked */
        return -1;
    int nv = 0;
    tg_tensor *const *vars = tg_model_variables_at((tg_loc){0}, m, &nv);
    tg_scope *s = tg_scope_begin_at(loc);
    tg__fit_position pos;
    int rc = vars && s ? read_position(loc, st, &pos) : -1;
    if (rc == 0)
        rc = load_optimizer(loc, m, st, false);
    if (rc == 0)
        rc = tg__load_into_open(loc, st, vars, nv);
    if (rc == 0)
        rc = load_optimizer(loc, m, st, true);
    if (rc == 0 && pos.set) /* a file without one leaves the model's as it was */
        *tg__model_fit_position(m) = pos;
    if (s)
        tg_scope_end_at(loc, s);
    return rc;
}

int tg_model_load_at(tg_loc loc, tg_model *m, const char *path)
{
    if (!m || !path)
        return tg__failf(loc, "tg_model_load: give a model and a path");
    tg_safetensors *st = tg_safetensors_open_at(loc, path);
    if (!st)
        return -1;
    int rc = tg_model_load_from_at(loc, m, st);
    tg_safetensors_close(st);
    return rc;
}

/* ---- ModelCheckpoint ------------------------------------------------------------------ */
typedef struct checkpoint {
    tg_callback cb;
    char *filepath, *monitor, *metadata;
    bool best_only, maximize;
    double best;
} checkpoint;

static int ckpt_epoch_end(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    checkpoint *c = (checkpoint *)cb;
    if (c->best_only) {
        double v = tg_logs_get(logs, c->monitor);
        if (isnan(v)) {
            tg__warn((tg_loc){0}, "ModelCheckpoint: can save best model only with %s available, skipping", c->monitor);
            return 0;
        }
        if (c->maximize ? !(v > c->best) : !(v < c->best))
            return 0;
        c->best = v;
    }
    if (!tg__writes_files(m)) /* a distributed fit: rank 0 writes, the others hold the same weights */
        return 0;
    char n[16];
    snprintf(n, sizeof n, "%d", epoch + 1);
    tg_loc here = {__FILE__, __LINE__};
    char *meta = tg__metadata_with(here, "ModelCheckpoint", c->metadata, "epoch", n);
    int rc = meta && tg_model_save_at(here, m, c->filepath, meta) == 0 ? 0 : -1;
    free(meta);
    return rc;
}

static int ckpt_train_begin(tg_callback *cb, tg_model *m, tg_logs *logs)
{
    (void)m;
    (void)logs;
    checkpoint *c = (checkpoint *)cb;
    c->best = c->maximize ? -INFINITY : INFINITY;
    return 0;
}

static void ckpt_free(tg_callback *cb)
{
    checkpoint *c = (checkpoint *)cb;
    free(c->filepath);
    free(c->monitor);
    free(c->metadata);
    tg__callback_retire(&c->cb);
}

tg_callback *tg_model_checkpoint_at(tg_loc loc, tg_model_checkpoint_opts o)
{
    if (!o.filepath || !*o.filepath)
        return tg__fail(loc, "tg_model_checkpoint: give .filepath");
    if (!o.monitor || (unsigned)o.mode > TG_MODE_MAX)
        return tg__fail(loc, "tg_model_checkpoint: .monitor must name a logged value and .mode be a tg_monitor_mode");
    checkpoint *c = calloc(1, sizeof *c);
    if (!c || !(c->filepath = strdup(o.filepath)) || !(c->monitor = strdup(o.monitor)) ||
        (o.metadata_json && !(c->metadata = strdup(o.metadata_json)))) {
        if (c)
            ckpt_free(&c->cb);
        return tg__fail(loc, "tg_model_checkpoint: out of memory");
    }
    c->best_only = o.save_best_only;
    c->maximize = o.mode == TG_MODE_MAX || (o.mode == TG_MODE_AUTO && strstr(o.monitor, "acc"));
    c->cb = (tg_callback){.on_train_begin = ckpt_train_begin, .on_epoch_end = ckpt_epoch_end, .free = ckpt_free};
    return &c->cb;
}
