/* Internal view of optimizers: hyperparameters, the state layout and the update kernels.
 *
 * The state is flat, as llm.c lays out its Adam moments: one buffer per slot kind
 * ("momentum", "velocity", ...), each variable owning a 64-byte aligned range at the
 * same offset in every buffer, in the order the optimizer first met the variables. An
 * update is then one loop per variable over contiguous memory. */
#ifndef TG_OPTIM_IMPL_H
#define TG_OPTIM_IMPL_H

#include "tapegrad/optim.h"
#include "../tensor/tensor_impl.h"

typedef enum tg_optim_kind {
    TG_OPTIM_SGD,
    TG_OPTIM_ADAM,
    TG_OPTIM_RMSPROP,
    TG_OPTIM_ADAGRAD,
    TG_OPTIM_NADAM,
    TG_OPTIM_ADAMAX,
    TG_OPTIM_ADADELTA,
    TG_OPTIM_FTRL,
    TG_OPTIM_LION,
} tg_optim_kind;

enum { TG_OPTIM_MAX_SLOTS = 5 }; /* the optimizer's own 3 at most, EMA, accumulation */

/* Hyperparameters, whichever optimizer uses them. */
typedef struct tg_optim_hyper {
    double learning_rate;
    tg_schedule schedule;
    double weight_decay, clipnorm, clipvalue, global_clipnorm;
    bool use_ema;
    double ema_momentum;
    int ema_overwrite_frequency, accumulation_steps; /* accumulation_steps 1: every call updates */
    int accumulation_given;                          /* as given, for its check */
    double momentum;                                 /* SGD, RMSprop */
    bool nesterov;                                   /* SGD */
    double beta_1, beta_2, epsilon; /* Adam, Nadam, Adamax, Lion; epsilon also RMSprop, Adagrad, Adadelta */
    bool amsgrad;
    double rho; /* RMSprop, Adadelta */
    bool centered;
    double initial_accumulator_value;                            /* Adagrad, Ftrl */
    double learning_rate_power, l1, l2, l2_shrinkage, ftrl_beta; /* Ftrl */
} tg_optim_hyper;

/* One variable's place in the state. */
typedef struct tg_optim_var {
    tg_tensor *var; /* the handle, valid while var->gen == gen */
    uint32_t gen;
    tg_dtype dtype;
    int64_t count;
    size_t offset;  /* bytes, the same in every slot buffer */
    int64_t queued; /* iterations + 1 while its update waits in the joined loop */
} tg_optim_var;

enum { TG_OPTIM_ALIVE = 0x0971A1, TG_OPTIM_DEAD = 0x0971DD };

/* The hook that averages accumulated gradients over processes (tg__optimizer_set_reducer). */
typedef int (*tg__grad_reducer)(tg_loc loc, tg_tensor **grads, int n, void *user);

struct tg_optimizer {
    uint32_t magic;    /* TG_OPTIM_DEAD once freed (the struct is retired, never reused) */
    const void *owner; /* the model compiled with it, which frees it */
    tg_loc owner_loc;  /* that tg_compile call */
    tg_optim_kind kind;
    const char *name; /* Keras's class name, for messages */
    const char *ctor; /* the tg_ call that makes it, for messages */
    tg_optim_hyper h;
    int64_t iterations;
    /* Nadam's u_product (nadam.py keeps it in a variable of the variables' dtype): the
     * product of beta_1 (1 - 0.5 * 0.96^s) for s = 1 .. nadam_step, in each dtype. */
    int64_t nadam_step;
    float nadam_product_f32;
    double nadam_product_f64;
    int n_slots;
    int slot_average, slot_accumulator; /* the EMA's and the accumulated gradients' slots, or -1 */
    const char *slot_name[TG_OPTIM_MAX_SLOTS];
    double slot_init[TG_OPTIM_MAX_SLOTS];
    tg_optim_var *vars;
    int n_vars, cap_vars;
    size_t bytes, cap_bytes; /* used and allocated bytes of each slot buffer */
    unsigned char *slot[TG_OPTIM_MAX_SLOTS];
    void *scratch; /* a clipped gradient */
    size_t scratch_bytes;
    int *index;              /* per apply: the state index of each pair */
    tg_tensor **mean_grads;  /* per apply with accumulation: headers over the accumulators */
    tg__grad_reducer reduce; /* averages the accumulated sums over processes, or NULL */
    void *reduce_user;
    int cap_index;
    struct tg_optim_step *steps; /* per apply: each variable's update, run as one loop */
    int64_t *starts;             /* element offset of each step in that loop, and the total */
    int cap_steps;
};

/* What one update of one variable needs, beside the data. Scalars are cast to the
 * variable's dtype inside the kernels, as Keras casts them with ops.cast. */
typedef struct tg_optim_step {
    const tg_optimizer *opt;
    tg_dtype dtype;
    double lr;
    int64_t iterations; /* before this update */
    int64_t n;          /* elements */
    void *w;
    const void *g;
    void *s[TG_OPTIM_MAX_SLOTS]; /* the variable's range of each slot buffer */
} tg_optim_step;

void tg__optim_update_f32(const tg_optim_step *st);
void tg__optim_update_f64(const tg_optim_step *st);
/* Runs n updates as one loop over all their elements, spread over the loop pool; each
 * element's update is independent, so the split never changes a value. starts has n + 1
 * entries: the prefix sums of the steps' sizes. */
void tg__optim_run(const tg_optim_step *steps, const int64_t *starts, int n);

/* Gradient clipping into `out` (may be the same as g for none). */
typedef enum tg_clip_mode { TG_CLIP_NONE, TG_CLIP_NORM, TG_CLIP_GLOBAL, TG_CLIP_VALUE } tg_clip_mode;
double tg__optim_sum_squares(const tg_tensor *g);
void tg__optim_clip_f32(tg_clip_mode mode, double c, double global_norm, const float *g, float *out, int64_t n);
void tg__optim_clip_f64(tg_clip_mode mode, double c, double global_norm, const double *g, double *out, int64_t n);

/* With gradient accumulation over several processes: the hook that averages the summed
 * gradients over them at each accumulation boundary (train's, on dist), so that between
 * boundaries nothing travels. It replaces grads[i] by new tensors, as
 * tg_allreduce_gradients does; 0 or -1 with an error. */
void tg__optimizer_set_reducer(tg_optimizer *opt, tg__grad_reducer reduce, void *user);
int tg__optimizer_accumulation_steps(const tg_optimizer *opt); /* 1 without accumulation */

/* Checks a user's optimizer handle: non-NULL and not freed. False with an error. */
bool tg__optimizer_check(tg_loc loc, const char *func, const tg_optimizer *opt);
/* tg_compile's ownership: `owner` (a model) takes the optimizer, which then has one owner
 * and one free. False with an error when it is freed or another owner holds it. */
bool tg__optimizer_take(tg_loc loc, tg_optimizer *opt, const void *owner);
/* The owner lets go (its compile is being freed); the optimizer itself is not freed. */
void tg__optimizer_drop(tg_optimizer *opt, const void *owner);

#endif
