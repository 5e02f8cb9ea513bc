/* Float32 tanh and logistic as TensorFlow's CPU kernels compute them: Eigen 3.4's
 * rational approximations (generic_fast_tanh_float in Eigen/src/Core/MathFunctionsImpl.h;
 * scalar_logistic_op<float> in Eigen/src/Core/functors/UnaryFunctors.h), which
 * tf.math.tanh, tf.math.sigmoid and Keras's LSTM run on float32. Written as plain
 * expressions, they vectorise in a TG_VECTOR_CLONES loop (no call, no branch).
 *
 * This is Eigen's path for a build without FMA (the clamps 7.90531110763549805 and
 * 15.6437711715698242, products and sums rounded apart), because tapegrad is compiled
 * with -ffp-contract=off so that every clone rounds alike; Eigen's FMA path differs by
 * its rounding. Error against float64 libm, measured over the whole float32 range in
 * tests/test_fastmath.c: tanh within 7 ulp (6.03 the worst seen; |x| < 0.0004 returns x,
 * |x| >= 7.905 returns +-1); the logistic within 1.9e-7 absolute (relative: up to 1.2e-3
 * near x = -9, where its value is 1.2e-4). Below -9 the logistic is exp(x), as Eigen's
 * (relative error e^x <= 1.3e-4), computed by the caller's tail pass:
 * tg__logistic_tail_f32 says whether an element needs it. NaN gives NaN. */
#ifndef TG_KERNELS_FASTMATH_H
#define TG_KERNELS_FASTMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Products and sums rounded apart in any file that includes this (the library is built
 * with -ffp-contract=off; clang otherwise fuses them, even when it folds constants). */
#if defined(__clang__)
#define TG__ROUND_APART _Pragma("clang fp contract(off)")
#else
#define TG__ROUND_APART
#endif

/* take ? a : b, as bits: both sides are computed, so a loop with it stays one vectorised
 * block (a ternary lets the compiler move the division into a branch it then cannot
 * vectorise without -fno-trapping-math). */
static inline float tg__select_f32(bool take, float a, float b)
{
    uint32_t ia, ib, m = -(uint32_t)take;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    ia = (ia & m) | (ib & ~m);
    memcpy(&a, &ia, sizeof a);
    return a;
}

static inline float tg__tanh_f32(float a)
{
    TG__ROUND_APART
    const float clamp = 7.90531110763549805f;
    float x = tg__select_f32(a > clamp, clamp, a); /* NaN stays NaN */
    x = tg__select_f32(x < -clamp, -clamp, x);
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float r = p / q;
    return tg__select_f32(fabsf(a) < 0.0004f, a, r);
}

/* The logistic above x = -9 (below it, see tg__logistic_tail_f32). */
static inline float tg__logistic_f32(float a)
{
    TG__ROUND_APART
    const float upper = 15.6437711715698242f; /* the approximation is 1 from here */
    float x = tg__select_f32(a > upper, upper, a);
    x = tg__select_f32(x < -9.0f, -9.0f, x);
    float x2 = x * x;
    float p = 4.37031012579801e-11f;
    p = p * x2 + 1.15627324459942e-07f;
    p = p * x2 + 6.08574864600143e-05f;
    p = p * x2 + 8.51377133304701e-03f;
    p = p * x2 + 2.48287947061529e-01f;
    p = p * x;
    float q = 6.10247389755681e-13f;
    q = q * x2 + 5.76102136993427e-09f;
    q = q * x2 + 6.29106785017040e-06f;
    q = q * x2 + 1.70198817374094e-03f;
    q = q * x2 + 1.16817656904453e-01f;
    q = q * x2 + 9.93151921023180e-01f;
    float r = p / q + 0.5f;
    return tg__select_f32(a != a, a, r);
}

/* Whether a is below -9, where Eigen's logistic is exp(a). */
static inline bool tg__logistic_tail_f32(float a) { return a < -9.0f; }

/* The logistic for any a (the tail through libm's expf: not vectorised). */
static inline float tg__logistic_any_f32(float a) { return a < -9.0f ? expf(a) : tg__logistic_f32(a); }

#endif
