"""chrF and chrF++ without the oracle (tests/oracle/test_sacrebleu_chrf.py compares with
sacrebleu): what the score must do whatever the implementation, the n-gram helpers, the
errors, and ``numpyllm eval --metric chrf``."""
import doctest
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.cli import main
from numpyllm.evaluate import chrf, chrf_stats, corpus_chrf, sentence_chrf
from numpyllm.evaluate.chrf import char_ngrams, f_score, words

lines = st.lists(st.text("abcde ,.!", min_size=1, max_size=20), min_size=1, max_size=5)
ORDERS = st.sampled_from([(6, 0), (6, 2), (3, 1)])


def test_doctests():
    assert doctest.testmod(chrf).failed == 0


@given(lines=lines, orders=ORDERS, eps=st.booleans())
def test_a_perfect_hypothesis_scores_100(lines, orders, eps):
    c, w = orders
    if not any(x.split() for x in lines):
        return                                      # nothing but spaces: no n-gram at all
    s = corpus_chrf(lines, [lines], char_order=c, word_order=w, eps_smoothing=eps)
    if eps:   # every order must have n-grams for 100 (a short line lacks 6-grams: ε)
        assert s.score <= 100 + 1e-9
    else:
        assert math.isclose(s.score, 100.0)


@given(lines=lines, refs=lines, orders=ORDERS)
def test_the_corpus_score_is_the_same_in_any_segment_order(lines, refs, orders):
    n = min(len(lines), len(refs))
    hyps, refs = lines[:n], refs[:n]
    c, w = orders
    a = corpus_chrf(hyps, [refs], char_order=c, word_order=w).score
    b = corpus_chrf(hyps[::-1], [refs[::-1]], char_order=c, word_order=w).score
    assert math.isclose(a, b, abs_tol=1e-12)


@given(hyp=st.text("abcde ", max_size=15), ref=st.text("abcde ", max_size=15),
       extra=st.text("abcde ", max_size=15))
def test_a_second_reference_never_lowers_a_segment(hyp, ref, extra):
    one = sentence_chrf(hyp, [ref]).score
    two = sentence_chrf(hyp, [ref, extra]).score
    assert two >= one - 1e-12


def test_recall_weighs_beta_squared():
    """A hypothesis that is half the reference has precision 1 and recall ~1/2 per order:
    β = 2 scores it below β = 1, and β = 1 is the harmonic mean."""
    hyp, ref = "abcdefgh", "abcdefghabcdefgh"
    b1 = sentence_chrf(hyp, [ref], beta=1, char_order=1).score
    b2 = sentence_chrf(hyp, [ref], beta=2, char_order=1).score
    p, r = 1.0, 0.5
    assert math.isclose(b1, 100 * 2 * p * r / (p + r))
    assert math.isclose(b2, 100 * 5 * p * r / (4 * p + r)) and b2 < b1


def test_ngram_helpers():
    assert char_ngrams("a bc", 2) == [{"a": 1, "b": 1, "c": 1}, {"ab": 1, "bc": 1}]
    assert char_ngrams("a b", 2, whitespace=True)[1] == {"a ": 1, " b": 1}
    assert words("(hi) cat, 'q' . x!") == ["(hi", ")", "cat", ",", "'q", "'", ".", "x", "!"]
    # effective order: an order neither side has does not count; with ε it pulls down
    stats = [4, 4, 4, 0, 0, 0]
    assert f_score(stats) == 100.0 and math.isclose(f_score(stats, eps_smoothing=True), 50.0)


def test_stats_sum_to_the_corpus_score():
    hyps, refs = ["the cat sat", "a dog"], ["the cat sat down", "the dog"]
    rows = chrf_stats(hyps, [refs], word_order=2)
    assert len(rows) == 2 and all(len(r) == 3 * 8 for r in rows)
    sums = [sum(c) for c in zip(*rows)]
    assert math.isclose(f_score(sums), corpus_chrf(hyps, [refs], word_order=2).score)


@pytest.mark.parametrize("kwargs, match", [
    ({"char_order": -1}, "char_order must be an integer >= 0"),
    ({"char_order": 0, "word_order": 0}, "at least 1"),
    ({"beta": 0}, "beta must be an integer >= 1"),
    ({"word_order": 1.5}, "word_order must be an integer")])
def test_bad_settings_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        corpus_chrf(["a"], [["a"]], **kwargs)


def test_bad_references_are_errors():
    with pytest.raises(TypeError, match="list of strings"):
        sentence_chrf("a", "a")
    with pytest.raises(ValueError):
        corpus_chrf(["a", "b"], [["a"]])


def run(capsys, *args):
    code = main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_cli_chrf_is_corpus_chrf(tmp_path, capsys, one_line_error):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("the cats sat on a mat\nhello there\n")
    ref.write_text("the cat sat on the mat\nhello, there!\n")
    out = json.loads(run(capsys, "--metric", "chrf", "--hyp", hyp, "--ref", ref,
                         "--word-order", "2", "--json"))
    s = corpus_chrf(["the cats sat on a mat", "hello there"],
                    [["the cat sat on the mat", "hello, there!"]], word_order=2)
    assert out["name"] == "chrF2++" and out["score"] == s.score
    assert "|nc:6|nw:2|" in out["signature"]
    text = run(capsys, "--metric", "chrf", "--hyp", hyp, "--ref", ref, "--lowercase")
    assert text.startswith("chrF2 = ") and "case:lc" in text
    base = ["eval", "--hyp", str(hyp), "--ref", str(ref)]
    one_line_error(capsys, [*base, "--metric", "chrf", "--beta", "0"],
                   "--metric chrf: beta must be an integer >= 1")
    one_line_error(capsys, [*base, "--metric", "bleu", "--word-order", "2"],
                   "--word-order: chrF's options, for --metric chrf")
    one_line_error(capsys, [*base, "--metric", "chrf", "--confidence"],
                   "--confidence is for --metric bleu")
