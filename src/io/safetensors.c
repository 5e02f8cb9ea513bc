/* Checkpoints in the safetensors format: an atomic writer, a loader that checks every
 * field of the header before trusting it, and assignment into variables by name. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_impl.h"

#define MAX_HEADER 100000000ull /* the reference implementation's limit */
#define CHUNK      (1 << 20)

/* ---- dtypes --------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    int size;
    bool readable; /* tapegrad can convert it */
    tg__raw_type raw;
} st_dtype;

static const st_dtype DTYPES[] = {
    {"F64", 8, true, {TG__RAW_FLOAT, 8, false}},
    {"F32", 4, true, {TG__RAW_FLOAT, 4, false}},
    {"F16", 2, true, {TG__RAW_FLOAT, 2, false}},
    {"BF16", 2, true, {TG__RAW_BF16, 2, false}},
    {"I64", 8, true, {TG__RAW_INT, 8, false}},
    {"I32", 4, true, {TG__RAW_INT, 4, false}},
    {"I16", 2, true, {TG__RAW_INT, 2, false}},
    {"I8", 1, true, {TG__RAW_INT, 1, false}},
    {"U64", 8, true, {TG__RAW_UINT, 8, false}},
    {"U32", 4, true, {TG__RAW_UINT, 4, false}},
    {"U16", 2, true, {TG__RAW_UINT, 2, false}},
    {"U8", 1, true, {TG__RAW_UINT, 1, false}},
    {"BOOL", 1, true, {TG__RAW_BOOL, 1, false}},
    {"F8_E4M3", 1, false, {0}},
    {"F8_E5M2", 1, false, {0}},
    {"F8_E8M0", 1, false, {0}},
    {"C64", 8, false, {0}},
};
enum { N_DTYPES = sizeof DTYPES / sizeof DTYPES[0] };

static const char *st_name_of(tg_dtype d)
{
    static const char *const names[TG_DTYPE_COUNT] = {
        [TG_F32] = "F32", [TG_F64] = "F64", [TG_I32] = "I32", [TG_I64] = "I64", [TG_BOOL] = "BOOL", [TG_BF16] = "BF16"};
    return (unsigned)d < TG_DTYPE_COUNT ? names[d] : NULL;
}

static int st_find_dtype(const char *name)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(DTYPES[i].name, name))
            return i;
    return -1;
}

/* ---- saving -------------------------------------------------------------------------------- */
static const char *SAVE = "tg_save_safetensors";

typedef struct {
    const char *name;
    const tg_tensor *t;
    uint64_t begin, end;
} out_entry;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const out_entry *)a)->name, ((const out_entry *)b)->name);
}

/* Largest elements first, then by name: every tensor starts aligned to its element size. */
static int by_layout(const void *a, const void *b)
{
    const out_entry *x = a, *y = b;
    size_t sx = tg_dtype_size(x->t->dtype), sy = tg_dtype_size(y->t->dtype);
    return sx != sy ? (sx > sy ? -1 : 1) : strcmp(x->name, y->name);
}

static bool check_save_args(tg_loc loc, tg_tensor *const *tensors, const char *const *names, int n, out_entry *e)
{
    for (int i = 0; i < n; i++) {
        char arg[32];
        snprintf(arg, sizeof arg, "tensors[%d]", i);
        if (!tg__check_input(loc, SAVE, tensors[i], arg))
            return false;
        const char *name = names ? names[i] : tg_is_variable(tensors[i]) ? tg_variable_name(tensors[i]) : NULL;
        if (!name && names)
            return tg__fail(loc, "%s: names[%d] is NULL", SAVE, i), false;
        if (!name)
            return tg__fail(loc, "%s: %s is not a variable, so it has no name: pass `names`", SAVE, arg), false;
        if (!*name || !strcmp(name, "__metadata__") || !tg__utf8_valid(name, strlen(name)))
            return tg__fail(loc, "%s: the name of %s, \"%s\", is empty, reserved or not valid UTF-8", SAVE, arg, name),
                   false;
        if (tensors[i]->dtype >= TG_DTYPE_COUNT || !st_name_of(tensors[i]->dtype))
            return tg__fail(loc, "%s: %s has an unknown dtype", SAVE, arg), false;
        e[i] = (out_entry){.name = name, .t = tensors[i]};
    }
    qsort(e, (size_t)n, sizeof *e, by_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(e[i - 1].name, e[i].name))
            return tg__fail(loc, "%s: two tensors are named \"%s\"; names must be unique", SAVE, e[i].name), false;
    return true;
}

typedef struct {
    const char *key, *value;
    size_t key_len, value_len;
} kv;

