"""Which split patterns a tokenizer file may carry: the known ones, or custom ones that
provably cannot make the regex engine backtrack for exponential time.

A BPE tokenizer file names its pre-tokenisation regex, and the `regex` engine
backtracks: a pattern such as ``(a|a)*b`` or ``(\\s+)+$`` takes time exponential in the
length of the text it splits (ReDoS), and ``\\s*\\s*\\s*x`` takes cubic time. Loading a
file must not hand such a program to the engine, so `BPETokenizer.load` accepts:

- the known patterns (`gpt2.PATTERNS`, GPT-2's original, and the Qwen2 and Llama 3
  patterns of `gpt2.HF_PATTERNS`), by name or exact text;
- any other pattern only if `check_pattern` accepts it, or if the caller vouches for
  the file with ``BPETokenizer.load(path, trust_pattern=True)``.

`check_pattern` accepts a pattern of at most 1,000 characters that compiles, uses only
these constructs:

    literals, escapes (\\d \\w \\s \\p{..} \\x.. ...; no backreferences \\1 \\g \\k),
    classes [...] (POSIX [:alpha:] inside, no nested sets), . ^ $ anchors,
    groups ( ) (?: ) (?P<name> ) (?> ) lookarounds (?= ) (?! ) (?<= ) (?<! ),
    flags (?i) (?m) (?s) (?a) (?u) and scoped (?i: ), comments (?# ),
    quantifiers ? * + {m} {m,} {,n} {m,n} (counts up to 1,000), lazy or possessive;

(no recursion, conditionals, branch resets, fuzzy matching or verbose mode), and whose
count of *ways to match* at one position is at most 1,000 times the text's length n:

    a character, class, escape or anchor:  1 way
    X? / X{0,1}:                           ways(X) + 1
    X* X+ X{m,}:                           n, and X itself must match in 1 way
    X{m,n}:                                n - m + 1, and X must match in 1 way
    X{m}:                                  ways(X) ** m
    a sequence:                            the product of its parts' ways
    an alternation:                        the sum of its branches' ways

A backtracking engine tries at most that many paths from a position, so a pattern that
passes spends time linear in the text at each position (quadratic over the worst text),
never exponential. The count is conservative: ``\\w+\\s*`` (n * n ways) and
``(?:ab|cd)+`` (a repeated alternation) are refused though they are harmless in
practice; write ``[ab]+`` for ``(?:a|b)+``, or pass ``trust_pattern=True``.

    >>> check_pattern(r"\\w+|\\s+|[^\\w\\s]+")
    >>> try:
    ...     check_pattern(r"(a|a)*b")
    ... except ValueError as exc:
    ...     print(exc)
    a group repeated by '*' must match in exactly one way, but this one holds an alternation or a quantifier (at index 0)
"""
from __future__ import annotations

import regex

from . import gpt2

__all__ = ["KNOWN_PATTERNS", "MAX_LENGTH", "MAX_WAYS", "UnsafePatternError", "check_pattern",
           "is_known"]

MAX_LENGTH = 1000
MAX_WAYS = 1000          # per character of text: the constant c of c * n
MAX_COUNT = 1000         # the largest count a {m,n} quantifier may name
MAX_NESTING = 32         # groups inside groups

KNOWN_PATTERNS = (frozenset(gpt2.PATTERNS.values()) | {gpt2.GPT2_ORIGINAL_PATTERN}
                  | frozenset(gpt2.HF_PATTERNS.values()))

_ESCAPE_LETTERS = set("dDwWsSbBAZzntrfvaGmMX")   # classes, anchors and control characters
_FLAGS = set("aimsu")
_INF = None               # an unbounded count


class UnsafePatternError(ValueError):
    """A valid regular expression that the rules above refuse (it may be harmless, but
    this check cannot prove it)."""


def is_known(pattern: str) -> bool:
    """Whether `pattern` is exactly one of the patterns numpyllm ships."""
    return pattern in KNOWN_PATTERNS


class _Ways:
    """A bound on the number of ways to match: ``const * n ** degree``."""

    __slots__ = ("const", "degree")

    def __init__(self, const: int, degree: int):
        # Capped: past the limit the exact value no longer matters, only that it is over.
        self.const, self.degree = min(const, 10 ** 12), min(degree, 64)

    def one(self) -> bool:
        return self.const == 1 and self.degree == 0

    def __mul__(self, other: "_Ways") -> "_Ways":
        return _Ways(self.const * other.const, self.degree + other.degree)

    def __add__(self, other: "_Ways") -> "_Ways":
        return _Ways(self.const + other.const, max(self.degree, other.degree))


_ONE = _Ways(1, 0)


