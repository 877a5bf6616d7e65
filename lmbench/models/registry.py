"""Models found by name — built-ins, the entry-point group `lmbench.models`, `--plugin FILE.py` — and loaded
back from their checkpoints by that name.

Adding a built-in model is one class plus one line in `MODELS` below; a plugin package adds one entry point.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from lmbench.errors import LmbenchError
from lmbench.fileio import load_arrays
from lmbench.models.base import LanguageModel, Model, Translator, read_checkpoint_header
from lmbench.registry import Registry
from lmbench.schema import check
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import Vocabulary

ENTRY_POINT_GROUP = "lmbench.models"


def check_model_class(obj: object, origin: str) -> type[Model]:
    """`obj` if it is a concrete, named Model subclass; otherwise an error naming `origin` and what is wrong."""
    if not (inspect.isclass(obj) and issubclass(obj, Model)):
        raise LmbenchError(f"{origin}: {obj!r} is not a subclass of lmbench.Model")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise LmbenchError(f"{origin}: model class {obj.__name__} does not implement {missing}")
    if not obj.name:
        raise LmbenchError(f"{origin}: model class {obj.__name__} has no `name`")
    return obj


MODELS: Registry[type[Model]] = Registry(
    "model",
    ENTRY_POINT_GROUP,
    validate=check_model_class,
    hint=" (a plugin model needs --plugin FILE.py or its package installed)",
    builtins={
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
        "transformer": "lmbench.models.transformer.lm:TransformerLM",
        "transformer-mt": "lmbench.models.transformer.translator:TransformerTranslator",
    },
)


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
            check_model_class(found[0], f"plugin {path}")  # raises with what is missing
        raise LmbenchError(f"plugin {path} defines no model class (a LanguageModel subclass)")
    for cls in concrete:
        MODELS.register(cls.name, cls, origin=f"plugin {path}")
    return [c.name for c in concrete]


def model_names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(MODELS.names())


def get_model_class(name: str) -> type[Model]:
    """The class registered under `name`; a clear error listing the known names otherwise."""
    return MODELS.get(name)


def create_model(name: str, params: dict | None = None) -> Model:
    """Build a model by name with validated hyper-parameters."""
    return get_model_class(name)(**(params or {}))


def load_model(directory: str | Path) -> Model:
    """Load a saved model; its class is found by name in the registry (built-ins, entry points, plugins)."""
    directory = Path(directory)
    header = read_checkpoint_header(directory)
    cls = get_model_class(header["model"])
    if cls.state_schema is not None:
        check(header.get("state", {}), cls.state_schema, f"{directory}/model.json: state")
    model = cls(**header["params"])
    model.vocab = Vocabulary.load(directory / "vocab.txt")
    try:
        model.tokenizer = Tokenizer.from_json(header["tokenizer"]) if header.get("tokenizer") else None
    except TypeError as e:  # a key this version's Tokenizer does not know (written by a newer lmbench)
        raise LmbenchError(f"{directory}/model.json: tokenizer: {e}") from None
    model.fit_info = header.get("fit_info", {})
    arrays = load_arrays(directory / "arrays.npz", header["arrays"])
    try:
        model.set_state(header.get("state", {}), arrays)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise LmbenchError(f"{directory}: checkpoint does not fit model {header['model']}: {e}") from None
    model.load_files(directory)
    return model


def load_language_model(directory: str | Path) -> LanguageModel:
    """Load a saved model and check that it is a language model (not, say, a translator)."""
    model = load_model(directory)
    if not isinstance(model, LanguageModel):
        raise LmbenchError(f"{directory} holds a {model.name} model, which is not a language model")
    return model


def load_translator(directory: str | Path) -> Translator:
    """Load a saved model and check that it is a translator."""
    model = load_model(directory)
    if not isinstance(model, Translator):
        raise LmbenchError(f"{directory} holds a {model.name} model, which is not a translator "
                           "(train one with `lmbench translate train`)")
    return model
