/* Whole-model files: the architecture (nn's config.c) and the compile (optimizer with its
 * hyper-parameters and schedule, losses, loss weights, metrics) stored beside the weights
 * in the safetensors metadata, as Keras 3's config.json stores them beside its weights:
 *
 *   tapegrad_format_version  "1"
 *   tapegrad_model           {"class_name": "Sequential", "config": {...},
 *                             "build_config": {...}, "compile_config": {...}}
 *
 * tg_model_load_file rebuilds the model from them, compiles it as it was and loads its
 * weights and optimizer state. Files from before the format (no tapegrad_model key) that
 * the tapegrad command wrote describe their model with a spec ("mlp:512,256") and a few
 * keys; those are rebuilt as the command builds them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../io/io_impl.h"
#include "../optim/optim_impl.h"
#include "train_impl.h"

#define FORMAT_VERSION 1

enum { KEY_VERSION, KEY_ARCH, N_ARCH_KEYS };
static const tg_meta_key ARCH_KEYS[N_ARCH_KEYS] = {
    [KEY_VERSION] = {"tapegrad_format_version", TG_META_INT, 1, INT32_MAX, false, NULL},
    [KEY_ARCH] = {"tapegrad_model", TG_META_TEXT, 2, INT32_MAX, false, NULL},
};

/* ---- the compile config ------------------------------------------------------------------------ */
static const struct optimizer_class {
    const char *name;  /* the optimizer's own (tg_optimizer.name) */
    const char *keras; /* Keras's class name */
} optimizer_classes[] = {
    {"SGD", "SGD"},     {"adam", "Adam"},     {"adamw", "AdamW"},       {"rmsprop", "RMSprop"}, {"adagrad", "Adagrad"},
    {"nadam", "Nadam"}, {"adamax", "Adamax"}, {"adadelta", "Adadelta"}, {"ftrl", "Ftrl"},       {"lion", "Lion"},
};
enum { N_OPTIMIZERS = sizeof optimizer_classes / sizeof optimizer_classes[0] };

/* Each hyper-parameter, by Keras's name, and the classes that have it ("" for all). */
typedef struct hyper_field {
    const char *key;
    size_t off;
    bool is_bool, is_int;
    const char *classes; /* space-separated Keras class names; NULL: every optimizer */
} hyper_field;
#define H(key, member, b, i, cls)                        \
    {                                                    \
        key, offsetof(tg_optim_hyper, member), b, i, cls \
    }
static const hyper_field hyper_fields[] = {
    H("weight_decay", weight_decay, false, false, NULL),
    H("clipnorm", clipnorm, false, false, NULL),
    H("clipvalue", clipvalue, false, false, NULL),
    H("global_clipnorm", global_clipnorm, false, false, NULL),
    H("use_ema", use_ema, true, false, NULL),
    H("ema_momentum", ema_momentum, false, false, NULL),
    H("ema_overwrite_frequency", ema_overwrite_frequency, false, true, NULL),
    H("gradient_accumulation_steps", accumulation_given, false, true, NULL),
    H("momentum", momentum, false, false, " SGD RMSprop "),
    H("nesterov", nesterov, true, false, " SGD "),
    H("beta_1", beta_1, false, false, " Adam AdamW Nadam Adamax Lion "),
    H("beta_2", beta_2, false, false, " Adam AdamW Nadam Adamax Lion "),
    H("epsilon", epsilon, false, false, " Adam AdamW Nadam Adamax RMSprop Adagrad Adadelta "),
    H("amsgrad", amsgrad, true, false, " Adam AdamW "),
    H("rho", rho, false, false, " RMSprop Adadelta "),
    H("centered", centered, true, false, " RMSprop "),
    H("initial_accumulator_value", initial_accumulator_value, false, false, " Adagrad Ftrl "),
    H("learning_rate_power", learning_rate_power, false, false, " Ftrl "),
    H("l1_regularization_strength", l1, false, false, " Ftrl "),
    H("l2_regularization_strength", l2, false, false, " Ftrl "),
    H("l2_shrinkage_regularization_strength", l2_shrinkage, false, false, " Ftrl "),
    H("beta", ftrl_beta, false, false, " Ftrl "),
};
enum { N_HYPER = sizeof hyper_fields / sizeof hyper_fields[0] };

static bool has_field(const hyper_field *f, const char *cls)
{
    char word[32];
    snprintf(word, sizeof word, " %s ", cls);
    return !f->classes || strstr(f->classes, word);
}

static const char *const schedule_classes[] = {
    [TG_SCHEDULE_EXPONENTIAL_DECAY] = "ExponentialDecay",
    [TG_SCHEDULE_PIECEWISE_CONSTANT] = "PiecewiseConstantDecay",
    [TG_SCHEDULE_COSINE_DECAY] = "CosineDecay",
    [TG_SCHEDULE_POLYNOMIAL_DECAY] = "PolynomialDecay",
    [TG_SCHEDULE_INVERSE_TIME_DECAY] = "InverseTimeDecay",
    [TG_SCHEDULE_COSINE_DECAY_RESTARTS] = "CosineDecayRestarts",
};

static void put_f64(tg__jbuf *b, const char *key, double v) { tg__jbuf_printf(b, "\"%s\":%.17g", key, v); }

