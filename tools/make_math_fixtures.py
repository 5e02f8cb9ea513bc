#!/usr/bin/python3
"""Golden forward values of the element-wise maths ops for tests/test_ops_math.c.

Run with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 tools/make_math_fixtures.py     # writes tests/fixtures/math_golden.txt

Each case is one op on fixed inputs (float64, or int64 for the integer cases), written as

    case NAME DTYPE              NAME: the op without tg_ (atan2, floormod, silu_beta2, ...)
    input a RANK DIM... : V V ...   row-major; binary ops have a second input b, which
    input b RANK DIM... : V V ...   may broadcast against a
    out RANK DIM... : V V ...       the result (bool results as 0 and 1)
    end

Values are written with repr(), which round-trips a float64 exactly (strtod in C);
nan, inf and -0.0 are meant.

Most values are PyTorch's. Where PyTorch's op differs from TensorFlow's, the value
follows TF's documented rule, computed here with torch's primitives and named below:

- floormod: TF's FloorMod is fmod, then + b where the signs of the remainder and b
  differ (the result has b's sign). torch.remainder computes the same; the script
  asserts that they agree.
- floordiv on floats: TF's FloorDiv is floor(a / b); torch's floor division is Python's
  (a - fmod(a, b)) / b, which differs where a / b rounds up to an integer: 1 // 0.1
  is 9 in Python and torch, floor(1 / 0.1) = 10 in TF. The case floordiv_rounding keeps
  that point. On integers both are floor division.
- truncatediv (integers only in TF) and truncatemod: C's / and %, fmod for floats:
  torch.div(rounding_mode="trunc") and torch.fmod.
- div_no_nan and mul_no_nan (no torch op): where(b == 0, 0, a / b) and
  where(b == 0, 0, a * b), so a NaN or infinite a gives 0 where b == 0.
- hard_sigmoid: Keras 3's relu6(x + 3) / 6, which is torch's hardsigmoid (not Keras 2's
  0.2 x + 0.5); the script asserts that they agree.
- silu with beta (tf.nn.silu(x, beta)): x * sigmoid(beta * x); torch's silu has beta 1.
- log_sigmoid: TF's -softplus(-x) (so -0.0 where softplus(-x) is 0), asserted close to
  torch's logsigmoid.
- selu: torch's constants are TF's (alpha 1.6732632423543772848170429916717, scale
  1.0507009873554804934193349852946).
"""

import math
import os
import sys

import torch

torch.set_default_dtype(torch.float64)
F = torch.nn.functional

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "math_golden.txt")

NAN, INF = float("nan"), float("inf")
CASES = []


def case(name, fn, a, b=None, dtype="f64"):
    tdt = torch.float64 if dtype == "f64" else torch.int64
    ta = torch.tensor(a, dtype=tdt)
    tb = None if b is None else torch.tensor(b, dtype=tdt)
    out = fn(ta) if tb is None else fn(ta, tb)
    CASES.append((name, dtype, ta, tb, out))


# ---- trigonometric and hyperbolic ---------------------------------------------------------
ANGLES = [[-3.0, -1.5, -0.5, 0.0], [0.25, 1.0, 2.0, 3.5]]
UNIT = [-0.999, -0.7, -0.2, 0.0, 1e-9, 0.3, 0.8, 0.9999]
case("sin", torch.sin, ANGLES)
case("cos", torch.cos, ANGLES)
case("tan", torch.tan, [-1.5, -1.0, -0.3, 0.0, 0.4, 1.2, 1.55])
case("asin", torch.asin, UNIT + [1.0, -1.0])
case("acos", torch.acos, UNIT + [1.0, -1.0])
case("atan", torch.atan, [-1e6, -10.0, -1.0, -0.1, 0.0, 0.5, 3.0, 1e300])
case("sinh", torch.sinh, [-5.0, -1.0, -1e-8, 0.0, 0.3, 2.0, 10.0])
case("cosh", torch.cosh, [-5.0, -1.0, 0.0, 0.3, 2.0, 10.0])
case("asinh", torch.asinh, [-1e5, -3.0, -0.5, 0.0, 1e-10, 0.7, 4.0, 1e10])
case("acosh", torch.acosh, [1.0, 1.0000001, 1.5, 2.0, 10.0, 1e8])
case("atanh", torch.atanh, [-0.99, -0.5, -1e-9, 0.0, 0.25, 0.9, 0.999999])
# out of the domain: NaN (and +-Inf at atanh's ends)
case("asin_outside", torch.asin, [1.5, -2.0])
case("acosh_outside", torch.acosh, [0.5, -1.0])
case("atanh_ends", torch.atanh, [1.0, -1.0, 2.0])
# atan2(y, x): every quadrant, the axes, signed zeros; b broadcasts over a's rows
case("atan2", torch.atan2,
     [[1.0, -1.0, 0.0, -0.0, 2.0], [-3.0, 0.5, 1e-300, -1e-300, 0.0]],
     [-1.0, -1.0, -1.0, -1.0, 0.0])
case("atan2_column", torch.atan2, [[1.0, -2.0, 0.3], [0.0, 4.0, -0.7]], [[2.0], [-0.5]])

# ---- reciprocal, expm1, squared_difference --------------------------------------------------
case("reciprocal", torch.reciprocal, [-4.0, -0.5, 1e-300, 0.1, 3.0, 0.0, -0.0])
case("expm1", torch.expm1, [-50.0, -1.0, -1e-10, 0.0, 1e-12, 1e-5, 0.5, 20.0])
case("squared_difference", lambda a, b: (a - b) ** 2,
     [[1.0, -2.0, 0.5], [3.0, 0.0, -1.5]], [0.5, -2.0, 2.0])
