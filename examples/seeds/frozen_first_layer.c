/* The article says model.layers[0].trainable = False makes fit raise "No gradients provided"; TF 2 trains the other layer and raises nothing (tf-semantics.md row K5, section 3f). */

/* Article "Why did my TensorFlow (Keras) model produce a 'ValueError: No gradients
 * provided for any variable' error?", example 2: Dense(128, relu, input_shape=(10,)),
 * Dense(10, softmax), the first layer frozen, compile(adam, categorical_crossentropy,
 * accuracy), fit(epochs=10). A frozen layer's weights leave model.trainable_variables,
 * so fit differentiates only the second layer's: they change, the first layer's stay
 * exactly as they were, and the loss goes down. */
#include <stdlib.h>
#include <string.h>

#include "seed_report.h"

enum { N = 64, FEATURES = 10, CLASSES = 10 };

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_rng *rng = tg_rng_new(7);
    tg_tensor *x_train = tg_random_normal(rng, TG_F32, TG_SHAPE(N, FEATURES)); /* ... training data ... */
    int32_t classes[N];
    for (int i = 0; i < N; i++)
        classes[i] = (int32_t)(tg_rng_next(rng) % CLASSES);
    tg_tensor *y_train = tg_one_hot(tg_tensor_from(TG_I32, TG_SHAPE(N), classes), CLASSES);

    tg_model *model = tg_sequential_with(tg_sequential_options(.seed = 1),
                                         tg_dense(.units = 128, .activation = TG_RELU, .input_dim = FEATURES),
                                         tg_dense(.units = CLASSES, .activation = TG_SOFTMAX));
    tg_layer_set_trainable(tg_model_layer(model, 0), false); /* model.layers[0].trainable = False */
    tg_compile(model, .optimizer = tg_adam(), .loss = TG_LOSS_CATEGORICAL_CROSSENTROPY,
               .metrics = TG_METRICS(TG_ACCURACY));

    int n_trainable;
    tg_tensor *const *trainable = tg_model_trainable_variables(model, &n_trainable);
    printf("trainable variables:");
    for (int i = 0; i < n_trainable; i++)
        printf(" %s", tg_variable_name(trainable[i]));
    putchar('\n');

    int n;
    tg_tensor *const *all = tg_model_variables(model, &n);
    tg_tensor *vars[4];
    float *before[4];
    for (int i = 0; i < n && i < 4; i++) {
        vars[i] = all[i];
        size_t bytes = (size_t)tg_size(vars[i]) * sizeof(float);
        before[i] = malloc(bytes);
        tg_copy_out(vars[i], before[i], bytes);
    }

    tg_history *history = tg_fit(model, x_train, y_train, .epochs = 10, .seed = 3, .verbose = TG_VERBOSE_SILENT);
    if (history) {
        puts("fit: ok");
    } else {
        printf("fit: error\n%s\n", tg_last_error());
        tg_clear_error();
    }

    for (int i = 0; i < n && i < 4; i++) {
        size_t bytes = (size_t)tg_size(vars[i]) * sizeof(float);
        float *after = malloc(bytes);
        tg_copy_out(vars[i], after, bytes);
        printf("%s changed: %s\n", tg_variable_name(vars[i]), memcmp(before[i], after, bytes) ? "yes" : "no");
        free(after);
        free(before[i]);
    }
    if (history) {
        int epochs;
        const double *loss = tg_history_get(history, "loss", &epochs);
        printf("loss decreased: %s\n", epochs == 10 && loss[9] < loss[0] ? "yes" : "no");
        tg_history_free(history);
    }

    tg_rng_free(rng);
    tg_scope_end(scope);
    tg_model_free(model);
    return 0;
}
