/* Printing shared by the seed programs (examples/seeds/): one fact per line, in a form
 * tests/test_seeds.c can check.
 *
 *   gradient x: 2                   a gradient (a scalar, or [v0 v1 ...] row-major)
 *   gradient x: None                TF's None (tapegrad's NULL)
 *   cause x: non_differentiable line 23
 *     <what happened and what to do instead>
 */
#ifndef SEED_REPORT_H
#define SEED_REPORT_H

#include <stdio.h>

#include <tapegrad.h>

/* "2", or "[1 2 3]" for a tensor of several elements (row-major); a tensor of more
 * than 32 elements as "[N values, max |v| M]". */
static inline void print_values(FILE *out, const tg_tensor *t)
{
    enum { MAX_SHOWN = 32 };
    int64_t n = tg_size(t);
    double v[MAX_SHOWN];
    if (n > MAX_SHOWN) {
        double m = tg_item(tg_max(tg_abs(t)));
        fprintf(out, "[%lld values, max |v| %.6g]", (long long)n, m);
        return;
    }
    if (tg_copy_out_f64(t, v, n) != 0) {
        fprintf(out, "<%s>", tg_last_error());
        return;
    }
    if (n == 1 && tg_rank(t) == 0) {
        fprintf(out, "%.6g", v[0]);
        return;
    }
    fputc('[', out);
    for (int64_t i = 0; i < n; i++)
        fprintf(out, i ? " %.6g" : "%.6g", v[i]);
    fputc(']', out);
}

static inline void print_gradient(const char *name, const tg_tensor *g)
{
    printf("gradient %s: ", name);
    if (g)
        print_values(stdout, g);
    else
        fputs(tg_has_error() ? "error" : "None", stdout);
    putchar('\n');
}

static inline void print_diagnosis(const char *name, const tg_diagnosis *d)
{
    printf("cause %s: %s line %d\n  %s\n", name, tg_cause_name(d->cause), d->where.line, d->message);
}

/* tg_explain on a tape that is still alive. */
static inline void print_cause(tg_tape *tape, const tg_tensor *target, const tg_tensor *source, const char *name)
{
    tg_diagnosis d;
    if (tg_explain(tape, target, source, &d) != 0)
        printf("cause %s: unknown (%s)\n", name, tg_last_error());
    else
        print_diagnosis(name, &d);
}

/* The diagnosis kept by the gradient call that left `source` without a gradient. */
static inline void print_missing_cause(const tg_tensor *source, const char *name)
{
    tg_diagnosis d;
    if (tg_explain_missing(source, &d) != 0)
        printf("cause %s: none kept\n", name);
    else
        print_diagnosis(name, &d);
}

/* apply_gradients' outcome: "apply_gradients: ok", or "apply_gradients: error" followed
 * by the error (TF's "No gradients provided for any variable" and one line per variable)
 * and the cause code of each variable left without a gradient. */
#define report_apply(opt, grads, vars, n) report_apply_at(TG_LOC, opt, grads, vars, n)
static inline int report_apply_at(tg_loc loc, tg_optimizer *opt, tg_tensor *const *grads, tg_tensor *const *vars, int n)
{
    if (tg_apply_gradients_at(loc, opt, grads, vars, n) == 0) {
        puts("apply_gradients: ok");
        return 0;
    }
    printf("apply_gradients: error\n%s\n", tg_last_error());
    tg_clear_error();
    for (int i = 0; i < n; i++)
        if (!grads[i])
            print_missing_cause(vars[i], tg_variable_name(vars[i]));
    return -1;
}

#endif
