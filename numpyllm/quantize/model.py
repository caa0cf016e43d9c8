"""`quantize(model, format)`: every projection of a model replaced by a `QuantizedLinear`.

Which layers: every `Linear` of the model (GPT's fused ``attn.c_attn`` [C, 3C] is one,
quantized as one matrix; Llama's q/k/v/o and gate/up/down projections; an encoder's and
a decoder's), except the output head (``lm_head``, a classifier's ``score``/``head``),
which `head=True` quantizes too.

What stays float, and why:
- **token embeddings** (GPT's ``wte``, Llama's ``embed_tokens``) unless
  ``embeddings=True``: a lookup reads one row per token, so there is no matrix product
  to make cheaper, and a tied table is also the output head, whose error reaches the
  logits directly (llama.cpp keeps ``output.weight`` at Q6_K when it writes Q4_0). But for
  GPT-2 small the table is 38.6M of the 124M weights: 157 MB of Q4_0's 196 MB when kept
  float32. ``embeddings=True`` stores it in the same format (`QuantizedEmbedding`: blocks
  of 32 along the embedding dimension, one row per token, as llama.cpp's token_embd); the
  lookup dequantizes only the rows it reads, and a tied head multiplies by the quantized
  table (docs/quantization.md: the memory and the perplexity it costs).
- **position embeddings** (GPT's learned ``wpe``), always: [block_size, C] is 3 MB for
  GPT-2 small (2% of wte), read as a slice; the saving is small and every token pays the
  position table's error.
- **the head** unless `head=True` (untied) or, tied, ``embeddings=True``: the last matrix
  decides the logits directly, and its error is not averaged by later layers.
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
from ..nn.layers import Embedding
from .embedding import TOKEN_TABLES, QuantizedEmbedding
from .linear import QuantizedLinear
from .rounding import check_finite
from .weight import FORMATS, format_module

__all__ = ["quantize", "quantized_layers", "quantized_embeddings", "quantization_record",
           "check_threshold", "token_table_slots", "HEADS"]

HEADS = ("lm_head", "score", "head")          # output heads: kept float unless head=True


def check_threshold(threshold) -> float:
    """LLM.int8()'s outlier threshold: a finite number > 0, or ValueError."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"LLM.int8() threshold must be a finite number > 0, got {threshold!r}")
    return float(threshold)


def _quantized_linear(m) -> bool:
    """A QuantizedLinear, with or without an adapter (QuantizedLoRALinear): not a table."""
    return (isinstance(m, QuantizedLinear) or hasattr(m, "qweight")) \
        and not isinstance(m, QuantizedEmbedding)


def quantized_layers(model: Module) -> list:
    """``(dotted name, layer)`` of every quantized layer (with or without an adapter)."""
    return [(name, m) for name, m in model.named_modules() if _quantized_linear(m)]


