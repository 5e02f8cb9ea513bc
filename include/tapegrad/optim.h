/* tapegrad/optim.h: Keras optimizers, gradient clipping and learning-rate schedules.
 *
 *   tg_optimizer *opt = tg_adam(.learning_rate = 1e-2);
 *   tg_tensor *vars[] = {w, b}, *grads[2];
 *   tg_tape *tape = tg_tape_begin();
 *   tg_tensor *loss = my_loss(w, b);
 *   tg_tape_end(tape);
 *   tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = 2, .out = grads);
 *   tg_apply_gradients(opt, grads, vars, 2);   // like optimizer.apply_gradients(zip(grads, vars))
 *   tg_tape_free(tape);
 *   ...
 *   tg_optimizer_free(opt);
 *
 * The update formulas, defaults and messages are those of Keras 3 (keras/src/optimizers/),
 * except the all-None error, which has Keras 2's more useful form (see tg_apply_gradients).
 * Updates write the variables in place, are never recorded on tapes, and bump the
 * variables' versions; a tape that read a variable before an update keeps the value it
 * read. Float32 and float64 variables; the optimizer state has the variable's dtype. */
#ifndef TAPEGRAD_OPTIM_H
#define TAPEGRAD_OPTIM_H

#include "autodiff.h"

TG_BEGIN_DECLS

/* ---- learning-rate schedules (keras.optimizers.schedules) ------------------------------ */
typedef enum tg_schedule_kind {
    TG_SCHEDULE_NONE = 0, /* no schedule: the optimizer's learning_rate applies */
    TG_SCHEDULE_EXPONENTIAL_DECAY,
    TG_SCHEDULE_PIECEWISE_CONSTANT,
    TG_SCHEDULE_COSINE_DECAY,
    TG_SCHEDULE_POLYNOMIAL_DECAY,
    TG_SCHEDULE_INVERSE_TIME_DECAY,
    TG_SCHEDULE_COSINE_DECAY_RESTARTS,
    TG_SCHEDULE_INVALID, /* a constructor failed; an optimizer given it refuses it */
} tg_schedule_kind;

#define TG_SCHEDULE_MAX_BOUNDARIES 16

/* A value type: no allocation, copy it freely. Build it with the functions below. */
typedef struct tg_schedule {
    tg_schedule_kind kind;
    double initial_learning_rate;
    int64_t decay_steps;  /* cosine decay with restarts: the first period */
    double decay_rate;    /* exponential and inverse time decay */
    bool staircase;       /* exponential and inverse time decay: floor(step / decay_steps) */
    double alpha;         /* cosine decays: the final fraction of the initial rate */
    double warmup_target; /* cosine decay: 0, no warm-up */
    int64_t warmup_steps;
    double end_learning_rate, power; /* polynomial decay */
    bool cycle;
    double t_mul, m_mul; /* cosine decay with restarts */
    int n_boundaries;    /* piecewise constant: n boundaries, n + 1 values */
    int64_t boundaries[TG_SCHEDULE_MAX_BOUNDARIES];
    double values[TG_SCHEDULE_MAX_BOUNDARIES + 1];
} tg_schedule;

/* initial_learning_rate * decay_rate ^ (step / decay_steps). */
typedef struct tg_exponential_decay_opts {
    double initial_learning_rate, decay_rate;
    int64_t decay_steps; /* > 0 */
    bool staircase;      /* default false */
} tg_exponential_decay_opts;
tg_schedule tg_exponential_decay_at(tg_loc loc, tg_exponential_decay_opts o);
#define tg_exponential_decay(...) \
    tg_exponential_decay_at(TG_LOC, TG__OPTS(tg_exponential_decay_opts, .staircase = false, __VA_ARGS__))

/* values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <=
 * boundaries[i], values[n] after boundaries[n-1]. `n` boundaries (1 to
 * TG_SCHEDULE_MAX_BOUNDARIES, strictly increasing) and n + 1 values, both copied. */
