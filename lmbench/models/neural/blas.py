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
_CORENAMES = ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename")
_CONFIGS = ("scipy_openblas_get_config64_", "openblas_get_config64_", "openblas_get_config")
CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"  # forces OpenBLAS's kernels (its own choice fits the CPU it finds)
AVX512 = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
AVX512_KERNELS = ("SkylakeX", "Cooperlake", "SapphireRapids")  # OpenBLAS's x86 kernel sets that use AVX-512


def _openblas_libraries() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries bundled with NumPy that load."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    candidates = glob.glob(os.path.join(libdir, "*openblas*.so*")) + glob.glob(os.path.join(libdir, "*openblas*.dll"))
    libraries = []
    for path in candidates:
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libraries


def _string_function(lib: ctypes.CDLL, names: tuple[str, ...]) -> str | None:
    """The string returned by the first of `names` that lib exports (None when none is)."""
    function = next((getattr(lib, n) for n in names if hasattr(lib, n)), None)
    if function is None:
        return None
    function.argtypes, function.restype = [], ctypes.c_char_p
    value = function()
    return value.decode("ascii", "replace") if value else None


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The instruction-set flags of the first CPU in the text of /proc/cpuinfo."""
    return frozenset(next((line.partition(":")[2].split() for line in cpuinfo.splitlines()
                           if line.startswith("flags")), []))


def cpu_has_avx512(cpuinfo: str) -> bool:
    """Whether the CPU described by the text of /proc/cpuinfo has the AVX-512 subsets OpenBLAS's SkylakeX kernels
    use."""
    return cpu_flags(cpuinfo).issuperset(AVX512)


def describe_blas(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """One line on NumPy's BLAS: OpenBLAS's version, the kernels it runs, and who chose them."""
    for lib in _openblas_libraries():
        config = _string_function(lib, _CONFIGS)
        if config is None:
            continue
        version = config.split()[1] if len(config.split()) > 1 else "?"
        kernels = _string_function(lib, _CORENAMES) or "unknown"
        forced = os.environ.get(CORETYPE_VARIABLE)
        if not forced:
            return f"OpenBLAS {version}, {kernels} kernels (OpenBLAS's choice for this CPU)"
        line = f"OpenBLAS {version}, {kernels} kernels ({CORETYPE_VARIABLE}={forced} set in the environment"
        try:
            with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
                avx512 = cpu_has_avx512(f.read())
        except OSError:
            avx512 = False
        if avx512 and kernels not in AVX512_KERNELS:
            line += (f"; this CPU has AVX-512, which {kernels} kernels leave unused: OpenBLAS picks kernels that "
                     f"use it when {CORETYPE_VARIABLE} is unset")
        return line + ")"
    return "not an OpenBLAS lmbench can query"


def _find_openblas() -> tuple[object, object] | None:
    for lib in _openblas_libraries():
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
