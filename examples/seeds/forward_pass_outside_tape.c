/* Article "How to fix TensorFlow custom loss ValueError: No gradients provided?",
 * example 3: predictions = model(x) runs before `with tf.GradientTape()`, and only the
 * loss is computed inside it. The article is right: the tape never saw the forward
 * pass, every gradient is None, and apply_gradients raises "No gradients provided for
 * any variable". tapegrad names the model call that ran before the tape (cause
 * outside_tape). */
#include "seed_report.h"

static tg_tensor *outside_tape_loss(const tg_tensor *y_true, const tg_tensor *y_pred)
{
    return tg_mean(tg_abs(tg_sub(y_true, y_pred)));
}

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = 1));
    tg_optimizer *optimizer = tg_adam();

    tg_tensor *x = tg_from_f32(TG_SHAPE(2, 1), 1.0f, 2.0f);
    tg_tensor *y = tg_from_f32(TG_SHAPE(2, 1), 2.0f, 4.0f);

    tg_tensor *predictions = tg_model_call(model, x); /* outside the tape */
    tg_tape *tape = tg_tape_begin();
    tg_tensor *loss = outside_tape_loss(y, predictions);
    tg_tape_end(tape);

    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[2] = {NULL, NULL};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    for (int i = 0; i < n; i++)
        print_gradient(tg_variable_name(vars[i]), grads[i]);
    report_apply(optimizer, grads, vars, n);

    tg_tape_free(tape);
    tg_optimizer_free(optimizer);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
