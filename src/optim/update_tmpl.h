/* The update kernels for one float type, included by update.c once per dtype with
 * T (float or double), SFX (f32 or f64), SQRT and POW defined.
 *
 * Each follows the update_step of keras/src/optimizers/<name>.py (Keras 3) operation by
 * operation and in the variable's dtype, so float32 results round as Keras's do:
 * Python scalars such as `1 - beta_1` are computed in double and then cast, as the
 * backend casts weak-typed Python floats. The base optimizer's weight decay
 * (`_apply_weight_decay`) and clipping (`_clip_gradients`, `_clip_by_norm`,
 * `clip_by_global_norm` in keras/src/optimizers/base_optimizer.py) are here too. */

#define TG_CAT_(a, b) a##_##b
#define TG_CAT(a, b)  TG_CAT_(a, b)
#define FN(name)      TG_CAT(name, SFX)

/* base_optimizer._apply_weight_decay: variable.assign(variable - variable * wd * lr). */
TG_VECTOR_CLONES static void FN(weight_decay)(T *restrict w, int64_t n, T wd, T lr)
{
    for (int64_t i = 0; i < n; i++)
        w[i] = w[i] - w[i] * wd * lr;
}

/* sgd.py: m = m * momentum - g * lr; var += m (nesterov: var += m * momentum - g * lr);
 * without momentum, var -= g * lr. */
TG_VECTOR_CLONES static void FN(sgd)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w;
    const T *restrict g = st->g;
    T lr = (T)st->lr;
    if (h->momentum == 0) {
        for (int64_t i = 0; i < st->n; i++)
            w[i] -= g[i] * lr;
        return;
    }
    T mom = (T)h->momentum;
    T *restrict m = st->s[0];
    for (int64_t i = 0; i < st->n; i++) {
        m[i] = m[i] * mom - g[i] * lr;
        w[i] += h->nesterov ? m[i] * mom - g[i] * lr : m[i];
    }
}

/* adam.py: alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) with t = iterations + 1;
 * m += (g - m) * (1 - beta_1); v += (g^2 - v) * (1 - beta_2); amsgrad: v_hat =
 * max(v_hat, v), used for v; var -= m * alpha / (sqrt(v) + epsilon). One pass over the
 * four arrays, in loops without branches so that they vectorise. */
TG_VECTOR_CLONES static void FN(adam)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict m = st->s[0], *restrict v = st->s[1];
    const T *restrict g = st->g;
    T lr = (T)st->lr, t = (T)(st->iterations + 1);
    T b1_pow = POW((T)h->beta_1, t), b2_pow = POW((T)h->beta_2, t);
    T alpha = lr * SQRT((T)1 - b2_pow) / ((T)1 - b1_pow);
    T c1 = (T)(1 - h->beta_1), c2 = (T)(1 - h->beta_2), eps = (T)h->epsilon;
    int64_t n = st->n;
    if (!h->amsgrad) {
        for (int64_t i = 0; i < n; i++) {
            T gi = g[i], mi = m[i] + (g[i] - m[i]) * c1, vi = v[i] + (gi * gi - v[i]) * c2;
            m[i] = mi;
            v[i] = vi;
            w[i] -= mi * alpha / (SQRT(vi) + eps);
        }
        return;
    }
    T *restrict vh = st->s[2];
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i], mi = m[i] + (g[i] - m[i]) * c1, vi = v[i] + (gi * gi - v[i]) * c2;
        T hi = vh[i] >= vi ? vh[i] : vi; /* maximum, NaN propagating */
        m[i] = mi;
        v[i] = vi;
        vh[i] = hi;
        w[i] -= mi * alpha / (SQRT(hi) + eps);
    }
}

/* rmsprop.py: v = rho * v + (1 - rho) * g^2; centered: a = rho * a + (1 - rho) * g and
 * the denominator is v - a^2 + epsilon, else v + epsilon; increment = lr * g /
 * sqrt(denominator); momentum: mom = momentum * mom + increment, var -= mom; else
 * var -= increment. Slots in order: velocity, [momentum], [average_gradient]. */
