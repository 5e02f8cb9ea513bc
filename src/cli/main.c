/* tapegrad: train, evaluate and inspect models from the command line.
 *
 *   tapegrad fit --data fashion-mnist --model mlp:500 --epochs 5 --save model.safetensors
 *   tapegrad evaluate model.safetensors
 *   tapegrad predict model.safetensors images.npy
 *   tapegrad summary model.safetensors
 *
 * Exit codes: 0 ok, 1 usage, 2 data or file error. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const usage_main =
    "usage: tapegrad COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  fit        train a model and save it, its history and a plot\n"
    "  evaluate   loss and accuracy of a saved model on labelled data\n"
    "  predict    classes and probabilities of a saved model for new inputs\n"
    "  summary    the layers and parameter counts of a saved model\n"
    "\n"
    "tapegrad COMMAND --help shows a command's options.\n";

static const char *const usage_fit =
    "usage: tapegrad fit [OPTIONS]\n"
    "\n"
    "  --data SOURCE          fashion-mnist (default), csv:FILE, npy:X.npy,Y.npy or idx:IMAGES,LABELS\n"
    "  --label COLUMN         the label column of a CSV file, by name or index (-1: the last)\n"
    "  --model SPEC           mlp:500 (default), mlp:512,256 (hidden ReLU layers) or cnn\n"
    "  --epochs N             default 5\n"
    "  --batch-size N         default 32\n"
    "  --optimizer NAME       adam (default), adamw, sgd, rmsprop or adagrad\n"
    "  --learning-rate X      default: Keras's for the optimizer\n"
    "  --validation-split X   the last fraction of the training data, held out (default 0)\n"
    "  --seed N               weights and shuffling (default 42)\n"
    "  --threads N            threads for matrix products (default: the library's)\n"
    "  --save FILE            the model, written at every epoch end (default model.safetensors,\n"
    "                         or the --resume FILE)\n"
    "  --resume FILE          continue a fit from a file written by --save\n"
    "  --history FILE         loss and metrics per epoch, CSV (default history.csv)\n"
    "  --plot FILE            loss and accuracy per epoch, SVG (default history.svg)\n"
    "  --quiet                no progress output\n"
    "  --profile              after training, where its time went, per op (to stderr)\n";

static const char *const usage_evaluate =
    "usage: tapegrad evaluate MODEL [--data SOURCE] [--label COLUMN] [--batch-size N]\n"
    "\n"
    "Loss and accuracy of MODEL (a file written by tapegrad fit) on the test split of\n"
    "SOURCE (fashion-mnist: its 10000 test images), or on all of SOURCE when it has none.\n"
    "SOURCE defaults to the data the model was trained on.\n";

static const char *const usage_predict =
    "usage: tapegrad predict MODEL INPUT [--limit N]\n"
    "\n"
    "Classes and probabilities for each row of INPUT: a .npy file, an IDX file (raw\n"
    "images, scaled to [0, 1]) or a CSV file of features. --limit caps the rows printed\n"
    "(default 10; 0 prints all).\n";

static const char *const usage_summary = "usage: tapegrad summary MODEL\n";

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "tapegrad: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

int cli_library_error(void)
{
    /* The library names no line of its own sources (nor of this command's) in messages. */
    if (tg_has_error())
        fprintf(stderr, "tapegrad: %s\n", tg_last_error());
    else
        fprintf(stderr, "tapegrad: a library call failed without saying why (a bug: please report it)\n");
    return EXIT_DATA;
}

/* What each numeric option takes, for messages. */
static const struct {
    const char *name, *takes;
} option_ranges[] = {
    {"epochs", "a whole number from 1 to 100000"},     {"batch-size", "a whole number from 1 to 16777216"},
    {"learning-rate", "a number from 1e-12 to 10"},    {"validation-split", "a number from 0 to 0.99"},
    {"seed", "a whole number from 0 to 2147483647"},   {"threads", "a whole number from 1 to 1024"},
    {"limit", "a whole number, 0 for all rows"},
};

