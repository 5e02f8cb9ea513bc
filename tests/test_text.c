/* Character-level text for the tapegrad command: the reader of src/cli/text.c (UTF-8, the
 * vocabulary, the windows and their next-character targets, the held-out part, refusals),
 * sampling, and the command end to end on a small committed text (fit, evaluate,
 * generate reproducibly from the reloaded file, bad options and bad files). Expected
 * values are worked out by hand from the texts written here. */
#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "check.h"
#include "cli/cli.h"
#include "tmpfiles.h"

#ifndef TG_CLI
#error "CMake defines TG_CLI, the path of the tapegrad command"
#endif

/* text.c's one call into main.c */
int cli_library_error(void)
{
    fprintf(stderr, "tapegrad: %s\n", tg_has_error() ? tg_last_error() : "?");
    return EXIT_DATA;
}

static char out[1 << 16];

/* Runs the command in the temporary folder, keeps stdout+stderr in `out`, returns the exit code. */
static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>&1", tmpdir, TG_CLI, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *write_text(const char *name, const char *text) { return write_file(name, text, strlen(text)); }

static void utf8_both_ways(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        uint32_t cp;
    } valid[] = {{"A", 1, 0x41},
                 {"\n", 1, 0x0a},
                 {"\xc3\xa9", 2, 0xe9},
                 {"\xe2\x82\xac", 3, 0x20ac},
                 {"\xe2\x80\x94", 3, 0x2014},
                 {"\xf0\x9f\x98\x80", 4, 0x1f600},
                 {"\xf4\x8f\xbf\xbf", 4, 0x10ffff}};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        uint32_t cp = 0;
        char enc[4];
        CHECK(utf8_decode((const unsigned char *)valid[i].bytes, valid[i].len, &cp) == valid[i].len);
        CHECK(cp == valid[i].cp);
        CHECK(utf8_encode(valid[i].cp, enc) == valid[i].len && memcmp(enc, valid[i].bytes, valid[i].len) == 0);
    }
    static const struct {
        const char *bytes;
        size_t len;
    } invalid[] = {
        {"\x80", 1},             /* a continuation byte first */
        {"\xc0\xaf", 2},         /* '/' written in two bytes (overlong) */
        {"\xe0\x80\xaf", 3},     /* overlong in three */
        {"\xed\xa0\x80", 3},     /* a UTF-16 surrogate, U+D800 */
        {"\xf4\x90\x80\x80", 4}, /* past U+10FFFF */
        {"\xe2\x82", 2},         /* cut short */
        {"\xc3\x41", 2},         /* a lead byte then ASCII */
        {"\xff", 1},
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        uint32_t cp;
        CHECK(utf8_decode((const unsigned char *)invalid[i].bytes, invalid[i].len, &cp) == 0);
    }
    /* every boundary of the encoding's lengths, both ways */
    static const uint32_t edges[] = {0, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xffff, 0x10000, 0x10ffff};
    static const size_t lengths[] = {1, 1, 2, 2, 3, 3, 3, 3, 4, 4};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        char enc[4];
        uint32_t back = 0xffffffff;
        size_t n = utf8_encode(edges[i], enc);
        CHECK(n == lengths[i]);
        CHECK(utf8_decode((const unsigned char *)enc, n, &back) == n && back == edges[i]);
    }
}

/* "baé\nab": the vocabulary is the sorted code points \n (10), a (97), b (98), é (233). */
static void vocabulary_and_indices(void)
{
    text_corpus c;
    REQUIRE(text_read(write_text("v.txt", "ba\xc3\xa9\nab"), NULL, 0, &c) == EXIT_OK);
    CHECK(c.n == 6 && c.n_vocab == 4);
    static const uint32_t vocab[] = {10, 97, 98, 233};
    static const int32_t ids[] = {2, 1, 3, 0, 1, 2};
    CHECK(c.n_vocab == 4 && memcmp(c.vocab, vocab, sizeof vocab) == 0);
    CHECK(c.n == 6 && memcmp(c.ids, ids, sizeof ids) == 0);
    CHECK(text_vocab_index(c.vocab, c.n_vocab, 233) == 3 && text_vocab_index(c.vocab, c.n_vocab, 99) == -1);
    text_free(&c);
    /* read with a model's vocabulary: the same indices; a character outside it refused */
    text_corpus d;
    REQUIRE(text_read(at("v.txt"), vocab, 4, &d) == EXIT_OK);
    CHECK(d.n == 6 && memcmp(d.ids, ids, sizeof ids) == 0);
    text_free(&d);
    CHECK(text_read(write_text("w.txt", "abc"), vocab, 4, &d) == EXIT_DATA);
    CHECK(d.ids == NULL && d.vocab == NULL);
}

