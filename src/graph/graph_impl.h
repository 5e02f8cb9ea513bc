/* Graph mode's insides: a traced graph of op applications, its memory plan and its replay.
 *
 * While a function is traced, the thread's context points at the graph being built
 * (tg_context.trace). The dispatcher hands every op it runs to tg__trace_op, the tensor
 * layer and the optimizers hand their side effects (assigns, prints, updates) to
 * tg__trace_host, and tapes hand each variable read they keep to tg__trace_snapshot. Every
 * tensor seen gets a value: an input of the function, a constant (captured by value), a
 * variable (by reference), or an output of a node. Tracing ends with a plan: each node
 * output gets an offset in one buffer, reused once its last reader has run. */
#ifndef TG_GRAPH_IMPL_H
#define TG_GRAPH_IMPL_H

#include "../ops/op.h"
#include "tapegrad/function.h"

typedef enum tg_gvalue_kind {
    TG_GV_INPUT, /* an input of the graph (a function's, or a capture of a branch or loop body) */
    TG_GV_CONST, /* a tensor made outside the graph's ops: its values, copied when first seen */
    TG_GV_VAR,   /* a variable's handle: read at every run */
    TG_GV_NODE,  /* an output of a node */
} tg_gvalue_kind;

typedef struct tg_gvalue {
    tg_gvalue_kind kind;
    int root;     /* the value whose buffer a view shares; itself otherwise */
    int def;      /* the node that makes it; -1 for inputs, constants and variables */
    int last_use; /* the last node that reads it (through a view too) */
    bool planned; /* has a buffer in the plan */
    size_t offset;
    tg_tensor hdr;         /* the header nodes read at replay */
    tg_tensor *var;        /* TG_GV_VAR */
    int input;             /* TG_GV_INPUT: the index among the graph's inputs */
    const tg_tensor *seen; /* the tensor it stood for while tracing (captures only) */
} tg_gvalue;

typedef enum tg_gnode_kind {
    TG_GN_OP,   /* a row's forward */
    TG_GN_VIEW, /* a reshape that shares its input's buffer */
    TG_GN_READ, /* a variable read a tape kept: a copy, or the variable itself when no write follows */
    TG_GN_HOST, /* a side effect: assign, print, optimizer update */
    TG_GN_CTRL, /* cond, while_loop, and while_loop's gradient */
} tg_gnode_kind;

typedef struct tg_ctrl tg_ctrl;

typedef struct tg_gnode {
    tg_gnode_kind kind;
    tg_op_kind op;
    tg_loc loc;
    tg_attrs a;
    int n_in, n_out;
    int *in, *out; /* value ids; in[i] -1 for a NULL input of a host node */
    tg_tensor **outp;
    tg__host_fn host;
    void *arg;
    tg_tensor **writes; /* variables a host node writes */
    int n_writes;
    bool alias;       /* TG_GN_READ: no write follows before the last reader: no copy */
    bool in_backward; /* traced inside a gradient computation (for the op profile) */
    bool widened;     /* a bfloat16 call of a row without its own kernel: run widened to float32 */
    tg_ctrl *ctrl;
    /* the unknown batch dimension (shapes.c): an attrs' shape (reshape, broadcast_to) or a
     * host output whose dims follow a value's shape at every run */
    int shape_from;                /* 1 + that value; 0: none */
    int8_t shape_map[TG_MAX_RANK]; /* dim k is its dim shape_map[k] - 1; 0: as traced */
    bool shape_free;               /* a host node that reads its inputs' shapes when it runs */
} tg_gnode;

typedef struct tg_gmap_slot {
    const tg_tensor *t;
    uint32_t gen;
    int id;
} tg_gmap_slot;

typedef struct tg_gblock tg_gblock;

typedef struct tg_fgraph {
    tg_gvalue *values;
    int n_values, cap_values;
    tg_gnode *nodes;
    int n_nodes, cap_nodes;
    int *inputs; /* value ids: the explicit inputs, then the captures */
    int n_inputs, n_explicit, cap_inputs;
    int *cap_outer; /* capture j: the parent graph's value */
    int *outputs;
    int n_outputs;
    tg_gmap_slot *map; /* tracing: (header, generation) to value */
    size_t map_cap, map_count;
    struct tg_fgraph *parent; /* tracing a branch or a loop body: the graph around it */
    bool failed;              /* a refused read or no memory while tracing */
    bool abstract;            /* TF's tracing: no values, no side effects done (subgraphs inherit it) */
    bool soft;                /* a function's graph with eager_fallback: reads are let through... */
    bool poisoned;            /* ... and the first one noted here */
    tg_loc poisoned_loc;
    const char *poisoned_func;
    /* abstract and soft: generators that C code drew from while tracing, and their states
     * before, put back when the step runs again eagerly */
    struct tg_rng *rng[8];
    uint64_t rng_state[8][4];
    int n_rng;
    tg_loc loc;
    tg_gblock *blocks; /* everything the graph owns, freed with it */
    void *arena;
    size_t arena_bytes;
    tg_tensor **ptr; /* per value: the tensor a node reads */
    const tg_tensor **scratch;
    int max_in;
    /* the unknown batch dimension (shapes.c) */
    int64_t batch;         /* tracing: the inputs' shared dim 0 if it may vary; after: 0 unless it may */
    const char *fixed_why; /* tracing: what baked the batch size in (NULL: nothing yet) */
    struct tg_gbatch *gb;  /* shapes and plans for other batch sizes */
} tg_fgraph;

