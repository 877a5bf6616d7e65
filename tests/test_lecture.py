"""The lecture suite's parts: the long-range corpus, the claims' metrics, and how a corpus picks its models."""

from __future__ import annotations

import math
import re
import textwrap

import numpy as np
import pandas as pd
import pytest

import lmbench
from lmbench.bench.metrics import CellContext, binned_max, run_metric, shuffled_pairs
from lmbench.bench.runner import RESULT_COLUMNS, TIMING_COLUMNS, run_suite
from lmbench.bench.suite import load_suite, parse_suite
from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import sentence_logprobs
from lmbench.report.build import write_report
from lmbench.report.claims import CLAIMS
from lmbench.report.figures import RunData, draw_figures
from lmbench.text.corpus import Corpus
from lmbench.text.sources import read_splits
from lmbench.text.synthetic.dependency import build_process, process_from_spec, pseudo_words


# --- synthetic:longrange --------------------------------------------------------------------------------------------
def lags(lines: list[str], triggers: tuple[str, ...], closers: tuple[str, ...]) -> list[int]:
    """Distance from each trigger to the next token that is a closer (checking it is the trigger's own)."""
    out = []
    for line in lines:
        open_at, which = None, None
        for i, tok in enumerate(line.split()):
            if tok in triggers:
                assert open_at is None, line  # one dependency open at a time
                open_at, which = i, triggers.index(tok)
            elif tok in closers:
                assert closers.index(tok) == which, line
                out.append(i - open_at)
                open_at = None
        assert open_at is None, line  # every dependency is closed before the line ends
    return out


def test_longrange_dependencies_span_exactly_the_given_distances():
    spec = "synthetic:longrange?sentences=300&min_distance=5&max_distance=5&fillers=30"
    splits, process = read_splits(spec), process_from_spec(spec)
    seen = lags(splits.train, process.triggers, process.closers)
    assert seen and set(seen) == {5}
    spec = "synthetic:longrange?sentences=2000&min_distance=3&max_distance=6&fillers=30"
    seen = lags(read_splits(spec).train, process.triggers, process.closers)
    counts = np.bincount(seen, minlength=7)[3:]
    assert set(seen) == {3, 4, 5, 6}
    assert counts.min() > 0.8 * counts.mean()  # uniform: each distance about equally often


def test_longrange_filler_is_the_given_number_of_distinct_words():
    words = pseudo_words(400)
    assert len(set(words)) == 400 and words[:2] == ["baba", "babe"]
    splits = read_splits("synthetic:longrange?sentences=200&fillers=7")
    process = process_from_spec("synthetic:longrange?fillers=7")
    vocabulary = {t for line in splits.train for t in line.split()}
    assert vocabulary - set(process.triggers) - set(process.closers) == set(pseudo_words(7))
    assert read_splits("synthetic:longrange?sentences=50&seed=3").train == \
        read_splits("synthetic:longrange?sentences=50&seed=3").train


def test_longrange_floor_by_hand_on_a_tiny_process():
    # One pair, distance always 2, two filler words: p(either) = p_open, p(filler) = (1 − p_open − p_end) / 2 when
    # idle (no </s> as the first token) and 1/2 inside a dependency before its end, p(closer at j = 2) = 1.
    p = build_process(pairs=1, max_distance=2, shape=0.0, p_open=0.25, p_end=0.25, min_distance=2, fillers=2)
    lp = p.token_logprobs([["either", "baba", "or"], ["babe", "either", "baba", "or", "baba"]])
    assert np.exp(lp[0]) == pytest.approx([0.25, 0.5, 1.0, 0.25])
    assert np.exp(lp[1]) == pytest.approx([0.75 / 2, 0.25, 0.5, 1.0, 0.5 / 2, 0.25])
    assert np.isneginf(p.token_logprobs([["either", "or"]])[0][1])  # a closer one step early is impossible
    # The exact entropy rate is the long-run bits per predicted token of the process's own samples.
    lines = [line.split() for line in p.sample_lines(np.random.default_rng(0), 20000)]
    sampled = -np.concatenate(p.token_logprobs(lines)).mean() / math.log(2)
    assert sampled == pytest.approx(p.entropy_rate(), rel=0.01)


