/* The fuzz targets (see targets.h). */
#define _GNU_SOURCE
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <tapegrad.h>

#include "../src/cli/cli.h"

long tg_fuzz_runs, tg_fuzz_rejected;

/* ---- the input as a file ------------------------------------------------------------------ */
static int memfd = -1;
static char memfd_path[64];

/* Writes the bytes to this process's memfd and returns its path, or NULL. */
static const char *as_file(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("tapegrad-fuzz", MFD_CLOEXEC);
        if (memfd < 0)
            return NULL;
        snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    }
    if (ftruncate(memfd, 0) != 0)
        return NULL;
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(memfd, data + done, size - done, (off_t)done);
        if (w <= 0)
            return NULL;
        done += (size_t)w;
    }
    return memfd_path;
}

/* ---- the promises ------------------------------------------------------------------------- */
static int broken(const char *target, const char *why)
{
    fprintf(stderr, "fuzz target %s: %s\n", target, why);
    return 1;
}

/* A failing read must leave a message that names the reader. */
static int check_failure(const char *target, const char *func)
{
    tg_fuzz_rejected++;
    const char *err = tg_last_error();
    if (!err || !*err)
        return broken(target, "the reader failed without an error message");
    if (!strstr(err, func)) {
        fprintf(stderr, "message: %s\n", err);
        return broken(target, "the error message does not name the reader");
    }
    return 0;
}

/* A tensor that was read must be whole: every element can be copied out. */
static int check_tensor(const char *target, const tg_tensor *t)
{
    int64_t n = tg_size(t);
    if (n < 0 || tg_rank(t) < 0 || tg_rank(t) > TG_MAX_RANK)
        return broken(target, "a tensor with an impossible shape");
    int64_t count = 1;
    for (int i = 0; i < tg_rank(t); i++)
        count *= tg_dim(t, i);
    if (count != n)
        return broken(target, "the size does not match the shape");
    size_t bytes = (size_t)n * tg_dtype_size(tg_dtype_of(t));
    void *buf = malloc(bytes ? bytes : 1);
    int rc = buf && tg_copy_out(t, buf, bytes) == 0 ? 0 : broken(target, "the elements cannot be copied out");
    free(buf);
    return rc;
}

/* Runs one input in a scope of its own, with a clean error slot. */
#define BEGIN(target)                      \
    tg_fuzz_runs++;                        \
    tg_clear_error();                      \
    tg_scope *scope_ = tg_scope_begin();   \
    if (!scope_)                           \
        return broken(target, "no scope"); \
    int rc_ = 0
#define END() (tg_scope_end(scope_) == 0 ? rc_ : 1)

/* ---- safetensors -------------------------------------------------------------------------- */
int tg_fuzz_safetensors(const uint8_t *data, size_t size)
{
    const char *path = as_file(data, size);
    if (!path)
        return broken("safetensors", "cannot write the memfd");
    BEGIN("safetensors");
    tg_safetensors *st = tg_safetensors_open(path);
    if (!st) {
        rc_ = check_failure("safetensors", "tg_safetensors_open");
        return END();
    }
    int n = tg_safetensors_count(st);
    const char *const *names = tg_safetensors_names(st);
    for (int i = 0; i < n && rc_ == 0; i++) {
        tg_shape shape;
        const char *dtype = NULL;
        if (tg_safetensors_info(st, names[i], &shape, &dtype) != 0 || !dtype) {
            rc_ = broken("safetensors", "a listed name has no info");
            break;
        }
        tg_tensor *t = tg_safetensors_get(st, names[i]);
        if (!t) {
            rc_ = check_failure("safetensors", "tg_safetensors_get");
            continue;
        }
        rc_ = check_tensor("safetensors", t);
    }
    if (rc_ == 0 && (tg_safetensors_get(st, "no such tensor") || !tg_last_error()))
        rc_ = broken("safetensors", "a missing tensor was found");
    (void)tg_safetensors_metadata(st, "epoch");
    (void)tg_safetensors_metadata(st, "");
    tg_safetensors_close(st);
    return END();
}

