"""The report's figures: each a function of the run's tables returning a Figure (plot + its table) or None.

A figure is drawn only when the run measured what it shows (a suite without translators has no BLEU
figure). Every figure comes with the table of the numbers it plots, so a reader never has to guess a value.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: figures go to PNG files and data URIs

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from lmbench.registry import Registry  # noqa: E402


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


@dataclass
class Figure:
    """One figure of the report."""

    key: str
    title: str
    caption: str
    png: bytes
    table: pd.DataFrame


FigureFn = Callable[[RunData], "Figure | None"]
FIGURES: Registry[FigureFn] = Registry("figure")


def figure(key: str) -> Callable[[FigureFn], FigureFn]:
    """Register a figure function (figures appear in registration order)."""
    return FIGURES.register(key)


def _png(fig: matplotlib.figure.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _facets(df: pd.DataFrame, col: str = "corpus", width: float = 5.2, height: float = 3.6
            ) -> tuple[matplotlib.figure.Figure, list[tuple[str, Any, pd.DataFrame]]]:
    keys = list(dict.fromkeys(df[col]))
    fig, axes = plt.subplots(1, len(keys), figsize=(width * len(keys), height), squeeze=False)
    return fig, [(k, ax, df[df[col] == k]) for k, ax in zip(keys, axes[0])]


def _log_axis(ax: Any, which: str = "y", base: float = 10) -> None:
    """A log-scaled axis labelled with plain numbers (12, 20, 50) rather than 1.2×10¹."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log", base=base)
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    if base == 10 and 0 < lo < hi:
        ratio = hi / lo  # ticks dense enough to read, sparse enough not to collide
        subs = tuple(range(1, 10)) if ratio < 4 else (1.0, 2.0, 5.0) if ratio < 300 else (1.0,)
        axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


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
    plot = table.rename(columns={"test perplexity": "value"})
    fig, facets = _facets(plot, width=max(5.0, 0.7 * plot["config"].nunique() + 2.5))
    for corpus, ax, sub in facets:
        finite = sub[np.isfinite(sub["value"])]
        sns.barplot(data=finite, x="config", y="value", hue="config", ax=ax, legend=False,
                    order=list(sub["config"]), errorbar=None)
        for i, (cfg, val) in enumerate(zip(sub["config"], sub["value"])):
            label = "∞" if not np.isfinite(val) else f"{val:.1f}" + ("*" if (corpus, cfg) in unnormalised else "")
            ax.annotate(label, (i, val if np.isfinite(val) else finite["value"].max() if len(finite) else 1),
                        ha="center", va="bottom", fontsize=8)
        if corpus in floors:
            ax.axhline(floors[corpus], color="black", ls="--", lw=1)
            ax.text(len(sub) - 0.5, floors[corpus], f" Bayes floor {floors[corpus]:.2f}", va="bottom", ha="right",
                    fontsize=8)
        _log_axis(ax)
        ax.set_title(corpus)
        ax.set_xlabel("")
        ax.set_ylabel("test perplexity (log scale)")
        ax.tick_params(axis="x", rotation=35)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    caption = "Test perplexity (mean over seeds; ∞ = a zero-probability event; * = unnormalised scores, not " \
              "comparable). Dashed line: the Bayes-optimal perplexity of a synthetic corpus, the floor no model beats."
    return Figure("perplexity", "Perplexity per model", caption, _png(fig), table)


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
    fig, facets = _facets(long)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="epoch", y="value", hue="config", style="quantity", markers=True, ax=ax,
                     style_order=list(dict.fromkeys(sub["quantity"])))
        _log_axis(ax)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(corpus)
        ax.set_ylabel("perplexity (log scale)")
        ax.legend(fontsize=7)
    table = long.pivot_table(index=["corpus", "config", "quantity"], columns="epoch", values="value",
                             sort=False).reset_index()
    table.columns = [c if isinstance(c, str) else f"epoch {c:g}" for c in table.columns]
    return Figure("learning_curves", "Learning curves", "Per-epoch perplexities the models recorded while "
                  "training (exp of the loss for models that record only a loss; mean over seeds).", _png(fig), table)


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
    fig, facets = _facets(long)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="distance", y="accuracy", hue="config", marker="o", ax=ax)
        if "ci_low" in sub:
            for _cfg, part in sub.groupby("config", sort=False):
                ax.fill_between(part["distance"], part["ci_low"], part["ci_high"], alpha=0.12)
        if "chance" in sub and sub["chance"].notna().any():
            ax.axhline(float(sub["chance"].mean()), color="gray", ls=":", lw=1, label="chance")
        _log_axis(ax, "x", base=2)
        ax.set_ylim(0, 1.05)
        ax.set_title(corpus)
        ax.set_xlabel("distance to the deciding token")
        ax.legend(fontsize=7)
    table = _wide(long, ["corpus", "distance"], "accuracy")
    if "chance" in long:
        table.insert(2, "chance", long.groupby(["corpus", "distance"], sort=False)["chance"].first().to_numpy())
    return Figure("distance", "Accuracy vs dependency distance", "Share of probe items where the model ranks the "
                  "correct closer above every alternative (shaded: 95% interval; dotted: chance). The table shows "
                  "each model's accuracy by distance.", _png(fig), table)


