"""Atomic writes and safe, pickle-free checkpoint files (JSON + .npz)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError

_STARTED = time.time()  # temporaries older than this process, whose writer is gone, are stale


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def _swap_names(target: Path) -> tuple[Path, Path]:
    """The fixed siblings of a directory swap: the complete new directory, and the old one moved aside."""
    return target.with_name(f".{target.name}.swap-new"), target.with_name(f".{target.name}.swap-old")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can ask about: leave its files alone
    return True


def recover_path(target: str | Path) -> None:
    """Finish or roll back a directory swap a crash interrupted, and delete stale temporaries of `target`.

    A swap renames (1) the complete temporary to `.NAME.swap-new`, (2) the old target to `.NAME.swap-old`,
    (3) `.swap-new` to the target, then deletes `.swap-old`. After a crash at any point, a complete new
    version (`.swap-new`) is moved into place; without one, the old version is put back.
    """
    target = Path(target)
    new, old = _swap_names(target)
    if new.is_dir():
        if target.is_dir() and not target.is_symlink():
            if old.exists():
                _remove(old)
            target.rename(old)  # crashed between steps 1 and 2
        if not target.exists():
            new.rename(target)
    if old.exists():
        if target.exists() or target.is_symlink():
            _remove(old)  # the swap was done; only the clean-up was interrupted
        else:
            old.rename(target)  # no new version: roll back
    with contextlib.suppress(OSError):
        for tmp in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
            pid = tmp.name[len(target.name) + 6:].split("-", 1)[0]
            owner_alive = pid.isdigit() and pid.isascii() and _pid_alive(int(pid))
            if not owner_alive and tmp.lstat().st_mtime < _STARTED:
                _remove(tmp)


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it onto `target` only if the block succeeds.

    Files get the mode 0666 and directories 0777, less the umask (as `open` and `mkdir` would give them).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_path(target)
    prefix = f".{target.name}.tmp-{os.getpid()}-"  # the writer's pid tells others when it is stale
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        tmp.chmod(0o777 & ~current_umask())
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o666 & ~current_umask())
    new, old = _swap_names(target)
    try:
        yield tmp
        if directory and (target.exists() or target.is_symlink()):
            # Swap directories through fixed names so that recover_path can finish or undo a crashed swap.
            tmp.rename(new)
            target.rename(old)
            new.rename(target)
            _remove(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        if directory and old.exists() and not (target.exists() or target.is_symlink()):
            old.rename(target)  # the block failed mid-swap: the target stays as it was
        for leftover in (tmp, new) if directory else (tmp,):
            _remove(leftover)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file so that readers never see half of it."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write a JSON file atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def check_member_file(path: str | Path, what: str) -> Path:
    """`path` if it is a regular file that stays in its directory: a symlink may not lead out of it."""
    path = Path(path)
    if path.is_symlink():
        try:
            outside = not path.resolve(strict=False).is_relative_to(path.parent.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            outside = True
        if outside:
            raise LmbenchError(f"{what} {path} is a symbolic link out of its directory; refusing to follow it")
    if not path.exists():
        raise LmbenchError(f"{what} not found: {path}")
    if not path.is_file():
        raise LmbenchError(f"{what} {path} is not a regular file")
    return path


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into one clear LmbenchError."""
    path = check_member_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LmbenchError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise LmbenchError(f"{what} {path} is not valid JSON: {e}") from None
    except OSError as e:
        raise LmbenchError(f"{what} {path} is unreadable: {e.strerror or e}") from None


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes: detects a tampered checkpoint array."""
    h = hashlib.sha256()
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Save arrays to an .npz (no pickle) and return a manifest of shapes, dtypes and digests."""
    manifest = {}
    for name, a in arrays.items():
        if a.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; checkpoints hold numeric arrays only")
        manifest[name] = {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": array_digest(a)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return manifest


def load_arrays(path: str | Path, manifest: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Load an .npz written by save_arrays and check every array against its manifest entry."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise LmbenchError(f"checkpoint arrays missing: {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise LmbenchError(f"checkpoint arrays unreadable: {path}: {e}") from None
    for name, meta in manifest.items():
        if name not in arrays:
            raise LmbenchError(f"checkpoint {path} lacks array {name!r}")
        if array_digest(arrays[name]) != meta["sha256"]:
            raise LmbenchError(f"checkpoint {path}: array {name!r} does not match its recorded digest (tampered?)")
    extra = set(arrays) - set(manifest)
    if extra:
        raise LmbenchError(f"checkpoint {path} has unexpected arrays: {', '.join(sorted(extra))}")
    return arrays
