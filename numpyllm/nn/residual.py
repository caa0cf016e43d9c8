"""The residual connection with its layer norm, written once for every transformer layer.

A layer is a sequence of sub-layers (attention, cross-attention, feed-forward), each in
a residual connection with a layer norm, in one of two arrangements:

    post-LN (the original paper):   x = LayerNorm(x + Sublayer(x))
    pre-LN  (GPT-2 and after):      x = x + Sublayer(LayerNorm(x))

Pre-LN keeps an unnormalised "residual stream" that every sub-layer adds to, which trains
deep stacks without warmup tricks; its models end with one more LayerNorm (``ln_f``).
GPT's `Block` and the encoder and decoder layers all inherit `ResidualLayer.residual`.
"""
from __future__ import annotations

from .module import Module

__all__ = ["ResidualLayer"]


class ResidualLayer(Module):
    """A layer made of sub-layers, each in a residual connection with a layer norm.
    Subclasses set ``self.pre_norm`` (True: pre-LN) and call `residual` per sub-layer."""

    pre_norm = False

    def residual(self, x, norm, sublayer):
        """post-LN: ``norm(x + sublayer(x))``; pre-LN: ``x + sublayer(norm(x))``. Any
        dropout on the sub-layer's output lives inside the sub-layer."""
        if self.pre_norm:
            return x + sublayer(norm(x))
        return norm(x + sublayer(x))