static void put_schedule(tg__jbuf *b, const tg_schedule *s)
{
    tg__jbuf_printf(b, "{\"class_name\":\"%s\",\"config\":{", schedule_classes[s->kind]);
    put_f64(b, "initial_learning_rate", s->initial_learning_rate);
    tg__jbuf_printf(b, ",\"decay_steps\":%lld,", (long long)s->decay_steps);
    put_f64(b, "decay_rate", s->decay_rate);
    tg__jbuf_printf(b, ",\"staircase\":%s,", s->staircase ? "true" : "false");
    put_f64(b, "alpha", s->alpha), tg__jbuf_put(b, ",", 1);
    put_f64(b, "warmup_target", s->warmup_target);
    tg__jbuf_printf(b, ",\"warmup_steps\":%lld,", (long long)s->warmup_steps);
    put_f64(b, "end_learning_rate", s->end_learning_rate), tg__jbuf_put(b, ",", 1);
    put_f64(b, "power", s->power);
    tg__jbuf_printf(b, ",\"cycle\":%s,", s->cycle ? "true" : "false");
    put_f64(b, "t_mul", s->t_mul), tg__jbuf_put(b, ",", 1);
    put_f64(b, "m_mul", s->m_mul);
    tg__jbuf_put(b, ",\"boundaries\":[", 15);
    for (int i = 0; i < s->n_boundaries && i < TG_SCHEDULE_MAX_BOUNDARIES; i++)
        tg__jbuf_printf(b, "%s%lld", i ? "," : "", (long long)s->boundaries[i]);
    tg__jbuf_put(b, "],\"values\":[", 12);
    for (int i = 0; i <= s->n_boundaries && i <= TG_SCHEDULE_MAX_BOUNDARIES && s->n_boundaries; i++)
        tg__jbuf_printf(b, "%s%.17g", i ? "," : "", s->values[i]);
    tg__jbuf_put(b, "]}}", 3);
}

static bool put_optimizer(tg__jbuf *b, const tg_optimizer *opt)
{
    const char *cls = NULL;
    for (int i = 0; i < N_OPTIMIZERS && !cls; i++)
        if (!strcmp(optimizer_classes[i].name, opt->name))
            cls = optimizer_classes[i].keras;
    if (!cls)
        return false;
    tg__jbuf_printf(b, "{\"class_name\":\"%s\",\"config\":{\"learning_rate\":", cls);
    if (opt->h.schedule.kind > TG_SCHEDULE_NONE && opt->h.schedule.kind < TG_SCHEDULE_INVALID)
        put_schedule(b, &opt->h.schedule);
    else
        tg__jbuf_printf(b, "%.17g", opt->h.learning_rate);
    for (int i = 0; i < N_HYPER; i++) {
        const hyper_field *f = &hyper_fields[i];
        const char *p = (const char *)&opt->h + f->off;
        if (!has_field(f, cls))
            continue;
        if (f->is_bool)
            tg__jbuf_printf(b, ",\"%s\":%s", f->key, *(const bool *)p ? "true" : "false");
        else if (f->is_int)
            tg__jbuf_printf(b, ",\"%s\":%d", f->key, *(const int *)p);
        else
            tg__jbuf_put(b, ",", 1), put_f64(b, f->key, *(const double *)p);
    }
    tg__jbuf_put(b, "}}", 2);
    return true;
}

static void put_loss(tg__jbuf *b, const tg_loss *l)
{
    tg__jbuf_printf(b, "{\"class_name\":\"%s\",\"config\":{\"from_logits\":%s,", tg_loss_name(l->kind),
                    l->from_logits ? "true" : "false");
    put_f64(b, "label_smoothing", l->label_smoothing), tg__jbuf_put(b, ",", 1);
    put_f64(b, "delta", l->delta), tg__jbuf_put(b, ",", 1);
    put_f64(b, "alpha", l->alpha), tg__jbuf_put(b, ",", 1);
    put_f64(b, "gamma", l->gamma);
    tg__jbuf_put(b, "}}", 2);
}

static const char *metric_text(tg_metric_kind k) { return k == TG_ACCURACY ? "accuracy" : tg_metric_kind_name(k); }

static void put_metrics(tg__jbuf *b, const tg_metric_list *l)
{
    tg__jbuf_put(b, "[", 1);
    for (int i = 0; i < l->n; i++) {
        tg__jbuf_put(b, i ? "," : "", i ? 1 : 0);
        const char *n = metric_text(l->kind[i]);
        tg__jbuf_str(b, n ? n : "?", strlen(n ? n : "?"));
    }
    tg__jbuf_put(b, "]", 1);
}

/* Keras's compile_config, or false when there is none to write (not compiled, or a loss
 * that is a C function: the file keeps the weights and the architecture, and the model is
 * loaded uncompiled). */
static bool put_compile(tg__jbuf *b, const tg_model *m)
{
    const tg_compiled *c = tg__compiled(m);
    if (!c || !c->optimizer)
        return false;
    int n = c->n_outputs > 1 ? c->n_outputs : 1;
    for (int i = 0; i < n; i++)
        if ((n > 1 ? c->outputs[i].loss : c->loss).kind == TG_LOSS_CUSTOM)
            return false;
    tg__jbuf_put(b, ",\"compile_config\":{\"optimizer\":", 31);
    if (!put_optimizer(b, c->optimizer))
        return false;
    tg__jbuf_put(b, ",\"loss\":[", 9);
    for (int i = 0; i < n; i++) {
        tg__jbuf_put(b, i ? "," : "", i ? 1 : 0);
        put_loss(b, n > 1 ? &c->outputs[i].loss : &c->loss);
    }
    tg__jbuf_put(b, "],\"loss_weights\":[", 18);
    for (int i = 0; i < n; i++)
        tg__jbuf_printf(b, "%s%.17g", i ? "," : "", n > 1 ? c->outputs[i].weight : c->weight);
    tg__jbuf_put(b, "],\"metrics\":[", 13);
    for (int i = 0; i < n; i++) {
        tg__jbuf_put(b, i ? "," : "", i ? 1 : 0);
        put_metrics(b, n > 1 ? &c->outputs[i].requested : &c->requested);
    }
    tg__jbuf_put(b, "]}", 2);
    return true;
}

/* The metadata without an architecture, said in a warning: the weights are saved all the
 * same. */
