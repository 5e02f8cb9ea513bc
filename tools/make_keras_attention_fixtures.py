#!/usr/bin/python3
"""Golden values for tests/test_attention_layers.c: transcriptions of Keras 3's
MultiHeadAttention (its einsum equations, for any key_dim, value_dim, output_shape and
attention_axes), Attention and AdditiveAttention, in PyTorch float64 so that autograd gives
the gradients.

Run with Debian's interpreter (python3-torch):

    /usr/bin/python3 tools/make_keras_attention_fixtures.py   # writes tests/fixtures/keras_attention_golden.txt

Transcribed from keras/src/layers/attention/ (keras-team/keras):
  * multi_head_attention.py: _build_proj_equation and _build_attention_equation below are
    Keras's functions; build() makes query/key/value EinsumDense layers of equation
    _build_proj_equation(rank - 1, 1, 2) with bias over the last two letters, the output one
    of _build_proj_equation(rank - 1, 2, len(output_shape)); _compute_attention scales the
    query by 1/sqrt(key_dim), takes einsum(dot_product_equation, key, query), a softmax over
    the last len(attention_axes) axes with the mask applied as Keras's Softmax layer does
    (where(mask, x, -1e9), then where(mask, y, 0)), einsum(combine_equation, scores, value),
    then the output projection. The causal mask is _compute_causal_mask's lower triangle of
    (query steps, value steps), expanded before the heads axis.
  * attention.py: scores = q k^T (times `scale`), or for score_mode "concat"
    concat_score_weight * sum(tanh(scale * (q[..., None, :] + k[..., None, :, :])), -1);
    the causal mask as where(mask, scores, scores - 1e9); softmax; weights @ value.
  * additive_attention.py: scores = sum(scale * tanh(q[..., None, :] + k[..., None, :, :]), -1),
    scale a (dim,) variable.
The "dot" cases are checked, as the script runs, against torch's own scaled dot-product
attention (torch 1.13's _scaled_dot_product_attention, the query scaled back by sqrt(dim)
times `scale`; the causal mask as its boolean attn_mask): outputs and weights.
The loss is sum(output * r) + sum(scores * rs) for fixed random r and rs (scores: the
attention probabilities, Keras's return_attention_scores).

Format: `case NAME LAYER` (mha, attention or additive), then `opts` with the layer's
options (mha: heads key_dim value_dim causal n_out out... n_axes axes...; attention:
use_scale concat causal; additive: use_scale causal), then arrays `NAME RANK DIM... : V...`
for query, value, key (when given), the variables var0... in Keras's order, r, rs,
output, scores, grad_query, grad_value, grad_key and grad_var0...; `end`.
"""

import math
import os
import string

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "keras_attention_golden.txt")
rng = np.random.default_rng(20261204)


def arr(tag, x):
    x = np.asarray(x.detach().numpy() if torch.is_tensor(x) else x, dtype=np.float64)
    return "%s %d %s: %s" % (tag, x.ndim, "".join("%d " % d for d in x.shape),
                             " ".join(repr(float(v)) for v in x.ravel()))


# ---- Keras's equation builders, as in multi_head_attention.py ----------------------------
def _index_to_einsum_variable(i):
    return string.ascii_lowercase[i]


def _build_attention_equation(rank, attn_axes):
    target_notation = ""
    for i in range(rank):
        target_notation += _index_to_einsum_variable(i)
    batch_dims = tuple(np.delete(range(rank), attn_axes + (rank - 1,)))
    letter_offset = rank
    source_notation = ""
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source_notation += target_notation[i]
        else:
            source_notation += _index_to_einsum_variable(letter_offset)
            letter_offset += 1
    product_notation = "".join([target_notation[i] for i in batch_dims] + [target_notation[i] for i in attn_axes] +
                               [source_notation[i] for i in attn_axes])
    dot_product_equation = "%s,%s->%s" % (source_notation, target_notation, product_notation)
    attn_scores_rank = len(product_notation)
    combine_equation = "%s,%s->%s" % (product_notation, source_notation, target_notation)
    return dot_product_equation, combine_equation, attn_scores_rank


def _build_proj_equation(free_dims, bound_dims, output_dims):
    input_str = kernel_str = output_str = bias_axes = ""
    letter_offset = 0
    for i in range(free_dims):
        char = _index_to_einsum_variable(i + letter_offset)
        input_str += char
        output_str += char
    letter_offset += free_dims
    for i in range(bound_dims):
        char = _index_to_einsum_variable(i + letter_offset)
        input_str += char
        kernel_str += char
    letter_offset += bound_dims
    for i in range(output_dims):
        char = _index_to_einsum_variable(i + letter_offset)
        kernel_str += char
        output_str += char
        bias_axes += char
    return f"{input_str},{kernel_str}->{output_str}", bias_axes, len(output_str)


