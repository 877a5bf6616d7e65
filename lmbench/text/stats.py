"""Corpus statistics for `lmbench corpus info`: sizes, types, OOV rates, type–token growth."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from lmbench.text.splits import SPLITS, TextSplits
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import Vocabulary


def type_token_growth(tokens: list[str], points: int = 10) -> list[dict[str, int]]:
    """Distinct types seen after each tenth of the token stream (Heaps' law made visible)."""
    if not tokens:
        return []
    ids = Vocabulary.build([tokens]).encode(tokens)
    _, first_seen = np.unique(ids, return_index=True)
    first_seen.sort()
    cuts = np.unique(np.linspace(len(tokens) / points, len(tokens), points).round().astype(np.int64))
    types = np.searchsorted(first_seen, cuts, side="left")
    return [{"tokens": int(c), "types": int(t)} for c, t in zip(cuts, types)]


def corpus_info(splits: TextSplits, tokenizer: Tokenizer, top: int = 10) -> dict[str, Any]:
    """Per-split sentences, tokens, types and OOV rate against the training vocabulary."""
    tokenizer = tokenizer.trained_on(splits.train)  # subword models learn from the training split only
    tokenized = {s: None if splits.get(s) is None else [t for t in map(tokenizer, splits.get(s)) if t] for s in SPLITS}
    train_vocab = Counter(t for sent in tokenized["train"] for t in sent)
    info: dict[str, Any] = {"corpus": splits.name, "tokenizer": tokenizer.to_json(), "splits": {}}
    for split, sentences in tokenized.items():
        if sentences is None:
            continue
        flat = [t for s in sentences for t in s]
        counts = Counter(flat)
        oov = sum(c for t, c in counts.items() if t not in train_vocab)
        info["splits"][split] = {
            "sentences": len(sentences),
            "tokens": len(flat),
            "predicted_tokens": len(flat) + len(sentences),
            "types": len(counts),
            "oov_tokens": oov,
            "oov_rate": oov / len(flat) if flat else 0.0,
            "singleton_types": sum(1 for c in counts.values() if c == 1),
            "mean_sentence_length": len(flat) / len(sentences) if sentences else 0.0,
            "most_common": [[t, c] for t, c in counts.most_common(top)],
        }
    info["type_token_growth"] = type_token_growth([t for s in tokenized["train"] for t in s])
    info.update({k: v for k, v in splits.info.items() if k not in info})
    return info