static int by_key(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Collects an object's members, which must all be strings, sorted by key; refuses
 * duplicate keys. Returns the count, or -1 with `why` set. */
static int string_members(const tg__json *doc, int32_t obj, kv **out, const char **why, const char **bad)
{
    const tg__json_node *o = &doc->nodes[obj];
    kv *m = malloc((size_t)(o->count ? o->count : 1) * sizeof *m);
    int n = 0;
    *out = m;
    if (!m)
        return *why = "out of memory", -1;
    for (int32_t c = o->child; c >= 0; c = doc->nodes[c].next) {
        const tg__json_node *v = &doc->nodes[c];
        if (v->kind != TG__J_STR)
            return *why = "is not a string (metadata maps strings to strings)", *bad = v->key, -1;
        m[n++] = (kv){v->key, v->str, v->key_len, v->str_len};
    }
    qsort(m, (size_t)n, sizeof *m, by_key);
    for (int i = 1; i < n; i++)
        if (!by_key(&m[i - 1], &m[i]))
            return *why = "appears twice", *bad = m[i].key, -1;
    return n;
}

static bool has_key(const kv *m, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (m[i].key_len == strlen(key) && !memcmp(m[i].key, key, m[i].key_len))
            return true;
    return false;
}

/* The caller's metadata JSON, checked (an object of strings) and written sorted by key. */
static bool metadata_json(tg_loc loc, const char *text, tg__jbuf *b)
{
    tg__json doc;
    char err[160];
    size_t pos = 0;
    kv *m = NULL;
    const char *why = NULL, *bad = "";
    bool ok = tg__json_parse(text, strlen(text), &doc, err, sizeof err, &pos);
    if (!ok) {
        tg__fail(loc, "%s: the metadata is not valid JSON: %s at byte %zu", SAVE, err, pos);
    } else if (doc.nodes[0].kind != TG__J_OBJ) {
        tg__fail(loc, "%s: the metadata must be a JSON object of strings, like {\"epoch\": \"3\"}", SAVE);
        ok = false;
    } else {
        int n = string_members(&doc, 0, &m, &why, &bad);
        if (n < 0) {
            tg__fail(loc, "%s: metadata key \"%s\" %s", SAVE, bad, why);
            ok = false;
        }
        tg__jbuf_put(b, "\"__metadata__\":{", 16);
        for (int i = 0; i < n; i++) {
            if (i)
                tg__jbuf_put(b, ",", 1);
            tg__jbuf_str(b, m[i].key, m[i].key_len);
            tg__jbuf_put(b, ":", 1);
            tg__jbuf_str(b, m[i].value, m[i].value_len);
        }
        tg__jbuf_put(b, "}", 1);
    }
    free(m);
    tg__json_free(&doc);
    return ok;
}

/* The header: metadata, then tensors by name; padded with spaces to a multiple of 8. */
static bool build_header(tg_loc loc, out_entry *e, int n, const char *metadata, tg__jbuf *b)
{
    qsort(e, (size_t)n, sizeof *e, by_layout);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        e[i].begin = offset;
        offset += (uint64_t)e[i].t->size * tg_dtype_size(e[i].t->dtype);
        e[i].end = offset;
    }
    qsort(e, (size_t)n, sizeof *e, by_name);
    tg__jbuf_put(b, "{", 1);
    if (metadata && !metadata_json(loc, metadata, b))
        return false;
    for (int i = 0; i < n; i++) {
        if (i || metadata)
            tg__jbuf_put(b, ",", 1);
        tg__jbuf_str(b, e[i].name, strlen(e[i].name));
        tg__jbuf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", st_name_of(e[i].t->dtype));
        for (int k = 0; k < e[i].t->rank; k++)
            tg__jbuf_printf(b, k ? ",%lld" : "%lld", (long long)e[i].t->shape[k]);
        tg__jbuf_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)e[i].begin,
                        (unsigned long long)e[i].end);
    }
    tg__jbuf_put(b, "}", 1);
    while (!b->oom && b->n % 8)
        tg__jbuf_put(b, " ", 1);
    if (b->oom)
        return tg__fail(loc, "%s: out of memory for the header", SAVE), false;
    qsort(e, (size_t)n, sizeof *e, by_layout); /* back to file order for writing */
    return true;
}

/* A tensor's bytes in little-endian order. */
static bool write_tensor(int fd, const tg_tensor *t)
{
    size_t es = tg_dtype_size(t->dtype), bytes = (size_t)t->size * es;
    if (tg__host_is_little_endian() || es == 1)
        return tg__write_all(fd, t->data, bytes);
    unsigned char buf[4096];
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < sizeof buf ? bytes - done : sizeof buf;
        for (size_t i = 0; i < n; i += es)
            for (size_t k = 0; k < es; k++)
                buf[i + k] = ((const unsigned char *)t->data)[done + i + es - 1 - k];
        if (!tg__write_all(fd, buf, n))
            return false;
        done += n;
    }
    return true;
}

typedef struct {
    const tg__jbuf *header;
    const out_entry *e;
    int n;
} file_parts;

