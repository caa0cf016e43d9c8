"""Byte-level BPE: the incremental trainer against a naive one, encode/decode
properties, special tokens, the save format and its error cases."""
import doctest
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyllm.tokenizers as tokenizers
from numpyllm.tokenizers import (BPETokenizer, DisallowedSpecialTokenError, TokenizerError,
                                 UnknownTokenIdError, VocabularyFileError, learn_merges)
from numpyllm.tokenizers import bpe as bpe_module
from numpyllm.tokenizers import bpe_merge
from numpyllm.tokenizers import trainer as trainer_module

CORPUS = ("the quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs!\n"
          "It's 2024 and they'll say: 'don't stop' -- 1234567 times.\n") * 3


def naive_learn_merges(chunk_counts, num_tokens, min_frequency=1):
    """The textbook trainer: recount every pair of the whole corpus after each merge.

    Same rules as numpyllm.tokenizers.trainer: overlapping pairs count, merges rewrite
    left to right, ties go to the smallest (left, right) ids, and a pair spelling an
    existing token becomes that token.
    """
    vocab = [bytes([i]) for i in range(256)]
    by_bytes = {t: i for i, t in enumerate(vocab)}
    words = {tuple(c): n for c, n in chunk_counts.items() if n > 0}
    merges = []
    while len(vocab) < num_tokens:
        counts = Counter()
        for w, n in words.items():
            for pair in zip(w, w[1:]):
                counts[pair] += n
        if not counts:
            break
        a, b = min(counts, key=lambda p: (-counts[p], p))
        if counts[(a, b)] < min_frequency:
            break
        merged = vocab[a] + vocab[b]
        new = by_bytes.get(merged)
        if new is None:
            new = len(vocab)
            vocab.append(merged)
            by_bytes[merged] = new
        merges.append((a, b, new))
        rewritten = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            rewritten[tuple(out)] = n
        words = rewritten
    return merges, vocab


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer(special_tokens=["<|endoftext|>", "[PAD]"]).train(CORPUS, 300)


# Small alphabets make many repeated and overlapping pairs, where trainers disagree first.
chunks = st.one_of(
    st.text(alphabet="ab", min_size=1, max_size=12),
    st.text(alphabet="abc ", min_size=1, max_size=8),
    st.text(min_size=1, max_size=6),
)
chunk_counts = st.dictionaries(chunks.map(lambda s: s.encode("utf-8")),
                               st.integers(1, 5), min_size=1, max_size=12)


# ----------------------------------------------------------------------------- trainer
@given(chunk_counts, st.integers(256, 300), st.integers(1, 3))
def test_incremental_trainer_equals_naive(counts, num_tokens, min_frequency):
    merges, vocab = learn_merges(counts, num_tokens, min_frequency=min_frequency)
    ref_merges, ref_vocab = naive_learn_merges(counts, num_tokens, min_frequency)
    assert [tuple(m) for m in merges] == ref_merges
    assert vocab == ref_vocab


@given(st.lists(st.text(alphabet="ab cd\n", max_size=30), min_size=1, max_size=6))
def test_train_uses_the_chunks_of_each_text(texts):
    text_counts = Counter()
    for t in texts:
        text_counts.update(BPETokenizer().split(t))
    if not text_counts:
        with pytest.raises(TokenizerError, match="empty corpus"):
            BPETokenizer().train(texts, 270)
        return
    tok = BPETokenizer().train(texts, 270)
    _, ref_vocab = naive_learn_merges({c.encode(): n for c, n in text_counts.items()}, 270)
    assert tok.mergeable_ranks == {t: i for i, t in enumerate(ref_vocab)}


def test_tie_breaking_prefers_the_smallest_pair_of_ids():
    # "cd" and "ab" both occur twice: (97, 98) = "ab" wins, whatever the dict order.
    merges, _ = learn_merges({b"cd": 2, b"ab": 2}, 257)
    assert merges == [(97, 98, 256)]
    merges, _ = learn_merges({b"ab": 2, b"cd": 3}, 257)
    assert merges == [(99, 100, 256)]


