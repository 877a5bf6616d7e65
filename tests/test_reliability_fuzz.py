"""Issue 15: a command-line fuzz test. Hypothesis draws argument vectors from each click command's own options
(read from the command tree, so a new command or option is fuzzed without editing this file), with values from
a pool of hostile strings, numbers and paths (the issue's items among them), and runs them in-process under
click's CliRunner with a time and memory budget. The property, for every vector:

- the exit status is 0 or 2 (never 1: an unhandled exception), and nothing prints a traceback;
- on exit 2, stderr is exactly one line (warnings included) and the working directory — which holds every
  output path of the pool and a fresh copy of every input model/run — is exactly as it was before; the one
  exception is a suite run that failed after its first cell: its directory stays, marked failed, to resume.

Profiles (environment variable LMBENCH_FUZZ): unset or "ci" — derandomized, a fixed set of vectors, under
60 s; "long" — random, LMBENCH_FUZZ_EXAMPLES vectors (default 100000) or LMBENCH_FUZZ_MINUTES minutes (default
30), whichever ends first; failures are collected (LMBENCH_FUZZ_LOG, a JSONL file) rather than stopping at the
first one. See tests/README.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmbench.cli import cli, main
from lmbench.models.registry import MODELS

PROFILE = os.environ.get("LMBENCH_FUZZ", "ci")
LONG = PROFILE == "long"
CI_EXAMPLES = 150
CI_SECONDS = 50.0  # the search ends here (a loaded machine runs fewer vectors, never longer)
EXAMPLE_SECONDS = 4.0 if not LONG else 20.0  # one command's time budget; past it the vector counts as "slow"
MEMORY_BUDGET = 2 << 30  # address space a command may add to the test process

SETTINGS = settings(
    max_examples=int(os.environ.get("LMBENCH_FUZZ_EXAMPLES", "100000")) if LONG else CI_EXAMPLES,
    derandomize=not LONG, database=None, deadline=None, print_blob=True,
    suppress_health_check=list(HealthCheck),
)


# --- the command tree, introspected ---------------------------------------------------------------------------
def leaf_commands(group: click.Command = cli, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every runnable command under `group`, as (argv prefix, command)."""
    if isinstance(group, click.Group):
        return [leaf for name, sub in sorted(group.commands.items()) for leaf in leaf_commands(sub, (*path, name))]
    return [(path, group)]


COMMANDS = leaf_commands()


# --- the pool of values -------------------------------------------------------------------------------------------
TWO_WORDS = "".join(f"{a} {b}\n" for a in "abcde" for b in "abcde") * 4  # item 1: 100 sentences of 2 words
NUMBERS = ["0", "1", "2", "-1", "-3", "2.7", "1e6", "1e308", "-1e308", "nan", "inf", "-inf", "10000000000",
           "1000000000", "100000", "99999999999999999999999", "0x10", "1_000", "true", " 3 ", "+5", "²"]
STRINGS = ["", " ", "x", "é", "한국어 문장", "\u1112\u1161\u11ab", "a" * 300, "-", "--", "-p", "--out", "=", "?", "&",
           "%s", "{0}", "'", '"', "\\", "\t", "\n", "a\nb", "\u202e",
           "\udcff"]  # \udcff: how Python reads an argv byte that is not UTF-8
SPECS = ["c.txt", "c.txt?seed=-1", "c.txt?seed=1", "c.txt?split=100/0/0", "c.txt?split=x", "c.txt?nope=1",
         "corpusdir", "empty.txt", "nul.txt", "badutf8.txt", "nonexistent.txt", "/dev/zero", "/dev/null", "/proc/yy",
         "fifo", "sparse.txt", "synthetic:grammar?sentences=20", "synthetic:grammar?sentences=20&seed=-1",
         "synthetic:grammar?sentences=0", "synthetic:grammar?sentences=-5", "synthetic:grammar?sentences=100000000000",
         "synthetic:dependency?sentences=30&max_distance=6", "synthetic:agreement?sentences=20",
         "synthetic:korean?sentences=20", "synthetic:nope", "synthetic:", "nltk:nope", "http://example.com/x",
         "synthetic:ko-en?train=20&valid=5&test=5", "synthetic:ko-en?train=-1", "pairs.tsv", "pairs.tsv?column=9",
         "c.txt?column=2", "synthetic:grammar?sentences=20&sentences=30", "synthetic:grammar?sentences"]
