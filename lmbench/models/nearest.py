"""The `nearest` translator: a retrieval baseline that copies the target of the most similar training source.

Similarity is the cosine of tf-idf vectors of source n-grams (n = 1 … `ngram`) over the source vocabulary:
tf = 1 + log(count), idf = log((1 + N) / (1 + df)) + 1 over the N training sources, vectors L2-normalised;
unknown tokens are ignored, and a source sharing nothing with any training source gets the first training
pair with the highest score (index order breaks ties). A neural translator that does not beat this is not
translating so much as remembering.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import Hypotheses, Param, Translator
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import ParallelSet
from lmbench.text.vocab import UNK_ID


def ngram_features(ids: np.ndarray, n_max: int) -> Counter[tuple[int, ...]]:
    """Counts of the n-grams (1 ≤ n ≤ n_max) of one sentence, skipping any that contain `<unk>`."""
    seq = ids.tolist()
    feats: Counter[tuple[int, ...]] = Counter()
    for n in range(1, n_max + 1):
        for i in range(len(seq) - n + 1):
            gram = tuple(seq[i:i + n])
            if UNK_ID not in gram:
                feats[gram] += 1
    return feats


class Nearest(Translator):
    """tf-idf nearest-neighbour retrieval over training sources (a translator baseline)."""

    name = "nearest"
    description = "retrieval baseline: the target of the most similar training source (tf-idf cosine)"
    param_spec = {
        "ngram": Param(1, "longest source n-gram used as a feature", low=1, high=4),
        "beam": Param(1, "ignored (no search); kept so translators share decoding options", low=1),
        "length_norm": Param(0.0, "ignored (no search)", low=0.0),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._tgt: Corpus | None = None
        self._src: Corpus | None = None
        self._index: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._idf: dict[tuple[int, ...], float] = {}
        self._arrays: dict[str, np.ndarray] = {}  # a loaded checkpoint's pairs, until load_files has the vocabularies

    # --- training -------------------------------------------------------------------------------------
    def fit(self, data: ParallelSet) -> Nearest:
        """Index the training sources; remember their targets."""
        self.adopt(data)
        self._src, self._tgt = data.train.src, data.train.tgt
        self._build_index()
        self.fit_info = {"train_pairs": len(data.train)}
        return self

    def _build_index(self) -> None:
        src = self._src
        n = src.n_sentences
        docs = [ngram_features(src[i], self.params["ngram"]) for i in range(n)]
        df: Counter[tuple[int, ...]] = Counter(g for d in docs for g in d)
        self._idf = {g: math.log((1 + n) / (1 + c)) + 1.0 for g, c in df.items()}
        postings: dict[tuple[int, ...], tuple[list[int], list[float]]] = {}
        for i, d in enumerate(docs):
            w = {g: (1.0 + math.log(c)) * self._idf[g] for g, c in d.items()}
            norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
            for g, v in w.items():
                ids, vals = postings.setdefault(g, ([], []))
                ids.append(i)
                vals.append(v / norm)
        self._index = {g: (np.array(i, dtype=np.int64), np.array(v)) for g, (i, v) in postings.items()}

    # --- translating ----------------------------------------------------------------------------------
    def nearest(self, ids: np.ndarray) -> tuple[int, float]:
        """Index of the most similar training source and its cosine similarity."""
        if self._src is None:
            raise LmbenchError("model nearest is not fitted")
        feats = ngram_features(ids, self.params["ngram"])
        w = {g: (1.0 + math.log(c)) * self._idf[g] for g, c in feats.items() if g in self._idf}
        scores = np.zeros(self._src.n_sentences)
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        for g, v in w.items():
            docs, vals = self._index[g]
            scores[docs] += (v / norm) * vals
        best = int(np.argmax(scores))
        return best, float(scores[best])

    def translate_corpus(self, src: Corpus, beam: int | None = None, length_norm: float | None = None
                         ) -> Hypotheses:
        """The nearest training pair's target for every source sentence (scores: cosine similarities)."""
        self.require_fitted()
        self.check_source(src)
        found = [self.nearest(src[i]) for i in range(src.n_sentences)]
        tokens = [self._tgt[i].astype(np.int64) for i, _ in found]
        return Hypotheses(tokens, np.array([s for _, s in found]), np.array([t.size + 1 for t in tokens]))

    def check_source(self, src: Corpus) -> None:
        """Reject a source corpus encoded with another vocabulary."""
        if src.vocab is not self.src_vocab and src.vocab != self.src_vocab:
            raise LmbenchError(f"model nearest: corpus {src.name!r} uses a different source vocabulary")

    # --- checkpoints ----------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The training pairs as id arrays; the index is rebuilt on load."""
        meta = self.translator_meta()
        arrays = {}
        if self._src is not None and self._tgt is not None:
            arrays = {"src_ids": self._src.ids, "src_offsets": self._src.offsets,
                      "tgt_ids": self._tgt.ids, "tgt_offsets": self._tgt.offsets}
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Keep the arrays until the vocabularies are read (load_files)."""
        self.restore_translator_meta(meta)
        self._arrays = arrays

    def load_files(self, directory: Path) -> None:
        """Read the source vocabulary and rebuild the index."""
        super().load_files(directory)
        a = self._arrays
        self._src = Corpus(a["src_ids"].astype(np.int32), a["src_offsets"].astype(np.int64), self.src_vocab)
        self._tgt = Corpus(a["tgt_ids"].astype(np.int32), a["tgt_offsets"].astype(np.int64), self.require_fitted())
        self._build_index()
