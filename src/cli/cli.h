/* The tapegrad command: shared pieces of its subcommands. */
#ifndef TG_CLI_H
#define TG_CLI_H

#include <tapegrad.h>

/* Exit codes. */
enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_DATA = 2 };

/* Prints the library's last error for the user and returns EXIT_DATA. */
int cli_library_error(void);

/* ---- model specs: "mlp:500", "mlp:512,256", "cnn" ------------------------------------- */
#define SPEC_MAX_LAYERS 8
typedef struct model_spec {
    enum { SPEC_MLP, SPEC_CNN } kind;
    int n_hidden;
    int64_t hidden[SPEC_MAX_LAYERS];
} model_spec;
/* Parses a spec; false with a message in err (never reads past the string). */
bool spec_parse(const char *text, model_spec *spec, char *err, size_t err_size);
/* The Keras model for examples of `input_shape` and `classes` outputs (logits). */
tg_model *spec_build(const model_spec *spec, tg_shape input_shape, int64_t classes, uint64_t seed);
/* The example shape the spec's model takes for flat or image rows. */
tg_shape spec_input_shape(const model_spec *spec, tg_shape row_shape);

/* ---- data: "fashion-mnist", "csv:FILE", "npy:X.npy,Y.npy", "idx:IMAGES,LABELS" ----------- */
typedef struct data_source {
    tg_dataset *train, *test;   /* test may be NULL */
    char name[64];
} data_source;
/* Loads a data source; label names the CSV label column. Returns an exit code, having
 * printed what went wrong. */
int data_load(const char *spec, const char *label, data_source *out);
void data_free(data_source *d);

/* ---- history: CSV and an SVG plot of loss and accuracy per epoch ------------------------------ */
int history_write_csv(const tg_history *h, const char *path);
int history_write_svg(const tg_history *h, const char *path, const char *title);

#endif
