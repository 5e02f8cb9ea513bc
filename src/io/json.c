/* A strict JSON parser (RFC 8259) for safetensors headers: every value kind, strings with
 * all escapes (surrogate pairs to UTF-8), UTF-8 checked, nesting bounded, no extensions
 * (no comments, trailing commas, NaN, leading zeros or single quotes). And the writer
 * every JSON tapegrad makes goes through, so every string is escaped. */
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "io_impl.h"

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len, pos;
    tg__json *doc;
    char *sp; /* where the next decoded string goes */
    char *err;
    size_t err_size, *err_pos;
    int depth;
    locale_t c_locale; /* made on the first non-integer number */
} parser;

/* The offset of the first byte that is not part of valid UTF-8, or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0)
            return i;
        uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1F : n == 2 ? c & 0x0F : c & 0x07;
        for (int k = 1; k <= n; k++) {
            if (i + (size_t)k >= len || (s[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += (size_t)n + 1;
    }
    return len;
}

bool tg__utf8_valid(const char *s, size_t len) { return utf8_invalid_at((const unsigned char *)s, len) == len; }

static bool fail(parser *p, const char *msg)
{
    snprintf(p->err, p->err_size, "%s", msg);
    *p->err_pos = p->pos;
    return false;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len &&
           (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int32_t new_node(parser *p, tg__json_kind kind)
{
    tg__json *d = p->doc;
    if (d->n == d->cap) {
        if (d->cap >= INT32_MAX / 2) {
            fail(p, "too many values");
            return -1;
        }
        int32_t cap = d->cap ? d->cap * 2 : 64;
        tg__json_node *n = realloc(d->nodes, (size_t)cap * sizeof *n);
        if (!n) {
            fail(p, "out of memory");
            return -1;
        }
        d->nodes = n;
        d->cap = cap;
    }
    d->nodes[d->n] = (tg__json_node){.kind = kind, .next = -1, .child = -1, .pos = p->pos};
    return d->n++;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int h = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static char *put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* A \uXXXX escape at p->pos (just after the backslash and 'u'), with its pair if any. */
static bool unicode_escape(parser *p, char **o)
{
    if (p->len - p->pos < 4 || hex4(p->s + p->pos) < 0)
        return fail(p, "\\u must be followed by 4 hex digits");
    uint32_t cp = (uint32_t)hex4(p->s + p->pos);
    p->pos += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(p, "a lone low surrogate in a \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        int lo = p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u' ? hex4(p->s + p->pos + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, "a high surrogate in a \\u escape without its low surrogate");
        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        p->pos += 6;
    }
    *o = put_utf8(*o, cp);
    return true;
}

/* A string at p->pos (the opening quote); its decoded bytes go to the string buffer. */
static bool parse_string(parser *p, const char **out, size_t *out_len)
{
    char *o = p->sp, *start = o;
    p->pos++;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, "a control character inside a string (it must be escaped)");
        if (c != '\\') {
            *o++ = (char)c;
            p->pos++;
            continue;
        }
        if (++p->pos >= p->len)
            return fail(p, "unterminated escape");
        char e = p->s[p->pos++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            *o++ = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
        } else if (e == 'u') {
            if (!unicode_escape(p, &o))
                return false;
        } else {
            p->pos -= 2; /* at the backslash */
            return fail(p, "an invalid escape in a string");
        }
    }
    p->pos++;
    *o++ = 0;
    p->sp = o;
    *out = start;
    *out_len = (size_t)(o - start - 1);
    return true;
}

static bool parse_number(parser *p, int32_t node)
{
    size_t start = p->pos;
    const char *s = p->s;
    bool neg = s[p->pos] == '-', is_int = true, overflow = false;
    if (neg)
        p->pos++;
    if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
        return fail(p, "a '-' must be followed by digits");
    if (s[p->pos] == '0' && p->pos + 1 < p->len && s[p->pos + 1] >= '0' && s[p->pos + 1] <= '9')
        return fail(p, "a number with a leading zero");
    uint64_t mag = 0;
    while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9') {
        unsigned dgt = (unsigned)(s[p->pos++] - '0');
        overflow |= mag > (UINT64_MAX - dgt) / 10;
        mag = mag * 10 + dgt;
    }
    if (p->pos < p->len && s[p->pos] == '.') {
        is_int = false;
        p->pos++;
        if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
            return fail(p, "a '.' must be followed by digits");
        while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        is_int = false;
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
            return fail(p, "an exponent must have digits");
        while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
            p->pos++;
    }
    tg__json_node *n = &p->doc->nodes[node];
    n->is_int = is_int && !overflow && mag <= (uint64_t)INT64_MAX + neg;
    if (n->is_int) {
        n->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        n->d = (double)n->i;
        return true;
    }
    char buf[64];
    size_t k = p->pos - start < sizeof buf - 1 ? p->pos - start : sizeof buf - 1;
    memcpy(buf, s + start, k);
    buf[k] = 0;
    if (!p->c_locale && !(p->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0)))
        return fail(p, "out of memory");
    n->d = strtod_l(buf, NULL, p->c_locale);
    return true;
}

