"""The lecture's recurrent cells, one readable step at a time: the oracle for the fused cells in cells.py.

Each reference is built from a fused cell's weights and computes exactly what the slides write, for a batch
of row vectors (so W·[h_{t−1}, x_t] is `concat(h_prev, x) @ W.T`):

    RNN   h_t = tanh(W·[h_{t−1}, x_t] + b)                      (or relu, or the identity)
    LSTM  f_t = σ(W_f·[h_{t−1}, x_t] + b_f)
          i_t = σ(W_i·[h_{t−1}, x_t] + b_i)
          C̃_t = tanh(W_C·[h_{t−1}, x_t] + b_C)
          C_t = f_t∘C_{t−1} + i_t∘C̃_t
          o_t = σ(W_o·[h_{t−1}, x_t] + b_o)
          h_t = o_t∘tanh(C_t)
    GRU   (PyTorch's definition, which cells.py follows)
          r_t = σ(W_ir x_t + b_ir + W_hr h_{t−1} + b_hr)
          z_t = σ(W_iz x_t + b_iz + W_hz h_{t−1} + b_hz)
          n_t = tanh(W_in x_t + b_in + r_t∘(W_hn h_{t−1} + b_hn))
          h_t = (1 − z_t)∘n_t + z_t∘h_{t−1}

The fused cells store W_x (D, G) and W_h (H, G) with the gate blocks side by side and two biases b_x, b_h;
for the RNN and the LSTM only their sum b = b_x + b_h acts, so ∂L/∂b_x = ∂L/∂b_h = ∂L/∂b. Every reference
has `step` and an explicit `step_backward`, and runs whole sequences with the fused cells' signatures:
`forward(xs, state) -> hs, final_state, caches` and `backward(dhs, dfinal_state, caches) -> dxs, dstate0,
grads` (grads in the fused cell's names). Slow on purpose: nothing here is fused, halved or done in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.models.neural.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^(−a))."""
    return 1.0 / (1.0 + np.exp(-a))


def fused_weights(cell: RecurrentCell) -> dict[str, np.ndarray]:
    """The fused cell's weight arrays by name (W_x, W_h, b_x, b_h)."""
    return cell.weights


def concat(h_prev: np.ndarray, x: np.ndarray) -> np.ndarray:
    """[h_{t−1}, x_t] for each row of the batch."""
    return np.concatenate([h_prev, x], axis=1)


