"""The runner: cells saved as they finish, resume after an interruption (in-process and by SIGINT), tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO, assert_clean_error, run_cli

from lmbench.bench.runner import RESULT_COLUMNS, run_suite
from lmbench.bench.suite import parse_suite
from lmbench.cli import cli
from lmbench.errors import LmbenchError
from lmbench.models.registry import load_plugin_file

# A seeded toy model: add-alpha unigram with a seeded jitter, so results depend on the seed and are
# reproducible. It can be told (by environment variables) to stop the run at configuration alpha=2.
PLUGIN = '''
import os
import time

import numpy as np

from lmbench import LanguageModel, Param
from lmbench.text.vocab import BOS_ID


class Jitter(LanguageModel):
    name = "jittergram"
    description = "add-alpha unigram with a seeded jitter (a test model)"
    param_spec = {"alpha": Param(1.0, "added count", low=0.0, low_open=True), "seed": Param(0, "seed")}

    def fit(self, train, valid=None):
        if self.params["alpha"] == 2.0:
            if os.environ.get("JITTER_RAISE"):
                raise KeyboardInterrupt
            marker = os.environ.get("JITTER_BLOCK")
            if marker:
                open(marker, "w").close()
                time.sleep(120)
        self.vocab = train.vocab
        rng = np.random.default_rng(self.params["seed"])
        counts = np.bincount(train.targets(), minlength=len(train.vocab)) + self.params["alpha"]
        counts = counts * rng.uniform(0.5, 1.5, size=counts.size)
        counts[BOS_ID] = 0
        with np.errstate(divide="ignore"):
            self.log_p = np.log(counts / counts.sum())
        self.fit_info = {"history": [{"epoch": 1, "train_ppl": 50.0 + self.params["alpha"], "seconds": 0.1},
                                     {"epoch": 2, "train_ppl": 40.0 + self.params["alpha"], "seconds": 0.1}]}
        return self

    def logprobs(self, corpus):
        return self.log_p[corpus.targets()]
'''

SUITE = """
name = "tiny"
seeds = [0, 1]
metrics = ["perplexity", "speed", "learning_curve"]

[[corpus]]
spec = "synthetic:grammar?sentences=150"

[[model]]
name = "uniform"

