/* tg__apply: the one path every op takes from a call to its output and the tape. */
#include "op.h"
#include "tapegrad/ops.h"
#include "../kernels/parallel.h"

static TG_HOT_INLINE bool check_inputs(const tg_call *c)
{
    static const char *const names[] = {"a", "b", "c"};
    for (int i = 0; i < c->n; i++) {
        const tg_tensor *x = c->in[i];
        if (x && x->state == TG_HEADER_ALIVE)
            continue; /* the common case: no formatting on the hot path */
        char arg[24];
        snprintf(arg, sizeof arg, "input %d", i);
        return tg__check_input(c->loc, tg__op_name(c->op), x, c->n == 1 ? "x" : i < 3 ? names[i] : arg);
    }
    return true;
}

/* What the row promises its kernels, once the shape rule has passed: the numbers of
 * inputs and outputs and input 0's dtype. A shape rule that lets more through is a bug in tapegrad,
 * but the message still tells the user what the op takes. */
static TG_HOT_INLINE bool check_row(const tg_call *c, const tg_op_def *def)
{
    if (def->n_in >= 0 && c->n != def->n_in)
        return tg__failb(c->loc, "%s: takes %d inputs, not %d", def->name, def->n_in, c->n);
    if (c->n_out != def->n_out && (def->n_out >= 0 || c->n_out < 1))
        return tg__failb(c->loc, "%s: gives %d outputs, not %d", def->name, def->n_out, c->n_out);
    if (def->dtypes >> c->in[0]->dtype & 1u)
        return true;
    char allowed[96] = "";
    for (int d = 0; d < TG_DTYPE_COUNT; d++)
        if (def->dtypes >> d & 1u)
            snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", *allowed ? ", " : "",
                     tg_dtype_name((tg_dtype)d));
    return tg__failb(c->loc, "%s: `%s` must be %s, not %s (cast it with tg_cast)", def->name, c->n == 1 ? "x" : "a",
                     allowed, tg_dtype_name(c->in[0]->dtype));
}

/* Runs the row's forward into out (c->outs[0]), timing it when the op profile is on. */
static TG_HOT_INLINE bool run_forward(tg_context *ctx, const tg_call *c, const tg_op_def *def, tg_tensor *out)
{
    if (!ctx->profiling)
        return def->forward(c, out);
    double t0 = tg__profile_now();
    bool ok = def->forward(c, out);
    tg__profile_op(c->op, tg__profile_now() - t0);
    return ok;
}

/* After the forward: numerics checks, variable reads, and the tape or the provenance. */
static TG_HOT_INLINE bool finish(tg_context *ctx, const tg_call *c)
{
    tg_tensor *const *outs = c->outs;
    int n_out = c->n_out;
    for (int k = 0; k < n_out; k++) {
        outs[k]->op = c->op;
        if ((ctx->check & TG_CHECK_NUMERICS) && outs[k]->data && !tg__numerics_forward(c, outs[k]))
            return false;
    }
    for (int i = 0; i < c->n; i++)
        if (c->in[i]->flags & TG_T_VARIABLE) {
            c->in[i]->var->last_read = c->loc;
            c->in[i]->var->last_read_stamp = ctx->clock;
        }
    if (__builtin_expect(ctx->trace != NULL, 0))
        tg__trace_op(c);
    if (ctx->n_recording)
        return tg__tape_record(c);
    if (!ctx->gradient_depth) /* provenance, for a diagnosis (a gradient's own ops need none) */
        for (int k = 0; k < n_out; k++)
            tg__keep_inputs(outs[k], c->in, c->n);
    return true;
}

/* ---- bfloat16 through the float32 kernels ------------------------------------------------- */
typedef struct widen_job {
    const uint16_t *from;
    float *to;
} widen_job;

static void widen_range(void *ctx, int64_t i0, int64_t i1)
{
    const widen_job *j = ctx;
    for (int64_t i = i0; i < i1; i++)
        j->to[i] = tg__f32_from_bf16(j->from[i]);
}

typedef struct narrow_job {
    const float *from;
    uint16_t *to;
} narrow_job;

static void narrow_range(void *ctx, int64_t i0, int64_t i1)
{
    const narrow_job *j = ctx;
    for (int64_t i = i0; i < i1; i++)
        j->to[i] = tg__bf16_from_f32(j->from[i]);
}

static bool any_bf16(const tg_call *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->in[i]->dtype == TG_BF16)
            return true;
    return false;
}

/* A row that takes bfloat16 without a kernel of its own: its float32 kernel runs on the
 * inputs widened (exactly), and the float32 output is rounded to bfloat16 once, as TF's
 * Eigen kernels compute bfloat16 element-wise ops and reductions in float. The tape records
 * the bfloat16 inputs and output, so backward rules see bfloat16 too.
 *
 * widened_forward runs it into *out, made here when NULL (a replayed graph gives its planned
 * buffer); the widened inputs and the float32 result live in the current scope. */
