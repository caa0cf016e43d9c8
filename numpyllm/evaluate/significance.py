"""How sure is a BLEU score? Bootstrap confidence intervals and paired significance tests,
exactly as sacrebleu 2.6.0 computes them (the same random draws, in the same order, for
the same seed: the numbers agree to the last bit).

BLEU is a corpus statistic: it is computed from the column sums of the per-segment
statistics ``[hyp_len, ref_len, correct_1..4, total_1..4]`` (`bleu.corpus_stats`). Every
test here draws new corpora from those rows and recomputes BLEU from their sums with
`bleu.bleu_from_stats`; nothing is re-tokenized.

**Bootstrap confidence interval** (Efron & Tibshirani 1993; Koehn 2004, section 3). The
test set is one sample of the sentences the system could have been given. Draw N segments
with replacement (N = the corpus size), score the resample, repeat B times (1000): the
spread of the B scores stands for the spread of BLEU over test sets of this size.
sacrebleu reports ``μ ± ci``: μ the mean of the B scores, ci half the width of the
interval between the sorted scores at positions ``B // 40`` and ``B - B // 40 - 1``
(the 2.5th and 97.5th percentiles, without interpolation: a percentile interval).

**Paired bootstrap resampling** (Koehn 2004). To compare a baseline A with a system B,
resample *the same* segment indices for both: each resample is one test set on which
both ran, so the variation that comes from which sentences were drawn (some are easy
for every system) cancels in the difference. sacrebleu (after Moses'
``bootstrap-hypothesis-difference-significance.pl``) then asks how often a resampled
difference |B_s - A_s|, centred on its own mean, exceeds the observed |B - A|: centring
makes the resampled differences a picture of the null hypothesis "no difference"
(their spread, with zero mean).

**Paired approximate randomization** (Noreen 1989; Riezler & Maxwell 2005). Under the
null hypothesis that A and B are the same system, which of the two produced a given
segment's output is arbitrary: swap each segment's two statistics rows with probability
1/2, score the two shuffled corpora, and count how often |A' - B'| exceeds the observed
|A - B|. R = 10,000 trials.

**The p-value** of both tests is ``(c + 1) / (R + 1)``, with c the number of trials whose
statistic exceeds the observed one. The +1 counts the observed assignment itself as one
of the randomizations (it is one: the identity swap), so p is never 0 and a test at level
α rejects a true null hypothesis at most a fraction α of the time (Noreen 1989; Riezler &
Maxwell 2005). A p-value is the probability, *if the systems were equivalent*, of a
difference at least this large on a test set like this one. It is not the probability
that the systems are equivalent, nor a measure of how large or useful the difference is,
and it says nothing about other test sets or domains. Run twenty comparisons of
equivalent systems at 0.05 and about one will look "significant".

"Exceeds" is where sacrebleu (after multeval) departs from the papers: it counts
trials *strictly* greater than the observed statistic, where Riezler & Maxwell count
those greater *or equal*. The two agree unless trials tie the observed value exactly,
which happens when the systems agree on many segments; in the extreme, a system compared
with itself (every statistic 0) gets sacrebleu's smallest possible p, 1 / (R + 1), and
the papers' p = 1. ``strict=True`` (the default) is sacrebleu's rule, ``strict=False``
the papers'. Read a tiny p for two nearly identical outputs with this in mind.

Seeds: sacrebleu seeds ``np.random.default_rng`` with 12345 (or the environment
variable SACREBLEU_SEED). Here the seed is an argument, 12345 by default. Two differences,
both on purpose: a seed of 0 is seed 0 here, where sacrebleu's paired tests turn a seed
of 0 into "no seed" (``seed if seed else None``); and ``seed=None`` draws fresh entropy,
as SACREBLEU_SEED=None does.

Arithmetic: sacrebleu recomputes the resampled scores from float32 sums (``np.array(stats,
dtype='float32')``), so their precisions are float32 divisions; this module passes float32
sums too, and gets the same bits. The sums are formed exactly (a matrix of draw counts
times the statistics, in float64) and then rounded to float32: the same as sacrebleu's
float32 accumulation while every column sum stays below 2**24 (16.7 million tokens). The
approximate randomization trials are summed in integers, as there.

>>> from numpyllm.evaluate.bleu import corpus_stats
>>> refs = [["the cat sat on the mat", "a dog ran", "it is raining today"]]
>>> base = corpus_stats(["the cat sat on a mat", "a dog runs", "it rains today"], refs)
>>> ci = bootstrap_ci(base, n_samples=100)
>>> ci.low <= ci.mean <= ci.high
True
>>> [r.p_value for r in paired_approximate_randomization(base, [base], n_trials=99)]
[None, 0.01]
>>> [r.p_value for r in paired_approximate_randomization(base, [base], n_trials=99,
...                                                       strict=False)]
[None, 1.0]
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .bleu import MAX_NGRAM_ORDER, bleu_from_stats

__all__ = ["SACREBLEU_SEED", "BootstrapCI", "PairedResult", "bootstrap_ci",
           "paired_bootstrap", "paired_approximate_randomization", "estimate_ci", "p_value",
           "resample_counts", "bleu_of_sums"]

SACREBLEU_SEED = 12345           # sacrebleu's fixed seed (its SACREBLEU_SEED default)


@dataclass
class BootstrapCI:
    """A BLEU score with its bootstrap estimate, as sacrebleu's ``--confidence`` prints it
    (``score (μ = mean ± ci)``).

    score       corpus BLEU of the data as it is
    mean        μ, the mean of the resampled scores
    ci          half the width of [low, high]
    low, high   the resampled scores at sorted positions B // 40 and B - B // 40 - 1
    n_samples   B;  seed: the seed the indices were drawn with
    """

    score: float
    mean: float
    ci: float
    low: float
    high: float
    n_samples: int
    seed: int | None

    def format(self, width: int = 2) -> str:
        # sacrebleu shows μ only when it is positive (a corpus whose every resample
        # scores 0 shows no interval)
        text = f"{self.score:.{width}f}"
        if self.mean > 0:
            text += f" (μ = {self.mean:.{width}f} ± {self.ci:.{width}f})"
        return text


@dataclass
class PairedResult:
    """One system of a paired test: its corpus BLEU, the p-value of its difference from
    the baseline (None for the baseline itself), and the bootstrap mean and half-width
    of its scores (None where the test computes none, as sacrebleu)."""

    score: float
    p_value: float | None = None
    mean: float | None = None
    ci: float | None = None


# ------------------------------------------------------------------------ the pieces
def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(None if seed is None else int(seed))
    raise TypeError(f"seed must be an int, None or a np.random.Generator, got "
                    f"{type(seed).__name__}")


def _as_stats(stats, what: str = "stats") -> np.ndarray:
    """``[N, 2 + 2·order]`` int64 from the rows of `corpus_stats`, or a clear error."""
    array = np.asarray(stats)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 4 or array.shape[1] % 2:
        raise ValueError(f"{what} must be the per-segment rows of corpus_stats, [N, 2 + 2 * "
                         f"order] with N >= 1, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must hold integer counts, got {array.dtype}")
    return array.astype(np.int64, copy=False)


def resample_counts(idxs: np.ndarray, n: int) -> np.ndarray:
    """``[S, N]`` float64: how many times each of the N segments is in each resample of
    ``idxs`` ``[S, N]`` (the rows of indices drawn with replacement). ``counts @ stats``
    is then the column sums of every resample at once, exactly (integers in float64),
    without building the ``[S, N, K]`` array of resampled rows."""
    S = idxs.shape[0]
    flat = (idxs + n * np.arange(S)[:, None]).ravel()           # [S*N] cell of each draw
    return np.bincount(flat, minlength=S * n).reshape(S, n).astype(np.float64)


def bleu_of_sums(sums, **bleu_kwargs) -> np.ndarray:
    """``[S]`` BLEU of each row of ``sums`` ``[S, K]`` (corpus sums of the statistics),
    each row's numbers kept in its dtype (float32 for the bootstrap, as sacrebleu)."""
    order = (sums.shape[1] - 2) // 2
    out = np.empty(len(sums))
    for s, row in enumerate(sums):
        out[s] = bleu_from_stats(row[2:2 + order], row[2 + order:], int(row[0]), int(row[1]),
                                 max_ngram_order=order, **bleu_kwargs).score
    return out


