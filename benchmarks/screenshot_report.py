"""Open a report.html in headless Chromium (Debian's `chromium`) and save a screenshot of it.

    python benchmarks/screenshot_report.py runs/quick/report/report.html /tmp/report.png [--height 4000]

Proves the report renders in a real browser with no network: Chromium runs with networking features off
and the page has no external resources (figures are data URIs).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def chromium() -> str | None:
    """The Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 4000, timeout: float = 120) -> Path:
    """Render `html` headless and write a PNG screenshot to `png`."""
    exe = chromium()
    if exe is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    png = png.resolve()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
               html.resolve().as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not png.is_file():
        raise SystemExit(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args()
    out = screenshot(args.html, args.png, args.width, args.height)
    print(f"screenshot: {out} ({out.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
