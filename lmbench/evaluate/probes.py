"""Long-range probes through the shared model interface: distance items and BLiMP-style minimal pairs.

Distance probe: an item is  [filler prefix] T_k [d−1 filler words]  and the right next token is the closer
C_k of trigger T_k, d positions back. The model is right when it gives C_k a higher probability than every
other closer (ties count as wrong); chance is 1/M for M pairs. Scores come from `next_logprobs` when the
model declares `next_token`, otherwise from the per-token log-probabilities of the harness.

Minimal pairs: JSONL lines with `sentence_good`, `sentence_bad` and any grouping fields; the model is right
when the good sentence has the higher total log-probability (its words and `</s>`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import checked_logprobs
from lmbench.models.base import LanguageModel, Model
from lmbench.resources import check_memory
from lmbench.text.corpus import Corpus
from lmbench.text.files import read_text
from lmbench.text.synthetic.dependency import DependencyProcess
from lmbench.text.vocab import EOS_ID, UNK_ID

DEFAULT_DISTANCES = (1, 2, 4, 8, 16, 32, 64, 128)
_CHUNK = 512  # contexts per next_logprobs call (bounds memory for long contexts)


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def require_scorer(model: Model) -> LanguageModel:
    """The model as a language model that can score continuations; a clear error naming what it lacks."""
    if not isinstance(model, LanguageModel):
        raise LmbenchError(f"model {model.name} cannot score candidate continuations: it lacks the capability "
                           "'next_token' and is not a language model (no per-token logprobs)")
    return model


def candidate_logprobs(model: Model, contexts: Sequence[np.ndarray], candidates: np.ndarray) -> np.ndarray:
    """(N, C) natural-log p(candidate | `<s>` + context) for each context and candidate id."""
    lm = require_scorer(model)
    candidates = np.asarray(candidates, dtype=np.int64)
    if lm.has("next_token"):
        rows = [lm.next_logprobs(contexts[i: i + _CHUNK])[:, candidates] for i in range(0, len(contexts), _CHUNK)]
        return np.concatenate(rows) if rows else np.zeros((0, candidates.size))
    # Without next_token: score "context + candidate" sentences and read the candidate's own log-probability.
    sentences = [np.append(c, cand) for c in contexts for cand in candidates]
    corpus = Corpus.from_ids(sentences, lm.vocab)
    lp = checked_logprobs(lm, corpus)
    # Position of each sentence's last word in the predicted stream (words + one </s> per sentence).
    last = corpus.offsets[1:] + np.arange(corpus.n_sentences) - 1
    return lp[last].reshape(len(contexts), candidates.size)


def sentence_scores(model: Model, sentences: Sequence[np.ndarray]) -> np.ndarray:
    """Total natural-log probability of each sentence (words and `</s>`), each scored from `<s>` alone."""
    lm = require_scorer(model)
    if not lm.has("next_token"):
        corpus = Corpus.from_ids(list(sentences), lm.vocab)
        lp = checked_logprobs(lm, corpus)
        starts = corpus.offsets[:-1] + np.arange(corpus.n_sentences)
        return np.add.reduceat(lp, starts) if lp.size else np.zeros(0)
    # One context per prefix; the sentence's targets are its words then </s>.
    contexts, targets, owner = [], [], []
    for i, s in enumerate(sentences):
        s = np.asarray(s, dtype=np.int64)
        for t in range(s.size + 1):
            contexts.append(s[:t])
            targets.append(s[t] if t < s.size else EOS_ID)
            owner.append(i)
    targets_a, owner_a = np.asarray(targets), np.asarray(owner)
    lp = np.empty(len(contexts))
    for i in range(0, len(contexts), _CHUNK):
        rows = lm.next_logprobs(contexts[i: i + _CHUNK])
        lp[i: i + _CHUNK] = rows[np.arange(len(rows)), targets_a[i: i + _CHUNK]]
    return np.bincount(owner_a, weights=lp, minlength=len(sentences)) if lp.size else np.zeros(len(sentences))


# --- distance probe ----------------------------------------------------------------------------------------
def parse_distances(text: str | Sequence[int]) -> list[int]:
    """'1,2,4' → [1, 2, 4]; every distance must be a positive integer."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for part in parts:
        try:
            d = int(str(part).strip())
        except ValueError:
            raise LmbenchError(f"distance {part!r} is not an integer; give e.g. --distances 1,2,4,8") from None
        if d <= 0:
            raise LmbenchError(f"distance {d} must be ≥ 1 (the closer comes d positions after its trigger)")
        out.append(d)
    if not out:
        raise LmbenchError("no distances given; e.g. --distances 1,2,4,8")
    return out


def distance_items(process: DependencyProcess, d: int, n_items: int, rng: np.random.Generator,
                   max_prefix: int = 3) -> tuple[list[list[str]], np.ndarray]:
    """n_items contexts `[prefix] T_k [d−1 filler]` (as tokens) and the index k of each right closer."""
    M = len(process.triggers)
    k = np.arange(n_items) % M  # balanced over the pairs
    prefix_len = rng.integers(0, max_prefix + 1, n_items)
    items: list[list[str]] = [[] for _ in range(n_items)]
    words = process.tokens
    for a in np.unique(prefix_len):
        rows = np.flatnonzero(prefix_len == a)
        prefix, beta = process.sample_filler(rng, rows.size, int(a))
        gap, _ = process.sample_filler(rng, rows.size, d - 1, beta)  # triggers leave the class state unchanged
        for r, pre, mid in zip(rows, prefix.tolist(), gap.tolist()):
            items[r] = [*(words[i] for i in pre), process.triggers[k[r]], *(words[i] for i in mid)]
    return items, k


