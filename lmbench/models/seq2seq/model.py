"""The `seq2seq` translator: an encoder–decoder of the shared recurrent cells, with optional attention.

    encoder   h̄_1 … h̄_S = cells(E_src[x_1 … x_S])         (forward, reversed, or bidirectional: the two
                                                            directions' states and outputs are summed)
    decoder   h_t = cells(E_tgt[y_{t−1}], h_{t−1}),  h_0 = the encoder's final state (layer by layer)
    attention h̃_t = tanh([c_t; h_t] W_c) with c_t = Σ_s a_ts h̄_s   (or h̃_t = h_t without attention)
    output    p(y_t | y_<t, x) = softmax(h̃_t W_o + b_o)

The loss is the cross-entropy of each target token and `</s>` (never `<s>`), averaged over a batch's real
tokens; targets are padded and masked (no padding symbol in the vocabulary). With `label_smoothing` ε > 0 the
gradient is that of the label-smoothed cross-entropy (seq2seq.loss); every reported loss stays the true one.
Sources in one batch all have the same length (batches are formed by source length), so the encoder needs no mask.
Every backward pass is explicit: cells (lmbench.models.neural.cells), layers, attention. Training goes
through the one trainer (lmbench.models.neural.trainer): batches of pairs of one source length, shuffled
each epoch, the weights of the best validation loss kept by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import Hypotheses, Param
from lmbench.models.neural.cells import CELLS, make_cell
from lmbench.models.neural.layers import (
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
    log_softmax,
)
from lmbench.models.neural.trainer import training_params
from lmbench.models.seq2seq.attention import ATTENTION_KINDS, Attention
from lmbench.models.seq2seq.decode import beam_search, greedy_search
from lmbench.models.seq2seq.loss import smoothed_cross_entropy
from lmbench.models.seq2seq.pairs import EncoderDecoder, gather_sources, gather_targets, make_batches
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import PairCorpus, ParallelSet
from lmbench.text.vocab import BOS_ID, EOS_ID

ENCODERS = ("forward", "reversed", "bidirectional")


def _arr(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x)


class Seq2Seq(EncoderDecoder):
    """Encoder–decoder translator (RNN/LSTM/GRU cells) with optional Luong/Bahdanau attention."""

    name = "seq2seq"
    description = "encoder-decoder translator of RNN/LSTM/GRU cells, optional attention, greedy/beam decoding"
    capabilities = frozenset({"translate", "score", "resume"})
    # One BLAS thread: the attention and output matmuls are small too, and on this shared 2-core machine a
    # threaded BLAS made a whole epoch 2.5× slower (lmbench.models.neural.blas explains why).
    training_blas_threads = 1
    param_spec = {
        "cell": Param("lstm", "recurrent cell of encoder and decoder", choices=tuple(CELLS)),
        # "none" reads as an empty value (None) in lmbench's parameter parser; both mean no attention.
        "attention": Param("additive", "attention score: none, dot, general (Luong) or additive (Bahdanau)",
                           choices=ATTENTION_KINDS, nullable=True),
        "encoder": Param("bidirectional", "encoder direction: forward, reversed source, or bidirectional (summed)",
                         choices=ENCODERS),
        "src_emb": Param(64, "source embedding size", low=1),
        "tgt_emb": Param(64, "target embedding size", low=1),
        "hidden": Param(128, "hidden size of encoder and decoder", low=1),
        "attn_size": Param(0, "size of the additive attention layer (0: hidden)", low=0),
        "layers": Param(1, "recurrent layers in encoder and in decoder", low=1, high=8),
        "dropout": Param(0.1, "dropout on embeddings, between layers and before the output", low=0.0, high=0.9),
        "teacher_forcing": Param(1.0, "share of decoder inputs taken from the reference (else the model's "
                                      "own greedy prediction)", low=0.0, high=1.0),
        "label_smoothing": Param(0.0, "label smoothing ε of the training objective (the decoder learns towards "
                                      "(1−ε)·reference + ε·uniform); reported losses stay the true likelihood",
                                 low=0.0, high=0.5),
        **training_params(lr=0.003, optimizer="adam", lr_decay=0.5, clip=5.0, epochs=5, warmup=0,
                           schedule="constant"),
        # Small batches: on this task the number of updates, not tokens per update, limits learning.
        "batch": Param(16, "sentence pairs per batch", low=1),
        "beam": Param(1, "default beam size for decoding (1: greedy)", low=1),
        "length_norm": Param(0.6, "beam search ranks hypotheses by score / length^length_norm", low=0.0),
        "max_len": Param(0, "longest output in tokens (0: 2·source length + 10)", low=0),
        "dtype": Param("float32", "floating-point type of the weights", choices=("float32", "float64")),
    }

    @property
    def dtype(self) -> np.dtype:
        """The weights' floating-point type."""
        return np.dtype(self.params["dtype"])

    # --- network ----------------------------------------------------------------------------------------
    def build(self, n_src: int, n_tgt: int) -> None:
        """Create every weight for source/target vocabularies of these sizes (seeded)."""
        p, rng, dt = self.params, self.rng, self.dtype
        H, L = p["hidden"], p["layers"]
        directions = ("f", "b") if p["encoder"] == "bidirectional" else ("f",)
        self.enc = [{d: make_cell(p["cell"], p["src_emb"] if l == 0 else H, H, rng, dt) for d in directions}
                    for l in range(L)]
        self.dec = [make_cell(p["cell"], p["tgt_emb"] if l == 0 else H, H, rng, dt) for l in range(L)]
        self.attn = Attention(p["attention"] or "none", H, rng, dt, p["attn_size"] or None)
        k = 1.0 / math.sqrt(H)
        # One flat dict of every array (the same objects the cells and attention use), for the trainer.
        self.weights = {
            # N(0, 1) like torch.nn.Embedding: small embeddings made the first epochs markedly slower.
            "src_emb": rng.normal(0.0, 1.0, (n_src, p["src_emb"])).astype(dt),
            "tgt_emb": rng.normal(0.0, 1.0, (n_tgt, p["tgt_emb"])).astype(dt),
            "out.W": rng.uniform(-k, k, (H, n_tgt)).astype(dt),
            "out.b": np.zeros(n_tgt, dtype=dt),
        }
        for l, cells in enumerate(self.enc):
            for d, cell in cells.items():
                self.weights.update({f"enc{l}{d}.{k_}": v for k_, v in cell.weights.items()})
        for l, cell in enumerate(self.dec):
            self.weights.update({f"dec{l}.{k_}": v for k_, v in cell.weights.items()})
        self.weights.update({f"attn.{k_}": v for k_, v in self.attn.weights.items()})

    def _grads_flat(self, enc_g: list[dict], dec_g: list[dict], attn_g: dict, weight_g: dict) -> dict:
        grads = dict(weight_g)
        for l, per_dir in enumerate(enc_g):
            for d, g in per_dir.items():
                grads.update({f"enc{l}{d}.{k}": v for k, v in g.items()})
        for l, g in enumerate(dec_g):
            grads.update({f"dec{l}.{k}": v for k, v in g.items()})
        grads.update({f"attn.{k}": v for k, v in attn_g.items()})
        return grads

    # --- forward / backward -------------------------------------------------------------------------------
    def _encode(self, src: np.ndarray, train: bool) -> tuple[np.ndarray, list[tuple], Any]:
        """Encoder outputs (B, S, H), final state per layer, and the cache."""
        p = self.params
        if p["encoder"] == "reversed":
            src = src[:, ::-1]
        x, emb_cache = embedding_forward(src.T, self.weights["src_emb"])  # (S, B, E)
        x, drop0 = dropout_forward(x, p["dropout"], self.rng, train)
        caches, finals = [], []
        for l, cells in enumerate(self.enc):
            B = x.shape[1]
            out, fin, c_f = cells["f"].forward(_arr(x), cells["f"].zero_state(B))
            layer_cache = {"f": c_f}
            if "b" in cells:
                hs_b, fin_b, c_b = cells["b"].forward(_arr(x[::-1]), cells["b"].zero_state(B))
                out = out + hs_b[::-1]
                fin = tuple(a + b for a, b in zip(fin, fin_b))
                layer_cache["b"] = c_b
            finals.append(fin)
            drop = None
            if l < len(self.enc) - 1:
                out, drop = dropout_forward(out, p["dropout"], self.rng, train)
            layer_cache["drop"] = drop
            caches.append(layer_cache)
            x = out
        return _arr(x.transpose(1, 0, 2)), finals, (emb_cache, drop0, caches)

    def _encode_backward(self, dHe: np.ndarray | None, dfinals: list[tuple], cache: Any, S: int, B: int
                         ) -> tuple[list[dict], np.ndarray]:
        emb_cache, drop0, caches = cache
        H = self.params["hidden"]
        dout = np.zeros((S, B, H), dtype=self.dtype) if dHe is None else _arr(dHe.transpose(1, 0, 2))
        grads: list[dict] = [{} for _ in self.enc]
        for l in range(len(self.enc) - 1, -1, -1):
            cells, lc = self.enc[l], caches[l]
            if lc["drop"] is not None:
                dout = dropout_backward(dout, lc["drop"])
            dx, _, grads[l]["f"] = cells["f"].backward(dout, dfinals[l], lc["f"])
            if "b" in cells:
                dx_b, _, grads[l]["b"] = cells["b"].backward(_arr(dout[::-1]), dfinals[l], lc["b"])
                dx = dx + dx_b[::-1]
            dout = dx
        dout = dropout_backward(dout, drop0)
        return grads, embedding_backward(dout, emb_cache)

    def _forward(self, src: np.ndarray, tgt_in: np.ndarray, train: bool) -> tuple[np.ndarray, Any]:
        """Logits (B, T, V) of every target position given the source and the decoder inputs."""
        p = self.params
        He, finals, enc_cache = self._encode(src, train)
        y, emb_cache = embedding_forward(tgt_in.T, self.weights["tgt_emb"])  # (T, B, E)
        y, drop0 = dropout_forward(y, p["dropout"], self.rng, train)
        dec_caches = []
        for l, cell in enumerate(self.dec):
            y, _, c = cell.forward(_arr(y), finals[l])
            drop = None
            if l < len(self.dec) - 1:
                y, drop = dropout_forward(y, p["dropout"], self.rng, train)
            dec_caches.append((c, drop))
        Hd = _arr(y.transpose(1, 0, 2))  # (B, T, H), contiguous for fast batched matmuls
        Ht, _, attn_cache = self.attn.forward(Hd, He)
        Ht, drop_out = dropout_forward(Ht, p["dropout"], self.rng, train)
        logits, out_cache = linear_forward(Ht, self.weights["out.W"], self.weights["out.b"])
        cache = (src.shape, He, enc_cache, emb_cache, drop0, dec_caches, attn_cache, drop_out, out_cache)
        return logits, cache

    def _backward(self, dlogits: np.ndarray, cache: Any) -> dict[str, np.ndarray]:
        (B, S), He, enc_cache, emb_cache, drop0, dec_caches, attn_cache, drop_out, out_cache = cache
        dHt, dW, db = linear_backward(dlogits, out_cache)
        dHt = dropout_backward(dHt, drop_out)
        dHd, dHe, attn_g = self.attn.backward(dHt, attn_cache)
        dy = _arr(dHd.transpose(1, 0, 2))
        dec_g: list[dict] = [{} for _ in self.dec]
        dfinals: list[tuple] = [() for _ in self.dec]
        for l in range(len(self.dec) - 1, -1, -1):
            c, drop = dec_caches[l]
            if drop is not None:
                dy = dropout_backward(dy, drop)
            dy, dfinals[l], dec_g[l] = self.dec[l].backward(dy, None, c)
        dy = dropout_backward(dy, drop0)
        d_tgt_emb = embedding_backward(dy, emb_cache)
        enc_g, d_src_emb = self._encode_backward(dHe, dfinals, enc_cache, S, B)
        weight_g = {"src_emb": d_src_emb, "tgt_emb": d_tgt_emb, "out.W": dW, "out.b": db}
        return self._grads_flat(enc_g, dec_g, attn_g, weight_g)

    def _objective(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray, mask: np.ndarray,
                   train: bool) -> tuple[float, float, dict[str, np.ndarray]]:
        """(training objective, true mean cross-entropy, gradient of the objective) of one batch."""
        logits, cache = self._forward(src, tgt_in, train)
        B, T, V = logits.shape
        flat_mask = mask.reshape(-1)
        objective, dlogits, logp = smoothed_cross_entropy(logits.reshape(B * T, V), tgt_out.reshape(-1), flat_mask,
                                                          self.params["label_smoothing"], inplace=True)
        nll = float(-logp[flat_mask].sum() / max(int(np.count_nonzero(flat_mask)), 1))
        return objective, nll, self._backward(dlogits.reshape(B, T, V), cache)

    def loss_and_grads(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray, mask: np.ndarray,
                       train: bool = True) -> tuple[float, dict[str, np.ndarray]]:
        """Training objective over the real target tokens of a batch (the mean cross-entropy, label-smoothed
        when label_smoothing > 0), and its gradient for every weight."""
        objective, _, grads = self._objective(src, tgt_in, tgt_out, mask, train)
        return objective, grads

    def target_logprobs(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray) -> np.ndarray:
        """log p(y_t | y_<t, x) (B, T) with teacher forcing, no dropout."""
        logits, _ = self._forward(src, tgt_in, train=False)
        lp = log_softmax(logits.astype(np.float64))
        return np.take_along_axis(lp, tgt_out[..., None], axis=-1)[..., 0]

    # --- decoding ---------------------------------------------------------------------------------------------
    def _step_fn(self, He: np.ndarray) -> Callable:
        """A decoder step (tokens, state) → (log p (N, V), state) over encoder outputs He (N, S, H)."""
        L = len(self.dec)

        def step(tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
            x = self.weights["tgt_emb"][tokens]
            new_state = []
            per_layer = [state[i * self.dec[0].n_states:(i + 1) * self.dec[0].n_states] for i in range(L)]
            for l, cell in enumerate(self.dec):
                x, st, _ = cell.step(x, tuple(per_layer[l]))
                new_state += list(st)
            rows = He if He.shape[0] == x.shape[0] else np.repeat(He, x.shape[0] // He.shape[0], axis=0)
            Ht, _, _ = self.attn.forward(x[:, None, :], rows)
            logits = (Ht[:, 0] @ self.weights["out.W"] + self.weights["out.b"]).astype(np.float64)
            lp = log_softmax(logits)
            lp[:, BOS_ID] = -np.inf  # <s> is never predicted
            return lp, tuple(new_state)

        return step

    def decode_batch(self, src: np.ndarray, beam: int, alpha: float, max_len: int) -> Hypotheses:
        """Translate (B, S) source ids of one length: greedy (beam 1) or beam search."""
        He, finals, _ = self._encode(src, train=False)
        state = tuple(a for fin in finals for a in fin)
        step = self._step_fn(He)
        greedy = greedy_search(step, state, src.shape[0], BOS_ID, EOS_ID, max_len)
        if beam == 1:
            return greedy
        # Beam rows of sentence b are b·K … b·K+K−1: repeat the encoder states the same way, once.
        step = self._step_fn(np.repeat(He, beam, axis=0))
        return beam_search(step, state, src.shape[0], beam, BOS_ID, EOS_ID, max_len, alpha, greedy)

    def score_tokens(self, src: Corpus, hyps: Sequence[np.ndarray]) -> np.ndarray:
        """Teacher-forced Σ log p of given output sequences (each followed by `</s>`), e.g. to check a search."""
        tgt = Corpus.from_ids(list(hyps), self.require_fitted())
        totals, _ = self.score(PairCorpus(src, tgt))
        return totals

    # --- training --------------------------------------------------------------------------------------------
    def _sampled_inputs(self, src: np.ndarray, tgt_in: np.ndarray) -> np.ndarray:
        """Scheduled sampling: each decoder input is the reference with probability teacher_forcing,
        otherwise the model's own greedy prediction at that step (computed step by step, no dropout)."""
        ratio = self.params["teacher_forcing"]
        if ratio >= 1.0:
            return tgt_in
        He, finals, _ = self._encode(src, train=False)
        step = self._step_fn(He)
        state = tuple(a for fin in finals for a in fin)
        inputs = tgt_in.copy()
        for t in range(1, tgt_in.shape[1]):
            lp, state = step(inputs[:, t - 1], state)
            use_model = self.rng.random(src.shape[0]) >= ratio
            inputs[:, t] = np.where(use_model, lp.argmax(axis=1), tgt_in[:, t])
        return inputs

    # --- what the trainer needs --------------------------------------------------------------------------
    def epoch_batches(self, data: ParallelSet) -> list[tuple[PairCorpus, np.ndarray]]:
        """Pairs of one source length per batch, shuffled (from self.rng)."""
        return [(data.train, idx) for idx in make_batches(data.train.src, self.params["batch"], self.rng)]

    def train_batch(self, batch: tuple[PairCorpus, np.ndarray]) -> tuple[float, int, dict[str, np.ndarray]]:
        """Loss and gradients of one batch of pairs (with scheduled sampling when teacher_forcing < 1)."""
        train, idx = batch
        src = gather_sources(train.src, idx)
        tgt_in, tgt_out, mask = gather_targets(train.tgt, idx)
        tgt_in = self._sampled_inputs(src, tgt_in)
        _, nll, grads = self._objective(src, tgt_in, tgt_out, mask, train=True)
        return nll, int(mask.sum()), grads  # the true cross-entropy is reported, the objective descended

    # --- checkpoints ----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Weights, sizes, the target tokenizer, and the trainer's state for --resume."""
        meta, arrays = self.training_checkpoint()
        arrays |= {f"w.{k}": v for k, v in self.weights.items()}
        meta |= {"n_src": len(self.src_vocab) if self.src_vocab else 0, "n_tgt": len(self.vocab) if self.vocab else 0,
                 **self.translator_meta()}
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the network and restore what `state()` returned."""
        self.build(int(meta["n_src"]), int(meta["n_tgt"]))
        for k, v in self.weights.items():
            a = arrays[f"w.{k}"]
            if a.shape != v.shape:
                raise ValueError(f"array {k} has shape {a.shape}, expected {v.shape}")
            v[...] = a
        self.restore_translator_meta(meta)
        self.restore_training(meta, arrays)

    def load_files(self, directory: Path) -> None:
        """Read the source vocabulary and check it against the source embedding."""
        super().load_files(directory)
        if len(self.src_vocab) != self.weights["src_emb"].shape[0]:
            raise LmbenchError(f"{directory}: src_vocab.txt does not match the source embedding")
