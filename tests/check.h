/* The test toolkit's harness: CHECK macros that print file:line and the expression, a
 * REQUIRE that stops the test loudly, error tests one {call, message} per line
 * (EXPECT_ERROR), one tensor comparison (tensor_matches_: shape, values, tolerance, the
 * first mismatch), a runner and the closing "N passed, N failed" line. Fixtures are read
 * with fixture.h, gradients checked with gradcheck.h.
 * A test is a function `static void test_x(void)`; main() lists them with RUN(test_x). */
#ifndef TG_TEST_CHECK_H
#define TG_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tapegrad.h>

static int check_failures_in_test;
static int tests_passed, tests_failed;

#define CHECK(cond)                                                  \
    do {                                                             \
        if (!(cond)) {                                               \
            printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            if (tg_last_error())                                     \
                printf("       last error: %s\n", tg_last_error());  \
            check_failures_in_test++;                                \
        }                                                            \
    } while (0)

#define CHECK_NEAR(actual, expected, tol)                                                                      \
    do {                                                                                                       \
        double a_ = (double)(actual), e_ = (double)(expected);                                                 \
        if (!(fabs(a_ - e_) <= (tol) * (1.0 + fabs(e_)))) {                                                    \
            printf("  FAIL %s:%d: %s = %.10g, expected %.10g (tol %g)\n", __FILE__, __LINE__, #actual, a_, e_, \
                   (double)(tol));                                                                             \
            check_failures_in_test++;                                                                          \
        }                                                                                                      \
    } while (0)

/* The last error exists and contains `needle`. */
#define CHECK_ERROR(needle)                                                                                       \
    do {                                                                                                          \
        const char *m_ = tg_last_error();                                                                         \
        if (!m_ || !strstr(m_, needle)) {                                                                         \
            printf("  FAIL %s:%d: expected an error containing \"%s\", got \"%s\"\n", __FILE__, __LINE__, needle, \
                   m_ ? m_ : "(no error)");                                                                       \
            check_failures_in_test++;                                                                             \
        }                                                                                                         \
    } while (0)

/* A check that stops the test: when cond is false it prints file:line and the expression
 * (and the last error), counts a failure and returns from the test function. For what
 * the rest of the test cannot do without (a file opened, a model built). */
#define REQUIRE(cond)                                                                                \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            printf("  FAIL %s:%d: %s (required: the test stops here)\n", __FILE__, __LINE__, #cond); \
            if (tg_last_error())                                                                     \
                printf("       last error: %s\n", tg_last_error());                                  \
            check_failures_in_test++;                                                                \
            return;                                                                                  \
        }                                                                                            \
    } while (0)

/* An error test, one {call, expected message} per line:
 *   EXPECT_ERROR(tg_relu(ints) == NULL, "tg_relu: `x` must be float32 or float64, not int32");
 * `failed` is the call with the test that it failed (== NULL, == -1); the last error must
 * then contain `needle`. A failure prints file:line, the call and the message got. */
#define EXPECT_ERROR(failed, needle) expect_error_(__FILE__, __LINE__, #failed, (failed), needle)

static inline void expect_error_(const char *file, int line, const char *expr, bool failed, const char *needle)
{
    const char *m = tg_last_error();
    if (!failed) {
        printf("  FAIL %s:%d: %s: the call did not fail (expected an error containing \"%s\")\n", file, line, expr,
               needle);
        check_failures_in_test++;
    } else if (!m || !strstr(m, needle)) {
        printf("  FAIL %s:%d: %s: expected an error containing \"%s\", got \"%s\"\n", file, line, expr, needle,
               m ? m : "(no error)");
        check_failures_in_test++;
    }
}

/* ---- tensor comparison -------------------------------------------------------------------- */
/* The one comparison of a tensor with expected values: t exists, has `shape` (when shape
 * is not NULL) and n elements, and each is within tol of want[i], relative-or-absolute:
 * |got - want| <= tol (1 + |want|), so tol 0 asks for equal numbers; CHECK_BITS (a
 * negative tol) asks for the same bits, NaN payloads and the sign of 0 included. Prints
 * file:line, the expression and the first mismatch; returns whether all matched (a
 * failure is counted). */
