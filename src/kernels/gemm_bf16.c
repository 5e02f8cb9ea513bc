/* bfloat16 matrix products (gemm.h): exact products of bfloat16 values summed in float32,
 * each element of C rounded once to bfloat16 (to nearest even), as oneDNN's and TF's
 * bfloat16 MatMul do. Three ways, chosen per call:
 *
 * 1. oneDNN's matmul (onednn.c), when loaded: its AVX512-BF16 or AMX kernels;
 * 2. this file's AVX512-BF16 kernel (`vdpbf16ps`), where the CPU has the instructions:
 *    the pairs (k, k + 1) of each dot product added into a float32 lane in order of k;
 * 3. otherwise the operands widened to float32 (exactly) and tapegrad's float32 GEMM.
 *
 * A product of two bfloat16 values (8-bit significands) is exact in float32, so the three
 * differ only in the order of the float32 additions: test_gemm_bf16 holds them to the
 * bound that order allows. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "onednn.h"
#include "parallel.h"
#include "../tensor/tensor_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(TG_NO_CLONES)
#define HAVE_DPBF16 1
#include <immintrin.h>
#define DPBF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

/* Per-thread buffers kept for the thread's life, so a warm product allocates nothing. */
enum { BUF_A, BUF_B, BUF_WIDE_A, BUF_WIDE_B, BUF_WIDE_C, N_BUFS };
static _Thread_local void *bufs[N_BUFS];
static _Thread_local size_t caps[N_BUFS];

static void *buffer(int which, size_t bytes)
{
    bytes += 64;
    if (caps[which] < bytes) {
        void *p = realloc(bufs[which], bytes);
        if (!p)
            return NULL;
        bufs[which] = p, caps[which] = bytes;
    }
    return (void *)(((uintptr_t)bufs[which] + 63) & ~(uintptr_t)63);
}

static inline uint16_t op_at(const uint16_t *X, bool t, int64_t ld, int64_t r, int64_t c)
{
    return t ? X[c * ld + r] : X[r * ld + c];
}

/* ---- 3: widened to float32 ------------------------------------------------------------------- */
bool tg__gemm_bf16_widened(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                           const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc)
{
    /* op(A) as M x K and op(B) as K x N, packed (transposes resolved while widening) */
    float *a = buffer(BUF_WIDE_A, sizeof(float) * (size_t)(M * K));
    float *b = buffer(BUF_WIDE_B, sizeof(float) * (size_t)(K * N));
    float *c = buffer(BUF_WIDE_C, sizeof(float) * (size_t)(M * N));
    if (!a || !b || !c)
        return false;
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++)
            a[i * K + k] = tg__f32_from_bf16(op_at(A, ta, lda, i, k));
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++)
            b[k * N + j] = tg__f32_from_bf16(op_at(B, tb, ldb, k, j));
    if (!tg__gemm_f32(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N))
        return false;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            C[i * ldc + j] = tg__bf16_from_f32(c[i * N + j]);
    return true;
}

/* ---- 2: AVX512-BF16 --------------------------------------------------------------------------- */
/* op(B) in panels of 16 columns, each a run of K2 = ceil(K / 2) rows of 16 pairs
 * (B[2kk][j], B[2kk + 1][j]): what one vdpbf16ps multiplies a broadcast pair of A by.
 * Panels are counted up to an even number (zeros past N), rows of A in blocks of MR. */
enum { MR = 8, NR = 32 };

typedef struct dp_job {
    bool ta;
    int64_t M, N, K, K2, panels;
    const uint16_t *A;
    int64_t lda;
    const uint32_t *bp; /* packed op(B) */
    uint16_t *C;
    int64_t ldc;
    atomic_bool failed;
} dp_job;

static void pack_b(const uint16_t *B, bool tb, int64_t ldb, int64_t K, int64_t N, int64_t K2, int64_t panels,
                   uint32_t *bp)
{
    for (int64_t p = 0; p < panels; p++)
        for (int64_t kk = 0; kk < K2; kk++)
            for (int64_t j = 0; j < 16; j++) {
                int64_t n = p * 16 + j, k = 2 * kk;
                uint32_t lo = n < N ? op_at(B, tb, ldb, k, n) : 0,
                         hi = n < N && k + 1 < K ? op_at(B, tb, ldb, k + 1, n) : 0;
                bp[(p * K2 + kk) * 16 + j] = lo | hi << 16;
            }
}

