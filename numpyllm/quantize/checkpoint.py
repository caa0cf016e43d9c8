"""Quantized models in checkpoints: the codes and scales as tensors of their own.

A quantized layer ``h.0.attn.c_attn`` is stored in ``model.safetensors`` as two tensors
beside the float ones (its bias, the norms, the embeddings):

    h.0.attn.c_attn.weight.q        I8 [out, in] (int8, q8_0) or U8 [out, in/2] (q4_0)
    h.0.attn.c_attn.weight.scale    F32 [out] (int8) or F16 [out, in/32] (q8_0, q4_0)

and the manifest's model record says which layers and which format:

    "quantization": {"format": "q4_0", "layers": ["h.0.attn.c_attn", ...]}

A quantized token table (``quantize(..., embeddings=True)``) is stored the same way, its
rows being tokens: ``wte.weight.q`` (``[V, C]`` int8, or ``[V, C/2]`` uint8 for q4_0) and
``wte.weight.scale`` (``[V]`` or ``[V, C/32]``), and named in the record's
``"embeddings": ["wte"]`` (only a token table, `TOKEN_TABLES`, may be named: the record is
not trusted). A tied head needs nothing more: it is the table.

(and ``"threshold": 6.0`` for int8 layers that compute by LLM.int8()).

`numpyllm.training.checkpoint` calls `quantized_tensors` when it saves and
`restore_quantized` when it builds the model: the float model is built from its config,
the named Linear layers are replaced by QuantizedLinear shells, and each is filled from
its two tensors after every property has been checked (format, layer names, dtypes, the
shapes the config implies, finite scales); anything else is a ValueError naming the
tensor. The float tensors then load as usual (strictly: no tensor may be left over).
"""
from __future__ import annotations

import numpy as np

from ..nn.layers import Embedding, Linear
from ..nn.lora import _replace
from ..nn.module import Module
from .linear import QuantizedLinear
from .embedding import TOKEN_TABLES, QuantizedEmbedding
from .model import _slots, check_threshold, quantized_embeddings, quantized_layers, \
    token_table_slots
from .weight import FORMATS, QuantizedWeight

__all__ = ["quantized_tensors", "check_record", "float_shapes", "restore_quantized"]


def quantized_tensors(model: Module) -> dict:
    """``{"<layer>.weight.q": codes, "<layer>.weight.scale": scales}`` of every quantized
    layer (the arrays themselves: the writer copies them to disk)."""
    out = {}
    for name, layer in quantized_layers(model) + quantized_embeddings(model):
        out[f"{name}.weight.q"] = layer.qweight.q
        out[f"{name}.weight.scale"] = layer.qweight.scale
    return out


def check_record(record) -> dict:
    """The manifest's ``model.quantization``, checked: ValueError saying what is wrong."""
    if not isinstance(record, dict) or not {"format", "layers"} <= set(record) \
            or not set(record) <= {"format", "layers", "threshold", "embeddings"}:
        raise ValueError("model.quantization: expected {'format': name, 'layers': [names]} "
                         "(and an LLM.int8() 'threshold', quantized token tables' "
                         f"'embeddings'), got {str(record)[:60]}")
    if not isinstance(record["format"], str) or record["format"] not in FORMATS:
        raise ValueError(f"model.quantization.format: expected one of {sorted(FORMATS)}, got "
                         f"{str(record['format'])[:40]!r}")
    layers = record["layers"]
    if (not isinstance(layers, list) or not layers
            or not all(isinstance(n, str) and n for n in layers) or len(set(layers)) != len(layers)):
        raise ValueError("model.quantization.layers: expected a non-empty list of distinct "
                         "layer names")
    if "embeddings" in record:
        tables = record["embeddings"]
        if (not isinstance(tables, list) or not tables or len(set(map(str, tables))) != len(tables)
                or not all(isinstance(n, str) and n.rsplit(".", 1)[-1] in TOKEN_TABLES
                           for n in tables)):
            raise ValueError("model.quantization.embeddings: expected a non-empty list of "
                             f"distinct token tables (named {' or '.join(TOKEN_TABLES)}), "
                             f"got {str(tables)[:60]}")
        if set(tables) & set(layers):
            raise ValueError("model.quantization: a name is both a layer and an embedding")
        if "threshold" in record:
            raise ValueError("model.quantization: an LLM.int8() threshold with quantized "
                             "embeddings (a lookup has no activations to quantize)")
    if "threshold" in record:
        try:
            check_threshold(record["threshold"])
        except ValueError as exc:
            raise ValueError(f"model.quantization.threshold: {exc}") from None
        if record["format"] != "int8":
            raise ValueError("model.quantization.threshold: LLM.int8() needs format 'int8', "
                             f"got {record['format']!r}")
    return record


