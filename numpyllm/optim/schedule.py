"""Learning-rate schedules: functions of the step number, set on the optimizer each step.

    schedule = CosineWithWarmup(max_lr=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=5000)
    for it in range(max_iters):
        opt.lr = schedule(it)            # or: for g in opt.param_groups: g["lr"] = ...
        ...
        opt.step()
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["cosine_with_warmup", "CosineWithWarmup", "Constant", "constant"]


def cosine_with_warmup(step: int, *, max_lr: float, min_lr: float, warmup_iters: int,
                       lr_decay_iters: int) -> float:
    """nanoGPT's ``get_lr`` (its current form, with the +1 that keeps step 0 above zero):

    - ``step < warmup_iters``: linear warmup, ``max_lr * (step + 1) / (warmup_iters + 1)``;
    - ``step > lr_decay_iters``: ``min_lr``;
    - in between: cosine from ``max_lr`` (at ``warmup_iters``) down to ``min_lr``
      (at ``lr_decay_iters``): ``min_lr + 0.5 * (1 + cos(pi * r)) * (max_lr - min_lr)``
      with ``r = (step - warmup_iters) / (lr_decay_iters - warmup_iters)``.

    >>> [round(cosine_with_warmup(s, max_lr=1.0, min_lr=0.1, warmup_iters=4,
    ...                           lr_decay_iters=8), 3) for s in (0, 3, 4, 6, 8, 9)]
    [0.2, 0.8, 1.0, 0.55, 0.1, 0.1]
    """
    if warmup_iters < 0 or lr_decay_iters <= warmup_iters:
        raise ValueError(f"need 0 <= warmup_iters < lr_decay_iters; got warmup_iters="
                         f"{warmup_iters}, lr_decay_iters={lr_decay_iters}")
    if step < warmup_iters:
        return max_lr * (step + 1) / (warmup_iters + 1)
    if step > lr_decay_iters:
        return min_lr
    decay_ratio = (step - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))     # 1 -> 0
    return min_lr + coeff * (max_lr - min_lr)


@dataclass(frozen=True)
class CosineWithWarmup:
    """`cosine_with_warmup` with its settings bound: ``schedule(step) -> lr``."""

    max_lr: float
    min_lr: float
    warmup_iters: int
    lr_decay_iters: int

    def __post_init__(self):
        self(0)   # validate the settings now, not at the first step

    def __call__(self, step: int) -> float:
        return cosine_with_warmup(step, max_lr=self.max_lr, min_lr=self.min_lr,
                                  warmup_iters=self.warmup_iters,
                                  lr_decay_iters=self.lr_decay_iters)


@dataclass(frozen=True)
class Constant:
    """The same learning rate at every step: ``Constant(3e-4)(step) == 3e-4``."""

    lr: float

    def __call__(self, step: int) -> float:
        return self.lr


def constant(lr: float) -> Constant:
    """A schedule that gives `lr` at every step."""
    return Constant(lr)
