"""Speed of lmbench's modified Kneser–Ney trigram against KenLM and NLTK, all measured in one run.

    python benchmarks/ngram_speed.py [--shared ../shared] [--lmplz PATH] [--big] [--json]

Training: ptb-v/train.txt repeated 13× (915,070 words, 958,880 predicted tokens), `lmplz -o 3
--discount_fallback` semantics (every count is a multiple of 13, so Chen & Goodman's discounts cannot be
estimated and KenLM's fallback is used). Scoring: ptb-v/test.txt repeated 20× (1.65 M predicted tokens).
References measured in the same run: the `kenlm` Python module scoring our exported ARPA file (KenLM's
query code), NLTK's KneserNeyInterpolated(3) on a small sample, and KenLM's `lmplz` when a binary is
given (--lmplz or on PATH; then also KenLM's `query` on our model made binary by `build_binary`, load
included, and `lmbench train trigram` on the same file as a whole process); otherwise the lmplz time is
QUOTED from ../shared/corpora/README.md. Our fit is timed in process from the encoded ids, our scoring in
process with the hash index built each time; lmplz and query are whole processes.
With --big, also the 50 MB case: tinyshakespeare ×45 (blank lines removed, 9.1 M words) trained as whole
processes, `lmbench train trigram` with a cold corpus cache (cleared before each run) and a warm one, next to
`lmplz -o 3 --discount_fallback -S M` for each M of --big-lmplz-memory; each with its wall time, the peak RSS
of its largest process (wait4) and the peak of the summed PSS of its process tree (sampled from /proc).
Not a test: timings are noisy on a shared machine; the script interleaves the programs it compares, run
after run, reports the best and the median, and records the load average next to each figure.
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


def interleaved(runs: int, programs: dict) -> dict:
    """Call each program once per round, `runs` rounds, so a change of load hits all of them alike.

    Returns per name: best and median wall time, the load average before each call, and the last result.
    """
    times: dict = {name: [] for name in programs}
    loads: dict = {name: [] for name in programs}
    last: dict = {}
    for _ in range(runs):
        for name, fn in programs.items():
            loads[name].append(os.getloadavg()[0])
            start = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds_best": min(t), "seconds_median": float(np.median(t)), "seconds_all": t,
                   "load_1min": loads[name], "result": last[name]} for name, t in times.items()}


def repeated(corpus, times):
    """The corpus's sentences repeated `times` times, as a fresh corpus (nothing cached)."""
    return corpus.select(np.tile(np.arange(corpus.n_sentences), times), name=f"{corpus.name}×{times}")


def public(entry: dict) -> dict:
    """A timing entry without its (non-JSON) result, unless that is a whole process's figures."""
    return {k: v for k, v in entry.items() if k != "result" or isinstance(v, dict)}


def ours_fit(train):
    def fit():
        train._cache.clear()  # time the whole pipeline from the id arrays, including the bounded stream
        return NgramModel(order=3, smoothing="modified_kneser_ney", discount_fallback=True).fit(train)
    return fit


def ours_score(model, test):
    def score():
        test._cache.clear()
        model.require_tables()._index.clear()  # the hash index is part of scoring, not of a warm cache
        return model.logprobs(test)
    return score


def traced_peak_mb(fit, score) -> float:
    """Peak of traced allocations (numpy included) of one fit + score, in a separate pass."""
    tracemalloc.start()
    fit()
    score()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def lmplz_program(lmplz, text: Path, arpa: Path, memory: str, workdir: Path):
    def run():
        with open(text, "rb") as src, open(arpa, "wb") as dst:
            subprocess.run([lmplz, "-o", "3", "--discount_fallback", "-S", memory, "-T", str(workdir)],
                           stdin=src, stdout=dst, stderr=subprocess.DEVNULL, check=True)
    return run


def query_program(query: Path, lm: Path, text: Path):
    """KenLM's `query` on a model file, wall time including loading the model; returns its perplexity."""
    def run():
        with open(text, "rb") as src:
            res = subprocess.run([str(query), "-v", "summary", str(lm)], stdin=src, capture_output=True,
                                 text=True, check=True)
        return float(res.stdout.split("Perplexity including OOVs:")[1].split()[0])
    return run


def kenlm_module_program(model, test, workdir: Path):
    """The `kenlm` Python module (KenLM's query code) on our exported ARPA, a Python loop over sentences."""
    try:
        import kenlm
    except ImportError:
        return None
    arpa = workdir / "ours-module.arpa"
    model.export_arpa(arpa)
    km = kenlm.Model(str(arpa))
    sentences = [" ".join(model.vocab.decode(s)) for s in test]
    return lambda: sum(km.score(s, bos=True, eos=True) for s in sentences)


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


