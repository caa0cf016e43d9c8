"""LoRA: low-rank adapters on a model's `Linear` layers (`apply_lora`, `merge_lora` ...).

A `LoRALinear` keeps the frozen ``weight [in, out]`` and ``bias`` of the `Linear` it
replaces (the very same Parameter objects, under the same names) and adds two trainable
matrices ``lora_A [in, r]`` and ``lora_B [r, out]``:

    y = x W + b + s · dropout(x) A B          s = alpha / r   (alpha / sqrt(r): rsLoRA)

A is drawn as PEFT draws it (kaiming-uniform with a = sqrt(5) on PEFT's ``[r, in]``
layout: U(-1/sqrt(in), 1/sqrt(in))) and B starts at zero, so the adapted model computes
exactly what the base model computes until the first update. The forward pass and its
backward are one fused node, `numpyllm.functional.lora_linear`.

    >>> import numpy as np
    >>> from numpyllm.nn import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8),
    ...             rng=np.random.default_rng(0))
    >>> model = apply_lora(model, r=2, alpha=4, targets=["attn.c_attn"], rng=0)
    >>> model.parameter_summary()
    'trainable parameters: 128 of 2,040 (6.27%), 1,912 frozen'
    >>> sorted(lora_state_dict(model))[:2]
    ['h.0.attn.c_attn.lora_A', 'h.0.attn.c_attn.lora_B']

Targets are dotted module names (``h.0.attn.c_attn``), matched as PEFT matches
``target_modules``: a pattern matches a name equal to it or ending in ``"." + pattern``;
a string with shell wildcards (``h.[01].*``) is matched with `fnmatch`; a compiled
``re.Pattern`` must match the whole name. GPT-2's fused q/k/v projection ``c_attn``
([C, 3C]) is one Linear, and one adapter (the same matrix PEFT adapts for GPT-2's
``c_attn``).
"""
from __future__ import annotations

import math
import numbers
import re
from fnmatch import fnmatchcase

import numpy as np

from .. import functional as F
from ..validation import as_generator, check_fraction, positive_int
from .layers import Linear, _last_axis
from .module import Module, ModuleList, Parameter

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "unmerge_lora", "disable_lora",
           "enable_lora", "lora_layers", "lora_state_dict", "load_lora_state_dict",
           "unload_lora", "lora_record", "restore_lora", "default_targets", "GPT_TARGETS",
           "LLAMA_TARGETS"]

GPT_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _alpha(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"LoRA alpha must be a finite number > 0, got {value!r}")
    return float(value)


def lora_scale(r: int, alpha: float, use_rslora: bool = False) -> float:
    """The adapter's scale: alpha / r, or alpha / sqrt(r) with rank-stabilised LoRA
    (Kalajdzievski, 2023), whose updates keep their size as r grows."""
    return alpha / math.sqrt(r) if use_rslora else alpha / r


