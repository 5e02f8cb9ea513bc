/* Internal view of the distributed layer: the collectives the training layer runs on. */
#ifndef TG_DIST_IMPL_H
#define TG_DIST_IMPL_H

#include "tapegrad/distributed.h"
#include "../tensor/tensor_impl.h"

typedef enum tg_dist_op { TG_DIST_SUM, TG_DIST_MIN, TG_DIST_MAX } tg_dist_op;

/* True once init found more than one rank: the collectives below then talk to the
 * others; otherwise they change nothing and return 0. */
bool tg__dist_active(void);
/* buf[0..n) combined over every rank with `op`, in place, the same on every rank.
 * Returns 0, or -1 with an error naming `func` and MPI's reason. */
int tg__dist_allreduce_f64(tg_loc loc, const char *func, double *buf, int64_t n, tg_dist_op op);
/* `bytes` bytes of buf on rank `root` copied to every other rank's buf. */
int tg__dist_bcast(tg_loc loc, const char *func, void *buf, size_t bytes, int root);

/* A monotonic clock, in seconds. */
double tg__dist_now(void);
/* The flat gradient buffer of one dtype (0 float32, 1 float64) of at least `bytes`, kept
 * between calls; NULL when out of memory. */
void *tg__dist_flat(int which, size_t bytes);
/* The ranks agree on the gradients' list (n, total values, .samples given, which entries
 * are NULL and their dtypes) or all fail; a rank with o->failed joins and fails, and the
 * others fail naming it (tg_allreduce_gradients's first step). */
int tg__dist_agree(tg_loc loc, const char *func, tg_tensor *const *grads, int n, int64_t elems,
                   const tg_allreduce_opts *o);
/* MPI_Iallreduce summing count values of buf in place; MPI_Testall (advances the
 * outstanding requests: Open MPI progresses them only inside MPI calls) and MPI_Waitall. */
int tg__dist_iallreduce_sum(tg_loc loc, const char *func, void *buf, tg_dtype dtype, int count, void **request);
int tg__dist_test(tg_loc loc, const char *func, void **requests, int n);
int tg__dist_wait(tg_loc loc, const char *func, void **requests, int n);
/* Adds one average's exposed time, its buckets and those started in the pass to the
 * statistics. */
void tg__dist_count_wait(double seconds, int buckets, int in_pass);

/* The gradients of one tg_gradients(.allreduce) call averaged in buckets that start as
 * the backward pass makes them final (buckets.c, DDP's reducer). begin agrees on the
 * list with the other ranks (NULL: one process, nothing to do; -1: an error on every
 * rank); ready(i) gives source i's final gradient (NULL: none, zeros travel); end gives
 * the rest, waits for every bucket and replaces grads[i] by the averages. With `failed`
 * this rank's pass failed: it still completes every bucket, and every rank fails. */
typedef struct tg__reducer tg__reducer;
/* TAPEGRAD_BUCKET_MB in bytes; 0: no buckets (begin gives no reducer, and
 * tg_allreduce_gradients makes one blocking allreduce per dtype). */
size_t tg__dist_bucket_bytes(void);
/* tg_allreduce_gradients through the buckets: begin, every gradient ready, end. */
int tg__reduce_all(tg_loc loc, tg_tensor **grads, int n, tg_allreduce_opts o);
int tg__reducer_begin(tg_loc loc, tg__reducer **out, tg_tensor *const *sources, int n, double samples);
void tg__reducer_ready(tg__reducer *r, int i, const tg_tensor *grad);
/* Advances the buckets in flight (MPI_Testall): the pass calls it after each node. */
void tg__reducer_progress(tg__reducer *r);
int tg__reducer_end(tg__reducer *r, tg_tensor **grads, bool failed);

#endif
