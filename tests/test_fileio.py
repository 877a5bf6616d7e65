"""Checkpoint files: modes that respect the umask, and directory swaps that survive a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from lmbench import LmbenchError, Tokenizer, fileio, load_corpus, load_model, train


def _corpus(tmp_path: Path, name: str, text: str):
    d = tmp_path / name
    d.mkdir()
    (d / "train.txt").write_text(text, encoding="utf-8")
    return load_corpus(str(d), Tokenizer("whitespace"))


def _modes(root: Path) -> set[tuple[str, int]]:
    return {("d" if p.is_dir() else "f", stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=["022", "027", "077"])
def test_files_and_directories_respect_the_umask(tmp_path, umask):
    corpora = _corpus(tmp_path, "c", "a b\nb c\n")
    before = os.umask(umask)
    try:
        train("unigram", corpora).model.save(tmp_path / "m")
        fileio.write_text_atomic(tmp_path / "results.csv", "x\n")
    finally:
        os.umask(before)
    # What open() and mkdir() give: 0666 and 0777 less the umask.
    assert _modes(tmp_path / "m") == {("d", 0o777 & ~umask), ("f", 0o666 & ~umask)}
    assert stat.S_IMODE((tmp_path / "results.csv").stat().st_mode) == 0o666 & ~umask


_SAVE_AND_DIE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from lmbench import Tokenizer, load_corpus, train
    corpus, target, kill_after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    model = train("unigram", load_corpus(corpus, Tokenizer("whitespace"))).model
    real_rename, real_rmtree, count = os.rename, __import__("shutil").rmtree, [0]
    def step():
        count[0] += 1
        if count[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    def rename(src, dst, *args, **kwargs):
        real_rename(src, dst, *args, **kwargs)
        if Path(dst).parent == target.parent:  # a rename beside the target: a step of the swap
            step()
    os.rename = rename
    if kill_after == 0:  # die in the middle of writing, before any rename
        import lmbench.fileio as fio
        real_save = fio.save_arrays
        def save_arrays(path, arrays):
            manifest = real_save(path, arrays)
            os.kill(os.getpid(), signal.SIGKILL)
        import lmbench.models.base as base
        base.save_arrays = save_arrays
    model.save(target)
""")


def _save_and_die(corpus: Path, target: Path, kill_after: int) -> int:
    proc = subprocess.run([sys.executable, "-c", _SAVE_AND_DIE, str(corpus), str(target), str(kill_after)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode


@pytest.mark.parametrize("kill_after", [1, 2, 3])
def test_a_swap_killed_after_any_rename_is_finished_on_load(tmp_path, kill_after):
    old_corpus = _corpus(tmp_path, "old", "a b\n")
    new_corpus = _corpus(tmp_path, "new", "x y z\nx\n")
    target = tmp_path / "out" / "m"
    train("unigram", old_corpus).model.save(target)
    code = _save_and_die(tmp_path / "new", target, kill_after)
    assert code == -signal.SIGKILL
    # The new version was complete before the first rename, so recovery moves it into place.
    assert load_model(target).vocab == new_corpus.vocab
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]
    # And a later save over it works as usual.
    train("unigram", old_corpus).model.save(target)
    assert load_model(target).vocab == old_corpus.vocab
    assert sorted(p.name for p in target.parent.iterdir()) == ["m"]


def test_a_failed_swap_keeps_the_old_version(tmp_path, monkeypatch):
    old_corpus = _corpus(tmp_path, "old", "a b\n")
    new_corpus = _corpus(tmp_path, "new", "x y z\n")
    target = tmp_path / "m"
    train("unigram", old_corpus).model.save(target)
    real, calls = os.rename, []

    def failing_third_rename(src, dst, *args, **kwargs):
        if Path(dst).parent == tmp_path:
            calls.append(dst)
            if len(calls) == 3:
                raise OSError("disk on fire")
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", failing_third_rename)
    with pytest.raises(OSError, match="disk on fire"):
        train("unigram", new_corpus).model.save(target)
    monkeypatch.undo()
    assert load_model(target).vocab == old_corpus.vocab
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "new", "old"]