/* The size of the header, the header, then each tensor's data. */
static bool fill_file(int fd, void *ctx)
{
    const file_parts *f = ctx;
    unsigned char size_le[8];
    for (int k = 0; k < 8; k++)
        size_le[k] = (unsigned char)((uint64_t)f->header->n >> (8 * k));
    if (!tg__write_all(fd, size_le, 8) || !tg__write_all(fd, f->header->s, f->header->n))
        return false;
    for (int i = 0; i < f->n; i++)
        if (!write_tensor(fd, f->e[i].t))
            return false;
    return true;
}

int tg_save_safetensors_at(tg_loc loc, const char *path, tg_tensor *const *tensors, const char *const *names, int n,
                           const char *metadata)
{
    if (!path)
        return tg__failf(loc, "%s: `path` is NULL", SAVE);
    if (n < 0 || (n > 0 && !tensors))
        return tg__failf(loc, "%s: %s", SAVE, n < 0 ? "n is negative" : "`tensors` is NULL");
    out_entry *e = malloc((size_t)(n ? n : 1) * sizeof *e);
    tg__jbuf header = {0};
    int rc = -1;
    if (!e)
        tg__fail(loc, "%s: out of memory", SAVE);
    else if (check_save_args(loc, tensors, names, n, e) && build_header(loc, e, n, metadata, &header))
        rc = tg__write_atomic(loc, SAVE, path, fill_file, &(file_parts){&header, e, n});
    free(e);
    free(header.s);
    return rc;
}

/* ---- metadata objects, built with the JSON writer --------------------------------------- */
/* The members as a JSON object sorted by key, into a malloc'd string; a key twice is
 * refused. */
static char *write_object(tg_loc loc, const char *func, kv *m, int n)
{
    qsort(m, (size_t)n, sizeof *m, by_key);
    for (int i = 1; i < n; i++)
        if (!by_key(&m[i - 1], &m[i]))
            return tg__fail(loc, "%s: metadata key \"%s\" appears twice", func, m[i].key);
    tg__jbuf b = {0};
    tg__jbuf_put(&b, "{", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            tg__jbuf_put(&b, ", ", 2);
        tg__jbuf_str(&b, m[i].key, m[i].key_len);
        tg__jbuf_put(&b, ": ", 2);
        tg__jbuf_str(&b, m[i].value, m[i].value_len);
    }
    tg__jbuf_put(&b, "}", 1);
    if (!b.oom)
        return b.s;
    free(b.s);
    return tg__fail(loc, "%s: out of memory", func);
}

char *tg_metadata_json_at(tg_loc loc, const char *const *keys, const char *const *values, int n)
{
    const char *func = "tg_metadata_json";
    if (n < 0 || (n && (!keys || !values)))
        return tg__fail(loc, "%s: %s", func, n < 0 ? "n is negative" : "`keys` or `values` is NULL");
    for (int i = 0; i < n; i++) {
        if (!keys[i] || !*keys[i] || !values[i])
            return tg__fail(loc, "%s: keys[%d] is NULL or empty, or values[%d] is NULL", func, i, i);
        if (!tg__utf8_valid(keys[i], strlen(keys[i])) || !tg__utf8_valid(values[i], strlen(values[i])))
            return tg__fail(loc, "%s: metadata key \"%s\" or its value is not valid UTF-8", func, keys[i]);
    }
    kv *m = malloc((size_t)(n ? n : 1) * sizeof *m);
    if (!m)
        return tg__fail(loc, "%s: out of memory", func);
    for (int i = 0; i < n; i++)
        m[i] = (kv){keys[i], values[i], strlen(keys[i]), strlen(values[i])};
    char *out = write_object(loc, func, m, n);
    free(m);
    return out;
}

char *tg__metadata_with(tg_loc loc, const char *func, const char *user_json, const char *key, const char *value)
{
    tg__json doc = {0};
    char err[160];
    size_t pos = 0;
    kv *m = NULL;
    const char *why = NULL, *bad = "";
    int n = 0;
    char *out = NULL;
    if (user_json && !tg__json_parse(user_json, strlen(user_json), &doc, err, sizeof err, &pos))
        tg__fail(loc, "%s: metadata must be a JSON object of strings; it is not valid JSON: %s at byte %zu", func, err,
                 pos);
    else if (user_json && doc.nodes[0].kind != TG__J_OBJ)
        tg__fail(loc, "%s: metadata must be a JSON object of strings, e.g. {\"note\": \"text\"}", func);
    else if (user_json && (n = string_members(&doc, 0, &m, &why, &bad)) < 0)
        tg__fail(loc, "%s: metadata key \"%s\" %s", func, bad, why);
    else if (!m && !(m = malloc(sizeof *m)))
        tg__fail(loc, "%s: out of memory", func);
    else if (has_key(m, n, key))
        tg__fail(loc, "%s: metadata key \"%s\" is written by tapegrad itself: give yours another name", func, key);
    else {
        kv *more = realloc(m, (size_t)(n + 1) * sizeof *m);
        if (more) {
            m = more;
            m[n++] = (kv){key, value, strlen(key), strlen(value)};
            out = write_object(loc, func, m, n);
        } else {
            tg__fail(loc, "%s: out of memory", func);
        }
    }
    free(m);
    tg__json_free(&doc);
    return out;
}

