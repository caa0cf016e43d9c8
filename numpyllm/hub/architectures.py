"""The table of Hugging Face architectures numpyllm reads and writes, and what each one is.

An `Architecture` is everything `numpyllm.hub.pretrained` needs to know about one
Hugging Face model class (``GPT2LMHeadModel``, ``LlamaForCausalLM`` ...), and nothing
about files:

- its **config**: config.json -> (numpyllm model class, numpyllm config), refusing what
  numpyllm cannot express (`config_from_hf`), and back (`config_to_hf`);
- its **tensors**: for a given numpyllm config, the list of `TensorMap` rows, one per
  Hugging Face tensor: its name, its shape (from the config alone, so shapes are checked
  before a model is allocated), the numpyllm parameter it fills (or a slice of it, for a
  fused weight), and the `Transform` between the two layouts;
- the few facts about its files: the prefix a base model's save lacks, the head names
  outside that prefix, the stored tensors that are not weights, the names that may hold
  a copy of another tensor (a tied head saved twice).

Each architecture lives in its own module of this package (`numpyllm.hub.gpt2`) that
defines ``ARCHITECTURES = (Architecture(...), ...)``; `MODULES` lists those modules.
Adding a model family is writing one such module and adding its name to `MODULES`.

The layouts differ in one systematic way: a PyTorch ``nn.Linear`` stores its weight
``[out, in]`` (it computes ``x @ W.T``), while numpyllm's `Linear` stores ``[in, out]``
(``x @ W``). GPT-2 is the exception that needs no transpose: its projections are
``Conv1D`` modules, which store ``[in, out]`` like numpyllm. So a GPT-2 tensor maps with
`COPY`, an untied ``lm_head`` (an nn.Linear) with `TRANSPOSE`.

>>> [a.name for a in architectures().values()]
['GPT2LMHeadModel', 'LlamaForCausalLM', 'Qwen2ForCausalLM', 'MistralForCausalLM', 'GPTNeoXForCausalLM']
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import NotExpressible, PretrainedError

__all__ = ["Architecture", "TensorMap", "Transform", "COPY", "TRANSPOSE", "MODULES",
           "architectures", "for_config", "for_model"]

# The modules of numpyllm.hub that define ARCHITECTURES: a fixed table, so a name read
# from a config.json is only ever looked up here, never imported.
MODULES = ("gpt2", "llama", "gpt_neox")


@dataclass(frozen=True)
class Transform:
    """How a Hugging Face tensor's layout becomes numpyllm's, and back.

    `to_ours(hf_array)` and `to_hf(our_array)` are inverse functions. With ``view=True``
    `to_hf` returns a *view* of its argument (a transpose, a reshape), so a loader writes
    the Hugging Face tensor straight into ``to_hf(parameter)``, converting as it goes,
    with no temporary copy; otherwise (a permutation of rows, say) the loader reads the
    tensor into a temporary array and stores ``to_ours(temporary)``.
    """

    name: str
    to_ours: Callable[[np.ndarray], np.ndarray]
    to_hf: Callable[[np.ndarray], np.ndarray]
    view: bool = True

    def __repr__(self) -> str:
        return self.name


COPY = Transform("COPY", lambda a: a, lambda a: a)
TRANSPOSE = Transform("TRANSPOSE", lambda a: a.T, lambda a: a.T)   # nn.Linear [out, in]


@dataclass(frozen=True)
class TensorMap:
    """One Hugging Face tensor and where it goes in a numpyllm model.

    ``hf``: its full name in the file (``transformer.h.0.attn.c_attn.weight``);
    ``ours``: the numpyllm parameter (``h.0.attn.c_attn.weight``);
    ``shape``: the Hugging Face tensor's shape, computed from the config;
    ``transform``: ``to_ours(hf tensor)`` has the shape of ``parameter[index]``;
    ``index``: the region of the parameter this tensor fills (``np.s_[:, 0:C]`` for the
    query third of a fused q/k/v weight), ``()`` for all of it. The regions of the rows
    that name one parameter must cover it exactly once.
    """

    hf: str
    ours: str
    shape: tuple
    transform: Transform = COPY
    index: tuple = ()


def _no_aliases(config) -> dict:
    return {}


@dataclass(frozen=True)
class Architecture:
    """A Hugging Face model class, as numpyllm reads and writes it.

    ``name``, ``model_type``: config.json's ``architectures[0]`` and ``model_type``
      (``"GPT2LMHeadModel"``, ``"gpt2"``).
    ``config_from_hf(hf: HFConfig, *, dtype, dropout) -> (model class, config)``: the
      numpyllm model that computes what this config computes; raises `PretrainedError`
      for malformed fields and `NotExpressible` for settings numpyllm's model lacks.
    ``config_to_hf(model) -> dict``: the config.json of a numpyllm model, or
      `NotExpressible` saying why this architecture cannot express it.
    ``tensors(config) -> list[TensorMap]``: every tensor of the file, for that config.
    ``layers(config) -> {prefix: count}``: the stacks of numbered layers
      (``{"transformer.h": n_layer}``), checked against the file before `tensors` is
      called, so a config claiming 10**9 layers is refused without listing them.
    ``exports``: the numpyllm model classes `config_to_hf` may accept.
    ``base_prefix``: the prefix of the base model's names (``"transformer."``); a file
      saved from the base model alone (GPT-2's own release) lacks it.
    ``head``: names outside the base model (``("lm_head.weight",)``).
    ``ignored``: a regex of stored tensors that are not weights, skipped (GPT-2's old
      causal-mask buffers ``transformer.h.0.attn.bias``).
    ``aliases(config) -> {name: other}``: a tensor that, when present, must equal `other`
      (a tied head that a saver wrote twice).
    ``special_tokens``: config.json keys to fill from a saved tokenizer's special tokens
      (``{"eos_token_id": "<|endoftext|>"}``).
    """

    name: str
    model_type: str
    config_from_hf: Callable
    config_to_hf: Callable
    tensors: Callable
    layers: Callable
    exports: tuple = ()
    base_prefix: str = ""
    head: tuple = ()
    ignored: re.Pattern | None = None
    aliases: Callable = field(default=_no_aliases)
    special_tokens: dict = field(default_factory=dict)


def architectures() -> dict:
    """name -> `Architecture`, for every architecture of `MODULES`."""
    table = {}
    for module in MODULES:
        for arch in importlib.import_module(f"{__package__}.{module}").ARCHITECTURES:
            table[arch.name] = arch
    return table


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def for_config(names, model_type, where) -> Architecture:
    """The architecture of a config.json, from its ``architectures`` list (the first
    entry numpyllm knows) or, when that is absent, its ``model_type``. `names` and
    `model_type` are the raw values read from the file (None when absent)."""
    table = architectures()
    known = ", ".join(table)
    if model_type is not None and not isinstance(model_type, str):
        raise PretrainedError(f"{where}: model_type: expected a string, got {_show(model_type)}")
    if names is not None:
        if (not isinstance(names, list) or not names
                or not all(isinstance(n, str) for n in names)):
            raise PretrainedError(f"{where}: architectures: expected a non-empty list of "
                                  f"class names, got {_show(names)}")
        arch = next((table[n] for n in names if n in table), None)
        if arch is None:
            raise PretrainedError(f"{where}: architectures: numpyllm reads {known}; this "
                                  f"directory holds {_show(names)}")
        if model_type is not None and model_type != arch.model_type:
            raise PretrainedError(f"{where}: model_type: expected {arch.model_type!r} for "
                                  f"{arch.name}, got {_show(model_type)}")
        return arch
    if model_type is None:
        raise PretrainedError(f"{where}: neither architectures nor model_type says which "
                              f"model this is (numpyllm reads {known})")
    for arch in table.values():
        if arch.model_type == model_type:
            return arch
    types = ", ".join(sorted({a.model_type for a in table.values()}))
    raise PretrainedError(f"{where}: model_type: numpyllm reads {types}; got {_show(model_type)}")


def for_model(model) -> tuple:
    """``(architecture, config.json dict)`` for a numpyllm model: the first architecture
    that can express it. Raises `NotExpressible` listing why each candidate refused."""
    reasons = []
    for arch in architectures().values():
        if not isinstance(model, arch.exports):
            continue
        try:
            return arch, arch.config_to_hf(model)
        except NotExpressible as exc:
            reasons.append(f"{arch.name}: {exc}")
    if not reasons:
        exporters = sorted({c.__name__ for a in architectures().values() for c in a.exports})
        raise NotExpressible(f"no Hugging Face architecture in numpyllm's table expresses a "
                             f"{type(model).__name__} (numpyllm exports {', '.join(exporters)})")
    raise NotExpressible("no Hugging Face architecture can express this model: "
                         + "; ".join(reasons))
