"""The transformer LM: whole-model gradient checks, sliding-window accounting, KV cache, capabilities, bad input."""

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli
from gradcheck import numeric_grad, rel_error

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import checked_logprobs
from lmbench.models.neural import layers
from lmbench.models.neural.optim import scheduled_lr
from lmbench.models.registry import create_model, load_model
from lmbench.models.transformer.lm import kv_of
from lmbench.models.transformer.stack import stack_forward
from lmbench.text.corpus import Corpus
from lmbench.text.vocab import BOS_ID, EOS_ID, Vocabulary

WORDS = "the cat dog sat ran on a mat log and".split()
TINY = {"d_model": 8, "heads": 2, "d_ff": 12, "layers": 2, "context": 6, "dropout": 0.0}


def make_corpus(n_sentences=40, seed=0, vocab=None):
    rng = np.random.default_rng(seed)
    sents = [list(rng.choice(WORDS, size=rng.integers(2, 7))) for _ in range(n_sentences)]
    vocab = vocab or Vocabulary.build(sents)
    return Corpus.encode(sents, vocab, name="toy")


def fitted(params=None, corpus=None):
    corpus = corpus or make_corpus()
    model = create_model("transformer", {**TINY, **(params or {})})
    model.vocab = corpus.vocab
    model.build(len(corpus.vocab))
    for k, w in model.weights.items():  # larger than the 0.02 init, so every path matters
        w += np.random.default_rng(len(k)).normal(0, 0.3, w.shape).astype(w.dtype)
    return model, corpus


@pytest.mark.parametrize("n_layers,tied,norm,positions", [(1, True, "pre", "learned"), (2, False, "post", "learned"),
                                                         (2, True, "pre", "sinusoidal")])
def test_whole_lm_gradients_match_finite_differences(n_layers, tied, norm, positions):
    model, _ = fitted({"layers": n_layers, "tied": tied, "norm": norm, "positions": positions, "dtype": "float64"})
    V = model.vocab_size
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, size=(2, 5))
    y = rng.integers(0, V, size=(2, 5))
    y[y == BOS_ID] = EOS_ID
    loss, grads = model.loss_and_grads(x, y, train=False)
    assert set(grads) == set(model.weights)

    def f():
        return model.loss_and_grads(x, y, train=False)[0]

    for name, w in model.weights.items():
        idx = rng.choice(w.size, size=min(6, w.size), replace=False)
        num = numeric_grad(f, w, indices=idx)
        a = grads[name].ravel()[idx]
        if np.abs(num).max() < 1e-8:  # the key bias: softmax ignores a shift of all scores
            assert np.abs(a).max() < 1e-8, name
            continue
        assert rel_error(a, num) < 1e-6, name


def brute_force_logprobs(model, corpus, context, stride):
    """Each token p is predicted from the window that first covers it, by the definition of the sliding window."""
    bounded = corpus.bounded()
    x, y = bounded[bounded != EOS_ID], corpus.targets()
    n = x.size
    out = np.full(n, np.nan)
    start = 0
    prev_end = 0
    while True:
        s = min(start, n - context)
        for p in range(prev_end, s + context):
            logits, _ = model.forward(x[None, s:p + 1], train=False)
            out[p] = layers.log_softmax(logits[-1:].astype(np.float64))[0, y[p]]
        prev_end = s + context
        if prev_end >= n:
            return out
        start += stride


@pytest.mark.parametrize("stride", [1, 3, 6])
def test_sliding_window_scores_every_token_once_with_its_window(stride):
    model, corpus = fitted({"stride": stride, "eval_batch": 4})
    corpus = corpus.select(np.arange(8))
    lp = checked_logprobs(model, corpus)
    assert lp.shape == (corpus.n_predicted,)
    assert np.allclose(lp, brute_force_logprobs(model, corpus, 6, stride), atol=1e-5)


