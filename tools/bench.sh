#!/usr/bin/env bash
# The benchmark of BENCH.md in one run, and the per-op eager overhead:
#   tools/bench.sh BUILD_DIR [OPS_PER_TAPE]
#
# 1. Fashion-MNIST, Dense 784-500-10, Adam, batch 500 and batch 32, 2 threads: tapegrad
#    (BUILD_DIR/bench_fmnist, through tg_fit), PyTorch eager at its best configuration
#    (Debian's /usr/bin/python3 with python3-torch; the two alternate, TG_BENCH_REPEAT
#    times each, default 2, and keep their best median) and TensorFlow.js with its wasm
#    backend (npm packages installed into BUILD_DIR/tfjs-peer, git-ignored, when npm is
#    there). s/epoch is the median of epochs 2..N, then the test accuracy and the peak
#    resident memory of each process (/usr/bin/time). A peer that is missing is
#    reported as "not installed". tapegrad runs traced (fit's default) and eager
#    (--eager) in the same rounds: the graph-mode line gives traced/eager for s/epoch and
#    peak memory, and the top of a traced fit's op profile (--profile) at each batch size.
# 2. The GEMM limit: the peers' gemm_limit.c (cblas_sgemm on the step's shapes), built
#    here against OpenBLAS with the settings tapegrad uses.
# 3. A CNN epoch (Conv2D 32 3x3 relu, max pool 2, dense 10; batch 32): tapegrad with its
#    convolutions through oneDNN (where libdnnl.so.2 is installed), tapegrad with
#    TAPEGRAD_ONEDNN=0, and PyTorch eager (bench/torch_cnn.py), alternately.
#    Then an LSTM(128) epoch over Fashion-MNIST's rows at batch 32 and 256 against
#    PyTorch's nn.LSTM (bench/torch_lstm.py), alternately.
# 4. Per-op eager overhead against PyTorch (bench_overhead, bench/torch_overhead.py).
# 5. Peak memory of a public-API fit (bench_fmnist --memory): Fashion-MNIST as data sets,
#    Dense(128) -> Dense(10), one epoch with a 10% validation split, then evaluate on the
#    test set; peak resident memory (getrusage), OpenBLAS's buffers included, fit reading
#    the data sets in place and, for comparison, given tg_dataset_x copies as tensors.
# One table goes to stdout and, with the machine and versions, to bench/results.md.
#
# Time: about 8 minutes on 2 cores, 5.5 of them TensorFlow.js (25-40 s per epoch here).
# TG_BENCH_QUICK=1: 2 epochs (the median is epoch 2), TF.js on 12000 samples per epoch
# (extrapolated, and marked so), a CNN epoch on 12000 samples: about 2 minutes.
# TG_BENCH_PEERS="torch tfjs" (default) chooses the peers; "" for none. Each command is
# stopped after TG_BENCH_TIMEOUT seconds (default 900). The peers' drivers are read from
# PEERS_DIR (default ../shared/peers beside the repository).
set -euo pipefail

build=${1:?usage: tools/bench.sh BUILD_DIR [OPS_PER_TAPE]}
ops=${2:-100}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
python=/usr/bin/python3
peers_dir=${PEERS_DIR:-$root/../shared/peers}
quick=${TG_BENCH_QUICK:-0}
peers=${TG_BENCH_PEERS-torch tfjs}
limit=${TG_BENCH_TIMEOUT:-900}
threads=2
epochs=5
[ "$quick" = 1 ] && epochs=2
logs=$build/bench-logs
mkdir -p "$logs"

for exe in bench_fmnist bench_overhead; do
    if [ ! -x "$build/$exe" ]; then
        echo "bench.sh: $build/$exe is missing (build first: make build)" >&2
        exit 1
    fi
done

# The peers get their best configuration (BENCH.md): OpenBLAS's AVX-512 kernels when the
# CPU has them (Debian's OpenBLAS does not pick them on recent AMD CPUs), OpenBLAS on 2
# threads, torch's own pool on 1 (two spinning pools on 2 cores are 3x slower).
coretype=""
if grep -q avx512f /proc/cpuinfo 2>/dev/null && grep -q avx512bw /proc/cpuinfo; then
    coretype=SkylakeX
fi
peer_env=(env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=passive)
[ -n "$coretype" ] && peer_env+=(OPENBLAS_CORETYPE=$coretype)