def test_longrange_options_are_checked():
    with pytest.raises(LmbenchError, match="min_distance must be in 1..max_distance=10"):
        read_splits("synthetic:longrange?sentences=20&min_distance=11&max_distance=10")
    with pytest.raises(LmbenchError, match="has no option 'lag'"):
        process_from_spec("synthetic:longrange?lag=3")
    with pytest.raises(LmbenchError, match="fillers must be ≥ 0"):
        build_process(fillers=-1)


# --- metrics of the claims ---------------------------------------------------------------------------------------
def test_binned_max_keeps_every_spike():
    assert binned_max(np.array([1.0, 5.0, 2.0, 8.0, 3.0]), 2) == [(2, 5.0), (5, 8.0)]
    assert binned_max(np.array([1.0, 2.0]), 10) == [(1, 1.0), (2, 2.0)]
    assert binned_max(np.array([]), 5) == []


def test_grad_norms_metric_summarises_the_recorded_steps():
    spec = "synthetic:dependency?sentences=60&max_distance=8"
    corpora = lmbench.load_corpus(spec)
    model = lmbench.train("rnn", corpora, {"emb": 8, "hidden": 8, "layers": 1, "bptt": 5, "batch": 4, "epochs": 1,
                                           "clip": 0.5, "optimizer": "sgd", "lr": 5.0}).model
    norms = np.asarray(model.fit_info["grad_norms"])
    out = run_metric("grad_norms", CellContext(corpora, model, 0, {"points": 3}, spec))
    got = {r["quantity"]: r["value"] for r in out.rows if r["quantity"] != "norm"}
    assert got["max"] == pytest.approx(norms.max()) and got["median"] == pytest.approx(np.median(norms))
    assert got["clipped_fraction"] == pytest.approx((norms > 0.5).mean()) and got["steps"] == norms.size
    series = [(r["x"], r["value"]) for r in out.rows if r["quantity"] == "norm"]
    assert len(series) == 3 and max(v for _, v in series) == pytest.approx(norms.max()) and series[-1][0] == norms.size
    assert "not applicable" in run_metric("grad_norms", CellContext(corpora, lmbench.train("unigram", corpora).model,
                                                                    0, {}, spec)).notes[0]


def test_order_metric_counts_sentences_above_their_shuffle():
    spec = "synthetic:grammar?sentences=400"
    corpora = lmbench.load_corpus(spec)
    unigram = lmbench.train("unigram", corpora).model
    rows = {r["quantity"]: r["value"] for r in run_metric("order", CellContext(corpora, unigram, 0, {"sentences": 30},
                                                                               spec)).rows}
    assert rows["tie"] == 1.0 and rows["above"] == 0.0 and rows["sentences"] == 30  # a bag of words
    trigram = lmbench.train("trigram", corpora, {"discount_fallback": True}).model
    out = run_metric("order", CellContext(corpora, trigram, 4, {"sentences": 50}, spec))
    rows = {r["quantity"]: r["value"] for r in out.rows}
    originals, shuffles = shuffled_pairs(corpora.test, 50, np.random.default_rng(4))
    for s, t in zip(originals, shuffles):
        assert sorted(s) == sorted(t) and not np.array_equal(s, t)
    a = sentence_logprobs(trigram, Corpus.from_ids(originals, corpora.vocab))
    b = sentence_logprobs(trigram, Corpus.from_ids(shuffles, corpora.vocab))
    assert rows["above"] == pytest.approx(np.mean(a > b)) and rows["below"] == pytest.approx(np.mean(a < b))
    assert rows["above"] > 0.8  # a grammar's word order is what a trigram knows
    assert rows["above"] + rows["tie"] + rows["below"] == pytest.approx(1.0)


