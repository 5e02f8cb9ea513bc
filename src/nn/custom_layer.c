/* Layers written by users (Keras's subclassed Layer), Lambda, Masking, the class registry
 * that model files rebuild custom layers through, and models used as layers.
 *
 * A custom class gets a tg_layer_kind of its own, made on its first layer and kept for
 * the process (the summary prints its class name); the layer keeps the class, the user's
 * state and whether its build is running (add_weight is refused outside it) in `kept`. */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>

#include "tapegrad/layer.h"
#include "layer_impl.h"

typedef struct custom {
    const tg_layer_class *cls;
    void *state;
    bool building;
    /* Lambda's */
    tg_lambda_fn fn;
    tg_lambda_opts lambda;
} custom;

static bool is_custom(const tg_layer *l);
static custom *custom_of(const tg_layer *l) { return is_custom(l) ? l->kept : NULL; }

static void custom_free(void *p)
{
    custom *c = p;
    if (c && c->cls && c->cls->free_state)
        c->cls->free_state(c->state);
    free(c);
}

/* ---- the hooks every custom class shares ---------------------------------------------------- */
/* The output shape from a call on one zero example, recorded by no tape (Keras traces
 * compute_output_spec symbolically). */
static bool traced_shape(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    tg_shape batch = {.rank = in->rank + 1, .dims = {1}};
    for (int i = 0; i < in->rank; i++)
        batch.dims[i + 1] = in->dims[i];
    tg_context *ctx = tg__ctx();
    int recording = ctx->n_recording;
    ctx->n_recording = 0;
    tg_scope *s = tg_scope_begin_at(loc);
    tg_tensor *x = s ? tg_fill_at(loc, l->dtype, batch, 0.0) : NULL;
    tg_tensor *y = x ? l->kind->call_mask(l, loc, x, NULL, false) : NULL;
    bool ok = y && tg_rank(y) >= 1;
    if (ok) {
        tg_shape ys = tg_shape_of(y);
        *out = (tg_shape){.rank = ys.rank - 1};
        for (int i = 1; i < ys.rank; i++)
            out->dims[i - 1] = ys.dims[i];
    } else if (y) {
        tg__fail(loc, "layer \"%s\" (%s): its call gave a scalar; a layer's output keeps the batch axis", l->name,
                 l->kind->class_name);
    }
    if (s)
        tg_scope_end_at(loc, s);
    ctx->n_recording = recording;
    return ok;
}

static bool failed_callback(tg_loc loc, const tg_layer *l, const char *what)
{
    if (!tg_has_error())
        tg__fail(loc, "layer \"%s\" (%s): its %s failed (returned an error without a message)", l->name,
                 l->kind->class_name, what);
    return false;
}

static bool custom_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    custom *c = l->kept;
    const tg_layer_class *cls = c->cls;
    if (cls && cls->build) {
        c->building = true;
        int rc = cls->build(l, *in);
        c->building = false;
        if (rc != 0)
            return failed_callback(loc, l, "build");
    }
    if (cls && cls->compute_output_shape)
        return cls->compute_output_shape(l, *in, out) == 0 || failed_callback(loc, l, "compute_output_shape");
    if (!cls && c->lambda.output_shape)
        return c->lambda.output_shape(*in, out, c->lambda.user) == 0 || failed_callback(loc, l, "output_shape");
    return traced_shape(l, loc, in, out);
}

static tg_tensor *custom_call(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    custom *c = l->kept;
    tg_tensor *y = c->cls ? c->cls->call(l, x, training, mask) : c->fn(x, c->lambda.user);
    if (!y)
        failed_callback(loc, l, "call");
    return y;
}

static tg_tensor *custom_compute_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    custom *c = l->kept;
    if (c->cls && c->cls->compute_mask)
        return c->cls->compute_mask(l, x, mask);
    if (!c->cls) /* Keras's Lambda: its mask function, or no mask */
        return c->lambda.mask ? c->lambda.mask(x, mask, c->lambda.user) : NULL;
    if (c->cls->supports_masking)
        return (tg_tensor *)mask;
    if (mask && !l->mask_warned && (l->mask_warned = true))
        tg__warn(loc,
                 "Layer '%s' (of type %s) was passed an input with a mask attached to it. However, this layer "
                 "does not support masking and will therefore destroy the mask information. Downstream layers "
                 "will not see the mask.",
                 l->name, l->kind->class_name);
    return NULL;
}

