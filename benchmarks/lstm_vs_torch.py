"""Our NumPy recurrent LMs against PyTorch LMs of identical architecture and hyper-parameters (not a test).

    python benchmarks/lstm_vs_torch.py speed   [--config ptb|small] [--cell lstm|gru|rnn] [--threads 1,2]
    python benchmarks/lstm_vs_torch.py quality [--cell lstm|gru|rnn] [--epochs 6] [--threads 2]

Configurations:
- `ptb` (PyTorch's word_language_model example): 2 layers, embedding = hidden = 200, dropout 0.2, BPTT 35,
  batch 20, SGD lr 20 (rnn: 5), clip 0.25, lr /4 when validation does not improve, on ../shared/corpora/ptb-v
  with the whitespace tokenizer (vocabulary 6,021);
- `small` (the size the suites train): 1 layer, embedding 64, hidden 128, no dropout, BPTT 70, batch 32, Adam
  lr 0.002, clip 1, on synthetic:dependency (vocabulary 57).
Both models read the same batchified stream (`<s> w1 … wn` → `w1 … wn </s>`), the <s> logit is masked in both,
and both are evaluated on the same side-by-side runs of the test set. Validation is the last 5% of train.

speed: the same training batches for both, in interleaved rounds (framework × thread count, so load from other
processes on a shared machine hits all alike). Each framework runs at every thread count of --threads (torch:
`torch.set_num_threads`; lmbench: `parallel.threads`, BLAS single-threaded) and is reported at its fastest;
the ratio compares the two bests. Also: evaluation tokens/s the same way, our peak traced memory, and the share
of the roofline each reaches: tokens/s × FLOP per token ÷ the sgemm GFLOP/s this machine reaches with that many
threads (2048³, measured in the same run). FLOP per token counts the matrix products only: forward
2·(Σ_layers (D_in + H)·G·H + H·V) with G gate blocks (lstm 4, gru 3, rnn 1), training 3× forward.

NumPy's speed depends on the kernels its OpenBLAS runs; the header names them. An environment whose
OPENBLAS_CORETYPE forces AVX2 kernels on an AVX-512 CPU halves the speed of every product, so the script then
runs itself again without it, NumPy at its best as torch is at its best thread count, and says so on stderr
(--blas-as-set keeps the environment's). torch (MKL, oneDNN) does not read the variable.

quality mode gives torch our initial weights (one to one: same gate blocks, both biases), so the two runs
differ only in their dropout masks and floating-point summation order; --torch-init lets torch start from
its own default initialisation instead (then the forget-gate bias differs too: ours starts at 1).
"""

from __future__ import annotations

import argparse
import os
import sys

from frameworks import prepare_process  # benchmarks/frameworks.py, beside this script (no NumPy or torch import)

CONFIGS = {
    "ptb": {"corpus": os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora", "ptb-v"),
            "params": {"emb": 200, "hidden": 200, "layers": 2, "dropout": 0.2, "bptt": 35, "batch": 20,
                       "optimizer": "sgd", "lr": 20.0, "clip": 0.25}},
    "small": {"corpus": "synthetic:dependency",
              "params": {"emb": 64, "hidden": 128, "layers": 1, "dropout": 0.0, "bptt": 70, "batch": 32,
                         "optimizer": "adam", "lr": 0.002, "clip": 1.0}},
}
GATE_BLOCKS = {"lstm": 4, "gru": 3, "rnn": 1}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "quality"])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="ptb")
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--corpus", default=None, help="default: the configuration's corpus")
    ap.add_argument("--batches", type=int, default=60, help="speed: training batches per model and thread count")
    ap.add_argument("--rounds", type=int, default=6, help="speed: interleaved rounds")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=None, help="default: the configuration's (ptb: 20, rnn 5)")
    ap.add_argument("--threads", default="1,2", help="thread counts to try (speed), the largest is used by quality")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--blas-as-set", action="store_true",
                    help="keep an OPENBLAS_CORETYPE that leaves the CPU's AVX-512 unused (default: run without it)")
    ap.add_argument("--torch-init", action="store_true",
                    help="quality: torch starts from its own default initialisation instead of our initial weights")
    args = ap.parse_args()
    args.thread_counts = sorted({int(t) for t in args.threads.split(",")})
    args.corpus = args.corpus or CONFIGS[args.config]["corpus"]
    return args


ARGS = parse()
prepare_process(max(ARGS.thread_counts), sys.argv)  # before NumPy and torch load

import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from frameworks import torch_threads  # noqa: E402  (benchmarks/frameworks.py, beside this script)

