"""Parallel corpora (sentence pairs) for translators: one `--pairs SPEC` string everywhere.

SPEC is one of
  FILE.tsv             a Tatoeba/Anki export, one pair a line: `source<TAB>target[<TAB>attribution…]`.
                       Options: `source=N` / `target=N` (1-based columns; the target defaults to the other of
                       columns 1 and 2, so `kor.txt?source=2` reads Korean → English), `split=90/10` (train/test,
                       or three shares train/valid/test), `seed=0` (the shuffle behind the split).
  SRC,TGT              two aligned plain-text files, line i of one translating line i of the other (same
                       `split` / `seed` options).
  DIR                  a directory with `train.src` + `train.tgt`, optionally `valid.src/.tgt`, `test.src/.tgt`.
  synthetic:ko-en      the built-in seeded Korean→English generator (lmbench.text.koen); options
                       `train=20000`, `valid=500`, `test=1000` (pair counts) and `seed=0`.
Splits are deterministic: the same file and seed give the same pairs in each split. Source and target get
separate vocabularies, both built from the training pairs with the shared Tokenizer and Vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.seeding import parse_seed
from lmbench.text.corpus import Corpus
from lmbench.text.koen import generate_pairs
from lmbench.text.sources import local_path, parse_options, read_text_file, split_ratios
from lmbench.text.splits import SPLITS, check_split
from lmbench.text.tokenize import Tokenizer, tokenizer_for
from lmbench.text.vocab import Vocabulary

Pair = tuple[str, str]


@dataclass
class PairSplits:
    """Raw (source, target) pairs by split."""

    name: str
    train: list[Pair]
    valid: list[Pair] | None = None
    test: list[Pair] | None = None
    info: dict = field(default_factory=dict)

    def get(self, split: str) -> list[Pair] | None:
        """Pairs of one split, or None when the corpus has no such split."""
        return getattr(self, check_split(split))


@dataclass(frozen=True)
class PairCorpus:
    """Aligned source and target corpora: sentence i of `src` translates to sentence i of `tgt`."""

    src: Corpus
    tgt: Corpus
    name: str = ""

    def __len__(self) -> int:
        return self.src.n_sentences

    def select(self, indices: np.ndarray) -> PairCorpus:
        """The chosen pairs, in the given order."""
        return PairCorpus(self.src.select(indices), self.tgt.select(indices), self.name)


@dataclass
class ParallelSet:
    """Encoded splits with their tokenizers and the two vocabularies (built from train)."""

    name: str
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    train: PairCorpus
    valid: PairCorpus | None
    test: PairCorpus | None
    raw: PairSplits

    def get(self, split: str) -> PairCorpus:
        """One split; a clear error when the corpus lacks it."""
        corpus = getattr(self, check_split(split))
        if corpus is None:
            raise LmbenchError(f"parallel corpus {self.name!r} has no {split} split")
        return corpus


# --- reading ------------------------------------------------------------------------------------------
def _column(options: dict[str, str], key: str, default: int | None) -> int | None:
    value = options.pop(key, None)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise LmbenchError(f"pairs option {key}={value!r} must be a column number ≥ 1 (columns count from 1)")
    return int(value)


def _seed(options: dict[str, str]) -> int:
    return parse_seed(options.pop("seed", "0"), "pairs option seed")


def _ratios(options: dict[str, str]) -> tuple[float, float, float]:
    value = options.pop("split", "90/10")
    parts = value.replace(",", "/").split("/")
    if len(parts) == 2:  # train/test
        value = f"{parts[0]}/0/{parts[1]}"
    return split_ratios(value)


def _reject(options: dict[str, str], spec: str, valid: tuple[str, ...]) -> None:
    if options:
        allowed = f"valid options: {', '.join(valid)}" if valid else "this kind of pairs takes no options"
        raise LmbenchError(f"unknown pairs option(s) {', '.join(sorted(options))} in {spec!r}; {allowed}")


def split_pairs(pairs: list[Pair], ratios: tuple[float, float, float], seed: int) -> list[list[Pair]]:
    """Shuffle pair indices with `seed` and cut them into train/valid/test (file order kept within each)."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_train = round(ratios[0] * len(pairs))
    n_valid = round(ratios[1] * len(pairs))
    cuts = [order[:n_train], order[n_train:n_train + n_valid], order[n_train + n_valid:]]
    return [[pairs[i] for i in np.sort(part)] for part in cuts]


