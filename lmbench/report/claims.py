"""The lectures' claims, each judged from a run's results table: holds, does not hold, or not measured.

A claim is one object in `CLAIMS`: a key, a title, the lecture's statement (in English, with a Korean gloss),
the report figures that show it, and `judge(results) -> Verdict`. A verdict is computed from results.csv
alone (the tidy table the runner writes), never from text written in advance: its status, one sentence with
the numbers it rests on, and a small evidence table. A claim whose measurements the run lacks is "not
measured", saying what is missing.

The verdicts read the configurations of the lecture suite (lmbench/suites/lecture.toml) by their labels
(`rnn`, `lstm`, `gru`; `mle3`, `addk3`, `trigram`; `rnn-clip`/`rnn-noclip`; `rnn-tanh`/`-relu`/`-linear`;
`lstm-bptt35`; seq2seq with `attention=none`); any run with those labels gets the same verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from lmbench.evaluate.probes import wilson_interval
from lmbench.registry import Registry

Status = Literal["holds", "does not hold", "not measured"]
STATUSES: tuple[Status, ...] = ("holds", "does not hold", "not measured")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict on one run: status, one sentence with the numbers, and the table they come from."""

    status: Status
    sentence: str
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status must be one of {STATUSES}, got {self.status!r}")

    @property
    def detail(self) -> str:
        """The sentence without its leading "holds: " (for a page that shows the status as a badge)."""
        lead, sep, rest = self.sentence.partition(": ")
        return rest if sep and lead.startswith(self.status) else self.sentence


@dataclass(frozen=True)
class Claim:
    """One claim of the lectures and how a run decides it."""

    key: str
    title: str
    statement: str  # the lecture's claim, in English
    korean: str  # a short Korean gloss of it
    judge: Callable[[pd.DataFrame], Verdict]
    figures: tuple[str, ...] = ()  # keys of report figures (lmbench.report.figures) that show it


CLAIMS: Registry[Claim] = Registry("claim")


def claim(key: str, title: str, statement: str, korean: str, figures: tuple[str, ...] = ()
          ) -> Callable[[Callable[[pd.DataFrame], Verdict]], Callable[[pd.DataFrame], Verdict]]:
    """Register `judge(results) -> Verdict` as the claim KEY (report order = registration order)."""

    def register(fn: Callable[[pd.DataFrame], Verdict]) -> Callable[[pd.DataFrame], Verdict]:
        CLAIMS.register(key, Claim(key, title, statement, korean, fn, figures))
        return fn

    return register


def judge_all(results: pd.DataFrame) -> list[tuple[Claim, Verdict]]:
    """Every registered claim with its verdict on `results` (a results.csv table)."""
    return [(c, c.judge(results)) for _, c in CLAIMS.items()]


# --- reading the results table ---------------------------------------------------------------------------------


def values(results: pd.DataFrame, metric: str, quantity: str, **where: str | None) -> pd.DataFrame:
    """Rows of one metric and quantity (and corpus/config/group), values as numbers averaged over seeds:
    columns corpus, config, group, x, value."""
    df = results[(results["metric"] == metric) & (results["quantity"] == quantity)]
    for column, wanted in where.items():
        if wanted is not None:
            df = df[df[column].astype(str) == wanted]
    df = df.assign(value=pd.to_numeric(df["value"], errors="coerce"), x=pd.to_numeric(df["x"], errors="coerce"),
                   group=df["group"].fillna("").astype(str))
    return df.groupby(["corpus", "config", "group", "x"], dropna=False, sort=False)["value"].mean().reset_index()


def value(results: pd.DataFrame, metric: str, quantity: str, config: str | None = None, corpus: str | None = None,
          group: str | None = None, x: float | None = None) -> float | None:
    """One number (mean over seeds), or None when the run did not measure it."""
    df = values(results, metric, quantity, config=config, corpus=corpus, group=group)
    if x is not None:
        df = df[df["x"] == x]
    return float(df["value"].mean()) if not df.empty else None


def _corpus_with(results: pd.DataFrame, metric: str, quantity: str, configs: tuple[str, ...]) -> str | None:
    """The first corpus (in table order) where every one of `configs` has rows of metric/quantity."""
    df = values(results, metric, quantity)
    for corpus in dict.fromkeys(df["corpus"]):
        if set(configs) <= set(df.loc[df["corpus"] == corpus, "config"]):
            return str(corpus)
    return None


def _missing(what: str) -> Verdict:
    return Verdict("not measured", f"not measured: this run has no {what}.")


