"""Reports: report.md + self-contained report.html with the expected figures and tables; compare; bad run dirs."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import assert_clean_error, run_cli

from lmbench.bench.runner import RESULT_COLUMNS, TIMING_COLUMNS, run_suite
from lmbench.bench.suite import parse_suite
from lmbench.cli import cli
from lmbench.errors import LmbenchError
from lmbench.report.build import write_report
from lmbench.report.compare import compare_runs
from lmbench.report.figures import RunData, draw_figures

SVG = b"<svg "

SUITE = """
name = "rep"
seeds = [0, 1]
metrics = ["perplexity", "speed", "learning_curve"]
[[corpus]]
spec = "synthetic:grammar?sentences=120"
[[model]]
name = "uniform"
[[model]]
name = "unigram"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "rep"
    run_suite(parse_suite(SUITE, "rep.toml"), out, progress=False)
    return out


def test_report_files_and_figures(run_dir, tmp_path):
    html_path = write_report(run_dir, tmp_path / "report")
    assert html_path == tmp_path / "report" / "report.html"
    html = html_path.read_text()
    # Self-contained: every image is a data URI, nothing is fetched from anywhere.
    images = re.findall(r"<img [^>]*src='([^']+)'", html)
    assert len(images) == 2 and all(src.startswith("data:image/svg+xml;base64,") for src in images)
    assert SVG in base64.b64decode(images[0].split(",", 1)[1])[:400]
    assert not re.search(r"(src|href)=['\"](https?:)?//", html)
    assert "<script" not in html
    assert "id='perplexity'" in html and "id='speed'" in html
    # The figure's table sits beside it with the numbers: unigram's test perplexity is ∞ (unseen words).
    assert "∞" in html
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Perplexity per model" in md and "![Perplexity per model](figures/perplexity.svg)" in md
    assert SVG in (tmp_path / "report" / "figures" / "perplexity.svg").read_bytes()[:400]
    assert "learning_curve: not applicable" in md  # the notes say which metric did not apply, and why


def test_perplexity_table_averages_over_seeds(run_dir):
    results = pd.read_csv(run_dir / "results.csv")
    data = RunData(results, pd.read_csv(run_dir / "timings.csv"), [], {})
    fig = next(f for f in draw_figures(data) if f.key == "perplexity")
    row = fig.table[fig.table.config == "uniform"].iloc[0]
    raw = results[(results.config == "uniform") & (results.quantity == "perplexity") & (results.group == "test")]
    assert row["test perplexity"] == pytest.approx(raw["value"].mean()) and row["seeds"] == 2
    # uniform's perplexity is the same for every seed, so the above cannot tell a mean from the first seed:
    # give seed 1 three times seed 0's value; the table must show their mean, 2x, and their spread.
    v0 = raw[raw.seed == 0]["value"].iloc[0]
    results.loc[raw.index[raw.seed == 1], "value"] = 3 * v0
    fig = next(f for f in draw_figures(RunData(results, data.timings, [], {})) if f.key == "perplexity")
    row = fig.table[fig.table.config == "uniform"].iloc[0]
    assert row["test perplexity"] == pytest.approx(2 * v0) and row["seeds"] == 2
    assert row["sd over seeds"] == pytest.approx(np.sqrt(2) * v0)  # sample sd of (v0, 3 v0)


def _rows(**cols):
    n = len(cols["value"])
    base = {"cell": ["c"] * n, "corpus": ["toy"] * n, "model": ["m"] * n, "seed": [0] * n, "group": [None] * n,
            "x": [None] * n}
    base.update(cols)
    return pd.DataFrame(base)[RESULT_COLUMNS]