def test_overlapping_pairs_count_and_merge_left_to_right():
    merges, vocab = learn_merges({b"aaa": 1}, 258)
    assert [vocab[m.new] for m in merges] == [b"aa", b"aaa"]


def test_progress_reports_each_new_token():
    calls = []
    learn_merges({b"abcdef": 3}, 260, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


@given(st.text(alphabet="abcde \n", min_size=60, max_size=200), st.integers(258, 290))
def test_trained_vocabulary_has_the_requested_size(text, vocab_size):
    tok = BPETokenizer(special_tokens=["[BOS]", "[EOS]"])
    possible = len(naive_learn_merges(
        Counter(c.encode() for c in tok.split(text)), 10_000)[1])
    tok.train(text, vocab_size)
    # Exactly the size asked for, specials included, whenever the corpus has that many
    # merges to give; otherwise every merge it has.
    assert tok.vocab_size == min(vocab_size, possible + 2)
    assert sorted(tok.special_tokens.values()) == [tok.vocab_size - 2, tok.vocab_size - 1]


def test_special_tokens_get_ids_after_the_merges(trained):
    assert trained.vocab_size == 300
    assert trained.special_tokens == {"<|endoftext|>": 298, "[PAD]": 299}
    assert max(trained.mergeable_ranks.values()) == 297
    trained2 = BPETokenizer(special_tokens=["[X]"]).train(CORPUS, 300)
    trained2.add_special_tokens(["<SYSTEM>", "<USER>", "<ASSISTANT>"])
    assert trained2.special_tokens == {"[X]": 299, "<SYSTEM>": 300, "<USER>": 301,
                                       "<ASSISTANT>": 302}
    assert trained2.vocab_size == 303


def test_min_frequency_stops_training_early():
    tok = BPETokenizer().train("ab ab ab cd", 1000, min_frequency=2)
    assert set(tok.mergeable_ranks) - {bytes([b]) for b in range(256)} == {b"ab", b" ab"}


def test_training_errors():
    with pytest.raises(TokenizerError, match="at least 256"):
        BPETokenizer().train(CORPUS, 255)
    with pytest.raises(TokenizerError, match="at least 256"):
        BPETokenizer(special_tokens=["[PAD]"]).train(CORPUS, 256)
    with pytest.raises(TokenizerError, match="empty corpus"):
        BPETokenizer().train("", 300)
    with pytest.raises(TokenizerError, match="empty corpus"):
        BPETokenizer().train(iter([]), 300)
    with pytest.raises(ValueError, match="min_frequency"):
        BPETokenizer().train(CORPUS, 300, min_frequency=0)
    with pytest.raises(ValueError, match="at least 256"):
        learn_merges({b"ab": 1}, 10)


# ---------------------------------------------------------------------------- encoding
@given(st.text())
def test_decode_inverts_encode(trained, text):
    assert trained.decode(trained.encode(text)) == text
    assert trained.decode_bytes(trained.encode_ordinary(text)) == text.encode("utf-8")


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), max_size=8))
def test_encode_is_a_function_of_the_text_alone(texts):
    warm = BPETokenizer().train(CORPUS, 320)
    for t in reversed(texts):                   # fill the cache in another order first
        warm.encode(t)
    fresh = BPETokenizer(warm.mergeable_ranks)
    uncached = BPETokenizer(warm.mergeable_ranks, cache_size=0)
    for t in texts:
        assert warm.encode(t) == fresh.encode(t) == uncached.encode(t)


@given(st.text(alphabet="the fox jumps.\n'123", max_size=40))
def test_encode_merges_inside_chunks_only(trained, text):
    chunks = trained.split(text)
    assert "".join(chunks) == text
    assert trained.encode(text) == [i for c in chunks for i in trained.encode(c)]
    assert trained.encode(" fox") == [trained.token_id(" fox")]


