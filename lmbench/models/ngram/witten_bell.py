"""Interpolated Witten–Bell smoothing (as NLTK's WittenBellInterpolated, one level further down).

    p(w | h) = (c(h w) + N1+(h •) p(w | h')) / (c(h) + N1+(h •))

over raw counts; an unseen history uses p(w | h') alone. Below the unigrams we interpolate the same way
with the uniform distribution over outcomes, so a word never seen in training keeps a small probability
(NLTK stops at the maximum-likelihood unigram, which gives such words probability 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmbench.models.ngram.counts import NgramCounts
from lmbench.models.ngram.estimate import Estimate, interpolated_estimate, ratio


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Witten–Bell in back-off form: gamma(h) = N1+(h •) / (c(h) + N1+(h •))."""
    alpha, gamma = [], []
    for n in range(1, counts.order + 1):
        t = counts.table(n)
        total = counts.context_totals(n)
        types = counts.context_types(n, t.count > 0)
        alpha.append(ratio(t.count, (total + types)[t.prefix(counts.V)]))
        gamma.append(ratio(types, total + types))
    return interpolated_estimate(counts, alpha, gamma)
