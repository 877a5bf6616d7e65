"""Good–Turing discounting with Katz back-off (Katz 1987), over raw counts.

Good–Turing re-estimates a count r as r* = (r + 1) n_{r+1} / n_r from the counts-of-counts n_r of the
order. Katz keeps counts above K (= 5) and discounts r ≤ K by

    d_r = (r*/r − (K+1) n_{K+1}/n_1) / (1 − (K+1) n_{K+1}/n_1)

so that the mass taken from seen n-grams equals Good–Turing's estimate for the unseen ones, n_1 / N. Then

    p(w | h) = d_{c(h w)} c(h w) / c(h)      if c(h w) > 0
             = α(h) p(w | h')                 otherwise,
    α(h) = (1 − Σ_{w seen after h} p(w | h)) / (1 − Σ_{w seen after h} p(w | h')).

The unigrams share their left-over mass uniformly over all outcomes. On small data some n_r are 0 or a
d_r leaves (0, 1]; K is then lowered to the largest value that works for that order (K = 0: no discount).
A history after which every outcome was seen (or whose unseen words the lower order cannot reach) keeps
its undiscounted relative frequencies, so each distribution still sums to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lmbench.models.ngram.counts import NgramCounts, counts_of_counts
from lmbench.models.ngram.estimate import Estimate, outcome_mask, ratio, safe_log

K_MAX = 5


def katz_factors(count: np.ndarray, k_max: int = K_MAX) -> tuple[np.ndarray, int]:
    """d_r for r = 0..k_max (d_r = 1 above the K that works) and that K."""
    n = counts_of_counts(count, k_max + 1).astype(np.float64)
    for K in range(k_max, 0, -1):
        if (n[1 : K + 2] == 0).any():
            continue
        R = (K + 1) * n[K + 1] / n[1]
        if R >= 1.0:
            continue
        r = np.arange(1, K + 1, dtype=np.float64)
        r_star = (r + 1) * n[2 : K + 2] / n[1 : K + 1]
        d = (r_star / r - R) / (1.0 - R)
        if ((d > 0) & (d <= 1)).all():
            return np.concatenate([[1.0], d, np.ones(k_max - K)]), K
    return np.ones(k_max + 1), 0


def katz_factor(d: np.ndarray, count: np.ndarray) -> np.ndarray:
    """d_r for each count r (1 above K_MAX: large counts are trusted as they are)."""
    r = np.asarray(count).astype(np.int64)
    return np.where(r <= K_MAX, d[np.minimum(r, K_MAX)], 1.0)


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Katz back-off with Good–Turing discounts, per order."""
    V = counts.V
    outcomes = outcome_mask(V)
    logp, logbo, ks = [], [], []
    # Unigrams: discounted relative frequencies plus the left-over mass spread uniformly.
    c1 = counts.table(1).count.astype(np.float64)
    d, K = katz_factors(c1)
    ks.append(K)
    seen = c1 * katz_factor(d, c1) / c1.sum()
    p_lower = seen + max(1.0 - seen.sum(), 0.0) * outcomes / outcomes.sum()
    p_lower[~outcomes] = 0.0
    logp.append(safe_log(p_lower))
    for n in range(2, counts.order + 1):
        t = counts.table(n)
        prefix = t.prefix(V)
        c = t.count
        d, K = katz_factors(c)
        ks.append(K)
        total = counts.context_totals(n)
        p_disc = ratio(c * katz_factor(d, c), total[prefix])
        p_mle = ratio(c, total[prefix])
        left = 1.0 - np.bincount(prefix, weights=p_disc, minlength=total.size)
        lower_left = 1.0 - np.bincount(prefix, weights=p_lower[t.suffix], minlength=total.size)
        n_unseen = outcomes.sum() - counts.context_types(n)
        # Contexts whose unseen words the lower order cannot reach keep their undiscounted frequencies.
        reachable = (n_unseen > 0) & (lower_left > 1e-12)
        p = np.where(reachable[prefix], p_disc, p_mle)
        alpha = np.where(reachable, ratio(np.maximum(left, 0.0), np.where(reachable, lower_left, 1.0)), 0.0)
        has_children = total > 0
        logbo.append(np.where(has_children, safe_log(alpha), 0.0))
        logp.append(safe_log(p))
        p_lower = p
    logbo.append(np.zeros(len(counts.table(counts.order))))
    return Estimate(logp, logbo, info={"katz_K": ks})
