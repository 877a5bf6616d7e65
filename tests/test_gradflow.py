"""Gradient flow through time: the linear-RNN lag profile against its closed form; training norms; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from lmbench.evaluate.gradflow import fresh_copy, lag_profile, sample_windows, training_grad_norms
from lmbench.evaluate.harness import train
from lmbench.text.sources import load_corpus
from lmbench.text.vocab import BOS_ID


@pytest.fixture(scope="module")
def corpora():
    return load_corpus("synthetic:dependency?sentences=60&max_distance=12")


def linear_rnn(corpora, **extra):
    params = {"nonlinearity": "linear", "layers": 1, "emb": 6, "hidden": 5, "dropout": 0.0, "bptt": 8,
              "batch": 4, "epochs": 1, "max_steps": 2, "dtype": "float64", "seed": 3, **extra}
    return train("rnn", corpora, params).model


@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_linear_rnn_profile_equals_the_closed_form(corpora, scale):
    model = linear_rnn(corpora)
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    model.weights["l0.W_h"][...] = scale * Q  # h_t = x W_x + h_{t-1} W_h + b: ‖∂L_t/∂h_{t-k}‖ = scale^k ‖g‖
    K, n = 12, 10
    prof = np.asarray(lag_profile(model, corpora.test, max_lag=K, positions=n, seed=5)["layers"][0])
    # g = ∂L_t/∂h_t computed independently from the output distribution: (p − onehot(target)) W_decᵀ.
    windows = sample_windows(corpora.test, K + 1, n, seed=5)
    # hidden_state_grads reads <s> + w[:-1] and predicts w[-1]; the same forward pass gives p.
    x = np.concatenate([np.full((n, 1), BOS_ID), windows[:, :-1]], axis=1).T
    logits, _, _ = model.forward(x, model.zero_state(n), train=False)
    logits = logits.reshape(x.shape[0], n, -1)[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(n), windows[:, -1]] -= 1.0
    g = p @ model.weights["dec.W"].T
    W_h = model.weights["l0.W_h"]
    expected = [np.mean(np.linalg.norm(g @ np.linalg.matrix_power(W_h.T, k), axis=1)) for k in range(K + 1)]
    assert prof == pytest.approx(expected, rel=1e-9)
    assert prof[1:] / prof[:-1] == pytest.approx(np.full(K, scale), rel=1e-9)


def test_init_profile_and_training_norms(corpora):
    model = linear_rnn(corpora, nonlinearity="tanh", clip=1e-4, max_steps=5)
    norms = training_grad_norms(model)
    assert norms["steps"] == 5 and norms["clipped_fraction"] == 1.0  # every norm exceeds a tiny threshold
    fresh = fresh_copy(model)
    # Seeded: the untrained copy is the same every time, and training moved the weights away from it.
    assert np.array_equal(fresh.weights["l0.W_h"], fresh_copy(model).weights["l0.W_h"])
    assert not np.allclose(fresh.weights["l0.W_h"], model.weights["l0.W_h"])
    a = lag_profile(fresh, corpora.test, 5, 4)["layers"][0]
    b = lag_profile(model, corpora.test, 5, 4)["layers"][0]
    assert a != b
    unclipped = linear_rnn(corpora, clip=0.0, max_steps=3)
    assert training_grad_norms(unclipped)["clipped_steps"] == 0


def test_gradflow_cli_and_missing_capability(tmp_path):
    spec = "synthetic:dependency?sentences=40&max_distance=10"
    assert run_cli("train", "lstm", "--corpus", spec, "--out", tmp_path / "l", "-p", "emb=8", "-p", "hidden=8",
                   "-p", "layers=2", "-p", "bptt=10", "-p", "batch=4", "-p", "max_steps=3").returncode == 0
    res = run_cli("gradflow", tmp_path / "l", "--max-lag", "6", "--positions", "5", "--init", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert len(report["trained"]["layers"]) == 2 and len(report["trained"]["layers"][0]) == 7
    assert report["training"]["steps"] == 3 and "init" in report
    assert run_cli("train", "trigram", "--corpus", spec, "-p", "discount_fallback=true",
                   "--out", tmp_path / "t").returncode == 0
    assert_clean_error(run_cli("gradflow", tmp_path / "t"), "trigram", "hidden_states")
    assert_clean_error(run_cli("gradflow", tmp_path / "l", "--max-lag", "-1"), "--max-lag")
