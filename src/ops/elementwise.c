/* Element-wise ops: broadcasting arithmetic, comparisons and logic, where, the unary
 * maths functions, clip and cast; the trigonometric and hyperbolic functions, atan2,
 * TF's division family (floormod, floordiv, truncatediv, truncatemod), the NaN-safe
 * div_no_nan and mul_no_nan, and the predicates is_nan, is_inf, is_finite.
 *
 * Every kernel is an inner loop over one run of contiguous output elements
 * (ew_kernel); ew_run walks the broadcast output and hands each run to it. Float
 * kernels are written once for float and double through <tgmath.h>. Integer
 * arithmetic wraps (it is done in the unsigned type) instead of being undefined on
 * overflow. */
#include <tgmath.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/parallel.h"

#define MAX_IN 3
#define UNUSED __attribute__((unused))

/* ---- the broadcast iterator --------------------------------------------------------------- */
/* out[i] = f(in[0][i * st[0]], in[1][i * st[1]], ...) for i < n; out is contiguous. */
typedef void (*ew_kernel)(void *out, const void *const *in, const int64_t *st, int64_t n, const tg_call *c);

/* Strides (in elements) of each input against the output's axes: 0 where the input is
 * broadcast. Axes of size 1 are dropped and neighbouring axes that are contiguous for
 * every operand are merged, so equal shapes and scalar operands become one run. Returns
 * the number of merged axes, innermost first in dims/st. */
static int ew_layout(const tg_call *c, const tg_tensor *out, int64_t *dims, int64_t st[][TG_MAX_RANK])
{
    int r = out->rank, m = 0;
    int64_t full[MAX_IN][TG_MAX_RANK];
    for (int j = 0; j < c->n; j++) {
        const tg_tensor *x = c->in[j];
        int64_t s = 1;
        for (int i = r - 1; i >= 0; i--) {
            int k = x->rank - r + i;
            bool bcast = k < 0 || x->shape[k] == 1;
            full[j][i] = bcast ? 0 : s;
            if (k >= 0)
                s *= x->shape[k];
        }
    }
    for (int i = r - 1; i >= 0; i--) {
        if (out->shape[i] == 1)
            continue;
        bool merge = m > 0;
        for (int j = 0; merge && j < c->n; j++)
            merge = full[j][i] == st[j][m - 1] * dims[m - 1];
        if (merge) {
            dims[m - 1] *= out->shape[i];
            continue;
        }
        dims[m] = out->shape[i];
        for (int j = 0; j < c->n; j++)
            st[j][m] = full[j][i];
        m++;
    }
    return m;
}

/* One call's walk: the merged layout and the kernel. */
typedef struct ew_walk {
    const tg_call *c;
    tg_tensor *out;
    ew_kernel k;
    int m;
    int64_t dims[TG_MAX_RANK], st[MAX_IN][TG_MAX_RANK], inner, inner_st[MAX_IN];
    size_t esz[MAX_IN], osz;
} ew_walk;

/* Rows [r0, r1) of the walk (a row: one run of `inner` output elements). */
static void ew_rows(void *p, int64_t r0, int64_t r1)
{
    const ew_walk *w = p;
    const tg_call *c = w->c;
    int64_t idx[TG_MAX_RANK] = {0}, off[MAX_IN] = {0};
    for (int64_t d = 1, r = r0; d < w->m; d++) { /* the odometer at row r0 */
        idx[d] = r % w->dims[d];
        r /= w->dims[d];
        for (int j = 0; j < c->n; j++)
            off[j] += idx[d] * w->st[j][d];
    }
    for (int64_t row = r0; row < r1; row++) {
        const void *ptr[MAX_IN];
        for (int j = 0; j < c->n; j++)
            ptr[j] = (const char *)c->in[j]->data + (size_t)off[j] * w->esz[j];
        w->k((char *)w->out->data + (size_t)(row * w->inner) * w->osz, ptr, w->inner_st, w->inner, c);
        for (int d = 1; d < w->m; d++) { /* odometer over the outer axes */
            for (int j = 0; j < c->n; j++)
                off[j] += w->st[j][d];
            if (++idx[d] < w->dims[d])
                break;
            for (int j = 0; j < c->n; j++)
                off[j] -= w->st[j][d] * w->dims[d];
            idx[d] = 0;
        }
    }
}

/* Elements [b, e) of a walk that is one run. */
static void ew_span(void *p, int64_t b, int64_t e)
{
    const ew_walk *w = p;
    const void *ptr[MAX_IN];
    for (int j = 0; j < w->c->n; j++)
        ptr[j] = (const char *)w->c->in[j]->data + (size_t)(b * w->inner_st[j]) * w->esz[j];
    w->k((char *)w->out->data + (size_t)b * w->osz, ptr, w->inner_st, e - b, w->c);
}

/* Each output element is computed by one thread: any split gives the same values. */
static bool ew_run(const tg_call *c, tg_tensor *out, ew_kernel k)
{
    if (out->size == 0)
        return true;
    ew_walk w = {.c = c, .out = out, .k = k, .osz = tg__dsize(out->dtype)};
    w.m = ew_layout(c, out, w.dims, w.st);
    w.inner = w.m ? w.dims[0] : 1;
    for (int j = 0; j < c->n; j++) {
        w.esz[j] = tg__dsize(c->in[j]->dtype);
        w.inner_st[j] = w.m ? w.st[j][0] : 0;
    }
    int64_t rows = out->size / w.inner;
    if (rows == 1)
        tg__parallel_for(out->size, TG_GRAIN, ew_span, &w);
    else
        tg__parallel_for(rows, tg__rows_grain(w.inner, TG_GRAIN), ew_rows, &w);
    return true;
}

/* ---- loop bodies: T is the input type, U its unsigned twin (for wrapping int maths) ---- */
/* Separate loops for the common stride patterns (equal shapes, one scalar-like operand)
 * so that the compiler can vectorise them. */
