/* The article says loss = reduce_sum(predictions - labels) may not be differentiable; TF 2 returns its gradients: the inputs summed over the batch for the kernel, the batch size for the bias (tf-semantics.md rows 19-20). */

/* Article "Why is my custom `train_step` function causing a ValueError?", example 2: a
 * Dense(10) model and loss = tf.reduce_sum(predictions - labels). It is a poor loss (it
 * is minimised by making every prediction -infinity), but the gradients exist and do
 * not depend on the weights: with images [[1, 2], [3, 4], [5, 6]],
 *   d loss / d kernel = [[9 x 10], [12 x 10]],  d loss / d bias = [3 x 10]. */
#include "seed_report.h"

enum { CLASSES = 10 };

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *images = tg_from_f32(TG_SHAPE(3, 2), 1, 2, 3, 4, 5, 6); /* ... training data ... */
    tg_tensor *labels = tg_one_hot(tg_from_i32(TG_SHAPE(3), 0, 4, 9), CLASSES);

    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = CLASSES));
    tg_optimizer *optimizer = tg_adam();

    tg_tape *tape = tg_tape_begin();
    tg_tensor *predictions = tg_model_call(model, images);
    tg_tensor *loss = tg_sum(tg_sub(predictions, labels));
    tg_tape_end(tape);

    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[2] = {NULL, NULL};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    for (int i = 0; i < n; i++)
        print_gradient(tg_variable_name(vars[i]), grads[i]);
    int rc = report_apply(optimizer, grads, vars, n);

    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_scope_end(scope);
    tg_model_free(model);
    return rc == 0 ? 0 : 1;
}
