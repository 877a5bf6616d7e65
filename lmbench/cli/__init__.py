"""Command-line interface. Each module in COMMAND_MODULES attaches its commands to `app.cli` when imported."""

from __future__ import annotations

from types import ModuleType

from lmbench.cli.app import cli, main
from lmbench.registry import Registry

# Adding commands: a module that decorates them with @cli.command, plus one line here.
COMMAND_MODULES: Registry[ModuleType] = Registry(
    "command module",
    builtins={
        "core": "lmbench.cli.core",
        "ngram": "lmbench.cli.ngram",
        "neural": "lmbench.cli.neural",
        "translate": "lmbench.cli.translate",
        "probe": "lmbench.cli.probe",
        "bench": "lmbench.cli.bench",
    },
)
for _name in COMMAND_MODULES:
    COMMAND_MODULES.get(_name)

__all__ = ["COMMAND_MODULES", "cli", "main"]
