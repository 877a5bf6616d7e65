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


# --- item 2: a bad --out is refused before any work (and a full disk leaves nothing behind) ----------------------
def refuse_work(monkeypatch, module: str, name: str) -> None:
    """Make `module.name` fail the test if called: the command must give up before it reaches that work."""
    def started(*args, **kwargs):
        raise AssertionError(f"{module}.{name} was called: the bad path was not refused before the work")
    monkeypatch.setattr(f"{module}.{name}", started)


@pytest.mark.parametrize("where", ["/proc/yy", "FILE/m"])
def test_train_refuses_an_unwritable_out_before_reading_the_corpus(capsys, tmp_path, monkeypatch, where):
    (tmp_path / "FILE").write_text("x", encoding="utf-8")
    out = where.replace("FILE", str(tmp_path / "FILE"))
    refuse_work(monkeypatch, "lmbench.cli.core", "load_corpus")
    clean_error(capsys, "train", "lstm", "--corpus", DEP, "--out", out, fragments=("--out", out))


def test_every_writing_command_refuses_a_path_under_a_file_before_work(capsys, tmp_path, monkeypatch, rnn_dir):
    f = tmp_path / "FILE"
    f.write_text("x", encoding="utf-8")
    refuse_work(monkeypatch, "lmbench.cli.ngram", "load_language_model")
    clean_error(capsys, "export", rnn_dir, "--arpa", f / "x.arpa", fragments=("--arpa", "is a file, not a directory"))
    refuse_work(monkeypatch, "lmbench.cli.ngram.ArpaModel", "from_arpa")
    clean_error(capsys, "import-arpa", f, "--out", f / "m", fragments=("--out", "is a file"))
    refuse_work(monkeypatch, "lmbench.cli.probe", "write_pairs")
    clean_error(capsys, "probe", "make-pairs", "agreement", "--out", f / "p.jsonl", fragments=("is a file",))
    clean_error(capsys, "probe", "make-pairs", "agreement", "--out", "/proc/p.jsonl", fragments=("cannot write",))
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nseeds = [0]\nmetrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?'
                     'sentences=30"\n[[model]]\nname = "unigram"\n', encoding="utf-8")
    refuse_work(monkeypatch, "lmbench.bench.runner", "run_suite")
    clean_error(capsys, "run", suite, "--out", f / "run", fragments=("--out", "is a file"))
    clean_error(capsys, "run", suite, "--out", tmp_path / "r", "--report-out", f / "rep",
                fragments=("--report-out", "is a file"))
    assert not (tmp_path / "r").exists()


def test_report_refuses_a_bad_out_before_drawing(capsys, tmp_path, monkeypatch):
    from lmbench.bench.runner import run_suite
    from lmbench.bench.suite import parse_suite

    suite = parse_suite('name = "s"\nseeds = [0]\nmetrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?'
                        'sentences=30"\n[[model]]\nname = "unigram"\n', "s.toml")
    run_suite(suite, tmp_path / "run", progress=False)
    (tmp_path / "FILE").write_text("x", encoding="utf-8")
    refuse_work(monkeypatch, "lmbench.report.build", "write_report")
    clean_error(capsys, "report", tmp_path / "run", "--out", tmp_path / "FILE" / "rep", fragments=("is a file",))
    clean_error(capsys, "report", tmp_path / "run", "--out", "/proc/rep", fragments=("cannot write in /proc",))


