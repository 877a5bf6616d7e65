"""Gradient-flow diagnostics of a recurrent LM: hidden states and ∂L_t/∂h_j by layer.

A mixin of `RecurrentLM` (the `hidden_states` capability), used by lmbench.evaluate.gradflow.
"""

from __future__ import annotations

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.neural import layers
from lmbench.text.vocab import BOS_ID, EOS_ID


class RecurrentDiagnostics:
    """The `hidden_states` capability: every layer's h_t, and ∂L_t/∂h_j from the cells' backward pass."""

    def hidden_states(self, ids: np.ndarray) -> list[np.ndarray]:
        """Hidden states of every layer, (len(ids)+1, H) each, while reading `<s>` + ids (no dropout)."""
        self.require_fitted()
        x = np.concatenate([[BOS_ID], np.asarray(ids, dtype=np.int64)])[:, None]
        h = layers.embedding_forward(x, self.weights["emb"])[0]
        out = []
        for cell, s in zip(self.cells, self.zero_state(1)):
            h = cell.forward(h, s)[0]
            out.append(h[:, 0].copy())
        return out

    def hidden_state_grads(self, ids: np.ndarray, t: int) -> list[np.ndarray]:
        """Per layer, (t+1, H): ∂L_t/∂h_j for j = 0…t, where L_t = −log p(token t+1 | `<s>` + ids[:t]).

        The targets are ids + `</s>`, so t ranges over 0 … len(ids); ‖row t−k‖ is the gradient norm k steps
        back, the quantity of the vanishing-gradient diagnostic.
        """
        self.require_fitted()
        ids = np.asarray(ids, dtype=np.int64)
        if not 0 <= t <= ids.size:
            raise LmbenchError(f"step t={t} is outside 0…{ids.size}")
        x = np.concatenate([[BOS_ID], ids[:t]])[:, None]
        y = np.concatenate([ids, [EOS_ID]])[: t + 1][:, None]
        logits, _, cache = self.forward(x, self.zero_state(1), train=False)
        _, dlogits, _ = layers.softmax_cross_entropy(logits, y.reshape(-1), inplace=True, scale=1.0)
        dlogits[:-1] = 0.0  # only the loss at step t
        _, dhs = self.backward(dlogits, cache, return_dh=True)
        return [dh[:, 0] for dh in dhs]