def check_distance_memory(distances: Sequence[int], n_items: int) -> None:
    """Refuse distances whose items cannot fit in memory (each token of an item costs ~64 bytes as it is built)."""
    longest = max(distances)
    check_memory(64 * n_items * (longest + 4), f"the distance probe ({n_items:,} items at distance {longest:,})")


def distance_probe(model: Model, process: DependencyProcess, distances: Sequence[int] = DEFAULT_DISTANCES,
                   n_items: int = 200, seed: int = 0) -> dict[str, Any]:
    """Accuracy per distance (with a 95% Wilson interval) of ranking the right closer first."""
    lm = require_scorer(model)
    distances = parse_distances(distances)
    if n_items < 1:
        raise LmbenchError(f"--items must be ≥ 1, got {n_items}")
    check_distance_memory(distances, n_items)
    vocab = lm.require_fitted()
    missing = [t for t in (*process.triggers, *process.closers) if t not in vocab]
    if missing:
        raise LmbenchError(f"model {lm.name}'s vocabulary lacks the probe tokens {', '.join(missing)}; "
                           "train it on the matching synthetic:dependency corpus")
    closers = vocab.encode(list(process.closers)).astype(np.int64)
    rng = np.random.default_rng(seed)
    rows = []
    for d in distances:
        items, k = distance_items(process, d, n_items, rng)
        contexts = [vocab.encode(item) for item in items]
        scores = candidate_logprobs(lm, contexts, closers)
        right = scores[np.arange(n_items), k]
        others = scores.copy()
        others[np.arange(n_items), k] = -np.inf
        correct = int((right > others.max(axis=1)).sum())  # a tie is not a win
        lo, hi = wilson_interval(correct, n_items)
        rows.append({"distance": d, "items": n_items, "correct": correct, "accuracy": correct / n_items,
                     "ci95": [lo, hi], "unknown_tokens": int(sum((c == UNK_ID).sum() for c in contexts))})
    return {"model": lm.name, "probe": "distance", "pairs": len(process.triggers),
            "chance": 1.0 / len(process.triggers), "seed": seed, "distances": rows}


# --- minimal pairs -------------------------------------------------------------------------------------------
REQUIRED_FIELDS = ("sentence_good", "sentence_bad")


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Read a BLiMP-format JSONL file; a clear error naming the line for anything malformed."""
    path = Path(path)
    if not path.exists():
        raise LmbenchError(f"minimal-pairs file not found: {path}")
    text = read_text(path, "minimal-pairs file")
    pairs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LmbenchError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise LmbenchError(f"{path}:{lineno}: expected a JSON object with {', '.join(REQUIRED_FIELDS)}")
        missing = [f for f in REQUIRED_FIELDS if not isinstance(obj.get(f), str) or not obj[f].strip()]
        if missing:
            raise LmbenchError(f"{path}:{lineno}: missing or empty field(s) {', '.join(missing)} "
                               f"(each line needs {', '.join(REQUIRED_FIELDS)})")
        pairs.append(obj)
    if not pairs:
        raise LmbenchError(f"{path} holds no minimal pairs")
    return pairs


def _group_value(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)


def pairs_probe(model: Model, pairs: Sequence[dict[str, Any]], group_by: Sequence[str] = ()) -> dict[str, Any]:
    """Share of pairs whose good sentence scores higher, overall and per value of each grouping field."""
    lm = require_scorer(model)
    vocab = lm.require_fitted()
    tokenizer = lm.tokenizer
    if tokenizer is None:
        raise LmbenchError(f"model {lm.name} records no tokenizer; it cannot encode the sentences")
    for field in group_by:
        if not any(field in p for p in pairs):
            raise LmbenchError(f"no pair has the field {field!r} to group by")
    good = [vocab.encode(tokenizer(p["sentence_good"])) for p in pairs]
    bad = [vocab.encode(tokenizer(p["sentence_bad"])) for p in pairs]
    scores = sentence_scores(lm, good + bad)
    s_good, s_bad = scores[: len(pairs)], scores[len(pairs):]
    right = s_good > s_bad
    unknown = int(sum((s == UNK_ID).sum() for s in good + bad))

    def summary(mask: np.ndarray) -> dict[str, Any]:
        n, k = int(mask.sum()), int(right[mask].sum())
        lo, hi = wilson_interval(k, n)
        return {"pairs": n, "correct": k, "accuracy": k / n if n else float("nan"), "ci95": [lo, hi]}

    groups: dict[str, list[dict[str, Any]]] = {}
    for field in group_by:
        values = [_group_value(p.get(field)) for p in pairs]
        table = []
        for v in sorted(set(values), key=lambda x: (str(type(x)), x)):
            mask = np.array([x == v for x in values])
            table.append({"value": v, **summary(mask)})
        groups[field] = table
    return {"model": lm.name, "probe": "pairs", "chance": 0.5, **summary(np.ones(len(pairs), dtype=bool)),
            "unknown_tokens": unknown, "groups": groups,
            "mean_logprob_difference": float(np.mean(s_good - s_bad))}