def masked_softmax(scores, mask, axes):
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(-1e9))
    y = torch.exp(scores - torch.logsumexp(scores, dim=axes, keepdim=True))
    if mask is not None:
        y = torch.where(mask, y, torch.tensor(0.0))
    return y


def mha(q_in, v_in, k_in, w, heads, key_dim, value_dim, out_shape, axes, causal):
    rank = q_in.dim() + 1  # the projections' rank
    eq, _, _ = _build_proj_equation(q_in.dim() - 1, 1, 2)
    q = torch.einsum(eq, q_in, w[0]) + w[1]
    k = torch.einsum(eq, k_in, w[2]) + w[3]
    v = torch.einsum(eq, v_in, w[4]) + w[5]
    attn_axes = tuple(range(1, rank - 2)) if axes is None else tuple(a if a >= 0 else rank - 1 + a for a in axes)
    dot_eq, combine_eq, scores_rank = _build_attention_equation(rank, attn_axes)
    norm_axes = tuple(range(scores_rank - len(attn_axes), scores_rank))
    mask = None
    if causal:
        t, s = q_in.shape[1], v_in.shape[1]
        mask = torch.tril(torch.ones(t, s, dtype=torch.bool))[None]  # (1, T, S): row >= col
        while mask.dim() < scores_rank:
            mask = mask.unsqueeze(-len(attn_axes) * 2 - 1)
    q = q * (1.0 / math.sqrt(float(key_dim)))
    scores = masked_softmax(torch.einsum(dot_eq, k, q), mask, norm_axes)
    o = torch.einsum(combine_eq, scores, v)
    eq, _, _ = _build_proj_equation(q_in.dim() - 1, 2, len(out_shape))
    return torch.einsum(eq, o, w[6]) + w[7], scores


def attention(q, v, k, w, use_scale, concat, causal, additive):
    if additive:
        scale = w[0] if use_scale else 1.0
        scores = torch.sum(scale * torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3)), -1)
    elif not concat:
        scores = q @ k.transpose(-2, -1)
        if use_scale:
            scores = scores * w[0]
    else:
        s = (q.unsqueeze(-2) + k.unsqueeze(-3))
        if use_scale:
            s = w[0] * s
        scores = w[-1] * torch.sum(torch.tanh(s), -1)
    if causal:
        tq, tv = scores.shape[-2], scores.shape[-1]
        mask = torch.tril(torch.ones(tq, tv, dtype=torch.bool))[None]
        scores = torch.where(mask, scores, scores - 1e9)
    weights = torch.softmax(scores, -1)
    return weights @ v, weights


def emit(name, layer, opts, inputs, weights, f):
    ts = [torch.tensor(x, requires_grad=True) for x in inputs]
    ws = [torch.tensor(x, requires_grad=True) for x in weights]
    q, v = ts[0], ts[1]
    k = ts[2] if len(ts) > 2 else v
    out, scores = f(q, v, k, ws)
    r = rng.uniform(-1, 1, size=tuple(out.shape))
    rs = rng.uniform(-1, 1, size=tuple(scores.shape))
    ((out * torch.tensor(r)).sum() + (scores * torch.tensor(rs)).sum()).backward()
    lines = ["case %s %s" % (name, layer), "opts " + " ".join(str(int(o)) for o in opts)]
    for tag, x in zip(("query", "value", "key"), inputs):
        lines.append(arr(tag, x))
    lines += [arr("var%d" % i, x) for i, x in enumerate(weights)]
    lines += [arr("r", r), arr("rs", rs), arr("output", out), arr("scores", scores)]
    for tag, t in zip(("grad_query", "grad_value", "grad_key"), ts):
        lines.append(arr(tag, t.grad))
    lines += [arr("grad_var%d" % i, w.grad) for i, w in enumerate(ws)]
    lines.append("end")
    return lines


def u(*shape, s=1.0):
    return rng.uniform(-s, s, size=shape)


