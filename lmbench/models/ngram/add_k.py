"""Add-k smoothing: Laplace (k = 1) and Lidstone (any k > 0).

    p(w | h) = (c(h w) + k) / (c(h) + k |V'|)

where |V'| counts every outcome (the whole vocabulary but `<s>`); an unseen history gets the uniform
1/|V'|. In back-off form a complete history h backs off with weight k|V'| / (c(h) + k|V'|) to the
uniform distribution, which the lower orders hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lmbench.models.ngram.counts import NgramCounts
from lmbench.models.ngram.estimate import Estimate, is_full_event, is_full_history, outcome_mask


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Add-k in back-off form."""
    k = float(params.get("k", 1.0))
    V_out = int(outcome_mask(counts.V).sum())
    uniform = -np.log(V_out)
    logp, logbo = [], []
    for n in range(1, counts.order + 1):
        t = counts.table(n)
        total = counts.context_totals(n)
        smoothed = np.log(t.count + k) - np.log(total + k * V_out)[t.prefix(counts.V)]
        logp.append(np.where(is_full_event(counts, n), smoothed, uniform))
        if n < counts.order:
            back = np.log(k * V_out) - np.log(counts.context_totals(n + 1) + k * V_out)
            logbo.append(np.where(is_full_history(counts, n), back, 0.0))
        else:
            logbo.append(np.zeros(len(t)))
    logp[0][~outcome_mask(counts.V)] = -np.inf
    return Estimate(logp, logbo, info={"k": k})
