"""The token table and the head split over the vocabulary (Megatron-LM), with a
cross-entropy that never holds a whole row of logits: tensor parallelism's outer layers
for next-token prediction (docs/distributed.md)."""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..nn.layers import Linear
from ..nn.llama import Llama
from ..nn.module import Module, Parameter
from .rank_ops import CopyToRanks, SumOverRanks, sum_identical

__all__ = ["vocab_range", "VocabParallelEmbedding", "VocabParallelCrossEntropy",
           "VocabParallelGPT", "VocabParallelLlama"]


def vocab_range(V: int, comm) -> tuple[int, int]:
    """Rank r's rows ``[lo, hi)`` of a V-row table: as equal as can be, the first
    V mod N ranks one more (V need not divide: GPT-2's 50,257 does not)."""
    base, extra = divmod(V, comm.size)
    lo = comm.rank * base + min(comm.rank, extra)
    return lo, lo + base + (comm.rank < extra)


class VocabParallelEmbedding(Module):
    """This rank's rows ``[lo, hi)`` of the token table: each rank looks up the ids in
    its range (zeros elsewhere) and g sums the ranks' lookups: every id is found on
    exactly one rank."""

    def __init__(self, wte, comm):
        super().__init__()
        V = wte.weight.shape[0]
        self.lo, self.hi = vocab_range(V, comm)
        self.comm = comm
        self.weight = Parameter(wte.weight.data[self.lo:self.hi].copy())     # [V/N, C]

    def forward(self, idx):
        from ..functional import embedding
        idx = np.asarray(idx)
        mine = (idx >= self.lo) & (idx < self.hi)                            # [B, T]
        x = embedding(np.where(mine, idx - self.lo, 0), self.weight)         # [B, T, C]
        x = x * mine[..., None].astype(x.dtype)       # ids of other ranks: zeros, no grad
        return SumOverRanks.apply(x, comm=self.comm)


class VocabParallelCrossEntropy(Function):
    """The mean cross-entropy of logits split over the vocabulary: rank r holds columns
    ``[lo, lo + V_r)`` of ``[B, T, V]``. Three small sums over the ranks replace the
    whole row: its max (for a stable exp), its sum of exponentials, and the target's
    logit (held by one rank, 0 elsewhere):

        loss_i = log Σ_v exp(z_iv - m_i) + m_i - z_i,target

    Backward, on each rank's own columns only: ``(softmax - onehot) / count``."""

    @staticmethod
    def forward(ctx, logits, *, targets, lo, comm, ignore_index=-100):
        from mpi4py import MPI
        V_r = logits.shape[-1]
        m = logits.max(axis=-1)                                       # [B, T] local max
        comm.Allreduce(MPI.IN_PLACE, m, op=MPI.MAX)                   # (a max: exact)
        e = np.exp(logits - m[..., None])                             # [B, T, V_r]
        s = sum_identical(comm, e.sum(axis=-1))                       # [B, T]
        valid = targets != ignore_index
        local = targets - lo
        mine = valid & (local >= 0) & (local < V_r)
        picked = np.where(mine, np.take_along_axis(
            logits, np.clip(local, 0, V_r - 1)[..., None], axis=-1)[..., 0], 0.0)
        picked = sum_identical(comm, picked.astype(logits.dtype))     # [B, T]
        count = max(int(valid.sum()), 1)
        losses = np.where(valid, np.log(s) + m - picked, 0.0)
        e /= s[..., None]                                             # this rank's softmax
        ctx.save_for_backward(e, mine, np.clip(local, 0, V_r - 1), valid)
        ctx.count = count
        return np.asarray(losses.sum() / count, dtype=logits.dtype)

    @staticmethod
    def backward(ctx, g):
        p, mine, local, valid = ctx.saved
        d = p * (valid[..., None] * (g / ctx.count))                  # [B, T, V_r]
        rows = np.nonzero(mine)
        d[rows + (local[rows],)] -= g / ctx.count
        return d


