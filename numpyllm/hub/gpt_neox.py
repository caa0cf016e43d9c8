"""A RoPE GPT as a Hugging Face directory: ``GPTNeoXForCausalLM`` <-> numpyllm's `GPT` with
``positions="rope"``.

A numpyllm GPT with rotary positions is GPT-2 with RoPE instead of a position table:
LayerNorm (with biases), a GELU MLP four times wide, biases in every Linear, a head tied
or not. That is not a Llama (RMSNorm, SwiGLU, no biases), and GPT-2's class has no RoPE;
the Hugging Face class that computes exactly this is GPT-NeoX, with
``use_parallel_residual: false`` (attention, then the MLP, each in its residual, as
GPT-2; Pythia's parallel form adds both to the same input) and
``partial_rotary_factor: 1.0`` (every dimension of a head rotated; Pythia rotates a
quarter).

Two layouts differ, and the map converts them exactly:

- **the fused q/k/v projection.** Ours, ``h.{i}.attn.c_attn.weight`` ``[C, 3C]``, holds the
  columns ``[q | k | v]``, each ``C = n_head·hs`` wide, head by head. GPT-NeoX's
  ``attention.query_key_value.weight`` ``[3C, C]`` (an nn.Linear: ``[out, in]``) holds its
  rows head by head, each head's ``[q_h | k_h | v_h]``:

      ours  [C, 3, n_head, hs]   --transpose-->   theirs [n_head, 3, hs, C]

- **the rotary pairs.** numpyllm's GPT rotates the pairs ``(x[2j], x[2j+1])`` of each head
  (RoFormer's interleaved layout); GPT-NeoX the pairs ``(x[j], x[j + hs/2])`` ("rotate
  half"), with the same frequency ``θ^(-2j/hs)`` for pair j. Rotation commutes with
  renaming the dimensions, so permuting each head's q and k features by
  ``[0, 2, 4, ..., 1, 3, 5, ...]`` (evens first) turns one layout into the other: the
  attention scores ``q·k`` are unchanged by a permutation applied to both.

The other tensors map by name, each nn.Linear transposed:

    gpt_neox.embed_in.weight                        [V, C]    wte.weight
    gpt_neox.layers.{i}.input_layernorm.{weight,bias}         h.{i}.ln_1.{weight,bias}
    gpt_neox.layers.{i}.attention.query_key_value.{weight,bias}  h.{i}.attn.c_attn.* (above)
    gpt_neox.layers.{i}.attention.dense.weight      [C, C]    h.{i}.attn.c_proj.weight (ᵀ)
    gpt_neox.layers.{i}.post_attention_layernorm.*            h.{i}.ln_2.*
    gpt_neox.layers.{i}.mlp.dense_h_to_4h.weight    [4C, C]   h.{i}.mlp.c_fc.weight (ᵀ)
    gpt_neox.layers.{i}.mlp.dense_4h_to_h.weight    [C, 4C]   h.{i}.mlp.c_proj.weight (ᵀ)
    gpt_neox.final_layer_norm.{weight,bias}                   ln_f.{weight,bias}
    embed_out.weight                                [V, C]    lm_head.weight (ᵀ); absent when tied

Refused (`NotExpressible`): parallel residuals, partial rotation, a rotary base other
than 10,000 (numpyllm's GPT fixes it), RoPE scaling, the exact-erf ``gelu``,
``intermediate_size`` other than 4C, ``attention_bias: false``. Export refuses a GPT that
is not RoPE (learned positions export as GPT-2), post-LN, or without biases.
"""
from __future__ import annotations

import re

import numpy as np

from ..nn.gpt import GPT, GPTConfig
from .architectures import COPY, TRANSPOSE, Architecture, TensorMap, Transform
from .errors import NotExpressible
from .hfconfig import HFConfig

__all__ = ["ARCHITECTURES", "tensors", "layers", "qkv_transforms"]

_ACTIVATIONS = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
                "relu": "relu"}
ROPE_BASE = 10000.0               # numpyllm's GPT rotates with the usual base


def _rope_pairs(hs: int) -> np.ndarray:
    """theirs[..., j] = ours[..., perm[j]]: evens then odds (interleaved -> rotate-half)."""
    return np.concatenate([np.arange(0, hs, 2), np.arange(1, hs, 2)])


