/* tapegrad/io.h: data sets (IDX, CSV, NumPy .npy), in-memory data sets with shuffling,
 * splitting and batching, Fashion-MNIST, and checkpoints in the safetensors format.
 *
 *   tg_dataset *train, *test;
 *   if (tg_load_fashion_mnist(NULL, &train, &test) != 0) { puts(tg_last_error()); ... }
 *   tg_dataset_shuffle(train, 42);
 *   tg_dataset_batch(train, 32);
 *   tg_tensor *xb, *yb;
 *   while (tg_dataset_next(train, &xb, &yb) > 0) { ... one step, in its own scope ... }
 *
 *   tg_tensor *vars[] = {w, b};
 *   tg_save_safetensors("model.safetensors", vars, NULL, 2, NULL);   // names: the variables'
 *   tg_load_into("model.safetensors", vars, 2);
 *
 * Readers never trust a file: a file that is truncated, corrupt or not what it claims to
 * be gives NULL (or -1) and an error naming the file, where in it (byte offset, or line
 * and column) and what was expected. Tensors they return belong to the innermost scope. */
#ifndef TAPEGRAD_IO_H
#define TAPEGRAD_IO_H

#include <limits.h>

#include "tensor.h"

TG_BEGIN_DECLS

/* ---- arrays: IDX (MNIST family) and NumPy .npy ------------------------------------- */
/* In reader options, "the file's own dtype": float32 for IDX, for .npy the nearest
 * tapegrad dtype (u1, i1, i2, u2 -> int32; u4 -> int64; f2 -> float32). */
#define TG_DTYPE_AUTO TG_DTYPE_COUNT

typedef struct tg_array_opts {
    tg_dtype dtype; /* output dtype; default TG_DTYPE_AUTO. Float data is never read as
                            integers (that would truncate): read floats, then tg_cast */
    double scale;   /* every value is multiplied by it (float outputs only); default 1 */
} tg_array_opts;
#define TG__ARRAY_OPTS(...) TG__OPTS(tg_array_opts, .dtype = TG_DTYPE_AUTO, .scale = 1.0, __VA_ARGS__)

/* An IDX file (magic 0x0000, type 0x08 u8 | 0x09 i8 | 0x0B i16 | 0x0C i32 | 0x0D f32 |
 * 0x0E f64, rank, big-endian uint32 dims, big-endian data), gzip-compressed or not
 * (detected by its magic). The data must fill the file exactly.
 *   tg_read_idx("train-images-idx3-ubyte.gz", .scale = 1.0 / 255)   float32 in [0, 1]
 *   tg_read_idx("train-labels-idx1-ubyte.gz", .dtype = TG_I32)        int32 labels */
tg_tensor *tg_read_idx_at(tg_loc loc, const char *path, tg_array_opts o);
#define tg_read_idx(path, ...) tg_read_idx_at(TG_LOC, path, TG__ARRAY_OPTS(__VA_ARGS__))

/* A NumPy .npy file, format 1.0, 2.0 or 3.0: dtypes f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 b1,
 * little- or big-endian, C order (fortran_order True is refused). Bytes after the array
 * are ignored, as numpy does (several arrays saved to one file). */
tg_tensor *tg_read_npy_at(tg_loc loc, const char *path, tg_array_opts o);
#define tg_read_npy(path, ...) tg_read_npy_at(TG_LOC, path, TG__ARRAY_OPTS(__VA_ARGS__))

/* ---- CSV ---------------------------------------------------------------------------- */
#define TG_CSV_NO_LABEL   INT_MIN
#define TG_CSV_MAX_LINE   (64 << 20) /* bytes in one line: longer is an error, not endless memory */
#define TG_CSV_WHITESPACE ' '        /* .delimiter: any run of spaces and tabs separates fields */

typedef struct tg_csv_opts {
    bool header;       /* default true: the first line names the columns */
    const char *label; /* the label column by its header name, or NULL */
    int label_index;   /* or by position: 0-based, negative counts from the end
                             (-1: the last column); default TG_CSV_NO_LABEL */
    char delimiter;    /* default ','; ' ' (TG_CSV_WHITESPACE): runs of blanks */
    int skip_rows;     /* lines skipped before the header (or the first row); default 0 */
    tg_dtype dtype;    /* features (and float labels): TG_F32 (default) or TG_F64 */
} tg_csv_opts;

