/* The op table, one entry per row of ops.def. */
#include "op.h"

#define RULE(fn) TG_GRAD_RULE, .backward = fn
#define NONE     TG_GRAD_NONE
#define ZERO     TG_GRAD_ZERO
#define STOP     TG_GRAD_STOP
#define OP(KIND, NAME, IN, OUT, DTYPES, SHAPE, FORWARD, GRAD, FLAGS, DOMAIN, KINKS, DOC) \
    [TG_OP_##KIND] = {.name = NAME,                                                      \
                      .n_in = IN,                                                        \
                      .n_out = OUT,                                                      \
                      .dtypes = DTYPES,                                                  \
                      .shape = SHAPE,                                                    \
                      .forward = FORWARD,                                                \
                      .grad = GRAD,                                                      \
                      .flags = FLAGS,                                                    \
                      .domain = DOMAIN,                                                  \
                      .kinks = KINKS,                                                    \
                      .doc = DOC},
#define COMPOSITE(...)
const tg_op_def tg__op_table[TG_OP_COUNT] = {
#include "ops.def"
};

const char *tg__op_name(tg_op_kind op) { return op > TG_OP_NONE && op < TG_OP_COUNT ? tg__op_table[op].name : "?"; }
