#!/usr/bin/python3
"""Golden values for tests/test_training_golden.c: whole training steps of two small Keras
models, computed independently in PyTorch float64.

Run with Debian's interpreter, which has python3-torch and python3-numpy:

    /usr/bin/python3 tools/make_training_fixtures.py   # writes tests/fixtures/training_golden.txt

Cases (weights and inputs are seeded numpy values, written literally into the fixture):

  mlp  Dense(4 -> 5, relu) -> Dense(5 -> 3), sparse categorical cross-entropy from logits,
       a batch of 6 integer labels.
  cnn  NHWC input [2, 6, 6, 2] -> Conv2D(3 filters, 3x3, stride 1, padding SAME, relu) ->
       MaxPooling2D(2) -> Flatten -> Dense(27 -> 4), categorical cross-entropy from logits,
       one-hot labels.

For each: the logits, the loss, the gradient of every variable, the variables after one
Adam step, and Keras's fit history over full-batch steps (Adam for both, SGD with
momentum for the MLP) with the variables at the end.

Conventions, all Keras 3's (TensorFlow backend), none of them torch's defaults:

  * Layouts. Variables are kept in Keras's layout as the autograd leaves, so their
    gradients come out in that layout too: Dense kernels [in, out] (y = x @ k + b, where
    torch.nn.Linear stores [out, in]); Conv2D kernels [KH, KW, C_in, F] (torch's are
    [F, C_in, KH, KW]); images NHWC (torch convolves NCHW). The forward pass permutes
    into torch's layout, convolves, and permutes back to NHWC before Flatten, so the
    Dense after Flatten sees Keras's order (h, w, c). The convolution is checked here
    against a direct NHWC sum over the window, with TF's SAME padding (for a 3x3 kernel at
    stride 1: one row/column of zeros on each side).
  * Losses: "sum_over_batch_size", the mean of the per-example cross-entropies; checked
    here against torch's F.cross_entropy.
  * Adam (keras/src/optimizers/adam.py), not torch.optim.Adam: epsilon is added to
    sqrt(v) outside the bias correction,
        m += (g - m) (1 - beta_1);  v += (g^2 - v) (1 - beta_2)
        alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t);  var -= alpha m / (sqrt(v) + eps)
    with beta_1 0.9, beta_2 0.999, eps 1e-7.
  * SGD with momentum (keras/src/optimizers/sgd.py, nesterov false):
        m = momentum m - lr g;  var += m
  * fit's "loss" history: each epoch logs the mean of its batches' losses, each computed
    before that batch's update. With the full batch as one batch per epoch, entry k is the
    loss at the variables after k updates; after the last entry one more update is applied,
    and the "final" weights are the variables after all of them.

The script refuses data where a ReLU pre-activation comes within MARGIN of 0 or a max-pooling
window has two near-equal largest values, at any step it records: there the derivative
jumps, and a tiny rounding difference would pick a different branch.

File format, one record per line ('#' starts a comment; arrays row-major):

    case NAME                              mlp or cnn
    x RANK DIM... : V V ...
    y RANK DIM... : V V ...                integer labels (mlp) or one-hot rows (cnn)
    var NAME RANK DIM... : V V ...         the initial value, in the model's variable order
    logits RANK DIM... : V V ...
    loss V
    grad NAME RANK DIM... : V V ...        d loss / d variable, for every variable
    adam_step LR
    adam NAME RANK DIM... : V V ...        every variable after one Adam step
    trajectory OPT STEPS LR MOMENTUM : V V ...   OPT adam or sgd; fit's per-epoch "loss"
    final OPT NAME RANK DIM... : V V ...   every variable after that fit
    end

Values are written with repr(), which round-trips a float64 exactly.
"""

import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
F = torch.nn.functional

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "training_golden.txt")

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7    # keras.optimizers.Adam defaults
ADAM_LR = 0.01
TRAJECTORY_STEPS = 10
SGD_LR, SGD_MOMENTUM, SGD_STEPS = 0.05, 0.9, 5
MARGIN = 1e-3   # smallest |relu pre-activation| and max-pool gap accepted


