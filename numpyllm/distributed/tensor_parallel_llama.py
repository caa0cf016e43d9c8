"""Tensor parallelism for the Llama family (Llama, Qwen2 with its q/k/v biases, Mistral):
Megatron's split (`tensor_parallel.py`) on a Llama's layers, in numpyllm's ``[in, out]``
layout and Hugging Face's names.

**Attention, split by heads, with grouped-query attention.** With nh query heads and
nkv key/value heads over N ranks (both divisible by N), rank r owns query heads
``[r nh/N, (r+1) nh/N)`` and key/value heads ``[r nkv/N, (r+1) nkv/N)``:

    q_proj [C, nh·hs]  -> columns [C, nh/N·hs]     (and its bias, Qwen2)
    k_proj [C, nkv·hs] -> columns [C, nkv/N·hs]    (and its bias)
    v_proj [C, nkv·hs] -> columns [C, nkv/N·hs]    (and its bias)
    o_proj [nh·hs, C]  -> rows    [nh/N·hs, C]     then g: the sum over the ranks

Why the groups stay whole: query head h reads key/value head ``h // g``, with
``g = nh / nkv`` query heads a group. Rank r's query heads are ``h = r·(nh/N) + j``,
``0 <= j < nh/N``, and ``nh/N = g·(nkv/N)``, so ``h // g = r·(nkv/N) + j // g``: every one
of them reads a key/value head of rank r, and local query head j reads local key/value
head ``j // g``, the grouping `LlamaAttention` itself makes with the same g. So each rank
runs ordinary grouped-query attention on its heads (RoPE too: the positions are global,
the heads local; nothing changes), and no key or value crosses ranks.

**SwiGLU, column then row.** gate_proj and up_proj ``[C, I] -> [C, I/N]`` (the same units
on a rank), ``silu(gate) * up`` elementwise on the rank's I/N units, down_proj
``[I, C] -> [I/N, C]``, then g.

**Replicated:** the RMSNorms (input_layernorm, post_attention_layernorm, norm). The token
table and the (tied or untied) head are split over the vocabulary for next-token
prediction (`VocabParallelLlama`), otherwise replicated.

**What is sent** per layer and batch: as the GPT's, two ``[B, T, C]`` sums forward (after
o_proj and after down_proj) and two backward (f's, the layer input's gradient).
"""
from __future__ import annotations

import dataclasses

from ..nn.layers import Linear, uninitialized_weights
from ..nn.llama import LlamaAttention, SwiGLU
from .rank_ops import CopyToRanks, SumOverRanks
from .tensor_parallel import _identity, _ranks, split_layers, split_vocabulary
from .vocab_parallel import VocabParallelLlama

__all__ = ["ParallelLlamaAttention", "ParallelSwiGLU", "tensor_parallel_llama"]


def _columns(r: int, width: int):
    """Rank r's `width` consecutive columns (or rows) of a split matrix."""
    return slice(r * width, (r + 1) * width)


def _copy_linear(local: Linear, whole: Linear, index) -> None:
    """`local`'s weight (and bias) := `whole`'s at `index` ((rows, cols) of the weight;
    the bias is indexed by the columns)."""
    local.weight.data[...] = whole.weight.data[index]
    if whole.bias is not None:
        local.bias.data[...] = whole.bias.data[index[1]]


