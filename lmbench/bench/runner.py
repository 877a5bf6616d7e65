"""Run a suite: every (corpus, model, seed) cell trained, measured and saved on its own, resumably.

A run directory holds
  suite.toml / suite.json   the suite as given and as expanded
  cells/<id>.json           one file per finished cell, written atomically the moment it finishes
  results.csv               the tidy results table (one row per figure; deterministic given the seeds)
  timings.csv               machine-dependent figures (seconds, tokens/s), kept apart from results.csv
  results.parquet           the same as results.csv, when pyarrow is installed
  manifest.json             package versions, machine, git commit, seeds, wall times

Running the same suite into the same directory again skips every cell whose file exists, so an
interrupted run (Ctrl-C) resumes where it stopped and ends with the same results.csv.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmbench.bench.executor import InProcessExecutor, Work, make_executor
from lmbench.bench.metrics import CellContext, MetricOutput, run_metric
from lmbench.bench.suite import Cell, CorpusConfig, Suite
from lmbench.errors import Interrupted, LmbenchError
from lmbench.evaluate.harness import json_safe, train
from lmbench.fileio import atomic_path, read_json, write_json_atomic, write_text_atomic
from lmbench.models.neural.blas import blas_threads, describe_blas, get_blas_threads
from lmbench.models.registry import MODELS, create_model
from lmbench.progress import Progress
from lmbench.schema import CELL_FILE, RUN_MANIFEST, check
from lmbench.text.parallel import load_pairs
from lmbench.text.sources import load_corpus
from lmbench.text.tokenize import tokenizer_for

RUN_FORMAT = "lmbench-run/1"
CELL_FORMAT = "lmbench-cell/1"
RESULT_COLUMNS = ["cell", "corpus", "model", "config", "seed", "metric", "quantity", "group", "x", "value"]
TIMING_COLUMNS = ["cell", "corpus", "model", "config", "seed", "metric", "quantity", "value"]
_VERSIONED = ("lmbench", "numpy", "pandas", "seaborn", "matplotlib", "click", "nltk", "torch", "kenlm", "pyarrow",
              "sacrebleu")


def _float(value: Any) -> Any:
    """Undo json_safe for numbers: "inf"/"-inf"/"nan" strings back to floats."""
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


# --- corpora -----------------------------------------------------------------------------------------------


def load_cell_corpus(config: CorpusConfig) -> Any:
    """Read and encode one corpus of a suite (a CorpusSet, or the parallel corpus for translators)."""
    with blas_threads(CELL_BLAS_THREADS):  # a generated corpus's figures (entropy rate) come from matmuls too
        return _load_cell_corpus(config)


def _load_cell_corpus(config: CorpusConfig) -> Any:
    tokenizer = tokenizer_for(config.spec, config.tokenizer, config.lowercase)
    if config.kind == "parallel":
        return load_pairs(config.spec, tokenizer, tokenizer, min_count=config.min_count, max_size=config.max_size)
    return load_corpus(config.spec, tokenizer, min_count=config.min_count, max_size=config.max_size)


def tokenizer_label(corpora: Any) -> str:
    """What a token was in a loaded corpus: its tokenizer spec, "+lowercase" when lower-cased; "SRC → TGT" for
    sentence pairs."""
    def one(tok: Any) -> str:
        return tok.kind + ("+lowercase" if tok.lowercase else "")

    if hasattr(corpora, "src_tokenizer"):
        return f"{one(corpora.src_tokenizer)} → {one(corpora.tgt_tokenizer)}"
    return one(corpora.tokenizer)


# --- one cell --------------------------------------------------------------------------------------------------


# Every cell computes with one BLAS thread: a threaded OpenBLAS rounds some large matmuls differently for
# different thread counts (an LSTM's weights differed after 20 steps), so pinning it makes results.csv the
# same whatever OPENBLAS_NUM_THREADS or the core count is. The count is recorded in manifest.json.
CELL_BLAS_THREADS = 1


def run_cell(cell: Cell, corpora: Any, progress: bool | None = None) -> dict[str, Any]:
    """Train the cell's model (if any), run its metrics, and return the cell record (not yet saved)."""
    with blas_threads(CELL_BLAS_THREADS):
        return _run_cell(cell, corpora, progress)


