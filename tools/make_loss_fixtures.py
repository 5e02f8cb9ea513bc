#!/usr/bin/python3
"""Golden values for tests/test_losses.c: Keras 3's losses, in float64.

Run with Debian's interpreter, which has python3-torch and python3-numpy:

    /usr/bin/python3 tools/make_loss_fixtures.py       # writes tests/fixtures/loss_golden.txt

The losses are written out below as Keras 3 computes them (keras/src/losses/losses.py,
keras/src/backend/tensorflow/nn.py, keras/src/losses/loss.py), in torch float64 ops so
that torch's autograd gives the gradient with respect to y_pred. Where torch has the same
loss built in, the script checks that it agrees; where torch differs from Keras, the Keras
formula is the one used:

  * binary cross-entropy on probabilities: Keras clips p to [1e-7, 1 - 1e-7]; torch's
    F.binary_cross_entropy clamps log(p) at -100 instead.
  * categorical cross-entropy on probabilities: Keras divides each row by its sum, then
    clips to [1e-7, 1 - 1e-7]; torch has no such loss (nll_loss takes log-probabilities).
  * sparse categorical cross-entropy on probabilities: Keras takes log(clip(p)) as
    logits, i.e. renormalises after clipping.
  * binary label smoothing (z (1 - s) + s / 2) does not exist in torch.
  * sample weights: Keras's "sum_over_batch_size" is sum(values * weight) / number of
    values; torch's weighted means divide by the sum of the weights.
  * KL divergence clips y_true and y_pred to [1e-7, 1] (F.kl_div takes log-probabilities
    and clips nothing); Poisson is F.poisson_nll_loss(log_input=False, eps=1e-7);
    cosine similarity normalises each side by rsqrt(max(sum(x^2), 1e-14)) where
    F.cosine_similarity divides by max(|x| |y|, eps): equal away from zero vectors;
    log-cosh is x + softplus(-2x) - log 2, checked against log(cosh(x)); hinge's 0/1
    labels become -1/1 (convert_binary_labels_to_hinge); torch has neither hinge loss
    in Keras's form, nor the categorical focal cross-entropy.

Gradients come from torch's autograd through these formulas, and are checked against
torch's built-ins where those apply. torch.clamp passes the gradient at the bounds
themselves and stops it outside, like tf.clip_by_value. File format, one record per line ('#' starts a comment):

    case NAME
    loss KIND FROM_LOGITS LABEL_SMOOTHING DELTA ALPHA GAMMA
    y_true DTYPE RANK DIM... : V V ...     DTYPE f64, i32 or i64; row-major
    y_pred RANK DIM... : V V ...
    sample_weight RANK DIM... : V V ...    (optional)
    values V V ...                         the per-sample losses
    value V                                the reduced loss
    grad V V ...                           d value / d y_pred
    end

Values are written with repr(), which round-trips a float64 exactly.
"""

import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
F = torch.nn.functional

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "loss_golden.txt")
EPS = 1e-7  # keras.backend.epsilon()


# ---- Keras's losses, per sample ------------------------------------------------------------
def match_ranks(a, b):
    """keras.src.losses.loss.squeeze_or_expand_to_same_rank (expand_rank_1=True)."""
    if a.dim() == b.dim() + 1 and a.shape[-1] == 1:
        return (a, b.unsqueeze(-1)) if b.dim() == 1 else (a.squeeze(-1), b)
    if b.dim() == a.dim() + 1 and b.shape[-1] == 1:
        return (a.unsqueeze(-1), b) if a.dim() == 1 else (a, b.squeeze(-1))
    return a, b


def mse(t, p, o):
    return ((t - p) ** 2).mean(-1)


def mae(t, p, o):
    return (t - p).abs().mean(-1)


def huber(t, p, o):
    d = o["delta"]
    err = p - t
    a = err.abs()
    return torch.where(a <= d, 0.5 * err ** 2, d * a - 0.5 * d * d).mean(-1)