@given(st.binary(min_size=1, max_size=700))
def test_long_chunk_merge_equals_short_merge(piece):
    ranks = BPETokenizer().train([CORPUS, "aaaaaaaa abababab 0000000"], 330).mergeable_ranks
    # A piece of repeated corpus bytes exercises real merges; raw bytes the rest.
    for p in (piece, (CORPUS.encode() * 3)[:len(piece)], b"a" * len(piece)):
        assert bpe_merge.merge_long(p, ranks) == bpe_merge.merge_short(p, ranks)


def test_very_long_chunk_is_not_quadratic():
    tok = BPETokenizer().train("aaaa bbbb " * 20, 270)
    text = "a" * 200_000
    ids = tok.encode(text)
    assert tok.decode(ids) == text


def test_decode_bytes_keeps_partial_utf8(trained):
    ids = trained.encode("é🙂")
    assert trained.decode_bytes(ids[:1]) == "é".encode()[:1]
    assert trained.decode(ids[:1]) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        trained.decode(ids[:1], errors="strict")
    assert trained.decode(np.array(ids)) == "é🙂"


def test_decode_rejects_unknown_ids(trained):
    for bad in ([300], [-1], [5, 10**9], ["a"]):
        with pytest.raises(UnknownTokenIdError, match="not in the vocabulary"):
            trained.decode(bad)
    with pytest.raises(UnknownTokenIdError, match="position 1"):
        trained.decode([104, 9999])
    with pytest.raises(UnknownTokenIdError, match="position 2"):
        trained.decode(iter([104, 105, 9999]))     # an iterator is read once


def test_decode_accepts_iterators_arrays_and_special_ids(trained):
    ids = trained.encode("hi<|endoftext|>", allowed_special="all")
    assert trained.decode(iter(ids)) == "hi<|endoftext|>"
    assert trained.decode(np.array(ids, dtype=np.uint16)) == "hi<|endoftext|>"
    assert trained.decode(i for i in ids) == "hi<|endoftext|>"


# ---------------------------------------------------------------------- special tokens
def test_special_tokens_follow_tiktokens_rule(trained):
    eot = trained.special_tokens["<|endoftext|>"]
    text = "hi<|endoftext|>there"
    with pytest.raises(DisallowedSpecialTokenError, match="<\\|endoftext\\|>"):
        trained.encode(text)
    ids = trained.encode(text, allowed_special={"<|endoftext|>"})
    assert ids == trained.encode("hi") + [eot] + trained.encode("there")
    assert trained.encode(text, allowed_special="all") == ids
    as_text = trained.encode(text, disallowed_special=())
    assert eot not in as_text and trained.decode(as_text) == text
    assert trained.encode_ordinary(text) == as_text
    # allowed one, disallowed the other
    with pytest.raises(DisallowedSpecialTokenError, match="PAD"):
        trained.encode("<|endoftext|>[PAD]", allowed_special={"<|endoftext|>"})
    assert trained.decode(trained.encode("a[PAD]b<|endoftext|>", allowed_special="all")) == \
        "a[PAD]b<|endoftext|>"


def test_special_token_arguments_are_checked(trained):
    with pytest.raises(TokenizerError, match="unregistered"):
        trained.encode("x", allowed_special={"<nope>"})
    with pytest.raises(TypeError):
        trained.encode("x", allowed_special="<|endoftext|>")
    with pytest.raises(TypeError):
        trained.encode(b"bytes")


def test_longest_special_token_wins():
    tok = BPETokenizer(special_tokens=["<A>", "<A><B>"])
    assert tok.encode("<A><B><A>", allowed_special="all") == [257, 256]