/* ---- kinds of the classes ------------------------------------------------------------------------ */
typedef struct class_kind {
    const tg_layer_class *cls;
    tg_layer_kind kind;
    char *base_name;
    bool registered;
    struct class_kind *next;
} class_kind;

static pthread_mutex_t classes_lock = PTHREAD_MUTEX_INITIALIZER;
static class_kind *classes; /* kept for the process: layers point at their kinds */

static const tg_layer_kind lambda_kind = {.base_name = "lambda",
                                          .class_name = "Lambda",
                                          .autocast = true,
                                          .build = custom_build,
                                          .call_mask = custom_call,
                                          .compute_mask = custom_compute_mask};

static bool is_custom(const tg_layer *l) { return l && (l->kind == &lambda_kind || l->kind->build == custom_build); }

/* "MyDense" -> "my_dense", as Keras's to_snake_case. */
static char *snake_case(const char *name)
{
    size_t n = strlen(name);
    char *s = malloc(2 * n + 1), *p = s;
    for (size_t i = 0; s && i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (isupper(ch) && i > 0 && !isupper((unsigned char)name[i - 1]))
            *p++ = '_';
        *p++ = (char)tolower(ch);
    }
    if (p)
        *p = 0;
    return s;
}

static class_kind *find_locked(const tg_layer_class *cls)
{
    for (class_kind *k = classes; k; k = k->next)
        if (k->cls == cls)
            return k;
    return NULL;
}

static const tg_layer_kind *kind_for(tg_loc loc, const tg_layer_class *cls, bool registering)
{
    pthread_mutex_lock(&classes_lock);
    class_kind *k = find_locked(cls);
    if (!k) {
        k = calloc(1, sizeof *k);
        char *base = k ? (cls->base_name ? strdup(cls->base_name) : snake_case(cls->class_name)) : NULL;
        if (!base) {
            free(k);
            pthread_mutex_unlock(&classes_lock);
            return tg__fail(loc, "tg_custom_layer: out of memory");
        }
        *k = (class_kind){.cls = cls, .base_name = base, .next = classes};
        k->kind = (tg_layer_kind){.base_name = base,
                                  .class_name = cls->class_name,
                                  .autocast = true,
                                  .build = custom_build,
                                  .call_mask = custom_call,
                                  .compute_mask = custom_compute_mask};
        classes = k;
    }
    k->registered |= registering;
    pthread_mutex_unlock(&classes_lock);
    return &k->kind;
}

static bool check_class(tg_loc loc, const char *func, const tg_layer_class *cls)
{
    if (!cls)
        return tg__null_arg(loc, func, "class"), false;
    if (!cls->class_name || !cls->class_name[0])
        return tg__failb(loc, "%s: the class has no class_name (the name the summary and model files use)", func);
    if (!cls->call)
        return tg__failb(loc, "%s: class \"%s\" has no call", func, cls->class_name);
    return true;
}

tg_layer *tg_custom_layer_at(tg_loc loc, const tg_layer_class *cls, tg_custom_layer_opts o)
{
    if (!check_class(loc, "tg_custom_layer", cls))
        return NULL;
    const tg_layer_kind *kind = kind_for(loc, cls, false);
    custom *c = kind ? calloc(1, sizeof *c) : NULL;
    tg_layer *l = c ? tg__layer_new(loc, kind, o.name, o.dtype, o.seed, o.input_shape) : NULL;
    if (!l) {
        free(c);
        return kind && !c ? tg__fail(loc, "tg_custom_layer: out of memory") : NULL;
    }
    *c = (custom){.cls = cls, .state = o.state};
    l->kept = c;
    l->kept_free = custom_free;
    return l;
}

void *tg_layer_state(const tg_layer *l)
{
    custom *c = custom_of(l);
    return c ? c->state : NULL;
}

