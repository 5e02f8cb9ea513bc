#!/usr/bin/python3
"""Golden values for tests/test_optim.c: Keras 3's optimizers transcribed to numpy.

Run with Debian's interpreter (python3-numpy):

    /usr/bin/python3 tools/make_optim_fixtures.py     # writes tests/fixtures/optim_golden.txt

Each optimizer below is a line-by-line transcription of `update_step` in
keras/src/optimizers/{sgd,adam,rmsprop,adagrad,nadam,adamax,adadelta,ftrl,lion}.py
(and of Nadam's `_backend_update_step`), of the schedules in
keras/src/optimizers/schedules/learning_rate_schedule.py, and of `_clip_gradients`,
`_clip_by_norm`, `clip_by_global_norm` and `_apply_weight_decay` in
keras/src/optimizers/base_optimizer.py (Keras 3), written independently of the C code.
Every operation is done in the variables' dtype (float32 or float64), as Keras does
after `ops.cast`; Python scalars such as `1 - beta_1` are formed in double and then
cast, as the backends do with weak-typed Python floats.

The problem: two variables, w (2x2) and b (3,), and the quadratic loss
sum(0.5 * a * (x - c)^2), whose gradient a * (x - c) is recomputed from the current
values before each of STEPS updates (so the optimizer state matters).

Known difference from Keras, on purpose: Keras stores a float learning rate in a
float32 variable and evaluates schedules in float32, so float64 variables see a
learning rate rounded to float32. tapegrad keeps the learning rate in double and casts
it to the variable's dtype; this script does the same. Float32 results are unaffected.

Where torch.optim computes the same update, its trajectory is written too (cases
named torch_*, float64 only), so the C test meets a second, independent implementation:
Adamax with a negligible epsilon (torch adds epsilon to |g| inside the maximum, Keras
to the maximum) and Adadelta as it is. Not NAdam: with momentum_decay=1 its formula is
Keras's, but Debian's torch 1.13 multiplies mu twice into mu_product_next (fixed in
later releases), so its trajectory is not Keras's. Before writing, the script
checks that each torch trajectory equals the transcription's to 1e-13 (and 1e-15 near 0).

TensorFlow.js was not used: its Adam adds epsilon to the bias-corrected sqrt(v_hat)
(epsilon placement differs from Keras), and its RMSprop and Adagrad differ similarly.

File format ('#' starts a comment line):

    var NAME RANK DIM... : V ...        initial value
    scale NAME : V ...                  a, per element
    center NAME : V ...                 c, per element
    case NAME DTYPE                     one optimizer configuration (test_optim.c builds it by NAME)
    step K NAME : V ...                 the variable after update K (1-based)
    end
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "optim_golden.txt")
STEPS = 5

VARS = {
    "w": ([2, 2], [0.5, -1.2, 2.0, 0.3], [1.0, 2.5, 0.5, 4.0], [0.2, 0.1, -0.3, 1.0]),
    "b": ([3], [0.1, -0.4, 0.8], [3.0, 0.7, 1.5], [-0.5, 0.25, 0.0]),
}
ORDER = ["w", "b"]


# ---- learning-rate schedules (keras/src/optimizers/schedules/learning_rate_schedule.py) ----
def exponential_decay(initial, decay_steps, rate, staircase=False):
    def f(step):
        p = step / decay_steps
        if staircase:
            p = np.floor(p)
        return initial * rate ** p
    return f


def piecewise_constant(boundaries, values):
    def f(step):
        for b, v in zip(boundaries, values):
            if step <= b:
                return v
        return values[-1]
    return f


def cosine_decay(initial, decay_steps, alpha=0.0):
    def f(step):
        step = min(step, decay_steps)
        cosine = 0.5 * (1.0 + np.cos(np.pi * step / decay_steps))
        return initial * ((1 - alpha) * cosine + alpha)
    return f


def cosine_decay_warmup(initial, decay_steps, warmup_target, warmup_steps, alpha=0.0):
    def f(step):
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return (warmup_target - initial) * (step / warmup_steps) + initial
        return cosine_decay(warmup_target, decay_steps, alpha)(step - warmup_steps)
    return f


def polynomial_decay(initial, decay_steps, end=0.0001, power=1.0, cycle=False):
    def f(step):
        steps = float(decay_steps)
        if cycle:
            steps = steps * (1.0 if step == 0 else np.ceil(step / decay_steps))
        else:
            step = min(step, steps)
        p = step / steps
        return (initial - end) * (1 - p) ** power + end
    return f


def inverse_time_decay(initial, decay_steps, rate, staircase=False):
    def f(step):
        p = step / decay_steps
        if staircase:
            p = np.floor(p)
        return initial / (1 + rate * p)
    return f


def cosine_decay_restarts(initial, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    def f(step):
        fraction = step / first_decay_steps
        if t_mul == 1.0:
            i_restart = np.floor(fraction)
            fraction -= i_restart
        else:
            i_restart = np.floor(np.log(1.0 - fraction * (1.0 - t_mul)) / np.log(t_mul))
            sum_r = (1.0 - t_mul ** i_restart) / (1.0 - t_mul)
            fraction = (fraction - sum_r) / t_mul ** i_restart
        cosine = 0.5 * m_mul ** i_restart * (1.0 + np.cos(np.pi * fraction))
        return initial * ((1 - alpha) * cosine + alpha)
    return f


# ---- the optimizers: update(T, x, g, state, iterations, lr) -> (x, state) ----
def sgd(momentum=0.0, nesterov=False):
    def init(x):
        return {"m": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        if momentum != 0:
            mom = T(momentum)
            s["m"] = s["m"] * mom - g * lr
            if nesterov:
                return x + (s["m"] * mom - g * lr)
            return x + s["m"]
        return x - g * lr
    return init, update


def adam(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    def init(x):
        return {"m": np.zeros_like(x), "v": np.zeros_like(x), "vhat": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        local_step = T(it + 1)
        beta_1_power = T(beta_1) ** local_step
        beta_2_power = T(beta_2) ** local_step
        alpha = lr * np.sqrt(T(1) - beta_2_power) / (T(1) - beta_1_power)
        s["m"] = s["m"] + (g - s["m"]) * T(1 - beta_1)
        s["v"] = s["v"] + (g * g - s["v"]) * T(1 - beta_2)
        v = s["v"]
        if amsgrad:
            s["vhat"] = np.maximum(s["vhat"], s["v"])
            v = s["vhat"]
        return x - (s["m"] * alpha) / (np.sqrt(v) + T(epsilon))
    return init, update


def rmsprop(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    def init(x):
        return {"v": np.zeros_like(x), "mo": np.zeros_like(x), "a": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        s["v"] = T(rho) * s["v"] + T(1 - rho) * (g * g)
        if centered:
            s["a"] = T(rho) * s["a"] + T(1 - rho) * g
            den = s["v"] - s["a"] * s["a"] + T(epsilon)
        else:
            den = s["v"] + T(epsilon)
        inc = (lr * g) / np.sqrt(den)
        if momentum > 0:
            s["mo"] = T(momentum) * s["mo"] + inc
            return x - s["mo"]
        return x - inc
    return init, update


def adagrad(initial_accumulator_value=0.1, epsilon=1e-7):
    def init(x):
        return {"acc": np.full_like(x, initial_accumulator_value)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        s["acc"] = s["acc"] + g * g
        return x - (lr * g) / np.sqrt(s["acc"] + T(epsilon))
    return init, update


def nadam(beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    # u_product is one variable of the optimizer, updated once per step before the
    # variables (nadam.py's _backend_update_step); "it" counts the steps, so it is
    # advanced on the first variable of each step only.
    prod = {}

    def init(x):
        return {"m": np.zeros_like(x), "v": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        key = (T, it)
        if key not in prod:
            last = prod.get((T, it - 1), T(1.0))
            prod[key] = last * T(beta_1) * (T(1.0) - T(0.5) * T(0.96) ** T(it + 1))
        lr = T(lr)
        local_step, next_step = T(it + 1), T(it + 2)
        b1, b2 = T(beta_1), T(beta_2)
        u_t = b1 * (T(1.0) - T(0.5) * T(0.96) ** local_step)
        u_t_1 = b1 * (T(1.0) - T(0.5) * T(0.96) ** next_step)
        u_product_t = prod[key]
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = b2 ** local_step
        s["m"] = s["m"] + (g - s["m"]) * (T(1) - b1)
        s["v"] = s["v"] + (g * g - s["v"]) * (T(1) - b2)
        m_hat = (u_t_1 * s["m"]) / (T(1) - u_product_t_1) + ((T(1) - u_t) * g) / (T(1) - u_product_t)
        v_hat = s["v"] / (T(1) - beta_2_power)
        return x - (m_hat * lr) / (np.sqrt(v_hat) + T(epsilon))
    return init, update


def adamax(beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    def init(x):
        return {"m": np.zeros_like(x), "u": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        beta_1_power = T(beta_1) ** T(it + 1)
        s["m"] = s["m"] + (g - s["m"]) * T(1 - beta_1)
        s["u"] = np.maximum(T(beta_2) * s["u"], np.abs(g))
        return x - (lr * s["m"]) / ((T(1) - beta_1_power) * (s["u"] + T(epsilon)))
    return init, update


def adadelta(rho=0.95, epsilon=1e-7):
    def init(x):
        return {"a": np.zeros_like(x), "d": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)

        def rms(v):
            return np.sqrt(v + T(epsilon))
        s["a"] = T(rho) * s["a"] + T(1 - rho) * (g * g)
        delta = -((rms(s["d"]) * g) / rms(s["a"]))
        s["d"] = T(rho) * s["d"] + T(1 - rho) * (delta * delta)
        return x + lr * delta
    return init, update


def ftrl(lr_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0, l2_shrinkage=0.0, beta=0.0):
    def init(x):
        return {"n": np.full_like(x, initial_accumulator_value), "z": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        l2_reg = T(l2) + T(beta) / (T(2.0) * lr)
        grad_to_use = g + T(2 * l2_shrinkage) * x
        new_accum = s["n"] + g * g
        s["z"] = s["z"] + (grad_to_use - ((new_accum ** T(-lr_power) - s["n"] ** T(-lr_power)) / lr) * x)
        quadratic = new_accum ** T(-lr_power) / lr + T(2) * l2_reg
        clipped = np.clip(s["z"], T(-l1), T(l1))
        s["n"] = new_accum
        return (clipped - s["z"]) / quadratic
    return init, update


def lion(beta_1=0.9, beta_2=0.99):
    def init(x):
        return {"m": np.zeros_like(x)}

    def update(T, x, g, s, it, lr):
        lr = T(lr)
        b1, b2 = T(beta_1), T(beta_2)
        x = x - lr * np.sign(s["m"] * b1 + g * (T(1.0) - b1))
        s["m"] = s["m"] * b2 + g * (T(1.0) - b2)
        return x
    return init, update


# ---- base_optimizer.py: clipping and weight decay ----
def clip(T, grads, clipnorm=0.0, global_clipnorm=0.0, clipvalue=0.0):
    if clipnorm > 0:
        out = []
        for g in grads:
            l2sum = np.sum(g * g)
            l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
            out.append(g * T(clipnorm) / np.maximum(l2norm, T(clipnorm)))
        return out
    if global_clipnorm > 0:
        norm = np.sqrt(np.sum(np.stack([np.sum(g * g) for g in grads])))
        scale = T(global_clipnorm) * np.minimum(T(1) / norm, T(1.0 / global_clipnorm)) + (norm - norm)
        return [g * scale for g in grads]
    if clipvalue > 0:
        return [np.clip(g, T(-clipvalue), T(clipvalue)) for g in grads]
    return grads


def run(T, opt, lr, weight_decay=0.0, **clip_args):
    init, update = opt
    xs = {n: np.array(VARS[n][1], dtype=T).reshape(VARS[n][0]) for n in ORDER}
    a = {n: np.array(VARS[n][2], dtype=T).reshape(VARS[n][0]) for n in ORDER}
    c = {n: np.array(VARS[n][3], dtype=T).reshape(VARS[n][0]) for n in ORDER}
    state = {n: init(xs[n]) for n in ORDER}
    trace = []
    for it in range(STEPS):
        rate = lr(it) if callable(lr) else lr    # the schedule at `iterations`, before the update
        grads = clip(T, [a[n] * (xs[n] - c[n]) for n in ORDER], **clip_args)
        for n, g in zip(ORDER, grads):
            x = xs[n]
            if weight_decay:
                x = x - x * T(weight_decay) * T(rate)
            xs[n] = update(T, x, g, state[n], it, rate)
            assert xs[n].dtype == T
        trace.append({n: xs[n].copy() for n in ORDER})
    return trace


def run_accumulated(T, opt, lr, steps=0, ema=None, overwrite=0, finalized=False):
    """base_optimizer.apply with gradient_accumulation_steps and use_ema: the updates
    count iterations // steps, the schedule every call; the EMA after every call."""
    init, update = opt
    xs = {n: np.array(VARS[n][1], dtype=T).reshape(VARS[n][0]) for n in ORDER}
    a = {n: np.array(VARS[n][2], dtype=T).reshape(VARS[n][0]) for n in ORDER}
    c = {n: np.array(VARS[n][3], dtype=T).reshape(VARS[n][0]) for n in ORDER}
    state = {n: init(xs[n]) for n in ORDER}
    acc = {n: np.zeros_like(xs[n]) for n in ORDER}
    avg = {n: np.zeros_like(xs[n]) for n in ORDER}
    k = steps or 1
    trace = []
    for it in range(STEPS):
        rate = lr(it) if callable(lr) else lr
        updates = it // k
        grads = {n: a[n] * (xs[n] - c[n]) for n in ORDER}
        if (it + 1) % k == 0:
            for n in ORDER:
                g = (grads[n] + acc[n]) / T(k) if steps else grads[n]
                xs[n] = update(T, xs[n], g, state[n], updates, rate)
                acc[n] = np.zeros_like(acc[n])
        else:
            for n in ORDER:
                acc[n] = acc[n] + grads[n]
        if ema is not None:
            m = T(0.0) if updates == 0 else T(ema)
            for n in ORDER:
                avg[n] = m * avg[n] + (T(1) - m) * xs[n]
                if overwrite and (updates + 1) % overwrite == 0:
                    xs[n] = avg[n].copy()
        trace.append({n: xs[n].copy() for n in ORDER})
    if finalized:  # finalize_variable_values after the last call
        trace[-1] = {n: avg[n].copy() for n in ORDER}
    return trace


