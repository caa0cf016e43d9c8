"""BLEU (Papineni et al., 2002) exactly as sacrebleu 2.x computes it, so that a score here
is comparable with a published one.

For each hypothesis segment and each order n = 1..4, the n-grams of the hypothesis are
counted, and each count is **clipped** by the largest count of that n-gram in any one
reference of the segment. Summed over the corpus:

    correct_n = Σ_seg Σ_g min(count_hyp(g), max_r count_r(g))     (g an n-gram)
    total_n   = Σ_seg Σ_g count_hyp(g)
    p_n       = correct_n / total_n                               (shown in percent)

The **brevity penalty** compares the hypothesis length c with r, the sum over segments of
the reference length closest to each hypothesis length (a tie goes to the shorter one):

    BP   = 1 if c >= r, else exp(1 - r / c)        (0 when c = 0)
    BLEU = 100 · BP · exp( (1/N) Σ_n log p_n )     N = 4

An order with no match would make the geometric mean 0; **smoothing** (Chen & Cherry
2014) decides what such an order contributes:

    none    p_n = 0 (so BLEU = 0)
    floor   p_n = ε / total_n                       ε = 0.1 by default
    add-k   correct_n + k and total_n + k for n > 1   k = 1 by default
    exp     the k-th order without a match gets p_n = 1 / (2^k total_n)   (the default,
            mteval-v13a's "NIST" smoothing)

A corpus with no match at all scores 0 whatever the smoothing. **Effective order** (for
sentence BLEU) averages only over the orders the hypothesis has at all (total_n > 0), so
a three-word sentence is not zero just for having no 4-gram.

Text is first lowercased (optional), stripped on the right, and tokenized: ``13a`` is
mteval-v13a's tokenizer (WMT's standard: punctuation and symbols split off, except a
period or comma between digits; ``&quot;``, ``&amp;``, ``&lt;``, ``&gt;`` unescaped),
``none`` splits on whitespace only, ``intl`` is mteval-v14's Unicode-aware rule,
``char`` scores characters, and ``zh`` makes each Chinese character a token (sacrebleu's
rule for Chinese targets, code point ranges and all).

Two conventions from sacrebleu that can surprise: with ``add-k`` the reported
``counts``/``totals`` of orders 2..4 include the added k; and an empty reference
string is a reference of length 0 (only None means "no reference here").

>>> s = corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]])
>>> round(s.score, 9), s.counts, s.totals, s.bp
(100.0, [6, 5, 4, 3], [6, 5, 4, 3], 1.0)
>>> s = corpus_bleu(["the cat is on the mat"], [["the cat sat on the mat"]])
>>> round(s.score, 4), s.counts, s.totals             # 4-grams: no match, exp-smoothed
(37.9918, [5, 3, 1, 0], [6, 5, 4, 3])
>>> round(sentence_bleu("a cat", ["a cat sat"]).score, 4)     # effective order 2, BP e^(-1/2)
60.6531
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

__all__ = ["BLEUScore", "corpus_bleu", "sentence_bleu", "bleu_from_stats", "tokenize_bleu",
           "BLEU_TOKENIZERS", "SMOOTH_DEFAULTS"]

MAX_NGRAM_ORDER = 4

# the value `floor` and `add-k` use when none is given (Chen & Cherry's)
SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}


# ------------------------------------------------------------------------ tokenizers
# mteval-v13a, language-dependent part (Western languages), as sacrebleu's TokenizerRegexp
_RE_13A = [
    # every symbol and punctuation mark of ASCII except . , - (and letters/digits)
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),       # . and , unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),       # . and , unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),            # - after a digit
]


def _split_13a(line: str) -> str:
    """13a's language-dependent rules, then single spaces (sacrebleu's TokenizerRegexp,
    which its 13a and zh tokenizers share)."""
    for pattern, replacement in _RE_13A:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


@lru_cache(maxsize=2 ** 16)
def _tokenize_13a(line: str) -> str:
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&")
                .replace("&lt;", "<").replace("&gt;", ">"))
    return _split_13a(f" {line} ")     # padded: a period at the very end is split off too


_RE_INTL = None


@lru_cache(maxsize=2 ** 16)
def _tokenize_intl(line: str) -> str:
    """mteval-v14: punctuation (\\p{P}) split off unless between digits, symbols (\\p{S})
    always."""
    global _RE_INTL
    if _RE_INTL is None:           # compiled on first use: \p{...} needs the regex module
        import regex
        _RE_INTL = [(regex.compile(r"(\P{N})(\p{P})"), r"\1 \2 "),
                    (regex.compile(r"(\p{P})(\P{N})"), r" \1 \2"),
                    (regex.compile(r"(\p{S})"), r" \1 ")]
    for pattern, replacement in _RE_INTL:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


# sacrebleu's ``zh`` (Shujian Huang's rule for Chinese): every character in these ranges
# becomes a token of its own, then the rest is split as 13a's second half does (no
# unescaping, no padding). sacrebleu tests ``start <= char <= end`` on strings, and two
# of its bounds meant to lie past U+FFFF are written as two characters ('\u20000' is
# U+2000 followed by '0'): as compared, they make U+2001..U+2A6D (general punctuation,
# symbols, arrows, the dingbats...) "Chinese" and CJK Extension B not. These are the
# code points its rule picks, merged (the oracle test checks every one up to U+2FFFF).
_ZH_RANGES = [(0x2001, 0x2A6D), (0x2E80, 0x2FDF), (0x2FF0, 0x303F), (0x3100, 0x312F),
              (0x31A0, 0x31EF), (0x3200, 0x4DB5), (0x4E00, 0x9FBB), (0xF900, 0xFA2D),
              (0xFA30, 0xFA6A), (0xFA70, 0xFAD9), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F),
              (0xFF00, 0xFFEF)]
_RE_ZH = re.compile("([" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in _ZH_RANGES) + "])")


@lru_cache(maxsize=2 ** 16)
def _tokenize_zh(line: str) -> str:
    return _split_13a(_RE_ZH.sub(r" \1 ", line.strip()))


BLEU_TOKENIZERS = {
    "13a": _tokenize_13a,
    "none": lambda line: line,
    "intl": _tokenize_intl,
    "char": lambda line: " ".join(line),
    "zh": _tokenize_zh,
}


def tokenize_bleu(line: str, tokenize: str = "13a", lowercase: bool = False) -> list:
    """The tokens BLEU counts in `line`: lowercased if asked, stripped on the right,
    tokenized, split on whitespace.

    >>> tokenize_bleu("Hello, world! It costs $3.50.")
    ['Hello', ',', 'world', '!', 'It', 'costs', '$', '3.50', '.']
    """
    if tokenize not in BLEU_TOKENIZERS:
        raise ValueError(f"unknown BLEU tokenizer {tokenize!r}: choose one of "
                         f"{', '.join(BLEU_TOKENIZERS)}")
    if lowercase:
        line = line.lower()
    return BLEU_TOKENIZERS[tokenize](line.rstrip()).split()


# ------------------------------------------------------------------------ the score
@dataclass
class BLEUScore:
    """A BLEU score and the statistics it comes from (the fields sacrebleu's has).

    score       BLEU in [0, 100]
    counts      clipped n-gram matches, n = 1..4
    totals      hypothesis n-grams, n = 1..4
    precisions  100 · counts / totals after smoothing
    bp          brevity penalty;  sys_len, ref_len: c and r above
    signature   how it was computed, in sacrebleu's format
    """

    score: float
    counts: list
    totals: list
    precisions: list
    bp: float
    sys_len: int
    ref_len: int
    signature: str = field(default="", compare=False)

    @property
    def ratio(self) -> float:
        return self.sys_len / self.ref_len if self.ref_len else 0.0

    def format(self, width: int = 2) -> str:
        """sacrebleu's line: ``BLEU = 35.36 66.7/40.0/25.0/16.7 (BP = 1.000 ...)``."""
        prec = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"BLEU = {self.score:.{width}f} {prec} (BP = {self.bp:.3f} "
                f"ratio = {self.ratio:.3f} hyp_len = {self.sys_len:d} "
                f"ref_len = {self.ref_len:d})")

    def __str__(self) -> str:
        return self.format()


