/* The first example: y = x * x on a GradientTape, dy/dx at x = 3 is 6. */
#include <stdio.h>

#include <tapegrad.h>

int main(void)
{
    tg_scope *scope = tg_scope_begin(); /* frees every temporary at its end */
    tg_tensor *x = tg_variable(tg_scalar(3.0), .name = "x");

    tg_tape *tape = tg_tape_begin(); /* with tf.GradientTape() as tape: */
    tg_tensor *y = tg_mul(x, x);     /*     y = x * x */
    tg_tape_end(tape);

    tg_tensor *dy_dx = tg_gradient(tape, y, x); /* NULL when y does not depend on x */
    if (!dy_dx) {
        fprintf(stderr, "no gradient: %s\n", tg_has_error() ? tg_last_error() : "y does not depend on x");
        return 1;
    }
    printf("y     = ");
    tg_print(y);
    printf("dy/dx = ");
    tg_print(dy_dx);

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    return 0;
}