tg_schedule tg_piecewise_constant_at(tg_loc loc, const int64_t *boundaries, const double *values, int n);
#define tg_piecewise_constant(boundaries, values, n) tg_piecewise_constant_at(TG_LOC, boundaries, values, n)

/* Cosine decay from `from` to `from * alpha` over decay_steps (then flat), with `from` =
 * initial_learning_rate; with a warm-up (warmup_target not 0, Keras's warmup_target not
 * None), first a line from initial_learning_rate to warmup_target over warmup_steps,
 * then the decay from warmup_target. Decay: from * ((1 - alpha) * 0.5 * (1 + cos(pi *
 * t / decay_steps)) + alpha). */
typedef struct tg_cosine_decay_opts {
    double initial_learning_rate;
    int64_t decay_steps;  /* > 0 */
    double alpha;         /* default 0 */
    double warmup_target; /* default 0: no warm-up */
    int64_t warmup_steps; /* default 0 */
} tg_cosine_decay_opts;
tg_schedule tg_cosine_decay_at(tg_loc loc, tg_cosine_decay_opts o);
#define tg_cosine_decay(...) tg_cosine_decay_at(TG_LOC, TG__OPTS(tg_cosine_decay_opts, .alpha = 0, __VA_ARGS__))

/* (initial - end) * (1 - t / decay_steps) ^ power + end, t = min(step, decay_steps); with
 * cycle, decay_steps grows to the first multiple of itself at or past step instead. */
typedef struct tg_polynomial_decay_opts {
    double initial_learning_rate;
    int64_t decay_steps;      /* > 0 */
    double end_learning_rate; /* default 1e-4 */
    double power;             /* default 1 */
    bool cycle;               /* default false */
} tg_polynomial_decay_opts;
tg_schedule tg_polynomial_decay_at(tg_loc loc, tg_polynomial_decay_opts o);
#define tg_polynomial_decay(...)   \
    tg_polynomial_decay_at(TG_LOC, \
                           TG__OPTS(tg_polynomial_decay_opts, .end_learning_rate = 1e-4, .power = 1.0, __VA_ARGS__))

/* initial_learning_rate / (1 + decay_rate * step / decay_steps) (staircase: the floor). */
typedef struct tg_inverse_time_decay_opts {
    double initial_learning_rate, decay_rate;
    int64_t decay_steps; /* > 0 */
    bool staircase;      /* default false */
} tg_inverse_time_decay_opts;
tg_schedule tg_inverse_time_decay_at(tg_loc loc, tg_inverse_time_decay_opts o);
#define tg_inverse_time_decay(...) \
    tg_inverse_time_decay_at(TG_LOC, TG__OPTS(tg_inverse_time_decay_opts, .staircase = false, __VA_ARGS__))

/* SGDR: cosine decay over first_decay_steps, then warm restarts, each period t_mul times
 * longer and starting m_mul times lower than the one before. */
typedef struct tg_cosine_decay_restarts_opts {
    double initial_learning_rate;
    int64_t first_decay_steps; /* > 0 */
    double t_mul;              /* default 2 */
    double m_mul;              /* default 1 */
    double alpha;              /* default 0 */
} tg_cosine_decay_restarts_opts;
tg_schedule tg_cosine_decay_restarts_at(tg_loc loc, tg_cosine_decay_restarts_opts o);
#define tg_cosine_decay_restarts(...) \
    tg_cosine_decay_restarts_at(      \
        TG_LOC, TG__OPTS(tg_cosine_decay_restarts_opts, .t_mul = 2.0, .m_mul = 1.0, .alpha = 0, __VA_ARGS__))

/* The schedule's learning rate at `step` (NaN for TG_SCHEDULE_NONE or INVALID). An
 * optimizer evaluates it at its iteration count before the update, as Keras does. */
double tg_schedule_value(const tg_schedule *schedule, int64_t step);

/* ---- optimizers ---------------------------------------------------------------------- */
typedef struct tg_optimizer tg_optimizer;