def same_model(lmplz_arpa: Path, model, test) -> dict:
    """Score the test set with lmplz's ARPA through our back-off code and with our model: same perplexity?"""
    kenlm_model = ArpaModel.from_arpa(lmplz_arpa)
    kenlm_test = Corpus(np.array([kenlm_model.vocab.index[w] for w in model.vocab.decode(test.ids)], dtype=np.int32),
                        test.offsets, kenlm_model.vocab)
    return {"test_perplexity_lmplz_arpa": evaluate(kenlm_model, kenlm_test).perplexity,
            "test_perplexity_ours": evaluate(model, test).perplexity}


# --- whole processes: wall time and memory ----------------------------------------------------------------
def _tree_pss_kb(pid: int) -> int:
    """Summed PSS (KiB) of a process and its descendants, from /proc (0 for what has already exited)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run_process(cmd: list[str], env: dict | None = None, stdin: Path | None = None,
                stdout: Path | None = None) -> dict:
    """Wall time, peak RSS of the largest process of the tree (wait4) and peak summed PSS of the tree."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as src, open(stdout or os.devnull, "wb") as dst:
        p = subprocess.Popen(cmd, stdin=src, stdout=dst, stderr=subprocess.DEVNULL, env=env)
        peak_pss = 0
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            peak_pss = max(peak_pss, _tree_pss_kb(p.pid))
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {' '.join(cmd)}")
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_tree_pss_mb": peak_pss / 1024, "load_1min": load}


