/* Internal view of a GradientTape.
 *
 * A tape maps each tensor it knows to an entry: a leaf (a watched tensor or a recorded
 * read of a watched variable) or the output of a recorded node. Nodes are kept in
 * recording order, which is a topological order, so backward is one reverse loop. A
 * tensor is keyed by its header and generation, so a header reused after its scope
 * ended is never mistaken for the tensor the tape saw. */
#ifndef TG_TAPE_IMPL_H
#define TG_TAPE_IMPL_H

#include "../ops/op.h"

typedef struct tg_node tg_node;

typedef struct tg_entry {
    tg_tensor *t;
    uint32_t gen;
    tg_node *node;        /* producer on this tape; NULL for a leaf */
    tg_tensor *var;       /* variable reads: the variable's handle ... */
    uint32_t var_gen;     /* ... its generation ... */
    uint64_t var_version; /* ... and its version when read */
    tg_loc loc;           /* where the leaf was watched or the variable read */
    tg_tensor *grad;      /* accumulated during gradient call `grad_serial` */
    uint32_t grad_serial;
    uint32_t needed_serial; /* lies on a path to a requested source */
    uint8_t reach;          /* diagnosis scratch: the target reaches it through gradients */
} tg_entry;

struct tg_node {
    tg_op_kind op;
    int n;
    tg_tensor **in; /* recorded inputs (variable reads are snapshots) */
    uint32_t *in_gen;
    tg_entry **in_entry; /* NULL for inputs this tape does not know */
    tg_entry *out;       /* outs[0] */
    int n_out;
    tg_entry **outs; /* one per output (&out when there is one) */
    tg_attrs a;
    tg_loc loc;
    const char *layer; /* the layer it ran in (a copy), or NULL */
};

typedef struct tape_chunk tape_chunk;

/* A stretch of the thread's clock during which the tape did not record. */
typedef struct tg_pause {
    uint64_t from, to;
    tg_loc loc;
} tg_pause;

/* A variable an op read while the tape recorded, without the tape watching it. */
typedef struct tg_unwatched_read {
    tg_tensor *var;
    uint32_t gen;
    tg_loc loc;
} tg_unwatched_read;

struct tg_tape {
    uint32_t magic;
    uint32_t slot; /* in the handle table, for the struct's life */
    uint64_t gen;  /* bumped by each free: a handle holds the value it was made with */
    tg_loc loc;
    bool persistent, watch_accessed;
    bool active;  /* between tg_tape_begin and tg_tape_end */
    bool paused;  /* inside stop_recording */
    bool used;    /* a non-persistent tape that has given its gradients */
    bool pending; /* scratch: this op connects to the tape */
    tape_chunk *chunks;
    tg_entry **map; /* open addressing on (header, gen) */
    size_t map_cap, map_count;
    tg_node **nodes;
    size_t n_nodes, cap_nodes;
    tg_entry **reads; /* variable reads, in order */
    size_t n_reads, cap_reads;
    tg_tensor **watched; /* watched variables, in order first watched */
    uint32_t *watched_gen;
    size_t n_watched, cap_watched;
    uint32_t grad_serial;
    /* history, for the diagnosis */
    uint64_t begin_stamp, end_stamp; /* end_stamp 0 while recording */
    tg_loc end_loc, used_loc, reset_loc;
    tg_loc grad_loc;    /* the last gradient call */
    tg_loc refused_loc; /* a gradient call refused because the tape was used */
    tg_pause *pauses;
    size_t n_pauses, cap_pauses;
    const char *layer_seen, *layer_copy; /* the last layer an op ran in, and its name on the tape */
    tg_unwatched_read *unwatched;
    size_t n_unwatched, cap_unwatched;
    tg_tape *next_free;
    tg_tape *next_live, *prev_live; /* the thread's live tapes */
};

enum { TG_TAPE_ALIVE = 0x7A9E11, TG_TAPE_DEAD = 0x7A9EDD };

tg_entry *tg__tape_lookup(const tg_tape *t, const tg_tensor *x);
/* The tape a user's handle names; NULL with an error for NULL or a freed tape's handle. */
tg_tape *tg__tape_get(tg_loc loc, const char *func, const tg_tape *handle);
/* Forgets every node and entry (reset, or a non-persistent tape after its gradient). */
void tg__tape_clear(tg_tape *t);
/* Removes the tape from the thread's active stack (end of its block). */
void tg__tape_deactivate(tg_tape *t, tg_loc loc);
/* The thread's live (not freed) tapes. */
tg_tape *tg__live_tapes(void);
/* Did the tape record at clock time `stamp`? */
bool tg__tape_recorded_at(const tg_tape *t, uint64_t stamp);
/* Diagnoses every source a gradient call at `call` left without a gradient (diagnose.c). */
void tg__remember_missing(tg_loc call, tg_tape *t, const tg_gradient_opts *o);
/* Why the gradient of y with respect to x is missing, asked by a call at `call`
 * (explain.c); *brk (may be NULL) gets the hop it names, if on a path (provenance.h). */
typedef struct tg_step tg_step;
void tg__explain(tg_tape *t, const tg_tensor *y, const tg_tensor *x, tg_loc call, tg_diagnosis *d, tg_step *brk);
/* Is every element of g zero? (an identically zero gradient) */
bool tg__all_zero(const tg_tensor *g);
/* "variable 'w'", or "the tensor made at f.c:12". */
void tg__source_name(const tg_tensor *x, char *buf, size_t size);
/* One reverse pass, for the diagnosis (gradient.c). */
bool tg__backward(tg_loc loc, tg_tape *t, tg_tensor *const *targets, tg_tensor *const *seeds, int nt,
                  tg_tensor *const *sources, int ns, tg_tensor **out);

#endif