CASES = [
    ("sgd", lambda T: run(T, sgd(), 0.1)),
    ("sgd_momentum", lambda T: run(T, sgd(momentum=0.9), 0.1)),
    ("sgd_nesterov", lambda T: run(T, sgd(momentum=0.9, nesterov=True), 0.1)),
    ("adam", lambda T: run(T, adam(), 0.1)),
    ("adam_amsgrad", lambda T: run(T, adam(beta_2=0.5, amsgrad=True), 0.3)),
    ("adam_no_amsgrad", lambda T: run(T, adam(beta_2=0.5), 0.3)),
    ("adamw", lambda T: run(T, adam(), 0.1, weight_decay=0.5)),
    ("rmsprop", lambda T: run(T, rmsprop(), 0.01)),
    ("rmsprop_momentum", lambda T: run(T, rmsprop(momentum=0.5), 0.01)),
    ("rmsprop_centered", lambda T: run(T, rmsprop(centered=True), 0.01)),
    ("rmsprop_centered_momentum", lambda T: run(T, rmsprop(momentum=0.5, centered=True), 0.01)),
    ("adagrad", lambda T: run(T, adagrad(), 0.1)),
    ("sgd_clipnorm", lambda T: run(T, sgd(), 0.1, clipnorm=1.0)),
    ("sgd_global_clipnorm", lambda T: run(T, sgd(), 0.1, global_clipnorm=2.0)),
    ("sgd_clipvalue", lambda T: run(T, sgd(), 0.1, clipvalue=0.5)),
    ("adam_clipnorm", lambda T: run(T, adam(), 0.1, clipnorm=0.5)),
    ("sgd_exponential_decay", lambda T: run(T, sgd(), exponential_decay(0.1, 2, 0.5))),
    ("sgd_piecewise_constant", lambda T: run(T, sgd(momentum=0.5), piecewise_constant([1, 3], [0.1, 0.05, 0.01]))),
    ("adam_cosine_decay", lambda T: run(T, adam(), cosine_decay(0.1, 3, alpha=0.1))),
    ("nadam", lambda T: run(T, nadam(), 0.1)),
    ("adamax", lambda T: run(T, adamax(), 0.1)),
    ("adadelta", lambda T: run(T, adadelta(), 1.0)),
    ("ftrl", lambda T: run(T, ftrl(), 0.1)),
    ("ftrl_regularized", lambda T: run(T, ftrl(lr_power=-0.7, l1=0.05, l2=0.1, l2_shrinkage=0.2, beta=0.5), 0.1)),
    ("lion", lambda T: run(T, lion(), 0.01)),
    ("sgd_polynomial_decay", lambda T: run(T, sgd(), polynomial_decay(0.1, 3, 0.01, power=0.5))),
    ("sgd_polynomial_cycle", lambda T: run(T, sgd(), polynomial_decay(0.1, 2, 0.01, power=2.0, cycle=True))),
    ("sgd_inverse_time_decay", lambda T: run(T, sgd(), inverse_time_decay(0.1, 2, 0.5))),
    ("sgd_inverse_time_staircase", lambda T: run(T, sgd(), inverse_time_decay(0.1, 2, 0.5, staircase=True))),
    ("adam_cosine_warmup", lambda T: run(T, adam(), cosine_decay_warmup(0.0, 3, 0.1, 2, alpha=0.1))),
    ("sgd_cosine_restarts", lambda T: run(T, sgd(), cosine_decay_restarts(0.1, 1, t_mul=2.0, m_mul=0.5))),
    ("adam_accumulated", lambda T: run_accumulated(T, adam(), 0.1, steps=2)),
    ("sgd_momentum_accumulated_schedule",
     lambda T: run_accumulated(T, sgd(momentum=0.9), exponential_decay(0.1, 2, 0.5), steps=3)),
    ("adam_ema_overwrite", lambda T: run_accumulated(T, adam(), 0.1, ema=0.9, overwrite=2)),
    ("sgd_ema_finalized", lambda T: run_accumulated(T, sgd(), 0.1, ema=0.5, finalized=True)),
    ("adam_accumulated_ema", lambda T: run_accumulated(T, adam(), 0.1, steps=2, ema=0.8, overwrite=1)),
    ("sgd_cosine_restarts_even", lambda T: run(T, sgd(), cosine_decay_restarts(0.1, 2, t_mul=1.0, alpha=0.2))),
]


