"""Long-range probes through the shared model interface: distance items and BLiMP-style minimal pairs.

Distance probe: an item is  [filler prefix] T_k [d−1 filler words]  and the right next token is the closer
C_k of trigger T_k, d positions back. The model is right when it gives C_k a higher probability than every
other closer (ties count as wrong); chance is 1/M for M pairs. Scores come from `next_logprobs` when the
model declares `next_token`, otherwise from the per-token log-probabilities of the harness. A model that
reads a bounded window (a Transformer's `context`: its `context_window`) sees the trigger only when d ≤ the
window; each distance says whether it is inside, since beyond it the model can only guess (chance).

Minimal pairs: JSONL lines with `sentence_good`, `sentence_bad` and any grouping fields; the model is right
when the good sentence has the higher total log-probability (its words and `</s>`); equal scores (two
zero-probability sentences, say) are a tie, counted on their own, neither right nor wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError, warn
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


def history_window(model: Model) -> int | None:
    """How many of the latest tokens a model reads to predict the next one (its `context_window`); None: unbounded."""
    window = getattr(model, "context_window", None)
    return None if window is None else int(window)


def check_distance_memory(distances: Sequence[int], n_items: int) -> None:
    """Refuse distances whose items cannot fit in memory (each token of an item costs ~64 bytes as it is built)."""
    longest = max(distances)
    check_memory(64 * n_items * (longest + 4), f"the distance probe ({n_items:,} items at distance {longest:,})")


def check_unknown(model_name: str, what: str, items: Sequence[Sequence[str]], known: Any) -> dict[str, Any]:
    """How many probe items hold a token the model's vocabulary lacks (it would read them as `<unk>`): a
    warning line on stderr with the share when some do, an error when every item does (the probe would
    measure nothing). Returns {"items_with_unknown": k, "unknown_examples": [...]}."""
    unknown = [[t for t in item if t not in known] for item in items]
    affected = sum(1 for u in unknown if u)
    examples = list(dict.fromkeys(t for u in unknown for t in u))[:8]
    if affected:
        shown = ", ".join(examples)
        if affected == len(items):
            raise LmbenchError(f"every {what} item holds tokens unknown to model {model_name} (e.g. {shown}): "
                               "it would read them as <unk> and measure nothing; probe a model trained on the "
                               "probe's corpus")
        warn(f"{affected} of {len(items)} {what} items ({affected / len(items):.1%}) hold tokens unknown to model "
             f"{model_name} (e.g. {shown}), read as <unk>: their scores mean less")
    return {"items_with_unknown": affected, "unknown_examples": examples}


def distance_probe(model: Model, process: DependencyProcess, distances: Sequence[int] = DEFAULT_DISTANCES,
                   n_items: int = 200, seed: int = 0) -> dict[str, Any]:
    """Accuracy per distance (with a 95% Wilson interval) of ranking the right closer first.

    "window" is the model's history window (None: unbounded) and each distance's "inside_window" whether the
    trigger lies in it (d ≤ window), so that the closer can be predicted at all.

    A distance beyond the generator's largest trigger–closer distance is not generated (the corpus never holds
    such a dependency): it is listed under "not_generated" with the reason, and warned about on stderr."""
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
    reason = (f"the corpus's generator never puts a closer more than {process.max_distance} tokens after its "
              f"trigger (max_distance={process.max_distance})")
    not_generated = [{"distance": d, "reason": reason} for d in distances if d > process.max_distance]
    distances = [d for d in distances if d <= process.max_distance]
    if not distances:
        raise LmbenchError(f"no requested distance can be generated: {reason}; ask for distances ≤ "
                           f"{process.max_distance} or probe with a corpus spec of a larger max_distance")
    if not_generated:
        warn(f"distance probe: distance(s) {', '.join(str(r['distance']) for r in not_generated)} not measured: "
             f"{reason}")
    closers = vocab.encode(list(process.closers)).astype(np.int64)
    rng = np.random.default_rng(seed)
    generated = [(d, *distance_items(process, d, n_items, rng)) for d in distances]
    unknown = check_unknown(lm.name, "distance-probe", [item for _, items, _ in generated for item in items],
                            vocab.index)
    window = history_window(lm)
    rows = []
    for d, items, k in generated:
        contexts = [vocab.encode(item) for item in items]
        scores = candidate_logprobs(lm, contexts, closers)
        right = scores[np.arange(n_items), k]
        others = scores.copy()
        others[np.arange(n_items), k] = -np.inf
        correct = int((right > others.max(axis=1)).sum())  # a tie is not a win
        lo, hi = wilson_interval(correct, n_items)
        rows.append({"distance": d, "items": n_items, "correct": correct, "accuracy": correct / n_items,
                     "ci95": [lo, hi], "unknown_tokens": int(sum((c == UNK_ID).sum() for c in contexts)),
                     "inside_window": None if window is None else d <= window})
    return {"model": lm.name, "probe": "distance", "pairs": len(process.triggers),
            "chance": 1.0 / len(process.triggers), "seed": seed, "window": window, "distances": rows,
            "not_generated": not_generated, **unknown}


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
    good_tokens = [tokenizer(p["sentence_good"]) for p in pairs]
    bad_tokens = [tokenizer(p["sentence_bad"]) for p in pairs]
    unknown_items = check_unknown(lm.name, "minimal-pair", [g + b for g, b in zip(good_tokens, bad_tokens)],
                                  vocab.index)
    good = [vocab.encode(t) for t in good_tokens]
    bad = [vocab.encode(t) for t in bad_tokens]
    scores = sentence_scores(lm, good + bad)
    s_good, s_bad = scores[: len(pairs)], scores[len(pairs):]
    right = s_good > s_bad
    tie = s_good == s_bad  # e.g. both sentences impossible (−∞) for an MLE n-gram: undecided, not a failure
    unknown = int(sum((s == UNK_ID).sum() for s in good + bad))
    with np.errstate(invalid="ignore"):  # two impossible sentences: −∞ − −∞ is nan, the mean is then nan
        difference = float(np.mean(s_good - s_bad))

    def summary(mask: np.ndarray) -> dict[str, Any]:
        n, k, t = int(mask.sum()), int(right[mask].sum()), int(tie[mask].sum())
        lo, hi = wilson_interval(k, n)
        return {"pairs": n, "correct": k, "ties": t, "wrong": n - k - t, "accuracy": k / n if n else float("nan"),
                "tie": t / n if n else float("nan"), "ci95": [lo, hi]}

    groups: dict[str, list[dict[str, Any]]] = {}
    for field in group_by:
        values = [_group_value(p.get(field)) for p in pairs]
        table = []
        for v in sorted(set(values), key=lambda x: (str(type(x)), x)):
            mask = np.array([x == v for x in values])
            table.append({"value": v, **summary(mask)})
        groups[field] = table
    return {"model": lm.name, "probe": "pairs", "chance": 0.5, **summary(np.ones(len(pairs), dtype=bool)),
            "unknown_tokens": unknown, **unknown_items, "groups": groups,
            "mean_logprob_difference": difference}