# ---- the models, Keras layouts ---------------------------------------------------------------
def conv2d_same_nhwc(x, kernel, bias):
    """Keras Conv2D(padding="same", strides=1) with torch's NCHW conv2d."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    assert kh % 2 == 1 and kw % 2 == 1, "TF's SAME is symmetric only for odd kernels at stride 1"
    w = kernel.permute(3, 2, 0, 1)          # [KH, KW, C_in, F] -> [F, C_in, KH, KW]
    y = F.conv2d(x.permute(0, 3, 1, 2), w, bias, stride=1, padding=(kh // 2, kw // 2))
    return y.permute(0, 2, 3, 1)            # NCHW -> NHWC


def conv2d_same_reference(x, kernel, bias):
    """The same convolution as a direct sum, in numpy: checks the layouts above."""
    x, k, b = x.detach().numpy(), kernel.detach().numpy(), bias.detach().numpy()
    kh, kw, _, nf = k.shape
    n, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = np.zeros((n, h, w, nf))
    for i in range(h):
        for j in range(w):
            window = xp[:, i:i + kh, j:j + kw, :]                    # [n, kh, kw, c]
            out[:, i, j, :] = np.einsum("nabc,abcf->nf", window, k) + b
    return out


def max_pool_2x2_nhwc(y):
    return F.max_pool2d(y.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)


def check_relu_margin(pre, what):
    smallest = float(pre.detach().abs().min())
    assert smallest > MARGIN, f"{what}: a relu pre-activation is {smallest:.3g} from 0; choose other data"


def check_pool_margin(y, what):
    """In each 2x2 window with a positive maximum, the two largest values differ."""
    n, h, w, c = y.shape
    win = y.detach().reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 5, 2, 4).reshape(-1, 4)
    top = win.sort(dim=1, descending=True).values
    live = top[:, 0] > 0
    gap = float((top[live, 0] - top[live, 1]).min())
    assert gap > MARGIN, f"{what}: a max-pool window has two maxima {gap:.3g} apart; choose other data"


def mlp_forward(v, x):
    pre = x @ v["dense/kernel"] + v["dense/bias"]
    check_relu_margin(pre, "mlp dense")
    return torch.relu(pre) @ v["dense_1/kernel"] + v["dense_1/bias"]


def mlp_loss(logits, y):
    """SparseCategoricalCrossentropy(from_logits=True), sum_over_batch_size."""
    lsm = F.log_softmax(logits, dim=-1)
    loss = -lsm.gather(1, y.long().unsqueeze(1)).squeeze(1).mean()
    assert torch.allclose(loss, F.cross_entropy(logits, y.long()), rtol=1e-14, atol=0)
    return loss


def cnn_forward(v, x):
    pre = conv2d_same_nhwc(x, v["conv2d/kernel"], v["conv2d/bias"])
    ref = conv2d_same_reference(x, v["conv2d/kernel"], v["conv2d/bias"])
    assert np.allclose(pre.detach().numpy(), ref, rtol=1e-13, atol=1e-13), "conv layout"
    check_relu_margin(pre, "cnn conv2d")
    act = torch.relu(pre)
    check_pool_margin(act, "cnn max_pooling2d")
    pooled = max_pool_2x2_nhwc(act)                      # [n, 3, 3, 3], NHWC
    flat = pooled.reshape(pooled.shape[0], -1)           # Keras's Flatten: (h, w, c) order
    return flat @ v["dense/kernel"] + v["dense/bias"]


def cnn_loss(logits, y):
    """CategoricalCrossentropy(from_logits=True), sum_over_batch_size."""
    loss = -(y * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    assert torch.allclose(loss, F.cross_entropy(logits, y), rtol=1e-14, atol=0)
    return loss


# ---- Keras's optimizers -----------------------------------------------------------------------
class KerasAdam:
    def __init__(self, lr):
        self.lr, self.t, self.m, self.v = lr, 0, {}, {}

    def apply(self, variables, grads):
        self.t += 1
        alpha = self.lr * np.sqrt(1 - BETA_2 ** self.t) / (1 - BETA_1 ** self.t)
        for name, g in grads.items():
            m = self.m.setdefault(name, torch.zeros_like(g))
            v = self.v.setdefault(name, torch.zeros_like(g))
            m += (g - m) * (1 - BETA_1)
            v += (g * g - v) * (1 - BETA_2)
            with torch.no_grad():
                variables[name] -= m * alpha / (torch.sqrt(v) + EPSILON)


class KerasSGD:
    def __init__(self, lr, momentum):
        self.lr, self.momentum, self.m = lr, momentum, {}

    def apply(self, variables, grads):
        for name, g in grads.items():
            m = self.m.setdefault(name, torch.zeros_like(g))
            m.mul_(self.momentum).sub_(self.lr * g)
            with torch.no_grad():
                variables[name] += m


def check_adam_against_torch(initial, grads, adam_vars):
    """torch.optim.Adam adds its eps to sqrt(v) / sqrt(1 - beta_2^t), Keras adds it to sqrt(v):
    at t = 1 torch with eps / sqrt(1 - beta_2) takes exactly Keras's step."""
    params = [torch.tensor(initial[n].detach().numpy(), requires_grad=True) for n in initial]
    opt = torch.optim.Adam(params, lr=ADAM_LR, betas=(BETA_1, BETA_2), eps=EPSILON / np.sqrt(1 - BETA_2))
    for p, n in zip(params, initial):
        p.grad = grads[n].clone()
    opt.step()
    for p, n in zip(params, initial):
        assert torch.allclose(p.detach(), adam_vars[n], rtol=1e-13, atol=1e-15), n


