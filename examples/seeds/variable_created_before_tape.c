/* The article says a variable created before the tape gets None; TF 2 returns 2.0 (tf-semantics.md row 2, section 3a). */

/* Article "Why does my TensorFlow Python code report 'No gradients provided for any
 * variable'?", example 2: x = tf.Variable(1.0) before `with tf.GradientTape()`, then
 * y = x * x. A trainable variable is watched when the tape reads it, wherever it was
 * created, so the gradient is 2 and the commented-out SGD step would work. */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x"); /* created before the tape */

    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_mul(x, x);
    tg_tensor *loss = y;
    tg_tape_end(tape);

    tg_tensor *grad = tg_gradient(tape, loss, x);
    print_gradient("x", grad); /* print(grad): tf.Tensor(2.0, ...) */

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    return 0;
}
