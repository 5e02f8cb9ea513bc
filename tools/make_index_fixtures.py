#!/usr/bin/python3
"""Golden values for tests/test_ops_scan.c and tests/test_ops_index.c, from PyTorch.

Run with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 tools/make_index_fixtures.py     # writes tests/fixtures/index_golden.txt

TensorFlow is the reference; PyTorch computes the values here. Where the two differ,
this script builds TF's answer from PyTorch pieces and says so beside the case:
  - TF's cumsum/cumprod have `exclusive`; PyTorch's do not (built by shifting).
  - TF's cumprod gradient divides by x with div_no_nan, so it is 0 where x is 0;
    PyTorch's is the true derivative there. The zero case below applies TF's rule.
  - TF's top_k and sort keep equal values in index order; torch.topk does not promise
    it, so the values come from torch.sort(stable=True).

One array per line ('#' starts a comment):

    NAME RANK DIM... : V V ...      row-major float64 values, repr() (exact in strtod)

A case NAME has NAME.x (the input), NAME.y (the output), and, when differentiable,
NAME.w (fixed weights) and NAME.dx, the gradient of sum(y * w) with respect to x.
"""

import os

import numpy
import torch

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "index_golden.txt")

LINES = []


def put(name, t):
    t = t.detach().to(torch.float64)
    dims = " ".join(str(d) for d in t.shape)
    vals = " ".join(repr(float(v)) for v in t.reshape(-1).tolist())
    LINES.append(f"{name} {t.dim()} {dims} : {vals}".replace("  ", " "))