static char *weights_only(tg_loc loc, const char *meta, const char *why)
{
    tg__warn(loc, "tg_model_save: the file keeps the weights but not the architecture: %s", why);
    char *copy = strdup(meta);
    return copy ? copy : tg__fail(loc, "tg_model_save: out of memory");
}

/* The architecture with the compile added: a jbuf holding a NUL-terminated text, or NULL
 * in b.s with an error when a layer cannot be saved. */
static tg__jbuf model_json(tg_loc loc, const tg_model *m)
{
    tg__jbuf b = {0};
    char *arch = tg__model_config_json(loc, m);
    if (!arch)
        return b;
    tg__jbuf_put(&b, arch, strlen(arch) - 1); /* without its closing brace */
    tg__jbuf c = {0};
    if (put_compile(&c, m) && !c.oom)
        tg__jbuf_put(&b, c.s, c.n);
    tg__jbuf_put(&b, "}", 2);
    free(arch);
    free(c.s);
    return b;
}

char *tg_model_to_json_at(tg_loc loc, const tg_model *m)
{
    if (!tg__model_check(loc, "tg_model_to_json", m))
        return NULL;
    tg__jbuf b = model_json(loc, m);
    if (b.oom) {
        free(b.s);
        return tg__fail(loc, "tg_model_to_json: out of memory");
    }
    return b.s;
}

char *tg__model_file_metadata(tg_loc loc, const tg_model *m, const char *meta)
{
    tg__jbuf b = model_json(loc, m);
    if (!b.s && !b.oom) { /* a layer without get_config */
        char why[1024];
        snprintf(why, sizeof why, "%s", tg_last_error() ? tg_last_error() : "");
        tg_clear_error();
        return weights_only(loc, meta, why);
    }
    tg__json check = {0};
    char err[128] = "";
    size_t pos = 0;
    bool readable = !b.oom && tg__json_parse(b.s, strlen(b.s), &check, err, sizeof err, &pos);
    tg__json_free(&check);
    if (!b.oom && !readable) { /* a value JSON cannot hold (a NaN option, a name not UTF-8) */
        char why[200];
        snprintf(why, sizeof why, "it is not JSON (%s)", err);
        free(b.s);
        return weights_only(loc, meta, why);
    }
    char version[16];
    snprintf(version, sizeof version, "%d", FORMAT_VERSION);
    char *with = b.oom ? NULL : tg__metadata_with(loc, "tg_model_save", meta, ARCH_KEYS[KEY_ARCH].key, b.s);
    char *out = with ? tg__metadata_with(loc, "tg_model_save", with, ARCH_KEYS[KEY_VERSION].key, version) : NULL;
    if (b.oom)
        tg__fail(loc, "tg_model_save: out of memory");
    free(b.s);
    free(with);
    return out;
}

/* ---- reading the compile config ---------------------------------------------------------------- */
typedef struct creader {
    tg_loc loc;
    const char *what;
    const tg__json *d;
} creader;

static const tg__json_node *N(const creader *r, int32_t i) { return &r->d->nodes[i]; }

static int32_t get(const creader *r, int32_t obj, const char *key)
{
    if (obj < 0 || N(r, obj)->kind != TG__J_OBJ)
        return -1;
    for (int32_t c = N(r, obj)->child; c >= 0; c = N(r, c)->next)
        if (N(r, c)->key_len == strlen(key) && !memcmp(N(r, c)->key, key, N(r, c)->key_len))
            return c;
    return -1;
}

static bool cbad(const creader *r, const char *part, const char *key, const char *must)
{
    return tg__failb(r->loc, "%s: compile_config: %s \"%s\" %s", r->what, part, key, must);
}

/* A constructor's or tg_compile's refusal of the file's values, said again of the file
 * (its message without the location, which is the loader's call). */
static bool said_of_compile(const creader *r)
{
    char why[1024];
    const char *e = tg_last_error() ? tg_last_error() : "refused";
    size_t n = r->loc.file ? strlen(r->loc.file) : 0;
    const char *rest = n && !strncmp(e, r->loc.file, n) && e[n] == ':' ? strstr(e + n + 1, ": ") : NULL;
    snprintf(why, sizeof why, "%s", rest ? rest + 2 : e);
    return tg__failb(r->loc, "%s: compile_config: %s", r->what, why);
}

static bool num(const creader *r, int32_t obj, const char *part, const char *key, double *out)
{
    int32_t v = get(r, obj, key);
    if (v < 0 || N(r, v)->kind != TG__J_NUM)
        return cbad(r, part, key, v < 0 ? "is missing" : "must be a number");
    *out = N(r, v)->d;
    return true;
}

static bool whole(const creader *r, int32_t obj, const char *part, const char *key, int64_t lo, int64_t hi,
                  int64_t *out)
{
    int32_t v = get(r, obj, key);
    if (v < 0 || N(r, v)->kind != TG__J_NUM || !N(r, v)->is_int || N(r, v)->i < lo || N(r, v)->i > hi)
        return cbad(r, part, key, v < 0 ? "is missing" : "must be a whole number in range");
    *out = N(r, v)->i;
    return true;
}

static bool flag(const creader *r, int32_t obj, const char *part, const char *key, bool *out)
{
    int32_t v = get(r, obj, key);
    if (v < 0 || (N(r, v)->kind != TG__J_TRUE && N(r, v)->kind != TG__J_FALSE))
        return cbad(r, part, key, v < 0 ? "is missing" : "must be true or false");
    *out = N(r, v)->kind == TG__J_TRUE;
    return true;
}

static const char *text(const creader *r, int32_t v)
{
    return v >= 0 && N(r, v)->kind == TG__J_STR && strlen(N(r, v)->str) == N(r, v)->str_len ? N(r, v)->str : NULL;
}

