/* The per-thread error and warning slots. */
#include <stdio.h>
#include <stdlib.h>

#include "tensor_impl.h"

#define TG_MSG_MAX 2048

static _Thread_local char error_buf[TG_MSG_MAX];
static _Thread_local bool error_set;
static _Thread_local uint64_t error_count;
static _Thread_local char warning_buf[TG_MSG_MAX];
static _Thread_local bool warning_set;
static _Thread_local tg_warning_fn warning_fn;
static _Thread_local void *warning_user;

const char *tg_last_error(void) { return error_set ? error_buf : NULL; }
uint64_t tg__error_count(void) { return error_count; }
bool tg_has_error(void) { return error_set; }
void tg_clear_error(void)
{
    error_set = false;
    error_buf[0] = 0;
}
const char *tg_last_warning(void) { return warning_set ? warning_buf : NULL; }
void tg_clear_warning(void)
{
    warning_set = false;
    warning_buf[0] = 0;
}

void tg_set_warning_handler(tg_warning_fn fn, void *user)
{
    warning_fn = fn;
    warning_user = user;
}

/* ---- the user's line ---------------------------------------------------------------------- */
/* Whether a location is in tapegrad's own sources (the library's folders under src/, the
 * command's too): found from where this file was compiled. */
bool tg__in_library(const char *file)
{
    static const char self[] = __FILE__, tail[] = "src/tensor/error.c";
    static const char *const folders[] = {"tensor/", "ops/", "autodiff/", "nn/", "optim/",
                                          "train/",  "io/",  "kernels/",  "cli/"};
    size_t root = sizeof self - sizeof tail;
    if (!file || sizeof self < sizeof tail || strncmp(file, self, root) != 0 || strncmp(file + root, "src/", 4) != 0)
        return false;
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++)
        if (strncmp(file + root + 4, folders[i], strlen(folders[i])) == 0)
            return true;
    return false;
}

tg_loc tg__user_loc(tg_loc loc)
{
    if (!tg__in_library(loc.file))
        return loc;
    tg_loc user = tg__ctx()->user_call;
    return user.file ? user : (tg_loc){0};
}

tg_loc tg__enter_user_call(tg_loc loc)
{
    tg_context *ctx = tg__ctx();
    tg_loc outer = ctx->user_call;
    if (!outer.file && !tg__in_library(loc.file)) /* the outermost call is the user's */
        ctx->user_call = loc;
    return outer;
}

void tg__leave_user_call(tg_loc outer) { tg__ctx()->user_call = outer; }

static void vformat(char *buf, tg_loc loc, const char *fmt, va_list ap)
{
    loc = tg__user_loc(loc);
    int n = 0;
    if (loc.file)
        n = snprintf(buf, TG_MSG_MAX, "%s:%d: ", loc.file, loc.line);
    if (n < 0 || n >= TG_MSG_MAX)
        n = 0;
    vsnprintf(buf + n, TG_MSG_MAX - (size_t)n, fmt, ap);
}

/* The three failing forms differ only in what they return: NULL, -1 or false. */
#define SET_ERROR(loc, fmt)               \
    do {                                  \
        va_list ap;                       \
        va_start(ap, fmt);                \
        vformat(error_buf, loc, fmt, ap); \
        va_end(ap);                       \
        error_set = true;                 \
        error_count++;                    \
    } while (0)

void *tg__fail(tg_loc loc, const char *fmt, ...)
{
    SET_ERROR(loc, fmt);
    return NULL;
}

int tg__failf(tg_loc loc, const char *fmt, ...)
{
    SET_ERROR(loc, fmt);
    return -1;
}

bool tg__failb(tg_loc loc, const char *fmt, ...)
{
    SET_ERROR(loc, fmt);
    return false;
}

void tg__warn(tg_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(warning_buf, loc, fmt, ap);
    va_end(ap);
    warning_set = true;
    if (warning_fn)
        warning_fn(warning_buf, warning_user);
    else
        fprintf(stderr, "tapegrad: warning: %s\n", warning_buf);
}

void *tg__null_arg(tg_loc loc, const char *func, const char *arg)
{
    if (!error_set)
        tg__fail(loc, "%s: `%s` is NULL", func, arg);
    return NULL;
}

bool tg__check_input(tg_loc loc, const char *func, const tg_tensor *t, const char *arg)
{
    if (!t) {
        tg__null_arg(loc, func, arg);
        return false;
    }
    if (t->state != TG_HEADER_ALIVE) {
        if (t->state == TG_HEADER_DEAD)
            tg__fail(loc,
                     "%s: `%s` was used after its scope ended (the tensor was made at %s:%d); "
                     "keep it in a scope that is still open, or copy it out before the scope ends",
                     func, arg, t->loc.file ? t->loc.file : "?", t->loc.line);
        else
            tg__fail(loc, "%s: `%s` is not a tapegrad tensor (or was freed)", func, arg);
        return false;
    }
    return true;
}
