"""What every smoothing method produces, and the interpolation recursion several of them share.

A method turns the count tables into back-off form, one array per order over the table's n-gram types:

    logp[n][g]   ln p(w | h) for the n-gram g = h w (interpolated or backed-off, as the method defines)
    logbo[n][g]  ln of the back-off weight of g used as a context, i.e. p(w | g) = bo(g) p(w | g minus its
                 first word) for every w that does not follow g in the table (0 when g is never a context)

which is exactly what an ARPA file stores, and what `BackoffTables` scores with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError, warn_once
from lmbench.models.ngram.counts import NgramCounts, counts_of_counts
from lmbench.text.vocab import BOS_ID

KENLM_FALLBACK = (0.5, 1.0, 1.5)  # lmplz --discount_fallback: D1, D2, D3+ when the estimates are unusable


@dataclass
class Estimate:
    """Per-order natural-log probabilities and back-off weights over the count tables' n-gram types."""

    logp: list[np.ndarray]
    logbo: list[np.ndarray]
    missing_logbo: float = 0.0  # back-off of a context absent from the tables (0 for every normalised method)
    info: dict[str, Any] = field(default_factory=dict)


def safe_log(x: np.ndarray) -> np.ndarray:
    """Natural log with log 0 = −inf and no warning."""
    with np.errstate(divide="ignore"):
        return np.log(x)


def outcome_mask(V: int) -> np.ndarray:
    """True for every id a model can predict (all but `<s>`)."""
    mask = np.ones(V, dtype=bool)
    mask[BOS_ID] = False
    return mask


def interpolate(counts: NgramCounts, alpha: list[np.ndarray], gamma: list[np.ndarray]) -> list[np.ndarray]:
    """p_n(w|h) = alpha_n(h w) + gamma_n(h) p_{n-1}(w|h'), down to the uniform distribution over outcomes.

    alpha[n-1] is the discounted mass of each n-gram type of order n; gamma[n-1] the mass each context
    (a type of the order n-1 table; for n = 1 the single empty context) leaves to the lower order.
    Returns the probabilities (not logs) per order; above the unigrams they are computed in place of the
    (float64) alpha arrays, block by block, so no order-sized temporary is made.
    """
    V = counts.V
    outcomes = outcome_mask(V)
    p = alpha[0] + gamma[0][0] * outcomes / outcomes.sum()
    p[BOS_ID] = 0.0
    probs = [p]
    for n in range(2, counts.order + 1):
        t = counts.table(n)
        p = np.asarray(alpha[n - 1], dtype=np.float64)
        for a, b in t.blocks(V):
            p[a:b] += gamma[n - 1][t.prefix(V, a, b)] * probs[-1][t.suffix[a:b]]
        probs.append(p)
    return probs


def interpolated_estimate(counts: NgramCounts, alpha: list[np.ndarray], gamma: list[np.ndarray],
                          info: dict[str, Any] | None = None) -> Estimate:
    """Back-off form of an interpolated model: the back-off weight of a context is its gamma.

    Consumes `alpha` (see interpolate); the log-probabilities are taken in place of the probabilities.
    """
    probs = interpolate(counts, alpha, gamma)
    logbo = []
    for n in range(1, counts.order + 1):
        if n == counts.order:
            logbo.append(np.zeros(len(counts.table(n))))  # never written: takes no memory until read
            continue
        g = gamma[n]  # one entry per type of order n, as a context of order n+1
        # ln gamma where g has children, else ln 1 = 0 (exactly +0.0): one array, logged in place.
        bo = np.where(counts.context_types(n + 1) > 0, g, 1.0)
        with np.errstate(divide="ignore"):
            logbo.append(np.log(bo, out=bo))
    with np.errstate(divide="ignore"):
        logp = [np.log(p, out=p) for p in probs]
    return Estimate(logp, logbo, info=info or {})


