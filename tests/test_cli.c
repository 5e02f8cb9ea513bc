/* The tapegrad command end to end on a tiny CSV data set: fit, save, evaluate, predict,
 * summary, resume, and its exit codes. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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

/* run() under a file-size limit of `bytes`, with SIGXFSZ at its default (death), as a
 * shell gives it. */
static int run_limited(long bytes, const char *args)
{
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = (struct rlimit){(rlim_t)bytes, old.rlim_max};
    void (*was)(int) = signal(SIGXFSZ, SIG_DFL);
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = run(args);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, was);
    return rc;
}

static const char *in_dir(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* The whole of a file of the test folder, NUL-terminated (NULL when missing); *n its size. */
static char *slurp(const char *name, size_t *n)
{
    FILE *f = fopen(in_dir(name), "rb");
    *n = 0;
    if (!f)
        return NULL;
    char *b = malloc(1 << 20);
    *n = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
    if (b)
        b[*n] = 0; /* text for strstr */
    fclose(f);
    return b;
}

static bool same_file(const char *name, const char *before, size_t n)
{
    size_t m;
    char *now = slurp(name, &m);
    bool same = now && before && m == n && memcmp(now, before, n) == 0;
    free(now);
    return same;
}

/* Files of the test folder whose names start with prefix. */
static int count_files(const char *prefix)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^%s'", dir, prefix);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
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

    /* the file describes its model (what evaluate, predict and summary rebuild it from) */
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    tg_safetensors *st = tg_safetensors_open(path);
    const char *arch = st ? tg_safetensors_metadata(st, "tapegrad_model") : NULL;
    CHECK(arch && strstr(arch, "\"class_name\":\"Sequential\"") && strstr(arch, "\"units\":16") &&
          strstr(arch, "\"from_logits\":true"));
    tg_safetensors_close(st);
}

/* A model file written by the command before files stored the architecture still
 * predicts (tests/fixtures/model_files/: that command's own predictions). */
static void old_model_file_predicts(void)
{
    char model[512], rows[600];
    snprintf(model, sizeof model, "%s/model_files/cli_mlp.safetensors", TG_FIXTURES_DIR);
    snprintf(rows, sizeof rows, "%s/old_rows.csv", dir);
    FILE *f = fopen(rows, "w");
    if (f) {
        fputs("a,b,c\n-0.524,0.088,-0.26\n0.208,0.251,-0.869\n", f);
        fclose(f);
    }
    char args[1300];
    snprintf(args, sizeof args, "predict %s %s", model, rows);
    CHECK(run(args) == 0);
    CHECK(strstr(out, "0: class 2 (0.3613)  probabilities: 0.3094 0.3294 0.3613"));
    CHECK(strstr(out, "1: class 0 (0.4601)  probabilities: 0.4601 0.2761 0.2637"));
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
    CHECK(strstr(out, ".c:") == NULL); /* no source lines of the command itself */
}

/* --save, --history and --plot refuse a FIFO (it stays one) and follow a symbolic link
 * (it stays one, its file is replaced). */