typedef struct tg_csv {
    tg_tensor *x; /* [rows, features]; NULL when reading failed */
    tg_tensor *y; /* [rows]: int32 when every label is an integer, else the float
                             dtype; NULL when no label column was asked for */
    int64_t rows, features;
} tg_csv;

/* A numeric CSV file. Every cell must be a number (strtod's syntax in the C locale, so
 * nan and inf too); a text cell, an empty cell or a row with another number of cells is
 * an error naming its line and column. Fields may be quoted ("1.5", with "" for a quote)
 * but may not span lines. Blank lines are skipped; CRLF line ends and a UTF-8 byte-order
 * mark are accepted. A line longer than TG_CSV_MAX_LINE bytes is an error. The file may
 * be a pipe or a FIFO (read the same way, so bounded the same); a device is refused. A
 * gzip-compressed file (told by its first bytes, not its name) is read as its contents.
 *   tg_csv d = tg_read_csv("iris.csv", .label = "species");
 *   if (!d.x) fprintf(stderr, "%s\n", tg_last_error()); */
tg_csv tg_read_csv_at(tg_loc loc, const char *path, tg_csv_opts o);
#define tg_read_csv(path, ...)                                                                             \
    tg_read_csv_at(TG_LOC, path,                                                                           \
                   TG__OPTS(tg_csv_opts, .header = true, .label_index = TG_CSV_NO_LABEL, .delimiter = ',', \
                            .dtype = TG_F32, __VA_ARGS__))

/* ---- data sets ---------------------------------------------------------------------- */
/* Rows of features x (axis 0) and, optionally, labels y, held in memory the data set owns
 * (it outlives scopes until tg_dataset_free). Batches are new tensors in the innermost
 * scope. A new data set has batch size 32 (Keras's default). */
typedef struct tg_dataset tg_dataset;

/* Copies x (rank >= 1) and y (NULL, or rank >= 1 with as many rows as x). */
tg_dataset *tg_dataset_new_at(tg_loc loc, const tg_tensor *x, const tg_tensor *y);
#define tg_dataset_new(x, y) tg_dataset_new_at(TG_LOC, x, y)
void tg_dataset_free(tg_dataset *ds);
int64_t tg_dataset_size(const tg_dataset *ds); /* rows; -1 for NULL */

/* Permutes the rows (x and y together) with a Fisher-Yates shuffle driven by tg_rng
 * seeded with `seed`: the same data set and seed give the same order. Rewinds. */
int tg_dataset_shuffle(tg_dataset *ds, uint64_t seed);

/* Keras's validation_split: the LAST `fraction` of the rows (in the current order) go
 * to *val, the first floor(rows * (1 - fraction)) to *train; both are new data sets.
 * Split before shuffling to get Keras's behaviour. Refused, as Keras does, when either
 * part would be empty. */
int tg_dataset_split(const tg_dataset *ds, double fraction, tg_dataset **train, tg_dataset **val);

/* Sets the batch size (>= 1) and rewinds. */
int tg_dataset_batch(tg_dataset *ds, int64_t batch_size);
void tg_dataset_rewind(tg_dataset *ds);
/* The next batch of rows, as new tensors in the innermost scope (the last batch of an
 * epoch may be smaller); *yb is NULL when there are no labels, and yb may be NULL.
 * Returns 1 with a batch, 0 at the end of the epoch (and rewinds, so the next call
 * starts the next epoch), -1 with an error. */
int tg_dataset_next_at(tg_loc loc, tg_dataset *ds, tg_tensor **xb, tg_tensor **yb);
#define tg_dataset_next(ds, xb, yb) tg_dataset_next_at(TG_LOC, ds, xb, yb)

/* Multiplies every feature by `factor` (float features only). */
int tg_dataset_scale(tg_dataset *ds, double factor);
/* Gives each row of x a new shape with the same number of elements, e.g. (28, 28) ->
 * (28, 28, 1) for Conv2D or (784) for Dense. */