#define BIN_LOOP(TOUT, TIN, TUNS, EXPR)             \
    do {                                            \
        typedef TIN T;                              \
        typedef TUNS U UNUSED;                      \
        TOUT *o_ = out;                             \
        const T *x_ = in[0], *y_ = in[1];           \
        int64_t sx_ = st[0], sy_ = st[1];           \
        if (sx_ == 1 && sy_ == 1)                   \
            for (int64_t i = 0; i < n; i++) {       \
                T a = x_[i], b = y_[i];             \
                o_[i] = (TOUT)(EXPR);               \
            }                                       \
        else if (sx_ == 1 && sy_ == 0)              \
            for (int64_t i = 0; i < n; i++) {       \
                T a = x_[i], b = y_[0];             \
                o_[i] = (TOUT)(EXPR);               \
            }                                       \
        else if (sx_ == 0 && sy_ == 1)              \
            for (int64_t i = 0; i < n; i++) {       \
                T a = x_[0], b = y_[i];             \
                o_[i] = (TOUT)(EXPR);               \
            }                                       \
        else                                        \
            for (int64_t i = 0; i < n; i++) {       \
                T a = x_[i * sx_], b = y_[i * sy_]; \
                o_[i] = (TOUT)(EXPR);               \
            }                                       \
    } while (0)

/* Unary inputs have the output's shape, so their runs are contiguous. */
#define UN_LOOP(TOUT, TIN, TUNS, EXPR)    \
    do {                                  \
        typedef TIN T;                    \
        typedef TUNS U UNUSED;            \
        TOUT *o_ = out;                   \
        const T *x_ = in[0];              \
        (void)st, (void)c;                \
        for (int64_t i = 0; i < n; i++) { \
            T a = x_[i];                  \
            o_[i] = (TOUT)(EXPR);         \
        }                                 \
    } while (0)

#define KERNEL_HEAD(name) \
    TG_VECTOR_CLONES static void name(void *out, const void *const *in, const int64_t *st, int64_t n, const tg_call *c)

/* Same-typed result; FEXPR for float32/float64, IEXPR for int32/int64. Float-only
 * kernels: their shape rules reject every other dtype before the kernel runs. */
#define DEF_KERNEL(LOOP, name, FEXPR, IEXPR)                         \
    KERNEL_HEAD(name)                                                \
    {                                                                \
        switch (c->in[0]->dtype) {                                   \
        case TG_F32: LOOP(float, float, float, FEXPR); break;        \
        case TG_F64: LOOP(double, double, double, FEXPR); break;     \
        case TG_I32: LOOP(int32_t, int32_t, uint32_t, IEXPR); break; \
        case TG_I64: LOOP(int64_t, int64_t, uint64_t, IEXPR); break; \
        default: break;                                              \
        }                                                            \
    }

#define DEF_FLOAT_KERNEL(LOOP, name, FEXPR)      \
    KERNEL_HEAD(name)                            \
    {                                            \
        if (c->in[0]->dtype == TG_F32)           \
            LOOP(float, float, float, FEXPR);    \
        else                                     \
            LOOP(double, double, double, FEXPR); \
    }

/* Bool result from any input dtype. */
#define DEF_COMPARE(name, EXPR)                                         \
    KERNEL_HEAD(name)                                                   \
    {                                                                   \
        switch (c->in[0]->dtype) {                                      \
        case TG_F32: BIN_LOOP(uint8_t, float, float, EXPR); break;      \
        case TG_F64: BIN_LOOP(uint8_t, double, double, EXPR); break;    \
        case TG_I32: BIN_LOOP(uint8_t, int32_t, uint32_t, EXPR); break; \
        case TG_I64: BIN_LOOP(uint8_t, int64_t, uint64_t, EXPR); break; \
        case TG_BOOL: BIN_LOOP(uint8_t, uint8_t, uint8_t, EXPR); break; \
        default: break;                                                 \
        }                                                               \
    }

/* ---- shape rules ---------------------------------------------------------------------------- */
enum ew_kinds {               /* which dtypes an op accepts */
                EW_FLOAT = 1, /* float32, float64 */
                EW_INT = 2,   /* int32, int64 */
                EW_BOOL = 4,
                EW_NUM = EW_FLOAT | EW_INT,
                EW_ANY = EW_NUM | EW_BOOL,
};

static bool dtype_allowed(const tg_call *c, const tg_tensor *x, const char *arg, int kinds)
{
    tg_dtype d = x->dtype;
    if (((kinds & EW_FLOAT) && tg_dtype_is_float(d)) || ((kinds & EW_INT) && (d == TG_I32 || d == TG_I64)) ||
        ((kinds & EW_BOOL) && d == TG_BOOL))
        return true;
    if (kinds == EW_FLOAT)
        return tg__require_float(c, x, arg);
    tg__fail(c->loc, "%s: `%s` must be %s, not %s", tg__op_name(c->op), arg,
             kinds == EW_BOOL  ? "bool"
             : kinds == EW_INT ? "int32 or int64"
             : kinds == EW_NUM ? "float32, float64, int32 or int64"
                               : "a numeric dtype",
             tg_dtype_name(d));
    return false;
}

static bool binary_shape_kinds(const tg_call *c, tg_shape *shape, int kinds)
{
    const tg_tensor *a = c->in[0], *b = c->in[1];
    if (!tg__same_dtype(c, a, b) || !dtype_allowed(c, a, "a", kinds))
        return false;
    if (tg__same_shape(a, b)) {
        *shape = tg__shape(a); /* no broadcasting: the common case */
        return true;
    }
    tg_shape sa = tg__shape(a), sb = tg__shape(b);
    return tg__broadcast_shapes(c, &sa, &sb, shape);
}

bool tg__arith_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    *dtype = c->in[0]->dtype;
    return binary_shape_kinds(c, shape, EW_NUM);
}

bool tg__float_binary_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    *dtype = c->in[0]->dtype;
    return binary_shape_kinds(c, shape, EW_FLOAT);
}

bool tg__compare_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    *dtype = TG_BOOL;
    return binary_shape_kinds(c, shape, EW_ANY);
}

bool tg__logical_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    *dtype = TG_BOOL;
    return binary_shape_kinds(c, shape, EW_BOOL);
}