def bce(t, p, o):
    s = o["label_smoothing"]
    if s:
        t = t * (1 - s) + 0.5 * s
    if o["from_logits"]:
        # tf.nn.sigmoid_cross_entropy_with_logits, written with where(x >= 0) as TF does:
        # at x = 0 its gradient is sigmoid(0) - z (with abs() it would be 1 - z).
        x = p
        pos = x >= 0
        e = torch.where(pos, x, torch.zeros_like(x)) - x * t + torch.log1p(torch.exp(torch.where(pos, -x, x)))
    else:
        q = p.clamp(EPS, 1 - EPS)
        e = -(t * torch.log(q) + (1 - t) * torch.log(1 - q))
    return e.mean(-1)


def cce(t, p, o):
    s = o["label_smoothing"]
    if s:
        t = t * (1 - s) + s / p.shape[-1]
    if o["from_logits"]:
        return -(t * F.log_softmax(p, dim=-1)).sum(-1)
    q = (p / p.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS)
    return -(t * torch.log(q)).sum(-1)


def scce(t, p, o):
    if t.dim() == p.dim() and t.shape[-1] == 1:
        t = t.squeeze(-1)
    logits = p if o["from_logits"] else torch.log(p.clamp(EPS, 1 - EPS))
    lsm = F.log_softmax(logits, dim=-1)
    return -lsm.gather(-1, t.long().unsqueeze(-1)).squeeze(-1)


def kld(t, p, o):
    t = t.clamp(EPS, 1)
    return (t * torch.log(t / p.clamp(EPS, 1))).sum(-1)


def hinge_labels(t):
    return 2.0 * t - 1.0 if bool(((t == 0) | (t == 1)).all()) else t


def hinge(t, p, o):
    return torch.clamp(1.0 - hinge_labels(t) * p, min=0.0).mean(-1)


def squared_hinge(t, p, o):
    return (torch.clamp(1.0 - hinge_labels(t) * p, min=0.0) ** 2).mean(-1)


def log_cosh(t, p, o):
    x = p - t
    return (x + F.softplus(-2.0 * x) - np.log(2.0)).mean(-1)


def poisson(t, p, o):
    return (p - t * torch.log(p + EPS)).mean(-1)


def normalize(x):
    return x * torch.rsqrt(torch.clamp((x * x).sum(-1, keepdim=True), min=EPS * EPS))


def cosine(t, p, o):
    return -(normalize(t) * normalize(p)).sum(-1)


def focal(t, p, o):
    s = o["label_smoothing"]
    if s:
        t = t * (1 - s) + s / p.shape[-1]
    if o["from_logits"]:
        p = F.softmax(p, dim=-1)
    q = (p / p.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS)
    return (o["alpha"] * (1.0 - q) ** o["gamma"] * -t * torch.log(q)).sum(-1)


LOSSES = {"mean_squared_error": mse, "mean_absolute_error": mae, "huber": huber,
          "binary_crossentropy": bce, "categorical_crossentropy": cce,
          "sparse_categorical_crossentropy": scce, "kl_divergence": kld, "hinge": hinge,
          "squared_hinge": squared_hinge, "log_cosh": log_cosh, "poisson": poisson,
          "cosine_similarity": cosine, "categorical_focal_crossentropy": focal}
DISTRIBUTIONS = ("categorical_crossentropy", "kl_divergence", "cosine_similarity", "categorical_focal_crossentropy")


def per_sample(kind, t, p, o):
    if kind != "sparse_categorical_crossentropy":
        t, p = match_ranks(t, p)
        if kind not in DISTRIBUTIONS and p.dim() == 1:
            # tapegrad counts a vector as [B, 1]: one value per sample.
            t, p = t.unsqueeze(-1), p.unsqueeze(-1)
    return LOSSES[kind](t, p, o)


def reduce(values, sw):
    """keras.src.losses.loss.reduce_weighted_values, "sum_over_batch_size"."""
    if sw is not None:
        values, sw = match_ranks(values, sw)
        values = values * sw
    return values.sum() / values.numel()


