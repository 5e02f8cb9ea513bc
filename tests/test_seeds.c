/* Runs every program under examples/seeds/ (the seed articles' Python examples in C) and
 * checks what it prints against what TensorFlow 2 computes: gradient values, None, the
 * errors TF raises, and tapegrad's cause codes with the line of the program they name.
 * Expected values come from TF's semantics (../shared/tf-semantics.md and the maths of
 * each example, worked out in the programs' comments), not from tapegrad's output.
 *
 * CMake passes TG_SEEDS_DIR (where the seed_<name> executables are built) and
 * TG_SEEDS_SRC_DIR (examples/seeds/, to find the lines a diagnosis must name). */
#include <dirent.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#ifndef TG_SEEDS_DIR
#error "TG_SEEDS_DIR must name the directory of the seed_<name> executables"
#endif
#ifndef TG_SEEDS_SRC_DIR
#error "TG_SEEDS_SRC_DIR must name examples/seeds/"
#endif

/* ---- running a program ------------------------------------------------------------------ */
typedef struct output {
    char *text; /* stdout, NUL-terminated; NULL when the program could not be run */
    int status; /* exit status, or -1 */
} output;

/* Every program the test knows; a .c file in examples/seeds/ that is not here fails. */
static const char *const known[] = {
    "variable_created_inside_tape_sgd",
    "variable_created_before_tape",
    "persistent_tape_assign_sub",
    "categorical_crossentropy_on_one_unit",
    "frozen_first_layer",
    "custom_training_loop",
    "loss_times_constant",
    "numpy_floor_in_loss",
    "floor_in_loss",
    "forward_pass_outside_tape",
    "variables_not_explicitly_watched",
    "variables_explicitly_watched",
    "variable_created_outside_tape_scope",
    "variable_created_inside_tape_scope",
    "if_on_variable_inside_tape",
    "apply_gradients_after_tape_block",
    "reduce_sum_difference_loss",
    "python_if_on_tensor",
};

static output run_seed(const char *name)
{
    output o = {NULL, -1};
    char path[1024], cmd[1100];
    snprintf(path, sizeof path, "%s/seed_%s", TG_SEEDS_DIR, name);
    if (access(path, X_OK) != 0) {
        printf("  missing program %s\n", path);
        return o;
    }
    snprintf(cmd, sizeof cmd, "'%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return o;
    size_t cap = 4096, len = 0, got;
    o.text = malloc(cap);
    while (o.text && (got = fread(o.text + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *bigger = realloc(o.text, cap *= 2);
            if (!bigger)
                free(o.text);
            o.text = bigger;
        }
    }
    int st = pclose(p);
    if (o.text)
        o.text[len] = 0;
    o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return o;
}

/* Runs `name` and checks that it exited with status 0; the caller frees o.text. */
#define RUN_SEED(o, name)      \
    output o = run_seed(name); \
    CHECK(o.text != NULL);     \
    CHECK(o.status == 0);      \
    if (!o.text)               \
    return

/* ---- reading its output ------------------------------------------------------------------ */
/* The line of `text` that starts with `prefix` (a pointer into text), or NULL. */
static const char *line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, n) == 0)
            return l;
    return NULL;
}

/* `line` is one whole line of the output. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *l = line_starting(text, line); l; l = line_starting(l + 1, line))
        if (l[n] == '\n' || l[n] == 0)
            return true;
    return false;
}

#define CHECK_LINE(text, line)                                                                \
    do {                                                                                      \
        if (!has_line(text, line)) {                                                          \
            printf("  FAIL %s:%d: no line \"%s\" in:\n%s\n", __FILE__, __LINE__, line, text); \
            check_failures_in_test++;                                                         \
        }                                                                                     \
    } while (0)

/* The number after `prefix` on the line that starts with it, NaN when absent. */
static double number_after(const char *text, const char *prefix)
{
    const char *l = line_starting(text, prefix);
    return l ? strtod(l + strlen(prefix), NULL) : NAN;
}

