/* Every way a gradient goes missing, and what tapegrad says about it.
 *
 * Each case is a few lines that lose a gradient; tg_explain names the cause, the line
 * behind it, and the fix. docs/missing-gradients.md quotes this program's output. */
#include <stdio.h>

#include <tapegrad.h>

static void report(const char *title, tg_tape *tape, tg_tensor *target, tg_tensor *source)
{
    tg_tensor *g = tg_gradient(tape, target, source);
    tg_diagnosis d;
    tg_explain(tape, target, source, &d);
    printf("== %s\n", title);
    printf("gradient: %s\n", g ? "present" : tg_has_error() ? "error" : "None");
    printf("cause %d (%s) at line %d: %s\n\n", d.cause, tg_cause_name(d.cause), d.where.line, d.message);
}

int main(void)
{
    tg_set_warning_handler(NULL, NULL);
    tg_scope *scope = tg_scope_begin();
    tg_tensor *w = tg_variable(tg_from_f32(TG_SHAPE(2, 1), 0.5, -1.0), .name = "dense/kernel");
    tg_tensor *frozen = tg_variable(tg_scalar(2.0), .name = "frozen", .trainable = false);
    tg_tensor *x = tg_from_f32(TG_SHAPE(1, 2), 1.0, 2.0);

    /* 1. never read while the tape recorded */
    tg_tensor *other = tg_variable(tg_scalar(3.0), .name = "other");
    tg_tape *t = tg_tape_begin();
    tg_tensor *loss = tg_square(other);
    tg_tape_end(t);
    report("1. the source was never read while the tape recorded", t, loss, w);
    tg_tape_free(t);
    tg_variable_free(other);

    /* 2. not watched: a non-trainable variable */
    t = tg_tape_begin();
    loss = tg_mul(frozen, frozen);
    tg_tape_end(t);
    report("2. the source is not watched (trainable = false)", t, loss, frozen);
    tg_tape_free(t);

    /* 3. cut by stop_gradient */
    t = tg_tape_begin();
    loss = tg_sum(tg_stop_gradient(tg_matmul(x, w)));
    tg_tape_end(t);
    report("3. every path is cut by stop_gradient", t, loss, w);
    tg_tape_free(t);

    /* 4. cut by an op with no gradient */
    t = tg_tape_begin();
    loss = tg_sum(tg_floor(tg_matmul(x, w)));
    tg_tape_end(t);
    report("4. every path is cut by an op with no gradient", t, loss, w);
    tg_tape_free(t);

    /* 5. the forward pass ran before the tape began */
    tg_tensor *pred = tg_matmul(x, w);
    t = tg_tape_begin();
    loss = tg_mean(tg_square(pred));
    tg_tape_end(t);
    report("5. a tensor on the way was computed outside the tape", t, loss, w);
    tg_tape_free(t);

    /* 6. a non-persistent tape used twice */
    t = tg_tape_begin();
    loss = tg_sum(tg_matmul(x, w));
    tg_tape_end(t);
    tg_gradient(t, loss, w);
    report("6. the tape is not persistent and was already used", t, loss, w);
    tg_tape_free(t);

    /* 7. assigned after the tape read it */
    t = tg_tape_begin(.persistent = true);
    loss = tg_sum(tg_matmul(x, w));
    tg_tape_end(t);
    tg_assign_sub(w, tg_from_f32(TG_SHAPE(2, 1), 0.1, 0.1));
    report("7. the variable was assigned after the tape read it", t, loss, w);
    tg_tape_free(t);

    /* 8. an integer source */
    tg_tensor *steps = tg_scalar_of(TG_I32, 3);
    t = tg_tape_begin();
    tg_watch(t, steps);
    loss = tg_cast(tg_square(steps), TG_F32);
    tg_tape_end(t);
    report("8. the source has an integer dtype", t, loss, steps);
    tg_tape_free(t);

    /* 9. present but identically zero: every ReLU unit inactive */
    t = tg_tape_begin();
    loss = tg_sum(tg_relu(tg_matmul(tg_neg(tg_abs(x)), tg_abs(w))));
    tg_tape_end(t);
    report("9. the gradient exists but is identically zero", t, loss, w);
    tg_tape_free(t);

    tg_variable_free(w);
    tg_variable_free(frozen);
    tg_scope_end(scope);
    return 0;
}
