"""The one reader for text files lmbench is handed (corpora, suites, pairs, ARPA files).

It refuses what is not a regular file (a device such as /dev/zero, a FIFO, a socket) before opening it,
reads in bounded chunks and stops at the first NUL byte (binary data, named by its line), so neither an
endless device nor a multi-gigabyte binary file is ever read whole.
"""

from __future__ import annotations

import stat
from pathlib import Path

from lmbench.errors import LmbenchError
from lmbench.resources import check_memory

_CHUNK = 1 << 20


def require_regular_file(path: str | Path, what: str = "text file") -> Path:
    """The path, when it names a regular file (symlinks followed); a clear error otherwise."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LmbenchError(f"no such file or directory: {path}") from None
    except OSError as e:
        raise LmbenchError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LmbenchError(f"{path} is a directory, expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise LmbenchError(f"{path} is not a regular file (a device, FIFO or socket); lmbench reads a {what} "
                           "only from a regular file")
    check_memory(st.st_size, f"reading {path}")
    return path


def nul_error(path: str | Path, line: int) -> LmbenchError:
    """The error for binary content: the NUL byte's line is named."""
    return LmbenchError(f"{path}:{line}: NUL byte: this is binary data, not text; lmbench reads UTF-8 text only")


def read_bytes_checked(path: str | Path, what: str = "text file") -> bytes:
    """A regular file's bytes, read in chunks and refused at the first NUL byte."""
    path = require_regular_file(path, what)
    data = bytearray()
    line = 1
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                nul = chunk.find(b"\0")
                if nul >= 0:
                    raise nul_error(path, line + chunk.count(b"\n", 0, nul))
                line += chunk.count(b"\n")
                data += chunk
    except OSError as e:
        raise LmbenchError(f"{path}: cannot read the {what}: {e.strerror or e}") from None
    return bytes(data)


def read_text(path: str | Path, what: str = "text file") -> str:
    """A regular file's UTF-8 text (a BOM dropped); the first bad byte or NUL byte is named with its line."""
    data = read_bytes_checked(path, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LmbenchError(
            f"{path}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x}; lmbench reads UTF-8 text only"
        ) from None
