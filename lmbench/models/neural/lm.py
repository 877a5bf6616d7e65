"""The recurrent language model (`rnn`, `lstm`, `gru`): embedding → stacked cells → linear decoder → softmax.

Token stream. For each sentence the model reads `<s> w1 … wn` and predicts `w1 … wn </s>`: the input
stream is `Corpus.bounded()` without its `</s>` symbols, the target stream is `Corpus.targets()`, both of
length `n_predicted`. Every word and every `</s>` is predicted exactly once, `<s>` never (its output
logit is fixed at −inf, so probabilities sum to one over the `n_outcomes` predictable tokens), and the
next sentence starts with `<s>` as input while the hidden state carries over (KenLM's accounting, with
the context of the previous sentences as a bonus a count model does not have).

Training follows PyTorch's word_language_model example: the stream is cut into `batch` columns, windows
of `bptt` steps are back-propagated (truncated BPTT) with the hidden state carried across windows and
reset at each epoch. Without a valid split, the last 5% of the training sentences are held out for
validation. Dropout is applied to the embeddings, between layers and before the decoder. The epoch loop,
clipping, learning-rate decay, the kept weights (best on validation by default), divergence and resuming
belong to the one trainer (lmbench.models.neural.trainer); this module gives it one batch's loss and
gradients.

Evaluation (`logprobs`) cuts the corpus into at most `eval_batch` contiguous runs of whole sentences,
evaluated side by side; within a run the state carries across sentences, and each run starts from a
zero state with `<s>` like the first sentence.

Capabilities: `next_logprobs(contexts)` and `sample(...)` (lmbench.models.neural.sampling), and for
gradient-flow diagnostics `hidden_states(ids)` and `hidden_state_grads(ids, t)`
(lmbench.models.neural.diagnostics); `forward`/`backward(..., return_dh=True)` give the same for batches.

Checkpoints: `state()` holds the weights, the carried hidden state and the trainer's state (position,
optimiser, RNG, best weights), so `lmbench train … --resume DIR` continues bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel, Param
from lmbench.models.neural import layers, parallel
from lmbench.models.neural.cells import NONLINEARITIES, RecurrentCell, make_cell
from lmbench.models.neural.diagnostics import RecurrentDiagnostics
from lmbench.models.neural.sampling import RecurrentSampling
from lmbench.models.neural.trainer import Trainable, Trainer, data_digest, training_params
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID

DTYPES = ("float32", "float64")


def _spec(lr: float) -> dict[str, Param]:
    return {
        "emb": Param(200, "embedding size", low=1),
        "hidden": Param(200, "hidden units per layer", low=1),
        "layers": Param(2, "number of stacked recurrent layers", low=1),
        "dropout": Param(0.2, "dropout on embeddings, between layers and before the decoder", low=0.0, high=0.95),
        "tied": Param(False, "share the embedding and decoder weights (needs emb = hidden)"),
        "bptt": Param(35, "truncated-BPTT window (time steps per batch)", low=1),
        "batch": Param(20, "number of parallel streams in training", low=1),
        "eval_batch": Param(32, "number of parallel runs of sentences in evaluation", low=1),
        **training_params(lr=lr),
        "init_range": Param(0.1, "embedding/decoder weights uniform in ±init_range", low=0.0, low_open=True),
        "cell_init": Param(None, "recurrent weights uniform in ±cell_init (default ±1/√hidden, as PyTorch)",
                           kind=float, low=0.0, low_open=True),
        "dtype": Param("float32", "floating-point type (float64 for gradient checks)", choices=DTYPES),
    }


class RecurrentLM(RecurrentSampling, RecurrentDiagnostics, Trainable, LanguageModel):
    """Word-level recurrent LM with explicit forward/backward; subclasses fix the cell kind."""

    cell_kind = ""
    capabilities = frozenset({"next_token", "sample", "hidden_states", "resume"})
    training_blas_threads = 1  # the cores are used by lmbench.models.neural.parallel, the same bits for any count

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.cells: list[RecurrentCell] = []
        self.carry: list[tuple[np.ndarray, ...]] | None = None  # hidden state carried across training batches

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
            for name in list(cell.weights):
                # One dict of all weights; the cell's dict holds the same arrays (updated in place).
                self.weights[f"l{layer}.{name}"] = cell.weights[name]
        if not p["tied"]:
            self.weights["dec.W"] = rng.uniform(-k, k, size=(p["hidden"], vocab_size)).astype(dt)
        self.weights["dec.b"] = np.zeros(vocab_size, dtype=dt)

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
        logits = parallel.matmul(h2, self._decoder_weight())  # one (T·B, H)×(H, V) product
        logits += self.weights["dec.b"]
        logits[:, BOS_ID] = -np.inf  # <s> is never predicted
        return logits, new_state, (x.shape, emb_cache, drop_cache, caches, h2)

    def backward(self, dlogits: np.ndarray, cache: Any, return_dh: bool = False) -> Any:
        """Gradients of every weight from dL/dlogits (T·B, V); with return_dh, (grads, [dL/dh_t per layer])."""
        shape, emb_cache, drop_cache, caches, h2 = cache
        W = self._decoder_weight()
        grads: dict[str, np.ndarray] = {}
        dW = parallel.matmul(h2.T, dlogits)
        grads["dec.b"] = dlogits.sum(axis=0)
        dh = parallel.matmul(dlogits, W.T).reshape(*shape, -1)
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
        """Train with truncated BPTT through the one trainer; continues a loaded run where it stopped."""
        Trainer(self).fit(train, valid)
        return self

    # --- what the trainer needs --------------------------------------------------------------------------
    def prepare(self, train: Corpus, valid: Corpus | None, resuming: bool) -> tuple[np.ndarray, np.ndarray, Corpus]:
        """Column-batched input/target streams (T_total, batch) and the validation corpus."""
        p = self.params
        if resuming:
            self.check_corpus(train)  # a resumed run must see the vocabulary it was trained with
            if self.weights["emb"].shape[0] != len(train.vocab):
                raise LmbenchError(f"model {self.name}: checkpoint vocabulary size {self.weights['emb'].shape[0]} "
                                   f"differs from the corpus's {len(train.vocab)}")
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
        return X, Y, valid

    def data_digest(self, data: tuple[np.ndarray, np.ndarray, Corpus]) -> str:
        """Fingerprint of the batched training streams."""
        X, Y, _ = data
        return data_digest(X.T, Y.T)  # column order = the stream order

    def initialize(self, data: tuple[np.ndarray, np.ndarray, Corpus]) -> None:
        """Fresh weights for the training vocabulary."""
        valid = data[2]
        self.vocab = valid.vocab
        self.build(len(valid.vocab))
        self.carry = None

    def epoch_batches(self, data: tuple[np.ndarray, np.ndarray, Corpus]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Consecutive windows of bptt steps (the last one may be shorter)."""
        X, Y, _ = data
        T = self.params["bptt"]
        return [(X[s:s + T], Y[s:s + T]) for s in range(0, X.shape[0], T)]

    def epoch_tokens(self, data: tuple[np.ndarray, np.ndarray, Corpus]) -> int:
        """Every position of the batched stream."""
        return int(data[0].size)

    def start_epoch(self) -> None:
        """Each epoch starts from a zero hidden state."""
        self.carry = self.zero_state(self.params["batch"])

    def train_batch(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[float, int, dict[str, np.ndarray]]:
        """One truncated-BPTT window: loss and gradients; the state carries on to the next window (detached)."""
        x, y = batch
        if self.carry is None:
            self.carry = self.zero_state(x.shape[1])
        loss, grads, self.carry = self.loss_and_grads(x, y, self.carry, train=True)
        return loss, int(x.size), grads

    def validation_loss(self, data: tuple[np.ndarray, np.ndarray, Corpus]) -> float:
        """Mean negative log-likelihood per predicted token of the validation corpus."""
        return float(-self._score_stream(data[2]).mean())

    # --- checkpoints ----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Weights, the carried hidden state (mid-epoch) and the trainer's state."""
        meta, arrays = self.training_checkpoint()
        arrays |= {f"w.{k}": v for k, v in self.weights.items()}
        if self.carry is not None and self.train_state is not None and self.train_state["batch"] > 0:
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
            w[...] = a  # in place: the cells hold the same arrays
        self.restore_training(meta, arrays)
        carry = [tuple(arrays[f"carry.{layer}.{j}"].copy() for j in range(cell.n_states))
                 for layer, cell in enumerate(self.cells) if f"carry.{layer}.0" in arrays]
        self.carry = carry if len(carry) == len(self.cells) else None


class RNNLM(RecurrentLM):
    """Vanilla (Elman) RNN language model."""

    name = "rnn"
    description = "vanilla RNN language model (NumPy, explicit BPTT)"
    cell_kind = "rnn"
    param_spec = {**_spec(lr=5.0),
                  "nonlinearity": Param("tanh", "recurrent nonlinearity", choices=NONLINEARITIES)}

    def _cell_options(self) -> dict[str, Any]:
        return {**super()._cell_options(), "nonlinearity": self.params["nonlinearity"]}


class LSTMLM(RecurrentLM):
    """LSTM language model."""

    name = "lstm"
    description = "LSTM language model (NumPy, explicit BPTT)"
    cell_kind = "lstm"
    param_spec = {**_spec(lr=20.0),
                  "forget_bias": Param(1.0, "initial forget-gate bias")}

    def _cell_options(self) -> dict[str, Any]:
        return {**super()._cell_options(), "forget_bias": self.params["forget_bias"]}


class GRULM(RecurrentLM):
    """GRU language model."""

    name = "gru"
    description = "GRU language model (NumPy, explicit BPTT)"
    cell_kind = "gru"
    param_spec = _spec(lr=20.0)
