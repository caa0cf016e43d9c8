"""Data parallelism on threads: the batch cut into slices, each slice's forward and
backward pass on its own thread, the gradients summed.

A GPT training step is a chain of operations, most of them too small to split well
one at a time: BLAS divides each large matrix product over the cores, but attention's
many [T, T] products, GELU, layer norm and the Python that drives them run on one core,
and every hand-off between threads costs tens of microseconds. Cutting the *batch*
instead gives each thread a whole model's worth of work and one hand-off per step
(measured on the 2-core machine this was written on: forward + backward of nanoGPT's
CPU model 33.8 ms with BLAS's threads, 29.3 ms as two slices of 6 sequences).

**The math.** The loss of a batch is the mean over its counted targets (those not equal
to `ignore_index`). With slice i holding n_i of the N counted targets and mean loss L_i:

    L = Σ_i (n_i / N) L_i          so          dL/dθ = Σ_i (n_i / N) dL_i/dθ

Slice i runs backward with the upstream gradient n_i / N into its own gradients; they
are then added into the model's ``.grad`` (which accumulates, as after ``backward()``).

**Replicas.** Thread 0 runs the model itself. Every other thread runs a replica: a deep
copy of the module tree whose Parameters are new objects over the *same* arrays (no
copy of the weights; an optimizer's in-place update is seen by all), each with its
own ``.grad``. Before every call the replicas take the model's current arrays and its
train/eval flags. Dropout: in training mode every replica's generators are reseeded
from the model's own generators, so a run is reproducible and its state is the model's
(checkpoints need nothing more).

**Memory.** Building a DataParallel settles malloc's settings as the first backward pass
would (`numpyllm.runtime.keep_freed_memory_for_training`), before any of its threads
allocates: each thread's activations are then reused from step to step, not mapped anew.

**BLAS** runs on one thread inside the slices (`numpyllm.runtime.blas_threads`), and
`numpyllm.parallel`'s per-operation splitting is off there (regions do not nest).

**Exactness.** The result equals the one-thread result up to rounding: the sums run in
a different order. The same thread count gives bit-identical results run after run;
a different count changes the last bits, as PyTorch's intra-op threads do, and with
dropout it draws different masks (each replica's generator is seeded per call), so a
run with dropout is reproducible on the same number of threads only.

>>> import numpy as np
>>> from numpyllm.nn.gpt import GPT, GPTConfig
>>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8),
...            rng=np.random.default_rng(0))
>>> x = np.random.default_rng(1).integers(0, 11, (4, 8))
>>> loss = DataParallel(model, threads=2).forward_backward(x, x)
>>> round(loss, 4) == round(float(model(x, targets=x)[1].item()), 4)
True
>>> model.wte.weight.grad.shape
(11, 8)
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..autograd import enable_grad, no_grad
from ..nn.module import Parameter
from ..optim import clip_grad_norm_, grad_norm
from ..parallel import for_slices, num_threads
from ..runtime import blas_threads, keep_freed_memory_for_training
from ..validation import positive_int
from .objectives.base import Batch

__all__ = ["DataParallel"]


class DataParallel:
    """Runs a loss on slices of the batch (axis 0) on `threads` threads (default
    `numpyllm.parallel.num_threads()`), one slice per thread.

    - ``run(batch, loss_fn, scale=1.0, backward=True) -> float``: `batch` is an
      objective's `Batch` and ``loss_fn(model, batch) -> Tensor`` its mean loss over the
      counted targets (`Objective.loss`); returns the batch's mean loss and, with
      `backward`, adds ``scale`` x its gradient to every parameter's ``.grad``.
    - ``forward_backward(x, y, scale=1.0)`` and ``loss(x, y)``: the same for next-token
      prediction, ``model(x, targets=y) -> (logits, loss)``, with `ignore_index` targets
      not counted (GPT: -100).

    A batch with fewer rows than threads uses fewer threads; ``threads=1`` is exactly
    ``loss_fn(model, batch)`` then ``backward``.
    """

    def __init__(self, model, threads: int | None = None, *, ignore_index: int = -100):
        self.model = model
        self.threads = num_threads() if threads is None else positive_int(
            "DataParallel threads", threads)
        self.ignore_index = ignore_index
        self._replicas: list = []          # [(replica, param pairs, module pairs, rng pairs)]
        # before its threads allocate: they then share the main arena (numpyllm/runtime.py)
        keep_freed_memory_for_training()

    # ------------------------------------------------------------------ public
    def run(self, batch, loss_fn, *, scale: float = 1.0, backward: bool = True) -> float:
        """The mean loss over the batch's counted targets; with `backward`, ``scale *
        dL/dθ`` is added to each parameter's ``.grad``. A slice whose loss is not finite
        runs no backward (the returned loss is then not finite either: the caller
        decides)."""
        if not backward:
            with no_grad():
                return self._run(batch, loss_fn, 1.0, backward=False)
        return self._run(batch, loss_fn, float(scale), backward=True)

    # what a Trainer asks of its `parallel`, trivial in one process (see
    # numpyllm.distributed.MPIDataParallel for the same over MPI ranks)
    writes_checkpoints = True

    def reduce(self, loss: float) -> float:
        """The step's loss, its gradients complete: nothing to add up in one process."""
        return loss

    def agree(self, flag: bool) -> bool:
        return bool(flag)

    def barrier(self) -> None:
        pass

    def clip_grad_norm(self, params, max_norm: float) -> float:
        """The gradients' global norm, clipped to `max_norm` when it is > 0."""
        return clip_grad_norm_(params, max_norm) if max_norm > 0 else grad_norm(params)

    def prepare_checkpoint(self) -> None:
        """Called on every rank before a checkpoint is written (ZeRO gathers its shards)."""

    def to_save(self, model, optimizer):
        """The model and optimizer a checkpoint holds (tensor parallelism: consolidated)."""
        return model, optimizer

    def forward_backward(self, x, targets, *, scale: float = 1.0) -> float:
        """Next-token prediction: the mean loss over the counted targets of
        ``model(x, targets=targets)``; ``scale * dL/dθ`` is added to each ``.grad``."""
        return self.run(self._lm_batch(x, targets), _lm_loss, scale=scale)

    def loss(self, x, targets) -> float:
        """Next-token prediction: the mean loss, computed without a graph."""
        return self.run(self._lm_batch(x, targets), _lm_loss, backward=False)

    def _lm_batch(self, x, targets):
        x, targets = np.asarray(x), np.asarray(targets)
        counts = np.count_nonzero(targets != self.ignore_index,
                                  axis=tuple(range(1, x.ndim))) \
            if x.ndim >= 2 and targets.shape == x.shape else np.ones(1, dtype=np.int64)
        return Batch({"x": x, "y": targets}, counts, x.size)

    # ------------------------------------------------------------------ the work
    def _run(self, batch, loss_fn, scale: float, backward: bool) -> float:
        counts = np.asarray(batch.counts)
        B, total = len(batch), int(counts.sum())
        n = min(self.threads, B)
        if n < 2 or total == 0 or counts.shape != (B,):
            # one slice (also: shapes the model's own checks should report)
            return self._serial(batch, loss_fn, scale, backward)
        bounds = [B * i // n for i in range(n + 1)]
        slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        models = [self.model] + self._sync(n - 1)
        values = [0.0] * n
        grad_on = backward

        def work(pieces: slice) -> None:
            for i in range(pieces.start, pieces.stop):
                weight = int(counts[slices[i]].sum()) / total
                if weight == 0.0:
                    continue                       # every target ignored: no loss, no grad
                with (enable_grad() if grad_on else no_grad()):
                    values[i] = weight * _one(models[i], loss_fn, batch.rows(slices[i]),
                                              scale * weight, backward)

        with blas_threads(1):
            for_slices(n, work)
        if backward:
            self._gather_grads(n - 1)
        return float(sum(values))

    def _serial(self, batch, loss_fn, scale: float, backward: bool) -> float:
        with (enable_grad() if backward else no_grad()):
            return _one(self.model, loss_fn, batch, scale, backward)

    def _sync(self, k: int) -> list:
        """`k` replicas, brought up to date with the model (arrays, flags, dropout).
        They are copied afresh when a parameter's array was replaced (``to(dtype)``
        converts the other buffers too); other changes to the model's structure or
        settings after the first call need a new DataParallel."""
        if len(self._replicas) < k or any(theirs.data is not mine.data
                                          for _, pairs, _, _ in self._replicas[:k]
                                          for mine, theirs in pairs):
            self._replicas = [_replicate(self.model) for _ in range(k)]
        training = self.model.training
        out = []
        for replica, param_pairs, module_pairs, rng_pairs in self._replicas[:k]:
            for mine, theirs in param_pairs:
                theirs.requires_grad = mine.requires_grad      # frozen stays frozen
                theirs.grad = None          # left over if an earlier call raised
            for mine, theirs in module_pairs:
                theirs.training = mine.training
            if training:
                for mine, theirs in rng_pairs:
                    seed = int(mine.integers(2**63))
                    theirs.bit_generator.state = type(theirs.bit_generator)(seed).state
            out.append(replica)
        return out

    def _gather_grads(self, k: int) -> None:
        """Add the replicas' gradients into the model's, in a fixed order."""
        for _, param_pairs, _, _ in self._replicas[:k]:
            for mine, theirs in param_pairs:
                if theirs.grad is None:
                    continue
                if mine.grad is None:
                    mine.grad = theirs.grad            # a fresh array the engine allocated
                else:
                    mine.grad += theirs.grad
                theirs.grad = None


def _lm_loss(model, batch):
    return model(batch["x"], targets=batch["y"])[1]


def _one(model, loss_fn, batch, scale: float, backward: bool) -> float:
    """Forward (and backward with upstream gradient `scale`) of one slice."""
    loss = loss_fn(model, batch)
    value = float(loss.item())
    if backward and math.isfinite(value):
        loss.backward(np.full(loss.shape, scale, dtype=loss.dtype))
    return value


def _replicate(model) -> tuple:
    """A deep copy of `model` sharing its parameter arrays, and the pairs to sync."""
    memo = {}
    for p in model.parameters():
        twin = Parameter.__new__(Parameter)
        twin.data, twin.grad, twin.requires_grad, twin._ctx = p.data, None, p.requires_grad, None
        memo[id(p)] = twin
        memo[id(p.data)] = p.data                  # an array held directly: shared too
    replica = copy.deepcopy(model, memo)
    param_pairs = list(zip(model.parameters(), replica.parameters()))
    module_pairs = [(m, r) for (_, m), (_, r) in zip(model.named_modules(),
                                                      replica.named_modules())]
    # deepcopy keeps the tree and which modules share a generator: the walks pair up
    rng_pairs = list(zip(model_generators(model), model_generators(replica)))
    return replica, param_pairs, module_pairs, rng_pairs


def model_generators(model) -> list:
    """The distinct random generators the model's layers draw from (dropout), in order."""
    seen, out = set(), []
    for _, module in model.named_modules():
        rng = getattr(module, "rng", None)
        if isinstance(rng, np.random.Generator) and id(rng) not in seen:
            seen.add(id(rng))
            out.append(rng)
    return out


def generator_states(model) -> list:
    """The states of `model_generators(model)`, in order (JSON-ready: a checkpoint's)."""
    return [g.bit_generator.state for g in model_generators(model)]
