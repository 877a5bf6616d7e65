"""Structurally tampered model.json, run manifests and cell files: one clear line and exit 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lmbench.cli import main
from lmbench.schema import ANY, Int, ListOf, Obj, OneOf, SchemaError, Str, check

CORPUS = "synthetic:grammar?sentences=60"
TINY_RNN = ["-p", "hidden=8", "-p", "emb=8", "-p", "bptt=5", "-p", "batch=4", "-p", "epochs=2"]


def run(capsys, *argv: str) -> tuple[int, str]:
    """Run the CLI in-process; (exit status, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def rnn_dir(tmp_path_factory) -> Path:
    """A tiny RNN stopped after 3 steps (so it has a training state to resume)."""
    out = tmp_path_factory.mktemp("rnn") / "m"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "rnn", "--corpus", CORPUS, *TINY_RNN, "-p", "max_steps=3", "--out", str(out), "--json"])
    assert exit_info.value.code == 0
    return out


def _tampered(rnn_dir: Path, tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    m = tmp_path / "m"
    shutil.copytree(rnn_dir, m)
    header = json.loads((m / "model.json").read_text(encoding="utf-8"))
    edit(header)
    (m / "model.json").write_text(json.dumps(header), encoding="utf-8")
    return m


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(header: dict) -> None:
        *parents, last = path.split(".")
        node = header
        for key in parents:
            node = node[key] if key in node else next(iter(node.values())) if key == "*" else node[key]
        if last == "*":
            last = next(iter(node))
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return edit


_DELETE = object()

# (what to change in model.json, the command that reads it, fragments the one error line must hold)
CASES = {
    "params as a list": ("params", [1, 2], "eval", ["model.json.params", "expected an object"]),
    "arrays as a list": ("arrays", ["w.emb"], "eval", ["model.json.arrays", "expected an object"]),
    "array entry without sha256": ("arrays.*.sha256", _DELETE, "eval", ["'sha256' is missing"]),
    "array shape of strings": ("arrays.*.shape", ["8", "8"], "eval", ["shape[0]", "expected an integer"]),
    "tokenizer with an extra key": ("tokenizer.evil", 1, "eval", ["unexpected key 'evil'"]),
    "tokenizer of the wrong type": ("tokenizer", "whitespace", "eval", ["model.json.tokenizer"]),
    "tokenizer flag not a boolean": ("tokenizer.lowercase", "yes", "eval", ["tokenizer.lowercase", "boolean"]),
    "fit_info as a string": ("fit_info", "abc", "gradflow", ["model.json.fit_info", "expected an object"]),
    "grad_norms of strings": ("fit_info.grad_norms", ["a"], "gradflow", ["grad_norms[0]"]),
    "train_state epoch 'x'": ("state.train.epoch", "x", "resume", ["state.train.epoch", "expected an integer"]),
    "train_state history null": ("state.train.history", None, "resume", ["state.train.history", "list"]),
    "train_state step negative": ("state.train.step", -1, "resume", ["state.train.step", "≥ 0"]),
    "optimizer lr a string": ("state.optimizer.lr", "fast", "resume", ["state.optimizer.lr", "number"]),
    "state as a list": ("state", [], "resume", ["model.json.state", "expected an object"]),
    "model name a number": ("model", 3, "eval", ["model.json.model", "expected a string"]),
    "unknown top-level key": ("extra", {}, "eval", ["unexpected key 'extra'"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_model_json_gives_one_line(rnn_dir, tmp_path, capsys, case):
    path, value, command, fragments = CASES[case]
    m = _tampered(rnn_dir, tmp_path, _set(path, value))
    argv = {"eval": ["eval", m, "--corpus", CORPUS],
            "gradflow": ["gradflow", m, "--max-lag", "3", "--positions", "2"],
            "resume": ["train", "rnn", "--corpus", CORPUS, "--resume", m, "-p", "max_steps=6"]}[command]
    code, err = run(capsys, *argv)
    assert_one_line_error(code, err, *fragments)
    if command == "resume":  # nothing was written over the tampered checkpoint
        assert json.loads((m / "model.json").read_text(encoding="utf-8"))["state"] == \
            json.loads(json.dumps(_tampered_header(rnn_dir, path, value)["state"]))


def _tampered_header(rnn_dir: Path, path: str, value) -> dict:
    header = json.loads((rnn_dir / "model.json").read_text(encoding="utf-8"))
    _set(path, value)(header)
    return header


def test_the_untampered_checkpoint_resumes(rnn_dir, tmp_path, capsys):
    m = tmp_path / "m"
    shutil.copytree(rnn_dir, m)
    code, err = run(capsys, "train", "rnn", "--corpus", CORPUS, "--resume", m, "-p", "max_steps=4", "--json")
    assert code == 0, err
    assert json.loads((m / "model.json").read_text(encoding="utf-8"))["state"]["train"]["step"] == 4


def _fake_run(tmp_path: Path, manifest: dict, cells: dict[str, object] | None = None) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"format": "lmbench-run/1", "suite": "s", **manifest}),
                                           encoding="utf-8")
    (run_dir / "results.csv").write_text("cell,corpus,model,config,seed,metric,quantity,group,x,value\n",
                                         encoding="utf-8")
    for cell_id, record in (cells or {}).items():
        (run_dir / "cells" / f"{cell_id}.json").write_text(json.dumps(record), encoding="utf-8")
    return run_dir


@pytest.mark.parametrize("manifest, fragments", [
    ({"cells": "abc"}, ["manifest.json.cells", "expected a list"]),
    ({"cells": [{"name": "c1"}]}, ["manifest.json.cells[0]", "'id' is missing"]),
    ({"cells": [{"id": "../../etc/passwd"}]}, ["manifest.json.cells[0].id"]),
    ({"seeds": "0"}, ["manifest.json.seeds", "expected a list"]),
    ({"wall_seconds": "fast"}, ["manifest.json.wall_seconds", "number"]),
    ({"suite": ["s"]}, ["manifest.json.suite", "expected a string"]),
])
def test_tampered_run_manifest_gives_one_line(tmp_path, capsys, manifest, fragments):
    run_dir = _fake_run(tmp_path, manifest)
    code, err = run(capsys, "report", run_dir, "--out", tmp_path / "report")
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "report").exists()


