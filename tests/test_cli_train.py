"""`numpyllm train | eval | sample` end to end on tiny settings, and their one-line errors."""
import csv

import pytest

from numpyllm.cli import main

TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
        "--batch_size", "4", "--eval_iters", "2", "--samples", "1", "--sample_tokens", "20",
        "--quiet", "--no_plot"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\n" * 40, encoding="utf-8")
    return path


def test_train_resume_eval_sample(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(text_file), "--out", str(out), "--max_iters", "6",
            "--eval_interval", "3", *TINY]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "final val loss" in printed and "--- sample 1 ---" in printed
    assert (out / "ckpt" / "latest").read_text().strip() == "step-000006"
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["step"] for r in rows if r["kind"] == "eval"] == ["3", "6"]

    assert main(["train", "--data", str(text_file), "--out", str(out), "--resume",
                 "--max_iters", "9", "--eval_interval", "3", *TINY]) == 0
    assert "resuming at step 6" in capsys.readouterr().out
    assert (out / "ckpt" / "latest").read_text().strip() == "step-000009"
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [r["step"] for r in rows if r["kind"] == "eval"] == ["3", "6", "9"]

    assert main(["eval", "--ckpt", str(out / "ckpt"), "--data", str(text_file), "--split", "val"]) == 0
    line = capsys.readouterr().out
    assert "loss" in line and "perplexity" in line and "step 9" in line

    outputs = []
    for _ in range(2):
        assert main(["sample", "--ckpt", str(out / "ckpt"), "--prompt", "the ", "--seed", "3",
                     "--max_new_tokens", "15"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].startswith("the ")


def test_default_corpus_runs(tmp_path, capsys):
    pytest.importorskip("sysconfig")
    from numpyllm.data.corpus import default_corpus
    try:
        default_corpus()
    except FileNotFoundError:
        pytest.skip("this Python ships no standard-library sources")
    assert main(["train", "--out", str(tmp_path), "--max_iters", "2", "--eval_interval", "2",
                 *TINY]) == 0
    assert "Python standard library" in capsys.readouterr().out


def _one_line_error(capsys, args, match):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"numpyllm {args[0]}: error:") and match in err, err


def test_bad_arguments_give_one_line_errors(tmp_path, text_file, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    bad_json = tmp_path / "c.json"
    bad_json.write_text("{oops")
    unknown_key = tmp_path / "k.json"
    unknown_key.write_text('{"n_layers": 3}')
    out = ["--out", str(tmp_path / "o"), *TINY]
    _one_line_error(capsys, ["train", "--data", str(tmp_path / "missing.txt"), *out], "no such file")
    _one_line_error(capsys, ["train", "--data", str(empty), *out], "empty")
    _one_line_error(capsys, ["train", "--data", str(binary), *out], "not UTF-8")
    _one_line_error(capsys, ["train", "--data", str(text_file), *out, "--block_size", "5000"],
                    "fewer than block_size")
    _one_line_error(capsys, ["train", "--data", str(text_file), *out, "--config", str(bad_json)],
                    "not valid JSON")
    _one_line_error(capsys, ["train", "--data", str(text_file), *out, "--config", str(unknown_key)],
                    "unknown options")
    _one_line_error(capsys, ["train", "--data", str(text_file), *out, "--n_head", "3"],
                    "divisible")
    _one_line_error(capsys, ["train", "--data", str(text_file), *out, "--resume"], "no checkpoint")
    _one_line_error(capsys, ["eval", "--ckpt", str(tmp_path / "nothing")], "no checkpoint")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--no-such-option"])
    assert exc.value.code == 2


# ---------------------------------------------------------------------- progress
class _Stream:
    """A stdout stand-in that says whether it is a terminal."""

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def _feed(progress):
    for step in (1, 10, 20):
        progress({"kind": "step", "step": step, "loss": 2.5, "lr": 1e-3, "tokens": 768,
                  "seconds": 0.05})
        if step == 10:
            progress({"kind": "eval", "step": 10, "train_loss": 2.4, "val_loss": 2.6,
                      "val_perplexity": 13.5})
    progress.close()


def test_progress_gives_the_time_left_in_lines_to_a_file():
    from numpyllm.cli.train import Progress
    ticks = iter(range(0, 100, 2))                 # the clock: 0 at the start, then 2 s a look
    stream = _Stream(tty=False)
    _feed(Progress(40, 0, quiet=False, stream=stream, clock=lambda: next(ticks)))
    lines = stream.text.splitlines()
    assert "\r" not in stream.text and len(lines) == 4
    assert lines[0].startswith("step  1/40   2% | loss 2.5000 | lr 1.00e-03 | 15,360 tok/s")
    assert lines[0].endswith("0:02 elapsed, 1:18 left")       # 39 steps at 2 s each
    assert lines[1].endswith("0:04 elapsed, 0:12 left")       # 30 steps at 0.4 s each
    assert lines[2].startswith("step    10 | eval: train loss 2.4000, val loss 2.6000")
    assert lines[3].startswith("step 20/40  50%")


def test_progress_is_one_live_line_on_a_terminal_with_evaluations_above_it():
    from numpyllm.cli.train import Progress
    stream = _Stream(tty=True)
    _feed(Progress(40, 0, quiet=False, stream=stream))
    screen = []                                   # what a terminal shows: \r returns the cursor
    for line in stream.text.split("\n"):
        screen.append(line.split("\r")[-1].rstrip())
    assert screen[0].startswith("step    10 | eval:")
    assert screen[1].startswith("step 20/40  50%") and screen[1].endswith(" left")
    assert screen[2:] == [""]
    assert "\r" in stream.text


def test_quiet_progress_prints_only_evaluations():
    from numpyllm.cli.train import Progress
    stream = _Stream(tty=True)
    _feed(Progress(40, 0, quiet=True, stream=stream))
    assert stream.text.splitlines() == [
        "step    10 | eval: train loss 2.4000, val loss 2.6000 (perplexity 13.50)"]


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`numpyllm ... | head`: when the reader goes away, no BrokenPipeError traceback."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "numpyllm", "gradcheck", "--list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()                   # the reader goes away after 10 bytes
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
