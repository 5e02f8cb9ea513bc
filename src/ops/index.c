/* Index moves: tile, reverse and roll. Each output element is one element of x, found
 * axis by axis: tile reads index i % dim, reverse dim - 1 - i, roll (i - shift) mod dim.
 * One kernel serves the three (tg__index_map_forward); they move bytes, so every dtype
 * works. Their gradients are the adjoint moves, made of public ops. */
#include <float.h>
#include <stdint.h>

#include "op.h"
#include "tapegrad/ops.h"

static bool check_x(const tg_call *c)
{
    if (c->in[0]->rank == 0 && (c->op == TG_OP_REVERSE || c->op == TG_OP_ROLL))
        return tg__failb(c->loc, "%s: `x` is a scalar; it needs a tensor of rank >= 1", tg__op_name(c->op));
    return true;
}

/* reverse and roll: the output has x's shape. */
bool tg__index_map_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    if (!check_x(c))
        return false;
    *shape = tg__shape(c->in[0]);
    *dtype = c->in[0]->dtype;
    return true;
}

bool tg__tile_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    char s[TG_SHAPE_STR_MAX];
    tg_shape xs = tg__shape(x);
    if (c->a->tile.n != x->rank)
        return tg__failb(c->loc, "tg_tile: multiples has %d entries, but x (shape %s) has rank %d; give one per axis",
                         c->a->tile.n, tg__shape_str(&xs, s, sizeof s), x->rank);
    *shape = xs;
    for (int i = 0; i < x->rank; i++) {
        int64_t m = c->a->tile.multiples[i], d;
        if (m < 0)
            return tg__failb(c->loc, "tg_tile: multiples[%d] is %lld; each must be >= 0", i, (long long)m);
        if (tg__mul_overflow(x->shape[i], m, &d))
            return tg__failb(c->loc, "tg_tile: axis %d of %lld elements times %lld overflows", i,
                             (long long)x->shape[i], (long long)m);
        shape->dims[i] = d;
    }
    *dtype = x->dtype;
    return true;
}

/* Where output index i of axis d reads along x's axis d (of length n). */
static int64_t source_index(tg_op_kind op, const tg_attrs *a, int d, int64_t i, int64_t n)
{
    switch (op) {
    case TG_OP_TILE: return i % n;
    case TG_OP_REVERSE: return a->reverse.axis[d] ? n - 1 - i : i;
    case TG_OP_MIRROR_PAD: { /* reflect: ... 2 1 | 0 1 2 | 1 0 ...; symmetric: ... 1 0 | 0 1 2 | 2 1 ... */
        int64_t j = i - a->mirror_pad.before[d], sym = a->mirror_pad.symmetric;
        return j < 0 ? -j - sym : j >= n ? 2 * n - 2 + sym - j : j;
    }
    default: { /* roll: out[(i + shift) mod n] = x[i] */ int64_t j = i - a->roll.shift[d]; return j < 0 ? j + n : j;
    }
    }
}

/* The output row by row: the innermost axis copied element by element (a memcpy run for
 * tile and roll pieces would be faster; the rows here are short), the outer axes by an
 * odometer that keeps the source offset. */
bool tg__index_map_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    if (out->size == 0)
        return true;
    size_t esz = tg__dsize(x->dtype);
    int r = x->rank;
    if (r == 0) {
        memcpy(out->data, x->data, esz);
        return true;
    }
    int64_t xstride[TG_MAX_RANK], s = 1;
    for (int d = r - 1; d >= 0; d--) {
        xstride[d] = s;
        s *= x->shape[d];
    }
    int64_t last = out->shape[r - 1], nlast = x->shape[r - 1];
    int64_t *map = tg__arena_alloc(tg__ctx()->scope, sizeof(int64_t) * (size_t)last);
    if (!map)
        return tg__failb(c->loc, "%s: out of memory", tg__op_name(c->op));
    for (int64_t i = 0; i < last; i++)
        map[i] = source_index(c->op, c->a, r - 1, i, nlast);
    int64_t idx[TG_MAX_RANK] = {0}, base = 0; /* base: x's offset of the outer axes' sources */
    for (int q = 0; q <= r - 2; q++)
        base += source_index(c->op, c->a, q, 0, x->shape[q]) * xstride[q];
    for (int64_t o = 0; o < out->size; o += last) {
        char *dst = (char *)out->data + (size_t)o * esz;
        const char *src = (const char *)x->data + (size_t)base * esz;
        switch (esz) {
        case 1:
            for (int64_t i = 0; i < last; i++)
                dst[i] = src[map[i]];
            break;
        case 4:
            for (int64_t i = 0; i < last; i++)
                memcpy(dst + 4 * i, src + 4 * map[i], 4);
            break;
        default:
            for (int64_t i = 0; i < last; i++)
                memcpy(dst + 8 * i, src + 8 * map[i], 8);
            break;
        }
        for (int d = r - 2; d >= 0; d--) { /* odometer over the outer axes */
            if (++idx[d] < out->shape[d]) {
                base = 0;
                for (int q = 0; q <= r - 2; q++)
                    base += source_index(c->op, c->a, q, idx[q], x->shape[q]) * xstride[q];
                break;
            }
            idx[d] = 0;
        }
    }
    return true;
}

/* TF's _TileGrad: dy's copies summed, one axis at a time ([before, m, dim, after] summed
 * over m), so the rank never passes 4. */
