"""Greedy and beam search over an abstract step function, batched over sentences and beams.

A step function maps (tokens (N,), state) → (log-probabilities (N, V), new state), where `state` is a tuple
of arrays whose first axis is the N rows. Row r always belongs to the same source sentence (beam rows of
sentence b are b·K … b·K+K−1), so whatever the step function holds per sentence (e.g. encoder states for
attention) never needs reordering; only `state` is gathered when beams are re-ranked.

Scores are sums of natural-log probabilities of the emitted tokens, `</s>` included. Beam search ranks the
finished hypotheses by score / length^alpha (alpha = 0: raw score; 1: mean log-probability per token).
The greedy hypothesis is always among the candidates, so beam search never returns a hypothesis that
scores lower (by the same criterion) than greedy decoding does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lmbench.models.base import Hypotheses

State = tuple[np.ndarray, ...]
StepFn = Callable[[np.ndarray, State], tuple[np.ndarray, State]]


def greedy_search(step: StepFn, state: State, batch: int, bos: int, eos: int, max_len: int) -> Hypotheses:
    """Pick the most probable token at every step until every sentence has emitted `</s>` or max_len."""
    tokens = np.full(batch, bos, dtype=np.int64)
    scores = np.zeros(batch)
    lengths = np.zeros(batch, dtype=np.int64)
    done = np.zeros(batch, dtype=bool)
    out = []
    for _ in range(max_len):
        lp, state = step(tokens, state)
        tokens = lp.argmax(axis=1)
        best = lp[np.arange(batch), tokens]
        scores += np.where(done, 0.0, best)
        lengths += ~done
        out.append(np.where(done, eos, tokens))
        done |= tokens == eos
        if done.all():
            break
    seqs = np.stack(out, axis=1) if out else np.zeros((batch, 0), dtype=np.int64)
    return Hypotheses([_until_eos(s, eos) for s in seqs], scores, lengths)


def _until_eos(seq: np.ndarray, eos: int) -> np.ndarray:
    stop = np.flatnonzero(seq == eos)
    return seq[: stop[0]] if stop.size else seq


def beam_search(step: StepFn, state: State, batch: int, beam: int, bos: int, eos: int, max_len: int,
                alpha: float = 0.0, greedy: Hypotheses | None = None) -> Hypotheses:
    """Keep the `beam` best prefixes per sentence; return the best finished one by score / length^alpha.

    `state` holds one row per sentence; it is repeated for the beams here. `greedy` (computed if not given)
    joins the candidates so the result never scores below greedy decoding.
    """
    if greedy is None:
        greedy = greedy_search(step, state, batch, bos, eos, max_len)
    K = beam
    state = tuple(np.repeat(s, K, axis=0) for s in state)
    tokens = np.full(batch * K, bos, dtype=np.int64)
    scores = np.full((batch, K), -np.inf)
    scores[:, 0] = 0.0  # the first expansion starts from one prefix, not K copies of it
    lengths = np.zeros((batch, K), dtype=np.int64)
    done = np.zeros((batch, K), dtype=bool)
    history: list[tuple[np.ndarray, np.ndarray]] = []  # (backpointer, token) per step, each (B, K)
    for _ in range(max_len):
        lp, state = step(tokens, state)
        V = lp.shape[1]
        lp = lp.reshape(batch, K, V).astype(np.float64)
        # A finished hypothesis only "emits" </s> again, at no cost: it keeps its score and its place.
        lp = np.where(done[:, :, None], -np.inf, lp)
        lp[..., eos] = np.where(done, 0.0, lp[..., eos])
        cand = (scores[:, :, None] + lp).reshape(batch, K * V)
        top = np.argpartition(-cand, K - 1, axis=1)[:, :K] if K < K * V else np.tile(np.arange(K * V), (batch, 1))
        order = np.argsort(-np.take_along_axis(cand, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        back, tok = top // V, top % V
        scores = np.take_along_axis(cand, top, axis=1)
        prev_done = np.take_along_axis(done, back, axis=1)
        lengths = np.take_along_axis(lengths, back, axis=1) + ~prev_done
        done = prev_done | (tok == eos)
        history.append((back, tok))
        rows = (np.arange(batch)[:, None] * K + back).reshape(-1)
        state = tuple(s[rows] for s in state)
        tokens = tok.reshape(-1)
        if done.all():
            break
    # Follow the backpointers from the final beams to recover each hypothesis.
    T = len(history)
    seqs = np.empty((batch, K, T), dtype=np.int64)
    idx = np.tile(np.arange(K), (batch, 1))
    for t in range(T - 1, -1, -1):
        back, tok = history[t]
        seqs[:, :, t] = np.take_along_axis(tok, idx, axis=1)
        idx = np.take_along_axis(back, idx, axis=1)
    norm = scores / np.maximum(lengths, 1) ** alpha
    best = norm.argmax(axis=1)
    rows = np.arange(batch)
    result = Hypotheses([_until_eos(seqs[b, best[b]], eos) for b in range(batch)], scores[rows, best],
                        lengths[rows, best])
    use_greedy = greedy.normalized(alpha) > result.normalized(alpha)
    for b in np.flatnonzero(use_greedy):
        result.tokens[b] = greedy.tokens[b]
    result.scores = np.where(use_greedy, greedy.scores, result.scores)
    result.lengths = np.where(use_greedy, greedy.lengths, result.lengths)
    return result
