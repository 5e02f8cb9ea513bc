/* The article says a variable created outside the tape's scope gets None; TF 2 returns 2.0 (tf-semantics.md row 2, section 3a). */

/* Article "Why does TensorFlow's gradient tape return None for all variables?",
 * example 2: x = tf.Variable(1.0) before the tape, y = x * 2, z = y + 1 inside it. The
 * tape watches x when it reads it, so dz/dx = 2. */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x"); /* created outside the tape */

    tg_tape *tape = tg_tape_begin();
    tg_tensor *y = tg_mul(x, tg_scalar(2.0));
    tg_tensor *z = tg_add(y, tg_scalar(1.0));
    tg_tape_end(tape);

    print_gradient("x", tg_gradient(tape, z, x)); /* print(dz_dx) */

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    return 0;
}
