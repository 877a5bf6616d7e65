"""A stack of layers over embedded inputs: embeddings → dropout → N blocks → final LayerNorm (pre-LN only).

    h, cache          = stack_forward(ids, w, spec, rng, train, memory)      ids (B, T) → h (B, T, D)
    dE, dmem, grads   = stack_backward(dh, cache)                              gradients named as in `w`

`w` is the model's flat weight dict; the stack reads "{prefix}emb" (V, D), "{prefix}pos" (context, D; a
fixed sinusoidal table when positions are sinusoidal), "{prefix}{layer}.{name}" per layer and, with pre-LN,
"{prefix}ln_f.g"/"{prefix}ln_f.b".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.neural import parallel
from lmbench.models.neural.layers import dropout_backward, dropout_forward
from lmbench.models.transformer.block import BlockConfig, block_backward, block_forward, block_shapes, init_block
from lmbench.models.transformer.embedding import embed_backward, embed_forward, sinusoidal_positions
from lmbench.models.transformer.layernorm import layernorm_backward, layernorm_forward


@dataclass(frozen=True)
class StackSpec:
    """One encoder or decoder: its prefix in the weight dict, layer shape, depth, positions and vocabulary."""

    prefix: str
    block: BlockConfig
    layers: int
    context: int
    vocab: int
    positions: str = "learned"


def init_stack(spec: StackSpec, rng: np.random.Generator, dtype: np.dtype) -> dict[str, np.ndarray]:
    """Fresh weights of one stack (GPT-2 initialisation; N(0, 0.02) embeddings)."""
    D, pre = spec.block.d_model, spec.block.norm == "pre"
    w = {f"{spec.prefix}emb": rng.normal(0.0, 0.02, (spec.vocab, D)).astype(dtype)}
    if spec.positions == "learned":
        w[f"{spec.prefix}pos"] = rng.normal(0.0, 0.02, (spec.context, D)).astype(dtype)
    for layer in range(spec.layers):
        w |= {f"{spec.prefix}{layer}.{k}": v for k, v in init_block(spec.block, rng, dtype, spec.layers).items()}
    if pre:
        w[f"{spec.prefix}ln_f.g"] = np.ones(D, dtype=dtype)
        w[f"{spec.prefix}ln_f.b"] = np.zeros(D, dtype=dtype)
    return w


def stack_weight_names(spec: StackSpec) -> list[str]:
    """Every weight name the stack owns (for checks)."""
    names = [f"{spec.prefix}emb"] + ([f"{spec.prefix}pos"] if spec.positions == "learned" else [])
    for layer in range(spec.layers):
        names += [f"{spec.prefix}{layer}.{k}" for k in block_shapes(spec.block)]
    if spec.block.norm == "pre":
        names += [f"{spec.prefix}ln_f.g", f"{spec.prefix}ln_f.b"]
    return names


_SINUSOID_CACHE: dict[tuple[int, int, str], np.ndarray] = {}


def positions_table(spec: StackSpec, w: dict[str, np.ndarray]) -> np.ndarray:
    """The (context, D) position table: learned weights or the fixed sinusoids."""
    if spec.positions == "learned":
        return w[f"{spec.prefix}pos"]
    dtype = w[f"{spec.prefix}emb"].dtype
    key = (spec.context, spec.block.d_model, dtype.str)
    if key not in _SINUSOID_CACHE:
        _SINUSOID_CACHE[key] = sinusoidal_positions(spec.context, spec.block.d_model, dtype)
    return _SINUSOID_CACHE[key]


def layer_weights(spec: StackSpec, w: dict[str, np.ndarray], layer: int) -> dict[str, np.ndarray]:
    """One layer's weights without the prefix."""
    head = f"{spec.prefix}{layer}."
    return {k[len(head):]: v for k, v in w.items() if k.startswith(head)}


def stack_forward(ids: np.ndarray, w: dict[str, np.ndarray], spec: StackSpec, rng: np.random.Generator | None = None,
                  train: bool = False, memory: np.ndarray | None = None, offset: int = 0,
                  pasts: list[tuple[np.ndarray, np.ndarray]] | None = None,
                  cross_kvs: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[np.ndarray, Any]:
    """Top hidden states (B, T, D) of ids (B, T) at positions offset…offset+T−1.

    `pasts` (cached self-attention K, V per layer) and `cross_kvs` (the memory's K, V per layer) serve
    incremental decoding; offset + T must not exceed the context.
    """
    parallel.retain_freed_memory()
    if offset + ids.shape[1] > spec.context:
        raise LmbenchError(f"{offset + ids.shape[1]} positions exceed the window context={spec.context}")
    x, emb_cache = embed_forward(ids, w[f"{spec.prefix}emb"], positions_table(spec, w), offset,
                                 spec.positions == "learned")
    drop = spec.block.dropout if train else 0.0
    x, drop_cache = dropout_forward(x, drop, rng, train) if drop > 0 else (x, None)
    caches = []
    for layer in range(spec.layers):
        x, c = block_forward(x, layer_weights(spec, w, layer), spec.block, rng, train, memory,
                             pasts[layer] if pasts else None, cross_kvs[layer] if cross_kvs else None)
        caches.append(c)
    ln_cache = None
    if spec.block.norm == "pre":
        x, ln_cache = layernorm_forward(x, w[f"{spec.prefix}ln_f.g"], w[f"{spec.prefix}ln_f.b"])
    return x, (emb_cache, drop_cache, caches, ln_cache)


def stack_backward(dh: np.ndarray, cache: Any, spec: StackSpec, return_dx: bool = False) -> Any:
    """(grads, dmemory) of `stack_forward`; with return_dx also ∂/∂(input of each layer), (B, T, D) each."""
    emb_cache, drop_cache, caches, ln_cache = cache
    P = spec.prefix
    grads: dict[str, np.ndarray] = {}
    if ln_cache is not None:
        dh, grads[f"{P}ln_f.g"], grads[f"{P}ln_f.b"] = layernorm_backward(dh, ln_cache)
    dmem = None
    dxs = []
    for layer in range(spec.layers - 1, -1, -1):
        dh, dm, g = block_backward(dh, caches[layer])
        grads |= {f"{P}{layer}.{k}": v for k, v in g.items()}
        if dm is not None:
            dmem = dm if dmem is None else dmem + dm
        dxs.append(dh)
    dh = dropout_backward(dh, drop_cache)
    dE, dP = embed_backward(dh, emb_cache)
    grads[f"{P}emb"] = dE
    if dP is not None:
        grads[f"{P}pos"] = dP
    return (grads, dmem, dxs[::-1]) if return_dx else (grads, dmem)
