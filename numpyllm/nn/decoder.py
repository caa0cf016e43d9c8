"""The decoder of the encoder-decoder: causal self-attention, cross-attention over the
encoder's output, feed-forward; and the decoder stack, with its cached form for
generating one token at a time.

**Cross-attention**: the queries come from the decoder, the keys and values from the
encoder's output (the paper, §3.2.3; one of the study notes has this backwards). The
source padding mask hides padded source positions from every decoder layer's
cross-attention, so what sits there changes nothing.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor
from .attention import MultiHeadAttention
from .layers import MLP, Embedding, LayerNorm
from .residual import ResidualLayer
from .stack import Stack, sublayer_options

__all__ = ["DecoderLayer", "Decoder"]


class DecoderLayer(ResidualLayer):
    """Causal self-attention, cross-attention over the encoder output, feed-forward.

    ``forward(x [B, T, C], memory [B, S, C], memory_mask=None [B, S], tgt_mask=None
    [B, T])`` -> ``[B, T, C]``; the masks are bool, True at real tokens. Parameters:
    ``self_attn`` (c_attn, c_proj), ``ln_1``, ``cross_attn`` (q_proj, kv_proj, c_proj),
    ``ln_2``, ``mlp`` (c_fc, c_proj), ``ln_3``.
    """

    def __init__(self, cfg, *, n_layers: int = 1, rng=None, dtype=np.float32):
        super().__init__()
        self.pre_norm = cfg.norm == "pre"
        kw = sublayer_options(cfg, 3 * n_layers, rng, dtype)
        eps = cfg.layer_norm_eps
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, causal=True, **kw)
        self.ln_1 = LayerNorm(cfg.d_model, eps, dtype=dtype)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.n_head, cross=True, **kw)
        self.ln_2 = LayerNorm(cfg.d_model, eps, dtype=dtype)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, activation=cfg.activation, **kw)
        self.ln_3 = LayerNorm(cfg.d_model, eps, dtype=dtype)

    def cross_attend(self, h: Tensor, memory: Tensor, memory_mask=None, cache=None) -> Tensor:
        """Queries from the decoder state `h`, keys and values from the encoder output
        `memory`. The only place the decoder reads `memory`: the keys and values
        (``cross_attn.kv_proj(memory)``) depend on the source alone, so with a `cache`
        (a `LayerKVCache`) they are computed on the first call and reused after."""
        return self.cross_attn(h, context=memory, key_padding_mask=memory_mask, cache=cache)

    def forward(self, x: Tensor, memory: Tensor, memory_mask=None, tgt_mask=None) -> Tensor:
        x = self.residual(x, self.ln_1,
                          lambda h: self.self_attn(h, key_padding_mask=tgt_mask))
        x = self.residual(x, self.ln_2, lambda h: self.cross_attend(h, memory, memory_mask))
        return self.residual(x, self.ln_3, self.mlp)

    def forward_cached(self, x: Tensor, memory: Tensor, memory_mask, cache,
                       cross_cache) -> Tensor:
        """`forward` for the new target tokens `x` only: self-attention reads and extends
        `cache`, cross-attention reuses `cross_cache` (both `LayerKVCache`)."""
        x = self.residual(x, self.ln_1, lambda h: self.self_attn(h, cache=cache))
        x = self.residual(x, self.ln_2,
                          lambda h: self.cross_attend(h, memory, memory_mask, cross_cache))
        return self.residual(x, self.ln_3, self.mlp)


class Decoder(Stack):
    """The decoder stack: ``forward(tgt [B, T] checked ids, memory [B, S, C],
    memory_mask=None [B, S], tgt_mask=None [B, T])`` -> ``[B, T, C]`` (before the output
    projection). Position t sees target positions <= t and every real source position."""

    def __init__(self, cfg, embed: Embedding, n_layers: int, *, rng=None, dtype=np.float32):
        super().__init__(cfg, embed, DecoderLayer, n_layers, rng=rng, dtype=dtype)

    def forward(self, tgt: np.ndarray, memory: Tensor, memory_mask=None,
                tgt_mask=None) -> Tensor:
        x = self.embed_tokens(tgt)
        for layer in self.layers:
            x = layer(x, memory, memory_mask, tgt_mask)
        return self.finish(x)

    def forward_cached(self, tgt: np.ndarray, memory: Tensor, memory_mask, cache) -> Tensor:
        """`forward` for the new target tokens `tgt` ``[B, T]``, which follow the
        ``cache.length`` tokens whose keys and values `cache` (a `KVCache` with cross
        caches) holds; `cache` is extended."""
        offset = cache.length
        cache.step(*tgt.shape)
        x = self.embed_tokens(tgt, offset)
        for layer, self_cache, cross_cache in zip(self.layers, cache.layers, cache.cross):
            x = layer.forward_cached(x, memory, memory_mask, self_cache, cross_cache)
        return self.finish(x)
