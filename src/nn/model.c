/* The Sequential model: a list of layers it owns, built from one example's shape, with
 * Keras's variable lists, trainable semantics and summary. */
#include <math.h>
#include <stdlib.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/ioctl.h>
#include <unistd.h>
#endif

#include "layer_impl.h"

enum { MODEL_ALIVE = 0x30DE11, MODEL_DEAD = 0x30DEDD };

enum { ALL, TRAINABLE, NON_TRAINABLE };

#define CHECK_MODEL(func, m, ret)           \
    do {                                    \
        if (!tg__model_check(loc, func, m)) \
            return ret;                     \
    } while (0)

bool tg__model_check(tg_loc loc, const char *func, const tg_model *m)
{
    if (!m)
        return tg__null_arg(loc, func, "model"), false;
    if (m->magic != MODEL_ALIVE)
        return tg__failb(loc, "%s: the model was already freed with tg_model_free", func);
    return true;
}

static bool alive(const tg_model *m) { return m && m->magic == MODEL_ALIVE; }

/* ---- building -------------------------------------------------------------------------- */
static bool name_taken(const tg_model *m, const char *name, const tg_layer *except)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i] != except && strcmp(m->layers[i]->name, name) == 0)
            return true;
    return false;
}

/* Keras numbers default names per kind: dense, dense_1, dense_2, ... */
static bool assign_name(tg_model *m, tg_loc loc, tg_layer *l)
{
    if (l->auto_named && !l->built) {
        char name[256];
        for (int k = 0;; k++) {
            if (k == 0)
                snprintf(name, sizeof name, "%s", l->kind->base_name);
            else
                snprintf(name, sizeof name, "%s_%d", l->kind->base_name, k);
            if (!name_taken(m, name, l))
                break;
        }
        if (tg__layer_rename(l, name) != 0)
            return tg__fail(loc, "tg_sequential: out of memory"), false;
        return true;
    }
    if (name_taken(m, l->name, l))
        return tg__fail(loc,
                        "all layers added to a Sequential model should have unique names; name \"%s\" is "
                        "already the name of a layer in model \"%s\"; pass a unique .name",
                        l->name, m->name),
               false;
    return true;
}

/* Builds the layers not built yet, each on the output shape of the one before. On
 * failure the layers this call built are unbuilt again. */
static bool build_from(tg_model *m, tg_loc loc, int first, const tg_shape *in)
{
    bool *fresh = calloc((size_t)m->n_layers + 1, sizeof *fresh);
    if (!fresh)
        return tg__fail(loc, "tg_model_build: out of memory"), false;
    tg_shape s = *in;
    int i = first;
    for (; i < m->n_layers; i++) {
        tg_layer *l = m->layers[i];
        if (l->built && !tg__shape_eq(&l->in_shape, &s)) {
            char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
            tg__fail(loc, "layer \"%s\" was built for examples of shape %s, but in model \"%s\" it receives %s",
                     l->name, tg__shape_str(&l->in_shape, a, sizeof a), m->name, tg__shape_str(&s, b, sizeof b));
            break;
        }
        if (!l->built) {
            if (!tg__layer_build(l, loc, &s, m->dtype, tg__derive_seed(m->seed, (uint64_t)i)))
                break;
            fresh[i] = true;
        }
        s = l->out_shape;
    }
    bool ok = i == m->n_layers;
    for (int k = first; !ok && k < i; k++)
        if (fresh[k])
            tg__layer_unbuild(m->layers[k]);
    free(fresh);
    if (ok) {
        m->built = true;
        if (first == 0)
            m->in_shape = *in;
    }
    return ok;
}

/* Keras builds as soon as the input shape is known: the first layer may declare it. */
static bool build_if_declared(tg_model *m, tg_loc loc)
{
    if (m->built || m->n_layers == 0 || m->layers[0]->input_shape.rank < 0)
        return true;
    tg_shape in = m->layers[0]->input_shape;
    return build_from(m, loc, 0, &in);
}

static bool append(tg_model *m, tg_loc loc, tg_layer *l)
{
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 8;
        tg_layer **p = realloc(m->layers, sizeof *p * (size_t)cap);
        if (!p)
            return tg__fail(loc, "tg_model_add: out of memory"), false;
        m->layers = p;
        m->cap_layers = cap;
    }
    if (!assign_name(m, loc, l))
        return false;
    m->layers[m->n_layers++] = l;
    l->model = m;
    return true;
}

/* The model takes `l`: appended and, when the model's input shape is known, built. On
 * failure the layer is freed (the caller gave it away). */
static int add_layer(tg_model *m, tg_loc loc, tg_layer *l)
{
    if (!append(m, loc, l)) {
        tg__layer_destroy(l);
        return -1;
    }
    bool ok;
    if (m->built) {
        ok = build_from(m, loc, m->n_layers - 1, &m->layers[m->n_layers - 2]->out_shape);
    } else {
        ok = build_if_declared(m, loc);
    }
    if (!ok) {
        m->n_layers--;
        l->model = NULL;
        tg__layer_destroy(l);
        return -1;
    }
    return 0;
}