bool tg__tile_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_tensor *d = g->dy;
    tg_shape cur = tg__shape(g->out);
    for (int i = 0; i < x->rank && d; i++) {
        int64_t m = g->a->tile.multiples[i];
        if (m == 1)
            continue;
        int64_t before = 1, after = 1;
        for (int q = 0; q < i; q++)
            before *= cur.dims[q];
        for (int q = i + 1; q < cur.rank; q++)
            after *= cur.dims[q];
        d = tg_sum_at(l, tg_reshape_at(l, d, TG_SHAPE(before, m, x->shape[i], after)),
                      (tg_reduce_opts){.axes = TG_AXES(1)});
        cur.dims[i] = x->shape[i];
        d = d ? tg_reshape_at(l, d, cur) : NULL;
    }
    dx[0] = d == g->dy ? tg_identity_at(l, d) : d;
    return dx[0] != NULL;
}

static tg_axes reversed_axes(const tg_attrs *a, int rank)
{
    tg_axes axes = {0};
    for (int d = 0; d < rank; d++)
        if (a->reverse.axis[d])
            axes.axis[axes.n++] = d;
    return axes;
}

/* TF's _ReverseV2Grad: dy reversed the same way. */
bool tg__reverse_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return (dx[0] = tg_reverse_at(g->loc, g->dy, reversed_axes(g->a, g->in[0]->rank))) != NULL;
}

/* TF's _RollGrad: dy rolled back by -shift. */
bool tg__roll_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    int r = g->in[0]->rank;
    tg_shape shift = {.rank = r};
    tg_axes axes = {.n = r};
    for (int d = 0; d < r; d++) {
        shift.dims[d] = -g->a->roll.shift[d];
        axes.axis[d] = d;
    }
    return (dx[0] = tg_roll_at(g->loc, g->dy, shift, axes)) != NULL;
}

/* ---- public functions ------------------------------------------------------------------------------ */
tg_tensor *tg_tile_at(tg_loc loc, const tg_tensor *x, tg_shape multiples)
{
    tg_attrs a = {.tile.n = multiples.rank};
    for (int i = 0; i < multiples.rank && i < TG_MAX_RANK; i++)
        a.tile.multiples[i] = multiples.dims[i];
    return TG__APPLY(loc, TG_OP_TILE, &a, x);
}

tg_tensor *tg_reverse_at(tg_loc loc, const tg_tensor *x, tg_axes axes)
{
    if (!tg__check_input(loc, "tg_reverse", x, "x"))
        return NULL;
    tg_attrs a = {0};
    if (axes.n < 0 || axes.n > TG_MAX_RANK)
        return tg__fail(loc, "tg_reverse: axes has %d entries; give 0 to %d", axes.n, TG_MAX_RANK);
    for (int k = 0; k < axes.n; k++) {
        int ax = axes.axis[k] < 0 ? axes.axis[k] + x->rank : axes.axis[k];
        if (ax < 0 || ax >= x->rank)
            return tg__fail(loc, "tg_reverse: axis %d is out of range for a tensor of rank %d", axes.axis[k], x->rank);
        if (a.reverse.axis[ax])
            return tg__fail(loc, "tg_reverse: axis %d is named twice (tensor of rank %d); TF refuses it too", ax,
                            x->rank);
        a.reverse.axis[ax] = true;
    }
    return TG__APPLY(loc, TG_OP_REVERSE, &a, x);
}

/* Shifts of one axis add up, as TF's; each is kept mod the axis's length. */
tg_tensor *tg_roll_at(tg_loc loc, const tg_tensor *x, tg_shape shift, tg_axes axes)
{
    if (!tg__check_input(loc, "tg_roll", x, "x"))
        return NULL;
    if (shift.rank != axes.n || axes.n < 1 || axes.n > TG_MAX_RANK)
        return tg__fail(loc, "tg_roll: %d shifts and %d axes; give one shift per axis, 1 to %d of them", shift.rank,
                        axes.n, TG_MAX_RANK);
    tg_attrs a = {0};
    for (int k = 0; k < axes.n; k++) {
        int ax = axes.axis[k] < 0 ? axes.axis[k] + x->rank : axes.axis[k];
        if (ax < 0 || ax >= x->rank)
            return tg__fail(loc, "tg_roll: axis %d is out of range for a tensor of rank %d", axes.axis[k], x->rank);
        int64_t n = x->shape[ax];
        if (n > 0)
            a.roll.shift[ax] = ((a.roll.shift[ax] + shift.dims[k] % n) % n + n) % n;
    }
    return TG__APPLY(loc, TG_OP_ROLL, &a, x);
}

/* ---- mirror_pad ------------------------------------------------------------------------------------ */
bool tg__mirror_pad_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *x = c->in[0];
    const char *mode = c->a->mirror_pad.symmetric ? "SYMMETRIC" : "REFLECT";
    char s[TG_SHAPE_STR_MAX];
    tg_shape xs = tg__shape(x);
    if (c->a->mirror_pad.n != x->rank)
        return tg__failb(c->loc,
                         "tg_mirror_pad: paddings for %d axes, but x (shape %s) has rank %d; give one "
                         "before and after per axis",
                         c->a->mirror_pad.n, tg__shape_str(&xs, s, sizeof s), x->rank);
    *shape = xs;
    for (int i = 0; i < x->rank; i++) {
        int64_t b = c->a->mirror_pad.before[i], e = c->a->mirror_pad.after[i];
        int64_t most = x->shape[i] - (c->a->mirror_pad.symmetric ? 0 : 1);
        if (b < 0 || e < 0 || b > most || e > most)
            return tg__failb(c->loc,
                             "tg_mirror_pad: axis %d of x (shape %s) pads %lld before and %lld after; %s "
                             "mode allows 0 to %lld (the axis's length%s)",
                             i, tg__shape_str(&xs, s, sizeof s), (long long)b, (long long)e, mode,
                             (long long)(most < 0 ? 0 : most), c->a->mirror_pad.symmetric ? "" : " - 1");
        shape->dims[i] = x->shape[i] + b + e;
    }
    *dtype = x->dtype;
    return true;
}

