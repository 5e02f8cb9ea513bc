/* Optimizers: construction with Keras's checks, the state layout, apply_gradients and
 * minimize. The update formulas are in update_tmpl.h.
 *
 * apply_gradients follows keras/src/optimizers/base_optimizer.py `apply`: an empty list
 * is a no-op; None gradients are dropped with a warning (an error when all are None);
 * then clipping, weight decay and one update per variable; then iterations += 1; then
 * each updated variable's constraint (tg_constraint). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "optim_impl.h"

/* ---- construction ----------------------------------------------------------------------- */

static const char *none_or(double v, char *buf, size_t size)
{
    if (v == 0)
        return "None";
    snprintf(buf, size, "%g", v);
    return buf;
}

static bool check_schedule(tg_loc loc, const char *func, const tg_schedule *s)
{
    switch (s->kind) {
    case TG_SCHEDULE_NONE: return true;
    case TG_SCHEDULE_PIECEWISE_CONSTANT:
        if (s->n_boundaries >= 1 && s->n_boundaries <= TG_SCHEDULE_MAX_BOUNDARIES)
            return true;
        tg__fail(loc, "%s: `.schedule` has %d boundaries; make it with tg_piecewise_constant", func, s->n_boundaries);
        return false;
    case TG_SCHEDULE_EXPONENTIAL_DECAY:
    case TG_SCHEDULE_COSINE_DECAY:
    case TG_SCHEDULE_POLYNOMIAL_DECAY:
    case TG_SCHEDULE_INVERSE_TIME_DECAY:
    case TG_SCHEDULE_COSINE_DECAY_RESTARTS:
        if (s->decay_steps > 0)
            return true;
        tg__fail(loc, "%s: `.schedule` has decay_steps=%lld; it must be > 0", func, (long long)s->decay_steps);
        return false;
    case TG_SCHEDULE_INVALID:
        if (!tg_has_error())
            tg__fail(loc, "%s: `.schedule` is invalid: the call that made it failed", func);
        return false;
    default:
        tg__fail(loc,
                 "%s: `.schedule` is not a schedule (kind %d); make it with tg_exponential_decay, "
                 "tg_piecewise_constant, tg_cosine_decay, tg_polynomial_decay, tg_inverse_time_decay or "
                 "tg_cosine_decay_restarts",
                 func, (int)s->kind);
        return false;
    }
}

static bool check_common(tg_loc loc, const char *func, const tg_optim_hyper *h)
{
    char a[32], b[32], c[32];
    if (!isfinite(h->learning_rate))
        return tg__fail(loc, "%s: `learning_rate` must be a finite number. Received: learning_rate=%g", func,
                        h->learning_rate),
               false;
    if (h->learning_rate < 0)
        return tg__fail(loc, "%s: `learning_rate` must be >= 0. Received: learning_rate=%g", func, h->learning_rate),
               false;
    if (!isfinite(h->weight_decay))
        return tg__fail(loc, "%s: `weight_decay` must be a finite number. Received: weight_decay=%g", func,
                        h->weight_decay),
               false;
    const char *names[3] = {"clipnorm", "clipvalue", "global_clipnorm"};
    double vals[3] = {h->clipnorm, h->clipvalue, h->global_clipnorm};
    int set = 0;
    for (int i = 0; i < 3; i++) {
        if (!(vals[i] >= 0) || isinf(vals[i]))
            return tg__fail(loc, "%s: `%s` must be a finite number >= 0 (0 turns it off). Received: %s=%g", func,
                            names[i], names[i], vals[i]),
                   false;
        set += vals[i] > 0;
    }
    if (set > 1)
        return tg__fail(loc,
                        "%s: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                        "clipnorm=%s, clipvalue=%s, global_clipnorm=%s",
                        func, none_or(h->clipnorm, a, sizeof a), none_or(h->clipvalue, b, sizeof b),
                        none_or(h->global_clipnorm, c, sizeof c)),
               false;
    if (h->accumulation_given != 0 && h->accumulation_given < 2)
        return tg__failb(loc,
                         "%s: `gradient_accumulation_steps` must be an integer >= 2 (0 turns it off). Received: "
                         "gradient_accumulation_steps=%d",
                         func, h->accumulation_given);
    if (!(h->ema_momentum >= 0 && h->ema_momentum <= 1))
        return tg__failb(loc, "%s: `ema_momentum` must be in the range [0, 1]. Received: ema_momentum=%g", func,
                         h->ema_momentum);
    if (h->ema_overwrite_frequency < 0)
        return tg__failb(loc,
                         "%s: `ema_overwrite_frequency` must be an integer >= 1 or 0 (never). Received: "
                         "ema_overwrite_frequency=%d",
                         func, h->ema_overwrite_frequency);
    return check_schedule(loc, func, &h->schedule);
}

/* A decay rate in [0, 1), or [0, 1] with `one_ok`: Keras's ranges. At 1 a running
 * average never sees a gradient (and Adam's bias correction divides by zero). */
static bool check_rate(tg_loc loc, const char *func, const char *name, double v, bool one_ok)
{
    if (v >= 0 && (v < 1 || (one_ok && v == 1)))
        return true;
    return tg__failb(loc, "%s: `%s` must be in [0, 1%s. Received: %s=%g", func, name, one_ok ? "]" : ")", name, v);
}

static bool check_epsilon(tg_loc loc, const char *func, double eps)
{
    if (eps > 0 && isfinite(eps))
        return true;
    return tg__failb(loc,
                     "%s: `epsilon` must be > 0 (it keeps the update from dividing by zero; Keras's default "
                     "is 1e-7). Received: epsilon=%g",
                     func, eps);
}

#define COMMON_FIELDS(o)                                                                             \
    .learning_rate = (o).learning_rate, .schedule = (o).schedule, .weight_decay = (o).weight_decay,  \
    .clipnorm = (o).clipnorm, .clipvalue = (o).clipvalue, .global_clipnorm = (o).global_clipnorm,    \
    .use_ema = (o).use_ema, .ema_momentum = (o).ema_momentum > 0 ? (o).ema_momentum : 0.99,          \
    .ema_overwrite_frequency = (o).ema_overwrite_frequency,                                          \
    .accumulation_steps = (o).gradient_accumulation_steps > 1 ? (o).gradient_accumulation_steps : 1, \
    .accumulation_given = (o).gradient_accumulation_steps

