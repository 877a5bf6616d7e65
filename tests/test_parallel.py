"""The neural models' own parallelism (lmbench.models.neural.parallel): the same bits for any thread count;
the Transformer kernels built on its cache-sized blocks.

Oracles: NumPy's single-threaded product for the blocked products, and the same training run with one thread
for runs with two and three. Every comparison is exact (array_equal), not within a tolerance.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from lmbench.models.neural import layers, parallel
from lmbench.models.neural.blas import blas_threads, cpu_flags, cpu_has_avx512, describe_blas
from lmbench.models.neural.layers import scatter_rows
from lmbench.models.neural.optim import make_optimizer
from lmbench.models.neural.trainer import Trainer
from lmbench.models.registry import create_model
from lmbench.models.transformer.feedforward import gelu_bias_backward, gelu_bias_forward


def test_cut_partitions_by_hand():
    assert parallel.cut(10, 3) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert parallel.cut(4, 2) == [slice(0, 2), slice(2, 4)]
    assert parallel.cut(3, 5) == [slice(0, 1), slice(1, 2), slice(2, 3)]  # never an empty block
    assert parallel.cut(0, 2) == [slice(0, 0)]


def test_rows_are_cut_at_tile_edges_only():
    assert parallel.aligned_cut(100, 2) == [slice(0, 48), slice(48, 100)]
    assert parallel.aligned_cut(700, 3) == [slice(0, 240), slice(240, 480), slice(480, 700)]
    assert parallel.aligned_cut(2240, 2) == [slice(0, 1104), slice(1104, 2240)]  # 1120 is not a multiple of 48
    assert parallel.aligned_cut(47, 2) == [slice(0, 47)] and parallel.aligned_cut(0, 2) == [slice(0, 0)]


def test_recurrences_are_cut_only_when_each_step_is_large():
    with parallel.threads(2):
        assert parallel.row_blocks(96, 256 * 1024) == [slice(0, 48), slice(48, 96)]  # 48 × 256 × 1024 a step
        assert len(parallel.row_blocks(96, 128 * 512)) == 1  # 48 rows of the suite-sized 1×128 LSTM: too small
        assert len(parallel.row_blocks(32, 256 * 1024)) == 1  # 32 rows: no tile edge to cut at
        assert len(parallel.row_blocks(20, 64 * 256)) == 1  # the lecture's 1×64 cells
    with parallel.threads(1):
        assert len(parallel.row_blocks(96, 256 * 1024)) == 1


def test_blocks_run_on_several_threads_and_come_back_in_order():
    seen = set()
    with parallel.threads(2):
        parallel.run_blocks(lambda _: seen.add(threading.get_ident()), [0, 1])
        assert parallel.run_blocks(lambda k: k * k, list(range(7))) == [0, 1, 4, 9, 16, 25, 36]
    assert len(seen) == 2
    assert parallel.blocks(10, per_item=3, target=9) == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]


@pytest.mark.parametrize("shape", [(700, 200, 6024), (300, 150, 2000), (2000, 64, 800), (40, 800, 6000)])
@pytest.mark.parametrize("transposed", [False, True])
def test_blocked_product_equals_the_whole_product(shape, transposed):
    M, K, N = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if transposed else (M, K)).astype(np.float32)
    a = a.T if transposed else a  # a strided operand, as the weight gradients use
    b = rng.standard_normal((K, N)).astype(np.float32)
    with blas_threads(1):
        whole = a @ b
    for n in (1, 2, 3):
        with parallel.threads(n):
            assert np.array_equal(parallel.matmul(a, b), whole)
            out = np.empty_like(whole)
            assert parallel.matmul(a, b, out=out) is out and np.array_equal(out, whole)


def test_softmax_cross_entropy_in_blocks_equals_one_block():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((1000, 1000)).astype(np.float32) * 4  # 4 blocks of rows at 3+ threads
    y = rng.integers(0, 1000, 1000)
    mask = rng.random(1000) < 0.8
    results = {}
    for n in (1, 2, 3):
        with parallel.threads(n):
            results[n] = layers.softmax_cross_entropy(logits, y, mask=mask)
            results[n, "eval"] = layers.target_logprobs(logits.copy(), y)
    for n in (2, 3):
        assert results[n][0] == results[1][0]
        assert np.array_equal(results[n][1], results[1][1]) and np.array_equal(results[n][2], results[1][2])
        assert np.array_equal(results[n, "eval"], results[1, "eval"])
    # and the values themselves, from the definition in float64
    z = logits.astype(np.float64)
    logp = z[np.arange(1000), y] - np.log(np.exp(z).sum(axis=1))
    assert 1000 * 1000 >= 3 * parallel.MIN_BLOCK_VALUES
    np.testing.assert_allclose(results[2, "eval"], logp, rtol=1e-5, atol=1e-5)


HIDDEN = {"lstm": 160, "gru": 176, "rnn": 300}  # with batch 96, each cell's recurrence is cut at 2 threads
BATCH = 96
VOCAB = 4500  # large enough that the decoder product, the softmax and the decoder's update are cut too


def _train(cell: str, threads: int, steps: int = 3) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A few training steps of a model big enough that every kind of block is cut, and its test log-probs."""
    params = {"emb": 64, "hidden": HIDDEN[cell], "layers": 2, "dropout": 0.1, "bptt": 20, "batch": BATCH,
              "optimizer": "adam", "lr": 0.01, "clip": 1.0, "seed": 3}
    V = VOCAB
    m = create_model(cell, params)
    m.build(V)
    m.optimizer = make_optimizer("adam", 0.01)
    m.train_state = {"epoch": 0, "step": 0}
    trainer = Trainer(m)
    rng = np.random.default_rng(5)
    m.carry = m.zero_state(BATCH)
    with parallel.threads(threads):
        for _ in range(steps):
            trainer.step((rng.integers(2, V, (20, BATCH)), rng.integers(2, V, (20, BATCH))))
        logits, _, _ = m.forward(rng.integers(2, V, (20, BATCH)), m.zero_state(BATCH), train=False)
    return m.weights, logits


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_training_gives_the_same_weights_with_one_two_and_three_threads(cell):
    H, rows = HIDDEN[cell], 20 * BATCH
    with parallel.threads(2):  # the run below really cuts its recurrences, products, softmax and updates
        assert len(parallel.row_blocks(BATCH, H * {"lstm": 4, "gru": 3, "rnn": 1}[cell] * H)) == 2
    assert rows * H * VOCAB >= 2 * parallel.MIN_BLOCK_FLOPS
    assert rows * VOCAB >= 2 * parallel.MIN_BLOCK_VALUES and H * VOCAB >= 2 * parallel.MIN_BLOCK_VALUES
    w1, out1 = _train(cell, 1)
    for n in (2, 3):
        w, out = _train(cell, n)
        assert sorted(w) == sorted(w1)
        for name in w1:
            assert np.array_equal(w[name], w1[name]), (cell, n, name)
        assert np.array_equal(out, out1)


