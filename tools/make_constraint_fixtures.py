#!/usr/bin/python3
"""Golden values for tests/test_constraints.c: Keras 3's weight constraints
(keras/src/constraints/constraints.py) transcribed in numpy, float64, on a Conv2D kernel of
shape (2, 3, 2, 4) over several axes.

    /usr/bin/python3 tools/make_constraint_fixtures.py   # writes tests/fixtures/constraint_golden.txt

Format: `case KIND MAX_VALUE MIN_VALUE RATE N_AXES AXIS...`, then `w` and `want` arrays
(`RANK DIM... : V...`), then `end`.
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "constraint_golden.txt")
EPSILON = 1e-7  # keras.backend.epsilon()


def norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


def max_norm(w, max_value, axis):
    n = norms(w, axis)
    return w * (np.clip(n, 0, max_value) / (EPSILON + n))


def non_neg(w):
    return w * (w >= 0.0)


def unit_norm(w, axis):
    return w / (EPSILON + norms(w, axis))


def min_max_norm(w, min_value, max_value, rate, axis):
    n = norms(w, axis)
    desired = rate * np.clip(n, min_value, max_value) + (1 - rate) * n
    return w * (desired / (EPSILON + n))


def array(name, a):
    dims = " ".join(str(d) for d in a.shape)
    return f"{name} {a.ndim} {dims} : " + " ".join(repr(float(v)) for v in a.ravel())


def main():
    rng = np.random.default_rng(19)
    cases = [
        ("max_norm", 2.0, 0.0, 0.0, (0, 1, 2)),
        ("max_norm", 1.5, 0.0, 0.0, (3,)),
        ("max_norm", 0.7, 0.0, 0.0, (1,)),
        ("unit_norm", 0.0, 0.0, 0.0, (0, 3)),
        ("unit_norm", 0.0, 0.0, 0.0, (2,)),
        ("min_max_norm", 1.0, 0.0, 1.0, (0, 1, 2)),
        ("min_max_norm", 2.5, 1.2, 0.3, (1, 3)),
        ("non_neg", 0.0, 0.0, 0.0, ()),
    ]
    lines = [f"# written by tools/make_constraint_fixtures.py (numpy {np.__version__})"]
    for kind, max_value, min_value, rate, axis in cases:
        w = rng.normal(0, 1, size=(2, 3, 2, 4))
        if kind == "max_norm":
            want = max_norm(w, max_value, axis)
        elif kind == "unit_norm":
            want = unit_norm(w, axis)
        elif kind == "min_max_norm":
            want = min_max_norm(w, min_value, max_value, rate, axis)
        else:
            want = non_neg(w)
        axes = " ".join(str(a) for a in axis)
        lines.append(f"case {kind} {max_value!r} {min_value!r} {rate!r} {len(axis)} {axes}".rstrip())
        lines.append(array("w", w))
        lines.append(array("want", want))
        lines.append("end")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