from lmbench.models.neural import parallel  # noqa: E402
from lmbench.models.neural.blas import blas_threads, describe_blas  # noqa: E402
from lmbench.models.neural.lm import RecurrentLM  # noqa: E402
from lmbench.models.neural.trainer import Trainer  # noqa: E402
from lmbench.models.registry import create_model  # noqa: E402
from lmbench.text.sources import load_corpus  # noqa: E402
from lmbench.text.tokenize import Tokenizer  # noqa: E402
from lmbench.text.vocab import BOS_ID  # noqa: E402

torch.set_num_threads(max(ARGS.thread_counts))


class TorchLM(torch.nn.Module):
    """PyTorch's word_language_model RNNModel, with the <s> logit masked like ours."""

    def __init__(self, kind: str, V: int, emb: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(dropout)
        self.encoder = torch.nn.Embedding(V, emb)
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
        self.rnn = cls(emb, hidden, layers, dropout=dropout)
        self.decoder = torch.nn.Linear(hidden, V)
        self.kind = kind
        torch.nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        torch.nn.init.zeros_(self.decoder.bias)
        torch.nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        mask = torch.zeros(V, dtype=torch.bool)
        mask[BOS_ID] = True
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor, hidden: object) -> tuple[torch.Tensor, object]:
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        logits = self.decoder(self.drop(out)).view(-1, self.decoder.out_features)
        return logits.masked_fill(self.mask, float("-inf")), hidden

    def init_hidden(self, B: int) -> object:
        h = torch.zeros(self.rnn.num_layers, B, self.rnn.hidden_size)
        return (h, h.clone()) if self.kind == "lstm" else h


def detach(h: object) -> object:
    return tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()


def torch_optimizer(model: TorchLM, p: dict) -> torch.optim.Optimizer:
    """torch's optimiser with our hyper-parameters (plain SGD: θ ← θ − lr·g, as ours)."""
    if p["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=p["lr"])
    return torch.optim.SGD(model.parameters(), lr=p["lr"])


def torch_train_step(model: TorchLM, x: np.ndarray, y: np.ndarray, hidden: object, opt: torch.optim.Optimizer,
                     clip: float) -> tuple[float, object]:
    model.train()
    hidden = detach(hidden)
    opt.zero_grad()
    logits, hidden = model(torch.from_numpy(x), hidden)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.reshape(-1)))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item(), hidden


def torch_score(model: TorchLM, runs: tuple, window: int) -> np.ndarray:
    x, y, mask, _ = runs
    L, R = x.shape
    out = np.empty((L, R))
    model.eval()
    hidden = model.init_hidden(R)
    with torch.no_grad():
        for t0 in range(0, L, window):
            xs, ys = x[t0:t0 + window], y[t0:t0 + window]
            logits, hidden = model(torch.from_numpy(xs), hidden)
            lp = torch.log_softmax(logits, dim=1)[torch.arange(xs.size), torch.from_numpy(ys.reshape(-1))]
            out[t0:t0 + window] = lp.numpy().reshape(xs.shape)
    return out.T[mask.T]


def setup() -> tuple:
    corpora = load_corpus(ARGS.corpus, Tokenizer("whitespace"))
    p = dict(CONFIGS[ARGS.config]["params"], epochs=ARGS.epochs, seed=ARGS.seed)
    if ARGS.lr is not None:
        p["lr"] = ARGS.lr
    elif ARGS.config == "ptb" and ARGS.cell == "rnn":
        p["lr"] = 5.0
    ours: RecurrentLM = create_model(ARGS.cell, p)
    torch.manual_seed(ARGS.seed)
    theirs = TorchLM(ARGS.cell, len(corpora.vocab), p["emb"], p["hidden"], p["layers"], p["dropout"])
    return corpora, ours, theirs, p


def flop_per_token(p: dict, V: int) -> float:
    """Forward FLOP per token of the matrix products: 2·(Σ_layers (D_in + H)·G·H + H·V)."""
    G, H = GATE_BLOCKS[ARGS.cell], p["hidden"]
    macs = sum(((p["emb"] if layer == 0 else H) + H) * G * H for layer in range(p["layers"])) + H * V
    return 2.0 * macs


def sgemm_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 GEMM rate with `threads` BLAS threads (n³ product, best of `repeats`)."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    best = float("inf")
    with blas_threads(threads):
        a @ a
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def copy_initial_weights(params: dict, V: int, theirs: TorchLM) -> None:
    """Give torch the initial weights our fit() will start from (same seed → same build)."""
    init: RecurrentLM = create_model(ARGS.cell, params)
    init.build(V)
    with torch.no_grad():
        theirs.encoder.weight.copy_(torch.from_numpy(init.weights["emb"]))
        state = {}
        for layer, cell in enumerate(init.cells):
            state |= {k: torch.from_numpy(v) for k, v in cell.to_torch_weights(layer).items()}
        theirs.rnn.load_state_dict(state)
        theirs.decoder.weight.copy_(torch.from_numpy(np.ascontiguousarray(init.weights["dec.W"].T)))
        theirs.decoder.bias.copy_(torch.from_numpy(init.weights["dec.b"]))


