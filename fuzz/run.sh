#!/usr/bin/env bash
# Runs each fuzz target for a while: fuzz/run.sh BUILD_DIR SECONDS TARGET...
# New inputs go to BUILD_DIR/fuzz-corpus/<target>/ (the seeds in fuzz/corpus/ are only
# read); a crash is kept as BUILD_DIR/fuzz-crashes/<target>-crash-<hash>, and the script
# then fails, naming it. Prints the executions of each target.
set -uo pipefail

build=$1 seconds=$2
shift 2
cd "$(dirname "$0")/.."
mkdir -p "$build/fuzz-crashes"
failed=()
summary=()
for target in "$@"; do
    corpus="$build/fuzz-corpus/$target"
    log="$build/fuzz-$target.log"
    mkdir -p "$corpus"
    printf '\n---- fuzz_%s for %ss ----\n' "$target" "$seconds"
    # -timeout: an input that takes 10 s is a hang; -rss_limit_mb: one that takes 2 GiB
    # is a failure too (the readers check sizes before they allocate).
    "$build/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-crashes/$target-" \
        "$corpus" "fuzz/corpus/$target" >"$log" 2>&1
    rc=$?
    grep -E '^#[0-9]+ +(INITED|DONE)|^stat::number_of_executed_units|^tapegrad fuzz:|ERROR|SUMMARY' "$log" | tail -n 6
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    refused=$(sed -n 's/^tapegrad fuzz: [0-9]* inputs, \([0-9]*\) refused.*/\1/p' "$log" | tail -n 1)
    derivatives=$(sed -n 's/^tapegrad fuzz: \([0-9]*\) derivatives matched.*/, \1 derivatives checked/p' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        failed+=("$target")
        tail -n 40 "$log"
        summary+=("$(printf '%-12s FAILED (exit %s): see %s and %s/fuzz-crashes/' "$target" "$rc" "$log" "$build")")
    else
        summary+=("$(printf '%-12s %s executions, no crash (%s refused with a message%s)' "$target" "${runs:-?}" \
            "${refused:-?}" "$derivatives")")
    fi
done
printf '\n---- fuzz summary (%ss per target) ----\n' "$seconds"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "Copy each crashing input to fuzz/regressions/<target>-<what> and fix the reader;"
    echo "tests/test_fuzz_regressions.c then replays it in every build."
    exit 1
fi
