"""ZeRO stage 3 (Rajbhandari et al. 2020): the weights sharded too. Each rank keeps
1/N of every layer; a layer's weights are gathered just before it runs and dropped just
after, in the forward pass and again in the backward pass.

**Units.** Each block of a GPT (``h``) or a Llama (``layers``: Qwen2, Mistral) is one unit;
everything outside the blocks (the token and position tables, the final norm, an untied
head) is one more. A unit's parameters are
laid end to end (P_u numbers, padded to N·S_u) and rank r keeps ``[r S_u, (r+1) S_u)``:
its *shard* of the weights, of AdamW's moments, and of the summed gradient.

**A block's forward** (`_GatheredBlock`): ``Allgather`` the unit (every rank gets the
whole block), run it without keeping a graph, drop the gathered weights. Only the
block's input is kept. **Its backward**: gather the unit again, run the block forward
once more *with* a graph (the same dropout draws: the block's generators are rewound),
backpropagate the upstream gradient through it, ``Reduce_scatter`` the block's weight
gradient (each rank keeps the sum of its shard; the full-size gradient is dropped at
once) and drop the gathered weights again. This is ZeRO-3 with activation
recomputation: an engine without module hooks gathers a layer for its backward by
running it again, as a framework's checkpointed layer does. The outer unit (tables,
final norm) stays gathered for the whole step: the first and the last operations both
need the tied table.

**What each rank holds.** A 1/N shard of every weight, moment and gradient; at most one
gathered block at a time beyond that, plus the outer unit; each block's input.
**What is sent, per step** (P weights of b bytes): each block's weights gathered twice
(forward, backward: 2 (N-1)/N P b), its gradient reduce-scattered once ((N-1)/N P b):
3 (N-1)/N P b per rank, 1.5 times data parallelism, for 1/N of the memory.

Checkpoints are consolidated on rank 0 (an ordinary GPT or Llama and AdamW state), so a run
resumes under any world size and strategy.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Function, Tensor, enable_grad, no_grad
from ..nn.module import Module
from ..optim import scale_to_norm_
from ..training.data_parallel import generator_states, model_generators
from .data_parallel import MPIDataParallel
from .whole import optimizer_names, whole_model
from .zero import ShardOptimizer

__all__ = ["ZeRO3"]


class _Unit:
    """Parameters gathered together (one block, or everything outside the blocks):
    ``names`` (the whole model's), this rank's ``shard`` of their flat layout [S], the
    summed gradient's shard ``grad`` [S]; `gather` and `release` the whole of it."""

    def __init__(self, named: list, comm):
        self.comm = comm
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        N, r = comm.size, comm.rank
        P = sum(p.data.size for p in self.params)
        self.S = S = -(-P // N)                                        # ⌈P / N⌉
        self.dtype = self.params[0].data.dtype
        flat = np.zeros(N * S, self.dtype)                             # [N S]
        self.bounds, offset = [], 0
        for p in self.params:
            flat[offset:offset + p.data.size] = p.data.reshape(-1)
            self.bounds.append((offset, offset + p.data.size))
            offset += p.data.size
        self.lo, self.hi = r * S, (r + 1) * S
        self.shard = flat[self.lo:self.hi].copy()                      # [S] this rank's
        self.grad = np.zeros(S, self.dtype)
        self.gathered = False
        self.release()

    def gather(self) -> None:
        """Every rank gets the whole unit: the parameters become views of it."""
        full = np.empty(self.comm.size * self.S, self.dtype)          # [N S]
        self.comm.Allgather(self.shard, full)
        for p, (a, b) in zip(self.params, self.bounds):
            p.data = full[a:b].reshape(p.data.shape)
        self.gathered = True

    def release(self) -> None:
        """Drop the gathered weights: each parameter keeps its shape over no memory (a
        read-only broadcast of one zero), so that nothing can use it by mistake."""
        zero = np.zeros((), self.dtype)
        for p in self.params:
            p.data = np.broadcast_to(zero, p.data.shape)
        self.gathered = False

    def reduce_scatter_grads(self) -> None:
        """Sum the ranks' gradients of this unit; keep this rank's shard (added to
        `grad`), drop the full-size ones."""
        from mpi4py import MPI
        flat = np.zeros(self.comm.size * self.S, self.dtype)
        for p, (a, b) in zip(self.params, self.bounds):
            if p.grad is not None:
                flat[a:b] = p.grad.reshape(-1)
            p.grad = None
        mine = np.empty(self.S, self.dtype)
        self.comm.Reduce_scatter_block(flat, mine, op=MPI.SUM)
        self.grad += mine


class _GatheredBlock(Function):
    """A block run on its gathered weights, which are dropped in between (module doc)."""

    @staticmethod
    def forward(ctx, x, *, block, unit, mask):
        ctx.block, ctx.unit, ctx.mask = block, unit, mask
        ctx.rngs = generator_states(block)
        unit.gather()
        try:
            with no_grad():
                y = block(Tensor(x), mask).data
        finally:
            unit.release()
        ctx.save_for_backward(x)
        return y

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved
        block, unit = ctx.block, ctx.unit
        gens = model_generators(block)
        now = [gen.bit_generator.state for gen in gens]
        for gen, state in zip(gens, ctx.rngs):             # the forward's dropout draws
            gen.bit_generator.state = state
        unit.gather()
        try:
            with enable_grad():
                xt = Tensor(x, requires_grad=True)
                block(xt, ctx.mask).backward(g)
            unit.reduce_scatter_grads()
        finally:
            unit.release()
            for gen, state in zip(gens, now):
                gen.bit_generator.state = state
        return xt.grad


class _ZeroBlock(Module):
    """Stands in a GPT's ``h[i]`` (a Llama's ``layers[i]``): runs the block through `_GatheredBlock`. The block is
    held outside the module tree (its parameters live in the unit's shards)."""

    def __init__(self, block, unit):
        super().__init__()
        self._held = (block,)                 # a tuple: not registered as a child
        self._unit = unit

    def forward(self, x, mask=None):
        block = self._held[0]
        if block.training != self.training:   # (train()/eval() do not reach it: not a child)
            block.train(self.training)
        return _GatheredBlock.apply(x, block=block, unit=self._unit, mask=mask)


class ZeRO3(MPIDataParallel):
    """The Trainer's `parallel` for ZeRO stage 3 over the ranks of `comm`:
    ``ZeRO3(trainer, comm)`` shards ``trainer.model`` (a GPT or a Llama) and replaces
    ``trainer.optimizer`` with AdamW over the shards (keeping a resumed run's state)."""

    def __init__(self, trainer, comm=None):
        model, old = trainer.model, trainer.optimizer
        # the blocks: a GPT's h, a Llama's layers (Qwen2, Mistral); each is called as
        # block(x, mask), which is all _ZeroBlock needs
        blocks = {"GPT": "h", "Llama": "layers"}.get(type(model).__name__)
        if blocks is None:
            raise ValueError(f"ZeRO stage 3 shards the blocks of a GPT or a Llama, not a "
                             f"{type(model).__name__}")
        stack = getattr(model, blocks)
        super().__init__(model, comm)                     # the same weights everywhere
        groups = {id(p): g for g in old.param_groups for p in g["params"]}
        saved = old.state_dict()["state"]
        index = optimizer_names(model, old)
        names = {id(p): n for n, p in model.named_parameters()}
        trained = lambda named: [(n, p) for n, p in named if id(p) in groups]   # noqa: E731
        inner = set()
        self.units = []
        for i, block in enumerate(stack):
            named = trained((f"{blocks}.{i}.{n}", p) for n, p in block.named_parameters())
            inner |= {id(p) for _, p in named}
            self.units.append(_Unit(named, self.comm))
        outer = trained((n, p) for n, p in model.named_parameters() if id(p) not in inner)
        self.outer = _Unit(outer, self.comm)
        self.units.append(self.outer)
        for i, block in enumerate(list(stack)):
            stack[i] = _ZeroBlock(block, self.units[i])
        self.full_config, self.inner = model.config, old
        # AdamW over the shards: each unit's shard cut by parameter group
        self.segments = []                                # (unit, group, a, b, state)
        for unit in self.units:
            for p, (start, end) in zip(unit.params, unit.bounds):
                a, b = max(start, unit.lo), min(end, unit.hi)      # its stretch we own
                if a < b:
                    state = saved.get(index[names[id(p)]])
                    self.segments.append([unit, groups[id(p)], a, b,
                                          _piece(state, a - start, b - start)])
        old.state = {}
        self.optimizer = _Zero3AdamW(self)
        trainer.optimizer = self.optimizer
        self._consolidated = None

    # ------------------------------------------------------------------ the step
    def run(self, batch, loss_fn, *, scale: float = 1.0, backward: bool = True) -> float:
        gathered_here = not self.outer.gathered
        if gathered_here:
            self.outer.gather()           # the tables and final norm, for the whole step
        try:
            return super().run(batch, loss_fn, scale=scale, backward=backward)
        finally:
            if gathered_here and not backward:
                self.outer.release()

    def reduce(self, loss: float) -> float:
        """The blocks' gradients were reduce-scattered in their backward; now the outer
        unit's, and the loss."""
        if self.outer.gathered:
            self.outer.reduce_scatter_grads()
            self.outer.release()
        return float(self.comm.allreduce(loss))

    def clip_grad_norm(self, params, max_norm: float) -> float:
        sq = sum(float(np.dot(u.grad.astype(np.float64), u.grad.astype(np.float64)))
                 for u in self.units)
        norm = math.sqrt(self.comm.allreduce(sq))
        if max_norm > 0:
            scale_to_norm_([u.grad for u in self.units], norm, max_norm)
        return norm

    def memory(self) -> dict:
        """Bytes this rank holds between steps (``weights``, ``gradients``,
        ``optimizer``: shards) and, at most, ``gathered`` during a step."""
        shard = sum(u.S for u in self.units) * self.outer.dtype.itemsize
        largest = max(u.S for u in self.units[:-1]) * self.comm.size * \
            self.outer.dtype.itemsize
        return {"weights": shard, "gradients": shard, "optimizer": 2 * shard,
                "gathered": largest + self.outer.S * self.comm.size * self.outer.dtype.itemsize}

    # ------------------------------------------------------------------ checkpoints
    def prepare_checkpoint(self) -> None:
        """Gather every unit's shards of weights and moments on rank 0 into an ordinary
        GPT and AdamW state (a collective)."""
        weights, moments = {}, {}
        m_shards = {id(u): (np.zeros(u.S, u.dtype), np.zeros(u.S, u.dtype)) for u in self.units}
        step = 0
        for unit, _, a, b, state in self.segments:
            if state is not None:
                m_shards[id(unit)][0][a - unit.lo:b - unit.lo] = state["exp_avg"]
                m_shards[id(unit)][1][a - unit.lo:b - unit.lo] = state["exp_avg_sq"]
                step = state["step"]
        from mpi4py import MPI
        step = self.comm.allreduce(step, op=MPI.MAX)
        for unit in self.units:
            parts = [self._gather(unit.shard)] + [self._gather(m) for m in m_shards[id(unit)]]
            if self.rank != 0:
                continue
            for name, p, (a, b) in zip(unit.names, unit.params, unit.bounds):
                weights[name] = parts[0][a:b].reshape(p.data.shape).copy()
                if step:
                    moments[name] = {"step": step,
                                     "exp_avg": parts[1][a:b].reshape(p.data.shape).copy(),
                                     "exp_avg_sq": parts[2][a:b].reshape(p.data.shape).copy()}
        if self.rank == 0:
            self._consolidated = whole_model(self.full_config, weights, moments, self.inner,
                                             generator_states(self.model))

    def _gather(self, shard):
        full = np.empty(self.comm.size * len(shard), shard.dtype) if self.rank == 0 else None
        self.comm.Gather(shard, full, root=0)
        return full

    def to_save(self, model, optimizer):
        if self._consolidated is None:
            raise RuntimeError("ZeRO3: to_save() on rank 0 after prepare_checkpoint()")
        return self._consolidated


def _piece(state, a: int, b: int):
    """Elements ``[a, b)`` of a parameter's AdamW state, flattened (None: not started)."""
    if state is None:
        return None
    return {"step": int(state["step"]),
            "exp_avg": np.asarray(state["exp_avg"]).reshape(-1)[a:b].copy(),
            "exp_avg_sq": np.asarray(state["exp_avg_sq"]).reshape(-1)[a:b].copy()}


class _Zero3AdamW(ShardOptimizer):
    """AdamW on the shards (`numpyllm.optim.AdamW`'s own update, per stretch of one
    parameter group); the Trainer's optimizer for ZeRO stage 3."""

    def __init__(self, zero: ZeRO3):
        super().__init__(zero.inner)
        self.zero = zero

    def zero_grad(self) -> None:
        for unit in self.zero.units:
            unit.grad[...] = 0
            for p in unit.params:
                p.grad = None

    def step(self) -> None:
        for seg in self.zero.segments:
            unit, group, a, b, state = seg
            if state is None:
                state = seg[4] = {"step": 0, "exp_avg": np.zeros(b - a, unit.dtype),
                                  "exp_avg_sq": np.zeros(b - a, unit.dtype)}
            self.inner._update(unit.shard[a - unit.lo:b - unit.lo],
                               unit.grad[a - unit.lo:b - unit.lo], state, group)

    def state_dict(self) -> dict:
        return self.zero.to_save(None, None)[1].state_dict()
