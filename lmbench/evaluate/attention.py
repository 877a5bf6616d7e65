"""Where an attention model looks when it predicts the closer of a long-range dependency.

An item of the distance probe is `[prefix] T_k [d−1 filler]`: the right next token is the closer of
trigger T_k, which stands d tokens before it. The model reads `<s>` + item; at the last position (the query
that predicts the closer) each layer and head spreads one unit of attention over the earlier positions.
`closer_attention` averages that last attention row over items, by distance back from the closer
(distance d = the trigger; the item's last token is distance 1), and reports the weight on the trigger
beside the uniform share 1/(positions seen). A model that solved the dependency through attention puts far
more than the uniform share on the trigger in some head; a trigger outside the window gets 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.evaluate.probes import distance_items
from lmbench.models.base import Model
from lmbench.text.synthetic.dependency import DependencyProcess
from lmbench.text.tokenize import BOS


def require_attention(model: Model) -> Any:
    """The model, if it exposes attention weights (capability 'attention'); otherwise a clear error."""
    if not (model.has("attention") and callable(getattr(model, "attention_weights", None))):
        raise LmbenchError(f"model {model.name} has no attention weights to show (capability 'attention', which "
                           "the transformer has)")
    return model


def closer_attention(model: Model, process: DependencyProcess, distance: int, n_items: int, seed: int = 0
                     ) -> dict[str, Any]:
    """Mean last-row attention by distance back from the closer, per layer and head, over n_items probe items."""
    lm = require_attention(model)
    if distance < 1 or n_items < 1:
        raise LmbenchError(f"attention map: distance and items must be ≥ 1, got {distance} and {n_items}")
    vocab = lm.require_fitted()
    items, _ = distance_items(process, distance, n_items, np.random.default_rng(seed))
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    uniform = 0.0
    example: dict[str, Any] = {}
    for i, item in enumerate(items):
        weights = np.stack([w[:, -1, :] for w in lm.attention_weights(vocab.encode(item))])  # (L, H, m)
        m = weights.shape[-1]
        by_distance = weights[..., ::-1]  # index j ↔ distance j + 1 back from the closer
        if sums is None:
            size = distance + 5  # the longest item: 3 prefix tokens, the trigger, d − 1 fillers, <s>
            sums = np.zeros((*weights.shape[:2], size))
            counts = np.zeros(size)
        assert counts is not None
        sums[..., :m] += by_distance
        counts[:m] += 1
        uniform += 1.0 / m
        if i == 0:
            window = [BOS, *item][-m:]
            example = {"tokens": window, "weights": weights.tolist(), "trigger_index": m - distance
                       if distance <= m else None}
    assert sums is not None and counts is not None
    n = int(np.flatnonzero(counts)[-1]) + 1  # positions seen: distances 1 … n (every shorter item is a prefix)
    mean = sums[..., :n] / counts[:n]
    # The trigger is inside the window only when d ≤ the positions an item keeps; otherwise it gets nothing.
    trigger = mean[..., distance - 1] if distance <= n else np.zeros(mean.shape[:2])
    return {"distance": distance, "items": n_items, "mean": mean, "trigger": trigger, "uniform": uniform / n_items,
            "example": example}
