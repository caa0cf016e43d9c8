"""LoRA adapters in PEFT's file layout: `save_adapter`, `load_adapter`.

PEFT (Hugging Face's parameter-efficient fine-tuning library) saves an adapter alone,
next to nothing of the base model, as a directory of two files:

    adapter_config.json          {"peft_type": "LORA", "r": 8, "lora_alpha": 16,
                                  "target_modules": ["c_attn"], "use_rslora": false, ...}
    adapter_model.safetensors    base_model.model.<module>.lora_A.weight   [r, in]
                                 base_model.model.<module>.lora_B.weight   [out, r]

where ``<module>`` is the adapted module's name in the Hugging Face model
(``transformer.h.0.attn.c_attn`` in ``GPT2LMHeadModel``,
``model.layers.0.self_attn.q_proj`` in ``LlamaForCausalLM``). numpyllm reads and writes
that layout, so PEFT's ``PeftModel.from_pretrained(hf_model, directory)`` applies a
numpyllm adapter to the same Hugging Face model, and `load_adapter` the reverse.

**Names.** The module names come from the architecture table that `load_pretrained` uses
(`numpyllm.hub.architectures`): each `TensorMap` row ``<hf module>.weight <->
<our module>.weight`` names one Linear both ways; no second table.

**Layouts.** PEFT stores ``lora_A.weight`` as ``[r, in]`` and ``lora_B.weight`` as
``[out, r]`` (nn.Linear's layout) for every layer, even for GPT-2's ``Conv1D`` layers,
which hold their weight ``[in, out]`` and are adapted with ``fan_in_fan_out=True`` (PEFT
transposes the product, not the factors). numpyllm's ``A [in, r]`` and ``B [r, out]`` are
therefore written transposed, whatever the base weight's layout. What a layout can change
is the *order of the output features*: GPT-NeoX's fused q/k/v rows are interleaved per
head and its q/k halves permuted for rotate-half RoPE. That order is read off the
weight's own `Transform`: an index matrix ``M[i, o] = i·out + o`` pushed through
``to_hf`` says, for each Hugging Face output row, which of our output columns it holds,
and B's columns are permuted the same way.

Loading checks everything before it writes: the JSON strictly (`read_json_file`), each
field's type and value (``r`` a positive integer, ``lora_alpha`` a positive number, no
DoRA, no trained biases, no per-layer ranks), every tensor's name, dtype, shape (against
the model) and finiteness. Any problem is one `PretrainedError` (a ValueError) naming the
file and the field.
"""
from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..nn.layers import Linear
from ..nn.lora import LoRALinear, apply_lora, lora_layers, lora_scale
from ..validation import DTYPES, as_generator
from .architectures import for_model
from .errors import NotExpressible, PretrainedError
from .hfconfig import read_json_file
from .safetensors import load_file, save_file