def _run_cell(cell: Cell, corpora: Any, progress: bool | None) -> dict[str, Any]:
    start = time.perf_counter()
    model = None
    train_seconds, train_tokens = float("nan"), 0
    if cell.model is not None:
        params = cell.model.param_dict
        model = create_model(cell.model.name, params)
        if "seed" in model.param_spec and "seed" not in params:
            model = create_model(cell.model.name, {**params, "seed": cell.seed})  # the suite's seed drives it
        result = train(model, corpora, progress=progress)
        train_seconds, train_tokens = result.train_seconds, result.train_tokens
    ctx_cache: dict[str, Any] = {}
    outputs: list[MetricOutput] = []
    options = dict(cell.metric_options)
    for name in cell.metrics:
        ctx = CellContext(corpora, model, cell.seed, json.loads(options.get(name, "{}")), cell.corpus.spec,
                          train_seconds, train_tokens, ctx_cache)
        outputs.append(run_metric(name, ctx))
    return {
        "format": CELL_FORMAT,
        "id": cell.id,
        "corpus": cell.corpus.label,
        "corpus_spec": cell.corpus.spec,
        "tokenizer": tokenizer_label(corpora),
        "model": cell.model.name if cell.model else None,
        "config": cell.config,
        "params": model.params if model is not None else {},
        "seed": cell.seed,
        "metrics": list(cell.metrics),
        "rows": [r for o in outputs for r in o.rows],
        "timings": [r for o in outputs for r in o.timings]
        + ([{"metric": "train", "quantity": "train_seconds", "value": train_seconds}] if model is not None else []),
        "notes": [n for o in outputs for n in o.notes],
        "extras": {o.metric: o.extras for o in outputs if o.extras},
        "corpus_info": getattr(corpora, "info", {}) or {},
        "fit_info": getattr(model, "fit_info", {}) if model is not None else {},
        "wall_seconds": time.perf_counter() - start,
    }


# --- the run directory -------------------------------------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds an lmbench run (its manifest.json says so)."""
    manifest = path / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == RUN_FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def check_run_dir(path: str | Path) -> Path:
    """The run directory, or a clear error saying why `path` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise LmbenchError(f"{path} is not a run directory (no such directory); make one with `lmbench run SUITE`")
    if not is_run_dir(path):
        raise LmbenchError(f"{path} is not a run directory: it has no lmbench manifest.json "
                           "(make one with `lmbench run SUITE --out DIR`)")
    if not (path / "results.csv").is_file():
        raise LmbenchError(f"{path} is an unfinished run (no results.csv yet); finish it with `lmbench run` again")
    return path


def read_cell(path: Path, strict: bool = False) -> dict[str, Any] | None:
    """A saved cell record, or None when the file is missing or unreadable (then the cell runs again).

    With `strict`, a cell file that exists but is not a valid cell record is an error instead.
    """
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        record = read_json(path, "cell file")
        if not isinstance(record, dict) or record.get("format") != CELL_FORMAT:
            raise LmbenchError(f"cell file {path} is not an lmbench cell record (format {CELL_FORMAT} expected)")
        return check(record, CELL_FILE, f"cell file {path}")
    except LmbenchError:
        if strict:
            raise
        return None


def results_frames(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy results table and the timings table from cell records, in the suite's cell order."""
    rows, timings = [], []
    for rec in records:
        key = {"cell": rec["id"], "corpus": rec["corpus"], "model": rec["model"] or "", "config": rec["config"],
               "seed": rec["seed"]}
        rows += [{**key, **{k: _float(r.get(k)) for k in ("metric", "quantity", "group", "x", "value")}}
                 for r in rec["rows"]]
        timings += [{**key, **{k: _float(r.get(k)) for k in ("metric", "quantity", "value")}} for r in rec["timings"]]
    return (pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.DataFrame(timings, columns=TIMING_COLUMNS))


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False, float_format=None))


def _write_parquet(path: Path, frame: pd.DataFrame) -> bool:
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        return False
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return True


def package_versions() -> dict[str, str]:
    """Versions of lmbench and the packages its figures depend on (those installed)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict[str, Any]:
    """What the timings were measured on."""
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "hostname": platform.node(), "blas": describe_blas()}


def git_commit() -> dict[str, Any] | None:
    """The commit of the lmbench source tree (and whether it had local changes), when it is a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _plugin_versions(suite: Suite) -> dict[str, str]:
    """Versions of the installed packages that provide the suite's plugin models."""
    found = {}
    for ep in MODELS.entry_points().values():
        if ep.name in {m.name for m in suite.models} and not MODELS.is_builtin(ep.name) and ep.dist is not None:
            found[f"plugin:{ep.name}"] = f"{ep.dist.name} {ep.dist.version}"
    return found


def _cell_blas_threads() -> int | None:
    """The BLAS thread count the cells compute with (None when lmbench cannot control the BLAS library)."""
    return CELL_BLAS_THREADS if get_blas_threads() is not None else None