def bench_big(args, workdir: Path) -> dict:
    """The 50 MB case: tinyshakespeare ×45 trained by whole processes, interleaved run after run."""
    source = args.shared / "corpora" / "tinyshakespeare" / "input.txt"
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    corpus = workdir / "ts45"
    corpus.mkdir()
    text = corpus / "train.txt"
    text.write_text("\n".join(lines * 45) + "\n", encoding="utf-8")
    cache = workdir / "cache"
    env = {**os.environ, "LMBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    ours = [sys.executable, "-m", "lmbench", "train", "trigram", "--corpus", str(corpus), "--tokenizer",
            "whitespace", "-p", "discount_fallback=true", "--out", str(workdir / "big-model")]
    rows: dict = {"lmbench_cold": [], "lmbench_warm": []}
    rows.update({f"lmplz_S{m}": [] for m in args.big_lmplz_memory})
    for _ in range(args.big_runs):
        shutil.rmtree(cache, ignore_errors=True)
        rows["lmbench_cold"].append(run_process(ours, env))
        rows["lmbench_warm"].append(run_process(ours, env))
        for m in args.big_lmplz_memory:
            rows[f"lmplz_S{m}"].append(run_process(
                [args.lmplz, "-o", "3", "--discount_fallback", "-S", m, "-T", str(workdir)], stdin=text,
                stdout=workdir / "big-lmplz.arpa"))
    out = {"file_mb": text.stat().st_size / 1e6, "words": sum(len(line.split()) for line in lines) * 45,
           "runs": rows}
    for name, r in rows.items():
        out[name] = {"seconds_best": min(x["seconds"] for x in r),
                     "seconds_median": float(np.median([x["seconds"] for x in r])),
                     "peak_rss_mb_max": max(x["peak_rss_mb"] for x in r),
                     "peak_tree_pss_mb_max": max(x["peak_tree_pss_mb"] for x in r)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--lmplz", default=os.environ.get("LMPLZ") or shutil.which("lmplz"),
                        help="a KenLM lmplz binary to time; query and build_binary are taken from its directory "
                             "(default: $LMPLZ or lmplz on PATH)")
    parser.add_argument("--lmplz-memory", default="100M", help="lmplz -S (its default, 80%% of RAM, is slow here)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", action="store_true", help="also the 50 MB case (tinyshakespeare ×45, whole "
                        "processes; needs --lmplz)")
    parser.add_argument("--big-runs", type=int, default=3)
    parser.add_argument("--big-lmplz-memory", type=lambda v: v.split(","), default=["4G", "400M"],
                        help="lmplz -S values for the 50 MB case, comma-separated")
    parser.add_argument("--nltk-tokens", type=int, default=300)
    parser.add_argument("--nltk-budget", type=float, default=15.0, help="seconds of NLTK scoring at most")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ptb = args.shared / "corpora" / "ptb-v"
    if not (ptb / "train.txt").is_file():
        sys.exit(f"ptb-v not found under {args.shared}; pass --shared")
    if args.big and not args.lmplz:
        sys.exit("--big compares with lmplz: pass --lmplz")
    cs = load_corpus(str(ptb), Tokenizer("whitespace"))
    train, test = repeated(cs.train, 13), repeated(cs.test, 20)
    train_lines = (ptb / "train.txt").read_text(encoding="utf-8").splitlines()
    test_lines = (ptb / "test.txt").read_text(encoding="utf-8").splitlines()
    bin_dir = Path(args.lmplz).parent if args.lmplz else None

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Training, interleaved: our fit (in process, from the id arrays) and lmplz (whole process).
        programs = {"ours": ours_fit(train)}
        if args.lmplz:
            text13 = work / "train13.txt"
            text13.write_text("\n".join(train_lines * 13) + "\n", encoding="utf-8")
            programs["lmplz"] = lmplz_program(args.lmplz, text13, work / "lmplz.arpa", args.lmplz_memory, work)
            # The same training as a whole `lmbench train` process (corpus cache warmed by a first run).
            corpus13 = work / "ptb13"
            corpus13.mkdir()
            (corpus13 / "train.txt").write_bytes(text13.read_bytes())
            cli = [sys.executable, "-m", "lmbench", "train", "trigram", "--corpus", str(corpus13), "--tokenizer",
                   "whitespace", "-p", "discount_fallback=true", "--out", str(work / "ptb13-model")]
            env = {**os.environ, "LMBENCH_CACHE": str(work / "cache13"), "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1"}
            run_process(cli, env)
            programs["lmbench_process"] = lambda: run_process(cli, env)
        training = interleaved(args.runs, programs)
        model = training["ours"]["result"]
        lmplz_same = same_model(work / "lmplz.arpa", model, repeated(cs.test, 1)) if args.lmplz else {}
        # Scoring, interleaved: ours (in process, hash index built each time) and KenLM's query program on
        # our exported model (binary and ARPA, whole process, load included) and its Python module.
        scoring_programs = {"ours": ours_score(model, test)}
        if bin_dir is not None and (bin_dir / "query").is_file():
            arpa, binary, text20 = work / "q.arpa", work / "q.binary", work / "test20.txt"
            model.export_arpa(arpa)
            text20.write_text("\n".join(test_lines * 20) + "\n", encoding="utf-8")
            if (bin_dir / "build_binary").is_file():
                subprocess.run([str(bin_dir / "build_binary"), str(arpa), str(binary)], check=True,
                               capture_output=True)
                scoring_programs["query_binary"] = query_program(bin_dir / "query", binary, text20)
            scoring_programs["query_arpa"] = query_program(bin_dir / "query", arpa, text20)
        module = kenlm_module_program(model, test, work)
        if module is not None:
            scoring_programs["kenlm_module"] = module
        scoring = interleaved(args.runs, scoring_programs)
        traced = traced_peak_mb(ours_fit(train), ours_score(model, test))
        big = bench_big(args, work) if args.big else None
    nltk = bench_nltk(train_lines, test_lines, args.nltk_tokens, args.nltk_budget)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    lp = scoring["ours"]["result"]
    speed = {name: test.n_predicted / r["seconds_best"] for name, r in scoring.items()}
    report = {
        "train_words": train.n_tokens, "train_predicted_tokens": train.n_predicted,
        "test_predicted_tokens": test.n_predicted, "ngrams": model.fit_info["ngrams"],
        "training": {name: public(r) for name, r in training.items()}, "lmplz_same_model": lmplz_same,
        "scoring": {name: {**public(r), "tokens_per_second": speed[name]} for name, r in scoring.items()},
        "scoring_perplexity_ours": float(np.exp(-lp.mean())),
        "query_perplexity": {name: r["result"] for name, r in scoring.items() if name.startswith("query")},
        "kenlm_module_total_log10": scoring["kenlm_module"]["result"] if module is not None else None,
        "ours_total_log10": float(lp.sum()) / np.log(10),
        "traced_peak_mb": traced, "nltk": nltk, "process_peak_rss_mb": rss_mb, "big": big,
        "ratios": {
            "train_time_ours_over_lmplz": (training["ours"]["seconds_best"] / training["lmplz"]["seconds_best"]
                                           if "lmplz" in training else None),
            "train_time_process_over_lmplz": (training["lmbench_process"]["seconds_best"]
                                              / training["lmplz"]["seconds_best"] if "lmplz" in training else None),
            **{f"score_speed_ours_over_{name}": speed["ours"] / speed[name] for name in speed if name != "ours"},
            "score_speed_ours_over_nltk": speed["ours"] / nltk["tokens_per_second"],
        },
    }
    if big:
        for name in big:
            if name.startswith("lmplz_S"):
                for kind in ("cold", "warm"):
                    report["ratios"][f"big_train_time_lmbench_{kind}_over_{name}"] = (
                        big[f"lmbench_{kind}"]["seconds_best"] / big[name]["seconds_best"])
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_report(report, args)


def _load(r: dict) -> str:
    loads = r["load_1min"]
    return f"load {min(loads):.1f}–{max(loads):.1f}"


