#!/bin/sh
# Data-parallel training under Open MPI's mpirun: the test program (test_mpi_fit.c)
# with 2 and 3 ranks, each with three bucket sizes that must train the same bits; with
# 3 where one rank fails mid-fit, before or after the average, and ends the job; a
# mid-epoch checkpoint of 2 ranks resumed by 3. Then the tapegrad command with 2 ranks:
# its banner names the ranks, it logs what one process logs, rank 0 alone writes, its
# checkpoint resumes on 3 ranks, and ranks started with different data all stop. Exits
# 77, ctest's skip, where mpirun is absent.
# usage: run.sh TEST_PROGRAM TAPEGRAD_COMMAND
set -u
prog=$1
cli=$2

if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: mpirun not found: install Open MPI to run this test (apt-get install openmpi-bin" \
        "libopenmpi-dev, as tools/install-deps.sh does)"
    exit 77
fi

# Containers often forbid the cross-memory attach Open MPI's shared-memory transport
# tries first; the copy through shared memory works everywhere.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi() { timeout 120 mpirun --allow-run-as-root --oversubscribe "$@"; }

fail() {
    echo "FAIL: $*"
    exit 1
}

# Each rank count with the default buckets (25 MB: one here), a bucket per variable
# (0.00001 MB), and the blocking allreduce (0): the weights must be the same bits.
for np in 2 3; do
    digests=
    for mb in 25 0.00001 0; do
        echo "---- TAPEGRAD_BUCKET_MB=$mb mpirun -np $np $(basename "$prog")"
        out=$(TAPEGRAD_BUCKET_MB=$mb mpi -x TAPEGRAD_BUCKET_MB -np "$np" "$prog" 2>&1)
        rc=$?
        echo "$out"
        [ "$rc" -eq 0 ] || fail "mpirun -np $np exited with $rc"
        [ "$(echo "$out" | grep -c 'passed, 0 failed')" -eq "$np" ] || fail "not every one of the $np ranks passed"
        d=$(echo "$out" | grep '^digest ')
        [ -n "$d" ] || fail "rank 0 printed no digest of the weights"
        [ -z "$digests" ] || [ "$d" = "$digests" ] || fail "TAPEGRAD_BUCKET_MB=$mb trained other weights"
        digests=$d
    done
done

echo "---- a rank that fails mid-fit ends the job"
start=$(date +%s)
out=$(mpi -np 3 "$prog" --abort 2>&1)
rc=$?
echo "$out"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "the job exited with $rc: it should have been aborted"
[ $(($(date +%s) - start)) -le 30 ] || fail "the job took more than 30 s to end"
echo "$out" | grep -q "rank 2 of 3: failed: .*a fault injected in step 3; ending every rank" ||
    fail "the failing rank did not name itself and the cause"

echo "---- a rank that fails after the average ends the job"
start=$(date +%s)
out=$(mpi -np 3 "$prog" --abort-after 2>&1)
rc=$?
echo "$out"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "the job exited with $rc: it should have been aborted"
[ $(($(date +%s) - start)) -le 30 ] || fail "the job took more than 30 s to end"
echo "$out" | grep -q "rank 2 of 3: failed: .*a fault injected after the average of step 3; ending every rank" ||
    fail "the failing rank did not name itself and the cause"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "---- a mid-epoch checkpoint of 2 ranks resumes under 3"
mpi -np 2 "$prog" --save-mid "$dir/mid.safetensors" || fail "the interrupted run on 2 ranks: exit $?"
out=$(mpi -np 3 "$prog" --resume-mid "$dir/mid.safetensors" 2>&1)
rc=$?
echo "$out"
[ "$rc" -eq 0 ] && [ "$(echo "$out" | grep -c ': ok$')" -eq 3 ] || fail "the resume on 3 ranks"

cd "$dir" || exit 1
awk 'BEGIN {
    srand(7); print "a,b,c,y";
    for (i = 0; i < 150; i++) {
        a = 2 * rand() - 1; b = 2 * rand() - 1; c = 2 * rand() - 1;
        printf "%.4f,%.4f,%.4f,%d\n", a, b, c, (a + b > 0) + (c > 0.3);
    }
}' >train.csv
fit="fit --data csv:train.csv --label y --model mlp:8 --epochs 2 --batch-size 16 --seed 3"

