/* Internal view of tensors, scopes, variables and the per-thread context. */
#ifndef TG_TENSOR_IMPL_H
#define TG_TENSOR_IMPL_H

#include <stdarg.h>
#include <string.h>

#include "tapegrad/tensor.h"

/* For the few small helpers of the per-op path that several callers share: inlined
 * everywhere, as they were when each had one caller (a call costs the eager path ~10%). */
#define TG_HOT_INLINE inline __attribute__((always_inline))

typedef struct tg_var tg_var;
typedef struct tg_tape tg_tape;
struct tg_function;
struct tg_rng;

enum { TG_HEADER_ALIVE = 0x7A11FE, TG_HEADER_DEAD = 0xDEAD01 };

enum tg_tensor_flags {
    TG_T_VARIABLE = 1 << 0,   /* the header of a variable: data owned by the tg_var */
    TG_T_SNAPSHOT = 1 << 1,   /* a recorded read of a variable: data aliases it until assign */
    TG_T_UNRECORDED = 1 << 2, /* made by an op while no tape was recording */
    TG_T_FROM_DATA = 1 << 3,  /* made from C values (tg_tensor_from, tg_scalar, tg_fill...) */
};

struct tg_tensor {
    uint32_t state; /* TG_HEADER_ALIVE or TG_HEADER_DEAD */
    uint32_t gen;   /* bumped each time the header is freed */
    tg_dtype dtype;
    uint32_t flags;
    int rank;
    int64_t shape[TG_MAX_RANK];
    int64_t size;
    void *data;
    tg_scope *scope;                  /* NULL for variables */
    tg_var *var;                      /* variables and their snapshots */
    tg_loc loc;                       /* the user's call that made it */
    uint32_t op;                      /* op that made it (tg_op_kind), or TG_OP_NONE */
    tg_tensor *next;                  /* next header of the same scope / free list */
    tg_tensor *snap_prev, *snap_next; /* the variable's live snapshots */
    /* Provenance, for the diagnosis of missing gradients: */
    uint64_t stamp;    /* the thread's clock when it was made */
    tg_tensor *src[2]; /* the first inputs of an op no tape recorded */
    uint32_t src_gen[2];
    uint64_t built_from; /* made from C values: the stamp of the event they came from, or 0 */
};

struct tg_var {
    char *name;
    bool trainable;
    uint64_t version;
    tg_loc last_assign;
    tg_loc listed;    /* the last list of a model's or layer's variables that handed it out */
    tg_loc frozen;    /* where a layer or model was made non-trainable with it */
    tg_loc last_read; /* the last op that read it, and when */
    uint64_t last_read_stamp;
    tg_tensor *snapshots;     /* live snapshots still aliasing `data` */
    tg_tensor *handle;        /* the public tensor header */
    tg_constraint constraint; /* applied by optimizers after each update ({0}: none) */
};

/* ---- provenance events -------------------------------------------------------------- */
/* Values that leave tapegrad (tg_copy_out, tg_item, tg_predict, tg_evaluate) and values
 * assigned into variables. The diagnosis of missing gradients links a tensor built from
 * C values afterwards, or a variable read afterwards, back to them: the places where a
 * gradient path leaves the tape without any op to show for it. */
typedef enum tg_event_kind { TG_EVENT_COPY_OUT, TG_EVENT_MODEL_VALUES, TG_EVENT_ASSIGN } tg_event_kind;

typedef struct tg_event {
    tg_event_kind kind;
    uint64_t stamp;   /* the thread's clock when it happened */
    tg_loc loc;       /* the user's call */
    const char *func; /* "tg_copy_out", "tg_item", "tg_predict", "tg_assign", ... */
    tg_tensor *t;     /* the tensor whose values left, or the value assigned */
    uint32_t gen;
    tg_tensor *var; /* TG_EVENT_ASSIGN: the variable */
    uint32_t var_gen;
    const void *dst; /* where copied values went, and how many bytes */
    size_t bytes;
    double first; /* the first value copied */
} tg_event;
#define TG_EVENTS_MAX 128

