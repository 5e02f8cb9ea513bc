#!/usr/bin/python3
"""Golden values for tests/test_ops_conv2.c (the convolution family and resize), from PyTorch.

Run with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 tools/make_conv_fixtures.py     # writes tests/fixtures/conv_golden.txt

TensorFlow is the reference; PyTorch computes the values here, in NCHW with its own
kernels. Where the two differ, this script builds TF's answer from PyTorch pieces and
says so beside the case:
  - TF's SAME padding is asymmetric (the smaller half before); PyTorch pads both sides
    alike, so x is padded explicitly with F.pad and convolved with padding 0.
  - TF's depthwise filter is [KH, KW, C, M], output channel c*M + m; PyTorch's grouped
    conv (groups = C) has weight [C*M, 1, KH, KW] in the same channel order.
  - TF's conv2d_transpose takes an output_shape; PyTorch's conv_transpose2d gives the
    full (H - 1) * s + dilated k, so the result is cropped (or zero-extended) to TF's
    window: padding before as SAME/VALID for output_shape, then output_shape's size.
  - tf.image.resize (TF2) bilinear is F.interpolate(mode="bilinear", align_corners=False,
    antialias off): both use half-pixel centers. TF2's nearest is floor((o + 0.5) *
    in / out), which is PyTorch's "nearest-exact", not its "nearest" (floor(o * in / out)).

One array per line ('#' starts a comment):

    NAME RANK DIM... : V V ...      row-major float64 values, repr() (exact in strtod)

A case NAME has NAME.x and, for a convolution, NAME.k (the kernel or filters, TF's
layout), NAME.y (the output, NHWC), NAME.w (fixed weights) and NAME.dx (and NAME.dk), the
gradients of sum(y * w).
"""

import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "conv_golden.txt")

LINES = []


def put(name, t):
    t = t.detach().to(torch.float64)
    dims = " ".join(str(d) for d in t.shape)
    vals = " ".join(repr(float(v)) for v in t.reshape(-1).tolist())
    LINES.append(f"{name} {t.dim()} {dims} : {vals}".replace("  ", " "))


def rand(shape, seed, lo=-1.5, hi=1.5):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def tf_pad(n, k, s, d, same):
    """TF's output size and padding (before, after) for one axis."""
    ek = (k - 1) * d + 1
    if not same:
        return (n - ek) // s + 1, 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    return out, total // 2, total - total // 2


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def conv(x, k, strides=(1, 1), dil=(1, 1), same=False, groups=1):
    """TF's conv2d / depthwise_conv2d on NHWC x; k is TF's [KH, KW, C, F] or [KH, KW, C, M]."""
    kh, kw, c, f = k.shape
    _, pt, pb = tf_pad(x.shape[1], kh, strides[0], dil[0], same)
    _, pl, pr = tf_pad(x.shape[2], kw, strides[1], dil[1], same)
    xp = F.pad(nchw(x), (pl, pr, pt, pb))
    wt = k.permute(3, 2, 0, 1) if groups == 1 else k.permute(2, 3, 0, 1).reshape(c * f, 1, kh, kw)
    return nhwc(F.conv2d(xp, wt, stride=strides, dilation=dil, groups=groups))


def conv_transpose(x, k, out_shape, strides=(1, 1), dil=(1, 1), same=False):
    """TF's conv2d_transpose: x [N, H, W, F], k [KH, KW, C, F] -> out_shape [N, OH, OW, C]."""
    kh, kw, c, f = k.shape
    _, pt, _ = tf_pad(out_shape[1], kh, strides[0], dil[0], same)
    _, pl, _ = tf_pad(out_shape[2], kw, strides[1], dil[1], same)
    full = F.conv_transpose2d(nchw(x), k.permute(3, 2, 0, 1), stride=strides, dilation=dil)
    eh = max(pt + out_shape[1] - full.shape[2], 0)
    ew = max(pl + out_shape[2] - full.shape[3], 0)
    full = F.pad(full, (0, ew, 0, eh))
    return nhwc(full[:, :, pt:pt + out_shape[1], pl:pl + out_shape[2]])


