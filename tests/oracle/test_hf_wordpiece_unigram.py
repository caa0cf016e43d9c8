"""WordPiece and Unigram against Hugging Face `tokenizers` (the pinned oracle).

Nothing can be downloaded, so each side's tokenizer is built on the spot: `tokenizers`
trains a WordPiece (BERT's pipeline) or a Unigram (Metaspace) vocabulary on a small corpus,
and we encode with that vocabulary (loaded from its tokenizer.json, and rebuilt as our own
`WordPieceTokenizer`/`UnigramTokenizer`); and the reverse, `tokenizers` builds a tokenizer
from the vocabulary numpyllm trained. Ids must be identical on hypothesis-generated text and
on Tiny Shakespeare.

Generated characters come from blocks whose Unicode properties `tokenizers`' tables (older
than Python 3.11's Unicode 14) classify as Python does; docs/subword.md lists the ~560 code
points, all recent additions, where the two disagree (U+061D and U+07FD are excluded here).
"""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numpyllm.tokenizers import UnigramTokenizer, WordPieceTokenizer
from numpyllm.tokenizers.hf import load_hf_tokenizer, save_hf_tokenizer

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import (Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, trainers)

SP = "\u2581"
CORPUS = ["First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.",
          "Hello world, it's 2024! Don't stop: naïve café, Привет мир, 日本語のテキスト 😀.",
          "The quick brown fox jumps over the lazy dog 1234567890 times; THE END.",
          "I'll we're they've you'd she's IT'S ab12cd 3.14 x_y x-y (a) [b] {c} <d> Ünïcödé",
          "unaffable affable playing played player plays replay replaying"] * 5
_BLOCKS = [(0x20, 0x7FF), (0x2000, 0x206F), (0x3000, 0x30FF), (0x4E00, 0x4E3F),
           (0xAC00, 0xAC3F), (0x1F600, 0x1F64F), (0xFF00, 0xFFEF)]
_SKEW = {0x61D, 0x7FD}         # classified differently by tokenizers' older tables
chars = st.one_of([st.integers(a, b) for a, b in _BLOCKS]).filter(
    lambda c: c not in _SKEW).map(chr)
texts = st.lists(st.one_of(
    st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "\x00", "\x0c", "\x85", "\u00a0",
                     "\u3000", "\u200b", "hello", "world", "Hello", "playing", "unaffable",
                     "don't", "naïve", "café", "e\u0301", "日本語", "Привет", "ÉCOLE", "ΣΑΣ",
                     "...", "!?", "$5", "a+b", "x" * 120, "😀", "ﬁ", "١٢٣"]),
    st.text(alphabet=chars, max_size=6)), max_size=20).map("".join)
shared_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                          deadline=None)


# ------------------------------------------------------------------------- WordPiece
def _hf_wordpiece(lowercase=True, vocab_size=300):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False))
    return tok


def _ours_from_hf(hf, lowercase=True) -> WordPieceTokenizer:
    vocab = sorted(hf.get_vocab().items(), key=lambda kv: kv[1])
    return WordPieceTokenizer([t for t, _ in vocab], lowercase=lowercase)


@pytest.fixture(scope="module")
def wordpiece_pair():
    hf = _hf_wordpiece()
    return hf, _ours_from_hf(hf)


@shared_fixture
@given(text=texts)
def test_wordpiece_ids_equal_tokenizers(wordpiece_pair, text):
    hf, ours = wordpiece_pair
    assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids


@shared_fixture
@given(text=texts)
def test_wordpiece_decode_equals_tokenizers(wordpiece_pair, text):
    hf, ours = wordpiece_pair
    ids = hf.encode(text, add_special_tokens=False).ids     # (their decode skips specials)
    assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids)


def test_wordpiece_cased_and_long_words():
    hf = _hf_wordpiece(lowercase=False)
    ours = _ours_from_hf(hf, lowercase=False)
    for text in ["Hello WORLD Café", "x" * 100, "x" * 101, "Ünïcödé " * 3, "ab" * 60]:
        assert ours.encode(text) == hf.encode(text, add_special_tokens=False).ids


