/* Denormal floats as TensorFlow treats them: the pool's loops flush them to zero and read
 * them as zero, on any number of threads, and the caller's own floating-point mode is
 * what it was after each call. */
#include <float.h>

#include "check.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_MXCSR 1
#endif

enum { N = 1 << 17 }; /* several chunks of the pool's loops */

static float all[N];

/* x * y element-wise over N values, for one value of the switch. */
static float product(float x, float y, int threads, bool flush)
{
    tg_set_flush_denormals(flush);
    tg_set_num_threads(threads);
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_fill(TG_F32, TG_SHAPE(N), x), *b = tg_fill(TG_F32, TG_SHAPE(N), y);
    all[N - 1] = -1;
    CHECK(tg_copy_out(tg_mul(a, b), all, sizeof all) == 0);
    for (int i = 0; i < N; i++)
        if (all[i] != all[0]) { /* every chunk, whichever thread ran it, in one mode */
            CHECK(all[i] == all[0]);
            break;
        }
    tg_scope_end(s);
    return all[N - 1];
}

static void flushed_on_every_thread_count(void)
{
#ifdef HAVE_MXCSR
    const float tiny = 1e-30f, small = 1e-10f; /* 1e-40: below FLT_MIN, a denormal */
    for (int threads = 1; threads <= 2; threads++) {
        CHECK(product(tiny, small, threads, true) == 0.0f);        /* FTZ */
        CHECK(product(tiny * small, 1.0f, threads, true) == 0.0f); /* DAZ: a denormal input reads as 0 */
        float kept = product(tiny, small, threads, false);
        CHECK(kept > 0 && kept < FLT_MIN);
    }
    tg_set_flush_denormals(true);
#endif
}

static void the_callers_mode_is_kept(void)
{
#ifdef HAVE_MXCSR
    unsigned before = _mm_getcsr();
    CHECK((before & 0x8040) == 0); /* a C program starts without FTZ/DAZ */
    product(1e-30f, 1e-10f, 2, true);
    CHECK(_mm_getcsr() == before);
    /* and a caller that flushes on its own keeps that too */
    _mm_setcsr(before | 0x8040);
    product(1e-30f, 1e-10f, 2, false);
    CHECK(_mm_getcsr() == (before | 0x8040));
    _mm_setcsr(before);
    tg_set_flush_denormals(true);
#endif
}

static void the_switch(void)
{
    CHECK(tg_flush_denormals()); /* TF's default */
    tg_set_flush_denormals(false);
    CHECK(!tg_flush_denormals());
    tg_set_flush_denormals(true);
    CHECK(tg_flush_denormals());
}

int main(void)
{
    RUN(the_switch);
    RUN(flushed_on_every_thread_count);
    RUN(the_callers_mode_is_kept);
    return TEST_SUMMARY();
}
