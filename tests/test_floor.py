"""The exact entropy floor of synthetic:dependency, checked against brute-force enumeration."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from conftest import run_cli

from lmbench.errors import LmbenchError
from lmbench.evaluate.floor import bayes_floor, excess_bits, floor_fields
from lmbench.text.sources import load_corpus, read_splits
from lmbench.text.synthetic.dependency import DependencyProcess, build_process


def tiny_process(ambiguous: bool = False, p_open: float = 0.2, p_end: float = 0.5) -> DependencyProcess:
    """Two filler classes {a, b} and {c} (b in both when ambiguous), one pair x…y, distances 1 or 2."""
    B = np.array([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]]) if ambiguous else np.array([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    A = np.array([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5]])  # rows: last class a|b, c, START
    return DependencyProcess(("a", "b", "c"), B, A, ("x",), ("y",), np.array([0.6, 0.4]), p_open, p_end)


def next_tokens(proc: DependencyProcess, state: tuple) -> list[tuple[str, float, tuple]]:
    """The process's definition, written out independently: (token, probability, next state)."""
    last, j, started = state  # last filler class (2 = START), offset after the trigger (0: idle), any token yet
    out = []
    if j > len(proc.distance):
        return out  # past the longest distance: nothing can follow
    p_next_class = proc.transition[last]
    if j == 0:
        p_end = proc.p_end if started else 0.0
        if p_end:
            out.append(("</s>", p_end, None))
        out.append(("x", proc.p_open, (last, 1, True)))
        p_fill = 1 - p_end - proc.p_open
    else:
        surv = proc.distance[j - 1:].sum()
        h = proc.distance[j - 1] / surv
        out.append(("y", h, (last, 0, True)))
        p_fill = 1 - h
    if p_fill > 0:
        for z in range(2):
            for w, word in enumerate(proc.words):
                p = p_fill * p_next_class[z] * proc.emission[z, w]
                if p > 0:
                    out.append((word, p, (z, j + 1 if j else 0, True)))
    return out


def enumerate_lines(proc: DependencyProcess, threshold: float) -> tuple[float, float, float]:
    """Σ p log2 p, Σ p·(tokens incl. </s>), Σ p over every line whose probability exceeds `threshold`."""
    entropy = length = mass = 0.0
    stack = [((2, 0, False), 1.0, 0)]
    while stack:
        state, p, n = stack.pop()
        for token, q, nxt in next_tokens(proc, state):
            pq = p * q
            if pq < threshold:
                continue
            if token == "</s>":
                entropy -= pq * math.log2(pq)
                length += pq * (n + 1)
                mass += pq
            else:
                stack.append((nxt, pq, n + 1))
    return entropy, length, mass


def test_entropy_rate_of_tiny_hmm_equals_brute_force_enumeration():
    # Mostly short lines, so that enumerating every line above 1e-11 covers all but < 1e-6 of the mass.
    proc = tiny_process(p_open=0.05, p_end=0.9)
    assert proc.is_unifilar()
    entropy, length, mass = enumerate_lines(proc, 1e-11)
    assert mass > 1 - 1e-6  # the lines left out carry almost no probability
    assert proc.entropy_rate() == pytest.approx(entropy / length, rel=1e-5)


def joint_probability(proc: DependencyProcess, line: list[str]) -> float:
    """p(line </s>) by summing over every hidden class path of its filler words (no forward algorithm)."""
    fill_pos = [t for t, w in enumerate(line) if w in proc.words]
    total = 0.0
    for classes in itertools.product(range(proc.n_classes), repeat=len(fill_pos)):
        zs = dict(zip(fill_pos, classes))
        p, last, j = 1.0, proc.n_classes, 0
        for t, tok in enumerate([*line, "</s>"]):
            options = {}
            for token, q, nxt in next_tokens(proc, (min(last, 2), j, t > 0)):
                if token in proc.words:
                    continue
                options[token] = (q, nxt)
            if tok in proc.words:
                z, w = zs[t], proc.words.index(tok)
                p_fill = 1 - sum(q for q, _ in options.values())
                p *= p_fill * proc.transition[min(last, 2)][z] * proc.emission[z, w]
                last, j = z, (j + 1 if j else 0)
            else:
                q, nxt = options.get(tok, (0.0, None))
                p *= q
                if nxt is not None:
                    j = nxt[1]
        total += p
    return total