def linear(W: np.ndarray, v: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W·v + b for each row v of the batch."""
    return v @ W.T + b


class ReferenceCell:
    """Sequences from single steps, and the map between the lecture's weights and the fused cell's."""

    gates: tuple[str, ...] = ()  # the fused cell's gate blocks, in its column order

    def __init__(self, cell: RecurrentCell) -> None:
        self.H = cell.hidden_size
        w = fused_weights(cell)
        self.W_x, self.W_h, self.b_x, self.b_h = w["W_x"], w["W_h"], w["b_x"], w["b_h"]

    def block(self, array: np.ndarray, gate: str) -> np.ndarray:
        """The columns (or entries) of one gate's block of a fused array."""
        k = self.gates.index(gate)
        return array[..., k * self.H:(k + 1) * self.H]

    def joint_weights(self, gate: str) -> tuple[np.ndarray, np.ndarray]:
        """W (H, H+D) acting on [h_{t−1}, x_t], and b = b_x + b_h, of one gate."""
        W = np.concatenate([self.block(self.W_h, gate), self.block(self.W_x, gate)], axis=0).T
        return W, self.block(self.b_x, gate) + self.block(self.b_h, gate)

    def fused_grads_from_joint(self, dW: dict[str, np.ndarray], db: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Gradients of the gates' joint W, b → gradients of W_x, W_h, b_x, b_h (b_x and b_h both get ∂L/∂b)."""
        H = self.H
        dW_h = np.concatenate([dW[g][:, :H].T for g in self.gates], axis=1)
        dW_x = np.concatenate([dW[g][:, H:].T for g in self.gates], axis=1)
        d_bias = np.concatenate([db[g] for g in self.gates])
        return {"W_x": dW_x, "W_h": dW_h, "b_x": d_bias, "b_h": d_bias.copy()}

    # --- whole sequences --------------------------------------------------------------------------------
    def step(self, x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """One time step: (h_t, new state, cache)."""
        raise NotImplementedError

    def step_backward(self, dh: np.ndarray, dstate: tuple[np.ndarray, ...], cache: Any
                      ) -> tuple[np.ndarray, tuple, dict[str, np.ndarray]]:
        """Backward of one step from ∂L/∂h_t (all of it) and ∂L/∂(other state): (dx, dstate_prev, grads)."""
        raise NotImplementedError

    def forward(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, list]:
        """Run xs (T, B, D) from `state`: (hs (T, B, H), final state, per-step caches)."""
        hs, caches = [], []
        for x in xs:
            h, state, cache = self.step(x, state)
            hs.append(h)
            caches.append(cache)
        return np.stack(hs), state, caches

    def backward(self, dhs: np.ndarray, dfinal_state: tuple | None, caches: list
                 ) -> tuple[np.ndarray, tuple, dict[str, np.ndarray]]:
        """BPTT, one step at a time from the last: (dxs, dstate0, grads summed over steps)."""
        dstate = tuple(np.zeros_like(dhs[0]) for _ in range(len(caches[0][0]))) if dfinal_state is None \
            else tuple(dfinal_state)
        dxs, total = [], {}
        for t in range(len(caches) - 1, -1, -1):
            dh = dhs[t] + dstate[0]  # through the output at t, and through step t+1
            dx, dstate, grads = self.step_backward(dh, dstate, caches[t])
            dxs.append(dx)
            for name, g in grads.items():
                total[name] = total[name] + g if name in total else g
        return np.stack(dxs[::-1]), dstate, total


class ReferenceRNN(ReferenceCell):
    """h_t = φ(W·[h_{t−1}, x_t] + b), φ = tanh (the slides), relu or the identity."""

    gates = ("h",)

    def __init__(self, cell: RNNCell) -> None:
        super().__init__(cell)
        self.nonlinearity = cell.nonlinearity
        self.W, self.b = self.joint_weights("h")

    def phi(self, a: np.ndarray) -> np.ndarray:
        """The nonlinearity φ."""
        return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "linear": lambda v: v}[self.nonlinearity](a)

    def phi_prime(self, a: np.ndarray) -> np.ndarray:
        """φ′(a): 1 − tanh²(a), [a > 0], or 1."""
        if self.nonlinearity == "tanh":
            return 1.0 - np.tanh(a) ** 2
        if self.nonlinearity == "relu":
            return (a > 0).astype(a.dtype)
        return np.ones_like(a)

    def step(self, x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """h_t = φ(W·[h_{t−1}, x_t] + b)."""
        (h_prev,) = state
        v = concat(h_prev, x)
        a = linear(self.W, v, self.b)
        h = self.phi(a)
        return h, (h,), ((h_prev,), v, a)

    def step_backward(self, dh: np.ndarray, dstate: tuple[np.ndarray, ...], cache: Any
                      ) -> tuple[np.ndarray, tuple, dict[str, np.ndarray]]:
        """da = dh∘φ′(a); dW = daᵀ v; db = Σ da; d[h_{t−1}, x_t] = da W."""
        _, v, a = cache
        da = dh * self.phi_prime(a)
        dv = da @ self.W
        grads = self.fused_grads_from_joint({"h": da.T @ v}, {"h": da.sum(axis=0)})
        return dv[:, self.H:], (dv[:, :self.H],), grads


class ReferenceLSTM(ReferenceCell):
    """The LSTM of the slides: forget, input and output gates, candidate C̃, cell state C."""

    gates = ("f", "i", "o", "C")  # the fused cell's block order f | i | o | C̃

    def __init__(self, cell: LSTMCell) -> None:
        super().__init__(cell)
        self.W_f, self.b_f = self.joint_weights("f")
        self.W_i, self.b_i = self.joint_weights("i")
        self.W_C, self.b_C = self.joint_weights("C")
        self.W_o, self.b_o = self.joint_weights("o")

    def step(self, x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """One step of the slides' equations, in their order."""
        h_prev, C_prev = state
        v = concat(h_prev, x)  # [h_{t−1}, x_t]
        f = sigmoid(linear(self.W_f, v, self.b_f))
        i = sigmoid(linear(self.W_i, v, self.b_i))
        C_tilde = np.tanh(linear(self.W_C, v, self.b_C))
        C = f * C_prev + i * C_tilde
        o = sigmoid(linear(self.W_o, v, self.b_o))
        h = o * np.tanh(C)
        return h, (h, C), ((h_prev, C_prev), v, f, i, C_tilde, C, o)

    def step_backward(self, dh: np.ndarray, dstate: tuple[np.ndarray, ...], cache: Any
                      ) -> tuple[np.ndarray, tuple, dict[str, np.ndarray]]:
        """The chain rule through each equation, last first; dstate[1] is ∂L/∂C_t from step t+1."""
        (_, C_prev), v, f, i, C_tilde, C, o = cache
        tanh_C = np.tanh(C)
        do = dh * tanh_C  # h_t = o_t∘tanh(C_t)
        dC = dstate[1] + dh * o * (1.0 - tanh_C**2)
        df, dC_prev = dC * C_prev, dC * f  # C_t = f_t∘C_{t−1} + i_t∘C̃_t
        di, dC_tilde = dC * C_tilde, dC * i
        da_f = df * f * (1.0 - f)  # σ′ = σ(1 − σ)
        da_i = di * i * (1.0 - i)
        da_C = dC_tilde * (1.0 - C_tilde**2)  # tanh′ = 1 − tanh²
        da_o = do * o * (1.0 - o)
        dv = da_f @ self.W_f + da_i @ self.W_i + da_C @ self.W_C + da_o @ self.W_o
        da = {"f": da_f, "i": da_i, "C": da_C, "o": da_o}
        grads = self.fused_grads_from_joint({g: d.T @ v for g, d in da.items()},
                                            {g: d.sum(axis=0) for g, d in da.items()})
        return dv[:, self.H:], (dv[:, :self.H], dC_prev), grads


class ReferenceGRU(ReferenceCell):
    """torch.nn.GRU's equations, input and recurrent weights kept apart (r multiplies W_hn h + b_hn)."""

    gates = ("r", "z", "n")

    def __init__(self, cell: GRUCell) -> None:
        super().__init__(cell)
        # PyTorch's shapes: W_i* (H, D) acting on x_t, W_h* (H, H) acting on h_{t−1}.
        for g in self.gates:
            setattr(self, f"W_i{g}", self.block(self.W_x, g).T)
            setattr(self, f"W_h{g}", self.block(self.W_h, g).T)
            setattr(self, f"b_i{g}", self.block(self.b_x, g))
            setattr(self, f"b_h{g}", self.block(self.b_h, g))

    def step(self, x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """One step of PyTorch's GRU equations."""
        (h_prev,) = state
        r = sigmoid(linear(self.W_ir, x, self.b_ir) + linear(self.W_hr, h_prev, self.b_hr))
        z = sigmoid(linear(self.W_iz, x, self.b_iz) + linear(self.W_hz, h_prev, self.b_hz))
        hn = linear(self.W_hn, h_prev, self.b_hn)  # W_hn h_{t−1} + b_hn
        n = np.tanh(linear(self.W_in, x, self.b_in) + r * hn)
        h = (1.0 - z) * n + z * h_prev
        return h, (h,), ((h_prev,), x, r, z, hn, n)

    def step_backward(self, dh: np.ndarray, dstate: tuple[np.ndarray, ...], cache: Any
                      ) -> tuple[np.ndarray, tuple, dict[str, np.ndarray]]:
        """The chain rule through each equation, last first."""
        (h_prev,), x, r, z, hn, n = cache
        dn, dz = dh * (1.0 - z), dh * (h_prev - n)  # h_t = (1 − z)∘n + z∘h_{t−1}
        da_n = dn * (1.0 - n**2)  # n = tanh(a_n), a_n = W_in x + b_in + r∘hn
        dr, dhn = da_n * hn, da_n * r
        da_r = dr * r * (1.0 - r)
        da_z = dz * z * (1.0 - z)
        dx = da_r @ self.W_ir + da_z @ self.W_iz + da_n @ self.W_in
        dh_prev = dh * z + da_r @ self.W_hr + da_z @ self.W_hz + dhn @ self.W_hn
        d_input = {"r": da_r, "z": da_z, "n": da_n}  # gradients of W_i* x + b_i*
        d_recurrent = {"r": da_r, "z": da_z, "n": dhn}  # gradients of W_h* h_{t−1} + b_h*
        grads = {
            "W_x": np.concatenate([(d_input[g].T @ x).T for g in self.gates], axis=1),
            "W_h": np.concatenate([(d_recurrent[g].T @ h_prev).T for g in self.gates], axis=1),
            "b_x": np.concatenate([d_input[g].sum(axis=0) for g in self.gates]),
            "b_h": np.concatenate([d_recurrent[g].sum(axis=0) for g in self.gates]),
        }
        return dx, (dh_prev,), grads


REFERENCES: dict[str, type[ReferenceCell]] = {"rnn": ReferenceRNN, "lstm": ReferenceLSTM, "gru": ReferenceGRU}


def reference_for(cell: RecurrentCell) -> ReferenceCell:
    """The readable reference of a fused cell, with the same weights."""
    return REFERENCES[cell.kind](cell)