static bool unary_shape_kinds(const tg_call *c, tg_shape *shape, tg_dtype *dtype, int kinds)
{
    *shape = tg__shape(c->in[0]);
    *dtype = c->in[0]->dtype;
    return dtype_allowed(c, c->in[0], "x", kinds);
}

bool tg__float_unary_shape(const tg_call *c, tg_shape *s, tg_dtype *d) { return unary_shape_kinds(c, s, d, EW_FLOAT); }
bool tg__number_unary_shape(const tg_call *c, tg_shape *s, tg_dtype *d) { return unary_shape_kinds(c, s, d, EW_NUM); }
/* identity and stop_gradient copy bytes: bfloat16 too */
bool tg__any_unary_shape(const tg_call *c, tg_shape *s, tg_dtype *d)
{
    if (c->in[0]->dtype == TG_BF16) {
        *s = tg__shape(c->in[0]);
        *d = TG_BF16;
        return true;
    }
    return unary_shape_kinds(c, s, d, EW_ANY);
}
bool tg__bool_unary_shape(const tg_call *c, tg_shape *s, tg_dtype *d) { return unary_shape_kinds(c, s, d, EW_BOOL); }

/* ---- small helpers for backward rules ------------------------------------------------------- */
static tg_tensor *scalar_like(const tg_grad_ctx *g, const tg_tensor *x, double v)
{
    return tg_scalar_like_at(g->loc, x, v);
}

/* ---- add, sub, mul, div ----------------------------------------------------------------------- */
/* Integer division truncates toward zero as C does (TF's `//` floors instead, and TF's
 * `/` on integers returns floats). INT_MIN / -1 wraps. Zero divisors are caught before. */
DEF_KERNEL(BIN_LOOP, add_kernel, a + b, (T)((U)a + (U)b))
DEF_KERNEL(BIN_LOOP, sub_kernel, a - b, (T)((U)a - (U)b))
DEF_KERNEL(BIN_LOOP, mul_kernel, a *b, (T)((U)a *(U)b))
DEF_KERNEL(BIN_LOOP, div_kernel, a / b, b == -1 ? (T)((U)0 - (U)a) : a / b)
DEF_FLOAT_KERNEL(BIN_LOOP, pow_kernel, pow(a, b))
/* NaN in either operand propagates, as in TF. */
DEF_KERNEL(BIN_LOOP, maximum_kernel, (a >= b || a != a) ? a : b, a >= b ? a : b)
DEF_KERNEL(BIN_LOOP, minimum_kernel, (a <= b || a != a) ? a : b, a <= b ? a : b)

bool tg__add_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, add_kernel); }
bool tg__sub_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, sub_kernel); }
bool tg__mul_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, mul_kernel); }
bool tg__pow_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, pow_kernel); }
bool tg__maximum_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, maximum_kernel); }
bool tg__minimum_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, minimum_kernel); }

bool tg__div_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *b = c->in[1];
    if (!tg_dtype_is_float(b->dtype))
        for (int64_t i = 0; i < b->size; i++)
            if (tg__get(b, i) == 0) {
                tg__fail(c->loc, "tg_div: integer division by zero (element %lld of `b`)", (long long)i);
                return false;
            }
    return ew_run(c, out, div_kernel);
}

bool tg__add_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = g->dy;
    dx[1] = g->dy;
    return true;
}

bool tg__sub_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = g->dy;
    dx[1] = tg_neg_at(g->loc, g->dy);
    return true;
}

bool tg__mul_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, g->in[1]);
    dx[1] = tg_mul_at(g->loc, g->dy, g->in[0]);
    return true;
}

/* d(a/b)/da = 1/b; d(a/b)/db = -a/b^2 (as TF writes it, without b*b) */
bool tg__div_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *a = g->in[0], *b = g->in[1];
    dx[0] = tg_div_at(l, g->dy, b);
    dx[1] = tg_div_at(l, tg_div_at(l, tg_mul_at(l, g->dy, tg_neg_at(l, a)), b), b);
    return true;
}

/* d/da = dy * b * a^(b-1); d/db = dy * log(a) * a^b where a > 0, else 0 (as TF: the
 * masked log keeps NaN out of the gradient and of its derivatives). */
bool tg__pow_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *a = g->in[0], *b = g->in[1];
    tg_tensor *bm1 = tg_sub_at(l, b, scalar_like(g, b, 1));
    dx[0] = tg_mul_at(l, g->dy, tg_mul_at(l, b, tg_pow_at(l, a, bm1)));
    tg_tensor *pos = tg_greater_at(l, a, scalar_like(g, a, 0));
    tg_tensor *safe = tg_where_at(l, pos, a, scalar_like(g, a, 1));
    tg_tensor *log_a = tg_where_at(l, pos, tg_log_at(l, safe), scalar_like(g, a, 0));
    dx[1] = tg_mul_at(l, g->dy, tg_mul_at(l, g->out, log_a));
    return true;
}

/* The gradient goes to a where mask (a >= b for maximum, a <= b for minimum), else to b. */
static bool select_backward(const tg_grad_ctx *g, tg_tensor **dx, tg_tensor *mask)
{
    tg_tensor *zero = scalar_like(g, g->dy, 0);
    dx[0] = tg_where_at(g->loc, mask, g->dy, zero);
    dx[1] = tg_where_at(g->loc, mask, zero, g->dy);
    return true;
}

bool tg__maximum_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return select_backward(g, dx, tg_greater_equal_at(g->loc, g->in[0], g->in[1]));
}

bool tg__minimum_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return select_backward(g, dx, tg_less_equal_at(g->loc, g->in[0], g->in[1]));
}

tg_tensor *tg_add_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_ADD, NULL, a, b);
}
tg_tensor *tg_sub_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_SUB, NULL, a, b);
}
tg_tensor *tg_mul_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_MUL, NULL, a, b);
}
tg_tensor *tg_div_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_DIV, NULL, a, b);
}
tg_tensor *tg_pow_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_POW, NULL, a, b);
}
tg_tensor *tg_maximum_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_MAXIMUM, NULL, a, b);
}
tg_tensor *tg_minimum_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_MINIMUM, NULL, a, b);
}

