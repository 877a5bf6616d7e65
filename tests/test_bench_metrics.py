"""Each suite metric against the library function it wraps, computed independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lmbench
from lmbench.bench.metrics import CellContext, run_metric, training_history
from lmbench.bench.runner import load_cell_corpus, run_cell
from lmbench.bench.suite import parse_suite
from lmbench.evaluate import gradflow as gf
from lmbench.evaluate import probes
from lmbench.evaluate.bleu import score_translations
from lmbench.models.neural.blas import blas_threads
from lmbench.text.synthetic import dependency
from lmbench.text.synthetic import pairs as pairs_mod

# lmbench's own modules are imported here, never through importorskip: a module that breaks fails the suite.


@pytest.fixture(scope="module")
def grammar():
    return lmbench.load_corpus("synthetic:grammar?sentences=300")


def _rows(out, quantity, group=None):
    return [r for r in out.rows if r["quantity"] == quantity and (group is None or r["group"] == group)]


def test_perplexity_metric_is_the_harness(grammar):
    model = lmbench.train("unigram", grammar).model
    out = run_metric("perplexity", CellContext(grammar, model, 0, {}))
    for split in ("valid", "test"):
        ev = lmbench.evaluate(model, grammar.get(split))
        assert _rows(out, "perplexity", split)[0]["value"] == ev.perplexity
        assert _rows(out, "zero_prob_events", split)[0]["value"] == ev.zero_prob_events
        assert _rows(out, "tokens", split)[0]["value"] == grammar.get(split).n_predicted
    assert [t["quantity"] for t in out.timings] == ["eval_tokens_per_second"]
    assert not any("second" in r["quantity"] for r in out.rows)


def test_learning_curve_rows_and_timings_are_separated(grammar):
    model = lmbench.train("uniform", grammar).model
    model.fit_info = {"history": [{"epoch": 1, "valid_ppl": 30.0, "lr": 1.0, "seconds": 2.5},
                                  {"epoch": 2, "valid_ppl": 20.0, "lr": 0.5, "tokens_per_second": 99.0}]}
    out = run_metric("learning_curve", CellContext(grammar, model, 0, {}))
    assert [(r["quantity"], r["x"], r["value"]) for r in out.rows] == [
        ("valid_ppl", 1.0, 30.0), ("lr", 1.0, 1.0), ("valid_ppl", 2.0, 20.0), ("lr", 2.0, 0.5)]
    assert [t["quantity"] for t in out.timings] == ["seconds@1", "tokens_per_second@2"]
    model.fit_info = {}
    skipped = run_metric("learning_curve", CellContext(grammar, model, 0, {}))
    assert not skipped.rows and "not applicable" in skipped.notes[0]
    assert training_history({"history": [{"epoch": 1}]}) == [{"epoch": 1}]
    assert training_history({"epochs": [{"epoch": 1}]}) == []  # one key, written by the trainer; never guessed


def test_sparsity_metric_matches_a_direct_count(grammar):
    out = run_metric("sparsity", CellContext(grammar, None, 0, {"max_order": 3}))
    # Unseen test bigrams counted directly: (previous, token) for every predicted token of the bounded stream.
    def bigrams(corpus):
        b = corpus.bounded().astype(np.int64)
        keep = b[1:] != lmbench.text.vocab.BOS_ID
        return b[:-1][keep] * (1 << 32) + b[1:][keep]

    test_keys = bigrams(grammar.test)
    unseen = np.mean(~np.isin(test_keys, bigrams(grammar.train)))
    row = [r for r in _rows(out, "unseen_fraction", "test") if r["x"] == 2.0][0]
    assert row["value"] == pytest.approx(unseen)
    assert {r["x"] for r in _rows(out, "types", "train")} == {1.0, 2.0, 3.0}


def test_floor_metric_reads_the_generator(tmp_path):
    corpora = lmbench.load_corpus("synthetic:dependency?sentences=60")
    out = run_metric("floor", CellContext(corpora, None, 0, {}))
    known = corpora.info["bayes_floor"]["test"]
    assert _rows(out, "bayes_perplexity")[0]["value"] == known["perplexity"]
    grammar = lmbench.load_corpus("synthetic:grammar?sentences=50")
    none = run_metric("floor", CellContext(grammar, None, 0, {}))
    assert not none.rows and "no known entropy floor" in none.notes[0]


def test_bleu_metric_matches_a_direct_computation():
    suite = parse_suite("""
        metrics = ["bleu", "speed"]
        [[corpus]]
        pairs = "synthetic:ko-en?train=60&valid=10&test=20"
        [[model]]
        name = "seq2seq"
        params = { hidden = 8, src_emb = 8, tgt_emb = 8, epochs = 1, batch = 16 }
    """, "bleu.toml")
    cell = suite.cells()[0]
    data = load_cell_corpus(cell.corpus)
    record = run_cell(cell, data)
    rows = {(r["quantity"], r["group"]): r["value"] for r in record["rows"]}
    # Re-train the same seeded model and score its translations directly.
    model = lmbench.create_model("seq2seq", cell.model.param_dict)
    with blas_threads(1):
        model.fit(data)
    hyp = model.translate_corpus(data.test.src)
    hyps = [data.tgt_tokenizer.detokenize(model.vocab.decode(t.tolist())) for t in hyp.tokens]
    refs = [t for _, t in data.raw.test]
    scores = score_translations(hyps, refs, data.test.src.lengths)
    assert rows[("bleu", "test")] == pytest.approx(scores["bleu"])
    assert rows[("chrf", "test")] == pytest.approx(scores["chrf"])
    assert record["extras"]["bleu"]["bleu_signature"] == scores["bleu_signature"]
    assert rows[("exact_match", "test")] == pytest.approx(scores["exact_match"])
    for bucket in scores["bleu_by_length"]:
        assert rows[("bleu_by_length", bucket["bucket"])] == pytest.approx(bucket["bleu"])
    lp, counts = model.score(data.test)
    assert rows[("target_perplexity", "test")] == pytest.approx(math.exp(-lp.sum() / counts.sum()))
    assert record["model"] == "seq2seq" and np.isfinite(record["wall_seconds"])
    samples = record["extras"]["bleu"]["samples"]
    assert [s["reference"] for s in samples] == [t for _, t in data.raw.test[:4]]


def test_distance_metric_rows_are_the_probe_report():
    spec = "synthetic:dependency?sentences=200&max_distance=20"
    corpora = lmbench.load_corpus(spec)
    model = lmbench.train("trigram", corpora, {"discount_fallback": True}).model
    out = run_metric("distance", CellContext(corpora, model, 3, {"distances": [1, 4], "items": 40}, spec))
    report = probes.distance_probe(model, dependency.process_from_spec(spec), [1, 4], 40, seed=3)
    assert [(r["x"], r["value"]) for r in _rows(out, "accuracy")] == [
        (float(r["distance"]), r["accuracy"]) for r in report["distances"]]
    assert _rows(out, "accuracy")[0]["value"] == 1.0  # a trigram sees the trigger one token back
    assert {r["value"] for r in _rows(out, "chance")} == {report["chance"]}
    grammar = lmbench.load_corpus("synthetic:grammar?sentences=50")
    skipped = run_metric("distance", CellContext(grammar, lmbench.train("unigram", grammar).model, 0, {},
                                                 "synthetic:grammar?sentences=50"))
    assert "need a synthetic:dependency corpus" in skipped.notes[0]


def test_pairs_metric_rows_are_the_probe_report():
    corpora = lmbench.load_corpus("synthetic:agreement?sentences=300")
    model = lmbench.train("trigram", corpora, {"discount_fallback": True}).model
    out = run_metric("pairs", CellContext(corpora, model, 1, {"pairs": 50}))
    report = probes.pairs_probe(model, pairs_mod.make_pairs("agreement", 50, seed=1), ["attractors"])
    assert _rows(out, "accuracy", "all")[0]["value"] == report["accuracy"]
    by_group = {r["group"]: r["value"] for r in _rows(out, "accuracy") if r["group"] != "all"}
    assert by_group == {f"attractors={r['value']}": r["accuracy"] for r in report["groups"]["attractors"]}


def test_gradflow_metric_rows_are_the_lag_profile():
    corpora = lmbench.load_corpus("synthetic:grammar?sentences=200")
    model = lmbench.train("rnn", corpora, {"emb": 8, "hidden": 8, "layers": 2, "epochs": 1, "bptt": 10,
                                           "batch": 4}).model
    out = run_metric("gradflow", CellContext(corpora, model, 2, {"max_lag": 6, "positions": 5}))
    report = gf.lag_profile(model, corpora.test, 6, 5, seed=2)
    for layer, norms in enumerate(report["layers"], 1):
        rows = [r for r in _rows(out, "grad_norm") if r["group"] == f"layer {layer}"]
        assert [r["x"] for r in rows] == list(map(float, range(7)))
        assert [r["value"] for r in rows] == pytest.approx(norms)
    trigram = lmbench.train("unigram", corpora).model
    skipped = run_metric("gradflow", CellContext(corpora, trigram, 0, {}))
    assert not skipped.rows and "capability 'hidden_states'" in skipped.notes[0]


def test_training_speed_counts_the_tokens_of_every_epoch(grammar):
    # An RNN trained 3 epochs: each epoch runs over the column-batched stream, batch × ⌊n_predicted / batch⌋
    # positions; the speed is all of those tokens over the training seconds (not one epoch's, not per epoch).
    suite = parse_suite("""
        name = "speed"
        metrics = ["speed"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=300"
        [[model]]
        name = "rnn"
        params = { emb = 8, hidden = 8, batch = 4, bptt = 5, epochs = 3 }
    """, "speed.toml")
    (cell,) = suite.cells()
    record = run_cell(cell, load_cell_corpus(cell.corpus), progress=False)
    timings = {t["quantity"]: t["value"] for t in record["timings"]}
    tokens = 3 * 4 * (grammar.train.n_predicted // 4)
    assert record["fit_info"]["train_tokens_processed"] == tokens
    assert timings["train_tokens_per_second"] == pytest.approx(tokens / timings["train_seconds"], rel=1e-12)