class LoRALinear(Linear):
    """A `Linear` with a low-rank adapter; built from an existing `base` Linear, whose
    ``weight`` and ``bias`` Parameters it shares (it does not copy or freeze them:
    `apply_lora` freezes the base).

    ``merged``: the adapter's product has been added into ``weight`` (`merge`); the
    forward pass is then the plain linear one and A, B receive no gradient.
    ``enabled``: False computes the base layer alone (`disable_lora`).
    """

    def __init__(self, base: Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0, *,
                 use_rslora: bool = False, rng=None):
        Module.__init__(self)
        if not isinstance(base, Linear) or isinstance(base, LoRALinear):
            raise TypeError(f"LoRALinear adapts a plain Linear, got {type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.training = base.training
        self._init_adapter(r, alpha, dropout, use_rslora, rng, self.weight.dtype)

    def _init_adapter(self, r, alpha, dropout, use_rslora, rng, dtype) -> None:
        """The adapter's settings, A (PEFT's init) and B (zeros), whatever the base."""
        self.r = positive_int("LoRA r", r)
        self.alpha = _alpha(alpha)
        self.dropout = check_fraction("LoRA", "dropout", dropout)
        self.use_rslora = bool(use_rslora)
        self.scale = lora_scale(self.r, self.alpha, self.use_rslora)
        rng = as_generator(rng)
        if self.dropout > 0:
            self.rng = rng                   # the dropout masks' generator
        bound = 1.0 / math.sqrt(self.in_features)     # kaiming_uniform_(a=sqrt(5)) on [r, in]
        self.lora_A = Parameter(rng.uniform(-bound, bound, (self.r, self.in_features)).T,
                                dtype=dtype)                             # [in, r]
        self.lora_B = Parameter(np.zeros((self.r, self.out_features)), dtype=dtype)  # [r, out]
        self.merged = False
        self.enabled = True

    def _mask(self, x) -> np.ndarray | None:
        if not self.training or self.dropout == 0:
            return None
        shape = np.shape(x.data if hasattr(x, "data") else x)
        dtype = self.weight.dtype
        keep = self.rng.random(shape, dtype=dtype) >= self.dropout     # P(keep) = 1 - p
        return np.multiply(keep, dtype.type(1.0 / (1.0 - self.dropout)))

    def forward(self, x):
        _last_axis(f"LoRALinear({self.in_features}, {self.out_features}, r={self.r})",
                   self.in_features, "in_features", x)
        if self.merged or not self.enabled:
            return F.linear(x, self.weight, self.bias)
        return F.lora_linear(x, self.weight, self.bias, self.lora_A, self.lora_B, self.scale,
                             self._mask(x))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """`forward` on an array, for inference (no graph, no dropout)."""
        y = Linear.infer(self, x)
        if self.merged or not self.enabled:
            return y
        h = x.reshape(-1, self.in_features) @ self.lora_A.data          # [N, r]
        h *= self.scale
        return y + (h @ self.lora_B.data).reshape(y.shape)

    def delta(self) -> np.ndarray:
        """The adapter as a change of ``weight``: ``scale * A @ B``, [in, out]."""
        return (self.lora_A.data @ self.lora_B.data) * self.weight.dtype.type(self.scale)

    def merge(self) -> None:
        """``weight += scale * A B`` (in place); a merged layer is left as it is."""
        if not self.merged:
            self._add_to_weight(self.delta(), +1)
            self.merged = True

    def unmerge(self) -> None:
        """``weight -= scale * A B``: undo `merge` (to rounding: see `merge_lora`)."""
        if self.merged:
            self._add_to_weight(self.delta(), -1)
            self.merged = False

    def _add_to_weight(self, delta: np.ndarray, sign: int) -> None:
        w = self.weight
        if not w.data.flags.writeable:           # a read-only memory map: take a copy
            w.data = np.array(w.data, copy=True)
        if sign > 0:
            w.data += delta
        else:
            w.data -= delta

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, r={self.r}, alpha={self.alpha:g}, "
                f"scale={self.scale:g}, dropout={self.dropout:g}"
                + (", merged" if self.merged else "") + ("" if self.enabled else ", disabled"))


# --------------------------------------------------------------------------- targets
def default_targets(model: Module) -> tuple:
    """The module-name patterns adapted when `apply_lora` is given no targets: every
    projection of the attention and the MLP, as PEFT's defaults for GPT-2 and LLaMA
    (a model holding a GPT or a Llama, such as a classifier, gets its backbone's)."""
    from .gpt import GPT
    from .llama import Llama
    for _, m in model.named_modules():
        if isinstance(m, Llama):
            return LLAMA_TARGETS
        if isinstance(m, GPT):
            return GPT_TARGETS
    raise ValueError(f"apply_lora: no default targets for a {type(model).__name__}; pass "
                     "targets=[...] (module-name patterns such as 'attn.c_attn')")