def qkv_transforms(n_head: int, hs: int) -> tuple:
    """``(weight, bias)`` Transforms of the fused q/k/v projection (module doc)."""
    perm = _rope_pairs(hs)
    inverse = np.argsort(perm)
    C = n_head * hs

    def weight_to_hf(ours):                        # [C, 3C] -> [3C, C]
        w = ours.reshape(C, 3, n_head, hs)
        w = np.concatenate([w[:, :2, :, perm], w[:, 2:]], axis=1)   # q, k to rotate-half
        return w.transpose(2, 1, 3, 0).reshape(3 * C, C)

    def weight_to_ours(theirs):                    # [3C, C] -> [C, 3C]
        w = theirs.reshape(n_head, 3, hs, C)
        w = np.concatenate([w[:, :2, inverse], w[:, 2:]], axis=1)
        return w.transpose(3, 1, 0, 2).reshape(C, 3 * C)

    def bias_to_hf(ours):                          # [3C] -> [3C]
        b = ours.reshape(3, n_head, hs)
        b = np.concatenate([b[:2, :, perm], b[2:]], axis=0)
        return b.transpose(1, 0, 2).reshape(3 * C)

    def bias_to_ours(theirs):
        b = theirs.reshape(n_head, 3, hs)
        b = np.concatenate([b[:, :2, inverse], b[:, 2:]], axis=1)
        return b.transpose(1, 0, 2).reshape(3 * C)

    return (Transform("QKV_HEADS_ROPE_HALF", weight_to_ours, weight_to_hf, view=False),
            Transform("QKV_HEADS_ROPE_HALF", bias_to_ours, bias_to_hf, view=False))


def config_from_hf(hf: HFConfig, *, dtype: str = "float32",
                   dropout: float | None = None) -> tuple:
    """``(GPT, GPTConfig)`` with RoPE for a GPT-NeoX config.json that numpyllm expresses."""
    n_embd = hf.int("hidden_size", 6144)
    n_head = hf.int("num_attention_heads", 64)
    if n_embd % n_head or (n_embd // n_head) % 2:
        raise hf.refuse("num_attention_heads", f"hidden_size ({n_embd}) must split into heads "
                        "of an even size")
    if hf.int("intermediate_size", 24576) != 4 * n_embd:
        raise hf.refuse("intermediate_size", f"numpyllm's MLP is 4 * hidden_size = "
                        f"{4 * n_embd} wide")
    if hf.bool("use_parallel_residual", True):
        raise hf.refuse("use_parallel_residual", "numpyllm's GPT adds attention, then the "
                        "MLP on the result (GPT-2's order), not both to the same input",
                        value=True)
    if not hf.bool("attention_bias", True):
        raise hf.refuse("attention_bias", "numpyllm's GPT has biases in every Linear or in none "
                        "(and GPT-NeoX's LayerNorms and MLP always have them)")
    activation = hf.choice("hidden_act", _ACTIVATIONS, "gelu",
                           why="numpyllm's GELU is the tanh approximation")
    params = hf.get("rope_parameters", None)
    if params is None:               # older files: rotary_pct, rotary_emb_base, rope_scaling
        fraction = hf.number("rotary_pct", 0.25, positive=True)
        base = hf.number("rotary_emb_base", ROPE_BASE, positive=True)
        if hf.get("rope_scaling", None) is not None:
            raise hf.refuse("rope_scaling", "numpyllm's RoPE rotates positions unscaled")
    else:
        if not isinstance(params, dict):
            raise hf._bad("rope_parameters", "a JSON object", params)
        sub = HFConfig(params, f"{hf.where}: rope_parameters")
        if sub.str("rope_type", "default") != "default":
            raise hf.refuse("rope_parameters", "numpyllm's RoPE is rope_type default",
                            value=params.get("rope_type"))
        fraction = sub.number("partial_rotary_factor", 1.0, positive=True)
        base = sub.number("rope_theta", ROPE_BASE, positive=True)
    if fraction != 1.0:
        raise hf.refuse("rope_parameters" if params is not None else "rotary_pct",
                        "numpyllm's GPT rotates every dimension of a head (1.0)", value=fraction)
    if base != ROPE_BASE:
        raise hf.refuse("rope_parameters" if params is not None else "rotary_emb_base",
                        f"numpyllm's GPT rotates with base {ROPE_BASE:g}", value=base)
    rates = {hf.number(k, 0.0, below=1.0) for k in ("hidden_dropout", "attention_dropout")}
    if dropout is None:
        if len(rates) > 1:
            raise NotExpressible(f"{hf.where}: hidden_dropout, attention_dropout: numpyllm's "
                                 f"GPT has one dropout rate, the file has {sorted(rates)}; "
                                 "choose one with load_pretrained(..., dropout=p)")
        dropout = rates.pop()
    config = GPTConfig(
        vocab_size=hf.int("vocab_size", 50432), block_size=hf.int("max_position_embeddings", 2048),
        n_layer=hf.int("num_hidden_layers", 44), n_head=n_head, n_embd=n_embd, dropout=dropout,
        bias=True, positions="rope", norm="pre",
        tie_weights=hf.bool("tie_word_embeddings", False), activation=activation,
        layer_norm_eps=hf.number("layer_norm_eps", 1e-5, positive=True), dtype=dtype)
    return GPT, config


def config_to_hf(model) -> dict:
    """The config.json of a RoPE `GPT` as a ``GPTNeoXForCausalLM``, or `NotExpressible`."""
    c = model.config
    if c.positions != "rope":
        raise NotExpressible(f"positions={c.positions!r}: GPT-NeoX rotates (RoPE)")
    if c.norm != "pre":
        raise NotExpressible(f"norm={c.norm!r}: GPT-NeoX normalises before each sub-layer")
    if not c.bias:
        raise NotExpressible("bias=False: GPT-NeoX's LayerNorms and MLP always have biases")
    return {
        "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
        "vocab_size": c.vocab_size, "hidden_size": c.n_embd, "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head, "intermediate_size": 4 * c.n_embd,
        "hidden_act": {"gelu": "gelu_new", "relu": "relu"}[c.activation],
        "max_position_embeddings": c.block_size, "layer_norm_eps": c.layer_norm_eps,
        "use_parallel_residual": False, "attention_bias": True,
        "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_BASE,
                            "partial_rotary_factor": 1.0},
        "rotary_pct": 1.0, "rotary_emb_base": ROPE_BASE,          # older transformers
        "hidden_dropout": c.dropout, "attention_dropout": c.dropout,
        "tie_word_embeddings": c.tie_weights, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
    }


