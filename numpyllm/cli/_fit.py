"""Running a Trainer from the command line (``numpyllm train``, ``finetune``, ...): the
learning-rate line, the progress lines, and a clean stop on Ctrl-C or SIGTERM that saves
the last completed step and says how to carry on (`fit`)."""
from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from . import CLIError


def lr_at(cfg, step: int) -> float:
    from ..optim import CosineWithWarmup
    if not cfg.decay_lr:
        return cfg.learning_rate
    return CosineWithWarmup(cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)(step)


def schedule_line(cfg, step: int) -> str:
    lr = lr_at(cfg, step)
    if not cfg.decay_lr:
        return f"learning rate: {lr:.2e}, constant"
    if step < cfg.warmup_iters:
        return (f"learning rate: {lr:.2e} at step {step}, warming up to {cfg.learning_rate:.2e} "
                f"at step {cfg.warmup_iters}, cosine decay to {cfg.min_lr:.2e} at step "
                f"{cfg.lr_decay_iters} (--lr_decay_iters)")
    if step < cfg.lr_decay_iters:
        return (f"learning rate: {lr:.2e} at step {step}, cosine decay to {cfg.min_lr:.2e} at "
                f"step {cfg.lr_decay_iters} (--lr_decay_iters)")
    return (f"learning rate: {lr:.2e} (--min_lr: the cosine decay ended at step "
            f"{cfg.lr_decay_iters}, --lr_decay_iters)")


# ---------------------------------------------------------------------- progress
def clock(seconds: float) -> str:
    """1:05 or 1:02:03."""
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Prints the progress of a run: every logged step with its time elapsed and left,
    and every evaluation.

        step   120/2000   6% | loss 2.3456 | lr 9.97e-04 | 5,432 tok/s | 0:12 elapsed, 3:08 left

    On a terminal that line is one live line, rewritten in place, and the evaluation
    lines stay above it; anywhere else (a file, a pipe) every line is a line of its own,
    with no carriage returns. `--quiet` drops the step lines, not the evaluations.
    """

    def __init__(self, total: int, start: int, quiet: bool, stream=None, clock=time.perf_counter):
        self.total, self.start, self.quiet = total, start, quiet
        self.stream = stream if stream is not None else sys.stdout
        try:
            self.live = not quiet and self.stream.isatty()
        except (AttributeError, ValueError):
            self.live = False
        self.clock = clock
        self.t0 = clock()
        self._shown = 0                     # width of the live line on the screen, 0: none

    def __call__(self, event: dict) -> None:
        if event["kind"] == "step" and not self.quiet:
            self._line(self.step_line(event), keep=not self.live)
        elif event["kind"] == "eval":
            line = (f"step {event['step']:5d} | eval: train loss {event['train_loss']:.4f}"
                    + (f", val loss {event['val_loss']:.4f}" if "val_loss" in event else "")
                    + (f" (perplexity {event['val_perplexity']:.2f})"
                       if "val_perplexity" in event else "")
                    + "".join(f", val {key[4:]} {value:.4f}" for key, value in event.items()
                              if key.startswith("val_") and key not in ("val_loss",
                                                                        "val_perplexity")))
            self._line(line, keep=True)

    def step_line(self, event: dict) -> str:
        step, total = event["step"], self.total
        elapsed = self.clock() - self.t0
        done = step - self.start
        left = (total - step) * elapsed / done if done > 0 else float("nan")
        tps = event["tokens"] / max(event["seconds"], 1e-9)
        width = len(str(total))
        return (f"step {step:{width}d}/{total} {100 * step / max(total, 1):3.0f}% | loss "
                f"{event['loss']:.4f} | lr {event['lr']:.2e} | {tps:,.0f} tok/s | "
                f"{clock(elapsed)} elapsed, "
                + (f"{clock(left)} left" if math.isfinite(left) else "? left"))

    def _line(self, text: str, keep: bool) -> None:
        if self._shown:                                   # replace the live line
            self.stream.write("\r" + " " * self._shown + "\r")
            self._shown = 0
        if keep:
            self.stream.write(text + "\n")
        else:
            self.stream.write(text)
            self._shown = len(text)
        self.stream.flush()

    def end_line(self) -> str:
        """What ends the live line, if one is shown ("\\n" or ""), for a message written
        past this object (from a signal handler); the line counts as ended."""
        shown, self._shown = self._shown, 0
        return "\n" if shown else ""

    def close(self) -> None:
        """End the live line (it stays on the screen) so that what follows starts a line."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0