/* A layer that the caller gives: non-NULL and not owned by another model. */
static bool check_given(tg_loc loc, const char *func, tg_layer *const *layers, int i)
{
    tg_layer *l = layers[i];
    if (!l) {
        if (!tg_has_error())
            tg__fail(loc, "%s: layer %d is NULL", func, i);
        return false;
    }
    if (l->model) {
        tg__fail(loc, "%s: layer \"%s\" already belongs to model \"%s\"; a layer can be in one model only", func,
                 l->name, tg_model_name(l->model));
        return false;
    }
    for (int k = 0; k < i; k++)
        if (layers[k] == l) {
            tg__fail(loc, "%s: layer \"%s\" is given twice (at %d and %d); make a new layer for each place", func,
                     l->name, k, i);
            return false;
        }
    return true;
}

/* Frees the given layers this call owns after a failure (not those of other models). */
static void drop_given(tg_layer *const *layers, int n)
{
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int k = 0; k < i; k++)
            seen |= layers[k] == layers[i];
        if (layers[i] && !seen && !layers[i]->model)
            tg__layer_destroy(layers[i]);
    }
}

tg_model *tg_sequential_at(tg_loc loc, tg_sequential_opts o, tg_layer *const *layers, int n)
{
    if (n < 0 || (n > 0 && !layers))
        return tg__fail(loc, "tg_sequential: %d layers at %p", n, (const void *)layers);
    for (int i = 0; i < n; i++)
        if (!check_given(loc, "tg_sequential", layers, i)) {
            drop_given(layers, n);
            return NULL;
        }
    if (o.dtype != TG_F32 && o.dtype != TG_F64) {
        drop_given(layers, n);
        return tg__fail(loc, "tg_sequential: dtype must be float32 or float64, not %s",
                        tg_dtype_name(o.dtype) ? tg_dtype_name(o.dtype) : "an unknown dtype");
    }
    tg_model *m = calloc(1, sizeof *m);
    char *name = strdup(o.name ? o.name : "sequential");
    if (!m || !name) {
        free(m);
        free(name);
        drop_given(layers, n);
        return tg__fail(loc, "tg_sequential: out of memory");
    }
    *m = (tg_model){.magic = MODEL_ALIVE, .name = name, .seed = o.seed, .dtype = o.dtype, .trainable = true};
    for (int i = 0; i < n; i++) {
        if (!append(m, loc, layers[i])) {
            tg__model_destroy(m);
            free(m);
            drop_given(layers + i, n - i);
            return NULL;
        }
    }
    if (!build_if_declared(m, loc)) {
        tg__model_destroy(m);
        free(m); /* never handed out: no handle to keep */
        return NULL;
    }
    return m;
}

int tg_model_add_at(tg_loc loc, tg_model *m, tg_layer *l)
{
    bool ok = tg__model_check(loc, "tg_model_add", m);
    if (ok && m->functional)
        ok = tg__failb(loc,
                       "tg_model_add: model \"%s\" is functional: its layers are those of its graph (apply the "
                       "layer to keras tensors and make a new model with tg_functional)",
                       m->name);
    if (!ok || !check_given(loc, "tg_model_add", &l, 0)) {
        if (l && !l->model)
            tg__layer_destroy(l);
        return -1;
    }
    return add_layer(m, loc, l);
}

int tg_model_build_at(tg_loc loc, tg_model *m, tg_shape in)
{
    CHECK_MODEL("tg_model_build", m, -1);
    char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
    if (in.rank < 0 || in.rank >= TG_MAX_RANK)
        return tg__failf(loc, "tg_model_build: input_shape has rank %d; one example's shape may have rank 0 to %d",
                         in.rank, TG_MAX_RANK - 1);
    if (m->built) {
        if (tg__shape_eq(&m->in_shape, &in) && (!m->functional || m->n_inputs == 1))
            return 0;
        if (m->functional && m->n_inputs > 1)
            return tg__failf(loc, "tg_model_build: model \"%s\" has %d inputs and was built by tg_functional", m->name,
                             m->n_inputs);
        return tg__failf(loc, "tg_model_build: model \"%s\" is already built for examples of shape %s, not %s", m->name,
                         tg__shape_str(&m->in_shape, a, sizeof a), tg__shape_str(&in, b, sizeof b));
    }
    if (m->n_layers == 0)
        return tg__failf(loc, "tg_model_build: model \"%s\" has no layers; add some first", m->name);
    if (tg__shape_size(&in) < 0)
        return tg__failf(loc,
                         "tg_model_build: input_shape %s has a negative dim or is too large (its dims "
                         "multiply past %lld elements)",
                         tg__shape_str(&in, a, sizeof a), (long long)TG_MAX_ELEMENTS);
    return build_from(m, loc, 0, &in) ? 0 : -1;
}

