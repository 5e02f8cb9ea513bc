/* tf.einsum as a composite: the equation is parsed into one label per axis of each
 * operand, then each operand loses its repeated labels (diagonals, linalg_diag_part) and
 * the labels nobody needs later (sum), and the operands are contracted left to right, each
 * pair as one batched matmul (transpose, reshape, matmul). The gradient is the
 * composition's. Labels: a-z are 0-25, A-Z 26-51, the axes that `...` stands for 52 on,
 * aligned to the right as broadcasting aligns them. */
#include <string.h>

#include "op.h"
#include "tapegrad/ops.h"

enum { N_LETTERS = 52, ELLIPSIS_LABEL = N_LETTERS, N_LABELS = N_LETTERS + TG_MAX_RANK };

typedef struct labels {
    int n;
    int at[TG_MAX_RANK];
} labels;

typedef struct operand {
    tg_tensor *t;
    labels l;
} operand;

static int letter(char ch) { return ch >= 'a' && ch <= 'z' ? ch - 'a' : ch >= 'A' && ch <= 'Z' ? ch - 'A' + 26 : -1; }
static char label_char(int l) { return l < 26 ? (char)('a' + l) : l < N_LETTERS ? (char)('A' + l - 26) : '.'; }

static bool has(const labels *l, int label)
{
    for (int i = 0; i < l->n; i++)
        if (l->at[i] == label)
            return true;
    return false;
}

/* The subscripts of one term, [begin, end) of the equation: letters before and after an
 * optional `...`. Returns the number of letters, or -1 with an error. */
static int parse_term(tg_loc loc, const char *eq, const char *begin, const char *end, int *before, int *after,
                      int *n_after, bool *ellipsis)
{
    int nb = 0, na = 0;
    *ellipsis = false;
    for (const char *p = begin; p < end; p++) {
        if (*p == ' ')
            continue;
        if (*p == '.') {
            if (*ellipsis || end - p < 3 || strncmp(p, "...", 3) != 0)
                return tg__failf(loc, "tg_einsum: in \"%s\", a '.' at position %d that is not one `...` of its term",
                                 eq, (int)(p - eq));
            *ellipsis = true;
            p += 2;
            continue;
        }
        int l = letter(*p);
        if (l < 0)
            return tg__failf(loc,
                             "tg_einsum: in \"%s\", '%c' at position %d is not a subscript (letters a-z, A-Z, `...`, "
                             "',' between operands, one \"->\")",
                             eq, *p, (int)(p - eq));
        if (nb + na == TG_MAX_RANK)
            return tg__failf(loc, "tg_einsum: in \"%s\", a term has more than %d subscripts", eq, TG_MAX_RANK);
        if (*ellipsis)
            after[na++] = l;
        else
            before[nb++] = l;
    }
    *n_after = na;
    return nb;
}

/* Operand k's labels, its `...` expanded to the axes its rank leaves. */
static bool operand_labels(tg_loc loc, const char *eq, const char *b, const char *e, int k, const tg_tensor *t,
                           labels *out, int *n_ellipsis)
{
    int before[TG_MAX_RANK], after[TG_MAX_RANK], na;
    bool ell;
    int nb = parse_term(loc, eq, b, e, before, after, &na, &ell);
    if (nb < 0)
        return false;
    int rank = t->rank, ne = rank - nb - na;
    if (ell ? ne < 0 : ne != 0)
        return tg__failb(loc, "tg_einsum: operand %d has rank %d, but its subscripts \"%.*s\" name %s%d axes", k, rank,
                         (int)(e - b), b, ell ? "at least " : "", nb + na);
    out->n = 0;
    for (int i = 0; i < nb; i++)
        out->at[out->n++] = before[i];
    for (int i = 0; i < ne; i++) /* by distance from the right end of the `...` axes */
        out->at[out->n++] = ELLIPSIS_LABEL + ne - 1 - i;
    for (int i = 0; i < na; i++)
        out->at[out->n++] = after[i];
    *n_ellipsis = ell ? ne : -1;
    return true;
}

