/* tapegrad/autodiff.h: GradientTape, with TensorFlow 2's semantics.
 *
 *   tg_tape *tape = tg_tape_begin();            // `with tf.GradientTape() as tape:`
 *   tg_tensor *y = tg_mul(x, x);                // recorded: x is a trainable variable
 *   tg_tape_end(tape);                          // end of the `with` block
 *   tg_tensor *dy_dx = tg_gradient(tape, y, x); // NULL when y does not depend on x
 *   tg_tape_free(tape);
 *
 * A trainable variable read while a tape records is watched by it; a constant must be
 * watched with tg_watch. Tapes nest: an outer tape records the inner tape's gradient
 * computation, which gives higher-order derivatives. */
#ifndef TAPEGRAD_AUTODIFF_H
#define TAPEGRAD_AUTODIFF_H

#include "tensor.h"

TG_BEGIN_DECLS

typedef struct tg_tape tg_tape;

typedef struct tg_tape_opts {
    bool persistent;               /* default false: one gradient/jacobian call */
    bool watch_accessed_variables; /* default true */
} tg_tape_opts;
tg_tape *tg_tape_begin_at(tg_loc loc, tg_tape_opts o);
#define tg_tape_begin(...) \
    tg_tape_begin_at(TG_LOC, TG__OPTS(tg_tape_opts, .persistent = false, .watch_accessed_variables = true, __VA_ARGS__))

int tg_tape_end_at(tg_loc loc, tg_tape *tape); /* stop recording (leave the block) */
/* Also ends it if still recording. A handle is never reused: freeing a tape twice, or
 * using it after, is an error (tg_last_error) and touches no other tape. */
void tg_tape_free_at(tg_loc loc, tg_tape *tape);
#define tg_tape_free(tape) tg_tape_free_at(TG_LOC, tape)
int tg_watch_at(tg_loc loc, tg_tape *tape, const tg_tensor *t);
int tg_tape_stop_recording_at(tg_loc loc, tg_tape *tape); /* `with tape.stop_recording():` */
int tg_tape_resume_recording_at(tg_loc loc, tg_tape *tape);
int tg_tape_reset_at(tg_loc loc, tg_tape *tape); /* forget everything recorded */
#define tg_tape_end(tape)              tg_tape_end_at(TG_LOC, tape)
#define tg_watch(tape, t)              tg_watch_at(TG_LOC, tape, t)
#define tg_tape_stop_recording(tape)   tg_tape_stop_recording_at(TG_LOC, tape)
#define tg_tape_resume_recording(tape) tg_tape_resume_recording_at(TG_LOC, tape)
#define tg_tape_reset(tape)            tg_tape_reset_at(TG_LOC, tape)

bool tg_tape_is_recording(const tg_tape *tape);
/* The variables this tape watches, in the order first watched. The array belongs to the
 * tape and stays valid until the tape records again, is reset or freed. */
tg_tensor *const *tg_watched_variables(const tg_tape *tape, int *count);

typedef enum tg_unconnected {
    TG_UNCONNECTED_NONE = 0, /* NULL, as TF's None */
    TG_UNCONNECTED_ZERO      /* zeros of the source's shape */
} tg_unconnected;

typedef struct tg_gradient_opts {
    tg_tensor *const *targets; /* the gradient of their sum */
    int n_targets;
    tg_tensor *const *sources;
    int n_sources;
    tg_tensor *const *output_gradients; /* optional: one seed per target (VJP) */
    tg_unconnected unconnected;
    tg_tensor **out; /* n_sources results; NULL where unconnected */
    bool allreduce;  /* data-parallel (distributed.h): out holds the
                                           average over the ranks (tg_allreduce_gradients),
                                           the same on every rank, its buckets' allreduces
                                           started during the backward pass as their
                                           gradients become final; one process: no change */
    double samples;  /* with .allreduce: this rank's samples, which weigh
                                           its gradients; 0 (default): the plain mean over
                                           ranks. A rank with no samples has no loss: it
                                           joins with tg_allreduce_gradients(zeros, n,
                                           .samples = 0) */
} tg_gradient_opts;
/* Returns 0, or -1 with an error (and every out[i] NULL). */
int tg_gradients_at(tg_loc loc, tg_tape *tape, tg_gradient_opts o);
/* A plain compound literal, so arrays written in the call, such as
 * `.sources = (tg_tensor *[]){w, b}`, live until the call returns. */
