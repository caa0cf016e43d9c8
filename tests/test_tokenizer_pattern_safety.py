"""Which split patterns a tokenizer file may carry (numpyllm.tokenizers.pattern_safety)."""
import doctest

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.tokenizers import gpt2, pattern_safety
from numpyllm.tokenizers.pattern_safety import UnsafePatternError, check_pattern


@pytest.mark.parametrize("pattern", sorted(pattern_safety.KNOWN_PATTERNS))
def test_known_patterns_are_accepted(pattern):
    check_pattern(pattern)


@pytest.mark.parametrize("pattern", [
    r"\w+|\s+|[^\w\s]+", r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    r"\p{L}+|\p{N}{1,3}|[^\p{L}\p{N}]", r"(?i:'s|'t)|[[:alpha:]]+|\s", r"(?:ab)+|.", r"[]a]+",
    r"\N{LATIN SMALL LETTER A}+", r"(?P<w>\w)+", r"(?#c)x*", r"(?:a|b){9}", r"\bfoo\b|\S",
])
def test_tame_custom_patterns_are_accepted(pattern):
    check_pattern(pattern)


@pytest.mark.parametrize("pattern, message", [
    (r"(a|a)*b", "must match in exactly one way"),           # exponential backtracking
    (r"(a+)+$", "must match in exactly one way"),
    (r"(\s+)+$", "must match in exactly one way"),
    (r"(?:a|ab)*c", "must match in exactly one way"),
    (r"(?>a|b)+", "must match in exactly one way"),
    (r"\s*\s*\s*x", r"1 \* n\*\*3 ways"),                  # cubic
    (r"a?" * 20 + "a" * 20, "1048576 ways"),                 # 2**20 paths from one position
    (r"(?:a|b){10}", "1024 ways"),
    (r".{0,1000}", "1001 ways"),
    (r"(a)\1", "backreference"), (r"(?P<x>a)(?P=x)", r"\(\?P"), (r"(?R)", r"\(\?R"),
    (r"(a)(?(1)b|c)", r"\(\?\("), (r"(?x) a", r"\(\?x"), (r"(?V1)[[a]--b]", r"\(\?V"),
    (r"(?:foo){e<=1}", "not a quantifier"), (r"a{1001}", "above 1000"),
    (r"[[a]b]", "nested sets"), (r"\K", r"escape '\\K'"),
    ("(" * 40 + "a" + ")" * 40, "nested more than 32"), ("a" * 1001, "1001 characters"),
])
def test_dangerous_patterns_are_refused(pattern, message):
    with pytest.raises(UnsafePatternError, match=message):
        check_pattern(pattern)


@pytest.mark.parametrize("pattern", ["(unclosed", "[a", "a**", "\\", "a{2,1}", "a)"])
def test_invalid_patterns_raise_value_error(pattern):
    with pytest.raises(ValueError):
        check_pattern(pattern)


@given(st.text(alphabet=st.sampled_from(list("ab()|*+?{},[]^$\\.:-<>=!#PpLNsdw0123 "))
               | st.characters(), max_size=40))
def test_any_text_gives_a_value_error_or_a_compilable_pattern(text):
    """Whatever the text, the check ends with None or a ValueError; what it accepts the
    engine compiles, and the count of ways it promised holds for the parser."""
    try:
        check_pattern(text)
    except ValueError:
        return
    regex.compile(text)


def test_docstring_example():
    assert doctest.testmod(pattern_safety).failed == 0
