"""The one output-path check, made before any work starts: a bad --out fails in a second, not after training.

`check_output_path` walks the path: every existing component must be a directory (not `existing_file/m`),
an existing target must be of the right kind, and the nearest existing ancestor must accept a new entry —
tested by creating and removing a temporary directory there (the only honest test: permission bits say
nothing to root, and /proc or a read-only mount refuse only the real thing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lmbench.errors import LmbenchError


def _nearest_existing(path: Path, what: str, shown: Path) -> Path:
    """The closest ancestor of `path` (itself included) that exists; it must be a directory."""
    current = path
    while not os.path.lexists(current):
        if current.parent == current:
            break
        current = current.parent
    if not current.is_dir():
        raise LmbenchError(f"{what} {shown}: {current} is a file, not a directory")
    return current


def _probe(directory: Path, what: str, shown: Path) -> None:
    try:
        tmp = tempfile.mkdtemp(prefix=".lmbench-write-test-", dir=directory)
    except OSError as e:
        raise LmbenchError(f"{what} {shown}: cannot write in {directory}: {e.strerror or e}") from None
    shutil.rmtree(tmp, ignore_errors=True)


_TEMP_NAME_EXTRA = 32  # a temporary sibling is named ".NAME.tmp-PID-XXXXXXXX" (or ".NAME.swap-new")


def _check_name_lengths(path: Path, existing: Path, what: str) -> None:
    """Every name still to be created under `existing` must fit the file system, with room for the
    temporary sibling an atomic write uses (else the write would fail after the work, not before it)."""
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    try:
        new_parts = set(Path(os.path.abspath(path)).relative_to(os.path.abspath(existing)).parts)
    except ValueError:  # not lexically under it (symbolic links, ".."): check every name
        new_parts = set(path.parts)
    for part in sorted(new_parts | {path.name}):
        room = limit - _TEMP_NAME_EXTRA if part == path.name else limit  # directories on the way are made as named
        if len(os.fsencode(part)) > room:
            raise LmbenchError(f"{what}: the name {part[:40]!r}… ({len(os.fsencode(part))} bytes) is too long "
                               f"for the file system (at most {room} bytes here)")


def check_output_path(path: str | Path, kind: str = "dir", what: str = "--out", overwrite: bool = True) -> Path:
    """Check before any work that `path` can be written as a directory (kind="dir") or file (kind="file").

    overwrite=False refuses an existing file (the caller offers --force). Returns the path.
    """
    path = Path(path)
    if str(path) == "":
        raise LmbenchError(f"{what} is empty; give a path")
    if os.path.lexists(path):
        if kind == "dir" and not path.is_dir():
            raise LmbenchError(f"{what} {path} exists and is not a directory; give a directory")
        if kind == "file":
            if path.is_dir():
                raise LmbenchError(f"{what} {path} is a directory; give a file name")
            if not path.is_file():
                raise LmbenchError(f"{what} {path} is not a regular file (a device, FIFO or socket); "
                                   "refusing to replace it")
            if not overwrite:
                raise LmbenchError(f"{what} {path} exists; pass --force to overwrite it")
    parent = _nearest_existing(path.parent if path.parent != path else path, what, path)
    _check_name_lengths(path, parent, what)
    _probe(parent, what, path)  # files are written as a temporary sibling, then renamed into place
    if kind == "dir" and path.is_dir():
        _probe(path, what, path)
    return path


@contextlib.contextmanager
def removed_on_failure(path: str | Path) -> Iterator[Path]:
    """Remove `path` again if it did not exist before and the work inside fails (a full disk, an error):
    a report directory is either written whole or not at all."""
    path = Path(path)
    existed = os.path.lexists(path)
    try:
        yield path
    except BaseException:
        if not existed and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        raise
