"""Interpolated absolute discounting (Ney, Essen & Kneser 1994) over raw counts.

    p(w | h) = max(c(h w) − D, 0) / c(h)  +  D N1+(h •) / c(h) · p(w | h')

with one discount per order, D = n1 / (n1 + 2 n2) from the counts-of-counts (or the `discount`
parameter), and the uniform distribution below the unigrams. An unseen history uses p(w | h') alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.ngram.counts import NgramCounts, counts_of_counts
from lmbench.models.ngram.estimate import Estimate, interpolated_estimate, ratio, report_fallback

FALLBACK_DISCOUNT = 0.5


def single_discount(count: np.ndarray, n: int, params: Mapping[str, Any]) -> tuple[float, str | None]:
    """The order's discount: the `discount` parameter, else n1 / (n1 + 2 n2), which must lie in (0, 1];
    when it cannot be estimated, the fallback and the reason (an error with discount_fallback=false)."""
    if params.get("discount") is not None:
        return float(params["discount"]), None
    t = counts_of_counts(count, 2)
    if t[1] > 0:  # then D lies in (0, 1]
        return float(t[1] / (t[1] + 2.0 * t[2])), None
    problem = f"no {n}-gram was seen exactly once (n1=0, n2={t[2]}), so D would be 0"
    if params.get("discount_fallback") is False:
        raise LmbenchError(
            f"the {n}-gram discount D = n1/(n1 + 2 n2) cannot be estimated: {problem}; the training data is too "
            f"small or artificial. Drop -p discount_fallback=false to use D={FALLBACK_DISCOUNT}, or set "
            "-p discount=D with 0 < D ≤ 1"
        )
    return FALLBACK_DISCOUNT, problem


def discounted(counts: NgramCounts, n: int, count: np.ndarray, D: float) -> tuple[np.ndarray, np.ndarray]:
    """alpha = max(c − D, 0) / c(h) per n-gram, gamma = D N1+(h •) / c(h) per context."""
    prefix = counts.table(n).prefix(counts.V)
    total = counts.context_totals(n, count)
    alpha = ratio(np.maximum(count - D, 0.0), total[prefix])
    gamma = ratio(D * counts.context_types(n, count > 0), total)
    return alpha, gamma


def discount_each_order(counts: NgramCounts, per_order: Sequence[np.ndarray], params: Mapping[str, Any]) -> Estimate:
    """Interpolated absolute discounting of the given counts of each order (one discount per order)."""
    alpha, gamma, discounts, reasons = [], [], [], {}
    for n, c in enumerate(per_order, start=1):
        D, problem = single_discount(c, n, params)
        if problem is not None:
            reasons[n] = problem
        discounts.append(D)
        al, ga = discounted(counts, n, c, D)
        alpha.append(al)
        gamma.append(ga)
    fallback = report_fallback(reasons, params.get("discount_fallback"), f"D={FALLBACK_DISCOUNT}")
    return interpolated_estimate(counts, alpha, gamma, {"discounts": discounts, **fallback})


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Absolute discounting of the raw counts, in back-off form."""
    return discount_each_order(counts, [counts.table(n).count for n in range(1, counts.order + 1)], params)
