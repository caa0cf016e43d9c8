"""Text-level generation: streaming in whole UTF-8 characters, stop strings, end tokens."""
import numpy as np
import pytest

from numpyllm.generate import (StopStrings, TextDecoder, generate, generate_text,
                               stream_text)
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import BPETokenizer, CharTokenizer

TEXT = "héllo wörld 😀 日本\n\nnext"


class Scripted:
    """A 'model' that predicts a fixed script, one token per step, whatever the prompt
    was; it counts its calls."""

    def __init__(self, script, vocab_size, prompt_len):
        self.script, self.V, self.prompt_len = list(script), vocab_size, prompt_len
        self.training, self.calls = False, 0

    def __call__(self, ids):
        self.calls += 1
        t = ids.shape[1] - self.prompt_len
        logits = np.full((ids.shape[0], ids.shape[1], self.V), -30.0)
        logits[:, -1, self.script[t] if t < len(self.script) else 0] = 0.0
        return logits


@pytest.fixture
def byte_tok():
    return BPETokenizer(special_tokens=["<|endoftext|>"])     # one token per byte


def scripted(tok, text, prompt="> "):
    script = tok.encode(text)
    return Scripted(script, tok.vocab_size, len(tok.encode(prompt))), script


def test_streamed_pieces_are_whole_characters_and_join_to_the_text(byte_tok):
    model, script = scripted(byte_tok, TEXT)
    pieces = list(stream_text(model, byte_tok, "> ", len(script), greedy=True))
    assert "".join(pieces) == TEXT
    assert all("\ufffd" not in p for p in pieces)
    assert "😀" in pieces and len(pieces) < len(script)   # 4 bytes, shown once, whole


def test_text_decoder_holds_back_an_unfinished_character(byte_tok):
    dec = TextDecoder(byte_tok)
    ids = byte_tok.encode("日")                               # 3 bytes
    assert [dec.push(i) for i in ids] == ["", "", "日"]
    dec.push(byte_tok.encode("é")[0])                         # half a character, then the end
    assert dec.flush() == "\ufffd"


def test_text_decoder_with_merged_tokens_and_specials():
    tok = BPETokenizer(special_tokens=["<|endoftext|>"])
    tok.train("ééé日本日本 " * 20, vocab_size=270)
    ids = tok.encode("日本é", ) + [tok.token_id("<|endoftext|>")]
    dec = TextDecoder(tok)
    assert "".join(dec.push(i) for i in ids) + dec.flush() == "日本é<|endoftext|>"
    dec = TextDecoder(tok, skip=[tok.token_id("<|endoftext|>")])
    assert "".join(dec.push(i) for i in ids) == "日本é"


def test_a_stop_string_spanning_tokens_ends_generation_and_is_not_returned(byte_tok):
    model, script = scripted(byte_tok, TEXT)
    text = generate_text(model, byte_tok, "> ", len(script), greedy=True, stop=["\n\n"])
    assert text == "héllo wörld 😀 日本"
    assert model.calls == len(byte_tok.encode("héllo wörld 😀 日本\n\n"))   # then it stopped


def test_the_earliest_of_several_stop_strings_wins(byte_tok):
    model, script = scripted(byte_tok, TEXT)
    assert generate_text(model, byte_tok, "> ", 99, greedy=True,
                         stop=["日本", "wör", "zzz"]) == "héllo "


def test_text_that_only_looks_like_a_stop_string_is_released(byte_tok):
    model, script = scripted(byte_tok, "a STOx STOP b")
    pieces = list(stream_text(model, byte_tok, "> ", len(script), greedy=True, stop="STOP"))
    assert "".join(pieces) == "a STOx "


def test_the_end_token_stops_and_shows_no_text(byte_tok):
    eos = byte_tok.token_id("<|endoftext|>")
    model = Scripted(byte_tok.encode("hi") + [eos] + byte_tok.encode("more"),
                     byte_tok.vocab_size, 2)
    assert generate_text(model, byte_tok, "> ", 20, greedy=True, eos_id=eos) == "hi"
    assert model.calls == 3


def test_stop_strings_unit():
    s = StopStrings(["abc", "bd"])
    assert s.feed("xa") == ("x", False)          # "a" may begin "abc"
    assert s.feed("b") == ("", False)            # "ab" too, and "b" may begin "bd"
    assert s.feed("x") == ("abx", False)
    assert s.feed("b") == ("", False)
    assert s.feed("d") == ("", True)
    assert s.feed("more") == ("", True)          # stopped for good
    t = StopStrings("end")
    assert t.feed("the en") == ("the ", False) and t.flush() == "en"
    assert StopStrings().feed("anything") == ("anything", False)
    for bad in ([""], [3]):
        with pytest.raises(ValueError, match="non-empty strings"):
            StopStrings(bad)


def test_character_tokenizer_streams_token_by_token():
    tok = CharTokenizer.from_text("abc\n")
    model = Scripted(tok.encode("abc\ncab"), tok.vocab_size, 1)
    assert list(stream_text(model, tok, "a", 7, greedy=True, stop="\n")) == ["a", "b", "c"]


def test_generate_text_is_the_decoded_continuation_of_generate():
    tok = CharTokenizer.from_text("abcdefgh \n")
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
                          n_embd=8), rng=np.random.default_rng(0))
    ids = generate(model, np.array(tok.encode("abc")), 12, temperature=1.2,
                   rng=np.random.default_rng(3))
    text = generate_text(model, tok, "abc", 12, temperature=1.2, rng=np.random.default_rng(3))
    assert text == tok.decode(ids[3:].tolist())
    same = generate_text(model, tok, tok.encode("abc"), 12, temperature=1.2,
                         rng=np.random.default_rng(3))              # a prompt given as ids
    assert same == text


def test_closing_the_text_stream_stops_the_model(byte_tok):
    model, script = scripted(byte_tok, TEXT)
    it = stream_text(model, byte_tok, "> ", len(script), greedy=True)
    next(it)
    calls = model.calls
    it.close()
    assert model.calls == calls


def test_stream_text_checks_its_arguments_at_once(byte_tok):
    model, _ = scripted(byte_tok, "abc")
    with pytest.raises(ValueError, match="top_p"):
        stream_text(model, byte_tok, "> ", 3, top_p=2.0)
    with pytest.raises(ValueError, match="non-empty"):
        stream_text(model, byte_tok, "> ", 3, stop=[""])


def test_a_list_of_prompts_gives_a_list_of_texts_each_as_alone():
    tok = BPETokenizer(special_tokens=["<|endoftext|>"])
    tok.train("the cat sat on the mat. the dog sat. " * 20, vocab_size=290)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2,
                          n_embd=16, positions="alibi"), rng=np.random.default_rng(1))
    prompts = ["the cat", "a", "the dog sat on"]
    kw = dict(greedy=True, stop=["n o", "zz"], eos_id=tok.token_id("<|endoftext|>"))
    texts = generate_text(model, tok, prompts, 12, **kw)
    assert texts == [generate_text(model, tok, p, 12, **kw) for p in prompts]
    assert texts[2] == " o"                             # " on on ..." cut at "n o"
    with pytest.raises(ValueError, match="non-empty"):
        generate_text(model, tok, prompts, 3, stop=[""])