/* The flat index into x that each output element of an index map reads, in a new int64
 * tensor: mirror_pad's gradient scatters dy back through it. */
static tg_tensor *flat_sources(tg_loc loc, tg_op_kind op, const tg_attrs *a, const tg_tensor *x, const tg_shape *os)
{
    int64_t size = tg__shape_size(os), xstride[TG_MAX_RANK], s = 1, idx[TG_MAX_RANK] = {0};
    tg_tensor *t = tg__tensor_new(loc, TG_I64, &(tg_shape){.rank = 1, .dims = {size}});
    if (!t)
        return NULL;
    for (int d = x->rank - 1; d >= 0; d--) {
        xstride[d] = s;
        s *= x->shape[d];
    }
    for (int64_t o = 0; o < size; o++) {
        int64_t f = 0;
        for (int d = 0; d < x->rank; d++)
            f += source_index(op, a, d, idx[d], x->shape[d]) * xstride[d];
        ((int64_t *)t->data)[o] = f;
        for (int d = x->rank - 1; d >= 0; d--) {
            if (++idx[d] < os->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return t;
}

/* TF's MirrorPadGrad: each output's gradient added to the element it copies. */
bool tg__mirror_pad_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0];
    tg_shape os = tg__shape(g->out);
    tg_tensor *map = flat_sources(l, TG_OP_MIRROR_PAD, g->a, x, &os);
    tg_tensor *d = tg_reshape_at(l, g->dy, TG_SHAPE(g->out->size));
    dx[0] = tg_reshape_at(l, tg_scatter_add_at(l, map, d, TG_SHAPE(x->size), 0), tg__shape(x));
    return dx[0] != NULL;
}

tg_tensor *tg_mirror_pad_at(tg_loc loc, const tg_tensor *x, tg_shape before, tg_shape after, tg_mirror_pad_mode mode)
{
    if (mode != TG_MIRROR_REFLECT && mode != TG_MIRROR_SYMMETRIC)
        return tg__fail(loc, "tg_mirror_pad: mode %d is neither TG_MIRROR_REFLECT nor TG_MIRROR_SYMMETRIC", (int)mode);
    if (before.rank != after.rank)
        return tg__fail(loc, "tg_mirror_pad: `before` has %d entries and `after` %d; give one of each per axis",
                        before.rank, after.rank);
    tg_attrs a = {.mirror_pad = {.n = before.rank, .symmetric = mode == TG_MIRROR_SYMMETRIC}};
    for (int i = 0; i < before.rank && i < TG_MAX_RANK; i++) {
        a.mirror_pad.before[i] = before.dims[i];
        a.mirror_pad.after[i] = after.dims[i];
    }
    return TG__APPLY(loc, TG_OP_MIRROR_PAD, &a, x);
}

/* ---- gather_nd and scatter_nd ---------------------------------------------------------------------- */
static int64_t int_at(const tg_tensor *t, int64_t i)
{
    return t->dtype == TG_I32 ? ((const int32_t *)t->data)[i] : ((const int64_t *)t->data)[i];
}

static bool require_indices(const tg_call *c, const tg_tensor *idx)
{
    if (idx->dtype != TG_I32 && idx->dtype != TG_I64)
        return tg__failb(c->loc, "%s: `indices` is %s; it needs int32 or int64", tg__op_name(c->op),
                         tg_dtype_name(idx->dtype));
    if (idx->rank == 0)
        return tg__failb(c->loc,
                         "%s: `indices` is a scalar; its last axis holds each index tuple (give shape [1] "
                         "for one index)",
                         tg__op_name(c->op));
    return true;
}

/* indices [..., d] into `table`: the output (gather_nd) or updates (scatter_nd) shape,
 * indices.shape[:-1] + table[d:]. */
static bool nd_shape(const tg_call *c, const tg_tensor *idx, const tg_shape *table, tg_shape *out)
{
    char s[TG_SHAPE_STR_MAX];
    int d = (int)idx->shape[idx->rank - 1];
    if (idx->shape[idx->rank - 1] < 1 || d > table->rank)
        return tg__failb(c->loc,
                         "%s: index tuples of length %lld (the last axis of indices), but %s has rank %d; "
                         "give 1 to %d",
                         tg__op_name(c->op), (long long)idx->shape[idx->rank - 1],
                         c->op == TG_OP_GATHER_ND ? "params" : "the output shape", table->rank, table->rank);
    out->rank = idx->rank - 1 + table->rank - d;
    if (out->rank > TG_MAX_RANK)
        return tg__failb(c->loc, "%s: the result would have rank %d, more than %d", tg__op_name(c->op), out->rank,
                         TG_MAX_RANK);
    (void)s;
    int r = 0;
    for (int k = 0; k < idx->rank - 1; k++)
        out->dims[r++] = idx->shape[k];
    for (int k = d; k < table->rank; k++)
        out->dims[r++] = table->dims[k];
    return true;
}

/* The offset (in slices) of index tuple t, or -1 after an error naming it. */
static int64_t tuple_offset(const tg_call *c, const tg_tensor *idx, int64_t t, const tg_shape *table)
{
    int d = (int)idx->shape[idx->rank - 1];
    int64_t off = 0;
    for (int k = 0; k < d; k++) {
        int64_t v = int_at(idx, t * d + k);
        if (v < 0 || v >= table->dims[k]) {
            char s[TG_SHAPE_STR_MAX];
            tg__fail(c->loc, "%s: index tuple %lld has %lld at position %d, out of range [0, %lld) for %s of shape %s",
                     tg__op_name(c->op), (long long)t, (long long)v, k, (long long)table->dims[k],
                     c->op == TG_OP_GATHER_ND ? "params" : "the output", tg__shape_str(table, s, sizeof s));
            return -1;
        }
        off = off * table->dims[k] + v;
    }
    return off;
}

bool tg__gather_nd_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    tg_shape ps = tg__shape(c->in[0]);
    *dtype = c->in[0]->dtype;
    return require_indices(c, c->in[1]) && nd_shape(c, c->in[1], &ps, shape);
}