@figure("pairs")
def pairs_figure(data: RunData) -> Figure | None:
    """Minimal-pair accuracy by group (e.g. number of attractors)."""
    df = data.select("pairs", "accuracy")
    if df.empty:
        return None
    df = df.assign(group=df["group"].fillna("all").astype(str))
    df = df.sort_values("x", kind="stable", na_position="first")  # "all" first, then groups in order
    table = _mean_over_seeds(df, ["corpus", "config", "group"]).rename(columns={"value": "accuracy"})
    fig, facets = _facets(table, width=6.0)
    for corpus, ax, sub in facets:
        sns.barplot(data=sub, x="group", y="accuracy", hue="config", ax=ax, errorbar=None)
        ax.axhline(0.5, color="gray", ls=":", lw=1)
        ax.set_ylim(0, 1.05)
        ax.set_title(corpus)
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=7)
    table = _wide(table, ["corpus", "group"], "accuracy")
    return Figure("pairs", "Minimal-pair accuracy by group", "Share of pairs where the good sentence gets the higher "
                  "log-probability (dotted: chance, 0.5).", _png(fig), table)


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
    fig, facets = _facets(shares)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="x", y="value", hue="quantity", marker="o", ax=ax)
        ax.set_xlabel("n-gram order n")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("share")
        ax.set_ylim(0, 1.02)
        ax.set_title(corpus)
        ax.legend(fontsize=7)
    caption = ("Sparsity by n-gram order: share of test n-gram tokens never seen in training (unseen_fraction), "
               "share of test tokens an order-n MLE model gives probability 0 (mle_zero_prob_rate), and share of "
               "training n-gram types seen once (singleton_fraction). All grow with n: smoothing exists for this.")
    return Figure("sparsity", "Sparsity vs n", caption, _png(fig), table)


