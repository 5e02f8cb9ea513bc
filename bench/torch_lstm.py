#!/usr/bin/python3
"""PyTorch eager on the recurrent model that bench/bench_fmnist.c trains with --model
lstm: nn.LSTM(28, 128) over the 28 rows of each Fashion-MNIST image as steps, the last
state into Linear(128, 10), softmax cross-entropy from logits, Adam (1e-3, 0.9, 0.999,
1e-7), reshuffled every epoch, on the first SAMPLES training images. Its best
configuration here, as the MLP benchmark's: torch's pool on --threads threads, denormals
flushed. Prints one line per epoch and a RESULT line (median of epochs 2..N, test
accuracy), as bench_fmnist does.

    /usr/bin/python3 bench/torch_lstm.py [--batch 32] [--epochs 2] [--samples 60000] [--threads 1]
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
    return torch.from_numpy((idx(path, 16).reshape(-1, 28, 28) / 255.0).astype(np.float32))


def labels(path):
    return torch.from_numpy(idx(path, 8).astype(np.int64))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(28, 128, batch_first=True)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.out(h[:, -1, :])


ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--samples", type=int, default=60000)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.set_flush_denormal(True)
torch.manual_seed(a.seed)

d = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
x = images(f"{d}/train-images-idx3-ubyte.gz")[: a.samples]
y = labels(f"{d}/train-labels-idx1-ubyte.gz")[: a.samples]
xt, yt = images(f"{d}/t10k-images-idx3-ubyte.gz"), labels(f"{d}/t10k-labels-idx1-ubyte.gz")

model = Model()
opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
times = []
n = x.shape[0]
for epoch in range(a.epochs):
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for i in range(0, n, a.batch):
        b = perm[i : i + a.batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[b]), y[b])
        loss.backward()
        opt.step()
    times.append(time.perf_counter() - t0)
    print(f"epoch {epoch + 1}: {times[-1]:.3f} s  loss {loss.item():.4f}", flush=True)

with torch.no_grad():
    acc = (model(xt).argmax(1) == yt).float().mean().item()
median = statistics.median(times[1:] if len(times) > 1 else times)
print(f"RESULT torch-lstm B={a.batch} epochs={a.epochs} samples={n} median_s_per_epoch(2..N)={median:.3f} "
      f"test_acc={acc:.4f} torch={torch.__version__}")