bool tg__gather_nd_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *p = c->in[0], *idx = c->in[1];
    tg_shape ps = tg__shape(p);
    int d = (int)idx->shape[idx->rank - 1];
    int64_t tuples = idx->size / d, slice = 1;
    for (int k = d; k < p->rank; k++)
        slice *= p->shape[k];
    size_t bytes = (size_t)slice * tg__dsize(p->dtype);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off = tuple_offset(c, idx, t, &ps);
        if (off < 0)
            return false;
        memcpy((char *)out->data + (size_t)t * bytes, (const char *)p->data + (size_t)off * bytes, bytes);
    }
    return true;
}

/* TF's _GatherNdGrad: dy scattered back with scatter_nd. */
bool tg__gather_nd_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return (dx[0] = tg_scatter_nd_at(g->loc, g->in[1], g->dy, tg__shape(g->in[0]))) != NULL;
}

/* batch_dims b > 0, as TF's batch_gather_nd: the b batch axes flattened into one, each
 * tuple prefixed with its batch's flat index, one gather_nd, the batch axes back. The
 * gradient is the composition's (reshape, gather_nd's scatter_nd). */
static tg_tensor *batch_gather_nd(tg_loc loc, const tg_tensor *params, const tg_tensor *indices, int b)
{
    char sp[TG_SHAPE_STR_MAX], si[TG_SHAPE_STR_MAX];
    tg_shape ps = tg__shape(params), is = tg__shape(indices);
    tg__shape_str(&ps, sp, sizeof sp), tg__shape_str(&is, si, sizeof si);
    if (indices->dtype != TG_I32 && indices->dtype != TG_I64)
        return tg__fail(loc, "tg_gather_nd: `indices` is %s; it needs int32 or int64", tg_dtype_name(indices->dtype));
    if (b < 0 || b >= indices->rank || b >= params->rank)
        return tg__fail(loc,
                        "tg_gather_nd: batch_dims = %d, but indices %s have rank %d and params %s rank %d; it must "
                        "be in [0, %d)",
                        b, si, indices->rank, sp, params->rank,
                        indices->rank < params->rank ? indices->rank : params->rank);
    int64_t batch = 1;
    for (int k = 0; k < b; k++) {
        if (params->shape[k] != indices->shape[k])
            return tg__fail(loc,
                            "tg_gather_nd: with batch_dims = %d, axis %d of params %s has size %lld but of indices "
                            "%s %lld; the batch axes must agree",
                            b, k, sp, (long long)params->shape[k], si, (long long)indices->shape[k]);
        batch *= params->shape[k];
    }
    int64_t d = indices->shape[indices->rank - 1], tuples = d ? indices->size / d : 0;
    if (d < 1 || d > params->rank - b)
        return tg__fail(loc,
                        "tg_gather_nd: index tuples of length %lld (the last axis of indices %s), but params %s has "
                        "%d axes after its %d batch axes; give 1 to %d",
                        (long long)d, si, sp, params->rank - b, b, params->rank - b);
    int64_t per_batch = batch ? tuples / batch : 0;
    tg_shape flat_idx = is;
    flat_idx.dims[flat_idx.rank - 1] = d + 1;
    tg_tensor *idx = tg__tensor_new(loc, TG_I64, &flat_idx);
    if (!idx)
        return NULL;
    int64_t *v = idx->data;
    for (int64_t t = 0; t < tuples; t++) {
        v[t * (d + 1)] = t / (per_batch ? per_batch : 1);
        for (int64_t k = 0; k < d; k++) {
            int64_t i = int_at(indices, t * d + k), size = params->shape[b + k];
            if (i < 0 || i >= size)
                return tg__fail(loc,
                                "tg_gather_nd: index tuple %lld has %lld at position %lld, out of range [0, %lld) for "
                                "axis %lld of params of shape %s (batch_dims = %d)",
                                (long long)t, (long long)i, (long long)k, (long long)size, (long long)(b + k), sp, b);
            v[t * (d + 1) + 1 + k] = i;
        }
    }
    tg_shape flat_params = {.rank = params->rank - b + 1, .dims = {batch}};
    for (int k = b; k < params->rank; k++)
        flat_params.dims[k - b + 1] = params->shape[k];
    tg_tensor *out = tg_gather_nd_at(loc, tg_reshape_at(loc, params, flat_params), idx, (tg_gather_nd_opts){0});
    if (!out)
        return NULL;
    tg_shape os = tg__shape(out); /* indices.shape[:-1] + params.shape[b + d:] */
    os.rank = 0;
    for (int k = 0; k < indices->rank - 1; k++)
        os.dims[os.rank++] = indices->shape[k];
    for (int k = b + (int)d; k < params->rank; k++)
        os.dims[os.rank++] = params->shape[k];
    return tg_reshape_at(loc, out, os);
}

