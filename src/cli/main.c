/* tapegrad: train, evaluate and inspect models from the command line.
 *
 *   tapegrad fit --data fashion-mnist --model mlp:500 --epochs 5 --save model.safetensors
 *   tapegrad evaluate model.safetensors
 *   tapegrad predict model.safetensors images.npy
 *   tapegrad summary model.safetensors
 *   tapegrad fit --data text:corpus.txt --model lstm:256 --save chars.safetensors
 *   tapegrad generate chars.safetensors --length 500 --seed 1
 *
 * Exit codes: 0 ok, 1 usage, 2 data or file error. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *const usage_main = "usage: tapegrad COMMAND [OPTIONS]\n"
                                      "\n"
                                      "commands:\n"
                                      "  fit        train a model and save it, its history and a plot\n"
                                      "  evaluate   loss and accuracy of a saved model on labelled data\n"
                                      "  predict    classes and probabilities of a saved model for new inputs\n"
                                      "  summary    the layers and parameter counts of a saved model\n"
                                      "  generate   text sampled from a character model (fit --data text:FILE)\n"
                                      "\n"
                                      "tapegrad COMMAND --help shows a command's options.\n";

static const char *const usage_fit =
    "usage: tapegrad fit [OPTIONS]\n"
    "\n"
    "  --data SOURCE          fashion-mnist (default), csv:FILE, npy:X.npy,Y.npy, idx:IMAGES,LABELS\n"
    "                         or text:FILE (UTF-8 text: a character model, --model lstm:256, whose\n"
    "                         last 10% of windows are held out unless --validation-split says;\n"
    "                         reports bits per character)\n"
    "  --seq-len N            text: characters per training sequence, each with the next\n"
    "                         character as its target (default 100)\n"
    "  --label COLUMN         the label column of a CSV file, by name or index (-1: the last)\n"
    "  --delimiter NAME       a CSV file's separator: comma (default), whitespace (runs of spaces\n"
    "                         and tabs), tab or semicolon. Gzip-compressed files are read as they are\n"
    "  --skip-rows N          lines of a CSV file before its header (scikit-learn's: 1), default 0\n"
    "  --no-header            the CSV file's first line (after those skipped) is data, not names\n"
    "                         (--label is then an index)\n"
    "  --normalize            standardise each feature by the mean and variance of the training\n"
    "                         rows (Keras's Normalization, adapted before the validation split is\n"
    "                         held out); stored in the model file, applied by evaluate and predict\n"
    "  --loss NAME            mse, mae, huber (regression), sparse_categorical_crossentropy or\n"
    "                         binary_crossentropy (classification). Default: from the labels:\n"
    "                         whole numbers 0..K-1 (K at most the rows and 65536, the smallest\n"
    "                         label 0 or 1) are K classes, other numbers a regression (mse,\n"
    "                         one linear output)\n"
    "  --classes K            the labels are K classes 0..K-1 (some may be missing)\n"
    "  --model SPEC           mlp:500 (default), mlp:512,256 (hidden ReLU layers), cnn, or\n"
    "                         lstm:128 / gru:128 (recurrent layers over the rows as steps)\n"
    "  --epochs N             default 5\n"
    "  --batch-size N         default 32\n"
    "  --optimizer NAME       adam (default), adamw, sgd, rmsprop, adagrad, nadam, adamax,\n"
    "                         adadelta, ftrl or lion\n"
    "  --learning-rate X      default: Keras's for the optimizer\n"
    "  --validation-split X   the last fraction of the training data, held out (default 0)\n"
    "  --seed N               weights and shuffling (default 42)\n"
    "  --threads N            threads for matrix products (default: the library's)\n"
    "  --precision POLICY     float32 (default) or mixed_bfloat16 (Keras's dtype policy: Dense and\n"
    "                         Conv2D compute in bfloat16, weights, optimizer state and loss stay\n"
    "                         float32); stored in the model file, used by evaluate, predict, --resume\n"
    "  --save FILE            the model, written at every epoch end (default model.safetensors,\n"
    "                         or the --resume FILE)\n"
    "  --resume FILE          continue a fit from a file written by --save: its data, label, loss,\n"
    "                         optimizer, learning rate, batch size, validation split and seed, each\n"
    "                         unless given here (with a note); --epochs is the epoch to stop at.\n"
    "                         The history CSV and plot (the file's, unless given) go on from the\n"
    "                         epochs already in them\n"
    "  --history FILE         loss and metrics per epoch, CSV (default history.csv)\n"
    "  --plot FILE            loss and accuracy per epoch, SVG (default history.svg)\n"
    "  --quiet                no progress output\n"
    "  --profile              after training, where its time went, per op (to stderr)\n";

static const char *const usage_evaluate =
    "usage: tapegrad evaluate MODEL [--data SOURCE] [--label COLUMN] [--batch-size N]\n"
    "\n"
    "Loss and accuracy (a regression: loss, MAE, RMSE and R2) of MODEL (a file written by\n"
    "tapegrad fit) on the test split of SOURCE (fashion-mnist: its 10000 test images), or on\n"
    "all of SOURCE when it has none. SOURCE and COLUMN default to the data and label the\n"
    "model was trained on (the file's stored path, else that path from MODEL's folder).\n";

static const char *const usage_predict =
    "usage: tapegrad predict MODEL INPUT [--limit N] [--output FILE]\n"
    "\n"
    "Classes and probabilities (a regression: values) for each row of INPUT: a .npy file, an IDX file (raw\n"
    "images, scaled to [0, 1]) or a CSV file of features (.csv or .csv.gz, laid out as the training\n"
    "file was: its delimiter and skipped lines). The model's --normalize statistics are applied.\n"
    "--limit caps the rows printed (default 10; 0 prints all).\n"
    "--output FILE writes every row's prediction: FILE.csv has the columns class,p0,p1,... (binary:\n"
    "class,probability; a regression: value); FILE.npy a structured array of shape (rows,) with\n"
    "fields 'class' (int32) and 'probabilities' (float32, K) ('probability' for a binary model),\n"
    "or for a regression a float32 array of shape (rows,).\n";

static const char *const usage_summary = "usage: tapegrad summary MODEL\n";

static const char *const usage_generate =
    "usage: tapegrad generate MODEL [--length N] [--seed S] [--temperature T] [--prime TEXT]\n"
    "\n"
    "Text from a character model (tapegrad fit --data text:FILE): TEXT (default: a newline, when\n"
    "the vocabulary has one), then N characters (default 500), each drawn from the model's softmax\n"
    "over its vocabulary given up to the model's --seq-len characters before it, the logits divided\n"
    "by T (default 1; 0 takes the most likely character). The same S (default 42) gives the same text.\n";

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
    {"epochs", "a whole number from 1 to 100000"},
    {"batch-size", "a whole number from 1 to 16777216"},
    {"learning-rate", "a number from 1e-12 to 10"},
    {"validation-split", "a number from 0 to 0.99"},
    {"seed", "a whole number from 0 to 2147483647"},
    {"threads", "a whole number from 1 to 1024"},
    {"limit", "a whole number, 0 for all rows"},
    {"classes", "a whole number from 2 to 100000"},
    {"delimiter", "comma, whitespace, tab or semicolon"},
    {"skip-rows", "a whole number from 0 to 1000000"},
    {"seq-len", "a whole number from 1 to 100000"},
    {"length", "a whole number from 1 to 10000000"},
    {"temperature", "a number from 0 to 100"},
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

static const char *const optimizer_names[] = {"adam",  "adamw",  "sgd",      "rmsprop", "adagrad",
                                              "nadam", "adamax", "adadelta", "ftrl",    "lion"};

static bool optimizer_known(const char *name)
{
    for (size_t i = 0; i < sizeof optimizer_names / sizeof optimizer_names[0]; i++)
        if (strcmp(name, optimizer_names[i]) == 0)
            return true;
    return false;
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
    if (strcmp(name, "nadam") == 0)
        return lr > 0 ? tg_nadam(.learning_rate = lr) : tg_nadam();
    if (strcmp(name, "adamax") == 0)
        return lr > 0 ? tg_adamax(.learning_rate = lr) : tg_adamax();
    if (strcmp(name, "adadelta") == 0)
        return lr > 0 ? tg_adadelta(.learning_rate = lr) : tg_adadelta();
    if (strcmp(name, "ftrl") == 0)
        return lr > 0 ? tg_ftrl(.learning_rate = lr) : tg_ftrl();
    if (strcmp(name, "lion") == 0)
        return lr > 0 ? tg_lion(.learning_rate = lr) : tg_lion();
    return NULL;
}

/* ---- models in files ---------------------------------------------------------------------- */
/* A model file, open from read_saved to saved_close: its metadata and its weights come
 * through one descriptor, so a save by another process cannot mix two files. */
typedef struct saved_model {
    tg_safetensors *st;
    const char *path;
    model_spec spec;
    const char *spec_text, *data;  /* inside st */
    const char *data_path;         /* the data with absolute paths, or NULL */
    const char *label, *optimizer; /* NULL when not stored */
    const char *history, *plot;    /* NULL when not stored */
    const char *precision;         /* the dtype policy: "float32" when not stored */
    tg_loss_kind loss;
    tg_shape input_shape;
    int64_t classes; /* the model's outputs: 1 for a regression */
    uint64_t seed;
    int epoch;
    double lr, validation_split; /* lr 0: not stored; validation_split -1: not stored */
    long batch_size;             /* 0: not stored */
    csv_layout layout;
    double *norm; /* --normalize: n_norm means then n_norm variances (malloc'd), or NULL */
    int64_t n_norm;
    uint32_t *vocab; /* a character model's characters (malloc'd), spec.vocab of them */
} saved_model;

/* The losses the command trains with. */
static bool loss_is_regression(tg_loss_kind k) { return k == TG_LOSS_MSE || k == TG_LOSS_MAE || k == TG_LOSS_HUBER; }
static bool loss_supported(tg_loss_kind k)
{
    return loss_is_regression(k) || k == TG_LOSS_BINARY_CROSSENTROPY || k == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
}

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
    free(sm->norm);
    free(sm->vocab);
    *sm = (saved_model){0};
}

static bool norm_parse(const char *text, saved_model *sm);

