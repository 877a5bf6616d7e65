"""N-gram counting and the sparsity table, checked against direct counts with Python's Counter."""

from collections import Counter

import numpy as np
import pytest

from lmbench.evaluate.sparsity import sparsity_table
from lmbench.models.ngram.counts import count_ngrams, counts_of_counts
from lmbench.text.sources import TextSplits, load_corpus
from lmbench.text.tokenize import Tokenizer

TRAIN = ["a b c a", "b a c", "c a b b", "a a b c c", "b"]
TEST = ["a b c", "c c a z", "b b b a"]  # z is out of vocabulary


def corpus_set(train=TRAIN, test=TEST):
    return load_corpus(TextSplits("tiny", train, None, test), Tokenizer("whitespace"))


def direct_ngrams(lines, n):
    """Every n-gram of order n inside `<s> w1 .. wk </s>` (one <s>, never crossing sentences)."""
    grams = Counter()
    for line in lines:
        toks = ["<s>", *line.split(), "</s>"]
        for end in range(1, len(toks)):  # n-grams end at a predicted token (never at <s>)
            if end - n + 1 >= 0:
                grams[tuple(toks[end - n + 1 : end + 1])] += 1
    return grams


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_count_tables_equal_direct_counts(order):
    cs = corpus_set()
    counts = count_ngrams(cs.train, order)
    for n in range(1, order + 1):
        table = counts.table(n)
        words = _decode(counts, n, cs.vocab.tokens)  # every entry back to words through the prefix links
        got = {tuple(w): int(c) for w, c in zip(words, table.count.tolist()) if c > 0}
        assert got == dict(direct_ngrams(TRAIN, n)), n
        # Keys are sorted and unique: the table is a valid search structure.
        assert (np.diff(table.keys) > 0).all()
        # bos marks exactly the n-grams that begin with <s>.
        assert {tuple(w) for w, b in zip(words, table.bos.tolist()) if b and n > 1} == {
            g for g in direct_ngrams(TRAIN, n) if g[0] == "<s>"
        } or n == 1


def _decode(counts, n, tokens):
    table = counts.table(n)
    last = [tokens[i] for i in table.word(counts.V).tolist()]
    if n == 1:
        return [[w] for w in last]
    prefixes = _decode(counts, n - 1, tokens)
    return [[*prefixes[p], w] for p, w in zip(table.prefix(counts.V).tolist(), last)]


def test_suffix_links_and_left_extensions():
    cs = corpus_set()
    counts = count_ngrams(cs.train, 3)
    tri = _decode(counts, 3, cs.vocab.tokens)
    bi = _decode(counts, 2, cs.vocab.tokens)
    for g, s in zip(tri, counts.table(3).suffix.tolist()):
        assert bi[s] == g[1:]
    # N1+(• g): distinct words seen before each bigram.
    direct = Counter(g[1:] for g in direct_ngrams(TRAIN, 3))
    ext = counts.left_extensions(2)
    for g, e in zip(bi, ext.tolist()):
        assert e == direct.get(tuple(g), 0)


