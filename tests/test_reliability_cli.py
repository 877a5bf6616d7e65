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
    from lmbench.models.base import load_language_model
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
