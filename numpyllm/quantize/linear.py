"""`QuantizedLinear`: ``y = x Wᵀ_q + b`` with W kept compact and dequantized tile by tile.

The layer replaces a `numpyllm.nn.Linear` (``weight [in, out]``) by a `QuantizedWeight`
in ggml's layout ``[out, in]`` and keeps the bias in float. Its product walks the output
channels in tiles of `tile` rows:

    for each tile of rows lo..hi of W_q  [out, in]:
        W_t = dequantize(rows lo..hi)            [t, in]  float32, a scratch tile
        y[:, lo:hi] = x W_tᵀ                     [N, in] @ [in, t]   (BLAS)

so the float copy alive at any time is one tile (``tile × in`` floats), not the matrix.

**What the product costs.** NumPy has no int8 (or 4-bit) matrix product that runs at
BLAS speed: integer ``matmul`` is a plain loop, many times slower than float32 GEMM. So
the arithmetic is float32 GEMM, exactly the float model's, *plus* the dequantization of
every weight on every call: ``in × out`` conversions and multiplies (and, for Q4_0, the
nibble unpacking), memory-bound elementwise work. For a batch of many tokens (N large)
the GEMM's ``2 N in out`` flops dominate and the extra is small; for decoding one token
(N = 1) the GEMV itself is ``2 in out`` flops, and dequantization costs about as much as
the product again or more. Quantization here saves memory (file and resident), not
time; llama.cpp gains speed from kernels that multiply the int8/4-bit blocks directly.

**Gradients.** The weights are not Parameters and get no gradient. The node passes a
gradient to its input (``dL/dx = G W``, dequantized tile by tile again) only on the
adapter path: `numpyllm.nn.lora.apply_lora` on a quantized model sets
``adapter_path`` on every QuantizedLinear, so LoRA adapters in earlier layers receive
their gradient through the frozen quantized ones (QLoRA). Otherwise backward raises
`QuantizedBackwardError` rather than quietly training only the norms and embeddings.

>>> import numpy as np
>>> from numpyllm.nn import Linear
>>> lin = Linear(64, 8, rng=np.random.default_rng(0))
>>> q = QuantizedLinear.from_linear(lin, "q8_0")
>>> x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
>>> bool(np.abs(q.infer(x) - lin.infer(x)).max() < 0.01)      # outputs are ~0.3
True
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..nn.layers import Linear, _last_axis
from ..nn.module import Module, Parameter
from .weight import QuantizedWeight

__all__ = ["QuantizedLinear", "QuantizedBackwardError", "quantized_matmul", "TILE_ELEMENTS"]

# The scratch tile holds about this many floats (4 MB in float32): large enough for BLAS
# to run at full speed on each tile, small enough to stay in cache-sized pieces.
TILE_ELEMENTS = 1 << 20

REFUSED = ("backward through a quantized model: its weights are int8/4-bit codes, not "
           "Parameters, and get no gradient. Train LoRA adapters over the quantized base "
           "(numpyllm.nn.lora.apply_lora(model, ...): QLoRA), or train the float model")


class QuantizedBackwardError(RuntimeError, ValueError):
    """Backward reached a quantized layer outside the adapter path. (A ValueError too: a
    request that cannot be done, which the command line reports in one line.)"""


def _tile(weight: QuantizedWeight, tile: int | None) -> int:
    return tile or max(1, TILE_ELEMENTS // weight.shape[1])


def matmul_forward(x2: np.ndarray, weight: QuantizedWeight, tile: int | None = None,
                   threshold: float | None = None) -> np.ndarray:
    """``x2 [N, in] @ Wᵀ`` -> ``[N, out]`` in x2's dtype, W dequantized a tile at a time;
    with a `threshold` (int8 weights only), LLM.int8()'s product instead
    (`numpyllm.quantize.llm_int8`: int8 activations, outlier columns in float)."""
    if threshold is not None:
        from .llm_int8 import llm_int8_matmul
        return llm_int8_matmul(x2, weight, threshold=threshold).astype(x2.dtype, copy=False)
    out, n_in = weight.shape
    y = np.empty((x2.shape[0], out), dtype=x2.dtype)
    step = _tile(weight, tile)
    for lo in range(0, out, step):
        w = weight.rows(lo, lo + step)                          # [t, in] float32 scratch
        np.matmul(x2, w.T.astype(x2.dtype, copy=False), out=y[:, lo:lo + step])
    return y


def matmul_input_grad(g2: np.ndarray, weight: QuantizedWeight,
                      tile: int | None = None) -> np.ndarray:
    """``g2 [N, out] @ W`` -> ``[N, in]``: the input's gradient, a tile at a time."""
    out, n_in = weight.shape
    gx = np.zeros((g2.shape[0], n_in), dtype=g2.dtype)
    step = _tile(weight, tile)
    for lo in range(0, out, step):
        w = weight.rows(lo, lo + step)                          # [t, in]
        gx += g2[:, lo:lo + step] @ w.astype(g2.dtype, copy=False)
    return gx


