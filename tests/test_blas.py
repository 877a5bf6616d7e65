"""What lmbench says about NumPy's BLAS (models/neural/blas.py): the AVX-512 check and the one-line description
the run manifest and the report carry. Oracle: OpenBLAS itself, in a fresh process whose kernels the test sets."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from lmbench.models.neural.blas import cpu_flags, cpu_has_avx512, describe_blas

ZEN5 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n"
        "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu\n")
HASWELL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse sse2 avx avx2 fma\n"


def test_avx512_read_from_the_first_flags_line():
    assert cpu_has_avx512(ZEN5)
    assert not cpu_has_avx512(HASWELL)
    assert not cpu_has_avx512(ZEN5.replace(" avx512bw", ""))  # every subset the SkylakeX kernels use
    assert not cpu_has_avx512("")


def _describe(tmp_path: object, cpuinfo: str, coretype: str | None) -> str:
    """describe_blas() in a fresh process (OpenBLAS reads OPENBLAS_CORETYPE once, when NumPy loads it)."""
    path = os.path.join(str(tmp_path), "cpuinfo")
    with open(path, "w", encoding="utf-8") as f:
        f.write(cpuinfo)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    code = f"from lmbench.models.neural.blas import describe_blas; print(describe_blas({path!r}))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def _runs_haswell_kernels() -> bool:
    """NumPy's OpenBLAS on an x86-64 CPU with AVX2 and FMA, which its Haswell kernels need."""
    if platform.machine() not in ("x86_64", "AMD64") or not describe_blas().startswith("OpenBLAS"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return {"avx2", "fma"} <= cpu_flags(f.read())
    except OSError:
        return False


@pytest.mark.skipif(not _runs_haswell_kernels(), reason="needs NumPy's OpenBLAS on an x86-64 CPU with AVX2")
def test_description_names_the_kernels_and_who_chose_them(tmp_path: object):
    forced = _describe(tmp_path, ZEN5, "Haswell")
    assert forced.startswith("OpenBLAS 0.")
    assert "Haswell kernels (OPENBLAS_CORETYPE=Haswell set in the environment" in forced
    assert "this CPU has AVX-512, which Haswell kernels leave unused" in forced
    assert "AVX-512" not in _describe(tmp_path, HASWELL, "Haswell")  # nothing to gain: no hint
    own = _describe(tmp_path, ZEN5, None)
    assert own.endswith("kernels (OpenBLAS's choice for this CPU)") and "OPENBLAS_CORETYPE" not in own
