#!/bin/sh
# Eager checking (TAPEGRAD_CHECK=eager) never warns about a correct program: every example,
# seed program and test program that gets the gradients it asks for runs with it on and
# must print no diagnosis ("file:line: [cause] ...") and still pass.
#   tests/eager_quiet.sh BUILD_DIR
# Left out, because they ask for missing gradients on purpose (the warning is right):
# the diagnosis tests, the tape's semantics (None for integers, stale reads), the ops
# without gradient, losses and models tested on mistakes, and the seeds that show one.
# test_numerics checks that no mode is on by default, so the environment cannot set one.
set -u
build=$1
quiet_tests="test_train test_training_golden test_golden test_layers test_concurrency test_step_allocations
  test_checkpoint test_metrics test_ops_fused test_ops_conv test_ops_linalg test_ops_shape test_ops_activation
  test_gemm test_cli test_profile test_loop_pool test_tensor test_faults"
quiet_seeds="variable_created_inside_tape_sgd variable_created_before_tape frozen_first_layer custom_training_loop
  loss_times_constant variables_not_explicitly_watched variables_explicitly_watched
  variable_created_outside_tape_scope variable_created_inside_tape_scope if_on_variable_inside_tape
  apply_gradients_after_tape_block reduce_sum_difference_loss python_if_on_tensor"
programs="example_first_gradient"
for t in $quiet_tests; do programs="$programs $t"; done
for s in $quiet_seeds; do programs="$programs seed_$s"; done

failed=0
passed=0
for p in $programs; do
    if [ ! -x "$build/$p" ]; then
        echo "FAIL $p: not built"
        failed=$((failed + 1))
        continue
    fi
    out=$(cd "$build" && TAPEGRAD_CHECK=eager "./$p" 2>&1)
    rc=$?
    warned=$(printf '%s\n' "$out" | grep -E ': \[[a-z_]+\] ' | head -n 3)
    if [ $rc -ne 0 ] || [ -n "$warned" ]; then
        echo "FAIL $p (exit $rc)"
        [ -n "$warned" ] && printf '%s\n' "$warned"
        failed=$((failed + 1))
    else
        passed=$((passed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
