/* The article says variables are not watched without tape.watch, so both gradients are None; TF 2 returns 2.0 and 1.0 (tf-semantics.md row 1, section 3b). */

/* Article "Why does TensorFlow's gradient tape return None for all variables?",
 * example 1: x = tf.Variable(1.0), y = tf.Variable(2.0), z = x * y inside the tape,
 * with no tape.watch. Trainable variables are watched automatically when the tape reads
 * them (watch_accessed_variables=True is the default): dz/dx = y = 2, dz/dy = x = 1. */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x");
    tg_tensor *y = tg_variable(tg_scalar(2.0), .name = "y");

    tg_tape *tape = tg_tape_begin();
    tg_tensor *z = tg_mul(x, y);
    tg_tape_end(tape);

    tg_tensor *grads[2]; /* dz_dx, dz_dy = tape.gradient(z, [x, y]) */
    tg_gradients(tape, .targets = &z, .n_targets = 1, .sources = (tg_tensor *[]){x, y}, .n_sources = 2, .out = grads);
    print_gradient("x", grads[0]);
    print_gradient("y", grads[1]);

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    tg_variable_free(y);
    return 0;
}
