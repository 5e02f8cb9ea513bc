/* The arrays of tests/fixtures/index_golden.txt (tools/make_index_fixtures.py): one per
 * line, `NAME RANK DIM... : V V ...`. golden(name) gives one as a float64 tensor in the
 * current scope, or NULL after printing what is missing; golden_check compares a tensor
 * with one element by element. */
#ifndef TG_TEST_INDEX_GOLDEN_H
#define TG_TEST_INDEX_GOLDEN_H

#include <stdlib.h>

#include "check.h"

#ifndef TG_FIXTURES_DIR
#error "TG_FIXTURES_DIR must name tests/fixtures (CMake defines it for the tests)"
#endif
#ifndef INDEX_GOLDEN_PATH
#define INDEX_GOLDEN_PATH TG_FIXTURES_DIR "/index_golden.txt"
#endif

enum { GOLDEN_MAX = 512, GOLDEN_LINE = 1 << 14 };

typedef struct golden_array {
    char name[64];
    tg_shape shape;
    int64_t n;
    double *v;
} golden_array;

static golden_array golden_arrays[GOLDEN_MAX];
static int golden_count = -1;

static bool golden_load(void)
{
    if (golden_count >= 0)
        return golden_count > 0;
    golden_count = 0;
    FILE *f = fopen(INDEX_GOLDEN_PATH, "r");
    if (!f) {
        printf("  cannot open %s (rerun tools/make_index_fixtures.py)\n", INDEX_GOLDEN_PATH);
        return false;
    }
    static char line[GOLDEN_LINE];
    while (fgets(line, sizeof line, f) && golden_count < GOLDEN_MAX) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        golden_array *a = &golden_arrays[golden_count];
        char *p = line, *end;
        int len = 0;
        if (sscanf(p, "%63s %n", a->name, &len) != 1)
            continue;
        p += len;
        a->shape.rank = (int)strtol(p, &end, 10);
        p = end;
        a->n = 1;
        for (int i = 0; i < a->shape.rank && i < TG_MAX_RANK; i++) {
            a->shape.dims[i] = strtoll(p, &end, 10);
            a->n *= a->shape.dims[i];
            p = end;
        }
        p = strchr(p, ':');
        if (!p)
            continue;
        p++;
        a->v = malloc(sizeof(double) * (size_t)(a->n ? a->n : 1));
        for (int64_t i = 0; i < a->n; i++) {
            a->v[i] = strtod(p, &end);
            p = end;
        }
        golden_count++;
    }
    fclose(f);
    return golden_count > 0;
}

static tg_tensor *golden(const char *name)
{
    golden_load();
    for (int i = 0; i < golden_count; i++)
        if (!strcmp(golden_arrays[i].name, name))
            return tg_tensor_from(TG_F64, golden_arrays[i].shape, golden_arrays[i].v);
    printf("  %s is not in %s (rerun tools/make_index_fixtures.py)\n", name, INDEX_GOLDEN_PATH);
    return NULL;
}

/* t (any dtype) has the golden array's shape and values within tol (relative or absolute). */
static bool golden_matches(const char *what, const tg_tensor *t, const char *name, double tol)
{
    tg_tensor *e = golden(name);
    if (!t || !e) {
        printf("  %s: %s\n", what, t ? "no golden array" : tg_last_error());
        return false;
    }
    tg_shape ts = tg_shape_of(t), es = tg_shape_of(e);
    bool ok = ts.rank == es.rank;
    for (int i = 0; ok && i < ts.rank; i++)
        ok = ts.dims[i] == es.dims[i];
    if (!ok) {
        printf("  %s: the shape differs from %s's\n", what, name);
        return false;
    }
    int64_t n = tg_size(t);
    double *got = malloc(sizeof(double) * (size_t)(n ? n : 1)), *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
    tg_copy_out_f64(t, got, n);
    tg_copy_out_f64(e, want, n);
    for (int64_t i = 0; ok && i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])))) {
            printf("  %s: element %lld is %.17g, %s has %.17g\n", what, (long long)i, got[i], name, want[i]);
            ok = false;
        }
    free(got);
    free(want);
    return ok;
}

/* Case `c`: f(c.x) against c.y and, when c.dx exists, the tape's gradient of sum(f(x) * c.w)
 * against c.dx. */
static bool golden_case(const char *c, tg_tensor *(*f)(const tg_tensor *x), bool grad, double tol)
{
    char nx[80], ny[80], nw[80], nd[80];
    snprintf(nx, sizeof nx, "%s.x", c);
    snprintf(ny, sizeof ny, "%s.y", c);
    snprintf(nw, sizeof nw, "%s.w", c);
    snprintf(nd, sizeof nd, "%s.dx", c);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = golden(nx);
    bool ok = x != NULL;
    if (ok) {
        tg_tape *tape = tg_tape_begin();
        tg_watch(tape, x);
        tg_tensor *y = f(x);
        tg_tensor *w = grad ? golden(nw) : NULL;
        tg_tensor *loss = grad && y && w ? tg_sum(tg_mul(y, w)) : NULL;
        tg_tape_end(tape);
        ok = golden_matches(c, y, ny, tol);
        if (ok && grad)
            ok = golden_matches(c, loss ? tg_gradient(tape, loss, x) : NULL, nd, tol);
        tg_tape_free(tape);
    }
    tg_scope_end(s);
    return ok;
}

#endif
