"""The one tokenizer every model shares: `word`, `whitespace` or `char` (optionally Hangul jamo)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from lmbench.errors import LmbenchError

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
PAD = "<pad>"

TOKENIZER_KINDS = ("word", "whitespace", "char")

# Unicode-aware: \w covers Hangul syllables, so a Korean word (with its particles) stays whole.
# A literal <unk> is the unknown symbol (PTB/WikiText convention) and must survive tokenization.
_WORD_RE = re.compile(r"<unk>|\w+(?:['’\-.]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Tokenizer:
    """Turns one line of text into tokens; stored with every trained model."""

    kind: str = "word"
    lowercase: bool = False
    jamo: bool = False  # char mode only: decompose Hangul syllables into conjoining jamo (NFD)

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise LmbenchError(f"unknown tokenizer {self.kind!r}; choose one of: {', '.join(TOKENIZER_KINDS)}")
        if self.jamo and self.kind != "char":
            raise LmbenchError("jamo decomposition applies to the char tokenizer only (--tokenizer char)")

    def __call__(self, line: str) -> list[str]:
        """Tokenize one line (no sentence-boundary symbols added)."""
        if self.lowercase:
            line = line.lower()
        if self.kind == "whitespace":
            return line.split()
        if self.kind == "word":
            return _WORD_RE.findall(line)
        if self.jamo:
            line = unicodedata.normalize("NFD", line)
        # Characters of a line; runs of white space become one visible word-boundary symbol.
        return list("▁".join(line.split()))

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON description, enough to rebuild the same tokenizer."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from `to_json` output."""
        return cls(**obj)

    def detokenize(self, tokens: list[str]) -> str:
        """Join tokens back into readable text (exact for whitespace and char modes)."""
        if self.kind == "char":
            text = "".join(tokens).replace("▁", " ")
            return unicodedata.normalize("NFC", text) if self.jamo else text
        return " ".join(tokens)


def tokenizer_for(spec: str, kind: str | None = None, lowercase: bool = False, jamo: bool = False) -> Tokenizer:
    """The tokenizer the options ask for; without a kind, the one the corpus spec suggests
    (`whitespace` for the pre-tokenized synthetic: corpora, `word` otherwise)."""
    if kind is None:
        kind = "whitespace" if spec.startswith("synthetic:") else "word"
    return Tokenizer(kind, lowercase=lowercase, jamo=jamo)