static bool read_schedule(const creader *r, int32_t obj, tg_schedule *s)
{
    const char *cls = text(r, get(r, obj, "class_name"));
    int32_t c = get(r, obj, "config");
    *s = (tg_schedule){0};
    for (int k = TG_SCHEDULE_EXPONENTIAL_DECAY; cls && k < TG_SCHEDULE_INVALID; k++)
        if (!strcmp(cls, schedule_classes[k]))
            s->kind = (tg_schedule_kind)k;
    if (!s->kind || c < 0)
        return cbad(r, "the optimizer's", "learning_rate",
                    "must be a number or a known schedule's {class_name, config}");
    const char *p = "the schedule's";
    int32_t bs = get(r, c, "boundaries"), vs = get(r, c, "values");
    if (!num(r, c, p, "initial_learning_rate", &s->initial_learning_rate) ||
        !whole(r, c, p, "decay_steps", 0, INT64_MAX, &s->decay_steps) || !num(r, c, p, "decay_rate", &s->decay_rate) ||
        !flag(r, c, p, "staircase", &s->staircase) || !num(r, c, p, "alpha", &s->alpha) ||
        !num(r, c, p, "warmup_target", &s->warmup_target) ||
        !whole(r, c, p, "warmup_steps", 0, INT64_MAX, &s->warmup_steps) ||
        !num(r, c, p, "end_learning_rate", &s->end_learning_rate) || !num(r, c, p, "power", &s->power) ||
        !flag(r, c, p, "cycle", &s->cycle) || !num(r, c, p, "t_mul", &s->t_mul) || !num(r, c, p, "m_mul", &s->m_mul))
        return false;
    if (bs < 0 || vs < 0 || N(r, bs)->kind != TG__J_ARR || N(r, vs)->kind != TG__J_ARR ||
        N(r, bs)->count > TG_SCHEDULE_MAX_BOUNDARIES || N(r, vs)->count != (N(r, bs)->count ? N(r, bs)->count + 1 : 0))
        return cbad(r, p, "boundaries", "and \"values\" must be arrays of n and n + 1 numbers");
    int i = 0;
    for (int32_t e = N(r, bs)->child; e >= 0; e = N(r, e)->next, i++) {
        if (N(r, e)->kind != TG__J_NUM || !N(r, e)->is_int)
            return cbad(r, p, "boundaries", "must be whole numbers");
        s->boundaries[i] = N(r, e)->i;
    }
    s->n_boundaries = i;
    i = 0;
    for (int32_t e = N(r, vs)->child; e >= 0; e = N(r, e)->next, i++) {
        if (N(r, e)->kind != TG__J_NUM)
            return cbad(r, p, "values", "must be numbers");
        s->values[i] = N(r, e)->d;
    }
    return true;
}

static tg_optimizer *make_optimizer(tg_loc loc, int which, const tg_optim_hyper *h);

/* The optimizer its config describes, made by its constructor (which checks the values). */
static tg_optimizer *read_optimizer(const creader *r, int32_t obj)
{
    const char *cls = text(r, get(r, obj, "class_name"));
    int32_t c = get(r, obj, "config");
    int which = -1;
    for (int i = 0; cls && i < N_OPTIMIZERS; i++)
        if (!strcmp(cls, optimizer_classes[i].keras))
            which = i;
    if (which < 0 || c < 0)
        return cbad(r, "the optimizer's", "class_name",
                    "must name one of SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Ftrl, Lion, with a "
                    "\"config\""),
               NULL;
    tg_optim_hyper h = {0};
    int32_t lr = get(r, c, "learning_rate");
    if (lr >= 0 && N(r, lr)->kind == TG__J_OBJ) {
        if (!read_schedule(r, lr, &h.schedule))
            return NULL;
    } else if (!num(r, c, "the optimizer's", "learning_rate", &h.learning_rate)) {
        return NULL;
    }
    for (int i = 0; i < N_HYPER; i++) {
        const hyper_field *f = &hyper_fields[i];
        char *p = (char *)&h + f->off;
        int64_t v = 0;
        if (!has_field(f, cls))
            continue;
        bool ok = f->is_bool ? flag(r, c, "the optimizer's", f->key, (bool *)p)
                  : f->is_int
                      ? whole(r, c, "the optimizer's", f->key, INT32_MIN, INT32_MAX, &v) && (*(int *)p = (int)v, true)
                      : num(r, c, "the optimizer's", f->key, (double *)p);
        if (!ok)
            return NULL;
    }
#define COMMON                                                                                                        \
    .learning_rate = h.learning_rate, .schedule = h.schedule, .weight_decay = h.weight_decay, .clipnorm = h.clipnorm, \
    .clipvalue = h.clipvalue, .global_clipnorm = h.global_clipnorm, .use_ema = h.use_ema,                             \
    .ema_momentum = h.ema_momentum, .ema_overwrite_frequency = h.ema_overwrite_frequency,                             \
    .gradient_accumulation_steps = h.accumulation_given
    tg_optimizer *o = make_optimizer(r->loc, which, &h);
    if (!o)
        said_of_compile(r);
    return o;
}

