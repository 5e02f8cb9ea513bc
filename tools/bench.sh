#!/usr/bin/env bash
# Per-op eager overhead of tapegrad, and of PyTorch when Debian's python3 has it:
#   tools/bench.sh BUILD_DIR [OPS_PER_TAPE]
# Runs BUILD_DIR/bench_overhead and bench/torch_overhead.py and prints both with the
# ratio torch / tapegrad (above 1: tapegrad is faster).
set -euo pipefail

build=${1:?usage: tools/bench.sh BUILD_DIR [OPS_PER_TAPE]}
ops=${2:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
python=/usr/bin/python3

if [ ! -x "$build/bench_overhead" ]; then
    echo "bench.sh: $build/bench_overhead is missing (build first: make build)" >&2
    exit 1
fi

echo "== tapegrad ($ops chained scalar ops per tape, median of 7)"
tg=$("$build/bench_overhead" "$ops")
echo "$tg"

th=""
if [ -x "$python" ] && "$python" -c 'import torch' 2>/dev/null; then
    echo "== PyTorch $("$python" -c 'import torch; print(torch.__version__)') (1 thread)"
    th=$("$python" "$root/bench/torch_overhead.py" "$ops")
    echo "$th"
else
    echo "== PyTorch: not measured ($python cannot import torch; apt-get install python3-torch)"
fi

# Lines are "FRAMEWORK METRIC VALUE ns/op".
value() { awk -v m="$2" '$2 == m { print $3 }' <<<"$1"; }

echo
printf '%-16s %14s %14s %16s\n' metric "tapegrad ns/op" "torch ns/op" "torch/tapegrad"
for metric in record+backward forward; do
    t=$(value "$tg" "$metric")
    p=$(value "$th" "$metric")
    if [ -n "$p" ]; then
        ratio=$(awk -v p="$p" -v t="$t" 'BEGIN { printf "%.2fx", p / t }')
    else
        p="-" ratio="-"
    fi
    printf '%-16s %14s %14s %16s\n' "$metric" "$t" "$p" "$ratio"
done
