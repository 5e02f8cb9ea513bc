/* The article says apply_gradients must be called inside the GradientTape block; TF 2 (and Keras's own train_step) calls it after the block, and it works (tf-semantics.md row K6, section 3d). */

/* Article "Why is my custom `train_step` function causing a ValueError?", example 1:
 * a Dense(10) model, Adam, predictions and categorical_crossentropy inside the tape,
 * tape.gradient and apply_gradients after it. Only the forward pass and the loss have to
 * be recorded; the update does not. Every step gets a gradient for both variables and
 * updates them.
 *
 * The outputs are linear (no softmax), so Keras's categorical_crossentropy normalises
 * them by their sum and clips them to [1e-7, 1 - 1e-7] before the log. The program
 * checks the tape's gradients against that formula, by hand in double:
 *   d loss / d o_j = 1 / sum(o) - [j = c] / o_c   where p_c = o_c / sum(o) is inside the clip, else 0,
 * summed over the batch (the loss has one value per sample). */
#include <math.h>

#include "seed_report.h"

enum { B = 8, FEATURES = 4, CLASSES = 10, STEPS = 3 };

/* Largest difference between (kernel, bias) gradients and Keras's formula for a batch,
 * relative to the largest expected value. */
static double cce_gradient_error(const tg_tensor *images, const tg_tensor *labels, const tg_tensor *kernel,
                                 const tg_tensor *bias, const tg_tensor *g_kernel, const tg_tensor *g_bias)
{
    double x[B * FEATURES], y[B * CLASSES], w[FEATURES * CLASSES], b[CLASSES];
    double got[(FEATURES + 1) * CLASSES], expect[(FEATURES + 1) * CLASSES] = {0};
    if (tg_copy_out_f64(images, x, B * FEATURES) || tg_copy_out_f64(labels, y, B * CLASSES) ||
        tg_copy_out_f64(kernel, w, FEATURES * CLASSES) || tg_copy_out_f64(bias, b, CLASSES) ||
        tg_copy_out_f64(g_kernel, got, FEATURES * CLASSES) ||
        tg_copy_out_f64(g_bias, got + FEATURES * CLASSES, CLASSES))
        return INFINITY;
    for (int i = 0; i < B; i++) {
        double o[CLASSES], s = 0, d[CLASSES];
        int c = 0;
        for (int j = 0; j < CLASSES; j++) {
            o[j] = b[j];
            for (int k = 0; k < FEATURES; k++)
                o[j] += x[i * FEATURES + k] * w[k * CLASSES + j];
            s += o[j];
            if (y[i * CLASSES + j] == 1)
                c = j;
        }
        double p = o[c] / s;
        bool inside = p >= 1e-7 && p <= 1 - 1e-7;
        for (int j = 0; j < CLASSES; j++)
            d[j] = inside ? 1 / s - (j == c) / o[c] : 0;
        for (int j = 0; j < CLASSES; j++) {
            for (int k = 0; k < FEATURES; k++)
                expect[k * CLASSES + j] += x[i * FEATURES + k] * d[j];
            expect[FEATURES * CLASSES + j] += d[j];
        }
    }
    double err = 0, scale = 1e-12;
    for (int k = 0; k < (FEATURES + 1) * CLASSES; k++) {
        err = fmax(err, fabs(got[k] - expect[k]));
        scale = fmax(scale, fabs(expect[k]));
    }
    return err / scale;
}

typedef struct step_result {
    bool present, applied;
    double error;
} step_result;

static step_result train_step(tg_model *model, tg_optimizer *optimizer, const tg_tensor *images,
                              const tg_tensor *labels)
{
    step_result r = {0};
    int n;
    tg_tape *tape = tg_tape_begin();
    tg_tensor *predictions = tg_model_call(model, images);
    tg_tensor *loss = tg_categorical_crossentropy(labels, predictions);
    tg_tape_end(tape); /* end of the `with` block */

    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[2] = {NULL, NULL};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    r.present = grads[0] && grads[1];
    r.error = r.present ? cce_gradient_error(images, labels, vars[0], vars[1], grads[0], grads[1]) : INFINITY;
    r.applied = tg_apply_gradients(optimizer, grads, vars, n) == 0; /* after the block: fine */
    if (!r.applied) {
        printf("apply_gradients: error\n%s\n", tg_last_error());
        tg_clear_error();
    }
    tg_tape_free(tape);
    return r;
}

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(5);
    tg_tensor *images = tg_random_uniform(rng, TG_F32, TG_SHAPE(B, FEATURES)); /* ... training data ... */
    int32_t classes[B];
    for (int i = 0; i < B; i++)
        classes[i] = (int32_t)(tg_rng_next(rng) % CLASSES);
    tg_tensor *labels = tg_one_hot(tg_tensor_from(TG_I32, TG_SHAPE(B), classes), CLASSES);

    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = CLASSES));
    tg_optimizer *optimizer = tg_adam();

    bool present = true, applied = true;
    double worst = 0;
    for (int step = 0; step < STEPS; step++) { /* ... training loop ... */
        tg_scope *s = tg_scope_begin();
        step_result r = train_step(model, optimizer, images, labels);
        present = present && r.present;
        applied = applied && r.applied;
        worst = fmax(worst, r.error);
        tg_scope_end(s);
    }
    printf("gradients present in every step: %s\n", present ? "yes" : "no");
    printf("gradients match Keras's categorical_crossentropy in every step: %s\n", worst < 1e-3 ? "yes" : "no");
    printf("apply_gradients after the block: %s\n", applied ? "ok" : "error");
    printf("optimizer iterations: %lld\n", (long long)tg_optimizer_iterations(optimizer));

    tg_optimizer_free(optimizer);
    tg_rng_free(rng);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
