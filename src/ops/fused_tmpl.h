/* The fused kernels of fused.c for one float type, included by fused.c once per dtype
 * with T (float or double) and SFX (f32 or f64) defined, after rows_ctx, xent_ctx and
 * label_at. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* The activations of activation.c, written the same way so the values are the same. */
TG_VECTOR_CLONES static void FN(bias_act_rows)(const rows_ctx *r, int64_t r0, int64_t r1)
{
    int64_t n = r->len;
    int act = r->c->a->act;
    const T *x = (const T *)r->c->in[0]->data + r0 * n, *bias = r->c->in[1]->data;
    T *o = (T *)r->out->data + r0 * n;
    for (int64_t row = r0; row < r1; row++, x += n, o += n)
        switch (act) {
        case TG_BIAS_RELU:
            for (int64_t j = 0; j < n; j++) {
                T v = x[j] + bias[j];
                o[j] = v <= 0 ? 0 : v; /* NaN passes, as tg_relu */
            }
            break;
        case TG_BIAS_SIGMOID:
            for (int64_t j = 0; j < n; j++) {
                T v = x[j] + bias[j];
                o[j] = v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v));
            }
            break;
        case TG_BIAS_TANH:
            for (int64_t j = 0; j < n; j++)
                o[j] = tanh(x[j] + bias[j]);
            break;
        default:
            for (int64_t j = 0; j < n; j++)
                o[j] = x[j] + bias[j];
            break;
        }
}

/* The unfused backward rules' formulas and order: relu where(y > 0, dy, 0), sigmoid
 * dy * (y * (1 - y)), tanh dy * (1 - y * y). */
TG_VECTOR_CLONES static void FN(act_grad_range)(const rows_ctx *r, int64_t b, int64_t e)
{
    int act = r->c->a->act;
    const T *y = (const T *)r->c->in[0]->data, *dy = r->c->in[1]->data;
    T *o = r->out->data;
    switch (act) {
    case TG_BIAS_RELU:
        for (int64_t i = b; i < e; i++)
            o[i] = y[i] > 0 ? dy[i] : 0;
        break;
    case TG_BIAS_SIGMOID:
        for (int64_t i = b; i < e; i++)
            o[i] = dy[i] * (y[i] * (1 - y[i]));
        break;
    case TG_BIAS_TANH:
        for (int64_t i = b; i < e; i++)
            o[i] = dy[i] * (1 - y[i] * y[i]);
        break;
    default:
        for (int64_t i = b; i < e; i++)
            o[i] = dy[i];
        break;
    }
}

/* act_grad_range's values for rows [r0, r1) of [rows, len], then each column summed over
 * those rows in order in double into acc, as reduce_tmpl.h's col_sums adds them: the
 * chunk's dz is read back from cache, so memory sees one pass. */
#define SUM_ROWS(DZ)                                \
    for (int64_t k = 0; k < m; k++)                 \
        o[k] = (DZ);                                \
    for (int64_t row = r0; row < r1; row++, o += n) \
        for (int64_t k = 0; k < n; k++)             \
            acc[k] = acc[k] + (double)o[k];         \
    break
TG_VECTOR_CLONES static void FN(act_grad_sum_rows)(const sum_ctx *r, int64_t r0, int64_t r1, double *restrict acc)
{
    int64_t n = r->len, m = (r1 - r0) * n;
    const T *restrict y = (const T *)r->c->in[0]->data + r0 * n, *restrict dy = (const T *)r->c->in[1]->data + r0 * n;
    T *restrict o = (T *)r->c->outs[0]->data + r0 * n;
    switch (r->c->a->act) {
    case TG_BIAS_RELU: SUM_ROWS(y[k] > 0 ? dy[k] : 0);
    case TG_BIAS_SIGMOID: SUM_ROWS(dy[k] * (y[k] * (1 - y[k])));
    case TG_BIAS_TANH: SUM_ROWS(dy[k] * (1 - y[k] * y[k]));
    default: SUM_ROWS(dy[k]);
    }
}
#undef SUM_ROWS

/* The graph's fusion of max_pool2d_grad (2x2 windows, stride 2, no padding) and the ReLU's
 * act_grad_bias_sum (src/graph/fuse.c): in y (the ReLU's output and the pool's input), p
 * (the pool's output) and dp (its gradient); rows are y's pixels [r0, r1), C channels
 * each. A pixel's pool gradient is 0 + dp at its window's first maximum in row-major
 * order (none for a NaN maximum), 0 elsewhere and where no window covers it; the ReLU
 * keeps it where y > 0; the column sums are act_grad_sum_rows's, in the same order. */