/* ---- sizes: each label's, checked across operands -------------------------------------------- */
static bool label_sizes(tg_loc loc, const operand *ops, int n)
{
    int64_t size[N_LABELS];
    int owner[N_LABELS], axis[N_LABELS];
    for (int l = 0; l < N_LABELS; l++)
        size[l] = -1, owner[l] = -1, axis[l] = -1;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < ops[k].l.n; i++) {
            int l = ops[k].l.at[i];
            int64_t d = ops[k].t->shape[i];
            if (size[l] < 0 || (l >= N_LETTERS && size[l] == 1)) {
                size[l] = d, owner[l] = k, axis[l] = i;
                continue;
            }
            if (size[l] == d || (l >= N_LETTERS && d == 1))
                continue;
            tg_shape sa = tg__shape(ops[owner[l]].t), sb = tg__shape(ops[k].t);
            char ba[TG_SHAPE_STR_MAX], bb[TG_SHAPE_STR_MAX];
            tg__shape_str(&sa, ba, sizeof ba), tg__shape_str(&sb, bb, sizeof bb);
            if (l >= N_LETTERS)
                return tg__failb(loc,
                                 "tg_einsum: the axes that `...` stands for cannot be broadcast together: operand %d "
                                 "(shape %s) has %lld where operand %d (shape %s) has %lld",
                                 owner[l], ba, (long long)size[l], k, bb, (long long)d);
            return tg__failb(loc,
                             "tg_einsum: subscript '%c' has size %lld in operand %d (axis %d of shape %s) but %lld in "
                             "operand %d (axis %d of shape %s)",
                             label_char(l), (long long)size[l], owner[l], axis[l], ba, (long long)d, k, i, bb);
        }
    return true;
}

/* ---- one operand: diagonals, then sums of what nobody needs ---------------------------------- */
static tg_tensor *to_end(tg_loc loc, const tg_tensor *t, int p, int q, labels *l)
{
    tg_axes perm = {.n = l->n};
    labels moved = {.n = 0};
    for (int i = 0; i < l->n; i++)
        if (i != p && i != q)
            perm.axis[moved.n] = i, moved.at[moved.n++] = l->at[i];
    perm.axis[moved.n] = p, perm.axis[moved.n + 1] = q;
    int label = l->at[p];
    *l = moved;
    l->at[l->n++] = label;
    return tg_transpose_at(loc, t, perm);
}

static bool reduce_operand(tg_loc loc, operand *o, const bool *keep)
{
    for (int p = 0; p < o->l.n; p++)
        for (int q = p + 1; q < o->l.n; q++)
            if (o->l.at[p] == o->l.at[q]) { /* a diagonal: both axes to the end, then one */
                o->t = tg_linalg_diag_part_at(loc, to_end(loc, o->t, p, q, &o->l));
                if (!o->t)
                    return false;
                p = -1; /* the labels moved: look again */
                break;
            }
    tg_axes sum = {.n = 0};
    labels left = {.n = 0};
    for (int i = 0; i < o->l.n; i++)
        if (keep[o->l.at[i]])
            left.at[left.n++] = o->l.at[i];
        else
            sum.axis[sum.n++] = i;
    if (sum.n) {
        o->t = tg_sum_at(loc, o->t, (tg_reduce_opts){.axes = sum});
        o->l = left;
    }
    return o->t != NULL;
}

/* ---- two operands: one batched matmul ------------------------------------------------------- */
static tg_tensor *permuted(tg_loc loc, tg_tensor *t, const labels *from, const labels *to)
{
    tg_axes perm = {.n = to->n};
    bool same = true;
    for (int i = 0; i < to->n; i++) {
        for (int j = 0; j < from->n; j++)
            if (from->at[j] == to->at[i])
                perm.axis[i] = j;
        same &= perm.axis[i] == i;
    }
    return same ? t : tg_transpose_at(loc, t, perm);
}

static int64_t dim_of(const operand *o, int label)
{
    for (int i = 0; i < o->l.n; i++)
        if (o->l.at[i] == label)
            return o->t->shape[i];
    return 1;
}