/* A control-flow node: its subgraphs and, for each, where its captures are among the
 * node's inputs. */
typedef enum { TG_CTRL_COND, TG_CTRL_WHILE, TG_CTRL_WHILE_GRAD } tg_ctrl_kind;
struct tg_ctrl {
    tg_ctrl_kind kind;
    int n_sub;
    tg_fgraph *sub[3]; /* cond: true, false; while: cond, body; while grad: cond, body, vjp */
    int *cap_index[3]; /* capture j of sub s is the node's input cap_index[s][j] */
    int n_vars;        /* while: loop variables; cond: outputs */
    int64_t maximum_iterations;
    bool strict_maximum;
    int k;       /* while grad: the output whose gradient flows in */
    int n_caps;  /* the captures among the node's inputs, after its explicit ones */
    int n_grads; /* while grad: the loop's captures, whose gradients follow the variables' */
    /* while and its gradient: scratch kept between runs */
    void *stage;
    size_t stage_bytes;
    void *stack;
    size_t stack_bytes;
    tg_tensor *hdrs; /* headers over the stack and the stage (n_vars each) */
};

/* ---- building ---- */
tg_fgraph *tg__fgraph_new(tg_loc loc, tg_fgraph *parent);
void tg__fgraph_free(tg_fgraph *g);
void *tg__fgraph_alloc(tg_fgraph *g, size_t bytes);
/* An explicit input standing for t (before any capture). -1 when out of memory. */
int tg__fgraph_add_input(tg_fgraph *g, const tg_tensor *t);
/* The value t stands for, made a capture or a constant if new; -1 on failure. */
int tg__fgraph_value(tg_fgraph *g, const tg_tensor *t);
/* A value made by a node: its header copies t's dtype and shape; t maps to it. */
int tg__fgraph_node_value(tg_fgraph *g, const tg_tensor *t, int node);
tg_gnode *tg__fgraph_add_node(tg_fgraph *g, tg_gnode_kind kind, tg_loc loc, int n_in, int n_out);
/* Ends tracing: outputs, liveness, aliasing, the plan and its buffer. false with an error. */
bool tg__fgraph_finish(tg_fgraph *g, tg_tensor *const *outputs, int n);
/* Runs a finished graph on its inputs (explicit and captures). false with an error. */
bool tg__fgraph_run(tg_fgraph *g, const tg_tensor *const *inputs);
/* The tensor output k has after a run. */
static inline const tg_tensor *tg__fgraph_output(const tg_fgraph *g, int k) { return g->ptr[g->outputs[k]]; }

/* The value t maps to, -1 when none (no capture, no constant made). */
int tg__fgraph_find(const tg_fgraph *g, const tg_tensor *t);
/* Node pairs replaced by one fused node with the same values (fuse.c); before liveness. */
void tg__fgraph_fuse(tg_fgraph *g);
/* The plan for the values' current sizes (plan.c): offsets and arena_bytes. */
bool tg__fgraph_plan(tg_fgraph *g);

/* ---- the unknown batch dimension (shapes.c) ---- */
/* Whether the finished graph may run at other batch sizes (a probe of its shapes); keeps
 * the traced plan. False only when out of memory. */
bool tg__fgraph_batch_finish(tg_fgraph *g);
/* Shapes and buffers for batch size b (g->batch set); false with an error. */
bool tg__fgraph_rebatch(tg_fgraph *g, int64_t b);
/* The traced batch size's plan: its buffer and its values' bytes each on its own. */
size_t tg__fgraph_traced_value_bytes(const tg_fgraph *g, size_t *buffer_bytes);
void tg__fgraph_batch_free(tg_fgraph *g);

/* ---- control flow (control.c) ---- */
bool tg__ctrl_run(tg_loc loc, tg_ctrl *c, const tg_tensor *const *in, int n_in, tg_tensor *const *out, int n_out);

/* Runs fn with no tape active (an inner tape of a gradient branch sees only its own ops). */
typedef struct tg_tapes_saved {
    tg_tape *active[TG_MAX_TAPES];
    int n_active, n_recording;
} tg_tapes_saved;
void tg__tapes_hide(tg_tapes_saved *s);
void tg__tapes_restore(const tg_tapes_saved *s);

#endif
