/* bfloat16, the storage dtype: tg_cast from float32, float64 and integers against the bits
 * PyTorch's .to(torch.bfloat16) gives (tests/fixtures/bf16_golden.txt, from
 * tools/make_bf16_fixtures.py: ties, overflow, subnormals, NaNs), back to float32
 * exactly, printing, a safetensors round trip, and the ops and optimizers that refuse it. */
#include <stdint.h>

#include "check.h"
#include "fixture.h"
#include "tmpfiles.h"

static bool is_bf16_nan(uint16_t b) { return (b & 0x7F80) == 0x7F80 && (b & 0x7F) != 0; }

static uint16_t bits_of(const tg_tensor *t, int64_t i)
{
    uint16_t b[256];
    tg_copy_out(t, b, sizeof(uint16_t) * (size_t)tg_size(t));
    return b[i];
}

static void test_against_pytorch(void)
{
    static fx_reader r;
    REQUIRE(fx_open(&r, "bf16_golden.txt", "tools/make_bf16_fixtures.py"));
    uint32_t f32[256];
    uint16_t want[256], want_d[16], want_i[16];
    double d[16], ints[16];
    int n = 0, nd = 0, ni = 0;
    char tag[32], *rest;
    while (fx_next(&r, tag, sizeof tag, &rest)) {
        char word[32];
        if ((!strcmp(tag, "d") || !strcmp(tag, "i")) && nd < 16 && ni < 16) {
            bool is_d = tag[0] == 'd';
            double v = 0;
            if (!fx_number(&rest, &v) || !fx_word(&rest, word, sizeof word))
                fx_fail(&r, "a bad line");
            (is_d ? d : ints)[is_d ? nd : ni] = v;
            (is_d ? want_d : want_i)[is_d ? nd++ : ni++] = (uint16_t)strtoul(word, NULL, 16);
        } else if (n < 256 && fx_word(&rest, word, sizeof word)) {
            f32[n] = (uint32_t)strtoul(tag, NULL, 16);
            want[n++] = (uint16_t)strtoul(word, NULL, 16);
        } else {
            fx_fail(&r, "a bad line");
        }
    }
    fx_close(&r);
    REQUIRE(!r.failed && n >= 80 && nd == 5 && ni == 9);
    tg_scope *s = tg_scope_begin();
    float fv[256];
    memcpy(fv, f32, sizeof(float) * (size_t)n);
    tg_tensor *b = tg_cast(tg_tensor_from(TG_F32, TG_SHAPE(n), fv), TG_BF16);
    REQUIRE(b && tg_dtype_of(b) == TG_BF16);
    tg_tensor *back = tg_cast(b, TG_F32);
    float fb[256];
    REQUIRE(tg_copy_out(back, fb, sizeof(float) * (size_t)n) == 0);
    int bad = 0;
    for (int i = 0; i < n && bad < 5; i++) {
        uint16_t got = bits_of(b, i);
        bool ok = fv[i] != fv[i] ? is_bf16_nan(got) && got == 0x7FC0 : got == want[i];
        uint32_t u;
        memcpy(&u, &fb[i], sizeof u);
        ok = ok && u == (uint32_t)got << 16; /* back to float32 exactly */
        if (!ok) {
            printf("  FAIL float32 %08X: bfloat16 %04X, PyTorch %04X\n", (unsigned)f32[i], got, want[i]);
            bad++;
        }
    }
    check_failures_in_test += bad;
    tg_tensor *bd = tg_cast(tg_tensor_from(TG_F64, TG_SHAPE(nd), d), TG_BF16);
    for (int i = 0; i < nd; i++)
        CHECK(bits_of(bd, i) == want_d[i]);
    int64_t iv[16];
    for (int i = 0; i < ni; i++)
        iv[i] = (int64_t)ints[i];
    tg_tensor *bi = tg_cast(tg_tensor_from(TG_I64, TG_SHAPE(ni), iv), TG_BF16);
    for (int i = 0; i < ni; i++)
        CHECK(bits_of(bi, i) == want_i[i]);
    tg_scope_end(s);
}

