/* bfloat16 matrix products (src/kernels/gemm_bf16.c, tg_matmul of bfloat16): against
 * PyTorch's bfloat16 torch.matmul (tests/fixtures/bf16_matmul_golden.txt, from
 * tools/make_bf16_fixtures.py) and against the exact sums, the three paths (oneDNN's
 * matmul, the AVX512-BF16 kernel, float32 GEMM on widened operands) against each other,
 * the AVX512-BF16 kernel bit for bit against a scalar model of vdpbf16ps, and the same
 * bits under 1 and 2 threads.
 *
 * The bound. Every path multiplies bfloat16 values exactly (8-bit significands: a product
 * fits float32's 24 bits) and sums the products in float32 in some order, then rounds the
 * sum once to bfloat16. A float32 sum of K terms in any order is within
 * g(K) = (K - 1) u / (1 - (K - 1) u) of sum |a b| of the exact sum (u = 2^-24), and
 * rounding to bfloat16 moves it by at most half a bfloat16 ulp, 2^-8 of its magnitude. So
 * each result r satisfies |r - exact| <= 2^-8 (|exact| + g S) + g S, S = sum |a b|, and two
 * results of different orders differ by at most 2 g S plus one bfloat16 ulp of the larger
 * (two roundings of sums 2 g S apart land on the same or neighbouring bfloat16 values). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "fixture.h"
#include "kernels/gemm.h"
#include "kernels/onednn.h"
#include "kernels/parallel.h"
#include "tensor/tensor_impl.h"

static double f(uint16_t b) { return (double)tg__f32_from_bf16(b); }

static uint16_t op_at(const uint16_t *x, bool t, int64_t ld, int64_t r, int64_t c)
{
    return t ? x[c * ld + r] : x[r * ld + c];
}

static double gamma_k(int64_t k) { return (double)(k - 1) * 0x1p-24 / (1 - (double)(k - 1) * 0x1p-24); }

/* One bfloat16 ulp at the magnitude of v (normal range). */
static double ulp_bf16(double v)
{
    int e;
    frexp(fabs(v), &e);
    return ldexp(1.0, e - 8);
}

typedef struct product {
    int64_t m, k, n;
    bool ta, tb;
    uint16_t *a, *b; /* as stored */
    double *exact, *sabs;
} product;

static void exact_sums(product *p)
{
    int64_t lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
    p->exact = calloc((size_t)(p->m * p->n), sizeof(double));
    p->sabs = calloc((size_t)(p->m * p->n), sizeof(double));
    for (int64_t i = 0; i < p->m; i++)
        for (int64_t j = 0; j < p->n; j++)
            for (int64_t t = 0; t < p->k; t++) {
                double v = f(op_at(p->a, p->ta, lda, i, t)) * f(op_at(p->b, p->tb, ldb, t, j));
                p->exact[i * p->n + j] += v; /* exact enough: 16-bit products in 53 bits */
                p->sabs[i * p->n + j] += fabs(v);
            }
}

/* Every element of c within the bound of the exact sum; returns the count outside. */
static int outside_exact_bound(const product *p, const uint16_t *c, const char *what)
{
    int bad = 0;
    double g = gamma_k(p->k);
    for (int64_t i = 0; i < p->m * p->n; i++) {
        double r = f(c[i]), e = p->exact[i], bound = 0x1p-8 * (fabs(e) + g * p->sabs[i]) + g * p->sabs[i];
        if (!(fabs(r - e) <= bound) && bad++ < 3)
            printf("  %s [%lld]: %.9g, exact %.9g, bound %.3g\n", what, (long long)i, r, e, bound);
    }
    return bad;
}

/* Two results of different summation orders: within 2 g S + one ulp. Counts the equal bits. */
static int outside_pair_bound(const product *p, const uint16_t *x, const uint16_t *y, const char *what, int *equal)
{
    int bad = 0;
    double g = gamma_k(p->k);
    *equal = 0;
    for (int64_t i = 0; i < p->m * p->n; i++) {
        double a = f(x[i]), b = f(y[i]);
        double bound = 2 * g * p->sabs[i] + ulp_bf16(fmax(fabs(a), fabs(b)));
        *equal += x[i] == y[i];
        if (!(fabs(a - b) <= bound) && bad++ < 3)
            printf("  %s [%lld]: %.9g against %.9g, bound %.3g\n", what, (long long)i, a, b, bound);
    }
    return bad;
}

static int read_hex(fx_reader *r, const char *tag, uint16_t *out, int64_t n)
{
    int64_t got = 0;
    char t[8], *rest, word[16];
    while (got < n && fx_next(r, t, sizeof t, &rest)) {
        if (strcmp(t, tag))
            return fx_fail(r, "expected `%s` lines", tag), -1;
        while (got < n && fx_word(&rest, word, sizeof word))
            out[got++] = (uint16_t)strtoul(word, NULL, 16);
    }
    return got == n ? 0 : -1;
}

