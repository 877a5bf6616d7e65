"""Speed of lmbench's modified Kneser–Ney trigram against KenLM and NLTK, all measured in one run.

    python benchmarks/ngram_speed.py [--shared ../shared] [--lmplz PATH] [--json]

Training: ptb-v/train.txt repeated 13× (915,070 words, 958,880 predicted tokens), `lmplz -o 3
--discount_fallback` semantics (every count is a multiple of 13, so Chen & Goodman's discounts cannot be
estimated and KenLM's fallback is used). Scoring: ptb-v/test.txt repeated 20× (1.65 M predicted tokens).
References measured in the same run: the `kenlm` Python module scoring our exported ARPA file (KenLM's
query code), NLTK's KneserNeyInterpolated(3) on a small sample, and KenLM's `lmplz` when a binary is
given (--lmplz or on PATH); otherwise the lmplz time is QUOTED from ../shared/corpora/README.md.
Not a test: timings are noisy on a shared machine; the script reports the best of a few runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from lmbench.evaluate.harness import evaluate
from lmbench.models.ngram.model import ArpaModel, NgramModel
from lmbench.text.corpus import Corpus
from lmbench.text.sources import load_corpus
from lmbench.text.tokenize import Tokenizer

REPO = Path(__file__).resolve().parents[1]
LMPLZ_QUOTED_SECONDS = 0.59  # ../shared/corpora/README.md: lmplz -o 3 on ptb-v train ×13, this machine
KENLM_QUERY_QUOTED = 5.7e6  # tokens/s, same README (binary model, `query` program)
NLTK_QUOTED = 34.0  # tokens/s, same README


def best_of(runs: int, fn):
    """(best wall time, median wall time, last result) of calling fn() `runs` times."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result


def repeated(corpus, times):
    """The corpus's sentences repeated `times` times, as a fresh corpus (nothing cached)."""
    return corpus.select(np.tile(np.arange(corpus.n_sentences), times), name=f"{corpus.name}×{times}")


def bench_ours(train, test, runs):
    def fit():
        train._cache.clear()  # time the whole pipeline from the id arrays, including the bounded stream
        return NgramModel(order=3, smoothing="modified_kneser_ney", discount_fallback=True).fit(train)

    fit_best, fit_median, model = best_of(runs, fit)

    def score():
        test._cache.clear()
        model.require_tables()._index.clear()  # the hash index is part of scoring, not of a warm cache
        return model.logprobs(test)

    score_best, score_median, lp = best_of(runs, score)
    # Peak memory of one fit + score, traced (numpy allocations included), in a separate pass.
    tracemalloc.start()
    fit()
    score()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return model, lp, {
        "train_seconds_best": fit_best, "train_seconds_median": fit_median,
        "score_seconds_best": score_best, "score_seconds_median": score_median,
        "score_tokens_per_second": test.n_predicted / score_best,
        "traced_peak_mb": peak / 2**20, "ngrams": model.fit_info["ngrams"],
    }


def bench_kenlm_query(model, test, lp, workdir):
    try:
        import kenlm
    except ImportError:
        return {"available": False}
    arpa = workdir / "ours.arpa"
    model.export_arpa(arpa)
    km = kenlm.Model(str(arpa))
    sentences = [" ".join(model.vocab.decode(s)) for s in test]

    def score():
        return sum(km.score(s, bos=True, eos=True) for s in sentences)

    best, median, total_log10 = best_of(3, score)
    ours_log10 = float(lp.sum()) / np.log(10)
    return {"available": True, "score_seconds_best": best, "score_seconds_median": median,
            "tokens_per_second": test.n_predicted / best,
            "total_log10_ours": ours_log10, "total_log10_kenlm": total_log10}


def bench_nltk(train_lines, test_lines, max_tokens, budget):
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import pad_both_ends, padded_everygram_pipeline

    sents = [line.split() for line in train_lines if line.split()]
    start = time.perf_counter()
    grams, vocab = padded_everygram_pipeline(3, sents)
    lm = KneserNeyInterpolated(3)
    lm.fit(grams, vocab)
    fit_seconds = time.perf_counter() - start
    scored, start = 0, time.perf_counter()
    for line in test_lines:
        toks = list(pad_both_ends(line.split(), n=3))
        for i in range(2, len(toks) - 1):  # each word and the first </s>, KenLM's accounting
            lm.logscore(toks[i], toks[i - 2 : i])
            scored += 1
            if scored >= max_tokens or time.perf_counter() - start > budget:
                break
        else:
            continue
        break
    seconds = time.perf_counter() - start
    return {"fit_seconds": fit_seconds, "scored_tokens": scored, "score_seconds": seconds,
            "tokens_per_second": scored / seconds}