def test_tiny_memory_budget_spills_and_counts_exactly():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    # Zipf-like draws: frequent and rare n-grams, sentences of 1..12 words.
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 13), p=_zipf(len(words)))) for _ in range(400)]
    cs = load_corpus(TextSplits("zipf", lines), Tokenizer("whitespace"))
    roomy = count_ngrams(cs.train, 4)
    # Chunks of a few sentences, runs spilled to disk, sorted look-ups (SortedKeys) instead of hash indexes.
    tight = count_ngrams(cs.train, 4, memory="3K")
    assert roomy.spills == 0
    assert tight.spills >= 3 * 3  # several spills for each of the orders 2, 3, 4
    for n in range(1, 5):
        a, b = roomy.table(n), tight.table(n)
        for field in ("keys", "count", "suffix", "bos"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (n, field)
        got = {tuple(w): int(c) for w, c in zip(_decode(tight, n, cs.vocab.tokens), b.count.tolist()) if c > 0}
        assert got == dict(direct_ngrams(lines, n)), n


def _zipf(k):
    p = 1.0 / np.arange(1, k + 1)
    return p / p.sum()


def test_memory_budget_parsing():
    from lmbench.errors import LmbenchError
    from lmbench.models.ngram.counts import parse_memory

    assert parse_memory("2G") == 2 * 2**30
    assert parse_memory("500M") == 500 * 2**20
    assert parse_memory("64k") == 64 * 1024
    assert parse_memory("1.5GiB") == 3 * 2**29
    assert parse_memory("4096") == 4096
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(LmbenchError):
            parse_memory(bad)


def test_counts_of_counts():
    assert counts_of_counts(np.array([0, 1, 1, 2, 5, 4, 4, 3, 1])).tolist() == [1, 3, 1, 1, 2]


def test_sparsity_table_equals_direct_count():
    cs = corpus_set()
    df = sparsity_table(cs, max_order=3)
    assert list(df["split"]) == ["train"] * 3 + ["test"] * 3
    test_lines = [" ".join(t if t in {"a", "b", "c"} else "<unk>" for t in line.split()) for line in TEST]
    for split, lines in (("train", TRAIN), ("test", test_lines)):
        for n in (1, 2, 3):
            row = df[(df["split"] == split) & (df["order"] == n)].iloc[0]
            grams = direct_ngrams(lines, n)
            coc = Counter(grams.values())
            assert row["types"] == len(grams)
            assert row["tokens"] == sum(grams.values())
            assert [row[f"n{r}"] for r in (1, 2, 3, 4)] == [coc.get(r, 0) for r in (1, 2, 3, 4)]
            if split == "test":
                train_grams = direct_ngrams(TRAIN, n)
                unseen = sum(c for g, c in grams.items() if g not in train_grams)
                assert row["unseen_tokens"] == unseen
                assert row["unseen_fraction"] == pytest.approx(unseen / sum(grams.values()))
                assert row["oov_rate"] == pytest.approx(1 / 11)  # one z among 11 test words
                # MLE of order n: the event is the n-gram cut at <s>; it has p = 0 when training never saw it.
                train_all = Counter()
                for m in range(1, n + 1):
                    train_all.update(direct_ngrams(TRAIN, m))
                zero = 0
                for line in test_lines:
                    toks = ["<s>", *line.split(), "</s>"]
                    for end in range(1, len(toks)):
                        event = tuple(toks[max(0, end - n + 1) : end + 1])
                        zero += event not in train_all
                assert row["mle_zero_prob"] == zero
    # The sparsity lesson: the share of unseen test n-grams rises with n.
    fractions = df[df["split"] == "test"]["unseen_fraction"].tolist()
    assert fractions == sorted(fractions) and fractions[-1] > fractions[0]


@pytest.mark.parametrize("block", [1 << 16, 7])
def test_key_index_finds_every_key_and_nothing_else(block, monkeypatch):
    """The hash index against a dict: every key at its position, −1 for non-keys, negative queries (−1, the
    empty-slot mark, included) and keys that collide into long probe chains; queries in one block or many."""
    from lmbench.models.ngram import hashindex
    from lmbench.models.ngram.hashindex import KeyIndex

    monkeypatch.setattr(hashindex, "FIND_BLOCK", block)

    rng = np.random.default_rng(3)
    keys = np.unique(np.concatenate([rng.integers(0, 1 << 40, 3000), np.arange(0, 64 * 4096, 4096)]))
    index = KeyIndex(keys)
    position = {int(k): i for i, k in enumerate(keys)}
    queries = np.concatenate([keys, rng.integers(0, 1 << 40, 3000), [-1, -2, -(1 << 40), 1, 4095, 4097]])
    expected = [position.get(int(q), -1) for q in queries]
    assert index.find(queries).tolist() == expected
    assert index.find(np.zeros(0, dtype=np.int64)).size == 0


def _zipf_corpus(seed=3, n_lines=400, n_words=40):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n_words)]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 13), p=_zipf(len(words)))) for _ in range(n_lines)]
    return load_corpus(TextSplits("zipf", lines), Tokenizer("whitespace"))


