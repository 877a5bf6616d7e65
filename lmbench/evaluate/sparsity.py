"""Sparsity counts: how many n-grams a corpus has, how many are rare, how many test n-grams training never saw.

For each order n and split: n-gram types and tokens (an n-gram lies inside one sentence, `<s>` included,
so the first words of a sentence have shorter histories), counts-of-counts n1..n4, and for held-out splits
the share of n-gram tokens absent from training, the events an order-n maximum-likelihood model gives
probability 0 (an unseen n-gram, or an unseen history), and the split's OOV rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lmbench.errors import LmbenchError
from lmbench.models.ngram.backoff import BackoffTables
from lmbench.models.ngram.counts import count_ngrams, counts_of_counts, depth_in_sentence
from lmbench.models.ngram.model import NgramModel
from lmbench.text.sources import CorpusSet
from lmbench.text.vocab import BOS_ID

COLUMNS = ["split", "order", "types", "tokens", "n1", "n2", "n3", "n4", "unseen_tokens", "unseen_fraction",
           "mle_zero_prob", "oov_rate"]


def sparsity_table(corpora: CorpusSet, max_order: int = 5) -> pd.DataFrame:
    """One row per (split, order): types, tokens, n1..n4; held-out splits also unseen n-grams and MLE zeros."""
    if max_order < 1:
        raise LmbenchError(f"--max-order must be ≥ 1, got {max_order}")
    train_counts = count_ngrams(corpora.train, max_order)
    train_tables = BackoffTables(train_counts.V, [t.keys for t in train_counts.tables],
                                 [np.zeros(len(t)) for t in train_counts.tables],
                                 [np.zeros(len(t)) for t in train_counts.tables])
    rows: list[dict[str, Any]] = []
    for split in ("train", "valid", "test"):
        corpus = getattr(corpora, split)
        if corpus is None:
            continue
        counts = train_counts if split == "train" else count_ngrams(corpus, max_order)
        stream = corpus.bounded().astype(np.int64)
        depth = depth_in_sentence(stream)
        index = train_tables.locate(stream, depth)
        predicted = stream != BOS_ID
        for n in range(1, max_order + 1):
            table = counts.table(n)
            t = counts_of_counts(table.count, 4)
            row: dict[str, Any] = {"split": split, "order": n, "types": int((table.count > 0).sum()),
                                   "tokens": int(table.count.sum())}
            row.update({f"n{r}": int(t[r]) for r in range(1, 5)})
            if split == "train":
                row.update(unseen_tokens=0, unseen_fraction=0.0, mle_zero_prob=0, oov_rate=0.0)
            else:
                at = predicted & (depth >= n - 1)  # positions where an n-gram ends
                if n == 1:
                    unseen = int((train_counts.table(1).count[stream[at]] == 0).sum())
                else:
                    unseen = int((index[n - 1][at] < 0).sum())
                mle = NgramModel(order=n, smoothing="mle").fit(corpora.train)
                zero = int(np.isneginf(mle.logprobs(corpus)).sum())
                row.update(unseen_tokens=unseen, unseen_fraction=unseen / row["tokens"] if row["tokens"] else 0.0,
                           mle_zero_prob=zero, oov_rate=corpus.oov_rate)
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