/* ---- IDX ------------------------------------------------------------------------------------- */
/* The rest of the input gzip-compressed, into a malloc'd buffer. */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream z = {0};
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)size);
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (!out || deflate(&z, Z_FINISH) != Z_STREAM_END) {
        free(out);
        out = NULL;
    }
    *out_size = z.total_out;
    deflateEnd(&z);
    return out;
}

static const tg_dtype ARRAY_DTYPES[] = {TG_DTYPE_AUTO, TG_F32, TG_F64, TG_I32, TG_I64, TG_BOOL, TG_DTYPE_AUTO, TG_F32};

/* Byte 0: bit 0 compresses the rest with gzip first; bits 1-3 the dtype; bit 4 a scale
 * of 1/255 (else 1). */
int tg_fuzz_idx(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    size_t n = size - 1;
    uint8_t *z = NULL;
    if (opt & 1) {
        z = gzip(data + 1, n, &n);
        if (!z)
            return broken("idx", "cannot compress");
    }
    const char *path = as_file(z ? z : data + 1, n);
    free(z);
    if (!path)
        return broken("idx", "cannot write the memfd");
    BEGIN("idx");
    tg_tensor *t = tg_read_idx(path, .dtype = ARRAY_DTYPES[(opt >> 1) & 7], .scale = opt & 16 ? 1.0 / 255 : 1.0);
    rc_ = t ? check_tensor("idx", t) : check_failure("idx", "tg_read_idx");
    return END();
}

/* ---- NPY -------------------------------------------------------------------------------------- */
/* Byte 0: bits 0-2 the dtype; bit 3 a scale of 0.5. */
int tg_fuzz_npy(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = as_file(data + 1, size - 1);
    if (!path)
        return broken("npy", "cannot write the memfd");
    BEGIN("npy");
    tg_tensor *t = tg_read_npy(path, .dtype = ARRAY_DTYPES[data[0] & 7], .scale = data[0] & 8 ? 0.5 : 1.0);
    rc_ = t ? check_tensor("npy", t) : check_failure("npy", "tg_read_npy");
    return END();
}

/* ---- CSV --------------------------------------------------------------------------------------- */
/* Byte 0: bit 0 no header; bits 1-2 the delimiter (, ; tab space); bits 3-5 the label
 * (none, last column, first column, column 2, the column named "y", "label", a bad
 * index 99); bit 6 float64. */
int tg_fuzz_csv(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    const char *path = as_file(data + 1, size - 1);
    if (!path)
        return broken("csv", "cannot write the memfd");
    static const char delims[] = {',', ';', '\t', ' '};
    tg_csv_opts o = {.header = !(opt & 1),
                     .label_index = TG_CSV_NO_LABEL,
                     .delimiter = delims[(opt >> 1) & 3],
                     .dtype = opt & 64 ? TG_F64 : TG_F32};
    switch ((opt >> 3) & 7) {
    case 1: o.label_index = -1; break;
    case 2: o.label_index = 0; break;
    case 3: o.label_index = 2; break;
    case 4: o.label = "y"; break;
    case 5: o.label = "label"; break;
    case 6: o.label_index = 99; break;
    default: break;
    }
    BEGIN("csv");
    tg_csv d = tg_read_csv_at(TG_LOC, path, o);
    if (!d.x) {
        rc_ = check_failure("csv", "tg_read_csv");
    } else {
        rc_ = check_tensor("csv", d.x);
        if (rc_ == 0 && (tg_dim(d.x, 0) != d.rows || tg_dim(d.x, 1) != d.features))
            rc_ = broken("csv", "rows and features do not match x");
        if (rc_ == 0 && (o.label || o.label_index != TG_CSV_NO_LABEL) != (d.y != NULL))
            rc_ = broken("csv", "labels asked for and labels returned differ");
        if (rc_ == 0 && d.y)
            rc_ = tg_size(d.y) == d.rows ? check_tensor("csv", d.y) : broken("csv", "one label per row");
    }
    return END();
}

