/* The one reader of tests/fixtures: golden values written by the scripts of tools/ from
 * an independent framework (PyTorch, numpy). Every fixture is lines of records:
 *
 *   # a comment                      (and blank lines: skipped)
 *   TAG REST...                      a record: its tag, then what the tag says
 *   NAME RANK DIM... : V V ...       an array, as many records write it (some without NAME)
 *
 * usually grouped in `case NAME` ... `end`. A test loops over the records with fx_next
 * and parses REST with the helpers below, which advance a cursor and say whether the text
 * had what was asked. fx_fail keeps the first error as "FILE line N: what". */
#ifndef TG_TEST_FIXTURE_H
#define TG_TEST_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tapegrad.h>

#ifndef TG_FIXTURES_DIR
#error "TG_FIXTURES_DIR must name tests/fixtures (CMake defines it for the tests)"
#endif

enum { FX_LINE_MAX = 65536 };

typedef struct fx_reader {
    FILE *f;
    bool own;       /* opened by fx_open: fx_close closes it */
    char name[128]; /* for messages */
    int line;       /* of the record last read */
    bool failed;
    char error[1400]; /* the first error, "" when none */
    char buf[FX_LINE_MAX];
} fx_reader;

static inline bool fx_fail(fx_reader *r, const char *fmt, ...)
{
    if (!r->failed) {
        int k = snprintf(r->error, sizeof r->error, "%s line %d: ", r->name, r->line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error + k, sizeof r->error - (size_t)k, fmt, ap);
        va_end(ap);
        r->failed = true;
    }
    return false;
}

/* Reads from an open stream (a fixture in memory, for the parsers' own tests). */
static inline void fx_from(fx_reader *r, FILE *f, const char *name)
{
    memset(r, 0, offsetof(fx_reader, buf));
    r->f = f;
    snprintf(r->name, sizeof r->name, "%s", name);
}

/* Opens TG_FIXTURES_DIR/name; false with r->error naming the file and the script to run. */
static inline bool fx_open(fx_reader *r, const char *name, const char *script)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TG_FIXTURES_DIR, name);
    fx_from(r, fopen(path, "r"), name);
    r->own = true;
    if (!r->f) {
        snprintf(r->error, sizeof r->error, "cannot open %s (run /usr/bin/python3 %s)", path, script);
        r->failed = true;
    }
    return r->f != NULL;
}

static inline void fx_close(fx_reader *r)
{
    if (r->own && r->f)
        fclose(r->f);
    r->f = NULL;
}

/* The next record: its tag (at most size - 1 characters) and *rest, the text after it.
 * False at the end of the file or after an error (r->failed). */
static inline bool fx_next(fx_reader *r, char *tag, size_t size, char **rest)
{
    *rest = r->buf;
    *tag = 0;
    while (!r->failed && r->f && fgets(r->buf, sizeof r->buf, r->f)) {
        r->line++;
        if (!strchr(r->buf, '\n') && !feof(r->f))
            return fx_fail(r, "line too long");
        char *s = r->buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '#' || *s == '\n' || *s == '\r' || *s == '\0')
            continue;
        size_t n = strcspn(s, " \t\r\n");
        if (n >= size)
            return fx_fail(r, "a tag longer than %zu characters", size - 1);
        memcpy(tag, s, n);
        tag[n] = 0;
        *rest = s + n;
        return true;
    }
    return false;
}

/* ---- parsing a record's text: each helper skips blanks, reads, advances *s ------------- */
static inline char *fx_skip(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Only blanks are left. */
static inline bool fx_done(char *s)
{
    s = fx_skip(s);
    return *s == '\n' || *s == '\r' || *s == '\0';
}

static inline bool fx_word(char **s, char *out, size_t size)
{
    char *p = fx_skip(*s);
    size_t n = strcspn(p, " \t\r\n");
    if (n == 0 || n >= size)
        return false;
    memcpy(out, p, n);
    out[n] = 0;
    *s = p + n;
    return true;
}

/* A number that ends at a blank, the end of the line or `:` ("1.5x" is not one). */
static inline bool fx_number(char **s, double *out)
{
    char *p = fx_skip(*s), *end;
    double v = strtod(p, &end);
    if (end == p || !strchr(" \t\r\n:", *end))
        return false;
    *out = v;
    *s = end;
    return true;
}

static inline bool fx_int(char **s, int *out)
{
    char *p = fx_skip(*s), *end;
    long v = strtol(p, &end, 10);
    if (end == p || !strchr(" \t\r\n:", *end) || v < -1000000000L || v > 1000000000L)
        return false;
    *out = (int)v;
    *s = end;
    return true;
}

/* The literal character c (":"). */
static inline bool fx_char(char **s, char c)
{
    char *p = fx_skip(*s);
    if (*p != c)
        return false;
    *s = p + 1;
    return true;
}

/* "RANK DIM...": rank in [0, TG_MAX_RANK], dims >= 0. */
static inline bool fx_shape(char **s, tg_shape *shape)
{
    int rank;
    if (!fx_int(s, &rank) || rank < 0 || rank > TG_MAX_RANK)
        return false;
    shape->rank = rank;
    for (int i = 0; i < rank; i++) {
        double d;
        char *p = *s;
        if (!fx_number(&p, &d) || d < 0 || d != (double)(int64_t)d)
            return false;
        shape->dims[i] = (int64_t)d;
        *s = p;
    }
    return true;
}

static inline int64_t fx_size(const tg_shape *shape)
{
    int64_t n = 1;
    for (int i = 0; i < shape->rank; i++)
        n *= shape->dims[i];
    return n;
}

/* Numbers to the end of the line, at most max of them: their count, or -1 when there are
 * more or one is not a number. */
static inline int fx_numbers(char **s, double *out, int max)
{
    int n = 0;
    while (!fx_done(*s)) {
        if (n == max || !fx_number(s, &out[n]))
            return -1;
        n++;
    }
    return n;
}

/* "RANK DIM... : V..." with as many values as the shape holds (at most max). */
static inline bool fx_array(char **s, tg_shape *shape, double *v, int max)
{
    return fx_shape(s, shape) && fx_char(s, ':') && fx_numbers(s, v, max) == fx_size(shape);
}

#endif