#define CHECK_BITS (-1.0)
static inline const char *check_shape_str_(const tg_shape *s, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < s->rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)s->dims[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

static inline bool tensor_matches_(const char *file, int line, const char *expr, const tg_tensor *t,
                                   const tg_shape *shape, const double *want, int64_t n, double tol)
{
    const char *why = NULL;
    char buf[160];
    double *got = NULL;
    if (!t) {
        why = tg_last_error() ? tg_last_error() : "no error";
        snprintf(buf, sizeof buf, "is NULL (%s)", why);
    } else if (shape && (tg_shape_of(t).rank != shape->rank ||
                         memcmp(tg_shape_of(t).dims, shape->dims, sizeof(int64_t) * (size_t)shape->rank))) {
        char a[64], b[64];
        tg_shape ts = tg_shape_of(t);
        snprintf(buf, sizeof buf, "has shape %s, expected %s", check_shape_str_(&ts, a, sizeof a),
                 check_shape_str_(shape, b, sizeof b));
    } else if (tg_size(t) != n) {
        snprintf(buf, sizeof buf, "has %lld elements, expected %lld", (long long)tg_size(t), (long long)n);
    } else if (!(got = malloc(sizeof(double) * (size_t)(n ? n : 1))) || tg_copy_out_f64(t, got, n) != 0) {
        snprintf(buf, sizeof buf, "cannot be read (%s)", tg_last_error() ? tg_last_error() : "out of memory");
    } else {
        buf[0] = 0;
        for (int64_t i = 0; i < n; i++)
            if (tol < 0 ? memcmp(&got[i], &want[i], sizeof(double)) != 0
                        : !(fabs(got[i] - want[i]) <= tol * (1.0 + fabs(want[i])))) {
                snprintf(buf, sizeof buf, "[%lld] = %.17g, expected %.17g (tol %g)", (long long)i, got[i], want[i],
                         tol);
                break;
            }
    }
    free(got);
    if (!buf[0])
        return true;
    printf("  FAIL %s:%d: %s %s\n", file, line, expr, buf);
    check_failures_in_test++;
    return false;
}

/* t exists and has shape s (a predicate, for CHECK). */
static inline bool has_shape(const tg_tensor *t, tg_shape s)
{
    tg_shape got = tg_shape_of(t);
    return t && got.rank == s.rank && !memcmp(got.dims, s.dims, sizeof(int64_t) * (size_t)s.rank);
}

/* Every element of tensor t equals the given doubles within tol (any shape of that size). */
#define CHECK_VALUES(t, tol, ...)                                                                             \
    do {                                                                                                      \
        const double exp_[] = {__VA_ARGS__};                                                                  \
        tensor_matches_(__FILE__, __LINE__, #t, t, NULL, exp_, (int64_t)(sizeof exp_ / sizeof exp_[0]), tol); \
    } while (0)

/* t has the given shape and values: CHECK_TENSOR(y, TG_SHAPE(2, 2), 1e-12, 1, 2, 3, 4). */
#define CHECK_TENSOR(t, shape, tol, ...)                                                                         \
    do {                                                                                                         \
        const double exp_[] = {__VA_ARGS__};                                                                     \
        const tg_shape shape_ = shape;                                                                           \
        tensor_matches_(__FILE__, __LINE__, #t, t, &shape_, exp_, (int64_t)(sizeof exp_ / sizeof exp_[0]), tol); \
    } while (0)

/* t has `shape` (NULL: any) and the n values of want. Returns whether it matched. */
#define TENSOR_MATCHES(t, shape, want, n, tol) tensor_matches_(__FILE__, __LINE__, #t, t, shape, want, n, tol)

/* a agrees with b: the same shape, and values within tol of b's (CHECK_BITS: the same
 * dtype and bits). */
#define TENSORS_AGREE(a, b, tol) tensors_agree_(__FILE__, __LINE__, #a, a, b, tol)
static inline bool tensors_agree_(const char *file, int line, const char *expr, const tg_tensor *a, const tg_tensor *b,
                                  double tol)
{
    if (!b) {
        printf("  FAIL %s:%d: the reference for %s is NULL (%s)\n", file, line, expr,
               tg_last_error() ? tg_last_error() : "no error");
        check_failures_in_test++;
        return false;
    }
    if (a && tol < 0 && tg_dtype_of(a) != tg_dtype_of(b)) {
        printf("  FAIL %s:%d: %s is %s, the reference %s\n", file, line, expr, tg_dtype_name(tg_dtype_of(a)),
               tg_dtype_name(tg_dtype_of(b)));
        check_failures_in_test++;
        return false;
    }
    int64_t n = tg_size(b);
    double *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
    tg_shape shape = tg_shape_of(b);
    bool ok = want && tg_copy_out_f64(b, want, n) == 0 && tensor_matches_(file, line, expr, a, &shape, want, n, tol);
    free(want);
    return ok;
}

#define RUN(fn)                         \
    do {                                \
        check_failures_in_test = 0;     \
        tg_clear_error();               \
        fn();                           \
        if (check_failures_in_test) {   \
            printf("FAILED %s\n", #fn); \
            tests_failed++;             \
        } else {                        \
            tests_passed++;             \
        }                               \
    } while (0)

#define TEST_SUMMARY() (printf("%d passed, %d failed\n", tests_passed, tests_failed), tests_failed ? 1 : 0)

/* All of a model's weights, copied out as doubles (*count of them; free() the array), to
 * compare before and after. */
static inline double *weights_of(tg_model *m, int64_t *count)
{
    int n = 0;
    tg_tensor *const *v = tg_model_variables(m, &n);
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += tg_size(v[i]);
    double *w = malloc(sizeof(double) * (size_t)(total ? total : 1));
    for (int i = 0, at = 0; i < n; at += (int)tg_size(v[i]), i++)
        tg_copy_out_f64(v[i], w + at, tg_size(v[i]));
    *count = total;
    return w;
}

/* Whether two safetensors files hold the same tensors, bit for bit; prints the first that
 * differs. */
static inline bool same_model_files(const char *a, const char *b)
{
    tg_scope *s = tg_scope_begin();
    tg_safetensors *fa = tg_safetensors_open(a), *fb = tg_safetensors_open(b);
    bool same = fa && fb && tg_safetensors_count(fa) == tg_safetensors_count(fb);
    for (int i = 0; same && i < tg_safetensors_count(fa); i++) {
        const char *name = tg_safetensors_names(fa)[i];
        tg_tensor *x = tg_safetensors_get(fa, name), *y = tg_safetensors_get(fb, name);
        int64_t n = x ? tg_size(x) : 0;
        double *u = calloc((size_t)n + 1, sizeof *u), *v = calloc((size_t)n + 1, sizeof *v);
        same = x && y && tg_size(y) == n && tg_copy_out_f64(x, u, n) == 0 && tg_copy_out_f64(y, v, n) == 0 &&
               memcmp(u, v, sizeof *u * (size_t)n) == 0;
        if (!same)
            printf("  %s differs between %s and %s\n", name, a, b);
        free(u);
        free(v);
    }
    tg_safetensors_close(fa);
    tg_safetensors_close(fb);
    tg_scope_end(s);
    return same;
}

#endif
