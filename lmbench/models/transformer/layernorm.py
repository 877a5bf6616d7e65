"""Layer normalisation over the last axis: y = γ · (x − μ) / √(σ² + ε) + β (Ba et al., 2016).

Both passes run over cache-sized blocks of rows (lmbench.models.neural.parallel): a handful of in-place
operations per block instead of one trip to memory per operation over the whole (N, D) array. Means over
a row are matrix–vector products with a vector of 1/D (BLAS; NumPy's .mean over short rows is slower), and
sums over the rows of a block are products with a vector of ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.models.neural import parallel

EPS = 1e-5  # torch.nn.LayerNorm's default


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = EPS
                      ) -> tuple[np.ndarray, Any]:
    """Normalise each row of x (..., D) to zero mean and unit (biased) variance, then scale and shift.

    The cache keeps x, μ and 1/σ (no full-size x̂: the backward pass rebuilds it block by block).
    """
    D = x.shape[-1]
    f = x.dtype.type
    x2 = np.ascontiguousarray(x).reshape(-1, D)
    out = np.empty_like(x2)
    mu, inv = np.empty((x2.shape[0], 1), dtype=x.dtype), np.empty((x2.shape[0], 1), dtype=x.dtype)
    mean = np.full(D, 1.0 / D, dtype=x.dtype)  # row @ mean = the row's mean

    def rows(r: slice) -> None:
        xb, ob, mb, ib = x2[r], out[r], mu[r], inv[r]
        np.matmul(xb, mean, out=mb[:, 0])  # μ
        xh = xb - mb  # x − μ
        np.multiply(xh, xh, out=ob)
        np.matmul(ob, mean, out=ib[:, 0])
        ib += f(eps)  # σ² + ε
        np.sqrt(ib, out=ib)
        np.divide(f(1.0), ib, out=ib)  # 1/√(σ² + ε)
        xh *= ib  # x̂ = (x − μ)/√(σ² + ε)
        np.multiply(xh, gamma, out=ob)
        ob += beta  # γ x̂ + β

    parallel.run_blocks(rows, parallel.blocks(x2.shape[0], D))
    return out.reshape(x.shape), (x2, mu, inv, gamma, x.shape)


def layernorm_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dγ, dβ); dx = (1/σ)(g − mean(g) − x̂·mean(g·x̂)) with g = dout·γ, the standard compact form."""
    x2, mu, inv, gamma, shape = cache
    D = x2.shape[-1]
    d2 = np.ascontiguousarray(dout).reshape(-1, D)
    dx = np.empty_like(x2)
    cuts = parallel.blocks(x2.shape[0], D)
    dgamma, dbeta = np.empty((len(cuts), D), dtype=x2.dtype), np.empty((len(cuts), D), dtype=x2.dtype)
    mean = np.full(D, 1.0 / D, dtype=x2.dtype)  # row @ mean = the row's mean
    ones = np.ones(cuts[0].stop if cuts else 0, dtype=x2.dtype)  # ones @ block = its column sums

    def rows(k: int) -> None:
        r = cuts[k]
        db, gb, n = d2[r], dx[r], r.stop - r.start
        xh = x2[r] - mu[r]
        xh *= inv[r]  # x̂ again
        np.matmul(ones[:n], db, out=dbeta[k])  # this block's share of dβ = Σ dout
        tb = db * xh
        np.matmul(ones[:n], tb, out=dgamma[k])  # … and of dγ = Σ dout·x̂
        tb *= gamma  # g·x̂
        np.multiply(db, gamma, out=gb)  # g
        gb -= (gb @ mean)[:, None]
        xh *= (tb @ mean)[:, None]
        gb -= xh
        gb *= inv[r]

    parallel.run_blocks(rows, range(len(cuts)))
    return dx.reshape(shape), dgamma.sum(axis=0), dbeta.sum(axis=0)
