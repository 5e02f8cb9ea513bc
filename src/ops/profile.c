/* The op profile: while a thread profiles, the dispatcher times each op's kernel and the
 * optimizer its update, into a table of the thread's own (no locks, no allocation). Ops
 * that a gradient computation runs (backward rules, the sums of gradients that meet) are
 * kept apart from the ones the program ran itself, so a training step reads as its
 * forward, its backward and its update. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "tapegrad/ops.h"

enum { PHASES = 2, SECTIONS = 8 };

typedef struct cell {
    int64_t calls;
    double seconds;
} cell;

static _Thread_local struct {
    double started, before; /* this run's start; seconds of earlier runs */
    cell ops[TG_OP_COUNT][PHASES];
    const char *section_name[SECTIONS]; /* static strings, as given to tg__profile_add */
    cell sections[SECTIONS];
} prof;

double tg__profile_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void tg__profile_op(tg_op_kind op, double seconds)
{
    cell *c = &prof.ops[op][tg__ctx()->gradient_depth > 0 ? 1 : 0];
    c->calls++;
    c->seconds += seconds;
}

void tg__profile_add(const char *section, double seconds)
{
    for (int i = 0; i < SECTIONS; i++)
        if (!prof.section_name[i] || prof.section_name[i] == section) {
            prof.section_name[i] = section;
            prof.sections[i].calls++;
            prof.sections[i].seconds += seconds;
            return;
        }
}

void tg_profile_start(void)
{
    tg_context *ctx = tg__ctx();
    if (!ctx->profiling)
        prof.started = tg__profile_now();
    ctx->profiling = true;
}

void tg_profile_stop(void)
{
    tg_context *ctx = tg__ctx();
    if (ctx->profiling)
        prof.before += tg__profile_now() - prof.started;
    ctx->profiling = false;
}

void tg_profile_reset(void)
{
    bool on = tg__ctx()->profiling;
    memset(&prof, 0, sizeof prof);
    if (on)
        prof.started = tg__profile_now();
}

static int by_seconds(const void *a, const void *b)
{
    double x = ((const tg_profile_row *)a)->seconds, y = ((const tg_profile_row *)b)->seconds;
    return (x < y) - (x > y);
}

/* Every row of the table, unsorted; `all` holds MAX_ROWS. */
enum { MAX_ROWS = PHASES * TG_OP_COUNT + SECTIONS };
static int all_rows(tg_profile_row *all)
{
    int n = 0;
    for (int op = 0; op < TG_OP_COUNT; op++)
        for (int ph = 0; ph < PHASES; ph++)
            if (prof.ops[op][ph].calls)
                all[n++] = (tg_profile_row){.name = tg__op_name((tg_op_kind)op),
                                            .backward = ph == 1,
                                            .calls = prof.ops[op][ph].calls,
                                            .seconds = prof.ops[op][ph].seconds};
    for (int i = 0; i < SECTIONS && prof.section_name[i]; i++)
        all[n++] = (tg_profile_row){
            .name = prof.section_name[i], .calls = prof.sections[i].calls, .seconds = prof.sections[i].seconds};
    return n;
}

int tg_profile_rows(tg_profile_row *rows, int max, double *profiled_seconds)
{
    tg_profile_row all[MAX_ROWS];
    int n = all_rows(all);
    qsort(all, (size_t)n, sizeof *all, by_seconds);
    if (rows && max > 0)
        memcpy(rows, all, sizeof *rows * (size_t)(n < max ? n : max));
    if (profiled_seconds)
        *profiled_seconds = prof.before + (tg__ctx()->profiling ? tg__profile_now() - prof.started : 0);
    return n;
}

int tg_profile_print(FILE *f)
{
    if (!f)
        return tg__null_arg((tg_loc){0}, "tg_profile_print", "stream"), -1;
    tg_profile_row rows[MAX_ROWS];
    double total = 0, profiled;
    int n = tg_profile_rows(rows, MAX_ROWS, &profiled);
    for (int i = 0; i < n; i++)
        total += rows[i].seconds;
    if (fprintf(f, "op profile: %.3f s profiled, %.3f s in the kernels below (%.0f%%)\n", profiled, total,
                profiled > 0 ? 100 * total / profiled : 0) < 0)
        return -1;
    fprintf(f, "%-44s %10s %12s %7s %12s\n", "op", "calls", "seconds", "share", "us per call");
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", rows[i].name, rows[i].backward ? " (in backward)" : "");
        fprintf(f, "%-44s %10lld %12.4f %6.1f%% %12.2f\n", name, (long long)rows[i].calls, rows[i].seconds,
                profiled > 0 ? 100 * rows[i].seconds / profiled : 0, 1e6 * rows[i].seconds / (double)rows[i].calls);
    }
    return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}