def _float_shape(fmt: str, q) -> tuple | None:
    """The float ``weight [in, out]`` that stored codes stand for (None: not a matrix)."""
    if not isinstance(q, np.ndarray) or q.ndim != 2:
        return None
    out, cols = q.shape
    return (2 * cols if fmt == "q4_0" else cols, out)


def float_shapes(record: dict, weights: dict) -> dict:
    """`weights` with each quantized layer's ``.weight`` stood in for by a zero-cost array
    of the float shape ``[in, out]`` its codes imply (what the config's size checks
    read); the codes and scales themselves left out."""
    view = dict(weights)
    for name in record["layers"]:
        q = view.pop(f"{name}.weight.q", None)
        view.pop(f"{name}.weight.scale", None)
        shape = _float_shape(record["format"], q)
        if shape is not None:
            view[f"{name}.weight"] = np.broadcast_to(np.float32(0), shape)
    for name in record.get("embeddings", ()):   # a table is [V, C] as stored: no transpose
        q = view.pop(f"{name}.weight.q", None)
        view.pop(f"{name}.weight.scale", None)
        shape = _float_shape(record["format"], q)
        if shape is not None:
            view[f"{name}.weight"] = np.broadcast_to(np.float32(0), shape[::-1])
    return view


def _take_codes(rest: dict, name: str, fmt: str, shape: tuple, file: str,
                what: str) -> QuantizedWeight:
    """The QuantizedWeight of `name` from its two tensors (``.weight.q`` and
    ``.weight.scale``, taken out of `rest`), checked against `shape`; a quantized layer or
    embedding stores no float ``.weight`` beside them."""
    q, scale = rest.pop(f"{name}.weight.q", None), rest.pop(f"{name}.weight.scale", None)
    if q is None or scale is None:
        raise ValueError(f"{file}: {name}.weight.q and .weight.scale: expected both "
                         f"tensors of a quantized {what}, got "
                         f"{'neither' if q is None and scale is None else 'only one'}")
    if f"{name}.weight" in rest:
        raise ValueError(f"{file}: {name}.weight: a quantized {what} stores no float "
                         f"{'weight' if what == 'layer' else 'table'}")
    return QuantizedWeight.from_arrays(fmt, shape, q, scale, what=f"{file}: {name}.weight")


def restore_quantized(model: Module, record: dict, weights: dict, *,
                      file: str = "model.safetensors") -> dict:
    """Replace the Linear layers `record` names by QuantizedLinear layers filled from
    `weights`; returns the float tensors left to load (a new dict)."""
    fmt = record["format"]
    slots = {name: (parent, member, layer) for name, parent, member, layer in _slots(model)}
    rest = dict(weights)
    for name in record["layers"]:
        if name not in slots or not isinstance(slots[name][2], Linear):
            raise ValueError(f"model.quantization.layers: {name[:60]!r} is not a Linear "
                             f"layer of this {type(model).__name__}")
        parent, member, linear = slots[name]
        qw = _take_codes(rest, name, fmt, (linear.out_features, linear.in_features), file,
                         "layer")
        layer = QuantizedLinear(qw, linear.bias, dtype=linear.weight.dtype)
        layer.training, layer.threshold = linear.training, record.get("threshold")
        if linear.bias is not None:
            linear.bias.requires_grad_(False)
        _replace(parent, member, layer)
    tables = {name: (parent, member, t) for name, parent, member, t in token_table_slots(model)}
    for name in record.get("embeddings", ()):
        if name not in tables or not isinstance(tables[name][2], Embedding):
            raise ValueError(f"model.quantization.embeddings: {name[:60]!r} is not a token "
                             f"table of this {type(model).__name__}")
        parent, member, table = tables[name]
        qw = _take_codes(rest, name, fmt, (table.num_embeddings, table.embedding_dim), file,
                         "embedding")
        layer = QuantizedEmbedding(qw, dtype=table.weight.dtype)
        layer.training = table.training
        _replace(parent, member, layer)
    return rest
