"""One Transformer layer: residual sublayers (self-attention, optional cross-attention, feed-forward).

    pre-LN  (GPT-2, default):  x ← x + Dropout(Sublayer(LN(x)))        and a final LN after the last layer
    post-LN (the 2017 paper):  x ← LN(x + Dropout(Sublayer(x)))

A decoder layer has a causal self-attention, a cross-attention over the encoder memory, and the feed-forward
network; an encoder layer has a non-causal self-attention and the feed-forward network. The residual path
x ← x + … is why gradients reach early positions without passing through a long product of Jacobians.

    out, cache      = block_forward(x, p, cfg, rng, train, memory)
    dx, dmem, grads = block_backward(dout, cache)
The weights `p` of one layer are a flat dict: "ln1.g", "ln1.b", "attn.Wq" … "ffn.W1" … (see `block_shapes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmbench.models.neural.layers import dropout_backward, dropout_forward
from lmbench.models.transformer.attention import ATTN_KEYS, mha_backward, mha_forward
from lmbench.models.transformer.feedforward import ffn_backward, ffn_forward
from lmbench.models.transformer.layernorm import layernorm_backward, layernorm_forward

NORMS = ("pre", "post")
POSITIONS = ("learned", "sinusoidal")


@dataclass(frozen=True)
class BlockConfig:
    """The shape and behaviour of one layer."""

    d_model: int
    heads: int
    d_ff: int
    dropout: float = 0.0
    norm: str = "pre"
    causal: bool = True
    cross: bool = False


def block_shapes(cfg: BlockConfig) -> dict[str, tuple[int, ...]]:
    """Name → shape of every weight of one layer."""
    D, F = cfg.d_model, cfg.d_ff
    shapes: dict[str, tuple[int, ...]] = {}
    subs = ("attn", "cross") if cfg.cross else ("attn",)
    for i, sub in enumerate((*subs, "ffn"), 1):
        shapes[f"ln{i}.g"] = (D,)
        shapes[f"ln{i}.b"] = (D,)
        if sub == "ffn":
            shapes |= {"ffn.W1": (D, F), "ffn.b1": (F,), "ffn.W2": (F, D), "ffn.b2": (D,)}
        else:
            shapes |= {f"{sub}.{k}": ((D, D) if k.startswith("W") else (D,)) for k in ATTN_KEYS}
    return shapes


def init_block(cfg: BlockConfig, rng: np.random.Generator, dtype: np.dtype, n_layers: int) -> dict[str, np.ndarray]:
    """GPT-2 initialisation: N(0, 0.02) matrices, output projections scaled by 1/√(2·layers), zero biases, γ = 1."""
    out = {}
    for name, shape in block_shapes(cfg).items():
        leaf = name.rpartition(".")[2]
        if leaf == "g":
            out[name] = np.ones(shape, dtype=dtype)
        elif len(shape) == 1:
            out[name] = np.zeros(shape, dtype=dtype)
        else:
            std = 0.02 / np.sqrt(2 * n_layers) if leaf in ("Wo", "W2") else 0.02
            out[name] = rng.normal(0.0, std, shape).astype(dtype)
    return out


def _sub(p: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in p.items() if k.startswith(prefix + ".")}


def block_forward(x: np.ndarray, p: dict[str, np.ndarray], cfg: BlockConfig, rng: np.random.Generator | None = None,
                  train: bool = False, memory: np.ndarray | None = None,
                  past: tuple[np.ndarray, np.ndarray] | None = None,
                  cross_kv: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, Any]:
    """One layer over x (B, T, D); `memory` (B, S, D) for cross-attention; `past`/`cross_kv` for decoding."""
    drop = cfg.dropout if train else 0.0
    pre = cfg.norm == "pre"
    caches = []
    x_in = x
    subs = ["attn", "cross", "ffn"] if cfg.cross else ["attn", "ffn"]
    for i, sub in enumerate(subs, 1):
        g, b = p[f"ln{i}.g"], p[f"ln{i}.b"]
        h, ln_cache = layernorm_forward(x, g, b) if pre else (x, None)
        if sub == "attn":
            y, c = mha_forward(h, None, _sub(p, "attn"), cfg.heads, cfg.causal, past=past)
        elif sub == "cross":
            y, c = mha_forward(h, memory, _sub(p, "cross"), cfg.heads, False, kv=cross_kv)
        else:
            y, c = ffn_forward(h, _sub(p, "ffn"), grad=train)  # training keeps GELU' for the backward pass
        y, d_cache = dropout_forward(y, drop, rng, train) if drop > 0 else (y, None)
        x = np.add(x, y, out=y)  # x ← x + y (y's buffer is fresh)
        if not pre:
            x, ln_cache = layernorm_forward(x, g, b)
        caches.append((sub, ln_cache, c, d_cache))
    return x, {"subs": caches, "pre": pre, "input": x_in}


def block_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """(dx, dmemory or None, gradient of every weight of the layer) of `block_forward`."""
    grads: dict[str, np.ndarray] = {}
    dmem = None
    pre = cache["pre"]
    dx = dout
    for i, (sub, ln_cache, c, d_cache) in reversed(list(enumerate(cache["subs"], 1))):
        if not pre:
            dx, grads[f"ln{i}.g"], grads[f"ln{i}.b"] = layernorm_backward(dx, ln_cache)
        dy = dropout_backward(dx, d_cache)
        if sub == "ffn":
            dh, g = ffn_backward(dy, c)
        else:
            dh, dkv, g = mha_backward(dy, c)
            if dkv is not None:
                dmem = dkv
        grads |= {f"{sub}.{k}": v for k, v in g.items()}
        if pre:
            dh, grads[f"ln{i}.g"], grads[f"ln{i}.b"] = layernorm_backward(dh, ln_cache)
        dx = np.add(dx, dh, out=dh)  # the residual path carries dout straight through
    return dx, dmem, grads