/* ---- model specs ------------------------------------------------------------------------------- */
int tg_fuzz_spec(const uint8_t *data, size_t size)
{
    tg_fuzz_runs++;
    char *text = malloc(size + 1);
    if (!text)
        return broken("spec", "out of memory");
    memcpy(text, data, size);
    text[size] = 0;
    model_spec spec;
    char err[256] = "";
    int rc = 0;
    if (!spec_parse(text, &spec, err, sizeof err)) {
        tg_fuzz_rejected++;
        if (!err[0])
            rc = broken("spec", "refused without a message");
    } else if (spec.kind == SPEC_MLP) {
        if (spec.n_hidden < 1 || spec.n_hidden > SPEC_MAX_LAYERS)
            rc = broken("spec", "an MLP with an impossible number of layers");
        for (int i = 0; i < spec.n_hidden && rc == 0; i++)
            if (spec.hidden[i] < 1 || spec.hidden[i] > 100000)
                rc = broken("spec", "units out of range were accepted");
    }
    free(text);
    return rc;
}

/* ---- model-file metadata ------------------------------------------------------------------------ */
/* A checkpoint of a small compiled model, saved once; each input replaces its header's
 * __metadata__ value, and tg_model_load reads the file. Only public calls: the checks of
 * the metadata are the library's own. */
static struct {
    tg_model *m;
    char *prefix, *suffix; /* the header around the metadata value */
    uint8_t *data;         /* the tensors' bytes */
    size_t n_data;
    double weights[64];
    int64_t n_weights;
} ckpt;

static int64_t copy_weights(tg_model *m, double *w, int64_t max)
{
    int n = 0;
    tg_tensor *const *v = tg_model_variables(m, &n);
    int64_t at = 0;
    for (int i = 0; v && i < n && at + tg_size(v[i]) <= max; at += tg_size(v[i]), i++)
        tg_copy_out_f64(v[i], w + at, tg_size(v[i]));
    return at;
}

static void ckpt_free(void)
{
    tg_model_free(ckpt.m);
    free(ckpt.prefix);
    free(ckpt.suffix);
    free(ckpt.data);
}

/* The closing brace of the JSON object at p (its strings may hold braces and escapes). */
static const char *object_end(const char *p, const char *end)
{
    bool in_string = false;
    for (p++; p < end; p++) {
        if (in_string && *p == '\\')
            p++;
        else if (*p == '"')
            in_string = !in_string;
        else if (!in_string && *p == '}')
            return p;
    }
    return NULL;
}

/* Splits the saved file into header prefix, metadata value, rest of the header, data. */
static bool ckpt_split(const uint8_t *file, size_t size)
{
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)file[i] << (8 * i);
    const char *h = (const char *)file + 8, *key = "{\"__metadata__\":";
    if (size < 8 + hlen || strncmp(h, key, strlen(key)) != 0)
        return false;
    const char *close = object_end(h + strlen(key), h + hlen); /* the metadata object's brace */
    size_t end = hlen;
    while (end > 0 && h[end - 1] == ' ')
        end--;
    if (!close)
        return false;
    ckpt.prefix = strndup(h, strlen(key));
    ckpt.suffix = strndup(close + 1, (size_t)(h + end - close - 1));
    ckpt.n_data = size - 8 - hlen;
    ckpt.data = malloc(ckpt.n_data ? ckpt.n_data : 1);
    if (ckpt.data)
        memcpy(ckpt.data, file + 8 + hlen, ckpt.n_data);
    return ckpt.prefix && ckpt.suffix && ckpt.data;
}

