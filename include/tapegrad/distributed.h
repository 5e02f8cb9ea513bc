/* tapegrad/distributed.h: data-parallel training over MPI (Open MPI), as Horovod and
 * TensorFlow's MultiWorkerMirroredStrategy do it: every process holds the whole model,
 * takes its shard of every global batch, and the gradients are averaged over the ranks
 * before each update, so N processes train the weights one process would.
 *
 *   mpirun -np 4 ./train                 // or: mpirun -np 4 tapegrad fit ...
 *
 *   tg_distributed_init();               // rank 0 of 1 when not started by mpirun
 *   tg_compile(m, .optimizer = tg_adam(), .loss = ..., .distribute = true);
 *   tg_fit(m, x, y, .batch_size = 64);   // 64 is the global batch: each rank takes 64 / N
 *
 * libmpi is loaded at run time (dlopen of libmpi.so.40, Open MPI 4's; TAPEGRAD_MPI_LIBRARY
 * names another file), and only by a process that mpirun started: a program that never
 * runs under mpirun never loads it, and tapegrad builds without MPI installed. Without
 * the library, a process started by mpirun gets an error that says how to install it.
 * MPI calls are made from the thread that called tg_distributed_init. docs/distributed.md
 * gives the semantics and what is left to do. */
#ifndef TAPEGRAD_DISTRIBUTED_H
#define TAPEGRAD_DISTRIBUTED_H

#include "tensor.h"

TG_BEGIN_DECLS

/* Finds out whether this process was started by mpirun (OMPI_COMM_WORLD_SIZE, PMIX_RANK
 * or PMI_RANK in the environment, read before anything is loaded) and, when it was with
 * more than one process, loads libmpi and initialises it (MPI_Init_thread, errors
 * returned rather than fatal; MPI_Finalize runs at exit). Otherwise the process is rank 0
 * of 1 and nothing is loaded. Safe to call again: later calls return the first one's
 * status. Returns 0, or -1 with an error (libmpi missing, MPI_Init failing). */
int tg_distributed_init_at(tg_loc loc);
#define tg_distributed_init() tg_distributed_init_at(TG_LOC)
/* This process's rank and the number of ranks: 0 and 1 before a successful init. */
int tg_distributed_rank(void);
int tg_distributed_size(void);
/* The host name of `rank` (MPI_Get_processor_name, gathered at init), or "" for a rank
 * out of range. */
const char *tg_distributed_host(int rank);

/* Ends every rank of the job with `code` (MPI_Abort), after printing "tapegrad: rank R
 * of N: message" to stderr. The one call that ends the process, for a program's own
 * error path (the tapegrad command's): the library never calls it. Returns -1 when MPI
 * is not running (one process: the caller exits as it would). */
int tg_distributed_abort(int code, const char *message);

typedef struct tg_allreduce_opts {
    double samples; /* this rank's samples in the batch its gradients come from: each
                          rank's gradient weighs samples / (all ranks' samples), so N
                          shards of a batch give the gradient of the whole batch; a rank
                          with 0 samples (its gradients zeros) still joins. Negative
                          (default): the plain mean over ranks */
    bool failed;    /* this rank failed before it had gradients: it joins the
                          reduction (grads may be NULL) and returns -1 keeping its own
                          error; every other rank returns -1 with an error naming it */
} tg_allreduce_opts;
/* Averages gradients over the ranks, Horovod's allreduce: grads[i] is replaced by a new
 * tensor in the innermost scope holding the average (same dtype and shape); a NULL
 * entry stays NULL. Every rank passes the same list (n, dtypes and shapes, NULL at the
 * same places), with .samples on all ranks or on none. The gradients travel in one flat
 * buffer per dtype (float32, float64), summed in that dtype, after a small allreduce in
 * which the ranks check that their lists agree: cut into buckets of TAPEGRAD_BUCKET_MB
 * megabytes (default 25, PyTorch DDP's; read at init, the same on every rank), each an
 * MPI_Iallreduce, the buckets tg_gradients(.allreduce = true) starts during the backward
 * pass as their gradients become final; TAPEGRAD_BUCKET_MB=0: one blocking
 * MPI_Allreduce per dtype after the pass. With one process it changes nothing.
 * Returns 0, or -1 with an error on every rank. */
int tg_allreduce_gradients_at(tg_loc loc, tg_tensor **grads, int n, tg_allreduce_opts o);
#define tg_allreduce_gradients(grads, n, ...) \
    tg_allreduce_gradients_at(TG_LOC, grads, n, TG__OPTS(tg_allreduce_opts, .samples = -1, __VA_ARGS__))

/* What the gradients' averages cost this process so far: the time it was blocked in
 * them (in tg_allreduce_gradients, or, with tg_gradients' .allreduce, the part of the
 * bucketed allreduces the backward pass did not hide: the list's check before the pass,
 * the wait for the buckets after it), the averages made, the buckets (allreduces of
 * gradient values) they ran and how many of those started during a backward pass.
 * Zeros in a process of one rank. */
typedef struct tg_distributed_stats {
    double wait_seconds;
    int64_t reductions;
    int64_t buckets;
    int64_t buckets_in_pass;
} tg_distributed_stats;
tg_distributed_stats tg_distributed_get_stats(void);

/* Copies the values of vars[i] (variables, same dtypes and shapes on every rank) on
 * rank `root` into the same variables of every other rank (MPI_Bcast), as an assign
 * does: their versions are bumped. Horovod's broadcast_variables. Returns 0 or -1. */
int tg_broadcast_variables_at(tg_loc loc, tg_tensor *const *vars, int n, int root);
#define tg_broadcast_variables(vars, n, root) tg_broadcast_variables_at(TG_LOC, vars, n, root)

TG_END_DECLS
#endif
