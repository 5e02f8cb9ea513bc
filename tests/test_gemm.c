/* GEMM kernels: the active one (OpenBLAS or the blocked fallback) and the blocked one,
 * against the naive reference, on odd sizes, every transpose combination, padded leading
 * dimensions, alpha and beta; the kernel set chosen for OpenBLAS; the blocked kernel as
 * the active one (TAPEGRAD_GEMM=blocked, in a child process) and its bits under any
 * number of threads. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "kernels/gemm.h"

/* Row-major storage for op(X) of rows x cols: stored transposed when t, with `pad` extra
 * columns so the leading dimension differs from the logical width. */
typedef struct mat {
    int64_t stored_rows, ld;
    double *v;
} mat;

static mat mat_random(tg_rng *r, bool t, int64_t rows, int64_t cols, int64_t pad)
{
    mat m = {.stored_rows = t ? cols : rows, .ld = (t ? rows : cols) + pad};
    int64_t n = m.stored_rows * m.ld;
    m.v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        m.v[i] = 2 * tg_rng_uniform01(r) - 1;
    return m;
}

static float *to_f32(const double *v, int64_t n)
{
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        f[i] = (float)v[i];
    return f;
}

/* |alpha| * sum_k |op(A)[i,k]| |op(B)[k,j]| + |beta C[i,j]|: the scale of the rounding error. */
static double magnitude(bool ta, bool tb, int64_t i, int64_t j, int64_t K, double alpha, const mat *A, const mat *B,
                        double beta, double c)
{
    double s = 0;
    for (int64_t k = 0; k < K; k++)
        s +=
            fabs(ta ? A->v[k * A->ld + i] : A->v[i * A->ld + k]) * fabs(tb ? B->v[j * B->ld + k] : B->v[k * B->ld + j]);
    return fabs(alpha) * s + fabs(beta * c);
}

typedef bool (*gemm64_fn)(bool, bool, int64_t, int64_t, int64_t, double, const double *, int64_t, const double *,
                          int64_t, double, double *, int64_t);
typedef bool (*gemm32_fn)(bool, bool, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                          float, float *, int64_t);

/* Runs one case through kernel k64/k32 and the references; counts elements off by more
 * than (K + 4) unit roundoffs of their magnitude. */
static int check_case(const char *name, gemm64_fn k64, gemm32_fn k32, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                      double alpha, double beta, uint64_t seed)
{
    tg_rng *r = tg_rng_new(seed);
    mat A = mat_random(r, ta, M, K, 3), B = mat_random(r, tb, K, N, 2), C = mat_random(r, false, M, N, 1);
    int64_t nc = C.stored_rows * C.ld, bad = 0;
    if (beta == 0) /* beta 0 must overwrite, NaN included */
        for (int64_t i = 0; i < nc; i++)
            C.v[i] = NAN;
    double *c64 = malloc(sizeof(double) * (size_t)(nc ? nc : 1)), *r64 = malloc(sizeof(double) * (size_t)(nc ? nc : 1));
    memcpy(c64, C.v, sizeof(double) * (size_t)nc);
    memcpy(r64, C.v, sizeof(double) * (size_t)nc);
    float *a32 = to_f32(A.v, A.stored_rows * A.ld), *b32 = to_f32(B.v, B.stored_rows * B.ld);
    float *c32 = to_f32(C.v, nc), *r32 = to_f32(C.v, nc);
    if (!k64(ta, tb, M, N, K, alpha, A.v, A.ld, B.v, B.ld, beta, c64, C.ld) && bad++ == 0)
        printf("  %s reported no memory\n", name);
    tg__gemm_ref_f64(ta, tb, M, N, K, alpha, A.v, A.ld, B.v, B.ld, beta, r64, C.ld);
    if (!k32(ta, tb, M, N, K, (float)alpha, a32, A.ld, b32, B.ld, (float)beta, c32, C.ld) && bad++ == 0)
        printf("  %s reported no memory\n", name);
    tg__gemm_ref_f32(ta, tb, M, N, K, (float)alpha, a32, A.ld, b32, B.ld, (float)beta, r32, C.ld);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t at = i * C.ld + j;
            double mag = magnitude(ta, tb, i, j, K, alpha, &A, &B, beta, beta == 0 ? 0 : C.v[at]);
            bool ok64 = fabs(c64[at] - r64[at]) <= (double)(K + 4) * 1.2e-16 * mag;
            bool ok32 = fabs((double)c32[at] - (double)r32[at]) <= (double)(K + 4) * 6e-8 * mag;
            if ((!ok64 || !ok32) && bad++ == 0)
                printf("  %s ta=%d tb=%d %lldx%lldx%lld: C[%lld,%lld] f64 %.17g vs %.17g, f32 %.9g vs %.9g\n", name, ta,
                       tb, (long long)M, (long long)N, (long long)K, (long long)i, (long long)j, c64[at], r64[at],
                       c32[at], r32[at]);
        }
    /* The padding columns of C are not part of the product and must be untouched. */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < C.ld; j++)
            if (memcmp(&c64[i * C.ld + j], &C.v[i * C.ld + j], sizeof(double)) != 0 && bad++ == 0)
                printf("  %s wrote past column N in row %lld\n", name, (long long)i);
    free(A.v), free(B.v), free(C.v), free(c64), free(r64), free(a32), free(b32), free(c32), free(r32);
    tg_rng_free(r);
    return (int)bad;
}

