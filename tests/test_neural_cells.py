"""Layers and recurrent cells: analytic gradients against centred finite differences in float64."""

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from lmbench.errors import LmbenchError
from lmbench.models.neural import layers
from lmbench.models.neural.cells import GRUCell, LSTMCell, RNNCell, make_cell
from lmbench.models.neural.optim import SGD, Adam, clip_global_norm

CELL_CASES = [
    ("rnn", {"nonlinearity": "tanh"}),
    ("rnn", {"nonlinearity": "relu"}),
    ("rnn", {"nonlinearity": "linear"}),
    ("lstm", {"forget_bias": 1.0}),
    ("gru", {}),
]


@pytest.mark.parametrize("kind,options", CELL_CASES)
def test_cell_gradients_match_finite_differences(kind, options):
    rng = np.random.default_rng(0)
    T, B, D, H = 4, 3, 5, 4
    cell = make_cell(kind, D, H, rng, np.float64, init_range=0.6, **options)
    xs = rng.normal(size=(T, B, D))
    state0 = tuple(rng.normal(size=(B, H)) * 0.5 for _ in range(cell.n_states))
    # A loss that weighs every output and the final state differently.
    w_out = rng.normal(size=(T, B, H))
    w_fin = tuple(rng.normal(size=(B, H)) for _ in range(cell.n_states))

    def loss():
        hs, final, _ = cell.forward(xs, state0)
        return float((hs * w_out).sum() + sum((f * w).sum() for f, w in zip(final, w_fin)))

    _, _, cache = cell.forward(xs, state0)
    dxs, dstate0, grads, dh = cell.backward(w_out, w_fin, cache, return_dh=True)
    assert set(grads) == set(cell.weights)
    for name, p in cell.weights.items():
        assert rel_error(grads[name], numeric_grad(loss, p)) < 1e-6, name
    assert rel_error(dxs, numeric_grad(loss, xs)) < 1e-6
    for s, ds in zip(state0, dstate0):
        assert rel_error(ds, numeric_grad(loss, s)) < 1e-6
    assert dh.shape == (T, B, H)
    # dh[0] is the total gradient w.r.t. h_0 (the first output); for a single-state cell, dstate0 = dh[0]·∂h_0/∂h_{-1}.
    assert np.allclose(dh[T - 1], w_out[T - 1] + w_fin[0])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_step_equals_sequence_and_step_backward(kind):
    rng = np.random.default_rng(1)
    cell = make_cell(kind, 3, 4, rng, np.float64)
    xs = rng.normal(size=(5, 2, 3))
    state = cell.zero_state(2)
    hs, final, cache = cell.forward(xs, state)
    s = state
    for t in range(5):
        h, s, _ = cell.step(xs[t], s)
        assert np.allclose(h, hs[t])
    for a, b in zip(s, final):
        assert np.allclose(a, b)
    # step_backward of a single step equals backward of a length-1 sequence
    h, s1, c1 = cell.step(xs[0], state)
    dh = rng.normal(size=h.shape)
    dx, dstate, grads = cell.step_backward(dh, None, c1)
    _, _, c2 = cell.forward(xs[:1], state)
    dxs, dstate2, grads2 = cell.backward(dh[None], None, c2)
    assert np.allclose(dx, dxs[0])
    assert all(np.allclose(grads[k], grads2[k]) for k in grads)


def test_gradient_flow_hook_is_jacobian_product():
    """With a loss at step t only, dh[t-k] = ∂L_t/∂h_{t−k}; checked against finite differences via the input."""
    rng = np.random.default_rng(2)
    cell = RNNCell(2, 3, rng, np.float64, nonlinearity="linear")
    T = 6
    xs = rng.normal(size=(T, 1, 2))
    hs, _, cache = cell.forward(xs, cell.zero_state(1))
    dhs = np.zeros_like(hs)
    dhs[-1] = 1.0
    _, _, _, dh = cell.backward(dhs, None, cache, return_dh=True)
    W = cell.weights["W_h"]
    # linear RNN: ∂(1ᵀh_T)/∂h_{T−k} = 1ᵀ (W^k)ᵀ in row form = (W^k) 1
    for k in range(T):
        expected = np.linalg.matrix_power(W, k) @ np.ones(3)
        assert np.allclose(dh[T - 1 - k, 0], expected)


def test_lstm_forget_bias_and_gate_layout():
    cell = LSTMCell(3, 5, np.random.default_rng(0), forget_bias=2.5)
    assert np.all(cell.weights["b_x"][:5] + cell.weights["b_h"][:5] == 2.5)
    assert cell.weights["W_x"].shape == (3, 20) and cell.weights["W_h"].shape == (5, 20)
    assert cell.n_states == 2 and GRUCell(3, 5, np.random.default_rng(0)).n_states == 1
    assert cell.weights["W_x"].dtype == np.float32


def test_bad_sizes_and_options():
    rng = np.random.default_rng(0)
    for bad in (0, -1, 2.5):
        with pytest.raises(LmbenchError):
            RNNCell(bad, 3, rng)
        with pytest.raises(LmbenchError):
            LSTMCell(3, bad, rng)
    with pytest.raises(LmbenchError):
        RNNCell(3, 3, rng, nonlinearity="sigmoid")
    with pytest.raises(LmbenchError):
        make_cell("transformer", 3, 3, rng)
    with pytest.raises(LmbenchError):
        RNNCell(3, 4, rng).forward(np.zeros((2, 1, 5), np.float32), (np.zeros((1, 4), np.float32),))


