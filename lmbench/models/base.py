"""The contracts every model keeps (language models and translators), hyper-parameters, checkpoint files.

A model is a class with
  name, description     how users call it and what `lmbench models` says of it
  param_spec            {param: Param(default, help, ...)}: validated in the constructor
  capabilities          optional abilities it declares (see CAPABILITIES), never guessed
  normalized            False for scores that do not sum to one (their perplexity is not comparable)
  fit(train, valid)     learns from integer-id corpora of the shared vocabulary
  logprobs(corpus)      natural-log probability of every predicted token of the canonical stream:
                        for each sentence its tokens then </s>; <s> is context only, never predicted
  state()/set_state()   learned state as JSON-able metadata + numpy arrays (checkpoints: JSON + .npz)

A translator (`Translator`) keeps the sibling contract: fit(pairs), translate_corpus(src) greedy or beam,
translate(lines) for raw text, and optionally score(pairs) = log p(target | source) per sentence.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.fileio import atomic_path, read_json, recover_path, save_arrays, write_json_atomic
from lmbench.schema import MODEL_FILE, check
from lmbench.seeding import parse_seed
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import PairCorpus, ParallelSet
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import Vocabulary

CHECKPOINT_FORMAT = "lmbench-model/1"

# Optional abilities a model may declare in `capabilities`, and the method each one promises.
CAPABILITIES = {
    "next_token": "next_logprobs(contexts) -> (N, V) log-probabilities of the next token after each context",
    "sample": "sample(prefix, n_tokens, temperature, rng) -> generated token ids",
    "hidden_states": "hidden_states(ids) and hidden_state_grads(ids, t): recurrent states and ∂L_t/∂h_j per layer",
    "attention": "attention_weights(ids) -> per layer (heads, T, T) attention weights while reading <s> + ids",
    "resume": "fit() continues from the training state in its checkpoint (lmbench train --resume DIR)",
    "translate": "a translator (a Translator, not a LanguageModel): translate_corpus(src) and translate(lines)",
    "score": "a translator that scores targets: score(pairs) -> log p(target | source) per sentence, tokens",
}


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: default, help, and the values allowed (checked when the model is built)."""

    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None  # smallest allowed value
    low_open: bool = False  # True: the value must be strictly greater than `low`
    high: float | None = None
    kind: type | None = None  # needed when default is None
    nullable: bool = False

    @property
    def type(self) -> type:
        """The Python type of the parameter's values."""
        return self.kind or type(self.default)

    def coerce(self, name: str, value: Any) -> Any:
        """Convert a CLI string (or a Python value) to this parameter's type and check its range."""
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if self.nullable or self.default is None:
                return None
            raise LmbenchError(f"parameter {name} may not be empty")
        kind = self.type
        if name == "seed" and kind is int:  # every model's seed goes through the one seed parser
            return parse_seed(value, f"parameter {name}")
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes")
            elif kind is bool and not isinstance(value, bool | str):
                raise ValueError  # TOML `tied = 1`: say true or false
            elif kind in (int, float) and isinstance(value, bool):
                raise ValueError  # TOML `k = true` is not the number 1
            elif kind is int and isinstance(value, float):
                if not value.is_integer():
                    raise ValueError  # TOML `order = 2.7` is not silently 2
                value = int(value)
            else:
                value = kind(value)
                if kind is float and not math.isfinite(value):
                    raise ValueError
        except (TypeError, ValueError):
            raise LmbenchError(f"parameter {name}={value!r} must be {kind.__name__}") from None
        if self.choices is not None and value not in self.choices:
            raise LmbenchError(
                f"parameter {name}={value!r} is not allowed; choose one of: {', '.join(map(str, self.choices))}"
            )
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise LmbenchError(f"parameter {name}={value} must be {'>' if self.low_open else '≥'} {self.low}")
        if self.high is not None and value > self.high:
            raise LmbenchError(f"parameter {name}={value} must be ≤ {self.high}")
        return value


