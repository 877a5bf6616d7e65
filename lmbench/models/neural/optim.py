"""Optimisers that update named weight arrays in place, and global gradient-norm clipping.

    opt = SGD(lr=20.0)  or  Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    total = clip_global_norm(grads, max_norm=0.25)   # scales grads in place, returns the norm before
    opt.step(weights, grads)                         # weights[name] updated in place

Both follow PyTorch's update rules exactly (torch.optim.SGD without momentum, torch.optim.Adam with bias
correction, torch.nn.utils.clip_grad_norm_), so a run can be compared with a torch run step by step.
`state()` / `set_state()` give the optimiser's state as (JSON-able metadata, arrays) for checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.neural import parallel


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """√(Σ ‖g‖²) over every gradient array."""
    return math.sqrt(sum(float(np.vdot(g.ravel(), g.ravel())) for g in grads.values()))


def clip_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global norm is at most max_norm; return the norm before."""
    total = global_norm(grads)
    coef = max_norm / (total + 1e-6)  # torch.nn.utils.clip_grad_norm_'s formula
    if coef < 1.0:
        for g in grads.values():
            g *= g.dtype.type(coef)
    return total


class Optimizer:
    """Common interface: `lr` is a plain attribute (a scheduler may change it), `step` updates in place."""

    def __init__(self, lr: float) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise LmbenchError(f"learning rate must be a positive number, got {lr!r}")
        self.lr = float(lr)

    def step(self, weights: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every weights[name] in place from grads[name]."""
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(metadata, arrays) describing the optimiser's state."""
        return {"lr": self.lr}, {}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state()` returned."""
        self.lr = float(meta["lr"])


class SGD(Optimizer):
    """Plain stochastic gradient descent: θ ← θ − lr·g."""

    def step(self, weights: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """θ ← θ − lr·g for every named weight array."""
        def update(p: np.ndarray, g: np.ndarray) -> None:
            p -= p.dtype.type(self.lr) * g

        for name, g in grads.items():
            parallel.elementwise(update, weights[name], g)  # in blocks over the threads (same bits)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as torch.optim.Adam without weight decay."""

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(lr)
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise LmbenchError(f"Adam betas must be two numbers in [0, 1), got {betas!r}")
        if not eps > 0:
            raise LmbenchError(f"Adam eps must be positive, got {eps!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, weights: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; θ ← θ − lr·m̂ / (√v̂ + eps)."""
        b1, b2 = self.betas
        self.t += 1
        bc1 = 1.0 - b1**self.t
        bc2 = 1.0 - b2**self.t
        step_size = self.lr / bc1

        def update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray) -> None:
            # One scratch array for every intermediate (the same operations as the formulas, in place: fewer
            # allocations, the same bits).
            work = np.multiply(g, 1.0 - b1)
            m *= b1
            m += work  # m ← β1 m + (1−β1) g
            np.multiply(g, g, out=work)
            work *= 1.0 - b2
            v *= b2
            v += work  # v ← β2 v + (1−β2) g²
            np.sqrt(v, out=work)
            work /= math.sqrt(bc2)
            work += self.eps  # √v̂ + eps
            np.divide(m, work, out=work)
            work *= p.dtype.type(step_size)
            p -= work  # θ ← θ − lr·m̂ / (√v̂ + eps)

        for name, g in grads.items():
            p = weights[name]
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            parallel.elementwise(update, p, g, self.m[name], self.v[name])  # in blocks over the threads

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """lr, betas, eps, step count, and the moment arrays (named m.<param>, v.<param>)."""
        arrays = {f"m.{k}": a for k, a in self.m.items()} | {f"v.{k}": a for k, a in self.v.items()}
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "t": self.t}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state()` returned."""
        self.lr = float(meta["lr"])
        self.betas = (float(meta["betas"][0]), float(meta["betas"][1]))
        self.eps = float(meta["eps"])
        self.t = int(meta["t"])
        self.m = {k[2:]: a.copy() for k, a in arrays.items() if k.startswith("m.")}
        self.v = {k[2:]: a.copy() for k, a in arrays.items() if k.startswith("v.")}


OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(name: str, lr: float, weight_decay: float = 0.01) -> Optimizer:
    """An optimiser by name: "sgd", "adam" or "adamw" (weight_decay applies to adamw only)."""
    if name == "sgd":
        return SGD(lr)
    if name == "adam":
        return Adam(lr)
    if name == "adamw":
        return AdamW(lr, weight_decay=weight_decay)
    raise LmbenchError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW.

    θ ← θ − lr·wd·θ before the Adam step. Only matrices (arrays of ≥ 2 dimensions) decay by default: biases
    and LayerNorm gains stay undecayed, the usual practice (GPT-2, nanoGPT).
    """

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, matrices_only: bool = True) -> None:
        super().__init__(lr, betas, eps)
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise LmbenchError(f"AdamW weight_decay must be ≥ 0, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.matrices_only = matrices_only

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """θ ← θ(1 − lr·wd), then the Adam update."""
        if self.weight_decay > 0:
            factor = 1.0 - self.lr * self.weight_decay
            for name in grads:
                p = params[name]
                if p.ndim >= 2 or not self.matrices_only:
                    p *= p.dtype.type(factor)
        super().step(params, grads)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Adam's state plus the weight decay."""
        meta, arrays = super().state()
        return meta | {"weight_decay": self.weight_decay, "matrices_only": self.matrices_only}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state()` returned."""
        super().set_state(meta, arrays)
        self.weight_decay = float(meta.get("weight_decay", self.weight_decay))
        self.matrices_only = bool(meta.get("matrices_only", self.matrices_only))


SCHEDULES = ("constant", "linear", "cosine")


def scheduled_lr(step: int, lr: float, warmup: int, total: int, schedule: str, final: float = 0.1) -> float:
    """Learning rate at optimiser step `step` (0-based): linear warm-up over `warmup` steps from lr/warmup to
    lr, then constant, or a linear or cosine decay to final·lr at step `total` (nanoGPT's schedule)."""
    if schedule not in SCHEDULES:
        raise LmbenchError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * (final + (1.0 - final) * shape)
