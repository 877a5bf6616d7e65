"""One small schema checker for the JSON files lmbench reads back (model.json, a run's manifest and cells).

A schema is built from a few node types (`Obj`, `ListOf`, `MapOf`, `OneOf`, `Int`, `Str`, `Const`, and the
plain types `bool`, `float` (any JSON number), `str`, `dict`, `list`, `None`, `ANY`). `check(value, schema,
what)` raises one LmbenchError naming the file, the place in the document and what was expected, so a
tampered file gives one clear line instead of a traceback deep inside whatever used the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lmbench.errors import LmbenchError

ANY = object()  # any JSON value
FORBIDDEN = object()  # as Obj's `extra`: keys other than the listed ones are refused


class SchemaError(LmbenchError):
    """A JSON document does not have the structure its reader needs."""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class Int:
    """A JSON integer (not a boolean, not 2.0), optionally bounded below."""

    min: int | None = None

    def check(self, value: Any, at: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{at}: expected an integer, got {_describe(value)}")
        if self.min is not None and value < self.min:
            raise SchemaError(f"{at}: expected an integer ≥ {self.min}, got {value}")


@dataclass(frozen=True)
class Str:
    """A JSON string, optionally one of `choices` or matching `pattern` in full."""

    choices: tuple[str, ...] | None = None
    pattern: str | None = None

    def check(self, value: Any, at: str) -> None:
        if not isinstance(value, str):
            raise SchemaError(f"{at}: expected a string, got {_describe(value)}")
        if self.choices is not None and value not in self.choices:
            raise SchemaError(f"{at}: expected one of {', '.join(self.choices)}, got {_describe(value)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise SchemaError(f"{at}: {_describe(value)} is not of the expected form")


@dataclass(frozen=True)
class Const:
    """Exactly this value."""

    value: Any

    def check(self, value: Any, at: str) -> None:
        if type(value) is not type(self.value) or value != self.value:
            raise SchemaError(f"{at}: expected {self.value!r}, got {_describe(value)}")


@dataclass(frozen=True)
class ListOf:
    """A JSON list whose every item matches `item`."""

    item: Any = ANY

    def check(self, value: Any, at: str) -> None:
        if not isinstance(value, list):
            raise SchemaError(f"{at}: expected a list, got {_describe(value)}")
        for i, v in enumerate(value):
            check_value(v, self.item, f"{at}[{i}]")


@dataclass(frozen=True)
class MapOf:
    """A JSON object with any keys, every value matching `value`."""

    value: Any = ANY

    def check(self, value: Any, at: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{at}: expected an object, got {_describe(value)}")
        for k, v in value.items():
            check_value(v, self.value, f"{at}.{k}")


@dataclass(frozen=True)
class Obj:
    """A JSON object with `required` and `optional` keys; other keys match `extra` (FORBIDDEN: refused)."""

    required: Mapping[str, Any] = field(default_factory=dict)
    optional: Mapping[str, Any] = field(default_factory=dict)
    extra: Any = FORBIDDEN

    def check(self, value: Any, at: str) -> None:
        if not isinstance(value, dict):
            raise SchemaError(f"{at}: expected an object, got {_describe(value)}")
        for key in self.required:
            if key not in value:
                raise SchemaError(f"{at}: the key {key!r} is missing")
        for key, v in value.items():
            if key in self.required:
                spec = self.required[key]
            elif key in self.optional:
                spec = self.optional[key]
            elif self.extra is FORBIDDEN:
                allowed = ", ".join([*self.required, *self.optional])
                raise SchemaError(f"{at}: unexpected key {key!r} (allowed: {allowed})")
            else:
                spec = self.extra
            check_value(v, spec, f"{at}.{key}")


@dataclass(frozen=True)
class OneOf:
    """Any one of the given schemas."""

    options: tuple[Any, ...]

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", options)

    def check(self, value: Any, at: str) -> None:
        expected = []
        for option in self.options:
            try:
                check_value(value, option, at)
                return
            except SchemaError as e:
                message = str(e)
                if not message.startswith(f"{at}: "):
                    raise  # the value has this option's shape but is wrong inside: that is the clearer error
                expected.append(message.removeprefix(f"{at}: expected ").split(", got ")[0])
        raise SchemaError(f"{at}: expected {' or '.join(dict.fromkeys(expected))}, got {_describe(value)}")


_PLAIN = {bool: "a boolean", str: "a string", dict: "an object", list: "a list", float: "a number"}


def check_value(value: Any, schema: Any, at: str) -> None:
    """Check one value against a schema node; `at` names its place in the document."""
    if schema is ANY:
        return
    if schema is None:
        if value is not None:
            raise SchemaError(f"{at}: expected null, got {_describe(value)}")
        return
    if isinstance(schema, type) and schema in _PLAIN:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) if schema is float \
            else isinstance(value, schema)
        if not ok:
            raise SchemaError(f"{at}: expected {_PLAIN[schema]}, got {_describe(value)}")
        return
    schema.check(value, at)


def check(value: Any, schema: Any, what: str) -> Any:
    """Check a whole document (`what` names the file in the message); return it unchanged."""
    check_value(value, schema, what)
    return value


# --- the schemas of lmbench's own files ------------------------------------------------------------------------

NUMBER = float  # any JSON number (Infinity and NaN included: Python's json writes them)
NUMBER_OR_NONFINITE = OneOf(float, Str(choices=("inf", "-inf", "nan")))  # json_safe writes strings for those
SHA256 = Str(pattern=r"[0-9a-f]{64}")
SCALAR = OneOf(None, bool, float, str)

ARRAY_ENTRY = Obj(required={"shape": ListOf(Int(min=0)), "dtype": Str(), "sha256": SHA256})
# nfc and model (a trained subword model, base64) are written by the Korean tokenizers (issue 14).
TOKENIZER = Obj(optional={"kind": Str(), "lowercase": bool, "jamo": bool, "nfc": bool, "model": OneOf(None, str)})

# A training position that resuming continues from. Models keep it under "train" or "train_state" of their
# state; whichever keys below it has must have these types (a trainer may add others).
TRAIN_STATE = Obj(
    optional={"epoch": Int(min=0), "batch": Int(min=0), "step": Int(min=0), "history": ListOf(dict),
              "done": bool, "best_val": OneOf(None, float), "data": Str(), "lr": float},
    extra=ANY,
)
OPTIMIZER_STATE = Obj(optional={"lr": float, "betas": ListOf(float), "eps": float, "t": Int(min=0)}, extra=ANY)
MODEL_STATE = Obj(
    optional={"train": OneOf(None, TRAIN_STATE), "train_state": OneOf(None, TRAIN_STATE),
              "optimizer": OPTIMIZER_STATE, "rng": dict, "tgt_tokenizer": OneOf(None, TOKENIZER)},
    extra=ANY,
)
FIT_INFO = Obj(
    optional={"grad_norms": ListOf(NUMBER_OR_NONFINITE), "history": ListOf(dict), "epochs": OneOf(Int(min=0),
              ListOf(dict)), "learning_curve": ListOf(dict), "blas_threads": OneOf(None, Int(min=1))},
    extra=ANY,
)
MODEL_FILE = Obj(
    required={"format": Str(), "model": Str(), "params": MapOf(SCALAR), "arrays": MapOf(ARRAY_ENTRY)},
    optional={"tokenizer": OneOf(None, TOKENIZER), "state": MODEL_STATE, "fit_info": FIT_INFO},
)

RUN_MANIFEST = Obj(
    required={"format": Str(), "suite": Str()},
    optional={
        "suite_path": OneOf(None, str), "description": str, "seeds": ListOf(Int()), "status": str,
        "started": str, "finished": str, "versions": MapOf(str), "plugins": MapOf(str), "machine": dict,
        "git": OneOf(None, dict), "argv": ListOf(str), "n_cells": Int(min=0), "cells_done": Int(min=0),
        "cells_run": Int(min=0), "cells_resumed": Int(min=0), "wall_seconds": NUMBER,
        "cell_seconds_total": NUMBER, "tables": MapOf(str), "blas_threads": OneOf(None, Int(min=1)),
        "cells": ListOf(Obj(required={"id": Str(pattern=r"[^/\\\x00]+")}, extra=ANY)),
    },
    extra=ANY,
)
ROW = Obj(required={"metric": str, "quantity": str}, optional={"value": ANY, "group": ANY, "x": ANY}, extra=ANY)
CELL_FILE = Obj(
    required={"format": Str(), "id": str, "corpus": str, "model": OneOf(None, str), "config": str, "seed": Int(),
              "metrics": ListOf(str), "rows": ListOf(ROW), "timings": ListOf(ROW), "notes": ListOf(str),
              "wall_seconds": NUMBER_OR_NONFINITE},
    optional={"corpus_spec": str, "params": MapOf(SCALAR), "extras": dict, "corpus_info": dict,
              "fit_info": dict},
    extra=ANY,
)
