"""LoRA over a quantized base (QLoRA-style): the base frozen in int8/4-bit, A and B trained.

Dettmers et al. (2023) train LoRA adapters on a 4-bit base; the base's weight is
dequantized on the fly in forward and backward and never receives a gradient. With W the
dequantized ``[out, in]`` matrix and the rest as in `numpyllm.functional.lora_linear`
(X = x flattened to [N, in], Xd = m ⊙ X, s the adapter's scale):

Forward:
    h = s · Xd A                          [N, in] @ [in, r] -> [N, r]
    y = X Wᵀ + b + h B                    the base tile by tile, plus the adapter

Backward (G = dL/dy [N, out], u = s · G Bᵀ [N, r]):
    dL/dB = hᵀ G                          [r, N] @ [N, out]
    dL/dA = Xdᵀ u                         [in, N] @ [N, r]
    dL/dx = G W + m ⊙ (u Aᵀ)              the base path (dequantized tiles) + the adapter's
    dL/db = Σ_rows G                      only if the bias is not frozen

`apply_lora` builds a `QuantizedLoRALinear` for each targeted `QuantizedLinear` (through
the layer's `lora_adapter`), and marks every other QuantizedLinear of the model as on the
adapter path, so gradients reach adapters in earlier layers through them.

>>> import numpy as np
>>> from numpyllm.nn import GPT, GPTConfig
>>> from numpyllm.nn.lora import apply_lora
>>> from numpyllm.quantize import quantize
>>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=32),
...             rng=np.random.default_rng(0))
>>> model = apply_lora(quantize(model, "q4_0"), r=2, alpha=4, rng=0)
>>> logits, loss = model(np.array([[1, 2, 3]]), targets=np.array([[2, 3, 4]]))
>>> loss.backward()
>>> model.h[0].attn.c_attn.lora_A.grad.shape
(32, 2)
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..functional.lora import adapter_backward
from ..nn.layers import _last_axis
from ..nn.lora import LoRALinear
from ..nn.module import Module
from .linear import QuantizedLinear, matmul_forward, matmul_input_grad, quantized_matmul

__all__ = ["QuantizedLoRALinear", "quantized_lora_linear"]


class QuantizedLoRAMatmul(Function):
    @staticmethod
    def forward(ctx, x, bias, lora_A, lora_B, scale, mask, *, weight, tile, threshold=None):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])                        # [N, in] (a view)
        xd = x2 if mask is None else x2 * mask.reshape(x2.shape)
        y = matmul_forward(x2, weight, tile, threshold)        # [N, out]: the base
        if bias is not None:
            y += bias
        h = xd @ lora_A                                        # [N, r]
        h *= scale
        y += h @ lora_B                                        # [N, r] @ [r, out]
        ctx.save_for_backward(xd, h, lora_A, lora_B)
        ctx.weight, ctx.tile, ctx.lead, ctx.scale = weight, tile, lead, scale
        ctx.mask = None if mask is None else mask.reshape(x2.shape)
        return y.reshape(*lead, weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        xd, h, lora_A, lora_B = ctx.saved
        need_x, need_b, need_A, need_B = ctx.needs_input_grad[:4]
        g2 = g.reshape(-1, g.shape[-1])                        # [N, out]
        ua, gA, gB = adapter_backward(g2, xd, h, lora_A, lora_B, ctx.scale, ctx.mask,
                                      need_x, need_A, need_B)
        gx = None
        if need_x:
            gx = matmul_input_grad(g2, ctx.weight, ctx.tile)   # G W, a tile at a time
            gx += ua
            gx = gx.reshape(*ctx.lead, ctx.weight.shape[1])
        gb = g2.sum(axis=0) if need_b else None
        return gx, gb, gA, gB, None, None


def quantized_lora_linear(x, weight, bias, lora_A, lora_B, scale: float, mask=None, *,
                          tile: int | None = None, threshold: float | None = None) -> Tensor:
    """``x Wᵀ + bias + scale · ((mask ⊙ x) A) B`` for a `QuantizedWeight` ``W [out, in]``,
    one node; A ``[in, r]``, B ``[r, out]`` get gradients, W none."""
    out, n_in = weight.shape
    x_shape = np.shape(x.data if isinstance(x, Tensor) else x)
    a_shape = np.shape(lora_A.data if isinstance(lora_A, Tensor) else lora_A)
    b_shape = np.shape(lora_B.data if isinstance(lora_B, Tensor) else lora_B)
    if not x_shape or x_shape[-1] != n_in:
        raise ValueError(f"quantized_lora_linear: x of shape {x_shape} does not fit a "
                         f"quantized weight [out, in] = {[out, n_in]}")
    if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != n_in \
            or b_shape != (a_shape[1], out):
        raise ValueError(f"quantized_lora_linear: lora_A {a_shape} and lora_B {b_shape} must "
                         f"be [in, r] and [r, out] for a weight [out, in] = {[out, n_in]}")
    if mask is not None and np.shape(mask) != x_shape:
        raise ValueError(f"quantized_lora_linear: mask {np.shape(mask)} must match x {x_shape}")
    return QuantizedLoRAMatmul.apply(x, bias, lora_A, lora_B, float(scale), mask,
                                     weight=weight, tile=tile, threshold=threshold)


class QuantizedLoRALinear(LoRALinear):
    """A `LoRALinear` whose base is a `QuantizedLinear`: same names (``bias``, ``lora_A``,
    ``lora_B``; the quantized weight is no Parameter), same switches (`disable_lora`),
    but no merging (the sum would have to be quantized again: unmerged only)."""

    def __init__(self, base: QuantizedLinear, r: int = 8, alpha: float = 16,
                 dropout: float = 0.0, *, use_rslora: bool = False, rng=None):
        Module.__init__(self)
        if not isinstance(base, QuantizedLinear):
            raise TypeError(f"QuantizedLoRALinear adapts a QuantizedLinear, got "
                            f"{type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.qweight, self.bias, self.tile = base.qweight, base.bias, base.tile
        self.dtype = base.dtype                        # the compute dtype: A and B's
        self.threshold = base.threshold                # LLM.int8()'s, or None
        self.training = base.training
        self._init_adapter(r, alpha, dropout, use_rslora, rng, self.dtype)
        self.adapter_path = True

    @property
    def format(self) -> str:
        return self.qweight.format

    @property
    def weight(self):
        raise AttributeError("a quantized layer has no float weight (its `qweight` holds the "
                             "codes and scales)")

    def base(self) -> QuantizedLinear:
        """The QuantizedLinear underneath (sharing the codes and the bias)."""
        layer = QuantizedLinear(self.qweight, self.bias, tile=self.tile, dtype=self.dtype)
        layer.training, layer.threshold = self.training, self.threshold
        return layer

    def forward(self, x):
        _last_axis(f"QuantizedLoRALinear({self.in_features}, {self.out_features}, r={self.r})",
                   self.in_features, "in_features", x)
        if not self.enabled:
            return _base_node(self, x)
        return quantized_lora_linear(x, self.qweight, self.bias, self.lora_A, self.lora_B,
                                     self.scale, self._mask(x), tile=self.tile,
                                     threshold=self.threshold)

    def infer(self, x: np.ndarray) -> np.ndarray:
        y = matmul_forward(x.reshape(-1, self.in_features), self.qweight, self.tile,
                           self.threshold)
        if self.bias is not None:
            y += self.bias.data
        if self.enabled:
            h = x.reshape(-1, self.in_features) @ self.lora_A.data     # [N, r]
            h *= self.scale
            y += h @ self.lora_B.data
        return y.reshape(*x.shape[:-1], self.out_features)

    def merge(self) -> None:
        raise ValueError("merge_lora: the base weights are quantized; adding the adapter "
                         "would need quantizing again (and lose it to rounding). Keep the "
                         "adapter unmerged, or merge it into the float model's weights")

    def unmerge(self) -> None:
        pass                                              # never merged

    def _mask(self, x) -> np.ndarray | None:
        if not self.training or self.dropout == 0:
            return None
        shape = np.shape(x.data if hasattr(x, "data") else x)
        keep = self.rng.random(shape, dtype=self.dtype) >= self.dropout     # P(keep) = 1 - p
        return np.multiply(keep, self.dtype.type(1.0 / (1.0 - self.dropout)))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, format={self.format}, r={self.r}, "
                f"alpha={self.alpha:g}, scale={self.scale:g}, dropout={self.dropout:g}"
                + ("" if self.enabled else ", disabled"))


def _base_node(layer: QuantizedLoRALinear, x):
    """The base alone (adapter disabled), still passing gradients to x (a reference model)."""
    return quantized_matmul(x, layer.qweight, layer.bias, tile=layer.tile, allow_backward=True,
                            threshold=layer.threshold)
