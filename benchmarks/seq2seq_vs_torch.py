"""lmbench's NumPy Seq2Seq translator against a PyTorch encoder–decoder of identical shape (not a test).

    python benchmarks/seq2seq_vs_torch.py speed  [--cell lstm|gru|rnn] [--attention additive|dot|general|none]
                                                 [--encoder bidirectional|forward|reversed] [--threads 1,2]
    python benchmarks/seq2seq_vs_torch.py parity [--cell …] [--attention …] [--encoder …]
    python benchmarks/seq2seq_vs_torch.py profile [--batches 120]   # where a training step's time goes, 1 thread

The NumPy side is `seq2seq` (lmbench/models/seq2seq/model.py) with its default hyper-parameters except
dropout 0 (so both sides compute the same function), on the pairs of --pairs (default synthetic:ko-en).
The PyTorch side is written here with torch.nn.LSTM/GRU/RNN and torch.nn.functional, in the same shape:

    encoder   one torch module per layer (bidirectional=True for the bidirectional encoder; the two
              directions' outputs and final states are summed, as ours, so the next layer reads H units)
    decoder   one torch module of `layers` layers, h_0 = the encoder's final states
    attention additive v·tanh(h̄_s W_1 + h_t W_2) | dot | general; a = softmax_s; c_t = Σ_s a_ts h̄_s;
              h̃_t = tanh([c_t; h_t] W_c)  (h̃_t = h_t without attention)
    output    F.linear(h̃, W_oᵀ, b_o); cross-entropy averaged over the real target tokens (padding masked)

It starts from our initial weights (the cells' `to_torch_weights`; the rest from the model's `weights`) and
trains with torch.optim.Adam (fused by default: torch's fastest on this CPU) and clip_grad_norm_ under our lr
and clip. Parity comes first: on one batch the
loss and every gradient of both are compared, then the weights after a few optimiser steps on both sides.

speed: one training step = forward + backward + clip + Adam step, ours through lmbench's `Trainer.step` (as in
fit()), on the same batches (`epoch_batches`: pairs of one source length) for both, in interleaved rounds over
(framework × thread count). lmbench's thread count is `parallel.threads(n)` with BLAS single-threaded; torch's
`torch.set_num_threads(n)`. Each framework is reported at its fastest thread count and the ratio compares the
two bests. Tokens are target tokens (words and `</s>`). Decoding: greedy translation of the test split, ours
`translate_corpus(beam=1)` against a torch greedy loop over the same batches (same stopping rule: every
sentence has emitted `</s>`, or 2·S + 10 steps), both from the same weights (ours after the timed training,
copied to torch); agreement of the outputs is printed. Our peak traced memory comes from a pass of its own
(tracing slows NumPy).

profile: --batches training steps of each at one thread, after a warm-up; lmbench's under cProfile, grouped by
part of the network (inclusive times of the functions named), torch's under torch.profiler (its top operators by
self time). cProfile adds its own overhead to every Python call, so read the shares, not the absolute figures.

NumPy runs at its best too: where OPENBLAS_CORETYPE forces kernels that leave the CPU's AVX-512 unused, the script
runs itself again without it and says so on stderr (--blas-as-set keeps it); the output names the kernels.
"""

from __future__ import annotations

import argparse
import sys

from frameworks import prepare_process  # benchmarks/frameworks.py, beside this script (no NumPy or torch import)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "parity", "profile"])
    ap.add_argument("--pairs", default="synthetic:ko-en", help="parallel corpus (lmbench translate --pairs SPEC)")
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=None, help="default: the model's")
    ap.add_argument("--attention", choices=["none", "dot", "general", "additive"], default=None,
                    help="default: the model's")
    ap.add_argument("--encoder", choices=["forward", "reversed", "bidirectional"], default=None,
                    help="default: the model's")
    ap.add_argument("--layers", type=int, default=None, help="default: the model's")
    ap.add_argument("--batches", type=int, default=120, help="speed: training batches per framework and thread count")
    ap.add_argument("--rounds", type=int, default=6, help="speed: interleaved rounds")
    ap.add_argument("--threads", default="1,2", help="thread counts to try")
    ap.add_argument("--decode", type=int, default=1, help="speed: greedy decoding of the test split (0: skip)")
    ap.add_argument("--parity-steps", type=int, default=3, help="optimiser steps compared in the parity check")
    ap.add_argument("--torch-adam", choices=["fused", "foreach", "loop"], default="fused",
                    help="torch.optim.Adam's implementation (fused: its fastest here, ~9%% faster than the default "
                         "for-loop one on CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blas-as-set", action="store_true",
                    help="keep an OPENBLAS_CORETYPE that leaves the CPU's AVX-512 unused (default: run without it)")
    args = ap.parse_args()
    args.thread_counts = sorted({int(t) for t in args.threads.split(",")})
    return args


