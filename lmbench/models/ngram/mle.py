"""Maximum likelihood: p(w | h) = c(h w) / c(h), nothing else.

An n-gram never seen in training gets probability 0, and so does every word after a history never seen
(NLTK's MLE does the same): the harness counts these zero-probability events and reports an infinite
perplexity — the sparsity problem that smoothing exists to fix. Histories are cut at `<s>`, so a
sentence's first words use the lower-order counts of n-grams that begin with `<s>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lmbench.models.ngram.counts import NgramCounts
from lmbench.models.ngram.estimate import Estimate, is_full_event, is_full_history, ratio, safe_log


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """MLE in back-off form: every back-off weight of a complete history is 0 (ln −inf)."""
    logp, logbo = [], []
    for n in range(1, counts.order + 1):
        t = counts.table(n)
        total = counts.context_totals(n)
        p = ratio(t.count, total[t.prefix(counts.V)])
        logp.append(np.where(is_full_event(counts, n), safe_log(p), -np.inf))
        logbo.append(np.where(is_full_history(counts, n), -np.inf, 0.0) if n < counts.order else np.zeros(len(t)))
    return Estimate(logp, logbo)
