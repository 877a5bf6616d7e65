"""The one seed parser: every seed (CLI option, -p seed=, corpus ?seed=, suite) goes through `parse_seed`."""

from __future__ import annotations

from typing import Any

from lmbench.errors import LmbenchError


def parse_seed(value: Any, what: str = "seed") -> int:
    """A seed as a non-negative integer (NumPy's generators take no negative seeds); a clear error otherwise."""
    if isinstance(value, bool):
        raise LmbenchError(f"{what}={value!r}: a seed must be a non-negative integer, not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise LmbenchError(f"{what}={value!r}: a seed must be a non-negative integer, e.g. 0 or 42") from None
    if not isinstance(value, int):
        raise LmbenchError(f"{what}={value!r}: a seed must be a non-negative integer, e.g. 0 or 42")
    if value < 0:
        raise LmbenchError(f"{what}={value}: a seed must be ≥ 0 (NumPy's generators take no negative seeds)")
    return value
