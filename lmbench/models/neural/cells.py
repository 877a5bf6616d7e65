"""Recurrent cells — vanilla RNN, LSTM, GRU — with explicit forward and backpropagation through time.

Each cell runs a whole sequence: xs (T, B, D) → hs (T, B, H). The input projections of all T steps are one
(T·B, D)×(D, G·H) matmul; only the recurrent part h_{t−1} W_h is a per-step loop. The backward pass runs
the loop backwards, collects the pre-activation gradients of every step, and then forms the weight
gradients as single large matmuls. Weights are stored as (in, out) matrices, x W, with separate input and
recurrent matrices (W_x, W_h) so no per-step concatenation of [x_t, h_{t−1}] is needed.

    rnn   h_t = φ(x_t W_x + h_{t−1} W_h + b),  φ ∈ {tanh, relu, linear};  b = b_x + b_h (PyTorch's two biases)
    lstm  [f, i, o] = σ(·), C̃ = tanh(·) from one matmul of x_t and h_{t−1} (gate blocks f | i | o | C̃);
          C_t = f∘C_{t−1} + i∘C̃;  h_t = o∘tanh(C_t);  bias b = b_x + b_h, its forget block initialised to
          `forget_bias` (1)
    gru   PyTorch's definition (blocks r | z | n, separate input and recurrent biases):
          r = σ(x W_xr + b_xr + h W_hr + b_hr),  z = σ(x W_xz + b_xz + h W_hz + b_hz),
          n = tanh(x W_xn + b_xn + r∘(h W_hn + b_hn)),  h_t = (1 − z)∘n + z∘h_{t−1}

API of every cell (`weights` are plain named arrays; gradients use the same names):

    cell.forward(xs, state)                       -> hs, final_state, cache
    cell.backward(dhs, dfinal_state, cache)       -> dxs, dstate0, grads
    cell.backward(dhs, dfinal_state, cache, return_dh=True)
                                                  -> dxs, dstate0, grads, dh   (dh[t] = ∂L/∂h_t, (T, B, H))
    cell.step(x, state)                           -> h, new_state, cache          (one step, for decoders)
    cell.step_backward(dh, dnew_state, cache)     -> dx, dstate_prev, grads

`state` is a tuple of n_states arrays of shape (B, H): (h,) for rnn and gru, (h, c) for lstm;
`dfinal_state` may be None (no gradient flows into the final state). The arrays returned by `forward` are
kept in the cache: do not modify them in place.

Gradient-flow diagnostics: `backward(..., return_dh=True)` also returns dh (T, B, H), the total gradient of
the loss with respect to each hidden state h_t (through the output at t and through all later steps).
To measure ‖∂L_t/∂h_{t−k}‖, back-propagate a loss placed at step t only (dhs zero except dhs[t]) and read
dh[t−k] for k = 0 … t; with several layers, the dxs of layer l+1 is the dhs of layer l.

PyTorch exchange (one to one: W_x, W_h, b_x, b_h ↔ weight_ih, weight_hh, bias_ih, bias_hh, transposed and
with the LSTM's gate blocks reordered): `cell.to_torch_weights(layer)` gives arrays named like
torch.nn.RNN/LSTM/GRU's state_dict (weight_ih_l{layer}, weight_hh_l{layer}, bias_ih_l{layer}, bias_hh_l{layer});
`cell.load_torch_weights(arrays, layer)` reads them; `cell.grads_from_torch(grads, layer)` converts torch's
parameter gradients to this cell's names; `cell.to_torch_names(layer)` maps each of our names to torch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.models.neural import parallel
from lmbench.models.neural.blas import blas_threads

NONLINEARITIES = ("tanh", "relu", "linear")


def _check_size(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise LmbenchError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class RecurrentCell:
    """What the three cells share: sizes, parameter dict, states, one-step wrappers, torch exchange."""

    kind = ""
    n_states = 1
    n_blocks = 1  # gate blocks of width H in the input projection
    torch_order: tuple[int, ...] = (0,)  # torch block of each of our blocks

    def __init__(self, input_size: int, hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32,
                 init_range: float | None = None) -> None:
        self.input_size = _check_size("input_size", input_size)
        self.hidden_size = _check_size("hidden_size", hidden_size)
        self.dtype = np.dtype(dtype)
        # PyTorch's default: every weight and bias uniform in ±1/√H.
        self.init_range = 1.0 / np.sqrt(hidden_size) if init_range is None else float(init_range)
        self.weights: dict[str, np.ndarray] = {}
        self._init_weights(rng)

    # --- set-up -------------------------------------------------------------------------------------
    def _uniform(self, rng: np.random.Generator, *shape: int) -> np.ndarray:
        k = self.init_range
        return rng.uniform(-k, k, size=shape).astype(self.dtype)

    def _init_weights(self, rng: np.random.Generator) -> None:
        G = self.n_blocks * self.hidden_size
        self.weights["W_x"] = self._uniform(rng, self.input_size, G)
        self.weights["W_h"] = self._uniform(rng, self.hidden_size, G)
        # Two biases, as PyTorch: b_x with the input projection, b_h with the recurrent one. For rnn and lstm
        # only their sum acts, but keeping both makes weights, gradients, clipping norms and SGD steps
        # identical to torch.nn.RNN/LSTM's, so training runs are comparable step for step.
        self.weights["b_x"] = self._uniform(rng, G)
        self.weights["b_h"] = self._uniform(rng, G)

    def zero_state(self, batch: int) -> tuple[np.ndarray, ...]:
        """All-zero initial state for a batch."""
        return tuple(np.zeros((batch, self.hidden_size), dtype=self.dtype) for _ in range(self.n_states))

    def _check_input(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> None:
        if xs.ndim != 3 or xs.shape[2] != self.input_size:
            raise LmbenchError(f"{self.kind} cell: input must be (T, B, {self.input_size}), got {xs.shape}")
        if len(state) != self.n_states or any(s.shape != (xs.shape[1], self.hidden_size) for s in state):
            raise LmbenchError(f"{self.kind} cell: state must be {self.n_states} array(s) of shape "
                               f"({xs.shape[1]}, {self.hidden_size})")

    # --- one step ----------------------------------------------------------------------------------------
    def step(self, x: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """One time step: x (B, D) → (h (B, H), new_state, cache)."""
        hs, final, cache = self.forward(x[None], state)
        return hs[0], final, cache

    def step_backward(self, dh: np.ndarray, dnew_state: tuple | None, cache: Any) -> tuple[np.ndarray, tuple, dict]:
        """Backward of `step`: (dx (B, D), dstate_prev, grads)."""
        dxs, dstate, grads = self.backward(dh[None], dnew_state, cache)
        return dxs[0], dstate, grads

    def forward(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """Run the sequence xs (T, B, D) from `state`: (hs (T, B, H), final_state, cache)."""
        self._check_input(xs, state)
        return self._forward(xs, state)

    def backward(self, dhs: np.ndarray, dfinal_state: tuple | None, cache: Any, return_dh: bool = False) -> tuple:
        """BPTT: (dxs, dstate0, grads[, dh]) from dL/dhs (T, B, H) and dL/d final_state."""
        return self._backward(dhs, dfinal_state, cache, return_dh)

    def _forward(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        raise NotImplementedError

    def _backward(self, dhs: np.ndarray, dfinal_state: tuple | None, cache: Any, return_dh: bool) -> tuple:
        raise NotImplementedError

    @property
    def _step_flops(self) -> int:
        """Multiply-adds of one time step's recurrent product per batch row: H × (blocks·H)."""
        return self.hidden_size * self.n_blocks * self.hidden_size

    def _input_projection(self, xs: np.ndarray, W: np.ndarray) -> np.ndarray:
        """x_t W for all T steps at once: one (T·B, D)×(D, G) matmul (each recurrence adds its bias)."""
        T, B, D = xs.shape
        A = np.empty((T, B, W.shape[1]), dtype=self.dtype)
        parallel.matmul(xs.reshape(T * B, D), W, out=A.reshape(T * B, -1))
        return A

    @staticmethod
    def _incoming(dfinal_state: tuple | None, i: int, like: np.ndarray) -> np.ndarray:
        """A working copy of the gradient flowing into final state i (zeros when none flows)."""
        return np.zeros_like(like) if dfinal_state is None else dfinal_state[i].astype(like.dtype, copy=True)

    def _weight_grads(self, xs: np.ndarray, h0: np.ndarray, hs: np.ndarray, dAx: np.ndarray,
                      dAh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dW_x = Σ_t x_tᵀ dA_t, dW_h = Σ_t h_{t−1}ᵀ dA_t, dxs = dA W_xᵀ — each one large matmul."""
        T, B, D = xs.shape
        G = dAx.shape[2]
        dAx2 = dAx.reshape(T * B, G)
        dW_x = parallel.matmul(xs.reshape(T * B, D).T, dAx2)
        with blas_threads(1):
            dW_h = h0.T @ dAh[0]
        if T > 1:
            dW_h += parallel.matmul(hs[:-1].reshape((T - 1) * B, -1).T, dAh[1:].reshape((T - 1) * B, -1))
        dxs = parallel.matmul(dAx2, self.weights["W_x"].T).reshape(T, B, D)
        return dW_x, dW_h, dxs

    # --- PyTorch exchange ------------------------------------------------------------------------------
    def _half_gates(self, n_sigmoid_blocks: int) -> np.ndarray:
        """Column scales: ½ for the first n blocks (sigmoid gates, see the LSTM forward), 1 for the rest."""
        scale = np.ones(self.n_blocks * self.hidden_size, dtype=self.dtype)
        scale[: n_sigmoid_blocks * self.hidden_size] = 0.5
        return scale

    def _to_torch_blocks(self, W: np.ndarray) -> np.ndarray:
        """Our (in, blocks·H) matrix → torch's (blocks·H, in) with torch's block order."""
        H = self.hidden_size
        blocks = [None] * self.n_blocks
        for ours, theirs in enumerate(self.torch_order):
            blocks[theirs] = W[..., ours * H:(ours + 1) * H]
        return np.concatenate(blocks, axis=-1).T.copy() if W.ndim == 2 else np.concatenate(blocks)

    def _from_torch_blocks(self, A: np.ndarray) -> np.ndarray:
        """torch's (blocks·H, in) or (blocks·H,) → our (in, blocks·H) or (blocks·H,)."""
        H = self.hidden_size
        blocks = [A[theirs * H:(theirs + 1) * H] for theirs in self.torch_order]
        out = np.concatenate(blocks, axis=0)
        return np.ascontiguousarray(out.T if out.ndim == 2 else out, dtype=self.dtype)

    def to_torch_names(self, layer: int = 0) -> dict[str, tuple[str, ...]]:
        """Our parameter name → the torch.nn.{RNN,LSTM,GRU} parameter it corresponds to (one to one)."""
        k = layer
        return {"W_x": (f"weight_ih_l{k}",), "W_h": (f"weight_hh_l{k}",), "b_x": (f"bias_ih_l{k}",),
                "b_h": (f"bias_hh_l{k}",)}

    def to_torch_weights(self, layer: int = 0) -> dict[str, np.ndarray]:
        """Our weights as torch state_dict arrays (transposed, gate blocks in torch's order)."""
        return {name[0]: self._to_torch_blocks(self.weights[ours]) for ours, name in self.to_torch_names(layer).items()}

    def load_torch_weights(self, arrays: dict[str, np.ndarray], layer: int = 0) -> None:
        """Set our weights from torch state_dict arrays."""
        for ours, name in self.to_torch_names(layer).items():
            self.weights[ours] = self._from_torch_blocks(arrays[name[0]])

    def grads_from_torch(self, grads: dict[str, np.ndarray], layer: int = 0) -> dict[str, np.ndarray]:
        """torch's parameter gradients in our names."""
        return {ours: self._from_torch_blocks(grads[name[0]]) for ours, name in self.to_torch_names(layer).items()}

    @staticmethod
    def _bias_grads(db: np.ndarray) -> dict[str, np.ndarray]:
        """b_x and b_h enter only as their sum: both get the same gradient (separate arrays: clipping scales
        gradients in place)."""
        return {"b_x": db, "b_h": db.copy()}


class RNNCell(RecurrentCell):
    """Vanilla (Elman) RNN: h_t = φ(x_t W_x + h_{t−1} W_h + b)."""

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32,
                 nonlinearity: str = "tanh", init_range: float | None = None) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise LmbenchError(f"rnn nonlinearity {nonlinearity!r} is not allowed; choose one of: "
                               f"{', '.join(NONLINEARITIES)}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, rng, dtype, init_range)

    def _activate(self, a: np.ndarray) -> None:
        if self.nonlinearity == "tanh":
            np.tanh(a, out=a)
        elif self.nonlinearity == "relu":
            np.maximum(a, 0, out=a)

    def _forward(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """Run the sequence xs (T, B, D) from `state`: (hs (T, B, H), final_state, cache)."""
        W_h = self.weights["W_h"]
        b = self.weights["b_x"] + self.weights["b_h"]
        hs = self._input_projection(xs, self.weights["W_x"])  # becomes h in place

        def recur(rows: slice) -> None:  # the time loop of one block of the batch's sequences
            hs_r = hs[:, rows]
            hs_r += b
            h = state[0][rows]
            rec = np.empty_like(h)
            for t in range(hs_r.shape[0]):
                np.matmul(h, W_h, out=rec)
                hs_r[t] += rec
                self._activate(hs_r[t])
                h = hs_r[t]

        parallel.over_rows(recur, xs.shape[1], self._step_flops)
        return hs, (hs[-1] if len(hs) else state[0],), (xs, state[0], hs)

    def _backward(self, dhs: np.ndarray, dfinal_state: tuple | None, cache: Any, return_dh: bool) -> tuple:
        """BPTT: (dxs, dstate0, grads[, dh]) from dL/dhs (T, B, H) and dL/d final_state."""
        xs, h0, hs = cache
        W_hT = np.ascontiguousarray(self.weights["W_h"].T)  # a copy: a transposed view makes each step ~1.6× slower
        dA = np.empty_like(hs)
        dh_all = np.empty_like(hs)
        dh0 = self._incoming(dfinal_state, 0, h0)  # the running dL/dh_{t}, in the end dL/dh_0

        def recur(rows: slice) -> None:
            hs_r, dA_r, dh_r, dhs_r = hs[:, rows], dA[:, rows], dh_all[:, rows], dhs[:, rows]
            # φ'(a) written in terms of the output h = φ(a), for all steps at once.
            if self.nonlinearity == "tanh":
                dact = 1.0 - hs_r * hs_r
            elif self.nonlinearity == "relu":
                dact = (hs_r > 0).astype(self.dtype)
            else:
                dact = None
            dh_next = dh0[rows]
            for t in range(hs_r.shape[0] - 1, -1, -1):
                dh = np.add(dhs_r[t], dh_next, out=dh_r[t])
                if dact is None:
                    dA_r[t] = dh
                else:
                    np.multiply(dh, dact[t], out=dA_r[t])
                np.matmul(dA_r[t], W_hT, out=dh_next)

        parallel.over_rows(recur, hs.shape[1], self._step_flops)
        dW_x, dW_h, dxs = self._weight_grads(xs, h0, hs, dA, dA)
        grads = {"W_x": dW_x, "W_h": dW_h, **self._bias_grads(dA.sum(axis=(0, 1)))}
        out = (dxs, (dh0,), grads)
        return (*out, dh_all) if return_dh else out


class LSTMCell(RecurrentCell):
    """LSTM: gates f, i, o and candidate C̃ from one matmul; C_t = f∘C_{t−1} + i∘C̃; h_t = o∘tanh(C_t)."""

    kind = "lstm"
    n_states = 2
    n_blocks = 4
    torch_order = (1, 0, 3, 2)  # ours f|i|o|C̃, torch's i|f|g|o

    def __init__(self, input_size: int, hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32,
                 forget_bias: float = 1.0, init_range: float | None = None) -> None:
        self.forget_bias = float(forget_bias)
        super().__init__(input_size, hidden_size, rng, dtype, init_range)

    def _init_weights(self, rng: np.random.Generator) -> None:
        super()._init_weights(rng)
        # A forget gate open at the start lets the cell state (and its gradient) flow from the first update.
        self.weights["b_x"][: self.hidden_size] = self.forget_bias
        self.weights["b_h"][: self.hidden_size] = 0.0

    def _forward(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """Run the sequence xs (T, B, D) from (h0, c0): (hs (T, B, H), (h_T, c_T), cache)."""
        T, B, _ = xs.shape
        H = self.hidden_size
        # Fused for speed (one matmul and one tanh per step for all four gates, arrays reused in place); the
        # slides' f, i, C̃, C, o, h equations one by one are in reference.py, the tests' oracle for this path.
        # σ(a) = ½(1 + tanh(a/2)): with the gate columns of the weights halved (exact in floating point),
        # one tanh over all four blocks gives tanh(a/2) for f, i, o and tanh(a) for C̃.
        scale = self._half_gates(3)
        W_h = self.weights["W_h"] * scale
        b = (self.weights["b_x"] + self.weights["b_h"]) * scale
        A = self._input_projection(xs, self.weights["W_x"] * scale)
        hs, cs, tanh_cs = (np.empty((T, B, H), dtype=self.dtype) for _ in range(3))
        shift = np.where(scale < 1, scale, 0).astype(self.dtype)  # t·½ + ½ on f, i, o; t·1 + 0 (exact) on C̃

        def recur(rows: slice) -> None:  # the time loop of one block of the batch's sequences
            A_r, hs_r, cs_r, tanh_cs_r = A[:, rows], hs[:, rows], cs[:, rows], tanh_cs[:, rows]
            A_r += b
            h, c = state[0][rows], state[1][rows]
            rec = np.empty((h.shape[0], 4 * H), dtype=self.dtype)
            ig = np.empty_like(h)
            for t in range(T):
                a = A_r[t]  # becomes the activated gates
                np.matmul(h, W_h, out=rec)
                a += rec
                np.tanh(a, out=a)
                np.multiply(a, scale, out=a)  # whole rows: two passes over a strided slice cost twice as much
                np.add(a, shift, out=a)
                f, i, o, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                np.multiply(f, c, out=cs_r[t])
                np.multiply(i, g, out=ig)
                cs_r[t] += ig
                np.tanh(cs_r[t], out=tanh_cs_r[t])
                np.multiply(o, tanh_cs_r[t], out=hs_r[t])
                h, c = hs_r[t], cs_r[t]

        parallel.over_rows(recur, B, self._step_flops)
        final = (hs[-1], cs[-1]) if T else state
        return hs, final, (xs, state[0], state[1], A, cs, tanh_cs, hs)

    def _backward(self, dhs: np.ndarray, dfinal_state: tuple | None, cache: Any, return_dh: bool) -> tuple:
        """BPTT: (dxs, (dh0, dc0), grads[, dh]) from dL/dhs (T, B, H) and dL/d(h_T, c_T)."""
        xs, h0, c0, A, cs, tanh_cs, hs = cache
        T, B, H = hs.shape
        W_hT = np.ascontiguousarray(self.weights["W_h"].T)  # a copy: a transposed view makes each step ~1.6× slower
        dA = np.empty_like(A)
        dA4 = dA.reshape(T, B, 4, H)
        dh_all = np.empty_like(hs)
        # The running dL/dh_t and dL/dC_t; in the end dL/dh_0 and dL/dC_0.
        dh0, dc0 = self._incoming(dfinal_state, 0, h0), self._incoming(dfinal_state, 1, c0)

        # Everything that does not depend on the incoming gradient, for all steps at once:
        #   dC_t = dC_{t+1}∘f_{t+1} + dh_t∘K_t with K = o∘(1 − tanh²C)
        #   da_f = dC∘C_{t−1}∘f(1−f), da_i = dC∘C̃∘i(1−i), da_o = dh∘tanh C∘o(1−o), da_C̃ = dC∘i∘(1−C̃²)
        # in blocks of steps that stay in cache, run by the threads (the loop below is sequential).
        K, P = np.empty_like(cs), np.empty_like(A)

        def factors(ts: slice) -> None:
            a, Pb, Kb = A[ts], P[ts], K[ts]
            np.subtract(1.0, a[..., :3 * H], out=Pb[..., :3 * H])
            Pb[..., :3 * H] *= a[..., :3 * H]  # σ'(·) = s(1 − s) for f, i, o
            first = ts.start == 0  # C_{t−1} of step 0 is c0
            if first:
                Pb[0, :, :H] *= c0
            Pb[int(first):, :, :H] *= cs[ts.start + int(first) - 1:ts.stop - 1]
            Pb[..., H:2 * H] *= a[..., 3 * H:]
            Pb[..., 2 * H:3 * H] *= tanh_cs[ts]
            np.multiply(a[..., 3 * H:], a[..., 3 * H:], out=Pb[..., 3 * H:])
            np.subtract(1.0, Pb[..., 3 * H:], out=Pb[..., 3 * H:])
            Pb[..., 3 * H:] *= a[..., H:2 * H]
            np.multiply(tanh_cs[ts], tanh_cs[ts], out=Kb)
            np.subtract(1.0, Kb, out=Kb)
            Kb *= a[..., 2 * H:3 * H]

        parallel.run_blocks(factors, parallel.blocks(T, B * 4 * H))
        P4 = P.reshape(T, B, 4, H)
        f = A[..., :H]

        def recur(rows: slice) -> None:
            dA_r, dA4_r, dh_r, dhs_r = dA[:, rows], dA4[:, rows], dh_all[:, rows], dhs[:, rows]
            K_r, P4_r, f_r = K[:, rows], P4[:, rows], f[:, rows]
            dh_next, dc_next = dh0[rows], dc0[rows]
            dc = np.empty_like(dh_next)
            for t in range(T - 1, -1, -1):
                dh = np.add(dhs_r[t], dh_next, out=dh_r[t])
                np.multiply(dh, K_r[t], out=dc)
                dc += dc_next
                np.multiply(P4_r[t], dc[:, None, :], out=dA4_r[t])  # f, i, C̃ blocks (o is overwritten next)
                np.multiply(P4_r[t, :, 2], dh, out=dA4_r[t, :, 2])
                np.multiply(dc, f_r[t], out=dc_next)
                np.matmul(dA_r[t], W_hT, out=dh_next)

        parallel.over_rows(recur, B, self._step_flops)
        dW_x, dW_h, dxs = self._weight_grads(xs, h0, hs, dA, dA)
        grads = {"W_x": dW_x, "W_h": dW_h, **self._bias_grads(dA.sum(axis=(0, 1)))}
        out = (dxs, (dh0, dc0), grads)
        return (*out, dh_all) if return_dh else out


class GRUCell(RecurrentCell):
    """GRU exactly as torch.nn.GRU: r, z gates, candidate n = tanh(x W_xn + b_xn + r∘(h W_hn + b_hn))."""

    kind = "gru"
    n_blocks = 3
    torch_order = (0, 1, 2)  # r|z|n in both

    def _forward(self, xs: np.ndarray, state: tuple[np.ndarray, ...]) -> tuple[np.ndarray, tuple, Any]:
        """Run the sequence xs (T, B, D) from (h0,): (hs (T, B, H), (h_T,), cache)."""
        T, B, _ = xs.shape
        H = self.hidden_size
        # Gate columns r, z halved (exact): one tanh then gives σ(a) = ½(1 + tanh(a/2)), as in the LSTM.
        scale = self._half_gates(2)
        W_h, b_h, b_x = self.weights["W_h"] * scale, self.weights["b_h"] * scale, self.weights["b_x"] * scale
        A = self._input_projection(xs, self.weights["W_x"] * scale)  # r, z, n
        rec = np.empty((T, B, 3 * H), dtype=self.dtype)  # h W_h + b_h of every step
        hn = rec[..., 2 * H:]  # h W_hn + b_hn, needed by the backward pass
        hs = np.empty((T, B, H), dtype=self.dtype)

        def recur(rows: slice) -> None:  # the time loop of one block of the batch's sequences
            A_r, rec_r, hn_r, hs_r = A[:, rows], rec[:, rows], hn[:, rows], hs[:, rows]
            A_r += b_x
            h = state[0][rows]
            tmp = np.empty_like(h)
            for t in range(T):
                a = A_r[t]
                np.matmul(h, W_h, out=rec_r[t])
                rec_r[t] += b_h
                rz = a[:, : 2 * H]
                rz += rec_r[t, :, : 2 * H]
                np.tanh(rz, out=rz)
                rz *= 0.5
                rz += 0.5
                r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
                np.multiply(r, hn_r[t], out=tmp)
                n += tmp
                np.tanh(n, out=n)
                # h_t = n + z∘(h_{t−1} − n)
                np.subtract(h, n, out=tmp)
                tmp *= z
                np.add(n, tmp, out=hs_r[t])
                h = hs_r[t]

        parallel.over_rows(recur, B, self._step_flops)
        return hs, (hs[-1] if T else state[0],), (xs, state[0], A, hn, hs)

    def _backward(self, dhs: np.ndarray, dfinal_state: tuple | None, cache: Any, return_dh: bool) -> tuple:
        """BPTT: (dxs, (dh0,), grads[, dh]) from dL/dhs (T, B, H) and dL/dh_T."""
        xs, h0, A, hn, hs = cache
        T, B, H = hs.shape
        W_hT = np.ascontiguousarray(self.weights["W_h"].T)  # a copy: a transposed view makes each step ~1.6× slower
        dAx = np.empty_like(A)  # gradient of the input-side pre-activations (x W_x + b_x)
        dAh = np.empty_like(A)  # gradient of the recurrent-side pre-activations (h W_h + b_h)
        dAx4 = dAx.reshape(T, B, 3, H)
        dh_all = np.empty_like(hs)
        dh0 = self._incoming(dfinal_state, 0, h0)  # the running dL/dh_t, in the end dL/dh_0

        def recur(rows: slice) -> None:
            A_r, hn_r, hs_r = A[:, rows], hn[:, rows], hs[:, rows]
            r, z, n = A_r[..., :H], A_r[..., H:2 * H], A_r[..., 2 * H:]
            h_prev = np.concatenate([h0[None, rows], hs_r[:-1]], axis=0)
            # Gradient-independent factors for all steps:
            #   da_n = dh∘(1−z)(1−n²), da_z = dh∘(h_{t−1} − n)∘z(1−z), da_r = da_n∘(h W_hn + b_hn)∘r(1−r)
            Q = np.empty((T, h_prev.shape[1], 2, H), dtype=self.dtype)
            Q[:, :, 0] = (h_prev - n) * z * (1.0 - z)
            Q[:, :, 1] = (1.0 - z) * (1.0 - n * n)
            R = hn_r * r * (1.0 - r)
            dAx_r, dAh_r, dAx4_r, dh_r, dhs_r = dAx[:, rows], dAh[:, rows], dAx4[:, rows], dh_all[:, rows], dhs[:, rows]
            dh_next = dh0[rows]
            for t in range(T - 1, -1, -1):
                dh = np.add(dhs_r[t], dh_next, out=dh_r[t])
                np.multiply(Q[t], dh[:, None, :], out=dAx4_r[t, :, 1:])  # z and n blocks
                dan = dAx4_r[t, :, 2]
                np.multiply(dan, R[t], out=dAx4_r[t, :, 0])
                dAh_r[t, :, : 2 * H] = dAx_r[t, :, : 2 * H]
                np.multiply(dan, r[t], out=dAh_r[t, :, 2 * H:])
                np.matmul(dAh_r[t], W_hT, out=dh_next)
                dh_next += dh * z[t]

        parallel.over_rows(recur, B, self._step_flops)
        dW_x, dW_h, dxs = self._weight_grads(xs, h0, hs, dAx, dAh)
        grads = {"W_x": dW_x, "W_h": dW_h, "b_x": dAx.sum(axis=(0, 1)), "b_h": dAh.sum(axis=(0, 1))}
        out = (dxs, (dh0,), grads)
        return (*out, dh_all) if return_dh else out


CELLS: dict[str, type[RecurrentCell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def make_cell(kind: str, input_size: int, hidden_size: int, rng: np.random.Generator, dtype: Any = np.float32,
              **options: Any) -> RecurrentCell:
    """Build a cell by name ("rnn", "lstm", "gru") with its options (nonlinearity, forget_bias, init_range)."""
    if kind not in CELLS:
        raise LmbenchError(f"unknown recurrent cell {kind!r}; choose one of: {', '.join(CELLS)}")
    return CELLS[kind](input_size, hidden_size, rng, dtype, **options)
