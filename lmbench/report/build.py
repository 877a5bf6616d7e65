"""Write a run's report: report.md (+ SVG figures) and a self-contained report.html (figures as data URIs)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmbench.bench.runner import load_run
from lmbench.fileio import atomic_path, write_text_atomic
from lmbench.report.claims import Claim, Verdict, judge_all
from lmbench.report.figures import Figure, RunData, draw_figures

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;padding:20px 28px;
     color:#1d1d1f;max-width:1280px;box-sizing:border-box;line-height:1.45}
h1{margin:0 0 6px} h2{margin:0 0 6px;font-size:1.35em}
section{border-top:1px solid #ddd;padding-top:12px;margin-top:22px}
img{max-width:100%;height:auto} figure{margin:0} figure img{display:block;margin:6px 0}
figcaption{color:#333;font-size:14px;max-width:1100px}
.tbl{overflow-x:auto;max-width:100%;margin:8px 0 4px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f2f2f2;position:sticky;top:0} td.t{text-align:left}
table.meta td{white-space:normal;text-align:left} table.meta th{text-align:left;vertical-align:top}
#samples td.t{white-space:normal;min-width:12em;text-align:left}
nav ul{columns:2;max-width:900px}
details{margin:6px 0} summary{cursor:pointer;font-weight:600}
.notes{font-size:13px;color:#444} .notes li{margin:2px 0} code{background:#f5f5f5;padding:0 3px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;color:#fff}
.holds{background:#2e7d32} .does-not-hold{background:#c62828} .not-measured{background:#616161}
blockquote{margin:6px 0;padding-left:10px;border-left:3px solid #ccc;color:#333}
"""


def _fmt(value: Any) -> str:
    """A number as a reader wants it: whole numbers (counts, orders, distances) without a decimal part, at most
    3 decimals otherwise (a perplexity reads 194.178, as KenLM prints it), 4 significant digits below 1."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:,.3f}".rstrip("0").rstrip(".")
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def table_html(table: pd.DataFrame) -> str:
    """An HTML table with readable numbers (integers as integers), inside a box that scrolls sideways when wide."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        cells = []
        for value in row:
            cls = ' class="t"' if isinstance(value, str) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='tbl'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def table_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table."""
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def corpora_summary(records: list[dict[str, Any]]) -> str:
    """Each corpus of the run with its spec and the tokenizer its cells used ("?" for cells of older runs)."""
    seen: dict[str, tuple[str, set[str]]] = {}
    for rec in records:
        spec, tokenizers = seen.setdefault(rec["corpus"], (rec.get("corpus_spec", ""), set()))
        tokenizers.add(rec.get("tokenizer") or "?")
    return "; ".join(f"{label} ({spec}; tokenizer {', '.join(sorted(toks))})" if spec else
                     f"{label} (tokenizer {', '.join(sorted(toks))})" for label, (spec, toks) in seen.items())


def _summary(manifest: dict[str, Any], records: list[dict[str, Any]] | None = None) -> list[tuple[str, str]]:
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
        *([("corpora", corpora_summary(records))] if records else []),
        ("cells", cells),
        ("wall time", f"{total:.1f} s over all invocations of the run; "
                      f"{manifest.get('cell_seconds_total', float('nan')):.1f} s summed over cells"
         if isinstance(total, float) else "?"),
        ("finished", str(manifest.get("finished", "?"))),
        ("machine", f"{machine.get('platform', '?')}, {machine.get('cpu_count', '?')} CPUs"
                    + (f"; BLAS: {machine['blas']}" if machine.get("blas") else "")),
        ("git", f"{git.get('commit', '?')[:12]}{' (with local changes)' if git.get('dirty') else ''}"
         if git else "not a git checkout"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    if manifest.get("skipped_corpora"):
        items.append(("skipped corpora", "; ".join(manifest["skipped_corpora"])))
    if manifest.get("plugins"):
        items.append(("plugins", ", ".join(f"{k}: {v}" for k, v in manifest["plugins"].items())))
    return items


def grouped_notes(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The run's notes by topic (the metric that wrote them, or "discounts" for n-gram discount fallbacks), each
    note naming its configuration and corpus; repeated notes once."""
    groups: dict[str, list[str]] = {}
    for rec in records:
        where = f"{rec['config']} on {rec['corpus']}"
        for note in rec.get("notes", []):
            topic, sep, _ = note.partition(":")
            groups.setdefault(topic.strip() if sep and " " not in topic.strip() else "other", []).append(
                f"{where}: {note}")
        fallback = (rec.get("fit_info") or {}).get("discount_fallback")
        if isinstance(fallback, dict) and fallback.get("orders"):
            groups.setdefault("discounts", []).append(
                f"{where}: the discounts of order(s) {', '.join(map(str, fallback['orders']))} could not be estimated "
                f"from the data; KenLM's fallback {fallback.get('discounts', '')} was used")
    return {topic: list(dict.fromkeys(notes)) for topic, notes in groups.items()}