/* The windows as text, row r of x or y. */
static bool window_is(const text_corpus *c, const tg_tensor *t, int64_t r, int64_t len, const char *want)
{
    int32_t row[64];
    tg_shape begin = {.rank = 2, .dims = {r, 0}}, size = {.rank = 2, .dims = {1, len}};
    if (tg_copy_out(tg_slice(t, begin, size), row, sizeof(int32_t) * (size_t)len) != 0)
        return false;
    for (int64_t i = 0; i < len; i++)
        if (c->vocab[row[i]] != (uint32_t)(unsigned char)want[i])
            return false;
    return true;
}

/* "hello world", 11 characters, in windows of 3: (11 - 1) / 3 = 3 windows, each with the
 * window one character later as its targets; the last character 'd' is never a target
 * of a whole window. */
static void windows_and_targets(void)
{
    text_corpus c;
    REQUIRE(text_read(write_text("h.txt", "hello world"), NULL, 0, &c) == EXIT_OK);
    CHECK(text_window_count(11, 3) == 3 && text_window_count(4, 3) == 1 && text_window_count(3, 3) == 0 &&
          text_window_count(1, 1) == 0 && text_window_count(2, 1) == 1);
    tg_dataset *ds = text_windows(&c, 3);
    REQUIRE(ds);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_dataset_x_view(ds), *y = tg_dataset_y_view(ds);
    REQUIRE(x && y);
    CHECK(tg_dtype_of(x) == TG_I32 && tg_dtype_of(y) == TG_I32);
    CHECK(has_shape(x, TG_SHAPE(3, 3)) && has_shape(y, TG_SHAPE(3, 3)));
    CHECK(window_is(&c, x, 0, 3, "hel") && window_is(&c, y, 0, 3, "ell"));
    CHECK(window_is(&c, x, 1, 3, "lo ") && window_is(&c, y, 1, 3, "o w"));
    CHECK(window_is(&c, x, 2, 3, "wor") && window_is(&c, y, 2, 3, "orl"));
    tg_scope_end(s);
    tg_dataset_free(ds);
    text_free(&c);
}

/* The held-out part is the last windows, in text order; a text too short for a training
 * window and a held-out one is refused. */
static void held_out_part(void)
{
    data_source d;
    /* 21 characters in windows of 2: 10 windows; 10% held out leaves 9 for training */
    REQUIRE(text_load(write_text("a.txt", "abcdefghijklmnopqrstu"), 2, 0.1, NULL, 0, &d) == EXIT_OK);
    CHECK(d.n_chars == 21 && d.n_vocab == 21);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_dataset_x_view(d.train), *y = tg_dataset_y_view(d.train);
    CHECK(x && has_shape(x, TG_SHAPE(10, 2)));
    int32_t xs[20], ys[20];
    REQUIRE(tg_copy_out(x, xs, sizeof xs) == 0 && tg_copy_out(y, ys, sizeof ys) == 0);
    for (int i = 0; i < 20; i++) /* a..u are classes 0..20 in order: window r starts at 2r */
        CHECK(xs[i] == i && ys[i] == i + 1);
    tg_scope_end(s);
    data_free(&d);
    CHECK(text_load(write_text("b.txt", "abcde"), 4, 0.1, NULL, 0, &d) == EXIT_DATA); /* one window, none held out */
    CHECK(text_load(at("b.txt"), 4, 0, NULL, 0, &d) == EXIT_OK);
    data_free(&d);
    CHECK(text_load(at("b.txt"), 5, 0, NULL, 0, &d) == EXIT_DATA); /* no target for a fifth input */
}

