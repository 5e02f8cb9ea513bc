/* The tapegrad command end to end on a tiny CSV data set: fit, save, evaluate, predict,
 * summary, resume, and its exit codes. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#ifndef TG_CLI
#error "CMake defines TG_CLI, the path of the tapegrad command"
#endif

static char dir[] = "/tmp/tapegrad_cli_XXXXXX";
static char out[1 << 16];

/* Runs the command with `args`, keeps stdout+stderr in `out`, returns the exit code. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>&1", dir, TG_CLI, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool exists(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* Three separable classes in 4 features; a features-only file for predict. */
static void write_data(void)
{
    char path[256];
    snprintf(path, sizeof path, "%s/train.csv", dir);
    FILE *f = fopen(path, "w");
    snprintf(path, sizeof path, "%s/new.csv", dir);
    FILE *g = fopen(path, "w");
    fprintf(f, "a,b,c,d,species\n");
    fprintf(g, "a,b,c,d\n");
    tg_rng *r = tg_rng_new(1);
    for (int i = 0; i < 240; i++) {
        int cls = i % 3;
        double v[4];
        for (int k = 0; k < 4; k++)
            v[k] = (k == cls ? 2.0 : 0.0) + 0.3 * tg_rng_uniform01(r);
        fprintf(f, "%.4f,%.4f,%.4f,%.4f,%d\n", v[0], v[1], v[2], v[3], cls);
        if (i < 6)
            fprintf(g, "%.4f,%.4f,%.4f,%.4f\n", v[0], v[1], v[2], v[3]);
    }
    tg_rng_free(r);
    fclose(f);
    fclose(g);
}

#define FIT "fit --data csv:train.csv --label species --model mlp:16 --batch-size 16 --quiet "

static void fit_evaluate_predict_summary(void)
{
    CHECK(run(FIT "--epochs 20 --learning-rate 0.01 --save m.safetensors --history h.csv --plot h.svg") == 0);
    CHECK(exists("m.safetensors") && exists("h.csv") && exists("h.svg"));
    char path[256];
    snprintf(path, sizeof path, "%s/h.csv", dir);
    FILE *f = fopen(path, "r");
    int lines = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        lines++;
    if (f)
        fclose(f);
    CHECK(lines == 21);
    snprintf(path, sizeof path, "%s/h.svg", dir);
    f = fopen(path, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f)
        fclose(f);
    CHECK(strstr(out, "<svg") && strstr(out, ">Loss<") && strstr(out, ">Accuracy<") && strstr(out, ">epoch<"));

    CHECK(run("evaluate m.safetensors --data csv:train.csv --label species") == 0);
    double acc = 0;
    const char *a = strstr(out, "accuracy: ");
    CHECK(a && sscanf(a, "accuracy: %lf", &acc) == 1 && acc > 0.9);

    CHECK(run("predict m.safetensors new.csv") == 0);
    CHECK(strstr(out, "0: class 0 (") && strstr(out, "1: class 1 (") && strstr(out, "2: class 2 ("));
    CHECK(strstr(out, "probabilities:") != NULL);

    CHECK(run("summary m.safetensors") == 0);
    CHECK(strstr(out, "mlp:16") && strstr(out, "Total params: 131"));
}

/* Two epochs, then three more from the checkpoint: the same weights as five at once. */
static void resume_matches_an_uninterrupted_run(void)
{
    CHECK(run(FIT "--epochs 5 --save full.safetensors") == 0);
    CHECK(run(FIT "--epochs 2 --save part.safetensors") == 0);
    CHECK(run(FIT "--epochs 5 --resume part.safetensors --save resumed.safetensors") == 0);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/full.safetensors", dir);
    snprintf(b, sizeof b, "%s/resumed.safetensors", dir);
    tg_scope *s = tg_scope_begin();
    tg_safetensors *fa = tg_safetensors_open(a), *fb = tg_safetensors_open(b);
    CHECK(fa && fb && tg_safetensors_count(fa) == tg_safetensors_count(fb) && tg_safetensors_count(fa) == 12);
    for (int i = 0; fa && fb && i < tg_safetensors_count(fa); i++) {
        const char *name = tg_safetensors_names(fa)[i];
        tg_tensor *x = tg_safetensors_get(fa, name), *y = tg_safetensors_get(fb, name);
        int64_t n = x ? tg_size(x) : 0;
        double *u = calloc((size_t)n + 1, sizeof *u), *v = calloc((size_t)n + 1, sizeof *v);
        CHECK(x && y && tg_size(y) == n && tg_copy_out_f64(x, u, n) == 0 && tg_copy_out_f64(y, v, n) == 0);
        if (memcmp(u, v, sizeof *u * (size_t)n) != 0)
            printf("  %s differs after resume\n", name);
        CHECK(memcmp(u, v, sizeof *u * (size_t)n) == 0);
        free(u);
        free(v);
    }
    CHECK(fa && strcmp(tg_safetensors_metadata(fa, "epoch"), "5") == 0);
    tg_safetensors_close(fa);
    tg_safetensors_close(fb);
    tg_scope_end(s);
}

static void exit_codes_and_messages(void)
{
    CHECK(run("") == 1 && strstr(out, "usage: tapegrad COMMAND"));
    CHECK(run("--help") == 0 && strstr(out, "commands:"));
    CHECK(run("fly") == 1 && strstr(out, "unknown command 'fly'"));
    CHECK(run("fit --epochs zero") == 1 && strstr(out, "bad value 'zero'"));
    CHECK(run("fit --model rnn:3") == 1 && strstr(out, "unknown model 'rnn:3'"));
    CHECK(run("fit --data csv:train.csv") == 1 && strstr(out, "needs --label"));
    CHECK(run("fit --data csv:missing.csv --label 0") == 2 && strstr(out, "missing.csv"));
    CHECK(run("fit --help") == 0 && strstr(out, "--validation-split"));
    CHECK(run("evaluate nothing.safetensors") == 2 && strstr(out, "cannot open 'nothing.safetensors'"));
    CHECK(run("predict m.safetensors") == 1);
    char path[256];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    FILE *f = fopen(path, "w");
    fputs("not a checkpoint", f);
    fclose(f);
    CHECK(run("summary bad.safetensors") == 2 && strstr(out, "bad.safetensors"));
    CHECK(strstr(out, ".c:") == NULL);   /* no source lines of the command itself */
}

static void cleanup(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        printf("cannot make a temporary folder\n");
        return 1;
    }
    write_data();
    RUN(fit_evaluate_predict_summary);
    RUN(resume_matches_an_uninterrupted_run);
    RUN(exit_codes_and_messages);
    RUN(cleanup);
    return TEST_SUMMARY();
}
