/* Fuzz targets: one entry point per input format, shared by the libFuzzer drivers
 * (fuzz_main.c, `make fuzz`) and by tests/test_fuzz_regressions.c, which replays the
 * seed corpora and every file of fuzz/regressions/ through the same functions.
 *
 * Each target feeds the bytes to a reader through a path (a memfd, /proc/self/fd/N),
 * exactly as a file on disk would be read, and checks what the library promises: no
 * crash, and a failure always leaves an error message. A broken promise returns 1 with
 * the reason on stderr (the libFuzzer driver then aborts, so the input is kept). */
#ifndef TG_FUZZ_TARGETS_H
#define TG_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

typedef int (*tg_fuzz_fn)(const uint8_t *data, size_t size);

int tg_fuzz_safetensors(const uint8_t *data, size_t size);
/* IDX, NPY and CSV: byte 0 picks reader options (and for IDX whether the rest is
 * gzip-compressed first); the rest is the file. */
int tg_fuzz_idx(const uint8_t *data, size_t size);
int tg_fuzz_npy(const uint8_t *data, size_t size);
int tg_fuzz_csv(const uint8_t *data, size_t size);
/* The tapegrad command's model specs ("mlp:512,256", "cnn"): the bytes are the text. */
int tg_fuzz_spec(const uint8_t *data, size_t size);

/* Model-file metadata: the bytes are the __metadata__ value of a checkpoint's header that
 * tg_model_load then reads (a small compiled model's file, saved once per process). */
int tg_fuzz_model(const uint8_t *data, size_t size);
/* Model architectures: the bytes are the tapegrad_model metadata value (the architecture
 * JSON) of a file tg_model_load_file then rebuilds a model from. */
int tg_fuzz_config(const uint8_t *data, size_t size);
/* The differential op-graph gradient fuzzer (opgraph.c): the bytes are a program over the
 * op table's rows, whose tape gradients (first and second order) must match central
 * finite differences in float64. Counts the derivatives compared and the points skipped
 * as not smooth. */
int tg_fuzz_opgraph(const uint8_t *data, size_t size);
extern long tg_fuzz_opgraph_checked, tg_fuzz_opgraph_skipped;

typedef struct tg_fuzz_target {
    const char *name; /* also the folder of its corpus: fuzz/corpus/<name>/ */
    tg_fuzz_fn fn;
} tg_fuzz_target;
extern const tg_fuzz_target tg_fuzz_targets[]; /* ends with {NULL, NULL} */

/* Counters of the current process, for reports: inputs run, and inputs rejected with an
 * error message (the rest were read successfully). */
extern long tg_fuzz_runs, tg_fuzz_rejected;

#endif