# ---------------------------------------------------------------------- signals
class StopOnSignal:
    """While active (``with StopOnSignal() as stop``), SIGINT (Ctrl-C) and SIGTERM ask the
    trainer to stop after the current step, which it then saves, instead of ending the
    process: ``stop()`` says whether one came, ``stop.signum`` which. The first prints
    `message` (or what it returns, if callable). A second signal
    raises KeyboardInterrupt at once (a checkpoint being written stays atomic: the
    previous one is still complete). Signal handlers can only be set in the main
    thread; elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, message=""):
        self.signum = None
        self.message = message          # a str, or a callable that returns one
        self._previous = {}
        self._fd = None

    def __enter__(self):
        try:
            self._fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):      # a stream without a file (tests)
            self._fd = None
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        message = self.message() if callable(self.message) else self.message
        if not message:
            return
        if self._fd is not None:   # os.write: a print here could re-enter a print it interrupted
            os.write(self._fd, message.encode())
        else:
            try:
                sys.stderr.write(message)
            except RuntimeError:
                pass


def newest(ckpt_dir: Path, bare: bool = False) -> str:
    """Where the newest complete checkpoint is, for a message."""
    from ..training.checkpoint import CheckpointError, resolve
    try:
        path = str(resolve(ckpt_dir))
    except CheckpointError:
        return "no checkpoint" if bare else "there is no checkpoint yet"
    return path if bare else f"the newest checkpoint is {path}"


def fit(trainer, *, command: str, ckpt_dir: Path, tokenizer, progress: Progress,
        resume: str):
    """``trainer.fit`` with checkpoints in `ckpt_dir`, stopping cleanly on a signal.

    Returns ``(evals, None)`` when the run ends, or ``(None, exit_code)`` when a signal
    stopped it (the last completed step saved; `resume` is the command that carries on)
    or a second Ctrl-C ended it at once. A diverged run is a CLIError naming the newest
    checkpoint. `command` names the program in the messages ("train", "finetune sft")."""
    from ..training import NonFiniteError
    saves, first = [], trainer.step
    trainer.callbacks.append(
        lambda e: saves.append(e["path"]) if e["kind"] == "checkpoint" else None)

    def stop_message() -> str:
        return progress.end_line() + (f"numpyllm {command}: stopping: saving the last "
                                      "completed step (a second Ctrl-C quits without saving it)\n")
    try:
        with StopOnSignal(stop_message) as stop:
            evals = trainer.fit(checkpoint_dir=ckpt_dir, tokenizer=tokenizer, stop=stop)
    except KeyboardInterrupt:
        progress.close()
        print(f"numpyllm {command}: interrupted again: stopped without saving step "
              f"{trainer.step}; {newest(ckpt_dir)}", file=sys.stderr)
        return None, 130
    except NonFiniteError as exc:
        progress.close()
        raise CLIError(f"the run diverged ({exc}); {newest(ckpt_dir)}: try a lower "
                       "--learning_rate") from None
    finally:
        progress.close()
    if stop.signum is None:
        return evals, None
    signame = signal.Signals(stop.signum).name
    if saves:
        what = f"saved step {trainer.step} in {saves[-1]}"
    elif trainer.step > 0:
        what = f"step {trainer.step} is in {newest(ckpt_dir, bare=True)}"
    else:
        print(f"numpyllm {command}: {signame}: stopped before the first step; nothing to save",
              file=sys.stderr)
        return None, 128 + stop.signum
    print(f"numpyllm {command}: {signame}: stopped after {trainer.step - first} steps this "
          f"run; {what}; carry on with: {resume}", file=sys.stderr)
    return None, 128 + stop.signum


def fit_logged(trainer, *, out: Path, ckpt, quiet: bool, command: str, tokenizer):
    """A training command's run: ``out/log.csv`` (appended to when resuming `ckpt`), the
    progress lines, `fit` with checkpoints in ``out/ckpt``, and the closing line. Returns
    None when the run ended, else the exit code `fit` gave (a signal stopped it)."""
    from ..training import CSVLogger
    ckpt_dir = out / "ckpt"
    logger = CSVLogger(out / "log.csv", append=ckpt is not None,
                       resume_step=ckpt.step if ckpt is not None else None)
    progress = Progress(trainer.config.max_iters, trainer.step, quiet)
    trainer.callbacks += [logger, progress]
    start, first = time.perf_counter(), trainer.step
    _, code = fit(trainer, command=command, ckpt_dir=ckpt_dir, tokenizer=tokenizer,
                  progress=progress,
                  resume=f"numpyllm {command} --out {shlex.quote(str(out))} --resume")
    if code is not None:
        return code
    print(f"trained {trainer.step - first} steps in {time.perf_counter() - start:.1f} s; "
          f"checkpoint in {ckpt_dir}")
    return None

