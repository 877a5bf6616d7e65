"""One trainer for every neural model: the epoch loop and everything around it, written once.

    Trainer(model, callbacks=[Checkpoint(out_dir), ProgressBar(enabled)]).fit(train, valid)

The model supplies the mathematics of one batch through the small `Trainable` interface (prepare the
data, list an epoch's batches, loss and gradients of one batch, validation loss); the trainer owns:

  position      epoch, batch within the epoch, optimiser step — a run resumes mid-epoch bit for bit
  clipping      the global gradient norm of every step (recorded before clipping) and clipping to `clip`
  learning rate lr ← lr · lr_decay whenever the validation loss does not improve (0 < lr_decay ≤ 1);
                optionally (models that declare `warmup`/`schedule`) a per-step schedule: linear warm-up, then
                constant, linear or cosine decay to lr_final·lr at the last step (off by default)
  keep          "best": the weights of the best validation loss are the result; "last": the last epoch's weights
  history       one record per epoch: step, train_loss, valid_loss/valid_ppl, and lr after the epoch's
                validation (the rate the next epoch trains with)
  divergence    a non-finite loss or gradient stops training with an LmbenchError; the last checkpoint stays
  resume        a loaded checkpoint continues its run; only `RESUMABLE` parameters may change
  callbacks     checkpoints and progress are callbacks, never attributes of the model

The training state is plain JSON (`model.train_state`) plus arrays (optimiser moments, best weights), so a
checkpoint holds everything a resumed run needs.
"""

from __future__ import annotations

import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import Param, read_checkpoint_header
from lmbench.models.neural.blas import blas_threads, get_blas_threads
from lmbench.models.neural.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Optimizer,
    clip_global_norm,
    global_norm,
    make_optimizer,
    scheduled_lr,
)
from lmbench.models.registry import load_model
from lmbench.progress import Progress

KEEP = ("best", "last")
# Parameters a resumed run may change: how long it goes on, nothing about what it computes.
RESUMABLE = ("epochs", "max_steps")


def training_params(*, lr: float, optimizer: str = "sgd", lr_decay: float = 0.25, clip: float = 0.25,
                    epochs: int = 6, warmup: int | None = None, schedule: str | None = None,
                    weight_decay: float | None = None) -> dict[str, Param]:
    """The hyper-parameters the trainer reads, with a model's own defaults.

    `warmup`/`schedule` (opt-in: a model that gives either gets the per-step schedule's parameters warmup,
    schedule and lr_final) and `weight_decay` (AdamW's) exist only for the models that declare them, so the
    others' parameters and results stay as they were.
    """
    extra: dict[str, Param] = {}
    if warmup is not None or schedule is not None:
        extra = {
            "warmup": Param(warmup or 0, "linear learning-rate warm-up over this many optimiser steps", low=0),
            "schedule": Param(schedule or "constant", "learning rate after warm-up: constant, or linear or cosine "
                              "decay to lr_final·lr at the last step", choices=SCHEDULES),
            "lr_final": Param(0.1, "the decayed learning rate at the last step, as a fraction of lr",
                              low=0.0, high=1.0),
        }
    if weight_decay is not None:
        extra["weight_decay"] = Param(weight_decay, "AdamW decoupled weight decay (matrices only)", low=0.0)
    return {
        "optimizer": Param(optimizer, "optimiser", choices=OPTIMIZERS),
        "lr": Param(lr, "learning rate", low=0.0, low_open=True),
        "lr_decay": Param(lr_decay, "multiply lr by this when the validation loss does not improve (1 = never)",
                          low=0.0, low_open=True, high=1.0),
        "clip": Param(clip, "global gradient-norm clipping (0 = off)", low=0.0),
        "epochs": Param(epochs, "training epochs", low=1),
        "max_steps": Param(0, "stop after this many optimiser steps in total (0 = no limit)", low=0),
        "keep": Param("best", "weights kept after training: best validation loss, or the last epoch's",
                      choices=KEEP),
        "seed": Param(0, "random seed (initialisation, dropout, shuffling)"),
        **extra,
    }


