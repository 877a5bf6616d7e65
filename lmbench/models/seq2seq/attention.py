"""Global attention over the encoder states, with explicit forward and backward passes.

For decoder states h_t (B, T, H) and encoder states h̄_s (B, S, H), batched over all T steps at once:

    score(h_t, h̄_s) = h_t · h̄_s                       dot       (Luong)
                    = h_t · (h̄_s W_a)                  general   (Luong)
                    = v · tanh(h̄_s W_1 + h_t W_2)      additive  (Bahdanau's score)
    a_t = softmax_s(score(h_t, h̄_s))                  (positions where mask is False get weight 0)
    c_t = Σ_s a_ts h̄_s
    h̃_t = tanh([c_t; h_t] W_c)                        the attentional state fed to the output layer

Luong et al.'s global attention architecture: the score is computed from the current decoder state and
h̃_t replaces h_t at the output. Kind `none` is the plain encoder–decoder: h̃_t = h_t.
Weights are (in, out) matrices used as x W, like the rest of lmbench's layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.errors import LmbenchError

ATTENTION_KINDS = ("none", "dot", "general", "additive")


class Attention:
    """One attention layer; `weights` are named arrays, `forward` → (h̃, weights, cache), `backward` → grads."""

    def __init__(self, kind: str, hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32,
                 attn_size: int | None = None) -> None:
        if kind not in ATTENTION_KINDS:
            raise LmbenchError(f"unknown attention {kind!r}; choose one of: {', '.join(ATTENTION_KINDS)}")
        self.kind = kind
        self.hidden_size = H = hidden_size
        self.attn_size = A = attn_size or hidden_size
        self.dtype = np.dtype(dtype)

        def uniform(fan_in: int, *shape: int) -> np.ndarray:
            k = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-k, k, size=shape).astype(self.dtype)

        self.weights: dict[str, np.ndarray] = {}
        if kind == "none":
            return
        if kind == "general":
            self.weights["W_a"] = uniform(H, H, H)
        elif kind == "additive":
            self.weights["W_1"] = uniform(H, H, A)
            self.weights["W_2"] = uniform(H, H, A)
            self.weights["v"] = uniform(A, A)
        self.weights["W_c"] = uniform(2 * H, 2 * H, H)

    def scores(self, Hd: np.ndarray, He: np.ndarray) -> tuple[np.ndarray, Any]:
        """Alignment scores (B, T, S) of every decoder state against every encoder state."""
        if self.kind == "dot":
            return Hd @ He.transpose(0, 2, 1), None
        if self.kind == "general":
            K = He @ self.weights["W_a"]  # (B, S, H)
            return Hd @ K.transpose(0, 2, 1), K
        P = He @ self.weights["W_1"]  # (B, S, A)
        Q = Hd @ self.weights["W_2"]  # (B, T, A)
        E = np.add(P[:, None, :, :], Q[:, :, None, :])  # (B, T, S, A): one buffer, tanh in place
        np.tanh(E, out=E)
        return E @ self.weights["v"], E

    def forward(self, Hd: np.ndarray, He: np.ndarray, mask: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """Attentional states h̃ (B, T, H), attention weights (B, T, S) or None, and the cache."""
        if self.kind == "none":
            return Hd, None, None
        s, aux = self.scores(Hd, He)
        if mask is not None:
            s = np.where(mask[:, None, :], s, self.dtype.type(-1e30))
        # Softmax over source positions, shifted by the row max for stability.
        a = np.exp(s - s.max(axis=-1, keepdims=True))
        a /= a.sum(axis=-1, keepdims=True)
        c = a @ He  # (B, T, H)
        cat = np.concatenate([c, Hd], axis=-1)  # (B, T, 2H)
        out = np.tanh(cat @ self.weights["W_c"])
        return out, a, (Hd, He, aux, a, cat, out)

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        """(dHd, dHe, grads) from dL/dh̃ (B, T, H); this consumes the cache (its buffers are reused)."""
        if self.kind == "none":
            return dout, None, {}
        Hd, He, aux, a, cat, out = cache
        H = self.hidden_size
        p = self.weights
        dz = dout * (1.0 - out * out)  # through tanh
        grads = {"W_c": cat.reshape(-1, 2 * H).T @ dz.reshape(-1, H)}
        dcat = dz @ p["W_c"].T
        dc, dHd = dcat[..., :H], dcat[..., H:].copy()
        # c = a h̄: gradient to the weights and to the encoder states.
        da = dc @ He.transpose(0, 2, 1)  # (B, T, S)
        dHe = a.transpose(0, 2, 1) @ dc  # (B, S, H)
        # Softmax: ds = a ∘ (da − Σ_s a da); masked positions have a = 0 and get no gradient.
        ds = a * (da - (a * da).sum(axis=-1, keepdims=True))
        if self.kind == "dot":
            dHd += ds @ He
            dHe += ds.transpose(0, 2, 1) @ Hd
        elif self.kind == "general":
            K = aux
            dHd += ds @ K
            dK = ds.transpose(0, 2, 1) @ Hd  # (B, S, H)
            dHe += dK @ p["W_a"].T
            grads["W_a"] = He.reshape(-1, H).T @ dK.reshape(-1, H)
        else:
            E = aux
            A = self.attn_size
            grads["v"] = ds.reshape(-1) @ E.reshape(-1, A)  # Σ_{b,t,s} ds·E, as one product
            # d pre = ds·(1 − E²)·v. 1 − E² is computed in E's own buffer (the cache is used once; a fresh
            # (B, T, S, A) temporary would have to be paged in); the sums over s and over t are contractions with
            # ds, and v, the same for every (t, s), multiplies their results.
            F = np.multiply(E, E, out=E)
            np.subtract(1.0, F, out=F)  # (B, T, S, A)
            dQ = np.matmul(ds[:, :, None, :], F)[:, :, 0, :]  # Σ_s ds·F: (B, T, A)
            dQ *= p["v"]
            dP = np.einsum("bts,btsa->bsa", ds, F)  # Σ_t ds·F: (B, S, A)
            dP *= p["v"]
            grads["W_1"] = He.reshape(-1, H).T @ dP.reshape(-1, A)
            grads["W_2"] = Hd.reshape(-1, H).T @ dQ.reshape(-1, A)
            dHe += dP @ p["W_1"].T
            dHd += dQ @ p["W_2"].T
        return dHd, dHe, grads