ARGS = parse()
prepare_process(max(ARGS.thread_counts), sys.argv)  # before NumPy and torch load

import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402, N812
from frameworks import torch_threads  # noqa: E402  (benchmarks/frameworks.py, beside this script)

from lmbench.models.neural import parallel  # noqa: E402
from lmbench.models.neural.blas import blas_threads, describe_blas  # noqa: E402
from lmbench.models.neural.trainer import Trainer, optimizer_for  # noqa: E402
from lmbench.models.registry import create_model  # noqa: E402
from lmbench.models.seq2seq.model import Seq2Seq  # noqa: E402
from lmbench.models.seq2seq.pairs import gather_sources, gather_targets, make_batches  # noqa: E402
from lmbench.text.parallel import ParallelSet, load_pairs  # noqa: E402
from lmbench.text.vocab import BOS_ID, EOS_ID  # noqa: E402

torch.set_num_threads(max(ARGS.thread_counts))
RNNS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def t(a: np.ndarray) -> torch.Tensor:
    """A float32/int64 torch copy of a NumPy array."""
    return torch.from_numpy(np.ascontiguousarray(a).copy())


class TorchSeq2Seq(torch.nn.Module):
    """The Seq2Seq network in torch.nn.{LSTM,GRU,RNN} + torch.nn.functional, holding a copy of our weights."""

    def __init__(self, ours: Seq2Seq) -> None:
        super().__init__()
        p = ours.params
        self.kind, self.H, self.L = p["cell"], p["hidden"], p["layers"]
        self.encoder, self.attention = p["encoder"], p["attention"] or "none"
        bidir = self.encoder == "bidirectional"
        cls = RNNS[self.kind]
        self.enc = torch.nn.ModuleList(cls(p["src_emb"] if l == 0 else self.H, self.H, 1, bidirectional=bidir)
                                       for l in range(self.L))
        self.dec = cls(p["tgt_emb"], self.H, self.L)
        w = ours.weights
        self.src_emb = torch.nn.Parameter(t(w["src_emb"]))
        self.tgt_emb = torch.nn.Parameter(t(w["tgt_emb"]))
        self.out_W = torch.nn.Parameter(t(w["out.W"].T))  # torch's (out, in) layout, used by F.linear
        self.out_b = torch.nn.Parameter(t(w["out.b"]))
        self.attn = torch.nn.ParameterDict({k: torch.nn.Parameter(t(v)) for k, v in ours.attn.weights.items()})
        self.load_from(ours)

    def load_from(self, ours: Seq2Seq) -> None:
        """Copy every weight of ours into this network."""
        with torch.no_grad():
            for l, cells in enumerate(ours.enc):
                state = {k: t(v) for k, v in cells["f"].to_torch_weights(0).items()}
                if "b" in cells:
                    state |= {f"{k}_reverse": t(v) for k, v in cells["b"].to_torch_weights(0).items()}
                self.enc[l].load_state_dict(state)
            state = {}
            for l, cell in enumerate(ours.dec):
                state |= {k: t(v) for k, v in cell.to_torch_weights(l).items()}
            self.dec.load_state_dict(state)
            w = ours.weights
            self.src_emb.copy_(t(w["src_emb"]))
            self.tgt_emb.copy_(t(w["tgt_emb"]))
            self.out_W.copy_(t(w["out.W"].T))
            self.out_b.copy_(t(w["out.b"]))
            for k, v in ours.attn.weights.items():
                self.attn[k].copy_(t(v))

    def grads_as_ours(self, ours: Seq2Seq) -> dict[str, np.ndarray]:
        """This network's gradients under our weight names and layouts."""
        g = {}
        for l, cells in enumerate(ours.enc):
            named = {k: v.grad.numpy() for k, v in self.enc[l].named_parameters()}
            fwd = {k: v for k, v in named.items() if not k.endswith("_reverse")}
            g |= {f"enc{l}f.{k}": v for k, v in cells["f"].grads_from_torch(fwd, 0).items()}
            if "b" in cells:
                bwd = {k.removesuffix("_reverse"): v for k, v in named.items() if k.endswith("_reverse")}
                g |= {f"enc{l}b.{k}": v for k, v in cells["b"].grads_from_torch(bwd, 0).items()}
        named = {k: v.grad.numpy() for k, v in self.dec.named_parameters()}
        for l, cell in enumerate(ours.dec):
            g |= {f"dec{l}.{k}": v for k, v in cell.grads_from_torch(named, l).items()}
        g |= {"src_emb": self.src_emb.grad.numpy(), "tgt_emb": self.tgt_emb.grad.numpy(),
              "out.W": self.out_W.grad.numpy().T, "out.b": self.out_b.grad.numpy()}
        g |= {f"attn.{k}": v.grad.numpy() for k, v in self.attn.items()}
        return g

    def _sum_directions(self, out: torch.Tensor, hn: object) -> tuple[torch.Tensor, object]:
        H = self.H
        out = out[..., :H] + out[..., H:]
        if isinstance(hn, tuple):
            return out, tuple(s.sum(0, keepdim=True) for s in hn)
        return out, hn.sum(0, keepdim=True)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, object]:
        """Encoder outputs (B, S, H) and the decoder's initial state (per layer, stacked)."""
        if self.encoder == "reversed":
            src = src.flip(1)
        x = F.embedding(src.T, self.src_emb)  # (S, B, E)
        finals = []
        for rnn in self.enc:
            x, hn = rnn(x)
            if self.encoder == "bidirectional":
                x, hn = self._sum_directions(x, hn)
            finals.append(hn)
        if self.kind == "lstm":
            state = (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals]))
        else:
            state = torch.cat(finals)
        return x.transpose(0, 1), state

    def attend(self, Hd: torch.Tensor, He: torch.Tensor) -> torch.Tensor:
        """h̃ (B, T, H) from decoder states Hd (B, T, H) over encoder states He (B, S, H)."""
        a = self.attn
        if self.attention == "none":
            return Hd
        if self.attention == "dot":
            s = Hd @ He.transpose(1, 2)
        elif self.attention == "general":
            s = Hd @ (He @ a["W_a"]).transpose(1, 2)
        else:
            s = torch.tanh((He @ a["W_1"]).unsqueeze(1) + (Hd @ a["W_2"]).unsqueeze(2)) @ a["v"]
        c = torch.softmax(s, dim=-1) @ He
        return torch.tanh(torch.cat([c, Hd], dim=-1) @ a["W_c"])

    def loss(self, src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor, mask: torch.Tensor
             ) -> torch.Tensor:
        """Mean cross-entropy over the real target tokens, teacher-forced."""
        He, state = self.encode(src)
        Hd, _ = self.dec(F.embedding(tgt_in.T, self.tgt_emb), state)
        logits = F.linear(self.attend(Hd.transpose(0, 1), He), self.out_W, self.out_b)
        return F.cross_entropy(logits[mask], tgt_out[mask])

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Greedy decoding as lmbench's greedy_search: (tokens (B, ≤max_len) with </s> after the end, lengths)."""
        B = src.shape[0]
        He, state = self.encode(src)
        tokens = torch.full((B,), BOS_ID, dtype=torch.int64)
        done = torch.zeros(B, dtype=torch.bool)
        lengths = torch.zeros(B, dtype=torch.int64)
        out = []
        for _ in range(max_len):
            h, state = self.dec(F.embedding(tokens, self.tgt_emb)[None], state)
            logits = F.linear(self.attend(h.transpose(0, 1), He)[:, 0], self.out_W, self.out_b)
            logits[:, BOS_ID] = float("-inf")
            tokens = logits.argmax(dim=1)  # the argmax of log-softmax
            lengths += ~done
            out.append(torch.where(done, EOS_ID, tokens))
            done |= tokens == EOS_ID
            if bool(done.all()):
                break
        return torch.stack(out, 1).numpy(), lengths.numpy()


