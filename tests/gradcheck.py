"""Centred finite differences, shared by every gradient check."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def numeric_grad(loss: Callable[[], float], x: np.ndarray, eps: float = 1e-6,
                 indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """(loss(x + ε e_i) − loss(x − ε e_i)) / 2ε for every entry of x (or the given flat indices); x is restored."""
    picks = np.arange(x.size) if indices is None else np.asarray(indices)
    out = np.empty(picks.size)
    for j, i in enumerate(picks):
        old = x.flat[i]
        x.flat[i] = old + eps
        up = loss()
        x.flat[i] = old - eps
        down = loss()
        x.flat[i] = old
        out[j] = (up - down) / (2 * eps)
    return out.reshape(x.shape) if indices is None else out


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a − n| / max(|a| + |n|): the largest error relative to the size of the gradient there."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    return float(np.max(np.abs(a - n)) / max(1e-300, np.max(np.abs(a) + np.abs(n))))
