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

/* ---- the sequence op's step rows (lstm_sequence): the gates are kept, activated ---- */
/* Unit j of one step: the activated gates into gt (i, f, g, o), c and h; the same
 * arithmetic as CELL_AT. */
#define SEQ_CELL_AT(j, SIG)                                                                \
    do {                                                                                   \
        T i_ = SIG(Z(0, j)), f_ = SIG(Z(1, j)), o_ = SIG(Z(3, j)), g_ = FN(tanh)(Z(2, j)); \
        T c_ = f_ * cp[j] + i_ * g_;                                                       \
        gt[j] = i_, gt[u + j] = f_, gt[2 * u + j] = g_, gt[3 * u + j] = o_;                \
        c_out[j] = c_;                                                                     \
        h[j] = o_ * FN(tanh)(c_);                                                          \
    } while (0)

__attribute__((always_inline)) static inline void FN(seq_row)(int64_t u, const T *restrict a, const T *restrict b,
                                                              const T *restrict cp, T *restrict gt, T *restrict h,
                                                              T *restrict c_out)
{
    int tail = 0;
    for (int64_t j = 0; j < u; j++) {
        SEQ_CELL_AT(j, FN(sig));
        tail |= TAIL_AT(j);
    }
    for (int64_t j = 0; tail && j < u; j++)
        if (TAIL_AT(j))
            SEQ_CELL_AT(j, FN(sig_any));
}

/* Unit j's gradients from the kept gates, as CELL_GRAD_AT composes TF's rules; dh and dc
 * sum the step's own output gradient and the next step's; DG(k) adds the gradient of the
 * kept gate k itself. dcn becomes dc_prev. */
#define SEQ_GRAD_AT(j, DG)                                                    \
    do {                                                                      \
        T i_ = gt[j], f_ = gt[u + j], g_ = gt[2 * u + j], o_ = gt[3 * u + j]; \
        T tc_ = FN(tanh)(c[j]), dh_ = dh[j] + dhn[j];                         \
        T dct_ = dc[j] + dcn[j] + dh_ * o_ * (1 - tc_ * tc_);                 \
        dz[j] = (dct_ * g_ DG(0, j)) * i_ * (1 - i_);                         \
        dz[u + j] = (dct_ * cp[j] DG(1, j)) * f_ * (1 - f_);                  \
        dz[2 * u + j] = (dct_ * i_ DG(2, j)) * (1 - g_ * g_);                 \
        dz[3 * u + j] = (dh_ * tc_ DG(3, j)) * o_ * (1 - o_);                 \
        dcn[j] = dct_ * f_;                                                   \
    } while (0)
#define NO_DG(k, j)
#define ADD_DG(k, j) +dg[(k)*u + (j)]

__attribute__((always_inline)) static inline void FN(seq_grad_row)(int64_t u, const T *restrict gt, const T *restrict c,
                                                                   const T *restrict cp, const T *restrict dh,
                                                                   const T *restrict dhn, const T *restrict dc,
                                                                   const T *restrict dg, T *restrict dcn,
                                                                   T *restrict dz)
{
    if (dg)
        for (int64_t j = 0; j < u; j++)
            SEQ_GRAD_AT(j, ADD_DG);
    else
        for (int64_t j = 0; j < u; j++)
            SEQ_GRAD_AT(j, NO_DG);
}

/* Rows [r0, r1) of step k->step: row r of step s is s * batch + r in the (time, batch, .)
 * tensors. */
TG_VECTOR_CLONES static void FN(seq_rows)(const seq_step *k, int64_t r0, int64_t r1)
{
    int64_t u = k->units;
    for (int64_t r = r0; r < r1; r++) {
        int64_t at = k->step * k->batch + r;
        FN(seq_row)
        (u, (const T *)k->xw + at * 4 * u, (const T *)k->z + r * 4 * u, (const T *)k->cp + r * u,
         (T *)k->gates + at * 4 * u, (T *)k->hs + at * u, (T *)k->cs + at * u);
    }
}

TG_VECTOR_CLONES static void FN(seq_grad_rows)(const seq_step *k, int64_t r0, int64_t r1)
{
    int64_t u = k->units;
    for (int64_t r = r0; r < r1; r++) {
        int64_t at = k->step * k->batch + r;
        FN(seq_grad_row)
        (u, (const T *)k->gates + at * 4 * u, (const T *)k->cs + at * u, (const T *)k->cp + r * u,
         (const T *)k->dhs + at * u, (const T *)k->dhn + r * u, (const T *)k->dcs + at * u,
         k->dgates ? (const T *)k->dgates + at * 4 * u : NULL, (T *)k->dcn + r * u, (T *)k->dxw + at * 4 * u);
    }
}

#undef SEQ_CELL_AT
#undef SEQ_GRAD_AT
#undef NO_DG
#undef ADD_DG
#undef ROW
#undef Z
#undef CELL_AT
#undef CELL_GRAD_AT
#undef TAIL_AT
#undef FN
#undef TG_CAT
#undef TG_CAT_