int tg_dataset_reshape(tg_dataset *ds, tg_shape row_shape);
/* All features or labels (NULL when there are none), copies in the innermost scope. */
tg_tensor *tg_dataset_x_at(tg_loc loc, const tg_dataset *ds);
tg_tensor *tg_dataset_y_at(tg_loc loc, const tg_dataset *ds);
#define tg_dataset_x(ds) tg_dataset_x_at(TG_LOC, ds)
#define tg_dataset_y(ds) tg_dataset_y_at(TG_LOC, ds)
/* The same without a copy: a tensor in the innermost scope that reads the data set's own
 * memory (what tg_fit, tg_evaluate and tg_predict do with .dataset). It is valid while
 * the data set lives and is not shuffled, scaled or reshaped (they replace or rewrite the
 * rows); ending its scope frees the header only. Never write into it. */
tg_tensor *tg_dataset_x_view_at(tg_loc loc, const tg_dataset *ds);
tg_tensor *tg_dataset_y_view_at(tg_loc loc, const tg_dataset *ds);
#define tg_dataset_x_view(ds) tg_dataset_x_view_at(TG_LOC, ds)
#define tg_dataset_y_view(ds) tg_dataset_y_view_at(TG_LOC, ds)
/* Whether the data set has labels (false for NULL). */
bool tg_dataset_has_labels(const tg_dataset *ds);

/* Fashion-MNIST from `dir`, or when dir is NULL from $FMNIST_DIR or else
 * /usr/share/datasets/fashion-mnist/ (Debian's dataset-fashion-mnist): images float32
 * (rows, 28, 28) scaled to [0, 1], labels int32 in 0..9; 60000 training and 10000 test
 * rows. Either out-pointer may be NULL to skip that part. Returns 0 or -1. */
int tg_load_fashion_mnist_at(tg_loc loc, const char *dir, tg_dataset **train, tg_dataset **test);
#define tg_load_fashion_mnist(dir, train, test) tg_load_fashion_mnist_at(TG_LOC, dir, train, test)

/* ---- checkpoints: safetensors ------------------------------------------------------- */
/* The format of Hugging Face's safetensors: an 8-byte little-endian header size N, N bytes
 * of JSON {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}, ...}
 * padded with spaces to a multiple of 8, then the raw little-endian data. tapegrad writes
 * F32, F64, I32, I64, BOOL and BF16, with the keys sorted and the data ordered by element size
 * (largest first), then name, so every tensor is aligned to its element size. It reads
 * those and U8, I8, I16, U16 (as int32), U32, U64 (as int64), F16 and BF16 (as float32).
 *
 * Saving is atomic, as tg_write_file (below) is: the file is written beside the target
 * under a temporary name, flushed to disk, then renamed over it; on any failure the
 * temporary file is removed, the previous file is untouched and -1 is returned with the
 * reason (strerror). A FIFO or a device is refused, a symbolic link followed.
 * `names` may be NULL when every tensor is a variable: the variables' names are used.
 * `metadata_json` is NULL or a JSON object of string values, e.g. "{\"epoch\": \"3\"}". */
int tg_save_safetensors_at(tg_loc loc, const char *path, tg_tensor *const *tensors, const char *const *names, int n,
                           const char *metadata_json);
/* (variadic so that compound literals with commas can be passed: (const char *[]){"w", "b"}) */
#define tg_save_safetensors(...) tg_save_safetensors_at(TG_LOC, __VA_ARGS__)

typedef struct tg_safetensors tg_safetensors;

/* Reads and checks the header (size, JSON, dtypes, shapes, offsets); data is read on
 * demand by tg_safetensors_get. NULL with an error for a file that is not valid. */
tg_safetensors *tg_safetensors_open_at(tg_loc loc, const char *path);
#define tg_safetensors_open(path) tg_safetensors_open_at(TG_LOC, path)
void tg_safetensors_close(tg_safetensors *st);

int tg_safetensors_count(const tg_safetensors *st);
/* The tensor names in byte order (strcmp); the array has count entries and lives until
 * close. */