def _ppl(v: float | None) -> str:
    if v is None:
        return "—"
    return "∞" if math.isinf(v) else f"{v:.1f}"


def _status(ok: bool) -> Status:
    return "holds" if ok else "does not hold"


def _lead(ok: bool) -> str:
    return "holds" if ok else "does not hold on this run"


# --- the claims ---------------------------------------------------------------------------------------------------

MLE, ADDK, KN = "mle3", "addk3", "trigram"


@claim("sparsity", "Count models suffer from sparsity; smoothing removes the zeros",
       "The longer the n-gram, the more test n-grams were never seen in training, so the MLE n-gram model gives "
       "zero probability to real sentences (infinite perplexity); smoothing gives every event some probability, "
       "and Kneser–Ney smoothing beats add-k.",
       "n이 커질수록 보지 못한 n-gram이 늘어나 MLE는 확률 0을 준다 — 스무딩이 필요하다.",
       figures=("sparsity",))
def sparsity_claim(results: pd.DataFrame) -> Verdict:
    """Unseen share and MLE zeros grow with n; MLE perplexity ∞, add-k and KN finite, KN below add-k."""
    unseen = values(results, "sparsity", "unseen_fraction")
    zeros = values(results, "sparsity", "mle_zero_prob_rate")
    corpus = _corpus_with(results, "perplexity", "perplexity", (MLE, ADDK, KN))
    if unseen.empty or corpus is None:
        return _missing(f"sparsity table and test perplexities of {MLE}, {ADDK} and {KN} on one corpus")
    if corpus in set(unseen["corpus"]):
        unseen, zeros = unseen[unseen["corpus"] == corpus], zeros[zeros["corpus"] == corpus]
    unseen, zeros = unseen.sort_values("x"), zeros.sort_values("x")
    ppl = {c: value(results, "perplexity", "perplexity", c, corpus, "test") for c in (MLE, ADDK, KN)}
    shares = unseen["value"].to_numpy()
    grows = len(shares) >= 2 and bool((shares[1:] >= shares[:-1]).all()) and shares[-1] > shares[0]
    infinite = ppl[MLE] is not None and math.isinf(ppl[MLE])
    finite = all(ppl[c] is not None and math.isfinite(ppl[c]) for c in (ADDK, KN))
    kn_wins = finite and ppl[KN] < ppl[ADDK]
    ok = grows and infinite and finite and kn_wins
    n_lo, n_hi = int(unseen["x"].iloc[0]), int(unseen["x"].iloc[-1])
    sentence = (f"{_lead(ok)}: unseen test n-grams {shares[0]:.1%} at n = {n_lo} → {shares[-1]:.1%} at n = {n_hi}"
                f"{'' if grows else ' (not growing)'}; test perplexity MLE {_ppl(ppl[MLE])}, add-k {_ppl(ppl[ADDK])}, "
                f"Kneser–Ney {_ppl(ppl[KN])} on {corpus}.")
    rows = [{"measure": f"unseen test {int(n)}-grams (share)", "value": v} for n, v in zip(unseen["x"], shares)]
    rows += [{"measure": f"tokens an MLE {int(n)}-gram model gives p = 0 (share)", "value": v}
             for n, v in zip(zeros["x"], zeros["value"])]
    rows += [{"measure": f"test perplexity, {name} trigram", "value": ppl[c]}
             for name, c in (("MLE", MLE), ("add-k", ADDK), ("Kneser–Ney", KN))]
    return Verdict(_status(ok), sentence, pd.DataFrame(rows))


RECURRENT = ("rnn", "lstm", "gru")


@claim("vanishing", "A vanilla RNN's gradient vanishes through time",
       "Back-propagation through time multiplies one Jacobian per step; for a vanilla RNN these factors are "
       "mostly below one, so the gradient reaching a hidden state k steps back shrinks exponentially in k — "
       "the LSTM's additive cell state keeps it.",
       "RNN은 시간을 거슬러 역전파할 때 기울기가 사라진다 (vanishing gradient).",
       figures=("gradflow",))