/* tg_matmul on the stored operands (transposes as flags), its bits into c. */
static bool run_matmul(const product *p, uint16_t *c)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_tensor_from(TG_BF16, p->ta ? TG_SHAPE(p->k, p->m) : TG_SHAPE(p->m, p->k), p->a);
    tg_tensor *b = tg_tensor_from(TG_BF16, p->tb ? TG_SHAPE(p->n, p->k) : TG_SHAPE(p->k, p->n), p->b);
    tg_tensor *y = tg_matmul(a, b, .transpose_a = p->ta, .transpose_b = p->tb);
    bool ok = y && tg_dtype_of(y) == TG_BF16 && tg_copy_out(y, c, sizeof *c * (size_t)(p->m * p->n)) == 0;
    tg_scope_end(s);
    return ok;
}

typedef bool (*gemm_fn)(bool, bool, int64_t, int64_t, int64_t, const uint16_t *, int64_t, const uint16_t *, int64_t,
                        uint16_t *, int64_t);

static bool run_path(gemm_fn fn, const product *p, uint16_t *c)
{
    return fn(p->ta, p->tb, p->m, p->n, p->k, p->a, p->ta ? p->m : p->k, p->b, p->tb ? p->k : p->n, c, p->n);
}

/* vdpbf16ps as Intel's pseudocode writes it: per pair, the odd product then the even one
 * added to the float32 lane, each addition rounded; then one rounding to bfloat16. */
static void dpbf16_model(const product *p, uint16_t *c)
{
    int64_t lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
    for (int64_t i = 0; i < p->m; i++)
        for (int64_t j = 0; j < p->n; j++) {
            float acc = 0;
            for (int64_t t = 0; t < p->k; t += 2) {
                if (t + 1 < p->k) {
                    volatile float odd =
                        (float)(f(op_at(p->a, p->ta, lda, i, t + 1)) * f(op_at(p->b, p->tb, ldb, t + 1, j)));
                    acc += odd;
                }
                volatile float even = (float)(f(op_at(p->a, p->ta, lda, i, t)) * f(op_at(p->b, p->tb, ldb, t, j)));
                acc += even;
            }
            c[i * p->n + j] = tg__bf16_from_f32(acc);
        }
}

/* Every path on p: against the exact sums, against each other, and the kernel against
 * its model. `torch` (or NULL): PyTorch's result. */
static void check_paths(const product *p, const uint16_t *torch)
{
    size_t mn = (size_t)(p->m * p->n);
    uint16_t *via_op = calloc(mn, 2), *wide = calloc(mn, 2), *dp = calloc(mn, 2), *dnn = calloc(mn, 2),
             *model = calloc(mn, 2);
    REQUIRE(via_op && wide && dp && dnn && model);
    char what[96];
    snprintf(what, sizeof what, "%lldx%lldx%lld ta=%d tb=%d", (long long)p->m, (long long)p->k, (long long)p->n, p->ta,
             p->tb);
    int equal;
    CHECK(run_matmul(p, via_op));
    CHECK(outside_exact_bound(p, via_op, what) == 0);
    if (torch) {
        CHECK(outside_exact_bound(p, torch, "torch") == 0); /* the bound holds for PyTorch's order too */
        CHECK(outside_pair_bound(p, via_op, torch, what, &equal) == 0);
    }
    CHECK(run_path(tg__gemm_bf16_widened, p, wide));
    CHECK(outside_exact_bound(p, wide, "widened") == 0);
    CHECK(outside_pair_bound(p, wide, via_op, "widened against tg_matmul", &equal) == 0);
    if (run_path(tg__gemm_bf16_dpbf16, p, dp)) {
        dpbf16_model(p, model);
        CHECK(memcmp(dp, model, mn * 2) == 0); /* bit for bit: the same order of float32 additions */
        CHECK(outside_pair_bound(p, dp, wide, "avx512_bf16 against widened", &equal) == 0);
    }
    if (tg__onednn_matmul_bf16(p->ta, p->tb, p->m, p->n, p->k, p->a, p->ta ? p->m : p->k, p->b, p->tb ? p->k : p->n,
                               dnn, p->n)) {
        CHECK(outside_exact_bound(p, dnn, "onednn") == 0);
        CHECK(outside_pair_bound(p, dnn, wide, "onednn against widened", &equal) == 0);
        if (run_path(tg__gemm_bf16_dpbf16, p, dp)) {
            CHECK(outside_pair_bound(p, dnn, dp, "onednn against avx512_bf16", &equal) == 0);
            if (equal != (int)mn)
                printf("  %s: oneDNN and the AVX512-BF16 kernel agree on %d of %zu bits\n", what, equal, mn);
        }
    }
    free(via_op), free(wide), free(dp), free(dnn), free(model);
}