/* The --precision policies: Keras's dtype policies the command trains under. */
static bool precision_known(const char *p) { return !strcmp(p, "float32") || !strcmp(p, "mixed_bfloat16"); }

/* The command's model under a dtype policy: the global policy set while its layers are
 * made (Keras reads it then), and put back after. */
static tg_model *spec_build_under(const char *precision, const model_spec *spec, tg_shape in, int64_t classes,
                                  uint64_t seed, bool sigmoid)
{
    char was[32];
    snprintf(was, sizeof was, "%s", tg_dtype_policy());
    if (tg_set_dtype_policy(precision) != 0)
        return NULL;
    tg_model *m = spec_build(spec, in, classes, seed, sigmoid);
    tg_set_dtype_policy(was);
    return m;
}

/* A character model's vocabulary: one class per character, a recurrent model taking one
 * index per step, trained with sparse cross-entropy. */
static bool vocab_read(const char *text, int64_t embedding_dim, saved_model *sm)
{
    int64_t n = 0;
    if (!text_vocab_parse(text, &sm->vocab, &n) || n != sm->classes || sm->input_shape.rank != 1 ||
        (sm->spec.kind != SPEC_LSTM && sm->spec.kind != SPEC_GRU) ||
        sm->loss != TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        return false;
    sm->spec.vocab = n;
    sm->spec.embedding_dim = embedding_dim ? embedding_dim : TEXT_EMBEDDING_DIM;
    return true;
}

/* Opens a model file and reads what it says about its model. Returns an exit code; the
 * caller calls saved_close either way. */
static int read_saved(const char *path, saved_model *out)
{
    *out = (saved_model){0};
    tg_meta_value v[N_KEYS];
    char err[256];
    if (!(out->st = tg_safetensors_open(path)) || tg_safetensors_read_metadata(out->st, cli_saved_keys, N_KEYS, v) != 0)
        return cli_library_error();
    if (!spec_parse(v[KEY_MODEL].text, &out->spec, err, sizeof err)) {
        fprintf(stderr, "tapegrad: %s: bad model metadata: %s\n", path, err);
        return EXIT_DATA;
    }
    out->path = path;
    out->spec_text = v[KEY_MODEL].text;
    out->data = v[KEY_DATA].present ? v[KEY_DATA].text : "fashion-mnist";
    out->data_path = v[KEY_DATA_PATH].present ? v[KEY_DATA_PATH].text : NULL;
    out->label = v[KEY_LABEL].present ? v[KEY_LABEL].text : NULL;
    out->optimizer = v[KEY_OPTIMIZER].present ? v[KEY_OPTIMIZER].text : NULL;
    out->history = v[KEY_HISTORY].present ? v[KEY_HISTORY].text : NULL;
    out->plot = v[KEY_PLOT].present ? v[KEY_PLOT].text : NULL;
    out->precision = v[KEY_PRECISION].present ? v[KEY_PRECISION].text : "float32";
    out->input_shape = v[KEY_SHAPE].dims;
    out->classes = v[KEY_CLASSES].i;
    out->seed = (uint64_t)v[KEY_SEED].i;
    out->epoch = (int)v[KEY_EPOCH].i;
    out->batch_size = v[KEY_BATCH].present ? (long)v[KEY_BATCH].i : 0;
    out->validation_split = -1;
    out->layout = CSV_LAYOUT_DEFAULT;
    out->layout.skip_rows = v[KEY_SKIP_ROWS].present ? (int)v[KEY_SKIP_ROWS].i : 0;
    out->layout.no_header = v[KEY_HEADER].present && v[KEY_HEADER].i == 0;
    out->loss = v[KEY_LOSS].present ? tg_loss_kind_from_name(v[KEY_LOSS].text)
                                    : TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY; /* files before the key */
    const char *key = NULL, *why = NULL;
    if (!loss_supported(out->loss))
        key = "loss", why = "a loss tapegrad fit trains with";
    else if (v[KEY_LR].present && !parse_double(v[KEY_LR].text, 1e-12, 10, &out->lr))
        key = "learning_rate", why = "a number from 1e-12 to 10";
    else if (v[KEY_SPLIT].present && !parse_double(v[KEY_SPLIT].text, 0, 0.99, &out->validation_split))
        key = "validation_split", why = "a number from 0 to 0.99";
    else if (out->optimizer && !optimizer_known(out->optimizer))
        key = "optimizer", why = "adam, adamw, sgd, rmsprop, adagrad, nadam, adamax, adadelta, ftrl or lion";
    else if (loss_is_regression(out->loss) && out->classes != 1)
        key = "classes", why = "1 for a regression";
    else if (v[KEY_DELIMITER].present && !(out->layout.delimiter = csv_delimiter_parse(v[KEY_DELIMITER].text)))
        key = "delimiter", why = "comma, whitespace, tab or semicolon";
    else if (v[KEY_NORMALIZATION].present && !norm_parse(v[KEY_NORMALIZATION].text, out))
        key = "normalization", why = "the means then the variances of the input's features, as numbers";
    else if (!precision_known(out->precision))
        key = "precision", why = "float32 or mixed_bfloat16";
    else if (v[KEY_VOCABULARY].present && !vocab_read(v[KEY_VOCABULARY].text, v[KEY_EMBEDDING_DIM].i, out))
        key = "vocabulary",
        why = "the increasing code points of as many characters as the model has classes, for a recurrent "
              "model of one class index per step";
    if (key) {
        fprintf(stderr, "tapegrad: %s: bad model metadata \"%s\" is \"%s\": it must be %s\n", path, key,
                tg_safetensors_metadata(out->st, key), why);
        return EXIT_DATA;
    }
    return EXIT_OK;
}

/* ---- --normalize: Keras's Normalization ---------------------------------------------------- */
/* The library's Normalization layer with every example axis kept: each value of a row has
 * its own population mean and variance, and becomes (x - mean) / max(sqrt(variance), 1e-7). */
static int64_t row_size(tg_shape s)
{
    int64_t n = 1;
    for (int i = 1; i < s.rank; i++)
        n *= s.dims[i];
    return n;
}

/* "m0,m1,...;v0,v1,..." into sm->norm; false when malformed or not the input's size. */
static bool norm_parse(const char *text, saved_model *sm)
{
    int64_t n = 1;
    for (int i = 0; i < sm->input_shape.rank && n <= (1 << 26); i++)
        n *= sm->input_shape.dims[i]; /* the text's limit holds fewer numbers: no overflow */
    if (n < 1 || n > (1 << 26) || (int64_t)strlen(text) < 4 * n - 1 ||
        !(sm->norm = malloc(sizeof(double) * (size_t)(2 * n))))
        return false;
    const char *p = text;
    for (int64_t i = 0; i < 2 * n; i++) {
        char *end;
        sm->norm[i] = strtod(p, &end);
        char want = i + 1 == 2 * n ? 0 : i + 1 == n ? ';' : ',';
        if (end == p || *end != want || !isfinite(sm->norm[i]) || (i >= n && sm->norm[i] < 0))
            return false;
        p = end + (want != 0);
    }
    sm->n_norm = n;
    return true;
}

/* A Normalization layer for batches shaped like x, keeping every example axis, with the
 * statistics `st` (n means then n variances) or, for NULL, to adapt in float64 (the model
 * file keeps the statistics to 17 digits). */
static tg_layer *norm_layer(const tg_tensor *x, const double *st, int64_t n)
{
    tg_shape s = tg_shape_of(x);
    tg_axes every = {.n = s.rank - 1};
    for (int i = 1; i < s.rank; i++)
        every.axis[i - 1] = i;
    return tg_normalization(.axis = every, .axis_none = s.rank < 2, .mean = st, .variance = st ? st + n : NULL,
                            .n_values = n, .dtype = st ? TG_F32 : TG_F64);
}

/* The statistics of rows [0, rows) of x: n means then n variances (malloc'd), or NULL. */
static double *norm_adapt(const tg_tensor *x, int64_t rows, int64_t *n_out)
{
    tg_shape s = tg_shape_of(x), begin = {.rank = s.rank};
    s.dims[0] = rows;
    tg_layer *l = norm_layer(x, NULL, 0);
    int64_t n = row_size(s);
    double *st = malloc(sizeof(double) * (size_t)(2 * n));
    tg_tensor *const *v =
        st && l && tg_normalization_adapt(l, tg_slice(x, begin, s)) == 0 ? tg_layer_variables(l, NULL) : NULL;
    if (!v || tg_copy_out_f64(v[0], st, n) != 0 || tg_copy_out_f64(v[1], st + n, n) != 0) {
        free(st);
        st = NULL;
    }
    tg_layer_free(l);
    *n_out = n;
    return st;
}

/* x standardised by the statistics, a new float32 tensor of x's shape, or NULL. */
static tg_tensor *norm_apply(const tg_tensor *x, const double *st, int64_t n)
{
    if (row_size(tg_shape_of(x)) != n) {
        fprintf(stderr, "tapegrad: the model's normalization has %lld features; the input has %lld\n", (long long)n,
                (long long)row_size(tg_shape_of(x)));
        return NULL;
    }
    tg_layer *l = norm_layer(x, st, n);
    tg_tensor *out = tg_layer_call(l, x);
    tg_layer_free(l);
    return out;
}

/* The statistics as the model file stores them (malloc'd), or NULL. */
static char *norm_text(const double *st, int64_t n)
{
    char *t = malloc((size_t)(2 * n) * 26 + 1);
    size_t k = 0;
    for (int64_t i = 0; t && i < 2 * n; i++)
        k += (size_t)sprintf(t + k, "%s%.17g", i == 0 ? "" : i == n ? ";" : ",", st[i]);
    return t;
}

/* Without --normalize: a note when the features' spreads (standard deviations over the
 * training rows) differ by a factor of 100 or more, which trains badly. */
static void warn_scales(const tg_tensor *x, int64_t rows)
{
    int64_t n = 0;
    double *st = norm_adapt(x, rows, &n);
    if (!st)
        return;
    int64_t lo = -1, hi = -1;
    for (int64_t j = 0; j < n; j++) {
        if (!(st[n + j] > 0))
            continue;
        lo = lo < 0 || st[n + j] < st[n + lo] ? j : lo;
        hi = hi < 0 || st[n + j] > st[n + hi] ? j : hi;
    }
    if (lo >= 0 && sqrt(st[n + hi] / st[n + lo]) >= 100)
        fprintf(stderr,
                "tapegrad: note: the features' scales differ by a factor of %.0f (feature %lld has standard "
                "deviation %.3g, feature %lld %.3g): give --normalize to standardise them\n",
                sqrt(st[n + hi] / st[n + lo]), (long long)hi + 1, sqrt(st[n + hi]), (long long)lo + 1,
                sqrt(st[n + lo]));
    free(st);
}

/* Compiles for `loss`: sparse cross-entropy on logits and binary cross-entropy on the
 * sigmoid's probabilities, with accuracy; regressions with MAE and MSE (the command
 * prints RMSE and R2 from predictions). `distribute`: over the ranks of an MPI job. */
static int compile_for(tg_model *m, tg_optimizer *opt, tg_loss_kind loss, bool distribute)
{
    if (loss_is_regression(loss))
        return tg_compile(m, .optimizer = opt, .loss = loss, .distribute = distribute,
                          .metrics = TG_METRICS(TG_METRIC_MEAN_ABSOLUTE_ERROR, TG_METRIC_MEAN_SQUARED_ERROR));
    return tg_compile(m, .optimizer = opt, .loss = loss, .from_logits = loss != TG_LOSS_BINARY_CROSSENTROPY,
                      .metrics = TG_METRICS(TG_ACCURACY), .distribute = distribute);
}

/* Builds the model a file describes and loads its weights. With `opt` the model is
 * compiled with it first (the model then owns it), so the optimizer state loads too. */
static tg_model *load_model(const saved_model *sm, tg_optimizer *opt, bool distribute)
{
    tg_model *m = spec_build_under(sm->precision ? sm->precision : "float32", &sm->spec, sm->input_shape, sm->classes,
                                   sm->seed, sm->loss == TG_LOSS_BINARY_CROSSENTROPY);
    if (!m) {
        tg_optimizer_free(opt);
        return NULL;
    }
    if (opt && compile_for(m, opt, sm->loss, distribute) != 0) {
        tg_optimizer_free(opt); /* a failed compile leaves it with its owner */
        tg_model_free(m);
        return NULL;
    }
    if (tg_model_load_from(m, sm->st) != 0) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* The model a file describes, for evaluate, predict and summary: rebuilt from the
 * architecture the file stores (compiled as it was saved), or for files from before
 * architectures were stored, from its spec (compiled with `opt` when given). */
static tg_model *load_saved(const saved_model *sm, tg_optimizer *opt)
{
    if (!tg_safetensors_metadata(sm->st, "tapegrad_model"))
        return load_model(sm, opt, false);
    tg_optimizer_free(opt);
    return tg_model_load_file_from(sm->st);
}

/* The training set-up tapegrad fit stores in its file. */
typedef struct setup {
    const char *spec_text, *data, *data_path, *label, *optimizer, *history, *plot;
    tg_shape input_shape;
    int64_t classes;
    uint64_t seed;
    tg_loss_kind loss;
    double lr, validation_split;
    long batch_size;
    csv_layout layout;
    const char *norm;      /* normalization text, or NULL */
    const char *precision; /* the dtype policy */
    const char *vocab;     /* a character model's vocabulary text, or NULL */
    int64_t embedding_dim;
} setup;

/* The metadata tapegrad fit writes, built with the library's JSON writer: a quote in a
 * file name or a long spec round-trips. Malloc'd, or NULL with the library's error. */
static char *fit_metadata(const setup *u)
{
    char shape[TG_MAX_RANK * 24], n_classes[24], n_seed[24], lr[32], batch[24], split[32];
    format_shape(&u->input_shape, shape, sizeof shape);
    snprintf(n_classes, sizeof n_classes, "%lld", (long long)u->classes);
    snprintf(n_seed, sizeof n_seed, "%llu", (unsigned long long)u->seed);
    snprintf(lr, sizeof lr, "%.17g", u->lr);
    snprintf(batch, sizeof batch, "%ld", u->batch_size);
    snprintf(split, sizeof split, "%.17g", u->validation_split);
    char skip[24], header[2] = {u->layout.no_header ? '0' : '1', 0};
    snprintf(skip, sizeof skip, "%d", u->layout.skip_rows);
    const char *keys[N_KEYS] = {"model",     "input_shape", "classes",       "seed",       "data",
                                "loss",      "optimizer",   "learning_rate", "batch_size", "validation_split",
                                "delimiter", "skip_rows",   "header"};
    const char *values[N_KEYS] = {u->spec_text,
                                  shape,
                                  n_classes,
                                  n_seed,
                                  u->data,
                                  tg_loss_name(u->loss),
                                  u->optimizer,
                                  lr,
                                  batch,
                                  split,
                                  csv_delimiter_name(u->layout.delimiter),
                                  skip,
                                  header};
    int n = 13;
    if (u->norm)
        keys[n] = "normalization", values[n++] = u->norm;
    if (strcmp(u->precision, "float32") != 0) /* files of float32 models stay as they were */
        keys[n] = "precision", values[n++] = u->precision;
    if (u->data_path)
        keys[n] = "data_path", values[n++] = u->data_path;
    if (u->label)
        keys[n] = "label", values[n++] = u->label;
    if (u->history)
        keys[n] = "history", values[n++] = u->history;
    if (u->plot)
        keys[n] = "plot", values[n++] = u->plot;
    char embedding[24];
    snprintf(embedding, sizeof embedding, "%lld", (long long)u->embedding_dim);
    if (u->vocab) {
        keys[n] = "vocabulary", values[n++] = u->vocab;
        keys[n] = "embedding_dim", values[n++] = embedding;
    }
    return tg_metadata_json(keys, values, n);
}

/* ---- data to tensors ---------------------------------------------------------------------- */
/* The data set's rows shaped for the model, and its labels: views of the data set's own
 * memory (no copy), valid while it lives unchanged. */
static bool tensors_for(tg_dataset *ds, const model_spec *spec, tg_tensor **x, tg_tensor **y, tg_shape *in)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *probe = tg_dataset_x_view(ds);
    tg_shape row = probe ? tg_shape_of(probe) : (tg_shape){0};
    tg_scope_end(s);
    if (row.rank < 1)
        return false;
    row.rank--;
    memmove(row.dims, row.dims + 1, sizeof(int64_t) * (size_t)row.rank);
    *in = spec_input_shape(spec, row);
    if (tg_dataset_reshape(ds, *in) != 0)
        return false;
    *x = tg_dataset_x_view(ds);
    *y = tg_dataset_y_view(ds);
    return *x && *y;
}

#define MAX_INFERRED_CLASSES 65536

/* The one rule for labels and loss. With *loss set (--loss, or a resumed file's) the
 * labels must suit it; without (TG_LOSS_NONE) whole numbers 0..K-1 (the smallest 0 or 1)
 * are K classes when K is at most the rows and 65536, other numbers a regression (MSE);
 * anything else is refused, naming the label range and the options that say what was
 * meant. `classes` (--classes, or a resumed file's) fixes K. Returns the model's outputs
 * (K, or 1), or -1 after a message. */
static int64_t infer_outputs(const tg_tensor *y, const char *source, tg_loss_kind *loss, int64_t classes)
{
    int64_t n = tg_size(y);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!v || tg_copy_out_f64(y, v, n) != 0) {
        if (v)
            cli_library_error();
        else
            fprintf(stderr, "tapegrad: out of memory for %lld labels\n", (long long)n);
        free(v);
        return -1;
    }
    if (n == 0) {
        fprintf(stderr, "tapegrad: %s has no rows of data\n", source);
        free(v);
        return -1;
    }
    int64_t lo = 0, hi = 0, fraction = -1; /* rows of the smallest and largest labels, of a non-whole one */
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            fprintf(stderr,
                    "tapegrad: %s: the label of row %lld is %g: labels must be class numbers 0, 1, 2, ... "
                    "or finite values for a regression\n",
                    source, (long long)i + 1, v[i]);
            free(v);
            return -1;
        }
        lo = v[i] < v[lo] ? i : lo;
        hi = v[i] > v[hi] ? i : hi;
        if (fraction < 0 && v[i] != floor(v[i]))
            fraction = i;
    }
    double min = v[lo], max = v[hi];
    int64_t out = -1;
    if (*loss == TG_LOSS_NONE && fraction >= 0 && classes == 0)
        *loss = TG_LOSS_MSE;
    if (loss_is_regression(*loss)) {
        out = 1;
    } else if (*loss == TG_LOSS_BINARY_CROSSENTROPY) {
        if (min >= 0 && max <= 1)
            out = 1;
        else
            fprintf(stderr,
                    "tapegrad: %s: the labels run from %g to %g (row %lld): binary_crossentropy takes labels "
                    "from 0 to 1\n",
                    source, min, max, (long long)(min < 0 ? lo : hi) + 1);
    } else if (fraction >= 0) {
        fprintf(stderr,
                "tapegrad: %s: the label of row %lld is %g: %s takes class numbers 0, 1, 2, ...; give "
                "--loss mse for a regression\n",
                source, (long long)fraction + 1, v[fraction],
                classes ? "--classes" : "sparse_categorical_crossentropy");
    } else if (min < 0) {
        fprintf(stderr,
                "tapegrad: %s: the labels run from %g to %g: the label of row %lld is %g, and class numbers "
                "start at 0. Give --loss mse for a regression\n",
                source, min, max, (long long)lo + 1, min);
    } else if (!classes && min > 1) { /* diabetes' targets 25..346 were "347 classes" */
        fprintf(stderr,
                "tapegrad: %s: the labels are whole numbers from %g to %g (the label of row %lld is %g): "
                "class numbers start at 0 (or 1), so these look like values. Give --loss mse for a regression, or "
                "--classes K when the labels are K classes\n",
                source, min, max, (long long)lo + 1, min);
    } else if (classes) {
        if (max < (double)classes)
            out = classes;
        else
            fprintf(stderr, "tapegrad: %s: the labels run from %g to %g (row %lld): --classes %lld takes 0 to %lld\n",
                    source, min, max, (long long)hi + 1, (long long)classes, (long long)classes - 1);
    } else if (max == 0) {
        fprintf(stderr,
                "tapegrad: %s: every label is 0: a classifier needs at least two classes (give --loss mse "
                "for a regression)\n",
                source);
    } else if (max + 1 > (double)n || max + 1 > MAX_INFERRED_CLASSES) {
        fprintf(stderr,
                "tapegrad: %s: the labels are whole numbers from %g to %g (the label of row %lld is %g): as "
                "classes 0..K-1 that is %.0f classes for %lld rows (at most %s). Give --loss mse for a regression, "
                "or --classes K when the labels are K classes\n",
                source, min, max, (long long)hi + 1, max, max + 1, (long long)n,
                max + 1 > MAX_INFERRED_CLASSES ? "65536" : "one per row");
    } else {
        out = (int64_t)max + 1;
    }
    if (out > 0 && *loss == TG_LOSS_NONE)
        *loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY;
    free(v);
    return out;
}

