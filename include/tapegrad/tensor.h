/* tapegrad/tensor.h: tensors, memory scopes, random generators and variables.
 *
 * A tensor made by any call belongs to the innermost open scope and is freed, with
 * every other tensor of that scope, when the scope ends. Using it afterwards is
 * reported as an error, not undefined behaviour. Variables live outside scopes until
 * tg_variable_free. */
#ifndef TAPEGRAD_TENSOR_H
#define TAPEGRAD_TENSOR_H

#include <stdio.h>

#include "base.h"

TG_BEGIN_DECLS

typedef struct tg_tensor tg_tensor;
typedef struct tg_scope tg_scope;
typedef struct tg_rng tg_rng;

/* ---- scopes ---------------------------------------------------------------------- */
tg_scope *tg_scope_begin_at(tg_loc loc);
int tg_scope_end_at(tg_loc loc, tg_scope *scope); /* must be the innermost open scope */
#define tg_scope_begin()    tg_scope_begin_at(TG_LOC)
#define tg_scope_end(scope) tg_scope_end_at(TG_LOC, scope)

/* ---- creation -------------------------------------------------------------------- */
/* Copies `data` (laid out in row-major order, of the given dtype). */
tg_tensor *tg_tensor_from_at(tg_loc loc, tg_dtype dtype, tg_shape shape, const void *data);
tg_tensor *tg_scalar_at(tg_loc loc, tg_dtype dtype, double value);
tg_tensor *tg_fill_at(tg_loc loc, tg_dtype dtype, tg_shape shape, double value);
tg_tensor *tg_arange_at(tg_loc loc, tg_dtype dtype, double start, double stop, double step);
tg_tensor *tg_eye_at(tg_loc loc, tg_dtype dtype, int64_t n);
/* A scalar of x's dtype: for mixing C numbers into an expression, as TF does with
 * Python numbers. */
tg_tensor *tg_scalar_like_at(tg_loc loc, const tg_tensor *x, double value);
tg_tensor *tg_zeros_like_at(tg_loc loc, const tg_tensor *x);
tg_tensor *tg_ones_like_at(tg_loc loc, const tg_tensor *x);

#define tg_tensor_from(dtype, shape, data)  tg_tensor_from_at(TG_LOC, dtype, shape, data)
#define tg_from_f32(shape, ...)             tg_tensor_from_at(TG_LOC, TG_F32, shape, (const float[]){__VA_ARGS__})
#define tg_from_f64(shape, ...)             tg_tensor_from_at(TG_LOC, TG_F64, shape, (const double[]){__VA_ARGS__})
#define tg_from_i32(shape, ...)             tg_tensor_from_at(TG_LOC, TG_I32, shape, (const int32_t[]){__VA_ARGS__})
#define tg_from_i64(shape, ...)             tg_tensor_from_at(TG_LOC, TG_I64, shape, (const int64_t[]){__VA_ARGS__})
#define tg_scalar(value)                    tg_scalar_at(TG_LOC, TG_F32, value)
#define tg_scalar_of(dtype, value)          tg_scalar_at(TG_LOC, dtype, value)
#define tg_scalar_like(x, value)            tg_scalar_like_at(TG_LOC, x, value)
#define tg_zeros(dtype, shape)              tg_fill_at(TG_LOC, dtype, shape, 0.0)
#define tg_ones(dtype, shape)               tg_fill_at(TG_LOC, dtype, shape, 1.0)
#define tg_fill(dtype, shape, value)        tg_fill_at(TG_LOC, dtype, shape, value)
#define tg_arange(dtype, start, stop, step) tg_arange_at(TG_LOC, dtype, start, stop, step)
#define tg_eye(dtype, n)                    tg_eye_at(TG_LOC, dtype, n)
#define tg_zeros_like(x)                    tg_zeros_like_at(TG_LOC, x)
#define tg_ones_like(x)                     tg_ones_like_at(TG_LOC, x)

/* ---- random: explicit, seeded generators (no global RNG) --------------------------- */
tg_rng *tg_rng_new(uint64_t seed);
void tg_rng_free(tg_rng *rng);
uint64_t tg_rng_next(tg_rng *rng);    /* 64 random bits */
double tg_rng_uniform01(tg_rng *rng); /* [0, 1) */

typedef struct tg_random_opts {
    double mean, stddev;   /* normal, truncated normal (defaults 0, 1) */
    double minval, maxval; /* uniform (defaults 0, 1) */
} tg_random_opts;
tg_tensor *tg_random_normal_at(tg_loc loc, tg_rng *rng, tg_dtype dtype, tg_shape shape, tg_random_opts o);
tg_tensor *tg_random_uniform_at(tg_loc loc, tg_rng *rng, tg_dtype dtype, tg_shape shape, tg_random_opts o);
/* Normal values redrawn until within two standard deviations of the mean, as TF does. */
tg_tensor *tg_truncated_normal_at(tg_loc loc, tg_rng *rng, tg_dtype dtype, tg_shape shape, tg_random_opts o);
#define TG__RANDOM_OPTS(...) TG__OPTS(tg_random_opts, .stddev = 1, .maxval = 1, __VA_ARGS__)
#define tg_random_normal(rng, dtype, shape, ...) \
    tg_random_normal_at(TG_LOC, rng, dtype, shape, TG__RANDOM_OPTS(__VA_ARGS__))
#define tg_random_uniform(rng, dtype, shape, ...) \
    tg_random_uniform_at(TG_LOC, rng, dtype, shape, TG__RANDOM_OPTS(__VA_ARGS__))
#define tg_truncated_normal(rng, dtype, shape, ...) \
    tg_truncated_normal_at(TG_LOC, rng, dtype, shape, TG__RANDOM_OPTS(__VA_ARGS__))

