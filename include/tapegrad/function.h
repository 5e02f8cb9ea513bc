/* tapegrad/function.h: graph mode, TensorFlow's tf.function, and control flow on values
 * (tf.cond, tf.while_loop). docs/function.md sets TF's semantics beside tapegrad's.
 *
 * The first call of a function for an input signature (each input's dtype and shape) runs
 * the C function once while tracing every tapegrad op it calls (tapes, gradients,
 * optimizer updates and assigns included) into a graph, as TF traces: the ops compute
 * nothing (their outputs have shapes, not values) and side effects are recorded, not
 * done; then the graph runs for the call's results. Later calls with that signature
 * replay the graph: no dispatch, no recording, buffers planned once and reused. C code
 * between ops runs only while tracing. Variables are captured by reference (an assign
 * inside acts on every call); other tensors the function reads without taking them as
 * inputs are captured by value, as they were when traced. Reading a value inside a trace
 * (tg_item, tg_copy_out) is an error: branch with tg_cond or tg_while_loop, print with
 * tg_print (recorded: it prints at every call). */
#ifndef TAPEGRAD_FUNCTION_H
#define TAPEGRAD_FUNCTION_H

#include "tensor.h"

TG_BEGIN_DECLS

/* The most outputs a function or a tg_cond may give. */
#define TG_FUNCTION_MAX_OUTPUTS 16

typedef struct tg_function tg_function;
/* The function traced: reads inputs[0..n_inputs), sets outputs[0..k) and returns k (at
 * most TG_FUNCTION_MAX_OUTPUTS), or -1 with an error. */
typedef int (*tg_function_fn)(void *user, tg_tensor *const *inputs, int n_inputs, tg_tensor **outputs);

typedef struct tg_function_opts {
    const char *name; /* for messages; default "function" */
    bool run_eagerly; /* never trace: every call runs the C function (Keras's run_eagerly) */
    /* A value read (tg_item...) or a random draw while tracing makes the function run
     * eagerly from then on, with a one-time note naming the line, instead of an error
     * (what tg_fit does with a step of yours). Such a function is traced eagerly: the
     * trace computes its values, so its C code may read them, and its results stand. */
    bool eager_fallback;
    /* Every input's whole shape is its signature. By default (TF's None batch dimension),
     * when the inputs all share dim 0 it is the batch: a call that differs only there (a
     * partial last batch) replays the graph, unless tracing found the batch size baked in. */
    bool exact_shapes;
} tg_function_opts;

tg_function *tg_function_new_at(tg_loc loc, tg_function_fn fn, void *user, tg_function_opts o);
#define tg_function_new(fn, user, ...) \
    tg_function_new_at(TG_LOC, fn, user, TG__OPTS(tg_function_opts, .name = "function", __VA_ARGS__))
/* Runs the function on n inputs; outputs must hold TG_FUNCTION_MAX_OUTPUTS. The outputs
 * are new tensors in the innermost scope. Returns the number of outputs, or -1 with an
 * error. Called while a tape records (outside the function), it runs the C function
 * eagerly so that the tape sees its ops. */
int tg_function_call_at(tg_loc loc, tg_function *f, tg_tensor *const *inputs, int n, tg_tensor **outputs);
#define tg_function_call(f, ...) tg_function_call_at(TG_LOC, f, __VA_ARGS__) /* (f, inputs, n, outputs) */
void tg_function_free(tg_function *f);
/* How many times the function has been traced (TF's experimental_get_tracing_count). */
int tg_function_trace_count(const tg_function *f);
/* What the function's graphs hold, summed over its traces. */
typedef struct tg_function_stats {
    int traces;
    int64_t nodes;       /* ops, side effects, reads and control nodes */
    size_t buffer_bytes; /* the planned buffers: node outputs share them by liveness */
    size_t value_bytes;  /* the same outputs, each in its own buffer (what eager mode allocates) */
} tg_function_stats;
tg_function_stats tg_function_get_stats(const tg_function *f);
/* Is this thread tracing a function now? */
bool tg_tracing(void);

/* ---- control flow on values ------------------------------------------------------------- */
/* A branch of tg_cond: sets outputs[0..n) from what it closes over (user). 0, or -1. */
typedef int (*tg_branch_fn)(void *user, tg_tensor **outputs);
/* tf.cond: the outputs of true_fn when the bool scalar pred is true, else of false_fn.
 * Eagerly, only the branch taken runs (a tape records its ops, so the gradient goes to
 * that branch). Traced, both branches are traced (their outputs must agree in dtype and
 * shape) and the graph picks one at every call; the gradient goes to the branch taken.
 * Returns 0, or -1 with an error. */
int tg_cond_at(tg_loc loc, const tg_tensor *pred, tg_branch_fn true_fn, tg_branch_fn false_fn, void *user,
               int n_outputs, tg_tensor **outputs);
#define tg_cond(pred, true_fn, false_fn, user, n_outputs, outputs) \
    tg_cond_at(TG_LOC, pred, true_fn, false_fn, user, n_outputs, outputs)

/* tf.while_loop: while cond_fn(vars) is true, vars = body_fn(vars). cond_fn sets *keep_going
 * to a bool scalar; body_fn sets next[0..n) of the same dtypes and shapes as vars. */
typedef int (*tg_loop_cond_fn)(void *user, tg_tensor *const *vars, int n, tg_tensor **keep_going);
typedef int (*tg_loop_body_fn)(void *user, tg_tensor *const *vars, int n, tg_tensor **next);
typedef struct tg_while_opts {
    void *user;
    int64_t maximum_iterations; /* > 0: at most this many iterations (TF's bound); 0: none */
    bool strict_maximum;        /* a condition still true after maximum_iterations is an error (TF stops) */
} tg_while_opts;
/* Sets outputs[0..n) to the loop variables' final values. Eagerly, a C loop whose ops a
 * tape records (gradients run back over every iteration); traced, cond_fn and body_fn are
 * traced once and the graph loops. Returns 0, or -1 with an error. */
int tg_while_loop_at(tg_loc loc, tg_loop_cond_fn cond_fn, tg_loop_body_fn body_fn, tg_tensor *const *loop_vars, int n,
                     tg_tensor **outputs, tg_while_opts o);
#define tg_while_loop(cond_fn, body_fn, loop_vars, n, outputs, ...) \
    tg_while_loop_at(TG_LOC, cond_fn, body_fn, loop_vars, n, outputs, TG__OPTS(tg_while_opts, __VA_ARGS__))

TG_END_DECLS
#endif
