"""Translation metrics: corpus BLEU, exact match, and BLEU by source-length bucket.

BLEU is NLTK's `corpus_bleu` (4-gram, uniform weights, smoothing method 1 so a short sentence with no
4-gram match does not zero the corpus score) on the tokens the model works with, reported 0–100. With
sacreBLEU installed and `backend="sacrebleu"`, its `corpus_bleu` is used on the space-joined tokens with
tokenize="none" (same tokens, sacreBLEU's own smoothing), so the two differ only in smoothing details.

NLTK quirk worth knowing when reading BLEU of short sentences: a hypothesis with no n-grams of some order
(e.g. a 3-word sentence has no 4-gram) still adds 1 to that order's denominator, so a corpus of perfect
short translations scores below 100 (two identical 2-word sentences: 31.6). sacreBLEU does not do this.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError

Tokens = Sequence[str]
DEFAULT_EDGES = (5, 10, 15, 20, 25, 30)  # source-length buckets: 1–5, 6–10, …, 26–30, 31+


def sacrebleu_available() -> bool:
    """Whether the sacreBLEU package can be imported."""
    try:
        import sacrebleu  # noqa: F401
    except ImportError:
        return False
    return True


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens], backend: str = "nltk") -> float:
    """Corpus BLEU (0–100) of tokenized hypotheses against one tokenized reference each."""
    if len(hypotheses) != len(references):
        raise LmbenchError(f"BLEU: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return float("nan")
    if backend == "sacrebleu":
        import sacrebleu  # optional package

        hyp = [" ".join(h) for h in hypotheses]
        ref = [" ".join(r) for r in references]
        return float(sacrebleu.corpus_bleu(hyp, [ref], tokenize="none").score)
    if backend != "nltk":
        raise LmbenchError(f"unknown BLEU backend {backend!r}; choose nltk or sacrebleu")
    # nltk takes seconds to import; only this backend needs it.
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns about empty n-gram overlaps; smoothing handles them
        score = nltk_corpus_bleu([[list(r)] for r in references], [list(h) for h in hypotheses],
                                 smoothing_function=SmoothingFunction().method1)
    return 100.0 * float(score)


def exact_match(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """Share of hypotheses identical to their reference, token for token."""
    if not hypotheses:
        return float("nan")
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / len(hypotheses)


def length_buckets(lengths: np.ndarray, edges: Sequence[int] = DEFAULT_EDGES) -> list[tuple[str, np.ndarray]]:
    """(label, indices) of the sentences whose length falls in each bucket; empty buckets are left out."""
    lengths = np.asarray(lengths)
    bounds = [0, *edges]
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        idx = np.flatnonzero((lengths > lo) & (lengths <= hi))
        if idx.size:
            out.append((f"{lo + 1}-{hi}", idx))
    idx = np.flatnonzero(lengths > bounds[-1])
    if idx.size:
        out.append((f"{bounds[-1] + 1}+", idx))
    return out


def bleu_by_length(hypotheses: Sequence[Tokens], references: Sequence[Tokens], source_lengths: np.ndarray,
                   edges: Sequence[int] = DEFAULT_EDGES, backend: str = "nltk") -> list[dict[str, Any]]:
    """BLEU and exact match per source-length bucket (the 'quality vs sentence length' curve)."""
    rows = []
    for label, idx in length_buckets(source_lengths, edges):
        hyps = [hypotheses[i] for i in idx]
        refs = [references[i] for i in idx]
        rows.append({"bucket": label, "sentences": int(idx.size), "bleu": corpus_bleu(hyps, refs, backend),
                     "exact_match": exact_match(hyps, refs)})
    return rows


def translation_scores(hypotheses: Sequence[Tokens], references: Sequence[Tokens], source_lengths: np.ndarray,
                       edges: Sequence[int] = DEFAULT_EDGES) -> dict[str, Any]:
    """BLEU (NLTK, and sacreBLEU when installed), exact match and BLEU by source length."""
    scores: dict[str, Any] = {
        "sentences": len(hypotheses),
        "bleu": corpus_bleu(hypotheses, references),
        "bleu_backend": "nltk corpus_bleu, smoothing method1",
        "exact_match": exact_match(hypotheses, references),
        "bleu_by_length": bleu_by_length(hypotheses, references, source_lengths, edges),
    }
    if sacrebleu_available():
        scores["sacrebleu"] = corpus_bleu(hypotheses, references, backend="sacrebleu")
    return scores
