"""BLEU, ROUGE and the bootstrap as properties, without the reference libraries (those
are in tests/oracle/): perfect and empty hypotheses, no overlap, one-word lines, the empty
corpus, order invariance, extra references, bounds, the bit-parallel LCS against the
table, and the errors at the user's boundary."""
import doctest
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.evaluate import (RougeScorer, bootstrap, bleu, corpus_bleu, rouge, resampling,
                               rouge_scores, sentence_bleu)

SMOOTHINGS = ["exp", "floor", "add-k", "none"]
words = st.lists(st.sampled_from("a b c d e f g , . ! 1 2.5".split()), max_size=12)
line = words.map(" ".join)


def test_doctests():
    for module in (bleu, rouge, resampling):
        assert doctest.testmod(module).failed == 0, module.__name__


# ---------------------------------------------------------------------------- BLEU
@given(lines=st.lists(st.lists(st.sampled_from("abcdefg"), min_size=4, max_size=12)
                      .map(" ".join), min_size=1, max_size=5), smooth=st.sampled_from(SMOOTHINGS))
def test_a_perfect_hypothesis_scores_100(lines, smooth):
    s = corpus_bleu(lines, [lines], smooth_method=smooth)
    assert s.score == pytest.approx(100) and s.bp == 1.0
    assert s.counts[:1] == s.totals[:1] and s.sys_len == s.ref_len


@given(refs=st.lists(line, min_size=1, max_size=4), smooth=st.sampled_from(SMOOTHINGS))
def test_empty_hypotheses_score_0(refs, smooth):
    s = corpus_bleu([""] * len(refs), [refs], smooth_method=smooth)
    assert s.score == 0.0 and s.sys_len == 0 and s.totals == [0, 0, 0, 0]
    assert s.bp == (0.0 if s.ref_len else 1.0)


@given(n=st.integers(1, 5), smooth=st.sampled_from(SMOOTHINGS), eff=st.booleans())
def test_no_overlap_scores_0_whatever_the_smoothing(n, smooth, eff):
    s = corpus_bleu(["x y z w"] * n, [["a b c d"] * n], smooth_method=smooth,
                    effective_order=eff)
    assert s.score == 0.0 and s.counts == [0, 0, 0, 0] and s.totals == [4 * n, 3 * n, 2 * n, n]


def test_one_word_lines():
    # no bigram at all: 0 in corpus BLEU, the unigram precision with effective order
    s = corpus_bleu(["cat", "dog"], [["cat", "cow"]])
    assert s.score == 0.0 and s.totals == [2, 0, 0, 0] and s.counts == [1, 0, 0, 0]
    assert corpus_bleu(["cat", "dog"], [["cat", "cow"]], effective_order=True).score == \
        pytest.approx(50.0)
    assert sentence_bleu("cat", ["cat"]).score == pytest.approx(100.0)


def test_the_empty_corpus_scores_0():
    s = corpus_bleu([], [[]])
    assert (s.score, s.sys_len, s.ref_len, s.counts) == (0.0, 0, 0, [0, 0, 0, 0])
    assert corpus_bleu([], segment_refs=[]).score == 0.0


@given(hyps=st.lists(line, min_size=1, max_size=5), data=st.data())
def test_corpus_bleu_ignores_segment_order_and_extra_references_only_help(hyps, data):
    refs = data.draw(st.lists(line, min_size=len(hyps), max_size=len(hyps)))
    extra = data.draw(st.lists(line, min_size=len(hyps), max_size=len(hyps)))
    s = corpus_bleu(hyps, [refs])
    assert 0.0 <= s.score <= 100.0 + 1e-9
    order = data.draw(st.permutations(range(len(hyps))))
    t = corpus_bleu([hyps[i] for i in order], [[refs[i] for i in order]])
    assert t.score == pytest.approx(s.score) and t.counts == s.counts
    more = corpus_bleu(hyps, [refs, extra])
    assert all(m >= c for m, c in zip(more.counts, s.counts))      # clipping by the max
    assert more.totals == s.totals


def test_closest_reference_length_prefers_the_shorter_on_a_tie():
    # hypothesis of 4 tokens, references of 2 and 6 tokens: both 2 away, r = 2
    s = corpus_bleu(["a b c d"], segment_refs=[["a b", "a b c d e f"]])
    assert s.ref_len == 2 and s.bp == 1.0
    s = corpus_bleu(["a b c d"], segment_refs=[["a b c d e f", "a b c d e"]])
    assert s.ref_len == 5


