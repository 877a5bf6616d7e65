"""How fast a large text file becomes id arrays: tokenize, build the vocabulary, encode.

Usage: python benchmarks/load_speed.py [MEGABYTES]   (default 100; the text is tinyshakespeare repeated,
or the built-in grammar when ../shared is absent, written to a temporary file)
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from lmbench import Tokenizer, load_corpus, read_splits

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "tinyshakespeare" / "input.txt"


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 100.0
    seed_text = SHARED.read_text(encoding="utf-8") if SHARED.is_file() else "\n".join(
        read_splits("synthetic:grammar?sentences=20000").train)
    repeats = max(1, int(megabytes * 1e6 / len(seed_text.encode())))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "train.txt").write_text(seed_text * repeats, encoding="utf-8")
        size = (Path(tmp) / "train.txt").stat().st_size
        for kind in ("whitespace", "word"):
            start = time.perf_counter()
            corpora = load_corpus(tmp, Tokenizer(kind))
            seconds = time.perf_counter() - start
            print(f"{kind:>10}: {size / 1e6:.0f} MB → {corpora.train.n_tokens:,} tokens, "
                  f"{len(corpora.vocab):,} types in {seconds:.1f} s ({corpora.train.n_tokens / seconds:,.0f} tokens/s)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
