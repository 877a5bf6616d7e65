"""Command-line interface. Every module in this package attaches its commands to `app.cli`."""

from __future__ import annotations

import importlib
import pkgutil

from lmbench.cli.app import cli, main

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["cli", "main"]
