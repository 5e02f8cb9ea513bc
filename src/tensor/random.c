/* Seeded random generators: xoshiro256** seeded through splitmix64. No global state. */
#include <math.h>
#include <stdlib.h>

#include "tensor_impl.h"

struct tg_rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

tg_rng *tg_rng_new(uint64_t seed)
{
    tg_rng *r = malloc(sizeof *r);
    if (!r)
        return tg__fail((tg_loc){0}, "tg_rng_new: out of memory");
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
    return r;
}

void tg_rng_free(tg_rng *r) { free(r); }

void tg__rng_set_state(tg_rng *r, const uint64_t state[4]) { memcpy(r->s, state, sizeof r->s); }

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tg_rng_next(tg_rng *r)
{
    if (__builtin_expect(tg__ctx()->trace != NULL, 0)) { /* a graph would keep this one draw */
        tg__trace_note_rng(r, r->s);
        tg__trace_refuse_random((tg_loc){0}, "a random number drawn in C (tg_rng_next)");
    }
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tg_rng_uniform01(tg_rng *r) { return (double)(tg_rng_next(r) >> 11) * 0x1.0p-53; }

static double normal01(tg_rng *r)
{
    /* Box-Muller; one value per call keeps the stream simple to reproduce. */
    double u = 1.0 - tg_rng_uniform01(r), v = tg_rng_uniform01(r);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

typedef enum { NORMAL, UNIFORM, TRUNCATED } dist;

/* In a traced function the draw is recorded: the generator draws again at every call,
 * so the function gives the eager stream (TF's stateful random ops). */
typedef struct draw_arg {
    tg_rng *r;
    tg_random_opts o;
    dist d;
} draw_arg;
static void draw(tg_tensor *t, tg_rng *r, tg_random_opts o, dist d);
static int draw_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n);

static tg_tensor *random_tensor(tg_loc loc, const char *func, tg_rng *r, tg_dtype dtype, tg_shape shape,
                                tg_random_opts o, dist d)
{
    if (!r)
        return tg__fail(loc, "%s: `rng` is NULL (make one with tg_rng_new(seed))", func);
    if (!tg_dtype_is_float(dtype))
        return tg__fail(loc, "%s: dtype must be float32 or float64, not %s", func, tg_dtype_name(dtype));
    if (d != UNIFORM && !(o.stddev >= 0))
        return tg__fail(loc, "%s: stddev must be >= 0 (got %g)", func, o.stddev);
    if (d == UNIFORM && !(o.maxval >= o.minval))
        return tg__fail(loc, "%s: maxval (%g) must be >= minval (%g)", func, o.maxval, o.minval);
    bool abstract = tg__trace_abstract(); /* drawn by the graph's run only */
    tg_tensor *t = abstract ? tg__tensor_abstract(loc, dtype, &shape) : tg__tensor_new(loc, dtype, &shape);
    if (!t)
        return NULL;
    t->flags |= TG_T_FROM_DATA;
    struct tg_fgraph *g = tg__trace_pause(); /* drawn now, and again at every replay */
    if (!abstract)
        draw(t, r, o, d);
    tg__trace_resume(g);
    draw_arg a = {r, o, d};
    return g && tg__trace_host_output(loc, draw_replayed, &a, sizeof a, t) != 0 ? NULL : t;
}

static void draw(tg_tensor *t, tg_rng *r, tg_random_opts o, dist d)
{
    for (int64_t i = 0; i < t->size; i++) {
        double z;
        if (d == UNIFORM)
            z = o.minval + (o.maxval - o.minval) * tg_rng_uniform01(r);
        else {
            do
                z = normal01(r);
            while (d == TRUNCATED && fabs(z) > 2.0);
            z = o.mean + o.stddev * z;
        }
        tg__set(t, i, z);
    }
}

static int draw_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const draw_arg *a = arg;
    (void)loc;
    draw(in[n - 1], a->r, a->o, a->d);
    return 0;
}

tg_tensor *tg_random_normal_at(tg_loc loc, tg_rng *r, tg_dtype dt, tg_shape s, tg_random_opts o)
{
    return random_tensor(loc, "tg_random_normal", r, dt, s, o, NORMAL);
}

tg_tensor *tg_random_uniform_at(tg_loc loc, tg_rng *r, tg_dtype dt, tg_shape s, tg_random_opts o)
{
    return random_tensor(loc, "tg_random_uniform", r, dt, s, o, UNIFORM);
}

tg_tensor *tg_truncated_normal_at(tg_loc loc, tg_rng *r, tg_dtype dt, tg_shape s, tg_random_opts o)
{
    return random_tensor(loc, "tg_truncated_normal", r, dt, s, o, TRUNCATED);
}