static tg_optimizer *make(tg_loc loc, const char *func, tg_optim_kind kind, const char *name, const tg_optim_hyper *h)
{
    if (!check_common(loc, func, h))
        return NULL;
    tg_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt)
        return tg__fail(loc, "%s: out of memory", func);
    opt->magic = TG_OPTIM_ALIVE;
    opt->kind = kind;
    opt->name = name;
    opt->ctor = func;
    opt->h = *h;
    return opt;
}

static void add_slot(tg_optimizer *opt, const char *name, double init)
{
    opt->slot_name[opt->n_slots] = name;
    opt->slot_init[opt->n_slots++] = init;
}

/* After the optimizer's own slots: the EMA's and the accumulated gradients'. */
static tg_optimizer *with_common_slots(tg_optimizer *opt)
{
    if (!opt)
        return NULL;
    opt->slot_average = opt->slot_accumulator = -1;
    if (opt->h.use_ema) {
        opt->slot_average = opt->n_slots;
        add_slot(opt, "average", 0);
    }
    if (opt->h.accumulation_steps > 1) {
        opt->slot_accumulator = opt->n_slots;
        add_slot(opt, "gradient_accumulator", 0);
    }
    return opt;
}

tg_optimizer *tg_sgd_at(tg_loc loc, tg_sgd_opts o)
{
    if (!(o.momentum >= 0 && o.momentum <= 1))
        return tg__fail(loc, "tg_sgd: `momentum` must be a float between [0, 1]. Received: momentum=%g", o.momentum);
    tg_optim_hyper h = {COMMON_FIELDS(o), .momentum = o.momentum, .nesterov = o.nesterov};
    tg_optimizer *opt = make(loc, "tg_sgd", TG_OPTIM_SGD, "SGD", &h);
    if (opt && o.momentum != 0)
        add_slot(opt, "momentum", 0);
    return with_common_slots(opt);
}

static tg_optimizer *adam(tg_loc loc, const char *func, const char *name, tg_adam_opts o)
{
    if (!check_rate(loc, func, "beta_1", o.beta_1, false) || !check_rate(loc, func, "beta_2", o.beta_2, false) ||
        !check_epsilon(loc, func, o.epsilon))
        return NULL;
    tg_optim_hyper h = {COMMON_FIELDS(o), .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon,
                        .amsgrad = o.amsgrad};
    tg_optimizer *opt = make(loc, func, TG_OPTIM_ADAM, name, &h);
    if (opt) {
        add_slot(opt, "momentum", 0);
        add_slot(opt, "velocity", 0);
        if (o.amsgrad)
            add_slot(opt, "velocity_hat", 0);
    }
    return with_common_slots(opt);
}

tg_optimizer *tg_adam_at(tg_loc loc, tg_adam_opts o) { return adam(loc, "tg_adam", "adam", o); }
tg_optimizer *tg_adamw_at(tg_loc loc, tg_adam_opts o) { return adam(loc, "tg_adamw", "adamw", o); }

tg_optimizer *tg_rmsprop_at(tg_loc loc, tg_rmsprop_opts o)
{
    if (!check_rate(loc, "tg_rmsprop", "rho", o.rho, false) ||
        !check_rate(loc, "tg_rmsprop", "momentum", o.momentum, true) || !check_epsilon(loc, "tg_rmsprop", o.epsilon))
        return NULL;
    tg_optim_hyper h = {COMMON_FIELDS(o), .rho = o.rho, .momentum = o.momentum, .epsilon = o.epsilon,
                        .centered = o.centered};
    tg_optimizer *opt = make(loc, "tg_rmsprop", TG_OPTIM_RMSPROP, "rmsprop", &h);
    if (opt) {
        add_slot(opt, "velocity", 0);
        if (o.momentum > 0)
            add_slot(opt, "momentum", 0);
        if (o.centered)
            add_slot(opt, "average_gradient", 0);
    }
    return with_common_slots(opt);
}

tg_optimizer *tg_adagrad_at(tg_loc loc, tg_adagrad_opts o)
{
    if (!(o.initial_accumulator_value >= 0))
        return tg__fail(loc,
                        "tg_adagrad: `initial_accumulator_value` must be non-negative. Received: "
                        "initial_accumulator_value=%g",
                        o.initial_accumulator_value);
    if (!check_epsilon(loc, "tg_adagrad", o.epsilon))
        return NULL;
    tg_optim_hyper h = {COMMON_FIELDS(o), .initial_accumulator_value = o.initial_accumulator_value,
                        .epsilon = o.epsilon};
    tg_optimizer *opt = make(loc, "tg_adagrad", TG_OPTIM_ADAGRAD, "adagrad", &h);
    if (opt)
        add_slot(opt, "accumulator", o.initial_accumulator_value);
    return with_common_slots(opt);
}

/* Nadam and Adamax take Adam's options but not amsgrad. */
static tg_optimizer *adam_like(tg_loc loc, const char *func, tg_optim_kind kind, const char *name, tg_adam_opts o,
                               const char *slot_2)
{
    if (o.amsgrad)
        return tg__fail(loc, "%s: `amsgrad` is Adam's and AdamW's option; %s has none", func, name);
    if (!check_rate(loc, func, "beta_1", o.beta_1, false) || !check_rate(loc, func, "beta_2", o.beta_2, false) ||
        !check_epsilon(loc, func, o.epsilon))
        return NULL;
    tg_optim_hyper h = {COMMON_FIELDS(o), .beta_1 = o.beta_1, .beta_2 = o.beta_2, .epsilon = o.epsilon};
    tg_optimizer *opt = make(loc, func, kind, name, &h);
    if (opt) {
        add_slot(opt, "momentum", 0);
        add_slot(opt, slot_2, 0);
    }
    return with_common_slots(opt);
}

tg_optimizer *tg_nadam_at(tg_loc loc, tg_adam_opts o)
{
    return adam_like(loc, "tg_nadam", TG_OPTIM_NADAM, "nadam", o, "velocity");
}

tg_optimizer *tg_adamax_at(tg_loc loc, tg_adam_opts o)
{
    return adam_like(loc, "tg_adamax", TG_OPTIM_ADAMAX, "adamax", o, "norm");
}

