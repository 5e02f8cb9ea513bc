/* Activations: relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus, softmax,
 * log_softmax, log_sigmoid, relu6, selu, silu, hard_sigmoid and softsign. Float32 and
 * float64 only; kernels are written once through <tgmath.h>. The formulas avoid overflow
 * at both tails (sigmoid, softplus, softmax, log_sigmoid, silu). */
#include <tgmath.h>

#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/parallel.h"

#define UNUSED __attribute__((unused))

/* out[i] = EXPR(a = x[i]) in T for i in [b, e); alpha is leaky_relu's and elu's. */
#define MAP_LOOP(TYPE, EXPR)                   \
    do {                                       \
        typedef TYPE T;                        \
        T *o_ = out->data;                     \
        const T *x_ = c->in[0]->data;          \
        const T alpha UNUSED = (T)c->a->alpha; \
        for (int64_t i = b; i < e; i++) {      \
            T a = x_[i];                       \
            o_[i] = (EXPR);                    \
        }                                      \
    } while (0)

typedef struct map_ctx {
    const tg_call *c;
    tg_tensor *out;
} map_ctx;

/* The kernel `name`: elements [b, e) of one call. */
#define DEF_MAP(name, EXPR)                                          \
    TG_VECTOR_CLONES static void name(void *p, int64_t b, int64_t e) \
    {                                                                \
        const tg_call *c = ((const map_ctx *)p)->c;                  \
        tg_tensor *out = ((const map_ctx *)p)->out;                  \
        if (out->dtype == TG_F32)                                    \
            MAP_LOOP(float, EXPR);                                   \
        else                                                         \
            MAP_LOOP(double, EXPR);                                  \
    }

/* Element-wise, so the loop pool may split it anywhere; chunks are smaller than for plain
 * arithmetic because most of these call exp, tanh or erf. */
static bool map_run(const tg_call *c, tg_tensor *out, void (*kernel)(void *, int64_t, int64_t))
{
    map_ctx m = {c, out};
    tg__parallel_for(out->size, TG_GRAIN / 4, kernel, &m);
    return true;
}

static tg_tensor *scalar_like(const tg_grad_ctx *g, const tg_tensor *x, double v)
{
    return tg_scalar_like_at(g->loc, x, v);
}

static tg_tensor *positive(const tg_grad_ctx *g)
{
    return tg_greater_at(g->loc, g->in[0], scalar_like(g, g->in[0], 0));
}

/* ---- relu, leaky_relu, elu -------------------------------------------------------------------- */
/* `a <= 0 ? 0 : a`, not `a > 0 ? a : 0`: NaN fails both tests, so this form passes it
 * through (NaN in, NaN out, as PyTorch and TF's CPU kernel); it vectorises as well. */
DEF_MAP(relu_kernel, a <= 0 ? 0 : a)
DEF_MAP(leaky_relu_kernel, a > 0 ? a : alpha * a)
DEF_MAP(elu_kernel, a > 0 ? a : alpha * expm1(a))
bool tg__relu_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, relu_kernel); }
bool tg__leaky_relu_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, leaky_relu_kernel); }
bool tg__elu_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, elu_kernel); }

bool tg__relu_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_where_at(g->loc, positive(g), g->dy, scalar_like(g, g->dy, 0));
    return true;
}

bool tg__leaky_relu_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *neg_side = tg_mul_at(g->loc, g->dy, scalar_like(g, g->dy, g->a->alpha));
    dx[0] = tg_where_at(g->loc, positive(g), g->dy, neg_side);
    return true;
}

/* For x <= 0, y = alpha (e^x - 1), so dy/dx = e^x alpha = y + alpha. */
bool tg__elu_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    tg_tensor *neg_side = tg_mul_at(l, g->dy, tg_add_at(l, g->out, scalar_like(g, g->out, g->a->alpha)));
    dx[0] = tg_where_at(l, positive(g), g->dy, neg_side);
    return true;
}

