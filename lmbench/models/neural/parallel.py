"""Every core, with the same bits as one: large products and batch rows cut into blocks run by threads.

A threaded OpenBLAS splits a product differently for different thread counts and rounds it differently, and it
splits each of a recurrence's tiny per-step products too, where synchronising costs more than it saves. So
lmbench keeps BLAS on one thread and parallelises itself, at a coarser grain:

- `matmul(a, b)` cuts a large product into row blocks of `a`, one per thread;
- `over_rows(run, n, flops)` runs `run(rows)` for blocks of a batch's rows, e.g. a recurrent cell's whole time
  loop for a block of its sequences (the rows of a batch do not interact inside a cell);
- `rows_apply(fn, n, size)` applies a row-wise computation (a softmax) block by block;
- `elementwise(fn, *arrays)` updates arrays in flat blocks (the optimisers);
- `run_blocks(fn, blocks(n, per_item))` runs a chain of element-wise passes over cache-sized blocks of rows
  (the Transformer's GELU, LayerNorm and attention softmax), each block still in cache for the next pass;
- `retain_freed_memory()` keeps glibc from handing the blocks' buffers back to the system after every step.

NumPy releases the GIL inside BLAS calls and ufunc loops, so the blocks run at once on several cores. Why the
bits do not depend on the thread count: the blocks are cut by shape alone, and every entry of a block's
product is the same dot product, over the same K in the same order, as in the whole product, provided the
cuts fall on the edges of OpenBLAS's row tiles. Its kernels compute a tile of rows together and the rows of
a partial tile at the end with other code, which rounds differently; the tiles are 8 or 16 rows for its
SkylakeX and Sandybridge kernels and 24 for its Haswell and Zen kernels (measured: cutting at any multiple of
8, resp. 24, keeps every bit). So rows are cut at multiples of ROW_ALIGN = 48. Columns are never cut: the
Haswell kernels round column blocks differently at almost every cut. Its small-matrix kernels (products
under ~10⁶ multiply-adds) also round differently, and no block is cut that small. Element-wise and row-wise
work does not mix rows. The tests check, under each of these kernel sets that the CPU can run, that blocked
products equal whole ones and that training with 1, 2 and 3 threads gives identical weights. The thread
count comes from `set_threads` (the commands' --threads), else the environment variable LMBENCH_THREADS, else
the cores this process may use.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.neural.blas import blas_threads

# Work per block below which nothing is cut: waking a second thread costs tens of microseconds. A
# recurrence's per-step product must also stay above 2²⁰ multiply-adds per block, where OpenBLAS uses its
# regular kernels (see above). The seq2seq benchmark found 2 threads slower than 1 when products of 7–30 M
# multiply-adds and softmaxes of 240 × 379 values were cut; the thresholds below keep those whole.
# A recurrence is cut only when each block's step is larger still: at 10–16 rows of 128–200 units (1–1.6 M)
# the two loops contend for the GIL and the split was 0–8% slower in a whole training step; at 16 rows of 256
# units and more (≥ 4 M) the cell alone ran 1.2–1.3× faster on two threads.
MIN_STEP_FLOPS = 1 << 22  # multiply-adds of one time step's product, per block of rows
MIN_BLOCK_FLOPS = 1 << 25  # multiply-adds of a product, per block
ROW_ALIGN = 48  # a product's rows are cut only at multiples of OpenBLAS's row tiles (16 and 24, see above)
MIN_BLOCK_VALUES = 1 << 18  # values of an element-wise or row-wise pass, per block
BLOCK_ELEMENTS = 1 << 16  # `blocks`: 256 KB of float32, a few such blocks stay in a core's L2 cache
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_retained = False


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def parse_threads(value: Any, what: str = "LMBENCH_THREADS") -> int:
    """A thread count ≥ 1 from an option or the environment, or an error saying what is allowed."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise LmbenchError(f"{what} must be a whole number of threads ≥ 1, got {value!r}")
    return n


def get_threads() -> int:
    """Threads lmbench computes with: set_threads(), else $LMBENCH_THREADS, else every available core."""
    if _threads is not None:
        return _threads
    env = os.environ.get("LMBENCH_THREADS")
    return parse_threads(env) if env is not None and env.strip() else available_cores()


