"""The `transformer-mt` translator: the 2017 encoder–decoder built from the same blocks as the LM.

    encoder   m = Enc_L(… Enc_1(E_src[x] + P))                  self-attention over the whole source (no mask)
    decoder   h = Dec_L(… Dec_1(E_tgt[y_<t] + P, m))           causal self-attention, cross-attention over m, FFN
    output    p(y_t | y_<t, x) = softmax(h_t E_tgtᵀ + b)       tied target embedding (or a separate matrix)

Training goes through the one trainer (AdamW, warm-up + cosine decay, clipping, resume) and is
teacher-forced: decoder inputs `<s> y_1 … y_n`, outputs `y_1 … y_n </s>`, the mean cross-entropy
over a batch's real target tokens. Batches group sources of one length (seq2seq's batching), so the encoder
needs no padding mask, and targets are right-padded, which the causal mask keeps from every real position.
Decoding is greedy or beam search (lmbench.models.seq2seq.decode) over a step function that keeps the
decoder's self-attention keys/values per layer (the state the searches reorder) and projects the encoder
memory into cross-attention keys/values once. `context` bounds both the source length and the output
length (positions), so a longer source is an error and output stops at `context` tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import Hypotheses, Param
from lmbench.models.neural import layers
from lmbench.models.seq2seq.decode import beam_search, greedy_search
from lmbench.models.seq2seq.pairs import EncoderDecoder, gather_sources, gather_targets, make_batches
from lmbench.models.transformer.attention import project_kv
from lmbench.models.transformer.block import BlockConfig
from lmbench.models.transformer.lm import check_heads, kv_of, transformer_shape_spec, transformer_training_spec
from lmbench.models.transformer.stack import StackSpec, init_stack, layer_weights, stack_backward, stack_forward
from lmbench.text.parallel import ParallelSet
from lmbench.text.vocab import BOS_ID, EOS_ID


class TransformerTranslator(EncoderDecoder):
    """Encoder–decoder Transformer translator with explicit forward/backward, greedy and beam decoding."""

    name = "transformer-mt"
    description = "Transformer encoder-decoder translator (NumPy, explicit backward), greedy/beam decoding"
    capabilities = frozenset({"translate", "score", "resume"})
    # One BLAS thread for training, scoring and decoding: its matmuls are small ((B·T, d_model) × (d_model, d_ff)),
    # and on this shared 2-core machine two OpenBLAS threads made 300 training steps take 190–215 s instead of
    # 15–19 s (load 5–9), as for Seq2Seq (lmbench.models.neural.blas explains why).
    training_blas_threads = 1
    param_spec = {
        **transformer_shape_spec(context=64, layers_=2, heads=4, d_model=64, d_ff=128, dropout=0.0),
        "tied": Param(True, "share the target embedding and the output matrix"),
        # 20 epochs: on synthetic:ko-en (20,000 pairs) greedy sacreBLEU 98.6 on the test split (6 epochs: 87.4),
        # about 4 minutes of one core to train (256 s CPU measured).
        **transformer_training_spec(lr=3e-3, warmup=200, epochs=20, batch=32),
        "beam": Param(1, "default beam size for decoding (1: greedy)", low=1),
        "length_norm": Param(0.6, "beam search ranks hypotheses by score / length^length_norm", low=0.0),
        "max_len": Param(0, "longest output in tokens (0: 2·source length + 10; at most context − 1)", low=0),
    }

    def validate_params(self) -> None:
        """heads must divide d_model."""
        check_heads(self.name, self.params["d_model"], self.params["heads"])

    @property
    def dtype(self) -> np.dtype:
        """Floating-point type of weights and activations."""
        return np.dtype(self.params["dtype"])

    def _spec(self, side: str, vocab: int) -> StackSpec:
        p = self.params
        block = BlockConfig(p["d_model"], p["heads"], p["d_ff"], p["dropout"], p["norm"], causal=side == "dec",
                            cross=side == "dec")
        return StackSpec(f"{side}.", block, p["layers"], p["context"], vocab, p["positions"])

    @property
    def enc_spec(self) -> StackSpec:
        """The encoder stack's shape."""
        return self._spec("enc", self.weights["enc.emb"].shape[0])

    @property
    def dec_spec(self) -> StackSpec:
        """The decoder stack's shape."""
        return self._spec("dec", self.weights["dec.emb"].shape[0])

    def build(self, n_src: int, n_tgt: int) -> None:
        """Fresh weights for source/target vocabularies of these sizes (seeded)."""
        self.weights = init_stack(self._spec("enc", n_src), self.rng, self.dtype)
        self.weights |= init_stack(self._spec("dec", n_tgt), self.rng, self.dtype)
        if not self.params["tied"]:
            self.weights["out.W"] = self.rng.normal(0.0, 0.02, (self.params["d_model"], n_tgt)).astype(self.dtype)
        self.weights["out.b"] = np.zeros(n_tgt, dtype=self.dtype)

    def _out_weight(self) -> np.ndarray:
        return self.weights["dec.emb"].T if self.params["tied"] else self.weights["out.W"]

    # --- forward / backward ----------------------------------------------------------------------------------
    def _check_lengths(self, src: np.ndarray, tgt_len: int = 0) -> None:
        C = self.params["context"]
        if src.shape[1] > C or tgt_len > C:
            raise LmbenchError(f"model {self.name}: a sentence of {max(src.shape[1], tgt_len)} tokens (with <s>/</s>) "
                               f"is longer than context={C}; train with a larger -p context")

    def forward(self, src: np.ndarray, tgt_in: np.ndarray, train: bool = False) -> tuple[np.ndarray, Any]:
        """Logits (B, T, V) of every target position, `<s>` masked, given sources (B, S) and decoder inputs."""
        self._check_lengths(src, tgt_in.shape[1])
        mem, enc_cache = stack_forward(src, self.weights, self.enc_spec, self.rng, train)
        h, dec_cache = stack_forward(tgt_in, self.weights, self.dec_spec, self.rng, train, memory=mem)
        B, T, D = h.shape
        h2 = h.reshape(B * T, D)
        logits = h2 @ self._out_weight()
        logits += self.weights["out.b"]
        logits[:, BOS_ID] = -np.inf
        return logits.reshape(B, T, -1), (enc_cache, dec_cache, h2, h.shape)

    def backward(self, dlogits: np.ndarray, cache: Any) -> dict[str, np.ndarray]:
        """Gradient of every weight from dL/dlogits (B, T, V)."""
        enc_cache, dec_cache, h2, shape = cache
        d2 = dlogits.reshape(h2.shape[0], -1)
        dW = h2.T @ d2
        dh = (d2 @ self._out_weight().T).reshape(shape)
        grads, dmem = stack_backward(dh, dec_cache, self.dec_spec)
        enc_grads, _ = stack_backward(dmem, enc_cache, self.enc_spec)
        grads |= enc_grads
        grads["out.b"] = d2.sum(axis=0)
        if self.params["tied"]:
            grads["dec.emb"] += dW.T
        else:
            grads["out.W"] = dW
        return grads

    def loss_and_grads(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray, mask: np.ndarray,
                       train: bool = True) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy over the real target tokens of a batch, and the gradient of every weight."""
        logits, cache = self.forward(src, tgt_in, train)
        B, T, V = logits.shape
        loss, dlogits, _ = layers.softmax_cross_entropy(logits.reshape(B * T, V), tgt_out.reshape(-1),
                                                        mask.reshape(-1), inplace=True)
        return loss, self.backward(dlogits, cache)

    def target_logprobs(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray) -> np.ndarray:
        """log p(y_t | y_<t, x) (B, T) with teacher forcing, no dropout."""
        logits, _ = self.forward(src, tgt_in)
        B, T, V = logits.shape
        return layers.target_logprobs(logits.reshape(B * T, V), tgt_out.reshape(-1)).reshape(B, T)

    # --- what the trainer needs ---------------------------------------------------------------------------------
    def prepare(self, data: ParallelSet, valid: None, resuming: bool) -> ParallelSet:
        """The pairs, which must fit the context: the longest source, and the longest target plus `<s>`."""
        data = super().prepare(data, valid, resuming)
        C = self.params["context"]
        train = data.train
        longest = max(int(train.src.lengths.max()), int(train.tgt.lengths.max()) + 1)
        if longest > C:
            raise LmbenchError(f"model {self.name}: the longest training sentence needs {longest} positions, more "
                               f"than context={C}; set -p context={longest} or more")
        return data

    def epoch_batches(self, data: ParallelSet) -> list[tuple[np.ndarray, ...]]:
        """This epoch's batches (sources of one length, shuffled): (src, tgt_in, tgt_out, mask)."""
        train = data.train
        return [(gather_sources(train.src, idx), *gather_targets(train.tgt, idx))
                for idx in make_batches(train.src, self.params["batch"], self.rng)]

    def train_batch(self, batch: tuple[np.ndarray, ...]) -> tuple[float, int, dict[str, np.ndarray]]:
        """Mean loss over real target tokens, their number, and the gradients."""
        src, tgt_in, tgt_out, mask = batch
        loss, grads = self.loss_and_grads(src, tgt_in, tgt_out, mask, train=True)
        return loss, int(mask.sum()), grads

    def _step_fn(self, mem: np.ndarray) -> Callable:
        """A decoder step (tokens (N,), self-attention K/V per layer) → (log p (N, V), the grown K/V)."""
        spec = self.dec_spec
        cross_kvs = [project_kv(mem, {k[6:]: v for k, v in layer_weights(spec, self.weights, layer).items()
                                      if k.startswith("cross.")}, spec.block.heads) for layer in range(spec.layers)]

        def step(tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            pasts = [(state[2 * i], state[2 * i + 1]) for i in range(spec.layers)]
            t = state[0].shape[2]
            h, cache = stack_forward(tokens[:, None], self.weights, spec, offset=t, pasts=pasts, cross_kvs=cross_kvs)
            logits = (h[:, 0] @ self._out_weight() + self.weights["out.b"]).astype(np.float64)
            logits[:, BOS_ID] = -np.inf  # <s> is never predicted
            return layers.log_softmax(logits), tuple(a for kv in kv_of(cache) for a in kv)

        return step

    def decode_batch(self, src: np.ndarray, beam: int, alpha: float, max_len: int) -> Hypotheses:
        """Translate (B, S) source ids of one length: greedy (beam 1) or beam search."""
        self._check_lengths(src)
        mem, _ = stack_forward(src, self.weights, self.enc_spec)
        spec = self.dec_spec
        B, heads, d_k = src.shape[0], spec.block.heads, spec.block.d_model // spec.block.heads
        empty = np.zeros((B, heads, 0, d_k), dtype=self.dtype)
        state = tuple(empty for _ in range(2 * spec.layers))
        max_len = min(max_len, self.params["context"] - 1)  # so that `<s>` + any output fits to be rescored
        greedy = greedy_search(self._step_fn(mem), state, B, BOS_ID, EOS_ID, max_len)
        if beam == 1:
            return greedy
        # Beam rows of sentence b are b·K … b·K+K−1: repeat the encoder memory the same way, once.
        step = self._step_fn(np.repeat(mem, beam, axis=0))
        return beam_search(step, state, B, beam, BOS_ID, EOS_ID, max_len, alpha, greedy)

    # --- checkpoints ----------------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Weights, vocabulary sizes, the target tokenizer and the trainer's state for --resume."""
        meta, arrays = self.training_checkpoint()
        meta |= {"n_src": self.weights["enc.emb"].shape[0], "n_tgt": self.weights["dec.emb"].shape[0],
                 **self.translator_meta()}
        return meta, arrays | {f"w.{k}": v for k, v in self.weights.items()}

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the network and restore what `state()` returned."""
        self.build(int(meta["n_src"]), int(meta["n_tgt"]))
        for k, v in self.weights.items():
            a = arrays[f"w.{k}"]
            if a.shape != v.shape:
                raise ValueError(f"array {k} has shape {a.shape}, expected {v.shape}")
            self.weights[k] = a.astype(self.dtype, copy=True)
        self.restore_translator_meta(meta)
        self.restore_training(meta, arrays)

    def load_files(self, directory: Path) -> None:
        """Read the source vocabulary and check it against the source embedding."""
        super().load_files(directory)
        if len(self.src_vocab) != self.weights["enc.emb"].shape[0]:
            raise LmbenchError(f"{directory}: src_vocab.txt does not match the source embedding")
