"""numpyllm.evaluate.significance against sacrebleu 2.6.0: the bootstrap mean and interval
of ``corpus_score(..., n_bootstrap=B)`` (sacrebleu --confidence) and the scores, means,
intervals and p-values of its ``PairedTest`` (--paired-bs, --paired-ar) are *equal*
(==, not close) on hypothesis-generated corpora: several seeds (SACREBLEU_SEED), 1 to 3
references with holes, every smoothing, effective order, tiny corpora, empty lines;
and on the edge cases its code has: fewer than 40 resamples (the interval's ends are then
the extremes), a corpus without any match (every resample 0, μ not shown), a system
equal to the baseline (the strict >), sacrebleu's default counts (1000 resamples, 10,000
trials), the approximate randomization's own bootstrap (``n_ar_confidence``), and its
truncation of a non-integer add-k (the one place we differ, on purpose)."""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.evaluate.bleu import bleu_from_stats, corpus_stats
from numpyllm.evaluate.significance import (bootstrap_ci, paired_approximate_randomization,
                                            paired_bootstrap)

sacrebleu = pytest.importorskip("sacrebleu")
from sacrebleu.significance import PairedTest  # noqa: E402

# few words, so that n-grams match often and differences between systems are small
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", ".", ",", "ran", "far", "away"]
line = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
SMOOTHING = st.sampled_from([("exp", None), ("floor", None), ("floor", 0.3),
                             ("add-k", None), ("add-k", 2), ("none", None)])


@st.composite
def corpora(draw, n_systems=3):
    """Systems over the same N segments, and 1-3 reference streams (None: a hole)."""
    n = draw(st.integers(1, 12))
    systems = [draw(st.lists(line, min_size=n, max_size=n)) for _ in range(n_systems)]
    streams = [draw(st.lists(line, min_size=n, max_size=n))
               for _ in range(draw(st.integers(1, 3)))]
    for stream in streams[1:]:
        for i in range(n):
            if draw(st.integers(0, 4)) == 0:
                stream[i] = None
    return systems, streams


@contextlib.contextmanager
def sacrebleu_seed(seed):
    """SACREBLEU_SEED set inside the `with` (sacrebleu reads it at each call; hypothesis
    runs many examples per test, so not the function-scoped monkeypatch fixture)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SACREBLEU_SEED", str(seed))
        yield


def metric(smooth, effective_order=False):
    return sacrebleu.BLEU(smooth_method=smooth[0], smooth_value=smooth[1],
                          effective_order=effective_order, force=True)


def kwargs(smooth, effective_order=False):
    return dict(smooth_method=smooth[0], smooth_value=smooth[1],
                effective_order=effective_order)


def paired(systems, streams, smooth, test, n, **extra):
    """sacrebleu's PairedTest results: [Result] (baseline first)."""
    named = [(f"s{k}", hyps) for k, hyps in enumerate(systems)]
    _, scores = PairedTest(named, {"BLEU": metric(smooth)}, streams, test_type=test,
                           n_samples=n, **extra)()
    return scores["BLEU"]


def same_results(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a.score, a.p_value, a.mean, a.ci) == (b.score, b.p_value, b.mean, b.ci), (a, b)


@given(corpus=corpora(1), smooth=SMOOTHING, effective_order=st.booleans(),
       seed=st.integers(1, 2 ** 31), n=st.integers(1, 120))
def test_confidence_interval_equals_sacrebleus(corpus, smooth, effective_order, seed, n):
    (hyps,), streams = corpus
    with sacrebleu_seed(seed):
        theirs = metric(smooth, effective_order).corpus_score(hyps, streams, n_bootstrap=n)
    ours = bootstrap_ci(corpus_stats(hyps, streams), n_samples=n, seed=seed,
                        **kwargs(smooth, effective_order))
    if n == 1:                    # sacrebleu bootstraps only from 2 resamples on
        assert (theirs._mean, theirs._ci) == (-1.0, -1.0)
    else:
        assert (ours.score, ours.mean, ours.ci) == (theirs.score, theirs._mean, theirs._ci)


@given(corpus=corpora(3), smooth=SMOOTHING, seed=st.integers(1, 2 ** 31),
       n=st.integers(1, 80))
def test_paired_bootstrap_equals_sacrebleus(corpus, smooth, seed, n):
    systems, streams = corpus
    stats = [corpus_stats(h, streams) for h in systems]
    with sacrebleu_seed(seed):
        theirs = paired(systems, streams, smooth, "bs", n)
    same_results(paired_bootstrap(stats[0], stats[1:], n_samples=n, seed=seed,
                                  **kwargs(smooth)), theirs)


# sacrebleu truncates a non-integer add-k in its trials (see the last test): integers only
INTEGER_SMOOTHING = st.sampled_from([("exp", None), ("floor", None), ("floor", 0.3),
                                     ("add-k", None), ("add-k", 2), ("none", None)])


@given(corpus=corpora(3), smooth=INTEGER_SMOOTHING, seed=st.integers(1, 2 ** 31),
       n=st.integers(1, 150))
