"""Tokenizer, vocabulary, corpus arrays and corpus sources."""

from __future__ import annotations

import unicodedata

import pytest

from lmbench import Corpus, LmbenchError, Tokenizer, Vocabulary, load_corpus, read_splits
from lmbench.text.vocab import BOS_ID, EOS_ID, UNK_ID


def test_word_tokenizer_english_and_korean():
    tok = Tokenizer("word")
    assert tok("Hello, world! It's 3.5 km.") == ["Hello", ",", "world", "!", "It's", "3.5", "km", "."]
    assert tok("나는 머신러닝이 좋다.") == ["나는", "머신러닝이", "좋다", "."]
    assert tok("the <unk> cat") == ["the", "<unk>", "cat"]
    assert Tokenizer("word", lowercase=True)("The Cat") == ["the", "cat"]


def test_whitespace_and_char_tokenizers():
    assert Tokenizer("whitespace")("  a  b\tc ") == ["a", "b", "c"]
    assert Tokenizer("char")("ab c") == ["a", "b", "▁", "c"]
    jamo = Tokenizer("char", jamo=True)("한")
    # 한 = ㅎ (U+1112) + ㅏ (U+1161) + ㄴ (U+11AB), the conjoining jamo of its Unicode decomposition.
    assert jamo == ["\u1112", "\u1161", "\u11ab"]
    assert unicodedata.normalize("NFC", "".join(jamo)) == "한"
    assert Tokenizer("char", jamo=True).detokenize(Tokenizer("char", jamo=True)("한국 어")) == "한국 어"
    with pytest.raises(LmbenchError, match="char tokenizer only"):
        Tokenizer("word", jamo=True)
    with pytest.raises(LmbenchError, match="choose one of"):
        Tokenizer("wordpiece")
    with pytest.raises(LmbenchError, match="subword vocabulary size"):  # bpe is a tokenizer now, but needs :N
        Tokenizer("bpe")


def test_vocabulary_order_counts_and_unk():
    sents = [["b", "a", "c"], ["a", "<unk>", "d"], ["c", "a"]]
    vocab = Vocabulary.build(sents)
    # a:3, then b,c,d... c:2 outranks b:1; b (seen first) precedes d among count-1 ties.
    assert vocab.tokens == ["<unk>", "<s>", "</s>", "a", "c", "b", "d"]
    assert vocab.counts.tolist() == [1, 0, 3, 3, 2, 1, 1]
    small = Vocabulary.build(sents, min_count=2)
    assert small.tokens == ["<unk>", "<s>", "</s>", "a", "c"]
    assert small.counts[UNK_ID] == 1 + 2  # literal <unk> plus b and d
    capped = Vocabulary.build(sents, max_size=1)
    assert capped.tokens[3:] == ["a"] and capped.counts[UNK_ID] == 1 + 4
    assert vocab.encode(["a", "zzz", "<s>", "</s>"]).tolist() == [3, UNK_ID, UNK_ID, UNK_ID]
    assert vocab.n_outcomes == len(vocab) - 1


def test_vocabulary_roundtrip(tmp_path):
    vocab = Vocabulary.build([["x", "y", "x"], ["한국어", "x"]])
    vocab.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path / "vocab.txt") == vocab
    (tmp_path / "bad.txt").write_text("<unk>\t0\n<s>\tzero\n", encoding="utf-8")
    with pytest.raises(LmbenchError, match="bad.txt:2"):
        Vocabulary.load(tmp_path / "bad.txt")


def test_corpus_streams_and_accounting():
    vocab = Vocabulary.build([["a", "b"], ["b"]])
    corpus = Corpus.encode([["a", "b"], ["c"], ["b", "b", "a"]], vocab)
    a, b = vocab.index["a"], vocab.index["b"]
    assert corpus.n_sentences == 3 and corpus.n_tokens == 6 and corpus.n_predicted == 9
    assert corpus.bounded().tolist() == [
        BOS_ID, a, b, EOS_ID, BOS_ID, UNK_ID, EOS_ID, BOS_ID, b, b, a, EOS_ID,
    ]
    assert corpus.targets().tolist() == [a, b, EOS_ID, UNK_ID, EOS_ID, b, b, a, EOS_ID]
    assert corpus.sentence_index().tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert corpus.oov_tokens == 1 and corpus.oov_rate == pytest.approx(1 / 6)
    picked = corpus.select([2, 1])
    assert picked.targets().tolist() == [b, b, a, EOS_ID, UNK_ID, EOS_ID]
    assert picked.oov_tokens == 1
    again = Corpus.from_ids([[a, b], [b]], vocab)
    assert again.targets().tolist() == [a, b, EOS_ID, b, EOS_ID] and again.oov_tokens == 0


def test_literal_unk_is_not_oov():
    vocab = Vocabulary.build([["<unk>", "a"]])
    corpus = Corpus.encode([["<unk>", "a", "zz"]], vocab)
    assert corpus.ids.tolist() == [UNK_ID, vocab.index["a"], UNK_ID]
    assert corpus.oov_tokens == 1


def test_single_file_split_is_deterministic(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    first, second = read_splits(str(path)), read_splits(str(path))
    assert (len(first.train), len(first.valid), len(first.test)) == (80, 10, 10)
    assert first.train == second.train and first.test == second.test
    assert sorted(first.train + first.valid + first.test) == sorted(f"line {i}" for i in range(100))
    other = read_splits(f"{path}?split=90/0/10&seed=7")
    assert (len(other.train), other.valid, len(other.test)) == (90, None, 10)
    assert other.train != first.train[:90]


def test_directory_source_and_vocab_from_train_only(tmp_path):
    (tmp_path / "train.txt").write_text("a b\nb c\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("a d\n", encoding="utf-8")
    corpora = load_corpus(str(tmp_path), Tokenizer("whitespace"))
    assert "d" not in corpora.vocab and corpora.valid is None
    assert corpora.test.oov_tokens == 1 and corpora.test.n_predicted == 3
    with pytest.raises(LmbenchError, match="no valid split"):
        corpora.get("valid")


def test_synthetic_grammar_is_seeded():
    a = read_splits("synthetic:grammar?sentences=50&seed=3")
    b = read_splits("synthetic:grammar?sentences=50&seed=3")
    c = read_splits("synthetic:grammar?sentences=50&seed=4")
    assert a.train == b.train and a.train != c.train
    assert len(a.train) == 50 and len(a.valid) == 5 and len(a.test) == 5
    assert all(line.endswith(" .") for line in a.train)
    with pytest.raises(LmbenchError, match="no option 'size'"):
        read_splits("synthetic:grammar?size=3")
    with pytest.raises(LmbenchError, match="unknown synthetic corpus"):
        read_splits("synthetic:nope")



def test_nltk_corpus_missing_is_a_clear_error():
    import nltk

    try:
        nltk.data.find("corpora/brown")
        pytest.skip("brown is installed in this nltk_data")
    except LookupError:
        pass
    with pytest.raises(LmbenchError, match=r"nltk:brown is not installed.*nltk.download\('brown'\)"):
        read_splits("nltk:brown")
    with pytest.raises(LmbenchError, match="no corpus reader"):
        read_splits("nltk:no_such_corpus")