static void files_that_are_not_regular(void)
{
    struct stat st;
    CHECK(mkfifo(in_dir("pipe.safetensors"), 0600) == 0 && mkfifo(in_dir("pipe.csv"), 0600) == 0);
    CHECK(run(FIT "--epochs 1 --save pipe.safetensors") == 2);
    CHECK(strstr(out, "'pipe.safetensors': it exists and is a FIFO (named pipe)") != NULL);
    CHECK(lstat(in_dir("pipe.safetensors"), &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK(run(FIT "--epochs 1 --save ok.safetensors --history pipe.csv") == 2);
    CHECK(strstr(out, "'pipe.csv': it exists and is a FIFO") != NULL);
    CHECK(lstat(in_dir("pipe.csv"), &st) == 0 && S_ISFIFO(st.st_mode));

    CHECK(symlink("real.safetensors", in_dir("link.safetensors")) == 0);
    CHECK(run(FIT "--epochs 1 --save link.safetensors") == 0);
    CHECK(lstat(in_dir("link.safetensors"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(exists("real.safetensors") && run("summary link.safetensors") == 0);
}

/* --save "" is an error (it trained, saved nothing and said nothing); a resumed fit
 * writes back to the file it resumed from, not to model.safetensors. */
static void save_names(void)
{
    CHECK(run(FIT "--epochs 1 --save ''") == 1 && strstr(out, "--save needs a value; it was given an empty one"));
    CHECK(run(FIT "--epochs 1 --history ''") == 1 && strstr(out, "--history needs a value"));
    CHECK(run(FIT "--epochs 1 --save back.safetensors") == 0);
    unlink(in_dir("model.safetensors"));
    CHECK(run(FIT "--epochs 3 --resume back.safetensors") == 0);
    CHECK(!exists("model.safetensors"));
    char path[512];
    snprintf(path, sizeof path, "%s/back.safetensors", dir);
    tg_safetensors *st = tg_safetensors_open(path);
    const char *epoch = st ? tg_safetensors_metadata(st, "epoch") : NULL;
    CHECK(epoch && strcmp(epoch, "3") == 0);
    tg_safetensors_close(st);
}

/* Past the file-size limit: a message and exit 2, never death by SIGXFSZ; the old
 * checkpoint and plot stay as they were, and no temporary file is left. */
static void file_size_limit(void)
{
    CHECK(run(FIT "--epochs 30 --save big.safetensors --history big.csv --plot big.svg") == 0);
    size_t nm, np;
    char *model = slurp("big.safetensors", &nm), *plot = slurp("big.svg", &np);
    CHECK(nm > 2000 && nm < 6000 && np > 6000); /* the limits below sit between these */
    CHECK(run_limited(2000, FIT "--epochs 30 --save big.safetensors") == 2);
    CHECK(strstr(out, "cannot save 'big.safetensors': File too large while writing the temporary file"));
    CHECK(same_file("big.safetensors", model, nm) && count_files("big.safetensors") == 1);
    CHECK(run_limited(6000, FIT "--epochs 30 --save big.safetensors --history big.csv --plot big.svg") == 2);
    CHECK(strstr(out, "cannot save 'big.svg': File too large while writing the temporary file"));
    CHECK(same_file("big.svg", plot, np) && count_files("big.svg") == 1);
    free(model);
    free(plot);
}

/* predict checks that each row of its input is one example of the model's. */
static void predict_row_width(void)
{
    CHECK(run(FIT "--epochs 1 --save w.safetensors") == 0);
    CHECK(run("predict w.safetensors train.csv") == 2); /* the label column is still in it */
    CHECK(strstr(out, "the model expects 4 features; train.csv has 5 columns") != NULL);
    CHECK(strstr(out, "0: class") == NULL);
    CHECK(run("predict w.safetensors new.csv") == 0);
}

/* --label "" and --label 4294967296 were column 0. */
static void label_values(void)
{
    CHECK(run("fit --data csv:train.csv --label '' --epochs 1 --quiet") == 1);
    CHECK(strstr(out, "--label is empty: give the label column's name, or its index") != NULL);
    CHECK(run("fit --data csv:train.csv --label 4294967296 --epochs 1 --quiet") == 1);
    CHECK(strstr(out, "--label 4294967296 is out of range") != NULL);
    CHECK(run("fit --data csv:train.csv --label -2147483648 --epochs 1 --quiet") == 1);
    CHECK(run("evaluate m.safetensors --data csv:train.csv --label ''") == 1 && strstr(out, "--label is empty"));
}

/* csv: reads FIFOs (as csv:<(zcat f.gz) gives) and refuses devices (csv:/dev/zero grew
 * without bound). */
static void csv_sources(void)
{
    CHECK(mkfifo(in_dir("train.fifo"), 0600) == 0);
    char args[1024]; /* the writer runs beside the command, in the same folder */
    snprintf(args, sizeof args,
             "fit --data csv:train.fifo --label species --epochs 1 --quiet --save f.safetensors "
             "& (cd %s && timeout 60 cat train.csv > train.fifo); wait $!",
             dir);
    CHECK(run(args) == 0);
    CHECK(exists("f.safetensors"));
    CHECK(run("fit --data csv:/dev/zero --label 0 --epochs 1 --quiet") == 2);
    CHECK(strstr(out, "cannot read '/dev/zero': it is a device, not a file of data") != NULL);
}

/* m.safetensors saved again as `name` with its metadata key `key` set to `value` (JSON
 * text, escapes allowed), as a damaged or crafted file would have it. */
static void craft(const char *name, const char *key, const char *value)
{
    tg_scope *s = tg_scope_begin();
    tg_safetensors *st = tg_safetensors_open(in_dir("m.safetensors"));
    int n = st ? tg_safetensors_count(st) : 0;
    tg_tensor *t[64];
    const char *const *names = st ? tg_safetensors_names(st) : NULL;
    for (int i = 0; i < n && i < 64; i++)
        t[i] = tg_safetensors_get(st, names[i]);
    static const char *const keys[] = {"model",        "input_shape",         "classes", "seed",  "epoch",
                                       "data",         "tapegrad_iterations", "loss",    "label", "optimizer",
                                       "normalization"};
    char meta[4096] = "{";
    for (int k = 0; k < 11; k++) {
        const char *v = st ? tg_safetensors_metadata(st, keys[k]) : NULL;
        size_t len = strlen(meta);
        if (strcmp(keys[k], key) == 0)
            snprintf(meta + len, sizeof meta - len, "%s\"%s\": \"%s\"", len > 1 ? ", " : "", key, value);
        else if (v)
            snprintf(meta + len, sizeof meta - len, "%s\"%s\": \"%s\"", len > 1 ? ", " : "", keys[k], v);
    }
    strcat(meta, "}");
    CHECK(st && tg_save_safetensors(in_dir(name), t, names, n, meta) == 0);
    tg_safetensors_close(st);
    tg_scope_end(s);
}

/* Hostile metadata: each value is refused with a message naming the key, never read
 * as a saturated number, a truncated string or an uninitialised message. */
static void hostile_metadata(void)
{
    craft("it.safetensors", "tapegrad_iterations", "100000000000000000000000");
    CHECK(run(FIT "--epochs 25 --resume it.safetensors") == 2);
    CHECK(strstr(out, "metadata \"tapegrad_iterations\" is \"100000000000000000000000\": it must be a number from 0"));
    craft("shape.safetensors", "input_shape", "4,x");
    CHECK(run("summary shape.safetensors") == 2 && strstr(out, "metadata \"input_shape\" is \"4,x\""));
    craft("epoch.safetensors", "epoch", "1e3");
    CHECK(run("summary epoch.safetensors") == 2 && strstr(out, "metadata \"epoch\" is \"1e3\""));
    craft("nul.safetensors", "model", "mlp:16\\u0000junk");
    CHECK(run("summary nul.safetensors") == 2 && strstr(out, "metadata \"model\" contains a NUL byte"));
    craft("classes.safetensors", "classes", "99999999999");
    CHECK(run("predict classes.safetensors new.csv") == 2 && strstr(out, "metadata \"classes\" is \"99999999999\""));
    craft("loss.safetensors", "loss", "hinge");
    CHECK(run("summary loss.safetensors") == 2 && strstr(out, "metadata \"loss\" is \"hinge\": it must be a loss"));
    craft("opt.safetensors", "optimizer", "lbfgs");
    CHECK(run(FIT "--epochs 3 --resume opt.safetensors") == 2 && strstr(out, "metadata \"optimizer\" is \"lbfgs\""));
}

/* A quote in the data path broke every save (metadata by snprintf); a long model spec
 * was truncated, so --resume refused tapegrad's own file. */
static void metadata_round_trips(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/train.csv '%s/tr\"ain.csv'", dir, dir);
    CHECK(system(cmd) == 0);
    CHECK(run("fit --data 'csv:tr\"ain.csv' --label species --model mlp:16 --epochs 1 --quiet --save q.safetensors") ==
          0);
    CHECK(run("summary q.safetensors") == 0 && strstr(out, "on csv:tr\"ain.csv"));
    CHECK(run("evaluate q.safetensors --label species") == 0); /* the data path, read back */
    char spec[300] = "mlp:";
    memset(spec + 4, '0', 200);
    strcpy(spec + 204, "16");
    snprintf(cmd, sizeof cmd,
             "fit --data csv:train.csv --label species --model %s --epochs 1 --quiet --save long.safetensors", spec);
    CHECK(run(cmd) == 0);
    CHECK(run("fit --data csv:train.csv --label species --epochs 2 --quiet --resume long.safetensors") == 0);
    CHECK(run("summary long.safetensors") == 0 && strstr(out, "trained 2 epochs") && strstr(out, spec));
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(in_dir(name), "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Labels that are not class numbers, and no source paths: "tapegrad: failed" alone, a C
 * constant (TG_LOSS_BINARY_CROSSENTROPY) and the build machine's paths were the messages. */
static void messages_for_users(void)
{
    write_text("nan.csv", "a,y\n1,0\n2,1\n3,nan\n");
    CHECK(run("fit --data csv:nan.csv --label y --quiet") == 2);
    CHECK(strstr(out, "csv:nan.csv: the label of row 3 is nan: labels must be class numbers 0, 1, 2") != NULL);
    write_text("huge.csv", "a,y\n1,0\n2,1e30\n");
    CHECK(run("fit --data csv:huge.csv --label y --quiet") == 2 && strstr(out, "the label of row 2 is 1e+30"));
    write_text("one.csv", "a,y\n1,0\n2,0\n");
    CHECK(run("fit --data csv:one.csv --label y --quiet") == 2);
    CHECK(strstr(out, "every label is 0: a classifier needs at least two classes") && !strstr(out, "TG_"));
    write_text("empty.csv", "a,y\n");
    CHECK(run("fit --data csv:empty.csv --label y --quiet") == 2 && strstr(out, "there are no rows of data"));
    static const char *const failing[] = {
        "fit --data csv:missing.csv --label 0",          "fit --data csv:train.csv --label nope",
        FIT "--epochs 1 --save pipe.safetensors",        "predict m.safetensors missing.npy",
        "evaluate m.safetensors --data npy:a.npy,b.npy",
    };
    for (size_t i = 0; i < sizeof failing / sizeof failing[0]; i++) {
        CHECK(run(failing[i]) == 2 && strncmp(out, "tapegrad: ", 10) == 0);
        if (strstr(out, ".c:") || strstr(out, "/src/") || strstr(out, "tapegrad: failed\n"))
            printf("  %s: %s", failing[i], out);
        CHECK(!strstr(out, ".c:") && !strstr(out, "/src/") && !strstr(out, "tapegrad: failed\n"));
    }
}

/* A bad value names its option and what it takes ("bad option 0" named neither). */
static void option_messages(void)
{
    CHECK(run("evaluate m.safetensors --batch-size 0") == 1);
    CHECK(strstr(out, "bad value '0' for --batch-size: give a whole number from 1 to 16777216") != NULL);
    CHECK(run("predict m.safetensors new.csv --limit x") == 1);
    CHECK(strstr(out, "bad value 'x' for --limit") != NULL);
    CHECK(run("predict m.safetensors new.csv --limit") == 1 && strstr(out, "--limit needs a value"));
    CHECK(run("evaluate m.safetensors --frobnicate") == 1 && strstr(out, "unknown option --frobnicate"));
    CHECK(run(FIT "--epochs 0") == 1 && strstr(out, "bad value '0' for --epochs: give a whole number from 1"));
}

/* The number after `key` in out (NAN when absent). */
static double out_value(const char *key)
{
    const char *at = strstr(out, key);
    double v = NAN;
    if (!at || sscanf(at + strlen(key), "%lf", &v) != 1)
        return NAN;
    return v;
}

/* y = 3x + 1 on x in [-1, 1]; and two inputs for predict. */
static void write_line_data(void)
{
    FILE *f = fopen(in_dir("line.csv"), "w"), *g = fopen(in_dir("line_x.csv"), "w");
    fprintf(f, "x,y\n");
    fprintf(g, "x\n0.5\n-0.25\n");
    tg_rng *r = tg_rng_new(3);
    for (int i = 0; i < 200; i++) {
        double x = 2 * tg_rng_uniform01(r) - 1;
        fprintf(f, "%.6f,%.6f\n", x, 3 * x + 1);
    }
    tg_rng_free(r);
    fclose(f);
    fclose(g);
}

/* Non-integer labels are a regression (MSE, one linear output) with no --loss; evaluate
 * and predict need no flags and print numbers. */
static void regression_without_loss(void)
{
    write_line_data();
    CHECK(run("fit --data csv:line.csv --label y --model mlp:16 --epochs 60 --batch-size 16 --learning-rate 0.01 "
              "--save line.safetensors --history line.csv.h --plot line.svg") == 0);
    CHECK(strstr(out, "a regression: mean_squared_error") != NULL);
    CHECK(strstr(out, "mean_absolute_error: ") && strstr(out, "root_mean_squared_error: ") &&
          strstr(out, "r2_score: "));
    size_t hn;
    char *history = slurp("line.csv.h", &hn);
    CHECK(history && strncmp(history,
                             "epoch,loss,mean_absolute_error,mean_squared_error,root_mean_squared_error,"
                             "r2_score\n",
                             83) == 0);
    free(history);
    CHECK(run("evaluate line.safetensors") == 0);
    double mae = out_value("mae: "), rmse = out_value("rmse: "), r2 = out_value("r2: ");
    if (!(mae < 0.05))
        printf("  %s", out);
    CHECK(mae < 0.05 && rmse < 0.1 && r2 > 0.99);
    CHECK(run("predict line.safetensors line_x.csv") == 0);
    double p0 = NAN, p1 = NAN;
    CHECK(sscanf(out, "0: %lf\n1: %lf", &p0, &p1) == 2 && fabs(p0 - 2.5) < 0.1 && fabs(p1 - 0.25) < 0.1);
    CHECK(strstr(out, "class") == NULL);
    size_t n;
    char *plot = slurp("line.svg", &n);
    CHECK(plot && strstr(plot, ">Mean absolute error<") != NULL);
    free(plot);
}

/* Whole-number labels that cannot be classes 0..K-1 are refused, naming the range and
 * the options that say what was meant; --loss mse then trains on them. */
static void labels_that_are_not_classes(void)
{
    write_text("big.csv", "a,y\n1,0\n2,100000000\n3,1\n4,2\n");
    CHECK(run("fit --data csv:big.csv --label y --quiet --save big_label.safetensors") == 2);
    CHECK(strstr(out, "csv:big.csv: the labels are whole numbers from 0 to 1e+08") != NULL);
    CHECK(strstr(out, "--loss mse") && strstr(out, "--classes K"));
    CHECK(!exists("big_label.safetensors"));
    write_text("neg.csv", "a,y\n1,0\n2,-1\n3,1\n");
    CHECK(run("fit --data csv:neg.csv --label y --quiet") == 2 && strstr(out, "the label of row 2 is -1"));
    CHECK(run("fit --data csv:big.csv --label y --loss mse --epochs 1 --quiet --save big_mse.safetensors") == 0);
    write_text("values.csv", "a,y\n1,25\n2,31\n3,26\n4,27\n5,30\n6,28\n7,29\n8,25\n"); /* diabetes-like targets */
    CHECK(run("fit --data csv:values.csv --label y --quiet") == 2);
    CHECK(strstr(out, "the labels are whole numbers from 25 to 31") && strstr(out, "class numbers start at 0 (or 1)"));
    write_text("gap.csv", "a,y\n1,0\n2,7\n3,1\n4,2\n");
    CHECK(run("fit --data csv:gap.csv --label y --quiet") == 2);
    CHECK(run("fit --data csv:gap.csv --label y --classes 8 --epochs 1 --quiet --save gap.safetensors") == 0);
    CHECK(run("summary gap.safetensors") == 0 && strstr(out, "Total params"));
    CHECK(run("fit --data csv:gap.csv --label y --loss hinge --quiet") == 1 && strstr(out, "unknown --loss 'hinge'"));
    CHECK(run("fit --data csv:line.csv --label y --loss sparse_categorical_crossentropy --quiet") == 2);
    CHECK(strstr(out, "takes class numbers 0, 1, 2") != NULL);
}

/* --loss binary_crossentropy: one sigmoid output, accuracy at 0.5, predict gives the
 * probability of class 1; evaluate needs no flags. */
static void binary_crossentropy(void)
{
    FILE *f = fopen(in_dir("bin.csv"), "w");
    fprintf(f, "x,y\n");
    for (int i = 0; i < 200; i++)
        fprintf(f, "%.4f,%d\n", (i - 100) / 50.0, i >= 100);
    fclose(f);
    write_text("bin_x.csv", "x\n-1.5\n1.5\n");
    CHECK(run("fit --data csv:bin.csv --label y --loss binary_crossentropy --model mlp:8 --epochs 30 "
              "--learning-rate 0.01 --batch-size 16 --quiet --save bin.safetensors") == 0);
    CHECK(run("evaluate bin.safetensors") == 0);
    CHECK(out_value("accuracy: ") > 0.9);
    CHECK(run("predict bin.safetensors bin_x.csv") == 0);
    CHECK(strstr(out, "0: class 0 (") && strstr(out, "1: class 1 (") && strstr(out, "probability of class 1: "));
    write_text("bin3.csv", "x,y\n1,0\n2,2\n3,1\n");
    CHECK(run("fit --data csv:bin3.csv --label y --loss bce --quiet") == 2 && strstr(out, "takes labels from 0 to 1"));
}

/* The metadata value `key` of a file of the test folder, copied into buf. */
static const char *meta_of(const char *file, const char *key, char *buf, size_t size)
{
    tg_safetensors *st = tg_safetensors_open(in_dir(file));
    const char *v = st ? tg_safetensors_metadata(st, key) : NULL;
    snprintf(buf, size, "%s", v ? v : "");
    tg_safetensors_close(st);
    return buf;
}

/* Adam with a validation split, 2 epochs then resumed to 4 with nothing but --resume and
 * --epochs: the same file, bit for bit, as 4 at once, and one history of epochs 1..4. */
static void resume_keeps_the_setup(void)
{
#define LINE_FIT \
    "--data csv:line.csv --label y --model mlp:8 --batch-size 16 --learning-rate 0.01 --validation-split 0.2 --quiet "
    CHECK(run("fit " LINE_FIT "--epochs 4 --save a.safetensors --history a.csv --plot a.svg") == 0);
    CHECK(rename(in_dir("a.safetensors"), in_dir("a4.safetensors")) == 0 &&
          rename(in_dir("a.csv"), in_dir("a4.csv")) == 0);
    CHECK(run("fit " LINE_FIT "--epochs 2 --save a.safetensors --history a.csv --plot a.svg") == 0);
    CHECK(run("fit --resume a.safetensors --epochs 4 --quiet") == 0); /* the history and plot: the file's */
    CHECK(rename(in_dir("a.safetensors"), in_dir("a22.safetensors")) == 0 &&
          rename(in_dir("a.csv"), in_dir("a22.csv")) == 0);
    size_t n4, n22, h4, h22;
    char *m4 = slurp("a4.safetensors", &n4), *m22 = slurp("a22.safetensors", &n22);
    CHECK(m4 && m22 && n4 == n22 && memcmp(m4, m22, n4) == 0);
    free(m4);
    free(m22);
    char *c4 = slurp("a4.csv", &h4), *c22 = slurp("a22.csv", &h22);
    CHECK(c4 && c22 && h4 == h22 && memcmp(c4, c22, h4) == 0);
    int epochs[8], k = 0;
    for (char *line = c22 ? strchr(c22, '\n') : NULL; line && line[1] && k < 8; line = strchr(line + 1, '\n'))
        epochs[k++] = atoi(line + 1);
    CHECK(k == 4 && epochs[0] == 1 && epochs[1] == 2 && epochs[2] == 3 && epochs[3] == 4);
    free(c4);
    free(c22);
    char buf[256];
    CHECK(strcmp(meta_of("a22.safetensors", "epoch", buf, sizeof buf), "4") == 0);
    CHECK(run("summary a22.safetensors") == 0);
    CHECK(strstr(out, "loss mean_squared_error, label y, optimizer adam (learning rate 0.01), batch 16, validation "
                      "split 0.2, seed 42\n") != NULL);
    CHECK(strcmp(meta_of("a22.safetensors", "label", buf, sizeof buf), "y") == 0);
    CHECK(strcmp(meta_of("a22.safetensors", "validation_split", buf, sizeof buf), "0.20000000000000001") == 0);
    CHECK(strcmp(meta_of("a22.safetensors", "data", buf, sizeof buf), "csv:line.csv") == 0);
    CHECK(strcmp(meta_of("a22.safetensors", "loss", buf, sizeof buf), "mean_squared_error") == 0);
    CHECK(meta_of("a22.safetensors", "data_path", buf, sizeof buf)[4] == '/');

    /* SGD stays SGD; an option on the command line wins, with a note. */
    CHECK(run("fit " LINE_FIT "--optimizer sgd --epochs 1 --save sgd.safetensors --history sgd.csv") == 0);
    CHECK(run("fit --resume sgd.safetensors --epochs 2 --quiet --history sgd.csv") == 0);
    CHECK(strstr(out, "note:") == NULL);
    CHECK(strcmp(meta_of("sgd.safetensors", "optimizer", buf, sizeof buf), "sgd") == 0);
    CHECK(run("fit --resume sgd.safetensors --epochs 3 --batch-size 8 --quiet --history sgd.csv") == 0);
    CHECK(strstr(out, "note: --batch-size 8 overrides the model file's 16") != NULL);
    CHECK(strcmp(meta_of("sgd.safetensors", "batch_size", buf, sizeof buf), "8") == 0);
    CHECK(run("fit --resume sgd.safetensors --epochs 3 --quiet") == 1 && strstr(out, "has trained 3 epochs"));
#undef LINE_FIT
}

/* evaluate finds a CSV model's data with no flags: by its absolute path, then, once that
 * is gone, by the path as given from the model file's folder. */
static void evaluate_finds_the_data(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && mkdir -p moved && cp line.csv moved/moving.csv && cp line.csv moving.csv", dir);
    CHECK(system(cmd) == 0);
    CHECK(run("fit --data csv:moving.csv --label y --model mlp:8 --epochs 1 --quiet --save moved/mv.safetensors") == 0);
    CHECK(run("evaluate moved/mv.safetensors") == 0 && strstr(out, "200 samples - loss: "));
    unlink(in_dir("moving.csv"));
    CHECK(run("evaluate moved/mv.safetensors") == 0 && strstr(out, "200 samples - loss: "));
    CHECK(run("evaluate m.safetensors") == 0 && strstr(out, "accuracy: ")); /* a classifier, label stored */
}

/* Whether two model files in the test folder hold the same tensors, bit for bit. */
static bool same_weights(const char *name_a, const char *name_b)
{
    return same_model_files(in_dir(name_a), in_dir(name_b));
}

/* train.csv rewritten: `delim` between cells, `lead` before the header, gzip'd when gz. */
static void rewrite_train(const char *name, const char *delim, const char *lead, bool gz)
{
    size_t n;
    char *text = slurp("train.csv", &n), *o = malloc(4 * n + 256);
    size_t k = (size_t)sprintf(o, "%s", lead);
    for (size_t i = 0; text && i < n; i++)
        k += (size_t)sprintf(o + k, "%s", text[i] == ',' ? delim : (char[]){text[i], 0});
    if (gz) {
        gzFile g = gzopen(in_dir(name), "wb");
        gzwrite(g, o, (unsigned)k);
        gzclose(g);
    } else {
        FILE *f = fopen(in_dir(name), "wb");
        fwrite(o, 1, k, f);
        fclose(f);
    }
    free(text);
    free(o);
}

static void csv_layouts(void)
{
    CHECK(run(FIT "--epochs 2 --save plain.safetensors") == 0);
    /* scikit-learn's layout: a line of counts, then the header; gzip'd; other delimiters */
    rewrite_train("sk.csv.gz", ";", "240,4,setosa,versicolor,virginica\n", true);
    CHECK(run("fit --data csv:sk.csv.gz --delimiter semicolon --skip-rows 1 --label species --model mlp:16 "
              "--batch-size 16 --quiet --epochs 2 --save sk.safetensors") == 0);
    CHECK(same_weights("plain.safetensors", "sk.safetensors"));
    rewrite_train("ws.txt", " \t  ", "", false);
    CHECK(run("fit --data csv:ws.txt --delimiter whitespace --label species --model mlp:16 --batch-size 16 --quiet "
              "--epochs 2 --save ws.safetensors") == 0);
    CHECK(same_weights("plain.safetensors", "ws.safetensors"));
    rewrite_train("tab.tsv", "\t", "", true);
    CHECK(run("fit --data csv:tab.tsv --delimiter tab --label species --model mlp:16 --batch-size 16 --quiet "
              "--epochs 2 --save tab.safetensors") == 0);
    CHECK(same_weights("plain.safetensors", "tab.safetensors"));
    /* the model file remembers the layout: evaluate needs no flags */
    CHECK(run("evaluate sk.safetensors") == 0 && strstr(out, "240 samples") != NULL);
    CHECK(run("summary sk.safetensors") == 0 && strstr(out, "delimiter semicolon, 1 lines skipped") != NULL);
    /* scikit-learn's classification files: a line of counts, then rows without names */
    size_t tn;
    char *text = slurp("train.csv", &tn);
    write_text("noheader.csv", text && strchr(text, '\n') ? strchr(text, '\n') + 1 : "");
    free(text);
    CHECK(run("fit --data csv:noheader.csv --no-header --label -1 --model mlp:16 --batch-size 16 --quiet --epochs 2 "
              "--save nh.safetensors") == 0);
    CHECK(same_weights("plain.safetensors", "nh.safetensors"));
    CHECK(run("evaluate nh.safetensors") == 0 && strstr(out, "240 samples") != NULL);
    CHECK(run("fit --data csv:noheader.csv --no-header --label species --quiet") == 1 && strstr(out, "index") != NULL);
    /* blanks around cells and at the line ends, through the library */
    write_text("blanks.txt", "  x \t y\t\n 1   2  \n\t3\t4\n");
    tg_scope *s = tg_scope_begin();
    tg_csv d = tg_read_csv(in_dir("blanks.txt"), .delimiter = TG_CSV_WHITESPACE, .label = "y");
    CHECK(d.x && d.rows == 2 && d.features == 1);
    CHECK_VALUES(d.x, 0, 1, 3);
    CHECK_VALUES(d.y, 0, 2, 4);
    tg_scope_end(s);
    /* a gzip file cut short is an error, not fewer rows */
    size_t n;
    char *gz = slurp("sk.csv.gz", &n);
    FILE *f = fopen(in_dir("cut.csv.gz"), "wb");
    fwrite(gz, 1, n / 2, f);
    fclose(f);
    free(gz);
    CHECK(run("fit --data csv:cut.csv.gz --delimiter semicolon --skip-rows 1 --label species --quiet") == 2);
    CHECK(strstr(out, "gzip") != NULL);
    CHECK(run(FIT "--delimiter pipe") == 1 && strstr(out, "comma, whitespace, tab or semicolon") != NULL);
    CHECK(run(FIT "--skip-rows -1") == 1 && strstr(out, "--skip-rows") != NULL);
}

/* train.csv with features on scales 1000 apart (b times 1000, c plus 500), and its six
 * first rows' features in scaled_new.csv */
static void write_scaled(void)
{
    FILE *f = fopen(in_dir("scaled.csv"), "w"), *g = fopen(in_dir("scaled_new.csv"), "w");
    fprintf(f, "a,b,c,d,species\n");
    fprintf(g, "a,b,c,d\n");
    tg_rng *r = tg_rng_new(5);
    for (int i = 0; i < 240; i++) {
        int cls = i % 3;
        double v[4];
        for (int k = 0; k < 4; k++)
            v[k] = (k == cls ? 2.0 : 0.0) + 0.3 * tg_rng_uniform01(r);
        v[1] *= 1000;
        v[2] += 500;
        fprintf(f, "%.6f,%.6f,%.6f,%.6f,%d\n", v[0], v[1], v[2], v[3], cls);
        if (i < 6)
            fprintf(g, "%.6f,%.6f,%.6f,%.6f\n", v[0], v[1], v[2], v[3]);
    }
    tg_rng_free(r);
    fclose(f);
    fclose(g);
}

static void normalize_round_trips(void)
{
    write_scaled();
    CHECK(run("fit --data csv:scaled.csv --label species --model mlp:16 --epochs 1 --quiet --save raw.safetensors") ==
          0);
    CHECK(strstr(out, "give --normalize") != NULL);
    CHECK(run("fit --data csv:scaled.csv --label species --model mlp:16 --epochs 30 --batch-size 16 --quiet "
              "--validation-split 0.25 --normalize --save norm.safetensors") == 0);
    CHECK(strstr(out, "give --normalize") == NULL);
    /* the statistics: of the 180 training rows only, as the file stores them */
    tg_scope *s = tg_scope_begin();
    tg_csv d = tg_read_csv(in_dir("scaled.csv"), .label = "species"); /* float32, as fit reads it */
    double x[240 * 4], mean[4] = {0}, var[4] = {0};
    CHECK(d.x && tg_copy_out_f64(d.x, x, 240 * 4) == 0);
    for (int r = 0; r < 180; r++)
        for (int j = 0; j < 4; j++)
            mean[j] += x[r * 4 + j] / 180;
    for (int r = 0; r < 180; r++)
        for (int j = 0; j < 4; j++)
            var[j] += (x[r * 4 + j] - mean[j]) * (x[r * 4 + j] - mean[j]) / 180;
    tg_safetensors *st = tg_safetensors_open(in_dir("norm.safetensors"));
    const char *text = st ? tg_safetensors_metadata(st, "normalization") : NULL;
    double got[8];
    CHECK(text && sscanf(text, "%lf,%lf,%lf,%lf;%lf,%lf,%lf,%lf", &got[0], &got[1], &got[2], &got[3], &got[4], &got[5],
                         &got[6], &got[7]) == 8);
    for (int j = 0; text && j < 4; j++) {
        CHECK(fabs(got[j] - mean[j]) <= 1e-9 * fabs(mean[j]) + 1e-12);
        CHECK(fabs(got[4 + j] - var[j]) <= 1e-9 * var[j] + 1e-12);
    }
    tg_safetensors_close(st);
    tg_scope_end(s);
    /* evaluate and predict standardise as fit did: raw inputs get the right classes */
    CHECK(run("evaluate norm.safetensors") == 0);
    CHECK(out_value("accuracy: ") > 0.95);
    CHECK(run("predict norm.safetensors scaled_new.csv --output classes.csv") == 0);
    size_t n;
    char *csv = slurp("classes.csv", &n);
    int cls[6] = {-1, -1, -1, -1, -1, -1};
    const char *p = csv ? strchr(csv, '\n') : NULL;
    for (int i = 0; p && i < 6; i++, p = strchr(p + 1, '\n'))
        cls[i] = atoi(p + 1);
    CHECK(csv && strncmp(csv, "class,p0,p1,p2\n", 15) == 0);
    for (int i = 0; i < 6; i++)
        CHECK(cls[i] == i % 3);
    free(csv);
    CHECK(run("summary norm.safetensors") == 0);
    /* malformed statistics are refused, naming the key */
    craft("badnorm.safetensors", "normalization", "1,2,3;1,1,1,1");
    CHECK(run("evaluate badnorm.safetensors") == 2 && strstr(out, "normalization") != NULL);
}

/* The bytes of a .npy file's header dict, or NULL; *data its data offset. */
static char *npy_header(const char *bytes, size_t n, size_t *data)
{
    if (n < 10 || memcmp(bytes, "\x93NUMPY\x01\x00", 8) != 0)
        return NULL;
    size_t h = (size_t)(unsigned char)bytes[8] | (size_t)(unsigned char)bytes[9] << 8;
    *data = 10 + h;
    if (*data > n || *data % 64 != 0 || bytes[*data - 1] != '\n')
        return NULL;
    char *t = malloc(h + 1);
    memcpy(t, bytes + 10, h);
    t[h] = 0;
    return t;
}

static bool have_numpy(void) { return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

static void predict_output_files(void)
{
    CHECK(run(FIT "--epochs 20 --learning-rate 0.01 --save out.safetensors") == 0);
    CHECK(run("predict out.safetensors new.csv --output p.npy") == 0);
    CHECK(run("predict out.safetensors new.csv --output p.csv") == 0);
    size_t n, m;
    char *npy = slurp("p.npy", &n), *csv = slurp("p.csv", &m);
    size_t at = 0;
    char *head = npy ? npy_header(npy, n, &at) : NULL;
    CHECK(head && strstr(head, "[('class', '<i4'), ('probabilities', '<f4', (3,))]") && strstr(head, "'shape': (6,)") &&
          strstr(head, "'fortran_order': False"));
    CHECK(n == at + 6 * 16);
    /* the .npy's rows are the .csv's */
    const char *line = csv ? strchr(csv, '\n') : NULL;
    for (int r = 0; head && line && r < 6 && n == at + 96; r++, line = strchr(line + 1, '\n')) {
        int32_t cls;
        float p[3];
        memcpy(&cls, npy + at + 16 * r, 4);
        memcpy(p, npy + at + 16 * r + 4, 12);
        int c2 = -1;
        double q[3];
        CHECK(sscanf(line + 1, "%d,%lf,%lf,%lf", &c2, &q[0], &q[1], &q[2]) == 4);
        CHECK(cls == c2 && cls == r % 3);
        for (int j = 0; j < 3; j++)
            CHECK(fabs(p[j] - q[j]) < 1e-5);
        CHECK(fabs(p[0] + p[1] + p[2] - 1) < 1e-5);
    }
    free(head);
    free(npy);
    free(csv);
    if (have_numpy()) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cd %s && /usr/bin/python3 -c \"import numpy as np; a = np.load('p.npy'); "
                 "assert a.shape == (6,), a.shape; assert list(a['class']) == [0, 1, 2, 0, 1, 2]; "
                 "assert a['probabilities'].shape == (6, 3); "
                 "assert np.allclose(a['probabilities'].sum(1), 1, atol=1e-5)\"",
                 dir);
        CHECK(system(cmd) == 0);
    } else {
        printf("  (numpy is not installed: the .npy file checked by its header only)\n");
    }
    /* a regression: one float32 per row */
    write_line_data();
    CHECK(run("fit --data csv:line.csv --label y --model mlp:16 --epochs 60 --batch-size 16 --learning-rate 0.01 "
              "--quiet --save line_out.safetensors") == 0);
    CHECK(run("predict line_out.safetensors line_x.csv --output v.npy") == 0);
    npy = slurp("v.npy", &n);
    head = npy ? npy_header(npy, n, &at) : NULL;
    CHECK(head && strstr(head, "'descr': '<f4'") && strstr(head, "'shape': (2,)") && n == at + 8);
    float v[2] = {NAN, NAN};
    if (head && n == at + 8)
        memcpy(v, npy + at, 8);
    CHECK(fabs(v[0] - 2.5) < 0.1 && fabs(v[1] - 0.25) < 0.1);
    free(head);
    free(npy);
    if (have_numpy()) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "cd %s && /usr/bin/python3 -c \"import numpy as np; a = np.load('v.npy'); "
                 "assert a.shape == (2,) and a.dtype == np.float32; assert abs(a[0] - 2.5) < 0.1\"",
                 dir);
        CHECK(system(cmd) == 0);
    }
    CHECK(run("predict out.safetensors new.csv --output p.txt") == 1 && strstr(out, ".npy or .csv") != NULL);
}

/* An Adam fit holding out 20% with --normalize, resumed after 2 epochs, ends where 4
 * uninterrupted epochs end, and its history has epochs 1..4 once each. */
static void resume_with_normalize_is_exact(void)
{
#define NFIT                                                                                             \
    "fit --data csv:scaled.csv --label species --model mlp:16 --batch-size 16 --quiet --optimizer adam " \
    "--validation-split 0.2 --normalize "
    CHECK(run(NFIT "--epochs 4 --save n4.safetensors --history n4.csv --plot n4.svg") == 0);
    CHECK(run(NFIT "--epochs 2 --save n2.safetensors --history n2.csv --plot n2.svg") == 0);
    CHECK(run("fit --resume n2.safetensors --epochs 4 --quiet") == 0);
    CHECK(same_weights("n4.safetensors", "n2.safetensors"));
    size_t a, b;
    char *full = slurp("n4.csv", &a), *resumed = slurp("n2.csv", &b);
    CHECK(full && resumed && a == b && strcmp(full, resumed) == 0);
    int epochs[8], k = 0;
    for (const char *p = resumed ? strchr(resumed, '\n') : NULL; p && p[1] && k < 8; p = strchr(p + 1, '\n'))
        epochs[k++] = atoi(p + 1);
    CHECK(k == 4);
    for (int i = 0; i < k; i++)
        CHECK(epochs[i] == i + 1);
    free(full);
    free(resumed);
#undef NFIT
}

/* --precision mixed_bfloat16: stored in the model file, applied again by --resume (the
 * resumed run ends with the uninterrupted run's weights, which a float32 resume would not
 * give), used by evaluate; a float32 run trains other weights; an unknown policy names the
 * valid ones. */
static void precision_round_trips(void)
{
#define PFIT "fit --data csv:scaled.csv --label species --model mlp:16 --batch-size 16 --quiet --normalize "
    CHECK(run(PFIT "--precision mixed_bfloat16 --epochs 3 --save p3.safetensors --history p3.csv --plot p3.svg") == 0);
    CHECK(run(PFIT "--precision mixed_bfloat16 --epochs 1 --save p1.safetensors --history p1.csv --plot p1.svg") == 0);
    CHECK(run(PFIT "--epochs 3 --save f3.safetensors --history f3.csv --plot f3.svg") == 0);
    tg_safetensors *st = tg_safetensors_open(in_dir("p1.safetensors"));
    const char *p = st ? tg_safetensors_metadata(st, "precision") : NULL;
    CHECK(p && strcmp(p, "mixed_bfloat16") == 0);
    tg_safetensors_close(st);
    st = tg_safetensors_open(in_dir("f3.safetensors"));
    CHECK(st && tg_safetensors_metadata(st, "precision") == NULL); /* float32 files stay as they were */
    tg_safetensors_close(st);
    CHECK(run("fit --resume p1.safetensors --epochs 3 --quiet") == 0);
    CHECK(same_weights("p3.safetensors", "p1.safetensors"));
    CHECK(!same_weights("p3.safetensors", "f3.safetensors"));
    CHECK(run("evaluate p3.safetensors --data csv:scaled.csv --label species") == 0);
    CHECK(strstr(out, "accuracy") != NULL);
    CHECK(run(PFIT "--precision float16 --epochs 1") != 0);
    CHECK(strstr(out, "unknown --precision 'float16': use float32 or mixed_bfloat16") != NULL);
#undef PFIT
}

/* The numbers of the SVG's <text class='CLS' ...>N</text> elements inside the panel whose
 * data-key is `key` (NULL: the first panel), into v; returns how many. */
static int svg_ticks(const char *svg, const char *key, const char *cls, double *v, int max)
{
    char want[96];
    snprintf(want, sizeof want, "data-key='%s'", key);
    const char *p = strstr(svg, want), *end = p ? strstr(p, "</g>") : NULL;
    snprintf(want, sizeof want, "class='%s'", cls);
    int n = 0;
    while (p && (p = strstr(p, want)) && p < end && n < max) {
        const char *gt = strchr(p, '>');
        v[n++] = gt ? strtod(gt + 1, NULL) : NAN;
        p = gt;
    }
    return n;
}

/* Whether v is 1, 2 or 5 times a power of ten (up to rounding in the labels). */
static bool one_two_five(double v)
{
    double power = pow(10, floor(log10(v) + 1e-9)), m = v / power;
    return fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6 || fabs(m - 10) < 1e-6;
}

/* Ticks a panel: evenly spaced by a 1-2-5 step; returns how many. */
static int check_ticks(const char *svg, const char *key, const char *cls, double *v)
{
    int n = svg_ticks(svg, key, cls, v, 64);
    for (int i = 1; i + 1 < n && strcmp(cls, "ytick") == 0; i++)
        CHECK(fabs((v[i + 1] - v[i]) - (v[1] - v[0])) < 1e-9 + 1e-6 * fabs(v[1] - v[0]));
    if (n >= 2)
        CHECK(one_two_five(v[1] - v[0]));
    return n;
}

/* The legend box of a panel, and whether any point of its polylines lies in it. */
static bool legend_clear(const char *svg, const char *key)
{
    char want[96];
    snprintf(want, sizeof want, "data-key='%s'", key);
    const char *p = strstr(svg, want), *end = p ? strstr(p, "</g>") : NULL, *l = p ? strstr(p, "class='legend'") : NULL;
    double x, y, w, h;
    if (!l || l > end || sscanf(l, "class='legend' x='%lf' y='%lf' width='%lf' height='%lf'", &x, &y, &w, &h) != 4)
        return false;
    int points = 0;
    for (const char *q = p; (q = strstr(q, "<polyline")) && q < end; q++) {
        const char *pts = strstr(q, "points='") + 8;
        double a, b;
        int used;
        while (sscanf(pts, "%lf,%lf %n", &a, &b, &used) == 2) {
            points++;
            if (a >= x && a <= x + w && b >= y && b <= y + h)
                return false;
            pts += used;
        }
    }
    return points > 0;
}

static void plot_reads_well(void)
{
    double v[64];
    /* a long run: no markers, round ticks, the last epoch labelled, the legend clear */
    CHECK(run(FIT "--epochs 37 --validation-split 0.25 --save p.safetensors --history p.csv --plot long.svg") == 0);
    size_t n;
    char *svg = slurp("long.svg", &n);
    CHECK(svg && strstr(svg, "<circle") == NULL);
    int k = check_ticks(svg ? svg : "", "accuracy", "ytick", v);
    CHECK(k >= 3 && k <= 12);
    for (int i = 0; i < k; i++)
        CHECK(v[i] >= 0 && v[i] <= 1);
    k = check_ticks(svg ? svg : "", "loss", "ytick", v);
    CHECK(k >= 3 && k <= 12);
    k = svg_ticks(svg ? svg : "", "loss", "xtick", v, 64);
    CHECK(k >= 2 && k <= 12 && v[k - 1] == 37);
    CHECK(k >= 3 && one_two_five(v[1] - v[0]));
    CHECK(legend_clear(svg ? svg : "", "loss") && legend_clear(svg ? svg : "", "accuracy"));
    free(svg);
    /* a short run: markers on every point */
    CHECK(run(FIT "--epochs 4 --save p.safetensors --history p.csv --plot short.svg") == 0);
    svg = slurp("short.svg", &n);
    int circles = 0;
    for (const char *c = svg; c && (c = strstr(c, "<circle")); c++)
        circles++;
    CHECK(circles == 8); /* 4 epochs, 2 panels, no validation */
    k = svg_ticks(svg ? svg : "", "accuracy", "xtick", v, 64);
    CHECK(k == 4 && v[0] == 1 && v[3] == 4);
    CHECK(legend_clear(svg ? svg : "", "loss") && legend_clear(svg ? svg : "", "accuracy"));
    free(svg);
    /* one epoch: distinct tick labels, the epoch labelled once */
    CHECK(run(FIT "--epochs 1 --validation-split 0.25 --save p.safetensors --history p.csv --plot one.svg") == 0);
    svg = slurp("one.svg", &n);
    k = check_ticks(svg ? svg : "", "loss", "ytick", v);
    CHECK(k >= 3);
    for (int i = 1; i < k; i++)
        CHECK(v[i] > v[i - 1]);
    k = svg_ticks(svg ? svg : "", "loss", "xtick", v, 64);
    CHECK(k == 1 && v[0] == 1);
    k = check_ticks(svg ? svg : "", "accuracy", "ytick", v);
    for (int i = 0; i < k; i++)
        CHECK(v[i] >= 0 && v[i] <= 1);
    CHECK(legend_clear(svg ? svg : "", "loss") && legend_clear(svg ? svg : "", "accuracy"));
    free(svg);
    /* a resumed run's plot goes on from its epochs, and labels its true last epoch */
    CHECK(run(FIT "--epochs 3 --save r.safetensors --history r.csv --plot r.svg") == 0);
    CHECK(run("fit --resume r.safetensors --epochs 5 --quiet") == 0);
    svg = slurp("r.svg", &n);
    k = svg_ticks(svg ? svg : "", "loss", "xtick", v, 64);
    CHECK(k == 5 && v[0] == 1 && v[4] == 5);
    free(svg);
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
    RUN(old_model_file_predicts);
    RUN(resume_matches_an_uninterrupted_run);
    RUN(exit_codes_and_messages);
    RUN(files_that_are_not_regular);
    RUN(save_names);
    RUN(file_size_limit);
    RUN(predict_row_width);
    RUN(label_values);
    RUN(option_messages);
    RUN(csv_sources);
    RUN(hostile_metadata);
    RUN(metadata_round_trips);
    RUN(messages_for_users);
    RUN(regression_without_loss);
    RUN(labels_that_are_not_classes);
    RUN(resume_keeps_the_setup);
    RUN(binary_crossentropy);
    RUN(evaluate_finds_the_data);
    RUN(csv_layouts);
    RUN(normalize_round_trips);
    RUN(predict_output_files);
    RUN(resume_with_normalize_is_exact);
    RUN(plot_reads_well);
    RUN(precision_round_trips);
    RUN(cleanup);
    return TEST_SUMMARY();
}