class VocabParallelGPT(Module):
    """A GPT whose blocks `tensor_parallel` split, with the token table (and a tied or
    untied head) split over the vocabulary too: ``model(idx, targets) -> (None, loss)``
    (the loss from `VocabParallelCrossEntropy`; no rank ever holds a whole row of logits).
    Its modules keep the GPT's names."""

    def __init__(self, gpt, comm):
        super().__init__()
        from ..nn.gpt import GPT
        self.config, self.comm = gpt.config, comm
        self.wte = VocabParallelEmbedding(gpt.wte, comm)
        if gpt.config.positions == "learned":
            self.wpe = gpt.wpe
        self.drop, self.h, self.ln_f = gpt.drop, gpt.h, gpt.ln_f
        if not gpt.config.tie_weights:                    # [C, V] -> this rank's columns
            self.lm_head = Linear(gpt.config.n_embd, self.wte.hi - self.wte.lo, False,
                                  dtype=gpt.lm_head.weight.data.dtype)
            self.lm_head.weight.data[...] = gpt.lm_head.weight.data[:, self.wte.lo:self.wte.hi]
        self.positions_table, self.check_ids = gpt.positions_table, gpt.check_ids
        self._check_length = gpt._check_length
        self._hidden = GPT.hidden_states             # the GPT's own code, on these modules
        self._inputs = lambda idx, embeds: GPT._inputs(self, idx, embeds)
        self.embed = lambda idx, positions=None, inputs_embeds=None: GPT.embed(
            self, idx, positions, inputs_embeds=inputs_embeds)

    def forward(self, idx, targets=None):
        if targets is None:
            raise ValueError("a vocabulary-parallel GPT computes its loss only: generate "
                             "from the consolidated checkpoint")
        h = self._hidden(self, idx)                                          # [B, T, C]
        return None, _head_loss(h, targets, self.wte, getattr(self, "lm_head", None),
                                self.comm)


class VocabParallelLlama(Module):
    """`VocabParallelGPT` for a Llama (Qwen2, Mistral) whose layers
    `tensor_parallel_llama` split: ``embed_tokens`` split over the vocabulary, the head
    tied to it or an ``lm_head`` split by columns; ``model(idx, targets) -> (None, loss)``.
    The Llama's own `hidden_states` runs on these modules (its names kept)."""

    # the Llama's own code, on these modules
    check_ids, _inputs, hidden_states = Llama.check_ids, Llama._inputs, Llama.hidden_states

    def __init__(self, llama, comm):
        super().__init__()
        cfg = llama.config
        self.config, self.comm = cfg, comm
        self.embed_tokens = VocabParallelEmbedding(llama.embed_tokens, comm)
        self.drop, self.layers, self.norm = llama.drop, llama.layers, llama.norm
        lo, hi = self.embed_tokens.lo, self.embed_tokens.hi
        self.lm_head = None
        if not cfg.tie_weights:                           # [C, V] -> this rank's columns
            self.lm_head = Linear(cfg.n_embd, hi - lo, False,
                                  dtype=llama.lm_head.weight.data.dtype)
            self.lm_head.weight.data[...] = llama.lm_head.weight.data[:, lo:hi]

    def forward(self, idx, targets=None, *, prefix_lengths=None, segment_ids=None):
        if targets is None:
            raise ValueError("a vocabulary-parallel Llama computes its loss only: generate "
                             "from the consolidated checkpoint")
        h = self.hidden_states(idx, prefix_lengths=prefix_lengths,
                               segment_ids=segment_ids)                      # [B, T, C]
        return None, _head_loss(h, targets, self.embed_tokens, self.lm_head, self.comm)


def _head_loss(h, targets, table: VocabParallelEmbedding, lm_head, comm):
    """The mean next-token loss of the hidden states `h` ``[B, T, C]`` through this rank's
    columns of the head: the table read backwards (tied; `lm_head` None) or `lm_head`'s."""
    h = CopyToRanks.apply(h, comm=comm)               # f: every rank's logits read all of h
    logits = h @ table.weight.T if lm_head is None else lm_head(h)          # [B, T, V_r]
    return VocabParallelCrossEntropy.apply(logits, targets=np.asarray(targets), lo=table.lo,
                                           comm=comm)


class _Rank:
    """Another rank of `comm`, for `vocab_range`'s arithmetic."""

    def __init__(self, comm, rank):
        self.rank, self.size = rank, comm.size