PATHS = ["out", "out/m", "out/x.arpa", "out/p.jsonl", "afile", "afile/m", "afile/x.arpa", ".", "..", "/proc/yy",
         "/proc", "/dev/null", "/dev/full", "/dev/zero", "nonexistent", "in", "fifo", "link_loop", "dirlink/m",
         "in/rnn", "in/ngram", "in/nearest", "in/tampered", "in/run", "in/run2", "in/rnn/model.json",
         "in/ngram/vocab.txt", "in/ok.arpa", "in/nan.arpa", "in/pairs.jsonl", "in/suite.toml", "in/bad.toml",
         "in/plugin.py", "in/syntax_error.py", "c.txt", "nul.txt", "badutf8.txt", "empty.txt", "out/../afile",
         "é/m", "out/" + "x" * 300]
MODEL_NAMES = sorted(MODELS) + ["nope", "", "../x", "failing"]
PARAM_KEYS = sorted({k for name in MODELS for k in getattr(MODELS.get(name), "param_spec", {})} | {"seed", "nope"})
PARAM_VALUES = NUMBERS + ["true", "false", "mle", "witten_bell", "kneser_ney", "nope", "adam", "sgd", "", "1,2"]
# The issue's items, verbatim where they fit in a -p value.
ISSUE_PARAMS = ["order=5", "order=35", "order=2.7", "k=true", "seed=-1", "hidden=10000000000", "hidden=100000",
                "emb=100000", "lr=1e6", "clip=0", "discount_fallback=true", "epochs=1", "max_steps=2", "=", "x",
                "a=", "=1", "hidden==3"]
SUITES = ["quick", "nope", "in/suite.toml", "in/bad.toml", "/dev/zero", "c.txt", "nul.txt", "in/nonexistent.toml"]
GENERAL = NUMBERS + STRINGS + SPECS + PATHS

# Values drawn for an option or argument by its name (the rest draw from GENERAL).
BY_NAME = {
    "spec": SPECS, "out": PATHS, "report_out": PATHS, "resume": PATHS, "arpa_path": PATHS, "model_dir": PATHS,
    "run_dir": PATHS, "run_a": PATHS, "run_b": PATHS, "pairs_file": PATHS, "plugins": PATHS,
    "model_name": MODEL_NAMES, "suite_name": SUITES, "memory": ["1G", "0", "-1", "1K", "nope", "1e30T", "100%"],
    "tokenizer_kind": ["word", "whitespace", "char", "morph", "bpe", "bpe:8", "bpe:-1", "unigram:x", "nope"],
    "distances": ["1,2", "abc", "1000000000", "0", "-1", "1,,2", "", "3"], "prompt": STRINGS,
    "sentences": STRINGS, "group_by": ["attractors", "nope", ""],
}


def _values(name: str, param: click.Parameter, hostile: bool) -> st.SearchStrategy[str]:
    """Values for a parameter: its own pool (choices, numbers or paths by name); in a hostile vector, sometimes
    any value of the pool at all."""
    own: list[str] = list(BY_NAME.get(name, []))
    if isinstance(param.type, click.Choice):
        own += [str(c) for c in param.type.choices]
    if not own and param.type.name in ("integer", "float", "seed", "integer range", "float range"):
        own = NUMBERS
    if not own:
        return st.sampled_from(GENERAL)
    if not hostile:
        return st.sampled_from(own)
    return st.integers(0, 4).flatmap(lambda i: st.sampled_from(GENERAL if i == 0 else own))


def _param_pairs(model: str | None, hostile: bool) -> st.SearchStrategy[str]:
    """A -p KEY=VALUE: the issue's own, or a key of the model (of any model, in a hostile vector) with a value."""
    spec = getattr(MODELS.get(model), "param_spec", {}) if model in MODELS else {}
    keys = sorted(spec) if spec and not hostile else PARAM_KEYS
    return st.one_of(st.sampled_from(ISSUE_PARAMS),
                     st.builds("{}={}".format, st.sampled_from(keys), st.sampled_from(PARAM_VALUES)))