# ---- one case ----------------------------------------------------------------------------------
def leaves(values):
    return {n: torch.tensor(a, requires_grad=True) for n, a in values.items()}


def step(forward, loss_fn, variables, x, y):
    logits = forward(variables, x)
    loss = loss_fn(logits, y)
    names = list(variables)
    grads = torch.autograd.grad(loss, [variables[n] for n in names])
    return logits.detach(), loss.detach(), dict(zip(names, grads))


def trajectory(forward, loss_fn, initial, x, y, make_opt, steps):
    """fit(epochs=steps, batch_size=everything, shuffle=False): the loss logged each epoch
    (before that epoch's update) and the variables at the end."""
    variables = leaves(initial)
    opt, losses = make_opt(), []
    for _ in range(steps):
        _, loss, grads = step(forward, loss_fn, variables, x, y)
        losses.append(float(loss))
        opt.apply(variables, grads)
    forward(variables, x)            # the margin checks also hold where it ends
    return losses, {n: v.detach() for n, v in variables.items()}


def flat(a):
    return " ".join(repr(float(v)) for v in np.asarray(a, dtype=np.float64).reshape(-1))


def array_line(head, a):
    a = np.asarray(a, dtype=np.float64)
    return f"{head} {a.ndim} " + "".join(f"{d} " for d in a.shape) + ": " + flat(a)


def run_case(name, forward, loss_fn, initial, x, y, sgd):
    xt, yt = torch.tensor(x), torch.tensor(y)
    variables = leaves(initial)
    logits, loss, grads = step(forward, loss_fn, variables, xt, yt)
    adam = KerasAdam(ADAM_LR)
    adam.apply(variables, grads)
    adam_vars = {n: v.detach() for n, v in variables.items()}
    check_adam_against_torch(leaves(initial), grads, adam_vars)

    lines = [f"case {name}", array_line("x", x), array_line("y", y)]
    lines += [array_line(f"var {n}", a) for n, a in initial.items()]
    lines += [array_line("logits", logits), f"loss {float(loss)!r}"]
    lines += [array_line(f"grad {n}", g.numpy()) for n, g in grads.items()]
    lines += [f"adam_step {ADAM_LR!r}"] + [array_line(f"adam {n}", v.numpy()) for n, v in adam_vars.items()]

    runs = [("adam", TRAJECTORY_STEPS, ADAM_LR, 0.0, lambda: KerasAdam(ADAM_LR))]
    if sgd:
        runs.append(("sgd", SGD_STEPS, SGD_LR, SGD_MOMENTUM, lambda: KerasSGD(SGD_LR, SGD_MOMENTUM)))
    for opt, steps, lr, momentum, make in runs:
        losses, final = trajectory(forward, loss_fn, initial, xt, yt, make, steps)
        assert losses[0] == float(loss) and losses[-1] < losses[0], (name, opt, losses)
        lines.append(f"trajectory {opt} {steps} {lr!r} {momentum!r} : {flat(losses)}")
        lines += [array_line(f"final {opt} {n}", v.numpy()) for n, v in final.items()]
    lines.append("end")
    return lines


# ---- the data ----------------------------------------------------------------------------------
def mlp_case(rng):
    x = rng.normal(size=(6, 4))
    y = np.array([0, 2, 1, 2, 0, 1], dtype=np.float64)
    initial = {"dense/kernel": rng.normal(scale=0.6, size=(4, 5)),
               "dense/bias": rng.normal(scale=0.1, size=(5,)),
               "dense_1/kernel": rng.normal(scale=0.6, size=(5, 3)),
               "dense_1/bias": rng.normal(scale=0.1, size=(3,))}
    return run_case("mlp", mlp_forward, mlp_loss, initial, x, y, sgd=True)


def cnn_case(rng):
    x = rng.normal(size=(2, 6, 6, 2))
    y = np.eye(4)[[3, 1]]
    initial = {"conv2d/kernel": rng.normal(scale=0.4, size=(3, 3, 2, 3)),
               "conv2d/bias": rng.normal(scale=0.1, size=(3,)),
               "dense/kernel": rng.normal(scale=0.3, size=(27, 4)),
               "dense/bias": rng.normal(scale=0.1, size=(4,))}
    return run_case("cnn", cnn_forward, cnn_loss, initial, x, y, sgd=False)


def main():
    rng = np.random.default_rng(20260714)
    out = ["# Golden values for tests/test_training_golden.c, generated by tools/make_training_fixtures.py",
           f"# (Keras 3's layers, losses, Adam/SGD and fit history in PyTorch {torch.__version__} float64).",
           "# Do not edit by hand; rerun the script."]
    out += mlp_case(rng)
    out += cnn_case(rng)
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {os.path.relpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