def case(name, fn, x, k=None, seed=7):
    x = x.clone().requires_grad_(True)
    args = [x]
    put(name + ".x", x)
    if k is not None:
        k = k.clone().requires_grad_(True)
        args.append(k)
        put(name + ".k", k)
    y = fn(*args)
    w = 0.5 + rand(y.shape, seed, 0.0, 1.0)
    grads = torch.autograd.grad((y * w).sum(), args)
    put(name + ".y", y)
    put(name + ".w", w)
    put(name + ".dx", grads[0])
    if k is not None:
        put(name + ".dk", grads[1])


# ---- conv2d with dilations ------------------------------------------------------------
case("conv_dil22_valid", lambda x, k: conv(x, k, dil=(2, 2)), rand((1, 6, 5, 2), 1), rand((2, 2, 2, 3), 2))
case("conv_dil21_same", lambda x, k: conv(x, k, dil=(2, 1), same=True), rand((2, 5, 4, 2), 3), rand((3, 2, 2, 2), 4))
case("conv_dil13_same_even", lambda x, k: conv(x, k, dil=(1, 3), same=True), rand((1, 4, 7, 1), 5),
     rand((2, 2, 1, 2), 6))

# ---- conv1d (NWC, through the 2-D path): x [N, W, C], k [KW, C, F] ----------------------
case("conv1d_s2_same", lambda x, k: conv(x[:, None], k[None], strides=(1, 2), same=True)[:, 0],
     rand((2, 7, 2), 7), rand((3, 2, 3), 8))
case("conv1d_dil2_valid", lambda x, k: conv(x[:, None], k[None], dil=(1, 2))[:, 0], rand((1, 8, 3), 9),
     rand((3, 3, 2), 10))

# ---- depthwise_conv2d (groups = C) -------------------------------------------------------
case("depthwise_m2_s2_same", lambda x, k: conv(x, k, strides=(2, 2), same=True, groups=3), rand((1, 5, 6, 3), 11),
     rand((3, 3, 3, 2), 12))
case("depthwise_m1_dil2_valid", lambda x, k: conv(x, k, dil=(2, 2), groups=2), rand((2, 6, 5, 2), 13),
     rand((2, 2, 2, 1), 14))

# ---- separable_conv2d: depthwise [2,2,2,2] then pointwise [1,1,4,3] (fixed here) --------
PW = rand((1, 1, 4, 3), 15)
put("separable_same.pw", PW)
case("separable_same", lambda x, k: conv(conv(x, k, same=True, groups=2), PW), rand((1, 5, 5, 2), 16),
     rand((2, 2, 2, 2), 17))

# ---- conv2d_transpose --------------------------------------------------------------------
case("transpose_s2_same", lambda x, k: conv_transpose(x, k, (1, 6, 5, 2), strides=(2, 2), same=True),
     rand((1, 3, 3, 3), 18), rand((3, 3, 2, 3), 19))
case("transpose_s2_valid_extra", lambda x, k: conv_transpose(x, k, (2, 6, 6, 1), strides=(2, 2)),
     rand((2, 2, 2, 2), 20), rand((3, 3, 1, 2), 21))
case("transpose_dil2_valid", lambda x, k: conv_transpose(x, k, (1, 5, 5, 2), dil=(2, 2)), rand((1, 3, 3, 2), 22),
     rand((2, 2, 2, 2), 23))

# ---- resize: bilinear and (TF2's) nearest, up and down ------------------------------------


def resize(x, size, mode):
    return nhwc(F.interpolate(nchw(x), size=size, mode=mode, **({"align_corners": False} if mode == "bilinear" else {})))


case("resize_bilinear_up", lambda x: resize(x, (6, 7), "bilinear"), rand((1, 3, 4, 2), 24))
case("resize_bilinear_down", lambda x: resize(x, (3, 2), "bilinear"), rand((2, 6, 5, 1), 25))
case("resize_nearest_up", lambda x: resize(x, (7, 6), "nearest-exact"), rand((1, 3, 4, 2), 26))
case("resize_nearest_down", lambda x: resize(x, (3, 2), "nearest-exact"), rand((2, 6, 5, 1), 27))

with open(OUT, "w") as f:
    f.write(f"# tools/make_conv_fixtures.py with PyTorch {torch.__version__} in float64. Do not edit; rerun.\n")
    f.write("\n".join(LINES) + "\n")