def kn_discounts(adjusted: np.ndarray, n: int, fallback: bool | None) -> tuple[np.ndarray, str | None]:
    """Chen & Goodman's D1, D2, D3+ from counts-of-counts (KenLM's checks): ([0, D1, D2, D3+], None), or
    KenLM's fallback and the reason the estimate is unusable — unless `fallback` is False (KenLM's strict
    lmplz), which raises instead.

    Y = n1 / (n1 + 2 n2),  D_j = j − (j+1) Y n_{j+1} / n_j   for j = 1, 2, 3, each required in [0, j].
    KenLM computes them in single precision; so do we, to print the same digits.
    """
    t = counts_of_counts(adjusted, 4)
    problem = None
    if (t[1:4] == 0).any():
        j = int(np.flatnonzero(t[1:4] == 0)[0]) + 1
        problem = f"no {n}-gram has adjusted count {j}, so D1, D2, D3+ cannot all be estimated"
    else:
        f32 = np.float32
        y = f32(t[1]) / (f32(t[1]) + f32(2.0) * f32(t[2]))
        D = np.zeros(4)
        for j in (1, 2, 3):
            D[j] = float(f32(j) - f32(j + 1) * y * f32(t[j + 1]) / f32(t[j]))
            if not 0.0 <= D[j] <= j:
                problem = f"the {n}-gram discount for count {j} is {D[j]:.4g}, outside [0, {j}]"
                break
    if problem is None:
        return D, None
    if fallback is False:
        raise LmbenchError(
            f"Kneser–Ney discounts cannot be estimated: {problem} (counts-of-counts n1..n4 = "
            f"{', '.join(map(str, t[1:5].tolist()))}); the training data is too small or artificial. "
            f"Drop -p discount_fallback=false (or pass true) to use KenLM's fallback discounts "
            f"D1={KENLM_FALLBACK[0]}, D2={KENLM_FALLBACK[1]}, D3+={KENLM_FALLBACK[2]}"
        )
    return np.array([0.0, *KENLM_FALLBACK]), problem


def report_fallback(reasons: dict[int, str], fallback: bool | None, discounts: str) -> dict[str, Any]:
    """fit_info entries for the orders whose discounts fell back; with the default (`discount_fallback` not
    given) also one warning line on stderr, once per process."""
    if not reasons:
        return {"fallback_discounts_orders": []}
    orders = sorted(reasons)
    if fallback is None:
        warn_once("discount_fallback", f"n-gram discounts cannot be estimated for order(s) "
                  f"{', '.join(map(str, orders))} ({reasons[orders[0]]}); using KenLM's fallback {discounts} "
                  "(-p discount_fallback=false to fail instead, as KenLM's lmplz does)")
    return {"fallback_discounts_orders": orders,
            "discount_fallback": {"orders": orders, "discounts": discounts,
                                  "reasons": {str(n): r for n, r in reasons.items()}}}


def adjusted_counts(counts: NgramCounts) -> list[np.ndarray]:
    """Kneser–Ney counts: raw counts at the top order and for n-grams that begin with `<s>` (nothing can
    precede `<s>`), N1+(• g) — the number of different words seen before g — for every other lower-order g."""
    adjusted = []
    for n in range(1, counts.order + 1):
        t = counts.table(n)
        if n == counts.order:
            adjusted.append(t.count)  # the table's own array (read, never written)
        else:
            adjusted.append(np.where(t.bos, t.count, counts.left_extensions(n)))
    return adjusted


def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b elementwise, 0 where b is 0 (a context never seen leaves nothing to divide)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.divide(a, b, out=np.zeros(a.shape), where=b != 0)


def is_full_history(counts: NgramCounts, m: int) -> np.ndarray:
    """For each type of the order-m table: is it a whole history of the order-N model?

    A history is the last N−1 words, or fewer when it reaches back to `<s>`; so an m-gram is a complete
    history when m = N−1 or when it begins with `<s>`. Lower-order m-grams are only reached by backing off.
    """
    t = counts.table(m)
    return np.ones(len(t), dtype=bool) if m == counts.order - 1 else t.bos.copy()


def is_full_event(counts: NgramCounts, n: int) -> np.ndarray:
    """For each type of the order-n table: is it (complete history, word)? (top order, or begins with `<s>`)."""
    t = counts.table(n)
    return np.ones(len(t), dtype=bool) if n == counts.order else t.bos.copy()