@st.composite
def argument_vectors(draw: st.DrawFn) -> list[str]:
    """An argv for one command: its path, some of its options (flags, valued, repeated), then its arguments.

    Half the vectors are hostile throughout; the other half draw each value from its parameter's own pool (a
    valid or invalid model, path, number …), so that they get past the first check more often and reach deeper.
    """
    path, command = draw(st.sampled_from(COMMANDS))
    hostile = draw(st.booleans())
    arguments: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument):
            count = draw(st.integers(0, 3)) if param.nargs == -1 else 1
            if param.required and draw(st.integers(0, 19)) == 0:
                count = 0  # a missing argument, now and then
            arguments += [draw(_values(param.name or "", param, hostile)) for _ in range(count)]
    model = next((a for a, p in zip(arguments, [p for p in command.params if isinstance(p, click.Argument)])
                  if p.name == "model_name"), None)
    options: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option):
            # An option the command needs is nearly always given; the others one time in three.
            if param.name == "help" or draw(st.integers(0, 19)) >= (19 if param.required else 7):
                continue
            opt = draw(st.sampled_from(param.opts))
            if param.is_flag:
                options.append(opt)
                continue
            for _ in range(draw(st.integers(1, 3)) if param.multiple else 1):
                value = draw(_param_pairs(model, hostile) if param.name == "param_pairs"
                             else _values(param.name or "", param, hostile))
                options += [opt, value]
    argv = [*path, *options, *arguments]
    if hostile and draw(st.integers(0, 14)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(["--bogus", "--json", "-h", "--", "-"])))
    return argv


# --- the inputs every vector may name: built once, copied fresh into each vector's working directory --------------
FAILING_PLUGIN = '''
from lmbench import LanguageModel
from lmbench.errors import LmbenchError


class FuzzFailing(LanguageModel):
    name = "failing"
    description = "fails while training (a fuzz-test model)"

    def fit(self, train, valid=None):
        raise LmbenchError("the failing model failed")

    def logprobs(self, corpus):
        raise LmbenchError("the failing model failed")
'''
SUITE = ('name = "fz"\nseeds = [0]\nmetrics = ["perplexity"]\n[[corpus]]\nspec = "synthetic:grammar?sentences=20"\n'
         '[[model]]\nname = "unigram"\n')
ARPA = ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<s>\t-0.5\n-0.4\t</s>\n-0.3\ta\t-0.2\n\n"
        "\\2-grams:\n-0.1\t<s> a\n\n\\end\\\n")