static bool widened_forward(const tg_call *c, const tg_op_def *def, tg_tensor **out)
{
    const tg_tensor **wide = tg__arena_alloc(tg__ctx()->scope, sizeof *wide * (size_t)c->n);
    if (!wide)
        return tg__failb(c->loc, "%s: out of memory", def->name);
    for (int i = 0; i < c->n; i++) {
        const tg_tensor *x = c->in[i];
        wide[i] = x;
        if (tg_dtype_is_float(x->dtype))
            return tg__failb(c->loc,
                             "%s: cannot mix bfloat16 and %s in one op (tapegrad, like TF, never casts implicitly); "
                             "cast one side with tg_cast",
                             def->name, tg_dtype_name(x->dtype));
        if (x->dtype != TG_BF16)
            continue;
        tg_shape s = tg__shape(x);
        tg_tensor *w = tg__tensor_new(c->loc, TG_F32, &s);
        if (!w)
            return false;
        widen_job j = {x->data, w->data};
        tg__parallel_for(x->size, 32768, widen_range, &j);
        wide[i] = w;
    }
    tg_tensor *tmp = NULL;
    tg_call wc = *c;
    wc.in = wide;
    wc.outs = &tmp;
    tg_shape shape;
    tg_dtype dtype;
    if (!def->shape(&wc, &shape, &dtype) || !check_row(&wc, def))
        return false;
    if (dtype != TG_F32) { /* bool or integer outputs (comparisons, argmax) stay what they are */
        if (!*out)
            return (*out = tg__tensor_new(c->loc, dtype, &shape)) && run_forward(tg__ctx(), &wc, def, *out);
        wc.outs = out;
        return run_forward(tg__ctx(), &wc, def, *out);
    }
    if (!(tmp = tg__tensor_new(c->loc, dtype, &shape)) || !run_forward(tg__ctx(), &wc, def, tmp))
        return false;
    if (!*out && !(*out = tg__tensor_new(c->loc, TG_BF16, &shape)))
        return false;
    narrow_job j = {tmp->data, (*out)->data};
    tg__parallel_for((*out)->size, 32768, narrow_range, &j);
    return true;
}

/* An abstract trace's widened call: the shape rule on float32 headers, no kernel. */
static bool widened_abstract(const tg_call *c, const tg_op_def *def, tg_tensor **out)
{
    const tg_tensor **wide = tg__arena_alloc(tg__ctx()->scope, sizeof *wide * (size_t)c->n);
    if (!wide)
        return tg__failb(c->loc, "%s: out of memory", def->name);
    for (int i = 0; i < c->n; i++) {
        tg_shape s = tg__shape(c->in[i]);
        if (tg_dtype_is_float(c->in[i]->dtype))
            return tg__failb(c->loc,
                             "%s: cannot mix bfloat16 and %s in one op (tapegrad, like TF, never casts implicitly); "
                             "cast one side with tg_cast",
                             def->name, tg_dtype_name(c->in[i]->dtype));
        wide[i] = c->in[i]->dtype == TG_BF16 ? tg__tensor_abstract(c->loc, TG_F32, &s) : c->in[i];
        if (!wide[i])
            return false;
    }
    tg_call wc = *c;
    wc.in = wide;
    tg_shape shape;
    tg_dtype dtype;
    if (!def->shape(&wc, &shape, &dtype) || !check_row(&wc, def))
        return false;
    return (*out = tg__tensor_abstract(c->loc, dtype == TG_F32 ? TG_BF16 : dtype, &shape)) != NULL;
}

static tg_tensor *apply_widened(tg_call *c, const tg_op_def *def, tg_tensor **slot)
{
    tg_tensor *out = NULL;
    if (!(tg__trace_abstract() ? widened_abstract(c, def, &out) : widened_forward(c, def, &out)))
        return NULL;
    *slot = out; /* c->outs[0] */
    return finish(tg__ctx(), c) ? out : NULL;
}

bool tg__needs_widening(const tg_call *c, const tg_op_def *def)
{
    return (def->dtypes >> TG_BF16 & 1u) && !(def->flags & (TG_OPF_BF16_NATIVE | TG_OPF_VIEW)) && any_bf16(c);
}

bool tg__forward_widened(const tg_call *c, tg_tensor *out) { return widened_forward(c, &tg__op_table[c->op], &out); }

/* The one path: inputs, shape rule, row, the output (or a view, for a view op), forward,
 * finish. Ops with several outputs take tg__apply_n, the same steps over an array. */
tg_tensor *tg__apply(tg_loc loc, tg_op_kind op, const tg_tensor *const *in, int n, const tg_attrs *a)
{
    static const tg_attrs no_attrs;
    tg_tensor *out = NULL;
    tg_call c = {.loc = loc, .op = op, .in = in, .n = n, .a = a ? a : &no_attrs, .n_out = 1, .outs = &out};
    if (!check_inputs(&c))
        return NULL;
    const tg_op_def *def = &tg__op_table[op];
    if (tg__needs_widening(&c, def))
        return apply_widened(&c, def, &out);
    tg_shape shape;
    tg_dtype dtype;
    if (!def->shape(&c, &shape, &dtype) || !check_row(&c, def))
        return NULL;
    tg_context *ctx = tg__ctx();
    if ((def->flags & TG_OPF_VIEW) && !(in[0]->flags & (TG_T_VARIABLE | TG_T_SNAPSHOT)))
        out = tg__tensor_view(loc, in[0], &shape);
    else if (__builtin_expect(ctx->trace != NULL, 0) && tg__trace_abstract())
        out = tg__tensor_abstract(loc, dtype, &shape); /* recorded by finish, run by the graph */
    else if ((out = tg__tensor_new(loc, dtype, &shape)) && !run_forward(ctx, &c, def, out))
        return NULL;
    return out && finish(ctx, &c) ? out : NULL;
}