def set_threads(n: int | None) -> None:
    """Compute with n threads from now on (None: back to $LMBENCH_THREADS or the cores)."""
    global _threads
    _threads = None if n is None else parse_threads(n, "threads")


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run a block with n threads (None: as they are), then restore the previous setting."""
    global _threads
    before = _threads
    if n is not None:
        set_threads(n)
    try:
        yield
    finally:
        _threads = before


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:  # grows only; idle threads cost nothing
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmbench")
        return _pool


def run_blocks(task: Callable[[Any], Any], blocks: Sequence[Any]) -> list[Any]:
    """task(block) for every block, BLAS single-threaded; the blocks in contiguous groups, one per thread (the
    calling thread takes the first); the results in block order."""
    with blas_threads(1):
        n = min(get_threads(), len(blocks))
        if n <= 1:
            return [task(b) for b in blocks]
        bounds = [len(blocks) * k // n for k in range(n + 1)]
        groups = [blocks[bounds[k]:bounds[k + 1]] for k in range(n)]

        def run_group(group: Sequence[Any]) -> list[Any]:
            return [task(b) for b in group]

        futures = [_executor(n - 1).submit(run_group, g) for g in groups[1:]]
        results = run_group(groups[0])
        for f in futures:
            results += f.result()
        return results


def blocks(n: int, per_item: int = 1, target: int = BLOCK_ELEMENTS) -> list[slice]:
    """Slices covering range(n) of about `target` values each when an item holds `per_item`: a chain of
    element-wise passes over one block finds it still in the core's cache (and blocks run in parallel)."""
    step = max(1, target // max(1, per_item))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def cut(n: int, parts: int) -> list[slice]:
    """n items in `parts` contiguous slices of near-equal size (the first ones one longer)."""
    parts = max(1, min(parts, n))
    bounds = [n * k // parts for k in range(parts + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(parts)]


def aligned_cut(n: int, parts: int, align: int = ROW_ALIGN) -> list[slice]:
    """n rows in at most `parts` contiguous slices of near-equal size, cut only at multiples of `align`."""
    bounds = [0]
    for k in range(1, parts):
        edge = round(n * k / parts / align) * align
        if bounds[-1] < edge < n:
            bounds.append(edge)
    bounds.append(n)
    return [slice(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def row_blocks(n_rows: int, row_flops: int) -> list[slice]:
    """Blocks of a batch's rows for a recurrence whose step costs row_flops multiply-adds per row: as many as
    there are threads, each block's step at least MIN_STEP_FLOPS, cut at tile edges (else one block)."""
    for parts in range(get_threads(), 1, -1):
        rows = aligned_cut(n_rows, parts)
        if len(rows) > 1 and min(r.stop - r.start for r in rows) * row_flops >= MIN_STEP_FLOPS:
            return rows
    return [slice(0, n_rows)]


def over_rows(run: Callable[[slice], Any], n_rows: int, row_flops: int) -> list[Any]:
    """run(rows) for every block of row_blocks(n_rows, row_flops), in parallel; the results in row order."""
    return run_blocks(run, row_blocks(n_rows, row_flops))


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for 2-D a (M, K) and b (K, N), cut into row blocks of a when each is large enough."""
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = np.empty((M, N), dtype=np.result_type(a, b))
    rows = aligned_cut(M, min(get_threads(), M * N * K // MIN_BLOCK_FLOPS))
    if len(rows) < 2 or min(r.stop - r.start for r in rows) * N * K < MIN_BLOCK_FLOPS // 2:
        with blas_threads(1):
            return np.matmul(a, b, out=out)

    def block(r: slice) -> None:  # row blocks of out are contiguous: each block writes in place
        np.matmul(a[r], b, out=out[r])

    run_blocks(block, rows)
    return out


def elementwise(fn: Callable[..., Any], *arrays: np.ndarray) -> None:
    """fn(*pieces) for blocks of same-shaped arrays (flat views of C-contiguous ones), updating them in place."""
    size = arrays[0].size
    if size < 2 * MIN_BLOCK_VALUES or not all(a.flags.c_contiguous and a.shape == arrays[0].shape for a in arrays):
        fn(*arrays)  # one block: too small to cut, or strided (no flat view)
        return
    flat = [a.reshape(-1) for a in arrays]
    run_blocks(lambda i: fn(*(f[i] for f in flat)), cut(size, min(get_threads(), max(1, size // MIN_BLOCK_VALUES))))


def rows_apply(fn: Callable[[slice], Any], n_rows: int, row_size: int) -> list[Any]:
    """fn(rows) over blocks of the rows of a row-wise pass over n_rows × row_size values, in parallel."""
    return run_blocks(fn, cut(n_rows, min(get_threads(), max(1, n_rows * row_size // MIN_BLOCK_VALUES))))


def retain_freed_memory(limit: int = 256 << 20) -> None:
    """Let glibc keep freed blocks below `limit` bytes for reuse (no-op elsewhere, and after the first call).

    A training step allocates and frees many arrays of a few MB; glibc hands such memory back to the system
    and page-faults it in again at the next step (1,400–3,100 faults per Transformer step, ~10% of its time).
    """
    global _retained
    if _retained:
        return
    _retained = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_TRIM_THRESHOLD, limit)
        libc.mallopt(_M_MMAP_THRESHOLD, limit)
    except (OSError, AttributeError):  # not glibc: its allocator is left as it is
        pass