def mha_case(name, q_shape, v_shape, k_dim_last, heads, key_dim, value_dim, out_shape=None, axes=None, causal=False):
    dq, dv = q_shape[-1], v_shape[-1]
    dk = k_dim_last if k_dim_last else dv
    out_shape = out_shape or (dq,)
    weights = [u(dq, heads, key_dim, s=0.6), u(heads, key_dim, s=0.2), u(dk, heads, key_dim, s=0.6),
               u(heads, key_dim, s=0.2), u(dv, heads, value_dim, s=0.6), u(heads, value_dim, s=0.2),
               u(heads, value_dim, *out_shape, s=0.6), u(*out_shape, s=0.2)]
    inputs = [u(*q_shape), u(*v_shape)]
    if k_dim_last:
        inputs.append(u(*(v_shape[:-1] + (k_dim_last,))))
    opts = [heads, key_dim, value_dim, causal, len(out_shape)] + list(out_shape)
    opts += [len(axes)] + list(axes) if axes else [0]
    return emit(name, "mha", opts, inputs, weights,
                lambda q, v, k, w: mha(q, v, k, w, heads, key_dim, value_dim, out_shape, axes, causal))


def attention_case(name, q_shape, v_shape, k_shape, use_scale, concat, causal, additive=False):
    inputs = [u(*q_shape), u(*v_shape)] + ([u(*k_shape)] if k_shape else [])
    weights = []
    if additive and use_scale:
        weights.append(u(q_shape[-1], s=0.9))
    elif not additive:
        if use_scale:
            weights.append(np.array(1.7 if not concat else 0.8))
        if concat:
            weights.append(np.array(1.3))
    opts = [use_scale, causal] if additive else [use_scale, concat, causal]
    if not additive and not concat:  # where Keras's dot attention is torch's own
        q, v, k = (torch.tensor(x) for x in (inputs + inputs[1:2])[:3])
        scale = (float(weights[0]) if use_scale else 1.0) * math.sqrt(q.shape[-1])  # torch divides by sqrt(E)
        mask = torch.tril(torch.ones(q.shape[1], k.shape[1], dtype=torch.bool)) if causal else None
        want, want_weights = torch.nn.functional._scaled_dot_product_attention(
            q * scale, k, v, attn_mask=mask, dropout_p=0.0, need_attn_weights=True)
        got, got_weights = attention(q, v, k, [torch.tensor(w) for w in weights], use_scale, concat, causal, additive)
        assert float((want - got).abs().max()) < 1e-12 and float((want_weights - got_weights).abs().max()) < 1e-12, name
    return emit(name, "additive" if additive else "attention", opts, inputs, weights,
                lambda q, v, k, w: attention(q, v, k, w, use_scale, concat, causal, additive))


def main():
    lines = ["# Golden values for tests/test_attention_layers.c, generated by",
             "# tools/make_keras_attention_fixtures.py (Keras 3's formulas in PyTorch %s float64). Do not edit."
             % torch.__version__]
    lines += mha_case("mha_key_dim_3_value_dim_5", (2, 3, 4), (2, 5, 3), 2, heads=2, key_dim=3, value_dim=5)
    lines += mha_case("mha_output_shape", (2, 3, 4), (2, 4, 4), 0, heads=3, key_dim=2, value_dim=2,
                      out_shape=(2, 3))
    lines += mha_case("mha_axes_2", (2, 3, 2, 4), (2, 3, 4, 4), 0, heads=2, key_dim=3, value_dim=3, axes=(2,))
    lines += mha_case("mha_axes_1_2", (2, 2, 3, 4), (2, 3, 2, 4), 0, heads=2, key_dim=2, value_dim=3, axes=(1, 2))
    lines += mha_case("mha_causal", (2, 4, 4), (2, 4, 4), 0, heads=2, key_dim=3, value_dim=2, causal=True)
    lines += attention_case("dot", (2, 3, 4), (2, 5, 4), None, False, False, False)
    lines += attention_case("dot_scale_key", (2, 3, 4), (2, 5, 3), (2, 5, 4), True, False, False)
    lines += attention_case("concat_scale", (2, 3, 4), (2, 5, 4), None, True, True, False)
    lines += attention_case("concat_causal", (2, 4, 3), (2, 4, 3), None, False, True, True)
    lines += attention_case("dot_causal", (2, 4, 3), (2, 5, 3), None, False, False, True)
    lines += attention_case("additive", (2, 3, 4), (2, 5, 4), None, True, False, False, additive=True)
    lines += attention_case("additive_causal_key", (2, 4, 3), (2, 4, 2), (2, 4, 3), False, False, True,
                            additive=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s" % os.path.normpath(OUT))


if __name__ == "__main__":
    main()
