#!/usr/bin/python3
"""Golden values for tests/test_ops_linalg.c, from PyTorch in float64.

Run with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 tools/make_linalg_fixtures.py    # writes tests/fixtures/linalg_golden.txt

TensorFlow is the reference; torch.linalg.inv/det/slogdet, torch.einsum and
torch.tensordot compute the same functions and the same gradients (TF's linalg_grad.py
rules are the exact derivatives away from singular matrices).

One array per line ('#' starts a comment), as tests/index_golden.h reads them:

    NAME RANK DIM... : V V ...      row-major float64 values, repr() (exact in strtod)

A case NAME has NAME.x0, NAME.x1 ... (the operands), NAME.y (the output), NAME.w (fixed
weights) and NAME.dx0, NAME.dx1 ..., the gradients of sum(y * w) with respect to each
operand; the one-operand cases of inv, det and slogdet say NAME.x and NAME.dx. slogdet's case has NAME.sign and NAME.y (log|det|), w and dx for log|det|.
The "big" cases hold only values: the 64 x 64 matrix is made by the formula
big_matrix() below, which the test repeats in C.
"""

import math
import os

import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "linalg_golden.txt")

LINES = []


def put(name, t):
    t = t.detach().to(torch.float64)
    dims = " ".join(str(d) for d in t.shape)
    vals = " ".join(repr(float(v)) for v in t.reshape(-1).tolist())
    LINES.append(f"{name} {t.dim()} {dims} : {vals}".replace("  ", " "))