case("squared_difference_int", lambda a, b: (a - b) ** 2,
     [[7, -3, 0], [100000, 5, -6]], [[2], [-4]], dtype="i64")


# ---- the division family ---------------------------------------------------------------------
def tf_floormod(a, b):
    m = torch.fmod(a, b)
    m = torch.where((m != 0) & ((b < 0) != (m < 0)), m + b, m)
    if a.dtype == torch.float64:
        assert torch.equal(torch.nan_to_num(m, nan=7.25), torch.nan_to_num(torch.remainder(a, b), nan=7.25))
    else:
        assert torch.equal(m, torch.remainder(a, b))
    return m


def tf_floordiv(a, b):
    if a.dtype == torch.float64:
        return torch.floor(a / b)   # TF's floor(x / y), not Python's floor division
    return torch.div(a, b, rounding_mode="floor")


SIGNS_A = [[7.0, -7.0, 7.0, -7.0, 5.5, -5.5], [0.0, -0.0, 6.0, -6.0, 1e-3, 2.75]]
SIGNS_B = [[3.0, 3.0, -3.0, -3.0, 2.0, 2.0], [3.0, 3.0, -3.0, 3.0, -4.0, 0.5]]
INT_A = [[7, -7, 7, -7, 0, 6], [-6, 9, -9, 1, -1, 2147483648]]
INT_B = [[3, 3, -3, -3, 5, 3], [3, -4, 4, -5, 5, -7]]
case("floormod", tf_floormod, SIGNS_A, SIGNS_B)
case("floormod_int", tf_floormod, INT_A, INT_B, dtype="i64")
case("floormod_broadcast", tf_floormod, [[-5.0, 5.0], [2.5, -0.5]], [1.5, -2.0])
case("floormod_zero", tf_floormod, [1.0, -1.0, 0.0], [0.0, 0.0, 0.0])   # NaN, as fmod
case("floordiv", tf_floordiv, SIGNS_A, SIGNS_B)
case("floordiv_int", tf_floordiv, INT_A, INT_B, dtype="i64")
case("floordiv_rounding", tf_floordiv, [1.0, -1.0, 0.3], [0.1, 0.1, 0.1])
case("floordiv_zero", tf_floordiv, [1.0, -1.0], [0.0, 0.0])   # +-Inf
case("truncatediv_int", lambda a, b: torch.div(a, b, rounding_mode="trunc"), INT_A, INT_B, dtype="i64")
case("truncatemod", torch.fmod, SIGNS_A, SIGNS_B)
case("truncatemod_int", torch.fmod, INT_A, INT_B, dtype="i64")


# ---- NaN-safe products and quotients ------------------------------------------------------
def div_no_nan(a, b):
    return torch.where(b == 0, torch.zeros_like(a), a / b)


def mul_no_nan(a, b):
    return torch.where(b == 0, torch.zeros_like(a), a * b)


NN_A = [[1.0, -2.0, NAN, INF, 0.0, 3.0], [NAN, -INF, 5.0, 1e308, 2.0, -1.0]]
NN_B = [[0.0, -0.0, 0.0, 0.0, 0.0, 2.0], [1.0, 2.0, 0.5, 1e-308, -4.0, INF]]
case("div_no_nan", div_no_nan, NN_A, NN_B)
case("mul_no_nan", mul_no_nan, NN_A, NN_B)
case("div_no_nan_broadcast", div_no_nan, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[0.0], [2.0]])

# ---- predicates ------------------------------------------------------------------------
SPECIALS = [NAN, INF, -INF, 0.0, -1.5, 1e308, 5e-324, -NAN]
case("is_nan", torch.isnan, SPECIALS)
case("is_inf", torch.isinf, SPECIALS)
case("is_finite", torch.isfinite, SPECIALS)

# ---- activations --------------------------------------------------------------------------
ACT = [-800.0, -40.0, -6.0, -3.0, -2.0, -0.5, 0.0, 0.5, 2.0, 3.0, 5.999, 6.0, 7.5, 40.0, 800.0]


def log_sigmoid(x):
    y = -F.softplus(-x)   # TF's definition: -0.0 at the top tail, where torch's logsigmoid gives 0.0
    assert torch.allclose(y, F.logsigmoid(x), rtol=1e-15, atol=0)
    return y


def hard_sigmoid(x):
    y = F.hardsigmoid(x)
    assert torch.equal(y, F.relu6(x + 3) / 6)
    return y


case("log_sigmoid", log_sigmoid, ACT)
case("relu6", F.relu6, ACT)
case("selu", F.selu, ACT)
case("silu", F.silu, ACT)
case("silu_beta2", lambda x: x * torch.sigmoid(2 * x), ACT)
case("hard_sigmoid", hard_sigmoid, ACT)
case("softsign", F.softsign, ACT)


def fmt(t):
    return " ".join(repr(float(v)) if t.dtype.is_floating_point else str(int(v)) for v in t.reshape(-1).tolist())


def array(t):
    dims = " ".join(str(d) for d in t.shape)
    return "%d%s : %s" % (t.dim(), " " + dims if dims else "", fmt(t))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    lines = ["# Golden values for tests/test_ops_math.c, generated by tools/make_math_fixtures.py",
             "# with PyTorch %s (TF's rule where they differ: see the script). Do not edit by hand." % torch.__version__]
    for name, dtype, a, b, y in CASES:
        lines.append("case %s %s" % (name, dtype))
        lines.append("input a " + array(a))
        if b is not None:
            lines.append("input b " + array(b))
        if y.dtype == torch.bool:
            y = y.to(torch.int64)
        lines.append("out " + array(y))
        lines.append("end")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d cases to %s" % (len(CASES), os.path.normpath(out)))


if __name__ == "__main__":
    main()
