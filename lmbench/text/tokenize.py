"""The one tokenizer every model shares.

Kinds (the `--tokenizer` value, stored with every model):
  word          Unicode words and single punctuation marks (a Korean eojeol stays whole)
  whitespace    split on white space only (pre-tokenized text)
  char          characters, white space as `▁` (with `jamo`: Hangul syllables decomposed into jamo)
  morph         Korean morphemes through Kiwi (optional extra `lmbench[korean]`); other scripts follow the
                `word` rules. `morph:tagged` keeps the part-of-speech tag (`먹/VV`). A morpheme that starts
                a space-separated word carries `▁`, so the spacing of the text survives.
  bpe:N         SentencePiece BPE / unigram subwords, vocabulary size N (including 256 byte-fallback
  unigram:N     pieces), trained on the training split only (optional extra `lmbench[subword]`).

All input is NFC-normalised first (`nfc=False` turns that off), so text typed in NFD (macOS file names,
some editors) meets the same vocabulary.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lmbench.errors import LmbenchError

UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"
PAD = "<pad>"
SPACE = "▁"  # word-boundary mark of char, morph and subword tokens

TOKENIZER_KINDS = ("word", "whitespace", "char", "morph", "bpe", "unigram")
SUBWORD_KINDS = ("bpe", "unigram")
TOKENIZER_HELP = "word, whitespace, char, morph, morph:tagged, bpe:N or unigram:N"

# Unicode-aware: \w covers Hangul syllables, so a Korean word (with its particles) stays whole.
# A literal <unk> is the unknown symbol (PTB/WikiText convention) and must survive tokenization.
_WORD_RE = re.compile(r"<unk>|\w+(?:['’\-.]\w+)*|[^\w\s]")
_HANGUL_RE = re.compile(r"[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff]")


def parse_tokenizer_spec(spec: str) -> tuple[str, str]:
    """Split `kind[:option]` and check it; a clear error listing the valid kinds."""
    kind, _, option = spec.partition(":")
    if kind not in TOKENIZER_KINDS:
        raise LmbenchError(f"unknown tokenizer {spec!r}; choose one of: {TOKENIZER_HELP}")
    if kind in SUBWORD_KINDS:
        if not option.isdigit() or int(option) < 1:
            raise LmbenchError(f"tokenizer {spec!r}: give the subword vocabulary size, e.g. {kind}:8000")
    elif kind == "morph":
        if option not in ("", "tagged"):
            raise LmbenchError(f"tokenizer {spec!r}: the morph option is 'tagged' (morph:tagged)")
    elif option:
        raise LmbenchError(f"tokenizer {spec!r}: {kind} takes no option; choose one of: {TOKENIZER_HELP}")
    return kind, option


@dataclass(frozen=True)
class Tokenizer:
    """Turns one line of text into tokens; stored with every trained model."""

    kind: str = "word"  # the full spec, e.g. "bpe:8000" or "morph:tagged"
    lowercase: bool = False
    jamo: bool = False  # char mode only: decompose Hangul syllables into conjoining jamo (NFD)
    nfc: bool = True  # NFC-normalise input first
    model: str | None = None  # bpe/unigram: the trained SentencePiece model (base64 of its model file)

    def __post_init__(self) -> None:
        base, _ = parse_tokenizer_spec(self.kind)
        if self.jamo and base != "char":
            raise LmbenchError("jamo decomposition applies to the char tokenizer only (--tokenizer char)")
        if self.model is not None and base not in SUBWORD_KINDS:
            raise LmbenchError(f"tokenizer {self.kind} has no trained model")

    # --- what kind -------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """The kind without its option: word, whitespace, char, morph, bpe or unigram."""
        return self.kind.partition(":")[0]

    @property
    def tagged(self) -> bool:
        """morph:tagged: tokens keep their part-of-speech tag."""
        return self.kind == "morph:tagged"

    @property
    def size(self) -> int | None:
        """Subword vocabulary size (bpe/unigram), else None."""
        return int(self.kind.partition(":")[2]) if self.base in SUBWORD_KINDS else None

    @property
    def needs_training(self) -> bool:
        """A subword tokenizer not yet trained (see `trained_on`)."""
        return self.base in SUBWORD_KINDS and self.model is None

    # --- tokenizing ------------------------------------------------------------------------------
    def normalize(self, line: str) -> str:
        """The text as the tokenizer sees it: NFC (unless turned off), lower-cased if asked."""
        if self.nfc:
            line = unicodedata.normalize("NFC", line)
        return line.lower() if self.lowercase else line

    def __call__(self, line: str) -> list[str]:
        """Tokenize one line (no sentence-boundary symbols added)."""
        line = self.normalize(line)
        base = self.base
        if base == "whitespace":
            return line.split()
        if base == "word":
            return _WORD_RE.findall(line)
        if base == "morph":
            return list(_morphemes(line, self.tagged))
        if base in SUBWORD_KINDS:
            if self.model is None:
                raise LmbenchError(f"the {self.kind} tokenizer is not trained yet (it is trained on a training split)")
            text = " ".join(line.split())
            return _sentencepiece(self.model).encode(text, out_type=str) if text else []
        if self.jamo:
            line = unicodedata.normalize("NFD", line)
        # Characters of a line; runs of white space become one visible word-boundary symbol.
        return list(SPACE.join(line.split()))

    def tokenize_lines(self, lines: Iterable[str]) -> list[list[str]]:
        """[self(line) for line in lines]; for the whitespace kind without a Python call per line (the
        normalisation and the split are mapped over the lines as C functions)."""
        if self.base != "whitespace":
            return list(map(self, lines))
        if self.nfc:
            lines = map(functools.partial(unicodedata.normalize, "NFC"), lines)
        if self.lowercase:
            lines = map(str.lower, lines)
        return list(map(str.split, lines))

    def trained_on(self, lines: Iterable[str]) -> Tokenizer:
        """This tokenizer, its subword model trained on `lines` (the training split); others unchanged."""
        if not self.needs_training:
            return self
        texts = [" ".join(self.normalize(line).split()) for line in lines]
        model = _train_sentencepiece([t for t in texts if t], self.base, self.size or 0)
        return dataclasses.replace(self, model=model)

    def detokenize(self, tokens: list[str]) -> str:
        """Join tokens back into readable text (exact for whitespace, char and subword tokens)."""
        base = self.base
        if base == "char":
            text = "".join(tokens).replace(SPACE, " ")
            return unicodedata.normalize("NFC", text) if self.jamo else text
        if base in SUBWORD_KINDS and self.model is not None:
            return _sentencepiece(self.model).decode_pieces(list(tokens))
        if base == "morph":
            return _join_morphemes(tokens, self.tagged)
        if base == "word":
            return detokenize_words(tokens)
        return " ".join(tokens)

    # --- storage ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Plain-JSON description, enough to rebuild the same tokenizer (a subword model included)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from `to_json` output."""
        return cls(**obj)


