"""Models found by name: built-ins, the entry-point group `lmbench.models`, and `--plugin FILE.py`."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path

from lmbench.errors import LmbenchError
from lmbench.models.base import Model

ENTRY_POINT_GROUP = "lmbench.models"

# Built-in models: name → "module:Class", imported only when used.
BUILTIN_MODELS: dict[str, str] = {
    "uniform": "lmbench.models.simple:Uniform",
    "unigram": "lmbench.models.ngram.model:Unigram",
    "ngram": "lmbench.models.ngram.model:NgramModel",
    "bigram": "lmbench.models.ngram.model:Bigram",
    "trigram": "lmbench.models.ngram.model:Trigram",
    "arpa": "lmbench.models.ngram.model:ArpaModel",
    "seq2seq": "lmbench.models.seq2seq.model:Seq2Seq",
    "nearest": "lmbench.models.nearest:Nearest",
    "rnn": "lmbench.models.neural.lm:RNNLM",
    "lstm": "lmbench.models.neural.lm:LSTMLM",
    "gru": "lmbench.models.neural.lm:GRULM",
}

_plugins: dict[str, type[Model]] = {}


def _check_model_class(obj: object, origin: str) -> type[Model]:
    if not (inspect.isclass(obj) and issubclass(obj, Model)):
        raise LmbenchError(f"plugin {origin}: {obj!r} is not a subclass of lmbench.Model")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise LmbenchError(f"plugin {origin}: model class {obj.__name__} does not implement {missing}")
    if not obj.name:
        raise LmbenchError(f"plugin {origin}: model class {obj.__name__} has no `name`")
    return obj


def _import_builtin(name: str) -> type[Model]:
    module, _, attr = BUILTIN_MODELS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> type[Model]:
    origin = f"{ep.name!r} (entry point {ep.value})"
    try:
        obj = ep.load()
    except Exception as e:  # a broken plugin must not take the workbench down with a traceback
        raise LmbenchError(f"plugin {origin} failed to import: {type(e).__name__}: {e}") from None
    return _check_model_class(obj, origin)


def load_plugin_file(path: str | Path) -> list[str]:
    """Import a Python file and register every model class it defines; return their names."""
    path = Path(path)
    if not path.is_file():
        raise LmbenchError(f"plugin file not found: {path}")
    module_name = f"lmbench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise LmbenchError(f"plugin {path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise LmbenchError(f"plugin {path} failed to import: {type(e).__name__}: {e}") from None
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Model) and obj.__module__ == module_name
    ]
    concrete = [c for c in found if not inspect.isabstract(c) and c.name]
    if not concrete:
        if found:
            _check_model_class(found[0], str(path))  # raises with what is missing
        raise LmbenchError(f"plugin {path} defines no model class (a LanguageModel subclass)")
    for cls in concrete:
        if cls.name in BUILTIN_MODELS:
            raise LmbenchError(f"plugin {path}: model name {cls.name!r} is taken by a built-in model")
        _plugins[cls.name] = cls
    return [c.name for c in concrete]


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted({*BUILTIN_MODELS, *_entry_points(), *_plugins})


def get_model_class(name: str) -> type[Model]:
    """The class registered under `name`; a clear error listing the known names otherwise."""
    if name in BUILTIN_MODELS:
        return _import_builtin(name)
    if name in _plugins:
        return _plugins[name]
    eps = _entry_points()
    if name in eps:
        return _load_entry_point(eps[name])
    raise LmbenchError(
        f"unknown model {name!r}; known models: {', '.join(model_names())} "
        "(a plugin model needs --plugin FILE.py or its package installed)"
    )


def create_model(name: str, params: dict | None = None) -> Model:
    """Build a model by name with validated hyper-parameters."""
    return get_model_class(name)(**(params or {}))
