/* Learning-rate schedules, as keras/src/optimizers/schedules/learning_rate_schedule.py
 * computes them (ExponentialDecay, PiecewiseConstantDecay, CosineDecay with its warm-up,
 * PolynomialDecay, InverseTimeDecay, CosineDecayRestarts).
 * Keras evaluates them in float32 (the dtype of a Python float converted to a tensor);
 * these are evaluated in double, and each optimizer casts the rate to the variable's
 * dtype. */
#include <math.h>

#include "optim_impl.h"

static tg_schedule invalid(void) { return (tg_schedule){.kind = TG_SCHEDULE_INVALID}; }

static bool check_decay_steps(tg_loc loc, const char *func, int64_t decay_steps)
{
    if (decay_steps > 0)
        return true;
    tg__fail(loc, "%s: Argument `decay_steps` must be > 0. Received: decay_steps=%lld", func, (long long)decay_steps);
    return false;
}

tg_schedule tg_exponential_decay_at(tg_loc loc, tg_exponential_decay_opts o)
{
    if (!check_decay_steps(loc, "tg_exponential_decay", o.decay_steps))
        return invalid();
    return (tg_schedule){.kind = TG_SCHEDULE_EXPONENTIAL_DECAY,
                         .initial_learning_rate = o.initial_learning_rate,
                         .decay_steps = o.decay_steps,
                         .decay_rate = o.decay_rate,
                         .staircase = o.staircase};
}

tg_schedule tg_cosine_decay_at(tg_loc loc, tg_cosine_decay_opts o)
{
    if (!check_decay_steps(loc, "tg_cosine_decay", o.decay_steps))
        return invalid();
    if (o.warmup_steps < 0) {
        tg__fail(loc, "tg_cosine_decay: `warmup_steps` must be >= 0. Received: warmup_steps=%lld",
                 (long long)o.warmup_steps);
        return invalid();
    }
    return (tg_schedule){.kind = TG_SCHEDULE_COSINE_DECAY,
                         .initial_learning_rate = o.initial_learning_rate,
                         .decay_steps = o.decay_steps,
                         .alpha = o.alpha,
                         .warmup_target = o.warmup_target,
                         .warmup_steps = o.warmup_steps};
}

tg_schedule tg_polynomial_decay_at(tg_loc loc, tg_polynomial_decay_opts o)
{
    if (!check_decay_steps(loc, "tg_polynomial_decay", o.decay_steps))
        return invalid();
    return (tg_schedule){.kind = TG_SCHEDULE_POLYNOMIAL_DECAY,
                         .initial_learning_rate = o.initial_learning_rate,
                         .decay_steps = o.decay_steps,
                         .end_learning_rate = o.end_learning_rate,
                         .power = o.power,
                         .cycle = o.cycle};
}

tg_schedule tg_inverse_time_decay_at(tg_loc loc, tg_inverse_time_decay_opts o)
{
    if (!check_decay_steps(loc, "tg_inverse_time_decay", o.decay_steps))
        return invalid();
    return (tg_schedule){.kind = TG_SCHEDULE_INVERSE_TIME_DECAY,
                         .initial_learning_rate = o.initial_learning_rate,
                         .decay_steps = o.decay_steps,
                         .decay_rate = o.decay_rate,
                         .staircase = o.staircase};
}

tg_schedule tg_cosine_decay_restarts_at(tg_loc loc, tg_cosine_decay_restarts_opts o)
{
    if (o.first_decay_steps <= 0) {
        tg__fail(loc,
                 "tg_cosine_decay_restarts: Argument `first_decay_steps` must be > 0. Received: "
                 "first_decay_steps=%lld",
                 (long long)o.first_decay_steps);
        return invalid();
    }
    if (!(o.t_mul > 0) || !isfinite(o.t_mul) || !isfinite(o.m_mul)) {
        tg__fail(loc,
                 "tg_cosine_decay_restarts: `t_mul` must be a positive number and `m_mul` a number. "
                 "Received: t_mul=%g, m_mul=%g",
                 o.t_mul, o.m_mul);
        return invalid();
    }
    return (tg_schedule){.kind = TG_SCHEDULE_COSINE_DECAY_RESTARTS,
                         .initial_learning_rate = o.initial_learning_rate,
                         .decay_steps = o.first_decay_steps,
                         .t_mul = o.t_mul,
                         .m_mul = o.m_mul,
                         .alpha = o.alpha};
}