# ---- torch's own losses where they agree with Keras ----------------------------------------
def torch_reference(kind, t, p, o):
    """The same per-sample values from torch's built-ins, or None where torch differs."""
    if t.shape != p.shape and kind != "sparse_categorical_crossentropy":
        return None
    if kind == "mean_squared_error":
        return F.mse_loss(p, t, reduction="none").mean(-1)
    if kind == "mean_absolute_error":
        return F.l1_loss(p, t, reduction="none").mean(-1)
    if kind == "huber":
        return F.huber_loss(p, t, reduction="none", delta=o["delta"]).mean(-1)
    if kind == "binary_crossentropy" and o["from_logits"] and not o["label_smoothing"]:
        return F.binary_cross_entropy_with_logits(p, t, reduction="none").mean(-1)
    if kind == "categorical_crossentropy" and o["from_logits"] and p.dim() == 2:
        return F.cross_entropy(p, t, reduction="none", label_smoothing=o["label_smoothing"])
    if kind == "sparse_categorical_crossentropy" and o["from_logits"] and p.dim() == 2:
        return F.cross_entropy(p, t.reshape(-1).long(), reduction="none")
    if p.dim() == 1:  # tapegrad's [B, 1] reading of a vector, which the built-ins do not share
        return None
    if kind == "kl_divergence":
        return F.kl_div(torch.log(p.clamp(EPS, 1)), t.clamp(EPS, 1), reduction="none").sum(-1)
    if kind == "poisson":
        return F.poisson_nll_loss(p, t, log_input=False, eps=EPS, full=False, reduction="none").mean(-1)
    if kind == "cosine_similarity":
        return -F.cosine_similarity(t, p, dim=-1, eps=1e-300)
    if kind == "log_cosh":
        return torch.log(torch.cosh(p - t)).mean(-1)
    return None


# ---- cases -------------------------------------------------------------------------------------
CASES = []


def case(name, kind, y_true, y_pred, sample_weight=None, true_dtype="f64", from_logits=False,
         label_smoothing=0.0, delta=1.0, alpha=0.25, gamma=2.0):
    CASES.append(dict(name=name, kind=kind, y_true=y_true, y_pred=y_pred, sw=sample_weight,
                      true_dtype=true_dtype, o=dict(from_logits=from_logits, label_smoothing=label_smoothing,
                                                    delta=delta, alpha=alpha, gamma=gamma)))


rng = np.random.default_rng(20260601)


def uniform(shape, lo, hi):
    return np.round(rng.uniform(lo, hi, size=shape), 4).tolist()


def probs(rows, cols):
    p = rng.uniform(0.05, 1.0, size=(rows, cols))
    return np.round(p / p.sum(-1, keepdims=True), 6).tolist()


def one_hot(labels, depth):
    return np.eye(depth)[labels].tolist()


# Regression losses; errors kept away from 0 (|x| kink) and from huber's delta.
case("mse", "mean_squared_error", uniform((3, 4), -2, 2), uniform((3, 4), -2, 2))
case("mse_weighted", "mean_squared_error", uniform((4, 2), -1, 1), uniform((4, 2), -1, 1),
     sample_weight=[0.5, 2.0, 0.0, 1.25])
case("mse_vector_labels", "mean_squared_error", [0.5, -1.0, 2.0, 0.25], [[0.1], [-0.7], [1.2], [0.9]],
     sample_weight=[[1.0], [0.5], [2.0], [1.5]])
case("mse_rank3", "mean_squared_error", uniform((2, 3, 2), -1, 1), uniform((2, 3, 2), -1, 1),
     sample_weight=[[2.0], [0.5]])
case("mae", "mean_absolute_error", [[0.3, -1.2, 2.0], [1.5, 0.0, -0.4], [0.9, 0.8, -2.2]],
     [[0.1, -0.2, 2.5], [1.0, 0.7, 0.6], [-0.3, 1.4, -1.9]])
case("mae_weighted", "mean_absolute_error", [[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]],
     [[1.5, 1.0], [2.0, -0.5], [0.75, 1.0]], sample_weight=[1.0, 3.0, 0.5])
case("huber", "huber", [[0.0, 1.0, -2.0, 0.5], [3.0, -1.0, 0.2, 0.0]],
     [[0.3, -0.9, -0.1, 0.45], [0.2, -1.6, 2.9, -0.05]])
