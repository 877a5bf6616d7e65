"""The recurrent LM: whole-model gradient checks, token accounting, resume bit for bit, NaN handling, bad input."""

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli
from gradcheck import numeric_grad, rel_error

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import evaluate
from lmbench.models.neural.trainer import Checkpoint, Trainer
from lmbench.models.registry import create_model, load_model
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID, Vocabulary

WORDS = "the cat dog sat ran on a mat log and".split()


def make_corpus(n_sentences=60, seed=0, vocab=None, name="toy"):
    rng = np.random.default_rng(seed)
    sents = [list(rng.choice(WORDS, size=rng.integers(2, 7))) for _ in range(n_sentences)]
    vocab = vocab or Vocabulary.build(sents)
    return Corpus.encode(sents, vocab, name=name)


@pytest.mark.parametrize("kind,n_layers,tied", [("rnn", 1, False), ("rnn", 2, True), ("lstm", 1, False),
                                               ("lstm", 2, False), ("gru", 1, True), ("gru", 2, False)])
def test_whole_lm_gradients_match_finite_differences(kind, n_layers, tied):
    model = create_model(kind, {"emb": 4, "hidden": 4, "layers": n_layers, "dropout": 0.0, "tied": tied,
                                "dtype": "float64", "init_range": 0.5, "cell_init": 0.5})
    V = 9
    model.build(V)
    rng = np.random.default_rng(0)
    T, B = 5, 2
    x = rng.integers(0, V, size=(T, B))
    y = rng.integers(0, V, size=(T, B))
    y[y == BOS_ID] = EOS_ID  # <s> is never a target
    state = [tuple(rng.normal(size=(B, 4)) * 0.3 for _ in range(c.n_states)) for c in model.cells]
    loss, grads, _ = model.loss_and_grads(x, y, state, train=False)
    assert set(grads) == set(model.weights)
    for name, w in model.weights.items():
        num = numeric_grad(lambda: model.loss_and_grads(x, y, state, train=False)[0], w)
        assert rel_error(grads[name], num) < 1e-6, name


def test_token_accounting_and_probabilities_sum_to_one():
    train = make_corpus(80)
    model = create_model("lstm", {"emb": 8, "hidden": 8, "layers": 1, "bptt": 5, "batch": 4, "epochs": 1,
                                  "eval_batch": 3, "seed": 1})
    model.fit(train)
    test = make_corpus(17, seed=5, vocab=train.vocab)
    lp = model.logprobs(test)
    assert lp.shape == (test.n_predicted,) and np.all(lp < 0)
    # the harness accepts it, and one run (eval_batch=1) carrying state through every sentence agrees with
    # a step-by-step computation from next_logprobs on the first sentence
    ev = evaluate(model, test)
    assert ev.tokens == test.n_predicted and np.isfinite(ev.perplexity)
    first = test[0]
    contexts = [first[:k] for k in range(len(first) + 1)]
    nl = model.next_logprobs(contexts)
    assert nl.shape == (len(contexts), len(train.vocab))
    assert np.allclose(np.exp(nl).sum(axis=1), 1.0) and np.all(np.isneginf(nl[:, BOS_ID]))
    targets = np.concatenate([first, [EOS_ID]])
    assert np.allclose(nl[np.arange(len(targets)), targets], lp[: len(targets)], atol=1e-5)
    # an evaluation in one run equals the carried-state computation over a longer stream
    model.params["eval_batch"] = 1
    lp1 = model.logprobs(test)
    assert np.allclose(lp1[: len(targets)], lp[: len(targets)], atol=1e-5)
    hs = model.hidden_states(first)
    assert len(hs) == 1 and hs[0].shape == (len(first) + 1, 8)
    t = len(first)
    g = model.hidden_state_grads(first, t)
    assert g[0].shape == (t + 1, 8)
    # top layer at step t: ∂(−log p_t(</s>))/∂h_t = (softmax − onehot(</s>)) W_decᵀ, from next_logprobs
    p = np.exp(nl[t])
    p[EOS_ID] -= 1.0
    assert np.allclose(g[0][t], model.weights["dec.W"] @ p, atol=1e-5)


def _fit(params, train, directory=None):
    model = create_model("lstm", params)
    return Trainer(model, [Checkpoint(directory)] if directory else []).fit(train)


RESUME_PARAMS = {"emb": 6, "hidden": 6, "layers": 2, "bptt": 4, "batch": 3, "dropout": 0.3, "optimizer": "adam",
                 "lr": 0.01, "seed": 7}


def test_resume_is_bit_for_bit(tmp_path):
    train = make_corpus(60)
    straight = _fit({**RESUME_PARAMS, "epochs": 3}, train, tmp_path / "a")
    # stop after one epoch, resume to three
    _fit({**RESUME_PARAMS, "epochs": 1}, train, tmp_path / "b")
    resumed = load_model(tmp_path / "b")
    resumed.params["epochs"] = 3
    resumed.fit(train)
    # stop mid-epoch by max_steps, resume with no limit
    _fit({**RESUME_PARAMS, "epochs": 3, "max_steps": 7}, train, tmp_path / "c")
    mid = load_model(tmp_path / "c")
    assert mid.train_state["batch"] > 0  # really stopped inside an epoch
    mid.params["max_steps"] = 0
    mid.fit(train)
    for other in (resumed, mid):
        assert other.train_state["step"] == straight.train_state["step"]
        for name, w in straight.weights.items():
            assert np.array_equal(w, other.weights[name]), name
        assert [h["valid_loss"] for h in other.train_state["history"]] == \
            [h["valid_loss"] for h in straight.train_state["history"]]
    # the saved final checkpoint scores the same as the model in memory
    again = load_model(tmp_path / "a")
    test = make_corpus(10, seed=3, vocab=train.vocab)
    assert np.array_equal(again.logprobs(test), straight.logprobs(test))


