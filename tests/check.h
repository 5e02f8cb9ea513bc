/* A small test harness: CHECK macros, a runner and the closing "N passed, N failed" line.
 * A test is a function `static void test_x(void)`; main() lists them with RUN(test_x). */
#ifndef TG_TEST_CHECK_H
#define TG_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <tapegrad.h>

static int check_failures_in_test;
static int tests_passed, tests_failed;

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                              \
            if (tg_last_error())                                                                  \
                printf("       last error: %s\n", tg_last_error());                              \
            check_failures_in_test++;                                                             \
        }                                                                                         \
    } while (0)

#define CHECK_NEAR(actual, expected, tol)                                                         \
    do {                                                                                          \
        double a_ = (double)(actual), e_ = (double)(expected);                                    \
        if (!(fabs(a_ - e_) <= (tol) * (1.0 + fabs(e_)))) {                                       \
            printf("  FAIL %s:%d: %s = %.10g, expected %.10g (tol %g)\n", __FILE__, __LINE__,     \
                   #actual, a_, e_, (double)(tol));                                              \
            check_failures_in_test++;                                                             \
        }                                                                                         \
    } while (0)

/* The last error exists and contains `needle`. */
#define CHECK_ERROR(needle)                                                                       \
    do {                                                                                          \
        const char *m_ = tg_last_error();                                                         \
        if (!m_ || !strstr(m_, needle)) {                                                         \
            printf("  FAIL %s:%d: expected an error containing \"%s\", got \"%s\"\n", __FILE__,   \
                   __LINE__, needle, m_ ? m_ : "(no error)");                                    \
            check_failures_in_test++;                                                             \
        }                                                                                         \
    } while (0)

/* Every element of tensor t equals the given doubles within tol. */
#define CHECK_VALUES(t, tol, ...)                                                                 \
    do {                                                                                          \
        const double exp_[] = {__VA_ARGS__};                                                      \
        check_values_(__FILE__, __LINE__, #t, t, exp_, (int)(sizeof exp_ / sizeof exp_[0]), tol); \
    } while (0)

static inline void check_values_(const char *file, int line, const char *expr, const tg_tensor *t,
                                 const double *expected, int n, double tol)
{
    if (!t) {
        printf("  FAIL %s:%d: %s is NULL (%s)\n", file, line, expr, tg_last_error() ? tg_last_error() : "no error");
        check_failures_in_test++;
        return;
    }
    if (tg_size(t) != n) {
        printf("  FAIL %s:%d: %s has %lld elements, expected %d\n", file, line, expr, (long long)tg_size(t), n);
        check_failures_in_test++;
        return;
    }
    double got[4096];
    if (n > 4096 || tg_copy_out_f64(t, got, n) != 0)
        return;
    for (int i = 0; i < n; i++) {
        if (!(fabs(got[i] - expected[i]) <= tol * (1.0 + fabs(expected[i])))) {
            printf("  FAIL %s:%d: %s[%d] = %.10g, expected %.10g\n", file, line, expr, i, got[i], expected[i]);
            check_failures_in_test++;
            return;
        }
    }
}

#define RUN(fn)                                                                                   \
    do {                                                                                          \
        check_failures_in_test = 0;                                                               \
        tg_clear_error();                                                                         \
        fn();                                                                                     \
        if (check_failures_in_test) {                                                             \
            printf("FAILED %s\n", #fn);                                                           \
            tests_failed++;                                                                       \
        } else {                                                                                  \
            tests_passed++;                                                                       \
        }                                                                                         \
    } while (0)

#define TEST_SUMMARY()                                                                            \
    (printf("%d passed, %d failed\n", tests_passed, tests_failed), tests_failed ? 1 : 0)

#endif
