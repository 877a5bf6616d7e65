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

from lmbench.models.neural import parallel
from lmbench.models.neural.layers import linear_backward, linear_forward

ATTN_KEYS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")


def causal_mask(t_q: int, t_k: int) -> np.ndarray:
    """(t_q, t_k) boolean, True where query i (the last t_q of t_k positions) may NOT see key j (j > i)."""
    i = np.arange(t_q)[:, None] + (t_k - t_q)
    return np.arange(t_k)[None, :] > i


_ADDITIVE_MASKS: dict[tuple[int, int, str], np.ndarray] = {}


def additive_causal_mask(t_q: int, t_k: int, dtype: np.dtype) -> np.ndarray:
    """The causal mask as scores to add, (t_q, t_k): 0 where query i may see key j, −∞ where not (made once)."""
    key = (t_q, t_k, np.dtype(dtype).str)
    if key not in _ADDITIVE_MASKS:
        _ADDITIVE_MASKS[key] = np.where(causal_mask(t_q, t_k), -np.inf, 0.0).astype(dtype)
    return _ADDITIVE_MASKS[key]


def attention_forward(Q: np.ndarray, K: np.ndarray, V: np.ndarray, causal: bool, out: np.ndarray | None = None
                      ) -> tuple[np.ndarray, Any]:
    """softmax(Q Kᵀ / √d_k) V for Q (..., T_q, d_k), K and V (..., T_k, d_k); returns (out, cache with A).

    Layout: the scores are stored transposed, Sᵀ = K Qᵀ (keys × queries), so that the softmax over the keys
    reduces down columns, which NumPy vectorises (a max along short rows costs ~3× more). The work runs in
    blocks of the first axis (lmbench.models.neural.parallel): a block's scores stay in cache from K Qᵀ to
    A V. `out` (..., T_q, d_v), any strides, receives the result; the cache's A is (..., T_q, T_k).
    """
    if Q.ndim == 2:
        O, (_, _, _, A, scale) = attention_forward(Q[None], K[None], V[None], causal)
        return O[0], (Q, K, V, A[0], scale)
    d_k = Q.shape[-1]
    scale = Q.dtype.type(1.0 / np.sqrt(d_k))
    mask_t = additive_causal_mask(Q.shape[-2], K.shape[-2], Q.dtype).T if causal else None
    At = np.empty((*Q.shape[:-2], K.shape[-2], Q.shape[-2]), dtype=Q.dtype)  # Aᵀ: (..., T_k, T_q)
    O = np.empty((*Q.shape[:-1], V.shape[-1]), dtype=Q.dtype) if out is None else out
    ones = np.ones((1, K.shape[-2]), dtype=Q.dtype)  # ones @ Sᵀ sums over the keys (faster than .sum)

    def block(b: slice) -> None:
        St = np.matmul(K[b], Q[b].swapaxes(-1, -2), out=At[b])  # Sᵀ = (Q Kᵀ)ᵀ
        St *= scale  # S = Q Kᵀ / √d_k
        if mask_t is not None:
            St += mask_t  # −∞ where key j > query i
        St -= St.max(axis=-2, keepdims=True)  # stable softmax over the keys; every query sees itself
        np.exp(St, out=St)
        total = ones @ St
        St *= np.reciprocal(total, out=total)  # Aᵀ = softmax(S)ᵀ, in place
        np.matmul(St.swapaxes(-1, -2), V[b], out=O[b])  # A V

    parallel.run_blocks(block, parallel.blocks(Q.shape[0], At[0].size))
    return O, (Q, K, V, At.swapaxes(-1, -2), scale)