def test_every_figure_kind_is_drawn_from_its_rows():
    lags = np.arange(0, 6)
    results = pd.concat([
        _rows(config=["a", "b"], metric="perplexity", quantity="perplexity", group="test", value=[12.0, 9.0]),
        _rows(config=["a", "b"], metric="perplexity", quantity="normalized", group="test", value=[1.0, 1.0]),
        _rows(config=["(corpus)"], metric="floor", quantity="bayes_perplexity", value=[6.0]),
        _rows(config=["a"] * 4, metric="learning_curve", quantity="valid_ppl", x=[1, 2, 3, 4],
              value=[30.0, 20.0, 15.0, 12.0]),
        _rows(config=["a"] * 3, metric="distance", quantity="accuracy", x=[1, 4, 16], value=[1.0, 0.8, 0.5]),
        _rows(config=["a"] * 3, metric="distance", quantity="chance", x=[1, 4, 16], value=[0.25] * 3),
        _rows(config=["a", "a"], metric="pairs", quantity="accuracy", group=["attractors=0", "attractors=2"],
              value=[0.9, 0.6]),
        _rows(config=["(corpus)"] * 3, metric="sparsity", quantity="unseen_fraction", x=[1, 2, 3],
              value=[0.01, 0.2, 0.5]),
        _rows(config=["a"] * 6, metric="gradflow", quantity="grad_norm", x=lags, group="layer 1",
              value=list(0.5 ** lags)),
        _rows(config=["s2s"] * 3, metric="bleu", quantity="bleu_by_length", x=[5, 10, 20],
              group=["1-5", "6-10", "11-20"], value=[80.0, 60.0, 30.0]),
        _rows(config=["s2s"] * 3, metric="bleu", quantity="sentences_by_length", x=[5, 10, 20],
              group=["1-5", "6-10", "11-20"], value=[10.0, 20.0, 5.0]),
        _rows(config=["s2s"], metric="bleu", quantity="bleu", value=[55.0]),
    ], ignore_index=True)
    timings = pd.DataFrame({"cell": "c", "corpus": "toy", "model": "m", "config": ["a", "a", "b", "b"],
                            "seed": 0, "metric": "speed",
                            "quantity": ["train_tokens_per_second", "eval_tokens_per_second"] * 2,
                            "value": [1e4, 1e6, 2e3, 1e5]})[TIMING_COLUMNS]
    figures = {f.key: f for f in draw_figures(RunData(results, timings, [], {}))}
    assert list(figures) == ["perplexity", "learning_curves", "distance", "pairs", "sparsity", "gradflow", "speed",
                             "bleu"]
    for fig in figures.values():
        assert SVG in fig.image[:400] and not fig.table.empty
    ppl = figures["perplexity"].table.set_index("config")
    assert ppl.loc["b", "bayes floor"] == 6.0
    assert ppl.loc["b", "excess bits/token"] == pytest.approx(np.log2(9.0 / 6.0))
    assert list(figures["distance"].table["a"]) == [1.0, 0.8, 0.5]
    assert list(figures["distance"].table["chance"]) == [0.25] * 3
    assert list(figures["bleu"].table["sentences"]) == [10.0, 20.0, 5.0]
    assert list(figures["learning_curves"].table.columns) == ["corpus", "config", "quantity", "epoch 1", "epoch 2",
                                                              "epoch 3", "epoch 4"]
    assert list(figures["pairs"].table["group"]) == ["attractors=0", "attractors=2"]
    assert list(figures["pairs"].table["a"]) == [0.9, 0.6]
    assert list(figures["sparsity"].table["n"]) == [1, 2, 3]
    assert figures["gradflow"].table["a layer 1"].iloc[-1] == pytest.approx(0.5 ** 5)
    assert set(figures["speed"].table.columns) >= {"test perplexity", "train_tokens_per_second"}
    assert list(figures["bleu"].table["s2s"]) == [80.0, 60.0, 30.0]


