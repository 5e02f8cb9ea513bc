/* Text for character-level language models (`--data text:FILE`, `tapegrad generate`).
 *
 * A text file is UTF-8; its characters are Unicode code points, so "é" is one character
 * whether or not the file is ASCII. The vocabulary is the sorted set of the characters the
 * whole file uses (as Keras's text-generation examples build it), stored in the model
 * file; a character's class is its index in it. Training examples are the text cut into
 * windows of seq_len characters, one after the other (window r starts at r * seq_len),
 * each with the window one character later as its targets; the characters after the last
 * whole window (fewer than seq_len) are not used. The last fraction of the windows,
 * in text order, is the held-out text. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* One code point from s[0..n), strict: no overlong forms, surrogates or values past
 * U+10FFFF. Returns its length in bytes, or 0 when s does not start with valid UTF-8. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return *cp = c, 1;
    size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    if (len == 0 || len > n || c > 0xf4)
        return 0;
    uint32_t v = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80)
        return out[0] = (char)cp, 1;
    if (cp < 0x800)
        return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return out[0] = (char)(0xe0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 0x3f)),
               out[2] = (char)(0x80 | (cp & 0x3f)), 3;
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A character as the user reads it in a message: 'a', or U+000A for a control. */
static const char *char_name(uint32_t cp, char buf[16])
{
    char u[4];
    size_t n = utf8_encode(cp, u);
    if (cp < 0x20 || cp == 0x7f)
        snprintf(buf, 16, "U+%04X", (unsigned)cp);
    else
        snprintf(buf, 16, "'%.*s'", (int)n, u);
    return buf;
}

int64_t text_vocab_index(const uint32_t *vocab, int64_t n, uint32_t cp)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (vocab[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && vocab[lo] == cp ? lo : -1;
}

/* The whole file, malloc'd; NULL after a message naming it. */
static unsigned char *read_whole(const char *path, size_t *size)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "tapegrad: cannot read the text file %s: %s\n", path,
                f ? "not a regular file" : strerror(errno));
        if (f)
            fclose(f);
        return NULL;
    }
    unsigned char *b = malloc((size_t)st.st_size + 1);
    *size = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    bool failed = !b || ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "tapegrad: cannot read the text file %s: %s\n", path, b ? "read error" : "out of memory");
        free(b);
        return NULL;
    }
    return b;
}

void text_free(text_corpus *c)
{
    free(c->ids);
    free(c->vocab);
    *c = (text_corpus){0};
}

/* The sorted distinct code points of cps[0..n), malloc'd into c->vocab. */
static bool collect_vocab(const uint32_t *cps, int64_t n, text_corpus *c, const char *path)
{
    static bool seen[0x110000];
    memset(seen, 0, sizeof seen);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!seen[cps[i]])
            seen[cps[i]] = true, k++;
    if (k > TEXT_MAX_VOCAB) {
        fprintf(stderr, "tapegrad: %s uses %lld distinct characters; a character model takes at most %d\n", path,
                (long long)k, TEXT_MAX_VOCAB);
        return false;
    }
    if (!(c->vocab = malloc(sizeof(uint32_t) * (size_t)k)))
        return false;
    c->n_vocab = 0;
    for (uint32_t cp = 0; cp < 0x110000; cp++)
        if (seen[cp])
            c->vocab[c->n_vocab++] = cp;
    return true;
}

int text_read(const char *path, const uint32_t *vocab, int64_t n_vocab, text_corpus *out)
{
    *out = (text_corpus){0};
    size_t size = 0;
    unsigned char *b = read_whole(path, &size);
    if (!b)
        return EXIT_DATA;
    uint32_t *cps = malloc(sizeof(uint32_t) * (size + 1));
    int64_t n = 0, line = 1;
    for (size_t at = 0; cps && at < size; n++) {
        size_t len = utf8_decode(b + at, size - at, &cps[n]);
        if (len == 0) {
            fprintf(stderr,
                    "tapegrad: %s is not UTF-8 text: byte %zu (line %lld) is 0x%02X, which starts no valid "
                    "UTF-8 character (convert the file, e.g. iconv -f LATIN1 -t UTF-8)\n",
                    path, at + 1, (long long)line, b[at]);
            free(b);
            free(cps);
            return EXIT_DATA;
        }
        line += cps[n] == '\n';
        at += len;
    }
    free(b);
    if (!cps) {
        fprintf(stderr, "tapegrad: out of memory reading %s\n", path);
        return EXIT_DATA;
    }
    if (n == 0) {
        fprintf(stderr, "tapegrad: the text file %s is empty: a character model needs text to learn from\n", path);
        free(cps);
        return EXIT_DATA;
    }
    bool ok =
        vocab ? (out->vocab = malloc(sizeof(uint32_t) * (size_t)n_vocab)) != NULL : collect_vocab(cps, n, out, path);
    if (ok && vocab) {
        memcpy(out->vocab, vocab, sizeof(uint32_t) * (size_t)n_vocab);
        out->n_vocab = n_vocab;
    }
    int32_t *ids = ok ? malloc(sizeof(int32_t) * (size_t)n) : NULL;
    for (int64_t i = 0; ids && i < n; i++) {
        int64_t k = text_vocab_index(out->vocab, out->n_vocab, cps[i]);
        if (k < 0) {
            char name[16];
            fprintf(stderr, "tapegrad: %s: character %lld, %s, is not in the model's vocabulary of %lld characters\n",
                    path, (long long)i + 1, char_name(cps[i], name), (long long)out->n_vocab);
            free(ids);
            ids = NULL;
            ok = false;
        } else {
            ids[i] = (int32_t)k;
        }
    }
    free(cps);
    if (!ids) {
        if (ok)
            fprintf(stderr, "tapegrad: out of memory reading %s\n", path);
        text_free(out);
        return EXIT_DATA;
    }
    out->ids = ids;
    out->n = n;
    return EXIT_OK;
}