def attention_backward(dout: np.ndarray, cache: Any, out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dQ, dK, dV) of `attention_forward`; softmax backward dS = A ∘ (dA − Σ_j dA∘A); `out` receives them.

    Computed transposed as the forward pass: dAᵀ = V dOᵀ, dSᵀ = Aᵀ ∘ (dAᵀ − Σ_keys dAᵀ∘Aᵀ).
    """
    Q, K, V, A, scale = cache
    if Q.ndim == 2:
        dQ, dK, dV = attention_backward(dout[None], (Q[None], K[None], V[None], A[None], scale))
        return dQ[0], dK[0], dV[0]
    At = A.swapaxes(-1, -2)
    dQ, dK, dV = (np.empty(Q.shape, Q.dtype), np.empty(K.shape, K.dtype), np.empty(V.shape, V.dtype)) \
        if out is None else out
    ones = np.ones((1, At.shape[-2]), dtype=Q.dtype)

    def block(b: slice) -> None:
        Atb, dOb = At[b], dout[b]
        np.matmul(Atb, dOb, out=dV[b])  # dV = Aᵀ dO
        dAt = V[b] @ dOb.swapaxes(-1, -2)  # dAᵀ = (dO Vᵀ)ᵀ
        dSt = dAt * Atb
        np.subtract(dAt, ones @ dSt, out=dSt)
        dSt *= Atb  # dSᵀ = Aᵀ ∘ (dAᵀ − Σ_keys dAᵀ∘Aᵀ)
        dSt *= scale  # through S = Q Kᵀ / √d_k
        np.matmul(dSt.swapaxes(-1, -2), K[b], out=dQ[b])  # dQ = dS K
        np.matmul(dSt, Q[b], out=dK[b])  # dK = dSᵀ Q

    parallel.run_blocks(block, parallel.blocks(Q.shape[0], At[0].size))
    return dQ, dK, dV


def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(B, T, D) → a (B, h, T, d_k) view (no copy: the matmuls take the strides)."""
    B, T, D = x.shape
    return x.reshape(B, T, heads, D // heads).transpose(0, 2, 1, 3)


def mha_forward(xq: np.ndarray, xkv: np.ndarray | None, p: dict[str, np.ndarray], heads: int, causal: bool,
                past: tuple[np.ndarray, np.ndarray] | None = None,
                kv: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, Any]:
    """Multi-head attention of queries xq (B, T_q, D) over xkv (B, T_k, D); xkv None = self-attention.

    `past`: cached (K, V) per head to prepend; `kv`: (K, V) per head to use instead of projecting xkv.
    The cache (a dict) holds "k" and "v" (all keys/values attended to) and "attn" (B, h, T_q, T_k).
    """
    B, T, D = xq.shape
    if xkv is None and kv is None:
        # Self-attention: one matmul for Q, K and V; the heads are strided views of its output.
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
    Q = _heads(q, heads)
    if kv is None:
        K, V = _heads(k, heads), _heads(v, heads)
    else:
        K, V = kv
    if past is not None:
        K, V = np.concatenate([past[0], K], axis=2), np.concatenate([past[1], V], axis=2)
    O = np.empty((B, T, D), dtype=Q.dtype)  # Concat(head_1 … head_h): each head writes its columns
    _, att_cache = attention_forward(Q, K, V, causal, out=_heads(O, heads))
    out, out_cache = linear_forward(O, p["Wo"], p["bo"])
    return out, {"lin": lin, "att": att_cache, "out": out_cache, "heads": heads, "k": K, "v": V,
                 "attn": att_cache[3]}


def mha_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """(dxq, dxkv, weight gradients); for self-attention dxkv is None (its share is already in dxq)."""
    dO, dWo, dbo = linear_backward(dout, cache["out"])
    heads = cache["heads"]
    kind, lc = cache["lin"]
    if kind not in ("qkv", "q+kv"):
        raise ValueError("no backward pass through precomputed keys/values")
    B, T, D = dO.shape
    S = cache["k"].shape[2]
    # dQ, dK, dV land in the columns of the projections' output gradients (no concatenation afterwards).
    if kind == "qkv":
        dqkv = np.empty((B, T, 3 * D), dtype=dO.dtype)
        dq, dk, dv = np.split(dqkv, 3, axis=-1)
    else:
        dq, dkvx = np.empty((B, T, D), dtype=dO.dtype), np.empty((B, S, 2 * D), dtype=dO.dtype)
        dk, dv = np.split(dkvx, 2, axis=-1)
    attention_backward(_heads(dO, heads), cache["att"], out=(_heads(dq, heads), _heads(dk, heads), _heads(dv, heads)))
    grads = {"Wo": dWo, "bo": dbo}
    if kind == "qkv":
        dx, dW, db = linear_backward(dqkv, lc)
        grads |= {"Wq": dW[:, :D], "Wk": dW[:, D:2 * D], "Wv": dW[:, 2 * D:],
                  "bq": db[:D], "bk": db[D:2 * D], "bv": db[2 * D:]}
        return dx, None, grads
    cq, ckv = lc
    dxq, dWq, dbq = linear_backward(dq, cq)
    dxkv, dW, db = linear_backward(dkvx, ckv)
    grads |= {"Wq": dWq, "bq": dbq, "Wk": dW[:, :D], "Wv": dW[:, D:], "bk": db[:D], "bv": db[D:]}
    return dxq, dxkv, grads


def project_kv(x: np.ndarray, p: dict[str, np.ndarray], heads: int) -> tuple[np.ndarray, np.ndarray]:
    """K, V per head (B, h, T, d_k) of x: an encoder memory projected once for every decoding step."""
    k, _ = linear_forward(x, p["Wk"], p["bk"])
    v, _ = linear_forward(x, p["Wv"], p["bv"])
    return _heads(k, heads), _heads(v, heads)
