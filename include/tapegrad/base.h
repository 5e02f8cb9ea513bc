/* tapegrad/base.h: dtypes, shapes, caller locations, errors and warnings.
 *
 * Every public call that can fail returns NULL (or a negative status) and leaves a
 * message in a per-thread slot, tg_last_error(). A call given a NULL tensor returns
 * NULL and keeps the message of the call that failed first, so a whole expression
 * can be checked once at its end. */
#ifndef TAPEGRAD_BASE_H
#define TAPEGRAD_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each public header's declarations sit between TG_BEGIN_DECLS and TG_END_DECLS: C
 * linkage for C++, and exported from the shared library, which hides every other
 * symbol (it is built with -fvisibility=hidden). */
#ifdef __cplusplus
#define TG__LINKAGE_BEGIN extern "C" {
#define TG__LINKAGE_END   }
#else
#define TG__LINKAGE_BEGIN
#define TG__LINKAGE_END
#endif
#if defined(__GNUC__) || defined(__clang__)
#define TG__EXPORT_BEGIN _Pragma("GCC visibility push(default)")
#define TG__EXPORT_END   _Pragma("GCC visibility pop")
#else
#define TG__EXPORT_BEGIN
#define TG__EXPORT_END
#endif
#define TG_BEGIN_DECLS TG__LINKAGE_BEGIN TG__EXPORT_BEGIN
#define TG_END_DECLS   TG__EXPORT_END TG__LINKAGE_END

TG_BEGIN_DECLS

#define TG_MAX_RANK 8

/* TG_BF16 (bfloat16: float32's sign, exponent and top 7 mantissa bits): tg_cast makes it
 * (rounding to nearest even, NaN kept, overflow to Inf) and reads it back exactly; the ops
 * of mixed precision take it (tg_matmul sums its products in float32 and rounds once; the
 * others compute in float32 and round the result), the rest take float32 and float64. */
typedef enum tg_dtype { TG_F32 = 0, TG_F64, TG_I32, TG_I64, TG_BOOL, TG_BF16, TG_DTYPE_COUNT } tg_dtype;

const char *tg_dtype_name(tg_dtype dtype); /* "float32", "int64", "bfloat16", ... */
size_t tg_dtype_size(tg_dtype dtype);
bool tg_dtype_is_float(tg_dtype dtype);

/* A shape in numpy row-major order: dims[0] is the outermost axis. */
typedef struct tg_shape {
    int rank;
    int64_t dims[TG_MAX_RANK];
} tg_shape;

/* TG_SHAPE(2, 3) is the shape (2, 3); TG_SHAPE() and TG_SCALAR_SHAPE have rank 0.
 * More than TG_MAX_RANK dims keep their count, so the op that receives them can say so. */
#define TG_SHAPE(...)                                 \
    tg__shape_from((const int64_t[]){0, __VA_ARGS__}, \
                   (int)(sizeof((const int64_t[]){0, __VA_ARGS__}) / sizeof(int64_t)) - 1)
#define TG_SCALAR_SHAPE ((tg_shape){.rank = 0})
static inline tg_shape tg__shape_from(const int64_t *dims, int rank)
{
    tg_shape s; /* no designated initialiser: the header is C++ too */
    s.rank = rank;
    for (int i = 0; i < TG_MAX_RANK; i++)
        s.dims[i] = i < rank ? dims[i + 1] : 0;
    return s;
}

/* A list of axes; negative axes count from the end. TG_AXES() (empty) means every axis
 * where an op says so. */
typedef struct tg_axes {
    int n;
    int axis[TG_MAX_RANK];
} tg_axes;
#define TG_AXES(...) \
    tg__axes_from((const int[]){0, __VA_ARGS__}, (int)(sizeof((const int[]){0, __VA_ARGS__}) / sizeof(int)) - 1)
static inline tg_axes tg__axes_from(const int *axis, int n)
{
    tg_axes a;
    a.n = n;
    for (int i = 0; i < TG_MAX_RANK; i++)
        a.axis[i] = i < n ? axis[i + 1] : 0;
    return a;
}

/* Where in the user's code a call was made. Every public function has a macro of the
 * same name that passes TG_LOC, so tensors, tape entries and errors can name the line. */
typedef struct tg_loc {
    const char *file;
    int line;
} tg_loc;
#ifdef __cplusplus
#define TG_LOC (tg_loc{__FILE__, __LINE__})
#else
#define TG_LOC ((tg_loc){__FILE__, __LINE__})
#endif

/* Named arguments: TG__OPTS(type, defaults..., user fields...) builds an options struct
 * whose defaults the user's designated initialisers override. It is a statement
 * expression, so compound literals written among the fields end with it: options that
 * take arrays are built with a plain compound literal instead (see tg_gradients). */
#if defined(__GNUC__) || defined(__clang__)
/* One _Pragma per line, as the formatter would not keep them: */
/* clang-format off */
#define TG__OPTS(type, ...)                                                   \
    (__extension__({                                                          \
        _Pragma("GCC diagnostic push")                                        \
        _Pragma("GCC diagnostic ignored \"-Woverride-init\"")                 \
        type tg__o = {__VA_ARGS__};                                           \
        _Pragma("GCC diagnostic pop")                                         \
        tg__o;                                                                \
    }))
/* TG__CALL(type, call, fields...) builds the options as `tg__o` and makes `call` in the
 * same block, so arrays written among the fields live until the call returns. */
#define TG__CALL(type, call, ...)                                             \
    (__extension__({                                                          \
        _Pragma("GCC diagnostic push")                                        \
        _Pragma("GCC diagnostic ignored \"-Woverride-init\"")                 \
        type tg__o = {__VA_ARGS__};                                           \
        _Pragma("GCC diagnostic pop")                                         \
        call;                                                                 \
    }))
/* clang-format on */
#else
#define TG__OPTS(type, ...) ((type){__VA_ARGS__})
#endif

/* Threads for matrix products (OpenBLAS's) and for the library's other loops (its own
 * pool, whose workers sleep while idle); n >= 1, by default one per CPU. Results do not
 * depend on it, GEMM's rounding aside. Returns 0, or -1 when n < 1. */
int tg_set_num_threads(int n);

/* Denormal floats, as TensorFlow treats them: the library's loops flush them to zero and
 * read them as zero (x86's FTZ and DAZ), on its threads and, for the length of a loop, on
 * the calling thread, which gets its own mode back afterwards. Without it, values that
 * decay towards zero (Adam's moments where a gradient stays zero) slow every loop over
 * them tenfold. On by default; off with tg_set_flush_denormals(false) or
 * TAPEGRAD_DENORMALS=keep in the environment. Loops too short for the thread pool run in
 * the caller's own mode. */
void tg_set_flush_denormals(bool on);
bool tg_flush_denormals(void);

/* Errors. */
const char *tg_last_error(void); /* NULL when the last failing call has been cleared */
void tg_clear_error(void);
bool tg_has_error(void);

/* Warnings go to a handler; the default prints "tapegrad: warning: ..." to stderr. */
typedef void (*tg_warning_fn)(const char *message, void *user);
void tg_set_warning_handler(tg_warning_fn fn, void *user);
const char *tg_last_warning(void); /* the latest warning on this thread, or NULL */
void tg_clear_warning(void);

TG_END_DECLS
#endif
