"""Whitespace tokens of UTF-8 text encoded straight from its bytes: no Python string per token.

`Tokenizer("whitespace")` splits each line with `str.split()`. When a text has no white space outside
ASCII (after NFC and lower-casing), that split is a split of its UTF-8 bytes at the ASCII white-space bytes
(a byte < 0x80 never occurs inside a multi-byte character), and its lines end at the ASCII line-break
bytes. So the tokens are found with NumPy: token starts and ends from a table lookup of the bytes, each
token read as 8-byte words (zero-padded) and hashed, the hashes sorted together with the token index in one
`np.sort` of uint64 keys, and the groups of equal hashes checked word by word against their first token:
equal hashes of different tokens (possible, if rare) are detected and the caller falls back to the string
path. The ids are local ids in order of first occurrence, the order `cache._GrowingIndex` gives.
"""

from __future__ import annotations

import re

import numpy as np

from lmbench.text.tokenize import Tokenizer

# Byte tables for bytes.translate: ASCII white space (what str.split() splits at) and ASCII line breaks
# (where str.splitlines() ends a line); bytes >= 0x80 are neither (they only occur inside UTF-8 characters).
_SPACE_TABLE = bytes(c < 128 and chr(c).isspace() for c in range(256))
_BREAK_TABLE = bytes(c < 128 and len(f"a{chr(c)}b".splitlines()) == 2 for c in range(256))
# White space outside ASCII (str.isspace(), which str.split() and str.splitlines() use; the test checks this
# list against every code point): its presence sends a text to the string path.
NON_ASCII_SPACE = "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029" \
                  "\u202f\u205f\u3000"
_NON_ASCII_SPACE_RE = re.compile(f"[{NON_ASCII_SPACE}]")
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)  # low k bytes
_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def normalized_bytes(data: bytes, tokenizer: Tokenizer) -> bytes | str:
    """`data` (UTF-8) as the tokenizer sees it (NFC, lower-cased if asked): as UTF-8 bytes for
    `encode_whitespace`, or as a str when it holds white space outside ASCII (the string path's input).
    Raises UnicodeDecodeError for bytes that are not UTF-8."""
    if data.isascii():  # NFC leaves ASCII alone; bytes.lower() is str.lower() on ASCII
        return data.lower() if tokenizer.lowercase else data
    text = tokenizer.normalize(data.decode("utf-8"))
    return text if _NON_ASCII_SPACE_RE.search(text) else text.encode("utf-8")


def _words(buf: bytes, n: int) -> np.ndarray:
    """Little-endian uint64 read at every byte offset 0..n-1 of `buf` (which has ≥ 8 bytes past n)."""
    return np.ndarray(shape=(n,), dtype="<u8", buffer=buf, strides=(1,))


def encode_whitespace(data: bytes) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Types (in order of first occurrence), int32 local ids and the token count of every non-blank line of
    UTF-8 text already normalised and free of non-ASCII white space (see `normalized_bytes`): what splitting
    each line with str.split() and numbering new tokens as they come gives. None on a hash collision."""
    n = len(data)
    if b"\0" in data:  # a NUL byte would make a short token's zero-padded word ambiguous
        return None
    # White space marks with a virtual space before and after the text; the positions where the mark
    # changes alternate: a token's start, its end, the next token's start …
    space = np.frombuffer(b"\1" + data.translate(_SPACE_TABLE) + b"\1", dtype=bool)
    edges = np.flatnonzero(space[1:] != space[:-1])
    del space
    starts = edges[0::2]
    n_tokens = starts.size
    if n_tokens == 0:
        return [], np.zeros(0, np.int32), np.zeros(0, np.int32)
    lens = edges[1::2] - starts
    # Sentence lengths: tokens between line breaks (a "\r\n" is two breaks, i.e. one more blank line).
    breaks = np.flatnonzero(np.frombuffer(data.translate(_BREAK_TABLE), dtype=bool))
    before = np.searchsorted(starts, breaks)
    counts = np.diff(before, prepend=0, append=n_tokens)
    lengths = counts[counts > 0].astype(np.int32)
    del breaks, before, counts

    buf = data + bytes(16)
    words = _words(buf, n + 8)
    long = np.flatnonzero(lens > 8)
    first = words[starts]
    first &= _MASKS[np.minimum(lens, 8)]  # a token of ≤ 8 bytes, exactly (its bytes are never 0)
    h = first * _M1
    h ^= lens.view(np.uint64)  # lengths are ≥ 1: the same bits
    act, j = long, 1
    while act.size:
        w = words[starts[act] + 8 * j] & _MASKS[np.minimum(lens[act] - 8 * j, 8)]
        h[act] = (h[act] ^ w) * _M2
        j += 1
        act = act[lens[act] > 8 * j]
    h ^= h >> np.uint64(31)
    h *= _M3
    h ^= h >> np.uint64(29)
    # One sort of (hash's high bits | token index): equal hashes meet, in text order within each group.
    pos_bits = max(1, (n_tokens - 1).bit_length())
    h >>= np.uint64(pos_bits)
    h <<= np.uint64(pos_bits)
    h |= np.arange(n_tokens, dtype=np.uint64)
    h.sort()
    order = (h & np.uint64((1 << pos_bits) - 1)).view(np.int64)  # token indices, grouped by hash
    h >>= np.uint64(pos_bits)
    new = np.empty(n_tokens, dtype=bool)
    new[0] = True
    np.not_equal(h[1:], h[:-1], out=new[1:])
    del h
    group = np.cumsum(new, dtype=np.int32)
    group -= 1
    rep = order[new]  # each group's first occurrence (the smallest index: the key's low bits)
    del new
    # Groups are in hash order; number them by first occurrence.
    by_first = np.argsort(rep)
    rank = np.empty(rep.size, dtype=np.int32)
    rank[by_first] = np.arange(rep.size, dtype=np.int32)
    ids = np.empty(n_tokens, dtype=np.int32)
    ids[order] = rank[group]
    del order, group, rank
    firsts = rep[by_first]  # the first occurrence of each id
    # Exact check: every token equals the first occurrence of its id (first word; length and every further
    # word of the long ones). A mismatch is a hash collision: the caller takes the string path.
    if not np.array_equal(first, first[firsts][ids]):
        return None
    a, r, j = long, firsts[ids[long]], 1
    if not np.array_equal(lens[a], lens[r]):
        return None
    while a.size:
        mask = _MASKS[np.minimum(lens[a] - 8 * j, 8)]
        if not np.array_equal(words[starts[a] + 8 * j] & mask, words[starts[r] + 8 * j] & mask):
            return None
        j += 1
        keep = lens[a] > 8 * j
        a, r = a[keep], r[keep]
    # The types' bytes gathered into one text, a space after each: one decode and one split.
    type_lens = lens[firsts] + 1
    at = np.repeat(starts[firsts] - np.cumsum(type_lens) + type_lens, type_lens) + np.arange(int(type_lens.sum()))
    spaced = np.frombuffer(buf, dtype=np.uint8)[at]
    spaced[np.cumsum(type_lens) - 1] = ord(" ")
    types = spaced.tobytes().decode("utf-8").split(" ")[:-1]
    return types, ids, lengths
