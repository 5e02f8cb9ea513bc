/* The window loops of conv.c for one float type, included by conv.c once per dtype with
 * T (float or double) and SFX (f32 or f64) defined, after the window, pool_ctx,
 * window_span, PIXEL, CELL and POOL_CH it uses. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* For every output position and window row: the image row segment it covers. `add`
 * selects col2im (accumulate into the image) over im2col (copy into the patch, `pad`
 * where the window leaves the image). */
static void FN(window_copy)(T *img, T *cols, const window *G, T pad, bool add)
{
    const int64_t C = G->c, K = patch_len(G);
    for (int64_t n = 0; n < G->n; n++)
        for (int64_t y = 0; y < G->oh; y++)
            for (int64_t x = 0; x < G->ow; x++) {
                T *row = cols + ((n * G->oh + y) * G->ow + x) * K;
                int64_t ix0 = x * G->sw - G->pl;
                for (int64_t a = 0; a < G->kh; a++) {
                    T *seg = row + a * G->kw * C;
                    int64_t iy = y * G->sh - G->pt + a * G->dh;
                    bool rin = iy >= 0 && iy < G->h;
                    T *src = rin ? img + ((n * G->h + iy) * G->w) * C : NULL;
                    if (!add && rin && G->dw == 1 && ix0 >= 0 && ix0 + G->kw <= G->w) {
                        memcpy(seg, src + ix0 * C, sizeof(T) * (size_t)(G->kw * C));
                        continue; /* the whole window row lies inside the image */
                    }
                    for (int64_t b = 0; b < G->kw; b++) {
                        int64_t ix = ix0 + b * G->dw;
                        T *d = seg + b * C;
                        bool inside = rin && ix >= 0 && ix < G->w;
                        if (add) {
                            if (inside)
                                for (int64_t q = 0; q < C; q++)
                                    src[ix * C + q] += d[q];
                        } else if (inside) {
                            memcpy(d, src + ix * C, sizeof(T) * (size_t)C);
                        } else {
                            for (int64_t q = 0; q < C; q++)
                                d[q] = pad;
                        }
                    }
                }
            }
}

/* Forward, over output rows [r0, r1) (row = n * oh + oy). Max: NaN wins, as tg_max. Avg:
 * double sums, as tg_mean and tg_sum. */
TG_VECTOR_CLONES static void FN(pool_rows)(const pool_ctx *r, int64_t r0, int64_t r1, bool is_max)
{
    const window *G = &r->w;
    const T *x_ = r->c->in[0]->data;
    T *o_ = r->out->data;
    double acc[POOL_CH];
    for (int64_t row = r0; row < r1; row++)
        for (int64_t ox = 0; ox < G->ow; ox++) {
            int64_t n = row / G->oh, oy = row % G->oh, y0, y1, x0, x1;
            window_span(G, oy, ox, &y0, &y1, &x0, &x1);
            T *o = CELL(o_, G, n, oy, ox);
            for (int64_t q0 = 0; q0 < G->c; q0 += POOL_CH) {
                int64_t nq = G->c - q0 < POOL_CH ? G->c - q0 : POOL_CH;
                for (int64_t q = 0; q < nq; q++)
                    acc[q] = is_max ? -INFINITY : 0.0;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) {
                        const T *src = PIXEL(x_, G, n, iy, ix) + q0;
                        if (is_max)
                            for (int64_t q = 0; q < nq; q++) {
                                double v = src[q];
                                acc[q] = v > acc[q] || v != v ? v : acc[q];
                            }
                        else
                            for (int64_t q = 0; q < nq; q++)
                                acc[q] += (double)src[q];
                    }
                double cnt = (double)((y1 - y0) * (x1 - x0));
                for (int64_t q = 0; q < nq; q++)
                    o[q0 + q] = is_max          ? (T)acc[q]
                                : r->padded_avg ? (T)acc[q] / (T)cnt
                                                : (T)(acc[q] * (1.0 / (double)(G->kh * G->kw)));
            }
        }
}

/* Gradients, over images [i0, i1): windows of one image touch only that image, and each
 * image's windows are taken in the chain's order, so each pixel adds up in the same order.
 *   max_pool2d_grad:   dx[first] += dy[w], first the window's first maximum (row-major)
 *   max_pool2d_gather: g[w] = h[first]
 *   avg_pool2d_grad:   dx[pos] += dy[w] / count
 * Channels are the inner loop, POOL_CH at a time. */
