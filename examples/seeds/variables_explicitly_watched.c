/* Article "Why does TensorFlow's gradient tape return None for all variables?",
 * example 1, the article's fix: the same z = x * y with tape.watch(x) and tape.watch(y).
 * TF 2 returns 2.0 and 1.0, as the article says; the watch calls are harmless but not
 * needed (see variables_not_explicitly_watched.c, which gives the same values). */
#include "seed_report.h"

int main(void)
{
    tg_scope *scope = tg_scope_begin();
    tg_tensor *x = tg_variable(tg_scalar(1.0), .name = "x");
    tg_tensor *y = tg_variable(tg_scalar(2.0), .name = "y");

    tg_tape *tape = tg_tape_begin();
    tg_watch(tape, x); /* tape.watch(x) */
    tg_watch(tape, y); /* tape.watch(y) */
    tg_tensor *z = tg_mul(x, y);
    tg_tape_end(tape);

    tg_tensor *grads[2];
    tg_gradients(tape, .targets = &z, .n_targets = 1, .sources = (tg_tensor *[]){x, y}, .n_sources = 2, .out = grads);
    print_gradient("x", grads[0]);
    print_gradient("y", grads[1]);

    tg_tape_free(tape);
    tg_scope_end(scope);
    tg_variable_free(x);
    tg_variable_free(y);
    return 0;
}
