/* The article says a Python `if` on a tensor in the tape may disrupt gradients; TF 2 records the branch that ran and differentiates the loss it computed (tf-semantics.md row 29, section 3i). */

/* Article "Why is my custom `train_step` function causing a ValueError?", example 3:
 *   loss = categorical_crossentropy(labels, predictions)
 *   if tf.reduce_mean(predictions) > 0.5: loss = loss * 2
 * inside the tape. `if` on a tensor reads its value (bool(tensor)); the comparison has
 * no gradient, and nothing needs one. When the branch runs, the gradients are exactly
 * twice those of the plain loss; when it does not, they are equal. The training loop
 * alternates two batches, x and -x (scaled so that their mean predictions fall on both
 * sides of 0.5), and compares each step's gradients with the plain loss's, taken on a
 * separate tape at the same weights. */
#include <math.h>

#include "seed_report.h"

enum { B = 8, FEATURES = 4, CLASSES = 10, STEPS = 4 };

/* Gradients of the per-sample loss at the current weights; with `with_if`, the article's
 * train_step body. *taken tells whether the branch ran. */
static void loss_gradients(tg_model *model, const tg_tensor *images, const tg_tensor *labels, bool with_if, bool *taken,
                           tg_tensor **grads)
{
    int n;
    tg_tape *tape = tg_tape_begin();
    tg_tensor *predictions = tg_model_call(model, images);
    tg_tensor *loss = tg_categorical_crossentropy(labels, predictions);
    if (with_if) {
        *taken = tg_item(tg_greater(tg_mean(predictions), tg_scalar(0.5))) != 0;
        if (*taken)                              /* if tf.reduce_mean(predictions) > 0.5: */
            loss = tg_mul(loss, tg_scalar(2.0)); /*     loss = loss * 2 */
    }
    tg_tape_end(tape);
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    tg_tape_free(tape);
}

/* The ratio |g| / |g_plain| over every element, or NaN when a gradient is missing. */
static double gradient_ratio(tg_tensor *const *g, tg_tensor *const *plain)
{
    double num = 0, den = 0;
    for (int i = 0; i < 2; i++) {
        if (!g[i] || !plain[i])
            return NAN;
        num += tg_item(tg_sum(tg_abs(g[i])));
        den += tg_item(tg_sum(tg_abs(plain[i])));
    }
    return num / den;
}

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(5);
    tg_tensor *x = tg_random_uniform(rng, TG_F32, TG_SHAPE(B, FEATURES), .maxval = 30.0); /* ... training data ... */
    tg_tensor *batches[2] = {x, tg_neg(x)};
    int32_t classes[B];
    for (int i = 0; i < B; i++)
        classes[i] = (int32_t)(tg_rng_next(rng) % CLASSES);
    tg_tensor *labels = tg_one_hot(tg_tensor_from(TG_I32, TG_SHAPE(B), classes), CLASSES);

    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = CLASSES));
    tg_optimizer *optimizer = tg_adam();

    for (int step = 0; step < STEPS; step++) { /* ... training loop ... */
        tg_scope *s = tg_scope_begin();
        const tg_tensor *images = batches[step % 2];
        tg_tensor *plain[2] = {NULL, NULL}, *grads[2] = {NULL, NULL};
        bool taken = false;
        loss_gradients(model, images, labels, false, NULL, plain);  /* the reference, same weights */
        loss_gradients(model, images, labels, true, &taken, grads); /* train_step */
        printf("step %d: branch %s, gradient ratio: %.6g\n", step + 1, taken ? "taken" : "not taken",
               gradient_ratio(grads, plain));
        int n;
        tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
        if (tg_apply_gradients(optimizer, grads, vars, n) != 0) {
            printf("apply_gradients: error\n%s\n", tg_last_error());
            tg_clear_error();
        }
        tg_scope_end(s);
    }

    tg_optimizer_free(optimizer);
    tg_rng_free(rng);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
