"""How fast one step of a NumPy LSTM recurrence can be, against torch's (not a test).

    python benchmarks/recurrence_floor.py [--batch 32] [--hidden 128] [--input 64] [--steps 70]

The small suite-sized LSTM (1×128, batch 32) spends most of its evaluation in the recurrence: one
(B, H)×(H, 4H) product and a few element-wise passes per time step, one step after the other. This prints, per
time step of the forward recurrence:
  1. lmbench's LSTM cell (`LSTMCell.forward` over --steps steps, input projection excluded), one thread;
  2. its floor in NumPy: the recurrent product alone, plus the element-wise calls the step makes, each timed on
     its own (one BLAS thread, arrays reused, nothing else running in the loop);
  3. the same cell with the batch's rows cut in two halves run by two threads at once (each half's loop holds the
     GIL between NumPy calls);
  4. torch.nn.LSTM's forward over the same sequence (its fused oneDNN kernel), at each thread count, minus its
     input projection (timed as a single-step sequence is not possible, so the whole forward is divided by T).
The ratio the speed acceptance asks of evaluation (1.3× torch) sets a per-step budget: torch's best ÷ 1.3.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from frameworks import numpy_at_its_best, torch_threads

from lmbench.models.neural.blas import blas_threads, describe_blas
from lmbench.models.neural.cells import LSTMCell

ELEMENTWISE_CALLS = 9  # per forward step after the product: add, tanh, scale, shift, 2 products, add, tanh, product


def best_of(fn: object, repeats: int = 30) -> float:
    """The fastest of `repeats` timed calls of fn(), in seconds."""
    fn()  # type: ignore[operator]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--steps", type=int, default=70)
    ap.add_argument("--blas-as-set", action="store_true",
                    help="keep an OPENBLAS_CORETYPE that leaves the CPU's AVX-512 unused (default: run without it)")
    args = ap.parse_args()
    numpy_at_its_best(sys.argv)
    B, H, D, T = args.batch, args.hidden, args.input, args.steps
    rng = np.random.default_rng(0)
    cell = LSTMCell(D, H, rng)
    xs = rng.standard_normal((T, B, D)).astype(np.float32)
    state = cell.zero_state(B)
    print(f"LSTM {D}→{H}, batch {B}, {T} steps; NumPy's BLAS: {describe_blas()}")

    with blas_threads(1):
        whole = best_of(lambda: cell.forward(xs, state)) / T
        projection = best_of(lambda: cell._input_projection(xs, cell.weights["W_x"])) / T
        h, W, out = state[0], cell.weights["W_h"], np.empty((B, 4 * H), dtype=np.float32)
        product = best_of(lambda: [np.matmul(h, W, out=out) for _ in range(T)]) / T
        c = np.ones((B, H), dtype=np.float32)  # the cheapest call of a step: contiguous, (B, H)
        call = best_of(lambda: [np.multiply(c, c, out=c) for _ in range(T)]) / T
        halves = [slice(0, B // 2), slice(B // 2, B)]
        pool = ThreadPoolExecutor(2)

        def split() -> None:
            futures = [pool.submit(cell.forward, xs[:, rows], tuple(s[rows] for s in state)) for rows in halves]
            for f in futures:
                f.result()

        two = best_of(split) / T
    ours = whole - projection
    floor = product + ELEMENTWISE_CALLS * call
    print(f"  lmbench cell, 1 thread:              {1e6 * ours:6.1f} µs a step (input projection excluded)")
    print(f"  floor: product {1e6 * product:.1f} µs + {ELEMENTWISE_CALLS} element-wise calls × {1e6 * call:.1f} µs "
          f"= {1e6 * floor:.1f} µs")
    print(f"  rows in two halves on two threads:   {1e6 * (two - projection):6.1f} µs a step")

    lstm = torch.nn.LSTM(D, H)
    x = torch.from_numpy(xs)
    best_torch = float("inf")
    with torch.no_grad():
        for n in (1, 2):
            with torch_threads(n):
                step = best_of(lambda: lstm(x)) / T
            best_torch = min(best_torch, step)
            print(f"  torch.nn.LSTM forward, {n} thread(s): {1e6 * step:6.1f} µs a step (input projection included)")
    print(f"  budget for 1.3× torch's best: {1e6 * best_torch / 1.3:.1f} µs a step; lmbench's floor is "
          f"{floor / (best_torch / 1.3):.2f}× that budget")


if __name__ == "__main__":
    main()
