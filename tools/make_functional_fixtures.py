#!/usr/bin/python3
"""Golden values for tests/test_functional.c: one fit step of a functional model of two
inputs and two outputs with a loss per output, computed independently in PyTorch float64.

Run with Debian's interpreter, which has python3-torch and python3-numpy:

    /usr/bin/python3 tools/make_functional_fixtures.py   # writes tests/fixtures/functional_fit.txt

The model (Keras's functional API):

    a = Input((3,)); b = Input((3,))
    shared = Dense(4, activation="tanh")             # one layer called on both inputs
    ha, hb = shared(a), shared(b)
    out1 = Dense(2, name="out1")(Concatenate()([ha, hb]))
    out2 = Dense(1, activation="sigmoid", name="out2")(Add()([ha, hb]))
    compile(SGD(0.1), loss=["mse", "binary_crossentropy"], loss_weights=[1.0, 0.5],
            metrics=[[], ["accuracy"]])
    fit([xa, xb], [y1, y2], batch_size=4, epochs=1, shuffle=False)   # one step

Conventions, Keras 3's: Dense kernels in Keras's layout [in, out] (y = x @ k + b; torch's
Linear stores [out, in]), kept as the autograd leaves so their gradients come out in that
layout; variables in Keras's order for this graph (dense, out1, out2; kernel then bias);
losses "sum_over_batch_size" (mse: the mean of the squares; binary cross-entropy: the mean
of -(y log p + (1 - y) log(1 - p)), p away from Keras's clip at 1e-7); the total loss is
the sum of each output's loss times its weight, and fit logs each weighted part as
"<output>_loss"; binary accuracy thresholds p at 0.5; SGD: var -= lr * grad.

File format, one record per line ('#' starts a comment; arrays row-major):

    NAME RANK DIM... : V V ...     inputs (xa, xb), targets (y1, y2)
    var NAME RANK DIM... : V V ... the initial value of each variable, in the model's order
    log NAME V                     fit's logs after the step (loss, out1_loss, out2_loss,
                                   out2_accuracy)
    after NAME RANK DIM... : V V ...   every variable after the step
"""
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "functional_fit.txt")


def arr(name, a):
    a = np.asarray(a, dtype=np.float64)
    dims = " ".join(str(d) for d in a.shape)
    vals = " ".join(repr(float(v)) for v in a.ravel())
    return f"{name} {a.ndim} {dims} : {vals}"


def main():
    rng = np.random.default_rng(20261203)
    xa = rng.normal(size=(4, 3))
    xb = rng.normal(size=(4, 3))
    y1 = rng.normal(size=(4, 2))
    y2 = np.array([[1.0], [0.0], [1.0], [0.0]])
    init = [
        ("dense/kernel", rng.uniform(-0.8, 0.8, size=(3, 4))),
        ("dense/bias", rng.uniform(-0.1, 0.1, size=(4,))),
        ("out1/kernel", rng.uniform(-0.6, 0.6, size=(8, 2))),
        ("out1/bias", rng.uniform(-0.1, 0.1, size=(2,))),
        ("out2/kernel", rng.uniform(-0.6, 0.6, size=(4, 1))),
        ("out2/bias", rng.uniform(-0.1, 0.1, size=(1,))),
    ]
    v = [torch.tensor(a, requires_grad=True) for _, a in init]
    k, b, k1, b1, k2, b2 = v
    ta, tb = torch.tensor(xa), torch.tensor(xb)
    ha, hb = torch.tanh(ta @ k + b), torch.tanh(tb @ k + b)
    out1 = torch.cat([ha, hb], dim=1) @ k1 + b1
    p = torch.sigmoid((ha + hb) @ k2 + b2)
    assert float(p.min()) > 1e-3 and float(p.max()) < 1 - 1e-3  # far from Keras's clip
    t1, t2 = torch.tensor(y1), torch.tensor(y2)
    mse = ((out1 - t1) ** 2).mean()
    bce = -(t2 * torch.log(p) + (1 - t2) * torch.log(1 - p)).mean()
    # the same through torch's own functions, as a check of the formulas above
    assert abs(float(mse - torch.nn.functional.mse_loss(out1, t1))) < 1e-15
    assert abs(float(bce - torch.nn.functional.binary_cross_entropy(p, t2))) < 1e-15
    part1, part2 = 1.0 * mse, 0.5 * bce
    total = part1 + part2
    total.backward()
    accuracy = float(((p > 0.5).double() == t2).double().mean())
    lines = ["# tools/make_functional_fixtures.py: one fit step of a two-input, two-output model"]
    lines += [arr("xa", xa), arr("xb", xb), arr("y1", y1), arr("y2", y2)]
    lines += ["var " + arr(n, a) for n, a in init]
    lines += [f"log loss {float(total)!r}", f"log out1_loss {float(part1)!r}", f"log out2_loss {float(part2)!r}"]
    lines += [f"log out2_accuracy {accuracy!r}"]
    with torch.no_grad():
        for (n, _), t in zip(init, v):
            lines.append("after " + arr(n, (t - 0.1 * t.grad).numpy()))
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