static bool ckpt_init(void)
{
    char dir[] = "/tmp/tapegrad-fuzz-XXXXXX", path[64];
    if (!mkdtemp(dir))
        return false;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ckpt.m = tg_sequential(tg_dense(.units = 3, .input_dim = 2), tg_dense(.units = 2));
    tg_scope *s = tg_scope_begin();
    tg_history *h = tg_compile(ckpt.m, .optimizer = tg_adam(), .loss = TG_LOSS_MSE) != 0
                        ? NULL
                        : tg_fit(ckpt.m, tg_ones(TG_F32, TG_SHAPE(4, 2)), tg_zeros(TG_F32, TG_SHAPE(4, 2)), .epochs = 1,
                                 .verbose = TG_VERBOSE_SILENT);
    bool ok = h && tg_model_save(ckpt.m, path, "{\"epoch\": \"1\"}") == 0; /* with the optimizer's state */
    tg_history_free(h);
    tg_scope_end(s);
    FILE *f = ok ? fopen(path, "rb") : NULL;
    static uint8_t file[1 << 18];
    size_t n = f ? fread(file, 1, sizeof file, f) : 0;
    if (f)
        fclose(f);
    unlink(path);
    rmdir(dir);
    ok = ok && n > 8 && ckpt_split(file, n);
    ckpt.n_weights = copy_weights(ckpt.m, ckpt.weights, 64);
    atexit(ckpt_free);
    return ok;
}

/* The file with `meta` as its metadata value, the header padded to 8 bytes. */
static uint8_t *ckpt_file(const uint8_t *meta, size_t n_meta, size_t *size)
{
    size_t np = strlen(ckpt.prefix), ns = strlen(ckpt.suffix), h = np + n_meta + ns;
    size_t hpad = (h + 7) / 8 * 8;
    uint8_t *f = malloc(8 + hpad + ckpt.n_data);
    if (!f)
        return NULL;
    for (int i = 0; i < 8; i++)
        f[i] = (uint8_t)((uint64_t)hpad >> (8 * i));
    memcpy(f + 8, ckpt.prefix, np);
    memcpy(f + 8 + np, meta, n_meta);
    memcpy(f + 8 + np + n_meta, ckpt.suffix, ns);
    memset(f + 8 + h, ' ', hpad - h);
    memcpy(f + 8 + hpad, ckpt.data, ckpt.n_data);
    *size = 8 + hpad + ckpt.n_data;
    return f;
}

/* The tapegrad command reads a model file with cli_saved_keys (src/cli/spec.c). */

/* A value the validator accepted is within its key's bounds. */
static bool within(const tg_meta_key *k, const tg_meta_value *v)
{
    if (!v->present)
        return !k->required;
    switch (k->kind) {
    case TG_META_TEXT: {
        size_t n = strlen(v->text);
        return (int64_t)n >= k->min && (int64_t)n <= k->max;
    }
    case TG_META_INT: return v->i >= k->min && v->i <= k->max;
    case TG_META_DIMS:
        for (int i = 0; i < v->dims.rank; i++)
            if (v->dims.dims[i] < k->min || v->dims.dims[i] > k->max)
                return false;
        return v->dims.rank >= 1 && v->dims.rank <= TG_MAX_RANK;
    }
    return false;
}

/* The command's reading: accepted values within bounds, a refusal with a message. */
static int read_as_the_command(const char *path)
{
    tg_clear_error();
    tg_safetensors *st = tg_safetensors_open(path);
    if (!st)
        return tg_last_error() && *tg_last_error() ? 0 : broken("model", "open failed without an error message");
    tg_meta_value v[N_KEYS];
    int rc = 0;
    if (tg_safetensors_read_metadata(st, cli_saved_keys, N_KEYS, v) != 0) {
        if (!tg_last_error() || !*tg_last_error())
            rc = broken("model", "the metadata was refused without an error message");
    } else {
        for (int i = 0; i < N_KEYS && rc == 0; i++)
            if (!within(&cli_saved_keys[i], &v[i]))
                rc = broken("model", "the validator accepted a value out of its key's bounds");
    }
    tg_safetensors_close(st);
    return rc;
}

/* The bytes are the __metadata__ value. A load either succeeds or fails with a message;
 * the weights are the saved ones after either (a failed load changes nothing). The
 * command's reading of the same file accepts only values within bounds. */
