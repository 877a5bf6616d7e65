"""Position-wise feed-forward network: FFN(x) = GELU(x W₁ + b₁) W₂ + b₂.

GELU is the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))) used by GPT-2 and BERT
(torch: F.gelu(x, approximate="tanh")); NumPy has no erf for the exact form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lmbench.models.neural.layers import linear_backward, linear_forward

_C = math.sqrt(2.0 / math.pi)


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
    """GELU (tanh approximation), elementwise; in-place steps keep the temporaries few (it is memory-bound)."""
    f = x.dtype.type
    t = x * x  # t = tanh(√(2/π)(x + 0.044715x³)), built in place
    t *= f(0.044715)
    t += f(1.0)
    t *= x
    t *= f(_C)
    np.tanh(t, out=t)
    out = t + f(1.0)
    out *= x
    out *= f(0.5)
    return out, (x, t)


def gelu_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    """d/dx ½x(1 + tanh u) = ½(1 + tanh u) + ½x(1 − tanh² u)·√(2/π)(1 + 3·0.044715x²)."""
    x, t = cache
    f = x.dtype.type
    du = x * x
    du *= f(3 * 0.044715)
    du += f(1.0)
    du *= f(_C)
    g = t * t
    np.subtract(f(1.0), g, out=g)
    g *= x
    g *= du
    g += t
    g += f(1.0)
    g *= f(0.5)
    g *= dout
    return g


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