def _limited(max_bytes: int):
    """preexec_fn: files may not grow beyond max_bytes (EFBIG, as on a full disk) and SIGXFSZ does not kill."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


@pytest.mark.parametrize("command", ["train", "report"])
def test_a_full_disk_gives_one_line_and_leaves_nothing(tmp_path, command):
    """A write refused by the system (here: a file-size limit; ENOSPC takes the same path) ends in one line,
    exit 2, and no partial model or report directory, no temporaries."""
    import subprocess
    import sys

    from lmbench.bench.runner import run_suite
    from lmbench.bench.suite import parse_suite

    if command == "train":
        # --quiet: off a terminal each finished epoch prints a progress line; the failure itself is one line.
        argv = ["train", "rnn", "--corpus", DEP, *RNN, "--out", str(tmp_path / "m"), "--quiet"]
        limit = 2000  # model.json and vocab.txt fit, arrays.npz does not
    else:
        suite = parse_suite('name = "s"\nseeds = [0]\nmetrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:'
                            'grammar?sentences=30"\n[[model]]\nname = "unigram"\n', "s.toml")
        run_suite(suite, tmp_path / "run", progress=False)
        argv = ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]
        limit = 3000  # a figure does not fit
    before = set(tmp_path.iterdir())
    r = subprocess.run([sys.executable, "-m", "lmbench", *argv], capture_output=True, text=True, timeout=300,
                       preexec_fn=_limited(limit))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "File too large" in lines[0]
    assert set(tmp_path.iterdir()) == before  # no model/report directory, no .tmp-* or .swap-* left


# --- item 8: unbounded input --------------------------------------------------------------------------------
def test_devices_fifos_and_directories_are_refused_unread(capsys, tmp_path):
    import os
    import signal

    def too_long(*args):
        raise TimeoutError("the command read an endless or blocking input instead of refusing it")
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(60)  # without the check, /dev/zero is read until memory runs out and the FIFO blocks forever
    try:
        clean_error(capsys, "corpus", "info", "/dev/zero", fragments=("/dev/zero", "not a regular file"))
        os.mkfifo(tmp_path / "fifo")
        clean_error(capsys, "corpus", "info", tmp_path / "fifo", fragments=("not a regular file",))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    clean_error(capsys, "import-arpa", "/dev/zero", "--out", tmp_path / "m", fragments=("not a regular file",))
    clean_error(capsys, "run", "/dev/zero", fragments=("/dev/zero",))
    assert not (tmp_path / "m").exists()


def test_nul_bytes_are_binary_data_named_by_line(capsys, tmp_path):
    (tmp_path / "t.txt").write_bytes(b"a b\nc d\ne \x00 f\ng h\n")
    clean_error(capsys, "corpus", "info", tmp_path / "t.txt", fragments=(f"{tmp_path / 't.txt'}:3:", "NUL byte"))
    (tmp_path / "x.arpa").write_bytes(b"\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\x00\n")
    clean_error(capsys, "import-arpa", tmp_path / "x.arpa", "--out", tmp_path / "m", fragments=(":5:", "NUL byte"))


def test_a_huge_sparse_file_of_nul_bytes_is_refused_at_its_first_chunk(capsys, tmp_path):
    import resource

    big = tmp_path / "sparse.txt"
    with open(big, "wb") as f:
        f.truncate(2 * 2**30)  # 2 GiB of NUL bytes, no disk blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clean_error(capsys, "corpus", "info", big, fragments=(":1:", "NUL byte"))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024  # read one chunk, not 2 GiB


# --- item 9: absurd sizes are refused with an estimate, before allocating --------------------------------------
@pytest.mark.parametrize("params", [("hidden=10000000000",), ("hidden=100000", "emb=100000")])
def test_absurd_model_sizes_are_refused_with_the_estimate(capsys, tmp_path, monkeypatch, params):
    refuse_work(monkeypatch, "lmbench.cli.core", "load_corpus")
    argv = [x for p in params for x in ("-p", p)]
    line = clean_error(capsys, "train", "lstm", "--corpus", DEP, *argv, "--out", tmp_path / "m",
                       fragments=("needs about", "TiB" if "emb=100000" in params else "PiB", "this machine has"))
    assert "hidden=" in line
    assert not (tmp_path / "m").exists()


def test_memory_estimate_counts_weights_by_hand():
    """An LSTM of vocabulary V, emb E, hidden H, one layer: 4H(E+H+1) recurrent + VE + HV + V output weights;
    weights, gradients and two Adam moments = 4 copies, float32; one step's activations on top."""
    from lmbench.models.registry import create_model
    from lmbench.resources import model_memory_estimate

    model = create_model("lstm", {"emb": 3, "hidden": 5, "layers": 1, "batch": 2, "bptt": 4})
    V = 10
    weights = V * 3 + 4 * 5 * (3 + 5 + 1) + 5 * V + V
    activations = 2 * 4 * (1 * 6 * 5 + 3 * V)
    assert model_memory_estimate(model, V, train_tokens=1000) == 4 * (4 * weights + 2 * activations)


def test_a_huge_distance_probe_is_refused_before_allocating(capsys, rnn_dir):
    clean_error(capsys, "probe", "distance", rnn_dir, "--corpus", DEP, "--distances", "1000000000",
                fragments=("needs about", "this machine has"))
    clean_error(capsys, "corpus", "info", "synthetic:grammar?sentences=100000000000", fragments=("needs about",))


# --- item 10, 11: suites checked whole before the first cell; a failed run says so ------------------------------
SUITE_HEAD = 'name = "s"\nseeds = [0]\n'