static int bad_value(const char *usage, const char *option, const char *value)
{
    const char *takes = "another value";
    for (size_t i = 0; i < sizeof option_ranges / sizeof option_ranges[0]; i++)
        if (strcmp(option_ranges[i].name, option) == 0)
            takes = option_ranges[i].takes;
    fprintf(stderr, "tapegrad: bad value '%s' for --%s: give %s\n\n%s", value, option, takes, usage);
    return EXIT_USAGE;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* ---- models in files ---------------------------------------------------------------------- */
/* A model file, open from read_saved to saved_close: its metadata and its weights come
 * through one descriptor, so a save by another process cannot mix two files. */
typedef struct saved_model {
    tg_safetensors *st;
    model_spec spec;
    const char *spec_text, *data;   /* inside st */
    tg_shape input_shape;
    int64_t classes;
    uint64_t seed;
    int epoch;
} saved_model;

#define MAX_CLASSES 100000   /* as many as a layer may have units (spec.c) */

/* What tapegrad fit writes, and the values it can have; read only through the library's
 * validator. */
enum { KEY_MODEL, KEY_SHAPE, KEY_CLASSES, KEY_SEED, KEY_EPOCH, KEY_DATA, N_KEYS };
static const tg_meta_key saved_keys[N_KEYS] = {
    [KEY_MODEL] = {"model", TG_META_TEXT, 1, 4096, true, "tapegrad fit"},
    [KEY_SHAPE] = {"input_shape", TG_META_DIMS, 1, INT32_MAX, true, "tapegrad fit"},
    [KEY_CLASSES] = {"classes", TG_META_INT, 1, MAX_CLASSES, true, "tapegrad fit"},
    [KEY_SEED] = {"seed", TG_META_INT, 0, INT64_MAX, false, NULL},
    [KEY_EPOCH] = {"epoch", TG_META_INT, 0, INT32_MAX - 1, false, NULL},
    [KEY_DATA] = {"data", TG_META_TEXT, 1, 4096, false, NULL},
};

static void format_shape(const tg_shape *s, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < s->rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)s->dims[i]);
}

static void saved_close(saved_model *sm)
{
    tg_safetensors_close(sm->st);
    *sm = (saved_model){0};
}

/* Opens a model file and reads what it says about its model. Returns an exit code; the
 * caller calls saved_close either way. */
static int read_saved(const char *path, saved_model *out)
{
    *out = (saved_model){0};
    tg_meta_value v[N_KEYS];
    char err[256];
    if (!(out->st = tg_safetensors_open(path)) || tg_safetensors_read_metadata(out->st, saved_keys, N_KEYS, v) != 0)
        return cli_library_error();
    if (!spec_parse(v[KEY_MODEL].text, &out->spec, err, sizeof err)) {
        fprintf(stderr, "tapegrad: %s: bad model metadata: %s\n", path, err);
        return EXIT_DATA;
    }
    out->spec_text = v[KEY_MODEL].text;
    out->data = v[KEY_DATA].present ? v[KEY_DATA].text : "fashion-mnist";
    out->input_shape = v[KEY_SHAPE].dims;
    out->classes = v[KEY_CLASSES].i;
    out->seed = (uint64_t)v[KEY_SEED].i;
    out->epoch = (int)v[KEY_EPOCH].i;
    return EXIT_OK;
}

/* Builds the model a file describes and loads its weights. With `opt` the model is
 * compiled with it first (the model then owns it), so the optimizer state loads too. */