def test_threads_option_and_variable_are_checked(tmp_path, monkeypatch):
    assert_clean_error(run_cli("train", "lstm", "--corpus", "synthetic:dependency", "--threads", "0",
                               "--out", tmp_path / "m"), "--threads")
    monkeypatch.setenv("LMBENCH_THREADS", "two")
    assert_clean_error(run_cli("train", "lstm", "--corpus", "synthetic:dependency", "--out", tmp_path / "m"),
                       "LMBENCH_THREADS", "'two'")
    assert_clean_error(run_cli("run", "quick", "--out", tmp_path / "r"), "LMBENCH_THREADS")
    assert not (tmp_path / "m").exists() and not (tmp_path / "r").exists()
    with pytest.raises(Exception, match="threads"):
        parallel.set_threads(0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizer_steps_in_blocks_equal_one_block_and_the_formula(name):
    rng = np.random.default_rng(2)
    w0 = {"W": rng.standard_normal((600, 500)).astype(np.float32), "b": rng.standard_normal(7).astype(np.float32)}
    g = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in w0.items()}
    results = []
    for n in (1, 2):
        w = {k: v.copy() for k, v in w0.items()}
        opt = make_optimizer(name, 0.1)
        with parallel.threads(n):
            opt.step(w, {k: v.copy() for k, v in g.items()})
        results.append(w)
    assert all(np.array_equal(results[0][k], results[1][k]) for k in w0)
    G = g["W"].astype(np.float64)
    # first step of each rule: SGD θ − lr·g; Adam θ − lr·m̂/(√v̂ + ε) with m̂ = g, v̂ = g²
    expected = w0["W"] - 0.1 * (G if name == "sgd" else G / (np.abs(G) + 1e-8))
    np.testing.assert_allclose(results[1]["W"], expected, rtol=1e-5, atol=1e-6)


# --- cache-sized blocks and the Transformer kernels built on them (merged from the i12-speed branch) ---------


