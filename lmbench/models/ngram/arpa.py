"""ARPA back-off files: read them into per-order arrays, write them from the same arrays.

    \\data\\
    ngram 1=6024
    ...
    \\1-grams:
    -4.4864597<TAB><unk><TAB>0
    ...
    \\end\\

Values are log10 probabilities and log10 back-off weights; an n-gram of the highest order has no back-off.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.fileio import atomic_path
from lmbench.text.files import nul_error, require_regular_file

LN10 = math.log(10.0)
ARPA_ZERO = -99.0  # what ARPA writers print for log10 0
_COUNT_RE = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)$")
_SECTION_RE = re.compile(r"^\\(\d+)-grams:$")


@dataclass
class ArpaSection:
    """The entries of one order: words (as strings), log10 probabilities, log10 back-offs."""

    order: int
    words: list[tuple[str, ...]]
    log10_prob: np.ndarray
    log10_backoff: np.ndarray
    lines: list[int] | None = None  # line number of each entry in the file it was read from


def _lines(f: TextIO) -> Iterator[tuple[int, str]]:
    for lineno, line in enumerate(f, 1):
        if "\0" in line:
            raise nul_error(f.name, lineno)
        yield lineno, line.strip()


def _number(text: str, path: Path, lineno: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LmbenchError(f"{path}:{lineno}: malformed ARPA file: {what} {text!r} is not a number") from None
    if math.isnan(value) or value == math.inf:  # −inf is log 0 (some writers print it instead of -99)
        raise LmbenchError(f"{path}:{lineno}: malformed ARPA file: {what} {text!r} is not a finite log10 value")
    return value


def read_arpa(path: str | Path) -> list[ArpaSection]:
    """Parse an ARPA file; any malformed line is reported with its line number."""
    path = Path(path)
    if not path.exists():
        raise LmbenchError(f"ARPA file not found: {path}")
    require_regular_file(path, "ARPA file")  # never a device or FIFO: it could be endless
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise LmbenchError(f"{path}: cannot read the ARPA file: {e.strerror or e}") from None
    with f:
        try:
            return _parse(_lines(f), path)
        except UnicodeDecodeError as e:
            raise LmbenchError(f"{path}: malformed ARPA file: not UTF-8 ({e})") from None


def _parse(lines: Iterator[tuple[int, str]], path: Path) -> list[ArpaSection]:
    def bad(lineno: int, why: str) -> LmbenchError:
        return LmbenchError(f"{path}:{lineno}: malformed ARPA file: {why}")

    # Header: anything before \data\ is ignored (SRILM and KenLM write nothing there, others comments).
    last = 0
    for last, line in lines:  # noqa: B007 (the last line number is reported when \data\ is missing)
        if line == "\\data\\":
            break
    else:
        raise bad(max(last, 1), "no \\data\\ header line")
    declared: dict[int, int] = {}
    section_line = 0
    lineno = last
    for lineno, line in lines:
        if not line:
            continue
        m = _COUNT_RE.match(line)
        if m:
            declared[int(m.group(1))] = int(m.group(2))
            continue
        if _SECTION_RE.match(line):
            section_line = lineno
            break
        raise bad(lineno, f"expected 'ngram N=COUNT' or '\\1-grams:', got {line[:60]!r}")
    if not section_line:
        raise bad(lineno, "the file ends before the \\1-grams: section")
    if not declared:
        raise bad(lineno, "the \\data\\ section declares no 'ngram N=COUNT' lines")
    orders = sorted(declared)
    if orders != list(range(1, len(orders) + 1)):
        raise bad(lineno, f"the \\data\\ section declares orders {orders}; expected 1..N")
    top = orders[-1]
    sections: list[ArpaSection] = []
    n = int(_SECTION_RE.match(line).group(1))
    while True:
        if n != len(sections) + 1 or n > top:
            raise bad(section_line, f"expected the \\{len(sections) + 1}-grams: section, got \\{n}-grams:")
        words: list[tuple[str, ...]] = []
        probs: list[float] = []
        backoffs: list[float] = []
        linenos: list[int] = []
        next_header = None
        for lineno, line in lines:
            if not line:
                continue
            if line.startswith("\\"):
                next_header = (lineno, line)
                break
            parts = line.split()
            if len(parts) not in (n + 1, n + 2) or (n == top and len(parts) == n + 2):
                allowed = f"{n + 1}" if n == top else f"{n + 1} or {n + 2}"
                raise bad(lineno, f"a {n}-gram entry needs {allowed} fields (log10 prob, {n} words"
                          f"{'' if n == top else ', optional back-off'}), got {len(parts)}: {line[:60]!r}")
            probs.append(_number(parts[0], path, lineno, "log10 probability"))
            words.append(tuple(parts[1 : n + 1]))
            linenos.append(lineno)
            backoffs.append(_number(parts[n + 1], path, lineno, "back-off") if len(parts) == n + 2 else 0.0)
        if len(words) != declared[n]:
            at = next_header[0] if next_header else lineno
            raise bad(at, f"the \\data\\ section declares {declared[n]} {n}-grams, the file has {len(words)}")
        p = np.asarray(probs, dtype=np.float64)
        if (p > 1e-6).any():
            raise bad(section_line, f"a {n}-gram has a log10 probability above 0")
        sections.append(ArpaSection(n, words, p, np.asarray(backoffs, dtype=np.float64), linenos))
        if next_header is None:
            raise bad(lineno, "the file ends without \\end\\")
        section_line, header = next_header
        if header == "\\end\\":
            break
        m = _SECTION_RE.match(header)
        if not m:
            raise bad(section_line, f"expected '\\{n + 1}-grams:' or '\\end\\', got {header[:60]!r}")
        n = int(m.group(1))
    if len(sections) != top:
        raise bad(section_line, f"\\end\\ after {len(sections)} sections; the header declares {top}")
    return sections


def _fmt(values: np.ndarray) -> list[str]:
    """log10 values as short decimal strings; log 0 as ARPA's -99."""
    v = np.where(np.isfinite(values), values, ARPA_ZERO)
    v = np.where(v == 0.0, 0.0, v)  # no "-0"
    return [f"{x:.7g}" for x in v.tolist()]


def write_arpa(path: str | Path, sections: list[ArpaSection]) -> None:
    """Write sections (log10 values) as an ARPA file, atomically."""
    top = len(sections)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for s in sections:
            f.write(f"ngram {s.order}={len(s.words)}\n")
        for s in sections:
            f.write(f"\n\\{s.order}-grams:\n")
            grams = [" ".join(w) for w in s.words]
            probs = _fmt(s.log10_prob)
            if s.order == top:
                f.writelines(f"{p}\t{g}\n" for p, g in zip(probs, grams))
            else:
                f.writelines(f"{p}\t{g}\t{b}\n" for p, g, b in zip(probs, grams, _fmt(s.log10_backoff)))
        f.write("\n\\end\\\n")