/* Labels as the loss takes them: class numbers for sparse cross-entropy, otherwise float
 * values of shape [rows, 1], like the model's one output. */
static tg_tensor *labels_for(tg_tensor *y, tg_loss_kind loss)
{
    if (loss == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY || !y)
        return y;
    tg_shape column = {.rank = 2, .dims = {tg_dim(y, 0), 1}};
    return tg_reshape(tg_cast(y, TG_F32), column);
}

/* ---- where the data is ------------------------------------------------------------------------ */
/* The files a data source names (csv:FILE, npy:A,B, idx:A,B), or 0 (fashion-mnist). */
static int source_files(const char *spec, char *a, char *b, size_t size)
{
    const char *comma;
    if (strncmp(spec, "csv:", 4) == 0)
        return snprintf(a, size, "%s", spec + 4) < (int)size ? 1 : 0;
    if (strncmp(spec, "text:", 5) == 0)
        return snprintf(a, size, "%s", spec + 5) < (int)size ? 1 : 0;
    if ((strncmp(spec, "npy:", 4) == 0 || strncmp(spec, "idx:", 4) == 0) && (comma = strchr(spec + 4, ',')) &&
        (size_t)(comma - spec - 4) < size && strlen(comma + 1) < size) {
        snprintf(a, size, "%.*s", (int)(comma - spec - 4), spec + 4);
        snprintf(b, size, "%s", comma + 1);
        return 2;
    }
    return 0;
}