# ---- torch.optim where it computes Keras's update (float64) ----
def torch_run(make_opt):
    import torch
    torch.set_default_dtype(torch.float64)
    params = [torch.tensor(VARS[n][1], dtype=torch.float64).reshape(VARS[n][0]).requires_grad_() for n in ORDER]
    a = [torch.tensor(VARS[n][2], dtype=torch.float64).reshape(VARS[n][0]) for n in ORDER]
    c = [torch.tensor(VARS[n][3], dtype=torch.float64).reshape(VARS[n][0]) for n in ORDER]
    opt = make_opt(params)
    trace = []
    for _ in range(STEPS):
        for p, ai, ci in zip(params, a, c):
            p.grad = (ai * (p.detach() - ci)).clone()
        opt.step()
        trace.append({n: p.detach().numpy().copy() for n, p in zip(ORDER, params)})
    return trace


def torch_cases():
    import torch.optim as o
    return [
        ("torch_adamax", lambda: torch_run(lambda ps: o.Adamax(ps, lr=0.1, betas=(0.9, 0.999), eps=1e-15)),
         adamax(epsilon=1e-15)),
        ("torch_adadelta", lambda: torch_run(lambda ps: o.Adadelta(ps, lr=1.0, rho=0.95, eps=1e-7)), adadelta()),
    ]