/* ---- gelu ------------------------------------------------------------------------------------- */
#define GELU_C 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_K 0.044715
DEF_MAP(gelu_exact_kernel, (T)0.5 * a * (1 + erf(a * (T)M_SQRT1_2)))
DEF_MAP(gelu_tanh_kernel, (T)0.5 * a * (1 + tanh((T)GELU_C * (a + (T)GELU_K * a * a * a))))

bool tg__gelu_forward(const tg_call *c, tg_tensor *out)
{
    return map_run(c, out, c->a->approximate ? gelu_tanh_kernel : gelu_exact_kernel);
}

/* exact: d/dx = Phi(x) + x phi(x) with Phi(x) = (1 + erf(x / sqrt2)) / 2 and
 * phi(x) = exp(-x^2 / 2) / sqrt(2 pi). */
static tg_tensor *gelu_exact_grad(const tg_grad_ctx *g, const tg_tensor *x)
{
    tg_loc l = g->loc;
    tg_tensor *erf_t = tg_erf_at(l, tg_mul_at(l, x, scalar_like(g, x, M_SQRT1_2)));
    tg_tensor *cdf = tg_mul_at(l, tg_add_at(l, erf_t, scalar_like(g, x, 1)), scalar_like(g, x, 0.5));
    tg_tensor *half_sq = tg_mul_at(l, tg_square_at(l, x), scalar_like(g, x, -0.5));
    tg_tensor *pdf = tg_mul_at(l, tg_exp_at(l, half_sq), scalar_like(g, x, 0.5 * M_2_SQRTPI * M_SQRT1_2));
    return tg_add_at(l, cdf, tg_mul_at(l, x, pdf));
}

/* tanh form: y = x (1 + t) / 2 with t = tanh(u), u = c (x + k x^3), so
 * d/dx = (1 + t) / 2 + x (1 - t^2) c (1 + 3 k x^2) / 2. */
static tg_tensor *gelu_tanh_grad(const tg_grad_ctx *g, const tg_tensor *x)
{
    tg_loc l = g->loc;
    tg_tensor *x2 = tg_square_at(l, x);
    tg_tensor *inner = tg_add_at(l, scalar_like(g, x, 1), tg_mul_at(l, x2, scalar_like(g, x, GELU_K)));
    tg_tensor *t = tg_tanh_at(l, tg_mul_at(l, tg_mul_at(l, x, inner), scalar_like(g, x, GELU_C)));
    tg_tensor *half = scalar_like(g, x, 0.5);
    tg_tensor *a = tg_mul_at(l, tg_add_at(l, t, scalar_like(g, x, 1)), half);
    tg_tensor *du = tg_add_at(l, scalar_like(g, x, 1), tg_mul_at(l, x2, scalar_like(g, x, 3 * GELU_K)));
    tg_tensor *sech2 = tg_sub_at(l, scalar_like(g, x, 1), tg_square_at(l, t));
    tg_tensor *b = tg_mul_at(l, tg_mul_at(l, x, sech2), tg_mul_at(l, du, scalar_like(g, x, 0.5 * GELU_C)));
    return tg_add_at(l, a, b);
}

bool tg__gelu_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    const tg_tensor *x = g->in[0];
    dx[0] = tg_mul_at(g->loc, g->dy, g->a->approximate ? gelu_tanh_grad(g, x) : gelu_exact_grad(g, x));
    return true;
}

/* ---- sigmoid, tanh, softplus ------------------------------------------------------------------ */
/* exp of a non-positive number only: no overflow at either tail. */
DEF_MAP(sigmoid_kernel, a >= 0 ? 1 / (1 + exp(-a)) : exp(a) / (1 + exp(a)))
DEF_MAP(tanh_kernel, tanh(a))
DEF_MAP(softplus_kernel, (a > 0 ? a : 0) + log1p(exp(-fabs(a))))
bool tg__sigmoid_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, sigmoid_kernel); }
bool tg__tanh_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, tanh_kernel); }
bool tg__softplus_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, softplus_kernel); }

/* dy * y * (1 - y) */
bool tg__sigmoid_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *y = g->out;
    dx[0] = tg_mul_at(l, g->dy, tg_mul_at(l, y, tg_sub_at(l, scalar_like(g, y, 1), y)));
    return true;
}

