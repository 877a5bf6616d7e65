"""Suites: TOML parsing, grid expansion, cell identities, and clear errors for bad suites."""

from __future__ import annotations

import textwrap

import pytest
from conftest import assert_clean_error, run_cli

from lmbench.bench import metrics as metrics_mod
from lmbench.bench.metrics import Metric, MetricOutput, get_metric
from lmbench.bench.suite import builtin_suites, expand_grid, load_suite, parse_suite
from lmbench.errors import LmbenchError

BASE = """
name = "t"
seeds = [0, 1]
metrics = ["perplexity"]
[[corpus]]
spec = "synthetic:grammar?sentences=100"
"""


def suite(extra: str):
    return parse_suite(BASE + textwrap.dedent(extra), "t.toml")


def test_grid_expansion_is_the_cartesian_product_in_file_order():
    grid = expand_grid({"a": [1, 2], "b": "x", "c": [True, False]})
    assert grid == [{"a": 1, "b": "x", "c": True}, {"a": 1, "b": "x", "c": False},
                    {"a": 2, "b": "x", "c": True}, {"a": 2, "b": "x", "c": False}]
    assert expand_grid({}) == [{}]


def test_model_grid_becomes_labelled_configurations_and_cells():
    s = parse_suite(textwrap.dedent("""
        name = "grid"
        seeds = [3, 4]
        metrics = ["perplexity", "speed"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=100"
        [[corpus]]
        spec = "synthetic:grammar?sentences=120&seed=1"
        label = "other"
        [[model]]
        name = "uniform"
        [[model]]
        name = "unigram"
    """), "grid.toml")
    assert [m.label for m in s.models] == ["uniform", "unigram"]
    cells = s.cells()
    assert len(cells) == 2 * 2 * 2  # corpora × models × seeds
    assert [(c.corpus.label, c.config, c.seed) for c in cells[:4]] == [
        ("synthetic-grammar", "uniform", 3), ("synthetic-grammar", "uniform", 4),
        ("synthetic-grammar", "unigram", 3), ("synthetic-grammar", "unigram", 4)]
    assert cells[4].corpus.label == "other"
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids)
    assert all("/" not in i and " " not in i for i in ids)
    # The identity depends on what defines the cell, not on the object: parsing again gives the same ids.
    assert [c.id for c in parse_suite(s.text, "again.toml").cells()] == ids
    assert s.name == "grid"


def test_grid_parameters_are_checked_against_the_model():
    with pytest.raises(LmbenchError, match=r"t.toml: \[\[model\]\] #1 \(unigram\).*unknown parameter\(s\) order"):
        suite("""
            [[model]]
            name = "unigram"
            params = { order = [1, 2] }
        """)


def test_grid_labels_name_the_varying_values():
    from lmbench.models.base import LanguageModel, Param
    from lmbench.models.registry import MODELS

    class Toy(LanguageModel):
        name = "toy_grid"
        param_spec = {"k": Param(1.0, "k", low=0.0, low_open=True), "n": Param(2, "n", low=1)}

        def fit(self, train, valid=None):
            return self

        def logprobs(self, corpus):
            raise NotImplementedError

    MODELS.register("toy_grid", Toy)
    try:
        s = suite("""
            [[model]]
            name = "toy_grid"
            params = { k = [0.5, 1.5], n = 3 }
        """)
        assert [m.label for m in s.models] == ["toy_grid k=0.5", "toy_grid k=1.5"]
        assert [m.param_dict for m in s.models] == [{"k": 0.5, "n": 3}, {"k": 1.5, "n": 3}]
        with pytest.raises(LmbenchError, match=r"parameter k=-1.0 must be >"):
            suite("""
                [[model]]
                name = "toy_grid"
                params = { k = [1.0, -1.0] }
            """)
    finally:
        MODELS.unregister("toy_grid")


