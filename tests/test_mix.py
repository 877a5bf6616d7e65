"""The `mix` plugin (examples/lmbench-mix), loaded only through its entry point, and plugin error messages."""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pytest

import lmbench
from lmbench.errors import LmbenchError
from lmbench.models import registry


def _installed_mix():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="lmbench.models")}
    if "mix" not in eps:
        pytest.skip("the example plugin is not installed (pip install -e examples/lmbench-mix)")
    return eps["mix"]


@pytest.fixture
def mix_module():
    _installed_mix()
    return pytest.importorskip("lmbench_mix")


@pytest.fixture(scope="module")
def grammar():
    return lmbench.load_corpus("synthetic:grammar?sentences=300")


def test_mix_comes_from_the_entry_point_not_a_builtin(mix_module):
    ep = _installed_mix()
    assert ep.value == "lmbench_mix:Mix"
    assert not registry.MODELS.is_builtin("mix")
    cls = lmbench.get_model_class("mix")
    assert cls is mix_module.Mix
    assert issubclass(cls, lmbench.LanguageModel)
    assert "mix" in lmbench.model_names()


def test_em_weights_match_a_hand_computation(mix_module):
    # Two tokens; model A gives them 0.6 and 0.2, model B 0.2 and 0.4. The held-out log-likelihood
    # log(0.2 + 0.4λ) + log(0.4 − 0.2λ) has derivative 0.4/(0.2+0.4λ) − 0.2/(0.4−0.2λ) = 0 at λ = 0.75.
    L = np.log([[0.6, 0.2], [0.2, 0.4]])
    weights, history = mix_module.em_weights(L, iterations=2000, tol=0)
    np.testing.assert_allclose(weights, [0.75, 0.25], atol=1e-6)
    assert np.all(np.diff(history) >= -1e-12)  # EM never lowers the likelihood
    # One EM step from (1/2, 1/2), by hand: r_A = (0.3/0.4, 0.1/0.3) → λ_A = (0.75 + 1/3)/2.
    one, _ = mix_module.em_weights(L, iterations=1, tol=0)
    assert one[0] == pytest.approx((0.75 + 1 / 3) / 2, abs=1e-12)


def test_em_ignores_tokens_no_component_can_explain(mix_module):
    with np.errstate(divide="ignore"):
        L = np.log([[0.6, 0.2, 0.0], [0.2, 0.4, 0.0]])
        weights, _ = mix_module.em_weights(L, iterations=2000, tol=0)
    np.testing.assert_allclose(weights, [0.75, 0.25], atol=1e-6)


def test_mixture_logprobs_equal_the_weighted_sum_of_components(mix_module, grammar):
    result = lmbench.train("mix", grammar, {"components": "uniform + unigram"})
    mix = result.model
    w = mix.weights
    assert w.shape == (2,) and w.sum() == pytest.approx(1.0) and np.all(w > 0)
    uniform = lmbench.train("uniform", grammar).model
    unigram = lmbench.train("unigram", grammar).model
    test = grammar.test
    with np.errstate(divide="ignore"):
        expected = np.log(w[0] * np.exp(uniform.logprobs(test)) + w[1] * np.exp(unigram.logprobs(test)))
    np.testing.assert_allclose(mix.logprobs(test), expected, rtol=1e-12)
    # EM maximises validation likelihood over a set that contains either model alone (λ = 1, 0).
    ppl = {m.name: lmbench.evaluate(m, grammar.valid).perplexity for m in (mix, uniform, unigram)}
    assert ppl["mix"] <= min(ppl["uniform"], ppl["unigram"])
    assert math.isfinite(lmbench.evaluate(mix, test).perplexity)  # the uniform part covers unseen words


def test_mix_holds_out_training_text_when_there_is_no_valid_split(mix_module, grammar):
    model = lmbench.create_model("mix", {"components": "uniform + unigram", "heldout": 0.2})
    model.fit(grammar.train, None)
    assert "held out" in model.fit_info["weights_fitted_on"]
    assert model.weights.sum() == pytest.approx(1.0)


