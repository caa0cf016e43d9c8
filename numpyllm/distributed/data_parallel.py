"""Data parallelism over MPI ranks: every rank holds the whole model, takes its share
of each batch, and the gradients are summed across ranks before the optimizer step.

**What each rank holds.** All the weights, all the gradients, all the optimizer state
(AdamW's two moments): N copies of everything. ZeRO (`numpyllm.distributed.zero`)
shards the last two, then the first.

**The batches.** Every rank draws the *same* global batch from the same seeded
generator (the Trainer's `data_rng`: drawing a batch is cheap, the model is not), then
keeps rows ``[B r / N, B (r+1) / N)``. So N ranks see exactly the batches one process
would, and a run is the same run whatever N is.

**The math** is `numpyllm.training.data_parallel`'s, one level up. The batch loss is the
mean over its counted targets; with rank r holding n_r of the N_t counted targets and
mean loss L_r:

    L = Σ_r (n_r / N_t) L_r          dL/dθ = Σ_r (n_r / N_t) dL_r/dθ

Rank r runs backward with upstream gradient n_r / N_t (it knows N_t: it drew the whole
batch) and one ``Allreduce(SUM)`` adds the ranks' gradients: afterwards every rank holds
dL/dθ, runs the same clipping and the same AdamW step, and the weights stay identical
without being sent again. Inside a rank the slice may be cut again over threads.

**What is sent, per optimizer step.** The gradients, once (with gradient accumulation,
once after the last micro-batch, not once per micro-batch), packed into buckets of at
most `bucket_mb` MiB so that a step makes a few large collective calls instead of one
per tensor; the loss rides in the last bucket. A ring allreduce moves 2(N-1)/N of the
buffer per rank each way: for P parameters in float32, about 8P(N-1)/N bytes sent per
rank per step. `last_bytes` and `last_calls` report the step's buffer bytes and calls.
At the start, rank 0's weights are broadcast (`broadcast_parameters`) so that every
rank starts from the same model whatever its own initialisation drew.

>>> # mpiexec -n 2 python -c "..."  (alone it is a world of one: the same numbers)
>>> import numpy as np
>>> from numpyllm.nn import GPT, GPTConfig
>>> from numpyllm.training import Trainer, TrainConfig
>>> from numpyllm.distributed import MPIDataParallel
>>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8), rng=0)
>>> trainer = Trainer(model, np.arange(200) % 11, config=TrainConfig(batch_size=4))
>>> trainer.parallel = MPIDataParallel(model)                        # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

from ..training.data_parallel import DataParallel
from .comm import world

__all__ = ["MPIDataParallel"]


class MPIDataParallel:
    """The Trainer's `parallel` over the ranks of `comm` (default: the MPI world), with
    `threads` threads inside each rank (default 1: on a machine whose cores are the
    ranks, threads would fight them). Same interface as
    `numpyllm.training.data_parallel.DataParallel`: ``run``, ``reduce``, ``agree``,
    ``barrier``, ``writes_checkpoints``."""

    # BLAS on one thread in every rank: on one machine the ranks are its cores, and a
    # rank's own BLAS threads would fight the others for them (the Trainer's _blas_scope)
    one_blas_thread = True

    def __init__(self, model, comm=None, *, threads: int = 1, bucket_mb: float = 25.0):
        self.comm = world() if comm is None else comm
        self.rank, self.size = self.comm.rank, self.comm.size
        self.model = model
        self.local = DataParallel(model, threads=threads)
        if not bucket_mb > 0:
            raise ValueError(f"bucket_mb must be > 0, got {bucket_mb}")
        self.bucket_bytes = int(bucket_mb * 2**20)
        self.params = [p for p in model.parameters()]       # the same order on every rank
        self.last_bytes = self.last_calls = 0
        self.broadcast_parameters()

    @property
    def threads(self) -> int:
        return self.local.threads

    @property
    def writes_checkpoints(self) -> bool:
        """Only rank 0 writes (every rank holds the same weights and state)."""
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def broadcast_parameters(self) -> None:
        """Every rank takes rank 0's weights."""
        for p in self.params:
            self.comm.Bcast(p.data, root=0)

    def agree(self, flag: bool) -> bool:
        """True on every rank when any rank says True (a stop signal seen by one rank
        stops all of them after the same step)."""
        from mpi4py import MPI
        return bool(self.comm.allreduce(bool(flag), op=MPI.LOR))

    def barrier(self) -> None:
        self.comm.Barrier()

    def clip_grad_norm(self, params, max_norm: float) -> float:
        """After `reduce` every rank holds the whole gradient: clip it as one process does."""
        return self.local.clip_grad_norm(params, max_norm)

    def prepare_checkpoint(self) -> None:
        """Nothing to gather: every rank holds the whole optimizer state."""

    def to_save(self, model, optimizer):
        return model, optimizer

    # ------------------------------------------------------------------ a batch
    def _mine(self, batch):
        """This rank's rows of the global batch and their weight n_r / N_t."""
        B, N = len(batch), self.size
        if B < N:
            raise ValueError(f"a batch of {B} rows cannot be shared by {N} ranks: use a "
                             f"batch size of at least {N}")
        counts = np.asarray(batch.counts)
        lo, hi = B * self.rank // N, B * (self.rank + 1) // N
        total = int(counts.sum())
        weight = int(counts[lo:hi].sum()) / total if total else 0.0
        return batch.rows(slice(lo, hi)), weight

    def run(self, batch, loss_fn, *, scale: float = 1.0, backward: bool = True) -> float:
        """With `backward`: this rank's share ``(n_r/N_t) L_r`` of the batch loss, its
        gradient (times `scale`) added to the local ``.grad`` with nothing sent yet
        (`reduce` sends, once per optimizer step). Without: the whole batch's mean
        loss, summed across ranks (one small allreduce)."""
        mine, weight = self._mine(batch)
        value = 0.0
        if weight > 0:
            value = weight * self.local.run(mine, loss_fn, scale=scale * weight,
                                            backward=backward)
        if backward:
            return value
        return float(self.comm.allreduce(value))

    def reduce(self, loss: float) -> float:
        """Sum the ranks' gradients (bucketed, in place) and their shares of the loss;
        returns the loss of the whole step, the same on every rank. A parameter that
        trains but got no gradient here (this rank's rows counted no target) adds 0."""
        from mpi4py import MPI
        trained = [p for p in self.params if p.requires_grad]
        buckets, current, size = [], [], 0
        for p in trained:                  # consecutive parameters, up to bucket_bytes
            if current and (size + p.data.nbytes > self.bucket_bytes
                            or p.data.dtype != current[0].data.dtype):
                buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        if current:
            buckets.append(current)
        self.last_bytes = self.last_calls = 0
        loss_sent = False
        for i, bucket in enumerate(buckets):
            dtype = bucket[0].data.dtype
            carry = i == len(buckets) - 1 and dtype == np.float64     # the loss rides along
            n = sum(p.data.size for p in bucket)
            flat = np.zeros(n + carry, dtype=dtype)                   # [n (+1)]
            offset = 0
            for p in bucket:
                if p.grad is not None:
                    flat[offset:offset + p.data.size] = p.grad.reshape(-1)
                offset += p.data.size
            if carry:
                flat[-1] = loss
            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            self.last_bytes += flat.nbytes
            self.last_calls += 1
            offset = 0
            for p in bucket:                  # views into the summed buffer
                p.grad = flat[offset:offset + p.data.size].reshape(p.data.shape)
                offset += p.data.size
            if carry:
                loss, loss_sent = float(flat[-1]), True
        if not loss_sent:
            loss = float(self.comm.allreduce(loss))
            self.last_calls += 1
        return loss
