"""`numpyllm tokenize train | encode | decode`, driven through the real CLI entry point."""
import sys

import numpy as np
import pytest

from numpyllm.cli import main
from numpyllm.tokenizers import BPETokenizer, CharTokenizer

CORPUS = "the cat sat on the mat.\nthe dog sat on the log!\n" * 50


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def run(capsys, *argv):
    code = main(["tokenize", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_encode_decode_bpe(tmp_path, corpus, capsys):
    out_file = tmp_path / "tok.bpe"
    code, out, _ = run(capsys, "train", "--data", corpus, "--vocab-size", 272, "--out", out_file,
                       "--special", "<|endoftext|>", "[PAD]", "--quiet")
    assert code == 0 and "272 tokens" in out
    tok = BPETokenizer.load(out_file)
    assert tok.vocab_size == 272 and tok.special_tokens == {"<|endoftext|>": 270, "[PAD]": 271}

    code, out, _ = run(capsys, "encode", "--tokenizer", out_file, "--text", "the cat")
    ids = [int(i) for i in out.split()]
    assert code == 0 and ids == tok.encode("the cat")

    code, out, _ = run(capsys, "decode", "--tokenizer", out_file, *ids)
    assert code == 0 and out == "the cat\n"


def test_special_tokens_on_the_command_line(tmp_path, corpus, capsys):
    out_file = tmp_path / "tok.bpe"
    run(capsys, "train", "--data", corpus, "--vocab-size", 270, "--out", out_file,
        "--special", "<|endoftext|>", "--quiet")
    code, _, err = run(capsys, "encode", "--tokenizer", out_file, "--text", "a<|endoftext|>")
    assert code == 2 and "--special allow" in err and "Traceback" not in err
    code, out, _ = run(capsys, "encode", "--tokenizer", out_file, "--text", "a<|endoftext|>",
                       "--special", "allow")
    assert out.split()[-1] == "269"
    code, out, _ = run(capsys, "encode", "--tokenizer", out_file, "--text", "a<|endoftext|>",
                       "--special", "text")
    assert "269" not in out.split()


def test_encode_a_file_to_npy_and_decode_it(tmp_path, corpus, capsys):
    tok_file = tmp_path / "tok.bpe"
    run(capsys, "train", "--data", corpus, "--vocab-size", 300, "--out", tok_file, "--quiet")
    code, out, _ = run(capsys, "encode", "--tokenizer", tok_file, "--input", corpus,
                       "--out", tmp_path / "ids.npy", "--quiet")
    assert code == 0 and "uint16" in out
    ids = np.load(tmp_path / "ids.npy")
    assert ids.tolist() == BPETokenizer.load(tok_file).encode(CORPUS)
    code, _, _ = run(capsys, "decode", "--tokenizer", tok_file, "--input", tmp_path / "ids.npy",
                     "--out", tmp_path / "back.txt")
    assert code == 0 and (tmp_path / "back.txt").read_text(encoding="utf-8") == CORPUS
    # ids as text, from a file and from stdin
    (tmp_path / "ids.txt").write_text(" ".join(map(str, ids[:5].tolist())))
    code, out, _ = run(capsys, "decode", "--tokenizer", tok_file, "--input", tmp_path / "ids.txt")
    assert out.rstrip("\n") == BPETokenizer.load(tok_file).decode(ids[:5])


def test_stdin_and_stdout(tmp_path, corpus, capsys, monkeypatch):
    import io
    tok_file = tmp_path / "tok.bpe"
    run(capsys, "train", "--data", corpus, "--vocab-size", 260, "--out", tok_file, "--quiet")
    monkeypatch.setattr(sys, "stdin", io.StringIO("the mat"))
    code, out, _ = run(capsys, "encode", "--tokenizer", tok_file)
    ids = out.split()
    monkeypatch.setattr(sys, "stdin", io.StringIO(", ".join(ids)))
    code, out, _ = run(capsys, "decode", "--tokenizer", tok_file)
    assert code == 0 and out == "the mat\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO("1 2 x"))
    code, _, err = run(capsys, "decode", "--tokenizer", tok_file)
    assert code == 2 and "'x'" in err


def test_char_tokenizer(tmp_path, corpus, capsys):
    out_file = tmp_path / "char.json"
    code, out, _ = run(capsys, "train", "--type", "char", "--data", corpus, "--out", out_file,
                       "--special", "[PAD]")
    assert code == 0
    tok = CharTokenizer.load(out_file)
    assert tok.special_tokens == {"[PAD]": len(set(CORPUS))}
    code, out, _ = run(capsys, "encode", "--tokenizer", out_file, "--text", "cat")
    assert [int(i) for i in out.split()] == tok.encode("cat")
    code, _, err = run(capsys, "encode", "--tokenizer", out_file, "--text", "cat?")
    assert code == 2 and "not in the vocabulary" in err


def test_progress_bar_without_tqdm(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)      # as if tqdm were not installed
    code, _, err = run(capsys, "train", "--data", corpus, "--vocab-size", 270,
                       "--out", tmp_path / "t.bpe")
    assert code == 0
    assert "merging: 14/14 tok (100.0%)" in err and "reading:" in err


def test_progress_bar_with_tqdm(tmp_path, corpus, capsys):
    pytest.importorskip("tqdm")
    code, _, err = run(capsys, "train", "--data", corpus, "--vocab-size", 270,
                       "--out", tmp_path / "t.bpe")
    assert code == 0 and "merging" in err and "14/14" in err


def test_gpt2_directory_as_tokenizer(gpt2_files, capsys):
    directory = gpt2_files[0].parent
    code, out, _ = run(capsys, "encode", "--tokenizer", directory, "--text", "Hello world")
    assert out.split() == ["15496", "995"]
    code, out, _ = run(capsys, "decode", "--tokenizer", directory, 15496, 995, 50256)
    assert out == "Hello world<|endoftext|>\n"


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "{missing}", "--vocab-size", "300", "--out", "{tmp}/t"], "no such file"),
    (["train", "--data", "{corpus}", "--out", "{tmp}/t"], "--vocab-size"),
    (["train", "--data", "{corpus}", "--vocab-size", "100", "--out", "{tmp}/t"], "at least 256"),
    (["train", "--data", "{empty}", "--vocab-size", "300", "--out", "{tmp}/t", "--quiet"],
     "empty corpus"),
    (["train", "--data", "{corpus}", "--vocab-size", "300", "--out", "{tmp}/t", "--unk", "?"],
     "--unk is for --type char"),
    (["encode", "--tokenizer", "{missing}", "--text", "a"], "no such tokenizer"),
    (["encode", "--tokenizer", "{corpus}", "--text", "a"], "not a tokenizer file"),
    (["decode", "--tokenizer", "{tok}", "99999"], "not in the vocabulary"),
    (["decode", "--tokenizer", "{tok}", "1", "--input", "{corpus}"], "not both"),
    (["encode", "--tokenizer", "{tok}", "--out", "{tmp}/x.npy"], "--input"),
    (["train", "--data", "{corpus}", "--vocab-size", "300", "--out", "{tmp}/t",
      "--pattern", "(?:a|b)+|."], "--pattern: a group repeated by '+'"),
    (["train", "--data", "{corpus}", "--vocab-size", "300", "--out", "{tmp}/t",
      "--pattern", "(unclosed"], "--pattern is not a valid regular expression"),
])
def test_user_errors_are_one_line(tmp_path, corpus, capsys, argv, message):
    tok = BPETokenizer()
    tok.save(tmp_path / "tok.bpe")
    (tmp_path / "empty.txt").write_text("")
    fill = {"missing": tmp_path / "nope.txt", "tmp": tmp_path, "corpus": corpus,
            "empty": tmp_path / "empty.txt", "tok": tmp_path / "tok.bpe"}
    code, _, err = run(capsys, *[a.format(**fill) for a in argv])
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_help_lists_the_actions(capsys):
    with pytest.raises(SystemExit):
        main(["tokenize", "--help"])
    out = capsys.readouterr().out
    assert "train" in out and "encode" in out and "decode" in out


def test_small_corpus_says_it_stopped_early(tmp_path, corpus, capsys):
    code, out, _ = run(capsys, "train", "--data", corpus, "--vocab-size", 1000,
                       "--out", tmp_path / "t.bpe", "--quiet")
    assert code == 0 and "asked for 1000" in out
    assert BPETokenizer.load(tmp_path / "t.bpe").vocab_size < 1000