def test_probabilities_sum_to_one_and_bos_is_never_predicted():
    model, corpus = fitted()
    lp = model.next_logprobs([corpus[0][:2], np.zeros(0, dtype=np.int64)])
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0) and np.all(lp[:, BOS_ID] == -np.inf)
    # next_logprobs agrees with the forward pass over <s> + context
    ctx = corpus[1][:3]
    logits, _ = model.forward(np.concatenate([[BOS_ID], ctx])[None, :])
    ref = layers.log_softmax(logits[-1:].astype(np.float64))[0]
    assert np.allclose(model.next_logprobs([ctx])[0], ref, atol=1e-5)


def test_kv_cache_steps_equal_the_full_forward():
    model, _ = fitted({"dtype": "float64"})
    ids = np.array([BOS_ID, 4, 5, 6, 7, 8])
    h_full, _ = stack_forward(ids[None, :], model.weights, model.spec)
    h, cache = stack_forward(ids[None, :2], model.weights, model.spec)
    pasts = kv_of(cache)
    for pos in range(2, 6):
        h_step, c = stack_forward(ids[None, pos:pos + 1], model.weights, model.spec, offset=pos, pasts=pasts)
        pasts = kv_of(c)
        assert np.allclose(h_step[0, 0], h_full[0, pos], atol=1e-12)


def test_sample_is_the_cached_and_sliding_distribution():
    model, corpus = fitted()
    # Greedy-like sampling at a tiny temperature equals the argmax chain computed without any cache.
    out = model.sample([4], 12, temperature=1e-4, rng=np.random.default_rng(0))
    seq = [BOS_ID, 4]
    for tok in out:
        logits, _ = model.forward(np.asarray(seq[-6:])[None, :])
        row = logits[-1].astype(np.float64)
        assert tok == int(np.argmax(row)), (seq, tok)
        seq.append(BOS_ID if tok == EOS_ID else tok)


def test_attention_weights_and_gradient_flow():
    model, corpus = fitted()
    ids = corpus[0][:4]
    att = model.attention_weights(ids)
    assert len(att) == 2 and att[0].shape == (2, 5, 5)
    assert np.allclose(att[0].sum(-1), 1) and np.all(np.triu(att[1][0], 1) == 0)  # causal
    long_ids = np.tile(corpus[0], 5)[:12]
    g = model.hidden_state_grads(long_ids, 10)
    assert len(g) == 2 and g[0].shape == (11, 8)
    # Positions outside the 6-token window get no gradient; those inside do.
    assert np.all(g[0][:5] == 0) and np.all(np.linalg.norm(g[0][5:], axis=1) > 0)
    # Within the window: the gradient wrt layer-0 input equals finite differences of the loss at t.
    model64, _ = fitted({"dtype": "float64", "tied": False})  # untied: the row feeds the input only
    ids = np.array([4, 5, 6, 7])
    t = 3
    g = model64.hidden_state_grads(ids, t)[0]
    x = np.concatenate([[BOS_ID], ids[:t]])
    E = model64.weights["emb"]
    # Perturb the embedding sum at position 1 through its token row (the token appears once).
    row = E[x[1]]

    def loss():
        logits, _ = model64.forward(x[None, :])
        return -layers.log_softmax(logits[-1:].astype(np.float64))[0, ids[t]]

    assert rel_error(g[1], numeric_grad(loss, row)) < 1e-6


def test_schedule_warmup_and_decay():
    assert scheduled_lr(0, 1.0, 10, 110, "cosine") == pytest.approx(0.1)
    assert scheduled_lr(9, 1.0, 10, 110, "cosine") == pytest.approx(1.0)
    assert scheduled_lr(60, 1.0, 10, 110, "cosine", final=0.0) == pytest.approx(0.5)
    assert scheduled_lr(60, 1.0, 10, 110, "linear", final=0.0) == pytest.approx(0.5)
    assert scheduled_lr(110, 1.0, 10, 110, "cosine", final=0.1) == pytest.approx(0.1)
    assert scheduled_lr(35, 1.0, 10, 110, "linear", final=0.2) == pytest.approx(0.2 + 0.8 * 0.75)