/* ---- calling ------------------------------------------------------------------------------------ */
static bool check_model_input(tg_loc loc, const tg_model *m, const tg_tensor *x)
{
    int r = tg_rank(x);
    bool ok = r == m->in_shape.rank + 1;
    for (int i = 0; ok && i < m->in_shape.rank; i++)
        ok = tg_dim(x, i + 1) == m->in_shape.dims[i];
    if (ok)
        return true;
    char want[TG_SHAPE_STR_MAX], got[TG_SHAPE_STR_MAX], ex[TG_SHAPE_STR_MAX];
    tg_shape xs = tg_shape_of(x);
    tg__fail(loc,
             "tg_model_call: input 0 of layer \"%s\" is incompatible with the layer: expected shape=%s, "
             "found shape=%s (model \"%s\" was built for examples of shape %s; the first axis is the batch)",
             m->layers[0]->name, tg__batch_shape_str(&m->in_shape, want, sizeof want),
             tg__shape_str(&xs, got, sizeof got), m->name, tg__shape_str(&m->in_shape, ex, sizeof ex));
    return false;
}

tg_tensor *tg_model_call_at(tg_loc loc, tg_model *m, const tg_tensor *x, tg_model_call_opts o)
{
    CHECK_MODEL("tg_model_call", m, NULL);
    if (!tg__check_input(loc, "tg_model_call", x, "x"))
        return NULL;
    if (m->functional) {
        if (m->n_inputs != 1 || m->n_outputs != 1)
            return tg__fail(loc,
                            "tg_model_call: model \"%s\" has %d inputs and %d outputs: call it with "
                            "tg_model_call_list",
                            m->name, m->n_inputs, m->n_outputs);
        tg_tensor *y = NULL, *y_mask = NULL;
        tg__model_clear_call_losses(m);
        bool ok = tg__functional_call_masked(m, loc, &x, o.mask ? &o.mask : NULL, &y, &y_mask, o.training);
        return ok && tg__model_keep_masks(m, loc, &y, &y_mask, 1) ? y : NULL;
    }
    if (m->n_layers == 0)
        return tg__fail(loc, "tg_model_call: model \"%s\" has no layers; add some with tg_model_add", m->name);
    if (!m->built) {
        if (tg_rank(x) < 1)
            return tg__fail(loc, "tg_model_call: x is a scalar; a model takes a batch, whose first axis is the batch");
        tg_shape xs = tg_shape_of(x), ex = {.rank = xs.rank - 1};
        for (int i = 1; i < xs.rank; i++)
            ex.dims[i - 1] = xs.dims[i];
        if (!build_from(m, loc, 0, &ex))
            return NULL;
    }
    if (!check_model_input(loc, m, x))
        return NULL;
    tg__model_clear_call_losses(m);
    tg_tensor *y = NULL, *y_mask = NULL;
    bool ok = tg__model_forward(m, loc, &x, o.mask ? &o.mask : NULL, &y, &y_mask, o.training);
    return ok && tg__model_keep_masks(m, loc, &y, &y_mask, 1) ? y : NULL;
}

/* A bfloat16 output (a mixed_bfloat16 model's) cast to float32, recorded, for the loss and
 * the metrics: Keras's losses convert y_pred to their float32 dtype the same way. */
tg_tensor *tg__model_output_f32(tg_loc loc, tg_tensor *y)
{
    return y && tg_dtype_of(y) == TG_BF16 ? tg_cast_at(loc, y, TG_F32) : y;
}

bool tg__model_forward(tg_model *m, tg_loc loc, const tg_tensor *const *xs, const tg_tensor *const *masks,
                       tg_tensor **ys, tg_tensor **y_masks, bool training)
{
    if (m->functional)
        return tg__functional_call_masked(m, loc, xs, masks, ys, y_masks, training);
    tg_tensor *y = (tg_tensor *)xs[0], *mask = masks ? (tg_tensor *)masks[0] : NULL;
    for (int i = 0; i < m->n_layers && y; i++) {
        tg_tensor *in = y, *in_mask = mask;
        y = tg__layer_call_masked(m->layers[i], loc, &in, in_mask ? (const tg_tensor *const *)&in_mask : NULL, 1,
                                  training, &mask);
    }
    ys[0] = y = tg__model_output_f32(loc, y);
    if (y_masks)
        y_masks[0] = y ? mask : NULL;
    return y != NULL;
}

bool tg__model_keep_masks(tg_model *m, tg_loc loc, tg_tensor *const *ys, tg_tensor *const *masks, int n)
{
    if (!m->out_masks) {
        int k = tg__model_n_outputs(m);
        tg_tensor **masks_and_outs = calloc((size_t)k * 2, sizeof *masks_and_outs);
        uint32_t *gens = calloc((size_t)k, sizeof *gens);
        if (!masks_and_outs || !gens) {
            free(masks_and_outs);
            free(gens);
            return tg__failb(loc, "model \"%s\": out of memory keeping its output masks", m->name);
        }
        m->out_masks = masks_and_outs;
        m->out_tensors = masks_and_outs + k;
        m->out_gens = gens;
    }
    m->n_out_masks = n;
    for (int i = 0; i < n; i++) {
        m->out_tensors[i] = ys[i];
        m->out_masks[i] = masks[i];
        m->out_gens[i] = ys[i]->gen;
    }
    return true;
}

