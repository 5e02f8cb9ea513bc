/* The test toolkit's gradient checks: the tape's gradient against central finite
 * differences in float64 (of inputs: gradcheck; of variables: gradcheck_variables), and
 * an op's float32 forward against its float64 forward.
 *
 * gradcheck(name, f, xs, n, user, eps, tol) watches the float64 inputs xs, computes
 * L = sum(f(xs) * w) for a fixed random w (so no symmetry hides a wrong sign) and
 * compares dL/dxs[i] element by element with (L(x+eps) - L(x-eps)) / 2eps.
 * Relative-or-absolute tolerance: |g - n| <= tol * (1 + |n|). */
#ifndef TG_TEST_GRADCHECK_H
#define TG_TEST_GRADCHECK_H

#include <stdlib.h>

#include "check.h"

typedef tg_tensor *(*gc_fn)(tg_tensor *const *xs, int n, void *user);

#define GC_MAX_INPUTS 4

static inline double gc_loss(gc_fn f, tg_tensor *const *xs, int n, void *user, const tg_tensor *w)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *y = f(xs, n, user);
    double v = y ? tg_item(tg_sum(tg_mul(y, w))) : NAN;
    tg_scope_end(s);
    return v;
}

static inline tg_tensor *gc_weights(const tg_tensor *y, uint64_t seed)
{
    tg_rng *r = tg_rng_new(seed);
    tg_tensor *w = tg_random_uniform(r, tg_dtype_of(y), tg_shape_of(y), .minval = 0.5, .maxval = 1.5);
    tg_rng_free(r);
    return w;
}

/* Returns true when every input's gradient matches; prints the first mismatch. */
static inline bool gradcheck(const char *name, gc_fn f, tg_tensor *const *xs, int n, void *user, double eps, double tol)
{
    bool ok = true;
    tg_scope *outer = tg_scope_begin();
    tg_tape *tape = tg_tape_begin(.persistent = true);
    for (int i = 0; i < n; i++)
        tg_watch(tape, xs[i]);
    tg_tensor *y = f(xs, n, user);
    if (!y) {
        printf("  gradcheck %s: forward failed: %s\n", name, tg_last_error());
        tg_tape_free(tape);
        tg_scope_end(outer);
        return false;
    }
    tg_tensor *w = gc_weights(y, 1234);
    tg_tensor *loss = tg_sum(tg_mul(y, w));
    tg_tape_end(tape);
    tg_tensor *grads[GC_MAX_INPUTS] = {0};
    if (tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = xs, .n_sources = n,
                     .unconnected = TG_UNCONNECTED_ZERO, .out = grads) != 0) {
        printf("  gradcheck %s: gradient failed: %s\n", name, tg_last_error());
        ok = false;
    }
    for (int i = 0; ok && i < n; i++) {
        int64_t m = tg_size(xs[i]);
        double *x = malloc(sizeof(double) * (size_t)m), *g = malloc(sizeof(double) * (size_t)m);
        tg_copy_out_f64(xs[i], x, m);
        tg_copy_out_f64(grads[i], g, m);
        tg_tensor *probe[GC_MAX_INPUTS];
        memcpy(probe, xs, sizeof(tg_tensor *) * (size_t)n);
        for (int64_t k = 0; ok && k < m; k++) {
            double saved = x[k], lp, lm;
            x[k] = saved + eps;
            probe[i] = tg_tensor_from(TG_F64, tg_shape_of(xs[i]), x);
            lp = gc_loss(f, probe, n, user, w);
            x[k] = saved - eps;
            probe[i] = tg_tensor_from(TG_F64, tg_shape_of(xs[i]), x);
            lm = gc_loss(f, probe, n, user, w);
            x[k] = saved;
            double num = (lp - lm) / (2 * eps);
            if (!(fabs(g[k] - num) <= tol * (1 + fabs(num)))) {
                printf("  gradcheck %s: input %d element %lld: tape %.10g, finite difference %.10g\n", name, i,
                       (long long)k, g[k], num);
                ok = false;
            }
        }
        free(x);
        free(g);
    }
    tg_tape_free(tape);
    tg_scope_end(outer);
    return ok;
}

/* The same check for a loss of variables (a model's weights): `loss(user)` builds a scalar
 * from the float64 variables vars, which a tape watches as it reads them; the differences
 * are taken by assigning perturbed values to each variable in turn (restored after). */
typedef tg_tensor *(*gc_var_fn)(void *user);

static inline double gc_var_loss(gc_var_fn loss, void *user)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *y = loss(user);
    double v = y ? tg_item(y) : NAN;
    tg_scope_end(s);
    return v;
}

