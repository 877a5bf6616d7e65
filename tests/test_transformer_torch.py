"""PyTorch parity for the transformer LM: the same weights in a hand-written torch model (F.layer_norm,
F.scaled_dot_product_attention, F.gelu) give the same log-probabilities (1e-5) and every gradient (1e-4),
float32, over a batch; AdamW matches torch.optim.AdamW step by step."""

import numpy as np
import pytest

from lmbench.models.neural.optim import AdamW
from lmbench.models.registry import create_model
from lmbench.text.vocab import BOS_ID, EOS_ID

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_stack(W, prefix, x, layers, heads, norm, positions_table, causal=True, memory=None):
    """Embeddings → layers → final LN, written with torch.nn.functional on tensors W[name]."""
    D = W[f"{prefix}emb"].shape[1]
    T = x.shape[1]
    h = W[f"{prefix}emb"][x] + positions_table[:T]

    def ln(z, i, layer):
        return F.layer_norm(z, (D,), W[f"{prefix}{layer}.ln{i}.g"], W[f"{prefix}{layer}.ln{i}.b"], eps=1e-5)

    def attn(zq, zkv, sub, layer, is_causal):
        P = f"{prefix}{layer}.{sub}."
        B, Tq, _ = zq.shape
        Tk = zkv.shape[1]
        q = (zq @ W[P + "Wq"] + W[P + "bq"]).view(B, Tq, heads, D // heads).transpose(1, 2)
        k = (zkv @ W[P + "Wk"] + W[P + "bk"]).view(B, Tk, heads, D // heads).transpose(1, 2)
        v = (zkv @ W[P + "Wv"] + W[P + "bv"]).view(B, Tk, heads, D // heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        return o.transpose(1, 2).reshape(B, Tq, D) @ W[P + "Wo"] + W[P + "bo"]

    def ffn(z, layer):
        P = f"{prefix}{layer}.ffn."
        return F.gelu(z @ W[P + "W1"] + W[P + "b1"], approximate="tanh") @ W[P + "W2"] + W[P + "b2"]

    for layer in range(layers):
        subs = ["attn", "cross", "ffn"] if memory is not None else ["attn", "ffn"]
        for i, sub in enumerate(subs, 1):
            z = ln(h, i, layer) if norm == "pre" else h
            if sub == "attn":
                y = attn(z, z, "attn", layer, causal)
            elif sub == "cross":
                y = attn(z, memory, "cross", layer, False)
            else:
                y = ffn(z, layer)
            h = h + y
            if norm == "post":
                h = ln(h, i, layer)
    if norm == "pre":
        h = F.layer_norm(h, (D,), W[f"{prefix}ln_f.g"], W[f"{prefix}ln_f.b"], eps=1e-5)
    return h


@pytest.mark.parametrize("norm,positions,tied", [("pre", "learned", True), ("post", "sinusoidal", False)])
def test_lm_logprobs_and_gradients_match_torch(norm, positions, tied):
    model = create_model("transformer", {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 2, "context": 16,
                                         "dropout": 0.0, "norm": norm, "positions": positions, "tied": tied})
    V, B, T = 40, 4, 16
    model.build(V)
    rng = np.random.default_rng(0)
    for w in model.weights.values():  # beyond the small init, so that every term matters
        w += rng.normal(0, 0.1, w.shape).astype(np.float32)
    x = rng.integers(0, V, size=(B, T))
    y = rng.integers(0, V, size=(B, T))
    y[y == BOS_ID] = EOS_ID
    loss, grads = model.loss_and_grads(x, y, train=False)
    logits, _ = model.forward(x)
    from lmbench.models.neural.layers import log_softmax

    lp = np.take_along_axis(log_softmax(logits.astype(np.float64)), y.reshape(-1, 1), axis=1)[:, 0]

    W = {k: torch.tensor(v, requires_grad=True) for k, v in model.weights.items()}
    from lmbench.models.transformer.stack import positions_table

    table = W["pos"] if positions == "learned" else torch.tensor(positions_table(model.spec, model.weights))
    h = torch_stack(W, "", torch.tensor(x), 2, 4, norm, table)
    out_W = W["emb"].T if tied else W["out.W"]
    t_logits = (h @ out_W + W["out.b"]).reshape(B * T, V)
    mask = torch.zeros(V, dtype=torch.bool)
    mask[BOS_ID] = True
    t_lp = torch.log_softmax(t_logits.masked_fill(mask, float("-inf")), dim=1)
    t_loss = F.nll_loss(t_lp, torch.tensor(y.reshape(-1)))
    t_loss.backward()
    t_tok = t_lp.gather(1, torch.tensor(y.reshape(-1, 1)))[:, 0].detach().numpy()
    assert np.abs(lp - t_tok).max() < 1e-5
    assert abs(loss - t_loss.item()) < 1e-5
    assert set(grads) == set(W)
    for k, g in grads.items():
        tg = W[k].grad.numpy()
        assert np.abs(g - tg).max() < 1e-4, k
        assert np.abs(tg).max() > 0 or k.endswith(".bk"), k  # nothing compared against an all-zero gradient


def test_adamw_matches_torch_step_by_step():
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = AdamW(lr=0.01, weight_decay=0.1)
    topt = torch.optim.AdamW([{"params": [tp["W"]], "weight_decay": 0.1},
                              {"params": [tp["b"]], "weight_decay": 0.0}], lr=0.01)
    for step in range(4):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        if step == 2:  # a scheduled learning rate, as the trainer sets it
            opt.lr = 0.005
            for g in topt.param_groups:
                g["lr"] = 0.005
        opt.step(params, grads)
        for k in tp:
            tp[k].grad = torch.tensor(grads[k])
        topt.step()
    for k in params:
        assert np.abs(params[k] - tp[k].detach().numpy()).max() < 1e-6
