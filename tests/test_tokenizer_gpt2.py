"""GPT-2's vocabulary files, tiktoken rank files and the split patterns."""
import functools
import json
import re

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.tokenizers import BPETokenizer, VocabularyFileError, gpt2, load_tokenizer

# Text that stresses the split patterns: whitespace runs, contractions, digits, emoji.
pattern_text = st.lists(st.one_of(
    st.sampled_from([" ", "  ", "\n", "\n\n", "\t", " \n ", "'s", "'ll", "'T", "123",
                     "4567", "😀", "👍🏽", "é", "日本", "a", "Hello", " world", ".", "!?",
                     "\r\n", "\u00a0", "x'y"]),
    st.text(max_size=5)), max_size=20).map("".join)


@functools.lru_cache(maxsize=None)
def _from_gpt2(enc: str, bpe: str) -> BPETokenizer:
    return BPETokenizer.from_gpt2(enc, bpe)    # parsed once per session; tests never mutate it


@pytest.fixture
def gpt2_tok(gpt2_files):
    return _from_gpt2(*map(str, gpt2_files))


# ---------------------------------------------------------------------- GPT-2's files
def test_gpt2_ids(gpt2_tok):
    assert gpt2_tok.vocab_size == gpt2_tok.n_vocab == 50257
    assert gpt2_tok.encode("Hello world") == [15496, 995]
    assert gpt2_tok.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]
    assert gpt2_tok.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2_tok.encode(" the") == [262]
    assert gpt2_tok.decode([15496, 995, 50256]) == "Hello world<|endoftext|>"
    assert gpt2_tok.token_bytes(50255) == gpt2_tok.decode_bytes([50255])
    assert len(gpt2_tok.merges) == 50000
    assert gpt2_tok.merges[0] == (b" ", b"t")


def test_gpt2_special_token_is_disallowed_by_default(gpt2_tok):
    from numpyllm.tokenizers import DisallowedSpecialTokenError
    with pytest.raises(DisallowedSpecialTokenError):
        gpt2_tok.encode("end<|endoftext|>")
    assert len(gpt2_tok.encode("end<|endoftext|>", disallowed_special=())) > 2


def test_gpt2_save_load_and_tiktoken_file(tmp_path, gpt2_tok, gpt2_files):
    text = "Hello world! It's 2024 ... 😀 naïve\n\n  spaces"
    gpt2_tok.save(tmp_path / "gpt2.bpe")
    assert load_tokenizer(tmp_path / "gpt2.bpe").encode(text) == gpt2_tok.encode(text)
    gpt2_tok.save_tiktoken(tmp_path / "gpt2.tiktoken")
    from_rank_file = BPETokenizer.from_tiktoken(
        tmp_path / "gpt2.tiktoken", special_tokens=gpt2.GPT2_SPECIAL_TOKENS)
    assert from_rank_file.mergeable_ranks == gpt2_tok.mergeable_ranks
    assert from_rank_file.encode(text) == gpt2_tok.encode(text)
    assert load_tokenizer(tmp_path / "gpt2.tiktoken").encode(text) == gpt2_tok.encode(text)
    assert load_tokenizer(gpt2_files[0].parent).encode(text) == gpt2_tok.encode(text)


# -------------------------------------------------------- small files in GPT-2's format
def _gpt2_style_files(tmp_path, merges=(("a", "b"), ("Ġ", "ab")), extra=None):
    """A tiny vocabulary written exactly as GPT-2's files are."""
    table = gpt2.byte_to_unicode()
    byte_order = sorted(range(256), key=lambda b: (table[b] != chr(b), ord(table[b])))
    encoder = {table[b]: i for i, b in enumerate(byte_order)}
    for i, (left, right) in enumerate(merges):
        encoder[left + right] = 256 + i
    encoder["<|endoftext|>"] = len(encoder)
    encoder.update(extra or {})
    enc, bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    enc.write_text(json.dumps(encoder), encoding="utf-8")
    bpe.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
                   encoding="utf-8")
    return enc, bpe


