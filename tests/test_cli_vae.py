"""``numpyllm vae`` end to end on lines written on the spot: train, every reading action on
its checkpoint, an exact resume, and one-line errors."""
import csv

import pytest

from numpyllm.cli import main
from numpyllm.training.checkpoint import load_checkpoint

LINES = ["the cat sat", "a dog ran", "the dog sat", "a cat ran", "see the cat",
         "see a dog", "the cat ran far", "a dog sat down"] * 4
QUICK = ["--batch_size", "4", "--eval_interval", "4", "--eval_iters", "1", "--quiet",
         "--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--latent", "4",
         "--block_size", "16"]


@pytest.fixture
def lines(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(LINES) + "\n\n")
    return path


@pytest.fixture
def run(tmp_path, lines, capsys):
    out = tmp_path / "run"
    assert main(["vae", "train", "--data", str(lines), "--out", str(out), "--max_iters", "8",
                 "--kl-anneal", "6", "--free-bits", "0.1", "--word-dropout", "0.2",
                 "--latent-mode", "both", *QUICK]) == 0
    return out, capsys.readouterr().out


def test_train_reports_the_elbo_collapse_and_reconstructions(run):
    out, printed = run
    assert "eval: train loss" in printed and "val recon" in printed and "val kl" in printed
    assert "active units" in printed and " -> " in printed
    ckpt = load_checkpoint(out / "ckpt")
    assert ckpt.model_config["type"] == "SentenceVAE"
    assert ckpt.model_config["config"]["latent_mode"] == "both"
    objective = ckpt.trainer_state["objective"]
    assert objective["name"] == "vae" and objective["kl_anneal"] == 6
    assert objective["free_bits"] == 0.1 and objective["word_dropout"] == 0.2


def test_every_action_reads_the_checkpoint(run, lines, capsys):
    out, _ = run
    ckpt = str(out / "ckpt")
    assert main(["vae", "eval", "--ckpt", ckpt]) == 0
    printed = capsys.readouterr().out
    assert "negative ELBO" in printed and "token accuracy" in printed
    assert "active units" in printed
    assert main(["vae", "reconstruct", "--ckpt", ckpt, "--text", "the cat sat",
                 "--text", "a dog"]) == 0
    assert capsys.readouterr().out.count(" -> ") == 2
    assert main(["vae", "reconstruct", "--ckpt", ckpt, "--data", str(lines), "--n", "3"]) == 0
    assert capsys.readouterr().out.count(" -> ") == 3
    assert main(["vae", "sample", "--ckpt", ckpt, "--n", "3", "--temperature", "1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert main(["vae", "interpolate", "--ckpt", ckpt, "--from", "the cat sat",
                 "--to", "a dog ran", "--steps", "4"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and printed[0].startswith("0.00") and printed[-1].startswith("1.00")
    assert main(["vae", "denoise", "--ckpt", ckpt, "--data", str(lines), "--n", "4",
                 "--mask", "0.3"]) == 0
    assert "token accuracy against the clean sentences" in capsys.readouterr().out


def test_resume_goes_on_exactly(tmp_path, lines, capsys):
    args = ["--data", str(lines), "--kl-anneal", "6", "--word-dropout", "0.3",
            "--free-bits", "0.05", *QUICK, "--eval_interval", "2", "--log_interval", "1",
            "--lr_decay_iters", "8"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["vae", "train", "--out", str(straight), "--max_iters", "8", *args]) == 0
    assert main(["vae", "train", "--out", str(split), "--max_iters", "4", *args]) == 0
    assert main(["vae", "train", "--out", str(split), "--max_iters", "8", "--resume",
                 "--quiet"]) == 0
    capsys.readouterr()

    def losses(run):
        with open(run / "log.csv") as f:
            return [(r["step"], r["loss"]) for r in csv.DictReader(f) if r["kind"] == "step"]
    assert losses(split) == losses(straight) and len(losses(straight)) == 8


@pytest.mark.parametrize("args, fragments", [
    (["vae", "train", "--out", "{tmp}/x"], ["--data FILE is required"]),
    (["vae", "train", "--data", "{tmp}/missing.txt", "--out", "{tmp}/x"], ["no such file"]),
    (["vae", "train", "--data", "{lines}", "--out", "{tmp}/x", "--positions", "rope"],
     ["--positions", "not an option"]),
    (["vae", "train", "--data", "{lines}", "--out", "{tmp}/x", "--block_size", "2"],
     ["no line of at most 2 tokens"]),
    (["vae", "train", "--data", "{lines}", "--out", "{tmp}/x", "--word-dropout", "1.5"],
     ["word_dropout"]),
    (["vae", "train", "--data", "{lines}", "--out", "{tmp}/x", "--latent", "0"], ["latent"]),
    (["vae", "train", "--out", "{tmp}/x", "--resume"], ["--resume: no checkpoint"]),
    (["vae", "reconstruct", "--ckpt", "{tmp}/none", "--text", "a"], ["does not exist"]),
])
def test_one_line_errors(args, fragments, tmp_path, lines, capsys, one_line_error):
    args = [a.format(tmp=tmp_path, lines=lines) for a in args]
    one_line_error(capsys, args, *fragments)


def test_reading_errors(run, tmp_path, capsys, one_line_error):
    out, _ = run
    ckpt = str(out / "ckpt")
    one_line_error(capsys, ["vae", "reconstruct", "--ckpt", ckpt], "--text S", "--data FILE")
    one_line_error(capsys, ["vae", "reconstruct", "--ckpt", ckpt, "--text", "a" * 40],
                   "longer than the model's max_len 16")
    one_line_error(capsys, ["vae", "reconstruct", "--ckpt", ckpt, "--text", "Zebra!"],
                   "Z")
    one_line_error(capsys, ["vae", "interpolate", "--ckpt", ckpt, "--from", "a", "--to", "b",
                            "--steps", "1"], "--steps must be >= 2")
    one_line_error(capsys, ["vae", "denoise", "--ckpt", ckpt, "--text", "a cat",
                            "--drop", "1.2"], "--drop must be in [0, 1)")
    one_line_error(capsys, ["vae", "train", "--data", str(tmp_path / "lines.txt"), "--out",
                            str(out)], "already holds a run")
    one_line_error(capsys, ["vae", "train", "--out", str(out), "--resume", "--latent", "8"],
                   "drop --latent")


def test_a_checkpoint_of_another_model_is_refused(tmp_path, capsys, one_line_error):
    from numpyllm.nn import GPT, GPTConfig
    from numpyllm.tokenizers import CharTokenizer
    from numpyllm.training.checkpoint import save_checkpoint
    tok = CharTokenizer.from_text("abc")
    save_checkpoint(tmp_path / "gpt", step=0, model=GPT(GPTConfig(
        vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8), rng=0),
        tokenizer=tok)
    one_line_error(capsys, ["vae", "sample", "--ckpt", str(tmp_path / "gpt")],
                   "a GPT, not a SentenceVAE")


def test_the_other_commands_refuse_a_vae_in_one_line(run, capsys, one_line_error):
    out, _ = run
    one_line_error(capsys, ["eval", "--ckpt", str(out / "ckpt")], "numpyllm vae eval")
    one_line_error(capsys, ["train", "--out", str(out), "--resume"],
                   "numpyllm vae train --resume")
    one_line_error(capsys, ["sample", "--ckpt", str(out / "ckpt")], "does not generate text")
