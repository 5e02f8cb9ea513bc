/* Internal view of tensors, scopes, variables and the per-thread context. */
#ifndef TG_TENSOR_IMPL_H
#define TG_TENSOR_IMPL_H

#include <stdarg.h>
#include <string.h>

#include "tapegrad/tensor.h"

typedef struct tg_var tg_var;
typedef struct tg_tape tg_tape;

enum { TG_HEADER_ALIVE = 0x7A11FE, TG_HEADER_DEAD = 0xDEAD01 };

enum tg_tensor_flags {
    TG_T_VARIABLE = 1 << 0,     /* the header of a variable: data owned by the tg_var */
    TG_T_SNAPSHOT = 1 << 1,     /* a recorded read of a variable: data aliases it until assign */
    TG_T_UNRECORDED = 1 << 2,   /* made by an op while no tape was recording */
    TG_T_FROM_DATA = 1 << 3,    /* made from C values (tg_tensor_from, tg_scalar, tg_fill...) */
};

struct tg_tensor {
    uint32_t state;             /* TG_HEADER_ALIVE or TG_HEADER_DEAD */
    uint32_t gen;               /* bumped each time the header is freed */
    tg_dtype dtype;
    uint32_t flags;
    int rank;
    int64_t shape[TG_MAX_RANK];
    int64_t size;
    void *data;
    tg_scope *scope;            /* NULL for variables */
    tg_var *var;                /* variables and their snapshots */
    tg_loc loc;                 /* the user's call that made it */
    uint32_t op;                /* op that made it (tg_op_kind), or TG_OP_NONE */
    tg_tensor *next;            /* next header of the same scope / free list */
    tg_tensor *snap_prev, *snap_next;   /* the variable's live snapshots */
    /* Provenance, for the diagnosis of missing gradients: */
    uint64_t stamp;             /* the thread's clock when it was made */
    tg_tensor *src[2];          /* inputs of an op that ran, unrecorded, while a tape recorded */
    uint32_t src_gen[2];
};

struct tg_var {
    char *name;
    bool trainable;
    uint64_t version;
    tg_loc last_assign;
    tg_loc last_read;           /* the last op that read it, and when */
    uint64_t last_read_stamp;
    tg_tensor *snapshots;       /* live snapshots still aliasing `data` */
    tg_tensor *handle;          /* the public tensor header */
};

/* ---- per-thread context ------------------------------------------------------------ */
#define TG_MAX_TAPES 16
typedef struct tg_context {
    tg_scope *scope;                    /* innermost open scope */
    tg_tape *active[TG_MAX_TAPES];      /* tapes in their `with` block, innermost last */
    int n_active;
    int n_recording;                    /* active tapes not inside stop_recording */
    uint64_t clock;                     /* counts tensors made and tape events */
    uint64_t copied_out;                /* when a recorded tensor was last copied out */
    unsigned check;                     /* TG_CHECK_* flags (autodiff.h) */
    bool check_from_env;                /* TAPEGRAD_CHECK has been read */
    /* For TG_CHECK_NUMERICS: the layer whose call is running (nn sets it, for reports),
     * and whether a backward rule is running (its gradients are checked as a whole). */
    const char *layer;
    bool in_backward;
    bool profiling;                     /* tg_profile_start (ops.h) */
    int gradient_depth;                 /* gradient computations running (nested ones too) */
} tg_context;
tg_context *tg__ctx(void);

/* ---- errors -------------------------------------------------------------------------- */
/* Sets the thread's error message (printf format, prefixed with the caller's file:line)
 * and returns NULL, so failing calls can `return tg__fail(...)`. */
void *tg__fail(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tg__failf(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* returns -1 */
bool tg__failb(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* returns false */
void tg__warn(tg_loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Around a public call that runs tapegrad's own code (tg_fit): errors that code raises
 * name `loc`, the user's line, instead of a line of tapegrad's sources. Returns what
 * tg__entry_end restores. */
tg_loc tg__entry_begin(tg_loc loc);
void tg__entry_end(tg_loc was);
/* Errors set on this thread so far: a caller can tell whether anything it ran failed,
 * even a callee that went on with a NULL. */
uint64_t tg__error_count(void);
/* For a NULL argument: keeps an earlier error, or says which argument was NULL. */
void *tg__null_arg(tg_loc loc, const char *func, const char *arg);
/* Checks an input: non-NULL and alive. Returns false with an error set. */
bool tg__check_input(tg_loc loc, const char *func, const tg_tensor *t, const char *arg);

/* Element sizes, inlined for the hot path (tg_dtype_size checks its argument). */
static inline size_t tg__dsize(tg_dtype d) { return d == TG_F64 || d == TG_I64 ? 8 : d == TG_BOOL ? 1 : 4; }

/* ---- shapes -------------------------------------------------------------------------- */
static inline tg_shape tg__shape(const tg_tensor *t)
{
    tg_shape s;
    s.rank = t->rank;
    memcpy(s.dims, t->shape, sizeof s.dims);   /* fixed size: one vector copy, no stall */
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
int64_t tg__shape_size(const tg_shape *s);
/* "(2, 3)" into buf, returns buf. */
const char *tg__shape_str(const tg_shape *s, char *buf, size_t size);
#define TG_SHAPE_STR_MAX 200

/* ---- scopes and allocation -------------------------------------------------------------- */
void *tg__arena_alloc(tg_scope *scope, size_t bytes);   /* 64-byte aligned */
/* A new tensor in the innermost scope with uninitialised data, or NULL with an error. */
tg_tensor *tg__tensor_new(tg_loc loc, tg_dtype dtype, const tg_shape *shape);
/* A header aliasing another tensor's data with a new shape (same size). */
tg_tensor *tg__tensor_view(tg_loc loc, const tg_tensor *src, const tg_shape *shape);
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

/* ---- element access for generic code ----------------------------------------------------- */
double tg__get(const tg_tensor *t, int64_t i);
void tg__set(tg_tensor *t, int64_t i, double v);
/* The index of the first NaN or Inf of a tensor (-1 when none, or not a float tensor). */
int64_t tg__first_nonfinite(const tg_tensor *t);

#endif