static tg_model *load_model(const saved_model *sm, tg_optimizer *opt)
{
    tg_model *m = spec_build(&sm->spec, sm->input_shape, sm->classes, sm->seed);
    if (!m) {
        tg_optimizer_free(opt);
        return NULL;
    }
    if (opt && tg_compile(m, .optimizer = opt, .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY, .from_logits = true,
                          .metrics = TG_METRICS(TG_ACCURACY)) != 0) {
        tg_optimizer_free(opt);   /* a failed compile leaves it with its owner */
        tg_model_free(m);
        return NULL;
    }
    if (tg_model_load_from(m, sm->st) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* The metadata tapegrad fit writes, built with the library's JSON writer: a quote in a
 * file name or a long spec round-trips. Malloc'd, or NULL with the library's error. */
static char *fit_metadata(const char *spec_text, const tg_shape *in, int64_t classes, uint64_t seed, const char *data)
{
    char shape[TG_MAX_RANK * 24], n_classes[24], n_seed[24];
    format_shape(in, shape, sizeof shape);
    snprintf(n_classes, sizeof n_classes, "%lld", (long long)classes);
    snprintf(n_seed, sizeof n_seed, "%llu", (unsigned long long)seed);
    const char *keys[] = {"model", "input_shape", "classes", "seed", "data"};
    const char *values[] = {spec_text, shape, n_classes, n_seed, data};
    return tg_metadata_json(keys, values, 5);
}

/* ---- data to tensors ---------------------------------------------------------------------- */
/* The data set's rows shaped for the model, and its labels. */
static bool tensors_for(tg_dataset *ds, const model_spec *spec, tg_tensor **x, tg_tensor **y, tg_shape *in)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *probe = tg_dataset_x(ds);
    tg_shape row = tg_shape_of(probe);
    tg_scope_end(s);
    if (row.rank < 1)
        return false;
    row.rank--;
    memmove(row.dims, row.dims + 1, sizeof(int64_t) * (size_t)row.rank);
    *in = spec_input_shape(spec, row);
    if (tg_dataset_reshape(ds, *in) != 0)
        return false;
    *x = tg_dataset_x(ds);
    *y = tg_dataset_y(ds);
    return *x && *y;
}

/* The number of classes: labels must be class numbers 0, 1, ..., at least two of them.
 * Anything else is said here, in the command's words: NaN or 10^20 gave "tapegrad:
 * failed", one class a library message naming a C constant. -1 after a message. */
static int64_t count_classes(const tg_tensor *y, const char *source)
{
    int64_t n = tg_size(y), top = -1;
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!v || tg_copy_out_f64(y, v, n) != 0) {
        if (v)
            cli_library_error();
        else
            fprintf(stderr, "tapegrad: out of memory for %lld labels\n", (long long)n);
        free(v);
        return -1;
    }
    for (int64_t i = 0; i < n && top >= -1; i++) {
        if (!(v[i] >= 0 && v[i] < MAX_CLASSES && v[i] == floor(v[i]))) {
            fprintf(stderr, "tapegrad: %s: the label of row %lld is %g: labels must be class numbers 0, 1, 2, ... "
                    "(below %d)\n", source, (long long)i + 1, v[i], MAX_CLASSES);
            top = -2;
        } else if (v[i] > top) {
            top = (int64_t)v[i];
        }
    }
    free(v);
    if (n == 0)
        fprintf(stderr, "tapegrad: %s has no rows of data\n", source);
    else if (top == 0)
        fprintf(stderr, "tapegrad: %s: every label is 0: a classifier needs at least two classes\n", source);
    return top >= 1 ? top + 1 : -1;
}

static tg_optimizer *make_optimizer(const char *name, double lr)
{
    if (strcmp(name, "adam") == 0)
        return lr > 0 ? tg_adam(.learning_rate = lr) : tg_adam();
    if (strcmp(name, "adamw") == 0)
        return lr > 0 ? tg_adamw(.learning_rate = lr) : tg_adamw();
    if (strcmp(name, "sgd") == 0)
        return lr > 0 ? tg_sgd(.learning_rate = lr) : tg_sgd();
    if (strcmp(name, "rmsprop") == 0)
        return lr > 0 ? tg_rmsprop(.learning_rate = lr) : tg_rmsprop();
    if (strcmp(name, "adagrad") == 0)
        return lr > 0 ? tg_adagrad(.learning_rate = lr) : tg_adagrad();
    return NULL;
}

/* ---- fit ------------------------------------------------------------------------------------ */
typedef struct fit_args {
    const char *data, *label, *model, *optimizer, *save, *resume, *history, *plot;
    long epochs, batch_size, seed, threads;
    double lr, validation_split;
    bool quiet, profile;
} fit_args;

