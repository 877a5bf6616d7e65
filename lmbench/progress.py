"""One progress reporter for every long job: a live line on a TTY, silent otherwise (and in --json mode)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """`with Progress(total, "train lstm", unit="tok") as bar: bar.update(n, loss=4.2)`."""

    def __init__(self, total: int | None, label: str, unit: str = "tok", enabled: bool | None = None,
                 stream: TextIO | None = None, min_interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label, self.unit = total, label, unit
        self.done = 0
        self.fields: dict[str, str] = {}
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self.min_interval = min_interval

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate(self) -> float:
        """Units per second so far."""
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1, **fields: float | str) -> None:
        """Advance by n units and set named figures shown after the bar (e.g. loss, ppl)."""
        self.done += n
        for key, value in fields.items():
            self.fields[key] = f"{value:.4g}" if isinstance(value, float) else str(value)
        now = time.perf_counter()
        if self.enabled and now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        rate = self.rate
        parts = [self.label]
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * 24)
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {frac:6.1%}")
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            parts.append(f"ETA {_duration(eta) if eta == eta else '--:--'}")
        parts.append(f"{rate:,.0f} {self.unit}/s")
        parts += [f"{k} {v}" for k, v in self.fields.items()]
        self.stream.write("\r\033[K" + "  ".join(parts))
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