static void files_refused(void)
{
    text_corpus c;
    CHECK(text_read(write_text("empty.txt", ""), NULL, 0, &c) == EXIT_DATA);
    CHECK(text_read(write_text("latin1.txt", "caf\xe9\n"), NULL, 0, &c) == EXIT_DATA);
    CHECK(text_read(write_text("cut.txt", "ab\xe2\x82"), NULL, 0, &c) == EXIT_DATA);
    CHECK(text_read(at("missing.txt"), NULL, 0, &c) == EXIT_DATA);
    CHECK(text_read(tmpdir, NULL, 0, &c) == EXIT_DATA); /* a folder */
    CHECK(c.ids == NULL && c.vocab == NULL);
    /* a NUL is a character like any other */
    REQUIRE(text_read(write_file("nul.txt", "a\0b", 3), NULL, 0, &c) == EXIT_OK);
    CHECK(c.n == 3 && c.n_vocab == 3 && c.vocab[0] == 0);
    text_free(&c);
}

static void vocabulary_in_the_model_file(void)
{
    static const uint32_t v[] = {0, 10, 32, 233, 0x1f600, 0x10ffff};
    char *t = text_vocab_format(v, 6);
    REQUIRE(t);
    CHECK(strcmp(t, "0,10,32,233,128512,1114111") == 0);
    uint32_t *back = NULL;
    int64_t n = 0;
    CHECK(text_vocab_parse(t, &back, &n) && n == 6 && memcmp(back, v, sizeof v) == 0);
    free(back);
    free(t);
    static const char *const bad[] = {
        "", "97,97", "98,97", "97,", ",97", "55296", "1114112", "97 ,98", "x", "-1", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        back = NULL;
        CHECK(!text_vocab_parse(bad[i], &back, &n));
        free(back);
    }
}

/* logits log(1), log(2), log(3): softmax 1/6, 2/6, 3/6; at temperature 1/2 the squares,
 * 1/14, 4/14, 9/14. Frequencies of 60000 draws within 4.5 standard deviations. */
static void sampling(void)
{
    const float logits[3] = {0.0f, (float)log(2.0), (float)log(3.0)};
    CHECK(text_sample(logits, 3, 0, NULL) == 2);
    const double want[2][3] = {{1 / 6.0, 2 / 6.0, 3 / 6.0}, {1 / 14.0, 4 / 14.0, 9 / 14.0}};
    const double temperature[2] = {1.0, 0.5};
    const int draws = 60000;
    for (int t = 0; t < 2; t++) {
        tg_rng *rng = tg_rng_new(5);
        int count[3] = {0};
        for (int i = 0; i < draws; i++)
            count[text_sample(logits, 3, temperature[t], rng)]++;
        tg_rng_free(rng);
        for (int k = 0; k < 3; k++)
            CHECK_NEAR(count[k] / (double)draws, want[t][k], 4.5 * sqrt(want[t][k] * (1 - want[t][k]) / draws));
    }
    tg_rng *a = tg_rng_new(9), *b = tg_rng_new(9);
    bool same = true;
    for (int i = 0; i < 100; i++)
        same = same && text_sample(logits, 3, 1.0, a) == text_sample(logits, 3, 1.0, b);
    CHECK(same);
    tg_rng_free(a);
    tg_rng_free(b);
}

/* ---- the library: a class per step ---------------------------------------------------------- */
/* Keras's char-RNN: labels (N, steps) for logits (N, steps, classes). evaluate's loss is
 * the mean over every step of every sequence of logsumexp(logits) - logits[label],
 * computed here in double from the predictions; labels of another shape are refused. */
