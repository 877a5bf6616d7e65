"""Issue 14: morph / subword tokenizers, NFC, per-character and per-word figures, sacreBLEU, `nearest`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench.cli import main
from lmbench.errors import LmbenchError
from lmbench.evaluate.units import per_unit_figures, text_units
from lmbench.text.parallel import PairSplits, load_pairs
from lmbench.text.sources import TextSplits, read_splits
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import Vocabulary


def run(capsys, *argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


# --- Kiwi morphemes -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kiwi():
    return pytest.importorskip("kiwipiepy")


def test_morph_tokenizer_on_hand_checked_sentences(kiwi):
    morph = Tokenizer("morph")
    # 나/NP 는/JX | 배/NNG 가/JKS | 고프/VA 어서/EC | 밥/NNG 을/JKO | 먹/VV 었/EP 다/EF | ./SF
    assert morph("나는 배가 고파서 밥을 먹었다.") == [
        "▁나", "는", "▁배", "가", "▁고프", "어서", "▁밥", "을", "▁먹", "었", "다", "."]
    assert morph("톰은 학교에 갔어요.") == ["▁톰", "은", "▁학교", "에", "▁가", "었", "어요", "."]
    tagged = Tokenizer("morph:tagged")
    assert tagged("나는 머신러닝이 좋다") == ["▁나/NP", "는/JX", "▁머신/NNG", "러닝/NNG", "이/JKS", "▁좋/VA", "다/EF"]
    # English and numbers pass through the word rules.
    assert morph("I like Tom's 3 cats, 정말!") == ["▁I", "▁like", "▁Tom's", "▁3", "▁cats", ",", "▁정말", "!"]
    # Detokenized: natural text again, contractions (고프+어서 → 고파서, 가+었 → 갔) restored by Kiwi.
    for text in ("나는 배가 고파서 밥을 먹었다.", "톰은 학교에 갔어요."):
        assert morph.detokenize(morph(text)) == text
        assert tagged.detokenize(tagged(text)) == text


def test_morph_without_kiwi_names_the_extra(monkeypatch):
    import builtins

    from lmbench.text import tokenize

    real_import = builtins.__import__

    def no_kiwi(name, *args, **kwargs):
        if name == "kiwipiepy":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kiwi)
    tokenize._kiwi.cache_clear()
    tokenize._morphemes.cache_clear()
    try:
        with pytest.raises(LmbenchError, match=r"lmbench\[korean\]"):
            Tokenizer("morph")("나는 밥을 먹었다")
    finally:
        tokenize._kiwi.cache_clear()
        tokenize._morphemes.cache_clear()


# --- subwords ---------------------------------------------------------------------------------------------------
TRAIN_TEXT = [
    "나는 배가 고파서 밥을 먹었다.", "나는 머신러닝이 좋다.", "톰은 학교에 갔어요.", "우리는 내일 바다에 간다.",
    "The cat sat on the mat.", "I like machine learning, really!", "Tom went to school yesterday.",
    "그녀는 책을 읽고 있었다.", "We will go to the sea tomorrow.", "She was reading a book.",
] * 5


@pytest.fixture(scope="module", params=["bpe:400", "unigram:400"])
def subword(request):
    pytest.importorskip("sentencepiece")
    return Tokenizer(request.param).trained_on(TRAIN_TEXT)


TEXT = st.text(alphabet=st.one_of(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,!?'\"()-  \t"),
                                  st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(TEXT)
def test_subword_round_trip_is_exact(subword, text):
    normalized = " ".join(unicodedata.normalize("NFC", text).split())
    assert subword.detokenize(subword(text)) == normalized


def test_subword_tokenizer_is_trained_on_train_only_and_saved_as_json(tmp_path):
    pytest.importorskip("sentencepiece")
    splits = TextSplits("t", train=TRAIN_TEXT, test=["완전히 새로운 문장입니다 zebra"])
    from lmbench.text.sources import load_corpus

    corpora = load_corpus(splits, Tokenizer("bpe:400"))
    assert corpora.tokenizer.model is not None
    again = Tokenizer("bpe:400").trained_on(TRAIN_TEXT)
    assert again == corpora.tokenizer  # deterministic, and the test split played no part
    restored = Tokenizer.from_json(json.loads(json.dumps(corpora.tokenizer.to_json())))
    assert restored("zebra 문장") == corpora.tokenizer("zebra 문장")
    with pytest.raises(LmbenchError, match="too small"):
        Tokenizer("bpe:50").trained_on(TRAIN_TEXT)


def test_tokenizer_specs_are_checked():
    for bad, fragment in (("bpe", "vocabulary size"), ("morph:x", "tagged"), ("word:3", "takes no option"),
                          ("kiwi", "choose one of")):
        with pytest.raises(LmbenchError, match=fragment):
            Tokenizer(bad)
    with pytest.raises(LmbenchError, match="not trained"):
        Tokenizer("unigram:500")("text")


# --- NFC ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["word", "char", "whitespace"])
def test_nfc_and_nfd_text_get_identical_ids(kind):
    nfc = ["나는 배가 고파서 밥을 먹었다.", "한국어 문장입니다."]
    nfd = [unicodedata.normalize("NFD", line) for line in nfc]
    assert nfd != nfc
    tok = Tokenizer(kind)
    vocab = Vocabulary.build(tok(line) for line in nfc)
    for a, b in zip(nfc, nfd):
        assert vocab.encode_marking_oov(tok(b)).tolist() == vocab.encode_marking_oov(tok(a)).tolist()
        assert (vocab.encode_marking_oov(tok(a)) >= 0).all()
    raw = Tokenizer(kind, nfc=False)  # turned off: NFD text is out of vocabulary, as it was before
    assert (vocab.encode_marking_oov(raw(nfd[0])) < 0).any()


# --- bits per character and per-word perplexity -------------------------------------------------------------
def test_bits_per_character_and_word_perplexity_by_hand(tmp_path, capsys):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "train.txt").write_text("나는 밥을\n나는 물을\n", encoding="utf-8")
    (corpus / "test.txt").write_text("나는 빵을 먹었다\n", encoding="utf-8")
    code, _, err = run(capsys, "train", "uniform", "--corpus", corpus, "--out", tmp_path / "m")
    assert code == 0, err
    code, out, err = run(capsys, "eval", tmp_path / "m", "--corpus", corpus, "--json")
    assert code == 0, err
    result = json.loads(out)
    # Vocabulary <unk> <s> </s> 나는 밥을 물을: 5 outcomes. The test line predicts 3 words and </s>, each 1/5.
    log_likelihood = 4 * math.log(1 / 5)
    # "나는 빵을 먹었다": 2+1+2+1+3 = 9 characters, +1 for the sentence end; 3 words + 1.
    assert result["bits_per_character"] == pytest.approx(-log_likelihood / math.log(2) / 10)
    assert result["word_perplexity"] == pytest.approx(5.0)
    # With characters as tokens the same text gives 10 predicted tokens; per character the figure is the
    # model's, per word it is exp(total / 4) whatever the tokenization.
    assert text_units(["나는 빵을 먹었다", "   "], Tokenizer("char")) == (10, 4, 1)
    figures = per_unit_figures(-10.0, 10, 4)
    assert figures["bits_per_character"] == pytest.approx(1 / math.log(2))
    assert figures["word_perplexity"] == pytest.approx(math.exp(2.5))


# --- TSV columns, option errors -----------------------------------------------------------------------------
def test_tsv_column_selection_and_option_errors(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("Go.\t가.\tCC-BY France\nHi.\t안녕.\tCC-BY France\nRun!\t뛰어!\tCC-BY France\n", encoding="utf-8")
    splits = read_splits(f"{tsv}?column=2&split=100/0/0")
    assert splits.train == ["가.", "안녕.", "뛰어!"]
    with pytest.raises(LmbenchError, match="valid options: split, seed, column"):
        read_splits(f"{tsv}?source=2")
    with pytest.raises(LmbenchError, match="column=4"):
        read_splits(f"{tsv}?column=4")
    from lmbench.text.parallel import read_pairs

    with pytest.raises(LmbenchError, match="valid options: source, target, split, seed"):
        read_pairs(f"{tsv}?column=2")
    assert read_pairs(f"{tsv}?source=2&target=1&split=100/0").train[0] == ("가.", "Go.")


# --- sacreBLEU ------------------------------------------------------------------------------------------------
def test_sacrebleu_figures_equal_the_sacrebleu_cli(tmp_path):
    from lmbench.evaluate.bleu import score_translations

    hyps = ["The cat sat on the mat.", "A quick test, really!", "He reads books every day."]
    refs = ["The cat sat on a mat.", "A quick test, truly!", "He reads a book every day."]
    (tmp_path / "hyp.txt").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    cli = subprocess.run([sys.executable, "-m", "sacrebleu", str(tmp_path / "ref.txt"), "-i", str(tmp_path / "hyp.txt"),
                          "-m", "bleu", "chrf", "-w", "6"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    bleu_cli, chrf_cli = json.loads(cli.stdout)
    ours = score_translations(hyps, refs, np.array([6, 4, 5]))
    assert ours["bleu"] == pytest.approx(bleu_cli["score"], abs=1e-5)
    assert ours["chrf"] == pytest.approx(chrf_cli["score"], abs=1e-5)
    assert ours["bleu_signature"] == bleu_cli["signature"]
    assert ours["chrf_signature"] == chrf_cli["signature"]
    nltk = score_translations(hyps, refs, np.array([6, 4, 5]), bleu="nltk")
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    word = Tokenizer("word")
    expected = 100 * corpus_bleu([[word(r)] for r in refs], [word(h) for h in hyps],
                                 smoothing_function=SmoothingFunction().method1)
    assert nltk["bleu_signature"].startswith("nltk") and nltk["bleu"] == pytest.approx(expected)
    with pytest.raises(LmbenchError, match="sacrebleu, nltk"):
        score_translations(hyps, refs, np.array([6, 4, 5]), bleu="moses")


# --- nearest --------------------------------------------------------------------------------------------------
PAIRS = [("나는 밥을 먹는다", "I eat rice ."), ("나는 물을 마신다", "I drink water ."),
         ("그는 책을 읽는다", "he reads a book .")]


def test_nearest_retrieves_by_tfidf_cosine(tmp_path):
    from lmbench.models.registry import create_model, load_model

    data = load_pairs(PairSplits("hand", PAIRS, test=[("그는 물을 마신다", "he drinks water .")]),
                      Tokenizer("whitespace"), Tokenizer("whitespace"))
    model = create_model("nearest").fit(data)
    hyp = model.translate_corpus(data.test.src)
    assert data.tgt_vocab.decode(hyp.tokens[0].tolist()) == ["I", "drink", "water", "."]
    # By hand: idf(나는) = ln(4/3) + 1, every other word ln(4/2) + 1; the query's three words weigh alike.
    a, b = math.log(4 / 3) + 1, math.log(2) + 1
    cos_2 = 2 * b * b / (math.sqrt(3) * b * math.sqrt(a * a + 2 * b * b))
    assert hyp.scores[0] == pytest.approx(cos_2)
    assert cos_2 > 1 / 3  # the third pair shares only 그는: cosine 1/3
    assert model.translate(["그는 책을 마신다"]) == ["he reads a book ."]  # 책을 and 그는 outweigh 마신다
    model.save(tmp_path / "n")
    loaded = load_model(tmp_path / "n")
    assert loaded.translate(["그는 물을 마신다", "전혀 모르는 말"]) == ["I drink water .", "I eat rice ."]


# --- unknown input is never silent; NFC end to end ------------------------------------------------------------
def test_translate_text_names_unknown_tokens_and_reads_nfd_as_nfc(tmp_path, capsys):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    code, _, err = run(capsys, "translate", "train", "nearest", "--pairs", f"{tsv}?split=100/0", "--out",
                       tmp_path / "n", "--tokenizer", "whitespace")
    assert code == 0, err
    code, out, err = run(capsys, "translate", "text", tmp_path / "n", "그는 사과를 마신다", "--json")
    assert code == 0, err
    assert json.loads(out)["translations"][0]["unknown_tokens"] == ["사과를"]
    assert "unknown to the model" in err and "사과를" in err
    nfd = unicodedata.normalize("NFD", "나는 물을 마신다")
    code, out, err = run(capsys, "translate", "text", tmp_path / "n", nfd, "--json")
    assert code == 0 and err == ""  # NFC by default: the NFD spelling meets the same vocabulary
    assert json.loads(out)["translations"][0] == {"source": nfd, "translation": "I drink water .",
                                                  "unknown_tokens": []}
    code, _, err = run(capsys, "translate", "train", "nearest", "--pairs", f"{tsv}?split=100/0", "--out",
                       tmp_path / "raw", "--tokenizer", "whitespace", "--no-nfc")
    assert code == 0, err
    code, out, err = run(capsys, "translate", "text", tmp_path / "raw", nfd, "--json")
    assert json.loads(out)["translations"][0]["unknown_tokens"] == nfd.split()  # stored with the model: no NFC


def test_generate_warns_on_unknown_prompt_tokens(tmp_path, capsys):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "train.txt").write_text("나는 밥을 먹었다\n그는 물을 마셨다\n" * 10, encoding="utf-8")
    code, _, err = run(capsys, "train", "rnn", "--corpus", corpus, "--out", tmp_path / "m", "-p", "emb=4",
                       "-p", "hidden=4", "-p", "bptt=4", "-p", "batch=2", "-p", "epochs=1")
    assert code == 0, err
    code, out, err = run(capsys, "generate", tmp_path / "m", "--prompt", "나는 빵을", "--tokens", "3", "--json")
    assert code == 0
    assert json.loads(out)["unknown_tokens"] == ["빵을"]
    assert "prompt: unknown to the model (read as <unk>): 빵을" in err


def test_subword_without_sentencepiece_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_spm(name, *args, **kwargs):
        if name == "sentencepiece":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spm)
    with pytest.raises(LmbenchError, match=r"lmbench\[subword\]"):
        Tokenizer("bpe:300").trained_on(TRAIN_TEXT)


# --- the report ---------------------------------------------------------------------------------------------
def test_report_compares_tokenizers_per_character_and_shows_the_bleu_signature():
    import pandas as pd

    from lmbench.bench.runner import RESULT_COLUMNS
    from lmbench.report.figures import RunData, draw_figures

    def rows(**cols):
        n = len(cols["value"])
        base = {"cell": ["c"] * n, "corpus": ["ko"] * n, "model": ["m"] * n, "seed": [0] * n, "x": [None] * n}
        return pd.DataFrame({**base, **cols})[RESULT_COLUMNS]

    tok = {"config": ["(corpus)"] * 2, "metric": ["tokenization"] * 2, "group": ["eojeol", "morpheme"]}
    results = pd.concat([
        rows(**tok, quantity=["vocabulary"] * 2, value=[900.0, 300.0]),
        rows(**tok, quantity=["bits_per_character"] * 2, value=[3.1, 2.4]),
        rows(**tok, quantity=["token_perplexity"] * 2, value=[400.0, 20.0]),
        rows(**tok, quantity=["unseen_ngram_fraction"] * 2, x=[2, 2], value=[0.7, 0.3]),
        rows(config=["s2s", "s2s"], metric=["bleu"] * 2, quantity=["bleu", "chrf"], group=["test"] * 2,
             value=[21.5, 40.25]),
        rows(config=["s2s"], metric=["bleu"], quantity=["bleu_by_length"], group=["1-5"], x=[5], value=[30.0]),
    ], ignore_index=True)
    signature = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    records = [{"config": "s2s", "corpus": "ko", "extras": {"bleu": {"bleu_signature": signature}}}]
    figures = {f.key: f for f in draw_figures(RunData(results, pd.DataFrame(), records, {}))}
    table = figures["tokenization"].table.set_index("tokens")
    assert table.loc["morpheme", "bits_per_character"] == 2.4 and table.loc["eojeol", "vocabulary"] == 900.0
    assert table.loc["eojeol", "unseen 2-grams"] == 0.7
    assert "token_perplexity" not in table.columns  # not comparable across tokenizers: never in the report
    assert signature in figures["bleu"].caption and "chrF: s2s 40.2" in figures["bleu"].caption


def test_suite_corpus_if_present_is_skipped_with_a_note_when_absent(tmp_path):
    from lmbench.bench.suite import parse_suite

    here = tmp_path / "here.txt"
    here.write_text("a b\n", encoding="utf-8")
    text = (f'metrics = ["perplexity"]\n[[corpus]]\nspec = "{here}?column=1"\nif_present = true\n'
            f'[[corpus]]\nspec = "{tmp_path / "absent.txt"}"\nlabel = "gone"\nif_present = true\n'
            '[[model]]\nname = "uniform"\n')
    suite = parse_suite(text, "s.toml")
    assert [c.corpus.label for c in suite.cells()] == ["here.txt"]
    assert suite.skipped_corpora() == [f"gone: {tmp_path / 'absent.txt'} not found, skipped (if_present)"]
    with pytest.raises(LmbenchError, match="if_present must be true or false"):
        parse_suite(text.replace("if_present = true", 'if_present = "yes"'), "s.toml")


def test_open_vocabulary_bits_per_character_charge_the_spelling_of_oov_tokens():
    from lmbench.evaluate.tokenization import spelling_nats, tokenization_table

    assert spelling_nats("▁라면", 10) == pytest.approx(3 * math.log(12))
    assert spelling_nats("<0xEB>", 10) == pytest.approx(math.log(256))
    splits = TextSplits("t", train=["가 나", "가 다", "나 다"], test=["가 라"])
    rec = tokenization_table(splits, ["word"], order=2, max_order=2)[0]
    # One OOV token (라) in "가 라" (3 characters + the sentence end); the training text has 3 characters.
    assert rec["oov_rate"] == pytest.approx(1 / 2)  # 가 and 라 (the OOV rate counts words, not </s>)
    extra_bits = 2 * math.log(3 + 2) / math.log(2) / 4
    assert rec["bits_per_character_open"] - rec["bits_per_character"] == pytest.approx(extra_bits)