def test_training_lowers_perplexity_and_saves(tmp_path):
    # Each sentence is a run of WORDS from a random start: the next word is determined by the previous one.
    rng = np.random.default_rng(0)
    sents = [[WORDS[(s + i) % 10] for i in range(n)] for s, n in zip(rng.integers(0, 10, 300), rng.integers(2, 6, 300))]
    corpus = Corpus.encode(sents, Vocabulary.build(sents))
    model = create_model("transformer", {**TINY, "epochs": 8, "warmup": 5, "lr": 1e-2, "batch": 8})
    before = create_model("transformer", TINY)
    before.vocab = corpus.vocab
    before.build(len(corpus.vocab))
    model.fit(corpus)
    # Untrained ≈ log 13 nats; a model that learned the successor relation is below 1.3 nats (floor ≈ 0.8).
    assert -checked_logprobs(before, corpus).mean() > 2.4
    assert model.fit_info["history"][-1]["valid_loss"] < 1.3
    model.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert np.array_equal(checked_logprobs(back, corpus), checked_logprobs(model, corpus))


def test_trains_through_the_trainer_and_resumes_mid_epoch_bit_for_bit(tmp_path):
    corpus = make_corpus(60)
    params = {**TINY, "epochs": 2, "batch": 4, "warmup": 3, "lr": 1e-2, "dropout": 0.1}
    straight = create_model("transformer", params).fit(corpus)
    steps = straight.train_state["step"]
    # the schedule ran: AdamW's lr at the end is the cosine's floor lr_final·lr, not the peak
    assert straight.optimizer.lr == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (steps - 4)
                                                                                          / (steps - 3)))))
    part = create_model("transformer", {**params, "max_steps": steps // 2 + 1})
    part.fit(corpus)
    assert part.train_state["batch"] > 0  # stopped inside an epoch
    part.save(tmp_path / "part")
    resumed = load_model(tmp_path / "part")
    resumed.params["max_steps"] = 0
    resumed.fit(corpus)
    for name, w in straight.weights.items():
        assert np.array_equal(w, resumed.weights[name]), name
    assert resumed.train_state["history"] == straight.train_state["history"]


def test_bad_parameters_are_clean_errors():
    with pytest.raises(LmbenchError, match="heads=3 does not divide d_model=8"):
        create_model("transformer", {**TINY, "heads": 3})
    with pytest.raises(LmbenchError, match="context=0"):
        create_model("transformer", {**TINY, "context": 0})
    model, _ = fitted({"slide": False})
    with pytest.raises(LmbenchError, match="slide=false"):
        model.sample([4], 10)
    with pytest.raises(LmbenchError, match="slide=false"):
        model.next_logprobs([np.arange(4, 12)])


@pytest.fixture
def corpus_dir(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("valid", 10), ("test", 10)):
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(2, 7))) for _ in range(n)]
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return d


def test_cli_train_generate_and_errors(tmp_path, corpus_dir):
    out = tmp_path / "m"
    small = [x for k, v in TINY.items() for x in ("-p", f"{k}={v}")]
    r = run_cli("train", "transformer", "--corpus", corpus_dir, "--out", out, *small, "-p", "epochs=1",
                "-p", "slide=false", "--json")
    assert r.returncode == 0, r.stderr
    r = run_cli("generate", out, "--prompt", "the cat", "--tokens", "3", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert_clean_error(run_cli("generate", out, "--prompt", "the cat", "--tokens", "12"), "slide=false")
    assert_clean_error(run_cli("train", "transformer", "--corpus", corpus_dir, "--out", tmp_path / "x",
                               "-p", "heads=3"), "does not divide d_model")
    assert_clean_error(run_cli("train", "transformer", "--corpus", corpus_dir, "--out", tmp_path / "x",
                               "-p", "context=0"), "context=0")
