"""Layer normalisation over the last axis: y = γ · (x − μ) / √(σ² + ε) + β (Ba et al., 2016)."""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = 1e-5  # torch.nn.LayerNorm's default


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = EPS
                      ) -> tuple[np.ndarray, Any]:
    """Normalise each row of x (..., D) to zero mean and unit (biased) variance, then scale and shift."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat = xc * inv
    return xhat * gamma + beta, (xhat, inv, gamma)


def layernorm_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dγ, dβ); dx = (1/σ)(g − mean(g) − x̂·mean(g·x̂)) with g = dout·γ, the standard compact form."""
    xhat, inv, gamma = cache
    D = xhat.shape[-1]
    dgamma = (dout * xhat).reshape(-1, D).sum(axis=0)
    dbeta = dout.reshape(-1, D).sum(axis=0)
    g = dout * gamma
    dx = inv * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta
