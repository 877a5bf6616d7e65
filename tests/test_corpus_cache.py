"""The encoded-corpus cache: identical to encoding in memory, invalidated by every input, self-healing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import run_cli

from lmbench.text import cache
from lmbench.text.sources import load_corpus
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import Vocabulary

# Blank lines, CRLF, a BOM, literal <unk>/<s>, repeated and rare words: everything the encoder must keep.
# Pairs seen as "p q" early and "q p" in a later chunk: ties whose vocabulary order depends on the first
# occurrence IN TRAIN, not in the whole file.
TEXT = "\ufeffthe cat sat\r\n\nthe <unk> dog ran .\n" + "".join(f"p{k} q{k}\n" for k in range(30)) + "".join(
    f"a{i % 7} b{i % 3} the c{i % 11} <s> dog\n" if i % 5 else "   \n" for i in range(120)
) + "".join(f"q{k} p{k}\n" for k in range(30)) + "zebra quagga the cat\nlast line without newline"


def _in_memory(spec, tokenizer, monkeypatch, **kw):
    """The corpus encoded by the in-memory path (cache off)."""
    with monkeypatch.context() as m:
        m.setenv("LMBENCH_CACHE", "off")
        return load_corpus(spec, tokenizer, **kw)


def _assert_same(a, b) -> None:
    assert a.vocab == b.vocab
    for split in ("train", "valid", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert (x is None) == (y is None), split
        if x is None:
            continue
        assert np.array_equal(x.ids, y.ids), split
        assert np.array_equal(x.offsets, y.offsets), split
        assert np.array_equal(x.oov, y.oov), split
        assert x.name == y.name


@pytest.fixture
def small_chunks(monkeypatch, tmp_path):
    """A private cache and chunks of ~200 bytes, so the worker processes really split the text."""
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "CHUNK_BYTES", 200)
    return tmp_path / "cache"


def test_cached_file_split_matches_in_memory_encoding(tmp_path, small_chunks, monkeypatch):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8", newline="")
    cases = [(str(path), Tokenizer("word")), (f"{path}?split=50/0/50&seed=5", Tokenizer("whitespace", lowercase=True))]
    for spec, tok in cases:
        first = load_corpus(spec, tok)  # encoded in chunks and written
        again = load_corpus(spec, tok)  # memory-mapped
        assert isinstance(again.train.ids, np.memmap)
        expected = _in_memory(spec, tok, monkeypatch)
        _assert_same(first, expected)
        _assert_same(again, expected)


def test_cached_directory_with_given_vocab_and_min_count(tmp_path, small_chunks, monkeypatch):
    d = tmp_path / "corpus"
    d.mkdir()
    lines = TEXT.splitlines()
    (d / "train.txt").write_text("\n".join(lines[:80]), encoding="utf-8")
    (d / "test.txt").write_text("\n".join(lines[80:]) + "\nunseen words here\n", encoding="utf-8")
    tok = Tokenizer("word")
    built = load_corpus(str(d), tok, min_count=2, max_size=6)
    _assert_same(built, _in_memory(str(d), tok, monkeypatch, min_count=2, max_size=6))
    assert built.test.oov_tokens >= 3  # unseen, words, here
    vocab = built.vocab
    given = load_corpus(str(d), tok, vocab=vocab)
    _assert_same(given, _in_memory(str(d), tok, monkeypatch, vocab=vocab))


def _entries(root):
    return list(cache.list_entries(root))


def test_cache_is_invalidated_by_file_tokenizer_and_vocabulary(tmp_path, small_chunks, monkeypatch):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    tok = Tokenizer("word")
    load_corpus(str(path), tok)
    load_corpus(str(path), tok)
    assert len(_entries(small_chunks)) == 1
    load_corpus(str(path), Tokenizer("word", lowercase=True))  # tokenizer option
    assert len(_entries(small_chunks)) == 2
    vocab = Vocabulary.build([["the", "cat"]])
    load_corpus(str(path), tok, vocab=vocab)  # a given vocabulary
    load_corpus(str(path), tok, vocab=Vocabulary.build([["the", "dog"]]))  # another one
    assert len(_entries(small_chunks)) == 4
    load_corpus(str(path), tok, min_count=2)  # vocabulary built differently
    assert len(_entries(small_chunks)) == 5
    # Same size, same mtime second: only the content hash (through the inode/ctime stamp) can tell.
    before = path.stat()
    path.write_text(TEXT.replace("zebra", "zebu!"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = load_corpus(str(path), tok)
    assert "zebu" in changed.vocab and "zebra" not in changed.vocab
    _assert_same(changed, _in_memory(str(path), tok, monkeypatch))
    assert len(_entries(small_chunks)) == 6


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "vocab"])
def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, small_chunks, monkeypatch, damage):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    tok = Tokenizer("word")
    load_corpus(str(path), tok)
    (entry,) = [small_chunks / "corpora" / e["key"] for e in _entries(small_chunks)]
    ids_file = entry / "train" / "ids.npy"
    if damage == "flip":
        data = bytearray(ids_file.read_bytes())
        data[-4] ^= 0x01  # one id changed by one, still in range: only the checksum catches it
        ids_file.write_bytes(bytes(data))
    elif damage == "truncate":
        ids_file.write_bytes(ids_file.read_bytes()[:-8])
    elif damage == "manifest":
        (entry / "arrays.json").write_text("{not json", encoding="utf-8")
    else:
        tokens = json.loads((entry / "tokens.json").read_text(encoding="utf-8"))
        (entry / "tokens.json").write_text(json.dumps(tokens[:-1]), encoding="utf-8")
    with pytest.raises(cache.CorruptEntryError):
        cache.read_entry(entry)
    rebuilt = load_corpus(str(path), tok)
    _assert_same(rebuilt, _in_memory(str(path), tok, monkeypatch))
    cache.read_entry(entry)  # healthy again


def test_cache_location_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x"
    monkeypatch.setenv("LMBENCH_CACHE", "off")
    assert cache.cache_dir() is None
    monkeypatch.delenv("LMBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cache.sys, "platform", "linux")
    assert cache.cache_dir() == tmp_path / "xdg" / "lmbench"


def test_bad_utf8_in_a_later_chunk_gives_the_line(tmp_path, small_chunks):
    path = tmp_path / "bad.txt"
    path.write_bytes(("word line\n" * 60).encode() + b"bad \xff byte\n" + b"more\n" * 30)
    from lmbench.errors import LmbenchError

    with pytest.raises(LmbenchError, match=r"bad.txt:61: invalid UTF-8 byte 0xff"):
        load_corpus(str(path), Tokenizer("word"))
    assert _entries(small_chunks) == []
    assert not any(p.name.startswith(".") for p in (small_chunks / "corpora").iterdir())


def test_cli_cache_list_and_clear(tmp_path, monkeypatch):
    root = tmp_path / "c"
    monkeypatch.setenv("LMBENCH_CACHE", str(root))
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    load_corpus(str(path), Tokenizer("word"))
    listed = run_cli("corpus", "cache", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)
    assert report["cache"] == str(root)
    assert [e["files"]["all"] for e in report["entries"]] == [str(path)]
    cleared = run_cli("corpus", "cache", "clear", "--json")
    assert json.loads(cleared.stdout)["removed"] == 1
    assert _entries(root) == []


def test_chunks_end_after_the_first_newline_past_each_chunk_size(tmp_path, monkeypatch):
    """The chunk bounds, found in one bounded pass (blocks smaller and larger than a chunk), are those of the
    direct rule: from each bound, skip CHUNK_BYTES, then cut just after the next newline."""
    import random

    def by_hand(data: bytes, size: int) -> list[int]:
        bounds = [0]
        while bounds[-1] + size < len(data):
            newline = data.find(b"\n", bounds[-1] + size)
            if newline < 0 or newline + 1 >= len(data):
                break
            bounds.append(newline + 1)
        return bounds + [len(data)]

    rng = random.Random(0)
    for trial in range(40):
        data = "".join(rng.choice(["a", "bb ", "\n", "ccc", "\n\n"]) for _ in range(rng.randrange(0, 400))).encode()
        path = tmp_path / f"t{trial}.txt"
        path.write_bytes(data)
        size, block = rng.randrange(1, 60), rng.randrange(1, 90)
        monkeypatch.setattr(cache, "CHUNK_BYTES", size)
        monkeypatch.setattr(cache, "_SCAN_BLOCK", block)
        expected = by_hand(data, size)
        assert cache._chunks(path) == [(str(path), a, b) for a, b in zip(expected[:-1], expected[1:]) if b > a]


@pytest.mark.parametrize("text", [
    "a b\nc\n", "  a  b \n\n\nc d e", "a\r\nb c\rd\x0be\x0cf\x1cg\x1dh\x1ei\x1fj\tk\n", "\n\n", "", "x",
    "a\u00a0b\u2028c d\u3000e\x85f\n", "α β\r\n\r\nγ",
])
def test_whitespace_sentences_equal_a_split_per_line(text):
    from itertools import chain

    from lmbench.text.cache import whitespace_sentences

    per_line = [t for t in map(str.split, text.splitlines()) if t]
    tokens, lengths = whitespace_sentences(text)
    assert tokens == list(chain.from_iterable(per_line))
    assert lengths == [len(t) for t in per_line]


def test_chunks_name_the_line_of_the_first_nul_byte(tmp_path, monkeypatch):
    import random

    from lmbench.errors import LmbenchError

    rng = random.Random(1)
    for trial in range(30):
        data = bytearray(rng.choice(b"ab \n") for _ in range(rng.randrange(1, 300)))
        nul = rng.randrange(len(data))
        data[nul] = 0
        if rng.random() < 0.5:
            data[rng.randrange(nul, len(data))] = 0  # a later NUL byte changes nothing
        path = tmp_path / f"n{trial}.txt"
        path.write_bytes(bytes(data))
        monkeypatch.setattr(cache, "_SCAN_BLOCK", rng.randrange(1, 50))
        monkeypatch.setattr(cache, "CHUNK_BYTES", rng.randrange(1, 50))
        line = data.count(b"\n", 0, nul) + 1
        with pytest.raises(LmbenchError, match=f":{line}: NUL byte"):
            cache._chunks(path)
