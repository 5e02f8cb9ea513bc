/* The GEMM kernels for one float type, included by gemm.c once per dtype with T (float
 * or double), SFX (f32 or f64) and BLAS_FN (OpenBLAS's sgemm or dgemm member of `blas`)
 * defined, after band_job, pack_space, blas and cblas_ok. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* ---- the portable blocked kernel and the naive reference ---------------------------------------- */

static void FN(scale)(int64_t M, int64_t N, T beta, T *C, int64_t ldc)
{
    if (beta == 1)
        return;
    for (int64_t i = 0; i < M; i++) {
        T *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++)
            c[j] = beta == 0 ? 0 : beta * c[j]; /* beta 0 overwrites NaN too */
    }
}

/* Copies op(X)[r0:r0+rows, c0:c0+cols] into a dense rows x cols block, for a transposed X
 * (op(X)[r][c] = X[c][r]), reading X along its rows. */
static void FN(pack_t)(const T *X, int64_t ldx, int64_t r0, int64_t c0, int64_t rows, int64_t cols, T *dst)
{
    for (int64_t c = 0; c < cols; c++) {
        const T *x = X + (c0 + c) * ldx + r0;
        for (int64_t r = 0; r < rows; r++)
            dst[r * cols + c] = x[r];
    }
}

/* C[mc x nc] += alpha * a[mc x kc] * b[kc x nc]; a and b have row strides as, bs. The inner
 * loop runs along contiguous rows of b and C. */
TG_VECTOR_CLONES static void FN(block)(int64_t mc, int64_t nc, int64_t kc, T alpha, const T *a, int64_t as,
                                       const T *restrict b, int64_t bs, T *restrict C, int64_t ldc)
{
    for (int64_t i = 0; i < mc; i++) {
        T *restrict c = C + i * ldc;
        for (int64_t k = 0; k < kc; k++) {
            T av = alpha * a[i * as + k];
            const T *restrict br = b + k * bs;
            for (int64_t j = 0; j < nc; j++)
                c[j] += av * br[j];
        }
    }
}

/* Bands [begin, end) of MC rows: each thread packs its own block of a transposed A. */
static void FN(bands)(void *ctx, int64_t begin, int64_t end)
{
    band_job *j = ctx;
    const T *A = j->A;
    T *ap = j->ta ? pack_space(0, sizeof(T) * MC * KC) : NULL;
    if (j->ta && !ap) {
        atomic_store(&j->failed, true);
        return;
    }
    for (int64_t band = begin; band < end; band++) {
        int64_t i0 = band * MC, mc = j->M - i0 < MC ? j->M - i0 : MC;
        const T *a = A + i0 * j->lda + j->k0;
        int64_t as = j->lda;
        if (j->ta) {
            FN(pack_t)(A, j->lda, i0, j->k0, mc, j->kc, ap);
            a = ap, as = j->kc;
        }
        FN(block)(mc, j->nc, j->kc, (T)j->alpha, a, as, j->b, j->bs, (T *)j->C + i0 * j->ldc + j->j0, j->ldc);
    }
}

bool FN(tg__gemm_blocked)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda,
                          const T *B, int64_t ldb, T beta, T *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return true;
    FN(scale)(M, N, beta, C, ldc);
    if (K <= 0 || alpha == 0)
        return true;
    /* Transposed operands are packed so the kernel reads rows; others are used in place. */
    T *bp = tb ? pack_space(1, sizeof(T) * KC * NC) : NULL;
    if (tb && !bp)
        return false;
    int64_t bands = (M + MC - 1) / MC;
    for (int64_t j0 = 0; j0 < N; j0 += NC) {
        int64_t nc = N - j0 < NC ? N - j0 : NC;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            int64_t kc = K - k0 < KC ? K - k0 : KC;
            band_job job = {.ta = ta,
                            .M = M,
                            .nc = nc,
                            .kc = kc,
                            .k0 = k0,
                            .j0 = j0,
                            .alpha = alpha,
                            .A = A,
                            .b = B + k0 * ldb + j0,
                            .lda = lda,
                            .bs = ldb,
                            .C = C,
                            .ldc = ldc};
            if (tb) {
                FN(pack_t)(B, ldb, k0, j0, kc, nc, bp);
                job.b = bp, job.bs = nc;
            }
            /* Bands of C are disjoint: any thread count gives the same sums. */
            int64_t per = tg__rows_grain(MC * nc * kc, 1 << 20);
            tg__parallel_for(bands, per, FN(bands), &job);
            if (atomic_load(&job.failed))
                return false;
        }
    }
    return true;
}

void FN(tg__gemm_ref)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda, const T *B,
                      int64_t ldb, T beta, T *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            T *c = &C[i * ldc + j];
            *c = (T)(alpha * s + (beta == 0 ? 0.0 : (double)beta * *c));
        }
}

/* ---- OpenBLAS, split over the loop pool ---------------------------------------------------------- */

/* One block of rows of C per thread (or of columns, when C is wider than tall), one
 * OpenBLAS call each: gemm.c says why. */
typedef struct FN(split) {
    bool ta, tb, by_rows;
    int M, N, K, lda, ldb, ldc;
    T alpha, beta;
    const T *A, *B;
    T *C;
} FN(split);

static void FN(split_part)(void *p, int64_t b, int64_t e)
{
    const FN(split) *j = p;
    if (j->by_rows)
        blas.BLAS_FN(CBLAS_ROW_MAJOR, TRANS(j->ta), TRANS(j->tb), (int)(e - b), j->N, j->K, j->alpha,
                     j->ta ? j->A + b : j->A + b * j->lda, j->lda, j->B, j->ldb, j->beta, j->C + b * j->ldc, j->ldc);
    else
        blas.BLAS_FN(CBLAS_ROW_MAJOR, TRANS(j->ta), TRANS(j->tb), j->M, (int)(e - b), j->K, j->alpha, j->A, j->lda,
                     j->tb ? j->B + b * j->ldb : j->B + b, j->ldb, j->beta, j->C + b, j->ldc);
}

bool FN(tg__gemm)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda, const T *B,
                  int64_t ldb, T beta, T *C, int64_t ldc)
{
    blas_ready();
    if (!blas.BLAS_FN || !cblas_ok(M, N, K, lda, ldb, ldc))
        return FN(tg__gemm_blocked)(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int t = blas.split && M * N * K >= (1 << 20) ? tg__pool_threads() : 1;
    FN(split)
    j = {.ta = ta,
         .tb = tb,
         .by_rows = M >= N || N < 64 * t,
         .M = (int)M,
         .N = (int)N,
         .K = (int)K,
         .lda = (int)lda,
         .ldb = (int)ldb,
         .ldc = (int)ldc,
         .alpha = alpha,
         .beta = beta,
         .A = A,
         .B = B,
         .C = C};
    int64_t len = j.by_rows ? M : N, part = (len + t - 1) / t;
    if (part > 16)
        part = (part + 15) / 16 * 16; /* whole register blocks of rows or columns per part */
    tg__parallel_for(len, part, FN(split_part), &j);
    return true;
}

#undef FN
#undef TG_CAT
#undef TG_CAT_