def test_bleu_errors():
    with pytest.raises(TypeError, match=r"wrap it|\[refs\]"):
        corpus_bleu(["a"], ["a"])
    with pytest.raises(ValueError, match="reference stream 1 has 1 lines for 2 hypotheses"):
        corpus_bleu(["a", "b"], [["a", "b"], ["a"]])
    with pytest.raises(ValueError, match="segment 0 has no reference"):
        corpus_bleu(["a"], [[None]])
    with pytest.raises(ValueError, match="unknown BLEU tokenizer 'xx'"):
        corpus_bleu(["a"], [["a"]], tokenize="xx")
    with pytest.raises(ValueError, match="unknown smoothing"):
        corpus_bleu(["a"], [["a"]], smooth_method="laplace")
    with pytest.raises(TypeError, match="pass the references once"):
        corpus_bleu(["a"], [["a"]], segment_refs=[["a"]])
    with pytest.raises(TypeError, match="write \\[ref\\]"):
        sentence_bleu("a", "a")


# ---------------------------------------------------------------------------- ROUGE
TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


@given(text=st.lists(st.sampled_from("a b c d e".split()), min_size=2, max_size=10)
       .map(" ".join))
def test_identical_texts_score_1(text):
    for s in RougeScorer(TYPES).score(text, text).values():
        assert s == (1.0, 1.0, 1.0)


@given(target=line)
def test_an_empty_prediction_or_no_overlap_scores_0(target):
    for s in RougeScorer(TYPES).score(target, "").values():
        assert s == (0.0, 0.0, 0.0)
    for s in RougeScorer(TYPES).score(target, "zz yy").values():
        assert s.fmeasure == 0.0


@given(a=line, b=line)
def test_swapping_reference_and_prediction_swaps_precision_and_recall(a, b):
    ab, ba = RougeScorer(TYPES).score(a, b), RougeScorer(TYPES).score(b, a)
    for name in TYPES:
        assert ab[name].precision == pytest.approx(ba[name].recall)
        assert ab[name].fmeasure == pytest.approx(ba[name].fmeasure)
    # one sentence each: the summary-level LCS is the LCS
    assert ab["rougeLsum"] == pytest.approx(ab["rougeL"])


@given(a=st.lists(st.integers(0, 4), max_size=40), b=st.lists(st.integers(0, 4), max_size=40))
def test_bit_parallel_lcs_equals_the_table(a, b):
    assert rouge.lcs_length(a, b) == rouge._lcs_table(a, b)[-1][-1]
    positions = rouge._lcs_positions(a, b)
    assert len(positions) == rouge.lcs_length(a, b) and positions == sorted(set(positions))


def test_one_word_lines_and_summary_sentences():
    s = RougeScorer(TYPES).score("cat", "cat")
    assert s["rouge1"] == (1.0, 1.0, 1.0) and s["rouge2"] == (0.0, 0.0, 0.0)
    # two reference sentences, each matched by a different predicted sentence
    s = RougeScorer(["rougeLsum", "rougeL"]).score("a b\nc d", "c d\na b")
    assert s["rougeLsum"] == (1.0, 1.0, 1.0) and s["rougeL"].fmeasure == 0.5


def test_rouge_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown ROUGE type 'rouge0'"):
        RougeScorer(["rouge0"])
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        rouge_scores(["a", "b"], ["a"])
    # no NLTK: the error says how to get it
    monkeypatch.setitem(sys.modules, "nltk", None)
    monkeypatch.setitem(sys.modules, "nltk.stem", None)
    monkeypatch.setattr(rouge, "_STEMMER", None)
    rouge.porter_stem.cache_clear()
    with pytest.raises(ImportError, match="pip install nltk"):
        RougeScorer(["rouge1"], use_stemmer=True)
    rouge.porter_stem.cache_clear()


# ---------------------------------------------------------------------------- bootstrap
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=20), seed=st.integers(0, 100))
def test_bootstrap_bounds_are_ordered_and_seeded(values, seed):
    scores = [{"x": rouge.Score(v, v, v)} for v in values]
    a = bootstrap(scores, n_samples=50, rng=seed)["x"]
    assert a.low.recall <= a.mid.recall + 1e-12 <= a.high.recall + 2e-12
    assert min(values) - 1e-12 <= a.low.fmeasure and a.high.fmeasure <= max(values) + 1e-12
    assert bootstrap(scores, n_samples=50, rng=seed)["x"] == a
    const = bootstrap([{"x": 0.25}] * len(values), n_samples=20, rng=seed)["x"]
    assert const == (pytest.approx(0.25),) * 3


def test_bootstrap_errors():
    with pytest.raises(ValueError, match="at least one"):
        bootstrap([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap([{"x": 1.0}], confidence=1.5)
    with pytest.raises(TypeError, match="rng"):
        bootstrap([{"x": 1.0}], rng="seed")