tg_tensor *tg__model_output_mask(const tg_model *m, const tg_tensor *y)
{
    for (int i = 0; alive(m) && y && i < m->n_out_masks; i++)
        if (m->out_tensors[i] == y && y->gen == m->out_gens[i] && y->state == TG_HEADER_ALIVE)
            return m->out_masks[i];
    return NULL;
}

tg_tensor *tg_model_output_mask(const tg_model *m, const tg_tensor *y_pred) { return tg__model_output_mask(m, y_pred); }

int tg_model_call_list_at(tg_loc loc, tg_model *m, const tg_tensor *const *xs, int n_inputs, tg_tensor **ys,
                          int n_outputs, tg_model_call_opts o)
{
    CHECK_MODEL("tg_model_call_list", m, -1);
    for (int i = 0; ys && i < n_outputs; i++)
        ys[i] = NULL;
    int want_in = tg__model_n_inputs(m), want_out = tg__model_n_outputs(m);
    if (!xs || !ys || n_inputs != want_in || n_outputs != want_out)
        return tg__failf(loc,
                         "tg_model_call_list: model \"%s\" takes %d inputs and gives %d outputs, but the call has "
                         "%d inputs and room for %d outputs",
                         m->name, want_in, want_out, xs ? n_inputs : 0, ys ? n_outputs : 0);
    if (!m->functional) {
        if (o.masks)
            o.mask = o.masks[0];
        ys[0] = tg_model_call_at(loc, m, xs[0], o);
        return ys[0] ? 0 : -1;
    }
    tg__model_clear_call_losses(m);
    tg_scope *scope = tg__ctx()->scope;
    if (!scope)
        return tg__failf(loc, "tg_model_call_list: no scope is open: call tg_scope_begin() before making tensors");
    tg_tensor **y_masks = tg__arena_alloc(scope, sizeof *y_masks * (size_t)n_outputs);
    if (!y_masks)
        return tg__failf(loc, "tg_model_call_list: out of memory");
    bool ok = tg__functional_call_masked(m, loc, xs, o.masks, ys, y_masks, o.training);
    return ok && tg__model_keep_masks(m, loc, ys, y_masks, n_outputs) ? 0 : -1;
}

int tg__model_n_inputs(const tg_model *m) { return m->functional ? m->n_inputs : 1; }
int tg__model_n_outputs(const tg_model *m) { return m->functional ? m->n_outputs : 1; }
int tg_model_n_inputs(const tg_model *m) { return alive(m) ? tg__model_n_inputs(m) : 0; }
int tg_model_n_outputs(const tg_model *m) { return alive(m) ? tg__model_n_outputs(m) : 0; }

tg_layer *tg__model_output_layer(const tg_model *m, int i)
{
    if (!alive(m) || i < 0 || i >= tg__model_n_outputs(m))
        return NULL;
    if (m->functional)
        return m->output_layers[i];
    return m->n_layers ? m->layers[m->n_layers - 1] : NULL;
}

tg_shape tg__model_input_shape(const tg_model *m, int i)
{
    if (m->functional)
        return i >= 0 && i < m->n_inputs ? m->input_layers[i]->out_shape : (tg_shape){.rank = -1};
    return i == 0 && m->built ? m->in_shape : (tg_shape){.rank = -1};
}

const char *tg_model_output_name(const tg_model *m, int i)
{
    const tg_layer *l = tg__model_output_layer(m, i);
    return l ? l->name : NULL;
}

/* ---- accessors ------------------------------------------------------------------------------------ */
const char *tg_model_name(const tg_model *m) { return alive(m) ? m->name : NULL; }
bool tg_model_built(const tg_model *m) { return alive(m) && m->built; }
int tg_model_n_layers(const tg_model *m) { return alive(m) ? m->n_layers : 0; }
bool tg_model_trainable(const tg_model *m) { return alive(m) && m->trainable; }

tg_layer *tg_model_layer(const tg_model *m, int i)
{
    tg_loc loc = {0};
    CHECK_MODEL("tg_model_layer", m, NULL);
    int k = i < 0 ? i + m->n_layers : i;
    if (k < 0 || k >= m->n_layers)
        return tg__fail(loc, "tg_model_layer: index %d is out of range for model \"%s\" with %d layers", i, m->name,
                        m->n_layers);
    return m->layers[k];
}

tg_layer *tg_model_get_layer(const tg_model *m, const char *name)
{
    tg_loc loc = {0};
    CHECK_MODEL("tg_model_get_layer", m, NULL);
    for (int i = 0; name && i < m->n_layers; i++)
        if (strcmp(m->layers[i]->name, name) == 0)
            return m->layers[i];
    return tg__fail(loc, "tg_model_get_layer: no layer named \"%s\" in model \"%s\"", name ? name : "(null)", m->name);
}

/* Keras 3: a frozen model has no trainable weights; otherwise the variable's own flag
 * decides (a frozen layer has turned its variables' flags off). */
static bool counts_as_trainable(const tg_model *m, const tg_tensor *v)
{
    return m->trainable && tg_variable_trainable(v);
}

