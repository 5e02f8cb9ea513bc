/* Learning-rate schedules, as keras/src/optimizers/schedules/learning_rate_schedule.py
 * computes them (ExponentialDecay, PiecewiseConstantDecay, CosineDecay without warmup).
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
    return (tg_schedule){.kind = TG_SCHEDULE_COSINE_DECAY,
                         .initial_learning_rate = o.initial_learning_rate,
                         .decay_steps = o.decay_steps,
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
        double t = (double)(step < s->decay_steps ? step : s->decay_steps);
        double cosine = 0.5 * (1.0 + cos(M_PI * (t / (double)s->decay_steps)));
        return s->initial_learning_rate * ((1 - s->alpha) * cosine + s->alpha);
    }
    default: return NAN;
    }
}
