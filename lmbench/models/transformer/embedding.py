"""Token + position embeddings: x_t = E[w_t] + P[t], with P learned (GPT) or sinusoidal (Vaswani et al.).

    out, cache = embed_forward(ids, E, P, offset)      ids (B, T) → (B, T, D); positions offset … offset+T−1
    dE, dP     = embed_backward(dout, cache)           dP is None for the fixed sinusoidal table
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.models.neural.layers import embedding_forward, scatter_rows


def sinusoidal_positions(n: int, d: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """P[t, 2i] = sin(t / 10000^(2i/d)), P[t, 2i+1] = cos(t / 10000^(2i/d)) for t < n (the paper's table)."""
    pos = np.arange(n, dtype=np.float64)[:, None]
    freq = 10000.0 ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    table = np.zeros((n, d))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: d // 2])
    return table.astype(dtype)


def embed_forward(ids: np.ndarray, E: np.ndarray, P: np.ndarray, offset: int = 0, learned: bool = True
                  ) -> tuple[np.ndarray, Any]:
    """E[ids] + P[offset : offset + T] for ids (B, T); `learned` says whether P receives a gradient."""
    T = ids.shape[1]
    tok, tok_cache = embedding_forward(ids, E)
    return tok + P[offset:offset + T], (tok_cache, P.shape, offset, T, learned)


def embed_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(dE, dP): token rows scatter-added; position rows summed over the batch (None when not learned)."""
    tok_cache, p_shape, offset, T, learned = cache
    ids, e_shape = tok_cache
    dE = scatter_rows(ids.reshape(-1), dout.reshape(-1, e_shape[1]), e_shape[0])
    if not learned:
        return dE, None
    dP = np.zeros(p_shape, dtype=dout.dtype)
    dP[offset:offset + T] = dout.sum(axis=0)
    return dE, dP
