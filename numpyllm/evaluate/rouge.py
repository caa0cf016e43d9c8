"""ROUGE (Lin, 2004) exactly as Google's rouge-score 0.1.2 computes it.

A summary (the prediction) is compared with a reference (the target) through their
tokens: lowercase, every run of characters outside [a-z0-9] is a separator, and with
``use_stemmer`` each token longer than 3 characters is replaced by its Porter stem
(NLTK's ``PorterStemmer``, an optional dependency: ``pip install nltk``).

**ROUGE-N** counts n-grams, each clipped by its count on the other side:

    overlap   = Σ_g min(count_ref(g), count_pred(g))
    precision = overlap / max(#pred n-grams, 1),   recall = overlap / max(#ref n-grams, 1)
    F         = 2 P R / (P + R)    (0 when P + R = 0)

**ROUGE-L** uses the longest common subsequence (in order, not necessarily contiguous)
of the two token lists: P = LCS / |pred|, R = LCS / |ref|.

**ROUGE-Lsum** is the summary-level LCS: both texts are split into sentences at "\\n".
For each reference sentence r, the union of the positions of r that an LCS with each
predicted sentence uses (one particular LCS each, read back from the table as ROUGE
1.5.5 does) counts as hits, but each token is counted at most as many times as it occurs
in both summaries. P = hits / |pred tokens|, R = hits / |ref tokens|.

>>> s = RougeScorer(["rouge1", "rouge2", "rougeL"]).score(
...     "The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log.")
>>> [round(x, 4) for x in s["rouge1"]]                 # precision, recall, fmeasure
[0.75, 0.6667, 0.7059]
>>> [round(x, 4) for x in s["rougeL"]]
[0.625, 0.5556, 0.5882]
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import NamedTuple, Sequence

__all__ = ["Score", "RougeScorer", "rouge_scores", "rouge_tokenize", "lcs_length",
           "ROUGE_TYPES", "porter_stem"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")


class Score(NamedTuple):
    """Precision, recall and their harmonic mean (rouge-score's ``Score``)."""

    precision: float
    recall: float
    fmeasure: float


def _score(precision: float, recall: float) -> Score:
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return Score(precision, recall, f)


_STEMMER = None


@lru_cache(maxsize=2 ** 16)
def porter_stem(token: str) -> str:
    """NLTK's Porter stem of `token` (cached: a corpus repeats its words). ImportError
    that names ``pip install nltk`` when NLTK is missing."""
    global _STEMMER
    if _STEMMER is None:
        try:
            from nltk.stem import porter
        except ImportError:
            raise ImportError("ROUGE with stemming needs NLTK's Porter stemmer: pip install "
                              "nltk (or pip install numpyllm[rouge])") from None
        _STEMMER = porter.PorterStemmer()
    return _STEMMER.stem(token)


def rouge_tokenize(text: str, use_stemmer: bool = False) -> list:
    """rouge-score's tokens of `text`.

    >>> rouge_tokenize("Hello, World -- it's 2024!")
    ['hello', 'world', 'it', 's', '2024']
    >>> rouge_tokenize("The cats were running", use_stemmer=True)   # doctest: +SKIP
    ['the', 'cat', 'were', 'run']
    """
    text = _NON_ALPHANUM.sub(" ", text.lower())
    tokens = _SPACES.split(text)
    if use_stemmer:
        tokens = [porter_stem(x) if len(x) > 3 else x for x in tokens]   # short words kept
    return [x for x in tokens if _VALID_TOKEN.match(x)]


# ------------------------------------------------------------------------ ROUGE-N
def _ngrams(tokens: list, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _rouge_n(target: list, prediction: list, n: int) -> Score:
    t, p = _ngrams(target, n), _ngrams(prediction, n)
    overlap = sum(min(c, p[g]) for g, c in t.items())
    return _score(overlap / max(sum(p.values()), 1), overlap / max(sum(t.values()), 1))


# ------------------------------------------------------------------------ ROUGE-L
def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel
    (Allison & Dix 1986; Hyyrö 2004): bit i of V is 1 while the DP row's value does not
    step up at a[i]; each token of b updates all of a's positions in a few integer
    operations on Python's arbitrary-size ints, instead of a loop over len(a).

    >>> lcs_length("a b c b d a b".split(), "b d c a b a".split())
    4
    """
    if not a or not b:
        return 0
    match = {}                                   # token -> bitmask of its positions in a
    for i, tok in enumerate(a):
        match[tok] = match.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    V = full
    for tok in b:
        U = V & match.get(tok, 0)
        V = ((V + U) | (V - U)) & full
    return len(a) - bin(V).count("1")


def _lcs_table(ref: list, can: list) -> list:
    """The DP table: t[i][j] = LCS length of ref[:i] and can[:j]."""
    t = [[0] * (len(can) + 1) for _ in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        row, prev, r = t[i], t[i - 1], ref[i - 1]
        for j in range(1, len(can) + 1):
            row[j] = prev[j - 1] + 1 if r == can[j - 1] else max(prev[j], row[j - 1])
    return t


def _lcs_positions(ref: list, can: list) -> list:
    """Positions in `ref` of one LCS with `can`, read back from the table with ROUGE
    1.5.5's (and rouge-score's) tie rule: step left only when left is strictly larger.
    Which LCS is read matters: Lsum takes the union of these positions."""
    t = _lcs_table(ref, can)
    i, j, out = len(ref), len(can), []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.append(i - 1)
            i, j = i - 1, j - 1
        elif t[i][j - 1] > t[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out[::-1]


def _rouge_l(target: list, prediction: list) -> Score:
    if not target or not prediction:
        return Score(0.0, 0.0, 0.0)
    lcs = lcs_length(target, prediction)
    return _score(lcs / len(prediction), lcs / len(target))


def _rouge_lsum(target_sents: list, prediction_sents: list) -> Score:
    m = sum(map(len, target_sents))
    n = sum(map(len, prediction_sents))
    if not m or not n:
        return Score(0.0, 0.0, 0.0)
    # each token may be a hit at most as often as it occurs in both summaries
    left_ref = Counter(tok for s in target_sents for tok in s)
    left_pred = Counter(tok for s in prediction_sents for tok in s)
    hits = 0
    for ref in target_sents:
        union = sorted(set().union(*(_lcs_positions(ref, can) for can in prediction_sents)))
        for tok in (ref[i] for i in union):
            if left_pred[tok] > 0 and left_ref[tok] > 0:
                hits += 1
                left_pred[tok] -= 1
                left_ref[tok] -= 1
    return _score(hits / n, hits / m)


# ------------------------------------------------------------------------ the scorer
class RougeScorer:
    """rouge-score's ``RougeScorer``: ``score(target, prediction)`` (reference first, as
    there) returns ``{rouge_type: Score}``. Types: ``rougeN`` for N = 1..9, ``rougeL``,
    ``rougeLsum``."""

    def __init__(self, rouge_types: Sequence[str] = ROUGE_TYPES, use_stemmer: bool = False):
        if isinstance(rouge_types, str):
            rouge_types = [rouge_types]
        for name in rouge_types:
            if not (name in ("rougeL", "rougeLsum") or re.fullmatch(r"rouge[1-9]", name)):
                raise ValueError(f"unknown ROUGE type {name!r}: rouge1 .. rouge9, rougeL, "
                                 "rougeLsum")
        if not rouge_types:
            raise ValueError("no ROUGE type asked for")
        self.rouge_types = list(rouge_types)
        self.use_stemmer = use_stemmer
        if use_stemmer:
            porter_stem("check")             # NLTK missing: say so now, not mid-corpus

    def _tokens(self, text: str) -> list:
        return rouge_tokenize(text, self.use_stemmer)

    def score(self, target: str, prediction: str) -> dict:
        for what, value in (("target", target), ("prediction", prediction)):
            if not isinstance(value, str):
                raise TypeError(f"ROUGE {what} must be a string, got {type(value).__name__}")
        t, p = self._tokens(target), self._tokens(prediction)
        out = {}
        for name in self.rouge_types:
            if name == "rougeL":
                out[name] = _rouge_l(t, p)
            elif name == "rougeLsum":
                # sentences are the non-empty lines
                out[name] = _rouge_lsum([self._tokens(s) for s in target.split("\n") if s],
                                        [self._tokens(s) for s in prediction.split("\n") if s])
            else:
                out[name] = _rouge_n(t, p, int(name[5:]))
        return out

    def score_multi(self, targets: Sequence[str], prediction: str) -> dict:
        """Against several references: per type, the Score of the reference with the
        highest F (the first of equals)."""
        if isinstance(targets, str) or not targets:
            raise ValueError("score_multi needs a non-empty list of reference strings")
        each = [self.score(t, prediction) for t in targets]
        out = {}
        for name in self.rouge_types:
            best = max(range(len(each)), key=lambda k: (each[k][name].fmeasure, -k))
            out[name] = each[best][name]
        return out


def rouge_scores(predictions: Sequence[str], references, *,
                 rouge_types: Sequence[str] = ROUGE_TYPES, use_stemmer: bool = False) -> list:
    """Per segment ``{rouge_type: Score}`` for parallel lists of predictions and
    references (a reference may be a list of strings: the best by F is taken). Average
    them, or pass them to `numpyllm.evaluate.bootstrap` for confidence intervals.

    >>> [round(s["rouge1"].fmeasure, 3) for s in rouge_scores(["a b c", "x"], ["a b d", "y"])]
    [0.667, 0.0]
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("rouge_scores takes lists of strings (one segment each)")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = RougeScorer(rouge_types, use_stemmer)
    return [scorer.score(ref, pred) if isinstance(ref, str) else scorer.score_multi(ref, pred)
            for pred, ref in zip(predictions, references)]
