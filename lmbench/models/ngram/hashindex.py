"""A hash index over int64 keys, built and probed with whole-array operations (open addressing).

`np.searchsorted` costs ~log2(n) dependent cache misses per query; scoring a corpus asks one query per
token and order, so the back-off tables also keep this index: a table of 2–4 slots per key, a
multiplicative hash, and linear probing done in rounds over the still-unresolved queries (with the
table at most half full, almost every query resolves in the first round).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: multiply, keep the top bits
EMPTY = -1
FIND_BLOCK = 1 << 16  # queries per block in find


class KeyIndex:
    """Maps each key of an array of distinct non-negative int64 keys to its position in that array."""

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        bits = max(4, int(np.ceil(np.log2(max(2 * keys.size, 1)))) + 1)  # at most half full
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        self.slot_key = np.full(1 << bits, EMPTY, dtype=np.int64)
        self.slot_pos = np.full(1 << bits, -1, dtype=np.int64)  # −1 at empty slots: a miss reads −1
        pending = np.arange(keys.size, dtype=np.int64)
        slot = self._hash(keys)
        while pending.size:
            free = self.slot_key[slot] == EMPTY
            # Of the keys that reach the same free slot in this round, the first one takes it.
            taken, first = np.unique(slot[free], return_index=True)
            winners = pending[free][first]
            self.slot_key[taken] = keys[winners]
            self.slot_pos[taken] = winners
            placed = np.zeros(pending.size, dtype=bool)
            placed[np.flatnonzero(free)[first]] = True
            pending, slot = pending[~placed], slot[~placed]
            slot = np.where(self.slot_key[slot] == EMPTY, slot, (slot + 1) & self.mask)

    def _hash(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.view(np.uint64) * _GOLDEN) >> self.shift).view(np.int64)

    def find(self, queries: np.ndarray) -> np.ndarray:
        """Position of each query key, or −1 when it is not a key (negative queries included)."""
        q = np.ascontiguousarray(queries, dtype=np.int64)
        if q.size <= FIND_BLOCK:
            return self._find(q)
        # In blocks: the probe arrays of a block stay in cache next to the table.
        out = np.empty(q.size, dtype=np.int64)
        for a in range(0, q.size, FIND_BLOCK):
            out[a : a + FIND_BLOCK] = self._find(q[a : a + FIND_BLOCK])
        return out

    def _find(self, q: np.ndarray) -> np.ndarray:
        slot = self._hash(q)
        # np.take rather than fancy indexing: the same gather, without the indexing machinery's overhead.
        k = np.take(self.slot_key, slot)
        out = np.take(self.slot_pos, slot)  # right for a hit and for an empty slot (−1)
        # The few queries whose slot holds another key probe the following slots, in rounds.
        active = np.flatnonzero((k != q) & (k != EMPTY))
        out[active] = -1
        slot = slot[active]
        while active.size:
            slot = (slot + 1) & self.mask
            k = np.take(self.slot_key, slot)
            qa = np.take(q, active)
            hit = k == qa
            out[active[hit]] = np.take(self.slot_pos, slot[hit])
            go_on = ~hit & (k != EMPTY)
            active, slot = active[go_on], slot[go_on]
        return out