static bool apply_n(tg_call *c, tg_tensor **outs, tg_shape *shape, tg_dtype *dtype)
{
    if (!check_inputs(c))
        return false;
    const tg_op_def *def = &tg__op_table[c->op];
    if (!def->shape(c, shape, dtype) || !check_row(c, def))
        return false;
    tg_context *ctx = tg__ctx();
    bool abstract = ctx->trace && tg__trace_abstract();
    for (int k = 0; k < c->n_out; k++)
        if (!(outs[k] = abstract ? tg__tensor_abstract(c->loc, dtype[k], &shape[k])
                                 : tg__tensor_new(c->loc, dtype[k], &shape[k])))
            return false;
    return (abstract || run_forward(ctx, c, def, outs[0])) && finish(ctx, c);
}

int tg__apply_n(tg_loc loc, tg_op_kind op, const tg_tensor *const *in, int n, const tg_attrs *a, int n_out,
                tg_tensor **outs)
{
    static const tg_attrs no_attrs;
    tg_call c = {.loc = loc, .op = op, .in = in, .n = n, .a = a ? a : &no_attrs, .n_out = n_out, .outs = outs};
    memset(outs, 0, sizeof *outs * (size_t)n_out);
    tg_shape *shape = tg__arena_alloc(tg__ctx()->scope, sizeof *shape * (size_t)n_out);
    tg_dtype *dtype = tg__arena_alloc(tg__ctx()->scope, sizeof *dtype * (size_t)n_out);
    if (!shape || !dtype)
        return tg__failf(loc, "%s: out of memory for %d outputs", tg__op_name(op), n_out);
    if (apply_n(&c, outs, shape, dtype))
        return 0;
    memset(outs, 0, sizeof *outs * (size_t)n_out);
    return -1;
}

/* ---- helpers ------------------------------------------------------------------------------ */
bool tg__broadcast_shapes(const tg_call *c, const tg_shape *a, const tg_shape *b, tg_shape *out)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    out->rank = r;
    for (int i = 0; i < r; i++) {
        int ia = a->rank - r + i, ib = b->rank - r + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
            tg__fail(c->loc, "%s: shapes %s and %s cannot be broadcast together (axis %d: %lld vs %lld)",
                     tg__op_name(c->op), tg__shape_str(a, sa, sizeof sa), tg__shape_str(b, sb, sizeof sb), i - r,
                     (long long)da, (long long)db);
            return false;
        }
        out->dims[i] = da == 1 ? db : da;
    }
    return true;
}

bool tg__same_dtype(const tg_call *c, const tg_tensor *a, const tg_tensor *b)
{
    if (a->dtype == b->dtype)
        return true;
    tg__fail(c->loc,
             "%s: cannot mix %s and %s in one op (tapegrad, like TF, never casts implicitly); "
             "cast one side with tg_cast",
             tg__op_name(c->op), tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
    return false;
}

bool tg__require_float(const tg_call *c, const tg_tensor *x, const char *arg)
{
    if (tg_dtype_is_float(x->dtype))
        return true;
    tg__fail(c->loc, "%s: `%s` must be float32 or float64, not %s (cast it with tg_cast)", tg__op_name(c->op), arg,
             tg_dtype_name(x->dtype));
    return false;
}

bool tg__norm_axis(const tg_call *c, int axis, int rank, int *out)
{
    int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank ? rank : 1)) {
        tg__fail(c->loc, "%s: axis %d is out of range for a tensor of rank %d", tg__op_name(c->op), axis, rank);
        return false;
    }
    *out = a;
    return true;
}

tg_tensor *tg__unbroadcast(tg_loc loc, const tg_tensor *grad, const tg_shape *shape)
{
    if (!grad)
        return NULL;
    if (grad->rank == shape->rank) {
        bool same = true;
        for (int i = 0; i < shape->rank; i++)
            same &= grad->shape[i] == shape->dims[i];
        if (same)
            return (tg_tensor *)grad;
    }
    tg_axes axes = {0};
    int lead = grad->rank - shape->rank;
    for (int i = 0; i < grad->rank; i++)
        if (i < lead || (shape->dims[i - lead] == 1 && grad->shape[i] != 1))
            axes.axis[axes.n++] = i;
    tg_tensor *s = axes.n ? tg_sum_at(loc, grad, (tg_reduce_opts){.axes = axes, .keepdims = true}) : (tg_tensor *)grad;
    return tg_reshape_at(loc, s, *shape);
}