def test_corpus_size_metric():
    corpora = lmbench.load_corpus("synthetic:grammar?sentences=80")
    rows = {r["quantity"]: r["value"] for r in run_metric("corpus_size", CellContext(corpora, None, 0, {}, "")).rows}
    assert rows == {"train_sentences": 80, "train_tokens": corpora.train.ids.size + 80,
                    "vocabulary": len(corpora.vocab)}


# --- suites -------------------------------------------------------------------------------------------------------
def test_a_corpus_entry_that_is_a_label_picks_only_that_configuration():
    s = parse_suite(textwrap.dedent("""
        name = "t"
        metrics = ["perplexity"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=50"
        label = "a"
        models = ["rnn"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=60"
        label = "b"
        models = ["ngram"]
        [[model]]
        name = "rnn"
        [[model]]
        name = "rnn"
        label = "rnn-relu"
        params = { nonlinearity = "relu" }
        [[model]]
        name = "ngram"
        label = "mle3"
        params = { smoothing = "mle" }
        [[model]]
        name = "ngram"
        label = "addk3"
        params = { smoothing = "add_k" }
    """), "t.toml")
    assert [(c.corpus.label, c.config) for c in s.cells()] == [("a", "rnn"), ("b", "mle3"), ("b", "addk3")]


def test_the_lecture_transformers_windows_hold_every_probe_distance_or_stop_short_of_the_far_ones():
    suite = load_suite("lecture")
    distances = suite.metric_options["distance"]["distances"]
    context = {c.config: c.model.param_dict["context"] for c in suite.cells()
               if c.model is not None and c.model.name == "transformer" and c.corpus.label == "longrange"}
    assert context["transformer"] >= max(70, max(distances))  # the "context ≥ 70", every distance inside
    assert context["transformer-ctx16"] < max(distances)  # some distances beyond its window: chance there


def test_the_lecture_suite_runs_each_claim_on_its_own_corpus():
    cells = {(c.corpus.label, c.config) for c in load_suite("lecture").cells() if c.model is not None}
    assert {cfg for corpus, cfg in cells if corpus == "longrange"} == {"trigram", "rnn", "lstm", "gru", "transformer",
                                                                        "transformer-ctx16"}
    assert {cfg for corpus, cfg in cells if corpus == "dependency"} == {
        "rnn-clip", "rnn-noclip", "rnn-tanh", "rnn-relu", "rnn-linear"}


# --- the report -------------------------------------------------------------------------------------------------
def results(*rows: tuple) -> pd.DataFrame:
    """results.csv rows from (corpus, config, metric, quantity, x, value)."""
    return pd.DataFrame([{"cell": "c", "corpus": c, "model": cfg, "config": cfg, "seed": 0, "metric": m,
                          "quantity": q, "group": "test" if m == "perplexity" else None, "x": x, "value": v}
                         for c, cfg, m, q, x, v in rows], columns=RESULT_COLUMNS)


def test_claim_figures_are_drawn_from_their_rows():
    rows = [("d", cfg, "grad_norms", "norm", step, v) for cfg, vals in (("rnn-clip", [0.3, 0.5, 0.4]),
                                                                        ("rnn-noclip", [1.0, 1e6, 2.0]))
            for step, v in zip((10, 20, 30), vals)]
    rows += [("d", cfg, "grad_norms", q, None, v) for cfg, mx in (("rnn-clip", 0.5), ("rnn-noclip", 1e6))
             for q, v in (("max", mx), ("median", 0.4), ("clipped_fraction", 0.5), ("steps", 30))]
    for corpus, tokens, kn, nn in (("big", 40000, 17.4, 12.6), ("small", 3000, 27.9, 45.3)):
        rows += [(corpus, "-corpus-", "corpus_size", "train_tokens", None, tokens),
                 (corpus, "trigram", "perplexity", "perplexity", None, kn),
                 (corpus, "lstm", "perplexity", "perplexity", None, nn)]
    rows += [("other", "trigram", "perplexity", "perplexity", None, 99.0),  # no size: not on the size figure
             ("big", "unigram", "perplexity", "perplexity", None, 80.0)]  # one size only: no line to draw
    figures = {f.key: f for f in draw_figures(RunData(results(*rows), pd.DataFrame(columns=TIMING_COLUMNS), [], {}))}
    steps = figures["grad_norm_steps"].table.set_index("config")
    assert steps.loc["rnn-noclip", "max"] == 1e6 and steps.loc["rnn-clip", "steps"] == 30
    size = figures["data_size"].table
    assert list(size["tokens"]) == [3000, 40000] and list(size["lstm"]) == [45.3, 12.6]
    assert list(size["trigram"]) == [27.9, 17.4] and "unigram" not in size