class _Reporter:
    """The overall progress: on a terminal a bar and a line as each cell starts and ends; elsewhere one log line
    per finished cell with elapsed time and ETA; nothing with progress=False (--quiet, --json)."""

    def __init__(self, total: int, label: str, enabled: bool | None) -> None:
        self.bar = Progress(total, label, unit="cell", enabled=enabled)

    def say(self, message: str) -> None:
        """A line above the bar on a terminal (a cell starting); a log gets one line per cell as it ends."""
        if self.bar.enabled:
            self.bar.log(message)

    def advance(self, message: str) -> None:
        self.bar.done += 1
        self.bar.log(message)
        self.bar.update(0)


def _cell_summary(record: dict[str, Any]) -> str:
    ppl = next((r["value"] for r in record["rows"]
                if r["metric"] == "perplexity" and r["quantity"] == "perplexity" and r["group"] == "test"), None)
    bleu = next((r["value"] for r in record["rows"] if r["metric"] == "bleu" and r["quantity"] == "bleu"), None)
    if record["model"] is None:
        parts = [f"corpus measures ({', '.join(record['metrics'])}) of {record['corpus']}"]
    else:
        parts = [f"{record['config']} (seed {record['seed']}) on {record['corpus']}"]
    if isinstance(ppl, float):
        parts.append(f"test ppl {ppl:.3f}")
    if isinstance(bleu, float):
        parts.append(f"BLEU {bleu:.2f}")
    parts.append(f"{record['wall_seconds']:.1f} s")
    return ", ".join(parts)


def prepare_run_dir(out: Path, suite: Suite) -> None:
    """Create the run directory, or check that an existing one is a run of the same suite."""
    if out.exists() and not out.is_dir():
        raise LmbenchError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not is_run_dir(out):
            raise LmbenchError(f"--out {out} exists and is not an lmbench run directory; refusing to write into it")
        old = check(read_json(out / "manifest.json", "run manifest"), RUN_MANIFEST, f"{out}/manifest.json")
        if old.get("suite") != suite.name:
            raise LmbenchError(f"--out {out} holds a run of suite {old.get('suite')!r}, not {suite.name!r}; "
                               "choose another --out")
    (out / "cells").mkdir(parents=True, exist_ok=True)


def run_suite(suite: Suite, out: str | Path, progress: bool | None = None, fresh: bool = False,
              log: Callable[[str], None] | None = None, jobs: int | None = 1,
              scheduler: str | None = None) -> dict[str, Any]:
    """Run every cell not yet saved in `out` (`jobs` processes, or on a Dask `scheduler`), then write the tables."""
    out = Path(out)
    prepare_run_dir(out, suite)
    previous = read_json(out / "manifest.json", "run manifest") if is_run_dir(out) and not fresh else {}
    cells = suite.cells()
    if fresh:
        for cell in cells:
            (out / "cells" / f"{cell.id}.json").unlink(missing_ok=True)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {
        "format": RUN_FORMAT, "suite": suite.name, "suite_path": suite.path, "description": suite.description,
        "seeds": suite.seeds, "status": "running", "started": started, "versions": package_versions(),
        "plugins": _plugin_versions(suite), "machine": machine_info(), "git": git_commit(),
        "argv": sys.argv[1:], "n_cells": len(cells), "blas_threads": _cell_blas_threads(),
        "skipped_corpora": suite.skipped_corpora(),
    }
    write_text_atomic(out / "suite.toml", suite.text)
    write_json_atomic(out / "suite.json", json_safe(suite.to_json()))
    write_json_atomic(out / "manifest.json", manifest)
    try:
        return _run_cells(suite, cells, out, manifest, t0, progress, log, previous, jobs, scheduler)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        # A failed run must not look as if it were still running: say so in the manifest (if it can be written).
        manifest.update(status="failed", error=str(e) or type(e).__name__, wall_seconds=time.perf_counter() - t0)
        try:
            write_json_atomic(out / "manifest.json", json_safe(manifest))
        except OSError:
            pass
        raise


