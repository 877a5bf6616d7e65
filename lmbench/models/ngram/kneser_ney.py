"""Interpolated Kneser–Ney with one discount per order (Ney, Essen & Kneser 1994; Chen & Goodman's KN).

Same adjusted counts as modified Kneser–Ney (continuation counts N1+(• g) for lower orders), but a single
discount D = n1 / (n1 + 2 n2) per order (or the `discount` parameter):

    p(w | h) = max(a(h w) − D, 0) / Σ_v a(h v)  +  D N1+(h •) / Σ_v a(h v) · p(w | h')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmbench.models.ngram.absolute_discount import discounted, single_discount
from lmbench.models.ngram.counts import NgramCounts
from lmbench.models.ngram.estimate import Estimate, adjusted_counts, interpolated_estimate


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Kneser–Ney (one discount per order) in back-off form."""
    adjusted = adjusted_counts(counts)
    alpha, gamma, discounts, fallback_orders = [], [], [], []
    for n in range(1, counts.order + 1):
        a = adjusted[n - 1]
        D, used_fallback = single_discount(a, n, params)
        if used_fallback:
            fallback_orders.append(n)
        discounts.append(D)
        al, ga = discounted(counts, n, a, D)
        alpha.append(al)
        gamma.append(ga)
    return interpolated_estimate(counts, alpha, gamma,
                                 {"discounts": discounts, "fallback_discounts_orders": fallback_orders})


