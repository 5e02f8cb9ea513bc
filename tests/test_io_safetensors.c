/* Checkpoints in the safetensors format: round trips, the exact bytes of a small file,
 * atomic saving, loading into variables, a table of corrupt headers, truncations and
 * random damage, and a cross-check with numpy (tools/safetensors_check.py). */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "tmpfiles.h"

#define SCRIPT  TG_FIXTURES_DIR "/../../tools/safetensors_check.py"
#define FIXTURE TG_FIXTURES_DIR "/numpy_written.safetensors"

/* The whole file into a malloc'd buffer; *n its size. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(size > 0 ? (size_t)size : 1);
    if (b && fread(b, 1, (size_t)size, f) == (size_t)size)
        *n = (size_t)size;
    fclose(f);
    return b;
}

/* Files in the temporary folder whose names start with prefix. */
static int count_files(const char *prefix)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return n;
}

/* ---- round trips ------------------------------------------------------------------------ */
static void test_exact_bytes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *a = tg_from_f32(TG_SHAPE(2), 1.0f, 2.0f);
    const char *names[] = {"a"};
    CHECK(tg_save_safetensors(at("one.safetensors"), &a, names, 1, NULL) == 0);
    /* The header, by hand from the format: 54 bytes of JSON + 2 spaces = 56, a multiple of 8. */
    static const char header[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ";
    unsigned char expected[8 + 56 + 8] = {56};
    memcpy(expected + 8, header, 56);
    memcpy(expected + 64, "\x00\x00\x80\x3f\x00\x00\x00\x40", 8); /* 1.0f, 2.0f little-endian */
    size_t n;
    unsigned char *got = slurp(at("one.safetensors"), &n);
    CHECK(got && n == sizeof expected && !memcmp(got, expected, sizeof expected));
    free(got);
    tg_scope_end(s);
}

static void test_round_trip_all_dtypes(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *t[7] = {
        tg_from_f32(TG_SHAPE(2, 3), 1.5f, -2, 3, 4, 5, 1e-30f),
        tg_from_f64(TG_SHAPE(3), 0.1, -1e300, 2),
        tg_from_i32(TG_SHAPE(2, 1, 2), 1, -2, 2147483647, -2147483647 - 1),
        tg_from_i64(TG_SHAPE(2), (int64_t)1 << 62, -5),
        tg_cast(tg_from_i32(TG_SHAPE(3), 1, 0, 1), TG_BOOL),
        tg_scalar(7.0),
        tg_zeros(TG_F64, TG_SHAPE(0, 4)),
    };
    const char *names[7] = {"dense/kernel", "z.f64", "ints", "big", "mask", "scalar", "empty"};
    const char *path = at("all.safetensors");
    CHECK(tg_save_safetensors(path, t, names, 7, "{\"epoch\": \"3\", \"note\": \"tab\\tquote\\\" \\u00e9\"}") == 0);

    tg_safetensors *st = tg_safetensors_open(path);
    CHECK(st && tg_safetensors_count(st) == 7);
    if (!st) {
        tg_scope_end(s);
        return;
    }
    const char *const *listed = tg_safetensors_names(st);
    const char *sorted[7] = {"big", "dense/kernel", "empty", "ints", "mask", "scalar", "z.f64"};
    for (int i = 0; i < 7; i++)
        CHECK(!strcmp(listed[i], sorted[i]));
    for (int i = 0; i < 7; i++) {
        tg_tensor *back = tg_safetensors_get(st, names[i]);
        tg_shape a = tg_shape_of(t[i]), b = back ? tg_shape_of(back) : (tg_shape){.rank = -1};
        CHECK(back && tg_dtype_of(back) == tg_dtype_of(t[i]) && a.rank == b.rank &&
              !memcmp(a.dims, b.dims, sizeof(int64_t) * (size_t)a.rank));
        char x[256], y[256];
        size_t bytes = (size_t)tg_size(t[i]) * tg_dtype_size(tg_dtype_of(t[i]));
        CHECK(back && tg_copy_out(t[i], x, sizeof x) == 0 && tg_copy_out(back, y, sizeof y) == 0 &&
              !memcmp(x, y, bytes));
    }
    tg_shape shape;
    const char *dtype;
    CHECK(tg_safetensors_info(st, "ints", &shape, &dtype) == 0 && shape.rank == 3 && shape.dims[2] == 2 &&
          !strcmp(dtype, "I32"));
    CHECK(tg_safetensors_info(st, "mask", NULL, &dtype) == 0 && !strcmp(dtype, "BOOL"));
    EXPECT_ERROR(tg_safetensors_info(st, "nope", &shape, &dtype) == -1, "no tensor of that name");
    CHECK(!strcmp(tg_safetensors_metadata(st, "epoch"), "3"));
    CHECK(!strcmp(tg_safetensors_metadata(st, "note"), "tab\tquote\" \xc3\xa9"));
    CHECK(tg_safetensors_metadata(st, "missing") == NULL);
    EXPECT_ERROR(!tg_safetensors_get(st, "nope"),
                 "has no tensor named \"nope\" (it has \"big\", \"dense/kernel\", \"empty\"");
    tg_safetensors_close(st);
    tg_scope_end(s);

    /* the header is padded to 8 bytes and every tensor is aligned to its element size */
    size_t n;
    unsigned char *file = slurp(path, &n);
    CHECK(file && n > 8 && file[0] % 8 == 0 && file[8] == '{');
    free(file);
}