#define tg_gradients(tape, ...) tg_gradients_at(TG_LOC, tape, (tg_gradient_opts){__VA_ARGS__})

/* d target / d source for one of each. NULL either means "not connected" (TF's None;
 * tg_has_error() is false, a successful call clears the error slot) or an error. */
tg_tensor *tg_gradient_at(tg_loc loc, tg_tape *tape, const tg_tensor *target, const tg_tensor *source);
#define tg_gradient(tape, target, source) tg_gradient_at(TG_LOC, tape, target, source)

typedef struct tg_jacobian_opts {
    tg_unconnected unconnected;
} tg_jacobian_opts;
/* Shape target.shape + source.shape. */
tg_tensor *tg_jacobian_at(tg_loc loc, tg_tape *tape, const tg_tensor *target, const tg_tensor *source,
                          tg_jacobian_opts o);
/* Shape [batch] + target.shape[1:] + source.shape[1:]; the batch dims must match. */
tg_tensor *tg_batch_jacobian_at(tg_loc loc, tg_tape *tape, const tg_tensor *target, const tg_tensor *source,
                                tg_jacobian_opts o);
#define tg_jacobian(tape, target, source, ...)   \
    tg_jacobian_at(TG_LOC, tape, target, source, \
                   TG__OPTS(tg_jacobian_opts, .unconnected = TG_UNCONNECTED_NONE, __VA_ARGS__))
#define tg_batch_jacobian(tape, target, source, ...)   \
    tg_batch_jacobian_at(TG_LOC, tape, target, source, \
                         TG__OPTS(tg_jacobian_opts, .unconnected = TG_UNCONNECTED_NONE, __VA_ARGS__))

/* Custom gradients (tf.custom_gradient). `forward` computes the output from the inputs;
 * nothing it does is recorded. `backward` receives dy and must set dx[i] for each input
 * (NULL for none), built from tapegrad ops so that outer tapes can differentiate it, of
 * its input's dtype and shape; a gradient that is not (or whose scope has ended) is an
 * error naming the tg_custom_gradient line.
 * Both return 0, or -1 to fail. */
typedef tg_tensor *(*tg_custom_forward_fn)(tg_tensor *const *inputs, int n, void *user);
typedef int (*tg_custom_backward_fn)(const tg_tensor *dy, tg_tensor *const *inputs, int n, const tg_tensor *output,
                                     tg_tensor **dx, void *user);
tg_tensor *tg_custom_gradient_at(tg_loc loc, tg_tensor *const *inputs, int n, tg_custom_forward_fn forward,
                                 tg_custom_backward_fn backward, void *user);
#define tg_custom_gradient(inputs, n, forward, backward, user) \
    tg_custom_gradient_at(TG_LOC, inputs, n, forward, backward, user)

