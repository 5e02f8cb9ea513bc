/* The article says categorical_crossentropy on a Dense(1, sigmoid) output raises "No gradients provided"; TF 2 raises nothing: it trains silently with loss ~1e-7 and zero gradients (tf-semantics.md row K8, section 3e). */

/* Article "Why did my TensorFlow (Keras) model produce a 'ValueError: No gradients
 * provided for any variable' error?", example 1: Dense(128, relu, input_shape=(10,)),
 * Dense(1, sigmoid), compile(optimizer='adam', loss='categorical_crossentropy',
 * metrics=['accuracy']), fit. Keras divides the output by its sum over the last axis,
 * which for one unit is the output itself, so the "probability" is always 1; clipped to
 * 1 - 1e-7 it gives a loss of -log(1 - 1e-7) * y = 1.19e-7 * y per sample, and every
 * gradient is a zero tensor (not None), so nothing raises and nothing learns.
 *
 * tapegrad refuses this compile. The second half computes, on a manual tape, what TF's
 * first training step computes: the loss (5.96e-8 with half the labels 1) and all-zero
 * gradients, explained as cause zero_gradient. */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(42);
    tg_tensor *x_train = tg_random_normal(rng, TG_F32, TG_SHAPE(64, 10)); /* ... training data ... */
    float labels[64];
    for (int i = 0; i < 64; i++)
        labels[i] = (float)(i % 2); /* two classes, half of each */
    tg_tensor *y_train = tg_tensor_from(TG_F32, TG_SHAPE(64, 1), labels);

    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1),
                                         tg_dense(.units = 128, .activation = TG_RELU, .input_dim = 10),
                                         tg_dense(.units = 1, .activation = TG_SIGMOID));
    tg_optimizer *adam = tg_adam();
    if (tg_compile(model, .optimizer = adam, .loss = TG_LOSS_CATEGORICAL_CROSSENTROPY,
                   .metrics = TG_METRICS(TG_ACCURACY)) != 0) {
        printf("compile: refused\n%s\n", tg_last_error());
        tg_clear_error();
        tg_optimizer_free(adam); /* a refused compile leaves the optimizer ours */
    } else {
        puts("compile: ok");
    }
    puts("tf: trains silently, loss ~1e-7, zero gradients");

    /* What TF's fit does on a batch: the same loss on a tape, then the gradients. */
    tg_tape *tape = tg_tape_begin();
    tg_tensor *pred = tg_model_call(model, x_train, .training = true);
    tg_tensor *loss = tg_compute_loss(&(tg_loss){.kind = TG_LOSS_CATEGORICAL_CROSSENTROPY}, y_train, pred, NULL);
    tg_tape_end(tape);
    printf("loss: %.4e\n", tg_item(loss));

    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n);
    tg_tensor *grads[4] = {NULL};
    tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
    for (int i = 0; i < n; i++)
        print_gradient(tg_variable_name(vars[i]), grads[i]);
    print_cause(tape, loss, vars[0], tg_variable_name(vars[0]));

    tg_tape_free(tape);
    tg_rng_free(rng);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
