/* Square matrices [..., n, n] through an LU factorisation with partial pivoting: inverse,
 * determinant, and sign with log|determinant| (tf.linalg.inv, det, slogdet). Each matrix
 * is factored in double whatever its dtype, then rounded once into the output. Any n is
 * accepted; the kernel is the plain O(n^3) loop, meant for the small matrices (tested up
 * to 64 x 64) that a model inverts, not a substitute for LAPACK on large ones.
 *
 * Singular matrices behave as in TF: inv fails ("not invertible", naming the matrix of the
 * batch), det gives 0, slogdet sign 0 and log|det| -inf. A matrix with a NaN gives NaN in
 * every output element of its own. The backward rules are TF's (linalg_grad.py), made of
 * linalg_inv, matmul and transpose, so they differentiate again. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op.h"
#include "tapegrad/ops.h"

/* ---- shape ---------------------------------------------------------------------------------- */
static bool square_matrices(const tg_call *c, const char *name)
{
    const tg_tensor *x = c->in[0];
    tg_shape s = tg__shape(x);
    char buf[TG_SHAPE_STR_MAX];
    if (x->rank < 2)
        return tg__failb(c->loc, "%s: `x` has rank %d (shape %s); it needs square matrices [..., n, n]", name, x->rank,
                         tg__shape_str(&s, buf, sizeof buf));
    if (x->shape[x->rank - 1] != x->shape[x->rank - 2])
        return tg__failb(c->loc, "%s: `x` of shape %s is not square in its last two axes (%lld x %lld)", name,
                         tg__shape_str(&s, buf, sizeof buf), (long long)x->shape[x->rank - 2],
                         (long long)x->shape[x->rank - 1]);
    return true;
}

bool tg__linalg_inv_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    if (!square_matrices(c, "tg_linalg_inv"))
        return false;
    *shape = tg__shape(c->in[0]);
    *dtype = c->in[0]->dtype;
    return true;
}

/* det and slogdet: one value per matrix, every output the batch's shape. */
bool tg__linalg_det_shape(const tg_call *c, tg_shape *shape, tg_dtype *dtype)
{
    if (!square_matrices(c, tg__op_name(c->op)))
        return false;
    for (int k = 0; k < c->n_out; k++) {
        shape[k] = tg__shape(c->in[0]);
        shape[k].rank -= 2;
        dtype[k] = c->in[0]->dtype;
    }
    return true;
}

/* ---- the factorisation ------------------------------------------------------------------------ */
/* One matrix as doubles. True when it holds a NaN. */
static bool load(const tg_tensor *x, int64_t b, int64_t nn, double *a)
{
    bool nan = false;
    for (int64_t e = 0; e < nn; e++) {
        a[e] =
            x->dtype == TG_F32 ? (double)((const float *)x->data)[b * nn + e] : ((const double *)x->data)[b * nn + e];
        nan |= isnan(a[e]);
    }
    return nan;
}

static void store(tg_tensor *t, int64_t at, double v)
{
    if (t->dtype == TG_F32)
        ((float *)t->data)[at] = (float)v;
    else
        ((double *)t->data)[at] = v;
}

/* a = P^T L U in place (L's unit diagonal implied), piv[k] the row swapped into k. Returns
 * false at a zero pivot (a singular matrix), with *sign the permutation's sign so far. */
static bool lu(double *a, int64_t n, int64_t *piv, int *sign)
{
    *sign = 1;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k]))
                p = i;
        piv[k] = p;
        if (a[p * n + k] == 0)
            return false;
        if (p != k) {
            for (int64_t j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
            *sign = -*sign;
        }
        for (int64_t i = k + 1; i < n; i++) {
            double l = a[i * n + k] /= a[k * n + k];
            for (int64_t j = k + 1; j < n; j++)
                a[i * n + j] -= l * a[k * n + j];
        }
    }
    return true;
}

/* A^-1 into x (n x n) from A's factors: solve L U X = P I, a row of X at a time, so the
 * inner loops run along rows (contiguous, vectorised) rather than down a column. */