tg_tensor *tg_gather_nd_at(tg_loc loc, const tg_tensor *params, const tg_tensor *indices, tg_gather_nd_opts o)
{
    if (o.batch_dims != 0) {
        if (!tg__check_input(loc, "tg_gather_nd", params, "params") ||
            !tg__check_input(loc, "tg_gather_nd", indices, "indices"))
            return NULL;
        return batch_gather_nd(loc, params, indices, o.batch_dims);
    }
    return TG__APPLY(loc, TG_OP_GATHER_ND, &(tg_attrs){0}, params, indices);
}

/* Inputs: indices, updates; attrs.shape: the output's. */
bool tg__scatter_nd_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *idx = c->in[0], *upd = c->in[1];
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    *shape = c->a->shape;
    *dtype = upd->dtype;
    if (shape->rank < 1 || shape->rank > TG_MAX_RANK)
        return tg__failb(c->loc, "tg_scatter_nd: the output shape has rank %d; give 1 to %d", shape->rank, TG_MAX_RANK);
    for (int k = 0; k < shape->rank; k++)
        if (shape->dims[k] < 0)
            return tg__failb(c->loc, "tg_scatter_nd: the output shape %s has a negative size",
                             tg__shape_str(shape, a, sizeof a));
    if (upd->dtype == TG_BOOL)
        return tg__failb(c->loc, "tg_scatter_nd: `updates` is bool; it needs a number dtype");
    tg_shape want, us = tg__shape(upd);
    if (!require_indices(c, idx) || !nd_shape(c, idx, shape, &want))
        return false;
    if (!tg__shape_eq(&us, &want))
        return tg__failb(c->loc, "tg_scatter_nd: updates have shape %s, but these indices into shape %s need %s",
                         tg__shape_str(&us, a, sizeof a), tg__shape_str(shape, b, sizeof b),
                         tg__shape_str(&want, (char[TG_SHAPE_STR_MAX]){0}, TG_SHAPE_STR_MAX));
    return true;
}

bool tg__scatter_nd_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *idx = c->in[0], *upd = c->in[1];
    tg_shape os = tg__shape(out);
    int d = (int)idx->shape[idx->rank - 1];
    int64_t tuples = idx->size / d, slice = 1;
    for (int k = d; k < out->rank; k++)
        slice *= out->shape[k];
    memset(out->data, 0, (size_t)out->size * tg__dsize(out->dtype));
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off = tuple_offset(c, idx, t, &os);
        if (off < 0)
            return false;
        for (int64_t q = 0; q < slice; q++) { /* repeated tuples add up, as TF's */
            int64_t o = off * slice + q, u = t * slice + q;
            switch (out->dtype) {
            case TG_F32: ((float *)out->data)[o] += ((const float *)upd->data)[u]; break;
            case TG_F64: ((double *)out->data)[o] += ((const double *)upd->data)[u]; break;
            case TG_I32:
                ((int32_t *)out->data)[o] =
                    (int32_t)((uint32_t)((int32_t *)out->data)[o] + (uint32_t)((const int32_t *)upd->data)[u]);
                break;
            case TG_I64:
                ((int64_t *)out->data)[o] =
                    (int64_t)((uint64_t)((int64_t *)out->data)[o] + (uint64_t)((const int64_t *)upd->data)[u]);
                break;
            default: break;
            }
        }
    }
    return true;
}

/* TF's _ScatterNdGrad: dy read back at the indices. */
bool tg__scatter_nd_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    return (dx[1] = tg_gather_nd_at(g->loc, g->dy, g->in[0], (tg_gather_nd_opts){0})) != NULL;
}

tg_tensor *tg_scatter_nd_at(tg_loc loc, const tg_tensor *indices, const tg_tensor *updates, tg_shape shape)
{
    return TG__APPLY(loc, TG_OP_SCATTER_ND, &(tg_attrs){.shape = shape}, indices, updates);
}

/* ---- unsorted segments ----------------------------------------------------------------------------- */
/* data [S..., rest...], segment_ids [S...] -> [num_segments, rest...]. */
bool tg__segment_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    const tg_tensor *data = c->in[0], *ids = c->in[1];
    const char *name = tg__op_name(c->op);
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    tg_shape ds = tg__shape(data), is = tg__shape(ids);
    if (data->dtype == TG_BOOL)
        return tg__failb(c->loc, "%s: `data` is bool; it needs a number dtype", name);
    if (ids->dtype != TG_I32 && ids->dtype != TG_I64)
        return tg__failb(c->loc, "%s: `segment_ids` is %s; it needs int32 or int64", name, tg_dtype_name(ids->dtype));
    bool prefix = ids->rank <= data->rank;
    for (int k = 0; prefix && k < ids->rank; k++)
        prefix = ids->shape[k] == data->shape[k];
    if (!prefix)
        return tg__failb(c->loc, "%s: segment_ids has shape %s, which does not begin data's shape %s", name,
                         tg__shape_str(&is, a, sizeof a), tg__shape_str(&ds, b, sizeof b));
    if (c->a->num_segments < 0)
        return tg__failb(c->loc, "%s: num_segments is %lld; it must be >= 0", name, (long long)c->a->num_segments);
    if (data->rank - ids->rank + 1 > TG_MAX_RANK)
        return tg__failb(c->loc, "%s: the result would have rank %d, more than %d", name, data->rank - ids->rank + 1,
                         TG_MAX_RANK);
    shape->rank = 0;
    shape->dims[shape->rank++] = c->a->num_segments;
    for (int k = ids->rank; k < data->rank; k++)
        shape->dims[shape->rank++] = data->shape[k];
    *dtype = data->dtype;
    return true;
}

