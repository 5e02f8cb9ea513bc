#!/usr/bin/python3
"""Golden values for tests/test_layers_more.c (Conv1D, the 1-D and global poolings,
Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, UpSampling2D, ZeroPadding2D,
Cropping2D), from PyTorch in float64.

    /usr/bin/python3 tools/make_layer_fixtures.py   # writes tests/fixtures/layer_golden.txt

Keras (TF backend) is the reference; PyTorch computes the values in NCHW. The layouts:
  - Conv1D's kernel (k, in, filters) is torch's weight (filters, in, k): permute(2, 1, 0).
  - Conv2DTranspose's kernel (kh, kw, filters, in) is torch's conv_transpose2d weight
    (in, filters, kh, kw): permute(3, 2, 0, 1). Keras's output length is in * s +
    max(k - s, 0) (VALID) or in * s (SAME); torch's full output is cropped to TF's window.
  - DepthwiseConv2D's kernel (kh, kw, in, m), output channel c * m + j, is torch's grouped
    conv weight (in * m, 1, kh, kw); SeparableConv2D's pointwise kernel (1, 1, in * m, f)
    is a 1x1 conv.
  - TF's SAME padding puts the smaller half before: x is padded with F.pad explicitly.
  - UpSampling2D nearest repeats rows and columns; bilinear is tf.image.resize (half-pixel
    centers), F.interpolate(mode="bilinear", align_corners=False).

One array per line: NAME RANK DIM... : V V ... (row-major, repr()). A case NAME has NAME.x,
its variables (NAME.kernel, NAME.bias, ...) in Keras's layouts, and NAME.y.
"""

import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "layer_golden.txt")
LINES = []


def put(name, t):
    t = t.detach().to(torch.float64)
    dims = " ".join(str(d) for d in t.shape)
    vals = " ".join(repr(float(v)) for v in t.reshape(-1).tolist())
    LINES.append(f"{name} {t.dim()} {dims} : {vals}")


def rand(shape, seed, lo=-1.5, hi=1.5):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def tf_pad(n, k, s, d, same):
    """TF's padding (before, after) for one axis."""
    ek = (k - 1) * d + 1
    if not same:
        return 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + ek - n, 0)
    return total // 2, total - total // 2


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def case(name, y, **arrays):
    for k, v in arrays.items():
        put(f"{name}.{k}", v)
    put(f"{name}.y", y)


# ---- Conv1D: x (batch, steps, in), kernel (k, in, filters) ----------------------------------
def conv1d(x, k, b, s=1, d=1, same=False):
    pl, pr = tf_pad(x.shape[1], k.shape[0], s, d, same)
    xp = F.pad(x.permute(0, 2, 1), (pl, pr))
    return F.conv1d(xp, k.permute(2, 1, 0), b, stride=s, dilation=d).permute(0, 2, 1)


for name, s, d, same in [("conv1d_same", 1, 1, True), ("conv1d_s2_same", 2, 1, True),
                         ("conv1d_dil2_valid", 1, 2, False)]:
    x, k, b = rand((2, 7, 3), 1), rand((3, 3, 4), 2), rand((4,), 3)
    case(name, conv1d(x, k, b, s, d, same), x=x, kernel=k, bias=b)

# ---- MaxPooling1D, AveragePooling1D, global poolings ------------------------------------------
x = rand((2, 7, 3), 4)
case("max_pool1d_k3_s2", F.max_pool1d(x.permute(0, 2, 1), 3, 2).permute(0, 2, 1), x=x)
# SAME with pool 2, stride 2 on 7 steps: the last window has one real step (TF averages the
# real ones only), torch's ceil_mode window too.
case("avg_pool1d_same", F.avg_pool1d(x.permute(0, 2, 1), 2, 2, ceil_mode=True).permute(0, 2, 1), x=x)
case("global_max1d", x.amax(dim=1), x=x)
case("global_avg1d", x.mean(dim=1), x=x)
x4 = rand((2, 3, 4, 2), 5)
case("global_max2d", x4.amax(dim=(1, 2)), x=x4)


# ---- Conv2DTranspose: kernel (kh, kw, filters, in) --------------------------------------------
def conv_transpose(x, k, b, s, same):
    kh, kw, f, _ = k.shape
    out = [x.shape[1] * s, x.shape[2] * s]
    if not same:
        out = [out[0] + max(kh - s, 0), out[1] + max(kw - s, 0)]
    pt, _ = tf_pad(out[0], kh, s, 1, same)
    pl, _ = tf_pad(out[1], kw, s, 1, same)
    full = F.conv_transpose2d(nchw(x), k.permute(3, 2, 0, 1), stride=s)
    return nhwc(full[:, :, pt:pt + out[0], pl:pl + out[1]]) + b


for name, s, same in [("conv2d_transpose_s2_same", 2, True), ("conv2d_transpose_s2_valid", 2, False),
                      ("conv2d_transpose_s1_valid", 1, False)]:
    x, k, b = rand((2, 3, 3, 3), 6), rand((3, 3, 2, 3), 7), rand((2,), 8)
    case(name, conv_transpose(x, k, b, s, same), x=x, kernel=k, bias=b)


# ---- DepthwiseConv2D, SeparableConv2D ----------------------------------------------------------
def depthwise(x, k, s, same):
    kh, kw, c, m = k.shape
    pt, pb = tf_pad(x.shape[1], kh, s, 1, same)
    pl, pr = tf_pad(x.shape[2], kw, s, 1, same)
    xp = F.pad(nchw(x), (pl, pr, pt, pb))
    return nhwc(F.conv2d(xp, k.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw), stride=s, groups=c))


x, k, b = rand((2, 5, 6, 3), 9), rand((3, 3, 3, 2), 10), rand((6,), 11)
case("depthwise_m2_s2_same", depthwise(x, k, 2, True) + b, x=x, kernel=k, bias=b)
x, dk, pk, b = rand((1, 5, 5, 2), 12), rand((2, 2, 2, 2), 13), rand((1, 1, 4, 3), 14), rand((3,), 15)
y = nhwc(F.conv2d(nchw(depthwise(x, dk, 1, True)), pk.permute(3, 2, 0, 1))) + b
case("separable_same", y, x=x, depthwise_kernel=dk, pointwise_kernel=pk, bias=b)

# ---- UpSampling2D, ZeroPadding2D, Cropping2D ----------------------------------------------------
x = rand((2, 3, 4, 2), 16)
case("up_sampling_nearest_2x3", x.repeat_interleave(2, dim=1).repeat_interleave(3, dim=2), x=x)
case("up_sampling_bilinear_2x2",
     nhwc(F.interpolate(nchw(x), size=(6, 8), mode="bilinear", align_corners=False)), x=x)
case("zero_padding_1_2_0_1", nhwc(F.pad(nchw(x), (0, 1, 1, 2))), x=x)
case("cropping_1_0_1_2", x[:, 1:, 1:2, :], x=x)

with open(OUT, "w") as f:
    f.write(f"# tools/make_layer_fixtures.py with PyTorch {torch.__version__} in float64. Do not edit; rerun.\n")
    f.write("\n".join(LINES) + "\n")