int tg_fuzz_model(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready)
        ready = ckpt_init() ? 1 : -1;
    if (ready < 0)
        return broken("model", "cannot save the model to fuzz");
    size_t n;
    uint8_t *file = ckpt_file(data, size, &n);
    const char *path = file ? as_file(file, n) : NULL;
    free(file);
    if (!path)
        return broken("model", "cannot write the memfd");
    BEGIN("model");
    if (tg_model_load(ckpt.m, path) != 0) {
        tg_fuzz_rejected++;
        if (!tg_last_error() || !*tg_last_error())
            rc_ = broken("model", "tg_model_load failed without an error message");
    }
    double now[64];
    if (rc_ == 0 && (copy_weights(ckpt.m, now, 64) != ckpt.n_weights ||
                     memcmp(now, ckpt.weights, sizeof(double) * (size_t)ckpt.n_weights) != 0))
        rc_ = broken("model", "the weights are not the saved ones after the load");
    if (rc_ == 0)
        rc_ = read_as_the_command(path);
    return END();
}

/* ---- model architectures ------------------------------------------------------------------------ */
/* The bytes are a model file's architecture (its tapegrad_model value, Keras's
 * model.to_json() with a compile_config): tg_model_load_file rebuilds a model from it, or
 * fails with a message naming the file; a model it rebuilds can be saved and predicts. */
static char config_dir[64], config_file[96];

static void config_cleanup(void)
{
    unlink(config_file);
    rmdir(config_dir);
}

/* A file in a folder of this process's own (the atomic writer renames beside it). */
static const char *config_path(void)
{
    if (!*config_file) {
        snprintf(config_dir, sizeof config_dir, "/tmp/tapegrad-fuzz-config-XXXXXX");
        if (!mkdtemp(config_dir))
            return NULL;
        snprintf(config_file, sizeof config_file, "%s/m.safetensors", config_dir);
        atexit(config_cleanup);
    }
    return config_file;
}

int tg_fuzz_config(const uint8_t *data, size_t size)
{
    char *arch = malloc(size + 1);
    if (!arch)
        return broken("config", "out of memory");
    memcpy(arch, data, size);
    arch[size] = 0;
    BEGIN("config");
    const char *keys[2] = {"tapegrad_format_version", "tapegrad_model"}, *values[2] = {"1", arch};
    char *meta = memchr(arch, 0, size) ? NULL : tg_metadata_json(keys, values, 2);
    tg_tensor *w = tg_ones(TG_F32, TG_SHAPE(2, 2));
    const char *real = config_path();
    if (!meta) /* not text a metadata value can hold */
        tg_fuzz_rejected++;
    else if (!real || tg_save_safetensors(real, (tg_tensor *[]){w}, (const char *[]){"dense/kernel"}, 1, meta) != 0)
        rc_ = broken("config", "cannot write the file");
    else {
        tg_model *m = tg_model_load_file(real);
        const char *e = tg_last_error();
        if (!m) /* the loader's refusal, or the metadata validator's (an empty value) */
            rc_ = check_failure("config", e && strstr(e, "tg_safetensors_read_metadata: ")
                                              ? "tg_safetensors_read_metadata"
                                              : "tg_model_load");
        else if (tg_model_save(m, real, NULL) != 0)
            rc_ = broken("config", "a model tg_model_load_file made cannot be saved");
        tg_model_free(m);
    }
    free(meta);
    free(arch);
    return END();
}

const tg_fuzz_target tg_fuzz_targets[] = {
    {"safetensors", tg_fuzz_safetensors},
    {"idx", tg_fuzz_idx},
    {"npy", tg_fuzz_npy},
    {"csv", tg_fuzz_csv},
    {"spec", tg_fuzz_spec},
    {"model", tg_fuzz_model},
    {"config", tg_fuzz_config},
    {"opgraph", tg_fuzz_opgraph},
    {NULL, NULL},
};