/* dy * (1 - y^2) */
bool tg__tanh_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *y = g->out;
    dx[0] = tg_mul_at(l, g->dy, tg_sub_at(l, scalar_like(g, y, 1), tg_square_at(l, y)));
    return true;
}

bool tg__softplus_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_sigmoid_at(g->loc, g->in[0]));
    return true;
}

/* ---- softmax, log_softmax --------------------------------------------------------------------- */
bool tg__softmax_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    int axis;
    if (!tg__float_unary_shape(c, shape, dtype))
        return false;
    if (c->in[0]->rank == 0) {
        tg__fail(c->loc, "%s: x must have at least one axis (got a scalar)", tg__op_name(c->op));
        return false;
    }
    return tg__norm_axis(c, c->a->axis, c->in[0]->rank, &axis);
}

/* The tensor as [outer, len, inner] around `axis`. */
static void split_axis(const tg_tensor *x, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= x->shape[i];
    for (int i = axis + 1; i < x->rank; i++)
        *inner *= x->shape[i];
    *len = x->shape[axis];
}

/* Each line along the axis: m = max, s = sum exp(x - m); softmax = exp(x - m) / s,
 * log_softmax = x - m - log s. Outer blocks [o0, o1). */
#define SOFTMAX_LOOP(TYPE, LOG)                                                       \
    do {                                                                              \
        typedef TYPE T;                                                               \
        const T *x_ = x->data;                                                        \
        T *o_ = out->data;                                                            \
        for (int64_t o = o0; o < o1; o++)                                             \
            for (int64_t i = 0; i < inner; i++) {                                     \
                const T *xl = x_ + o * len * inner + i;                               \
                T *ol = o_ + o * len * inner + i, m = -INFINITY, s = 0;               \
                for (int64_t k = 0; k < len; k++)                                     \
                    m = xl[k * inner] > m ? xl[k * inner] : m;                        \
                for (int64_t k = 0; k < len; k++)                                     \
                    s += (ol[k * inner] = exp(xl[k * inner] - m));                    \
                T ls = log(s);                                                        \
                for (int64_t k = 0; k < len; k++)                                     \
                    ol[k * inner] = LOG ? xl[k * inner] - m - ls : ol[k * inner] / s; \
            }                                                                         \
    } while (0)

typedef struct softmax_ctx {
    const tg_tensor *x;
    tg_tensor *out;
    int64_t len, inner;
    bool log_form;
} softmax_ctx;

/* Each line is computed by one thread: the values do not depend on the split. */
static void softmax_range(void *p, int64_t o0, int64_t o1)
{
    const softmax_ctx *r = p;
    const tg_tensor *x = r->x;
    tg_tensor *out = r->out;
    int64_t len = r->len, inner = r->inner;
    if (x->dtype == TG_F32)
        SOFTMAX_LOOP(float, r->log_form);
    else
        SOFTMAX_LOOP(double, r->log_form);
}

static bool softmax_any_forward(const tg_call *c, tg_tensor *out, bool log_form)
{
    const tg_tensor *x = c->in[0];
    int axis = c->a->axis < 0 ? c->a->axis + x->rank : c->a->axis;
    int64_t outer;
    softmax_ctx r = {.x = x, .out = out, .log_form = log_form};
    split_axis(x, axis, &outer, &r.len, &r.inner);
    tg__parallel_for(outer, tg__rows_grain(r.len * r.inner, TG_GRAIN / 4), softmax_range, &r);
    return true;
}

bool tg__softmax_forward(const tg_call *c, tg_tensor *out) { return softmax_any_forward(c, out, false); }
bool tg__log_softmax_forward(const tg_call *c, tg_tensor *out) { return softmax_any_forward(c, out, true); }

static tg_tensor *sum_axis(const tg_grad_ctx *g, const tg_tensor *x)
{
    tg_reduce_opts o = {.axes = {.n = 1, .axis = {g->a->axis}}, .keepdims = true};
    return tg_sum_at(g->loc, x, o);
}

