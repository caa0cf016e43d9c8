"""`CSVLogger`: the training events (steps and evaluations) as rows of a CSV file, which
`numpyllm plot` draws. Written at the first row, and trimmed on resume, atomically."""
from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["CSVLogger"]


class CSVLogger:
    """A callback that appends step and eval events to a CSV file:
    ``step,kind,loss,train_loss,val_loss,val_perplexity,lr,grad_norm,tokens_per_sec,
    val_accuracy,val_margin`` (the last two where the objective reports them: a
    classifier, DPO). Appending to a log with fewer columns (an older run's) keeps its
    header's columns.

    The file is written at the first event, not before: a run that fails before its
    first step leaves no header-only log behind (and, with ``append=False``, an older
    log in its place untouched). ``append=True`` adds to an existing log; give it
    `resume_step`, the step the run resumes from, and the rows of later steps (written
    by the run that stopped after its last checkpoint) are dropped first, so that each
    step is in the log once. The file is replaced atomically.
    """

    COLUMNS = ("step", "kind", "loss", "train_loss", "val_loss", "val_perplexity", "lr",
               "grad_norm", "tokens_per_sec", "val_accuracy", "val_margin")

    def __init__(self, path, append: bool = False, *, resume_step: int | None = None):
        self.path = Path(path)
        self._header = None                 # the columns of the file, once known
        self._fresh = not append            # (over)write the file, header first, at the first row
        if append and resume_step is not None and self.path.is_file():
            self._drop_rows_after(resume_step)

    def _drop_rows_after(self, step: int) -> None:
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        keep = rows[:1] + [r for r in rows[1:] if not _after(r, step)]
        if len(keep) == len(rows):
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(keep)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)     # a reader sees the old log or the new, never half
        finally:
            tmp.unlink(missing_ok=True)

    def __call__(self, event: dict) -> None:
        if event["kind"] not in ("step", "eval"):
            return
        row = dict(event)
        if "tokens" in event and event.get("seconds"):
            row["tokens_per_sec"] = event["tokens"] / event["seconds"]
        header = self._fresh or not self.path.is_file() or self.path.stat().st_size == 0
        if header:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        columns = self.COLUMNS if header else self._columns()
        with open(self.path, "w" if self._fresh else "a", newline="") as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(columns)
            writer.writerow([_fmt(row.get(c, "")) for c in columns])
        self._fresh = False
        self._header = columns

    def _columns(self) -> tuple:
        """The columns of the log being appended to (its header, read once)."""
        if self._header is None:
            with open(self.path, newline="") as f:
                first = next(csv.reader(f), [])
            self._header = tuple(first) if first and first[0] == "step" else self.COLUMNS
        return self._header


def _after(row: list, step: int) -> bool:
    """Whether a log row belongs to a step after `step` (a row without a number stays)."""
    try:
        return int(row[0]) > step
    except (IndexError, ValueError):
        return False


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value
