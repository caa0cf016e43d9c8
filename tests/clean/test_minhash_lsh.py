"""MinHash estimates Jaccard similarity; LSH finds pairs with the S-curve's probability;
near-duplicates (a copy with a few words changed) are caught."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.data.clean import (LSHIndex, MinHasher, NearDedup, estimate_jaccard, jaccard,
                                 optimal_params, s_curve, shingles)
from numpyllm.data.clean.lsh import false_negative_area, false_positive_area

K = 256
HASHER = MinHasher(K, seed=3)


@given(st.sets(st.integers(0, 400), min_size=1, max_size=120),
       st.sets(st.integers(0, 400), min_size=1, max_size=120))
def test_estimate_is_within_the_binomial_tolerance_of_exact_jaccard(a, b):
    sa, sb = {f"w{i}" for i in a}, {f"w{i}" for i in b}
    j = jaccard(sa, sb)
    est = estimate_jaccard(HASHER.signature(sa), HASHER.signature(sb))
    # K agreements, each with probability J: the estimate's sd is sqrt(J(1-J)/K)
    tol = 5 * np.sqrt(j * (1 - j) / K) + 1.5 / K
    assert abs(est - j) <= tol, (est, j, tol)


def test_estimates_are_unbiased_over_many_pairs():
    # 200 pairs at J = 1/3 (100 shared, 300 in all): the mean estimate within 4 sd
    rng = np.random.default_rng(0)
    est = []
    for i in range(200):
        words = [f"t{i}_{k}" for k in rng.permutation(300)]
        est.append(estimate_jaccard(HASHER.signature(set(words[:200])),
                                    HASHER.signature(set(words[100:]))))
    sd = np.sqrt(0.5 * 0.5 / K / 200)
    assert abs(np.mean(est) - 100 / 300) < 4 * sd + 1e-3, np.mean(est)


def test_identical_sets_agree_everywhere_and_the_signature_is_order_free():
    items = [f"shingle {i}" for i in range(50)]
    s1, s2 = HASHER.signature(items), HASHER.signature(reversed(items))
    assert np.array_equal(s1, s2) and estimate_jaccard(s1, s2) == 1.0
    assert np.all(HASHER.signature([]) == 0xFFFFFFFF)
    # chunking a long document does not change its signature
    many = [f"s{i}" for i in range(10_000)]
    assert np.array_equal(MinHasher(K, seed=3, chunk=97).signature(many), HASHER.signature(many))


def test_shingles():
    assert shingles("The cat, the CAT!", 2) == {"the cat", "cat the"}
    assert shingles("one two", 5) == {"one two"}
    assert shingles("...", 3) == set()
    assert shingles("abcd", 3, "char") == {"abc", "bcd"}
    with pytest.raises(ValueError):
        shingles("x", 0)


def test_params_from_a_threshold_put_the_s_curve_step_there():
    for t in (0.5, 0.7, 0.8, 0.9):
        b, r = optimal_params(t, 128)
        assert b * r <= 128
        assert abs((1 / b) ** (1 / r) - t) < 0.1            # the steepest point
        assert s_curve(t - 0.2, b, r) < 0.3 and s_curve(min(t + 0.15, 1.0), b, r) > 0.7
    # exact quadrature: the areas against a fine Riemann sum
    s = np.linspace(0, 1, 200_001)
    b, r = optimal_params(0.8, 128)
    fp = np.trapezoid(s_curve(s[s <= 0.8], b, r), s[s <= 0.8])
    assert abs(false_positive_area(0.8, b, r, 128) - fp) < 1e-8
    fn = np.trapezoid(1 - s_curve(s[s >= 0.8], b, r), s[s >= 0.8])
    assert abs(false_negative_area(0.8, b, r, 128) - fn) < 1e-8
    with pytest.raises(ValueError):
        optimal_params(1.5, 128)


@pytest.mark.parametrize("s", [0.3, 0.5, 0.6, 0.7, 0.8, 0.9])
def test_lsh_recall_follows_the_s_curve_on_pairs_of_known_jaccard(s):
    # pairs built to have Jaccard s exactly: u elements in the union, round(s u) shared
    bands, rows, u, n_pairs = 16, 4, 200, 300
    hasher = MinHasher(64, seed=11)
    shared = round(s * u)
    only = (u - shared) // 2
    s_exact = shared / (shared + 2 * only)
    hits = 0
    for p in range(n_pairs):
        common = {f"p{p}c{i}" for i in range(shared)}
        a = common | {f"p{p}a{i}" for i in range(only)}
        b = common | {f"p{p}b{i}" for i in range(only)}
        index = LSHIndex(bands=bands, rows=rows)
        index.insert("a", hasher.signature(a))
        hits += bool(index.query(hasher.signature(b)))
    expected = float(s_curve(s_exact, bands, rows))
    sd = np.sqrt(expected * (1 - expected) / n_pairs)
    assert abs(hits / n_pairs - expected) <= 4 * sd + 0.02, (hits / n_pairs, expected)


def _essay(rng, n=400):
    vocab = [f"word{i}" for i in range(2000)]
    return " ".join(rng.choice(vocab, n))


@given(st.integers(0, 10_000), st.integers(1, 3))
def test_a_copy_with_a_few_words_changed_is_caught(seed, n_changed):
    rng = np.random.default_rng(seed)
    doc = _essay(rng).split()
    copy = list(doc)
    for i in rng.choice(len(doc), n_changed, replace=False):
        copy[i] = "CHANGED"
    # 400 words, 5-shingles: each change replaces <= 5 of 396 shingles, so
    # J >= (396 - 15) / (396 + 15) = 0.927; at threshold 0.7 (14 bands of 9 rows) LSH
    # finds such a pair with probability 1 - 5e-5 and the estimate passes 0.7 with
    # probability 1 - 1e-15
    j = jaccard(shingles(" ".join(doc)), shingles(" ".join(copy)))
    assert j >= 0.927
    nd = NearDedup(threshold=0.7, num_perm=128)
    assert nd(" ".join(doc), "original") is None
    assert nd(" ".join(copy), "copy") == "original", j
    # and an unrelated text of the same vocabulary is not
    assert nd(_essay(np.random.default_rng(seed + 1)), "other") is None


def test_verification_drops_lsh_candidates_below_the_threshold():
    # J ~ 0.55 pairs often share a band at b=32, r=2, but fail the 0.8 estimate
    rng = np.random.default_rng(1)
    fp = {True: 0, False: 0}
    for verify in (True, False):
        nd = NearDedup(threshold=0.8, num_perm=64, bands=32, rows=2, verify=verify,
                       shingle_size=1)
        for p in range(40):
            words = [f"p{p}w{k}" for k in rng.permutation(100)]
            nd(" ".join(words[:80]), ("a", p))            # shares 60 of 100: J = 0.6
            fp[verify] += nd(" ".join(words[20:]), ("b", p)) is not None
    assert fp[False] > 30 and fp[True] <= 2, fp


def test_bad_near_dedup_settings_are_refused():
    for kwargs in ({"threshold": 0}, {"threshold": 1.2}, {"num_perm": 0},
                   {"shingle_kind": "byte"}, {"shingle_size": 0},
                   {"num_perm": 16, "bands": 5, "rows": 4}):
        with pytest.raises(ValueError):
            NearDedup(**kwargs)
    with pytest.raises(ValueError):
        LSHIndex(bands=4)
