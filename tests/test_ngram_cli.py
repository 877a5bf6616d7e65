"""The n-gram commands end to end (train, eval, export, import-arpa, sparsity) and every bad input:
one line on stderr, exit status 2, no traceback, nothing half-written."""

import json
import math

import numpy as np
import pytest
from conftest import run_cli

from lmbench import errors
from lmbench.cli import main
from lmbench.models.registry import load_language_model
from lmbench.text.sources import load_corpus

TRAIN = "a b c a\nb a c\nc a b b\na a b c c\nb\nc b a a\n"
TEST = "a b c\nc c a\nb b b a\n"


def run(capsys, *argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def clean_error(capsys, *argv):
    """The command fails with status 2 and exactly one stderr line; return that line."""
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert out == ""
    return lines[0]


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.txt").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "corpus" / "test.txt").write_text(TEST, encoding="utf-8")
    return tmp_path


def train_args(tiny, *params):
    args = ["train", "ngram", "--corpus", tiny / "corpus", "--tokenizer", "whitespace", "--out", tiny / "m"]
    for p in params:
        args += ["-p", p]
    return args


def test_order_below_one(capsys, tiny):
    line = clean_error(capsys, *train_args(tiny, "order=0"))
    assert "order=0" in line and "≥ 1" in line
    assert not (tiny / "m").exists()


def test_unknown_smoothing_lists_the_valid_ones(capsys, tiny):
    line = clean_error(capsys, *train_args(tiny, "smoothing=kneser"))
    for name in ("mle", "add_k", "good_turing", "witten_bell", "absolute_discount", "kneser_ney",
                 "modified_kneser_ney", "stupid_backoff"):
        assert name in line


@pytest.mark.parametrize("k", ["0", "-1"])
def test_k_must_be_positive(capsys, tiny, k):
    line = clean_error(capsys, *train_args(tiny, "smoothing=add_k", f"k={k}"))
    assert f"k={float(k)}" in line and "> 0" in line


def test_discount_out_of_range(capsys, tiny):
    assert "≤ 1" in clean_error(capsys, *train_args(tiny, "smoothing=kneser_ney", "discount=1.5"))
    assert "> 0" in clean_error(capsys, *train_args(tiny, "smoothing=absolute_discount", "discount=0"))
    line = clean_error(capsys, *train_args(tiny, "smoothing=modified_kneser_ney", "discount=0.5"))
    assert "applies to smoothing=absolute_discount or kneser_ney" in line


def test_kneser_ney_discounts_fall_back_to_kenlms_by_default_with_one_warning(capsys, tiny, monkeypatch):
    monkeypatch.setattr(errors, "_WARNED", set())  # a fresh process: nothing warned about yet
    code, out, err = run(capsys, *train_args(tiny, "order=3"), "--json")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("lmbench: warning:")]
    assert len(warnings) == 1 and len(err.strip().splitlines()) == 1, err
    assert "discount_fallback=false" in warnings[0] and "D1=0.5" in warnings[0]
    info = json.loads(out)
    # Three word types: their continuation counts cannot give n1, n2, n3 all non-zero, so order 1 falls back.
    assert 1 in info["fallback_discounts_orders"]
    assert info["discount_fallback"]["orders"] == info["fallback_discounts_orders"]
    for n in info["fallback_discounts_orders"]:
        assert info["discounts"][n - 1] == [0.5, 1.0, 1.5]
    # Once per process: a second model that falls back says nothing more.
    code, _, err = run(capsys, *train_args(tiny, "order=2", "smoothing=kneser_ney"), "--out", tiny / "m2", "--json")
    assert code == 0 and "warning" not in err, err
    # Asked for explicitly: silent; refused explicitly: KenLM's strict behaviour, one clean error line.
    monkeypatch.setattr(errors, "_WARNED", set())
    code, _, err = run(capsys, *train_args(tiny, "order=3", "discount_fallback=true"), "--out", tiny / "m3", "--json")
    assert code == 0 and err == "", err
    line = clean_error(capsys, *train_args(tiny, "order=3", "discount_fallback=false"), "--out", tiny / "m4",
                       "--json")
    assert "too small" in line and "discount_fallback=false" in line and "D1=0.5" in line
    assert not (tiny / "m4").exists()