def vanishing_claim(results: pd.DataFrame) -> Verdict:
    """‖∂L_t/∂h_{t−k}‖ relative to k = 0: the RNN keeps < 1% at the largest lag and less than the LSTM."""
    corpus = _corpus_with(results, "gradflow", "grad_norm", ("rnn", "lstm"))
    if corpus is None:
        return _missing("gradient-flow profile of both rnn and lstm on one corpus")
    df = values(results, "gradflow", "grad_norm", corpus=corpus, group="layer 1")
    configs = [c for c in RECURRENT if c in set(df["config"])]
    lag = float(df.groupby("config")["x"].max().min())
    marks = sorted({m for m in (0, 1, 5, 10, 20, 30, 40, lag) if m <= lag})
    rows, kept = [], {}
    for c in configs:
        sub = df[df["config"] == c].set_index("x")["value"]
        base = float(sub.get(0.0, float("nan")))
        kept[c] = float(sub.get(lag, float("nan"))) / base if base > 0 else float("nan")
        rows += [{"config": c, "lag": int(k), "grad norm": float(sub.get(k, float("nan"))),
                  "share of lag 0": float(sub.get(k, float("nan"))) / base if base > 0 else float("nan")}
                 for k in marks]
    ok = kept["rnn"] < 0.01 and kept["rnn"] < kept["lstm"]
    others = ", ".join(f"{c.upper() if c != 'lstm' else 'LSTM'} {kept[c]:.2g}" for c in configs if c != "rnn")
    sentence = (f"{_lead(ok)}: at lag {int(lag)} the RNN keeps {kept['rnn']:.2g} of its lag-0 gradient norm, "
                f"{others} (on {corpus}).")
    table = pd.DataFrame(rows).pivot_table(index="lag", columns="config", values="share of lag 0", sort=False)
    table = table.reset_index()
    table.columns.name = None
    return Verdict(_status(ok), sentence, table)


RNN_MAX_ACCURACY, LSTM_MIN_ACCURACY, LONG, FAR = 0.6, 0.9, 16.0, 32.0


@claim("long_range", "So the RNN fails on long-range dependencies where LSTM and GRU succeed",
       "Because its gradient vanishes, a vanilla RNN cannot learn to carry information over many steps, while "
       "the LSTM's (and GRU's) gated memory can — measured in accuracy, not only in gradients: with the same "
       "size, optimiser and training budget, the RNN is near chance at distances ≥ 16 and the LSTM right at 32.",
       "RNN은 장기 의존성을 학습하기 어렵고, LSTM·GRU는 더 멀리 정보를 전달한다.",
       figures=("distance",))
def long_range_claim(results: pd.DataFrame) -> Verdict:
    """Distance probe: RNN ≤ 0.6 at every d ≥ 16, LSTM ≥ 0.9 at d = 32 (GRU and n-grams reported)."""
    corpus = _corpus_with(results, "distance", "accuracy", ("rnn", "lstm"))
    if corpus is None:
        return _missing("distance-probe accuracy of both rnn and lstm on one corpus")
    df = values(results, "distance", "accuracy", corpus=corpus)
    table = df.pivot_table(index="x", columns="config", values="value", sort=False).sort_index().reset_index()
    table.columns.name = None
    table = table.rename(columns={"x": "distance"})
    table["distance"] = table["distance"].astype(int)
    chance = value(results, "distance", "chance", corpus=corpus)
    if chance is not None:
        table.insert(1, "chance", chance)
    rnn = table.loc[table["distance"] >= LONG, "rnn"]
    far = table.loc[table["distance"] == FAR, "lstm"]
    if rnn.empty or far.empty:
        return Verdict("not measured", f"not measured: the distance probe on {corpus} has no distance ≥ "
                       f"{LONG:g} and = {FAR:g}.", table)
    ok = bool((rnn <= RNN_MAX_ACCURACY).all()) and float(far.iloc[0]) >= LSTM_MIN_ACCURACY
    at_far = table[table["distance"] == FAR].iloc[0]
    others = ", ".join(f"{c} {at_far[c]:.2f}" for c in table.columns if c not in ("distance", "chance", "rnn",
                                                                                    "lstm"))
    sentence = (f"{_lead(ok)}: LSTM {at_far['lstm']:.2f} vs RNN {at_far['rnn']:.2f} at d = {FAR:g}"
                f"{f' (chance {chance:.2f})' if chance is not None else ''}; the RNN's best at d ≥ {LONG:g} is "
                f"{rnn.max():.2f}{f'; {others}' if others else ''} (on {corpus}; thresholds: RNN ≤ "
                f"{RNN_MAX_ACCURACY} at d ≥ {LONG:g}, LSTM ≥ {LSTM_MIN_ACCURACY} at d = {FAR:g}).")
    return Verdict(_status(ok), sentence, table)


CLIP, NOCLIP = "rnn-clip", "rnn-noclip"


