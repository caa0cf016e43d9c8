"""Output heads: from hidden states ``[..., C]`` to scores.

- `output_logits`: the language-model head, either tied to the token embedding
  (``x @ Eᵀ``: the embedding matrix read backwards, no new parameter; Press & Wolf 2017,
  GPT-2, the Transformer paper's shared weights) or a Linear layer of its own.
- `MLMHead`: BERT's masked-language-model head: a dense layer, GELU and LayerNorm
  ("transform"), then the tied embedding and a bias per token.
- `pool`: one vector per sequence from its hidden states (first, last real, or mean
  over real tokens), for sequence classification (`numpyllm.nn.classifier`).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from .layers import GELU, LayerNorm, Linear
from .module import Module, Parameter

__all__ = ["output_logits", "next_token_loss", "MLMHead", "pool", "POOLINGS"]


def output_logits(x: Tensor, embedding, head=None) -> Tensor:
    """``[..., C] -> [..., V]``: ``x @ embedding.weightᵀ`` when `head` is None (tied; a
    quantized table's own ``tied_logits(x)``), else ``head(x)``."""
    if head is None:
        tied = getattr(embedding, "tied_logits", None)     # a quantized table multiplies
        if tied is not None:                               # itself, a tile of rows at a time
            return tied(x)                                 # (numpyllm.quantize.embedding)
        return x @ embedding.weight.T                      # [..., C] @ [C, V]
    return head(x)


def next_token_loss(logits: Tensor, targets, owner: str):
    """A decoder's loss: the mean cross-entropy of `logits` ``[B, T, V]`` against
    `targets` ``[B, T]`` (or ``[T]``; ``-100`` ignored), or None without targets. A
    targets shape other than the input's is a one-line error naming `owner`."""
    if targets is None:
        return None
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if targets.ndim == 1:
        targets = targets[None, :]
    if targets.shape != logits.shape[:2]:
        raise ValueError(f"{owner}: targets have shape {targets.shape}, the input has "
                         f"{tuple(logits.shape[:2])}")
    return F.cross_entropy(logits, targets)


class MLMHead(Module):
    """BERT's masked-LM head over a tied embedding ``E [V, C]``:

        h = LayerNorm(gelu(x W + b))        "transform": dense [C, C], GELU, LayerNorm
        logits = h Eᵀ + bias                the embedding read backwards, a bias [V]

    Parameters (Hugging Face's ``cls.predictions.*``): ``dense.weight``, ``dense.bias``,
    ``ln.weight``, ``ln.bias``, ``bias``. The embedding is the model's, passed per call.
    """

    def __init__(self, d_model: int, vocab_size: int, *, eps: float = 1e-12, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.dense = Linear(d_model, d_model, rng=rng, dtype=dtype)
        self.act = GELU("none")                            # BERT's exact (erf) GELU
        self.ln = LayerNorm(d_model, eps, dtype=dtype)
        self.bias = Parameter(np.zeros(vocab_size), dtype=dtype)

    def forward(self, x: Tensor, embedding) -> Tensor:
        h = self.ln(self.act(self.dense(x)))               # [..., C]
        return h @ embedding.weight.T + self.bias          # [..., V]


POOLINGS = ("first", "last", "mean")


def pool(h: Tensor, valid, how: str) -> Tensor:
    """One vector per sequence: ``h [B, T, C] -> [B, C]``.

    `valid` is bool ``[B, T]`` (True at real tokens; right padding) or None (all real).
    - ``"first"``: position 0 (BERT's [CLS]);
    - ``"last"``: the last real token (a causal decoder: the only position that has seen
      the whole sequence), wherever the padding is;
    - ``"mean"``: the mean over real tokens.
    """
    B, T = h.shape[:2]
    if how == "first":
        return h[:, 0]                                     # [B, C]
    if valid is None:
        valid = np.ones((B, T), dtype=bool)
    lengths = valid.sum(axis=1)                            # [B]
    if (lengths == 0).any():
        raise ValueError("pool: a sequence has no real token")
    if how == "last":
        last = T - 1 - np.argmax(valid[:, ::-1], axis=1)   # [B]: the last True of each row
        return h[np.arange(B), last]                       # [B, C]
    if how == "mean":
        weights = valid / lengths[:, None]                 # [B, T], rows sum to 1
        return (h * Tensor(weights[:, :, None].astype(h.dtype))).sum(axis=1)
    raise ValueError(f"pool: how must be one of {POOLINGS}, got {how!r}")