def test_a_suite_file_with_invalid_utf8_names_its_line(capsys, tmp_path):
    (tmp_path / "s.toml").write_bytes(b'name = "s"\ndescription = "caf\xe9"\n')
    clean_error(capsys, "run", tmp_path / "s.toml", "--out", tmp_path / "r",
                fragments=("s.toml:2:", "invalid UTF-8 byte 0xe9"))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("body, fragments", [
    ('metrics = ["perplexity"]\n[[corpus]]\nspec = "NOFILE.txt"\n[[model]]\nname = "unigram"\n',
     ("NOFILE.txt", "no such file")),
    ('metrics = ["distance"]\n[metric_options.distance]\ndistances = "abc"\n[[corpus]]\n'
     'spec = "synthetic:dependency?sentences=60"\n[[model]]\nname = "rnn"\nparams = {hidden = 4, emb = 4}\n',
     ("metric_options.distance", "'abc'")),
    ('metrics = ["distance"]\n[metric_options.distance]\ndistances = [1000000000]\n[[corpus]]\n'
     'spec = "synthetic:dependency?sentences=60"\n[[model]]\nname = "rnn"\nparams = {hidden = 4, emb = 4}\n',
     ("needs about",)),
    ('metrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?sentences=30"\n[[model]]\nname = "lstm"\n'
     'params = {hidden = 10000000000}\n', ("needs about",)),
])
def test_a_suite_is_checked_whole_before_its_first_cell(capsys, tmp_path, monkeypatch, body, fragments):
    (tmp_path / "s.toml").write_text(SUITE_HEAD + body, encoding="utf-8")
    refuse_work(monkeypatch, "lmbench.bench.runner", "run_cell")
    clean_error(capsys, "run", tmp_path / "s.toml", "--out", tmp_path / "r", fragments=fragments)
    assert not (tmp_path / "r").exists()


FAILING_PLUGIN = '''
from lmbench import LanguageModel
from lmbench.errors import LmbenchError


class Failing(LanguageModel):
    name = "failing"
    description = "fails while training (a test model)"

    def fit(self, train, valid=None):
        raise LmbenchError("the failing model failed")

    def logprobs(self, corpus):
        raise AssertionError
'''


def test_a_run_that_fails_is_marked_failed_not_running(capsys, tmp_path):
    (tmp_path / "failing.py").write_text(FAILING_PLUGIN, encoding="utf-8")
    (tmp_path / "s.toml").write_text(SUITE_HEAD + 'metrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?'
                                     'sentences=30"\n[[model]]\nname = "failing"\n', encoding="utf-8")
    clean_error(capsys, "--plugin", tmp_path / "failing.py", "run", tmp_path / "s.toml", "--out", tmp_path / "r",
                fragments=("the failing model failed",))
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "failed" and "the failing model failed" in manifest["error"]


# --- item 17: the smaller ones ----------------------------------------------------------------------------------
@pytest.mark.parametrize("param, fragment", [("order=2.7", "order='2.7' must be int"),
                                             ("k=true", "k='true' must be float")])
def test_param_rejects_non_integers_and_booleans_on_the_command_line(capsys, tmp_path, param, fragment):
    clean_error(capsys, "train", "ngram", "--corpus", DEP, "-p", "smoothing=add_k", "-p", param,
                "--out", tmp_path / "m", fragments=(fragment,))


@pytest.mark.parametrize("param, fragment", [("order = 2.7", "order=2.7 must be int"),
                                             ("k = true", "k=True must be float")])
def test_param_rejects_non_integers_and_booleans_in_a_suite(capsys, tmp_path, param, fragment):
    (tmp_path / "s.toml").write_text(SUITE_HEAD + 'metrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?'
                                     'sentences=30"\n[[model]]\nname = "ngram"\n'
                                     f'params = {{smoothing = "add_k", {param}}}\n', encoding="utf-8")
    clean_error(capsys, "run", tmp_path / "s.toml", "--out", tmp_path / "r", fragments=(fragment,))


