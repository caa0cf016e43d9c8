"""chrF and chrF++ (Popović 2015, 2017) as sacrebleu 2.6.0 computes them.

BLEU counts word n-grams, so a hypothesis that gets a word's stem right but its ending
wrong ("walked" for "walks") scores nothing for it. chrF counts **character** n-grams
instead, n = 1..6, and combines precision and recall as an F-score weighted towards
recall (β = 2: recall counts β² = 4 times as much). chrF++ adds **word** unigrams and
bigrams (word_order = 2), which correlates better with human judgement on some languages.

**Counting.** Character n-grams are taken from the segment with its whitespace removed
(``"a cat" -> "acat"``; ``whitespace=True`` keeps it); word n-grams from its words, a
punctuation mark at the start or end of a word split off (``"cat," -> "cat" ","``; only
one side per word, as chrF++.py does: ``"(hi)" -> "(hi" ")"``). For each order i, over the
corpus: hyp_i n-grams in the hypotheses, ref_i in the references, and match_i = Σ over
n-grams of min(count in hyp, count in ref) (an order with no reference n-gram counts no
hypothesis n-gram either). With several references, each segment takes the one whose
statistics give it the best F-score (the first on a tie).

**The score** (sacrebleu's default: "effective order"). Over the orders where both the
hypotheses and the references have n-grams (E of them),

    P = (1/E) Σ_i match_i / hyp_i      R = (1/E) Σ_i match_i / ref_i
    chrF = 100 (1 + β²) P R / (β² P + R)          (0 when P + R = 0)

that is, precision and recall are averaged over the orders *before* the F-score. With
``eps_smoothing=True`` (chrF++.py's, Moses' and NLTK's rule) an F-score is taken per
order, a missing precision or recall counting as ε = 1e-16, and those are averaged over
all orders: a short segment with no 6-gram is then pulled down by that order.

>>> round(corpus_chrf(["the cat sat on the mat"], [["the cat sat on the mat"]]).score, 6)
100.0
>>> s = corpus_chrf(["the cats sat on a mat"], [["the cat sat on the mat"]], word_order=2)
>>> s.name, round(s.score, 2)
('chrF2++', 49.81)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .bleu import _segments

__all__ = ["CHRFScore", "corpus_chrf", "sentence_chrf", "chrf_stats", "chrf_from_stats"]

CHAR_ORDER, WORD_ORDER, BETA = 6, 0, 2
EPS = 1e-16
_PUNCTUATION = set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')      # string.punctuation


@dataclass
class CHRFScore:
    """A chrF score: `score` in [0, 100], the orders and β it was computed with, and the
    signature (sacrebleu's fields)."""

    score: float
    char_order: int
    word_order: int
    beta: int
    signature: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """``chrF2``, or ``chrF2++`` with word bigrams (one + per word order)."""
        return f"chrF{self.beta}" + "+" * self.word_order

    def format(self, width: int = 2) -> str:
        return f"{self.name} = {self.score:.{width}f}"

    def __str__(self) -> str:
        return self.format()


# ------------------------------------------------------------------------ n-grams
def char_ngrams(line: str, max_order: int, whitespace: bool = False) -> list:
    """``[Counter of 1-grams, ..., Counter of max_order-grams]`` of `line`'s characters
    (its whitespace removed unless `whitespace`)."""
    if not whitespace:
        line = "".join(line.split())
    return [Counter(line[i:i + n] for i in range(len(line) - n + 1))
            for n in range(1, max_order + 1)]


def words(line: str) -> list:
    """The words chrF++ counts: split on whitespace, then one punctuation mark split off
    the end of a word, or else off its start (a one-character word stays whole)."""
    out = []
    for w in line.split():
        if len(w) > 1 and w[-1] in _PUNCTUATION:
            out += [w[:-1], w[-1]]
        elif len(w) > 1 and w[0] in _PUNCTUATION:
            out += [w[0], w[1:]]
        else:
            out.append(w)
    return out


def _ngram_counters(line: str, char_order: int, word_order: int, whitespace: bool) -> list:
    """Character orders 1..char_order, then word orders 1..word_order: one Counter each."""
    counters = char_ngrams(line, char_order, whitespace)
    if word_order > 0:
        tokens = words(line)
        counters += [Counter(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
                     for n in range(1, word_order + 1)]
    return counters


def _match(hyp: Counter, ref: Counter) -> list:
    """``[hyp n-grams, ref n-grams, matches]`` of one order (no reference n-gram: the
    hypothesis' are not counted either)."""
    matches = sum(min(c, ref[g]) for g, c in hyp.items() if g in ref)
    return [sum(hyp.values()) if ref else 0, sum(ref.values()), matches]


# ------------------------------------------------------------------------ the score
def f_score(stats, beta: int = BETA, eps_smoothing: bool = False) -> float:
    """chrF from ``[hyp_1, ref_1, match_1, hyp_2, ...]`` (three numbers an order), in
    [0, 100]: the module docstring's formulas."""
    factor = beta ** 2
    order = len(stats) // 3
    per_order, avg_p, avg_r, effective = 0.0, 0.0, 0.0, 0
    for i in range(order):
        n_hyp, n_ref, n_match = stats[3 * i:3 * i + 3]
        p = n_match / n_hyp if n_hyp > 0 else EPS
        r = n_match / n_ref if n_ref > 0 else EPS
        denom = factor * p + r
        per_order += (1 + factor) * p * r / denom if denom > 0 else EPS
        if n_hyp > 0 and n_ref > 0:          # an order both sides have: it counts
            avg_p += p
            avg_r += r
            effective += 1
    if eps_smoothing:
        return 100 * per_order / order
    if effective:
        avg_p, avg_r = avg_p / effective, avg_r / effective
    if avg_p + avg_r == 0:
        return 0.0
    score = (1 + factor) * avg_p * avg_r          # in sacrebleu's order: the same bits
    score /= factor * avg_p + avg_r
    return 100 * score


def chrf_stats(hyps, refs=None, *, segment_refs=None, char_order: int = CHAR_ORDER,
               word_order: int = WORD_ORDER, beta: int = BETA, lowercase: bool = False,
               whitespace: bool = False, eps_smoothing: bool = False) -> list:
    """Per segment, ``[hyp_i, ref_i, match_i]`` for every order (character orders first),
    against its best reference: rows whose column sums make corpus chrF."""
    _check(char_order, word_order, beta)
    prep = str.lower if lowercase else str
    rows = []
    for hyp, segment in zip(hyps, _segments(hyps, refs, segment_refs)):
        h = _ngram_counters(prep(hyp), char_order, word_order, whitespace)
        best, best_f = None, -1.0
        for ref in segment:
            r = _ngram_counters(prep(ref), char_order, word_order, whitespace)
            stats = [x for hc, rc in zip(h, r) for x in _match(hc, rc)]
            f = f_score(stats, beta, eps_smoothing)
            if f > best_f:                   # strictly: the first of equals wins
                best, best_f = stats, f
        rows.append(best)
    return rows


def chrf_from_stats(sums, *, char_order: int = CHAR_ORDER, word_order: int = WORD_ORDER,
                    beta: int = BETA, eps_smoothing: bool = False,
                    signature: str = "") -> CHRFScore:
    """The CHRFScore of summed statistics (`chrf_stats`' columns summed)."""
    return CHRFScore(f_score(sums, beta, eps_smoothing), char_order, word_order, beta,
                     signature)


def corpus_chrf(hyps, refs=None, *, segment_refs=None, char_order: int = CHAR_ORDER,
                word_order: int = WORD_ORDER, beta: int = BETA, lowercase: bool = False,
                whitespace: bool = False, eps_smoothing: bool = False) -> CHRFScore:
    """Corpus chrF (``word_order=2``: chrF++) of `hyps`, as sacrebleu's ``corpus_chrf``.
    References as `corpus_bleu` takes them: sacrebleu's streams ``refs=[stream, ...]``
    or ``segment_refs=[[ref, ...], ...]``. An empty corpus scores 0.

    Errors: TypeError / ValueError as corpus_bleu's for the references; ValueError for
    orders < 0 (or no order at all) and β < 1."""
    kw = dict(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase,
              whitespace=whitespace, eps_smoothing=eps_smoothing)
    segments = _segments(hyps, refs, segment_refs)          # checked and gathered once
    rows = chrf_stats(hyps, segment_refs=segments, **kw)
    n_refs = {len(s) for s in segments} or {0}
    sums = [sum(column) for column in zip(*rows)] or [0] * 3 * (char_order + word_order)
    return chrf_from_stats(sums, char_order=char_order, word_order=word_order, beta=beta,
                           eps_smoothing=eps_smoothing,
                           signature=_signature(n_refs, lowercase, eps_smoothing, char_order,
                                                word_order, whitespace))


def sentence_chrf(hyp: str, refs, **kwargs) -> CHRFScore:
    """chrF of one hypothesis against its references (a list of strings)."""
    if not isinstance(hyp, str):
        raise TypeError("sentence_chrf: hyp must be a string")
    if isinstance(refs, str):
        raise TypeError("sentence_chrf: refs must be a list of strings (wrap one: [ref])")
    return corpus_chrf([hyp], segment_refs=[list(refs)], **kwargs)


def _check(char_order, word_order, beta) -> None:
    for name, value in (("char_order", char_order), ("word_order", word_order)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"chrF: {name} must be an integer >= 0, got {value!r}")
    if char_order + word_order == 0:
        raise ValueError("chrF: char_order + word_order must be at least 1")
    if isinstance(beta, bool) or not isinstance(beta, int) or beta < 1:
        raise ValueError(f"chrF: beta must be an integer >= 1, got {beta!r}")


def _signature(n_refs: set, lowercase, eps_smoothing, char_order, word_order,
               whitespace) -> str:
    from .. import __version__
    nrefs = n_refs.pop() if len(n_refs) == 1 else "var"
    return (f"nrefs:{nrefs}|case:{'lc' if lowercase else 'mixed'}|"
            f"eff:{'no' if eps_smoothing else 'yes'}|nc:{char_order}|nw:{word_order}|"
            f"space:{'yes' if whitespace else 'no'}|version:numpyllm-{__version__}")