@claim("clipping", "Exploding gradients need clipping",
       "When the recurrent Jacobians are larger than one the gradient explodes: a few training steps get "
       "enormous updates that undo the learning. Clipping the global gradient norm keeps every step bounded.",
       "기울기 폭주(exploding gradient)는 gradient clipping으로 막는다.",
       figures=("grad_norm_steps",))
def clipping_claim(results: pd.DataFrame) -> Verdict:
    """The same RNN at a high learning rate: without clipping, norm spikes (max ≥ 10× median) and a worse
    test perplexity than with clipping."""
    corpus = _corpus_with(results, "grad_norms", "max", (CLIP, NOCLIP))
    need = {(c, q) for c in (CLIP, NOCLIP) for q in ("max", "median")}
    got = {(c, q): value(results, "grad_norms", q, c, corpus) for c, q in need}
    ppl = {c: value(results, "perplexity", "perplexity", c, corpus, "test") for c in (CLIP, NOCLIP)}
    if corpus is None or any(v is None for v in got.values()) or any(v is None for v in ppl.values()):
        return _missing(f"training gradient norms and test perplexity of both {CLIP} and {NOCLIP} on one corpus")
    fired = value(results, "grad_norms", "clipped_fraction", CLIP, corpus)
    loss = {c: values(results, "learning_curve", "train_loss", config=c, corpus=corpus) for c in (CLIP, NOCLIP)}
    spikes = got[(NOCLIP, "max")] >= 10 * got[(NOCLIP, "median")]
    better = math.isinf(ppl[NOCLIP]) or ppl[NOCLIP] > ppl[CLIP]
    ok = spikes and better
    sentence = (f"{_lead(ok)}: without clipping the largest step's gradient norm was {got[(NOCLIP, 'max')]:.3g} "
                f"(median {got[(NOCLIP, 'median')]:.2g}) and the test perplexity {_ppl(ppl[NOCLIP])}; clipped "
                f"(on {fired or 0:.0%} of steps) the largest was {got[(CLIP, 'max')]:.3g} and the perplexity "
                f"{_ppl(ppl[CLIP])}.")
    table = pd.DataFrame([{"config": c, "max grad norm": got[(c, "max")], "median grad norm": got[(c, "median")],
                           "clipped steps": value(results, "grad_norms", "clipped_fraction", c, corpus),
                           "last train loss": float(loss[c].sort_values("x")["value"].iloc[-1])
                           if not loss[c].empty else None,
                           "test perplexity": ppl[c]} for c in (NOCLIP, CLIP)])
    return Verdict(_status(ok), sentence, table)


ACTIVATIONS = ("rnn-tanh", "rnn-relu", "rnn-linear")


@claim("activation", "tanh is the usual RNN activation for a reason",
       "The RNN cell squashes its state with tanh: bounded like a sigmoid but centred on zero. An unbounded "
       "ReLU lets the state and the gradient grow; no activation at all (linear) loses the non-linearity. "
       "(This workbench's cells offer tanh, ReLU and linear; sigmoid is not one of them.)",
       "RNN 셀의 활성화 함수로 tanh를 쓰는 이유가 있다.",
       figures=("grad_norm_steps",))
def activation_claim(results: pd.DataFrame) -> Verdict:
    """tanh vs ReLU vs linear, all else equal: tanh has the lowest test perplexity and the smallest largest
    gradient norm."""
    ppl = values(results, "perplexity", "perplexity")
    ppl = ppl[(ppl["group"] == "test") & ppl["config"].isin(ACTIVATIONS)]
    corpora = [k for k, sub in ppl.groupby("corpus", sort=False) if "rnn-tanh" in set(sub["config"]) and len(sub) > 1]
    if not corpora:
        return _missing("test perplexities of rnn-tanh and another activation (rnn-relu, rnn-linear) on one corpus")
    corpus = str(corpora[0])
    present = [c for c in ACTIVATIONS if c in set(ppl.loc[ppl["corpus"] == corpus, "config"])]
    rows = []
    for c in present:
        acc = values(results, "distance", "accuracy", config=c, corpus=corpus)
        rows.append({"config": c, "test perplexity": value(results, "perplexity", "perplexity", c, corpus, "test"),
                     "max grad norm": value(results, "grad_norms", "max", c, corpus),
                     "mean distance accuracy": float(acc["value"].mean()) if not acc.empty else None})
    table = pd.DataFrame(rows)
    best = table.loc[table["test perplexity"].idxmin(), "config"]
    norms = table["max grad norm"]
    calm = norms.isna().all() or table.loc[table["config"] == "rnn-tanh", "max grad norm"].iloc[0] <= norms.min()
    ok = best == "rnn-tanh" and bool(calm)
    parts = "; ".join(f"{r['config'].removeprefix('rnn-')} {_ppl(r['test perplexity'])}"
                      + (f" (largest gradient norm {r['max grad norm']:.3g})" if r["max grad norm"] is not None
                         and not math.isnan(r["max grad norm"]) else "") for r in rows)
    evidence = table.dropna(axis=1, how="all")  # no distance probe on that corpus: no empty accuracy column
    return Verdict(_status(ok), f"{_lead(ok)}: test perplexity {parts} (on {corpus}).", evidence)