static void solve_inverse(const double *a, int64_t n, const int64_t *piv, double *x)
{
    for (int64_t e = 0; e < n * n; e++)
        x[e] = 0;
    for (int64_t i = 0; i < n; i++)
        x[i * n + i] = 1;
    for (int64_t k = 0; k < n; k++) /* P I: the swaps in the order lu made them */
        if (piv[k] != k)
            for (int64_t j = 0; j < n; j++) {
                double t = x[k * n + j];
                x[k * n + j] = x[piv[k] * n + j];
                x[piv[k] * n + j] = t;
            }
    for (int64_t i = 1; i < n; i++) /* L Y = P I */
        for (int64_t k = 0; k < i; k++) {
            double l = a[i * n + k];
            for (int64_t j = 0; j < n; j++)
                x[i * n + j] -= l * x[k * n + j];
        }
    for (int64_t i = n - 1; i >= 0; i--) { /* U X = Y */
        for (int64_t k = i + 1; k < n; k++) {
            double u = a[i * n + k];
            for (int64_t j = 0; j < n; j++)
                x[i * n + j] -= u * x[k * n + j];
        }
        double d = a[i * n + i];
        for (int64_t j = 0; j < n; j++)
            x[i * n + j] /= d;
    }
}

/* Scratch for one matrix: its factors, its inverse, the pivots. */
typedef struct lu_scratch {
    double *a, *inv;
    int64_t *piv;
} lu_scratch;

static bool scratch(const tg_call *c, int64_t n, lu_scratch *s)
{
    size_t nn = (size_t)(n * n);
    s->a = tg__arena_alloc(tg__ctx()->scope, sizeof(double) * (2 * nn + 1));
    s->piv = tg__arena_alloc(tg__ctx()->scope, sizeof(int64_t) * (size_t)(n + 1));
    if (!s->a || !s->piv)
        return tg__failb(c->loc, "%s: out of memory for the factors of a %lld x %lld matrix", tg__op_name(c->op),
                         (long long)n, (long long)n);
    s->inv = s->a + nn;
    return true;
}

/* "[i, j]": matrix b's index in the batch shape of x, for messages. */
static const char *batch_index(const tg_tensor *x, int64_t b, char *buf, size_t size)
{
    int r = x->rank - 2;
    int64_t idx[TG_MAX_RANK];
    for (int d = r - 1; d >= 0; d--) {
        idx[d] = b % x->shape[d];
        b /= x->shape[d];
    }
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < r && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, d ? ", %lld" : "%lld", (long long)idx[d]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

static int64_t n_of(const tg_tensor *x) { return x->shape[x->rank - 1]; }
static int64_t matrices(const tg_tensor *x)
{
    int64_t count = 1;
    for (int d = 0; d < x->rank - 2; d++)
        count *= x->shape[d];
    return count;
}

bool tg__linalg_inv_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    int64_t n = n_of(x), nn = n * n, count = matrices(x);
    lu_scratch s;
    if (!scratch(c, n, &s))
        return false;
    for (int64_t b = 0; b < count; b++) {
        int sign;
        if (load(x, b, nn, s.a)) {
            for (int64_t e = 0; e < nn; e++)
                store(out, b * nn + e, NAN);
            continue;
        }
        if (!lu(s.a, n, s.piv, &sign)) {
            char buf[96];
            return tg__failb(c->loc,
                             "tg_linalg_inv: input is not invertible: the %lld x %lld matrix at batch index %s is "
                             "singular (a zero pivot in its LU factorisation), as TF refuses it",
                             (long long)n, (long long)n, batch_index(x, b, buf, sizeof buf));
        }
        solve_inverse(s.a, n, s.piv, s.inv);
        if (out->dtype == TG_F32)
            for (int64_t e = 0; e < nn; e++)
                ((float *)out->data)[b * nn + e] = (float)s.inv[e];
        else
            memcpy((double *)out->data + b * nn, s.inv, sizeof(double) * (size_t)nn);
    }
    return true;
}

/* det, or (sign, log|det|) into outs[0], outs[1] for slogdet. */
bool tg__linalg_det_forward(const tg_call *c, tg_tensor *out)
{
    const tg_tensor *x = c->in[0];
    bool slog = c->n_out == 2;
    int64_t n = n_of(x), nn = n * n, count = out->size;
    lu_scratch s;
    if (!scratch(c, n, &s))
        return false;
    for (int64_t b = 0; b < count; b++) {
        int sign;
        double d = 1, logabs = 0;
        if (load(x, b, nn, s.a)) {
            d = logabs = NAN;
        } else if (!lu(s.a, n, s.piv, &sign)) {
            d = 0, logabs = -INFINITY;
        } else {
            d = sign;
            for (int64_t i = 0; i < n; i++) {
                double u = s.a[i * n + i];
                d *= u;
                logabs += log(fabs(u));
                sign = u < 0 ? -sign : sign;
            }
            if (slog)
                d = sign;
        }
        store(out, b, d);
        if (slog)
            store(c->outs[1], b, logabs);
    }
    return true;
}