tg_optimizer *tg_adadelta_at(tg_loc loc, tg_adadelta_opts o)
{
    if (!check_rate(loc, "tg_adadelta", "rho", o.rho, false) || !check_epsilon(loc, "tg_adadelta", o.epsilon))
        return NULL;
    tg_optim_hyper h = {COMMON_FIELDS(o), .rho = o.rho, .epsilon = o.epsilon};
    tg_optimizer *opt = make(loc, "tg_adadelta", TG_OPTIM_ADADELTA, "adadelta", &h);
    if (opt) {
        add_slot(opt, "accumulated_grad", 0);
        add_slot(opt, "accumulated_delta_var", 0);
    }
    return with_common_slots(opt);
}

/* ftrl.py's checks, with its messages. */
tg_optimizer *tg_ftrl_at(tg_loc loc, tg_ftrl_opts o)
{
    static const char *const names[] = {"initial_accumulator_value", "l1_regularization_strength",
                                        "l2_regularization_strength", "l2_shrinkage_regularization_strength"};
    double values[] = {o.initial_accumulator_value, o.l1_regularization_strength, o.l2_regularization_strength,
                       o.l2_shrinkage_regularization_strength};
    for (int i = 0; i < 4; i++)
        if (!(values[i] >= 0))
            return tg__fail(loc, "tg_ftrl: `%s` needs to be positive or zero. Received: %s=%g", names[i], names[i],
                            values[i]);
    if (!(o.learning_rate_power <= 0))
        return tg__fail(loc,
                        "tg_ftrl: `learning_rate_power` needs to be negative or zero. Received: "
                        "learning_rate_power=%g",
                        o.learning_rate_power);
    if (!isfinite(o.beta))
        return tg__fail(loc, "tg_ftrl: `beta` must be a finite number. Received: beta=%g", o.beta);
    tg_optim_hyper h = {COMMON_FIELDS(o),
                        .initial_accumulator_value = o.initial_accumulator_value,
                        .learning_rate_power = o.learning_rate_power,
                        .l1 = o.l1_regularization_strength,
                        .l2 = o.l2_regularization_strength,
                        .l2_shrinkage = o.l2_shrinkage_regularization_strength,
                        .ftrl_beta = o.beta};
    tg_optimizer *opt = make(loc, "tg_ftrl", TG_OPTIM_FTRL, "ftrl", &h);
    if (opt) {
        add_slot(opt, "accumulator", o.initial_accumulator_value);
        add_slot(opt, "linear", 0);
    }
    return with_common_slots(opt);
}

tg_optimizer *tg_lion_at(tg_loc loc, tg_lion_opts o)
{
    if (!(o.beta_1 > 0 && o.beta_1 <= 1))
        return tg__fail(loc,
                        "tg_lion: Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer "
                        "degenerates to SignSGD. Received: beta_1=%g",
                        o.beta_1);
    if (!check_rate(loc, "tg_lion", "beta_2", o.beta_2, true))
        return NULL;
    tg_optim_hyper h = {COMMON_FIELDS(o), .beta_1 = o.beta_1, .beta_2 = o.beta_2};
    tg_optimizer *opt = make(loc, "tg_lion", TG_OPTIM_LION, "lion", &h);
    if (opt)
        add_slot(opt, "momentum", 0);
    return with_common_slots(opt);
}

bool tg__optimizer_check(tg_loc loc, const char *func, const tg_optimizer *opt)
{
    if (!opt)
        return tg__null_arg(loc, func, "opt"), false;
    if (opt->magic != TG_OPTIM_ALIVE)
        return tg__failb(loc,
                         "%s: the optimizer was already freed (by tg_optimizer_free, or with the model it "
                         "was compiled into); make a new one",
                         func);
    return true;
}

void tg_optimizer_free_at(tg_loc loc, tg_optimizer *opt)
{
    if (!opt || !tg__optimizer_check(loc, "tg_optimizer_free", opt))
        return;
    if (opt->owner) {
        tg__fail(loc,
                 "tg_optimizer_free: the optimizer belongs to the model compiled with it (at %s:%d), which "
                 "frees it: free the model with tg_model_free instead",
                 opt->owner_loc.file ? opt->owner_loc.file : "?", opt->owner_loc.line);
        return;
    }
    for (int k = 0; k < opt->n_slots; k++)
        free(opt->slot[k]);
    free(opt->vars);
    free(opt->scratch);
    free(opt->index);
    free(opt->steps);
    free(opt->starts);
    free(opt->mean_grads);
    *opt = (tg_optimizer){.magic = TG_OPTIM_DEAD, .name = opt->name};
    tg__retire(opt); /* never reused: a stale handle finds TG_OPTIM_DEAD */
}

bool tg__optimizer_take(tg_loc loc, tg_optimizer *opt, const void *owner)
{
    if (!tg__optimizer_check(loc, "tg_compile", opt))
        return false;
    if (opt->owner && opt->owner != owner)
        return tg__failb(loc,
                         "tg_compile: this %s optimizer is already compiled into another model (at %s:%d), "
                         "which owns it and keeps its state; make one optimizer per model, e.g. .optimizer = "
                         "%s()",
                         opt->name, opt->owner_loc.file ? opt->owner_loc.file : "?", opt->owner_loc.line, opt->ctor);
    opt->owner = owner;
    opt->owner_loc = loc;
    return true;
}

void tg__optimizer_drop(tg_optimizer *opt, const void *owner)
{
    if (opt && opt->magic == TG_OPTIM_ALIVE && opt->owner == owner)
        opt->owner = NULL;
}

/* ---- small accessors ---------------------------------------------------------------------- */

static bool alive(const tg_optimizer *opt) { return opt && opt->magic == TG_OPTIM_ALIVE; }

/* The updates the formulas count: every call, or every k-th with gradient accumulation. */
static int64_t applied_updates(const tg_optimizer *opt) { return opt->iterations / opt->h.accumulation_steps; }

static bool var_alive(const tg_optim_var *v) { return v->var->state == TG_HEADER_ALIVE && v->var->gen == v->gen; }

int64_t tg_optimizer_iterations(const tg_optimizer *opt) { return alive(opt) ? opt->iterations : 0; }

static double current_lr(const tg_optimizer *opt)
{
    return opt->h.schedule.kind == TG_SCHEDULE_NONE ? opt->h.learning_rate
                                                    : tg_schedule_value(&opt->h.schedule, opt->iterations);
}

double tg_optimizer_current_lr(const tg_optimizer *opt) { return alive(opt) ? current_lr(opt) : NAN; }

