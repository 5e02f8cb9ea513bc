/* GEMM: OpenBLAS when available, else a portable cache-blocked kernel. Each kernel is
 * written once as a macro and instantiated for float and double. */
#include "gemm.h"
#include "tapegrad/base.h"

#include <limits.h>
#include <stdlib.h>

#ifdef TG_HAVE_CBLAS
#include <cblas.h>
#endif

/* Block sizes: an MC x KC block of op(A) and a KC x NC panel of op(B) stay in cache
 * while the C block is updated. */
enum { MC = 64, KC = 256, NC = 512 };

#define DEFINE_GEMM(T, SUF)                                                                              \
    static void scale_##SUF(int64_t M, int64_t N, T beta, T *C, int64_t ldc)                            \
    {                                                                                                    \
        if (beta == 1)                                                                                   \
            return;                                                                                      \
        for (int64_t i = 0; i < M; i++) {                                                                \
            T *c = C + i * ldc;                                                                          \
            for (int64_t j = 0; j < N; j++)                                                              \
                c[j] = beta == 0 ? 0 : beta * c[j]; /* beta 0 overwrites NaN too */                     \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    /* Copies op(X)[r0:r0+rows, c0:c0+cols] into a dense rows x cols block, for a transposed X       \
     * (op(X)[r][c] = X[c][r]), reading X along its rows. */                                         \
    static void pack_t_##SUF(const T *X, int64_t ldx, int64_t r0, int64_t c0, int64_t rows, int64_t cols, \
                             T *dst)                                                                     \
    {                                                                                                    \
        for (int64_t c = 0; c < cols; c++) {                                                             \
            const T *x = X + (c0 + c) * ldx + r0;                                                        \
            for (int64_t r = 0; r < rows; r++)                                                           \
                dst[r * cols + c] = x[r];                                                                \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    /* C[mc x nc] += alpha * a[mc x kc] * b[kc x nc]; a and b have row strides as, bs. The inner    \
     * loop runs along contiguous rows of b and C. */                                                \
    static void block_##SUF(int64_t mc, int64_t nc, int64_t kc, T alpha, const T *a, int64_t as,       \
                            const T *b, int64_t bs, T *C, int64_t ldc)                                   \
    {                                                                                                    \
        for (int64_t i = 0; i < mc; i++) {                                                               \
            T *c = C + i * ldc;                                                                          \
            for (int64_t k = 0; k < kc; k++) {                                                           \
                T av = alpha * a[i * as + k];                                                            \
                const T *br = b + k * bs;                                                                \
                for (int64_t j = 0; j < nc; j++)                                                         \
                    c[j] += av * br[j];                                                                  \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    void tg_gemm_blocked_##SUF(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A,     \
                               int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc)          \
    {                                                                                                    \
        if (M <= 0 || N <= 0)                                                                            \
            return;                                                                                      \
        scale_##SUF(M, N, beta, C, ldc);                                                                 \
        if (K <= 0 || alpha == 0)                                                                        \
            return;                                                                                      \
        /* Transposed operands are packed so the kernel reads rows; others are used in place. */        \
        T *ap = ta ? malloc(sizeof(T) * MC * KC) : NULL, *bp = tb ? malloc(sizeof(T) * KC * NC) : NULL;   \
        if ((ta && !ap) || (tb && !bp)) {                                                                \
            free(ap);                                                                                    \
            free(bp);                                                                                    \
            tg_gemm_ref_##SUF(ta, tb, M, N, K, alpha, A, lda, B, ldb, 1, C, ldc);                        \
            return;                                                                                      \
        }                                                                                                \
        for (int64_t j0 = 0; j0 < N; j0 += NC) {                                                         \
            int64_t nc = N - j0 < NC ? N - j0 : NC;                                                      \
            for (int64_t k0 = 0; k0 < K; k0 += KC) {                                                     \
                int64_t kc = K - k0 < KC ? K - k0 : KC;                                                  \
                const T *b = B + k0 * ldb + j0;                                                          \
                int64_t bs = ldb;                                                                        \
                if (tb) {                                                                                \
                    pack_t_##SUF(B, ldb, k0, j0, kc, nc, bp);                                            \
                    b = bp, bs = nc;                                                                     \
                }                                                                                        \
                for (int64_t i0 = 0; i0 < M; i0 += MC) {                                                 \
                    int64_t mc = M - i0 < MC ? M - i0 : MC;                                              \
                    const T *a = A + i0 * lda + k0;                                                      \
                    int64_t as = lda;                                                                    \
                    if (ta) {                                                                            \
                        pack_t_##SUF(A, lda, i0, k0, mc, kc, ap);                                        \
                        a = ap, as = kc;                                                                 \
                    }                                                                                    \
                    block_##SUF(mc, nc, kc, alpha, a, as, b, bs, C + i0 * ldc + j0, ldc);                \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
        free(ap);                                                                                        \
        free(bp);                                                                                        \
    }                                                                                                    \
                                                                                                         \
    void tg_gemm_ref_##SUF(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A,         \
                           int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc)              \
    {                                                                                                    \
        for (int64_t i = 0; i < M; i++)                                                                  \
            for (int64_t j = 0; j < N; j++) {                                                            \
                double s = 0;                                                                            \
                for (int64_t k = 0; k < K; k++)                                                          \
                    s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *                                \
                         (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);                                 \
                T *c = &C[i * ldc + j];                                                                  \
                *c = (T)(alpha * s + (beta == 0 ? 0.0 : (double)beta * *c));                             \
            }                                                                                            \
    }

DEFINE_GEMM(float, f32)
DEFINE_GEMM(double, f64)

#ifdef TG_HAVE_CBLAS
/* cblas takes int sizes; larger problems (and empty ones) go to the portable kernel. */
static bool cblas_ok(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc)
{
    return M > 0 && N > 0 && K > 0 && M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX &&
           ldb <= INT_MAX && ldc <= INT_MAX;
}
#define TRANS(t) ((t) ? CblasTrans : CblasNoTrans)
#endif

void tg_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
#ifdef TG_HAVE_CBLAS
    if (cblas_ok(M, N, K, lda, ldb, ldc)) {
        cblas_sgemm(CblasRowMajor, TRANS(ta), TRANS(tb), (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
        return;
    }
#endif
    tg_gemm_blocked_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void tg_gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                 const double *B, int64_t ldb, double beta, double *C, int64_t ldc)
{
#ifdef TG_HAVE_CBLAS
    if (cblas_ok(M, N, K, lda, ldb, ldc)) {
        cblas_dgemm(CblasRowMajor, TRANS(ta), TRANS(tb), (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb,
                    beta, C, (int)ldc);
        return;
    }
#endif
    tg_gemm_blocked_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *tg_gemm_backend(void)
{
#ifdef TG_HAVE_CBLAS
    return "openblas";
#else
    return "blocked";
#endif
}

int tg_set_num_threads(int n)
{
    if (n < 1)
        return -1;
#ifdef TG_HAVE_CBLAS
    openblas_set_num_threads(n);
    return 0;
#else
    return -1;   /* the portable kernel runs on the calling thread */
#endif
}
