"""MinHash and LSH against datasketch (pinned in setup.cfg's oracle extra): the same
signatures, bit for bit, for the same shingles, num_perm and seed (its default
"affine32" scheme and its pre-2.0 "legacy" one); the same (bands, rows) from a threshold;
the same LSH candidates."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

datasketch = pytest.importorskip("datasketch")
datasketch_lsh = pytest.importorskip("datasketch.lsh")   # imports scipy, which it needs

from numpyllm.data.clean import LSHIndex, MinHasher, optimal_params, shingles  # noqa: E402

_items = st.sets(st.text(max_size=12), max_size=60)


def _theirs(items, num_perm, seed, scheme):
    m = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
    m.update_batch([s.encode("utf-8") for s in items])
    return m


@given(_items, st.integers(1, 300), st.integers(0, 2**31 - 1),
       st.sampled_from(["affine32", "legacy"]))
def test_signatures_are_datasketchs_bit_for_bit(items, num_perm, seed, scheme):
    ours = MinHasher(num_perm, seed, scheme).signature(items)
    theirs = _theirs(items, num_perm, seed, scheme)
    assert np.array_equal(ours, theirs.hashvalues.astype(np.uint64)), (items, seed)


def test_jaccard_estimates_agree_on_real_shingles(shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")[:20_000]
    a, b = shingles(text[:12_000], 3), shingles(text[4_000:16_000], 3)
    hasher = MinHasher(128, seed=1)
    ma, mb = _theirs(a, 128, 1, "affine32"), _theirs(b, 128, 1, "affine32")
    assert np.mean(hasher.signature(a) == hasher.signature(b)) == ma.jaccard(mb)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [32, 128, 256])
def test_bands_and_rows_from_a_threshold(threshold, num_perm):
    # the function MinHashLSH calls; MinHashLSH itself then refuses a single band (b < 2),
    # which numpyllm allows (one band of r rows: all r must agree)
    theirs = datasketch_lsh._optimal_param(threshold, num_perm, 0.5, 0.5)
    assert optimal_params(threshold, num_perm) == theirs
    if theirs[0] >= 2:
        lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert (lsh.b, lsh.r) == theirs


def test_bands_and_rows_with_weights():
    for weights in ((0.2, 0.8), (0.9, 0.1)):
        theirs = datasketch.MinHashLSH(threshold=0.7, num_perm=128, weights=weights)
        assert optimal_params(0.7, 128, weights) == (theirs.b, theirs.r)


def test_lsh_candidates_are_datasketchs():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    docs = [set(rng.choice(vocab, 60)) for _ in range(80)]
    base = docs[:10]                     # near-copies of the first ten, at various distances
    docs += [set(list(d)[:-k]) | {f"new{k}"} for k, d in enumerate(base, 1)]
    theirs = datasketch.MinHashLSH(threshold=0.6, num_perm=64)
    ours = LSHIndex(0.6, 64)
    assert (ours.bands, ours.rows) == (theirs.b, theirs.r)
    hasher = MinHasher(64, seed=1)
    for i, d in enumerate(docs):
        theirs.insert(i, _theirs(d, 64, 1, "affine32"))
        ours.insert(i, hasher.signature(d))
    found = 0
    for i, d in enumerate(docs):
        expected = set(theirs.query(_theirs(d, 64, 1, "affine32")))
        assert ours.query(hasher.signature(d)) == expected
        found += len(expected) > 1
    assert found >= 10                   # the near-copies found each other