def print_report(report: dict, args) -> None:
    """The report as text."""
    tr, sc, r = report["training"], report["scoring"], report["ratios"]
    print(f"modified Kneser–Ney trigram, ptb-v train ×13 = {report['train_words']:,} words "
          f"({report['train_predicted_tokens']:,} predicted tokens); n-grams "
          f"{' / '.join(f'{n:,}' for n in report['ngrams'])}; {args.runs} interleaved runs")
    print(f"  lmbench fit (in process):  {tr['ours']['seconds_best']:.3f} s best, "
          f"{tr['ours']['seconds_median']:.3f} s median ({_load(tr['ours'])})")
    if "lmplz" in tr:
        print(f"  KenLM lmplz (process):     {tr['lmplz']['seconds_best']:.3f} s best, "
              f"{tr['lmplz']['seconds_median']:.3f} s median (-S {args.lmplz_memory}; {_load(tr['lmplz'])})")
        same = report["lmplz_same_model"]
        print(f"    same model: test perplexity {same['test_perplexity_ours']:.4f} (ours) vs "
              f"{same['test_perplexity_lmplz_arpa']:.4f} (lmplz's ARPA)")
        print(f"  ratio train time lmbench / lmplz: {r['train_time_ours_over_lmplz']:.2f}")
        lp = tr["lmbench_process"]
        print(f"  lmbench train (whole process, warm corpus cache): {lp['seconds_best']:.3f} s best, "
              f"{lp['seconds_median']:.3f} s median ({_load(lp)}); ratio to lmplz "
              f"{r['train_time_process_over_lmplz']:.2f}")
    else:
        print(f"  KenLM lmplz: {LMPLZ_QUOTED_SECONDS:.2f} s QUOTED from ../shared/corpora/README.md (no binary)")
    print(f"scoring ptb-v test ×20 = {report['test_predicted_tokens']:,} predicted tokens")
    labels = {"ours": "lmbench (in process, index built)", "query_binary": "KenLM query, binary model, load incl.",
              "query_arpa": "KenLM query, ARPA model, load incl.", "kenlm_module": "kenlm module, Python loop"}
    for name, s in sc.items():
        ratio = "" if name == "ours" else f"; lmbench / this {r[f'score_speed_ours_over_{name}']:.2f}"
        print(f"  {labels[name]:38s} {s['tokens_per_second'] / 1e6:6.2f} M tokens/s ({s['seconds_best']:.3f} s best, "
              f"{s['seconds_median']:.3f} s median; {_load(s)}){ratio}")
    if "query_binary" not in sc:
        print(f"  KenLM query program ({KENLM_QUERY_QUOTED / 1e6:.1f} M tokens/s) is QUOTED from the README only")
    print(f"    perplexity: lmbench {report['scoring_perplexity_ours']:.4f}, query "
          + ", ".join(f"{k.removeprefix('query_')} {v:.4f}" for k, v in report["query_perplexity"].items()))
    if report["kenlm_module_total_log10"] is not None:
        print(f"    total log10 probability: lmbench {report['ours_total_log10']:.3f}, kenlm module "
              f"{report['kenlm_module_total_log10']:.3f}")
    nltk = report["nltk"]
    print(f"  NLTK KneserNeyInterpolated(3): fit {nltk['fit_seconds']:.2f} s on ptb-v train (×1); scored "
          f"{nltk['scored_tokens']} tokens in {nltk['score_seconds']:.1f} s = {nltk['tokens_per_second']:.1f} tokens/s"
          f" (README: {NLTK_QUOTED:.0f}/s); lmbench / NLTK {r['score_speed_ours_over_nltk']:,.0f}×")
    print(f"memory: traced peak of one fit + score {report['traced_peak_mb']:.0f} MB; "
          f"this process's peak RSS {report['process_peak_rss_mb']:.0f} MB")
    big = report["big"]
    if big:
        print(f"50 MB case: tinyshakespeare ×45 = {big['words']:,} words, {big['file_mb']:.1f} MB; whole processes, "
              f"{args.big_runs} interleaved rounds (cold = corpus cache cleared first)")
        for name, b in big.items():
            if not isinstance(b, dict) or "seconds_best" not in b:
                continue
            loads = [x["load_1min"] for x in big["runs"][name]]
            print(f"  {name:14s} {b['seconds_best']:6.2f} s best, {b['seconds_median']:6.2f} s median; peak RSS "
                  f"(largest process) {b['peak_rss_mb_max']:5.0f} MB, peak PSS of the tree "
                  f"{b['peak_tree_pss_mb_max']:5.0f} MB (load {min(loads):.1f}–{max(loads):.1f})")
        for key, value in r.items():
            if key.startswith("big_"):
                print(f"  ratio {key.removeprefix('big_train_time_').replace('_over_', ' / ')}: {value:.2f}")


if __name__ == "__main__":
    main()
