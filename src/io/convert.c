/* Element conversion from the types files store (any byte order, 8- to 64-bit integers,
 * half, bfloat16, float, double, bool) into tapegrad dtypes. */
#include <math.h>

#include "io_impl.h"

bool tg__host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

tg_dtype tg__raw_natural(tg__raw_type r)
{
    switch (r.kind) {
    case TG__RAW_FLOAT: return r.size == 8 ? TG_F64 : TG_F32;
    case TG__RAW_BF16: return TG_F32;
    case TG__RAW_BOOL: return TG_BOOL;
    case TG__RAW_INT: return r.size == 8 ? TG_I64 : TG_I32;
    case TG__RAW_UINT: return r.size >= 4 ? TG_I64 : TG_I32;
    }
    return TG_F32;
}

const char *tg__raw_name(tg__raw_type r)
{
    static const char *const ints[] = {"i8", "i16", "?", "i32", "?", "?", "?", "i64"};
    static const char *const uints[] = {"u8", "u16", "?", "u32", "?", "?", "?", "u64"};
    static const char *const floats[] = {"?", "f16", "?", "f32", "?", "?", "?", "f64"};
    if (r.size < 1 || r.size > 8)
        return "?";
    switch (r.kind) {
    case TG__RAW_FLOAT: return floats[r.size - 1];
    case TG__RAW_BF16: return "bf16";
    case TG__RAW_BOOL: return "bool";
    case TG__RAW_INT: return ints[r.size - 1];
    case TG__RAW_UINT: return uints[r.size - 1];
    }
    return "?";
}

bool tg__raw_check(tg_loc loc, const char *func, const char *what, tg__raw_type raw, tg_dtype dtype, double scale)
{
    if ((unsigned)dtype >= TG_DTYPE_COUNT) {
        tg__fail(loc, "%s: '%s': unknown output dtype %d", func, what, (int)dtype);
        return false;
    }
    bool raw_float = raw.kind == TG__RAW_FLOAT || raw.kind == TG__RAW_BF16;
    if (raw_float && (dtype == TG_I32 || dtype == TG_I64)) {
        tg__fail(loc,
                 "%s: '%s' holds %s values, which cannot be read as %s without truncating them; "
                 "read them as float32 or float64 and tg_cast the result",
                 func, what, tg__raw_name(raw), tg_dtype_name(dtype));
        return false;
    }
    if (scale != 1.0 && !tg_dtype_is_float(dtype)) {
        tg__fail(loc, "%s: '%s': .scale = %g needs a float output dtype, not %s", func, what, scale,
                 tg_dtype_name(dtype));
        return false;
    }
    if (!isfinite(scale)) {
        tg__fail(loc, "%s: '%s': .scale must be finite (got %g)", func, what, scale);
        return false;
    }
    return true;
}

bool tg__raw_is_native(tg__raw_type raw, tg_dtype dtype, double scale)
{
    if (scale != 1.0 || (raw.size > 1 && raw.big_endian != !tg__host_is_little_endian()))
        return false;
    switch (dtype) {
    case TG_F32: return raw.kind == TG__RAW_FLOAT && raw.size == 4;
    case TG_F64: return raw.kind == TG__RAW_FLOAT && raw.size == 8;
    case TG_I32: return raw.kind == TG__RAW_INT && raw.size == 4;
    case TG_I64: return raw.kind == TG__RAW_INT && raw.size == 8;
    default: return false; /* bools are normalised to 0/1 */
    }
}

static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v = exp == 0 ? ldexp(mant, -24) : exp == 31 ? (mant ? NAN : INFINITY) : ldexp(mant + 1024, exp - 25);
    return (h >> 15) ? -v : v;
}

static uint64_t load_bits(const unsigned char *p, int size, bool big_endian)
{
    uint64_t bits = 0;
    for (int k = 0; k < size; k++)
        bits |= (uint64_t)p[big_endian ? size - 1 - k : k] << (8 * k);
    return bits;
}

