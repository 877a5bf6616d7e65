"""Real corpora by name: `lmbench corpus fetch NAME` downloads, verifies and unpacks a recipe's corpus.

A recipe (corpora/recipes/NAME.toml, shipped inside the package) names the source URL (and mirrors), the
archive's expected SHA-256, the license, how to unpack it, which member is train/valid/test (or `all`, one
file split by line) and the tokenizer the corpus wants. A recipe whose checksum nobody has verified says
`sha256 = "unknown"`, and fetch refuses it: lmbench never installs data it cannot check.

Downloads resume (an HTTP Range request continues NAME.part), are verified before anything is unpacked,
and land in the user's data directory:
  $LMBENCH_DATA, else $XDG_DATA_HOME/lmbench (~/.local/share/lmbench); ~/Library/Application Support/lmbench
  on macOS; %LOCALAPPDATA%\\lmbench\\data on Windows.
A fetched corpus is DATA/corpora/NAME/ with train.txt, valid.txt, test.txt (or the one `all` file) and
recipe.json; `--corpus NAME` then reads it everywhere (a path of that name in the working directory wins).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lmbench.errors import LmbenchError
from lmbench.fileio import read_json, write_json_atomic

UNPACK = ("file", "zip", "tar", "tar.gz", "tar.bz2", "tar.xz")
SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
_CHUNK = 1 << 20
_TIMEOUT = 30


def data_dir() -> Path:
    """The user's lmbench data directory (corpora fetched by name live in its corpora/ folder)."""
    env = os.environ.get("LMBENCH_DATA")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "lmbench"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "lmbench" / "data"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "lmbench"


def corpora_root() -> Path:
    """The top-level corpora/ folder: inside the installed package (lmbench/corpora), or the source checkout's."""
    here = Path(__file__).resolve().parents[1]  # the lmbench package
    for candidate in (here / "corpora", here.parent / "corpora"):
        if any((candidate / part).is_dir() for part in ("recipes", "suites")):
            return candidate
    raise LmbenchError(f"lmbench's corpora/ folder is missing (looked in {here / 'corpora'} and "
                       f"{here.parent / 'corpora'}); reinstall lmbench")


@dataclass(frozen=True)
class Recipe:
    """How to fetch one corpus: where from, its checksum and license, how to unpack it, which file is which."""

    name: str
    description: str
    url: str
    sha256: str | None  # None: unknown, fetch refuses
    sha256_source: str
    license: str
    unpack: str
    files: dict[str, str]  # train/valid/test (or all) → member of the archive (the file itself for "file")
    tokenizer: str
    kind: str = "lm"  # "lm", or "parallel" (a tab-separated pairs file)
    mirrors: tuple[str, ...] = ()
    homepage: str = ""
    size: int | None = None
    path: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def archive_name(self) -> str:
        """The downloaded file's name (the URL's last part)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1] or f"{self.name}.download"

    def target_files(self) -> dict[str, str]:
        """split → file name inside the fetched corpus directory."""
        return {s: SPLIT_FILES.get(s, Path(m).name) for s, m in self.files.items()}


def parse_recipe(text: str, where: str) -> Recipe:
    """A recipe from its TOML text; a clear error naming `where` for anything missing or wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise LmbenchError(f"recipe {where}: not valid TOML ({e})") from None
    need = ("name", "url", "sha256", "license", "unpack", "files", "tokenizer")
    missing = [k for k in need if k not in raw]
    if missing:
        raise LmbenchError(f"recipe {where}: missing field(s) {', '.join(missing)}")
    known = {*need, "description", "sha256_source", "kind", "mirrors", "homepage", "size", "notes"}
    extra = sorted(set(raw) - known)
    if extra:
        raise LmbenchError(f"recipe {where}: unknown field(s) {', '.join(extra)}")
    sha = str(raw["sha256"]).lower()
    if sha != "unknown" and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise LmbenchError(f"recipe {where}: sha256 must be 64 hex digits or \"unknown\", not {raw['sha256']!r}")
    if raw["unpack"] not in UNPACK:
        raise LmbenchError(f"recipe {where}: unpack must be one of {', '.join(UNPACK)}")
    files = raw["files"]
    if not isinstance(files, dict) or not files or set(files) - {*SPLIT_FILES, "all"}:
        raise LmbenchError(f"recipe {where}: files maps train/valid/test (or all) to archive members")
    if ("all" in files) == ("train" in files):
        raise LmbenchError(f"recipe {where}: files needs train (with optional valid/test) or all, not both")
    if raw["unpack"] == "file" and len(files) != 1:
        raise LmbenchError(f"recipe {where}: unpack = \"file\" downloads one file: give one entry in files")
    if raw.get("kind", "lm") not in ("lm", "parallel"):
        raise LmbenchError(f"recipe {where}: kind must be lm or parallel")
    return Recipe(name=str(raw["name"]), description=str(raw.get("description", "")), url=str(raw["url"]),
                  sha256=None if sha == "unknown" else sha, sha256_source=str(raw.get("sha256_source", "")),
                  license=str(raw["license"]), unpack=raw["unpack"], files={k: str(v) for k, v in files.items()},
                  tokenizer=str(raw["tokenizer"]), kind=raw.get("kind", "lm"),
                  mirrors=tuple(str(m) for m in raw.get("mirrors", ())), homepage=str(raw.get("homepage", "")),
                  size=raw.get("size"), path=where, notes=tuple(str(n) for n in raw.get("notes", ())))


