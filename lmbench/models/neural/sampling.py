"""Reading and writing text with a recurrent LM: next-token distributions (for probes) and sampling.

A mixin of `RecurrentLM`: it uses the model's weights, cells and decoder, never trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.neural import layers
from lmbench.text.vocab import BOS_ID, EOS_ID


class RecurrentSampling:
    """The `next_token` and `sample` capabilities of a recurrent LM."""

    def _batch_contexts(self, contexts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """`<s>` + each context, right-padded into (L, N); and each context's last position."""
        lengths = np.array([len(c) + 1 for c in contexts], dtype=np.int64)
        x = np.zeros((int(lengths.max()), len(contexts)), dtype=np.int64)
        x[0] = BOS_ID
        for j, c in enumerate(contexts):  # one copy per context, not per token
            x[1:lengths[j], j] = np.asarray(c, dtype=np.int64)
        return x, lengths - 1

    def next_logprobs(self, contexts: Sequence[np.ndarray]) -> np.ndarray:
        """(N, V) log-probabilities of the next token after `<s>` + each context (sentence ids so far)."""
        vocab = self.require_fitted()
        if len(contexts) == 0:
            return np.zeros((0, len(vocab)))
        x, last = self._batch_contexts(contexts)
        if x.size and (x.min() < 0 or x.max() >= len(vocab)):
            raise LmbenchError(f"model {self.name}: context ids must be in [0, {len(vocab)})")
        L, N = x.shape
        h = layers.embedding_forward(x, self.weights["emb"])[0]
        state = self.zero_state(N)
        for cell, s in zip(self.cells, state):
            h = cell.forward(h, s)[0]
        h_last = h[last, np.arange(N)]
        logits = (h_last @ self._decoder_weight() + self.weights["dec.b"]).astype(np.float64)
        logits[:, BOS_ID] = -np.inf
        return layers.log_softmax(logits)

    def sample(self, prefix: Sequence[int], n_tokens: int, temperature: float = 1.0,
               rng: np.random.Generator | None = None) -> list[int]:
        """Generate n_tokens ids after `<s>` + prefix; after `</s>` a new sentence starts with `<s>`."""
        self.require_fitted()
        if temperature <= 0:
            raise LmbenchError(f"temperature must be > 0, got {temperature}")
        rng = rng or np.random.default_rng()
        state = self.zero_state(1)
        inputs = [BOS_ID, *prefix]
        out: list[int] = []
        W, b = self._decoder_weight(), self.weights["dec.b"]
        while len(out) < n_tokens:
            x = np.asarray(inputs, dtype=np.int64)[:, None]
            h = layers.embedding_forward(x, self.weights["emb"])[0]
            new_state = []
            for cell, s in zip(self.cells, state):
                h, final, _ = cell.forward(h, s)
                new_state.append(final)
            state = new_state
            logits = (h[-1, 0] @ W + b).astype(np.float64) / temperature
            logits[BOS_ID] = -np.inf
            probs = np.exp(logits - logits.max())
            token = int(rng.choice(probs.size, p=probs / probs.sum()))
            out.append(token)
            inputs = [BOS_ID if token == EOS_ID else token]
        return out
