"""What every objective is: a way to turn data into batches and a batch into a loss.

An **objective** says what a model learns to predict. Given data (a token stream, or a
set of examples), it draws a batch at random (`sample`) or walks the data in order
(`batches`), and turns a batch into the model's inputs, the targets (with the positions
that do not count set to -100) and the attention masks, and a loss: the mean over the
targets that count. The `Trainer` runs every objective the same way: gradient
accumulation, clipping, schedules, data parallelism on threads, evaluation, checkpoints
and exact resume know nothing of which objective it is.

A `Batch` holds named arrays, each with the batch on axis 0, and how many targets each
row counts. That is all data parallelism needs: slice i of the batch is weighted by its
share of the counted targets, so the slices' gradients add up to the batch's mean-loss
gradient (`numpyllm.training.data_parallel`).

Randomness (which window, which prefix length, which tokens are masked) comes only from
the generator passed in: the Trainer's, whose state its checkpoints keep, so a resumed
run draws exactly what the uninterrupted one would have.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Iterator

import numpy as np

from ...data import TokenWindows
from ...validation import positive_int

__all__ = ["Batch", "Objective", "WindowObjective", "ExampleObjective"]


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass
class Batch:
    """One batch: `arrays` (name -> array, batch on axis 0), `counts` ``[B]`` (the targets
    each row counts in the mean loss) and `tokens` (input tokens, for tokens/s)."""

    arrays: dict
    counts: np.ndarray
    tokens: int = 0

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def rows(self, rows: slice) -> "Batch":
        """The rows `rows` of every array: a slice of the batch, for one thread."""
        part = {k: v[rows] for k, v in self.arrays.items()}
        n = len(self.counts[rows])
        return Batch(part, self.counts[rows], self.tokens * n // max(len(self), 1))


@dataclass
class Objective:
    """The base of every objective (see the module doc). Subclasses are dataclasses whose
    fields are their settings, so `to_dict` / `from_dict` round-trip them through a
    checkpoint's JSON, and define:

    - ``name``: how a checkpoint and the command line call it;
    - ``models``: the names of the model classes it trains;
    - ``dataset(data)``: the data, checked and made ready for sampling;
    - ``sample(dataset, batch_size, rng) -> Batch``: a random batch;
    - ``batches(dataset, batch_size, rng) -> Iterator[Batch]``: every example once, in
      order (evaluation), `rng` drawing whatever the objective corrupts at random;
    - ``loss(model, batch) -> Tensor``: the mean loss over the counted targets;
    - ``scores(model, batch) -> dict``: sums for evaluation (at least ``loss``, the summed
      loss, and ``count``; e.g. ``correct`` for an accuracy).

    Two class settings say what the Trainer's periodic evaluation reports besides the
    losses: `perplexity` (whether exp(loss) means anything: not for DPO or a classifier)
    and `eval_scores`, names of `scores` sums to report on the validation batches as a
    mean per counted example (``accuracy`` is ``correct`` per count), e.g. DPO's
    ``("margin", "accuracy")``.
    """

    name: ClassVar[str] = "objective"
    models: ClassVar[tuple] = ()
    perplexity: ClassVar[bool] = True
    eval_scores: ClassVar[tuple] = ()

    def __post_init__(self):
        """Each setting has its declared kind (an int, a number, a tuple of ints), so a
        record from a checkpoint is refused here with a ValueError, not later."""
        owner = type(self).__name__
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and not _is_int(value):
                raise ValueError(f"{owner}.{f.name} must be an integer, got {value!r:.60}")
            if f.type == "float" and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not np.isfinite(value)):
                raise ValueError(f"{owner}.{f.name} must be a number, got {value!r:.60}")
            if f.type == "tuple":
                if not isinstance(value, (list, tuple)) or not all(map(_is_int, value)):
                    raise ValueError(f"{owner}.{f.name} must be a list of integers, got "
                                     f"{value!r:.60}")
                setattr(self, f.name, tuple(int(v) for v in value))

    def check_model(self, model) -> None:
        if self.models and type(model).__name__ not in self.models:
            raise ValueError(f"the {self.name} objective trains a {' or a '.join(self.models)}, "
                             f"not a {type(model).__name__}")

    def check_ids(self, vocab_size: int, **ids) -> None:
        """Each named token id (or list of ids) lies in the model's vocabulary."""
        for what, value in ids.items():
            for i in (value if isinstance(value, (list, tuple)) else (value,)):
                if not 0 <= i < vocab_size:
                    raise ValueError(f"{type(self).__name__}.{what}: token id {i} is outside the "
                                     f"model's vocabulary [0, {vocab_size})")

    def dataset(self, data):
        raise NotImplementedError

    def sample(self, dataset, batch_size: int, rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def batches(self, dataset, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        raise NotImplementedError

    def loss(self, model, batch: Batch):
        raise NotImplementedError

    def scores(self, model, batch: Batch) -> dict:
        loss = self.loss(model, batch)
        count = int(batch.counts.sum())
        return {"loss": float(loss.item()) * count, "count": count}

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        out = {"name": self.name}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class WindowObjective(Objective):
    """An objective on a token stream, read in windows of `context_length` tokens (and
    the token after each, for next-token targets). Subclasses write
    ``make_batch(x, y, rng)`` for windows ``x [B, T]`` and their shifted ``y``."""

    context_length: int

    def __post_init__(self):
        super().__post_init__()
        self.context_length = positive_int(f"{type(self).__name__}.context_length",
                                           self.context_length)

    def dataset(self, data) -> TokenWindows:
        return data if isinstance(data, TokenWindows) else \
            TokenWindows(np.asarray(data), self.context_length, stride=1)

    def make_batch(self, x: np.ndarray, y: np.ndarray, rng) -> Batch:
        raise NotImplementedError

    def sample(self, dataset, batch_size, rng) -> Batch:
        x, y = dataset.sample(batch_size, rng)
        return self.make_batch(x, y, rng)

    def batches(self, dataset, batch_size, rng=None) -> Iterator[Batch]:
        """Non-overlapping windows, in order (the tail that fills no window is left out)."""
        windows = TokenWindows(dataset.tokens, self.context_length)
        for x, y in windows.iter_batches(batch_size):
            yield self.make_batch(x, y, rng)


class ExampleObjective(Objective):
    """An objective on a set of examples (`numpyllm.data.examples`). Subclasses write
    ``make_batch(dataset, rows)`` for the examples at `rows`."""

    def make_batch(self, dataset, rows: np.ndarray) -> Batch:
        raise NotImplementedError

    def sample(self, dataset, batch_size, rng) -> Batch:
        return self.make_batch(dataset, rng.integers(0, len(dataset), size=batch_size))

    def batches(self, dataset, batch_size, rng=None) -> Iterator[Batch]:
        for start in range(0, len(dataset), batch_size):
            yield self.make_batch(dataset, np.arange(start, min(start + batch_size,
                                                                len(dataset))))