MIN_BUCKET = 10  # a length bucket with fewer test sentences is too noisy to judge


@claim("attention", "Without attention, translation quality falls with sentence length; attention flattens it",
       "A seq2seq encoder squeezes the whole source into one vector, so quality drops as sentences grow long; "
       "attention lets the decoder look back at every source state.",
       "긴 문장일수록 seq2seq 번역 품질이 떨어지고, 어텐션이 이를 완화한다.",
       figures=("bleu",))
def attention_claim(results: pd.DataFrame) -> Verdict:
    """BLEU by source length (buckets of ≥ MIN_BUCKET sentences): with attention the drop from the shortest to the
    longest bucket is smaller and the longest bucket scores higher."""
    df = values(results, "bleu", "bleu_by_length")
    none = [c for c in dict.fromkeys(df["config"]) if "attention=none" in c]
    att = [c for c in dict.fromkeys(df["config"]) if "attention=" in c and c not in none]
    if not none or not att:
        return _missing("BLEU by source length for seq2seq with and without attention")
    table = df[df["config"].isin([none[0], att[0]])].pivot_table(index=["x", "group"], columns="config",
                                                                  values="value", sort=False)
    table = table.reset_index().sort_values("x").rename(columns={"group": "source length"})
    table.columns.name = None
    counts = values(results, "bleu", "sentences_by_length", config=none[0])
    table = table.merge(counts[["x", "value"]].rename(columns={"value": "sentences"}), on="x", how="left")
    table = table.drop(columns="x")
    judged = table[table["sentences"].fillna(MIN_BUCKET) >= MIN_BUCKET]
    if len(judged) < 2:
        return Verdict("not measured", f"not measured: fewer than two source-length buckets hold {MIN_BUCKET} "
                       "test sentences.", table)
    first, last = judged.iloc[0], judged.iloc[-1]
    drop_none, drop_att = first[none[0]] - last[none[0]], first[att[0]] - last[att[0]]
    ok = drop_att < drop_none and last[att[0]] > last[none[0]]
    better = int((judged[att[0]] > judged[none[0]]).sum())
    sentence = (f"{_lead(ok)}: without attention BLEU goes {first[none[0]]:.1f} → {last[none[0]]:.1f} from "
                f"{first['source length']} to {last['source length']} source words, with attention "
                f"{first[att[0]]:.1f} → {last[att[0]]:.1f}; attention scores higher in {better} of {len(judged)} "
                f"lengths (buckets of ≥ {MIN_BUCKET} test sentences).")
    return Verdict(_status(ok), sentence, table)


NGRAM_SIDE, NEURAL_SIDE = "trigram", "lstm-bptt35"


@claim("data_size", "Data size decides between n-gram and neural models",
       "Count models need little data; neural language models win once there is enough of it. As the training "
       "corpus grows, the LSTM's perplexity falls below Kneser–Ney's.",
       "데이터가 적으면 n-gram, 충분하면 신경망 언어 모델이 낫다.",
       figures=("data_size",))
