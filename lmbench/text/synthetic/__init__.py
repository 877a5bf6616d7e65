"""Corpora that lmbench generates itself, seeded and deterministic: `--corpus synthetic:NAME?opt=value`.

A generator is a function `(rng_seed, **options) -> TextSplits` registered with `@synthetic(NAME, doc)`.
Generators take only integer/float options and reject unknown ones, so a typo never silently changes data.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from lmbench.errors import LmbenchError
from lmbench.text.sources import TextSplits

# Modules that define generators; each registers itself on import.
_MODULES = ("lmbench.text.synthetic.grammar", "lmbench.text.synthetic.dependency",
            "lmbench.text.synthetic.pairs", "lmbench.text.synthetic.korean")


@dataclass(frozen=True)
class Generator:
    """A registered synthetic corpus."""

    name: str
    description: str
    make: Callable[..., TextSplits]


_REGISTRY: dict[str, Generator] = {}


def synthetic(name: str, description: str) -> Callable[[Callable[..., TextSplits]], Callable[..., TextSplits]]:
    """Register a generator under `synthetic:NAME`."""

    def register(fn: Callable[..., TextSplits]) -> Callable[..., TextSplits]:
        _REGISTRY[name] = Generator(name, description, fn)
        return fn

    return register


def lines_to_generate(name: str, sentences: int) -> int:
    """Lines a generator writes: `sentences` for train and a tenth as many each for valid and test."""
    if sentences < 10:
        raise LmbenchError(f"synthetic:{name} needs sentences ≥ 10, got {sentences}")
    return sentences + 2 * max(1, sentences // 10)


def cut_generated(name: str, lines: list[str], sentences: int) -> TextSplits:
    """The first `sentences` generated lines are train; the rest is cut into valid and test."""
    n_held = max(1, sentences // 10)
    return TextSplits(name, lines[:sentences], lines[sentences : sentences + n_held], lines[sentences + n_held :])


def generators() -> dict[str, Generator]:
    """Every registered synthetic corpus, by name."""
    for module in _MODULES:
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def generate(name: str, options: dict[str, str]) -> TextSplits:
    """Run generator NAME with string options converted to the types of its keyword defaults."""
    known = generators()
    if name not in known:
        raise LmbenchError(f"unknown synthetic corpus {name!r}; known: {', '.join(known) or 'none'}")
    params = inspect.signature(known[name].make).parameters
    kwargs = {}
    for key, value in options.items():
        if key not in params:
            allowed = ", ".join(p for p in params)
            raise LmbenchError(f"synthetic:{name} has no option {key!r}; options: {allowed}")
        kind = type(params[key].default)
        try:
            kwargs[key] = kind(value)
        except ValueError:
            raise LmbenchError(f"synthetic:{name} option {key}={value!r} must be {kind.__name__}") from None
    splits = known[name].make(**kwargs)
    splits.name = f"synthetic-{name}"
    return splits
