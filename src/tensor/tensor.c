/* Tensors: dtypes, creation, inspection, copy-out and printing. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tensor_impl.h"

#undef tg_shape_of /* the public accessors are defined here */
#undef tg_dim
#undef tg_size

static const struct {
    const char *name;
    size_t size;
} dtypes[TG_DTYPE_COUNT] = {
    [TG_F32] = {"float32", 4}, [TG_F64] = {"float64", 8}, [TG_I32] = {"int32", 4},
    [TG_I64] = {"int64", 8},   [TG_BOOL] = {"bool", 1},   [TG_BF16] = {"bfloat16", 2},
};

const char *tg_dtype_name(tg_dtype d) { return (unsigned)d < TG_DTYPE_COUNT ? dtypes[d].name : "unknown"; }
size_t tg_dtype_size(tg_dtype d) { return (unsigned)d < TG_DTYPE_COUNT ? dtypes[d].size : 0; }
bool tg_dtype_is_float(tg_dtype d) { return d == TG_F32 || d == TG_F64; }

/* ---- shapes ------------------------------------------------------------------------------ */
bool tg__shape_eq(const tg_shape *a, const tg_shape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

int64_t tg__shape_size(const tg_shape *s)
{
    int64_t n = 1, span = 1; /* span: zeros as ones, which bounds every stride */
    for (int i = 0; i < s->rank; i++) {
        int64_t d = s->dims[i];
        if (d < 0 || tg__mul_overflow(span, d ? d : 1, &span) || span > TG_MAX_ELEMENTS)
            return -1;
        n *= d; /* n <= span */
    }
    return n;
}

const char *tg__shape_str(const tg_shape *s, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < s->rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)s->dims[i]);
    if (n < size)
        snprintf(buf + n, size - n, s->rank == 1 ? ",)" : ")");
    return buf;
}

/* ---- element access ---------------------------------------------------------------------- */
double tg__get(const tg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case TG_F32: return ((const float *)t->data)[i];
    case TG_F64: return ((const double *)t->data)[i];
    case TG_I32: return ((const int32_t *)t->data)[i];
    case TG_I64: return (double)((const int64_t *)t->data)[i];
    case TG_BOOL: return ((const uint8_t *)t->data)[i];
    case TG_BF16: return tg__f32_from_bf16(((const uint16_t *)t->data)[i]);
    default: return NAN;
    }
}

void tg__set(tg_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case TG_F32: ((float *)t->data)[i] = (float)v; break;
    case TG_F64: ((double *)t->data)[i] = v; break;
    case TG_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case TG_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case TG_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case TG_BF16: ((uint16_t *)t->data)[i] = tg__bf16_from_f32((float)v); break; /* via float32, as torch */
    default: break;
    }
}

/* The exponent bits are tested block by block, so the common all-finite case is one
 * vectorised pass. */
#define SCAN(U, EXP)                                                             \
    for (int64_t b = 0; b < t->size; b += 1024) {                                \
        int64_t e = t->size - b < 1024 ? t->size : b + 1024;                     \
        unsigned bad = 0;                                                        \
        for (int64_t i = b; i < e; i++) {                                        \
            U u;                                                                 \
            memcpy(&u, (const char *)t->data + i * (int64_t)sizeof u, sizeof u); \
            bad |= (u & EXP) == EXP;                                             \
        }                                                                        \
        for (int64_t i = b; bad && i < e; i++) {                                 \
            U u;                                                                 \
            memcpy(&u, (const char *)t->data + i * (int64_t)sizeof u, sizeof u); \
            if ((u & EXP) == EXP)                                                \
                return i;                                                        \
        }                                                                        \
    }
int64_t tg__first_nonfinite(const tg_tensor *t)
{
    if (t->dtype == TG_F32)
        SCAN(uint32_t, 0x7F800000u)
    else if (t->dtype == TG_F64)
        SCAN(uint64_t, 0x7FF0000000000000ull)
    else if (t->dtype == TG_BF16)
        SCAN(uint16_t, 0x7F80u)
    return -1;
}
#undef SCAN

static void link_to_copy(tg_loc loc, tg_tensor *t, const void *data, double first);

/* ---- creation ------------------------------------------------------------------------------ */
tg_tensor *tg_tensor_from_at(tg_loc loc, tg_dtype dtype, tg_shape shape, const void *data)
{
    tg_tensor *t = tg__tensor_new(loc, dtype, &shape);
    if (!t)
        return NULL;
    if (!data && t->size)
        return tg__fail(loc, "tg_tensor_from: `data` is NULL for a tensor of %lld elements", (long long)t->size);
    if (t->size)
        memcpy(t->data, data, (size_t)t->size * tg_dtype_size(dtype));
    t->flags |= TG_T_FROM_DATA;
    if (t->size)
        link_to_copy(loc, t, data, tg__get(t, 0));
    return t;
}

