"""Finite-difference gradient checks (float64, relative error < 1e-6) for every Transformer block."""

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from lmbench.models.transformer.attention import (
    attention_backward,
    attention_forward,
    causal_mask,
    mha_backward,
    mha_forward,
)
from lmbench.models.transformer.block import BlockConfig, block_backward, block_forward, init_block
from lmbench.models.transformer.embedding import embed_backward, embed_forward, sinusoidal_positions
from lmbench.models.transformer.feedforward import ffn_backward, ffn_forward, gelu_backward, gelu_forward
from lmbench.models.transformer.layernorm import layernorm_backward, layernorm_forward
from lmbench.models.transformer.stack import StackSpec, init_stack, stack_backward, stack_forward

TOL = 1e-6


def rng():
    return np.random.default_rng(0)


def check(loss, analytic, x, n=40):
    """Compare analytic with numeric gradients at up to n random entries of x."""
    idx = np.random.default_rng(1).choice(x.size, size=min(n, x.size), replace=False)
    num = numeric_grad(loss, x, indices=idx)
    a = np.asarray(analytic).ravel()[idx]
    if np.abs(num).max() < 1e-8:  # a gradient that is exactly zero (e.g. the key bias: softmax is shift-invariant)
        assert np.abs(a).max() < 1e-8
        return
    err = rel_error(a, num)
    assert err < TOL, err


def test_layernorm_gradients_and_values():
    r = rng()
    x, g, b = r.normal(size=(3, 4, 6)), r.normal(size=6), r.normal(size=6)
    R = r.normal(size=(3, 4, 6))
    out, cache = layernorm_forward(x, g, b)
    # Independent value: (x − mean)/std by hand.
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
    assert np.allclose(out, ref, atol=1e-12)
    dx, dg, db = layernorm_backward(R, cache)

    def f():
        return float((layernorm_forward(x, g, b)[0] * R).sum())

    for a, arr in ((dx, x), (dg, g), (db, b)):
        check(f, a, arr)


def test_gelu_and_ffn_gradients():
    r = rng()
    x = r.normal(size=(2, 5, 4)) * 2
    R = r.normal(size=x.shape)
    out, cache = gelu_forward(x)
    assert np.isclose(gelu_forward(np.array([1.0]))[0][0], 0.8411919906082768)  # tanh-GELU(1), by hand
    check(lambda: float((gelu_forward(x)[0] * R).sum()), gelu_backward(R, cache), x)
    p = {"W1": r.normal(size=(4, 7)), "b1": r.normal(size=7), "W2": r.normal(size=(7, 4)), "b2": r.normal(size=4)}
    out, cache = ffn_forward(x, p)
    dx, grads = ffn_backward(R, cache)

    def f():
        return float((ffn_forward(x, p)[0] * R).sum())

    check(f, dx, x)
    for k in p:
        check(f, grads[k], p[k])


def test_causal_mask_and_attention_rows():
    m = causal_mask(3, 3)
    assert m.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    # The last query of a 1-token step against 4 cached keys sees all of them.
    assert not causal_mask(1, 4).any()
    r = rng()
    Q, K, V = r.normal(size=(2, 3, 4)), r.normal(size=(2, 3, 4)), r.normal(size=(2, 3, 4))
    out, cache = attention_forward(Q, K, V, causal=True)
    A = cache[3]
    assert np.allclose(A.sum(-1), 1) and np.all(A[:, 0, 1:] == 0)
    # Row 0 attends only to itself: output = V[0].
    assert np.allclose(out[:, 0], V[:, 0])
    # By hand for the full softmax of row 2.
    s = Q[0, 2] @ K[0].T / 2.0
    a = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    assert np.allclose(out[0, 2], a @ V[0])


@pytest.mark.parametrize("causal", [True, False])
def test_attention_gradients(causal):
    r = rng()
    Q, K, V = r.normal(size=(2, 2, 5, 3)), r.normal(size=(2, 2, 5, 3)), r.normal(size=(2, 2, 5, 3))
    R = r.normal(size=(2, 2, 5, 3))
    out, cache = attention_forward(Q, K, V, causal)
    dQ, dK, dV = attention_backward(R, cache)

    def f():
        return float((attention_forward(Q, K, V, causal)[0] * R).sum())

    for a, arr in ((dQ, Q), (dK, K), (dV, V)):
        check(f, a, arr)