def batch_arrays(data: ParallelSet, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """(src, tgt_in, tgt_out, mask) of one batch of training pairs, as the model's train_batch forms them."""
    return (gather_sources(data.train.src, idx), *gather_targets(data.train.tgt, idx))


def torch_step(model: TorchSeq2Seq, opt: torch.optim.Optimizer, arrays: tuple[np.ndarray, ...], clip: float
               ) -> float:
    """One training step: forward, backward, clipping, Adam."""
    opt.zero_grad()
    loss = model.loss(*(torch.from_numpy(a) for a in arrays))
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


def setup() -> tuple[ParallelSet, Seq2Seq, TorchSeq2Seq, Trainer, torch.optim.Optimizer]:
    data = load_pairs(ARGS.pairs)
    params = {"dropout": 0.0, "seed": ARGS.seed}
    for name in ("cell", "attention", "encoder", "layers"):
        if getattr(ARGS, name) is not None:
            params[name] = getattr(ARGS, name)
    ours: Seq2Seq = create_model("seq2seq", params)
    p = ours.params
    ours.rng = np.random.default_rng(p["seed"])  # as Trainer.fit does
    ours.initialize(data)
    ours.optimizer = optimizer_for(p)
    ours.train_state = {"epoch": 0, "batch": 0, "step": 0}
    theirs = TorchSeq2Seq(ours)
    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[ARGS.torch_adam]
    opt = torch.optim.Adam(theirs.parameters(), lr=p["lr"], **impl)
    return data, ours, theirs, Trainer(ours), opt


def describe(ours: Seq2Seq, data: ParallelSet) -> str:
    """One line with the shape and hyper-parameters."""
    p = ours.params
    return (f"{p['cell']} {p['layers']}×{p['hidden']}, {p['encoder']} encoder, attention {p['attention'] or 'none'}, "
            f"embeddings {p['src_emb']}/{p['tgt_emb']}, vocabularies {len(data.src_vocab)}/{len(data.tgt_vocab)}, "
            f"batch {p['batch']}, {p['optimizer']} lr {p['lr']:g} (torch: {ARGS.torch_adam} Adam), clip {p['clip']:g}, "
            f"dropout {p['dropout']:g}; "
            f"{ARGS.pairs}: {len(data.train):,} train pairs")


def parity(data: ParallelSet, ours: Seq2Seq, theirs: TorchSeq2Seq, trainer: Trainer,
           opt: torch.optim.Optimizer) -> None:
    """Loss and gradients of one batch on both sides, then the weights after a few optimiser steps."""
    batches = [idx for _, idx in ours.epoch_batches(data)]
    arrays = batch_arrays(data, batches[0])
    with blas_threads(1), parallel.threads(1):
        loss_ours, grads = ours.loss_and_grads(*arrays)
    theirs.zero_grad()
    loss_theirs = theirs.loss(*(torch.from_numpy(a) for a in arrays))
    loss_theirs.backward()
    g_theirs = theirs.grads_as_ours(ours)
    assert g_theirs.keys() == grads.keys(), sorted(set(g_theirs) ^ set(grads))
    worst = max(grads, key=lambda k: float(np.abs(grads[k] - g_theirs[k]).max()))
    diff = float(np.abs(grads[worst] - g_theirs[worst]).max())
    rel = max(float(np.abs(grads[k] - g_theirs[k]).max() / max(np.abs(g_theirs[k]).max(), 1e-30)) for k in grads)
    biggest = max(float(np.abs(g).max()) for g in g_theirs.values())
    S, T, lt = arrays[0].shape[1], arrays[1].shape[1], loss_theirs.item()
    print(f"parity, one batch ({arrays[0].shape[0]} pairs, source length {S}, target length {T}): "
          f"loss numpy {loss_ours:.7f} torch {lt:.7f} |diff| {abs(loss_ours - lt):.2e}; "
          f"gradients ({len(grads)} arrays, largest |g| {biggest:.3g}): max |diff| {diff:.2e} (in {worst}), "
          f"max relative to each array's largest |g| {rel:.2e}")
    theirs.zero_grad()
    steps = batches[1:1 + ARGS.parity_steps]
    with blas_threads(1), parallel.threads(1):
        losses_ours = [trainer.step((data.train, idx))[0] for idx in steps]
    losses_theirs = [torch_step(theirs, opt, batch_arrays(data, idx), ours.params["clip"]) for idx in steps]
    after = TorchSeq2Seq(ours)  # ours after the steps, in torch's layout
    w_diff = max(float((a - b).detach().abs().max()) for a, b in zip(after.parameters(), theirs.parameters()))
    print(f"parity, {len(steps)} optimiser steps (clip + Adam): losses numpy "
          + " ".join(f"{x:.6f}" for x in losses_ours) + " torch " + " ".join(f"{x:.6f}" for x in losses_theirs)
          + f"; weights afterwards max |diff| {w_diff:.2e}", flush=True)


def speed() -> None:
    data, ours, theirs, trainer, opt = setup()
    print(describe(ours, data))
    parity(data, ours, theirs, trainer, opt)
    p = ours.params
    batches = [idx for _, idx in ours.epoch_batches(data)]
    clip = p["clip"]

    def train_ours(ids: list[np.ndarray]) -> None:
        for idx in ids:
            trainer.step((data.train, idx))

    def train_theirs(ids: list[np.ndarray]) -> None:
        for idx in ids:
            torch_step(theirs, opt, batch_arrays(data, idx), clip)

    sides = {"numpy": (train_ours, parallel.threads), "torch": (train_theirs, torch_threads)}
    start = 1 + ARGS.parity_steps
    for name, (train, threads) in sides.items():  # warm-up at every thread count
        for n in ARGS.thread_counts:
            with threads(n), blas_threads(1 if name == "numpy" else n):
                train(batches[start:start + 3])
    start += 3
    per_round = max(1, ARGS.batches // ARGS.rounds)
    seconds = {(name, n): 0.0 for name in sides for n in ARGS.thread_counts}
    tokens = 0
    for r in range(ARGS.rounds):
        ids = [batches[(start + r * per_round + j) % len(batches)] for j in range(per_round)]
        tokens += int(sum(data.train.tgt.lengths[idx].sum() + idx.size for idx in ids))
        for n in ARGS.thread_counts:
            for name, (train, threads) in sides.items():
                with threads(n), blas_threads(1 if name == "numpy" else n):
                    t0 = time.perf_counter()
                    train(ids)
                    seconds[name, n] += time.perf_counter() - t0
    pairs = ARGS.rounds * per_round * p["batch"]
    tracemalloc.start()  # peak memory in a pass of its own: tracing slows NumPy down
    with blas_threads(1):
        train_ours(batches[:3])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"training: {ARGS.rounds * per_round} batches (~{pairs:,} pairs, {tokens:,} target tokens) per framework "
          f"and thread count, in {ARGS.rounds} interleaved rounds")
    report("train", {key: tokens / s for key, s in seconds.items()})

    if ARGS.decode:
        theirs.load_from(ours)  # both decode from the same weights
        src = data.test.src
        dec_seconds: dict[tuple[str, int], float] = {}
        for _ in range(2):  # best of two passes
            for n in ARGS.thread_counts:
                with parallel.threads(n), blas_threads(1):
                    t0 = time.perf_counter()
                    hyp = ours.translate_corpus(src, beam=1)
                    took = time.perf_counter() - t0
                dec_seconds["numpy", n] = min(dec_seconds.get(("numpy", n), float("inf")), took)
                with torch_threads(n):
                    t0 = time.perf_counter()
                    out_theirs = torch_translate(theirs, src)
                    took = time.perf_counter() - t0
                dec_seconds["torch", n] = min(dec_seconds.get(("torch", n), float("inf")), took)
        same = sum(np.array_equal(a, b) for a, b in zip(hyp.tokens, out_theirs))
        n_tokens = int(hyp.lengths.sum())
        print(f"greedy decoding of the test split ({src.n_sentences:,} sentences, batches of 256 of one source "
              f"length): {n_tokens:,} tokens generated by numpy (with </s>), "
              f"{sum(len(x) + 1 for x in out_theirs):,} by torch; identical outputs {same}/{src.n_sentences}")
        report("decode", {key: n_tokens / s for key, s in dec_seconds.items()})
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak NumPy memory traced during training {peak / 2**20:.1f} MiB; process max RSS (numpy + torch + data) "
          f"{rss:.0f} MiB; torch {torch.__version__}, numpy {np.__version__}; NumPy's BLAS: {describe_blas()}")


