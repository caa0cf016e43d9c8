"""ZeRO stages 1 and 2 (Rajbhandari et al. 2020): data parallelism whose optimizer state
(stage 1) and gradients (stage 2) are split across the ranks instead of copied.

**The flat layout.** The trained parameters, in the optimizer's group order, are laid
end to end in one buffer of P numbers, padded with zeros to N·S (S = ⌈P/N⌉); each
parameter's ``.data`` becomes a view of its stretch, so the model is unchanged. Rank r
*owns* the shard ``[r S, (r+1) S)``: it keeps AdamW's two moments for that shard only
and updates only those weights.

**A step.** The batch is shared as in `MPIDataParallel`, and each rank's backward leaves
its own full-size gradient (weighted n_r / N_t). Then:

    stage 1   Allreduce(SUM) of the gradient            every rank: whole summed gradient
    stage 2   Reduce_scatter(SUM) of the gradient       every rank: its shard of the sum
    both      clip by the global norm (the shards' squares summed by one small allreduce),
              AdamW on the owned shard, then Allgather of the shards: every rank has
              the whole updated model again

**What each rank holds, and sends per step** (P parameters of b bytes, N ranks):

    stage   weights   gradient (after reduce)   optimizer state   sent per rank
    dp      P b       P b                       2 P b             2 (N-1)/N P b
    1       P b       P b                       2 P b / N         3 (N-1)/N P b
    2       P b       P b / N                   2 P b / N         2 (N-1)/N P b

(Stage 2's reduce-scatter plus allgather move the same bytes as one allreduce, which is
a reduce-scatter followed by an allgather; stage 1 does the whole allreduce and then an
allgather too.) Before the reduce each rank still holds its own full gradient: here, as
in a framework without per-bucket hooks, stage 2 saves gradient memory from the reduce
to the end of the step, not during the backward pass.

**Checkpoints** are consolidated: before one is written every rank sends its moments to
rank 0 (`prepare_checkpoint`, a gather), which writes the ordinary AdamW state, so a run
resumes under any world size and any strategy (or in one process). On resume each rank
keeps its shard of the loaded state.

**One difference from one process**: AdamW updates every weight of the shard each
step, where the plain optimizer skips a parameter whose ``.grad`` is None. A trained
parameter that gets no gradient at all on some step is decayed and moved by its moment
here; in the models numpyllm trains every trained parameter has a gradient every step.
"""
from __future__ import annotations

import math

import numpy as np

from ..optim import scale_to_norm_
from .data_parallel import MPIDataParallel

__all__ = ["ZeRO"]


class ZeRO(MPIDataParallel):
    """``ZeRO(model, optimizer, comm=None, stage=1|2)``: the Trainer's `parallel`; set
    ``trainer.optimizer = zero.optimizer`` too (the sharded AdamW that takes the
    optimizer's groups, hyperparameters and any state it already holds)."""

    def __init__(self, model, optimizer, comm=None, *, stage: int = 1, threads: int = 1):
        if stage not in (1, 2):
            raise ValueError(f"ZeRO stage must be 1 or 2, got {stage!r}")
        super().__init__(model, comm, threads=threads)
        self.stage = stage
        self.optimizer = ShardedAdamW(optimizer, self)

    # ------------------------------------------------------------------ the step
    def reduce(self, loss: float) -> float:
        """Sum the ranks' gradients into this rank's shard (stage 1: via the whole
        gradient), and their shares of the loss."""
        from mpi4py import MPI
        opt = self.optimizer
        flat = np.zeros_like(opt.flat)                                  # [N S]
        for p, (a, b) in zip(opt.params, opt.bounds):
            if p.grad is not None:
                flat[a:b] = p.grad.reshape(-1)
            p.grad = None                    # the gradient lives in the flat buffer now
        if self.stage == 1:
            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            opt.grad = flat[opt.lo:opt.hi]                                 # [S], a view
        else:
            opt.grad = np.empty(opt.hi - opt.lo, dtype=flat.dtype)       # [S]
            self.comm.Reduce_scatter_block(flat, opt.grad, op=MPI.SUM)
        self.last_bytes = flat.nbytes * 2                          # + the allgather's
        self.last_calls = 3                                        # + loss, + allgather
        return float(self.comm.allreduce(loss))

    def clip_grad_norm(self, params, max_norm: float) -> float:
        """The global norm from the shards (each rank's sum of squares, summed across
        ranks), and the shard clipped as `numpyllm.optim.clip_grad_norm_` clips."""
        grad = self.optimizer.grad
        g64 = grad.astype(np.float64)
        norm = math.sqrt(self.comm.allreduce(float(np.dot(g64, g64))))
        if max_norm > 0:
            scale_to_norm_([grad], norm, max_norm)
        return norm

    def prepare_checkpoint(self) -> None:
        self.optimizer.gather_state()

    def memory(self) -> dict:
        """Bytes this rank holds: ``weights``, ``gradients`` (after the reduce),
        ``optimizer`` (the moments of its shard)."""
        opt = self.optimizer
        shard = (opt.hi - opt.lo) * opt.flat.itemsize
        return {"weights": opt.flat.nbytes,
                "gradients": opt.flat.nbytes if self.stage == 1 else shard,
                "optimizer": 2 * shard}


class ShardOptimizer:
    """What the Trainer asks of an optimizer whose state lives in shards: the learning
    rate (the wrapped AdamW's groups hold it), and the name a consolidated checkpoint
    records (the wrapped optimizer's)."""

    def __init__(self, optimizer):
        self.inner = optimizer
        self.param_groups = optimizer.param_groups
        self.saves_as = type(optimizer).__name__

    @property
    def lr(self) -> float:
        return self.inner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.inner.lr = value