/* ---- inspection ------------------------------------------------------------------ */
tg_dtype tg_dtype_of(const tg_tensor *t);
int tg_rank(const tg_tensor *t);
tg_shape tg_shape_of(const tg_tensor *t);
int64_t tg_dim(const tg_tensor *t, int axis); /* negative axes count from the end */
int64_t tg_size(const tg_tensor *t);          /* number of elements */
bool tg_is_alive(const tg_tensor *t);         /* false once its scope has ended */
tg_loc tg_tensor_loc(const tg_tensor *t);     /* the user's line that made it */

/* Copies the elements out in the tensor's own dtype; `bytes` must hold them all.
 * Returns 0, or -1 with an error. Values that leave tapegrad carry no gradient: each
 * copy keeps the caller's line, so a diagnosis can name it (TF's `.numpy()`). */
int tg_copy_out_at(tg_loc loc, const tg_tensor *t, void *dst, size_t bytes);
/* Copies the elements out converted to double. Returns 0 or -1. */
int tg_copy_out_f64_at(tg_loc loc, const tg_tensor *t, double *dst, int64_t count);
/* The value of a one-element tensor as double (NaN with an error otherwise). */
double tg_item_at(tg_loc loc, const tg_tensor *t);
#define tg_copy_out(t, dst, bytes)     tg_copy_out_at(TG_LOC, t, dst, bytes)
#define tg_copy_out_f64(t, dst, count) tg_copy_out_f64_at(TG_LOC, t, dst, count)
#define tg_item(t)                     tg_item_at(TG_LOC, t)

/* Numpy-like text: "tg.Tensor([[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)". */
int tg_format(const tg_tensor *t, char *buf, size_t size); /* snprintf-like */
void tg_fprint(FILE *out, const tg_tensor *t);
#define tg_print(t) tg_fprint(stdout, t)

/* ---- variables ------------------------------------------------------------------- */
typedef struct tg_variable_opts {
    const char *name; /* default "Variable" */
    bool trainable;   /* default true */
} tg_variable_opts;
/* A variable with a copy of `initial`'s value; its dtype and shape are fixed. */
tg_tensor *tg_variable_at(tg_loc loc, const tg_tensor *initial, tg_variable_opts o);
#define tg_variable(initial, ...) \
    tg_variable_at(TG_LOC, initial, TG__OPTS(tg_variable_opts, .name = "Variable", .trainable = true, __VA_ARGS__))
/* Frees a variable (NULL: nothing). Anything else, or a variable already freed, is an
 * error (tg_last_error) that frees nothing. */
void tg_variable_free_at(tg_loc loc, tg_tensor *var);
#define tg_variable_free(var) tg_variable_free_at(TG_LOC, var)

bool tg_is_variable(const tg_tensor *t);
const char *tg_variable_name(const tg_tensor *var);
bool tg_variable_trainable(const tg_tensor *var);
int tg_variable_set_trainable(tg_tensor *var, bool trainable);
uint64_t tg_variable_version(const tg_tensor *var); /* bumped by every assign */

/* Keras's weight constraints (keras.constraints), projections that optimizers apply to a
 * variable after each update of it (tg_apply_gradients, fit): layers set them from their
 * kernel_constraint / bias_constraint options. Norms run over `axis` (no axes given: axis
 * 0, Keras's default; a Conv2D kernel takes TG_AXES(0, 1, 2)), with Keras's epsilon 1e-7:
 *   MaxNorm:    w * clip(n, 0, max_value) / (1e-7 + n)
 *   NonNeg:     w * (w >= 0)
 *   UnitNorm:   w / (1e-7 + n)
 *   MinMaxNorm: w * (rate * clip(n, min_value, max_value) + (1 - rate) * n) / (1e-7 + n)
 * {0} is none. */
typedef enum tg_constraint_kind {
    TG_CONSTRAINT_NONE = 0,
    TG_CONSTRAINT_MAX_NORM,
    TG_CONSTRAINT_NON_NEG,
    TG_CONSTRAINT_UNIT_NORM,
    TG_CONSTRAINT_MIN_MAX_NORM
} tg_constraint_kind;
typedef struct tg_constraint {
    tg_constraint_kind kind;
    double max_value, min_value, rate;
    tg_axes axis;
} tg_constraint;
#define tg_max_norm(...)  TG__OPTS(tg_constraint, .kind = TG_CONSTRAINT_MAX_NORM, .max_value = 2, __VA_ARGS__)
#define tg_non_neg()      ((tg_constraint){.kind = TG_CONSTRAINT_NON_NEG})
#define tg_unit_norm(...) TG__OPTS(tg_constraint, .kind = TG_CONSTRAINT_UNIT_NORM, __VA_ARGS__)
#define tg_min_max_norm(...) \
    TG__OPTS(tg_constraint, .kind = TG_CONSTRAINT_MIN_MAX_NORM, .max_value = 1, .rate = 1, __VA_ARGS__)
/* The variable's constraint ({0}: none). */
tg_constraint tg_variable_constraint(const tg_tensor *var);

/* Not differentiable, as in TF. Tensors already read from the variable keep the value
 * they read. Return 0, or -1 with an error (dtype or shape that differs). */
int tg_assign_at(tg_loc loc, tg_tensor *var, const tg_tensor *value);
int tg_assign_add_at(tg_loc loc, tg_tensor *var, const tg_tensor *delta);
int tg_assign_sub_at(tg_loc loc, tg_tensor *var, const tg_tensor *delta);
#define tg_assign(var, value)     tg_assign_at(TG_LOC, var, value)
#define tg_assign_add(var, delta) tg_assign_add_at(TG_LOC, var, delta)
#define tg_assign_sub(var, delta) tg_assign_sub_at(TG_LOC, var, delta)

TG_END_DECLS
#endif