def _matches(name: str, pattern) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.fullmatch(name) is not None
    return name == pattern or name.endswith("." + pattern) or fnmatchcase(name, pattern)


def _adaptable(child) -> bool:
    """A Linear, or a layer that says how to adapt it: one with a ``lora_adapter(r,
    alpha, dropout, use_rslora=, rng=)`` method returning its LoRALinear (a quantized
    layer: `numpyllm.quantize.QuantizedLinear`)."""
    return isinstance(child, Linear) or callable(getattr(child, "lora_adapter", None))


def _linear_slots(model: Module) -> list:
    """``(dotted name, parent, member name, Linear)`` for every Linear under `model`
    (LoRA layers and adaptable quantized layers included), each slot once."""
    slots = []
    for pname, parent in model.named_modules():
        for member, child in parent._members():
            if _adaptable(child):
                slots.append((f"{pname}.{member}" if pname else member, parent, member, child))
    return slots


def _replace(parent: Module, member: str, new: Module) -> None:
    if isinstance(parent, ModuleList):
        parent[int(member)] = new
    elif "." in member:                           # an item of a plain list attribute
        attr, index = member.rsplit(".", 1)
        items = getattr(parent, attr)
        if isinstance(items, tuple):
            raise TypeError(f"cannot replace {member}: {type(parent).__name__}.{attr} is a "
                            "tuple; use a list or a ModuleList")
        items[int(index)] = new
    else:
        setattr(parent, member, new)


def apply_lora(model: Module, r: int = 8, alpha: float = 16, dropout: float = 0.0,
               targets=None, *, use_rslora: bool = False, rng=None) -> Module:
    """Put a LoRA adapter on every `Linear` of `model` whose dotted name matches one of
    `targets`, in place, and freeze everything else; returns `model`.

    `targets`: module-name patterns (module doc); None takes `default_targets`. Each
    pattern must match at least one Linear, else ValueError (a typo must not train
    nothing). `rng` (a Generator or a seed) draws the A matrices, in the order of
    `named_modules`, and the dropout masks when ``dropout > 0``.

    After it, only the ``lora_A``/``lora_B`` Parameters require grad: optimizers built
    from ``model.parameters()`` update the adapters alone and hold no state for the base.
    """
    r = positive_int("LoRA r", r)
    alpha = _alpha(alpha)
    check_fraction("LoRA", "dropout", dropout)
    if targets is None:
        targets = default_targets(model)
    elif isinstance(targets, (str, re.Pattern)):
        targets = [targets]
    targets = list(targets)
    if not targets:
        raise ValueError("apply_lora: targets is empty")
    for t in targets:
        if not isinstance(t, (str, re.Pattern)):
            raise TypeError(f"apply_lora: a target is a module-name pattern (str or "
                            f"re.Pattern), got {t!r}")
    rng = as_generator(rng)
    slots = _linear_slots(model)
    hits = {id(t): [] for t in targets}
    chosen = []
    for name, parent, member, linear in slots:
        matched = [t for t in targets if _matches(name, t)]
        for t in matched:
            hits[id(t)].append(name)
        if matched:
            chosen.append((name, parent, member, linear))
    unmatched = [t for t in targets if not hits[id(t)]]
    if unmatched:
        names = [n for n, *_ in slots]
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        raise ValueError(f"apply_lora: target(s) {[getattr(t, 'pattern', t) for t in unmatched]}"
                         f" match no Linear of this {type(model).__name__} (its Linear layers: "
                         f"{shown or 'none'})")
    again = [n for n, _, _, lin in chosen if isinstance(lin, LoRALinear)]
    if again:
        raise ValueError(f"apply_lora: {', '.join(again[:4])} already carry LoRA adapters "
                         "(unload_lora first, or choose other targets)")
    model.requires_grad_(False)
    wrapped = {}                                   # a Linear shared by two parents: one adapter
    for name, parent, member, linear in chosen:
        if id(linear) not in wrapped:
            adapt = getattr(linear, "lora_adapter", None)
            wrapped[id(linear)] = (
                adapt(r, alpha, dropout, use_rslora=use_rslora, rng=rng) if callable(adapt)
                else LoRALinear(linear, r, alpha, dropout, use_rslora=use_rslora, rng=rng))
        _replace(parent, member, wrapped[id(linear)])
    # Quantized layers pass gradients to their inputs only on the adapter path (QLoRA):
    # now that adapters exist, let the gradient reach those in earlier layers.
    for _, m in model.named_modules():
        if hasattr(m, "adapter_path"):
            m.adapter_path = True
    return model