/* Options every optimizer takes. At most one of the three clipping options may be set
 * (0 = off), as in Keras: clipnorm scales each gradient to at most that L2 norm,
 * global_clipnorm scales all of them together (tf.clip_by_global_norm), clipvalue
 * clips element-wise to [-clipvalue, clipvalue]. weight_decay is Keras's decoupled
 * decay, var -= var * weight_decay * lr before each update (0 = off).
 * use_ema keeps Keras's exponential moving average of every variable, avg = m avg +
 * (1 - m) var after each call (m = ema_momentum, 0 on the first update; ema_momentum 0
 * means Keras's 0.99), copied into the variables every ema_overwrite_frequency updates
 * (0 = never) and by tg_optimizer_finalize_variable_values, which fit calls at its end.
 * gradient_accumulation_steps = k >= 2 applies (sum of k gradients) / k every k-th call
 * and only adds the gradients up on the others; the update formulas and the EMA count
 * the applied updates (iterations / k), the schedules every call, as Keras does. */
#define TG__OPTIMIZER_COMMON_FIELDS                                 \
    double learning_rate;                                           \
    tg_schedule schedule; /* when set, it replaces learning_rate */ \
    double weight_decay;                                            \
    double clipnorm, clipvalue, global_clipnorm;                    \
    bool use_ema;                                                   \
    double ema_momentum;                                            \
    int ema_overwrite_frequency;                                    \
    int gradient_accumulation_steps;

typedef struct tg_sgd_opts {
    TG__OPTIMIZER_COMMON_FIELDS
    double momentum; /* in [0, 1]; 0 is plain gradient descent */
    bool nesterov;
} tg_sgd_opts;

typedef struct tg_adam_opts { /* Adam and AdamW */
    TG__OPTIMIZER_COMMON_FIELDS
    double beta_1, beta_2, epsilon;
    bool amsgrad;
} tg_adam_opts;

typedef struct tg_rmsprop_opts {
    TG__OPTIMIZER_COMMON_FIELDS
    double rho, momentum, epsilon;
    bool centered;
} tg_rmsprop_opts;

typedef struct tg_adagrad_opts {
    TG__OPTIMIZER_COMMON_FIELDS
    double initial_accumulator_value, epsilon;
} tg_adagrad_opts;

typedef struct tg_adadelta_opts {
    TG__OPTIMIZER_COMMON_FIELDS
    double rho, epsilon;
} tg_adadelta_opts;

typedef struct tg_ftrl_opts {
    TG__OPTIMIZER_COMMON_FIELDS
    double learning_rate_power; /* <= 0 */
    double initial_accumulator_value;
    double l1_regularization_strength, l2_regularization_strength, l2_shrinkage_regularization_strength;
    double beta;
} tg_ftrl_opts;

typedef struct tg_lion_opts {
    TG__OPTIMIZER_COMMON_FIELDS
    double beta_1, beta_2;
} tg_lion_opts;

/* Constructors return NULL with an error for invalid options. Keras's defaults: */
tg_optimizer *tg_sgd_at(tg_loc loc, tg_sgd_opts o);
tg_optimizer *tg_adam_at(tg_loc loc, tg_adam_opts o);
tg_optimizer *tg_adamw_at(tg_loc loc, tg_adam_opts o);
tg_optimizer *tg_rmsprop_at(tg_loc loc, tg_rmsprop_opts o);
tg_optimizer *tg_adagrad_at(tg_loc loc, tg_adagrad_opts o);
tg_optimizer *tg_nadam_at(tg_loc loc, tg_adam_opts o);  /* amsgrad refused */
tg_optimizer *tg_adamax_at(tg_loc loc, tg_adam_opts o); /* amsgrad refused */
tg_optimizer *tg_adadelta_at(tg_loc loc, tg_adadelta_opts o);
tg_optimizer *tg_ftrl_at(tg_loc loc, tg_ftrl_opts o);
tg_optimizer *tg_lion_at(tg_loc loc, tg_lion_opts o);
#define tg_sgd(...) \
    tg_sgd_at(TG_LOC, TG__OPTS(tg_sgd_opts, .learning_rate = 0.01, .momentum = 0, .nesterov = false, __VA_ARGS__))