/* Optimizer `which` of optimizer_classes, made from h by its constructor. */
static tg_optimizer *make_optimizer(tg_loc loc, int which, const tg_optim_hyper *hp)
{
    const tg_optim_hyper h = *hp;
    tg_adam_opts adam = {COMMON, .beta_1 = h.beta_1, .beta_2 = h.beta_2, .epsilon = h.epsilon, .amsgrad = h.amsgrad};
    switch (which) {
    case 0: return tg_sgd_at(loc, (tg_sgd_opts){COMMON, .momentum = h.momentum, .nesterov = h.nesterov});
    case 1: return tg_adam_at(loc, adam);
    case 2: return tg_adamw_at(loc, adam);
    case 3:
        return tg_rmsprop_at(loc, (tg_rmsprop_opts){COMMON, .rho = h.rho, .momentum = h.momentum, .epsilon = h.epsilon,
                                                    .centered = h.centered});
    case 4:
        return tg_adagrad_at(loc, (tg_adagrad_opts){COMMON, .initial_accumulator_value = h.initial_accumulator_value,
                                                    .epsilon = h.epsilon});
    case 5: return tg_nadam_at(loc, adam);
    case 6: return tg_adamax_at(loc, adam);
    case 7: return tg_adadelta_at(loc, (tg_adadelta_opts){COMMON, .rho = h.rho, .epsilon = h.epsilon});
    case 8:
        return tg_ftrl_at(loc,
                          (tg_ftrl_opts){COMMON, .learning_rate_power = h.learning_rate_power,
                                         .initial_accumulator_value = h.initial_accumulator_value,
                                         .l1_regularization_strength = h.l1, .l2_regularization_strength = h.l2,
                                         .l2_shrinkage_regularization_strength = h.l2_shrinkage, .beta = h.ftrl_beta});
    default: return tg_lion_at(loc, (tg_lion_opts){COMMON, .beta_1 = h.beta_1, .beta_2 = h.beta_2});
    }
#undef COMMON
}

static bool read_loss(const creader *r, int32_t obj, tg_loss *l)
{
    const char *cls = text(r, get(r, obj, "class_name"));
    int32_t c = get(r, obj, "config");
    *l = (tg_loss){.kind = cls ? tg_loss_kind_from_name(cls) : TG_LOSS_NONE};
    if (l->kind == TG_LOSS_NONE || l->kind == TG_LOSS_CUSTOM || c < 0)
        return cbad(r, "a", "loss", "must name a built-in loss with its \"config\"");
    const char *p = "the loss's";
    return flag(r, c, p, "from_logits", &l->from_logits) && num(r, c, p, "label_smoothing", &l->label_smoothing) &&
           num(r, c, p, "delta", &l->delta) && num(r, c, p, "alpha", &l->alpha) && num(r, c, p, "gamma", &l->gamma);
}

static bool read_metrics(const creader *r, int32_t arr, tg_metric_list *out)
{
    if (arr < 0 || N(r, arr)->kind != TG__J_ARR)
        return cbad(r, "each output's", "metrics", "must be an array of metric names");
    tg_metric_kind *kinds = calloc((size_t)N(r, arr)->count + 1, sizeof *kinds);
    if (!kinds)
        return tg__failb(r->loc, "%s: out of memory", r->what);
    int n = 0;
    for (int32_t e = N(r, arr)->child; e >= 0; e = N(r, e)->next) {
        const char *name = text(r, e);
        tg_metric_kind k = (tg_metric_kind)-1;
        if (name && !strcmp(name, "accuracy"))
            k = TG_ACCURACY;
        for (int i = 0; name && i < TG_METRIC_COUNT && k == (tg_metric_kind)-1; i++)
            if (tg_metric_kind_name((tg_metric_kind)i) && !strcmp(name, tg_metric_kind_name((tg_metric_kind)i)))
                k = (tg_metric_kind)i;
        if (k == (tg_metric_kind)-1) {
            free(kinds);
            return tg__failb(r->loc, "%s: compile_config: metric \"%.60s\" is not one tapegrad knows", r->what,
                             name ? name : "(not a string)");
        }
        kinds[n++] = k;
    }
    *out = (tg_metric_list){.n = n, .kind = kinds}; /* the caller frees kinds */
    return true;
}

/* Compiles m as its compile_config says (the model then owns the optimizer). */
static int compile_from(const creader *r, tg_model *m, int32_t cc)
{
    int n = tg_model_n_outputs(m);
    int32_t losses = get(r, cc, "loss"), weights = get(r, cc, "loss_weights"), metrics = get(r, cc, "metrics");
    if (losses < 0 || weights < 0 || metrics < 0 || N(r, losses)->kind != TG__J_ARR ||
        N(r, weights)->kind != TG__J_ARR || N(r, metrics)->kind != TG__J_ARR || N(r, losses)->count != n ||
        N(r, weights)->count != n || N(r, metrics)->count != n)
        return tg__failf(r->loc,
                         "%s: compile_config: \"loss\", \"loss_weights\" and \"metrics\" must be arrays of one "
                         "entry per output (the model has %d)",
                         r->what, n);
    tg_loss *ls = calloc((size_t)n, sizeof *ls);
    double *ws = calloc((size_t)n, sizeof *ws);
    tg_metric_list *ms = calloc((size_t)n, sizeof *ms);
    bool ok = ls && ws && ms;
    int32_t el = N(r, losses)->child, ew = N(r, weights)->child, em = N(r, metrics)->child;
    for (int i = 0; ok && i < n; i++, el = N(r, el)->next, ew = N(r, ew)->next, em = N(r, em)->next) {
        ok = read_loss(r, el, &ls[i]) && read_metrics(r, em, &ms[i]);
        if (ok && N(r, ew)->kind != TG__J_NUM)
            ok = cbad(r, "each", "loss_weights", "must be a number");
        if (ok)
            ws[i] = N(r, ew)->d;
    }
    tg_optimizer *opt = ok ? read_optimizer(r, get(r, cc, "optimizer")) : NULL;
    int rc = opt ? tg_compile_at(r->loc, m,
                                 (tg_compile_opts){.optimizer = opt,
                                                   .losses = ls,
                                                   .n_losses = n,
                                                   .loss_weights = ws,
                                                   .n_loss_weights = n,
                                                   .output_metrics = ms,
                                                   .n_output_metrics = n})
                 : -1;
    if (rc != 0 && opt) {
        said_of_compile(r);
        tg_optimizer_free_at(r->loc, opt);
    }
    if (!ls || !ws || !ms)
        tg__failf(r->loc, "%s: out of memory", r->what);
    for (int i = 0; ms && i < n; i++)
        free((void *)ms[i].kind);
    free(ls);
    free(ws);
    free(ms);
    return rc;
}

