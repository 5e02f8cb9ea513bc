/* NumPy .npy files (format 1.0, 2.0, 3.0).
 *
 * Layout: "\x93NUMPY", major and minor version bytes, the header length (uint16 LE in
 * 1.0, uint32 LE in 2.0 and 3.0), then a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with spaces and a
 * newline, then the data. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "io_impl.h"

#define NPY_MAX_HEADER (1 << 20)
#define CHUNK          (1 << 20)

static const char *FUNC = "tg_read_npy";

typedef struct {
    tg_loc loc;
    const char *path;
    const char *s; /* the header text */
    size_t len, pos;
    size_t base; /* file offset of the header text */
    /* what it says */
    bool have_descr, have_order, have_shape;
    char descr[32];
    bool fortran;
    tg_shape shape;
} npy_header;

static bool fail_at(npy_header *h, const char *what)
{
    tg__fail(h->loc, "%s: '%s': malformed header at byte %zu: %s (header: %.*s)", FUNC, h->path, h->base + h->pos, what,
             (int)(h->len > 120 ? 120 : h->len), h->s);
    return false;
}

static void skip_ws(npy_header *h)
{
    while (h->pos < h->len &&
           (h->s[h->pos] == ' ' || h->s[h->pos] == '\t' || h->s[h->pos] == '\n' || h->s[h->pos] == '\r'))
        h->pos++;
}

