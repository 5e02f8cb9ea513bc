/* The article says the second gradient call throws after x.assign_sub; TF 2 returns the stale gradient 2.0 (tf-semantics.md row 15, section 3c). */

/* Article "Why does my TensorFlow Python code report 'No gradients provided for any
 * variable'?", example 3: a persistent tape records y = x * x at x = 1, x is updated with
 * assign_sub(0.1 * grad1), and the gradient is asked again. TF keeps the values it
 * recorded and has no version check, so the second call silently differentiates at the
 * old value: 2, not 2 * 0.8. tapegrad returns the same value, warns, and tg_explain
 * names the assign (cause stale_read). */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x");

    tg_tape *tape = tg_tape_begin(.persistent = true);
    tg_tensor *y = tg_mul(x, x);
    tg_tensor *loss = y;
    tg_tape_end(tape);

    tg_tensor *grad1 = tg_gradient(tape, loss, x);
    printf("first call: ");
    print_gradient("x", grad1);
    tg_assign_sub(x, tg_mul(tg_scalar(0.1), grad1)); /* x.assign_sub(0.1 * grad1) */
    printf("x: %.6g\n", tg_item(x));

    tg_tensor *grad2 = tg_gradient(tape, loss, x); /* no error: the recorded value */
    printf("second call: ");
    print_gradient("x", grad2);
    print_cause(tape, loss, x, "x");

    tg_tape_free(tape); /* del tape */
    tg_scope_end(scope);
    tg_variable_free(x);
    return grad2 ? 0 : 1;
}
