#!/usr/bin/python3
"""Golden values for tests/test_golden.c, computed by an independent framework.

Run with Debian's interpreter, which has python3-torch and python3-numpy:

    /usr/bin/python3 tools/make_fixtures.py            # writes tests/fixtures/golden.txt

Each case is a scalar loss of a composite expression on fixed inputs (written below
as literals) and its gradient with respect to some of them, all in float64. The file
format, one record per line ('#' starts a comment line):

    case NAME
    input NAME RANK DIM... : V V ...     row-major values
    value V                             the loss
    grad NAME : V V ...                 d loss / d input NAME (same shape)
    end

Values are written with repr(), which round-trips a float64 exactly (strtod in C).
Inputs without a grad line are constants. test_golden.c rebuilds each case by NAME.
"""

import os
import sys

import torch

torch.set_default_dtype(torch.float64)
F = torch.nn.functional

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "golden.txt")

CASES = []


def case(name, inputs, grads):
    """Registers fn(**tensors) -> scalar loss, with `inputs` {name: nested list} and
    `grads` the names of the inputs to differentiate with respect to."""
    def register(fn):
        CASES.append((name, inputs, grads, fn))
        return fn
    return register


# (a) a dense layer: the bias broadcasts over the batch.
@case("tanh_affine",
      {"x": [[0.5, -1.2, 0.3, 2.0], [-0.7, 0.1, 1.5, -0.4], [1.1, 0.9, -2.2, 0.25]],
       "W": [[0.2, -0.5], [0.7, 0.1], [-0.3, 0.4], [0.05, -0.6]],
       "b": [0.1, -0.2]},
      ["x", "W", "b"])
def tanh_affine(x, W, b):
    return torch.tanh(x @ W + b).sum()


# (b) the mean of log_softmax times a one-hot (a cross-entropy up to sign and scale).
@case("log_softmax_onehot",
      {"z": [[1.0, 2.0, 0.5, -1.0], [0.3, -0.2, 2.5, 0.0], [-1.5, 0.8, 0.1, 1.7]],
       "onehot": [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]},
      ["z"])
def log_softmax_onehot(z, onehot):
    return (F.log_softmax(z, dim=-1) * onehot).mean()


# (c) sigmoid times a Gaussian bump.
@case("sigmoid_gauss",
      {"x": [[-1.3, 0.2, 0.9], [2.1, -0.45, 0.05]]},
      ["x"])
def sigmoid_gauss(x):
    return (torch.sigmoid(x) * torch.exp(-x * x)).sum()


# (d) logsumexp over axis 1, then the mean.
@case("logsumexp_mean",
      {"x": [[0.1, 1.2, -0.3, 2.2, 0.0], [3.0, -1.0, 0.5, 0.25, 1.5], [-2.0, -0.5, -1.25, 0.75, 0.3]]},
      ["x"])
def logsumexp_mean(x):
    return torch.logsumexp(x, dim=1).mean()


# (e) maximum (no ties) over 1 + |y| (y away from 0).
@case("maximum_div_abs",
      {"x": [[0.4, -1.1, 2.0], [0.3, 0.9, -0.6]],
       "y": [[-0.8, 0.5, 1.2], [1.4, -0.2, -1.7]]},
      ["x", "y"])
def maximum_div_abs(x, y):
    return (torch.maximum(x, y) / (1 + torch.abs(y))).sum()


# (f) the exact (erf) gelu.
@case("gelu_exact",
      {"x": [-2.5, -1.0, -0.3, 0.0, 0.4, 1.3, 3.1]},
      ["x"])
def gelu_exact(x):
    return F.gelu(x).sum()


# (g) the population variance along axis 0, then the sum.
@case("variance_axis0",
      {"x": [[1.0, -0.5, 2.0], [0.3, 0.8, -1.1], [2.4, 0.1, 0.6], [-0.9, 1.7, 0.2]]},
      ["x"])
def variance_axis0(x):
    return torch.var(x, dim=0, unbiased=False).sum()


