"""The byte-level whitespace encoder equals the string path: Tokenizer("whitespace") applied line by line."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench.text import bytesplit, cache
from lmbench.text.tokenize import Tokenizer

# Awkward pieces: ASCII words (short, exactly 8 and 16 bytes, longer), every ASCII white-space and line-break
# byte, CR/LF, white space and line breaks outside ASCII, Korean syllables and conjoining jamo (NFC composes
# them), combining accents (alone and after a letter), characters NFC changes (Å sign, ﬁ stays), case
# mappings that change length or depend on context (İ, ß, final sigma), a literal <unk>.
PIECES = [
    "a", "B", "cat", "Dog", "abcdefgh", "abcdefghi", "ABCDEFGHIJKLMNOP", "abcdefghijklmnopqrstuvwxyz", "x1", "<unk>",
    " ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f",
    "\xa0", "\u3000", "\x85", "\u2028", "\u2009",
    "가", "각", "한국어", "\u1100\u1161", "\u11a8", "e\u0301", "\u0301", "\u0308", "é", "\u212b", "ﬁ", "İ", "ß",
    "ΑΣ", "Σ", "ς", "ÿ", "😀", "\ufeff",
]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
ascii_texts = st.lists(st.sampled_from([p for p in PIECES if p.isascii()]), max_size=80).map("".join)
tokenizers = st.builds(lambda lower, nfc: Tokenizer("whitespace", lowercase=lower, nfc=nfc), st.booleans(),
                       st.booleans())


def reference(text: str, tok: Tokenizer) -> tuple[list[str], list[int], list[int]]:
    """Types by first occurrence, their ids and the sentence lengths: the tokenizer line by line, in Python."""
    sentences = [s for s in (tok(line) for line in text.splitlines()) if s]
    index: dict[str, int] = {}
    ids = [index.setdefault(t, len(index)) for s in sentences for t in s]
    return list(index), ids, [len(s) for s in sentences]


def chunk(tmp_path, data: bytes, tok: Tokenizer) -> tuple[list[str], list[int], list[int]]:
    """The cache's encoding of a whole file as one training chunk."""
    path = tmp_path / "chunk.txt"
    path.write_bytes(data)
    cache._init_worker(tok)
    out = cache._encode_chunk((str(path), 0, len(data), "train", None))
    if not out["splits"]:
        return out["types"], [], []
    ids, lengths = out["splits"]["train"]
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    return out["types"], ids.tolist(), lengths.tolist()


def test_non_ascii_space_is_every_space_outside_ascii():
    spaces = "".join(c for c in map(chr, range(0x80, sys.maxunicode + 1)) if c.isspace())
    assert bytesplit.NON_ASCII_SPACE == spaces
    breaks = [c for c in map(chr, range(0x80, sys.maxunicode + 1)) if len(f"a{c}b".splitlines()) == 2]
    assert breaks and all(c in spaces for c in breaks)


@settings(max_examples=300, deadline=None)
@given(text=texts, tok=tokenizers)
def test_byte_path_equals_string_path(text, tok):
    normalized = bytesplit.normalized_bytes(text.encode("utf-8"), tok)
    clean = not any(c in bytesplit.NON_ASCII_SPACE for c in tok.normalize(text))
    assert isinstance(normalized, bytes) == clean
    if not clean:
        assert normalized == tok.normalize(text)
        return
    assert normalized == tok.normalize(text).encode("utf-8")
    fast = bytesplit.encode_whitespace(normalized)
    assert fast is not None  # no collision among a handful of types
    types, ids, lengths = fast
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    assert (types, ids.tolist(), lengths.tolist()) == reference(text, tok)


@settings(max_examples=150, deadline=None)
@given(text=texts, tok=tokenizers, bom=st.booleans())
def test_cache_chunk_equals_tokenizer_per_line(tmp_path_factory, text, tok, bom):
    data = ("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8")
    # A file's text drops one BOM at its start (utf-8-sig), as lmbench's reader does.
    assert chunk(tmp_path_factory.mktemp("c"), data, tok) == reference(data.decode("utf-8-sig"), tok)


@settings(max_examples=100, deadline=None)
@given(text=ascii_texts, lower=st.booleans())
def test_ascii_text_takes_the_byte_path(text, lower):
    tok = Tokenizer("whitespace", lowercase=lower)
    normalized = bytesplit.normalized_bytes(text.encode("ascii"), tok)
    assert normalized == text.lower().encode() if lower else normalized == text.encode()
    fast = bytesplit.encode_whitespace(normalized)
    assert fast is not None
    assert (fast[0], fast[1].tolist(), fast[2].tolist()) == reference(text, tok)


def test_many_types_long_tokens_and_near_misses():
    # Tokens sharing their first 8 or 16 bytes and differing after; a few thousand types over several lines.
    rng = np.random.default_rng(0)
    stems = ["abcdefgh", "abcdefghijklmnop", "", "x"]
    words = [stems[i % 4] + str(int(k)) for i, k in enumerate(rng.integers(0, 3000, 20000))]
    text = "\n".join(" ".join(words[i : i + 17]) for i in range(0, len(words), 17)) + "\n"
    fast = bytesplit.encode_whitespace(text.encode())
    assert fast is not None
    assert (fast[0], fast[1].tolist(), fast[2].tolist()) == reference(text, Tokenizer("whitespace"))


def test_hash_collisions_are_detected_and_the_chunk_takes_the_string_path(tmp_path, monkeypatch):
    text = "the cat sat on the mat\nabcdefghij abcdefghik the\n\n a b a\n"
    tok = Tokenizer("whitespace")
    monkeypatch.setattr(bytesplit, "_M1", np.uint64(0))  # every token of ≤ 8 bytes hashes alike
    monkeypatch.setattr(bytesplit, "_M3", np.uint64(0))  # … and so does every other one
    assert bytesplit.encode_whitespace(text.encode()) is None
    assert chunk(tmp_path, text.encode(), tok) == reference(text, tok)
    # Same length and first 8 bytes, different after: only the check of the further words tells them apart.
    for text in ("abcdefghij abcdefghik\n", "abcdefghijklmnopq abcdefghijklmnopr abcdefghijklmnopq\n"):
        assert bytesplit.encode_whitespace(text.encode()) is None
        assert chunk(tmp_path, text.encode(), tok) == reference(text, tok)


def test_nul_bytes_take_the_string_path():
    assert bytesplit.encode_whitespace(b"a\0 a b") is None


@pytest.mark.parametrize("data", [b"", b"\n\n", b"   \t", b"x", b"\xef\xbb\xbf", b"\xef\xbb\xbfa b\r\n"])
def test_edge_cases(tmp_path, data):
    tok = Tokenizer("whitespace")
    assert chunk(tmp_path, data, tok) == reference(data.decode("utf-8-sig"), tok)
