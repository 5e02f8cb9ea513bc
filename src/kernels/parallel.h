/* Threads for the loops outside GEMM (element-wise ops, reductions, softmax, the
 * optimizer updates), and portable vectorisation.
 *
 * A loop is cut into chunks whose bounds depend only on its length and a grain, never on
 * the number of threads; the calling thread and the pool's workers take chunks until none
 * is left. A kernel that keeps one partial result per chunk and combines them in chunk
 * order therefore gives the same bits with 1, 2 or 16 threads.
 *
 * The workers sleep on a condition variable between loops. They wait awake for the next
 * loop only for a bounded time, and only when no other pool competes for the cores (an
 * OpenBLAS running its own threads: two spinning pools on two cores make both slow). A
 * loop too small to pay for waking a worker (under two chunks) runs on the calling
 * thread. The kernels never call back into the library from a worker. */
#ifndef TG_KERNELS_PARALLEL_H
#define TG_KERNELS_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

/* fn(ctx, begin, end) over [begin, end), one chunk at a time. */
typedef void (*tg_range_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) in chunks [k * grain, min(n, (k + 1) * grain)). Returns when every
 * chunk is done. */
void tg__parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);

/* Chunks of about `target` elements for a loop whose rows hold `row` elements each:
 * the number of rows per chunk (at least 1). */
static inline int64_t tg__rows_grain(int64_t row, int64_t target)
{
    int64_t g = row > 0 ? target / row : target;
    return g > 0 ? g : 1;
}

/* Elements per chunk for simple element-wise loops: big enough that waking a worker
 * (a few microseconds) is paid for many times over. */
enum { TG_GRAIN = 32768 };

/* Whether loops flush denormal floats to zero, as TF does (TAPEGRAD_DENORMALS=keep in the
 * environment turns it off), and setting it (tg_set_flush_denormals). */
bool tg__flush_denormals(void);
void tg__set_flush_denormals(bool on);

/* The number of threads loops may use (the caller included), and setting it (>= 1). */
int tg__pool_threads(void);
void tg__pool_set_threads(int n);
/* How long a worker stays awake after a loop, waiting for the next (0: it sleeps at
 * once, the default). gemm.c sets it once it knows that no other pool of threads (an
 * OpenBLAS running its own) competes for the cores. */
void tg__pool_set_spin(int microseconds);

/* Hot loops get an AVX2 and an AVX-512 clone beside the portable one, picked at load time
 * from the CPU (GCC/clang function multi-versioning), so the build keeps portable flags.
 * The library is compiled with -ffp-contract=off, so no clone fuses a multiply and an add
 * and every clone rounds exactly as the portable code does. */
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && !defined(TG_NO_CLONES)
#define TG_VECTOR_CLONES __attribute__((target_clones("default", "avx2", "arch=x86-64-v4")))
#else
#define TG_VECTOR_CLONES
#endif

#endif