def test_mix_checkpoint_round_trip(mix_module, grammar, tmp_path):
    mix = lmbench.train("mix", grammar, {"components": "uniform + unigram"}).model
    mix.save(tmp_path / "m")
    loaded = lmbench.load_language_model(tmp_path / "m")
    assert type(loaded) is mix_module.Mix
    np.testing.assert_array_equal(loaded.weights, mix.weights)
    np.testing.assert_array_equal(loaded.logprobs(grammar.test), mix.logprobs(grammar.test))


def test_mix_of_saved_models_by_path(mix_module, grammar, tmp_path):
    for name in ("uniform", "unigram"):
        lmbench.train(name, grammar).model.save(tmp_path / name)
    paths = f"{tmp_path / 'uniform'} + {tmp_path / 'unigram'}"
    mix = lmbench.train("mix", grammar, {"paths": paths}).model
    assert [c.name for c in mix.components] == ["uniform", "unigram"]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"components": "unigram"}, "at least two components"),
    ({"components": "unigram + lstm(hidden)"}, "not key=value"),
    ({"components": "unigram + 3gram!"}, "is not of the form"),
    ({"components": "unigram + nosuchmodel"}, "unknown model 'nosuchmodel'"),
])
def test_mix_bad_components(mix_module, grammar, params, fragment):
    with pytest.raises(LmbenchError, match=fragment):
        lmbench.train("mix", grammar, params)


# --- plugin errors name the plugin and the problem (the registry's job) --------------------------------------


def _fake_entry_point(monkeypatch, name, value):
    ep = importlib.metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.MODELS, "entry_points", lambda: {name: ep})


def test_plugin_import_failure_names_the_plugin(monkeypatch):
    _fake_entry_point(monkeypatch, "broken", "no_such_module_for_lmbench:Model")
    with pytest.raises(LmbenchError) as e:
        lmbench.get_model_class("broken")
    message = str(e.value)
    assert "plugin 'broken'" in message and "failed to import" in message and "no_such_module_for_lmbench" in message


def test_plugin_missing_method_names_the_plugin_and_the_method(monkeypatch, tmp_path):
    (tmp_path / "halfmodel.py").write_text(
        "from lmbench import LanguageModel\n"
        "class Half(LanguageModel):\n"
        "    name = 'half'\n"
        "    def fit(self, train, valid=None):\n"
        "        return self\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_point(monkeypatch, "half", "halfmodel:Half")
    with pytest.raises(LmbenchError) as e:
        lmbench.get_model_class("half")
    assert "plugin 'half'" in str(e.value) and "does not implement logprobs" in str(e.value)


def test_plugin_that_is_not_a_model_class(monkeypatch):
    _fake_entry_point(monkeypatch, "notamodel", "math:sqrt")
    with pytest.raises(LmbenchError, match="plugin 'notamodel'.*not a subclass of lmbench.Model"):
        lmbench.get_model_class("notamodel")


def test_mix_runs_in_a_suite_like_any_model(mix_module, tmp_path):
    from lmbench.bench.runner import run_suite
    from lmbench.bench.suite import parse_suite

    suite = parse_suite("""
        name = "mixsuite"
        metrics = ["perplexity"]
        [[corpus]]
        spec = "synthetic:grammar?sentences=200"
        [[model]]
        name = "uniform"
        [[model]]
        name = "mix"
        params = { components = "uniform + unigram" }
    """, "mix.toml")
    run_suite(suite, tmp_path / "run", progress=False)
    import pandas as pd

    results = pd.read_csv(tmp_path / "run" / "results.csv")
    ppl = results[(results.quantity == "perplexity") & (results.group == "valid")].set_index("config")["value"]
    assert ppl["mix"] <= ppl["uniform"]
