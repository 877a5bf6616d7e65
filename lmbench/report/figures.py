"""The report's figures: each a function of the run's tables returning a Figure (plot + its table) or None.

A figure is drawn only when the run measured what it shows (a suite without translators has no BLEU
figure). Every figure comes with the table of the numbers it plots, so a reader never has to guess a value.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures go to SVG files and data URIs

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lmbench.registry import Registry  # noqa: E402

# One colour per model configuration across the whole report: the run's configurations, in the order they first
# appear in the results, take these colours in turn (colour-blind-safe first, then more distinct hues).
MODEL_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#8C564B",
                 "#BCBD22", "#7F7F7F", "#17BECF", "#9467BD", "#AEC7E8", "#FFBB78", "#98DF8A", "#FF9896")
# Series that are not models (sparsity quantities, tokenizers) take hues no model has, so that no line is read
# as a model's.
SERIES_COLOURS = ("#5E3C99", "#B2182B", "#1B7837", "#E08214", "#8073AC", "#4D4D4D")
FONT = 11  # points: tick labels, legends and annotations stay readable when a wide figure shrinks to 1280 px


@dataclass
class RunData:
    """What the figures read: the tidy results, the timings, and the saved cell records."""

    results: pd.DataFrame
    timings: pd.DataFrame
    records: list[dict[str, Any]]
    manifest: dict[str, Any]

    def select(self, metric: str, quantity: str | None = None, group: str | None = None) -> pd.DataFrame:
        """Rows of one metric (and quantity/group), with numeric values."""
        df = self.results[self.results["metric"] == metric]
        if quantity is not None:
            df = df[df["quantity"] == quantity]
        if group is not None:
            df = df[df["group"].astype(str) == group]
        df = df.copy()
        df["value"] = pd.to_numeric(df["value"], errors="coerce")
        df["x"] = pd.to_numeric(df["x"], errors="coerce")
        return df

    @functools.cached_property
    def colours(self) -> dict[str, str]:
        """Model configuration → its colour, the same in every figure of the report."""
        configs = [c for c in dict.fromkeys(self.results.get("config", pd.Series(dtype=str)).astype(str))
                   if c != "(corpus)"]
        configs += [c for c in dict.fromkeys(self.timings.get("config", pd.Series(dtype=str)).astype(str))
                    if c not in configs and c != "(corpus)"]
        return {c: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, c in enumerate(configs)}

    def colour(self, config: str) -> str:
        """The colour of one configuration (grey for one the results do not name)."""
        return self.colours.get(str(config), "#7F7F7F")

    def palette(self, configs: Any) -> dict[str, str]:
        """The colours of these configurations, for seaborn's `palette=`."""
        return {c: self.colour(c) for c in dict.fromkeys(map(str, configs))}

    def corpus_title(self, corpus: str) -> str:
        """A facet title: the corpus and the tokenizer its cells used (when the cells recorded one)."""
        tokenizers = sorted({r.get("tokenizer") for r in self.records if r["corpus"] == corpus} - {None})
        return f"{corpus} ({', '.join(tokenizers)} tokens)" if tokenizers else str(corpus)


@dataclass
class Figure:
    """One figure of the report: an SVG image and the table of the numbers it plots."""

    key: str
    title: str
    caption: str
    image: bytes  # SVG
    table: pd.DataFrame


FigureFn = Callable[[RunData], "Figure | None"]
FIGURES: Registry[FigureFn] = Registry("figure")


def figure(key: str) -> Callable[[FigureFn], FigureFn]:
    """Register a figure function (figures appear in registration order)."""
    return FIGURES.register(key)


def _image(fig: matplotlib.figure.Figure) -> bytes:
    """The figure as SVG (sharp at any zoom; text kept as text, so it stays small and searchable)."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lmbench"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


MAX_COLUMNS = 2  # panels side by side: more would shrink text below readable at 1280 px


def _facets(df: pd.DataFrame, col: str = "corpus", width: float = 5.2, height: float = 3.8
            ) -> tuple[matplotlib.figure.Figure, list[tuple[str, Any, pd.DataFrame]]]:
    """One panel per corpus, at most MAX_COLUMNS to a row; constrained layout keeps legends off other panels."""
    keys = list(dict.fromkeys(df[col]))
    ncols = min(len(keys), MAX_COLUMNS)
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for ax in flat[len(keys):]:
        ax.set_visible(False)
    return fig, [(k, ax, df[df[col] == k]) for k, ax in zip(keys, flat)]


def _legend(ax: Any, **kwargs: Any) -> None:
    """A readable legend outside the plot area, on the right (never over the data)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=FONT - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0, frameon=False, **kwargs)


