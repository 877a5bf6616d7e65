"""Where a suite's cells run: in this process, in a local process pool (`--jobs N`), or on a Dask cluster.

Every executor has one method, `results(tasks)`: given (index, cell) pairs it yields (index, record) pairs
as cells finish (completion order). The runner saves each record the moment it arrives and builds
results.csv from the records in the suite's order, so the tables do not depend on which executor ran the
cells or in which order they finished. Cells are independent and seeded, and each computes with one BLAS
thread (runner.CELL_BLAS_THREADS), so a record is the same whichever process computed it. What a cell
runs is given by the runner as a `Work` (its module-level functions, pickled by reference), so this module
does not import the runner.

Closing the generator (Ctrl-C in the runner, or an error) cancels the cells not yet finished: the pool's
worker processes are terminated, the Dask futures cancelled. Finished cells are already saved, so the
same command resumes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from lmbench.errors import LmbenchError
from lmbench.models.neural import parallel
from lmbench.models.neural.blas import set_blas_threads

Task = tuple[int, Any]  # (index in the suite's cell list, Cell)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def threads_per_job(jobs: int) -> int:
    """Threads for each of `jobs` worker processes, so that together they use --threads (every core) once."""
    return max(1, parallel.get_threads() // max(1, jobs))


# --- the work a worker does -----------------------------------------------------------------------------------

_corpus_lock = threading.Lock()
_corpus_memo: dict[str, Any] = {}  # one corpus in memory per worker, like the in-process loop


@dataclass(frozen=True)
class Work:
    """What running a cell means: `load(corpus_config) -> corpora` and `run(cell, corpora, progress) -> record`."""

    load: Callable[[Any], Any]
    run: Callable[[Any, Any, bool | None], dict[str, Any]]
    blas_threads: int = 1  # what every cell computes with (runner.CELL_BLAS_THREADS)


def cell_corpus(cell: Any, work: Work) -> Any:
    """The cell's encoded corpus, kept from the previous cell when it is the same (one corpus at a time)."""
    key = json.dumps(cell.corpus.key(), sort_keys=True)
    with _corpus_lock:
        if key not in _corpus_memo:
            _corpus_memo.clear()
            _corpus_memo[key] = work.load(cell.corpus)
        return _corpus_memo[key]


def execute_cell(cell: Any, work: Work, plugins: tuple[str, ...] = (), progress: bool | None = False) -> dict[str, Any]:
    """Run one cell in a worker and return its record (`progress`: False = silent, None = log lines off a TTY)."""
    # Set for the whole worker, not around the cell: a Dask worker may run cells in several threads of one
    # process, and one cell restoring the count on its way out would change it under another.
    set_blas_threads(work.blas_threads)
    _load_plugins(plugins)
    return work.run(cell, cell_corpus(cell, work), progress)


def _load_plugins(paths: tuple[str, ...]) -> None:
    from lmbench.models.registry import load_plugin_file

    for path in paths:
        if f"lmbench_plugin_{os.path.splitext(os.path.basename(path))[0]}" not in sys.modules:
            load_plugin_file(path)


def loaded_plugins() -> tuple[str, ...]:
    """Files of the --plugin modules loaded in this process (workers load them too)."""
    return tuple(sorted(getattr(m, "__file__", None) or "" for name, m in sys.modules.items()
                        if name.startswith("lmbench_plugin_") and getattr(m, "__file__", None)))


def _init_worker(threads: int, plugins: tuple[str, ...]) -> None:
    # Ctrl-C goes to the whole process group: the parent alone handles it (and terminates the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    set_blas_threads(threads)
    parallel.set_threads(threads)
    _load_plugins(plugins)


# --- executors ------------------------------------------------------------------------------------------------


