"""Memory estimates made before allocating: an absurd size is refused with the estimate and the machine's memory."""

from __future__ import annotations

import os
from typing import Any

from lmbench.errors import LmbenchError


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


def machine_memory() -> tuple[int | None, int | None]:
    """(available, total) bytes of memory, or None where the system does not say."""
    info = _meminfo()
    total = info.get("MemTotal")
    available = info.get("MemAvailable")
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = None
    return available if available is not None else total, total


def format_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; huge values stay readable."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(nbytes: float, what: str) -> None:
    """Refuse work estimated to need more memory than the machine has available."""
    available, total = machine_memory()
    if available is not None and nbytes > available:
        machine = f"{format_bytes(available)} available" + (f" of {format_bytes(total)}" if total else "")
        raise LmbenchError(f"{what} needs about {format_bytes(nbytes)} of memory; this machine has {machine}")


def _int(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def model_memory_estimate(model: Any, vocab_size: int = 0, train_tokens: int | None = None) -> int:
    """Bytes a model needs to train, estimated from its parameters before any array exists.

    A model may say itself (`memory_estimate(vocab_size) -> bytes`); otherwise neural models are estimated
    from emb/hidden/layers/batch/bptt: weights, gradients and two optimiser moments, plus one batch's
    activations and output scores. Count-based models (no `hidden`) estimate 0 here.
    """
    own = getattr(model, "memory_estimate", None)
    if callable(own):
        return int(own(vocab_size))
    params = getattr(model, "params", {}) or {}
    if "hidden" not in params:
        return 0
    H = _int(params, "hidden", 0)
    E = _int(params, "emb", H)
    layers = max(_int(params, "layers", 1), 1)
    batch, bptt = max(_int(params, "batch", 1), 1), max(_int(params, "bptt", 1), 1)
    # A window never outgrows the corpus; before the corpus is read, only the weights are counted.
    bptt = 1 if train_tokens is None else min(bptt, max(train_tokens // batch, 1))
    gates = 4  # an LSTM's four gates: the largest recurrent cell
    V = max(vocab_size, 1)
    weights = V * E + gates * H * (E + H + 1) + (layers - 1) * gates * H * (2 * H + 1) + H * V + V
    itemsize = 8 if params.get("dtype") == "float64" else 4
    activations = batch * bptt * (layers * (gates + 2) * H + 3 * V)
    return int(itemsize * (4 * weights + 2 * activations))


def check_model_memory(model: Any, vocab_size: int = 0, train_tokens: int | None = None) -> None:
    """Refuse a model whose estimated training memory exceeds what the machine has available."""
    check_memory(model_memory_estimate(model, vocab_size, train_tokens),
                 f"model {getattr(model, 'name', '?')} ({', '.join(f'{k}={v}' for k, v in _sizes(model).items())})")


def _sizes(model: Any) -> dict[str, Any]:
    params = getattr(model, "params", {}) or {}
    return {k: params[k] for k in ("emb", "hidden", "layers", "batch", "bptt") if k in params}