static void test_variables_by_name(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), .name = "dense/kernel");
    tg_tensor *b = tg_variable(tg_from_f32(TG_SHAPE(2), 5, 6), .name = "dense/bias");
    tg_tensor *vars[] = {w, b};
    const char *path = at("vars.safetensors");
    CHECK(tg_save_safetensors(path, vars, NULL, 2, NULL) == 0);
    CHECK(tg_assign(w, tg_zeros(TG_F32, TG_SHAPE(2, 2))) == 0 && tg_assign(b, tg_zeros(TG_F32, TG_SHAPE(2))) == 0);
    uint64_t version = tg_variable_version(w);
    CHECK(tg_load_into(path, vars, 2) == 0);
    CHECK_VALUES(w, 0, 1, 2, 3, 4);
    CHECK_VALUES(b, 0, 5, 6);
    CHECK(tg_variable_version(w) == version + 1);

    /* a tensor that is not a variable has no name */
    tg_tensor *plain[] = {w, tg_zeros(TG_F32, TG_SHAPE(1))};
    EXPECT_ERROR(tg_save_safetensors(at("x.safetensors"), plain, NULL, 2, NULL) == -1,
                 "tensors[1] is not a variable, so it has no name: pass `names`");

    /* mismatches assign nothing, even to the variables that matched */
    tg_tensor *w3 = tg_variable(tg_zeros(TG_F32, TG_SHAPE(3, 2)), .name = "dense/kernel");
    tg_tensor *b64 = tg_variable(tg_zeros(TG_F64, TG_SHAPE(2)), .name = "dense/bias");
    tg_tensor *other = tg_variable(tg_zeros(TG_F32, TG_SHAPE(2)), .name = "other");
    tg_tensor *b2 = tg_variable(tg_zeros(TG_F32, TG_SHAPE(2)), .name = "dense/bias");
    EXPECT_ERROR(tg_load_into(path, (tg_tensor *[]){b2, w3}, 2) == -1, "tensor \"dense/kernel\" has shape (2, 2) in");
    CHECK_ERROR("but the variable has shape (3, 2); nothing was assigned");
    CHECK_VALUES(b2, 0, 0, 0);
    EXPECT_ERROR(tg_load_into(path, (tg_tensor *[]){b64}, 1) == -1, "tensor \"dense/bias\" is F32 in");
    CHECK_ERROR("but the variable is float64 (F64); nothing was assigned");
    EXPECT_ERROR(tg_load_into(path, (tg_tensor *[]){b2, other}, 2) == -1,
                 "has no tensor named \"other\" (it has \"dense/bias\", \"dense/kernel\"); nothing was assigned");
    CHECK_VALUES(b2, 0, 0, 0);
    EXPECT_ERROR(tg_load_into(path, (tg_tensor *[]){b2, b}, 2) == -1,
                 "vars[0] and vars[1] are both named \"dense/bias\"");
    EXPECT_ERROR(tg_load_into(path, (tg_tensor *[]){tg_zeros(TG_F32, TG_SHAPE(2))}, 1) == -1,
                 "vars[0] is not a variable");
    EXPECT_ERROR(tg_load_into(at("missing.safetensors"), vars, 2) == -1, "cannot open");
    CHECK(tg_load_into(path, vars, 0) == 0);
    tg_variable_free(w3);
    tg_variable_free(b64);
    tg_variable_free(other);
    tg_variable_free(b2);
    tg_variable_free(w);
    tg_variable_free(b);
    tg_scope_end(s);
}

