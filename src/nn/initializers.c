/* Initializers with Keras 3's formulas (VarianceScaling and friends), drawn from a
 * generator seeded per variable: the same seed gives the same values. */
#include <math.h>
#include <stdlib.h>

#include "layer_impl.h"

/* Keras divides by this so that a normal truncated at two stddevs has the asked-for
 * stddev: it is the stddev of a unit normal truncated to [-2, 2]. */
#define TRUNCATION_STDDEV 0.87962566103423978

static const char *const names[TG_INIT_COUNT] = {
    [TG_INIT_DEFAULT] = "default",
    [TG_INIT_GLOROT_UNIFORM] = "glorot_uniform",
    [TG_INIT_GLOROT_NORMAL] = "glorot_normal",
    [TG_INIT_HE_UNIFORM] = "he_uniform",
    [TG_INIT_HE_NORMAL] = "he_normal",
    [TG_INIT_LECUN_UNIFORM] = "lecun_uniform",
    [TG_INIT_LECUN_NORMAL] = "lecun_normal",
    [TG_INIT_ZEROS] = "zeros",
    [TG_INIT_ONES] = "ones",
    [TG_INIT_CONSTANT] = "constant",
    [TG_INIT_RANDOM_UNIFORM] = "random_uniform",
    [TG_INIT_RANDOM_NORMAL] = "random_normal",
    [TG_INIT_TRUNCATED_NORMAL] = "truncated_normal",
    [TG_INIT_ORTHOGONAL] = "orthogonal",
};

const char *tg_initializer_name(tg_init_kind kind) { return (unsigned)kind < TG_INIT_COUNT ? names[kind] : NULL; }

void tg_initializer_fans(tg_shape shape, double *fan_in, double *fan_out)
{
    double in = 1, out = 1;
    if (shape.rank == 1) {
        in = out = (double)shape.dims[0];
    } else if (shape.rank == 2) {
        in = (double)shape.dims[0];
        out = (double)shape.dims[1];
    } else if (shape.rank > 2) {
        double field = 1;
        for (int i = 0; i < shape.rank - 2; i++)
            field *= (double)shape.dims[i];
        in = (double)shape.dims[shape.rank - 2] * field;
        out = (double)shape.dims[shape.rank - 1] * field;
    }
    if (fan_in)
        *fan_in = in;
    if (fan_out)
        *fan_out = out;
}

typedef enum { FAN_IN, FAN_AVG } fan_mode;

/* Keras's VarianceScaling: scale / max(1, fan), then a uniform or truncated normal. */
static tg_tensor *variance_scaling(tg_loc loc, tg_rng *rng, tg_dtype dtype, tg_shape shape, double scale, fan_mode mode,
                                   bool normal)
{
    double fan_in, fan_out;
    tg_initializer_fans(shape, &fan_in, &fan_out);
    double fan = mode == FAN_IN ? fan_in : (fan_in + fan_out) / 2.0;
    scale /= fmax(1.0, fan);
    if (normal)
        return tg_truncated_normal_at(loc, rng, dtype, shape,
                                      (tg_random_opts){.stddev = sqrt(scale) / TRUNCATION_STDDEV});
    double limit = sqrt(3.0 * scale);
    return tg_random_uniform_at(loc, rng, dtype, shape, (tg_random_opts){.minval = -limit, .maxval = limit});
}

/* Keras's Orthogonal: a normal matrix of (max(rows, cols), min(rows, cols)), rows the
 * product of every dim but the last, made orthonormal column by column (Gram-Schmidt,
 * twice for accuracy: the Q of its QR with R's diagonal positive, which is what Keras's
 * sign correction makes of TF's QR), transposed when rows < cols, times the gain. */
