"""Write a run's report: report.md (+ PNG files) and a self-contained report.html (PNGs as data URIs)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lmbench.bench.runner import load_run
from lmbench.fileio import atomic_path, write_text_atomic
from lmbench.report.claims import Claim, Verdict, judge_all
from lmbench.report.figures import Figure, RunData, draw_figures

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{margin-bottom:4px} .sub{color:#555;margin-top:0}
section{border-top:1px solid #ddd;padding-top:8px;margin-top:18px}
.pair{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.pair img{max-width:min(880px,62%);height:auto;border:1px solid #eee;flex:0 1 auto}
.pair .tbl{overflow:auto;flex:1 1 360px;max-width:720px;max-height:560px}
@media (max-width:900px){.pair img{max-width:100%}}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right} th{background:#f3f3f3}
td.t{text-align:left} .caption{color:#444;font-size:13px;max-width:1100px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;color:#fff}
.holds{background:#2e7d32} .does-not-hold{background:#c62828} .not-measured{background:#757575}
blockquote{margin:6px 0;padding-left:10px;border-left:3px solid #ccc;color:#333}
.notes{font-size:12px;color:#555} code{background:#f5f5f5;padding:0 3px}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}" if abs(value) < 100 else f"{value:,.1f}"
    return "" if value is None else str(value)


def table_html(table: pd.DataFrame) -> str:
    """An HTML table with readable numbers (no pandas styling, no scripts)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        cells = []
        for value in row:
            cls = ' class="t"' if isinstance(value, str) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def table_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table."""
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _summary(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    versions = manifest.get("versions", {})
    git = manifest.get("git") or {}
    machine = manifest.get("machine", {})
    wall = manifest.get("wall_seconds")
    total = manifest.get("wall_seconds_total", wall)
    ran, resumed = manifest.get("cells_run", 0), manifest.get("cells_resumed", 0)
    if ran == 0 and resumed:  # a re-run with nothing left to do: the cells come from earlier invocations
        cells = f"{manifest.get('n_cells')} (all computed by earlier invocations of this run)"
    else:
        cells = f"{manifest.get('n_cells')} ({ran} run by the last invocation, {resumed} resumed from an earlier one)"
    items = [
        ("suite", f"{manifest.get('suite')} — {manifest.get('description', '')}"),
        ("seeds", ", ".join(map(str, manifest.get("seeds", [])))),
        ("cells", cells),
        ("wall time", f"{total:.1f} s over all invocations of the run; "
                      f"{manifest.get('cell_seconds_total', float('nan')):.1f} s summed over cells"
         if isinstance(total, float) else "?"),
        ("finished", str(manifest.get("finished", "?"))),
        ("machine", f"{machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPUs"),
        ("git", f"{git.get('commit', '?')[:12]}{' (with local changes)' if git.get('dirty') else ''}"
         if git else "not a git checkout"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    if manifest.get("skipped_corpora"):
        items.append(("skipped corpora", "; ".join(manifest["skipped_corpora"])))
    if manifest.get("plugins"):
        items.append(("plugins", ", ".join(f"{k}: {v}" for k, v in manifest["plugins"].items())))
    return items


def _notes(records: list[dict[str, Any]]) -> list[str]:
    notes = []
    for rec in records:
        for note in rec.get("notes", []):
            notes.append(f"{rec['config']} on {rec['corpus']}: {note}")
    return list(dict.fromkeys(notes))


def sample_translations(records: list[dict[str, Any]]) -> pd.DataFrame:
    """A few test translations of each translator (the BLEU metric keeps them)."""
    rows = [{"config": rec["config"], **sample} for rec in records
            for sample in (rec.get("extras") or {}).get("bleu", {}).get("samples", [])]
    return pd.DataFrame(rows, columns=["config", "source", "reference", "translation"])


ClaimVerdicts = Sequence[tuple[Claim, Verdict]]


def claims_html(claims: ClaimVerdicts, figures: list[Figure]) -> list[str]:
    """One section per claim: heading, the lecture's statement, the verdict, its figures and evidence table."""
    by_key = {f.key: f for f in figures}
    parts = []
    for c, v in claims:
        shown = "".join(f"<img alt='{html.escape(by_key[k].title)}' src='data:image/png;base64,"
                        f"{base64.b64encode(by_key[k].png).decode('ascii')}'>" for k in c.figures if k in by_key)
        parts.append(
            f"<section id='claim-{c.key}'><h2>Claim: {html.escape(c.title)}</h2>"
            f"<blockquote>{html.escape(c.statement)}<br><span lang='ko'>{html.escape(c.korean)}</span></blockquote>"
            f"<p><span class='badge {v.status.replace(' ', '-')}'>{html.escape(v.status)}</span> "
            f"{html.escape(v.detail)}</p><div class='pair'>{shown}"
            f"<div class='tbl'>{table_html(v.evidence)}</div></div></section>")
    return parts