def bench_lmplz(lmplz, train_text, workdir, memory, model, test):
    if not lmplz:
        return {"available": False, "quoted_seconds": LMPLZ_QUOTED_SECONDS}
    path = workdir / "train13.txt"
    path.write_text(train_text, encoding="utf-8")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with open(path, "rb") as src, open(workdir / "lmplz.arpa", "wb") as dst:
            subprocess.run([lmplz, "-o", "3", "--discount_fallback", "-S", memory, "-T", str(workdir)],
                           stdin=src, stdout=dst, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    # Same model? Score the test set with lmplz's ARPA through our back-off code and compare perplexities.
    kenlm_model = ArpaModel.from_arpa(workdir / "lmplz.arpa")
    kenlm_test = Corpus(np.array([kenlm_model.vocab.index[w] for w in model.vocab.decode(test.ids)], dtype=np.int32),
                        test.offsets, kenlm_model.vocab)
    ppl_lmplz = evaluate(kenlm_model, kenlm_test).perplexity
    ppl_ours = evaluate(model, test).perplexity
    return {"available": True, "binary": lmplz, "memory_option": memory, "seconds_best": min(times),
            "seconds_median": float(np.median(times)), "test_perplexity_lmplz_arpa": ppl_lmplz,
            "test_perplexity_ours": ppl_ours}


def bench_kenlm_query_program(bin_dir, model, test_lines, workdir):
    """KenLM's own `query` (and `build_binary`) on our exported ARPA: wall time including loading the model."""
    query, build_binary = bin_dir / "query", bin_dir / "build_binary"
    if not query.is_file():
        return {"available": False}
    arpa, binary, text = workdir / "q.arpa", workdir / "q.binary", workdir / "test20.txt"
    model.export_arpa(arpa)
    text.write_text("\n".join(test_lines * 20) + "\n", encoding="utf-8")
    out = {"available": True}
    files = {"arpa": arpa}
    if build_binary.is_file():
        subprocess.run([str(build_binary), str(arpa), str(binary)], check=True, capture_output=True)
        files["binary"] = binary
    for kind, lm in files.items():
        times, ppl = [], None
        for _ in range(3):
            start = time.perf_counter()
            with open(text, "rb") as src:
                res = subprocess.run([str(query), "-v", "summary", str(lm)], stdin=src, capture_output=True,
                                     text=True, check=True)
            times.append(time.perf_counter() - start)
            ppl = float(res.stdout.split("Perplexity including OOVs:")[1].split()[0])
        out[kind] = {"seconds_best": min(times), "perplexity": ppl}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--lmplz", default=os.environ.get("LMPLZ") or shutil.which("lmplz"),
                        help="a KenLM lmplz binary to time (default: $LMPLZ or lmplz on PATH)")
    parser.add_argument("--lmplz-memory", default="100M", help="lmplz -S (its default, 80%% of RAM, is slow here)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nltk-tokens", type=int, default=300)
    parser.add_argument("--nltk-budget", type=float, default=15.0, help="seconds of NLTK scoring at most")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ptb = args.shared / "corpora" / "ptb-v"
    if not (ptb / "train.txt").is_file():
        sys.exit(f"ptb-v not found under {args.shared}; pass --shared")
    cs = load_corpus(str(ptb), Tokenizer("whitespace"))
    train, test = repeated(cs.train, 13), repeated(cs.test, 20)
    train_lines = (ptb / "train.txt").read_text(encoding="utf-8").splitlines()
    test_lines = (ptb / "test.txt").read_text(encoding="utf-8").splitlines()

    model, lp, ours = bench_ours(train, test, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        kenlm_query = bench_kenlm_query(model, test, lp, Path(tmp))
        query_program = bench_kenlm_query_program(Path(args.lmplz).parent, model, test_lines, Path(tmp)) \
            if args.lmplz else {"available": False}
        lmplz = bench_lmplz(args.lmplz, "\n".join(train_lines * 13) + "\n", Path(tmp), args.lmplz_memory, model,
                            repeated(cs.test, 1))
    nltk = bench_nltk(train_lines, test_lines, args.nltk_tokens, args.nltk_budget)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    lmplz_seconds = lmplz["seconds_best"] if lmplz["available"] else LMPLZ_QUOTED_SECONDS
    report = {
        "train_words": train.n_tokens, "train_predicted_tokens": train.n_predicted,
        "test_predicted_tokens": test.n_predicted, "ours": ours, "kenlm_query": kenlm_query,
        "lmplz": lmplz, "kenlm_query_program": query_program, "nltk": nltk, "process_peak_rss_mb": rss_mb,
        "ratios": {
            "train_time_ours_over_lmplz": ours["train_seconds_best"] / lmplz_seconds,
            "lmplz_measured": lmplz["available"],
            "score_speed_ours_over_kenlm_module": (ours["score_tokens_per_second"] / kenlm_query["tokens_per_second"]
                                                   if kenlm_query["available"] else None),
            "score_speed_ours_over_nltk": ours["score_tokens_per_second"] / nltk["tokens_per_second"],
        },
        "targets_met": {
            "train_le_1.2s": ours["train_seconds_best"] <= 1.2,
            "score_ge_2M_per_s": ours["score_tokens_per_second"] >= 2e6,
            "peak_memory_lt_1GB": max(rss_mb, ours["traced_peak_mb"]) < 1024,
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    r = report["ratios"]
    print(f"modified Kneser–Ney trigram, ptb-v train ×13 = {train.n_tokens:,} words "
          f"({train.n_predicted:,} predicted tokens); n-grams {' / '.join(f'{n:,}' for n in ours['ngrams'])}")
    print(f"  lmbench train:   {ours['train_seconds_best']:.3f} s best, {ours['train_seconds_median']:.3f} s median")
    if lmplz["available"]:
        print(f"  KenLM lmplz:     {lmplz['seconds_best']:.3f} s best, {lmplz['seconds_median']:.3f} s median "
              f"(measured now: {lmplz['binary']} -S {lmplz['memory_option']})")
        print(f"    same model: test perplexity {lmplz['test_perplexity_ours']:.4f} (ours) vs "
              f"{lmplz['test_perplexity_lmplz_arpa']:.4f} (lmplz's ARPA)")
    else:
        print(f"  KenLM lmplz:     {LMPLZ_QUOTED_SECONDS:.2f} s (QUOTED from ../shared/corpora/README.md; "
              "no lmplz binary here)")
    print(f"  ratio train time lmbench / lmplz: {r['train_time_ours_over_lmplz']:.2f}")
    print(f"scoring ptb-v test ×20 = {test.n_predicted:,} predicted tokens")
    print(f"  lmbench:         {ours['score_tokens_per_second'] / 1e6:.2f} M tokens/s "
          f"({ours['score_seconds_best']:.3f} s best, {ours['score_seconds_median']:.3f} s median)")
    if kenlm_query["available"]:
        print(f"  kenlm module:    {kenlm_query['tokens_per_second'] / 1e6:.2f} M tokens/s "
              f"(kenlm.Model.score per sentence on our exported ARPA, Python loop included); "
              f"ratio lmbench / kenlm {r['score_speed_ours_over_kenlm_module']:.2f}")
        print(f"    same total log10 probability: ours {kenlm_query['total_log10_ours']:.3f}, "
              f"kenlm {kenlm_query['total_log10_kenlm']:.3f}")
    if query_program["available"]:
        for kind in ("binary", "arpa"):
            if kind in query_program:
                q = query_program[kind]
                speed = test.n_predicted / q["seconds_best"]
                print(f"  KenLM query ({kind} model, load included): {q['seconds_best']:.3f} s = "
                      f"{speed / 1e6:.2f} M tokens/s, perplexity {q['perplexity']:.4f}; "
                      f"ratio lmbench / query {ours['score_tokens_per_second'] / speed:.2f}")
        print(f"    lmbench perplexity on the same tokens: {float(np.exp(-lp.mean())):.4f}")
    else:
        print(f"  KenLM query program ({KENLM_QUERY_QUOTED / 1e6:.1f} M tokens/s) is QUOTED from the README only")
    print(f"  NLTK KneserNeyInterpolated(3): fit {nltk['fit_seconds']:.2f} s on ptb-v train (×1); scored "
          f"{nltk['scored_tokens']} tokens in {nltk['score_seconds']:.1f} s = {nltk['tokens_per_second']:.1f} tokens/s"
          f" (README: {NLTK_QUOTED:.0f}/s)")
    print(f"  ratio scoring speed lmbench / NLTK: {r['score_speed_ours_over_nltk']:,.0f}×")
    print(f"memory: traced peak of one fit + score {ours['traced_peak_mb']:.0f} MB; process peak RSS {rss_mb:.0f} MB")
    print("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in report["targets_met"].items()))


if __name__ == "__main__":
    main()
