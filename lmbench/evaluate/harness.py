"""The one evaluation harness: every model's log-probabilities go through the same accounting.

Perplexity = exp(−(1/N) Σ log p(w_i | h_i)) over the N predicted tokens (each sentence's words and its
`</s>`; `<s>` is never predicted) — KenLM's and SRILM's accounting. A token with probability 0 is
counted as a zero-probability event and makes the perplexity infinite; it never crashes the harness.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel, Model, Translator
from lmbench.models.neural.trainer import Checkpoint, ProgressBar, Trainable, Trainer
from lmbench.models.registry import create_model
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import ParallelSet
from lmbench.text.sources import CorpusSet


@dataclass(frozen=True)
class Evaluation:
    """What the harness reports for one model on one corpus split."""

    model: str
    corpus: str
    tokens: int
    sentences: int
    log_likelihood: float  # natural log, summed over predicted tokens
    perplexity: float
    cross_entropy_bits: float
    perplexity_excluding_zero_prob: float
    zero_prob_events: int
    oov_tokens: int
    oov_rate: float
    normalized: bool  # False: the scores are not probabilities; perplexity is not comparable
    eval_seconds: float
    eval_tokens_per_second: float

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (non-finite floats stay floats; see `json_safe`)."""
        return asdict(self)


def json_safe(obj: Any) -> Any:
    """Replace non-finite floats by the strings "inf", "-inf", "nan" so the output is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def checked_logprobs(model: LanguageModel, corpus: Corpus) -> np.ndarray:
    """Call model.logprobs and verify the contract: one finite-or-−inf value ≤ 0 per predicted token."""
    lp = np.asarray(model.logprobs(corpus), dtype=np.float64)
    if lp.shape != (corpus.n_predicted,):
        raise LmbenchError(
            f"model {model.name} returned {lp.size} log-probabilities for {corpus.n_predicted} predicted tokens "
            "(expected each sentence's tokens and </s>, never <s>)"
        )
    if np.isnan(lp).any():
        raise LmbenchError(f"model {model.name} returned NaN log-probabilities on {corpus.name!r}")
    if model.normalized and (lp > 1e-6).any():
        raise LmbenchError(f"model {model.name} returned log-probabilities above 0 (probabilities above 1)")
    return lp


def summarize(model: LanguageModel, corpus: Corpus, lp: np.ndarray, seconds: float) -> Evaluation:
    """Turn per-token log-probabilities into the harness's figures."""
    n = lp.size
    zero = ~np.isfinite(lp)
    n_zero = int(zero.sum())
    finite_sum = float(lp[~zero].sum())
    mean_nll = -finite_sum / n if n else float("nan")
    perplexity = float("inf") if n_zero else math.exp(mean_nll)
    n_finite = n - n_zero
    return Evaluation(
        model=model.name,
        corpus=corpus.name,
        tokens=n,
        sentences=corpus.n_sentences,
        log_likelihood=float("-inf") if n_zero else finite_sum,
        perplexity=perplexity,
        cross_entropy_bits=float("inf") if n_zero else mean_nll / math.log(2),
        perplexity_excluding_zero_prob=math.exp(-finite_sum / n_finite) if n_finite else float("nan"),
        zero_prob_events=n_zero,
        oov_tokens=corpus.oov_tokens,
        oov_rate=corpus.oov_rate,
        normalized=model.normalized,
        eval_seconds=seconds,
        eval_tokens_per_second=n / seconds if seconds > 0 else float("inf"),
    )


def evaluate(model: LanguageModel, corpus: Corpus) -> Evaluation:
    """Score every predicted token of `corpus` and report perplexity, cross-entropy, zero-prob events."""
    start = time.perf_counter()
    lp = checked_logprobs(model, corpus)
    return summarize(model, corpus, lp, time.perf_counter() - start)


def sentence_logprobs(model: LanguageModel, corpus: Corpus) -> np.ndarray:
    """Total natural-log probability of each sentence (its words and `</s>`)."""
    lp = checked_logprobs(model, corpus)
    starts = corpus.offsets[:-1] + np.arange(corpus.n_sentences)
    return np.add.reduceat(lp, starts) if lp.size else np.zeros(0)


@dataclass(frozen=True)
class TrainResult:
    """A fitted model, how many tokens training processed (all epochs), and how long fitting took."""

    model: Model
    train_tokens: int
    train_seconds: float

    @property
    def train_tokens_per_second(self) -> float:
        """Training tokens processed per wall-clock second."""
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """The figures `lmbench train --json` prints."""
        return {
            "model": self.model.name,
            "params": self.model.params,
            "train_tokens": self.train_tokens,
            "train_seconds": self.train_seconds,
            "train_tokens_per_second": self.train_tokens_per_second,
            "vocab_size": len(self.model.vocab) if self.model.vocab else None,
            **{k: v for k, v in self.model.fit_info.items() if k not in ("model", "params")},
        }


def train(model: str | Model, data: CorpusSet | ParallelSet, params: dict[str, Any] | None = None,
          out: str | Path | None = None, progress: bool | None = False) -> TrainResult:
    """Fit a model (by name or instance): a language model on a corpus set's train split (with its valid
    split), a translator on sentence pairs. Neural models train through the one trainer, with a progress
    bar (`progress`: True, False, or None = on a terminal) and, given `out`, a checkpoint after every epoch;
    other models are saved to `out` once fitted."""
    if isinstance(model, str):
        model = create_model(model, params)
    elif params:
        raise LmbenchError("pass params only with a model name, not with a model instance")
    if isinstance(model, Translator):
        if not isinstance(data, ParallelSet):
            raise LmbenchError(f"{model.name} is a translator: train it on sentence pairs with "
                               "`lmbench translate train --pairs SPEC`")
    elif isinstance(model, LanguageModel):
        if not isinstance(data, CorpusSet):
            raise LmbenchError(f"{model.name} is a language model: train it on a corpus, not on sentence pairs")
        model.tokenizer = data.tokenizer
    else:
        raise LmbenchError(f"{model.name} is neither a language model nor a translator")
    start = time.perf_counter()
    if isinstance(model, Trainable):
        callbacks = [ProgressBar(progress)] + ([Checkpoint(out)] if out is not None else [])
        Trainer(model, callbacks).fit(*_training_data(model, data))
    else:
        model.fit(*_training_data(model, data))
    seconds = time.perf_counter() - start
    if model.vocab is None and isinstance(data, CorpusSet):
        model.vocab = data.vocab
    if out is not None and not isinstance(model, Trainable):
        model.save(out)
    tokens = model.fit_info.get("train_tokens_processed")  # all epochs; a count model reads its data once
    if tokens is None:  # predicted tokens: each sentence's words and </s> (the target side of pairs)
        tokens = data.train.n_predicted if isinstance(data, CorpusSet) else data.train.tgt.n_predicted
    return TrainResult(model, int(tokens), seconds)


def _training_data(model: Model, data: CorpusSet | ParallelSet) -> tuple[Any, ...]:
    """The arguments of `fit`: (pairs,) for a translator, (train, valid) for a language model."""
    return (data,) if isinstance(model, Translator) else (data.train, data.valid)