/* The source with each file path made absolute (realpath), into buf; false when a file
 * cannot be resolved (the data loader then says why). */
static bool source_absolute(const char *spec, char *buf, size_t size)
{
    char a[PATH_MAX], b[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
    int n = source_files(spec, a, b, sizeof a);
    if (n == 0 || !realpath(a, ra) || (n == 2 && !realpath(b, rb)))
        return false;
    int w = n == 1 ? snprintf(buf, size, "%.*s%s", (int)(strchr(spec, ':') - spec + 1), spec, ra)
                   : snprintf(buf, size, "%.4s%s,%s", spec, ra, rb);
    return w > 0 && (size_t)w < size;
}

static bool source_exists(const char *spec)
{
    char a[PATH_MAX], b[PATH_MAX];
    int n = source_files(spec, a, b, sizeof a);
    return n > 0 && access(a, R_OK) == 0 && (n == 1 || access(b, R_OK) == 0);
}

/* The data a model file was trained on: its stored absolute path when that is there,
 * else the path as given, from the model file's folder, else as given. Into buf. */
static const char *locate_data(const saved_model *sm, char *buf, size_t size)
{
    if (sm->data_path && source_exists(sm->data_path))
        return sm->data_path;
    char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];
    int n = source_files(sm->data, a, b, sizeof a);
    const char *slash = strrchr(sm->path, '/');
    if (n == 0 || !slash || source_exists(sm->data))
        return sm->data;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - sm->path), sm->path);
    int w = n == 1 ? snprintf(buf, size, "%.*s%s%s%s", (int)(strchr(sm->data, ':') - sm->data + 1), sm->data,
                              a[0] == '/' ? "" : dir, a[0] == '/' ? "" : "/", a)
                   : snprintf(buf, size, "%.4s%s%s%s,%s%s%s", sm->data, a[0] == '/' ? "" : dir, a[0] == '/' ? "" : "/",
                              a, b[0] == '/' ? "" : dir, b[0] == '/' ? "" : "/", b);
    return w > 0 && (size_t)w < size && source_exists(buf) ? buf : sm->data;
}

/* ---- fit ------------------------------------------------------------------------------------ */
typedef struct fit_args {
    const char *data, *label, *model, *optimizer, *loss, *save, *resume, *history, *plot, *precision;
    long epochs, batch_size, seed, threads, classes, skip_rows, seq_len;
    double lr, validation_split;
    char delimiter;
    bool quiet, profile, normalize, no_header;
    bool given[128]; /* by option letter: what the command line set (a resume keeps the rest) */
} fit_args;

/* Whether getopt's value for a file or name option is usable: an empty one (--save "")
 * would otherwise mean "nothing", silently. */
static bool non_empty(const char *value) { return value && *value; }

static int parse_fit(int argc, char **argv, fit_args *a)
{
    *a = (fit_args){.data = "fashion-mnist",
                    .model = "mlp:500",
                    .optimizer = "adam",
                    .history = "history.csv",
                    .plot = "history.svg",
                    .precision = "float32",
                    .epochs = 5,
                    .batch_size = 32,
                    .delimiter = ',',
                    .seq_len = TEXT_SEQ_LEN,
                    .seed = 42};
    static const struct option opts[] = {
        {"data", 1, 0, 'd'},          {"label", 1, 0, 'l'},
        {"model", 1, 0, 'm'},         {"epochs", 1, 0, 'e'},
        {"batch-size", 1, 0, 'b'},    {"optimizer", 1, 0, 'o'},
        {"learning-rate", 1, 0, 'r'}, {"validation-split", 1, 0, 'v'},
        {"seed", 1, 0, 's'},          {"threads", 1, 0, 't'},
        {"save", 1, 0, 'S'},          {"resume", 1, 0, 'R'},
        {"history", 1, 0, 'H'},       {"plot", 1, 0, 'P'},
        {"quiet", 0, 0, 'q'},         {"profile", 0, 0, 'p'},
        {"help", 0, 0, 'h'},          {"loss", 1, 0, 'L'},
        {"classes", 1, 0, 'k'},       {"delimiter", 1, 0, 'D'},
        {"skip-rows", 1, 0, 'K'},     {"normalize", 0, 0, 'N'},
        {"no-header", 0, 0, 'E'},     {"precision", 1, 0, 'M'},
        {"seq-len", 1, 0, 'Q'},       {0, 0, 0, 0},
    };
    optind = 1;
    opterr = 0;
    int c, at = -1;
    while ((c = getopt_long(argc, argv, ":", opts, &at)) != -1) {
        bool ok = true;
        switch (c) {
        case 'd': ok = non_empty(a->data = optarg); break;
        case 'l': a->label = optarg; break; /* checked with the data (data.c) */
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
        case 'L': ok = non_empty(a->loss = optarg); break;
        case 'k': ok = parse_long(optarg, 2, MAX_CLASSES, &a->classes); break;
        case 'D': ok = (a->delimiter = csv_delimiter_parse(optarg)) != 0; break;
        case 'K': ok = parse_long(optarg, 0, 1000000, &a->skip_rows); break;
        case 'N': a->normalize = true; break;
        case 'E': a->no_header = true; break;
        case 'M':
            if (non_empty(a->precision = optarg) && !precision_known(optarg))
                return usage_error(usage_fit, "unknown --precision '%s': use float32 or mixed_bfloat16", optarg);
            ok = non_empty(optarg);
            break;
        case 'Q': ok = parse_long(optarg, 1, 100000, &a->seq_len); break;
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
        a->given[c & 127] = true;
    }
    if (optind < argc)
        return usage_error(usage_fit, "unexpected argument '%s'", argv[optind]);
    if (a->loss) {
        tg_loss_kind k = tg_loss_kind_from_name(a->loss);
        if (k == TG_LOSS_CATEGORICAL_CROSSENTROPY)
            return usage_error(usage_fit,
                               "--loss %s takes one-hot labels; the command's labels are class numbers: "
                               "use sparse_categorical_crossentropy",
                               a->loss);
        if (!loss_supported(k))
            return usage_error(usage_fit,
                               "unknown --loss '%s': use mse, mae, huber, sparse_categorical_crossentropy "
                               "or binary_crossentropy",
                               a->loss);
        if (a->classes && k != TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
            return usage_error(usage_fit, "--classes goes with class numbers: --loss %s has one output", a->loss);
    }
    if (!a->save) /* a resumed fit goes on writing the file it came from */
        a->save = a->resume ? a->resume : "model.safetensors";
    return EXIT_OK;
}

/* MAE, RMSE and R2 of the model's predictions for (x, y): what a regression reports. */
static int regression_scores(tg_model *m, tg_tensor *x, tg_tensor *y, long batch, double *mae, double *rmse, double *r2)
{
    tg_tensor *p = tg_predict(m, x, .batch_size = batch);
    int64_t n = tg_size(y);
    double *t = malloc(sizeof(double) * (size_t)(2 * n + 1));
    if (!p || !t || tg_size(p) != n || tg_copy_out_f64(y, t, n) != 0 || tg_copy_out_f64(p, t + n, n) != 0) {
        free(t);
        return cli_library_error();
    }
    double mean = 0, abs_sum = 0, ss_res = 0, ss_tot = 0;
    for (int64_t i = 0; i < n; i++)
        mean += t[i] / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double e = t[n + i] - t[i];
        abs_sum += fabs(e);
        ss_res += e * e;
        ss_tot += (t[i] - mean) * (t[i] - mean);
    }
    *mae = abs_sum / (double)n;
    *rmse = sqrt(ss_res / (double)n);
    *r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : NAN;
    free(t);
    return EXIT_OK;
}

/* One line of results of the model on (x, y): `prefix` then the loss and accuracy, or for
 * a regression the loss, MAE, RMSE and R2. */
static int report(tg_model *m, tg_tensor *x, tg_tensor *y, tg_loss_kind loss, long batch, const char *prefix,
                  bool print)
{
    tg_logs logs = {0};
    double mae = NAN, rmse = NAN, r2 = NAN;
    y = labels_for(y, loss);
    if (!y || tg_evaluate(m, x, y, &logs, .batch_size = batch) != 0)
        return cli_library_error();
    if (!print)
        return loss_is_regression(loss) ? regression_scores(m, x, y, batch, &mae, &rmse, &r2) : EXIT_OK;
    if (!loss_is_regression(loss)) {
        printf("%sloss: %.4f - %saccuracy: %.4f\n", prefix, tg_logs_get(&logs, "loss"),
               strcmp(prefix, "test ") == 0 ? "test " : "", tg_logs_get(&logs, "accuracy"));
        return EXIT_OK;
    }
    int rc = regression_scores(m, x, y, batch, &mae, &rmse, &r2);
    if (rc == EXIT_OK)
        printf("%sloss: %.6g - mae: %.6g - rmse: %.6g - r2: %.4f\n", prefix, tg_logs_get(&logs, "loss"), mae, rmse, r2);
    return rc;
}

/* The test split's results, its inputs standardised by `norm` (NULL: as they are). */
static int report_test(tg_model *m, tg_dataset *test, const model_spec *spec, tg_loss_kind loss, const double *norm,
                       bool print)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    tg_shape in;
    bool ok = tensors_for(test, spec, &x, &y, &in) && (!norm || (x = norm_apply(x, norm, row_size(tg_shape_of(x)))));
    int rc = ok ? report(m, x, y, loss, 500, "test ", print) : cli_library_error();
    tg_scope_end(s);
    return rc;
}