# (h) softplus times elu (alpha 1; y away from the kink at 0).
@case("softplus_elu",
      {"x": [[0.5, -2.0, 1.5], [-0.1, 3.0, -0.7]],
       "y": [[-1.2, 0.4, 2.0], [0.9, -0.3, -2.5]]},
      ["x", "y"])
def softplus_elu(x, y):
    return (F.softplus(x) * F.elu(y, alpha=1.0)).sum()


# (i) a two-layer MLP with relu and softmax cross-entropy, batch of 4 (the C test makes
# the parameters trainable variables rather than watched constants).
MLP_X = [[0.5, -1.0, 0.3], [1.2, 0.4, -0.8], [-0.6, 0.9, 1.1], [0.2, -0.3, -1.4]]
MLP_W1 = [[0.4, -0.7, 0.2, 0.9, -0.3],
          [-0.5, 0.3, 0.8, -0.2, 0.6],
          [0.1, 0.5, -0.6, 0.35, -0.9]]
MLP_B1 = [0.05, -0.1, 0.15, 0.02, 0.3]
MLP_W2 = [[0.3, -0.4, 0.2], [0.7, 0.1, -0.5], [-0.2, 0.6, 0.4], [0.5, -0.3, 0.1], [-0.6, 0.2, 0.8]]
MLP_B2 = [0.1, 0.0, -0.1]
MLP_ONEHOT = [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]]


@case("mlp_xent",
      {"x": MLP_X, "W1": MLP_W1, "b1": MLP_B1, "W2": MLP_W2, "b2": MLP_B2, "onehot": MLP_ONEHOT},
      ["W1", "b1", "W2", "b2"])
def mlp_xent(x, W1, b1, W2, b2, onehot):
    pre = x @ W1 + b1
    # relu's kink must be far from every pre-activation or the gradient is ill-defined.
    assert pre.abs().min().item() > 1e-2, "an MLP pre-activation is too close to 0"
    logits = torch.relu(pre) @ W2 + b2
    return -(F.log_softmax(logits, dim=-1) * onehot).sum(dim=-1).mean()


# (j) a second derivative: L = sum(d/dx sum(x^3 + exp(x))) = sum(3x^2 + e^x), so
# dL/dx = 6x + e^x; the inner gradient is taken inside the outer tape.
@case("second_derivative",
      {"x": [-1.5, -0.2, 0.7, 1.9]},
      ["x"])
def second_derivative(x):
    y = (x * x * x + torch.exp(x)).sum()
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    return g.sum()


# (k) a gradient penalty: L = sum((d/dx sum(tanh(x * w)))^2), differentiated with
# respect to both x and w (double backward through tanh and a broadcasting mul).
@case("gradient_penalty",
      {"x": [[0.3, -0.8, 1.2], [-1.1, 0.5, 0.05]],
       "w": [0.9, -1.4, 0.6]},
      ["x", "w"])
def gradient_penalty(x, w):
    y = torch.tanh(x * w).sum()
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    return (g * g).sum()


def fmt(values):
    return " ".join(repr(float(v)) for v in values)


def run_case(name, inputs, grads, fn):
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in grads) for k, v in inputs.items()}
    loss = fn(**tensors)
    assert loss.dim() == 0, name + ": the loss must be a scalar"
    dx = torch.autograd.grad(loss, [tensors[k] for k in grads])
    lines = ["case " + name]
    for k, t in tensors.items():
        dims = " ".join(str(d) for d in t.shape)
        lines.append("input %s %d%s : %s" % (k, t.dim(), " " + dims if dims else "",
                                             fmt(t.detach().reshape(-1).tolist())))
    lines.append("value " + repr(loss.item()))
    for k, g in zip(grads, dx):
        assert g.shape == tensors[k].shape
        lines.append("grad %s : %s" % (k, fmt(g.reshape(-1).tolist())))
    lines.append("end")
    return lines


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    lines = ["# Golden values for tests/test_golden.c, generated by tools/make_fixtures.py",
             "# with PyTorch %s in float64. Do not edit by hand; rerun the script." % torch.__version__]
    for c in CASES:
        lines.extend(run_case(*c))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d cases to %s" % (len(CASES), os.path.normpath(out)))


if __name__ == "__main__":
    main()
