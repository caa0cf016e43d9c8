"""Confidence intervals of a mean score by bootstrap resampling, as rouge-score's
``BootstrapAggregator`` (and ROUGE-1.5.5) compute them.

The corpus figure is the mean of N per-segment scores. To see how much it depends on
which segments happened to be in the test set, draw N segments with replacement, take
their mean, and repeat `n_samples` times; the spread of those means estimates the
spread of the corpus figure:

    low  = the (1 - c)/2 percentile of the resampled means     (2.5% for c = 0.95)
    mid  = their median                                         (50%)
    high = the (1 + c)/2 percentile                             (97.5%)

np.percentile's linear interpolation, as there. (rouge-score's docstring calls ``mid``
the mean; it is the median of the resampled means, close to the plain mean.)

Randomness comes from `rng`: a seed, an ``np.random.Generator``, or (to reproduce
rouge-score's own numbers, which use NumPy's global state) an ``np.random.RandomState``:
``bootstrap(scores, rng=np.random.RandomState(s))`` equals rouge-score's aggregate after
``np.random.seed(s)``. Score types are resampled one after the other, in the order of the
first segment's dict, each with its own draws, as there.

>>> from numpyllm.evaluate import rouge_scores
>>> scores = rouge_scores(["a b c", "a x", "b c d", "q"], ["a b c", "a b", "b c", "z"],
...                       rouge_types=["rouge1"])
>>> ci = bootstrap(scores, n_samples=200, rng=0)["rouge1"]
>>> ci.low.fmeasure <= ci.mid.fmeasure <= ci.high.fmeasure
True
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["AggregateScore", "bootstrap", "bootstrap_means"]


class AggregateScore(NamedTuple):
    """Low, mid and high of a bootstrap interval, each of the score's own type."""

    low: object
    mid: object
    high: object


def _rng(rng):
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(0 if rng is None else int(rng))
    raise TypeError(f"rng must be a seed, a np.random.Generator or a RandomState, got "
                    f"{type(rng).__name__}")


def bootstrap_means(matrix, *, n_samples: int = 1000, confidence: float = 0.95,
                    rng=None) -> np.ndarray:
    """``[3, K]``: low, mid and high percentiles of the means of `n_samples` resamples
    (with replacement) of the rows of `matrix` ``[N, K]``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"bootstrap needs a [N, K] matrix of N >= 1 scores, got shape "
                         f"{matrix.shape}")
    if not 0 <= confidence <= 1:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    rng = _rng(rng)
    N = matrix.shape[0]
    means = np.empty((n_samples, matrix.shape[1]))
    # the indices of many resamples at once: the same draws as one resample at a time
    # (rows are drawn in order), in chunks of about a million indices
    chunk = max(1, 1_000_000 // N)
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        idx = rng.choice(N, size=(stop - start, N))          # [S, N]
        means[start:stop] = matrix[idx].mean(axis=1)         # [S, N, K] -> [S, K]
    delta = (1 - confidence) / 2
    return np.percentile(means, 100 * np.array([delta, 0.5, 1 - delta]), axis=0)


def bootstrap(scores, *, n_samples: int = 1000, confidence: float = 0.95,
              rng=None) -> dict:
    """``{type: AggregateScore(low, mid, high)}`` from a list of per-segment dicts
    ``{type: Score}`` (as `rouge_scores` returns; any NamedTuple of numbers, or a plain
    number, works as a score)."""
    scores = list(scores)
    if not scores:
        raise ValueError("bootstrap needs at least one scored segment")
    rng = _rng(rng)
    out = {}
    for name in scores[0]:
        rows = [s[name] for s in scores]
        kind = type(rows[0])
        matrix = np.array([tuple(r) if isinstance(r, tuple) else (r,) for r in rows],
                          dtype=np.float64)                  # [N, K]
        low, mid, high = bootstrap_means(matrix, n_samples=n_samples, confidence=confidence,
                                         rng=rng)
        make = (lambda v: kind(*map(float, v))) if isinstance(rows[0], tuple) else \
            (lambda v: float(v[0]))
        out[name] = AggregateScore(make(low), make(mid), make(high))
    return out
