"""Benchmark commands: run a suite, write a run's report, compare two runs, list suites and metrics."""

from __future__ import annotations

import math
from pathlib import Path

import click

from lmbench.cli.app import (
    NONNEG_FLOAT,
    NONNEG_INT,
    cli,
    emit_json,
    info,
    json_option,
    plugin_option,
    progress_mode,
    quiet_option,
    threads_option,
)
from lmbench.errors import LmbenchError
from lmbench.outpaths import check_output_path, removed_on_failure
from lmbench.text.tokenize import TOKENIZER_HELP

# The bench and report layers import pandas and matplotlib (seconds): each command below imports what it
# uses itself, so that every other lmbench command starts without them.


@cli.command("run")
@click.argument("suite_name", metavar="SUITE")
@click.option("--corpus", "spec", default=None, help="Run the suite on this corpus spec instead of its own.")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Run directory [default: runs/SUITE]. An existing run there is resumed.")
@click.option("--report-out", default=None, type=click.Path(file_okay=False),
              help="Where to write the report [default: RUN_DIR/report].")
@click.option("--tokenizer", "tokenizer_kind", default=None, metavar="KIND",
              help=f"Tokenizer of the suite's text corpora: {TOKENIZER_HELP} [default: the suite's; else whitespace "
                   "for synthetic: corpora, word otherwise].")
@click.option("--lowercase", is_flag=True, help="Lower-case the suite's text corpora before tokenizing.")
@click.option("--fresh", is_flag=True, help="Recompute every cell instead of resuming finished ones.")
@click.option("--no-report", is_flag=True, help="Do not write the report at the end.")
@click.option("--jobs", "-j", default=None, type=click.IntRange(min=1),
              help="Run cells in N processes, one BLAS thread each [default: the number of cores]; "
                   "results.csv is the same for every N.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run cells on the Dask cluster at ADDRESS (e.g. tcp://HOST:8786; needs the `dask` extra).")
@plugin_option
@quiet_option
@json_option
@threads_option
def run_command(suite_name: str, spec: str | None, tokenizer_kind: str | None, lowercase: bool, out: str | None,
                report_out: str | None, fresh: bool, no_report: bool, jobs: int | None, scheduler: str | None,
                quiet: bool, as_json: bool) -> None:
    """Run SUITE (a built-in name or a .toml file), save each cell as it finishes, then write the report."""
    from lmbench.bench.runner import run_suite
    from lmbench.bench.suite import check_suite_inputs, load_suite

    suite = load_suite(suite_name, spec, tokenizer_kind, lowercase)
    out_dir = check_output_path(Path(out) if out else Path("runs") / suite.name, "dir")
    if report_out is not None and not no_report:
        check_output_path(report_out, "dir", "--report-out")
    check_suite_inputs(suite)  # every corpus and metric option, before the first cell starts
    if scheduler and jobs is not None:
        raise LmbenchError("give --jobs or --scheduler, not both (the Dask cluster decides how many cells run at once)")
    if scheduler:  # the extra is installed and the cluster answers, before the run directory is written
        from lmbench.bench.executor import check_scheduler

        check_scheduler(scheduler)
    cells = suite.cells()
    info(f"suite {suite.name}: {len(cells)} cells ({len(suite.corpora)} corpora, {len(suite.models)} model "
         f"configurations, seeds {suite.seeds}) → {out_dir}", quiet=as_json or quiet)
    manifest = run_suite(suite, out_dir, progress=progress_mode(as_json, quiet), fresh=fresh,
                         jobs=jobs, scheduler=scheduler)
    report = None
    if not no_report:
        from lmbench.report.build import write_report

        with removed_on_failure(report_out if report_out is not None else out_dir / "report"):
            report = write_report(out_dir, report_out)
    summary = {"suite": suite.name, "run_dir": str(out_dir), "report": str(report) if report else None,
               "results": str(out_dir / "results.csv"), "cells": manifest["n_cells"],
               "cells_run": manifest["cells_run"], "cells_resumed": manifest["cells_resumed"],
               "wall_seconds": manifest["wall_seconds"]}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{manifest['n_cells']} cells ({manifest['cells_run']} run, {manifest['cells_resumed']} resumed) in "
               f"{manifest['wall_seconds']:.1f} s; results: {out_dir / 'results.csv'}")
    if report:
        click.echo(f"report: {report}")


