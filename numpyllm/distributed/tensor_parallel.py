"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019): each rank holds a slice of
every attention and MLP weight and computes its slice of the heads and hidden units;
the ranks see the same batch.

**Attention, split by heads.** With nh heads over N ranks, rank r owns heads
``[r nh/N, (r+1) nh/N)``: the q, k and v columns of those heads in ``c_attn``
(``[C, 3C] -> [C, 3C/N]``) and the matching rows of ``c_proj`` (``[C, C] -> [C/N, C]``).
Heads never mix before ``c_proj``, so each rank runs ordinary attention on its heads, and
``c_proj``'s product over the C inputs is a sum over the ranks' C/N slices:

    y = Σ_r  y_r W_proj[r]  + b          (one allreduce in the forward)

**The MLP, column then row.** ``c_fc``'s columns (``[C, 4C] -> [C, 4C/N]``) and their
bias: each rank computes its 4C/N hidden units and their GELU (elementwise: no
communication); ``c_proj``'s rows (``[4C/N, C]``): a sum over the ranks again.

**The two operators** (Megatron's f and g) make the backward right with one allreduce
each way per layer:

    f  (before the split)   forward: identity      backward: sum the ranks' dx
    g  (after c_proj)       forward: sum over ranks backward: identity

Every rank's input x feeds its own heads; dL/dx is the sum of what each rank's heads send
back, hence f's backward. After g every rank holds the same output, and so the same
upstream gradient. Everything outside the split layers (embeddings, layer norms, the
head, the biases added after g) is replicated and gets the same gradient on every rank
with no communication. Sums are made by a reduce to rank 0 and a broadcast, so every
rank holds bitwise the same result (an allreduce may round differently per rank, and
replicated weights would drift apart).

**What is sent.** Per layer and micro-batch, forward: the attention output and the MLP
output, each ``[B, T, C]``, summed across ranks; backward: the same sizes for the inputs'
gradients. **What each rank holds**: 1/N of the attention and MLP weights, their
gradients and optimizer state; all of the rest.

For the GPT; for next-token prediction the table and head are split over the vocabulary
too (`vocab_parallel.py`), otherwise replicated. The f/g operators are in `rank_ops.py`.
ALiBi: its slopes depend on the global head index, so rank r's heads take the slopes of
heads ``[r nh/N, (r+1) nh/N)`` (`RankALiBi`). A Llama (Qwen2, Mistral) is split by
`tensor_parallel_llama.py`: the same operators, grouped-query heads, SwiGLU.
"""
from __future__ import annotations

import math

import numpy as np

from ..nn.attention import MultiHeadAttention
from ..nn.layers import Linear
from ..nn.module import Module, Parameter
from ..nn.positional import ALiBi, alibi_bias
from ..optim import scale_to_norm_
from ..training.data_parallel import generator_states
from .rank_ops import CopyToRanks, SumOverRanks, sum_identical
from .vocab_parallel import VocabParallelGPT, _Rank, vocab_range
from .whole import adamw_like, full_shapes, optimizer_names, take_state, whole_model

__all__ = ["tensor_parallel", "ParallelAttention", "ParallelMLP", "RankALiBi",
           "TensorParallel"]


def _ranks(n: int, comm, what: str) -> tuple[int, int]:
    if n % comm.size:
        raise ValueError(f"tensor parallelism over {comm.size} ranks needs {what} divisible "
                         f"by {comm.size}, got {n}")
    k = n // comm.size
    return comm.rank * k, (comm.rank + 1) * k


class ParallelAttention(Module):
    """This rank's heads of a causal self-attention `attn` (sliced from it):
    ``local`` (a MultiHeadAttention of those heads), ``bias`` (c_proj's, added after the sum), and the original
    output dropout."""

    def __init__(self, attn: MultiHeadAttention, comm):
        super().__init__()
        if attn.cross:
            raise ValueError("tensor parallelism splits causal self-attention (not "
                             "cross-attention)")
        self.comm = comm
        C, nh, hs = attn.n_embd, attn.n_head, attn.head_size
        lo, hi = _ranks(nh, comm, f"the heads (n_head={nh})")
        n = hi - lo                                             # heads on this rank
        dtype = attn.c_proj.weight.data.dtype
        # this rank's heads: an attention over n heads of the input's full width C, whose
        # c_attn is C -> 3C/N and c_proj C/N -> C, without bias or dropout (both after g)
        local = MultiHeadAttention(n * hs, n, causal=attn.causal,
                                   bias=attn.c_attn.bias is not None, dropout=attn.dropout,
                                   positions=attn.rope if attn.alibi is None else
                                   RankALiBi(nh, lo, n),
                                   dtype=dtype, block_size=attn.block_size)
        local.input_width = C
        local.rng = attn.rng                                    # the same dropout draws
        def qkv_columns(r):                 # rank r's q | k | v columns of c_attn
            return np.concatenate([np.arange(part * C + r * n * hs, part * C + (r + 1) * n * hs)
                                   for part in range(3)])

        def rows(r):                        # rank r's rows of c_proj
            return slice(r * n * hs, (r + 1) * n * hs)
        # local parameter -> (the full model's name, rank -> index into the full array)
        self.parts = {"local.c_attn.weight": ("c_attn.weight",
                                              lambda r: (slice(None), qkv_columns(r))),
                      "local.c_attn.bias": ("c_attn.bias", lambda r: (qkv_columns(r),)),
                      "local.c_proj.weight": ("c_proj.weight", lambda r: (rows(r),)),
                      "bias": ("c_proj.bias", None)}
        cols = qkv_columns(comm.rank)
        local.c_attn = Linear(C, 3 * n * hs, attn.c_attn.bias is not None, dtype=dtype)
        local.c_attn.weight.data[...] = attn.c_attn.weight.data[:, cols]       # [C, 3C/N]
        if attn.c_attn.bias is not None:
            local.c_attn.bias.data[...] = attn.c_attn.bias.data[cols]
        local.c_proj = Linear(n * hs, C, False, dtype=dtype)
        local.c_proj.weight.data[...] = attn.c_proj.weight.data[lo * hs:hi * hs]  # [C/N, C]
        local.resid_dropout = _identity
        self.local = local
        self.bias = None if attn.c_proj.bias is None else Parameter(attn.c_proj.bias.data.copy())
        self.resid_dropout = attn.resid_dropout

    def forward(self, x, mask=None, causal=None, **kwargs):
        if kwargs.get("cache") is not None:
            raise ValueError("tensor-parallel attention has no KV cache: generate from the "
                             "consolidated checkpoint")
        y = self.local(CopyToRanks.apply(x, comm=self.comm), mask=mask, causal=causal)
        y = SumOverRanks.apply(y, comm=self.comm)                          # [B, T, C]
        if self.bias is not None:
            y = y + self.bias
        return self.resid_dropout(y)


class ParallelMLP(Module):
    """This rank's hidden units of an MLP: ``c_fc`` columns (with their bias), the
    activation, ``c_proj`` rows; ``bias`` (c_proj's) after the sum."""

    def __init__(self, mlp, comm):
        super().__init__()
        self.comm = comm
        C, H = mlp.c_fc.weight.shape
        lo, hi = _ranks(H, comm, f"the MLP's hidden width ({H})")
        dtype = mlp.c_fc.weight.data.dtype
        has_bias = mlp.c_fc.bias is not None
        self.c_fc = Linear(C, hi - lo, has_bias, dtype=dtype)
        self.c_fc.weight.data[...] = mlp.c_fc.weight.data[:, lo:hi]            # [C, H/N]
        if has_bias:
            self.c_fc.bias.data[...] = mlp.c_fc.bias.data[lo:hi]
        self.act = mlp.act
        self.c_proj = Linear(hi - lo, C, False, dtype=dtype)
        self.c_proj.weight.data[...] = mlp.c_proj.weight.data[lo:hi]           # [H/N, C]
        self.bias = None if mlp.c_proj.bias is None else Parameter(mlp.c_proj.bias.data.copy())
        self.dropout = mlp.dropout
        k = hi - lo

        def units(r):                       # rank r's hidden units
            return slice(r * k, (r + 1) * k)
        self.parts = {"c_fc.weight": ("c_fc.weight", lambda r: (slice(None), units(r))),
                      "c_fc.bias": ("c_fc.bias", lambda r: (units(r),)),
                      "c_proj.weight": ("c_proj.weight", lambda r: (units(r),)),
                      "bias": ("c_proj.bias", None)}

    def forward(self, x):
        h = self.act(self.c_fc(CopyToRanks.apply(x, comm=self.comm)))     # [B, T, H/N]
        y = SumOverRanks.apply(self.c_proj(h), comm=self.comm)             # [B, T, C]
        if self.bias is not None:
            y = y + self.bias
        return self.dropout(y)


def _identity(x):
    return x


class RankALiBi(ALiBi):
    """ALiBi for this rank's heads ``[lo, lo + n)`` of `n_total`: each keeps the slope of
    its *global* index (the slopes are a geometric sequence over all the heads, so the
    local heads 0 .. n-1 would otherwise take the first heads' slopes).
    ``bias(Tq, Tk) -> [n, Tq, Tk]``, rows ``lo .. lo+n-1`` of the whole model's bias."""

    def __init__(self, n_total: int, lo: int, n: int):
        super().__init__(n)
        self.n_total, self.lo = n_total, lo

    def bias(self, Tq: int, Tk: int | None = None, dtype=np.float32) -> np.ndarray:
        return alibi_bias(self.n_total, Tq, Tk, dtype)[self.lo:self.lo + self.n_head]

    forward = bias


# ---------------------------------------------------------------------- the vocabulary
# ---------------------------------------------------------------------- the model
def tensor_parallel(model, comm, *, vocab: bool = False):
    """Split every block's attention and MLP of a GPT (or a Llama:
    `tensor_parallel_llama`) over the ranks of `comm`, in place
    (every rank must hold the same model: build it with the same seed, or load the same
    checkpoint); with `vocab`, the token table and the head over the vocabulary too (a
    `VocabParallelGPT` around the same blocks). Returns ``(model, parts)``: the model to
    train, and the map ``local name -> (full name, rank -> index)`` of the split
    parameters (None: replicated under another name) that `TensorParallel` uses to
    consolidate and to slice."""
    if type(model).__name__ == "Llama":                 # also Qwen2, Mistral
        from .tensor_parallel_llama import tensor_parallel_llama
        return tensor_parallel_llama(model, comm, vocab=vocab)
    if type(model).__name__ != "GPT":
        raise ValueError(f"tensor parallelism splits a GPT's or a Llama's blocks, not a "
                         f"{type(model).__name__}")
    parts = split_layers(model.h, "h", {"attn": lambda a: ParallelAttention(a, comm),
                                         "mlp": lambda m: ParallelMLP(m, comm)})
    if not vocab:
        return model, parts
    return split_vocabulary(VocabParallelGPT(model, comm), "wte", comm, parts)


def split_layers(layers, prefix: str, split: dict) -> dict:
    """Replace each layer's sub-modules named in `split` (name -> its split module, made
    from the whole one) in place; the ``parts`` map of their split parameters, by the
    model's names (``{prefix}.{i}.{name}.{parameter}``)."""
    parts = {}
    for i, layer in enumerate(layers):
        for name, make in split.items():
            module = make(getattr(layer, name))
            setattr(layer, name, module)
            for local, (full, index) in module.parts.items():
                parts[f"{prefix}.{i}.{name}.{local}"] = (f"{prefix}.{i}.{name}.{full}", index)
    return parts


def split_vocabulary(model, table: str, comm, parts: dict) -> tuple:
    """`parts` plus the rows of the token table (and of an untied head) that each rank of
    a vocabulary-parallel `model` holds; ``(model, parts)``."""
    rows = lambda r: (slice(*vocab_range(model.config.vocab_size, _Rank(comm, r))),)  # noqa: E731
    parts[f"{table}.weight"] = (f"{table}.weight", rows)
    if not model.config.tie_weights:
        parts["lm_head.weight"] = ("lm_head.weight", lambda r: (slice(None),) + rows(r))
    return model, parts


class TensorParallel:
    """The Trainer's `parallel` for a GPT or a Llama split by `tensor_parallel`: every
    rank runs the same whole batch through its slices (one thread: the collectives inside
    the model must be entered in the same order on every rank); the global gradient norm
    sums the split parameters' squares across ranks and counts the replicated ones once;
    checkpoints are consolidated on rank 0 into an ordinary GPT (or Llama) and AdamW state.

    ``TensorParallel(trainer, comm)`` splits ``trainer.model`` and rebuilds
    ``trainer.optimizer`` over the rank's parameters, keeping (sliced) any state it
    held, so a run resumed from any checkpoint carries on.

    **With data parallelism** (``tp=K`` of a world of N = K·D ranks): the world is a
    grid, D groups of K ranks. Rank w is slice ``w % K`` of the model in tensor group
    ``w // K``; each tensor group takes its rows of the batch as one data-parallel rank
    (`MPIDataParallel` over the D ranks holding the same slice), and the gradients of
    the same slice are summed across the D groups. Sent per step: the tensor-parallel
    sums inside each group, and an allreduce of 1/K of the gradient across groups."""

    # BLAS on one thread in every rank: on one machine the ranks are its cores, and a
    # rank's own BLAS threads would fight the others for them (the Trainer's _blas_scope)
    one_blas_thread = True

    def __init__(self, trainer, comm=None, *, tp: int | None = None, vocab: bool = False):
        from ..training.data_parallel import DataParallel
        from .comm import world
        from .data_parallel import MPIDataParallel
        if vocab and trainer.objective.name != "clm":
            raise ValueError(f"the vocabulary split computes next-token prediction's loss "
                             f"(clm), not {trainer.objective.name}")
        self.world = world() if comm is None else comm
        tp = self.world.size if tp is None else tp
        if not (isinstance(tp, int) and tp >= 1 and self.world.size % tp == 0):
            raise ValueError(f"--tp {tp} does not divide the {self.world.size} ranks")
        self.tp, self.dp = tp, self.world.size // tp
        # the grid: tensor group w // tp (the ranks that split one model), data group
        # w % tp (the ranks that hold the same slice)
        self.comm = self.world.Split(self.world.rank // tp, self.world.rank)
        self.data_comm = self.world.Split(self.world.rank % tp, self.world.rank)
        self.rank, self.size = self.comm.rank, self.comm.size
        model, old = trainer.model, trainer.optimizer
        full_config = model.config
        # the whole model's names and state, before it is split
        full_state, full_names = old.state_dict(), optimizer_names(model, old)
        model, self.parts = tensor_parallel(model, self.comm, vocab=vocab)
        trainer.model = self.model = model
        self.full_config = full_config
        trainer.optimizer = self.optimizer = adamw_like(model, old)
        trainer.params = [(n, p) for n, p in model.named_parameters()]
        self.names = optimizer_names(model, self.optimizer)
        # a resumed run: this rank's slices of the whole AdamW state
        self.optimizer.state = take_state(full_state, full_names, self.names, self._source)
        self.local = DataParallel(model, threads=1) if self.dp == 1 else \
            MPIDataParallel(model, self.data_comm)
        self.split = {id(p) for n, p in model.named_parameters() if n in self.parts
                      and self.parts[n][1] is not None}
        self._consolidated = None

    threads = 1
    writes_checkpoints = property(lambda self: self.world.rank == 0)

    def run(self, batch, loss_fn, *, scale: float = 1.0, backward: bool = True) -> float:
        """The tensor group's rows of the batch (all of them without data parallelism)."""
        return self.local.run(batch, loss_fn, scale=scale, backward=backward)

    def reduce(self, loss: float) -> float:
        """Without data parallelism the ranks saw the same batch: nothing to add up;
        with it, each slice's gradient is summed over the groups holding it."""
        return self.local.reduce(loss)

    def agree(self, flag: bool) -> bool:
        from mpi4py import MPI
        return bool(self.world.allreduce(bool(flag), op=MPI.LOR))

    def barrier(self) -> None:
        self.world.Barrier()

    def clip_grad_norm(self, params, max_norm: float) -> float:
        """The norm of the whole model's gradient: the split parameters' squares summed
        over the ranks, the replicated ones counted once."""
        split = replicated = 0.0
        grads = []
        for p in params:
            if p.grad is None:
                continue
            g = p.grad.reshape(-1).astype(np.float64)
            if id(p) in self.split:
                split += float(np.dot(g, g))
            else:
                replicated += float(np.dot(g, g))
            grads.append(p.grad)
        norm = math.sqrt(float(sum_identical(self.comm, np.array([split]))[0]) + replicated)
        if max_norm > 0:
            scale_to_norm_(grads, norm, max_norm)
        return norm

    # ------------------------------------------------------------------ checkpoints
    def _full(self, name: str, local: np.ndarray, shape) -> np.ndarray | None:
        """The whole of a split array, gathered on rank 0 (None elsewhere). The ranks'
        parts may differ in size (the vocabulary's): each is sent flat (Gatherv) and put
        back at its rank's index."""
        index = self.parts[name][1]
        template = np.empty(shape, dtype=np.uint8)
        sizes = [template[index(r)].size for r in range(self.size)]
        flat = np.empty(sum(sizes), local.dtype) if self.rank == 0 else None
        self.comm.Gatherv(np.ascontiguousarray(local).reshape(-1),
                          [flat, sizes] if self.rank == 0 else None, root=0)
        if self.rank != 0:
            return None
        full = np.empty(shape, local.dtype)
        start = 0
        for r, n in enumerate(sizes):
            part = template[index(r)].shape
            full[index(r)] = flat[start:start + n].reshape(part)
            start += n
        return full

    def prepare_checkpoint(self) -> None:
        """Gather the split weights and moments on rank 0 into an ordinary GPT and AdamW
        (a collective of the first tensor group, which holds world rank 0; the other
        groups hold the same numbers)."""
        if self.world.rank // self.tp != 0:
            return
        shapes = full_shapes(self.full_config)
        weights, moments = {}, {}
        for name, p in self.model.named_parameters():
            target = self._full_name(name)
            split = name in self.parts and self.parts[name][1] is not None
            weights[target] = self._full(name, p.data, shapes[target]) if split \
                else p.data
            state = self.optimizer.state.get(self.names.get(name))
            if state is not None:
                moments[target] = {k: (self._full(name, v, shapes[target]) if split else v)
                                   if isinstance(v, np.ndarray) else v
                                   for k, v in state.items()}
        if self.rank == 0:
            # every rank draws the same dropout masks' numbers (same shapes): rank 0's
            # generators stand for all
            self._consolidated = whole_model(self.full_config, weights, moments,
                                             self.optimizer, generator_states(self.model))

    def to_save(self, model, optimizer):
        """What rank 0 writes: the consolidated GPT and AdamW."""
        if self._consolidated is None:
            raise RuntimeError("TensorParallel: to_save() on rank 0 after prepare_checkpoint()")
        return self._consolidated

    def _full_name(self, local: str) -> str:
        return self.parts[local][0] if local in self.parts else local

    def _source(self, name: str) -> tuple:
        """(whole name, this rank's index into it) of a local parameter."""
        if name in self.parts and self.parts[name][1] is not None:
            return self.parts[name][0], self.parts[name][1](self.rank)
        return self._full_name(name), None

