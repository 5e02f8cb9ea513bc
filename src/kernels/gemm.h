/* Dense matrix products, row-major: C = alpha * op(A) * op(B) + beta * C, where op(A)
 * is M x K (A itself, or A transposed when ta), op(B) is K x N, and lda/ldb/ldc are the
 * row strides of the matrices as stored. With beta == 0, C is overwritten (its old
 * contents, NaN included, are ignored, as BLAS does).
 *
 * tg__gemm_f32 and tg__gemm_f64 are the active kernel: OpenBLAS, loaded at the first product (gemm.c says
 * why at run time), or the portable blocked kernel when OpenBLAS cannot be loaded, the
 * build has it off (-DTG_USE_BLAS=OFF) or TAPEGRAD_GEMM=blocked. The blocked and naive
 * reference kernels are exported too so that tests can compare all of them whichever one
 * is active. The blocked kernel runs its row bands on the loop pool (parallel.h). */
#ifndef TG_KERNELS_GEMM_H
#define TG_KERNELS_GEMM_H

#include <stdbool.h>
#include <stdint.h>

bool tg__gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
bool tg__gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                  const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

/* Portable cache-blocked kernel (the fallback when there is no BLAS). It and tg__gemm_*
 * return false only when the blocked kernel found no memory for the buffers that pack a
 * transposed operand (allocated once per thread); C then holds no product. */
bool tg__gemm_blocked_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
bool tg__gemm_blocked_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                          const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

/* Naive triple loop with a double accumulator: the reference for tests. */
void tg__gemm_ref_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void tg__gemm_ref_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A, int64_t lda,
                      const double *B, int64_t ldb, double beta, double *C, int64_t ldc);

/* bfloat16 operands (uint16_t bits), float32 sums, C rounded to bfloat16 (gemm_bf16.c):
 * through oneDNN's matmul when it is loaded, else the AVX512-BF16 kernel where the CPU
 * has it, else the operands widened to float32 and tg__gemm_f32. False only when no path
 * found memory. The two portable paths are exported for tests; tg__gemm_bf16_dpbf16
 * returns false on a CPU without AVX512-BF16. */
bool tg__gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B,
                   int64_t ldb, uint16_t *C, int64_t ldc);
bool tg__gemm_bf16_dpbf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                          const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc);
bool tg__gemm_bf16_widened(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                           const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc);
/* "onednn matmul", "avx512_bf16 (vdpbf16ps)" or "float32 gemm on widened operands". */
const char *tg__gemm_bf16_backend(void);

/* Which kernel tg__gemm_* uses: "blocked", or "openblas CORE" with OpenBLAS's kernel set
 * (e.g. "openblas SkylakeX (chosen by tapegrad)"). Loads OpenBLAS if it is not yet. */
const char *tg__gemm_backend(void);

#endif