@figure("gradflow")
def gradflow_figure(data: RunData) -> Figure | None:
    """Norm of ∂L_t/∂h_{t−k} against the lag k (log scale): the vanishing gradient."""
    df = data.select("gradflow", "grad_norm")
    if df.empty:
        return None
    df = df.assign(group=df["group"].fillna("").astype(str))
    df = df.assign(series=df["config"] + np.where(df["group"] != "", " " + df["group"], ""))
    table = _mean_over_seeds(df, ["corpus", "series", "x"]).rename(columns={"x": "lag", "value": "grad norm",
                                                                            "series": "config"})
    fig, facets = _facets(table)
    for corpus, ax, sub in facets:
        positive = sub[sub["grad norm"] > 0]
        sns.lineplot(data=positive, x="lag", y="grad norm", hue="config", ax=ax)
        ax.set_yscale("log")  # decades matter here: keep 10⁻⁶-style labels
        ax.set_xlabel("lag k (time steps back)")
        ax.set_ylabel(r"$\Vert\partial L_t / \partial h_{t-k}\Vert$ (log scale)")
        ax.set_title(corpus)
        ax.legend(fontsize=7)
    shown = _wide(table[table["lag"].isin(_lag_marks(table["lag"]))], ["corpus", "lag"], "grad norm")
    return Figure("gradflow", "Gradient norm vs lag", "How much of the loss gradient reaches a hidden state k steps "
                  "back (mean over positions and seeds). The table shows selected lags.", _png(fig), shown)


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
    fig, facets = _facets(table)
    for corpus, ax, sub in facets:
        sub = sub[np.isfinite(sub["test perplexity"])]
        for column, marker in (("train_tokens_per_second", "o"), ("eval_tokens_per_second", "s")):
            if column in sub:
                ax.scatter(sub[column], sub["test perplexity"], marker=marker, label=column.split("_")[0])
                for _, row in sub.iterrows():
                    if np.isfinite(row[column]) and row[column] > 0:
                        ax.annotate(row["config"], (row[column], row["test perplexity"]), fontsize=7,
                                    xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        _log_axis(ax)
        ax.set_xlabel("tokens per second (log scale; median over seeds)")
        ax.set_ylabel("test perplexity (log scale)")
        ax.set_title(corpus)
        ax.legend(fontsize=7)
    return Figure("speed", "Speed vs perplexity", "Training (circles) and evaluation (squares) throughput on this "
                  "machine against test perplexity: lower-right is better. Timings are not part of results.csv.",
                  _png(fig), table)


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
    fig, facets = _facets(long)
    for corpus, ax, sub in facets:
        sns.lineplot(data=sub, x="source length", y="BLEU", hue="config", marker="o", ax=ax)
        ax.set_ylim(0, 100)
        ax.set_xlabel("source length (tokens, bucket upper bound)")
        ax.set_title(corpus)
        ax.legend(fontsize=7)
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
    return Figure("bleu", "BLEU vs source length", caption, _png(fig), table)


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
    fig, axes = plt.subplots(len(corpora), 2, figsize=(10.4, 3.6 * len(corpora)), squeeze=False)
    for (ax_n, ax_b), corpus in zip(axes, corpora):
        sub = unseen[unseen["corpus"] == corpus].rename(columns={"group": "tokens"})
        if not sub.empty:
            sns.lineplot(data=sub, x="x", y="value", hue="tokens", marker="o", ax=ax_n)
            ax_n.legend(fontsize=7)
        ax_n.set_xlabel("n-gram order n")
        ax_n.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax_n.set_ylabel("held-out n-grams unseen in training")
        ax_n.set_ylim(0, 1.02)
        ax_n.set_title(corpus)
        bpc = scalars[(scalars["corpus"] == corpus)
                      & scalars["quantity"].isin(["bits_per_character", "bits_per_character_open"])]
        sns.barplot(data=bpc, x="group", y="value", hue="quantity", ax=ax_b)
        ax_b.set_xlabel("tokens")
        ax_b.set_ylabel("bits per character (KN model)")
        ax_b.legend(fontsize=7)
        ax_b.set_title(corpus)
    caption = ("What a \"word\" is: the same text as eojeol (space-separated words), morphemes, subwords and jamo. "
               "Left: share of held-out n-gram tokens never seen in training, by n — the sparsity lesson as a "
               "function of the token. Right: bits per character of a Kneser-Ney model on each tokenization, the "
               "fair comparison (word perplexity in the table is the same total log-probability per eojeol). "
               "Per-token perplexity is not comparable across tokenizers and is not shown. An OOV token scores as "
               "<unk>, which flatters tokenizers with a high OOV rate; bits_per_character_open also charges each "
               "OOV token the cost of spelling it out character by character, the figure to compare on when "
               "OOV rates differ.")
    return Figure("tokenization", "Tokenization: what a word is", caption, _png(fig), table)


def draw_figures(data: RunData) -> list[Figure]:
    """Every figure the run has data for, in the report's order."""
    sns.set_theme(style="whitegrid", context="notebook")
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
    return Figure("attention_map", "Attention map: where the Transformer looks for the closer", caption, _png(fig),
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
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8))
    series = table["config"] + (" · " + table["corpus"] if table["corpus"].nunique() > 1 else "")
    for ax, column, label in ((axes[0], "train_tokens_per_second", "training tokens per second"),
                              (axes[1], "seconds_per_epoch", "seconds per epoch")):
        sub = table.assign(series=series)
        sns.lineplot(data=sub, x="length", y=column, hue="series", marker="o", ax=ax)
        _log_axis(ax, "x", base=2)
        _log_axis(ax)
        ax.set_xlabel("sequence length T (tokens per window)")
        ax.set_ylabel(f"{label} (log scale)")
        ax.legend(fontsize=7)
    caption = ("Each length trains a fresh copy of the model for a few steps with the same tokens per step "
               "(batch = tokens per step / T) on this machine (timings.csv, not results.csv). A recurrent layer "
               "walks a window's T positions one after another, with fewer parallel windows as T grows; attention "
               "computes all T positions at once, but its T×T scores make each token dearer as T grows. The deck's "
               "claim predicts the Transformer's share of the speed to grow with T.")
    return Figure("parallelism", "Parallelism: training speed vs sequence length", caption, _png(fig),
                  _wide(table.melt(id_vars=["corpus", "config", "length"], value_vars=[
                      c for c in ("train_tokens_per_second", "seconds_per_epoch") if c in table],
                      var_name="quantity", value_name="v"), ["corpus", "quantity", "length"], "v"))
