"""Long-range dependencies: trigram vs RNN vs LSTM vs GRU on synthetic:dependency (not a test).

Trains the four models on the default `synthetic:dependency` corpus (about 1 M training tokens, an exact
Bayes floor), then prints
  1. the distance-probe accuracy table (right closer ranked first, trigger d tokens back; chance 1/4),
  2. each model's test perplexity next to the Bayes-optimal perplexity, with excess bits/token,
  3. the gradient-flow lag profile ‖∂L_t/∂h_{t−k}‖ of the RNN and the LSTM (trained and at initialisation),
     and the RNN/LSTM ratio at lag 50, plus training-time gradient norms and how often clipping fired.

    python benchmarks/long_range.py [--corpus SPEC] [--epochs N] [--json-out FILE]

Budget: ≤ 15 minutes on a 2-core machine with the defaults below.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from lmbench.evaluate.floor import floor_info
from lmbench.evaluate.gradflow import fresh_copy, lag_profile, training_grad_norms
from lmbench.evaluate.harness import evaluate, json_safe, train
from lmbench.evaluate.probes import DEFAULT_DISTANCES, distance_probe
from lmbench.models.registry import create_model
from lmbench.text.sources import load_corpus
from lmbench.text.synthetic.dependency import process_from_spec

# One small recurrent configuration for all three cells, so that only the cell differs. Training follows the
# package defaults (SGD at each cell's default lr, clip 0.25, truncated BPTT of 35 steps); only the size is
# smaller than the PTB default (one layer of 64, no dropout) so that three models train in the time budget.
# `--optimizer adam` trains all three with Adam (lr 0.003) instead, for comparison.
NEURAL = {"emb": 32, "hidden": 64, "layers": 1, "dropout": 0.0, "batch": 32, "seed": 0}
MODELS = {
    # The synthetic corpus has no singletons, so Kneser–Ney needs KenLM's fallback discounts.
    "trigram": {"discount_fallback": True},
    "rnn": NEURAL,
    "lstm": NEURAL,
    "gru": NEURAL,
}
LAG = 50


def train_by_epoch(name: str, corpora, params: dict, process, items: int):
    """Train a recurrent LM one epoch at a time (continuing the same run) and probe it after each epoch."""
    model = create_model(name, params)
    epochs = model.params["epochs"]
    model.tokenizer = corpora.tokenizer
    seconds, curve, norms = 0.0, [], []
    for epoch in range(1, epochs + 1):
        model.params["epochs"] = epoch
        model.resumable = epoch > 1  # the next fit() continues the run where the last epoch ended
        start = time.perf_counter()
        model.fit(corpora.train, corpora.valid)
        seconds += time.perf_counter() - start
        norms += model.fit_info.get("grad_norms", [])
        probe = distance_probe(model, process, DEFAULT_DISTANCES, items, seed=0)
        curve.append([row["accuracy"] for row in probe["distances"]])
    model.fit_info["grad_norms"] = norms
    return model, seconds, curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="synthetic:dependency")
    ap.add_argument("--epochs", type=int, default=None, help="Neural epochs [default: the package's, 6].")
    ap.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                    help="sgd: each cell's default lr and clip; adam: lr 0.003 for all.")
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    corpora = load_corpus(args.corpus)
    process = process_from_spec(args.corpus)
    floor = floor_info(corpora, "test")
    print(f"optimizer for the recurrent models: {args.optimizer}")
    print(f"corpus {args.corpus}: {corpora.train.n_predicted:,} training tokens, vocabulary {len(corpora.vocab)}, "
          f"true entropy rate {corpora.info['entropy_rate_bits']:.4f} bits/token "
          f"(perplexity {corpora.info['entropy_rate_perplexity']:.3f})", flush=True)

    results: dict[str, dict] = {}
    trained = {}
    curves: dict[str, list[list[float]]] = {}
    for name in args.models.split(","):
        params = dict(MODELS[name])
        if name in ("rnn", "lstm", "gru"):
            if args.epochs is not None:
                params["epochs"] = args.epochs
            if args.optimizer == "adam":
                params.update(optimizer="adam", lr=0.003)
        if name in ("rnn", "lstm", "gru"):
            model, seconds, curves[name] = train_by_epoch(name, corpora, params, process, args.items)
        else:
            res = train(name, corpora, params)
            model, seconds = res.model, res.train_seconds
        ev = evaluate(model, corpora.test)
        probe = distance_probe(model, process, DEFAULT_DISTANCES, args.items, seed=0)
        trained[name] = model
        results[name] = {"params": params, "train_seconds": seconds, "accuracy_by_epoch": curves.get(name),
                         "perplexity": ev.perplexity, "bits": ev.cross_entropy_bits,
                         "excess_bits": ev.cross_entropy_bits - floor["bits_per_token"],
                         "distance": probe["distances"]}
        print(f"  {name}: trained in {seconds:.1f} s, test perplexity {ev.perplexity:.3f} "
              f"(floor {floor['perplexity']:.3f}); elapsed {time.perf_counter() - t0:.0f} s", flush=True)

    print(f"\nAccuracy of ranking the right closer first, by distance d (chance {1 / len(process.triggers):.2f}, "
          f"{args.items} items per d; 95% Wilson interval half-width ≤ {1.96 * 0.5 / np.sqrt(args.items):.2f})")
    print(f"{'model':<8}" + "".join(f"{'d=' + str(d):>8}" for d in DEFAULT_DISTANCES))
    for name, r in results.items():
        print(f"{name:<8}" + "".join(f"{row['accuracy']:>8.3f}" for row in r["distance"]))

    if curves:
        print("\nThe same accuracies after each training epoch (how fast each cell learns each distance)")
        print(f"{'model':<8}{'epoch':>6}" + "".join(f"{'d=' + str(d):>8}" for d in DEFAULT_DISTANCES))
        for name, curve in curves.items():
            for epoch, accs in enumerate(curve, 1):
                print(f"{name:<8}{epoch:>6}" + "".join(f"{a:>8.3f}" for a in accs))

    print(f"\nTest perplexity vs the Bayes floor ({floor['tokens']:,} predicted tokens)")
    print(f"{'model':<8}{'perplexity':>12}{'bits/token':>12}{'excess bits':>13}{'train s':>9}")
    print(f"{'floor':<8}{floor['perplexity']:>12.3f}{floor['bits_per_token']:>12.4f}{0.0:>13.4f}{'':>9}")
    for name, r in results.items():
        print(f"{name:<8}{r['perplexity']:>12.3f}{r['bits']:>12.4f}{r['excess_bits']:>13.4f}"
              f"{r['train_seconds']:>9.1f}")

    flows = {}
    lags = (0, 1, 5, 10, 20, LAG)
    for name in ("rnn", "lstm", "gru"):
        if name not in trained:
            continue
        model = trained[name]
        flows[name] = {"trained": lag_profile(model, corpora.test, LAG, positions=64, seed=0)["layers"][0],
                       "init": lag_profile(fresh_copy(model), corpora.test, LAG, positions=64, seed=0)["layers"][0],
                       "training": {k: v for k, v in (training_grad_norms(model) or {}).items() if k != "per_step"}}
    if flows:
        print("\nGradient flow: mean ‖∂L_t/∂h_(t−k)‖ over 64 test positions (loss at t only)")
        print(f"{'':<14}" + "".join(f"{'k=' + str(k):>11}" for k in lags))
        for name, f in flows.items():
            for when in ("init", "trained"):
                print(f"{name + ' ' + when:<14}" + "".join(f"{f[when][k]:>11.3e}" for k in lags))
        if "rnn" in flows and "lstm" in flows:
            for when in ("init", "trained"):
                r, lstm = flows["rnn"][when][LAG], flows["lstm"][when][LAG]
                rel_r = r / flows["rnn"][when][0]
                rel_l = lstm / flows["lstm"][when][0]
                print(f"lag {LAG}, {when}: LSTM/RNN = {lstm / r:.3g}× (absolute); relative to lag 0: "
                      f"RNN {rel_r:.3g}, LSTM {rel_l:.3g} → {rel_l / rel_r:.3g}×")
        print("\nTraining-time global gradient norm (before clipping)")
        for name, f in flows.items():
            t = f["training"]
            if t:
                print(f"  {name}: {t['steps']} steps, median {t['median']:.3g}, max {t['max']:.3g}, "
                      f"clipping fired on {t['clipped_fraction']:.1%} of steps")
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s")
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(json_safe({"corpus": args.corpus, "floor": floor, "entropy_rate_bits":
                                 corpora.info["entropy_rate_bits"], "models": results, "gradflow": flows,
                                 "seconds": total}), fh, indent=1)


if __name__ == "__main__":
    main()