def test_from_gpt2_on_small_files(tmp_path):
    tok = BPETokenizer.from_gpt2(*_gpt2_style_files(tmp_path))
    assert tok.encode(" ab") == [257]
    assert tok.special_tokens == {"<|endoftext|>": 258}
    assert tok.encode("!") == [0]                    # GPT-2 puts '!' first, not byte 0
    assert load_tokenizer(tmp_path).encode(" ab") == [257]


def test_malformed_gpt2_files(tmp_path):
    enc, bpe = _gpt2_style_files(tmp_path)
    good_bpe = bpe.read_text(encoding="utf-8")
    bpe.write_text(good_bpe + "only-one-field\n", encoding="utf-8")
    with pytest.raises(VocabularyFileError, match="vocab.bpe:4: expected a merge"):
        BPETokenizer.from_gpt2(enc, bpe)
    bpe.write_text(good_bpe + "a \u4e00\n", encoding="utf-8")
    with pytest.raises(VocabularyFileError, match="vocab.bpe:4: .*byte alphabet"):
        BPETokenizer.from_gpt2(enc, bpe)
    bpe.write_text(good_bpe + "b a\n", encoding="utf-8")     # a merge encoder.json lacks
    with pytest.raises(VocabularyFileError, match="do not describe the same vocabulary"):
        BPETokenizer.from_gpt2(enc, bpe)
    bpe.write_text(good_bpe, encoding="utf-8")
    enc.write_text("{not json", encoding="utf-8")
    with pytest.raises(VocabularyFileError, match="not valid JSON"):
        BPETokenizer.from_gpt2(enc, bpe)
    enc.write_text('["a list"]', encoding="utf-8")
    with pytest.raises(VocabularyFileError, match="JSON object"):
        BPETokenizer.from_gpt2(enc, bpe)
    enc2, bpe2 = _gpt2_style_files(tmp_path, extra={"zz": 7})     # id clash
    with pytest.raises(VocabularyFileError, match="same vocabulary"):
        BPETokenizer.from_gpt2(enc2, bpe2)


def test_malformed_tiktoken_files(tmp_path):
    path = tmp_path / "r.tiktoken"
    good = BPETokenizer()
    good.save_tiktoken(path)
    assert gpt2.read_tiktoken_ranks(path) == good.mergeable_ranks
    lines = path.read_bytes().splitlines()
    cases = [
        (lines + [b"!!notbase64 300"], "expected 'base64-token rank'"),
        (lines + [b"YWI="], "expected 'base64-token rank'"),
        (lines + [b"YWI= x"], "expected 'base64-token rank'"),
        (lines + [b"YWI= 5"], "appeared before"),
        (lines + [lines[0].split()[0] + b" 999"], "appeared before"),
        (lines[1:], "256 single bytes"),
        ([], "no tokens"),
    ]
    for content, message in cases:
        path.write_bytes(b"\n".join(content) + b"\n")
        with pytest.raises(VocabularyFileError, match=message):
            BPETokenizer.from_tiktoken(path)


# --------------------------------------------------------------------- split patterns
@given(pattern_text)
def test_tiktoken_gpt2_pattern_equals_the_original(text):
    assert regex.findall(gpt2.GPT2_PATTERN, text) == \
        regex.findall(gpt2.GPT2_ORIGINAL_PATTERN, text)


@given(pattern_text)
def test_patterns_cover_the_text(text):
    for name in ("gpt2", "gpt4", "gpt4o"):
        assert "".join(regex.findall(gpt2.resolve_pattern(name), text)) == text


ascii_text = st.lists(st.one_of(
    st.sampled_from([" ", "  ", "\n", "\n\n", "\t", " \n ", "\r\n", "\x0b", "\x0c", "\x1c",
                     "'s", "'LL", "'re", "x'y", "123", "4567", "Hello", " world", ".", "!?", "_"]),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=4)), max_size=25).map("".join)


