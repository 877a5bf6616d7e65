"""Metrics a suite can ask for: each a small function `fn(ctx) -> MetricOutput`, registered by name.

A metric declares which cells it measures (`kinds`: "lm" and/or "translator"; `scope`: "model" for a
trained model, "corpus" for the corpus alone) and, when it relies on an optional part of lmbench, the
module it `requires`. A suite asking for a metric whose module is missing fails at once with a message
naming both — a metric is never silently dropped. A metric that does not apply to one model (gradient
flow of a trigram) records a note saying so, which the report shows.

Values that depend on the machine's speed go to `MetricOutput.timings`, never to `rows`, so the results
table is a deterministic function of the suite and its seeds (an interrupted, resumed run reproduces it).
More metrics can come from other packages through the entry-point group `lmbench.metrics`.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import checked_logprobs, summarize
from lmbench.models.base import LanguageModel
from lmbench.registry import Registry
from lmbench.text.sources import read_splits

ENTRY_POINT_GROUP = "lmbench.metrics"


@dataclass
class MetricOutput:
    """What a metric measured on one cell: tidy rows, timing rows, and notes (e.g. "not applicable")."""

    metric: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # JSON-able material for the report (e.g. samples)

    def add(self, quantity: str, value: float, x: float | None = None, group: str | None = None) -> None:
        """One deterministic figure, optionally at a position `x` (distance, lag, n, epoch) within `group`."""
        self.rows.append({"metric": self.metric, "quantity": quantity, "group": group, "x": _num(x),
                          "value": _num(value)})

    def time(self, quantity: str, value: float) -> None:
        """One machine-dependent figure (seconds, tokens/s): kept apart from the results table."""
        self.timings.append({"metric": self.metric, "quantity": quantity, "value": _num(value)})

    def skip(self, reason: str) -> MetricOutput:
        """Record that the metric does not apply to this cell, and why."""
        self.notes.append(f"{self.metric}: not applicable: {reason}")
        return self


def _num(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    return float(value) if isinstance(value, int | float) else value


@dataclass
class CellContext:
    """Everything a metric may look at: the corpus set, the trained model, the seed and its options."""

    corpora: Any  # CorpusSet for text corpora; the parallel corpus object for translators
    model: Any  # the fitted model, or None in a corpus cell
    seed: int
    options: dict[str, Any]
    corpus_spec: str = ""
    train_seconds: float = float("nan")
    train_tokens: int = 0
    cache: dict[str, Any] = field(default_factory=dict)  # shared by the metrics of one cell

    def eval_split(self) -> Any:
        """The split models are compared on: test, or valid when the corpus has no test split."""
        test = getattr(self.corpora, "test", None)
        return test if test is not None else self.corpora.valid


@dataclass(frozen=True)
class Metric:
    """A registered metric."""

    name: str
    fn: Callable[[CellContext], MetricOutput]
    description: str
    kinds: tuple[str, ...] = ("lm",)
    scope: str = "model"
    requires: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def check_metric(obj: object, origin: str) -> Metric:
    """`obj` if it is a Metric; an error naming `origin` otherwise."""
    if not isinstance(obj, Metric):
        raise LmbenchError(f"{origin} is not an lmbench.bench.metrics.Metric")
    return obj


METRICS: Registry[Metric] = Registry("metric", ENTRY_POINT_GROUP, validate=check_metric, known_label="valid metrics",
                                     plugin_label="metric plugin")


def metric(name: str, description: str, kinds: tuple[str, ...] = ("lm",), scope: str = "model",
           requires: str | None = None, options: dict[str, Any] | None = None
           ) -> Callable[[Callable[[CellContext], MetricOutput]], Callable[[CellContext], MetricOutput]]:
    """Register `fn(ctx) -> MetricOutput` under NAME."""

    def register(fn: Callable[[CellContext], MetricOutput]) -> Callable[[CellContext], MetricOutput]:
        METRICS.register(name, Metric(name, fn, description, kinds, scope, requires, dict(options or {})))
        return fn

    return register


def metric_names() -> list[str]:
    """Every metric name (built-in and entry points), sorted."""
    return sorted(METRICS.names())


def get_metric(name: str, where: str = "") -> Metric:
    """The metric registered as NAME; a clear error listing the valid names otherwise."""
    return METRICS.get(name, where)


def check_metric_available(name: str, where: str = "") -> None:
    """Raise a clear error when the optional module a metric needs is not part of this installation."""
    required = get_metric(name).requires
    if required is None:
        return
    try:
        importlib.import_module(required)
    except ModuleNotFoundError as e:
        prefix = f"{where}: " if where else ""
        raise LmbenchError(f"{prefix}metric {name!r} needs {required}, which is not available in this lmbench "
                           f"installation ({e}); remove it from the suite's metrics or update lmbench") from None


# Lower bounds of the built-in metrics' integer options (a value's type must match its default's).
_OPTION_LOW = {("sparsity", "max_order"): 1, ("distance", "items"): 1, ("pairs", "pairs"): 1,
               ("gradflow", "max_lag"): 0, ("gradflow", "positions"): 1, ("bleu", "beam"): 0}


def check_metric_options(name: str, options: dict[str, Any], where: str = "") -> None:
    """Check a suite's options for metric NAME against the metric's defaults, before any cell runs."""
    m = get_metric(name, where)
    prefix = f"{where}: metric_options.{name}"
    unknown = sorted(set(options) - set(m.options))
    if unknown:
        raise LmbenchError(f"{prefix}: unknown option(s) {', '.join(unknown)}; "
                           f"allowed: {', '.join(m.options) or 'none'}")
    for key, value in options.items():
        default = m.options[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, list):
            ok = isinstance(value, list | str)  # a list, or "1,2,4" (parsed below)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise LmbenchError(f"{prefix}: {key} = {value!r} must be {type(default).__name__} like the default "
                               f"{default!r}")
        low = _OPTION_LOW.get((name, key))
        if low is not None and value < low:
            raise LmbenchError(f"{prefix}: {key} = {value} must be ≥ {low}")
    merged = {**m.options, **options}
    if name == "distance":
        from lmbench.evaluate.probes import check_distance_memory, parse_distances

        try:
            distances = parse_distances(merged["distances"])
        except LmbenchError as e:
            raise LmbenchError(f"{prefix}: {e}") from None
        check_distance_memory(distances, merged["items"])
    if name == "pairs" and merged["kind"] not in _PAIR_GROUPS:
        from lmbench.text.files import require_regular_file

        require_regular_file(merged["kind"], "minimal-pairs file (metric_options.pairs.kind)")


def run_metric(name: str, ctx: CellContext) -> MetricOutput:
    """Run one metric on a cell (its options merged over the metric's defaults)."""
    m = get_metric(name)
    ctx.options = {**m.options, **ctx.options}
    out = m.fn(ctx)
    if not isinstance(out, MetricOutput):
        raise LmbenchError(f"metric {name!r} returned {type(out).__name__}, not a MetricOutput")
    return out


# --- built-in metrics -----------------------------------------------------------------------------------------
# A metric imports the module it `requires` inside its function, so that listing and checking metrics works
# (with a clear error) where that optional part of lmbench is absent.


@metric("perplexity", "test perplexity, cross-entropy, zero-probability events and OOV rate (the harness)")
def perplexity(ctx: CellContext) -> MetricOutput:
    """Score the test split (or valid when there is no test) through the shared harness."""
    out = MetricOutput("perplexity")
    for split_name in ("valid", "test"):
        split = getattr(ctx.corpora, split_name, None)
        if split is None:
            continue
        start = time.perf_counter()
        lp = checked_logprobs(ctx.model, split)
        seconds = time.perf_counter() - start
        ev = summarize(ctx.model, split, lp, seconds)
        ctx.cache[f"logprobs/{split_name}"] = lp
        for quantity in ("perplexity", "cross_entropy_bits", "zero_prob_events", "oov_rate", "tokens"):
            out.add(quantity, getattr(ev, quantity), group=split_name)
        out.add("normalized", ev.normalized, group=split_name)
        if split is ctx.eval_split():
            out.time("eval_tokens_per_second", ev.eval_tokens_per_second)
    return out


@metric("speed", "training time and training/evaluation tokens per second (kept apart: they depend on the machine)",
        kinds=("lm", "translator"))
def speed(ctx: CellContext) -> MetricOutput:
    """Training wall time and throughput; evaluation throughput over the test split."""
    out = MetricOutput("speed")  # (the runner records train_seconds of every cell itself)
    if ctx.train_seconds > 0:
        out.time("train_tokens_per_second", ctx.train_tokens / ctx.train_seconds)
    if isinstance(ctx.model, LanguageModel):
        split = ctx.eval_split()
        start = time.perf_counter()
        checked_logprobs(ctx.model, split)
        seconds = time.perf_counter() - start
        out.time("eval_seconds", seconds)
        out.time("eval_tokens_per_second", split.n_predicted / seconds if seconds > 0 else math.inf)
    return out


def training_history(fit_info: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-epoch records ({"epoch": 1, "train_loss": …, "valid_ppl": …}) that a model trained by epochs keeps in
    fit_info["history"] (the trainer writes them); [] for models trained otherwise."""
    records = fit_info.get("history")
    if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
        return records
    return []


@metric("learning_curve", "per-epoch training and validation figures recorded by the model (neural models)",
        kinds=("lm", "translator"))
def learning_curve(ctx: CellContext) -> MetricOutput:
    """Copy the model's per-epoch records (loss, perplexity, learning rate) into tidy rows."""
    out = MetricOutput("learning_curve")
    history = training_history(getattr(ctx.model, "fit_info", {}) or {})
    if not history:
        return out.skip(f"{ctx.model.name} records no per-epoch training history (it is not trained by epochs)")
    for i, record in enumerate(history):
        epoch = record.get("epoch", i + 1)
        for key, value in record.items():
            if key == "epoch" or not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if "second" in key or "per_s" in key or key.endswith("_time") or "tokens_per" in key:
                out.time(f"{key}@{epoch}", value)  # timings are never part of the comparable table
            else:
                out.add(key, value, x=epoch)
    return out


@metric("sparsity", "n-gram sparsity of the corpus by order n: unseen test n-grams, MLE zero-probability events",
        scope="corpus", requires="lmbench.evaluate.sparsity", options={"max_order": 5})
def sparsity(ctx: CellContext) -> MetricOutput:
    """The sparsity table of the corpus (train vs its evaluation split), as tidy rows by order n."""
    from lmbench.evaluate.sparsity import sparsity_table

    out = MetricOutput("sparsity")
    table = sparsity_table(ctx.corpora, int(ctx.options["max_order"]))
    eval_split = "test" if ctx.corpora.test is not None else "valid"
    n_predicted = ctx.eval_split().n_predicted if ctx.eval_split() is not None else 0
    for row in table.itertuples(index=False):
        if row.split not in ("train", eval_split):
            continue
        for quantity in ("types", "tokens", "n1", "n2"):
            out.add(quantity, getattr(row, quantity), x=row.order, group=row.split)
        if row.split == "train":
            out.add("singleton_fraction", row.n1 / row.types if row.types else 0.0, x=row.order, group=row.split)
        else:
            out.add("unseen_fraction", row.unseen_fraction, x=row.order, group=row.split)
            out.add("mle_zero_prob", row.mle_zero_prob, x=row.order, group=row.split)
            out.add("mle_zero_prob_rate", row.mle_zero_prob / n_predicted if n_predicted else 0.0, x=row.order,
                    group=row.split)
    return out


@metric("tokenization", "what a word is: vocabulary, OOV rate, unseen n-grams by n, bits per character and word "
                        "perplexity of a KN model for each tokenizer (eojeol, morpheme, BPE, jamo)", scope="corpus",
        requires="lmbench.evaluate.tokenization",
        options={"tokenizers": ["word", "morph", "bpe:1000", "jamo"], "order": 3, "max_order": 4})
def tokenization(ctx: CellContext) -> MetricOutput:
    """The tokenizer comparison on the corpus's own text (morph and subwords are skipped, with a note, without
    their optional packages)."""
    from lmbench.evaluate.tokenization import tokenization_table

    out = MetricOutput("tokenization")
    specs = [str(s) for s in ctx.options["tokenizers"]]
    for prefixes, package, extra in ((("morph",), "kiwipiepy", "korean"), (("bpe", "unigram"), "sentencepiece",
                                                                              "subword")):
        skipped = [s for s in specs if s.startswith(prefixes)]
        if skipped and importlib.util.find_spec(package) is None:
            out.notes.append(f"tokenization: {', '.join(skipped)} skipped: install the extra lmbench[{extra}] "
                             f"({package})")
            specs = [s for s in specs if s not in skipped]
    for rec in tokenization_table(read_splits(ctx.corpus_spec), specs, int(ctx.options["order"]),
                                  int(ctx.options["max_order"])):
        group = rec["label"]
        for quantity in ("vocabulary", "oov_rate", "tokens_per_word", "token_perplexity", "bits_per_character",
                         "bits_per_character_open", "word_perplexity"):
            out.add(quantity, rec[quantity], group=group)
        for n, share in rec["unseen_ngram_fraction"].items():
            out.add("unseen_ngram_fraction", share, x=n, group=group)
    return out


@metric("floor", "Bayes-optimal perplexity of a synthetic corpus whose generator knows p(token | history)",
        scope="corpus", requires="lmbench.evaluate.floor")
def floor(ctx: CellContext) -> MetricOutput:
    """The floor no model beats, for each split whose tokens are the generator's own."""
    out = MetricOutput("floor")
    floors = (getattr(ctx.corpora, "info", None) or {}).get("bayes_floor") or {}
    if not floors:
        return out.skip(f"corpus {ctx.corpora.name!r} has no known entropy floor (only exact synthetic generators "
                        "such as synthetic:dependency have one)")
    for split_name in ("valid", "test"):
        split, known = getattr(ctx.corpora, split_name, None), floors.get(split_name)
        if split is None or known is None:
            continue
        if known.get("tokens") != split.n_predicted:  # another tokenizer changed what a token is
            out.notes.append(f"floor: the {split_name} floor counts {known.get('tokens')} tokens, the encoded split "
                             f"{split.n_predicted}; not comparable, left out")
            continue
        group = None if split is ctx.eval_split() else split_name
        out.add("bayes_perplexity" if group is None else "bayes_perplexity_valid", known["perplexity"])
        out.add("bits_per_token" if group is None else "bits_per_token_valid", known["bits_per_token"])
    if "entropy_rate_bits" in ctx.corpora.info:
        out.add("entropy_rate_bits", ctx.corpora.info["entropy_rate_bits"])
    return out


def _bucket_x(label: str) -> float:
    """Plot position of a length bucket "6-10" (its upper bound) or "31+" (lower bound + 4)."""
    if label.endswith("+"):
        return float(label[:-1]) + 4
    return float(label.rpartition("-")[2])


@metric("bleu", "translation quality: corpus BLEU (sacreBLEU, signature kept), chrF, exact match, target "
                "perplexity, BLEU by source length", kinds=("translator",), requires="lmbench.evaluate.bleu",
        options={"beam": 0, "bleu": "sacrebleu"})
def bleu(ctx: CellContext) -> MetricOutput:
    """Translate the test pairs (greedy, or the given beam) and score them against their references."""
    from lmbench.evaluate.translation import evaluate_translator

    out = MetricOutput("bleu")
    split_name = "test" if ctx.corpora.test is not None else "valid"
    scores = evaluate_translator(ctx.model, ctx.corpora, split_name, beam=int(ctx.options.get("beam") or 0) or None,
                                 samples=4, bleu=str(ctx.options.get("bleu") or "sacrebleu"))
    out.add("bleu", scores["bleu"], group=split_name)
    out.add("chrf", scores["chrf"], group=split_name)
    out.add("exact_match", scores["exact_match"], group=split_name)
    out.extras["bleu_signature"] = scores["bleu_signature"]
    out.extras["chrf_signature"] = scores["chrf_signature"]
    if "target_perplexity" in scores:
        out.add("target_perplexity", scores["target_perplexity"], group=split_name)
    for row in scores["bleu_by_length"]:
        out.add("bleu_by_length", row["bleu"], x=_bucket_x(row["bucket"]), group=row["bucket"])
        out.add("exact_match_by_length", row["exact_match"], x=_bucket_x(row["bucket"]), group=row["bucket"])
        out.add("sentences_by_length", row["sentences"], x=_bucket_x(row["bucket"]), group=row["bucket"])
    out.time("decode_sentences_per_second", scores["sentences_per_second"])
    out.extras["samples"] = scores["samples"]
    return out


@metric("distance", "long-range probe: accuracy of predicting the closer of a trigger d tokens back, by distance d",
        requires="lmbench.evaluate.probes", options={"distances": [1, 2, 4, 8, 16, 32], "items": 200})
def distance(ctx: CellContext) -> MetricOutput:
    """Accuracy per distance (with its 95% interval and chance) on items from the corpus's own generator."""
    from lmbench.evaluate.probes import distance_probe
    from lmbench.text.synthetic.dependency import PROCESS_CORPORA, process_from_spec

    out = MetricOutput("distance")
    if ctx.corpus_spec.partition("?")[0] not in PROCESS_CORPORA:
        return out.skip(f"distance probes need a synthetic:dependency corpus (or another corpus whose generator "
                        f"they know: {', '.join(PROCESS_CORPORA)}), not {ctx.corpus_spec!r}")
    report = distance_probe(ctx.model, process_from_spec(ctx.corpus_spec), ctx.options["distances"],
                            int(ctx.options["items"]), seed=ctx.seed)
    for row in report["not_generated"]:
        out.notes.append(f"distance: d = {row['distance']} not measured: {row['reason']}")
    for row in report["distances"]:
        out.add("accuracy", row["accuracy"], x=row["distance"])
        out.add("ci_low", row["ci95"][0], x=row["distance"])
        out.add("ci_high", row["ci95"][1], x=row["distance"])
        out.add("chance", report["chance"], x=row["distance"])
        out.add("items", row["items"], x=row["distance"])
        if report["window"] is not None:  # the model reads only its last `window` tokens (a Transformer's context)
            out.add("window", report["window"], x=row["distance"])
    return out


_PAIR_GROUPS = {"agreement": "attractors", "korean-npi": "phrases"}


@metric("pairs", "minimal pairs (BLiMP format): share where the good sentence scores higher, by group",
        requires="lmbench.evaluate.probes", options={"kind": "agreement", "pairs": 400, "group_by": ""})
def pairs(ctx: CellContext) -> MetricOutput:
    """Generated pairs (kind = agreement | korean-npi) or a JSONL file (kind = path), scored by sentence log-prob."""
    from lmbench.evaluate.probes import pairs_probe, read_pairs

    out = MetricOutput("pairs")
    kind = str(ctx.options["kind"])
    if kind in _PAIR_GROUPS:
        from lmbench.text.synthetic.pairs import make_pairs

        items = make_pairs(kind, int(ctx.options["pairs"]), seed=ctx.seed)
    else:
        items = read_pairs(kind)
    group_by = str(ctx.options["group_by"] or _PAIR_GROUPS.get(kind, ""))
    report = pairs_probe(ctx.model, items, [group_by] if group_by else [])
    out.add("accuracy", report["accuracy"], group="all")
    out.add("tie", report["tie"], group="all")
    out.add("unknown_tokens", report["unknown_tokens"], group="all")
    for name, table in report["groups"].items():
        for row in table:
            value = row["value"]
            x = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            out.add("accuracy", row["accuracy"], x=x, group=f"{name}={value}")
            out.add("tie", row["tie"], x=x, group=f"{name}={value}")
            out.add("pairs", row["pairs"], x=x, group=f"{name}={value}")
    return out


@metric("gradflow", "gradient flow: mean ‖∂L_t/∂h_{t−k}‖ by lag k and layer, and training gradient norms / clipping",
        requires="lmbench.evaluate.gradflow", options={"max_lag": 50, "positions": 32, "at_init": False})
def gradflow(ctx: CellContext) -> MetricOutput:
    """The lag profile of the trained model (and, with at_init, of a fresh copy) on the evaluation split."""
    from lmbench.evaluate import gradflow as gf

    out = MetricOutput("gradflow")
    model = ctx.model
    if not model.has("hidden_states"):
        return out.skip(f"{model.name} has no hidden states to differentiate (capability 'hidden_states')")
    max_lag, positions = int(ctx.options["max_lag"]), int(ctx.options["positions"])
    profiles = [("", model)]
    if ctx.options["at_init"]:
        profiles.append((" (init)", gf.fresh_copy(model, ctx.seed)))
    for suffix, m in profiles:
        report = gf.lag_profile(m, ctx.eval_split(), max_lag, positions, seed=ctx.seed)
        for layer, norms in enumerate(report["layers"], 1):
            for lag, value in enumerate(norms):
                out.add("grad_norm", value, x=lag, group=f"layer {layer}{suffix}")
    training = gf.training_grad_norms(model)
    if training is not None:
        for key in ("mean", "median", "max", "clipped_fraction", "steps"):
            out.add(f"train_grad_norm_{key}" if key != "clipped_fraction" else "clipped_fraction", training[key])
    return out


# --- metrics for the lecture's claims (lmbench/report/claims.py reads them) -------------------------------------


@metric("grad_norms", "exploding gradients: the global gradient norm of every training step (before clipping), "
                      "its median and maximum, and how often clipping fired", options={"points": 200})
def grad_norms(ctx: CellContext) -> MetricOutput:
    """The training-time norms the recurrent trainer records, summarised; the per-step series binned to at most
    `points` steps (each bin keeps its largest norm, so a spike is never averaged away)."""
    from lmbench.evaluate.gradflow import training_grad_norms

    out = MetricOutput("grad_norms")
    training = training_grad_norms(ctx.model)
    if training is None:
        return out.skip(f"{ctx.model.name} records no per-step gradient norms (not trained by the neural trainer)")
    for key in ("median", "max", "clipped_fraction", "steps", "non_finite_steps", "clip"):
        out.add(key, training[key])
    norms = np.asarray(training["per_step"], dtype=np.float64)
    for step, value in binned_max(norms, int(ctx.options["points"])):
        out.add("norm", value, x=step)
    return out


def binned_max(values: np.ndarray, points: int) -> list[tuple[int, float]]:
    """(last step of each bin, largest value in it) over at most `points` equal bins; steps count from 1."""
    if values.size == 0 or points < 1:
        return []
    edges = np.unique(np.linspace(0, values.size, min(points, values.size) + 1).round().astype(np.int64))
    return [(int(hi), float(np.max(values[lo:hi]))) for lo, hi in zip(edges[:-1], edges[1:])]


def shuffled_pairs(corpus: Any, n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up to n sentences of `corpus` with at least two different words, and one shuffle of each that differs
    from it (a new word order, the same words)."""
    originals, shuffles = [], []
    for i in rng.permutation(corpus.n_sentences):
        s = corpus.ids[corpus.offsets[i]: corpus.offsets[i + 1]].astype(np.int64)
        if np.unique(s).size < 2:
            continue
        t = rng.permutation(s)
        while np.array_equal(t, s):
            t = rng.permutation(s)
        originals.append(s)
        shuffles.append(t)
        if len(originals) == n:
            break
    return originals, shuffles


@metric("order", "word order: share of test sentences a model scores above, equal to, or below a random shuffle "
                 "of their own words (a unigram model cannot tell them apart)", requires="lmbench.evaluate.probes",
        options={"sentences": 300})
def order(ctx: CellContext) -> MetricOutput:
    """Each sentence and its shuffle scored from `<s>` alone; shares of above / tie / below, and the mean gap."""
    from lmbench.evaluate.probes import sentence_scores

    out = MetricOutput("order")
    originals, shuffles = shuffled_pairs(ctx.eval_split(), int(ctx.options["sentences"]), np.random.default_rng(
        ctx.seed))
    if not originals:
        return out.skip("no evaluation sentence has two different words to shuffle")
    scores = sentence_scores(ctx.model, originals + shuffles)
    a, b = scores[: len(originals)], scores[len(originals):]
    with np.errstate(invalid="ignore"):
        tie = (a == b) | np.isclose(a, b, rtol=1e-9, atol=1e-9)  # two −∞ (an MLE model) are a tie too
    above, below = ~tie & (a > b), ~tie & (a < b)
    out.add("above", float(above.mean()))
    out.add("tie", float(tie.mean()))
    out.add("below", float(below.mean()))
    out.add("both_zero", float((np.isneginf(a) & np.isneginf(b)).mean()))  # ties an unsmoothed model cannot break
    out.add("sentences", len(originals))
    finite = np.isfinite(a) & np.isfinite(b)
    if finite.any():
        out.add("mean_logprob_gap", float(np.mean(a[finite] - b[finite])))
    return out


@metric("corpus_size", "the size of the training split (sentences, predicted tokens) and of the vocabulary",
        scope="corpus")
def corpus_size(ctx: CellContext) -> MetricOutput:
    """How much training data the corpus gives, so results can be read against data size."""
    out = MetricOutput("corpus_size")
    out.add("train_sentences", ctx.corpora.train.n_sentences)
    out.add("train_tokens", ctx.corpora.train.n_predicted)
    out.add("vocabulary", len(ctx.corpora.vocab))
    return out


@metric("length", "length generalisation: excess bits per token over the Bayes floor by test-sentence length, on a "
                  "synthetic:dependency corpus whose training lines are at most train_max_length long",
        requires="lmbench.evaluate.probes", options={"edges": [8, 16, 24, 32, 48, 64]})
def length(ctx: CellContext) -> MetricOutput:
    """Model bits minus the generator's exact bits per word, by length bucket of the test sentences (1..e₁,
    e₁+1..e₂, …, above the last edge); `</s>` is left out, so a model that learned "lines end by L" is not charged
    for that prior, only for how well it predicts the words. The training length limit is recorded with them."""
    from lmbench.text.synthetic.dependency import PROCESS_CORPORA, process_from_spec

    out = MetricOutput("length")
    if ctx.corpus_spec.partition("?")[0] not in PROCESS_CORPORA:
        return out.skip(f"length buckets against the floor need a generated corpus ({', '.join(PROCESS_CORPORA)}), "
                        f"not {ctx.corpus_spec!r}")
    split_name = "test" if ctx.corpora.test is not None else "valid"
    split = ctx.eval_split()
    lines = [line.split() for line in read_splits(ctx.corpus_spec).get(split_name)]
    sizes = np.diff(split.offsets) + 1  # predicted tokens per sentence
    if len(lines) != split.n_sentences or any(len(w) + 1 != n for w, n in zip(lines, sizes)):
        return out.skip("the encoded test sentences are not the generator's lines (another tokenizer?)")
    floor = np.concatenate(process_from_spec(ctx.corpus_spec).token_logprobs(lines))
    excess = (floor - checked_logprobs(ctx.model, split)) / math.log(2)  # bits the model spends beyond the floor
    excess[np.cumsum(sizes) - 1] = 0.0  # each sentence's </s>
    per_sentence = np.add.reduceat(excess, np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    words = sizes - 1
    edges = sorted(int(e) for e in ctx.options["edges"])
    bucket = np.searchsorted(edges, words, side="left")  # 0: ≤ e₁, 1: e₁ < n ≤ e₂, …
    for b in np.unique(bucket):
        mask = bucket == b
        lo = 1 if b == 0 else edges[b - 1] + 1
        label = f"{lo}-{edges[b]}" if b < len(edges) else f"{lo}+"
        x = edges[b] if b < len(edges) else edges[-1] + (edges[-1] - edges[-2] if len(edges) > 1 else edges[-1])
        out.add("excess_bits", float(per_sentence[mask].sum() / words[mask].sum()), x=x, group=label)
        out.add("sentences", int(mask.sum()), x=x, group=label)
    limit = (getattr(ctx.corpora, "info", None) or {}).get("train_max_length")
    if limit:
        out.add("train_max_length", limit)
    return out


@metric("attention_map", "attention when predicting the closer of a dependency probe: weight on each earlier token "
                         "by distance, per layer and head, and on the trigger against the uniform share",
        requires="lmbench.evaluate.attention", options={"distance": 8, "items": 50})
def attention_map(ctx: CellContext) -> MetricOutput:
    """Mean last-row attention over probe items at one distance (and one item's full row, for the figure)."""
    from lmbench.evaluate.attention import closer_attention
    from lmbench.text.synthetic.dependency import process_from_spec

    out = MetricOutput("attention_map")
    if not ctx.model.has("attention"):
        return out.skip(f"{ctx.model.name} has no attention weights (capability 'attention')")
    try:  # the probe items come from the corpus's own generator
        process = process_from_spec(ctx.corpus_spec)
    except LmbenchError as e:
        return out.skip(f"the attention map reads a dependency probe item: {e}")
    d = int(ctx.options["distance"])
    report = closer_attention(ctx.model, process, d, int(ctx.options["items"]), seed=ctx.seed)
    for layer, heads in enumerate(report["mean"], 1):
        for head, row in enumerate(heads, 1):
            group = f"layer {layer} head {head}"
            for j, value in enumerate(row, 1):
                out.add("attention", value, x=j, group=group)
            out.add("trigger_attention", report["trigger"][layer - 1, head - 1], x=d, group=group)
    out.add("uniform_attention", report["uniform"], x=d)
    out.extras["example"] = report["example"] | {"distance": d}
    return out


_OPTION_LOW |= {("attention_map", "distance"): 1, ("attention_map", "items"): 1, ("parallelism", "tokens_per_step"): 1,
                ("parallelism", "steps"): 1, ("parallelism", "threads"): 0}


@metric("parallelism", "training tokens/s and seconds per epoch as the sequence length grows, at a fixed number of "
                       "tokens per step (recurrent: T sequential steps per window; attention: 1)",
        requires="lmbench.evaluate.parallelism",
        options={"lengths": [16, 32, 64, 128, 256, 512], "tokens_per_step": 2048, "steps": 3, "threads": 0})
def parallelism(ctx: CellContext) -> MetricOutput:
    """Fresh copies of the model trained a few steps at each length; rates to timings, the set-up to rows."""
    from lmbench.evaluate.parallelism import length_param, parse_lengths, throughput_by_length

    out = MetricOutput("parallelism")
    try:
        length_param(ctx.model)
    except LmbenchError as e:
        return out.skip(str(e))
    rows, notes = throughput_by_length(ctx.model, ctx.corpora.train, ctx.corpora.valid,
                                       parse_lengths(ctx.options["lengths"]), int(ctx.options["tokens_per_step"]),
                                       int(ctx.options["steps"]), seed=ctx.seed, threads=int(ctx.options["threads"]))
    out.notes += notes
    for row in rows:
        T = row["length"]
        out.add("batch", row["batch"], x=T)
        out.add("sequential_steps", row["sequential_steps"], x=T)
        out.time(f"train_tokens_per_second@{T}", row["train_tokens_per_second"])
        out.time(f"seconds_per_epoch@{T}", row["seconds_per_epoch"])
    if rows:
        out.time("threads", rows[0]["threads"])
    return out