# Runs a command with a time limit, its output in $logs/NAME.log and its peak resident
# memory (kB) in $logs/NAME.rss; returns its status.
run() {
    local name=$1
    shift
    local rc=0
    if [ -x /usr/bin/time ]; then
        timeout "$limit" /usr/bin/time -f %M -o "$logs/$name.rss" "$@" >"$logs/$name.log" 2>&1 || rc=$?
    else
        timeout "$limit" "$@" >"$logs/$name.log" 2>&1 || rc=$?
        echo "" >"$logs/$name.rss"
    fi
    grep -E '^(epoch|RESULT)' "$logs/$name.log" | sed "s/^/  [$name] /" || true
    return $rc
}

# field NAME KEY: the value of KEY=... on the RESULT line of NAME's log.
field() { sed -n 's/.*RESULT.*[ ]'"$2"'=\([^ ]*\).*/\1/p' "$logs/$1.log" 2>/dev/null | head -1; }
rss_mb() { awk '{ if ($1 + 0 > 0) printf "%.0f", $1 / 1024 }' "$logs/$1.rss" 2>/dev/null; }

declare -A sec acc mem status name
record() {   # record KEY NAME: s/epoch, accuracy, memory of a finished run
    sec[$1]=$(field "$2" 'median_s_per_epoch(2..N)')
    acc[$1]=$(field "$2" test_acc)
    mem[$1]=$(rss_mb "$2")
    name[$1]=$2
}

# tapegrad and PyTorch run alternately, TG_BENCH_REPEAT times each (default 2; 1 in quick
# mode), and each keeps its best median: on a shared machine the load changes from one
# minute to the next, and alternating gives both the same chances.
repeat=${TG_BENCH_REPEAT:-2}
[ "$quick" = 1 ] && repeat=${TG_BENCH_REPEAT:-1}
have_torch=0
torch_version=""
if [[ " $peers " == *" torch "* ]]; then
    if [ -x "$python" ] && "$python" -c 'import torch' 2>/dev/null && [ -f "$peers_dir/bench_torch.py" ]; then
        have_torch=1
        torch_version=$("$python" -c 'import torch; print(torch.__version__)')
    else
        status[torch-500]="not installed"
        status[torch-32]="not installed"
    fi
fi

keep_best() {   # keep_best KEY NAME: record NAME's run under KEY if its median is the lowest yet
    local s
    s=$(field "$2" 'median_s_per_epoch(2..N)')
    [ -z "$s" ] && return
    if [ -z "${sec[$1]:-}" ] || awk -v a="$s" -v b="${sec[$1]}" 'BEGIN { exit !(a < b) }'; then
        record "$1" "$2"
    fi
}

echo "== tapegrad (tg_fit, $threads threads) and PyTorch $torch_version eager (torch 1 thread, OpenBLAS $threads${coretype:+, $coretype kernels}):"
echo "   784-500-10, Adam, $epochs epochs, alternately, best median of $repeat"
for b in 500 32; do
    for r in $(seq 1 "$repeat"); do
        if run "tapegrad-b$b-$r" "$build/bench_fmnist" --batch $b --epochs $epochs --threads $threads; then
            keep_best "tapegrad-$b" "tapegrad-b$b-$r"
        else
            status[tapegrad-$b]="failed (see $logs/tapegrad-b$b-$r.log)"
        fi
        # Keras's mixed_bfloat16 policy at B=500 (same seed: the same weights and batches)
        if [ "$b" = 500 ]; then
            if run "tapegrad-bf16-b$b-$r" "$build/bench_fmnist" --batch $b --epochs $epochs --threads $threads \
                   --precision mixed_bfloat16; then
                keep_best "tapegrad-bf16-$b" "tapegrad-bf16-b$b-$r"
            else
                status[tapegrad-bf16-$b]="failed (see $logs/tapegrad-bf16-b$b-$r.log)"
            fi
        fi
        # graph mode against eager: fit's step traced (the default) or .run_eagerly (docs/function.md)
        if run "tapegrad-eager-b$b-$r" "$build/bench_fmnist" --batch $b --epochs $epochs --threads $threads --eager; then
            keep_best "tapegrad-eager-$b" "tapegrad-eager-b$b-$r"
        else
            status[tapegrad-eager-$b]="failed (see $logs/tapegrad-eager-b$b-$r.log)"
        fi
        [ "$have_torch" = 1 ] || continue
        if run "torch-b$b-$r" "${peer_env[@]}" "$python" "$peers_dir/bench_torch.py" --batch $b \
               --epochs $epochs --mode eager --threads 1; then
            keep_best "torch-$b" "torch-b$b-$r"
        else
            status[torch-$b]="failed (see $logs/torch-b$b-$r.log)"
        fi
    done
