/* The LSTM cell's kernels for one float type, included by lstm_cell.c once per dtype with
 * T (float or double) and SFX (f32 or f64) defined, after sig_SFX, tanh_SFX, sig_any_SFX
 * and tail_SFX. Each row is one vectorised pass over its units; a row where a sigmoid's
 * input is in the logistic's tail (float32: below -9) is then done again, exactly. The
 * gates' pre-activations are z = a + b (x W + bias, and h U), added as they are read. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* Gate k's pre-activation at unit j: blocks i, f, g, o are k = 0, 1, 2, 3. */
#define Z(k, j) (a[(k)*u + (j)] + b[(k)*u + (j)])

/* Unit j: c = f c_prev + i g, h = o tanh(c). SIG is the logistic to use. */
#define CELL_AT(j, SIG)                                            \
    do {                                                           \
        T i_ = SIG(Z(0, j)), f_ = SIG(Z(1, j)), o_ = SIG(Z(3, j)); \
        T c_ = f_ * cp[j] + i_ * FN(tanh)(Z(2, j));                \
        c_out[j] = c_;                                             \
        h[j] = o_ * FN(tanh)(c_);                                  \
    } while (0)

/* Unit j's gradients, as TF's rules for the chain compose them: MulGrad, then TanhGrad
 * dy * (1 - y y) and SigmoidGrad dy * y * (1 - y) from the outputs. */
#define CELL_GRAD_AT(j, SIG)                                       \
    do {                                                           \
        T i_ = SIG(Z(0, j)), f_ = SIG(Z(1, j)), o_ = SIG(Z(3, j)); \
        T g_ = FN(tanh)(Z(2, j)), tc_ = FN(tanh)(c[j]);            \
        T dct_ = dc[j] + dh[j] * o_ * (1 - tc_ * tc_);             \
        dz[j] = dct_ * g_ * i_ * (1 - i_);                         \
        dz[u + j] = dct_ * cp[j] * f_ * (1 - f_);                  \
        dz[2 * u + j] = dct_ * i_ * (1 - g_ * g_);                 \
        dz[3 * u + j] = dh[j] * tc_ * o_ * (1 - o_);               \
        dcp[j] = dct_ * f_;                                        \
    } while (0)

/* Whether unit j has a sigmoid input in the logistic's tail. */
#define TAIL_AT(j) (FN(tail)(Z(0, j)) | FN(tail)(Z(1, j)) | FN(tail)(Z(3, j)))

/* One row of units; the parameters are restrict so that the loop vectorises. */
__attribute__((always_inline)) static inline void FN(cell_row)(int64_t u, const T *restrict a, const T *restrict b,
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

__attribute__((always_inline)) static inline void FN(cell_grad_row)(int64_t u, const T *restrict a, const T *restrict b,
                                                                    const T *restrict cp, const T *restrict c,
                                                                    const T *restrict dh, const T *restrict dc,
                                                                    T *restrict dz, T *restrict dcp)
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

#define ROW(t, width) ((const T *)(t)->data + r * (width))

TG_VECTOR_CLONES static void FN(cell_rows)(const cell_rows *k, int64_t r0, int64_t r1)
{
    int64_t u = k->units;
    for (int64_t r = r0; r < r1; r++)
        FN(cell_row)
    (u, ROW(k->a, 4 * u), ROW(k->b, 4 * u), ROW(k->cp, u), (T *)k->h->data + r * u, (T *)k->c->data + r * u);
}

TG_VECTOR_CLONES static void FN(cell_grad_rows)(const cell_rows *k, int64_t r0, int64_t r1)
{
    int64_t u = k->units;
    for (int64_t r = r0; r < r1; r++)
        FN(cell_grad_row)
    (u, ROW(k->a, 4 * u), ROW(k->b, 4 * u), ROW(k->cp, u), ROW(k->c, u), ROW(k->dh, u), ROW(k->dc, u),
     (T *)k->dz->data + r * 4 * u, (T *)k->dcp->data + r * u);
}

#undef ROW
#undef Z
#undef CELL_AT
#undef CELL_GRAD_AT
#undef TAIL_AT
#undef FN
#undef TG_CAT
#undef TG_CAT_
