/* The tapegrad command: shared pieces of its subcommands. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include <tapegrad.h>

/* Exit codes. */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_DATA = 2 };

/* Prints the library's last error for the user and returns EXIT_DATA. */
int cli_library_error(void);

/* ---- model specs: "mlp:500", "mlp:512,256", "cnn", "lstm:128", "gru:128" ----------------------------------- */
#define SPEC_MAX_LAYERS 8
typedef struct model_spec {
    enum { SPEC_MLP, SPEC_CNN, SPEC_LSTM, SPEC_GRU } kind;
    int n_hidden;
    int64_t hidden[SPEC_MAX_LAYERS];
} model_spec;
/* Parses a spec; false with a message in err (never reads past the string). */
bool spec_parse(const char *text, model_spec *spec, char *err, size_t err_size);
/* The Keras model for examples of `input_shape` and `classes` outputs: logits (or values),
 * or with `sigmoid` probabilities (binary cross-entropy, whose accuracy thresholds at 0.5). */
tg_model *spec_build(const model_spec *spec, tg_shape input_shape, int64_t classes, uint64_t seed, bool sigmoid);
/* The example shape the spec's model takes for flat or image rows. */
tg_shape spec_input_shape(const model_spec *spec, tg_shape row_shape);

/* ---- model files: what tapegrad fit writes beside the weights ---------------------------- */
#define MAX_CLASSES 100000 /* as many as a layer may have units (spec.c) */
enum {
    KEY_MODEL,
    KEY_SHAPE,
    KEY_CLASSES,
    KEY_SEED,
    KEY_EPOCH,
    KEY_DATA,
    KEY_DATA_PATH,
    KEY_LABEL,
    KEY_LOSS,
    KEY_OPTIMIZER,
    KEY_LR,
    KEY_BATCH,
    KEY_SPLIT,
    KEY_HISTORY,
    KEY_PLOT,
    KEY_DELIMITER,
    KEY_SKIP_ROWS,
    KEY_NORMALIZATION,
    KEY_HEADER,
    KEY_PRECISION,
    N_KEYS
};
/* Each key and the values it can have, read only through the library's validator
 * (tg_safetensors_read_metadata); the metadata fuzz target reads files with it too. */
extern const tg_meta_key cli_saved_keys[N_KEYS];

/* ---- data: "fashion-mnist", "csv:FILE", "npy:X.npy,Y.npy", "idx:IMAGES,LABELS" ----------- */
typedef struct data_source {
    tg_dataset *train, *test; /* test may be NULL */
    char name[64];
} data_source;
/* How a CSV file is laid out: --delimiter and --skip-rows. */
typedef struct csv_layout {
    char delimiter; /* ',', ' ' (any run of blanks), '\t' or ';' */
    int skip_rows;  /* lines before the header */
    bool no_header; /* the first line (after those) is a row of data */
} csv_layout;
#define CSV_LAYOUT_DEFAULT ((csv_layout){.delimiter = ','})
/* The delimiter a name (comma, whitespace, tab, semicolon, or the character) means; 0
 * when none. */
char csv_delimiter_parse(const char *name);
/* The name of a delimiter, as the model file stores it. */
const char *csv_delimiter_name(char delimiter);
/* Loads a data source; label names the CSV label column, layout (NULL: commas, no lines
 * skipped) how its file is laid out. Returns an exit code, having printed what went wrong. */
int data_load(const char *spec, const char *label, const csv_layout *layout, data_source *out);
void data_free(data_source *d);

/* ---- history: CSV and an SVG plot of loss and a metric per epoch ------------------------------ */
#define HISTORY_MAX_KEYS 32
typedef struct cli_history {
    int n_keys, n_epochs;
    char keys[HISTORY_MAX_KEYS][40];
    int *epoch; /* the true epoch numbers, 1-based, increasing */
    double *v;  /* n_epochs rows of n_keys values */
} cli_history;
/* The epochs of a fit that began after epoch `initial_epoch`. Returns an exit code. */
int history_from_fit(const tg_history *h, int initial_epoch, cli_history *out);
/* Puts before the fit's epochs the rows of an earlier history CSV (as history_write_csv
 * writes it) numbered below the fit's first epoch: a resumed fit's history goes on. A
 * missing file adds nothing; one with other columns adds nothing, with a note. */
void history_prepend_csv(cli_history *h, const char *path);
void history_free(cli_history *h);
int history_write_csv(const cli_history *h, const char *path);
/* Two panels: the loss and `metric` (e.g. "accuracy"), titled `metric_title`. */
int history_write_svg(const cli_history *h, const char *path, const char *title, const char *metric,
                      const char *metric_title);

#endif