/* A regression's epoch logs gain Keras's root_mean_squared_error and r2_score (and their
 * val_ forms), from the epoch's mean squared error and the variance of the labels of the
 * training and validation rows (user: two doubles). */
static int add_regression_logs(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)m;
    (void)epoch;
    const double *var = cb->user;
    for (int val = 0; val < 2; val++) {
        double mse = tg_logs_get(logs, val ? "val_mean_squared_error" : "mean_squared_error");
        if (isnan(mse))
            continue;
        tg_logs_set(logs, val ? "val_root_mean_squared_error" : "root_mean_squared_error", sqrt(mse));
        if (var[val] > 0)
            tg_logs_set(logs, val ? "val_r2_score" : "r2_score", 1 - mse / var[val]);
    }
    return 0;
}

/* The variance of labels [from, to) of y, or NAN. */
static double label_variance(const tg_tensor *y, int64_t from, int64_t to)
{
    int64_t n = tg_size(y);
    double *v = malloc(sizeof(double) * (size_t)(n + 1)), mean = 0, ss = 0;
    if (!v || to <= from || tg_copy_out_f64(y, v, n) != 0) {
        free(v);
        return NAN;
    }
    for (int64_t i = from; i < to; i++)
        mean += v[i] / (double)(to - from);
    for (int64_t i = from; i < to; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    free(v);
    return ss / (double)(to - from);
}

static int fit(const fit_args *ap, const saved_model *prior_in);

/* Under mpirun: which rank runs where, and each rank's part of the global batch. */
static void print_ranks(long batch)
{
    int n = tg_distributed_size(), shown = n < 8 ? n : 8;
    printf("tapegrad: data-parallel over %d ranks (MPI), global batch %ld (%ld to %ld rows per rank):", n, batch,
           batch / n, (batch + n - 1) / n);
    for (int r = 0; r < shown; r++)
        printf("%s rank %d on %s", r ? "," : "", r, tg_distributed_host(r));
    if (shown < n)
        printf(", ... rank %d on %s", n - 1, tg_distributed_host(n - 1));
    printf("\n");
}

/* Ranks sharing a machine share its cores: without --threads, each takes its part. */
static void share_cores(const fit_args *a)
{
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long ranks = local ? strtol(local, NULL, 10) : 1, cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (!a->threads && ranks > 1 && cores > 0)
        tg_set_num_threads(cores / ranks > 1 ? (int)(cores / ranks) : 1);
}

static int cmd_fit(int argc, char **argv)
{
    fit_args a;
    int rc = parse_fit(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    /* Started by mpirun, every rank trains one model with no other flag; otherwise this is
     * rank 0 of 1 and MPI is never loaded. */
    if (tg_distributed_init() != 0)
        return cli_library_error();
    if (tg_distributed_size() > 1)
        share_cores(&a);
    saved_model prior = {0};
    if (!a.resume || (rc = read_saved(a.resume, &prior)) == EXIT_OK)
        rc = fit(&a, &prior);
    saved_close(&prior);
    if (rc != EXIT_OK && tg_distributed_size() > 1) {
        /* The other ranks may wait for this one in a collective: end the job (MPI_Abort),
         * naming this rank and the cause. */
        char why[1400];
        snprintf(why, sizeof why, "failed with exit code %d (%s); ending every rank", rc,
                 tg_last_error() ? tg_last_error() : "the error above");
        tg_distributed_abort(rc, why);
    }
    return rc;
}

/* On --resume: what the model file stored, unless the command line gave the option, which
 * then wins, with a note when it differs. */
static void note_override(const char *option, const char *given, const char *stored)
{
    if (stored && strcmp(given, stored) != 0)
        fprintf(stderr, "tapegrad: note: --%s %s overrides the model file's %s\n", option, given, stored);
}

/* A resumed fit's set-up: the model file's, with what the command line gave on top. */
static int resume_setup(fit_args *a, const saved_model *prior, const char **load, char *data_buf, size_t data_size)
{
    char given[40], stored[40];
    if (a->given['m'] && strcmp(a->model, prior->spec_text) != 0)
        fprintf(stderr, "tapegrad: note: --model %s is ignored: the resumed model is the file's %s\n", a->model,
                prior->spec_text);
    if (a->given['d']) {
        note_override("data", a->data, prior->data);
    } else { /* stored as given; read from where it is found */
        a->data = prior->data;
        *load = locate_data(prior, data_buf, data_size);
    }
    if (a->given['l'])
        note_override("label", a->label, prior->label);
    else
        a->label = prior->label;
    if (a->given['L'])
        note_override("loss", tg_loss_name(tg_loss_kind_from_name(a->loss)), tg_loss_name(prior->loss));
    else
        a->loss = tg_loss_name(prior->loss);
    if (a->given['o'])
        note_override("optimizer", a->optimizer, prior->optimizer ? prior->optimizer : "adam");
    else
        a->optimizer = prior->optimizer ? prior->optimizer : "adam";
    if (a->given['r'] && prior->lr > 0) {
        snprintf(given, sizeof given, "%g", a->lr);
        snprintf(stored, sizeof stored, "%g", prior->lr);
        note_override("learning-rate", given, stored);
    } else if (!a->given['r']) {
        a->lr = prior->lr;
    }
    if (a->given['b'] && prior->batch_size) {
        snprintf(given, sizeof given, "%ld", a->batch_size);
        snprintf(stored, sizeof stored, "%ld", prior->batch_size);
        note_override("batch-size", given, stored);
    } else if (!a->given['b'] && prior->batch_size) {
        a->batch_size = prior->batch_size;
    }
    if (a->given['v'] && prior->validation_split >= 0) {
        snprintf(given, sizeof given, "%g", a->validation_split);
        snprintf(stored, sizeof stored, "%g", prior->validation_split);
        note_override("validation-split", given, stored);
    } else if (!a->given['v'] && prior->validation_split >= 0) {
        a->validation_split = prior->validation_split;
    }
    if (a->given['s']) {
        snprintf(given, sizeof given, "%ld", a->seed);
        snprintf(stored, sizeof stored, "%llu", (unsigned long long)prior->seed);
        note_override("seed", given, stored);
    } else {
        a->seed = (long)prior->seed;
    }
    if (a->given['D'])
        note_override("delimiter", csv_delimiter_name(a->delimiter), csv_delimiter_name(prior->layout.delimiter));
    else
        a->delimiter = prior->layout.delimiter;
    if (a->given['K']) {
        snprintf(given, sizeof given, "%ld", a->skip_rows);
        snprintf(stored, sizeof stored, "%d", prior->layout.skip_rows);
        note_override("skip-rows", given, stored);
    } else {
        a->skip_rows = prior->layout.skip_rows;
    }
    if (a->given['E'] && !prior->layout.no_header)
        fprintf(stderr, "tapegrad: note: --no-header overrides the model file's header line\n");
    else if (!a->given['E'])
        a->no_header = prior->layout.no_header;
    if (a->given['N'] && !prior->norm)
        fprintf(stderr, "tapegrad: note: --normalize is ignored: %s was trained without it\n", prior->path);
    a->normalize = prior->norm != NULL; /* the model's inputs stay as it learned them */
    if (a->given['M'])
        note_override("precision", a->precision, prior->precision);
    else
        a->precision = prior->precision;
    if (!a->given['H'] && prior->history) /* the files that go on */
        a->history = prior->history;
    if (!a->given['P'] && prior->plot)
        a->plot = prior->plot;
    if (a->epochs <= prior->epoch) {
        fprintf(stderr, "tapegrad: %s has trained %d epochs; --epochs is the epoch to stop at: give more than %d\n",
                prior->path, prior->epoch, prior->epoch);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* --data text:FILE: a character model. Refuses the options that do not apply, and sets
 * the model's vocabulary size (once read), embedding and held-out part. */
static int text_options(fit_args *a, model_spec *spec, const saved_model *prior)
{
    const char *why = NULL;
    if (a->resume && !prior->spec.vocab)
        return fprintf(stderr, "tapegrad: %s is not a character model: resume it on the data it was trained on\n",
                       prior->path),
               EXIT_USAGE;
    if (spec->kind != SPEC_LSTM && spec->kind != SPEC_GRU)
        why = "--model: a character model is recurrent: give lstm:UNITS or gru:UNITS (lstm:256 is the classic)";
    else if (a->loss && tg_loss_kind_from_name(a->loss) != TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        why = "--loss: a character model predicts the next character with sparse_categorical_crossentropy";
    else if (a->given['l'])
        why = "--label: text has no label column; each character's target is the next character";
    else if (a->normalize)
        why = "--normalize: a character model's inputs are character indices, not features";
    else if (a->given['k'])
        why = "--classes: a character model's classes are the characters of its text";
    if (why)
        return usage_error(usage_fit, "%s", why);
    if (a->resume) {
        if (a->given['Q'] && a->seq_len != prior->input_shape.dims[0])
            fprintf(stderr, "tapegrad: note: --seq-len %ld is ignored: the resumed model's is %lld\n", a->seq_len,
                    (long long)prior->input_shape.dims[0]);
        a->seq_len = (long)prior->input_shape.dims[0];
        spec->embedding_dim = prior->spec.embedding_dim;
    } else {
        spec->embedding_dim = TEXT_EMBEDDING_DIM;
        if (!a->given['v'])
            a->validation_split = TEXT_VALIDATION_PART;
    }
    a->loss = tg_loss_name(TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY);
    return EXIT_OK;
}

/* A character model's epoch logs gain bits per character: the mean cross-entropy (nats
 * per character) over ln 2, for the training and the held-out text. */
static int add_bits_per_character(tg_callback *cb, tg_model *m, int epoch, tg_logs *logs)
{
    (void)cb;
    (void)m;
    (void)epoch;
    for (int val = 0; val < 2; val++) {
        double loss = tg_logs_get(logs, val ? "val_loss" : "loss");
        if (!isnan(loss))
            tg_logs_set(logs, val ? "val_bits_per_character" : "bits_per_character", loss / log(2.0));
    }
    return 0;
}

/* The last value of a history column, or NAN. */
static double history_last(const cli_history *h, const char *key)
{
    for (int k = 0; k < h->n_keys; k++)
        if (strcmp(h->keys[k], key) == 0 && h->n_epochs > 0)
            return h->v[(size_t)(h->n_epochs - 1) * (size_t)h->n_keys + (size_t)k];
    return NAN;
}

/* The fit itself, from scratch or (a->resume) from `prior`. */
static int fit(const fit_args *ap, const saved_model *prior_in)
{
    fit_args a = *ap;
    const saved_model prior = *prior_in;
    int rc = EXIT_OK;
    char data_buf[2 * PATH_MAX + 8], abs_buf[2 * PATH_MAX + 8];
    const char *load = a.data; /* where the data is read from */
    if (a.resume && (rc = resume_setup(&a, &prior, &load, data_buf, sizeof data_buf)) != EXIT_OK)
        return rc;
    load = a.given['d'] || !a.resume ? a.data : load;
    const char *spec_text = a.resume ? prior.spec_text : a.model;
    model_spec spec;
    char err[256];
    if (!spec_parse(spec_text, &spec, err, sizeof err))
        return usage_error(usage_fit, "%s", err);
    bool text = strncmp(a.data, "text:", 5) == 0;
    if ((text || (a.resume && prior.spec.vocab)) && (rc = text_options(&a, &spec, &prior)) != EXIT_OK)
        return rc;
    tg_loss_kind loss = a.loss ? tg_loss_kind_from_name(a.loss) : TG_LOSS_NONE;
    tg_optimizer *opt = make_optimizer(a.optimizer, a.lr);
    if (!opt)
        return tg_has_error() ? cli_library_error() : usage_error(usage_fit, "unknown optimizer '%s'", a.optimizer);
    if (a.threads)
        tg_set_num_threads((int)a.threads);
    data_source d;
    csv_layout layout = {.delimiter = a.delimiter, .skip_rows = (int)a.skip_rows, .no_header = a.no_header};
    if (a.resume && prior.spec.vocab && !text) {
        fprintf(stderr, "tapegrad: %s is a character model: resume it on text (--data text:FILE)\n", prior.path);
        rc = EXIT_USAGE;
    } else {
        rc = text ? text_load(load + 5, a.seq_len, a.validation_split, prior.vocab, prior.spec.vocab, &d)
                  : data_load(load, a.label, &layout, &d);
    }
    if (rc != EXIT_OK) {
        tg_optimizer_free(opt);
        return rc;
    }
    spec.vocab = d.n_vocab;
    char *vocab_text = text ? text_vocab_format(d.vocab, d.n_vocab) : NULL;
    double *adapted = NULL;
    char *norm = NULL;
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    tg_shape in;
    tg_model *m = NULL;
    tg_history *h = NULL;
    tg_callback *ckpt = NULL;
    cli_history hist = {0};
    int64_t classes = 0;
    if (!tensors_for(d.train, &spec, &x, &y, &in)) {
        rc = cli_library_error();
        goto done;
    }
    int64_t fixed = a.given['k'] ? a.classes : a.resume && !loss_is_regression(loss) ? prior.classes : 0;
    if (text) {
        classes = d.n_vocab; /* the next character, from logits */
    } else if ((classes = infer_outputs(y, a.data, &loss, fixed)) < 1) {
        rc = EXIT_DATA;
        goto done;
    }
    if (a.resume && classes != prior.classes) {
        fprintf(stderr, "tapegrad: %s has %lld outputs; the labels of %s with %s need %lld\n", prior.path,
                (long long)prior.classes, a.data, tg_loss_name(loss), (long long)classes);
        rc = EXIT_DATA;
        goto done;
    }
    if (!(y = labels_for(y, loss))) {
        rc = cli_library_error();
        goto done;
    }
    /* the rows tg_fit holds out: the last fraction, before shuffling */
    int64_t rows = tg_dim(y, 0), split = (int64_t)((double)rows * (1.0 - a.validation_split));
    if (a.normalize) { /* adapted on the training rows only; a resumed model keeps its own */
        int64_t n_norm = prior.n_norm;
        const double *stats = a.resume ? prior.norm : (adapted = norm_adapt(x, split, &n_norm));
        if (!stats || !(x = norm_apply(x, stats, n_norm)) || !(norm = norm_text(stats, n_norm))) {
            rc = tg_has_error() ? cli_library_error() : EXIT_DATA;
            goto done;
        }
    } else if (strncmp(load, "csv:", 4) == 0 && tg_distributed_rank() == 0) { /* even --quiet: it is a hint */
        warn_scales(x, split);
    }
    uint64_t seed = (uint64_t)a.seed;
    saved_model sm = prior;
    sm.loss = loss;
    sm.precision = a.precision;
    bool distributed = tg_distributed_size() > 1; /* started by mpirun: one model over the ranks */
    m = a.resume ? load_model(&sm, opt, distributed)
                 : spec_build_under(a.precision, &spec, in, classes, seed, loss == TG_LOSS_BINARY_CROSSENTROPY);
    opt = a.resume ? NULL : opt; /* the resumed model owns it */
    if (!m || (!a.resume && compile_for(m, opt, loss, distributed) != 0)) {
        tg_optimizer_free(opt); /* still ours: a failed compile does not take it */
        opt = NULL;
        rc = cli_library_error();
        goto done;
    }
    opt = NULL;
    setup u = {.spec_text = spec_text,
               .data = a.data,
               .label = a.label,
               .optimizer = a.optimizer,
               .history = a.history,
               .plot = a.plot,
               .input_shape = in,
               .classes = classes,
               .seed = seed,
               .loss = loss,
               .lr = tg_optimizer_current_lr(tg_model_optimizer(m)),
               .validation_split = a.validation_split,
               .batch_size = a.batch_size,
               .layout = layout,
               .norm = norm,
               .precision = a.precision,
               .vocab = vocab_text,
               .embedding_dim = spec.embedding_dim};
    u.data_path = source_absolute(load, abs_buf, sizeof abs_buf) ? abs_buf : NULL;
    char *meta = fit_metadata(&u);
    ckpt = meta ? tg_model_checkpoint(.filepath = a.save, .metadata_json = meta) : NULL;
    free(meta);
    if (!ckpt) { /* never train without saving what --save asks for */
        rc = cli_library_error();
        goto done;
    }
    bool regression = loss_is_regression(loss);
    bool writer = tg_distributed_rank() == 0; /* rank 0 prints and writes for the job */
    a.quiet = a.quiet || !writer;
    if (!a.quiet) {
        if (text)
            printf("tapegrad: %s on %s: %lld characters, %lld distinct; %lld sequences of %ld with the next "
                   "characters as targets (the last %lld held out), %s, batch %ld\n",
                   spec_text, load + 5, (long long)d.n_chars, (long long)d.n_vocab, (long long)tg_dim(x, 0), a.seq_len,
                   (long long)(rows - split), a.optimizer, a.batch_size);
        else if (regression)
            printf("tapegrad: %s on %s (%lld training samples, a regression: %s), %s, batch %ld\n", spec_text, d.name,
                   (long long)tg_dim(x, 0), tg_loss_name(loss), a.optimizer, a.batch_size);
        else
            printf("tapegrad: %s on %s (%lld training samples, %lld classes), %s, batch %ld\n", spec_text, d.name,
                   (long long)tg_dim(x, 0), (long long)(classes > 1 ? classes : 2), a.optimizer, a.batch_size);
    }
    if (!a.quiet && distributed)
        print_ranks(a.batch_size);
    double variance[2] = {label_variance(y, 0, split), label_variance(y, split, rows)};
    tg_callback scores = {.on_epoch_end = add_regression_logs, .user = variance},
                bits = {.on_epoch_end = add_bits_per_character};
    tg_callback *callbacks[2] = {regression ? &scores : &bits, ckpt};
    bool extra_logs = regression || text;
    /* where the resumed fit left off: the next epoch and step, and the shuffle stream */
    tg_model_fit_position pos = {.epoch = a.resume ? prior.epoch : 0};
    if (a.resume && tg_model_get_fit_position(m, &pos) != 1)
        pos = (tg_model_fit_position){.epoch = prior.epoch, .seed = seed};
    if (a.resume && pos.seed != seed && !a.given['s'])
        seed = pos.seed;
    if (a.profile)
        tg_profile_start();
    h = tg_fit(m, x, y, .epochs = (int)a.epochs, .batch_size = a.batch_size, .validation_split = a.validation_split,
               .seed = seed, .initial_epoch = pos.epoch, .initial_step = pos.step, .callbacks = callbacks + !extra_logs,
               .n_callbacks = extra_logs ? 2 : 1, .verbose = a.quiet ? TG_VERBOSE_SILENT : TG_VERBOSE_AUTO);
    if (a.profile) {
        tg_profile_stop();
        tg_profile_print(stderr);
    }
    if (!h) {
        rc = cli_library_error();
        goto done;
    }
    if (writer) { /* the other ranks hold the same model and history */
        if ((rc = history_from_fit(h, pos.epoch, &hist)) != EXIT_OK)
            goto done;
        if (a.resume && a.history)
            history_prepend_csv(&hist, a.history);
        if ((a.history && (rc = history_write_csv(&hist, a.history)) != EXIT_OK) ||
            (a.plot &&
             (rc = history_write_svg(&hist, a.plot, spec_text, regression ? "mean_absolute_error" : "accuracy",
                                     regression ? "Mean absolute error" : "Accuracy")) != EXIT_OK))
            goto done;
        if (!a.quiet)
            printf("saved %s, %s and %s\n", a.save, a.history, a.plot);
        if (!a.quiet && text && !isnan(history_last(&hist, "val_loss")))
            printf("held-out text: loss %.4f nats, %.4f bits per character\n", history_last(&hist, "val_loss"),
                   history_last(&hist, "val_bits_per_character"));
    }
    /* every rank evaluates its shard of the test split (a collective); rank 0 prints */
    if (d.test)
        rc = report_test(m, d.test, &spec, loss, a.normalize ? (adapted ? adapted : prior.norm) : NULL, writer);
done:
    free(adapted);
    free(norm);
    free(vocab_text);
    history_free(&hist);
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
    static const struct option opts[] = {
        {"data", 1, 0, 'd'}, {"label", 1, 0, 'l'}, {"batch-size", 1, 0, 'b'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
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

/* A character model on text: its held-out windows (the stored text, the part fit held
 * out), or every window of another text. */
static int evaluate_text(const saved_model *sm, const char *data, long batch)
{
    char where[2 * PATH_MAX + 8];
    const char *source = data ? data : locate_data(sm, where, sizeof where);
    if (strncmp(source, "text:", 5) != 0)
        return usage_error(usage_evaluate, "%s is a character model: give --data text:FILE", sm->path);
    data_source d;
    double held_out = !data && sm->validation_split > 0 ? sm->validation_split : 0;
    int rc = text_load(source + 5, sm->input_shape.dims[0], held_out, sm->vocab, sm->spec.vocab, &d);
    if (rc != EXIT_OK)
        return rc;
    tg_model *m = load_model(sm, tg_adam(), false);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_dataset_x_view(d.train), *y = tg_dataset_y_view(d.train);
    int64_t rows = x ? tg_dim(x, 0) : 0, from = held_out > 0 ? (int64_t)((double)rows * (1.0 - held_out)) : 0;
    tg_shape begin = {.rank = 2, .dims = {from, 0}}, size = {.rank = 2, .dims = {rows - from, -1}};
    x = x ? tg_slice(x, begin, size) : NULL;
    y = y ? tg_slice(y, begin, size) : NULL;
    tg_logs logs;
    if (!m || !x || !y || tg_evaluate(m, x, y, &logs, .batch_size = batch) != 0) {
        rc = cli_library_error();
    } else {
        printf("%lld sequences of %lld characters (%s) - loss: %.4f - accuracy: %.4f - bits per character: %.4f\n",
               (long long)(rows - from), (long long)sm->input_shape.dims[0],
               held_out > 0 ? "the held-out part" : "the whole text", tg_logs_get(&logs, "loss"),
               tg_logs_get(&logs, "accuracy"), tg_logs_get(&logs, "loss") / log(2.0));
    }
    tg_scope_end(s);
    tg_model_free(m);
    data_free(&d);
    return rc;
}

static int evaluate(const saved_model *saved, const char *data, const char *label, long batch)
{
    if (saved->spec.vocab)
        return evaluate_text(saved, data, batch);
    const saved_model sm = *saved;
    data_source d;
    char where[2 * PATH_MAX + 8];
    int rc = data_load(data ? data : locate_data(&sm, where, sizeof where), label ? label : sm.label, &sm.layout, &d);
    if (rc != EXIT_OK)
        return rc;
    tg_model *m = load_saved(&sm, tg_adam());
    tg_scope *s = tg_scope_begin();
    tg_tensor *x, *y;
    tg_shape in;
    tg_dataset *ds = d.test ? d.test : d.train;
    char prefix[48];
    if (!m || !tensors_for(ds, &sm.spec, &x, &y, &in) || (sm.norm && !(x = norm_apply(x, sm.norm, sm.n_norm)))) {
        rc = tg_has_error() ? cli_library_error() : EXIT_DATA;
    } else {
        snprintf(prefix, sizeof prefix, "%lld samples - ", (long long)tg_dim(x, 0));
        rc = report(m, x, y, sm.loss, batch, prefix, true);
    }
    tg_scope_end(s);
    tg_model_free(m);
    data_free(&d);
    return rc;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n > k && strcmp(s + n - k, tail) == 0;
}

/* A CSV file is read as the training file was laid out. */
static tg_tensor *read_input(const char *path, const csv_layout *layout)
{
    if (ends_with(path, ".npy"))
        return tg_read_npy(path, .dtype = TG_F32);
    if (ends_with(path, ".csv") || ends_with(path, ".csv.gz") || ends_with(path, ".txt") || ends_with(path, ".txt.gz"))
        return tg_read_csv(path, .delimiter = layout->delimiter, .skip_rows = layout->skip_rows,
                           .header = !layout->no_header)
            .x;
    return tg_read_idx(path, .scale = 1.0 / 255.0);
}

/* predict --output: every row's prediction as FILE.csv or FILE.npy (see usage_predict).
 * v: rows x k values (probabilities, or a regression's values). */
static int write_predictions(const char *path, const double *v, int64_t rows, int64_t k, tg_loss_kind loss)
{
    bool npy = ends_with(path, ".npy"), reg = loss_is_regression(loss), binary = loss == TG_LOSS_BINARY_CROSSENTROPY;
    int64_t probs = binary ? 1 : k; /* float32 values after the class */
    size_t row_bytes = reg ? 4 : 4 + 4 * (size_t)probs,
           cap = 256 + (size_t)rows * (npy ? row_bytes : 16 * (1 + (size_t)k) + 2);
    char *buf = malloc(cap + 64 * (size_t)k + 64);
    if (!buf) {
        fprintf(stderr, "tapegrad: out of memory for %lld predictions\n", (long long)rows);
        return EXIT_DATA;
    }
    size_t n = 0;
    if (npy) { /* NumPy format 1.0: magic, header length, a dict padded to 64 bytes, the rows */
        char head[256 + 32];
        int h;
        if (reg)
            h = snprintf(head, sizeof head, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld,), }",
                         (long long)rows);
        else if (binary)
            h = snprintf(head, sizeof head,
                         "{'descr': [('class', '<i4'), ('probability', '<f4')], 'fortran_order': False, "
                         "'shape': (%lld,), }",
                         (long long)rows);
        else
            h = snprintf(head, sizeof head,
                         "{'descr': [('class', '<i4'), ('probabilities', '<f4', (%lld,))], 'fortran_order': "
                         "False, 'shape': (%lld,), }",
                         (long long)k, (long long)rows);
        size_t total = (10 + (size_t)h + 1 + 63) / 64 * 64, pad = total - 10 - (size_t)h - 1;
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = (char)((total - 10) & 0xff);
        buf[9] = (char)((total - 10) >> 8);
        memcpy(buf + 10, head, (size_t)h);
        memset(buf + 10 + h, ' ', pad);
        buf[total - 1] = '\n';
        n = total;
    } else {
        n += (size_t)sprintf(buf, reg ? "value" : binary ? "class,probability" : "class");
        for (int64_t j = 0; !reg && !binary && j < k; j++)
            n += (size_t)sprintf(buf + n, ",p%lld", (long long)j);
        buf[n++] = '\n';
    }
    for (int64_t r = 0; r < rows; r++) {
        const double *p = v + r * k;
        int32_t cls = 0;
        for (int64_t j = 1; !reg && !binary && j < k; j++)
            cls = p[j] > p[cls] ? (int32_t)j : cls;
        if (binary)
            cls = p[0] > 0.5;
        if (npy) { /* little-endian, as the header says (the hosts tapegrad builds on) */
            float f;
            if (!reg) {
                memcpy(buf + n, &cls, 4);
                n += 4;
            }
            for (int64_t j = 0; j < (reg ? 1 : probs); j++) {
                f = (float)p[j];
                memcpy(buf + n, &f, 4);
                n += 4;
            }
        } else {
            if (reg)
                n += (size_t)sprintf(buf + n, "%.9g", p[0]);
            else
                n += (size_t)sprintf(buf + n, "%d", (int)cls);
            for (int64_t j = 0; !reg && j < probs; j++)
                n += (size_t)sprintf(buf + n, ",%.6g", p[j]);
            buf[n++] = '\n';
        }
    }
    int rc = tg_write_file(path, buf, n) == 0 ? EXIT_OK : cli_library_error();
    free(buf);
    return rc;
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
        fprintf(stderr,
                "tapegrad: the model expects examples of shape (%s), %lld values each; %s has %s of shape "
                "(%s)\n",
                a, (long long)need, path, s.rank > 1 ? "rows" : "one row", b);
    }
    return false;
}

static int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", 1, 0, 'n'}, {"output", 1, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long limit = 10;
    const char *output = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == 'h')
            return fputs(usage_predict, stdout), EXIT_OK;
        if (c == ':')
            return usage_error(usage_predict, "%s needs a value", argv[optind - 1]);
        if (c == 'o' && !(ends_with(optarg, ".npy") || ends_with(optarg, ".csv")))
            return usage_error(usage_predict, "--output '%s': give a file name ending in .npy or .csv", optarg);
        if (c == 'o') {
            output = optarg;
            continue;
        }
        if (c != 'n')
            return usage_error(usage_predict, "unknown option %s", argv[optind - 1]);
        if (!parse_long(optarg, 0, 1L << 40, &limit))
            return bad_value(usage_predict, "limit", optarg);
    }
    if (optind + 2 != argc)
        return usage_error(usage_predict, "give a MODEL file and an INPUT file%s", "");
    saved_model sm;
    int rc = read_saved(argv[optind], &sm);
    if (rc == EXIT_OK && sm.spec.vocab) {
        fprintf(stderr, "tapegrad: %s is a character model: sample text from it with tapegrad generate %s\n",
                argv[optind], argv[optind]);
        rc = EXIT_USAGE;
    }
    if (rc != EXIT_OK) {
        saved_close(&sm);
        return rc;
    }
    tg_model *m = load_saved(&sm, NULL);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = m ? read_input(argv[optind + 1], &sm.layout) : NULL;
    tg_shape want = sm.input_shape, shape = {.rank = want.rank + 1, .dims = {-1}};
    memcpy(shape.dims + 1, want.dims, sizeof(int64_t) * (size_t)want.rank);
    bool fits = x && rows_fit(x, want, argv[optind + 1]);
    tg_tensor *in = fits ? tg_reshape(x, shape) : NULL;
    if (in && sm.norm)
        in = norm_apply(in, sm.norm, sm.n_norm);
    tg_tensor *p = in ? tg_predict(m, in, .batch_size = 500) : NULL;
    if (p && sm.loss == TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY)
        p = tg_softmax(p, -1);
    if (x && !fits) {
        rc = EXIT_DATA;
    } else if (!p) {
        rc = cli_library_error();
    } else {
        int64_t rows = tg_dim(p, 0), k = tg_dim(p, 1);
        double *v = malloc(sizeof(double) * (size_t)(rows * k + 1));
        tg_copy_out_f64(p, v, rows * k);
        for (int64_t r = 0; r < rows && (limit == 0 || r < limit); r++) {
            if (loss_is_regression(sm.loss)) { /* one value per row */
                printf("%lld: %.6g\n", (long long)r, v[r]);
                continue;
            }
            if (sm.loss == TG_LOSS_BINARY_CROSSENTROPY) {
                printf("%lld: class %d (%.4f)  probability of class 1: %.4f\n", (long long)r, v[r] > 0.5,
                       v[r] > 0.5 ? v[r] : 1 - v[r], v[r]);
                continue;
            }
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
        if (output && (rc = write_predictions(output, v, rows, k, sm.loss)) == EXIT_OK)
            printf("wrote %lld predictions to %s\n", (long long)rows, output);
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
    tg_model *m = rc == EXIT_OK ? load_saved(&sm, NULL) : NULL;
    if (m) {
        printf("%s, trained %d epochs on %s\n", sm.spec_text, sm.epoch, sm.data);
        printf("loss %s", tg_loss_name(sm.loss));
        if (sm.label)
            printf(", label %s", sm.label);
        if (sm.optimizer)
            printf(", optimizer %s (learning rate %g)", sm.optimizer, sm.lr);
        if (sm.batch_size)
            printf(", batch %ld", sm.batch_size);
        if (sm.validation_split >= 0)
            printf(", validation split %g", sm.validation_split);
        printf(", seed %llu\n", (unsigned long long)sm.seed);
        if (strncmp(sm.data, "csv:", 4) == 0)
            printf("CSV: delimiter %s, %d lines skipped, %s\n", csv_delimiter_name(sm.layout.delimiter),
                   sm.layout.skip_rows, sm.layout.no_header ? "no header" : "a header line");
        if (sm.norm)
            printf("inputs standardised (--normalize) by the means and variances of %lld features\n",
                   (long long)sm.n_norm);
        if (sm.spec.vocab)
            printf("a character model: %lld characters, sequences of %lld, embedding %lld\n", (long long)sm.spec.vocab,
                   (long long)sm.input_shape.dims[0], (long long)sm.spec.embedding_dim);
        tg_model_summary(m, stdout);
    } else if (rc == EXIT_OK) {
        rc = cli_library_error();
    }
    tg_model_free(m);
    saved_close(&sm);
    return rc;
}

/* ---- generate: text from a character model -------------------------------------------------- */
/* The prime as vocabulary indices into ids; false after a message. */
static bool prime_ids(const saved_model *sm, const char *prime, int32_t *ids, int64_t *n)
{
    *n = 0;
    if (!prime) { /* a newline starts a text, else the first character */
        int64_t nl = text_vocab_index(sm->vocab, sm->spec.vocab, '\n');
        ids[(*n)++] = (int32_t)(nl >= 0 ? nl : 0);
        return true;
    }
    if (!*prime) {
        fprintf(stderr, "tapegrad: --prime is empty: give at least one character to start from\n");
        return false;
    }
    size_t len = strlen(prime);
    for (size_t at = 0; at < len; (*n)++) {
        uint32_t cp;
        size_t used = utf8_decode((const unsigned char *)prime + at, len - at, &cp);
        int64_t k = used ? text_vocab_index(sm->vocab, sm->spec.vocab, cp) : -1;
        if (!used || k < 0) {
            fprintf(stderr, "tapegrad: --prime: character %lld %s\n", (long long)*n + 1,
                    used ? "is not in the model's vocabulary" : "is not valid UTF-8");
            return false;
        }
        ids[*n] = (int32_t)k;
        at += used;
    }
    return true;
}

/* The model for contexts of `steps` characters, given the saved model's weights: the same
 * weights fit any length, since the recurrent layers read one step at a time. Built with
 * zero initializers (an orthogonal recurrent kernel costs more than the whole copy). NULL
 * with the library's error. */
static tg_model *model_for_steps(const saved_model *sm, int64_t steps, tg_model *saved)
{
    saved_model at = *sm;
    at.input_shape = (tg_shape){.rank = 1, .dims = {steps}};
    at.spec.zeros = true;
    tg_model *m =
        spec_build_under(at.precision ? at.precision : "float32", &at.spec, at.input_shape, at.classes, at.seed, false);
    int n = 0;
    tg_tensor *const *vars = m ? tg_model_variables(saved, &n) : NULL;
    tg_scope *s = tg_scope_begin();
    tg_tensor **w = vars && s ? calloc((size_t)(n ? n : 1), sizeof *w) : NULL;
    bool ok =
        w && tg_model_get_weights(saved, w, n) == 0 && tg_model_set_weights(m, (const tg_tensor *const *)w, n) == 0;
    free(w);
    tg_scope_end(s);
    if (!ok) {
        tg_model_free(m);
        return NULL;
    }
    return m;
}

/* Samples `length` characters after the prime, each given up to the model's sequence
 * length of characters before it (the windows it learned from), and prints them. */
static int generate(const saved_model *sm, int32_t *ids, int64_t n, int64_t length, double temperature, uint64_t seed)
{
    int64_t window = sm->input_shape.dims[0], steps = window, classes = sm->spec.vocab;
    tg_model *saved = load_saved(sm, NULL), *m = saved;
    tg_rng *rng = tg_rng_new(seed);
    float *logits = malloc(sizeof(float) * (size_t)classes);
    int rc = rng && logits ? EXIT_OK : cli_library_error();
    for (int64_t i = 0; i < n; i++) {
        char u[4];
        fwrite(u, 1, utf8_encode(sm->vocab[ids[i]], u), stdout);
    }
    for (int64_t g = 0; g < length && rc == EXIT_OK; g++) {
        int64_t k = n < window ? n : window;
        if (k != steps && saved) {
            if (m != saved)
                tg_model_free(m);
            m = k == window ? saved : model_for_steps(sm, k, saved);
            steps = k;
        }
        tg_scope *s = tg_scope_begin();
        tg_tensor *x = tg_tensor_from_at(TG_LOC, TG_I32, (tg_shape){.rank = 2, .dims = {1, k}}, ids + n - k);
        tg_tensor *y = m && x ? tg_model_call(m, x) : NULL;
        tg_shape begin = {.rank = 3, .dims = {0, k - 1, 0}}, size = {.rank = 3, .dims = {1, 1, classes}};
        y = y ? tg_slice(y, begin, size) : NULL;
        if (!y || tg_copy_out(y, logits, sizeof(float) * (size_t)classes) != 0) {
            rc = cli_library_error();
        } else {
            char u[4];
            ids[n] = (int32_t)text_sample(logits, classes, temperature, rng);
            fwrite(u, 1, utf8_encode(sm->vocab[ids[n++]], u), stdout);
        }
        tg_scope_end(s);
    }
    putchar('\n');
    if (m != saved)
        tg_model_free(m);
    tg_model_free(saved);
    tg_rng_free(rng);
    free(logits);
    return rc;
}

static int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {{"length", 1, 0, 'n'}, {"seed", 1, 0, 's'}, {"temperature", 1, 0, 'T'},
                                         {"prime", 1, 0, 'p'},  {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long length = 500, seed = 42;
    double temperature = 1.0;
    const char *prime = NULL;
    optind = 1;
    opterr = 0;
    int c, at = -1;
    while ((c = getopt_long(argc, argv, ":", opts, &at)) != -1) {
        bool ok = true;
        switch (c) {
        case 'n': ok = parse_long(optarg, 1, 10000000, &length); break;
        case 's': ok = parse_long(optarg, 0, 0x7fffffffL, &seed); break;
        case 'T': ok = parse_double(optarg, 0, 100, &temperature); break;
        case 'p': prime = optarg; break;
        case 'h': return fputs(usage_generate, stdout), EXIT_OK;
        case ':': return usage_error(usage_generate, "%s needs a value", argv[optind - 1]);
        default: return usage_error(usage_generate, "unknown option %s", argv[optind - 1]);
        }
        if (!ok)
            return bad_value(usage_generate, opts[at].name, optarg);
    }
    if (optind + 1 != argc)
        return usage_error(usage_generate, "give one MODEL file (written by tapegrad fit --data text:FILE)%s", "");
    saved_model sm;
    int rc = read_saved(argv[optind], &sm);
    if (rc == EXIT_OK && !sm.spec.vocab) {
        fprintf(stderr, "tapegrad: %s is not a character model: generate takes a model fit on --data text:FILE\n",
                argv[optind]);
        rc = EXIT_USAGE;
    }
    size_t room = (prime ? strlen(prime) : 1) + (size_t)length + 1;
    int32_t *ids = rc == EXIT_OK ? malloc(sizeof(int32_t) * room) : NULL;
    int64_t n = 0;
    if (rc == EXIT_OK && !ids)
        rc = (fprintf(stderr, "tapegrad: out of memory for %ld characters\n", length), EXIT_DATA);
    else if (rc == EXIT_OK && !prime_ids(&sm, prime, ids, &n))
        rc = EXIT_USAGE;
    if (rc == EXIT_OK)
        rc = generate(&sm, ids, n, length, temperature, (uint64_t)seed);
    free(ids);
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
    if (strcmp(cmd, "generate") == 0)
        return cmd_generate(argc - 1, argv + 1);
    return usage_error(usage_main, "unknown command '%s'", cmd);
}
