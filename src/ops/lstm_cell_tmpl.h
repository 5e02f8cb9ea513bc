/* The LSTM cell's kernels for one float type, included by lstm_cell.c once per dtype with
 * T (float or double) and SFX (f32 or f64) defined, after sig_SFX, tanh_SFX, sig_any_SFX
 * and tail_SFX. Each row is one vectorised pass over its units; a row where a sigmoid's
 * input is in the logistic's tail (float32: below -9) is then done again, exactly. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* One row's tensors: the gates' pre-activations zi, zf, zg, zo (z's four blocks). */
typedef struct FN(row) {
    const T *restrict zi, *restrict zf, *restrict zg, *restrict zo, *restrict cp, *restrict c, *restrict dh,
                                                                                                   *restrict dc;
    T *restrict h, *restrict c_out, *restrict dzi, *restrict dzf, *restrict dzg, *restrict dzo, *restrict dcp;
} FN(row);

static inline FN(row) FN(row_at)(const cell_rows *k, int64_t r)
{
    int64_t u = k->units;
    const T *z = (const T *)k->z->data + r * 4 * u;
    FN(row) w = {.zi = z, .zf = z + u, .zg = z + 2 * u, .zo = z + 3 * u, .cp = (const T *)k->cp->data + r * u};
    if (k->h) { /* forward */
        w.h = (T *)k->h->data + r * u;
        w.c_out = (T *)k->c->data + r * u;
    } else {
        T *dz = (T *)k->dz->data + r * 4 * u;
        w.c = (const T *)k->c->data + r * u;
        w.dh = (const T *)k->dh->data + r * u;
        w.dc = (const T *)k->dc->data + r * u;
        w.dzi = dz, w.dzf = dz + u, w.dzg = dz + 2 * u, w.dzo = dz + 3 * u;
        w.dcp = (T *)k->dcp->data + r * u;
    }
    return w;
}

/* Unit j: c = f c_prev + i g, h = o tanh(c). SIG is the logistic to use. */
#define CELL_AT(j, SIG)                                      \
    do {                                                     \
        T i_ = SIG(zi[j]), f_ = SIG(zf[j]), o_ = SIG(zo[j]); \
        T c_ = f_ * cp[j] + i_ * FN(tanh)(zg[j]);            \
        c_out[j] = c_;                                       \
        h[j] = o_ * FN(tanh)(c_);                            \
    } while (0)

/* Unit j's gradients, as TF's rules for the chain compose them: MulGrad, then TanhGrad
 * dy * (1 - y y) and SigmoidGrad dy * y * (1 - y) from the outputs. */
#define CELL_GRAD_AT(j, SIG)                                 \
    do {                                                     \
        T i_ = SIG(zi[j]), f_ = SIG(zf[j]), o_ = SIG(zo[j]); \
        T g_ = FN(tanh)(zg[j]), tc_ = FN(tanh)(c[j]);        \
        T dct_ = dc[j] + dh[j] * o_ * (1 - tc_ * tc_);       \
        dzi[j] = dct_ * g_ * i_ * (1 - i_);                  \
        dzf[j] = dct_ * cp[j] * f_ * (1 - f_);               \
        dzg[j] = dct_ * i_ * (1 - g_ * g_);                  \
        dzo[j] = dh[j] * tc_ * o_ * (1 - o_);                \
        dcp[j] = dct_ * f_;                                  \
    } while (0)

/* Whether unit j has a sigmoid input in the logistic's tail. */
#define TAIL_AT(j) (FN(tail)(zi[j]) | FN(tail)(zf[j]) | FN(tail)(zo[j]))

/* One row of units: the parameters are restrict so that the loop vectorises. */
__attribute__((always_inline)) static inline void FN(cell_row)(int64_t u, const T *restrict zi, const T *restrict zf,
                                                               const T *restrict zg, const T *restrict zo,
                                                               const T *restrict cp, T *restrict h, T *restrict c_out)
{
    int tail = 0;
    for (int64_t j = 0; j < u; j++) {
        CELL_AT(j, FN(sig));
        tail |= TAIL_AT(j);
    }
    for (int64_t j = 0; tail && j < u; j++)
        if (TAIL_AT(j))
            CELL_AT(j, FN(sig_any));
}

__attribute__((always_inline)) static inline void FN(cell_grad_row)(
    int64_t u, const T *restrict zi, const T *restrict zf, const T *restrict zg, const T *restrict zo,
    const T *restrict cp, const T *restrict c, const T *restrict dh, const T *restrict dc, T *restrict dzi,
    T *restrict dzf, T *restrict dzg, T *restrict dzo, T *restrict dcp)
{
    int tail = 0;
    for (int64_t j = 0; j < u; j++) {
        CELL_GRAD_AT(j, FN(sig));
        tail |= TAIL_AT(j);
    }
    for (int64_t j = 0; tail && j < u; j++)
        if (TAIL_AT(j))
            CELL_GRAD_AT(j, FN(sig_any));
}

TG_VECTOR_CLONES static void FN(cell_rows)(const cell_rows *k, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        FN(row) w = FN(row_at)(k, r);
        FN(cell_row)(k->units, w.zi, w.zf, w.zg, w.zo, w.cp, w.h, w.c_out);
    }
}

TG_VECTOR_CLONES static void FN(cell_grad_rows)(const cell_rows *k, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        FN(row) w = FN(row_at)(k, r);
        FN(cell_grad_row)(k->units, w.zi, w.zf, w.zg, w.zo, w.cp, w.c, w.dh, w.dc, w.dzi, w.dzf, w.dzg, w.dzo, w.dcp);
    }
}

#undef CELL_AT
#undef CELL_GRAD_AT
#undef TAIL_AT
#undef FN
#undef TG_CAT
#undef TG_CAT_