static tg_tensor *const *collect(tg_model *m, int which, int *count)
{
    static tg_tensor *const none[1] = {NULL}; /* an empty list is not an error */
    int total = 0, n = 0;
    for (int i = 0; i < m->n_layers; i++)
        total += m->layers[i]->n_vars;
    if (total > m->cap_vars) {
        for (int k = 0; k < 3; k++) {
            tg_tensor **p = realloc(m->lists[k], sizeof *p * (size_t)total);
            if (!p) {
                if (count)
                    *count = 0;
                return tg__fail((tg_loc){0}, "tg_model_variables: out of memory");
            }
            m->lists[k] = p;
        }
        m->cap_vars = total;
    }
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_vars; k++) {
            tg_tensor *v = m->layers[i]->vars[k];
            if (which == ALL || (which == TRAINABLE) == counts_as_trainable(m, v))
                m->lists[which][n++] = v;
        }
    if (count)
        *count = n;
    return total ? m->lists[which] : none;
}

tg_tensor *const *tg_model_variables_at(tg_loc loc, tg_model *m, int *count)
{
    if (count)
        *count = 0;
    CHECK_MODEL("tg_model_variables", m, NULL);
    int n = 0;
    tg_tensor *const *vars = collect(m, ALL, &n);
    for (int i = 0; vars && loc.file && i < n; i++) /* for a diagnosis: where they were handed out */
        if (!vars[i]->var->trainable)
            vars[i]->var->listed = loc;
    if (count)
        *count = n;
    return vars;
}

tg_tensor *const *tg_model_trainable_variables(tg_model *m, int *count)
{
    tg_loc loc = {0};
    if (count)
        *count = 0;
    CHECK_MODEL("tg_model_trainable_variables", m, NULL);
    return collect(m, TRAINABLE, count);
}

tg_tensor *const *tg_model_non_trainable_variables(tg_model *m, int *count)
{
    tg_loc loc = {0};
    if (count)
        *count = 0;
    CHECK_MODEL("tg_model_non_trainable_variables", m, NULL);
    return collect(m, NON_TRAINABLE, count);
}

int64_t tg_model_n_params(const tg_model *m, int64_t *trainable, int64_t *non_trainable)
{
    int64_t t = 0, f = 0;
    for (int i = 0; alive(m) && i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_vars; k++) {
            const tg_tensor *v = m->layers[i]->vars[k];
            *(counts_as_trainable(m, v) ? &t : &f) += tg_size(v);
        }
    if (trainable)
        *trainable = t;
    if (non_trainable)
        *non_trainable = f;
    return t + f;
}

/* L1L2.__call__: l1 * sum(|w|) + l2 * sum(w^2), the terms it has. */
tg_tensor *tg__regularizer_penalty(tg_loc loc, const tg_tensor *w, tg_regularizer r)
{
    tg_tensor *p = NULL;
    if (r.l1 != 0)
        p = tg_mul_at(loc, tg_scalar_like_at(loc, w, r.l1), tg_sum_at(loc, tg_abs_at(loc, w), (tg_reduce_opts){0}));
    if (r.l2 != 0) {
        tg_tensor *q =
            tg_mul_at(loc, tg_scalar_like_at(loc, w, r.l2), tg_sum_at(loc, tg_square_at(loc, w), (tg_reduce_opts){0}));
        p = p ? tg_add_at(loc, p, q) : q;
    }
    return p;
}

tg_tensor *tg_model_regularization_loss_at(tg_loc loc, tg_model *m)
{
    CHECK_MODEL("tg_model_regularization_loss", m, NULL);
    tg_tensor *total = NULL;
    for (int i = 0; i < m->n_layers; i++) {
        const tg_layer *l = m->layers[i];
        for (int k = 0; k < l->n_vars; k++) {
            tg_regularizer r = l->var_reg[k];
            if ((r.l1 == 0 && r.l2 == 0) || !counts_as_trainable(m, l->vars[k])) /* Keras: trainable weights */
                continue;
            tg_tensor *p = tg__regularizer_penalty(loc, l->vars[k], r);
            if (!p)
                return NULL;
            total = total ? tg_add_at(loc, total, p) : p;
        }
    }
    for (int i = 0; i < m->n_call_losses; i++) {
        tg_tensor *p = m->call_losses[i];
        if (p->state != TG_HEADER_ALIVE || p->gen != m->call_loss_gens[i])
            continue; /* its scope has ended */
        if (total && tg_dtype_of(p) != tg_dtype_of(total))
            p = tg_cast_at(loc, p, tg_dtype_of(total));
        total = total ? tg_add_at(loc, total, p) : p;
    }
    return total;
}

