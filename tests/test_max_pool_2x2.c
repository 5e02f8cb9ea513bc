/* max_pool2d's 2x2 stride-2 kernels (Keras's MaxPooling2D(2)), forward and gradient, bit
 * for bit against the rules written out by hand here: the window's maximum with NaN
 * winning (the last NaN of the window in row-major order), and the gradient 0 + dy at the
 * window's first maximum (none for a NaN maximum), 0 elsewhere and on the odd row and
 * column no window covers. Inputs with many ties, signed zeros and NaN; odd and even
 * heights and widths; channel counts that do and do not fill a vector. */
#include <stdint.h>

#include "check.h"

static uint32_t rng_state = 12345;

static uint32_t next_random(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Few distinct values (ties), both zeros, and now and then a NaN. */
static float tie_value(void)
{
    uint32_t r = next_random() % 16;
    if (r == 0)
        return NAN;
    if (r == 1)
        return -0.0f;
    return (float)(r % 5) - 2.0f;
}

static uint32_t bits(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static void check_case(int64_t n, int64_t h, int64_t w, int64_t c)
{
    tg_scope *s = tg_scope_begin();
    int64_t oh = h / 2, ow = w / 2, size = n * h * w * c, osize = n * oh * ow * c;
    float *x = malloc(sizeof(float) * (size_t)size), *dy = malloc(sizeof(float) * (size_t)osize);
    float *want_y = malloc(sizeof(float) * (size_t)osize), *want_dx = calloc((size_t)size, sizeof(float));
    float *got_y = malloc(sizeof(float) * (size_t)osize), *got_dx = malloc(sizeof(float) * (size_t)size);
    REQUIRE(x && dy && want_y && want_dx && got_y && got_dx);
    for (int64_t i = 0; i < size; i++)
        x[i] = tie_value();
    for (int64_t i = 0; i < osize; i++)
        dy[i] = i % 7 == 0 ? -0.0f : (float)(next_random() % 1000) / 64.0f - 7.0f;
    for (int64_t b = 0; b < n; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t q = 0; q < c; q++) {
                    int64_t cell = ((b * oh + oy) * ow + ox) * c + q, at[4];
                    for (int k = 0; k < 4; k++)
                        at[k] = ((b * h + 2 * oy + k / 2) * w + 2 * ox + k % 2) * c + q;
                    float m = -INFINITY;
                    for (int k = 0; k < 4; k++)
                        if (isnan(x[at[k]]) || x[at[k]] > m)
                            m = x[at[k]];
                    want_y[cell] = m;
                    for (int k = 0; k < 4; k++)
                        if (x[at[k]] == m) {
                            want_dx[at[k]] = 0.0f + dy[cell];
                            break;
                        }
                }
    tg_tensor *xt = tg_tensor_from(TG_F32, TG_SHAPE(n, h, w, c), x);
    tg_tape *t = tg_tape_begin();
    tg_watch(t, xt);
    tg_tensor *y = tg_max_pool2d(xt);
    tg_tensor *loss = tg_sum(tg_mul(y, tg_tensor_from(TG_F32, TG_SHAPE(n, oh, ow, c), dy)));
    tg_tape_end(t);
    tg_tensor *dx = tg_gradient(t, loss, xt);
    tg_tape_free(t);
    REQUIRE(dx && tg_copy_out(y, got_y, sizeof(float) * (size_t)osize) == 0 &&
            tg_copy_out(dx, got_dx, sizeof(float) * (size_t)size) == 0);
    int64_t bad_y = 0, bad_dx = 0;
    for (int64_t i = 0; i < osize; i++)
        bad_y += bits(got_y[i]) != bits(want_y[i]);
    for (int64_t i = 0; i < size; i++)
        bad_dx += bits(got_dx[i]) != bits(want_dx[i]);
    if (bad_y || bad_dx)
        printf("  [%lld, %lld, %lld, %lld]: %lld outputs and %lld gradients differ\n", (long long)n, (long long)h,
               (long long)w, (long long)c, (long long)bad_y, (long long)bad_dx);
    CHECK(bad_y == 0);
    CHECK(bad_dx == 0);
    free(x), free(dy), free(want_y), free(want_dx), free(got_y), free(got_dx);
    tg_scope_end(s);
}

static void test_shapes(void)
{
    check_case(2, 5, 7, 3);
    check_case(1, 4, 4, 37);
    check_case(3, 6, 9, 1);
    check_case(32, 26, 26, 32); /* the benchmark CNN's pool */
}

int main(void)
{
    RUN(test_shapes);
    return TEST_SUMMARY();
}
