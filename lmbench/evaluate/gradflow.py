"""Gradient flow through time: ‖∂L_t/∂h_{t−k}‖ by lag k and layer, and training-time gradient norms.

The vanishing side: for many windows of the corpus, place the loss at the last step t only and read the
total gradient with respect to every earlier hidden state (the model's `hidden_state_grads`, part of the
`hidden_states` capability); average ‖∂L_t/∂h_{t−k}‖ over the windows for k = 0 … K. For a linear RNN
h_t = x_t W_x + h_{t−1} W_h + b this is ‖g (W_hᵀ)^k‖ with g = ∂L_t/∂h_t.

The exploding side: the global gradient norm of every training step (before clipping), which the
recurrent LMs record in fit_info["grad_norms"], and the share of steps where clipping fired.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel, Model
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID, Vocabulary


def require_hidden_states(model: Model) -> LanguageModel:
    """The model, if it declares `hidden_states` (and so `hidden_state_grads`); otherwise a clear error."""
    if not (isinstance(model, LanguageModel) and model.has("hidden_states")
            and callable(getattr(model, "hidden_state_grads", None))):
        raise LmbenchError(f"model {model.name} has no gradient flow to measure: it lacks the capability "
                           "'hidden_states' (hidden_state_grads), which recurrent models such as rnn/lstm/gru have")
    return model


def sample_windows(corpus: Corpus, length: int, n: int, seed: int = 0) -> np.ndarray:
    """n windows (n, length) of the model's input stream `<s> w… <s> w…` whose last token is a word."""
    bounded = corpus.bounded()
    stream = bounded[bounded != EOS_ID]
    if stream.size < length + 1:
        raise LmbenchError(f"corpus {corpus.name!r} has {stream.size} tokens, fewer than a window of {length + 1}")
    candidates = np.flatnonzero(stream[length:] != BOS_ID)  # window start s: target stream[s + length] is a word
    if candidates.size == 0:
        raise LmbenchError(f"corpus {corpus.name!r} has no window of {length + 1} tokens ending in a word")
    rng = np.random.default_rng(seed)
    starts = rng.choice(candidates, size=min(n, candidates.size), replace=False)
    return stream[starts[:, None] + np.arange(length + 1)]


def unigram_windows(vocab: Vocabulary, length: int, n: int, seed: int = 0) -> Corpus:
    """A corpus of n sentences of `length` words drawn from the vocabulary's training counts (no corpus needed)."""
    counts = vocab.counts.astype(np.float64).copy()
    counts[[BOS_ID, EOS_ID]] = 0.0
    if counts.sum() <= 0:
        raise LmbenchError("the vocabulary has no word counts to sample windows from; pass --corpus")
    ids = np.random.default_rng(seed).choice(counts.size, size=(n, length), p=counts / counts.sum())
    return Corpus.from_ids(list(ids), vocab, name="unigram samples of the vocabulary")


def lag_profile(model: Model, corpus: Corpus, max_lag: int = 100, positions: int = 64, seed: int = 0
                ) -> dict[str, Any]:
    """Mean ‖∂L_t/∂h_{t−k}‖ for k = 0…max_lag, per layer, over `positions` windows of `corpus`."""
    lm = require_hidden_states(model)
    if max_lag < 0:
        raise LmbenchError(f"--max-lag must be ≥ 0, got {max_lag}")
    if positions < 1:
        raise LmbenchError(f"--positions must be ≥ 1, got {positions}")
    windows = sample_windows(corpus, max_lag + 1, positions, seed)
    sums: list[np.ndarray] | None = None
    for w in windows:
        # hidden_state_grads prepends <s>: inputs <s> + w[:t], the loss predicts w[t], rows j = 0 … t.
        t = max_lag + 1
        grads = lm.hidden_state_grads(w, t)
        norms = [np.linalg.norm(np.asarray(g, dtype=np.float64), axis=1)[::-1] for g in grads]  # index = lag
        sums = norms if sums is None else [s + n for s, n in zip(sums, norms)]
    assert sums is not None
    layers = [(s / len(windows))[: max_lag + 1] for s in sums]
    return {"model": lm.name, "max_lag": max_lag, "positions": len(windows),
            "layers": [layer.tolist() for layer in layers]}


def training_grad_norms(model: Model) -> dict[str, Any] | None:
    """Summary of the per-step global gradient norms recorded while training (None if none recorded)."""
    norms = model.fit_info.get("grad_norms")
    if not norms:
        return None
    g = np.asarray(norms, dtype=np.float64)
    clip = float(model.params.get("clip", 0) or 0)
    finite = g[np.isfinite(g)]
    return {
        "steps": int(g.size),
        "clip": clip,
        "clipped_steps": int((g > clip).sum()) if clip > 0 else 0,
        "clipped_fraction": float((g > clip).mean()) if clip > 0 else 0.0,
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "median": float(np.median(finite)) if finite.size else float("nan"),
        "max": float(finite.max()) if finite.size else float("nan"),
        "non_finite_steps": int((~np.isfinite(g)).sum()),
        "per_step": g.tolist(),
    }


def fresh_copy(model: Model, seed: int | None = None) -> LanguageModel:
    """The same architecture and vocabulary, freshly initialised (untrained): for the profile at init."""
    lm = require_hidden_states(model)
    if not callable(getattr(lm, "build", None)):
        raise LmbenchError(f"model {lm.name} cannot be rebuilt untrained (it has no build(vocab_size))")
    params = dict(lm.params)
    if seed is not None and "seed" in params:
        params["seed"] = seed
    fresh = type(lm)(**params)
    fresh.vocab, fresh.tokenizer = lm.vocab, lm.tokenizer
    fresh.rng = np.random.default_rng(params.get("seed", 0))
    fresh.build(len(lm.require_fitted()))
    return fresh