def data_size_claim(results: pd.DataFrame) -> Verdict:
    """KN better on the smallest corpus, LSTM better on the largest (the curves cross in between)."""
    sizes = values(results, "corpus_size", "train_tokens")
    rows = []
    for corpus, tokens in zip(sizes["corpus"], sizes["value"]):
        kn = value(results, "perplexity", "perplexity", NGRAM_SIDE, corpus, "test")
        nn = value(results, "perplexity", "perplexity", NEURAL_SIDE, corpus, "test")
        if kn is not None and nn is not None:
            rows.append({"corpus": corpus, "training tokens": int(tokens), NGRAM_SIDE: kn, NEURAL_SIDE: nn})
    if len(rows) < 2:
        return _missing(f"test perplexities of {NGRAM_SIDE} and {NEURAL_SIDE} on two or more corpus sizes")
    table = pd.DataFrame(rows).sort_values("training tokens").reset_index(drop=True)
    small, large = table.iloc[0], table.iloc[-1]
    ok = small[NGRAM_SIDE] < small[NEURAL_SIDE] and large[NEURAL_SIDE] < large[NGRAM_SIDE]
    sentence = (f"{_lead(ok)}: on {small['training tokens']:,} training tokens Kneser–Ney {small[NGRAM_SIDE]:.2f} "
                f"vs LSTM {small[NEURAL_SIDE]:.2f}; on {large['training tokens']:,} tokens Kneser–Ney "
                f"{large[NGRAM_SIDE]:.2f} vs LSTM {large[NEURAL_SIDE]:.2f}.")
    return Verdict(_status(ok), sentence, table)


UNIGRAM = "unigram"


@claim("order", "Word order matters",
       "\"I go to school\" and a shuffle of its words are different sentences. A unigram model (a bag of words) "
       "gives both the same probability; a model with context prefers the real order.",
       "단어 순서가 중요하다: \"I go to school\"과 뒤섞인 문장은 다르다.",
       figures=())
def order_claim(results: pd.DataFrame) -> Verdict:
    """The unigram model ties (≥ 99%) every sentence with its shuffle; every other model prefers the real order in
    most sentences — or, where both orders get probability 0 (an unsmoothed model), in most it can score."""
    shares = {q: values(results, "order", q) for q in ("above", "tie", "below", "both_zero")}
    if UNIGRAM not in set(shares["above"]["config"]) or len(set(shares["above"]["config"])) < 2:
        return _missing("word-order scores of the unigram model and a model with context")
    table = shares["above"][["corpus", "config"]].copy()
    for q, column in (("above", "prefers the real order"), ("tie", "tie"), ("below", "prefers the shuffle"),
                      ("both_zero", "both probability 0")):
        table = table.merge(shares[q].rename(columns={"value": column})[["corpus", "config", column]],
                            on=["corpus", "config"], how="left")
    table["both probability 0"] = table["both probability 0"].fillna(0.0)
    uni = table[table["config"] == UNIGRAM].iloc[0]
    rest = table[table["config"] != UNIGRAM]
    scored = 1.0 - rest["both probability 0"]
    prefers = (rest["prefers the real order"] > 0.5 * scored) & (rest["prefers the real order"]
                                                                 > rest["prefers the shuffle"])
    ok = uni["tie"] >= 0.99 and bool(prefers.all())
    parts = ", ".join(f"{r['config']} {r['prefers the real order']:.0%}"
                      + (f" ({r['both probability 0']:.0%} both probability 0)" if r["both probability 0"] > 0 else "")
                      for _, r in rest.iterrows())
    sentence = (f"{_lead(ok)}: the unigram model ties {uni['tie']:.0%} of the sentences with their shuffle; the "
                f"real order scores higher for {parts}.")
    return Verdict(_status(ok), sentence, table)


LENGTH_TOLERANCE = 0.1  # bits per word


@claim("length", "Weight sharing lets a recurrent model handle lengths it never saw",
       "An RNN applies the same cell, with the same weights, at every time step, so a model trained on short "
       "sentences still reads longer ones: past the longest training sentence its predictions degrade no more "
       "than those of a model with no notion of length at all (an n-gram).",
       "같은 가중치를 모든 시점에 공유하므로 RNN은 학습 때 보지 못한 길이의 문장도 처리한다.",
       figures=())
