/* Article "Why did my TensorFlow (Keras) model produce a 'ValueError: No gradients
 * provided for any variable' error?", example 3: a custom loop over 10 epochs with
 * Dense(1, input_shape=(10,)), Adam(0.01) and mean_squared_error, the forward pass and
 * the loss inside the tape, apply_gradients after it. The article is right: it trains.
 *
 * mean_squared_error returns one value per sample, and tape.gradient of a vector is
 * the gradient of its sum (tf-semantics.md row 19), so in every epoch
 *   d/d kernel = 2 X^T (X kernel + bias - y),  d/d bias = 2 sum(X kernel + bias - y),
 * which this program checks against values computed by hand in double. */
#include <math.h>

#include "seed_report.h"

enum { N = 32, FEATURES = 10, EPOCHS = 10 };

/* The largest difference between the tape's gradients and 2 X^T r, 2 sum(r), where
 * r = X kernel + bias - y, relative to the largest expected value. */
static double gradient_error(const double *x, const double *y, const double *kernel, double bias,
                             const tg_tensor *g_kernel, const tg_tensor *g_bias)
{
    double expect[FEATURES + 1] = {0}, got[FEATURES + 1];
    for (int i = 0; i < N; i++) {
        double r = bias - y[i];
        for (int k = 0; k < FEATURES; k++)
            r += x[i * FEATURES + k] * kernel[k];
        for (int k = 0; k < FEATURES; k++)
            expect[k] += 2 * r * x[i * FEATURES + k];
        expect[FEATURES] += 2 * r;
    }
    if (tg_copy_out_f64(g_kernel, got, FEATURES) != 0 || tg_copy_out_f64(g_bias, got + FEATURES, 1) != 0)
        return INFINITY;
    double err = 0, scale = 1e-12;
    for (int k = 0; k <= FEATURES; k++) {
        err = fmax(err, fabs(got[k] - expect[k]));
        scale = fmax(scale, fabs(expect[k]));
    }
    return err / scale;
}

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(11);
    tg_tensor *x_train = tg_random_normal(rng, TG_F32, TG_SHAPE(N, FEATURES)); /* ... training data ... */
    tg_tensor *true_w = tg_random_normal(rng, TG_F32, TG_SHAPE(FEATURES, 1));
    tg_tensor *noise = tg_random_normal(rng, TG_F32, TG_SHAPE(N, 1), .stddev = 0.1);
    tg_tensor *y_train = tg_add(tg_matmul(x_train, true_w), noise);
    double x[N * FEATURES], y[N];
    tg_copy_out_f64(x_train, x, N * FEATURES);
    tg_copy_out_f64(y_train, y, N);

    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1), tg_dense(.units = 1, .input_dim = FEATURES));
    tg_optimizer *optimizer = tg_adam(.learning_rate = 0.01);
    int n;
    tg_tensor *const *vars = tg_model_trainable_variables(model, &n); /* kernel, bias */

    bool present = true;
    double worst = 0, first_loss = 0, last_loss = 0;
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        tg_scope *step = tg_scope_begin();
        double kernel[FEATURES], bias;
        tg_copy_out_f64(vars[0], kernel, FEATURES);
        bias = tg_item(vars[1]);

        tg_tape *tape = tg_tape_begin();
        tg_tensor *predictions = tg_model_call(model, x_train);
        tg_tensor *loss = tg_mean_squared_error(y_train, predictions); /* one value per sample */
        tg_tape_end(tape);

        tg_tensor *grads[2] = {NULL, NULL};
        tg_gradients(tape, .targets = &loss, .n_targets = 1, .sources = vars, .n_sources = n, .out = grads);
        present = present && grads[0] && grads[1];
        if (grads[0] && grads[1])
            worst = fmax(worst, gradient_error(x, y, kernel, bias, grads[0], grads[1]));
        if (tg_apply_gradients(optimizer, grads, vars, n) != 0) {
            printf("apply_gradients: error\n%s\n", tg_last_error());
            tg_clear_error();
        }
        last_loss = tg_item(tg_mean(loss));
        if (epoch == 0)
            first_loss = last_loss;
        tg_tape_free(tape);
        tg_scope_end(step);
    }
    printf("gradients present in every epoch: %s\n", present ? "yes" : "no");
    printf("gradients match 2 X^T (X w + b - y) in every epoch: %s\n", present && worst < 1e-4 ? "yes" : "no");
    printf("loss decreased: %s\n", last_loss < first_loss ? "yes" : "no");

    tg_optimizer_free(optimizer);
    tg_rng_free(rng);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