[[model]]
name = "jittergram"
params = { alpha = [1.0, 2.0, 3.0] }
"""


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "jitter_plugin.py"
    path.write_text(PLUGIN)
    load_plugin_file(path)
    return path


@pytest.fixture
def suite_file(tmp_path, plugin_file):
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE)
    return path


def _suite(path):
    return parse_suite(path.read_text(), str(path))


def test_run_writes_tables_cells_and_manifest(suite_file, tmp_path):
    out = tmp_path / "run"
    manifest = run_suite(_suite(suite_file), out, progress=False)
    cells = sorted((out / "cells").glob("*.json"))
    assert len(cells) == 8 == manifest["n_cells"] == manifest["cells_run"]
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == RESULT_COLUMNS
    ppl = results[(results.metric == "perplexity") & (results.quantity == "perplexity") & (results.group == "test")]
    assert len(ppl) == 8
    # The uniform model's perplexity is the number of outcomes whatever the seed.
    uniform = ppl[ppl.model == "uniform"]["value"]
    record = json.loads(cells[0].read_text())
    assert record["format"] == "lmbench-cell/1"
    assert np.allclose(uniform, uniform.iloc[0])
    # Seeds matter for the seeded model (different jitter) and the learning curve was recorded.
    jit = ppl[ppl.config == "jittergram alpha=1.0"].sort_values("seed")["value"].to_numpy()
    assert jit[0] != jit[1]
    curve = results[(results.metric == "learning_curve") & (results.config == "jittergram alpha=3.0")]
    assert sorted(curve[curve.seed == 0]["value"]) == [43.0, 53.0]
    # Timings live apart from the results table.
    timings = pd.read_csv(out / "timings.csv")
    assert {"train_seconds", "eval_tokens_per_second"} <= set(timings.quantity)
    assert not results.quantity.str.contains("second").any()
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["seeds"] == [0, 1] and m["suite"] == "tiny"
    assert m["versions"]["numpy"] == np.__version__
    assert m["machine"]["cpu_count"] == os.cpu_count()
    assert len(m["cells"]) == 8 and all(c["wall_seconds"] >= 0 for c in m["cells"])
    notes = [n for c in m["cells"] for n in c["notes"]]
    assert any("learning_curve: not applicable" in n for n in notes)  # uniform has no training history


def test_interrupted_run_resumes_and_gives_the_same_table(suite_file, tmp_path, monkeypatch):
    suite = _suite(suite_file)
    reference = tmp_path / "reference"
    run_suite(suite, reference, progress=False)

    out = tmp_path / "interrupted"
    monkeypatch.setenv("JITTER_RAISE", "1")
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, progress=False)
    monkeypatch.delenv("JITTER_RAISE")
    assert len(list((out / "cells").glob("*.json"))) == 4  # uniform ×2 seeds, alpha=1 ×2 seeds
    assert not (out / "results.csv").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert not [p for p in (out / "cells").iterdir() if p.name.startswith(".")]  # no half-written cell

    manifest = run_suite(suite, out, progress=False)
    assert (manifest["cells_resumed"], manifest["cells_run"]) == (4, 4)
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_sigint_then_rerun_skips_finished_cells(suite_file, plugin_file, tmp_path):
    out = tmp_path / "run"
    marker = tmp_path / "blocked"
    env = {**os.environ, "JITTER_BLOCK": str(marker)}
    cmd = [sys.executable, "-m", "lmbench", "run", str(suite_file), "--out", str(out), "--no-report",
           "--plugin", str(plugin_file), "--jobs", "1"]  # serial: the 4 cells before the blocking one are done
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted after 4 of 8 cells" in stderr and "Traceback" not in stderr
    assert len(list((out / "cells").glob("*.json"))) == 4

    again = subprocess.run(cmd + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["cells_resumed"], summary["cells_run"]) == (4, 4)
    fresh = tmp_path / "fresh"
    run_suite(_suite(suite_file), fresh, progress=False)
    assert (out / "results.csv").read_bytes() == (fresh / "results.csv").read_bytes()


def test_run_dir_must_be_a_run_of_the_same_suite(suite_file, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(LmbenchError, match="exists and is not an lmbench run directory"):
        run_suite(_suite(suite_file), other, progress=False)
    out = tmp_path / "run"
    run_suite(_suite(suite_file), out, progress=False)
    renamed = parse_suite(suite_file.read_text().replace('name = "tiny"', 'name = "tiny2"'), "x.toml")
    with pytest.raises(LmbenchError, match="holds a run of suite 'tiny', not 'tiny2'"):
        run_suite(renamed, out, progress=False)


def test_changed_configuration_reruns_only_the_new_cells(suite_file, tmp_path):
    out = tmp_path / "run"
    run_suite(_suite(suite_file), out, progress=False)
    changed = parse_suite(suite_file.read_text().replace("alpha = [1.0, 2.0, 3.0]", "alpha = [1.0, 2.0, 5.0]"),
                          str(suite_file))
    manifest = run_suite(changed, out, progress=False)
    assert (manifest["cells_resumed"], manifest["cells_run"]) == (6, 2)
    results = pd.read_csv(out / "results.csv")
    assert "jittergram alpha=3.0" not in set(results.config)  # stale cells stay on disk but not in the table


def test_cli_run_prints_the_report_path(tmp_path, plugin_file):
    suite = tmp_path / "u.toml"
    suite.write_text(textwrap.dedent("""
        name = "u"
        metrics = ["perplexity", "speed"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=100"
        [[model]]
        name = "unigram"
        [[model]]
        name = "uniform"
    """))
    result = CliRunner().invoke(cli, ["run", str(suite), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'r' / 'report' / 'report.html'}" in result.stdout
    assert (tmp_path / "r" / "report" / "report.html").is_file()
    assert_clean_error(run_cli("run", "standard"), "suite 'standard' runs on your corpus", "--corpus")


def test_run_tokenizer_and_lowercase_reach_every_cell_and_are_recorded(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "train.txt").write_text("Hello, world .\nthe cat's hat\n", encoding="utf-8")
    (corpus / "test.txt").write_text("HELLO, the world\n", encoding="utf-8")
    suite = tmp_path / "tok.toml"
    suite.write_text(textwrap.dedent("""
        name = "tok"
        needs_corpus = true
        metrics = ["perplexity"]
        [[corpus]]
        spec = "replaced"
        [[model]]
        name = "unigram"
        params = { smoothing = "add_k" }
    """))

    def test_figures(run: str, *options: str) -> tuple[dict, float, float]:
        result = run_cli("run", suite, "--corpus", corpus, *options, "--out", tmp_path / run, "--json")
        assert result.returncode == 0, result.stderr
        results = pd.read_csv(tmp_path / run / "results.csv")
        test = results[(results.metric == "perplexity") & (results.group == "test")].set_index("quantity")["value"]
        (cell,) = (tmp_path / run / "cells").glob("*.json")
        return json.loads(cell.read_text()), test["tokens"], test["oov_rate"]

    # whitespace + lowercase: "hello," "the" "world" and </s>, every one seen in training.
    record, tokens, oov = test_figures("ws", "--tokenizer", "whitespace", "--lowercase")
    assert (record["tokenizer"], tokens, oov) == ("whitespace+lowercase", 4, 0.0)
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text())
    assert manifest["cells"][0]["tokenizer"] == "whitespace+lowercase"
    assert "tokenizer whitespace+lowercase" in (tmp_path / "ws" / "report" / "report.html").read_text()
    # whitespace alone: "HELLO," was never seen (1 of the 3 words).
    record, tokens, oov = test_figures("case", "--tokenizer", "whitespace")
    assert (record["tokenizer"], tokens, oov) == ("whitespace", 4, pytest.approx(1 / 3))
    # the default for a file corpus: word, which splits the comma off ("HELLO" "," "the" "world" </s>).
    record, tokens, _ = test_figures("word")
    assert (record["tokenizer"], tokens) == ("word", 5)
    assert_clean_error(run_cli("run", suite, "--corpus", corpus, "--tokenizer", "spaces", "--out", tmp_path / "x"),
                       "unknown tokenizer 'spaces'")
    assert not (tmp_path / "x").exists()