def length_claim(results: pd.DataFrame) -> Verdict:
    """Excess bits per word over the floor, test sentences longer than the training limit L vs at most L: each
    recurrent model's growth is at most the n-gram's + LENGTH_TOLERANCE."""
    df = results[(results["metric"] == "length") & (results["quantity"] == "train_max_length")]
    if df.empty:
        return _missing("excess bits by test-sentence length on a corpus with a training length limit")
    corpus = str(df["corpus"].iloc[0])
    df = results[(results["metric"] == "length") & (results["corpus"].astype(str) == corpus)]
    limit = value(results, "length", "train_max_length", corpus=corpus)
    bits = values(results, "length", "excess_bits", corpus=corpus)
    words = values(results, "length", "sentences", corpus=corpus)
    kinds = df.drop_duplicates("config").set_index("config")["model"]
    rows = []
    for config in dict.fromkeys(bits["config"]):
        sub = bits[bits["config"] == config].merge(words[words["config"] == config][["x", "value"]].rename(
            columns={"value": "n"}), on="x")
        within, beyond = sub[sub["x"] <= limit], sub[sub["x"] > limit]
        if within.empty or beyond.empty:
            continue
        rows.append({"config": config, "model": kinds.get(config, config),
                     f"excess bits/word, ≤ {limit:g} words": float((within["value"] * within["n"]).sum()
                                                                  / within["n"].sum()),
                     f"excess bits/word, > {limit:g} words": float((beyond["value"] * beyond["n"]).sum()
                                                                  / beyond["n"].sum())})
    table = pd.DataFrame(rows)
    if table.empty or not table["model"].isin(RECURRENT).any() or table["model"].isin(RECURRENT).all():
        return _missing("excess bits by length of both a recurrent model and an n-gram on both sides of the "
                        "training length limit")
    table["growth"] = table.iloc[:, 3] - table.iloc[:, 2]
    base = table[~table["model"].isin(RECURRENT)].iloc[0]
    recurrent = table[table["model"].isin(RECURRENT)]
    ok = bool((recurrent["growth"] <= base["growth"] + LENGTH_TOLERANCE).all())
    parts = ", ".join(f"{r.config} {r.iloc[2]:.2f} → {r.iloc[3]:.2f}" for _, r in recurrent.iterrows())
    sentence = (f"{_lead(ok)}: trained on sentences of at most {limit:g} words, excess bits per word over the floor "
                f"go {parts} from sentences within that length to longer ones; {base['config']} (no notion of "
                f"length) {base.iloc[2]:.2f} → {base.iloc[3]:.2f} (on {corpus}).")
    return Verdict(_status(ok), sentence, table.drop(columns="model"))


TRANSFORMER = "transformer"
INSIDE_MIN_ACCURACY = 0.95


def _probe_table(results: pd.DataFrame, quantity: str, corpus: str, configs: list[str]) -> pd.DataFrame:
    """Distance-probe `quantity` by distance (rows) and configuration (columns), mean over seeds."""
    df = values(results, "distance", quantity, corpus=corpus)
    df = df[df["config"].isin(configs)]
    table = df.pivot_table(index="x", columns="config", values="value", sort=False).sort_index().reset_index()
    table.columns.name = None
    table = table.rename(columns={"x": "distance"})
    table["distance"] = table["distance"].astype(int)
    return table[["distance", *(c for c in configs if c in table)]]


def _beyond_window(results: pd.DataFrame, corpus: str, config: str, window: float, chance: float | None
                   ) -> tuple[bool, str] | None:
    """Whether `config` is at chance at the distances beyond its window (the 95% interval of all their items
    pooled holds chance; each distance's own interval for results without item counts) after
    reading the trigger inside it (each interval above chance there), and the sentence that says so and why; None
    when it was not probed beyond its window. A model at chance inside its window too did not learn: its chance
    beyond the window shows nothing about the window, and the sentence says that instead."""
    acc = _probe_table(results, "accuracy", corpus, [config]).set_index("distance")[config]
    beyond = acc[acc.index > window].dropna()
    if beyond.empty:
        return None
    inside = acc[acc.index <= window].dropna()
    low_inside = _probe_table(results, "ci_low", corpus, [config]).set_index("distance").reindex(inside.index)
    if chance is not None and config in low_inside and not bool((low_inside[config] > chance).all()):
        accs = ", ".join(f"{a:.2f}" for a in inside)
        where = ", ".join(str(d) for d in inside.index)
        return False, (f"{config} did not learn to read the trigger even inside its window of {window:g} tokens "
                       f"({accs} at d = {where}; chance {chance:.2f}), so its accuracy beyond the window shows "
                       "nothing about the window")
    accs = ", ".join(f"{a:.2f}" for a in beyond)
    where = ", ".join(str(d) for d in beyond.index)
    items = _probe_table(results, "items", corpus, [config]).set_index("distance").reindex(beyond.index)
    if config in items and items[config].notna().all():
        # One hypothesis, one test: all items beyond the window pooled (a 95% test per distance would call a model
        # that guesses "not at chance" somewhere in one run of ten with two such distances).
        n = items[config].to_numpy()
        correct = int(round(float((beyond.to_numpy() * n).sum())))
        lo, hi = wilson_interval(correct, int(n.sum()))
        at_chance = chance is not None and lo <= chance <= hi
        pooled = f"; together {correct / n.sum():.2f} of {int(n.sum())} items, 95% interval {lo:.2f}–{hi:.2f}"
    else:  # results recorded without item counts: each distance's own interval must hold chance
        low = _probe_table(results, "ci_low", corpus, [config]).set_index("distance").reindex(beyond.index)
        high = _probe_table(results, "ci_high", corpus, [config]).set_index("distance").reindex(beyond.index)
        at_chance = chance is not None and config in low and bool(
            ((low[config] <= chance) & (chance <= high[config])).all())
        pooled = ""
    verdict = "at chance" if at_chance else "not at chance"
    return at_chance, (f"{config}, which reads only its last {window:g} tokens, is {verdict} beyond them ({accs} "
                       f"at d = {where}{pooled}{f'; chance {chance:.2f}' if chance is not None else ''}): a "
                       f"trigger more than {window:g} tokens back has left its window, so no attention weight can "
                       "reach it and the closer can only be guessed")


