/* The op profile: calls counted per op and per phase (run directly or by a gradient
 * computation), the optimizer's update as a section, rows sorted by time, nothing recorded while
 * off or on another thread, and the printed table. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "tmpfiles.h"

/* The row for `name` (backward or not), or NULL. */
static const tg_profile_row *find(const tg_profile_row *rows, int n, const char *name, bool backward)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].name, name) && rows[i].backward == backward)
            return &rows[i];
    return NULL;
}

/* Three products, one of them under a tape whose gradient runs two more (one per input),
 * and one optimizer step. */
static void run_workload(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_fill(TG_F32, TG_SHAPE(64, 32), 0.5), *b = tg_fill(TG_F32, TG_SHAPE(32, 16), 0.25);
    tg_tensor *w = tg_variable(b, .name = "w");
    tg_matmul(a, b);
    tg_matmul(a, b);
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_sum(tg_matmul(a, w));
    tg_tape_end(t);
    tg_tensor *g = NULL;
    CHECK(tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = &w, .n_sources = 1, .out = &g) == 0);
    tg_tape_free(t);
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1);
    CHECK(tg_apply_gradients(opt, &g, &w, 1) == 0);
    tg_optimizer_free(opt);
    tg_variable_free(w);
    tg_scope_end(s);
}

static void test_counts_ops_by_phase(void)
{
    tg_profile_reset();
    tg_profile_start();
    run_workload();
    tg_profile_stop();
    tg_profile_row rows[64];
    double profiled = -1;
    int n = tg_profile_rows(rows, 64, &profiled);
    CHECK(n > 0 && n <= 64);
    const tg_profile_row *fwd = find(rows, n, "tg_matmul", false), *bwd = find(rows, n, "tg_matmul", true);
    const tg_profile_row *upd = find(rows, n, "optimizer update", false);
    CHECK(fwd && fwd->calls == 3);
    CHECK(bwd && bwd->calls == 1); /* d/dw = a^T dy; a is a constant, so no d/da product */
    CHECK(upd && upd->calls == 1);
    CHECK(find(rows, n, "tg_sum", false) && find(rows, n, "tg_sum", false)->calls == 1);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        CHECK(rows[i].calls > 0 && rows[i].seconds >= 0);
        CHECK(i == 0 || rows[i - 1].seconds >= rows[i].seconds);
        sum += rows[i].seconds;
    }
    CHECK(profiled >= sum && profiled < 60);
}

/* Gradients that meet are summed by the gradient computation: that add is backward too. */
static void test_accumulation_counts_as_backward(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_fill(TG_F64, TG_SHAPE(8), 2.0);
    tg_profile_reset();
    tg_profile_start();
    tg_tape *t = tg_tape_begin();
    tg_watch(t, x);
    tg_tensor *y = tg_sum(tg_mul(tg_exp(x), tg_square(x))); /* x reaches the product twice */
    tg_tape_end(t);
    tg_tensor *g = tg_gradient(t, y, x);
    tg_tape_free(t);
    tg_profile_stop();
    CHECK(g != NULL);
    tg_profile_row rows[64];
    int n = tg_profile_rows(rows, 64, NULL);
    CHECK(find(rows, n, "tg_add", true) && find(rows, n, "tg_add", true)->calls == 1);
    CHECK(!find(rows, n, "tg_add", false));
    CHECK(find(rows, n, "tg_exp", false) && find(rows, n, "tg_square", false));
    tg_profile_reset();
    tg_scope_end(s);
}

static void test_off_records_nothing_and_reset_empties(void)
{
    tg_profile_reset();
    run_workload(); /* never started */
    CHECK(tg_profile_rows(NULL, 0, NULL) == 0);
    tg_profile_start();
    run_workload();
    tg_profile_stop();
    int n = tg_profile_rows(NULL, 0, NULL);
    CHECK(n >= 3);
    run_workload(); /* stopped again */
    tg_profile_row rows[64];
    CHECK(tg_profile_rows(rows, 64, NULL) == n);
    CHECK(find(rows, n, "tg_matmul", false)->calls == 3);
    /* Fewer rows than there are: the ones with the most time, and the full count. */
    tg_profile_row one = {0};
    CHECK(tg_profile_rows(&one, 1, NULL) == n);
    CHECK(one.name && !strcmp(one.name, rows[0].name) && one.seconds == rows[0].seconds);
    CHECK(tg_profile_rows(rows, -1, NULL) == n);
    EXPECT_ERROR(tg_profile_print(NULL) == -1, "tg_profile_print: `stream` is NULL");
    tg_clear_error();
    tg_profile_reset();
    double profiled = -1;
    CHECK(tg_profile_rows(rows, 64, &profiled) == 0 && profiled == 0);
}

static void *other_thread(void *arg)
{
    (void)arg;
    run_workload(); /* this thread never started profiling */
    return NULL;
}

static void test_per_thread(void)
{
    tg_profile_reset();
    tg_profile_start();
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_thread, NULL) == 0);
    pthread_join(th, NULL);
    tg_profile_stop();
    CHECK(tg_profile_rows(NULL, 0, NULL) == 0);
}

static void test_print(void)
{
    CHECK(make_tmpdir("tg-profile"));
    tg_profile_reset();
    tg_profile_start();
    run_workload();
    tg_profile_stop();
    FILE *f = fopen(at("profile.txt"), "w+");
    CHECK(f && tg_profile_print(f) == 0);
    rewind(f);
    char text[4096] = {0};
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    CHECK(got > 0);
    CHECK(strstr(text, "op profile: ") == text);
    CHECK(strstr(text, "us per call"));
    CHECK(strstr(text, "\ntg_matmul (in backward) "));
    CHECK(strstr(text, "\noptimizer update "));
    FILE *full = fopen("/dev/full", "w");
    if (full) { /* a stream that cannot be written: -1, not a crash */
        CHECK(tg_profile_print(full) == -1);
        fclose(full);
    }
    remove(at("profile.txt"));
    remove_tmpdir();
    tg_profile_reset();
}

int main(void)
{
    RUN(test_counts_ops_by_phase);
    RUN(test_accumulation_counts_as_backward);
    RUN(test_off_records_nothing_and_reset_empties);
    RUN(test_per_thread);
    RUN(test_print);
    return TEST_SUMMARY();
}
