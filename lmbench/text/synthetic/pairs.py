"""Corpora with a long-distance dependency and the BLiMP-format minimal pairs that test it.

`synthetic:agreement`  English subject–verb agreement across prepositional phrases (attractors: nouns of
                       the other number between the subject and its verb) and adverbs.
`synthetic:korean-npi` Korean negative polarity: 결코/전혀/절대 must be licensed by a negative predicate
                       (없었다, 몰랐다) at the end of the clause, however many phrases come between.

`write_pairs(kind, path, n, seed)` writes pairs in the same vocabulary (`lmbench probe make-pairs`), so a
model trained on the matching corpus knows every word.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lmbench.errors import LmbenchError
from lmbench.fileio import write_text_atomic
from lmbench.text.splits import TextSplits
from lmbench.text.synthetic import cut_generated, lines_to_generate, synthetic
from lmbench.text.synthetic.grammar import ADJECTIVES, NOUNS, PREPOSITIONS, TRANSITIVE, plural_form, third_person_form

ADVERBS = "today often quietly surely again".split()
DET_SG = ("the", "a", "every", "this")
DET_PL = ("the", "some", "many", "these")


def _pick(rng: np.random.Generator, words: tuple[str, ...] | list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _noun_phrase(rng: np.random.Generator, plural: bool) -> list[str]:
    words = [_pick(rng, DET_PL if plural else DET_SG)]
    if rng.random() < 0.3:
        words.append(_pick(rng, ADJECTIVES))
    noun = _pick(rng, NOUNS)
    return [*words, plural_form(noun) if plural else noun]


def agreement_sentence(rng: np.random.Generator, n_pp: int, attract_all: bool, n_adverbs: int
                       ) -> tuple[list[str], list[str], dict]:
    """(good, bad, fields): subject NP, n_pp PPs, adverbs, then the verb that agrees (good) or not (bad)."""
    plural = bool(rng.random() < 0.5)
    subject = _noun_phrase(rng, plural)
    middle: list[str] = []
    attractors = 0
    for _ in range(n_pp):
        other = (not plural) if attract_all else bool(rng.random() < 0.5)
        attractors += other != plural
        middle += [_pick(rng, PREPOSITIONS), *_noun_phrase(rng, other)]
    middle += [_pick(rng, ADVERBS) for _ in range(n_adverbs)]
    verb = _pick(rng, TRANSITIVE)
    right, wrong = (verb, third_person_form(verb)) if plural else (third_person_form(verb), verb)
    obj = _noun_phrase(rng, bool(rng.random() < 0.4))
    good = [*subject, *middle, right, *obj, "."]
    bad = [*subject, *middle, wrong, *obj, "."]
    fields = {"attractors": attractors, "prepositional_phrases": n_pp, "adverbs": n_adverbs,
              "distance": len(middle) + 1, "subject_number": "plural" if plural else "singular"}
    return good, bad, fields


@synthetic("agreement", "English subject-verb agreement across 0-4 prepositional phrases (attractors) and adverbs")
def agreement(sentences: int = 20000, seed: int = 0) -> TextSplits:
    """Sentences whose verb agrees with a subject separated from it by PPs and adverbs."""
    n_lines = lines_to_generate("agreement", sentences)
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_lines):
        n_pp = int(rng.choice(5, p=[0.3, 0.25, 0.2, 0.15, 0.1]))
        good, _, _ = agreement_sentence(rng, n_pp, attract_all=False, n_adverbs=int(rng.integers(0, 3)))
        lines.append(" ".join(good))
    return cut_generated("agreement", lines, sentences)


KO_SUBJECTS = "민수는 지수는 선생님은 아이들은 할머니는 친구는 동생은 그는".split()
KO_NPI = ("결코", "전혀", "절대")
KO_NEUTRAL = ("항상", "자주", "가끔", "어제", "분명히")
KO_PHRASES = ("학교에서", "친구와 함께", "저녁에", "도서관 앞에서", "비가 오는 날에", "주말마다", "혼자서", "그 때",
              "시장에서", "아침 일찍", "집에서", "오랫동안")
# (object, negative predicate, positive predicate)
KO_PREDICATES = (("돈이", "없었다", "있었다"), ("시간이", "없었다", "있었다"), ("관심이", "없었다", "있었다"),
                 ("걱정이", "없었다", "있었다"), ("그 사실을", "몰랐다", "알았다"), ("답을", "몰랐다", "알았다"),
                 ("그 사람을", "몰랐다", "알았다"))


def korean_sentence(rng: np.random.Generator, npi: bool, n_phrases: int, negative: bool
                    ) -> tuple[list[str], list[str], dict]:
    """(sentence with the predicate of the given polarity, with the other polarity, fields)."""
    adverb = _pick(rng, KO_NPI if npi else KO_NEUTRAL)
    middle: list[str] = []
    for _ in range(n_phrases):
        middle += _pick(rng, KO_PHRASES).split()
    obj, neg, pos = KO_PREDICATES[int(rng.integers(len(KO_PREDICATES)))]
    head = [_pick(rng, KO_SUBJECTS), adverb, *middle, *obj.split()]
    first, second = (neg, pos) if negative else (pos, neg)
    fields = {"npi": adverb, "phrases": n_phrases, "distance": len(middle) + len(obj.split()) + 1,
              "predicate": neg}
    return [*head, first, "."], [*head, second, "."], fields


@synthetic("korean-npi", "Korean negative polarity: 결코/전혀/절대 … 없었다/몰랐다 across 0-6 phrases")
def korean_npi(sentences: int = 20000, seed: int = 0) -> TextSplits:
    """Clauses where an NPI adverb needs a negative predicate at the end; other adverbs allow both."""
    n_lines = lines_to_generate("korean-npi", sentences)
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_lines):
        npi = bool(rng.random() < 0.4)
        # Neutral adverbs take a negative predicate 1 time in 6, so that overall half the predicates are
        # negative: only the NPI, not the predicate's frequency, tells the polarity.
        negative = npi or bool(rng.random() < 1 / 6)
        good, _, _ = korean_sentence(rng, npi, int(rng.integers(0, 7)), negative)
        lines.append(" ".join(good))
    return cut_generated("korean-npi", lines, sentences)


def make_pairs(kind: str, n_pairs: int = 400, seed: int = 0) -> list[dict]:
    """Seeded minimal pairs: agreement over 0–4 attractors × 0–3 adverbs, or Korean NPI over 0–6 phrases."""
    if n_pairs < 1:
        raise LmbenchError(f"number of pairs must be ≥ 1, got {n_pairs}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_pairs):
        if kind == "agreement":
            good, bad, fields = agreement_sentence(rng, i % 5, attract_all=True, n_adverbs=(i // 5) % 4)
        elif kind == "korean-npi":
            good, bad, fields = korean_sentence(rng, True, i % 7, negative=True)
        else:
            raise LmbenchError(f"unknown pair kind {kind!r}; choose agreement or korean-npi")
        out.append({"sentence_good": " ".join(good), "sentence_bad": " ".join(bad), "kind": kind, **fields})
    return out


def write_pairs(kind: str, path: str | Path, n_pairs: int = 400, seed: int = 0) -> int:
    """Write `make_pairs` as JSONL (atomically); return the number of pairs."""
    pairs = make_pairs(kind, n_pairs, seed)
    write_text_atomic(path, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    return len(pairs)