#ifdef HAVE_DPBF16
DPBF16_TARGET static void dp_tile(const uint32_t *ap, const uint32_t *b0, const uint32_t *b1, int64_t K2, float *out)
{
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < K2; kk++) {
        __m512bh v0 = (__m512bh)_mm512_loadu_si512(b0 + kk * 16), v1 = (__m512bh)_mm512_loadu_si512(b1 + kk * 16);
        for (int r = 0; r < MR; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[kk * MR + r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, v0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, v1);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_ps(out + r * NR, acc[r][0]);
        _mm512_storeu_ps(out + r * NR + 16, acc[r][1]);
    }
}
#endif

/* Rows [b0 * MR, b1 * MR) of C: their pairs of A packed once, then every panel pair. */
static void dp_rows(void *ctx, int64_t blk0, int64_t blk1)
{
#ifdef HAVE_DPBF16
    dp_job *j = ctx;
    int64_t K2 = j->K2, nblk = blk1 - blk0;
    uint32_t *ap = buffer(BUF_A, sizeof(uint32_t) * (size_t)(nblk * K2 * MR));
    if (!ap) {
        atomic_store(&j->failed, true);
        return;
    }
    for (int64_t b = 0; b < nblk; b++)
        for (int64_t kk = 0; kk < K2; kk++)
            for (int r = 0; r < MR; r++) {
                int64_t i = (blk0 + b) * MR + r, k = 2 * kk;
                uint32_t lo = i < j->M ? op_at(j->A, j->ta, j->lda, i, k) : 0,
                         hi = i < j->M && k + 1 < j->K ? op_at(j->A, j->ta, j->lda, i, k + 1) : 0;
                ap[(b * K2 + kk) * MR + r] = lo | hi << 16;
            }
    float out[MR * NR];
    for (int64_t p = 0; p < j->panels; p += 2)
        for (int64_t b = 0; b < nblk; b++) {
            dp_tile(ap + b * K2 * MR, j->bp + p * K2 * 16, j->bp + (p + 1) * K2 * 16, K2, out);
            for (int r = 0; r < MR; r++) {
                int64_t i = (blk0 + b) * MR + r;
                for (int c = 0; c < NR && i < j->M && p * 16 + c < j->N; c++)
                    j->C[i * j->ldc + p * 16 + c] = tg__bf16_from_f32(out[r * NR + c]);
            }
        }
#else
    (void)ctx, (void)blk0, (void)blk1;
#endif
}

static bool cpu_has_dpbf16(void)
{
#ifdef HAVE_DPBF16
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

bool tg__gemm_bf16_dpbf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                          const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc)
{
    if (!cpu_has_dpbf16())
        return false;
    int64_t K2 = (K + 1) / 2, panels = (N + 15) / 16;
    panels += panels & 1;
    uint32_t *bp = buffer(BUF_B, sizeof(uint32_t) * (size_t)(panels * K2 * 16));
    if (!bp)
        return false;
    pack_b(B, tb, ldb, K, N, K2, panels, bp);
    dp_job j = {
        .ta = ta, .M = M, .N = N, .K = K, .K2 = K2, .panels = panels, .A = A, .lda = lda, .bp = bp, .C = C, .ldc = ldc};
    atomic_init(&j.failed, false);
    int64_t blocks = (M + MR - 1) / MR, threads = tg__pool_threads();
    /* a million multiply-adds or more: the blocks of rows spread over the pool, as gemm.c's */
    int64_t grain = M * N * K >= (1 << 20) && threads > 1 ? (blocks + threads - 1) / threads : blocks;
    tg__parallel_for(blocks, grain > 0 ? grain : 1, dp_rows, &j);
    return !atomic_load(&j.failed);
}

/* ---- the choice --------------------------------------------------------------------------------- */
bool tg__gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *B,
                   int64_t ldb, uint16_t *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return true;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            memset(C + i * ldc, 0, sizeof *C * (size_t)N);
        return true;
    }
    return tg__onednn_matmul_bf16(ta, tb, M, N, K, A, lda, B, ldb, C, ldc) ||
           tg__gemm_bf16_dpbf16(ta, tb, M, N, K, A, lda, B, ldb, C, ldc) ||
           tg__gemm_bf16_widened(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
}

const char *tg__gemm_bf16_backend(void)
{
    if (tg__onednn_active())
        return "onednn matmul";
    return cpu_has_dpbf16() ? "avx512_bf16 (vdpbf16ps)" : "float32 gemm on widened operands";
}