def test_the_report_has_a_section_with_a_verdict_for_every_claim(tmp_path):
    suite = parse_suite(textwrap.dedent("""
        name = "t"
        metrics = ["perplexity", "order"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=100"
        [[model]]
        name = "unigram"
        [[model]]
        name = "trigram"
        params = { discount_fallback = true }
    """), "t.toml")
    run_suite(suite, tmp_path / "run", progress=False)
    page = write_report(tmp_path / "run").read_text()
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    for key, c in CLAIMS.items():
        section = page.split(f"<section id='claim-{key}'>")[1].split("</section>")[0]
        assert re.search(r"<span class='badge (holds|does-not-hold|not-measured)'>", section)
        assert f"## Claim: {c.title}" in md
    order = page.split("<section id='claim-order'>")[1].split("</section>")[0]
    assert "badge holds" in order and "the unigram model ties 100% of the sentences" in order
    assert "badge not-measured" in page.split("<section id='claim-long_range'>")[1].split("</section>")[0]


def test_dependency_training_lines_can_be_limited_in_length():
    spec = "synthetic:dependency?sentences=300&max_distance=6&train_max_length=10"
    splits = read_splits(spec)
    assert max(len(line.split()) for line in splits.train + splits.valid) <= 10
    assert max(len(line.split()) for line in splits.test) > 10  # the test split meets longer lines
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (300, 30, 30)
    assert splits.info["train_max_length"] == 10
    assert read_splits("synthetic:dependency?sentences=50&train_max_length=0").train == \
        read_splits("synthetic:dependency?sentences=50").train
    assert process_from_spec(spec).max_distance == 6


def test_length_metric_is_the_excess_bits_per_word_by_sentence_length():
    spec = "synthetic:dependency?sentences=300&max_distance=6&train_max_length=10"
    corpora = lmbench.load_corpus(spec)
    model = lmbench.train("trigram", corpora, {"discount_fallback": True}).model
    out = run_metric("length", CellContext(corpora, model, 0, {"edges": [10, 20]}, spec))
    got = {(r["quantity"], r["group"]): r["value"] for r in out.rows}
    assert got[("train_max_length", None)] == 10
    # By hand, one sentence at a time: model log-probabilities minus the generator's, words only (not </s>).
    lines = [line.split() for line in read_splits(spec).test]
    floor = process_from_spec(spec).token_logprobs(lines)
    model_lp, start = model.logprobs(corpora.test), 0
    sums: dict[str, list[float]] = {}
    for words, exact in zip(lines, floor):
        mine = model_lp[start: start + len(words)]
        start += len(words) + 1
        label = "1-10" if len(words) <= 10 else "11-20" if len(words) <= 20 else "21+"
        bits, n = sums.get(label, [0.0, 0])
        sums[label] = [bits + float((exact[:-1] - mine).sum()) / math.log(2), n + len(words)]
    for label, (bits, n) in sums.items():
        assert got[("excess_bits", label)] == pytest.approx(bits / n)
    assert sum(got[("sentences", label)] for label in sums) == len(lines)
