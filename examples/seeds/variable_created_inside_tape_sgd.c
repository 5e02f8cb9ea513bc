/* Article "Why does my TensorFlow Python code report 'No gradients provided for any
 * variable'?", example 1: a variable created inside the tape, y = x * x, one SGD step.
 * The article is right here: the gradient is 2, and SGD(learning_rate=0.1) moves x from
 * 1 to 0.8. (Where the variable is created does not matter: see
 * variable_created_before_tape.c.) */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();

    tg_tape *tape = tg_tape_begin();                         /* with tf.GradientTape() as tape: */
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x"); /*     x = tf.Variable(1.0) */
    tg_tensor *y = tg_mul(x, x);                             /*     y = x * x */
    tg_tensor *loss = y;                                     /*     loss = y */
    tg_tape_end(tape);

    tg_tensor *grad = tg_gradient(tape, loss, x); /* grad = tape.gradient(loss, x) */
    print_gradient("x", grad);

    tg_optimizer *opt = tg_sgd(.learning_rate = 0.1); /* tf.keras.optimizers.SGD(learning_rate=0.1) */
    int rc = report_apply(opt, &grad, &x, 1);         /* optimizer.apply_gradients([(grad, x)]) */
    printf("x: %.6g\n", tg_item(x));                  /* print(x.numpy()) */

    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    return rc == 0 ? 0 : 1;
}