def test_same_seed_same_numbers_and_lr_decay():
    train = make_corpus(60)
    params = {"emb": 6, "hidden": 6, "layers": 1, "bptt": 4, "batch": 3, "epochs": 3, "lr": 50.0, "clip": 5.0}
    a, b = _fit(params, train), _fit(params, train)
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    a.fit(train)  # fitting again starts afresh (only a loaded checkpoint continues its run)
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    hist = a.train_state["history"]
    assert len(hist) == 3
    for prev, cur in zip(hist, hist[1:]):  # lr divided by 4 exactly when validation did not improve
        best = min(h["valid_loss"] for h in hist[: hist.index(cur)])
        expect = prev["lr"] if cur["valid_loss"] < best else prev["lr"] / 4
        assert cur["lr"] == expect


def test_nan_loss_stops_cleanly_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    train = make_corpus(60)
    model = create_model("gru", {"emb": 5, "hidden": 5, "layers": 1, "bptt": 4, "batch": 3, "epochs": 3})
    real_step = model.train_batch

    def step(batch):
        if model.train_state["epoch"] == 1 and model.train_state["batch"] == 2:  # poison the weights in epoch 2
            model.weights["dec.b"][:] = np.nan
        return real_step(batch)

    monkeypatch.setattr(model, "train_batch", step)
    with pytest.raises(LmbenchError, match=r"loss is nan at epoch 2, step \d+.*last good checkpoint"):
        Trainer(model, [Checkpoint(tmp_path / "m")]).fit(train)
    kept = load_model(tmp_path / "m")
    assert kept.train_state["epoch"] == 1 and np.all(np.isfinite(kept.weights["dec.b"]))


def test_bad_parameters_are_clean_errors():
    for params in ({"hidden": 0}, {"emb": -3}, {"layers": 0}, {"bptt": 0}, {"optimizer": "rmsprop"},
                   {"tied": True, "emb": 10, "hidden": 20}, {"dropout": 1.5}):
        with pytest.raises(LmbenchError):
            create_model("lstm", params)
    with pytest.raises(LmbenchError, match="bptt=500 is longer"):
        create_model("rnn", {"bptt": 500, "emb": 4, "hidden": 4}).fit(make_corpus(20))


@pytest.fixture
def corpus_dir(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("valid", 15), ("test", 15)):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(2, 7))) for _ in range(n)]
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return d


SMALL = ["-p", "emb=8", "-p", "hidden=8", "-p", "layers=1", "-p", "bptt=5", "-p", "batch=4"]


def test_cli_train_resume_generate_and_errors(tmp_path, corpus_dir):
    out = tmp_path / "m"
    r = run_cli("train", "lstm", "--corpus", corpus_dir, "--out", out, *SMALL, "-p", "epochs=1", "--json")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "lstm", "--corpus", corpus_dir, "--out", out, "--resume", out, "-p", "epochs=2", "--json")
    assert r.returncode == 0, r.stderr
    straight = tmp_path / "s"
    r = run_cli("train", "lstm", "--corpus", corpus_dir, "--out", straight, *SMALL, "-p", "epochs=2")
    assert r.returncode == 0, r.stderr
    a, b = load_model(out), load_model(straight)
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)

    r = run_cli("generate", out, "--prompt", "the cat", "--tokens", "12", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    import json

    g = json.loads(r.stdout)
    assert len(g["ids"]) == 12 and g["text"].startswith("the cat")
    r2 = run_cli("generate", out, "--prompt", "the cat", "--tokens", "12", "--seed", "3", "--json")
    assert json.loads(r2.stdout)["ids"] == g["ids"]

    # resume errors: another model, another vocabulary, a parameter that may not change
    assert_clean_error(run_cli("train", "gru", "--corpus", corpus_dir, "--out", out, "--resume", out),
                       "holds a lstm model")
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.txt").write_text("completely different words here\nand more of them\n" * 20)
    assert_clean_error(run_cli("train", "lstm", "--corpus", other, "--out", out, "--resume", out),
                       "vocabulary")
    assert_clean_error(run_cli("train", "lstm", "--corpus", corpus_dir, "--out", out, "--resume", out,
                               "-p", "lr=3"), "cannot change -p lr")
    assert_clean_error(run_cli("train", "lstm", "--corpus", corpus_dir, "--out", tmp_path / "x",
                               "-p", "optimizer=rmsprop"), "optimizer")
    assert_clean_error(run_cli("train", "rnn", "--corpus", corpus_dir, "--out", tmp_path / "x",
                               "-p", "hidden=0"), "hidden")
    assert_clean_error(run_cli("train", "gru", "--corpus", corpus_dir, "--out", tmp_path / "x",
                               "-p", "bptt=100000", "--json"), "bptt=100000 is longer")
    assert_clean_error(run_cli("generate", out, "--temperature", "0"), "temperature")
