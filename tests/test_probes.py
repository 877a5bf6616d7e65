"""Distance probes and minimal pairs: exact n-gram accuracy, hand-computed pair scores, clean errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import train
from lmbench.evaluate.probes import distance_items, distance_probe, parse_distances, read_pairs, wilson_interval
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


def test_pairs_ties_are_their_own_column_not_failures(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.txt").write_text("a b\na a c\n", encoding="utf-8")
    out = run_cli("train", "ngram", "-p", "order=2", "-p", "smoothing=mle", "--corpus", tmp_path / "c",
                  "--tokenizer", "whitespace", "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    # Bigram MLE: p(a|<s>) = 1, p(a|a) = p(b|a) = p(c|a) = 1/3, p(</s>|b) = p(</s>|c) = 1; <s> b, <s> c unseen.
    pairs = [("a b", "a a c"),  # 1/3 > 1/9: right
             ("b a", "c a"),  # both impossible (−∞ = −∞): a tie
             ("a b", "a c"),  # 1/3 = 1/3: a tie
             ("a a c", "a b")]  # 1/9 < 1/3: wrong
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"sentence_good": g, "sentence_bad": b}) + "\n" for g, b in pairs),
                    encoding="utf-8")
    res = run_cli("probe", "pairs", tmp_path / "m", path, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["correct"], report["ties"], report["wrong"]) == (1, 2, 1)
    assert (report["accuracy"], report["tie"]) == (0.25, 0.5)
    text = run_cli("probe", "pairs", tmp_path / "m", path)
    assert "1 right, 1 wrong, 2 ties" in text.stdout


def test_pairs_with_unknown_tokens_warn_with_the_share_and_refuse_when_all_are(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.txt").write_text("a b\na a c\n", encoding="utf-8")
    assert run_cli("train", "unigram", "--corpus", tmp_path / "c", "--tokenizer", "whitespace",
                   "--out", tmp_path / "m").returncode == 0
    path = tmp_path / "pairs.jsonl"
    lines = [("a b", "b a"), ("a zz", "zz a"), ("c a", "a c"), ("b b", "b c")]  # one pair of four: zz unknown
    path.write_text("".join(json.dumps({"sentence_good": g, "sentence_bad": b}) + "\n" for g, b in lines),
                    encoding="utf-8")
    res = run_cli("probe", "pairs", tmp_path / "m", path, "--json")
    assert res.returncode == 0, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("lmbench: warning: 1 of 4 minimal-pair items (25.0%)") and "zz" in line
    assert json.loads(res.stdout)["items_with_unknown"] == 1
    path.write_text('{"sentence_good": "a zz", "sentence_bad": "zz a"}\n{"sentence_good": "yy", '
                    '"sentence_bad": "b"}\n', encoding="utf-8")
    assert_clean_error(run_cli("probe", "pairs", tmp_path / "m", path), "every minimal-pair item holds tokens "
                       "unknown to model unigram", "zz")


def test_distance_probe_items_with_unknown_tokens_warn_and_refuse(ngram_corpora, capsys):
    proc, corpora = ngram_corpora
    model = train("ngram", corpora, {"order": 2}).model
    # The same process, but its filler words are ones the model never saw: every item at d = 4 holds three
    # of them; at d = 1 an item holds one exactly when its random prefix is not empty.
    strange = DependencyProcess(("mo", "mu"), proc.emission, proc.transition, proc.triggers, proc.closers,
                                proc.distance, proc.p_open, proc.p_end)
    with pytest.raises(LmbenchError, match="every distance-probe item holds tokens unknown to model ngram"):
        distance_probe(model, strange, [4], n_items=20)
    capsys.readouterr()
    report = distance_probe(model, strange, [1, 4], n_items=20, seed=2)
    items, _ = distance_items(strange, 1, 20, np.random.default_rng(2))
    affected = 20 + sum(1 for item in items if len(item) > 1)
    assert report["items_with_unknown"] == affected < 40
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{affected} of 40 distance-probe items ({affected / 40:.1%})" in line and "mo" in line


def test_distances_the_generator_cannot_make_are_reported_not_dropped(ngram_corpora, capsys, tmp_path):
    proc, corpora = ngram_corpora  # closers come at most 8 tokens after their trigger
    model = train("ngram", corpora, {"order": 2}).model
    report = distance_probe(model, proc, [2, 8, 16, 64], n_items=10)
    assert [r["distance"] for r in report["distances"]] == [2, 8]
    assert [r["distance"] for r in report["not_generated"]] == [16, 64]
    assert "max_distance=8" in report["not_generated"][0]["reason"]
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("lmbench: warning: distance probe: distance(s) 16, 64 not measured")
    with pytest.raises(LmbenchError, match="no requested distance can be generated"):
        distance_probe(model, proc, [9], n_items=10)
    # The command prints them in its table, and refuses when none can be made.
    spec = "synthetic:dependency?sentences=50&max_distance=3"
    assert run_cli("train", "bigram", "--corpus", spec, "--out", tmp_path / "m").returncode == 0
    res = run_cli("probe", "distance", tmp_path / "m", "--corpus", spec, "--distances", "1,2,4", "--items", "8")
    assert res.returncode == 0, res.stderr
    assert [line.split()[0] for line in res.stdout.splitlines()[2:]] == ["1", "2", "4"]
    assert "not measured" in res.stdout.splitlines()[-1] and "max_distance=3" in res.stdout.splitlines()[-1]
    assert_clean_error(run_cli("probe", "distance", tmp_path / "m", "--corpus", spec, "--distances", "4,8"),
                       "no requested distance can be generated")
