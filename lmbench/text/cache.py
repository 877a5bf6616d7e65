"""Encoded corpora, once: text files → int32 id streams in an on-disk cache, memory-mapped on later runs.

The first load of a file (or corpus directory) tokenizes and encodes it in parallel chunks, one worker
process per core, and writes each split's ids (int32), sentence offsets (int64) and OOV marks (bool) plus
the vocabulary into a cache entry. The entry's key is a hash of the source files' SHA-256, the split
options, the tokenizer's `to_json()` and the vocabulary (or the options it is built with), so a change
to any of them misses the cache. Later loads memory-map the arrays.

Memory stays bounded whatever the text size: workers see one chunk of text at a time and write its local
ids to a temporary file on disk; the parent keeps only the type table and per-chunk sentence lengths, and
maps each chunk's ids (in blocks, through the chunk's small local → final map) into the entry once the
vocabulary is known. Whitespace-tokenized chunks are encoded from their bytes (lmbench.text.bytesplit).

Location: $LMBENCH_CACHE, else the platform's cache directory ($XDG_CACHE_HOME/lmbench, ~/.cache/lmbench;
~/Library/Caches/lmbench on macOS; %LOCALAPPDATA%\\lmbench\\cache on Windows). LMBENCH_CACHE=off disables it.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.fileio import write_json_atomic
from lmbench.text.bytesplit import encode_whitespace, normalized_bytes
from lmbench.text.corpus import Corpus
from lmbench.text.files import nul_error
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import UNK_ID, Vocabulary

FORMAT = 1  # bump when the entry layout or the encoding rules change
CHUNK_BYTES = 4 << 20  # text per worker task: bounds each worker's memory
_SCAN_BLOCK = 1 << 20  # what _chunks reads at a time
_BATCH_LINES = 50_000
_BLOCK = 1 << 22  # ids per block in the final mapping pass
_SPLIT_CODES = ("train", "valid", "test")


def cache_dir() -> Path | None:
    """The corpus cache directory (None when LMBENCH_CACHE=off)."""
    env = os.environ.get("LMBENCH_CACHE")
    if env:
        return None if env.lower() in ("off", "0", "no", "false") else Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lmbench"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "lmbench" / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmbench"


def _corpora_dir(root: Path) -> Path:
    return root / "corpora"


# --- source hashes (memoised by path and stat, like git's index) -------------------------------------
def file_sha256(path: Path, root: Path | None = None) -> str:
    """SHA-256 of a file's bytes; remembered per (path, size, mtime, inode) so a re-load need not re-read it."""
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    memo_path = root / "hashes.json" if root else None
    memo: dict[str, Any] = {}
    if memo_path and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
    key = str(path.resolve())
    if isinstance(memo.get(key), dict) and memo[key].get("stat") == stamp:
        return str(memo[key]["sha256"])
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if memo_path:
        memo[key] = {"stat": stamp, "sha256": digest}
        try:
            write_json_atomic(memo_path, memo)
        except OSError:
            pass  # a read-only cache still works, it just re-hashes
    return digest


# --- the key ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What a file or directory spec reads: one file cut into splits, or one file per split."""

    name: str
    files: dict[str, Path]  # split → file (a single "all" file when split by ratios)
    ratios: tuple[float, float, float] | None = None
    seed: int = 0


def entry_key(source: Source, tokenizer: Tokenizer, vocab: Vocabulary | None, min_count: int,
              max_size: int | None, root: Path | None) -> tuple[str, dict[str, Any]]:
    """The cache key of an encoded corpus and the description it is the hash of."""
    desc: dict[str, Any] = {
        "format": FORMAT,
        "files": {s: {"path": str(p), "sha256": file_sha256(p, root)} for s, p in source.files.items()},
        "split": list(source.ratios) if source.ratios else None,
        "seed": source.seed if source.ratios else None,
        "tokenizer": tokenizer.to_json(),
        "vocab": ({"sha256": hashlib.sha256(vocab.to_text().encode()).hexdigest()} if vocab is not None
                  else {"build": {"min_count": min_count, "max_size": max_size}}),
    }
    # The path is shown by `cache list` but is not part of the key: a copied file hits the same entry.
    material = {**desc, "files": {s: f["sha256"] for s, f in desc["files"].items()}}
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]
    return key, desc


