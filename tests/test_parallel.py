"""Blocked, threaded elementwise passes (models/neural/parallel.py) and the Transformer kernels built on them:
the blocks cover every row once, worker errors surface, results do not depend on the thread count, and the
sort-based embedding gradient equals np.add.at's."""

import numpy as np
import pytest

from lmbench.models.neural import parallel
from lmbench.models.neural.blas import blas_threads, get_blas_threads
from lmbench.models.registry import create_model
from lmbench.models.transformer.embedding import scatter_rows
from lmbench.models.transformer.feedforward import gelu_bias_backward, gelu_bias_forward


@pytest.mark.parametrize("n,per_item,target", [(0, 1, 8), (1, 5, 8), (10, 3, 8), (100, 1, 7), (9, 100, 8)])
def test_blocks_cover_every_row_once(n, per_item, target):
    cuts = parallel.blocks(n, per_item, target)
    seen = np.concatenate([np.arange(n)[c] for c in cuts]) if cuts else np.zeros(0, dtype=int)
    assert seen.tolist() == list(range(n))
    assert all(c.stop - c.start >= 1 for c in cuts)
    assert all(c.stop - c.start <= max(1, target // per_item) for c in cuts)


def test_run_calls_every_item_and_raises_worker_errors():
    done = []
    with blas_threads(2):
        parallel.run(done.append, list(range(7)))
    assert sorted(done) == list(range(7))

    def fail(i):
        if i == 6:  # the last group: a worker thread when there are two
            raise RuntimeError("block 6")

    with blas_threads(2), pytest.raises(RuntimeError, match="block 6"):
        parallel.run(fail, list(range(7)))


def test_transformer_step_is_bit_identical_on_one_and_two_threads(monkeypatch):
    monkeypatch.setattr(parallel, "BLOCK_ELEMENTS", 256)  # many blocks even for a small model
    monkeypatch.setattr(parallel.blocks, "__defaults__", (1, 256))
    model = create_model("transformer", {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 2, "context": 16,
                                         "dropout": 0.0})
    model.build(30)
    rng = np.random.default_rng(0)
    x, y = rng.integers(2, 30, (6, 16)), rng.integers(2, 30, (6, 16))
    out = {}
    for n in (1, 2):
        with blas_threads(n):
            if n == 2 and get_blas_threads() != 2:
                pytest.skip("no OpenBLAS thread control here")
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
