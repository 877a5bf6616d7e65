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

from lmbench.models.ngram.counts import NgramCounts
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
        a = adjusted[n - 1]
        D, problem = kn_discounts(a, n, fallback)
        if problem is not None:
            reasons[n] = problem
        discounts.append(D[1:].tolist())
        t = counts.table(n)
        total = counts.context_totals(n, a)
        left = counts.per_context(n, lambda i, j, a=a, D=D: D[np.minimum(a[i:j], 3)])
        al = np.empty(len(t))
        for i, j in t.blocks(counts.V):  # block by block: no table-sized temporaries
            c = a[i:j]
            al[i:j] = ratio(c - D[np.minimum(c, 3)], total[t.prefix(counts.V, i, j)])
        alpha.append(al)
        gamma.append(ratio(left, total))
    used = "D1={}, D2={}, D3+={}".format(*KENLM_FALLBACK)
    return interpolated_estimate(counts, alpha, gamma,
                                 {"discounts": discounts, **report_fallback(reasons, fallback, used)})