static void test_save_errors(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *t[2] = {tg_scalar(1.0), tg_scalar(2.0)};
    const char *path = at("err.safetensors");
    EXPECT_ERROR(tg_save_safetensors(path, t, (const char *[]){"a", "a"}, 2, NULL) == -1,
                 "two tensors are named \"a\"");
    EXPECT_ERROR(tg_save_safetensors(path, t, (const char *[]){"__metadata__", "b"}, 2, NULL) == -1,
                 "is empty, reserved or not valid UTF-8");
    EXPECT_ERROR(tg_save_safetensors(path, t, (const char *[]){"", "b"}, 2, NULL) == -1,
                 "is empty, reserved or not valid UTF-8");
    EXPECT_ERROR(tg_save_safetensors(path, t, (const char *[]){"\xff", "b"}, 2, NULL) == -1,
                 "is empty, reserved or not valid UTF-8");
    EXPECT_ERROR(tg_save_safetensors(path, t, (const char *[]){"a", NULL}, 2, NULL) == -1, "names[1] is NULL");
    const char *ab[] = {"a", "b"};
    EXPECT_ERROR(tg_save_safetensors(path, t, ab, 2, "{\"k\": 1}") == -1, "metadata key \"k\" is not a string");
    EXPECT_ERROR(tg_save_safetensors(path, t, ab, 2, "[\"k\"]") == -1, "the metadata must be a JSON object of strings");
    EXPECT_ERROR(tg_save_safetensors(path, t, ab, 2, "{\"k\": \"v\",}") == -1,
                 "the metadata is not valid JSON: expected a string key at byte 10");
    EXPECT_ERROR(tg_save_safetensors(path, t, ab, 2, "{\"k\": \"v\", \"k\": \"w\"}") == -1,
                 "metadata key \"k\" appears twice");
    EXPECT_ERROR(tg_save_safetensors(NULL, t, ab, 2, NULL) == -1, "`path` is NULL");
    EXPECT_ERROR(tg_save_safetensors(path, NULL, ab, 2, NULL) == -1, "`tensors` is NULL");
    EXPECT_ERROR(tg_save_safetensors(path, t, ab, -1, NULL) == -1, "n is negative");
    tg_tensor *dead[1];
    tg_scope *inner = tg_scope_begin();
    dead[0] = tg_scalar(1.0);
    tg_scope_end(inner);
    EXPECT_ERROR(tg_save_safetensors(path, dead, ab, 1, NULL) == -1, "tensors[0]");
    CHECK(count_files("err.safetensors") == 0); /* nothing was created by any of them */
    /* no tensors at all is a valid file */
    CHECK(tg_save_safetensors(path, NULL, NULL, 0, NULL) == 0);
    tg_safetensors *st = tg_safetensors_open(path);
    CHECK(st && tg_safetensors_count(st) == 0);
    tg_safetensors_close(st);
    tg_scope_end(s);
}

/* ---- atomic saving ----------------------------------------------------------------------------- */
static void test_atomic_save(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *small = tg_from_f32(TG_SHAPE(2), 1, 2), *big = tg_zeros(TG_F32, TG_SHAPE(10000));
    const char *names[] = {"w"};
    const char *path = at("ckpt.safetensors");
    CHECK(tg_save_safetensors(path, &small, names, 1, "{\"epoch\": \"1\"}") == 0);
    chmod(path, 0640);
    size_t n0;
    unsigned char *before = slurp(path, &n0);

    /* a folder that does not exist: nothing is created */
    EXPECT_ERROR(tg_save_safetensors(at("no-such-dir/ckpt.safetensors"), &small, names, 1, NULL) == -1,
                 "cannot create a temporary file beside");
    CHECK_ERROR("No such file or directory");

    /* a write that fails half-way (the file-size limit, in a child process) */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {1000, 1000};
        setrlimit(RLIMIT_FSIZE, &lim);
        int rc = tg_save_safetensors(path, &big, names, 1, NULL);
        const char *e = tg_last_error();
        _exit(rc == -1 && e && strstr(e, "File too large") && strstr(e, "while writing the temporary file") ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t n1;
    unsigned char *after = slurp(path, &n1);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0)); /* byte for byte */
    CHECK(count_files("ckpt.safetensors") == 1);                      /* no temporary file left */
    free(after);

    /* a successful save replaces the file and keeps its mode */
    CHECK(tg_save_safetensors(path, &big, names, 1, NULL) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640 && st.st_size == 8 + 64 + 40000);
    CHECK(count_files("ckpt.safetensors") == 1);
    free(before);
    tg_scope_end(s);
}

