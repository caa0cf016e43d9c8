"""numpyllm.evaluate's ROUGE against Google's rouge-score 0.1.2 (pinned in setup.cfg's
oracle extra, with NLTK for stemming): every type's precision, recall and F to 1e-9 on
hypothesis-generated texts (empty lines, Unicode, punctuation runs, numbers, repeated
words that make many longest common subsequences, several lines for ROUGE-Lsum, several
references), with and without stemming, on lines of Tiny Shakespeare; and the bootstrap
intervals equal to BootstrapAggregator's under the same seed."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.evaluate import RougeScorer, bootstrap, rouge_scores, rouge_tokenize

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
scoring = pytest.importorskip("rouge_score.scoring")
tokenize = pytest.importorskip("rouge_score.tokenize")

TYPES = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"]
WORDS = ["the", "The", "a", "cat", "cats", "running", "runs", "sat", "on", "mat", "it's",
         "3.50", "1,000", "--", "...", "naïve", "Straße", "İstanbul", "日本語", "K", "KELVIN",
         "ǅ", "über", "generously", "connection", "connected", "x\u00a0y", "\n", "\n", "a\tb"]
text = st.one_of(
    st.lists(st.sampled_from(WORDS), max_size=16).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=16).map("".join),
    st.text(max_size=30), st.just(""))


def same(ours, theirs):
    assert ours.keys() == theirs.keys()
    for name in theirs:
        for a, b in zip(ours[name], theirs[name]):
            assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), (name, ours[name], theirs[name])


@given(target=text, prediction=text, stem=st.booleans())
def test_scores_equal_rouge_score(target, prediction, stem):
    theirs = rouge_scorer.RougeScorer(TYPES, use_stemmer=stem).score(target, prediction)
    same(RougeScorer(TYPES, use_stemmer=stem).score(target, prediction), theirs)


@given(text=text, stem=st.booleans())
def test_tokens_equal_rouge_scores(text, stem):
    from nltk.stem import porter
    assert rouge_tokenize(text, stem) == tokenize.tokenize(text, porter.PorterStemmer() if stem
                                                           else None)


@given(targets=st.lists(text, min_size=1, max_size=3), prediction=text)
def test_several_references_equal_score_multi(targets, prediction):
    theirs = rouge_scorer.RougeScorer(TYPES).score_multi(targets, prediction)
    same(RougeScorer(TYPES).score_multi(targets, prediction), theirs)


def test_ties_between_references_go_to_the_first():
    """Two references with equal F but different precision and recall: the first wins."""
    targets, prediction = ["a", "a b c d"], "a b"
    theirs = rouge_scorer.RougeScorer(["rouge1"]).score_multi(targets, prediction)
    ours = RougeScorer(["rouge1"]).score_multi(targets, prediction)
    assert ours["rouge1"].precision == theirs["rouge1"].precision == 0.5
    same(ours, theirs)
    theirs = rouge_scorer.RougeScorer(["rouge1"]).score_multi(targets[::-1], prediction)
    same(RougeScorer(["rouge1"]).score_multi(targets[::-1], prediction), theirs)


@pytest.mark.parametrize("stem", [False, True])
def test_real_text_equals_rouge_score(shakespeare_path, stem):
    """Groups of four lines of Tiny Shakespeare (newline-separated, for Lsum) against the
    next four: many partial matches, many sentences."""
    lines = shakespeare_path.read_text(encoding="utf-8").splitlines()[:800]
    blocks = ["\n".join(lines[i:i + 4]) for i in range(0, len(lines), 4)]
    theirs = rouge_scorer.RougeScorer(TYPES, use_stemmer=stem)
    ours = RougeScorer(TYPES, use_stemmer=stem)
    for target, prediction in zip(blocks, blocks[1:]):
        same(ours.score(target, prediction), theirs.score(target, prediction))


@given(n=st.integers(1, 30), seed=st.integers(0, 2 ** 31 - 1),
       confidence=st.sampled_from([0.95, 0.9, 0.5]))
def test_bootstrap_equals_bootstrap_aggregator(n, seed, confidence):
    rng = np.random.default_rng(seed)
    vocab = "a b c d e f".split()
    pairs = [(" ".join(rng.choice(vocab, rng.integers(0, 6))),
              " ".join(rng.choice(vocab, rng.integers(0, 6)))) for _ in range(n)]
    types = ["rouge1", "rougeL"]
    aggregator = scoring.BootstrapAggregator(confidence_interval=confidence, n_samples=200)
    scorer = rouge_scorer.RougeScorer(types)
    for target, prediction in pairs:
        aggregator.add_scores(scorer.score(target, prediction))
    np.random.seed(seed)                              # rouge-score draws from the global RNG
    theirs = aggregator.aggregate()
    scores = rouge_scores([p for _, p in pairs], [t for t, _ in pairs], rouge_types=types)
    ours = bootstrap(scores, n_samples=200, confidence=confidence,
                     rng=np.random.RandomState(seed))
    for name in types:
        for bound in ("low", "mid", "high"):
            np.testing.assert_allclose(getattr(ours[name], bound), getattr(theirs[name], bound),
                                       rtol=0, atol=1e-9)