/* ---- loading -------------------------------------------------------------------------------- */
static const char *OPEN = "tg_safetensors_open";

typedef struct {
    const char *name;
    int dtype; /* index into DTYPES */
    tg_shape shape;
    uint64_t begin, end; /* within the data */
} st_entry;

struct tg_safetensors {
    int fd;
    char *path;
    uint64_t data_start, data_size;
    char *strings; /* the decoded header strings that names and metadata point into */
    st_entry *e;   /* sorted by name */
    const char **names;
    int n;
    kv *meta;
    int n_meta;
};

typedef struct {
    tg_loc loc;
    const char *path;
    tg_safetensors *st;
    const tg__json *doc;
} opener;

static bool bad(opener *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool bad(opener *o, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__fail(o->loc, "%s: '%s' is not a valid safetensors file: %s", OPEN, o->path, msg);
    return false;
}

static bool read_exact(int fd, void *buf, size_t n, uint64_t offset)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0; /* the end of the file */
            return false;
        }
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return true;
}

/* An array of non-negative integers: the shape (up to 8) or the two data offsets. */
static bool int_array(opener *o, const char *name, const char *field, int32_t node, uint64_t *out, int max, int *count)
{
    const tg__json_node *a = &o->doc->nodes[node];
    if (a->kind != TG__J_ARR)
        return bad(o, "tensor \"%s\": \"%s\" is not an array", name, field);
    if (a->count > max)
        return bad(o, "tensor \"%s\": \"%s\" has %d entries; %s", name, field, a->count,
                   max == 2 ? "data_offsets has exactly 2" : "tapegrad tensors have at most 8 dimensions");
    int k = 0;
    for (int32_t c = a->child; c >= 0; c = o->doc->nodes[c].next, k++) {
        const tg__json_node *v = &o->doc->nodes[c];
        if (v->kind != TG__J_NUM || !v->is_int || v->i < 0)
            return bad(o, "tensor \"%s\": entry %d of \"%s\" is not a non-negative integer", name, k, field);
        out[k] = (uint64_t)v->i;
    }
    *count = k;
    return true;
}

static bool tensor_info(opener *o, int32_t node, st_entry *e)
{
    const tg__json_node *t = &o->doc->nodes[node];
    const char *name = t->key;
    if (strlen(name) != t->key_len)
        return bad(o, "a tensor name contains a NUL character");
    if (t->kind != TG__J_OBJ)
        return bad(o, "tensor \"%s\": its entry is not an object", name);
    int32_t dtype = -1, shape = -1, offsets = -1;
    for (int32_t c = t->child; c >= 0; c = o->doc->nodes[c].next) {
        const char *k = o->doc->nodes[c].key;
        int32_t *slot = !strcmp(k, "dtype")          ? &dtype
                        : !strcmp(k, "shape")        ? &shape
                        : !strcmp(k, "data_offsets") ? &offsets
                                                     : NULL;
        if (slot && *slot >= 0)
            return bad(o, "tensor \"%s\": \"%s\" appears twice", name, k);
        if (slot)
            *slot = c;
    }
    if (dtype < 0 || shape < 0 || offsets < 0)
        return bad(o, "tensor \"%s\": missing \"%s\"", name,
                   dtype < 0   ? "dtype"
                   : shape < 0 ? "shape"
                               : "data_offsets");
    const tg__json_node *d = &o->doc->nodes[dtype];
    if (d->kind != TG__J_STR)
        return bad(o, "tensor \"%s\": \"dtype\" is not a string", name);
    if ((e->dtype = st_find_dtype(d->str)) < 0)
        return bad(o,
                   "tensor \"%s\": unknown dtype \"%.40s\" (known: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 "
                   "U8 BOOL F8_E4M3 F8_E5M2 F8_E8M0 C64)",
                   name, d->str);
    uint64_t dims[TG_MAX_RANK], off[2];
    int rank, n_off;
    if (!int_array(o, name, "shape", shape, dims, TG_MAX_RANK, &rank) ||
        !int_array(o, name, "data_offsets", offsets, off, 2, &n_off))
        return false;
    if (n_off != 2)
        return bad(o, "tensor \"%s\": \"data_offsets\" has %d entries; it needs [begin, end]", name, n_off);
    if (off[1] < off[0])
        return bad(o, "tensor \"%s\": data_offsets [%llu, %llu] end before they begin", name,
                   (unsigned long long)off[0], (unsigned long long)off[1]);
    uint64_t bytes = (uint64_t)DTYPES[e->dtype].size;
    e->shape.rank = rank;
    for (int k = 0; k < rank; k++) {
        if (dims[k] && bytes > (uint64_t)INT64_MAX / 16 / dims[k])
            return bad(o, "tensor \"%s\": the shape overflows: no file holds that many elements", name);
        bytes *= dims[k];
        e->shape.dims[k] = dims[k] > (uint64_t)INT64_MAX ? -1 : (int64_t)dims[k];
    }
    if (tg__shape_size(&e->shape) < 0) /* a zero among huge dims: no tensor has that shape */
        return bad(o,
                   "tensor \"%s\": the shape is too large for a tensor (its dims, zeros counted as ones, multiply "
                   "past the most elements a tensor may hold)",
                   name);
    if (bytes != off[1] - off[0]) {
        char s[TG_SHAPE_STR_MAX];
        return bad(o, "tensor \"%s\": shape %s of %s takes %llu bytes, but data_offsets [%llu, %llu] span %llu", name,
                   tg__shape_str(&e->shape, s, sizeof s), d->str, (unsigned long long)bytes, (unsigned long long)off[0],
                   (unsigned long long)off[1], (unsigned long long)(off[1] - off[0]));
    }
    e->name = name;
    e->begin = off[0];
    e->end = off[1];
    return true;
}