/* The first line number of examples/seeds/<name>.c containing `needle`, or -1. */
static int source_line(const char *name, const char *needle)
{
    char path[1024], buf[1024];
    snprintf(path, sizeof path, "%s/%s.c", TG_SEEDS_SRC_DIR, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int line = 0, found = -1;
    while (found < 0 && fgets(buf, sizeof buf, f)) {
        line++;
        if (strstr(buf, needle))
            found = line;
    }
    fclose(f);
    return found;
}

/* "cause <var>: <cause> line <N>", N being the line of the program that holds `needle`. */
#define CHECK_CAUSE(text, name, var, cause, needle)                            \
    do {                                                                       \
        int l_ = source_line(name, needle);                                    \
        char want_[256];                                                       \
        CHECK(l_ > 0);                                                         \
        snprintf(want_, sizeof want_, "cause %s: %s line %d", var, cause, l_); \
        CHECK_LINE(text, want_);                                               \
    } while (0)

/* ---- article 1: tapes and variables -------------------------------------------------------- */
static void test_variable_created_inside_tape_sgd(void)
{
    RUN_SEED(o, "variable_created_inside_tape_sgd");
    CHECK_LINE(o.text, "gradient x: 2");
    CHECK_LINE(o.text, "apply_gradients: ok");
    CHECK_NEAR(number_after(o.text, "x: "), 0.8, 1e-6); /* 1 - 0.1 * 2 */
    free(o.text);
}

static void test_variable_created_before_tape(void)
{
    RUN_SEED(o, "variable_created_before_tape");
    CHECK_LINE(o.text, "gradient x: 2"); /* not None: tf-semantics.md 3a */
    free(o.text);
}

static void test_persistent_tape_assign_sub(void)
{
    RUN_SEED(o, "persistent_tape_assign_sub");
    CHECK_LINE(o.text, "first call: gradient x: 2");
    CHECK_NEAR(number_after(o.text, "x: "), 0.8, 1e-6);
    CHECK_LINE(o.text, "second call: gradient x: 2"); /* stale, no error: 3c */
    CHECK_CAUSE(o.text, "persistent_tape_assign_sub", "x", "stale_read", "tg_assign_sub(");
    free(o.text);
}

/* ---- article 2: Keras ------------------------------------------------------------------------ */
static void test_categorical_crossentropy_on_one_unit(void)
{
    RUN_SEED(o, "categorical_crossentropy_on_one_unit");
    CHECK_LINE(o.text, "compile: refused");
    CHECK_LINE(o.text, "tf: trains silently, loss ~1e-7, zero gradients");
    /* Half the labels are 1: 0.5 * -log(float32(1 - 1e-7)) = 0.5 * 1.1920929e-7. */
    CHECK_NEAR(number_after(o.text, "loss: ") / 5.9604645e-8, 1.0, 1e-3);
    CHECK_LINE(o.text, "gradient dense/kernel: [1280 values, max |v| 0]"); /* zeros, not None */
    CHECK_LINE(o.text, "gradient dense/bias: [128 values, max |v| 0]");
    CHECK_LINE(o.text, "gradient dense_1/kernel: [128 values, max |v| 0]");
    CHECK_LINE(o.text, "gradient dense_1/bias: [0]");
    CHECK_CAUSE(o.text, "categorical_crossentropy_on_one_unit", "dense/kernel", "zero_gradient", "tg_compute_loss(");
    free(o.text);
}

static void test_frozen_first_layer(void)
{
    RUN_SEED(o, "frozen_first_layer");
    CHECK_LINE(o.text, "trainable variables: dense_1/kernel dense_1/bias");
    CHECK_LINE(o.text, "fit: ok"); /* no "No gradients provided": 3f */
    CHECK_LINE(o.text, "dense/kernel changed: no");
    CHECK_LINE(o.text, "dense/bias changed: no");
    CHECK_LINE(o.text, "dense_1/kernel changed: yes");
    CHECK_LINE(o.text, "dense_1/bias changed: yes");
    CHECK_LINE(o.text, "loss decreased: yes");
    free(o.text);
}

static void test_custom_training_loop(void)
{
    RUN_SEED(o, "custom_training_loop");
    CHECK_LINE(o.text, "gradients present in every epoch: yes");
    CHECK_LINE(o.text, "gradients match 2 X^T (X w + b - y) in every epoch: yes");
    CHECK_LINE(o.text, "loss decreased: yes");
    free(o.text);
}

/* ---- article 3: custom losses ------------------------------------------------------------------ */
static void test_loss_times_constant(void)
{
    RUN_SEED(o, "loss_times_constant");
    CHECK_LINE(o.text, "gradient dense/kernel: [-0.75]"); /* 0.5 * mean(-x) */
    CHECK_LINE(o.text, "gradient dense/bias: [-0.5]");
    CHECK_LINE(o.text, "apply_gradients: ok");
    /* Adam's first step: learning_rate against the gradient's sign (float32 beta powers). */
    CHECK_NEAR(number_after(o.text, "dense/kernel moved by: "), 0.001, 3e-7);
    CHECK_NEAR(number_after(o.text, "dense/bias moved by: "), 0.001, 3e-7);
    free(o.text);
}

/* Both model variables: None, apply_gradients raises, and each has `cause` at `needle`. */
static void check_no_gradients(const char *name, const char *cause, const char *needle)
{
    RUN_SEED(o, name);
    CHECK_LINE(o.text, "gradient dense/kernel: None");
    CHECK_LINE(o.text, "gradient dense/bias: None");
    CHECK_LINE(o.text, "apply_gradients: error");
    CHECK(strstr(o.text, "No gradients provided for any variable: (['dense/kernel', 'dense/bias'],).") != NULL);
    CHECK_CAUSE(o.text, name, "dense/kernel", cause, needle);
    CHECK_CAUSE(o.text, name, "dense/bias", cause, needle);
    free(o.text);
}

static void test_floor_in_loss(void) { check_no_gradients("floor_in_loss", "non_differentiable", "tg_floor("); }

static void test_numpy_floor_in_loss(void)
{
    check_no_gradients("numpy_floor_in_loss", "copied_out", "tg_copy_out(tg_mean");
}

static void test_forward_pass_outside_tape(void)
{
    check_no_gradients("forward_pass_outside_tape", "outside_tape", "tg_model_call(model, x);");
}

/* ---- article 4: watching ------------------------------------------------------------------------ */
static void test_variables_watched_or_not(void)
{
    const char *names[] = {"variables_not_explicitly_watched", "variables_explicitly_watched"};
    for (int i = 0; i < 2; i++) {
        RUN_SEED(o, names[i]);
        CHECK_LINE(o.text, "gradient x: 2"); /* dz/dx = y; without watch too: 3b */
        CHECK_LINE(o.text, "gradient y: 1");
        free(o.text);
    }
}

static void test_variable_outside_inside_tape_scope(void)
{
    const char *names[] = {"variable_created_outside_tape_scope", "variable_created_inside_tape_scope",
                           "if_on_variable_inside_tape"};
    for (int i = 0; i < 3; i++) {
        RUN_SEED(o, names[i]);
        CHECK_LINE(o.text, "gradient x: 2"); /* d(2x + 1)/dx */
        free(o.text);
    }
}

/* ---- article 5: train_step ------------------------------------------------------------------------ */
static void test_apply_gradients_after_tape_block(void)
{
    RUN_SEED(o, "apply_gradients_after_tape_block");
    CHECK_LINE(o.text, "gradients present in every step: yes");
    CHECK_LINE(o.text, "gradients match Keras's categorical_crossentropy in every step: yes");
    CHECK_LINE(o.text, "apply_gradients after the block: ok"); /* 3d */
    CHECK_LINE(o.text, "optimizer iterations: 3");
    free(o.text);
}

static void test_reduce_sum_difference_loss(void)
{
    RUN_SEED(o, "reduce_sum_difference_loss");
    /* Column sums of [[1, 2], [3, 4], [5, 6]] for each of the 10 units; the batch size for the bias. */
    CHECK_LINE(o.text, "gradient dense/kernel: [9 9 9 9 9 9 9 9 9 9 12 12 12 12 12 12 12 12 12 12]");
    CHECK_LINE(o.text, "gradient dense/bias: [3 3 3 3 3 3 3 3 3 3]");
    CHECK_LINE(o.text, "apply_gradients: ok");
    free(o.text);
}

static void test_python_if_on_tensor(void)
{
    RUN_SEED(o, "python_if_on_tensor");
    int taken = 0, not_taken = 0;
    for (int step = 1; step <= 4; step++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "step %d: branch ", step);
        const char *l = line_starting(o.text, prefix);
        CHECK(l != NULL);
        if (!l)
            continue;
        bool is_taken = strncmp(l + strlen(prefix), "taken", 5) == 0;
        taken += is_taken;
        not_taken += !is_taken;
        const char *r = strstr(l, "gradient ratio: ");
        CHECK(r != NULL && r < strchr(l, '\n'));
        if (r) /* the gradients of the loss that ran: doubled exactly when the branch ran (3i) */
            CHECK_NEAR(strtod(r + strlen("gradient ratio: "), NULL), is_taken ? 2.0 : 1.0, 1e-5);
    }
    CHECK(taken > 0 && not_taken > 0); /* the batches x and -x exercise both branches */
    free(o.text);
}