# --- workers --------------------------------------------------------------------------------------------
class _GrowingIndex(dict):
    """token → id; a new token gets the next id."""

    def __missing__(self, token: str) -> int:
        self[token] = index = len(self)
        return index


_WORKER: dict[str, Any] = {}


def _init_worker(tokenizer: Tokenizer) -> None:
    _WORKER["tokenizer"] = tokenizer


def _chunk_bytes(path: str, start: int, end: int) -> bytes:
    """A chunk's bytes (a BOM at the start of the file dropped, as the utf-8-sig codec does)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    return data[len(codecs.BOM_UTF8):] if start == 0 and data.startswith(codecs.BOM_UTF8) else data


def _chunk_text(path: str, start: int, end: int) -> str:
    try:
        return _chunk_bytes(path, start, end).decode("utf-8")
    except UnicodeDecodeError:
        raise _BadTextError(path) from None


def _chunk_lines(path: str, start: int, end: int) -> list[str]:
    return _chunk_text(path, start, end).splitlines()


# ASCII characters str.split() treats as white space, and those str.splitlines() ends a line at.
_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)])
_ASCII_BREAK = np.array([len(f"a{chr(c)}b".splitlines()) == 2 for c in range(128)])


def whitespace_sentences(text: str) -> tuple[list[str], list[int]]:
    """The tokens of every line of `text` split on white space, and the token count of each non-blank line:
    what `[t for t in map(str.split, text.splitlines()) if t]` gives, flattened, without a list per line.

    One split of the whole text (line breaks are white space, so no token spans two lines); for ASCII text
    the counts come from the bytes (a token starts at a non-space after a space; "\r\n" counts as two
    line ends, which only adds a blank line, and blank lines are dropped).
    """
    tokens = text.split()
    if not text.isascii():
        return tokens, [n for n in map(len, map(str.split, text.splitlines())) if n]
    b = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    space = _ASCII_SPACE[b]
    brk = _ASCII_BREAK[b]
    starts = ~space
    starts[1:] &= space[:-1]
    start_pos = np.flatnonzero(starts)
    before = np.searchsorted(start_pos, np.flatnonzero(brk))  # tokens before each line break
    counts = np.diff(before, prepend=0, append=start_pos.size)
    return tokens, counts[counts > 0].tolist()


class _BadTextError(Exception):
    """A chunk is not UTF-8: the parent re-reads the file to report the exact line."""


def _count_nonblank(task: tuple[str, int, int]) -> int:
    return sum(1 for line in _chunk_lines(*task) if line.strip())


def _encode_chunk(task: tuple[str, int, int, str | None, np.ndarray | None]) -> dict[str, Any]:
    """Tokenize one chunk: local type table, local ids and sentence lengths per split."""
    path, start, end, split, assign = task
    tokenizer: Tokenizer = _WORKER["tokenizer"]
    if assign is None and tokenizer.base == "whitespace":
        # The whole chunk at once: normalising it equals normalising each line (a line break is a starter
        # that composes with nothing, and ends the context of case mapping). Encoded from its bytes
        # (bytesplit) unless it holds white space outside ASCII or its token hashes collide.
        try:
            text = normalized_bytes(_chunk_bytes(path, start, end), tokenizer)
        except UnicodeDecodeError:
            raise _BadTextError(path) from None
        fast = encode_whitespace(text) if isinstance(text, bytes) else None
        if fast is not None:
            types, ids, lengths = fast
        else:
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            local = _GrowingIndex()
            tokens, counts = whitespace_sentences(text)
            ids = np.fromiter(map(local.__getitem__, tokens), dtype=np.int32, count=len(tokens))
            types, lengths = list(local), np.asarray(counts, dtype=np.int32)
            del tokens
        out = {"splits": {split: (ids, lengths)} if lengths.size else {}, "types": types}
        if split == "train" and ids.size:
            out["train_order"] = np.arange(len(types), dtype=np.int32)  # local ids follow first occurrence
        return out
    lines = _chunk_lines(path, start, end)
    if assign is None:
        by_split = {split: lines}
    else:
        nonblank = [line for line in lines if line.strip()]
        by_split = {s: [nonblank[i] for i in np.flatnonzero(assign == code)] for code, s in enumerate(_SPLIT_CODES)}
    del lines
    local = _GrowingIndex()
    out: dict[str, Any] = {"splits": {}}
    for s, split_lines in by_split.items():
        if not split_lines:
            continue
        ids_parts, lengths = [], []
        for b in range(0, len(split_lines), _BATCH_LINES):
            sentences = list(filter(None, tokenizer.tokenize_lines(split_lines[b : b + _BATCH_LINES])))
            lengths += map(len, sentences)
            flat = list(chain.from_iterable(sentences))
            ids_parts.append(np.fromiter(map(local.__getitem__, flat), dtype=np.int32, count=len(flat)))
        ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int32)
        out["splits"][s] = (ids, np.asarray(lengths, dtype=np.int32))
    out["types"] = list(local)
    train = out["splits"].get("train")
    if train is not None and train[0].size:
        # Local types in order of first occurrence in training text: the vocabulary's tie-break order. Local
        # ids are handed out in order of first occurrence, so with training text alone that is every id.
        if len(out["splits"]) == 1:
            out["train_order"] = np.arange(len(local), dtype=np.int32)
        else:
            uniq, first = np.unique(train[0], return_index=True)
            out["train_order"] = uniq[np.argsort(first)].astype(np.int32)
    return out


def _encode_chunk_to_file(task: tuple[str, int, int, str | None, np.ndarray | None, str]) -> dict[str, Any]:
    """`_encode_chunk`, each split's ids written to `PREFIX.SPLIT` (the last item of the task) instead of
    being sent back; the chunk's training counts per local type are sent instead."""
    *chunk_task, prefix = task
    out = _encode_chunk(tuple(chunk_task))  # type: ignore[arg-type]
    for split, (ids, lens) in out["splits"].items():
        ids.tofile(f"{prefix}.{split}")
        if split == "train":
            out["train_counts"] = np.bincount(ids, minlength=len(out["types"]))
        out["splits"][split] = (ids.size, lens)
    return out


