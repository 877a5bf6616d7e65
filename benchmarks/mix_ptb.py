"""Measure the `mix` plugin: trigram + LSTM interpolated by EM vs either alone, test perplexity on ptb-v.

    pip install -e examples/lmbench-mix
    python benchmarks/mix_ptb.py [--corpus ../shared/corpora/ptb-v] [--epochs 6] [--json out.json]

ptb-v has no valid split, so `mix` holds out the last 10% of training sentences, trains both components on
the other 90%, fits the weights by EM on the held-out part, then retrains the components on all of train
(refit=true) and keeps the weights. The components it ends with are therefore exactly "trigram alone" and
"LSTM alone" trained on the full training split (same seeds, same data), so all three are scored here on test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lmbench
from lmbench.text.tokenize import Tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpora" / "ptb-v"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if "mix" not in lmbench.model_names():
        raise SystemExit("the mix plugin is not installed: pip install -e examples/lmbench-mix")
    corpora = lmbench.load_corpus(args.corpus, Tokenizer("whitespace"))
    lstm = (f"lstm(emb=200, hidden=200, layers=2, dropout=0.2, bptt=35, batch=20, optimizer=sgd, lr=20, "
            f"clip=0.25, epochs={args.epochs})")
    params = {"components": f"trigram + {lstm}", "heldout": 0.1, "refit": True}
    start = time.perf_counter()
    result = lmbench.train("mix", corpora, params)
    seconds = time.perf_counter() - start
    mix = result.model
    test = corpora.test
    figures = {"corpus": args.corpus, "train_tokens": corpora.train.n_predicted, "test_tokens": test.n_predicted,
               "components": params["components"], "weights": mix.fit_info["weights"],
               "em_iterations": mix.fit_info["em_iterations"], "mix_train_seconds": seconds,
               "test_perplexity": {}}
    for model in [*mix.components, mix]:
        figures["test_perplexity"][model.name] = lmbench.evaluate(model, test).perplexity
    ppl = figures["test_perplexity"]
    best_alone = min(ppl["trigram"], ppl["lstm"])
    figures["mix_vs_best_alone"] = ppl["mix"] / best_alone
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