def recipes() -> dict[str, Recipe]:
    """Every recipe shipped with lmbench, by name."""
    found = {}
    for path in sorted((corpora_root() / "recipes").glob("*.toml")):
        recipe = parse_recipe(path.read_text(encoding="utf-8"), str(path))
        found[recipe.name] = recipe
    return found


def find_recipe(name: str) -> Recipe:
    """A recipe by name, or from a recipe file path; a clear error listing the known names otherwise."""
    if name.endswith(".toml") and Path(name).is_file():
        return parse_recipe(Path(name).read_text(encoding="utf-8"), name)
    known = recipes()
    if name not in known:
        raise LmbenchError(f"no corpus recipe named {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def corpus_dir(name: str) -> Path:
    """Where the corpus `name` is (or would be) after fetching it."""
    return data_dir() / "corpora" / name


def fetched(name: str) -> dict[str, Any] | None:
    """The recipe record of a fetched corpus (its recipe.json), or None when it has not been fetched."""
    record = corpus_dir(name) / "recipe.json"
    if not record.is_file():
        return None
    try:
        data = read_json(record, "fetched corpus record")
    except LmbenchError:
        return None
    return data if isinstance(data, dict) else None


def _looks_like_name(base: str) -> bool:
    return bool(base) and "/" not in base and "\\" not in base and not base.startswith(".") and ":" not in base


def _placed(recipe: Recipe) -> Path | None:
    """The corpus's files in its directory, fetched or put there by hand: the directory, or its one file."""
    targets = recipe.target_files()
    if "all" in targets:
        path = corpus_dir(recipe.name) / targets["all"]
        return path if path.is_file() else None
    return corpus_dir(recipe.name) if (corpus_dir(recipe.name) / targets["train"]).is_file() else None


def _named(base: str) -> tuple[Path | None, dict[str, Any] | Recipe] | None:
    """(local path or None, its record or recipe) for a corpus name; None when `base` is not one."""
    if not _looks_like_name(base) or Path(base).exists():
        return None
    record = fetched(base)
    if record is not None:
        targets = record.get("target_files", {})
        return (corpus_dir(base) / targets["all"] if "all" in targets else corpus_dir(base)), record
    try:
        recipe = recipes().get(base)
    except LmbenchError:
        return None
    return None if recipe is None else (_placed(recipe), recipe)


def resolve_named(base: str) -> Path | None:
    """The local path a corpus name stands for: the fetched directory (or its one file); None if not a name.

    A path that exists is never a name. A recipe name not on this machine is an error saying how to get it.
    """
    found = _named(base)
    if found is None:
        return None
    path, recipe = found
    if path is None:
        raise LmbenchError(not_fetched_message(recipe))  # type: ignore[arg-type]
    return path


def named_tokenizer(spec: str) -> str | None:
    """The tokenizer a named corpus's recipe asks for (None when the spec is not a corpus name)."""
    found = _named(spec.partition("?")[0])
    if found is None:
        return None
    source = found[1]
    return str(source.get("tokenizer") or "") or None if isinstance(source, dict) else source.tokenizer


def not_fetched_message(recipe: Recipe) -> str:
    """What to run, or download by hand and where to put it, for a corpus not on this machine."""
    dest = corpus_dir(recipe.name)
    manual = _manual(recipe, dest)
    if recipe.sha256 is None:
        return f"corpus {recipe.name!r} is not on this machine and its recipe has no verified checksum: {manual}"
    return (f"corpus {recipe.name!r} is not downloaded: run `lmbench corpus fetch {recipe.name}`, or {manual}")


def _manual(recipe: Recipe, dest: Path) -> str:
    files = ", ".join(f"{recipe.target_files()[s]} (from {m})" if recipe.unpack != "file" else
                      f"{recipe.target_files()[s]}" for s, m in recipe.files.items())
    where = f"download {recipe.url}" + (", unpack it" if recipe.unpack != "file" else "")
    return f"{where} and put {files} in {dest}"


# --- downloading -------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def download(url: str, part: Path) -> None:
    """Download `url` into `part`, continuing a partial file with an HTTP Range request."""
    import urllib.error  # only a download needs them (a lazy import keeps `lmbench train` starting fast)
    import urllib.request

    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lmbench corpus fetch"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT)  # noqa: S310 (recipes name http(s) URLs)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise
    with response:
        mode = "ab" if have and response.status == 206 else "wb"  # a server without ranges sends it all again
        with open(part, mode) as f:
            shutil.copyfileobj(response, f, _CHUNK)


def fetch(name: str, force: bool = False, log: Any = None) -> Path:
    """Download, verify and unpack the corpus `name` (a recipe name or file) into the data directory."""
    import urllib.error

    recipe = find_recipe(name)
    dest = corpus_dir(recipe.name)
    if fetched(recipe.name) is not None and not force:
        return dest
    if recipe.sha256 is None:
        raise LmbenchError(f"recipe {recipe.name!r} has no verified SHA-256 ({recipe.sha256_source or 'unknown'}); "
                           f"lmbench does not install unverified data: {_manual(recipe, dest)}")
    downloads = data_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / recipe.archive_name
    part = archive.with_name(archive.name + ".part")
    if not archive.is_file():
        errors = []
        for url in (recipe.url, *recipe.mirrors):
            try:
                if log:
                    log(f"downloading {url} → {part}")
                download(url, part)
                break
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise LmbenchError(f"cannot download corpus {recipe.name!r} ({'; '.join(errors)}); offline? "
                               f"download {recipe.url} yourself, save it as {archive} and run "
                               f"`lmbench corpus fetch {recipe.name}` again (it is verified, then unpacked)")
        part.replace(archive)
    digest = _sha256(archive)
    if digest != recipe.sha256:
        archive.unlink(missing_ok=True)
        raise LmbenchError(f"{recipe.url}: SHA-256 {digest} is not the recipe's {recipe.sha256}; "
                           "the download was deleted and nothing was installed")
    _install(recipe, archive, dest)
    archive.unlink(missing_ok=True)
    return dest


def _install(recipe: Recipe, archive: Path, dest: Path) -> None:
    """Unpack the recipe's files from a verified archive into `dest`, atomically (a temporary directory renamed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.name}.tmp-", dir=dest.parent))
    try:
        targets = recipe.target_files()
        for split, member in recipe.files.items():
            with _open_member(recipe, archive, member) as src, open(tmp / targets[split], "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        write_json_atomic(tmp / "recipe.json", {
            "name": recipe.name, "url": recipe.url, "sha256": recipe.sha256, "license": recipe.license,
            "tokenizer": recipe.tokenizer, "kind": recipe.kind, "files": recipe.files, "target_files": targets,
            "recipe": recipe.path})
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _norm(name: str) -> str:
    return name.removeprefix("./")


@contextlib.contextmanager
def _open_member(recipe: Recipe, archive: Path, member: str) -> Iterator[IO[bytes]]:
    """A binary stream of one member (only named members are read: no path in an archive is trusted)."""
    missing = LmbenchError(f"{archive.name} has no member {member} (recipe {recipe.path})")
    if recipe.unpack == "file":
        with open(archive, "rb") as f:
            yield f
    elif recipe.unpack == "zip":
        with zipfile.ZipFile(archive) as zf:
            names = {_norm(n): n for n in zf.namelist()}
            if _norm(member) not in names:
                raise missing
            with zf.open(names[_norm(member)]) as f:
                yield f
    else:
        import tarfile

        with tarfile.open(archive, "r:*") as tf:
            info = next((i for i in tf if _norm(i.name) == _norm(member) and i.isfile()), None)
            stream = tf.extractfile(info) if info is not None else None
            if stream is None:
                raise missing
            with stream:
                yield stream
