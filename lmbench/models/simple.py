"""The simplest model that keeps the contract: `uniform` (the MLE `unigram` is the order-1 n-gram model)."""

from __future__ import annotations

import numpy as np

from lmbench.models.base import LanguageModel
from lmbench.text.corpus import Corpus


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