def test_hf_tokenizer_json_wordpiece_loads_to_same_ids(tmp_path, wordpiece_pair):
    hf, _ = wordpiece_pair
    from tokenizers import processors
    hf.post_processor = processors.BertProcessing(("[SEP]", hf.token_to_id("[SEP]")),
                                                  ("[CLS]", hf.token_to_id("[CLS]")))
    hf.save(str(tmp_path / "tokenizer.json"))
    ours = load_hf_tokenizer(tmp_path)
    for text in CORPUS[:5] + ["[CLS] hello [MASK] world [SEP]"]:
        want = hf.encode(text)
        assert ours.encode(text, allowed_special="all") == want.ids
        assert ours.decode(want.ids, skip_special_tokens=True) == hf.decode(want.ids)


def test_our_wordpiece_trainer_loads_in_tokenizers(tmp_path):
    ours = WordPieceTokenizer.train(CORPUS, 300)
    save_hf_tokenizer(ours, tmp_path)
    hf = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in CORPUS[:5]:
        assert hf.encode(text).ids == ours.encode(text, add_special_tokens=True)
        assert hf.decode(ours.encode(text)) == ours.decode(ours.encode(text))


def test_our_wordpiece_trainer_matches_tokenizers_on_a_tie_free_corpus():
    # Hugging Face numbers the "##c" tokens in hash-map order, so only a corpus whose merge
    # counts never tie is guaranteed the same vocabulary; this one has distinct counts.
    words = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
    text = " ".join(w for w, n in words.items() for _ in range(n))
    hf = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.train_from_iterator([text], trainers.WordPieceTrainer(
        vocab_size=18, special_tokens=["[UNK]"], show_progress=False))
    ours = WordPieceTokenizer.train(text, 18, special_tokens=["[UNK]"])
    assert set(ours.vocab) == set(hf.get_vocab())


# --------------------------------------------------------------------------- Unigram
def _hf_unigram(byte_fallback=False):
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False))
    if byte_fallback:
        data = json.loads(tok.to_str())
        data["model"]["vocab"] += [[f"<0x{b:02X}>", 0.0] for b in range(256)]
        data["model"]["byte_fallback"] = True
        tok = Tokenizer.from_str(json.dumps(data))
    return tok


@pytest.fixture(scope="module", params=[False, True], ids=["unk", "byte_fallback"])
def unigram_pair(request, tmp_path_factory):
    hf = _hf_unigram(request.param)
    d = tmp_path_factory.mktemp("unigram")
    hf.save(str(d / "tokenizer.json"))
    return hf, load_hf_tokenizer(d)


@shared_fixture
@given(text=texts)
def test_unigram_tokenizer_json_ids_equal_tokenizers(unigram_pair, text):
    hf, ours = unigram_pair
    assert ours.encode(text, disallowed_special=()) == hf.encode(text).ids


@shared_fixture
@given(text=texts)
def test_unigram_decode_equals_tokenizers(unigram_pair, text):
    hf, ours = unigram_pair
    ids = hf.encode(text).ids
    assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids)


@pytest.fixture(scope="module")
def our_unigram_in_hf(tmp_path_factory):
    ours = UnigramTokenizer.train(CORPUS, 256 + 150, seed_size=2000)
    d = tmp_path_factory.mktemp("ours")
    save_hf_tokenizer(ours, d)
    return ours, Tokenizer.from_file(str(d / "tokenizer.json"))


@shared_fixture
@given(text=texts)
def test_our_unigram_has_tokenizers_ids(our_unigram_in_hf, text):
    ours, hf = our_unigram_in_hf
    if "<0x" in text or SP in text:
        return          # our byte tokens are never matched against text, theirs are
    assert ours.encode(text) == hf.encode(text).ids
    assert ours.decode(ours.encode(text)) == hf.decode(hf.encode(text).ids) == text


