/* Dense matrix products, row-major: C = alpha * op(A) * op(B) + beta * C, where op(A)
 * is M x K (A itself, or A transposed when ta), op(B) is K x N, and lda/ldb/ldc are the
 * row strides of the matrices as stored. With beta == 0, C is overwritten (its old
 * contents, NaN included, are ignored, as BLAS does).
 *
 * tg_gemm_* is the active kernel: OpenBLAS when the build found it (TG_HAVE_CBLAS),
 * otherwise the portable blocked kernel. The blocked and naive reference kernels are
 * exported too so that tests can compare all of them whichever one is active. */
#ifndef TG_KERNELS_GEMM_H
#define TG_KERNELS_GEMM_H

#include <stdbool.h>
#include <stdint.h>

void tg_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void tg_gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                 const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

/* Portable cache-blocked kernel (the fallback when there is no BLAS). */
void tg_gemm_blocked_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                         int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void tg_gemm_blocked_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                         int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

/* Naive triple loop with a double accumulator: the reference for tests. */
void tg_gemm_ref_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void tg_gemm_ref_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                     const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

/* "openblas" or "blocked": which kernel tg_gemm_* uses in this build. */
const char *tg_gemm_backend(void);

#endif
