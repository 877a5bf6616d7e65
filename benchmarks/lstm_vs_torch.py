"""Our NumPy recurrent LMs against PyTorch LMs of identical architecture and hyper-parameters (not a test).

    python benchmarks/lstm_vs_torch.py speed   [--cell lstm] [--batches 60] [--threads 1]
    python benchmarks/lstm_vs_torch.py quality [--cell lstm|gru|rnn] [--epochs 6] [--threads 1]

Configuration (PyTorch's word_language_model example): 2 layers, embedding = hidden = 200, dropout 0.2,
BPTT 35, batch 20, SGD lr 20 (rnn: 5), clip 0.25, lr /4 when validation does not improve,
on ../shared/corpora/ptb-v with the whitespace tokenizer. Both models read the same batchified stream
(`<s> w1 … wn` → `w1 … wn </s>`), the <s> logit is masked in both, and both are evaluated on the same
side-by-side runs of the test set. Validation is the last 5% of train (ptb-v has no valid split).

quality mode gives torch our initial weights (one to one: same gate blocks, both biases), so the two runs
differ only in their dropout masks and floating-point summation order; --torch-init lets torch start from
its own default initialisation instead (then the forget-gate bias differs too: ours starts at 1).

speed: the same number of training batches for both, interleaved in rounds (so load from other processes
on a shared machine hits both alike): training tokens/s of both and the ratio, evaluation tokens/s of
both, and our peak memory. quality: full training of both, test perplexity of both and their ratio.
Both use the same number of BLAS/intra-op threads (--threads; our recurrent loops are single-threaded).
"""

from __future__ import annotations

import argparse
import os
import sys


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["speed", "quality"])
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpora",
                                                     "ptb-v"))
    ap.add_argument("--batches", type=int, default=60, help="speed: training batches per model")
    ap.add_argument("--rounds", type=int, default=6, help="speed: interleaved rounds")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=None, help="default 20 (lstm, gru), 5 (rnn)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--torch-init", action="store_true",
                    help="quality: torch starts from its own default initialisation instead of our initial weights")
    return ap.parse_args()


ARGS = parse()
# Thread counts must be set before NumPy / torch load their thread pools.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lmbench.models.neural.lm import RecurrentLM  # noqa: E402
from lmbench.models.neural.trainer import Trainer  # noqa: E402
from lmbench.models.registry import create_model  # noqa: E402
from lmbench.text.sources import load_corpus  # noqa: E402
from lmbench.text.tokenize import Tokenizer  # noqa: E402
from lmbench.text.vocab import BOS_ID  # noqa: E402

torch.set_num_threads(ARGS.threads)


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


def torch_train_step(model: TorchLM, x: np.ndarray, y: np.ndarray, hidden: object, lr: float) -> tuple[float, object]:
    model.train()
    hidden = detach(hidden)
    model.zero_grad()
    logits, hidden = model(torch.from_numpy(x), hidden)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.reshape(-1)))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-lr)
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
    lr = ARGS.lr if ARGS.lr is not None else (5.0 if ARGS.cell == "rnn" else 20.0)
    params = {"emb": 200, "hidden": 200, "layers": 2, "dropout": 0.2, "bptt": 35, "batch": 20, "lr": lr,
              "clip": 0.25, "epochs": ARGS.epochs, "seed": ARGS.seed, "optimizer": "sgd"}
    ours: RecurrentLM = create_model(ARGS.cell, params)
    torch.manual_seed(ARGS.seed)
    theirs = TorchLM(ARGS.cell, len(corpora.vocab), 200, 200, 2, 0.2)
    return corpora, ours, theirs, params


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

    ours.vocab = corpora.vocab
    ours.build(len(corpora.vocab))
    ours.optimizer = make_optimizer("sgd", p["lr"])
    ours.train_state = {"epoch": 0, "step": 0}
    trainer = Trainer(ours)  # one optimiser step = the trainer's step, exactly as in fit()
    X, Y = batchify(ours, corpora.train, p["batch"])
    T = p["bptt"]
    n_windows = X.shape[0] // T
    ours.carry = ours.zero_state(p["batch"])
    hidden = theirs.init_hidden(p["batch"])
    for i in range(3):  # warm-up
        trainer.step((X[i * T:(i + 1) * T], Y[i * T:(i + 1) * T]))
        _, hidden = torch_train_step(theirs, X[i * T:(i + 1) * T], Y[i * T:(i + 1) * T], hidden, p["lr"])
    per_round = max(1, ARGS.batches // ARGS.rounds)
    t_ours = t_theirs = 0.0
    tokens = 0
    tracemalloc.start()
    k = 3
    for _ in range(ARGS.rounds):
        windows = [(k + j) % n_windows for j in range(per_round)]
        k += per_round
        start = time.perf_counter()
        for w in windows:
            trainer.step((X[w * T:(w + 1) * T], Y[w * T:(w + 1) * T]))
        t_ours += time.perf_counter() - start
        start = time.perf_counter()
        for w in windows:
            _, hidden = torch_train_step(theirs, X[w * T:(w + 1) * T], Y[w * T:(w + 1) * T], hidden, p["lr"])
        t_theirs += time.perf_counter() - start
        tokens += per_round * T * p["batch"]
    # evaluation speed on the test split, the same runs for both
    test = corpora.test
    start = time.perf_counter()
    lp_ours = ours.logprobs(test)
    e_ours = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    runs = ours._eval_runs(test)
    runs = (runs[0].astype(np.int64), runs[1].astype(np.int64), runs[2], runs[3])
    start = time.perf_counter()
    lp_theirs = torch_score(theirs, runs, max(p["bptt"], 64))
    e_theirs = time.perf_counter() - start
    assert lp_ours.size == lp_theirs.size == test.n_predicted
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{ARGS.cell}: {tokens:,} training tokens each ({ARGS.rounds} interleaved rounds), threads={ARGS.threads}")
    print(f"  train tokens/s  numpy {tokens / t_ours:8,.0f}   torch {tokens / t_theirs:8,.0f}   "
          f"ratio numpy/torch {t_theirs / t_ours:.3f}")
    print(f"  eval  tokens/s  numpy {test.n_predicted / e_ours:8,.0f}   torch {test.n_predicted / e_theirs:8,.0f}   "
          f"ratio {e_theirs / e_ours:.3f}")
    print(f"  peak NumPy memory traced during training+eval {peak / 2**20:.0f} MiB; process max RSS "
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
    T, lr, best = p["bptt"], p["lr"], None
    va_runs = ours._eval_runs(va)
    va_runs = (va_runs[0].astype(np.int64), va_runs[1].astype(np.int64), va_runs[2], va_runs[3])
    history = []
    start = time.perf_counter()
    for _ in range(p["epochs"]):
        hidden = theirs.init_hidden(p["batch"])
        for s in range(0, X.shape[0], T):
            _, hidden = torch_train_step(theirs, X[s:s + T], Y[s:s + T], hidden, lr)
        val = -torch_score(theirs, va_runs, 64).mean()
        if best is None or val < best:
            best = val
        else:
            lr /= 4.0
        history.append(f"{math.exp(val):.1f}@lr{lr:g}")
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
    if not os.path.isdir(ARGS.corpus):
        sys.exit(f"corpus not found: {ARGS.corpus}")
    speed() if ARGS.mode == "speed" else quality()
