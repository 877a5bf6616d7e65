"""PyTorch parity: our weights copied into torch.nn.RNN/LSTM/GRU + embedding + linear give the same
log-probabilities (1e-5) and the same gradient for every parameter (1e-4), float32, over 35 steps."""

import numpy as np
import pytest

from lmbench.models.neural.optim import SGD, clip_global_norm
from lmbench.models.registry import create_model
from lmbench.text.vocab import BOS_ID, EOS_ID

torch = pytest.importorskip("torch")


def torch_lm(model, kind):
    """A torch LM with exactly our weights: Embedding → nn.RNN/LSTM/GRU → Linear, <s> logit masked."""
    p = model.params
    V = model.vocab_size
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    extra = {"nonlinearity": p["nonlinearity"]} if kind == "rnn" else {}
    rnn = cls(p["emb"], p["hidden"], num_layers=p["layers"], **extra)
    emb = torch.nn.Embedding(V, p["emb"])
    dec = torch.nn.Linear(p["hidden"], V)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(model.weights["emb"]))
        state = {}
        for layer, cell in enumerate(model.cells):
            state |= {k: torch.from_numpy(v) for k, v in cell.to_torch_weights(layer).items()}
        rnn.load_state_dict(state)
        W = model.weights["emb"] if p["tied"] else model.weights["dec.W"].T
        dec.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
        dec.bias.copy_(torch.from_numpy(model.weights["dec.b"]))
    return emb, rnn, dec


def torch_forward(emb, rnn, dec, x, state0):
    out, _ = rnn(emb(torch.from_numpy(x)), state0)
    logits = dec(out.reshape(-1, out.shape[-1]))
    mask = torch.zeros(logits.shape[1], dtype=torch.bool)
    mask[BOS_ID] = True
    return torch.log_softmax(logits.masked_fill(mask, float("-inf")), dim=1)


@pytest.mark.parametrize("kind,extra", [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}),
                                        ("lstm", {}), ("gru", {})])
def test_logprobs_and_gradients_match_torch(kind, extra):
    torch.manual_seed(0)
    model = create_model(kind, {"emb": 24, "hidden": 32, "layers": 2, "dropout": 0.0, "seed": 3, "init_range": 0.3,
                                **extra})
    V, T, B = 50, 35, 4
    model.build(V)
    rng = np.random.default_rng(1)
    x = rng.integers(0, V, size=(T, B))
    y = rng.integers(0, V, size=(T, B))
    y[y == BOS_ID] = EOS_ID
    # a non-zero carried state, as in truncated BPTT
    state = [tuple(rng.uniform(-0.5, 0.5, size=(B, 32)).astype(np.float32) for _ in range(c.n_states))
             for c in model.cells]

    loss, grads, final = model.loss_and_grads(x, y, state, train=False)
    logits, _, _ = model.forward(x, state, train=False)
    ours_lp = logits[np.arange(T * B), y.reshape(-1)] - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) \
        - logits.max(1)

    emb, rnn, dec = torch_lm(model, kind)
    hs = [torch.from_numpy(np.stack([s[j] for s in state])) for j in range(model.cells[0].n_states)]
    lp = torch_forward(emb, rnn, dec, x, hs[0] if kind != "lstm" else tuple(hs))
    target_lp = lp[torch.arange(T * B), torch.from_numpy(y.reshape(-1))]
    t_loss = -target_lp.mean()
    t_loss.backward()

    assert abs(loss - t_loss.item()) < 1e-5
    assert np.max(np.abs(target_lp.detach().numpy() - ours_lp)) < 1e-5

    def check(ours, theirs, name):
        theirs = np.asarray(theirs)
        assert np.max(np.abs(ours - theirs)) < 1e-4, name
        assert np.max(np.abs(ours - theirs)) <= 1e-3 * np.max(np.abs(theirs)) + 1e-7, name

    check(grads["emb"], emb.weight.grad.numpy(), "emb")
    check(grads["dec.W"], dec.weight.grad.numpy().T, "dec.W")
    check(grads["dec.b"], dec.bias.grad.numpy(), "dec.b")
    tgrads = {k: v.grad.numpy() for k, v in rnn.named_parameters()}
    for layer, cell in enumerate(model.cells):
        for name, g in cell.grads_from_torch(tgrads, layer).items():
            check(grads[f"l{layer}.{name}"], g, f"l{layer}.{name}")

    # the same parameters one to one: global-norm clipping and one SGD step give the same weights
    norm = clip_global_norm(grads, 0.25)
    t_params = [emb.weight, *rnn.parameters(), dec.weight, dec.bias]
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, 0.25).item()
    assert np.isclose(norm, t_norm, rtol=1e-4)
    SGD(20.0).step(model.weights, grads)
    with torch.no_grad():
        for prm in t_params:
            prm -= 20.0 * prm.grad
    assert np.max(np.abs(model.weights["emb"] - emb.weight.detach().numpy())) < 1e-4
    assert np.max(np.abs(model.weights["dec.W"] - dec.weight.detach().numpy().T)) < 1e-4
    theirs = {k: v.detach().numpy() for k, v in rnn.named_parameters()}
    for layer, cell in enumerate(model.cells):
        for name, w in cell.grads_from_torch(theirs, layer).items():  # the same conversion as for weights
            assert np.max(np.abs(model.weights[f"l{layer}.{name}"] - w)) < 1e-4


def test_next_logprobs_match_torch():
    model = create_model("lstm", {"emb": 16, "hidden": 16, "layers": 2, "dropout": 0.0, "init_range": 0.3})
    model.build(30)
    from lmbench.text.vocab import Vocabulary

    model.vocab = Vocabulary(["<unk>", "<s>", "</s>", *[f"w{i}" for i in range(27)]], [0] * 30)
    emb, rnn, dec = torch_lm(model, "lstm")
    ctx = [np.array([5, 7, 9]), np.array([], dtype=int), np.array([4])]
    ours = model.next_logprobs(ctx)
    for j, c in enumerate(ctx):
        x = np.concatenate([[BOS_ID], c]).astype(np.int64)[:, None]
        lp = torch_forward(emb, rnn, dec, x, None).detach().numpy()[-1]
        finite = np.isfinite(lp)
        assert np.array_equal(finite, np.isfinite(ours[j]))
        assert np.max(np.abs(lp[finite] - ours[j][finite])) < 1e-5