TG_VECTOR_CLONES static void FN(pool_grad_images)(const pool_ctx *r, int64_t i0, int64_t i1, tg_op_kind op)
{
    const window *G = &r->w;
    bool avg = op == TG_OP_AVG_POOL2D_GRAD, gather = op == TG_OP_MAX_POOL2D_GATHER;
    const T *x_ = avg ? NULL : (const T *)r->c->in[0]->data;
    const T *y_ = avg ? NULL : (const T *)r->c->in[1]->data;
    const T *d_ = r->c->in[r->c->n - 1]->data;
    T *o_ = r->out->data, share[POOL_CH], sum[POOL_CH];
    int64_t first[POOL_CH];
    if (!gather)
        memset(PIXEL(o_, G, i0, 0, 0), 0, sizeof(T) * (size_t)((i1 - i0) * G->h * G->w * G->c));
    for (int64_t n = i0; n < i1; n++)
        for (int64_t oy = 0; oy < G->oh; oy++)
            for (int64_t ox = 0; ox < G->ow; ox++) {
                int64_t y0, y1, x0, x1;
                window_span(G, oy, ox, &y0, &y1, &x0, &x1);
                T cnt = (T)(r->padded_avg ? (y1 - y0) * (x1 - x0) : G->kh * G->kw);
                for (int64_t q0 = 0; q0 < G->c; q0 += POOL_CH) {
                    int64_t nq = G->c - q0 < POOL_CH ? G->c - q0 : POOL_CH;
                    const T *y = avg ? NULL : CELL(y_, G, n, oy, ox) + q0;
                    const T *dy = gather ? NULL : CELL(d_, G, n, oy, ox) + q0;
                    if (avg) {
                        for (int64_t q = 0; q < nq; q++)
                            share[q] = dy[q] / cnt;
                        for (int64_t iy = y0; iy < y1; iy++)
                            for (int64_t ix = x0; ix < x1; ix++) {
                                int64_t at = PIXEL((int64_t)0, G, n, iy, ix) + q0;
                                for (int64_t q = 0; q < nq; q++)
                                    o_[at + q] += share[q];
                            }
                        continue;
                    }
                    for (int64_t q = 0; q < nq; q++)
                        first[q] = -1;
                    for (int64_t iy = y0; iy < y1; iy++) /* row-major: the first maximum wins */
                        for (int64_t ix = x0; ix < x1; ix++) {
                            int64_t at = PIXEL((int64_t)0, G, n, iy, ix) + q0;
                            for (int64_t q = 0; q < nq; q++)
                                if (first[q] < 0 && x_[at + q] == y[q])
                                    first[q] = at + q;
                        }
                    for (int64_t q = 0; q < nq; q++) { /* none for a NaN maximum */
                        if (gather)
                            sum[q] = first[q] < 0 ? 0 : d_[first[q]];
                        else if (first[q] >= 0)
                            o_[first[q]] += dy[q];
                    }
                    if (gather)
                        memcpy(CELL(o_, G, n, oy, ox) + q0, sum, sizeof(T) * (size_t)nq);
                }
            }
}

/* One window's pixel for max_pool2d_grad where windows tile: dy where the pixel is the
 * channel's first maximum (0 + dy, the sum the general loop makes), 0 elsewhere. */
__attribute__((always_inline)) static inline void FN(tile_pixel)(int64_t nq, const T *restrict x, const T *restrict y,
                                                                 const T *restrict dy, T *restrict o,
                                                                 unsigned char *restrict taken)
{
    for (int64_t q = 0; q < nq; q++) {
        bool hit = !taken[q] && x[q] == y[q];
        o[q] = hit ? 0 + dy[q] : 0;
        taken[q] |= hit;
    }
}

/* max_pool2d_grad, images [i0, i1), when the windows tile the image (stride = window, no
 * padding): every pixel is written once, in one pass over x, instead of zeroing the image
 * and adding into it; the values are the general loop's, bit for bit. */
TG_VECTOR_CLONES static void FN(max_pool_grad_tiled)(const pool_ctx *r, int64_t i0, int64_t i1)
{
    const window *G = &r->w;
    const T *x_ = r->c->in[0]->data, *y_ = r->c->in[1]->data, *d_ = r->c->in[2]->data;
    T *o_ = r->out->data;
    unsigned char taken[POOL_CH];
    for (int64_t n = i0; n < i1; n++) {
        for (int64_t oy = 0; oy < G->oh; oy++)
            for (int64_t ox = 0; ox < G->ow; ox++)
                for (int64_t q0 = 0; q0 < G->c; q0 += POOL_CH) {
                    int64_t nq = G->c - q0 < POOL_CH ? G->c - q0 : POOL_CH;
                    const T *y = CELL(y_, G, n, oy, ox) + q0, *dy = CELL(d_, G, n, oy, ox) + q0;
                    memset(taken, 0, sizeof taken);
                    for (int64_t a = 0; a < G->kh; a++) /* row-major: the first maximum wins */
                        for (int64_t b = 0; b < G->kw; b++) {
                            int64_t at = PIXEL((int64_t)0, G, n, oy * G->kh + a, ox * G->kw + b) + q0;
                            FN(tile_pixel)(nq, x_ + at, y, dy, o_ + at, taken);
                        }
                }
        for (int64_t iy = 0; iy < G->h; iy++) { /* the pixels no window covers */
            int64_t x0 = iy < G->oh * G->kh ? G->ow * G->kw : 0;
            if (x0 < G->w)
                memset(PIXEL(o_, G, n, iy, x0), 0, sizeof(T) * (size_t)((G->w - x0) * G->c));
        }
    }
}

