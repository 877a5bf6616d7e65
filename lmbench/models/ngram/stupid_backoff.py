"""Stupid back-off (Brants et al. 2007): relative frequencies, and a fixed factor α for every back-off.

    S(w | h) = c(h w) / c(h)     if c(h w) > 0
             = α S(w | h')       otherwise (also when h was never seen),    S(w) = c(w) / N

The scores do not sum to one: the model is marked `normalized = False` and the harness flags its
"perplexity" as not comparable. A word never seen in training scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lmbench.models.ngram.counts import NgramCounts
from lmbench.models.ngram.estimate import Estimate, ratio, safe_log


def estimate(counts: NgramCounts, params: Mapping[str, Any]) -> Estimate:
    """Stupid back-off in back-off form: every back-off weight, seen context or not, is ln α."""
    log_alpha = math.log(float(params.get("alpha", 0.4)))
    logp, logbo = [], []
    for n in range(1, counts.order + 1):
        t = counts.table(n)
        total = counts.context_totals(n)
        logp.append(safe_log(ratio(t.count, total[t.prefix(counts.V)])))
        logbo.append(np.full(len(t), log_alpha if n < counts.order else 0.0))
    return Estimate(logp, logbo, missing_logbo=log_alpha, info={"alpha": math.exp(log_alpha)})