def sample_translations(records: list[dict[str, Any]]) -> pd.DataFrame:
    """A few test translations of each translator (the BLEU metric keeps them)."""
    rows = [{"config": rec["config"], **sample} for rec in records
            for sample in (rec.get("extras") or {}).get("bleu", {}).get("samples", [])]
    return pd.DataFrame(rows, columns=["config", "source", "reference", "translation"])


ClaimVerdicts = Sequence[tuple[Claim, Verdict]]


def _figure_html(fig: Figure, heading: str = "h2") -> str:
    """A figure (inline SVG image), its caption and the table of every number it plots."""
    data = base64.b64encode(fig.image).decode("ascii")
    return (f"<{heading}>{html.escape(fig.title)}</{heading}><figure>"
            f"<img alt='{html.escape(fig.title)}' src='data:image/svg+xml;base64,{data}'>"
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>{table_html(fig.table)}")


def _notes_html(notes: dict[str, list[str]]) -> str:
    total = sum(map(len, notes.values()))
    groups = "".join(f"<details><summary>{html.escape(topic)} ({len(items)})</summary><ul class='notes'>"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in items) + "</ul></details>"
                     for topic, items in notes.items())
    return (f"<section id='notes'><details><summary>Notes ({total}): what did not apply, what adapted</summary>"
            f"{groups}</details></section>")


def claims_html(claims: ClaimVerdicts, figures: list[Figure]) -> list[str]:
    """One section per claim: heading, the lecture's statement, the verdict, the evidence table, its figures."""
    by_key = {f.key: f for f in figures}
    parts, seen = [], set()
    for c, v in claims:
        shown = ""
        for k in c.figures:
            if k in seen:  # drawn under an earlier claim: one figure, one id, a link here
                shown += f"<p class='see'>Figure: <a href='#{k}'>{html.escape(by_key[k].title)}</a> (above).</p>"
            elif k in by_key:
                seen.add(k)
                shown += f"<section id='{k}' class='figure'>{_figure_html(by_key[k], 'h3')}</section>"
        parts.append(
            f"<section id='claim-{c.key}'><h2>Claim: {html.escape(c.title)}</h2>"
            f"<blockquote>{html.escape(c.statement)}<br><span lang='ko'>{html.escape(c.korean)}</span></blockquote>"
            f"<p><span class='badge {v.status.replace(' ', '-')}'>{html.escape(v.status)}</span> "
            f"{html.escape(v.detail)}</p>{table_html(v.evidence)}{shown}</section>")
    return parts


