"""Interpolated modified Kneser–Ney (Chen & Goodman 1998), computed as KenLM's `lmplz` does.

For each order n, with adjusted counts a (raw at the top order and for n-grams starting with `<s>`,
continuation counts N1+(• g) otherwise) and three discounts D1, D2, D3+ from the counts-of-counts:

    p(w | h) = (a(h w) − D(a(h w))) / Σ_v a(h v)  +  γ(h) p(w | h')
    γ(h)     = (D1 N1(h •) + D2 N2(h •) + D3+ N3+(h •)) / Σ_v a(h v)

where N_j(h •) counts the words following h with adjusted count j (3+: at least 3), h' is h without its
first word, and the unigram level interpolates with the uniform distribution over every outcome but `<s>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lmbench.models.ngram.counts import NgramCounts, release_free_memory
from lmbench.models.ngram.estimate import (
    KENLM_FALLBACK,
    Estimate,
    adjusted_counts,
    interpolated_estimate,
    kn_discounts,
    ratio,
    report_fallback,
)


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Modified Kneser–Ney in back-off form (one discount triple per order)."""
    adjusted = adjusted_counts(counts)
    alpha, gamma, discounts, reasons = [], [], [], {}
    fallback = params.get("discount_fallback")
    for n in range(1, counts.order + 1):
        D, problem = kn_discounts(adjusted[n - 1], n, fallback)
        if problem is not None:
            reasons[n] = problem
        discounts.append(D[1:].tolist())
        al, ga = discounted(counts, n, adjusted[n - 1], D)
        alpha.append(al)
        gamma.append(ga)
        release_free_memory()
    del adjusted  # the lower orders' adjusted counts are not needed past here
    used = "D1={}, D2={}, D3+={}".format(*KENLM_FALLBACK)
    return interpolated_estimate(counts, alpha, gamma,
                                 {"discounts": discounts, **report_fallback(reasons, fallback, used)})


def discounted(counts: NgramCounts, n: int, a: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha = (a − D(a)) / Σ_v a(h v) per n-gram of order n, gamma = Σ_w D(a(h w)) / Σ_v a(h v) per context.

    Block by block over the table, so no table-sized temporary is made beside alpha.
    """
    t = counts.table(n)
    total = counts.context_totals(n, a)
    left = counts.per_context(n, lambda i, j: D[np.minimum(a[i:j], 3)])
    alpha = np.empty(len(t))
    for i, j in t.blocks(counts.V):
        c = a[i:j]
        alpha[i:j] = ratio(c - D[np.minimum(c, 3)], total[t.prefix(counts.V, i, j)])
    return alpha, ratio(left, total)
