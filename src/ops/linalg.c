/* Matrix products: [..., m, k] x [..., k, n] -> [..., m, n] with numpy broadcasting of the
 * batch dims. Transposes are flags passed to GEMM; operands are never copied. */
#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/gemm.h"

/* m, k, n of one product and the broadcast batch shape (every axis but the last two). */
typedef struct mm_geom {
    int64_t m, n, k;
    tg_shape batch;
    int64_t nbatch;
} mm_geom;

static const char *flag(bool b) { return b ? "true" : "false"; }

static bool matmul_geometry(const tg_call *c, mm_geom *g)
{
    const tg_tensor *a = c->in[0], *b = c->in[1];
    bool ta = c->a->matmul.transpose_a, tb = c->a->matmul.transpose_b;
    tg_shape sa = tg__shape(a), sb = tg__shape(b);
    char bufa[TG_SHAPE_STR_MAX], bufb[TG_SHAPE_STR_MAX];
    tg__shape_str(&sa, bufa, sizeof bufa);
    tg__shape_str(&sb, bufb, sizeof bufb);
    if (a->rank < 2 || b->rank < 2) {
        tg__fail(c->loc,
                 "tg_matmul: `%s` has rank %d (shape %s); both inputs need rank >= 2, "
                 "[..., m, k] x [..., k, n], as in TF (make a vector a matrix with tg_expand_dims or tg_reshape)",
                 a->rank < 2 ? "a" : "b", a->rank < 2 ? a->rank : b->rank, a->rank < 2 ? bufa : bufb);
        return false;
    }
    int ra = a->rank, rb = b->rank;
    int64_t ka = ta ? a->shape[ra - 2] : a->shape[ra - 1], kb = tb ? b->shape[rb - 1] : b->shape[rb - 2];
    if (ka != kb) {
        tg__fail(c->loc,
                 "tg_matmul: inner dimensions differ: a %s with transpose_a=%s has k=%lld, "
                 "b %s with transpose_b=%s has k=%lld",
                 bufa, flag(ta), (long long)ka, bufb, flag(tb), (long long)kb);
        return false;
    }
    g->m = ta ? a->shape[ra - 1] : a->shape[ra - 2];
    g->n = tb ? b->shape[rb - 2] : b->shape[rb - 1];
    g->k = ka;
    int r = (ra > rb ? ra : rb) - 2;
    g->batch.rank = r;
    g->nbatch = 1;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - (ra - 2)), ib = i - (r - (rb - 2));
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            tg__fail(c->loc,
                     "tg_matmul: the batch dims (all but the last two) of a %s and b %s cannot be "
                     "broadcast together (%lld vs %lld)",
                     bufa, bufb, (long long)da, (long long)db);
            return false;
        }
        g->batch.dims[i] = da == 1 ? db : da;
        g->nbatch *= g->batch.dims[i];
    }
    return true;
}

bool tg__matmul_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    mm_geom g;
    if (!tg__same_dtype(c, c->in[0], c->in[1]) ||
        (c->in[0]->dtype != TG_BF16 && !tg__require_float(c, c->in[0], "a")) || !matmul_geometry(c, &g))
        return false;
    *shape = g.batch;
    shape->dims[shape->rank++] = g.m;
    shape->dims[shape->rank++] = g.n;
    *dtype = c->in[0]->dtype;
    return true;
}

/* Element strides of t's batch axes, aligned to the broadcast batch shape (0 where t is
 * broadcast). Returns the number of matrices t holds. */
static int64_t batch_strides(const tg_tensor *t, const mm_geom *g, int64_t *strides)
{
    int lead = g->batch.rank - (t->rank - 2);
    int64_t s = t->shape[t->rank - 2] * t->shape[t->rank - 1], count = 1;
    for (int i = g->batch.rank - 1; i >= 0; i--) {
        int64_t d = i - lead >= 0 ? t->shape[i - lead] : 1;
        strides[i] = d == 1 ? 0 : s;
        s *= d;
        count *= d;
    }
    return count;
}