def batchify(model: RecurrentLM, corpus: object, B: int) -> tuple[np.ndarray, np.ndarray]:
    inputs, targets = model.streams(corpus)
    nb = inputs.size // B
    return (inputs[: nb * B].reshape(B, nb).T.astype(np.int64).copy(),
            targets[: nb * B].reshape(B, nb).T.astype(np.int64).copy())


def speed() -> None:
    corpora, ours, theirs, p = setup()
    from lmbench.models.neural.optim import make_optimizer

    V = len(corpora.vocab)
    copy_initial_weights(p, V, theirs)
    ours.vocab = corpora.vocab
    ours.build(V)
    ours.optimizer = make_optimizer(p["optimizer"], p["lr"])
    ours.train_state = {"epoch": 0, "step": 0}
    trainer = Trainer(ours)  # one optimiser step = the trainer's step, exactly as in fit()
    opt = torch_optimizer(theirs, p)
    X, Y = batchify(ours, corpora.train, p["batch"])
    T = p["bptt"]
    n_windows = X.shape[0] // T
    window = lambda w: (X[w * T:(w + 1) * T], Y[w * T:(w + 1) * T])  # noqa: E731
    ours.carry = ours.zero_state(p["batch"])
    hidden = [theirs.init_hidden(p["batch"])]

    def train_ours(windows: list[int]) -> None:
        for w in windows:
            trainer.step(window(w))

    def train_theirs(windows: list[int]) -> None:
        for w in windows:
            _, hidden[0] = torch_train_step(theirs, *window(w), hidden[0], opt, p["clip"])

    sides = {"numpy": (train_ours, parallel.threads), "torch": (train_theirs, torch_threads)}
    for name, (train, threads) in sides.items():  # warm-up at every thread count
        for n in ARGS.thread_counts:
            with threads(n), blas_threads(1 if name == "numpy" else n):
                train([0, 1])
    per_round = max(1, ARGS.batches // ARGS.rounds)
    seconds = {(name, n): 0.0 for name in sides for n in ARGS.thread_counts}
    k = 2
    for _ in range(ARGS.rounds):
        windows = [(k + j) % n_windows for j in range(per_round)]
        k += per_round
        for n in ARGS.thread_counts:
            for name, (train, threads) in sides.items():
                with threads(n), blas_threads(1 if name == "numpy" else n):
                    start = time.perf_counter()
                    train(windows)
                    seconds[name, n] += time.perf_counter() - start
    tokens = ARGS.rounds * per_round * T * p["batch"]
    # Peak memory in a pass of its own (tracing every allocation slows NumPy, not torch): training batches and
    # the evaluation of the test split, as the figure this benchmark printed before (152 MiB for ptb's LSTM).
    tracemalloc.start()
    train_ours(list(range(3)))
    ours.logprobs(corpora.test)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # evaluation on the test split, the same runs for both, each thread count in turn (best of two)
    test = corpora.test
    runs = ours._eval_runs(test)
    runs = (runs[0].astype(np.int64), runs[1].astype(np.int64), runs[2], runs[3])
    eval_seconds = {}
    for _ in range(2):
        for n in ARGS.thread_counts:
            with parallel.threads(n), blas_threads(1):
                start = time.perf_counter()
                lp_ours = ours.logprobs(test)
                took = time.perf_counter() - start
            eval_seconds["numpy", n] = min(eval_seconds.get(("numpy", n), float("inf")), took)
            with torch_threads(n):
                start = time.perf_counter()
                lp_theirs = torch_score(theirs, runs, max(p["bptt"], 64))
                took = time.perf_counter() - start
            eval_seconds["torch", n] = min(eval_seconds.get(("torch", n), float("inf")), took)
    assert lp_ours.size == lp_theirs.size == test.n_predicted
    gflops = {n: sgemm_gflops(n) for n in ARGS.thread_counts}
    flop = flop_per_token(p, V)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"{ARGS.cell}, config {ARGS.config} ({p['layers']}×{p['hidden']}, emb {p['emb']}, vocabulary {V:,}, "
          f"batch {p['batch']}, BPTT {T}, {p['optimizer']}): {tokens:,} training tokens per framework and thread "
          f"count in {ARGS.rounds} interleaved rounds; {flop * 3 / 1e6:.2f} MFLOP per training token, "
          f"{flop / 1e6:.2f} per evaluated token")
    print(f"  NumPy's BLAS: {describe_blas()}")
    print("  sgemm 2048³: " + ", ".join(f"{gflops[n]:.0f} GFLOP/s with {n} thread{'s' * (n > 1)}"
                                         for n in ARGS.thread_counts))
    for what, secs, count, per_token in (("train", seconds, tokens, 3 * flop),
                                         ("eval", eval_seconds, test.n_predicted, flop)):
        rates = {key: count / s for key, s in secs.items()}
        for n in ARGS.thread_counts:
            print(f"  {what:5} threads={n}: numpy {rates['numpy', n]:9,.0f} tok/s   "
                  f"torch {rates['torch', n]:9,.0f} tok/s")
        best = {name: max(ARGS.thread_counts, key=lambda n: rates[name, n]) for name in sides}
        share = {name: rates[name, best[name]] * per_token / (gflops[best[name]] * 1e9) for name in sides}
        print(f"  {what:5} best: numpy {rates['numpy', best['numpy']]:,.0f} tok/s at {best['numpy']} thread(s) "
              f"({100 * share['numpy']:.0f}% of that sgemm roofline), torch {rates['torch', best['torch']]:,.0f} "
              f"at {best['torch']} ({100 * share['torch']:.0f}%): ratio numpy/torch "
              f"{rates['numpy', best['numpy']] / rates['torch', best['torch']]:.3f}")
    print(f"  peak NumPy memory traced during training and evaluation {peak / 2**20:.0f} MiB; process max RSS "
          f"(numpy + torch + corpus) {rss:.0f} MiB")