static void test_storage(void)
{
    REQUIRE(make_tmpdir("tg-bf16"));
    tg_scope *s = tg_scope_begin();
    CHECK(!strcmp(tg_dtype_name(TG_BF16), "bfloat16") && tg_dtype_size(TG_BF16) == 2 && !tg_dtype_is_float(TG_BF16));
    const uint16_t raw[4] = {0x3F80, 0xC049, 0x4120, 0x3DCD}; /* 1, -3.140625, 10, 0.10009765625 */
    tg_tensor *b = tg_tensor_from(TG_BF16, TG_SHAPE(2, 2), raw);
    CHECK_TENSOR(b, TG_SHAPE(2, 2), 0, 1, -3.140625, 10, 0.10009765625);
    char text[256];
    CHECK(tg_format(b, text, sizeof text) > 0 && strstr(text, "dtype=bfloat16") && strstr(text, "-3.141"));
    tg_tensor *i = tg_cast(b, TG_I32); /* through float32, truncated toward 0 */
    CHECK_VALUES(i, 0, 1, -3, 10, 0);
    /* saved as safetensors' BF16; read back, as every BF16 file is, as float32 */
    CHECK(tg_save_safetensors(at("b.safetensors"), &b, (const char *[]){"b"}, 1, NULL) == 0);
    tg_safetensors *st = tg_safetensors_open(at("b.safetensors"));
    const char *dtype = NULL;
    CHECK(st && tg_safetensors_info(st, "b", NULL, &dtype) == 0 && dtype && !strcmp(dtype, "BF16"));
    tg_tensor *loaded = st ? tg_safetensors_get(st, "b") : NULL;
    CHECK(loaded && tg_dtype_of(loaded) == TG_F32);
    CHECK_TENSOR(loaded, TG_SHAPE(2, 2), 0, 1, -3.140625, 10, 0.10009765625);
    tg_safetensors_close(st);
    tg_scope_end(s);
}

/* The ops of mixed precision take bfloat16 (test_mixed_precision, test_gemm_bf16); the
 * others say what they take, and an optimizer refuses a bfloat16 variable (its state would
 * be float32). */
static void test_refused(void)
{
    tg_scope *s = tg_scope_begin();
    tg_tensor *b = tg_cast(tg_from_f32(TG_SHAPE(2), 1, 2), TG_BF16);
    EXPECT_ERROR(tg_sin(b) == NULL, "tg_sin: `x` must be float32 or float64, not bfloat16 (cast it with tg_cast)");
    tg_tensor *sq = tg_cast(tg_from_f32(TG_SHAPE(2, 2), 1, 2, 3, 4), TG_BF16);
    EXPECT_ERROR(tg_linalg_inv(sq) == NULL, "not bfloat16");
    /* the widened ops: computed in float32, rounded once to bfloat16 */
    tg_tensor *r = tg_relu(tg_cast(tg_from_f32(TG_SHAPE(3), -1.0f, 1.00390625f, 3.0f), TG_BF16));
    double rv[3] = {0};
    CHECK(r && tg_dtype_of(r) == TG_BF16 && tg_copy_out_f64(r, rv, 3) == 0);
    CHECK(rv[0] == 0.0 && rv[1] == 1.0 && rv[2] == 3.0); /* 1 + 2^-8 was cast to 1 (the tie to even, down) */
    tg_tensor *sum = tg_add(tg_cast(tg_from_f32(TG_SHAPE(1), 1.0f), TG_BF16),
                            tg_cast(tg_from_f32(TG_SHAPE(1), 0.01171875f), TG_BF16)); /* 1 + 3 * 2^-8 */
    CHECK(sum && tg_dtype_of(sum) == TG_BF16 && tg_item(sum) == 1.015625);            /* the tie to even, up */
    tg_tensor *v = tg_variable(b, .name = "w");
    tg_optimizer *opt = tg_adam();
    tg_tensor *g = tg_cast(tg_from_f32(TG_SHAPE(2), 0.5f, 0.5f), TG_BF16);
    EXPECT_ERROR(tg_apply_gradients(opt, &g, &v, 1) == -1, "bfloat16");
    tg_optimizer_free(opt);
    tg_variable_free(v);
    tg_scope_end(s);
}

int main(void)
{
    RUN(test_against_pytorch);
    RUN(test_storage);
    RUN(test_refused);
    return TEST_SUMMARY();
}
