"""Position-wise feed-forward network: FFN(x) = GELU(x W₁ + b₁) W₂ + b₂.

GELU is the tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))) used by GPT-2 and BERT
(torch: F.gelu(x, approximate="tanh")); NumPy has no erf for the exact form. Written with
s = ½(1 + tanh u), u = √(2/π)(x + 0.044715x³):

    GELU(x) = x·s          GELU'(x) = s + 2x·s(1 − s)·√(2/π)(1 + 3·0.044715x²)

The pass is memory-bound, so it runs in cache-sized blocks (lmbench.models.neural.parallel), adds the
bias b₁ on the way, and writes as few full-size arrays as it can (each one costs a trip to memory). With
grad=True (training) the derivative is computed in the same blocks, while x is in cache, and the backward
pass is a single product; without it only x + b₁ is kept and the backward pass recomputes the derivative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lmbench.models.neural import parallel
from lmbench.models.neural.layers import linear_backward, linear_forward

_C = math.sqrt(2.0 / math.pi)
_A = 0.044715


def _gelu_s(xb: np.ndarray, sb: np.ndarray) -> None:
    """sb ← s = ½(1 + tanh u), u = √(2/π)(x + 0.044715x³), built in place."""
    f = xb.dtype.type
    np.multiply(xb, xb, out=sb)
    sb *= f(_C * _A)
    sb += f(_C)
    sb *= xb
    np.tanh(sb, out=sb)
    sb *= f(0.5)
    sb += f(0.5)


def _gelu_derivative(xb: np.ndarray, sb: np.ndarray, gb: np.ndarray) -> None:
    """gb ← GELU'(x) = s + 2x·s(1 − s)·√(2/π)(1 + 3·0.044715x²) from x and s."""
    f = xb.dtype.type
    np.multiply(xb, xb, out=gb)
    gb *= f(6 * _A * _C)
    gb += f(2 * _C)  # 2·√(2/π)(1 + 3·0.044715x²)
    gb *= xb
    w = sb * sb
    np.subtract(sb, w, out=w)  # s(1 − s)
    gb *= w
    gb += sb


def gelu_bias_forward(x: np.ndarray, bias: np.ndarray | None = None, grad: bool = True) -> tuple[np.ndarray, Any]:
    """GELU(x + bias) elementwise for x (..., F), bias (F,) or None; grad: keep GELU' for the backward pass.

    With a bias, x is the caller's scratch: it becomes x + bias (no new array to fill).
    """
    F = x.shape[-1]
    x2 = x.reshape(-1, F)
    out = np.empty_like(x2)
    gp = np.empty_like(x2) if grad else None

    def rows(r: slice) -> None:
        xb, ob = x2[r], out[r]
        if bias is not None:
            xb += bias
        sb = np.empty_like(xb)  # s, a block-sized scratch
        _gelu_s(xb, sb)
        np.multiply(xb, sb, out=ob)  # GELU(x) = x·s
        if gp is not None:
            _gelu_derivative(xb, sb, gp[r])

    parallel.run_blocks(rows, parallel.blocks(x2.shape[0], F))
    return out.reshape(x.shape), (gp if grad else x2, grad, x.shape, bias is not None)


def gelu_bias_backward(dout: np.ndarray, cache: Any, out: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """(dx, dbias) of `gelu_bias_forward`: dx = dout·GELU'(x + bias), dbias = Σ_rows dx (None without bias).

    `out` (may be dout itself) receives dx.
    """
    kept, has_derivative, shape, has_bias = cache
    F = shape[-1]
    d2 = dout.reshape(-1, F)
    dx = np.empty_like(d2) if out is None else out.reshape(-1, F)
    cuts = parallel.blocks(d2.shape[0], F)
    dbias = np.empty((len(cuts), F), dtype=d2.dtype) if has_bias else None
    ones = np.ones(cuts[0].stop if cuts else 0, dtype=d2.dtype)  # ones @ block: its column sums

    def rows(k: int) -> None:
        r = cuts[k]
        if has_derivative:
            np.multiply(d2[r], kept[r], out=dx[r])
        else:  # only x + bias was kept: s and GELU' again
            xb = kept[r]
            sb, gb = np.empty_like(xb), np.empty_like(xb)
            _gelu_s(xb, sb)
            _gelu_derivative(xb, sb, gb)
            np.multiply(d2[r], gb, out=dx[r])
        if dbias is not None:
            np.matmul(ones[:r.stop - r.start], dx[r], out=dbias[k])  # this block's share of Σ_rows dx

    parallel.run_blocks(rows, range(len(cuts)))
    return dx.reshape(shape), (dbias.sum(axis=0) if dbias is not None else None)


def gelu_forward(x: np.ndarray, grad: bool = True) -> tuple[np.ndarray, Any]:
    """GELU (tanh approximation), elementwise."""
    return gelu_bias_forward(x, None, grad)


def gelu_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    """dx of `gelu_forward`."""
    return gelu_bias_backward(dout, cache)[0]


def ffn_forward(x: np.ndarray, p: dict[str, np.ndarray], grad: bool = True) -> tuple[np.ndarray, Any]:
    """GELU(x W1 + b1) W2 + b2 for x (..., D); p holds W1 (D, F), b1, W2 (F, D), b2.

    Training (grad) keeps the hidden layer GELU(h) and GELU'(h) for the backward pass. Evaluation keeps
    none: it runs one block of rows at a time, so that a block's hidden layer (rows × F) goes from the W1
    product through GELU to the W2 product while it is in cache.
    """
    if grad:
        h, c1 = linear_forward(x, p["W1"], None)
        a, cg = gelu_bias_forward(h, p["b1"], grad=True)  # the bias is added inside GELU's blocks
        out, c2 = linear_forward(a, p["W2"], p["b2"])
        return out, ("grad", c1, cg, c2)
    D = x.shape[-1]
    W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    x2 = np.ascontiguousarray(x).reshape(-1, D)
    out = np.empty((x2.shape[0], W2.shape[1]), dtype=x.dtype)

    def rows(r: slice) -> None:
        h = x2[r] @ W1
        h += b1  # h = x W1 + b1
        sb = np.empty_like(h)
        _gelu_s(h, sb)
        np.multiply(h, sb, out=sb)  # GELU(h) = h·s
        np.matmul(sb, W2, out=out[r])
        out[r] += b2  # GELU(h) W2 + b2

    parallel.run_blocks(rows, parallel.blocks(x2.shape[0], W1.shape[1]))
    return out.reshape(*x.shape[:-1], W2.shape[1]), ("eval", x, p)


def ffn_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(dx, {W1, b1, W2, b2} gradients) of `ffn_forward` (after an evaluation pass, the forward pass again)."""
    if cache[0] == "eval":
        cache = ffn_forward(cache[1], cache[2], grad=True)[1]
    _, c1, cg, c2 = cache
    da, dW2, db2 = linear_backward(dout, c2)
    dh, db1 = gelu_bias_backward(da, cg, out=da)
    dx, dW1, _ = linear_backward(dh, c1)
    return dx, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
