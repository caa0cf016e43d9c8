"""The character-level tokenizer."""
import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.tokenizers import (CharTokenizer, TokenizerError, UnknownCharacterError,
                                 UnknownTokenIdError, VocabularyFileError, load_tokenizer)
from numpyllm.tokenizers import char as char_module


def test_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == tuple(sorted(set("hello world")))
    assert tok.vocab_size == tok.n_vocab == 8
    assert tok.encode("") == []
    assert tok.decode([]) == ""


def test_tiny_shakespeare_has_65_characters(shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == 65
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids[:5] == [tok.token_id(c) for c in "First"]


@given(st.text(min_size=1), st.text())
def test_decode_inverts_encode(corpus, text):
    tok = CharTokenizer.from_text(corpus + text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text
    assert tok.decode(np.array(ids, dtype=np.int64)) == text


def test_lone_surrogates_and_astral_characters():
    text = "a\ud800b😀"
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_unseen_character_is_an_error_or_unk():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownCharacterError, match=r"'z' \(U\+007A\) at index 2"):
        tok.encode("abz")
    unk = CharTokenizer.from_text("abc", unk_token="[UNK]")
    assert unk.special_tokens == {"[UNK]": 3}
    assert unk.encode("azb") == [0, 3, 1]
    assert unk.decode(unk.encode("azb")) == "a[UNK]b"
    as_char = CharTokenizer.from_text("abc?", unk_token="?")   # an unk that is a character
    assert as_char.vocab_size == 4
    assert as_char.decode(as_char.encode("axc")) == "a?c"


def test_special_tokens_come_after_the_characters():
    tok = CharTokenizer.from_text("ab", special_tokens=["[PAD]", "[EOS]"], unk_token="[UNK]")
    assert tok.special_tokens == {"[PAD]": 2, "[EOS]": 3, "[UNK]": 4}
    assert tok.token_id("[EOS]") == 3 and tok.token_id("b") == 1
    assert tok.decode([0, 3]) == "a[EOS]"
    # special tokens are reached by id only: their name in text is not in the vocabulary
    assert tok.encode("[PAD]") == [4, 4, 4, 4, 4]          # five unknown characters
    with pytest.raises(UnknownCharacterError):
        CharTokenizer.from_text("ab", special_tokens=["[PAD]"]).encode("[PAD]")
    with pytest.raises(TokenizerError, match="not a token"):
        tok.token_id("[BOS]")


def test_decode_rejects_unknown_ids():
    tok = CharTokenizer.from_text("abc")
    for bad in ([3], [-1], [0, 1.5], ["a"]):
        with pytest.raises(UnknownTokenIdError):
            tok.decode(bad)


def test_construction_errors():
    with pytest.raises(TokenizerError, match="empty corpus"):
        CharTokenizer.from_text("")
    with pytest.raises(TokenizerError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(TokenizerError, match="appears twice"):
        CharTokenizer(["a", "a"])
    with pytest.raises(TokenizerError, match="distinct"):
        CharTokenizer(["a"], special_tokens=["[X]", "[X]"])
    with pytest.raises(TypeError):
        CharTokenizer(["a"], special_tokens="[X]")
    with pytest.raises(TypeError):
        CharTokenizer.from_text("a").encode(b"a")


def test_save_load_round_trip(tmp_path):
    tok = CharTokenizer.from_text("héllo\n wörld 😀", special_tokens=["[PAD]"], unk_token="[UNK]")
    path = tmp_path / "char.json"
    tok.save(path)
    assert '"format": "numpyllm-char"' in path.read_text(encoding="utf-8")
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert loaded.chars == tok.chars
        assert loaded.special_tokens == tok.special_tokens
        assert loaded.encode("wörld?") == tok.encode("wörld?")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "not a numpyllm-char file"),
    ('{"format": "numpyllm-char", "version": 2, "chars": ["a"]}', "version 2"),
    ('{"format": "numpyllm-char", "version": 1, "chars": "abc"}', "must be lists"),
    ('{"format": "numpyllm-char", "version": 1, "chars": ["a", "a"]}', "appears twice"),
    ('{"format": "numpyllm-char", "version": 1, "chars": []}', "at least one"),
])
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabularyFileError, match=message):
        CharTokenizer.load(path)


def test_docstring_examples():
    assert doctest.testmod(char_module).failed == 0


@pytest.mark.parametrize("content, message", [
    (b'{"format": "numpyllm-char", "version": 1, "chars": ["\xff"]}', r":1: expected UTF-8 text"),
    (b'{"chars": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested more than"),
    (b'{"format": "numpyllm-char", "version": NaN, "chars": ["a"]}', "NaN"),
    (b'{"format": "numpyllm-char", "format": "numpyllm-char", "version": 1, "chars": ["a"]}',
     "appears twice"),
    (b'{"format": "numpyllm-char", "version": 1, "chars": ["a"], "unk_token": ["a"]}',
     "unk_token: expected a string or null"),
    (b'{"format": "numpyllm-char", "version": 1, "chars": ["a"], "special_tokens": [1]}',
     "special tokens must be distinct non-empty strings"),
    (b'{"format": "numpyllm-char", "version": 1, "chars": [["a"]]}', "single characters"),
    (b'{"format": "numpyllm-char", "version": ' + b"9" * 5000 + b', "chars": ["a"]}',
     "an integer of 5000 digits"),
], ids=["not-utf8", "deep", "nan", "duplicate-key", "unk-type", "special-type", "char-type",
        "huge-int"])
def test_hostile_files_are_vocabulary_errors(tmp_path, content, message):
    """Issue 12: a non-UTF-8 file, hostile JSON or wrong types raise VocabularyFileError
    naming the file, never UnicodeDecodeError, RecursionError or a bare ValueError."""
    path = tmp_path / "tok.json"
    path.write_bytes(content)
    for load in (CharTokenizer.load, load_tokenizer):
        with pytest.raises(VocabularyFileError, match=message) as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
