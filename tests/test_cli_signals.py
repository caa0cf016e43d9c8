"""Ctrl-C (SIGINT) and SIGTERM during `numpyllm train`, sent to a real process: the last
completed step is saved, the command says where and how to resume, exits 128 + the
signal's number, and the run resumes from there."""
import csv
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from numpyllm.training.checkpoint import load_checkpoint
from numpyllm.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16",
        "--batch_size", "4", "--eval_iters", "2", "--samples", "0", "--no_plot"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def start_training(tmp_path, *extra):
    data = tmp_path / "poem.txt"
    data.write_text("the quick brown fox jumps over the lazy dog.\n" * 40, encoding="utf-8")
    out = tmp_path / "run"
    env = {**os.environ, "NUMPYLLM_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "numpyllm", "train", "--data", str(data), "--out", str(out),
         "--max_iters", "1000000", "--eval_interval", "1000000", "--log_interval", "1",
         *TINY, *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, out


def wait_for_step(proc, step: int, timeout: float = 60.0) -> list:
    """Read the progress lines until one for `step` (or later) has been printed (on a
    thread, so that a process printing nothing cannot hang the test)."""
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")],
                     daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        seen.append(line)
        head = line.split("|")[0].split()
        if len(head) >= 2 and head[0] == "step" and "/" in head[1] \
                and int(head[1].split("/")[0]) >= step:
            return seen
    proc.kill()
    proc.wait()
    raise AssertionError(f"no progress line for step {step}: {seen}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_last_step_and_the_run_resumes_from_it(tmp_path, signum, capsys):
    proc, out = start_training(tmp_path)
    lines = wait_for_step(proc, 3)
    assert all("\r" not in line for line in lines)        # a pipe gets lines, no bar
    assert " left" in lines[-1]                            # with the time left
    proc.send_signal(signum)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 128 + signum, err
    saved = load_checkpoint(out / "ckpt").step
    assert saved >= 3
    name = signal.Signals(signum).name
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"numpyllm train: {name}:") and "Traceback" not in err
    assert f"saved step {saved} in {out / 'ckpt' / f'step-{saved:06d}'}" in last
    assert f"numpyllm train --out {out} --resume" in last
    # the log holds exactly the steps that were saved
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "log.csv"))]
    assert steps == list(range(1, saved + 1))

    assert main(["train", "--out", str(out), "--resume", "--max_iters", str(saved + 2),
                 "--quiet", "--samples", "0", "--no_plot"]) == 0
    assert f"resuming at step {saved}" in capsys.readouterr().out
    assert load_checkpoint(out / "ckpt").step == saved + 2
    rows = [(int(r["step"]), r["kind"]) for r in csv.DictReader(open(out / "log.csv"))]
    assert [s for s, k in rows if k == "step"] == list(range(1, saved + 3))


def test_a_second_ctrl_c_during_the_save_quits_and_leaves_the_previous_checkpoint(
        tmp_path, capsys, monkeypatch):
    """In this process, to time the signals exactly: the first Ctrl-C comes at step 5 (after
    the checkpoint of step 3), the second in the middle of writing step 5's checkpoint."""
    import numpyllm.training.checkpoint as checkpoint
    from numpyllm.training import Trainer
    data = tmp_path / "poem.txt"
    data.write_text("the quick brown fox jumps over the lazy dog.\n" * 40, encoding="utf-8")
    out = tmp_path / "run"
    real_step, real_save = Trainer.train_step, checkpoint.save_file

    def step(self):
        info = real_step(self)
        if self.step == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    def save_file(tensors, path, *args, **kwargs):
        real_save(tensors, path, *args, **kwargs)
        if "step-000005" in str(path):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Trainer, "train_step", step)
    monkeypatch.setattr(checkpoint, "save_file", save_file)
    code = main(["train", "--data", str(data), "--out", str(out), "--max_iters", "9",
                 "--eval_interval", "3", "--quiet", *TINY])
    err = capsys.readouterr().err
    assert code == 130, err
    assert "interrupted again: stopped without saving step 5" in err
    assert f"the newest checkpoint is {out / 'ckpt' / 'step-000003'}" in err
    assert load_checkpoint(out / "ckpt").step == 3                   # complete and verified
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["latest", "step-000003"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handlers restored