def test_trigram_on_the_dependency_corpus_trains_with_defaults_and_warns_once(tmp_path):
    result = run_cli("train", "trigram", "--corpus", "synthetic:dependency?sentences=300", "--out", tmp_path / "m",
                     "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmbench: warning: n-gram discounts cannot be estimated"), lines
    assert json.loads(result.stdout)["fallback_discounts_orders"]


def test_train_eval_export_import_roundtrip(capsys, tiny):
    assert run(capsys, *train_args(tiny, "order=2", "smoothing=witten_bell"))[0] == 0
    code, out, _ = run(capsys, "eval", tiny / "m", "--corpus", tiny / "corpus", "--json")
    ppl = json.loads(out)["perplexity"]
    assert code == 0 and 1 < ppl < 7
    code, out, err = run(capsys, "export", tiny / "m", "--arpa", tiny / "m.arpa", "--json")
    assert code == 0, err
    assert json.loads(out)["ngrams"][0] == 6  # <unk>, <s>, </s>, a, b, c
    text = (tiny / "m.arpa").read_text(encoding="utf-8")
    assert text.startswith("\\data\\\nngram 1=6\n") and text.rstrip().endswith("\\end\\")
    code, out, err = run(capsys, "import-arpa", tiny / "m.arpa", "--out", tiny / "imported", "--json")
    assert code == 0, err
    code, out, _ = run(capsys, "eval", tiny / "imported", "--corpus", tiny / "corpus", "--json")
    assert json.loads(out)["perplexity"] == pytest.approx(ppl, rel=1e-6)  # ARPA keeps ~7 digits
    ours, imported = load_language_model(tiny / "m"), load_language_model(tiny / "imported")
    assert imported.vocab.tokens == ours.vocab.tokens  # exported in id order, read back in file order
    test = {m: load_corpus(str(tiny / "corpus"), m.tokenizer, vocab=m.vocab).test for m in (ours, imported)}
    np.testing.assert_allclose(imported.logprobs(test[imported]), ours.logprobs(test[ours]), atol=1e-6)


def test_saved_model_scores_identically(tiny):
    from lmbench.evaluate.harness import train
    from lmbench.models.registry import load_model
    from lmbench.text.tokenize import Tokenizer

    cs = load_corpus(str(tiny / "corpus"), Tokenizer("whitespace"))
    for smoothing in ("mle", "good_turing", "stupid_backoff"):
        model = train("trigram", cs, {"smoothing": smoothing}).model
        model.save(tiny / smoothing)
        loaded = load_model(tiny / smoothing)
        np.testing.assert_array_equal(loaded.logprobs(cs.test), model.logprobs(cs.test))
        assert loaded.normalized == (smoothing != "stupid_backoff")


def test_stupid_backoff_eval_is_flagged_and_not_exportable(capsys, tiny):
    assert run(capsys, *train_args(tiny, "smoothing=stupid_backoff"))[0] == 0
    code, out, _ = run(capsys, "eval", tiny / "m", "--corpus", tiny / "corpus")
    assert code == 0 and "not a comparable perplexity" in out
    line = clean_error(capsys, "export", tiny / "m", "--arpa", tiny / "sb.arpa")
    assert "cannot be exported" in line and not (tiny / "sb.arpa").exists()


def test_export_needs_an_ngram_model(capsys, tiny):
    run(capsys, "train", "uniform", "--corpus", tiny / "corpus", "--out", tiny / "u")
    assert "only n-gram and arpa models" in clean_error(capsys, "export", tiny / "u", "--arpa", tiny / "u.arpa")