def test_an_arpa_nan_probability_is_refused(capsys, tmp_path):
    arpa = ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.5\nnan\t</s>\n-0.3\ta\t-0.2\n\n"
            "\\2-grams:\n-0.1\t<s> a\n\n\\end\\\n")
    (tmp_path / "ok.arpa").write_text(arpa.replace("nan", "-0.4"), encoding="utf-8")
    ok(capsys, "import-arpa", tmp_path / "ok.arpa", "--out", tmp_path / "ok")  # the same file, finite, is fine
    (tmp_path / "x.arpa").write_text(arpa, encoding="utf-8")
    clean_error(capsys, "import-arpa", tmp_path / "x.arpa", "--out", tmp_path / "m",
                fragments=("x.arpa:7:", "'nan'"))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["translate", "eval", "NOMODEL", "--pairs", "synthetic:ko-en", "--length-norm", "nan"], "--length-norm"),
    (["translate", "eval", "NOMODEL", "--pairs", "synthetic:ko-en", "--length-norm", "inf"], "--length-norm"),
    (["translate", "eval", "NOMODEL", "--pairs", "synthetic:ko-en", "--samples", "-1"], "--samples"),
    (["compare", "A", "B", "--rtol", "-1"], "--rtol"),
    (["compare", "A", "B", "--rtol", "nan"], "--rtol"),
    (["compare", "A", "B", "--limit", "-1"], "--limit"),
    (["gradflow", "NOMODEL", "--positions", "-3"], "--positions"),
    (["gradflow", "NOMODEL", "--positions", "0"], "--positions"),
    (["probe", "make-pairs", "agreement", "--out", "OUT", "--n", "-1"], "--n"),
])
def test_out_of_range_options_are_refused(capsys, tmp_path, argv, fragment):
    argv = [str(tmp_path / "x") if a == "OUT" else a for a in argv]
    clean_error(capsys, *argv, fragments=(fragment,))  # the option itself, before looking at NOMODEL, A or B
    assert not (tmp_path / "x").exists()


def test_export_asks_for_force_before_overwriting(capsys, tmp_path):
    (tmp_path / "c.txt").write_text(TWO_WORDS, encoding="utf-8")
    ok(capsys, "train", "ngram", "--corpus", tmp_path / "c.txt", "-p", "order=2", "-p", "smoothing=mle", "--out",
       tmp_path / "m")
    (tmp_path / "x.arpa").write_text("keep me\n", encoding="utf-8")
    clean_error(capsys, "export", tmp_path / "m", "--arpa", tmp_path / "x.arpa", fragments=("--force",))
    assert (tmp_path / "x.arpa").read_text(encoding="utf-8") == "keep me\n"
    ok(capsys, "export", tmp_path / "m", "--arpa", tmp_path / "x.arpa", "--force")
    assert (tmp_path / "x.arpa").read_text(encoding="utf-8").startswith("\\data\\")


def test_resume_refuses_a_changed_tokenizer_and_says_where_vocabularies_differ(capsys, tmp_path):
    m = tmp_path / "m"
    ok(capsys, "train", "rnn", "--corpus", DEP, *RNN, "-p", "max_steps=2", "--out", m)
    clean_error(capsys, "train", "rnn", "--corpus", DEP, "--resume", m, "--lowercase",
                fragments=("changed tokenizer", "--lowercase"))
    clean_error(capsys, "train", "rnn", "--corpus", DEP, "--resume", m, "--tokenizer", "char",
                fragments=("--tokenizer char",))
    # A corpus of the same size but other words: the message names the first differing entry, not two equal sizes.
    other = tmp_path / "c.txt"
    words = load_vocab_words(m)
    other.write_text(" ".join(words[:-1] + ["zzz"]) + "\n", encoding="utf-8")
    line = clean_error(capsys, "train", "rnn", "--corpus", f"{other}?split=100/0/0", "--resume", m,
                       fragments=("vocabulary differs",))
    assert "'zzz'" in line


def load_vocab_words(model_dir) -> list[str]:
    """The words of a saved model's vocabulary, without <unk>, <s>, </s>."""
    from lmbench.models.registry import load_language_model

    return [t for t in load_language_model(model_dir).vocab.tokens if not t.startswith("<")]


def test_resuming_a_finished_run_reports_no_speed(capsys, tmp_path):
    m = tmp_path / "m"
    ok(capsys, "train", "rnn", "--corpus", DEP, *RNN, "--out", m)
    before = (m / "arrays.npz").read_bytes()
    out = json.loads(ok(capsys, "train", "rnn", "--corpus", DEP, "--resume", m, "--json"))
    assert out["trained"] is False and out["train_tokens_per_second"] is None and out["train_seconds"] == 0.0
    assert "already finished" in ok(capsys, "train", "rnn", "--corpus", DEP, "--resume", m)
    assert (m / "arrays.npz").read_bytes() == before