static void test_against_pytorch(void)
{
    static fx_reader r;
    REQUIRE(fx_open(&r, "bf16_matmul_golden.txt", "tools/make_bf16_fixtures.py"));
    char tag[8], *rest;
    int cases = 0;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        int m, k, n, ta, tb;
        REQUIRE(!strcmp(tag, "case") && fx_int(&rest, &m) && fx_int(&rest, &k) && fx_int(&rest, &n) &&
                fx_int(&rest, &ta) && fx_int(&rest, &tb));
        product p = {.m = m, .k = k, .n = n, .ta = ta, .tb = tb};
        p.a = malloc(2 * (size_t)(m * k)), p.b = malloc(2 * (size_t)(k * n));
        uint16_t *torch = malloc(2 * (size_t)(m * n));
        REQUIRE(p.a && p.b && torch);
        REQUIRE(read_hex(&r, "a", p.a, m * k) == 0 && read_hex(&r, "b", p.b, k * n) == 0 &&
                read_hex(&r, "c", torch, m * n) == 0);
        exact_sums(&p);
        check_paths(&p, torch);
        free(p.a), free(p.b), free(p.exact), free(p.sabs), free(torch);
        cases++;
    }
    fx_close(&r);
    CHECK(!r.failed && cases == 6);
}

static uint16_t *random_bf16(tg_rng *g, int64_t n)
{
    uint16_t *v = malloc(2 * (size_t)n);
    for (int64_t i = 0; v && i < n; i++)
        v[i] = tg__bf16_from_f32((float)(2 * tg_rng_uniform01(g) - 1));
    return v;
}

/* Products large enough to be split over the pool (the benchmark's shapes, smaller): the
 * paths within the bound, and each path's bits the same under 1 and 2 threads. */
static void test_split_products(void)
{
    static const int64_t shapes[][5] = {{200, 784, 120, 0, 0}, {784, 200, 120, 1, 0}, {200, 120, 784, 0, 1}};
    tg_rng *g = tg_rng_new(7);
    int threads = tg__pool_threads();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        product p = {.m = shapes[s][0], .k = shapes[s][1], .n = shapes[s][2], .ta = shapes[s][3], .tb = shapes[s][4]};
        p.a = random_bf16(g, p.m * p.k), p.b = random_bf16(g, p.k * p.n);
        REQUIRE(p.a && p.b);
        exact_sums(&p);
        check_paths(&p, NULL);
        size_t mn = (size_t)(p.m * p.n);
        uint16_t *one = malloc(mn * 2), *two = malloc(mn * 2);
        REQUIRE(one && two);
        gemm_fn fns[] = {tg__gemm_bf16_dpbf16, tg__gemm_bf16};
        for (int f = 0; f < 2; f++) {
            tg__pool_set_threads(1);
            bool ran = run_path(fns[f], &p, one);
            tg__pool_set_threads(2);
            ran = ran && run_path(fns[f], &p, two);
            if (ran)
                CHECK(memcmp(one, two, mn * 2) == 0 || f == 1); /* oneDNN: its blocks, checked by the bound */
            if (ran && f == 1)
                CHECK(outside_exact_bound(&p, two, "split") == 0);
        }
        tg__pool_set_threads(threads);
        free(p.a), free(p.b), free(p.exact), free(p.sabs), free(one), free(two);
    }
    tg_rng_free(g);
}

/* Without oneDNN, tg_matmul takes the portable path; the result stays within the bound. */
static void test_without_onednn(void)
{
    bool had = tg__onednn_active();
    tg__onednn_set_enabled(false);
    CHECK(strcmp(tg__gemm_bf16_backend(), "onednn matmul") != 0);
    tg_rng *g = tg_rng_new(9);
    product p = {.m = 33, .k = 65, .n = 17};
    p.a = random_bf16(g, p.m * p.k), p.b = random_bf16(g, p.k * p.n);
    REQUIRE(p.a && p.b);
    exact_sums(&p);
    uint16_t c[33 * 17];
    CHECK(run_matmul(&p, c));
    CHECK(outside_exact_bound(&p, c, "portable") == 0);
    tg__onednn_set_enabled(had);
    free(p.a), free(p.b), free(p.exact), free(p.sabs);
    tg_rng_free(g);
}

static void test_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_cast(tg_ones(TG_F32, TG_SHAPE(2, 3)), TG_BF16), *b = tg_ones(TG_F32, TG_SHAPE(3, 2));
    char want[256];
    int line = __LINE__ + 1;
    tg_tensor *y = tg_matmul(a, b);
    snprintf(want, sizeof want, "%s:%d: tg_matmul: cannot mix bfloat16 and float32", __FILE__, line);
    EXPECT_ERROR(y == NULL, want);
    EXPECT_ERROR(tg_add(a, tg_ones(TG_F32, TG_SHAPE(2, 3))) == NULL, "tg_add: cannot mix");
    tg_scope_end(s);
}

int main(void)
{
    printf("bfloat16 products: %s\n", tg__gemm_bf16_backend());
    RUN(test_against_pytorch);
    RUN(test_split_products);
    RUN(test_without_onednn);
    RUN(test_errors);
    return TEST_SUMMARY();
}