case("huber_delta", "huber", [[0.0, 1.0, -2.0], [3.0, -1.0, 0.2]], [[0.3, -0.9, -2.1], [0.2, -1.6, 2.9]],
     sample_weight=[0.75, 2.0], delta=0.5)

# Binary cross-entropy; exact 0 and 1 among the probabilities are clipped (zero gradient).
bt = [[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]]
case("bce_probs", "binary_crossentropy", bt, [[0.9, 0.2, 0.6], [0.3, 0.0, 0.75], [1.0, 0.55, 0.1],
                                              [0.45, 0.8, 0.35]])
case("bce_probs_smooth_weighted", "binary_crossentropy", bt, [[0.9, 0.2, 0.6], [0.3, 0.05, 0.75],
                                                              [0.85, 0.55, 0.1], [0.45, 0.8, 0.35]],
     sample_weight=[1.0, 0.5, 2.0, 0.0], label_smoothing=0.2)
case("bce_logits", "binary_crossentropy", bt, [[2.0, -1.5, 0.0], [0.3, -3.0, 1.2], [4.5, 0.7, -0.2],
                                               [-0.6, 1.9, -2.4]], from_logits=True)
case("bce_logits_smooth_weighted", "binary_crossentropy", bt, [[2.0, -1.5, 0.4], [0.3, -3.0, 1.2],
                                                               [4.5, 0.7, -0.2], [-0.6, 1.9, -2.4]],
     sample_weight=[2.0, 1.0, 0.5, 1.5], from_logits=True, label_smoothing=0.1)
case("bce_vector_labels", "binary_crossentropy", [1, 0, 0, 1, 1], [[1.3], [-0.4], [0.8], [2.2], [-1.1]],
     from_logits=True)

# Categorical cross-entropy. Probabilities: rows that do not sum to 1 are rescaled first.
ct = one_hot([2, 0, 3], 4)
case("cce_probs", "categorical_crossentropy", ct, [[0.1, 0.2, 0.5, 0.2], [0.6, 0.3, 0.3, 0.2],
                                                   [0.25, 0.0, 0.25, 0.5]])
case("cce_probs_smooth_weighted", "categorical_crossentropy", ct, probs(3, 4),
     sample_weight=[1.5, 0.5, 1.0], label_smoothing=0.1)
case("cce_logits", "categorical_crossentropy", one_hot([1, 4, 0], 5), uniform((3, 5), -3, 3), from_logits=True)
case("cce_logits_smooth_weighted", "categorical_crossentropy", one_hot([1, 4, 0], 5), uniform((3, 5), -3, 3),
     sample_weight=[[0.25], [2.0], [1.0]], from_logits=True, label_smoothing=0.2)
case("cce_soft_labels", "categorical_crossentropy", [[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]], uniform((2, 3), -2, 2),
     from_logits=True)
# TF's K8: one unit. Each row divided by itself is 1, clipped to 1 - 1e-7: a constant.
case("cce_one_unit", "categorical_crossentropy", [[1.0], [0.0], [1.0], [1.0]], [[0.7], [0.2], [0.95], [0.4]])

# Sparse categorical cross-entropy: integer labels [B] or [B, 1].
case("scce_logits", "sparse_categorical_crossentropy", [3, 0, 1, 4], uniform((4, 5), -3, 3),
     true_dtype="i64", from_logits=True)
case("scce_logits_weighted", "sparse_categorical_crossentropy", [[2], [0], [1]], uniform((3, 4), -2, 2),
     sample_weight=[0.5, 1.0, 2.0], true_dtype="i32", from_logits=True)
case("scce_probs", "sparse_categorical_crossentropy", [2, 1, 0], [[0.1, 0.2, 0.7], [0.3, 0.0, 0.7],
                                                                   [0.5, 0.25, 0.25]], true_dtype="i64")
case("scce_probs_unnormalised", "sparse_categorical_crossentropy", [1, 2], [[0.2, 0.2, 0.2], [0.6, 0.3, 0.9]],
     true_dtype="i32")

