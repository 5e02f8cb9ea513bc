/* The article says tf.floor would fix the np.floor loss; TF 2's tf.floor has no gradient either: None for every variable, then "No gradients provided" (tf-semantics.md row 23, section 3h). */

/* Article "How to fix TensorFlow custom loss ValueError: No gradients provided?",
 * example 2 with the article's suggested tf.floor:
 *   loss = tf.floor(reduce_mean(|y - model(x)|))
 * Floor is registered as not differentiable (its gradient is None, not zeros), so every
 * path from the weights to the loss is cut and apply_gradients raises. tapegrad names
 * the tg_floor line (cause non_differentiable). The np.floor original is
 * numpy_floor_in_loss.c. */
#include "seed_report.h"

static tg_tensor *floor_loss(const tg_tensor *y_true, const tg_tensor *y_pred)
{
    return tg_floor(tg_mean(tg_abs(tg_sub(y_true, y_pred))));
}

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = 1));
    tg_optimizer *optimizer = tg_adam();

    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 1), 1.0f, 2.0f);
    tg_tensor *y = tg_from_f32(TG_SHAPE(2, 1), 2.0f, 4.0f);

    tg_tape *tape = tg_tape_begin();
    tg_tensor *predictions = tg_model_call(model, x);
    tg_tensor *loss = floor_loss(y, predictions);
    tg_tape_end(tape);

    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[2] = {NULL, NULL};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    for (int i = 0; i < n; i++)
        print_gradient(tg_variable_name(vars[i]), grads[i]);
    report_apply(optimizer, grads, vars, n); /* TF: ValueError, nothing updated */

    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