def test_mle_zero_probabilities_are_counted(capsys, tiny):
    run(capsys, *train_args(tiny, "smoothing=mle", "order=3"))
    code, out, _ = run(capsys, "eval", tiny / "m", "--corpus", tiny / "corpus", "--json")
    got = json.loads(out)
    # Direct count: test events (the n-gram cut at <s>) that training never saw.
    seen = set()
    for line in TRAIN.splitlines():
        toks = ["<s>", *line.split(), "</s>"]
        seen |= {tuple(toks[max(0, i - 2) : i + 1]) for i in range(1, len(toks))}
    unseen = 0
    for line in TEST.splitlines():
        toks = ["<s>", *line.split(), "</s>"]
        unseen += sum(tuple(toks[max(0, i - 2) : i + 1]) not in seen for i in range(1, len(toks)))
    assert unseen > 0 and got["zero_prob_events"] == unseen and got["perplexity"] == "inf"


ARPA_OK = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-0.5\t</s>\t0
-0.4\ta\t-0.2

\\2-grams:
-0.2\t<s> a
-0.1\ta </s>

\\end\\
"""


@pytest.mark.parametrize(
    "broken, line_no, fragment",
    [
        (ARPA_OK.replace("-0.4\ta\t-0.2", "-0.4"), 9, "needs 2 or 3 fields"),
        (ARPA_OK.replace("-0.2\t<s> a", "x\t<s> a"), 12, "'x' is not a number"),
        (ARPA_OK.replace("ngram 2=2", "ngram 2=3"), 15, "declares 3 2-grams"),
        (ARPA_OK.replace("-0.1\ta </s>", "-0.1\tb </s>"), 13, "word 'b'"),
        (ARPA_OK.replace("\\end\\\n", ""), 14, "without \\end\\"),
        (ARPA_OK.replace("ngram 1=4", "ngrams one"), 2, "expected 'ngram N=COUNT'"),
        ("hello\n", 1, "no \\data\\"),
    ],
)
def test_malformed_arpa_names_the_line(capsys, tmp_path, broken, line_no, fragment):
    (tmp_path / "bad.arpa").write_text(broken, encoding="utf-8")
    line = clean_error(capsys, "import-arpa", tmp_path / "bad.arpa", "--out", tmp_path / "m")
    assert f"bad.arpa:{line_no}:" in line and "malformed ARPA" in line and fragment in line
    assert not (tmp_path / "m").exists()


def test_a_wellformed_arpa_imports_and_scores_by_hand(capsys, tmp_path):
    (tmp_path / "ok.arpa").write_text(ARPA_OK, encoding="utf-8")
    assert run(capsys, "import-arpa", tmp_path / "ok.arpa", "--out", tmp_path / "m")[0] == 0
    model = load_language_model(tmp_path / "m")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.txt").write_text("a\na a\n", encoding="utf-8")
    corpus = load_corpus(str(tmp_path / "c"), model.tokenizer, vocab=model.vocab).train
    # "a": p(a|<s>) = 10^-0.2 ; "</s>" after a: 10^-0.1 ; "a a": bo(a) p(a) = 10^(-0.2-0.4).
    expected = np.array([-0.2, -0.1, -0.2, -0.6, -0.1]) * math.log(10)
    np.testing.assert_allclose(model.logprobs(corpus), expected, rtol=1e-12)


def test_sparsity_command(capsys, tiny):
    code, out, err = run(capsys, "sparsity", "--corpus", tiny / "corpus", "--tokenizer", "whitespace",
                         "--max-order", "3", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["split"], r["order"]) for r in rows] == [("train", 1), ("train", 2), ("train", 3),
                                                        ("test", 1), ("test", 2), ("test", 3)]
    assert rows[0]["tokens"] == 6 + 21  # six </s> and 21 words
    code, out, _ = run(capsys, "sparsity", "--corpus", tiny / "corpus", "--tokenizer", "whitespace")
    assert code == 0 and "unseen" in out
    assert "≥ 1" in clean_error(capsys, "sparsity", "--corpus", tiny / "corpus", "--max-order", "0")