bool tg__model_add_call_loss(tg_model *m, tg_loc loc, tg_tensor *loss)
{
    if (m->n_call_losses == m->cap_call_losses) {
        int cap = m->cap_call_losses ? 2 * m->cap_call_losses : 4;
        tg_tensor **t = realloc(m->call_losses, sizeof *t * (size_t)cap);
        if (t)
            m->call_losses = t;
        uint32_t *g = t ? realloc(m->call_loss_gens, sizeof *g * (size_t)cap) : NULL;
        if (!g)
            return tg__failb(loc, "model \"%s\": out of memory keeping an activity penalty", m->name);
        m->call_loss_gens = g;
        m->cap_call_losses = cap;
    }
    m->call_losses[m->n_call_losses] = loss;
    m->call_loss_gens[m->n_call_losses++] = loss->gen;
    return true;
}

void tg__model_clear_call_losses(tg_model *m) { m->n_call_losses = 0; }

/* Keras's model.weights: each layer's in Keras's order, into a list the caller frees;
 * *n of them. NULL with an error when out of memory. */
static tg_tensor **model_weights(tg_loc loc, const tg_model *m, int *n)
{
    int total = 0;
    for (int i = 0; i < m->n_layers; i++)
        total += m->layers[i]->n_vars;
    tg_tensor **w = malloc(sizeof *w * (size_t)(total ? total : 1));
    if (!w)
        return tg__fail(loc, "model \"%s\": out of memory listing its weights", m->name);
    *n = 0;
    for (int i = 0; i < m->n_layers; i++)
        *n += tg__layer_weights(m->layers[i], w + *n);
    return w;
}

int tg_model_get_weights_at(tg_loc loc, tg_model *m, tg_tensor **out, int n)
{
    CHECK_MODEL("tg_model_get_weights", m, -1);
    int nv = 0;
    tg_tensor **vars = model_weights(loc, m, &nv);
    int rc = vars ? tg__weights_get(loc, "tg_model_get_weights", vars, nv, out, n) : -1;
    free(vars);
    return rc;
}

int tg_model_set_weights_at(tg_loc loc, tg_model *m, const tg_tensor *const *weights, int n)
{
    CHECK_MODEL("tg_model_set_weights", m, -1);
    int nv = 0;
    tg_tensor **vars = model_weights(loc, m, &nv);
    char owner[300];
    snprintf(owner, sizeof owner, "model \"%s\"", m->name);
    int rc = vars ? tg__weights_set(loc, "tg_model_set_weights", owner, vars, nv, weights, n) : -1;
    free(vars);
    return rc;
}

int tg_sequential_pop_at(tg_loc loc, tg_model *m)
{
    CHECK_MODEL("tg_sequential_pop", m, -1);
    if (m->functional)
        return tg__failf(loc, "tg_sequential_pop: model \"%s\" is functional: its layers are those of its graph",
                         m->name);
    if (m->n_layers == 0)
        return tg__failf(loc, "tg_sequential_pop: model \"%s\" has no layers to pop", m->name);
    tg_layer *l = m->layers[--m->n_layers];
    l->model = NULL;
    tg__layer_destroy(l);
    if (m->n_layers == 0)
        m->built = false; /* nothing left to say what it takes */
    return 0;
}

int tg_model_set_trainable_at(tg_loc loc, tg_model *m, bool trainable)
{
    CHECK_MODEL("tg_model_set_trainable", m, -1);
    m->trainable = trainable;
    for (int i = 0; i < m->n_layers; i++)
        tg_layer_set_trainable_at(loc, m->layers[i], trainable);
    return 0;
}

void *tg__model_attachment(const tg_model *m) { return alive(m) ? m->train_state : NULL; }

tg__fit_position *tg__model_fit_position(const tg_model *m) { return alive(m) ? &((tg_model *)m)->position : NULL; }

void tg__model_attach(tg_model *m, void *state, void (*free_fn)(void *))
{
    if (m->train_state && m->train_free && m->train_state != state)
        m->train_free(m->train_state);
    m->train_state = state;
    m->train_free = free_fn;
}

void tg_model_free_at(tg_loc loc, tg_model *m)
{
    if (!m || !tg__model_check(loc, "tg_model_free", m) || !tg__model_free_as_layer(loc, m))
        return;
    tg__model_destroy(m);
    *m = (tg_model){.magic = MODEL_DEAD};
    tg__retire(m); /* never reused: a stale handle finds MODEL_DEAD */
}

void tg__model_destroy(tg_model *m)
{
    tg__model_attach(m, NULL, NULL);
    for (int i = 0; i < m->n_layers; i++) {
        m->layers[i]->model = NULL;
        tg__layer_destroy(m->layers[i]);
    }
    for (int k = 0; k < 3; k++)
        free(m->lists[k]);
    free(m->layers);
    free(m->call_losses);
    free(m->call_loss_gens);
    free(m->name);
    for (int i = 0; i < m->n_steps; i++)
        free(m->steps[i].in);
    free(m->steps);
    free(m->input_slots);
    free(m->output_slots);
    free(m->input_layers);
    free(m->output_layers);
    free(m->out_masks);
    free(m->out_gens);
}

/* ---- summary ---------------------------------------------------------------------------------------- */
/* Keras 3 renders its summary with rich: a table of three columns at 45%, 80% and 100%
 * of the line, each padded by one space on both sides, shrunk evenly (rich's
 * ratio_reduce) to fit the line with its four borders, and numbers written with
 * thousands separators. */