TG_VECTOR_CLONES static void FN(rmsprop)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    int k = 1;
    T *restrict w = st->w, *restrict v = st->s[0];
    T *restrict mo = h->momentum > 0 ? st->s[k++] : NULL;
    T *restrict a = h->centered ? st->s[k++] : NULL;
    const T *restrict g = st->g;
    T lr = (T)st->lr, rho = (T)h->rho, c = (T)(1 - h->rho), eps = (T)h->epsilon, mom = (T)h->momentum;
    for (int64_t i = 0; i < st->n; i++) {
        T gi = g[i];
        v[i] = rho * v[i] + c * (gi * gi);
        T den;
        if (a) {
            a[i] = rho * a[i] + c * gi;
            den = v[i] - a[i] * a[i] + eps;
        } else {
            den = v[i] + eps;
        }
        T inc = lr * gi / SQRT(den);
        if (mo) {
            mo[i] = mom * mo[i] + inc;
            w[i] -= mo[i];
        } else {
            w[i] -= inc;
        }
    }
}

/* adagrad.py: acc += g^2; var -= lr * g / sqrt(acc + epsilon). */
TG_VECTOR_CLONES static void FN(adagrad)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict acc = st->s[0];
    const T *restrict g = st->g;
    T lr = (T)st->lr, eps = (T)h->epsilon;
    for (int64_t i = 0; i < st->n; i++) {
        acc[i] += g[i] * g[i];
        w[i] -= lr * g[i] / SQRT(acc[i] + eps);
    }
}

void FN(tg__optim_update)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    if (h->weight_decay != 0)
        FN(weight_decay)(st->w, st->n, (T)h->weight_decay, (T)st->lr);
    switch (st->opt->kind) {
    case TG_OPTIM_SGD: FN(sgd)(st); break;
    case TG_OPTIM_ADAM: FN(adam)(st); break;
    case TG_OPTIM_RMSPROP: FN(rmsprop)(st); break;
    case TG_OPTIM_ADAGRAD: FN(adagrad)(st); break;
    }
}

/* _clip_by_norm: g * clipnorm / max(||g||, clipnorm) (||g|| taken as 0 when the sum of
 * squares is 0); clip_by_global_norm: g * (clipnorm * min(1 / norm, 1 / clipnorm) +
 * (norm - norm)), NaN everywhere when the global norm is not finite; clipvalue:
 * clip(g, -clipvalue, clipvalue). The sums of squares are taken in double. */
void FN(tg__optim_clip)(tg_clip_mode mode, double c, double global_norm, const T *g, T *out, int64_t n)
{
    T cc = (T)c;
    switch (mode) {
    case TG_CLIP_NONE:
        if (out != g)
            memcpy(out, g, (size_t)n * sizeof(T));
        break;
    case TG_CLIP_NORM: {
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)g[i] * g[i];
        T l2sum = (T)ss;
        T l2norm = l2sum > 0 ? SQRT(l2sum) : l2sum;
        T den = l2norm > cc || l2norm != l2norm ? l2norm : cc;
        for (int64_t i = 0; i < n; i++)
            out[i] = g[i] * cc / den;
        break;
    }
    case TG_CLIP_GLOBAL: {
        T norm = (T)global_norm, inv = (T)1 / norm, inv_c = (T)(1.0 / c);
        T scale = cc * (inv < inv_c ? inv : inv_c) + (norm - norm);
        for (int64_t i = 0; i < n; i++)
            out[i] = g[i] * scale;
        break;
    }
    case TG_CLIP_VALUE:
        for (int64_t i = 0; i < n; i++)
            out[i] = g[i] < -cc ? -cc : g[i] > cc ? cc : g[i];
        break;
    }
}

#undef FN
#undef TG_CAT
#undef TG_CAT_