int tg_layer_set_state(tg_layer *l, void *state)
{
    custom *c = custom_of(l);
    if (!c || !c->cls)
        return tg__failf((tg_loc){0}, "tg_layer_set_state: layer \"%s\" is not a custom layer", l ? l->name : "(null)");
    c->state = state;
    return 0;
}

tg_dtype tg_layer_dtype(const tg_layer *l) { return l ? l->dtype : TG_DTYPE_INHERIT; }

tg_tensor *tg_layer_add_weight_at(tg_loc loc, tg_layer *l, const char *name, tg_shape shape, tg_add_weight_opts o)
{
    if (!l)
        return tg__null_arg(loc, "tg_layer_add_weight", "layer"), NULL;
    custom *c = custom_of(l);
    if (!c || !c->building)
        return tg__fail(loc,
                        "tg_layer_add_weight: layer \"%s\" (%s) is not being built; weights are added in the "
                        "layer's build callback, as Keras's add_weight in build()",
                        l->name, l->kind->class_name);
    if (!name || !name[0])
        return tg__fail(loc, "tg_layer_add_weight: layer \"%s\": give the weight a name", l->name);
    for (int i = 0; i < l->n_vars; i++) {
        const char *have = strrchr(tg_variable_name(l->vars[i]), '/');
        if (have && strcmp(have + 1, name) == 0)
            return tg__fail(loc, "tg_layer_add_weight: layer \"%s\" already has a weight named \"%s\"", l->name, name);
    }
    bool dims_ok = shape.rank >= 0 && shape.rank <= TG_MAX_RANK;
    for (int i = 0; dims_ok && i < shape.rank; i++)
        dims_ok = shape.dims[i] >= 0;
    if (!dims_ok)
        return tg__fail(loc,
                        "tg_layer_add_weight: weight \"%s\" of layer \"%s\" has a rank out of [0, %d] or a "
                        "negative dim",
                        name, l->name, TG_MAX_RANK);
    tg_initializer init = o.initializer.kind ? o.initializer : tg_init_glorot_uniform();
    tg_tensor *v = tg__layer_add_variable(l, loc, name, init, shape, o.trainable);
    if (!v)
        return NULL;
    l->var_reg[l->n_vars - 1] = o.regularizer;
    return tg__variable_set_constraint(loc, v, o.constraint) == 0 ? v : NULL;
}

int tg_custom_layer_config(const tg_layer *l, char *json, size_t size)
{
    custom *c = custom_of(l);
    if (!c || !c->cls)
        return tg__failf((tg_loc){0}, "tg_custom_layer_config: layer \"%s\" is not a custom layer",
                         l ? l->name : "(null)");
    if (c->cls->get_config)
        return c->cls->get_config(l, json, size);
    return snprintf(json, size, "{}");
}

int tg_register_layer_class_at(tg_loc loc, const tg_layer_class *cls)
{
    if (!check_class(loc, "tg_register_layer_class", cls))
        return -1;
    pthread_mutex_lock(&classes_lock);
    bool clash = false;
    for (class_kind *k = classes; k; k = k->next)
        clash |= k->registered && k->cls != cls && strcmp(k->cls->class_name, cls->class_name) == 0;
    pthread_mutex_unlock(&classes_lock);
    if (clash)
        return tg__failf(loc,
                         "tg_register_layer_class: another class is already registered as \"%s\"; class names "
                         "name one class each",
                         cls->class_name);
    return kind_for(loc, cls, true) ? 0 : -1;
}

const tg_layer_class *tg_find_layer_class(const char *class_name)
{
    const tg_layer_class *found = NULL;
    pthread_mutex_lock(&classes_lock);
    for (class_kind *k = classes; class_name && k && !found; k = k->next)
        if (k->registered && strcmp(k->cls->class_name, class_name) == 0)
            found = k->cls;
    pthread_mutex_unlock(&classes_lock);
    return found;
}