static bool parse_value(parser *p, int32_t *out);

/* An array or object at p->pos; members of objects get their keys. */
static bool parse_container(parser *p, int32_t node, bool object)
{
    char close = object ? '}' : ']';
    if (++p->depth > MAX_DEPTH)
        return fail(p, "nested more than 64 levels deep");
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return true;
    }
    int32_t last = -1;
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(p);
        if (object) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, "expected a string key");
            if (!parse_string(p, &key, &key_len))
                return false;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fail(p, "expected ':' after a key");
            p->pos++;
        }
        int32_t child;
        if (!parse_value(p, &child))
            return false;
        tg__json_node *nodes = p->doc->nodes;
        nodes[child].key = key;
        nodes[child].key_len = key_len;
        if (last < 0)
            nodes[node].child = child;
        else
            nodes[last].next = child;
        nodes[node].count++;
        last = child;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            return true;
        }
        return fail(p, object ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array");
    }
}

static bool literal(parser *p, const char *word, tg__json_kind kind, int32_t *out)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
        return fail(p, "unexpected text where a value was expected");
    if ((*out = new_node(p, kind)) < 0)
        return false;
    p->pos += n;
    return true;
}

static bool parse_value(parser *p, int32_t *out)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, "unexpected end where a value was expected");
    char c = p->s[p->pos];
    switch (c) {
    case 't': return literal(p, "true", TG__J_TRUE, out);
    case 'f': return literal(p, "false", TG__J_FALSE, out);
    case 'n': return literal(p, "null", TG__J_NULL, out);
    case '{':
    case '[': return (*out = new_node(p, c == '{' ? TG__J_OBJ : TG__J_ARR)) >= 0 && parse_container(p, *out, c == '{');
    case '"': {
        const char *str;
        size_t len;
        if ((*out = new_node(p, TG__J_STR)) < 0 || !parse_string(p, &str, &len))
            return false;
        p->doc->nodes[*out].str = str;
        p->doc->nodes[*out].str_len = len;
        return true;
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return (*out = new_node(p, TG__J_NUM)) >= 0 && parse_number(p, *out);
        return fail(p, "unexpected character where a value was expected");
    }
}

bool tg__json_parse(const char *text, size_t len, tg__json *doc, char *err, size_t err_size, size_t *err_pos)
{
    *doc = (tg__json){0};
    size_t dummy;
    parser p = {
        .s = text, .len = len, .doc = doc, .err = err, .err_size = err_size, .err_pos = err_pos ? err_pos : &dummy};
    p.pos = utf8_invalid_at((const unsigned char *)text, len);
    if (p.pos != len)
        return fail(&p, "not valid UTF-8");
    p.pos = 0;
    doc->strings = malloc(len + 1);
    if (!doc->strings)
        return fail(&p, "out of memory");
    p.sp = doc->strings;
    int32_t root;
    bool ok = parse_value(&p, &root);
    if (ok) {
        skip_ws(&p);
        if (p.pos != len)
            ok = fail(&p, "unexpected text after the end of the JSON value");
    }
    if (p.c_locale)
        freelocale(p.c_locale);
    return ok;
}

void tg__json_free(tg__json *doc)
{
    free(doc->nodes);
    free(doc->strings);
    *doc = (tg__json){0};
}

/* ---- the writer: a growable string and JSON strings ---------------------------------- */
void tg__jbuf_put(tg__jbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void tg__jbuf_printf(tg__jbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    tg__jbuf_put(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void tg__jbuf_str(tg__jbuf *b, const char *s, size_t n)
{
    tg__jbuf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            tg__jbuf_put(b, e, 2);
        } else if (c < 0x20) {
            tg__jbuf_printf(b, "\\u%04x", c);
        } else {
            tg__jbuf_put(b, (const char *)&c, 1);
        }
    }
    tg__jbuf_put(b, "\"", 1);
}