/* ---- gradients (TF's linalg_grad.py) ------------------------------------------------------------ */
static tg_tensor *matrix_transpose(tg_loc loc, const tg_tensor *x)
{
    int r = tg_rank(x);
    tg_axes perm = {.n = r};
    for (int i = 0; i < r; i++)
        perm.axis[i] = i;
    perm.axis[r - 2] = r - 1, perm.axis[r - 1] = r - 2;
    return tg_transpose_at(loc, x, perm);
}

/* _MatrixInverseGrad: -A^-T dY A^-T, from the output A^-1. */
bool tg__linalg_inv_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    tg_tensor *right = tg_matmul_at(l, g->dy, g->out, (tg_matmul_opts){.transpose_b = true});
    dx[0] = tg_neg_at(l, tg_matmul_at(l, g->out, right, (tg_matmul_opts){.transpose_a = true}));
    return dx[0] != NULL;
}

/* A scalar per matrix as [..., 1, 1], to scale each matrix of a batch. */
static tg_tensor *per_matrix(tg_loc loc, const tg_tensor *v)
{
    tg_shape s = tg__shape(v);
    s.dims[s.rank++] = 1;
    s.dims[s.rank++] = 1;
    return tg_reshape_at(loc, v, s);
}

/* _MatrixDeterminantGrad: dy * det * A^-T. */
bool tg__linalg_det_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    tg_tensor *inv_t = tg_linalg_inv_at(l, matrix_transpose(l, g->in[0]));
    dx[0] = tg_mul_at(l, per_matrix(l, tg_mul_at(l, g->dy, g->out)), inv_t);
    return dx[0] != NULL;
}

/* _LogMatrixDeterminantGrad: d(log|det|) * A^-T; the sign has no gradient. */
bool tg__linalg_slogdet_backward(const tg_grad_ctx *g, tg_tensor **dx)
{
    tg_loc l = g->loc;
    tg_tensor *inv_t = tg_linalg_inv_at(l, matrix_transpose(l, g->in[0]));
    dx[0] = tg_mul_at(l, per_matrix(l, g->dys[1]), inv_t);
    return dx[0] != NULL;
}

/* ---- public functions ---------------------------------------------------------------------------- */
tg_tensor *tg_linalg_inv_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_LINALG_INV, NULL, x); }

tg_tensor *tg_linalg_det_at(tg_loc loc, const tg_tensor *x) { return TG__APPLY(loc, TG_OP_LINALG_DET, NULL, x); }

int tg_linalg_slogdet_at(tg_loc loc, const tg_tensor *x, tg_tensor **out)
{
    if (!out)
        return tg__failf(loc, "tg_linalg_slogdet: needs an array `out` of 2 tensors (sign, log_abs_det), got NULL");
    return tg__apply_n(loc, TG_OP_LINALG_SLOGDET, &x, 1, NULL, 2, out);
}

/* The diagonal of each matrix [..., n, m] -> [..., min(n, m)]: the last two axes seen as
 * one, gathered every m + 1 elements. Gather's gradient scatters dy back onto the
 * diagonal, which is TF's matrix_diag / matrix_set_diag rule. */
tg_tensor *tg_linalg_diag_part_at(tg_loc loc, const tg_tensor *x)
{
    if (!tg__check_input(loc, "tg_linalg_diag_part", x, "x"))
        return NULL;
    if (x->rank < 2) {
        tg_shape s = tg__shape(x);
        char buf[TG_SHAPE_STR_MAX];
        return tg__fail(loc, "tg_linalg_diag_part: `x` has rank %d (shape %s); it needs matrices [..., n, m]", x->rank,
                        tg__shape_str(&s, buf, sizeof buf));
    }
    int64_t n = x->shape[x->rank - 2], m = x->shape[x->rank - 1], k = n < m ? n : m;
    tg_tensor *idx = tg__tensor_new(loc, TG_I64, &(tg_shape){.rank = 1, .dims = {k}});
    if (!idx)
        return NULL;
    for (int64_t i = 0; i < k; i++)
        ((int64_t *)idx->data)[i] = i * (m + 1);
    tg_shape flat = tg__shape(x);
    flat.rank--;
    flat.dims[flat.rank - 1] = n * m;
    return tg_gather_at(loc, tg_reshape_at(loc, x, flat), idx, -1);
}
