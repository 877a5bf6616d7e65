"""Back-off tables (what an ARPA file holds) and the vectorised scorer every n-gram model shares.

    ln p(w | h) = logp(h w)                       if h w is in the tables
                = logbo(h) + ln p(w | h')         otherwise (logbo = 0 when h is not in the tables)

where h is the history cut at `<s>` and at N−1 words, and h' drops its first word. Per order the n-grams
are keyed `index of the prefix in the order n−1 table × V + last word` and sorted, so a lookup is one
`np.searchsorted`, the children of a context are one contiguous block, and scoring a corpus is N passes
of array operations — never a loop over tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.ngram.arpa import LN10, ArpaSection
from lmbench.models.ngram.counts import depth_in_sentence
from lmbench.models.ngram.hashindex import KeyIndex
from lmbench.text.vocab import BOS_ID, SPECIALS, Vocabulary

SCORE_BLOCK = 1 << 16  # tokens per scoring block: the scorer's arrays of a block fit in a core's cache


def _gather(values: np.ndarray, idx: np.ndarray, fill: float) -> np.ndarray:
    """values[idx] where idx ≥ 0, else `fill`; −1 must not index (a table of an order may be empty)."""
    return _with_fill(values, fill)[idx]


def _with_fill(values: np.ndarray, fill: float) -> np.ndarray:
    """`values` (float64) with one more entry, `fill`, at the end: indexing it with −1 reads `fill`.

    One plain gather then serves found and absent entries alike, where a masked gather (`out[found] =
    values[idx[found]]`) costs several passes over the queries.
    """
    out = np.empty(values.size + 1, dtype=np.float64)
    out[:-1] = values
    out[-1] = fill
    return out


def _shifted(index: np.ndarray) -> np.ndarray:
    """index[t − 1] at every position t (−1 at t = 0): what ends just before each position."""
    out = np.empty_like(index)
    out[:1] = -1
    out[1:] = index[:-1]
    return out


@dataclass
class BackoffTables:
    """Sorted keys, ln probabilities and ln back-off weights per order (order 1 holds every vocabulary id)."""

    V: int
    keys: list[np.ndarray]
    logp: list[np.ndarray]
    logbo: list[np.ndarray]
    missing_logbo: float = 0.0  # ln back-off of a context that is not in the tables
    _index: dict[int, KeyIndex] = field(default_factory=dict, repr=False, compare=False)

    @property
    def order(self) -> int:
        """The highest order N."""
        return len(self.keys)

    def lookup(self, n: int, prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Index in the order-n table of the n-gram (prefix index, word), or −1; prefix −1 means absent."""
        if n == 1:
            return np.asarray(word, dtype=np.int64)
        if n not in self._index:  # built on first use; a hash probe beats a binary search per query
            self._index[n] = KeyIndex(self.keys[n - 1])
        prefix = np.asarray(prefix, dtype=np.int64)
        pos = self._index[n].find(prefix * self.V + word)
        return np.where(prefix >= 0, pos, -1)

    def locate(self, stream: np.ndarray, depth: np.ndarray | None = None) -> list[np.ndarray]:
        """index[n-1][t]: where the n-gram ending at position t of a bounded stream sits in the order-n
        table, or −1 (absent, or reaching back past its sentence's `<s>`).

        An n-gram ending at t reaches back past `<s>` exactly when t is `<s>` itself or the (n−1)-gram
        ending at t − 1 does; so masking the `<s>` positions at every order is all the cut takes (`depth`
        is accepted for callers that have it, and not needed).
        """
        stream = np.asarray(stream, dtype=np.int64)
        at_bos = stream == BOS_ID
        index = [stream]
        for n in range(2, self.order + 1):
            prev = _shifted(index[-1])  # the (n−1)-gram ending just before each position
            prev[at_bos] = -1
            index.append(self._find(n, prev, stream))
        return index

    def _find(self, n: int, prefix: np.ndarray, word: np.ndarray) -> np.ndarray:
        """`lookup` for n ≥ 2 without its checks: a prefix of −1 makes a negative key, which no table holds."""
        if n not in self._index:
            self._index[n] = KeyIndex(self.keys[n - 1])
        return self._index[n].find(prefix * self.V + word)

    # --- scoring a stream -----------------------------------------------------------------------------
    def score_stream(self, stream: np.ndarray) -> np.ndarray:
        """ln p of every token of a bounded stream (`<s> w … </s> <s> …`) given its history; `<s>` gets 0."""
        stream = np.asarray(stream)
        lp = np.zeros(stream.size)
        self._score_blocks(stream, lp, predicted_only=False)
        return lp

    def score_predicted(self, stream: np.ndarray) -> np.ndarray:
        """ln p of every predicted token of a bounded stream (every token but `<s>`), in stream order."""
        stream = np.asarray(stream)
        lp = np.empty(stream.size - int(np.count_nonzero(stream == BOS_ID)))
        self._score_blocks(stream, lp, predicted_only=True)
        return lp

    def _score_blocks(self, stream: np.ndarray, out: np.ndarray, predicted_only: bool) -> None:
        """Score the stream in blocks of whole sentences (cut before a `<s>`, which no n-gram reaches past)
        of about SCORE_BLOCK tokens: every pass of the scorer then works on arrays that stay in cache."""
        bos = np.flatnonzero(stream == BOS_ID)
        cuts = [0, stream.size] if stream.size else [0]
        if bos.size:
            near = np.minimum(np.searchsorted(bos, np.arange(0, stream.size, SCORE_BLOCK)), bos.size - 1)
            cuts = np.unique(np.concatenate([[0], bos[near], [stream.size]])).tolist()
        values = self._score_values()
        at = 0
        for a, b in zip(cuts[:-1], cuts[1:]):
            block = np.asarray(stream[a:b], dtype=np.int64)
            lp = self._score(block, values)
            if predicted_only:
                lp = lp[block != BOS_ID]
                out[at : at + lp.size] = lp
                at += lp.size
            else:
                lp[block == BOS_ID] = 0.0
                out[a:b] = lp

    def _score_values(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per order n ≥ 2: ln p of the order-n table and ln back-off of the order n−1 table, each with
        one more entry read by index −1 (0 for an absent n-gram, `missing_logbo` for an absent context)."""
        return [(_with_fill(self.logp[n - 1], 0.0), _with_fill(self.logbo[n - 2], self.missing_logbo))
                for n in range(2, self.order + 1)]

    def _score(self, stream: np.ndarray, values: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """ln p of every token of an int64 bounded stream; the values at `<s>` positions are meaningless."""
        index = self.locate(stream)
        # Build ln p up from the unigrams: at order n, a found n-gram replaces the lower-order value, an
        # unfound one adds the back-off of its (n−1)-word context — if the history is that long at all.
        # A context that is absent (index −1) adds `missing_logbo`; when that is 0 (every normalised
        # method), a history too short for the order adds 0 as well and needs no mask of its own.
        depth = depth_in_sentence(stream) if self.missing_logbo != 0.0 else None
        lp = np.take(self.logp[0], stream)
        for n in range(2, self.order + 1):
            logp, logbo = values[n - 2]
            ctx = _shifted(index[n - 2])  # the (n−1)-gram ending just before each position
            backed = lp + np.take(logbo, ctx)
            if depth is not None:
                backed = np.where(depth >= n - 1, backed, lp)
            # Where the n-gram is found its value replaces the backed-off one (a scatter: np.where is
            # branchy and slow on a mask this irregular).
            found = np.flatnonzero(index[n - 1] >= 0)
            backed[found] = np.take(logp, np.take(index[n - 1], found))
            lp = backed
        return lp

    # --- the next-token distribution -------------------------------------------------------------------
    def context_indices(self, contexts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """For each context (ids without `<s>`): the table index of its last m words for m = 1..N−1
        (−1 when absent) as an (n_contexts, N−1) array, and the usable history length (cut at `<s>`)."""
        N1 = self.order - 1
        n_ctx = len(contexts)
        hist = np.full((n_ctx, max(N1, 1)), -1, dtype=np.int64)
        length = np.zeros(n_ctx, dtype=np.int64)
        if N1 == 0:
            return np.zeros((n_ctx, 0), dtype=np.int64), length
        for i, c in enumerate(contexts):  # one row per context, building the padded history matrix
            h = np.concatenate([[BOS_ID], np.asarray(c, dtype=np.int64)])[-N1:]
            hist[i, N1 - h.size :] = h
            length[i] = h.size
        if hist.size and (hist.max() >= self.V):
            raise LmbenchError(f"context ids must be below the vocabulary size {self.V}")
        idx = np.full((n_ctx, N1), -1, dtype=np.int64)
        for m in range(1, N1 + 1):
            cur = hist[:, N1 - m]
            cur = np.where(cur >= 0, cur, -1)
            for j in range(N1 - m + 1, N1):  # extend the m-gram word by word through the tables
                order = j - (N1 - m) + 1
                ok = cur >= 0
                nxt = np.full(n_ctx, -1, dtype=np.int64)
                nxt[ok] = self.lookup(order, cur[ok], hist[ok, j])
                cur = nxt
            idx[:, m - 1] = np.where(length >= m, cur, -1)
        return idx, length

    def next_logprobs(self, contexts: Sequence[np.ndarray]) -> np.ndarray:
        """(n_contexts, V) ln p(w | `<s>` + context) for every w; the `<s>` column is −inf."""
        n_ctx = len(contexts)
        out = np.repeat(self.logp[0][None, :], n_ctx, axis=0)
        idx, length = self.context_indices(contexts)
        for m in range(1, self.order):
            rows = np.flatnonzero(length >= m)
            ctx = idx[rows, m - 1]
            known = ctx >= 0
            out[rows] += _gather(self.logbo[m - 1], ctx, self.missing_logbo)[:, None]
            rows, ctx = rows[known], ctx[known]
            keys = self.keys[m]
            lo = np.searchsorted(keys, ctx * self.V)
            hi = np.searchsorted(keys, (ctx + 1) * self.V)
            n_children = hi - lo
            r = np.repeat(rows, n_children)
            pos = np.repeat(lo - np.cumsum(n_children) + n_children, n_children) + np.arange(n_children.sum())
            out[r, keys[pos] % self.V] = self.logp[m][pos]
        out[:, BOS_ID] = -np.inf
        return out

    # --- ARPA ----------------------------------------------------------------------------------------
    def ngram_ids(self, n: int) -> np.ndarray:
        """The words of every order-n entry as an (entries, n) id array."""
        keys = self.keys[n - 1]
        if n == 1:
            return keys[:, None]
        return np.column_stack([self.ngram_ids(n - 1)[keys // self.V], keys % self.V])

    def to_sections(self, vocab: Vocabulary) -> list[ArpaSection]:
        """ARPA sections (log10 values); `<s>` is written with log10 p = −99, as SRILM does."""
        if self.missing_logbo != 0.0:
            raise LmbenchError("this model backs off from unseen contexts with a weight an ARPA file cannot hold "
                               "(stupid back-off scores are not probabilities); it cannot be exported")
        tokens = np.asarray(vocab.tokens, dtype=object)
        sections = []
        for n in range(1, self.order + 1):
            ids = self.ngram_ids(n)
            words = [tuple(row) for row in tokens[ids].tolist()]
            sections.append(ArpaSection(n, words, self.logp[n - 1] / LN10, self.logbo[n - 1] / LN10))
        return sections

    @classmethod
    def from_sections(cls, sections: list[ArpaSection], path: str = "ARPA file") -> tuple[Vocabulary, BackoffTables]:
        """Build a vocabulary (specials first, then the unigrams in file order) and tables from ARPA sections."""
        uni = sections[0]
        words = [w[0] for w in uni.words]
        seen: dict[str, int] = {}
        for i, w in enumerate(words):
            if w in seen:
                raise LmbenchError(f"{path}:{uni.lines[i]}: malformed ARPA file: unigram {w!r} appears twice")
            seen[w] = i
        tokens = [*SPECIALS, *(w for w in words if w not in SPECIALS)]
        vocab = Vocabulary(tokens, np.zeros(len(tokens), dtype=np.int64))
        V = len(tokens)
        order_in_file = np.array([vocab.index[w] for w in words], dtype=np.int64)
        logp1 = np.full(V, -np.inf)  # a special the file lacks (often <unk>) has probability 0
        logbo1 = np.zeros(V)
        logp1[order_in_file] = _ln(uni.log10_prob)
        logbo1[order_in_file] = _ln(uni.log10_backoff)
        logp1[BOS_ID] = -np.inf  # <s> is context only, never predicted (KenLM writes 0, SRILM −99)
        keys, logp, logbo = [np.arange(V, dtype=np.int64)], [logp1], [logbo1]
        tables = cls(V, keys, logp, logbo)
        index = vocab.index
        for s in sections[1:]:
            n = s.order
            try:
                ids = np.array([[index[w] for w in g] for g in s.words], dtype=np.int64).reshape(-1, n)
            except KeyError as e:
                bad = next(i for i, g in enumerate(s.words) if any(w not in index for w in g))
                raise LmbenchError(f"{path}:{s.lines[bad]}: malformed ARPA file: word {e.args[0]!r} of "
                                   f"{' '.join(s.words[bad])!r} has no unigram entry") from None
            prefix = ids[:, 0]
            for j in range(1, n - 1):
                prefix = tables.lookup(j + 1, prefix, ids[:, j])
            if (prefix < 0).any():
                bad = int(np.flatnonzero(prefix < 0)[0])
                raise LmbenchError(f"{path}:{s.lines[bad]}: malformed ARPA file: the {n}-gram "
                                   f"{' '.join(s.words[bad])!r} has no entry for its first {n - 1} words")
            k = prefix * V + ids[:, -1]
            order = np.argsort(k, kind="stable")
            k = k[order]
            dup = np.flatnonzero(k[1:] == k[:-1])
            if dup.size:
                raise LmbenchError(f"{path}:{s.lines[order[dup[0] + 1]]}: malformed ARPA file: "
                                   f"{' '.join(s.words[order[dup[0] + 1]])!r} appears twice")
            keys.append(k)
            logp.append(_ln(s.log10_prob[order]))
            logbo.append(_ln(s.log10_backoff[order]))
        return vocab, tables


def _ln(log10_values: np.ndarray) -> np.ndarray:
    """log10 → ln, with ARPA's −99 (or less) read as log 0."""
    v = np.asarray(log10_values, dtype=np.float64)
    return np.where(v <= -99.0, -np.inf, v * math.log(10.0))

