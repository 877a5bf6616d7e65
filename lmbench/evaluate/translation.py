"""The one evaluation of a translator: translate a split, score it against its references.

Every translator goes through here (the `translate eval` command and the suite's `bleu` metric alike):
corpus BLEU (sacreBLEU with its signature, or NLTK's by request), chrF, exact match, BLEU by source length,
the target perplexity when the translator can score targets (capability "score"), decoding speed, and a few
sample translations. Scores compare readable text: the detokenized output against the reference as written.
"""

from __future__ import annotations

import math
import time
from typing import Any

from lmbench.evaluate.bleu import score_translations
from lmbench.models.base import Translator
from lmbench.text.parallel import ParallelSet


def evaluate_translator(model: Translator, data: ParallelSet, split: str = "test", beam: int | None = None,
                        length_norm: float | None = None, samples: int = 5, bleu: str = "sacrebleu") -> dict[str, Any]:
    """BLEU (sacreBLEU unless bleu="nltk"), chrF, exact match, BLEU by source length and (when it can score)
    target perplexity on one split."""
    pairs = data.get(split)
    raw = data.raw.get(split) or []
    start = time.perf_counter()
    hyp = model.translate_corpus(pairs.src, beam=beam, length_norm=length_norm)
    seconds = time.perf_counter() - start
    detok = model.target_tokenizer
    vocab = model.require_fitted()
    hyps = [detok.detokenize(vocab.decode(t.tolist())) for t in hyp.tokens]
    # The reference as written: its OOV words stay themselves and count as misses.
    scores = score_translations(hyps, [t for _, t in raw], pairs.src.lengths, bleu=bleu)
    if model.has("score"):
        lp, counts = model.score(pairs)
        scores["target_perplexity"] = math.exp(-lp.sum() / counts.sum())
    scores.update({
        "model": model.name, "corpus": data.name, "split": split,
        "beam": beam or model.params.get("beam", 1),
        "length_norm": model.params.get("length_norm") if length_norm is None else length_norm,
        "target_oov_rate": pairs.tgt.oov_rate, "decode_seconds": seconds,
        "sentences_per_second": len(hyps) / seconds if seconds > 0 else float("inf"),
        "samples": [{"source": s, "reference": t, "translation": h}
                    for (s, t), h in list(zip(raw, hyps))[:samples]],
    })
    return scores