static int by_begin(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1) : (x->end > y->end) - (x->end < y->end);
}

static int by_entry_name(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* The tensors must tile the data exactly, as the reference implementation requires. */
static bool check_layout(opener *o)
{
    tg_safetensors *st = o->st;
    qsort(st->e, (size_t)st->n, sizeof *st->e, by_begin);
    uint64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        const st_entry *e = &st->e[i];
        if (e->begin < at)
            return bad(o, "the data of tensors \"%s\" and \"%s\" overlap (bytes [%llu, %llu) and [%llu, %llu))",
                       st->e[i - 1].name, e->name, (unsigned long long)st->e[i - 1].begin,
                       (unsigned long long)st->e[i - 1].end, (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->begin > at)
            return bad(o, "bytes [%llu, %llu) of the data belong to no tensor (before \"%s\")", (unsigned long long)at,
                       (unsigned long long)e->begin, e->name);
        if (e->end > st->data_size)
            return bad(o,
                       "tensor \"%s\" runs past the end of the file: data_offsets [%llu, %llu], but the data "
                       "has %llu bytes (truncated?)",
                       e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)st->data_size);
        at = e->end;
    }
    if (at != st->data_size)
        return bad(o, "%llu bytes after the last tensor's data belong to no tensor",
                   (unsigned long long)(st->data_size - at));
    qsort(st->e, (size_t)st->n, sizeof *st->e, by_entry_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(st->e[i - 1].name, st->e[i].name))
            return bad(o, "the tensor name \"%s\" appears twice", st->e[i].name);
    return true;
}

static bool read_entries(opener *o)
{
    tg_safetensors *st = o->st;
    const tg__json_node *root = &o->doc->nodes[0];
    if (root->kind != TG__J_OBJ)
        return bad(o, "the header is not a JSON object");
    st->e = malloc((size_t)(root->count ? root->count : 1) * sizeof *st->e);
    if (!st->e)
        return bad(o, "out of memory");
    bool have_meta = false;
    for (int32_t c = root->child; c >= 0; c = o->doc->nodes[c].next) {
        const tg__json_node *m = &o->doc->nodes[c];
        if (strcmp(m->key, "__metadata__")) {
            if (!tensor_info(o, c, &st->e[st->n]))
                return false;
            st->n++;
            continue;
        }
        const char *why = NULL, *key = "";
        if (have_meta)
            return bad(o, "\"__metadata__\" appears twice");
        have_meta = true;
        if (m->kind != TG__J_OBJ)
            return bad(o, "\"__metadata__\" is not an object of strings");
        if ((st->n_meta = string_members(o->doc, c, &st->meta, &why, &key)) < 0)
            return bad(o, "\"__metadata__\": key \"%s\" %s", key, why);
    }
    return check_layout(o);
}

static bool read_header(opener *o, int64_t file_size)
{
    tg_safetensors *st = o->st;
    unsigned char n8[8];
    if (file_size < 8)
        return bad(o, "truncated: the file has %lld bytes, but it starts with an 8-byte header size",
                   (long long)file_size);
    if (!read_exact(st->fd, n8, 8, 0))
        return bad(o, "cannot read the header size: %s", strerror(errno));
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)n8[k] << (8 * k);
    if (n > MAX_HEADER)
        return bad(o,
                   "the header size in bytes 0-7, %llu, is over the limit of %llu bytes (corrupt, or not a "
                   "safetensors file)",
                   (unsigned long long)n, MAX_HEADER);
    if (n > (uint64_t)file_size - 8)
        return bad(o, "truncated: the header size in bytes 0-7, %llu, runs past the end of the file (%lld bytes)",
                   (unsigned long long)n, (long long)file_size);
    char *text = malloc(n ? n : 1);
    if (!text)
        return bad(o, "out of memory for a header of %llu bytes", (unsigned long long)n);
    tg__json doc = {0};
    char err[160];
    size_t pos = 0;
    bool ok = read_exact(st->fd, text, n, 8) || bad(o, "cannot read the header: %s", strerror(errno));
    if (ok && (n == 0 || text[0] != '{'))
        ok = bad(o, "the header (byte 8 on) does not start with '{'");
    if (ok && !tg__json_parse(text, n, &doc, err, sizeof err, &pos))
        ok = bad(o, "malformed header JSON at byte %llu of the file (byte %zu of the header): %s",
                 (unsigned long long)(8 + pos), pos, err);
    if (ok) {
        st->data_start = 8 + n;
        st->data_size = (uint64_t)file_size - 8 - n;
        o->doc = &doc;
        ok = read_entries(o);
        o->doc = NULL;
    }
    free(text);
    st->strings = doc.strings; /* names and metadata point into it; freed by close */
    doc.strings = NULL;
    tg__json_free(&doc);
    return ok;
}