_NO_SPACE_BEFORE = set(".,!?;:%)]}…") | {"'s", "n't"}
_NO_SPACE_AFTER = set("([{¿¡$#")


def detokenize_words(tokens: list[str]) -> str:
    """Readable text from `word` tokens: no space before closing punctuation or after opening brackets,
    straight double quotes attached to the words they enclose."""
    out: list[str] = []
    open_quote = False
    glue_next = False
    for t in tokens:
        if t == '"':
            if open_quote:  # closing: attach to the previous word
                out.append(t)
                glue_next = False
            else:
                out.append(t if not out else " " + t)
                glue_next = True
            open_quote = not open_quote
            continue
        if out and not glue_next and t not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(t)
        glue_next = t in _NO_SPACE_AFTER
    return "".join(out)


def tokenizer_for(
    spec: str, kind: str | None = None, lowercase: bool = False, jamo: bool = False, nfc: bool = True
) -> Tokenizer:
    """The tokenizer the options ask for; without a kind, the one the corpus spec suggests
    (`whitespace` for the pre-tokenized synthetic: corpora, `word` otherwise). `kind` is a full
    `--tokenizer` spec (`bpe:8000`, `morph:tagged`); subword models are trained later (`trained_on`)."""
    if kind is None:
        from lmbench.text.fetch import named_tokenizer  # a fetched corpus's recipe says which tokenizer it wants

        kind = "whitespace" if spec.startswith("synthetic:") else named_tokenizer(spec) or "word"
    return Tokenizer(kind, lowercase=lowercase, jamo=jamo, nfc=nfc)


