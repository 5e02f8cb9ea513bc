/* Samplers: how generic checks call every row of the op table on float64 operands of any
 * shape. Each row has one; the checks that walk the table are tests/test_nan.c (NaN in,
 * NaN out) and the op-graph gradient fuzzer (fuzz/opgraph.c, tg_fuzz_opgraph). test_nan
 * fails for a row without a sampler, so an op added to the table is covered by both.
 *
 * A sampler fits its operands to the shapes the op needs (tg_sample_fit), picks the op's
 * attributes from attribute bytes, calls the op (through its public function or
 * tg__apply) and returns the op's output as is (bool and integer outputs too). It also
 * says which values the op's kinks are about (tg_sample.in, .zero), so that the fuzzer
 * can keep finite differences away from them. */
#ifndef TG_FUZZ_OP_SAMPLES_H
#define TG_FUZZ_OP_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include <tapegrad.h>

#include "../src/ops/op.h"

enum { TG_SAMPLE_MAX_IN = 4 };

typedef struct tg_sample {
    tg_op_kind op;        /* the row */
    const uint8_t *param; /* attribute bytes (0 past the end) */
    size_t n_param, at;
    /* Set by tg_sample_run and the sampler: */
    const tg_tensor *in[TG_SAMPLE_MAX_IN]; /* the op's float inputs, which its kinks are about */
    int n_in;
    const tg_tensor *zero[2]; /* values with a kink at 0 (a relu inside a fused op, a helper's x > 0) */
    int n_zero;
    unsigned kinks; /* TG_KINK_* of this call on `in`: the row's, or fewer by its attributes */
    double lo, hi;  /* TG_KINK_BOUNDS */
} tg_sample;

typedef tg_tensor *(*tg_sample_fn)(tg_sample *s, tg_tensor *const *x);

typedef struct tg_op_sampler {
    tg_sample_fn fn;
    int arity;             /* float64 operands, of any shapes */
    unsigned nan_operands; /* bits: operands whose NaN must reach every output that depends on them
                                    * (0: the row's NaN behaviour is documented apart, docs/reliability.md) */
} tg_op_sampler;

extern const tg_op_sampler tg_op_samplers[TG_OP_COUNT];

/* The next attribute byte. */
unsigned tg_sample_byte(tg_sample *s);
/* Runs row s->op on float64 operands x; NULL with an error when the op fails. */
tg_tensor *tg_sample_run(tg_sample *s, tg_tensor *const *x);
/* x's elements as a tensor of `shape`: its first ones, or, when x has fewer, x followed by
 * affine copies of itself (distinct values: no ties that x does not have). Differentiable. */
tg_tensor *tg_sample_fit(const tg_tensor *x, tg_shape shape);

#endif
