/* Internal helpers of the io layer: element conversion from file types, a strict JSON
 * parser for safetensors headers, and the data-set constructor the loaders share. */
#ifndef TG_IO_IMPL_H
#define TG_IO_IMPL_H

#include "../tensor/tensor_impl.h"
#include "tapegrad/io.h"

/* ---- element types as files store them ------------------------------------------------ */
typedef enum { TG__RAW_FLOAT, TG__RAW_INT, TG__RAW_UINT, TG__RAW_BOOL, TG__RAW_BF16 } tg__raw_kind;

typedef struct tg__raw_type {
    tg__raw_kind kind;
    int size; /* bytes per element: 1, 2, 4 or 8 */
    bool big_endian;
} tg__raw_type;

/* The tapegrad dtype a raw type is read as by default (f2 and bf16 -> float32, small
 * integers -> int32, u4 and u8 -> int64). */
tg_dtype tg__raw_natural(tg__raw_type raw);
/* "u8", "i32", "f16", "bf16", "bool": for messages. */
const char *tg__raw_name(tg__raw_type raw);
/* Whether raw data may be read as `dtype` with `scale`; otherwise an error is set naming
 * `func` and `what` (the file) and false is returned. */
bool tg__raw_check(tg_loc loc, const char *func, const char *what, tg__raw_type raw, tg_dtype dtype, double scale);
/* Converts n elements from src (raw type) into dst (dtype), multiplying by scale. An
 * integer that does not fit the destination is an error naming element `first + i`. */
bool tg__raw_convert(tg_loc loc, const char *func, const char *what, const void *src, tg__raw_type raw, int64_t n,
                     void *dst, tg_dtype dtype, double scale, int64_t first);
/* True when raw bytes can be copied as they are into `dtype` (same layout, host order). */
bool tg__raw_is_native(tg__raw_type raw, tg_dtype dtype, double scale);
bool tg__host_is_little_endian(void);

/* ---- strict JSON -------------------------------------------------------------------------- */
typedef enum { TG__J_NULL, TG__J_FALSE, TG__J_TRUE, TG__J_NUM, TG__J_STR, TG__J_ARR, TG__J_OBJ } tg__json_kind;

typedef struct tg__json_node {
    tg__json_kind kind;
    bool is_int;     /* a number written without fraction or exponent, within int64 */
    int32_t next;    /* next element or member; -1 at the end */
    int32_t child;   /* first element or member of an array or object; -1 if empty */
    int32_t count;   /* elements or members */
    const char *key; /* the member's key (decoded, NUL-terminated) inside an object */
    size_t key_len;
    const char *str; /* a string's decoded bytes (NUL-terminated) */
    size_t str_len;
    int64_t i;  /* when is_int */
    double d;   /* every number */
    size_t pos; /* byte offset of the value in the text */
} tg__json_node;

typedef struct tg__json {
    tg__json_node *nodes; /* nodes[0] is the root */
    int32_t n, cap;
    char *strings; /* decoded strings and keys */
} tg__json;

/* Parses one JSON value followed only by whitespace. On failure returns false with a
 * message in err (and the byte offset in *err_pos); the document is freed either way
 * when tg__json_free is called. Nesting deeper than 64 levels is refused. */
bool tg__json_parse(const char *text, size_t len, tg__json *doc, char *err, size_t err_size, size_t *err_pos);
void tg__json_free(tg__json *doc);
/* The writer: a growable string that remembers running out of memory (oom). */
typedef struct tg__jbuf {
    char *s;
    size_t n, cap;
    bool oom;
} tg__jbuf;
void tg__jbuf_put(tg__jbuf *b, const char *s, size_t n);
void tg__jbuf_printf(tg__jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (n bytes) as a JSON string: quotes, backslashes and control characters escaped. */
void tg__jbuf_str(tg__jbuf *b, const char *s, size_t n);
/* Whether s (len bytes) is valid UTF-8. */
bool tg__utf8_valid(const char *s, size_t len);

/* ---- files written atomically (files.c) --------------------------------------------------- */
/* Writes fd's content; false with errno set on failure. */
typedef bool (*tg__fill_fn)(int fd, void *ctx);
/* The one way tapegrad writes a file: `fill` writes a temporary file beside the target,
 * which is flushed and renamed over it, then the folder is flushed. A target that exists
 * and is not a regular file is refused; a symbolic link is followed to its file. On any
 * failure: -1, an error naming `func`, the target as it was, no temporary file left. */
int tg__write_atomic(tg_loc loc, const char *func, const char *path, tg__fill_fn fill, void *ctx);
/* write(2) until done, through EINTR and short writes; false with errno. */
bool tg__write_all(int fd, const void *buf, size_t n);

/* user_json (an object of strings, or NULL) with key: value added, as a new malloc'd JSON
 * object; a user key equal to `key` is refused (tapegrad writes it). NULL with an error. */
char *tg__metadata_with(tg_loc loc, const char *func, const char *user_json, const char *key, const char *value);

/* The path a file was opened with, for messages. */
const char *tg__safetensors_path(const tg_safetensors *st);

/* tg_load_into from a file already open: everything read through its one descriptor. */
int tg__load_into_open(tg_loc loc, const tg_safetensors *st, tg_tensor *const *vars, int n);

/* ---- reading data (files.c) -------------------------------------------------------------------- */
/* Opens a data file for reading: a regular file, a pipe or a FIFO (csv:<(zcat f.gz));
 * a device (/dev/zero: endless) or a folder is refused with an error naming `func`. */
FILE *tg__open_data(tg_loc loc, const char *func, const char *path);

/* ---- data sets --------------------------------------------------------------------------- */
/* A data set that takes ownership of malloc'd buffers (x and y of `rows` rows, y may be
 * NULL); frees them on failure. */
tg_dataset *tg__dataset_adopt(tg_loc loc, void *x, tg_dtype x_dtype, tg_shape x_shape, void *y, tg_dtype y_dtype,
                              tg_shape y_shape);

/* An IDX file read into a new malloc'd buffer (internal form of tg_read_idx). */
void *tg__idx_load(tg_loc loc, const char *path, tg_dtype dtype, double scale, tg_shape *shape, tg__raw_type *raw);

#endif
