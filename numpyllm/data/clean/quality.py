"""The Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models:
Methods, Analysis & Insights from Training Gopher", appendix A.1.1): heuristics that keep
prose and drop the boilerplate, keyword lists and spam of a web crawl. Every threshold is
a field of `GopherConfig`; `gopher_reasons(text, config)` lists every rule a document
breaks, in the order of the table below, so the report can say why each was removed.

Words are the whitespace-separated tokens; "symbol words" (no letter or digit in them:
"-", "...") are left out of the word count and mean word length, as in datatrove's
implementation of these rules.

| rule                                   | keep a document when          | field                |
| -------------------------------------- | ----------------------------- | -------------------- |
| number of words                        | 50 <= n <= 100,000            | min_words, max_words |
| mean word length (characters)          | 3 <= mean <= 10               | min_mean_word_length, max_mean_word_length |
| '#' per word                           | <= 0.1                        | max_symbol_word_ratio |
| '...' or '…' per word                  | <= 0.1                        | max_symbol_word_ratio |
| lines starting with a bullet           | <= 90%                        | max_bullet_lines     |
| lines ending with an ellipsis          | <= 30%                        | max_ellipsis_lines   |
| words with an alphabetic character     | >= 80%                        | min_alpha_words      |
| of the, be, to, of, and, that, have, with | at least 2 distinct present | min_stop_words       |
| duplicate lines (fraction of lines)    | <= 0.30                       | max_dup_line_frac    |
| duplicate paragraphs (of paragraphs)   | <= 0.30                       | max_dup_para_frac    |
| characters in duplicate lines          | <= 0.20                       | max_dup_line_char_frac |
| characters in duplicate paragraphs     | <= 0.20                       | max_dup_para_char_frac |
| characters in the most frequent n-gram, n = 2, 3, 4 | <= 0.20, 0.18, 0.16 | top_ngram_char_frac |
| characters in duplicated n-grams, n = 5..10 | <= 0.15, 0.14, 0.13, 0.12, 0.11, 0.10 | dup_ngram_char_frac |

Repetition as datatrove computes it: a line (paragraph) is a duplicate when an equal one
came before it in the document; the characters of the duplicates are divided by the
characters of the document. An n-gram's characters are its words' characters (no
spaces). The most frequent n-gram counts only when it occurs more than once, and the characters
its occurrences cover count once each (datatrove multiplies its length by its count,
which passes 100% when occurrences overlap); the
duplicated n-grams are counted left to right without overlap (after a repeat, the scan
jumps past it), so no character is counted twice.

"At least two of" the stop words is read as two distinct ones, as the paper words it
(datatrove counts occurrences, so "the the" passes there and fails here).

These rules were written for English web prose. Source code breaks the symbol and
stop-word rules, and a text message has fewer than 50 words: turn rules off with
`enabled` or relax their fields for such corpora (the figures in docs/cleaning.md show
what the defaults do to each).

>>> gopher_reasons("buy now " * 40)[:2]
['fewer than 2 stop words (0)', 'top 2-gram characters above 20% (75%)']
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, fields

__all__ = ["GopherConfig", "gopher_reasons", "STOP_WORDS", "BULLETS"]

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "-", "*", "‣", "⁃", "◦", "⦾", "⦿", "▪", "●")
_PARA = re.compile(r"\n\s*\n")
_ALNUM = re.compile(r"[^\W_]")   # a letter or a digit ("_" alone is a symbol word)
_ALPHA = re.compile(r"[^\W\d_]")


@dataclass
class GopherConfig:
    """The Gopher thresholds (defaults: the paper's). `None` turns one rule off."""

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3.0
    max_mean_word_length: float | None = 10.0
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines: float | None = 0.9
    max_ellipsis_lines: float | None = 0.3
    min_alpha_words: float | None = 0.8
    min_stop_words: int | None = 2
    max_dup_line_frac: float | None = 0.3
    max_dup_para_frac: float | None = 0.3
    max_dup_line_char_frac: float | None = 0.2
    max_dup_para_char_frac: float | None = 0.2
    top_ngram_char_frac: dict = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    dup_ngram_char_frac: dict = field(default_factory=lambda: {
        5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
    quality: bool = True          # the first nine rules
    repetition: bool = True       # the rest

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise ValueError(f"GopherConfig.{f.name} must be >= 0, got {v}")
        for name in ("top_ngram_char_frac", "dup_ngram_char_frac"):
            for n, frac in getattr(self, name).items():
                if int(n) < 1 or not 0 <= frac <= 1:
                    raise ValueError(f"GopherConfig.{name}: n={n}, fraction={frac}: n must "
                                     "be >= 1 and the fraction in [0, 1]")


_DEFAULT = GopherConfig()


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(how many items equal an earlier one, their total characters)."""
    seen, count, chars = set(), 0, 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _top_ngram_chars(words: list[str], n: int) -> int:
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0
    # the characters its occurrences cover, each once ("abab" holds "ab ab" twice but
    # overlapping occurrences must not count a character twice: the fraction stays <= 1)
    covered = bytearray(len(words))
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) == gram:
            covered[i:i + n] = b"\1" * n
    return sum(len(w) for w, c in zip(words, covered) if c)


def _dup_ngram_chars(words: list[str], n: int) -> int:
    seen, chars, i = set(), 0, 0
    while i <= len(words) - n:
        gram = tuple(words[i:i + n])
        if gram in seen:
            chars += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def gopher_reasons(text: str, config: GopherConfig | None = None) -> list[str]:
    """Every Gopher rule `text` breaks, as short reasons ("fewer than 50 words (12)");
    an empty list keeps the document."""
    c = config or _DEFAULT
    reasons = []
    tokens = text.split()
    words = [w for w in tokens if _ALNUM.search(w)]          # without symbol words
    n = len(words)
    if c.quality:
        if c.min_words is not None and n < c.min_words:
            reasons.append(f"fewer than {c.min_words} words ({n})")
        if c.max_words is not None and n > c.max_words:
            reasons.append(f"more than {c.max_words} words ({n})")
        mean = sum(map(len, words)) / n if n else 0.0
        if c.min_mean_word_length is not None and mean < c.min_mean_word_length:
            reasons.append(f"mean word length below {c.min_mean_word_length} ({mean:.1f})")
        if c.max_mean_word_length is not None and mean > c.max_mean_word_length:
            reasons.append(f"mean word length above {c.max_mean_word_length} ({mean:.1f})")
        if c.max_symbol_word_ratio is not None:
            hashes = text.count("#") / max(n, 1)
            ellipses = (text.count("...") + text.count("…")) / max(n, 1)
            if hashes > c.max_symbol_word_ratio:
                reasons.append(f"'#' per word above {c.max_symbol_word_ratio} ({hashes:.2f})")
            if ellipses > c.max_symbol_word_ratio:
                reasons.append(f"ellipses per word above {c.max_symbol_word_ratio} "
                               f"({ellipses:.2f})")
        lines = [ln for ln in text.splitlines() if ln.strip()] or [""]
        if c.max_bullet_lines is not None:
            frac = sum(ln.lstrip().startswith(BULLETS) for ln in lines) / len(lines)
            if frac > c.max_bullet_lines:
                reasons.append(f"bullet lines above {c.max_bullet_lines:.0%} ({frac:.0%})")
        if c.max_ellipsis_lines is not None:
            frac = sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines)
            if frac > c.max_ellipsis_lines:
                reasons.append(f"lines ending in an ellipsis above {c.max_ellipsis_lines:.0%} "
                               f"({frac:.0%})")
        if c.min_alpha_words is not None and tokens:
            frac = sum(bool(_ALPHA.search(w)) for w in tokens) / len(tokens)
            if frac < c.min_alpha_words:
                reasons.append(f"words with a letter below {c.min_alpha_words:.0%} ({frac:.0%})")
        if c.min_stop_words is not None:
            found = STOP_WORDS.intersection(w.lower() for w in tokens)
            if len(found) < c.min_stop_words:
                reasons.append(f"fewer than {c.min_stop_words} stop words ({len(found)})")
    if c.repetition:
        reasons += _repetition(text, words, c)
    return reasons


def _repetition(text: str, words: list[str], c: GopherConfig) -> list[str]:
    reasons, size = [], max(len(text), 1)
    for unit, parts, max_frac, max_chars in (
            ("lines", [p for p in text.split("\n") if p.strip()],
             c.max_dup_line_frac, c.max_dup_line_char_frac),
            ("paragraphs", [p for p in _PARA.split(text.strip()) if p.strip()],
             c.max_dup_para_frac, c.max_dup_para_char_frac)):
        count, chars = _duplicates(parts)
        if max_frac is not None and parts and count / len(parts) > max_frac:
            reasons.append(f"duplicate {unit} above {max_frac:.0%} ({count / len(parts):.0%})")
        if max_chars is not None and chars / size > max_chars:
            reasons.append(f"characters in duplicate {unit} above {max_chars:.0%} "
                           f"({chars / size:.0%})")
    if len(set(words)) == len(words):
        return reasons              # no word repeats, so no n-gram does: nothing to count
    for n, limit in sorted(c.top_ngram_char_frac.items()):
        frac = _top_ngram_chars(words, int(n)) / size
        if frac > limit:
            reasons.append(f"top {n}-gram characters above {limit:.0%} ({frac:.0%})")
    for n, limit in sorted(c.dup_ngram_char_frac.items()):
        chars = _dup_ngram_chars(words, int(n))
        if chars / size > limit:
            reasons.append(f"duplicate {n}-gram characters above {limit:.0%} "
                           f"({chars / size:.0%})")
        if chars == 0:
            break                   # no n-gram repeats, so no longer one does either
    return reasons
