/* The io readers: IDX (plain and gzip), NumPy .npy, CSV, data sets and Fashion-MNIST, on
 * small files written into a temporary folder, with every error path. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "tmpfiles.h"

static const char *write_text(const char *name, const char *text) { return write_file(name, text, strlen(text)); }

static const char *write_gz(const char *name, const void *data, size_t n)
{
    const char *p = at(name);
    gzFile g = gzopen(p, "wb");
    if (!g || gzwrite(g, data, (unsigned)n) != (int)n)
        printf("  cannot write %s\n", p);
    if (g)
        gzclose(g);
    return p;
}

/* ---- IDX ---------------------------------------------------------------------------------- */
/* An IDX header: type code, rank, dims (big-endian), into buf; returns its length. */
static size_t idx_header(unsigned char *buf, int type, int rank, const uint32_t *dims)
{
    buf[0] = buf[1] = 0;
    buf[2] = (unsigned char)type;
    buf[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        buf[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        buf[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        buf[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        buf[7 + 4 * i] = (unsigned char)dims[i];
    }
    return 4 + 4 * (size_t)rank;
}

/* 2 images of 2x3 u8 pixels. */
static size_t idx_images(unsigned char *buf)
{
    size_t n = idx_header(buf, 0x08, 3, (const uint32_t[]){2, 2, 3});
    const unsigned char px[12] = {0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6};
    memcpy(buf + n, px, 12);
    return n + 12;
}

static void test_idx_u8_plain_and_gzip(void)
{
    tg_scope *s = tg_scope_begin();
    unsigned char buf[64];
    size_t n = idx_images(buf);
    const char *plain = write_file("img.idx", buf, n), *gz = write_gz("img.idx.gz", buf, n);
    const char *paths[2] = {plain, gz};
    for (int k = 0; k < 2; k++) {
        tg_tensor *raw = tg_read_idx(paths[k]);
        CHECK(raw && tg_dtype_of(raw) == TG_F32 && tg_rank(raw) == 3 && tg_dim(raw, 0) == 2 && tg_dim(raw, 1) == 2 &&
              tg_dim(raw, 2) == 3);
        CHECK_VALUES(raw, 0, 0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6);
        tg_tensor *scaled = tg_read_idx(paths[k], .scale = 1.0 / 255);
        CHECK_VALUES(scaled, 1e-7, 0, 0.2, 0.4, 0.6, 0.8, 1.0, 1 / 255.0, 2 / 255.0, 3 / 255.0, 4 / 255.0, 5 / 255.0,
                     6 / 255.0);
        tg_tensor *ints = tg_read_idx(paths[k], .dtype = TG_I32);
        CHECK(ints && tg_dtype_of(ints) == TG_I32);
        CHECK_VALUES(ints, 0, 0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6);
        tg_tensor *f64 = tg_read_idx(paths[k], .dtype = TG_F64, .scale = 2);
        CHECK(f64 && tg_dtype_of(f64) == TG_F64);
        CHECK_VALUES(f64, 0, 0, 102, 204, 306, 408, 510, 2, 4, 6, 8, 10, 12);
    }
    tg_scope_end(s);
}

static void test_idx_other_types(void)
{
    tg_scope *s = tg_scope_begin();
    unsigned char buf[128];
    /* i8 labels, rank 1 */
    size_t n = idx_header(buf, 0x09, 1, (const uint32_t[]){3});
    buf[n++] = 0xFF; /* -1 */
    buf[n++] = 0x7F; /* 127 */
    buf[n++] = 0x80; /* -128 */
    tg_tensor *t = tg_read_idx(write_file("i8.idx", buf, n), .dtype = TG_I32);
    CHECK(t && tg_rank(t) == 1);
    CHECK_VALUES(t, 0, -1, 127, -128);
    /* i16, big-endian */
    n = idx_header(buf, 0x0B, 1, (const uint32_t[]){2});
    memcpy(buf + n, "\x01\x02\xFF\xFE", 4);
    t = tg_read_idx(write_file("i16.idx", buf, n + 4), .dtype = TG_I64);
    CHECK(t && tg_dtype_of(t) == TG_I64);
    CHECK_VALUES(t, 0, 258, -2);
    /* i32 */
    n = idx_header(buf, 0x0C, 2, (const uint32_t[]){1, 2});
    memcpy(buf + n, "\x00\x01\x00\x00\x80\x00\x00\x00", 8);
    t = tg_read_idx(write_file("i32.idx", buf, n + 8), .dtype = TG_I32);
    CHECK_VALUES(t, 0, 65536, -2147483648.0);
    /* f32: 1.5 = 0x3FC00000, -2 = 0xC0000000 */
    n = idx_header(buf, 0x0D, 1, (const uint32_t[]){2});
    memcpy(buf + n, "\x3F\xC0\x00\x00\xC0\x00\x00\x00", 8);
    t = tg_read_idx(write_file("f32.idx", buf, n + 8));
    CHECK_VALUES(t, 0, 1.5, -2);
    /* f64: 0.1 = 0x3FB999999999999A */
    n = idx_header(buf, 0x0E, 1, (const uint32_t[]){1});
    memcpy(buf + n, "\x3F\xB9\x99\x99\x99\x99\x99\x9A", 8);
    t = tg_read_idx(write_file("f64.idx", buf, n + 8), .dtype = TG_F64);
    CHECK(t && tg_dtype_of(t) == TG_F64);
    CHECK_VALUES(t, 0, 0.1);
    /* rank 0: one element */
    n = idx_header(buf, 0x08, 0, NULL);
    buf[n++] = 9;
    t = tg_read_idx(write_file("r0.idx", buf, n));
    CHECK(t && tg_rank(t) == 0);
    CHECK_VALUES(t, 0, 9);
    /* a zero dimension: no data */
    n = idx_header(buf, 0x08, 2, (const uint32_t[]){0, 5});
    t = tg_read_idx(write_file("empty.idx", buf, n));
    CHECK(t && tg_size(t) == 0 && tg_dim(t, 1) == 5);
    tg_scope_end(s);
}

static void test_idx_errors(void)
{
    tg_scope *s = tg_scope_begin();
    unsigned char buf[4096];
    size_t n = idx_images(buf);

    EXPECT_ERROR(!tg_read_idx(at("missing.idx")), "cannot open");
    CHECK_ERROR("No such file");
    EXPECT_ERROR(!tg_read_idx(NULL), "`path` is NULL");
    EXPECT_ERROR(!tg_read_idx(tmpdir), "not a regular file");

    EXPECT_ERROR(!tg_read_idx(write_file("short.idx", buf, 2)), "too short to be an IDX file: the file has 2 bytes");
    EXPECT_ERROR(!tg_read_idx(write_file("magic.idx", "\x12\x34\x08\x01", 4)),
                 "not an IDX file: it starts with 0x1234");
    EXPECT_ERROR(!tg_read_idx(write_file("type.idx", "\x00\x00\x0A\x01\x00\x00\x00\x01\x05", 9)),
                 "byte 2: unknown IDX type code 0x0A");
    EXPECT_ERROR(!tg_read_idx(write_file("rank.idx", "\x00\x00\x08\x09", 4)),
                 "byte 3: rank 9, but tapegrad tensors have at most 8 dimensions");
    EXPECT_ERROR(!tg_read_idx(write_file("dims.idx", buf, 10)),
                 "truncated in the dimensions: rank 3 needs 12 bytes after byte 4, the file has 6");

    CHECK(!tg_read_idx(write_file("trunc.idx", buf, n - 4)));
    CHECK_ERROR("truncated: the header (u8, shape (2, 2, 3)) promises 28 bytes (16 of header, 12 of data), but the "
                "file has 24");
    unsigned char longer[64];
    memcpy(longer, buf, n);
    longer[n] = 7;
    EXPECT_ERROR(!tg_read_idx(write_file("extra.idx", longer, n + 1)), "extra bytes after the data");
    CHECK_ERROR("but the file has 29");

    /* gzip: the decompressed content is short or long */
    CHECK(!tg_read_idx(write_gz("trunc.idx.gz", buf, n - 4)));
    CHECK_ERROR("truncated: the header (u8, shape (2, 2, 3)) promises 12 bytes of data after the 16-byte header, "
                "but the decompressed file has 8");
    EXPECT_ERROR(!tg_read_idx(write_gz("extra.idx.gz", longer, n + 1)),
                 "extra bytes after the 12 bytes of data the header promises");

    /* gzip: the compressed stream itself is cut short, or damaged */
    unsigned char big[3000];
    size_t bn = idx_header(big, 0x08, 1, (const uint32_t[]){2000});
    for (int i = 0; i < 2000; i++)
        big[bn + i] = (unsigned char)(i * 7919 % 251);
    write_gz("big.idx.gz", big, bn + 2000);
    FILE *f = fopen(at("big.idx.gz"), "rb");
    size_t gzn = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    CHECK(gzn > 100 && gzn < sizeof buf);
    tg_tensor *whole = tg_read_idx(at("big.idx.gz"), .dtype = TG_I32);
    CHECK(whole && tg_size(whole) == 2000);
    EXPECT_ERROR(!tg_read_idx(write_file("cut.idx.gz", buf, gzn / 2)),
                 "truncated: the header (u8, shape (2000,)) promises 2000 bytes of data");
    CHECK_ERROR("but the decompressed file has");
    EXPECT_ERROR(!tg_read_idx(write_file("notrailer.idx.gz", buf, gzn - 4)),
                 "truncated: the gzip data ends before its checksum");
    buf[gzn / 2] ^= 0xFF;
    buf[gzn / 2 + 1] ^= 0x55;
    buf[gzn / 2 + 2] ^= 0xAA;
    EXPECT_ERROR(!tg_read_idx(write_file("damaged.idx.gz", buf, gzn)), "corrupt gzip data after");

    /* absurd dimensions */
    size_t hn = idx_header(buf, 0x0E, 8, (const uint32_t[]){0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 2, 2, 2, 2, 2});
    EXPECT_ERROR(!tg_read_idx(write_file("overflow.idx", buf, hn)),
                 "the dimensions (4294967295, 4294967295)... overflow");
    hn = idx_header(buf, 0x08, 3, (const uint32_t[]){60000, 60000, 100});
    EXPECT_ERROR(!tg_read_idx(write_gz("huge.idx.gz", buf, hn + 10)), "promises 360000000000 bytes of data, more than");
    EXPECT_ERROR(!tg_read_idx(write_file("huge.idx", buf, hn + 10)),
                 "truncated: the header (u8, shape (60000, 60000, 100)) promises 360000000016 bytes");

    /* options that do not fit the data */
    n = idx_header(buf, 0x0D, 1, (const uint32_t[]){1});
    memcpy(buf + n, "\x3F\xC0\x00\x00", 4);
    EXPECT_ERROR(!tg_read_idx(write_file("f.idx", buf, n + 4), .dtype = TG_I32),
                 "holds f32 values, which cannot be read as int32 without truncating them");
    EXPECT_ERROR(!tg_read_idx(at("img.idx"), .dtype = TG_I32, .scale = 0.5),
                 ".scale = 0.5 needs a float output dtype, not int32");
    tg_scope_end(s);

    /* no scope: the tensor cannot be made, and nothing leaks */
    EXPECT_ERROR(!tg_read_idx(at("img.idx")), "no scope is open");
}

/* ---- .npy ------------------------------------------------------------------------------------ */
/* A .npy file of the given version with header dict `dict` (padded as numpy pads it) and data. */
static const char *write_npy(const char *name, int major, const char *dict, const void *data, size_t n)
{
    unsigned char buf[8192];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict), total = pre + dl + 1;
    size_t pad = (64 - total % 64) % 64, hlen = dl + pad + 1;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)hlen;
    buf[9] = (unsigned char)(hlen >> 8);
    if (major > 1)
        buf[10] = buf[11] = 0;
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', pad);
    buf[pre + dl + pad] = '\n';
    memcpy(buf + pre + hlen, data, n);
    return write_file(name, buf, pre + hlen + n);
}

static void test_npy_dtypes(void)
{
    tg_scope *s = tg_scope_begin();
    const float f4[6] = {1, 2, 3, 4.5f, -5, 6};
    tg_tensor *t = tg_read_npy(
        write_npy("f4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4, sizeof f4));
    CHECK(t && tg_dtype_of(t) == TG_F32 && tg_rank(t) == 2 && tg_dim(t, 0) == 2 && tg_dim(t, 1) == 3);
    CHECK_VALUES(t, 0, 1, 2, 3, 4.5, -5, 6);
    const double f8[2] = {0.1, -1e300};
    t = tg_read_npy(
        write_npy("f8.npy", 2, "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(2,)}", f8, sizeof f8));
    CHECK(t && tg_dtype_of(t) == TG_F64 && tg_rank(t) == 1);
    CHECK_VALUES(t, 0, 0.1, -1e300);
    const int64_t i8[3] = {-7, 1LL << 40, 3};
    t = tg_read_npy(
        write_npy("i8.npy", 3, "{'descr': '<i8', 'fortran_order': False, 'shape': ( 3 , ), }", i8, sizeof i8));
    CHECK(t && tg_dtype_of(t) == TG_I64);
    CHECK_VALUES(t, 0, -7, 1099511627776.0, 3);
    const unsigned char u1[4] = {0, 128, 255, 7};
    t = tg_read_npy(write_npy("u1.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", u1, 4));
    CHECK(t && tg_dtype_of(t) == TG_I32);
    CHECK_VALUES(t, 0, 0, 128, 255, 7);
    t = tg_read_npy(at("u1.npy"), .dtype = TG_F32, .scale = 1.0 / 255);
    CHECK_VALUES(t, 1e-7, 0, 128 / 255.0, 1, 7 / 255.0);
    const unsigned char b1[3] = {1, 0, 2};
    t = tg_read_npy(write_npy("b1.npy", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", b1, 3));
    CHECK(t && tg_dtype_of(t) == TG_BOOL);
    CHECK_VALUES(t, 0, 1, 0, 1);
    const unsigned char be[8] = {0x00, 0x00, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFE}; /* >i4: 256, -2 */
    t = tg_read_npy(write_npy("be.npy", 1, "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", be, 8));
    CHECK(t && tg_dtype_of(t) == TG_I32);
    CHECK_VALUES(t, 0, 256, -2);
    const uint16_t f2[3] = {0x3E00, 0xC400, 0x0001}; /* 1.5, -4, the smallest subnormal 2^-24 */
    t = tg_read_npy(write_npy("f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", f2, 6));
    CHECK(t && tg_dtype_of(t) == TG_F32);
    CHECK_VALUES(t, 0, 1.5, -4, 5.9604644775390625e-08);
    const int16_t i2[2] = {-300, 300};
    t = tg_read_npy(write_npy("i2.npy", 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", i2, 4),
                    .dtype = TG_F64);
    CHECK(t && tg_dtype_of(t) == TG_F64);
    CHECK_VALUES(t, 0, -300, 300);
    const float one = 3.25f;
    t = tg_read_npy(write_npy("scalar.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", &one, 4));
    CHECK(t && tg_rank(t) == 0);
    CHECK_VALUES(t, 0, 3.25);
    /* Python 2's long literals, and bytes after the array (another np.save to the same file) */
    const float two[3] = {1, 2, 99};
    t = tg_read_npy(write_npy("old.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", two, 12));
    CHECK(t && tg_size(t) == 2);
    CHECK_VALUES(t, 0, 1, 2);
    tg_scope_end(s);
}

static void test_npy_errors(void)
{
    tg_scope *s = tg_scope_begin();
    const float f4[6] = {1, 2, 3, 4, 5, 6};
    const int64_t big[1] = {1LL << 40};
    EXPECT_ERROR(!tg_read_npy(at("nope.npy")), "cannot open");
    EXPECT_ERROR(!tg_read_npy(write_text("text.npy", "hello, this is text")),
                 "is not a .npy file: it does not start with \"\\x93NUMPY\"");
    EXPECT_ERROR(!tg_read_npy(write_file("v4.npy", "\x93NUMPY\x04\x00\x10\x00{}", 12)),
                 "byte 6: format version 4.0 is not supported");
    EXPECT_ERROR(!tg_read_npy(write_file("len.npy", "\x93NUMPY\x01\x00\x00\x01{'descr'", 18)),
                 "truncated: the header length 256 at byte 8 runs past the end of the file (18 bytes)");
    EXPECT_ERROR(!tg_read_npy(write_file("lenbytes.npy", "\x93NUMPY\x02\x00\x10", 9)),
                 "the file ends inside the header length at byte 8");

    static const struct {
        const char *dict, *error;
    } bad[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", "fortran_order is True"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", "dtype '<c8' is not supported"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", "object arrays hold pickled Python objects"},
        {"{'descr': '<U5', 'fortran_order': False, 'shape': (3,), }", "dtype '<U5' is not supported"},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (3,), }", "'|' (no byte order) with a multi-byte type"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", "structured dtype"},
        {"{'descr': '<f4', 'shape': (3,), }", "the header needs the keys descr, fortran_order and shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}", "unknown key 'extra'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", "expected a non-negative integer dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "expected a non-negative integer dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", "more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3 4), }", "expected ',' or ')' in the shape tuple"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,), }", "fortran_order must be True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } junk", "unexpected text after the header dict"},
        {"{'descr: '<f4'}", "expected ':' after a key"},
        {"{'descr': '<f4' 'shape': (3,)}", "expected ',' or '}' in the header dict"},
        {"['descr']", "expected '{' starting the header dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", "dimension too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296,4294967296,4294967296), }",
         "the dimensions overflow"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", NULL}, /* valid, data truncated below */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.npy", i);
        tg_clear_error();
        CHECK(!tg_read_npy(write_npy(name, 1, bad[i].dict, f4, bad[i].error ? sizeof f4 : 20)));
        if (bad[i].error) {
            CHECK_ERROR(bad[i].error);
            CHECK_ERROR(name);
        } else {
            CHECK_ERROR(
                "truncated: shape (2, 3) of '<f4' needs 24 bytes of data after the 128-byte header, the file has 20");
        }
    }
    CHECK(!tg_read_npy(
        write_npy("f2i.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f4, sizeof f4),
        .dtype = TG_I64));
    CHECK_ERROR("holds f32 values, which cannot be read as int64");
    CHECK(!tg_read_npy(write_npy("wide.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", big, 8),
                       .dtype = TG_I32));
    CHECK_ERROR("element 0 is 1099511627776, which does not fit int32");
    tg_scope_end(s);
}

/* ---- CSV ----------------------------------------------------------------------------------- */
/* gzip-compressed files, whitespace between cells, leading lines skipped */
static void test_csv_layouts(void)
{
    tg_scope *s = tg_scope_begin();
    const char *text = "3,2,a,b\nx,y,label\n1,2,0\n3,4,1\n5,6,2\n";
    tg_csv d = tg_read_csv(write_gz("sk.csv.gz", text, strlen(text)), .skip_rows = 1, .label = "label");
    CHECK(d.rows == 3 && d.features == 2);
    CHECK_VALUES(d.x, 0, 1, 2, 3, 4, 5, 6);
    CHECK_VALUES(d.y, 0, 0, 1, 2);
    /* two gzip members one after the other (cat a.gz b.gz) read as one file, as gunzip does */
    size_t n;
    const char *one = write_gz("m1.gz", "x,y\n1,2\n", 8), *two = write_gz("m2.gz", "3,4\n", 4);
    char both[512];
    FILE *f = fopen(one, "rb"), *g = fopen(two, "rb");
    n = f ? fread(both, 1, 256, f) : 0;
    n += g ? fread(both + n, 1, 256, g) : 0;
    if (f)
        fclose(f);
    if (g)
        fclose(g);
    d = tg_read_csv(write_file("m.csv.gz", both, n), .label = "y");
    CHECK(d.rows == 2);
    CHECK_VALUES(d.y, 0, 2, 4);
    /* cut short: an error naming gzip, not fewer rows */
    d = tg_read_csv(write_file("cut.csv.gz", both, n / 2 + 1), .label = "y");
    CHECK(!d.x);
    CHECK_ERROR("gzip");
    /* whitespace: runs of spaces and tabs, blanks at both ends, a quoted cell */
    d = tg_read_csv(write_text("w.txt", "  a \t b\tc  \n1  \"2\"\t 3\n\t4 5 6 \n"), .delimiter = TG_CSV_WHITESPACE,
                    .label_index = -1);
    CHECK(d.rows == 2 && d.features == 2);
    CHECK_VALUES(d.x, 0, 1, 2, 4, 5);
    CHECK_VALUES(d.y, 0, 3, 6);
    /* tab-separated: an empty cell is still an error (tabs are not merged) */
    d = tg_read_csv(write_text("t.tsv", "a\tb\n1\t\t2\n"), .delimiter = '\t');
    CHECK(!d.x);
    /* skipping every line leaves no data */
    d = tg_read_csv(write_text("s.csv", "1,2\n3,4\n"), .header = false, .skip_rows = 5);
    CHECK(!d.x);
    CHECK_ERROR("empty");
    d = tg_read_csv(write_text("s2.csv", "1,2\n"), .skip_rows = -1);
    CHECK(!d.x);
    CHECK_ERROR(".skip_rows must be 0 or more");
    tg_scope_end(s);
}

static void test_csv_reads(void)
{
    tg_scope *s = tg_scope_begin();
    const char *p = write_text("a.csv", "a,b,label\n1,2,0\n3.5,-4,1\n");
    tg_csv d = tg_read_csv(p, .label = "label");
    CHECK(d.x && d.y && d.rows == 2 && d.features == 2);
    CHECK(d.x && tg_dtype_of(d.x) == TG_F32 && tg_dim(d.x, 0) == 2 && tg_dim(d.x, 1) == 2);
    CHECK(d.y && tg_dtype_of(d.y) == TG_I32 && tg_rank(d.y) == 1);
    CHECK_VALUES(d.x, 0, 1, 2, 3.5, -4);
    CHECK_VALUES(d.y, 0, 0, 1);

    /* by position: the first column, or -1 (the last); no label at all */
    d = tg_read_csv(p, .label_index = 0);
    CHECK_VALUES(d.x, 0, 2, 0, -4, 1);
    CHECK_VALUES(d.y, 0, 1, 3.5);
    CHECK(d.y && tg_dtype_of(d.y) == TG_F32); /* 3.5 is not an integer */
    d = tg_read_csv(p, .label_index = -1, .dtype = TG_F64);
    CHECK(d.x && tg_dtype_of(d.x) == TG_F64 && d.y && tg_dtype_of(d.y) == TG_I32);
    d = tg_read_csv(p);
    CHECK(d.x && !d.y && d.features == 3);
    CHECK_VALUES(d.x, 0, 1, 2, 0, 3.5, -4, 1);

    /* no header, ';', CRLF, a byte-order mark, blank lines, blanks around cells, quotes */
    p = write_text("b.csv", "\xEF\xBB\xBF 1 ; \"2.5\" ;7\r\n\r\n  \n-1e2;\"3\";8\r\n");
    d = tg_read_csv(p, .header = false, .delimiter = ';', .label_index = 2);
    CHECK(d.rows == 2 && d.features == 2);
    CHECK_VALUES(d.x, 0, 1, 2.5, -100, 3);
    CHECK_VALUES(d.y, 0, 7, 8);
    /* a quoted header name with an escaped quote and the delimiter inside */
    p = write_text("c.csv", "\"x,1\",\"say \"\"y\"\"\"\n4,5\n");
    d = tg_read_csv(p, .label = "say \"y\"");
    CHECK_VALUES(d.x, 0, 4);
    CHECK_VALUES(d.y, 0, 5);
    /* no newline at the end; labels past int32 are floats */
    d = tg_read_csv(write_text("d.csv", "f,l\n1,3000000000"), .label = "l");
    CHECK(d.y && tg_dtype_of(d.y) == TG_F32);
    tg_scope_end(s);
}

static void test_csv_errors(void)
{
    tg_scope *s = tg_scope_begin();
    static const struct {
        const char *text, *error;
        int mode; /* 0: header + label "label"; 1: no header; 2: header, no label */
    } bad[] = {
        {"", "the file is empty", 0},
        {"\n  \n", "the file is empty", 1},
        {"a,b,label\n", "the header is the only line: there are no rows of data", 0},
        {"a,b,label\n1,2,3\n4,5\n", "line 3 has 2 fields, but line 1 has 3", 0},
        {"a,b,label\n1,abc,3\n", "line 2, column 2 (\"b\"): \"abc\" is not a number", 0},
        {"a,b,label\n1,,3\n", "line 2, column 2 (\"b\"): the cell is empty", 0},
        {"a,b,label\n1,2,3,\n", "line 2 has 4 fields, but line 1 has 3", 0},
        {"a,b\n1,2\n", "pass .header = true", 1},
        {"a,b\n1,2\n", "no column is named \"label\"; the header (line 1) names \"a\", \"b\"", 0},
        {"a,\"b,label\n1,2\n", "line 1, column 2: a quoted field runs past the end of the line", 2},
        {"a,\"b\"x,label\n1,2,3\n", "line 1, column 2: text after the closing quote", 2},
        {"label,label\n1,2\n", "two columns are named \"label\" (columns 1 and 2)", 0},
        {"label\n1\n", "the only column is the label", 0},
        {"a,label\n1,2\n3,0x\n", "line 3, column 2 (\"label\"): \"0x\" is not a number", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.csv", i);
        const char *p = write_text(name, bad[i].text);
        tg_clear_error();
        tg_csv d = bad[i].mode == 0   ? tg_read_csv(p, .label = "label")
                   : bad[i].mode == 1 ? tg_read_csv(p, .header = false)
                                      : tg_read_csv(p);
        EXPECT_ERROR(!d.x && !d.y, bad[i].error);
        CHECK_ERROR(name);
    }
    const char *p = write_text("ok.csv", "a,b,c\n1,2,3\n");
    EXPECT_ERROR(!tg_read_csv(p, .label_index = 3).x, ".label_index = 3 is out of range for 3 columns");
    EXPECT_ERROR(!tg_read_csv(p, .label_index = -4).x, ".label_index = -4 is out of range");
    EXPECT_ERROR(!tg_read_csv(p, .label = "a", .label_index = 1).x, "by .label or by .label_index, not both");
    EXPECT_ERROR(!tg_read_csv(p, .label = "a", .header = false).x, "needs .header = true");
    EXPECT_ERROR(!tg_read_csv(p, .delimiter = '"').x, ".delimiter cannot be");
    EXPECT_ERROR(!tg_read_csv(p, .dtype = TG_I32).x, ".dtype must be TG_F32 or TG_F64 (got int32)");
    EXPECT_ERROR(!tg_read_csv(at("none.csv")).x, "cannot open");
    EXPECT_ERROR(!tg_read_csv(NULL).x, "`path` is NULL");
    EXPECT_ERROR(!tg_read_csv(write_file("nul.csv", "a,b\n1,\0\n", 8)).x, "line 2 contains a NUL byte");
    tg_scope_end(s);
}

/* ---- damaged files ------------------------------------------------------------------------------- */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    static unsigned char buf[4096];
    *n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    return buf;
}

/* Every truncation of a valid file gives a tensor or a message naming the file, and for
 * binary formats (`exact`) a message; seeded random damage gives a tensor or a message,
 * never a crash (ASan and UBSan watch). */
static void damage(const char *valid, tg_tensor *(*read)(const char *), bool exact, int trials, uint64_t seed)
{
    size_t n;
    unsigned char file[4096];
    memcpy(file, slurp(valid, &n), sizeof file);
    CHECK(n > 16);
    int outcomes = 0;
    for (size_t len = 0; len < n; len++) {
        tg_clear_error();
        const char *p = write_file("cut", file, len);
        bool got = read(p) != NULL;
        outcomes += got || (tg_last_error() && strstr(tg_last_error(), p));
        CHECK(!(exact && got));
    }
    CHECK(outcomes == (int)n);
    outcomes = 0;
    tg_rng *rng = tg_rng_new(seed);
    for (int trial = 0; trial < trials; trial++) {
        unsigned char copy[4096];
        memcpy(copy, file, n);
        for (int k = 1 + (int)(tg_rng_next(rng) % 3); k > 0; k--)
            copy[tg_rng_next(rng) % n] = (unsigned char)tg_rng_next(rng);
        tg_clear_error();
        const char *p = write_file("damaged", copy, n);
        outcomes += read(p) != NULL || (tg_last_error() && strstr(tg_last_error(), p));
    }
    CHECK(outcomes == trials);
    tg_rng_free(rng);
}

static tg_tensor *read_idx_default(const char *p) { return tg_read_idx(p); }
static tg_tensor *read_npy_default(const char *p) { return tg_read_npy(p); }
static tg_tensor *read_csv_x(const char *p) { return tg_read_csv(p, .label = "label").x; }

/* Writes `n` bytes of `text` repeated into fd, from a child process; the parent reads. */
static pid_t write_in_child(int fd, const char *text, size_t n)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        static char buf[1 << 16];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = text[i % strlen(text)];
        for (size_t done = 0; done < n;) {
            ssize_t w = write(fd, buf, n - done < sizeof buf ? n - done : sizeof buf);
            if (w <= 0)
                _exit(0); /* the reader stopped (EPIPE): expected past the line bound */
            done += (size_t)w;
        }
        _exit(0);
    }
    return pid;
}

/* Devices are refused (/dev/zero grew to 23 GB); pipes and FIFOs are read, and a line
 * with no end is refused at TG_CSV_MAX_LINE bytes, from a file or a pipe. */
static void test_csv_sources(void)
{
    EXPECT_ERROR(!tg_read_csv("/dev/zero", .label_index = 0).x,
                 "cannot read '/dev/zero': it is a device, not a file of data");
    EXPECT_ERROR(!tg_read_csv(tmpdir).x, "it is a folder");

    const char *fifo = at("data.fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(fifo, O_WRONLY);
        _exit(fd >= 0 && write(fd, "a,b\n1,2\n3,4\n", 12) == 12 ? 0 : 1);
    }
    tg_scope *s = tg_scope_begin();
    tg_csv d = tg_read_csv(fifo, .label = "b");
    CHECK(d.x && d.rows == 2 && d.features == 1);
    CHECK_VALUES(d.y, 0, 2, 4);
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    int fds[2];
    CHECK(pipe(fds) == 0); /* as csv:<(zcat f.gz) gives: /dev/fd/N */
    pid = write_in_child(fds[1], "1234567,", (size_t)TG_CSV_MAX_LINE + 100);
    close(fds[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fds[0]);
    EXPECT_ERROR(!tg_read_csv(path, .header = false).x, "line 1 is longer than 67108864 bytes, the limit for one row");
    close(fds[0]);
    waitpid(pid, &status, 0);
    unlink(fifo);
    tg_scope_end(s);
}

static void test_damaged_files(void)
{
    tg_scope *s = tg_scope_begin();
    unsigned char buf[256];
    size_t n = idx_images(buf);
    damage(write_file("v.idx", buf, n), read_idx_default, true, 300, 1);
    damage(write_gz("v.idx.gz", buf, n), read_idx_default, true, 300, 2);
    const double f8[4] = {1, 2, 3, 4};
    damage(write_npy("v.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", f8, sizeof f8),
           read_npy_default, true, 300, 3);
    damage(write_text("v.csv", "a,b,label\n1,2,0\n3.5,-4,1\n\"5\",6,7\n"), read_csv_x, false, 300, 4);
    tg_scope_end(s);
}

/* ---- data sets ----------------------------------------------------------------------------------- */
/* 10 rows: x[i] = (i, 10 i), y[i] = i. */
static tg_dataset *ten_rows(void)
{
    tg_scope *s = tg_scope_begin();
    float x[20];
    int32_t y[10];
    for (int i = 0; i < 10; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = 10.0f * (float)i;
        y[i] = i;
    }
    tg_dataset *ds =
        tg_dataset_new(tg_tensor_from(TG_F32, TG_SHAPE(10, 2), x), tg_tensor_from(TG_I32, TG_SHAPE(10), y));
    tg_scope_end(s); /* the data set keeps its own copy */
    return ds;
}

static void rows_of(const tg_dataset *ds, float *x, int32_t *y)
{
    tg_scope *s = tg_scope_begin();
    tg_copy_out(tg_dataset_x(ds), x, (size_t)tg_dataset_size(ds) * 2 * sizeof(float));
    tg_copy_out(tg_dataset_y(ds), y, (size_t)tg_dataset_size(ds) * sizeof(int32_t));
    tg_scope_end(s);
}

static void test_dataset_shuffle(void)
{
    tg_dataset *a = ten_rows(), *b = ten_rows(), *c = ten_rows();
    CHECK(a && tg_dataset_size(a) == 10);
    CHECK(tg_dataset_shuffle(a, 7) == 0 && tg_dataset_shuffle(b, 7) == 0 && tg_dataset_shuffle(c, 8) == 0);
    float xa[20], xb[20], xc[20];
    int32_t ya[10], yb[10], yc[10];
    rows_of(a, xa, ya);
    rows_of(b, xb, yb);
    rows_of(c, xc, yc);
    CHECK(!memcmp(xa, xb, sizeof xa) && !memcmp(ya, yb, sizeof ya)); /* same seed, same order */
    CHECK(memcmp(ya, yc, sizeof ya) != 0);                           /* another seed, another order */
    int seen[10] = {0}, moved = 0;
    for (int i = 0; i < 10; i++) {
        CHECK(ya[i] >= 0 && ya[i] < 10);
        if (ya[i] >= 0 && ya[i] < 10)
            seen[ya[i]]++;
        CHECK(xa[2 * i] == (float)ya[i] && xa[2 * i + 1] == 10.0f * (float)ya[i]); /* rows stay paired */
        moved += ya[i] != i;
    }
    for (int i = 0; i < 10; i++)
        CHECK(seen[i] == 1); /* a permutation */
    CHECK(moved > 0);
    tg_dataset_free(a);
    tg_dataset_free(b);
    tg_dataset_free(c);
    EXPECT_ERROR(tg_dataset_shuffle(NULL, 1) == -1, "`ds` is NULL");
}

static void test_dataset_split_batch(void)
{
    tg_dataset *ds = ten_rows(), *train = NULL, *val = NULL;
    CHECK(tg_dataset_split(ds, 0.25, &train, &val) == 0);
    CHECK(tg_dataset_size(train) == 7 && tg_dataset_size(val) == 3); /* floor(10 * 0.75) = 7 */
    tg_scope *s = tg_scope_begin();
    CHECK_VALUES(tg_dataset_y(val), 0, 7, 8, 9); /* the last rows, as Keras's validation_split */
    CHECK_VALUES(tg_dataset_y(train), 0, 0, 1, 2, 3, 4, 5, 6);
    tg_scope_end(s);
    tg_dataset_free(train);
    tg_dataset_free(val);
    CHECK(tg_dataset_split(ds, 0.95, &train, &val) == -1 && !train && !val);
    CHECK_ERROR("the data set has 10 rows, which is not sufficient to split it");
    EXPECT_ERROR(tg_dataset_split(ds, 1.5, &train, &val) == -1, "the fraction must be between 0 and 1");
    EXPECT_ERROR(tg_dataset_split(ds, 0.5, NULL, &val) == -1, "`train` and `val` must point");

    /* batches of 4: 4, 4, 2, then the end of the epoch, then the next epoch */
    CHECK(tg_dataset_batch(ds, 4) == 0);
    int sizes[5], k = 0, rc;
    double second[8] = {0};
    tg_tensor *xb, *yb;
    for (;;) {
        s = tg_scope_begin();
        rc = tg_dataset_next(ds, &xb, &yb);
        if (rc == 1) {
            CHECK(tg_dim(xb, 0) == tg_dim(yb, 0) && tg_dim(xb, 1) == 2 && tg_dtype_of(yb) == TG_I32);
            if (k == 1)
                tg_copy_out_f64(xb, second, 8);
            if (k < 5)
                sizes[k] = (int)tg_dim(xb, 0);
            k++;
        }
        tg_scope_end(s);
        if (rc != 1)
            break;
    }
    CHECK(rc == 0 && k == 3 && sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2);
    CHECK(second[0] == 4 && second[1] == 40 && second[6] == 7 && second[7] == 70);
    s = tg_scope_begin();
    CHECK(tg_dataset_next(ds, &xb, NULL) == 1 && tg_dim(xb, 0) == 4); /* a new epoch; labels not asked */
    CHECK_VALUES(xb, 0, 0, 0, 1, 10, 2, 20, 3, 30);
    tg_dataset_rewind(ds);
    CHECK(tg_dataset_next(ds, &xb, &yb) == 1);
    CHECK_VALUES(yb, 0, 0, 1, 2, 3);
    tg_scope_end(s);
    EXPECT_ERROR(tg_dataset_batch(ds, 0) == -1, "the batch size must be at least 1, got 0");
    CHECK(tg_dataset_next(ds, &xb, &yb) == -1); /* no scope open */
    CHECK_ERROR("no scope is open");
    tg_dataset_free(ds);
}

static void test_dataset_transforms(void)
{
    tg_dataset *ds = ten_rows();
    tg_scope *s = tg_scope_begin();
    CHECK(tg_dataset_scale(ds, 0.5) == 0);
    CHECK(tg_dataset_reshape(ds, TG_SHAPE(2, 1)) == 0);
    tg_tensor *x = tg_dataset_x(ds);
    CHECK(x && tg_rank(x) == 3 && tg_dim(x, 0) == 10 && tg_dim(x, 1) == 2 && tg_dim(x, 2) == 1);
    double v[20];
    tg_copy_out_f64(x, v, 20);
    CHECK(v[2] == 0.5 && v[3] == 5 && v[19] == 45);
    EXPECT_ERROR(tg_dataset_reshape(ds, TG_SHAPE(3)) == -1, "rows of shape (2, 1) have 2 elements; shape (3,) has 3");

    /* integer features cannot be scaled; a data set without labels */
    tg_dataset *ints = tg_dataset_new(tg_from_i32(TG_SHAPE(3), 1, 2, 3), NULL);
    EXPECT_ERROR(tg_dataset_scale(ints, 2) == -1, "the features are int32; scaling needs float32 or float64");
    CHECK(tg_dataset_y(ints) == NULL);
    tg_tensor *xb, *yb = (tg_tensor *)1;
    CHECK(tg_dataset_next(ints, &xb, &yb) == 1 && yb == NULL && tg_rank(xb) == 1);
    CHECK_VALUES(xb, 0, 1, 2, 3);
    tg_dataset_free(ints);

    EXPECT_ERROR(!tg_dataset_new(tg_zeros(TG_F32, TG_SHAPE(10, 2)), tg_zeros(TG_I32, TG_SHAPE(9))),
                 "x has 10 rows but y has 9");
    EXPECT_ERROR(!tg_dataset_new(tg_scalar(1.0), NULL), "x is a scalar");
    tg_clear_error(); /* a NULL input keeps an earlier error */
    EXPECT_ERROR(!tg_dataset_new(NULL, NULL), "`x` is NULL");
    tg_scope_end(s);
    tg_dataset_free(ds);
    tg_dataset_free(NULL);
    CHECK(tg_dataset_size(NULL) == -1);
}

/* ---- Fashion-MNIST ----------------------------------------------------------------------------------- */
/* A folder shaped like Debian's, with n tiny 2x2 images, labels = i % 10 (+ bad_label). */
static void fake_fmnist(const char *dir, const char *prefix, int n, int bad_label)
{
    unsigned char buf[256];
    char name[300];
    size_t h = idx_header(buf, 0x08, 3, (const uint32_t[]){(uint32_t)n, 2, 2});
    for (int i = 0; i < 4 * n; i++)
        buf[h + i] = (unsigned char)(i * 17);
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    gzFile g = gzopen(name, "wb");
    gzwrite(g, buf, (unsigned)(h + 4 * (size_t)n));
    gzclose(g);
    h = idx_header(buf, 0x08, 1, (const uint32_t[]){(uint32_t)n});
    for (int i = 0; i < n; i++)
        buf[h + i] = (unsigned char)(i % 10 + bad_label);
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    g = gzopen(name, "wb");
    gzwrite(g, buf, (unsigned)(h + (size_t)n));
    gzclose(g);
}

static void test_fashion_mnist_layout(void)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/fmnist", tmpdir);
    mkdir(dir, 0700);
    fake_fmnist(dir, "train", 12, 0);
    fake_fmnist(dir, "t10k", 3, 0);
    tg_dataset *train, *test;
    CHECK(tg_load_fashion_mnist(dir, &train, &test) == 0);
    CHECK(tg_dataset_size(train) == 12 && tg_dataset_size(test) == 3);
    tg_scope *s = tg_scope_begin();
    tg_tensor *x = tg_dataset_x(test), *y = tg_dataset_y(test);
    CHECK(x && tg_rank(x) == 3 && tg_dim(x, 1) == 2 && tg_dtype_of(x) == TG_F32 && tg_dtype_of(y) == TG_I32);
    CHECK_VALUES(y, 0, 0, 1, 2);
    double v[12];
    tg_copy_out_f64(x, v, 12);
    CHECK_NEAR(v[1], 17 / 255.0, 1e-7);
    CHECK_NEAR(v[11], 187 / 255.0, 1e-7);
    tg_scope_end(s);
    tg_dataset_free(train);
    tg_dataset_free(test);

    /* $FMNIST_DIR when no folder is given; one part only */
    setenv("FMNIST_DIR", dir, 1);
    CHECK(tg_load_fashion_mnist(NULL, NULL, &test) == 0 && tg_dataset_size(test) == 3);
    tg_dataset_free(test);
    unsetenv("FMNIST_DIR");

    CHECK(tg_load_fashion_mnist(at("no-such-folder"), &train, &test) == -1 && !train && !test);
    CHECK_ERROR("apt-get install dataset-fashion-mnist");
    CHECK_ERROR("train-images-idx3-ubyte.gz");
    fake_fmnist(dir, "t10k", 3, 8); /* labels 8, 9, 10 */
    CHECK(tg_load_fashion_mnist(dir, &train, &test) == -1 && !train && !test);
    CHECK_ERROR("are not Fashion-MNIST: a label is not in 0..9");
}

static void test_fashion_mnist_real(void)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("  skipped: %s is missing (apt-get install dataset-fashion-mnist)\n", dir);
        return;
    }
    clock_t t0 = clock();
    tg_dataset *train, *test;
    CHECK(tg_load_fashion_mnist(dir, &train, &test) == 0);
    CHECK(tg_dataset_size(train) == 60000 && tg_dataset_size(test) == 10000);
    tg_scope *s = tg_scope_begin();
    CHECK(tg_dataset_batch(test, 10000) == 0);
    tg_tensor *x, *y;
    CHECK(tg_dataset_next(test, &x, &y) == 1);
    CHECK(tg_rank(x) == 3 && tg_dim(x, 1) == 28 && tg_dim(x, 2) == 28);
    CHECK_NEAR(tg_item(tg_max(x)), 1.0, 0);
    CHECK_NEAR(tg_item(tg_min(x)), 0.0, 0);
    CHECK_NEAR(tg_item(tg_max(y)), 9, 0);
    CHECK_NEAR(tg_item(tg_min(y)), 0, 0);
    /* The first test image is an ankle boot (class 9), as in every copy of the data set. */
    CHECK_VALUES(tg_slice(y, TG_SHAPE(0), TG_SHAPE(1)), 0, 9);
    /* 1000 test images of each class */
    tg_tensor *counts = tg_sum(tg_one_hot(y, 10), .axes = TG_AXES(0));
    CHECK_VALUES(counts, 0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000);
    tg_scope_end(s);
    printf("  Fashion-MNIST loaded in %.2f s of CPU\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    tg_dataset_free(train);
    tg_dataset_free(test);
}

int main(void)
{
    if (!make_tmpdir("tapegrad-io")) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_idx_u8_plain_and_gzip);
    RUN(test_idx_other_types);
    RUN(test_idx_errors);
    RUN(test_npy_dtypes);
    RUN(test_npy_errors);
    RUN(test_csv_reads);
    RUN(test_csv_layouts);
    RUN(test_csv_errors);
    RUN(test_csv_sources);
    RUN(test_damaged_files);
    RUN(test_dataset_shuffle);
    RUN(test_dataset_split_batch);
    RUN(test_dataset_transforms);
    RUN(test_fashion_mnist_layout);
    RUN(test_fashion_mnist_real);
    remove_tmpdir(); /* with its fmnist folder */
    return TEST_SUMMARY();
}