/* ---- files the command wrote before the architecture was stored ------------------------------- */
enum { OLD_MODEL, OLD_SHAPE, OLD_CLASSES, OLD_SEED, OLD_LOSS, OLD_OPTIMIZER, OLD_LR, N_OLD };
static const tg_meta_key OLD_KEYS[N_OLD] = {
    [OLD_MODEL] = {"model", TG_META_TEXT, 1, 1 << 20, false, NULL},
    [OLD_SHAPE] = {"input_shape", TG_META_DIMS, 1, INT32_MAX, true, "tapegrad fit"},
    [OLD_CLASSES] = {"classes", TG_META_INT, 1, 100000, true, "tapegrad fit"},
    [OLD_SEED] = {"seed", TG_META_INT, 0, INT64_MAX, false, NULL},
    [OLD_LOSS] = {"loss", TG_META_TEXT, 1, 64, false, NULL},
    [OLD_OPTIMIZER] = {"optimizer", TG_META_TEXT, 1, 16, false, NULL},
    [OLD_LR] = {"learning_rate", TG_META_TEXT, 1, 32, false, NULL},
};

/* The command's specs: "mlp:U[,U...]", "lstm:U[,...]", "gru:U[,...]" or "cnn". */
static int parse_units(const char *p, int64_t *units, int max)
{
    int n = 0;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9' || n == max)
            return -1;
        long long u = strtoll(p, &end, 10);
        if (u < 1 || u > 100000)
            return -1;
        units[n++] = u;
        if (!*end)
            return n;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

/* The command's model for examples of `shape` (the file's input_shape, already the
 * model's example shape), as src/cli/spec.c builds it. */
static tg_model *old_command_model(tg_loc loc, const char *what, const char *spec, tg_shape in, int64_t classes,
                                   uint64_t seed, bool sigmoid)
{
    int64_t units[8];
    int n = 0;
    bool mlp = !strncmp(spec, "mlp:", 4), lstm = !strncmp(spec, "lstm:", 5), gru = !strncmp(spec, "gru:", 4);
    bool cnn = !strcmp(spec, "cnn");
    if ((mlp || lstm || gru) && (n = parse_units(spec + (lstm ? 5 : 4), units, 8)) < 0)
        mlp = lstm = gru = false;
    if (!mlp && !lstm && !gru && !cnn)
        return tg__fail(loc, "%s: metadata \"model\" is \"%.60s\", not a model tapegrad fit made", what, spec);
    tg_model *m =
        tg_sequential_at(loc, (tg_sequential_opts){.name = "sequential", .seed = seed, .dtype = TG_F32}, NULL, 0);
    bool ok = m != NULL;
    for (int i = 0; ok && mlp && i < n; i++)
        ok = tg_model_add_at(loc, m,
                             tg_dense_at(loc, (tg_dense_opts){.dtype = TG_DTYPE_INHERIT,
                                                              .units = units[i],
                                                              .activation = TG_RELU,
                                                              .use_bias = true,
                                                              .input_shape = i ? (tg_shape){0} : in})) == 0;
    for (int i = 0; ok && (lstm || gru) && i < n; i++) {
        tg_rnn_opts o = {.dtype = TG_DTYPE_INHERIT,
                         .units = units[i],
                         .activation = TG_TANH,
                         .recurrent_activation = TG_SIGMOID,
                         .use_bias = true,
                         .unit_forget_bias = true,
                         .reset_after = true,
                         .return_sequences = i + 1 < n,
                         .input_shape = i ? (tg_shape){0} : in};
        ok = tg_model_add_at(loc, m, lstm ? tg_lstm_at(loc, o) : tg_gru_at(loc, o)) == 0;
    }
    if (ok && cnn) {
        tg_conv2d_layer_opts c = {
            .dtype = TG_DTYPE_INHERIT, .filters = 32, .kernel_size = {3}, .activation = TG_RELU, .use_bias = true};
        tg_pooling2d_opts p = {.dtype = TG_DTYPE_INHERIT, .pool_size = {2}};
        tg_conv2d_layer_opts c1 = c;
        c1.input_shape = in;
        c.filters = 64;
        ok = tg_model_add_at(loc, m, tg_conv2d_layer_at(loc, c1)) == 0 &&
             tg_model_add_at(loc, m, tg_max_pooling2d_at(loc, p)) == 0 &&
             tg_model_add_at(loc, m, tg_conv2d_layer_at(loc, c)) == 0 &&
             tg_model_add_at(loc, m, tg_max_pooling2d_at(loc, p)) == 0 &&
             tg_model_add_at(loc, m, tg_flatten_at(loc, (tg_flatten_opts){.dtype = TG_DTYPE_INHERIT})) == 0 &&
             tg_model_add_at(loc, m,
                             tg_dense_at(loc, (tg_dense_opts){.dtype = TG_DTYPE_INHERIT,
                                                              .units = 128,
                                                              .activation = TG_RELU,
                                                              .use_bias = true})) == 0;
    }
    ok = ok &&
         tg_model_add_at(loc, m,
                         tg_dense_at(loc, (tg_dense_opts){.dtype = TG_DTYPE_INHERIT,
                                                          .units = classes,
                                                          .activation = sigmoid ? TG_SIGMOID : TG_LINEAR,
                                                          .use_bias = true})) == 0 &&
         tg_model_build_at(loc, m, in) == 0;
    if (!ok && m) {
        tg_model_free_at(loc, m);
        m = NULL;
    }
    return m;
}

/* The command's optimizer by name, at its learning rate (0: Keras's default). */
static tg_optimizer *old_command_optimizer(tg_loc loc, const char *name, double lr)
{
    static const struct {
        const char *name;
        double lr;
    } defaults[] = {{"adam", 1e-3},  {"adamw", 1e-3},  {"sgd", 0.01},      {"rmsprop", 1e-3}, {"adagrad", 1e-3},
                    {"nadam", 1e-3}, {"adamax", 1e-3}, {"adadelta", 1e-3}, {"ftrl", 1e-3},    {"lion", 1e-3}};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        if (strcmp(name, defaults[i].name))
            continue;
        double r = lr > 0 ? lr : defaults[i].lr;
        tg_adam_opts a = {.learning_rate = r, .beta_1 = 0.9, .beta_2 = 0.999, .epsilon = 1e-7};
        switch (i) {
        case 0: return tg_adam_at(loc, a);
        case 1: return a.weight_decay = 0.004, tg_adamw_at(loc, a);
        case 2: return tg_sgd_at(loc, (tg_sgd_opts){.learning_rate = r});
        case 3: return tg_rmsprop_at(loc, (tg_rmsprop_opts){.learning_rate = r, .rho = 0.9, .epsilon = 1e-7});
        case 4:
            return tg_adagrad_at(
                loc, (tg_adagrad_opts){.learning_rate = r, .initial_accumulator_value = 0.1, .epsilon = 1e-7});
        case 5: return tg_nadam_at(loc, a);
        case 6: return tg_adamax_at(loc, a);
        case 7: return tg_adadelta_at(loc, (tg_adadelta_opts){.learning_rate = r, .rho = 0.95, .epsilon = 1e-7});
        case 8:
            return tg_ftrl_at(
                loc, (tg_ftrl_opts){.learning_rate = r, .learning_rate_power = -0.5, .initial_accumulator_value = 0.1});
        default: return tg_lion_at(loc, (tg_lion_opts){.learning_rate = r, .beta_1 = 0.9, .beta_2 = 0.99});
        }
    }
    return tg__fail(loc, "optimizer \"%.20s\" is not one the command trains with", name);
}