def torch_translate(model: TorchSeq2Seq, src: object) -> list[np.ndarray]:
    """Greedy translations of every source sentence, batched as translate_corpus does, in the corpus's order."""
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * src.n_sentences
    for ids in make_batches(src, 256):
        S = int(src.lengths[ids[0]])
        toks, lengths = model.greedy(torch.from_numpy(gather_sources(src, ids)), 2 * S + 10)
        for i, row, n in zip(ids, toks, lengths):
            out[i] = row[:n - 1] if n and row[n - 1] == EOS_ID else row[:n]
    return out


def report(what: str, rates: dict[tuple[str, int], float]) -> None:
    """Tokens/s of both at every thread count, then best against best."""
    for n in ARGS.thread_counts:
        print(f"  {what:6} threads={n}: numpy {rates['numpy', n]:9,.0f} tok/s   torch {rates['torch', n]:9,.0f} tok/s"
              f"   ratio {rates['numpy', n] / rates['torch', n]:.3f}")
    best = {name: max(ARGS.thread_counts, key=lambda n: rates[name, n]) for name in ("numpy", "torch")}
    print(f"  {what:6} best: numpy {rates['numpy', best['numpy']]:,.0f} tok/s at {best['numpy']} thread(s), "
          f"torch {rates['torch', best['torch']]:,.0f} at {best['torch']}: ratio numpy/torch "
          f"{rates['numpy', best['numpy']] / rates['torch', best['torch']]:.3f}", flush=True)