class _Parser:
    """Recursive descent over the pattern, computing the ways of each part as it goes."""

    def __init__(self, pattern: str):
        self.p, self.i, self.depth = pattern, 0, 0

    def fail(self, message: str) -> UnsafePatternError:
        return UnsafePatternError(f"{message} (at index {self.i})")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    # alternation := sequence ('|' sequence)*
    def alternation(self) -> tuple[_Ways, bool]:
        ways, simple = self.sequence()
        branches = 1
        while self.peek() == "|":
            self.i += 1
            more, _ = self.sequence()
            ways, branches = ways + more, branches + 1
        return ways, simple and branches == 1

    # sequence := (atom quantifier?)*; `simple`: no quantifier and no alternation inside
    def sequence(self) -> tuple[_Ways, bool]:
        ways, simple = _ONE, True
        while self.peek() not in ("", "|", ")"):
            start = self.i
            atom, atom_simple = self.atom()
            quantified = self.quantifier(atom, atom_simple, start)
            if quantified is not None:
                atom, atom_simple = quantified, False
            ways, simple = ways * atom, simple and atom_simple
        return ways, simple

    def atom(self) -> tuple[_Ways, bool]:
        c = self.peek()
        if c == "(":
            return self.group()
        if c == "[":
            self.char_class()
            return _ONE, True
        if c == "\\":
            self.escape(in_class=False)
            return _ONE, True
        if c in "*+?":
            raise self.fail(f"quantifier {c!r} with nothing to repeat")
        if c == "{":
            raise self.fail("a '{' that is not a quantifier: write a literal brace as '\\{'")
        self.i += 1                  # a literal, '.', '^', '$' or '}'
        return _ONE, True

    def group(self) -> tuple[_Ways, bool]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"groups nested more than {MAX_NESTING} deep")
        self.i += 1
        if self.peek() == "?":
            self.i += 1
            c = self.peek()
            if c == "#":                           # a comment
                end = self.p.find(")", self.i)
                if end < 0:
                    raise self.fail("unterminated comment")
                self.i, self.depth = end + 1, self.depth - 1
                return _ONE, True
            if c in (":", ">", "=", "!"):
                self.i += 1
            elif c == "<" and self.peek(1) in ("=", "!"):
                self.i += 2
            elif c == "P" and self.peek(1) == "<" or c == "<":
                self.i += 2 if c == "P" else 1
                self.name()
            elif c in _FLAGS or c == "-":
                while self.peek() in _FLAGS or self.peek() == "-":
                    self.i += 1
                if self.peek() == ")":             # global flags: no content
                    self.i, self.depth = self.i + 1, self.depth - 1
                    return _ONE, True
                if self.peek() != ":":
                    raise self.fail("only the flags a, i, m, s, u are allowed")
                self.i += 1
            else:
                raise self.fail(f"the construct '(?{c}' is not allowed in a file's pattern "
                                "(backreferences, recursion, conditionals, branch resets and "
                                "other flags are refused)")
        ways, simple = self.alternation()
        if self.peek() != ")":
            raise self.fail("missing ')'")
        self.i += 1
        self.depth -= 1
        return ways, simple

    def name(self) -> None:
        start = self.i
        while self.peek().isascii() and (self.peek().isalnum() or self.peek() == "_"):
            self.i += 1
        if self.peek() != ">" or self.i == start:
            raise self.fail("a group name must be letters, digits and '_' closed by '>'")
        self.i += 1

    def escape(self, in_class: bool) -> None:
        self.i += 1
        c = self.peek()
        if c == "":
            raise self.fail("a pattern cannot end with '\\'")
        self.i += 1
        if c in "pPN":
            if self.peek() == "{":
                end = self.p.find("}", self.i)
                if end < 0 or end - self.i > 80:
                    raise self.fail(f"unterminated \\{c}{{...}}")
                self.i = end + 1
            elif c in "pP" and self.peek().isascii() and self.peek().isalpha():
                self.i += 1
            else:
                raise self.fail(f"\\{c} must be followed by {{name}}")
        elif c in "xuU":
            self.hex_digits(c)
        elif c == "0":
            while self.peek() and self.peek() in "01234567":
                self.i += 1
        elif c.isdigit() or c in "gk":
            raise self.fail(f"backreference '\\{c}' is not allowed (matching with them can "
                            "take exponential time)")
        elif c.isascii() and c.isalpha() and c not in _ESCAPE_LETTERS:
            raise self.fail(f"escape '\\{c}' is not allowed in a file's pattern")

    def hex_digits(self, kind: str) -> None:
        if kind == "x" and self.peek() == "{":
            end = self.p.find("}", self.i)
            if end < 0 or end - self.i > 9:
                raise self.fail("unterminated \\x{...}")
            self.i = end + 1
            return
        count = {"x": 2, "u": 4, "U": 8}[kind]
        digits = self.p[self.i:self.i + count]
        if len(digits) != count or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise self.fail(f"\\{kind} needs {count} hex digits")
        self.i += count

    def char_class(self) -> None:
        self.i += 1
        if self.peek() == "^":
            self.i += 1
        if self.peek() == "]":                     # a leading ']' is a literal
            self.i += 1
        while True:
            c = self.peek()
            if c == "":
                raise self.fail("unterminated character class '['")
            if c == "]":
                self.i += 1
                return
            if c == "\\":
                self.escape(in_class=True)
            elif c == "[":
                end = self.p.find(":]", self.i)
                body = self.p[self.i + 2:end].lstrip("^") if end > 0 and self.peek(1) == ":" else ""
                if not (body.isascii() and body.isalpha()):
                    raise self.fail("a '[' inside a class must start a POSIX class such as "
                                    "[:alpha:]; nested sets are refused, write '\\['")
                self.i = end + 2
            else:
                self.i += 1

    def count(self) -> int | None:
        start = self.i
        while self.peek().isascii() and self.peek().isdigit():
            self.i += 1
        if self.i == start:
            return None
        value = int(self.p[start:self.i])
        if value > MAX_COUNT:
            raise self.fail(f"a repeat count above {MAX_COUNT}")
        return value

    def quantifier(self, atom: _Ways, atom_simple: bool, start: int) -> _Ways | None:
        c = self.peek()
        if c == "{":
            self.i += 1
            low = self.count()
            high = low
            if self.peek() == ",":
                self.i += 1
                high = self.count()            # None: unbounded
                low = low or 0
            elif low is None:
                raise self.fail("a '{' that is not a quantifier: write a literal brace as '\\{'")
            if self.peek() != "}":
                raise self.fail("a '{' that is not a quantifier: write a literal brace as '\\{'")
            self.i += 1
            if high is not None and high < low:
                raise self.fail(f"quantifier {{{low},{high}}} has its bounds reversed")
            symbol = self.p[start:self.i]
        elif c in ("*", "+", "?"):
            self.i += 1
            low, high = {"*": (0, _INF), "+": (1, _INF), "?": (0, 1)}[c]
            symbol = c
        else:
            return None
        if self.peek() in ("?", "+"):          # lazy or possessive: counted as greedy
            self.i += 1
        if self.peek() in ("*", "+", "?", "{"):
            raise self.fail("a quantifier right after a quantifier")
        symbol = symbol if len(symbol) < 12 else symbol[:12] + "..."
        if high == 0:
            return _ONE
        if high == 1:
            return atom + _ONE if low == 0 else atom
        if low == high:                        # X{m}: m independent copies of X
            return _Ways(atom.const ** min(low, 64), atom.degree * low)
        if not (atom.one() and atom_simple):
            raise UnsafePatternError(f"a group repeated by {symbol!r} must match in exactly one way, "
                             f"but this one holds an alternation or a quantifier (at index "
                             f"{start})")
        return _Ways(1, 1) if high is _INF else _Ways(high - low + 1, 0)


