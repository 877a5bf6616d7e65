"""Feed-forward layers with explicit forward and backward passes (CS231n style).

Every layer is a pair of functions:

    out, cache = <layer>_forward(inputs..., weights...)
    grads      = <layer>_backward(dout, cache)

The backward pass returns the gradients of the loss with respect to the layer's inputs and parameters, in
the order documented on each function. Arrays keep the dtype they are given: float32 for training,
float64 for finite-difference checks. The softmax and the cross-entropy are fused into one function
(`softmax_cross_entropy`), because the gradient of their composition is simply p − onehot(y).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.models.neural import parallel

# --- embedding --------------------------------------------------------------------------------------


def embedding_forward(ids: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, Any]:
    """Look up rows of W (V, D) for integer ids of any shape → (*ids.shape, D)."""
    return W[ids], (ids, W.shape)


def embedding_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    """dW (V, D): the rows of dout summed into the rows their ids looked up."""
    ids, shape = cache
    return scatter_rows(ids.reshape(-1), dout.reshape(-1, shape[1]), shape[0])


def scatter_rows(ids: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """(n, D) sums out[i] = Σ rows[k] over the k with ids[k] = i: np.add.at's sums (reduceat may add them pairwise),
    several times faster.

    A stable sort of the ids makes each id's rows one contiguous run, which one np.add.reduceat sums.
    """
    out = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
    if ids.size == 0:
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]]))
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


# --- linear (affine) ----------------------------------------------------------------------------------


def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, Any]:
    """out = x W + b for x (..., D), W (D, M), b (M,) or None → (..., M), as one matmul over all rows."""
    x2 = x.reshape(-1, W.shape[0])
    out = parallel.matmul(x2, W)
    if b is not None:
        out += b
    return out.reshape(*x.shape[:-1], W.shape[1]), (x2, W, x.shape, b is not None)


def linear_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(dx, dW, db) of `linear_forward`; db is None when the layer has no bias."""
    x2, W, x_shape, has_bias = cache
    d2 = dout.reshape(-1, W.shape[1])
    dx = parallel.matmul(d2, W.T).reshape(x_shape)
    dW = parallel.matmul(x2.T, d2)
    db = d2.sum(axis=0) if has_bias else None
    return dx, dW, db


# --- dropout ------------------------------------------------------------------------------------------


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, train: bool = True) -> tuple[np.ndarray, Any]:
    """Inverted dropout: zero each unit with probability p and scale survivors by 1/(1−p); identity at test."""
    if not train or p <= 0.0:
        return x, None
    if p >= 1.0:
        return np.zeros_like(x), np.zeros_like(x)
    mask = rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64) >= p
    scaled = mask.astype(x.dtype)
    scaled *= 1.0 / (1.0 - p)
    return x * scaled, scaled


def dropout_backward(dout: np.ndarray, cache: Any) -> np.ndarray:
    """dx of `dropout_forward`: the same mask (with its scale) applied to the upstream gradient."""
    return dout if cache is None else dout * cache


# --- fused softmax + cross-entropy ----------------------------------------------------------------------


def log_softmax(logits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (subtract the row max before exp)."""
    shifted = np.subtract(logits, logits.max(axis=-1, keepdims=True), out=out)
    sumexp = np.exp(shifted).sum(axis=-1, keepdims=True)
    shifted -= np.log(sumexp)
    return shifted


def target_logprobs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log softmax(logits)[i, y_i] for every row (float64), for evaluation; overwrites `logits`."""
    logp = np.empty(logits.shape[0], dtype=np.float64)

    def block(rows: slice) -> None:
        z, y = logits[rows], targets[rows]
        z -= z.max(axis=1, keepdims=True)
        shifted_target = z[np.arange(z.shape[0]), y].astype(np.float64)
        np.exp(z, out=z)
        logp[rows] = shifted_target - np.log(z.sum(axis=1, dtype=np.float64))

    parallel.rows_apply(block, *logits.shape)
    return logp


def softmax_cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    inplace: bool = False,
    scale: float | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of softmax(logits) (N, V) against integer targets (N,).

    Returns (loss, dlogits, logp): loss = −mean_i log p_i(y_i) over the rows where `mask` is true (all rows
    without a mask); dlogits = (softmax − onehot(y)) · scale, with scale = 1/#rows counted unless given, and
    zero on masked-out rows; logp = log p_i(y_i) for every row (float64). With inplace=True the logits
    array is overwritten by dlogits (no (N, V) temporary: the fast path for the big decoder output).
    Rows are independent: blocks of them run in parallel (lmbench.models.neural.parallel).
    """
    n = logits.shape[0]
    p = logits if inplace else logits.copy()
    count = n if mask is None else int(np.count_nonzero(mask))
    if scale is None:
        scale = 1.0 / max(count, 1)
    logp = np.empty(n, dtype=np.float64)

    def block(rows: slice) -> None:
        q, y = p[rows], targets[rows]
        at_target = (np.arange(q.shape[0]), y)
        # Stable: exp(z − max z) never overflows, and the sum is ≥ 1 so its log is finite.
        q -= q.max(axis=1, keepdims=True)
        shifted_target = q[at_target].astype(np.float64)
        np.exp(q, out=q)
        sumexp = q.sum(axis=1, dtype=np.float64)
        logp[rows] = shifted_target - np.log(sumexp)
        # softmax · scale, then subtract scale at the target: the gradient of the mean loss.
        q *= (scale / sumexp).astype(q.dtype)[:, None]
        q[at_target] -= q.dtype.type(scale)

    parallel.rows_apply(block, *p.shape)
    if mask is None:
        loss = float(-logp.mean()) if n else 0.0
    else:
        loss = float(-logp[mask].sum() / max(count, 1))
        p[~mask] = 0.0
    return loss, p, logp