@claim("attention_long_range", "Attention keeps long-range information without a recurrent path",
       "Self-attention connects every position to every earlier one in a single step, so information from far back "
       "needs no chain of recurrent steps to survive: within its context window a Transformer predicts the closer "
       "of a distant trigger as well as a near one. Beyond the window it reads nothing of the trigger and can "
       "only guess.",
       "셀프 어텐션은 모든 위치를 한 번에 연결하므로 순환 경로 없이 먼 정보를 유지한다.",
       figures=("distance",))
def attention_long_range_claim(results: pd.DataFrame) -> Verdict:
    """Distance probe of the `transformer` configuration: ≥ INSIDE_MIN_ACCURACY at every distance inside its
    window (the probe's `window`; every distance when none is recorded). Any Transformer configuration probed
    beyond its window must be at chance there (its 95% interval holds chance), and the sentence says why."""
    corpus = _corpus_with(results, "distance", "accuracy", (TRANSFORMER,))
    if corpus is None:
        return _missing(f"distance-probe accuracy of a {TRANSFORMER} configuration")
    rows = results[(results["corpus"].astype(str) == corpus) & (results["metric"] == "distance")]
    transformers = [TRANSFORMER, *(c for c in dict.fromkeys(rows.loc[rows["model"] == TRANSFORMER, "config"])
                                   if c != TRANSFORMER)]
    table = _probe_table(results, "accuracy", corpus, [*transformers, "rnn", "lstm"])
    chance = value(results, "distance", "chance", corpus=corpus)
    if chance is not None:
        table.insert(1, "chance", chance)
    windows = values(results, "distance", "window", corpus=corpus).groupby("config", sort=False)["value"].max()
    window = windows.get(TRANSFORMER)
    main = table[["distance", TRANSFORMER]].dropna()
    inside = main if window is None else main[main["distance"] <= window]
    if inside.empty:
        return Verdict("not measured", f"not measured: the distance probe on {corpus} has no distance inside the "
                       f"{TRANSFORMER}'s window.", table)
    worst = inside.loc[inside[TRANSFORMER].idxmin()]
    far = table[table["distance"] == int(inside["distance"].max())].iloc[0]
    beyond = [b for c in transformers if c in windows
              and (b := _beyond_window(results, corpus, c, float(windows[c]), chance)) is not None]
    ok = float(worst[TRANSFORMER]) >= INSIDE_MIN_ACCURACY and all(at_chance for at_chance, _ in beyond)
    others = ", ".join(f"{c.upper()} {float(far[c]):.2f}" for c in ("rnn", "lstm") if c in far)
    span = f"d = {int(inside['distance'].min())}…{int(inside['distance'].max())}"
    at_far = f"; at d = {int(far['distance'])} {others}" if others else ""
    outside = "; ".join(text for _, text in beyond) if beyond else "no Transformer was probed beyond its window"
    lowest = float(worst[TRANSFORMER])
    share = ("in every item" if lowest == 1.0 else
             f"in at least {lowest:.0%} of the items")
    lowest_at = "" if lowest == 1.0 else f"; lowest at d = {int(worst['distance'])}"
    sentence = (f"{_lead(ok)}: inside its window{f' of {window:g} tokens' if window is not None else ''} the "
                f"Transformer ranks the right closer first {share} at every distance probed ({span}{lowest_at}; "
                f"threshold {INSIDE_MIN_ACCURACY:.0%}{at_far}). "
                f"Outside the window: "
                f"{outside} (on {corpus}).")
    return Verdict(_status(ok), sentence, table)
