#!/usr/bin/python3
"""A smoothed character n-gram model (interpolated Kneser-Ney), the baseline for
`tapegrad fit --data text:FILE`: fitted on the same training text, scored on the same
held-out characters, in bits per character.

    /usr/bin/python3 tools/char_ngram.py FILE [--order 3] [--seq-len 100] [--validation-split 0.1]

The split is the command's: the text's characters (UTF-8 code points) make
rows = (n - 1) // seq_len windows of seq_len inputs, each with the next seq_len characters
as targets; the first int(rows * (1 - validation_split)) windows train, the rest are held
out. So the n-gram counts come from characters [0, train * seq_len] (every input and
target of the training windows) and it is scored on exactly the held-out windows'
targets, characters [train * seq_len + 1, rows * seq_len], each given the (order - 1)
characters before it in the text (the recurrent model sees at most the characters of its
own window, so the n-gram's context is never shorter than the model's).

Smoothing: interpolated Kneser-Ney (Chen and Goodman 1998, section 3.5, one discount per
order, D = n1 / (n1 + 2 n2) from that order's count-of-counts), no parameter tuned on the
held-out text. The highest order uses raw counts, the lower ones continuation counts (the
number of distinct characters seen before), and the unigram level is interpolated with
the uniform distribution over the vocabulary: the text's distinct characters, as the
command's vocabulary is, so every held-out character has a probability above zero.
"""
import argparse
import math
import sys

import numpy as np


def read_ids(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in text], dtype=np.int64), len(vocab)


def gram_keys(ids, k, V):
    """The k-grams of ids as integers in base V (first character most significant)."""
    n = len(ids) - k + 1
    key = np.zeros(max(n, 0), dtype=np.int64)
    for j in range(k):
        key = key * V + ids[j:j + n]
    return key


def lookup(keys, vals, q):
    """vals[keys == q] for each query, 0 where q is not among the sorted keys."""
    if len(keys) == 0:
        return np.zeros(len(q))
    i = np.searchsorted(keys, q)
    i_ok = np.minimum(i, len(keys) - 1)
    return np.where((i < len(keys)) & (keys[i_ok] == q), vals[i_ok], 0)


class KneserNey:
    def __init__(self, ids, V, order):
        self.V, self.order = V, order
        self.levels = {}  # k -> (gram keys, counts, history keys, history totals, history types, D)
        keys, counts = np.unique(gram_keys(ids, order, V), return_counts=True)
        for k in range(order, 0, -1):
            if k < order:  # continuation counts: distinct characters before each k-gram
                keys, counts = np.unique(keys_above % V**k, return_counts=True)
            counts = counts.astype(np.float64)
            n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
            D = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
            hist, inv = np.unique(keys // V, return_inverse=True)
            totals = np.bincount(inv, weights=counts)
            types = np.bincount(inv).astype(np.float64)
            self.levels[k] = (keys, counts, hist, totals, types, D)
            keys_above = keys

    def prob(self, ctx, c):
        """P(c | ctx) for arrays: ctx (m, order - 1) character ids, c (m,)."""
        p = np.full(len(c), 1.0 / self.V)
        for k in range(1, self.order + 1):
            keys, counts, hist, totals, types, D = self.levels[k]
            h = np.zeros(len(c), dtype=np.int64)
            for j in range(self.order - k, self.order - 1):
                h = h * self.V + ctx[:, j]
            cnt = lookup(keys, counts, h * self.V + c)
            tot = lookup(hist, totals, h)
            typ = lookup(hist, types, h)
            seen = tot > 0
            safe = np.where(seen, tot, 1.0)
            p = np.where(seen, np.maximum(cnt - D, 0) / safe + D * typ / safe * p, p)
        return p


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("file")
    a.add_argument("--order", type=int, default=3)
    a.add_argument("--seq-len", type=int, default=100)
    a.add_argument("--validation-split", type=float, default=0.1)
    a.add_argument("--check", action="store_true", help="also check that P(. | h) sums to 1 for some histories")
    o = a.parse_args()
    ids, V = read_ids(o.file)
    if o.order < 1 or V ** o.order >= 2**62:
        sys.exit(f"--order {o.order} with {V} characters does not fit the 64-bit keys")
    L = o.seq_len
    rows = (len(ids) - 1) // L
    train = int(rows * (1.0 - o.validation_split))
    if train < 1 or train >= rows:
        sys.exit(f"{o.file}: {len(ids)} characters make {rows} windows of {L}: too few to hold some out")
    lm = KneserNey(ids[:train * L + 1], V, o.order)
    pos = np.arange(train * L + 1, rows * L + 1)
    ctx = np.stack([ids[np.maximum(pos - (o.order - 1) + j, 0)] for j in range(o.order - 1)], axis=1) \
        if o.order > 1 else np.zeros((len(pos), 0), dtype=np.int64)
    p = lm.prob(ctx, ids[pos])
    bpc = -np.mean(np.log2(p))
    if o.check:
        rng = np.random.default_rng(0)
        for t in rng.choice(pos, size=20, replace=False):
            h = np.repeat(ctx[pos == t], V, axis=0)
            total = lm.prob(h, np.arange(V)).sum()
            assert abs(total - 1) < 1e-9, (t, total)
        print("check: P(. | h) sums to 1 over the vocabulary for 20 held-out histories")
    print(f"{o.file}: {len(ids)} characters, {V} distinct; {rows} windows of {L}, {train} for training "
          f"({train * L + 1} characters), {rows - train} held out ({len(pos)} characters scored)")
    print(f"interpolated Kneser-Ney {o.order}-gram: held-out loss {bpc * math.log(2):.4f} nats, "
          f"{bpc:.4f} bits per character")


if __name__ == "__main__":
    main()
