/* The provenance graph: where every value came from, as far as tapegrad can tell.
 *
 * A tensor's parents are the inputs of the node that recorded it on the tape; else the
 * first inputs of the op that made it unrecorded; for a recorded read of a variable, the
 * variable; for a variable, the computed values assigned into it; for a tensor built
 * from C values, the values that left tapegrad before it (tg_copy_out, tg_item,
 * tg_predict, tg_evaluate). The diagnosis searches it for a path from a target back to a
 * source and names the first hop, from the source's side, that carries no gradient. */
#ifndef TG_PROVENANCE_H
#define TG_PROVENANCE_H

#include "tape_impl.h"

typedef enum tg_hop {
    TG_HOP_TAPE,       /* an input of a recorded, differentiable op */
    TG_HOP_CUT,        /* an input of a recorded op with no gradient (or stop_gradient) */
    TG_HOP_UNRECORDED, /* an input of an op no tape recorded */
    TG_HOP_READ,       /* a recorded read of a variable, to the variable */
    TG_HOP_ASSIGN,     /* a variable, to a computed value assigned into it */
    TG_HOP_LEFT,       /* a tensor built from C values, to values that left tapegrad */
} tg_hop;

typedef struct tg_parent {
    const tg_tensor *t; /* NULL: the values of a model's variables (tg_predict) */
    tg_hop how;
    const tg_node *node;   /* TAPE/CUT: the node that recorded the child */
    const tg_event *event; /* ASSIGN/LEFT */
    bool weak;             /* LEFT linked by time order only, not by memory or value */
} tg_parent;

/* One hop of a path: `child` came from `from`. */
typedef struct tg_step {
    const tg_tensor *child;
    tg_parent from;
} tg_step;

#define TG_PATH_MAX 1024

typedef struct tg_graph {
    const tg_tape *t;
    const tg_tensor *x;         /* the source searched for */
    bool weak;                  /* follow time-order links of built tensors */
    const tg_tensor *only_weak; /* ... from this tensor only (NULL: any) */
    bool exhaustive;            /* mark every tensor x is behind; no path is kept */
    /* visited tensors: open addressing on the header, with the search's verdict */
    const tg_tensor **keys;
    uint8_t *state;
    size_t cap, count;
    tg_step path[TG_PATH_MAX]; /* x's side first, the target last */
    int n_path;
    int depth;
    bool truncated;
} tg_graph;

void tg__graph_init(tg_graph *g, const tg_tape *t, const tg_tensor *x);
void tg__graph_free(tg_graph *g);
/* Calls fn on every parent of z; stops when fn returns true (and returns true). */
typedef bool (*tg_parent_fn)(tg_graph *g, const tg_tensor *z, const tg_parent *p, void *user);
bool tg__each_parent(tg_graph *g, const tg_tensor *z, tg_parent_fn fn, void *user);
/* Is there a path from y back to g->x? Fills g->path. Forgets earlier searches. */
bool tg__find_path(tg_graph *g, const tg_tensor *y);
/* Did the last search find g->x behind z (z on a path from the target to x)? Complete
 * only after an exhaustive search. */
bool tg__behind(const tg_graph *g, const tg_tensor *z);
/* Every ancestor of y (y included), each once, up to `max`; returns the count. Each is
 * then seen (below). */
int tg__ancestors(tg_graph *g, const tg_tensor *y, const tg_tensor **out, int max);
/* A set of tensors on the graph's table: mark (false when out of memory), and ask. */
bool tg__mark(tg_graph *g, const tg_tensor *z);
bool tg__seen(const tg_graph *g, const tg_tensor *z);

static inline bool tg__alive(const tg_tensor *x, uint32_t gen)
{
    return x && x->state == TG_HEADER_ALIVE && x->gen == gen;
}

#endif