static bool eat(npy_header *h, char c)
{
    skip_ws(h);
    if (h->pos < h->len && h->s[h->pos] == c) {
        h->pos++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (numpy's headers never need them). */
static bool parse_str(npy_header *h, char *out, size_t size)
{
    skip_ws(h);
    if (h->pos >= h->len || (h->s[h->pos] != '\'' && h->s[h->pos] != '"'))
        return fail_at(h, "expected a quoted string");
    char q = h->s[h->pos++];
    size_t start = h->pos;
    while (h->pos < h->len && h->s[h->pos] != q && h->s[h->pos] != '\\')
        h->pos++;
    if (h->pos >= h->len || h->s[h->pos] != q)
        return fail_at(h, "unterminated string (or an escape, which .npy headers do not use)");
    size_t n = h->pos - start;
    h->pos++;
    if (n >= size)
        return fail_at(h, "string too long");
    memcpy(out, h->s + start, n);
    out[n] = 0;
    return true;
}

static bool parse_shape(npy_header *h)
{
    if (!eat(h, '('))
        return fail_at(h, "expected '(' starting the shape tuple");
    h->shape.rank = 0;
    int64_t count = 1;
    while (!eat(h, ')')) {
        skip_ws(h);
        if (h->pos >= h->len || h->s[h->pos] < '0' || h->s[h->pos] > '9')
            return fail_at(h, "expected a non-negative integer dimension in the shape");
        int64_t d = 0;
        while (h->pos < h->len && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
            if (d > (INT64_MAX - 9) / 10)
                return fail_at(h, "dimension too large");
            d = d * 10 + (h->s[h->pos++] - '0');
        }
        if (h->pos < h->len && h->s[h->pos] == 'L')
            h->pos++; /* Python 2's long literal, in files written by old numpy */
        if (h->shape.rank == TG_MAX_RANK)
            return fail_at(h, "more than 8 dimensions (tapegrad tensors have at most 8)");
        if (d && count > INT64_MAX / 16 / d)
            return fail_at(h, "the dimensions overflow: no file holds that many elements");
        count *= d;
        h->shape.dims[h->shape.rank++] = d;
        if (!eat(h, ',')) {
            if (!eat(h, ')'))
                return fail_at(h, "expected ',' or ')' in the shape tuple");
            break;
        }
    }
    if (tg__shape_size(&h->shape) < 0) /* a zero among huge dims: no tensor has that shape */
        return fail_at(h, "the dimensions are too large for a tensor (their product, zeros counted as ones, is "
                          "past the most elements a tensor may hold)");
    return true;
}

static bool parse_value(npy_header *h, const char *key)
{
    skip_ws(h);
    if (!strcmp(key, "descr")) {
        if (h->pos < h->len && h->s[h->pos] == '[')
            return fail_at(h, "a structured dtype (a list of fields) is not supported");
        h->have_descr = true;
        return parse_str(h, h->descr, sizeof h->descr);
    }
    if (!strcmp(key, "fortran_order")) {
        h->have_order = true;
        if (h->len - h->pos >= 4 && !memcmp(h->s + h->pos, "True", 4)) {
            h->fortran = true;
            h->pos += 4;
            return true;
        }
        if (h->len - h->pos >= 5 && !memcmp(h->s + h->pos, "False", 5)) {
            h->pos += 5;
            return true;
        }
        return fail_at(h, "fortran_order must be True or False");
    }
    if (!strcmp(key, "shape")) {
        h->have_shape = true;
        return parse_shape(h);
    }
    char msg[128]; /* keys are under 32 bytes */
    snprintf(msg, sizeof msg, "unknown key '%s' (expected descr, fortran_order, shape)", key);
    return fail_at(h, msg);
}

static bool parse_dict(npy_header *h)
{
    if (!eat(h, '{'))
        return fail_at(h, "expected '{' starting the header dict");
    while (!eat(h, '}')) {
        char key[32];
        if (!parse_str(h, key, sizeof key))
            return false;
        if (!eat(h, ':'))
            return fail_at(h, "expected ':' after a key");
        if (!parse_value(h, key))
            return false;
        if (!eat(h, ',')) {
            if (!eat(h, '}'))
                return fail_at(h, "expected ',' or '}' in the header dict");
            break;
        }
    }
    skip_ws(h);
    if (h->pos != h->len)
        return fail_at(h, "unexpected text after the header dict");
    if (!h->have_descr || !h->have_order || !h->have_shape)
        return fail_at(h, "the header needs the keys descr, fortran_order and shape");
    return true;
}

/* descr: a byte order ('<' little, '>' big, '|' not applicable, '=' native), a kind and a size. */
static bool parse_descr(tg_loc loc, const char *path, const char *d, tg__raw_type *raw)
{
    const char *why = NULL;
    char order = d[0], kind = d[0] ? d[1] : 0;
    bool digits = kind && d[2] && strspn(d + 2, "0123456789") == strlen(d + 2);
    int size = digits && strlen(d + 2) <= 2 ? atoi(d + 2) : 0; /* at most 2 digits: no overflow */
    if (order && strchr("<>|=", order) && kind == 'O')
        why = "object arrays hold pickled Python objects";
    else if (!order || !strchr("<>|=", order) || !kind || !digits)
        why = "not a numeric dtype";
    else if (kind == 'f' && (size == 2 || size == 4 || size == 8))
        *raw = (tg__raw_type){TG__RAW_FLOAT, size, false};
    else if (kind == 'i' && (size == 1 || size == 2 || size == 4 || size == 8))
        *raw = (tg__raw_type){TG__RAW_INT, size, false};
    else if (kind == 'u' && (size == 1 || size == 2 || size == 4 || size == 8))
        *raw = (tg__raw_type){TG__RAW_UINT, size, false};
    else if (kind == 'b' && size == 1)
        *raw = (tg__raw_type){TG__RAW_BOOL, 1, false};
    else
        why = "not one of the numeric dtypes tapegrad reads";
    if (!why && order == '|' && size > 1)
        why = "'|' (no byte order) with a multi-byte type";
    if (why) {
        tg__fail(loc,
                 "%s: '%s': dtype '%s' is not supported: %s (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1, "
                 "any byte order)",
                 FUNC, path, d, why);
        return false;
    }
    raw->big_endian = order == '>' || (order == '=' && !tg__host_is_little_endian());
    return true;
}

/* Reads the preamble and header; leaves the file at the first data byte. */
static bool read_header(tg_loc loc, FILE *fp, const char *path, int64_t file_size, npy_header *h, tg__raw_type *raw)
{
    unsigned char pre[12];
    size_t got = fread(pre, 1, 8, fp);
    if (got < 8 || memcmp(pre, "\x93NUMPY", 6)) {
        tg__fail(loc, "%s: '%s' is not a .npy file: it does not start with \"\\x93NUMPY\"", FUNC, path);
        return false;
    }
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0) {
        tg__fail(loc, "%s: '%s': byte 6: format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", FUNC, path,
                 major, minor);
        return false;
    }
    int lenbytes = major == 1 ? 2 : 4;
    if (fread(pre + 8, 1, (size_t)lenbytes, fp) != (size_t)lenbytes) {
        tg__fail(loc, "%s: '%s': truncated: the file ends inside the header length at byte 8", FUNC, path);
        return false;
    }
    uint64_t hlen = pre[8] | (uint64_t)pre[9] << 8;
    if (lenbytes == 4)
        hlen |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    size_t base = 8 + (size_t)lenbytes;
    if ((int64_t)(base + hlen) > file_size) {
        tg__fail(loc,
                 "%s: '%s': truncated: the header length %llu at byte 8 runs past the end of the file (%lld bytes)",
                 FUNC, path, (unsigned long long)hlen, (long long)file_size);
        return false;
    }
    if (hlen > NPY_MAX_HEADER) {
        tg__fail(loc, "%s: '%s': the header length %llu at byte 8 is implausibly large (over %d bytes)", FUNC, path,
                 (unsigned long long)hlen, NPY_MAX_HEADER);
        return false;
    }
    char *text = malloc(hlen ? hlen : 1);
    if (!text || fread(text, 1, hlen, fp) != hlen) {
        tg__fail(loc, "%s: '%s': cannot read the header: %s", FUNC, path, text ? "read error" : "out of memory");
        free(text);
        return false;
    }
    *h = (npy_header){.loc = loc, .path = path, .s = text, .len = hlen, .base = base};
    bool ok = parse_dict(h) && parse_descr(loc, path, h->descr, raw);
    if (ok && h->fortran) {
        tg__fail(loc,
                 "%s: '%s': fortran_order is True: tapegrad reads C-order arrays only (save with "
                 "np.save(path, np.ascontiguousarray(a)))",
                 FUNC, path);
        ok = false;
    }
    free(text);
    h->s = NULL;
    return ok;
}

static bool read_data(tg_loc loc, FILE *fp, const char *path, tg__raw_type raw, int64_t count, void *dst,
                      tg_dtype dtype, double scale)
{
    size_t esize = tg_dtype_size(dtype), per = CHUNK / (size_t)raw.size;
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        tg__fail(loc, "%s: '%s': out of memory", FUNC, path);
        return false;
    }
    bool ok = true;
    for (int64_t done = 0; ok && done < count;) {
        size_t n = (size_t)(count - done) < per ? (size_t)(count - done) : per;
        if (fread(buf, (size_t)raw.size, n, fp) != n) {
            tg__fail(loc, "%s: '%s': read error: %s", FUNC, path, ferror(fp) ? strerror(errno) : "unexpected end");
            ok = false;
        } else {
            ok = tg__raw_convert(loc, FUNC, path, buf, raw, (int64_t)n, (char *)dst + (size_t)done * esize, dtype,
                                 scale, done);
            done += (int64_t)n;
        }
    }
    free(buf);
    return ok;
}

tg_tensor *tg_read_npy_at(tg_loc loc, const char *path, tg_array_opts o)
{
    if (!path)
        return tg__fail(loc, "%s: `path` is NULL", FUNC);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return tg__fail(loc, "%s: cannot open '%s': %s", FUNC, path, strerror(errno));
    struct stat st;
    npy_header h;
    tg__raw_type raw;
    tg_tensor *t = NULL;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        tg__fail(loc, "%s: '%s' is not a regular file", FUNC, path);
    } else if (read_header(loc, fp, path, st.st_size, &h, &raw)) {
        int64_t count = tg__shape_size(&h.shape), start = ftell(fp);
        int64_t need = count * raw.size, have = st.st_size - start;
        char s[TG_SHAPE_STR_MAX];
        if (o.dtype == TG_DTYPE_AUTO)
            o.dtype = tg__raw_natural(raw);
        if (need > have)
            tg__fail(loc,
                     "%s: '%s': truncated: shape %s of '%s' needs %lld bytes of data after the %lld-byte header, "
                     "the file has %lld",
                     FUNC, path, tg__shape_str(&h.shape, s, sizeof s), h.descr, (long long)need, (long long)start,
                     (long long)have);
        else if (tg__raw_check(loc, FUNC, path, raw, o.dtype, o.scale) &&
                 (t = tg__tensor_new(loc, o.dtype, &h.shape)) &&
                 !read_data(loc, fp, path, raw, count, t->data, o.dtype, o.scale))
            t = NULL;
    }
    fclose(fp);
    return t;
}
