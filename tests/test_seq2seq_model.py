"""The seq2seq translator: gradients, learning, decoding, checkpoints and resume, on tiny synthetic pairs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gradcheck import numeric_grad, rel_error

from lmbench.evaluate.bleu import corpus_bleu
from lmbench.models.registry import create_model, load_model
from lmbench.models.seq2seq.decode import beam_search, greedy_search
from lmbench.models.seq2seq.model import Seq2Seq
from lmbench.models.seq2seq.pairs import gather_sources, gather_targets, make_batches
from lmbench.text.parallel import load_pairs

SPEC = "synthetic:ko-en?train=400&valid=40&test=60&seed=3"


@pytest.fixture(scope="module")
def data():
    return load_pairs(SPEC)


@pytest.fixture(scope="module")
def trained(data):
    """A small attention model trained for a few epochs (seconds)."""
    model = Seq2Seq(hidden=32, src_emb=16, tgt_emb=16, epochs=6, batch=16, lr=0.01, dropout=0.0, seed=1)
    return model.fit(data)


def tiny_batch(data, n=3):
    idx = make_batches(data.train.src, n)[5][:n]
    src = gather_sources(data.train.src, idx)
    return (src, *gather_targets(data.train.tgt, idx))


# --- gradients ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cell", "attention", "encoder", "layers"), [
    ("lstm", None, "forward", 1),
    ("lstm", "dot", "bidirectional", 2),
    ("lstm", "general", "reversed", 1),
    ("lstm", "additive", "bidirectional", 1),
    ("gru", "general", "bidirectional", 2),
    ("rnn", "additive", "forward", 1),
    ("gru", None, "reversed", 2),
])
def test_encoder_decoder_gradients_match_finite_differences(data, cell, attention, encoder, layers):
    model = Seq2Seq(cell=cell, attention=attention, encoder=encoder, layers=layers, hidden=5, src_emb=4,
                    tgt_emb=3, attn_size=4, dropout=0.0, dtype="float64", seed=2)
    model.build(len(data.src_vocab), len(data.tgt_vocab))
    rng = np.random.default_rng(0)
    for v in model.weights.values():  # weights larger than at initialisation: gradients well above round-off
        v[...] = rng.normal(0.0, 0.5, v.shape)
    batch = tiny_batch(data)
    _, grads = model.loss_and_grads(*batch, train=False)
    assert set(grads) == set(model.weights)
    eps = 1e-4
    for name, w in model.weights.items():
        flat, g = w.reshape(-1), grads[name].reshape(-1)
        # Embedding rows of words absent from the batch have zero gradient: check the rows that are used.
        candidates = np.flatnonzero(g) if name.endswith("emb") else np.arange(flat.size)
        picks = rng.choice(candidates, min(candidates.size, 12), replace=False)
        numeric = numeric_grad(lambda: model.loss_and_grads(*batch, train=False)[0], w, eps, picks)
        rel = rel_error(g[picks], numeric)
        assert rel < 1e-6, (name, rel)


# --- learning and decoding ---------------------------------------------------------------------------------
def test_a_few_epochs_beat_the_untrained_model(data, trained):
    untrained = Seq2Seq(hidden=32, src_emb=16, tgt_emb=16, seed=1)
    untrained.src_vocab, untrained.vocab, untrained.tokenizer = data.src_vocab, data.tgt_vocab, data.src_tokenizer
    untrained.build(len(data.src_vocab), len(data.tgt_vocab))
    lp_trained, counts = trained.score(data.test)
    lp_untrained, _ = untrained.score(data.test)
    # Held-out target log-likelihood: better than the untrained model and than a uniform guess.
    assert lp_trained.sum() > lp_untrained.sum() + 0.5 * counts.sum()
    assert -lp_trained.sum() / counts.sum() < np.log(len(data.tgt_vocab) - 1) - 1.0
    refs = [data.tgt_vocab.decode(t.tolist()) for t in data.test.tgt]
    bleu = {name: corpus_bleu([m.vocab.decode(t.tolist()) for t in m.translate_corpus(data.test.src).tokens], refs)
            for name, m in (("trained", trained), ("untrained", untrained))}
    assert bleu["trained"] > bleu["untrained"]


def test_greedy_scores_are_the_teacher_forced_scores(data, trained):
    hyp = trained.translate_corpus(data.test.src, beam=1)
    rescored = trained.score_tokens(data.test.src, hyp.tokens)
    finished = np.array([len(t) + 1 == n for t, n in zip(hyp.tokens, hyp.lengths)])
    np.testing.assert_allclose(hyp.scores[finished], rescored[finished], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_beam_search_never_scores_below_greedy(data, trained, alpha):
    greedy = trained.translate_corpus(data.test.src, beam=1)
    for beam in (2, 5):
        hyp = trained.translate_corpus(data.test.src, beam=beam, length_norm=alpha)
        assert np.all(hyp.normalized(alpha) >= greedy.normalized(alpha) - 1e-9)
        # The beam's reported scores are the model's own (teacher-forced) scores of what it returned.
        finished = np.array([len(t) + 1 == n for t, n in zip(hyp.tokens, hyp.lengths)])
        rescored = trained.score_tokens(data.test.src, hyp.tokens)
        np.testing.assert_allclose(hyp.scores[finished], rescored[finished], rtol=1e-4, atol=1e-3)


def test_beam_search_finds_the_best_sequence_of_a_known_model():
    """A 2-step toy model where greedy is wrong: the exact best of 3×3 sequences is found by beam 3."""
    V, eos = 4, 2
    # step 1 from <s>: token 0 (p .5) or 3 (p .4); after 0 everything is flat, after 3 </s> is certain.
    first = np.log(np.array([0.5, 1e-9, 0.1 - 1e-9, 0.4]))
    after0 = np.log(np.full(V, 0.25))
    after3 = np.log(np.array([1e-9, 1e-9, 1 - 3e-9, 1e-9]))

    def step(tokens, state):
        (t,) = state
        lp = np.where(t[:, None] == 0, first, np.where(tokens[:, None] == 0, after0, after3))
        return lp, (t + 1,)

    state = (np.zeros(1, dtype=np.int64),)
    greedy = greedy_search(step, state, 1, 1, eos, max_len=2)
    assert greedy.tokens[0].tolist() == [0, 0]
    best = beam_search(step, state, 1, 3, 1, eos, max_len=2, alpha=0.0)
    assert best.tokens[0].tolist() == [3] and best.scores[0] == pytest.approx(np.log(0.4) + np.log(1 - 3e-9))


# --- persistence --------------------------------------------------------------------------------------------
def test_save_load_round_trip_translates_the_same(data, trained, tmp_path):
    trained.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.has("translate") and (tmp_path / "m" / "src_vocab.txt").is_file()
    assert loaded.src_vocab == data.src_vocab and loaded.vocab == data.tgt_vocab
    a = trained.translate_corpus(data.test.src, beam=3)
    b = loaded.translate_corpus(data.test.src, beam=3)
    assert all(np.array_equal(x, y) for x, y in zip(a.tokens, b.tokens))
    lines = ["나 는 사과 를 먹는다", "그 는 잔다"]
    assert loaded.translate(lines) == trained.translate(lines)


def test_resume_continues_bit_for_bit(data, tmp_path):
    kw = dict(hidden=8, src_emb=8, tgt_emb=8, epochs=2, batch=32, dropout=0.2, teacher_forcing=0.7, seed=4)
    straight = Seq2Seq(**kw).fit(data)
    first = Seq2Seq(**{**kw, "epochs": 1}).fit(data)
    first.save(tmp_path / "ckpt")
    resumed = load_model(tmp_path / "ckpt")
    resumed.params["epochs"] = 2
    resumed.fit(data)
    for k, v in straight.weights.items():
        np.testing.assert_array_equal(v, resumed.weights[k], err_msg=k)
    assert straight.train_state["history"] == resumed.train_state["history"]


def test_registered_and_validated():
    model = create_model("seq2seq", {"attention": "none", "cell": "gru"})
    assert model.params["attention"] is None and "translate" in model.capabilities
    from lmbench.errors import LmbenchError

    with pytest.raises(LmbenchError, match="attention"):
        create_model("seq2seq", {"attention": "cosine"})


# --- CLI ------------------------------------------------------------------------------------------------
def test_cli_train_eval_text_and_resume(tmp_path):
    spec = "synthetic:ko-en?train=120&valid=10&test=20"
    out = tmp_path / "m"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "lmbench", *args], capture_output=True, text=True, timeout=300)

    r = run("translate", "train", "--pairs", spec, "--out", str(out), "-p", "hidden=16", "-p", "epochs=1", "--json")
    assert r.returncode == 0, r.stderr
    r = run("translate", "train", "--pairs", spec, "--out", str(out), "--resume", str(out), "-p", "epochs=2",
            "--json")
    assert r.returncode == 0, r.stderr
    import json

    assert json.loads(r.stdout)["epochs"] == 2
    r = run("translate", "train", "--pairs", spec, "--out", str(out), "--resume", str(out), "-p", "hidden=32")
    assert r.returncode == 2 and "only epochs, max_steps may change" in r.stderr
    r = run("translate", "eval", str(out), "--pairs", spec, "--beam", "2", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert {"bleu", "exact_match", "bleu_by_length", "target_perplexity"} <= set(result)
    assert sum(row["sentences"] for row in result["bleu_by_length"]) == 20
    r = run("translate", "text", str(out), "나 는 사과 를 먹는다", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["translations"]) == 1
    r = run("eval", str(out), "--corpus", "synthetic:grammar?sentences=50")
    assert r.returncode == 2 and "not a language model" in r.stderr and r.stderr.count("\n") == 1
    r = run("train", "seq2seq", "--corpus", "synthetic:grammar?sentences=50", "--out", str(tmp_path / "lm"))
    assert r.returncode == 2 and "translate train" in r.stderr and r.stderr.count("\n") == 1


def test_nan_loss_stops_with_a_clear_error(data, monkeypatch):
    from lmbench.errors import LmbenchError

    model = Seq2Seq(hidden=8, src_emb=8, tgt_emb=8, epochs=1)
    monkeypatch.setattr(model, "_objective", lambda *a, **k: (float("nan"), float("nan"), {}))
    with pytest.raises(LmbenchError, match="diverged: loss is nan at epoch 1, step 1"):
        model.fit(data)