static void check_kernel(const char *name, gemm64_fn k64, gemm32_fn k32)
{
    static const int64_t sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {65, 33, 129}, {2, 3, 1}, {1, 9, 17}, {16, 1, 8}};
    static const double ab[][2] = {{1, 0}, {1.5, 0.5}, {-0.75, 1}};
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (size_t p = 0; p < sizeof ab / sizeof ab[0]; p++)
                CHECK(check_case(name, k64, k32, t & 1, t & 2, sizes[s][0], sizes[s][1], sizes[s][2], ab[p][0],
                                 ab[p][1], seed++) == 0);
}

static void test_blocked_matches_reference(void)
{
    check_kernel("blocked", tg__gemm_blocked_f64, tg__gemm_blocked_f32);
}

static void test_active_matches_reference(void)
{
    printf("  active GEMM backend: %s\n", tg__gemm_backend());
    CHECK(strncmp(tg__gemm_backend(), "openblas ", 9) == 0 || strcmp(tg__gemm_backend(), "blocked") == 0);
    check_kernel("active", tg__gemm_f64, tg__gemm_f32);
}

/* Products large enough to be split over the loop pool (rows, or columns when C is
 * wider than tall), under 2 and 3 threads, every transpose combination. */
static void test_active_split_matches_reference(void)
{
    static const int64_t sizes[][3] = {{300, 200, 150}, {2000, 10, 100}, {37, 1100, 90}};
    uint64_t seed = 200;
    for (int threads = 2; threads <= 3; threads++) {
        tg_set_num_threads(threads);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int t = 0; t < 4; t++)
                CHECK(check_case("active, split", tg__gemm_f64, tg__gemm_f32, t & 1, t & 2, sizes[s][0], sizes[s][1],
                                 sizes[s][2], 1.5, 0.5, seed++) == 0);
    }
    tg_set_num_threads(2);
}

/* OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS as the process started, before the first
 * product loaded OpenBLAS. */
static const char *coretype_at_start;
static bool coretype_was_set, num_threads_was_set;

/* On an AVX-512 CPU, with no OPENBLAS_CORETYPE from the user, OpenBLAS runs its SkylakeX
 * kernels; a user's choice is kept; the environment is left as it was. */
static void test_kernel_set_choice(void)
{
    const char *b = tg__gemm_backend();
    if (strncmp(b, "openblas ", 9) != 0) {
        printf("  OpenBLAS is not loaded (%s): nothing to choose\n", b);
        return;
    }
    CHECK((getenv("OPENBLAS_CORETYPE") != NULL) == coretype_was_set);
    CHECK((getenv("OPENBLAS_NUM_THREADS") != NULL) == num_threads_was_set);
    if (coretype_was_set) {
        CHECK(strstr(b, "chosen by tapegrad") == NULL);
        printf("  OPENBLAS_CORETYPE=%s was the user's: %s\n", coretype_at_start, b);
        return;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    bool avx512 = false;
#endif
    if (avx512)
        CHECK(strstr(b, "SkylakeX (chosen by tapegrad)") != NULL);
    else
        CHECK(strstr(b, "chosen by tapegrad") == NULL);
}

/* TAPEGRAD_GEMM=blocked makes the blocked kernel the active one; it is checked in a child
 * process, as the choice is made once per process. */
static const char *self_path;

static void test_blocked_as_active(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "TAPEGRAD_GEMM=blocked '%s' --blocked-child", self_path);
    CHECK(system(cmd) == 0);
}