def _run_cells(suite: Suite, cells: list[Cell], out: Path, manifest: dict[str, Any], t0: float,
               progress: bool | None, log: Callable[[str], None] | None,
               previous: dict[str, Any] | None = None, jobs: int | None = 1,
               scheduler: str | None = None) -> dict[str, Any]:
    """Run the cells not yet saved, then write the tables and the complete manifest."""
    reporter = _Reporter(len(cells), f"suite {suite.name}", progress)
    slots: list[dict[str, Any] | None] = [read_cell(out / "cells" / f"{cell.id}.json") for cell in cells]
    resumed, ran = sum(r is not None for r in slots), 0
    for i, (cell, record) in enumerate(zip(cells, slots), 1):
        if record is not None:
            reporter.advance(f"[{i}/{len(cells)}] done before: {cell.config} (seed {cell.seed}) on {cell.corpus.label}")
    todo = [(i, cell) for i, cell in enumerate(cells) if slots[i] is None]

    def starting(i: int, cell: Cell) -> None:
        what = (f"{cell.config} (seed {cell.seed}) on {cell.corpus.label}" if cell.model
                else f"corpus measures ({', '.join(cell.metrics)}) of {cell.corpus.label}")
        reporter.say(f"[{i + 1}/{len(cells)}] {what} ...")

    try:
        work = Work(load_cell_corpus, run_cell, CELL_BLAS_THREADS)
        executor = make_executor(work, jobs, scheduler, len(todo), progress, starting)
        if not isinstance(executor, InProcessExecutor):
            reporter.bar.log(f"running {len(todo)} cells in {executor.description}")
        manifest["executor"] = executor.description
        with contextlib.closing(executor.results(todo)) as finished:  # closing it stops the unfinished cells
            for i, record in finished:
                write_json_atomic(out / "cells" / f"{cells[i].id}.json", json_safe(record))
                slots[i] = record
                ran += 1
                reporter.advance(f"[{resumed + ran}/{len(cells)}] {_cell_summary(record)}")
                if log:
                    log(_cell_summary(record))
    except KeyboardInterrupt:
        reporter.bar.close()
        manifest.update(status="interrupted", cells_done=resumed + ran, wall_seconds=time.perf_counter() - t0)
        write_json_atomic(out / "manifest.json", manifest)
        raise Interrupted(f"interrupted after {resumed + ran} of {len(cells)} cells; run the same command again "
                          f"to resume ({out})") from None
    records = [r for r in slots if r is not None]
    reporter.bar.close()
    results, timings = results_frames(records)
    _write_csv(out / "results.csv", results)
    _write_csv(out / "timings.csv", timings)
    parquet = _write_parquet(out / "results.parquet", results)
    wall = time.perf_counter() - t0
    manifest.update(
        status="complete", finished=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        wall_seconds=wall, cells_run=ran, cells_resumed=resumed,
        cell_seconds_total=float(np.nansum([r["wall_seconds"] for r in records])),
        cells=[{"id": r["id"], "corpus": r["corpus"], "tokenizer": r.get("tokenizer"), "config": r["config"],
                "seed": r["seed"], "wall_seconds": r["wall_seconds"], "notes": r["notes"]} for r in records],
        tables={"results": "results.csv", "timings": "timings.csv",
                **({"parquet": "results.parquet"} if parquet else {})},
    )
    # Wall time over every invocation that worked on this run; a run with nothing left to do keeps the
    # finishing time of the invocation that computed its last cell (its report header stays meaningful).
    previous = previous or {}
    earlier = previous.get("wall_seconds_total", previous.get("wall_seconds", 0.0))
    manifest["wall_seconds_total"] = wall + (earlier if finite(earlier) else 0.0)
    if ran == 0 and previous.get("finished"):
        manifest["finished"] = previous["finished"]
    write_json_atomic(out / "manifest.json", json_safe(manifest))
    return manifest


def load_run(run_dir: str | Path) -> tuple[Path, dict[str, Any], pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """A finished run: (dir, manifest, results, timings, cell records in manifest order)."""
    run_dir = check_run_dir(run_dir)
    manifest = check(read_json(run_dir / "manifest.json", "run manifest"), RUN_MANIFEST, f"{run_dir}/manifest.json")
    try:
        results = pd.read_csv(run_dir / "results.csv", keep_default_na=False, na_values=[""])
        timings_path = run_dir / "timings.csv"
        timings = pd.read_csv(timings_path) if timings_path.is_file() else pd.DataFrame(columns=TIMING_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LmbenchError(f"{run_dir}: results table unreadable: {e}") from None
    missing = set(RESULT_COLUMNS) - set(results.columns)
    if missing:
        raise LmbenchError(f"{run_dir}/results.csv lacks column(s) {', '.join(sorted(missing))}")
    records = []
    for entry in manifest.get("cells", []):
        rec = read_cell(run_dir / "cells" / f"{entry['id']}.json", strict=True)
        if rec is not None:
            records.append(rec)
    return run_dir, manifest, results, timings, records


def finite(value: Any) -> bool:
    """Whether value is a finite number."""
    return isinstance(value, int | float) and math.isfinite(value)
