"""Count-based n-gram language models: `ngram` (any order, any smoothing), its aliases, and `arpa`.

Fitting = count (counts.py) → smooth (one module per method) → back-off tables (backoff.py).
Scoring, the next-token distribution and ARPA export all go through the same back-off tables, so a
model imported from a KenLM or SRILM ARPA file is scored by exactly the same code as our own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel, Param
from lmbench.models.ngram.arpa import read_arpa, write_arpa
from lmbench.models.ngram.backoff import BackoffTables
from lmbench.models.ngram.counts import NgramCounts, count_ngrams
from lmbench.models.ngram.estimate import Estimate
from lmbench.registry import Registry
from lmbench.text.corpus import Corpus

# Smoothing method → its `estimate(counts, params) -> Estimate`, imported when first used.
SMOOTHINGS: Registry[Callable[[NgramCounts, Mapping[str, Any]], Estimate]] = Registry(
    "smoothing",
    builtins={
        "mle": "lmbench.models.ngram.mle:estimate",
        "add_k": "lmbench.models.ngram.add_k:estimate",
        "good_turing": "lmbench.models.ngram.good_turing:estimate",
        "witten_bell": "lmbench.models.ngram.witten_bell:estimate",
        "absolute_discount": "lmbench.models.ngram.absolute_discount:estimate",
        "kneser_ney": "lmbench.models.ngram.kneser_ney:estimate",
        "modified_kneser_ney": "lmbench.models.ngram.modified_kneser_ney:estimate",
        "stupid_backoff": "lmbench.models.ngram.stupid_backoff:estimate",
    },
)
UNNORMALIZED = frozenset({"stupid_backoff"})

_SMOOTHING_PARAMS: dict[str, Param] = {
    "smoothing": Param("modified_kneser_ney", "smoothing method", choices=tuple(SMOOTHINGS)),
    "k": Param(1.0, "add_k: pseudo-count added to every n-gram (1 = Laplace, other = Lidstone)", low=0.0,
               low_open=True),
    "discount": Param(None, "absolute_discount, kneser_ney: fixed discount D in (0, 1] (default: n1/(n1+2 n2))",
                      kind=float, low=0.0, low_open=True, high=1.0),
    "discount_fallback": Param(None, "kneser_ney family: when discounts cannot be estimated from the data, use "
                               "KenLM's fallback (D1=0.5, D2=1, D3+=1.5; single discount 0.5); default: do so and "
                               "warn once, true: do so silently, false: fail (KenLM's strict lmplz)", kind=bool),
    "alpha": Param(0.4, "stupid_backoff: back-off factor", low=0.0, low_open=True, high=1.0),
}


class BackoffLanguageModel(LanguageModel):
    """A language model held as back-off tables: scoring, next-token distributions, ARPA export."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"next_token"})
    tables: BackoffTables | None = None

    def require_tables(self) -> BackoffTables:
        """The back-off tables; a clear error if the model was never fitted or loaded."""
        self.require_fitted()
        if self.tables is None:
            raise LmbenchError(f"model {self.name} is not fitted")
        return self.tables

    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """ln p of every predicted token (each sentence's words, then `</s>`), history cut at `<s>`."""
        tables = self.require_tables()
        self.check_corpus(corpus)
        stream = corpus.bounded()
        return tables.score_predicted(stream)

    def next_logprobs(self, contexts: Sequence[np.ndarray]) -> np.ndarray:
        """(len(contexts), V) ln p(w | `<s>` + context) over the whole vocabulary; the `<s>` column is −inf."""
        return self.require_tables().next_logprobs(contexts)

    def export_arpa(self, path: str | Path) -> None:
        """Write the model as an ARPA file (log10 probabilities and back-off weights)."""
        write_arpa(path, self.require_tables().to_sections(self.require_fitted()))

    # --- checkpoints ---------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Keys, ln probabilities and ln back-offs of every order."""
        t = self.require_tables()
        arrays: dict[str, np.ndarray] = {}
        for n in range(1, t.order + 1):
            arrays[f"keys{n}"] = t.keys[n - 1]
            arrays[f"logp{n}"] = t.logp[n - 1]
            arrays[f"logbo{n}"] = t.logbo[n - 1]
        return {"tables_order": t.order, "missing_logbo": t.missing_logbo}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the tables written by `state()`."""
        N = int(meta["tables_order"])
        V = len(self.require_fitted())
        keys = [arrays[f"keys{n}"].astype(np.int64) for n in range(1, N + 1)]
        logp = [arrays[f"logp{n}"].astype(np.float64) for n in range(1, N + 1)]
        logbo = [arrays[f"logbo{n}"].astype(np.float64) for n in range(1, N + 1)]
        for n in range(N):
            if not (keys[n].shape == logp[n].shape == logbo[n].shape) or keys[n].ndim != 1:
                raise ValueError(f"order {n + 1}: keys, logp and logbo differ in shape")
            if keys[n].size > 1 and (np.diff(keys[n]) <= 0).any():
                raise ValueError(f"order {n + 1}: keys are not strictly increasing")
        if keys[0].size != V:
            raise ValueError(f"the unigram table has {keys[0].size} entries, the vocabulary {V}")
        self.tables = BackoffTables(V, keys, logp, logbo, float(meta.get("missing_logbo", 0.0)))


class NgramModel(BackoffLanguageModel):
    """An order-N n-gram model with one of the smoothing methods in SMOOTHINGS."""

    name = "ngram"
    description = "count-based n-gram model, any order and smoothing (default: modified Kneser–Ney trigram)"
    fixed_order: ClassVar[int | None] = None
    param_spec: ClassVar[dict[str, Param]] = {
        "order": Param(3, "n-gram order N (history of N−1 words)", low=1),
        **_SMOOTHING_PARAMS,
    }

    memory: int | str | None = None  # counting budget (`lmbench train --memory 2G`); never changes the model

    @property
    def order(self) -> int:
        """The n-gram order N."""
        return self.fixed_order or int(self.params["order"])

    def validate_params(self) -> None:
        """Check that a fixed discount goes with a method that has one; flag unnormalised scores."""
        smoothing = self.params["smoothing"]
        if self.params.get("discount") is not None and smoothing not in ("absolute_discount", "kneser_ney"):
            raise LmbenchError(
                f"parameter discount applies to smoothing=absolute_discount or kneser_ney, not {smoothing} "
                "(modified_kneser_ney estimates three discounts per order; see discount_fallback)"
            )
        # Stupid back-off scores are not probabilities: the harness marks its perplexity as not comparable.
        self.normalized = smoothing not in UNNORMALIZED

    def fit(self, train: Corpus, valid: Corpus | None = None) -> NgramModel:
        """Count n-grams of orders 1..N in the training stream and smooth them."""
        estimate = SMOOTHINGS.get(self.params["smoothing"])
        counts = count_ngrams(train, self.order, self.memory)
        est = estimate(counts, self.params)
        self.vocab = train.vocab
        self.tables = BackoffTables(counts.V, [t.keys for t in counts.tables], est.logp, est.logbo,
                                    est.missing_logbo)
        self.fit_info = {"order": self.order, "smoothing": self.params["smoothing"],
                         "ngrams": [len(t) for t in counts.tables], **est.info}
        return self


class Unigram(NgramModel):
    """`ngram` with order 1; maximum likelihood by default (c(w) / N, `</s>` once per sentence)."""

    name = "unigram"
    description = "unigram model (default: maximum likelihood; unseen words get probability 0)"
    fixed_order = 1
    param_spec: ClassVar[dict[str, Param]] = {
        **_SMOOTHING_PARAMS,
        "smoothing": Param("mle", "smoothing method", choices=tuple(SMOOTHINGS)),
    }

    # A unigram model is one table of ln p(w): saved as `log_p`, the checkpoint of the original unigram model.
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The unigram log-probability table."""
        return {}, {"log_p": self.require_tables().logp[0]}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the unigram table."""
        log_p = arrays["log_p"].astype(np.float64)
        V = len(self.require_fitted())
        if log_p.shape != (V,):
            raise ValueError(f"log_p has shape {log_p.shape}, vocabulary has {V} entries")
        self.tables = BackoffTables(V, [np.arange(V, dtype=np.int64)], [log_p], [np.zeros(V)])


class Bigram(NgramModel):
    """`ngram` with order 2."""

    name = "bigram"
    description = "bigram model (default: modified Kneser–Ney)"
    fixed_order = 2
    param_spec: ClassVar[dict[str, Param]] = dict(_SMOOTHING_PARAMS)


class Trigram(NgramModel):
    """`ngram` with order 3."""

    name = "trigram"
    description = "trigram model (default: modified Kneser–Ney)"
    fixed_order = 3
    param_spec: ClassVar[dict[str, Param]] = dict(_SMOOTHING_PARAMS)


class ArpaModel(BackoffLanguageModel):
    """A back-off model read from an ARPA file (KenLM, SRILM, or `lmbench export`); scored like our own."""

    name = "arpa"
    description = "back-off model imported from an ARPA file (lmbench import-arpa)"

    def fit(self, train: Corpus, valid: Corpus | None = None) -> ArpaModel:
        """ARPA models are imported, not trained."""
        raise LmbenchError("an arpa model is not trained: import one with `lmbench import-arpa FILE --out DIR`")

    @classmethod
    def from_arpa(cls, path: str | Path) -> ArpaModel:
        """Read an ARPA file; its unigrams become the vocabulary (`<unk>`, `<s>`, `</s>` first)."""
        sections = read_arpa(path)
        model = cls()
        model.vocab, model.tables = BackoffTables.from_sections(sections, str(path))
        model.fit_info = {"source": str(path), "ngrams": [len(s.words) for s in sections],
                          "order": len(sections)}
        return model
