"""Translation metrics: corpus BLEU, chrF, exact match, and BLEU by source-length bucket.

The reported BLEU is sacreBLEU's (`score_translations`, bleu="sacrebleu"): detokenized hypotheses against the
references as written, sacreBLEU's own 13a tokenization, with its signature string stored beside every figure
so the number can be compared with published ones. chrF (character n-gram F-score, sacreBLEU's defaults) is
reported beside it: it credits partly right Korean words that BLEU's whole-word matching scores as wrong.
`bleu="nltk"` keeps the older figure below (NLTK `corpus_bleu` on word tokens) for continuity, by request only.

The token-level `corpus_bleu` (and `bleu_by_length`, `exact_match` on token lists) is NLTK's `corpus_bleu`
(4-gram, uniform weights, smoothing method 1 so a short sentence with no 4-gram match does not zero the corpus
score), reported 0–100; it is what `bleu="nltk"` computes on `word` tokens of the detokenized text.

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
from lmbench.text.tokenize import Tokenizer

Tokens = Sequence[str]
DEFAULT_EDGES = (5, 10, 15, 20, 25, 30)  # source-length buckets: 1–5, 6–10, …, 26–30, 31+


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """NLTK corpus BLEU (0–100) of tokenized hypotheses against one tokenized reference each."""
    if len(hypotheses) != len(references):
        raise LmbenchError(f"BLEU: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return float("nan")
    # nltk takes seconds to import; only the NLTK figure needs it.
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
                   edges: Sequence[int] = DEFAULT_EDGES) -> list[dict[str, Any]]:
    """BLEU and exact match per source-length bucket (the 'quality vs sentence length' curve)."""
    rows = []
    for label, idx in length_buckets(source_lengths, edges):
        hyps = [hypotheses[i] for i in idx]
        refs = [references[i] for i in idx]
        rows.append({"bucket": label, "sentences": int(idx.size), "bleu": corpus_bleu(hyps, refs),
                     "exact_match": exact_match(hyps, refs)})
    return rows


BLEU_METRICS = ("sacrebleu", "nltk")
NLTK_SIGNATURE = "nltk corpus_bleu|n:4|smooth:method1|tok:lmbench-word"


def sacrebleu_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacreBLEU corpus BLEU and chrF (0–100) of detokenized text, with their signature strings."""
    from sacrebleu.metrics import BLEU, CHRF  # 0.13 s to import: only translation scoring needs it

    if len(hypotheses) != len(references):
        raise LmbenchError(f"BLEU: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return {"bleu": float("nan"), "bleu_signature": "", "chrf": float("nan"), "chrf_signature": ""}
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": float(b.score), "bleu_signature": str(bleu.get_signature()),
            "chrf": float(c.score), "chrf_signature": str(chrf.get_signature())}


def text_bleu(hypotheses: Sequence[str], references: Sequence[str], metric: str = "sacrebleu") -> tuple[float, str]:
    """Corpus BLEU (0–100) of detokenized text and its signature: sacreBLEU, or NLTK on word tokens."""
    if metric == "sacrebleu":
        scores = sacrebleu_scores(hypotheses, references)
        return scores["bleu"], scores["bleu_signature"]
    if metric != "nltk":
        raise LmbenchError(f"unknown BLEU metric {metric!r}; choose one of: {', '.join(BLEU_METRICS)}")
    word = Tokenizer("word")
    return corpus_bleu([word(h) for h in hypotheses], [word(r) for r in references]), NLTK_SIGNATURE


def score_translations(hypotheses: Sequence[str], references: Sequence[str], source_lengths: np.ndarray,
                       bleu: str = "sacrebleu", edges: Sequence[int] = DEFAULT_EDGES) -> dict[str, Any]:
    """BLEU (with its signature), chrF, exact match and BLEU by source length of detokenized translations."""
    if bleu not in BLEU_METRICS:
        raise LmbenchError(f"unknown BLEU metric {bleu!r}; choose one of: {', '.join(BLEU_METRICS)}")
    sacre = sacrebleu_scores(hypotheses, references)
    score, signature = (sacre["bleu"], sacre["bleu_signature"]) if bleu == "sacrebleu" else \
        text_bleu(hypotheses, references, "nltk")
    rows = []
    for label, idx in length_buckets(source_lengths, edges):
        hyps = [hypotheses[i] for i in idx]
        refs = [references[i] for i in idx]
        rows.append({"bucket": label, "sentences": int(idx.size), "bleu": text_bleu(hyps, refs, bleu)[0],
                     "exact_match": exact_match_text(hyps, refs)})
    return {"sentences": len(hypotheses), "bleu": score, "bleu_metric": bleu, "bleu_signature": signature,
            "chrf": sacre["chrf"], "chrf_signature": sacre["chrf_signature"],
            "exact_match": exact_match_text(hypotheses, references), "bleu_by_length": rows}


def exact_match_text(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Share of hypotheses equal to their reference after white-space normalisation."""
    if not hypotheses:
        return float("nan")
    return sum(h.split() == r.split() for h, r in zip(hypotheses, references)) / len(hypotheses)