static int blocked_child(void)
{
    printf("  child: active GEMM backend: %s\n", tg__gemm_backend());
    CHECK(strcmp(tg__gemm_backend(), "blocked") == 0);
    check_kernel("active (blocked)", tg__gemm_f64, tg__gemm_f32);
    return check_failures_in_test ? 1 : 0;
}

/* The blocked kernel spreads bands of rows over threads; each element is computed by one
 * thread in one order, so any thread count gives the same bits. */
static void test_blocked_threads_same_bits(void)
{
    const int64_t M = 300, N = 130, K = 270;
    tg_rng *r = tg_rng_new(7);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N), *c[3];
    for (int64_t i = 0; i < M * K; i++)
        a[i] = (float)tg_rng_uniform01(r) - 0.5f;
    for (int64_t i = 0; i < K * N; i++)
        b[i] = (float)tg_rng_uniform01(r) - 0.5f;
    const int threads[3] = {1, 2, 5};
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        for (int k = 0; k < 3; k++) {
            tg_set_num_threads(threads[k]);
            c[k] = calloc((size_t)(M * N), sizeof(float));
            tg__gemm_blocked_f32(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c[k], N);
        }
        CHECK(memcmp(c[0], c[1], sizeof(float) * M * N) == 0);
        CHECK(memcmp(c[0], c[2], sizeof(float) * M * N) == 0);
        for (int k = 0; k < 3; k++)
            free(c[k]);
    }
    tg_set_num_threads(2);
    free(a), free(b);
    tg_rng_free(r);
}

/* Sizes past every block edge (MC 64, KC 256, NC 512) so partial blocks meet in all three. */
static void test_blocked_crosses_block_edges(void)
{
    for (int t = 0; t < 4; t++)
        CHECK(check_case("blocked", tg__gemm_blocked_f64, tg__gemm_blocked_f32, t & 1, t & 2, 67, 515, 259, 1.25, 0.5,
                         100 + (uint64_t)t) == 0);
}

/* Hand-computed: [[1,2],[3,4]] x [[5,6],[7,8]] and transposes, with alpha 2 and beta 1 on ones. */
static void test_small_by_hand(void)
{
    const double a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8};
    const double want[4][4] = {{39, 45, 87, 101}, {53, 61, 77, 89}, {35, 47, 79, 107}, {47, 63, 69, 93}};
    for (int t = 0; t < 4; t++) {
        double c[4] = {1, 1, 1, 1}, cb[4] = {1, 1, 1, 1};
        tg__gemm_f64(t & 1, t & 2, 2, 2, 2, 2.0, a, 2, b, 2, 1.0, c, 2);
        tg__gemm_blocked_f64(t & 1, t & 2, 2, 2, 2, 2.0, a, 2, b, 2, 1.0, cb, 2);
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(c[i], want[t][i], 1e-14);
            CHECK_NEAR(cb[i], want[t][i], 1e-14);
        }
    }
}

/* K = 0 leaves beta * C; M or N = 0 touches nothing. */
static void test_empty_dims(void)
{
    float a[1] = {9}, b[1] = {9}, c[6] = {1, 2, 3, 4, 5, 6};
    tg__gemm_f32(false, false, 2, 3, 0, 1.0f, a, 1, b, 3, 0.5f, c, 3);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(c[i], 0.5 * (i + 1), 0);
    tg__gemm_blocked_f32(false, false, 2, 3, 0, 1.0f, a, 1, b, 3, 0.0f, c, 3);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(c[i], 0, 0);
    double d[2] = {7, 8};
    tg__gemm_f64(false, false, 0, 2, 4, 1.0, NULL, 4, NULL, 2, 0.0, d, 2);
    tg__gemm_blocked_f64(false, false, 2, 0, 4, 1.0, NULL, 4, NULL, 0, 0.0, d, 1);
    CHECK(d[0] == 7 && d[1] == 8);
}

int main(int argc, char **argv)
{
    coretype_at_start = getenv("OPENBLAS_CORETYPE");
    coretype_was_set = coretype_at_start != NULL;
    num_threads_was_set = getenv("OPENBLAS_NUM_THREADS") != NULL;
    self_path = argv[0];
    if (argc > 1 && !strcmp(argv[1], "--blocked-child"))
        return blocked_child();
    RUN(test_small_by_hand);
    RUN(test_blocked_matches_reference);
    RUN(test_active_matches_reference);
    RUN(test_active_split_matches_reference);
    RUN(test_blocked_crosses_block_edges);
    RUN(test_empty_dims);
    RUN(test_kernel_set_choice);
    RUN(test_blocked_as_active);
    RUN(test_blocked_threads_same_bits);
    return TEST_SUMMARY();
}
