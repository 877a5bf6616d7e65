"""`mix`: linear interpolation of language models, p(w|h) = Σ_k λ_k p_k(w|h), with λ fitted by EM.

An lmbench plugin written only against lmbench's public interface (`lmbench.LanguageModel`, `Param`,
`create_model`, `load_language_model`, `Corpus`, `LmbenchError`) and registered through the entry-point
group `lmbench.models` (see this package's pyproject.toml). The classic use: a Kneser–Ney n-gram and a
recurrent LM make different mistakes, so their mixture beats both.

EM for mixture weights (the component models are fixed): with L_kt = log p_k(w_t | h_t) on held-out text,
  E step: r_kt = λ_k p_kt / Σ_j λ_j p_jt      (responsibility of component k for token t)
  M step: λ_k = (1/N) Σ_t r_kt
Each step cannot lower the held-out log-likelihood Σ_t log Σ_k λ_k p_kt, which is concave in λ.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from lmbench import Corpus, LanguageModel, LmbenchError, Param, create_model, get_model_class, load_language_model

__all__ = ["Mix", "em_weights", "parse_components"]

_COMPONENT = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(?:\((.*)\))?\s*$")


def parse_components(spec: str) -> list[tuple[str, dict[str, str]]]:
    """Parse "trigram + lstm(hidden=64, epochs=2)" into [(name, params), ...]."""
    parts = [p for p in spec.split("+") if p.strip()]
    out = []
    for part in parts:
        m = _COMPONENT.match(part)
        if not m:
            raise LmbenchError(f"mix: component {part.strip()!r} is not of the form NAME or NAME(key=value, ...)")
        params: dict[str, str] = {}
        for item in filter(str.strip, (m.group(2) or "").split(",")):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise LmbenchError(f"mix: parameter {item.strip()!r} of {m.group(1)} is not key=value")
            params[key.strip()] = value.strip()
        out.append((m.group(1), params))
    return out


def em_weights(logprobs: np.ndarray, iterations: int = 200, tol: float = 1e-10,
               init: np.ndarray | None = None) -> tuple[np.ndarray, list[float]]:
    """Mixture weights maximising Σ_t log Σ_k λ_k exp(L_kt) for L of shape (K, N); also the log-likelihood per step."""
    L = np.asarray(logprobs, dtype=np.float64)
    K = L.shape[0]
    usable = np.isfinite(L).any(axis=0)  # a token no component can explain carries no information about λ
    L = L[:, usable]
    weights = np.full(K, 1.0 / K) if init is None else np.asarray(init, dtype=np.float64) / np.sum(init)
    history: list[float] = []
    for _ in range(iterations):
        with np.errstate(divide="ignore"):
            joint = np.log(weights)[:, None] + L  # log λ_k p_kt
        total = np.logaddexp.reduce(joint, axis=0)  # log Σ_k λ_k p_kt
        history.append(float(total.sum()))
        weights = np.exp(joint - total).mean(axis=1)  # responsibilities averaged over tokens
        if len(history) > 1 and history[-1] - history[-2] <= tol * max(1, L.shape[1]):
            break
    return weights, history


class Mix(LanguageModel):
    """Linear interpolation of two or more language models; weights by EM on validation data."""

    name = "mix"
    description = "linear interpolation of language models (e.g. trigram + lstm), weights fitted by EM on valid"
    param_spec = {
        "components": Param("trigram + lstm", "models to train and mix: NAME or NAME(key=value, ...) joined by +"),
        "paths": Param("", "directories of trained models to mix instead (joined by +); then fit only fits weights"),
        "heldout": Param(0.1, "share of training sentences held out for EM when the corpus has no valid split",
                         low=0.0, low_open=True, high=0.5),
        "refit": Param(True, "after fitting weights on held-out training text, retrain the components on all of it"),
        "iterations": Param(200, "maximum EM iterations", low=1),
        "seed": Param(0, "seed given to every component that takes one (unless its own params set it)", low=0),
    }

    def validate_params(self) -> None:
        """Parse the component list now, so a typo fails before any training."""
        if self.params["paths"].strip():
            self._paths = [p.strip() for p in self.params["paths"].split("+") if p.strip()]
            count = len(self._paths)
        else:
            self._specs = parse_components(self.params["components"])
            for name, _ in self._specs:
                get_model_class(name)  # an unknown name fails now, listing the known ones
            count = len(self._specs)
        if count < 2:
            raise LmbenchError("mix needs at least two components, e.g. -p components='trigram + lstm'")
        self.components: list[LanguageModel] = []
        self.weights = np.zeros(0)
        self.em_history: list[float] = []

    def _build(self) -> list[LanguageModel]:
        models = []
        for name, params in self._specs:
            model = create_model(name, params)
            if not isinstance(model, LanguageModel):
                raise LmbenchError(f"mix: component {name} is not a language model")
            if "seed" in model.param_spec and "seed" not in params:
                model = create_model(name, {**params, "seed": self.params["seed"]})
            model.tokenizer = self.tokenizer
            models.append(model)
        return models

    def fit(self, train: Corpus, valid: Corpus | None = None) -> Mix:
        """Train the components (or load them), then fit the weights by EM on valid (or held-out train)."""
        self.vocab = train.vocab
        held_out = valid is None
        if held_out:
            n_hold = max(1, math.ceil(self.params["heldout"] * train.n_sentences))
            if n_hold >= train.n_sentences:
                raise LmbenchError("mix: the training corpus is too small to hold out sentences for EM")
            fit_part = train.select(np.arange(train.n_sentences - n_hold), name=f"{train.name} (fit)")
            valid = train.select(np.arange(train.n_sentences - n_hold, train.n_sentences),
                                 name=f"{train.name} (held out for EM)")
        else:
            fit_part = train
        if self.params["paths"].strip():
            self.components = [self._load(p) for p in self._paths]
        else:
            self.components = [self._fit_one(m, fit_part, valid) for m in self._build()]
        L = np.stack([np.asarray(c.logprobs(valid), dtype=np.float64) for c in self.components])
        self.weights, self.em_history = em_weights(L, self.params["iterations"])
        if held_out and self.params["refit"] and not self.params["paths"].strip():
            self.components = [self._fit_one(m, train, None) for m in self._build()]
        self.fit_info = {
            "weights": {f"{i}:{c.name}": float(w) for i, (c, w) in enumerate(zip(self.components, self.weights))},
            "em_iterations": len(self.em_history),
            "em_valid_log_likelihood": self.em_history[-1] if self.em_history else None,
            "weights_fitted_on": valid.name,
            "components": [c.fit_info for c in self.components],
        }
        return self

    def _fit_one(self, model: LanguageModel, train: Corpus, valid: Corpus | None) -> LanguageModel:
        model.fit(train, valid)
        if model.vocab is None:
            model.vocab = train.vocab
        return model

    def _load(self, path: str) -> LanguageModel:
        model = load_language_model(path)
        if model.vocab != self.vocab:
            raise LmbenchError(f"mix: model {path} was trained with another vocabulary than this corpus's")
        return model

    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """log Σ_k λ_k p_k(w_t | h_t) for every predicted token."""
        self.require_fitted()
        self.check_corpus(corpus)
        L = np.stack([np.asarray(c.logprobs(corpus), dtype=np.float64) for c in self.components])
        with np.errstate(divide="ignore"):
            return np.logaddexp.reduce(np.log(self.weights)[:, None] + L, axis=0)

    # --- checkpoints: the weights here, each component as its own lmbench checkpoint in a subdirectory ---
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The weights and the number of components."""
        return {"n_components": len(self.components), "em_history": self.em_history}, {"weights": self.weights}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the weights (components are read by load_files)."""
        self.weights = arrays["weights"]
        self.em_history = list(meta.get("em_history", []))
        self._n_saved = int(meta["n_components"])
        if self.weights.shape != (self._n_saved,):
            raise ValueError(f"weights have shape {self.weights.shape}, expected ({self._n_saved},)")

    def save_files(self, directory: Path) -> None:
        """Save each component as a checkpoint of its own."""
        for i, component in enumerate(self.components):
            component.save(directory / f"component-{i}")

    def load_files(self, directory: Path) -> None:
        """Load the components through lmbench's public loader (each by its own registered name)."""
        self.components = [load_language_model(directory / f"component-{i}") for i in range(self._n_saved)]
