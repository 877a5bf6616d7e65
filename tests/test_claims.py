"""The lecture's claims judged on hand-made result tables: each verdict holds, does not hold, or is not measured."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lmbench.report import claims as cl
from lmbench.report.build import claims_html, claims_markdown
from lmbench.report.claims import CLAIMS, Claim, Verdict, judge_all
from lmbench.report.figures import Figure


def table(*rows: tuple) -> pd.DataFrame:
    """results.csv rows from (corpus, config, metric, quantity, group, x, value) tuples (model = config)."""
    return pd.DataFrame([{"cell": f"{c}-{cfg}", "corpus": c, "model": cfg, "config": cfg, "seed": 0, "metric": m,
                          "quantity": q, "group": g, "x": x, "value": v} for c, cfg, m, q, g, x, v in rows])


def judge(key: str, results: pd.DataFrame) -> Verdict:
    return CLAIMS.get(key).judge(results)


EMPTY = table(("c", "unigram", "perplexity", "perplexity", "test", None, 100.0))


@pytest.mark.parametrize("key", ["sparsity", "vanishing", "long_range", "clipping", "activation", "attention",
                                 "data_size", "order", "length", "attention_long_range"])
def test_every_claim_says_not_measured_without_its_rows(key):
    v = judge(key, EMPTY)
    assert v.status == "not measured"
    assert v.sentence.startswith("not measured")


def test_every_claim_has_a_statement_and_runs_on_any_table():
    verdicts = judge_all(EMPTY)
    assert [c.key for c, _ in verdicts] == CLAIMS.names()
    for c, v in verdicts:
        assert c.statement and c.korean and c.title
        assert v.status in cl.STATUSES
    with pytest.raises(ValueError):
        Verdict("maybe", "")


# --- 1 sparsity ---------------------------------------------------------------------------------------------------
def sparsity_rows(unseen: list[float], ppl: dict[str, float]) -> pd.DataFrame:
    rows = [("a", "-corpus-", "sparsity", "unseen_fraction", "test", n, u) for n, u in enumerate(unseen, 1)]
    rows += [("a", "-corpus-", "sparsity", "mle_zero_prob_rate", "test", n, u / 2) for n, u in enumerate(unseen, 1)]
    rows += [("a", c, "perplexity", "perplexity", "test", None, p) for c, p in ppl.items()]
    return table(*rows)


def test_sparsity_holds_when_unseen_grows_mle_is_infinite_and_kn_beats_add_k():
    v = judge("sparsity", sparsity_rows([0.01, 0.2, 0.5], {"mle3": math.inf, "addk3": 40.0, "trigram": 20.0}))
    assert v.status == "holds"
    assert "1.0% at n = 1 → 50.0% at n = 3" in v.sentence
    assert "MLE ∞, add-k 40.0, Kneser–Ney 20.0" in v.sentence
    assert list(v.evidence["value"][:3]) == [0.01, 0.2, 0.5]


@pytest.mark.parametrize("unseen, ppl", [
    ([0.3, 0.2, 0.5], {"mle3": math.inf, "addk3": 40.0, "trigram": 20.0}),  # not growing
    ([0.01, 0.2, 0.5], {"mle3": 30.0, "addk3": 40.0, "trigram": 20.0}),  # MLE finite
    ([0.01, 0.2, 0.5], {"mle3": math.inf, "addk3": 18.0, "trigram": 20.0}),  # add-k beats KN
])
def test_sparsity_does_not_hold_when_any_part_fails(unseen, ppl):
    assert judge("sparsity", sparsity_rows(unseen, ppl)).status == "does not hold"


# --- 2 vanishing gradient ------------------------------------------------------------------------------------------
def gradflow_rows(decay: dict[str, float], lags: int = 40) -> pd.DataFrame:
    return table(*[("lr", c, "gradflow", "grad_norm", "layer 1", k, 2.0 * r ** k) for c, r in decay.items()
                   for k in range(lags + 1)])


def test_vanishing_holds_when_the_rnn_keeps_under_one_percent_and_less_than_the_lstm():
    v = judge("vanishing", gradflow_rows({"rnn": 0.8, "lstm": 0.97, "gru": 0.95}))
    assert v.status == "holds"
    assert f"at lag 40 the RNN keeps {0.8 ** 40:.2g}" in v.sentence
    assert f"LSTM {0.97 ** 40:.2g}" in v.sentence
    row = v.evidence[v.evidence["lag"] == 40].iloc[0]
    assert row["rnn"] == pytest.approx(0.8 ** 40) and row["lstm"] == pytest.approx(0.97 ** 40)


def test_vanishing_does_not_hold_when_the_rnn_keeps_its_gradient():
    assert judge("vanishing", gradflow_rows({"rnn": 0.99, "lstm": 0.97})).status == "does not hold"
    assert judge("vanishing", gradflow_rows({"rnn": 0.8, "lstm": 0.7})).status == "does not hold"


# --- 3 long range -------------------------------------------------------------------------------------------------
def distance_rows(acc: dict[str, list[float]], distances=(1, 4, 16, 32)) -> pd.DataFrame:
    rows = [("lr", c, "distance", "accuracy", None, d, a) for c, accs in acc.items() for d, a in zip(distances, accs)]
    rows += [("lr", c, "distance", "chance", None, d, 0.25) for c in acc for d in distances]
    return table(*rows)


def test_long_range_holds_with_the_rnn_near_chance_far_away_and_the_lstm_right():
    v = judge("long_range", distance_rows({"rnn": [1.0, 0.7, 0.6, 0.3], "lstm": [1.0, 1.0, 0.95, 0.9],
                                           "gru": [1.0, 1.0, 0.8, 0.7]}))
    assert v.status == "holds"
    assert v.sentence.startswith("holds: LSTM 0.90 vs RNN 0.30 at d = 32 (chance 0.25)")
    assert "best at d ≥ 16 is 0.60" in v.sentence and "gru 0.70" in v.sentence
    assert list(v.evidence.columns) == ["distance", "chance", "rnn", "lstm", "gru"]


@pytest.mark.parametrize("rnn, lstm", [([1.0, 1.0, 0.61, 0.3], [1.0, 1.0, 1.0, 1.0]),
                                       ([1.0, 0.7, 0.3, 0.3], [1.0, 1.0, 1.0, 0.89])])
def test_long_range_does_not_hold_past_either_threshold(rnn, lstm):
    assert judge("long_range", distance_rows({"rnn": rnn, "lstm": lstm})).status == "does not hold"


def test_long_range_without_the_far_distances_is_not_measured():
    v = judge("long_range", distance_rows({"rnn": [1.0, 1.0], "lstm": [1.0, 1.0]}, distances=(1, 4)))
    assert v.status == "not measured"


# --- 4 clipping ---------------------------------------------------------------------------------------------------
def clip_rows(noclip_max: float, ppl_noclip: float) -> pd.DataFrame:
    rows = [("other", "rnn-clip", "perplexity", "perplexity", "test", None, 1000.0),  # no rnn-noclip there
            ("other", "rnn-clip", "grad_norms", "max", None, None, 1e9)]
    for c, mx, med, ppl, loss in (("rnn-clip", 1.5, 0.3, 16.0, 2.8), ("rnn-noclip", noclip_max, 1.2, ppl_noclip, 5.4)):
        rows += [("d", c, "grad_norms", "max", None, None, mx), ("d", c, "grad_norms", "median", None, None, med),
                 ("d", c, "grad_norms", "clipped_fraction", None, None, 0.8 if c == "rnn-clip" else 0.0),
                 ("d", c, "perplexity", "perplexity", "test", None, ppl),
                 ("d", c, "learning_curve", "train_loss", None, 1, loss + 1),
                 ("d", c, "learning_curve", "train_loss", None, 2, loss)]
    return table(*rows)


def test_clipping_holds_with_spikes_and_a_worse_unclipped_model():
    v = judge("clipping", clip_rows(1.2e6, 134.5))
    assert v.status == "holds"
    assert "largest step's gradient norm was 1.2e+06 (median 1.2) and the test perplexity 134.5" in v.sentence
    assert "clipped (on 80% of steps) the largest was 1.5 and the perplexity 16.0" in v.sentence
    assert list(v.evidence["last train loss"]) == [5.4, 2.8]


@pytest.mark.parametrize("noclip_max, ppl", [(5.0, 134.5), (1.2e6, 15.0)])
def test_clipping_does_not_hold_without_spikes_or_without_harm(noclip_max, ppl):
    assert judge("clipping", clip_rows(noclip_max, ppl)).status == "does not hold"


# --- 5 activation -------------------------------------------------------------------------------------------------
def activation_rows(ppl: dict[str, float], norms: dict[str, float]) -> pd.DataFrame:
    return table(*[("d", c, "perplexity", "perplexity", "test", None, p) for c, p in ppl.items()],
                 *[("d", c, "grad_norms", "max", None, None, n) for c, n in norms.items()],
                 ("other", "rnn-tanh", "perplexity", "perplexity", "test", None, 99.0),  # not compared: alone there
                 ("other", "rnn-tanh", "grad_norms", "max", None, None, 1e3))


def test_activation_holds_when_tanh_is_best_and_calmest():
    v = judge("activation", activation_rows({"rnn-tanh": 15.4, "rnn-relu": 15.7, "rnn-linear": 17.6},
                                            {"rnn-tanh": 4.1, "rnn-relu": 424.8, "rnn-linear": 19.3}))
    assert v.status == "holds"
    assert "tanh 15.4 (largest gradient norm 4.1); relu 15.7 (largest gradient norm 425)" in v.sentence
    # no distance probe on that corpus: the evidence has no column of blanks for it
    assert list(v.evidence.columns) == ["config", "test perplexity", "max grad norm"]


def test_activation_does_not_hold_when_another_activation_wins():
    assert judge("activation", activation_rows({"rnn-tanh": 15.4, "rnn-relu": 15.0},
                                               {"rnn-tanh": 4.1, "rnn-relu": 424.8})).status == "does not hold"
    assert judge("activation", activation_rows({"rnn-tanh": 15.4, "rnn-relu": 15.7},
                                               {"rnn-tanh": 500.0, "rnn-relu": 424.8})).status == "does not hold"


# --- 6 attention --------------------------------------------------------------------------------------------------
def bleu_rows(none: list[float], att: list[float], sizes: tuple[int, ...] = (20, 30, 20)) -> pd.DataFrame:
    buckets = [("1-5", 5), ("6-10", 10), ("11-15", 15), ("16+", 20)]
    return table(*[("ko-en", cfg, "bleu", q, b, x, v) for cfg, vals in
                   (("seq2seq attention=none", none), ("seq2seq attention=general", att))
                   for (b, x), v, n in zip(buckets, vals, sizes)
                   for q, v in (("bleu_by_length", v), ("sentences_by_length", n))])


def test_attention_holds_when_it_flattens_the_fall_with_length():
    v = judge("attention", bleu_rows([50.0, 30.0, 10.0], [55.0, 50.0, 40.0]))
    assert v.status == "holds"
    assert "without attention BLEU goes 50.0 → 10.0 from 1-5 to 11-15 source words, with attention 55.0 → 40.0; " \
        "attention scores higher in 3 of 3 lengths" in v.sentence


def test_attention_ignores_length_buckets_with_few_sentences():
    v = judge("attention", bleu_rows([50.0, 30.0, 10.0, 3.0], [55.0, 50.0, 40.0, 2.0], sizes=(20, 30, 20, 2)))
    assert v.status == "holds" and "to 11-15 source words" in v.sentence
    assert list(v.evidence["sentences"]) == [20, 30, 20, 2]
    assert judge("attention", bleu_rows([50.0, 30.0], [55.0, 50.0], sizes=(20, 3))).status == "not measured"


@pytest.mark.parametrize("none, att", [([50.0, 30.0, 10.0], [60.0, 30.0, 5.0]),  # worse on long sentences
                                       ([30.0, 20.0, 10.0], [70.0, 40.0, 15.0])])  # better, but falls faster
def test_attention_does_not_hold_when_it_falls_as_fast(none, att):
    assert judge("attention", bleu_rows(none, att)).status == "does not hold"


# --- 7 data size --------------------------------------------------------------------------------------------------
def size_rows(points: list[tuple[int, float, float]]) -> pd.DataFrame:
    rows = []
    for i, (tokens, kn, nn) in enumerate(points):
        corpus = f"size{i}"
        rows += [(corpus, "-corpus-", "corpus_size", "train_tokens", None, None, tokens),
                 (corpus, "trigram", "perplexity", "perplexity", "test", None, kn),
                 (corpus, "lstm-bptt35", "perplexity", "perplexity", "test", None, nn)]
    return table(*rows)


def test_data_size_holds_when_the_curves_cross():
    v = judge("data_size", size_rows([(40000, 19.8, 12.6), (3000, 27.9, 45.3), (12000, 20.6, 14.6)]))
    assert v.status == "holds"
    assert v.sentence == ("holds: on 3,000 training tokens Kneser–Ney 27.90 vs LSTM 45.30; on 40,000 tokens "
                          "Kneser–Ney 19.80 vs LSTM 12.60.")
    assert list(v.evidence["training tokens"]) == [3000, 12000, 40000]


def test_data_size_does_not_hold_when_one_side_wins_everywhere():
    assert judge("data_size", size_rows([(3000, 50.0, 45.3), (40000, 19.8, 12.6)])).status == "does not hold"


# --- 8 order ------------------------------------------------------------------------------------------------------
def order_rows(shares: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """(above, tie, of the ties: both probability 0) per config; below = the rest."""
    return table(*[("a", c, "order", q, None, None, v) for c, (above, tie, zero) in shares.items()
                   for q, v in (("above", above), ("tie", tie), ("below", 1 - above - tie), ("both_zero", zero))])


def test_order_holds_when_the_unigram_ties_and_the_others_prefer_the_real_order():
    v = judge("order", order_rows({"unigram": (0.0, 1.0, 0.0), "mle3": (0.02, 0.98, 0.98),
                                   "trigram": (0.97, 0.0, 0.0), "lstm": (0.99, 0.0, 0.0)}))
    assert v.status == "holds"
    assert v.sentence == ("holds: the unigram model ties 100% of the sentences with their shuffle; the real order "
                          "scores higher for mle3 2% (98% both probability 0), trigram 97%, lstm 99%.")


@pytest.mark.parametrize("shares", [{"unigram": (0.4, 0.6, 0.0), "trigram": (0.97, 0.0, 0.0)},
                                    {"unigram": (0.0, 1.0, 0.0), "trigram": (0.5, 0.0, 0.0)},
                                    {"unigram": (0.0, 1.0, 0.0), "mle3": (0.02, 0.98, 0.5)}])
def test_order_does_not_hold_when_the_unigram_distinguishes_or_context_does_not_help(shares):
    assert judge("order", order_rows(shares)).status == "does not hold"


# --- 9 length -----------------------------------------------------------------------------------------------------
def length_rows(growth: dict[str, tuple[float, float]], limit: float | None = 16) -> pd.DataFrame:
    """Per config (excess bits at ≤ limit, beyond it), over buckets 16 / 32 / 64 of 10, 20, 10 sentences."""
    buckets = lambda within, beyond: (("1-16", 16, within, 10), ("17-32", 32, beyond - 0.1, 20),  # noqa: E731
                                      ("33-64", 64, beyond + 0.2, 10))
    rows = [("s", c, "length", q, b, x, v) for c, (within, beyond) in growth.items()
            for b, x, e, n in buckets(within, beyond) for q, v in (("excess_bits", e), ("sentences", n))]
    if limit is not None:
        rows += [("s", c, "length", "train_max_length", None, None, limit) for c in growth]
    rows += [("t", "rnn", "length", "excess_bits", "17-32", 32, 9.0)]  # another corpus, not mixed in
    return table(*rows)


def test_length_holds_when_recurrent_models_degrade_no_more_than_the_ngram():
    v = judge("length", length_rows({"trigram": (0.8, 1.0), "rnn": (0.3, 0.55), "lstm": (0.3, 0.4)}))
    assert v.status == "holds"
    beyond = (20 * (0.55 - 0.1) + 10 * (0.55 + 0.2)) / 30  # sentence-weighted mean of the buckets past 16
    assert f"rnn 0.30 → {beyond:.2f}" in v.sentence and "at most 16 words" in v.sentence
    row = v.evidence.set_index("config").loc["rnn"]
    assert row["growth"] == pytest.approx(beyond - 0.3)


def test_length_does_not_hold_when_a_recurrent_model_degrades_faster():
    assert judge("length", length_rows({"trigram": (0.8, 1.0), "rnn": (0.3, 0.65)})).status == "does not hold"


def test_length_without_the_training_limit_or_an_ngram_is_not_measured():
    assert judge("length", length_rows({"trigram": (0.8, 1.0), "rnn": (0.3, 0.4)}, limit=None)).status == \
        "not measured"
    assert judge("length", length_rows({"rnn": (0.3, 0.4), "lstm": (0.3, 0.4)})).status == "not measured"


# --- the Transformer ----------------------------------------------------------------------------------------------
def probe_rows(configs: dict[str, tuple[int | None, list[float]]], distances=(1, 4, 16, 32), n=200,
               items: bool = False) -> pd.DataFrame:
    """Distance-probe rows of Transformer configurations: config → (window or None, accuracies); the 95% interval
    is the Wilson interval of n items, computed here with the textbook formula."""
    out = []
    for cfg, (window, accs) in configs.items():
        for d, a in zip(distances, accs):
            z = 1.959963984540054
            denom = 1 + z * z / n
            centre = (a + z * z / (2 * n)) / denom
            half = z * math.sqrt(a * (1 - a) / n + z * z / (4 * n * n)) / denom
            quantities = {"accuracy": a, "ci_low": centre - half, "ci_high": centre + half, "chance": 0.25}
            if window is not None:
                quantities["window"] = window
            if items:  # the item count per distance, recorded since the claim pools the items beyond a window
                quantities["items"] = n
            out += [{"cell": f"lr-{cfg}", "corpus": "lr", "model": "rnn" if cfg == "rnn" else "transformer",
                     "config": cfg, "seed": 0, "metric": "distance", "quantity": q, "group": None, "x": d, "value": v}
                    for q, v in quantities.items()]
    return pd.DataFrame(out)


def test_attention_long_range_holds_when_every_distance_inside_the_window_is_right_and_outside_is_chance():
    rows = probe_rows({"transformer": (80, [1.0, 0.97, 0.96, 0.95]), "transformer-ctx8": (8, [1.0, 0.99, 0.25, 0.26]),
                       "rnn": (None, [1.0, 0.5, 0.3, 0.25])})
    v = judge("attention_long_range", rows)
    assert v.status == "holds"
    assert v.sentence == (
        "holds: inside its window of 80 tokens the Transformer ranks the right closer first in at least 95% of the "
        "items at every distance probed (d = 1…32; lowest at d = 32; threshold 95%; at d = 32 RNN 0.25). Outside the "
        "window: transformer-ctx8, which reads only its last 8 tokens, is at chance beyond them (0.25, 0.26 at "
        "d = 16, 32; chance 0.25): a trigger more than 8 tokens back has left its window, so no attention weight can "
        "reach it and the closer can only be guessed (on lr).")
    assert list(v.evidence.columns) == ["distance", "chance", "transformer", "transformer-ctx8", "rnn"]


@pytest.mark.parametrize("configs, why", [
    ({"transformer": (80, [0.535, 1.0, 1.0, 1.0])}, "lowest at d = 1"),  # one distance inside the window fails
    ({"transformer": (80, [1.0, 1.0, 1.0, 1.0]), "transformer-ctx8": (8, [1.0, 1.0, 0.6, 0.25])}, "not at chance"),
    # at chance inside its window too: it never learned, so its chance beyond the window is no evidence
    ({"transformer": (80, [1.0, 1.0, 1.0, 1.0]), "transformer-ctx8": (8, [0.25, 0.285, 0.25, 0.24])},
     "transformer-ctx8 did not learn to read the trigger even inside its window of 8 tokens (0.25, 0.28 at d = 1, 4; "
     "chance 0.25), so its accuracy beyond the window shows nothing about the window"),
])
def test_attention_long_range_does_not_hold_below_the_threshold_inside_or_above_chance_outside(configs, why):
    v = judge("attention_long_range", probe_rows(configs))
    assert v.status == "does not hold" and why in v.sentence


def test_attention_long_range_judges_only_the_distances_inside_the_transformers_window():
    v = judge("attention_long_range", probe_rows({"transformer": (8, [1.0, 0.96, 0.25, 0.25])}))
    assert v.status == "holds" and "d = 1…4" in v.sentence and "0.25, 0.25 at d = 16, 32" in v.sentence
    edge = judge("attention_long_range", probe_rows({"transformer": (16, [1.0, 0.96, 0.97, 0.25])}))
    assert edge.status == "holds" and "d = 1…16" in edge.sentence  # d = window: the trigger is the window's first
    # A run that recorded no window (older results): every distance counts as inside.
    old = judge("attention_long_range", probe_rows({"transformer": (None, [1.0, 0.96, 0.25, 0.25])}))
    assert old.status == "does not hold" and "no Transformer was probed beyond its window" in old.sentence
    perfect = judge("attention_long_range", probe_rows({"transformer": (None, [1.0, 1.0, 1.0, 1.0])}))
    assert perfect.status == "holds" and "first in every item at every distance probed (d = 1…32; threshold" in \
        perfect.sentence
    assert judge("attention_long_range", probe_rows({"transformer": (0, [1.0, 1.0, 1.0, 1.0])})).status == \
        "not measured"


def test_a_figure_two_claims_share_is_drawn_once_and_linked_from_the_second():
    fig = Figure("distance", "Accuracy vs dependency distance", "caption", b"<svg/>", pd.DataFrame())
    verdict = Verdict("holds", "numbers")
    pair = [(Claim(k, f"title {k}", "s", "k", lambda r: verdict, ("distance",)), verdict) for k in ("a", "b")]
    page = "".join(claims_html(pair, [fig]))
    assert page.count("id='distance'") == 1 and page.count("<img") == 1
    second = page.split("<section id='claim-b'>")[1]
    assert "<a href='#distance'>Accuracy vs dependency distance</a>" in second
    md = "\n".join(claims_markdown(pair, [fig]))
    assert md.count("![distance](figures/distance.svg)") == 1
    assert "Figure: Accuracy vs dependency distance (above)." in md


def test_attention_long_range_pools_the_items_beyond_the_window_into_one_test():
    # 64 and 43 right of 200 at d = 16, 32: 0.32 alone excludes chance, the 400 items together (0.2675, interval
    # 0.227–0.312 by the Wilson formula) hold it: one test of "at chance beyond the window", not one per distance.
    configs = {"transformer": (80, [1.0, 1.0, 1.0, 1.0]), "transformer-ctx8": (8, [1.0, 0.99, 0.32, 0.215])}
    pooled = judge("attention_long_range", probe_rows(configs, items=True))
    assert pooled.status == "holds"
    assert "is at chance beyond them (0.32, 0.21 at d = 16, 32; together 0.27 of 400 items, 95% interval " \
           "0.23–0.31; chance 0.25)" in pooled.sentence
    assert judge("attention_long_range", probe_rows(configs)).status == "does not hold"  # no counts: per distance
    learned = {"transformer": (80, [1.0] * 4), "transformer-ctx8": (8, [1.0, 1.0, 0.6, 0.25])}
    v = judge("attention_long_range", probe_rows(learned, items=True))
    assert v.status == "does not hold" and "not at chance beyond them (0.60, 0.25 at d = 16, 32; together 0.42" in \
        v.sentence