const char *const *tg_safetensors_names(const tg_safetensors *st);
/* The shape and safetensors dtype name ("F32", "BF16", ...) of a tensor; either
 * out-pointer may be NULL. Returns 0, or -1 when there is no such tensor. */
int tg_safetensors_info(const tg_safetensors *st, const char *name, tg_shape *shape, const char **dtype);
/* A copy of the tensor in the innermost scope, converted as listed above. */
tg_tensor *tg_safetensors_get_at(tg_loc loc, const tg_safetensors *st, const char *name);
#define tg_safetensors_get(st, name) tg_safetensors_get_at(TG_LOC, st, name)
/* The raw value of a __metadata__ key, or NULL when there is none (not an error). It may
 * hold anything (a NUL byte written as \u0000, a number past int64): read values through
 * tg_safetensors_read_metadata, as tapegrad does. */
const char *tg_safetensors_metadata(const tg_safetensors *st, const char *key);

/* ---- checkpoint metadata: one validator -------------------------------------------------- */
typedef enum {
    TG_META_TEXT, /* a string of min to max bytes, without NUL bytes */
    TG_META_INT,  /* a whole number in digits ("-3", never "1e3" or " 3"), from min to max */
    TG_META_DIMS, /* "28,28,1": 1 to TG_MAX_RANK dimensions, each from min to max */
} tg_meta_kind;

typedef struct tg_meta_key {
    const char *key;
    tg_meta_kind kind;
    int64_t min, max;
    bool required;
    const char *writer; /* who writes the key, for the message when it is missing */
} tg_meta_key;

typedef struct tg_meta_value {
    bool present;
    int64_t i;        /* TG_META_INT */
    const char *text; /* TG_META_TEXT, valid until the file is closed */
    tg_shape dims;    /* TG_META_DIMS */
} tg_meta_value;

/* Reads the metadata keys a program expects, each checked against its entry of `keys`
 * (out[i] for keys[i]). The one way tapegrad itself reads metadata: a value out of range,
 * malformed, too long or with a NUL byte is an error naming the file and the key, never
 * a saturated number or a truncated string. Returns 0 or -1. */
int tg_safetensors_read_metadata_at(tg_loc loc, const tg_safetensors *st, const tg_meta_key *keys, int n,
                                    tg_meta_value *out);
#define tg_safetensors_read_metadata(st, keys, n, out) tg_safetensors_read_metadata_at(TG_LOC, st, keys, n, out)

/* {"key": "value", ...} with every string escaped: how to build the metadata_json of
 * tg_save_safetensors and tg_model_save from text that may hold quotes (a file name).
 * Malloc'd (free it), or NULL with an error (an empty key, a key twice, not UTF-8). */
char *tg_metadata_json_at(tg_loc loc, const char *const *keys, const char *const *values, int n);
#define tg_metadata_json(keys, values, n) tg_metadata_json_at(TG_LOC, keys, values, n)

/* Assigns each variable the tensor of the file with the variable's name. Every variable
 * must be found with the same dtype and shape; otherwise nothing is assigned and the
 * error names the tensor. Tensors of the file that no variable asks for are ignored. */
int tg_load_into_at(tg_loc loc, const char *path, tg_tensor *const *vars, int n);
#define tg_load_into(...) tg_load_into_at(TG_LOC, __VA_ARGS__) /* (path, vars, n) */

/* ---- files written atomically ---------------------------------------------------------- */
/* Writes `size` bytes as the file `path`, as every tapegrad writer does: into a temporary
 * file beside it, flushed to disk, renamed over the target, then the folder flushed. A
 * failure (a full disk, the file-size limit: EFBIG) returns -1 with the reason and leaves
 * the previous file as it was, with no temporary file. A target that exists and is not a
 * regular file (a FIFO, a device such as /dev/null, a folder) is refused; a symbolic link
 * is followed and the file it points to is replaced atomically (the link stays a link).
 * The new file keeps the old one's mode. The library never changes signal dispositions:
 * a program that wants EFBIG rather than death by SIGXFSZ ignores that signal. */
int tg_write_file_at(tg_loc loc, const char *path, const void *data, size_t size);
#define tg_write_file(path, data, size) tg_write_file_at(TG_LOC, path, data, size)

TG_END_DECLS
#endif
