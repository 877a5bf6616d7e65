"""Elementwise passes in cache-sized blocks, spread over the BLAS thread count.

A chain of NumPy ufuncs over a big array (GELU, LayerNorm, softmax) makes one trip to memory per operation.
Cut into blocks of about `BLOCK_ELEMENTS` values, every operation after the first finds its block in the
core's cache. NumPy releases the GIL inside ufuncs and matmuls, so the blocks can also run on several Python
threads; they use as many as BLAS does (`blas_threads`), so "1 thread" means one core for everything.

    run(fn, blocks(n, per_item))     # fn(slice) for slices covering range(n); the blocks write disjoint rows

The cut depends only on the sizes, never on the thread count, and each block writes its own rows: the
results are bit-identical whatever the number of threads (a reduction across blocks must add per-block
partial results in block order).

`retain_freed_memory()` serves the same passes: a training step allocates and frees many arrays of a few
MB; glibc's malloc hands such freed memory back to the system and page-faults it in again at the next
step (thousands of faults per step, ~10% of a Transformer step here). Raising its thresholds keeps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lmbench.models.neural.blas import blas_threads, get_blas_threads

BLOCK_ELEMENTS = 1 << 16  # 64k values (256 KB of float32): the few blocks of one pass fit in a 2 MB L2 cache

T = TypeVar("T")
_pool: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()
_retained = False
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def blocks(n: int, per_item: int = 1, target: int = BLOCK_ELEMENTS) -> list[slice]:
    """Consecutive slices covering range(n), each of about `target` values when an item holds `per_item`."""
    step = max(1, target // max(1, per_item))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _executor() -> ThreadPoolExecutor:
    """A process-wide pool (a new one after fork: the parent's worker threads do not exist in the child)."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                                     thread_name_prefix="lmbench-blocks"))
        return _pool[1]


def run(fn: Callable[[T], None], items: Sequence[T]) -> None:
    """fn(item) for every item, split into contiguous groups over the BLAS thread count (this thread too)."""
    threads = min(get_blas_threads() or 1, len(items))
    if threads <= 1:
        for item in items:
            fn(item)
        return

    def group(part: Sequence[T]) -> None:
        for item in part:
            fn(item)

    size = -(-len(items) // threads)
    parts = [items[i:i + size] for i in range(0, len(items), size)]
    with blas_threads(1):  # the blocks are the parallel work: a matmul inside one stays on its thread
        futures = [_executor().submit(group, part) for part in parts[1:]]
        try:
            group(parts[0])
        finally:
            for f in futures:
                f.result()


def retain_freed_memory(limit: int = 256 << 20) -> None:
    """Let glibc keep freed blocks below `limit` bytes for reuse (no-op elsewhere, and after the first call)."""
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