def _log_axis(ax: Any, which: str = "y", base: float = 10) -> None:
    """A log-scaled axis labelled with plain numbers (12, 20, 50) rather than 1.2×10¹ (lines and points only:
    a bar's length on a log axis means nothing)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log", base=base)
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    if base == 10 and 0 < lo < hi:
        ratio = hi / lo  # ticks dense enough to read, sparse enough not to collide
        subs = tuple(range(1, 10)) if ratio < 4 else (1.0, 2.0, 5.0) if ratio < 300 else (1.0,)
        axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _rotate_labels(ax: Any) -> None:
    ax.tick_params(axis="x", rotation=30)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")


def _mean_over_seeds(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    g = df.groupby(by, sort=False)["value"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "value", "std": "sd over seeds", "count": "seeds"})


def _wide(long: pd.DataFrame, index: list[str], value: str) -> pd.DataFrame:
    """One column per configuration: compact tables beside the figures."""
    wide = long.pivot_table(index=index, columns="config", values=value, sort=False, aggfunc="first")
    wide = wide.reset_index()
    wide.columns.name = None
    return wide


def bayes_floors(data: RunData) -> dict[str, float]:
    """Per corpus, the Bayes-optimal test perplexity when the corpus knows it (floor metric or generator info)."""
    floors: dict[str, float] = {}
    for _, row in data.select("floor", "bayes_perplexity").iterrows():
        if math.isfinite(row["value"]):
            floors[row["corpus"]] = float(row["value"])
    # Without the floor metric: the generator's own figure, if its token count matches the scored split's.
    tokens = data.select("perplexity", "tokens", "test").groupby("corpus")["value"].first()
    for rec in data.records:
        test = ((rec.get("corpus_info") or {}).get("bayes_floor") or {}).get("test") or {}
        if rec["corpus"] in tokens and test.get("tokens") == tokens[rec["corpus"]]:
            floors.setdefault(rec["corpus"], float(test["perplexity"]))
    return floors


@figure("perplexity")
def perplexity_figure(data: RunData) -> Figure | None:
    """Test perplexity of every model configuration, with the Bayes floor where the corpus knows it."""
    df = data.select("perplexity", "perplexity", "test")
    if df.empty:
        return None
    table = _mean_over_seeds(df, ["corpus", "config"]).rename(columns={"value": "test perplexity"})
    floors = bayes_floors(data)
    table["bayes floor"] = table["corpus"].map(floors)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["excess bits/token"] = np.log2(table["test perplexity"] / table["bayes floor"])
    norm = data.select("perplexity", "normalized", "test").groupby(["corpus", "config"])["value"].min()
    unnormalised = {k for k, v in norm.items() if v == 0}
    fig, facets = _facets(table, width=max(4.6, 0.75 * table["config"].nunique() + 1.6), height=4.0)
    for corpus, ax, sub in facets:
        values = sub["test perplexity"].to_numpy(dtype=float)
        finite = values[np.isfinite(values) & (values > 0)]
        # Bars from 0 while the values are of one magnitude; across more than a factor of 10 (add-one beside
        # Kneser-Ney), bars would flatten all but one: points on a log axis then, never bars on it.
        points = finite.size > 1 and finite.max() / finite.min() > 10
        top = 1.15 * max([*finite, floors.get(corpus, 0.0), 1.0])
        x = np.arange(len(sub))
        colours = [data.colour(c) for c in sub["config"]]
        for i, (cfg, val) in enumerate(zip(sub["config"], values)):
            if np.isfinite(val):
                label = f"{val:.1f}" + ("*" if (corpus, cfg) in unnormalised else "")
                if points:
                    ax.scatter(i, val, color=colours[i], s=70, zorder=3)
                    ax.annotate(label, (i, val), xytext=(0, 7), textcoords="offset points", ha="center",
                                fontsize=FONT - 1)
                else:
                    ax.bar(i, val, color=colours[i], width=0.7)
                    ax.text(i, val, label, ha="center", va="bottom", fontsize=FONT - 1)
            elif points:  # a zero-probability event: perplexity ∞, an arrow off the top of the axis
                ax.annotate("∞", (i, 1.0), xycoords=("data", "axes fraction"), xytext=(i, 0.85),
                            textcoords=("data", "axes fraction"), ha="center", fontsize=FONT + 4,
                            arrowprops={"arrowstyle": "->", "color": colours[i]})
            else:  # a zero-probability event: perplexity ∞, an open hatched bar off the top of the axis
                ax.bar(i, top, color="none", edgecolor=colours[i], hatch="//", width=0.7)
                ax.text(i, top * 0.5, "∞", ha="center", va="center", fontsize=FONT + 4,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        if corpus in floors:
            ax.axhline(floors[corpus], color="black", ls="--", lw=1.2, label=f"Bayes floor {floors[corpus]:.2f}")
            _legend(ax)
        ax.set_xticks(x, list(sub["config"]))
        ax.set_xlim(-0.6, len(sub) - 0.4)
        _rotate_labels(ax)
        if points:
            ax.set_ylim(finite.min() / 1.5, finite.max() * 2.0)
            _log_axis(ax)
            ax.set_ylabel("test perplexity (log axis: points, not bars)")
        else:
            ax.set_ylim(0, top)
            ax.set_ylabel("test perplexity (linear axis from 0)")
        ax.set_title(data.corpus_title(corpus))
        ax.set_xlabel("")
    caption = ("Test perplexity (mean over seeds; lower is better): bars on a linear axis from 0, or points on a "
               "log axis where the values span more than a factor of 10. ∞ = a zero-probability event (an open "
               "hatched bar, or an arrow off the top); * = unnormalised scores, not comparable. Dashed line: the "
               "Bayes-optimal perplexity of a synthetic corpus, the floor no model beats; the table gives each "
               "model's excess over it in bits per token.")
    return Figure("perplexity", "Perplexity per model", caption, _image(fig), table)


@figure("learning_curves")
def learning_curve_figure(data: RunData) -> Figure | None:
    """Per-epoch validation (and training) perplexity or loss of the models trained by epochs."""
    df = data.select("learning_curve")
    if df.empty:
        return None
    parts = []
    for _, sub in df.groupby(["corpus", "config"], sort=False):
        ppl = sub[sub["quantity"].str.contains("ppl|perplexity")]
        if ppl.empty:  # a model that records only losses (mean natural-log cross-entropy): exp(loss) is its ppl
            loss = sub[sub["quantity"].str.endswith("loss")]
            ppl = loss.assign(value=np.exp(loss["value"]), quantity=loss["quantity"].str.replace("loss", "ppl"))
        parts.append(ppl)
    df = pd.concat(parts, ignore_index=True) if parts else df.iloc[:0]
    if df.empty:
        return None
    long = _mean_over_seeds(df, ["corpus", "config", "quantity", "x"]).rename(columns={"x": "epoch"})
    fig, facets = _facets(long, width=6.2)
    for corpus, ax, sub in facets:
        several = sub["quantity"].nunique() > 1  # e.g. train_ppl and valid_ppl: told apart by line style
        sns.lineplot(data=sub, x="epoch", y="value", hue="config", style="quantity" if several else None,
                     markers=True, marker=None if several else "o", ax=ax, palette=data.palette(sub["config"]),
                     style_order=list(dict.fromkeys(sub["quantity"])) if several else None)
        _log_axis(ax)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(data.corpus_title(corpus))
        ax.set_ylabel("perplexity (log axis)")
        _legend(ax)
    table = long.pivot_table(index=["corpus", "config", "quantity"], columns="epoch", values="value",
                             sort=False).reset_index()
    table.columns = [c if isinstance(c, str) else f"epoch {c:g}" for c in table.columns]
    return Figure("learning_curves", "Learning curves", "Per-epoch perplexities the models recorded while "
                  "training (exp of the loss for models that record only a loss; mean over seeds; log axis).",
                  _image(fig), table)


@figure("distance")
def distance_figure(data: RunData) -> Figure | None:
    """Accuracy of the long-range probe against the distance to the deciding token."""
    df = data.select("distance", "accuracy")
    if df.empty:
        return None
    table = _mean_over_seeds(df, ["corpus", "config", "x"]).rename(columns={"x": "distance", "value": "accuracy"})
    for extra in ("ci_low", "ci_high", "chance"):
        part = _mean_over_seeds(data.select("distance", extra), ["corpus", "config", "x"])
        if not part.empty:
            table = table.merge(part[["corpus", "config", "x", "value"]].rename(
                columns={"x": "distance", "value": extra}), on=["corpus", "config", "distance"], how="left")
    long = table
    fig, facets = _facets(long, width=6.2)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="distance", y="accuracy", hue="config", marker="o", ax=ax,
                     palette=data.palette(sub["config"]))
        if "ci_low" in sub:
            for cfg, part in sub.groupby("config", sort=False):
                ax.fill_between(part["distance"], part["ci_low"], part["ci_high"], alpha=0.12, color=data.colour(cfg))
        if "chance" in sub and sub["chance"].notna().any():
            ax.axhline(float(sub["chance"].mean()), color="gray", ls=":", lw=1.2, label="chance")
        _log_axis(ax, "x", base=2)
        ax.set_ylim(0, 1.05)
        ax.set_title(data.corpus_title(corpus))
        ax.set_xlabel("distance to the deciding token (log axis)")
        _legend(ax)
    table = _wide(long, ["corpus", "distance"], "accuracy")
    if "chance" in long:
        table.insert(2, "chance", long.groupby(["corpus", "distance"], sort=False)["chance"].first().to_numpy())
    return Figure("distance", "Accuracy vs dependency distance", "Share of probe items where the model ranks the "
                  "correct closer above every alternative (shaded: 95% interval; dotted: chance). The table shows "
                  "each model's accuracy by distance.", _image(fig), table)


@figure("pairs")
def pairs_figure(data: RunData) -> Figure | None:
    """Minimal-pair accuracy by group (e.g. number of attractors), ties (undecided pairs) stacked above."""
    df = data.select("pairs", "accuracy")
    if df.empty:
        return None
    ties = data.select("pairs", "tie")
    frames = []
    for quantity, part in (("accuracy", df), ("tie", ties)):
        if part.empty:
            continue
        part = part.assign(group=part["group"].fillna("all").astype(str))
        part = part.sort_values("x", kind="stable", na_position="first")  # "all" first, then groups in order
        frames.append(_mean_over_seeds(part, ["corpus", "config", "group"]).rename(columns={"value": quantity}))
    long = frames[0] if len(frames) == 1 else frames[0].merge(
        frames[1][["corpus", "config", "group", "tie"]], on=["corpus", "config", "group"], how="left")
    fig, facets = _facets(long, width=7.5, height=4.0)
    for corpus, ax, sub in facets:
        groups = list(dict.fromkeys(sub["group"]))
        configs = list(dict.fromkeys(sub["config"]))
        width = 0.8 / len(configs)
        for j, cfg in enumerate(configs):
            rows = sub[sub["config"] == cfg].set_index("group").reindex(groups)
            x = np.arange(len(groups)) - 0.4 + width * (j + 0.5)
            acc = rows["accuracy"].to_numpy(dtype=float)
            ax.bar(x, acc, width=width, color=data.colour(cfg), label=cfg)
            if "tie" in rows:
                tie = np.nan_to_num(rows["tie"].to_numpy(dtype=float))
                ax.bar(x, tie, width=width, bottom=acc, color="none", edgecolor=data.colour(cfg), hatch="//",
                       linewidth=0.6)
        if "tie" in sub and sub["tie"].fillna(0).gt(0).any():
            ax.bar([0], [0], color="none", edgecolor="gray", hatch="//", label="tie (equal scores)")
        ax.axhline(0.5, color="gray", ls=":", lw=1.2, label="chance")
        ax.set_xticks(np.arange(len(groups)), groups)
        _rotate_labels(ax)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of pairs")
        ax.set_title(data.corpus_title(corpus))
        _legend(ax)
    table = _wide(long, ["corpus", "group"], "accuracy")
    if "tie" in long and long["tie"].fillna(0).gt(0).any():
        tie_table = _wide(long, ["corpus", "group"], "tie")
        for cfg in dict.fromkeys(long["config"]):
            if cfg in tie_table and tie_table[cfg].fillna(0).gt(0).any():
                table[f"{cfg} tie"] = tie_table[cfg].to_numpy()
    return Figure("pairs", "Minimal-pair accuracy by group", "Solid: share of pairs where the good sentence gets the "
                  "higher log-probability; hatched above it: ties, pairs whose two sentences score the same (two "
                  "zero-probability sentences of an MLE model, say): undecided, not failures (dotted: chance, 0.5).",
                  _image(fig), table)


@figure("sparsity")
def sparsity_figure(data: RunData) -> Figure | None:
    """How many test n-grams were never seen in training, by order n."""
    df = data.select("sparsity")
    if df.empty:
        return None
    plotted = ["unseen_fraction", "mle_zero_prob_rate", "singleton_fraction"]
    df = df[df["quantity"].isin(plotted + ["types", "mle_zero_prob"])]
    table = df.pivot_table(index=["corpus", "x"], columns="quantity", values="value", aggfunc="first",
                           sort=False).reset_index().rename(columns={"x": "n"})
    table = table[["corpus", "n", *[c for c in plotted + ["types", "mle_zero_prob"] if c in table.columns]]]
    shares = df[df["quantity"].isin(plotted)]
    if shares.empty:
        return None
    fig, facets = _facets(shares, width=6.4)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="x", y="value", hue="quantity", style="quantity", markers=True, dashes=False, ax=ax,
                     palette=list(SERIES_COLOURS[: sub["quantity"].nunique()]))
        ax.set_xlabel("n-gram order n")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("share")
        ax.set_ylim(0, 1.02)
        ax.set_title(data.corpus_title(corpus))
        _legend(ax)
    caption = ("Sparsity by n-gram order: share of test n-gram tokens never seen in training (unseen_fraction), "
               "share of test tokens an order-n MLE model gives probability 0 (mle_zero_prob_rate), and share of "
               "training n-gram types seen once (singleton_fraction). All grow with n: smoothing exists for this.")
    return Figure("sparsity", "Sparsity vs n", caption, _image(fig), table)


@figure("gradflow")
def gradflow_figure(data: RunData) -> Figure | None:
    """Norm of ∂L_t/∂h_{t−k} against the lag k (log scale): the vanishing gradient."""
    df = data.select("gradflow", "grad_norm")
    if df.empty:
        return None
    df = df.assign(group=df["group"].fillna("").astype(str))
    df = df.assign(series=df["config"] + np.where(df["group"] != "", " " + df["group"], ""))
    table = _mean_over_seeds(df, ["corpus", "series", "config", "group", "x"]).rename(
        columns={"x": "lag", "value": "grad norm"})
    fig, facets = _facets(table, width=6.4)
    for corpus, ax, sub in facets:
        positive = sub[sub["grad norm"] > 0]
        several = positive["group"].nunique() > 1
        sns.lineplot(data=positive, x="lag", y="grad norm", hue="config", style="group" if several else None, ax=ax,
                     palette=data.palette(positive["config"]))
        ax.set_yscale("log")  # decades matter here: keep 10⁻⁶-style labels
        ax.set_xlabel("lag k (time steps back)")
        ax.set_ylabel(r"$\Vert\partial L_t / \partial h_{t-k}\Vert$ (log axis)")
        ax.set_title(data.corpus_title(corpus))
        _legend(ax)
    table = table.drop(columns=["config", "group"]).rename(columns={"series": "config"})
    shown = _wide(table[table["lag"].isin(_lag_marks(table["lag"]))], ["corpus", "lag"], "grad norm")
    return Figure("gradflow", "Gradient norm vs lag", "How much of the loss gradient reaches a hidden state k steps "
                  "back (mean over positions and seeds; log axis). The table shows selected lags.", _image(fig),
                  shown)


def _lag_marks(lags: pd.Series) -> list[float]:
    top = lags.max() if len(lags) else 0
    marks = [0, 1, 2, 5, 10, 20, 50, 100, 200]
    return [m for m in marks if m <= top] + ([top] if top not in marks else [])


@figure("speed")
def speed_figure(data: RunData) -> Figure | None:
    """Training and evaluation speed against test perplexity."""
    ppl = _mean_over_seeds(data.select("perplexity", "perplexity", "test"), ["corpus", "config"])
    t = data.timings
    if ppl.empty or t.empty:
        return None
    t = t.assign(value=pd.to_numeric(t["value"], errors="coerce"))
    speeds = t[t["quantity"].isin(["train_tokens_per_second", "eval_tokens_per_second"]) & (t["metric"] == "speed")]
    if speeds.empty:
        return None
    speeds = speeds.groupby(["corpus", "config", "quantity"], sort=False)["value"].median().unstack("quantity")
    table = ppl[["corpus", "config", "value"]].rename(columns={"value": "test perplexity"}).merge(
        speeds.reset_index(), on=["corpus", "config"], how="inner")
    if table.empty:
        return None
    fig, facets = _facets(table, width=6.4)
    for corpus, ax, sub in facets:
        sub = sub[np.isfinite(sub["test perplexity"])]
        for column, marker, fill in (("train_tokens_per_second", "o", True), ("eval_tokens_per_second", "s", False)):
            if column not in sub:
                continue
            for _, row in sub.iterrows():  # no text beside the points (they crowd): colour = model, see the legend
                colour = data.colour(row["config"])
                ax.scatter(row[column], row["test perplexity"], marker=marker, s=55, linewidths=1.5,
                           facecolors=colour if fill else "none", edgecolors=colour)
        for cfg in dict.fromkeys(sub["config"]):
            ax.scatter([], [], marker="o", color=data.colour(cfg), label=cfg)
        ax.scatter([], [], marker="o", color="gray", label="training")
        ax.scatter([], [], marker="s", facecolors="none", edgecolors="gray", label="evaluation")
        ax.set_xscale("log")
        _log_axis(ax)
        ax.set_xlabel("tokens per second (log axis; median over seeds)")
        ax.set_ylabel("test perplexity (log axis)")
        ax.set_title(data.corpus_title(corpus))
        _legend(ax)
    return Figure("speed", "Speed vs perplexity", "Training (filled circles) and evaluation (open squares) "
                  "throughput on this machine against test perplexity, one colour per model: lower right is better. "
                  "Training speed is every token of every epoch over the training seconds. Timings are not part of "
                  "results.csv; the table has every value.", _image(fig), table)


@figure("bleu")
def bleu_figure(data: RunData) -> Figure | None:
    """Translation quality (BLEU) against source sentence length."""
    df = data.select("bleu", "bleu_by_length")
    if df.empty:
        return None
    long = _mean_over_seeds(df, ["corpus", "config", "x"]).rename(columns={"x": "source length", "value": "BLEU"})
    overall = _mean_over_seeds(data.select("bleu", "bleu"), ["corpus", "config"])
    table = df.pivot_table(index=["corpus", "group", "x"], columns="config", values="value", sort=False)
    sizes = data.select("bleu", "sentences_by_length").groupby(["corpus", "group", "x"], sort=False)["value"].first()
    table.insert(0, "sentences", sizes.reindex(table.index))
    table = table.reset_index().drop(columns="x").rename(columns={"group": "source length"})
    table.columns.name = None
    fig, facets = _facets(long, width=6.4)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="source length", y="BLEU", hue="config", marker="o", ax=ax,
                     palette=data.palette(sub["config"]))
        ax.set_ylim(0, 100)
        ax.set_xlabel("source length (tokens, bucket upper bound)")
        ax.set_title(data.corpus_title(corpus))
        _legend(ax)
    caption = "Corpus BLEU of the test translations, by source-length bucket."
    if not overall.empty:
        caption += " Overall: " + ", ".join(f"{r.config} {r.value:.1f}" for r in overall.itertuples()) + "."
    chrf = _mean_over_seeds(data.select("bleu", "chrf"), ["corpus", "config"])
    if not chrf.empty:
        caption += " chrF: " + ", ".join(f"{r.config} {r.value:.1f}" for r in chrf.itertuples()) + "."
    signatures = sorted({(rec.get("extras") or {}).get("bleu", {}).get("bleu_signature") or "" for rec in data.records}
                        - {""})
    if signatures:
        caption += " BLEU signature: " + "; ".join(signatures) + "."
    return Figure("bleu", "BLEU vs source length", caption, _image(fig), table)


TOKENIZATION_COLUMNS = ("vocabulary", "oov_rate", "tokens_per_word", "bits_per_character", "bits_per_character_open",
                        "word_perplexity")


@figure("tokenization")
def tokenization_figure(data: RunData) -> Figure | None:
    """What a "word" is: unseen n-grams by n and bits per character for each tokenizer of a corpus."""
    df = data.select("tokenization")
    if df.empty:
        return None
    scalars = df[df["quantity"].isin(TOKENIZATION_COLUMNS)]
    table = scalars.pivot_table(index=["corpus", "group"], columns="quantity", values="value", aggfunc="first",
                                sort=False).reset_index().rename(columns={"group": "tokens"})
    unseen = df[df["quantity"] == "unseen_ngram_fraction"]
    for n in sorted(unseen["x"].dropna().unique()):
        shares = unseen[unseen["x"] == n].set_index(["corpus", "group"])["value"]
        table[f"unseen {int(n)}-grams"] = [shares.get((c, g)) for c, g in zip(table["corpus"], table["tokens"])]
    table = table[["corpus", "tokens", *[c for c in TOKENIZATION_COLUMNS if c in table.columns],
                   *[c for c in table.columns if c.startswith("unseen")]]]
    table.columns.name = None
    corpora = list(dict.fromkeys(df["corpus"]))
    fig, axes = plt.subplots(len(corpora), 2, figsize=(12.4, 4.0 * len(corpora)), squeeze=False,
                             layout="constrained")
    for (ax_n, ax_b), corpus in zip(axes, corpora):
        sub = unseen[unseen["corpus"] == corpus].rename(columns={"group": "tokens"})
        if not sub.empty:
            sns.lineplot(data=sub, x="x", y="value", hue="tokens", style="tokens", markers=True, dashes=False, ax=ax_n,
                         palette=list(SERIES_COLOURS[: sub["tokens"].nunique()]))
            _legend(ax_n)
        ax_n.set_xlabel("n-gram order n")
        ax_n.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax_n.set_ylabel("held-out n-grams unseen in training")
        ax_n.set_ylim(0, 1.02)
        ax_n.set_title(corpus)  # each line is its own tokenizer
        bpc = scalars[(scalars["corpus"] == corpus)
                      & scalars["quantity"].isin(["bits_per_character", "bits_per_character_open"])]
        sns.barplot(data=bpc, x="group", y="value", hue="quantity", ax=ax_b,
                    palette=list(SERIES_COLOURS[: bpc["quantity"].nunique()]))
        ax_b.set_xlabel("tokens")
        ax_b.set_ylabel("bits per character (KN model; linear from 0)")
        _legend(ax_b)
        ax_b.set_title(corpus)
    caption = ("What a \"word\" is: the same text as eojeol (space-separated words), morphemes, subwords and jamo. "
               "Left: share of held-out n-gram tokens never seen in training, by n — the sparsity lesson as a "
               "function of the token. Right: bits per character of a Kneser-Ney model on each tokenization, the "
               "fair comparison (word perplexity in the table is the same total log-probability per eojeol). "
               "Per-token perplexity is not comparable across tokenizers and is not shown. An OOV token scores as "
               "<unk>, which flatters tokenizers with a high OOV rate; bits_per_character_open also charges each "
               "OOV token the cost of spelling it out character by character, the figure to compare on when "
               "OOV rates differ.")
    return Figure("tokenization", "Tokenization: what a word is", caption, _image(fig), table)


@figure("grad_norm_steps")
def grad_norm_steps_figure(data: RunData) -> Figure | None:
    """The global gradient norm of every training step (before clipping): exploding gradients show as spikes."""
    df = data.select("grad_norms", "norm")
    if df.empty:
        return None
    series = _mean_over_seeds(df, ["corpus", "config", "x"]).rename(columns={"x": "step", "value": "norm"})
    fig, facets = _facets(series, width=6.4)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="step", y="norm", hue="config", lw=1, ax=ax, palette=data.palette(sub["config"]))
        ax.set_yscale("log")  # spikes span decades
        ax.set_xlabel("training step")
        ax.set_ylabel("global gradient norm (log scale)")
        ax.set_title(corpus)
        _legend(ax)
    summary = [data.select("grad_norms", q)[["corpus", "config", "value"]].rename(columns={"value": q})
               .groupby(["corpus", "config"], sort=False).mean().reset_index()
               for q in ("median", "max", "clipped_fraction", "steps")]
    table = summary[0]
    for part in summary[1:]:
        table = table.merge(part, on=["corpus", "config"], how="left")
    table["steps"] = table["steps"].round().astype("Int64")
    return Figure("grad_norm_steps", "Gradient norm per training step", "The global gradient norm of each training "
                  "step before clipping (each point: the largest norm in a run of steps, so no spike is averaged "
                  "away; log scale). The table gives the median and largest norm and the share of steps where "
                  "clipping fired.", _image(fig), table)


@figure("data_size")
def data_size_figure(data: RunData) -> Figure | None:
    """Test perplexity against the size of the training corpus, for models measured on several sizes."""
    sizes = data.select("corpus_size", "train_tokens").groupby("corpus")["value"].first()
    ppl = data.select("perplexity", "perplexity", "test")
    ppl = _mean_over_seeds(ppl[ppl["corpus"].isin(sizes.index)], ["corpus", "config"])
    ppl = ppl.assign(tokens=ppl["corpus"].map(sizes))
    ppl = ppl[ppl.groupby("config")["corpus"].transform("nunique") >= 2]
    if ppl.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    sns.lineplot(data=ppl.sort_values("tokens"), x="tokens", y="value", hue="config", marker="o", ax=ax,
                 palette=data.palette(ppl["config"]))
    _log_axis(ax, "x")
    ax.set_xlabel("training tokens (log scale)")
    ax.set_ylabel("test perplexity")
    ax.set_ylim(0, None)
    _legend(ax)
    table = _wide(ppl.rename(columns={"value": "perplexity"}), ["corpus", "tokens"], "perplexity")
    table = table.sort_values("tokens")
    table["tokens"] = table["tokens"].round().astype("Int64")
    return Figure("data_size", "Perplexity vs training-data size", "Test perplexity of each model trained on "
                  "the same synthetic language at several corpus sizes (x: training tokens, log scale; y: linear "
                  "from 0). Where the lines cross, the neural model starts to beat the count model.", _image(fig),
                  table)


def draw_figures(data: RunData) -> list[Figure]:
    """Every figure the run has data for, in the report's order."""
    sns.set_theme(style="whitegrid", context="notebook", rc={"font.size": FONT, "axes.titlesize": FONT + 1,
                                                             "axes.labelsize": FONT, "xtick.labelsize": FONT - 1,
                                                             "ytick.labelsize": FONT - 1, "legend.fontsize": FONT - 1})
    figures = []
    for _key, fn in FIGURES.items():
        fig = fn(data)
        if fig is not None:
            if "seeds" in fig.table and fig.table["seeds"].max() <= 1:  # one seed: no spread to show
                fig.table = fig.table.drop(columns=["seeds", "sd over seeds"], errors="ignore")
            figures.append(fig)
    return figures