tg_tensor *tg_fill_at(tg_loc loc, tg_dtype dtype, tg_shape shape, double value)
{
    tg_tensor *t = tg__tensor_new(loc, dtype, &shape);
    if (!t)
        return NULL;
    t->flags |= TG_T_FROM_DATA;
    link_to_copy(loc, t, NULL, value);
    if (value == 0.0)
        memset(t->data, 0, (size_t)t->size * tg_dtype_size(dtype));
    else
        for (int64_t i = 0; i < t->size; i++)
            tg__set(t, i, value);
    return t;
}

tg_tensor *tg_scalar_at(tg_loc loc, tg_dtype dtype, double value)
{
    return tg_fill_at(loc, dtype, TG_SCALAR_SHAPE, value);
}

tg_tensor *tg_scalar_like_at(tg_loc loc, const tg_tensor *x, double value)
{
    if (!tg__check_input(loc, "tg_scalar_like", x, "x"))
        return NULL;
    return tg_fill_at(loc, x->dtype, TG_SCALAR_SHAPE, value);
}

tg_tensor *tg_zeros_like_at(tg_loc loc, const tg_tensor *x)
{
    if (!tg__check_input(loc, "tg_zeros_like", x, "x"))
        return NULL;
    return tg__trace_fill_like(loc, x, tg_fill_at(loc, x->dtype, tg__shape(x), 0.0), 0.0);
}

tg_tensor *tg_ones_like_at(tg_loc loc, const tg_tensor *x)
{
    if (!tg__check_input(loc, "tg_ones_like", x, "x"))
        return NULL;
    return tg__trace_fill_like(loc, x, tg_fill_at(loc, x->dtype, tg__shape(x), 1.0), 1.0);
}

tg_tensor *tg_arange_at(tg_loc loc, tg_dtype dtype, double start, double stop, double step)
{
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return tg__fail(loc,
                        "tg_arange: start, stop and step must be finite and step non-zero "
                        "(got %g, %g, %g)",
                        start, stop, step);
    double n = ceil((stop - start) / step);
    if (n < 0)
        n = 0;
    if (n > 1e12)
        return tg__fail(loc, "tg_arange: %g elements are too many", n);
    tg_tensor *t = tg__tensor_new(loc, dtype, &(tg_shape){.rank = 1, .dims = {(int64_t)n}});
    if (!t)
        return NULL;
    for (int64_t i = 0; i < t->size; i++)
        tg__set(t, i, start + (double)i * step);
    return t;
}

tg_tensor *tg_eye_at(tg_loc loc, tg_dtype dtype, int64_t n)
{
    if (n < 0)
        return tg__fail(loc, "tg_eye: n must not be negative (got %lld)", (long long)n);
    tg_tensor *t = tg_fill_at(loc, dtype, TG_SHAPE(n, n), 0.0);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        tg__set(t, i * n + i, 1.0);
    return t;
}

/* ---- events: values that leave tapegrad ------------------------------------------------------ */
uint64_t tg__event(tg_event e)
{
    tg_context *ctx = tg__ctx();
    e.stamp = ++ctx->clock;
    ctx->events[ctx->n_events++ % TG_EVENTS_MAX] = e;
    return e.stamp;
}

const tg_event *tg__event_at(uint64_t stamp)
{
    tg_context *ctx = tg__ctx();
    for (uint64_t k = 0; k < ctx->n_events && k < TG_EVENTS_MAX; k++) {
        const tg_event *e = &ctx->events[(ctx->n_events - 1 - k) % TG_EVENTS_MAX];
        if (e->stamp == stamp)
            return e;
        if (e->stamp < stamp)
            break;
    }
    return NULL;
}

/* A copy made by the user's code (the library's own reads pass no line). */
static void note_copy_out(tg_loc loc, const char *func, const tg_tensor *t, const void *dst, size_t bytes)
{
    if (loc.file && t->size)
        tg__event((tg_event){.kind = TG_EVENT_COPY_OUT,
                             .loc = loc,
                             .func = func,
                             .t = (tg_tensor *)t,
                             .gen = t->gen,
                             .dst = dst,
                             .bytes = bytes,
                             .first = tg__get(t, 0)});
}

/* A tensor built from C values that came out of tapegrad: from the same memory, or the
 * same value of a copy a few calls before (values 0 and +-1 are too common to tell). */
enum { LINK_LOOKBACK = 4 };

