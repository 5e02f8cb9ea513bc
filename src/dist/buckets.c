/* The gradients' average in buckets overlapped with the backward pass: PyTorch DDP's
 * reducer, Horovod's tensor fusion.
 *
 * The gradients of one dtype lie in one flat buffer in the order of the sources (the
 * layout of tg_allreduce_gradients), cut into buckets of about TAPEGRAD_BUCKET_MB from
 * its end: the backward pass makes the last layers' gradients final first, so the first
 * buckets fill first. As each source's gradient becomes final, the pass hands it over
 * (tg__reducer_ready): it is weighed into its place, and each bucket whose gradients are
 * all there starts its MPI_Iallreduce while the pass goes on. Buckets start in their
 * order on every rank (a bucket waits for those before it), as MPI requires of
 * collectives. Open MPI advances a non-blocking collective only inside MPI calls, so each
 * hand-over, and each node of the pass while buckets are in flight, tests the requests.
 *
 * The last bucket starts only at the end, after the pass: it carries, besides the first
 * layers' gradients, the rank's weight (its samples) and its status (whether its pass
 * failed, and which gradients are NULL), so a rank that fails during the pass still
 * completes every bucket and every rank learns of it with no further collective. The
 * sums are the same values tg_allreduce_gradients sums, weighed and divided the same way;
 * only the way MPI splits the buffer changes. */
#include <stdlib.h>
#include <string.h>

#include "dist_impl.h"

static const char F[] = "tg_allreduce_gradients";

enum { MAX_COUNT = 1 << 30 }; /* values per MPI call: MPI counts are ints */

typedef struct bucket {
    int which;           /* 0: float32, 1: float64 */
    int64_t from, count; /* its values in that dtype's buffer */
    int pending;         /* sources whose gradients are not there yet */
} bucket;

struct tg__reducer {
    tg_loc loc;
    int n;
    double weight;
    int *bucket_of;  /* per source: its bucket, -1 when it has no gradient to average */
    int64_t *offset; /* per source: where its values start in its dtype's buffer */
    int64_t *size;   /* per source: its values */
    bool *given;     /* per source: handed over */
    bucket *buckets;
    int n_buckets;
    int started;     /* buckets [0, started) are in flight */
    void **requests; /* MPI_Request, one per MAX_COUNT values of a started bucket */
    int n_requests, cap_requests;
    int64_t header[2]; /* per dtype: values before the gradients (weight, status) */
    int64_t elems[2];  /* per dtype: gradient values */
    void *buf[2];
    int status_dtype; /* the last bucket's: it carries the status */
    double waited;    /* seconds blocked */
    int in_pass;      /* buckets started before end */
    int rc;           /* -1 once an MPI call failed */
    /* While a function is traced: where its replays keep their reducer between the host
     * nodes of begin, ready, progress and end (the graph's memory); NULL otherwise. */
    tg__reducer **slot;
};

static size_t dtype_size(int which) { return which ? sizeof(double) : sizeof(float); }

static void set_value(tg__reducer *r, int which, int64_t at, double v)
{
    if (which)
        ((double *)r->buf[1])[at] = v;
    else
        ((float *)r->buf[0])[at] = (float)v;
}

static double get_value(const tg__reducer *r, int which, int64_t at)
{
    return which ? ((const double *)r->buf[1])[at] : (double)((const float *)r->buf[0])[at];
}

static void reducer_free(tg__reducer *r)
{
    if (!r)
        return;
    free(r->bucket_of);
    free(r->offset);
    free(r->size);
    free(r->given);
    free(r->buckets);
    free(r->requests);
    free(r);
}

/* Buckets from the end of the sources, one dtype each, closed once they hold `cap`
 * bytes; the last of each dtype reaches back over the header. */
