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

/* nadam.py: with t = iterations + 1, u_t = beta_1 (1 - 0.5 * 0.96^t), u_t1 the same at
 * t + 1, and u_product the product of u_1 .. u_t (kept by the optimizer, in this dtype):
 * m += (g - m) (1 - beta_1); v += (g^2 - v) (1 - beta_2); m_hat = u_t1 m / (1 -
 * u_product u_t1) + (1 - u_t) g / (1 - u_product); v_hat = v / (1 - beta_2^t);
 * var -= m_hat lr / (sqrt(v_hat) + epsilon). */
TG_VECTOR_CLONES static void FN(nadam)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict m = st->s[0], *restrict v = st->s[1];
    const T *restrict g = st->g;
    T lr = (T)st->lr, t = (T)(st->iterations + 1), b1 = (T)h->beta_1, b2 = (T)h->beta_2;
    T u_t = b1 * ((T)1 - (T)0.5 * POW((T)0.96, t)), u_t1 = b1 * ((T)1 - (T)0.5 * POW((T)0.96, t + 1));
    T u_prod = (T)(sizeof(T) == sizeof(float) ? st->opt->nadam_product_f32 : st->opt->nadam_product_f64);
    T u_prod1 = u_prod * u_t1, b2_pow = POW(b2, t);
    T c1 = (T)1 - b1, c2 = (T)1 - b2, eps = (T)h->epsilon; /* nadam.py casts beta_1 first */
    for (int64_t i = 0; i < st->n; i++) {
        T gi = g[i], mi = m[i] + (gi - m[i]) * c1, vi = v[i] + (gi * gi - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        T m_hat = u_t1 * mi / ((T)1 - u_prod1) + ((T)1 - u_t) * gi / ((T)1 - u_prod);
        w[i] -= m_hat * lr / (SQRT(vi / ((T)1 - b2_pow)) + eps);
    }
}

/* adamax.py: m += (g - m) (1 - beta_1); u = max(beta_2 u, |g|);
 * var -= lr m / ((1 - beta_1^t) (u + epsilon)). */
TG_VECTOR_CLONES static void FN(adamax)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict m = st->s[0], *restrict u = st->s[1];
    const T *restrict g = st->g;
    T lr = (T)st->lr, b1_pow = POW((T)h->beta_1, (T)(st->iterations + 1));
    T c1 = (T)(1 - h->beta_1), b2 = (T)h->beta_2, eps = (T)h->epsilon;
    for (int64_t i = 0; i < st->n; i++) {
        T gi = g[i], mi = m[i] + (gi - m[i]) * c1, decayed = b2 * u[i], ag = gi < 0 ? -gi : gi;
        T ui = decayed >= ag || decayed != decayed ? decayed : ag; /* maximum, NaN propagating */
        m[i] = mi;
        u[i] = ui;
        w[i] -= lr * mi / (((T)1 - b1_pow) * (ui + eps));
    }
}

/* adadelta.py: a = rho a + (1 - rho) g^2; delta = -sqrt(d + eps) g / sqrt(a + eps);
 * d = rho d + (1 - rho) delta^2; var += lr delta. */
TG_VECTOR_CLONES static void FN(adadelta)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict a = st->s[0], *restrict d = st->s[1];
    const T *restrict g = st->g;
    T lr = (T)st->lr, rho = (T)h->rho, c = (T)(1 - h->rho), eps = (T)h->epsilon;
    for (int64_t i = 0; i < st->n; i++) {
        T gi = g[i], ai = rho * a[i] + c * (gi * gi);
        T delta = -(SQRT(d[i] + eps) * gi / SQRT(ai + eps));
        a[i] = ai;
        d[i] = rho * d[i] + c * (delta * delta);
        w[i] += lr * delta;
    }
}

/* ftrl.py: l2 = l2_regularization_strength + beta / (2 lr); g' = g + 2 l2_shrinkage var;
 * n' = n + g^2; linear += g' - (n'^-p - n^-p) / lr * var (p = learning_rate_power);
 * quadratic = n'^-p / lr + 2 l2; var = (clip(linear, -l1, l1) - linear) / quadratic;
 * n = n'. */
TG_VECTOR_CLONES static void FN(ftrl)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict acc = st->s[0], *restrict lin = st->s[1];
    const T *restrict g = st->g;
    T lr = (T)st->lr, p = (T)(-h->learning_rate_power), l1 = (T)h->l1;
    T l2 = (T)h->l2 + (T)h->ftrl_beta / ((T)2 * lr), shrink = (T)(2 * h->l2_shrinkage);
    for (int64_t i = 0; i < st->n; i++) {
        T gi = g[i], wi = w[i], n_new = acc[i] + gi * gi, pow_new = POW(n_new, p);
        T li = lin[i] + ((gi + shrink * wi) - (pow_new - POW(acc[i], p)) / lr * wi);
        T quadratic = pow_new / lr + (T)2 * l2;
        T clipped = li < -l1 ? -l1 : li > l1 ? l1 : li;
        lin[i] = li;
        w[i] = (clipped - li) / quadratic;
        acc[i] = n_new;
    }
}

/* lion.py: var -= lr sign(beta_1 m + (1 - beta_1) g); m = beta_2 m + (1 - beta_2) g. */
TG_VECTOR_CLONES static void FN(lion)(const tg_optim_step *st)
{
    const tg_optim_hyper *h = &st->opt->h;
    T *restrict w = st->w, *restrict m = st->s[0];
    const T *restrict g = st->g;
    T lr = (T)st->lr, b1 = (T)h->beta_1, b2 = (T)h->beta_2, c1 = (T)1 - b1, c2 = (T)1 - b2; /* cast, then 1 - */
    for (int64_t i = 0; i < st->n; i++) {
        T mix = m[i] * b1 + g[i] * c1;
        T sign = mix > 0 ? (T)1 : mix < 0 ? (T)-1 : mix; /* 0 stays 0, NaN stays NaN */
        w[i] -= lr * sign;
        m[i] = m[i] * b2 + g[i] * c2;
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
    case TG_OPTIM_NADAM: FN(nadam)(st); break;
    case TG_OPTIM_ADAMAX: FN(adamax)(st); break;
    case TG_OPTIM_ADADELTA: FN(adadelta)(st); break;
    case TG_OPTIM_FTRL: FN(ftrl)(st); break;
    case TG_OPTIM_LION: FN(lion)(st); break;
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
