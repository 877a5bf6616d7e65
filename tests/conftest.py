"""Shared fixtures: the CLI as a subprocess, and ../shared/corpora when it is present."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPORA = SHARED / "corpora"

# Encoded corpora are cached on disk: the tests (and the CLI they start) use a throw-away cache.
_TEST_CACHE = tempfile.mkdtemp(prefix="lmbench-test-cache-")
os.environ["LMBENCH_CACHE"] = _TEST_CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's corpus cache."""
    shutil.rmtree(_TEST_CACHE, ignore_errors=True)


@pytest.fixture
def shared_corpora() -> Path:
    """../shared/corpora, or skip the test where it is absent."""
    if not (CORPORA / "ptb-v" / "train.txt").is_file():
        pytest.skip("../shared/corpora is not present")
    return CORPORA


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m lmbench ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "lmbench", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
    )


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr naming the problem, no traceback, nothing on stdout."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