static void make_buckets(tg__reducer *r, tg_tensor *const *list, size_t cap)
{
    int open[2] = {-1, -1}, last[2] = {-1, -1};
    for (int i = r->n; i-- > 0;) {
        if (r->bucket_of[i] < 0)
            continue;
        int w = list[i]->dtype == TG_F64;
        if (open[w] < 0) {
            bucket *b = &r->buckets[r->n_buckets];
            *b = (bucket){.which = w, .from = r->offset[i] + list[i]->size};
            open[w] = last[w] = r->n_buckets++;
        }
        bucket *b = &r->buckets[open[w]];
        b->count += b->from - r->offset[i];
        b->from = r->offset[i];
        b->pending++;
        r->bucket_of[i] = open[w];
        if ((size_t)b->count * dtype_size(w) >= cap)
            open[w] = -1;
    }
    if (r->n_buckets == 0) /* no gradients at all: the status travels alone */
        r->buckets[r->n_buckets++] = (bucket){.which = 0};
    r->status_dtype = r->buckets[r->n_buckets - 1].which;
    for (int w = 0; w < 2; w++)
        if (last[w] >= 0 || w == r->status_dtype) {
            bucket *b = &r->buckets[last[w] >= 0 ? last[w] : r->n_buckets - 1];
            b->count += b->from;
            b->from = 0;
        }
}

/* The list of gradients this call averages: float sources or given gradients. */
static int begin_now(tg_loc loc, tg__reducer **out, tg_tensor *const *list, int n, double samples, size_t cap)
{
    tg__reducer *r = calloc(1, sizeof *r);
    tg_tensor **agreed = calloc((size_t)n + 1, sizeof *agreed);
    if (r) {
        r->bucket_of = calloc((size_t)n + 1, sizeof *r->bucket_of);
        r->offset = calloc((size_t)n + 1, sizeof *r->offset);
        r->size = calloc((size_t)n + 1, sizeof *r->size);
        r->given = calloc((size_t)n + 1, sizeof *r->given);
        r->buckets = calloc((size_t)n + 1, sizeof *r->buckets);
    }
    if (!r || !agreed || !r->bucket_of || !r->offset || !r->size || !r->given || !r->buckets) {
        reducer_free(r);
        free(agreed);
        return tg__failf(loc, "%s: out of memory", F);
    }
    r->loc = loc;
    r->n = n;
    r->weight = samples >= 0 ? samples : 1.0;
    for (int i = 0; i < n; i++) {
        const tg_tensor *g = list ? list[i] : NULL;
        bool averaged = g && tg_dtype_is_float(g->dtype);
        r->bucket_of[i] = averaged ? 0 : -1;
        agreed[i] = averaged ? (tg_tensor *)g : NULL;
        if (averaged)
            r->elems[g->dtype == TG_F64] += r->size[i] = g->size;
    }
    double t0 = tg__dist_now();
    tg_allreduce_opts o = {.samples = samples};
    int rc = tg__dist_agree(loc, F, agreed, n, r->elems[0] + r->elems[1], &o);
    r->waited = tg__dist_now() - t0;
    if (rc != 0) {
        free(agreed);
        reducer_free(r);
        return -1;
    }
    /* Offsets before the header's size is known: the header is added below. */
    int64_t at[2] = {0, 0};
    for (int i = 0; i < n; i++)
        if (agreed[i]) {
            int w = agreed[i]->dtype == TG_F64;
            r->offset[i] = at[w];
            at[w] += agreed[i]->size;
        }
    /* Buckets are laid out on offsets without the header, then shifted by it. */
    make_buckets(r, agreed, cap);
    for (int w = 0; w < 2; w++)
        r->header[w] = r->elems[w] > 0 || w == r->status_dtype ? 1 + (w == r->status_dtype ? 2 + (int64_t)n : 0) : 0;
    for (int i = 0; i < n; i++)
        if (agreed[i])
            r->offset[i] += r->header[agreed[i]->dtype == TG_F64];
    for (int b = 0; b < r->n_buckets; b++) {
        bucket *k = &r->buckets[b];
        if (k->from > 0)
            k->from += r->header[k->which];
        else
            k->count += r->header[k->which];
    }
    free(agreed);
    for (int w = 0; w < 2; w++) {
        size_t values = (size_t)(r->header[w] + r->elems[w]);
        if (values && !(r->buf[w] = tg__dist_flat(w, values * dtype_size(w)))) {
            reducer_free(r);
            return tg__failf(loc, "%s: out of memory for %lld gradient values", F, (long long)values);
        }
        if (values)
            set_value(r, w, 0, r->weight);
    }
    *out = r;
    return 0;
}

