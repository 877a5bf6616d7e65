"""The Transformer beside the recurrent models: gradient flow by lag, the attention map, the parallelism metric."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from gradcheck import numeric_grad

from lmbench.bench.metrics import CellContext, run_metric
from lmbench.evaluate.attention import closer_attention
from lmbench.evaluate.gradflow import lag_profile, sample_windows
from lmbench.evaluate.probes import distance_items, distance_probe
from lmbench.models.neural import layers
from lmbench.models.registry import create_model
from lmbench.report.figures import RunData, attention_map_figure, parallelism_figure, parallelism_table
from lmbench.text.corpus import Corpus
from lmbench.text.synthetic.dependency import process_from_spec
from lmbench.text.vocab import BOS_ID, Vocabulary

WORDS = "the cat dog sat ran on a mat log and".split()
TINY = {"d_model": 8, "heads": 2, "d_ff": 12, "layers": 2, "context": 6, "dropout": 0.0}
DEP = "synthetic:dependency?sentences=200&max_distance=12"


def corpus_of(n=60, seed=0, vocab=None):
    rng = np.random.default_rng(seed)
    sents = [list(rng.choice(WORDS, size=rng.integers(2, 7))) for _ in range(n)]
    return Corpus.encode(sents, vocab or Vocabulary.build(sents), name="toy")


def perturbed(params, vocab, scale=0.3):
    """A built model whose weights are far from the small init, so every path carries gradient."""
    model = create_model("transformer", {**TINY, **params})
    model.vocab = vocab
    model.build(len(vocab))
    for k, w in model.weights.items():
        w += np.random.default_rng(len(k)).normal(0, scale, w.shape).astype(w.dtype)
    return model


@pytest.mark.parametrize("n_layers,norm", [(1, "pre"), (2, "post")])
def test_lag_profile_equals_finite_differences_through_the_position_rows(n_layers, norm):
    corpus = corpus_of()
    model = perturbed({"dtype": "float64", "layers": n_layers, "norm": norm}, corpus.vocab)
    max_lag, C = 8, TINY["context"]
    profile = lag_profile(model, corpus, max_lag=max_lag, positions=1, seed=3)["layers"][0]
    # The same window the profile drew; the loss at its last step reads the last C inputs.
    w = sample_windows(corpus, max_lag + 1, 1, seed=3)[0]
    x = np.concatenate([[BOS_ID], w[: max_lag + 1]])[-C:]
    target = w[max_lag + 1]
    P = model.weights["pos"]  # x_p = E[w_p] + P[p]: P's row p feeds position p alone, so ∂L/∂P[p] = ∂L/∂x_p

    def loss():
        logits, _ = model.forward(x[None, :])
        return -layers.log_softmax(logits[-1:].astype(np.float64))[0, target]

    for p in range(C):
        lag = C - 1 - p
        fd = np.linalg.norm(numeric_grad(loss, P[p]))
        assert abs(profile[lag] - fd) <= 1e-6 * max(fd, 1e-12), (lag, profile[lag], fd)
    # Beyond the window nothing reaches the loss: the profile is exactly 0 and the inputs there do not matter.
    assert all(v == 0.0 for v in profile[C:])
    before = model.next_logprobs([w[: max_lag + 1]])
    changed = w[: max_lag + 1].copy()
    changed[0] = changed[0] % (len(corpus.vocab) - 3) + 3
    assert np.array_equal(before, model.next_logprobs([changed]))


def hand_last_row(model, ids):
    """Layer 1's attention of the last position, per head, computed from the weights (pre-LN, learned P)."""
    w = model.weights
    x = w["emb"][ids] + w["pos"][: len(ids)]
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    h = (x - mu) / np.sqrt(var + 1e-5) * w["0.ln1.g"] + w["0.ln1.b"]
    q = h[-1] @ w["0.attn.Wq"] + w["0.attn.bq"]
    k = h @ w["0.attn.Wk"] + w["0.attn.bk"]
    H = model.params["heads"]
    d = q.size // H
    rows = []
    for i in range(H):
        s = k[:, i * d:(i + 1) * d] @ q[i * d:(i + 1) * d] / np.sqrt(d)
        e = np.exp(s - s.max())
        rows.append(e / e.sum())
    return np.array(rows)