def quality() -> None:
    corpora, ours, theirs, p = setup()
    if not ARGS.torch_init:
        copy_initial_weights(p, len(corpora.vocab), theirs)
    start = time.perf_counter()
    ours.fit(corpora.train)
    t_ours = time.perf_counter() - start
    ppl_ours = math.exp(-ours.logprobs(corpora.test).mean())
    print(f"{ARGS.cell} numpy: {ours.train_state['epoch']} epochs in {t_ours:.0f} s, history "
          + ", ".join(f"{h['valid_ppl']:.1f}@lr{h['lr']:g}" for h in ours.train_state["history"]), flush=True)
    # torch: the same split, stream, batches and schedule
    train = corpora.train
    k = train.n_sentences - max(1, int(round(0.05 * train.n_sentences)))
    tr, va = train.select(np.arange(k)), train.select(np.arange(k, train.n_sentences))
    X, Y = batchify(ours, tr, p["batch"])
    T, best = p["bptt"], None
    opt = torch_optimizer(theirs, p)
    va_runs = ours._eval_runs(va)
    va_runs = (va_runs[0].astype(np.int64), va_runs[1].astype(np.int64), va_runs[2], va_runs[3])
    history = []
    start = time.perf_counter()
    for _ in range(p["epochs"]):
        hidden = theirs.init_hidden(p["batch"])
        for s in range(0, X.shape[0], T):
            _, hidden = torch_train_step(theirs, X[s:s + T], Y[s:s + T], hidden, opt, p["clip"])
        val = -torch_score(theirs, va_runs, 64).mean()
        if best is None or val < best:
            best = val
        else:
            for group in opt.param_groups:
                group["lr"] /= 4.0
        history.append(f"{math.exp(val):.1f}@lr{opt.param_groups[0]['lr']:g}")
    t_theirs = time.perf_counter() - start
    te = ours._eval_runs(corpora.test)
    te = (te[0].astype(np.int64), te[1].astype(np.int64), te[2], te[3])
    ppl_theirs = math.exp(-torch_score(theirs, te, 64).mean())
    print(f"{ARGS.cell} torch: {p['epochs']} epochs in {t_theirs:.0f} s, history " + ", ".join(history))
    init = "torch's own init" if ARGS.torch_init else "shared init"
    print(f"{ARGS.cell} (lr {p['lr']:g}, seed {ARGS.seed}, {init}): "
          f"test perplexity numpy {ppl_ours:.1f}  torch {ppl_theirs:.1f}  "
          f"ratio {ppl_ours / ppl_theirs:.4f} ({100 * (ppl_ours / ppl_theirs - 1):+.1f}%); "
          f"training time ratio torch/numpy {t_theirs / t_ours:.3f}")


if __name__ == "__main__":
    if ":" not in ARGS.corpus and not os.path.isdir(ARGS.corpus):
        sys.exit(f"corpus not found: {ARGS.corpus}")
    speed() if ARGS.mode == "speed" else quality()
