"""Issue 15 (command-line half): each defect of the adversarial pass, reproduced and pinned.

Every test drives the CLI in-process through `lmbench.cli.main` and checks the promise for bad input:
exit status 2, exactly one line on stderr, no traceback, nothing half-written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmbench.cli import main


def run(capsys, *argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def clean_error(capsys, *argv, fragments=()):
    """The command fails with status 2 and exactly one stderr line (naming `fragments`); return that line."""
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def ok(capsys, *argv):
    """The command succeeds; return its stdout."""
    code, out, err = run(capsys, *argv)
    assert code == 0, (code, out, err)
    return out


# --- item 1: an n-gram order above every sentence length ------------------------------------------------------
TWO_WORDS = "".join(f"{a} {b}\n" for a in "abcde" for b in "abcde") * 4  # 100 sentences of 2 words


def test_order_longer_than_every_sentence_scores_like_the_longest_order_present(capsys, tmp_path):
    """<s> w1 w2 </s> has 4-grams at most: an MLE model of order 6 (empty 5- and 6-gram tables) must
    give every token exactly what the order-4 MLE model gives it, and `eval` must not crash."""
    from lmbench.models.registry import load_language_model
    from lmbench.text.sources import load_corpus

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.txt").write_text(TWO_WORDS, encoding="utf-8")
    (tmp_path / "c" / "test.txt").write_text("a b\nc d\ne a\n", encoding="utf-8")
    for order in (4, 6):
        ok(capsys, "train", "ngram", "--corpus", tmp_path / "c", "--tokenizer", "whitespace", "-p", f"order={order}",
           "-p", "smoothing=mle", "--out", tmp_path / f"m{order}")
    out = json.loads(ok(capsys, "eval", tmp_path / "m6", "--corpus", tmp_path / "c", "--json"))
    m4, m6 = load_language_model(tmp_path / "m4"), load_language_model(tmp_path / "m6")
    test = load_corpus(str(tmp_path / "c"), m4.tokenizer, vocab=m4.vocab).test
    lp4, lp6 = m4.logprobs(test), m6.logprobs(test)
    # By hand: every sentence "x y" occurs 4 times among 100, each word 40 times in each position.
    expected = np.log([[1 / 5, 1 / 5, 1.0]] * 3).ravel()  # p(x|<s>), p(y|<s> x), p(</s>|<s> x y)
    np.testing.assert_allclose(lp6, expected, rtol=1e-12)
    np.testing.assert_allclose(lp6, lp4, rtol=1e-12)
    assert out["perplexity"] == pytest.approx(np.exp(-expected.mean()))
    # Kneser-Ney (the default) with its discount fallback, the exact command, evaluates too.
    ok(capsys, "train", "ngram", "--corpus", tmp_path / "c", "--tokenizer", "whitespace", "-p", "order=5",
       "-p", "discount_fallback=true", "--out", tmp_path / "kn5")
    kn = json.loads(ok(capsys, "eval", tmp_path / "kn5", "--corpus", tmp_path / "c", "--json"))
    assert np.isfinite(kn["perplexity"]) and kn["tokens"] == 9


def test_next_token_distribution_with_empty_higher_orders(tmp_path):
    """next_logprobs walks the same tables: an order-6 model over 2-word sentences sums to one."""
    from lmbench.evaluate.harness import train
    from lmbench.text.sources import TextSplits, load_corpus

    corpora = load_corpus(TextSplits("two", TWO_WORDS.splitlines()))
    model = train("ngram", corpora, {"order": 6, "discount_fallback": True}).model
    rows = model.next_logprobs([np.array([], dtype=np.int64), corpora.train[0], np.concatenate([corpora.train[0]] * 3)])
    assert np.exp(rows).sum(axis=1) == pytest.approx([1.0, 1.0, 1.0])


def test_sparsity_with_an_order_beyond_every_sentence(capsys):
    out = json.loads(ok(capsys, "sparsity", "--max-order", "35", "--corpus", "synthetic:grammar?sentences=50",
                        "--json"))
    from lmbench.text.sources import read_splits

    train = read_splits("synthetic:grammar?sentences=50").train
    longest = max(len(line.split()) for line in train) + 2  # with <s> and </s>
    rows = [r for r in out["rows"] if r["split"] == "train"]
    assert [r["order"] for r in rows] == list(range(1, 36))
    assert all((r["types"] == 0) == (r["order"] > longest) for r in rows)


# --- item 6: one seed parser --------------------------------------------------------------------------------
DEP = "synthetic:dependency?sentences=60&max_distance=8"
RNN = ("-p", "hidden=4", "-p", "emb=4", "-p", "layers=1", "-p", "epochs=1", "-p", "bptt=5", "-p", "batch=2",
       "-p", "dropout=0")


@pytest.fixture(scope="module")
def rnn_dir(tmp_path_factory):
    """A tiny trained RNN (can sample, has hidden states, scores next tokens)."""
    out = tmp_path_factory.mktemp("rnn") / "m"
    with pytest.raises(SystemExit) as e:
        main(["train", "rnn", "--corpus", DEP, *RNN, "--out", str(out)])
    assert e.value.code == 0
    return out


NEGATIVE_SEED = "a seed must be ≥ 0"


def test_negative_seed_on_a_file_corpus_and_a_synthetic_one(capsys, tmp_path):
    (tmp_path / "t.txt").write_text(TWO_WORDS, encoding="utf-8")
    clean_error(capsys, "corpus", "info", f"{tmp_path / 't.txt'}?seed=-1", fragments=(NEGATIVE_SEED,))
    clean_error(capsys, "corpus", "info", "synthetic:grammar?sentences=20&seed=-1", fragments=(NEGATIVE_SEED,))
    # A valid seed still works and changes the split (seeded shuffle).
    a = json.loads(ok(capsys, "corpus", "info", f"{tmp_path / 't.txt'}?seed=1", "--json"))
    assert a["splits"]["train"]["sentences"] == 80


def test_negative_seed_as_a_model_parameter(capsys, tmp_path):
    clean_error(capsys, "train", "rnn", "--corpus", DEP, *RNN, "-p", "seed=-1", "--out", tmp_path / "m",
                fragments=(NEGATIVE_SEED,))
    assert not (tmp_path / "m").exists()


def test_negative_seed_in_probe_and_gradflow_commands(capsys, tmp_path, rnn_dir):
    clean_error(capsys, "probe", "make-pairs", "agreement", "--out", tmp_path / "p.jsonl", "--seed", "-1",
                fragments=(NEGATIVE_SEED,))
    assert not (tmp_path / "p.jsonl").exists()
    clean_error(capsys, "gradflow", rnn_dir, "--seed", "-1", "--max-lag", "2", "--positions", "2",
                fragments=(NEGATIVE_SEED,))
    clean_error(capsys, "probe", "distance", rnn_dir, "--corpus", DEP, "--distances", "1,2", "--items", "4",
                "--seed", "-1", fragments=(NEGATIVE_SEED,))


def test_seed_parser_accepts_exactly_the_non_negative_integers():
    from lmbench.errors import LmbenchError
    from lmbench.seeding import parse_seed

    assert [parse_seed(v) for v in (0, "7", " 12 ", 3.0, 2**70)] == [0, 7, 12, 3, 2**70]
    for bad in (-1, "-1", "x", "1.5", 1.5, True, None, [1]):
        with pytest.raises(LmbenchError):
            parse_seed(bad)


def test_negative_seed_in_generate(capsys, rnn_dir):
    clean_error(capsys, "generate", rnn_dir, "--seed", "-1", fragments=(NEGATIVE_SEED,))