/* One element as a double (floats) or as a signed/unsigned integer. */
typedef struct {
    bool is_float, is_unsigned;
    double d;
    int64_t i;
    uint64_t u;
} value;

static value load(const unsigned char *p, tg__raw_type r)
{
    uint64_t bits = load_bits(p, r.size, r.big_endian);
    value v = {0};
    switch (r.kind) {
    case TG__RAW_FLOAT:
        v.is_float = true;
        if (r.size == 2) {
            v.d = half_to_double((uint16_t)bits);
        } else if (r.size == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            v.d = f;
        } else {
            memcpy(&v.d, &bits, 8);
        }
        break;
    case TG__RAW_BF16: {
        uint32_t b32 = (uint32_t)bits << 16;
        float f;
        memcpy(&f, &b32, 4);
        v.is_float = true;
        v.d = f;
        break;
    }
    case TG__RAW_BOOL: v.i = bits != 0; break;
    case TG__RAW_INT:
        /* sign-extend from size * 8 bits */
        v.i = r.size == 8 ? (int64_t)bits
                          : (int64_t)(bits ^ (1ull << (8 * r.size - 1))) - (int64_t)(1ll << (8 * r.size - 1));
        break;
    case TG__RAW_UINT:
        v.is_unsigned = true;
        v.u = bits;
        break;
    }
    return v;
}

static bool out_of_range(tg_loc loc, const char *func, const char *what, value v, tg_dtype dtype, int64_t index)
{
    if (v.is_unsigned)
        tg__fail(loc, "%s: '%s': element %lld is %llu, which does not fit %s", func, what, (long long)index,
                 (unsigned long long)v.u, tg_dtype_name(dtype));
    else
        tg__fail(loc, "%s: '%s': element %lld is %lld, which does not fit %s", func, what, (long long)index,
                 (long long)v.i, tg_dtype_name(dtype));
    return false;
}

static bool store(tg_loc loc, const char *func, const char *what, value v, void *dst, int64_t i, tg_dtype dtype,
                  double scale, int64_t index)
{
    switch (dtype) {
    case TG_F32:
    case TG_F64: {
        double d = v.is_float ? v.d : v.is_unsigned ? (double)v.u : (double)v.i;
        d *= scale;
        if (dtype == TG_F32)
            ((float *)dst)[i] = (float)d;
        else
            ((double *)dst)[i] = d;
        return true;
    }
    case TG_I32:
        if (v.is_unsigned ? v.u > INT32_MAX : (v.i < INT32_MIN || v.i > INT32_MAX))
            return out_of_range(loc, func, what, v, dtype, index);
        ((int32_t *)dst)[i] = v.is_unsigned ? (int32_t)v.u : (int32_t)v.i;
        return true;
    case TG_I64:
        if (v.is_unsigned && v.u > INT64_MAX)
            return out_of_range(loc, func, what, v, dtype, index);
        ((int64_t *)dst)[i] = v.is_unsigned ? (int64_t)v.u : v.i;
        return true;
    case TG_BOOL: ((uint8_t *)dst)[i] = v.is_float ? v.d != 0 : v.is_unsigned ? v.u != 0 : v.i != 0; return true;
    default: return false;
    }
}

bool tg__raw_convert(tg_loc loc, const char *func, const char *what, const void *src, tg__raw_type raw, int64_t n,
                     void *dst, tg_dtype dtype, double scale, int64_t first)
{
    const unsigned char *p = src;
    if (tg__raw_is_native(raw, dtype, scale)) {
        memcpy(dst, src, (size_t)n * (size_t)raw.size);
        return true;
    }
    /* The common image case (u8 pixels to scaled float32) skips the generic path. */
    if (raw.kind == TG__RAW_UINT && raw.size == 1 && dtype == TG_F32) {
        float *d = dst;
        for (int64_t i = 0; i < n; i++)
            d[i] = (float)(p[i] * scale); /* in double, as the generic path rounds */
        return true;
    }
    for (int64_t i = 0; i < n; i++)
        if (!store(loc, func, what, load(p + i * raw.size, raw), dst, i, dtype, scale, first + i))
            return false;
    return true;
}