int tg_optimizer_set_learning_rate_at(tg_loc loc, tg_optimizer *opt, double lr)
{
    if (!tg__optimizer_check(loc, "tg_optimizer_set_learning_rate", opt))
        return -1;
    if (opt->h.schedule.kind != TG_SCHEDULE_NONE)
        return tg__failf(loc, "tg_optimizer_set_learning_rate: This optimizer was created with a "
                              "`LearningRateSchedule` object as its `learning_rate` constructor argument, hence its "
                              "learning rate is not settable. If you need the learning rate to be settable, you should "
                              "instantiate the optimizer with a float `learning_rate` argument.");
    if (!isfinite(lr) || lr < 0)
        return tg__failf(loc, "tg_optimizer_set_learning_rate: the learning rate must be a finite number >= 0, got %g",
                         lr);
    opt->h.learning_rate = lr;
    return 0;
}

int tg_optimizer_set_iterations_at(tg_loc loc, tg_optimizer *opt, int64_t iterations)
{
    if (!tg__optimizer_check(loc, "tg_optimizer_set_iterations", opt))
        return -1;
    if (iterations < 0)
        return tg__failf(loc, "tg_optimizer_set_iterations: the iteration count must be >= 0, got %lld",
                         (long long)iterations);
    opt->iterations = iterations;
    return 0;
}

int tg_optimizer_state_count(const tg_optimizer *opt) { return alive(opt) ? opt->n_slots * opt->n_vars : 0; }

int tg_optimizer_state(const tg_optimizer *opt, int index, tg_optimizer_slot *out)
{
    if (!tg__optimizer_check((tg_loc){0}, "tg_optimizer_state", opt))
        return -1;
    if (!out)
        return tg__null_arg((tg_loc){0}, "tg_optimizer_state", "out"), -1;
    if (index < 0 || index >= opt->n_slots * opt->n_vars)
        return tg__failf((tg_loc){0},
                         "tg_optimizer_state: index %d is out of range; the %s optimizer has %d state "
                         "arrays (%d slots x %d variables)",
                         index, opt->name, opt->n_slots * opt->n_vars, opt->n_slots, opt->n_vars);
    int k = index / opt->n_vars;
    const tg_optim_var *v = &opt->vars[index % opt->n_vars];
    *out = (tg_optimizer_slot){.name = opt->slot_name[k],
                               .variable = var_alive(v) ? v->var : NULL,
                               .dtype = v->dtype,
                               .count = v->count,
                               .data = opt->slot[k] + v->offset};
    return 0;
}

/* ---- the state layout ----------------------------------------------------------------------- */

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static void fill_slot(void *p, tg_dtype dtype, int64_t n, double value)
{
    if (dtype == TG_F32)
        for (int64_t i = 0; i < n; i++)
            ((float *)p)[i] = (float)value;
    else
        for (int64_t i = 0; i < n; i++)
            ((double *)p)[i] = value;
}

/* Grows every slot buffer to hold `bytes`, keeping the contents; 64-byte aligned. */
static bool grow_slots(tg_optimizer *opt, size_t bytes)
{
    if (bytes <= opt->cap_bytes)
        return true;
    size_t cap = opt->cap_bytes ? opt->cap_bytes : 1024;
    while (cap < bytes)
        cap *= 2;
    unsigned char *fresh[TG_OPTIM_MAX_SLOTS] = {0};
    for (int k = 0; k < opt->n_slots; k++) {
        if (!(fresh[k] = aligned_alloc(64, cap))) {
            for (int j = 0; j < k; j++)
                free(fresh[j]);
            return false;
        }
    }
    for (int k = 0; k < opt->n_slots; k++) {
        if (opt->bytes)
            memcpy(fresh[k], opt->slot[k], opt->bytes);
        free(opt->slot[k]);
        opt->slot[k] = fresh[k];
    }
    opt->cap_bytes = cap;
    return true;
}

static int find_var(const tg_optimizer *opt, const tg_tensor *v, int hint)
{
    if (hint < opt->n_vars && opt->vars[hint].var == v && opt->vars[hint].gen == v->gen)
        return hint; /* the same order as last time: the common case */
    for (int j = 0; j < opt->n_vars; j++)
        if (opt->vars[j].var == v && opt->vars[j].gen == v->gen)
            return j;
    return -1;
}

/* The state index of each of the n variables in opt->index, appending the new ones. */
static bool layout(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *vars, int n)
{
    if (n > opt->cap_index) {
        int *idx = realloc(opt->index, sizeof(int) * (size_t)n);
        if (idx)
            opt->index = idx;
        tg_tensor **mg = idx ? realloc(opt->mean_grads, sizeof(tg_tensor *) * (size_t)n) : NULL;
        if (!mg)
            return tg__fail(loc, "%s: out of memory", func), false;
        opt->mean_grads = mg;
        opt->cap_index = n;
    }
    for (int i = 0; i < n; i++) {
        int j = find_var(opt, vars[i], i);
        if (j < 0) {
            if (opt->n_vars == opt->cap_vars) {
                int cap = opt->cap_vars ? 2 * opt->cap_vars : 8;
                tg_optim_var *nv = realloc(opt->vars, sizeof *nv * (size_t)cap);
                if (!nv)
                    return tg__fail(loc, "%s: out of memory", func), false;
                opt->vars = nv;
                opt->cap_vars = cap;
            }
            const tg_tensor *v = vars[i];
            size_t size = round64((size_t)v->size * tg__dsize(v->dtype));
            if (!grow_slots(opt, opt->bytes + size))
                return tg__fail(loc, "%s: out of memory for the optimizer state", func), false;
            j = opt->n_vars++;
            opt->vars[j] = (tg_optim_var){
                .var = vars[i], .gen = v->gen, .dtype = v->dtype, .count = v->size, .offset = opt->bytes};
            for (int k = 0; k < opt->n_slots; k++)
                fill_slot(opt->slot[k] + opt->bytes, v->dtype, v->size, opt->slot_init[k]);
            opt->bytes += size;
        }
        opt->index[i] = j;
    }
    return true;
}

/* ---- checks --------------------------------------------------------------------------- */