def test_register_special_tokens():
    tok = BPETokenizer()
    assert tok.add_special_tokens({"<|endoftext|>": 1000}) == {"<|endoftext|>": 1000}
    assert tok.vocab_size == 1001
    assert tok.add_special_tokens(["[BOS]", "[EOS]", "[UNK]"]) == {
        "[BOS]": 1001, "[EOS]": 1002, "[UNK]": 1003}
    assert tok.add_special_tokens(["[BOS]"]) == {"[BOS]": 1001}   # again: no change
    assert tok.token_id("[EOS]") == 1002 and tok.token_bytes(1002) == b"[EOS]"
    with pytest.raises(UnknownTokenIdError):
        tok.decode([500])                       # a gap between ordinary and special ids
    with pytest.raises(TokenizerError, match="already taken"):
        tok.add_special_tokens({"<X>": 65})
    with pytest.raises(TokenizerError, match="already taken"):
        tok.add_special_tokens({"<X>": 1001})
    with pytest.raises(TokenizerError, match="already has id"):
        tok.add_special_tokens({"[BOS]": 7000})
    with pytest.raises(TypeError):
        tok.add_special_tokens("[PAD]")
    with pytest.raises(TokenizerError, match="non-empty"):
        tok.add_special_tokens([""])


def test_gpt4_pattern_is_selectable():
    tok = BPETokenizer(pattern="gpt4")
    assert tok.split("hello   world 12345") == ["hello", "  ", " world", " ", "123", "45"]
    assert BPETokenizer(pattern="gpt2").split("12345") == ["12345"]
    with pytest.raises(ValueError, match="invalid pre-tokenisation pattern"):
        BPETokenizer(pattern="(unclosed")