#define CELL_MAX   256
#define CELL_LINES 8

/* Python's "{:,}". */
static const char *thousands(int64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v)), k = 0;
    if (v < 0)
        buf[k++] = '-';
    for (int i = 0; i < n && (size_t)k + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = 0;
    return buf;
}

/* Keras's readable_memory_size: "6.00 KB". */
static const char *memory_size(double bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    int u = 0;
    while (u < 5 && bytes / 1024 >= 1) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, "%.2f %s", bytes, units[u]);
    return buf;
}

/* rich's ratio_reduce with equal ratios: takes `excess` columns off the widths, the
 * share of each rounded half to even as Python's round(). */
static void ratio_reduce(int excess, int *w, int n)
{
    int left = excess, ratio = n;
    for (int i = 0; i < n; i++) {
        int d = (int)nearbyint((double)left / ratio);
        if (d > w[i])
            d = w[i];
        w[i] -= d;
        left -= d;
        ratio--;
    }
}

/* Greedy word wrap into lines of at most `width` columns; a word too long for a line is
 * cut with an ellipsis, as rich does. Returns the number of lines (at least one). */
static int wrap(const char *text, int width, char lines[CELL_LINES][CELL_MAX + 8], int *cols)
{
    int n = 1;
    lines[0][0] = 0;
    cols[0] = 0;
    for (const char *p = text; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        int len = (int)strcspn(p, " ");
        if (cols[n - 1] > 0 && cols[n - 1] + 1 + len > width) {
            if (n == CELL_LINES)
                break;
            lines[n][0] = 0;
            cols[n++] = 0;
        }
        char *line = lines[n - 1];
        int *c = &cols[n - 1];
        if (*c > 0) {
            strcat(line, " ");
            (*c)++;
        }
        int take = len <= width ? len : width > 1 ? width - 1 : 0;
        strncat(line, p, (size_t)take);
        if (take < len) {
            strcat(line, "\xe2\x80\xa6"); /* … */
            *c = width;
        } else {
            *c += take;
        }
        p += len;
    }
    return n;
}

#define MAX_COLUMNS 4

static void rule(FILE *out, const char *left, const char *fill, const char *mid, const char *right, const int *w,
                 int ncol)
{
    fputs(left, out);
    for (int c = 0; c < ncol; c++) {
        for (int i = 0; i < w[c]; i++)
            fputs(fill, out);
        fputs(c < ncol - 1 ? mid : right, out);
    }
    fputc('\n', out);
}

static void row(FILE *out, const char *bar, const char *const *cells, const int *w, const bool *right, int ncol)
{
    char lines[MAX_COLUMNS][CELL_LINES][CELL_MAX + 8];
    int cols[MAX_COLUMNS][CELL_LINES], n[MAX_COLUMNS], height = 1;
    for (int c = 0; c < ncol; c++) {
        n[c] = wrap(cells[c], w[c] - 2, lines[c], cols[c]);
        height = n[c] > height ? n[c] : height;
    }
    for (int k = 0; k < height; k++) {
        fputs(bar, out);
        for (int c = 0; c < ncol; c++) {
            const char *t = k < n[c] ? lines[c][k] : "";
            int pad = w[c] - 2 - (k < n[c] ? cols[c][k] : 0);
            fprintf(out, " %*s%s%*s ", right[c] ? pad : 0, "", t, right[c] ? 0 : pad, "");
            fputs(bar, out);
        }
        fputc('\n', out);
    }
}

static int64_t layer_params(const tg_layer *l)
{
    int64_t n = 0;
    for (int k = 0; k < l->n_vars; k++)
        n += tg_size(l->vars[k]);
    return n;
}

static double bytes_of(const tg_model *m, bool trainable)
{
    double bytes = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i]->n_vars; k++) {
            const tg_tensor *v = m->layers[i]->vars[k];
            if (counts_as_trainable(m, v) == trainable)
                bytes += (double)tg_size(v) * (double)tg_dtype_size(tg_dtype_of(v));
        }
    return bytes;
}

/* Keras: min(88, columns - 4) (108 with the "Connected to" column), with Python's
 * shutil.get_terminal_size() columns: $COLUMNS or the terminal's width, and 80 for a
 * stream that is not a terminal. */
static int default_line_length(FILE *out, int keras_default)
{
    int cols = 80;
#if defined(__unix__) || defined(__APPLE__)
    int fd = fileno(out);
    if (fd >= 0 && isatty(fd)) {
        const char *env = getenv("COLUMNS");
        struct winsize ws;
        if (env && atoi(env) > 0)
            cols = atoi(env);
        else if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
            cols = ws.ws_col;
    }
#endif
    return cols - 4 < keras_default ? cols - 4 : keras_default;
}

/* Keras's sequential_like: one node per depth, none with several inputs, no layer called
 * twice. A functional model that is not gets the "Connected to" column. */