/* A file of the tapegrad command from before the architecture key: its spec and set-up,
 * rebuilt and compiled as the command does. */
static tg_model *old_command_file(tg_loc loc, const char *what, const tg_safetensors *st, const tg_meta_value *v)
{
    tg_loss_kind loss =
        v[OLD_LOSS].present ? tg_loss_kind_from_name(v[OLD_LOSS].text) : TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    bool regression = loss == TG_LOSS_MSE || loss == TG_LOSS_MAE || loss == TG_LOSS_HUBER;
    if (!regression && loss != TG_LOSS_BINARY_CROSSENTROPY && loss != TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        return tg__fail(loc, "%s: metadata \"loss\" is \"%.60s\", not a loss tapegrad fit trains with", what,
                        v[OLD_LOSS].text);
    double lr = 0;
    if (v[OLD_LR].present) {
        char *end;
        lr = strtod(v[OLD_LR].text, &end);
        if (*end || !(lr >= 1e-12 && lr <= 10))
            return tg__fail(loc, "%s: metadata \"learning_rate\" is \"%.32s\": it must be a number from 1e-12 to 10",
                            what, v[OLD_LR].text);
    }
    tg_model *m = old_command_model(loc, what, v[OLD_MODEL].text, v[OLD_SHAPE].dims, v[OLD_CLASSES].i,
                                    (uint64_t)v[OLD_SEED].i, loss == TG_LOSS_BINARY_CROSSENTROPY);
    tg_optimizer *opt =
        m ? old_command_optimizer(loc, v[OLD_OPTIMIZER].present ? v[OLD_OPTIMIZER].text : "adam", lr) : NULL;
    tg_metric_list metrics =
        regression ? TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR, TG_METRIC_MEAN_SQUARED_ERROR) : TG_METRICS(TG_ACCURACY);
    int rc = opt ? tg_compile_at(loc, m,
                                 (tg_compile_opts){.optimizer = opt,
                                                   .loss = loss,
                                                   .from_logits = loss != TG_LOSS_BINARY_CROSSENTROPY && !regression,
                                                   .delta = 1.0,
                                                   .metrics = metrics})
                 : -1;
    if (rc != 0) {
        if (opt)
            tg_optimizer_free_at(loc, opt);
        tg_model_free_at(loc, m);
        return NULL;
    }
    (void)st;
    return m;
}

/* ---- loading ------------------------------------------------------------------------------------ */
/* The file's architecture, checked through the validator: *json NULL when it has none. */
static int read_architecture(tg_loc loc, const tg_safetensors *st, const char **json)
{
    tg_meta_value v[N_ARCH_KEYS];
    *json = NULL;
    if (tg_safetensors_read_metadata_at(loc, st, ARCH_KEYS, N_ARCH_KEYS, v) != 0)
        return -1;
    if (v[KEY_ARCH].present && !v[KEY_VERSION].present)
        return tg__failf(loc, "%s: '%s' has \"%s\" without \"%s\" (the file is damaged or was edited)", "tg_model_load",
                         tg__safetensors_path(st), ARCH_KEYS[KEY_ARCH].key, ARCH_KEYS[KEY_VERSION].key);
    if (v[KEY_VERSION].present && v[KEY_VERSION].i > FORMAT_VERSION)
        return tg__failf(loc,
                         "tg_model_load: '%s' is of model-file format %lld, newer than this tapegrad reads (%d): "
                         "load it with a newer tapegrad",
                         tg__safetensors_path(st), (long long)v[KEY_VERSION].i, FORMAT_VERSION);
    *json = v[KEY_ARCH].present ? v[KEY_ARCH].text : NULL;
    return 0;
}

