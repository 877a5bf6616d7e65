"""The recurrent language model (`rnn`, `lstm`, `gru`): embedding → stacked cells → linear decoder → softmax.

Token stream. For each sentence the model reads `<s> w1 … wn` and predicts `w1 … wn </s>`: the input
stream is `Corpus.bounded()` without its `</s>` symbols, the target stream is `Corpus.targets()`, both of
length `n_predicted`. Every word and every `</s>` is predicted exactly once, `<s>` never (its output
logit is fixed at −inf, so probabilities sum to one over the `n_outcomes` predictable tokens), and the
next sentence starts with `<s>` as input while the hidden state carries over (KenLM's accounting, with
the context of the previous sentences as a bonus a count model does not have).

Training follows PyTorch's word_language_model example: the stream is cut into `batch` columns, windows
of `bptt` steps are back-propagated (truncated BPTT) with the hidden state carried across windows and
reset at each epoch, gradients are clipped to a global norm `clip`, and the learning rate is divided by
`lr_decay` whenever the validation loss does not improve. Without a valid split, the last 5% of the
training sentences are held out for validation. Dropout is applied to the embeddings, between layers
and before the decoder. The model after the last epoch is the result (not the best-on-validation one, so
that a resumed run and an uninterrupted one are the same computation).

Evaluation (`logprobs`) cuts the corpus into at most `eval_batch` contiguous runs of whole sentences,
evaluated side by side; within a run the state carries across sentences, and each run starts from a
zero state with `<s>` like the first sentence.

Capabilities: `next_logprobs(contexts)` (each context = sentence ids so far, without `<s>`: the model
prepends it), `sample(prefix, n_tokens, temperature, rng)`, and for gradient-flow diagnostics
`hidden_states(ids)` (every layer's h_t) and `hidden_state_grads(ids, t)` (every layer's ∂L_t/∂h_j, j ≤ t,
from the cells' `backward(..., return_dh=True)`); `forward`/`backward(..., return_dh=True)` give the same
for whole batches.

Checkpoints: `state()` holds the weights, the optimiser, the RNG state, the carried hidden state and the
training position (epoch, batch, step, lr, best validation loss), so `lmbench train … --resume DIR`
continues bit for bit. When `checkpoint_dir` is set (by `lmbench train`), the model saves itself there
atomically after every epoch; a NaN/inf loss stops training with an LmbenchError and leaves the last good
checkpoint in place.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel, Param
from lmbench.models.neural import layers
from lmbench.models.neural.cells import NONLINEARITIES, RecurrentCell, make_cell
from lmbench.models.neural.optim import OPTIMIZERS, Optimizer, clip_global_norm, global_norm, make_optimizer
from lmbench.progress import Progress
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID

DTYPES = ("float32", "float64")


def _common_spec(lr: float) -> dict[str, Param]:
    return {
        "emb": Param(200, "embedding size", low=1),
        "hidden": Param(200, "hidden units per layer", low=1),
        "layers": Param(2, "number of stacked recurrent layers", low=1),
        "dropout": Param(0.2, "dropout on embeddings, between layers and before the decoder", low=0.0, high=0.95),
        "tied": Param(False, "share the embedding and decoder weights (needs emb = hidden)"),
        "bptt": Param(35, "truncated-BPTT window (time steps per batch)", low=1),
        "batch": Param(20, "number of parallel streams in training", low=1),
        "eval_batch": Param(32, "number of parallel runs of sentences in evaluation", low=1),
        "optimizer": Param("sgd", "optimiser", choices=OPTIMIZERS),
        "lr": Param(lr, "learning rate", low=0.0, low_open=True),
        "lr_decay": Param(4.0, "divide lr by this when the validation loss does not improve", low=1.0),
        "clip": Param(0.25, "global gradient-norm clipping (0 = off)", low=0.0),
        "epochs": Param(6, "training epochs", low=1),
        "max_steps": Param(0, "stop after this many optimiser steps in total (0 = no limit)", low=0),
        "seed": Param(0, "random seed (initialisation, dropout)"),
        "init_range": Param(0.1, "embedding/decoder weights uniform in ±init_range", low=0.0, low_open=True),
        "cell_init": Param(None, "recurrent weights uniform in ±cell_init (default ±1/√hidden, as PyTorch)",
                           kind=float, low=0.0, low_open=True),
        "dtype": Param("float32", "floating-point type (float64 for gradient checks)", choices=DTYPES),
    }


class RecurrentLM(LanguageModel):
    """Word-level recurrent LM with explicit forward/backward; subclasses fix the cell kind."""

    cell_kind = ""
    capabilities = frozenset({"next_token", "sample", "hidden_states", "resume"})

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.weights: dict[str, np.ndarray] = {}
        self.cells: list[RecurrentCell] = []
        self.optimizer: Optimizer | None = None
        self.rng = np.random.default_rng(self.params["seed"])
        self.train_state: dict[str, Any] | None = None  # training position, kept for --resume
        self.carry: list[tuple[np.ndarray, ...]] | None = None  # hidden state carried across batches
        self.checkpoint_dir: Path | None = None
        self.resumable = False  # True after loading a checkpoint: the next fit() continues that run
        self.quiet = False  # True: no progress bar (e.g. --json); otherwise one is drawn on a TTY
        self.grad_norms: list[float] = []  # global gradient norm of each training step (gradient-flow report)

    def validate_params(self) -> None:
        """Tied weights need emb = hidden."""
        p = self.params
        if p["tied"] and p["emb"] != p["hidden"]:
            raise LmbenchError(f"model {self.name}: tied=true needs emb = hidden (got emb={p['emb']}, "
                               f"hidden={p['hidden']})")

    # --- construction -----------------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The floating-point type of weights and activations."""
        return np.dtype(self.params["dtype"])

    def _cell_options(self) -> dict[str, Any]:
        return {"init_range": self.params["cell_init"]}

    def build(self, vocab_size: int) -> None:
        """Create fresh weights for a vocabulary of `vocab_size` entries (PyTorch example's initialisation)."""
        p, rng, dt = self.params, self.rng, self.dtype
        k = p["init_range"]
        self.weights = {"emb": rng.uniform(-k, k, size=(vocab_size, p["emb"])).astype(dt)}
        self.cells = []
        for layer in range(p["layers"]):
            size_in = p["emb"] if layer == 0 else p["hidden"]
            cell = make_cell(self.cell_kind, size_in, p["hidden"], rng, dt, **self._cell_options())
            self.cells.append(cell)
            for name in list(cell.params):
                # One dict of all weights; the cell's dict holds the same arrays (updated in place).
                self.weights[f"l{layer}.{name}"] = cell.params[name]
        if not p["tied"]:
            self.weights["dec.W"] = rng.uniform(-k, k, size=(p["hidden"], vocab_size)).astype(dt)
        self.weights["dec.b"] = np.zeros(vocab_size, dtype=dt)

    def _relink_cells(self) -> None:
        """Point every cell's params at the arrays of self.weights (after loading)."""
        for layer, cell in enumerate(self.cells):
            for name in cell.params:
                cell.params[name] = self.weights[f"l{layer}.{name}"]

    @property
    def vocab_size(self) -> int:
        """Number of embedding rows / decoder outputs (the whole vocabulary, <s> included)."""
        return self.weights["emb"].shape[0]

    def zero_state(self, batch: int) -> list[tuple[np.ndarray, ...]]:
        """All-zero hidden state of every layer."""
        return [cell.zero_state(batch) for cell in self.cells]

    # --- forward / backward -------------------------------------------------------------------------------
    def _decoder_weight(self) -> np.ndarray:
        return self.weights["emb"].T if self.params["tied"] else self.weights["dec.W"]

    def forward(self, x: np.ndarray, state: list[tuple[np.ndarray, ...]], train: bool
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]], Any]:
        """Ids x (T, B) → decoder logits (T·B, V) with <s> masked, the next state, and a cache."""
        p = self.params
        drop = p["dropout"] if train else 0.0
        emb, emb_cache = layers.embedding_forward(x, self.weights["emb"])
        h, drop_cache = layers.dropout_forward(emb, drop, self.rng, train)
        caches, new_state = [], []
        for cell, s in zip(self.cells, state):
            hs, final, cell_cache = cell.forward(h, s)
            h, dcache = layers.dropout_forward(hs, drop, self.rng, train)
            caches.append((cell_cache, dcache))
            new_state.append(final)
        T, B = x.shape
        h2 = h.reshape(T * B, -1)
        logits = h2 @ self._decoder_weight()  # one (T·B, H)×(H, V) matmul
        logits += self.weights["dec.b"]
        logits[:, BOS_ID] = -np.inf  # <s> is never predicted
        return logits, new_state, (x.shape, emb_cache, drop_cache, caches, h2)

    def backward(self, dlogits: np.ndarray, cache: Any, return_dh: bool = False) -> Any:
        """Gradients of every weight from dL/dlogits (T·B, V); with return_dh, (grads, [dL/dh_t per layer])."""
        shape, emb_cache, drop_cache, caches, h2 = cache
        W = self._decoder_weight()
        grads: dict[str, np.ndarray] = {}
        dW = h2.T @ dlogits
        grads["dec.b"] = dlogits.sum(axis=0)
        dh = (dlogits @ W.T).reshape(*shape, -1)
        dhs_per_layer = []
        for layer in range(len(self.cells) - 1, -1, -1):
            cell_cache, dcache = caches[layer]
            dh = layers.dropout_backward(dh, dcache)
            out = self.cells[layer].backward(dh, None, cell_cache, return_dh=return_dh)
            dh, cell_grads = out[0], out[2]
            if return_dh:
                dhs_per_layer.append(out[3])
            for name, g in cell_grads.items():
                grads[f"l{layer}.{name}"] = g
        demb = layers.dropout_backward(dh, drop_cache)
        grads["emb"] = layers.embedding_backward(demb, emb_cache)
        if self.params["tied"]:
            grads["emb"] += dW.T
        else:
            grads["dec.W"] = dW
        return (grads, dhs_per_layer[::-1]) if return_dh else grads

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, state: list[tuple[np.ndarray, ...]], train: bool = True
                       ) -> tuple[float, dict[str, np.ndarray], list[tuple[np.ndarray, ...]]]:
        """Mean cross-entropy of targets y (T, B) given inputs x (T, B), its gradients, and the next state."""
        logits, new_state, cache = self.forward(x, state, train)
        loss, dlogits, _ = layers.softmax_cross_entropy(logits, y.reshape(-1), inplace=True)
        return loss, self.backward(dlogits, cache), new_state

    # --- streams -------------------------------------------------------------------------------------------
    @staticmethod
    def streams(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets) of equal length n_predicted: `<s> w1 … wn` → `w1 … wn </s>` per sentence."""
        bounded = corpus.bounded()
        return bounded[bounded != EOS_ID], corpus.targets()

    def _eval_runs(self, corpus: Corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cut the stream into ≤ eval_batch runs of whole sentences, padded side by side: x, y, mask (L, R)."""
        inputs, targets = self.streams(corpus)
        n = inputs.size
        starts = corpus.offsets[:-1] + np.arange(corpus.n_sentences)  # stream position of each <s>
        runs = min(self.params["eval_batch"], corpus.n_sentences)
        nearest = np.minimum(np.searchsorted(starts, np.arange(1, runs) * n / runs), starts.size - 1)
        cuts = starts[nearest]  # a sentence start near each even share of the stream
        bounds = np.unique(np.concatenate([[0], cuts, [n]])).astype(np.int64)
        lengths = np.diff(bounds)
        L = int(lengths.max())
        pos = np.arange(L)[:, None]
        mask = pos < lengths[None, :]
        index = np.where(mask, bounds[:-1][None, :] + pos, 0)
        return inputs[index], targets[index], mask, index

    def _score_stream(self, corpus: Corpus) -> np.ndarray:
        """log p of every predicted token of `corpus`, in the order of targets()."""
        x, y, mask, _ = self._eval_runs(corpus)
        L, R = x.shape
        out = np.empty((L, R), dtype=np.float64)
        state = self.zero_state(R)
        window = max(self.params["bptt"], 2048 // R)  # long windows: fewer, larger decoder matmuls
        for t0 in range(0, L, window):
            xs, ys = x[t0:t0 + window], y[t0:t0 + window]
            logits, state, _ = self.forward(xs, state, train=False)
            out[t0:t0 + window] = layers.target_logprobs(logits, ys.reshape(-1)).reshape(xs.shape)
        return out.T[mask.T]  # run by run = the original stream order

    # --- the LanguageModel contract -------------------------------------------------------------------
    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """Natural-log probability of each predicted token of `corpus.targets()`, in order."""
        self.require_fitted()
        self.check_corpus(corpus)
        if corpus.n_sentences == 0:
            return np.zeros(0)
        return self._score_stream(corpus)

    def fit(self, train: Corpus, valid: Corpus | None = None) -> RecurrentLM:
        """Train with truncated BPTT (see the module docstring); continues a resumed run where it stopped."""
        p = self.params
        resuming = self.resumable and self.train_state is not None
        self.resumable = False
        if resuming:
            self.check_corpus(train)  # a resumed run must see the vocabulary it was trained with
        self.vocab = train.vocab
        if valid is None or valid.n_sentences == 0:
            n_hold = max(1, int(round(0.05 * train.n_sentences)))
            if train.n_sentences < 2:
                raise LmbenchError(f"model {self.name}: the training corpus needs ≥ 2 sentences to hold out "
                                   "a validation part (or give a valid split)")
            k = train.n_sentences - n_hold
            train, valid = train.select(np.arange(k), name=train.name), train.select(
                np.arange(k, train.n_sentences), name=f"{train.name} (held-out 5%)")
        inputs, targets = self.streams(train)
        B, T = p["batch"], p["bptt"]
        nb = inputs.size // B
        if nb < T:
            raise LmbenchError(
                f"model {self.name}: bptt={T} is longer than the training stream allows: {inputs.size:,} tokens "
                f"in batch={B} columns give {nb} steps per column; lower bptt or batch")
        # Column-major batchify, as the PyTorch example: column j is a contiguous piece of the stream.
        X = inputs[: nb * B].reshape(B, nb).T.copy()
        Y = targets[: nb * B].reshape(B, nb).T.copy()
        digest = hashlib.sha256(inputs.tobytes() + targets.tobytes()).hexdigest()[:16]
        if not resuming:
            self.rng = np.random.default_rng(p["seed"])
            self.build(len(train.vocab))
            self.optimizer = make_optimizer(p["optimizer"], p["lr"])
            self.train_state = {"epoch": 0, "batch": 0, "step": 0, "best_val": None, "history": [],
                                "data": digest}
            self.carry = None
        elif self.train_state.get("data") != digest:
            raise LmbenchError(f"model {self.name}: cannot resume: the training data differ from the run "
                               "that wrote the checkpoint")
        if self.weights["emb"].shape[0] != len(train.vocab):
            raise LmbenchError(f"model {self.name}: checkpoint vocabulary size {self.weights['emb'].shape[0]} "
                               f"differs from the corpus's {len(train.vocab)}")
        self._train_loop(X, Y, valid)
        return self

    def _train_loop(self, X: np.ndarray, Y: np.ndarray, valid: Corpus) -> None:
        p, st = self.params, self.train_state
        assert st is not None and self.optimizer is not None
        nb, B = X.shape
        T = p["bptt"]
        starts = list(range(0, nb, T))
        max_steps = p["max_steps"] or None
        done_this_epoch = sum(min(T, nb - s) * B for s in starts[: st["batch"]])
        total = sum(min(T, nb - s) * B for s in starts) * max(p["epochs"] - st["epoch"], 0) - done_this_epoch
        if max_steps is not None:
            total = min(total, max(max_steps - st["step"], 0) * T * B)
        t_start = time.perf_counter()
        tokens_done = 0
        self.grad_norms = []
        with Progress(total, f"train {self.name}", unit="tok", enabled=False if self.quiet else None) as bar:
            while st["epoch"] < p["epochs"]:
                bar.label = f"train {self.name} epoch {st['epoch'] + 1}/{p['epochs']}"
                if st["batch"] == 0 or self.carry is None:
                    self.carry = self.zero_state(B)
                while st["batch"] < len(starts) and (max_steps is None or st["step"] < max_steps):
                    s = starts[st["batch"]]
                    x, y = X[s:s + T], Y[s:s + T]
                    loss = self._train_step(x, y)
                    if not math.isfinite(loss):
                        self._diverged(loss)
                    st["batch"] += 1
                    st["step"] += 1
                    tokens_done += x.size
                    bar.update(x.size, loss=loss, ppl=math.exp(min(loss, 700.0)), lr=self.optimizer.lr)
                if st["batch"] < len(starts):  # stopped by max_steps mid-epoch; the state is kept for resuming
                    break
                self._end_epoch(valid, bar)
        seconds = time.perf_counter() - t_start
        self.fit_info = {"epochs_done": st["epoch"], "steps": st["step"], "lr": self.optimizer.lr,
                         "history": st["history"], "train_loop_seconds": seconds,
                         "train_loop_tokens_per_second": tokens_done / seconds if seconds > 0 else None,
                         "grad_norms": [float(f"{g:.5g}") for g in self.grad_norms]}  # per step of this run
        if self.checkpoint_dir is not None:
            self.save(self.checkpoint_dir)

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One truncated-BPTT step: forward, backward, clip, update; the state carries on (detached)."""
        loss, grads, self.carry = self.loss_and_grads(x, y, self.carry, train=True)
        if not math.isfinite(loss):
            return loss
        clip = self.params["clip"]
        norm = clip_global_norm(grads, clip) if clip > 0 else global_norm(grads)
        # The exploding side of gradient flow: every step's global norm (before clipping) → fit_info.
        self.grad_norms.append(float(norm))
        if not math.isfinite(norm):
            return float("nan")
        self.optimizer.step(self.weights, grads)
        return loss

    def _end_epoch(self, valid: Corpus, bar: Progress) -> None:
        st = self.train_state
        val_loss = float(-self._score_stream(valid).mean())
        if not math.isfinite(val_loss):
            self._diverged(val_loss, where="validation")
        st["epoch"] += 1
        st["batch"] = 0
        improved = st["best_val"] is None or val_loss < st["best_val"]
        if improved:
            st["best_val"] = val_loss
        else:
            self.optimizer.lr /= self.params["lr_decay"]
        st["history"].append({"epoch": st["epoch"], "step": st["step"], "valid_loss": val_loss,
                              "valid_ppl": math.exp(val_loss), "lr": self.optimizer.lr})
        bar.update(0, val_ppl=math.exp(val_loss))
        self.carry = None
        if self.checkpoint_dir is not None:
            self.save(self.checkpoint_dir)  # atomic: the previous checkpoint survives a crash here

    def _diverged(self, loss: float, where: str = "training") -> None:
        st = self.train_state
        kept = (f"the last good checkpoint (after epoch {st['epoch']}) is kept in {self.checkpoint_dir}"
                if self.checkpoint_dir is not None and st["epoch"] > 0 else "no checkpoint was written")
        raise LmbenchError(
            f"model {self.name}: {where} loss became {loss} at epoch {st['epoch'] + 1}, step {st['step'] + 1} "
            f"(lr={self.optimizer.lr:g}); {kept}; try a smaller lr or clip")

    # --- checkpoints ----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Weights, optimiser, RNG, carried hidden state and training position."""
        arrays = {f"w.{k}": v for k, v in self.weights.items()}
        meta: dict[str, Any] = {"train": self.train_state, "rng": self.rng.bit_generator.state}
        if self.optimizer is not None:
            opt_meta, opt_arrays = self.optimizer.state()
            meta["optimizer"] = opt_meta
            arrays |= {f"opt.{k}": v for k, v in opt_arrays.items()}
        if self.carry is not None:
            for layer, s in enumerate(self.carry):
                for j, a in enumerate(s):
                    arrays[f"carry.{layer}.{j}"] = a
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `state()` returned, checking every weight's shape against the parameters."""
        vocab_size = len(self.require_fitted())
        self.rng = np.random.default_rng(self.params["seed"])
        self.build(vocab_size)
        for name, w in self.weights.items():
            a = arrays[f"w.{name}"]
            if a.shape != w.shape or a.dtype != w.dtype:
                raise ValueError(f"weight {name} is {a.shape} {a.dtype}, the parameters need {w.shape} {w.dtype}")
            self.weights[name] = a.copy()
        self._relink_cells()
        self.rng.bit_generator.state = meta["rng"]
        self.train_state = meta.get("train")
        self.resumable = self.train_state is not None
        if "optimizer" in meta:
            self.optimizer = make_optimizer(self.params["optimizer"], self.params["lr"])
            opt_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
            self.optimizer.set_state(meta["optimizer"], opt_arrays)
        carry = [tuple(arrays[f"carry.{layer}.{j}"].copy() for j in range(cell.n_states))
                 for layer, cell in enumerate(self.cells) if f"carry.{layer}.0" in arrays]
        self.carry = carry if len(carry) == len(self.cells) else None

    # --- capabilities -----------------------------------------------------------------------------------------
    def _batch_contexts(self, contexts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """`<s>` + each context, right-padded into (L, N); and each context's last position."""
        lengths = np.array([len(c) + 1 for c in contexts], dtype=np.int64)
        x = np.zeros((int(lengths.max()), len(contexts)), dtype=np.int64)
        x[0] = BOS_ID
        for j, c in enumerate(contexts):  # one copy per context, not per token
            x[1:lengths[j], j] = np.asarray(c, dtype=np.int64)
        return x, lengths - 1

    def next_logprobs(self, contexts: Sequence[np.ndarray]) -> np.ndarray:
        """(N, V) log-probabilities of the next token after `<s>` + each context (sentence ids so far)."""
        vocab = self.require_fitted()
        if len(contexts) == 0:
            return np.zeros((0, len(vocab)))
        x, last = self._batch_contexts(contexts)
        if x.size and (x.min() < 0 or x.max() >= len(vocab)):
            raise LmbenchError(f"model {self.name}: context ids must be in [0, {len(vocab)})")
        L, N = x.shape
        h = layers.embedding_forward(x, self.weights["emb"])[0]
        state = self.zero_state(N)
        for cell, s in zip(self.cells, state):
            h = cell.forward(h, s)[0]
        h_last = h[last, np.arange(N)]
        logits = (h_last @ self._decoder_weight() + self.weights["dec.b"]).astype(np.float64)
        logits[:, BOS_ID] = -np.inf
        return layers.log_softmax(logits)

    def sample(self, prefix: Sequence[int], n_tokens: int, temperature: float = 1.0,
               rng: np.random.Generator | None = None) -> list[int]:
        """Generate n_tokens ids after `<s>` + prefix; after `</s>` a new sentence starts with `<s>`."""
        self.require_fitted()
        if temperature <= 0:
            raise LmbenchError(f"temperature must be > 0, got {temperature}")
        rng = rng or np.random.default_rng()
        state = self.zero_state(1)
        inputs = [BOS_ID, *prefix]
        out: list[int] = []
        W, b = self._decoder_weight(), self.weights["dec.b"]
        while len(out) < n_tokens:
            x = np.asarray(inputs, dtype=np.int64)[:, None]
            h = layers.embedding_forward(x, self.weights["emb"])[0]
            new_state = []
            for cell, s in zip(self.cells, state):
                h, final, _ = cell.forward(h, s)
                new_state.append(final)
            state = new_state
            logits = (h[-1, 0] @ W + b).astype(np.float64) / temperature
            logits[BOS_ID] = -np.inf
            probs = np.exp(logits - logits.max())
            token = int(rng.choice(probs.size, p=probs / probs.sum()))
            out.append(token)
            inputs = [BOS_ID if token == EOS_ID else token]
        return out

    def hidden_states(self, ids: np.ndarray) -> list[np.ndarray]:
        """Hidden states of every layer, (len(ids)+1, H) each, while reading `<s>` + ids (no dropout)."""
        self.require_fitted()
        x = np.concatenate([[BOS_ID], np.asarray(ids, dtype=np.int64)])[:, None]
        h = layers.embedding_forward(x, self.weights["emb"])[0]
        out = []
        for cell, s in zip(self.cells, self.zero_state(1)):
            h = cell.forward(h, s)[0]
            out.append(h[:, 0].copy())
        return out

    def hidden_state_grads(self, ids: np.ndarray, t: int) -> list[np.ndarray]:
        """Per layer, (t+1, H): ∂L_t/∂h_j for j = 0…t, where L_t = −log p(token t+1 | `<s>` + ids[:t]).

        The targets are ids + `</s>`, so t ranges over 0 … len(ids); ‖row t−k‖ is the gradient norm k steps
        back, the quantity of the vanishing-gradient diagnostic.
        """
        self.require_fitted()
        ids = np.asarray(ids, dtype=np.int64)
        if not 0 <= t <= ids.size:
            raise LmbenchError(f"step t={t} is outside 0…{ids.size}")
        x = np.concatenate([[BOS_ID], ids[:t]])[:, None]
        y = np.concatenate([ids, [EOS_ID]])[: t + 1][:, None]
        logits, _, cache = self.forward(x, self.zero_state(1), train=False)
        _, dlogits, _ = layers.softmax_cross_entropy(logits, y.reshape(-1), inplace=True, scale=1.0)
        dlogits[:-1] = 0.0  # only the loss at step t
        _, dhs = self.backward(dlogits, cache, return_dh=True)
        return [dh[:, 0] for dh in dhs]


class RNNLM(RecurrentLM):
    """Vanilla (Elman) RNN language model."""

    name = "rnn"
    description = "vanilla RNN language model (NumPy, explicit BPTT)"
    cell_kind = "rnn"
    param_spec = {**_common_spec(lr=5.0),
                  "nonlinearity": Param("tanh", "recurrent nonlinearity", choices=NONLINEARITIES)}

    def _cell_options(self) -> dict[str, Any]:
        return {**super()._cell_options(), "nonlinearity": self.params["nonlinearity"]}


class LSTMLM(RecurrentLM):
    """LSTM language model."""

    name = "lstm"
    description = "LSTM language model (NumPy, explicit BPTT)"
    cell_kind = "lstm"
    param_spec = {**_common_spec(lr=20.0),
                  "forget_bias": Param(1.0, "initial forget-gate bias")}

    def _cell_options(self) -> dict[str, Any]:
        return {**super()._cell_options(), "forget_bias": self.params["forget_bias"]}


class GRULM(RecurrentLM):
    """GRU language model."""

    name = "gru"
    description = "GRU language model (NumPy, explicit BPTT)"
    cell_kind = "gru"
    param_spec = _common_spec(lr=20.0)
