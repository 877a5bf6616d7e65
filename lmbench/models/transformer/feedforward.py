"""Position-wise feed-forward network: FFN(x) = GELU(x W₁ + b₁) W₂ + b₂.

GELU is the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))) used by GPT-2 and BERT
(torch: F.gelu(x, approximate="tanh")); NumPy has no erf for the exact form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lmbench.models.neural import parallel
from lmbench.models.neural.layers import linear_backward, linear_forward

_C = math.sqrt(2.0 / math.pi)


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
    """GELU (tanh approximation), elementwise, in cache-sized blocks (the pass is memory-bound)."""
    f = x.dtype.type
    xf = np.ascontiguousarray(x).reshape(-1)
    t, out = np.empty_like(xf), np.empty_like(xf)

    def block(s: slice) -> None:
        xb, tb, ob = xf[s], t[s], out[s]
        np.multiply(xb, xb, out=tb)  # t = tanh(√(2/π)(x + 0.044715x³)), built in place
        tb *= f(0.044715)
        tb += f(1.0)
        tb *= xb
        tb *= f(_C)
        np.tanh(tb, out=tb)
        np.add(tb, f(1.0), out=ob)  # out = ½x(1 + t)
        ob *= xb
        ob *= f(0.5)

    parallel.run(block, parallel.blocks(xf.size))
    return out.reshape(x.shape), (xf, t, x.shape)


def gelu_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    """d/dx ½x(1 + tanh u) = ½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²)."""
    xf, t, shape = cache
    f = xf.dtype.type
    df = np.ascontiguousarray(dout).reshape(-1)
    g, du = np.empty_like(xf), np.empty_like(xf)

    def block(s: slice) -> None:
        xb, tb, gb, ub = xf[s], t[s], g[s], du[s]
        np.multiply(xb, xb, out=ub)  # du = √(2/π)(1 + 3·0.044715x²)
        ub *= f(3 * 0.044715)
        ub += f(1.0)
        ub *= f(_C)
        np.multiply(tb, tb, out=gb)  # g = ½(1 + t + x(1 − t²)·du)·dout
        np.subtract(f(1.0), gb, out=gb)
        gb *= xb
        gb *= ub
        gb += tb
        gb += f(1.0)
        gb *= f(0.5)
        gb *= df[s]

    parallel.run(block, parallel.blocks(xf.size))
    return g.reshape(shape)


def ffn_forward(x: np.ndarray, p: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
    """GELU(x W1 + b1) W2 + b2 for x (..., D); p holds W1 (D, F), b1, W2 (F, D), b2."""
    h, c1 = linear_forward(x, p["W1"], p["b1"])
    a, cg = gelu_forward(h)
    out, c2 = linear_forward(a, p["W2"], p["b2"])
    return out, (c1, cg, c2)


def ffn_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(dx, {W1, b1, W2, b2} gradients) of `ffn_forward`."""
    c1, cg, c2 = cache
    da, dW2, db2 = linear_backward(dout, c2)
    dh = gelu_backward(da, cg)
    dx, dW1, db1 = linear_backward(dh, c1)
    return dx, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
