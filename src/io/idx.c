/* IDX files (LeCun's MNIST format), plain or gzip-compressed, read through zlib.
 *
 * Layout: 0x00 0x00, a type code, the rank, one big-endian uint32 per dimension, then
 * the elements, big-endian, in row-major order, to the end of the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io_impl.h"

#define CHUNK (1 << 20) /* bytes decoded per read; a multiple of every element size */

typedef struct {
    gzFile gz;
    const char *path;
    bool gzip;
    int64_t file_size; /* on disk (compressed when gzip) */
    tg__raw_type raw;
    tg_shape shape;
    int64_t count;        /* elements */
    int64_t header_bytes; /* 4 + 4 * rank */
    int64_t pos;          /* decoded bytes read so far */
} idx_file;

static const char *FUNC = "tg_read_idx";

/* Reads up to n bytes; returns the count read, or -1 with an error (corrupt gzip data). */
static int64_t idx_gzread(tg_loc loc, idx_file *f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        unsigned want = n - got > CHUNK ? CHUNK : (unsigned)(n - got);
        int r = gzread(f->gz, (char *)buf + got, want);
        int err = Z_OK;
        const char *msg = r <= 0 ? gzerror(f->gz, &err) : NULL;
        if (r < 0 || (r == 0 && err != Z_OK && err != Z_BUF_ERROR)) {
            tg__fail(loc, "%s: '%s': %s after %lld bytes: %s", FUNC, f->path,
                     f->gzip ? "corrupt gzip data" : "read error", (long long)(f->pos + (int64_t)got),
                     err == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0)
            break; /* the end, or a gzip stream cut short (Z_BUF_ERROR): the caller says truncated */
        got += (size_t)r;
    }
    f->pos += (int64_t)got;
    return (int64_t)got;
}

static bool idx_open(tg_loc loc, idx_file *f, const char *path)
{
    *f = (idx_file){.path = path};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tg__fail(loc, "%s: cannot open '%s': %s", FUNC, path, strerror(errno));
        return false;
    }
    struct stat st;
    unsigned char magic[2] = {0, 0};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        tg__fail(loc, "%s: '%s' is not a regular file", FUNC, path);
        close(fd);
        return false;
    }
    f->file_size = st.st_size;
    f->gzip = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        tg__fail(loc, "%s: '%s': out of memory opening it", FUNC, path);
        return false;
    }
    gzbuffer(f->gz, 1 << 17);
    return true;
}