#define tg_adam(...)                                                                                                  \
    tg_adam_at(TG_LOC, TG__OPTS(tg_adam_opts, .learning_rate = 1e-3, .beta_1 = 0.9, .beta_2 = 0.999, .epsilon = 1e-7, \
                                .amsgrad = false, __VA_ARGS__))
#define tg_adamw(...)                                                                                       \
    tg_adamw_at(TG_LOC, TG__OPTS(tg_adam_opts, .learning_rate = 1e-3, .weight_decay = 0.004, .beta_1 = 0.9, \
                                 .beta_2 = 0.999, .epsilon = 1e-7, .amsgrad = false, __VA_ARGS__))
#define tg_rmsprop(...)                                                                                                \
    tg_rmsprop_at(TG_LOC, TG__OPTS(tg_rmsprop_opts, .learning_rate = 1e-3, .rho = 0.9, .momentum = 0, .epsilon = 1e-7, \
                                   .centered = false, __VA_ARGS__))
#define tg_adagrad(...)                                                                                      \
    tg_adagrad_at(TG_LOC, TG__OPTS(tg_adagrad_opts, .learning_rate = 1e-3, .initial_accumulator_value = 0.1, \
                                   .epsilon = 1e-7, __VA_ARGS__))

#define tg_nadam(...)                                                                                                  \
    tg_nadam_at(TG_LOC, TG__OPTS(tg_adam_opts, .learning_rate = 1e-3, .beta_1 = 0.9, .beta_2 = 0.999, .epsilon = 1e-7, \
                                 __VA_ARGS__))
#define tg_adamax(...)                                                                                 \
    tg_adamax_at(TG_LOC, TG__OPTS(tg_adam_opts, .learning_rate = 1e-3, .beta_1 = 0.9, .beta_2 = 0.999, \
                                  .epsilon = 1e-7, __VA_ARGS__))
#define tg_adadelta(...) \
    tg_adadelta_at(TG_LOC, TG__OPTS(tg_adadelta_opts, .learning_rate = 1e-3, .rho = 0.95, .epsilon = 1e-7, __VA_ARGS__))
#define tg_ftrl(...)                                                                              \
    tg_ftrl_at(TG_LOC, TG__OPTS(tg_ftrl_opts, .learning_rate = 1e-3, .learning_rate_power = -0.5, \
                                .initial_accumulator_value = 0.1, __VA_ARGS__))
#define tg_lion(...) \
    tg_lion_at(TG_LOC, TG__OPTS(tg_lion_opts, .learning_rate = 1e-3, .beta_1 = 0.9, .beta_2 = 0.99, __VA_ARGS__))

/* Frees an optimizer that no model owns (tg_compile gives it to the model, which frees
 * it). Freeing one twice, or using it after, is an error (tg_last_error), never a crash. */
void tg_optimizer_free_at(tg_loc loc, tg_optimizer *opt);
#define tg_optimizer_free(opt) tg_optimizer_free_at(TG_LOC, opt)

/* optimizer.apply_gradients(zip(grads, vars)). grads[i] is the gradient for vars[i]
 * (same dtype and shape) or NULL (TF's None). vars must be float variables, trainable
 * or not. Returns 0, or -1 with an error and nothing updated.
 * - n == 0: nothing happens (the iteration count stays).
 * - every grads[i] NULL: the error
 *     No gradients provided for any variable: (['w', 'b'],).
 *   (Keras 2's text; variable names as given to tg_variable, without TF's ":0"),
 *   followed by one line per variable, "\n  w: <why>", the diagnosis kept by the
 *   gradient call that left it NULL (tg_explain_missing).
 * - some NULL: the warning "Gradients do not exist for variables ['b'] when minimizing
 *   the loss. If using `model.compile()`, did you forget to provide a `loss` argument?"
 *   with the same lines; the others are updated and the iteration count advances.
 * The first call fixes the order of the optimizer's state (the variables in the order
 * given); variables met later are appended. */