void tg_safetensors_close(tg_safetensors *st)
{
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    free(st->path);
    free(st->strings);
    free(st->e);
    free(st->names);
    free(st->meta);
    free(st);
}

tg_safetensors *tg_safetensors_open_at(tg_loc loc, const char *path)
{
    if (!path)
        return tg__fail(loc, "%s: `path` is NULL", OPEN);
    tg_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return tg__fail(loc, "%s: out of memory", OPEN);
    }
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    opener o = {.loc = loc, .path = path, .st = st};
    bool ok = false;
    if (st->fd < 0)
        tg__fail(loc, "%s: cannot open '%s': %s", OPEN, path, strerror(errno));
    else if (fstat(st->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        tg__fail(loc, "%s: '%s' is not a regular file", OPEN, path);
    else if (read_header(&o, sb.st_size)) {
        st->names = malloc((size_t)(st->n ? st->n : 1) * sizeof *st->names);
        ok = st->names != NULL;
        if (!ok)
            tg__fail(loc, "%s: out of memory", OPEN);
        for (int i = 0; ok && i < st->n; i++)
            st->names[i] = st->e[i].name;
    }
    if (!ok) {
        tg_safetensors_close(st);
        return NULL;
    }
    return st;
}

int tg_safetensors_count(const tg_safetensors *st) { return st ? st->n : -1; }

const char *const *tg_safetensors_names(const tg_safetensors *st) { return st ? st->names : NULL; }

static const st_entry *find(const tg_safetensors *st, const char *name)
{
    st_entry key = {.name = name};
    return bsearch(&key, st->e, (size_t)st->n, sizeof *st->e, by_entry_name);
}

int tg_safetensors_info(const tg_safetensors *st, const char *name, tg_shape *shape, const char **dtype)
{
    const st_entry *e = st && name ? find(st, name) : NULL;
    if (!e)
        return tg__failf((tg_loc){0}, "tg_safetensors_info: %s",
                         !st     ? "`st` is NULL"
                         : !name ? "`name` is NULL"
                                 : "no tensor of that name");
    if (shape)
        *shape = e->shape;
    if (dtype)
        *dtype = DTYPES[e->dtype].name;
    return 0;
}

const char *tg__safetensors_path(const tg_safetensors *st) { return st->path; }

const char *tg_safetensors_metadata(const tg_safetensors *st, const char *key)
{
    if (!st || !key || !st->n_meta)
        return NULL; /* (bsearch may not be given the NULL array of a file without metadata) */
    kv k = {.key = key, .key_len = strlen(key)};
    const kv *m = bsearch(&k, st->meta, (size_t)st->n_meta, sizeof *st->meta, by_key);
    return m ? m->value : NULL;
}

/* ---- metadata, read through one validator ------------------------------------------------- */
static const char *META = "tg_safetensors_read_metadata";

typedef enum { INT_OK, INT_NOT, INT_RANGE } int_status;

/* A strict decimal integer (an optional '-', then digits only): strtoll would take
 * "1e23" for 1 and saturate 10^23 to INT64_MAX without a word. */
static int_status parse_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out)
{
    size_t i = s[0] == '-';
    if (i == n)
        return INT_NOT;
    uint64_t v = 0, limit = (uint64_t)INT64_MAX + (s[0] == '-');
    bool over = false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return INT_NOT;
        unsigned d = (unsigned)(s[i] - '0');
        over = over || v > (limit - d) / 10;
        v = over ? v : v * 10 + d;
    }
    if (over)
        return INT_RANGE;
    int64_t x = s[0] == '-' ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (x < lo || x > hi)
        return INT_RANGE;
    *out = x;
    return INT_OK;
}

