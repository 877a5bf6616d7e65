"""Label-smoothed cross-entropy for the translators' decoder output (training objective only).

With smoothing ε over a vocabulary of V tokens the training target of a position is the distribution
q = (1 − ε)·onehot(y) + ε/V (uniform share on every token, the reference included), and the objective per
position is the cross-entropy against it:

    ℓ = −(1 − ε)·log p(y) − (ε/V)·Σ_v log p(v),        ∂ℓ/∂z = softmax(z) − q

ε = 0 is the plain cross-entropy of `lmbench.models.neural.layers.softmax_cross_entropy`. The smoothed ℓ is
only what the gradient descends; every reported likelihood (training loss in the history, validation loss,
perplexity, scores) is the true log p(y), which this function returns beside it.
"""

from __future__ import annotations

import numpy as np


def smoothed_cross_entropy(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None,
                           smoothing: float = 0.0, inplace: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean label-smoothed cross-entropy of softmax(logits) (N, V) against integer targets (N,).

    Returns (objective, dlogits, logp): the objective is the mean smoothed ℓ over the rows where `mask` is
    true (all rows without a mask); dlogits its gradient (zero on masked-out rows); logp = the true
    log p_i(y_i) of every row (float64). With inplace=True the logits array is overwritten by dlogits.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    n, V = logits.shape
    rows = np.arange(n)
    p = logits if inplace else logits.copy()
    p -= p.max(axis=1, keepdims=True)
    shifted_target = p[rows, targets].astype(np.float64)
    shifted_mean = p.mean(axis=1, dtype=np.float64)  # (1/V) Σ_v (z_v − max z)
    np.exp(p, out=p)
    sumexp = p.sum(axis=1, dtype=np.float64)
    log_z = np.log(sumexp)
    logp = shifted_target - log_z
    per_row = -(1.0 - smoothing) * logp - smoothing * (shifted_mean - log_z)
    if mask is None:
        count = n
        objective = float(per_row.mean()) if n else 0.0
    else:
        count = int(np.count_nonzero(mask))
        objective = float(per_row[mask].sum() / max(count, 1))
    scale = 1.0 / max(count, 1)
    p *= (scale / sumexp).astype(p.dtype)[:, None]
    if smoothing:
        p -= p.dtype.type(smoothing * scale / V)
    p[rows, targets] -= p.dtype.type((1.0 - smoothing) * scale)
    if mask is not None:
        p[~mask] = 0.0
    return objective, p, logp
