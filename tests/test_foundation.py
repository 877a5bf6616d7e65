"""The harness's token accounting, the trivial models, checkpoints, plugins and the core CLI."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

import lmbench
from lmbench import LmbenchError, Tokenizer, evaluate, load_corpus, load_model, train


@pytest.fixture
def three_sentences(tmp_path):
    """A hand-written corpus: train has 3 sentences, test has 2."""
    (tmp_path / "train.txt").write_text("a b\na\nb a a\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("a b\nb\n", encoding="utf-8")
    return tmp_path


def test_token_accounting_by_hand(three_sentences):
    corpora = load_corpus(str(three_sentences), Tokenizer("whitespace"))
    # Train stream: a b </s> a </s> b a a </s> → a:4, b:2, </s>:3 of 9 predicted tokens.
    # Test stream: a b </s> b </s> → 5 predicted tokens (<s> never predicted).
    result = evaluate(train("unigram", corpora).model, corpora.test)
    assert result.tokens == 5 and result.sentences == 2
    by_hand = math.log(4 / 9) + 2 * math.log(2 / 9) + 2 * math.log(3 / 9)
    assert result.log_likelihood == pytest.approx(by_hand, rel=1e-12)
    assert result.perplexity == pytest.approx(math.exp(-by_hand / 5), rel=1e-12)
    assert result.cross_entropy_bits == pytest.approx(-by_hand / 5 / math.log(2), rel=1e-12)
    # Uniform over <unk>, </s>, a, b (never <s>): perplexity exactly 4.
    assert evaluate(train("uniform", corpora).model, corpora.test).perplexity == pytest.approx(4.0)


def test_zero_probability_is_counted_not_fatal(tmp_path):
    (tmp_path / "train.txt").write_text("a b\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("a c c\n", encoding="utf-8")
    corpora = load_corpus(str(tmp_path), Tokenizer("whitespace"))
    result = evaluate(train("unigram", corpora).model, corpora.test)
    assert result.zero_prob_events == 2 and math.isinf(result.perplexity)
    assert result.oov_tokens == 2 and result.oov_rate == pytest.approx(2 / 3)
    # The finite part: a and </s>, each 1/3 under the training counts a, b, </s>.
    assert result.perplexity_excluding_zero_prob == pytest.approx(3.0)


def test_checkpoint_roundtrip(three_sentences, tmp_path):
    corpora = load_corpus(str(three_sentences), Tokenizer("whitespace"))
    model = train("unigram", corpora).model
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.tokenizer == Tokenizer("whitespace") and loaded.vocab == corpora.vocab
    np.testing.assert_array_equal(loaded.logprobs(corpora.test), model.logprobs(corpora.test))
    assert not list(tmp_path.glob(".m.tmp-*"))


def test_cli_unigram_on_ptb_matches_raw_counts(shared_corpora, tmp_path):
    ptb = shared_corpora / "ptb-v"
    out = run_cli("train", "unigram", "--corpus", ptb, "--out", tmp_path / "u", "--tokenizer", "whitespace", "--json")
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert {"model", "params", "train_tokens", "train_seconds", "train_tokens_per_second"} <= set(trained)
    res = run_cli("eval", tmp_path / "u", "--corpus", ptb, "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert {"perplexity", "cross_entropy_bits", "tokens", "oov_rate", "zero_prob_events",
            "eval_tokens_per_second"} <= set(got)

    # Independently: count whitespace tokens and one </s> per non-blank line, straight from the files.
    train_lines = [line.split() for line in (ptb / "train.txt").read_text().splitlines() if line.split()]
    counts = Counter(w for line in train_lines for w in line)
    counts["</s>"] = len(train_lines)
    total = sum(counts.values())
    test_lines = [line.split() for line in (ptb / "test.txt").read_text().splitlines() if line.split()]
    events = [w for line in test_lines for w in [*line, "</s>"]]
    log_likelihood = sum(math.log(counts[w] / total) for w in events)
    assert trained["train_tokens"] == total == 73_760
    assert got["tokens"] == len(events) == 82_430
    assert got["perplexity"] == pytest.approx(math.exp(-log_likelihood / len(events)), rel=1e-9)
    assert got["zero_prob_events"] == 0 and got["oov_rate"] == 0.0


def test_cli_models_and_help():
    out = run_cli("models")
    assert out.returncode == 0 and "uniform" in out.stdout and "unigram" in out.stdout
    assert run_cli("--help").returncode == 0
    listing = json.loads(run_cli("models", "--json").stdout)
    assert {m["name"] for m in listing["models"]} >= {"uniform", "unigram"}


def test_cli_json_is_one_object(tmp_path):
    out = run_cli("train", "uniform", "--corpus", "synthetic:grammar?sentences=40", "--out", tmp_path / "m", "--json")
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 1
    assert json.loads(out.stdout)["model"] == "uniform"


def test_korean_corpus_info(tmp_path):
    text = "나는 머신러닝이 좋다.\n나는 학교에 간다.\n그는 머신러닝이 어렵다고 말했다.\n" * 10
    (tmp_path / "ko.txt").write_text(text, encoding="utf-8")
    out = run_cli("corpus", "info", tmp_path / "ko.txt", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    train_split = info["splits"]["train"]
    words = {w for w, _ in train_split["most_common"]}
    assert {"나는", "머신러닝이", "좋다", "."} <= words  # Hangul words whole, punctuation split off
    # 나는 머신러닝이 좋다 . 학교에 간다 그는 어렵다고 말했다: nine types; each line is in train 8+ times.
    assert train_split["types"] == 9
    human = run_cli("corpus", "info", tmp_path / "ko.txt")
    assert "머신러닝이" in human.stdout and "\\u" not in human.stdout


def test_plugin_file(tmp_path):
    plugin = tmp_path / "constant.py"
    plugin.write_text(
        "import numpy as np\n"
        "from lmbench import LanguageModel\n"
        "class Half(LanguageModel):\n"
        "    name = 'half'\n"
        "    description = 'p = 1/2 for everything'\n"
        "    normalized = False\n"
        "    def fit(self, train, valid=None):\n"
        "        self.vocab = train.vocab\n"
        "        return self\n"
        "    def logprobs(self, corpus):\n"
        "        return np.full(corpus.n_predicted, np.log(0.5))\n",
        encoding="utf-8",
    )
    out = run_cli("--plugin", plugin, "train", "half", "--corpus", "synthetic:grammar?sentences=30",
                  "--out", tmp_path / "m", "--json")
    assert out.returncode == 0, out.stderr
    res = run_cli("--plugin", plugin, "eval", tmp_path / "m", "--corpus", "synthetic:grammar?sentences=30", "--json")
    assert json.loads(res.stdout)["perplexity"] == pytest.approx(2.0)
    assert_clean_error(run_cli("eval", tmp_path / "m", "--corpus", "synthetic:grammar"), "unknown model 'half'")
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n", encoding="utf-8")
    assert_clean_error(run_cli("--plugin", broken, "models"), "broken.py", "No module named")
    abstract = tmp_path / "abstract.py"
    abstract.write_text("from lmbench import LanguageModel\nclass A(LanguageModel):\n    name = 'a'\n")
    assert_clean_error(run_cli("--plugin", abstract, "models"), "does not implement", "fit", "logprobs")


def test_python_api_exports():
    for name in ("Tokenizer", "Vocabulary", "Corpus", "load_corpus", "create_model", "train", "evaluate",
                 "load_model", "LanguageModel", "Param"):
        assert hasattr(lmbench, name)
    with pytest.raises(LmbenchError, match="unknown parameter"):
        lmbench.create_model("unigram", {"order": 2})


# --- bad input: one line on stderr, exit status 2, no traceback, nothing half-written ---------------

def test_missing_path(tmp_path):
    res = run_cli("train", "unigram", "--corpus", tmp_path / "nope", "--out", tmp_path / "m")
    assert_clean_error(res, "no such file or directory", "nope")
    assert not (tmp_path / "m").exists()


def test_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    res = run_cli("train", "unigram", "--corpus", tmp_path / "empty.txt", "--out", tmp_path / "m")
    assert_clean_error(res, "empty")
    assert not (tmp_path / "m").exists()


def test_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"good line\nanother\nbad \xff\xfe byte\n")
    res = run_cli("corpus", "info", tmp_path / "bad.txt")
    assert_clean_error(res, "bad.txt:3", "UTF-8")


def test_unknown_model_lists_known(tmp_path):
    res = run_cli("train", "mamba", "--corpus", "synthetic:grammar", "--out", tmp_path / "m")
    assert_clean_error(res, "unknown model 'mamba'", "uniform", "unigram")


def test_malformed_param(tmp_path):
    res = run_cli("train", "unigram", "--corpus", "synthetic:grammar", "--out", tmp_path / "m", "-p", "order")
    assert_clean_error(res, "key=value")
    res = run_cli("train", "unigram", "--corpus", "synthetic:grammar", "--out", tmp_path / "m", "-p", "x=1")
    assert_clean_error(res, "unknown parameter", "x")


def test_eval_on_a_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    assert_clean_error(run_cli("eval", tmp_path, "--corpus", "synthetic:grammar"), "not a model directory")
    (tmp_path / "model.json").write_text("{not json", encoding="utf-8")
    assert_clean_error(run_cli("eval", tmp_path, "--corpus", "synthetic:grammar"), "not valid JSON")


def test_train_refuses_to_overwrite_other_files(tmp_path):
    (tmp_path / "keep.txt").write_text("precious", encoding="utf-8")
    res = run_cli("train", "unigram", "--corpus", "synthetic:grammar?sentences=20", "--out", tmp_path)
    assert_clean_error(res, "not a model directory")
    assert (tmp_path / "keep.txt").read_text() == "precious"


def _trained_unigram(tmp_path):
    out = run_cli("train", "unigram", "--corpus", "synthetic:grammar?sentences=50", "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    return tmp_path / "m"


def test_tampered_array(tmp_path):
    model_dir = _trained_unigram(tmp_path)
    with np.load(model_dir / "arrays.npz") as npz:
        log_p = npz["log_p"].copy()
    log_p[5] += 0.1
    np.savez(model_dir / "arrays.npz", log_p=log_p)
    res = run_cli("eval", model_dir, "--corpus", "synthetic:grammar?sentences=50")
    assert_clean_error(res, "log_p", "digest")


def test_missing_array_and_file(tmp_path):
    model_dir = _trained_unigram(tmp_path)
    np.savez(model_dir / "arrays.npz", other=np.zeros(3))
    assert_clean_error(run_cli("eval", model_dir, "--corpus", "synthetic:grammar"), "lacks array 'log_p'")
    (model_dir / "arrays.npz").unlink()
    assert_clean_error(run_cli("eval", model_dir, "--corpus", "synthetic:grammar"), "arrays missing")
    (model_dir / "arrays.npz").write_bytes(b"garbage")
    assert_clean_error(run_cli("eval", model_dir, "--corpus", "synthetic:grammar"), "unreadable")
