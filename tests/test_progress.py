"""Progress off a terminal: one log line per epoch and per cell on stderr, with elapsed time and ETA;
--quiet silences it; --json keeps stdout one JSON object."""

from __future__ import annotations

import io
import json
import re
import textwrap

import pytest
from conftest import run_cli

from lmbench.progress import Progress

LINE_END = r" \[elapsed \d\d:\d\d, ETA (\d\d:\d\d|--:--)\]$"
SUITE = """
    name = "progress"
    metrics = ["perplexity"]
    [[corpus]]
    spec = "synthetic:grammar?sentences=200"
    [[model]]
    name = "unigram"
    [[model]]
    name = "rnn"
    params = { emb = 8, hidden = 8, batch = 4, bptt = 5, epochs = 2 }
"""


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_off_a_terminal_logs_milestones_only():
    stream = Pipe()
    bar = Progress(4, "job", unit="cell", stream=stream)
    bar.update(1)  # no bar is drawn into a log
    assert stream.getvalue() == ""
    bar.log("cell 1 done")
    bar.close()
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(r"cell 1 done" + LINE_END, line), line
    quiet = Pipe()
    Progress(4, "job", stream=quiet, enabled=False).log("nothing")
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_run_off_a_terminal_prints_a_line_per_epoch_and_per_cell(tmp_path, jobs):
    suite = tmp_path / "p.toml"
    suite.write_text(textwrap.dedent(SUITE))
    result = run_cli("run", suite, "--out", tmp_path / "r", "--no-report", "--jobs", jobs)  # stderr is a pipe here
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(re.search(LINE_END, line) for line in lines), lines
    # In a worker process too (--jobs 2), the epochs are logged as whole lines.
    assert [line.split(":")[0] for line in lines if line.startswith("train ")] == ["train rnn epoch 1/2",
                                                                                  "train rnn epoch 2/2"]
    cells = [line for line in lines if line.startswith("[")]
    assert sorted(c.split()[0] for c in cells) == ["[1/2]", "[2/2]"]  # in finishing order with --jobs 2
    assert sorted(c.split()[1] for c in cells) == ["rnn", "unigram"]
    assert "test ppl" in next(c for c in cells if " rnn (seed 0)" in c)
    executor = [line for line in lines if line.startswith("running ")]
    if jobs == "1":
        assert executor == []
    else:
        assert len(executor) == 1 and executor[0].startswith("running 2 cells in 2 processes")
    assert len(lines) == 4 + len(executor)
    # --quiet: nothing on stderr; --json: nothing on stderr and one JSON object on stdout.
    quiet = run_cli("run", suite, "--out", tmp_path / "q", "--no-report", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    as_json = run_cli("run", suite, "--out", tmp_path / "j", "--no-report", "--json")
    assert as_json.returncode == 0 and as_json.stderr == "", as_json.stderr
    assert json.loads(as_json.stdout)["cells"] == 2


def test_train_off_a_terminal_prints_a_line_per_epoch(tmp_path):
    result = run_cli("train", "rnn", "--corpus", "synthetic:grammar?sentences=200", "-p", "epochs=3", "-p", "emb=8",
                     "-p", "hidden=8", "-p", "bptt=5", "--out", tmp_path / "m")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"train rnn epoch {e}/3" for e in (1, 2, 3)], lines
    assert all(re.search(r"loss [\d.]+ val_ppl [\d.]+ [\d,]+ tok/s" + LINE_END, line) for line in lines), lines
    quiet = run_cli("train", "rnn", "--corpus", "synthetic:grammar?sentences=200", "-p", "epochs=1", "-p", "emb=8",
                    "-p", "hidden=8", "-p", "bptt=5", "--out", tmp_path / "q", "-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