@figure("attention_map")
def attention_map_figure(data: RunData) -> Figure | None:
    """One probe sentence: each layer's and head's attention from the position that predicts the closer."""
    examples = [(rec, (rec.get("extras") or {}).get("attention_map", {}).get("example")) for rec in data.records]
    examples = [(rec, ex) for rec, ex in examples if ex and ex.get("weights")]
    if not examples:
        return None
    rows = sum(len(ex["weights"]) for _, ex in examples)
    width = max(6.0, 0.42 * max(len(ex["tokens"]) for _, ex in examples))
    fig, axes = plt.subplots(rows, 1, figsize=(width, 1.1 + 0.45 * rows * max(len(ex["weights"][0])
                                                                           for _, ex in examples)), squeeze=False)
    i = 0
    for rec, ex in examples:
        trigger = ex.get("trigger_index")
        for layer, heads in enumerate(ex["weights"], 1):
            ax = axes[i][0]
            i += 1
            sns.heatmap(np.asarray(heads), ax=ax, vmin=0, vmax=1, cmap="Blues", cbar=False,
                        annot=len(ex["tokens"]) <= 16, fmt=".2f", annot_kws={"fontsize": 6}, xticklabels=ex["tokens"],
                        yticklabels=[f"head {h}" for h in range(1, len(heads) + 1)])
            ax.set_title(f"{rec['corpus']} · {rec['config']} · layer {layer}: attention when predicting the closer "
                         f"(trigger {ex['distance']} tokens back)", fontsize=8)
            ax.tick_params(axis="x", labelsize=7, rotation=90)
            ax.tick_params(axis="y", labelsize=7, rotation=0)
            if trigger is not None:
                ax.get_xticklabels()[trigger].set_color("crimson")
                ax.get_xticklabels()[trigger].set_fontweight("bold")
    fig.tight_layout()
    trig = data.select("attention_map", "trigger_attention")
    uniform = data.select("attention_map", "uniform_attention")
    table = _mean_over_seeds(trig, ["corpus", "config", "group"]).rename(
        columns={"group": "layer/head", "value": "attention on trigger"})
    if not uniform.empty:
        table = table.merge(_mean_over_seeds(uniform, ["corpus", "config"])[["corpus", "config", "value"]].rename(
            columns={"value": "uniform share"}), on=["corpus", "config"], how="left")
    caption = ("For one distance-probe item, the attention row of the last position — the one that predicts the "
               "closer — in every layer and head (darker: more weight; the trigger in red). The table gives the "
               "weight on the trigger averaged over the probe items, beside the uniform share 1/(positions seen): "
               "a head far above it has learned to look the dependency up directly, with no recurrent path. "
               "A trigger outside the window cannot be attended to.")
    return Figure("attention_map", "Attention map: where the Transformer looks for the closer", caption, _image(fig),
                  table)