/* ---- comparisons and logic (not differentiable) ---------------------------------------------- */
DEF_COMPARE(equal_kernel, a == b)
DEF_COMPARE(not_equal_kernel, a != b)
DEF_COMPARE(greater_kernel, a > b)
DEF_COMPARE(greater_equal_kernel, a >= b)
DEF_COMPARE(less_kernel, a < b)
DEF_COMPARE(less_equal_kernel, a <= b)
KERNEL_HEAD(logical_and_kernel)
{
    (void)c;
    BIN_LOOP(uint8_t, uint8_t, uint8_t, a && b);
}
KERNEL_HEAD(logical_or_kernel)
{
    (void)c;
    BIN_LOOP(uint8_t, uint8_t, uint8_t, a || b);
}
KERNEL_HEAD(logical_not_kernel) { UN_LOOP(uint8_t, uint8_t, uint8_t, !a); }
bool tg__equal_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, equal_kernel); }
bool tg__not_equal_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, not_equal_kernel); }
bool tg__greater_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, greater_kernel); }
bool tg__greater_equal_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, greater_equal_kernel); }
bool tg__less_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, less_kernel); }
bool tg__less_equal_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, less_equal_kernel); }
bool tg__logical_and_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, logical_and_kernel); }
bool tg__logical_or_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, logical_or_kernel); }
bool tg__logical_not_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, logical_not_kernel); }

tg_tensor *tg_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_EQUAL, NULL, a, b);
}
tg_tensor *tg_not_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_NOT_EQUAL, NULL, a, b);
}
tg_tensor *tg_greater_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_GREATER, NULL, a, b);
}
tg_tensor *tg_greater_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_GREATER_EQUAL, NULL, a, b);
}
tg_tensor *tg_less_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_LESS, NULL, a, b);
}
tg_tensor *tg_less_equal_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_LESS_EQUAL, NULL, a, b);
}
tg_tensor *tg_logical_and_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_LOGICAL_AND, NULL, a, b);
}
tg_tensor *tg_logical_or_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_LOGICAL_OR, NULL, a, b);
}
tg_tensor *tg_logical_not_at(tg_loc loc, const tg_tensor *a) { return TG__APPLY(loc, TG_OP_LOGICAL_NOT, NULL, a); }

/* ---- where ------------------------------------------------------------------------------------- */
bool tg__where_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *cond = c->in[0], *a = c->in[1], *b = c->in[2];
    if (cond->dtype != TG_BOOL) {
        tg__fail(c->loc, "tg_where: `cond` must be bool, not %s (make it with a comparison such as tg_greater)",
                 tg_dtype_name(cond->dtype));
        return false;
    }
    if (!tg__same_dtype(c, a, b))
        return false;
    tg_shape sc = tg__shape(cond), sa = tg__shape(a), sb = tg__shape(b), sab;
    *dtype = a->dtype;
    return tg__broadcast_shapes(c, &sa, &sb, &sab) && tg__broadcast_shapes(c, &sc, &sab, shape);
}

/* Copies elements of size S: the choice never needs the value's type. */
#define WHERE_LOOP(TYPE)                                           \
    do {                                                           \
        TYPE *o_ = out;                                            \
        const uint8_t *m_ = in[0];                                 \
        const TYPE *a_ = in[1], *b_ = in[2];                       \
        for (int64_t i = 0; i < n; i++)                            \
            o_[i] = m_[i * st[0]] ? a_[i * st[1]] : b_[i * st[2]]; \
    } while (0)

KERNEL_HEAD(where_kernel)
{
    switch (tg__dsize(c->in[1]->dtype)) {
    case 1: WHERE_LOOP(uint8_t); break;
    case 4: WHERE_LOOP(uint32_t); break;
    case 8: WHERE_LOOP(uint64_t); break;
    default: break;
    }
}
bool tg__where_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, where_kernel); }

bool tg__where_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *zero = scalar_like(g, g->dy, 0);
    dx[1] = tg_where_at(g->loc, g->in[0], g->dy, zero);
    dx[2] = tg_where_at(g->loc, g->in[0], zero, g->dy);
    return true;
}

tg_tensor *tg_where_at(tg_loc loc, const tg_tensor *cond, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_WHERE, NULL, cond, a, b);
}

/* ---- unary ------------------------------------------------------------------------------------- */
DEF_KERNEL(UN_LOOP, neg_kernel, -a, (T)((U)0 - (U)a))
DEF_KERNEL(UN_LOOP, abs_kernel, fabs(a), a < 0 ? (T)((U)0 - (U)a) : a)
DEF_KERNEL(UN_LOOP, square_kernel, a *a, (T)((U)a *(U)a))
DEF_FLOAT_KERNEL(UN_LOOP, sqrt_kernel, sqrt(a))
DEF_FLOAT_KERNEL(UN_LOOP, rsqrt_kernel, 1 / sqrt(a))
DEF_FLOAT_KERNEL(UN_LOOP, exp_kernel, exp(a))
DEF_FLOAT_KERNEL(UN_LOOP, log_kernel, log(a))
DEF_FLOAT_KERNEL(UN_LOOP, log1p_kernel, log1p(a))
DEF_FLOAT_KERNEL(UN_LOOP, erf_kernel, erf(a))
/* 0 and NaN map to themselves. */
DEF_KERNEL(UN_LOOP, sign_kernel, a > 0 ? 1 : a < 0 ? -1 : a, a > 0 ? 1 : a < 0 ? -1 : 0)
DEF_FLOAT_KERNEL(UN_LOOP, floor_kernel, floor(a))
DEF_FLOAT_KERNEL(UN_LOOP, ceil_kernel, ceil(a))
/* nearbyint in the default rounding mode rounds half to even, as TF's round. */
DEF_FLOAT_KERNEL(UN_LOOP, round_kernel, nearbyint(a))
/* NaN passes through, as in TF (the comparisons are false). */
#define CLIP_LOOP(T)                                          \
    do {                                                      \
        const T lo = (T)c->a->clip.lo, hi = (T)c->a->clip.hi; \
        UN_LOOP(T, T, T, a<lo ? lo : a> hi ? hi : a);         \
    } while (0)
