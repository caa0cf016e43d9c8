"""Pipeline parallelism (GPipe, Huang et al. 2019; 1F1B as in PipeDream-Flush): the
layers split into consecutive stages, one per rank, the batch into micro-batches that
flow through the stages like work through a pipeline.

**What each rank holds.** Stage s of N: blocks ``[L s/N, L (s+1)/N)`` (the first L mod
N stages one more); the first stage also the embeddings, the last one ``ln_f`` and the
head. A tied head (GPT-2's: logits = h · wteᵀ) needs the token table on the first and
the last stage: the last keeps a copy, and after each backward the two copies' gradients
are summed between those two ranks so that both take the same step and stay equal.

**A micro-batch's journey.** Stage 0 embeds its ids and runs its blocks; the activation
``[b, T, C]`` is sent to stage 1, which runs its blocks, and so on; the last stage
computes the loss. Backward runs the other way: each stage receives dL/d(its output),
backpropagates through its blocks, and sends dL/d(its input) to the stage before. With
the batch's N_t counted targets and n_m in micro-batch m, the last stage seeds micro-batch
m's backward with n_m / N_t, so the gradients add up to the whole batch's mean loss.

**Schedules.** GPipe: all M forwards, then all M backwards; each stage holds the
activations of all M micro-batches at once. 1F1B: stage s runs N − s − 1 forwards ahead
(warm-up), then alternates one forward and one backward, then drains the backwards: the
same arithmetic, at most N − s micro-batches' activations alive. Either way a stage waits
while the pipeline fills and drains: the **bubble**, (N − 1) / (M + N − 1) of a step
ideally; `last_bubble` reports the share of the step each stage spent waiting to receive.

**What is sent.** Per micro-batch and stage boundary: one ``[b, T, C]`` activation
forward and its gradient backward, point to point (``Isend``, ``Recv``: a send never waits
for its receiver, so neighbours sending to each other cannot deadlock); plus the tied
table's gradient between the first and last stage, and the loss broadcast from the last.

**Checkpoints** are consolidated on rank 0 (every stage's weights and AdamW moments
gathered into an ordinary GPT and AdamW state), so a run resumes under any strategy.
Pipeline parallelism trains next-token prediction (the clm objective) of a GPT or a Llama
(Qwen2, Mistral): a Llama's stages hold its ``layers``, the first ``embed_tokens``, the
last ``norm`` and the head; the activation sent is the residual stream ``[b, T, C]`` as
for the GPT (RoPE acts inside each layer, on global positions: nothing else is sent).
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..autograd import Tensor, no_grad
from ..functional import cross_entropy
from ..nn.module import Module, ModuleList, Parameter
from ..optim import scale_to_norm_
from ..training.data_parallel import generator_states
from .rank_ops import sum_identical
from .whole import adamw_like, optimizer_names, take_state, whole_model

__all__ = ["PipelineParallel", "PipelineStage"]


def _stage_blocks(n_layer: int, n_stages: int, stage: int) -> tuple[int, int]:
    """Blocks ``[a, b)`` of `stage`: as equal as can be, the first stages one more."""
    base, extra = divmod(n_layer, n_stages)
    a = stage * base + min(stage, extra)
    return a, a + base + (stage < extra)


# the whole model's names of its parts: (blocks, final norm, token table)
_NAMES = {"GPT": ("h", "ln_f", "wte"), "Llama": ("layers", "norm", "embed_tokens")}


class PipelineStage(Module):
    """Stage `stage` of `n_stages` of a GPT or a Llama (Qwen2, Mistral): the modules it
    owns, taken from `model` (which it then no longer needs). `full_name` maps each
    parameter to the whole model's name (None: the last stage's copy of a tied table).
    The stage holds its blocks as ``h`` and the final norm as ``ln_f`` whatever the
    model calls them (a Llama's ``layers`` and ``norm``)."""

    def __init__(self, model, stage: int, n_stages: int):
        super().__init__()
        cfg = model.config
        if n_stages > cfg.n_layer:
            raise ValueError(f"pipeline parallelism over {n_stages} ranks needs at least one "
                             f"block per stage; the model has n_layer={cfg.n_layer}")
        self.config, self.stage, self.n_stages = cfg, stage, n_stages
        self.first, self.last = stage == 0, stage == n_stages - 1
        blocks, norm, table = _NAMES[type(model).__name__]
        self.llama = blocks == "layers"
        a, b = _stage_blocks(cfg.n_layer, n_stages, stage)
        self.blocks = (a, b)
        self.gpt = (_LlamaEmbeddingPart(model) if self.llama else _EmbeddingPart(model)) \
            if self.first else None
        self.h = ModuleList(getattr(model, blocks)[i] for i in range(a, b))
        names = {f"h.{j}.": f"{blocks}.{a + j}." for j in range(b - a)}
        if self.last:
            self.ln_f = getattr(model, norm)
            names["ln_f."] = f"{norm}."
            if not cfg.tie_weights:
                self.lm_head = model.lm_head
            elif not self.first:
                self.head_weight = Parameter(getattr(model, table).weight.data.copy())
        self._names = names
        self._table = table

    def full_name(self, name: str) -> str | None:
        """The whole model's name of one of this stage's parameters (None: the tied copy)."""
        if name == "head_weight":
            return None
        if name.startswith("gpt."):
            return name[len("gpt."):]
        for local, full in self._names.items():
            if name.startswith(local):
                return full + name[len(local):]
        return name

    def table(self):
        """The first stage's token table (a Parameter ``[V, C]``)."""
        return getattr(self.gpt, self._table).weight

    def forward(self, x, targets=None):
        """First stage: ids ``[b, T]``; others: the activation ``[b, T, C]``. Returns the
        activation for the next stage, or (last stage) the mean cross-entropy."""
        if self.first:
            x = self.gpt.embed(x)
        for block in self.h:
            x = block(x)
        if not self.last:
            return x
        x = self.ln_f(x)
        if self.config.tie_weights:
            weight = self.table() if self.first else self.head_weight
            logits = x @ weight.T                                    # [b, T, V]
        else:
            logits = self.lm_head(x)
        return cross_entropy(logits, targets)


class _EmbeddingPart(Module):
    """The first stage's share of a GPT: the token (and learned position) table, dropout
    and `embed` (the GPT's own method, on these modules)."""

    def __init__(self, model):
        super().__init__()
        self.config = model.config
        self.wte = model.wte
        if model.config.positions == "learned":
            self.wpe = model.wpe
        self.drop = model.drop
        self.positions_table = model.positions_table     # the sinusoidal table (a method)

    def embed(self, idx):
        from ..nn.gpt import GPT
        return GPT.embed(self, np.asarray(idx))


class _LlamaEmbeddingPart(Module):
    """The first stage's share of a Llama: the token table and dropout (RoPE acts inside
    each layer's attention: no position table)."""

    def __init__(self, model):
        super().__init__()
        self.config = model.config
        self.embed_tokens, self.drop = model.embed_tokens, model.drop
        self.check_ids = model.check_ids

    def embed(self, idx):
        return self.drop(self.embed_tokens(self.check_ids(idx)))          # [b, T, C]


class PipelineParallel:
    """The Trainer's `parallel` for pipeline parallelism over the ranks of `comm`:
    ``PipelineParallel(trainer, comm, micro_batches=M, schedule="gpipe"|"1f1b")`` turns
    ``trainer.model`` into this rank's `PipelineStage` and ``trainer.optimizer`` into an
    AdamW over its parameters (keeping the sliced state of a resumed run)."""

    # BLAS on one thread in every rank: on one machine the ranks are its cores, and a
    # rank's own BLAS threads would fight the others for them (the Trainer's _blas_scope)
    one_blas_thread = True

    threads = 1

    def __init__(self, trainer, comm=None, *, micro_batches: int = 4, schedule: str = "gpipe"):
        from .comm import world
        if schedule not in ("gpipe", "1f1b"):
            raise ValueError(f"pipeline schedule must be gpipe or 1f1b, got {schedule!r}")
        if not (isinstance(micro_batches, int) and micro_batches >= 1):
            raise ValueError(f"micro_batches must be an integer >= 1, got {micro_batches!r}")
        if trainer.objective.name != "clm":
            raise ValueError(f"pipeline parallelism trains next-token prediction (clm), not "
                             f"{trainer.objective.name}")
        if type(trainer.model).__name__ not in _NAMES:
            raise ValueError(f"pipeline parallelism splits a GPT or a Llama, not a "
                             f"{type(trainer.model).__name__}")
        self.comm = world() if comm is None else comm
        self.rank, self.size = self.comm.rank, self.comm.size
        self.micro_batches, self.schedule = micro_batches, schedule
        model, old = trainer.model, trainer.optimizer
        self.full_config = model.config
        full_state, full_names = old.state_dict(), optimizer_names(model, old)
        self.stage = PipelineStage(model, self.rank, self.size)
        trainer.model = self.stage
        trainer.optimizer = self.optimizer = adamw_like(self.stage, old)
        trainer.params = [(n, p) for n, p in self.stage.named_parameters()]
        self.names = optimizer_names(self.stage, self.optimizer)
        # a resumed run: this stage's part of the whole AdamW state (the tied copy: the
        # token table's)
        self.optimizer.state = take_state(
            full_state, full_names, self.names,
            lambda name: (self.stage.full_name(name) or f"{self.stage._table}.weight", None))
        # the first and last stage sum the tied table's gradient between them
        self.tied = self.full_config.tie_weights and self.size > 1
        self.last_bubble = 0.0
        self._consolidated = None
        self._stage_rngs = None            # rank 0, at a checkpoint: every stage's generators
        # a run resumed on as many stages: each stage's dropout carries on where it was
        saved = (trainer.resumed_state or {}).get("stage_rngs")
        if saved is not None and len(saved) == self.size:
            from ..training.data_parallel import model_generators
            mine = model_generators(self.stage)
            if len(mine) == len(saved[self.rank]):
                for generator, state in zip(mine, saved[self.rank]):
                    generator.bit_generator.state = state

    writes_checkpoints = property(lambda self: self.rank == 0)

    # ------------------------------------------------------------------ a batch
    def run(self, batch, loss_fn=None, *, scale: float = 1.0, backward: bool = True) -> float:
        """The batch's mean loss (the same on every rank); with `backward`, ``scale x``
        its gradient added to this stage's ``.grad``."""
        x, y = np.asarray(batch["x"]), np.asarray(batch["y"])
        B = len(x)
        M = min(self.micro_batches, B)
        bounds = [B * m // M for m in range(M + 1)]
        parts = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        counts = np.count_nonzero(y != -100, axis=1)
        total = max(int(counts.sum()), 1)
        weights = [int(counts[p].sum()) / total for p in parts]          # n_m / N_t
        start = time.perf_counter()
        self._waited = 0.0
        self._sends = []
        if backward:
            loss = self._train(x, y, parts, weights, scale)
        else:
            with no_grad():
                loss = sum(w * self._forward(m, x, y, parts, keep=False)
                           for m, w in enumerate(weights))
        for request in self._sends:
            request.Wait()
        elapsed = time.perf_counter() - start
        self.last_bubble = self._waited / elapsed if elapsed > 0 else 0.0
        return self._from_last(loss)

    def _train(self, x, y, parts, weights, scale) -> float:
        M, N, s = len(parts), self.size, self.rank
        saved, loss = {}, 0.0
        if self.schedule == "gpipe":
            order = [("F", m) for m in range(M)] + [("B", m) for m in range(M)]
        else:                                   # 1F1B: warm-up, steady state, drain
            warm = min(N - s - 1, M)
            order = [("F", m) for m in range(warm)]
            f, b = warm, 0
            while b < M:
                if f < M:
                    order.append(("F", f))
                    f += 1
                order.append(("B", b))
                b += 1
        for kind, m in order:
            if kind == "F":
                saved[m] = self._forward(m, x, y, parts, keep=True)
                if self.stage.last:
                    loss += weights[m] * float(saved[m][1].item())
            else:
                inp, out = saved.pop(m)
                self._backward(m, inp, out, weights[m] * scale)
        return loss

    def _forward(self, m: int, x, y, parts, keep: bool):
        """Micro-batch m through this stage: ``(input leaf, output)`` (keep) or, on the
        last stage without keep, the loss value."""
        stage, rows = self.stage, parts[m]
        if stage.first:
            inp = x[rows]
        else:
            shape = (rows.stop - rows.start, x.shape[1], self.full_config.n_embd)
            inp = Tensor(self._recv(shape, self.rank - 1, tag=m), requires_grad=keep)
        out = stage(inp, y[rows] if stage.last else None)
        if not stage.last:
            self._send(out.data, self.rank + 1, tag=m)
        if not keep:
            return float(out.item()) if stage.last else 0.0
        return inp, out

    def _backward(self, m: int, inp, out, seed: float) -> None:
        stage = self.stage
        if stage.last:
            out.backward(np.full(out.shape, seed, dtype=out.dtype))
        else:
            g = self._recv(out.shape, self.rank + 1, tag=10_000 + m)
            out.backward(g)
        if not stage.first:
            self._send(inp.grad, self.rank - 1, tag=10_000 + m)

    def _send(self, array, dest: int, tag: int) -> None:
        array = np.ascontiguousarray(array)
        self._sends.append(self.comm.Isend(array, dest=dest, tag=tag))
        self._keep = getattr(self, "_keep", [])          # the buffer lives until Wait
        self._keep.append(array)

    def _recv(self, shape, source: int, tag: int) -> np.ndarray:
        out = np.empty(shape, dtype=np.dtype(self.full_config.dtype))
        t0 = time.perf_counter()
        self.comm.Recv(out, source=source, tag=tag)
        self._waited += time.perf_counter() - t0
        return out

    def _from_last(self, loss: float) -> float:
        """The last stage's loss, on every rank."""
        value = np.array([loss if self.stage.last else 0.0])
        self.comm.Bcast(value, root=self.size - 1)
        self._keep = []
        return float(value[0])

    # ------------------------------------------------------------------ the step
    def reduce(self, loss: float) -> float:
        """Sum the tied table's gradient between the first and the last stage."""
        if self.tied and (self.stage.first or self.stage.last):
            p = self.stage.table() if self.stage.first else self.stage.head_weight
            if p.grad is None:
                p.grad = np.zeros_like(p.data)
            mine = np.ascontiguousarray(p.grad)
            theirs = np.empty_like(mine)
            other = self.size - 1 if self.stage.first else 0
            self.comm.Sendrecv(mine, dest=other, recvbuf=theirs, source=other)
            # the same sum, in the same order, on both: first stage's part + last's
            p.grad = mine + theirs if self.stage.first else theirs + mine
        return loss

    def agree(self, flag: bool) -> bool:
        from mpi4py import MPI
        return bool(self.comm.allreduce(bool(flag), op=MPI.LOR))

    def barrier(self) -> None:
        self.comm.Barrier()

    def clip_grad_norm(self, params, max_norm: float) -> float:
        """The whole model's gradient norm: every stage's squares summed (the tied
        table's copy on the last stage not counted twice)."""
        own, grads = 0.0, []
        for name, p in self.stage.named_parameters():
            if p.grad is None:
                continue
            grads.append(p.grad)
            if self.stage.full_name(name) is not None:
                g = p.grad.reshape(-1).astype(np.float64)
                own += float(np.dot(g, g))
        norm = math.sqrt(float(sum_identical(self.comm, np.array([own]))[0]))
        if max_norm > 0:
            scale_to_norm_(grads, norm, max_norm)
        return norm

    # ------------------------------------------------------------------ checkpoints
    def prepare_checkpoint(self) -> None:
        """Every stage sends its weights and moments (by the whole model's names) to
        rank 0, which builds an ordinary GPT and AdamW state."""
        mine = {}
        for name, p in self.stage.named_parameters():
            full = self.stage.full_name(name)
            if full is None:
                continue
            state = self.optimizer.state.get(self.names.get(name))
            mine[full] = (p.data, state)
        # our own ranks' arrays, and each stage's dropout generators: every stage draws
        # only its own layers' masks, so their states differ
        gathered = self.comm.gather((mine, generator_states(self.stage)), root=0)
        if self.rank != 0:
            return
        merged = {k: v for part, _ in gathered for k, v in part.items()}
        self._stage_rngs = [rngs for _, rngs in gathered]
        self._consolidated = whole_model(
            self.full_config, {k: data for k, (data, _) in merged.items()},
            {k: state for k, (_, state) in merged.items() if state is not None},
            self.optimizer, self._stage_rngs[0])

    def extra_trainer_state(self) -> dict:
        """What the checkpoint's trainer state adds (rank 0, after `prepare_checkpoint`):
        each stage's generator states, taken back by a run resumed on as many stages (the
        whole model's own are the first stage's)."""
        return {} if self._stage_rngs is None else {"stage_rngs": self._stage_rngs}

    def to_save(self, model, optimizer):
        if self._consolidated is None:
            raise RuntimeError("PipelineParallel: to_save() on rank 0 after prepare_checkpoint()")
        return self._consolidated
