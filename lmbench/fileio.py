"""Atomic writes and safe, pickle-free checkpoint files (JSON + .npz)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and target.exists():
            # Swap directories: move the old one aside first so a crash never leaves neither.
            old = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
            old.rmdir()
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file so that readers never see half of it."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write a JSON file atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into one clear LmbenchError."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LmbenchError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LmbenchError(f"{what} {path} is not valid JSON: {e}") from None


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
