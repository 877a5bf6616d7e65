"""`synthetic:grammar` — a seeded stochastic grammar of English-like sentences with number agreement.

S → NP VP · NP → Det Adj* N [that VP] · VP → Vt NP [PP] | Vi [PP] · PP → P NP
Subject and verb agree in number (the dog sees / the dogs see), so the corpus has structure a few
words long that n-grams partly see and recurrent models can learn. Words are drawn Zipf-like.
"""

from __future__ import annotations

import numpy as np

from lmbench.text.splits import TextSplits
from lmbench.text.synthetic import cut_generated, lines_to_generate, synthetic

NOUNS = (
    "dog cat bird child teacher student farmer doctor writer singer king queen friend neighbor baker "
    "painter driver sailor pilot horse fox wolf lion monkey rabbit turtle owl robot engineer"
).split()
TRANSITIVE = "see like chase help follow watch know find meet call visit teach admire praise".split()
INTRANSITIVE = "sleep run laugh sing dance wait smile swim rest talk".split()
ADJECTIVES = "old young small big happy quiet clever brave lazy kind tall green".split()
PREPOSITIONS = "near with behind under beside".split()
DET_SINGULAR = ("the", "a", "every", "this")
DET_PLURAL = ("the", "some", "many", "these")


def plural_form(noun: str) -> str:
    """The plural of a noun of the grammar's lexicon."""
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def third_person_form(verb: str) -> str:
    """The third-person singular present of a verb of the lexicon."""
    return verb + ("es" if verb.endswith(("s", "x", "ch", "sh")) else "s")


class _Grammar:
    def __init__(self, rng: np.random.Generator, max_depth: int) -> None:
        self.rng = rng
        self.max_depth = max_depth

    def pick(self, words: tuple[str, ...] | list[str]) -> str:
        ranks = np.arange(1, len(words) + 1)
        weights = 1.0 / ranks
        return words[self.rng.choice(len(words), p=weights / weights.sum())]

    def noun_phrase(self, plural: bool, depth: int) -> list[str]:
        words = [self.pick(DET_PLURAL if plural else DET_SINGULAR)]
        while self.rng.random() < 0.3:
            words.append(self.pick(ADJECTIVES))
        noun = self.pick(NOUNS)
        words.append(plural_form(noun) if plural else noun)
        if depth < self.max_depth and self.rng.random() < 0.2:
            words += ["that", *self.verb_phrase(plural, depth + 1)]
        return words

    def verb_phrase(self, plural: bool, depth: int) -> list[str]:
        if self.rng.random() < 0.6:
            verb = self.pick(TRANSITIVE)
            words = [verb if plural else third_person_form(verb)]
            words += self.noun_phrase(self.rng.random() < 0.4, depth + 1)
        else:
            verb = self.pick(INTRANSITIVE)
            words = [verb if plural else third_person_form(verb)]
        if depth < self.max_depth and self.rng.random() < 0.25:
            words += [self.pick(PREPOSITIONS), *self.noun_phrase(self.rng.random() < 0.4, depth + 1)]
        return words

    def sentence(self) -> str:
        plural = self.rng.random() < 0.4
        return " ".join([*self.noun_phrase(plural, 0), *self.verb_phrase(plural, 0), "."])


@synthetic("grammar", "English-like sentences from a seeded stochastic grammar with subject-verb agreement")
def grammar(sentences: int = 4000, seed: int = 0, max_depth: int = 3) -> TextSplits:
    """Generate `sentences` training sentences and a tenth as many for each of valid and test."""
    n_lines = lines_to_generate("grammar", sentences)
    g = _Grammar(np.random.default_rng(seed), max_depth)
    return cut_generated("grammar", [g.sentence() for _ in range(n_lines)], sentences)