@pytest.mark.parametrize("n,per_item,target", [(0, 1, 8), (1, 5, 8), (10, 3, 8), (100, 1, 7), (9, 100, 8)])
def test_blocks_cover_every_row_once(n, per_item, target):
    cuts = parallel.blocks(n, per_item, target)
    seen = np.concatenate([np.arange(n)[c] for c in cuts]) if cuts else np.zeros(0, dtype=int)
    assert seen.tolist() == list(range(n))
    assert all(c.stop - c.start >= 1 for c in cuts)
    assert all(c.stop - c.start <= max(1, target // per_item) for c in cuts)


def test_run_blocks_calls_every_item_and_raises_worker_errors():
    done = []
    with parallel.threads(2):
        parallel.run_blocks(done.append, list(range(7)))
    assert sorted(done) == list(range(7))

    def fail(i):
        if i == 6:  # the last group: a worker thread when there are two
            raise RuntimeError("block 6")

    with parallel.threads(2), pytest.raises(RuntimeError, match="block 6"):
        parallel.run_blocks(fail, list(range(7)))


def test_transformer_step_is_bit_identical_on_one_and_two_threads(monkeypatch):
    monkeypatch.setattr(parallel.blocks, "__defaults__", (1, 256))  # many blocks even for a small model
    model = create_model("transformer", {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 2, "context": 16,
                                         "dropout": 0.0})
    model.build(30)
    rng = np.random.default_rng(0)
    x, y = rng.integers(2, 30, (6, 16)), rng.integers(2, 30, (6, 16))
    out = {}
    for n in (1, 2):
        with parallel.threads(n), blas_threads(n):
            loss, grads = model.loss_and_grads(x, y)
            logits, _ = model.forward(x)
        out[n] = (loss, grads, logits)
    assert out[1][0] == out[2][0]
    assert np.array_equal(out[1][2], out[2][2])
    for k, g in out[1][1].items():
        assert np.array_equal(g, out[2][1][k]), k


def test_scatter_rows_equals_add_at():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 9, 50)  # repeats, and some of the 12 rows never used
    rows = rng.normal(size=(50, 4))
    ref = np.zeros((12, 4))
    np.add.at(ref, ids, rows)
    assert np.allclose(scatter_rows(ids, rows, 12), ref, rtol=0, atol=1e-12)
    assert np.array_equal(scatter_rows(ids[:0], rows[:0], 12), np.zeros((12, 4)))


def test_gelu_backward_without_the_kept_derivative_matches_with_it():
    rng = np.random.default_rng(4)
    x, b, dout = rng.normal(size=(5, 7)) * 2, rng.normal(size=7), rng.normal(size=(5, 7))
    out1, c1 = gelu_bias_forward(x.copy(), b, grad=True)
    out0, c0 = gelu_bias_forward(x.copy(), b, grad=False)
    assert np.array_equal(out1, out0)
    dx1, db1 = gelu_bias_backward(dout, c1)
    dx0, db0 = gelu_bias_backward(dout, c0)
    assert np.allclose(dx1, dx0, rtol=1e-12) and np.allclose(db1, db0, rtol=1e-12)
    assert np.allclose(db1, dx1.sum(axis=0), rtol=1e-12)


def _kernel_sets() -> list[str]:
    """OpenBLAS's x86-64 kernel sets this CPU can run (none where NumPy's BLAS is not an OpenBLAS on x86-64)."""
    if platform.machine() not in ("x86_64", "AMD64") or not describe_blas().startswith("OpenBLAS"):
        return []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpuinfo = f.read()
    except OSError:
        return []
    flags = cpu_flags(cpuinfo)
    needs = {"Sandybridge": {"avx"}, "Haswell": {"avx2", "fma"}}
    return [k for k, need in needs.items() if need <= flags] + (["SkylakeX"] if cpu_has_avx512(cpuinfo) else [])


@pytest.mark.skipif(not _kernel_sets(), reason="needs NumPy's OpenBLAS on an x86-64 CPU with AVX")
def test_same_bits_under_every_openblas_kernel_set_the_cpu_runs():
    """The tile edges differ between kernel sets (Haswell's 24 rows, SkylakeX's 16): each set in its own process."""
    here = os.path.dirname(os.path.abspath(__file__))
    for kernels in _kernel_sets():
        env = dict(os.environ, OPENBLAS_CORETYPE=kernels)
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__, "-k",
                              "blocked_product or same_weights"], cwd=here, env=env, capture_output=True, text=True)
        assert run.returncode == 0, (kernels, run.stdout[-2000:])
        assert " passed" in run.stdout and "skipped" not in run.stdout, (kernels, run.stdout[-500:])
