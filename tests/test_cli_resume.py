"""`numpyllm train --resume` and `numpyllm eval` as a new user meets them: the checkpoint
remembers its text, the learning rate goes on where it was, the log holds each step once,
and the mistakes (a moved or changed text, --out naming a file) are one-line errors."""
import csv
import shutil

import pytest

from numpyllm.training.checkpoint import load_checkpoint
from numpyllm.cli import main

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
        "--batch_size", "4", "--eval_iters", "2", "--samples", "0", "--quiet", "--no_plot"]
POEM = "the quick brown fox jumps over the lazy dog.\n" * 40


@pytest.fixture
def run(tmp_path, capsys):
    """A finished 6-step run on a text file: (text file, --out directory)."""
    data = tmp_path / "poem.txt"
    data.write_text(POEM, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--max_iters", "6",
                 "--eval_interval", "3", "--log_interval", "1", "--learning_rate", "3e-3",
                 *TINY]) == 0
    capsys.readouterr()
    return data, out



def log_rows(out):
    return [(int(r["step"]), r["kind"], r["lr"]) for r in csv.DictReader(open(out / "log.csv"))]


# ---------------------------------------------------------------------- the text it was trained on
def test_the_checkpoint_records_its_text(run):
    data, out = run
    recorded = load_checkpoint(out / "ckpt").trainer_state["data"]
    assert recorded["source"] == "file" and recorded["path"] == str(data.resolve())
    assert recorded["bytes"] == len(POEM.encode()) and len(recorded["sha256"]) == 64
    assert recorded["val_fraction"] == 0.1


def test_resume_and_eval_without_data_use_the_recorded_text(run, capsys):
    data, out = run
    assert main(["train", "--out", str(out), "--resume", "--max_iters", "8", "--quiet",
                 "--samples", "0", "--no_plot"]) == 0
    printed = capsys.readouterr().out
    assert f"{data} (the checkpoint's text)" in printed and "resuming at step 6" in printed
    assert main(["eval", "--ckpt", str(out / "ckpt"), "--split", "val"]) == 0
    without = capsys.readouterr().out
    assert main(["eval", "--ckpt", str(out / "ckpt"), "--split", "val", "--data", str(data)]) == 0
    assert capsys.readouterr().out.split("(step")[0] == without.split("(step")[0]


def test_a_moved_or_changed_text_is_named_with_the_data_to_pass(run, capsys, one_line_error):
    data, out = run
    moved = data.with_name("moved.txt")
    shutil.move(data, moved)
    for args in (["train", "--out", str(out), "--resume", "--max_iters", "8"],
                 ["eval", "--ckpt", str(out / "ckpt")]):
        one_line_error(capsys, args, str(data.resolve()), "no longer there", "--data FILE")
    # the same text elsewhere is the same text: found by its content
    assert main(["train", "--out", str(out), "--resume", "--max_iters", "8", "--data",
                 str(moved), "--quiet", "--samples", "0", "--no_plot"]) == 0
    capsys.readouterr()
    moved.write_text(POEM.upper(), encoding="utf-8")           # the new record names moved.txt
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--max_iters", "9"],
                   str(moved.resolve()), "has changed since", "--data FILE")
    one_line_error(capsys, ["eval", "--ckpt", str(out / "ckpt")], "has changed since")


def test_resuming_on_another_text_needs_allow_new_data(run, capsys, one_line_error):
    data, out = run
    other = data.with_name("other.txt")
    other.write_text(POEM[::-1], encoding="utf-8")              # same characters, new order
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--max_iters", "8",
                            "--data", str(other)],
                   "is not the text this run was trained on", str(data.resolve()),
                   "--allow_new_data")
    assert main(["train", "--out", str(out), "--resume", "--max_iters", "8", "--data",
                 str(other), "--allow_new_data", "--quiet", "--samples", "0", "--no_plot"]) == 0
    assert "new: the checkpoint was trained on another text" in capsys.readouterr().out
    assert load_checkpoint(out / "ckpt").trainer_state["data"]["path"] == str(other.resolve())
    # eval scores any text it is given; a character the tokenizer never saw is named plainly
    strange = data.with_name("strange.txt")
    strange.write_text("# hello\n" * 50, encoding="utf-8")
    one_line_error(capsys, ["eval", "--ckpt", str(out / "ckpt"), "--data", str(strange)],
                   "character '#'", "the checkpoint's tokenizer was built from another text")