static int meta_fail(tg_loc loc, const tg_safetensors *st, const kv *m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int meta_fail(tg_loc loc, const tg_safetensors *st, const kv *m, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return tg__failf(loc, "%s: '%s': metadata \"%s\" %s (the file is damaged, or was not written by tapegrad)", META,
                     st->path, m->key, why);
}

static int read_int(tg_loc loc, const tg_safetensors *st, const kv *m, const tg_meta_key *k, int64_t *out)
{
    int_status r = parse_int(m->value, m->value_len, k->min, k->max, out);
    if (r == INT_OK)
        return 0;
    return meta_fail(loc, st, m, "is \"%.40s\"%s: it must be %s from %lld to %lld", m->value,
                     m->value_len > 40 ? "..." : "", r == INT_NOT ? "a whole number written in digits" : "a number",
                     (long long)k->min, (long long)k->max);
}

/* "28,28,1": 1 to TG_MAX_RANK dimensions, each in [min, max], their product in int64. */
static int read_dims(tg_loc loc, const tg_safetensors *st, const kv *m, const tg_meta_key *k, tg_shape *out)
{
    *out = (tg_shape){0};
    const char *p = m->value, *end = m->value + m->value_len;
    int64_t total = 1;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        int64_t d;
        if (out->rank == TG_MAX_RANK || parse_int(p, (size_t)(stop - p), k->min, k->max, &d) != INT_OK)
            return meta_fail(loc, st, m,
                             "is \"%.60s\": it must be 1 to %d dimensions from %lld to %lld, like "
                             "\"28,28,1\"",
                             m->value, TG_MAX_RANK, (long long)k->min, (long long)k->max);
        if (d && total > INT64_MAX / d)
            return meta_fail(loc, st, m, "is \"%.60s\": more values than any tensor can hold", m->value);
        total *= d;
        out->dims[out->rank++] = d;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int read_one(tg_loc loc, const tg_safetensors *st, const tg_meta_key *k, tg_meta_value *v)
{
    kv key = {.key = k->key, .key_len = strlen(k->key)};
    const kv *m = st->n_meta ? bsearch(&key, st->meta, (size_t)st->n_meta, sizeof *st->meta, by_key) : NULL;
    *v = (tg_meta_value){0};
    if (!m)
        return k->required ? tg__failf(loc, "%s: '%s' has no metadata \"%s\" (was it written by %s?)", META, st->path,
                                       k->key, k->writer ? k->writer : "tapegrad")
                           : 0;
    if (memchr(m->value, 0, m->value_len))
        return meta_fail(loc, st, m, "contains a NUL byte (\\u0000)");
    v->present = true;
    if (k->kind == TG_META_INT)
        return read_int(loc, st, m, k, &v->i);
    if (k->kind == TG_META_DIMS)
        return read_dims(loc, st, m, k, &v->dims);
    if ((int64_t)m->value_len < k->min || (int64_t)m->value_len > k->max)
        return meta_fail(loc, st, m, "is %zu bytes long: it must be %lld to %lld", m->value_len, (long long)k->min,
                         (long long)k->max);
    v->text = m->value;
    return 0;
}

int tg_safetensors_read_metadata_at(tg_loc loc, const tg_safetensors *st, const tg_meta_key *keys, int n,
                                    tg_meta_value *out)
{
    if (!st || (n && (!keys || !out)) || n < 0)
        return tg__failf(loc, "%s: %s", META,
                         !st     ? "`st` is NULL"
                         : n < 0 ? "n is negative"
                                 : "`keys` or `out` is NULL");
    for (int i = 0; i < n; i++)
        if (read_one(loc, st, &keys[i], &out[i]) != 0)
            return -1;
    return 0;
}

/* A short list of the file's names for messages. */
static const char *name_list(const tg_safetensors *st, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < st->n && n + 70 < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s\"%.60s\"", i ? ", " : "", st->e[i].name);
    if (st->n == 0)
        snprintf(buf, size, "no tensors");
    else if (n + 70 >= size)
        snprintf(buf + n, size - n, ", ...");
    return buf;
}

/* Reads a tensor's data into dst (as dtype), converting in chunks when needed. */
static bool read_data(tg_loc loc, const char *func, const tg_safetensors *st, const st_entry *e, void *dst,
                      tg_dtype dtype)
{
    tg__raw_type raw = DTYPES[e->dtype].raw;
    uint64_t bytes = e->end - e->begin, at = st->data_start + e->begin;
    if (tg__raw_is_native(raw, dtype, 1.0)) {
        if (read_exact(st->fd, dst, bytes, at))
            return true;
        return tg__fail(loc, "%s: '%s': cannot read tensor \"%s\": %s", func, st->path, e->name,
                        errno ? strerror(errno) : "the file is shorter than when it was opened"),
               false;
    }
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return tg__fail(loc, "%s: out of memory", func), false;
    size_t es = tg_dtype_size(dtype);
    bool ok = true;
    for (uint64_t done = 0; ok && done < bytes;) {
        size_t n = bytes - done < CHUNK ? (size_t)(bytes - done) : CHUNK;
        if (!read_exact(st->fd, buf, n, at + done)) {
            tg__fail(loc, "%s: '%s': cannot read tensor \"%s\": %s", func, st->path, e->name,
                     errno ? strerror(errno) : "the file is shorter than when it was opened");
            ok = false;
            break;
        }
        int64_t first = (int64_t)(done / (uint64_t)raw.size);
        ok = tg__raw_convert(loc, func, st->path, buf, raw, (int64_t)n / raw.size, (char *)dst + (size_t)first * es,
                             dtype, 1.0, first);
        done += n;
    }
    free(buf);
    return ok;
}

tg_tensor *tg_safetensors_get_at(tg_loc loc, const tg_safetensors *st, const char *name)
{
    const char *func = "tg_safetensors_get";
    if (!st || !name)
        return tg__null_arg(loc, func, st ? "name" : "st");
    const st_entry *e = find(st, name);
    char list[512];
    if (!e)
        return tg__fail(loc, "%s: '%s' has no tensor named \"%s\" (it has %s)", func, st->path, name,
                        name_list(st, list, sizeof list));
    if (!DTYPES[e->dtype].readable)
        return tg__fail(loc, "%s: '%s': tensor \"%s\" has dtype %s, which tapegrad cannot convert", func, st->path,
                        name, DTYPES[e->dtype].name);
    tg_tensor *t = tg__tensor_new(loc, tg__raw_natural(DTYPES[e->dtype].raw), &e->shape);
    return t && read_data(loc, func, st, e, t->data, t->dtype) ? t : NULL;
}

/* ---- loading into variables ------------------------------------------------------------------ */
static const char *LOAD = "tg_load_into";

static bool check_vars(tg_loc loc, tg_tensor *const *vars, int n)
{
    if (n < 0 || (n > 0 && !vars))
        return tg__fail(loc, "%s: %s", LOAD, n < 0 ? "n is negative" : "`vars` is NULL"), false;
    for (int i = 0; i < n; i++) {
        char arg[32];
        snprintf(arg, sizeof arg, "vars[%d]", i);
        if (!tg__check_input(loc, LOAD, vars[i], arg))
            return false;
        if (!tg_is_variable(vars[i]))
            return tg__fail(loc, "%s: %s is not a variable (only variables can be assigned)", LOAD, arg), false;
        for (int j = 0; j < i; j++)
            if (!strcmp(vars[i]->var->name, vars[j]->var->name))
                return tg__fail(loc,
                                "%s: vars[%d] and vars[%d] are both named \"%s\": which one gets the tensor is "
                                "ambiguous (give variables unique names)",
                                LOAD, j, i, vars[i]->var->name),
                       false;
    }
    return true;
}

/* The file's entry for a variable, with the same dtype and shape. */
static const st_entry *match(tg_loc loc, const tg_safetensors *st, const tg_tensor *v)
{
    const char *name = v->var->name;
    const st_entry *e = find(st, name);
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX], list[512];
    tg_shape vs = tg__shape(v);
    if (!e)
        return tg__fail(loc, "%s: '%s' has no tensor named \"%s\" (it has %s); nothing was assigned", LOAD, st->path,
                        name, name_list(st, list, sizeof list));
    if (strcmp(DTYPES[e->dtype].name, st_name_of(v->dtype)))
        return tg__fail(loc, "%s: tensor \"%s\" is %s in '%s', but the variable is %s (%s); nothing was assigned", LOAD,
                        name, DTYPES[e->dtype].name, st->path, tg_dtype_name(v->dtype), st_name_of(v->dtype));
    if (!tg__shape_eq(&e->shape, &vs))
        return tg__fail(loc,
                        "%s: tensor \"%s\" has shape %s in '%s', but the variable has shape %s; nothing was "
                        "assigned",
                        LOAD, name, tg__shape_str(&e->shape, a, sizeof a), st->path, tg__shape_str(&vs, b, sizeof b));
    return e;
}

