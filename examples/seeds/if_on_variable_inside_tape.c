/* Article "Why does TensorFlow's gradient tape return None for all variables?",
 * example 3: a Python `if x > 0` on a watched variable inside the tape chooses
 * y = x * 2, then z = y + 1. TF 2 returns 2.0, as the article says: the tape records the
 * branch that ran (tf-semantics.md row 29); the comparison itself has no gradient, and
 * nothing needs one. */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x");

    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x);
    tg_tensor *y;
    if (tg_item(tg_greater(x, tg_scalar(0.0))) != 0) /* if x > 0: (bool() of a tensor) */
        y = tg_mul(x, tg_scalar(2.0));
    else
        y = x;
    tg_tensor *z = tg_add(y, tg_scalar(1.0));
    tg_tape_end(tape);

    print_gradient("x", tg_gradient(tape, z, x));

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    return 0;
}
