"""The Bayes-optimal floor of a synthetic corpus whose generator knows p(token | full history).

Generators such as `synthetic:dependency` put `bayes_floor = {split: {perplexity, bits_per_token, tokens}}`
(and the process's `entropy_rate_bits`) into their info. No model can beat the floor in expectation, so
a model's excess bits per token = its cross-entropy − the floor's is how far it is from perfect.
"""

from __future__ import annotations

from typing import Any

from lmbench.errors import LmbenchError
from lmbench.text.sources import CorpusSet, TextSplits, read_splits


def _info(source: str | TextSplits | CorpusSet) -> tuple[str, dict[str, Any]]:
    if isinstance(source, str):
        source = read_splits(source)
    return source.name, source.info


def floor_info(source: str | TextSplits | CorpusSet, split: str = "test") -> dict[str, float]:
    """{perplexity, bits_per_token, tokens} of the Bayes-optimal model on one split."""
    name, info = _info(source)
    floors = info.get("bayes_floor")
    if not floors:
        raise LmbenchError(f"corpus {name!r} has no known entropy floor "
                           "(only synthetic corpora with an exact generator, e.g. synthetic:dependency, have one)")
    if split not in floors:
        raise LmbenchError(f"corpus {name!r} has no {split} split with a floor; splits: {', '.join(floors)}")
    return floors[split]


def bayes_floor(source: str | TextSplits | CorpusSet, split: str = "test") -> float:
    """The Bayes-optimal perplexity of a split: the perplexity of the generator's own probabilities."""
    return float(floor_info(source, split)["perplexity"])


def excess_bits(model_bits_per_token: float, source: str | TextSplits | CorpusSet, split: str = "test") -> float:
    """A model's cross-entropy (bits/token) minus the floor's, on the same split."""
    return float(model_bits_per_token - floor_info(source, split)["bits_per_token"])


def floor_fields(corpora: CorpusSet, split: str, cross_entropy_bits: float) -> dict[str, float]:
    """Fields for an evaluation report; empty when the corpus has no floor or was tokenized differently.

    The floor counts the generator's whitespace tokens; it applies only when the encoded split predicts
    exactly as many tokens (another tokenizer would change what a "token" is).
    """
    floors = corpora.info.get("bayes_floor") or {}
    floor = floors.get(split)
    if floor is None or floor.get("tokens") != corpora.get(split).n_predicted:
        return {}
    return {
        "bayes_floor_perplexity": float(floor["perplexity"]),
        "bayes_floor_bits": float(floor["bits_per_token"]),
        "excess_bits_per_token": float(cross_entropy_bits - floor["bits_per_token"]),
    }