int64_t text_window_count(int64_t n_chars, int64_t seq_len) { return n_chars > 0 ? (n_chars - 1) / seq_len : 0; }

tg_dataset *text_windows(const text_corpus *c, int64_t seq_len)
{
    int64_t rows = text_window_count(c->n, seq_len);
    int32_t *x = malloc(sizeof(int32_t) * (size_t)(rows * seq_len + 1)),
            *y = malloc(sizeof(int32_t) * (size_t)(rows * seq_len + 1));
    tg_dataset *ds = NULL;
    if (x && y) {
        for (int64_t r = 0; r < rows; r++) {
            memcpy(x + r * seq_len, c->ids + r * seq_len, sizeof(int32_t) * (size_t)seq_len);
            memcpy(y + r * seq_len, c->ids + r * seq_len + 1, sizeof(int32_t) * (size_t)seq_len);
        }
        tg_scope *s = tg_scope_begin();
        tg_shape shape = {.rank = 2, .dims = {rows, seq_len}};
        ds = tg_dataset_new(tg_tensor_from_at(TG_LOC, TG_I32, shape, x), tg_tensor_from_at(TG_LOC, TG_I32, shape, y));
        tg_scope_end(s);
    }
    free(x);
    free(y);
    return ds;
}

int text_load(const char *path, int64_t seq_len, double validation_split, const uint32_t *vocab, int64_t n_vocab,
              data_source *out)
{
    *out = (data_source){0};
    text_corpus c;
    int rc = text_read(path, vocab, n_vocab, &c);
    if (rc != EXIT_OK)
        return rc;
    int64_t rows = text_window_count(c.n, seq_len), train = (int64_t)((double)rows * (1.0 - validation_split));
    if (rows < 1 || train < 1 || (validation_split > 0 && train == rows)) {
        fprintf(stderr,
                "tapegrad: %s has %lld characters: that makes %lld sequence%s of %lld characters (each with "
                "the next character as its targets)%s; give a shorter --seq-len or a longer text\n",
                path, (long long)c.n, (long long)rows, rows == 1 ? "" : "s", (long long)seq_len,
                validation_split > 0 ? ", too few to hold out a validation part" : "");
        text_free(&c);
        return EXIT_DATA;
    }
    out->train = text_windows(&c, seq_len);
    out->vocab = c.vocab;
    out->n_vocab = c.n_vocab;
    out->n_chars = c.n;
    c.vocab = NULL;
    text_free(&c);
    snprintf(out->name, sizeof out->name, "text");
    if (!out->train)
        return cli_library_error();
    return EXIT_OK;
}

/* ---- the vocabulary in the model file: code points in decimal, "10,32,33,..." -------- */
char *text_vocab_format(const uint32_t *vocab, int64_t n)
{
    char *t = malloc((size_t)n * 8 + 1);
    size_t k = 0;
    for (int64_t i = 0; t && i < n; i++)
        k += (size_t)sprintf(t + k, i ? ",%u" : "%u", (unsigned)vocab[i]);
    if (t)
        t[k] = 0;
    return t;
}

bool text_vocab_parse(const char *text, uint32_t **vocab, int64_t *n)
{
    int64_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    *n = 0;
    if (count > TEXT_MAX_VOCAB || !(*vocab = malloc(sizeof(uint32_t) * (size_t)count)))
        return false;
    const char *p = text;
    for (int64_t i = 0; i < count; i++) {
        char *end;
        if (*p < '0' || *p > '9')
            return false;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        /* increasing code points, no surrogates: the vocabulary text_read builds */
        if (errno || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (i && v <= (*vocab)[i - 1]) ||
            *end != (i + 1 == count ? 0 : ','))
            return false;
        (*vocab)[i] = (uint32_t)v;
        p = end + 1;
    }
    *n = count;
    return true;
}

/* ---- sampling --------------------------------------------------------------------------- */
int64_t text_sample(const float *logits, int64_t n, double temperature, tg_rng *rng)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; j++)
        best = logits[j] > logits[best] ? j : best;
    if (temperature <= 0)
        return best;
    /* softmax(logits / T), shifted by the largest for range, then one uniform draw */
    double total = 0;
    for (int64_t j = 0; j < n; j++)
        total += exp(((double)logits[j] - logits[best]) / temperature);
    double u = tg_rng_uniform01(rng) * total, acc = 0;
    for (int64_t j = 0; j < n; j++) {
        acc += exp(((double)logits[j] - logits[best]) / temperature);
        if (u < acc)
            return j;
    }
    return best; /* u rounded up to the total */
}
