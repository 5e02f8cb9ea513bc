/* The article says multiplying the loss by tf.constant(0.5) makes the gradients fail; TF 2 returns them scaled by 0.5 (tf-semantics.md section 3g). */

/* Article "How to fix TensorFlow custom loss ValueError: No gradients provided?",
 * example 1: loss = reduce_mean(|y - model(x)|) * tf.constant(0.5) with a Dense(1) model,
 * x = [[1], [2]], y = [[2], [4]]. A constant is an ordinary operand: it needs no
 * gradient of its own. The kernel starts within glorot_uniform's +-sqrt(3) and the bias
 * at 0, so y - pred > 0 for both rows and, whatever the seed,
 *   d loss / d kernel = 0.5 * mean(-x) = -0.75,  d loss / d bias = 0.5 * -1 = -0.5,
 * and Adam's first step moves each variable by learning_rate = 0.001 against the sign
 * of its gradient. */
#include "seed_report.h"

static tg_tensor *incorrect_loss(const tg_tensor *y_true, const tg_tensor *y_pred)
{
    tg_tensor *weight = tg_scalar(0.5); /* tf.constant(0.5): not trainable, not needed */
    return tg_mul(tg_mean(tg_abs(tg_sub(y_true, y_pred))), weight);
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
    tg_tensor *loss = incorrect_loss(y, predictions);
    tg_tape_end(tape);

    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[2] = {NULL, NULL};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    for (int i = 0; i < n; i++)
        print_gradient(tg_variable_name(vars[i]), grads[i]);

    double kernel_before = tg_item(vars[0]);
    int rc = report_apply(optimizer, grads, vars, n);
    printf("dense/kernel moved by: %.6g\n", tg_item(vars[0]) - kernel_before);
    printf("dense/bias moved by: %.6g\n", tg_item(vars[1]));

    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_scope_end(scope);
    tg_model_free(model);
    return rc == 0 ? 0 : 1;
}
