"""``numpyllm attack hotflip`` and ``numpyllm finetune classify --adversarial``, end to end
on tiny data written on the spot: the figures are HotFlip's on the run's test split, the
flips shown are real, an adversarial run resumes exactly, bad input is one line."""
import json

import numpy as np
import pytest

from numpyllm.adversarial import hotflip
from numpyllm.autograd import no_grad
from numpyllm.cli import main
from numpyllm.nn import GPT, GPTConfig
from numpyllm.tokenizers import CharTokenizer
from numpyllm.training.checkpoint import load_checkpoint, load_model, save_checkpoint

SPAM = ["win cash now", "free prize today", "claim your reward", "cheap pills offer"]
HAM = ["see you at lunch", "call me later", "how was the game", "meeting at noon"]
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "32"]
QUICK = ["--batch_size", "8", "--eval_interval", "20", "--eval_iters", "2", "--quiet"]


@pytest.fixture
def spam(tmp_path):
    path = tmp_path / "spam.tsv"
    rows = [f"{'spam' if i % 2 else 'ham'}\t{(SPAM if i % 2 else HAM)[i % 4]} {i}"
            for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny classifier run (40 steps, from scratch), shared by the tests here."""
    root = tmp_path_factory.mktemp("hotflip")
    path = root / "spam.tsv"
    rows = [f"{'spam' if i % 2 else 'ham'}\t{(SPAM if i % 2 else HAM)[i % 4]} {i}"
            for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    assert main(["finetune", "classify", "--data", str(path), "--out", str(root / "run"),
                 "--max_iters", "40", "--learning_rate", "3e-3", *TINY, *QUICK]) == 0
    return root / "run" / "ckpt", path


def test_the_figures_are_hotflips_on_the_test_split(classifier, capsys):
    ckpt, data = classifier
    capsys.readouterr()
    assert main(["attack", "hotflip", "--ckpt", str(ckpt), "--data", str(data), "--json",
                 "--max-edits", "4", "--beam", "2", "--examples", "40"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the same attack, in Python, on the file as the run reads it
    model, tok, _ = load_model(ckpt)
    from numpyllm.data.classification import read_tsv
    texts = read_tsv(data)
    encoded = texts.encode(tok, max_length=32)
    edits = []
    for seq, y in zip(encoded.sequences, encoded.labels):
        [r] = hotflip(model, np.asarray(seq)[None], labels=np.array([y]), max_edits=4,
                      beam=2, forbidden=list(tok.special_tokens.values()))
        if r.label_before == y:
            edits.append(r.edits if r.flipped else None)
    assert result["messages"] == 40 and result["correct"] == len(edits) > 20
    assert result["flipped_within"] == {str(k): sum(e is not None and e <= k for e in edits)
                                        for k in (1, 2, 3, 4)}
    assert result["flipped_within"]["4"] > 0
    # every example shown is a real flip: its text, read again, is classified otherwise
    assert len(result["examples"]) == result["flipped_within"]["4"]
    for ex in result["examples"]:
        with no_grad():
            predicted = int(model(np.array([tok.encode(ex["after"])]))[0].data.argmax())
        assert texts.classes[predicted] == ex["after_label"] != ex["label"]
        assert sum(a != b for a, b in zip(ex["before"], ex["after"])) == ex["edits"]


def test_the_default_messages_are_the_test_split_and_the_report_reads(classifier, capsys):
    ckpt, _ = classifier
    capsys.readouterr()
    assert main(["attack", "hotflip", "--ckpt", str(ckpt), "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert "8 messages of" in out and "[test split]" in out and "beam search of width 2" in out
    assert "flipped within 3 edits:" in out


@pytest.mark.parametrize("method", [["pgd", "--adv-random-start", "--adv-norm", "linf"],
                                    ["freelb", "--adv-weight", "0.5"]], ids=["pgd", "freelb"])
def test_adversarial_training_resumes_as_if_never_stopped(tmp_path, spam, capsys, method):
    """5 steps, then --resume to 12 == 12 steps at once, weight for weight; the
    checkpoint is a classifier that eval and attack read."""
    start = ["finetune", "classify", "--data", str(spam), "--lr_decay_iters", "12",
             "--adversarial", *method, "--adv-epsilon", "0.3", "--adv-steps", "2", *TINY,
             *QUICK]
    assert main([*start, "--out", str(tmp_path / "once"), "--max_iters", "12"]) == 0
    assert main([*start, "--out", str(tmp_path / "twice"), "--max_iters", "5"]) == 0
    assert main(["finetune", "classify", "--out", str(tmp_path / "twice"), "--resume",
                 "--max_iters", "12", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 5" in out and f"adversarial training, {method[0]}" in out
    once, twice = load_checkpoint(tmp_path / "once" / "ckpt"), \
        load_checkpoint(tmp_path / "twice" / "ckpt")
    assert once.step == twice.step == 12
    for name, value in once.weights.items():
        np.testing.assert_array_equal(twice.weights[name], value, err_msg=name)
    assert main(["eval", "--ckpt", str(tmp_path / "twice" / "ckpt")]) == 0
    assert "[test split]: 8 texts" in capsys.readouterr().out
    assert main(["attack", "hotflip", "--ckpt", str(tmp_path / "twice" / "ckpt"),
                 "--max-edits", "1", "--limit", "3"]) == 0


def test_adversarial_differs_from_clean_training(tmp_path, spam):
    """The objective is really switched on: the same run without it ends elsewhere."""
    base = ["finetune", "classify", "--data", str(spam), "--max_iters", "3", *TINY, *QUICK]
    assert main([*base, "--out", str(tmp_path / "clean")]) == 0
    assert main([*base, "--out", str(tmp_path / "adv"), "--adversarial", "pgd",
                 "--adv-epsilon", "2"]) == 0
    clean, adv = (load_checkpoint(tmp_path / d / "ckpt").weights for d in ("clean", "adv"))
    assert not np.array_equal(clean["score.weight"], adv["score.weight"])


@pytest.mark.parametrize("extra, fragment", [
    (["--adv-epsilon", "0.5"], "without --adversarial"),
    (["--adversarial", "pgd", "--adv-epsilon", "0"], "--adv-epsilon must be"),
    (["--adversarial", "pgd", "--adv-epsilon", "nan"], "--adv-epsilon must be"),
    (["--adversarial", "freelb", "--adv-steps", "0"], "--adv-steps must be"),
    (["--adversarial", "pgd", "--adv-alpha", "-1"], "--adv-alpha must be"),
    (["--adversarial", "pgd", "--adv-weight", "1.5"], "--adv-weight must be"),
])
def test_finetune_errors_are_one_line(tmp_path, spam, one_line_error, capsys, extra,
                                      fragment):
    one_line_error(capsys, ["finetune", "classify", "--data", str(spam), "--out",
                            str(tmp_path / "x"), *TINY, *extra], fragment)


def test_attack_errors_are_one_line(tmp_path, classifier, one_line_error, capsys):
    ckpt, data = classifier
    for extra, fragment in [(["--max-edits", "0"], "--max-edits must be >= 1"),
                            (["--beam", "0"], "--beam must be >= 1"),
                            (["--limit", "0"], "--limit must be >= 1"),
                            (["--data", str(tmp_path / "none.tsv")], "no such file")]:
        one_line_error(capsys, ["attack", "hotflip", "--ckpt", str(ckpt), *extra], fragment)
    one_line_error(capsys, ["attack", "hotflip", "--ckpt", str(tmp_path / "nope")], "nope")
    bad = tmp_path / "bad.tsv"
    bad.write_text("eggs\thello\n")
    one_line_error(capsys, ["attack", "hotflip", "--ckpt", str(ckpt), "--data", str(bad)],
                   "eggs")
    # a language model is not a classifier
    tok = CharTokenizer.from_text("abc")
    save_checkpoint(tmp_path / "lm", step=0, tokenizer=tok,
                    model=GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1,
                                        n_head=2, n_embd=8), rng=0))
    one_line_error(capsys, ["attack", "hotflip", "--ckpt", str(tmp_path / "lm")],
                   "not a classifier")
    # resuming takes the run's own adversarial settings
    run = ckpt.parent
    one_line_error(capsys, ["finetune", "classify", "--out", str(run), "--resume",
                            "--adversarial", "pgd", "--max_iters", "50"],
                   "drop --adversarial")
