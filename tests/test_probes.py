"""Distance probes and minimal pairs: exact n-gram accuracy, hand-computed pair scores, clean errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import train
from lmbench.evaluate.probes import distance_probe, parse_distances, read_pairs, wilson_interval
from lmbench.models.base import LanguageModel
from lmbench.text.sources import TextSplits, load_corpus
from lmbench.text.synthetic.dependency import DependencyProcess
from lmbench.text.synthetic.pairs import make_pairs


def noiseless_process() -> DependencyProcess:
    """Filler of two words in one class, three trigger/closer pairs, distances 1–8."""
    B = np.array([[0.5, 0.5]])
    A = np.array([[1.0], [1.0]])
    d = np.full(8, 1 / 8)
    return DependencyProcess(("la", "da"), B, A, ("ya", "yo", "yu"), ("ka", "ko", "ku"), d, 0.3, 0.1)


@pytest.fixture(scope="module")
def ngram_corpora():
    proc = noiseless_process()
    lines = proc.sample_lines(np.random.default_rng(0), 3000)
    return proc, load_corpus(TextSplits("noiseless", lines[:2700], lines[2700:2850], lines[2850:]))


@pytest.mark.parametrize("order", [2, 3, 4])
def test_ngram_of_order_n_is_exact_below_n_and_at_chance_beyond(ngram_corpora, order):
    proc, corpora = ngram_corpora
    model = train("ngram", corpora, {"order": order, "discount_fallback": True}).model
    report = distance_probe(model, proc, [1, 2, 3, 4, 6], n_items=300, seed=1)
    acc = {row["distance"]: row["accuracy"] for row in report["distances"]}
    assert report["chance"] == pytest.approx(1 / 3)
    for d, a in acc.items():
        if d < order:
            assert a == 1.0, (d, a)  # the trigger is inside the n-gram's history
        else:
            assert a < 0.5, (d, a)  # the history holds only filler: the closers are ranked by frequency alone


class LogprobsOnly(LanguageModel):
    """A test double without `next_token`: the probe must fall back to per-token log-probabilities."""

    name = "logprobs-only"

    def __init__(self, inner: LanguageModel) -> None:
        super().__init__()
        self.inner, self.vocab, self.tokenizer = inner, inner.vocab, inner.tokenizer

    def fit(self, train, valid=None):
        return self

    def logprobs(self, corpus):
        return self.inner.logprobs(corpus)


def test_fallback_through_sentence_scores_matches_next_token(ngram_corpora):
    proc, corpora = ngram_corpora
    model = train("ngram", corpora, {"order": 3, "discount_fallback": True}).model
    direct = distance_probe(model, proc, [1, 2, 5], n_items=60, seed=4)
    fallback = distance_probe(LogprobsOnly(model), proc, [1, 2, 5], n_items=60, seed=4)
    assert [r["correct"] for r in direct["distances"]] == [r["correct"] for r in fallback["distances"]]


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # the textbook example
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == pytest.approx(1.0)


def test_pairs_accuracy_equals_hand_computation(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.txt").write_text("a b\na a c\n", encoding="utf-8")
    out = run_cli("train", "unigram", "--corpus", tmp_path / "c", "--tokenizer", "whitespace", "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"sentence_good": "a a", "sentence_bad": "b c", "g": "x"}\n'
                     '{"sentence_good": "c", "sentence_bad": "a", "g": "y"}\n', encoding="utf-8")
    res = run_cli("probe", "pairs", tmp_path / "m", pairs, "--group-by", "g", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    # Unigram MLE over the predicted stream a b </s> a a c </s>: a 3/7, b 1/7, c 1/7, </s> 2/7.
    lp = {"a": math.log(3 / 7), "b": math.log(1 / 7), "c": math.log(1 / 7), "</s>": math.log(2 / 7)}
    good = [2 * lp["a"] + lp["</s>"], lp["c"] + lp["</s>"]]
    bad = [lp["b"] + lp["c"] + lp["</s>"], lp["a"] + lp["</s>"]]
    assert [g > b for g, b in zip(good, bad)] == [True, False]
    assert report["accuracy"] == 0.5 and report["pairs"] == 2
    assert report["mean_logprob_difference"] == pytest.approx(np.mean(np.subtract(good, bad)))
    assert {r["value"]: r["accuracy"] for r in report["groups"]["g"]} == {"x": 1.0, "y": 0.0}


def test_pairs_rule_is_total_logprob_not_per_token_mean():
    """A pair on which the two rules disagree: the longer good sentence has the better per-token mean but the
    lower total, so it counts as wrong (the rule is the total log-probability, as in BLiMP)."""
    from lmbench.evaluate.probes import pairs_probe
    from lmbench.text.tokenize import Tokenizer

    corpora = load_corpus(TextSplits("c", ["a b", "a a c"], None, None), Tokenizer("whitespace"))
    model = train("unigram", corpora).model
    lp = {"a": math.log(3 / 7), "b": math.log(1 / 7), "c": math.log(1 / 7), "</s>": math.log(2 / 7)}  # as above
    pairs = [{"sentence_good": "a a a", "sentence_bad": "c", "g": "x"},
             {"sentence_good": "b", "sentence_bad": "a a a a", "g": "y"}]
    good = [3 * lp["a"] + lp["</s>"], lp["b"] + lp["</s>"]]
    bad = [lp["c"] + lp["</s>"], 4 * lp["a"] + lp["</s>"]]
    by_total = [g > b for g, b in zip(good, bad)]
    by_mean = [g / (len(p["sentence_good"].split()) + 1) > b / (len(p["sentence_bad"].split()) + 1)
               for g, b, p in zip(good, bad, pairs)]
    assert by_total == [False, True] and by_mean == [True, False]  # the rules disagree on both pairs
    for scorer in (model, LogprobsOnly(model)):  # scored through next_token, and through per-token logprobs
        report = pairs_probe(scorer, pairs, group_by=["g"])
        assert report["correct"] == 1 and report["accuracy"] == 0.5
        assert {r["value"]: r["accuracy"] for r in report["groups"]["g"]} == {"x": 0.0, "y": 1.0}  # which was right
        assert report["mean_logprob_difference"] == pytest.approx(np.mean(np.subtract(good, bad)))


def test_pair_generators_are_seeded_and_well_formed(tmp_path):
    ag = make_pairs("agreement", 50, seed=2)
    assert ag == make_pairs("agreement", 50, seed=2)
    assert {p["attractors"] for p in ag} == {0, 1, 2, 3, 4}
    for p in ag:  # a minimal pair: exactly one word differs, the verb
        g, b = p["sentence_good"].split(), p["sentence_bad"].split()
        assert len(g) == len(b) and sum(x != y for x, y in zip(g, b)) == 1
    ko = make_pairs("korean-npi", 21, seed=0)
    assert {p["phrases"] for p in ko} == set(range(7))
    assert all(p["sentence_good"].split()[-2] in ("없었다", "몰랐다") for p in ko)
    assert run_cli("probe", "make-pairs", "korean-npi", "--out", tmp_path / "k.jsonl", "--n", "30").returncode == 0
    assert len(read_pairs(tmp_path / "k.jsonl")) == 30


def test_bad_input_is_one_line_and_exit_2(tmp_path, ngram_corpora):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence_good": "a", "sentence_bad": "b"}\n{"sentence_good": "a"}\n', encoding="utf-8")
    with pytest.raises(LmbenchError, match=r"bad.jsonl:2: .*sentence_bad"):
        read_pairs(bad)
    with pytest.raises(LmbenchError, match="must be ≥ 1"):
        parse_distances("4,0")
    out = tmp_path / "tri"
    assert run_cli("train", "trigram", "-p", "discount_fallback=true", "--corpus",
                   "synthetic:dependency?sentences=50", "--out", out).returncode == 0
    assert_clean_error(run_cli("probe", "pairs", out, bad), "bad.jsonl:2", "sentence_bad")
    assert_clean_error(run_cli("probe", "distance", out, "--distances", "1,-2"), "distance -2 must be ≥ 1")
    assert_clean_error(run_cli("probe", "distance", out, "--distances", "0"), "distance 0 must be ≥ 1")
    # A model that is not a language model cannot score continuations: the error names the capability.
    plugin = tmp_path / "notlm.py"
    plugin.write_text("from lmbench.models.base import Model\n\n"
                      "class NotLM(Model):\n    name = 'notlm'\n    description = 'not a language model'\n",
                      encoding="utf-8")
    from lmbench.models.registry import load_plugin_file

    cls = {c for c in load_plugin_file(plugin)}
    assert cls == {"notlm"}
    from lmbench.models.registry import create_model

    m = create_model("notlm")
    m.vocab = ngram_corpora[1].vocab
    m.save(tmp_path / "n")
    assert_clean_error(run_cli("--plugin", plugin, "probe", "distance", tmp_path / "n"), "next_token")