/* ---- every program is known ---------------------------------------------------------------- */
static void test_every_program_is_checked(void)
{
    DIR *d = opendir(TG_SEEDS_SRC_DIR);
    REQUIRE(d != NULL);
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        bool listed = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            listed = listed || (strlen(known[i]) == n - 2 && strncmp(known[i], e->d_name, n - 2) == 0);
        if (!listed)
            printf("  examples/seeds/%s is not checked by this test\n", e->d_name);
        CHECK(listed);
        found++;
    }
    closedir(d);
    CHECK(found == (int)(sizeof known / sizeof known[0]));
}

int main(void)
{
    RUN(test_variable_created_inside_tape_sgd);
    RUN(test_variable_created_before_tape);
    RUN(test_persistent_tape_assign_sub);
    RUN(test_categorical_crossentropy_on_one_unit);
    RUN(test_frozen_first_layer);
    RUN(test_custom_training_loop);
    RUN(test_loss_times_constant);
    RUN(test_floor_in_loss);
    RUN(test_numpy_floor_in_loss);
    RUN(test_forward_pass_outside_tape);
    RUN(test_variables_watched_or_not);
    RUN(test_variable_outside_inside_tape_scope);
    RUN(test_apply_gradients_after_tape_block);
    RUN(test_reduce_sum_difference_loss);
    RUN(test_python_if_on_tensor);
    RUN(test_every_program_is_checked);
    return TEST_SUMMARY();
}
