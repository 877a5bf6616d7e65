"""Modified Kneser–Ney against KenLM: its ARPA files entry by entry, its perplexities, and the `kenlm` module
reading our ARPA export. Runs where ../shared (the corpora and KenLM's reference files) is present."""

import math
from pathlib import Path

import numpy as np
import pytest

from lmbench.evaluate.harness import evaluate
from lmbench.models.ngram.arpa import LN10, read_arpa
from lmbench.models.ngram.backoff import BackoffTables
from lmbench.models.ngram.model import ArpaModel, NgramModel
from lmbench.text.sources import load_corpus
from lmbench.text.tokenize import Tokenizer
from lmbench.text.vocab import BOS_ID

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PTB = SHARED / "corpora" / "ptb-v"
REFERENCE = SHARED / "reference"
KENLM_PERPLEXITY = {3: 194.178, 5: 191.413}  # lmplz -o N --discount_fallback, query (../shared/corpora/README.md)


@pytest.fixture(scope="module")
def ptb():
    if not (PTB / "train.txt").is_file():
        pytest.skip("../shared/corpora/ptb-v is not present")
    return load_corpus(str(PTB), Tokenizer("whitespace"))


@pytest.fixture(scope="module")
def models(ptb):
    return {n: NgramModel(order=n, smoothing="modified_kneser_ney").fit(ptb.train) for n in (3, 5)}


def test_vocabulary_is_kenlms(ptb):
    # <unk>, <s>, </s> and the 6,021 corpus types.
    assert len(ptb.vocab) == 6024


@pytest.mark.parametrize("order", [3, 5])
def test_perplexity_equals_kenlm(ptb, models, order):
    result = evaluate(models[order], ptb.test)
    assert result.tokens == 82430 and result.zero_prob_events == 0
    assert result.perplexity == pytest.approx(KENLM_PERPLEXITY[order], rel=1e-3)


@pytest.mark.parametrize("order", [3, 5])
def test_every_arpa_entry_equals_kenlm(ptb, models, order):
    path = REFERENCE / f"kenlm-ptb-v-order{order}.arpa"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    ref_vocab, ref = BackoffTables.from_sections(read_arpa(path), str(path))
    ours = models[order].tables
    to_ours = np.array([ptb.vocab.index[w] for w in ref_vocab.tokens])
    for n in range(1, order + 1):
        ids = to_ours[ref.ngram_ids(n)]  # KenLM's n-grams in our ids
        where = ids[:, 0]
        for j in range(1, n):
            where = ours.lookup(j + 1, where, ids[:, j])
        assert (where >= 0).all(), f"KenLM has {n}-grams we lack"
        assert ours.keys[n - 1].size == ref.keys[n - 1].size, f"we have {n}-grams KenLM lacks"
        logp, ref_logp = ours.logp[n - 1][where] / LN10, ref.logp[n - 1] / LN10
        # <s> is never predicted: KenLM prints its unigram log10 p as 0, we (like SRILM) as −99.
        keep = ~((n == 1) & (ids[:, 0] == BOS_ID))
        np.testing.assert_allclose(logp[keep], ref_logp[keep], rtol=0, atol=2e-6)
        np.testing.assert_allclose(ours.logbo[n - 1][where] / LN10, ref.logbo[n - 1] / LN10, rtol=0, atol=2e-6)


def test_kenlm_module_reads_our_export_with_the_same_perplexity(ptb, models, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    model = models[3]
    model.export_arpa(tmp_path / "ours.arpa")
    km = kenlm.Model(str(tmp_path / "ours.arpa"))
    # kenlm.Model.score(sentence, bos=True, eos=True) is the log10 probability of the words and </s>.
    total_log10 = sum(km.score(" ".join(ptb.vocab.decode(s)), bos=True, eos=True) for s in ptb.test)
    kenlm_ppl = 10 ** (-total_log10 / ptb.test.n_predicted)
    assert kenlm_ppl == pytest.approx(evaluate(model, ptb.test).perplexity, rel=1e-6)
    # And per token: KenLM's full_scores against our logprobs for a few sentences.
    lp = model.logprobs(ptb.test.select(range(20))) / LN10
    theirs = [x[0] for i in range(20) for x in km.full_scores(" ".join(ptb.vocab.decode(ptb.test[i])))]
    np.testing.assert_allclose(lp, theirs, rtol=0, atol=1e-5)


def test_imported_kenlm_arpa_scores_like_kenlm(ptb):
    path = REFERENCE / "kenlm-ptb-v-order3.arpa"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    model = ArpaModel.from_arpa(path)
    model.tokenizer = Tokenizer("whitespace")
    corpora = load_corpus(str(PTB), model.tokenizer, vocab=model.vocab)
    assert evaluate(model, corpora.test).perplexity == pytest.approx(KENLM_PERPLEXITY[3], rel=1e-5)
    assert math.isinf(model.next_logprobs([np.array([], dtype=np.int64)])[0, BOS_ID])