@pytest.mark.parametrize(("extra", "fragments"), [
    ("[[model]]\nname = \"nosuch\"\n", ["unknown model 'nosuch'", "known models:", "unigram", "uniform"]),
    ("[[model]]\nname = \"uniform\"\nparams = 3\n", ["params must be a table"]),
    ("[[model]]\nname = \"uniform\"\ncolour = 1\n", ["unknown key(s) colour in [[model]] #1", "allowed:"]),
    ("[[model]]\nlabel = \"x\"\n", ["needs name ="]),
    ("[[model]]\nname = \"uniform\"\n[[model]]\nname = \"uniform\"\n", ["labels repeat: uniform"]),
    ("[[model]]\nname = \"uniform\"\nfrobnicate = true\n", ["unknown key(s) frobnicate in [[model]] #1"]),
    ("", ["no [[model]] entries"]),
])
def test_bad_suites_say_what_is_wrong(extra, fragments):
    with pytest.raises(LmbenchError) as e:
        suite(extra)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_unknown_top_level_key():
    with pytest.raises(LmbenchError, match=r"unknown key\(s\) frobnicate in top level"):
        parse_suite('frobnicate = true\n[[model]]\nname = "uniform"\n', "f.toml")


def test_per_corpus_models_and_metrics():
    s = suite("""
        [[corpus]]
        spec = "synthetic:grammar?sentences=50"
        label = "small"
        models = ["unigram"]
        metrics = ["perplexity"]
        [[model]]
        name = "uniform"
        [[model]]
        name = "unigram"
    """)
    cells = [(c.corpus.label, c.config) for c in s.cells() if c.seed == 0]
    assert cells == [("synthetic-grammar", "uniform"), ("synthetic-grammar", "unigram"), ("small", "unigram")]
    with pytest.raises(LmbenchError, match="lists model\\(s\\) lstm that the suite does not define"):
        suite('[[corpus]]\nspec = "x.txt"\nmodels = ["lstm"]\n[[model]]\nname = "uniform"\n')
    with pytest.raises(LmbenchError, match="asks for metric 'speed'; list it in the suite's metrics too"):
        suite('[[corpus]]\nspec = "x.txt"\nmetrics = ["speed"]\n[[model]]\nname = "uniform"\n')


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(LmbenchError) as e:
        parse_suite('metrics = ["perplexity", "happiness"]\n[[model]]\nname = "uniform"\n', "m.toml")
    message = str(e.value)
    assert "m.toml" in message and "unknown metric 'happiness'" in message
    for name in ("perplexity", "speed", "learning_curve"):
        assert name in message


def test_malformed_toml_says_where():
    with pytest.raises(LmbenchError) as e:
        parse_suite('name = "x"\nseeds = [0\nmetrics = 3\n', "bad.toml")
    message = str(e.value)
    assert message.startswith("bad.toml: malformed TOML")
    assert "line 3" in message and "column" in message


def test_seeds_must_be_distinct_non_negative_integers():
    for seeds in ("[]", "[-1]", "[0, 0]", "[1.5]", '"0"'):
        with pytest.raises(LmbenchError, match="seeds"):
            parse_suite(f"seeds = {seeds}\n[[model]]\nname = \"uniform\"\n", "s.toml")


@pytest.fixture
def register_metric():
    """Register test metrics for one test only."""
    added = []

    def add(m):
        metrics_mod.METRICS.register(m.name, m)
        added.append(m.name)

    yield add
    for name in added:
        metrics_mod.METRICS.unregister(name)


def test_a_missing_optional_metric_is_an_explicit_error(register_metric):
    fake = Metric("needs_missing", lambda ctx: MetricOutput("needs_missing"), "test metric",
                  requires="lmbench.no_such_optional_module")
    register_metric(fake)
    with pytest.raises(LmbenchError) as e:
        parse_suite('metrics = ["perplexity", "needs_missing"]\n[[model]]\nname = "uniform"\n', "o.toml")
    message = str(e.value)
    assert "metric 'needs_missing' needs lmbench.no_such_optional_module" in message
    assert "not available" in message