@given(ascii_text)
def test_ascii_twins_split_like_the_patterns(text):
    for pattern, twin in gpt2.ASCII_TWINS.items():
        assert re.findall(twin, text) == regex.findall(pattern, text)
    for name in ("gpt2", "gpt4"):
        assert BPETokenizer(pattern=name).split(text) == \
            regex.findall(gpt2.resolve_pattern(name), text)


def test_pattern_names():
    assert gpt2.resolve_pattern("gpt4") == gpt2.resolve_pattern("cl100k") == gpt2.CL100K_PATTERN
    assert gpt2.resolve_pattern("gpt4o") == gpt2.O200K_PATTERN
    assert gpt2.resolve_pattern(r"\w+") == r"\w+"
    assert gpt2.pattern_name(gpt2.CL100K_PATTERN) == "cl100k"
    assert gpt2.pattern_name(r"\w+") is None
    with pytest.raises(ValueError, match="pattern"):
        gpt2.resolve_pattern("")


def test_byte_alphabet_is_a_printable_bijection():
    table = gpt2.byte_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    every_byte = bytes(range(256))
    assert gpt2.text_to_token(gpt2.token_to_text(every_byte)) == every_byte


# ------------------------------------------------------ issue 12: hostile files refused
def test_hostile_gpt2_files(tmp_path):
    enc, bpe = _gpt2_style_files(tmp_path, extra={"<|endoftext|>": 99999999999})
    with pytest.raises(VocabularyFileError, match=r"encoder\.json: special token "
                                                  r"'<\|endoftext\|>': expected an id from 258"):
        BPETokenizer.from_gpt2(enc, bpe)
    enc, bpe = _gpt2_style_files(tmp_path, extra={"<|a|>": 300, "<|b|>": 300})
    with pytest.raises(VocabularyFileError, match="expected an id of its own"):
        load_tokenizer(tmp_path)
    enc, bpe = _gpt2_style_files(tmp_path, extra={"<|a|>": 5})
    with pytest.raises(VocabularyFileError, match="already taken"):
        load_tokenizer(tmp_path)
    enc, bpe = _gpt2_style_files(tmp_path)
    bpe.write_bytes(bpe.read_bytes() + b"a \xfe\n")
    with pytest.raises(VocabularyFileError, match=r"vocab\.bpe:4: expected UTF-8 text"):
        load_tokenizer(tmp_path)
    enc, bpe = _gpt2_style_files(tmp_path)
    enc.write_bytes(b"\xff\xfe{}")
    with pytest.raises(VocabularyFileError, match=r"encoder\.json:1: expected UTF-8 text"):
        load_tokenizer(tmp_path)
    enc.write_text('{"a": 1e999}', encoding="utf-8")
    with pytest.raises(VocabularyFileError, match="does not fit a 64-bit float"):
        load_tokenizer(tmp_path)


@pytest.mark.parametrize("rank, message", [
    (b"\xc2\xb2", "expected 'base64-token rank' with a decimal rank"),     # '²'.isdigit()
    (b"+300", "expected 'base64-token rank'"),
    (b"3_00", "expected 'base64-token rank'"),
    (b"9" * 5000, "expected 'base64-token rank'"),
    (b"99999999999", r":257: rank: expected each of 0\.\.256 once"),
    (b"\xff", "expected 'base64-token rank'"),
])
def test_hostile_tiktoken_ranks(tmp_path, rank, message):
    path = tmp_path / "r.tiktoken"
    BPETokenizer().save_tiktoken(path)
    path.write_bytes(path.read_bytes() + b"YWI= " + rank + b"\n")
    for load in (BPETokenizer.from_tiktoken, load_tokenizer):
        with pytest.raises(VocabularyFileError, match=message):
            load(path)