/* Records an event; returns its stamp. */
uint64_t tg__event(tg_event e);
/* The event with this stamp, if still kept. */
const tg_event *tg__event_at(uint64_t stamp);

/* ---- per-thread context ------------------------------------------------------------ */
#define TG_MAX_TAPES 16
typedef struct tg_context {
    tg_scope *scope;               /* innermost open scope */
    tg_tape *active[TG_MAX_TAPES]; /* tapes in their `with` block, innermost last */
    int n_active;
    int n_recording;                /* active tapes not inside stop_recording */
    uint64_t clock;                 /* counts tensors made and tape events */
    tg_event events[TG_EVENTS_MAX]; /* the latest values that left tapegrad, and assigns */
    uint64_t n_events;              /* events so far; the latest is events[(n - 1) % MAX] */
    unsigned check;                 /* TG_CHECK_* flags (autodiff.h) */
    bool check_from_env;            /* TAPEGRAD_CHECK has been read */
    /* For TG_CHECK_NUMERICS: the layer whose call is running (nn sets it, for reports),
     * and whether a backward rule is running (its gradients are checked as a whole). */
    const char *layer;
    bool in_backward;
    bool profiling;          /* tg_profile_start (ops.h) */
    int gradient_depth;      /* gradient computations running (nested ones too) */
    tg_loc user_call;        /* the user's tg_fit/tg_evaluate/tg_predict that is running */
    struct tg_fgraph *trace; /* the graph a function's trace is building (src/graph/), or NULL */
} tg_context;
tg_context *tg__ctx(void);

/* An op's output remembers its first inputs when no tape recorded it, so a diagnosis can
 * follow the path back to where it left the tape. */
static inline void tg__keep_inputs(tg_tensor *out, const tg_tensor *const *in, int n)
{
    for (int i = 0; i < n && i < 2; i++) {
        out->src[i] = (tg_tensor *)in[i];
        out->src_gen[i] = in[i]->gen;
    }
}

/* ---- graph mode's hooks (src/graph/trace.c) -------------------------------------------- */
/* While a function is traced (tg_context.trace), reading a value is refused: false with
 * an error naming `func` and the line. True when no trace runs. */
bool tg__trace_refuse_read(tg_loc loc, const char *func);
/* The same for random values drawn in C (a graph would keep the one draw). */
bool tg__trace_refuse_random(tg_loc loc, const char *func);
/* A side effect replayed at every run of the graph: fn(loc, arg, in, n), arg a copy of
 * arg_bytes, in[i] the tensors in[i] stood for when traced (NULL stays NULL), `writes` the
 * variables it writes. Called before the effect: 0 when the caller should do it now (no
 * trace, or the function's own trace), 1 when it is only recorded (a branch or a loop
 * body, traced but not run), -1 with an error. The caller does it with the trace paused. */
typedef int (*tg__host_fn)(tg_loc loc, const void *arg, tg_tensor *const *in, int n);
int tg__trace_host(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *const *in, int n,
                   tg_tensor *const *writes, int n_writes);
/* A host side effect that makes `out` (its last argument at replay, after its inputs): out
 * was made now; the graph makes it again at every call. 0, or -1 with an error. */
int tg__trace_host_output(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *out);
/* A host side effect of n inputs that made the n_out tensors `out` (after its inputs at
 * replay): recorded after the caller did it, with the trace paused. 0, or -1 with an error. */
int tg__trace_host_outputs(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, tg_tensor *const *in, int n,
                           tg_tensor *const *out, int n_out);
/* `bytes` of zeroed memory that lives as long as the graph being traced (state its host
 * nodes share at replay); NULL when no trace runs or out of memory. */