class QuantizedMatmul(Function):
    # y = x Wᵀ + b with W [out, in] held quantized (a constant of the node, not an input)
    #   dL/dx = G W       [N, out] @ [out, in], on the adapter path only (with LLM.int8()
    #                     in the forward too: W dequantized, as bitsandbytes' backward)
    #   dL/db = Σ_rows G  (a bias that is not frozen)
    @staticmethod
    def forward(ctx, x, bias, *, weight, tile, allow_backward, threshold=None):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])                          # [..., in] -> [N, in]
        y = matmul_forward(x2, weight, tile, threshold)          # [N, out]
        if bias is not None:
            y += bias
        ctx.weight, ctx.tile, ctx.lead = weight, tile, lead
        ctx.allow_backward = allow_backward
        return y.reshape(*lead, weight.shape[0])

    @staticmethod
    def backward(ctx, g):
        if not ctx.allow_backward:
            raise QuantizedBackwardError(REFUSED)
        need_x, need_b = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])                          # [N, out]
        gx = None
        if need_x:
            gx = matmul_input_grad(g2, ctx.weight, ctx.tile).reshape(*ctx.lead,
                                                                      ctx.weight.shape[1])
        return gx, (g2.sum(axis=0) if need_b else None)


def quantized_matmul(x, weight: QuantizedWeight, bias=None, *, tile: int | None = None,
                     allow_backward: bool = True, threshold: float | None = None) -> Tensor:
    """``x [..., in] -> [..., out]``: ``x Wᵀ + bias`` for a quantized ``W [out, in]``, one
    node whose backward gives x (and the bias) a gradient, or raises
    `QuantizedBackwardError` when ``allow_backward`` is False."""
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if not shape or shape[-1] != weight.shape[1]:
        raise ValueError(f"quantized_matmul: x of shape {shape} does not fit a quantized "
                         f"weight [out, in] = {list(weight.shape)}")
    return QuantizedMatmul.apply(x, bias, weight=weight, tile=tile,
                                 allow_backward=allow_backward, threshold=threshold)


class QuantizedLinear(Module):
    """A `Linear` whose weight is a `QuantizedWeight` (format ``int8``, ``q8_0`` or
    ``q4_0``); the bias stays a float Parameter (frozen by `numpyllm.quantize.quantize`).

    ``forward(x)`` builds a graph node (see the module doc on gradients); ``infer(x)``
    works on arrays. `tile` (rows of W per scratch tile) defaults to ~1M weights.
    ``threshold`` (int8 only; None: weight-only) computes the product by LLM.int8()
    (`numpyllm.quantize.llm_int8_matmul`), activations in int8 too.
    """

    def __init__(self, weight: QuantizedWeight, bias: Parameter | None = None, *,
                 tile: int | None = None, dtype=np.float32):
        super().__init__()
        self.dtype = np.dtype(dtype)             # the compute dtype (the float model's)
        self.out_features, self.in_features = weight.shape
        self.qweight = weight                    # not a Parameter: the walk skips it
        self.bias = bias
        self.tile = tile
        self.adapter_path = False                # set by apply_lora: let gradients through
        self.threshold = None                    # LLM.int8()'s outlier threshold, or None

    @classmethod
    def from_linear(cls, linear: Linear, fmt: str, *, name: str = "Linear",
                    tile: int | None = None) -> "QuantizedLinear":
        """Quantize a Linear's ``weight [in, out]`` (transposed to ``[out, in]``); the
        bias Parameter is shared, not copied."""
        qw = QuantizedWeight.from_float(linear.weight.data.T, fmt, what=f"{name}.weight")
        layer = cls(qw, linear.bias, tile=tile, dtype=linear.weight.dtype)
        layer.training = linear.training
        return layer

    @property
    def format(self) -> str:
        return self.qweight.format

    def lora_adapter(self, r, alpha, dropout, *, use_rslora=False, rng=None):
        """The LoRA layer that adapts this one (`numpyllm.nn.lora.apply_lora` calls it)."""
        from .qlora import QuantizedLoRALinear
        return QuantizedLoRALinear(self, r, alpha, dropout, use_rslora=use_rslora, rng=rng)

    def forward(self, x):
        _last_axis(f"QuantizedLinear({self.in_features}, {self.out_features}, {self.format})",
                   self.in_features, "in_features", x)
        return quantized_matmul(x, self.qweight, self.bias, tile=self.tile,
                                allow_backward=self.adapter_path, threshold=self.threshold)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """`forward` on an array (no graph): ``[..., in] -> [..., out]``."""
        y = matmul_forward(x.reshape(-1, self.in_features), self.qweight, self.tile,
                           self.threshold)
        if self.bias is not None:
            y += self.bias.data
        return y.reshape(*x.shape[:-1], self.out_features)

    def dequantized(self) -> Linear:
        """A plain float32 `Linear` holding the dequantized weight (and a copy of the bias)."""
        lin = Linear.__new__(Linear)
        Module.__init__(lin)
        lin.in_features, lin.out_features = self.in_features, self.out_features
        lin.weight = Parameter(self.qweight.dequantize().T, dtype=self.dtype)
        lin.bias = None if self.bias is None else Parameter(self.bias.data)
        return lin

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, format={self.format}, "
                f"{self.qweight.nbytes:,} bytes"
                + ("" if self.threshold is None else f", LLM.int8() threshold {self.threshold:g}"))
