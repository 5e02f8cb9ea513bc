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

#endif