def optimizer_for(params: dict[str, Any]) -> Optimizer:
    """The optimiser a model's training parameters name, at its base learning rate."""
    return make_optimizer(params["optimizer"], params["lr"], params.get("weight_decay", 0.01))


def is_scheduled(params: dict[str, Any]) -> bool:
    """Whether the per-step learning-rate schedule is on (a warm-up or a decay)."""
    return params.get("warmup", 0) > 0 or params.get("schedule", "constant") != "constant"


def data_digest(*arrays: np.ndarray) -> str:
    """A short fingerprint of the training data, so a run resumes only on the data it started with."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


class Trainable(ABC):
    """What a neural model gives the trainer. Its hyper-parameters include `training_params()`."""

    params: dict[str, Any]
    name: ClassVar[str]
    # BLAS threads while training (None: NumPy's default). Many small matmuls run faster on one thread.
    training_blas_threads: ClassVar[int | None] = None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.weights: dict[str, np.ndarray] = {}  # every trainable array, updated in place by the optimiser
        self.rng = np.random.default_rng(self.params["seed"])
        self.optimizer: Optimizer | None = None
        self.train_state: dict[str, Any] | None = None  # the run's position, JSON; kept for resuming
        self.best: dict[str, np.ndarray] | None = None  # weights of the best validation loss so far
        self.last: dict[str, np.ndarray] | None = None  # after a keep=best run: the last weights, to resume from
        self.resumable = False  # True after loading a checkpoint: the next fit() continues that run

    # --- the model's side -------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, train: Any, valid: Any, resuming: bool) -> Any:
        """Check and arrange the data for training (no randomness); return it for the methods below."""

    @abstractmethod
    def data_digest(self, data: Any) -> str:
        """A fingerprint of the prepared data (a resumed run must see the same data)."""

    @abstractmethod
    def initialize(self, data: Any) -> None:
        """Create fresh weights (from self.rng) for a new run on this data."""

    @abstractmethod
    def epoch_batches(self, data: Any) -> Sequence[Any]:
        """The batches of one epoch, in order (drawing any shuffling from self.rng)."""

    @abstractmethod
    def epoch_tokens(self, data: Any) -> int:
        """How many tokens one epoch trains on (for progress and speed)."""

    def start_epoch(self) -> None:
        """Called before the first batch of every epoch (e.g. to reset a carried hidden state)."""

    @abstractmethod
    def train_batch(self, batch: Any) -> tuple[float, int, dict[str, np.ndarray]]:
        """Forward and backward on one batch: (mean loss per token, tokens, gradient of every weight)."""

    @abstractmethod
    def validation_loss(self, data: Any) -> float | None:
        """Mean negative log-likelihood per predicted token on the validation data (None: no validation)."""

    # --- checkpoints ----------------------------------------------------------------------------------------
    def training_checkpoint(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The training state for a checkpoint: position, RNG, optimiser, best/last weights."""
        meta: dict[str, Any] = {"train": self.train_state, "rng": self.rng.bit_generator.state}
        arrays: dict[str, np.ndarray] = {}
        if self.optimizer is not None:
            opt_meta, opt_arrays = self.optimizer.state()
            meta["optimizer"] = opt_meta
            arrays |= {f"opt.{k}": v for k, v in opt_arrays.items()}
        for prefix, copy in (("best", self.best), ("last", self.last)):
            if copy is not None:
                arrays |= {f"{prefix}.{k}": v for k, v in copy.items()}
        return meta, arrays

    def restore_training(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `training_checkpoint()` wrote (after the weights themselves are restored)."""
        self.rng.bit_generator.state = meta["rng"]
        self.train_state = meta.get("train")
        self.resumable = self.train_state is not None
        self.optimizer = None
        if "optimizer" in meta:
            self.optimizer = optimizer_for(self.params)
            self.optimizer.set_state(meta["optimizer"], {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
        for prefix in ("best", "last"):
            copy = {k[len(prefix) + 1:]: v.copy() for k, v in arrays.items() if k.startswith(prefix + ".")}
            if copy and set(copy) != set(self.weights):
                raise ValueError(f"the checkpoint's {prefix} weights do not match the model's weights")
            setattr(self, prefix, copy or None)


class Callback:
    """Something that happens around training: override what you need."""

    def on_start(self, trainer: Trainer) -> None:
        """Before the first step of this fit() call."""

    def on_step(self, trainer: Trainer, loss: float, tokens: int) -> None:
        """After every optimiser step."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After an epoch's validation and learning-rate update."""

    def on_end(self, trainer: Trainer) -> None:
        """After training ended normally (also when max_steps stopped it mid-epoch)."""

    def on_close(self, trainer: Trainer) -> None:
        """Always, last (also after an error)."""


class Checkpoint(Callback):
    """Save the model atomically into `directory` after every epoch and at the end."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.saved_epoch: int | None = None

    def _save(self, trainer: Trainer) -> None:
        trainer.model.save(self.directory)
        self.saved_epoch = trainer.state["epoch"]

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Save after the epoch (atomic: the previous checkpoint survives a crash while writing)."""
        self._save(trainer)

    def on_end(self, trainer: Trainer) -> None:
        """Save the final model (the kept weights) with its training state."""
        self._save(trainer)


class ProgressBar(Callback):
    """Progress of the training tokens, with loss, perplexity, lr and validation perplexity."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = enabled
        self.bar: Progress | None = None

    def _label(self, trainer: Trainer) -> str:
        return f"train {trainer.model.name} epoch {trainer.state['epoch'] + 1}/{trainer.model.params['epochs']}"

    def on_start(self, trainer: Trainer) -> None:
        """Open the bar over the tokens this call will train on."""
        self.bar = Progress(trainer.planned_tokens, self._label(trainer), unit="tok", enabled=self.enabled)

    def on_step(self, trainer: Trainer, loss: float, tokens: int) -> None:
        """Advance by the batch's tokens."""
        assert self.bar is not None
        self.bar.update(tokens, loss=loss, ppl=math.exp(min(loss, 700.0)), lr=trainer.lr)

    def on_epoch_end(self, trainer: Trainer) -> None:
        """One line for the finished epoch (training loss, validation perplexity, speed), then the next label."""
        assert self.bar is not None
        record = trainer.state["history"][-1]
        valid = record.get("valid_ppl")
        parts = [f"train {trainer.model.name} epoch {record['epoch']}/{trainer.model.params['epochs']}:"]
        if "train_loss" in record:
            parts.append(f"loss {record['train_loss']:.4g}")
        if valid is not None:
            parts.append(f"val_ppl {valid:.4g}")
        parts.append(f"{self.bar.rate:,.0f} tok/s")
        self.bar.log(" ".join(parts))
        self.bar.label = self._label(trainer)
        self.bar.update(0, **({"val_ppl": valid} if valid is not None else {}))

    def on_close(self, trainer: Trainer) -> None:
        """End the line."""
        if self.bar is not None:
            self.bar.close()


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700.0 else math.inf


class Trainer:
    """Train a `Trainable` model: see the module docstring."""

    def __init__(self, model: Trainable, callbacks: Sequence[Callback] = ()) -> None:
        if not isinstance(model, Trainable):
            raise LmbenchError(f"model {getattr(model, 'name', model)!r} is not trained by the neural trainer")
        self.model = model
        self.callbacks = list(callbacks)
        self.planned_tokens = 0
        self.grad_norms: list[float] = []
        self.scheduled = is_scheduled(model.params)
        self.total_steps = 0  # optimiser steps the schedule spans (set when training starts)

    @property
    def state(self) -> dict[str, Any]:
        """The model's training position (JSON)."""
        assert self.model.train_state is not None
        return self.model.train_state

    @property
    def lr(self) -> float:
        """The current learning rate."""
        assert self.model.optimizer is not None
        return self.model.optimizer.lr

    def scheduled_lr(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based) under the per-step schedule, times the
        plateau factor lr_decay has accumulated."""
        p = self.model.params
        base = scheduled_lr(step, p["lr"], p["warmup"], self.total_steps, p["schedule"], p["lr_final"])
        return base * self.state.get("lr_scale", 1.0)

    def _emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    def fit(self, train: Any, valid: Any = None) -> Trainable:
        """Train (or continue a loaded run) until `epochs` or `max_steps`; return the model."""
        m, p = self.model, self.model.params
        resuming = m.resumable and m.train_state is not None
        m.resumable = False
        data = m.prepare(train, valid, resuming)
        digest = m.data_digest(data)
        if not resuming:
            m.rng = np.random.default_rng(p["seed"])
            m.initialize(data)
            m.optimizer = optimizer_for(p)
            m.train_state = {"epoch": 0, "batch": 0, "step": 0, "best_val": None, "history": [], "data": digest,
                             "epoch_rng": None, "epoch_loss": [0.0, 0]}
            m.best = m.last = None
        elif m.train_state.get("data") != digest:
            raise LmbenchError(f"model {m.name}: cannot resume: the training data differ from the run that wrote "
                               "the checkpoint")
        if m.last is not None:  # a finished keep=best run goes on from where training was, not from its best
            m.best = {k: v.copy() for k, v in m.weights.items()}
            for k, v in m.last.items():
                m.weights[k][...] = v
            m.last = None
        try:
            with blas_threads(m.training_blas_threads):
                self._run(data)
        finally:
            self._emit("on_close")
        return m

    def _plan(self, data: Any, batches_left_this_epoch: int, batches_per_epoch: int) -> int:
        p, st = self.model.params, self.state
        per_epoch = self.model.epoch_tokens(data)
        epochs_left = max(p["epochs"] - st["epoch"], 0)
        tokens = per_epoch * epochs_left
        if batches_per_epoch:
            tokens -= per_epoch * (batches_per_epoch - batches_left_this_epoch) // batches_per_epoch
        if p["max_steps"] and batches_per_epoch:
            tokens = min(tokens, max(p["max_steps"] - st["step"], 0) * per_epoch // batches_per_epoch)
        return max(tokens, 0)

    def _batches(self, data: Any) -> Sequence[Any]:
        """This epoch's batches; mid-epoch (after resuming) the same list, redrawn from the epoch's RNG state."""
        m, st = self.model, self.state
        if st["batch"] == 0:
            st["epoch_rng"] = m.rng.bit_generator.state
            return m.epoch_batches(data)
        now = m.rng.bit_generator.state
        m.rng.bit_generator.state = st["epoch_rng"]
        batches = m.epoch_batches(data)
        m.rng.bit_generator.state = now
        return batches

    def _run(self, data: Any) -> None:
        m, p, st = self.model, self.model.params, self.state
        max_steps = p["max_steps"] or None
        self.grad_norms = []
        started = time.perf_counter()
        tokens_done = 0
        batches = self._batches(data) if st["epoch"] < p["epochs"] else []
        self.planned_tokens = self._plan(data, len(batches) - st["batch"], len(batches))
        # The per-step schedule spans the planned epochs (every epoch has as many batches as this one);
        # max_steps only stops early, so a run stopped by it resumes bit for bit.
        self.total_steps = p["epochs"] * len(batches)
        self._emit("on_start")
        while st["epoch"] < p["epochs"]:
            if st["batch"] == 0:
                m.start_epoch()
            while st["batch"] < len(batches) and (max_steps is None or st["step"] < max_steps):
                if self.scheduled:
                    assert m.optimizer is not None
                    m.optimizer.lr = self.scheduled_lr(st["step"])
                loss, tokens = self.step(batches[st["batch"]])
                st["epoch_loss"] = [st["epoch_loss"][0] + loss * tokens, st["epoch_loss"][1] + tokens]
                st["batch"] += 1
                st["step"] += 1
                tokens_done += tokens
                self._emit("on_step", loss, tokens)
            if st["batch"] < len(batches):  # max_steps stopped it mid-epoch; the position is kept for resuming
                break
            self._end_epoch(data)
            if st["epoch"] < p["epochs"]:
                batches = self._batches(data)
        finished = st["epoch"] >= p["epochs"]
        if finished and p["keep"] == "best" and m.best is not None:
            m.last = {k: v.copy() for k, v in m.weights.items()}
            for k, v in m.best.items():
                m.weights[k][...] = v
            m.best = None
        seconds = time.perf_counter() - started
        m.fit_info = {"epochs_done": st["epoch"], "steps": st["step"], "lr": self.lr, "history": st["history"],
                      "keep": p["keep"], "kept_epoch": self._kept_epoch(finished),
                      "train_tokens_processed": tokens_done, "train_loop_seconds": seconds,
                      "train_loop_tokens_per_second": tokens_done / seconds if seconds > 0 else None,
                      "grad_norms": [float(f"{g:.5g}") for g in self.grad_norms],  # per step of this fit() call
                      "blas_threads": get_blas_threads()}  # the weights' last bits depend on it (issue 15)
        self._emit("on_end")

    def _kept_epoch(self, finished: bool) -> int:
        st = self.state
        if not (finished and self.model.params["keep"] == "best" and st["best_val"] is not None):
            return st["epoch"]
        return next(h["epoch"] for h in st["history"] if h.get("valid_loss") == st["best_val"])

    def step(self, batch: Any) -> tuple[float, int]:
        """One optimiser step: loss and gradients of the batch, the global norm (recorded), clipping, update."""
        m, clip = self.model, self.model.params["clip"]
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run ends in one clear error below
            loss, tokens, grads = m.train_batch(batch)
            if not math.isfinite(loss):
                self._diverged(loss)
            norm = clip_global_norm(grads, clip) if clip > 0 else global_norm(grads)
        # The exploding side of gradient flow: every step's global norm (before clipping) → fit_info.
        self.grad_norms.append(float(norm))
        if not math.isfinite(norm):
            self._diverged(norm, what="gradient norm")
        assert m.optimizer is not None
        m.optimizer.step(m.weights, grads)
        return loss, tokens

    def _end_epoch(self, data: Any) -> None:
        m, st = self.model, self.state
        with np.errstate(over="ignore", invalid="ignore"):
            val_loss = m.validation_loss(data)
        if val_loss is not None and not math.isfinite(val_loss):
            self._diverged(val_loss, where="validation")
        st["epoch"] += 1
        st["batch"] = 0
        record: dict[str, Any] = {"epoch": st["epoch"], "step": st["step"]}
        loss_sum, tokens = st["epoch_loss"]
        if tokens:
            record["train_loss"] = loss_sum / tokens
        st["epoch_loss"] = [0.0, 0]
        if val_loss is not None:
            if st["best_val"] is None or val_loss < st["best_val"]:
                st["best_val"] = val_loss
                if m.params["keep"] == "best":
                    m.best = {k: v.copy() for k, v in m.weights.items()}
            elif self.scheduled:  # the schedule sets lr each step: the plateau decay scales it from now on
                st["lr_scale"] = st.get("lr_scale", 1.0) * m.params["lr_decay"]
            else:
                assert m.optimizer is not None
                m.optimizer.lr *= m.params["lr_decay"]
            record |= {"valid_loss": val_loss, "valid_ppl": _ppl(val_loss)}
        record["lr"] = self.lr
        st["history"].append(record)
        self._emit("on_epoch_end")

    def _diverged(self, value: float, where: str = "training", what: str = "loss") -> None:
        st = self.state
        saved = [cb for cb in self.callbacks if isinstance(cb, Checkpoint) and cb.saved_epoch]
        kept = (f"the last good checkpoint (after epoch {saved[-1].saved_epoch}) is kept in {saved[-1].directory}"
                if saved else "no checkpoint was written")
        raise LmbenchError(
            f"model {self.model.name}: {where} diverged: {what} is {value} at epoch {st['epoch'] + 1}, "
            f"step {st['step'] + 1} (lr={self.lr:g}); {kept}; try a smaller -p lr or -p clip")


def load_for_resume(directory: str | Path, model_name: str | None, overrides: dict[str, Any]) -> Any:
    """The model saved in `directory`, ready to continue training, with RESUMABLE overrides applied."""
    header = read_checkpoint_header(directory)
    if model_name is not None and header["model"] != model_name:
        raise LmbenchError(f"cannot resume {directory}: it holds a {header['model']} model, not {model_name}")
    model = load_model(directory)
    if not isinstance(model, Trainable) or model.train_state is None:
        raise LmbenchError(f"cannot resume {directory}: model {header['model']} has no saved training state")
    for key, value in overrides.items():
        if key not in model.param_spec:
            raise LmbenchError(f"model {model.name}: unknown parameter {key}")
        coerced = model.param_spec[key].coerce(key, value)
        if key not in RESUMABLE and coerced != model.params[key]:
            raise LmbenchError(f"cannot change -p {key} when resuming ({key} was {model.params[key]!r} in "
                               f"{directory}); only {', '.join(RESUMABLE)} may change")
        model.params[key] = coerced
    return model


def check_resume_tokenizer(saved: Any, kind: str | None, lowercase: bool, jamo: bool, directory: str | Path) -> None:
    """Refuse tokenizer options on --resume that differ from the checkpoint's tokenizer.

    An option left out means "as before" (flags cannot say "off"); one given must match what was saved.
    """
    if saved is None:
        return
    changed = []
    if kind is not None and kind != saved.kind:
        changed.append(f"--tokenizer {kind} (the run used {saved.kind})")
    if lowercase and not saved.lowercase:
        changed.append("--lowercase (the run did not lower-case)")
    if jamo and not saved.jamo:
        changed.append("--jamo (the run did not decompose jamo)")
    if changed:
        raise LmbenchError(f"cannot resume {directory} with a changed tokenizer: {'; '.join(changed)}; "
                           "leave the tokenizer options out when resuming (they come from the checkpoint)")


def vocabulary_difference(saved: Any, new: Any) -> str | None:
    """A short description of how two vocabularies differ (sizes, first differing entry), or None if equal."""
    if saved == new:
        return None
    a, b = list(saved.tokens), list(new.tokens)
    if len(a) != len(b):
        only_a = next((t for t in a if t not in new.index), None)
        only_b = next((t for t in b if t not in saved.index), None)
        extra = "".join([f"; only in the checkpoint: {only_a!r}" if only_a is not None else "",
                         f"; only in the corpus: {only_b!r}" if only_b is not None else ""])
        return f"{len(a):,} entries in the checkpoint, {len(b):,} in the corpus{extra}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return f"both have {len(a):,} entries, but entry {i} is {x!r} in the checkpoint and {y!r} in the corpus"
    for i, (x, y) in enumerate(zip(saved.counts.tolist(), new.counts.tolist(), strict=True)):
        if x != y:
            return (f"both have the same {len(a):,} entries, but the training count of {a[i]!r} is {x:,} in the "
                    f"checkpoint and {y:,} in the corpus")
    return "they differ"


def check_resume_vocabulary(model: Any, vocab: Any, directory: str | Path) -> None:
    """A resumed model must see the vocabulary it was trained with; the message says where they differ."""
    diff = vocabulary_difference(model.vocab, vocab)
    if diff is not None:
        raise LmbenchError(f"cannot resume {directory}: the corpus's vocabulary differs from the checkpoint's "
                           f"({diff}); use the corpus and tokenizer options of the first run")