class ShardedAdamW(ShardOptimizer):
    """AdamW over this rank's shard of the flat parameter buffer: the same update as
    `numpyllm.optim.AdamW` (its `_update`, run on the stretch of each group inside the
    shard), then an allgather of the shards. Looks like an optimizer to the Trainer:
    ``lr``, ``step``, ``zero_grad``, ``state_dict``, ``load_state_dict``."""

    def __init__(self, optimizer, zero: ZeRO):
        super().__init__(optimizer)
        self.zero, self.comm = zero, zero.comm
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"ZeRO lays the parameters in one buffer: they must share a "
                             f"dtype, got {sorted(map(str, dtypes))}")
        N, r = self.comm.size, self.comm.rank
        P = sum(p.data.size for p in self.params)
        S = -(-P // N)                                               # ⌈P / N⌉
        self.flat = np.zeros(N * S, dtype=dtypes.pop())               # [N S]
        self.bounds, offset = [], 0
        for p in self.params:           # each parameter becomes a view of its stretch
            n = p.data.size
            self.flat[offset:offset + n] = p.data.reshape(-1)
            p.data = self.flat[offset:offset + n].reshape(p.data.shape)
            self.bounds.append((offset, offset + n))
            offset += n
        self.lo, self.hi = r * S, (r + 1) * S
        # the stretches of the shard in each group: (group, a, b) in flat coordinates
        self.segments, start = [], 0
        for group in self.param_groups:
            end = start + sum(p.data.size for p in group["params"])
            a, b = max(start, self.lo), min(end, self.hi)
            if a < b:
                self.segments.append((group, a, b))
            start = end
        self.state = [None] * len(self.segments)      # AdamW's state of each stretch
        self.grad = None
        self._gathered = None
        if optimizer.state:                           # resuming: keep our shard of it
            self._take_shard(optimizer.state_dict())
        optimizer.state = {}                          # the whole state is not kept

    # ------------------------------------------------------------------ optimizer
    def zero_grad(self) -> None:
        self.grad = None
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """AdamW on the owned shard, then every rank takes every shard."""
        from mpi4py import MPI
        if self.grad is None:
            raise RuntimeError("ZeRO: step() before the gradients were reduced")
        for i, (group, a, b) in enumerate(self.segments):
            if self.state[i] is None:
                self.state[i] = {"step": 0, "exp_avg": np.zeros(b - a, self.flat.dtype),
                                 "exp_avg_sq": np.zeros(b - a, self.flat.dtype)}
            self.inner._update(self.flat[a:b], self.grad[a - self.lo:b - self.lo],
                               self.state[i], group)
        self.comm.Allgather(MPI.IN_PLACE, self.flat)

    # ------------------------------------------------------------------ state
    def _moments(self):
        """This rank's moments as shard-long arrays ``[S]`` (zeros where not started)."""
        m = np.zeros(self.hi - self.lo, self.flat.dtype)
        v = np.zeros_like(m)
        step = 0
        for state, (_, a, b) in zip(self.state, self.segments):
            if state is not None:
                m[a - self.lo:b - self.lo] = state["exp_avg"]
                v[a - self.lo:b - self.lo] = state["exp_avg_sq"]
                step = state["step"]
        return m, v, step

    def gather_state(self) -> None:
        """Every rank sends its moments to rank 0, which keeps the consolidated AdamW
        state for `state_dict` (a collective: every rank calls it)."""
        from mpi4py import MPI
        m, v, step = self._moments()
        root = self.comm.rank == 0
        full_m = np.empty_like(self.flat) if root else None
        full_v = np.empty_like(self.flat) if root else None
        self.comm.Gather(m, full_m, root=0)
        self.comm.Gather(v, full_v, root=0)
        step = self.comm.allreduce(step, op=MPI.MAX)
        self._gathered = (full_m, full_v, step) if root else None

    def state_dict(self) -> dict:
        """The consolidated state in `numpyllm.optim.AdamW`'s format (rank 0, after
        `gather_state`)."""
        if self._gathered is None:
            raise RuntimeError("ZeRO: state_dict() on rank 0 after prepare_checkpoint()")
        full_m, full_v, step = self._gathered
        out = self.inner.state_dict()                       # groups and hyperparameters
        if step:
            out["state"] = {i: {"step": step, "exp_avg": full_m[a:b].reshape(p.shape).copy(),
                                "exp_avg_sq": full_v[a:b].reshape(p.shape).copy()}
                            for i, (p, (a, b)) in enumerate(zip(self.params, self.bounds))}
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict)
        self._take_shard(self.inner.state_dict())
        self.inner.state = {}

    def _take_shard(self, state_dict: dict) -> None:
        """Our shard of a whole AdamW state (every parameter's, or none yet)."""
        saved = state_dict["state"]
        if not saved:
            self.state = [None] * len(self.segments)
            return
        full_m = np.zeros_like(self.flat)
        full_v = np.zeros_like(self.flat)
        steps = set()
        for i, (a, b) in enumerate(self.bounds):
            entry = saved.get(i)
            if entry is None:
                continue
            full_m[a:b] = np.asarray(entry["exp_avg"]).reshape(-1)
            full_v[a:b] = np.asarray(entry["exp_avg_sq"]).reshape(-1)
            steps.add(int(entry["step"]))
        if len(steps) > 1:
            raise ValueError(f"ZeRO keeps one step count for all parameters; the state has "
                             f"{sorted(steps)}")
        step = steps.pop()
        self.state = [{"step": step, "exp_avg": full_m[a:b].copy(),
                       "exp_avg_sq": full_v[a:b].copy()} for _, a, b in self.segments]