class Model:
    """What every registered model shares: validated hyper-parameters, capabilities, checkpoints.

    Language models (`LanguageModel`) and translators (seq2seq) both derive from it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    param_spec: ClassVar[dict[str, Param]] = {}
    capabilities: ClassVar[frozenset[str]] = frozenset()
    normalized: ClassVar[bool] = True
    # The structure of what state() returns as metadata (lmbench.schema nodes), checked when a checkpoint is
    # loaded, before set_state sees it; None: only the generic checks of lmbench.schema.MODEL_STATE.
    state_schema: ClassVar[Any] = None

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.param_spec)
        if unknown:
            allowed = ", ".join(self.param_spec) or "none"
            raise LmbenchError(
                f"model {self.name}: unknown parameter(s) {', '.join(sorted(unknown))}; allowed: {allowed}"
            )
        self.params: dict[str, Any] = {
            key: spec.coerce(key, params.get(key, spec.default)) for key, spec in self.param_spec.items()
        }
        self.validate_params()
        self.vocab: Vocabulary | None = None
        self.tokenizer: Tokenizer | None = None
        self.fit_info: dict[str, Any] = {}

    def validate_params(self) -> None:
        """Check combinations of parameters (single values are checked by their Param)."""

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state as (JSON-able metadata, numeric arrays); the default has none."""
        return {}, {}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state()` returned."""

    def save_files(self, directory: Path) -> None:
        """Write extra files into the checkpoint directory (e.g. the parts of a composite model)."""

    def load_files(self, directory: Path) -> None:
        """Read what `save_files` wrote."""

    # --- helpers for implementations ----------------------------------------------------------------
    def require_fitted(self) -> Vocabulary:
        """The model's vocabulary; a clear error if the model was never fitted."""
        if self.vocab is None:
            raise LmbenchError(f"model {self.name} is not fitted")
        return self.vocab

    def check_corpus(self, corpus: Corpus) -> None:
        """Reject a corpus encoded with another vocabulary."""
        if corpus.vocab is not self.vocab and corpus.vocab != self.vocab:
            raise LmbenchError(f"model {self.name}: corpus {corpus.name!r} uses a different vocabulary")

    def has(self, capability: str) -> bool:
        """Whether the model declares an optional capability."""
        return capability in self.capabilities

    # --- persistence ----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write model.json, vocab.txt and arrays.npz into `directory`, atomically."""
        vocab = self.require_fitted()
        meta, arrays = self.state()
        with atomic_path(directory, directory=True) as tmp:
            manifest = save_arrays(tmp / "arrays.npz", arrays)
            vocab.save(tmp / "vocab.txt")
            self.save_files(tmp)
            write_json_atomic(
                tmp / "model.json",
                {
                    "format": CHECKPOINT_FORMAT,
                    "model": self.name,
                    "params": self.params,
                    "tokenizer": self.tokenizer.to_json() if self.tokenizer else None,
                    "state": meta,
                    "arrays": manifest,
                    "fit_info": self.fit_info,
                },
            )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"


class LanguageModel(Model, ABC):
    """A model of p(w_i | w_1 … w_{i-1}) over the shared vocabulary, scored by the one harness."""

    @abstractmethod
    def fit(self, train: Corpus, valid: Corpus | None = None) -> LanguageModel:
        """Learn from the training corpus (ids of the shared vocabulary); return self."""

    @abstractmethod
    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """Natural-log probability of each predicted token of `corpus.targets()`, in order."""


@dataclass
class Hypotheses:
    """Decoded token ids per sentence (without `</s>`), their log-probability sums and predicted lengths."""

    tokens: list[np.ndarray]
    scores: np.ndarray  # Σ log p over the emitted tokens including </s>
    lengths: np.ndarray  # emitted tokens including </s> (max_len when it never ended)

    def normalized(self, alpha: float) -> np.ndarray:
        """score / length^alpha for every sentence."""
        return self.scores / np.maximum(self.lengths, 1) ** alpha


class Translator(Model, ABC):
    """A model of p(target sentence | source sentence): `tokenizer`/`src_vocab` read the source side,
    `tgt_tokenizer`/`vocab` the target side. Translators are registered with the language models."""

    capabilities: ClassVar[frozenset[str]] = frozenset({"translate"})

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.src_vocab: Vocabulary | None = None
        self.tgt_tokenizer: Tokenizer | None = None

    @abstractmethod
    def fit(self, data: ParallelSet) -> Translator:
        """Learn from data.train (validating on data.valid when the model uses it); return self."""

    @abstractmethod
    def translate_corpus(self, src: Corpus, beam: int | None = None, length_norm: float | None = None
                         ) -> Hypotheses:
        """Translate every sentence of an encoded source corpus (beam 1: greedy); results in its order."""

    def score(self, pairs: PairCorpus) -> tuple[np.ndarray, np.ndarray]:
        """Σ log p(target sentence | source) including `</s>`, and the predicted tokens, per pair."""
        raise LmbenchError(f"translator {self.name} does not score targets (it lacks the 'score' capability)")

    def adopt(self, data: ParallelSet) -> None:
        """Take the tokenizers and vocabularies of the pairs a fresh run trains on."""
        self.src_vocab, self.vocab = data.src_vocab, data.tgt_vocab
        self.tokenizer, self.tgt_tokenizer = data.src_tokenizer, data.tgt_tokenizer

    @property
    def target_tokenizer(self) -> Tokenizer:
        """The tokenizer of the target side (the source's when both sides share one)."""
        tok = self.tgt_tokenizer or self.tokenizer
        if tok is None:
            raise LmbenchError(f"translator {self.name} records no tokenizer")
        return tok

    def translate(self, lines: Sequence[str], beam: int | None = None) -> list[str]:
        """Translate raw source lines into target text."""
        if self.tokenizer is None or self.src_vocab is None or self.vocab is None:
            raise LmbenchError(f"translator {self.name} is not fitted")
        toks = [self.tokenizer(line) for line in lines]
        for i, t in enumerate(toks):
            if not t:
                raise LmbenchError(f"source line {i + 1} has no tokens; there is nothing to translate")
        hyp = self.translate_corpus(Corpus.encode(toks, self.src_vocab), beam=beam)
        return [self.target_tokenizer.detokenize(self.vocab.decode(t.tolist())) for t in hyp.tokens]

    # --- persistence: the source vocabulary and the target tokenizer beside the target vocabulary ----------
    def translator_meta(self) -> dict[str, Any]:
        """What a checkpoint's state needs to rebuild the target side's tokenizer."""
        return {"tgt_tokenizer": self.tgt_tokenizer.to_json() if self.tgt_tokenizer else None}

    def restore_translator_meta(self, meta: dict[str, Any]) -> None:
        """Restore what `translator_meta()` wrote."""
        self.tgt_tokenizer = Tokenizer.from_json(meta["tgt_tokenizer"]) if meta.get("tgt_tokenizer") else None

    def save_files(self, directory: Path) -> None:
        """The source vocabulary (the target one is the checkpoint's vocab.txt)."""
        if self.src_vocab is not None:
            self.src_vocab.save(directory / "src_vocab.txt")

    def load_files(self, directory: Path) -> None:
        """Read the source vocabulary."""
        self.src_vocab = Vocabulary.load(directory / "src_vocab.txt")


def read_checkpoint_header(directory: str | Path) -> dict[str, Any]:
    """Read and check model.json of a checkpoint directory."""
    directory = Path(directory)
    recover_path(directory)  # a save that crashed mid-swap is finished (or undone) before we read
    if not directory.is_dir():
        raise LmbenchError(f"{directory} is not a model directory (no such directory)")
    if not (directory / "model.json").is_file():
        raise LmbenchError(f"{directory} is not a model directory: it has no model.json")
    header = read_json(directory / "model.json", "model file")
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        raise LmbenchError(f"{directory}/model.json is not an lmbench model (format {CHECKPOINT_FORMAT} expected)")
    check(header, MODEL_FILE, f"{directory}/model.json")
    return header
