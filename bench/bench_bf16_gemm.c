/* The benchmark MLP's five products per step (batch 500: two forward, three backward) in
 * float32 (tapegrad's GEMM: OpenBLAS) and bfloat16 (oneDNN's matmul, the AVX512-BF16
 * kernel, float32 GEMM on widened operands), each the best of --reps runs: on a shared
 * machine the best run is the one that ran alone. Prints microseconds per product and the
 * rate, and the epoch's 120 steps of the five at the best times.
 *
 *   bench_bf16_gemm [--threads 2] [--reps 30] [--batch 500] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tapegrad.h>

#include "kernels/gemm.h"
#include "kernels/onednn.h"
#include "tensor/tensor_impl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct shape {
    const char *what;
    int64_t m, n, k;
    bool ta, tb;
} shape;

typedef enum path { F32, BF16_ONEDNN, BF16_DPBF16, BF16_WIDENED, N_PATHS } path;
static const char *const names[N_PATHS] = {"float32 (tapegrad's GEMM)", "bfloat16 oneDNN matmul",
                                           "bfloat16 AVX512-BF16 kernel", "bfloat16 widened + float32 GEMM"};

static bool run(path p, const shape *s, const void *a, const void *b, void *c)
{
    int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    switch (p) {
    case F32: return tg__gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, 0.0f, c, s->n);
    case BF16_ONEDNN: return tg__onednn_matmul_bf16(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, c, s->n);
    case BF16_DPBF16: return tg__gemm_bf16_dpbf16(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, c, s->n);
    default: return tg__gemm_bf16_widened(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, c, s->n);
    }
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    int threads = atoi(arg(argc, argv, "--threads", "2")), reps = atoi(arg(argc, argv, "--reps", "30"));
    int64_t B = atoll(arg(argc, argv, "--batch", "500"));
    tg_set_num_threads(threads);
    const shape shapes[] = {
        {"x W1 (forward)", B, 500, 784, false, false},    {"h W2 (forward)", B, 10, 500, false, false},
        {"dz2 W2^T (backward)", B, 500, 10, false, true}, {"h^T dz2 (dW2)", 500, 10, B, true, false},
        {"x^T dz1 (dW1)", 784, 500, B, true, false},
    };
    size_t most = (size_t)(B > 784 ? B : 784) * 784;
    float *a = malloc(most * 4), *b = malloc(most * 4), *c = malloc(most * 4);
    uint16_t *ah = malloc(most * 2), *bh = malloc(most * 2), *ch = malloc(most * 2);
    if (!a || !b || !c || !ah || !bh || !ch)
        return 1;
    tg_rng *r = tg_rng_new(1);
    for (size_t i = 0; i < most; i++) {
        a[i] = (float)tg_rng_uniform01(r) - 0.5f, b[i] = (float)tg_rng_uniform01(r) - 0.5f;
        ah[i] = tg__bf16_from_f32(a[i]), bh[i] = tg__bf16_from_f32(b[i]);
    }
    tg_rng_free(r);
    printf("%d threads, best of %d; float32 GEMM: %s; oneDNN: %s\n", threads, reps, tg__gemm_backend(),
           tg__onednn_backend());
    int64_t steps = (60000 + B - 1) / B;
    double step[N_PATHS] = {0};
    bool ran[N_PATHS] = {true, true, true, true};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *sh = &shapes[s];
        printf("%-22s %4lld x %4lld x %4lld:", sh->what, (long long)sh->m, (long long)sh->k, (long long)sh->n);
        for (int p = 0; p < N_PATHS; p++) {
            double best = 1e30;
            for (int i = 0; i < reps && ran[p]; i++) {
                double t0 = now();
                if (!run((path)p, sh, p == F32 ? (void *)a : ah, p == F32 ? (void *)b : bh, p == F32 ? (void *)c : ch))
                    ran[p] = false;
                double t = now() - t0;
                best = t < best ? t : best;
            }
            step[p] += best;
            if (ran[p])
                printf("  %8.1f us %6.1f GFLOP/s", best * 1e6, 2e-9 * (double)(sh->m * sh->n * sh->k) / best);
            else
                printf("  %8s", "n/a");
        }
        printf("\n");
    }
    for (int p = 0; p < N_PATHS; p++)
        if (ran[p])
            printf("%-34s the five products of an epoch (%lld steps): %.3f s\n", names[p], (long long)steps,
                   (double)steps * step[p]);
    free(a), free(b), free(c), free(ah), free(bh), free(ch);
    return 0;
}