/* ---- why is a gradient missing? -------------------------------------------------------- */
typedef enum tg_cause {
    TG_CAUSE_NONE = 0,               /* the gradient is there and not identically zero */
    TG_CAUSE_NOT_READ = 1,           /* the source was never read while this tape recorded */
    TG_CAUSE_NOT_WATCHED = 2,        /* non-trainable variable, unwatched constant, or watching off */
    TG_CAUSE_STOP_GRADIENT = 3,      /* every path is cut by tg_stop_gradient */
    TG_CAUSE_NON_DIFFERENTIABLE = 4, /* every path is cut by an op with no gradient */
    TG_CAUSE_OUTSIDE_TAPE = 5,       /* the target, or a tensor on the way, was made while not recording */
    TG_CAUSE_TAPE_USED = 6,          /* a non-persistent tape that already gave its gradients */
    TG_CAUSE_STALE_READ = 7,         /* the variable was assigned after the tape read it */
    TG_CAUSE_INTEGER_DTYPE = 8,      /* the source is an integer or bool tensor */
    TG_CAUSE_ZERO_GRADIENT = 9,      /* present, but identically zero: the target does not vary */
    TG_CAUSE_UNCONNECTED = 10,       /* the target does not depend on the source: nothing computed from it reaches it */
    TG_CAUSE_COPIED_OUT = 11,        /* values left tapegrad (tg_copy_out, tg_item, tg_predict...) and came back */
    TG_CAUSE_ASSIGNED = 12,          /* the path goes through tg_assign into a variable, which has no gradient */
    TG_CAUSE_RECREATED = 13,         /* the target read a new variable of the same name or line instead */
} tg_cause;

const char *tg_cause_name(tg_cause cause); /* "not_read", "stop_gradient", ... */

typedef struct tg_diagnosis {
    tg_cause cause;
    tg_loc where;       /* the user's line behind the cause (the cutting op, the read...) */
    const char *op;     /* the op that cut the path, when there is one */
    char message[1024]; /* what happened, where, and what to do instead */
} tg_diagnosis;

/* Explains the gradient of `target` with respect to `source` on `tape`: why it is NULL
 * (or zero, or stale). Works on a used non-persistent tape until it is freed. Returns
 * 0 and fills *out, or -1 with an error (NULL or freed tape, dead tensors). */
int tg_explain_at(tg_loc loc, tg_tape *tape, const tg_tensor *target, const tg_tensor *source, tg_diagnosis *out);
#define tg_explain(tape, target, source, out) tg_explain_at(TG_LOC, tape, target, source, out)

/* Writes the broken gradient path as Graphviz DOT: the ops between the source and the
 * target, each with the user's file:line, the cut drawn in red with its cause, values
 * copied out and built back (or assigned) drawn as a dashed break. `dot -Tsvg` draws it.
 * Returns 0, or -1 with an error (NULL stream, freed tape, dead tensors, a failed write). */
int tg_explain_dot_at(tg_loc loc, tg_tape *tape, const tg_tensor *target, const tg_tensor *source, FILE *out);
#define tg_explain_dot(tape, target, source, out) tg_explain_dot_at(TG_LOC, tape, target, source, out)

/* The diagnosis kept for `source` by the last gradient call on this thread that left it
 * without a gradient (kept even after the tape is freed), for optimizers and training
 * loops that only see (gradient, variable) pairs. Returns 0 when one is known, else -1
 * with out->cause = TG_CAUSE_NONE and an empty message (no error is set). */
int tg_explain_missing(const tg_tensor *source, tg_diagnosis *out);

/* Checks, for this thread. TG_CHECK_EAGER makes every gradient call warn about each
 * source it leaves without a gradient, or with an all-zero one, with its diagnosis at the
 * culprit line (not with .unconnected = TG_UNCONNECTED_ZERO, which asks for zeros). It
 * never warns about a correct program: copying values out, reading variables outside a
 * tape or cutting a path are all fine until a gradient that needs them is missing.
 * TG_CHECK_STRICT makes a stale read (cause 7) an error. TG_CHECK_NUMERICS
 * (TF's enable_check_numerics) makes the first NaN or Inf an error where it appears: an
 * op whose float output holds one fails, naming the op, its line, its layer and, when
 * the value came in through an input (a variable, data), that input; a backward rule
 * whose gradient holds one fails naming the op, the input and its variable. The
 * environment variable TAPEGRAD_CHECK=eager,strict,numerics sets them when a thread
 * begins its first tape. */
enum { TG_CHECK_EAGER = 1, TG_CHECK_STRICT = 2, TG_CHECK_NUMERICS = 4 };
void tg_set_check(unsigned flags);
unsigned tg_get_check(void);

TG_END_DECLS
#endif
