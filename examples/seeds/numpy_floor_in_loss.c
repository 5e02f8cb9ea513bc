/* The article says np.floor in the loss ends in "No gradients provided"; TF 2 raises earlier, in tape.gradient, whose target is then a NumPy number, and a tensor rebuilt from that number gives None (tf-semantics.md row 27, section 3h). */

/* Article "How to fix TensorFlow custom loss ValueError: No gradients provided?",
 * example 2: loss = np.floor(reduce_mean(|y - model(x)|)). np.floor leaves TensorFlow:
 * it turns the tensor into a NumPy number, which no tape can follow. Leaving tapegrad
 * in C means copying the value out (tg_copy_out or tg_item) and building a new tensor
 * from the number, which is what this program does; like TF's tensor converted back from NumPy,
 * it is a constant, every gradient is None and apply_gradients refuses. tapegrad names
 * the line that built the tensor from raw data (cause outside_tape). */
#include <math.h>

#include "seed_report.h"

static tg_tensor *non_differentiable_loss(const tg_tensor *y_true, const tg_tensor *y_pred)
{
    float value; /* np.floor first turns the tensor into a NumPy value */
    tg_copy_out(tg_mean(tg_abs(tg_sub(y_true, y_pred))), &value, sizeof value);
    value = floorf(value);
    return tg_tensor_from(TG_F32, TG_SCALAR_SHAPE, &value); /* a new tensor from the number: a constant */
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
    tg_tensor *loss = non_differentiable_loss(y, predictions);
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
