"""Training a model on a CPU: the loop, evaluation, resume, for every objective.

One optimizer step (`Trainer.train_step`):

    lr = schedule(step)                                  linear warmup, cosine decay
    for each of `gradient_accumulation_steps` micro-batches:
        batch = objective.sample(data, B, rng)           e.g. windows x, y = x shifted by one
        loss = objective.loss(model, batch) / accum      so the grads add up to one mean
        loss.backward()                                  grads accumulate in .grad
    clip the global gradient norm to `grad_clip`
    AdamW step, then zero the grads

The objective (`numpyllm.training.objectives`) is what changes between causal, prefix and
masked language modelling, span corruption, sequence-to-sequence and classification;
nothing below depends on which it is. Without one, it is next-token prediction.

The forward and backward passes run data-parallel on threads (`numpyllm.training.data_parallel`:
each thread takes a slice of the batch, the gradients are summed); their number is
`numpyllm.parallel.num_threads()` (``NUMPYLLM_NUM_THREADS``, default the number of
CPUs). The evaluations are cut the same way. Bit-identical reruns and exact resumes
assume the same number of threads: another count changes the last bits (and, with
dropout, the masks).

Everything random comes from explicit generators whose states are part of the
trainer's state: the batch sampler's (which the objective also draws its prefix
lengths, masks and spans from), and the model's dropout generator(s). So the same
seed and config give bit-identical losses, and a run resumed from a checkpoint continues
exactly as if it had never stopped.

Progress goes to callbacks, never to print: ``callback(event)`` receives a dict with
``event["kind"]`` one of "step", "eval", "checkpoint". `CSVLogger` writes them to a file.

Stopping early: ``fit(stop=...)`` asks a callable after every step; when it answers True,
fit saves a checkpoint of the last completed step and returns (the command line sets it
from SIGINT and SIGTERM, so Ctrl-C loses no finished step).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..autograd import no_grad
from ..optim import AdamW, CosineWithWarmup, configure_param_groups
from ..runtime import blas_threads
from ..validation import ConfigDict, check_positive_fields
from .data_parallel import DataParallel, generator_states, model_generators
from .evaluate import perplexity
from .objectives import CausalLM, objective_from_dict

__all__ = ["TrainConfig", "Trainer", "NonFiniteError"]


class NonFiniteError(FloatingPointError):
    """The loss or a gradient stopped being a finite number."""


@dataclass
class TrainConfig(ConfigDict):
    """Optimisation settings, under nanoGPT's names. The defaults are nanoGPT's CPU recipe
    for character-level Tiny Shakespeare (with 2,000 iterations)."""

    batch_size: int = 12
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    decay_lr: bool = True
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0               # 0 disables clipping
    gradient_accumulation_steps: int = 1
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    seed: int = 1337

    def __post_init__(self):
        positive = ("batch_size", "max_iters", "gradient_accumulation_steps", "eval_interval",
                    "eval_iters", "log_interval")
        check_positive_fields("TrainConfig", self, positive)
        for name in ("learning_rate", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.decay_lr and not 0 <= self.warmup_iters < self.lr_decay_iters:
            raise ValueError(f"TrainConfig: need 0 <= warmup_iters ({self.warmup_iters}) < "
                             f"lr_decay_iters ({self.lr_decay_iters})")


class Trainer:
    """Trains `model` with an `objective` on its data. See the module docstring for one
    step. Without an objective it is next-token prediction (`CausalLM`) of a GPT on token
    arrays, in windows of the model's block_size.

    >>> import numpy as np
    >>> from numpyllm.nn.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8),
    ...             rng=np.random.default_rng(0))
    >>> tokens = np.tile(np.arange(5), 40)
    >>> trainer = Trainer(model, tokens, tokens, TrainConfig(batch_size=4, max_iters=60,
    ...                   warmup_iters=5, lr_decay_iters=60, learning_rate=1e-2, eval_iters=2))
    >>> losses = [trainer.train_step()["loss"] for _ in range(60)]
    >>> losses[-1] < 0.5 * losses[0]
    True
    """

    def __init__(self, model, train_data, val_data=None, config: TrainConfig | None = None,
                 *, objective=None, callbacks: Iterable[Callable] = (),
                 data_source: dict | None = None):
        self.model = model
        # what the data was made from (JSON-ready, e.g. a file's path, size and SHA-256),
        # saved with the trainer state so a resume or an evaluation can find the same text
        self.data_source = data_source
        self.config = config = config or TrainConfig()
        self.objective = CausalLM(model.config.block_size) if objective is None else objective
        self.objective.check_model(model)
        self.train_set = self.objective.dataset(train_data)
        self.val_set = None if val_data is None else self.objective.dataset(val_data)
        groups = configure_param_groups(model, config.weight_decay)
        self.optimizer = AdamW(groups, lr=config.learning_rate,
                               betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)
        self.schedule = (CosineWithWarmup(config.learning_rate, config.min_lr,
                                          config.warmup_iters, config.lr_decay_iters)
                         if config.decay_lr else (lambda step: config.learning_rate))
        self.data_rng = np.random.default_rng(config.seed)
        self.callbacks = list(callbacks)
        self.step = 0                      # optimizer steps taken
        self.params = [(n, p) for n, p in model.named_parameters()]
        self.parallel = DataParallel(model)
        self.resumed_state = None          # the trainer state of the checkpoint resumed

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict:
        """One optimizer step over `gradient_accumulation_steps` micro-batches.
        Returns ``{"step", "loss", "lr", "grad_norm", "tokens", "seconds"}``."""
        # With threads of our own, BLAS stays on one thread for the whole step, not only
        # inside the slices: one multithreaded BLAS call anywhere (the gradient norm's dot
        # product) leaves OpenBLAS's worker spinning through the next forward and backward
        # pass, on the core our second thread needs (measured: 33 -> 55 ms a step).
        with self._blas_scope():
            return self._train_step()

    def _blas_scope(self):
        # also over MPI ranks (`one_blas_thread`): the ranks are the machine's cores, and
        # each rank's BLAS threads would fight the other ranks for them
        threaded = (self.parallel.threads > 1 and self.config.batch_size > 1) or \
            getattr(self.parallel, "one_blas_thread", False)
        return blas_threads(1) if threaded else contextlib.nullcontext()

    def _train_step(self) -> dict:
        cfg, model = self.config, self.model
        start = time.perf_counter()
        lr = self.schedule(self.step)
        self.optimizer.lr = lr
        if not model.training:             # (a walk over every module: only when needed)
            model.train()
        accum = cfg.gradient_accumulation_steps
        total, tokens = 0.0, 0
        for _ in range(accum):
            batch = self.objective.sample(self.train_set, cfg.batch_size, self.data_rng)
            tokens += batch.tokens
            # forward and backward; scale 1/accum: the grads add up to the mean of all
            total += self.parallel.run(batch, self.objective.loss, scale=1.0 / accum) / accum
        # over MPI ranks: the gradients and the loss summed across them (in one process:
        # nothing to do); every rank then sees the same loss and takes the same step
        total = self.parallel.reduce(total)
        if not math.isfinite(total):
            self.optimizer.zero_grad()
            raise NonFiniteError(f"step {self.step}: the loss is {total}")
        grads = [p for _, p in self.params]
        norm = self.parallel.clip_grad_norm(grads, cfg.grad_clip)
        if not math.isfinite(norm):
            bad = next((n for n, p in self.params
                        if p.grad is not None and not np.isfinite(p.grad).all()), "?")
            self.optimizer.zero_grad()
            raise NonFiniteError(f"step {self.step}: the gradient of {bad} is not finite "
                                 f"(global norm {norm})")
        self.optimizer.step()
        self.optimizer.zero_grad()          # the optimizer holds the list: no module walk
        self.step += 1
        info = {"kind": "step", "step": self.step, "loss": total, "lr": lr, "grad_norm": norm,
                "tokens": tokens,
                "seconds": time.perf_counter() - start}
        return info

    # ------------------------------------------------------------------ evaluation
    def estimate_loss(self, iters: int | None = None) -> dict:
        """Mean loss over `eval_iters` random batches of each split, as nanoGPT estimates
        it. The batches come from a generator seeded by (seed, step), so evaluating does
        not disturb the training batches and is the same in a resumed run."""
        iters = iters or self.config.eval_iters
        out = {}
        splits = {"train": self.train_set}
        if self.val_set is not None:
            splits["val"] = self.val_set
        objective = self.objective
        self.model.eval()
        try:
            with no_grad(), self._blas_scope():
                for i, (split, data) in enumerate(splits.items()):
                    rng = np.random.default_rng([self.config.seed, self.step, i])
                    losses = [self.parallel.run(
                        objective.sample(data, self.config.batch_size, rng), objective.loss,
                        backward=False) for _ in range(iters)]
                    out[split] = float(np.mean(losses))
        finally:
            self.model.train()
        return out

    def estimate_scores(self, iters: int | None = None) -> dict:
        """The objective's `eval_scores` (DPO: the reward margin and the preference
        accuracy) on the validation batches `estimate_loss` draws (same generator, same
        batches), each a mean per counted example: ``{"val_margin": ..., ...}``."""
        iters = iters or self.config.eval_iters
        objective, totals = self.objective, {}
        rng = np.random.default_rng([self.config.seed, self.step, 1])  # estimate_loss's val
        self.model.eval()
        try:
            with no_grad(), self._blas_scope():
                for _ in range(iters):
                    batch = objective.sample(self.val_set, self.config.batch_size, rng)
                    for key, value in objective.scores(self.model, batch).items():
                        totals[key] = totals.get(key, 0) + value
        finally:
            self.model.train()
        count = max(totals.get("count", 0), 1)
        return {f"val_{name}": totals["correct" if name == "accuracy" else name] / count
                for name in objective.eval_scores}

    # ------------------------------------------------------------------ the loop
    def fit(self, *, max_iters: int | None = None, checkpoint_dir=None, tokenizer=None,
            stop: Callable[[], bool] | None = None) -> list:
        """Train until `max_iters` optimizer steps (the config's by default) have been
        taken in all, evaluating every `eval_interval` steps and at the end, and saving
        a checkpoint after each evaluation when `checkpoint_dir` is given. Returns the
        list of evaluation events.

        `stop`, when given, is called after every step (and before the first): once it
        returns True, fit stops there, saves a checkpoint of the last completed step
        (unless that step is already saved, or no step was taken) and returns early.
        A step is never cut in half: the weights, the optimizer's moments and the RNG
        states in the checkpoint belong to the same step."""
        cfg = self.config
        max_iters = cfg.max_iters if max_iters is None else max_iters
        evals = []
        saved = self.step                   # the step the newest checkpoint holds (or began)
        # every rank (over MPI) must stop after the same step, whichever saw the signal
        while self.step < max_iters and not (stop is not None and self.parallel.agree(stop())):
            info = self.train_step()
            if self.step % cfg.log_interval == 0 or self.step == 1:
                self._emit(info)
            if self.step % cfg.eval_interval == 0 or self.step == max_iters:
                losses = self.estimate_loss()
                event = {"kind": "eval", "step": self.step, "lr": info["lr"], **{
                    f"{k}_loss": v for k, v in losses.items()}}
                if "val" in losses and self.objective.perplexity:
                    event["val_perplexity"] = perplexity(losses["val"])
                if "val" in losses and self.objective.eval_scores:
                    event.update(self.estimate_scores())
                evals.append(event)
                self._emit(event)
                if checkpoint_dir is not None:
                    self._checkpoint(checkpoint_dir, tokenizer)
                    saved = self.step
        if checkpoint_dir is not None and self.step != saved:     # stopped between evaluations
            self._checkpoint(checkpoint_dir, tokenizer)
        return evals

    def _checkpoint(self, directory, tokenizer) -> None:
        # over MPI ranks, which hold the same weights and state, rank 0 writes and the
        # others wait for it: a checkpoint any rank reports is complete
        self.parallel.prepare_checkpoint()         # (ZeRO: the optimizer's shards gathered)
        path = self.save(directory, tokenizer=tokenizer) if self.parallel.writes_checkpoints \
            else None
        self.parallel.barrier()
        if path is not None:
            self._emit({"kind": "checkpoint", "step": self.step, "path": str(path)})

    def _emit(self, event: dict) -> None:
        for cb in self.callbacks:
            cb(event)

    # ------------------------------------------------------------------ state
    def state_dict(self, model=None) -> dict:
        """The trainer's own state (JSON-ready): step, config, the objective, every RNG
        state (of `model`'s generators: the model being saved, by default the trainer's),
        and `data_source` (under "data") when it is set."""
        model = self.model if model is None else model
        state = {"step": self.step, "train_config": self.config.to_dict(),
                 "objective": self.objective.to_dict(),
                 "data_rng": self.data_rng.bit_generator.state,
                 "model_rngs": generator_states(model)}
        if self.data_source is not None:
            state["data"] = self.data_source
        # what a strategy that splits the model adds, which the whole model cannot hold
        # (a pipeline: each stage's own dropout generator)
        state.update(getattr(self.parallel, "extra_trainer_state", dict)())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.data_rng.bit_generator.state = state["data_rng"]
        gens = model_generators(self.model)
        if len(gens) != len(state["model_rngs"]):
            raise ValueError(f"the checkpoint holds {len(state['model_rngs'])} model RNG states, "
                             f"the model has {len(gens)} generators")
        for g, s in zip(gens, state["model_rngs"]):
            g.bit_generator.state = s
        self.resumed_state = state          # for a strategy attached afterwards (a pipeline)

    def save(self, directory, *, tokenizer=None, keep: int = 2):
        """An atomic checkpoint of model, optimizer, tokenizer and trainer state."""
        from .checkpoint import save_checkpoint
        # (split over MPI ranks: the whole model and optimizer, gathered on rank 0)
        model, optimizer = self.parallel.to_save(self.model, self.optimizer)
        return save_checkpoint(directory, step=self.step, model=model,
                               optimizer=optimizer, tokenizer=tokenizer,
                               trainer_state=self.state_dict(model), keep=keep)

    @property
    def train_windows(self):
        """The training windows of a language-modelling objective (its `train_set`)."""
        return self.train_set

    @classmethod
    def resume(cls, directory, train_data, val_data=None, *, callbacks=(), config=None,
               objective=None):
        """Rebuild model, optimizer, objective and trainer from a checkpoint;
        ``(trainer, tokenizer)``. `config` overrides the saved TrainConfig (to train for
        longer, say: keep its `lr_decay_iters` and the learning rate goes on from where it
        was, see docs/training.md). `directory` may also be a `Checkpoint` already loaded.
        The saved objective (next-token prediction for a checkpoint that names none) and
        `data_source`, if any, are the new trainer's. `objective`, a function of the
        rebuilt model, gives the objective instead of the saved record (DPO's reference,
        a model or a function, is no record: ``lambda model: DPO(..., reference=...)``)."""
        from .checkpoint import Checkpoint, CheckpointError, build_model, load_checkpoint
        ckpt = directory if isinstance(directory, Checkpoint) else load_checkpoint(directory)
        if not ckpt.trainer_state or ckpt.optimizer_state is None:
            raise CheckpointError(f"{ckpt.path} holds weights only: no trainer state to resume")
        model = build_model(ckpt)
        try:
            saved = TrainConfig.from_dict(ckpt.trainer_state["train_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path / 'manifest.json'}: trainer.train_config: "
                                  f"{exc}") from None
        record = ckpt.trainer_state.get("objective")
        make = objective
        try:
            objective = make(model) if make is not None else \
                CausalLM(model.config.block_size) if record is None else \
                objective_from_dict(record)
            objective.check_model(model)
        except ValueError as exc:
            raise CheckpointError(f"{ckpt.path / 'manifest.json'}: trainer.objective: "
                                  f"{exc}") from None
        trainer = cls(model, train_data, val_data, config or saved, objective=objective,
                      callbacks=callbacks, data_source=ckpt.trainer_state.get("data"))
        try:
            trainer.optimizer.load_state_dict(ckpt.optimizer_state)
            trainer.load_state_dict(ckpt.trainer_state)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.path}: cannot resume: {exc}") from None
        return trainer, ckpt.tokenizer
