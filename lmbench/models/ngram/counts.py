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

import ctypes
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.ngram.hashindex import KeyIndex
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID


@dataclass
class NgramTable:
    """The n-gram types of one order n: sorted keys, raw counts, and links to the order n-1 table."""

    order: int
    keys: np.ndarray  # int64, sorted: prefix_index * V + last word (order 1: the word id)
    count: np.ndarray  # int64 raw count: occurrences in the bounded stream
    suffix: np.ndarray  # index of words 2..n in the order n-1 table (order 1: -1); int32 when the table fits
    bos: np.ndarray  # bool: the n-gram begins with <s> (its history is a whole sentence prefix)

    def __len__(self) -> int:
        return int(self.keys.size)

    def prefix(self, V: int, a: int = 0, b: int | None = None) -> np.ndarray:
        """Index of words 1..n-1 in the order n-1 table (order 1: all zero, the empty context), of the
        entries a..b−1 (default: all)."""
        keys = self.keys[a:b]
        return keys // V if self.order > 1 else np.zeros(keys.size, dtype=np.int64)

    def blocks(self, V: int, size: int | None = None) -> Iterator[tuple[int, int]]:
        """(a, b) ranges of about `size` entries covering the table, each cut at a context boundary (the
        children of one context, a contiguous run of keys, never straddle two blocks)."""
        size = size or TABLE_BLOCK
        a, n = 0, len(self)
        while a < n:
            b = min(a + size, n)
            if self.order == 1:  # one context, the empty one: one block
                b = n
            elif b < n:
                # Back to the first child of the context at b (forward if that is a itself).
                first = int(np.searchsorted(self.keys, (int(self.keys[b]) // V) * V))
                b = first if first > a else int(np.searchsorted(self.keys, (int(self.keys[b]) // V + 1) * V))
            yield a, b
            a = b

    def word(self, V: int) -> np.ndarray:
        """The last word of every n-gram."""
        return self.keys % V if self.order > 1 else self.keys


@dataclass
class NgramCounts:
    """Count tables of orders 1..N over one vocabulary of size V."""

    V: int
    tables: list[NgramTable]
    spills: int = 0  # sorted runs written to disk while counting (0: everything fitted the budget)

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
        return self.per_context(n, lambda a, b: c[a:b])

    def context_types(self, n: int, mask: np.ndarray | None = None) -> np.ndarray:
        """N1+(h •): how many different words follow each context h (optionally only those in `mask`)."""
        if mask is None:
            return self.per_context(n, None)
        return self.per_context(n, lambda a, b: mask[a:b].astype(np.float64))

    def per_context(self, n: int, weights: Callable[[int, int], np.ndarray] | None) -> np.ndarray:
        """Σ over the children h w of each context h of `weights(a, b)` (the weights of entries a..b−1;
        None: how many children, as integers).

        Block by block, each block ending at a context boundary: every context's children are summed in
        one block, in table order, so the sums are exactly those of one np.bincount over the whole table.
        """
        t = self.table(n)
        size = len(self.table(n - 1)) if n > 1 else 1
        out = np.zeros(size, dtype=np.float64 if weights is not None else np.int64)
        for a, b in t.blocks(self.V):
            out += np.bincount(t.prefix(self.V, a, b), weights=None if weights is None else weights(a, b),
                               minlength=size)
        return out

    def left_extensions(self, n: int) -> np.ndarray:
        """N1+(• g): how many different words precede each n-gram g of order n < N (Kneser–Ney counts)."""
        above = self.table(n + 1)
        out = np.zeros(len(self.table(n)), dtype=np.int64)
        for a in range(0, len(above), TABLE_BLOCK):
            out += np.bincount(above.suffix[a : a + TABLE_BLOCK], minlength=out.size)
        return out


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


# --- counting in bounded memory ------------------------------------------------------------------------------
TABLE_BLOCK = 1 << 20  # table entries per block when deriving arrays from a whole table (block temporaries of
# ~8 MB: small enough that the C heap reuses them rather than growing with fragments)
CHUNK_TOKENS = 1 << 20  # most tokens per counting chunk (~80 MB of working arrays), whatever the budget
DEFAULT_MEMORY = 1 << 30  # bytes for counting when the caller gives no budget (lmplz -S is alike)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory(text: str | int | None) -> int:
    """A memory budget like lmplz -S: `2G`, `500M`, `64K`, or bytes (default: $LMBENCH_MEMORY, else 1G)."""
    if text is None:
        text = os.environ.get("LMBENCH_MEMORY") or DEFAULT_MEMORY
    if isinstance(text, int):
        value = text
    else:
        t = text.strip().upper().removesuffix("IB").removesuffix("B")
        unit = t[-1:] if t[-1:] in _UNITS else ""
        try:
            value = int(float(t[: len(t) - len(unit)]) * _UNITS[unit])
        except ValueError:
            raise LmbenchError(f"memory budget {text!r}: expected a size like 2G, 500M or 64K") from None
    if value < 1:
        raise LmbenchError(f"memory budget must be positive, got {text!r}")
    return value


def sentence_chunks(corpus: Corpus, max_tokens: int) -> Iterator[np.ndarray]:
    """The bounded stream `<s> w … </s> <s> …` in pieces of whole sentences, about max_tokens words each (int64)."""
    offsets = np.asarray(corpus.offsets)
    n = corpus.n_sentences
    cuts = np.unique(np.searchsorted(offsets, np.arange(0, int(offsets[-1]), max(1, max_tokens)), side="right") - 1)
    cuts = np.append(cuts[(cuts > 0) & (cuts < n)], n)
    a = 0
    for b in cuts.tolist():
        if b <= a:
            continue
        ids = np.asarray(corpus.ids[offsets[a] : offsets[b]], dtype=np.int64)
        lengths = np.diff(offsets[a : b + 1])
        k = b - a
        out = np.empty(ids.size + 2 * k, dtype=np.int64)
        starts = offsets[a:b] - offsets[a] + 2 * np.arange(k)  # position of each <s>
        ends = starts + lengths + 1  # position of each </s>
        is_word = np.ones(out.size, dtype=bool)
        is_word[starts] = False
        is_word[ends] = False
        out[starts] = BOS_ID
        out[ends] = EOS_ID
        out[is_word] = ids
        del ids
        for array in (corpus.ids, corpus.offsets, corpus.oov):  # a cached corpus is read once per order:
            _drop_pages(array)  # it need not stay resident
        yield out
        a = b


class _Runs:
    """Sorted (key, count) runs of one order; past the budget they are merged and spilled to disk."""

    def __init__(self, budget: int, spill_dir: Path) -> None:
        self.budget = budget
        self.spill_dir = spill_dir
        self.memory: list[tuple[np.ndarray, np.ndarray]] = []
        self.on_disk: list[tuple[np.ndarray, np.ndarray]] = []
        self.bytes = 0
        self.spills = 0

    def add(self, keys: np.ndarray, count: np.ndarray) -> None:
        """Add one sorted run of distinct keys with their counts."""
        self.memory.append((keys, count))
        self.bytes += keys.nbytes + count.nbytes
        if self.bytes > self.budget:
            self.spill()

    def _write(self, name: str, runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Path, Path, int]:
        """Merge runs into two raw int64 files (keys, counts), block by block: never the whole result in memory."""
        paths = (self.spill_dir / f"{name}.keys", self.spill_dir / f"{name}.count")
        size = 0
        with open(paths[0], "wb") as fk, open(paths[1], "wb") as fc:
            for keys, count in merge_blocks(runs, self.budget):
                np.asarray(keys, dtype=np.int64).tofile(fk)
                np.asarray(count, dtype=np.int64).tofile(fc)
                size += keys.size
        return paths[0], paths[1], size

    def spill(self) -> None:
        """Merge the runs held in memory and write them to disk as one sorted run."""
        self.spills += 1
        keys, count, size = self._write(f"run{self.spills}", self.memory)
        self.memory, self.bytes = [], 0
        if size:
            self.on_disk.append((np.memmap(keys, np.int64, "r"), np.memmap(count, np.int64, "r")))

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """All runs merged into one sorted table of distinct keys with summed counts.

        The merge goes to disk and is read back once the runs are released, so the runs and the merged
        table are never in memory together.
        """
        keys, count, _ = self._write("merged", self.on_disk + self.memory)
        self.memory, self.on_disk, self.bytes = [], [], 0
        return np.fromfile(keys, dtype=np.int64), np.fromfile(count, dtype=np.int64)


def merge_blocks(runs: list[tuple[np.ndarray, np.ndarray]], budget: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """k-way merge of sorted runs of distinct keys, summing counts, one key range at a time (in key order).

    Each step takes, from every run, the entries with keys below the next boundary (np.searchsorted), so it
    holds about half of `budget` bytes however large the runs on disk are.
    """
    runs = [r for r in runs if r[0].size]
    if not runs:
        return
    # Entries per merge step: keys, counts, the sort permutation, sorted copies, the output (~70 bytes each)
    # in at most about the budget's half (the runs held in memory take the rest).
    step = max(2, budget // 160)
    if len(runs) == 1:
        k, c = runs[0]
        for a in range(0, k.size, step):
            yield np.array(k[a : a + step], dtype=np.int64), np.array(c[a : a + step], dtype=np.int64)
        return
    # Every q-th key of every run, sorted; cutting after every len(runs)-th sampled key leaves at most
    # 2·len(runs)·q ≤ step entries between two cuts.
    q = max(1, step // (2 * len(runs)))
    sample = np.sort(np.concatenate([np.asarray(r[0][q - 1 :: q]) for r in runs]))
    bounds = np.append(np.unique(sample[:: len(runs)]) + 1, np.iinfo(np.int64).max)
    pos = [0] * len(runs)
    for bound in bounds.tolist():
        parts_k, parts_c = [], []
        for i, (k, c) in enumerate(runs):
            end = pos[i] + int(np.searchsorted(k[pos[i] :], bound, side="left"))
            if end > pos[i]:
                parts_k.append(np.asarray(k[pos[i] : end]))
                parts_c.append(np.asarray(c[pos[i] : end]))
            pos[i] = end
        if not parts_k:
            continue
        keys = np.concatenate(parts_k)
        count = np.concatenate(parts_c)
        order = np.argsort(keys, kind="stable")
        keys, count = keys[order], count[order]
        del order
        starts = np.ones(keys.size, dtype=bool)
        starts[1:] = keys[1:] != keys[:-1]
        first = np.flatnonzero(starts)
        yield keys[first], np.add.reduceat(count, first)


def _run_of(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted keys and how often each occurs."""
    keys = np.sort(keys)
    starts = np.ones(keys.size, dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    first = np.flatnonzero(starts)
    return keys[first], np.diff(np.append(first, keys.size)).astype(np.int64)


class SortedKeys:
    """`KeyIndex.find` over the sorted keys themselves, with no memory of its own: for a table whose hash
    index would not fit the counting budget. Each batch of queries is sorted first, so the binary searches
    walk the keys in order."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys

    def find(self, queries: np.ndarray) -> np.ndarray:
        """Position of each query key, or −1 when it is not a key."""
        out = np.full(queries.size, -1, dtype=np.int64)
        if not self.keys.size:
            return out
        order = np.argsort(queries)
        q = queries[order]
        pos = np.searchsorted(self.keys, q)
        hit = self.keys[np.minimum(pos, self.keys.size - 1)] == q
        out[order[hit]] = pos[hit]
        return out


def key_index(keys: np.ndarray, budget: int) -> KeyIndex | SortedKeys:
    """A hash index over the keys when it takes at most an eighth of the budget, else sorted look-ups."""
    slots = 1 << (max(4, int(np.ceil(np.log2(max(2 * keys.size, 1)))) + 1))  # as KeyIndex sizes its table
    return KeyIndex(keys) if 16 * slots <= budget // 8 else SortedKeys(keys)


def _links(keys: np.ndarray, V: int, below: NgramTable) -> tuple[np.ndarray, np.ndarray]:
    """For sorted keys of order n: each n-gram's suffix (index of words 2..n in `below`, the order n−1 table;
    int32 when that table has fewer than 2^31 entries) and whether it begins with `<s>`.

    Block by block: the words 2..n are the prefix's own suffix followed by the last word (order 2: the
    word itself), and each block's look-ups are sorted first so the binary searches walk `below` in order.
    """
    suffix = np.empty(keys.size, dtype=np.int32 if len(below) < 2**31 else np.int64)
    bos = np.empty(keys.size, dtype=bool)
    for a in range(0, keys.size, TABLE_BLOCK):
        k = keys[a : a + TABLE_BLOCK]
        prefix = k // V
        word = k - prefix * V
        bos[a : a + k.size] = below.bos[prefix]
        if below.order == 1:
            suffix[a : a + k.size] = word
            continue
        query = below.suffix[prefix].astype(np.int64) * V + word
        del prefix, word
        order = np.argsort(query)
        found = np.empty(k.size, dtype=np.int64)
        found[order] = np.searchsorted(below.keys, query[order])
        suffix[a : a + k.size] = found
    return suffix, bos


def _drop_pages(array: np.ndarray) -> None:
    """Let the kernel take back the resident pages of a read-only or shared memory-mapped array (a cached
    corpus): they stay in the page cache and are read back on the next access, but no longer count in this
    process's memory. Anything else is left alone."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    mm = getattr(base, "_mmap", None)
    if mm is not None and getattr(base, "mode", "c") in ("r", "r+", "w+") and hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_DONTNEED)


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing).

    Arrays up to glibc's mmap threshold (which grows to 32 MB as large blocks are freed) come from the heap,
    and the block-sized temporaries of counting and estimation leave hundreds of MB there that, freed, still
    count in the process's resident memory until trimmed.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (AttributeError, OSError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


def count_ngrams(corpus: Corpus, order: int, memory: int | str | None = None) -> NgramCounts:
    """Count every n-gram of orders 1..order in the corpus's bounded stream within a memory budget.

    One pass over the id stream per order, in chunks of whole sentences: each chunk's n-gram keys (the
    prefix's index in the finished order n-1 table × V + last word) are sorted into a run; runs past the
    budget are merged and spilled to disk (like lmplz -S), and the runs are merged at the end. Small corpora
    take the same path with one chunk and no spill.
    """
    budget = parse_memory(memory)
    V = len(corpus.vocab)
    chunk_tokens = int(min(max(budget // 160, 64), CHUNK_TOKENS))  # ~80 bytes of working arrays per token
    unigram_count = np.zeros(V, dtype=np.int64)
    for stream in sentence_chunks(corpus, chunk_tokens):
        unigram_count += np.bincount(stream[stream != BOS_ID], minlength=V)
    unigram_bos = np.zeros(V, dtype=bool)
    unigram_bos[BOS_ID] = True
    tables = [NgramTable(1, np.arange(V, dtype=np.int64), unigram_count, np.full(V, -1, np.int64), unigram_bos)]
    indexes: list[KeyIndex | SortedKeys | None] = [None]
    spills = 0
    with tempfile.TemporaryDirectory(prefix="lmbench-counts-") as spill_dir:
        for n in range(2, order + 1):
            runs = _Runs(budget // 2, Path(spill_dir))
            for stream in sentence_chunks(corpus, chunk_tokens):
                # An m-gram ends at t when t is not <s> and an (m−1)-gram ends at t − 1 (every one of the
                # corpus is in the finished tables); `prev` is the (m−1)-gram ending at t − 1, or −1.
                not_bos = stream != BOS_ID
                index = stream  # index[t]: the m-gram ending at t in its table (m = 1 here), or -1
                for m in range(2, n + 1):
                    prev = np.empty_like(index)
                    prev[:1] = -1
                    prev[1:] = index[:-1]
                    ends = np.flatnonzero(not_bos & (prev >= 0))
                    keys = np.take(prev, ends) * V + np.take(stream, ends)
                    if m == n:
                        runs.add(*_run_of(keys))
                        break
                    index = np.full(stream.size, -1, dtype=np.int64)
                    index[ends] = indexes[m - 1].find(keys)
                del index, prev, ends, keys
            keys, count = runs.merged()
            spills += runs.spills
            del runs
            tables.append(NgramTable(n, keys, count, *_links(keys, V, tables[-1])))
            release_free_memory()
            if n < order:
                indexes.append(key_index(keys, budget))
    return NgramCounts(V, tables, spills)


def counts_of_counts(count: np.ndarray, upto: int = 4) -> np.ndarray:
    """n_r = how many types have count r, for r = 0..upto (n_0 counts zero-count entries)."""
    c = np.asarray(count, dtype=np.int64)
    return np.bincount(c[c <= upto], minlength=upto + 1)[: upto + 1]
