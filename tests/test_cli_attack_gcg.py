"""``numpyllm attack gcg``: end to end on a tiny checkpoint made on the spot; the printed
suffix is the library's, the success rate over a targets file, JSON, one-line errors."""
import json

import numpy as np
import pytest

from numpyllm.adversarial import gcg
from numpyllm.cli import main
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training.checkpoint import save_checkpoint

CHARS = "abcdefgh .!\n"


@pytest.fixture
def ckpt(tmp_path):
    tok = CharTokenizer.from_text(CHARS, special_tokens=["<|endoftext|>"])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
                          n_embd=16), rng=0)
    save_checkpoint(tmp_path / "ckpt", step=1, model=model, tokenizer=tok)
    return tmp_path / "ckpt", model, tok


def attack(capsys, ckpt, *args):
    code = main(["attack", "gcg", "--ckpt", str(ckpt), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prints_progress_and_the_librarys_result(ckpt, capsys):
    path, model, tok = ckpt
    code, out, _ = attack(capsys, path, "--prompt", "ab", "--target", "hhh", "--steps", "6",
                          "--batch", "8", "--topk", "4", "--suffix-length", "4", "--every", "2",
                          "--seed", "3")
    assert code == 0
    allowed = np.ones(tok.vocab_size, bool)
    allowed[tok.special_tokens["<|endoftext|>"]] = False
    expected = gcg(model, tok.encode("ab"), tok.encode("hhh"), 4, steps=6, batch=8, topk=4,
                   allowed=allowed, rng=3, tokenizer=tok)
    lines = out.splitlines()
    assert sum(line.startswith("step ") for line in lines) == expected.steps // 2
    assert f"suffix:  {expected.text!r}" in lines
    assert f"loss:    {expected.loss:.4f} per target token" in out
    assert ("success: yes" if expected.success else "success: no") in out
    assert "greedy:  " in out and "(target 'hhh')" in out


def test_success_means_the_model_then_says_it(ckpt, capsys):
    path, model, tok = ckpt
    code, out, _ = attack(capsys, path, "--prompt", "a", "--target", "e", "--steps", "20",
                          "--batch", "16", "--suffix-length", "3", "--json")
    row = json.loads(out)
    assert code == 0 and row["success"] and row["greedy"] == "e"
    assert row["evaluations"] == 1 + 16 * row["steps"] and row["loss"] <= row["start_loss"]


def test_targets_file_prints_the_success_rate_and_json(ckpt, tmp_path, capsys):
    path, _, _ = ckpt
    targets = tmp_path / "targets.txt"
    targets.write_text("e\n\nhg\nab c\n")
    args = ("--prompt", "a", "--targets", str(targets), "--steps", "3", "--batch", "8",
            "--suffix-length", "3", "--method", "random")
    code, out, _ = attack(capsys, path, *args)
    assert code == 0 and "[3/3] 'ab c'" in out and "success rate: " in out
    code, out, err = attack(capsys, path, *args, "--json")
    summary = json.loads(out)
    assert [r["target"] for r in summary["results"]] == ["e", "hg", "ab c"]
    assert summary["success_rate"] == sum(r["success"] for r in summary["results"]) / 3
    assert all(r["method"] == "random" for r in summary["results"])


def test_forbidden_characters_and_special_tokens_never_appear(ckpt, capsys):
    path, _, tok = ckpt
    code, out, _ = attack(capsys, path, "--prompt", "ab", "--target", "hh", "--steps", "8",
                          "--batch", "16", "--suffix-length", "5", "--forbid", "abcd",
                          "--printable", "--json")
    row = json.loads(out)
    assert code == 0 and not set(row["suffix"]) & set("abcd\n")
    assert tok.special_tokens["<|endoftext|>"] not in row["suffix_ids"]


@pytest.mark.parametrize("args, fragments", [
    (["--suffix-length", "0"], ["--suffix-length must be >= 1"]),
    (["--batch", "0"], ["--batch must be >= 1"]),
    (["--topk", "0"], ["--topk must be >= 1"]),
    (["--method", "random", "--topk", "3"], ["--topk does not apply to --method random"]),
    (["--target", "xyz"], ["--target", "'x'"]),
    (["--target", ""], ["encodes to no tokens"]),
    (["--prompt", "abcdefghabcdefgh"], ["more than its block_size 16"]),
    (["--forbid", CHARS], ["leave 0 of 13 allowed"]),
])
def test_errors_are_one_line(ckpt, capsys, one_line_error, args, fragments):
    path, _, _ = ckpt
    flags = {"--prompt": "ab", "--target": "h"} | dict(zip(args[::2], args[1::2]))
    argv = ["attack", "gcg", "--ckpt", str(path), "--steps", "1"]
    one_line_error(capsys, argv + [x for kv in flags.items() for x in kv], *fragments)


def test_path_errors_are_one_line(ckpt, tmp_path, capsys, one_line_error):
    path, _, _ = ckpt
    one_line_error(capsys, ["attack", "gcg", "--ckpt", str(tmp_path / "nope"), "--prompt", "a",
                            "--target", "b"], "nope")
    one_line_error(capsys, ["attack", "gcg", "--ckpt", str(path), "--prompt", "a",
                            "--targets", str(tmp_path / "none.txt")], "--targets", "no such file")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    one_line_error(capsys, ["attack", "gcg", "--ckpt", str(path), "--prompt", "a",
                            "--targets", str(empty)], "no targets")