def test_closer_attention_is_the_softmax_row_averaged_by_distance():
    process = process_from_spec(DEP)
    vocab = Vocabulary.build([process.tokens])
    model = perturbed({"dtype": "float64", "layers": 1, "context": 12}, vocab, scale=0.5)
    d, n = 3, 7
    report = closer_attention(model, process, d, n, seed=5)
    items, _ = distance_items(process, d, n, np.random.default_rng(5))
    rows = [hand_last_row(model, np.concatenate([[BOS_ID], vocab.encode(it)]))[:, ::-1] for it in items]
    longest = max(r.shape[1] for r in rows)
    sums, counts = np.zeros((2, longest)), np.zeros(longest)
    for r in rows:
        sums[:, : r.shape[1]] += r
        counts[: r.shape[1]] += 1
    assert np.allclose(report["mean"][0], sums / counts, atol=1e-12)
    # Distance d is the trigger in every item (it stands d tokens before the closer).
    assert all(it[-d] in process.triggers for it in items)
    assert np.allclose(report["trigger"][0], np.mean([r[:, d - 1] for r in rows], axis=0))
    assert report["uniform"] == pytest.approx(np.mean([1 / (len(it) + 1) for it in items]))
    ex = report["example"]
    assert ex["tokens"][ex["trigger_index"]] == items[0][-d]


def test_a_trigger_outside_the_window_gets_no_attention():
    process = process_from_spec(DEP)
    vocab = Vocabulary.build([process.tokens])
    model = perturbed({"layers": 1, "context": 6}, vocab)
    report = closer_attention(model, process, 9, 4, seed=0)
    assert np.all(report["trigger"] == 0) and report["example"]["trigger_index"] is None
    assert report["mean"].shape[-1] == 6 and report["uniform"] == pytest.approx(1 / 6)


def test_distance_probe_marks_the_distances_beyond_the_window_where_the_trigger_is_not_read():
    process = process_from_spec(DEP)
    vocab = Vocabulary.build([process.tokens])
    model = perturbed({"layers": 2, "context": 6}, vocab)
    report = distance_probe(model, process, [1, 6, 7, 9], 8)
    assert report["window"] == 6
    assert [r["inside_window"] for r in report["distances"]] == [True, True, False, False]
    # Independently: swapping the trigger changes the closer scores at d = 6 (inside) and not at d = 7 (outside).
    closers = vocab.encode(list(process.closers))
    for d, seen in ((6, True), (7, False)):
        items, k = distance_items(process, d, 4, np.random.default_rng(1))
        other = [[process.triggers[(k[i] + 1) % len(process.triggers)] if j == len(it) - d else t
                  for j, t in enumerate(it)] for i, it in enumerate(items)]
        a = model.next_logprobs([vocab.encode(it) for it in items])[:, closers]
        b = model.next_logprobs([vocab.encode(it) for it in other])[:, closers]
        assert (not np.allclose(a, b)) == seen
    out = run_metric("distance", ctx_for(model, None, DEP, distances=[1, 6, 7, 9], items=8))
    assert [(r["x"], r["value"]) for r in out.rows if r["quantity"] == "window"] == [(d, 6) for d in (1, 6, 7, 9)]
    lstm = create_model("lstm", {"emb": 4, "hidden": 4, "layers": 1, "epochs": 1, "bptt": 4, "batch": 2})
    lstm.fit(Corpus.encode([process.tokens] * 4, vocab, name="tokens"))
    unbounded = distance_probe(lstm, process, [1, 9], 4)
    assert unbounded["window"] is None and {r["inside_window"] for r in unbounded["distances"]} == {None}


def ctx_for(model, corpora, spec="toy", **options):
    return CellContext(corpora, model, 0, options, spec)


def test_attention_map_metric_rows_and_its_figure():
    process = process_from_spec(DEP)
    vocab = Vocabulary.build([process.tokens])
    model = perturbed({"layers": 2, "context": 12}, vocab)
    out = run_metric("attention_map", ctx_for(model, None, DEP, distance=4, items=6))
    trig = [r for r in out.rows if r["quantity"] == "trigger_attention"]
    assert [r["group"] for r in trig] == [f"layer {l} head {h}" for l in (1, 2) for h in (1, 2)]
    report = closer_attention(model, process, 4, 6, seed=0)
    assert [r["value"] for r in trig] == pytest.approx(report["trigger"].ravel().tolist())
    # Not applicable: a model without attention, or a corpus without probe items.
    lstm = create_model("lstm", {"emb": 4, "hidden": 4, "layers": 1})
    assert "no attention" in run_metric("attention_map", ctx_for(lstm, None, DEP)).notes[0]
    assert "synthetic:dependency" in run_metric("attention_map", ctx_for(model, None, "toy")).notes[0]
    rows = pd.DataFrame([{"corpus": "dep", "model": "transformer", "config": "tr", "seed": 0, **r} for r in out.rows])
    data = RunData(rows, pd.DataFrame(), [{"corpus": "dep", "config": "tr", "extras": {"attention_map": out.extras}}],
                   {})
    fig = attention_map_figure(data)
    assert fig is not None and b"<svg" in fig.image[:400]
    assert fig.table["attention on trigger"].tolist() == pytest.approx(report["trigger"].ravel().tolist())


