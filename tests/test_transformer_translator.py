"""The transformer-mt translator: gradients (finite differences and PyTorch), learning, decoding with the
key/value cache, beam ≥ greedy, checkpoints, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli
from gradcheck import numeric_grad, rel_error

from lmbench.errors import LmbenchError
from lmbench.evaluate.bleu import corpus_bleu
from lmbench.models.neural.blas import blas_threads, get_blas_threads
from lmbench.models.neural.layers import log_softmax
from lmbench.models.registry import create_model, load_model
from lmbench.models.seq2seq.pairs import gather_sources, gather_targets, make_batches
from lmbench.text.corpus import Corpus
from lmbench.text.parallel import load_pairs
from lmbench.text.vocab import BOS_ID

SPEC = "synthetic:ko-en?train=400&valid=40&test=60&seed=3"
TINY = {"d_model": 8, "heads": 2, "d_ff": 12, "layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def data():
    return load_pairs(SPEC)


@pytest.fixture(scope="module")
def trained(data):
    """A small model trained for a few epochs (seconds)."""
    model = create_model("transformer-mt", {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 1, "epochs": 6,
                                            "batch": 16, "lr": 1e-2, "warmup": 20, "seed": 1})
    return model.fit(data)


def fresh(data, params):
    m = create_model("transformer-mt", params)
    m.src_vocab, m.vocab, m.tokenizer, m.tgt_tokenizer = (data.src_vocab, data.tgt_vocab, data.src_tokenizer,
                                                          data.tgt_tokenizer)
    m.build(len(data.src_vocab), len(data.tgt_vocab))
    rng = np.random.default_rng(0)
    for w in m.weights.values():
        w += rng.normal(0, 0.3, w.shape).astype(w.dtype)
    return m


def tiny_batch(data, n=3):
    idx = make_batches(data.train.src, n)[5][:n]
    return (gather_sources(data.train.src, idx), *gather_targets(data.train.tgt, idx))


@pytest.mark.parametrize("layers,norm,tied", [(1, "pre", True), (2, "post", False)])
def test_encoder_decoder_gradients_match_finite_differences(data, layers, norm, tied):
    m = fresh(data, {**TINY, "layers": layers, "norm": norm, "tied": tied, "dtype": "float64"})
    src, tgt_in, tgt_out, mask = tiny_batch(data)
    loss, grads = m.loss_and_grads(src, tgt_in, tgt_out, mask, train=False)
    assert set(grads) == set(m.weights)
    rng = np.random.default_rng(1)

    def f():
        return m.loss_and_grads(src, tgt_in, tgt_out, mask, train=False)[0]

    for name, w in m.weights.items():
        if name.endswith("emb"):  # only the rows this batch uses have a gradient
            used = np.unique(src if name.startswith("enc") else np.concatenate([tgt_in.ravel(), tgt_out.ravel()]))
            idx = (used[:, None] * w.shape[1] + np.arange(w.shape[1])).ravel()
            idx = rng.choice(idx, size=6, replace=False)
        else:
            idx = rng.choice(w.size, size=min(5, w.size), replace=False)
        num = numeric_grad(f, w, indices=idx)
        a = grads[name].ravel()[idx]
        if np.abs(num).max() < 1e-8:  # the key bias (softmax ignores a shift of all scores)
            assert np.abs(a).max() < 1e-8, name
            continue
        assert rel_error(a, num) < 1e-6, name


def test_logprobs_and_gradients_match_torch(data):
    torch = pytest.importorskip("torch")
    from test_transformer_torch import torch_stack

    m = fresh(data, {"d_model": 16, "heads": 4, "d_ff": 24, "layers": 2, "dropout": 0.0})
    src, tgt_in, tgt_out, mask = tiny_batch(data, 4)
    loss, grads = m.loss_and_grads(src, tgt_in, tgt_out, mask, train=False)
    W = {k: torch.tensor(v, requires_grad=True) for k, v in m.weights.items()}
    mem = torch_stack(W, "enc.", torch.tensor(src), 2, 4, "pre", W["enc.pos"], causal=False)
    h = torch_stack(W, "dec.", torch.tensor(tgt_in), 2, 4, "pre", W["dec.pos"], causal=True, memory=mem)
    V = W["dec.emb"].shape[0]
    logits = (h @ W["dec.emb"].T + W["out.b"]).reshape(-1, V)
    bos = torch.zeros(V, dtype=torch.bool)
    bos[BOS_ID] = True
    lp = torch.log_softmax(logits.masked_fill(bos, float("-inf")), dim=1)
    tok = lp.gather(1, torch.tensor(tgt_out.reshape(-1, 1)))[:, 0]
    t_loss = -(tok * torch.tensor(mask.reshape(-1), dtype=torch.float32)).sum() / mask.sum()
    t_loss.backward()
    ours = m.target_logprobs(src, tgt_in, tgt_out)
    assert np.abs(ours.ravel() - tok.detach().numpy()).max() < 1e-5
    assert abs(loss - t_loss.item()) < 1e-5
    for k, g in grads.items():
        assert np.abs(g - W[k].grad.numpy()).max() < 1e-4, k


def test_cached_decoder_steps_equal_the_teacher_forced_pass(data):
    m = fresh(data, {**TINY, "layers": 2, "dtype": "float64"})
    src, tgt_in, tgt_out, mask = tiny_batch(data)
    logits, _ = m.forward(src, tgt_in)
    full = log_softmax(logits.astype(np.float64))
    from lmbench.models.transformer.stack import stack_forward

    mem, _ = stack_forward(src, m.weights, m.enc_spec)
    step = m._step_fn(mem)
    empty = np.zeros((src.shape[0], 2, 0, 4))
    state = (empty,) * 4
    for t in range(tgt_in.shape[1]):
        lp, state = step(tgt_in[:, t], state)
        assert np.allclose(lp, full[:, t], atol=1e-10)


def test_training_learns_and_beam_never_scores_below_greedy(data, trained):
    untrained = fresh(data, {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 1})
    lp, counts = trained.score(data.test)
    lp0, _ = untrained.score(data.test)
    # Held-out nats per target token: well below the untrained model and a uniform guess (400 pairs only).
    assert -lp.sum() / counts.sum() < min(-lp0.sum() / counts.sum(), np.log(len(data.tgt_vocab) - 1)) - 1.0
    refs = [data.tgt_vocab.decode(t.tolist()) for t in data.test.tgt]
    greedy = trained.translate_corpus(data.test.src, beam=1)
    bleu0 = corpus_bleu([untrained.vocab.decode(t.tolist()) for t in untrained.translate_corpus(data.test.src).tokens],
                        refs)
    assert corpus_bleu([trained.vocab.decode(t.tolist()) for t in greedy.tokens], refs) > bleu0
    # Greedy scores are the teacher-forced scores of what it emitted.
    finished = np.array([len(t) + 1 == n for t, n in zip(greedy.tokens, greedy.lengths)])
    rescored, _ = trained.score(type(data.test)(data.test.src, Corpus.from_ids(greedy.tokens, trained.vocab)))
    np.testing.assert_allclose(greedy.scores[finished], rescored[finished], rtol=1e-4, atol=1e-3)
    for alpha in (0.0, 0.6):
        hyp = trained.translate_corpus(data.test.src, beam=3, length_norm=alpha)
        assert np.all(hyp.normalized(alpha) >= trained.translate_corpus(data.test.src, beam=1).normalized(alpha)
                      - 1e-9)


def test_save_load_translates_the_same(data, trained, tmp_path):
    trained.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.has("translate") and loaded.src_vocab == data.src_vocab
    lines = ["나 는 사과 를 먹는다", "그 는 잔다"]
    assert loaded.translate(lines, beam=2) == trained.translate(lines, beam=2)


def test_resumes_mid_epoch_bit_for_bit_through_the_trainer(data, tmp_path):
    params = {**TINY, "epochs": 2, "batch": 32, "warmup": 4, "lr": 1e-2, "dropout": 0.1, "seed": 2}
    straight = create_model("transformer-mt", params).fit(data)
    part = create_model("transformer-mt", {**params, "max_steps": straight.train_state["step"] // 2 + 1})
    part.fit(data)
    assert part.train_state["batch"] > 0  # stopped inside an epoch
    part.save(tmp_path / "part")
    resumed = load_model(tmp_path / "part")
    resumed.params["max_steps"] = 0
    resumed.fit(data)
    for name, w in straight.weights.items():
        assert np.array_equal(w, resumed.weights[name]), name
    assert resumed.train_state["history"] == straight.train_state["history"]


@pytest.mark.skipif(get_blas_threads() is None, reason="no OpenBLAS whose thread count can be read")
def test_trains_and_decodes_on_one_blas_thread_whatever_numpys_default(data, monkeypatch):
    model = create_model("transformer-mt", {**TINY, "epochs": 1, "max_steps": 2})
    seen = []
    for method in ("train_batch", "decode_batch"):
        original = getattr(model, method)

        def spy(*args, _original=original):
            seen.append(get_blas_threads())
            return _original(*args)

        monkeypatch.setattr(model, method, spy)
    with blas_threads(2):
        model.fit(data)
        model.translate_corpus(data.test.src)
        assert get_blas_threads() == 2  # restored afterwards
    assert len(seen) > 2 and set(seen) == {1}


def test_bad_input(data):
    with pytest.raises(LmbenchError, match="heads=3 does not divide d_model=8"):
        create_model("transformer-mt", {**TINY, "heads": 3})
    with pytest.raises(LmbenchError, match="context=0"):
        create_model("transformer-mt", {"context": 0})
    with pytest.raises(LmbenchError, match="more than context=5"):
        create_model("transformer-mt", {**TINY, "context": 5}).fit(data)
    with pytest.raises(LmbenchError, match="translator"):
        create_model("transformer-mt", TINY).fit(data.train.src)


@pytest.mark.parametrize("param,message", [("heads=3", "heads=3 does not divide d_model=64"),
                                           ("context=0", "context=0 must be ≥ 1"),
                                           ("context=5", "more than context=5")])
def test_cli_bad_shape_is_one_line_exit_2_and_writes_nothing(tmp_path, param, message):
    out = tmp_path / "mt"
    pairs = "synthetic:ko-en?train=50&valid=5&test=5"
    assert_clean_error(run_cli("translate", "train", "transformer-mt", "--pairs", pairs, "--out", out, "-p", param),
                       message)
    assert not out.exists()
