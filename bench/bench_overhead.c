/* Per-op eager overhead: what recording a scalar op on a tape costs, plus its share of
 * the backward pass, and what the same op costs with no tape active.
 *
 * One iteration opens a scope and a tape, chains OPS scalar ops (alternately
 * y = y * a and y = y + b, starting from a trainable scalar variable x, which the tape
 * watches when it is read), ends the tape, takes dy/dx, and frees everything, so
 * memory stays flat. The figure is the median over REPS repetitions of
 * (time of a repetition) / (ops in it). bench/torch_overhead.py measures the same with
 * PyTorch, and tools/bench.sh puts the two side by side.
 *
 *   bench_overhead [OPS_PER_TAPE]      (default 100) */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <tapegrad.h>

#define REPS           7
#define TARGET_SECONDS 0.15 /* per repetition */

static const double A = 1.001, B = 0.001;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* With source locations (the macros pass the caller's file:line), or without (the _at
 * functions given an empty location): the difference is what locations cost. */
static bool with_locations = true;

static tg_tensor *chain(tg_tensor *x, const tg_tensor *a, const tg_tensor *b, int ops)
{
    tg_tensor *y = x;
    if (!with_locations) {
        for (int i = 0; i < ops; i++)
            y = (i % 2 == 0) ? tg_mul_at((tg_loc){0}, y, a) : tg_add_at((tg_loc){0}, y, b);
        return y;
    }
    for (int i = 0; i < ops; i++)
        y = (i % 2 == 0) ? tg_mul(y, a) : tg_add(y, b);
    return y;
}

/* One tape: record, backward, free. Returns dy/dx (NaN on error). */
static double record_backward(tg_tensor *x, const tg_tensor *a, const tg_tensor *b, int ops)
{
    tg_scope *s = tg_scope_begin();
    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = chain(x, a, b, ops);
    tg_tape_end(tape);
    tg_tensor *g = tg_gradient(tape, y, x);
    double v = g ? tg_item(g) : NAN;
    tg_tape_free(tape);
    tg_scope_end(s);
    return v;
}

static double forward_only(tg_tensor *x, const tg_tensor *a, const tg_tensor *b, int ops)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *y = chain(x, a, b, ops);
    double v = y ? tg_item(y) : NAN;
    tg_scope_end(s);
    return v;
}

typedef double (*bench_fn)(tg_tensor *, const tg_tensor *, const tg_tensor *, int);

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

/* Median ns per op: the iteration count is calibrated so a repetition takes about
 * TARGET_SECONDS. */
static double measure(bench_fn f, tg_tensor *x, const tg_tensor *a, const tg_tensor *b, int ops)
{
    long iters = 1;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < iters; i++)
            f(x, a, b, ops);
        double dt = now() - t0;
        if (dt > 0.02) {
            iters = (long)(iters * TARGET_SECONDS / dt) + 1;
            break;
        }
        iters *= 4;
    }
    double per_op[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        for (long i = 0; i < iters; i++)
            f(x, a, b, ops);
        per_op[r] = (now() - t0) * 1e9 / ((double)iters * ops);
    }
    qsort(per_op, REPS, sizeof per_op[0], cmp_double);
    return per_op[REPS / 2];
}

int main(int argc, char **argv)
{
    int ops = argc > 1 ? atoi(argv[1]) : 100;
    if (ops < 2) {
        fprintf(stderr, "usage: %s [OPS_PER_TAPE >= 2]\n", argv[0]);
        return 2;
    }
    tg_scope *outer = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x");
    const tg_tensor *a = tg_scalar(A), *b = tg_scalar(B);

    /* The benchmark must measure working code: dy/dx of the chain is A^(ops/2). */
    double want = pow(A, ops / 2), got = record_backward(x, a, b, ops);
    if (!(fabs(got - want) <= 1e-4 * want)) {
        fprintf(stderr, "bench_overhead: wrong gradient %g (expected %g): %s\n", got, want,
                tg_last_error() ? tg_last_error() : "no error");
        return 1;
    }

    printf("tapegrad  record+backward  %.1f ns/op\n", measure(record_backward, x, a, b, ops));
    printf("tapegrad  forward          %.1f ns/op\n", measure(forward_only, x, a, b, ops));
    with_locations = false;
    printf("tapegrad  record+backward, no source locations  %.1f ns/op\n", measure(record_backward, x, a, b, ops));
    printf("tapegrad  forward, no source locations          %.1f ns/op\n", measure(forward_only, x, a, b, ops));
    tg_variable_free(x);
    tg_scope_end(outer);
    return 0;
}