static void sparse_labels_per_step(void)
{
    tg_model *m = tg_sequential(tg_embedding(.input_dim = 5, .output_dim = 3, .input_length = 4),
                                tg_lstm(.units = 4, .return_sequences = true), tg_dense(.units = 5));
    REQUIRE(m && tg_compile(m, .optimizer = tg_adam(), .loss = TG_LOSS_SPARSE_CATEGORICAL_CROSSENTROPY,
                            .from_logits = true, .metrics = TG_METRICS(TG_ACCURACY)) == 0);
    tg_scope *s = tg_scope_begin();
    int32_t xs[24], ys[24];
    for (int i = 0; i < 24; i++)
        xs[i] = (i * 7 + 1) % 5, ys[i] = (i * 3 + 2) % 5;
    tg_tensor *x = tg_tensor_from_at(TG_LOC, TG_I32, TG_SHAPE(6, 4), xs);
    tg_tensor *y = tg_tensor_from_at(TG_LOC, TG_I32, TG_SHAPE(6, 4), ys);
    tg_history *h = tg_fit(m, x, y, .epochs = 1, .batch_size = 4, .verbose = TG_VERBOSE_SILENT);
    CHECK(h != NULL);
    tg_history_free(h);
    tg_logs logs;
    REQUIRE(tg_evaluate(m, x, y, &logs, .batch_size = 4) == 0);
    tg_tensor *p = tg_predict(m, x);
    double logits[120], want = 0;
    REQUIRE(p && has_shape(p, TG_SHAPE(6, 4, 5)) && tg_copy_out_f64(p, logits, 120) == 0);
    for (int i = 0; i < 24; i++) {
        double sum = 0;
        for (int k = 0; k < 5; k++)
            sum += exp(logits[i * 5 + k]);
        want += (log(sum) - logits[i * 5 + ys[i]]) / 24;
    }
    CHECK_NEAR(tg_logs_get(&logs, "loss"), want, 1e-5);
    tg_tensor *three_steps = tg_tensor_from_at(TG_LOC, TG_I32, TG_SHAPE(6, 3), ys);
    int line = __LINE__ + 1;
    tg_history *bad = tg_fit(m, x, three_steps, .epochs = 1, .verbose = TG_VERBOSE_SILENT);
    EXPECT_ERROR(bad == NULL, "one per position of the output but its last axis");
    char where[64];
    snprintf(where, sizeof where, "test_text.c:%d", line);
    CHECK_ERROR(where);
    tg_scope_end(s);
    tg_model_free(m);
}

/* ---- the command ------------------------------------------------------------------------ */
static double number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* Whether every character of s (UTF-8) is one of the text's. */
static bool only_characters_of(const char *s, const text_corpus *c)
{
    size_t n = strlen(s);
    for (size_t at = 0; at < n;) {
        uint32_t cp;
        size_t len = utf8_decode((const unsigned char *)s + at, n - at, &cp);
        if (!len || text_vocab_index(c->vocab, c->n_vocab, cp) < 0)
            return false;
        at += len;
    }
    return true;
}