def test_table_blocks_end_at_context_boundaries(monkeypatch):
    """Blocks of a few entries cover each table in order, and never split the children of one context."""
    from lmbench.models.ngram import counts as counts_module

    monkeypatch.setattr(counts_module, "TABLE_BLOCK", 3)
    counts = count_ngrams(_zipf_corpus().train, 3)
    for n in (1, 2, 3):
        t = counts.table(n)
        blocks = list(t.blocks(counts.V))
        assert [a for a, _ in blocks] == [0] + [b for _, b in blocks[:-1]] and blocks[-1][1] == len(t)
        assert all(b > a for a, b in blocks)
        context = t.keys // counts.V if n > 1 else np.zeros(len(t), dtype=np.int64)
        for _, b in blocks[:-1]:
            assert context[b - 1] != context[b], (n, b)
        if n > 1:
            assert len(blocks) > 10  # really many blocks


def test_per_context_sums_equal_one_bincount_bit_for_bit(monkeypatch):
    """Sums of arbitrary float weights per context, in blocks, equal one np.bincount over the whole table
    exactly (each context's children are summed in one block, in table order)."""
    from lmbench.models.ngram import counts as counts_module

    monkeypatch.setattr(counts_module, "TABLE_BLOCK", 5)
    counts = count_ngrams(_zipf_corpus().train, 3)
    rng = np.random.default_rng(0)
    for n in (2, 3):
        t = counts.table(n)
        w = rng.random(len(t)) * 10 ** rng.uniform(-8, 8, len(t))
        expected = np.bincount(t.keys // counts.V, weights=w, minlength=len(counts.table(n - 1)))
        got = counts.per_context(n, lambda a, b, w=w: w[a:b])
        assert got.tobytes() == expected.tobytes(), n
        types = np.bincount(t.keys // counts.V, minlength=len(counts.table(n - 1)))
        assert np.array_equal(counts.context_types(n), types) and counts.context_types(n).dtype == np.int64


def test_suffix_links_are_compact_and_right():
    """Suffix links are int32 (the tables are far below 2^31 entries) and point at words 2..n."""
    counts = count_ngrams(_zipf_corpus().train, 3)
    V = counts.V
    for n in (2, 3):
        t = counts.table(n)
        assert t.suffix.dtype == np.int32
        words = _ids(counts, n)
        below_words = {tuple(row): i for i, row in enumerate(_ids(counts, n - 1).tolist())}
        assert t.suffix.tolist() == [below_words[tuple(row[1:])] for row in words.tolist()]
        assert np.array_equal(t.prefix(V, 2, 9), t.keys[2:9] // V)


def _ids(counts, n):
    """The word ids of every order-n entry, through the prefix links (independent of the suffix links)."""
    t = counts.table(n)
    if n == 1:
        return t.keys[:, None]
    return np.column_stack([_ids(counts, n - 1)[t.keys // counts.V], t.keys % counts.V])


def test_dropping_pages_keeps_every_value(tmp_path):
    """Released pages of a read-only or shared mapping are read back from the file; a private
    (copy-on-write) mapping, whose edits live only in its pages, is left alone."""
    from lmbench.models.ngram.counts import _drop_pages

    values = np.arange(1 << 20, dtype=np.int64)
    values.tofile(tmp_path / "a.bin")
    ro = np.memmap(tmp_path / "a.bin", np.int64, "r")
    assert int(ro.sum()) == int(values.sum())
    _drop_pages(ro[10:])  # a view of the mapping, as a corpus split is
    assert np.array_equal(ro, values)
    shared = np.memmap(tmp_path / "a.bin", np.int64, "r+")
    shared[:5] = -7
    _drop_pages(shared)
    assert shared[:5].tolist() == [-7] * 5
    private = np.memmap(tmp_path / "a.bin", np.int64, "c")
    private[5:10] = -9
    _drop_pages(private)
    assert private[5:10].tolist() == [-9] * 5
    _drop_pages(values)  # an ordinary array: nothing happens
    _drop_pages(None)
