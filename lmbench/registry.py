"""The one way lmbench finds things by name: models, smoothings, synthetic corpora, metrics, figures, commands.

A `Registry` maps names to objects from three sources, looked up in this order:
  built-ins    "module:attr" strings (or "module" for a whole module), imported only when first asked for,
               so listing names never imports a model's code
  registered   objects added with the decorator `@REGISTRY.register(name)` or `REGISTRY.register(name, obj)`
               (metrics and figures defined beside their registry, plugin files)
  entry points the installed packages' entry-point group (e.g. `lmbench.models`), loaded on demand

An unknown name is an `LmbenchError` that lists every known one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from lmbench.errors import LmbenchError

T = TypeVar("T")


def import_target(target: str) -> Any:
    """Import "package.module:attr" (the attribute) or "package.module" (the module itself)."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names → objects: lazy built-ins, registered objects and (optionally) one entry-point group."""

    def __init__(self, kind: str, entry_point_group: str | None = None, *, builtins: dict[str, str] | None = None,
                 validate: Callable[[Any, str], T] | None = None, known_label: str | None = None,
                 hint: str = "", plugin_label: str = "plugin") -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtins: dict[str, str] = dict(builtins or {})
        self._objects: dict[str, T] = {}  # registered objects, and built-ins / entry points once loaded
        self._registered: list[str] = []  # names added by register(), in order
        self._validate = validate
        self.known_label = known_label or f"known {kind}s"
        self.hint = hint  # appended to the unknown-name error, e.g. how to make a plugin known
        self.plugin_label = plugin_label

    # --- adding ----------------------------------------------------------------------------------------------
    def add_builtin(self, name: str, target: str) -> None:
        """Declare a built-in imported lazily from "module:attr"."""
        self._builtins[name] = target

    def register(self, name: str, obj: T | None = None, *, origin: str | None = None) -> Any:
        """Register `obj` under `name` (again: replaced); without `obj`, a decorator registering what it decorates.

        `origin` (e.g. "plugin FILE.py") marks an object from outside lmbench: it is validated, and may not
        take a built-in's name.
        """

        def add(value: T) -> T:
            if origin is not None:
                if name in self._builtins:
                    raise LmbenchError(f"{origin}: {self.kind} name {name!r} is taken by a built-in {self.kind}")
                if self._validate is not None:
                    value = self._validate(value, origin)
            self._objects[name] = value
            if name not in self._registered:
                self._registered.append(name)
            return value

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Forget a registered object (built-ins and entry points stay)."""
        if name in self._registered:
            self._registered.remove(name)
            self._objects.pop(name, None)

    # --- finding ---------------------------------------------------------------------------------------------
    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """The installed packages' entry points of this registry's group, by name."""
        if self.entry_point_group is None:
            return {}
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.entry_point_group)}

    def is_builtin(self, name: str) -> bool:
        """Whether `name` is one of lmbench's own (not a plugin)."""
        return name in self._builtins

    def builtin_names(self) -> list[str]:
        """The built-in names, in declaration order."""
        return list(self._builtins)

    def names(self) -> list[str]:
        """Every known name: built-ins and registered ones in order, then entry points (duplicates once)."""
        return list(dict.fromkeys([*self._builtins, *self._registered, *self.entry_points()]))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str, where: str = "") -> T:
        """The object registered as `name`; an LmbenchError listing the known names otherwise."""
        if name in self._objects:
            return self._objects[name]
        if name in self._builtins:
            obj = import_target(self._builtins[name])
            self._objects[name] = obj
            return obj
        eps = self.entry_points()
        if name in eps:
            obj = self._load_entry_point(eps[name])
            self._objects[name] = obj
            return obj
        prefix = f"{where}: " if where else ""
        known = ", ".join(sorted(self.names())) or "none"
        raise LmbenchError(f"{prefix}unknown {self.kind} {name!r}; {self.known_label}: {known}{self.hint}")

    def items(self) -> list[tuple[str, T]]:
        """(name, object) for every known name, importing built-ins and entry points."""
        return [(name, self.get(name)) for name in self.names()]

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> T:
        origin = f"{self.plugin_label} {ep.name!r} (entry point {ep.value})"
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not take the workbench down with a traceback
            raise LmbenchError(f"{origin} failed to import: {type(e).__name__}: {e}") from None
        return self._validate(obj, origin) if self._validate else obj