def _check_pair(source: str, target: str, where: str) -> Pair:
    if not source.strip():
        raise LmbenchError(f"{where}: empty source sentence")
    if not target.strip():
        raise LmbenchError(f"{where}: empty target sentence")
    return source.strip(), target.strip()


def read_tsv_pairs(path: str | Path, source: int = 1, target: int | None = None) -> list[Pair]:
    """Pairs from a tab-separated file; blank lines are skipped, a line without a tab is an error."""
    if target is None:
        target = 2 if source == 1 else 1
    if source == target:
        raise LmbenchError(f"{path}: source and target are the same column ({source})")
    pairs = []
    for lineno, line in enumerate(read_text_file(path), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) == 1:
            raise LmbenchError(f"{path}:{lineno}: no tab in the line; a pair line is 'source<TAB>target[<TAB>…]'")
        if max(source, target) > len(cols):
            raise LmbenchError(f"{path}:{lineno}: {len(cols)} columns, but column {max(source, target)} was asked for")
        pairs.append(_check_pair(cols[source - 1], cols[target - 1], f"{path}:{lineno}"))
    return pairs


def read_aligned_files(src_path: str | Path, tgt_path: str | Path) -> list[Pair]:
    """Pairs from two line-aligned files; the line counts must match and no line may be blank."""
    src, tgt = read_text_file(src_path), read_text_file(tgt_path)
    # A final newline-only line is not a sentence; blank lines inside would misalign nothing but are errors.
    while src and not src[-1].strip():
        src.pop()
    while tgt and not tgt[-1].strip():
        tgt.pop()
    if len(src) != len(tgt):
        raise LmbenchError(f"{src_path} has {len(src):,} lines but {tgt_path} has {len(tgt):,}; "
                           "aligned files need one line per sentence in both")
    return [_check_pair(s, t, f"{src_path}/{tgt_path} line {i}") for i, (s, t) in enumerate(zip(src, tgt), 1)]


def read_pairs(spec: str) -> PairSplits:
    """Resolve a pairs spec to its raw (source, target) splits."""
    base, options = parse_options(spec)
    if base.startswith("synthetic:"):
        return _synthetic(base.removeprefix("synthetic:"), options, spec)
    if "," in base:
        src_path, _, tgt_path = base.partition(",")
        ratios, seed = _ratios(options), _seed(options)
        _reject(options, spec, ("split", "seed"))
        pairs = read_aligned_files(src_path, tgt_path)
        return PairSplits(Path(src_path).stem, *_nonempty(split_pairs(pairs, ratios, seed)))
    path = local_path(base)
    if path.is_dir():
        _reject(options, spec, ())
        if not (path / "train.src").is_file() or not (path / "train.tgt").is_file():
            raise LmbenchError(f"{path} has no train.src and train.tgt; a pairs directory needs both")
        splits = {}
        for split in SPLITS:
            s, t = path / f"{split}.src", path / f"{split}.tgt"
            if s.is_file() != t.is_file():
                raise LmbenchError(f"{path}: {split}.src and {split}.tgt must both exist or both be absent")
            splits[split] = read_aligned_files(s, t) if s.is_file() else None
        return PairSplits(path.name or str(path), **splits)
    source = _column(options, "source", 1)
    target = _column(options, "target", None)
    ratios, seed = _ratios(options), _seed(options)
    _reject(options, spec, ("source", "target", "split", "seed"))
    pairs = read_tsv_pairs(path, source, target)
    return PairSplits(path.stem, *_nonempty(split_pairs(pairs, ratios, seed)))


