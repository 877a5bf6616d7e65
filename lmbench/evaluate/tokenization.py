"""What a "word" is: the sparsity lesson as a function of the tokenizer, compared fairly.

For each tokenizer (eojeol = `word`, morphemes = `morph`, subwords = `bpe:N`, jamo = `char` with jamo) on one
corpus: vocabulary size of the training split, OOV rate and the share of held-out n-gram tokens unseen in
training by n, and — the fair comparison — bits per character and perplexity per word of the same model
family (interpolated modified Kneser–Ney, order `order`) trained on each tokenization. Token perplexity is
listed too, to show why it is not comparable across tokenizers.

An out-of-vocabulary token is scored as `<unk>`, one outcome standing for every unseen string, which flatters
a tokenizer with many OOV tokens (eojeol on real text). `bits_per_character_open` also charges each OOV token
the cost of spelling it out: uniformly over the training split's characters plus "unseen character" and
"end", one draw per character and one for the end (a byte-fallback piece `<0xAB>`: one byte, 8 bits). That is
an honest price for an open vocabulary, and the figure the comparison should rest on when OOV rates differ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from lmbench.errors import LmbenchError
from lmbench.evaluate.harness import checked_logprobs
from lmbench.evaluate.sparsity import sparsity_table
from lmbench.evaluate.units import per_unit_figures, text_units
from lmbench.models.ngram.model import NgramModel
from lmbench.text.sources import load_corpus
from lmbench.text.splits import TextSplits
from lmbench.text.tokenize import SPACE, Tokenizer, tokenizer_for

BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
DEFAULT_TOKENIZERS = ("word", "morph", "bpe:1000", "jamo")
LABELS = {"word": "eojeol", "morph": "morpheme", "jamo": "jamo", "char": "character"}


def row_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer behind a row name: a tokenizer spec, or `jamo` for characters decomposed into jamo."""
    return tokenizer_for("", "char", jamo=True) if spec == "jamo" else tokenizer_for("", spec)


def spelling_nats(token: str, n_chars: int) -> float:
    """Natural-log cost of spelling an OOV token: per character (and the end) 1/(n_chars + 2); a byte piece 1/256."""
    if BYTE_PIECE.fullmatch(token):
        return math.log(256)
    return (len(token.removeprefix(SPACE)) + 1) * math.log(n_chars + 2)


def tokenization_table(splits: TextSplits, specs: Sequence[str] = DEFAULT_TOKENIZERS, order: int = 3,
                       max_order: int = 4) -> list[dict[str, Any]]:
    """One record per tokenizer: vocabulary, OOV rate, unseen n-gram shares, bits/char, word and token perplexity."""
    split = "test" if splits.test else "valid"
    lines = splits.get(split)
    if not lines:
        raise LmbenchError(f"corpus {splits.name!r} has no valid or test split to compare tokenizers on")
    records = []
    for spec in specs:
        corpora = load_corpus(splits, row_tokenizer(spec))
        held_out = corpora.get(split)
        table = sparsity_table(corpora, max_order)
        unseen = {int(r.order): float(r.unseen_fraction) for r in table.itertuples() if r.split == split}
        model = NgramModel(order=order, smoothing="modified_kneser_ney", discount_fallback=True).fit(corpora.train)
        model.vocab = corpora.vocab
        lp = checked_logprobs(model, held_out)
        chars, words, _ = text_units(lines, corpora.tokenizer)
        n_chars = len({c for line in splits.train for c in corpora.tokenizer.normalize(line) if not c.isspace()})
        oov = [t for line in lines for t in corpora.tokenizer(line) if t not in corpora.vocab]
        spelled = float(lp.sum()) - sum(spelling_nats(t, n_chars) for t in oov)
        records.append({
            "tokenizer": spec, "label": LABELS.get(spec.partition(":")[0], spec),
            "vocabulary": len(corpora.vocab) - 3, "train_tokens": corpora.train.n_tokens,
            "tokens_per_word": held_out.n_tokens / max(words - held_out.n_sentences, 1),
            "oov_rate": held_out.oov_rate, "unseen_ngram_fraction": unseen,
            "token_perplexity": math.exp(-float(lp.sum()) / lp.size),
            **per_unit_figures(float(lp.sum()), chars, words),
            "bits_per_character_open": per_unit_figures(spelled, chars, words)["bits_per_character"],
        })
    return records
