"""Control the number of BLAS threads NumPy uses, without a dependency (OpenBLAS via ctypes).

Why: a recurrent loop makes many tiny (B, H)×(H, G) matmuls. A threaded OpenBLAS splits each one across
its threads, and the synchronisation costs far more than the multiply — on a busy 2-core machine a
(20, 200)×(200, 800) product took 3–10 ms threaded and 70 µs single-threaded. So the cells run their
per-step loops single-threaded (`blas_threads(1)`), while the large matmuls elsewhere keep NumPy's
default. When the BLAS library is not an OpenBLAS we can find, every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator

import numpy as np

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")


def _find_openblas() -> tuple[object, object] | None:
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    candidates = glob.glob(os.path.join(libdir, "*openblas*.so*")) + glob.glob(os.path.join(libdir, "*openblas*.dll"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None


_API = _find_openblas()


def get_blas_threads() -> int | None:
    """The current number of OpenBLAS threads (None when unknown)."""
    return int(_API[1]()) if _API else None  # type: ignore[index,operator]


def set_blas_threads(n: int) -> None:
    """Set the number of OpenBLAS threads for the whole process (no-op without OpenBLAS)."""
    if _API:
        _API[0](int(n))  # type: ignore[index,operator]


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Run a block with `n` BLAS threads (None: as they are), then restore the previous number."""
    before = get_blas_threads()
    if n is None or before is None or before == n:
        yield
        return
    set_blas_threads(n)
    try:
        yield
    finally:
        set_blas_threads(before)