def test_paired_approximate_randomization_equals_sacrebleus(corpus, smooth, seed, n):
    systems, streams = corpus
    stats = [corpus_stats(h, streams) for h in systems]
    with sacrebleu_seed(seed):
        theirs = paired(systems, streams, smooth, "ar", n)
    same_results(paired_approximate_randomization(stats[0], stats[1:], n_trials=n, seed=seed,
                                                  **kwargs(smooth)), theirs)


@settings(max_examples=10)
@given(corpus=corpora(2), smooth=INTEGER_SMOOTHING, seed=st.integers(1, 2 ** 31),
       n_conf=st.integers(1, 60))
def test_approximate_randomization_with_its_bootstrap_equals_sacrebleus(corpus, smooth, seed,
                                                                         n_conf):
    """n_ar_confidence: the systems' indices come after the swaps from the same generator,
    the baseline's from a fresh one."""
    systems, streams = corpus
    stats = [corpus_stats(h, streams) for h in systems]
    with sacrebleu_seed(seed):
        theirs = paired(systems, streams, smooth, "ar", 50, n_ar_confidence=n_conf)
    same_results(paired_approximate_randomization(stats[0], stats[1:], n_trials=50, seed=seed,
                                                  n_confidence=n_conf, **kwargs(smooth)),
                 theirs)


def noisy_corpus(rng, n, p):
    """References of 5-20 words, and hypotheses with a share p of their words replaced."""
    refs = [" ".join(rng.choice(WORDS[:9], size=rng.integers(5, 21))) for _ in range(n)]
    hyp = [" ".join(w if rng.random() > p else rng.choice(WORDS) for w in r.split())
           for r in refs]
    return hyp, refs


def test_defaults_and_edge_cases_equal_sacrebleus(monkeypatch):
    rng = np.random.default_rng(0)
    base, refs = noisy_corpus(rng, 60, 0.4)
    better = noisy_corpus(np.random.default_rng(0), 60, 0.25)[0]
    stats = [corpus_stats(h, [refs]) for h in (base, better, base)]
    # sacrebleu's defaults: its seed, 1000 resamples, 10,000 trials; the third system is
    # the baseline itself (strict >: p = 1 / (R + 1))
    monkeypatch.delenv("SACREBLEU_SEED", raising=False)
    theirs = metric(("exp", None)).corpus_score(base, [refs], n_bootstrap=1000)
    ours = bootstrap_ci(stats[0])
    assert (ours.score, ours.mean, ours.ci) == (theirs.score, theirs._mean, theirs._ci)
    bs = paired_bootstrap(stats[0], stats[1:])
    same_results(bs, paired([base, better, base], [refs], ("exp", None), "bs", 0))
    ar = paired_approximate_randomization(stats[0], stats[1:])
    same_results(ar, paired([base, better, base], [refs], ("exp", None), "ar", 0))
    assert bs[2].p_value == 1 / 1001 and ar[2].p_value == 1 / 10001
    assert ar[1].p_value < 0.05           # a real difference on 60 segments
    # a corpus with no match at all: every resample scores 0, sacrebleu shows no μ
    none_hyps = ["x y z"] * 5
    theirs = metric(("exp", None)).corpus_score(none_hyps, [refs[:5]], n_bootstrap=50)
    ours = bootstrap_ci(corpus_stats(none_hyps, [refs[:5]]), n_samples=50)
    assert (ours.mean, ours.ci, ours.score) == (theirs._mean, theirs._ci, 0.0)
    assert ours.format() == theirs.format(score_only=True) == "0.00"
    # SACREBLEU_SEED=0 is seed 0 for --confidence (its paired tests make it "no seed")
    monkeypatch.setenv("SACREBLEU_SEED", "0")
    theirs = metric(("floor", None)).corpus_score(base, [refs], n_bootstrap=39)
    ours = bootstrap_ci(stats[0], n_samples=39, seed=0, smooth_method="floor")
    assert (ours.mean, ours.ci) == (theirs._mean, theirs._ci)
    assert ours.format() == theirs.format(score_only=True)


def test_sacrebleu_truncates_a_non_integer_add_k_in_its_trials():
    """Why the approximate randomization test above uses integer k: sacrebleu adds k in
    place to a row of its integer trial sums, so 2.5 becomes 2 in every trial (but not in
    the observed scores). numpyllm adds k as given everywhere, so with k = 2.5 its p-value
    differs from sacrebleu's; with integer k they agree exactly."""
    m = sacrebleu.BLEU(smooth_method="add-k", smooth_value=2.5)
    row = np.array([[7, 8, 5, 2, 0, 0, 7, 6, 5, 4]])        # one trial's integer sums
    theirs = m._aggregate_and_compute(row[:, None][0]).score
    assert theirs == bleu_from_stats([5, 2, 0, 0], [7, 6, 5, 4], 7, 8, smooth_method="add-k",
                                     smooth_value=2).score
    assert theirs != bleu_from_stats([5, 2, 0, 0], [7, 6, 5, 4], 7, 8, smooth_method="add-k",
                                     smooth_value=2.5).score
