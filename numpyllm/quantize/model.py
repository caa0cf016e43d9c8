"""`quantize(model, format)`: every projection of a model replaced by a `QuantizedLinear`.

Which layers: every `Linear` of the model (GPT's fused ``attn.c_attn`` [C, 3C] is one,
quantized as one matrix; Llama's q/k/v/o and gate/up/down projections; an encoder's and
a decoder's), except the output head (``lm_head``, a classifier's ``score``/``head``),
which `head=True` quantizes too.

What stays float, and why:
- **token and position embeddings** (GPT's ``wte``/``wpe``, Llama's ``embed_tokens``):
  a lookup reads one row per token, so there is no matrix product to make cheaper, and
  a tied embedding is also the output head, which llama.cpp too keeps at higher
  precision than Q4_0 (it uses Q6_K for ``output.weight``). The cost: for GPT-2 small,
  wte is 38.6M of the 124M weights, kept float32 (docs/quantization.md's figures).
- **the head** unless `head=True`: the last matrix decides the logits directly, and its
  error is not averaged by later layers.
- **norms and biases**: one number per channel.

Quantizing twice, or a model carrying LoRA adapters, is refused (quantize the base first,
then `apply_lora`: QLoRA). The model is changed in place and returned; the float weights
of the replaced layers are dropped (the memory is the point).

>>> import numpy as np
>>> from numpyllm.nn import GPT, GPTConfig
>>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=32),
...             rng=np.random.default_rng(0))
>>> model = quantize(model, "q8_0")
>>> [name for name, _ in quantized_layers(model)][:4]
['h.0.attn.c_attn', 'h.0.attn.c_proj', 'h.0.mlp.c_fc', 'h.0.mlp.c_proj']
>>> quantization_record(model)["format"]
'q8_0'
"""
from __future__ import annotations

import math

from ..nn.layers import Linear
from ..nn.lora import LoRALinear, _replace
from ..nn.module import Module
from .linear import QuantizedLinear
from .weight import format_module

__all__ = ["quantize", "quantized_layers", "quantization_record", "check_threshold", "HEADS"]

HEADS = ("lm_head", "score", "head")          # output heads: kept float unless head=True


def check_threshold(threshold) -> float:
    """LLM.int8()'s outlier threshold: a finite number > 0, or ValueError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"LLM.int8() threshold must be a finite number > 0, got {threshold!r}")
    return float(threshold)


def quantized_layers(model: Module) -> list:
    """``(dotted name, layer)`` of every quantized layer (with or without an adapter)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, QuantizedLinear) or hasattr(m, "qweight")]


def quantization_record(model: Module) -> dict | None:
    """``{"format": "q8_0", "layers": [dotted names]}`` for a checkpoint's manifest (None:
    the model is not quantized)."""
    layers = quantized_layers(model)
    if not layers:
        return None
    formats = sorted({m.qweight.format for _, m in layers})
    thresholds = {m.threshold for _, m in layers}
    if len(formats) != 1 or len(thresholds) != 1:
        raise ValueError(f"a model quantized in several formats ({formats}, LLM.int8() "
                         f"thresholds {sorted(thresholds, key=str)}) cannot be saved")
    record = {"format": formats[0], "layers": [name for name, _ in layers]}
    threshold = thresholds.pop()
    if threshold is not None:
        record["threshold"] = threshold
    return record


def _slots(model: Module) -> list:
    slots = []
    for pname, parent in model.named_modules():
        for member, child in parent._members():
            if isinstance(child, (Linear, QuantizedLinear)) or hasattr(child, "qweight"):
                slots.append((f"{pname}.{member}" if pname else member, parent, member, child))
    return slots


def quantize(model: Module, format: str, *, head: bool = False, tile: int | None = None,
             only=None, threshold: float | None = None) -> Module:
    """Replace the model's Linear layers by `QuantizedLinear` layers in `format` ('int8',
    'q8_0' or 'q4_0'), in place; returns `model`. `head=True` also quantizes the output
    head. `only` (a set of dotted names) limits it to those layers (how a checkpoint
    restores exactly the layers it quantized). `threshold` (int8 only): the layers compute
    by LLM.int8() (activations in int8 too, input columns with any |x| >= threshold in
    float; the paper's 6.0); None: weight-only. The biases are shared, not copied, and are
    frozen; the remaining float parameters keep their flags, but any backward reaching a
    quantized layer raises `QuantizedBackwardError` until LoRA adapters are applied.

    ValueError for an unknown format, a layer whose input size the format's blocks do not
    divide (32 for q8_0 and q4_0), non-finite weights, a model already quantized or
    carrying LoRA adapters.
    """
    format_module(format)
    if threshold is not None:
        check_threshold(threshold)
        if format != "int8":
            raise ValueError(f"quantize: LLM.int8() (threshold={threshold}) multiplies int8 "
                             f"weights with one scale per output channel: format 'int8', "
                             f"not {format!r}")
        threshold = float(threshold)
    slots = _slots(model)
    if any(isinstance(m, LoRALinear) for *_, m in slots):
        raise ValueError("quantize: the model carries LoRA adapters; merge them first "
                         "(merge_lora + unload_lora), or quantize the base and then apply_lora")
    if any(not isinstance(m, Linear) for *_, m in slots):
        raise ValueError("quantize: the model is already quantized")
    chosen = [s for s in slots
              if (only is None and (head or s[0].rsplit(".", 1)[-1] not in HEADS))
              or (only is not None and s[0] in only)]
    if only is not None:
        missing = sorted(set(only) - {s[0] for s in chosen})
        if missing:
            raise ValueError(f"quantize: no Linear layer named {missing[:4]} in this "
                             f"{type(model).__name__}")
    done = {}                                  # a Linear shared by two parents: one copy
    for name, parent, member, linear in chosen:
        if id(linear) not in done:
            done[id(linear)] = QuantizedLinear.from_linear(linear, format, name=name, tile=tile)
            done[id(linear)].threshold = threshold
            if linear.bias is not None:
                linear.bias.requires_grad_(False)
        _replace(parent, member, done[id(linear)])
    return model
