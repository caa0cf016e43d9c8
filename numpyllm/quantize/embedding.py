"""`QuantizedEmbedding`: a token table held in int8, Q8_0 or Q4_0, and the tied head
that multiplies by it.

**Layout.** The table ``E [V, C]`` (GPT's ``wte.weight``, Llama's ``embed_tokens.weight``)
is one row per token, as llama.cpp's ``token_embd.weight``: ggml stores that tensor with
``ne = [C, V]`` (ne[0], the fastest axis, is the embedding dimension), so each token's
row is contiguous and its blocks of 32 run along C. That is exactly the layout of a
`QuantizedWeight` ``[out, in]`` with ``out = V`` rows and ``in = C`` columns: the same
codes and scales, byte for byte, as ``to_ggml`` gives for that matrix.

**The lookup** ``E[ids]`` gathers the codes and scales of the rows it reads and
dequantizes only them (``ggml_get_rows`` does the same on a quantized table):

    ids [B, T] -> q[ids], scale[ids] -> dequantize -> [B, T, C]

so a decode step reads one row per token, and no float copy of the table ever exists.
The result is a constant: the table is frozen (not a Parameter) and gets no gradient.

**The tied head** ``logits = x Eᵀ`` is a `quantized_matmul` with the table as its
weight: ``E [V, C]`` is ``[out, in]``, QuantizedLinear's own layout, so the product walks
the vocabulary in tiles of rows (a ~1M-weight scratch tile dequantized at a time). Its
backward gives x the gradient ``G E`` (``[N, V] @ [V, C]``) on the adapter path only
(`numpyllm.nn.lora.apply_lora` sets ``adapter_path``, as for QuantizedLinear), so LoRA
adapters in every layer below still train; otherwise it raises `QuantizedBackwardError`.

>>> import numpy as np
>>> from numpyllm.nn.layers import Embedding
>>> emb = Embedding(10, 32, rng=np.random.default_rng(0))
>>> q = QuantizedEmbedding.from_embedding(emb, "q8_0")
>>> rows = q.lookup(np.array([[3, 3, 7]]))                      # [1, 3] -> [1, 3, 32]
>>> rows.shape, bool((rows[0, 0] == q.qweight.dequantize()[3]).all())
((1, 3, 32), True)
>>> q.tied_logits_array(rows).shape                             # x Eᵀ: [1, 3, 10]
(1, 3, 10)
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from ..functional.embedding import _index_array
from ..nn.module import Module
from .linear import matmul_forward, quantized_matmul
from .weight import QuantizedWeight

__all__ = ["QuantizedEmbedding", "TOKEN_TABLES"]

# The attribute names of a token table (GPT-2's and Hugging Face Llama's): the only
# tables `quantize(..., embeddings=True)` quantizes, and the only ones a checkpoint's
# record may name. GPT's position table ``wpe`` stays float (docs/quantization.md says why).
TOKEN_TABLES = ("wte", "embed_tokens")


class QuantizedEmbedding(Module):
    """A frozen token table ``[num_embeddings, embedding_dim]`` held as a
    `QuantizedWeight` (``qweight``). ``forward(ids)`` / ``lookup(ids)``: the rows,
    dequantized, ``[...] -> [..., embedding_dim]``; ``tied_logits(x)``: ``x Eᵀ`` as one
    graph node (the tied LM head, `numpyllm.nn.heads.output_logits`)."""

    def __init__(self, qweight: QuantizedWeight, *, tile: int | None = None,
                 dtype=np.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = qweight.shape
        self.qweight, self.tile = qweight, tile
        self.dtype = np.dtype(dtype)            # what the lookup returns: the model's dtype
        self.adapter_path = False               # True once apply_lora added adapters

    @classmethod
    def from_embedding(cls, embedding, fmt: str, *, name: str = "embedding",
                       tile: int | None = None) -> "QuantizedEmbedding":
        """Quantize an `numpyllm.nn.Embedding`'s table (rows = tokens, blocks of 32 along
        the embedding dimension)."""
        w = embedding.weight.data                                   # [V, C]
        qw = QuantizedWeight.from_float(w, fmt, what=f"{name}.weight")
        layer = cls(qw, tile=tile, dtype=w.dtype)
        layer.training = embedding.training
        return layer

    @property
    def format(self) -> str:
        return self.qweight.format

    @property
    def weight(self):
        raise AttributeError("a quantized embedding has no float table (its `qweight` holds "
                             "the codes and scales; `lookup` dequantizes the rows it reads)")

    def lookup(self, ids) -> np.ndarray:
        """``ids [...]`` (integers in [0, V)) -> ``[..., C]`` in the model's dtype: only
        the rows read are dequantized. IndexError for an id out of range, TypeError for
        non-integer ids (as `numpyllm.functional.embedding`)."""
        ids = _index_array(ids, "QuantizedEmbedding", "ids")
        V = self.num_embeddings
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise IndexError(f"QuantizedEmbedding: id {bad} is out of range for a vocabulary "
                             f"of V={V} rows (ids must be in [0, {V}))")
        rows = self.qweight.take(ids.reshape(-1))                   # [N, C] float32
        return rows.astype(self.dtype, copy=False).reshape(*ids.shape, self.embedding_dim)

    def forward(self, ids) -> Tensor:
        return Tensor(self.lookup(ids))          # a constant: the table gets no gradient

    def tied_logits(self, x) -> Tensor:
        """``x [..., C] -> [..., V]``: ``x Eᵀ`` with E read a tile of rows at a time."""
        return quantized_matmul(x, self.qweight, None, tile=self.tile,
                                allow_backward=self.adapter_path)

    def tied_logits_array(self, x: np.ndarray) -> np.ndarray:
        """`tied_logits` on arrays (the KV-cache decode path): ``[..., C] -> [..., V]``."""
        y = matmul_forward(x.reshape(-1, self.embedding_dim), self.qweight, self.tile)
        return y.reshape(*x.shape[:-1], self.num_embeddings)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, format={self.format}, "
                f"{self.qweight.nbytes:,} bytes")