def test_stale_temporaries_of_dead_writers_are_cleaned(tmp_path, monkeypatch):
    _corpus(tmp_path, "new", "x y z\n")
    target = tmp_path / "m"
    assert _save_and_die(tmp_path / "new", target, 0) == -signal.SIGKILL  # killed mid-write
    stale = list(tmp_path.glob(".m.tmp-*"))
    assert len(stale) == 1 and (stale[0] / "arrays.npz").is_file()
    # A temporary of a live writer (this process) is not touched, however old.
    ours = tmp_path / f".m.tmp-{os.getpid()}-live"
    ours.mkdir()
    os.utime(ours, (0, 0))
    # As if this process had begun after the killed one.
    monkeypatch.setattr(fileio, "_STARTED", stale[0].stat().st_mtime + 1, raising=False)
    train("unigram", _corpus(tmp_path, "c", "a\n")).model.save(target)
    assert sorted(p.name for p in tmp_path.glob(".m.*")) == [ours.name]
    assert load_model(target).vocab.tokens[3:] == ["a"]


# --- vocab.txt: a digest of its entries, no symlinks out of the model directory ---------------------------------


def _saved_model(tmp_path: Path) -> Path:
    corpora = _corpus(tmp_path, "v", "a b c\nb c\nc\n")
    train("unigram", corpora).model.save(tmp_path / "m")
    return tmp_path / "m"


def _rewrite_vocab(vocab_file: Path, lines: list[str]) -> None:
    """Write entries with a correct digest line, as a careful forger would."""
    import hashlib

    body = "".join(f"{line}\n" for line in lines)
    vocab_file.write_text(f"# lmbench-vocab sha256={hashlib.sha256(body.encode()).hexdigest()}\n{body}",
                          encoding="utf-8")


def test_vocab_swapped_lines_are_refused(tmp_path):
    m = _saved_model(tmp_path)
    lines = (m / "vocab.txt").read_text(encoding="utf-8").splitlines()
    entries = [line for line in lines if "\t" in line]
    assert [e.split("\t")[0] for e in entries] == ["<unk>", "<s>", "</s>", "c", "b", "a"]
    # Swap b and a (counts 2 and 1): a plain edit of the file, digest line left as it was.
    swapped = [line for line in lines if "\t" not in line] + entries[:4] + [entries[5], entries[4]]
    (m / "vocab.txt").write_text("\n".join(swapped) + "\n", encoding="utf-8")
    with pytest.raises(LmbenchError, match="does not match its recorded digest"):
        load_model(m)
    assert_clean_error(run_cli("eval", m, "--corpus", tmp_path / "v"), "vocab.txt", "digest")


