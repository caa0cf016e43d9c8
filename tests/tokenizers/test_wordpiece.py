"""WordPiece: greedy longest match, [UNK] words, BERT's basic tokenizer, files, training.
(The ids against Hugging Face's are tests/oracle/test_hf_wordpiece_unigram.py.)"""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numpyllm.tokenizers import (VocabularyFileError, WordPieceTokenizer, load_tokenizer)
from numpyllm.tokenizers.bert_pretokenize import normalize_bert, pre_tokenize_bert
from numpyllm.tokenizers.wordpiece import WordPiece

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "a",
         "##a", "##b", "b", "##ab"]


def _pieces(tok, text):
    return [tok.vocab[i] for i in tok.encode(text)]


def test_greedy_longest_match_first():
    tok = WordPieceTokenizer(VOCAB)
    assert _pieces(tok, "unaffable") == ["un", "##aff", "##able"]
    # greedy, not fewest pieces: "aab" is a ##ab (2 pieces), never a ##a ##b
    assert _pieces(tok, "aab") == ["a", "##ab"]
    assert _pieces(tok, "bab") == ["b", "##ab"]


def test_a_word_that_cannot_be_spelled_is_one_unk():
    tok = WordPieceTokenizer(VOCAB)
    assert _pieces(tok, "unaffablez a") == ["[UNK]", "a"]
    assert _pieces(tok, "a" * 100) == ["a"] + ["##a"] * 99
    assert _pieces(tok, "a" * 101) == ["[UNK]"]             # max_input_chars_per_word
    short = WordPieceTokenizer(VOCAB, max_input_chars_per_word=3)
    assert _pieces(short, "aaa aaaa") == ["a", "##a", "##a", "[UNK]"]


def test_bert_basic_tokenizer():
    assert normalize_bert("Héllo\tWORLD\x00\u200b") == "hello world"
    assert normalize_bert("Héllo", lowercase=False) == "Héllo"
    assert normalize_bert("Héllo", lowercase=False, strip_accents=True) == "Hello"
    assert normalize_bert("ΣΑΣ") == "σασ"            # per character: no final sigma
    assert pre_tokenize_bert(normalize_bert("日本語 don't $5")) == [
        "日", "本", "語", "don", "'", "t", "$", "5"]
    assert pre_tokenize_bert("a\x1cb c\u00a0d") == ["a\x1cb", "c", "d"]   # Rust's whitespace


def test_special_tokens_and_template():
    tok = WordPieceTokenizer(VOCAB)
    assert tok.special_tokens == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert tok.encode("a", add_special_tokens=True) == [2, 9, 3]
    assert _pieces(tok, "[MASK]") == ["[UNK]", "[UNK]", "[UNK]"]      # names are text
    assert tok.decode([2, 9, 3], skip_special_tokens=True) == "a"
    tok2 = WordPieceTokenizer(["[UNK]", "a"], special_tokens=["[MASK]"])
    assert tok2.token_id("[MASK]") == 2 and tok2.vocab_size == 3


words = st.lists(st.text(alphabet="abc", min_size=1, max_size=6), max_size=8)


@settings(deadline=None, max_examples=60)
@given(words)
def test_decode_inverts_encode_on_normalized_words(ws):
    # Every character is a piece, initial and continuing, so nothing is [UNK]; without the
    # decoder's clean-up, decoding gives the words joined by single spaces.
    tok = WordPieceTokenizer(["[UNK]", "a", "b", "c", "##a", "##b", "##c", "ab", "##bc", "ca"],
                             cleanup=False)
    text = " ".join(ws)
    assert tok.decode(tok.encode(text)) == text


def test_training_learns_frequent_words_and_round_trips(tmp_path):
    text = "the cat sat on the mat. The cat ate the rat! " * 20
    tok = WordPieceTokenizer.train(text, 60)
    assert tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"the", "cat", "##at"} <= set(tok.vocab)
    assert len(tok.encode("the cat")) == 2
    tok.save(tmp_path / "wp.json")
    again = load_tokenizer(tmp_path / "wp.json")
    assert isinstance(again, WordPieceTokenizer) and again.vocab == tok.vocab
    assert again.encode(text) == tok.encode(text)
    assert tok.decode(tok.encode("the cat sat.")) == "the cat sat."


def test_vocab_txt(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = load_tokenizer(path)
    assert isinstance(tok, WordPieceTokenizer) and tok.vocab == VOCAB
    assert _pieces(tok, "Unaffable") == ["un", "##aff", "##able"]


@pytest.mark.parametrize("content, match", [
    (b"[UNK]\n\na\n", r"vocab.txt:2: expected a token, got an empty line"),
    (b"[UNK]\na\na\n", r"vocab.txt:3: token 'a' already on line 2"),
    (b"[UNK]\n\xff\n", r"vocab.txt:2: expected UTF-8"),
    (b"", r"no tokens"),
    (b"a\nb\n", r"unknown token '\[UNK\]' is not in the vocabulary"),
])
def test_malformed_vocab_txt_refused(tmp_path, content, match):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(VocabularyFileError, match=match):
        WordPieceTokenizer.from_vocab_txt(path)


def _saved(tmp_path):
    path = tmp_path / "wp.json"
    WordPieceTokenizer(VOCAB).save(path)
    return path, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("change, match", [
    ({"format": "numpyllm-char"}, "not a numpyllm-wordpiece file"),
    ({"version": 9}, "version 9 is not supported"),
    ({"vocab": ["a", "a", "[UNK]"]}, "appears twice"),
    ({"vocab": ["a", 3]}, r"vocab\[1\]: expected string"),
    ({"vocab": ["a", ""]}, "non-empty strings"),
    ({"unk_token": "[NOPE]"}, "not in the vocabulary"),
    ({"max_input_chars_per_word": 0}, "positive integer"),
    ({"lowercase": "yes"}, r"lowercase: expected boolean"),
    ({"special_tokens": None}, r"special_tokens: expected array"),
])
def test_malformed_wordpiece_file_refused(tmp_path, change, match):
    path, doc = _saved(tmp_path)
    doc.update(change)
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(VocabularyFileError, match=match):
        WordPieceTokenizer.load(path)


def test_model_refuses_a_vocabulary_without_unk():
    with pytest.raises(ValueError, match="unknown token"):
        WordPiece({"a": 0})