def inputs(shape, seed, lo=-1.5, hi=1.5):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def weights(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return 0.5 + torch.rand(shape, generator=g)


def well_conditioned(shape, seed):
    """Random matrices plus 2 I: far from singular."""
    n = shape[-1]
    return inputs(shape, seed) + 2.0 * torch.eye(n)


def case(name, xs, fn, seed=7, one=False):
    """one: a single operand named x and dx, as tests/index_golden.h's golden_case reads."""
    xs = [x.clone().requires_grad_(True) for x in xs]
    y = fn(*xs)
    for i, x in enumerate(xs):
        put(f"{name}.x" + ("" if one else str(i)), x)
    put(name + ".y", y)
    w = weights(y.shape, seed)
    grads = torch.autograd.grad((y * w).sum(), xs)
    put(name + ".w", w)
    for i, g in enumerate(grads):
        put(f"{name}.dx" + ("" if one else str(i)), g)


# ---- inv, det, slogdet ------------------------------------------------------------------
LINES.append("# inv, det, slogdet: one matrix, a batch, a batch of batches")
case("inv3", [well_conditioned((3, 3), 1)], torch.linalg.inv, one=True)
case("inv_batch", [well_conditioned((2, 2, 4, 4), 2)], torch.linalg.inv, one=True)
case("det3", [well_conditioned((3, 3), 3)], torch.linalg.det, one=True)
case("det_batch", [inputs((2, 3, 3), 4)], torch.linalg.det, one=True)  # some negative determinants
case("det1", [inputs((4, 1, 1), 5)], torch.linalg.det, one=True)
case("slogdet_batch", [inputs((2, 2, 3, 3), 6)], lambda x: torch.linalg.slogdet(x)[1], one=True)
s = torch.linalg.slogdet(inputs((2, 2, 3, 3), 6))[0]
put("slogdet_batch.sign", s)


def big_matrix(n):
    """a[i][j] = sin(i * n + j + 1) + (4 if i == j else 0), as the test builds it."""
    return torch.tensor([[math.sin(i * n + j + 1) + (4.0 if i == j else 0.0) for j in range(n)] for i in range(n)])


LINES.append("# 64 x 64 (big_matrix): values only")
big = big_matrix(64)
sign, logabs = torch.linalg.slogdet(big)
put("big.sign", sign)
put("big.logabsdet", logabs)
put("big.inv_row0", torch.linalg.inv(big)[0])
put("big.inv_diag", torch.linalg.inv(big).diagonal())

# ---- matrix norms 1 and inf (tf.norm with two axes) ----------------------------------------
LINES.append("# matrix norms: ord 1 over axes (-2, -1), ord inf over axes (0, 2)")
case("norm1", [inputs((2, 3, 4), 401)], lambda x: torch.linalg.matrix_norm(x, ord=1), one=True)
case("norm_inf", [inputs((3, 2, 4), 402)], lambda x: torch.linalg.matrix_norm(x, ord=float("inf"), dim=(0, 2)),
     one=True)

# ---- einsum ------------------------------------------------------------------------------
EINSUM = [
    # name, equation, operand shapes
    ("matmul", "ij,jk->ik", [(2, 3), (3, 4)]),
    ("implicit_matmul", "ij,jk", [(2, 3), (3, 4)]),
    ("batch_matmul", "bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("batch_bt", "bij,bkj->bik", [(2, 2, 3), (2, 4, 3)]),
    ("outer", "i,j->ij", [(3,), (4,)]),
    ("dot", "i,i->", [(5,), (5,)]),
    ("hadamard", "ij,ij->ij", [(2, 3), (2, 3)]),
    ("frobenius", "ij,ij", [(2, 3), (2, 3)]),
    ("transpose", "ij->ji", [(2, 3)]),
    ("implicit_transpose", "ba", [(2, 3)]),
    ("permute", "abc->cab", [(2, 3, 4)]),
    ("diag", "ii->i", [(3, 3)]),
    ("trace", "ii->", [(4, 4)]),
    ("implicit_trace", "ii", [(4, 4)]),
    ("batch_trace", "bii->b", [(2, 3, 3)]),
    ("batch_diag", "bii->bi", [(2, 3, 3)]),
    ("diag_mid", "iji->j", [(3, 2, 3)]),
    ("sum_all", "ijk->", [(2, 3, 4)]),
    ("sum_some", "ijk->j", [(2, 3, 4)]),
    ("sum_keep_order", "ijk->ki", [(2, 3, 4)]),
    ("ellipsis_matmul", "...ij,...jk->...ik", [(2, 2, 3), (3, 2)]),
    ("ellipsis_broadcast", "...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 2)]),
    ("ellipsis_implicit", "...ij,jk", [(2, 2, 3), (3, 4)]),
    ("ellipsis_sum", "i...->...", [(3, 2, 2)]),
    ("ellipsis_transpose", "...ij->...ji", [(2, 2, 3)]),
    ("free_sum_in_operand", "ij,jk->k", [(2, 3), (3, 4)]),
    ("contract_all", "ij,jk->", [(2, 3), (3, 4)]),
    ("bilinear", "bi,ij,bj->b", [(2, 3), (3, 4), (2, 4)]),
    ("chain", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("attention", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("diag_times", "ii,i->i", [(3, 3), (3,)]),
    ("triple_diag", "iii->i", [(3, 3, 3)]),
    ("diag_around_ellipsis", "i...i->...", [(3, 2, 3)]),
    ("ellipsis_diag", "...ii->...", [(2, 3, 3)]),
    ("ellipsis_last", "ij...,jk...->ik...", [(2, 3, 2), (3, 4, 1)]),
    ("ellipsis_only", "...,...->...", [(2, 3), (3,)]),
    ("four", "ab,bc,cd,de->ae", [(2, 3), (3, 2), (2, 4), (4, 2)]),
    ("reversed_out", "ij,jk->kji", [(2, 3), (3, 4)]),
    ("upper_case", "iJ,Jk->ik", [(2, 3), (3, 2)]),
    ("implicit_scalar", "Ba,aB", [(2, 3), (3, 2)]),
]

LINES.append("# einsum: " + ", ".join(e for _, e, _ in EINSUM))
for k, (name, eq, shapes) in enumerate(EINSUM):
    xs = [inputs(s, 100 + 10 * k + i) for i, s in enumerate(shapes)]
    case("einsum_" + name, xs, lambda *a, eq=eq: torch.einsum(eq, *a), seed=200 + k)

# ---- tensordot ---------------------------------------------------------------------------
LINES.append("# tensordot: dims=2, dims=1, dims=0, lists ([2, 0], [0, 1])")
case("tensordot2", [inputs((2, 3, 4), 301), inputs((3, 4, 2), 302)], lambda a, b: torch.tensordot(a, b, 2))
case("tensordot1", [inputs((2, 3), 303), inputs((3, 4), 304)], lambda a, b: torch.tensordot(a, b, 1))
case("tensordot0", [inputs((2, 3), 305), inputs((2,), 306)], lambda a, b: torch.tensordot(a, b, 0))
case("tensordot_lists", [inputs((3, 2, 4), 307), inputs((4, 3, 2), 308)],
     lambda a, b: torch.tensordot(a, b, ([2, 0], [0, 1])))

with open(OUT, "w") as f:
    f.write("# Written by tools/make_linalg_fixtures.py (PyTorch %s, float64). Do not edit.\n" % torch.__version__)
    f.write("\n".join(LINES) + "\n")
print(f"wrote {len(LINES)} lines to {OUT}")