/* y * (dy - sum(dy * y, axis)) */
bool tg__softmax_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *y = g->out;
    dx[0] = tg_mul_at(l, y, tg_sub_at(l, g->dy, sum_axis(g, tg_mul_at(l, g->dy, y))));
    return true;
}

/* dy - exp(y) * sum(dy, axis) */
bool tg__log_softmax_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    dx[0] = tg_sub_at(l, g->dy, tg_mul_at(l, tg_exp_at(l, g->out), sum_axis(g, g->dy)));
    return true;
}

/* ---- log_sigmoid, relu6, selu, silu, hard_sigmoid, softsign ----------------------------------- */
/* log(sigmoid(x)) = -softplus(-x): log1p of an exp that cannot overflow. */
DEF_MAP(log_sigmoid_kernel, a < 0 ? a - log1p(exp(a)) : -log1p(exp(-a)))
/* `a <= 0 ? 0 : ...` as relu: NaN fails both tests and passes through. */
DEF_MAP(relu6_kernel, a <= 0 ? 0 : a >= 6 ? 6 : a)
#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
DEF_MAP(selu_kernel, a > 0 ? (T)SELU_SCALE * a : (T)(SELU_SCALE * SELU_ALPHA) * expm1(a))
/* x * sigmoid(beta x), the sigmoid as sigmoid_kernel's (no overflow at either tail). */
#define SIGMOID_OF(u) ((u) >= 0 ? 1 / (1 + exp(-(u))) : exp(u) / (1 + exp(u)))
DEF_MAP(silu_kernel, a *SIGMOID_OF((T)c->a->beta *a))
DEF_MAP(hard_sigmoid_kernel, a <= -3 ? 0 : a >= 3 ? 1 : a / 6 + (T)0.5)
DEF_MAP(softsign_kernel, a / (1 + fabs(a)))
bool tg__log_sigmoid_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, log_sigmoid_kernel); }
bool tg__relu6_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, relu6_kernel); }
bool tg__selu_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, selu_kernel); }
bool tg__silu_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, silu_kernel); }
bool tg__hard_sigmoid_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, hard_sigmoid_kernel); }
bool tg__softsign_forward(const tg_call *c, tg_tensor *out) { return map_run(c, out, softsign_kernel); }

/* dy * sigmoid(-x) (softplus's rule, as TF builds log_sigmoid from it) */
bool tg__log_sigmoid_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = tg_mul_at(g->loc, g->dy, tg_sigmoid_at(g->loc, tg_neg_at(g->loc, g->in[0])));
    return true;
}

/* dy where lo < t < hi, else 0: TF's Relu6Grad, read from the output (t = y, lo 0, hi 6). */
static tg_tensor *pass_inside(const tg_grad_ctx *g, const tg_tensor *t, double lo, double hi)
{
    tg_loc l = g->loc;
    tg_tensor *inside =
        tg_logical_and_at(l, tg_greater_at(l, t, scalar_like(g, t, lo)), tg_less_at(l, t, scalar_like(g, t, hi)));
    return tg_where_at(l, inside, g->dy, scalar_like(g, g->dy, 0));
}

bool tg__relu6_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    dx[0] = pass_inside(g, g->out, 0, 6);
    return true;
}

/* TF's SeluGrad from the output: dy * (y + scale * alpha) where y < 0, else dy * scale. */
bool tg__selu_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *y = g->out;
    tg_tensor *neg = tg_less_at(l, y, scalar_like(g, y, 0));
    tg_tensor *neg_side = tg_mul_at(l, g->dy, tg_add_at(l, y, scalar_like(g, y, SELU_SCALE * SELU_ALPHA)));
    dx[0] = tg_where_at(l, neg, neg_side, tg_mul_at(l, g->dy, scalar_like(g, g->dy, SELU_SCALE)));
    return true;
}

/* TF's swish gradient: dy * s * (1 + beta x (1 - s)), s = sigmoid(beta x) (beta is a
 * constant here: no gradient of its own). */