def claims_markdown(claims: ClaimVerdicts, figures: list[Figure]) -> list[str]:
    """The claim sections as Markdown (figures by reference to figures/KEY.svg)."""
    titles = {f.key: f.title for f in figures}
    lines: list[str] = []
    seen: set[str] = set()
    for c, v in claims:
        lines += ["", f"## Claim: {c.title}", "", f"> {c.statement}", ">", f"> {c.korean}", "",
                  f"**{v.status}** — {v.detail}", ""]
        if not v.evidence.empty:
            lines += [table_markdown(v.evidence), ""]
        for k in c.figures:
            if k in seen:
                lines.append(f"Figure: {titles[k]} (above).")
            elif k in titles:
                seen.add(k)
                lines.append(f"![{k}](figures/{k}.svg)")
    return lines


def render_html(title: str, manifest: dict[str, Any], figures: list[Figure], notes: dict[str, list[str]],
                samples: pd.DataFrame | None = None, records: list[dict[str, Any]] | None = None,
                claims: ClaimVerdicts = ()) -> str:
    """The whole report as one HTML document with every image inline."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<table class='meta'>" + "".join(f"<tr><th>{html.escape(k)}</th><td class='t'>{html.escape(v)}</td></tr>"
                                              for k, v in _summary(manifest, records)) + "</table>"]
    if not figures:
        parts.append("<p>This run measured nothing that the report draws.</p>")
    in_claims = {k for c, _ in claims for k in c.figures}
    rest = [f for f in figures if f.key not in in_claims]  # each figure once: with its claim, or on its own
    parts.append("<nav><ul>" + "".join(f"<li><a href='#claim-{c.key}'>Claim: {html.escape(c.title)}</a> — "
                                       f"{html.escape(v.status)}</li>" for c, v in claims)
                 + "".join(f"<li><a href='#{f.key}'>{html.escape(f.title)}</a></li>" for f in rest) + "</ul></nav>")
    parts += claims_html(claims, figures)
    parts += [f"<section id='{fig.key}' class='figure'>{_figure_html(fig)}</section>" for fig in rest]
    if samples is not None and not samples.empty:
        parts.append(f"<section id='samples'><h2>Sample translations</h2>{table_html(samples)}</section>")
    if notes:
        parts.append(_notes_html(notes))
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(title: str, manifest: dict[str, Any], figures: list[Figure], notes: dict[str, list[str]],
                    samples: pd.DataFrame | None = None, records: list[dict[str, Any]] | None = None,
                    claims: ClaimVerdicts = ()) -> str:
    """The report as Markdown, images as files in figures/ (notes in collapsed <details> blocks)."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in _summary(manifest, records)]
    lines += claims_markdown(claims, figures)
    in_claims = {k for c, _ in claims for k in c.figures}
    figures = [f for f in figures if f.key not in in_claims]
    for fig in figures:
        lines += ["", f"## {fig.title}", "", f"![{fig.title}](figures/{fig.key}.svg)", "", f"*{fig.caption}*", "",
                  table_markdown(fig.table)]
    if samples is not None and not samples.empty:
        lines += ["", "## Sample translations", "", table_markdown(samples)]
    if notes:
        lines += ["", "## Notes", ""]
        for topic, items in notes.items():
            lines += [f"<details><summary>{topic} ({len(items)})</summary>", ""] + [f"- {n}" for n in items] \
                + ["", "</details>", ""]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw the figures of a finished run and write report.md, figures/*.svg and report.html; return the HTML path."""
    run_dir, manifest, results, timings, records = load_run(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    data = RunData(results, timings, records, manifest)
    figures = draw_figures(data)
    title = f"lmbench report: suite {manifest.get('suite')}"
    notes = grouped_notes(records)
    out.mkdir(parents=True, exist_ok=True)
    for fig in figures:
        with atomic_path(out / "figures" / f"{fig.key}.svg") as tmp:
            tmp.write_bytes(fig.image)
    samples = sample_translations(records)
    claims = judge_all(results)
    write_text_atomic(out / "report.md", render_markdown(title, manifest, figures, notes, samples, records, claims))
    write_text_atomic(out / "report.html", render_html(title, manifest, figures, notes, samples, records, claims))
    return out / "report.html"