def test_an_interrupted_suite_prints_one_line_and_says_interrupted(capsys, tmp_path, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("lmbench.bench.runner.run_cell", ctrl_c)
    (tmp_path / "s.toml").write_text(SUITE_HEAD + 'metrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?'
                                     'sentences=30"\n[[model]]\nname = "unigram"\n', encoding="utf-8")
    code, out, err = run(capsys, "run", tmp_path / "s.toml", "--out", tmp_path / "r")
    assert code == 130 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "interrupted after 0 of 1 cells" in err
    assert json.loads((tmp_path / "r" / "manifest.json").read_text(encoding="utf-8"))["status"] == "interrupted"


def test_a_no_op_rerun_keeps_a_meaningful_report_header(capsys, tmp_path):
    (tmp_path / "s.toml").write_text(SUITE_HEAD + 'metrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?'
                                     'sentences=30"\n[[model]]\nname = "unigram"\n', encoding="utf-8")
    ok(capsys, "run", tmp_path / "s.toml", "--out", tmp_path / "r")
    first = json.loads((tmp_path / "r" / "manifest.json").read_text(encoding="utf-8"))
    ok(capsys, "run", tmp_path / "s.toml", "--out", tmp_path / "r")
    again = json.loads((tmp_path / "r" / "manifest.json").read_text(encoding="utf-8"))
    assert again["finished"] == first["finished"]  # the time its last cell was computed
    assert again["wall_seconds_total"] >= first["wall_seconds"] > 0
    header = (tmp_path / "r" / "report" / "report.md").read_text(encoding="utf-8")
    assert "0 run now" not in header and "all computed by earlier invocations" in header


# --- found by the fuzz test ---------------------------------------------------------------------------------------
def test_a_model_directory_named_dot_or_root(capsys, tmp_path, monkeypatch, rnn_dir):
    """'.' and '/' have no file name of their own: read as the directory they are, or refused in one line."""
    monkeypatch.chdir(tmp_path)
    clean_error(capsys, "gradflow", ".", fragments=("not a model directory",))
    clean_error(capsys, "eval", "/", "--corpus", DEP, fragments=("not a model directory",))
    monkeypatch.chdir(rnn_dir)
    out = json.loads(ok(capsys, "eval", ".", "--corpus", DEP, "--json"))
    monkeypatch.chdir(tmp_path)
    assert out["perplexity"] == json.loads(ok(capsys, "eval", rnn_dir, "--corpus", DEP, "--json"))["perplexity"]


@pytest.mark.parametrize("argv, fragment", [
    (["probe", "make-pairs", "--out", "OUT"], "Missing argument"),  # click lists a Choice's values one per line
    (["corpus", "info", "no\nsuch\nfile.txt"], "no such file"),  # a file name with line breaks
])
def test_every_error_is_one_line(capsys, tmp_path, argv, fragment):
    argv = [str(tmp_path / "x") if a == "OUT" else a for a in argv]
    clean_error(capsys, *argv, fragments=(fragment,))


def test_a_name_too_long_for_the_file_system_is_refused_before_work(capsys, tmp_path, monkeypatch):
    """300 bytes exceed every common NAME_MAX (255); 230 fit as a name but not with the temporary sibling's
    extra characters. Either is refused before any work, and no directory on the way is created."""
    import os

    monkeypatch.chdir(tmp_path)
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    for n in (limit + 45, limit - 25):
        clean_error(capsys, "probe", "make-pairs", "korean-npi", "--out", f"out/{'x' * n}",
                    fragments=("too long for the file system",))
        clean_error(capsys, "train", "unigram", "--corpus", DEP, "--out", f"out/{'y' * n}",
                    fragments=("too long for the file system",))
        assert list(tmp_path.iterdir()) == []
    ok(capsys, "probe", "make-pairs", "korean-npi", "--n", "2", "--out", f"out/{'x' * (limit - 40)}")  # fits


@pytest.mark.parametrize("argv", [["sparsity", "--max-order", "2"], ["train", "ngram", "--out", "OUT"]])
def test_nul_bytes_are_refused_on_the_cached_path_too(capsys, tmp_path, argv):
    """sparsity and train read corpora through the encoded-corpus cache, in parallel chunks: that reader too
    refuses binary data at its first NUL byte, named by its line, without tokenizing it (a 1 GiB sparse file
    of NUL bytes once cost 23 GB of memory there)."""
    import resource

    argv = [str(tmp_path / "m") if a == "OUT" else a for a in argv]
    (tmp_path / "t.txt").write_bytes(b"a b\nc d\ne \x00 f\ng h\n" * 3)
    clean_error(capsys, *argv, "--corpus", tmp_path / "t.txt", fragments=(f"{tmp_path / 't.txt'}:3:", "NUL byte"))
    big = tmp_path / "sparse.txt"
    with open(big, "wb") as f:
        f.truncate(64 * 2**20)  # 64 MiB of NUL bytes, one "line"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    clean_error(capsys, *argv, "--corpus", big, fragments=(":1:", "NUL byte"))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # KiB: never read whole
    assert not (tmp_path / "m").exists()
