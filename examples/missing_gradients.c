/* Every way a gradient goes missing, and what tapegrad says about it.
 *
 * Each case is a few lines of ordinary training code with one mistake in it. The gradient
 * comes back NULL (TF's None), or identically zero, and tg_explain names the cause, the
 * line to change and the fix. docs/missing-gradients.md quotes this program's output.
 *
 *   build/example_missing_gradients                 the cases, one after another
 *   build/example_missing_gradients --dot FILE      also the picture (Graphviz DOT) of the
 *                                                   copy-out case: dot -Tsvg FILE -o p.svg */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <tapegrad.h>

/* Prints text with this file's folder left out of the paths, so that the output reads the
 * same wherever the program was built. */
static void print_without_folder(const char *text)
{
    const char *slash = strrchr(__FILE__, '/');
    size_t n = slash ? (size_t)(slash - __FILE__) + 1 : 0;
    while (text && *text) {
        if (n && !strncmp(text, __FILE__, n))
            text += n;
        else
            putchar(*text++);
    }
}

static void show(const char *title, const tg_tensor *g, const tg_diagnosis *d)
{
    printf("== %s\n", title);
    printf("gradient: %s\n", g ? "present" : tg_has_error() ? "error" : "None");
    printf("cause %d (%s) at line %d: ", d->cause, tg_cause_name(d->cause), d->where.line);
    print_without_folder(d->message);
    printf("\n\n");
    tg_clear_error();
}

static void report(const char *title, const tg_tensor *g, tg_tape *tape, const tg_tensor *target,
                   const tg_tensor *source)
{
    tg_diagnosis d;
    tg_explain(tape, target, source, &d);
    show(title, g, &d);
}

/* ---- helpers of the kind the mistakes hide in ------------------------------------------ */
static tg_tensor *mse(const tg_tensor *pred, const tg_tensor *labels)
{
    return tg_mean(tg_square(tg_sub(pred, labels)));
}

/* A residual block whose output is overwritten by the skip connection. */
static tg_tensor *residual_block(const tg_tensor *kernel, const tg_tensor *x)
{
    tg_tensor *out = tg_relu(tg_matmul(x, kernel));
    out = tg_add(x, tg_relu(x)); /* meant: tg_add(x, out) */
    return out;
}

/* A layer that makes its weights in its call instead of once. */
typedef struct my_dense {
    tg_tensor *kernel;
} my_dense;

static tg_tensor *my_dense_call(my_dense *layer, const tg_tensor *x)
{
    layer->kernel = tg_variable(tg_fill(TG_F32, TG_SHAPE(tg_dim(x, 1), 1), 0.1), .name = "my_dense/kernel");
    return tg_matmul(x, layer->kernel);
}

