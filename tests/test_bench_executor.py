"""Cells in parallel (--jobs) and on a Dask cluster: the same results.csv as one process, resumable after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import assert_clean_error, run_cli

from lmbench.bench import executor
from lmbench.bench.runner import load_cell_corpus, run_cell, run_suite
from lmbench.bench.suite import parse_suite
from lmbench.errors import LmbenchError
from lmbench.models.neural import parallel
from lmbench.models.neural.blas import get_blas_threads, set_blas_threads

WORK = executor.Work(load_cell_corpus, run_cell)

# The recurrent cell comes first and is the slowest: with two processes the n-gram cells after it finish
# before it does, so a table written in completion order would differ from the suite's order.
SUITE = """
name = "tiny-jobs"
seeds = [0, 1]
metrics = ["perplexity", "speed", "floor"]

[[corpus]]
spec = "synthetic:grammar?sentences=200"
metrics = ["perplexity", "speed"]

# Generating this corpus computes its entropy rate with matmuls: the figure depends on the BLAS thread
# count, so it must be computed with the cells' count in every executor.
[[corpus]]
spec = "synthetic:dependency?sentences=200&max_distance=40"
label = "dependency"
models = []
metrics = ["floor"]

[[model]]
name = "rnn"
params = { emb = 8, hidden = 16, bptt = 10, batch = 8, epochs = 3 }

[[model]]
name = "unigram"

[[model]]
name = "ngram"
params = { order = 2, smoothing = "mle" }
"""

# A model that blocks (after touching a marker file) when JOBS_BLOCK is set: a run to interrupt.
PLUGIN = '''
import os
import time

import numpy as np

from lmbench import LanguageModel, Param


class Sleepy(LanguageModel):
    name = "sleepygram"
    description = "uniform over the vocabulary; blocks while JOBS_BLOCK names a marker file (a test model)"
    param_spec = {"wait": Param(0, "block when 1"), "seed": Param(0, "seed")}

    def fit(self, train, valid=None):
        marker = os.environ.get("JOBS_BLOCK")
        if marker and self.params["wait"] == 1:
            open(marker, "w").close()
            time.sleep(120)
        self.vocab = train.vocab
        return self

    def logprobs(self, corpus):
        return np.full(len(corpus.targets()), -np.log(len(self.vocab)))
'''

SLEEPY_SUITE = """
name = "sleepy"
seeds = [0]
metrics = ["perplexity"]

[[corpus]]
spec = "synthetic:grammar?sentences=100"

[[model]]
name = "sleepygram"
params = { wait = [0, 1, 2, 3] }

