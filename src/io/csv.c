/* Numeric CSV files into a feature matrix and an optional label vector. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io_impl.h"

static const char *FUNC = "tg_read_csv";

typedef struct {
    char *s;
    size_t len;
    bool quoted;
} field;

typedef struct {
    tg_loc loc;
    const char *path;
    tg_csv_opts o;
    locale_t c_locale;
    field *fields; /* the current line's fields (pointing into its buffer) */
    int n_fields, cap_fields;
    char **names;   /* header names, or NULL */
    int n_cols;     /* from the first line */
    int first_line; /* its line number */
    int label;      /* column of the labels, or -1 */
    double *x, *y;  /* values read so far */
    size_t n_x, cap_x, n_y, cap_y;
} reader;

static bool push(double **a, size_t *n, size_t *cap, double v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        double *p = realloc(*a, c * sizeof *p);
        if (!p)
            return false;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return true;
}

static bool add_field(reader *r, char *s, size_t len, bool quoted)
{
    if (r->n_fields == r->cap_fields) {
        int c = r->cap_fields ? r->cap_fields * 2 : 16;
        field *p = realloc(r->fields, (size_t)c * sizeof *p);
        if (!p) {
            tg__fail(r->loc, "%s: '%s': out of memory", FUNC, r->path);
            return false;
        }
        r->fields = p;
        r->cap_fields = c;
    }
    s[len] = 0;
    r->fields[r->n_fields++] = (field){s, len, quoted};
    return true;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Whether c ends a field: the delimiter, or with TG_CSV_WHITESPACE any blank. */
static bool is_sep(char c, char d) { return d == TG_CSV_WHITESPACE ? is_blank(c) : c == d; }

/* Splits a line (without its end) into fields, in place: fields are NUL-terminated,
 * unquoted ones trimmed of blanks, quoted ones unescaped. */
static bool split(reader *r, char *line, size_t len, int lineno)
{
    char d = r->o.delimiter;
    size_t i = 0;
    r->n_fields = 0;
    for (;;) {
        while (i < len && is_blank(line[i]) && (line[i] != d || d == TG_CSV_WHITESPACE))
            i++;
        if (i < len && line[i] == '"') {
            size_t start = ++i, out = start;
            for (;;) {
                if (i >= len) {
                    tg__fail(r->loc,
                             "%s: '%s' line %d, column %d: a quoted field runs past the end of the line "
                             "(fields that span lines are not supported)",
                             FUNC, r->path, lineno, r->n_fields + 1);
                    return false;
                }
                if (line[i] == '"' && i + 1 < len && line[i + 1] == '"') {
                    line[out++] = '"';
                    i += 2;
                } else if (line[i] == '"') {
                    i++;
                    break;
                } else {
                    line[out++] = line[i++];
                }
            }
            while (i < len && is_blank(line[i]) && d != TG_CSV_WHITESPACE && line[i] != d)
                i++;
            if (i < len && !is_sep(line[i], d)) {
                tg__fail(r->loc, "%s: '%s' line %d, column %d: text after the closing quote of a quoted field", FUNC,
                         r->path, lineno, r->n_fields + 1);
                return false;
            }
            if (d == TG_CSV_WHITESPACE) /* a run of blanks is one separator; none ends the line */
                while (i + 1 < len && is_blank(line[i + 1]))
                    i++;
            bool more = i < len && !(d == TG_CSV_WHITESPACE && i + 1 == len);
            if (!add_field(r, line + start, out - start, true))
                return false;
            if (!more)
                return true;
            i++;
        } else {
            size_t start = i;
            while (i < len && !is_sep(line[i], d))
                i++;
            size_t end = i;
            while (end > start && is_blank(line[end - 1]))
                end--;
            if (d == TG_CSV_WHITESPACE)
                while (i + 1 < len && is_blank(line[i + 1]))
                    i++;
            bool more = i < len && !(d == TG_CSV_WHITESPACE && i + 1 == len);
            if (!add_field(r, line + start, end - start, false))
                return false;
            if (!more)
                return true;
            i++;
        }
    }
}

static const char *col_name(const reader *r, int c, char *buf, size_t size)
{
    if (r->names)
        snprintf(buf, size, " (\"%.60s\")", r->names[c]);
    else
        buf[0] = 0;
    return buf;
}

static bool header_line(reader *r)
{
    r->names = calloc((size_t)r->n_fields, sizeof *r->names);
    if (!r->names) {
        tg__fail(r->loc, "%s: '%s': out of memory", FUNC, r->path);
        return false;
    }
    for (int c = 0; c < r->n_fields; c++)
        if (!(r->names[c] = strdup(r->fields[c].s))) {
            tg__fail(r->loc, "%s: '%s': out of memory", FUNC, r->path);
            return false;
        }
    return true;
}

/* The label column, once the number of columns is known. */
static bool find_label(reader *r)
{
    r->label = -1;
    if (r->o.label) {
        for (int c = 0; c < r->n_cols; c++) {
            if (strcmp(r->names[c], r->o.label))
                continue;
            if (r->label >= 0) {
                tg__fail(r->loc,
                         "%s: '%s': two columns are named \"%s\" (columns %d and %d); pass .label_index "
                         "instead",
                         FUNC, r->path, r->o.label, r->label + 1, c + 1);
                return false;
            }
            r->label = c;
        }
        if (r->label < 0) {
            char list[512];
            size_t n = 0;
            for (int c = 0; c < r->n_cols && n < sizeof list - 80; c++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%.40s\"", c ? ", " : "", r->names[c]);
            tg__fail(r->loc, "%s: '%s': no column is named \"%s\"; the header (line %d) names %s", FUNC, r->path,
                     r->o.label, r->first_line, list);
            return false;
        }
    } else if (r->o.label_index != TG_CSV_NO_LABEL) {
        int k = r->o.label_index < 0 ? r->n_cols + r->o.label_index : r->o.label_index;
        if (k < 0 || k >= r->n_cols) {
            tg__fail(r->loc,
                     "%s: '%s': .label_index = %d is out of range for %d columns (0 to %d, or -1 to -%d from "
                     "the end)",
                     FUNC, r->path, r->o.label_index, r->n_cols, r->n_cols - 1, r->n_cols);
            return false;
        }
        r->label = k;
    }
    if (r->label >= 0 && r->n_cols == 1) {
        tg__fail(r->loc, "%s: '%s': the only column is the label: no feature columns are left", FUNC, r->path);
        return false;
    }
    return true;
}

static bool data_line(reader *r, int lineno)
{
    char name[80];
    if (r->n_fields != r->n_cols) {
        tg__fail(r->loc, "%s: '%s' line %d has %d fields, but line %d has %d (every row needs the same number)", FUNC,
                 r->path, lineno, r->n_fields, r->first_line, r->n_cols);
        return false;
    }
    for (int c = 0; c < r->n_cols; c++) {
        const field *f = &r->fields[c];
        char *end;
        double v = f->len ? strtod_l(f->s, &end, r->c_locale) : 0;
        if (!f->len) {
            tg__fail(r->loc,
                     "%s: '%s' line %d, column %d%s: the cell is empty (missing values are not supported; "
                     "fill them in first)",
                     FUNC, r->path, lineno, c + 1, col_name(r, c, name, sizeof name));
            return false;
        }
        if (end != f->s + f->len) {
            tg__fail(r->loc,
                     "%s: '%s' line %d, column %d%s: \"%.40s\" is not a number (only numeric columns are "
                     "read: drop or encode text columns first%s)",
                     FUNC, r->path, lineno, c + 1, col_name(r, c, name, sizeof name), f->s,
                     lineno == r->first_line ? "; if this line names the columns, pass .header = true" : "");
            return false;
        }
        if (!(c == r->label ? push(&r->y, &r->n_y, &r->cap_y, v) : push(&r->x, &r->n_x, &r->cap_x, v))) {
            tg__fail(r->loc, "%s: '%s': out of memory at line %d", FUNC, r->path, lineno);
            return false;
        }
    }
    return true;
}

typedef enum { LINE_OK, LINE_END, LINE_TOO_LONG, LINE_NUL, LINE_NO_MEMORY, LINE_BAD_GZIP } line_status;

/* The bytes of the file: read as they are, or inflated when it is gzip-compressed (told by
 * its first two bytes, which are read once and handed back first). */
typedef struct {
    FILE *fp;
    z_stream z;
    bool gzip, z_end, z_error;
    unsigned char in[1 << 16], out[1 << 16];
    size_t out_pos, out_len;
    int peek[2], n_peek, i_peek;
} source;

static int source_getc(source *src)
{
    if (src->i_peek < src->n_peek)
        return src->peek[src->i_peek++];
    if (!src->gzip)
        return getc_unlocked(src->fp);
    while (src->out_pos == src->out_len) {
        if (src->z_end || src->z_error)
            return EOF;
        if (src->z.avail_in == 0) {
            size_t got = fread(src->in, 1, sizeof src->in, src->fp);
            if (got == 0) {
                src->z_error = true; /* the stream ends before its end: truncated */
                return EOF;
            }
            src->z.next_in = src->in;
            src->z.avail_in = (uInt)got;
        }
        src->z.next_out = src->out;
        src->z.avail_out = sizeof src->out;
        int rc = inflate(&src->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            /* gzip members may follow one another (cat a.gz b.gz), as gunzip reads them */
            int c = src->z.avail_in ? 0x1f : getc_unlocked(src->fp);
            if (c != EOF) {
                if (!src->z.avail_in)
                    ungetc(c, src->fp);
                src->out_len = sizeof src->out - src->z.avail_out;
                src->out_pos = 0;
                inflateReset(&src->z);
                continue;
            }
            src->z_end = true;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            src->z_error = true;
            return EOF;
        }
        src->out_len = sizeof src->out - src->z.avail_out;
        src->out_pos = 0;
    }
    return src->out[src->out_pos++];
}

/* Reads the first two bytes; true when they open a gzip stream (set up to inflate it). */
static bool source_open(source *src, FILE *fp)
{
    src->fp = fp;
    for (int i = 0; i < 2; i++) {
        int c = getc_unlocked(fp);
        if (c == EOF)
            break;
        src->peek[src->n_peek++] = c;
    }
    if (src->n_peek == 2 && src->peek[0] == 0x1f && src->peek[1] == 0x8b) {
        src->gzip = true;
        src->n_peek = 0;
        src->z.next_in = src->in;
        src->in[0] = 0x1f;
        src->in[1] = 0x8b;
        src->z.avail_in = 2;
        if (inflateInit2(&src->z, 15 + 16) != Z_OK) /* 16: a gzip wrapper */
            return false;
    }
    return true;
}

static void source_close(source *src)
{
    if (src->gzip)
        inflateEnd(&src->z);
}

/* One line into *buf (its end included, NUL-terminated), at most TG_CSV_MAX_LINE bytes:
 * getline would grow without bound on a file or a pipe with no line ends (/dev/zero).
 * A NUL byte stops it at once: not a text file. */
static line_status read_line(source *fp, char **buf, size_t *cap, size_t *len)
{
    size_t n = 0;
    int c;
    while ((c = source_getc(fp)) != EOF) {
        if (n + 2 > *cap) {
            size_t want = *cap ? *cap * 2 : 4096;
            if (n >= TG_CSV_MAX_LINE)
                return LINE_TOO_LONG;
            char *p = realloc(*buf, want > TG_CSV_MAX_LINE + 2 ? TG_CSV_MAX_LINE + 2 : want);
            if (!p)
                return LINE_NO_MEMORY;
            *buf = p;
            *cap = want > TG_CSV_MAX_LINE + 2 ? TG_CSV_MAX_LINE + 2 : want;
        }
        if (c == 0)
            return LINE_NUL;
        (*buf)[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (c == EOF && fp->z_error)
        return LINE_BAD_GZIP; /* the line read so far may be cut short: not a row */
    if (*buf)
        (*buf)[n] = 0;
    *len = n;
    return n || c != EOF ? LINE_OK : LINE_END;
}

static bool line_error(reader *r, line_status st, int lineno)
{
    if (st == LINE_TOO_LONG)
        tg__fail(r->loc,
                 "%s: '%s' line %d is longer than %d bytes, the limit for one row: not a CSV file of "
                 "numbers?",
                 FUNC, r->path, lineno, TG_CSV_MAX_LINE);
    else if (st == LINE_BAD_GZIP)
        tg__fail(r->loc, "%s: '%s': corrupt or truncated gzip data at line %d", FUNC, r->path, lineno);
    else if (st == LINE_NUL)
        tg__fail(r->loc, "%s: '%s' line %d contains a NUL byte: not a text file", FUNC, r->path, lineno);
    else
        tg__fail(r->loc, "%s: '%s': out of memory at line %d", FUNC, r->path, lineno);
    return false;
}

static bool read_lines(reader *r, source *fp)
{
    char *line = NULL;
    size_t cap = 0, n;
    int lineno = 0;
    bool ok = true, have_first = false;
    line_status st;
    while (ok && (st = read_line(fp, &line, &cap, &n)) != LINE_END) {
        lineno++;
        if (st != LINE_OK) {
            ok = line_error(r, st, lineno);
            break;
        }
        char *s = line;
        ssize_t len = (ssize_t)n;
        if (lineno <= r->o.skip_rows)
            continue; /* scikit-learn's files begin with a line of counts */
        if (lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
            s += 3;
            len -= 3;
        }
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < (size_t)len && (is_blank(s[k])))
            k++;
        if (k == (size_t)len)
            continue; /* blank line */
        ok = split(r, s, (size_t)len, lineno);
        if (ok && !have_first) {
            have_first = true;
            r->n_cols = r->n_fields;
            r->first_line = lineno;
            if (r->o.header) {
                ok = header_line(r) && find_label(r);
                continue;
            }
            ok = find_label(r);
        }
        if (ok)
            ok = data_line(r, lineno);
    }
    if (ok && ferror(fp->fp)) {
        tg__fail(r->loc, "%s: '%s': read error after line %d: %s", FUNC, r->path, lineno, strerror(errno));
        ok = false;
    } else if (ok && fp->z_error) {
        tg__fail(r->loc, "%s: '%s': corrupt or truncated gzip data after line %d", FUNC, r->path, lineno);
        ok = false;
    }
    free(line);
    return ok;
}

static bool check_opts(tg_loc loc, const char *path, const tg_csv_opts *o)
{
    if (!path)
        return tg__fail(loc, "%s: `path` is NULL", FUNC), false;
    if (!o->delimiter || o->delimiter == '"' || o->delimiter == '\n' || o->delimiter == '\r')
        return tg__fail(loc, "%s: '%s': .delimiter cannot be NUL, a quote or a line end", FUNC, path), false;
    if (o->skip_rows < 0)
        return tg__fail(loc, "%s: '%s': .skip_rows must be 0 or more (got %d)", FUNC, path, o->skip_rows), false;
    if (o->dtype != TG_F32 && o->dtype != TG_F64)
        return tg__fail(loc, "%s: '%s': .dtype must be TG_F32 or TG_F64 (got %s)", FUNC, path, tg_dtype_name(o->dtype)),
               false;
    if (o->label && o->label_index != TG_CSV_NO_LABEL)
        return tg__fail(loc, "%s: '%s': give the label column by .label or by .label_index, not both", FUNC, path),
               false;
    if (o->label && !o->header)
        return tg__fail(loc, "%s: '%s': .label = \"%s\" names a column, which needs .header = true", FUNC, path,
                        o->label),
               false;
    return true;
}

static bool labels_integral(const double *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(y[i] == floor(y[i]) && y[i] >= INT32_MIN && y[i] <= INT32_MAX))
            return false;
    return true;
}

static tg_tensor *to_tensor(tg_loc loc, const double *v, tg_dtype dtype, tg_shape shape)
{
    tg_tensor *t = tg__tensor_new(loc, dtype, &shape);
    if (t)
        for (int64_t i = 0; i < t->size; i++)
            tg__set(t, i, v[i]);
    return t;
}

static tg_csv build(reader *r)
{
    tg_csv out = {0};
    int64_t rows = r->n_cols ? (int64_t)(r->n_x + r->n_y) / r->n_cols : 0, features = r->n_cols - (r->label >= 0);
    if (rows == 0) {
        tg__fail(r->loc, "%s: '%s': %s", FUNC, r->path,
                 r->first_line ? "the header is the only line: there are no rows of data" : "the file is empty");
        return out;
    }
    tg_tensor *x = to_tensor(r->loc, r->x, r->o.dtype, TG_SHAPE(rows, features)), *y = NULL;
    if (x && r->label >= 0)
        y = to_tensor(r->loc, r->y, labels_integral(r->y, r->n_y) ? TG_I32 : r->o.dtype, TG_SHAPE(rows));
    if (x && (y || r->label < 0))
        out = (tg_csv){.x = x, .y = y, .rows = rows, .features = features};
    return out;
}

tg_csv tg_read_csv_at(tg_loc loc, const char *path, tg_csv_opts o)
{
    tg_csv out = {0};
    if (!check_opts(loc, path, &o))
        return out;
    FILE *fp = tg__open_data(loc, FUNC, path);
    if (!fp)
        return out;
    reader r = {.loc = loc, .path = path, .o = o, .label = -1};
    source *src = calloc(1, sizeof *src);
    r.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!src)
        tg__fail(loc, "%s: '%s': out of memory", FUNC, path);
    else if (!r.c_locale)
        tg__fail(loc, "%s: '%s': cannot make the C locale for numbers: %s", FUNC, path, strerror(errno));
    else if (!source_open(src, fp))
        tg__fail(loc, "%s: '%s': cannot start zlib to read its gzip data", FUNC, path);
    else if (read_lines(&r, src))
        out = build(&r);
    if (src)
        source_close(src);
    free(src);
    fclose(fp);
    if (r.c_locale)
        freelocale(r.c_locale);
    if (r.names)
        for (int c = 0; c < r.n_cols; c++)
            free(r.names[c]);
    free(r.names);
    free(r.fields);
    free(r.x);
    free(r.y);
    return out;
}