def _attn_params(r, D):
    return {k: (r.normal(size=(D, D)) * 0.5 if k.startswith("W") else r.normal(size=D) * 0.1)
            for k in ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")}


def test_self_attention_gradients():
    r = rng()
    D, h = 8, 2
    x, p = r.normal(size=(2, 5, D)), _attn_params(r, D)
    R = r.normal(size=(2, 5, D))
    out, cache = mha_forward(x, None, p, h, causal=True)
    dx, dnone, grads = mha_backward(R, cache)
    assert dnone is None

    def f():
        return float((mha_forward(x, None, p, h, causal=True)[0] * R).sum())

    check(f, dx, x)
    for k in p:
        check(f, grads[k], p[k])


def test_cross_attention_gradients_and_kv_cache_matches_full():
    r = rng()
    D, h = 8, 4
    xq, mem, p = r.normal(size=(2, 3, D)), r.normal(size=(2, 6, D)), _attn_params(r, D)
    R = r.normal(size=(2, 3, D))
    out, cache = mha_forward(xq, mem, p, h, causal=False)
    dxq, dmem, grads = mha_backward(R, cache)

    def f():
        return float((mha_forward(xq, mem, p, h, causal=False)[0] * R).sum())

    check(f, dxq, xq)
    check(f, dmem, mem)
    for k in p:
        check(f, grads[k], p[k])
    # Incremental self-attention with a key/value cache gives the full causal pass's last row.
    x = r.normal(size=(2, 5, D))
    full, _ = mha_forward(x, None, p, h, causal=True)
    _, c = mha_forward(x[:, :4], None, p, h, causal=True)
    last, c2 = mha_forward(x[:, 4:], None, p, h, causal=True, past=(c["k"], c["v"]))
    assert np.allclose(last[:, 0], full[:, 4]) and c2["k"].shape[2] == 5


@pytest.mark.parametrize("norm,cross", [("pre", False), ("post", False), ("pre", True), ("post", True)])
def test_block_gradients(norm, cross):
    r = rng()
    cfg = BlockConfig(d_model=8, heads=2, d_ff=12, norm=norm, causal=True, cross=cross)
    p = init_block(cfg, r, np.float64, 1)
    for k in p:  # away from the initial values' symmetries (γ = 1, β = 0)
        p[k] = p[k] + r.normal(size=p[k].shape) * 0.3
    x = r.normal(size=(2, 4, 8))
    mem = r.normal(size=(2, 3, 8)) if cross else None
    R = r.normal(size=(2, 4, 8))
    out, cache = block_forward(x, p, cfg, memory=mem)
    dx, dmem, grads = block_backward(R, cache)

    def f():
        return float((block_forward(x, p, cfg, memory=mem)[0] * R).sum())

    check(f, dx, x)
    if cross:
        check(f, dmem, mem)
    assert set(grads) == set(p)
    for k in p:
        check(f, grads[k], p[k], n=10)


def test_dropout_block_gradient_with_a_fixed_mask():
    r = rng()
    cfg = BlockConfig(d_model=8, heads=2, d_ff=12, dropout=0.3)
    p = init_block(cfg, r, np.float64, 1)
    x, R = r.normal(size=(2, 4, 8)), r.normal(size=(2, 4, 8))

    def f():
        return float((block_forward(x, p, cfg, np.random.default_rng(5), train=True)[0] * R).sum())

    out, cache = block_forward(x, p, cfg, np.random.default_rng(5), train=True)
    assert not np.allclose(out, block_forward(x, p, cfg)[0])  # dropout changed something
    dx, _, grads = block_backward(R, cache)
    check(f, dx, x)
    check(f, grads["ffn.W1"], p["ffn.W1"])


def test_embeddings_and_sinusoids():
    P = sinusoidal_positions(5, 4, np.float64)
    assert np.allclose(P[3], [np.sin(3), np.cos(3), np.sin(3 / 100), np.cos(3 / 100)])
    r = rng()
    E, Pl = r.normal(size=(7, 4)), r.normal(size=(6, 4))
    ids = r.integers(0, 7, size=(2, 3))
    R = r.normal(size=(2, 3, 4))
    out, cache = embed_forward(ids, E, Pl, offset=2)
    assert np.allclose(out[1, 2], E[ids[1, 2]] + Pl[4])
    dE, dP = embed_backward(R, cache)

    def f():
        return float((embed_forward(ids, E, Pl, offset=2)[0] * R).sum())

    check(f, dE, E)
    check(f, dP, Pl)


@pytest.mark.parametrize("norm,positions", [("pre", "learned"), ("post", "sinusoidal")])
def test_stack_gradients(norm, positions):
    r = rng()
    spec = StackSpec("d.", BlockConfig(d_model=8, heads=2, d_ff=12, norm=norm, cross=True), layers=2, context=6,
                     vocab=9, positions=positions)
    w = init_stack(spec, r, np.float64)
    for k in w:
        w[k] = w[k] + r.normal(size=w[k].shape) * 0.2
    ids = r.integers(0, 9, size=(2, 5))
    mem = r.normal(size=(2, 3, 8))
    R = r.normal(size=(2, 5, 8))
    h, cache = stack_forward(ids, w, spec, memory=mem)
    grads, dmem = stack_backward(R, cache, spec)
    assert set(grads) == set(w)

    def f():
        return float((stack_forward(ids, w, spec, memory=mem)[0] * R).sum())

    check(f, dmem, mem)
    for k in w:
        check(f, grads[k], w[k], n=6)
