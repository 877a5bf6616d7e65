"""Figures comparable across tokenizations: bits per character and perplexity per word.

Perplexity per token depends on what a token is (a morpheme model predicts more, easier tokens than an eojeol
model), so tokenizers are compared on the text itself. From the same total log-probability L (natural log,
summed over every predicted token, `</s>` included) of the sentences a model scored:

    bits per character  = −L / ln 2 / C    C = characters of the NFC text, one white space between words,
                                                plus one per sentence for its end (the `</s>` / newline)
    perplexity per word = exp(−L / W)       W = white-space words of the text (eojeol for Korean),
                                                plus one per sentence for its end, KenLM's accounting

Lines the tokenizer turns into nothing are skipped, as the corpus skips them.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Any

from lmbench.text.tokenize import Tokenizer


def text_units(lines: Sequence[str], tokenizer: Tokenizer) -> tuple[int, int, int]:
    """(characters, words, sentences) of the lines that give tokens, ends of sentences included."""
    chars = words = sentences = 0
    for line in lines:
        if not tokenizer(line):
            continue
        parts = unicodedata.normalize("NFC", line).split()
        chars += sum(map(len, parts)) + len(parts) - 1 + 1  # spaces between words, and the sentence end
        words += len(parts) + 1
        sentences += 1
    return chars, words, sentences


def per_unit_figures(log_likelihood: float, characters: int, words: int) -> dict[str, Any]:
    """Bits per character and perplexity per word from a total natural-log probability."""
    nll = -log_likelihood
    return {
        "characters": characters,
        "words": words,
        "bits_per_character": nll / math.log(2) / characters if characters else float("nan"),
        "word_perplexity": math.exp(nll / words) if words and math.isfinite(nll) else float("inf"),
    }
