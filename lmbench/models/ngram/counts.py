"""Vectorised n-gram counting into shared count tables (one sorted table per order).

The stream is `Corpus.bounded()`: `<s> w1 … wk </s> <s> …`, with ONE `<s>` per sentence as KenLM does.
An n-gram never crosses a sentence boundary; near the start of a sentence the history is cut at `<s>`,
so `<s> a` is a bigram and there is no `<s> <s> a`.

Every table of order n ≥ 2 is sorted by an integer key that encodes the n-gram as a trie edge:

    key = index of its prefix (words 1..n-1) in the order n-1 table × V + its last word

so the children of a context are one contiguous block of the next table, and looking an n-gram up is one
`np.searchsorted` after looking up its prefix. The unigram table holds every vocabulary id (key = id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID


@dataclass
class NgramTable:
    """The n-gram types of one order n: sorted keys, raw counts, and links to the order n-1 table."""

    order: int
    keys: np.ndarray  # int64, sorted: prefix_index * V + last word (order 1: the word id)
    count: np.ndarray  # int64 raw count: occurrences in the bounded stream
    suffix: np.ndarray  # int64 index of words 2..n in the order n-1 table (order 1: -1)
    bos: np.ndarray  # bool: the n-gram begins with <s> (its history is a whole sentence prefix)

    def __len__(self) -> int:
        return int(self.keys.size)

    def prefix(self, V: int) -> np.ndarray:
        """Index of words 1..n-1 in the order n-1 table (order 1: all zero, the empty context)."""
        return self.keys // V if self.order > 1 else np.zeros(self.keys.size, dtype=np.int64)

    def word(self, V: int) -> np.ndarray:
        """The last word of every n-gram."""
        return self.keys % V if self.order > 1 else self.keys


@dataclass
class NgramCounts:
    """Count tables of orders 1..N over one vocabulary of size V."""

    V: int
    tables: list[NgramTable]

    @property
    def order(self) -> int:
        """The highest order N."""
        return len(self.tables)

    def table(self, n: int) -> NgramTable:
        """The table of order n (1-based)."""
        return self.tables[n - 1]

    def context_totals(self, n: int, count: np.ndarray | None = None) -> np.ndarray:
        """Σ_w count(h w) for every context h of the order n-1 table (order 1: one entry, the empty context)."""
        t = self.table(n)
        c = t.count if count is None else count
        size = len(self.table(n - 1)) if n > 1 else 1
        return np.bincount(t.prefix(self.V), weights=c, minlength=size)

    def context_types(self, n: int, mask: np.ndarray | None = None) -> np.ndarray:
        """N1+(h •): how many different words follow each context h (optionally only those in `mask`)."""
        t = self.table(n)
        size = len(self.table(n - 1)) if n > 1 else 1
        weights = None if mask is None else mask.astype(np.float64)
        return np.bincount(t.prefix(self.V), weights=weights, minlength=size)

    def left_extensions(self, n: int) -> np.ndarray:
        """N1+(• g): how many different words precede each n-gram g of order n < N (Kneser–Ney counts)."""
        return np.bincount(self.table(n + 1).suffix, minlength=len(self.table(n))).astype(np.int64)


def depth_in_sentence(stream: np.ndarray) -> np.ndarray:
    """For each position of a bounded stream, its distance from the sentence's `<s>` (0 at `<s>`)."""
    pos = np.arange(stream.size, dtype=np.int64)
    start = np.where(stream == BOS_ID, pos, 0)
    np.maximum.accumulate(start, out=start)
    return pos - start


def unique_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct keys, each key's type index, each type's count, and one position of each type.

    np.unique(return_inverse=True) does the same but several times slower here; one unstable argsort and
    a pass over the sorted keys is all it takes.
    """
    perm = np.argsort(keys, kind="quicksort")
    ordered = keys[perm]
    starts = np.ones(ordered.size, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    type_of_sorted = np.cumsum(starts) - 1
    inverse = np.empty(keys.size, dtype=np.int64)
    inverse[perm] = type_of_sorted
    first = np.flatnonzero(starts)
    count = np.diff(np.append(first, ordered.size)).astype(np.int64)
    return ordered[first], inverse, count, perm[first]


def count_ngrams(corpus: Corpus, order: int) -> NgramCounts:
    """Count every n-gram of orders 1..order in the corpus's bounded stream, vectorised."""
    V = len(corpus.vocab)
    stream = corpus.bounded().astype(np.int64)
    depth = depth_in_sentence(stream)
    predicted = stream != BOS_ID
    unigram_count = np.bincount(stream[predicted], minlength=V).astype(np.int64)
    unigram_bos = np.zeros(V, dtype=bool)
    unigram_bos[BOS_ID] = True
    tables = [NgramTable(1, np.arange(V, dtype=np.int64), unigram_count, np.full(V, -1, np.int64), unigram_bos)]
    index = stream  # index[t]: the (n-1)-gram ending at t in its table, or -1
    for n in range(2, order + 1):
        # The n-gram ending at t exists when its n words lie in one sentence (counting its <s>).
        ends = np.flatnonzero(depth >= n - 1)
        keys = index[ends - 1] * V + stream[ends]
        uniq, inverse, count, first = unique_keys(keys)
        rep = ends[first]  # one occurrence of each type
        tables.append(NgramTable(n, uniq, count, index[rep], depth[rep] == n - 1))
        index = np.full(stream.size, -1, dtype=np.int64)
        index[ends] = inverse
    return NgramCounts(V, tables)


def counts_of_counts(count: np.ndarray, upto: int = 4) -> np.ndarray:
    """n_r = how many types have count r, for r = 0..upto (n_0 counts zero-count entries)."""
    c = np.asarray(count, dtype=np.int64)
    return np.bincount(c[c <= upto], minlength=upto + 1)[: upto + 1]