def test_tampered_cell_file_gives_one_line(tmp_path, capsys):
    cell = {"format": "lmbench-cell/1", "id": "c1", "corpus": "c", "model": None, "config": "corpus",
            "seed": 0, "metrics": [], "rows": "none", "timings": [], "notes": [], "wall_seconds": 0.1}
    run_dir = _fake_run(tmp_path, {"cells": [{"id": "c1"}]}, {"c1": cell})
    code, err = run(capsys, "report", run_dir, "--out", tmp_path / "report")
    assert_one_line_error(code, err, "c1.json", ".rows", "expected a list")


def test_schema_checker_by_hand():
    schema = Obj(required={"a": Int(min=0)}, optional={"b": OneOf(None, ListOf(Str(choices=("x", "y"))))},
                 extra=ANY)
    assert check({"a": 0, "b": ["x", "y"], "z": object()}, schema, "f") is not None
    for bad, message in [({"a": True}, "f.a: expected an integer, got a boolean"),
                         ({"a": 1.0}, "f.a: expected an integer, got the number 1.0"),
                         ({"a": -1}, "f.a: expected an integer ≥ 0, got -1"),
                         ({}, "f: the key 'a' is missing"),
                         ({"a": 1, "b": ["z"]}, "f.b[0]: expected one of x, y, got the string 'z'"),
                         ({"a": 1, "b": 3}, "f.b: expected null or a list, got the number 3"),
                         ([], "f: expected an object, got a list")]:
        with pytest.raises(SchemaError) as e:
            check(bad, schema, "f")
        assert str(e.value) == message
    with pytest.raises(SchemaError, match="unexpected key 'q'"):
        check({"a": 1, "q": 2}, Obj(required={"a": Int()}), "f")