echo "---- mpirun -np 2 tapegrad $fit"
out=$(mpi -np 2 "$cli" $fit --history dist.csv --save dist.safetensors --plot dist.svg 2>&1)
rc=$?
echo "$out"
[ "$rc" -eq 0 ] || fail "mpirun -np 2 tapegrad fit exited with $rc"
echo "$out" | grep -q "data-parallel over 2 ranks.*rank 0 on .*rank 1 on " || fail "the banner does not name the ranks"
[ "$(echo "$out" | grep -c '^Epoch 1/2')" -eq 1 ] || fail "more than rank 0 printed the progress"
[ -s dist.csv ] && [ -s dist.safetensors ] || fail "rank 0 wrote no history or model"

echo "---- tapegrad $fit (one process)"
"$cli" $fit --history one.csv --save one.safetensors --plot one.svg --quiet || fail "one process: exit $?"
# The logged loss and accuracy of 2 ranks are those of one process, to 5 significant digits.
awk -F, 'NR == FNR { a[FNR] = $0; next }
    FNR > 1 { split(a[FNR], x, ","); for (i = 2; i <= NF; i++) {
        d = x[i] - $i; if (d < 0) d = -d; s = $i < 0 ? -$i : $i;
        if (d > 1e-5 * (1 + s)) { print "epoch " $1 ": " x[i] " against " $i; bad = 1 } } }
    END { exit bad }' dist.csv one.csv || fail "2 ranks logged other values than one process"
cat one.csv

echo "---- a checkpoint of 2 ranks, resumed by 3 ranks, trains as one process"
mpi -np 2 "$cli" $fit --epochs 1 --history resumed.csv --save resumed.safetensors --plot resumed.svg --quiet ||
    fail "the first epoch on 2 ranks: exit $?"
mpi -np 3 "$cli" fit --resume resumed.safetensors --epochs 2 --quiet || fail "the resume on 3 ranks: exit $?"
cat resumed.csv
awk -F, 'NR == FNR { a[FNR] = $0; next }
    FNR > 1 { split(a[FNR], x, ","); for (i = 2; i <= NF; i++) {
        d = x[i] - $i; if (d < 0) d = -d; s = $i < 0 ? -$i : $i;
        if (d > 1e-5 * (1 + s)) { print "epoch " $1 ": " x[i] " against " $i; bad = 1 } } }
    END { exit bad || FNR != 3 }' resumed.csv one.csv || fail "the resumed run logged other values than one process"

echo "---- ranks started with different data stop, every one"
head -n 150 train.csv >short.csv
start=$(date +%s)
out=$(mpi -np 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then d=short.csv; else d=train.csv; fi;
    exec "$0" fit --data csv:$d --label y --model mlp:8 --epochs 1 --quiet' "$cli" 2>&1)
rc=$?
echo "$out"
[ "$rc" -ne 0 ] || fail "the job succeeded"
[ "$rc" -ne 124 ] || fail "the job hung"
[ $(($(date +%s) - start)) -le 30 ] || fail "the job took more than 30 s to end"
echo "$out" | grep -q "rank [01] of 2: failed.*the ranks disagree on the number of training samples" ||
    fail "no rank named itself and the cause"
fmnist=/usr/share/datasets/fashion-mnist
if [ -r "$fmnist/t10k-labels-idx1-ubyte.gz" ] || [ -r "$fmnist/t10k-labels-idx1-ubyte" ]; then
    echo "---- the test split is evaluated by every rank, sharded, and reported once"
    fm="fit --data fashion-mnist --model mlp:8 --epochs 1 --batch-size 256 --seed 3 --quiet"
    out=$(mpi -np 2 "$cli" $fm --save fm2.safetensors --history fm2.csv --plot fm2.svg 2>&1)
    rc=$?
    echo "$out"
    [ "$rc" -eq 0 ] || fail "mpirun -np 2 tapegrad $fm exited with $rc"
    [ "$(echo "$out" | grep -c '^test loss')" -eq 1 ] || fail "not one rank alone reported the test split"
    one=$("$cli" $fm --save fm1.safetensors --history fm1.csv --plot fm1.svg 2>&1) || fail "one process: exit $?"
    echo "$one"
    printf '%s\n%s\n' "$(echo "$out" | grep '^test loss')" "$(echo "$one" | grep '^test loss')" |
        awk '{ l[NR] = $3; a[NR] = $7 } END { d = l[1] - l[2]; e = a[1] - a[2];
            exit !(NR == 2 && d < 0.002 && d > -0.002 && e < 0.002 && e > -0.002) }' ||
        fail "2 ranks reported another test loss or accuracy than one process"
else
    echo "---- SKIP the test split: Fashion-MNIST is not installed ($fmnist)"
fi
echo "mpi tests passed"