class InProcessExecutor:
    """Cells one after the other in this process, with their training progress bars (--jobs 1)."""

    description = "1 process"

    def __init__(self, work: Work, progress: bool | None = None,
                 on_start: Callable[[int, Any], None] | None = None) -> None:
        self.work, self.progress, self.on_start = work, progress, on_start

    def results(self, tasks: list[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run each cell in turn and yield its record."""
        try:
            for index, cell in tasks:
                if self.on_start:
                    self.on_start(index, cell)
                yield index, self.work.run(cell, cell_corpus(cell, self.work), self.progress)
        finally:
            with _corpus_lock:
                _corpus_memo.clear()  # the corpus is not kept after the run


class LocalPoolExecutor:
    """Cells in `jobs` worker processes on this machine: cells compute with Work.blas_threads (one) BLAS
    thread; the OpenMP/MKL variables of each worker say cores // jobs for any other threaded library."""

    def __init__(self, work: Work, jobs: int, progress: bool | None = None) -> None:
        self.work, self.jobs = work, jobs
        self.description = f"{jobs} processes"
        # Off a terminal, each worker logs its epochs as whole lines on the shared stderr; on a terminal the
        # parent's bar counts cells, and two workers' bars would overwrite it.
        self.cell_progress = False if progress is False or sys.stderr.isatty() else None

    def results(self, tasks: list[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Submit every cell, yield records as they finish; terminate the workers when closed early."""
        plugins = loaded_plugins()
        # spawn: a fresh interpreter per worker, the same on every platform (no state forked from the parent)
        pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads_per_job(self.jobs), plugins))
        finished = False
        try:
            pending: dict[Future, Task] = {
                pool.submit(execute_cell, cell, self.work, plugins, self.cell_progress): (i, cell) for i, cell in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f][0]):
                    index, cell = pending.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool:
                        raise LmbenchError(f"a worker process died while running cell {cell.id} (out of memory?); "
                                           "finished cells are saved: run again, perhaps with fewer --jobs") from None
                    yield index, record
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:
                _terminate(pool)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel queued cells and kill the running ones."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


DASK_MISSING = ("--scheduler needs Dask's distributed scheduler: install the optional extra "
                "with pip install 'lmbench[dask]' (or pip install 'dask[distributed]')")


def dask_client(address: str) -> Any:
    """A Dask client connected to the scheduler at `address`; a clear error without the extra or the cluster."""
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise LmbenchError(DASK_MISSING) from None
    try:
        return Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise LmbenchError(f"--scheduler {address}: cannot connect to a Dask scheduler ({e})") from None


def check_scheduler(address: str) -> None:
    """Fail early (before a run directory is written) when the Dask extra is missing or the scheduler is down."""
    dask_client(address).close()


class DaskExecutor:
    """Cells submitted to a Dask distributed cluster; records stream back as they finish.

    Workers read the corpora themselves, so a corpus spec must name a path the workers can read (a shared
    file system); with LMBENCH_CACHE on a shared path too, each corpus is encoded once for the whole cluster.
    """

    def __init__(self, work: Work, address: str) -> None:
        self.work, self.address = work, address
        self.description = f"the Dask cluster at {address}"
        self.client = dask_client(address)

    def results(self, tasks: list[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Submit every cell as a Dask task and yield records in completion order; cancel the rest when closed."""
        from distributed import as_completed

        plugins = loaded_plugins()
        index_of: dict[str, int] = {}
        futures = []
        for index, cell in tasks:
            # pure=False: a re-run must compute again, not reuse a result the cluster still holds
            future = self.client.submit(execute_cell, cell, self.work, plugins, pure=False,
                                        key=f"lmbench-cell-{cell.id}-{os.getpid()}-{index}")
            index_of[future.key] = index
            futures.append(future)
        try:
            with self.client.as_current():
                completed = as_completed(futures)
            for future in completed:
                record = future.result()
                yield index_of[future.key], record
                future.release()
        finally:
            self.client.cancel([f for f in futures if not f.done()])
            self.client.close()


def make_executor(work: Work, jobs: int | None, scheduler: str | None, n_tasks: int, progress: bool | None = None,
                  on_start: Callable[[int, Any], None] | None = None) -> Any:
    """The executor for `--jobs` / `--scheduler`: Dask when a scheduler is given, else a pool when it helps."""
    if scheduler:
        return DaskExecutor(work, scheduler)
    jobs = parallel.available_cores() if jobs is None else jobs
    if jobs < 1:
        raise LmbenchError(f"--jobs {jobs}: give at least 1")
    jobs = min(jobs, n_tasks)  # never more processes than cells left to run
    if jobs <= 1:
        return InProcessExecutor(work, progress, on_start)
    return LocalPoolExecutor(work, jobs, progress)