done
# Where a traced step's time goes: the op profile of a traced fit at each batch size (its
# own run: the profile's clock reads add a little to every op), the top entries.
profile_epochs=2
[ "$quick" = 1 ] && profile_epochs=1
declare -A prof
for b in 500 32; do
    if run "tapegrad-profile-b$b" "$build/bench_fmnist" --batch $b --epochs $profile_epochs --threads $threads \
           --profile; then
        prof[$b]=$(awk '/^op profile:/ { on = 1; getline; next }
                        on && NF >= 5 { name = $1; for (i = 2; i <= NF - 4; i++) name = name " " $i
                                        printf "%s%s %s", (k++ ? ", " : ""), name, $(NF - 1); if (k == 6) exit }' \
                        "$logs/tapegrad-profile-b$b.log")
    fi
done
graph=""
for b in 500 32; do
    t=${sec[tapegrad-$b]:-} e=${sec[tapegrad-eager-$b]:-}
    tn=${name[tapegrad-$b]:-}
    en=${name[tapegrad-eager-$b]:-}
    ratio="?" mratio="?" tp="" ep=""
    [ -n "$t" ] && [ -n "$e" ] && ratio=$(awk -v e="$e" -v t="$t" 'BEGIN { printf "%.2f", t / e }')
    [ -n "$tn" ] && tp=$(field "$tn" train_peak_rss_mb)
    [ -n "$en" ] && ep=$(field "$en" train_peak_rss_mb)
    [ -n "$tp" ] && [ -n "$ep" ] && mratio=$(awk -v e="$ep" -v t="$tp" 'BEGIN { printf "%.3f", t / e }')
    tc="" ec="" cratio="?"
    [ -n "$tn" ] && tc=$(field "$tn" 'median_cpu_s_per_epoch(2..N)')
    [ -n "$en" ] && ec=$(field "$en" 'median_cpu_s_per_epoch(2..N)')
    [ -n "$tc" ] && [ -n "$ec" ] && cratio=$(awk -v e="$ec" -v t="$tc" 'BEGIN { printf "%.2f", t / e }')
    cell="B=$b: traced ${t:-failed} s, eager ${e:-failed} s per epoch (traced/eager $ratio; CPU time ${tc:-?} and"
    cell="$cell ${ec:-?} s, $cratio); peak RSS of training"
    base=""
    [ -n "$tn" ] && base=$(field "$tn" train_base_rss_mb)
    cell="$cell (fit and predict, the peak reset after loading the data, ${base:-?} MB then) traced ${tp:-?} MB,"
    cell="$cell eager ${ep:-?} MB (traced/eager $mratio), of the whole process ${mem[tapegrad-$b]:-?} and"
    cell="$cell ${mem[tapegrad-eager-$b]:-?} MB (loading's own peak);"
    sv="" sb=""
    [ -n "$tn" ] && sv=$(field "$tn" step_values_mb) && sb=$(field "$tn" step_buffer_mb)
    cell="$cell a step's intermediates ${sv:-?} MB each in its own buffer (eager), ${sb:-?} MB planned;"
    cell="$cell traced op profile, top entries (share of the profiled time): ${prof[$b]:-not run}"
    echo "== graph mode: $cell"
    graph="$graph${graph:+; }$cell"
done
[ "$have_torch" = 1 ] || echo "== PyTorch: not installed ($python cannot import torch, or $peers_dir/bench_torch.py is missing)"
gemm_backend=$(sed -n 's/.*gemm=\(.*\) precision=.*$/\1/p' "$logs/tapegrad-b500-1.log" | head -1)
bf16_backend=$(sed -n 's/^bfloat16 products: //p' "$logs/tapegrad-bf16-b500-1.log" 2>/dev/null | head -1)

tfjs_version=""
if [[ " $peers " == *" tfjs "* ]]; then
    tfjs_dir=$build/tfjs-peer
    if command -v node >/dev/null && [ -f "$peers_dir/bench_tfjs.js" ] &&
       { [ -d "$tfjs_dir/node_modules/@tensorflow/tfjs-backend-wasm" ] ||
         { command -v npm >/dev/null && mkdir -p "$tfjs_dir" &&
           (cd "$tfjs_dir" && timeout "$limit" npm install --no-audit --no-fund --loglevel=error \
               @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 >"$logs/npm.log" 2>&1); }; }; then
        tfjs_version=$(node -p "require('$tfjs_dir/node_modules/@tensorflow/tfjs/package.json').version")
        samples=60000
        [ "$quick" = 1 ] && samples=12000
        echo "== TensorFlow.js $tfjs_version model.fit, wasm backend (node $(node --version))"
        for b in 500 32; do
            if run "tfjs-b$b" env NODE_PATH="$tfjs_dir/node_modules" node "$peers_dir/bench_tfjs.js" \
                   --backend wasm --batch $b --epochs $epochs --mode fit --samples $samples; then
                record "tfjs-$b" "tfjs-b$b"
                grep -q EXTRAPOLATED "$logs/tfjs-b$b.log" && sec[tfjs-$b]="${sec[tfjs-$b]}*"
            else
                status[tfjs-$b]="failed (see $logs/tfjs-b$b.log)"
            fi
        done
    else
        status[tfjs-500]="not installed"
        status[tfjs-32]="not installed"
        echo "== TensorFlow.js: not installed (needs node and npm, and $peers_dir/bench_tfjs.js)"
    fi
fi

echo "== GEMM limit: cblas_sgemm on the step's shapes, OpenBLAS $threads threads${coretype:+, $coretype}"
floor500="" floor32="" peak=""
if [ -f "$peers_dir/gemm_limit.c" ] && cc -O2 -o "$build/gemm_limit" "$peers_dir/gemm_limit.c" -lopenblas \
       >"$logs/gemm_limit-build.log" 2>&1; then
    limit_env=(env OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads)
    [ -n "$coretype" ] && limit_env+=(OPENBLAS_CORETYPE=$coretype)
    if timeout "$limit" "${limit_env[@]}" "$build/gemm_limit" >"$logs/gemm_limit.log" 2>&1; then
        floors=$(awk '/^B=/{b=$1} /measured per-shape rates/{print b, $(NF-1)}' "$logs/gemm_limit.log")
        floor500=$(awk '$1 == "B=500" {print $2}' <<<"$floors")
        floor32=$(awk '$1 == "B=32" {print $2}' <<<"$floors")
        peak=$(awk '/at square peak/ {print $(NF-1); exit}' "$logs/gemm_limit.log")
        grep -E "square|per-shape|^core" "$logs/gemm_limit.log" | sed 's/^/  /'
    fi
else
    echo "  not available (needs libopenblas-dev and $peers_dir/gemm_limit.c)"
fi

echo "== CNN: Conv2D(32, 3x3, relu) -> MaxPool(2) -> Dense(10), batch 32: tapegrad with oneDNN (where"
echo "   installed) and with TAPEGRAD_ONEDNN=0, and PyTorch, alternately, best median of $repeat"
cnn_samples=60000 cnn_epochs=3   # the median of epochs 2 and 3: one epoch alone is at the mercy of the load
[ "$quick" = 1 ] && cnn_samples=12000 cnn_epochs=2
cnn_args=(--model cnn --batch 32 --epochs $cnn_epochs --threads $threads --samples $cnn_samples)
for r in $(seq 1 "$repeat"); do
    run "tapegrad-cnn-$r" "$build/bench_fmnist" "${cnn_args[@]}" && keep_best tapegrad-cnn "tapegrad-cnn-$r"
    run "tapegrad-cnn-portable-$r" env TAPEGRAD_ONEDNN=0 "$build/bench_fmnist" "${cnn_args[@]}" &&
        keep_best tapegrad-cnn-portable "tapegrad-cnn-portable-$r"
    [ "$have_torch" = 1 ] || continue
    run "torch-cnn-$r" "${peer_env[@]}" "$python" "$root/bench/torch_cnn.py" --epochs $cnn_epochs \
        --samples $cnn_samples --threads 1 && keep_best torch-cnn "torch-cnn-$r"
done
conv_kernel=$(sed -n 's/^conv: //p' "$logs/tapegrad-cnn-1.log" 2>/dev/null | head -1)
cnn_cell() {   # cnn_cell KEY: s/epoch, accuracy, memory, and how many times tapegrad's (oneDNN) time it is
    [ -z "${sec[$1]:-}" ] && { echo "failed or not run (see $logs)"; return; }
    local x=""
    [ "$1" != tapegrad-cnn ] && [ -n "${sec[tapegrad-cnn]:-}" ] &&
        x=" ($(awk -v p="${sec[$1]}" -v t="${sec[tapegrad-cnn]}" 'BEGIN { printf "%.2fx", p / t }') tapegrad's time)"
    echo "${sec[$1]} s per epoch of $cnn_samples samples, test accuracy ${acc[$1]}, peak ${mem[$1]} MB$x"
}
cnn="$(cnn_cell tapegrad-cnn), conv ${conv_kernel:-?}"
cnn_portable="$(cnn_cell tapegrad-cnn-portable)"
cnn_torch="not installed"
[ "$have_torch" = 1 ] && cnn_torch="$(cnn_cell torch-cnn)"
echo "  tapegrad: $cnn"
echo "  tapegrad, TAPEGRAD_ONEDNN=0: $cnn_portable"
echo "  PyTorch: $cnn_torch"

echo "== LSTM(128) over Fashion-MNIST's rows as 28 steps -> Dense(10), batch 32 and 256: tapegrad and"
echo "   PyTorch's nn.LSTM (torch 1 thread, denormals flushed), alternately, best median of $repeat"
lstm_samples=12000 lstm_epochs=3
[ "$quick" = 1 ] && lstm_samples=6000 lstm_epochs=2
lstm=""
for b in 32 256; do
    for r in $(seq 1 "$repeat"); do
        run "tapegrad-lstm-$b-$r" "$build/bench_fmnist" --model lstm --batch $b --epochs $lstm_epochs \
            --threads $threads --samples $lstm_samples && keep_best "tapegrad-lstm-$b" "tapegrad-lstm-$b-$r"
        [ "$have_torch" = 1 ] || continue
        run "torch-lstm-$b-$r" "${peer_env[@]}" "$python" "$root/bench/torch_lstm.py" --batch $b \
            --epochs $lstm_epochs --samples $lstm_samples --threads 1 && keep_best "torch-lstm-$b" "torch-lstm-$b-$r"
    done
    t=${sec[tapegrad-lstm-$b]:-} p=${sec[torch-lstm-$b]:-}
    ratio="?"
    [ -n "$t" ] && [ -n "$p" ] && ratio=$(awk -v p="$p" -v t="$t" 'BEGIN { printf "%.2fx", p / t }')
    cell="B=$b: tapegrad ${t:-failed} s, PyTorch ${p:-not run} s per epoch of $lstm_samples samples ($ratio)"
    echo "  $cell"
    lstm="$lstm${lstm:+; }$cell"
done

echo "== memory: public-API fit of Dense(128) on Fashion-MNIST, 1 epoch, 10% validation, then evaluate"
memory=""
for data in dataset tensors; do
    extra=()
    [ "$data" = tensors ] && extra=(--tensors)
    if run "tapegrad-memory-$data" "$build/bench_fmnist" --memory --threads $threads "${extra[@]}"; then
        memory="$memory${memory:+; }$data: peak $(field "tapegrad-memory-$data" peak_rss_mb) MB"
    else
        memory="$memory${memory:+; }$data: failed (see $logs/tapegrad-memory-$data.log)"
    fi
done
train_mb=$(field tapegrad-memory-dataset train_f32_mb)
echo "  $memory (the float32 training set is ${train_mb:-?} MB)"

echo "== per-op eager overhead ($ops chained scalar ops per tape, median of 7)"
tg=$("$build/bench_overhead" "$ops")
th=""
if [ -x "$python" ] && "$python" -c 'import torch' 2>/dev/null; then
    th=$(OMP_NUM_THREADS=1 "$python" "$root/bench/torch_overhead.py" "$ops")
fi
value() { awk -v m="$2" '$2 == m && NF == 4 { print $3 }' <<<"$1"; }

# ---- the table ---------------------------------------------------------------------------------------
cell() {   # cell KEY: s/epoch or the reason there is none
    if [ -n "${sec[$1]:-}" ]; then echo "${sec[$1]}"; else echo "${status[$1]:-not run}"; fi
}
ratio() {   # ratio KEY BATCH: peer s/epoch over tapegrad's (above 1: tapegrad is faster)
    local p=${sec[$1]:-} t=${sec[tapegrad-$2]:-}
    p=${p%\*}
    [ -n "$p" ] && [ -n "$t" ] && awk -v p="$p" -v t="$t" 'BEGIN { printf "%.2fx", p / t }' || echo "-"
}
pair() { echo "${1:--} / ${2:--}"; }

table=$(
    echo "| run | B=500 s/epoch | B=32 s/epoch | test accuracy (500 / 32) | peak memory MB (500 / 32) | vs tapegrad B=500 | vs tapegrad B=32 |"
    echo "|---|---|---|---|---|---|---|"
    echo "| tapegrad (tg_fit, $threads threads, ${gemm_backend:-?}) | $(cell tapegrad-500) | $(cell tapegrad-32) | $(pair "${acc[tapegrad-500]:-}" "${acc[tapegrad-32]:-}") | $(pair "${mem[tapegrad-500]:-}" "${mem[tapegrad-32]:-}") | 1 | 1 |"
    echo "| tapegrad mixed_bfloat16 (bfloat16 products: ${bf16_backend:-?}) | $(cell tapegrad-bf16-500) | | ${acc[tapegrad-bf16-500]:-} | ${mem[tapegrad-bf16-500]:-} | $(ratio tapegrad-bf16-500 500) | |"
    if [[ " $peers " == *" torch "* ]]; then
        echo "| PyTorch ${torch_version:-} eager (torch 1 thread, OpenBLAS $threads${coretype:+ $coretype}) | $(cell torch-500) | $(cell torch-32) | $(pair "${acc[torch-500]:-}" "${acc[torch-32]:-}") | $(pair "${mem[torch-500]:-}" "${mem[torch-32]:-}") | $(ratio torch-500 500) | $(ratio torch-32 32) |"
    fi
    if [[ " $peers " == *" tfjs "* ]]; then
        echo "| TensorFlow.js ${tfjs_version:-} model.fit, wasm | $(cell tfjs-500) | $(cell tfjs-32) | $(pair "${acc[tfjs-500]:-}" "${acc[tfjs-32]:-}") | $(pair "${mem[tfjs-500]:-}" "${mem[tfjs-32]:-}") | $(ratio tfjs-500 500) | $(ratio tfjs-32 32) |"
    fi
    l500=-; l32=-
    [ -n "$floor500" ] && [ -n "${sec[tapegrad-500]:-}" ] && l500=$(awk -v t="${sec[tapegrad-500]}" -v f="$floor500" 'BEGIN { printf "tapegrad at %.2fx", t / f }')
    [ -n "$floor32" ] && [ -n "${sec[tapegrad-32]:-}" ] && l32=$(awk -v t="${sec[tapegrad-32]}" -v f="$floor32" 'BEGIN { printf "tapegrad at %.2fx", t / f }')
    echo "| GEMM limit (the step's 5 cblas_sgemm at their measured rates, same OpenBLAS) | ${floor500:-not available} | ${floor32:-not available} | | | $l500 | $l32 |"
    if [ -n "$peak" ]; then
        echo "| GEMM at the 2048^3 peak rate (95.88 GFLOP per epoch) | $peak | $peak | | | | |"
    fi
)

echo
echo "$table"
[ "$quick" = 1 ] && echo "(quick mode: $epochs epochs; * = TF.js extrapolated from 12000 samples per epoch)"
echo
echo "CNN: tapegrad ${cnn:-failed}; TAPEGRAD_ONEDNN=0 $cnn_portable; PyTorch eager $cnn_torch"
echo "LSTM (PyTorch's time over tapegrad's): $lstm"
echo "Memory (fit reading Fashion-MNIST data sets in place, or given copies as tensors): $memory"
printf '%-16s %14s %14s %16s\n' metric "tapegrad ns/op" "torch ns/op" "torch/tapegrad"
overhead=""
for metric in record+backward forward; do
    t=$(value "$tg" "$metric")
    p=$(value "$th" "$metric")
    r=-
    [ -n "$p" ] && r=$(awk -v p="$p" -v t="$t" 'BEGIN { printf "%.2fx", p / t }')
    printf '%-16s %14s %14s %16s\n' "$metric" "$t" "${p:--}" "$r"
    overhead="$overhead| $metric | $t | ${p:-not installed} | $r |"$'\n'
done

# ---- bench/results.md ------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
cpu="$cpu (family $(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1), model $(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1)$(grep -q avx512f /proc/cpuinfo && echo ', AVX-512')$(grep -q amx_tile /proc/cpuinfo && echo ', AMX' || echo ', no AMX'))"
{
    echo "# Benchmark results"
    echo
    echo "Written by \`make bench\` (tools/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')$([ "$quick" = 1 ] && echo ", quick mode")."
    echo
    echo "- Machine: ${cpu:-?}, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory;" \
         "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(cc --version | head -1)"
    echo "- Load when the run began: $(cut -d' ' -f1-3 /proc/loadavg) (the peers and tapegrad run one after another on the same cores)"
    echo "- tapegrad: GEMM ${gemm_backend:-?}; $threads threads"
    echo "- PyTorch: ${torch_version:-not installed}; TensorFlow.js: ${tfjs_version:-not installed}$(command -v node >/dev/null && echo ", node $(node --version)")"
    echo "- Benchmark: ../shared/BENCH.md (Fashion-MNIST, Dense 784-500-10, Adam 1e-3, $epochs epochs; s/epoch is the median of epochs 2..N; peak memory is each process's maximum resident set)"
    echo
    echo "$table"
    [ "$quick" = 1 ] && echo && echo "Quick mode: $epochs epochs; * = TF.js extrapolated from 12000 samples per epoch."
    echo
    echo "Ratios are the peer's s/epoch over tapegrad's (above 1: tapegrad is faster). tapegrad and"
    echo "PyTorch ran alternately, $repeat times each, keeping their best median. The GEMM limit is"
    echo "gemm_limit.c's time for the step's five products at their measured rates, with OpenBLAS's"
    echo "own $threads threads (tapegrad runs OpenBLAS on one thread and splits products over its pool,"
    echo "so it can beat that); the last line is 95.88 GFLOP at the rate of a 2048^3 product."
    echo "The mixed_bfloat16 row is tapegrad under Keras's mixed_bfloat16 policy (bench_fmnist"
    echo "--precision mixed_bfloat16: bfloat16 products, float32 weights, Adam state and loss; the same"
    echo "seed, so the same initial weights and batches), run alternately with the float32 one; its"
    echo "ratio is its time over float32 tapegrad's (below 1: mixed precision is faster)."
    echo
    echo "CNN epoch (Conv2D 32 3x3 relu, max pool 2, dense 10, batch 32; $threads threads; alternately, best median of $repeat):"
    echo
    echo "- tapegrad: $cnn"
    echo "- tapegrad with TAPEGRAD_ONEDNN=0 (patches times the kernel): $cnn_portable"
    echo "- PyTorch $torch_version eager (torch 1 thread, OpenBLAS $threads, bench/torch_cnn.py): $cnn_torch"
    echo
    echo "LSTM(128) epoch (Fashion-MNIST rows as 28 steps, Dense(10), Adam; PyTorch's nn.LSTM, bench/torch_lstm.py;"
    echo "the ratio is PyTorch's time over tapegrad's): $lstm."
    echo
    echo "Peak memory of a public-API fit (bench_fmnist --memory: Fashion-MNIST loaded as data sets, Dense(128) -> Dense(10),"
    echo "Adam, batch 32, 1 epoch with validation_split 0.1, then tg_evaluate on the test set; getrusage's ru_maxrss,"
    echo "OpenBLAS's buffers included; the float32 training set is ${train_mb:-?} MB): $memory."
    echo
    echo "Graph mode (fit's step traced, the default, against .run_eagerly, and PyTorch above; same runs, alternately;"
    echo "ratios below 1: traced is faster or smaller; the op profile is a separate traced run with --profile): $graph."
    echo
    echo "Per-op eager overhead ($ops chained scalar ops per tape, median of 7):"
    echo
    echo "| metric | tapegrad ns/op | PyTorch ns/op | PyTorch / tapegrad |"
    echo "|---|---|---|---|"
    echo -n "$overhead"
} >"$root/bench/results.md"
echo
echo "Written: bench/results.md (logs in $logs)"