static tg_tensor *orthogonal(tg_loc loc, tg_rng *rng, tg_dtype dtype, tg_shape shape, double gain)
{
    int64_t cols = shape.rank ? shape.dims[shape.rank - 1] : 1, rows = cols ? tg__shape_size(&shape) / cols : 0;
    int64_t m = rows > cols ? rows : cols, n = rows > cols ? cols : rows;
    tg_tensor *a = tg_random_normal_at(loc, rng, TG_F64, TG_SHAPE(m, n), (tg_random_opts){.stddev = 1.0});
    double *q = a ? malloc(sizeof(double) * (size_t)(m * n + 1)) : NULL;
    if (!q)
        return a ? tg__fail(loc, "tg_initialize: out of memory") : NULL;
    tg_copy_out_f64_at(loc, a, q, m * n);
    for (int64_t j = 0; j < n; j++) { /* column j of q, orthogonal to the columns before */
        for (int pass = 0; pass < 2; pass++)
            for (int64_t k = 0; k < j; k++) {
                double dot = 0;
                for (int64_t i = 0; i < m; i++)
                    dot += q[i * n + k] * q[i * n + j];
                for (int64_t i = 0; i < m; i++)
                    q[i * n + j] -= dot * q[i * n + k];
            }
        double norm = 0;
        for (int64_t i = 0; i < m; i++)
            norm += q[i * n + j] * q[i * n + j];
        norm = sqrt(norm);
        for (int64_t i = 0; i < m; i++)
            q[i * n + j] = norm > 0 ? q[i * n + j] / norm : 0;
    }
    double *out = malloc(sizeof(double) * (size_t)(m * n + 1));
    for (int64_t i = 0; out && i < rows; i++) /* (rows, cols): q itself, or its transpose */
        for (int64_t j = 0; j < cols; j++)
            out[i * cols + j] = gain * (rows >= cols ? q[i * n + j] : q[j * n + i]);
    tg_tensor *t = out ? tg_cast_at(loc, tg_tensor_from_at(loc, TG_F64, shape, out), dtype)
                       : tg__fail(loc, "tg_initialize: out of memory");
    free(q);
    free(out);
    return t;
}

static tg_tensor *draw(tg_loc loc, tg_initializer in, tg_rng *rng, tg_dtype dtype, tg_shape shape)
{
    switch (in.kind) {
    case TG_INIT_DEFAULT:
    case TG_INIT_GLOROT_UNIFORM: return variance_scaling(loc, rng, dtype, shape, 1.0, FAN_AVG, false);
    case TG_INIT_GLOROT_NORMAL: return variance_scaling(loc, rng, dtype, shape, 1.0, FAN_AVG, true);
    case TG_INIT_HE_UNIFORM: return variance_scaling(loc, rng, dtype, shape, 2.0, FAN_IN, false);
    case TG_INIT_HE_NORMAL: return variance_scaling(loc, rng, dtype, shape, 2.0, FAN_IN, true);
    case TG_INIT_LECUN_UNIFORM: return variance_scaling(loc, rng, dtype, shape, 1.0, FAN_IN, false);
    case TG_INIT_LECUN_NORMAL: return variance_scaling(loc, rng, dtype, shape, 1.0, FAN_IN, true);
    case TG_INIT_RANDOM_UNIFORM:
        return tg_random_uniform_at(loc, rng, dtype, shape, (tg_random_opts){.minval = in.minval, .maxval = in.maxval});
    case TG_INIT_RANDOM_NORMAL:
        return tg_random_normal_at(loc, rng, dtype, shape, (tg_random_opts){.mean = in.mean, .stddev = in.stddev});
    case TG_INIT_TRUNCATED_NORMAL:
        return tg_truncated_normal_at(loc, rng, dtype, shape, (tg_random_opts){.mean = in.mean, .stddev = in.stddev});
    case TG_INIT_ORTHOGONAL: return orthogonal(loc, rng, dtype, shape, in.value != 0 ? in.value : 1.0);
    default: return NULL;
    }
}

tg_tensor *tg_initialize_at(tg_loc loc, tg_initializer in, tg_dtype dtype, tg_shape shape, uint64_t seed)
{
    if ((unsigned)in.kind >= TG_INIT_COUNT)
        return tg__fail(loc,
                        "tg_initialize: initializer kind %d is not a tg_init_kind "
                        "(use tg_init_glorot_uniform(), tg_init_zeros(), ...)",
                        (int)in.kind);
    if (shape.rank < 0 || shape.rank > TG_MAX_RANK)
        return tg__fail(loc, "tg_initialize: shape rank %d is outside [0, %d]", shape.rank, TG_MAX_RANK);
    switch (in.kind) {
    case TG_INIT_ZEROS: return tg_fill_at(loc, dtype, shape, 0.0);
    case TG_INIT_ONES: return tg_fill_at(loc, dtype, shape, 1.0);
    case TG_INIT_CONSTANT: return tg_fill_at(loc, dtype, shape, in.value);
    default: break;
    }
    if (!tg_dtype_is_float(dtype))
        return tg__fail(loc, "tg_initialize: %s needs a float dtype, not %s", names[in.kind], tg_dtype_name(dtype));
    tg_rng *rng = tg_rng_new(seed);
    if (!rng)
        return NULL;
    tg_tensor *t = draw(loc, in, rng, dtype, shape);
    tg_rng_free(rng);
    return t;
}