def check_pattern(pattern: str) -> None:
    """Return if `pattern` is a known pattern or a custom one that follows the rules of the
    module docstring; raise `UnsafePatternError` if it is valid but refused, ValueError if
    it is no valid regular expression at all."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"expected a non-empty regular expression, got {pattern!r:.60}")
    if is_known(pattern):
        return
    if len(pattern) > MAX_LENGTH:
        raise UnsafePatternError(f"a custom pattern of {len(pattern)} characters (at most "
                                 f"{MAX_LENGTH})")
    parser = _Parser(pattern)
    try:
        ways, _ = parser.alternation()
        if parser.i != len(pattern):
            raise parser.fail("unbalanced ')'")
    except UnsafePatternError:
        _compile(pattern)          # a syntax error is reported as one, not as a refusal
        raise
    if ways.degree > 1 or ways.const > MAX_WAYS:
        bound = f"{ways.const}" + (f" * n**{ways.degree}" if ways.degree else "")
        raise UnsafePatternError(
            f"the pattern can match in up to {bound} ways at one position of a text of "
            f"length n (at most {MAX_WAYS} * n): it could take super-linear time to split a "
            "hostile text")
    _compile(pattern)


def _compile(pattern: str) -> None:
    # Only ever called on a pattern of at most MAX_LENGTH characters, or after the parser
    # has refused it for a reason other than its size; the `regex` parser is pure Python
    # and raises more than regex.error on odd input.
    try:
        regex.compile(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError, IndexError) as exc:
        raise ValueError(f"it does not compile: {str(exc).splitlines()[0]}") from None
