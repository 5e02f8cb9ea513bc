#!/usr/bin/python3
"""PyTorch eager on the CNN that bench/bench_fmnist.c trains with --model cnn:
Conv2D(32, 3x3, relu, valid) -> MaxPool(2) -> Flatten -> Dense(10), Glorot-uniform
weights, zero biases, softmax cross-entropy from logits, Adam (1e-3, 0.9, 0.999, 1e-7),
batch 32, reshuffled every epoch, on the first SAMPLES Fashion-MNIST training images.
Prints one line per epoch and a RESULT line (median of epochs 2..N, test accuracy), as
bench_fmnist does.

    /usr/bin/python3 bench/torch_cnn.py [--epochs 2] [--samples 60000] [--threads 1]
"""

import argparse
import gzip
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def images(path):
    return torch.from_numpy((idx(path, 16).reshape(-1, 1, 28, 28) / 255.0).astype(np.float32))


def labels(path):
    return torch.from_numpy(idx(path, 8).astype(np.int64))


ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--samples", type=int, default=60000)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

d = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
x = images(f"{d}/train-images-idx3-ubyte.gz")[: a.samples]
y = labels(f"{d}/train-labels-idx1-ubyte.gz")[: a.samples]
xt, yt = images(f"{d}/t10k-images-idx3-ubyte.gz"), labels(f"{d}/t10k-labels-idx1-ubyte.gz")

model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 13 * 13, 10))
for m in model:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)

times = []
n = x.shape[0]
for epoch in range(a.epochs):
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for i in range(0, n, 32):
        b = perm[i : i + 32]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[b]), y[b])
        loss.backward()
        opt.step()
    times.append(time.perf_counter() - t0)
    print(f"epoch {epoch + 1}: {times[-1]:.3f} s  loss {loss.item():.4f}", flush=True)

with torch.no_grad():
    acc = (model(xt).argmax(1) == yt).float().mean().item()
median = statistics.median(times[1:] if len(times) > 1 else times)
print(f"RESULT torch-cnn B=32 epochs={a.epochs} samples={n} median_s_per_epoch(2..N)={median:.3f} "
      f"test_acc={acc:.4f} torch={torch.__version__}")