static bool check_var(tg_loc loc, const char *func, const tg_tensor *v, int i)
{
    char arg[32];
    snprintf(arg, sizeof arg, "vars[%d]", i);
    if (!tg__check_input(loc, func, v, arg))
        return false;
    if (!(v->flags & TG_T_VARIABLE))
        return tg__fail(loc,
                        "%s: vars[%d] (the tensor made at %s:%d) is not a variable; optimizers update "
                        "variables made with tg_variable",
                        func, i, v->loc.file ? v->loc.file : "?", v->loc.line),
               false;
    if (v->dtype != TG_F32 && v->dtype != TG_F64)
        return tg__fail(loc,
                        "%s: variable '%s' (vars[%d]) has dtype %s; optimizers update float32 and float64 "
                        "variables",
                        func, v->var->name, i, tg_dtype_name(v->dtype)),
               false;
    return true;
}

/* A gradient, when there is one, must be alive and match its variable. */
static bool check_grad(tg_loc loc, const char *func, const tg_tensor *g, const tg_tensor *v, int i)
{
    char arg[32];
    if (!g)
        return true;
    snprintf(arg, sizeof arg, "grads[%d]", i);
    if (!tg__check_input(loc, func, g, arg))
        return false;
    if (g->dtype != v->dtype)
        return tg__fail(loc,
                        "%s: grads[%d] has dtype %s but variable '%s' has dtype %s; a gradient must have its "
                        "variable's dtype (cast it with tg_cast)",
                        func, i, tg_dtype_name(g->dtype), v->var->name, tg_dtype_name(v->dtype)),
               false;
    tg_shape gs = tg__shape(g), vs = tg__shape(v);
    if (!tg__shape_eq(&gs, &vs)) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        return tg__fail(loc,
                        "%s: grads[%d] has shape %s but variable '%s' has shape %s; a gradient must have its "
                        "variable's shape",
                        func, i, tg__shape_str(&gs, a, sizeof a), v->var->name, tg__shape_str(&vs, b, sizeof b)),
               false;
    }
    return true;
}

/* ---- messages for missing gradients ---------------------------------------------------------- */

#define MSG_MAX 1600 /* room in the 2048-byte error slot for the file:line prefix */

typedef struct msg_buf {
    char s[MSG_MAX];
    size_t len;
} msg_buf;