# --------------------------------------------------------------------------- whole models
def lora_layers(model: Module) -> list:
    """``(dotted name, LoRALinear)`` for every adapted layer, in walk order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def _layers(model: Module, what: str) -> list:
    layers = lora_layers(model)
    if not layers:
        raise ValueError(f"{what}: this {type(model).__name__} has no LoRA layers "
                         "(apply_lora first)")
    return layers


def merge_lora(model: Module) -> Module:
    """Add each adapter into its base weight (``W += s · A B``), so the model runs at the
    base model's cost; returns `model`. Layers already merged are left alone.

    Merging is exact in exact arithmetic; in floating point ``W + s A B`` is rounded, so
    merged and unmerged outputs agree to rounding (to ~1e-15 relative in float64, ~1e-7 in
    float32) and `unmerge_lora` restores W to within an ulp or so, not bit for bit.
    While merged, A and B get no gradient: merge for inference, unmerge to train on.
    """
    for _, layer in _layers(model, "merge_lora"):
        layer.merge()
    return model


def unmerge_lora(model: Module) -> Module:
    """Subtract each merged adapter from its base weight (``W -= s · A B``); returns
    `model`. See `merge_lora` on rounding."""
    for _, layer in _layers(model, "unmerge_lora"):
        layer.unmerge()
    return model


class _Switch:
    """Sets every LoRA layer's ``enabled`` flag at once; as a context manager, puts the
    previous flags back on exit."""

    def __init__(self, model: Module, enabled: bool, what: str):
        self.layers = [layer for _, layer in _layers(model, what)]
        merged = [name for name, layer in lora_layers(model) if layer.merged]
        if merged:
            raise ValueError(f"{what}: {', '.join(merged[:4])} are merged into their base "
                             "weights; unmerge_lora first")
        self.before = [layer.enabled for layer in self.layers]
        for layer in self.layers:
            layer.enabled = enabled

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for layer, was in zip(self.layers, self.before):
            layer.enabled = was
        return False


def disable_lora(model: Module) -> _Switch:
    """Turn every adapter off: the model computes the base model's outputs (a reference
    model for DPO without a second copy of the weights). Lasts until `enable_lora`, or,
    used as ``with disable_lora(model): ...``, until the block ends."""
    return _Switch(model, False, "disable_lora")


def enable_lora(model: Module) -> _Switch:
    """Turn every adapter back on (also usable as a ``with`` block)."""
    return _Switch(model, True, "enable_lora")


def lora_state_dict(model: Module) -> dict:
    """``{name: array copy}`` of the adapters alone (``h.0.attn.c_attn.lora_A`` ...)."""
    state = {}
    for name, layer in _layers(model, "lora_state_dict"):
        state[f"{name}.lora_A"] = layer.lora_A.data.copy()
        state[f"{name}.lora_B"] = layer.lora_B.data.copy()
    return state


def load_lora_state_dict(model: Module, state) -> None:
    """Copy adapters (as `lora_state_dict` names them) into `model`'s LoRA layers. Every
    adapter must be there with its shape, and nothing else; checked before any write."""
    own = {}
    for name, layer in _layers(model, "load_lora_state_dict"):
        own[f"{name}.lora_A"], own[f"{name}.lora_B"] = layer.lora_A, layer.lora_B
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [f"{k}: expected shape {own[k].shape}, got {np.shape(state[k])}"
           for k in own if k in state and np.shape(state[k]) != own[k].shape]
    if missing or unexpected or bad:
        raise ValueError("load_lora_state_dict: " + "; ".join(
            part for part in (missing and f"missing {missing}",
                              unexpected and f"unexpected {unexpected}",
                              bad and "mismatched " + "; ".join(bad)) if part))
    for k, p in own.items():
        p.data = np.array(state[k], dtype=p.dtype, copy=True)


def unload_lora(model: Module, merge: bool = True) -> Module:
    """Put plain `Linear` layers back in place of the LoRA layers (merging the adapters
    into the weights first, unless ``merge=False``, which drops them); returns `model`.
    What is left is the base architecture, which `numpyllm.hub.save_pretrained` can write
    (PEFT's ``merge_and_unload``). The base weights stay frozen: ``requires_grad_(True)``
    to train them."""
    _layers(model, "unload_lora")
    plain = {}                                    # one Linear per LoRA layer, even if shared
    for _, parent, member, layer in _linear_slots(model):
        if not isinstance(layer, LoRALinear):
            continue
        if id(layer) not in plain and callable(getattr(layer, "base", None)):
            if merge:                             # a quantized base: refuses, saying why
                layer.merge()
            plain[id(layer)] = layer.base()       # the QuantizedLinear underneath
        if id(layer) not in plain:
            if merge:
                layer.merge()
            elif layer.merged:
                layer.unmerge()
            linear = Linear.__new__(Linear)
            Module.__init__(linear)
            linear.in_features, linear.out_features = layer.in_features, layer.out_features
            linear.weight, linear.bias = layer.weight, layer.bias
            linear.training = layer.training
            plain[id(layer)] = linear
        _replace(parent, member, plain[id(layer)])
    for _, m in model.named_modules():            # no adapters left: quantized layers
        if hasattr(m, "adapter_path"):            # refuse backward again
            m.adapter_path = False
    return model


# --------------------------------------------------------------------------- checkpoints
def lora_record(model: Module) -> list | None:
    """The adapters' settings as JSON, for a checkpoint (None: no LoRA layer): one group per
    distinct ``(r, alpha, dropout, use_rslora, merged)``, each with the dotted names of the
    layers it adapted (names, not the patterns given: the record says what *was* adapted).

        [{"r": 8, "alpha": 16.0, "dropout": 0.0, "use_rslora": false, "merged": false,
          "targets": ["h.0.attn.c_attn", "h.1.attn.c_attn"]}]

    `restore_lora` puts the same adapters on a freshly built base model."""
    groups: dict = {}
    for name, layer in lora_layers(model):
        key = (layer.r, layer.alpha, layer.dropout, layer.use_rslora, layer.merged)
        groups.setdefault(key, []).append(name)
    if not groups:
        return None
    return [{"r": r, "alpha": alpha, "dropout": dropout, "use_rslora": rslora,
             "merged": merged, "targets": names}
            for (r, alpha, dropout, rslora, merged), names in groups.items()]


def restore_lora(model: Module, record: list, *, rng=None) -> Module:
    """Put back on `model` (the base, as its config builds it) the adapters `record`
    describes (`lora_record`); returns `model`. Each target is matched as the exact dotted
    name; a merged group is only marked merged (its base weights, loaded next, already hold
    the adapter). The adapters' values are the checkpoint's to load; `rng` draws the
    placeholders and is the dropout masks' generator."""
    rng = as_generator(rng)
    for group in record:
        exact = [re.compile(re.escape(name)) for name in group["targets"]]
        apply_lora(model, group["r"], group["alpha"], group["dropout"], exact,
                   use_rslora=group["use_rslora"], rng=rng)
        if group["merged"]:
            wanted = set(group["targets"])
            for name, layer in lora_layers(model):
                if name in wanted:
                    layer.merged = True
    return model