class ParallelLlamaAttention(LlamaAttention):
    """This rank's query heads and the key/value heads they share (see the module doc), as
    a `LlamaAttention` of nh/N and nkv/N heads whose input is the full width C and whose
    o_proj output is summed over the ranks (g); o_proj's rows of the other heads are on
    the other ranks. `parts`: local name -> (whole name, rank -> index)."""

    def __init__(self, attn: LlamaAttention, config, comm):
        nh, nkv, hs = attn.n_head, attn.n_kv_head, attn.head_dim
        lo, hi = _ranks(nh, comm, f"the query heads (n_head={nh})")
        klo, khi = _ranks(nkv, comm, f"the key/value heads (n_kv_head={nkv})")
        n, m = hi - lo, khi - klo                   # query, key/value heads on this rank
        dtype = attn.q_proj.weight.data.dtype
        local = dataclasses.replace(config, n_head=n, n_kv_head=m, head_dim=hs)
        with uninitialized_weights():               # every weight is copied below
            super().__init__(local, rng=attn.rng, dtype=dtype)
        self.comm = comm
        q, kv = n * hs, m * hs                      # this rank's q and k/v widths
        all_rows = slice(None)
        _copy_linear(self.q_proj, attn.q_proj, (all_rows, _columns(comm.rank, q)))  # [C, q]
        _copy_linear(self.k_proj, attn.k_proj, (all_rows, _columns(comm.rank, kv)))  # [C, kv]
        _copy_linear(self.v_proj, attn.v_proj, (all_rows, _columns(comm.rank, kv)))  # [C, kv]
        self.o_proj.weight.data[...] = attn.o_proj.weight.data[_columns(comm.rank, q)]  # [q, C]
        # the output dropout acts on the whole sum, after g (on one rank's part it would
        # drop a different thing than the whole model's)
        self.out_dropout, self.resid_dropout = attn.resid_dropout, _identity
        self.parts = {}
        for name, width in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            self.parts[f"{name}.weight"] = (f"{name}.weight",
                                            lambda r, w=width: (all_rows, _columns(r, w)))
            if attn.q_proj.bias is not None:
                self.parts[f"{name}.bias"] = (f"{name}.bias", lambda r, w=width: (_columns(r, w),))
        self.parts["o_proj.weight"] = ("o_proj.weight", lambda r: (_columns(r, q),))

    def forward_cached(self, *args, **kwargs):
        raise ValueError("tensor-parallel attention has no KV cache: generate from the "
                         "consolidated checkpoint")

    def forward(self, x, prefix_mask=None):
        # f, then this rank's heads through o_proj's rows: a partial [B, T, C] ...
        y = super().forward(CopyToRanks.apply(x, comm=self.comm), prefix_mask)
        return self.out_dropout(SumOverRanks.apply(y, comm=self.comm))   # ... g: [B, T, C]


class ParallelSwiGLU(SwiGLU):
    """This rank's I/N units of a SwiGLU: gate_proj and up_proj columns, the gate on
    them, down_proj rows, then g."""

    def __init__(self, mlp: SwiGLU, comm):
        C, I = mlp.gate_proj.weight.shape
        lo, hi = _ranks(I, comm, f"the SwiGLU's intermediate_size ({I})")
        k = hi - lo
        with uninitialized_weights():
            super().__init__(C, k, dtype=mlp.gate_proj.weight.data.dtype)
        self.comm = comm
        units = _columns(comm.rank, k)
        self.gate_proj.weight.data[...] = mlp.gate_proj.weight.data[:, units]    # [C, I/N]
        self.up_proj.weight.data[...] = mlp.up_proj.weight.data[:, units]        # [C, I/N]
        self.down_proj.weight.data[...] = mlp.down_proj.weight.data[units]       # [I/N, C]
        self.out_dropout, self.dropout = mlp.dropout, _identity
        self.parts = {"gate_proj.weight": ("gate_proj.weight",
                                           lambda r: (slice(None), _columns(r, k))),
                      "up_proj.weight": ("up_proj.weight",
                                         lambda r: (slice(None), _columns(r, k))),
                      "down_proj.weight": ("down_proj.weight", lambda r: (_columns(r, k),))}

    def forward(self, x):
        y = super().forward(CopyToRanks.apply(x, comm=self.comm))         # partial [B, T, C]
        return self.out_dropout(SumOverRanks.apply(y, comm=self.comm))


def tensor_parallel_llama(model, comm, *, vocab: bool = False):
    """`tensor_parallel` for a Llama: every layer's attention and SwiGLU split over the
    ranks of `comm`, in place; with `vocab`, the token table and head over the
    vocabulary (a `VocabParallelLlama` around the same layers). Returns ``(model, parts)``
    as `tensor_parallel` does; the split parameters keep the whole model's names."""
    parts = split_layers(model.layers, "layers", {
        "self_attn": lambda a: ParallelLlamaAttention(a, model.config, comm),
        "mlp": lambda m: ParallelSwiGLU(m, comm)})
    if not vocab:
        return model, parts
    return split_vocabulary(VocabParallelLlama(model, comm), "embed_tokens", comm, parts)
