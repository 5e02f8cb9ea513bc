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

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MAX_RANK 8

typedef enum tg_dtype {
    TG_F32 = 0,
    TG_F64,
    TG_I32,
    TG_I64,
    TG_BOOL,
    TG_DTYPE_COUNT
} tg_dtype;

const char *tg_dtype_name(tg_dtype dtype);       /* "float32", "int64", ... */
size_t tg_dtype_size(tg_dtype dtype);
bool tg_dtype_is_float(tg_dtype dtype);

/* A shape in numpy row-major order: dims[0] is the outermost axis. */
typedef struct tg_shape {
    int rank;
    int64_t dims[TG_MAX_RANK];
} tg_shape;

#define TG__NARGS(...) TG__NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define TG__NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
/* TG_SHAPE(2, 3) is the shape (2, 3); TG_SCALAR_SHAPE has rank 0. */
#define TG_SHAPE(...) ((tg_shape){.rank = TG__NARGS(__VA_ARGS__), .dims = {__VA_ARGS__}})
#define TG_SCALAR_SHAPE ((tg_shape){.rank = 0})

/* A list of axes; negative axes count from the end. An empty list means every axis. */
typedef struct tg_axes {
    int n;
    int axis[TG_MAX_RANK];
} tg_axes;
#define TG_AXES(...) ((tg_axes){.n = TG__NARGS(__VA_ARGS__), .axis = {__VA_ARGS__}})

/* Where in the user's code a call was made. Every public function has a macro of the
 * same name that passes TG_LOC, so tensors, tape entries and errors can name the line. */
typedef struct tg_loc {
    const char *file;
    int line;
} tg_loc;
#define TG_LOC ((tg_loc){__FILE__, __LINE__})

/* Named arguments: TG__OPTS(type, defaults..., user fields...) builds an options struct
 * whose defaults the user's designated initialisers override. */
#if defined(__GNUC__) || defined(__clang__)
#define TG__OPTS(type, ...)                                                   \
    (__extension__({                                                          \
        _Pragma("GCC diagnostic push")                                        \
        _Pragma("GCC diagnostic ignored \"-Woverride-init\"")                 \
        type tg__o = {__VA_ARGS__};                                           \
        _Pragma("GCC diagnostic pop")                                         \
        tg__o;                                                                \
    }))
#else
#define TG__OPTS(type, ...) ((type){__VA_ARGS__})
#endif

/* Errors. */
const char *tg_last_error(void);   /* NULL when the last failing call has been cleared */
void tg_clear_error(void);
bool tg_has_error(void);

/* Warnings go to a handler; the default prints "tapegrad: warning: ..." to stderr. */
typedef void (*tg_warning_fn)(const char *message, void *user);
void tg_set_warning_handler(tg_warning_fn fn, void *user);
const char *tg_last_warning(void); /* the latest warning on this thread, or NULL */
void tg_clear_warning(void);

#ifdef __cplusplus
}
#endif
#endif
