"""`synthetic:dependency` — filler text with trigger…closer dependencies, and its exact entropy floor.

The process (one line at a time), with the filler a hidden Markov chain over word classes:

  idle state:  </s> with p_end (not as the first token) · trigger T_k with p_open/M · else a filler word
  open (k, j): the closer C_k with hazard h(j) = P(D = j) / P(D ≥ j) · else a filler word
               (j = offset of the next token from the trigger; D ∈ 1..max_distance, P(D = d) ∝ d^−shape)

A filler word w is drawn by class: z ~ β (the predictive class distribution), w ~ B[z]; then
β ← normalise(β ∘ B[:, w]) · A (the forward algorithm). Triggers and closers leave β unchanged.
Because the phase (idle / open k, j) is visible in the history, p(token | full history) is exact, and
the Bayes-optimal perplexity of any split is computable. When every filler word belongs to one class
(the process is unifilar), the entropy rate is exact too: expected visits of each state × the entropy of
its next-token distribution, divided by the expected number of predicted tokens per line.

`synthetic:longrange` is the same process made hard for a vanilla RNN: distances uniform on 1..48 (a short
dependency is as rare as a long one, so there is little to learn step by step) and a filler of 200
pseudo-words drawn independently and uniformly (noise that every step writes into the hidden state).
With the lecture suite's settings (one layer of 64, Adam 0.01, clip 1, bptt 70, 4 epochs) the LSTM ranks the
right closer first at every distance while the RNN stays near chance beyond d = 2.

Defaults (4 pairs, distances 1..160 with P(d) ∝ 1/d, p_open 0.2, p_end 0.04, 6000 training lines ≈ 1 M
tokens) are tuned so that the long-range benchmark (benchmarks/long_range.py) separates the models in budget.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.text.sources import parse_options
from lmbench.text.splits import TextSplits
from lmbench.text.synthetic import cut_generated, lines_to_generate, synthetic

EOS_TOKEN = "</s>"

# Trigger → closer pairs; English-looking correlatives ("either … or").
PAIRS = (("either", "or"), ("neither", "nor"), ("if", "then"), ("both", "and"), ("whether", "else"),
         ("once", "again"), ("not", "but"), ("as", "so"))

# Filler: word classes, their words (Zipf-weighted within a class), and class transitions.
FILLER_CLASSES = {
    "DET": "the a this every some that".split(),
    "ADJ": "old small quiet green happy dark cold bright".split(),
    "NOUN": "dog river house teacher garden window road child market story letter forest".split(),
    "VERB": "sees finds knows follows keeps hears opens builds remembers carries".split(),
    "PREP": "near under behind across beside over".split(),
    "ADV": "slowly often quietly soon".split(),
}
# Row = class of the last filler word ("START": none yet), column = class of the next filler word.
FILLER_TRANSITIONS = {
    "START": {"DET": 0.6, "NOUN": 0.2, "ADV": 0.2},
    "DET": {"ADJ": 0.35, "NOUN": 0.65},
    "ADJ": {"ADJ": 0.15, "NOUN": 0.85},
    "NOUN": {"VERB": 0.55, "PREP": 0.3, "ADV": 0.15},
    "VERB": {"DET": 0.6, "PREP": 0.2, "ADV": 0.2},
    "PREP": {"DET": 1.0},
    "ADV": {"VERB": 0.4, "DET": 0.4, "PREP": 0.2},
}


_ONSETS = "b d f g k l m n p r s t v z".split()
_VOWELS = "a e i o u".split()


def pseudo_words(n: int) -> list[str]:
    """n distinct pronounceable filler words: two CV syllables ("baba", "babe", …), then three."""
    syllables = [c + v for c in _ONSETS for v in _VOWELS]
    words: list[str] = []
    length = 2
    while len(words) < n:
        for combo in itertools.product(syllables, repeat=length):
            words.append("".join(combo))
            if len(words) == n:
                break
        length += 1
    return words


def _zipf(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1)
    return w / w.sum()


@dataclass(frozen=True)
class DependencyProcess:
    """The generator's exact model: sample lines, score any line, compute the entropy rate."""

    words: tuple[str, ...]  # filler words (column order of `emission`)
    emission: np.ndarray  # B: (K, W) p(word | class)
    transition: np.ndarray  # A: (K + 1, K) next class given last class; row K is the start
    triggers: tuple[str, ...]
    closers: tuple[str, ...]
    distance: np.ndarray  # P(D = d) for d = 1..len(distance)
    p_open: float
    p_end: float

    def __post_init__(self) -> None:
        K, W = self.emission.shape
        if self.transition.shape != (K + 1, K):
            raise LmbenchError(f"transition must be ({K + 1}, {K}), got {self.transition.shape}")
        if not (0 < self.p_end < 1 and 0 <= self.p_open < 1 and self.p_end + self.p_open < 1):
            raise LmbenchError(f"need 0 < p_end, 0 ≤ p_open and p_end + p_open < 1, got {self.p_end}, {self.p_open}")
        if len(self.triggers) != len(self.closers) or not self.triggers:
            raise LmbenchError("need one closer per trigger and at least one pair")
        tokens = [*self.words, *self.triggers, *self.closers]
        if len(set(tokens)) != len(tokens) or EOS_TOKEN in tokens:
            raise LmbenchError("filler words, triggers and closers must be distinct tokens")
        for name, m in (("emission", self.emission), ("transition", self.transition)):
            if not np.allclose(m.sum(axis=1), 1.0) or (m < 0).any():
                raise LmbenchError(f"{name} rows must be probability distributions")
        if not math.isclose(float(self.distance.sum()), 1.0) or (self.distance < 0).any():
            raise LmbenchError("distance must be a probability distribution over 1..max_distance")

    # --- derived quantities -----------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """K, the number of hidden filler classes."""
        return self.emission.shape[0]

    @property
    def max_distance(self) -> int:
        """The largest trigger–closer distance."""
        return len(self.distance)

    @property
    def tokens(self) -> list[str]:
        """Every token the process emits: filler words, triggers, closers, then `</s>`."""
        return [*self.words, *self.triggers, *self.closers, EOS_TOKEN]

    @property
    def hazard(self) -> np.ndarray:
        """h[j] = P(D = j | D ≥ j) for j = 1..max_distance (index 0 unused, = 0)."""
        survive = self.distance[::-1].cumsum()[::-1]  # P(D ≥ j)
        h = np.zeros(self.max_distance + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            h[1:] = np.where(survive > 0, self.distance / survive, 1.0)
        h[self.max_distance] = 1.0
        return h

    def is_unifilar(self) -> bool:
        """Whether every filler word has exactly one class (then the class path is visible)."""
        return bool(((self.emission > 0).sum(axis=0) == 1).all())

    # --- sampling (vectorised over lines; a loop over time steps) ---------------------------------
    def _draw_filler(self, rng: np.random.Generator, beta: np.ndarray) -> np.ndarray:
        """Draw one filler word per row of the predictive class distribution β; return word ids."""
        z = (rng.random(len(beta))[:, None] > np.cumsum(beta, axis=1)[:, :-1]).sum(axis=1)
        cum_b = np.cumsum(self.emission, axis=1)[z]
        return (rng.random(len(beta))[:, None] > cum_b[:, :-1]).sum(axis=1)

    def _observe_filler(self, beta: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Forward step after filler words w: β' = normalise(β ∘ B[:, w]) · A[:K]."""
        post = beta * self.emission[:, w].T
        total = post.sum(axis=1, keepdims=True)
        post /= np.where(total > 0, total, 1.0)  # an impossible word (p = 0) leaves an all-zero state
        return post @ self.transition[:-1]

    def sample_ids(self, rng: np.random.Generator, n_lines: int) -> list[np.ndarray]:
        """Sample lines as ids into `tokens` (without the final `</s>`)."""
        W, M = len(self.words), len(self.triggers)
        beta = np.tile(self.transition[-1], (n_lines, 1))
        phase = np.zeros(n_lines, dtype=np.int64)  # 0: idle, j ≥ 1: next token is j after the trigger
        trig = np.zeros(n_lines, dtype=np.int64)
        alive = np.ones(n_lines, dtype=bool)
        rows: list[np.ndarray] = []
        toks: list[np.ndarray] = []
        hazard = self.hazard
        step = 0
        while alive.any():
            idx = np.flatnonzero(alive)
            u = rng.random(idx.size)
            tok = np.full(idx.size, -1, dtype=np.int64)
            idle = phase[idx] == 0
            p_end = self.p_end if step > 0 else 0.0
            end = idle & (u < p_end)
            opened = idle & ~end & (u < p_end + self.p_open)
            closed = ~idle & (u < hazard[phase[idx]])
            k = rng.integers(0, M, idx.size)
            tok[opened] = W + k[opened]
            tok[closed] = W + M + trig[idx][closed]
            filler = ~(end | opened | closed)
            if filler.any():
                fill_rows = idx[filler]
                w = self._draw_filler(rng, beta[fill_rows])
                tok[filler] = w
                beta[fill_rows] = self._observe_filler(beta[fill_rows], w)
            trig[idx[opened]] = k[opened]
            phase[idx[opened]] = 1
            phase[idx[closed]] = 0
            phase[idx[~idle & ~closed]] += 1
            alive[idx[end]] = False
            rows.append(idx[~end])
            toks.append(tok[~end])
            step += 1
        # Regroup the (line, token) stream by line; a stable sort keeps each line's tokens in time order.
        line_of = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        flat = np.concatenate(toks) if toks else np.zeros(0, dtype=np.int64)
        order = np.argsort(line_of, kind="stable")
        counts = np.bincount(line_of, minlength=n_lines)
        return np.split(flat[order], np.cumsum(counts)[:-1])

    def sample_lines(self, rng: np.random.Generator, n_lines: int) -> list[str]:
        """Sample lines of text."""
        tokens = self.tokens
        return [" ".join(tokens[i] for i in line) for line in self.sample_ids(rng, n_lines)]

    def sample_filler(self, rng: np.random.Generator, n: int, length: int, beta: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """n filler-only sequences of `length` words from class distribution β (default: the start).

        Returns (ids (n, length) into `tokens`, the predictive β after them).
        """
        beta = np.tile(self.transition[-1], (n, 1)) if beta is None else beta.copy()
        ids = np.zeros((n, length), dtype=np.int64)
        for t in range(length):
            ids[:, t] = self._draw_filler(rng, beta)
            beta = self._observe_filler(beta, ids[:, t])
        return ids, beta

    # --- exact scoring (the forward algorithm, vectorised over lines) --------------------------------
    def token_logprobs(self, lines: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Natural-log p(token | everything before it in its line) for each token and the final `</s>`.

        Tokens the process never emits at that point get −inf.
        """
        index = {t: i for i, t in enumerate(self.tokens)}
        W, M = len(self.words), len(self.triggers)
        eos = W + 2 * M
        n = len(lines)
        lengths = np.fromiter((len(s) + 1 for s in lines), dtype=np.int64, count=n)
        T = int(lengths.max()) if n else 0
        ids = np.full((n, T), eos, dtype=np.int64)
        for i, s in enumerate(lines):
            ids[i, : len(s)] = [index.get(t, -1) for t in s]
        out = np.zeros((n, T))
        beta = np.tile(self.transition[-1], (n, 1))
        phase = np.zeros(n, dtype=np.int64)
        trig = np.zeros(n, dtype=np.int64)
        dead = np.zeros(n, dtype=bool)  # an impossible token was seen: the rest is unscored (−inf)
        hazard = self.hazard
        marginal = beta @ self.emission  # (n, W) predictive filler-word distribution
        with np.errstate(divide="ignore"):
            for t in range(T):
                tok = ids[:, t]
                idle = phase == 0
                p_end = self.p_end if t > 0 else 0.0
                h = hazard[phase]
                p_fill = np.where(idle, 1.0 - p_end - self.p_open, 1.0 - h)
                is_fill = (tok >= 0) & (tok < W)
                is_trig = (tok >= W) & (tok < W + M)
                is_close = (tok >= W + M) & (tok < eos)
                is_eos = tok == eos
                word = np.where(is_fill, tok, 0)
                p = np.zeros(n)
                p[is_fill] = p_fill[is_fill] * marginal[is_fill, word[is_fill]]
                p[is_trig & idle] = self.p_open / M
                ok_close = is_close & ~idle & (tok - W - M == trig)
                p[ok_close] = h[ok_close]
                p[is_eos & idle] = p_end
                dead |= p <= 0
                out[:, t] = np.where(dead, -np.inf, np.log(np.where(p > 0, p, 1.0)))
                # State updates.
                if is_fill.any():
                    beta[is_fill] = self._observe_filler(beta[is_fill], word[is_fill])
                    marginal[is_fill] = beta[is_fill] @ self.emission
                opened = is_trig & idle
                trig[opened] = tok[opened] - W
                phase[~idle & ~ok_close] += 1
                phase[opened] = 1
                phase[ok_close] = 0
                phase = np.minimum(phase, self.max_distance)
        return [out[i, : lengths[i]] for i in range(n)]

    def floor(self, lines: Sequence[Sequence[str]]) -> dict[str, float]:
        """The Bayes-optimal perplexity and bits/token of a split (`</s>` predicted, as the harness counts)."""
        lp = np.concatenate(self.token_logprobs(lines)) if lines else np.zeros(0)
        nll = -float(lp.mean()) if lp.size else float("nan")
        return {"perplexity": math.exp(nll), "bits_per_token": nll / math.log(2), "tokens": int(lp.size)}

    # --- exact entropy rate (unifilar processes) ----------------------------------------------------------
    def entropy_rate(self) -> float:
        """Bits per predicted token: Σ_s N(s) H(next | s) / Σ_s N(s), N = expected visits per line.

        States are (class of the last filler word or START, phase); the trigger identity is dropped because
        every trigger leads to the same dynamics. Requires a unifilar process.
        """
        if not self.is_unifilar():
            raise LmbenchError("the exact entropy rate needs every filler word in exactly one class")
        K, M, D = self.n_classes, len(self.triggers), self.max_distance
        C = K + 1  # last class: 0..K-1 or START (= K)
        n_phase = D + 1  # 0 idle, 1..D open
        S = 1 + C * n_phase  # state 0: the very first step (nothing emitted yet, no </s> allowed)

        def sid(c: np.ndarray | int, j: np.ndarray | int) -> np.ndarray | int:
            return 1 + c * n_phase + j

        Q = np.zeros((S, S))
        H = np.zeros(S)
        hazard = self.hazard
        word_class = self.emission.argmax(axis=0)  # unifilar: the one class of each word
        for c in range(C):
            # Next filler word and its class from "last class c".
            pw = self.transition[c] @ self.emission  # (W,)
            nxt = word_class
            for j in range(n_phase):
                for first in ((True, False) if (c == K and j == 0) else (False,)):
                    s = 0 if first else sid(c, j)
                    if j == 0:
                        p_end = 0.0 if first else self.p_end
                        p_fill = 1.0 - p_end - self.p_open
                        probs = [p_end] if p_end > 0 else []
                        probs += [self.p_open / M] * M
                        Q[s, sid(c, 1)] += self.p_open
                        np.add.at(Q[s], sid(nxt, 0), p_fill * pw)
                    else:
                        p_fill = 1.0 - hazard[j]
                        probs = [hazard[j]]
                        Q[s, sid(c, 0)] += hazard[j]
                        if j < D:
                            np.add.at(Q[s], sid(nxt, j + 1), p_fill * pw)
                    probs = np.asarray([*probs, *(p_fill * pw)])
                    probs = probs[probs > 0]
                    H[s] = -(probs * np.log2(probs)).sum()
        start = np.zeros(S)
        start[0] = 1.0
        visits = np.linalg.solve((np.eye(S) - Q).T, start)
        return float(visits @ H / visits.sum())


def build_process(pairs: int = 4, max_distance: int = 160, shape: float = 1.0, p_open: float = 0.2,
                  p_end: float = 0.04, min_distance: int = 1, fillers: int = 0, name: str = "dependency"
                  ) -> DependencyProcess:
    """The dependency process with `pairs` trigger/closer pairs, P(D = d) ∝ d^−shape on min..max_distance.

    The filler is the class grammar of FILLER_CLASSES, or with `fillers` = n > 0, n pseudo-words drawn
    independently and uniformly (one class): noise the recurrent state must carry the trigger through.
    """
    if not 1 <= pairs <= len(PAIRS):
        raise LmbenchError(f"synthetic:{name} pairs must be in 1..{len(PAIRS)}, got {pairs}")
    if max_distance < 1:
        raise LmbenchError(f"synthetic:{name} max_distance must be ≥ 1, got {max_distance}")
    if not 1 <= min_distance <= max_distance:
        raise LmbenchError(f"synthetic:{name} min_distance must be in 1..max_distance={max_distance}, "
                           f"got {min_distance}")
    if fillers < 0:
        raise LmbenchError(f"synthetic:{name} fillers must be ≥ 0 (0: the class grammar), got {fillers}")
    if fillers:
        words = pseudo_words(fillers)
        B, A = np.full((1, fillers), 1.0 / fillers), np.ones((2, 1))
    else:
        classes = list(FILLER_CLASSES)
        words = [w for c in classes for w in FILLER_CLASSES[c]]
        B = np.zeros((len(classes), len(words)))
        col = 0
        for k, c in enumerate(classes):
            n = len(FILLER_CLASSES[c])
            B[k, col : col + n] = _zipf(n)
            col += n
        A = np.zeros((len(classes) + 1, len(classes)))
        for r, row in enumerate([*classes, "START"]):
            for c, p in FILLER_TRANSITIONS[row].items():
                A[r, classes.index(c)] = p
    d = np.arange(1, max_distance + 1, dtype=np.float64) ** -shape
    d[: min_distance - 1] = 0.0
    return DependencyProcess(tuple(words), B, A, tuple(p[0] for p in PAIRS[:pairs]),
                             tuple(p[1] for p in PAIRS[:pairs]), d / d.sum(), p_open, p_end)


def sample_short_lines(process: DependencyProcess, rng: np.random.Generator, n: int, max_length: int,
                       name: str = "dependency") -> list[str]:
    """n lines of at most max_length tokens: lines sampled from the process, the longer ones rejected."""
    out: list[str] = []
    for _ in range(1000):
        batch = process.sample_lines(rng, max(64, 2 * (n - len(out))))
        out += [line for line in batch if len(line.split()) <= max_length]
        if len(out) >= n:
            return out[:n]
    raise LmbenchError(f"synthetic:{name}: lines of at most {max_length} tokens are too rare to sample; "
                       "raise train_max_length")


def splits_with_floor(name: str, process: DependencyProcess, rng: np.random.Generator, sentences: int,
                      train_max_length: int = 0) -> TextSplits:
    """Train/valid/test lines sampled from `process`, with the entropy rate and each split's floor in info.

    With train_max_length = L > 0, train and valid hold only lines of at most L tokens (the test split is
    unrestricted, so a model meets lengths it never saw); info records L.
    """
    if train_max_length < 0:
        raise LmbenchError(f"synthetic:{name} train_max_length must be ≥ 0 (0: no limit), got {train_max_length}")
    total = lines_to_generate(name, sentences)
    if train_max_length:
        n_test = total - sentences - max(1, sentences // 10)
        lines = sample_short_lines(process, rng, total - n_test, train_max_length, name)
        lines += process.sample_lines(rng, n_test)
    else:
        lines = process.sample_lines(rng, total)
    splits = cut_generated(name, lines, sentences)
    info: dict = {"train_max_length": train_max_length} if train_max_length else {}
    if process.is_unifilar():
        info["entropy_rate_bits"] = process.entropy_rate()
        info["entropy_rate_perplexity"] = 2.0 ** info["entropy_rate_bits"]
    info["bayes_floor"] = {s: process.floor([line.split() for line in splits.get(s)]) for s in ("train", "valid",
                                                                                                "test")}
    splits.info = info
    return splits


@synthetic("dependency", "filler text with trigger…closer dependencies at distances 1..max_distance; exact floor")
def dependency(sentences: int = 6000, seed: int = 0, pairs: int = 4, max_distance: int = 160,
               shape: float = 1.0, p_open: float = 0.2, p_end: float = 0.04, train_max_length: int = 0
               ) -> TextSplits:
    """Lines from the dependency process; info holds the true entropy rate and each split's Bayes floor.

    train_max_length = L > 0 keeps only lines of at most L tokens in train and valid (test unrestricted)."""
    process = build_process(pairs, max_distance, shape, p_open, p_end)
    return splits_with_floor("dependency", process, np.random.default_rng(seed), sentences, train_max_length)


@synthetic("longrange", "trigger…closer dependencies at every distance 1..48 equally often, across filler noise "
                        "(200 words drawn at random); exact floor")
def longrange(sentences: int = 1500, seed: int = 0, pairs: int = 4, min_distance: int = 1, max_distance: int = 48,
              shape: float = 0.0, fillers: int = 200, p_open: float = 0.2, p_end: float = 0.04) -> TextSplits:
    """Dependencies at distances uniform on min..max_distance across random filler words: the recurrent models'
    hard case (few short examples to learn from step by step; every filler word jolts the hidden state)."""
    process = build_process(pairs, max_distance, shape, p_open, p_end, min_distance, fillers, name="longrange")
    return splits_with_floor("longrange", process, np.random.default_rng(seed), sentences)


# The generators whose process the distance probe can rebuild from a corpus spec (their options minus size/seed).
PROCESS_CORPORA = {"synthetic:dependency": dependency, "synthetic:longrange": longrange}


def process_from_spec(spec: str = "synthetic:dependency") -> DependencyProcess:
    """The process behind a `synthetic:dependency?...` or `synthetic:longrange?...` spec."""
    base, options = parse_options(spec)
    if base not in PROCESS_CORPORA:
        raise LmbenchError(f"{spec!r}: distance probes need a {' or '.join(PROCESS_CORPORA)} corpus spec")
    name = base.removeprefix("synthetic:")
    known = inspect.signature(PROCESS_CORPORA[base].make).parameters
    kwargs: dict = {}
    for key, param in known.items():
        if key in ("sentences", "seed", "train_max_length"):  # the size and selection of the data, not the process
            continue
        kwargs[key] = param.default
        if key not in options:
            continue
        try:
            kwargs[key] = type(param.default)(options[key])
        except ValueError:
            raise LmbenchError(f"synthetic:{name} option {key}={options[key]!r} must be "
                               f"{type(param.default).__name__}") from None
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise LmbenchError(f"synthetic:{name} has no option {unknown[0]!r}; options: {', '.join(known)}")
    return build_process(**kwargs, name=name)
