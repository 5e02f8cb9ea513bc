/* Preprocessing layers: Keras's Normalization (keras/src/layers/preprocessing/normalization.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layer_impl.h"

#define NORMALIZATION_EPSILON 1e-7 /* Keras's backend.epsilon() */

/* Which axes of inputs of `rank` (batch included) keep their own statistics, as flags;
 * false with an error for an axis out of range, the batch axis or a repeat. */
static bool kept_axes(tg_loc loc, const tg_layer *l, int rank, bool *kept)
{
    const tg_normalization_opts *o = &l->o.norm;
    tg_axes last = {.n = 1, .axis = {-1}}, none = {.n = 0};
    const tg_axes *axis = o->axis_none ? &none : o->axis.n ? &o->axis : &last;
    memset(kept, 0, sizeof(bool) * TG_MAX_RANK);
    for (int i = 0; i < axis->n; i++) {
        int a = tg__layer_axis(loc, l, axis->axis[i], rank);
        if (a < 0)
            return false;
        if (kept[a])
            return tg__failb(loc, "Normalization \"%s\": axis %d is listed twice", l->name, axis->axis[i]);
        kept[a] = true;
    }
    return true;
}

/* The statistics' shape: the kept dims of a batch of examples `in`, in order. */
static tg_shape stats_shape(const tg_shape *in, const bool *kept)
{
    tg_shape s = {.rank = 0};
    for (int i = 0; i < in->rank; i++)
        if (kept[i + 1])
            s.dims[s.rank++] = in->dims[i];
    return s;
}

/* Writes n means then n variances (float64) into the layer's two variables. */
static bool set_stats(tg_layer *l, tg_loc loc, const double *st, int64_t n)
{
    tg_scope *scope = tg_scope_begin_at(loc);
    bool ok = scope != NULL;
    for (int k = 0; ok && k < 2; k++) {
        tg_tensor *v = tg_tensor_from_at(loc, TG_F64, tg_shape_of(l->vars[k]), st + k * n);
        ok = v && tg_assign_at(loc, l->vars[k], tg_cast_at(loc, v, tg_dtype_of(l->vars[k]))) == 0;
    }
    if (scope)
        tg_scope_end_at(loc, scope);
    return ok;
}

static bool norm_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    bool kept[TG_MAX_RANK];
    if (!kept_axes(loc, l, in->rank + 1, kept))
        return false;
    tg_shape s = stats_shape(in, kept);
    int64_t n = tg__shape_size(&s);
    const double *given = l->kept;
    int64_t n_given = l->o.norm.n_values;
    if (given && n_given != 1 && n_given != n) {
        char str[TG_SHAPE_STR_MAX];
        return tg__failb(loc,
                         "Normalization \"%s\": .mean and .variance hold %lld values; inputs of example shape %s "
                         "with axis kept need 1 or %lld (one per index of the kept axes)",
                         l->name, (long long)n_given, tg__batch_shape_str(in, str, sizeof str), (long long)n);
    }
    if (!tg__layer_add_variable(l, loc, "mean", tg_init_zeros(), s, false) ||
        !tg__layer_add_variable(l, loc, "variance", tg_init_ones(), s, false))
        return false;
    *out = *in;
    if (!given)
        return true;
    double *st = malloc(sizeof(double) * (size_t)(2 * n));
    for (int64_t i = 0; st && i < n; i++) {
        st[i] = given[n_given == 1 ? 0 : i];
        st[n + i] = given[n_given + (n_given == 1 ? 0 : i)];
    }
    bool ok = st ? set_stats(l, loc, st, n) : tg__failb(loc, "Normalization \"%s\": out of memory", l->name);
    free(st);
    return ok;
}

/* The (kept) statistic shaped to broadcast against inputs of `rank`. */
static tg_tensor *broadcastable(tg_loc loc, const tg_layer *l, const tg_tensor *stat, int rank)
{
    bool kept[TG_MAX_RANK];
    kept_axes(loc, l, rank, kept);
    tg_shape s = {.rank = rank};
    for (int i = 0; i < rank; i++)
        s.dims[i] = kept[i] ? l->in_shape.dims[i - 1] : 1;
    return tg_reshape_at(loc, stat, s);
}

static tg_tensor *norm_call(tg_layer *l, tg_loc loc, const tg_tensor *x, bool training)
{
    (void)training;
    int rank = tg_rank(x);
    tg_tensor *mean = broadcastable(loc, l, l->vars[0], rank);
    tg_tensor *sd = tg_maximum_at(loc, tg_sqrt_at(loc, broadcastable(loc, l, l->vars[1], rank)),
                                  tg_scalar_like_at(loc, x, NORMALIZATION_EPSILON));
    if (l->o.norm.invert)
        return tg_add_at(loc, mean, tg_mul_at(loc, x, sd));
    return tg_div_at(loc, tg_sub_at(loc, x, mean), sd);
}

static const tg_layer_kind norm_kind = {.base_name = "normalization",
                                        .class_name = "Normalization",
                                        .autocast = true,
                                        .build = norm_build,
                                        .call = norm_call,
                                        .supports_masking = true};