__all__ = ["save_adapter", "load_adapter", "read_adapter_config", "AdapterConfig",
           "ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "PEFT_PREFIX"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."          # PEFT's wrapper around the Hugging Face model
_KEY = re.compile(r"base_model\.model\.(.+)\.lora_([AB])\.weight")


@dataclass(frozen=True)
class AdapterConfig:
    """The fields of an adapter_config.json that numpyllm uses."""

    r: int
    lora_alpha: float
    lora_dropout: float = 0.0
    use_rslora: bool = False
    target_modules: object = ()          # a list of names, or one regex string (PEFT's rules)
    fan_in_fan_out: bool = False


# --------------------------------------------------------------------------- names
@dataclass(frozen=True)
class _Slot:
    ours: str              # our module name (h.0.attn.c_attn)
    hf: str                # the Hugging Face module name (transformer.h.0.attn.c_attn)
    perm: np.ndarray | None  # HF output row j holds our output column perm[j] (None: same)
    fan_in_fan_out: bool   # the HF weight is stored [in, out] (GPT-2's Conv1D)


def _output_order(transform, n_in: int, n_out: int, hf_shape: tuple, where: str) -> tuple:
    """``(perm or None, fan_in_fan_out)``: how `transform` orders a weight's output
    features in the Hugging Face layout (module doc), or NotExpressible when the input
    features are moved too (then a low-rank A could not be written as PEFT's)."""
    index = np.arange(n_in * n_out, dtype=np.int64).reshape(n_in, n_out)   # M[i, o] = i·out + o
    theirs = np.asarray(transform.to_hf(index))
    if theirs.shape != hf_shape or theirs.ndim != 2:
        raise NotExpressible(f"{where}: its Hugging Face weight is not a matrix of shape "
                             f"{hf_shape}")
    rows, cols = theirs // n_out, theirs % n_out
    if theirs.shape == (n_out, n_in) and (rows == np.arange(n_in)).all() \
            and (cols == cols[:, :1]).all():                  # [out, in]: an nn.Linear
        perm, fan_in_fan_out = cols[:, 0], False
    elif theirs.shape == (n_in, n_out) and (rows == np.arange(n_in)[:, None]).all() \
            and (cols == cols[:1]).all():                     # [in, out]: GPT-2's Conv1D
        perm, fan_in_fan_out = cols[0], True
    else:
        raise NotExpressible(f"{where}: its Hugging Face layout reorders the input features; "
                             "a LoRA adapter on it has no PEFT form")
    return (None if (perm == np.arange(n_out)).all() else perm), fan_in_fan_out


def _slots(model, wanted=None) -> tuple:
    """``(architecture name, {our module name: _Slot})`` for the Linear layers of `model`
    that a Hugging Face tensor fills whole (only those in `wanted`, when given)."""
    arch, _ = for_model(model)
    modules = dict(model.named_modules())
    slots, orders = {}, {}               # orders: one index matrix per transform and shape
    for row in arch.tensors(model.config):
        if not row.ours.endswith(".weight") or not row.hf.endswith(".weight") or row.index:
            continue
        ours = row.ours[:-len(".weight")]
        layer = modules.get(ours)
        if not isinstance(layer, Linear) or (wanted is not None and ours not in wanted):
            continue
        key = (row.transform, layer.in_features, layer.out_features, tuple(row.shape))
        if key not in orders:
            orders[key] = _output_order(*key, f"{arch.name} {row.hf}")
        perm, fifo = orders[key]
        slots[ours] = _Slot(ours, row.hf[:-len(".weight")], perm, fifo)
    return arch.name, slots


def _target_modules(hf_names: list, adapted: set) -> list:
    """PEFT's ``target_modules`` for exactly the modules `adapted`: their short names
    (``c_attn``) when those match nothing else among `hf_names`, else the full names."""
    short = sorted({name.rsplit(".", 1)[-1] for name in adapted})
    hit = {n for n in hf_names if any(n == s or n.endswith("." + s) for s in short)}
    return short if hit == adapted else sorted(adapted)


def _peft_matches(name: str, targets) -> bool:
    """PEFT's rule: a string is a regex that must match the whole name; a list matches a
    name equal to an item or ending in ``"." + item``."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


# --------------------------------------------------------------------------- save
def save_adapter(model, directory, *, base_model_name_or_path: str | None = None,
                 dtype: str | None = None) -> Path:
    """Write `model`'s LoRA adapters to `directory` in PEFT's layout (module doc); returns
    the directory. `dtype` ("float32"/"float64") defaults to the model's.

    Every adapter must share r, alpha, dropout and rsLoRA (one adapter_config.json), and
    the model must have a Hugging Face form (`numpyllm.hub.save_pretrained`'s table).
    """
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"save_adapter: dtype must be one of {DTYPES}, got {dtype!r}")
    layers = lora_layers(model)
    if not layers:
        raise ValueError(f"save_adapter: this {type(model).__name__} has no LoRA layers "
                         "(apply_lora first)")
    settings = {(l.r, l.alpha, l.dropout, l.use_rslora) for _, l in layers}
    if len(settings) > 1:
        raise NotExpressible(f"save_adapter: the adapters differ in (r, alpha, dropout, "
                             f"use_rslora): {sorted(settings)}; PEFT's file has one setting")
    r, alpha, dropout, use_rslora = settings.pop()
    arch_name, slots = _slots(model)
    missing = [name for name, _ in layers if name not in slots]
    if missing:
        raise NotExpressible(f"save_adapter: {', '.join(missing[:4])} has no module in "
                             f"{arch_name}")
    tensors = {}
    for name, layer in layers:
        slot = slots[name]
        a = layer.lora_A.data.T                                   # [r, in]
        b = layer.lora_B.data.T                                   # [out, r]
        if slot.perm is not None:
            b = b[slot.perm]
        key = PEFT_PREFIX + slot.hf
        dt = np.dtype(dtype) if dtype is not None else layer.lora_A.data.dtype
        tensors[key + ".lora_A.weight"] = np.ascontiguousarray(a, dtype=dt)
        tensors[key + ".lora_B.weight"] = np.ascontiguousarray(b, dtype=dt)
    adapted = {slots[name].hf for name, _ in layers}
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path, "revision": None,
        "r": r, "lora_alpha": int(alpha) if float(alpha).is_integer() else alpha,
        "lora_dropout": dropout, "use_rslora": use_rslora,
        "target_modules": _target_modules([s.hf for s in slots.values()], adapted),
        "fan_in_fan_out": any(slots[name].fan_in_fan_out for name, _ in layers),
        "bias": "none", "init_lora_weights": True, "inference_mode": True,
        "modules_to_save": None, "layers_to_transform": None, "layers_pattern": None,
        "rank_pattern": {}, "alpha_pattern": {}, "use_dora": False, "lora_bias": False,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, directory / ADAPTER_WEIGHTS, metadata={"format": "pt"})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory


# --------------------------------------------------------------------------- load
def _field(config: dict, key: str, where, check, default=None, required=False):
    if key not in config:
        if required:
            raise PretrainedError(f"{where}: {key}: missing (a LoRA adapter needs it)")
        return default
    value = config[key]
    problem = check(value)
    if problem:
        raise PretrainedError(f"{where}: {key}: {problem}, got {value!r}"[:300])
    return value


def _is_positive_int(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        return "expected a positive integer"


def _is_positive_number(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
        return "expected a finite number > 0"


def _is_fraction(v):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1:
        return "expected a number in [0, 1)"


def _is_bool(v):
    if not isinstance(v, bool):
        return "expected true or false"


def _is_targets(v):
    if isinstance(v, str):
        try:
            re.compile(v)
        except re.error as exc:
            return f"not a regular expression ({exc})"
        return None
    if not isinstance(v, list) or not v or not all(isinstance(t, str) and t for t in v):
        return "expected a non-empty list of module names or one regex string"


def _is_empty(v):
    if v not in (None, {}, []):
        return "numpyllm's adapters are one setting for every layer, with nothing else trained"


def read_adapter_config(path) -> AdapterConfig:
    """The `AdapterConfig` of an adapter_config.json, each field checked (module doc)."""
    where = Path(path)
    raw = read_json_file(where, "a PEFT adapter's config")
    if not isinstance(raw, dict):
        raise PretrainedError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("peft_type") != "LORA":
        raise PretrainedError(f"{where}: peft_type: numpyllm reads LoRA adapters (\"LORA\"), "
                              f"got {raw.get('peft_type')!r}"[:300])
    bias = _field(raw, "bias", where, lambda v: None if v == "none" else
                  "numpyllm trains no biases in an adapter (expected \"none\")")
    del bias
    for key in ("use_dora", "lora_bias"):
        _field(raw, key, where, lambda v: None if v is False or v is None else
               "not supported by numpyllm (expected false)")
    for key in ("rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform",
                "layers_pattern", "exclude_modules", "target_parameters",
                "trainable_token_indices", "layer_replication"):
        _field(raw, key, where, _is_empty)
    return AdapterConfig(
        r=_field(raw, "r", where, _is_positive_int, required=True),
        lora_alpha=float(_field(raw, "lora_alpha", where, _is_positive_number, 8)),
        lora_dropout=float(_field(raw, "lora_dropout", where, _is_fraction, 0.0)),
        use_rslora=_field(raw, "use_rslora", where, _is_bool, False),
        target_modules=_field(raw, "target_modules", where, _is_targets, required=True),
        fan_in_fan_out=_field(raw, "fan_in_fan_out", where, _is_bool, False))


def load_adapter(model, directory, *, rng=None):
    """Apply the PEFT LoRA adapter in `directory` to `model` (in place) and return it.

    A model without LoRA layers gets them (`apply_lora` on exactly the file's modules,
    the rest frozen); a model that has them must have them on the same modules with the
    same rank, and takes the file's alpha, dropout and rsLoRA. `rng` draws the dropout
    masks when the adapter's dropout is not zero. Every check is made before anything
    is written; each failure is a `PretrainedError` naming the file and the field.
    """
    directory = Path(directory)
    config = read_adapter_config(directory / ADAPTER_CONFIG)
    where = directory / ADAPTER_WEIGHTS
    tensors = load_file(where)
    arch_name, slots = _slots(model)
    by_hf = {slot.hf: slot for slot in slots.values()}
    found, problems = {}, []
    for key, array in tensors.items():
        m = _KEY.fullmatch(key)
        if m is None or m.group(1) not in by_hf:
            problems.append(f"{key}: not a LoRA tensor of a {arch_name} Linear module "
                            f"(expected {PEFT_PREFIX}<module>.lora_A.weight / .lora_B.weight)")
            continue
        found.setdefault(m.group(1), {})[m.group(2)] = array
    r = config.r
    modules = dict(model.named_modules())
    for hf, pair in sorted(found.items()):
        if set(pair) != {"A", "B"}:
            problems.append(f"{PEFT_PREFIX}{hf}: lora_{'B' if 'A' in pair else 'A'}.weight "
                            "is missing")
            continue
        layer = modules[by_hf[hf].ours]
        for letter, shape in (("A", (r, layer.in_features)), ("B", (layer.out_features, r))):
            array = pair[letter]
            name = f"{PEFT_PREFIX}{hf}.lora_{letter}.weight"
            if array.dtype.kind != "f":
                problems.append(f"{name}: dtype {array.dtype} is not floating-point")
            elif array.shape != shape:
                problems.append(f"{name}: expected shape {shape} (r = {r}), got {array.shape}")
            elif not np.isfinite(array).all():
                problems.append(f"{name}: holds NaN or infinite values")
    if not found and not problems:
        problems.append("holds no LoRA tensors")
    targeted = {hf for hf in by_hf if _peft_matches(hf, config.target_modules)}
    if found and set(found) != targeted:
        extra, absent = sorted(set(found) - targeted), sorted(targeted - set(found))
        problems.append(f"the tensors' modules do not match {ADAPTER_CONFIG}'s target_modules "
                        f"{config.target_modules!r}: " + "; ".join(
                            p for p in (extra and f"not targeted: {extra[:4]}",
                                        absent and f"targeted but absent: {absent[:4]}") if p))
    if problems:
        raise PretrainedError(f"{where}: " + "; ".join(problems[:8])
                              + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""))

    wanted = {by_hf[hf].ours for hf in found}
    existing = dict(lora_layers(model))
    if existing:
        if set(existing) != wanted or any(l.r != r for l in existing.values()):
            raise PretrainedError(f"{where}: the model's LoRA layers (rank "
                                  f"{sorted({l.r for l in existing.values()})}) are not the "
                                  f"file's (rank {r} on {len(wanted)} modules); unload_lora "
                                  "first, or load into the base model")
        if any(l.merged for l in existing.values()):
            raise PretrainedError(f"{where}: the model's adapters are merged; unmerge_lora "
                                  "first")
    else:
        apply_lora(model, r=r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                   targets=[re.compile(re.escape(name)) for name in sorted(wanted)],
                   use_rslora=config.use_rslora, rng=rng)
    layers = dict(lora_layers(model))
    for hf, pair in found.items():
        slot = by_hf[hf]
        layer: LoRALinear = layers[slot.ours]
        b = pair["B"]                                              # [out, r], HF order
        if slot.perm is not None:
            ordered = np.empty_like(b)
            ordered[slot.perm] = b
            b = ordered
        layer.lora_A.data = np.array(pair["A"].T, dtype=layer.weight.dtype)    # [in, r]
        layer.lora_B.data = np.array(b.T, dtype=layer.weight.dtype)            # [r, out]
        layer.alpha, layer.use_rslora = config.lora_alpha, config.use_rslora
        layer.dropout = config.lora_dropout
        layer.scale = lora_scale(r, layer.alpha, layer.use_rslora)
        if layer.dropout > 0 and not hasattr(layer, "rng"):
            layer.rng = as_generator(rng)
    return model