bool tg__silu_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_tensor *bx = tg_mul_at(l, x, scalar_like(g, x, g->a->beta)), *s = tg_sigmoid_at(l, bx);
    tg_tensor *one = scalar_like(g, x, 1);
    tg_tensor *d = tg_mul_at(l, s, tg_add_at(l, one, tg_mul_at(l, bx, tg_sub_at(l, one, s))));
    dx[0] = tg_mul_at(l, g->dy, d);
    return true;
}

/* relu6's rule on x + 3, divided by 6: dy / 6 inside (-3, 3), 0 at and beyond the bounds. */
bool tg__hard_sigmoid_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_tensor *inside = pass_inside(g, g->in[0], -3, 3);
    dx[0] = tg_div_at(g->loc, inside, scalar_like(g, g->dy, 6));
    return true;
}

/* TF's SoftsignGrad: dy / (1 + |x|)^2 */
bool tg__softsign_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    dx[0] = tg_div_at(l, g->dy, tg_square_at(l, tg_add_at(l, scalar_like(g, x, 1), tg_abs_at(l, x))));
    return true;
}

/* ---- public functions ------------------------------------------------------------------------ */
tg_tensor *tg_relu_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_RELU, NULL, x); }
tg_tensor *tg_sigmoid_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SIGMOID, NULL, x); }
tg_tensor *tg_tanh_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_TANH, NULL, x); }
tg_tensor *tg_softplus_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SOFTPLUS, NULL, x); }

tg_tensor *tg_leaky_relu_at(tg_loc loc, const tg_tensor *x, double alpha)
{
    return TG__APPLY(loc, TG_OP_LEAKY_RELU, &(tg_attrs){.alpha = alpha}, x);
}

tg_tensor *tg_elu_at(tg_loc loc, const tg_tensor *x, double alpha)
{
    return TG__APPLY(loc, TG_OP_ELU, &(tg_attrs){.alpha = alpha}, x);
}

tg_tensor *tg_gelu_at(tg_loc loc, const tg_tensor *x, bool approximate)
{
    return TG__APPLY(loc, TG_OP_GELU, &(tg_attrs){.approximate = approximate}, x);
}

tg_tensor *tg_softmax_at(tg_loc loc, const tg_tensor *x, int axis)
{
    return TG__APPLY(loc, TG_OP_SOFTMAX, &(tg_attrs){.axis = axis}, x);
}

tg_tensor *tg_log_softmax_at(tg_loc loc, const tg_tensor *x, int axis)
{
    return TG__APPLY(loc, TG_OP_LOG_SOFTMAX, &(tg_attrs){.axis = axis}, x);
}

tg_tensor *tg_log_sigmoid_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_LOG_SIGMOID, NULL, x); }
tg_tensor *tg_relu6_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_RELU6, NULL, x); }
tg_tensor *tg_selu_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SELU, NULL, x); }
tg_tensor *tg_hard_sigmoid_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_HARD_SIGMOID, NULL, x); }
tg_tensor *tg_softsign_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_SOFTSIGN, NULL, x); }

/* keras/src/layers/activations/prelu.py: relu(x) - alpha * relu(-x). Both relus have
 * gradient 0 at 0, so x = 0 gets none, as in Keras. */
tg_tensor *tg_prelu_at(tg_loc loc, const tg_tensor *x, const tg_tensor *alpha)
{
    if (!tg__check_input(loc, "tg_prelu", x, "x") || !tg__check_input(loc, "tg_prelu", alpha, "alpha"))
        return NULL;
    if (x->dtype != alpha->dtype)
        return tg__fail(loc, "tg_prelu: `x` is %s and `alpha` %s; give both the same float dtype",
                        tg_dtype_name(x->dtype), tg_dtype_name(alpha->dtype));
    tg_tensor *neg = tg_mul_at(loc, tg_neg_at(loc, alpha), tg_relu_at(loc, tg_neg_at(loc, x)));
    return tg_add_at(loc, tg_relu_at(loc, x), neg);
}

tg_tensor *tg_silu_at(tg_loc loc, const tg_tensor *x, double beta)
{
    return TG__APPLY(loc, TG_OP_SILU, &(tg_attrs){.beta = beta}, x);
}