def fmt(values):
    return " ".join(repr(float(v)) for v in np.asarray(values).ravel())


def main():
    lines = ["# Golden values for tests/test_optim.c, generated by tools/make_optim_fixtures.py",
             "# (Keras 3 update formulas transcribed to numpy %s). Do not edit by hand; rerun the script." % np.__version__]
    for n in ORDER:
        shape, x0, a, c = VARS[n]
        lines.append("var %s %d %s : %s" % (n, len(shape), " ".join(map(str, shape)), fmt(x0)))
        lines.append("scale %s : %s" % (n, fmt(a)))
        lines.append("center %s : %s" % (n, fmt(c)))
    for name, fn in CASES:
        for T, tname in ((np.float64, "float64"), (np.float32, "float32")):
            trace = fn(T)
            lines.append("case %s %s" % (name, tname))
            for k, xs in enumerate(trace):
                for n in ORDER:
                    lines.append("step %d %s : %s" % (k + 1, n, fmt(xs[n])))
            lines.append("end")
    for name, fn, keras_opt in torch_cases():
        trace = fn()
        rate = 1.0 if name == "torch_adadelta" else 0.1
        ours = run(np.float64, keras_opt, rate)
        for k in range(STEPS):
            for n in ORDER:
                assert np.allclose(trace[k][n], ours[k][n], rtol=1e-13, atol=1e-15), (name, k, n)
        lines.append("case %s float64" % name)
        for k, xs in enumerate(trace):
            for n in ORDER:
                lines.append("step %d %s : %s" % (k + 1, n, fmt(xs[n])))
        lines.append("end")
    # The amsgrad case is only a test if the maximum mattered.
    diff = np.abs(dict(CASES)["adam_amsgrad"](np.float64)[-1]["w"] - dict(CASES)["adam_no_amsgrad"](np.float64)[-1]["w"])
    assert diff.max() > 1e-3, "amsgrad made no difference; pick other hyperparameters"
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d cases)" % (os.path.normpath(OUT), 2 * len(CASES) + len(torch_cases())))


if __name__ == "__main__":
    main()
