"""What the comparisons against PyTorch share (imported by the benchmark scripts beside it; not a benchmark)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

KEEP_BLAS_OPTION = "--blas-as-set"
THREAD_POOL_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def prepare_process(max_threads: int, argv: list[str]) -> None:
    """Before NumPy and torch load: size their thread pools for the largest count a benchmark tries (each round
    then sets its own), and run NumPy at its best (numpy_at_its_best), before torch's slow import."""
    for var in THREAD_POOL_VARIABLES:
        os.environ[var] = str(max_threads)
    numpy_at_its_best(argv)


def numpy_at_its_best(argv: list[str]) -> None:
    """Run this script again without OPENBLAS_CORETYPE when it forces kernels that leave the CPU's AVX-512
    unused, saying so on stderr: each framework is measured at its best setting (KEEP_BLAS_OPTION keeps it)."""
    # Here, not above: importing lmbench loads NumPy, which must see the thread-pool variables first.
    from lmbench.models.neural.blas import AVX512_KERNELS, CORETYPE_VARIABLE, cpu_has_avx512

    forced = os.environ.get(CORETYPE_VARIABLE)
    if not forced or forced in AVX512_KERNELS or KEEP_BLAS_OPTION in argv:
        return
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            if not cpu_has_avx512(f.read()):
                return
    except OSError:
        return
    print(f"{CORETYPE_VARIABLE}={forced} leaves this CPU's AVX-512 unused: running NumPy with OpenBLAS's own choice "
          f"of kernels instead ({KEEP_BLAS_OPTION} keeps the environment's)", file=sys.stderr, flush=True)
    env = {k: v for k, v in os.environ.items() if k != CORETYPE_VARIABLE}
    os.execve(sys.executable, [sys.executable, *argv], env)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count for a block."""
    import torch  # here, not above: a NumPy-only child process (peak-memory runs) must not load torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