@pytest.mark.parametrize("name,params,sequential", [
    ("lstm", {"emb": 8, "hidden": 8, "layers": 1, "dropout": 0.0}, lambda T: T),
    ("transformer", {**TINY, "context": 4}, lambda T: 1)])
def test_parallelism_runs_each_length_with_the_same_tokens_per_step(name, params, sequential):
    train, valid = corpus_of(120), None
    valid = corpus_of(10, seed=1, vocab=train.vocab)
    model = create_model(name, params)
    out = run_metric("parallelism", ctx_for(model, SimpleNamespace(train=train, valid=valid), lengths=[4, 8, 400],
                                            tokens_per_step=32, steps=2))
    rows = {(r["quantity"], r["x"]): r["value"] for r in out.rows}
    for T in (4, 8):
        assert rows[("batch", T)] == 32 // T and rows[("sequential_steps", T)] == sequential(T)
    # 400 tokens per window: the training split (~480 tokens) holds no 3 steps of them → a note, no row.
    assert ("batch", 400) not in rows and "length 400 skipped" in out.notes[0]
    timing = {t["quantity"]: t["value"] for t in out.timings}
    for T in (4, 8):  # seconds per epoch is the split's predicted tokens at the measured rate
        assert timing[f"seconds_per_epoch@{T}"] * timing[f"train_tokens_per_second@{T}"] == pytest.approx(
            train.n_predicted)
    assert all(row["value"] is not None for row in out.rows)


def test_parallelism_skips_models_without_a_sequence_length():
    corpus = corpus_of()
    ngram = create_model("trigram", {})
    out = run_metric("parallelism", ctx_for(ngram, SimpleNamespace(train=corpus, valid=None)))
    assert out.rows == [] and "not trained by steps" in out.notes[0]


def test_parallelism_table_and_figure_read_the_timings():
    timings = pd.DataFrame([
        {"corpus": "c", "model": m, "config": m, "seed": s, "metric": "parallelism", "quantity": f"{q}@{T}",
         "value": v * (1 + s)}
        for m, base in (("lstm", 100.0), ("transformer", 50.0)) for s in (0, 1) for T in (16, 64)
        for q, v in (("train_tokens_per_second", base * T), ("seconds_per_epoch", 1000 / (base * T)))]
        + [{"corpus": "c", "model": "lstm", "config": "lstm", "seed": 0, "metric": "parallelism",
            "quantity": "threads", "value": 1}, {"corpus": "c", "model": "lstm", "config": "lstm", "seed": 0,
                                                      "metric": "speed", "quantity": "train_tokens_per_second@9",
                                                      "value": 5}])
    table = parallelism_table(timings)
    assert table[["config", "length"]].values.tolist() == [["lstm", 16], ["lstm", 64], ["transformer", 16],
                                                           ["transformer", 64]]
    # Median over the two seeds: (v + 2v) / 2 = 1.5 v.
    assert table["train_tokens_per_second"].tolist() == pytest.approx([2400, 9600, 1200, 4800])
    fig = parallelism_figure(RunData(pd.DataFrame(), timings, [], {}))
    assert fig is not None and b"<svg" in fig.image[:400]


def test_parallelism_figure_is_absent_from_runs_without_the_metric():
    timings = pd.DataFrame([{"corpus": "c", "model": "lstm", "config": "lstm", "seed": 0, "metric": "speed",
                             "quantity": "train_tokens_per_second", "value": 5.0}])
    for t in (timings, timings.iloc[:0], pd.DataFrame()):
        assert parallelism_table(t).empty
        assert parallelism_figure(RunData(pd.DataFrame(), t, [], {})) is None
