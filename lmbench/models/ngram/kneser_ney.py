"""Interpolated Kneser–Ney with one discount per order (Ney, Essen & Kneser 1994; Chen & Goodman's KN).

Same adjusted counts as modified Kneser–Ney (continuation counts N1+(• g) for lower orders), but a single
discount D = n1 / (n1 + 2 n2) per order (or the `discount` parameter):

    p(w | h) = max(a(h w) − D, 0) / Σ_v a(h v)  +  D N1+(h •) / Σ_v a(h v) · p(w | h')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmbench.models.ngram.absolute_discount import discount_each_order
from lmbench.models.ngram.counts import NgramCounts
from lmbench.models.ngram.estimate import Estimate, adjusted_counts


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Kneser–Ney is absolute discounting of the adjusted counts (continuation counts below the top order)."""
    return discount_each_order(counts, adjusted_counts(counts), params)