# --- the parent: chunking, merging, writing ----------------------------------------------------------
def _chunks(path: Path) -> list[tuple[str, int, int]]:
    """Byte ranges of about CHUNK_BYTES, each ending just after a newline (or at the end of the file).

    The file is read once here, in bounded blocks, and refused at its first NUL byte (binary data, named by
    its line; issue 15): a multi-gigabyte binary file never reaches the tokenizer.
    """
    bounds, pos, next_cut = [0], 0, CHUNK_BYTES
    with open(path, "rb") as f:
        while block := f.read(_SCAN_BLOCK):
            nul = block.find(b"\0")
            if nul >= 0:
                raise nul_error(path, _line_at(path, pos + nul))
            while next_cut < pos + len(block):  # cut after the first newline at or beyond next_cut
                newline = block.find(b"\n", max(next_cut - pos, 0))
                if newline < 0:
                    break
                bounds.append(pos + newline + 1)
                next_cut = bounds[-1] + CHUNK_BYTES
            pos += len(block)
    if bounds[-1] != pos:
        bounds.append(pos)
    return [(str(path), a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _line_at(path: Path, offset: int) -> int:
    """The line number (from 1) of a byte offset: the lines are counted only when an error names one."""
    line, pos = 1, 0
    with open(path, "rb") as f:
        while pos < offset and (block := f.read(min(_SCAN_BLOCK, offset - pos))):
            line += block.count(b"\n")
            pos += len(block)
    return line


def workers() -> int:
    """Worker processes for encoding: one per available core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _mapper(n_tasks: int, tokenizer: Tokenizer) -> tuple[Any, Callable[..., Iterator[Any]]]:
    """map(fn, tasks) in a process pool when there is more than one chunk, in-process otherwise."""
    if n_tasks > 1 and workers() > 1:
        import multiprocessing  # a cold cache only: not imported by runs that memory-map an entry

        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        pool = ctx.Pool(min(workers(), n_tasks), initializer=_init_worker, initargs=(tokenizer,))
        return pool, lambda fn, tasks: pool.imap(fn, tasks)
    _init_worker(tokenizer)
    return None, lambda fn, tasks: map(fn, tasks)


def _check_utf8(path: str) -> None:
    # The same line-numbered message as sources.read_text_file (which imports this module, hence not reused).
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LmbenchError(
            f"{path}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x}; lmbench reads UTF-8 text only"
        ) from None
    raise LmbenchError(f"{path}: invalid UTF-8")


def encode_source(source: Source, tokenizer: Tokenizer, vocab: Vocabulary | None, min_count: int,
                  max_size: int | None, out_dir: Path) -> None:
    """Tokenize and encode every split of `source` into `out_dir` (ids/offsets/oov .npy, the vocabulary)."""
    tasks: list[tuple[str, int, int, str | None, np.ndarray | None]] = []
    if source.ratios is not None:
        path = source.files["all"]
        chunks = _chunks(path)
        pool, mapper = _mapper(len(chunks), tokenizer)
        try:
            try:
                counts = list(mapper(_count_nonblank, chunks))
            except _BadTextError:
                _check_utf8(str(path))
            n = sum(counts)
            if n == 0:
                raise LmbenchError(f"{path} is empty (no non-blank lines)")
            # The same seeded cut as sources.split_lines, as one split code per non-blank line.
            order = np.random.default_rng(source.seed).permutation(n)
            n_train, n_valid = round(source.ratios[0] * n), round(source.ratios[1] * n)
            assign = np.full(n, 2, dtype=np.int8)
            assign[order[:n_train]] = 0
            assign[order[n_train : n_train + n_valid]] = 1
            del order
            starts = np.concatenate([[0], np.cumsum(counts)])
            tasks = [(*c, None, assign[starts[i] : starts[i + 1]]) for i, c in enumerate(chunks)]
            _encode_tasks(tasks, mapper, vocab, min_count, max_size, out_dir, source.name)
        finally:
            if pool is not None:
                pool.terminate()
        return
    for split, path in source.files.items():
        chunks = _chunks(path)
        if not chunks:
            raise LmbenchError(f"{path} is empty (no non-blank lines)")
        tasks += [(*c, split, None) for c in chunks]
    pool, mapper = _mapper(len(tasks), tokenizer)
    try:
        _encode_tasks(tasks, mapper, vocab, min_count, max_size, out_dir, source.name)
    finally:
        if pool is not None:
            pool.terminate()


def _encode_tasks(tasks: list[tuple], mapper: Callable[..., Iterator[Any]], vocab: Vocabulary | None, min_count: int,
                  max_size: int | None, out_dir: Path, name: str) -> None:
    index = _GrowingIndex()  # type → provisional id, over every split
    train_counts = np.zeros(1024, dtype=np.int64)
    train_rank = np.full(1024, -1, dtype=np.int64)  # order of first occurrence in training text
    next_rank = 0
    lengths: dict[str, list[np.ndarray]] = {}
    # The workers write each chunk's local ids to a temporary file of their own; per split, each chunk's
    # local → provisional map (its types' ids in `index`) goes to another file, and the final map is
    # composed with them at the end.
    segments: dict[str, list[tuple[Path, int, int]]] = {}  # per chunk: its ids file, how many ids, map entries
    tmp_files: dict[str, Any] = {}
    tmp_dir = Path(tempfile.mkdtemp(prefix=".provisional-", dir=out_dir))
    try:
        try:
            prefixes = [tmp_dir / f"chunk{i}" for i in range(len(tasks))]
            # In order: provisional ids follow the text.
            results = mapper(_encode_chunk_to_file, [(*t, str(p)) for t, p in zip(tasks, prefixes)])
            for prefix, res in zip(prefixes, results):
                gids = np.fromiter(map(index.__getitem__, res["types"]), dtype=np.int32, count=len(res["types"]))
                if len(index) > train_counts.size:
                    grow = max(len(index), 2 * train_counts.size) - train_counts.size
                    train_counts = np.concatenate([train_counts, np.zeros(grow, np.int64)])
                    train_rank = np.concatenate([train_rank, np.full(grow, -1, np.int64)])
                for split, (n_ids, lens) in res["splits"].items():
                    if split not in tmp_files:
                        tmp_files[split] = open(tmp_dir / f"{split}.maps", "wb")
                        lengths[split], segments[split] = [], []
                    gids.tofile(tmp_files[split])
                    lengths[split].append(lens)
                    segments[split].append((prefix.with_suffix(f".{split}"), n_ids, gids.size))
                if "train_counts" in res:  # a chunk's types are distinct: one fancy += is exact
                    train_counts[gids] += res["train_counts"]
                if "train_order" in res:
                    g = gids[res["train_order"]]
                    new = g[train_rank[g] < 0]
                    train_rank[new] = np.arange(next_rank, next_rank + new.size)
                    next_rank += new.size
        except _BadTextError as e:
            _check_utf8(e.args[0])
        for f in tmp_files.values():
            f.close()
        types = list(index)
        n_types = len(types)
        n_train_sentences = int(sum(x.size for x in lengths.get("train", [])))
        built = vocab is None
        if built:
            in_train = np.flatnonzero(train_rank[:n_types] >= 0)
            ordered = in_train[np.argsort(train_rank[in_train])]
            vocab = Vocabulary.from_counts([types[i] for i in ordered], train_counts[ordered],
                                           n_train_sentences, min_count, max_size)
        marking = vocab.encode_marking_oov(types) if n_types else np.zeros(0, np.int32)
        # Tokens as a JSON list and counts as an array: reading them back is C-speed, unlike vocab.txt.
        (out_dir / "tokens.json").write_text(json.dumps(vocab.tokens, ensure_ascii=False), encoding="utf-8")
        np.save(out_dir / "counts.npy", vocab.counts)
        summary: dict[str, Any] = {}
        for split in _SPLIT_CODES:
            if split not in lengths:
                continue
            fmap = np.where(marking < 0, UNK_ID, marking) if built and split == "train" else marking
            summary[split] = _finish_split(tmp_dir / f"{split}.maps", np.concatenate(lengths[split]),
                                           segments[split], fmap, out_dir / split)
        write_json_atomic(out_dir / "arrays.json", {"name": name, "splits": summary, "vocab_size": len(vocab)})
    finally:
        for f in tmp_files.values():
            f.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _npy_writer(path: Path, dtype: type, n: int) -> Any:
    """A file open for writing an .npy array of `n` items after its header (the data follows, in order)."""
    f = open(path, "wb")
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                             "fortran_order": False, "shape": (n,)})
    return f


def _memmap_int32(path: Path) -> np.ndarray:
    return np.memmap(path, dtype=np.int32, mode="r") if path.stat().st_size else np.zeros(0, np.int32)


def _finish_split(maps_path: Path, lengths: np.ndarray, segments: list[tuple[Path, int, int]], fmap: np.ndarray,
                  out: Path) -> dict[str, int]:
    """Map the chunks' local ids (one file each) to final ids, block by block, each chunk through its map
    (in `maps_path`: local → provisional id) composed with `fmap` (provisional → final id, −1: out of
    vocabulary); write ids, offsets and OOV marks."""
    out.mkdir(parents=True, exist_ok=True)
    maps = _memmap_int32(maps_path)
    sizes = np.asarray(lengths, dtype=np.int64)
    n = sum(n_ids for _, n_ids, _ in segments)
    ids_sum = n_oov = 0
    with _npy_writer(out / "ids.npy", np.int32, n) as ids_file, _npy_writer(out / "oov.npy", np.bool_, n) as oov_file:
        map_pos = 0
        for path, n_ids, n_map in segments:
            chunk_map = fmap[maps[map_pos : map_pos + n_map]]
            local = _memmap_int32(path)
            if local.size != n_ids:
                raise LmbenchError(f"{path}: {local.size} ids written, {n_ids} expected")
            for a in range(0, n_ids, _BLOCK):
                block = chunk_map[local[a : a + _BLOCK]]
                marked = block < 0
                block[marked] = UNK_ID
                block.tofile(ids_file)
                marked.tofile(oov_file)
                ids_sum += int(block.sum(dtype=np.int64))
                n_oov += int(np.count_nonzero(marked))
            del local
            map_pos += n_map
    del maps
    offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    np.save(out / "offsets.npy", offsets)
    return {"tokens": n, "sentences": int(sizes.size), "ids_sum": ids_sum, "oov": n_oov}


# --- loading ------------------------------------------------------------------------------------------------
class CorruptEntryError(Exception):
    """A cache entry failed its checks (truncated, edited, half-written): it is rebuilt."""


def read_entry(entry: Path) -> tuple[Vocabulary, dict[str, Corpus], str]:
    """Memory-map a cache entry and check it against its recorded sizes and checksums."""
    try:
        meta = json.loads((entry / "arrays.json").read_text(encoding="utf-8"))
        tokens = json.loads((entry / "tokens.json").read_text(encoding="utf-8"))
        vocab = Vocabulary(tokens, np.load(entry / "counts.npy"))
        if len(vocab) != meta["vocab_size"]:
            raise CorruptEntryError("vocabulary size")
        corpora = {}
        for split, s in meta["splits"].items():
            ids = np.load(entry / split / "ids.npy", mmap_mode="r")
            oov = np.load(entry / split / "oov.npy", mmap_mode="r")
            offsets = np.load(entry / split / "offsets.npy", mmap_mode="r")
            if ids.dtype != np.int32 or oov.dtype != bool or offsets.dtype != np.int64:
                raise CorruptEntryError("dtype")
            if ids.shape != (s["tokens"],) or oov.shape != ids.shape or offsets.shape != (s["sentences"] + 1,):
                raise CorruptEntryError("shape")
            if offsets[0] != 0 or offsets[-1] != ids.size or (ids.size and (np.diff(offsets) < 0).any()):
                raise CorruptEntryError("offsets")
            if int(ids.sum(dtype=np.int64)) != s["ids_sum"] or int(np.count_nonzero(oov)) != s["oov"]:
                raise CorruptEntryError("checksum")
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= len(vocab)):
                raise CorruptEntryError("id range")
            corpora[split] = Corpus(ids, offsets, vocab, oov, f"{meta['name']}/{split}")
        return vocab, corpora, meta["name"]
    except (OSError, ValueError, KeyError, TypeError, LmbenchError) as e:
        raise CorruptEntryError(str(e)) from None


def cached_corpora(source: Source, tokenizer: Tokenizer, vocab: Vocabulary | None, min_count: int,
                   max_size: int | None, root: Path) -> tuple[Vocabulary, dict[str, Corpus], str]:
    """The encoded splits of `source`, from the cache, encoding them first on a miss or a corrupt entry."""
    key, desc = entry_key(source, tokenizer, vocab, min_count, max_size, root)
    entry = _corpora_dir(root) / key
    if (entry / "manifest.json").is_file():
        try:
            return read_entry(entry)
        except CorruptEntryError:
            shutil.rmtree(entry, ignore_errors=True)  # rebuilt below
    _corpora_dir(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=_corpora_dir(root)))
    try:
        encode_source(source, tokenizer, vocab, min_count, max_size, tmp)
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        # The manifest is written last: an entry without one is never read.
        write_json_atomic(tmp / "manifest.json", {**desc, "name": source.name, "bytes": size,
                                                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        try:
            tmp.rename(entry)
        except OSError:
            if not (entry / "manifest.json").is_file():  # another process finished first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return read_entry(entry)


# --- `lmbench corpus cache list|clear` ---------------------------------------------------------------------
def list_entries(root: Path | None = None) -> Iterator[dict[str, Any]]:
    """Every complete cache entry: key, name, sources, tokenizer, size on disk, creation time."""
    root = root or cache_dir()
    if root is None or not _corpora_dir(root).is_dir():
        return
    for entry in sorted(_corpora_dir(root).iterdir()):
        manifest = entry / "manifest.json"
        if entry.name.startswith(".") or not manifest.is_file():
            continue
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        yield {"key": entry.name, "name": m.get("name"), "files": {s: f["path"] for s, f in m["files"].items()},
               "tokenizer": m.get("tokenizer"), "bytes": m.get("bytes", 0), "created": m.get("created")}


def clear(root: Path | None = None) -> int:
    """Remove every cache entry (and unfinished ones); returns how many complete entries were removed."""
    root = root or cache_dir()
    if root is None or not _corpora_dir(root).is_dir():
        return 0
    removed = sum(1 for _ in list_entries(root))
    shutil.rmtree(_corpora_dir(root), ignore_errors=True)
    (root / "hashes.json").unlink(missing_ok=True)
    return removed
