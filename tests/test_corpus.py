"""The default corpus: deterministic, ASCII, no test suites or generated codec tables."""
import pytest

from numpyllm.data.corpus import default_corpus, stdlib_source_files


def test_default_corpus_is_deterministic_ascii_and_sized():
    try:
        a = default_corpus(max_bytes=300_000)
    except FileNotFoundError:
        pytest.skip("this Python ships no standard-library sources")
    assert a == default_corpus(max_bytes=300_000)
    assert len(a) == 300_000 and a.isascii()


def test_skips_tests_and_generated_tables():
    parts = {part for f in stdlib_source_files() for part in f.parts}
    assert not parts & {"test", "tests", "encodings", "site-packages"}


def test_no_sources_is_a_clear_error(tmp_path):
    (tmp_path / "tiny.py").write_text("x = 1\n")
    with pytest.raises(FileNotFoundError, match="--data FILE"):
        default_corpus(root=tmp_path)