void *tg__trace_alloc(size_t bytes);
/* True while a branch or a loop body is traced (tg_cond, tg_while_loop). */
bool tg__trace_nested(void);
/* A tape kept a read of a variable as snapshot `snap`. */
void tg__trace_snapshot(tg_tensor *snap, tg_tensor *var);
/* Whether the thread's trace is abstract (TF's tracing): ops make headers with no data and
 * run no kernel, side effects are recorded and not done; the graph then runs for results. */
bool tg__trace_abstract(void);
/* A function traced abstractly even with eager_fallback (fit's own step, known to read no
 * value): a trace that reads one is run again eagerly for that call's results. */
void tg__function_trace_abstract(struct tg_function *f);
/* C code drew from r while an abstract, soft trace ran: its state before (put back with
 * tg__rng_set_state when the step reruns eagerly). */
void tg__trace_note_rng(struct tg_rng *r, const uint64_t state[4]);
void tg__rng_set_state(struct tg_rng *r, const uint64_t state[4]);
/* Pauses the thread's trace (returns it) and resumes it. */
static inline struct tg_fgraph *tg__trace_pause(void)
{
    tg_context *ctx = tg__ctx();
    struct tg_fgraph *g = ctx->trace;
    ctx->trace = NULL;
    return g;
}
static inline void tg__trace_resume(struct tg_fgraph *g) { tg__ctx()->trace = g; }

/* ---- graph mode's unknown batch dimension (src/graph/shapes.c) ------------------------- */
/* A public shape accessor called while a graph that may take any batch size is traced: a
 * number read (a dim, the size, or every dim) that is it or a multiple of it makes the graph
 * keep its batch size (the C number may end up in it). The library's own calls go to tg__lib_* (below), which trust the caller. */
enum { TG_SHAPE_READ_ALL = -1, TG_SHAPE_READ_SIZE = -2 }; /* what: else the axis read */
void tg__trace_shape_read(const tg_tensor *t, const char *func, int what);
/* The reshape or broadcast_to that made `out` took its target from like's shape: each dim
 * equal to like's follows like's at every run (shape_like), or dim 0 follows like's dim 0. */
void tg__trace_shape_like(const tg_tensor *out, const tg_tensor *like);
/* The general form: dim k of the target is like's dim map[k] - 1 (0: a number of its own). */
void tg__trace_shape_map(const tg_tensor *out, const tg_tensor *like, const int8_t *map);
void tg__trace_batch_like(const tg_tensor *out, const tg_tensor *like);
/* A C number of the batch (a rank's sample count) is kept in the graph being traced: it
 * keeps its batch size, and a partial batch traces again. */
void tg__trace_keeps_batch(const char *why);
/* The last host node reads its inputs' shapes when it runs (metrics, print). */
void tg__trace_host_shape_free(void);
/* tg__trace_host_output for an `out` shaped like `like` at every run (its input, before out). */
int tg__trace_host_like(tg_loc loc, tg__host_fn fn, const void *arg, size_t arg_bytes, const tg_tensor *like,
                        tg_tensor *out);
/* A scalar of like's dtype: the product of x's dims in `axes` (bit k: dim k), read from x's
 * shape at every run of a graph. */
tg_tensor *tg__count_like(tg_loc loc, const tg_tensor *x, const tg_tensor *like, unsigned axes);
/* The same for numerator / that product (computed in double, as tg_scalar_like takes it). */
tg_tensor *tg__per_count_like(tg_loc loc, double numerator, const tg_tensor *x, const tg_tensor *like, unsigned axes);
/* t, filled with value and shaped like `like`, made again at every run of a graph. */
tg_tensor *tg__trace_fill_like(tg_loc loc, const tg_tensor *like, tg_tensor *t, double value);
tg_shape tg__lib_shape_of(const tg_tensor *t);
int64_t tg__lib_dim(const tg_tensor *t, int axis);
int64_t tg__lib_size(const tg_tensor *t);
#define tg_shape_of(t)  tg__lib_shape_of(t)
#define tg_dim(t, axis) tg__lib_dim(t, axis)
#define tg_size(t)      tg__lib_size(t)

