"""Two trivial models that prove the contract: `uniform` and `unigram` (maximum likelihood)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.models.base import LanguageModel
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID


class Uniform(LanguageModel):
    """p(w) = 1/|V'| over every token but `<s>`: the perplexity equals the number of outcomes."""

    name = "uniform"
    description = "uniform distribution over the vocabulary (perplexity = vocabulary size)"

    def fit(self, train: Corpus, valid: Corpus | None = None) -> Uniform:
        """Remember the vocabulary; there is nothing else to learn."""
        self.vocab = train.vocab
        return self

    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """−log |V'| for every predicted token."""
        vocab = self.require_fitted()
        self.check_corpus(corpus)
        return np.full(corpus.n_predicted, -np.log(vocab.n_outcomes))


class Unigram(LanguageModel):
    """p(w) = c(w) / N with `</s>` counted once per sentence; `<unk>` keeps its training count."""

    name = "unigram"
    description = "maximum-likelihood unigram (unseen words get probability 0)"

    def fit(self, train: Corpus, valid: Corpus | None = None) -> Unigram:
        """Count every predicted token of the training stream."""
        self.vocab = train.vocab
        counts = np.bincount(train.targets(), minlength=len(train.vocab)).astype(np.float64)
        counts[BOS_ID] = 0.0
        with np.errstate(divide="ignore"):
            self.log_p = np.log(counts / counts.sum())
        return self

    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """Look up log p(w) for every predicted token (−inf for a word never seen in training)."""
        self.require_fitted()
        self.check_corpus(corpus)
        return self.log_p[corpus.targets()]

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The log-probability table."""
        return {}, {"log_p": self.log_p}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the log-probability table."""
        log_p = arrays["log_p"]
        if log_p.shape != (len(self.require_fitted()),):
            raise ValueError(f"log_p has shape {log_p.shape}, vocabulary has {len(self.vocab)} entries")
        self.log_p = log_p