static inline bool gradcheck_variables(const char *name, gc_var_fn loss, tg_tensor *const *vars, int n, void *user,
                                       double eps, double tol)
{
    tg_tensor *g[16] = {0};
    if (n > 16) {
        printf("  gradcheck %s: %d variables, at most 16\n", name, n);
        return false;
    }
    tg_scope *s = tg_scope_begin();
    tg_tape *t = tg_tape_begin();
    tg_tensor *y = loss(user);
    tg_tape_end(t);
    bool ok = y && tg_gradients(t, .targets = &y, .n_targets = 1, .sources = vars, .n_sources = n, .out = g) == 0;
    if (!ok)
        printf("  gradcheck %s: forward or gradient failed: %s\n", name, tg_last_error() ? tg_last_error() : "?");
    for (int i = 0; ok && i < n; i++) {
        int64_t m = tg_size(vars[i]);
        double *val = malloc(sizeof(double) * (size_t)m), *grad = malloc(sizeof(double) * (size_t)m);
        ok = g[i] != NULL && tg_copy_out_f64(vars[i], val, m) == 0 && tg_copy_out_f64(g[i], grad, m) == 0;
        if (!ok)
            printf("  gradcheck %s: no gradient for variable %d\n", name, i);
        for (int64_t k = 0; ok && k < m; k++) {
            double saved = val[k], lp, lm;
            val[k] = saved + eps;
            tg_assign(vars[i], tg_tensor_from(TG_F64, tg_shape_of(vars[i]), val));
            lp = gc_var_loss(loss, user);
            val[k] = saved - eps;
            tg_assign(vars[i], tg_tensor_from(TG_F64, tg_shape_of(vars[i]), val));
            lm = gc_var_loss(loss, user);
            val[k] = saved;
            tg_assign(vars[i], tg_tensor_from(TG_F64, tg_shape_of(vars[i]), val));
            double num = (lp - lm) / (2 * eps);
            if (!(fabs(grad[k] - num) <= tol * (1 + fabs(num)))) {
                printf("  gradcheck %s: %s[%lld]: tape %.10g, finite difference %.10g\n", name,
                       tg_variable_name(vars[i]), (long long)k, grad[k], num);
                ok = false;
            }
        }
        free(val);
        free(grad);
    }
    tg_tape_free(t);
    tg_scope_end(s);
    return ok;
}

/* f on float32 copies of xs agrees with f on the float64 xs within tol. */
static inline bool f32_matches_f64(const char *name, gc_fn f, tg_tensor *const *xs, int n, void *user, double tol)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x32[GC_MAX_INPUTS];
    for (int i = 0; i < n; i++)
        x32[i] = tg_dtype_of(xs[i]) == TG_F64 ? tg_cast(xs[i], TG_F32) : xs[i];
    tg_tensor *y64 = f(xs, n, user), *y32 = f(x32, n, user);
    bool ok = y64 && y32 && tg_size(y64) == tg_size(y32) && tg_dtype_of(y32) != TG_F64;
    if (ok) {
        int64_t m = tg_size(y64);
        double *a = malloc(sizeof(double) * (size_t)m), *b = malloc(sizeof(double) * (size_t)m);
        tg_copy_out_f64(y64, a, m);
        tg_copy_out_f64(y32, b, m);
        for (int64_t k = 0; ok && k < m; k++)
            if (!(fabs(a[k] - b[k]) <= tol * (1 + fabs(a[k])))) {
                printf("  f32 vs f64 %s: element %lld: %.8g vs %.8g\n", name, (long long)k, b[k], a[k]);
                ok = false;
            }
        free(a);
        free(b);
    } else {
        printf("  f32 vs f64 %s: forward failed or dtype/size differ: %s\n", name,
               tg_last_error() ? tg_last_error() : "");
    }
    tg_scope_end(s);
    return ok;
}

/* d2y/dx2 of an element-wise f at x, through nested tapes (the inner gradient is taken
 * while the outer tape records). */
static inline tg_tensor *second_derivative(tg_tensor *(*f)(const tg_tensor *), tg_tensor *x)
{
    tg_tape *outer = tg_tape_begin();
    tg_watch(outer, x);
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, x);
    tg_tensor *y = f(x);
    tg_tape_end(inner);
    tg_tensor *g = tg_gradient(inner, y, x);
    tg_tape_end(outer);
    tg_tensor *g2 = tg_gradient(outer, g, x);
    tg_tape_free(inner);
    tg_tape_free(outer);
    return g2;
}

/* Seeded random float64 inputs in [lo, hi). */
static inline tg_tensor *gc_input(uint64_t seed, tg_shape shape, double lo, double hi)
{
    tg_rng *r = tg_rng_new(seed);
    tg_tensor *x = tg_random_uniform(r, TG_F64, shape, .minval = lo, .maxval = hi);
    tg_rng_free(r);
    return x;
}

/* Checks of one-input functions: gc_unary calls the gc_unary_fn given as `user`, and
 * gc_unary_gradient is the gradient of sum(f(x)^2 * w) taken on a tape inside, so that a
 * gradcheck of it checks the second order (the square makes it depend on the rule's
 * adjoint of the adjoint). */
typedef tg_tensor *(*gc_unary_fn)(const tg_tensor *x);

static inline tg_tensor *gc_unary(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    return ((gc_unary_fn)user)(xs[0]);
}

static inline tg_tensor *gc_unary_gradient(tg_tensor *const *xs, int n, void *user)
{
    (void)n;
    tg_tape *inner = tg_tape_begin();
    tg_watch(inner, xs[0]);
    tg_tensor *y = ((gc_unary_fn)user)(xs[0]);
    tg_tensor *loss = y ? tg_sum(tg_mul(tg_square(y), gc_weights(y, 77))) : NULL;
    tg_tape_end(inner);
    tg_tensor *g = loss ? tg_gradient(inner, loss, xs[0]) : NULL;
    tg_tape_free(inner);
    return g;
}

#endif