/* ---- in a traced function -------------------------------------------------------------------
 * The reducer's calls are host nodes of the graph (graph/trace.c), recorded where the
 * traced pass made them: every replay agrees on the list, packs each gradient as the
 * replayed pass makes it final, starts its buckets, tests them between the pass's nodes
 * and waits for them at the end, the same MPI calls in the same order as the eager pass,
 * so replaying ranks and eager ranks (an empty shard's step) meet in the same collectives.
 * The reducer of a replay lives in a slot of the graph's memory, from begin to end. */
typedef struct slot_arg {
    tg__reducer **slot;
    int n, i;
    bool listed;
    double samples;
} slot_arg;

static int begin_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const slot_arg *a = arg;
    (void)n;
    return begin_now(loc, a->slot, a->listed ? in : NULL, a->n, a->samples, tg__dist_bucket_bytes());
}

static int ready_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const slot_arg *a = arg;
    (void)loc, (void)n;
    tg__reducer_ready(*a->slot, a->i, in[0]);
    return 0;
}

static int progress_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    (void)loc, (void)in, (void)n;
    tg__reducer_progress(*((const slot_arg *)arg)->slot);
    return 0;
}

static int end_now(tg__reducer *r, tg_tensor **grads, tg_tensor *const *into, int n_into, bool failed);

/* in: the n gradients the pass made, then the averages' headers. */
static int end_replayed(tg_loc loc, const void *arg, tg_tensor *const *in, int n)
{
    const slot_arg *a = arg;
    tg__reducer *r = *a->slot;
    *a->slot = NULL;
    tg_tensor **grads = tg__arena_alloc(tg__ctx()->scope, sizeof *grads * (size_t)(a->n + 1));
    if (!grads) {
        tg__reducer_end(r, NULL, true);
        return tg__failf(loc, "%s: out of memory", F);
    }
    memcpy(grads, in, sizeof *grads * (size_t)a->n);
    return end_now(r, grads, in + a->n, n - a->n, false);
}

static bool record_host(tg_loc loc, tg__host_fn fn, const slot_arg *a, tg_tensor *const *in, int n)
{
    return tg__trace_host(loc, fn, a, sizeof *a, in, n, NULL, 0) == 0;
}

int tg__reducer_begin(tg_loc loc, tg__reducer **out, tg_tensor *const *list, int n, double samples)
{
    *out = NULL;
    size_t cap = tg__dist_bucket_bytes();
    if (!tg__dist_active() || cap == 0)
        return 0;
    if (!tg__ctx()->trace)
        return begin_now(loc, out, list, n, samples, cap);
    if (tg__trace_nested())
        return tg__failf(loc,
                         "%s: the gradients' allreduce inside tg_cond or tg_while_loop is not supported: take the "
                         "gradients outside the branch or the loop",
                         F);
    if (samples >= 0)
        tg__trace_keeps_batch("the gradients' bucketed allreduce's samples");
    slot_arg a = {.slot = tg__trace_alloc(sizeof(tg__reducer *)), .n = n, .listed = list != NULL, .samples = samples};
    if (!a.slot || !record_host(loc, begin_replayed, &a, list, list ? n : 0))
        return tg__failf(loc, "%s: out of memory while tracing", F);
    struct tg_fgraph *g = tg__trace_pause();
    int rc = begin_now(loc, out, list, n, samples, cap);
    tg__trace_resume(g);
    if (rc == 0)
        (*out)->slot = a.slot;
    return rc;
}

static bool add_requests(tg__reducer *r, int more)
{
    if (r->n_requests + more <= r->cap_requests)
        return true;
    int cap = 2 * (r->n_requests + more);
    void **p = realloc(r->requests, sizeof *p * (size_t)cap);
    if (!p)
        return false;
    r->requests = p;
    r->cap_requests = cap;
    return true;
}