def _log(p: float) -> float:
    # sacrebleu's floor for log 0: the score then underflows to exactly 0
    return math.log(p) if p != 0.0 else -9999999999


def bleu_from_stats(correct, total, sys_len: int, ref_len: int, *, smooth_method: str = "exp",
                    smooth_value=None, effective_order: bool = False, signature: str = "",
                    max_ngram_order: int = MAX_NGRAM_ORDER) -> BLEUScore:
    """BLEU from its sufficient statistics (the corpus sums of matches and n-grams per
    order, and the two lengths), with smoothing; the formulas of the module docstring."""
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(f"unknown smoothing {smooth_method!r}: choose one of "
                         f"{', '.join(SMOOTH_DEFAULTS)}")
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth_method]
    correct, total = list(correct), list(total)        # add-k changes them: our copies
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    precisions = [0.0] * max_ngram_order
    if not any(correct):                               # no match at all: 0, unsmoothed
        return BLEUScore(0.0, correct, total, precisions, bp, sys_len, ref_len, signature)
    exp_halvings = 1.0
    eff_order = max_ngram_order
    for n in range(1, max_ngram_order + 1):
        if smooth_method == "add-k" and n > 1:
            correct[n - 1] += smooth_value
            total[n - 1] += smooth_value
        if total[n - 1] == 0:          # no n-gram of this order (nor of the higher ones)
            break
        if effective_order:
            eff_order = n
        if correct[n - 1] == 0:
            if smooth_method == "exp":
                exp_halvings *= 2
                precisions[n - 1] = 100.0 / (exp_halvings * total[n - 1])
            elif smooth_method == "floor":
                precisions[n - 1] = 100.0 * smooth_value / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    score = bp * math.exp(sum(_log(p) for p in precisions[:eff_order]) / eff_order)
    return BLEUScore(score, correct, total, precisions, bp, sys_len, ref_len, signature)