PARTS = {  # label: (file, function) whose inclusive time cProfile reports
    "encoder forward (both directions)": ("seq2seq/model.py", "_encode"),
    "encoder backward": ("seq2seq/model.py", "_encode_backward"),
    "attention forward": ("seq2seq/attention.py", "forward"),
    "attention backward": ("seq2seq/attention.py", "backward"),
    "output layer forward": ("neural/layers.py", "linear_forward"),
    "output layer backward": ("neural/layers.py", "linear_backward"),
    "softmax + cross-entropy": ("neural/layers.py", "softmax_cross_entropy"),
    "embedding backward": ("neural/layers.py", "embedding_backward"),
    "clipping (global norm)": ("neural/optim.py", "clip_global_norm"),
    "Adam step": ("neural/optim.py", "step"),
    "all recurrent cells, forward": ("neural/cells.py", "_forward"),
    "all recurrent cells, backward (with weight grads)": ("neural/cells.py", "_backward"),
    "whole training step": ("neural/trainer.py", "step"),
}


def profile() -> None:
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    data, ours, theirs, trainer, opt = setup()
    print(describe(ours, data))
    batches = [idx for _, idx in ours.epoch_batches(data)]
    warm, ids = batches[:5], batches[5:5 + ARGS.batches]
    with blas_threads(1), parallel.threads(1):
        for idx in warm:
            trainer.step((data.train, idx))
        t0 = time.perf_counter()
        for idx in ids:
            trainer.step((data.train, idx))
        plain = time.perf_counter() - t0
        prof = cProfile.Profile()
        prof.enable()
        for idx in ids:
            trainer.step((data.train, idx))
        prof.disable()
    n = len(ids)
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    cum = {label: sum(v[3] for (file, _, func), v in stats.items() if file.endswith(f) and func == fn)
           for label, (f, fn) in PARTS.items()}
    whole = cum["whole training step"]
    print(f"lmbench, 1 thread: {1e3 * plain / n:.2f} ms per step without the profiler; under cProfile:")
    for label, seconds in cum.items():
        print(f"  {label:50} {1e3 * seconds / n:7.2f} ms  {100 * seconds / whole:5.1f}%")
    with torch_threads(1):
        for idx in warm:
            torch_step(theirs, opt, batch_arrays(data, idx), ours.params["clip"])
        t0 = time.perf_counter()
        for idx in ids:
            torch_step(theirs, opt, batch_arrays(data, idx), ours.params["clip"])
        plain = time.perf_counter() - t0
        with torch_profile(activities=[ProfilerActivity.CPU]) as tp:
            for idx in ids:
                torch_step(theirs, opt, batch_arrays(data, idx), ours.params["clip"])
    print(f"torch, 1 thread: {1e3 * plain / n:.2f} ms per step without the profiler; its top operators by self time:")
    events = sorted(tp.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    for e in events[:12]:
        print(f"  {e.key:50} {e.self_cpu_time_total / 1e3 / n:7.2f} ms  {100 * e.self_cpu_time_total / total:5.1f}%")


if __name__ == "__main__":
    if ARGS.mode == "speed":
        speed()
    elif ARGS.mode == "profile":
        profile()
    else:
        data, ours, theirs, trainer, opt = setup()
        print(describe(ours, data))
        parity(data, ours, theirs, trainer, opt)