static void fit_generate_round_trip(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s/text/tiny.txt %s/tiny.txt", TG_FIXTURES_DIR, tmpdir);
    REQUIRE(system(cmd) == 0);
    text_corpus c;
    REQUIRE(text_read(at("tiny.txt"), NULL, 0, &c) == EXIT_OK);
    REQUIRE(run("fit --data text:tiny.txt --model lstm:16 --seq-len 20 --epochs 2 --batch-size 8 --save m.safetensors "
                "--history h.csv --plot h.svg") == 0);
    CHECK(strstr(out, "val_bits_per_character") != NULL);
    /* bits per character = nats / ln 2, as printed at the end */
    double nats = number_after(out, "held-out text: loss "), bits = number_after(out, "nats, ");
    CHECK(isfinite(nats) && nats > 0);
    CHECK_NEAR(bits, nats / log(2.0), 2e-4);
    /* 725 characters: 36 windows of 20, the last 4 held out (int(36 * 0.9) = 32 train) */
    CHECK(strstr(out, "36 sequences of 20") != NULL && strstr(out, "the last 4 held out") != NULL);
    /* evaluate reloads the file and scores the same held-out windows */
    REQUIRE(run("evaluate m.safetensors") == 0);
    CHECK(strstr(out, "4 sequences of 20 characters (the held-out part)") != NULL);
    CHECK_NEAR(number_after(out, "- loss: "), nats, 1e-4);
    /* the vocabulary stored is the text's */
    tg_safetensors *st = tg_safetensors_open(at("m.safetensors"));
    char *want = text_vocab_format(c.vocab, c.n_vocab);
    const char *stored = st ? tg_safetensors_metadata(st, "vocabulary") : NULL;
    CHECK(stored && want && strcmp(stored, want) == 0);
    free(want);
    tg_safetensors_close(st);
    /* generate: reproducible for a seed, different for another, only the text's characters */
    static char first[sizeof out];
    REQUIRE(run("generate m.safetensors --length 300 --seed 7") == 0);
    snprintf(first, sizeof first, "%s", out);
    CHECK(strlen(first) > 300 && only_characters_of(first, &c));
    REQUIRE(run("generate m.safetensors --length 300 --seed 7") == 0);
    CHECK(strcmp(out, first) == 0);
    REQUIRE(run("generate m.safetensors --length 300 --seed 8") == 0);
    CHECK(strcmp(out, first) != 0 && only_characters_of(out, &c));
    REQUIRE(run("generate m.safetensors --length 40 --prime 'Ren\xc3\xa9\x65' --temperature 0.5") == 0);
    CHECK(strncmp(out, "Ren\xc3\xa9\x65", 6) == 0 && only_characters_of(out, &c));
    REQUIRE(run("generate m.safetensors --length 40 --temperature 0") == 0);
    snprintf(first, sizeof first, "%s", out);
    REQUIRE(run("generate m.safetensors --length 40 --temperature 0 --seed 99") == 0);
    CHECK(strcmp(out, first) == 0); /* the most likely character: no draw */
    REQUIRE(run("summary m.safetensors") == 0);
    CHECK(strstr(out, "a character model: 38 characters, sequences of 20, embedding 64") != NULL);
    /* resume goes on from epoch 2 with the stored vocabulary and windows */
    REQUIRE(run("fit --resume m.safetensors --epochs 3 --quiet") == 0);
    REQUIRE(run("summary m.safetensors") == 0);
    CHECK(strstr(out, "trained 3 epochs on text:tiny.txt") != NULL);
    text_free(&c);
}

/* m.safetensors again, with the metadata key `key` set to `value`. */
static void craft(const char *name, const char *key, const char *value)
{
    tg_scope *s = tg_scope_begin();
    tg_safetensors *st = tg_safetensors_open(at("m.safetensors"));
    int n = st ? tg_safetensors_count(st) : 0;
    tg_tensor *t[64];
    const char *const *names = st ? tg_safetensors_names(st) : NULL;
    for (int i = 0; i < n && i < 64; i++)
        t[i] = tg_safetensors_get(st, names[i]);
    static const char *const keys[] = {"model", "input_shape", "classes",    "seed",
                                       "data",  "loss",        "vocabulary", "embedding_dim"};
    static char meta[1 << 14];
    strcpy(meta, "{");
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = strcmp(keys[k], key) == 0 ? value : st ? tg_safetensors_metadata(st, keys[k]) : NULL;
        size_t len = strlen(meta);
        if (v)
            snprintf(meta + len, sizeof meta - len, "%s\"%s\": \"%s\"", len > 1 ? ", " : "", keys[k], v);
    }
    strcat(meta, "}");
    CHECK(st && tg_save_safetensors(at(name), t, names, n, meta) == 0);
    tg_safetensors_close(st);
    tg_scope_end(s);
}

