"""``numpyllm sample``: flags, streaming, stops, reproducibility, one-line errors."""
import numpy as np
import pytest

from numpyllm.training.checkpoint import save_checkpoint
from numpyllm.cli import main
from numpyllm.generate import generate
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import BPETokenizer, CharTokenizer

CHARS = "abcdefgh .\n"


def checkpoint(path, tokenizer, positions="learned"):
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1,
                          n_head=2, n_embd=16, positions=positions),
                rng=np.random.default_rng(0))
    save_checkpoint(path, step=1, model=model, tokenizer=tokenizer)
    return model


@pytest.fixture
def char_ckpt(tmp_path):
    tok = CharTokenizer.from_text(CHARS)
    model = checkpoint(tmp_path / "ckpt", tok)
    return tmp_path / "ckpt", model, tok


def sample(capsys, ckpt, *args):
    code = main(["sample", "--ckpt", str(ckpt), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prints_the_prompt_and_its_continuation(char_ckpt, capsys):
    ckpt, model, tok = char_ckpt
    code, out, _ = sample(capsys, ckpt, "--prompt", "abc", "--max-new-tokens", "20",
                          "--greedy")
    assert code == 0
    expected = generate(model, np.array(tok.encode("abc")), 20, greedy=True)
    assert out == tok.decode(expected.tolist()) + "\n"


def test_the_same_seed_gives_the_same_text_and_stream_prints_the_same(char_ckpt, capsys):
    ckpt, _, _ = char_ckpt
    flags = ["--prompt", "ab", "--max-new-tokens", "30", "--temperature", "1.2",
             "--top-k", "6", "--top-p", "0.9", "--seed", "5"]
    runs = [sample(capsys, ckpt, *flags)[1] for _ in range(2)]
    streamed = sample(capsys, ckpt, *flags, "--stream")[1]
    assert runs[0] == runs[1] == streamed and runs[0].startswith("ab")
    other = sample(capsys, ckpt, *flags[:-1], "6")[1]
    assert other != runs[0]


def test_underscore_aliases_still_work(char_ckpt, capsys):
    ckpt, _, _ = char_ckpt
    a = sample(capsys, ckpt, "--prompt", "a", "--max_new_tokens", "9", "--top_k", "3",
               "--top_p", "0.8", "--seed", "1")[1]
    b = sample(capsys, ckpt, "--prompt", "a", "--max-new-tokens", "9", "--top-k", "3",
               "--top-p", "0.8", "--seed", "1")[1]
    assert a == b and len(a) == 1 + 9 + 1


def test_stop_text_ends_the_sample_without_printing_it(char_ckpt, capsys):
    ckpt, model, tok = char_ckpt
    full = tok.decode(generate(model, np.array(tok.encode("a")), 40, greedy=True)[1:].tolist())
    stop = full[5:7]
    out = sample(capsys, ckpt, "--prompt", "a", "--max-new-tokens", "40", "--greedy",
                 "--stop", stop)[1]
    assert out == "a" + full[:full.index(stop)] + "\n"


def test_several_samples_are_numbered(char_ckpt, capsys):
    ckpt, _, _ = char_ckpt
    out = sample(capsys, ckpt, "--num-samples", "2", "--max-new-tokens", "5", "--seed", "0")[1]
    assert out.count("--- sample") == 2


def test_without_the_cache_the_text_is_the_same(char_ckpt, capsys):
    ckpt, _, _ = char_ckpt
    flags = ["--prompt", "ha", "--max-new-tokens", "25", "--seed", "2"]
    assert sample(capsys, ckpt, *flags)[1] == sample(capsys, ckpt, *flags, "--no-cache")[1]


def test_bpe_checkpoint_streams_whole_characters_and_stops_at_endoftext(tmp_path, capsys):
    tok = BPETokenizer(special_tokens=["<|endoftext|>"])
    tok.train("héllo wörld 日本語 " * 30, vocab_size=280)
    model = checkpoint(tmp_path / "ckpt", tok, positions="rope")
    flags = ["--prompt", "日本", "--max-new-tokens", "40", "--seed", "3"]
    plain = sample(capsys, tmp_path / "ckpt", *flags)[1]
    streamed = sample(capsys, tmp_path / "ckpt", *flags, "--stream")[1]
    assert plain == streamed and plain.startswith("日本")
    ids = generate(model, np.array(tok.encode("日本")), 40, rng=np.random.default_rng(3),
                   temperature=0.8, eos_id=tok.token_id("<|endoftext|>"))
    text = tok.decode([i for i in ids.tolist() if i != tok.token_id("<|endoftext|>")])
    assert plain == text + "\n"
    # a special token typed in the prompt is the special token
    code, out, _ = sample(capsys, tmp_path / "ckpt", "--prompt", "a<|endoftext|>",
                          "--max-new-tokens", "2", "--greedy")
    assert code == 0 and out.startswith("a<|endoftext|>")


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "0"], "--temperature must be > 0, got 0 (for the most likely token "
                             "every time, pass --greedy)"),
    (["--temperature", "-1"], "pass --greedy"),
    (["--top-k", "0"], "top_k"),
    (["--top-p", "1.5"], "top_p"),
    (["--top-p", "0"], "top_p"),
    (["--max-new-tokens", "-1"], "max_new_tokens"),
    (["--prompt", ""], "no tokens"),
    (["--prompt", "xyz"], "not in the vocabulary"),
    (["--eos", "<nope>"], "--eos"),
    (["--num-samples", "0"], "--num-samples"),
    (["--stop", ""], "non-empty"),
])
def test_bad_input_is_a_one_line_error(char_ckpt, capsys, flags, message):
    ckpt, _, _ = char_ckpt
    code, out, err = sample(capsys, ckpt, *flags)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("numpyllm sample: error:") and message in err
    assert "greedy=True" not in err and "unk_token" not in err      # no Python spellings


def test_temperature_zero_with_greedy_is_greedy(char_ckpt, capsys):
    ckpt, _, _ = char_ckpt
    flags = ["--prompt", "ab", "--max-new-tokens", "10", "--greedy"]
    assert sample(capsys, ckpt, *flags, "--temperature", "0")[1] == sample(capsys, ckpt, *flags)[1]


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    code, _, err = sample(capsys, tmp_path / "nothing")
    assert code == 2 and err.count("\n") == 1
