"""Transformer LM speed: lmbench's NumPy model vs a PyTorch model of identical shape (not a test).

The PyTorch model is hand-written with torch.nn.functional (layer_norm, scaled_dot_product_attention with
is_causal, gelu(approximate="tanh")), starts from our initial weights, and trains with torch.optim.AdamW under
the same hyper-parameters on the same batches (the NumPy model's epoch_batches). Rounds are interleaved
(NumPy, torch, NumPy, torch, …) so that the load of this shared machine hits both alike; each framework runs
at every thread count given, and the best is reported, with the ratio of each round (both frameworks within the
same minute) and its median, the figure the load moves least. Training = forward + backward + clip + AdamW step;
evaluation = forward + log-softmax over the same batches. Peak memory: each framework in its own
subprocess, max RSS after the steps minus after start-up.

    python benchmarks/transformer_vs_torch.py [--corpus SPEC] [--steps 10] [--rounds 3] [--threads 1,2]

NumPy runs at its best too: where OPENBLAS_CORETYPE forces kernels that leave the CPU's AVX-512 unused, the script
runs itself again without it and says so on stderr (--blas-as-set keeps it); the output names the kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from frameworks import numpy_at_its_best  # benchmarks/frameworks.py, beside this script

from lmbench.models.neural import parallel
from lmbench.models.neural.blas import blas_threads, describe_blas
from lmbench.models.neural.layers import log_softmax
from lmbench.models.neural.optim import AdamW, clip_global_norm
from lmbench.models.registry import create_model
from lmbench.text.sources import load_corpus
from lmbench.text.vocab import BOS_ID

SHAPE = {"context": 64, "layers": 2, "heads": 4, "d_model": 128, "d_ff": 512, "dropout": 0.0, "batch": 32}


def setup(corpus_spec: str, steps: int):
    corpora = load_corpus(corpus_spec)
    model = create_model("transformer", SHAPE)
    data = model.prepare(corpora.train, corpora.valid, resuming=False)
    model.initialize(data)
    batches = model.epoch_batches(data)[:steps]
    return model, batches


def numpy_train(model, batches, threads: int) -> float:
    opt = AdamW(lr=1e-3, weight_decay=0.01)
    with parallel.threads(threads), blas_threads(1):  # lmbench's own threads, BLAS single-threaded (as in fit)
        t = time.perf_counter()
        for x, y in batches:
            _, grads = model.loss_and_grads(x, y, train=True)
            clip_global_norm(grads, 1.0)
            opt.step(model.weights, grads)
        return time.perf_counter() - t


def numpy_eval(model, batches, threads: int) -> float:
    with parallel.threads(threads), blas_threads(1):
        t = time.perf_counter()
        for x, _y in batches:
            logits, _ = model.forward(x)
            log_softmax(logits)
        return time.perf_counter() - t


class TorchLM:
    """The same network in torch.nn.functional, from our weights."""

    def __init__(self, model):
        import torch

        self.torch = torch
        self.W = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.weights.items()}
        decay = [w for w in self.W.values() if w.ndim >= 2]
        rest = [w for w in self.W.values() if w.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                     lr=1e-3)
        self.layers, self.heads, self.D = SHAPE["layers"], SHAPE["heads"], SHAPE["d_model"]

    def logits(self, x):
        torch, W, D, H = self.torch, self.W, self.D, self.heads
        F = torch.nn.functional
        B, T = x.shape
        h = W["emb"][x] + W["pos"][:T]
        for l in range(self.layers):
            def ln(z, i, l=l):
                return F.layer_norm(z, (D,), W[f"{l}.ln{i}.g"], W[f"{l}.ln{i}.b"], eps=1e-5)
            a = ln(h, 1)
            P = f"{l}.attn."
            q, k, v = ((a @ W[P + n] + W[P + b]).view(B, T, H, D // H).transpose(1, 2)
                       for n, b in (("Wq", "bq"), ("Wk", "bk"), ("Wv", "bv")))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D)
            h = h + o @ W[P + "Wo"] + W[P + "bo"]
            f = ln(h, 2)
            h = h + F.gelu(f @ W[f"{l}.ffn.W1"] + W[f"{l}.ffn.b1"], approximate="tanh") @ W[f"{l}.ffn.W2"] \
                + W[f"{l}.ffn.b2"]
        h = F.layer_norm(h, (D,), W["ln_f.g"], W["ln_f.b"], eps=1e-5)
        z = (h @ W["emb"].T + W["out.b"]).reshape(B * T, -1)
        z[:, BOS_ID] = float("-inf")
        return z

    def train(self, batches, threads: int) -> float:
        torch = self.torch
        torch.set_num_threads(threads)
        xs = [(torch.from_numpy(x), torch.from_numpy(y.reshape(-1))) for x, y in batches]
        t = time.perf_counter()
        for x, y in xs:
            self.opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.logits(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(self.W.values()), 1.0)
            self.opt.step()
        return time.perf_counter() - t

    def eval(self, batches, threads: int) -> float:
        torch = self.torch
        torch.set_num_threads(threads)
        xs = [torch.from_numpy(x) for x, _ in batches]
        t = time.perf_counter()
        with torch.no_grad():
            for x in xs:
                torch.log_softmax(self.logits(x), dim=1)
        return time.perf_counter() - t


def _hwm_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def memory_child(framework: str, vocab: int, steps: int, threads: int) -> None:
    """Train on random batches of the benchmark's shape (no corpus loaded: it would set the RSS peak)."""
    model = create_model("transformer", SHAPE)
    model.build(vocab)
    rng = np.random.default_rng(0)
    shape = (SHAPE["batch"], SHAPE["context"])
    batches = [(rng.integers(2, vocab, shape), rng.integers(2, vocab, shape)) for _ in range(steps)]
    if framework == "torch":
        import torch  # noqa: F401  (its import is start-up, not training memory)
    base = _hwm_mb()
    if framework == "numpy":
        numpy_train(model, batches, threads)
    else:
        TorchLM(model).train(batches, threads)
    peak = _hwm_mb()
    print(json.dumps({"framework": framework, "peak_rss_mb": round(peak, 1), "training_mb": round(peak - base, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="synthetic:dependency")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--blas-as-set", action="store_true",
                    help="keep an OPENBLAS_CORETYPE that leaves the CPU's AVX-512 unused (default: run without it)")
    args = ap.parse_args()
    numpy_at_its_best(sys.argv)
    threads = [int(t) for t in args.threads.split(",")]
    if args.memory_child:
        memory_child(args.memory_child, args.vocab, args.steps, threads[0])
        return
    print(f"load average {os.getloadavg()} on {os.cpu_count()} cores; shape {SHAPE}; corpus {args.corpus}")
    print(f"NumPy's BLAS: {describe_blas()}")
    model, batches = setup(args.corpus, args.steps)
    tokens = sum(x.size for x, _ in batches)
    tlm = TorchLM(model)
    best: dict[tuple[str, str, int], float] = {}
    per_round: dict[tuple[str, str, int], list[float]] = {}  # (framework, kind, round) → rates at each thread count
    for r in range(args.rounds):
        for n in threads:
            for name, fn, arg in (("numpy train", numpy_train, model), ("torch train", TorchLM.train, tlm),
                                  ("numpy eval", numpy_eval, model), ("torch eval", TorchLM.eval, tlm)):
                rate = tokens / fn(arg, batches, n)
                key = (*name.split(), n)
                best[key] = max(best.get(key, 0.0), rate)
                per_round.setdefault((key[0], key[1], r), []).append(rate)
                print(f"round {r + 1} threads {n}: {name} {rate:,.0f} tok/s", flush=True)
    for kind in ("train", "eval"):
        rows = {fw: max((best[(fw, kind, n)], n) for n in threads) for fw in ("numpy", "torch")}
        ratio = rows["numpy"][0] / rows["torch"][0]
        print(f"{kind}: numpy {rows['numpy'][0]:,.0f} tok/s ({rows['numpy'][1]} threads) vs torch "
              f"{rows['torch'][0]:,.0f} tok/s ({rows['torch'][1]} threads): numpy/torch = {ratio:.2f}")
        rounds = sorted(max(per_round[("numpy", kind, r)]) / max(per_round[("torch", kind, r)])
                        for r in range(args.rounds))
        print(f"{kind}: numpy/torch round by round (each at its best thread count in that round): "
              f"{', '.join(f'{x:.2f}' for x in rounds)}; median {float(np.median(rounds)):.2f}")
    for fw in ("numpy", "torch"):
        out = subprocess.run([sys.executable, __file__, "--vocab", str(model.vocab_size), "--steps", str(args.steps),
                              "--threads", str(threads[0]), "--memory-child", fw], capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip()[-300:])
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