/* a's and b's labels sorted into batch (both, kept), contracted (both, not kept) and free. */
static tg_tensor *contract(tg_loc loc, const operand *a, const operand *b, const bool *keep, labels *result)
{
    labels batch = {0}, sum = {0}, fa = {0}, fb = {0};
    for (int i = 0; i < a->l.n; i++) {
        int l = a->l.at[i];
        labels *to = !has(&b->l, l) ? &fa : keep[l] ? &batch : &sum;
        to->at[to->n++] = l;
    }
    for (int i = 0; i < b->l.n; i++)
        if (!has(&a->l, b->l.at[i]))
            fb.at[fb.n++] = b->l.at[i];
    if (batch.n + 2 > TG_MAX_RANK || batch.n + fa.n + fb.n > TG_MAX_RANK)
        return tg__fail(loc, "tg_einsum: a product of two operands would need more than %d axes", TG_MAX_RANK);
    labels la = batch, lb = batch;
    tg_shape sa = {.rank = batch.n + 2}, sb = {.rank = batch.n + 2}, out = {.rank = 0};
    int64_t m = 1, n = 1, k = 1;
    for (int i = 0; i < batch.n; i++) { /* sizes 1 and d broadcast to d */
        sa.dims[i] = dim_of(a, batch.at[i]), sb.dims[i] = dim_of(b, batch.at[i]);
        out.dims[out.rank++] = sa.dims[i] == 1 ? sb.dims[i] : sa.dims[i];
    }
    for (int i = 0; i < fa.n; i++) {
        int64_t d = dim_of(a, fa.at[i]);
        la.at[la.n++] = fa.at[i], m *= d, out.dims[out.rank++] = d;
    }
    for (int i = 0; i < sum.n; i++)
        la.at[la.n++] = sum.at[i], lb.at[lb.n++] = sum.at[i], k *= dim_of(a, sum.at[i]);
    for (int i = 0; i < fb.n; i++) {
        int64_t d = dim_of(b, fb.at[i]);
        lb.at[lb.n++] = fb.at[i], n *= d, out.dims[out.rank++] = d;
    }
    sa.dims[batch.n] = m, sa.dims[batch.n + 1] = k;
    sb.dims[batch.n] = k, sb.dims[batch.n + 1] = n;
    tg_tensor *ma = tg_reshape_at(loc, permuted(loc, a->t, &a->l, &la), sa);
    tg_tensor *mb = tg_reshape_at(loc, permuted(loc, b->t, &b->l, &lb), sb);
    *result = batch;
    for (int i = 0; i < fa.n; i++)
        result->at[result->n++] = fa.at[i];
    for (int i = 0; i < fb.n; i++)
        result->at[result->n++] = fb.at[i];
    return tg_reshape_at(loc, tg_matmul_at(loc, ma, mb, (tg_matmul_opts){0}), out);
}

/* ---- the equation ----------------------------------------------------------------------------- */
/* The output's labels: after "->", or numpy's implicit order (the `...` axes, then the
 * letters that occur once in all the inputs, in ASCII order: A-Z before a-z). */
static bool output_labels(tg_loc loc, const char *eq, const char *arrow, const operand *ops, int n, int n_ell,
                          labels *out)
{
    out->n = 0;
    if (!arrow) {
        int count[N_LABELS] = {0};
        for (int k = 0; k < n; k++)
            for (int i = 0; i < ops[k].l.n; i++)
                count[ops[k].l.at[i]]++;
        for (int e = n_ell; e >= 1; e--)
            out->at[out->n++] = ELLIPSIS_LABEL + e - 1;
        for (int l = 26; l < N_LETTERS; l++)
            if (count[l] == 1 && out->n < TG_MAX_RANK)
                out->at[out->n++] = l;
        for (int l = 0; l < 26; l++)
            if (count[l] == 1 && out->n < TG_MAX_RANK)
                out->at[out->n++] = l;
        return true;
    }
    int before[TG_MAX_RANK], after[TG_MAX_RANK], na;
    bool ell;
    const char *b = arrow + 2;
    int nb = parse_term(loc, eq, b, b + strlen(b), before, after, &na, &ell);
    if (nb < 0)
        return false;
    if (nb + na + (ell ? n_ell : 0) > TG_MAX_RANK)
        return tg__failb(loc, "tg_einsum: the output of \"%s\" would have more than %d axes", eq, TG_MAX_RANK);
    for (int i = 0; i < nb; i++)
        out->at[out->n++] = before[i];
    for (int e = ell ? n_ell : 0; e >= 1; e--)
        out->at[out->n++] = ELLIPSIS_LABEL + e - 1;
    for (int i = 0; i < na; i++)
        out->at[out->n++] = after[i];
    for (int i = 0; i < out->n; i++) {
        int l = out->at[i];
        bool seen = false;
        for (int k = 0; k < n && !seen; k++)
            seen = has(&ops[k].l, l);
        if (!seen && l < N_LETTERS)
            return tg__failb(loc, "tg_einsum: the output subscript '%c' of \"%s\" is in no input", label_char(l), eq);
        for (int j = 0; j < i; j++)
            if (out->at[j] == l)
                return tg__failb(loc, "tg_einsum: the output subscript '%c' of \"%s\" is repeated", label_char(l), eq);
    }
    return true;
}

