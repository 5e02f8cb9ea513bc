/* Keras's weight constraints (keras/src/constraints/constraints.py), applied in place to
 * a variable's data: optimizers call tg__variable_apply_constraint after each update, as
 * Keras's base_optimizer.apply does `variable.assign(variable.constraint(variable))`. */
#include <math.h>
#include <stdlib.h>

#include "tensor_impl.h"

#define KERAS_EPSILON 1e-7 /* keras.backend.epsilon() */

static bool uses_norm(tg_constraint_kind k) { return k != TG_CONSTRAINT_NONE && k != TG_CONSTRAINT_NON_NEG; }

int tg__variable_set_constraint(tg_loc loc, tg_tensor *var, tg_constraint c)
{
    if ((unsigned)c.kind > TG_CONSTRAINT_MIN_MAX_NORM)
        return tg__failf(loc, "constraint of %s: unknown kind %d", var->var->name, (int)c.kind);
    if (uses_norm(c.kind)) {
        if (c.axis.n == 0)
            c.axis = (tg_axes){.n = 1}; /* Keras's default axis=0 */
        for (int i = 0; i < c.axis.n; i++) {
            int a = c.axis.axis[i];
            if (a < -var->rank || a >= var->rank)
                return tg__failf(loc, "constraint of %s: axis %d is out of range for a variable of rank %d",
                                 var->var->name, a, var->rank);
            c.axis.axis[i] = a < 0 ? a + var->rank : a;
        }
    }
    if (c.kind == TG_CONSTRAINT_MIN_MAX_NORM && c.min_value > c.max_value)
        return tg__failf(loc, "constraint of %s: MinMaxNorm's min_value %g is above its max_value %g", var->var->name,
                         c.min_value, c.max_value);
    var->var->constraint = c;
    return 0;
}

tg_constraint tg_variable_constraint(const tg_tensor *var)
{
    return tg_is_variable(var) ? var->var->constraint : (tg_constraint){0};
}

/* The index of element i among the norms: its coordinates with the reduced axes dropped. */
static int64_t norm_index(const tg_tensor *t, const bool *reduced, int64_t i)
{
    int64_t idx = 0, stride = 1;
    for (int d = t->rank - 1; d >= 0; d--) {
        int64_t coord = i % t->shape[d];
        i /= t->shape[d];
        if (!reduced[d]) {
            idx += coord * stride;
            stride *= t->shape[d];
        }
    }
    return idx;
}

static double clip(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* The factor each norm n scales its slice by. */
static double norm_factor(const tg_constraint *c, double n)
{
    switch (c->kind) {
    case TG_CONSTRAINT_MAX_NORM: return clip(n, 0, c->max_value) / (KERAS_EPSILON + n);
    case TG_CONSTRAINT_UNIT_NORM: return 1 / (KERAS_EPSILON + n);
    case TG_CONSTRAINT_MIN_MAX_NORM:
        return (c->rate * clip(n, c->min_value, c->max_value) + (1 - c->rate) * n) / (KERAS_EPSILON + n);
    default: return 1;
    }
}

static void apply_norm(tg_loc loc, tg_tensor *var, const tg_constraint *c)
{
    bool reduced[TG_MAX_RANK] = {0};
    int64_t n_norms = 1;
    for (int i = 0; i < c->axis.n; i++)
        reduced[c->axis.axis[i]] = true;
    for (int d = 0; d < var->rank; d++)
        n_norms *= reduced[d] ? 1 : var->shape[d];
    double *sq = calloc((size_t)(n_norms ? n_norms : 1), sizeof *sq);
    if (!sq) {
        tg__fail(loc, "constraint of %s: out of memory", var->var->name);
        return;
    }
    for (int64_t i = 0; i < var->size; i++) {
        double w = tg__get(var, i);
        sq[norm_index(var, reduced, i)] += w * w;
    }
    for (int64_t j = 0; j < n_norms; j++)
        sq[j] = norm_factor(c, sqrt(sq[j]));
    tg__variable_begin_write(loc, var);
    for (int64_t i = 0; i < var->size; i++)
        tg__set(var, i, tg__get(var, i) * sq[norm_index(var, reduced, i)]);
    free(sq);
}

void tg__variable_apply_constraint(tg_loc loc, tg_tensor *var)
{
    tg_constraint c = var->var->constraint;
    if (c.kind == TG_CONSTRAINT_NONE)
        return;
    if (uses_norm(c.kind)) {
        apply_norm(loc, var, &c);
        return;
    }
    tg__variable_begin_write(loc, var); /* NonNeg: w * (w >= 0) */
    for (int64_t i = 0; i < var->size; i++)
        if (!(tg__get(var, i) >= 0))
            tg__set(var, i, tg__get(var, i) * 0.0);
}