TG_VECTOR_CLONES static void FN(pool_relu_sum_rows)(const sum_ctx *r, int64_t r0, int64_t r1, double *restrict acc)
{
    const tg_tensor *yt = r->c->in[0], *pt = r->c->in[1];
    const int64_t C = r->len, H = yt->shape[1], W = yt->shape[2], OH = pt->shape[1], OW = pt->shape[2];
    const T *y_ = yt->data, *p_ = pt->data, *d_ = r->c->in[2]->data;
    T *o_ = r->c->outs[0]->data;
    int64_t n = r0 / (H * W), iy = r0 / W % H, ix = r0 % W; /* row's pixel, stepped: no division per pixel */
    for (int64_t row = r0; row < r1; row++) {
        int64_t oy = iy / 2, ox = ix / 2;
        const T *restrict y = y_ + row * C;
        T *restrict o = o_ + row * C;
        if (oy >= OH || ox >= OW) {
            for (int64_t q = 0; q < C; q++)
                o[q] = 0;
        } else {
            int64_t cell = ((n * OH + oy) * OW + ox) * C;
            const T *restrict p = p_ + cell, *restrict dp = d_ + cell;
            const T *restrict w0 = y_ + ((n * H + 2 * oy) * W + 2 * ox) * C, *restrict w1 = w0 + C;
            const T *restrict w2 = w0 + W * C;
            switch ((iy % 2) * 2 + ix % 2) { /* the pixel's place in its window */
            case 0:
                for (int64_t q = 0; q < C; q++)
                    o[q] = ((y[q] > 0) & (y[q] == p[q])) ? 0 + dp[q] : 0;
                break;
            case 1:
                for (int64_t q = 0; q < C; q++)
                    o[q] = ((y[q] > 0) & (y[q] == p[q]) & (w0[q] != p[q])) ? 0 + dp[q] : 0;
                break;
            case 2:
                for (int64_t q = 0; q < C; q++)
                    o[q] = ((y[q] > 0) & (y[q] == p[q]) & (w0[q] != p[q]) & (w1[q] != p[q])) ? 0 + dp[q] : 0;
                break;
            default:
                for (int64_t q = 0; q < C; q++)
                    o[q] = ((y[q] > 0) & (y[q] == p[q]) & (w0[q] != p[q]) & (w1[q] != p[q]) & (w2[q] != p[q]))
                               ? 0 + dp[q]
                               : 0;
                break;
            }
        }
        for (int64_t q = 0; q < C; q++)
            acc[q] = acc[q] + (double)o[q];
        if (++ix == W) {
            ix = 0;
            if (++iy == H)
                iy = 0, n++;
        }
    }
}

/* Per row of logits z: m = max z, s = sum exp(z - m), ls = log s, as log_softmax does;
 * log_softmax(z)_j = z_j - m - ls. The loss is -log_softmax(z)[label], or, with float
 * labels, -sum_j labels_j * log_softmax(z)_j summed in double as tg_sum does. */
static void FN(xent_rows)(const xent_ctx *r, int64_t r0, int64_t r1)
{
    int64_t n = r->len;
    bool sparse = r->sparse;
    const T *z = (const T *)r->c->in[1]->data;
    const tg_tensor *lab = r->c->in[0];
    T *o = r->out->data;
    for (int64_t row = r0; row < r1; row++) {
        const T *zl = z + row * n;
        T m = -INFINITY, s = 0;
        for (int64_t j = 0; j < n; j++)
            m = zl[j] > m ? zl[j] : m;
        for (int64_t j = 0; j < n; j++)
            s += exp(zl[j] - m);
        T ls = log(s);
        if (sparse) {
            o[row] = -(zl[label_at(lab, row)] - m - ls);
        } else {
            const T *yl = (const T *)lab->data + row * n;
            double acc = 0;
            for (int64_t j = 0; j < n; j++)
                acc = acc + (double)(T)(yl[j] * (zl[j] - m - ls));
            o[row] = -(T)acc;
        }
    }
}

/* Per row: dy * (softmax(z) * sum(labels) - labels), one-hot for integer labels. */
static void FN(xent_grad_rows)(const xent_ctx *r, int64_t r0, int64_t r1)
{
    int64_t n = r->len;
    bool sparse = r->sparse;
    const T *z = (const T *)r->c->in[1]->data, *dy = r->c->in[2]->data;
    const tg_tensor *lab = r->c->in[0];
    T *o = r->out->data;
    for (int64_t row = r0; row < r1; row++) {
        const T *zl = z + row * n;
        T *ol = o + row * n, m = -INFINITY, s = 0, d = dy[row];
        for (int64_t j = 0; j < n; j++)
            m = zl[j] > m ? zl[j] : m;
        for (int64_t j = 0; j < n; j++)
            s += (ol[j] = exp(zl[j] - m));
        if (sparse) {
            int64_t y = label_at(lab, row);
            for (int64_t j = 0; j < n; j++)
                ol[j] = d * (ol[j] / s - (j == y));
        } else {
            const T *yl = (const T *)lab->data + row * n;
            T total = 0;
            for (int64_t j = 0; j < n; j++)
                total += yl[j];
            for (int64_t j = 0; j < n; j++)
                ol[j] = d * (ol[j] / s * total - yl[j]);
        }
    }
}

#undef FN
#undef TG_CAT
#undef TG_CAT_