def _nonempty(parts: list[list[Pair]]) -> list[list[Pair] | None]:
    return [p or None for p in parts]


def _synthetic(name: str, options: dict[str, str], spec: str) -> PairSplits:
    if name != "ko-en":
        raise LmbenchError(f"unknown synthetic parallel corpus {name!r}; known: ko-en")
    sizes = {}
    for key, default in (("train", 20000), ("valid", 500), ("test", 1000), ("seed", 0)):
        value = options.pop(key, str(default))
        try:
            sizes[key] = int(value)
        except ValueError:
            raise LmbenchError(f"synthetic:ko-en option {key}={value!r} must be an integer") from None
        if key != "seed" and sizes[key] < 0:
            raise LmbenchError(f"synthetic:ko-en option {key}={value} must be ≥ 0")
    _reject(options, spec, ("train", "valid", "test", "seed"))
    if sizes["train"] < 1:
        raise LmbenchError("synthetic:ko-en needs train ≥ 1")
    n = sizes["train"] + sizes["valid"] + sizes["test"]
    pairs = generate_pairs(n, sizes["seed"])
    a, b = sizes["train"], sizes["train"] + sizes["valid"]
    return PairSplits("synthetic-ko-en", pairs[:a], pairs[a:b] or None, pairs[b:] or None,
                      info={"generator": "lmbench.text.koen", **sizes})


# --- encoding -----------------------------------------------------------------------------------------
def encode_pairs(pairs: list[Pair], src_tok: Tokenizer, tgt_tok: Tokenizer, src_vocab: Vocabulary,
                 tgt_vocab: Vocabulary, name: str) -> PairCorpus:
    """Tokenize and encode pairs; a side that tokenizes to nothing is an error (it would misalign)."""
    src = [src_tok(s) for s, _ in pairs]
    tgt = [tgt_tok(t) for _, t in pairs]
    for i, (s, t) in enumerate(zip(src, tgt)):
        if not s or not t:
            side = "source" if not s else "target"
            raise LmbenchError(f"{name}: pair {i + 1} has no {side} tokens after tokenizing: {pairs[i]!r}")
    return PairCorpus(Corpus.encode(src, src_vocab, f"{name}/src"), Corpus.encode(tgt, tgt_vocab, f"{name}/tgt"),
                      name)


def load_pairs(spec: str | PairSplits, src_tokenizer: Tokenizer | None = None, tgt_tokenizer: Tokenizer | None = None,
               src_vocab: Vocabulary | None = None, tgt_vocab: Vocabulary | None = None, min_count: int = 1,
               max_size: int | None = None) -> ParallelSet:
    """Read, tokenize and encode every split; vocabularies come from train unless given."""
    raw = spec if isinstance(spec, PairSplits) else read_pairs(spec)
    default = tokenizer_for(spec if isinstance(spec, str) else "")
    src_tok = src_tokenizer or default
    tgt_tok = tgt_tokenizer or default
    if not raw.train:
        raise LmbenchError(f"parallel corpus {raw.name!r} has no training pairs")
    # Subword models learn from the training split only (already trained when loaded with a model).
    src_tok = src_tok.trained_on(s for s, _ in raw.train)
    tgt_tok = tgt_tok.trained_on(t for _, t in raw.train)
    if src_vocab is None:
        src_vocab = Vocabulary.build((src_tok(s) for s, _ in raw.train), min_count=min_count, max_size=max_size)
    if tgt_vocab is None:
        tgt_vocab = Vocabulary.build((tgt_tok(t) for _, t in raw.train), min_count=min_count, max_size=max_size)
    encoded = {s: None if not raw.get(s) else encode_pairs(raw.get(s), src_tok, tgt_tok, src_vocab, tgt_vocab,
                                                          f"{raw.name}/{s}")
               for s in SPLITS}
    return ParallelSet(raw.name, src_tok, tgt_tok, src_vocab, tgt_vocab, encoded["train"], encoded["valid"],
                       encoded["test"], raw)