/* A FIFO is refused and stays a FIFO; a symbolic link stays a link, and the file it
 * points to (directly, through a chain, or not yet existing) is replaced. */
static void test_save_special_targets(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *w = tg_from_f32(TG_SHAPE(2), 1, 2);
    const char *names[] = {"w"}, *fifo = at("fifo.safetensors");
    struct stat st;
    CHECK(mkfifo(fifo, 0600) == 0);
    EXPECT_ERROR(tg_save_safetensors(fifo, &w, names, 1, NULL) == -1,
                 "it exists and is a FIFO (named pipe), which tapegrad does not replace; nothing was written");
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK(count_files("fifo.safetensors") == 1);
    EXPECT_ERROR(tg_save_safetensors(tmpdir, &w, names, 1, NULL) == -1, "it exists and is a folder");
    EXPECT_ERROR(tg_save_safetensors("", &w, names, 1, NULL) == -1, "the file name is empty");

    const char *target = at("target.safetensors"), *link = at("link.safetensors"), *link2 = at("link2.safetensors");
    CHECK(write_file("target.safetensors", "old", 3) && symlink("target.safetensors", link) == 0);
    CHECK(symlink("link.safetensors", link2) == 0);
    CHECK(tg_save_safetensors(link2, &w, names, 1, NULL) == 0);
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && lstat(link2, &st) == 0 && S_ISLNK(st.st_mode));
    tg_safetensors *f = tg_safetensors_open(target);
    CHECK(f && tg_safetensors_count(f) == 1);
    tg_safetensors_close(f);
    CHECK(count_files("target.safetensors") == 1 && count_files("link") == 2);

    const char *dangling = at("dangling.safetensors"); /* a link to a file not there yet */
    CHECK(symlink("new.safetensors", dangling) == 0);
    CHECK(tg_save_safetensors(dangling, &w, names, 1, NULL) == 0);
    CHECK(lstat(dangling, &st) == 0 && S_ISLNK(st.st_mode) && stat(at("new.safetensors"), &st) == 0);
    const char *loop = at("loop.safetensors");
    CHECK(symlink("loop.safetensors", loop) == 0);
    EXPECT_ERROR(tg_save_safetensors(loop, &w, names, 1, NULL) == -1, "Too many levels of symbolic links");
    unlink(fifo);
    unlink(target);
    unlink(link);
    unlink(link2);
    unlink(dangling);
    unlink(at("new.safetensors"));
    unlink(loop);
    tg_scope_end(s);
}

/* tg_write_file, the same writer for any bytes: replaces a file whole, or leaves it. */
static void test_write_file(void)
{
    const char *path = at("notes.txt");
    CHECK(tg_write_file(path, "old", 3) == 0 && tg_write_file(path, "newer", 5) == 0);
    size_t n;
    unsigned char *b = slurp(path, &n);
    CHECK(b && n == 5 && !memcmp(b, "newer", 5));
    free(b);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* over the file-size limit: EFBIG, as the command sees it */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {100, 100};
        setrlimit(RLIMIT_FSIZE, &lim);
        static char big[1000];
        int rc = tg_write_file(path, big, sizeof big);
        const char *e = tg_last_error();
        _exit(rc == -1 && e && strstr(e, "tg_write_file: cannot save") && strstr(e, "File too large") ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    b = slurp(path, &n);
    CHECK(b && n == 5 && !memcmp(b, "newer", 5) && count_files("notes.txt") == 1);
    free(b);
    EXPECT_ERROR(tg_write_file(path, NULL, 1) == -1, "`data` is NULL");
    unlink(path);
}

/* ---- corrupt files ------------------------------------------------------------------------------ */
/* A file of the 8-byte size, the header text and `data` zero bytes. */
static const char *write_st(const char *name, const char *header, size_t data)
{
    size_t h = strlen(header), n = 8 + h + data;
    unsigned char *b = calloc(1, n);
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)((uint64_t)h >> (8 * k));
    memcpy(b + 8, header, h);
    const char *p = write_file(name, b, n);
    free(b);
    return p;
}

