"""Corpora that lmbench generates itself, seeded and deterministic: `--corpus synthetic:NAME?opt=value`.

A generator is a function `(sentences=…, seed=…, **options) -> TextSplits` declared with `@synthetic(NAME, doc)`
and registered by one line in `SYNTHETIC` below (imported only when used). Generators take only integer/float
options and reject unknown ones, so a typo never silently changes data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from lmbench.errors import LmbenchError
from lmbench.registry import Registry
from lmbench.resources import check_memory
from lmbench.seeding import parse_seed
from lmbench.text.splits import TextSplits


@dataclass(frozen=True)
class Generator:
    """A synthetic corpus: its name, what `lmbench corpus list` says of it, and the function that makes it."""

    name: str
    description: str
    make: Callable[..., TextSplits]

    def __call__(self, **options: int | float) -> TextSplits:
        """Generate the corpus (options as the generator function's keyword arguments)."""
        return self.make(**options)


def synthetic(name: str, description: str) -> Callable[[Callable[..., TextSplits]], Generator]:
    """Declare a generator function as the synthetic corpus NAME (register it in SYNTHETIC)."""

    def declare(fn: Callable[..., TextSplits]) -> Generator:
        return Generator(name, description, fn)

    return declare


def check_generator(obj: object, origin: str) -> Generator:
    """`obj` if it is a Generator (made with @synthetic); an error naming `origin` otherwise."""
    if not isinstance(obj, Generator):
        raise LmbenchError(f"{origin}: {obj!r} is not a synthetic corpus (decorate it with @synthetic)")
    return obj


SYNTHETIC: Registry[Generator] = Registry(
    "synthetic corpus",
    validate=check_generator,
    known_label="known",
    builtins={
        "agreement": "lmbench.text.synthetic.pairs:agreement",
        "dependency": "lmbench.text.synthetic.dependency:dependency",
        "grammar": "lmbench.text.synthetic.grammar:grammar",
        "korean": "lmbench.text.synthetic.korean:korean",
        "korean-npi": "lmbench.text.synthetic.pairs:korean_npi",
        "longrange": "lmbench.text.synthetic.dependency:longrange",
    },
)


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
    return dict(sorted(SYNTHETIC.items()))


def generate(name: str, options: dict[str, str]) -> TextSplits:
    """Run generator NAME with string options converted to the types of its keyword defaults."""
    kwargs = check_options(name, options)
    splits = SYNTHETIC.get(name).make(**kwargs)
    splits.name = f"synthetic-{name}"
    return splits


def check_options(name: str, options: dict[str, str]) -> dict:
    """Generator NAME's options converted to its keyword types, without generating anything."""
    params = inspect.signature(SYNTHETIC.get(name).make).parameters
    kwargs = {}
    for key, value in options.items():
        if key not in params:
            allowed = ", ".join(p for p in params)
            raise LmbenchError(f"synthetic:{name} has no option {key!r}; options: {allowed}")
        kind = type(params[key].default)
        if key == "seed":
            kwargs[key] = parse_seed(value, f"synthetic:{name} option seed")
            continue
        try:
            kwargs[key] = kind(value)
        except ValueError:
            raise LmbenchError(f"synthetic:{name} option {key}={value!r} must be {kind.__name__}") from None
    if isinstance(kwargs.get("sentences"), int):
        # A generated sentence costs a few hundred bytes as text, tokens and ids.
        check_memory(512 * kwargs["sentences"], f"synthetic:{name} with {kwargs['sentences']:,} sentences")
    return kwargs