[[model]]
name = "unigram"
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The suite run in this process, one cell after the other (--jobs 1)."""
    out = tmp_path_factory.mktemp("jobs") / "serial"
    run_suite(parse_suite(SUITE, "tiny-jobs.toml"), out, progress=False, jobs=1)
    return out


def test_two_processes_give_the_same_results_csv(reference, tmp_path):
    suite_file = tmp_path / "tiny-jobs.toml"
    suite_file.write_text(SUITE)
    out = tmp_path / "parallel"
    result = run_cli("run", suite_file, "--out", out, "--jobs", "2", "--no-report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["executor"] == "2 processes" and manifest["cells_run"] == 7
    # the cell files hold the same figures as those computed in this process
    for path in (reference / "cells").glob("*.json"):
        assert json.loads((out / "cells" / path.name).read_text())["rows"] == json.loads(path.read_text())["rows"]


def test_parallel_run_resumes_a_serial_one(reference, tmp_path):
    suite = parse_suite(SUITE, "tiny-jobs.toml")
    out = tmp_path / "run"
    run_suite(suite, out, progress=False, jobs=1)
    cells = sorted((out / "cells").glob("*.json"))
    for path in cells[::2]:
        path.unlink()  # four of the seven cells to run again
    manifest = run_suite(suite, out, progress=False, jobs=2)
    assert (manifest["cells_resumed"], manifest["cells_run"]) == (3, 4)
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_ctrl_c_stops_the_workers_and_leaves_a_resumable_run(tmp_path):
    plugin = tmp_path / "sleepy_plugin.py"
    plugin.write_text(PLUGIN)
    suite_file = tmp_path / "sleepy.toml"
    suite_file.write_text(SLEEPY_SUITE)
    out, marker = tmp_path / "run", tmp_path / "blocked"
    cmd = [sys.executable, "-m", "lmbench", "run", str(suite_file), "--out", str(out), "--no-report",
           "--plugin", str(plugin), "--jobs", "2"]
    proc = subprocess.Popen(cmd, env={**os.environ, "JOBS_BLOCK": str(marker)}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    time.sleep(1.0)  # the other worker finishes the short cells meanwhile
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    done = int(stderr.split("interrupted after ")[1].split()[0])
    assert len(list((out / "cells").glob("*.json"))) == done < 5
    assert not [p for p in (out / "cells").iterdir() if p.name.startswith(".")]  # no half-written cell
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    for _ in range(50):  # the run's session (its workers included) is empty once it has exited
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.1)
    assert left == [], "worker processes outlived the interrupted run"

    again = subprocess.run(cmd + ["--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["cells_resumed"], summary["cells_run"]) == (done, 5 - done)
    serial = subprocess.run(cmd[:-1] + ["1", "--out", str(tmp_path / "serial")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert serial.returncode == 0, serial.stderr
    assert (out / "results.csv").read_bytes() == (tmp_path / "serial" / "results.csv").read_bytes()


def test_jobs_option_is_checked(tmp_path):
    assert_clean_error(run_cli("run", "quick", "--jobs", "0", "--out", tmp_path / "r"), "--jobs")
    assert_clean_error(run_cli("run", "quick", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1",
                               "--out", tmp_path / "r"), "--jobs or --scheduler")
    assert not (tmp_path / "r").exists()


def test_threads_per_job_fill_the_cores_once(monkeypatch):
    monkeypatch.delenv("LMBENCH_THREADS", raising=False)
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    assert [executor.threads_per_job(j) for j in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.setenv("LMBENCH_THREADS", "4")  # --threads / LMBENCH_THREADS is the budget the jobs share
    assert [executor.threads_per_job(j) for j in (1, 2, 3, 8)] == [4, 2, 1, 1]


def test_pool_only_when_it_helps():
    assert isinstance(executor.make_executor(WORK, 4, None, 1), executor.InProcessExecutor)
    assert isinstance(executor.make_executor(WORK, 1, None, 9), executor.InProcessExecutor)
    pool = executor.make_executor(WORK, 4, None, 3)
    assert isinstance(pool, executor.LocalPoolExecutor) and pool.jobs == 3


def test_scheduler_without_the_dask_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ModuleNotFoundError
    with pytest.raises(LmbenchError, match=r"lmbench\[dask\]"):
        executor.make_executor(WORK, None, "tcp://127.0.0.1:8786", 3)


@pytest.fixture
def blas_restored():
    """The test process's BLAS thread count, put back after a test whose in-process workers set it."""
    before = get_blas_threads()
    yield
    if before is not None:
        set_blas_threads(before)


def test_cli_scheduler_without_the_extra_writes_nothing(tmp_path):
    fake = tmp_path / "site" / "distributed"  # shadows an installed distributed: importing it fails
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'distributed'\")\n")
    suite_file = tmp_path / "tiny-jobs.toml"
    suite_file.write_text(SUITE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "lmbench", "run", str(suite_file), "--out", str(tmp_path / "r"),
                             "--scheduler", "tcp://127.0.0.1:8786"], env=env, capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert_clean_error(result, "lmbench[dask]")
    assert not (tmp_path / "r").exists()


def test_dask_local_cluster_gives_the_same_results_csv(reference, tmp_path, blas_restored):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  dashboard_address=None, scheduler_port=0) as cluster:
        out = tmp_path / "dask"
        manifest = run_suite(parse_suite(SUITE, "tiny-jobs.toml"), out, progress=False,
                             scheduler=cluster.scheduler_address)
        assert manifest["executor"].startswith("the Dask cluster at tcp://")
        assert len(list((out / "cells").glob("*.json"))) == 7
        assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
        # resume: two cells removed are computed again on the cluster, the others read back
        for path in sorted((out / "cells").glob("*.json"))[:2]:
            path.unlink()
        manifest = run_suite(parse_suite(SUITE, "tiny-jobs.toml"), out, progress=False,
                             scheduler=cluster.scheduler_address)
        assert (manifest["cells_resumed"], manifest["cells_run"]) == (5, 2)
        assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
