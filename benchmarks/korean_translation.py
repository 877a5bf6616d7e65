"""Korean → English on Tatoeba kor.txt: attention seq2seq with word / morph / bpe source tokens vs `nearest`.

    python benchmarks/korean_translation.py --src word  --epochs 20 --out /tmp/ko_word.json
    python benchmarks/korean_translation.py --src morph --epochs 20 --out /tmp/ko_morph.json
    python benchmarks/korean_translation.py --src bpe:2000 --epochs 20 --out /tmp/ko_bpe.json
    python benchmarks/korean_translation.py --src word --model nearest --out /tmp/ko_nearest.json

The split is the seeded 90/10 one `kor.txt?source=2` gives (seed 0). BLEU is sacreBLEU on detokenized output
against the references as written (signature in the JSON), chrF beside it. Greedy and beam decoding are both
scored after training; with --every K, greedy BLEU is also logged every K epochs (a learning curve, not used
to pick anything).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lmbench.evaluate.bleu import sacrebleu_scores
from lmbench.models.registry import create_model
from lmbench.text.parallel import load_pairs
from lmbench.text.tokenize import Tokenizer

DEFAULT_PAIRS = str(Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora" / "kor-eng" / "kor.txt")


def score(model, data, beam):
    pairs = data.get("test")
    start = time.perf_counter()
    hyp = model.translate_corpus(pairs.src, beam=beam)
    seconds = time.perf_counter() - start
    hyps = [data.tgt_tokenizer.detokenize(model.vocab.decode(t.tolist())) for t in hyp.tokens]
    refs = [t for _, t in data.raw.test]
    out = sacrebleu_scores(hyps, refs)
    out.update({"beam": beam, "decode_seconds": seconds,
                "samples": [{"source": s, "reference": r, "translation": h}
                            for (s, r), h in list(zip(data.raw.test, hyps))[:5]]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", default=DEFAULT_PAIRS)
    ap.add_argument("--src", default="word", help="source tokenizer spec")
    ap.add_argument("--tgt", default="word", help="target tokenizer spec")
    ap.add_argument("--model", default="seq2seq")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--every", type=int, default=0)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("-p", dest="params", action="append", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--save", default=None, help="checkpoint directory, written after every epoch")
    ap.add_argument("--load", default=None, help="score this checkpoint instead of training")
    args = ap.parse_args()
    if args.load:
        from lmbench.models.base import load_model

        model = load_model(args.load)
        data = load_pairs(f"{args.pairs}?source=2", model.tokenizer, model.tgt_tokenizer, model.src_vocab, model.vocab)
        result = {"checkpoint": args.load, "epochs": model.train_state["epoch"], "src_tokenizer": model.tokenizer.kind,
                  "greedy": score(model, data, 1), "beam": score(model, data, args.beam)}
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1))
        print({k: (result[k]["bleu"], result[k]["chrf"]) for k in ("greedy", "beam")})
        return
    data = load_pairs(f"{args.pairs}?source=2", Tokenizer(args.src), Tokenizer(args.tgt))
    params = dict(kv.split("=", 1) for kv in args.params)
    if args.model == "seq2seq":
        params.setdefault("epochs", str(args.epochs))
    model = create_model(args.model, params)
    result = {"model": args.model, "params": model.params, "src_tokenizer": args.src, "tgt_tokenizer": args.tgt,
              "train_pairs": len(data.train), "test_pairs": len(data.test), "src_vocab": len(data.src_vocab),
              "tgt_vocab": len(data.tgt_vocab), "test_src_oov_rate": data.test.src.oov_rate, "curve": []}
    out = Path(args.out)

    def on_epoch(m):
        rec = dict(m.train_state["history"][-1])
        rec["elapsed_seconds"] = time.perf_counter() - start
        if args.every and rec["epoch"] % args.every == 0:
            rec["greedy_bleu"] = score(m, data, 1)["bleu"]
        result["curve"].append(rec)
        if args.save:
            m.save(args.save)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=1))
        print(json.dumps(rec), flush=True)

    start = time.perf_counter()
    if args.model == "seq2seq":
        model.fit(data, progress=False, on_epoch=on_epoch)
    else:
        model.fit(data)
    result["train_seconds"] = time.perf_counter() - start
    result["greedy"] = score(model, data, 1)
    if args.model == "seq2seq":
        result["beam"] = score(model, data, args.beam)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(json.dumps({k: result[k] for k in ("src_tokenizer", "train_seconds")}),
          {k: (v["bleu"], v["chrf"]) for k, v in result.items() if k in ("greedy", "beam")}, flush=True)


if __name__ == "__main__":
    main()
