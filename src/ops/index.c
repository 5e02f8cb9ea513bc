/* Index moves: tile, reverse and roll. Each output element is one element of x, found
 * axis by axis: tile reads index i % dim, reverse dim - 1 - i, roll (i - shift) mod dim.
 * One kernel serves the three (tg__index_map_forward); they move bytes, so every dtype
 * works. Their gradients are the adjoint moves, made of public ops. */
#include "op.h"
#include "tapegrad/ops.h"

static bool check_x(const tg_call *c)
{
    if (c->in[0]->rank == 0 && c->op != TG_OP_TILE)
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
static int64_t source_index(const tg_call *c, int d, int64_t i, int64_t n)
{
    switch (c->op) {
    case TG_OP_TILE: return i % n;
    case TG_OP_REVERSE: return c->a->reverse.axis[d] ? n - 1 - i : i;
    default: {   /* roll: out[(i + shift) mod n] = x[i] */
        int64_t j = i - c->a->roll.shift[d];
        return j < 0 ? j + n : j;
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
        map[i] = source_index(c, r - 1, i, nlast);
    int64_t idx[TG_MAX_RANK] = {0}, base = 0;   /* base: x's offset of the outer axes' sources */
    for (int q = 0; q <= r - 2; q++)
        base += source_index(c, q, 0, x->shape[q]) * xstride[q];
    for (int64_t o = 0; o < out->size; o += last) {
        char *dst = (char *)out->data + (size_t)o * esz;
        const char *src = (const char *)x->data + (size_t)base * esz;
        switch (esz) {
        case 1: for (int64_t i = 0; i < last; i++) dst[i] = src[map[i]]; break;
        case 4: for (int64_t i = 0; i < last; i++) memcpy(dst + 4 * i, src + 4 * map[i], 4); break;
        default: for (int64_t i = 0; i < last; i++) memcpy(dst + 8 * i, src + 8 * map[i], 8); break;
        }
        for (int d = r - 2; d >= 0; d--) {   /* odometer over the outer axes */
            if (++idx[d] < out->shape[d]) {
                base = 0;
                for (int q = 0; q <= r - 2; q++)
                    base += source_index(c, q, idx[q], x->shape[q]) * xstride[q];
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
