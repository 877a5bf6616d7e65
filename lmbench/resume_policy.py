"""What a resumed training run may not change: its tokenizer and its vocabulary (shared by every trainer).

`lmbench train --resume` (cli/core.py) calls both checks; a translator's resume should call them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmbench.errors import LmbenchError


def check_resume_tokenizer(saved: Any, kind: str | None, lowercase: bool, jamo: bool, directory: str | Path) -> None:
    """Refuse tokenizer options on --resume that differ from the checkpoint's tokenizer.

    An option left out means "as before" (flags cannot say "off"); one given must match what was saved.
    """
    if saved is None:
        return
    changed = []
    if kind is not None and kind != saved.kind:
        changed.append(f"--tokenizer {kind} (the run used {saved.kind})")
    if lowercase and not saved.lowercase:
        changed.append("--lowercase (the run did not lower-case)")
    if jamo and not saved.jamo:
        changed.append("--jamo (the run did not decompose jamo)")
    if changed:
        raise LmbenchError(f"cannot resume {directory} with a changed tokenizer: {'; '.join(changed)}; "
                           "leave the tokenizer options out when resuming (they come from the checkpoint)")


def vocabulary_difference(saved: Any, new: Any) -> str | None:
    """A short description of how two vocabularies differ (sizes, first differing entry), or None if equal."""
    if saved == new:
        return None
    a, b = list(saved.tokens), list(new.tokens)
    if len(a) != len(b):
        only_a = next((t for t in a if t not in new.index), None)
        only_b = next((t for t in b if t not in saved.index), None)
        extra = "".join([f"; only in the checkpoint: {only_a!r}" if only_a is not None else "",
                         f"; only in the corpus: {only_b!r}" if only_b is not None else ""])
        return f"{len(a):,} entries in the checkpoint, {len(b):,} in the corpus{extra}"
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"both have {len(a):,} entries, but entry {i} is {x!r} in the checkpoint and {y!r} in the corpus"
    for i, (x, y) in enumerate(zip(saved.counts.tolist(), new.counts.tolist())):
        if x != y:
            return (f"both have the same {len(a):,} entries, but the training count of {a[i]!r} is {x:,} in the "
                    f"checkpoint and {y:,} in the corpus")
    return "they differ"


def check_resume_vocabulary(saved: Any, new: Any, directory: str | Path) -> None:
    """A resumed model must see the vocabulary it was trained with; the message says where they differ."""
    diff = vocabulary_difference(saved, new)
    if diff is not None:
        raise LmbenchError(f"cannot resume {directory}: the corpus's vocabulary differs from the checkpoint's "
                           f"({diff}); use the corpus and tokenizer options of the first run")