static void start(tg__reducer *r, const bucket *b)
{
    if (r->rc != 0)
        return;
    int calls = (int)((b->count + MAX_COUNT - 1) / MAX_COUNT);
    if (!add_requests(r, calls)) {
        r->rc = tg__failf(r->loc, "%s: out of memory", F);
        return;
    }
    for (int64_t at = 0; at < b->count && r->rc == 0; at += MAX_COUNT) {
        int count = b->count - at > MAX_COUNT ? MAX_COUNT : (int)(b->count - at);
        void *p = (unsigned char *)r->buf[b->which] + (size_t)(b->from + at) * dtype_size(b->which);
        r->rc = tg__dist_iallreduce_sum(r->loc, F, p, b->which ? TG_F64 : TG_F32, count, &r->requests[r->n_requests]);
        r->n_requests += r->rc == 0;
    }
}

/* Starts the complete buckets that wait for no earlier one; the last waits for end. */
static void start_ready(tg__reducer *r, bool at_end)
{
    while (r->started < r->n_buckets && r->buckets[r->started].pending == 0 &&
           (at_end || r->started < r->n_buckets - 1)) {
        start(r, &r->buckets[r->started++]);
        r->in_pass += !at_end;
    }
    if (r->rc == 0)
        r->rc = tg__dist_test(r->loc, F, r->requests, r->n_requests);
}

void tg__reducer_progress(tg__reducer *r)
{
    if (!r || r->n_requests == 0 || r->rc != 0)
        return;
    if (r->slot && tg__ctx()->trace && !record_host(r->loc, progress_replayed, &(slot_arg){.slot = r->slot}, NULL, 0))
        r->rc = -1;
    r->rc = r->rc ? r->rc : tg__dist_test(r->loc, F, r->requests, r->n_requests);
}

#define PACK(T)                                                                  \
    do {                                                                         \
        T *b = (T *)r->buf[g->dtype == TG_F64] + r->offset[i], w = (T)r->weight; \
        const T *v = g->data;                                                    \
        for (int64_t j = 0; j < g->size; j++)                                    \
            b[j] = w * v[j];                                                     \
    } while (0)

void tg__reducer_ready(tg__reducer *r, int i, const tg_tensor *g)
{
    if (!r || i < 0 || i >= r->n || r->given[i])
        return;
    if (r->slot && tg__ctx()->trace &&
        !record_host(r->loc, ready_replayed, &(slot_arg){.slot = r->slot, .i = i}, (tg_tensor *const[]){(tg_tensor *)g},
                     1))
        r->rc = -1;
    r->given[i] = true;
    int k = r->bucket_of[i];
    if (k < 0)
        return;
    const bucket *b = &r->buckets[k];
    if (g && g->dtype == (b->which ? TG_F64 : TG_F32) && g->size == r->size[i]) {
        if (b->which)
            PACK(double);
        else
            PACK(float);
    } else { /* no gradient: zeros travel, and the status says it is NULL */
        memset((unsigned char *)r->buf[b->which] + (size_t)r->offset[i] * dtype_size(b->which), 0,
               (size_t)r->size[i] * dtype_size(b->which));
    }
    r->buckets[k].pending--;
    start_ready(r, false);
}
#undef PACK

/* Divides each averaged gradient's sum by the weights' sum into t. */
#define AVERAGE(T)                                         \
    do {                                                   \
        const T *b = (const T *)r->buf[w] + r->offset[i];  \
        T total = ((const T *)r->buf[w])[0], *o = t->data; \
        for (int64_t j = 0; j < t->size; j++)              \
            o[j] = total > 0 ? b[j] / total : (T)0;        \
    } while (0)

/* What the status says: 0, or -1 with an error on every rank. */
static int check_status(tg__reducer *r, bool failed)
{
    int w = r->status_dtype, size = tg_distributed_size();
    double failures = get_value(r, w, 1), rank_sum = get_value(r, w, 2);
    if (failed)
        return -1; /* this rank keeps its own error */
    if (failures > 0)
        return failures == 1 ? tg__failf(r->loc,
                                         "%s: rank %d of %d failed during its backward pass (its own error says "
                                         "why); no rank updates",
                                         F, (int)rank_sum, size)
                             : tg__failf(r->loc,
                                         "%s: %d of the %d ranks failed during their backward pass (their own "
                                         "errors say why); no rank updates",
                                         F, (int)failures, size);
    for (int i = 0; i < r->n; i++) {
        double nulls = r->bucket_of[i] >= 0 ? get_value(r, w, 3 + i) : 0;
        if (nulls != 0 && nulls != size)
            return tg__failf(r->loc,
                             "%s: the ranks disagree on grads[%d]: NULL on %g of the %d ranks, a tensor on the "
                             "others: every rank passes the same list (NULL at the same places)",
                             F, i, nulls, size);
    }
    return 0;
}