def _quiet_main(argv: list[str]) -> int:
    """Run the CLI in-process with its output discarded (fixture building); return the exit status."""
    with CliRunner().isolation():
        try:
            main(argv)
        except SystemExit as e:
            return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models, runs, corpora and files, good and bad, that the pool's paths name."""
    d = tmp_path_factory.mktemp("fuzz-inputs")
    tiny = ["-p", "hidden=4", "-p", "emb=4", "-p", "layers=1", "-p", "epochs=1", "-p", "bptt=5", "-p", "batch=2"]
    dep = "synthetic:dependency?sentences=30&max_distance=6"
    for argv in (["train", "rnn", "--corpus", dep, *tiny, "--out", d / "rnn"],
                 ["train", "ngram", "--corpus", dep, "-p", "order=3", "--out", d / "ngram"],
                 ["translate", "train", "nearest", "--pairs", "synthetic:ko-en?train=20&valid=5&test=5", "--out",
                  d / "nearest"],
                 ["probe", "make-pairs", "agreement", "--n", "6", "--out", d / "pairs.jsonl"],
                 ["run", "--no-report", d / "suite.toml", "--out", d / "run"]):
        if argv[0] == "run":
            (d / "suite.toml").write_text(SUITE, encoding="utf-8")
        assert _quiet_main([str(a) for a in argv]) == 0, argv
    shutil.copytree(d / "run", d / "run2")
    shutil.copytree(d / "rnn", d / "tampered")
    meta = json.loads((d / "tampered" / "model.json").read_text(encoding="utf-8"))
    meta["params"] = [1, 2]  # item 7
    (d / "tampered" / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    (d / "ok.arpa").write_text(ARPA, encoding="utf-8")
    (d / "nan.arpa").write_text(ARPA.replace("-0.4", "nan"), encoding="utf-8")  # item 17
    (d / "bad.toml").write_bytes(b'name = "s"\ndescription = "caf\xe9"\n')  # item 10
    (d / "plugin.py").write_text(FAILING_PLUGIN, encoding="utf-8")
    (d / "syntax_error.py").write_text("def (:\n", encoding="utf-8")
    return d


def _prepare(work: Path, inputs: Path) -> None:
    """A fresh working directory: a copy of the inputs, corpora and the awkward files of the issue."""
    shutil.copytree(inputs, work / "in", symlinks=True)
    (work / "c.txt").write_text(TWO_WORDS, encoding="utf-8")
    (work / "corpusdir").mkdir()
    (work / "corpusdir" / "train.txt").write_text(TWO_WORDS, encoding="utf-8")
    (work / "corpusdir" / "test.txt").write_text("a b\nc d\n", encoding="utf-8")
    (work / "pairs.tsv").write_text("나는 간다\tI go\n너는 온다\tyou come\n" * 10, encoding="utf-8")
    (work / "empty.txt").write_bytes(b"")
    (work / "nul.txt").write_bytes(b"a b\n\x00\n")  # item 8
    (work / "badutf8.txt").write_bytes(b"a b\ncaf\xe9\n")
    with open(work / "sparse.txt", "wb") as f:
        f.truncate(1 << 30)  # item 8: 1 GiB of NUL bytes, no disk blocks
    (work / "afile").write_text("a file, not a directory\n", encoding="utf-8")  # item 2: --out afile/m
    os.mkfifo(work / "fifo")
    (work / "link_loop").symlink_to("link_loop")
    (work / "elsewhere").mkdir()
    (work / "dirlink").symlink_to(work / "elsewhere")


def _snapshot(work: Path) -> dict[str, tuple]:
    """What a failed command must not change: every entry's kind, and a file's size and modification time."""
    out: dict[str, tuple] = {}
    for root, dirs, files in os.walk(work):
        for name in dirs + files:
            p = Path(root, name)
            s = p.lstat()
            kind = "dir" if p.is_dir() and not p.is_symlink() else "link" if p.is_symlink() else "file"
            out[str(p.relative_to(work))] = (kind,) if kind == "dir" else (kind, s.st_size, s.st_mtime_ns)
    return out


def _failed_run(manifest: Path) -> bool:
    """True if `manifest` is a suite run's manifest.json that records its failure."""
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("status") == "failed"
    except (OSError, ValueError, AttributeError):
        return False


class Slow(BaseException):
    """A vector ran past its time budget (not a failure: the property holds for vectors that finish)."""


def _alarm(signum: int, frame: object) -> None:
    raise Slow


@contextlib.contextmanager
def budget(seconds: float, extra_bytes: int):
    """Limit a block's wall time (SIGALRM) and the address space it may add (RLIMIT_AS)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm", encoding="ascii") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    limit = used + extra_bytes if hard == resource.RLIM_INFINITY else min(used + extra_bytes, hard)
    previous = signal.signal(signal.SIGALRM, _alarm)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def run_vector(argv: list[str], work: Path) -> tuple[int | None, str, str, list[str]]:
    """Run `lmbench ARGV` in-process in `work` under the budget: (exit status or None if slow, stdout, stderr,
    warnings raised). An exception escaping `main` is re-raised: it would be a traceback."""
    runner = CliRunner()
    code: int | None = 0
    with runner.isolation() as (out, err, _), contextlib.chdir(work), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        try:
            with budget(EXAMPLE_SECONDS, MEMORY_BUDGET):
                main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Slow:
            code = None
        stdout = out.getvalue().decode("utf-8", "replace")
        stderr = err.getvalue().decode("utf-8", "replace") if err is not None else ""
    return code, stdout, stderr, [f"{w.category.__name__}: {w.message}" for w in caught]


STATS: Counter = Counter()
FAILURES: list[dict] = []
_START: list[float] = []


def _check(argv: list[str], work: Path, inputs: Path) -> str | None:
    """Run one vector; return None if the property holds, else what broke."""
    _prepare(work, inputs)
    before = _snapshot(work)
    try:
        code, stdout, stderr, warned = run_vector(argv, work)
    except Exception as e:  # noqa: BLE001 - an exception escaping main is exactly what the test looks for
        return f"an exception escaped main: {type(e).__name__}: {e}"
    STATS["vectors"] += 1
    STATS[f"exit {code}" if code is not None else "slow"] += 1
    if STATS["vectors"] % 100 == 0 and os.environ.get("LMBENCH_FUZZ_LOG"):
        with open(os.environ["LMBENCH_FUZZ_LOG"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"progress": dict(STATS), "failures": len(FAILURES)}) + "\n")
    if code is None:
        return None
    if "Traceback" in stderr or "Traceback" in stdout:
        return f"a traceback (exit {code}): {stderr[-2000:]}"
    if code not in (0, 2):
        return f"exit status {code}: {stderr[-2000:]}"
    if code == 2 and "out of memory" in stderr:  # within the property, but the budget, not an estimate, stopped it
        STATS["out of memory"] += 1
        if os.environ.get("LMBENCH_FUZZ_LOG"):
            with open(os.environ["LMBENCH_FUZZ_LOG"], "a", encoding="utf-8") as f:
                f.write(json.dumps({"note": argv, "stderr": stderr[-300:]}) + "\n")
    if code == 2:
        lines = stderr.strip().splitlines() + warned
        if len(lines) != 1:
            return f"exit 2 with {len(lines)} stderr lines: {lines[:10]}"
        after = _snapshot(work)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        # The one thing a failure may leave: a suite run that started its cells, marked failed (it resumes).
        runs = [k for k in changed if k.endswith("manifest.json") and _failed_run(work / k)]
        kept = [str(Path(r).parent) for r in runs]  # the run directory, what is in it, and its ancestors
        changed = [k for k in changed if not any(k == d or k.startswith(d + "/") or d.startswith(k + "/")
                                                 for d in kept)]
        if changed:
            return f"exit 2 ({lines[0]}) but the working directory changed: {changed[:10]}"
    return None


@pytest.fixture(scope="module")
def fuzz_report():
    """Print the counts at the end (run with -s to see them); in the long profile, log them too."""
    yield
    line = f"fuzz ({PROFILE}): {dict(STATS)}; {len(FAILURES)} failing vectors"
    print("\n" + line)
    if os.environ.get("LMBENCH_FUZZ_LOG"):
        with open(os.environ["LMBENCH_FUZZ_LOG"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"summary": dict(STATS), "failures": len(FAILURES)}) + "\n")


class TimeUp(BaseException):
    """The profile's time budget is spent: the search ends here (not a failure)."""


@SETTINGS
@given(argv=argument_vectors())
def _one_vector(argv: list[str], inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The property of the module docstring, for one vector."""
    if not _START:
        _START.append(time.monotonic())
    budget_seconds = 60 * float(os.environ.get("LMBENCH_FUZZ_MINUTES", "30")) if LONG else CI_SECONDS
    if time.monotonic() - _START[0] > budget_seconds:
        raise TimeUp
    work = tmp_path_factory.mktemp("fuzz", numbered=True)
    try:
        problem = _check(argv, work, inputs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if problem is None:
        return
    if LONG and os.environ.get("LMBENCH_FUZZ_LOG"):
        FAILURES.append({"argv": argv, "problem": problem})
        with open(os.environ["LMBENCH_FUZZ_LOG"], "a", encoding="utf-8") as f:
            f.write(json.dumps(FAILURES[-1]) + "\n")
        return
    pytest.fail(f"lmbench {' '.join(map(repr, argv))}: {problem}")


def test_no_argument_vector_gives_a_traceback_or_leaves_a_trace(inputs, tmp_path_factory, fuzz_report):
    """Every vector the profile has time for keeps the property; the logged ones (long profile) fail at the end."""
    with contextlib.suppress(TimeUp):
        _one_vector(inputs=inputs, tmp_path_factory=tmp_path_factory)
    assert STATS["vectors"] > 0
    assert not FAILURES, f"{len(FAILURES)} failing vectors, logged in {os.environ.get('LMBENCH_FUZZ_LOG')}"


def test_the_checker_catches_a_planted_traceback_and_a_second_line(inputs, tmp_path, monkeypatch):
    """The property is not vacuous: an exception planted in a command, and a command that prints two lines
    before exit 2, are both reported."""
    def crash(*args, **kwargs):
        raise IndexError("planted")
    monkeypatch.setattr("lmbench.cli.core.read_splits", crash)
    (tmp_path / "a").mkdir()
    problem = _check(["corpus", "info", "c.txt"], tmp_path / "a", inputs)
    assert problem is not None and "IndexError: planted" in problem
    monkeypatch.undo()

    def two_lines(*args, **kwargs):
        click.echo("lmbench: a stray line", err=True)
        raise click.UsageError("planted")
    monkeypatch.setattr("lmbench.cli.core.read_splits", two_lines)
    (tmp_path / "b").mkdir()
    problem = _check(["corpus", "info", "c.txt"], tmp_path / "b", inputs)
    assert problem is not None and "2 stderr lines" in problem
