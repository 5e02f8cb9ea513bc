#!/usr/bin/python3
"""Golden values for tests/test_recurrent.c: Keras's SimpleRNN, LSTM and GRU computed by
PyTorch float64 (nn.RNN, nn.LSTM, nn.GRU) with Keras's weights mapped onto torch's.

Run with Debian's interpreter (python3-torch):

    /usr/bin/python3 tools/make_rnn_fixtures.py   # writes tests/fixtures/rnn_golden.txt
                                                  # and tests/fixtures/rnn_state_golden.txt

The mapping (keras/src/layers/rnn/{simple_rnn,lstm,gru}.py against torch.nn's docs):
  * kernel (features, gates * units) is torch's weight_ih_l0 transposed, and
    recurrent_kernel (units, gates * units) its weight_hh_l0 transposed;
  * LSTM: both order the gates i, f, c (torch's g), o; Keras's one bias is torch's
    bias_ih_l0, with bias_hh_l0 zero;
  * GRU (reset_after=True, Keras's default): Keras orders z, r, h and torch r, z, n, so
    the blocks are reordered; Keras's bias row 0 is bias_ih_l0, row 1 bias_hh_l0. Both
    compute h = z h_prev + (1 - z) n with r applied to the recurrent product plus its bias;
  * SimpleRNN: tanh(x W + h U + b), torch's nn.RNN with bias_hh_l0 zero.
go_backwards: Keras reads the steps from the last and returns them in that order, which
is torch on the time-reversed input. The loss is sum(output * R) for a fixed random R;
the gradients are torch's autograd for x and the three Keras variables.

Format: `case NAME KIND UNITS RETURN_SEQUENCES GO_BACKWARDS`, then arrays `NAME RANK
DIM... : V...` for x, kernel, recurrent_kernel, bias, r, output, grad_x, grad_kernel,
grad_recurrent_kernel, grad_bias; `end`.

rnn_state_golden.txt (tests/test_rnn_state.c): Keras's initial_state and return_state,
torch's h0/c0 and h_n/c_n. The same format, with h0 (and c0 for LSTM), rh (and rc), the
returned h (and c) and grad_h0 (and grad_c0) added; the loss is sum(output * r) +
sum(h * rh) (+ sum(c * rc)).
"""

import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "rnn_golden.txt")
OUT_STATE = os.path.join(HERE, "..", "tests", "fixtures", "rnn_state_golden.txt")
rng = np.random.default_rng(20261203)


def arr(tag, x):
    x = np.asarray(x, dtype=np.float64)
    return "%s %d %s: %s" % (tag, x.ndim, "".join("%d " % d for d in x.shape),
                             " ".join(repr(float(v)) for v in x.ravel()))


def gru_to_torch(w, u):
    z, r, h = np.split(w, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def gru_from_torch(g, u):
    r, z, h = np.split(g, 3, axis=-1)
    return np.concatenate([z, r, h], axis=-1)


def run(name, kind, b, t, f, u, return_sequences, go_backwards):
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x = rng.uniform(-1, 1, size=(b, t, f))
    kernel = rng.uniform(-0.5, 0.5, size=(f, gates * u))
    rec = rng.uniform(-0.5, 0.5, size=(u, gates * u))
    bias = rng.uniform(-0.3, 0.3, size=(2, gates * u) if kind == "gru" else (gates * u,))
    mod = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](f, u, batch_first=True)
    order = (lambda w: gru_to_torch(w, u)) if kind == "gru" else (lambda w: w)
    back = (lambda g: gru_from_torch(g, u)) if kind == "gru" else (lambda g: g)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(order(kernel).T))
        mod.weight_hh_l0.copy_(torch.tensor(order(rec).T))
        mod.bias_ih_l0.copy_(torch.tensor(order(bias[0] if kind == "gru" else bias)))
        mod.bias_hh_l0.copy_(torch.tensor(order(bias[1]) if kind == "gru" else np.zeros(gates * u)))
    xt = torch.tensor(x, requires_grad=True)
    inp = torch.flip(xt, [1]) if go_backwards else xt
    out, _ = mod(inp)
    y = out if return_sequences else out[:, -1, :]
    r = rng.uniform(-1, 1, size=tuple(y.shape))
    (y * torch.tensor(r)).sum().backward()
    gx = xt.grad.numpy()
    gk = back(mod.weight_ih_l0.grad.numpy().T)
    gr = back(mod.weight_hh_l0.grad.numpy().T)
    gb_in = back(mod.bias_ih_l0.grad.numpy())
    gb = np.stack([gb_in, back(mod.bias_hh_l0.grad.numpy())]) if kind == "gru" else gb_in
    lines = ["case %s %s %d %d %d" % (name, kind, u, int(return_sequences), int(go_backwards))]
    for tag, v in (("x", x), ("kernel", kernel), ("recurrent_kernel", rec), ("bias", bias), ("r", r),
                   ("output", y.detach().numpy()), ("grad_x", gx), ("grad_kernel", gk),
                   ("grad_recurrent_kernel", gr), ("grad_bias", gb)):
        lines.append(arr(tag, v.detach().numpy() if torch.is_tensor(v) else v))
    lines.append("end")
    return lines