def claims_markdown(claims: ClaimVerdicts) -> list[str]:
    """The claim sections as Markdown (figures by reference to figures/KEY.png)."""
    lines: list[str] = []
    for c, v in claims:
        lines += ["", f"## Claim: {c.title}", "", f"> {c.statement}", ">", f"> {c.korean}", "",
                  f"**{v.status}** — {v.sentence}", ""]
        lines += [f"![{k}](figures/{k}.png)" for k in c.figures] + ([""] if c.figures else [])
        if not v.evidence.empty:
            lines.append(table_markdown(v.evidence))
    return lines


def render_html(title: str, manifest: dict[str, Any], figures: list[Figure], notes: list[str],
                samples: pd.DataFrame | None = None, claims: ClaimVerdicts = ()) -> str:
    """The whole report as one HTML document with every image inline."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<table class='meta'>" + "".join(f"<tr><th>{html.escape(k)}</th><td class='t'>{html.escape(v)}</td></tr>"
                                              for k, v in _summary(manifest)) + "</table>"]
    if not figures:
        parts.append("<p>This run measured nothing that the report draws.</p>")
    parts.append("<ul>" + "".join(f"<li><a href='#claim-{c.key}'>Claim: {html.escape(c.title)}</a> — "
                                  f"{html.escape(v.status)}</li>" for c, v in claims)
                 + "".join(f"<li><a href='#{f.key}'>{html.escape(f.title)}</a></li>" for f in figures) + "</ul>")
    parts += claims_html(claims, figures)
    for fig in figures:
        data = base64.b64encode(fig.png).decode("ascii")
        parts.append(
            f"<section id='{fig.key}'><h2>{html.escape(fig.title)}</h2>"
            f"<p class='caption'>{html.escape(fig.caption)}</p><div class='pair'>"
            f"<img alt='{html.escape(fig.title)}' src='data:image/png;base64,{data}'>"
            f"<div class='tbl'>{table_html(fig.table)}</div></div></section>")
    if samples is not None and not samples.empty:
        parts.append(f"<section id='samples'><h2>Sample translations</h2>{table_html(samples)}</section>")
    if notes:
        parts.append("<section><h2>Notes</h2><ul class='notes'>"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, manifest: dict[str, Any], figures: list[Figure], notes: list[str],
                    samples: pd.DataFrame | None = None, claims: ClaimVerdicts = ()) -> str:
    """The report as Markdown, images as files in figures/."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in _summary(manifest)]
    lines += claims_markdown(claims)
    for fig in figures:
        lines += ["", f"## {fig.title}", "", fig.caption, "", f"![{fig.title}](figures/{fig.key}.png)", "",
                  table_markdown(fig.table)]
    if samples is not None and not samples.empty:
        lines += ["", "## Sample translations", "", table_markdown(samples)]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw the figures of a finished run and write report.md, figures/*.png and report.html; return the HTML path."""
    run_dir, manifest, results, timings, records = load_run(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    data = RunData(results, timings, records, manifest)
    figures = draw_figures(data)
    title = f"lmbench report: suite {manifest.get('suite')}"
    notes = _notes(records)
    out.mkdir(parents=True, exist_ok=True)
    for fig in figures:
        with atomic_path(out / "figures" / f"{fig.key}.png") as tmp:
            tmp.write_bytes(fig.png)
    samples = sample_translations(records)
    claims = judge_all(results)
    write_text_atomic(out / "report.md", render_markdown(title, manifest, figures, notes, samples, claims))
    write_text_atomic(out / "report.html", render_html(title, manifest, figures, notes, samples, claims))
    return out / "report.html"
