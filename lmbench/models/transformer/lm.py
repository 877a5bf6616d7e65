"""The `transformer` language model: a decoder-only (GPT-style) Transformer in NumPy with explicit backward.

    x_t     = E[w_t] + P[t]                                    token + position embeddings (P learned or sinusoidal)
    h       = Block_L(… Block_1(x))                            causal self-attention + GELU feed-forward, residuals
    p(w_{t+1} | w_≤t) = softmax(LN(h_t) E^T + b)               tied embeddings (or a separate output matrix)

Token stream, as the recurrent LM (lmbench.models.neural.lm): the model reads `<s> w1 … wn <s> …` and predicts
`w1 … wn </s> …`; every word and `</s>` is predicted once, `<s>` never (its logit is −inf). Training cuts the
stream into windows of `context` tokens (a random shift of the cut points each epoch, windows shuffled),
`batch` windows per step. The one trainer (lmbench.models.neural.trainer) runs the epochs: AdamW with its
per-step schedule (linear warm-up, then cosine/linear decay), global-norm clipping, keep best, resume.

Evaluation over long text uses a sliding window: windows of `context` tokens advance by `stride` tokens, and
each window scores only the tokens the previous window did not, so every token is predicted once with at
least context − stride tokens of history (the first window's tokens with what precedes them). stride =
context gives non-overlapping windows (cheapest, least context); the default, context/2, is the usual
compromise. Sentences are not isolated: the context runs across sentence boundaries, like the recurrent
models' carried state.

Beyond the window: with `slide` (default) a context longer than the window keeps its last `context` tokens
(so a dependency further back is invisible: the distance probe is at chance there); with slide=false it is
an error. `sample` keeps a key/value cache per layer while the text fits in the window, then recomputes
the last `context` tokens at each step (exact sliding).

Capabilities: next_token (next_logprobs), sample, attention (attention_weights of one sentence), and
hidden_states for the gradient-flow diagnostic: hidden_states(ids) are the inputs of every layer (the residual
stream; layer 0's input is the embedding sum x) and hidden_state_grads(ids, t) gives ∂L_t/∂(input of layer l)
at every position j ≤ t — zero for positions outside the window, which the gradient cannot reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import LanguageModel, Param
from lmbench.models.neural import layers, parallel
from lmbench.models.neural.trainer import Trainable, Trainer, data_digest, training_params
from lmbench.models.transformer.block import NORMS, POSITIONS, BlockConfig
from lmbench.models.transformer.stack import StackSpec, init_stack, stack_backward, stack_forward
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID


def transformer_shape_spec(context: int, layers_: int, heads: int, d_model: int, d_ff: int, dropout: float
                           ) -> dict[str, Param]:
    """The architecture parameters shared by the LM and the translator."""
    return {
        "context": Param(context, "window: the most tokens the model attends over (positions)", low=1),
        "layers": Param(layers_, "Transformer layers", low=1),
        "heads": Param(heads, "attention heads per layer (must divide d_model)", low=1),
        "d_model": Param(d_model, "width of the residual stream and embeddings", low=1),
        "d_ff": Param(d_ff, "hidden units of the feed-forward network", low=1),
        "dropout": Param(dropout, "dropout on embeddings and on every sublayer's output", low=0.0, high=0.9),
        "positions": Param("learned", "position embeddings: learned or sinusoidal", choices=POSITIONS),
        "norm": Param("pre", "LayerNorm before each sublayer (pre, GPT-2) or after the residual sum (post)",
                      choices=NORMS),
    }


def transformer_training_spec(lr: float, warmup: int, epochs: int, batch: int) -> dict[str, Param]:
    """The trainer's parameters with the Transformer's defaults (AdamW, warm-up + cosine decay), and batch."""
    return {
        **training_params(lr=lr, optimizer="adamw", lr_decay=1.0, clip=1.0, epochs=epochs, warmup=warmup,
                          schedule="cosine", weight_decay=0.01),
        "batch": Param(batch, "sequences per training step", low=1),
        "dtype": Param("float32", "floating-point type (float64 for gradient checks)", choices=("float32", "float64")),
    }


def check_heads(name: str, d_model: int, heads: int) -> None:
    """heads must divide d_model (each head gets d_model / heads dimensions)."""
    if d_model % heads:
        raise LmbenchError(f"model {name}: heads={heads} does not divide d_model={d_model}; "
                           f"choose heads among {', '.join(str(h) for h in range(1, d_model + 1) if d_model % h == 0)}")


class TransformerLM(Trainable, LanguageModel):
    """Decoder-only Transformer language model with explicit forward/backward."""

    name = "transformer"
    description = "Transformer language model (NumPy, causal self-attention, explicit backward)"
    capabilities = frozenset({"next_token", "sample", "hidden_states", "attention", "resume"})
    # BLAS single-threaded: the cores are used by lmbench.models.neural.parallel (products in row blocks, element-
    # wise passes in cache-sized blocks), the same bits for any thread count, and no OpenBLAS worker threads left
    # spinning beside lmbench's own.
    training_blas_threads = 1
    param_spec = {
        **transformer_shape_spec(context=64, layers_=2, heads=4, d_model=128, d_ff=512, dropout=0.1),
        "tied": Param(True, "share the token embedding and the output matrix"),
        "stride": Param(0, "evaluation: tokens a sliding window advances (0 = context/2, at least 1)", low=0),
        "slide": Param(True, "a context longer than the window keeps its last `context` tokens (else an error)"),
        "eval_batch": Param(32, "windows per evaluation batch", low=1),
        **transformer_training_spec(lr=1e-3, warmup=100, epochs=4, batch=32),
    }

    def validate_params(self) -> None:
        """heads must divide d_model."""
        check_heads(self.name, self.params["d_model"], self.params["heads"])

    # --- construction ---------------------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """Floating-point type of weights and activations."""
        return np.dtype(self.params["dtype"])

    @property
    def spec(self) -> StackSpec:
        """The decoder stack's shape."""
        p = self.params
        block = BlockConfig(p["d_model"], p["heads"], p["d_ff"], p["dropout"], p["norm"], causal=True)
        return StackSpec("", block, p["layers"], p["context"], self.vocab_size, p["positions"])

    @property
    def vocab_size(self) -> int:
        """Rows of the token embedding (the whole vocabulary, <s> included)."""
        return self.weights["emb"].shape[0] if self.weights else len(self.require_fitted())

    @property
    def context_window(self) -> int:
        """Tokens read to predict the next one (`context`, `<s>` included): a token d ≤ context back is seen."""
        return int(self.params["context"])

    def build(self, vocab_size: int) -> None:
        """Fresh weights for a vocabulary of `vocab_size` entries (GPT-2 initialisation)."""
        p = self.params
        block = BlockConfig(p["d_model"], p["heads"], p["d_ff"], p["dropout"], p["norm"], causal=True)
        spec = StackSpec("", block, p["layers"], p["context"], vocab_size, p["positions"])
        self.weights = init_stack(spec, self.rng, self.dtype)
        if not p["tied"]:
            self.weights["out.W"] = self.rng.normal(0.0, 0.02, (p["d_model"], vocab_size)).astype(self.dtype)
        self.weights["out.b"] = np.zeros(vocab_size, dtype=self.dtype)

    def _out_weight(self) -> np.ndarray:
        return self.weights["emb"].T if self.params["tied"] else self.weights["out.W"]

    # --- forward / backward ------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, train: bool = False) -> tuple[np.ndarray, Any]:
        """Ids x (B, T ≤ context) → logits (B·T, V) with `<s>` masked, and the cache for `backward`."""
        spec = self.spec
        h, cache = stack_forward(x, self.weights, spec, self.rng, train)
        h2 = h.reshape(-1, h.shape[-1])
        logits = parallel.matmul(h2, self._out_weight())
        logits += self.weights["out.b"]
        logits[:, BOS_ID] = -np.inf  # <s> is never predicted
        return logits, (cache, h2, h.shape)

    def backward(self, dlogits: np.ndarray, cache: Any, return_dx: bool = False) -> Any:
        """Gradients of every weight from dL/dlogits; with return_dx also ∂L/∂(input of each layer)."""
        stack_cache, h2, shape = cache
        dW = parallel.matmul(h2.T, dlogits)
        db = dlogits.sum(axis=0)
        dh = parallel.matmul(dlogits, self._out_weight().T).reshape(shape)
        out = stack_backward(dh, stack_cache, self.spec, return_dx=return_dx)
        grads = out[0]
        grads["out.b"] = db
        if self.params["tied"]:
            grads["emb"] += dW.T
        else:
            grads["out.W"] = dW
        return (grads, out[2]) if return_dx else grads

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, train: bool = True) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy of targets y (B, T) given inputs x (B, T), and every weight's gradient."""
        logits, cache = self.forward(x, train)
        loss, dlogits, _ = layers.softmax_cross_entropy(logits, y.reshape(-1), inplace=True)
        return loss, self.backward(dlogits, cache)

    # --- streams and windows -------------------------------------------------------------------------------------
    @staticmethod
    def streams(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets): `<s> w1 … wn` → `w1 … wn </s>` per sentence, concatenated."""
        bounded = corpus.bounded()
        return bounded[bounded != EOS_ID].astype(np.int64), corpus.targets().astype(np.int64)

    def eval_windows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Sliding windows over a stream of n tokens: starts (W,) and the first position each one scores."""
        C = min(self.params["context"], n)
        stride = self.params["stride"] or max(1, self.params["context"] // 2)
        stride = min(stride, C)
        starts = list(range(0, n - C + 1, stride))
        if starts[-1] != n - C:
            starts.append(n - C)
        starts_a = np.asarray(starts, dtype=np.int64)
        ends = starts_a + C
        first = np.concatenate([[0], ends[:-1]])  # each window scores what the previous one did not
        return starts_a, first

    def _score_stream(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        n = inputs.size
        C = min(self.params["context"], n)
        starts, first = self.eval_windows(n)
        out = np.empty(n)
        EB = self.params["eval_batch"]
        offs = np.arange(C)
        for i in range(0, starts.size, EB):
            s = starts[i:i + EB]
            idx = s[:, None] + offs
            logits, _ = self.forward(inputs[idx], train=False)
            lp = layers.target_logprobs(logits, targets[idx].reshape(-1)).reshape(idx.shape)
            keep = idx >= first[i:i + EB, None]
            out[idx[keep]] = lp[keep]
        return out

    # --- the LanguageModel contract --------------------------------------------------------------------------
    def logprobs(self, corpus: Corpus) -> np.ndarray:
        """Natural-log probability of each predicted token of `corpus.targets()` (sliding-window evaluation)."""
        self.require_fitted()
        self.check_corpus(corpus)
        if corpus.n_sentences == 0:
            return np.zeros(0)
        return self._score_stream(*self.streams(corpus))

    def fit(self, train: Corpus, valid: Corpus | None = None) -> TransformerLM:
        """Train through the one trainer; without a valid split the last 5% of sentences validate."""
        Trainer(self).fit(train, valid)
        return self

    # --- Trainable (the shared trainer's model side) ------------------------------------------------------------
    def prepare(self, train: Corpus, valid: Corpus | None, resuming: bool) -> dict[str, Any]:
        """Input/target streams of train and valid (the last 5% of train when there is no valid split)."""
        if resuming:
            self.check_corpus(train)  # a resumed run must see the vocabulary it was trained with
            if self.weights["emb"].shape[0] != len(train.vocab):
                raise LmbenchError(f"model {self.name}: checkpoint vocabulary size {self.weights['emb'].shape[0]} "
                                   f"differs from the corpus's {len(train.vocab)}")
        if valid is None or valid.n_sentences == 0:
            if train.n_sentences < 2:
                raise LmbenchError(f"model {self.name}: the training corpus needs ≥ 2 sentences to hold out "
                                   "a validation part (or give a valid split)")
            k = train.n_sentences - max(1, int(round(0.05 * train.n_sentences)))
            train, valid = train.select(np.arange(k), name=train.name), train.select(
                np.arange(k, train.n_sentences), name=f"{train.name} (held-out 5%)")
        x, y = self.streams(train)
        if x.size < 2:
            raise LmbenchError(f"model {self.name}: the training corpus has fewer than 2 predicted tokens")
        T = min(self.params["context"], x.size)
        # Windows per epoch: the same for every random shift of the cut points (the schedule's length).
        windows = (x.size - T + 1) // T if x.size >= 2 * T else x.size // T
        return {"x": x, "y": y, "T": T, "windows": windows, "valid": self.streams(valid), "vocab": train.vocab}

    def data_digest(self, data: dict[str, Any]) -> str:
        """Fingerprint of the training streams."""
        return data_digest(data["x"], data["y"])

    def initialize(self, data: dict[str, Any]) -> None:
        """Fresh weights for the training vocabulary."""
        self.vocab = data["vocab"]
        self.build(len(self.vocab))

    def epoch_batches(self, data: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """This epoch's batches: windows cut at a random shift of the stream, shuffled, `batch` per step."""
        x, y, T, n = data["x"], data["y"], data["T"], data["windows"]
        shift = int(self.rng.integers(0, T)) if x.size >= 2 * T else 0
        starts = shift + T * self.rng.permutation(n)
        B = self.params["batch"]
        offs = np.arange(T)
        out = []
        for i in range(0, n, B):
            idx = starts[i:i + B, None] + offs
            out.append((x[idx], y[idx]))
        return out

    def epoch_tokens(self, data: dict[str, Any]) -> int:
        """Predicted tokens of one epoch's windows."""
        return int(data["windows"] * data["T"])

    def start_epoch(self) -> None:
        """Nothing carries across batches in a Transformer."""

    def train_batch(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[float, int, dict[str, np.ndarray]]:
        """Mean loss, predicted tokens and gradients of one batch (dropout on)."""
        x, y = batch
        loss, grads = self.loss_and_grads(x, y, train=True)
        return loss, int(x.size), grads

    def validation_loss(self, data: dict[str, Any]) -> float:
        """Mean nats per predicted token on the validation stream (sliding windows)."""
        xv, yv = data["valid"]
        return float(-self._score_stream(xv, yv).mean())

    # --- checkpoints -----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The weights and the trainer's state (position, optimiser, RNG, best weights) for --resume."""
        meta, arrays = self.training_checkpoint()
        return meta, arrays | {f"w.{k}": v for k, v in self.weights.items()}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore the weights, checking each one's shape against the parameters."""
        self.rng = np.random.default_rng(self.params["seed"])
        self.build(len(self.require_fitted()))
        for name, w in self.weights.items():
            a = arrays[f"w.{name}"]
            if a.shape != w.shape:
                raise ValueError(f"weight {name} is {a.shape}, the parameters need {w.shape}")
            self.weights[name] = a.astype(self.dtype, copy=True)
        self.restore_training(meta, arrays)

    # --- capabilities --------------------------------------------------------------------------------------------
    def _window(self, ids: np.ndarray, what: str) -> np.ndarray:
        """`ids` if it fits in the window; its last `context` tokens with slide; an error otherwise."""
        C = self.params["context"]
        if ids.size <= C:
            return ids
        if not self.params["slide"]:
            raise LmbenchError(f"model {self.name}: {what} has {ids.size} tokens (with <s>), more than the window "
                               f"context={C}, and slide=false; set -p slide=true or a larger context")
        return ids[-C:]

    def next_logprobs(self, contexts: Sequence[np.ndarray]) -> np.ndarray:
        """(N, V) log-probabilities of the next token after `<s>` + each context (sentence ids so far)."""
        vocab = self.require_fitted()
        if len(contexts) == 0:
            return np.zeros((0, len(vocab)))
        seqs = [self._window(np.concatenate([[BOS_ID], np.asarray(c, dtype=np.int64)]), "a context")
                for c in contexts]
        lengths = np.array([s.size for s in seqs])
        x = np.zeros((len(seqs), int(lengths.max())), dtype=np.int64)
        for j, s in enumerate(seqs):  # right-padded: causal attention never looks at the padding
            x[j, : s.size] = s
        if x.min() < 0 or x.max() >= len(vocab):
            raise LmbenchError(f"model {self.name}: context ids must be in [0, {len(vocab)})")
        h, _ = stack_forward(x, self.weights, self.spec)
        h_last = h[np.arange(len(seqs)), lengths - 1]
        logits = (h_last @ self._out_weight() + self.weights["out.b"]).astype(np.float64)
        logits[:, BOS_ID] = -np.inf
        return layers.log_softmax(logits)

    def _step_logits(self, token: int, pos: int, pasts: list[tuple[np.ndarray, np.ndarray]] | None
                     ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """One new token at position `pos` against the cached keys/values → next-token logits, new caches."""
        h, cache = stack_forward(np.array([[token]]), self.weights, self.spec, offset=pos, pasts=pasts)
        return (h[0, -1] @ self._out_weight() + self.weights["out.b"]).astype(np.float64), kv_of(cache)

    def sample(self, prefix: Sequence[int], n_tokens: int, temperature: float = 1.0,
               rng: np.random.Generator | None = None) -> list[int]:
        """Generate n_tokens ids after `<s>` + prefix (key/value cache; after `</s>` a new `<s>` is read)."""
        self.require_fitted()
        if temperature <= 0:
            raise LmbenchError(f"temperature must be > 0, got {temperature}")
        rng = rng or np.random.default_rng()
        C = self.params["context"]
        seq = [BOS_ID, *(int(t) for t in prefix)]
        if not self.params["slide"] and len(seq) + n_tokens - 1 > C:
            raise LmbenchError(f"model {self.name}: generating {n_tokens} tokens after {len(seq)} would pass the "
                               f"window context={C} and slide=false; set -p slide=true or ask for fewer tokens")
        self._window(np.asarray(seq), "the prompt")
        window = seq[-C:]
        h, cache = stack_forward(np.asarray([window]), self.weights, self.spec)
        logits = (h[0, -1] @ self._out_weight() + self.weights["out.b"]).astype(np.float64)
        pasts: list[tuple[np.ndarray, np.ndarray]] | None = kv_of(cache)
        out: list[int] = []
        while True:
            logits[BOS_ID] = -np.inf
            z = logits / temperature
            probs = np.exp(z - z.max())
            token = int(rng.choice(probs.size, p=probs / probs.sum()))
            out.append(token)
            if len(out) >= n_tokens:
                return out
            seq.append(BOS_ID if token == EOS_ID else token)
            if len(seq) <= C and pasts is not None:
                logits, pasts = self._step_logits(seq[-1], len(seq) - 1, pasts)
            else:  # past the window: slide it and recompute (positions shift, so the cache is stale)
                h, _ = stack_forward(np.asarray([seq[-C:]]), self.weights, self.spec)
                logits = (h[0, -1] @ self._out_weight() + self.weights["out.b"]).astype(np.float64)
                pasts = None

    def attention_weights(self, ids: Sequence[int]) -> list[np.ndarray]:
        """Per layer, (heads, T, T) attention weights while reading `<s>` + ids (query row, key column)."""
        self.require_fitted()
        x = self._window(np.concatenate([[BOS_ID], np.asarray(ids, dtype=np.int64)]), "the sentence")
        _, cache = stack_forward(x[None, :], self.weights, self.spec)
        return [c["subs"][0][2]["attn"][0].copy() for c in cache[2]]

    def hidden_states(self, ids: np.ndarray) -> list[np.ndarray]:
        """Residual-stream input of every layer, (T, D) each, while reading `<s>` + ids (within the window)."""
        self.require_fitted()
        x = self._window(np.concatenate([[BOS_ID], np.asarray(ids, dtype=np.int64)]), "the sentence")
        _, cache = stack_forward(x[None, :], self.weights, self.spec)
        return [c["input"][0].copy() for c in cache[2]]

    def hidden_state_grads(self, ids: np.ndarray, t: int) -> list[np.ndarray]:
        """Per layer, (t+1, D): ∂L_t/∂(layer input at j), j = 0…t, L_t = −log p(token t+1 | `<s>` + ids[:t]).

        Positions before the window (j < t+1−context) get zero rows: the loss cannot reach them.
        """
        self.require_fitted()
        ids = np.asarray(ids, dtype=np.int64)
        if not 0 <= t <= ids.size:
            raise LmbenchError(f"step t={t} is outside 0…{ids.size}")
        full = np.concatenate([[BOS_ID], ids[:t]])
        target = np.concatenate([ids, [EOS_ID]])[t]
        C = self.params["context"]
        x = full[-C:]
        logits, cache = self.forward(x[None, :], train=False)
        y = np.zeros(x.size, dtype=np.int64)
        y[-1] = target
        _, dlogits, _ = layers.softmax_cross_entropy(logits, y, inplace=True, scale=1.0)
        dlogits[:-1] = 0.0  # only the loss at step t
        _, dxs = self.backward(dlogits, cache, return_dx=True)
        out = []
        for d in dxs:
            g = np.zeros((t + 1, d.shape[-1]), dtype=d.dtype)
            g[t + 1 - x.size:] = d[0]
            out.append(g)
        return out


def kv_of(stack_cache: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The self-attention keys/values of every layer from a `stack_forward` cache (for the next step)."""
    return [(c["subs"][0][2]["k"], c["subs"][0][2]["v"]) for c in stack_cache[2]]
