"""Compare two runs: rows with the same (corpus, config, seed, metric, quantity, group, x), values side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lmbench.bench.runner import load_run

_NO_X = -1.0  # stands for "no x" while merging (NaN keys never match)
KEY = ["corpus", "config", "seed", "metric", "quantity", "group", "x"]


def compare_runs(run_a: str | Path, run_b: str | Path, rtol: float = 1e-9) -> pd.DataFrame:
    """Rows whose values differ (beyond rtol) or that exist in one run only, with a, b, b−a and b/a."""
    _, _, a, _, _ = load_run(run_a)
    _, _, b, _, _ = load_run(run_b)
    a, b = _keyed(a), _keyed(b)
    merged = a.merge(b, on=KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
    va, vb = merged["value_a"].to_numpy(float), merged["value_b"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        same = (va == vb) | np.isclose(va, vb, rtol=rtol, atol=0) | (np.isnan(va) & np.isnan(vb))
        merged["diff"] = vb - va
        merged["ratio"] = vb / va
    merged["status"] = np.where(merged["_merge"] == "left_only", "only in A",
                                np.where(merged["_merge"] == "right_only", "only in B",
                                         np.where(same, "same", "changed")))
    out = merged[merged["status"] != "same"].drop(columns="_merge")
    out = out.rename(columns={"value_a": "A", "value_b": "B"})
    out["x"] = out["x"].where(out["x"] != _NO_X)
    return out[[*KEY, "A", "B", "diff", "ratio", "status"]].reset_index(drop=True)


def compare_summary(run_a: str | Path, run_b: str | Path) -> dict:
    """Headline figures per (corpus, config): test perplexity and BLEU of both runs, averaged over seeds."""
    rows = []
    frames = [load_run(r)[2] for r in (run_a, run_b)]
    for metric, quantity, group in (("perplexity", "perplexity", "test"), ("bleu", "bleu", None)):
        means = []
        for df in frames:
            sel = df[(df["metric"] == metric) & (df["quantity"] == quantity)]
            if group is not None:
                sel = sel[sel["group"].astype(str) == group]
            sel = sel.assign(value=pd.to_numeric(sel["value"], errors="coerce"))
            means.append(sel.groupby(["corpus", "config"], sort=False)["value"].mean())
        joined = pd.concat(means, axis=1, keys=["A", "B"])
        for (corpus, config), row in joined.iterrows():
            with np.errstate(invalid="ignore"):  # ∞ − ∞ (two zero-probability models) is undefined: NaN
                delta = float(np.subtract(row["B"], row["A"]))
            rows.append({"corpus": corpus, "config": config, "figure": f"{metric} {quantity}",
                         "A": row["A"], "B": row["B"], "B-A": delta})
    return {"headline": rows}


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["group"] = df["group"].fillna("").astype(str)
    df["x"] = pd.to_numeric(df["x"], errors="coerce").fillna(_NO_X)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df[[*KEY, "value"]]
