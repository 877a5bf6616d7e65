"""One progress reporter for every long job: a live bar on a terminal, log lines elsewhere, or silence.

    with Progress(total, "train lstm", unit="tok") as bar:
        bar.update(n, loss=4.2)          # the live bar (terminal only)
        bar.log("epoch 1/5: val_ppl 14.2")  # a milestone: printed above the bar, or one log line off a terminal

`enabled`: None = decide by the stream (a terminal gets the bar, a pipe, file or CI log one line per milestone
with elapsed time and ETA), True = the bar, False = nothing (`--quiet`, `--json`).
"""

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
        if enabled is None:
            self.mode = "bar" if self.stream.isatty() else "lines"
        else:
            self.mode = "bar" if enabled else "off"
        self.enabled = self.mode == "bar"  # the live bar is drawn
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
    def elapsed(self) -> float:
        """Seconds since the job started."""
        return time.perf_counter() - self.start

    @property
    def rate(self) -> float:
        """Units per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> str:
        """Time left at the rate so far ("--:--" before anything is done or without a total)."""
        rate = self.rate
        if not self.total or rate <= 0:
            return "--:--"
        return _duration(max(self.total - self.done, 0) / rate)

    def update(self, n: int = 1, **fields: float | str) -> None:
        """Advance by n units and set named figures shown after the bar (e.g. loss, ppl)."""
        self.done += n
        for key, value in fields.items():
            self.fields[key] = f"{value:.4g}" if isinstance(value, float) else str(value)
        now = time.perf_counter()
        if self.enabled and now - self._last_draw >= self.min_interval:
            self._last_draw = now
            self._draw()

    def log(self, message: str) -> None:
        """A milestone (an epoch, a cell): a line above the live bar on a terminal; elsewhere one log line with
        the elapsed time and the ETA; nothing when disabled."""
        if self.mode == "bar":
            self.stream.write(f"\r\033[K{message}\n")
            self._draw()
        elif self.mode == "lines":
            self.stream.write(f"{message} [elapsed {_duration(self.elapsed)}, ETA {self.eta()}]\n")
            self.stream.flush()

    def _draw(self) -> None:
        parts = [self.label]
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * 24)
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {frac:6.1%}")
            parts.append(f"ETA {self.eta()}")
        parts.append(f"{self.rate:,.0f} {self.unit}/s")
        parts += [f"{k} {v}" for k, v in self.fields.items()]
        self.stream.write("\r\033[K" + "  ".join(parts))
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