/* False only when the portable kernel found no memory to pack an operand. */
static bool gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda,
                 const void *B, int64_t ldb, void *C, int64_t ldc)
{
    if (dt == TG_BF16) /* float32 sums, rounded once to bfloat16 */
        return tg__gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
    if (dt == TG_F32)
        return tg__gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    return tg__gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, 0.0, C, ldc);
}

static bool out_of_memory(const tg_call *c)
{
    tg__fail(c->loc, "tg_matmul: out of memory for the product's packing buffers");
    return false;
}

bool tg__matmul_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *a = c->in[0], *b = c->in[1];
    bool ta = c->a->matmul.transpose_a, tb = c->a->matmul.transpose_b;
    mm_geom g;
    matmul_geometry(c, &g); /* checked by tg__matmul_shape */
    int64_t lda = a->shape[a->rank - 1], ldb = b->shape[b->rank - 1];
    size_t es = tg__dsize(a->dtype);
    int64_t sa[TG_MAX_RANK], sb[TG_MAX_RANK];
    batch_strides(a, &g, sa);
    int64_t nb = batch_strides(b, &g, sb);
    if (nb == 1 && !ta) {
        /* One matrix b: the batches of a stack into one tall product. */
        return gemm(a->dtype, false, tb, g.nbatch * g.m, g.n, g.k, a->data, lda, b->data, ldb, out->data, g.n) ||
               out_of_memory(c);
    }
    int64_t idx[TG_MAX_RANK] = {0}, oa = 0, ob = 0;
    for (int64_t i = 0; i < g.nbatch; i++) {
        if (!gemm(a->dtype, ta, tb, g.m, g.n, g.k, (const char *)a->data + (size_t)oa * es, lda,
                  (const char *)b->data + (size_t)ob * es, ldb, (char *)out->data + (size_t)(i * g.m * g.n) * es, g.n))
            return out_of_memory(c);
        for (int d = g.batch.rank - 1; d >= 0; d--) { /* odometer over the batch axes */
            oa += sa[d], ob += sb[d];
            if (++idx[d] < g.batch.dims[d])
                break;
            oa -= sa[d] * g.batch.dims[d], ob -= sb[d] * g.batch.dims[d];
            idx[d] = 0;
        }
    }
    return true;
}

static tg_tensor *mm(const tg_grad_ctx *g, const tg_tensor *a, const tg_tensor *b, bool ta, bool tb)
{
    return tg_matmul_at(g->loc, a, b, (tg_matmul_opts){.transpose_a = ta, .transpose_b = tb});
}

/* TF's _BatchMatMulV2 gradient for each flag combination (the engine sums it over the
 * batch axes each input was broadcast along). */
bool tg__matmul_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    const tg_tensor *x = g->in[0], *y = g->in[1], *dy = g->dy;
    bool ta = g->a->matmul.transpose_a, tb = g->a->matmul.transpose_b, wx = tg__grad_wanted(g, 0),
         wy = tg__grad_wanted(g, 1);
    tg_tensor *gx = NULL, *gy = NULL;
    /* A product that is not wanted is not made: the input of a data batch needs none. */
    if (!ta && !tb) {
        gx = wx ? mm(g, dy, y, false, true) : NULL;
        gy = wy ? mm(g, x, dy, true, false) : NULL;
    } else if (!ta) {
        gx = wx ? mm(g, dy, y, false, false) : NULL;
        gy = wy ? mm(g, dy, x, true, false) : NULL;
    } else if (!tb) {
        gx = wx ? mm(g, y, dy, false, true) : NULL;
        gy = wy ? mm(g, x, dy, false, false) : NULL;
    } else {
        gx = wx ? mm(g, y, dy, true, true) : NULL;
        gy = wy ? mm(g, dy, x, true, true) : NULL;
    }
    dx[0] = gx;
    dx[1] = gy;
    return (!wx || gx) && (!wy || gy);
}

tg_tensor *tg_matmul_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, tg_matmul_opts o)
{
    tg_attrs attrs = {.matmul = {o.transpose_a, o.transpose_b}};
    return TG__APPLY(loc, TG_OP_MATMUL, &attrs, a, b);
}