static bool sequential_like(const tg_model *m)
{
    if (!m->functional)
        return true;
    for (int i = 0; i < m->n_steps; i++)
        if (m->steps[i].n_in > 1)
            return false;
    for (int i = 0; i < m->n_layers; i++) {
        int calls = 0;
        for (int k = 0; k < m->layers[i]->n_nodes; k++)
            calls += m->layers[i]->nodes[k]->in_model;
        if (calls > 1)
            return false;
    }
    return m->n_inputs == 1 && m->n_outputs == 1 && m->n_steps + 1 == m->n_layers;
}

/* Keras's get_connections: "dense[0][0], input_b[0][0]" (the inbound layer, its node
 * index, the tensor index) for the layer's calls in this model, or "-". */
static const char *connections(const tg_layer *l, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < l->n_nodes; k++) {
        if (!l->nodes[k]->in_model) /* a call outside this model (its inputs may be gone) */
            continue;
        for (int i = 0; i < l->nodes[k]->n_in && at + 1 < size; i++) {
            const tg_node *from = l->nodes[k]->in[i]->node;
            int w = snprintf(buf + at, size - at, "%s%s[%d][0]", at ? ", " : "", from->layer->name, from->index);
            at += w > 0 ? (size_t)w : 0;
        }
    }
    if (!buf[0])
        snprintf(buf, size, "-");
    return buf;
}

int tg_model_summary_at(tg_loc loc, tg_model *m, FILE *out, tg_summary_opts o)
{
    CHECK_MODEL("tg_model_summary", m, -1);
    if (!out)
        return tg__failf(loc, "tg_model_summary: `out` is NULL (pass stdout or an open FILE *)");
    static const double seq_positions[3] = {0.45, 0.80, 1.0}, fn_positions[4] = {0.3, 0.56, 0.74, 1.0};
    bool seq = sequential_like(m);
    int ncol = seq ? 3 : 4;
    const double *positions = seq ? seq_positions : fn_positions;
    int w[MAX_COLUMNS], current = 0, L = o.line_length > 0 ? o.line_length : default_line_length(out, seq ? 88 : 108);
    for (int c = 0; c < ncol; c++) {
        w[c] = (int)(positions[c] * L) - current;
        if (w[c] < 4)
            return tg__failf(loc,
                             "tg_model_summary: insufficient console width to print summary "
                             "(line_length %d)",
                             L);
        current += w[c];
        w[c] += 2; /* padding */
    }
    int excess = -(L - 4 - (ncol - 3));
    for (int c = 0; c < ncol; c++)
        excess += w[c];
    if (excess > 0)
        ratio_reduce(excess, w, ncol);

    fprintf(out, "Model: \"%s\"\n", m->name);
    static const bool right[MAX_COLUMNS] = {false, false, true, false};
    rule(out, "\xe2\x94\x8f", "\xe2\x94\x81", "\xe2\x94\xb3", "\xe2\x94\x93", w, ncol); /* ┏━┳┓ */
    row(out, "\xe2\x94\x83", (const char *const[]){"Layer (type)", "Output Shape", "Param #", "Connected to"}, w, right,
        ncol);                                                                          /* ┃ */
    rule(out, "\xe2\x94\xa1", "\xe2\x94\x81", "\xe2\x95\x87", "\xe2\x94\xa9", w, ncol); /* ┡━╇┩ */
    for (int i = 0; i < m->n_layers; i++) {
        const tg_layer *l = m->layers[i];
        char name[CELL_MAX], shape[CELL_MAX], params[64], links[CELL_MAX];
        snprintf(name, sizeof name, "%s (%s)", l->name, l->kind->class_name);
        if (l->built) {
            tg__batch_shape_str(&l->out_shape, shape, sizeof shape);
            thousands(layer_params(l), params, sizeof params);
        } else {
            snprintf(shape, sizeof shape, "?");
            snprintf(params, sizeof params, "0 (unbuilt)");
        }
        row(out, "\xe2\x94\x82", (const char *const[]){name, shape, params, connections(l, links, sizeof links)}, w,
            right, ncol); /* │ */
        if (i + 1 < m->n_layers)
            rule(out, "\xe2\x94\x9c", "\xe2\x94\x80", "\xe2\x94\xbc", "\xe2\x94\xa4", w, ncol); /* ├─┼┤ */
    }
    rule(out, "\xe2\x94\x94", "\xe2\x94\x80", "\xe2\x94\xb4", "\xe2\x94\x98", w, ncol); /* └─┴┘ */

    int64_t tr, nt, total = tg_model_n_params(m, &tr, &nt);
    double btr = bytes_of(m, true), bnt = bytes_of(m, false);
    char a[64], b[64];
    fprintf(out, " Total params: %s (%s)\n", thousands(total, a, sizeof a), memory_size(btr + bnt, b, sizeof b));
    fprintf(out, " Trainable params: %s (%s)\n", thousands(tr, a, sizeof a), memory_size(btr, b, sizeof b));
    fprintf(out, " Non-trainable params: %s (%s)\n", thousands(nt, a, sizeof a), memory_size(bnt, b, sizeof b));
    return ferror(out) ? tg__failf(loc, "tg_model_summary: writing failed") : 0;
}
