"""A corpus as int32 id arrays with sentence offsets, and the canonical stream of predicted tokens."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import BOS_ID, EOS_ID, UNK_ID, Vocabulary

_CHUNK_LINES = 50_000


class _GrowingIndex(dict):
    """token → provisional id; a new token gets the next id (only new types leave the C fast path)."""

    def __missing__(self, token: str) -> int:
        self[token] = index = len(self)
        return index


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int32, copy=False) if parts else np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class Corpus:
    """Sentences as one int32 array `ids` and `offsets` (sentence i is ids[offsets[i]:offsets[i+1]])."""

    ids: np.ndarray
    offsets: np.ndarray
    vocab: Vocabulary
    oov: np.ndarray | None = None  # bool per token: not in the vocabulary, became <unk>
    name: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def encode(cls, sentences: Sequence[Sequence[str]], vocab: Vocabulary, name: str = "") -> Corpus:
        """Encode tokenized sentences with a fixed vocabulary."""
        ids = vocab.encode_marking_oov(list(chain.from_iterable(sentences)))
        return cls._from_marked(ids, [len(s) for s in sentences], vocab, name)

    @classmethod
    def _from_marked(cls, ids: np.ndarray, lengths: Sequence[int], vocab: Vocabulary, name: str) -> Corpus:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        oov = ids < 0
        ids[oov] = UNK_ID
        return cls(ids, offsets, vocab, oov, name)

    @classmethod
    def from_ids(cls, sentences: Sequence[np.ndarray | Sequence[int]], vocab: Vocabulary, name: str = "") -> Corpus:
        """A corpus of sentences already given as id arrays (e.g. probe items built from a vocabulary)."""
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.concatenate([np.asarray(s, dtype=np.int32) for s in sentences]) if sentences else np.zeros(0)
        ids = ids.astype(np.int32)
        if ids.size and (ids.min() < 0 or ids.max() >= len(vocab) or (ids == BOS_ID).any() or (ids == EOS_ID).any()):
            raise ValueError("sentence ids must be vocabulary ids other than <s> and </s>")
        return cls(ids, offsets, vocab, None, name)

    @classmethod
    def from_lines(cls, lines: Sequence[str], tokenizer: Tokenizer, vocab: Vocabulary, name: str = "") -> Corpus:
        """Tokenize lines (one sentence each; lines with no tokens are skipped) and encode them."""
        lengths: list[int] = []
        parts = []
        for start in range(0, len(lines), _CHUNK_LINES):
            sentences = [t for t in map(tokenizer, lines[start : start + _CHUNK_LINES]) if t]
            lengths += map(len, sentences)
            parts.append(vocab.encode_marking_oov(list(chain.from_iterable(sentences))))
        return cls._from_marked(_concat(parts), lengths, vocab, name)

    @classmethod
    def build(
        cls, lines: Sequence[str], tokenizer: Tokenizer, min_count: int = 1, max_size: int | None = None,
        name: str = "",
    ) -> Corpus:
        """Tokenize training lines, build the vocabulary from them and encode them, in one pass.

        Tokens get provisional ids in first-occurrence order as they are read (no list of every token
        string is kept); counting and the final ranking are then array operations.
        """
        provisional = _GrowingIndex()
        lengths: list[int] = []
        parts = []
        for start in range(0, len(lines), _CHUNK_LINES):
            sentences = [t for t in map(tokenizer, lines[start : start + _CHUNK_LINES]) if t]
            lengths += map(len, sentences)
            flat = list(chain.from_iterable(sentences))
            parts.append(np.fromiter(map(provisional.__getitem__, flat), dtype=np.int32, count=len(flat)))
        ids = _concat(parts)
        types = list(provisional)
        counts = np.bincount(ids, minlength=len(types))
        vocab = Vocabulary.from_counts(types, counts, len(lengths), min_count, max_size)
        final = vocab.encode_marking_oov(types)
        final[final < 0] = UNK_ID  # types cut by min_count / max_size: <unk>, but not OOV in training
        return cls._from_marked(final[ids], lengths, vocab, name)

    # --- sizes -------------------------------------------------------------------------------
    @property
    def n_sentences(self) -> int:
        """Number of sentences."""
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        """Number of word tokens (no boundary symbols)."""
        return int(self.ids.size)

    @property
    def n_predicted(self) -> int:
        """Tokens a model predicts: every word and one `</s>` per sentence (KenLM's accounting)."""
        return self.n_tokens + self.n_sentences

    @property
    def oov_tokens(self) -> int:
        """Number of word tokens that were out of vocabulary."""
        return 0 if self.oov is None else int(np.count_nonzero(self.oov))

    @property
    def oov_rate(self) -> float:
        """Share of word tokens that were out of vocabulary."""
        return self.oov_tokens / self.n_tokens if self.n_tokens else 0.0

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """Sentence lengths in word tokens (computed once: a seq2seq epoch reads them for every batch)."""
        return np.diff(self.offsets)

    # --- views ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_sentences

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.n_sentences):
            yield self[i]

    def bounded(self) -> np.ndarray:
        """The stream `<s> w1 … wn </s> <s> …` of all sentences, int32 (cached)."""
        if "bounded" not in self._cache:
            n = self.n_sentences
            out = np.empty(self.n_tokens + 2 * n, dtype=np.int32)
            starts = self.offsets[:-1] + 2 * np.arange(n)  # position of each <s>
            ends = self.offsets[1:] + 2 * np.arange(n) + 1  # position of each </s>
            is_word = np.ones(out.size, dtype=bool)
            is_word[starts] = False
            is_word[ends] = False
            out[starts] = BOS_ID
            out[ends] = EOS_ID
            out[is_word] = self.ids
            self._cache["bounded"] = out
        return self._cache["bounded"]

    def predicted_mask(self) -> np.ndarray:
        """Boolean mask over `bounded()`: True where the token is predicted (everything but `<s>`)."""
        return self.bounded() != BOS_ID

    def targets(self) -> np.ndarray:
        """The canonical predicted stream: each sentence's tokens, then `</s>`; `<s>` never appears."""
        bounded = self.bounded()
        return bounded[bounded != BOS_ID]

    def sentence_index(self) -> np.ndarray:
        """For each position of `targets()`, the index of its sentence."""
        return np.repeat(np.arange(self.n_sentences), self.lengths + 1)

    def select(self, sentence_indices: np.ndarray | Sequence[int], name: str | None = None) -> Corpus:
        """A corpus of the chosen sentences, in the given order."""
        idx = np.asarray(sentence_indices, dtype=np.int64)
        lengths = self.lengths[idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Token positions of the chosen sentences, gathered without a loop over sentences.
        positions = np.repeat(self.offsets[idx] - offsets[:-1], lengths) + np.arange(offsets[-1])
        oov = None if self.oov is None else self.oov[positions]
        return Corpus(self.ids[positions], offsets, self.vocab, oov, name if name is not None else self.name)

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}: {self.n_sentences} sentences, {self.n_tokens} tokens)"
