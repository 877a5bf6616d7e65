"""Attention layers: forward against a torch computation of the same formulas, backward against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from lmbench.errors import LmbenchError
from lmbench.models.seq2seq.attention import Attention

KINDS = ("dot", "general", "additive")


def make(kind: str, seed: int = 0, H: int = 4, A: int = 3) -> tuple[Attention, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    attn = Attention(kind, H, rng, np.float64, attn_size=A)
    for v in attn.weights.values():  # larger weights than the initialisation: sharper, less uniform attention
        v[...] = rng.normal(0.0, 0.7, v.shape)
    Hd = rng.normal(0.0, 1.0, (2, 3, H))  # (B, T, H)
    He = rng.normal(0.0, 1.0, (2, 5, H))  # (B, S, H)
    return attn, Hd, He


@pytest.mark.parametrize("kind", KINDS)
def test_attention_forward_matches_torch(kind):
    torch = pytest.importorskip("torch")
    attn, Hd, He = make(kind)
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    out, weights, _ = attn.forward(Hd, He, mask)
    p = {k: torch.tensor(v) for k, v in attn.weights.items()}
    hd, he = torch.tensor(Hd), torch.tensor(He)
    if kind == "dot":
        s = torch.einsum("bth,bsh->bts", hd, he)
    elif kind == "general":
        s = torch.einsum("bth,bsh->bts", hd, he @ p["W_a"])
    else:
        s = torch.tanh((he @ p["W_1"]).unsqueeze(1) + (hd @ p["W_2"]).unsqueeze(2)) @ p["v"]
    s = s.masked_fill(~torch.tensor(mask).unsqueeze(1), float("-inf"))
    a = torch.softmax(s, dim=-1)
    c = torch.bmm(a, he)
    ref = torch.tanh(torch.cat([c, hd], dim=-1) @ p["W_c"])
    np.testing.assert_allclose(weights, a.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12, atol=1e-14)
    assert np.all(weights[1, :, 3:] == 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_attention_backward_matches_finite_differences(kind):
    attn, Hd, He = make(kind, seed=1)
    G = np.random.default_rng(2).normal(size=(2, 3, 4))  # loss = Σ G ∘ h̃

    def loss() -> float:
        return float((attn.forward(Hd, He)[0] * G).sum())

    _, _, cache = attn.forward(Hd, He)
    dHd, dHe, grads = attn.backward(G, cache)
    arrays = {"Hd": (Hd, dHd), "He": (He, dHe), **{k: (attn.weights[k], grads[k]) for k in attn.weights}}
    assert set(grads) == set(attn.weights)
    for name, (x, analytic) in arrays.items():
        rel = rel_error(analytic, numeric_grad(loss, x))
        assert rel < 1e-6, (name, rel)


def test_no_attention_is_identity_and_unknown_kind_is_rejected():
    attn = Attention("none", 4, np.random.default_rng(0))
    Hd = np.ones((1, 2, 4))
    out, weights, cache = attn.forward(Hd, np.zeros((1, 3, 4)))
    assert out is Hd and weights is None and attn.weights == {}
    assert attn.backward(Hd, cache)[0] is Hd
    with pytest.raises(LmbenchError, match="unknown attention"):
        Attention("multihead", 4, np.random.default_rng(0))