# ----------------------------------------------------------------- Tiny Shakespeare
def test_shakespeare_wordpiece_and_unigram_ids_equal_tokenizers(shakespeare_path, tmp_path):
    text = shakespeare_path.read_text(encoding="utf-8")
    head, rest = text[:100_000], text[100_000:300_000]
    hf = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer()
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.train_from_iterator([head], trainers.WordPieceTrainer(
        vocab_size=1000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False))
    ours = _ours_from_hf(hf)
    assert ours.encode(rest) == hf.encode(rest, add_special_tokens=False).ids

    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator([head], trainers.UnigramTrainer(
        vocab_size=1000, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False))
    uni.save(str(tmp_path / "tokenizer.json"))
    loaded = load_hf_tokenizer(tmp_path)
    assert loaded.encode(rest, disallowed_special=()) == uni.encode(rest).ids

    mine = UnigramTokenizer.train(head[:40_000], 1000, seed_size=3_000)
    save_hf_tokenizer(mine, tmp_path / "mine")
    theirs = Tokenizer.from_file(str(tmp_path / "mine" / "tokenizer.json"))
    assert mine.encode(rest) == theirs.encode(rest).ids
    assert mine.decode(mine.encode(rest)) == rest


def test_unknown_score_is_min_score_minus_ten(tmp_path):
    # "a" <unk> "c" scores 10.5 + (-5 - 10) - 1 = -5.5, just below "abc"'s -5: the penalty
    # of an unknown character decides between them.
    vocab = [("<unk>", 0.0), ("a", 10.5), ("abc", -5.0), ("c", -1.0), ("d", -1.0)]
    hf = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    hf.save(str(tmp_path / "tokenizer.json"))
    ours = load_hf_tokenizer(tmp_path)
    for text in ["abc", "abd", "xbc", "abcabc"]:
        assert ours.encode(text) == hf.encode(text).ids
    assert ours.encode("abc") == [2]


@pytest.fixture(scope="module", params=["Whitespace", "WhitespaceSplit"])
def other_pipeline(request, tmp_path_factory):
    """WordPiece behind the other normalizers and pre-tokenizers numpyllm reads."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(),
                                           normalizers.StripAccents()])
    tok.pre_tokenizer = getattr(pre_tokenizers, request.param)()
    tok.decoder = decoders.WordPiece(cleanup=False)
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[UNK]"], show_progress=False))
    d = tmp_path_factory.mktemp(request.param)
    tok.save(str(d / "tokenizer.json"))
    return tok, load_hf_tokenizer(d)


@shared_fixture
@given(text=texts)
def test_other_normalizers_and_pre_tokenizers_equal_tokenizers(other_pipeline, text):
    hf, ours = other_pipeline
    ids = hf.encode(text).ids
    assert ours.encode(text, disallowed_special=()) == ids
    assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids)


def test_a_bert_directory_from_transformers(tmp_path, wordpiece_pair):
    # transformers' BertTokenizerFast built from a vocab.txt, saved as a model directory
    # (tokenizer.json, tokenizer_config.json): the directory and the vocab.txt alone
    # both give its ids.
    transformers = pytest.importorskip("transformers")
    hf, _ = wordpiece_pair
    vocab = [t for t, _ in sorted(hf.get_vocab().items(), key=lambda kv: kv[1])]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    bert = transformers.BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"))
    bert.save_pretrained(str(tmp_path / "bert"))
    from_dir = load_hf_tokenizer(tmp_path / "bert")
    from_txt = WordPieceTokenizer.from_vocab_txt(tmp_path / "vocab.txt")
    for text in CORPUS[:5] + ["Ünïcödé [MASK] 日本", "x" * 150]:
        want = bert(text)["input_ids"]
        assert from_dir.encode(text, allowed_special="all") == want
        if "[MASK]" in text:
            continue        # our WordPieceTokenizer reads special-token names as text
        assert from_txt.encode(text, add_special_tokens=True) == want
        assert from_txt.decode(want, skip_special_tokens=True) == bert.decode(
            want, skip_special_tokens=True)
