"""The `seq2seq` translator: an encoder–decoder of the shared recurrent cells, with optional attention.

    encoder   h̄_1 … h̄_S = cells(E_src[x_1 … x_S])         (forward, reversed, or bidirectional: the two
                                                            directions' states and outputs are summed)
    decoder   h_t = cells(E_tgt[y_{t−1}], h_{t−1}),  h_0 = the encoder's final state (layer by layer)
    attention h̃_t = tanh([c_t; h_t] W_c) with c_t = Σ_s a_ts h̄_s   (or h̃_t = h_t without attention)
    output    p(y_t | y_<t, x) = softmax(h̃_t W_o + b_o)

The loss is the cross-entropy of each target token and `</s>` (never `<s>`), averaged over a batch's real
tokens; targets are padded and masked (no padding symbol in the vocabulary). Sources in one batch all have
the same length (batches are formed by source length), so the encoder needs no mask.
Every backward pass is explicit: cells (lmbench.models.neural.cells), layers, attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.base import Model, Param
from lmbench.models.neural.blas import blas_threads
from lmbench.models.neural.cells import CELLS, make_cell
from lmbench.models.neural.layers import (
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    linear_backward,
    linear_forward,
    log_softmax,
    softmax_cross_entropy,
)
from lmbench.models.neural.optim import OPTIMIZERS, clip_global_norm, make_optimizer
from lmbench.models.seq2seq.attention import ATTENTION_KINDS, Attention
from lmbench.models.seq2seq.decode import Hypotheses, beam_search, greedy_search
from lmbench.progress import Progress
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import PairCorpus, ParallelSet
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import BOS_ID, EOS_ID, Vocabulary

ENCODERS = ("forward", "reversed", "bidirectional")


def _arr(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x)


def make_batches(src: Corpus, batch: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Sentence indices grouped by source length and cut into batches (shuffled when rng is given)."""
    lengths = src.lengths
    order = np.argsort(lengths, kind="stable")
    if rng is not None:
        order = order[np.lexsort((rng.random(order.size), lengths[order]))]
    cuts = np.flatnonzero(np.diff(lengths[order])) + 1
    batches = []
    for group in np.split(order, cuts):
        batches += [group[i:i + batch] for i in range(0, group.size, batch)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def gather_sources(src: Corpus, idx: np.ndarray) -> np.ndarray:
    """(B, S) ids of sources that share one length."""
    S = int(src.lengths[idx[0]])
    return src.ids[src.offsets[idx][:, None] + np.arange(S)].astype(np.int64)


def gather_targets(tgt: Corpus, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoder inputs `<s> y_1 … y_n`, outputs `y_1 … y_n </s>` (B, T) padded with `</s>`, and the mask."""
    lengths = tgt.lengths[idx]
    T = int(lengths.max()) + 1
    pos = np.arange(T - 1)
    inside = pos[None, :] < lengths[:, None]
    words = tgt.ids[np.minimum(tgt.offsets[idx][:, None] + pos, max(tgt.n_tokens - 1, 0))]
    words = np.where(inside, words, EOS_ID).astype(np.int64)
    tgt_in = np.concatenate([np.full((idx.size, 1), BOS_ID), words], axis=1)
    tgt_out = np.concatenate([words, np.full((idx.size, 1), EOS_ID)], axis=1)
    mask = np.arange(T)[None, :] <= lengths[:, None]
    return tgt_in, tgt_out, mask


class Seq2Seq(Model):
    """Encoder–decoder translator (RNN/LSTM/GRU cells) with optional Luong/Bahdanau attention."""

    name = "seq2seq"
    description = "encoder-decoder translator of RNN/LSTM/GRU cells, optional attention, greedy/beam decoding"
    capabilities = frozenset({"translate"})
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
        "optimizer": Param("adam", "optimizer", choices=OPTIMIZERS),
        "lr": Param(0.003, "learning rate", low=0.0, low_open=True),
        "lr_decay": Param(0.5, "multiply lr by this when the validation loss does not improve", low=0.0,
                          low_open=True, high=1.0),
        "clip": Param(5.0, "global gradient-norm clipping (0: none)", low=0.0),
        # Small batches: on this task the number of updates, not tokens per update, limits learning.
        "batch": Param(16, "sentence pairs per batch", low=1),
        "epochs": Param(5, "passes over the training pairs", low=1),
        "max_steps": Param(0, "stop after this many updates (0: no limit)", low=0),
        "beam": Param(1, "default beam size for decoding (1: greedy)", low=1),
        "length_norm": Param(0.6, "beam search ranks hypotheses by score / length^length_norm", low=0.0),
        "max_len": Param(0, "longest output in tokens (0: 2·source length + 10)", low=0),
        "seed": Param(0, "random seed (initialisation, shuffling, dropout)"),
        "dtype": Param("float32", "floating-point type of the weights", choices=("float32", "float64")),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.src_vocab: Vocabulary | None = None
        self.tgt_tokenizer: Tokenizer | None = None
        self.params_: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(self.params["seed"])
        self.train_state: dict[str, Any] = {"epoch": 0, "step": 0, "done": False, "history": []}
        self.optimizer = None
        self.best: dict[str, np.ndarray] | None = None

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
        self.weights = {
            # N(0, 1) like torch.nn.Embedding: small embeddings made the first epochs markedly slower.
            "src_emb": rng.normal(0.0, 1.0, (n_src, p["src_emb"])).astype(dt),
            "tgt_emb": rng.normal(0.0, 1.0, (n_tgt, p["tgt_emb"])).astype(dt),
            "out.W": rng.uniform(-k, k, (H, n_tgt)).astype(dt),
            "out.b": np.zeros(n_tgt, dtype=dt),
        }
        # One flat view of every array (the same objects the cells use), for the optimizer and checkpoints.
        self.params_ = dict(self.weights)
        for l, cells in enumerate(self.enc):
            for d, cell in cells.items():
                self.params_.update({f"enc{l}{d}.{k_}": v for k_, v in cell.params.items()})
        for l, cell in enumerate(self.dec):
            self.params_.update({f"dec{l}.{k_}": v for k_, v in cell.params.items()})
        self.params_.update({f"attn.{k_}": v for k_, v in self.attn.params.items()})

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

    def loss_and_grads(self, src: np.ndarray, tgt_in: np.ndarray, tgt_out: np.ndarray, mask: np.ndarray,
                       train: bool = True) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy over the real target tokens of a batch, and the gradient of every weight."""
        logits, cache = self._forward(src, tgt_in, train)
        B, T, V = logits.shape
        loss, dlogits, _ = softmax_cross_entropy(logits.reshape(B * T, V), tgt_out.reshape(-1), mask.reshape(-1),
                                                 inplace=True)
        return loss, self._backward(dlogits.reshape(B, T, V), cache)

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
        if beam > 1:
            # Beam rows of sentence b are b·K … b·K+K−1: repeat the encoder states the same way, once.
            step = self._step_fn(np.repeat(He, beam, axis=0))
        return beam_search(step, state, src.shape[0], beam, BOS_ID, EOS_ID, max_len, alpha, greedy)

    def translate_corpus(self, src: Corpus, beam: int | None = None, alpha: float | None = None,
                         max_len: int | None = None, batch: int | None = None) -> Hypotheses:
        """Translate every sentence of a source corpus; results in the corpus's order."""
        self.require_fitted()
        beam = self.params["beam"] if beam is None else beam
        alpha = self.params["length_norm"] if alpha is None else alpha
        max_len = self.params["max_len"] if max_len is None else max_len
        if beam < 1:
            raise LmbenchError(f"beam size must be ≥ 1, got {beam}")
        empty = np.flatnonzero(src.lengths == 0)
        if empty.size:
            raise LmbenchError(f"source sentence {int(empty[0]) + 1} is empty; there is nothing to translate")
        size = batch or max(1, 256 // beam)  # decoding rows per batch: sentences × beams
        with blas_threads(1):
            return self._translate_batches(src, size, beam, alpha, max_len)

    def _translate_batches(self, src: Corpus, size: int, beam: int, alpha: float, max_len: int) -> Hypotheses:
        n = src.n_sentences
        tokens: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n
        scores, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        for ids in make_batches(src, size):
            S = int(src.lengths[ids[0]])
            hyp = self.decode_batch(gather_sources(src, ids), beam, alpha, max_len or 2 * S + 10)
            for i, t in zip(ids, hyp.tokens):
                tokens[i] = t
            scores[ids], lengths[ids] = hyp.scores, hyp.lengths
        return Hypotheses(tokens, scores, lengths)

    def translate(self, lines: Sequence[str], beam: int | None = None) -> list[str]:
        """Translate raw source lines into target text."""
        if self.tokenizer is None or self.src_vocab is None or self.vocab is None:
            raise LmbenchError("the translator is not fitted")
        toks = [self.tokenizer(line) for line in lines]
        for i, t in enumerate(toks):
            if not t:
                raise LmbenchError(f"source line {i + 1} has no tokens; there is nothing to translate")
        hyp = self.translate_corpus(Corpus.encode(toks, self.src_vocab), beam=beam)
        detok = self.tgt_tokenizer or self.tokenizer
        return [detok.detokenize(self.vocab.decode(t.tolist())) for t in hyp.tokens]

    def sentence_logprobs(self, pairs: PairCorpus, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forced Σ log p of each target sentence (its words and `</s>`), and its predicted tokens."""
        totals = np.zeros(len(pairs))
        with blas_threads(1):
            for idx in make_batches(pairs.src, batch):
                src = gather_sources(pairs.src, idx)
                tgt_in, tgt_out, mask = gather_targets(pairs.tgt, idx)
                lp = self.target_logprobs(src, tgt_in, tgt_out)
                totals[idx] = np.where(mask, lp, 0.0).sum(axis=1)
        return totals, pairs.tgt.lengths + 1

    def score_tokens(self, src: Corpus, hyps: Sequence[np.ndarray]) -> np.ndarray:
        """Teacher-forced Σ log p of given output sequences (each followed by `</s>`), e.g. to check a search."""
        tgt = Corpus.from_ids(list(hyps), self.require_fitted())
        totals, _ = self.sentence_logprobs(PairCorpus(src, tgt))
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

    def fit(self, data: ParallelSet, progress: bool | None = None,
            on_epoch: Callable[[Seq2Seq], None] | None = None) -> Seq2Seq:
        """Train on data.train (validating on data.valid when present); resumes if training had started."""
        if not isinstance(data, ParallelSet):
            raise LmbenchError("seq2seq is a translator, not a language model: train it on sentence pairs with "
                               "`lmbench translate train --pairs SPEC`")
        p = self.params
        if self.train_state["epoch"] == 0 and self.train_state["step"] == 0:
            self.src_vocab, self.vocab = data.src_vocab, data.tgt_vocab
            self.tokenizer, self.tgt_tokenizer = data.src_tokenizer, data.tgt_tokenizer
            self.rng = np.random.default_rng(p["seed"])
            self.build(len(data.src_vocab), len(data.tgt_vocab))
            self.optimizer = make_optimizer(p["optimizer"], p["lr"])
        elif data.src_vocab != self.src_vocab or data.tgt_vocab != self.vocab:
            raise LmbenchError("cannot resume: the parallel corpus gives other vocabularies than the checkpoint's")
        train, valid = data.train, data.valid
        n_tgt = int(train.tgt.n_tokens + len(train))
        total = p["epochs"] * n_tgt
        st = self.train_state
        # One BLAS thread: the attention and output matmuls are small too, and on this shared 2-core machine a
        # threaded BLAS made a whole epoch 2.5× slower (lmbench.models.neural.blas explains why).
        with Progress(total, "train seq2seq", unit="tok", enabled=progress) as bar, blas_threads(1):
            bar.done = st["epoch"] * n_tgt
            while st["epoch"] < p["epochs"] and not st["done"]:
                loss_sum, tok_sum = 0.0, 0
                for idx in make_batches(train.src, p["batch"], self.rng):
                    if p["max_steps"] and st["step"] >= p["max_steps"]:
                        break
                    src = gather_sources(train.src, idx)
                    tgt_in, tgt_out, mask = gather_targets(train.tgt, idx)
                    tgt_in = self._sampled_inputs(src, tgt_in)
                    loss, grads = self.loss_and_grads(src, tgt_in, tgt_out, mask)
                    if not math.isfinite(loss):
                        raise LmbenchError(
                            f"training diverged: loss is {loss} at epoch {st['epoch'] + 1}, step {st['step'] + 1}; "
                            "lower -p lr or set -p clip (the last epoch's checkpoint is kept)")
                    if p["clip"] > 0:
                        clip_global_norm(grads, p["clip"])
                    self.optimizer.step(self.params_, grads)
                    n = int(mask.sum())
                    loss_sum += loss * n
                    tok_sum += n
                    st["step"] += 1
                    bar.update(n, loss=loss, lr=self.optimizer.lr)
                st["epoch"] += 1
                record = {"epoch": st["epoch"], "train_loss": loss_sum / max(tok_sum, 1), "lr": self.optimizer.lr}
                if valid is not None:
                    lp, counts = self.sentence_logprobs(valid)
                    record["valid_loss"] = float(-lp.sum() / counts.sum())
                    best = min((h["valid_loss"] for h in st["history"]), default=math.inf)
                    if record["valid_loss"] < best:
                        self.best = {k: v.copy() for k, v in self.params_.items()}
                    else:
                        self.optimizer.lr *= p["lr_decay"]
                st["history"].append(record)
                if p["max_steps"] and st["step"] >= p["max_steps"]:
                    st["done"] = True
                if st["epoch"] >= p["epochs"]:
                    st["done"] = True
                if st["done"] and self.best is not None:
                    for k, v in self.best.items():  # keep the weights of the best validation loss
                        self.params_[k][...] = v
                self.fit_info = {"epochs": st["epoch"], "steps": st["step"], "history": st["history"],
                                 "train_pairs": len(train), "train_target_tokens": n_tgt}
                if on_epoch is not None:
                    on_epoch(self)
        return self

    # --- checkpoints ----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Weights, sizes, tokenizers, and the training state (optimizer, rng, best weights) for --resume."""
        arrays = {f"p.{k}": v for k, v in self.params_.items()}
        meta: dict[str, Any] = {
            "n_src": len(self.src_vocab) if self.src_vocab else 0,
            "n_tgt": len(self.vocab) if self.vocab else 0,
            "tgt_tokenizer": self.tgt_tokenizer.to_json() if self.tgt_tokenizer else None,
            "train_state": self.train_state,
            "rng": self.rng.bit_generator.state,
        }
        if self.optimizer is not None:
            opt_meta, opt_arrays = self.optimizer.state()
            meta["optimizer"] = opt_meta
            arrays.update({f"opt.{k}": v for k, v in opt_arrays.items()})
        if self.best is not None and not self.train_state["done"]:
            arrays.update({f"best.{k}": v for k, v in self.best.items()})
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the network and restore what `state()` returned."""
        self.build(int(meta["n_src"]), int(meta["n_tgt"]))
        for k, v in self.params_.items():
            a = arrays[f"p.{k}"]
            if a.shape != v.shape:
                raise ValueError(f"array {k} has shape {a.shape}, expected {v.shape}")
            v[...] = a
        self.tgt_tokenizer = Tokenizer.from_json(meta["tgt_tokenizer"]) if meta.get("tgt_tokenizer") else None
        self.train_state = meta["train_state"]
        self.rng.bit_generator.state = meta["rng"]
        if "optimizer" in meta:
            self.optimizer = make_optimizer(self.params["optimizer"], self.params["lr"])
            self.optimizer.set_state(meta["optimizer"], {k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
        best = {k[5:]: v for k, v in arrays.items() if k.startswith("best.")}
        self.best = best or None

    def save_files(self, directory: Path) -> None:
        """The source vocabulary (the target one is the checkpoint's vocab.txt)."""
        if self.src_vocab is not None:
            self.src_vocab.save(directory / "src_vocab.txt")

    def load_files(self, directory: Path) -> None:
        """Read the source vocabulary."""
        self.src_vocab = Vocabulary.load(directory / "src_vocab.txt")
        if len(self.src_vocab) != self.weights["src_emb"].shape[0]:
            raise LmbenchError(f"{directory}: src_vocab.txt does not match the source embedding")