tg_tensor *tg_einsum_at(tg_loc loc, const char *equation, tg_tensor *const *operands, int n)
{
    if (!equation)
        return tg__fail(loc, "tg_einsum: `equation` is NULL");
    if (n < 1 || !operands)
        return tg__fail(loc, "tg_einsum: needs at least one operand (got %d)", n);
    for (int k = 0; k < n; k++) {
        if (!tg__check_input(loc, "tg_einsum", operands[k], "operands[k]"))
            return NULL;
        if (operands[k]->dtype != operands[0]->dtype)
            return tg__fail(loc,
                            "tg_einsum: operand %d is %s but operand 0 is %s; every operand needs one dtype, as TF", k,
                            tg_dtype_name(operands[k]->dtype), tg_dtype_name(operands[0]->dtype));
        if (n > 1 && !tg_dtype_is_float(operands[k]->dtype))
            return tg__fail(loc, "tg_einsum: operand %d is %s; products of operands need float32 or float64", k,
                            tg_dtype_name(operands[k]->dtype));
    }
    const char *arrow = strstr(equation, "->");
    if (arrow && strstr(arrow + 2, "->"))
        return tg__fail(loc, "tg_einsum: \"%s\" has more than one \"->\"", equation);
    const char *end = arrow ? arrow : equation + strlen(equation);
    int terms = 1;
    for (const char *p = equation; p < end; p++)
        terms += *p == ',';
    if (terms != n)
        return tg__fail(loc, "tg_einsum: \"%s\" has subscripts for %d operand%s, but %d %s given", equation, terms,
                        terms == 1 ? "" : "s", n, n == 1 ? "was" : "were");
    if (arrow && memchr(arrow + 2, ',', strlen(arrow + 2)))
        return tg__fail(loc, "tg_einsum: \"%s\" has a ',' after \"->\"; the output is one term", equation);
    operand *ops = tg__arena_alloc(tg__ctx()->scope, sizeof *ops * (size_t)n);
    if (!ops)
        return tg__fail(loc, "tg_einsum: out of memory for %d operands", n);
    int n_ell = 0;
    const char *b = equation;
    for (int k = 0; k < n; k++) {
        const char *e = memchr(b, ',', (size_t)(end - b));
        e = e ? e : end;
        int ne = -1;
        ops[k].t = operands[k];
        if (!operand_labels(loc, equation, b, e, k, operands[k], &ops[k].l, &ne))
            return NULL;
        n_ell = ne > n_ell ? ne : n_ell;
        b = e + 1;
    }
    labels out;
    if (!output_labels(loc, equation, arrow, ops, n, n_ell, &out))
        return NULL;
    if (!label_sizes(loc, ops, n))
        return NULL;
    /* Left to right: operand 0 reduced, then each next one reduced and contracted into it.
     * A label is kept while the output or an operand not yet used has it; `...` axes
     * stay until the end (they broadcast in the products). */
    operand cur = ops[0];
    for (int k = 0; k < n; k++) {
        bool keep[N_LABELS] = {false};
        for (int i = 0; i < out.n; i++)
            keep[out.at[i]] = true;
        for (int l = ELLIPSIS_LABEL; l < N_LABELS; l++)
            keep[l] |= k + 1 < n;
        for (int j = k + 1; j < n; j++)
            for (int i = 0; i < ops[j].l.n; i++)
                keep[ops[j].l.at[i]] = true;
        if (k == 0) {
            if (!reduce_operand(loc, &cur, keep))
                return NULL;
            continue;
        }
        bool keep_b[N_LABELS];
        memcpy(keep_b, keep, sizeof keep);
        for (int i = 0; i < cur.l.n; i++)
            keep_b[cur.l.at[i]] = true;
        operand next = ops[k];
        if (!reduce_operand(loc, &next, keep_b))
            return NULL;
        bool keep_c[N_LABELS]; /* `...` axes as batch axes, which matmul broadcasts */
        memcpy(keep_c, keep, sizeof keep);
        for (int l = ELLIPSIS_LABEL; l < N_LABELS; l++)
            keep_c[l] = true;
        labels l;
        cur.t = contract(loc, &cur, &next, keep_c, &l);
        cur.l = l;
        if (!cur.t || (k + 1 == n && !reduce_operand(loc, &cur, keep)))
            return NULL;
    }
    /* `...` axes in no operand's result (an output `...` wider than some input's): absent
     * labels cannot occur, since n_ell is the widest operand's. */
    return permuted(loc, cur.t, &cur.l, &out);
}