tg_layer *tg_normalization_at(tg_loc loc, tg_normalization_opts o)
{
    if ((o.mean == NULL) != (o.variance == NULL))
        return tg__fail(loc, "tg_normalization: give both .mean and .variance, or neither (to adapt)");
    if (o.mean && o.n_values < 1)
        return tg__fail(loc, "tg_normalization: .n_values is %lld; say how many numbers .mean and .variance hold",
                        (long long)o.n_values);
    for (int64_t i = 0; o.mean && i < o.n_values; i++)
        if (!isfinite(o.mean[i]) || !isfinite(o.variance[i]) || o.variance[i] < 0)
            return tg__fail(loc,
                            "tg_normalization: .mean[%lld] = %g, .variance[%lld] = %g; means must be finite "
                            "and variances finite and not negative",
                            (long long)i, o.mean[i], (long long)i, o.variance[i]);
    if (o.axis.n < 0 || o.axis.n > TG_MAX_RANK)
        return tg__fail(loc, "tg_normalization: .axis lists %d axes", o.axis.n);
    if (o.axis_none && o.axis.n)
        return tg__fail(loc, "tg_normalization: .axis_none keeps no axis; leave .axis out with it");
    double *given = NULL;
    if (o.mean && !(given = malloc(sizeof(double) * (size_t)(2 * o.n_values))))
        return tg__fail(loc, "tg_normalization: out of memory");
    if (given) {
        memcpy(given, o.mean, sizeof(double) * (size_t)o.n_values);
        memcpy(given + o.n_values, o.variance, sizeof(double) * (size_t)o.n_values);
    }
    tg_layer *l = TG__LAYER_NEW(loc, &norm_kind, o);
    if (!l) {
        free(given);
        return NULL;
    }
    o.mean = o.variance = NULL; /* the copy is what the layer keeps */
    l->o.norm = o;
    l->kept = given; /* n_values means then n_values variances, or NULL */
    l->kept_free = free;
    return l;
}

/* ---- adapt ---------------------------------------------------------------------------------- */
/* For each element of x in row-major order, the index of its statistic: an odometer over
 * x's dims with a stride per dim (0 on the reduced ones). Two passes, mean then squared
 * deviations, in float64. */
static void moments(const tg_tensor *x, const bool *kept, double *st, int64_t n)
{
    int rank = tg_rank(x);
    int64_t stride[TG_MAX_RANK] = {0}, idx[TG_MAX_RANK] = {0}, s = 1;
    for (int i = rank - 1; i >= 0; i--)
        if (kept[i]) {
            stride[i] = s;
            s *= x->shape[i];
        }
    int64_t size = tg_size(x), count = size / n;
    memset(st, 0, sizeof(double) * (size_t)(2 * n));
    for (int pass = 0; pass < 2; pass++) {
        int64_t k = 0;
        memset(idx, 0, sizeof idx);
        for (int64_t e = 0; e < size; e++) {
            double v = tg__get(x, e);
            if (pass == 0)
                st[k] += v;
            else
                st[n + k] += (v - st[k]) * (v - st[k]);
            for (int d = rank - 1; d >= 0; d--) { /* next element: carry through the dims */
                k += stride[d];
                if (++idx[d] < x->shape[d])
                    break;
                k -= stride[d] * idx[d];
                idx[d] = 0;
            }
        }
        for (int64_t j = 0; j < n; j++)
            st[pass * n + j] /= (double)count;
    }
}

int tg_normalization_adapt_at(tg_loc loc, tg_layer *l, const tg_tensor *x)
{
    if (!l)
        return tg__null_arg(loc, "tg_normalization_adapt", "layer"), -1;
    if (l->kind != &norm_kind)
        return tg__failf(loc, "tg_normalization_adapt: layer \"%s\" is a %s, not a Normalization layer", l->name,
                         l->kind->class_name);
    if (!tg__check_input(loc, "tg_normalization_adapt", x, "x"))
        return -1;
    if (l->kept)
        return tg__failf(loc, "tg_normalization_adapt: Normalization \"%s\" was given its .mean and .variance",
                         l->name);
    tg_shape xs = tg_shape_of(x), ex = {.rank = xs.rank - 1};
    for (int i = 1; i < xs.rank; i++)
        ex.dims[i - 1] = xs.dims[i];
    if (xs.rank < 1 || xs.dims[0] < 1)
        return tg__failf(loc, "tg_normalization_adapt: x has no rows; adapt needs a batch of at least one example");
    int64_t bad = tg__first_nonfinite(x);
    if (bad >= 0)
        return tg__failf(loc, "tg_normalization_adapt: x holds %g at element %lld; adapt needs finite data",
                         tg__get(x, bad), (long long)bad);
    if (!l->built && !tg__layer_build(l, loc, &ex, TG_F32, 0))
        return -1;
    bool kept[TG_MAX_RANK];
    if (!kept_axes(loc, l, xs.rank, kept))
        return -1;
    bool fits = ex.rank == l->in_shape.rank;
    for (int i = 1; fits && i < xs.rank; i++)
        fits = !kept[i] || ex.dims[i - 1] == l->in_shape.dims[i - 1];
    if (!fits) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        return tg__failf(loc, "tg_normalization_adapt: Normalization \"%s\" was built for inputs %s; x is %s", l->name,
                         tg__batch_shape_str(&l->in_shape, a, sizeof a), tg__shape_str(&xs, b, sizeof b));
    }
    int64_t n = tg_size(l->vars[0]);
    double *st = malloc(sizeof(double) * (size_t)(2 * n));
    if (!st)
        return tg__failf(loc, "tg_normalization_adapt: out of memory");
    moments(x, kept, st, n);
    bool ok = set_stats(l, loc, st, n);
    free(st);
    return ok ? 0 : -1;
}