def test_a_metric_for_translators_in_a_suite_without_one_is_named(register_metric):
    fake = Metric("tr_only", lambda ctx: MetricOutput("tr_only"), "test metric", kinds=("translator",))
    register_metric(fake)
    with pytest.raises(LmbenchError, match="metric 'tr_only' measures translator models, and the suite has none"):
        parse_suite('metrics = ["tr_only"]\n[[model]]\nname = "uniform"\n', "k.toml")


def test_metric_options_are_checked(register_metric):
    with pytest.raises(LmbenchError, match="metric_options.speed given, but the suite does not ask"):
        suite('[[model]]\nname = "uniform"\n[metric_options.speed]\nx = 1\n')
    fake = Metric("opt", lambda ctx: MetricOutput("opt"), "test metric", options={"distances": [1, 2]})
    register_metric(fake)
    s = parse_suite('metrics = ["opt"]\n[[corpus]]\nspec = "x.txt"\n[[model]]\nname = "uniform"\n'
                    '[metric_options.opt]\ndistances = [4]\n', "o")
    assert s.cells()[0].metric_options == (("opt", '{"distances": [4]}'),)
    with pytest.raises(LmbenchError, match="unknown option\\(s\\) lags; allowed: distances"):
        parse_suite('metrics = ["opt"]\n[[model]]\nname = "uniform"\n[metric_options.opt]\nlags = [4]\n', "o")


def test_corpus_entries_are_checked():
    with pytest.raises(LmbenchError, match="exactly one of spec"):
        parse_suite('[[corpus]]\nlabel = "x"\n[[model]]\nname = "uniform"\n', "c.toml")
    with pytest.raises(LmbenchError, match="unknown tokenizer 'wordpiece'"):
        parse_suite('[[corpus]]\nspec = "x.txt"\ntokenizer = "wordpiece"\n[[model]]\nname = "uniform"\n', "c.toml")
    with pytest.raises(LmbenchError, match="give the subword vocabulary size"):
        parse_suite('[[corpus]]\nspec = "x.txt"\ntokenizer = "bpe"\n[[model]]\nname = "uniform"\n', "c.toml")


def test_unknown_suite_lists_the_builtins():
    with pytest.raises(LmbenchError) as e:
        load_suite("no-such-suite")
    assert "unknown suite 'no-such-suite'" in str(e.value)
    for name in builtin_suites():
        assert name in str(e.value)
    assert {"quick", "standard", "paper"} <= set(builtin_suites())


def test_builtin_suites_parse_and_standard_needs_a_corpus():
    quick = load_suite("quick")
    assert quick.cells()
    with pytest.raises(LmbenchError, match="give it with --corpus SPEC"):
        load_suite("standard")
    standard = load_suite("standard", corpus="synthetic:grammar?sentences=100")
    assert {c.corpus.spec for c in standard.cells()} >= {"synthetic:grammar?sentences=100"}
    paper = load_suite("paper", corpus="/data/ptb")
    assert {m.name for m in paper.models} >= {"lstm", "ngram"}


def test_every_registered_metric_is_listed_and_callable():
    names = metrics_mod.metric_names()
    assert {"perplexity", "speed", "learning_curve"} <= set(names)
    for name in names:
        assert callable(get_metric(name).fn)


def test_cli_errors_are_one_line_exit_2(tmp_path):
    assert_clean_error(run_cli("run", "no-such-suite"), "unknown suite 'no-such-suite'", "quick")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[model]\nname = "uniform"\n')
    assert_clean_error(run_cli("run", bad), "bad.toml: malformed TOML", "line 2")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('metrics = ["perplexity", "vibes"]\n[[model]]\nname = "uniform"\n')
    assert_clean_error(run_cli("run", unknown), "unknown metric 'vibes'", "perplexity")
    nomodel = tmp_path / "nomodel.toml"
    nomodel.write_text('[[corpus]]\nspec="synthetic:grammar"\n[[model]]\nname = "gpt9"\n')
    assert_clean_error(run_cli("run", nomodel), "unknown model 'gpt9'", "uniform")