/* ---- the user's line ------------------------------------------------------------------- */
/* A line inside tapegrad's own sources means nothing to a user. While the library runs a
 * call of the user's (tg_fit: enter at its start, leave with what enter returned), errors,
 * warnings and diagnoses name that call instead; outside one, no line at all. */
bool tg__in_library(const char *file);
tg_loc tg__user_loc(tg_loc loc);
tg_loc tg__enter_user_call(tg_loc loc);
void tg__leave_user_call(tg_loc outer);

/* ---- errors -------------------------------------------------------------------------- */
/* Sets the thread's error message (printf format, prefixed with the caller's file:line)
 * and returns NULL, so failing calls can `return tg__fail(...)`. */
void *tg__fail(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tg__failf(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));  /* returns -1 */
bool tg__failb(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* returns false */
void tg__warn(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Errors set on this thread so far: a caller can tell whether anything it ran failed,
 * even a callee that went on with a NULL. */
uint64_t tg__error_count(void);
/* For a NULL argument: keeps an earlier error, or says which argument was NULL. */
void *tg__null_arg(tg_loc loc, const char *func, const char *arg);
/* Checks an input: non-NULL and alive. Returns false with an error set. */
bool tg__check_input(tg_loc loc, const char *func, const tg_tensor *t, const char *arg);

/* ---- handles ------------------------------------------------------------------------ */
/* Models, optimizers and callbacks are made a few times per program. When one is freed,
 * its contents are, but its struct is kept, marked dead, for the life of the process: the
 * address is never handed to another object, so a stale handle finds the mark (and gives
 * an error) instead of freed memory or a new object. Tapes, made once per step and
 * recycled, carry a generation in their handles instead (autodiff/tape.c). */
void tg__retire(void *p);

/* Element sizes, inlined for the hot path (tg_dtype_size checks its argument). */
static inline size_t tg__dsize(tg_dtype d)
{
    return d == TG_F64 || d == TG_I64 ? 8 : d == TG_BOOL ? 1 : d == TG_BF16 ? 2 : 4;
}

/* bfloat16 from float32 as PyTorch's c10::BFloat16 rounds it: to nearest, ties to even
 * (so a value past the largest finite rounds to Inf), and any NaN to the quiet 0x7FC0. */
static inline uint16_t tg__bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if (f != f)
        return 0x7FC0;
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static inline float tg__f32_from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Real-valued dtypes, the ones gradients flow through: float32, float64 and bfloat16. */
static inline bool tg__dtype_is_real(tg_dtype d) { return d == TG_F32 || d == TG_F64 || d == TG_BF16; }

/* ---- checked size arithmetic ------------------------------------------------------------ */
/* Every dimension, element count, offset and byte count computed from what a user gave
 * goes through these, so a huge size is an error, never a wrapped value or undefined
 * behaviour. Each returns true when the exact result does not fit (as the builtins). A
 * shape's dims, with zeros counted as ones, multiply to at most TG_MAX_ELEMENTS, so every
 * stride, offset and byte count (8 bytes an element at most) of a tensor fits. */
#define TG_MAX_ELEMENTS (INT64_MAX / 16)
static inline bool tg__add_overflow(int64_t a, int64_t b, int64_t *r) { return __builtin_add_overflow(a, b, r); }
static inline bool tg__mul_overflow(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }
static inline bool tg__size_add_overflow(size_t a, size_t b, size_t *r) { return __builtin_add_overflow(a, b, r); }
static inline bool tg__size_mul_overflow(size_t a, size_t b, size_t *r) { return __builtin_mul_overflow(a, b, r); }
/* A dimension past TG_MAX_ELEMENTS (or a sum of them that overflows) is refused by the
 * shape check of the tensor made with it; this keeps such sums defined on the way. */
static inline int64_t tg__dim_add(int64_t a, int64_t b)
{
    int64_t r;
    return tg__add_overflow(a, b, &r) || r > TG_MAX_ELEMENTS ? TG_MAX_ELEMENTS + 1 : r;
}

/* ---- shapes -------------------------------------------------------------------------- */
static inline tg_shape tg__shape(const tg_tensor *t)
{
    tg_shape s;
    s.rank = t->rank;
    memcpy(s.dims, t->shape, sizeof s.dims); /* fixed size: one vector copy, no stall */
    return s;
}
bool tg__shape_eq(const tg_shape *a, const tg_shape *b);
static inline bool tg__same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}
/* Elements of a shape; -1 when a dim is negative, or the shape too large (the product of
 * its dims, zeros counted as ones, above TG_MAX_ELEMENTS). */
int64_t tg__shape_size(const tg_shape *s);
/* "(2, 3)" into buf, returns buf. */
const char *tg__shape_str(const tg_shape *s, char *buf, size_t size);
#define TG_SHAPE_STR_MAX 200

/* ---- scopes and allocation -------------------------------------------------------------- */
void *tg__arena_alloc(tg_scope *scope, size_t bytes); /* 64-byte aligned */
/* A new tensor in the innermost scope with uninitialised data, or NULL with an error. */
tg_tensor *tg__tensor_new(tg_loc loc, tg_dtype dtype, const tg_shape *shape);
/* A header aliasing another tensor's data with a new shape (same size). */
/* An abstract tracing's op output: a header with a dtype and a shape, and no data (NULL). */
tg_tensor *tg__tensor_abstract(tg_loc loc, tg_dtype dtype, const tg_shape *shape);
/* The high-water mark of the bytes tg__arena_alloc has handed out in this thread's open
 * scopes (tensor data and kernels' scratch): reset to the bytes live now (returned). */
size_t tg__arena_peak_reset(void);
size_t tg__arena_peak(void);
tg_tensor *tg__tensor_view(tg_loc loc, const tg_tensor *src, const tg_shape *shape);
/* A header in the innermost scope over memory it does not own (a data set's rows, fit's
 * batch buffer): ending the scope frees the header only. The memory must outlive it. */
tg_tensor *tg__tensor_wrap(tg_loc loc, tg_dtype dtype, const tg_shape *shape, void *data);
tg_tensor *tg__header_alloc(void);
void tg__header_release(tg_tensor *t);

/* ---- variables ------------------------------------------------------------------------- */
/* A snapshot of the variable's current value for a recorded read, in the innermost scope. */
tg_tensor *tg__variable_snapshot(tg_loc loc, tg_tensor *var);
/* Detaches the variable's live snapshots (each gets its own copy of the old value). */
void tg__variable_detach_snapshots(tg_var *v);
void tg__snapshot_unlink(tg_tensor *snap);
/* The variable's data, about to be updated in place (an optimizer step): live snapshots
 * get their own copy of the old value first, and the version is bumped, as by an assign. */
void *tg__variable_begin_write(tg_loc loc, tg_tensor *var);
/* Sets the constraint optimizers apply after updating the variable (layers do, from their
 * options); its axes are checked against the variable's rank and made non-negative.
 * 0, or -1 with an error naming the variable. */
int tg__variable_set_constraint(tg_loc loc, tg_tensor *var, tg_constraint c);
/* Replaces the variable's value by its constraint's projection of it (none: nothing). */
void tg__variable_apply_constraint(tg_loc loc, tg_tensor *var);

/* ---- element access for generic code ----------------------------------------------------- */
double tg__get(const tg_tensor *t, int64_t i);
void tg__set(tg_tensor *t, int64_t i, double v);
/* The index of the first NaN or Inf of a tensor (-1 when none, or not a float tensor). */
int64_t tg__first_nonfinite(const tg_tensor *t);

#endif