def weights(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return 0.5 + torch.rand(shape, generator=g)


def inputs(shape, seed, lo=-1.5, hi=1.5):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def case(name, x, fn, grad=True, seed=7):
    x = x.clone().requires_grad_(grad)
    y = fn(x)
    put(name + ".x", x)
    put(name + ".y", y)
    if grad:
        w = weights(y.shape, seed)
        (dx,) = torch.autograd.grad((y * w).sum(), x)
        put(name + ".w", w)
        put(name + ".dx", dx)


# ---- reduce_prod: zeros in x (one in a slice, two in another) ----------------------
xp = inputs((2, 3, 4), 1)
xp[0, 0, 1] = 0.0
xp[1, 1, 0] = 0.0
xp[1, 2, 0] = 0.0          # two zeros in the slice x[1, :, 0]
case("prod_axis1", xp, lambda x: x.prod(1))
case("prod_axes02_keep", xp, lambda x: x.permute(1, 0, 2).reshape(3, 8).prod(1).reshape(1, 3, 1))
case("prod_all", inputs((2, 3), 2), lambda x: x.prod())

# ---- cumsum, cumprod: TF's exclusive and reverse ------------------------------------


def scan(x, axis, exclusive, reverse, prod):
    if reverse:
        x = x.flip(axis)
    y = x.cumprod(axis) if prod else x.cumsum(axis)
    if exclusive:   # shift by one along axis, the identity first
        first = torch.ones_like(x.narrow(axis, 0, 1)) if prod else torch.zeros_like(x.narrow(axis, 0, 1))
        y = torch.cat([first, y.narrow(axis, 0, x.shape[axis] - 1)], axis)
    return y.flip(axis) if reverse else y


xs = inputs((3, 4), 3, 0.3, 1.7) * torch.tensor([1.0, -1.0, 1.0, -1.0])
for op in ("cumsum", "cumprod"):
    for axis in (0, 1):
        for exclusive in (False, True):
            for reverse in (False, True):
                name = f"{op}_a{axis}_e{int(exclusive)}_r{int(reverse)}"
                case(name, xs, lambda x, a=axis, e=exclusive, r=reverse, p=op == "cumprod": scan(x, a, e, r, p))

# TF's cumprod gradient at a zero: cumsum(y * dy, reverse) div_no_nan x. PyTorch's
# autograd gives the true derivative there, so TF's rule is applied here instead.
xz = torch.tensor([[0.5, 0.0, 2.0, -1.5], [1.25, -0.8, 0.0, 3.0]])
yz = xz.cumprod(1)
wz = weights(yz.shape, 7)
sz = (yz * wz).flip(1).cumsum(1).flip(1)
dz = torch.where(xz == 0, torch.zeros_like(xz), sz / torch.where(xz == 0, torch.ones_like(xz), xz))
put("cumprod_zero_tf.x", xz)
put("cumprod_zero_tf.y", yz)
put("cumprod_zero_tf.w", wz)
put("cumprod_zero_tf.dx", dz)

# ---- top_k and sort: ties keep index order ------------------------------------------
xt = torch.tensor([[0.3, -1.0, 0.3, 2.0, 0.3],
                   [5.0, 5.0, -2.0, 1.0, 5.0],
                   [-0.5, 0.25, -3.0, 0.75, 1.5]])


def top3(x):
    v, _ = torch.sort(x, dim=-1, descending=True, stable=True)
    return v[:, :3]


case("top_k3", xt, top3)
put("top_k3.i", torch.sort(xt, dim=-1, descending=True, stable=True)[1][:, :3])
case("sort_desc_axis0", xt, lambda x: torch.sort(x, dim=0, descending=True, stable=True)[0])
case("sort_asc", xt, lambda x: torch.sort(x, dim=-1, stable=True)[0])
put("argsort_asc.y", torch.sort(xt, dim=-1, stable=True)[1])
put("argsort_desc_axis0.y", torch.sort(xt, dim=0, descending=True, stable=True)[1])

# ---- tile, reverse, roll ------------------------------------------------------------
xi = inputs((2, 3), 4)
case("tile_2_1", xi, lambda x: x.repeat(2, 1))
case("tile_2_3", xi, lambda x: x.repeat(2, 3))
x3 = inputs((2, 3, 4), 5)
case("tile_1_2_1", x3, lambda x: x.repeat(1, 2, 1))
case("reverse_0", x3, lambda x: x.flip(0))
case("reverse_1_2", x3, lambda x: x.flip(1, 2))
case("roll_1_a1", x3, lambda x: torch.roll(x, 1, 1))
case("roll_m1_5_a2_0", x3, lambda x: torch.roll(x, (-1, 5), (2, 0)))
case("roll_2_2_a1_1", x3, lambda x: torch.roll(x, (2, 2), (1, 1)))   # TF adds shifts of one axis

# ---- norm and l2_normalize -----------------------------------------------------------
# TF's l2_normalize is x * rsqrt(max(sum(x^2), eps)); torch's F.normalize divides by
# max(norm, eps) instead, so TF's formula is written out here.
xn = inputs((3, 4), 6)
xn[1, 2] = 0.0
case("norm_euclidean_all", xn, lambda x: torch.linalg.vector_norm(x))
case("norm_euclidean_a1", xn, lambda x: torch.linalg.vector_norm(x, 2, dim=1))
case("norm_1_a0_keep", xn, lambda x: torch.linalg.vector_norm(x, 1, dim=0, keepdim=True))
case("norm_inf_a1", inputs((3, 4), 8), lambda x: torch.linalg.vector_norm(x, float("inf"), dim=1))
case("l2_normalize_a1", xn, lambda x: x * torch.rsqrt(torch.clamp((x * x).sum(1, keepdim=True), min=1e-12)))
case("l2_normalize_all", xn, lambda x: x * torch.rsqrt(torch.clamp((x * x).sum(), min=1e-12)))

# ---- mirror_pad: TF's REFLECT and SYMMETRIC are numpy's pad modes 'reflect' and
# 'symmetric'; torch has no symmetric mode, so each axis is an index_select of numpy's
# padded index vector (autograd then gives the gradient).


def mirror(x, pads, mode):
    for axis, (b, a) in enumerate(pads):
        idx = numpy.pad(numpy.arange(x.shape[axis]), (b, a), mode=mode)
        x = x.index_select(axis, torch.tensor(idx))
    return x


xm = inputs((2, 3, 4), 9)
case("mirror_reflect", xm, lambda x: mirror(x, [(1, 0), (2, 2), (0, 3)], "reflect"))
case("mirror_symmetric", xm, lambda x: mirror(x, [(2, 1), (0, 3), (4, 1)], "symmetric"))

# ---- gather_nd and scatter_nd ------------------------------------------------------------
xg = inputs((3, 4, 2), 10)
ig = torch.tensor([[2, 1], [0, 3], [2, 1], [1, 0]])     # (2, 1) twice: its gradient adds up
case("gather_nd_2", xg, lambda x: x[ig[:, 0], ig[:, 1]])
put("gather_nd_2.i", ig)
ig3 = torch.tensor([[[0, 0, 1]], [[2, 3, 0]]])          # indices [2, 1, 3]: full tuples
case("gather_nd_3", xg, lambda x: x[ig3[..., 0], ig3[..., 1], ig3[..., 2]])
put("gather_nd_3.i", ig3)
us = inputs((4, 2), 11)
case("scatter_nd", us, lambda u: torch.zeros(3, 4, 2).index_put((ig[:, 0], ig[:, 1]), u, accumulate=True))

# ---- unsorted segments: ids with a dropped row (-1) and an empty segment (3 of 0..4) ----
xs2 = inputs((6, 3), 12)
ids = torch.tensor([0, 2, -1, 0, 4, 2])
NUM = 5
keep = ids >= 0
LOWEST, HIGHEST = -1.7976931348623157e308, 1.7976931348623157e308   # float64's, as TF


def seg_sum(x):
    return torch.zeros(NUM, 3).index_add(0, ids[keep], x[keep])


def seg_mean(x):
    n = torch.zeros(NUM).index_add(0, ids[keep], torch.ones(int(keep.sum())))
    return seg_sum(x) / torch.clamp(n, min=1).reshape(NUM, 1)


def seg_extreme(x, how, fill):
    out = torch.full((NUM, 3), fill)
    return out.scatter_reduce(0, ids[keep].reshape(-1, 1).expand(-1, 3), x[keep], how, include_self=False)


case("segment_sum", xs2, seg_sum)
case("segment_mean", xs2, seg_mean)
case("segment_max", xs2, lambda x: seg_extreme(x, "amax", LOWEST))
case("segment_min", xs2, lambda x: seg_extreme(x, "amin", HIGHEST))
put("segment.ids", ids)


def seg_sqrt_n(x):
    n = torch.zeros(NUM).index_add(0, ids[keep], torch.ones(int(keep.sum())))
    return seg_sum(x) / torch.sqrt(torch.clamp(n, min=1)).reshape(NUM, 1)


def seg_prod(x):
    out = torch.ones(NUM, 3)
    return out.scatter_reduce(0, ids[keep].reshape(-1, 1).expand(-1, 3), x[keep], "prod", include_self=False)


case("segment_sqrt_n", xs2, seg_sqrt_n)
case("segment_prod", xs2, seg_prod)
# Zeros: one in a segment (x[0, 0], segment 0), two in another (x[1, 1] and x[5, 1],
# segment 2). The gradient is TF's rule, which is the exact derivative: each element's
# weight times the product of the other elements of its segment, written out here
# (PyTorch's autograd divides by x).
xz = xs2.clone()
xz[0, 0] = 0.0
xz[1, 1] = 0.0
xz[5, 1] = 0.0
put("segment_prod_zeros.x", xz)
put("segment_prod_zeros.y", seg_prod(xz))
wz = weights((NUM, 3), 7)
put("segment_prod_zeros.w", wz)
dz = torch.zeros(6, 3)
for r in range(6):
    for c in range(3):
        if ids[r] < 0:
            continue
        others = [xz[q, c] for q in range(6) if q != r and ids[q] == ids[r]]
        dz[r, c] = wz[ids[r], c] * torch.prod(torch.tensor(others + [1.0]))
put("segment_prod_zeros.dx", dz)

# ---- repeat and boolean_mask ---------------------------------------------------------------
xr = inputs((2, 3), 13)
case("repeat_a1", xr, lambda x: torch.repeat_interleave(x, torch.tensor([2, 0, 3]), dim=1))
case("repeat_flat", xr, lambda x: torch.repeat_interleave(x.reshape(-1), 2))
xb = inputs((3, 2, 4), 14)
mb = torch.tensor([[True, False], [True, True], [False, False]])
case("boolean_mask_2d", xb, lambda x: x[mb])
mb1 = torch.tensor([False, True, True, False])
case("boolean_mask_axis2", xb, lambda x: x[:, :, mb1])

with open(OUT, "w") as f:
    f.write("# Golden values for tests/test_ops_scan.c and tests/test_ops_index.c, generated by\n")
    f.write(f"# tools/make_index_fixtures.py with PyTorch {torch.__version__} in float64. Do not edit; rerun.\n")
    f.write("\n".join(LINES) + "\n")
print(f"wrote {len(LINES)} arrays to {os.path.normpath(OUT)}")
