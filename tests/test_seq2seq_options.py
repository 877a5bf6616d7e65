"""Seq2seq training options: label smoothing, keeping the epoch of the best validation BLEU/chrF, lr schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from lmbench.errors import LmbenchError
from lmbench.models.neural.layers import softmax_cross_entropy
from lmbench.models.registry import create_model
from lmbench.models.seq2seq.loss import smoothed_cross_entropy
from lmbench.models.seq2seq.model import Seq2Seq
from lmbench.models.seq2seq.pairs import gather_sources, gather_targets, make_batches
from lmbench.text.parallel import load_pairs

SPEC = "synthetic:ko-en?train=300&valid=30&test=30&seed=5"


@pytest.fixture(scope="module")
def data():
    return load_pairs(SPEC)


# --- the smoothed loss -------------------------------------------------------------------------------------
def test_smoothed_loss_by_hand():
    # Row 0: p = (1/6, 2/6, 3/6), reference 2. Row 1 is masked out and must not count.
    logits = np.log(np.array([[1.0, 2.0, 3.0], [5.0, 1.0, 1.0]]))
    eps = 0.1
    objective, grad, logp = smoothed_cross_entropy(logits, np.array([2, 0]), np.array([True, False]), eps)
    # −(1−ε)·log(1/2) − (ε/3)·(log 1/6 + log 2/6 + log 3/6) = 0.9·ln 2 + (0.1/3)·ln 36
    assert objective == pytest.approx(0.9 * math.log(2) + 0.1 / 3 * math.log(36), rel=1e-12)
    assert logp[0] == pytest.approx(math.log(0.5), rel=1e-12)  # the true log-likelihood, unsmoothed
    assert logp[1] == pytest.approx(math.log(5 / 7), rel=1e-12)
    # softmax − q with q = 0.9·onehot(2) + 0.1/3 everywhere; one counted row, so no scaling.
    q = np.array([0.1 / 3, 0.1 / 3, 0.9 + 0.1 / 3])
    np.testing.assert_allclose(grad[0], np.array([1, 2, 3]) / 6 - q, rtol=1e-12)
    np.testing.assert_array_equal(grad[1], 0.0)


def test_no_smoothing_is_the_plain_cross_entropy():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(7, 5)), rng.integers(0, 5, 7)
    mask = np.array([1, 1, 0, 1, 1, 0, 1], dtype=bool)
    a = smoothed_cross_entropy(logits, targets, mask, 0.0)
    b = softmax_cross_entropy(logits, targets, mask)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.4])
def test_smoothed_loss_gradient_matches_finite_differences(eps):
    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    mask = np.array([1, 0, 1, 1, 1, 0], dtype=bool)
    _, grad, _ = smoothed_cross_entropy(logits, targets, mask, eps)
    numeric = numeric_grad(lambda: smoothed_cross_entropy(logits, targets, mask, eps)[0], logits, 1e-6,
                           np.arange(logits.size))
    assert rel_error(grad.reshape(-1), numeric) < 1e-7


def test_smoothing_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="label smoothing"):
        smoothed_cross_entropy(np.zeros((1, 3)), np.array([0]), None, 1.0)


# --- in the model ----------------------------------------------------------------------------------------
def _batch(data):
    idx = make_batches(data.train.src, 3)[4][:3]
    return (gather_sources(data.train.src, idx), *gather_targets(data.train.tgt, idx))


def _model(data, **params):
    model = Seq2Seq(hidden=5, src_emb=4, tgt_emb=3, attn_size=4, dropout=0.0, dtype="float64", seed=2, **params)
    model.build(len(data.src_vocab), len(data.tgt_vocab))
    rng = np.random.default_rng(0)
    for v in model.weights.values():
        v[...] = rng.normal(0.0, 0.5, v.shape)
    return model


def test_smoothed_model_gradients_match_finite_differences(data):
    model = _model(data, label_smoothing=0.2)
    batch = _batch(data)
    _, grads = model.loss_and_grads(*batch, train=False)
    rng = np.random.default_rng(3)
    for name in ("out.W", "out.b", "tgt_emb", "dec0.W_h", "enc0b.W_x", "attn.v", "attn.W_c"):
        w = model.weights[name]
        g = grads[name].reshape(-1)
        candidates = np.flatnonzero(g) if name.endswith("emb") else np.arange(g.size)
        picks = rng.choice(candidates, min(candidates.size, 10), replace=False)
        numeric = numeric_grad(lambda: model.loss_and_grads(*batch, train=False)[0], w, 1e-4, picks)
        assert rel_error(g[picks], numeric) < 1e-6, name


def test_training_reports_the_true_cross_entropy(data):
    smoothed, plain = _model(data, label_smoothing=0.3), _model(data)
    batch = _batch(data)
    reported, tokens, _ = smoothed.train_batch((data.train, make_batches(data.train.src, 3)[4][:3]))
    true_loss, _ = plain.loss_and_grads(*batch, train=False)
    objective, _ = smoothed.loss_and_grads(*batch, train=False)
    assert reported == pytest.approx(true_loss, rel=1e-12)
    assert objective != pytest.approx(true_loss, rel=1e-3)  # what was descended is another number
    assert tokens == int(batch[3].sum())


def test_new_parameters_are_validated_and_stored(tmp_path, data):
    with pytest.raises(LmbenchError, match="label_smoothing"):
        create_model("seq2seq", {"label_smoothing": "0.7"})
    model = create_model("seq2seq", {"label_smoothing": "0.1", "hidden": "8", "src_emb": "4",
                                     "tgt_emb": "4", "epochs": "1"})
    model.fit(data)
    model.save(tmp_path / "m")
    from lmbench.models.registry import load_model

    loaded = load_model(tmp_path / "m")
    assert loaded.params["label_smoothing"] == 0.1


def test_linear_schedule_anneals_to_lr_final(data):
    model = Seq2Seq(hidden=8, src_emb=4, tgt_emb=4, epochs=2, batch=32, lr=0.01, lr_decay=1.0,
                    schedule="linear", lr_final=0.2, seed=1)
    model.fit(data)
    total = model.fit_info["steps"]
    # The last step (0-based total−1) of a linear decay from lr to 0.2·lr over `total` steps, by hand.
    expected = 0.01 * (0.2 + 0.8 * (1.0 - (total - 1) / total))
    assert model.fit_info["lr"] == pytest.approx(expected, rel=1e-12)
    assert Seq2Seq().params["schedule"] == "constant" and Seq2Seq().params["warmup"] == 0  # off by default