/* 2x2 windows with stride 2 and no padding (Keras's MaxPooling2D(2)), the common case,
 * each window's four pixels read in place with channels the inner loop. Max forward over
 * output rows [r0, r1): the general loop's order and select (NaN wins, the last NaN), so
 * the same bits (its double accumulator only widens each value and narrows it back). */
TG_VECTOR_CLONES static void FN(max_pool_2x2_rows)(const pool_ctx *r, int64_t r0, int64_t r1)
{
    const window *G = &r->w;
    const int64_t C = G->c;
    const T *x_ = r->c->in[0]->data;
    T *o_ = r->out->data;
    for (int64_t row = r0; row < r1; row++) {
        int64_t n = row / G->oh, oy = row % G->oh;
        const T *top = PIXEL(x_, G, n, 2 * oy, 0), *bot = PIXEL(x_, G, n, 2 * oy + 1, 0);
        T *o = CELL(o_, G, n, oy, 0);
        for (int64_t ox = 0; ox < G->ow; ox++) {
            const T *restrict a = top + 2 * ox * C, *restrict b = a + C, *restrict c = bot + 2 * ox * C,
                              *restrict d = c + C;
            T *restrict out = o + ox * C;
            for (int64_t q = 0; q < C; q++) {
                T m = -INFINITY; /* `|`, not `||`: no branch, so the loop vectorises */
                m = ((a[q] > m) | (a[q] != a[q])) ? a[q] : m;
                m = ((b[q] > m) | (b[q] != b[q])) ? b[q] : m;
                m = ((c[q] > m) | (c[q] != c[q])) ? c[q] : m;
                m = ((d[q] > m) | (d[q] != d[q])) ? d[q] : m;
                out[q] = m;
            }
        }
    }
}

/* max_pool2d_grad for 2x2 stride-2 windows, images [i0, i1): each pixel written once,
 * 0 + dy at the window's first maximum in row-major order (none for a NaN maximum), 0
 * elsewhere: the general loop's bits. */
TG_VECTOR_CLONES static void FN(max_pool_grad_2x2)(const pool_ctx *r, int64_t i0, int64_t i1)
{
    const window *G = &r->w;
    const int64_t C = G->c;
    const T *x_ = r->c->in[0]->data, *y_ = r->c->in[1]->data, *d_ = r->c->in[2]->data;
    T *o_ = r->out->data;
    for (int64_t n = i0; n < i1; n++) {
        for (int64_t oy = 0; oy < G->oh; oy++) {
            int64_t top = PIXEL((int64_t)0, G, n, 2 * oy, 0), bot = PIXEL((int64_t)0, G, n, 2 * oy + 1, 0);
            for (int64_t ox = 0; ox < G->ow; ox++) {
                int64_t ia = top + 2 * ox * C, ib = ia + C, ic = bot + 2 * ox * C, id = ic + C;
                const T *restrict xa = x_ + ia, *restrict xb = x_ + ib, *restrict xc = x_ + ic, *restrict xd = x_ + id;
                const T *restrict y = CELL(y_, G, n, oy, ox), *restrict dy = CELL(d_, G, n, oy, ox);
                T *restrict oa = o_ + ia, *restrict ob = o_ + ib, *restrict oc = o_ + ic, *restrict od = o_ + id;
                for (int64_t q = 0; q < C; q++) {
                    bool ha = xa[q] == y[q], hb = !ha & (xb[q] == y[q]), hc = !ha & !hb & (xc[q] == y[q]);
                    bool hd = !ha & !hb & !hc & (xd[q] == y[q]);
                    T g = 0 + dy[q];
                    oa[q] = ha ? g : 0;
                    ob[q] = hb ? g : 0;
                    oc[q] = hc ? g : 0;
                    od[q] = hd ? g : 0;
                }
            }
            for (int64_t a = 0; a < 2 && 2 * G->ow < G->w; a++) /* an odd width's last column */
                memset(PIXEL(o_, G, n, 2 * oy + a, 2 * G->ow), 0, sizeof(T) * (size_t)((G->w - 2 * G->ow) * C));
        }
        if (2 * G->oh < G->h) /* an odd height's last row */
            memset(PIXEL(o_, G, n, 2 * G->oh, 0), 0, sizeof(T) * (size_t)((G->h - 2 * G->oh) * G->w * C));
    }
}

#undef FN
#undef TG_CAT
#undef TG_CAT_
