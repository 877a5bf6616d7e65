"""The fused cells against the lecture's equations (models/neural/reference.py), forward and backward, float64.

The reference is itself checked against finite differences and, for one LSTM step, against a hand
computation with `math`, so the fused fast path is compared with an oracle that stands on its own.
"""

import math

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from lmbench.models.neural.cells import make_cell
from lmbench.models.neural.reference import reference_for

CELL_CASES = [
    ("rnn", {"nonlinearity": "tanh"}),
    ("rnn", {"nonlinearity": "relu"}),
    ("rnn", {"nonlinearity": "linear"}),
    ("lstm", {"forget_bias": 1.0}),
    ("gru", {}),
]
TOL = 1e-6


def _setup(kind, options, seed=0, T=6, B=3, D=5, H=4):
    rng = np.random.default_rng(seed)
    cell = make_cell(kind, D, H, rng, np.float64, init_range=0.7, **options)
    xs = rng.normal(size=(T, B, D))
    state0 = tuple(rng.normal(size=(B, H)) * 0.5 for _ in range(cell.n_states))
    return rng, cell, xs, state0


def _assert_close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    assert np.max(np.abs(a - b)) < TOL, f"{what}: max |fused − reference| = {np.max(np.abs(a - b)):.3g}"


@pytest.mark.parametrize("kind,options", CELL_CASES)
def test_fused_forward_equals_the_lecture_equations(kind, options):
    _, cell, xs, state0 = _setup(kind, options)
    hs, final, _ = cell.forward(xs, state0)
    ref_hs, ref_final, _ = reference_for(cell).forward(xs, state0)
    _assert_close(hs, ref_hs, "hs")
    for k, (a, b) in enumerate(zip(final, ref_final)):
        _assert_close(a, b, f"final state {k}")


@pytest.mark.parametrize("with_final_grad", [True, False])
@pytest.mark.parametrize("kind,options", CELL_CASES)
def test_fused_backward_equals_the_reference_backward(kind, options, with_final_grad):
    rng, cell, xs, state0 = _setup(kind, options, seed=1)
    dhs = rng.normal(size=(xs.shape[0], xs.shape[1], cell.hidden_size))
    dfinal = tuple(rng.normal(size=s.shape) for s in state0) if with_final_grad else None
    _, _, cache = cell.forward(xs, state0)
    dxs, dstate0, grads = cell.backward(dhs, dfinal, cache)
    ref = reference_for(cell)
    _, _, caches = ref.forward(xs, state0)
    ref_dxs, ref_dstate0, ref_grads = ref.backward(dhs, dfinal, caches)
    _assert_close(dxs, ref_dxs, "d inputs")
    for k, (a, b) in enumerate(zip(dstate0, ref_dstate0)):
        _assert_close(a, b, f"d initial state {k}")
    assert set(grads) == set(ref_grads) == {"W_x", "W_h", "b_x", "b_h"}
    for name in grads:
        _assert_close(grads[name], ref_grads[name], f"d {name}")


@pytest.mark.parametrize("kind,options", CELL_CASES)
def test_the_reference_backward_matches_finite_differences(kind, options):
    rng, cell, xs, state0 = _setup(kind, options, seed=2, T=3, B=2, D=3, H=3)
    ref = reference_for(cell)
    w_out = rng.normal(size=(xs.shape[0], xs.shape[1], cell.hidden_size))
    w_fin = tuple(rng.normal(size=s.shape) for s in state0)

    def loss():
        fresh = reference_for(cell)  # rebuilt from the (perturbed) fused weights
        hs, final, _ = fresh.forward(xs, state0)
        return float((hs * w_out).sum() + sum((f * w).sum() for f, w in zip(final, w_fin)))

    _, _, caches = ref.forward(xs, state0)
    dxs, dstate0, grads = ref.backward(w_out, w_fin, caches)
    assert rel_error(dxs, numeric_grad(loss, xs)) < 1e-7
    for s, ds in zip(state0, dstate0):
        assert rel_error(ds, numeric_grad(loss, s)) < 1e-7
    for name, weights in cell.weights.items():
        assert rel_error(grads[name], numeric_grad(loss, weights)) < 1e-7, name


def test_one_lstm_step_by_hand():
    # D = H = 1: every gate is a scalar, so the slides' equations can be written out with `math`.
    cell = make_cell("lstm", 1, 1, np.random.default_rng(0), np.float64)
    # fused blocks f | i | o | C̃; W acts on [h_{t−1}, x_t]: rows of W_h then W_x.
    w_h, w_x, b = [0.5, -0.3, 0.8, 0.2], [1.5, 0.7, -0.4, 0.9], [0.1, -0.2, 0.3, 0.05]
    cell.weights["W_h"][0], cell.weights["W_x"][0] = w_h, w_x
    cell.weights["b_x"][:], cell.weights["b_h"][:] = b, 0.0
    h_prev, C_prev, x = 0.4, -0.6, 1.2

    def sig(a):
        return 1.0 / (1.0 + math.exp(-a))

    f = sig(w_h[0] * h_prev + w_x[0] * x + b[0])
    i = sig(w_h[1] * h_prev + w_x[1] * x + b[1])
    o = sig(w_h[2] * h_prev + w_x[2] * x + b[2])
    C_tilde = math.tanh(w_h[3] * h_prev + w_x[3] * x + b[3])
    C = f * C_prev + i * C_tilde
    h = o * math.tanh(C)
    state = (np.array([[h_prev]]), np.array([[C_prev]]))
    ref_h, (_, ref_C), _ = reference_for(cell).step(np.array([[x]]), state)
    fused_h, (_, fused_C), _ = cell.step(np.array([[x]]), state)
    assert abs(ref_h[0, 0] - h) < 1e-12 and abs(ref_C[0, 0] - C) < 1e-12
    assert abs(fused_h[0, 0] - h) < 1e-12 and abs(fused_C[0, 0] - C) < 1e-12
