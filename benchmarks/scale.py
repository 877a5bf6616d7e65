"""A corpus larger than the usual workbench sizes: modified-KN trigram with a memory budget, next to lmplz.

    python benchmarks/scale.py [--tokens 200e6] [--types 100000] [--memory 4G] [--lmplz PATH] [--dir DIR]

Writes a generated corpus to DIR/train.txt (Zipfian unigram draws over TYPES word types, sentences of
5..30 words; the file is reused when it already has the requested size), then times, as whole processes
in the same run, `lmbench train trigram --memory M` (cold corpus cache, then warm) and `lmplz -o 3 -S M`
on the same file, with each process tree's peak RSS. Not a test: a shared machine makes timings noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_corpus(path: Path, tokens: int, types: int, seed: int = 0, exponent: float = 1.1) -> None:
    """Zipfian word draws, written block by block (bounded memory), one sentence per line."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, types + 1) ** exponent)
    cdf /= cdf[-1]
    space = np.array([f"w{i} " for i in range(types)], dtype=object)
    newline = np.array([f"w{i}\n" for i in range(types)], dtype=object)
    block = 5_000_000
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, tokens, block):
            n = min(block, tokens - start)
            ids = np.minimum(np.searchsorted(cdf, rng.random(n)), types - 1)
            lengths = rng.integers(5, 31, size=n // 5 + 2)
            ends = np.cumsum(lengths) - 1
            is_end = np.zeros(n, dtype=bool)
            is_end[ends[ends < n]] = True
            is_end[-1] = True
            f.write("".join(np.where(is_end, newline[ids], space[ids]).tolist()))


def run(cmd: list[str], env: dict | None = None, stdin: Path | None = None, stdout: Path | None = None) -> dict:
    """Wall time and peak RSS (largest process of the tree) of one command."""
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as src, open(stdout or os.devnull, "wb") as dst:
        p = subprocess.Popen(cmd, stdin=src, stdout=dst, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        err = p.stderr.read().decode(errors="replace")
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024,
            "ok": status == 0, "stderr_tail": err.strip().splitlines()[-3:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=float, default=200e6)
    parser.add_argument("--types", type=int, default=100_000)
    parser.add_argument("--memory", default="4G")
    parser.add_argument("--lmplz", default=os.environ.get("LMPLZ") or shutil.which("lmplz"))
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lmbench-scale")
    args = parser.parse_args()
    tokens = int(args.tokens)
    corpus = args.dir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    text = corpus / "train.txt"
    stamp = corpus / "made.json"
    wanted = {"tokens": tokens, "types": args.types}
    if not (text.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        start = time.perf_counter()
        write_corpus(text, tokens, args.types)
        stamp.write_text(json.dumps(wanted))
        print(f"wrote {text} ({text.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
    load = os.getloadavg()
    report: dict = {"tokens": tokens, "types": args.types, "memory": args.memory,
                    "file_mb": text.stat().st_size / 1e6, "load_before": load}
    cache = args.dir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "LMBENCH_CACHE": str(cache)}
    ours = [sys.executable, "-m", "lmbench", "train", "trigram", "--corpus", str(corpus), "--tokenizer",
            "whitespace", "--memory", args.memory, "-p", "discount_fallback=true", "--out", str(args.dir / "model")]
    report["lmbench_cold"] = run(ours, env)
    print("lmbench (cold cache):", report["lmbench_cold"], flush=True)
    report["lmbench_warm"] = run(ours, env)
    print("lmbench (warm cache):", report["lmbench_warm"], flush=True)
    if args.lmplz:
        report["lmplz"] = run([args.lmplz, "-o", "3", "-S", args.memory, "--discount_fallback", "-T", str(args.dir)],
                              stdin=text, stdout=args.dir / "lmplz.arpa")
        print("lmplz:", report["lmplz"], flush=True)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
