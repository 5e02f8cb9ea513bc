/* Article "Why does TensorFlow's gradient tape return None for all variables?",
 * example 2, the article's fix: x = tf.Variable(1.0) created inside the tape, y = x * 2,
 * z = y + 1. TF 2 returns 2.0, as the article says, but so does the unfixed version
 * (variable_created_outside_tape_scope.c): moving the creation changes nothing. */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();

    tg_tape *tape = tg_tape_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x"); /* created inside the tape */
    tg_tensor *y = tg_mul(x, tg_scalar(2.0));
    tg_tensor *z = tg_add(y, tg_scalar(1.0));
    tg_tape_end(tape);

    print_gradient("x", tg_gradient(tape, z, x));

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    return 0;
}