int main(int argc, char **argv)
{
    const char *dot_path = argc == 3 && !strcmp(argv[1], "--dot") ? argv[2] : NULL;
    if (argc != 1 && !dot_path) {
        fprintf(stderr, "usage: %s [--dot FILE]\n", argv[0]);
        return 2;
    }
    tg_scope *scope = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 1), 0.5, -1.0), .name = "kernel");
    tg_tensor *b = tg_variable(tg_zeros(TG_F32, TG_SHAPE(1)), .name = "bias");
    tg_tensor *x = tg_from_f32(TG_SHAPE(1, 2), 1.0, 2.0);
    tg_tensor *batch = tg_from_f32(TG_SHAPE(2, 2), 1.0, 2.0, -0.5, 1.5);
    tg_tensor *labels = tg_from_f32(TG_SHAPE(2, 1), 1.0, 0.0);
    tg_tensor *loss, *pred, *g;
    tg_tape *t;
    tg_diagnosis d;

    /* ---- 1. never read ------------------------------------------------------------------ */
    tg_tensor *critic = tg_variable(tg_scalar(3.0), .name = "critic/value");
    t = tg_tape_begin();
    loss = tg_square(critic); /* the critic's loss ... */
    tg_tape_end(t);
    g = tg_gradient(t, loss, w); /* ... differentiated for the actor */
    report("never read: the loss does not use the variable", g, t, loss, w);
    tg_tape_free(t);
    tg_variable_free(critic);

    /* ---- 2. not watched ----------------------------------------------------------------- */
    tg_model *net = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = 2, .input_dim = 2),
                                       tg_batch_normalization(), tg_dense(.units = 1));
    int n;
    tg_tensor *const *all = tg_model_variables(net, &n); /* moving statistics included */
    tg_tensor *grads[8] = {0};
    int mm = 0;
    while (mm < n - 1 && !strstr(tg_variable_name(all[mm]), "moving_mean"))
        mm++;
    t = tg_tape_begin();
    loss = mse(tg_model_call(net, batch, .training = true), labels);
    tg_tape_end(t);
    tg_gradients(t, .targets = &loss, .n_targets = 1, .sources = all, .n_sources = n, .out = grads);
    report("not watched: every model variable passed, moving statistics too", grads[mm], t, loss, all[mm]);
    tg_tape_free(t);
    tg_optimizer *opt = tg_sgd(.learning_rate = 0.01);
    tg_apply_gradients(opt, grads, all, n); /* Keras's warning, one line per cause */
    printf("tg_apply_gradients warned: ");
    print_without_folder(tg_last_warning());
    printf("\n\n");
    tg_optimizer_free(opt);
    tg_model_free(net);

    t = tg_tape_begin(.watch_accessed_variables = false);
    loss = tg_sum(tg_matmul(x, w));
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("not watched: watch_accessed_variables = false", g, t, loss, w);
    tg_tape_free(t);

    tg_tensor *image = tg_from_f32(TG_SHAPE(1, 2), 51.0, 204.0);
    t = tg_tape_begin();
    tg_tensor *scaled = tg_div(image, tg_scalar(255.0));
    loss = tg_sum(tg_matmul(scaled, w));
    tg_tape_end(t);
    g = tg_gradient(t, loss, image); /* a saliency map: d loss / d image */
    report("not watched: a plain tensor", g, t, loss, image);
    tg_tape_free(t);

    /* ---- 3. stop_gradient ------------------------------------------------------------------ */
    t = tg_tape_begin();
    pred = tg_stop_gradient(tg_matmul(batch, w));
    loss = mse(pred, labels);
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("stop_gradient on the only path", g, t, loss, w);
    tg_tape_free(t);

    /* ---- 4. an op with no gradient -------------------------------------------------------- */
    t = tg_tape_begin();
    pred = tg_round(tg_sigmoid(tg_matmul(batch, w))); /* hard 0/1 predictions in the loss */
    loss = mse(pred, labels);
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("an op with no gradient", g, t, loss, w);
    tg_tape_free(t);

    /* ---- 5. computed outside the tape ------------------------------------------------------ */
    pred = tg_matmul(batch, w); /* the forward pass, before the tape */
    t = tg_tape_begin();
    loss = mse(pred, labels);
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("computed outside the tape: the forward pass before tg_tape_begin", g, t, loss, w);
    tg_tape_free(t);

    t = tg_tape_begin();
    pred = tg_matmul(batch, w);
    tg_tape_end(t);
    g = tg_gradient(t, mse(pred, labels), w); /* the loss computed in the call */
    tg_explain_missing(w, &d);
    show("computed outside the tape: the loss computed after tg_tape_end", g, &d);
    tg_tape_free(t);

    /* ---- 11. values copied out of the tape -------------------------------------------------- */
    t = tg_tape_begin();
    pred = tg_matmul(batch, w);
    float p[2];
    tg_copy_out(pred, p, sizeof p); /* `pred.numpy()` */
    for (int i = 0; i < 2; i++)
        p[i] = (p[i] - (float)(1 - i)) * (p[i] - (float)(1 - i));
    loss = tg_mean(tg_tensor_from(TG_F32, TG_SHAPE(2), p));
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("copied out: tg_copy_out and a tensor built from the values", g, t, loss, w);
    if (dot_path) {
        FILE *f = fopen(dot_path, "w");
        if (!f || tg_explain_dot(t, loss, w, f) != 0) {
            fprintf(stderr, "cannot write %s: %s\n", dot_path, tg_has_error() ? tg_last_error() : "fopen failed");
            return 1;
        }
        fclose(f);
    }
    tg_tape_free(t);

    t = tg_tape_begin();
    tg_tensor *err = tg_sub(tg_matmul(batch, w), labels);
    double value = tg_item(tg_mean(tg_square(err))); /* `float(loss)` */
    loss = tg_scalar(sqrt(value));                   /* the RMSE, built back */
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("copied out: tg_item and tg_scalar", g, t, loss, w);
    tg_tape_free(t);

    tg_model *reg = tg_sequential_with(tg_sequential_options(.seed = 2), tg_dense(.units = 1, .input_dim = 2));
    tg_tensor *reg_kernel = tg_model_trainable_variables(reg, NULL)[0];
    t = tg_tape_begin();
    pred = tg_predict(reg, batch);
    loss = mse(pred, labels);
    tg_tape_end(t);
    g = tg_gradient(t, loss, reg_kernel);
    report("copied out: tg_predict inside the tape", g, t, loss, reg_kernel);
    tg_tape_free(t);
    tg_model_free(reg);

    /* ---- 12. an assign on the path ---------------------------------------------------------- */
    tg_tensor *state = tg_variable(tg_zeros(TG_F32, TG_SHAPE(1, 1)), .name = "rnn/state", .trainable = false);
    t = tg_tape_begin();
    tg_assign(state, tg_tanh(tg_matmul(x, w))); /* the cell keeps its state ... */
    loss = tg_square(tg_sum(state));            /* ... and the loss reads it back */
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("an assign on the path", g, t, loss, w);
    tg_tape_free(t);
    tg_variable_free(state);

    /* ---- 13. a variable re-created on every call --------------------------------------------- */
    my_dense layer;
    my_dense_call(&layer, x);         /* the first call builds the layer */
    tg_tensor *params = layer.kernel; /* the variables to train, collected once */
    t = tg_tape_begin();
    loss = tg_sum(my_dense_call(&layer, x));
    tg_tape_end(t);
    g = tg_gradient(t, loss, params);
    report("a variable re-created on every call", g, t, loss, params);
    tg_tape_free(t);
    tg_variable_free(params);
    tg_variable_free(layer.kernel);

    /* ---- 6. the tape already used ------------------------------------------------------------ */
    t = tg_tape_begin();
    loss = mse(tg_add(tg_matmul(batch, w), b), labels);
    tg_tape_end(t);
    tg_tensor *dw = tg_gradient(t, loss, w);
    tg_tensor *db = tg_gradient(t, loss, b); /* a second call: refused */
    report("the tape already used", db, t, loss, b);
    tg_tape_free(t);

    /* ---- 7. a stale read --------------------------------------------------------------------- */
    t = tg_tape_begin(.persistent = true);
    loss = mse(tg_matmul(batch, w), labels);
    tg_tape_end(t);
    dw = tg_gradient(t, loss, w);
    tg_assign_sub(w, tg_mul(dw, tg_scalar(0.1))); /* an SGD step ... */
    g = tg_gradient(t, loss, w);                  /* ... and the same tape asked again */
    report("a stale read: the variable assigned after the tape read it", g, t, loss, w);
    tg_tape_free(t);

    /* ---- 8. integer dtypes --------------------------------------------------------------------- */
    tg_model *text = tg_sequential_with(tg_sequential_options(.seed = 3),
                                        tg_embedding(.input_dim = 10, .output_dim = 4, .input_length = 3), tg_flatten(),
                                        tg_dense(.units = 1));
    tg_tensor *ids = tg_from_i32(TG_SHAPE(1, 3), 1, 4, 7);
    t = tg_tape_begin();
    tg_watch(t, ids); /* which word matters? */
    loss = tg_sum(tg_model_call(text, ids));
    tg_tape_end(t);
    g = tg_gradient(t, loss, ids);
    report("integer ids into an embedding", g, t, loss, ids);
    tg_tape_free(t);
    tg_model_free(text);

    tg_tensor *classifier = tg_variable(tg_fill(TG_F32, TG_SHAPE(2, 3), 0.25), .name = "classifier/kernel");
    t = tg_tape_begin();
    tg_tensor *predicted_class = tg_argmax(tg_matmul(x, classifier), 1);
    tg_tape_end(t);
    g = tg_gradient(t, predicted_class, classifier); /* NULL, and no error */
    report("an integer target: argmax", g, t, predicted_class, classifier);
    tg_tape_free(t);
    tg_variable_free(classifier);

    /* ---- the target is the variable itself ------------------------------------------------------ */
    tg_tensor *v0 = tg_variable(tg_scalar(2.0), .name = "v0"), *v1 = tg_variable(tg_scalar(2.0), .name = "v1");
    double x0 = 1.0;
    t = tg_tape_begin();
    tg_tensor *result = x0 > 0.0 ? v0 : tg_square(v1);
    tg_tape_end(t);
    g = tg_gradient(t, result, v0); /* 1, as in TF */
    report("the target is the variable itself", g, t, result, v0);
    tg_tape_free(t);
    tg_variable_free(v0);
    tg_variable_free(v1);

    /* ---- 9. identically zero -------------------------------------------------------------------- */
    tg_tensor *hidden = tg_variable(tg_fill(TG_F32, TG_SHAPE(2, 4), -1.0), .name = "hidden/kernel");
    tg_tensor *positive = tg_abs(batch);
    t = tg_tape_begin();
    tg_tensor *h = tg_relu(tg_matmul(positive, hidden)); /* every unit negative: dead */
    loss = mse(tg_sum(h, .axes = TG_AXES(1), .keepdims = true), labels);
    tg_tape_end(t);
    g = tg_gradient(t, loss, hidden);
    report("identically zero: dead ReLUs", g, t, loss, hidden);
    tg_tape_free(t);
    tg_variable_free(hidden);

    t = tg_tape_begin();
    pred = tg_matmul(batch, w);
    loss = tg_sum(tg_sub(pred, tg_mean(pred))); /* centred predictions, summed */
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("identically zero: contributions that cancel", g, t, loss, w);
    tg_tape_free(t);

    /* ---- 10. unconnected -------------------------------------------------------------------------- */
    tg_tensor *block = tg_variable(tg_fill(TG_F32, TG_SHAPE(2, 2), 0.2), .name = "block/kernel");
    t = tg_tape_begin();
    loss = mse(tg_matmul(residual_block(block, batch), w), labels);
    tg_tape_end(t);
    g = tg_gradient(t, loss, block);
    report("unconnected: a layer's output overwritten", g, t, loss, block);
    tg_tape_free(t);
    tg_variable_free(block);

    t = tg_tape_begin();
    pred = tg_matmul(batch, w);
    loss = tg_mean(tg_square(tg_sub(labels, labels))); /* meant: tg_sub(pred, labels) */
    tg_tape_end(t);
    g = tg_gradient(t, loss, w);
    report("unconnected: a loss from the labels alone", g, t, loss, w);
    tg_tape_free(t);

    tg_variable_free(w);
    tg_variable_free(b);
    tg_scope_end(scope);
    return 0;
}
