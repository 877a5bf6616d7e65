"""Seq2Seq translation benchmark (not a test): attention vs none, BLEU by source length, real Korean→English.

    python benchmarks/seq2seq_bench.py                  # both parts
    python benchmarks/seq2seq_bench.py --part synthetic # synthetic:ko-en only
    python benchmarks/seq2seq_bench.py --part kor --kor ../shared/corpora/kor-eng/kor.txt

Part 1, synthetic:ko-en with default settings (model defaults, default corpus sizes): the attention model
and the same model without attention, test BLEU / exact match and the BLEU-by-source-length table.
Part 2, Tatoeba kor.txt (Korean = column 2, English = column 1; fixed seeded 90/10 split, lower-cased word
tokens): BLEU and exact match for greedy and beam 5, with and without attention, beside a retrieval
baseline (the English side of the most similar training source, tf-idf cosine over words) and a
copy-the-most-frequent-training-target baseline; then sample translations.

BLAS threads are pinned to one per process (set before numpy loads): on this shared 2-core machine the
threaded BLAS made these small matmuls several times slower.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from lmbench.evaluate.bleu import corpus_bleu, exact_match, score_translations  # noqa: E402
from lmbench.models.neural.trainer import ProgressBar, Trainer  # noqa: E402
from lmbench.models.seq2seq.model import Seq2Seq  # noqa: E402
from lmbench.text.parallel import load_pairs  # noqa: E402
from lmbench.text.tokenize import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KOR = ROOT.parent / "shared" / "corpora" / "kor-eng" / "kor.txt"


def train(data, **params):
    model = Seq2Seq(**params)
    start = time.perf_counter()
    Trainer(model, [ProgressBar()]).fit(data)
    return model, time.perf_counter() - start


def decode(model, data, split="test", beam=1):
    pairs = data.get(split)
    start = time.perf_counter()
    hyp = model.translate_corpus(pairs.src, beam=beam)
    seconds = time.perf_counter() - start
    hyps = [model.vocab.decode(t.tolist()) for t in hyp.tokens]
    refs = [data.tgt_tokenizer(t) for _, t in data.raw.get(split)]
    # The reported figures: sacreBLEU on detokenized output against the references as written.
    scores = score_translations([data.tgt_tokenizer.detokenize(h) for h in hyps], [t for _, t in data.raw.get(split)],
                                pairs.src.lengths)
    scores["decode_seconds"] = seconds
    return scores, hyps, refs


def by_length_table(rows_by_model):
    names = list(rows_by_model)
    buckets = [r["bucket"] for r in rows_by_model[names[0]]]
    print(f"{'source length':>14} {'sentences':>9} " + " ".join(f"{n:>16}" for n in names))
    for i, b in enumerate(buckets):
        cells = " ".join(f"{rows_by_model[n][i]['bleu']:>9.2f} ({rows_by_model[n][i]['exact_match']:>4.0%})"
                         for n in names)
        print(f"{b:>14} {rows_by_model[names[0]][i]['sentences']:>9} {cells}")


def part_synthetic(results, epochs=None, kinds=("additive", None)):
    data = load_pairs("synthetic:ko-en")
    print(f"synthetic:ko-en: {len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test pairs, "
          f"vocabularies {len(data.src_vocab)} (ko) / {len(data.tgt_vocab)} (en)")
    extra = {"epochs": epochs} if epochs else {}
    out = {}
    runs = [("no attention" if k is None else f"attention {k}", {"attention": k}) for k in kinds]
    for name, params in runs:
        model, seconds = train(data, **params, **extra)
        scores, _, _ = decode(model, data)
        out[name] = {"train_seconds": seconds, "params": model.params, "history": model.fit_info["history"],
                     **scores}
        print(f"  {name:<19} train {seconds:6.1f} s ({model.fit_info['epochs_done']} epochs, "
              f"{model.fit_info['steps']:,} steps)  test BLEU {scores['bleu']:6.2f}  "
              f"exact match {scores['exact_match']:.1%}")
    print("BLEU (exact match) by source length, greedy decoding:")
    by_length_table({n: r["bleu_by_length"] for n, r in out.items()})
    results["synthetic"] = out


def retrieval_baseline(data):
    """English side of the training pair whose source is most similar (tf-idf cosine over source words)."""
    src_train = [s for s, _ in data.raw.train]
    src_test = [s for s, _ in data.raw.test]
    tok = data.src_tokenizer
    vocab = {w: i for i, w in enumerate(sorted({w for s in src_train for w in tok(s)}))}

    def matrix(lines):
        m = np.zeros((len(lines), len(vocab)), dtype=np.float32)
        for i, line in enumerate(lines):
            for w in tok(line):
                if w in vocab:
                    m[i, vocab[w]] += 1.0
        return m

    train_m, test_m = matrix(src_train), matrix(src_test)
    idf = np.log((1 + len(src_train)) / (1 + (train_m > 0).sum(axis=0))) + 1.0
    train_m *= idf
    test_m *= idf
    train_m /= np.linalg.norm(train_m, axis=1, keepdims=True) + 1e-9
    test_m /= np.linalg.norm(test_m, axis=1, keepdims=True) + 1e-9
    nearest = (test_m @ train_m.T).argmax(axis=1)
    return [data.tgt_tokenizer(data.raw.train[j][1]) for j in nearest]


def part_kor(results, path, epochs):
    if not Path(path).is_file():
        print(f"{path} not found: skipping the kor-eng part")
        return
    tok = Tokenizer("word", lowercase=True)
    data = load_pairs(f"{path}?source=2&split=90/10&seed=0", tok, tok)
    print(f"\nkor-eng ({path}): {len(data.train):,} train / {len(data.test):,} test pairs (seeded 90/10), "
          f"vocabularies {len(data.src_vocab):,} (ko) / {len(data.tgt_vocab):,} (en), "
          f"test source OOV {data.test.src.oov_rate:.1%}")
    refs = [data.tgt_tokenizer(t) for _, t in data.raw.test]
    rows = {}
    retrieved = retrieval_baseline(data)
    rows["baseline: nearest training source (tf-idf)"] = (corpus_bleu(retrieved, refs), exact_match(retrieved, refs))
    frequent = data.tgt_tokenizer(Counter(t for _, t in data.raw.train).most_common(1)[0][0])
    rows[f"baseline: most frequent target ({' '.join(frequent)!r})"] = (
        corpus_bleu([frequent] * len(refs), refs), exact_match([frequent] * len(refs), refs))
    samples = {"retrieval": retrieved}
    out = {"baselines": {k: {"bleu": b, "exact_match": e} for k, (b, e) in rows.items()}}
    common = {"epochs": epochs, "dropout": 0.3, "hidden": 128, "src_emb": 128, "tgt_emb": 128}
    for name, params in (("attention", {}), ("no attention", {"attention": None})):
        model, seconds = train(data, **common, **params)
        out[name] = {"train_seconds": seconds, "params": model.params}
        for beam in (1, 5):
            scores, hyps, _ = decode(model, data, beam=beam)
            label = f"seq2seq {name}, {'greedy' if beam == 1 else f'beam {beam}'}"
            rows[label] = (scores["bleu"], scores["exact_match"])
            out[name][f"beam{beam}"] = scores
            samples[label] = hyps
        print(f"  trained {name} in {seconds:.1f} s")
    print(f"{'system':<60} {'BLEU':>7} {'exact':>7}")
    for label, (bleu, em) in rows.items():
        print(f"{label:<60} {bleu:>7.2f} {em:>7.1%}")
    print("\nsample translations (test split):")
    rng = np.random.default_rng(0)
    for i in sorted(rng.choice(len(refs), 8, replace=False)):
        print(f"  ko:   {data.raw.test[i][0]}\n  ref:  {' '.join(refs[i])}")
        for label, hyps in samples.items():
            print(f"    {label:<40} {' '.join(hyps[i])}")
    results["kor"] = out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "synthetic", "kor"], default="all")
    ap.add_argument("--kor", default=str(KOR), help="path of the Tatoeba kor.txt file")
    ap.add_argument("--kor-epochs", type=int, default=20)
    ap.add_argument("--synthetic-epochs", type=int, default=None, help="override the default epochs (testing)")
    ap.add_argument("--attention", default="additive,none",
                    help="attention kinds to train on synthetic:ko-en (comma-separated: none, dot, general, additive)")
    ap.add_argument("--json", help="also write every figure to this JSON file")
    args = ap.parse_args()
    results = {}
    if args.part in ("all", "synthetic"):
        kinds = [None if k == "none" else k for k in args.attention.split(",")]
        part_synthetic(results, args.synthetic_epochs, kinds)
    if args.part in ("all", "kor"):
        part_kor(results, args.kor, args.kor_epochs)
    if args.json:
        from lmbench.evaluate.harness import json_safe

        Path(args.json).write_text(json.dumps(json_safe(results), indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