/* Whether getopt's value for a file or name option is usable: an empty one (--save "")
 * would otherwise mean "nothing", silently. */
static bool non_empty(const char *value) { return value && *value; }

static int parse_fit(int argc, char **argv, fit_args *a)
{
    *a = (fit_args){.data = "fashion-mnist", .model = "mlp:500", .optimizer = "adam", .history = "history.csv",
                    .plot = "history.svg", .epochs = 5, .batch_size = 32, .seed = 42};
    static const struct option opts[] = {
        {"data", 1, 0, 'd'},    {"label", 1, 0, 'l'},      {"model", 1, 0, 'm'},
        {"epochs", 1, 0, 'e'},  {"batch-size", 1, 0, 'b'}, {"optimizer", 1, 0, 'o'},
        {"learning-rate", 1, 0, 'r'}, {"validation-split", 1, 0, 'v'}, {"seed", 1, 0, 's'},
        {"threads", 1, 0, 't'}, {"save", 1, 0, 'S'},       {"resume", 1, 0, 'R'},
        {"history", 1, 0, 'H'}, {"plot", 1, 0, 'P'},       {"quiet", 0, 0, 'q'},
        {"profile", 0, 0, 'p'}, {"help", 0, 0, 'h'},       {0, 0, 0, 0},
    };
    optind = 1;
    opterr = 0;
    int c, at = -1;
    while ((c = getopt_long(argc, argv, ":", opts, &at)) != -1) {
        bool ok = true;
        switch (c) {
        case 'd': ok = non_empty(a->data = optarg); break;
        case 'l': a->label = optarg; break;   /* checked with the data (data.c) */
        case 'm': ok = non_empty(a->model = optarg); break;
        case 'e': ok = parse_long(optarg, 1, 100000, &a->epochs); break;
        case 'b': ok = parse_long(optarg, 1, 1 << 24, &a->batch_size); break;
        case 'o': ok = non_empty(a->optimizer = optarg); break;
        case 'r': ok = parse_double(optarg, 1e-12, 10, &a->lr); break;
        case 'v': ok = parse_double(optarg, 0, 0.99, &a->validation_split); break;
        case 's': ok = parse_long(optarg, 0, 0x7fffffffL, &a->seed); break;
        case 't': ok = parse_long(optarg, 1, 1024, &a->threads); break;
        case 'S': ok = non_empty(a->save = optarg); break;
        case 'R': ok = non_empty(a->resume = optarg); break;
        case 'H': ok = non_empty(a->history = optarg); break;
        case 'P': ok = non_empty(a->plot = optarg); break;
        case 'q': a->quiet = true; break;
        case 'p': a->profile = true; break;
        case 'h': fputs(usage_fit, stdout); return -1;
        case ':': return usage_error(usage_fit, "%s needs a value", argv[optind - 1]);
        default: return usage_error(usage_fit, "unknown option %s", argv[optind - 1]);
        }
        if (!ok && !*optarg)
            return usage_error(usage_fit, "--%s needs a value; it was given an empty one", opts[at].name);
        if (!ok)
            return bad_value(usage_fit, opts[at].name, optarg);
    }
    if (optind < argc)
        return usage_error(usage_fit, "unexpected argument '%s'", argv[optind]);
    if (!a->save)   /* a resumed fit goes on writing the file it came from */
        a->save = a->resume ? a->resume : "model.safetensors";
    return EXIT_OK;
}

static int report_test(tg_model *m, tg_dataset *test, const model_spec *spec)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    tg_shape in;
    tg_logs logs;
    int rc = tensors_for(test, spec, &x, &y, &in) && tg_evaluate(m, x, y, &logs, .batch_size = 500) == 0
                 ? EXIT_OK
                 : cli_library_error();
    if (rc == EXIT_OK)
        printf("test loss: %.4f - test accuracy: %.4f\n", tg_logs_get(&logs, "loss"), tg_logs_get(&logs, "accuracy"));
    tg_scope_end(s);
    return rc;
}

static int fit(const fit_args *ap, const saved_model *prior_in);