/* The input shape of the architecture's build_config, rank -1 when it has none. */
static int build_shape(tg_loc loc, const char *what, const char *json, tg_shape *in)
{
    tg__json doc;
    char err[128];
    size_t pos = 0;
    creader r = {.loc = loc, .what = what, .d = &doc};
    int rc = 0;
    *in = (tg_shape){.rank = -1};
    if (!tg__json_parse(json, strlen(json), &doc, err, sizeof err, &pos)) {
        rc = tg__failf(loc, "%s: the model's architecture is not valid JSON: %s at byte %zu", what, err, pos);
    } else {
        int32_t shape = get(&r, get(&r, 0, "build_config"), "input_shape");
        if (shape >= 0 &&
            (N(&r, shape)->kind != TG__J_ARR || N(&r, shape)->count < 1 || N(&r, shape)->count > TG_MAX_RANK))
            rc = tg__failf(loc, "%s: build_config's \"input_shape\" must be [null, d1, ...]", what);
        int k = -1;
        for (int32_t e = rc == 0 && shape >= 0 ? N(&r, shape)->child : -1; e >= 0; e = N(&r, e)->next, k++) {
            if (k < 0)
                continue; /* the batch dim */
            if (N(&r, e)->kind != TG__J_NUM || !N(&r, e)->is_int || N(&r, e)->i < 1) {
                rc = tg__failf(loc, "%s: build_config's \"input_shape\" must hold positive whole numbers after null",
                               what);
                break;
            }
            in->dims[k] = N(&r, e)->i;
        }
        if (rc == 0 && shape >= 0)
            in->rank = k;
    }
    tg__json_free(&doc);
    return rc;
}

int tg__model_file_prepare(tg_loc loc, tg_model *m, const tg_safetensors *st)
{
    const char *json;
    char what[512];
    snprintf(what, sizeof what, "tg_model_load: '%s'", tg__safetensors_path(st));
    if (read_architecture(loc, st, &json) != 0)
        return -1;
    if (!tg_model_built(m)) { /* build it for the file's input shape */
        tg_shape in = {.rank = -1};
        if (json) {
            if (build_shape(loc, what, json, &in) != 0)
                return -1;
        } else {
            tg_meta_value shape;
            static const tg_meta_key key = {"input_shape", TG_META_DIMS, 1, INT32_MAX, false, NULL};
            if (tg_safetensors_read_metadata_at(loc, st, &key, 1, &shape) != 0)
                return -1;
            if (shape.present)
                in = shape.dims;
        }
        if (in.rank < 0)
            return tg__failf(loc,
                             "%s: the model is not built and the file does not say its input shape: build it first "
                             "(tg_model_build with one example's shape)",
                             what);
        if (tg_model_build_at(loc, m, in) != 0)
            return -1;
    }
    return json ? tg__model_config_compare(loc, what, m, json, strlen(json)) : 0;
}

/* The model of an architecture, compiled as its compile_config says (when it has one). */
static tg_model *model_from(tg_loc loc, const char *what, const char *json)
{
    tg_model *m = tg__model_from_config(loc, what, json, strlen(json));
    if (!m)
        return NULL;
    tg__json doc;
    char err[128];
    size_t pos;
    creader r = {.loc = loc, .what = what, .d = &doc};
    int rc = tg__json_parse(json, strlen(json), &doc, err, sizeof err, &pos) ? 0 : -1;
    int32_t cc = rc == 0 ? get(&r, 0, "compile_config") : -1;
    if (rc == 0 && cc >= 0)
        rc = compile_from(&r, m, cc);
    tg__json_free(&doc);
    if (rc != 0) {
        tg_model_free_at(loc, m);
        return NULL;
    }
    return m;
}

tg_model *tg_model_load_file_from_at(tg_loc loc, const tg_safetensors *st)
{
    if (!st)
        return tg__fail(loc, "tg_model_load_file: give a file");
    char what[512];
    snprintf(what, sizeof what, "tg_model_load_file: '%s'", tg__safetensors_path(st));
    const char *json;
    if (read_architecture(loc, st, &json) != 0)
        return NULL;
    tg_model *m = NULL;
    if (json) {
        if (!(m = model_from(loc, what, json)))
            return NULL;
    } else {
        tg_meta_value v[N_OLD];
        if (tg_safetensors_read_metadata_at(loc, st, OLD_KEYS, 1, v) != 0)
            return NULL;
        if (!v[OLD_MODEL].present)
            return tg__fail(loc,
                            "%s: the file holds weights but not the model's architecture (tapegrad_model): it was "
                            "saved before tapegrad stored architectures, or by another program; build the model in C "
                            "and load the weights with tg_model_load",
                            what);
        if (tg_safetensors_read_metadata_at(loc, st, OLD_KEYS, N_OLD, v) != 0 ||
            !(m = old_command_file(loc, what, st, v)))
            return NULL;
    }
    if (tg_model_load_from_at(loc, m, st) != 0) { /* said of this call */
        char why[1024];
        const char *e = tg_last_error(), *from = e ? strstr(e, "tg_load_into: ") : NULL;
        snprintf(why, sizeof why, "%s", from ? from + strlen("tg_load_into: ") : "");
        tg_model_free_at(loc, m);
        if (from)
            tg__fail(loc, "%s: the weights do not fit the architecture: %s", what, why);
        return NULL;
    }
    return m;
}

tg_model *tg_model_load_file_at(tg_loc loc, const char *path)
{
    if (!path)
        return tg__fail(loc, "tg_model_load_file: give a path");
    tg_safetensors *st = tg_safetensors_open_at(loc, path);
    if (!st)
        return NULL;
    tg_model *m = tg_model_load_file_from_at(loc, st);
    tg_safetensors_close(st);
    return m;
}

tg_model *tg_model_from_json_at(tg_loc loc, const char *json)
{
    if (!json)
        return tg__fail(loc, "tg_model_from_json: the JSON is NULL");
    return model_from(loc, "tg_model_from_json", json);
}
