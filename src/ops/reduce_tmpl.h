/* The reduction kernels for one element type, included by reduce.c once per dtype with
 * T (the element), A (its accumulator: double for floats, int64_t for integers), ADD
 * (how A adds), ISNAN (false for integers) and SFX (f32, f64, i32 or i64) defined, after pass_ctx. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* One loop over a run per pass (the switch stays outside the loop). */
#define RUN_LOOP(STEP)                \
    for (int64_t k = 0; k < n; k++) { \
        A *d = acc + k * os;          \
        T v = x[k];                   \
        STEP;                         \
    }                                 \
    break

/* Combines n contiguous inputs from x[in] into acc[out + k * os] (os 0 or 1). NaN wins
 * max and min, as in numpy. */
static void FN(run)(const pass_ctx *c, int64_t in, int64_t out, int64_t n, int64_t os)
{
    const T *x = (const T *)c->x + in;
    A *acc = (A *)c->acc + out;
    const double *ref = c->ref ? c->ref + out : NULL;
    if (c->pass == P_SUM && os == 0) { /* the common inner sum: keep it in a register */
        A s = *acc;
        for (int64_t k = 0; k < n; k++)
            s = ADD(s, (A)x[k]);
        *acc = s;
        return;
    }
    if (c->pass == P_SUM && os == 1) { /* a row into column sums (bias gradients): vectorised */
        for (int64_t k = 0; k < n; k++)
            acc[k] = ADD(acc[k], (A)x[k]);
        return;
    }
    switch (c->pass) {
    case P_SUM: RUN_LOOP(*d = ADD(*d, (A)v));
    case P_MAX: RUN_LOOP(if (v > *d || ISNAN(v)) *d = v);
    case P_MIN: RUN_LOOP(if (v < *d || ISNAN(v)) *d = v);
    case P_EXPSUM: RUN_LOOP(*d += (A)exp((double)v - ref[k * os]));
    case P_SQDEV: RUN_LOOP(double e = (double)v - ref[k * os]; *d += (A)(e * e));
    }
}
#undef RUN_LOOP

/* Sums of columns [b, e) of x as [rows, len] into acc[b..e), each over the rows in order
 * (what run gives row by row, in one call: narrow rows, such as a bias's channels, cost a
 * call each otherwise). */
TG_VECTOR_CLONES static void FN(col_sums)(const pass_ctx *c, int64_t rows, int64_t len, int64_t b, int64_t e)
{
    const T *x = (const T *)c->x;
    A *restrict acc = (A *)c->acc + b;
    int64_t n = e - b;
    for (int64_t row = 0; row < rows; row++) {
        const T *restrict xr = x + row * len + b;
        for (int64_t k = 0; k < n; k++)
            acc[k] = ADD(acc[k], (A)xr[k]);
    }
}

/* Scans x as [outer, n, inner] along the middle axis; the first index wins ties, as TF,
 * and the first NaN wins over numbers, as numpy. `best` holds `inner` values. */
static void FN(arg)(const T *x, int64_t outer, int64_t n, int64_t inner, bool want_max, int64_t *idx, T *best)
{
    for (int64_t o = 0; o < outer; o++, x += n * inner, idx += inner) {
        memcpy(best, x, sizeof(T) * (size_t)inner);
        memset(idx, 0, sizeof(int64_t) * (size_t)inner);
        for (int64_t j = 1; j < n; j++) {
            const T *row = x + j * inner;
            for (int64_t i = 0; i < inner; i++) {
                T v = row[i], b = best[i];
                if ((want_max ? v > b : v < b) || (ISNAN(v) && !ISNAN(b))) {
                    best[i] = v;
                    idx[i] = j;
                }
            }
        }
    }
}

#undef FN
#undef TG_CAT
#undef TG_CAT_