# --- Kiwi morphemes ----------------------------------------------------------------------------------
@functools.cache
def _kiwi() -> Any:
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise LmbenchError("the morph tokenizer needs Kiwi: pip install 'lmbench[korean]' (kiwipiepy)") from None
    return Kiwi()


@functools.lru_cache(maxsize=200_000)
def _morphemes(line: str, tagged: bool) -> tuple[str, ...]:
    """Kiwi morphemes of a line; words without Hangul follow the `word` rules; `▁` marks a word's start."""
    out: list[str] = []
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
    if not words:
        return ()
    korean = [bool(_HANGUL_RE.search(line[a:b])) for a, b in words]
    kiwi_tokens = _kiwi().tokenize(line) if any(korean) else []
    k = 0
    for (a, b), has_hangul in zip(words, korean):
        if not has_hangul:  # English, numbers, other scripts: the word rules
            pieces = _WORD_RE.findall(line[a:b])
            out += [SPACE + p if i == 0 else p for i, p in enumerate(pieces)]
            while k < len(kiwi_tokens) and kiwi_tokens[k].start < b:
                k += 1
            continue
        first = True
        while k < len(kiwi_tokens) and kiwi_tokens[k].start < b:
            t = kiwi_tokens[k]
            k += 1
            if t.start < a:
                continue
            form = f"{t.form}/{t.tag}" if tagged else t.form
            out.append(SPACE + form if first else form)
            first = False
    return tuple(out)


def _join_morphemes(tokens: list[str], tagged: bool) -> str:
    """Natural text from morph tokens: Kiwi joins each word's morphemes (contractions restored)."""
    words: list[list[str]] = []
    for t in tokens:
        if t.startswith(SPACE) or not words:
            words.append([t.removeprefix(SPACE)])
        else:
            words[-1].append(t)
    out = []
    for parts in words:
        if tagged:
            morphs = [p.rpartition("/") for p in parts]
            if all(sep for _, sep, _ in morphs):
                try:
                    out.append(_kiwi().join([(form, tag) for form, _, tag in morphs]))
                    continue
                except (ValueError, RuntimeError):
                    pass
            out.append("".join(form or tag for form, _, tag in morphs))
        else:
            word = "".join(parts)
            if _HANGUL_RE.search(word):  # re-analyse the bare forms and let Kiwi restore the surface
                word = _kiwi().join(_kiwi().tokenize(word))
            out.append(word)
    return " ".join(out)


# --- SentencePiece subwords --------------------------------------------------------------------------
def _spm() -> Any:
    try:
        import sentencepiece
    except ImportError:
        raise LmbenchError("bpe/unigram tokenizers need SentencePiece: pip install 'lmbench[subword]'") from None
    return sentencepiece


@functools.lru_cache(maxsize=16)
def _sentencepiece(model: str) -> Any:
    return _spm().SentencePieceProcessor(model_proto=base64.b64decode(model))


def _train_sentencepiece(texts: list[str], model_type: str, size: int) -> str:
    """Train a SentencePiece model on normalised lines; its model file, base64 (plain JSON, never pickle)."""
    import io

    spm = _spm()
    if not texts:
        raise LmbenchError(f"cannot train a {model_type} tokenizer on an empty training split")
    spm.set_random_generator_seed(0)  # the unigram trainer samples; a fixed seed keeps runs identical
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=buf, model_type=model_type, vocab_size=size,
            character_coverage=1.0, byte_fallback=True,  # every character (and unseen ones via bytes) round-trips
            normalization_rule_name="identity",  # lmbench normalises (NFC) itself; no NFKC surprises
            add_dummy_prefix=True, remove_extra_whitespaces=True, split_digits=False,
            bos_id=-1, eos_id=-1, unk_id=0, num_threads=1, max_sentence_length=1 << 16,
            hard_vocab_limit=False, minloglevel=2, train_extremely_large_corpus=False,
        )
    except RuntimeError as e:
        small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(e))
        if small:
            raise LmbenchError(f"{model_type}:{size} is too small: the training split needs at least {small[2]} "
                               "pieces (its distinct characters, 256 byte pieces and <unk>)") from None
        raise LmbenchError(f"training the {model_type}:{size} tokenizer failed: {str(e).strip()}") from None
    return base64.b64encode(buf.getvalue()).decode("ascii")