def _bootstrap_scores(stats: np.ndarray, idxs: np.ndarray, bleu_kwargs: dict) -> np.ndarray:
    """``[S]`` BLEU of the resamples ``idxs`` ``[S, N]`` of ``stats`` ``[N, K]``, from
    float32 sums as sacrebleu's."""
    counts = resample_counts(idxs, len(stats))                  # [S, N]
    sums = (counts @ stats.astype(np.float64)).astype(np.float32)   # [S, N] @ [N, K]
    return bleu_of_sums(sums, **bleu_kwargs)


def estimate_ci(scores) -> tuple:
    """``(mean, ci)`` of resampled scores as sacrebleu's ``significance.estimate_ci``:
    sort, take the scores at positions B // 40 and B - B // 40 - 1 (95%: 1/40 of the
    resamples cut off each side), ci = half their distance, mean = NumPy's mean of the
    sorted scores (its pairwise sum: the order matters to the last bit)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    low_idx = len(scores) // 40
    low, high = scores[low_idx], scores[len(scores) - low_idx - 1]
    return float(scores.mean()), float(0.5 * (high - low))


def p_value(trial_stats, observed: float, strict: bool = True) -> float:
    """``(c + 1) / (R + 1)`` with c the number of the R trial statistics greater than
    `observed`: strictly (sacrebleu's and multeval's rule), or greater or equal with
    ``strict=False`` (Riezler & Maxwell's). The +1 counts the observed data as one of the
    trials."""
    trial_stats = np.asarray(trial_stats)
    beyond = trial_stats > observed if strict else trial_stats >= observed
    return (int(np.sum(beyond)) + 1) / (len(trial_stats) + 1)


def _check(n: int, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def _systems(baseline, systems) -> list:
    base = _as_stats(baseline, "baseline")
    if isinstance(systems, np.ndarray) and systems.ndim == 2:
        raise TypeError("systems is a list of the other systems' stats: for one write [stats]")
    others = [_as_stats(s, f"system {i + 1}") for i, s in enumerate(systems)]
    if not others:
        raise ValueError("a paired test needs a baseline and at least one other system")
    for i, s in enumerate(others):
        if s.shape != base.shape:
            raise ValueError(f"system {i + 1} has stats of shape {s.shape}, the baseline "
                             f"{base.shape}: the same segments, scored the same way")
    return [base] + others


def _score(stats: np.ndarray, bleu_kwargs: dict) -> float:
    """Corpus BLEU of the rows, from Python-int sums (as sacrebleu's own score)."""
    sums = [int(x) for x in stats.sum(axis=0)]
    order = (len(sums) - 2) // 2
    return bleu_from_stats(sums[2:2 + order], sums[2 + order:], sums[0], sums[1],
                           max_ngram_order=order, **bleu_kwargs).score


# ------------------------------------------------------------------------ the tests
def bootstrap_ci(stats, *, n_samples: int = 1000, seed=SACREBLEU_SEED,
                 smooth_method: str = "exp", smooth_value=None,
                 effective_order: bool = False) -> BootstrapCI:
    """BLEU of `stats` (rows of `corpus_stats`) with its bootstrap mean and 95% interval,
    as ``sacrebleu --confidence`` (``BLEU.corpus_score(..., n_bootstrap=n_samples)``):
    the indices are ``default_rng(seed).choice(N, size=(n_samples, N))``, and μ is
    ``statistics.mean`` of the sorted scores (sacrebleu's ``Score.estimate_ci``, an exact
    mean, not NumPy's)."""
    _check(n_samples, "n_samples")
    stats = _as_stats(stats)
    kw = dict(smooth_method=smooth_method, smooth_value=smooth_value,
              effective_order=effective_order)
    N = len(stats)
    idxs = _rng(seed).choice(N, size=(n_samples, N), replace=True)      # [B, N]
    scores = sorted(_bootstrap_scores(stats, idxs, kw).tolist())
    low_idx = n_samples // 40
    low, high = scores[low_idx], scores[n_samples - low_idx - 1]
    return BootstrapCI(_score(stats, kw), statistics.mean(scores), 0.5 * (high - low),
                       low, high, n_samples, None if isinstance(seed, np.random.Generator)
                       else seed)


def paired_bootstrap(baseline, systems: Sequence, *, n_samples: int = 1000,
                     seed=SACREBLEU_SEED, strict: bool = True, smooth_method: str = "exp",
                     smooth_value=None, effective_order: bool = False) -> list:
    """Paired bootstrap resampling of each of `systems` against `baseline` (each the rows
    of `corpus_stats` over the same segments and references), as ``sacrebleu
    --paired-bs``: ``[PairedResult]``, the baseline's first (its p_value None).

    One set of indices, ``default_rng(seed).choice(N, size=(n_samples, N))``, is shared by
    every system (sacrebleu draws it afresh from the same seed for each: the same draws).
    For a system with resampled scores B_s and the baseline's A_s:

        d_s = |B_s - A_s|,   p = (#{s : d_s - mean(d) > |B - A|} + 1) / (n_samples + 1)

    and (mean, ci) = `estimate_ci` of B_s (``>=`` with ``strict=False``).
    """
    _check(n_samples, "n_samples")
    all_stats = _systems(baseline, systems)
    kw = dict(smooth_method=smooth_method, smooth_value=smooth_value,
              effective_order=effective_order)
    N = len(all_stats[0])
    idxs = _rng(seed).choice(N, size=(n_samples, N), replace=True)       # [B, N]
    counts = resample_counts(idxs, N)                                     # [B, N]
    resampled = [bleu_of_sums((counts @ s.astype(np.float64)).astype(np.float32), **kw)
                 for s in all_stats]                                      # each [B]
    base_score = _score(all_stats[0], kw)
    out = [PairedResult(base_score, None, *estimate_ci(resampled[0]))]
    for stats, scores in zip(all_stats[1:], resampled[1:]):
        score = _score(stats, kw)
        diffs = np.abs(scores - resampled[0])                  # [B] resampled |B_s - A_s|
        # centred: the null hypothesis' picture of the difference (same spread, mean 0)
        p = p_value(diffs - diffs.mean(), abs(base_score - score), strict)
        out.append(PairedResult(score, p, *estimate_ci(scores)))
    return out


def paired_approximate_randomization(baseline, systems: Sequence, *, n_trials: int = 10000,
                                     seed=SACREBLEU_SEED, n_confidence: int = 0,
                                     strict: bool = True,
                                     smooth_method: str = "exp", smooth_value=None,
                                     effective_order: bool = False) -> list:
    """Paired approximate randomization of each of `systems` against `baseline`, as
    ``sacrebleu --paired-ar``: ``[PairedResult]``, the baseline's first.

    For each system, with the same draws (``default_rng(seed)``, afresh per system, as
    sacrebleu): ``swap = rng.integers(2, size=(n_trials, N), dtype=bool)``; trial t's
    pseudo-baseline takes the baseline's row where swap[t] is True and the system's
    elsewhere, the pseudo-system the other rows, and

        p = (#{t : |A'_t - B'_t| > |A - B|} + 1) / (n_trials + 1)     (>= if not strict)

    `n_confidence` > 0 also gives each result a bootstrap (mean, ci) from that many
    resamples, as sacrebleu's API ``n_ar_confidence``: the systems' indices come from the
    same generator after the swaps, the baseline's from a fresh ``default_rng(seed)``
    (its ``_bootstrap_resample``), so they differ. Its command line never asks for them.
    """
    _check(n_trials, "n_trials")
    if n_confidence < 0:
        raise ValueError(f"n_confidence must be >= 0 (0: no interval), got {n_confidence}")
    all_stats = _systems(baseline, systems)
    kw = dict(smooth_method=smooth_method, smooth_value=smooth_value,
              effective_order=effective_order)
    base = all_stats[0]
    N = len(base)
    base_score = _score(base, kw)
    mean = ci = None
    if n_confidence:
        idxs = _rng(seed).choice(N, size=(n_confidence, N), replace=True)
        mean, ci = estimate_ci(_bootstrap_scores(base, idxs, kw))
    out = [PairedResult(base_score, None, mean, ci)]
    base_sum = base.sum(axis=0)                                           # [K]
    for stats in all_stats[1:]:
        rng = _rng(seed)
        swap = rng.integers(2, size=(n_trials, N), dtype=bool)            # [R, N]
        score = _score(stats, kw)
        # pseudo-baseline A' = Σ_swap baseline + Σ_~swap system
        #                    = Σ system + swap @ (baseline - system); B' = the rest.
        # float64 matmul of integers: exact, and a BLAS call instead of a bool one
        delta = (base - stats).astype(np.float64)                         # [N, K]
        moved = np.rint(swap.astype(np.float64) @ delta).astype(np.int64)  # [R, K]
        pseudo_a = stats.sum(axis=0) + moved
        pseudo_b = base_sum - moved
        trial = np.abs(bleu_of_sums(pseudo_a, **kw) - bleu_of_sums(pseudo_b, **kw))
        result = PairedResult(score, p_value(trial, abs(base_score - score), strict))
        if n_confidence:
            idxs = rng.choice(N, size=(n_confidence, N), replace=True)
            result.mean, result.ci = estimate_ci(_bootstrap_scores(stats, idxs, kw))
        out.append(result)
    return out
