"""Atomic writes and safe, pickle-free checkpoint files (JSON + .npz)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
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
from lmbench.resources import check_memory

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
    target = Path(os.path.abspath(target))  # "." or "m/.." name their directory; "/" has no siblings to recover
    if not target.name:
        return
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


def _first_missing(directory: Path) -> Path | None:
    """The outermost ancestor of `directory` (itself included) that does not exist yet, if any."""
    missing = None
    while not os.path.lexists(directory) and directory.parent != directory:
        missing, directory = directory, directory.parent
    return missing


def _remove_empty_parents(directory: Path, created: Path | None) -> None:
    """Undo `mkdir(parents=True)` after a failed write: remove the directories it made, if still empty."""
    if created is None:
        return
    while True:
        try:
            directory.rmdir()
        except OSError:
            return
        if directory == created:
            return
        directory = directory.parent


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it onto `target` only if the block succeeds.

    Files get the mode 0666 and directories 0777, less the umask (as `open` and `mkdir` would give them).
    """
    target = Path(os.path.abspath(target))  # "." or "m/.." name their directory: write beside it, by its name
    if not target.name:
        raise LmbenchError(f"cannot write {target}: give a file or directory name")
    created = _first_missing(target.parent)
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
        _remove_empty_parents(target.parent, created)
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


_NUMERIC_KINDS = "biufc"  # bool, signed, unsigned, float, complex: never objects, structs or strings
_MAX_NPY_HEADER = 1 << 16  # far above any header np.save writes
_CHUNK = 1 << 24


def _declared(path: Path, name: str, meta: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    """An array's dtype, shape and size in bytes as its manifest entry declares them (checked)."""
    where = f"checkpoint {path}: array {name!r}"
    if not isinstance(meta, Mapping) or not isinstance(meta.get("dtype"), str) or not isinstance(
            meta.get("shape"), list) or not isinstance(meta.get("sha256"), str):
        raise LmbenchError(f"{where}: its manifest entry needs shape (list), dtype and sha256 (strings)")
    try:
        dtype = np.dtype(meta["dtype"])
    except (TypeError, ValueError, SyntaxError):
        raise LmbenchError(f"{where}: unknown dtype {meta['dtype']!r}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise LmbenchError(f"{where}: dtype {meta['dtype']!r} is not numeric; checkpoints hold numeric arrays only")
    shape = meta["shape"]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape) or len(shape) > 32:
        raise LmbenchError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    return dtype, tuple(shape), math.prod(shape) * dtype.itemsize


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, dtype: np.dtype,
                 shape: tuple[int, ...], nbytes: int) -> np.ndarray:
    """Read one .npy member whose header must declare exactly `dtype` and `shape`; read no more than that."""
    # The zip's own size field bounds what decompression may produce: a bomb is refused here, unread.
    if not nbytes <= info.file_size <= nbytes + _MAX_NPY_HEADER:
        raise LmbenchError(f"{where}: the archive stores {info.file_size:,} bytes, the manifest declares "
                           f"{nbytes:,} bytes of data")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise LmbenchError(f"{where}: unsupported .npy format version {version}")
        got_shape, fortran, got_dtype = read_header(f, max_header_size=_MAX_NPY_HEADER)
        if got_dtype != dtype or tuple(got_shape) != shape:
            raise LmbenchError(f"{where}: the file holds {got_dtype.str} {list(got_shape)}, the manifest declares "
                               f"{dtype.str} {list(shape)}")
        if info.file_size - f.tell() != nbytes:
            raise LmbenchError(f"{where}: {info.file_size - f.tell():,} bytes of data where {nbytes:,} belong")
        flat = np.empty(nbytes // dtype.itemsize if dtype.itemsize else 0, dtype=dtype)
        view = memoryview(flat).cast("B") if nbytes else memoryview(b"")
        done = 0
        while done < nbytes:
            n = f.readinto(view[done:done + _CHUNK])
            if not n:
                raise LmbenchError(f"{where}: truncated ({done:,} of {nbytes:,} bytes)")
            done += n
        f.read(1)  # reaching the end makes zipfile check the CRC
    return flat.reshape(shape, order="F" if fortran else "C")


def load_arrays(path: str | Path, manifest: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Load an .npz written by save_arrays, bounded by its manifest: names, dtypes, shapes and sizes are
    checked against the manifest (and the machine's memory) before any data is read, then every digest."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise LmbenchError(f"checkpoint arrays missing: {path}")
    check_member_file(path, "checkpoint arrays")
    if not isinstance(manifest, Mapping):
        raise LmbenchError(f"checkpoint {path}: the array manifest is not a mapping")
    declared = {name: _declared(path, name, meta) for name, meta in manifest.items()}
    check_memory(sum(d[2] for d in declared.values()), f"checkpoint {path} (the arrays its manifest declares)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in zf.infolist():
                name = info.filename.removesuffix(".npy")
                if name in members:
                    raise LmbenchError(f"checkpoint {path} holds array {name!r} twice")
                members[name] = info
            missing = set(declared) - set(members)
            if missing:
                raise LmbenchError(f"checkpoint {path} lacks array {', '.join(map(repr, sorted(missing)))}")
            extra = set(members) - set(declared)
            if extra:
                raise LmbenchError(f"checkpoint {path} has unexpected arrays: {', '.join(sorted(extra))}")
            for name, (dtype, shape, nbytes) in declared.items():
                where = f"checkpoint {path}: array {name!r}"
                arrays[name] = _read_member(zf, members[name], where, dtype, shape, nbytes)
                if array_digest(arrays[name]) != manifest[name]["sha256"]:
                    raise LmbenchError(f"{where} does not match its recorded digest (tampered?)")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        raise LmbenchError(f"checkpoint arrays unreadable: {path}: {e}") from None
    return arrays
