"""Multi-head scaled dot-product attention (Vaswani et al., 2017), self- or cross-, with a causal mask.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V
    MultiHead(x_q, x_kv) = Concat(head_1 … head_h) W_O,   head_i = Attention(x_q W_Q^i, x_kv W_K^i, x_kv W_V^i)

Arrays are batch-first: x (B, T, D); per head (B, h, T, d_k) with d_k = D / h. A causal mask forbids query
position i to see key position j > i (queries are the last T_q of the T_k key positions, so a decoder
reading one new token against a key/value cache is masked the same way). Self-attention computes Q, K, V in
one (B·T, D)×(D, 3D) matmul. `past` (cached K, V of earlier positions) and `kv` (precomputed K, V of an
encoder memory) serve incremental decoding; backward passes do not go through them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.models.neural.layers import linear_backward, linear_forward

ATTN_KEYS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


def causal_mask(t_q: int, t_k: int) -> np.ndarray:
    """(t_q, t_k) boolean, True where query i (the last t_q of t_k positions) may NOT see key j (j > i)."""
    i = np.arange(t_q)[:, None] + (t_k - t_q)
    return np.arange(t_k)[None, :] > i


def attention_forward(Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool) -> tuple[np.ndarray, Any]:
    """softmax(Q Kᵀ / √d_k) V for Q (..., T_q, d_k), K and V (..., T_k, d_k); returns (out, cache with A)."""
    d_k = Q.shape[-1]
    scale = Q.dtype.type(1.0 / np.sqrt(d_k))
    S = (Q @ K.swapaxes(-1, -2)) * scale  # (..., T_q, T_k) scores
    if causal:
        S[..., causal_mask(Q.shape[-2], K.shape[-2])] = -np.inf
    S -= S.max(axis=-1, keepdims=True)  # stable softmax; every row keeps at least its own position
    A = np.exp(S, out=S)
    A /= A.sum(axis=-1, keepdims=True)
    return A @ V, (Q, K, V, A, scale)


def attention_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dQ, dK, dV) of `attention_forward`; softmax backward dS = A ∘ (dA − Σ_j dA∘A)."""
    Q, K, V, A, scale = cache
    dV = A.swapaxes(-1, -2) @ dout
    dA = dout @ V.swapaxes(-1, -2)
    dS = A * (dA - (dA * A).sum(axis=-1, keepdims=True))
    dS *= scale
    return dS @ K, dS.swapaxes(-1, -2) @ Q, dV


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    B, T, D = x.shape
    return x.reshape(B, T, heads, D // heads).transpose(0, 2, 1, 3)  # (B, h, T, d_k)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    B, h, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, h * d)


def mha_forward(xq: np.ndarray, xkv: np.ndarray | None, p: dict[str, np.ndarray], heads: int, causal: bool,
                past: tuple[np.ndarray, np.ndarray] | None = None,
                kv: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, Any]:
    """Multi-head attention of queries xq (B, T_q, D) over xkv (B, T_k, D); xkv None = self-attention.

    `past`: cached (K, V) per head to prepend; `kv`: (K, V) per head to use instead of projecting xkv.
    The cache (a dict) holds "k" and "v" (all keys/values attended to) and "attn" (B, h, T_q, T_k).
    """
    if xkv is None and kv is None:
        # Self-attention: one matmul for Q, K and V.
        W = np.concatenate([p["Wq"], p["Wk"], p["Wv"]], axis=1)
        b = np.concatenate([p["bq"], p["bk"], p["bv"]])
        qkv, lin_cache = linear_forward(xq, W, b)
        q, k, v = np.split(qkv, 3, axis=-1)
        lin = ("qkv", lin_cache)
    else:
        q, cq = linear_forward(xq, p["Wq"], p["bq"])
        if kv is None:
            W = np.concatenate([p["Wk"], p["Wv"]], axis=1)
            b = np.concatenate([p["bk"], p["bv"]])
            kvx, ckv = linear_forward(xkv, W, b)
            k, v = np.split(kvx, 2, axis=-1)
            lin = ("q+kv", (cq, ckv))
        else:
            lin = ("q", cq)
    Q = _split_heads(q, heads)
    if kv is None:
        K, V = _split_heads(k, heads), _split_heads(v, heads)
    else:
        K, V = kv
    if past is not None:
        K, V = np.concatenate([past[0], K], axis=2), np.concatenate([past[1], V], axis=2)
    O, att_cache = attention_forward(Q, K, V, causal)
    out, out_cache = linear_forward(_merge_heads(O), p["Wo"], p["bo"])
    return out, {"lin": lin, "att": att_cache, "out": out_cache, "heads": heads, "k": K, "v": V,
                 "attn": att_cache[3]}


def mha_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """(dxq, dxkv, weight gradients); for self-attention dxkv is None (its share is already in dxq)."""
    dO, dWo, dbo = linear_backward(dout, cache["out"])
    heads = cache["heads"]
    dQ, dK, dV = attention_backward(_split_heads(dO, heads), cache["att"])
    dq, dk, dv = _merge_heads(dQ), _merge_heads(dK), _merge_heads(dV)
    grads = {"Wo": dWo, "bo": dbo}
    kind, lc = cache["lin"]
    if kind == "qkv":
        dx, dW, db = linear_backward(np.concatenate([dq, dk, dv], axis=-1), lc)
        D = dq.shape[-1]
        grads |= {"Wq": dW[:, :D], "Wk": dW[:, D:2 * D], "Wv": dW[:, 2 * D:],
                  "bq": db[:D], "bk": db[D:2 * D], "bv": db[2 * D:]}
        return dx, None, grads
    if kind != "q+kv":
        raise ValueError("no backward pass through precomputed keys/values")
    cq, ckv = lc
    dxq, dWq, dbq = linear_backward(dq, cq)
    dxkv, dW, db = linear_backward(np.concatenate([dk, dv], axis=-1), ckv)
    D = dq.shape[-1]
    grads |= {"Wq": dWq, "bq": dbq, "Wk": dW[:, :D], "Wv": dW[:, D:], "bk": db[:D], "bv": db[D:]}
    return dxq, dxkv, grads


def project_kv(x: np.ndarray, p: dict[str, np.ndarray], heads: int) -> tuple[np.ndarray, np.ndarray]:
    """K, V per head (B, h, T, d_k) of x: an encoder memory projected once for every decoding step."""
    k, _ = linear_forward(x, p["Wk"], p["bk"])
    v, _ = linear_forward(x, p["Wv"], p["bv"])
    return _split_heads(k, heads), _split_heads(v, heads)