def _ngrams(tokens: list, max_order: int) -> Counter:
    """Every n-gram of `tokens` for n = 1..max_order, as tuples, with its count."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                   for i in range(len(tokens) - n + 1))


def _closest_ref_len(hyp_len: int, ref_lens: list) -> int:
    """The reference length nearest the hypothesis length; a tie goes to the shorter."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def _segment_stats(hyp: list, refs: list, max_order: int) -> list:
    """``[hyp_len, ref_len, correct_1..N, total_1..N]`` of one segment (token lists)."""
    ref_max = Counter()                  # each n-gram's largest count in any one reference
    for ref in refs:
        for gram, c in _ngrams(ref, max_order).items():
            if c > ref_max[gram]:
                ref_max[gram] = c
    correct, total = [0] * max_order, [0] * max_order
    for gram, c in _ngrams(hyp, max_order).items():
        total[len(gram) - 1] += c
        if gram in ref_max:
            correct[len(gram) - 1] += min(c, ref_max[gram])
    return [len(hyp), _closest_ref_len(len(hyp), [len(r) for r in refs])] + correct + total


def _segments(hyps, refs, segment_refs) -> list:
    """Per segment, the list of its references (None dropped), from either convention;
    precise errors for the ways they can disagree."""
    if isinstance(hyps, str) or not isinstance(hyps, Sequence):
        raise TypeError("hyps must be a list of strings (one hypothesis per segment)")
    if (refs is None) == (segment_refs is None):
        raise TypeError("pass the references once: refs=[stream, ...] (sacrebleu's "
                        "reference streams) or segment_refs=[[ref, ...], ...] (per segment)")
    if segment_refs is not None:
        if len(segment_refs) != len(hyps):
            raise ValueError(f"segment_refs has {len(segment_refs)} entries for "
                             f"{len(hyps)} hypotheses")
        rows = [[segment] if isinstance(segment, str) else list(segment)
                for segment in segment_refs]
    else:
        if isinstance(refs, str) or any(isinstance(s, str) for s in refs):
            raise TypeError("refs is a list of reference streams, each a list of strings "
                            "(one per segment): for a single reference write [refs]")
        for k, stream in enumerate(refs):
            if len(stream) != len(hyps):
                raise ValueError(f"reference stream {k} has {len(stream)} lines for "
                                 f"{len(hyps)} hypotheses")
        rows = [list(segment) for segment in zip(*refs)] if refs else [[] for _ in hyps]
    out = []
    for i, (hyp, row) in enumerate(zip(hyps, rows)):
        if not isinstance(hyp, str):
            raise TypeError(f"hypothesis {i} is a {type(hyp).__name__}, not a string")
        row = [r for r in row if r is not None]
        if not row:
            raise ValueError(f"segment {i} has no reference")
        if not all(isinstance(r, str) for r in row):
            raise TypeError(f"segment {i}: every reference must be a string or None")
        out.append(row)
    return out


