"""The report renders in a real browser: headless Chromium screenshots report.html (skipped without chromium)."""

from __future__ import annotations

import importlib.util
import shutil
import struct

import pytest
from conftest import REPO

from lmbench.bench.runner import run_suite
from lmbench.bench.suite import parse_suite
from lmbench.report.build import write_report

SUITE = """
name = "browser"
metrics = ["perplexity", "speed"]
[[corpus]]
spec = "synthetic:grammar?sentences=100"
[[model]]
name = "uniform"
[[model]]
name = "unigram"
"""


def _screenshot_module():
    spec = importlib.util.spec_from_file_location("screenshot_report", REPO / "benchmarks" / "screenshot_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    run_suite(parse_suite(SUITE, "browser.toml"), tmp_path / "run", progress=False)
    html = write_report(tmp_path / "run")
    png = _screenshot_module().screenshot(html, tmp_path / "shot.png", width=1000, height=1400)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk: the page was drawn at the window size
    assert (width, height) == (1000, 1400)
    assert len(data) > 20_000  # a blank page compresses to a few kB; figures and tables do not