tg_layer *tg_custom_layer_from_config_at(tg_loc loc, const char *class_name, const char *name, const char *json)
{
    const tg_layer_class *cls = tg_find_layer_class(class_name);
    if (!cls)
        return tg__fail(loc,
                        "Unknown layer: '%s'. Please ensure you are using a registered custom layer: register its "
                        "class with tg_register_layer_class before reading the file",
                        class_name ? class_name : "(null)");
    tg_layer *l = tg_custom_layer_at(loc, cls, (tg_custom_layer_opts){.name = name, .dtype = TG_DTYPE_INHERIT});
    if (l && cls->from_config && cls->from_config(l, json ? json : "{}") != 0) {
        failed_callback(loc, l, "from_config");
        tg__layer_destroy(l);
        return NULL;
    }
    return l;
}

/* ---- Lambda ------------------------------------------------------------------------------------- */
tg_layer *tg_lambda_at(tg_loc loc, tg_lambda_fn fn, tg_lambda_opts o)
{
    if (!fn)
        return tg__fail(loc, "tg_lambda: the function is NULL");
    custom *c = calloc(1, sizeof *c);
    tg_layer *l = c ? tg__layer_new(loc, &lambda_kind, o.name, o.dtype, o.seed, o.input_shape) : NULL;
    if (!l) {
        free(c);
        return c ? NULL : tg__fail(loc, "tg_lambda: out of memory");
    }
    *c = (custom){.fn = fn, .lambda = o};
    l->kept = c;
    l->kept_free = custom_free;
    return l;
}

/* ---- Masking ------------------------------------------------------------------------------------- */
/* any(x != mask_value) over the features, (batch, steps): Keras's compute_mask. */
static tg_tensor *masking_mask(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask)
{
    (void)mask;
    tg_tensor *v = tg_scalar_like_at(loc, x, ((const tg_masking_opts *)l->kept)->mask_value);
    return tg_reduce_any_at(loc, tg_not_equal_at(loc, x, v), (tg_reduce_opts){.axes = TG_AXES(-1)});
}

static tg_tensor *masking_call(tg_layer *l, tg_loc loc, const tg_tensor *x, const tg_tensor *mask, bool training)
{
    (void)training;
    tg_tensor *keep = tg_expand_dims_at(loc, masking_mask(l, loc, x, mask), -1);
    return tg_where_at(loc, keep, x, tg_scalar_like_at(loc, x, 0.0));
}

static bool masking_build(tg_layer *l, tg_loc loc, const tg_shape *in, tg_shape *out)
{
    if (in->rank < 1)
        return tg__failb(loc, "Masking \"%s\": inputs need (batch, steps, ...); one example is a scalar", l->name);
    *out = *in;
    return true;
}

static const tg_layer_kind masking_kind = {.base_name = "masking",
                                           .class_name = "Masking",
                                           .autocast = true,
                                           .build = masking_build,
                                           .call_mask = masking_call,
                                           .compute_mask = masking_mask,
                                           .supports_masking = true};

tg_layer *tg_masking_at(tg_loc loc, tg_masking_opts o)
{
    tg_masking_opts *kept = malloc(sizeof *kept);
    tg_layer *l = kept ? tg__layer_new(loc, &masking_kind, o.name, o.dtype, o.seed, o.input_shape) : NULL;
    if (!l) {
        free(kept);
        return kept ? NULL : tg__fail(loc, "tg_masking: out of memory");
    }
    *kept = o;
    kept->name = NULL;
    l->kept = kept;
    l->kept_free = free;
    return l;
}

/* ---- compute_mask ---------------------------------------------------------------------------------- */
tg_tensor *tg_layer_compute_mask_at(tg_loc loc, tg_layer *l, const tg_tensor *x, const tg_tensor *mask)
{
    if (!l)
        return tg__null_arg(loc, "tg_layer_compute_mask", "layer"), NULL;
    if (!tg__check_input(loc, "tg_layer_compute_mask", x, "x"))
        return NULL;
    const tg_tensor *m = NULL;
    if (!tg__check_mask(loc, l, 0, x, mask, &m))
        return NULL;
    if (l->kind->compute_mask)
        return l->kind->compute_mask(l, loc, x, m);
    return l->kind->supports_masking ? (tg_tensor *)m : NULL;
}
