"""Training speed as the sequence length grows: the recurrent models' sequential path against attention.

The deck: "RNN 및 LSTM은 순차적으로 입력, 출력하는 구조이기 때문에 병렬처리가 어려움" — a recurrent layer computes
time step t after step t−1, so a window of T tokens costs T dependent steps, each a small matrix product; a
Transformer layer computes all T positions of a window in one batch of large products. To show it, each
length T trains a fresh copy of the model (same hyper-parameters, sequence length T: `bptt` for the
recurrent LMs, `context` for the Transformer) for a few optimiser steps with the same number of tokens per
step (batch = tokens_per_step / T windows), and times every step after the first (one-off start-up costs):

    train_tokens_per_second@T   tokens of the timed steps / their wall time (forward, backward, clip, update)
    seconds_per_epoch@T         the training split's predicted tokens at that rate

The copies train with `threads` of lmbench's own threads (lmbench.models.neural.parallel; 0 = every core:
the point is parallel hardware), BLAS single-threaded as in every training run. A recurrent cell still runs
its per-step products one after the other; only large products and element-wise passes are cut into blocks.
Those two depend on the machine and go to timings.csv. The deterministic rows say what was run: the
batch at each T, and the sequential steps per layer a window needs (T recurrent, 1 attention).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from lmbench.errors import LmbenchError
from lmbench.models.base import Model
from lmbench.models.neural import parallel
from lmbench.models.neural.trainer import Callback, Trainable, Trainer
from lmbench.models.registry import create_model

# The parameter that sets a training window's length, and whether the model walks it step by step.
LENGTH_PARAMS = {"bptt": True, "context": False}


def length_param(model: Model) -> str:
    """The name of the model's sequence-length parameter; a clear error for a model without one."""
    if not isinstance(model, Trainable):
        raise LmbenchError(f"model {model.name} is not trained by steps, so it has no training speed by length")
    for name in LENGTH_PARAMS:
        if name in model.params:
            return name
    raise LmbenchError(f"model {model.name} has no sequence-length parameter ({', '.join(LENGTH_PARAMS)})")


def parse_lengths(lengths: str | Sequence[int]) -> list[int]:
    """'16,32' or [16, 32] → sorted distinct positive lengths; a clear error otherwise."""
    parts = lengths.split(",") if isinstance(lengths, str) else list(lengths)
    try:
        out = sorted({int(str(p).strip()) for p in parts})
    except ValueError:
        raise LmbenchError(f"parallelism: lengths {lengths!r} must be integers, e.g. [16, 64, 256]") from None
    if not out or out[0] < 1:
        raise LmbenchError(f"parallelism: lengths {lengths!r} must be ≥ 1")
    return out


class _StepClock(Callback):
    """Wall time of every optimiser step (the time between consecutive step ends, the first from the start)."""

    def __init__(self) -> None:
        self.marks: list[float] = []
        self.tokens: list[int] = []

    def on_start(self, trainer: Trainer) -> None:
        self.marks = [time.perf_counter()]

    def on_step(self, trainer: Trainer, loss: float, tokens: int) -> None:
        self.marks.append(time.perf_counter())
        self.tokens.append(tokens)


def throughput_by_length(model: Model, train: Any, valid: Any, lengths: Sequence[int], tokens_per_step: int,
                         steps: int, seed: int = 0, threads: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """Per length T: batch, sequential steps per layer, timed steps, tokens/s and seconds per epoch; and notes
    for the lengths the training split is too short for."""
    key = length_param(model)
    if steps < 1 or tokens_per_step < 1:
        raise LmbenchError("parallelism: tokens_per_step and steps must be ≥ 1")
    recurrent = LENGTH_PARAMS[key]
    rows, notes = [], []
    for T in parse_lengths(lengths):
        batch = max(1, tokens_per_step // T)
        params = {**model.params, key: T, "batch": batch, "epochs": 1, "max_steps": steps + 1, "seed": seed,
                  "keep": "last"}
        fresh = create_model(model.name, params)
        clock = _StepClock()
        with parallel.threads(threads or parallel.available_cores()):
            Trainer(fresh, [clock]).fit(train, valid)
            used = parallel.get_threads()
        timed = len(clock.tokens) - 1
        if timed < steps:  # the epoch ran out before steps + 1 steps
            notes.append(f"parallelism: length {T} skipped: the training split holds fewer than {steps + 1} "
                         f"steps of {batch} × {T} tokens")
            continue
        seconds = clock.marks[-1] - clock.marks[1]
        tokens = sum(clock.tokens[1:])
        rate = tokens / seconds if seconds > 0 else float("inf")
        rows.append({"length": T, "batch": batch, "sequential_steps": T if recurrent else 1, "timed_steps": timed,
                     "train_tokens_per_second": rate, "seconds_per_epoch": train.n_predicted / rate,
                     "threads": used})
    return rows, notes