static void link_to_copy(tg_loc loc, tg_tensor *t, const void *data, double first)
{
    tg_context *ctx = tg__ctx();
    if (!loc.file || !ctx->n_events || ctx->gradient_depth || !t->size)
        return;
    for (uint64_t k = 0; k < ctx->n_events && k < LINK_LOOKBACK; k++) {
        const tg_event *e = &ctx->events[(ctx->n_events - 1 - k) % TG_EVENTS_MAX];
        if (e->kind == TG_EVENT_ASSIGN)
            continue;
        const char *d = e->dst, *p = data;
        bool same_memory = p && d && p >= d && p < d + e->bytes;
        bool same_size =
            e->t ? e->t->state == TG_HEADER_ALIVE && e->t->gen == e->gen && e->t->size == t->size : t->size == 1;
        bool same_value = same_size && first == e->first && first != 0 && fabs(first) != 1;
        if (same_memory || same_value) {
            t->built_from = e->stamp;
            return;
        }
    }
}

/* ---- inspection ------------------------------------------------------------------------------ */
static bool check(const tg_tensor *t, const char *func) { return tg__check_input((tg_loc){0}, func, t, "t"); }

tg_dtype tg_dtype_of(const tg_tensor *t) { return check(t, "tg_dtype_of") ? t->dtype : TG_DTYPE_COUNT; }
int tg_rank(const tg_tensor *t) { return check(t, "tg_rank") ? t->rank : -1; }
int64_t tg__lib_size(const tg_tensor *t) { return check(t, "tg_size") ? t->size : -1; }
bool tg_is_alive(const tg_tensor *t) { return t && t->state == TG_HEADER_ALIVE; }
tg_loc tg_tensor_loc(const tg_tensor *t) { return t ? t->loc : (tg_loc){0}; }

tg_shape tg__lib_shape_of(const tg_tensor *t)
{
    return check(t, "tg_shape_of") ? tg__shape(t) : (tg_shape){.rank = -1};
}

int64_t tg__lib_dim(const tg_tensor *t, int axis)
{
    if (!check(t, "tg_dim"))
        return -1;
    int a = axis < 0 ? axis + t->rank : axis;
    if (a < 0 || a >= t->rank) {
        tg__fail((tg_loc){0}, "tg_dim: axis %d is out of range for a tensor of rank %d", axis, t->rank);
        return -1;
    }
    return t->shape[a];
}

/* The user's calls: in a trace, a shape holding the batch size makes the graph keep it. */
tg_shape tg_shape_of(const tg_tensor *t)
{
    tg__trace_shape_read(t, "tg_shape_of", TG_SHAPE_READ_ALL);
    return tg__lib_shape_of(t);
}

int64_t tg_dim(const tg_tensor *t, int axis)
{
    int a = t && t->state == TG_HEADER_ALIVE ? (axis < 0 ? axis + t->rank : axis) : -1;
    if (a >= 0 && a < t->rank)
        tg__trace_shape_read(t, "tg_dim", a);
    return tg__lib_dim(t, axis);
}

int64_t tg_size(const tg_tensor *t)
{
    tg__trace_shape_read(t, "tg_size", TG_SHAPE_READ_SIZE);
    return tg__lib_size(t);
}

int tg_copy_out_at(tg_loc loc, const tg_tensor *t, void *dst, size_t bytes)
{
    if (!tg__check_input(loc, "tg_copy_out", t, "t") || !tg__trace_refuse_read(loc, "tg_copy_out"))
        return -1;
    size_t need = (size_t)t->size * tg_dtype_size(t->dtype);
    if (!dst || bytes < need)
        return tg__failf(loc, "tg_copy_out: the destination holds %zu bytes, the tensor needs %zu", bytes, need);
    memcpy(dst, t->data, need);
    note_copy_out(loc, "tg_copy_out", t, dst, need);
    return 0;
}

int tg_copy_out_f64_at(tg_loc loc, const tg_tensor *t, double *dst, int64_t count)
{
    if (!tg__check_input(loc, "tg_copy_out_f64", t, "t") || !tg__trace_refuse_read(loc, "tg_copy_out_f64"))
        return -1;
    if (!dst || count < t->size)
        return tg__failf(loc, "tg_copy_out_f64: the destination holds %lld values, the tensor has %lld",
                         (long long)count, (long long)t->size);
    for (int64_t i = 0; i < t->size; i++)
        dst[i] = tg__get(t, i);
    note_copy_out(loc, "tg_copy_out_f64", t, dst, (size_t)t->size * sizeof *dst);
    return 0;
}

double tg_item_at(tg_loc loc, const tg_tensor *t)
{
    if (!tg__check_input(loc, "tg_item", t, "t") || !tg__trace_refuse_read(loc, "tg_item"))
        return NAN;
    if (t->size != 1) {
        char s[TG_SHAPE_STR_MAX];
        tg_shape sh = tg__shape(t);
        tg__fail(loc, "tg_item: the tensor has shape %s, not one element", tg__shape_str(&sh, s, sizeof s));
        return NAN;
    }
    note_copy_out(loc, "tg_item", t, NULL, 0);
    return tg__get(t, 0);
}