# --- layers ---------------------------------------------------------------------------------------------


def test_linear_and_embedding_gradients():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4))
    W = rng.normal(size=(4, 5))
    b = rng.normal(size=5)
    w = rng.normal(size=(2, 3, 5))

    def loss():
        return float((layers.linear_forward(x, W, b)[0] * w).sum())

    out, cache = layers.linear_forward(x, W, b)
    assert np.allclose(out, x @ W + b)
    dx, dW, db = layers.linear_backward(w, cache)
    assert rel_error(dx, numeric_grad(loss, x)) < 1e-7
    assert rel_error(dW, numeric_grad(loss, W)) < 1e-7
    assert rel_error(db, numeric_grad(loss, b)) < 1e-7

    E = rng.normal(size=(6, 3))
    ids = np.array([[1, 4], [1, 0]])
    out, cache = layers.embedding_forward(ids, E)
    assert np.array_equal(out[1, 0], E[1])
    d = rng.normal(size=(2, 2, 3))
    dE = layers.embedding_backward(d, cache)
    assert np.allclose(dE[1], d[0, 0] + d[1, 0]) and np.allclose(dE[4], d[0, 1]) and np.all(dE[[2, 3, 5]] == 0)


def test_dropout_mask_scale_and_backward():
    rng = np.random.default_rng(4)
    x = np.ones((400, 50), dtype=np.float32)
    out, cache = layers.dropout_forward(x, 0.25, rng)
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.01
    assert np.allclose(out[kept], 1 / 0.75)
    d = layers.dropout_backward(np.full_like(x, 2.0), cache)
    assert np.array_equal(d != 0, kept) and np.allclose(d[kept], 2 / 0.75)
    same, none = layers.dropout_forward(x, 0.25, rng, train=False)
    assert same is x and none is None


def test_softmax_cross_entropy_against_direct_formula_and_fd():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 7)) * 3
    logits[0, 2] = 800.0  # would overflow a naive exp
    y = rng.integers(0, 7, size=6)
    loss, dlogits, logp = layers.softmax_cross_entropy(logits, y)
    # independent: log p via log-sum-exp with Python's math on each row
    import math

    for i in range(6):
        m = max(logits[i])
        lse = m + math.log(sum(math.exp(v - m) for v in logits[i]))
        assert abs(logp[i] - (logits[i, y[i]] - lse)) < 1e-12
    assert abs(loss + logp.mean()) < 1e-12
    f = lambda: layers.softmax_cross_entropy(logits, y)[0]  # noqa: E731
    num = numeric_grad(f, logits)
    assert rel_error(dlogits, num) < 1e-6
    # a mask drops rows from the mean and zeroes their gradient; inplace overwrites the logits
    mask = np.array([True, False, True, True, False, True])
    lossm, dm, _ = layers.softmax_cross_entropy(logits.copy(), y, mask=mask, inplace=True)
    assert abs(lossm + logp[mask].mean()) < 1e-12
    assert np.all(dm[~mask] == 0)
    assert np.allclose(layers.log_softmax(logits)[np.arange(6), y], logp)
    assert np.allclose(layers.target_logprobs(logits.copy(), y), logp, atol=1e-12)


# --- optimisers -------------------------------------------------------------------------------------------


def test_sgd_adam_and_clipping_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    g = {"w": np.array([3.0, 4.0])}
    total = clip_global_norm(g, 1.0)
    assert total == 5.0 and np.allclose(g["w"], np.array([3.0, 4.0]) / (5.0 + 1e-6))
    g2 = {"w": np.array([0.3, 0.4])}
    assert clip_global_norm(g2, 1.0) == pytest.approx(0.5) and np.allclose(g2["w"], [0.3, 0.4])
    SGD(0.5).step(p, {"w": np.array([2.0, 2.0])})
    assert np.allclose(p["w"], [0.0, -3.0])
    # Adam, first step: m̂ = g, v̂ = g², update = lr·g/(|g|+eps) ≈ lr·sign(g)
    q = {"w": np.array([1.0, 1.0])}
    opt = Adam(0.1)
    opt.step(q, {"w": np.array([2.0, -0.5])})
    assert np.allclose(q["w"], [0.9, 1.1], atol=1e-7)
    # second step by the formulas
    opt.step(q, {"w": np.array([1.0, 1.0])})
    m = 0.9 * 0.1 * np.array([2.0, -0.5]) + 0.1 * np.array([1.0, 1.0])
    v = 0.999 * 0.001 * np.array([4.0, 0.25]) + 0.001 * np.array([1.0, 1.0])
    expect = np.array([0.9, 1.1]) - 0.1 * (m / (1 - 0.81)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert np.allclose(q["w"], expect)
    with pytest.raises(LmbenchError):
        SGD(0.0)


def test_blas_threads_context_restores():
    from lmbench.models.neural.blas import blas_threads, get_blas_threads

    before = get_blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS this helper can reach")
    with blas_threads(1):
        assert get_blas_threads() == 1
    assert get_blas_threads() == before