static int cmd_fit(int argc, char **argv)
{
    fit_args a;
    int rc = parse_fit(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    saved_model prior = {0};
    if (!a.resume || (rc = read_saved(a.resume, &prior)) == EXIT_OK)
        rc = fit(&a, &prior);
    saved_close(&prior);
    return rc;
}

/* The fit itself, from scratch or (a->resume) from `prior`. */
static int fit(const fit_args *ap, const saved_model *prior_in)
{
    fit_args a = *ap;
    const saved_model prior = *prior_in;
    int rc = EXIT_OK;
    const char *spec_text = a.resume ? prior.spec_text : a.model;
    model_spec spec;
    char err[256];
    if (!spec_parse(spec_text, &spec, err, sizeof err))
        return usage_error(usage_fit, "%s", err);
    tg_optimizer *opt = make_optimizer(a.optimizer, a.lr);
    if (!opt)
        return tg_has_error() ? cli_library_error() : usage_error(usage_fit, "unknown optimizer '%s'", a.optimizer);
    if (a.threads)
        tg_set_num_threads((int)a.threads);
    data_source d;
    if ((rc = data_load(a.resume ? prior.data : a.data, a.label, &d)) != EXIT_OK) {
        tg_optimizer_free(opt);
        return rc;
    }
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    tg_shape in;
    tg_model *m = NULL;
    tg_history *h = NULL;
    tg_callback *ckpt = NULL;
    int64_t classes = 0;
    if (!tensors_for(d.train, &spec, &x, &y, &in)) {
        rc = cli_library_error();
        goto done;
    }
    if ((classes = count_classes(y, a.resume ? prior.data : a.data)) < 1) {
        rc = EXIT_DATA;
        goto done;
    }
    uint64_t seed = a.resume ? prior.seed : (uint64_t)a.seed;
    m = a.resume ? load_model(&prior, opt) : spec_build(&spec, in, classes, seed);
    opt = a.resume ? NULL : opt;   /* the resumed model owns it */
    if (!m || (!a.resume && tg_compile(m, .optimizer = opt, .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                                        .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) != 0)) {
        tg_optimizer_free(opt);   /* still ours: a failed compile does not take it */
        opt = NULL;
        rc = cli_library_error();
        goto done;
    }
    opt = NULL;
    char *meta = fit_metadata(spec_text, &in, classes, seed, a.resume ? prior.data : a.data);
    ckpt = meta ? tg_model_checkpoint(.filepath = a.save, .metadata_json = meta) : NULL;
    free(meta);
    if (!ckpt) {   /* never train without saving what --save asks for */
        rc = cli_library_error();
        goto done;
    }
    if (!a.quiet)
        printf("tapegrad: %s on %s (%lld training samples, %lld classes), %s, batch %ld\n", spec_text, d.name,
               (long long)tg_dim(x, 0), (long long)classes, a.optimizer, a.batch_size);
    if (a.profile)
        tg_profile_start();
    h = tg_fit(m, x, y, .epochs = (int)a.epochs, .batch_size = a.batch_size, .validation_split = a.validation_split,
               .seed = seed, .initial_epoch = a.resume ? prior.epoch : 0, .callbacks = &ckpt, .n_callbacks = 1,
               .verbose = a.quiet ? TG_VERBOSE_SILENT : TG_VERBOSE_AUTO);
    if (a.profile) {
        tg_profile_stop();
        tg_profile_print(stderr);
    }
    if (!h) {
        rc = cli_library_error();
        goto done;
    }
    if ((a.history && (rc = history_write_csv(h, a.history)) != EXIT_OK) ||
        (a.plot && (rc = history_write_svg(h, a.plot, spec_text)) != EXIT_OK))
        goto done;
    if (!a.quiet)
        printf("saved %s, %s and %s\n", a.save, a.history, a.plot);
    if (d.test)
        rc = report_test(m, d.test, &spec);
done:
    tg_history_free(h);
    tg_callback_free(ckpt);
    tg_model_free(m);
    tg_optimizer_free(opt);
    tg_scope_end(s);
    data_free(&d);
    return rc;
}

static int evaluate(const saved_model *saved, const char *data, const char *label, long batch);

/* ---- evaluate, predict, summary ------------------------------------------------------------ */
static int cmd_evaluate(int argc, char **argv)
{
    static const struct option opts[] = {{"data", 1, 0, 'd'}, {"label", 1, 0, 'l'}, {"batch-size", 1, 0, 'b'},
                                         {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *data = NULL, *label = NULL;
    long batch = 500;
    optind = 1;
    opterr = 0;
    int c, at = -1;
    while ((c = getopt_long(argc, argv, ":", opts, &at)) != -1) {
        if (c == 'h')
            return fputs(usage_evaluate, stdout), EXIT_OK;
        if (c == 'd' && non_empty(optarg))
            data = optarg;
        else if (c == 'd')
            return usage_error(usage_evaluate, "--data needs a value; it was given an empty one%s", "");
        else if (c == 'l')
            label = optarg;
        else if (c == 'b' && !parse_long(optarg, 1, 1 << 24, &batch))
            return bad_value(usage_evaluate, "batch-size", optarg);
        else if (c == ':')
            return usage_error(usage_evaluate, "%s needs a value", argv[optind - 1]);
        else if (c != 'b')
            return usage_error(usage_evaluate, "unknown option %s", argv[optind - 1]);
    }
    if (optind + 1 != argc)
        return usage_error(usage_evaluate, "give one MODEL file%s", "");
    saved_model sm;
    int rc = read_saved(argv[optind], &sm);
    if (rc == EXIT_OK)
        rc = evaluate(&sm, data, label, batch);
    saved_close(&sm);
    return rc;
}

static int evaluate(const saved_model *saved, const char *data, const char *label, long batch)
{
    const saved_model sm = *saved;
    data_source d;
    int rc = data_load(data ? data : sm.data, label, &d);
    if (rc != EXIT_OK)
        return rc;
    tg_model *m = load_model(&sm, tg_adam());
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    tg_shape in;
    tg_logs logs;
    tg_dataset *ds = d.test ? d.test : d.train;
    if (!m || !tensors_for(ds, &sm.spec, &x, &y, &in) || tg_evaluate(m, x, y, &logs, .batch_size = batch) != 0)
        rc = cli_library_error();
    else
        printf("%lld samples - loss: %.4f - accuracy: %.4f\n", (long long)tg_dim(x, 0), tg_logs_get(&logs, "loss"),
               tg_logs_get(&logs, "accuracy"));
    tg_scope_end(s);
    tg_model_free(m);
    data_free(&d);
    return rc;
}

static tg_tensor *read_input(const char *path)
{
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".npy") == 0)
        return tg_read_npy(path, .dtype = TG_F32);
    if (n > 4 && strcmp(path + n - 4, ".csv") == 0)
        return tg_read_csv(path).x;
    return tg_read_idx(path, .scale = 1.0 / 255.0);
}

/* Each row of the input must be one example: any input would otherwise be reshaped to
 * the model's rows (the training file, label column and all, gives more predictions
 * than it has rows, silently). */
static bool rows_fit(const tg_tensor *x, tg_shape want, const char *path)
{
    tg_shape s = tg_shape_of(x);
    int64_t need = 1, have = 1;
    for (int i = 0; i < want.rank; i++)
        need *= want.dims[i];
    for (int i = 1; i < s.rank; i++)
        have *= s.dims[i];
    if ((s.rank >= 2 && have == need) || (s.rank == 1 && s.dims[0] == need))
        return true;
    char a[128] = "", b[128] = "";
    format_shape(&want, a, sizeof a);
    if (s.rank == 2 && want.rank == 1)
        fprintf(stderr, "tapegrad: the model expects %lld features; %s has %lld columns\n", (long long)need, path,
                (long long)have);
    else {
        tg_shape row = {.rank = s.rank > 1 ? s.rank - 1 : s.rank};
        memcpy(row.dims, s.dims + (s.rank > 1), sizeof(int64_t) * (size_t)row.rank);
        format_shape(&row, b, sizeof b);
        fprintf(stderr, "tapegrad: the model expects examples of shape (%s), %lld values each; %s has %s of shape "
                "(%s)\n", a, (long long)need, path, s.rank > 1 ? "rows" : "one row", b);
    }
    return false;
}

static int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {{"limit", 1, 0, 'n'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long limit = 10;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'h')
            return fputs(usage_predict, stdout), EXIT_OK;
        if (c == ':')
            return usage_error(usage_predict, "%s needs a value", argv[optind - 1]);
        if (c != 'n')
            return usage_error(usage_predict, "unknown option %s", argv[optind - 1]);
        if (!parse_long(optarg, 0, 1L << 40, &limit))
            return bad_value(usage_predict, "limit", optarg);
    }
    if (optind + 2 != argc)
        return usage_error(usage_predict, "give a MODEL file and an INPUT file%s", "");
    saved_model sm;
    int rc = read_saved(argv[optind], &sm);
    if (rc != EXIT_OK) {
        saved_close(&sm);
        return rc;
    }
    tg_model *m = load_model(&sm, NULL);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = m ? read_input(argv[optind + 1]) : NULL;
    tg_shape want = sm.input_shape, shape = {.rank = want.rank + 1, .dims = {-1}};
    memcpy(shape.dims + 1, want.dims, sizeof(int64_t) * (size_t)want.rank);
    bool fits = x && rows_fit(x, want, argv[optind + 1]);
    tg_tensor *p = fits ? tg_softmax(tg_predict(m, tg_reshape(x, shape), .batch_size = 500), -1) : NULL;
    if (x && !fits) {
        rc = EXIT_DATA;
    } else if (!p) {
        rc = cli_library_error();
    } else {
        int64_t rows = tg_dim(p, 0), k = tg_dim(p, 1);
        double *v = malloc(sizeof(double) * (size_t)(rows * k + 1));
        tg_copy_out_f64(p, v, rows * k);
        for (int64_t r = 0; r < rows && (limit == 0 || r < limit); r++) {
            int64_t best = 0;
            for (int64_t j = 1; j < k; j++)
                best = v[r * k + j] > v[r * k + best] ? j : best;
            printf("%lld: class %lld (%.4f)  probabilities:", (long long)r, (long long)best, v[r * k + best]);
            for (int64_t j = 0; j < k; j++)
                printf(" %.4f", v[r * k + j]);
            putchar('\n');
        }
        if (limit && rows > limit)
            printf("... %lld more rows (--limit 0 prints all)\n", (long long)(rows - limit));
        free(v);
    }
    tg_scope_end(s);
    tg_model_free(m);
    saved_close(&sm);
    return rc;
}

