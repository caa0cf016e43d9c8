"""numpyllm's GPT-2 tokenizer against tiktoken's, built offline from the same files."""
import functools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpyllm.tokenizers import BPETokenizer, gpt2

tiktoken = pytest.importorskip("tiktoken")
tiktoken_load = pytest.importorskip("tiktoken.load")


@functools.lru_cache(maxsize=None)
def _pair(enc_path: str, bpe_path: str):
    # TIKTOKEN_CACHE_DIR="" stops tiktoken from copying the files into a cache directory.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")
        ranks = tiktoken_load.data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=bpe_path, encoder_json_file=enc_path)
    reference = tiktoken.Encoding(name="gpt2-local", pat_str=gpt2.GPT2_PATTERN,
                                  mergeable_ranks=ranks,
                                  special_tokens={"<|endoftext|>": 50256},
                                  explicit_n_vocab=50257)
    return BPETokenizer.from_gpt2(enc_path, bpe_path), reference


@pytest.fixture
def pair(gpt2_files):
    return _pair(*map(os.fspath, gpt2_files))


# Unicode, whitespace runs, digits, contractions and emoji, mixed.
texts = st.lists(st.one_of(
    st.sampled_from([" ", "   ", "\n", "\n\n\n", "\t", " \n", "\r\n", "\u00a0", "\u3000",
                     "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "don't", "I'LL",
                     "0", "42", "1234567890", " 3.14", "٣٤", "😀", "👨‍👩‍👧", "🇫🇷", "👍🏽",
                     "é", "naïve", "日本語", "Привет", "مرحبا", " Hello", "world", "!!!",
                     "...", "<|endoftext|>", "\x00", "\ufffd"]),
    st.text(max_size=8),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=4)), max_size=25).map("".join)


def test_ids_equal_tiktoken_on_tiny_shakespeare(pair, shakespeare_path):
    ours, reference = pair
    text = shakespeare_path.read_text(encoding="utf-8")
    expected = reference.encode_ordinary(text)
    assert ours.encode(text) == expected
    assert ours.decode(expected) == text


# `pair` is function-scoped only because conftest's gpt2_files is; its value is cached
# and never mutated, so sharing it across generated inputs is safe.
shared_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@shared_fixture
@given(texts)
def test_ids_equal_tiktoken_on_generated_text(pair, text):
    ours, reference = pair
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    assert ours.encode(text, allowed_special="all") == \
        reference.encode(text, allowed_special="all")
    assert ours.encode(text, disallowed_special=()) == \
        reference.encode(text, disallowed_special=())


@shared_fixture
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ids_equal_tiktoken_on_ascii_text(pair, text):
    # ASCII text takes the faster stdlib-`re` split (gpt2.ASCII_TWINS)
    ours, reference = pair
    assert ours.encode(text, disallowed_special=()) == reference.encode(text, disallowed_special=())


@shared_fixture
@given(st.lists(st.integers(0, 50256), max_size=20))
def test_decode_bytes_equals_tiktoken(pair, ids):
    ours, reference = pair
    assert ours.decode_bytes(ids) == reference.decode_bytes(ids)
    assert ours.decode(ids) == reference.decode(ids)


def test_special_token_errors_match(pair):
    ours, reference = pair
    with pytest.raises(ValueError):
        reference.encode("x<|endoftext|>")
    with pytest.raises(ValueError):
        ours.encode("x<|endoftext|>")


def test_long_repeated_chunks_equal_tiktoken(pair):
    ours, reference = pair
    for text in ["a" * 5000, "1" * 3000, " " * 4000 + "x", "🙂" * 700, "ab" * 2000]:
        assert ours.encode(text) == reference.encode(text)


def test_tiktoken_reads_our_rank_file(pair, tmp_path):
    ours, reference = pair
    ours.save_tiktoken(tmp_path / "gpt2.tiktoken")
    assert tiktoken_load.load_tiktoken_bpe(str(tmp_path / "gpt2.tiktoken")) == \
        reference._mergeable_ranks