/* A vocabulary that is not the model's is refused, naming the key, before any use. */
static void hostile_vocabulary(void)
{
    static const char *const bad[] = {"97,98", "", "98,97", "55296", "10,x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        craft("v.safetensors", "vocabulary", bad[i]);
        int rc = run("generate v.safetensors --length 5");
        CHECK(rc == 2 && strstr(out, "metadata \"vocabulary\"") != NULL);
    }
    craft("v.safetensors", "embedding_dim", "0");
    CHECK(run("summary v.safetensors") == 2 && strstr(out, "\"embedding_dim\" is \"0\"") != NULL);
    craft("v.safetensors", "model", "mlp:16");
    CHECK(run("generate v.safetensors") == 2 && strstr(out, "metadata \"vocabulary\"") != NULL);
    craft("v.safetensors", "embedding_dim", "64"); /* as written: accepted */
    CHECK(run("generate v.safetensors --length 5") == 0);
}

static void bad_options_and_files(void)
{
    static const struct {
        const char *args;
        int code;
        const char *says;
    } cases[] = {
        {"fit --data text:tiny.txt --model mlp:10", 1, "a character model is recurrent"},
        {"fit --data text:tiny.txt --model cnn", 1, "lstm:UNITS or gru:UNITS"},
        {"fit --data text:tiny.txt --model lstm:8 --loss mse", 1, "sparse_categorical_crossentropy"},
        {"fit --data text:tiny.txt --model lstm:8 --label x", 1, "text has no label column"},
        {"fit --data text:tiny.txt --model lstm:8 --normalize", 1, "--normalize"},
        {"fit --data text:tiny.txt --model lstm:8 --classes 5", 1, "--classes"},
        {"fit --data text:tiny.txt --model lstm:8 --seq-len 0", 1, "bad value '0' for --seq-len"},
        {"fit --data text:tiny.txt --model lstm:8 --seq-len ten", 1, "bad value 'ten' for --seq-len"},
        {"fit --data text:tiny.txt --model lstm:8 --seq-len 400", 2, "give a shorter --seq-len"},
        {"fit --data text:empty.txt --model lstm:8", 2, "empty.txt is empty"},
        {"fit --data text:latin1.txt --model lstm:8", 2, "latin1.txt is not UTF-8 text: byte 4 (line 1) is 0xE9"},
        {"fit --data text:nothere.txt --model lstm:8", 2, "nothere.txt"},
        {"generate m.safetensors --length 0", 1, "bad value '0' for --length"},
        {"generate m.safetensors --temperature -1", 1, "bad value '-1' for --temperature"},
        {"generate m.safetensors --prime ''", 1, "--prime is empty"},
        {"generate m.safetensors --prime 'snow\xe2\x98\x83'", 1, "character 5 is not in the model's vocabulary"},
        {"generate m.safetensors --prime 'a\xff'", 1, "character 2 is not valid UTF-8"},
        {"generate m.safetensors --bogus", 1, "unknown option --bogus"},
        {"generate", 1, "give one MODEL file"},
        {"generate nothere.safetensors", 2, "nothere.safetensors"},
        {"predict m.safetensors tiny.txt", 1, "sample text from it with tapegrad generate"},
        {"evaluate m.safetensors --data text:other.txt", 2, "is not in the model's vocabulary"},
        {"evaluate m.safetensors --data csv:other.txt", 1, "is a character model"},
    };
    write_text("other.txt", "The river runs on and on; it is \xc3\x9c"
                            "ber-long and never stops at all, ok.\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args);
        bool ok = rc == cases[i].code && strstr(out, cases[i].says) != NULL;
        if (!ok)
            printf("  tapegrad %s: exit %d (want %d), said: %s\n", cases[i].args, rc, cases[i].code, out);
        CHECK(ok);
    }
}

int main(void)
{
    if (!make_tmpdir("tapegrad_text"))
        return printf("cannot make a temporary folder\n"), 1;
    RUN(utf8_both_ways);
    RUN(vocabulary_and_indices);
    RUN(windows_and_targets);
    RUN(held_out_part);
    RUN(files_refused);
    RUN(vocabulary_in_the_model_file);
    RUN(sampling);
    RUN(sparse_labels_per_step);
    RUN(fit_generate_round_trip);
    RUN(bad_options_and_files);
    RUN(hostile_vocabulary);
    remove_tmpdir();
    return TEST_SUMMARY();
}