tg_schedule tg_piecewise_constant_at(tg_loc loc, const int64_t *boundaries, const double *values, int n)
{
    if (!boundaries || !values) {
        tg__null_arg(loc, "tg_piecewise_constant", !boundaries ? "boundaries" : "values");
        return invalid();
    }
    if (n < 1 || n > TG_SCHEDULE_MAX_BOUNDARIES) {
        tg__fail(loc,
                 "tg_piecewise_constant: %d boundaries given; between 1 and %d are supported (with one more "
                 "value than boundaries)",
                 n, TG_SCHEDULE_MAX_BOUNDARIES);
        return invalid();
    }
    tg_schedule s = {.kind = TG_SCHEDULE_PIECEWISE_CONSTANT, .n_boundaries = n};
    for (int i = 0; i < n; i++) {
        if (i > 0 && boundaries[i] <= boundaries[i - 1]) {
            tg__fail(loc,
                     "tg_piecewise_constant: the boundaries must be strictly increasing; boundaries[%d] = %lld "
                     "follows boundaries[%d] = %lld",
                     i, (long long)boundaries[i], i - 1, (long long)boundaries[i - 1]);
            return invalid();
        }
        s.boundaries[i] = boundaries[i];
    }
    for (int i = 0; i <= n; i++)
        s.values[i] = values[i];
    return s;
}

/* `from` decayed along half a cosine to from * alpha over `decay` steps, at step t. */
static double cosine_decay(double t, double decay, double from, double alpha)
{
    double cosine = 0.5 * (1.0 + cos(M_PI * (t / decay)));
    return from * ((1 - alpha) * cosine + alpha);
}

double tg_schedule_value(const tg_schedule *s, int64_t step)
{
    if (!s)
        return NAN;
    switch (s->kind) {
    case TG_SCHEDULE_EXPONENTIAL_DECAY: {
        double p = (double)step / (double)s->decay_steps;
        return s->initial_learning_rate * pow(s->decay_rate, s->staircase ? floor(p) : p);
    }
    case TG_SCHEDULE_PIECEWISE_CONSTANT: {
        int i = 0;
        while (i < s->n_boundaries && step > s->boundaries[i])
            i++;
        return s->values[i];
    }
    case TG_SCHEDULE_COSINE_DECAY: {
        double t = (double)step, decay = (double)s->decay_steps, warmup = (double)s->warmup_steps;
        if (s->warmup_target == 0)
            return cosine_decay(fmin(t, decay), decay, s->initial_learning_rate, s->alpha);
        t = fmin(t, decay + warmup);
        if (t < warmup)
            return (s->warmup_target - s->initial_learning_rate) * (t / warmup) + s->initial_learning_rate;
        return cosine_decay(t - warmup, decay, s->warmup_target, s->alpha);
    }
    case TG_SCHEDULE_POLYNOMIAL_DECAY: {
        double t = (double)step, decay = (double)s->decay_steps;
        if (s->cycle)
            decay *= step == 0 ? 1.0 : ceil(t / decay);
        else
            t = fmin(t, decay);
        double p = t / decay;
        return (s->initial_learning_rate - s->end_learning_rate) * pow(1 - p, s->power) + s->end_learning_rate;
    }
    case TG_SCHEDULE_INVERSE_TIME_DECAY: {
        double p = (double)step / (double)s->decay_steps;
        return s->initial_learning_rate / (1 + s->decay_rate * (s->staircase ? floor(p) : p));
    }
    case TG_SCHEDULE_COSINE_DECAY_RESTARTS: {
        double fraction = (double)step / (double)s->decay_steps, i_restart;
        if (s->t_mul == 1.0) {
            i_restart = floor(fraction);
            fraction -= i_restart;
        } else { /* the periods' lengths grow geometrically: which one holds the step */
            i_restart = floor(log(1.0 - fraction * (1.0 - s->t_mul)) / log(s->t_mul));
            double sum_r = (1.0 - pow(s->t_mul, i_restart)) / (1.0 - s->t_mul);
            fraction = (fraction - sum_r) / pow(s->t_mul, i_restart);
        }
        double cosine = 0.5 * pow(s->m_mul, i_restart) * (1.0 + cos(M_PI * fraction));
        return s->initial_learning_rate * ((1 - s->alpha) * cosine + s->alpha);
    }
    default: return NAN;
    }
}