KERNEL_HEAD(clip_by_value_kernel)
{
    if (c->in[0]->dtype == TG_F32)
        CLIP_LOOP(float);
    else
        CLIP_LOOP(double);
}

bool tg__neg_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, neg_kernel); }
bool tg__abs_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, abs_kernel); }
bool tg__square_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, square_kernel); }
bool tg__sqrt_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, sqrt_kernel); }
bool tg__rsqrt_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, rsqrt_kernel); }
bool tg__exp_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, exp_kernel); }
bool tg__log_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, log_kernel); }
bool tg__log1p_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, log1p_kernel); }
bool tg__erf_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, erf_kernel); }
bool tg__sign_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, sign_kernel); }
bool tg__floor_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, floor_kernel); }
bool tg__ceil_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, ceil_kernel); }
bool tg__round_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, round_kernel); }
bool tg__clip_by_value_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, clip_by_value_kernel); }

bool tg__copy_forward(const tg_call *c, tg_tensor *out)
{
    if (out->size)
        memcpy(out->data, c->in[0]->data, (size_t)out->size * tg__dsize(out->dtype));
    return true;
}

bool tg__neg_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_neg_at(g->loc, g->dy);
    return true;
}

bool tg__abs_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_sign_at(g->loc, g->in[0]));
    return true;
}

bool tg__square_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    const tg_tensor *x = g->in[0];
    dx[0] = tg_mul_at(g->loc, g->dy, tg_mul_at(g->loc, x, scalar_like(g, x, 2)));
    return true;
}

bool tg__sqrt_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_div_at(g->loc, tg_mul_at(g->loc, g->dy, scalar_like(g, g->dy, 0.5)), g->out);
    return true;
}

bool tg__rsqrt_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    tg_tensor *y3 = tg_mul_at(l, g->out, tg_square_at(l, g->out));
    dx[0] = tg_mul_at(l, tg_mul_at(l, g->dy, scalar_like(g, g->dy, -0.5)), y3);
    return true;
}

bool tg__exp_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, g->out);
    return true;
}

bool tg__log_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_div_at(g->loc, g->dy, g->in[0]);
    return true;
}

bool tg__log1p_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    const tg_tensor *x = g->in[0];
    dx[0] = tg_div_at(g->loc, g->dy, tg_add_at(g->loc, x, scalar_like(g, x, 1)));
    return true;
}

/* d erf(x) = 2/sqrt(pi) exp(-x^2) */
bool tg__erf_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_tensor *e = tg_exp_at(l, tg_neg_at(l, tg_square_at(l, x)));
    dx[0] = tg_mul_at(l, g->dy, tg_mul_at(l, e, scalar_like(g, x, 2 / sqrt(M_PI))));
    return true;
}

bool tg__identity_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = g->dy;
    return true;
}

/* dy where lo <= x <= hi, else 0 (TF gives the bounds themselves the gradient too). */
bool tg__clip_by_value_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_tensor *inside = tg_logical_and_at(l, tg_greater_equal_at(l, x, scalar_like(g, x, g->a->clip.lo)),
                                          tg_less_equal_at(l, x, scalar_like(g, x, g->a->clip.hi)));
    dx[0] = tg_where_at(l, inside, g->dy, scalar_like(g, g->dy, 0));
    return true;
}

bool tg__clip_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    double lo = c->a->clip.lo, hi = c->a->clip.hi;
    if (!(lo <= hi)) {
        tg__fail(c->loc, "tg_clip_by_value: `lo` (%g) must not exceed `hi` (%g)", lo, hi);
        return false;
    }
    return tg__float_unary_shape(c, shape, dtype);
}

tg_tensor *tg_neg_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_NEG, NULL, x); }
tg_tensor *tg_abs_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ABS, NULL, x); }
tg_tensor *tg_square_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SQUARE, NULL, x); }
tg_tensor *tg_sqrt_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SQRT, NULL, x); }
tg_tensor *tg_rsqrt_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_RSQRT, NULL, x); }
tg_tensor *tg_exp_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_EXP, NULL, x); }
tg_tensor *tg_log_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_LOG, NULL, x); }
tg_tensor *tg_log1p_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_LOG1P, NULL, x); }
tg_tensor *tg_erf_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ERF, NULL, x); }
tg_tensor *tg_sign_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SIGN, NULL, x); }
tg_tensor *tg_floor_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_FLOOR, NULL, x); }
tg_tensor *tg_ceil_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_CEIL, NULL, x); }
tg_tensor *tg_round_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ROUND, NULL, x); }
tg_tensor *tg_identity_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_IDENTITY, NULL, x); }
tg_tensor *tg_stop_gradient_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_STOP_GRADIENT, NULL, x); }

tg_tensor *tg_clip_by_value_at(tg_loc loc, const tg_tensor *x, double lo, double hi)
{
    tg_attrs a = {.clip = {lo, hi}};
    return TG__APPLY(loc, TG_OP_CLIP_BY_VALUE, &a, x);
}

/* ---- cast ---------------------------------------------------------------------------------------- */
/* Float to integer saturates and maps NaN to 0 (C leaves out-of-range conversions
 * undefined); anything non-zero (NaN included) becomes true. */
static int32_t sat_i32(double v)
{
    return v != v ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
}
static int64_t sat_i64(double v)
{
    return v != v ? 0 : v >= 9223372036854775807.0 ? INT64_MAX : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
}
#define TO_F32(v)  ((float)(v))
#define TO_F64(v)  ((double)(v))
#define TO_I32(v)  _Generic((v), float : sat_i32(v), double : sat_i32(v), default : (int32_t)(v))
#define TO_I64(v)  _Generic((v), float : sat_i64(v), double : sat_i64(v), default : (int64_t)(v))
#define TO_BOOL(v) ((uint8_t)((v) != 0))
#define TO_BF16(v) tg__bf16_from_f32((float)(v)) /* doubles through float32, as PyTorch */