def test_compare_identical_and_different_runs(run_dir, tmp_path):
    same = tmp_path / "same"
    run_suite(parse_suite(SUITE, "rep.toml"), same, progress=False)
    assert compare_runs(run_dir, same).empty
    other = tmp_path / "other"
    run_suite(parse_suite(SUITE.replace("sentences=120", "sentences=150"), "rep.toml"), other, progress=False)
    diff = compare_runs(run_dir, other)
    ppl = diff[(diff.config == "uniform") & (diff.quantity == "perplexity") & (diff.group == "test")]
    assert len(ppl) == 2 and set(ppl.status) == {"changed"}
    row = ppl.iloc[0]
    assert row["diff"] == pytest.approx(row["B"] - row["A"])
    result = CliRunner().invoke(cli, ["compare", str(run_dir), str(other), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n_differences"] == len(diff)
    assert {h["config"] for h in out["headline"]} == {"uniform", "unigram"}
    text = CliRunner().invoke(cli, ["compare", str(run_dir), str(same)])
    assert "no differences in the results tables" in text.stdout


def test_a_directory_that_is_not_a_run(tmp_path, run_dir):
    with pytest.raises(LmbenchError, match="is not a run directory: it has no lmbench manifest.json"):
        write_report(tmp_path)
    with pytest.raises(LmbenchError, match="no such directory"):
        write_report(tmp_path / "missing")
    with pytest.raises(LmbenchError, match="is not a run directory"):
        compare_runs(run_dir, tmp_path)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "manifest.json").write_text(json.dumps({"format": "lmbench-run/1", "suite": "x"}))
    with pytest.raises(LmbenchError, match="unfinished run"):
        write_report(unfinished)
    # Through the CLI: one line on stderr, exit 2.
    assert_clean_error(run_cli("report", tmp_path), "is not a run directory")
    assert_clean_error(run_cli("compare", run_dir, unfinished), "unfinished run")


def test_cli_report_json(run_dir, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(run_dir), "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"] == str(tmp_path / "r" / "report.html")


def test_sample_translations_section():
    from lmbench.report.build import render_html, sample_translations

    records = [{"config": "s2s", "extras": {"bleu": {"samples": [
        {"source": "나는 사과를 먹는다", "reference": "i eat an apple", "translation": "i eat a apple"}]}}},
        {"config": "lstm", "extras": {}}]
    samples = sample_translations(records)
    assert samples.to_dict("records") == [{"config": "s2s", "source": "나는 사과를 먹는다",
                                           "reference": "i eat an apple", "translation": "i eat a apple"}]
    html = render_html("t", {}, [], [], samples)
    assert "<h2>Sample translations</h2>" in html and "나는 사과를 먹는다" in html


def test_tables_show_whole_numbers_as_integers():
    from lmbench.report.build import table_html

    table = pd.DataFrame({"n": [1.0, 2.0], "types": [2808.0, 12345678.0], "share": [1.0, 0.25],
                          "perplexity": [194.17794, float("inf")], "speed": [3485285.3, 0.000123]})
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table_html(table))
    assert cells == ["1", "2,808", "1", "194.178", "3.49e+06", "2", "12,345,678", "0.25", "∞", "0.000123"]
    assert "<div class='tbl'>" in table_html(table)  # a wide table scrolls sideways instead of being cut


def test_notes_are_grouped_and_collapsed_and_a_discount_fallback_is_shown(tmp_path):
    suite = parse_suite("""
        name = "notes"
        metrics = ["perplexity", "learning_curve"]
        [[corpus]]
        spec = "synthetic:dependency?sentences=100"
        [[model]]
        name = "trigram"
        [[model]]
        name = "unigram"
    """, "notes.toml")
    run_suite(suite, tmp_path / "run", progress=False)
    html = write_report(tmp_path / "run").read_text()
    notes = html[html.index("<section id='notes'>"):]
    assert notes.startswith("<section id='notes'><details><summary>Notes (3)")
    assert "<details><summary>learning_curve (2)</summary>" in notes
    assert "<details><summary>discounts (1)</summary>" in notes
    (cell,) = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")
               if json.loads(p.read_text())["config"] == "trigram"]
    orders = cell["fit_info"]["discount_fallback"]["orders"]
    assert orders and orders == cell["fit_info"]["fallback_discounts_orders"]
    assert f"trigram on synthetic-dependency: the discounts of order(s) {', '.join(map(str, orders))} could not" \
        in notes
    assert "KenLM&#x27;s fallback D1=0.5, D2=1.0, D3+=1.5 was used" in notes
