"""Parallel corpora, the synthetic Korean→English generator, translation metrics, and the CLI's bad-input paths."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lmbench.errors import LmbenchError
from lmbench.evaluate.bleu import bleu_by_length, corpus_bleu, exact_match, length_buckets
from lmbench.text.koen import conjugate, generate_pairs, has_final_consonant
from lmbench.text.parallel import load_pairs, read_pairs


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmbench", *args], capture_output=True, text=True, timeout=120)


# --- synthetic:ko-en --------------------------------------------------------------------------------------
def test_hangul_final_consonant_and_conjugation():
    assert has_final_consonant("학생") and not has_final_consonant("친구")
    assert has_final_consonant("책") and not has_final_consonant("사과")
    # Forms checked by hand against Korean grammar: consonant stem, vowel stem, ㄹ stem, 하 verb, contractions.
    assert conjugate("먹") == {"present": "먹는다", "past": "먹었다", "adn_present": "먹는", "adn_past": "먹은",
                               "adn_future": "먹을", "connective": "먹고"}
    assert conjugate("보")["present"] == "본다" and conjugate("보")["past"] == "봤다"
    assert conjugate("만들")["present"] == "만든다" and conjugate("만들")["adn_present"] == "만드는"
    assert conjugate("공부하")["past"] == "공부했다"
    assert conjugate("가르치")["past"] == "가르쳤다" and conjugate("찾")["past"] == "찾았다"


def test_generator_is_seeded_and_reorders_words():
    a, b = generate_pairs(300, seed=5), generate_pairs(300, seed=5)
    assert a == b and a != generate_pairs(300, seed=6)
    lengths = [len(k.split()) for k, _ in a]
    assert min(lengths) <= 5 and max(lengths) >= 30
    # SOV → SVO: in a one-clause sentence "X 는 Y 를 V" the Korean verb is last, the English verb second.
    simple = [(k, e) for k, e in a if len(k.split()) == 5 and k.split()[1] in "는은" and k.split()[3] in "를을"]
    assert simple
    pronouns = {"나": "I", "너": "you", "그": "he", "그녀": "she", "우리": "we", "그들": "they"}
    for k, e in simple:
        assert k.split()[-1].endswith("다")  # the verb closes the Korean sentence
        if k.split()[0] in pronouns:  # … and follows the subject in English, before the object
            assert e.split()[0] == pronouns[k.split()[0]] and e.split()[-1] != e.split()[1]
    # Particles agree with the final consonant of the noun before them.
    for k, _ in a:
        toks = k.split()
        for prev, tok in zip(toks, toks[1:]):
            if tok in ("을", "를") and prev not in ("들",) and "\uac00" <= prev[-1] <= "\ud7a3":
                assert (tok == "을") == has_final_consonant(prev), k


def test_synthetic_pairs_splits_and_vocabularies():
    data = load_pairs("synthetic:ko-en?train=200&valid=20&test=30&seed=1")
    assert (len(data.train), len(data.valid), len(data.test)) == (200, 20, 30)
    assert "사과" in data.src_vocab.index or "학생" in data.src_vocab.index
    assert "the" in data.tgt_vocab.index and "the" not in data.src_vocab.index
    with pytest.raises(LmbenchError, match="option"):
        read_pairs("synthetic:ko-en?trian=3")
    with pytest.raises(LmbenchError, match="ko-en"):
        read_pairs("synthetic:fr-en")


# --- files ------------------------------------------------------------------------------------------------
def test_tsv_source_column_and_seeded_split(tmp_path):
    lines = [f"english {i}\t한국어 {i}\tCC-BY attribution #{i}" for i in range(50)]
    path = tmp_path / "kor.txt"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    raw = read_pairs(f"{path}?source=2")
    assert raw.valid is None and len(raw.train) == 45 and len(raw.test) == 5
    assert all(s.startswith("한국어") and t.startswith("english") for s, t in raw.train + raw.test)
    # Deterministic: same seed, same split; another seed, another split; together they are the whole file.
    assert read_pairs(f"{path}?source=2").test == raw.test
    assert read_pairs(f"{path}?source=2&seed=1").test != raw.test
    assert sorted(raw.train + raw.test) == sorted((f"한국어 {i}", f"english {i}") for i in range(50))
    three = read_pairs(f"{path}?split=80/10/10")
    assert (len(three.train), len(three.valid), len(three.test)) == (40, 5, 5)


def test_tsv_errors_name_the_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("a\tb\nno tab here\nc\td\n", encoding="utf-8")
    with pytest.raises(LmbenchError, match=r"pairs.tsv:2: no tab"):
        read_pairs(str(path))
    path.write_text("a\tb\nc\t \n", encoding="utf-8")
    with pytest.raises(LmbenchError, match=r"pairs.tsv:2: empty target"):
        read_pairs(str(path))
    path.write_text("a\tb\n\tx\n", encoding="utf-8")
    with pytest.raises(LmbenchError, match=r"pairs.tsv:2: empty source"):
        read_pairs(str(path))
    with pytest.raises(LmbenchError, match="column 3"):
        read_pairs(f"{path}?source=3")


def test_two_files_and_directory(tmp_path):
    src, tgt = tmp_path / "a.src", tmp_path / "a.tgt"
    src.write_text("".join(f"s{i}\n" for i in range(10)), encoding="utf-8")
    tgt.write_text("".join(f"t{i}\n" for i in range(10)), encoding="utf-8")
    raw = read_pairs(f"{src},{tgt}?split=80/20")
    assert len(raw.train) == 8 and all(s[1:] == t[1:] for s, t in raw.train + raw.test)
    tgt.write_text("".join(f"t{i}\n" for i in range(9)), encoding="utf-8")
    with pytest.raises(LmbenchError, match="has 10 lines but .* has 9"):
        read_pairs(f"{src},{tgt}")
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "train.src").write_text("x y\nz\n", encoding="utf-8")
    (d / "train.tgt").write_text("X Y\nZ\n", encoding="utf-8")
    (d / "test.src").write_text("x\n", encoding="utf-8")
    (d / "test.tgt").write_text("X\n", encoding="utf-8")
    data = load_pairs(str(d))
    assert len(data.train) == 2 and data.valid is None and len(data.test) == 1
    (d / "valid.src").write_text("x\n", encoding="utf-8")
    with pytest.raises(LmbenchError, match="both exist"):
        read_pairs(str(d))


# --- metrics ------------------------------------------------------------------------------------------------
def test_bleu_against_hand_computation():
    hyp, ref = "the cat sat on the mat".split(), "the cat is on the mat".split()
    # Modified precisions 5/6, 3/5, 1/4, 0/3; NLTK's method1 replaces the zero count by ε = 0.1; no brevity penalty.
    expected = 100 * math.exp(np.mean(np.log([5 / 6, 3 / 5, 1 / 4, 0.1 / 3])))
    assert corpus_bleu([hyp], [ref]) == pytest.approx(expected, rel=1e-9)
    assert corpus_bleu([ref, ref], [ref, ref]) == pytest.approx(100.0)
    # Brevity penalty: a correct 4-word prefix of a 6-word reference.
    assert corpus_bleu([ref[:4]], [ref]) == pytest.approx(100 * math.exp(1 - 6 / 4))
    assert exact_match([hyp, ref], [ref, ref]) == 0.5
    # NLTK counts a missing 3-gram/4-gram of a 2-word sentence as 0/1 (then smoothed to 0.1/1): not 100.
    assert corpus_bleu([["he", "sleeps"]], [["he", "sleeps"]]) == pytest.approx(100 * math.exp(math.log(0.1) / 2))


def test_length_buckets_and_bleu_by_length():
    buckets = dict(length_buckets(np.array([3, 5, 6, 12, 40]), edges=(5, 10)))
    assert list(buckets) == ["1-5", "6-10", "11+"]
    assert buckets["1-5"].tolist() == [0, 1] and buckets["11+"].tolist() == [3, 4]
    refs = [["a", "b", "c", "d"]] * 3
    rows = bleu_by_length([["a", "b", "c", "d"], ["x"], ["x"]], refs, np.array([2, 8, 9]), edges=(5, 10))
    assert [r["bucket"] for r in rows] == ["1-5", "6-10"]
    assert rows[0]["bleu"] == pytest.approx(100.0) and rows[1]["exact_match"] == 0.0


# --- CLI bad input → one line, exit 2 ------------------------------------------------------------------
def test_cli_bad_pairs_file(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("hello\tworld\nbroken line\n", encoding="utf-8")
    r = run("translate", "train", "--pairs", str(path), "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.tsv:2: no tab" in r.stderr
    assert not (tmp_path / "m").exists()


def test_cli_mismatched_files_and_not_a_translator(tmp_path):
    (tmp_path / "a").write_text("x\ny\n", encoding="utf-8")
    (tmp_path / "b").write_text("x\n", encoding="utf-8")
    r = run("translate", "train", "--pairs", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "2 lines but" in r.stderr
    lm = tmp_path / "lm"
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\nb c a\n" * 5, encoding="utf-8")
    assert run("train", "unigram", "--corpus", str(corpus), "--out", str(lm)).returncode == 0
    r = run("translate", "text", str(lm), "안녕")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not a translator" in r.stderr
    r = run("translate", "eval", str(tmp_path / "nowhere"), "--pairs", "synthetic:ko-en?train=5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_shared_kor_eng_file_reads_korean_as_source():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "kor-eng" / "kor.txt"
    if not path.is_file():
        pytest.skip("../shared/corpora/kor-eng/kor.txt is not available")
    raw = read_pairs(f"{path}?source=2")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(raw.train) + len(raw.test) == len(lines) and len(raw.test) == round(0.1 * len(lines))
    english, korean = lines[0].split("\t")[:2]
    assert (korean, english) in raw.train + raw.test