def _signature(n_refs: set, lowercase, effective_order, tokenize, smooth_method,
               smooth_value) -> str:
    nrefs = next(iter(n_refs)) if len(n_refs) == 1 else "var"
    smooth = smooth_method
    if SMOOTH_DEFAULTS[smooth_method] is not None:
        value = SMOOTH_DEFAULTS[smooth_method] if smooth_value is None else smooth_value
        smooth += f"[{value:.2f}]"
    from .. import __version__
    return (f"nrefs:{nrefs}|case:{'lc' if lowercase else 'mixed'}|"
            f"eff:{'yes' if effective_order else 'no'}|tok:{tokenize}|smooth:{smooth}|"
            f"version:numpyllm-{__version__}")


def corpus_stats(hyps, refs=None, *, segment_refs=None, tokenize: str = "13a",
                 lowercase: bool = False, max_ngram_order: int = MAX_NGRAM_ORDER) -> list:
    """The per-segment statistics ``[hyp_len, ref_len, correct_1..N, total_1..N]``
    (rows of ints) whose column sums make corpus BLEU; for bootstrap resampling."""
    segments = _segments(hyps, refs, segment_refs)
    return [_segment_stats(tokenize_bleu(h, tokenize, lowercase),
                           [tokenize_bleu(r, tokenize, lowercase) for r in row],
                           max_ngram_order)
            for h, row in zip(hyps, segments)]


def corpus_bleu(hyps: Sequence[str], refs=None, *, segment_refs=None, tokenize: str = "13a",
                lowercase: bool = False, smooth_method: str = "exp", smooth_value=None,
                effective_order: bool = False,
                max_ngram_order: int = MAX_NGRAM_ORDER) -> BLEUScore:
    """Corpus BLEU of `hyps` (one string per segment), as sacrebleu's ``corpus_bleu``.

    References either as sacrebleu takes them, ``refs=[stream_1, stream_2, ...]`` where
    each stream holds one reference per segment (None where a segment has fewer), or
    per segment, ``segment_refs=[[ref, ref], [ref], ...]``. An empty corpus scores 0.

    Errors: TypeError for a list of strings passed as `refs` (wrap it: ``[refs]``),
    ValueError for a stream whose length is not the number of hypotheses, a segment
    without any reference, an unknown tokenizer or smoothing.
    """
    if tokenize not in BLEU_TOKENIZERS:
        raise ValueError(f"unknown BLEU tokenizer {tokenize!r}: choose one of "
                         f"{', '.join(BLEU_TOKENIZERS)}")
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(f"unknown smoothing {smooth_method!r}: choose one of "
                         f"{', '.join(SMOOTH_DEFAULTS)}")
    segments = _segments(hyps, refs, segment_refs)
    stats = corpus_stats(hyps, segment_refs=segments, tokenize=tokenize, lowercase=lowercase,
                         max_ngram_order=max_ngram_order)
    sums = [sum(column) for column in zip(*stats)] or [0] * (2 + 2 * max_ngram_order)
    signature = _signature({len(row) for row in segments} or {0}, lowercase, effective_order,
                           tokenize, smooth_method, smooth_value)
    return bleu_from_stats(sums[2:2 + max_ngram_order], sums[2 + max_ngram_order:],
                           sums[0], sums[1], smooth_method=smooth_method,
                           smooth_value=smooth_value, effective_order=effective_order,
                           signature=signature, max_ngram_order=max_ngram_order)


def sentence_bleu(hyp: str, refs: Sequence[str], *, tokenize: str = "13a",
                  lowercase: bool = False, smooth_method: str = "exp", smooth_value=None,
                  effective_order: bool = True) -> BLEUScore:
    """BLEU of one hypothesis against its references (a list of strings), effective
    order on by default, as sacrebleu's ``sentence_bleu``. BLEU is a corpus metric: the
    mean of sentence scores is not corpus BLEU."""
    if isinstance(refs, str):
        raise TypeError("refs must be a list of reference strings: write [ref]")
    return corpus_bleu([hyp], segment_refs=[list(refs)], tokenize=tokenize,
                       lowercase=lowercase, smooth_method=smooth_method,
                       smooth_value=smooth_value, effective_order=effective_order)