# ------------------------------------------------------------------------ save / load
def test_save_load_round_trip(tmp_path, trained):
    path = tmp_path / "tok.bpe"
    trained.save(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("numpyllm-bpe 1\n")
    assert "pattern gpt2\n" in text and '299 "[PAD]"' in text
    # every merged token is shown with the pair it came from: "<id> <token> <left> <right>"
    to_text = tokenizers.gpt2.token_to_text
    left, right = trained.merges[0]
    assert f"256 {to_text(left + right)} {to_text(left)} {to_text(right)}\n" in text
    loaded = BPETokenizer.load(path)
    assert loaded.mergeable_ranks == trained.mergeable_ranks
    assert loaded.special_tokens == trained.special_tokens
    assert loaded.merges == trained.merges
    assert loaded.encode(CORPUS + "<|endoftext|>", allowed_special="all") == \
        trained.encode(CORPUS + "<|endoftext|>", allowed_special="all")
    assert tokenizers.load_tokenizer(path).mergeable_ranks == trained.mergeable_ranks


def test_save_load_custom_pattern(tmp_path):
    tok = BPETokenizer(pattern=r"\w+|\s+|[^\w\s]+").train(CORPUS, 270)
    tok.save(tmp_path / "t.bpe")
    loaded = BPETokenizer.load(tmp_path / "t.bpe")
    assert loaded.pattern == tok.pattern
    assert loaded.encode(CORPUS) == tok.encode(CORPUS)


def _write(tmp_path, text):
    path = tmp_path / "bad.bpe"
    path.write_text(text, encoding="utf-8")
    return path


def _valid_lines():
    lines = ["numpyllm-bpe 1", "pattern gpt2", "tokens 257"]
    lines += [f"{i} {tokenizers.gpt2.token_to_text(bytes([i]))}" for i in range(256)]
    lines += ["256 ab a b", "specials 1", '257 "[PAD]"']
    return lines


@pytest.mark.parametrize("edit, message", [
    (lambda L: ["something else"] + L[1:], "not a numpyllm-bpe file"),
    (lambda L: ["numpyllm-bpe 9"] + L[1:], "version '9' is not supported"),
    (lambda L: L[:1] + ["pattern nonsense"] + L[2:], "unknown pattern name"),
    (lambda L: L[:1] + ["pattern-regex not-json"] + L[2:], "JSON string"),
    (lambda L: L[:2] + ["tokens many"] + L[3:], "followed by a count"),
    (lambda L: L[:100], "file ends early"),
    (lambda L: L[:10] + ["7 a b c d e"] + L[11:], r":11: expected '<id> <token>"),
    (lambda L: L[:10] + ["x a"] + L[11:], "expected a token id"),
    (lambda L: L[:10] + ["7 a a"] + L[11:], r"expected '<id> <token>"),
    (lambda L: L[:10] + ["7 \u4e00"] + L[11:], "byte alphabet"),
    (lambda L: L[:259] + ["256 ab b a"] + L[260:], "does not make"),
    (lambda L: L[:259] + ["256 a"] + L[260:], "appears twice"),
    (lambda L: L[:259] + ["7 ab"] + L[260:], "id 7 is given to two tokens"),
    (lambda L: L[:-1] + ["257 [PAD]"], "expected '<id> \"<name>\"'"),
    (lambda L: L[:-1] + ['65 "[PAD]"'], "already taken"),
    (lambda L: L + ["trailing"], "unexpected content"),
    (lambda L: L[:3] + L[4:], ":260: expected a token id, got 'specials'"),
    (lambda L: L[:2] + ["tokens 256"] + L[4:], r"expected each of 0\.\.255 once"),
    (lambda L: L[:3] + ["0 ba"] + L[4:], "all 256 single bytes"),
])
def test_malformed_files_are_clear_errors(tmp_path, edit, message):
    ok = BPETokenizer.load(_write(tmp_path, "\n".join(_valid_lines()) + "\n"))
    assert ok.encode("ab", ) == [256]
    with pytest.raises(VocabularyFileError, match=message):
        BPETokenizer.load(_write(tmp_path, "\n".join(edit(_valid_lines())) + "\n"))


def test_constructor_validates_ranks():
    with pytest.raises(VocabularyFileError, match="256 single bytes"):
        BPETokenizer({b"a": 0})
    ranks = {bytes([b]): b for b in range(256)}
    with pytest.raises(VocabularyFileError, match="invalid id"):
        BPETokenizer({**ranks, b"ab": -3})
    with pytest.raises(VocabularyFileError, match="makes no token"):
        BPETokenizer(ranks, merges=[(b"a", b"b")])
    with pytest.raises(ValueError, match="cache_size"):
        BPETokenizer(cache_size=-1)


def test_load_tokenizer_rejects_unknown_files(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("hello")
    with pytest.raises(VocabularyFileError, match="not a tokenizer file"):
        tokenizers.load_tokenizer(path)
    with pytest.raises(VocabularyFileError, match="encoder.json"):
        tokenizers.load_tokenizer(tmp_path)


@pytest.mark.parametrize("module", [tokenizers, bpe_module, bpe_merge, trainer_module,
                                    tokenizers.errors, tokenizers.gpt2,
                                    tokenizers.special_tokens, tokenizers.pretokenize])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


# ------------------------------------------------------ issue 12: hostile files refused
@pytest.mark.parametrize("edit, message", [
    (lambda L: L[:10] + ["\u00b2 a"] + L[11:], r":11: expected a token id, got '²'"),   # isdigit()
    (lambda L: L[:10] + ["\u0663 a"] + L[11:], r":11: expected a token id, got '٣'"),
    (lambda L: L[:10] + ["+7 a"] + L[11:], "expected a token id"),
    (lambda L: L[:10] + ["9" * 5000 + " a"] + L[11:], "expected a token id"),
    (lambda L: L[:2] + ["tokens \u00b2"] + L[3:], "followed by a count"),
    (lambda L: L[:10] + ["99999999999 a"] + L[11:], r":11: token id: expected each of 0\.\.256"),
    (lambda L: L[:-1] + ['99999999999 "[PAD]"'], r":262: special token '\[PAD\]': expected an id "
                                                 r"from 257 .* below 1282"),
    (lambda L: L[:-2] + ["specials 2", '257 "[PAD]"', '257 "[EOS]"'], "id of its own"),
    (lambda L: L[:-2] + ["specials 2", '257 "[PAD]"', '258 "[PAD]"'], "appears twice"),
    (lambda L: L[:-1] + ['257 ' + "[" * 3000 + "]" * 3000], "nested more than"),
    (lambda L: L[:-1] + ['257 "\\ud800" "x"'], r"""expected '<id> "<name>"'"""),
    (lambda L: L[:1] + ['pattern-regex "(unclosed"'] + L[2:], ":2: pattern-regex: expected a "
                                                              "regular expression, but it does "
                                                              "not compile"),
    (lambda L: L[:1] + ['pattern-regex "(a|a)*b"'] + L[2:], ":2: pattern-regex: refused: a group "
                                                            "repeated by"),
    (lambda L: L[:1] + ['pattern-regex "(\\\\s+)+$"'] + L[2:], "pattern-regex: refused"),
    (lambda L: L[:1] + ['pattern-regex "(.)\\\\1"'] + L[2:], "backreference"),
    (lambda L: L[:1] + ['pattern-regex ' + "[" * 3000 + "]" * 3000] + L[2:], "nested more than"),
])
def test_hostile_files_are_refused(tmp_path, edit, message):
    with pytest.raises(VocabularyFileError, match=message) as info:
        BPETokenizer.load(_write(tmp_path, "\n".join(edit(_valid_lines())) + "\n"))
    assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_non_utf8_file_is_a_vocabulary_error(tmp_path):
    path = tmp_path / "bad.bpe"
    path.write_bytes(("\n".join(_valid_lines()) + "\n").encode().replace(b"256 ab", b"256 \xffb"))
    with pytest.raises(VocabularyFileError, match=r"bad\.bpe:260: expected UTF-8 text, got byte 0xff"):
        BPETokenizer.load(path)
    with pytest.raises(VocabularyFileError, match="UTF-8"):
        tokenizers.load_tokenizer(path)


def test_special_ids_may_leave_a_few_ids_unused(tmp_path):
    """cl100k-style vocabularies put special tokens a few ids past the ordinary ones."""
    lines = _valid_lines()[:-2] + ["specials 2", '273 "[PAD]"', '1282 "[EOS]"']
    tok = BPETokenizer.load(_write(tmp_path, "\n".join(lines) + "\n"))
    assert tok.special_tokens == {"[PAD]": 273, "[EOS]": 1282}
    assert tok.vocab_size - (257 + 2) == 1024           # ids unused: the most allowed
    lines[-1] = '1283 "[EOS]"'
    with pytest.raises(VocabularyFileError, match="at most 1024 unused ids"):
        BPETokenizer.load(_write(tmp_path, "\n".join(lines) + "\n"))


def test_custom_patterns_from_files(tmp_path):
    """A file's custom pattern is compiled only if it cannot backtrack exponentially, or
    if the caller trusts the file; an invalid one is a VocabularyFileError either way."""
    safe = BPETokenizer(pattern=r"\w+|\s+|[^\w\s]+")
    safe.save(tmp_path / "safe.bpe")
    assert BPETokenizer.load(tmp_path / "safe.bpe").pattern == safe.pattern
    risky = BPETokenizer(pattern=r"(?:\w|')+|\s+")      # a repeated alternation: refused
    risky.save(tmp_path / "risky.bpe")
    with pytest.raises(VocabularyFileError, match="trust_pattern=True"):
        BPETokenizer.load(tmp_path / "risky.bpe")
    assert BPETokenizer.load(tmp_path / "risky.bpe", trust_pattern=True).pattern == risky.pattern
    assert tokenizers.load_tokenizer(tmp_path / "risky.bpe", trust_pattern=True).split("it's x") \
        == ["it's", " ", "x"]
    lines = _valid_lines()
    lines[1] = 'pattern-regex "(unclosed"'
    with pytest.raises(VocabularyFileError, match="does not compile"):
        BPETokenizer.load(_write(tmp_path, "\n".join(lines) + "\n"))
    with pytest.raises(VocabularyFileError, match="invalid pre-tokenisation pattern"):
        BPETokenizer.load(_write(tmp_path, "\n".join(lines) + "\n"), trust_pattern=True)


def test_known_patterns_load_by_name_or_text(tmp_path):
    for name in ("gpt2", "gpt4", "gpt4o"):
        lines = _valid_lines()
        lines[1] = "pattern-regex " + json.dumps(tokenizers.gpt2.resolve_pattern(name))
        tok = BPETokenizer.load(_write(tmp_path, "\n".join(lines) + "\n"))
        assert tok.pattern == tokenizers.gpt2.resolve_pattern(name)