def tensors(config: GPTConfig) -> list:
    """Every tensor of a GPTNeoXForCausalLM file for `config`, as `TensorMap` rows."""
    C, V = config.n_embd, config.vocab_size
    qkv_weight, qkv_bias = qkv_transforms(config.n_head, config.head_size)
    rows = [TensorMap("gpt_neox.embed_in.weight", "wte.weight", (V, C))]
    for i in range(config.n_layer):
        h, o = f"gpt_neox.layers.{i}.", f"h.{i}."
        rows += [
            TensorMap(h + "input_layernorm.weight", o + "ln_1.weight", (C,)),
            TensorMap(h + "input_layernorm.bias", o + "ln_1.bias", (C,)),
            TensorMap(h + "attention.query_key_value.weight", o + "attn.c_attn.weight",
                      (3 * C, C), qkv_weight),
            TensorMap(h + "attention.query_key_value.bias", o + "attn.c_attn.bias", (3 * C,),
                      qkv_bias),
            TensorMap(h + "attention.dense.weight", o + "attn.c_proj.weight", (C, C), TRANSPOSE),
            TensorMap(h + "attention.dense.bias", o + "attn.c_proj.bias", (C,)),
            TensorMap(h + "post_attention_layernorm.weight", o + "ln_2.weight", (C,)),
            TensorMap(h + "post_attention_layernorm.bias", o + "ln_2.bias", (C,)),
            TensorMap(h + "mlp.dense_h_to_4h.weight", o + "mlp.c_fc.weight", (4 * C, C),
                      TRANSPOSE),
            TensorMap(h + "mlp.dense_h_to_4h.bias", o + "mlp.c_fc.bias", (4 * C,)),
            TensorMap(h + "mlp.dense_4h_to_h.weight", o + "mlp.c_proj.weight", (C, 4 * C),
                      TRANSPOSE),
            TensorMap(h + "mlp.dense_4h_to_h.bias", o + "mlp.c_proj.bias", (C,)),
        ]
    rows += [TensorMap("gpt_neox.final_layer_norm.weight", "ln_f.weight", (C,), COPY),
             TensorMap("gpt_neox.final_layer_norm.bias", "ln_f.bias", (C,), COPY)]
    if not config.tie_weights:      # an nn.Linear: [out, in] = [V, C]; ours is [C, V]
        rows.append(TensorMap("embed_out.weight", "lm_head.weight", (V, C), TRANSPOSE))
    return rows


def layers(config: GPTConfig) -> dict:
    return {"gpt_neox.layers": config.n_layer}


def _aliases(config: GPTConfig) -> dict:
    return {"embed_out.weight": "gpt_neox.embed_in.weight"} if config.tie_weights else {}


ARCHITECTURES = (Architecture(
    name="GPTNeoXForCausalLM", model_type="gpt_neox", config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, tensors=tensors, layers=layers, exports=(GPT,),
    base_prefix="gpt_neox.", head=("embed_out.weight",),
    # the causal-mask and rotary buffers some older saves hold: computed, not learned
    ignored=re.compile(r"gpt_neox\.layers\.[0-9]+\.attention\.(?:bias|masked_bias|"
                       r"rotary_emb\.inv_freq)"),
    aliases=_aliases),)