/* ---- printing ---------------------------------------------------------------------------------- */
typedef struct {
    char *buf;
    size_t size, len; /* len counts what would have been written */
} sink;

static void put(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->size ? s->size - s->len : 0;
    int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len += (size_t)n;
}

/* One element as numpy prints it: "1." for an integral float, "0.5", "nan", "True". */
static void format_elem(const tg_tensor *t, int64_t i, char *out, size_t size)
{
    double v = tg__get(t, i);
    if (t->dtype == TG_BOOL)
        snprintf(out, size, "%s", v ? "True" : "False");
    else if (!tg_dtype_is_float(t->dtype) && t->dtype != TG_BF16)
        snprintf(out, size, "%lld", t->dtype == TG_I64 ? (long long)((const int64_t *)t->data)[i] : (long long)v);
    else if (isnan(v))
        snprintf(out, size, "nan");
    else if (isinf(v))
        snprintf(out, size, v > 0 ? "inf" : "-inf");
    else if (v == floor(v) && fabs(v) < 1e16)
        snprintf(out, size, "%.0f.", v);
    else
        snprintf(out, size, "%.*g", t->dtype == TG_BF16 ? 4 : t->dtype == TG_F32 ? 8 : 16, v);
}

#define PRINT_EDGE      3 /* like numpy: long axes show their first and last 3 items */
#define PRINT_THRESHOLD 1000

static void format_rec(sink *s, const tg_tensor *t, int axis, int64_t offset, int width, bool summarize)
{
    if (axis == t->rank) {
        char e[64];
        format_elem(t, offset, e, sizeof e);
        put(s, "%*s", width, e);
        return;
    }
    int64_t n = t->shape[axis], stride = 1;
    for (int i = axis + 1; i < t->rank; i++)
        stride *= t->shape[i];
    put(s, "[");
    for (int64_t i = 0; i < n; i++) {
        if (summarize && n > 2 * PRINT_EDGE && i == PRINT_EDGE) {
            put(s, axis == t->rank - 1 ? " ..." : "\n%*s...", axis + 1, "");
            i = n - PRINT_EDGE - 1;
            continue;
        }
        if (i) {
            if (axis == t->rank - 1)
                put(s, " ");
            else
                put(s, "%.*s%*s", t->rank - axis - 1, "\n\n\n\n\n\n\n\n", axis + 1, "");
        }
        format_rec(s, t, axis + 1, offset + i * stride, width, summarize);
    }
    put(s, "]");
}

int tg_format(const tg_tensor *t, char *buf, size_t size)
{
    if (!check(t, "tg_format"))
        return -1;
    sink s = {buf, size, 0};
    if (size)
        buf[0] = 0;
    bool summarize = t->size > PRINT_THRESHOLD;
    int width = 0;
    for (int64_t i = 0; i < t->size; i++) {
        char e[64];
        format_elem(t, i, e, sizeof e);
        int w = (int)strlen(e);
        width = w > width ? w : width;
    }
    put(&s, t->rank >= 2 ? "tg.Tensor(\n" : "tg.Tensor("); /* as TF prints it */
    format_rec(&s, t, 0, 0, t->rank ? width : 0, summarize);
    char sh[TG_SHAPE_STR_MAX];
    tg_shape shape = tg__shape(t);
    put(&s, ", shape=%s, dtype=%s)", tg__shape_str(&shape, sh, sizeof sh), tg_dtype_name(t->dtype));
    return (int)s.len;
}

static void print_now(FILE *out, const tg_tensor *t);

/* tg_print in a traced function is recorded (TF's tf.print): it prints at every call. */
static int print_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    (void)loc, (void)n;
    print_now(*(FILE *const *)arg, in[0]);
    return 0;
}

void tg_fprint(FILE *out, const tg_tensor *t)
{
    int r =
        tg__trace_host((tg_loc){0}, print_replayed, &out, sizeof out, (tg_tensor *const[]){(tg_tensor *)t}, 1, NULL, 0);
    tg__trace_host_shape_free(); /* prints whatever shape it gets */
    if (r == 0)
        print_now(out, t);
}

static void print_now(FILE *out, const tg_tensor *t)
{
    char small[512];
    int n = tg_format(t, small, sizeof small);
    if (n < 0) {
        fprintf(out, "<error: %s>\n", tg_last_error());
        return;
    }
    if ((size_t)n < sizeof small) {
        fprintf(out, "%s\n", small);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        fprintf(out, "%s...\n", small);
        return;
    }
    tg_format(t, big, (size_t)n + 1);
    fprintf(out, "%s\n", big);
    free(big);
}