def parallelism_table(timings: pd.DataFrame) -> pd.DataFrame:
    """Per corpus, config and sequence length: training tokens/s and seconds per epoch (median over seeds)."""
    empty = pd.DataFrame(columns=["corpus", "config", "length", "train_tokens_per_second", "seconds_per_epoch"])
    t = timings[timings["metric"] == "parallelism"] if "metric" in timings else timings.iloc[:0]
    if t.empty:  # (a run without the metric: nothing to split)
        return empty
    parts = t["quantity"].astype(str).str.partition("@")
    t = t.assign(quantity=parts[0], length=pd.to_numeric(parts[2], errors="coerce"),
                 value=pd.to_numeric(t["value"], errors="coerce")).dropna(subset=["length"])
    if t.empty:
        return empty
    table = t.pivot_table(index=["corpus", "config", "length"], columns="quantity", values="value",
                          aggfunc="median", sort=False).reset_index()
    table.columns.name = None
    table["length"] = table["length"].astype(int)
    return table.sort_values(["corpus", "config", "length"], kind="stable").reset_index(drop=True)


@figure("parallelism")
def parallelism_figure(data: RunData) -> Figure | None:
    """Training tokens/s and seconds per epoch against the sequence length, recurrent vs attention."""
    table = parallelism_table(data.timings)
    if table.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8), layout="constrained")
    several = table["corpus"].nunique() > 1
    series = table["config"] + (" · " + table["corpus"] if several else "")
    for ax, column, label in ((axes[0], "train_tokens_per_second", "training tokens per second"),
                              (axes[1], "seconds_per_epoch", "seconds per epoch")):
        sub = table.assign(series=series)
        palette = None if several else data.palette(sub["series"])  # one colour per model across the report
        sns.lineplot(data=sub, x="length", y=column, hue="series", marker="o", ax=ax, palette=palette)
        _log_axis(ax, "x", base=2)
        _log_axis(ax)
        ax.set_xlabel("sequence length T (tokens per window)")
        ax.set_ylabel(f"{label} (log scale)")
        _legend(ax)
    caption = ("Each length trains a fresh copy of the model for a few steps with the same tokens per step "
               "(batch = tokens per step / T) on this machine (timings.csv, not results.csv). A recurrent layer "
               "walks a window's T positions one after another, with fewer parallel windows as T grows; attention "
               "computes all T positions at once, but its T×T scores make each token dearer as T grows. The deck's "
               "claim predicts the Transformer's share of the speed to grow with T.")
    return Figure("parallelism", "Parallelism: training speed vs sequence length", caption, _image(fig),
                  _wide(table.melt(id_vars=["corpus", "config", "length"], value_vars=[
                      c for c in ("train_tokens_per_second", "seconds_per_epoch") if c in table],
                      var_name="quantity", value_name="v"), ["corpus", "quantity", "length"], "v"))