#define SEGMENT_LOOP(T, LOWEST, HIGHEST)                                                                        \
    {                                                                                                           \
        T *o_ = out->data;                                                                                      \
        const T *d_ = data->data;                                                                               \
        T init = c->op == TG_OP_UNSORTED_SEGMENT_MAX    ? LOWEST                                                \
                 : c->op == TG_OP_UNSORTED_SEGMENT_MIN  ? HIGHEST                                               \
                 : c->op == TG_OP_UNSORTED_SEGMENT_PROD ? 1                                                     \
                                                        : 0;                                                    \
        for (int64_t i = 0; i < out->size; i++)                                                                 \
            o_[i] = init;                                                                                       \
        for (int64_t r = 0; r < ids->size; r++) {                                                               \
            int64_t id = int_at(ids, r);                                                                        \
            if (id < 0)                                                                                         \
                continue;                                                                                       \
            T *dst = o_ + id * inner;                                                                           \
            const T *src = d_ + r * inner;                                                                      \
            for (int64_t q = 0; q < inner; q++) {                                                               \
                T v = src[q];                                                                                   \
                if (c->op == TG_OP_UNSORTED_SEGMENT_SUM)                                                        \
                    dst[q] = ADD(dst[q], v);                                                                    \
                else if (c->op == TG_OP_UNSORTED_SEGMENT_PROD)                                                  \
                    dst[q] = MUL(dst[q], v);                                                                    \
                else if (c->op == TG_OP_UNSORTED_SEGMENT_MAX ? (v > dst[q] || v != v) : (v < dst[q] || v != v)) \
                    dst[q] = dst[q] != dst[q] ? dst[q] : v;                                                     \
            }                                                                                                   \
        }                                                                                                       \
    }                                                                                                           \
    break;

bool tg__segment_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *data = c->in[0], *ids = c->in[1];
    int64_t inner = 1, num = c->a->num_segments;
    for (int k = ids->rank; k < data->rank; k++)
        inner *= data->shape[k];
    for (int64_t r = 0; r < ids->size; r++)
        if (int_at(ids, r) >= num)
            return tg__failb(c->loc,
                             "%s: segment_ids[%lld] = %lld is out of range [0, %lld) (num_segments); negative "
                             "ids are dropped",
                             tg__op_name(c->op), (long long)r, (long long)int_at(ids, r), (long long)num);
    switch (data->dtype) {
#define ADD(a, b) ((a) + (b))
#define MUL(a, b) ((a) * (b))
    case TG_F32: SEGMENT_LOOP(float, -FLT_MAX, FLT_MAX)
    case TG_F64: SEGMENT_LOOP(double, -DBL_MAX, DBL_MAX)
#undef ADD
#undef MUL
        /* integers wrap, as TF's */
#define ADD(a, b) ((int32_t)((uint32_t)(a) + (uint32_t)(b)))
#define MUL(a, b) ((int32_t)((uint32_t)(a) * (uint32_t)(b)))
    case TG_I32: SEGMENT_LOOP(int32_t, INT32_MIN, INT32_MAX)
#undef ADD
#undef MUL
#define ADD(a, b) ((int64_t)((uint64_t)(a) + (uint64_t)(b)))
#define MUL(a, b) ((int64_t)((uint64_t)(a) * (uint64_t)(b)))
    case TG_I64: SEGMENT_LOOP(int64_t, INT64_MIN, INT64_MAX)
#undef ADD
#undef MUL
    default: break;
    }
    return true;
}
#undef SEGMENT_LOOP

/* TF's _GatherDropNegatives: t's rows read at the ids (row 0 for a negative id), and the
 * mask of ids >= 0, shaped to broadcast against data. */
static tg_tensor *gather_drop_negatives(tg_loc loc, const tg_tensor *t, const tg_tensor *ids, const tg_tensor *data,
                                        tg_tensor **mask)
{
    tg_shape ms = tg__shape(data);
    for (int k = ids->rank; k < ms.rank; k++)
        ms.dims[k] = 1;
    tg_shape is = tg__shape(ids);
    tg_tensor *clipped = tg__tensor_new(loc, TG_I64, &is), *m = tg__tensor_new(loc, TG_BOOL, &ms);
    if (!clipped || !m)
        return NULL;
    for (int64_t r = 0; r < ids->size; r++) {
        int64_t id = int_at(ids, r);
        ((int64_t *)clipped->data)[r] = id < 0 ? 0 : id;
        ((bool *)m->data)[r] = id >= 0;
    }
    *mask = m;
    return tg_gather_at(loc, t, clipped, 0);
}

/* TF's _UnsortedSegmentSumGrad: dy's row of each id; 0 for the dropped rows. */
bool tg__segment_sum_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    tg_tensor *mask = NULL, *d = gather_drop_negatives(l, g->dy, g->in[1], g->in[0], &mask);
    dx[0] = d ? tg_where_at(l, mask, d, tg_zeros_like_at(l, d)) : NULL;
    return dx[0] != NULL;
}

/* TF's _UnsortedSegmentMinOrMaxGrad: dy shared evenly by the elements equal to their
 * segment's result. */