/* The averages go into new tensors, or into `into` (a replay's headers) in order. */
static int end_now(tg__reducer *r, tg_tensor **grads, tg_tensor *const *into, int n_into, bool failed)
{
    for (int i = 0; i < r->n; i++)
        if (!r->given[i])
            tg__reducer_ready(r, i, failed || !grads ? NULL : grads[i]);
    int w = r->status_dtype;
    set_value(r, w, 1, failed);
    set_value(r, w, 2, failed ? tg_distributed_rank() : 0);
    for (int i = 0; i < r->n; i++)
        set_value(r, w, 3 + i, r->bucket_of[i] >= 0 && (failed || !grads || !grads[i]));
    double t1 = tg__dist_now();
    start_ready(r, true);
    int rc = r->rc != 0 ? -1 : tg__dist_wait(r->loc, F, r->requests, r->n_requests);
    r->waited += tg__dist_now() - t1;
    if (rc == 0)
        rc = check_status(r, failed);
    for (int i = 0, k = 0; rc == 0 && i < r->n; i++) {
        if (r->bucket_of[i] < 0 || !grads[i])
            continue;
        tg_shape s = tg__shape(grads[i]);
        tg_tensor *t =
            !into ? tg__tensor_new(r->loc, grads[i]->dtype, &s)
            : k < n_into && into[k]->size == grads[i]->size && into[k]->dtype == grads[i]->dtype
                ? into[k++]
                : (tg_tensor *)tg__fail(r->loc, "%s: the replayed gradients do not match the traced ones", F);
        if (!t) {
            rc = -1;
            break;
        }
        int w = grads[i]->dtype == TG_F64;
        if (w)
            AVERAGE(double);
        else
            AVERAGE(float);
        grads[i] = t;
    }
    tg__dist_count_wait(r->waited, r->n_buckets, r->in_pass);
    reducer_free(r);
    return rc;
}
#undef AVERAGE

/* Traced: the end is done now and recorded as a node of the gradients in, the averages
 * out (those it replaced). */
int tg__reducer_end(tg__reducer *r, tg_tensor **grads, bool failed)
{
    if (!r)
        return 0;
    if (!r->slot || failed || !grads || !tg__ctx()->trace)
        return end_now(r, grads, NULL, 0, failed);
    tg_loc loc = r->loc;
    slot_arg a = {.slot = r->slot, .n = r->n};
    tg_tensor **made = tg__arena_alloc(tg__ctx()->scope, sizeof *made * (size_t)(2 * a.n + 1));
    if (!made) {
        end_now(r, NULL, NULL, 0, true);
        return tg__failf(loc, "%s: out of memory", F);
    }
    memcpy(made, grads, sizeof *made * (size_t)a.n); /* made[0, n): the pass's; then the averages */
    struct tg_fgraph *g = tg__trace_pause();
    int rc = end_now(r, grads, NULL, 0, false);
    tg__trace_resume(g);
    int k = 0;
    for (int i = 0; rc == 0 && i < a.n; i++)
        if (grads[i] != made[i])
            made[a.n + k++] = grads[i];
    if (rc == 0 && tg__trace_host_outputs(loc, end_replayed, &a, sizeof a, made, a.n, made + a.n, k) != 0)
        rc = -1;
    return rc;
}

int tg__reduce_all(tg_loc loc, tg_tensor **grads, int n, tg_allreduce_opts o)
{
    tg__reducer *r = NULL;
    if (o.failed) { /* joins the list's check as failed: every rank stops there */
        tg__dist_agree(loc, F, NULL, n, 0, &o);
        return -1;
    }
    if (tg__reducer_begin(loc, &r, grads, n, o.samples) != 0)
        return -1;
    return tg__reducer_end(r, grads, false);
}