int tg_apply_gradients_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars, int n);
#define tg_apply_gradients(opt, grads, vars, n) tg_apply_gradients_at(TG_LOC, opt, grads, vars, n)

/* optimizer.minimize(loss_fn, vars): records loss_fn(user) on a new tape that also
 * watches vars (so non-trainable variables listed get gradients, as in Keras), takes
 * the gradients of the loss (of its sum, if not a scalar) and applies them. loss_fn
 * runs in a scope that ends before tg_minimize returns: copy out what you want to keep
 * (the loss value, say) through `user`. Returns 0 or -1, as tg_apply_gradients. */
typedef tg_tensor *(*tg_loss_fn)(void *user);
int tg_minimize_at(tg_loc loc, tg_optimizer *opt, tg_loss_fn loss_fn, void *user, tg_tensor *const *vars, int n);
#define tg_minimize(opt, loss_fn, user, vars, n) tg_minimize_at(TG_LOC, opt, loss_fn, user, vars, n)

int64_t tg_optimizer_iterations(const tg_optimizer *opt); /* updates applied so far */
/* The learning rate the next update uses (the schedule at the current iteration). */
double tg_optimizer_current_lr(const tg_optimizer *opt);
/* Sets the learning rate (Keras's `optimizer.learning_rate = x`); refused when the
 * optimizer has a schedule. Returns 0 or -1. */
int tg_optimizer_set_learning_rate_at(tg_loc loc, tg_optimizer *opt, double learning_rate);
#define tg_optimizer_set_learning_rate(opt, lr) tg_optimizer_set_learning_rate_at(TG_LOC, opt, lr)

/* optimizer.finalize_variable_values: with use_ema, each of vars takes its moving average
 * (variables the optimizer has not met are left alone); otherwise nothing. Returns 0 or -1. */
int tg_optimizer_finalize_variable_values_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *vars, int n);
#define tg_optimizer_finalize_variable_values(opt, vars, n) \
    tg_optimizer_finalize_variable_values_at(TG_LOC, opt, vars, n)

/* ---- state, for checkpoints ----------------------------------------------------------- */
/* One state array: slot `name` of one variable. Slots: SGD with momentum "momentum";
 * Adam/AdamW "momentum", "velocity" (+ "velocity_hat" with amsgrad); RMSprop "velocity"
 * (+ "momentum", + "average_gradient" when centered); Adagrad "accumulator"; Nadam "momentum", "velocity"; Adamax "momentum", "norm";
 * Adadelta "accumulated_grad", "accumulated_delta_var"; Ftrl "accumulator", "linear";
 * Lion "momentum"; then "average" with use_ema and "gradient_accumulator" with gradient
 * accumulation. */
typedef struct tg_optimizer_slot {
    const char *name;
    tg_tensor *variable; /* the variable it belongs to; NULL once that was freed */
    tg_dtype dtype;      /* the variable's */
    int64_t count;       /* elements */
    void *data;          /* writable, to restore a checkpoint; valid until the
                                optimizer meets a new variable or is freed */
} tg_optimizer_slot;
/* The number of state arrays (slots x variables), 0 before the first update. */
int tg_optimizer_state_count(const tg_optimizer *opt);
/* Array `index`, slot-major (every variable's "momentum", then every "velocity"...),
 * variables in state order. Returns 0, or -1 with an error for a bad index. */
int tg_optimizer_state(const tg_optimizer *opt, int index, tg_optimizer_slot *out);
int tg_optimizer_set_iterations_at(tg_loc loc, tg_optimizer *opt, int64_t iterations);
/* Creates the state of `vars` (in this order) without updating anything, so a
 * checkpoint can be restored into it before the first step. Returns 0 or -1. */
int tg_optimizer_build_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *vars, int n);
#define tg_optimizer_build(opt, vars, n)             tg_optimizer_build_at(TG_LOC, opt, vars, n)
#define tg_optimizer_set_iterations(opt, iterations) tg_optimizer_set_iterations_at(TG_LOC, opt, iterations)

TG_END_DECLS
#endif