static void idx_close(idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

static bool idx_type(tg_loc loc, idx_file *f, int code)
{
    switch (code) {
    case 0x08: f->raw = (tg__raw_type){TG__RAW_UINT, 1, true}; return true;
    case 0x09: f->raw = (tg__raw_type){TG__RAW_INT, 1, true}; return true;
    case 0x0B: f->raw = (tg__raw_type){TG__RAW_INT, 2, true}; return true;
    case 0x0C: f->raw = (tg__raw_type){TG__RAW_INT, 4, true}; return true;
    case 0x0D: f->raw = (tg__raw_type){TG__RAW_FLOAT, 4, true}; return true;
    case 0x0E: f->raw = (tg__raw_type){TG__RAW_FLOAT, 8, true}; return true;
    default:
        tg__fail(loc,
                 "%s: '%s': byte 2: unknown IDX type code 0x%02X (known: 0x08 u8, 0x09 i8, 0x0B i16, "
                 "0x0C i32, 0x0D f32, 0x0E f64)",
                 FUNC, f->path, (unsigned)code);
        return false;
    }
}

static const char *what_file(const idx_file *f) { return f->gzip ? "the decompressed file" : "the file"; }

static bool idx_header(tg_loc loc, idx_file *f)
{
    unsigned char h[4 + 4 * 255];
    int64_t got = idx_gzread(loc, f, h, 4);
    if (got < 0)
        return false;
    if (got < 4) {
        tg__fail(loc, "%s: '%s': too short to be an IDX file: %s has %lld bytes, the magic number alone takes 4", FUNC,
                 f->path, what_file(f), (long long)got);
        return false;
    }
    if (h[0] || h[1]) {
        tg__fail(loc, "%s: '%s': not an IDX file: it starts with 0x%02X%02X, an IDX file with 0x0000", FUNC, f->path,
                 h[0], h[1]);
        return false;
    }
    if (!idx_type(loc, f, h[2]))
        return false;
    int rank = h[3];
    if (rank > TG_MAX_RANK) {
        tg__fail(loc, "%s: '%s': byte 3: rank %d, but tapegrad tensors have at most %d dimensions", FUNC, f->path, rank,
                 TG_MAX_RANK);
        return false;
    }
    f->header_bytes = 4 + 4 * rank;
    got = idx_gzread(loc, f, h + 4, (size_t)(4 * rank));
    if (got < 0)
        return false;
    if (got < 4 * rank) {
        tg__fail(loc, "%s: '%s': truncated in the dimensions: rank %d needs %d bytes after byte 4, %s has %lld", FUNC,
                 f->path, rank, 4 * rank, what_file(f), (long long)got);
        return false;
    }
    f->shape.rank = rank;
    f->count = 1;
    for (int i = 0; i < rank; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        int64_t d = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        f->shape.dims[i] = d;
        if (d && f->count > INT64_MAX / 16 / d) {
            char s[TG_SHAPE_STR_MAX];
            f->shape.rank = i + 1;
            tg__fail(loc, "%s: '%s': the dimensions %s... overflow: no file holds that many elements", FUNC, f->path,
                     tg__shape_str(&f->shape, s, sizeof s));
            return false;
        }
        f->count *= d;
    }
    if (tg__shape_size(&f->shape) < 0) { /* a zero among huge dims: no tensor has that shape */
        char s[TG_SHAPE_STR_MAX];
        tg__fail(loc,
                 "%s: '%s': the dimensions %s are too large for a tensor (their product, zeros counted as "
                 "ones, passes %lld)",
                 FUNC, f->path, tg__shape_str(&f->shape, s, sizeof s), (long long)TG_MAX_ELEMENTS);
        return false;
    }
    return true;
}

/* The whole file must be header plus data; for gzip data, which cannot be sized before
 * it is decoded, a bound from deflate's best ratio (1032:1) refuses absurd headers early. */
static bool idx_check_size(tg_loc loc, const idx_file *f)
{
    int64_t data = f->count * f->raw.size, expected = f->header_bytes + data;
    char s[TG_SHAPE_STR_MAX];
    tg__shape_str(&f->shape, s, sizeof s);
    if (!f->gzip && f->file_size != expected) {
        tg__fail(loc,
                 "%s: '%s': %s: the header (%s, shape %s) promises %lld bytes (%lld of header, %lld of data), "
                 "but the file has %lld",
                 FUNC, f->path, f->file_size < expected ? "truncated" : "extra bytes after the data",
                 tg__raw_name(f->raw), s, (long long)expected, (long long)f->header_bytes, (long long)data,
                 (long long)f->file_size);
        return false;
    }
    if (f->gzip && data / 1032 > f->file_size + 1024) {
        tg__fail(loc,
                 "%s: '%s': truncated: the header (%s, shape %s) promises %lld bytes of data, more than %lld "
                 "bytes of gzip data can hold",
                 FUNC, f->path, tg__raw_name(f->raw), s, (long long)data, (long long)f->file_size);
        return false;
    }
    return true;
}

/* Decodes the data into dst (count elements of dtype). */
static bool idx_body(tg_loc loc, idx_file *f, void *dst, tg_dtype dtype, double scale)
{
    size_t esize = tg_dtype_size(dtype);
    int64_t total = f->count * f->raw.size, done = 0;
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        tg__fail(loc, "%s: '%s': out of memory", FUNC, f->path);
        return false;
    }
    bool ok = true;
    while (ok && done < total) {
        size_t want = total - done > CHUNK ? CHUNK : (size_t)(total - done);
        int64_t got = idx_gzread(loc, f, buf, want);
        if (got < 0) {
            ok = false;
        } else if ((size_t)got < want) {
            char s[TG_SHAPE_STR_MAX];
            tg__fail(loc,
                     "%s: '%s': truncated: the header (%s, shape %s) promises %lld bytes of data after the "
                     "%lld-byte header, but %s has %lld",
                     FUNC, f->path, tg__raw_name(f->raw), tg__shape_str(&f->shape, s, sizeof s), (long long)total,
                     (long long)f->header_bytes, what_file(f), (long long)(done + got));
            ok = false;
        } else {
            int64_t first = done / f->raw.size;
            ok = tg__raw_convert(loc, FUNC, f->path, buf, f->raw, (int64_t)want / f->raw.size,
                                 (char *)dst + (size_t)first * esize, dtype, scale, first);
            done += (int64_t)want;
        }
    }
    if (ok && f->gzip) {
        int64_t extra = idx_gzread(loc, f, buf, 1);
        int err = Z_OK;
        gzerror(f->gz, &err);
        if (extra != 0) {
            ok = false;
            if (extra > 0)
                tg__fail(loc, "%s: '%s': extra bytes after the %lld bytes of data the header promises", FUNC, f->path,
                         (long long)total);
        } else if (err == Z_BUF_ERROR) {
            ok = false; /* all the data came, but not the checksum that vouches for it */
            tg__fail(loc, "%s: '%s': truncated: the gzip data ends before its checksum", FUNC, f->path);
        }
    }
    free(buf);
    return ok;
}

static bool idx_prepare(tg_loc loc, idx_file *f, const char *path, tg_dtype *dtype, double scale)
{
    if (!path) {
        tg__fail(loc, "%s: `path` is NULL", FUNC);
        return false;
    }
    if (!idx_open(loc, f, path))
        return false;
    if (!idx_header(loc, f) || !idx_check_size(loc, f))
        return false;
    if (*dtype == TG_DTYPE_AUTO)
        *dtype = TG_F32;
    return tg__raw_check(loc, FUNC, path, f->raw, *dtype, scale);
}

tg_tensor *tg_read_idx_at(tg_loc loc, const char *path, tg_array_opts o)
{
    idx_file f = {0};
    tg_tensor *t = NULL;
    if (idx_prepare(loc, &f, path, &o.dtype, o.scale)) {
        t = tg__tensor_new(loc, o.dtype, &f.shape);
        if (t && !idx_body(loc, &f, t->data, o.dtype, o.scale))
            t = NULL; /* the tensor stays in its scope and goes with it */
    }
    idx_close(&f);
    return t;
}

void *tg__idx_load(tg_loc loc, const char *path, tg_dtype dtype, double scale, tg_shape *shape, tg__raw_type *raw)
{
    idx_file f = {0};
    void *data = NULL;
    if (idx_prepare(loc, &f, path, &dtype, scale)) {
        size_t bytes = (size_t)f.count * tg_dtype_size(dtype);
        data = malloc(bytes ? bytes : 1);
        if (!data)
            tg__fail(loc, "%s: '%s': out of memory for %zu bytes", FUNC, path, bytes);
        else if (!idx_body(loc, &f, data, dtype, scale)) {
            free(data);
            data = NULL;
        }
        *shape = f.shape;
        *raw = f.raw;
    }
    idx_close(&f);
    return data;
}