int tg__load_into_open(tg_loc loc, const tg_safetensors *st, tg_tensor *const *vars, int n)
{
    if (!check_vars(loc, vars, n))
        return -1;
    void **bufs = calloc((size_t)(n ? n : 1), sizeof *bufs);
    bool ok = bufs != NULL;
    if (!ok)
        tg__fail(loc, "%s: out of memory", LOAD);
    /* Everything is read before anything is assigned, so a failure assigns nothing. */
    for (int i = 0; ok && i < n; i++) {
        const st_entry *e = match(loc, st, vars[i]);
        size_t bytes = (size_t)vars[i]->size * tg_dtype_size(vars[i]->dtype);
        ok = e && (bufs[i] = malloc(bytes ? bytes : 1)) && read_data(loc, LOAD, st, e, bufs[i], vars[i]->dtype);
        if (e && !bufs[i])
            tg__fail(loc, "%s: out of memory", LOAD);
    }
    for (int i = 0; ok && i < n; i++)
        memcpy(tg__variable_begin_write(loc, vars[i]), bufs[i], (size_t)vars[i]->size * tg_dtype_size(vars[i]->dtype));
    for (int i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    return ok ? 0 : -1;
}

int tg_load_into_at(tg_loc loc, const char *path, tg_tensor *const *vars, int n)
{
    if (!check_vars(loc, vars, n))
        return -1;
    tg_safetensors *st = tg_safetensors_open_at(loc, path);
    int rc = st ? tg__load_into_open(loc, st, vars, n) : -1;
    tg_safetensors_close(st);
    return rc;
}