def run_states(name, kind, b, t, f, u, return_sequences, go_backwards):
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x = rng.uniform(-1, 1, size=(b, t, f))
    kernel = rng.uniform(-0.5, 0.5, size=(f, gates * u))
    rec = rng.uniform(-0.5, 0.5, size=(u, gates * u))
    bias = rng.uniform(-0.3, 0.3, size=(2, gates * u) if kind == "gru" else (gates * u,))
    h0 = rng.uniform(-1, 1, size=(b, u))
    c0 = rng.uniform(-1, 1, size=(b, u))
    mod = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](f, u, batch_first=True)
    order = (lambda w: gru_to_torch(w, u)) if kind == "gru" else (lambda w: w)
    back = (lambda g: gru_from_torch(g, u)) if kind == "gru" else (lambda g: g)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.tensor(order(kernel).T))
        mod.weight_hh_l0.copy_(torch.tensor(order(rec).T))
        mod.bias_ih_l0.copy_(torch.tensor(order(bias[0] if kind == "gru" else bias)))
        mod.bias_hh_l0.copy_(torch.tensor(order(bias[1]) if kind == "gru" else np.zeros(gates * u)))
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    inp = torch.flip(xt, [1]) if go_backwards else xt
    if kind == "lstm":
        out, (hn, cn) = mod(inp, (h0t[None], c0t[None]))
    else:
        out, hn = mod(inp, h0t[None])
        cn = None
    y = out if return_sequences else out[:, -1, :]
    r = rng.uniform(-1, 1, size=tuple(y.shape))
    rh = rng.uniform(-1, 1, size=(b, u))
    rc = rng.uniform(-1, 1, size=(b, u))
    loss = (y * torch.tensor(r)).sum() + (hn[0] * torch.tensor(rh)).sum()
    if cn is not None:
        loss = loss + (cn[0] * torch.tensor(rc)).sum()
    loss.backward()
    gk = back(mod.weight_ih_l0.grad.numpy().T)
    gr = back(mod.weight_hh_l0.grad.numpy().T)
    gb_in = back(mod.bias_ih_l0.grad.numpy())
    gb = np.stack([gb_in, back(mod.bias_hh_l0.grad.numpy())]) if kind == "gru" else gb_in
    lines = ["case %s %s %d %d %d" % (name, kind, u, int(return_sequences), int(go_backwards))]
    arrays = [("x", x), ("kernel", kernel), ("recurrent_kernel", rec), ("bias", bias), ("r", r),
              ("output", y.detach().numpy()), ("grad_x", xt.grad.numpy()), ("grad_kernel", gk),
              ("grad_recurrent_kernel", gr), ("grad_bias", gb), ("h0", h0), ("rh", rh),
              ("h", hn[0].detach().numpy()), ("grad_h0", h0t.grad.numpy())]
    if kind == "lstm":
        arrays += [("c0", c0), ("rc", rc), ("c", cn[0].detach().numpy()), ("grad_c0", c0t.grad.numpy())]
    lines += [arr(tag, v) for tag, v in arrays]
    lines.append("end")
    return lines


def main():
    lines = ["# Golden values for tests/test_recurrent.c, generated by tools/make_rnn_fixtures.py",
             "# (PyTorch %s float64, Keras's weights mapped onto torch's). Do not edit." % torch.__version__]
    for kind in ("simple_rnn", "lstm", "gru"):
        lines += run(kind + "_last", kind, 3, 5, 4, 3, False, False)
        lines += run(kind + "_sequences", kind, 2, 4, 3, 2, True, False)
        lines += run(kind + "_backwards", kind, 2, 6, 3, 4, True, True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s" % os.path.normpath(OUT))
    lines = ["# Golden values for tests/test_rnn_state.c, generated by tools/make_rnn_fixtures.py",
             "# (PyTorch %s float64: initial states and returned states). Do not edit." % torch.__version__]
    for kind in ("simple_rnn", "lstm", "gru"):
        lines += run_states(kind + "_state_last", kind, 3, 5, 4, 3, False, False)
        lines += run_states(kind + "_state_backwards", kind, 2, 4, 3, 2, True, True)
    with open(OUT_STATE, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s" % os.path.normpath(OUT_STATE))


if __name__ == "__main__":
    main()