#define CAST_LOOP(TD, TS, CONV)                 \
    do {                                        \
        TD *o_ = out->data;                     \
        const TS *x_ = x->data;                 \
        for (int64_t i = 0; i < out->size; i++) \
            o_[i] = CONV(x_[i]);                \
    } while (0)
#define CAST_LOOP_BF16(TD, CONV)                    \
    do {                                            \
        TD *o_ = out->data;                         \
        const uint16_t *x_ = x->data;               \
        for (int64_t i = 0; i < out->size; i++)     \
            o_[i] = CONV(tg__f32_from_bf16(x_[i])); \
    } while (0)
#define CAST_FROM(TD, CONV)                            \
    switch (x->dtype) {                                \
    case TG_F32: CAST_LOOP(TD, float, CONV); break;    \
    case TG_F64: CAST_LOOP(TD, double, CONV); break;   \
    case TG_I32: CAST_LOOP(TD, int32_t, CONV); break;  \
    case TG_I64: CAST_LOOP(TD, int64_t, CONV); break;  \
    case TG_BOOL: CAST_LOOP(TD, uint8_t, CONV); break; \
    case TG_BF16: CAST_LOOP_BF16(TD, CONV); break;     \
    default: break;                                    \
    }

bool tg__cast_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    switch (out->dtype) {
    case TG_F32: CAST_FROM(float, TO_F32); break;
    case TG_F64: CAST_FROM(double, TO_F64); break;
    case TG_I32: CAST_FROM(int32_t, TO_I32); break;
    case TG_I64: CAST_FROM(int64_t, TO_I64); break;
    case TG_BOOL: CAST_FROM(uint8_t, TO_BOOL); break;
    case TG_BF16: CAST_FROM(uint16_t, TO_BF16); break;
    default: break;
    }
    return true;
}

bool tg__cast_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    if ((unsigned)c->a->dtype >= TG_DTYPE_COUNT) {
        tg__fail(c->loc, "tg_cast: %d is not a dtype (use TG_F32, TG_F64, TG_I32, TG_I64, TG_BOOL or TG_BF16)",
                 (int)c->a->dtype);
        return false;
    }
    *shape = tg__shape(c->in[0]);
    *dtype = c->a->dtype;
    return true;
}

/* Between float dtypes the gradient is cast back; a cast to or from an integer or bool
 * has no gradient (TF's None): the row's FLOAT_GRAD flag tells the tape. */
bool tg__cast_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_cast_at(g->loc, g->dy, g->in[0]->dtype);
    return true;
}

tg_tensor *tg_cast_at(tg_loc loc, const tg_tensor *x, tg_dtype dtype)
{
    return TG__APPLY(loc, TG_OP_CAST, &(tg_attrs){.dtype = dtype}, x);
}

/* ---- trigonometric and hyperbolic ----------------------------------------------------------- */
/* Float32 and float64, through <tgmath.h>; the backward rules are TF's (math_grad.py). */
DEF_FLOAT_KERNEL(UN_LOOP, sin_kernel, sin(a))
DEF_FLOAT_KERNEL(UN_LOOP, cos_kernel, cos(a))
DEF_FLOAT_KERNEL(UN_LOOP, tan_kernel, tan(a))
DEF_FLOAT_KERNEL(UN_LOOP, asin_kernel, asin(a))
DEF_FLOAT_KERNEL(UN_LOOP, acos_kernel, acos(a))
DEF_FLOAT_KERNEL(UN_LOOP, atan_kernel, atan(a))
DEF_FLOAT_KERNEL(BIN_LOOP, atan2_kernel, atan2(a, b))
DEF_FLOAT_KERNEL(UN_LOOP, sinh_kernel, sinh(a))
DEF_FLOAT_KERNEL(UN_LOOP, cosh_kernel, cosh(a))
DEF_FLOAT_KERNEL(UN_LOOP, asinh_kernel, asinh(a))
DEF_FLOAT_KERNEL(UN_LOOP, acosh_kernel, acosh(a))
DEF_FLOAT_KERNEL(UN_LOOP, atanh_kernel, atanh(a))
bool tg__sin_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, sin_kernel); }
bool tg__cos_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, cos_kernel); }
bool tg__tan_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, tan_kernel); }
bool tg__asin_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, asin_kernel); }
bool tg__acos_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, acos_kernel); }
bool tg__atan_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, atan_kernel); }
bool tg__atan2_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, atan2_kernel); }
bool tg__sinh_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, sinh_kernel); }
bool tg__cosh_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, cosh_kernel); }
bool tg__asinh_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, asinh_kernel); }
bool tg__acosh_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, acosh_kernel); }
bool tg__atanh_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, atanh_kernel); }

/* 1 - x^2, for asin, acos and atanh */
static tg_tensor *one_minus_square(const tg_grad_ctx *g, const tg_tensor *x)
{
    return tg_sub_at(g->loc, scalar_like(g, x, 1), tg_square_at(g->loc, x));
}

/* dy * cos(x) */
bool tg__sin_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_cos_at(g->loc, g->in[0]));
    return true;
}

/* -dy * sin(x) */
bool tg__cos_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, tg_neg_at(g->loc, g->dy), tg_sin_at(g->loc, g->in[0]));
    return true;
}

/* dy * sec(x)^2, sec = 1 / cos */
bool tg__tan_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    dx[0] = tg_mul_at(l, g->dy, tg_square_at(l, tg_reciprocal_at(l, tg_cos_at(l, g->in[0]))));
    return true;
}

/* dy / sqrt(1 - x^2) */
bool tg__asin_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_rsqrt_at(g->loc, one_minus_square(g, g->in[0])));
    return true;
}

/* -dy / sqrt(1 - x^2) */
bool tg__acos_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    dx[0] = tg_mul_at(l, tg_neg_at(l, g->dy), tg_rsqrt_at(l, one_minus_square(g, g->in[0])));
    return true;
}

/* dy / (1 + x^2) */
bool tg__atan_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    dx[0] = tg_div_at(l, g->dy, tg_add_at(l, scalar_like(g, x, 1), tg_square_at(l, x)));
    return true;
}

/* atan2(y, x): dy * x / (x^2 + y^2) for y, -dy * y / (x^2 + y^2) for x (NaN at the origin,
 * as TF's) */
