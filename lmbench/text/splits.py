"""The three split names and raw text by split: what every corpus source (files, generators, NLTK) returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from lmbench.errors import LmbenchError

SPLITS = ("train", "valid", "test")


def check_split(split: str) -> str:
    """The split name itself, or a clear error naming the allowed ones."""
    if split not in SPLITS:
        raise LmbenchError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split


@dataclass
class TextSplits:
    """Raw lines of a corpus, by split; `info` carries generator facts (e.g. a true entropy rate)."""

    name: str
    train: list[str]
    valid: list[str] | None = None
    test: list[str] | None = None
    info: dict = field(default_factory=dict)

    def get(self, split: str) -> list[str] | None:
        """Lines of one split, or None when the corpus has no such split."""
        return getattr(self, check_split(split))