def quantized_embeddings(model: Module) -> list:
    """``(dotted name, QuantizedEmbedding)`` of every quantized token table."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QuantizedEmbedding)]


def token_table_slots(model: Module) -> list:
    """``(dotted name, parent, member, table)`` of every token table (a float `Embedding`
    or a `QuantizedEmbedding` held under one of `TOKEN_TABLES`' names), each once."""
    slots, seen = [], set()
    for pname, parent in model.named_modules():
        for member, child in parent._members():
            if member in TOKEN_TABLES and isinstance(child, (Embedding, QuantizedEmbedding)) \
                    and id(child) not in seen:
                seen.add(id(child))
                slots.append((f"{pname}.{member}" if pname else member, parent, member, child))
    return slots


def quantization_record(model: Module) -> dict | None:
    """``{"format": "q8_0", "layers": [dotted names]}`` for a checkpoint's manifest (None:
    the model is not quantized); with quantized token tables, ``"embeddings": [names]``."""
    layers, tables = quantized_layers(model), quantized_embeddings(model)
    if not layers and not tables:
        return None
    formats = sorted({m.qweight.format for _, m in layers + tables})
    thresholds = {m.threshold for _, m in layers}
    if len(formats) != 1 or len(thresholds) != 1:
        raise ValueError(f"a model quantized in several formats ({formats}, LLM.int8() "
                         f"thresholds {sorted(thresholds, key=str)}) cannot be saved")
    record = {"format": formats[0], "layers": [name for name, _ in layers]}
    if tables:
        record["embeddings"] = [name for name, _ in tables]
    threshold = thresholds.pop()
    if threshold is not None:
        record["threshold"] = threshold
    return record


def _slots(model: Module) -> list:
    slots = []
    for pname, parent in model.named_modules():
        for member, child in parent._members():
            if isinstance(child, (Linear, QuantizedLinear)) or _quantized_linear(child):
                slots.append((f"{pname}.{member}" if pname else member, parent, member, child))
    return slots


def quantize(model: Module, format: str, *, head: bool = False, tile: int | None = None,
             only=None, threshold: float | None = None, embeddings: bool = False) -> Module:
    """Replace the model's Linear layers by `QuantizedLinear` layers in `format` ('int8',
    'q8_0' or 'q4_0'), in place; returns `model`. `head=True` also quantizes the output
    head. `only` (a set of dotted names) limits it to those layers (how a checkpoint
    restores exactly the layers it quantized). `threshold` (int8 only): the layers compute
    by LLM.int8() (activations in int8 too, input columns with any |x| >= threshold in
    float; the paper's 6.0); None: weight-only. `embeddings=True` also stores the token
    table (GPT's ``wte``, Llama's ``embed_tokens``) in `format` as a `QuantizedEmbedding`;
    a head tied to it then multiplies by the quantized table. The biases are shared, not copied, and are
    frozen; the remaining float parameters keep their flags, but any backward reaching a
    quantized layer raises `QuantizedBackwardError` until LoRA adapters are applied.

    ValueError for an unknown format, a layer whose input size (or, with `embeddings`, a
    table whose embedding dimension) the format's blocks do not divide (32 for q8_0 and
    q4_0), non-finite weights, a model already quantized or carrying LoRA adapters, a
    model with no token table, and `embeddings` with LLM.int8() (a lookup has no
    activations to quantize: store it int8 without a threshold).
    """
    format_module(format)
    if threshold is not None:
        check_threshold(threshold)
        if format != "int8":
            raise ValueError(f"quantize: LLM.int8() (threshold={threshold}) multiplies int8 "
                             f"weights with one scale per output channel: format 'int8', "
                             f"not {format!r}")
        threshold = float(threshold)
    tables = token_table_slots(model)
    if any(isinstance(t, QuantizedEmbedding) for *_, t in tables):
        raise ValueError("quantize: the model is already quantized")
    if embeddings:
        if threshold is not None:
            raise ValueError("quantize: embeddings=True with an LLM.int8() threshold: the "
                             "table is read by a lookup, not multiplied by activations; "
                             "quantize it with format 'int8' and no threshold")
        if not tables:
            raise ValueError(f"quantize: embeddings=True, but this {type(model).__name__} "
                             f"has no token table (an Embedding named one of {TOKEN_TABLES})")
        block = FORMATS[format].BLOCK
        for name, _, _, table in tables:
            V, C = table.weight.shape
            if C % block:
                raise ValueError(f"quantize: {name} [{V}, {C}]: {format} stores blocks of "
                                 f"{block} along the embedding dimension, and {C} is not a "
                                 f"multiple of {block} (use int8, or keep the table float)")
            check_finite(table.weight.data, f"quantize: {name}.weight")   # before any change
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
    if embeddings:                             # the table, after every check has passed
        for name, parent, member, table in tables:
            _replace(parent, member,
                     QuantizedEmbedding.from_embedding(table, format, name=name, tile=tile))
    return model