bool tg__atan2_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *y = g->in[0], *x = g->in[1];
    tg_tensor *inv = tg_div_at(l, g->dy, tg_add_at(l, tg_square_at(l, x), tg_square_at(l, y)));
    dx[0] = tg_mul_at(l, x, inv);
    dx[1] = tg_mul_at(l, tg_neg_at(l, y), inv);
    return true;
}

bool tg__sinh_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_cosh_at(g->loc, g->in[0]));
    return true;
}

bool tg__cosh_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_sinh_at(g->loc, g->in[0]));
    return true;
}

/* dy / cosh(y), y = asinh(x) (TF's form: 1 / sqrt(x^2 + 1)) */
bool tg__asinh_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_div_at(g->loc, g->dy, tg_cosh_at(g->loc, g->out));
    return true;
}

/* dy / sinh(y), y = acosh(x) (1 / sqrt(x^2 - 1)) */
bool tg__acosh_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_div_at(g->loc, g->dy, tg_sinh_at(g->loc, g->out));
    return true;
}

/* dy / (1 - x^2) */
bool tg__atanh_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_div_at(g->loc, g->dy, one_minus_square(g, g->in[0]));
    return true;
}

tg_tensor *tg_sin_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SIN, NULL, x); }
tg_tensor *tg_cos_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_COS, NULL, x); }
tg_tensor *tg_tan_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_TAN, NULL, x); }
tg_tensor *tg_asin_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ASIN, NULL, x); }
tg_tensor *tg_acos_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ACOS, NULL, x); }
tg_tensor *tg_atan_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ATAN, NULL, x); }
tg_tensor *tg_sinh_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SINH, NULL, x); }
tg_tensor *tg_cosh_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_COSH, NULL, x); }
tg_tensor *tg_asinh_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ASINH, NULL, x); }
tg_tensor *tg_acosh_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ACOSH, NULL, x); }
tg_tensor *tg_atanh_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_ATANH, NULL, x); }
tg_tensor *tg_atan2_at(tg_loc loc, const tg_tensor *y, const tg_tensor *x)
{
    return TG__APPLY(loc, TG_OP_ATAN2, NULL, y, x);
}

/* ---- reciprocal, expm1, squared_difference ------------------------------------------------------- */
DEF_FLOAT_KERNEL(UN_LOOP, reciprocal_kernel, 1 / a)
DEF_FLOAT_KERNEL(UN_LOOP, expm1_kernel, expm1(a))
DEF_KERNEL(BIN_LOOP, squared_difference_kernel, (a - b) * (a - b), (T)(((U)a - (U)b) * ((U)a - (U)b)))
bool tg__reciprocal_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, reciprocal_kernel); }
bool tg__expm1_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, expm1_kernel); }
bool tg__squared_difference_forward(const tg_call *c, tg_tensor *out)
{
    return ew_run(c, out, squared_difference_kernel);
}

/* -dy * y^2, y = 1 / x (TF's ReciprocalGrad) */
bool tg__reciprocal_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, tg_neg_at(g->loc, g->dy), tg_square_at(g->loc, g->out));
    return true;
}

bool tg__expm1_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_exp_at(g->loc, g->in[0]));
    return true;
}

/* 2 dy (a - b) for a, its negation for b */
bool tg__squared_difference_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *a = g->in[0], *b = g->in[1];
    dx[0] = tg_mul_at(l, tg_mul_at(l, g->dy, scalar_like(g, g->dy, 2)), tg_sub_at(l, a, b));
    dx[1] = tg_neg_at(l, dx[0]);
    return true;
}

tg_tensor *tg_reciprocal_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_RECIPROCAL, NULL, x); }
tg_tensor *tg_expm1_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_EXPM1, NULL, x); }
tg_tensor *tg_squared_difference_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_SQUARED_DIFFERENCE, NULL, a, b);
}

/* ---- the division family: floormod, floordiv, truncatediv, truncatemod ------------------------- */
/* TF's kernels: the floor forms take the divisor's sign (Python's // and %), the truncating
 * forms the dividend's (C's / and %). Floats divide by zero as IEEE says (floordiv gives
 * +-Inf or NaN, the mods NaN); an integer divisor of 0 is an error naming the element, as
 * TF's "Integer division by zero", checked before the kernel runs. INT_MIN by -1 wraps
 * (C leaves it undefined; TF's CPU kernels wrap too). */
static inline float fmodf_floor(float a, float b)
{
    float m = fmod(a, b);
    return m != 0 && (b < 0) != (m < 0) ? m + b : m;
}
static inline double fmod_floor(double a, double b)
{
    double m = fmod(a, b);
    return m != 0 && (b < 0) != (m < 0) ? m + b : m;
}
#define INT_DIV_HELPERS(T, U, S)                                                           \
    static inline T trunc_div_##S(T a, T b) { return b == -1 ? (T)((U)0 - (U)a) : a / b; } \
    static inline T trunc_mod_##S(T a, T b) { return b == -1 ? 0 : a % b; }                \
    static inline T floor_div_##S(T a, T b)                                                \
    {                                                                                      \
        T q = trunc_div_##S(a, b);                                                         \
        return trunc_mod_##S(a, b) != 0 && (a < 0) != (b < 0) ? q - 1 : q;                 \
    }                                                                                      \
    static inline T floor_mod_##S(T a, T b)                                                \
    {                                                                                      \
        T m = trunc_mod_##S(a, b);                                                         \
        return m != 0 && (b < 0) != (m < 0) ? m + b : m;                                   \
    }
INT_DIV_HELPERS(int32_t, uint32_t, i32)
INT_DIV_HELPERS(int64_t, uint64_t, i64)
#define INT_OP(NAME, a, b)    _Generic((a), int32_t : NAME##_i32, default : NAME##_i64)(a, b)
#define FLOAT_FLOOR_MOD(a, b) _Generic((a), float : fmodf_floor, default : fmod_floor)(a, b)