#define T(name, dt, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_corrupt_headers(void)
{
    static const struct {
        const char *header;
        size_t data;
        const char *error;
    } bad[] = {
        {"{" T("a", "F32", "[2]", 0, 8), 8,
         "malformed header JSON at byte 61 of the file (byte 53 of the header): "
         "expected ',' or '}' in an object"},
        {"{" T("a", "F99", "[2]", 0, 8) "}", 8, "tensor \"a\": unknown dtype \"F99\""},
        {"{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12,
         "the data of tensors \"a\" and \"b\" overlap (bytes [0, 8) and [4, 12))"},
        {"{" T("a", "F32", "[1]", 0, 4) "," T("b", "F32", "[1]", 8, 12) "}", 12,
         "bytes [4, 8) of the data belong to no tensor (before \"b\")"},
        {"{" T("a", "F32", "[1]", 4, 8) "}", 8, "bytes [0, 4) of the data belong to no tensor"},
        {"{" T("a", "F32", "[2]", 0, 8) "}", 4,
         "tensor \"a\" runs past the end of the file: data_offsets [0, 8], "
         "but the data has 4 bytes"},
        {"{" T("a", "F32", "[2]", 0, 8) "}", 12, "4 bytes after the last tensor's data belong to no tensor"},
        {"{" T("a", "F32", "[0]", 8, 0) "}", 8, "data_offsets [8, 0] end before they begin"},
        {"{" T("a", "F32", "[3]", 0, 8) "}", 8, "shape (3,) of F32 takes 12 bytes, but data_offsets [0, 8] span 8"},
        {"{" T("a", "F32", "[1]", 0, 4) "," T("a", "F32", "[1]", 4, 8) "}", 8, "the tensor name \"a\" appears twice"},
        {"{" T("a", "F32", "[2.5]", 0, 8) "}", 8, "entry 0 of \"shape\" is not a non-negative integer"},
        {"{" T("a", "F32", "[1,-2]", 0, 8) "}", 8, "entry 1 of \"shape\" is not a non-negative integer"},
        {"{" T("a", "F32", "[\"2\"]", 0, 8) "}", 8, "entry 0 of \"shape\" is not a non-negative integer"},
        {"{" T("a", "F32", "[1e1]", 0, 40) "}", 40, "entry 0 of \"shape\" is not a non-negative integer"},
        {"{" T("a", "F32", "2", 0, 8) "}", 8, "tensor \"a\": \"shape\" is not an array"},
        {"{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4,
         "\"shape\" has 9 entries; tapegrad tensors have at most 8"},
        {"{" T("a", "F32", "[4294967296,4294967296,4294967296]", 0, 8) "}", 8, "the shape overflows"},
        {"{" T("a", "F32", "[99999999999999999999]", 0, 8) "}", 8,
         "entry 0 of \"shape\" is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor \"a\": missing \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "tensor \"a\": missing \"shape\""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8, "\"data_offsets\" has 3 entries"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8,
         "\"data_offsets\" has 1 entries; it needs [begin, end]"},
        {"{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor \"a\": \"dtype\" is not a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "tensor \"a\": \"dtype\" appears twice"},
        {"{\"a\":5}", 0, "tensor \"a\": its entry is not an object"},
        {"{\"a\\u0000b\":{}}", 0, "a tensor name contains a NUL character"},
        {"[1, 2]", 0, "the header (byte 8 on) does not start with '{'"},
        {"{} x", 0, "unexpected text after the end of the JSON value"},
        {"{\"a\\q\":1}", 0, "(byte 3 of the header): an invalid escape in a string"},
        {"{\"\\ud800\":1}", 0, "a high surrogate in a \\u escape without its low surrogate"},
        {"{\"\\udc00\":1}", 0, "a lone low surrogate"},
        {"{\"\\u12\":1}", 0, "\\u must be followed by 4 hex digits"},
        {"{\"a\xff\":1}", 0, "(byte 3 of the header): not valid UTF-8"},
        {"{\"a\xc0\x80\":1}", 0, "not valid UTF-8"}, /* an overlong NUL */
        {"{\"a\tb\":1}", 0, "a control character inside a string"},
        {"{\"a\":01}", 0, "a number with a leading zero"},
        {"{\"a\":-}", 0, "a '-' must be followed by digits"},
        {"{\"a\":1.}", 0, "a '.' must be followed by digits"},
        {"{\"a\":1e}", 0, "an exponent must have digits"},
        {"{\"a\":tru}", 0, "unexpected text where a value was expected"},
        {"{\"a\":'x'}", 0, "unexpected character where a value was expected"},
        {"{" T("a", "F32", "[2]", 0, 8) ",}", 8, "expected a string key"},
        {"{\"a\" 1}", 0, "expected ':' after a key"},
        {"{\"a\":[1 2]}", 0, "expected ',' or ']' in an array"},
        {"{\"a", 0, "unterminated string"},
        {"{\"a\":", 0, "unexpected end where a value was expected"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "\"__metadata__\": key \"k\" is not a string"},
        {"{\"__metadata__\":[]}", 0, "\"__metadata__\" is not an object of strings"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "\"__metadata__\" appears twice"},
        {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "\"__metadata__\": key \"k\" appears twice"},
        {"{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
         "]]]]"
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         0, "nested more than 64 levels deep"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        tg_clear_error();
        tg_safetensors *st = tg_safetensors_open(write_st(name, bad[i].header, bad[i].data));
        CHECK(!st);
        tg_safetensors_close(st);
        CHECK_ERROR(bad[i].error);
        CHECK_ERROR(name);
        CHECK_ERROR("is not a valid safetensors file");
    }

    /* the header size itself */
    EXPECT_ERROR(!tg_safetensors_open(write_file("tiny.safetensors", "\x10\x00\x00", 3)),
                 "truncated: the file has 3 bytes, but it starts with an 8-byte header size");
    EXPECT_ERROR(!tg_safetensors_open(write_file("huge.safetensors", "\x00\xe1\xf5\x05\x00\x00\x00\x00{}", 10)),
                 "the header size in bytes 0-7, 100000000, runs past the end of the file (10 bytes)");
    EXPECT_ERROR(!tg_safetensors_open(write_file("limit.safetensors", "\x01\xe1\xf5\x05\x00\x00\x00\x00{}", 10)),
                 "the header size in bytes 0-7, 100000001, is over the limit of 100000000 bytes");
    EXPECT_ERROR(!tg_safetensors_open(write_file("ones.safetensors", "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10)),
                 "is over the limit");
    EXPECT_ERROR(!tg_safetensors_open(write_file("zero.safetensors", "\x00\x00\x00\x00\x00\x00\x00\x00", 8)),
                 "does not start with '{'");
    EXPECT_ERROR(!tg_safetensors_open(at("absent.safetensors")), "cannot open");
    EXPECT_ERROR(!tg_safetensors_open(tmpdir), "is not a regular file");
    tg_clear_error();
    EXPECT_ERROR(!tg_safetensors_open(NULL), "`path` is NULL");

    /* known to safetensors but not convertible: the file opens, the tensor is refused */
    tg_scope *s = tg_scope_begin();
    tg_safetensors *st = tg_safetensors_open(write_st("f8.safetensors", "{" T("a", "F8_E4M3", "[2]", 0, 2) "}", 2));
    CHECK(st && tg_safetensors_count(st) == 1);
    EXPECT_ERROR(!tg_safetensors_get(st, "a"), "tensor \"a\" has dtype F8_E4M3, which tapegrad cannot convert");
    tg_safetensors_close(st);
    tg_scope_end(s);
}

/* Every truncation of a valid file is refused; random damage never crashes. */
static void test_truncation_and_damage(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *t[3] = {tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), tg_from_i64(TG_SHAPE(1), 9),
                       tg_cast(tg_from_i32(TG_SHAPE(2), 1, 0), TG_BOOL)};
    const char *path = at("valid.safetensors");
    CHECK(tg_save_safetensors(path, t, (const char *[]){"w", "n", "m"}, 3, "{\"a\":\"b\"}") == 0);
    size_t n;
    unsigned char *file = slurp(path, &n);
    CHECK(file && n > 100);
    int refused = 0;
    for (size_t len = 0; file && len < n; len++) {
        tg_clear_error();
        tg_safetensors *st = tg_safetensors_open(write_file("cut.safetensors", file, len));
        refused += !st && tg_last_error() && strstr(tg_last_error(), "is not a valid safetensors file");
        tg_safetensors_close(st);
    }
    CHECK(refused == (int)n);

    /* Seeded random damage to the header or data: open either refuses with a message or
     * gives tensors that can all be read. */
    tg_rng *rng = tg_rng_new(1234);
    int opened = 0, failed_cleanly = 0, trials = 600;
    for (int trial = 0; file && trial < trials; trial++) {
        unsigned char *copy = malloc(n);
        memcpy(copy, file, n);
        int flips = 1 + (int)(tg_rng_next(rng) % 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)(tg_rng_next(rng) % n);
            copy[pos] = (unsigned char)(trial % 3 == 0 ? tg_rng_next(rng) : copy[pos] ^ (1u << (tg_rng_next(rng) % 8)));
        }
        tg_clear_error();
        tg_safetensors *st = tg_safetensors_open(write_file("damaged.safetensors", copy, n));
        if (st) {
            bool all = true;
            tg_scope *inner = tg_scope_begin();
            for (int i = 0; i < tg_safetensors_count(st); i++)
                all &= tg_safetensors_get(st, tg_safetensors_names(st)[i]) != NULL ||
                       strstr(tg_last_error(), "cannot convert") != NULL;
            tg_scope_end(inner);
            opened += all;
        } else {
            failed_cleanly += tg_last_error() && strstr(tg_last_error(), "is not a valid safetensors file");
        }
        tg_safetensors_close(st);
        free(copy);
    }
    CHECK(opened + failed_cleanly == trials);
    CHECK(failed_cleanly > 0 && opened > 0); /* both kinds of outcome were exercised */
    tg_rng_free(rng);
    free(file);
    tg_scope_end(s);
}

/* ---- numpy cross-check --------------------------------------------------------------------------- */
/* The fixture the numpy script writes: its values, as the script defines them. */
static void test_numpy_fixture(void)
{
    tg_scope *s = tg_scope_begin();
    tg_safetensors *st = tg_safetensors_open(FIXTURE);
    CHECK(st && tg_safetensors_count(st) == 15);
    if (!st) {
        tg_scope_end(s);
        return;
    }
    CHECK(!strcmp(tg_safetensors_metadata(st, "format"), "np"));
    CHECK(!strcmp(tg_safetensors_metadata(st, "writer"), "tools/safetensors_check.py"));
    static const struct {
        const char *name;
        tg_dtype dtype;
        int rank;
        int64_t n;
        double v[6];
    } want[] = {
        {"bias", TG_F32, 1, 3, {0.5, -1.25, 3.0}},
        {"weights", TG_F64, 2, 6, {-0.5, -0.25, 0, 0.25, 0.5, 0.75}},
        {"counts", TG_I64, 1, 4, {-3, 0, 7, 1099511627776.0}},
        {"ids", TG_I32, 2, 4, {1, -2, 3, -4}},
        {"mask", TG_BOOL, 1, 3, {1, 0, 1}},
        {"pixels", TG_I32, 2, 4, {0, 7, 128, 255}}, /* U8 */
        {"half", TG_F32, 1, 2, {1.5, -0.25}},       /* F16 */
        {"bf", TG_F32, 1, 2, {1.0, -2.5}},          /* BF16 */
        {"scalar", TG_F32, 0, 1, {42}},
        {"empty", TG_F32, 2, 0, {0}},
        {"i8", TG_I32, 1, 2, {-128, 127}},
        {"i16", TG_I32, 1, 2, {-32768, 32767}},
        {"u16", TG_I32, 1, 1, {65535}},
        {"u32", TG_I64, 1, 1, {4294967295.0}},
        {"na\xc3\xafve/\xc3\xbcnicode \"q\"", TG_F32, 1, 1, {7}}, /* \u escapes in the header */
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        tg_tensor *t = tg_safetensors_get(st, want[i].name);
        CHECK(t && tg_dtype_of(t) == want[i].dtype && tg_rank(t) == want[i].rank && tg_size(t) == want[i].n);
        double got[6] = {0};
        if (t && want[i].n)
            tg_copy_out_f64(t, got, want[i].n);
        for (int k = 0; k < want[i].n; k++)
            CHECK(got[k] == want[i].v[k]);
    }
    tg_safetensors_close(st);
    tg_scope_end(s);
}

static bool have_numpy(void)
{
    return access("/usr/bin/python3", X_OK) == 0 && system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

/* The script rewrites the fixture byte for byte, and reads tapegrad's files as tapegrad does. */
static void test_numpy_cross_check(void)
{
    if (!have_numpy()) {
        printf("  skipped: /usr/bin/python3 with numpy is missing (the committed fixture was still checked)\n");
        return;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' write '%s'", SCRIPT, at("np.safetensors"));
    CHECK(system(cmd) == 0);
    size_t n1, n2;
    unsigned char *a = slurp(at("np.safetensors"), &n1), *b = slurp(FIXTURE, &n2);
    CHECK(a && b && n1 == n2 && !memcmp(a, b, n1));
    free(a);
    free(b);

    tg_scope *s = tg_scope_begin();
    tg_tensor *t[6] = {
        tg_from_f32(TG_SHAPE(2, 2), 0.1f, -2.5f, 3e38f, 1e-40f),  tg_from_f64(TG_SHAPE(1, 3), 1.0 / 3, -0.0, 1e-310),
        tg_from_i32(TG_SHAPE(3), -2147483647 - 1, 0, 2147483647), tg_from_i64(TG_SHAPE(2), INT64_MIN, INT64_MAX),
        tg_cast(tg_from_i32(TG_SHAPE(2), 0, 1), TG_BOOL),         tg_scalar(-1.0),
    };
    const char *names[6] = {"layer1/kernel", "b", "ints", "longs", "mask", "\xc3\xa9t\xc3\xa9 \"x\"\\"};
    CHECK(tg_save_safetensors(at("tg.safetensors"), t, names, 6, "{\"epoch\": \"12\"}") == 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' dump --tapegrad '%s' > '%s'", SCRIPT, at("tg.safetensors"),
             at("dump.txt"));
    CHECK(system(cmd) == 0);
    FILE *f = fopen(at("dump.txt"), "r");
    char line[4096];
    int matched = 0, meta = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *name = line, *dtype = strchr(name, '\t'), *dims = dtype ? strchr(dtype + 1, '\t') : NULL;
        if (!strncmp(line, "#meta\t", 6)) {
            meta += !strcmp(line, "#meta\tepoch\t12");
            continue;
        }
        char *vals = dims ? strchr(dims + 1, '\t') : NULL;
        if (!vals)
            continue;
        *dtype++ = *dims++ = *vals++ = 0;
        for (int i = 0; i < 6; i++) {
            if (strcmp(name, names[i]))
                continue;
            static const char *const st_dtypes[] = {"F32", "F64", "I32", "I64", "BOOL"};
            CHECK(!strcmp(dtype, st_dtypes[tg_dtype_of(t[i])]));
            char shape[64] = "";
            for (int k = 0; k < tg_rank(t[i]); k++)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), k ? ",%lld" : "%lld",
                         (long long)tg_dim(t[i], k));
            CHECK(!strcmp(dims, shape));
            /* exact values: floats in Python's shortest round-trip form, integers in full */
            int64_t ints[4];
            double dbl[4];
            bool is_int = tg_dtype_of(t[i]) == TG_I32 || tg_dtype_of(t[i]) == TG_I64;
            if (is_int)
                tg_copy_out(tg_cast(t[i], TG_I64), ints, sizeof ints);
            else
                tg_copy_out_f64(tg_dtype_of(t[i]) == TG_BOOL ? tg_cast(t[i], TG_F64) : t[i], dbl, tg_size(t[i]));
            char *p = vals;
            for (int k = 0; k < tg_size(t[i]); k++) {
                char *end;
                if (is_int)
                    CHECK(strtoll(p, &end, 10) == ints[k]);
                else
                    CHECK(strtod(p, &end) == dbl[k] && signbit(strtod(p, NULL)) == signbit(dbl[k]));
                p = end;
            }
            matched++;
        }
    }
    if (f)
        fclose(f);
    CHECK(matched == 6 && meta == 1);
    tg_scope_end(s);
}

int main(void)
{
    if (!make_tmpdir("tapegrad-st")) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_exact_bytes);
    RUN(test_round_trip_all_dtypes);
    RUN(test_variables_by_name);
    RUN(test_save_errors);
    RUN(test_atomic_save);
    RUN(test_save_special_targets);
    RUN(test_write_file);
    RUN(test_corrupt_headers);
    RUN(test_truncation_and_damage);
    RUN(test_numpy_fixture);
    RUN(test_numpy_cross_check);
    remove_tmpdir();
    return TEST_SUMMARY();
}