@pytest.mark.parametrize("ambiguous", [False, True])
def test_forward_algorithm_equals_sum_over_hidden_paths(ambiguous):
    proc = tiny_process(ambiguous)
    lines = [["a", "x", "b", "y", "c"], ["x", "y"], ["b", "b", "x", "c", "y", "a"], ["c", "a", "b"],
             ["x", "a", "a", "y"], ["a", "y"]]
    for line, lp in zip(lines, proc.token_logprobs(lines)):
        assert lp.shape == (len(line) + 1,)
        assert lp.sum() == pytest.approx(math.log(joint_probability(proc, line)) if joint_probability(proc, line)
                                         else -math.inf, rel=1e-12)


def test_conditionals_sum_to_one_over_the_next_token():
    proc = tiny_process(ambiguous=True)
    rng = np.random.default_rng(1)
    for prefix in proc.sample_ids(rng, 20):
        words = [proc.tokens[i] for i in prefix]
        for cut in range(len(words) + 1):
            head = words[:cut]
            base = proc.token_logprobs([head])[0][:-1].sum()
            total = sum(math.exp(proc.token_logprobs([[*head, t]])[0][:-1].sum() - base) for t in proc.tokens[:-1])
            total += math.exp(proc.token_logprobs([head])[0][-1])  # </s>
            assert total == pytest.approx(1.0, abs=1e-12)


def test_sampled_lines_agree_with_the_entropy_rate_and_floor():
    proc = build_process(max_distance=40)
    lines = proc.sample_lines(np.random.default_rng(0), 3000)
    floor = proc.floor([line.split() for line in lines])
    assert np.isfinite(floor["perplexity"])
    # Cross-entropy of the sample under the true model ≈ the entropy rate (law of large numbers).
    assert floor["bits_per_token"] == pytest.approx(proc.entropy_rate(), abs=0.05)


def test_generator_info_floor_and_excess_bits():
    splits = read_splits("synthetic:dependency?sentences=200&seed=3")
    assert splits.info["entropy_rate_bits"] > 0
    assert read_splits("synthetic:dependency?sentences=200&seed=3").train == splits.train  # seeded
    corpora = load_corpus(splits)
    floor = splits.info["bayes_floor"]["test"]
    assert floor["tokens"] == corpora.test.n_predicted
    assert bayes_floor(splits, "test") == pytest.approx(floor["perplexity"])
    assert excess_bits(floor["bits_per_token"] + 0.5, corpora, "test") == pytest.approx(0.5)
    fields = floor_fields(corpora, "test", 5.0)
    assert fields["excess_bits_per_token"] == pytest.approx(5.0 - floor["bits_per_token"])
    with pytest.raises(LmbenchError, match="no known entropy floor"):
        bayes_floor("synthetic:grammar?sentences=20")


def test_corpus_info_and_eval_show_the_floor(tmp_path):
    spec = "synthetic:dependency?sentences=100&max_distance=20"
    out = run_cli("corpus", "info", spec, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["entropy_rate_bits"] == pytest.approx(read_splits(spec).info["entropy_rate_bits"])
    assert run_cli("train", "unigram", "--corpus", spec, "--out", tmp_path / "m").returncode == 0
    ev = run_cli("eval", tmp_path / "m", "--corpus", spec, "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["excess_bits_per_token"] == pytest.approx(result["cross_entropy_bits"] - result["bayes_floor_bits"])
    assert result["excess_bits_per_token"] > 0  # a unigram model is far from the floor