static int cmd_summary(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return fputs(usage_summary, stdout), EXIT_OK;
    if (argc != 2)
        return usage_error(usage_summary, "give one MODEL file%s", "");
    saved_model sm;
    int rc = read_saved(argv[1], &sm);
    tg_model *m = rc == EXIT_OK ? load_model(&sm, NULL) : NULL;
    if (m) {
        printf("%s, trained %d epochs on %s\n", sm.spec_text, sm.epoch, sm.data);
        tg_model_summary(m, stdout);
    } else if (rc == EXIT_OK) {
        rc = cli_library_error();
    }
    tg_model_free(m);
    saved_close(&sm);
    return rc;
}

int main(int argc, char **argv)
{
    /* Past the file-size limit a write fails with EFBIG, which the library reports (and
     * cleans up after) like any failed write, instead of the signal killing us mid-save. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2)
        return fputs(usage_main, stderr), EXIT_USAGE;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return fputs(usage_main, stdout), EXIT_OK;
    if (strcmp(cmd, "fit") == 0)
        return cmd_fit(argc - 1, argv + 1);
    if (strcmp(cmd, "evaluate") == 0)
        return cmd_evaluate(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 1, argv + 1);
    if (strcmp(cmd, "summary") == 0)
        return cmd_summary(argc - 1, argv + 1);
    return usage_error(usage_main, "unknown command '%s'", cmd);
}