static void put(msg_buf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(msg_buf *m, const char *fmt, ...)
{
    if (m->len >= MSG_MAX - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(m->s + m->len, MSG_MAX - m->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        m->len = m->len + (size_t)k < MSG_MAX ? m->len + (size_t)k : MSG_MAX - 1;
}

/* "['w', 'b']": the names of the variables whose gradient is NULL, in the order given;
 * past half the message, "... (K more)" for the rest. */
static void put_names(msg_buf *m, tg_tensor *const *grads, tg_tensor *const *vars, int n, int missing)
{
    put(m, "[");
    for (int i = 0, k = 0; i < n; i++) {
        if (grads[i])
            continue;
        if (m->len + strlen(vars[i]->var->name) + 4 > MSG_MAX / 2) {
            put(m, ", ... (%d more)", missing - k);
            break;
        }
        put(m, "%s'%s'", k++ ? ", " : "", vars[i]->var->name);
    }
    put(m, "]");
}

/* The reason a diagnosis gives, without its subject ("variable 'w': "). */
static const char *reason_of(const tg_diagnosis *d, const tg_tensor *v)
{
    char subject[160];
    int n = snprintf(subject, sizeof subject, "variable '%s': ", v->var->name);
    return n > 0 && !strncmp(d->message, subject, (size_t)n) ? d->message + n : d->message;
}

static bool same_reason(const tg_diagnosis *a, const tg_tensor *va, const tg_diagnosis *b, const tg_tensor *vb)
{
    return a->cause == b->cause && a->where.line == b->where.line && !strcmp(reason_of(a, va), reason_of(b, vb));
}

/* One line per distinct cause the gradient call kept, listing the variables it applies to. */
static void put_diagnoses(msg_buf *m, tg_tensor *const *grads, tg_tensor *const *vars, int n, int missing)
{
    static _Thread_local tg_diagnosis d, e; /* large; one each per thread is enough */
    static const char *const unknown =
        "no diagnosis is known: this NULL did not come from a tapegrad gradient call on this thread";
    int shown = 0;
    for (int i = 0; i < n; i++) {
        if (grads[i] || !vars[i])
            continue;
        bool known = tg_explain_missing(vars[i], &d) == 0, first = true;
        for (int j = 0; j < i && first; j++) /* told already, with an earlier variable? */
            if (!grads[j] && vars[j] && (tg_explain_missing(vars[j], &e) == 0) == known &&
                (!known || same_reason(&d, vars[i], &e, vars[j])))
                first = false;
        if (!first)
            continue;
        const char *reason = known ? reason_of(&d, vars[i]) : unknown;
        if (m->len + strlen(reason) + 200 > MSG_MAX) {
            put(m, "\n  (and %d more without a gradient)", missing - shown);
            return;
        }
        put(m, "\n  ");
        int listed = 0, left = 0;
        for (int j = i; j < n; j++)
            if (!grads[j] && vars[j] && (tg_explain_missing(vars[j], &e) == 0) == known &&
                (!known || same_reason(&d, vars[i], &e, vars[j]))) {
                if (m->len + strlen(vars[j]->var->name) + strlen(reason) + 120 > MSG_MAX)
                    left++;
                else
                    put(m, "%s%s", listed++ ? ", " : "", vars[j]->var->name);
            }
        if (left)
            put(m, " and %d more", left);
        put(m, "%s: %s", listed + left > 1 ? " (each)" : "", reason);
        shown += listed + left;
    }
}

/* Keras's filter of None gradients: an error when all are None, a warning when some are. */
static bool filter_missing(tg_loc loc, const char *func, tg_tensor *const *grads, tg_tensor *const *vars, int n)
{
    int missing = 0;
    for (int i = 0; i < n; i++)
        missing += !grads[i];
    if (!missing)
        return true;
    static _Thread_local msg_buf m;
    m.len = 0;
    m.s[0] = 0;
    if (missing == n) {
        put(&m, "%s: No gradients provided for any variable: (", func);
        put_names(&m, grads, vars, n, missing);
        put(&m, ",).");
    } else {
        put(&m, "Gradients do not exist for variables ");
        put_names(&m, grads, vars, n, missing);
        put(&m, " when minimizing the loss. If using `model.compile()`, did you forget to provide a `loss` argument?");
    }
    put_diagnoses(&m, grads, vars, n, missing);
    if (missing == n)
        return tg__fail(loc, "%s", m.s), false;
    tg__warn(loc, "%s", m.s);
    return true;
}

/* ---- apply ---------------------------------------------------------------------------------- */

static tg_clip_mode clip_mode(const tg_optim_hyper *h, double *c)
{
    if (h->clipnorm > 0)
        return *c = h->clipnorm, TG_CLIP_NORM;
    if (h->global_clipnorm > 0)
        return *c = h->global_clipnorm, TG_CLIP_GLOBAL;
    if (h->clipvalue > 0)
        return *c = h->clipvalue, TG_CLIP_VALUE;
    return *c = 0, TG_CLIP_NONE;
}

static bool overlaps(const tg_tensor *a, const tg_tensor *b)
{
    const char *pa = a->data, *pb = b->data;
    return pa < pb + (size_t)b->size * tg__dsize(b->dtype) && pb < pa + (size_t)a->size * tg__dsize(a->dtype);
}

/* Room for the largest gradient that must be copied (clipped, or aliasing its variable). */
static bool reserve_scratch(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *grads,
                            tg_tensor *const *vars, int n, tg_clip_mode mode)
{
    size_t need = 0;
    for (int i = 0; i < n; i++) {
        if (!grads[i] || (mode == TG_CLIP_NONE && !overlaps(grads[i], vars[i])))
            continue;
        size_t b = (size_t)grads[i]->size * tg__dsize(grads[i]->dtype);
        need = b > need ? b : need;
    }
    if (need <= opt->scratch_bytes)
        return true;
    void *p = aligned_alloc(64, round64(need));
    if (!p)
        return tg__fail(loc, "%s: out of memory", func), false;
    free(opt->scratch);
    opt->scratch = p;
    opt->scratch_bytes = round64(need);
    return true;
}

/* Room for one update step per variable (kept across steps: nothing is allocated once warm). */
static bool reserve_steps(tg_loc loc, const char *func, tg_optimizer *opt, int n)
{
    if (n <= opt->cap_steps)
        return true;
    tg_optim_step *st = realloc(opt->steps, sizeof *st * (size_t)n);
    if (st)
        opt->steps = st;
    int64_t *starts = st ? realloc(opt->starts, sizeof *starts * (size_t)(n + 1)) : NULL;
    if (!starts)
        return tg__fail(loc, "%s: out of memory", func), false;
    opt->starts = starts;
    opt->cap_steps = n;
    return true;
}

/* The update of variable v by gradient g, not yet run. A gradient that is clipped or
 * aliases its variable goes through the scratch buffer, so that step must run before
 * the next one is made (*now). */
static tg_optim_step make_step(tg_loc loc, tg_optimizer *opt, const tg_tensor *g, tg_tensor *v, int state, double lr,
                               tg_clip_mode mode, double c, double global_norm, bool *now)
{
    const tg_optim_var *sv = &opt->vars[state];
    /* Before reading g: a gradient that aliases a recorded read of v gets its own copy. */
    void *w = tg__variable_begin_write(loc, v);
    const void *gd = g->data;
    *now = mode != TG_CLIP_NONE || overlaps(g, v);
    if (*now) {
        if (v->dtype == TG_F32)
            tg__optim_clip_f32(mode, c, global_norm, g->data, opt->scratch, g->size);
        else
            tg__optim_clip_f64(mode, c, global_norm, g->data, opt->scratch, g->size);
        gd = opt->scratch;
    }
    tg_optim_step st = {
        .opt = opt, .dtype = v->dtype, .lr = lr, .iterations = applied_updates(opt), .n = v->size, .w = w, .g = gd};
    for (int k = 0; k < opt->n_slots; k++)
        st.s[k] = opt->slot[k] + sv->offset;
    return st;
}

/* Every variable's update: those whose gradient is used in place run together as one
 * loop over the state (the common case: a single pass, threaded); the others one by one. */
static void update_all(tg_loc loc, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars, int n, double lr,
                       tg_clip_mode mode, double c, double global_norm)
{
    int k = 0;
    opt->starts[0] = 0;
    for (int i = 0; i < n; i++) {
        if (!grads[i])
            continue;
        tg_optim_var *sv = &opt->vars[opt->index[i]];
        if (sv->queued == opt->iterations + 1) { /* listed twice: its first update goes first */
            tg__optim_run(opt->steps, opt->starts, k);
            for (int j = 0; j < opt->n_vars; j++)
                opt->vars[j].queued = 0;
            k = 0;
        }
        bool now;
        tg_optim_step st = make_step(loc, opt, grads[i], vars[i], opt->index[i], lr, mode, c, global_norm, &now);
        if (now) {
            int64_t span[2] = {0, st.n};
            tg__optim_run(&st, span, 1);
            continue;
        }
        sv->queued = opt->iterations + 1;
        opt->steps[k] = st;
        opt->starts[k + 1] = opt->starts[k] + st.n;
        k++;
    }
    tg__optim_run(opt->steps, opt->starts, k);
}

/* Keras's _update_model_variables_moving_average over every variable of the state:
 * avg = m avg + (1 - m) var in the variable's dtype, m = 0 before the first applied
 * update; then, every ema_overwrite_frequency updates, the variables take the averages. */
static void moving_average(tg_loc loc, tg_optimizer *opt)
{
    int64_t updates = applied_updates(opt);
    double m = updates != 0 ? opt->h.ema_momentum : 0;
    bool overwrite = opt->h.ema_overwrite_frequency > 0 && (updates + 1) % opt->h.ema_overwrite_frequency == 0;
    for (int j = 0; j < opt->n_vars; j++) {
        const tg_optim_var *v = &opt->vars[j];
        if (!var_alive(v))
            continue;
        void *avg = opt->slot[opt->slot_average] + v->offset;
        if (v->dtype == TG_F32) {
            float *a = avg, mf = (float)m, *x = v->var->data;
            for (int64_t i = 0; i < v->count; i++)
                a[i] = mf * a[i] + (1.0f - mf) * x[i];
        } else {
            double *a = avg, *x = v->var->data;
            for (int64_t i = 0; i < v->count; i++)
                a[i] = m * a[i] + (1.0 - m) * x[i];
        }
        if (overwrite)
            memcpy(tg__variable_begin_write(loc, v->var), avg, (size_t)v->count * tg__dsize(v->dtype));
    }
}

/* Adds each gradient into its accumulator; with `update`, turns the accumulator into
 * (g + accumulated) / k instead, the gradient that call applies. */
static void accumulate(tg_optimizer *opt, tg_tensor *const *grads, int n, bool update)
{
    int k = opt->h.accumulation_steps;
    for (int i = 0; i < n; i++) {
        if (!grads[i])
            continue;
        const tg_optim_var *v = &opt->vars[opt->index[i]];
        void *acc = opt->slot[opt->slot_accumulator] + v->offset;
        if (v->dtype == TG_F32) {
            float *a = acc, kf = (float)k;
            const float *g = grads[i]->data;
            for (int64_t e = 0; e < v->count; e++)
                a[e] = update ? (g[e] + a[e]) / kf : a[e] + g[e];
        } else {
            double *a = acc;
            const double *g = grads[i]->data;
            for (int64_t e = 0; e < v->count; e++)
                a[e] = update ? (g[e] + a[e]) / k : a[e] + g[e];
        }
    }
}

/* Nadam's u_product at `step`, multiplied in each dtype as nadam.py multiplies its
 * variable, one step at a time (from the start when the iterations were set back). */
static void nadam_advance(tg_optimizer *opt, int64_t step)
{
    if (opt->nadam_step > step || opt->nadam_step == 0) {
        opt->nadam_step = 0;
        opt->nadam_product_f32 = 1.0f;
        opt->nadam_product_f64 = 1.0;
    }
    float b1f = (float)opt->h.beta_1;
    for (int64_t s = opt->nadam_step + 1; s <= step; s++) {
        opt->nadam_product_f32 = opt->nadam_product_f32 * b1f * (1.0f - 0.5f * powf(0.96f, (float)s));
        opt->nadam_product_f64 = opt->nadam_product_f64 * opt->h.beta_1 * (1.0 - 0.5 * pow(0.96, (double)s));
    }
    opt->nadam_step = step;
}

/* The update of every variable by grads (clipped first), as one loop. */
static int update(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars,
                  int n)
{
    double c, global_norm = 0;
    tg_clip_mode mode = clip_mode(&opt->h, &c);
    if (!reserve_scratch(loc, func, opt, grads, vars, n, mode) || !reserve_steps(loc, func, opt, n))
        return -1;
    if (mode == TG_CLIP_GLOBAL) {
        for (int i = 0; i < n; i++)
            if (grads[i])
                global_norm += tg__optim_sum_squares(grads[i]);
        global_norm = sqrt(global_norm);
    }
    if (opt->kind == TG_OPTIM_NADAM)
        nadam_advance(opt, applied_updates(opt) + 1);
    update_all(loc, opt, grads, vars, n, current_lr(opt), mode, c, global_norm);
    return 0;
}

void tg__optimizer_set_reducer(tg_optimizer *opt, tg__grad_reducer reduce, void *user)
{
    if (alive(opt)) {
        opt->reduce = reduce;
        opt->reduce_user = user;
    }
}

int tg__optimizer_accumulation_steps(const tg_optimizer *opt) { return alive(opt) ? opt->h.accumulation_steps : 1; }

/* Headers over the accumulators of the variables that have gradients, in mean_grads. */
static int wrap_accumulators(tg_loc loc, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars, int n)
{
    for (int i = 0; i < n; i++) {
        const tg_optim_var *v = &opt->vars[opt->index[i]];
        tg_shape shape = tg__shape(vars[i]);
        opt->mean_grads[i] =
            grads[i] ? tg__tensor_wrap(loc, v->dtype, &shape, opt->slot[opt->slot_accumulator] + v->offset) : NULL;
        if (grads[i] && !opt->mean_grads[i])
            return -1;
    }
    return 0;
}

/* The accumulated sums averaged over the processes, in place: the reducer's results are
 * copied back into the accumulators, then divided by k. */
static int reduce_accumulated(tg_loc loc, tg_optimizer *opt, int n)
{
    int rc = opt->reduce(loc, opt->mean_grads, n, opt->reduce_user);
    int k = opt->h.accumulation_steps;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (!opt->mean_grads[i])
            continue;
        const tg_optim_var *v = &opt->vars[opt->index[i]];
        void *acc = opt->slot[opt->slot_accumulator] + v->offset;
        memcpy(acc, opt->mean_grads[i]->data, (size_t)v->count * tg__dsize(v->dtype));
        if (v->dtype == TG_F32)
            for (float *a = acc, kf = (float)k; a < (float *)acc + v->count; a++)
                *a /= kf;
        else
            for (double *a = acc; a < (double *)acc + v->count; a++)
                *a /= k;
    }
    return rc;
}

/* With gradient accumulation: the update call applies the accumulated mean, through
 * headers over the accumulators, then clears them all. Over several processes (a
 * reducer set), the sums are averaged over them first: nothing travels between. */
static int update_accumulated(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *grads,
                              tg_tensor *const *vars, int n)
{
    bool due = (opt->iterations + 1) % opt->h.accumulation_steps == 0;
    accumulate(opt, grads, n, due && !opt->reduce);
    if (!due)
        return 0;
    tg_scope *scope = tg_scope_begin_at(loc);
    int rc = scope ? wrap_accumulators(loc, opt, grads, vars, n) : -1;
    if (rc == 0 && opt->reduce && (rc = reduce_accumulated(loc, opt, n)) == 0)
        rc = wrap_accumulators(loc, opt, grads, vars, n);
    if (rc == 0)
        rc = update(loc, func, opt, opt->mean_grads, vars, n);
    if (scope)
        tg_scope_end_at(loc, scope);
    memset(opt->slot[opt->slot_accumulator], 0, opt->bytes);
    return rc;
}

/* apply_gradients' checks, and its warning about missing gradients unless replayed (a
 * graph's: said when traced). 1: go on; 0: nothing to do; -1 with an error. */
static int apply_checks(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *grads,
                        tg_tensor *const *vars, int n, bool replayed)
{
    if (!tg__optimizer_check(loc, func, opt))
        return -1;
    if (n < 0)
        return tg__failf(loc, "%s: n = %d; it must be >= 0", func, n);
    if (n == 0)
        return 0; /* Keras: "In this case, `apply_gradients` is a no-op." */
    if (!grads || !vars)
        return tg__null_arg(loc, func, !grads ? "grads" : "vars"), -1;
    for (int i = 0; i < n; i++)
        if (!check_var(loc, func, vars[i], i) || !check_grad(loc, func, grads[i], vars[i], i))
            return -1;
    if (!replayed && !filter_missing(loc, func, grads, vars, n))
        return -1;
    return 1;
}

static int apply_(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars,
                  int n, bool replayed)
{
    int go = apply_checks(loc, func, opt, grads, vars, n, replayed);
    if (go <= 0)
        return go;
    if (!layout(loc, func, opt, vars, n))
        return -1;
    int rc = opt->slot_accumulator >= 0 ? update_accumulated(loc, func, opt, grads, vars, n)
                                        : update(loc, func, opt, grads, vars, n);
    if (rc != 0)
        return -1;
    if (opt->slot_average >= 0)
        moving_average(loc, opt);
    opt->iterations++;
    for (int i = 0; i < n; i++) /* Keras: each variable's constraint, after the update */
        if (grads[i])
            tg__variable_apply_constraint(loc, vars[i]);
    return 0;
}

/* In a traced function the update is recorded (graph/trace.c) and runs at every call: the
 * graph's inputs are the gradients, then the variables. */
typedef struct apply_arg {
    tg_optimizer *opt;
    const char *func;
} apply_arg;

static int apply_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const apply_arg *a = arg;
    return apply_(loc, a->func, a->opt, in, in + n / 2, n / 2, true);
}

static int apply(tg_loc loc, const char *func, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars,
                 int n)
{
    tg_context *ctx = tg__ctx();
    if (!ctx->trace || n <= 0 || !grads || !vars)
        return apply_(loc, func, opt, grads, vars, n, false);
    if (tg__trace_abstract()) { /* checked and warned now; updated by the graph's runs */
        struct tg_fgraph *g = tg__trace_pause();
        int go = apply_checks(loc, func, opt, grads, vars, n, false);
        tg__trace_resume(g);
        if (go <= 0)
            return go;
    }
    tg_tensor **in = tg__arena_alloc(ctx->scope, sizeof *in * (size_t)(2 * n));
    if (!in)
        return tg__failf(loc, "%s: out of memory", func);
    memcpy(in, grads, sizeof *in * (size_t)n);
    memcpy(in + n, vars, sizeof *in * (size_t)n);
    int r = tg__trace_host(loc, apply_replayed, &(apply_arg){opt, func}, sizeof(apply_arg), in, 2 * n, vars, n);
    if (r != 0)
        return r < 0 ? -1 : 0;
    struct tg_fgraph *g = tg__trace_pause();
    int rc = apply_(loc, func, opt, grads, vars, n, false);
    tg__trace_resume(g);
    return rc;
}

int tg_optimizer_finalize_variable_values_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *vars, int n)
{
    if (!tg__optimizer_check(loc, "tg_optimizer_finalize_variable_values", opt))
        return -1;
    if (n < 0 || (n > 0 && !vars))
        return tg__failf(loc, "tg_optimizer_finalize_variable_values: give n >= 0 variables");
    for (int i = 0; opt->slot_average >= 0 && i < n; i++) {
        int j = vars[i] ? find_var(opt, vars[i], i) : -1;
        if (j < 0 || !var_alive(&opt->vars[j]))
            continue;
        const tg_optim_var *v = &opt->vars[j];
        memcpy(tg__variable_begin_write(loc, v->var), opt->slot[opt->slot_average] + v->offset,
               (size_t)v->count * tg__dsize(v->dtype));
    }
    return 0;
}