bool tg__segment_extreme_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0], *ids = g->in[1];
    tg_tensor *mask = NULL, *picked = gather_drop_negatives(l, g->out, ids, x, &mask);
    if (!picked)
        return false;
    tg_tensor *sel = tg_logical_and_at(l, tg_equal_at(l, x, picked), tg_broadcast_to_at(l, mask, tg__shape(x)));
    tg_tensor *count = tg_unsorted_segment_sum_at(l, tg_cast_at(l, sel, x->dtype), ids, g->a->num_segments);
    count = tg_maximum_at(l, count, tg_scalar_like_at(l, g->dy, 1)); /* empty segments: no 0 / 0 at second order */
    tg_tensor *m2 = NULL, *share = gather_drop_negatives(l, tg_div_at(l, g->dy, count), ids, x, &m2);
    dx[0] = share ? tg_where_at(l, sel, share, tg_zeros_like_at(l, share)) : NULL;
    return dx[0] != NULL;
}

/* TF's _UnsortedSegmentProdGrad: each element's partial derivative is the product of the
 * others of its segment: the segment's product over the element where it is not 0; at a
 * 0, the product of the segment's nonzero elements; 0 throughout a segment with two 0s. */
bool tg__segment_prod_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    const tg_tensor *x = g->in[0], *ids = g->in[1];
    int64_t n = g->a->num_segments;
    tg_tensor *is_zero = tg_equal_at(l, x, tg_scalar_like_at(l, x, 0));
    tg_tensor *zeros = tg_unsorted_segment_sum_at(l, tg_cast_at(l, is_zero, x->dtype), ids, n);
    tg_tensor *dy =
        tg_where_at(l, tg_greater_at(l, zeros, tg_scalar_like_at(l, g->dy, 1)), tg_zeros_like_at(l, g->dy), g->dy);
    tg_tensor *nonzero = tg_where_at(l, is_zero, tg_scalar_like_at(l, x, 1), x);
    tg_tensor *nonzero_prod = tg_unsorted_segment_prod_at(l, nonzero, ids, n);
    tg_tensor *mask = NULL, *prod = gather_drop_negatives(l, g->out, ids, x, &mask);
    tg_tensor *m2 = NULL, *prod_nz = nonzero_prod ? gather_drop_negatives(l, nonzero_prod, ids, x, &m2) : NULL;
    tg_tensor *m3 = NULL, *grad = dy ? gather_drop_negatives(l, dy, ids, x, &m3) : NULL;
    if (!prod || !prod_nz || !grad)
        return false;
    tg_tensor *partial = tg_where_at(l, is_zero, prod_nz, tg_div_at(l, prod, nonzero));
    grad = tg_where_at(l, mask, grad, tg_zeros_like_at(l, grad));
    dx[0] = tg_mul_at(l, grad, partial);
    return dx[0] != NULL;
}

static tg_tensor *segments(tg_loc loc, tg_op_kind op, const tg_tensor *data, const tg_tensor *ids, int64_t n)
{
    return TG__APPLY(loc, op, &(tg_attrs){.num_segments = n}, data, ids);
}

tg_tensor *tg_unsorted_segment_sum_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                      int64_t num_segments)
{
    return segments(loc, TG_OP_UNSORTED_SEGMENT_SUM, data, segment_ids, num_segments);
}
tg_tensor *tg_unsorted_segment_max_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                      int64_t num_segments)
{
    return segments(loc, TG_OP_UNSORTED_SEGMENT_MAX, data, segment_ids, num_segments);
}
tg_tensor *tg_unsorted_segment_min_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                      int64_t num_segments)
{
    return segments(loc, TG_OP_UNSORTED_SEGMENT_MIN, data, segment_ids, num_segments);
}

tg_tensor *tg_unsorted_segment_prod_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                       int64_t num_segments)
{
    return segments(loc, TG_OP_UNSORTED_SEGMENT_PROD, data, segment_ids, num_segments);
}

/* max(count, 1) of each segment, shaped [num_segments, 1, ...] to broadcast against the
 * sums; NULL after an error. */
static tg_tensor *segment_counts(tg_loc loc, const tg_tensor *data, const tg_tensor *ids, const tg_tensor *sum,
                                 int64_t num_segments)
{
    tg_tensor *ones = tg_fill_at(loc, data->dtype, tg__shape(ids), 1.0);
    tg_tensor *n = tg_unsorted_segment_sum_at(loc, ones, ids, num_segments);
    tg_shape bs = tg__shape(sum);
    for (int k = 1; k < bs.rank; k++)
        bs.dims[k] = 1;
    return tg_reshape_at(loc, tg_maximum_at(loc, n, tg_scalar_like_at(loc, sum, 1)), bs);
}

static bool float_segments(tg_loc loc, const char *name, const tg_tensor *data, const tg_tensor *ids)
{
    if (!tg__check_input(loc, name, data, "data") || !tg__check_input(loc, name, ids, "segment_ids"))
        return false;
    if (!tg_dtype_is_float(data->dtype))
        return tg__failb(loc, "%s: `data` is %s; it needs float32 or float64", name, tg_dtype_name(data->dtype));
    return true;
}

/* TF's unsorted_segment_sqrt_n: the sums over sqrt(max(count, 1)) (empty segments 0). */
tg_tensor *tg_unsorted_segment_sqrt_n_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                         int64_t num_segments)
{
    if (!float_segments(loc, "tg_unsorted_segment_sqrt_n", data, segment_ids))
        return NULL;
    tg_tensor *sum = tg_unsorted_segment_sum_at(loc, data, segment_ids, num_segments);
    if (!sum)
        return NULL;
    return tg_div_at(loc, sum, tg_sqrt_at(loc, segment_counts(loc, data, segment_ids, sum, num_segments)));
}

