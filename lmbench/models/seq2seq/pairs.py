"""Sentence pairs in batches, and what every encoder–decoder translator shares on top of its network.

Batches hold sources of one length (so an encoder needs no mask); targets are padded with `</s>` and masked.
`EncoderDecoder` gives a translator with `build`, `target_logprobs` and `decode_batch` the rest of the
`Translator` and `Trainable` contracts: training on pairs through the one trainer, teacher-forced scoring and
the validation loss, and decoding a whole corpus batch by batch in the corpus's order.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Self

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import Hypotheses, Translator
from lmbench.models.neural.blas import blas_threads
from lmbench.models.neural.trainer import Trainable, Trainer, data_digest
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import PairCorpus, ParallelSet
from lmbench.text.vocab import BOS_ID, EOS_ID

# What a keep=best run keeps: the epoch of the lowest validation loss, or of the highest validation BLEU/chrF.


def make_batches(src: Corpus, batch: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Sentence indices grouped by source length and cut into batches (shuffled when rng is given)."""
    lengths = src.lengths
    order = np.argsort(lengths, kind="stable")
    if rng is not None:
        order = order[np.lexsort((rng.random(order.size), lengths[order]))]
    cuts = np.flatnonzero(np.diff(lengths[order])) + 1
    batches = []
    for group in np.split(order, cuts):
        batches += [group[i:i + batch] for i in range(0, group.size, batch)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def gather_sources(src: Corpus, idx: np.ndarray) -> np.ndarray:
    """(B, S) ids of sources that share one length."""
    S = int(src.lengths[idx[0]])
    return src.ids[src.offsets[idx][:, None] + np.arange(S)].astype(np.int64)


def gather_targets(tgt: Corpus, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoder inputs `<s> y_1 … y_n`, outputs `y_1 … y_n </s>` (B, T) padded with `</s>`, and the mask."""
    lengths = tgt.lengths[idx]
    T = int(lengths.max()) + 1
    pos = np.arange(T - 1)
    inside = pos[None, :] < lengths[:, None]
    words = tgt.ids[np.minimum(tgt.offsets[idx][:, None] + pos, max(tgt.n_tokens - 1, 0))]
    words = np.where(inside, words, EOS_ID).astype(np.int64)
    tgt_in = np.concatenate([np.full((idx.size, 1), BOS_ID), words], axis=1)
    tgt_out = np.concatenate([words, np.full((idx.size, 1), EOS_ID)], axis=1)
    mask = np.arange(T)[None, :] <= lengths[:, None]
    return tgt_in, tgt_out, mask


class EncoderDecoder(Trainable, Translator):
    """A translator trained on pairs through the one trainer; subclasses give the network.

    Scoring and decoding run with `training_blas_threads` too (None: NumPy's default), since they are made of
    the same small matmuls as training."""

    @abstractmethod
    def build(self, n_src: int, n_tgt: int) -> None:
        """Create fresh weights for these source and target vocabulary sizes."""

    @abstractmethod
    def target_logprobs(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray) -> np.ndarray:
        """(B, T) log p of each `tgt_out` token given the source and the teacher-forced `tgt_in`."""

    @abstractmethod
    def decode_batch(self, src: np.ndarray, beam: int, alpha: float, max_len: int) -> Hypotheses:
        """Translate (B, S) source ids of one length: greedy (beam 1) or beam search."""

    # --- what the trainer needs ------------------------------------------------------------------------------
    def fit(self, data: ParallelSet) -> Self:
        """Train on data.train (validating on data.valid when present) through the one trainer."""
        Trainer(self).fit(data)
        return self

    def prepare(self, data: ParallelSet, valid: None, resuming: bool) -> ParallelSet:
        """The pairs themselves (a resumed run must see the vocabularies it was trained with)."""
        if not isinstance(data, ParallelSet):
            raise LmbenchError(f"{self.name} is a translator, not a language model: train it on sentence pairs "
                               "with `lmbench translate train --pairs SPEC`")
        if resuming and (data.src_vocab != self.src_vocab or data.tgt_vocab != self.vocab):
            raise LmbenchError("cannot resume: the parallel corpus gives other vocabularies than the checkpoint's")
        return data

    def data_digest(self, data: ParallelSet) -> str:
        """Fingerprint of the training pairs."""
        src, tgt = data.train.src, data.train.tgt
        return data_digest(src.ids, src.offsets, tgt.ids, tgt.offsets)

    def initialize(self, data: ParallelSet) -> None:
        """Take the pairs' tokenizers and vocabularies and create fresh weights."""
        self.adopt(data)
        self.build(len(data.src_vocab), len(data.tgt_vocab))

    def epoch_tokens(self, data: ParallelSet) -> int:
        """Target tokens predicted per epoch: words and one `</s>` per pair."""
        return int(data.train.tgt.n_tokens + len(data.train))

    def validation_loss(self, data: ParallelSet) -> float | None:
        """Mean negative log-likelihood per target token (words and `</s>`) of the valid pairs (None without)."""
        if data.valid is None:
            return None
        lp, counts = self.score(data.valid)
        return float(-lp.sum() / counts.sum())

    # --- scoring and decoding --------------------------------------------------------------------------------
    def score(self, pairs: PairCorpus, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forced Σ log p of each target sentence (its words and `</s>`), and its predicted tokens."""
        totals = np.zeros(len(pairs))
        with blas_threads(self.training_blas_threads):
            for idx in make_batches(pairs.src, batch):
                src = gather_sources(pairs.src, idx)
                tgt_in, tgt_out, mask = gather_targets(pairs.tgt, idx)
                lp = self.target_logprobs(src, tgt_in, tgt_out)
                totals[idx] = np.where(mask, lp, 0.0).sum(axis=1)
        return totals, pairs.tgt.lengths + 1

    def translate_corpus(self, src: Corpus, beam: int | None = None, length_norm: float | None = None,
                         max_len: int | None = None, batch: int | None = None) -> Hypotheses:
        """Translate every sentence of a source corpus (greedy when beam == 1); results in the corpus's order."""
        self.require_fitted()
        beam = self.params["beam"] if beam is None else beam
        alpha = self.params["length_norm"] if length_norm is None else length_norm
        max_len = self.params["max_len"] if max_len is None else max_len
        if beam < 1:
            raise LmbenchError(f"beam size must be ≥ 1, got {beam}")
        empty = np.flatnonzero(src.lengths == 0)
        if empty.size:
            raise LmbenchError(f"source sentence {int(empty[0]) + 1} is empty; there is nothing to translate")
        n = src.n_sentences
        tokens: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
        scores, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        with blas_threads(self.training_blas_threads):
            for ids in make_batches(src, batch or max(1, 256 // beam)):  # decoding rows: sentences × beams
                S = int(src.lengths[ids[0]])
                hyp = self.decode_batch(gather_sources(src, ids), beam, alpha, max_len or 2 * S + 10)
                for i, t in zip(ids, hyp.tokens):
                    tokens[i] = t
                scores[ids], lengths[ids] = hyp.scores, hyp.lengths
        return Hypotheses(tokens, scores, lengths)