# The rest of Keras's losses.
case("kld", "kl_divergence", probs(3, 4), probs(3, 4))
case("kld_weighted_zeros", "kl_divergence", [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], [[0.3, 0.6, 0.1], [0.2, 0.5, 0.3]],
     sample_weight=[2.0, 0.5])
case("hinge_binary_labels", "hinge", [[1, 0, 1], [0, 0, 1]], [[0.6, -0.2, 1.7], [0.3, -1.4, 0.2]])
case("hinge_signed_labels", "hinge", [[1, -1, 1], [-1, 1, 1]], [[0.6, -0.2, 1.7], [0.3, -1.4, 0.2]],
     sample_weight=[1.0, 3.0])
case("squared_hinge", "squared_hinge", [[1, 0], [0, 1], [1, 1]], [[0.4, 0.3], [-0.8, 0.1], [2.0, -0.5]])
case("log_cosh", "log_cosh", uniform((3, 3), -2, 2), uniform((3, 3), -2, 2))
case("log_cosh_vector", "log_cosh", [0.5, -1.0, 3.0], [1.5, -0.2, -2.0])
case("poisson", "poisson", [[1.0, 0.0, 3.0], [2.0, 5.0, 1.0]], [[0.8, 0.2, 2.5], [1.9, 4.1, 1.3]])
case("cosine_similarity", "cosine_similarity", uniform((3, 4), -1, 1), uniform((3, 4), -1, 1),
     sample_weight=[1.0, 0.5, 2.0])
case("focal_probs", "categorical_focal_crossentropy", one_hot([2, 0, 1], 3), [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2],
                                                                              [0.3, 0.3, 0.4]])
case("focal_logits_smooth", "categorical_focal_crossentropy", one_hot([1, 3, 0], 4), uniform((3, 4), -2, 2),
     from_logits=True, label_smoothing=0.1, alpha=0.5, gamma=1.5)


# ---- output -------------------------------------------------------------------------------------
def flat(x):
    return " ".join(repr(float(v)) for v in np.asarray(x, dtype=np.float64).reshape(-1))


def array_line(tag, x, dtype=None):
    a = np.asarray(x, dtype=np.float64)
    head = f"{tag} {dtype} " if dtype else f"{tag} "
    values = " ".join(str(int(v)) for v in a.reshape(-1)) if dtype in ("i32", "i64") else flat(a)
    return head + f"{a.ndim} " + "".join(f"{d} " for d in a.shape) + ": " + values


def run(c):
    t = torch.tensor(c["y_true"], dtype=torch.float64)
    p = torch.tensor(c["y_pred"], dtype=torch.float64, requires_grad=True)
    sw = torch.tensor(c["sw"], dtype=torch.float64) if c["sw"] is not None else None
    values = per_sample(c["kind"], t, p, c["o"])
    loss = reduce(values, sw)
    (grad,) = torch.autograd.grad(loss, p)
    ref = torch_reference(c["kind"], t, p, c["o"])
    if ref is not None:
        (ref_grad,) = torch.autograd.grad(reduce(ref, sw), p)
        assert torch.allclose(values, ref, rtol=1e-12, atol=1e-14), (c["name"], values, ref)
        assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-14), (c["name"], grad, ref_grad)
    o = c["o"]
    lines = [f"case {c['name']}",
             f"loss {c['kind']} {int(o['from_logits'])} {o['label_smoothing']!r} {o['delta']!r} "
             f"{o['alpha']!r} {o['gamma']!r}",
             array_line("y_true", c["y_true"], c["true_dtype"]),
             array_line("y_pred", c["y_pred"])]
    if c["sw"] is not None:
        lines.append(array_line("sample_weight", c["sw"]))
    lines += [f"values {flat(values.detach())}", f"value {float(loss)!r}", f"grad {flat(grad)}", "end"]
    return lines


def main():
    out = ["# Golden values for tests/test_losses.c, generated by tools/make_loss_fixtures.py",
           f"# (Keras 3's formulas in PyTorch {torch.__version__} float64). Do not edit by hand; rerun the script."]
    for c in CASES:
        out += run(c)
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {len(CASES)} cases to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