/* tf.tensordot: the contracted axes of a moved last and those of b first (transpose), each
 * side flattened to a matrix (reshape), one matmul, and the free axes restored (reshape).
 * `n` contracts the last n axes of a with the first n of b; lists pair axes_a[i] with
 * axes_b[i]. Negative axes count from the end. */
tg_tensor *tg_tensordot_at(tg_loc loc, const tg_tensor *a, const tg_tensor *b, tg_tensordot_opts o)
{
    if (!tg__check_input(loc, "tg_tensordot", a, "a") || !tg__check_input(loc, "tg_tensordot", b, "b"))
        return NULL;
    if (!tg_dtype_is_float(a->dtype) || a->dtype != b->dtype)
        return tg__fail(loc, "tg_tensordot: `a` is %s and `b` %s; both need float32, or both float64",
                        tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
    int ra = a->rank, rb = b->rank;
    tg_axes xa = o.axes_a, xb = o.axes_b;
    if (xa.n == 0 && xb.n == 0) {
        if (o.n < 0 || o.n > ra || o.n > rb)
            return tg__fail(loc, "tg_tensordot: axes=%d, but a has rank %d and b rank %d (need 0 <= axes <= both)", o.n,
                            ra, rb);
        xa.n = xb.n = o.n;
        for (int i = 0; i < o.n; i++)
            xa.axis[i] = ra - o.n + i, xb.axis[i] = i;
    }
    if (xa.n != xb.n)
        return tg__fail(loc, "tg_tensordot: %d axes of a but %d of b; they are contracted in pairs", xa.n, xb.n);
    bool used_a[TG_MAX_RANK] = {false}, used_b[TG_MAX_RANK] = {false};
    int64_t k = 1;
    for (int i = 0; i < xa.n; i++) {
        int pa = xa.axis[i] < 0 ? xa.axis[i] + ra : xa.axis[i], pb = xb.axis[i] < 0 ? xb.axis[i] + rb : xb.axis[i];
        if (pa < 0 || pa >= ra || used_a[pa])
            return tg__fail(loc, "tg_tensordot: axis %d of a (rank %d) is out of range or repeated", xa.axis[i], ra);
        if (pb < 0 || pb >= rb || used_b[pb])
            return tg__fail(loc, "tg_tensordot: axis %d of b (rank %d) is out of range or repeated", xb.axis[i], rb);
        if (a->shape[pa] != b->shape[pb])
            return tg__fail(loc, "tg_tensordot: axis %d of a has size %lld but axis %d of b has size %lld", xa.axis[i],
                            (long long)a->shape[pa], xb.axis[i], (long long)b->shape[pb]);
        used_a[pa] = used_b[pb] = true;
        xa.axis[i] = pa, xb.axis[i] = pb;
        k *= a->shape[pa];
    }
    /* a: free axes then contracted; b: contracted then free. */
    tg_axes pa = {.n = 0}, pb = {.n = 0};
    tg_shape out = {.rank = 0};
    int64_t m = 1, n = 1;
    for (int i = 0; i < ra; i++)
        if (!used_a[i])
            pa.axis[pa.n++] = i, out.dims[out.rank++] = a->shape[i], m *= a->shape[i];
    for (int i = 0; i < xa.n; i++)
        pa.axis[pa.n++] = xa.axis[i], pb.axis[pb.n++] = xb.axis[i];
    for (int i = 0; i < rb; i++)
        if (!used_b[i]) {
            if (out.rank == TG_MAX_RANK)
                return tg__fail(loc, "tg_tensordot: the result would have more than %d axes", TG_MAX_RANK);
            pb.axis[pb.n++] = i, out.dims[out.rank++] = b->shape[i], n *= b->shape[i];
        }
    tg_tensor *ma = tg_reshape_at(loc, tg_transpose_at(loc, a, pa), (tg_shape){.rank = 2, .dims = {m, k}});
    tg_tensor *mb = tg_reshape_at(loc, tg_transpose_at(loc, b, pb), (tg_shape){.rank = 2, .dims = {k, n}});
    return tg_reshape_at(loc, tg_matmul_at(loc, ma, mb, (tg_matmul_opts){0}), out);
}
