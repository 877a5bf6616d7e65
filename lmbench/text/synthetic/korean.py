"""`synthetic:korean` — Korean as it is written: the Korean side of `synthetic:ko-en` with particles attached.

The ko-en generator writes Korean morpheme-segmented (`학생 은 사과 를 먹는다`); here particles and the plural
들 are attached to the word before them, as Korean spacing has it (`학생은 사과를 먹는다`), so a space-separated
word is an eojeol and the tokenizer decides what a "word" is. The subject particle 이 and the determiner 이
("this") are one syllable: it is attached only after a consonant-final word other than an adnominal verb form,
which is where the particle stands in this grammar.
"""

from __future__ import annotations

from lmbench.text.koen import generate_pairs, has_final_consonant
from lmbench.text.splits import TextSplits
from lmbench.text.synthetic import cut_generated, lines_to_generate, synthetic

PARTICLES = frozenset({"은", "는", "가", "을", "를", "에서", "에", "들"})


def attach_particles(segmented: str) -> str:
    """`학생 들 은 사과 를 먹는다` → `학생들은 사과를 먹는다`."""
    words: list[str] = []
    for token in segmented.split():
        attach = bool(words) and (token in PARTICLES or (
            token == "이" and has_final_consonant(words[-1]) and not words[-1].endswith(("은", "는", "을", "던"))))
        if attach:
            words[-1] += token
        else:
            words.append(token)
    return " ".join(words)


@synthetic("korean", "Korean sentences with natural spacing (eojeol): the Korean side of ko-en, particles attached")
def korean(sentences: int = 4000, seed: int = 0) -> TextSplits:
    """Generate `sentences` training sentences and a tenth as many for each of valid and test."""
    n_lines = lines_to_generate("korean", sentences)
    lines = [attach_particles(ko) for ko, _ in generate_pairs(n_lines, seed)]
    splits = cut_generated("korean", lines, sentences)
    splits.info = {"generator": "lmbench.text.synthetic.korean"}
    return splits