def test_vocab_without_digest_line_is_refused(tmp_path):
    m = _saved_model(tmp_path)
    lines = (m / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (m / "vocab.txt").write_text("\n".join(line for line in lines if "\t" in line) + "\n", encoding="utf-8")
    with pytest.raises(LmbenchError, match="lacks its first line"):
        load_model(m)


@pytest.mark.parametrize("count", ["²", "٣", "-1", "1e3", " 7"])
def test_vocab_count_must_be_ascii_digits(tmp_path, count):
    m = _saved_model(tmp_path)
    _rewrite_vocab(m / "vocab.txt", ["<unk>\t0", "<s>\t0", "</s>\t3", "c\t3", "b\t2", f"a\t{count}"])
    with pytest.raises(LmbenchError, match=r"vocab.txt:7: expected 'token<TAB>count'"):
        load_model(m)


def test_vocab_as_a_directory_or_a_symlink_out_is_refused(tmp_path):
    m = _saved_model(tmp_path)
    (m / "vocab.txt").unlink()
    (m / "vocab.txt").mkdir()
    assert_clean_error(run_cli("eval", m, "--corpus", tmp_path / "v"), "vocab.txt", "not a regular file")
    (m / "vocab.txt").rmdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("the password is swordfish\n", encoding="utf-8")
    (m / "vocab.txt").symlink_to(secret)
    err = assert_clean_error(run_cli("eval", m, "--corpus", tmp_path / "v"), "vocab.txt", "symbolic link")
    assert "swordfish" not in err
    # A symlink that stays inside the model directory is followed.
    (m / "vocab.txt").unlink()
    _rewrite_vocab(m / "real_vocab.txt", ["<unk>\t0", "<s>\t0", "</s>\t3", "c\t3", "b\t2", "a\t1"])
    (m / "vocab.txt").symlink_to("real_vocab.txt")
    assert load_model(m).vocab.tokens[3:] == ["c", "b", "a"]


# --- arrays.npz: read only what model.json declares, bounded before any data is read ----------------------------


def _npy_bytes(dtype: str, shape: tuple[int, ...], data: bytes) -> bytes:
    """A .npy file whose header declares `dtype` and `shape`, followed by `data` (of any length)."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def _rewrite_npz(model_dir: Path, members: dict[str, bytes], compress: bool = False) -> None:
    import zipfile

    with zipfile.ZipFile(model_dir / "arrays.npz", "w",
                         zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)


def _set_manifest(model_dir: Path, name: str, **entry) -> None:
    header = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    header["arrays"][name].update(entry)
    (model_dir / "model.json").write_text(json.dumps(header), encoding="utf-8")


def _npz_entries(model_dir: Path) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(model_dir / "arrays.npz") as zf:
        return {i.filename.removesuffix(".npy"): zf.read(i) for i in zf.infolist()}


def _peak_bytes(fn) -> tuple[BaseException | None, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        err = None
    except BaseException as e:  # noqa: BLE001 - the test inspects whatever was raised
        err = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return err, peak


def test_npz_array_declaring_1e11_elements_is_refused_unread(tmp_path):
    m = _saved_model(tmp_path)
    members = _npz_entries(m)
    (name,) = members
    # The .npy header claims 10^11 float64 values; the file holds 16 bytes.
    members[name] = _npy_bytes("<f8", (10**11,), b"\0" * 16)
    _rewrite_npz(m, members)
    err, peak = _peak_bytes(lambda: load_model(m))
    assert isinstance(err, LmbenchError) and "manifest declares" in str(err), err
    assert peak < 50 * 2**20
    # The same claim in model.json too: refused as more than the machine's memory, before the archive is read.
    _set_manifest(m, name, shape=[10**11])
    err, peak = _peak_bytes(lambda: load_model(m))
    assert isinstance(err, LmbenchError) and "needs about" in str(err) and "this machine has" in str(err), err
    assert peak < 50 * 2**20


def test_npz_decompression_bomb_is_refused_unread(tmp_path):
    m = _saved_model(tmp_path)
    members = _npz_entries(m)
    members["bomb"] = _npy_bytes("<f8", (40 * 2**17,), b"\0" * (40 * 2**20))  # 40 MiB, deflates to ~40 KiB
    _rewrite_npz(m, members, compress=True)
    assert (m / "arrays.npz").stat().st_size < 2**20
    err, peak = _peak_bytes(lambda: load_model(m))
    assert isinstance(err, LmbenchError) and "unexpected arrays: bomb" in str(err), err
    assert peak < 10 * 2**20
    # A declared array whose archive entry inflates beyond the declared size is refused as well.
    (name,) = (k for k in members if k != "bomb")
    members = {name: members[name] + b"\0" * (40 * 2**20)}
    _rewrite_npz(m, members, compress=True)
    err, peak = _peak_bytes(lambda: load_model(m))
    assert isinstance(err, LmbenchError) and "the archive stores" in str(err), err
    assert peak < 10 * 2**20


def test_npz_pickled_or_mismatched_arrays_are_refused(tmp_path):
    m = _saved_model(tmp_path)
    members = _npz_entries(m)
    (name,) = members
    good = np.load(m / "arrays.npz")[name]
    assert good.dtype == np.float64
    # An object array (a pickle inside) declared as such in model.json: refused by its dtype, never unpickled.
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([object()] * 2, dtype=object)[:0], allow_pickle=True)
    _rewrite_npz(m, {name: buf.getvalue()})
    _set_manifest(m, name, dtype="|O", shape=[0])
    with pytest.raises(LmbenchError, match="not numeric"):
        load_model(m)
    # A file holding float32 where model.json declares float64 (same byte count): refused by the header.
    _set_manifest(m, name, dtype=good.dtype.str, shape=list(good.shape))
    _rewrite_npz(m, {name: _npy_bytes("<f4", (2 * good.size,), good.tobytes())})
    with pytest.raises(LmbenchError, match="the file holds <f4"):
        load_model(m)


# --- the BLAS thread count: pinned for suite cells, recorded everywhere ------------------------------------------

THREADS_PLUGIN = '''
import numpy as np
from lmbench import LanguageModel
from lmbench.models.neural.blas import get_blas_threads


class ThreadSpy(LanguageModel):
    name = "threadspy"
    description = "uniform, and notes the BLAS thread count it was trained and scored with (a test model)"

    def fit(self, train, valid=None):
        self.vocab = train.vocab
        self.fit_info = {"threads_in_fit": get_blas_threads()}
        return self

    def logprobs(self, corpus):
        self.fit_info["threads_in_eval"] = get_blas_threads()
        return np.full(corpus.n_predicted, -np.log(self.vocab.n_outcomes))
'''


def test_suite_cells_compute_with_one_blas_thread_and_say_so(tmp_path):
    from lmbench.bench.runner import run_suite
    from lmbench.bench.suite import parse_suite
    from lmbench.models.neural.blas import get_blas_threads, set_blas_threads
    from lmbench.models.registry import load_plugin_file

    before = get_blas_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS lmbench can control")
    (tmp_path / "spy.py").write_text(THREADS_PLUGIN, encoding="utf-8")
    load_plugin_file(tmp_path / "spy.py")
    suite = parse_suite('name = "t"\nseeds = [0]\nmetrics = ["perplexity"]\n[[corpus]]\n'
                        'spec = "synthetic:grammar?sentences=30"\n[[model]]\nname = "threadspy"\n', "t.toml")
    set_blas_threads(2)  # as on a machine whose OpenBLAS would use two threads
    try:
        manifest = run_suite(suite, tmp_path / "run", progress=False)
        assert get_blas_threads() == 2  # restored after the cell
        corpora = load_corpus("synthetic:grammar?sentences=30", Tokenizer("whitespace"))
        assert train("unigram", corpora).model.fit_info["blas_threads"] == 2  # lmbench train records its count
    finally:
        set_blas_threads(before)
    (cell,) = (tmp_path / "run" / "cells").glob("*.json")
    fit_info = json.loads(cell.read_text(encoding="utf-8"))["fit_info"]
    assert fit_info["threads_in_fit"] == 1 and fit_info["threads_in_eval"] == 1
    assert manifest["blas_threads"] == 1
    assert json.loads((tmp_path / "run" / "manifest.json").read_text(encoding="utf-8"))["blas_threads"] == 1


def test_a_failed_write_removes_the_directories_it_made(tmp_path):
    """atomic_path makes the missing parents of its target; when the write fails they go again, while a
    parent that existed before stays."""
    from lmbench.fileio import atomic_path

    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError), atomic_path(tmp_path / "kept" / "a" / "b" / "x.txt"):
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []
    with pytest.raises(OSError), atomic_path(tmp_path / "kept" / "m", directory=True) as tmp:
        (tmp / "model.json").write_text("{}", encoding="utf-8")
        raise OSError("disk full")
    assert list((tmp_path / "kept").iterdir()) == []
    with atomic_path(tmp_path / "kept" / "a" / "x.txt") as tmp:
        tmp.write_text("ok", encoding="utf-8")
    assert (tmp_path / "kept" / "a" / "x.txt").read_text(encoding="utf-8") == "ok"
