#!/usr/bin/python3
"""PyTorch's per-op eager overhead, measured as bench/bench_overhead.c measures tapegrad's.

record+backward: a scalar float32 tensor x with requires_grad, OPS chained scalar ops
(alternately y = y * a and y = y + b), then torch.autograd.grad(y, x); reported as the
time per op, median of REPS repetitions. forward: the same chain on a tensor that does
not require grad (nothing is recorded).

    /usr/bin/python3 bench/torch_overhead.py [OPS_PER_GRAPH]      (default 100)
"""

import statistics
import sys
import time

import torch

REPS = 7
TARGET_SECONDS = 0.15   # per repetition
A, B = 1.001, 0.001


def chain(x, a, b, ops):
    y = x
    for i in range(ops):
        y = y * a if i % 2 == 0 else y + b
    return y


def record_backward(x, a, b, ops):
    y = chain(x, a, b, ops)
    (g,) = torch.autograd.grad(y, x)
    return g


def forward_only(x, a, b, ops):
    return chain(x, a, b, ops)


def measure(f, x, a, b, ops):
    iters = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            f(x, a, b, ops)
        dt = (time.perf_counter_ns() - t0) * 1e-9
        if dt > 0.02:
            iters = int(iters * TARGET_SECONDS / dt) + 1
            break
        iters *= 4
    per_op = []
    for _ in range(REPS):
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            f(x, a, b, ops)
        per_op.append((time.perf_counter_ns() - t0) / (iters * ops))
    return statistics.median(per_op)


def main():
    ops = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if ops < 2:
        sys.exit("usage: torch_overhead.py [OPS_PER_GRAPH >= 2]")
    torch.set_num_threads(1)
    a = torch.tensor(A, dtype=torch.float32)
    b = torch.tensor(B, dtype=torch.float32)
    x = torch.tensor(1.0, dtype=torch.float32, requires_grad=True)
    plain = torch.tensor(1.0, dtype=torch.float32)

    want, got = A ** (ops // 2), record_backward(x, a, b, ops).item()
    if abs(got - want) > 1e-4 * want:
        sys.exit("torch_overhead: wrong gradient %g (expected %g)" % (got, want))

    print("torch     record+backward  %.1f ns/op" % measure(record_backward, x, a, b, ops))
    print("torch     forward          %.1f ns/op" % measure(forward_only, plain, a, b, ops))


if __name__ == "__main__":
    main()
