"""Properties of numpyllm.evaluate.significance that hold without sacrebleu (the oracle
tests compare the numbers): a system against itself, the symmetry of both paired tests,
one set of indices shared by every system, the interval around corpus BLEU, a corpus of
identical segments, the p-value's grid, the exact resample sums, and the errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.evaluate import corpus_bleu
from numpyllm.evaluate.bleu import corpus_stats
from numpyllm.evaluate.significance import (bootstrap_ci, paired_approximate_randomization,
                                            paired_bootstrap, resample_counts)

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", ".", "ran", "far"]
line = st.lists(st.sampled_from(WORDS), max_size=10).map(" ".join)
SMOOTH = st.sampled_from(["exp", "floor", "add-k", "none"])


@st.composite
def two_systems(draw):
    n = draw(st.integers(1, 10))
    a, b, refs = (draw(st.lists(line, min_size=n, max_size=n)) for _ in range(3))
    return corpus_stats(a, [refs]), corpus_stats(b, [refs])


@given(pair=two_systems(), smooth=SMOOTH, seed=st.integers(0, 2 ** 32))
def test_a_system_against_itself(pair, smooth, seed):
    """Every trial ties the observed difference 0: none exceeds it strictly (sacrebleu's
    rule gives the smallest p, 1 / (R + 1)), all of them equal it (the papers' >= gives 1)."""
    a, _ = pair
    for strict, bs_p, ar_p in ((True, 1 / 31, 1 / 41), (False, 1.0, 1.0)):
        bs = paired_bootstrap(a, [a], n_samples=30, seed=seed, strict=strict,
                              smooth_method=smooth)
        ar = paired_approximate_randomization(a, [a], n_trials=40, seed=seed, strict=strict,
                                              smooth_method=smooth)
        assert (bs[1].p_value, ar[1].p_value) == (bs_p, ar_p)
        assert bs[1].score == bs[0].score and (bs[1].mean, bs[1].ci) == (bs[0].mean, bs[0].ci)


@given(pair=two_systems(), smooth=SMOOTH, seed=st.integers(0, 2 ** 32))
def test_both_tests_are_symmetric(pair, smooth, seed):
    """Which system is the baseline does not change the p-value: both statistics are
    absolute differences, and swapping the roles swaps the two pseudo-systems of every
    trial."""
    a, b = pair
    for test, n in ((paired_bootstrap, {"n_samples": 25}),
                    (paired_approximate_randomization, {"n_trials": 35})):
        ab = test(a, [b], seed=seed, smooth_method=smooth, **n)[1].p_value
        ba = test(b, [a], seed=seed, smooth_method=smooth, **n)[1].p_value
        assert ab == ba


@given(pair=two_systems(), seed=st.integers(0, 2 ** 32), n=st.integers(1, 60))
def test_paired_bootstrap_resamples_every_system_with_the_same_indices(pair, seed, n):
    """Each system's interval in the paired test is its own bootstrap interval from the
    same seed: one set of indices for all (the pairing), not one per system."""
    a, b = pair
    results = paired_bootstrap(a, [b, a], n_samples=n, seed=seed)
    for stats, r in zip((a, b, a), results):
        alone = bootstrap_ci(stats, n_samples=n, seed=seed)
        assert r.score == alone.score and r.ci == alone.ci
        assert r.mean == pytest.approx(alone.mean, rel=1e-12, abs=1e-12)   # two sums
    # a copy of the baseline: sacrebleu's strict rule, the smallest p
    assert results[2].p_value == 1 / (n + 1)


def noisy(rng, n, p):
    refs = [" ".join(rng.choice(WORDS, size=rng.integers(6, 16))) for _ in range(n)]
    hyps = [" ".join(w if rng.random() > p else rng.choice(WORDS) for w in r.split())
            for r in refs]
    return hyps, refs


@pytest.mark.parametrize("seed", range(8))
def test_the_interval_holds_corpus_bleu_on_typical_corpora(seed):
    """On corpora of 80 segments with 20-60% of the words changed, the 95% interval
    contains the corpus BLEU of the data as it is, and μ is near it (the bootstrap
    distribution is centred close to the statistic)."""
    rng = np.random.default_rng(seed)
    hyps, refs = noisy(rng, 80, 0.2 + 0.05 * seed)
    ci = bootstrap_ci(corpus_stats(hyps, [refs]), n_samples=300, seed=seed)
    assert ci.score == corpus_bleu(hyps, [refs]).score
    assert ci.low < ci.score < ci.high
    assert ci.ci == pytest.approx((ci.high - ci.low) / 2)
    assert abs(ci.mean - ci.score) < ci.ci / 2


@given(hyp=line, ref=line, n=st.integers(1, 8), seed=st.integers(0, 2 ** 32),
       smooth=SMOOTH)
def test_identical_segments_leave_nothing_to_resample(hyp, ref, n, seed, smooth):
    """A corpus of n copies of one segment: every resample is the corpus itself, so the
    interval is the score (to float32's rounding of the precisions) and has width 0."""
    stats = corpus_stats([hyp] * n, [[ref] * n])
    ci = bootstrap_ci(stats, n_samples=50, seed=seed, smooth_method=smooth)
    assert ci.ci == 0 and ci.low == ci.high == ci.mean
    assert ci.mean == pytest.approx(ci.score, rel=1e-6, abs=1e-9)


@given(pair=two_systems(), seed=st.integers(0, 2 ** 32), n=st.integers(1, 50))
def test_p_values_lie_on_their_grid(pair, seed, n):
    """p = (c + 1) / (R + 1) for an integer c in [0, R]: never 0, at most 1."""
    a, b = pair
    for test, key in ((paired_bootstrap, "n_samples"),
                      (paired_approximate_randomization, "n_trials")):
        p = test(a, [b], seed=seed, **{key: n})[1].p_value
        c = p * (n + 1) - 1
        assert 1 / (n + 1) <= p <= 1 and abs(c - round(c)) < 1e-9


def test_a_seed_or_a_generator_and_the_resample_sums():
    rng = np.random.default_rng(5)
    hyps, refs = noisy(rng, 30, 0.3)
    stats = corpus_stats(hyps, [refs])
    def figures(ci):
        return ci.score, ci.mean, ci.ci, ci.low, ci.high
    assert figures(bootstrap_ci(stats, n_samples=40, seed=7)) == \
        figures(bootstrap_ci(stats, n_samples=40, seed=np.random.default_rng(7)))
    assert figures(bootstrap_ci(stats, n_samples=40, seed=7)) != \
        figures(bootstrap_ci(stats, n_samples=40, seed=8))
    # counts @ stats is every resample's column sums, exactly
    idxs = np.random.default_rng(1).choice(30, size=(20, 30))
    array = np.array(stats)
    assert np.array_equal(resample_counts(idxs, 30) @ array, array[idxs].sum(axis=1))


def test_errors_name_the_problem():
    a = corpus_stats(["a b", "c"], [["a b", "c d"]])
    b = corpus_stats(["a b"], [["a b"]])
    with pytest.raises(ValueError, match="system 1 has stats of shape"):
        paired_bootstrap(a, [b])
    with pytest.raises(ValueError, match="at least one other system"):
        paired_approximate_randomization(a, [])
    with pytest.raises(TypeError, match="for one write"):
        paired_bootstrap(np.array(a), np.array(a))
    with pytest.raises(ValueError, match="N >= 1"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        bootstrap_ci(a, n_samples=0)
    with pytest.raises(ValueError, match="n_trials"):
        paired_approximate_randomization(a, [a], n_trials=0)
    with pytest.raises(TypeError, match="integer counts"):
        bootstrap_ci(np.array(a, dtype=float))
    with pytest.raises(TypeError, match="seed must be"):
        bootstrap_ci(a, seed="x")