DEF_KERNEL(BIN_LOOP, floormod_kernel, FLOAT_FLOOR_MOD(a, b), INT_OP(floor_mod, a, b))
DEF_KERNEL(BIN_LOOP, floordiv_kernel, floor(a / b), INT_OP(floor_div, a, b))
DEF_KERNEL(BIN_LOOP, truncatediv_kernel, a / b, INT_OP(trunc_div, a, b))
DEF_KERNEL(BIN_LOOP, truncatemod_kernel, fmod(a, b), INT_OP(trunc_mod, a, b))

/* An integer divisor with a zero element: an error naming the op and the element. */
static bool int_divisor_ok(const tg_call *c)
{
    const tg_tensor *b = c->in[1];
    if (!tg_dtype_is_float(b->dtype))
        for (int64_t i = 0; i < b->size; i++)
            if (tg__get(b, i) == 0) {
                tg__fail(c->loc, "%s: integer division by zero (element %lld of `b`)", tg__op_name(c->op),
                         (long long)i);
                return false;
            }
    return true;
}

bool tg__floormod_forward(const tg_call *c, tg_tensor *out)
{
    return int_divisor_ok(c) && ew_run(c, out, floormod_kernel);
}
bool tg__floordiv_forward(const tg_call *c, tg_tensor *out)
{
    return int_divisor_ok(c) && ew_run(c, out, floordiv_kernel);
}
bool tg__truncatediv_forward(const tg_call *c, tg_tensor *out)
{
    return int_divisor_ok(c) && ew_run(c, out, truncatediv_kernel);
}
bool tg__truncatemod_forward(const tg_call *c, tg_tensor *out)
{
    return int_divisor_ok(c) && ew_run(c, out, truncatemod_kernel);
}

bool tg__int_binary_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    *dtype = c->in[0]->dtype;
    return binary_shape_kinds(c, shape, EW_INT);
}

/* TF's FloorModGrad: dy for a, -dy * floordiv(a, b) for b (floordiv has no gradient, so
 * the second derivative is 0, as it is away from the jumps). */
bool tg__floormod_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    dx[0] = g->dy;
    dx[1] = tg_mul_at(l, g->dy, tg_neg_at(l, tg_floordiv_at(l, g->in[0], g->in[1])));
    return true;
}

/* TF has no gradient for TruncateMod; this is FloorMod's rule with truncation: dy for a,
 * -dy * trunc(a / b) for b, trunc(a / b) being (a - y) / b exactly. */
bool tg__truncatemod_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *a = g->in[0], *b = g->in[1];
    dx[0] = g->dy;
    dx[1] = tg_mul_at(l, g->dy, tg_neg_at(l, tg_div_at(l, tg_sub_at(l, a, g->out), b)));
    return true;
}

tg_tensor *tg_floormod_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_FLOORMOD, NULL, a, b);
}
tg_tensor *tg_floordiv_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_FLOORDIV, NULL, a, b);
}
tg_tensor *tg_truncatediv_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_TRUNCATEDIV, NULL, a, b);
}
tg_tensor *tg_truncatemod_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_TRUNCATEMOD, NULL, a, b);
}

/* ---- div_no_nan, mul_no_nan ------------------------------------------------------------------------ */
/* 0 wherever b == 0, whatever a is (NaN and Inf included), as TF's kernels. */
DEF_FLOAT_KERNEL(BIN_LOOP, div_no_nan_kernel, b == 0 ? 0 : a / b)
DEF_FLOAT_KERNEL(BIN_LOOP, mul_no_nan_kernel, b == 0 ? 0 : a * b)
bool tg__div_no_nan_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, div_no_nan_kernel); }
bool tg__mul_no_nan_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, mul_no_nan_kernel); }

/* TF's DivNoNanGrad: div_no_nan(dy, b) for a, dy * div_no_nan(div_no_nan(-a, b), b) for b:
 * both 0 where b == 0. */
bool tg__div_no_nan_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *a = g->in[0], *b = g->in[1];
    dx[0] = tg_div_no_nan_at(l, g->dy, b);
    dx[1] = tg_mul_at(l, g->dy, tg_div_no_nan_at(l, tg_div_no_nan_at(l, tg_neg_at(l, a), b), b));
    return true;
}

/* TF's MulNoNanGrad: mul_no_nan(dy, b) for a, mul_no_nan(a, dy) for b. */
bool tg__mul_no_nan_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_no_nan_at(g->loc, g->dy, g->in[1]);
    dx[1] = tg_mul_no_nan_at(g->loc, g->in[0], g->dy);
    return true;
}

tg_tensor *tg_div_no_nan_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_DIV_NO_NAN, NULL, a, b);
}
tg_tensor *tg_mul_no_nan_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b)
{
    return TG__APPLY(loc, TG_OP_MUL_NO_NAN, NULL, a, b);
}

/* ---- is_nan, is_inf, is_finite (bool, not differentiable) -------------------------------------------- */
#define DEF_PREDICATE(name, EXPR)                   \
    KERNEL_HEAD(name)                               \
    {                                               \
        if (c->in[0]->dtype == TG_F32)              \
            UN_LOOP(uint8_t, float, float, EXPR);   \
        else                                        \
            UN_LOOP(uint8_t, double, double, EXPR); \
    }
/* != 0: the classification macros give any non-zero int (glibc's isinf(-Inf) is -1). */
DEF_PREDICATE(is_nan_kernel, isnan(a) != 0)
DEF_PREDICATE(is_inf_kernel, isinf(a) != 0)
DEF_PREDICATE(is_finite_kernel, isfinite(a) != 0)
bool tg__is_nan_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, is_nan_kernel); }
bool tg__is_inf_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, is_inf_kernel); }
bool tg__is_finite_forward(const tg_call *c, tg_tensor *out) { return ew_run(c, out, is_finite_kernel); }

bool tg__float_predicate_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    bool ok = unary_shape_kinds(c, shape, dtype, EW_FLOAT);
    *dtype = TG_BOOL;
    return ok;
}

tg_tensor *tg_is_nan_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_IS_NAN, NULL, x); }
tg_tensor *tg_is_inf_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_IS_INF, NULL, x); }
tg_tensor *tg_is_finite_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_IS_FINITE, NULL, x); }
