"""The shared vocabulary: built from the training split only, deterministic, saved as plain text."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.fileio import check_member_file, write_text_atomic
from lmbench.text.tokenize import BOS, EOS, UNK

SPECIALS = (UNK, BOS, EOS)
DIGEST_PREFIX = "# lmbench-vocab sha256="  # the first line of vocab.txt: a digest of the lines after it
_COUNT = re.compile(r"[0-9]{1,18}")  # int64; "²".isdigit() is True but int("²") fails
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


class _OovLookup(dict):
    """token → id; a missing token gives −1 without a Python-level branch on the common path."""

    def __missing__(self, token: str) -> int:
        return -1


class Vocabulary:
    """Token ↔ id map with training counts; `<unk>`=0, `<s>`=1, `</s>`=2, then words by count."""

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | np.ndarray) -> None:
        if tuple(tokens[:3]) != SPECIALS:
            raise LmbenchError(f"a vocabulary must start with {', '.join(SPECIALS)}")
        if len(tokens) != len(counts):
            raise LmbenchError("vocabulary tokens and counts differ in length")
        self.tokens: list[str] = list(tokens)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise LmbenchError("vocabulary has duplicate tokens")
        # Literal boundary symbols inside the text are not boundaries: they read as unknown words.
        self._lookup = _OovLookup(self.index)
        del self._lookup[BOS], self._lookup[EOS]

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Count training tokens; keep those with count ≥ min_count, at most max_size words."""
        counter: Counter[str] = Counter()
        n_sentences = 0
        for sent in sentences:
            counter.update(sent)
            n_sentences += 1
        return cls.from_counts(list(counter), list(counter.values()), n_sentences, min_count, max_size)

    @classmethod
    def from_counts(
        cls,
        types: Sequence[str],
        counts: Sequence[int] | np.ndarray,
        n_sentences: int,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Rank types (given in first-occurrence order) by count; rarer or surplus types fold into `<unk>`."""
        if min_count < 1:
            raise LmbenchError(f"min_count must be ≥ 1, got {min_count}")
        if max_size is not None and max_size < 1:
            raise LmbenchError(f"max_size must be ≥ 1, got {max_size}")
        counts = np.asarray(counts, dtype=np.int64)
        special = np.fromiter((t in SPECIALS for t in types), dtype=bool, count=len(types))
        unk_count = int(counts[special].sum())  # literal <unk>, <s>, </s> in the text read as <unk>
        # A stable sort keeps first-occurrence order among equal counts.
        order = [i for i in np.argsort(-counts, kind="stable") if not special[i] and counts[i] >= min_count]
        if max_size is not None:
            order = order[:max_size]
        unk_count += int(counts[~special].sum() - counts[order].sum())
        tokens = [*SPECIALS, *(types[i] for i in order)]
        return cls(tokens, [unk_count, 0, n_sentences, *counts[order].tolist()])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @property
    def n_outcomes(self) -> int:
        """How many tokens a model can predict: every entry but `<s>`."""
        return len(self.tokens) - 1

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Map tokens to int32 ids; unknown tokens become `<unk>`."""
        ids = self.encode_marking_oov(tokens)
        ids[ids < 0] = UNK_ID
        return ids

    def encode_marking_oov(self, tokens: Sequence[str]) -> np.ndarray:
        """Map tokens to int32 ids, with −1 for out-of-vocabulary tokens (a literal `<unk>` is not OOV)."""
        return np.fromiter(map(self._lookup.__getitem__, tokens), dtype=np.int32, count=len(tokens))

    def unknown(self, tokens: Sequence[str]) -> list[str]:
        """The tokens that are out of vocabulary (each once, in order of appearance)."""
        return list(dict.fromkeys(t for t, i in zip(tokens, self.encode_marking_oov(tokens).tolist()) if i < 0))

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tokens."""
        return [self.tokens[i] for i in ids]

    def to_text(self) -> str:
        """One `token<TAB>count` line per entry, in id order."""
        return "".join(f"{t}\t{c}\n" for t, c in zip(self.tokens, self.counts.tolist()))

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as plain text, after a first line with the SHA-256 of the entries."""
        body = self.to_text()
        write_text_atomic(path, f"{DIGEST_PREFIX}{hashlib.sha256(body.encode('utf-8')).hexdigest()}\n{body}")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by `save`, refusing one whose entries do not match the digest."""
        path = check_member_file(path, "vocabulary file")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LmbenchError(f"vocabulary file not found: {path}") from None
        except UnicodeDecodeError as e:
            raise LmbenchError(f"vocabulary file {path} is not UTF-8: {e}") from None
        except OSError as e:
            raise LmbenchError(f"vocabulary file {path} is unreadable: {e.strerror or e}") from None
        first, _, rest = text.partition("\n")
        digest, body, first_lineno = None, text, 1
        if first.startswith(DIGEST_PREFIX):
            digest, body, first_lineno = first.removeprefix(DIGEST_PREFIX), rest, 2
        tokens, counts = [], []
        for lineno, line in enumerate(body.split("\n")[:-1] if body.endswith("\n") else body.split("\n"),
                                      first_lineno):
            token, sep, count = line.rpartition("\t")
            if not sep or not _COUNT.fullmatch(count):
                raise LmbenchError(f"{path}:{lineno}: expected 'token<TAB>count' with a count in ASCII digits")
            tokens.append(token)
            counts.append(int(count))
        if digest is None:
            raise LmbenchError(f"vocabulary file {path} lacks its first line '{DIGEST_PREFIX}<hex>' "
                               "(written by an older lmbench?)")
        if hashlib.sha256(body.encode("utf-8")).hexdigest() != digest:
            raise LmbenchError(f"vocabulary file {path} does not match its recorded digest "
                               "(lines edited, swapped or lost?)")
        return cls(tokens, counts)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.tokens == other.tokens
            and np.array_equal(self.counts, other.counts)
        )

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries)"