def test_a_checkpoint_without_a_record_falls_back_to_the_default_corpus(run, capsys,
                                                                        one_line_error):
    """Checkpoints saved before the record existed: as before, the default corpus, and a
    plain error when it does not fit their tokenizer."""
    import json
    data, out = run
    step_dir = load_checkpoint(out / "ckpt").path
    manifest = json.loads((step_dir / "manifest.json").read_text())
    del manifest["trainer"]["data"]
    (step_dir / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(capsys, ["eval", "--ckpt", str(out / "ckpt")], "the Python standard library",
                   "is not in the vocabulary", "tokenizer was built from another text")


# ---------------------------------------------------------------------- the learning rate
def test_a_larger_max_iters_keeps_the_learning_rate_continuous(run, capsys):
    """The schedule is a function of the step and the checkpoint's settings: training on
    past its lr_decay_iters (6) goes on at min_lr, never back up."""
    data, out = run
    assert main(["train", "--out", str(out), "--resume", "--max_iters", "12", "--quiet",
                 "--samples", "0", "--no_plot"]) == 0
    assert "cosine decay ended at step 6" in capsys.readouterr().out
    lrs = [float(lr) for step, kind, lr in log_rows(out) if kind == "step"]
    assert len(lrs) == 12
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(3e-3)                      # the first run's, not the default
    assert all(b <= a for a, b in zip(lrs[peak:], lrs[peak + 1:])), lrs
    assert lrs[6:] == [pytest.approx(1e-4)] * 6                 # min_lr from step 6 on
    # a new --lr_decay_iters is obeyed, and the jump it causes is said aloud
    assert main(["train", "--out", str(out), "--resume", "--max_iters", "14",
                 "--lr_decay_iters", "40", "--quiet", "--samples", "0", "--no_plot"]) == 0
    assert "note: the settings given move the learning rate at step 12" in capsys.readouterr().out


def test_resume_refuses_what_cannot_be(run, capsys, one_line_error):
    data, out = run
    one_line_error(capsys, ["train", "--out", str(out), "--resume"], "at step 6",
                   "nothing to train", "larger --max_iters")
    one_line_error(capsys, ["train", "--out", str(out), "--resume", "--max_iters", "9",
                            "--n_layer", "3"], "--n_layer 3 differs from the checkpoint's 1")
    one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), *TINY],
                   "already holds a run", "--resume")


# ---------------------------------------------------------------------- the log
def test_crash_and_resume_leave_each_step_in_the_log_once(run, capsys, monkeypatch):
    data, out = run
    from numpyllm.training import Trainer
    real = Trainer.train_step

    def crash_after_step_10(self):
        if self.step == 10:
            raise RuntimeError("the machine went away")
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", crash_after_step_10)
    with pytest.raises(RuntimeError):        # a crash, not a user error: no checkpoint at 10
        main(["train", "--out", str(out), "--resume", "--max_iters", "12", *TINY])
    assert load_checkpoint(out / "ckpt").step == 9 and max(s for s, _, _ in log_rows(out)) == 10
    monkeypatch.setattr(Trainer, "train_step", real)
    assert main(["train", "--out", str(out), "--resume", "--max_iters", "12", *TINY]) == 0
    rows = [(s, k) for s, k, _ in log_rows(out)]
    assert len(rows) == len(set(rows)), rows
    assert [s for s, k in rows if k == "step"] == list(range(1, 13))
    assert [s for s, k in rows if k == "eval"] == [3, 6, 9, 12]


def test_a_failed_run_leaves_no_header_only_log(tmp_path, capsys, monkeypatch, one_line_error):
    data = tmp_path / "poem.txt"
    data.write_text(POEM, encoding="utf-8")
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), *TINY,
                            "--n_head", "3"], "divisible")
    assert not (out / "log.csv").exists()
    from numpyllm.training import NonFiniteError, Trainer

    def diverge(self):
        raise NonFiniteError("step 0: the loss is nan")

    monkeypatch.setattr(Trainer, "train_step", diverge)     # fails at its first step
    one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), *TINY],
                   "the run diverged (step 0: the loss is nan)", "there is no checkpoint yet",
                   "--learning_rate")
    assert not (out / "log.csv").exists()


# ---------------------------------------------------------------------- --out
def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys, one_line_error):
    data = tmp_path / "poem.txt"
    data.write_text(POEM, encoding="utf-8")
    one_line_error(capsys, ["train", "--data", str(data), "--out", str(data), *TINY],
                   f"--out {data}: is a file, not a directory")
    one_line_error(capsys, ["train", "--data", str(data), "--out", str(data / "run"), *TINY],
                   f"is below {data}, which is a file")
    one_line_error(capsys, ["train", "--data", str(data), "--out", str(data), "--resume", *TINY],
                   "is a file")