@cli.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "out", default=None, type=click.Path(file_okay=False),
              help="Report directory [default: RUN_DIR/report].")
@json_option
def report_command(run_dir: str, out: str | None, as_json: bool) -> None:
    """Write report.md and a self-contained report.html (figures embedded) for a finished run."""
    from lmbench.bench.runner import check_run_dir
    from lmbench.report.build import write_report

    check_run_dir(run_dir)
    report_dir = check_output_path(Path(out) if out is not None else Path(run_dir) / "report", "dir")
    with removed_on_failure(report_dir):
        path = write_report(run_dir, out)
    if as_json:
        emit_json({"report": str(path), "markdown": str(path.with_name("report.md"))})
    else:
        click.echo(f"report: {path}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


@cli.command("compare")
@click.argument("run_a", type=click.Path(file_okay=False))
@click.argument("run_b", type=click.Path(file_okay=False))
@click.option("--rtol", type=NONNEG_FLOAT, default=1e-9, show_default=True,
              help="Relative tolerance under which values count as equal.")
@click.option("--limit", type=NONNEG_INT, default=40, show_default=True,
              help="Show at most this many differing rows (text mode).")
@json_option
def compare_command(run_a: str, run_b: str, rtol: float, limit: int, as_json: bool) -> None:
    """Show how RUN_B's results differ from RUN_A's: headline figures, then every changed row."""
    from lmbench.report.compare import compare_runs, compare_summary

    diff = compare_runs(run_a, run_b, rtol)
    headline = compare_summary(run_a, run_b)["headline"]
    if as_json:
        emit_json({"run_a": run_a, "run_b": run_b, "headline": headline,
                   "differences": diff.to_dict(orient="records"), "n_differences": len(diff)})
        return
    click.echo(f"A = {run_a}\nB = {run_b}")
    if headline:
        click.echo(f"\n{'corpus':<22} {'config':<28} {'figure':<22} {'A':>12} {'B':>12} {'B-A':>12}")
        for h in headline:
            click.echo(f"{h['corpus']:<22} {h['config']:<28} {h['figure']:<22} {_fmt(h['A']):>12} "
                       f"{_fmt(h['B']):>12} {_fmt(h['B-A']):>12}")
    if diff.empty:
        click.echo("\nno differences in the results tables")
        return
    click.echo(f"\n{len(diff)} differing rows" + (f" (first {limit})" if len(diff) > limit else "") + ":")
    for row in diff.head(limit).itertuples(index=False):
        where = " ".join(_fmt(v) for v in (row.corpus, row.config, f"seed={row.seed}", row.metric, row.quantity,
                                           row.group, "" if math.isnan(row.x) else f"x={row.x:g}") if v != "")
        click.echo(f"  {where}: {_fmt(row.A)} → {_fmt(row.B)} ({row.status})")


@cli.command("suites")
@json_option
def suites_command(as_json: bool) -> None:
    """List the built-in suites and the metrics a suite may ask for."""
    from lmbench.bench.metrics import get_metric, metric_names
    from lmbench.bench.suite import builtin_suites, parse_suite

    suites = {}
    for name, path in builtin_suites().items():
        text = path.read_text(encoding="utf-8")
        try:
            suites[name] = parse_suite(text, str(path)).description
        except LmbenchError as e:  # a suite whose optional parts are missing is still listed, with the reason
            suites[name] = f"(unavailable: {e})"
    metrics = {}
    for name in metric_names():
        m = get_metric(name)
        metrics[name] = {"description": m.description, "kinds": list(m.kinds), "scope": m.scope,
                         "requires": m.requires, "options": m.options}
    if as_json:
        emit_json({"suites": suites, "metrics": metrics})
        return
    click.echo("suites:")
    for name, desc in suites.items():
        click.echo(f"  {name:<10} {desc}")
    click.echo("metrics:")
    for name, m in metrics.items():
        click.echo(f"  {name:<15} {m['description']}")