/* TF's unsorted_segment_mean: the sums over max(count, 1), the counts broadcast over the
 * rows' other axes. Float data only (TF's division). */
tg_tensor *tg_unsorted_segment_mean_at(tg_loc loc, const tg_tensor *data, const tg_tensor *segment_ids,
                                       int64_t num_segments)
{
    if (!float_segments(loc, "tg_unsorted_segment_mean", data, segment_ids))
        return NULL;
    tg_tensor *sum = tg_unsorted_segment_sum_at(loc, data, segment_ids, num_segments);
    if (!sum)
        return NULL;
    return tg_div_at(loc, sum, segment_counts(loc, data, segment_ids, sum, num_segments));
}

/* ---- repeat, boolean_mask: gathers with indices made here ----------------------------------------- */
tg_tensor *tg_repeat_at(tg_loc loc, const tg_tensor *x, const tg_tensor *repeats, int axis)
{
    if (!tg__check_input(loc, "tg_repeat", x, "x") || !tg__check_input(loc, "tg_repeat", repeats, "repeats") ||
        !tg__trace_refuse_read(loc, "tg_repeat")) /* the result's shape depends on the values */
        return NULL;
    const tg_tensor *src = x;
    if (axis == TG_AXIS_NONE) { /* TF's axis=None: x flattened first */
        src = tg_reshape_at(loc, x, TG_SHAPE(x->size));
        axis = 0;
    }
    if (!src)
        return NULL;
    int ax = axis < 0 ? axis + src->rank : axis;
    if (src->rank == 0 || ax < 0 || ax >= src->rank)
        return tg__fail(loc, "tg_repeat: axis %d is out of range for a tensor of rank %d", axis, src->rank);
    if ((repeats->dtype != TG_I32 && repeats->dtype != TG_I64) || repeats->rank > 1)
        return tg__fail(loc, "tg_repeat: `repeats` is %s of rank %d; it needs an int32 or int64 scalar or vector",
                        tg_dtype_name(repeats->dtype), repeats->rank);
    int64_t n = src->shape[ax], total = 0;
    if (repeats->rank == 1 && repeats->size != n && repeats->size != 1)
        return tg__fail(loc, "tg_repeat: %lld repeats for an axis of %lld elements; give one, or one per element",
                        (long long)repeats->size, (long long)n);
    for (int64_t j = 0; j < n; j++) {
        int64_t r = int_at(repeats, repeats->size == 1 ? 0 : j);
        if (r < 0)
            return tg__fail(loc, "tg_repeat: repeats[%lld] is %lld; each must be >= 0", (long long)j, (long long)r);
        if (tg__add_overflow(total, r, &total) || total > INT64_MAX / 16)
            return tg__fail(loc, "tg_repeat: the repeats add up to more than can be allocated");
    }
    tg_tensor *idx = tg__tensor_new(loc, TG_I64, &(tg_shape){.rank = 1, .dims = {total}});
    if (!idx)
        return NULL;
    for (int64_t j = 0, at = 0; j < n; j++)
        for (int64_t k = int_at(repeats, repeats->size == 1 ? 0 : j); k > 0; k--)
            ((int64_t *)idx->data)[at++] = j;
    return tg_gather_at(loc, src, idx, ax);
}

tg_tensor *tg_boolean_mask_at(tg_loc loc, const tg_tensor *x, const tg_tensor *mask, int axis)
{
    if (!tg__check_input(loc, "tg_boolean_mask", x, "tensor") ||
        !tg__check_input(loc, "tg_boolean_mask", mask, "mask") ||
        !tg__trace_refuse_read(loc, "tg_boolean_mask")) /* the result's shape depends on the values */
        return NULL;
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    tg_shape xs = tg__shape(x), ms = tg__shape(mask);
    if (mask->dtype != TG_BOOL)
        return tg__fail(loc, "tg_boolean_mask: `mask` is %s; it needs bool", tg_dtype_name(mask->dtype));
    if (mask->rank == 0)
        return tg__fail(loc, "tg_boolean_mask: `mask` is a scalar; it needs rank >= 1");
    int ax = axis < 0 ? axis + x->rank : axis;
    if (ax < 0 || ax + mask->rank > x->rank)
        return tg__fail(loc, "tg_boolean_mask: a mask of rank %d at axis %d does not fit a tensor of rank %d",
                        mask->rank, axis, x->rank);
    for (int k = 0; k < mask->rank; k++)
        if (mask->shape[k] != x->shape[ax + k])
            return tg__fail(loc, "tg_boolean_mask: mask of shape %s does not match the tensor's shape %s at axis %d",
                            tg__shape_str(&ms, a, sizeof a), tg__shape_str(&xs, b, sizeof b), ax);
    int64_t count = 0;
    for (int64_t i = 0; i < mask->size; i++)
        count += ((const bool *)mask->data)[i];
    tg_tensor *idx = tg__tensor_new(loc, TG_I64, &(tg_shape){.rank = 1, .dims = {count}});
    if (!idx)
        return NULL;
    for (int64_t i = 0, at = 0; i < mask->size; i++)
        if (((const bool *)mask->data)[i])
            ((int64_t *)idx->data)[at++] = i;
    tg_shape flat = {.rank = 0}; /* x with the masked axes merged into one */
    for (int k = 0; k < x->rank; k++) {
        if (k > ax && k < ax + mask->rank)
            continue;
        flat.dims[flat.rank++] = k == ax ? mask->size : x->shape[k];
    }
    return tg_gather_at(loc, tg_reshape_at(loc, x, flat), idx, ax);
}