int tg_optimizer_build_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *vars, int n)
{
    if (!tg__optimizer_check(loc, "tg_optimizer_build", opt))
        return -1;
    if (n < 0 || (n && !vars))
        return tg__failf(loc, "tg_optimizer_build: give the variables and their count");
    for (int i = 0; i < n; i++)
        if (!check_var(loc, "tg_optimizer_build", vars[i], i))
            return -1;
    return layout(loc, "tg_optimizer_build", opt, vars, n) ? 0 : -1;
}

int tg_apply_gradients_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars, int n)
{
    return apply(loc, "tg_apply_gradients", opt, grads, vars, n);
}

/* ---- minimize ------------------------------------------------------------------------------- */

static int minimize_in_scope(tg_loc loc, tg_optimizer *opt, tg_loss_fn loss_fn, void *user, tg_tensor *const *vars,
                             int n, tg_tensor **grads)
{
    tg_tape *tape = tg_tape_begin_at(loc, (tg_tape_opts){.persistent = false, .watch_accessed_variables = true});
    if (!tape)
        return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = tg_watch_at(loc, tape, vars[i]);
    tg_tensor *loss = rc == 0 ? loss_fn(user) : NULL;
    tg_tape_end_at(loc, tape);
    if (rc == 0 && !loss) {
        tg__null_arg(loc, "tg_minimize", "loss_fn(user)");
        rc = -1;
    }
    if (rc == 0 && n > 0) /* no variables: the loss runs, the update is a no-op (Keras) */
        rc = tg_gradients_at(
            loc, tape,
            (tg_gradient_opts){.targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads});
    if (rc == 0)
        rc = apply(loc, "tg_minimize", opt, grads, vars, n);
    tg_tape_free(tape);
    return rc;
}

int tg_minimize_at(tg_loc loc, tg_optimizer *opt, tg_loss_fn loss_fn, void *user, tg_tensor *const *vars, int n)
{
    if (!tg__optimizer_check(loc, "tg_minimize", opt))
        return -1;
    if (!loss_fn)
        return tg__null_arg(loc, "tg_minimize", "loss_fn"), -1;
    if (n < 0)
        return tg__failf(loc, "tg_minimize: n = %d; it must be >= 0", n);
    if (n > 0 && !vars)
        return tg__null_arg(loc, "tg_minimize", "vars"), -1;
    for (int i = 0; i < n; i++) /* before running the loss */
        if (!check_var(loc, "tg_minimize", vars[i], i))
            return -1;
    tg_scope *scope = tg_scope_begin_at(loc);
    if (!scope)
        return -1;
    tg_tensor **grads = tg__arena_alloc(scope, sizeof(tg_tensor *) * (size_t)(n ? n : 1));
    int rc = grads ? minimize_in_scope(loc, opt, loss_fn, user, vars, n, grads)
                   : (tg__fail(loc, "tg_minimize: out of memory"), -1);
    if (tg_scope_end_at(loc, scope) != 0)
        rc = -1;
    return rc;
}
