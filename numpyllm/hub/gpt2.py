"""GPT-2 (``GPT2LMHeadModel``) as a Hugging Face directory: its config.json and tensor names.

numpyllm's `GPT` was built with GPT-2's names and layout, so the map is nearly the
identity: each tensor loses the ``transformer.`` prefix, and Conv1D weights, stored
``[in, out]``, are numpyllm's layout already.

    transformer.wte.weight                [V, C]     wte.weight
    transformer.wpe.weight                [P, C]     wpe.weight
    transformer.h.{i}.ln_1.weight, .bias  [C]        h.{i}.ln_1.weight, .bias
    transformer.h.{i}.attn.c_attn.weight  [C, 3C]    h.{i}.attn.c_attn.weight   (Conv1D: [in, out])
    transformer.h.{i}.attn.c_attn.bias    [3C]       h.{i}.attn.c_attn.bias
    transformer.h.{i}.attn.c_proj.weight  [C, C]     ...
    transformer.h.{i}.ln_2.weight, .bias  [C]
    transformer.h.{i}.mlp.c_fc.weight     [C, 4C]
    transformer.h.{i}.mlp.c_proj.weight   [4C, C]    (and their biases)
    transformer.ln_f.weight, .bias        [C]        ln_f.weight, .bias
    lm_head.weight                        [V, C]     tied to wte: not stored; untied: an
                                                     nn.Linear [out, in], so lm_head.weight
                                                     transposed (numpyllm's is [C, V])

config.json -> `GPTConfig`:

    vocab_size -> vocab_size        n_positions -> block_size     n_embd, n_layer, n_head
    layer_norm_epsilon -> layer_norm_eps                          tie_word_embeddings -> tie_weights
    activation_function: gelu_new, gelu_pytorch_tanh -> "gelu" (both the tanh
        approximation, numpyllm's GELU); relu -> "relu"
    resid_pdrop, embd_pdrop, attn_pdrop -> dropout (numpyllm has one rate; it drops at
        the same three places)
    always: positions="learned", norm="pre", bias=True

Refused (`NotExpressible`), because the model would compute something else:
``activation_function`` "gelu" (the exact erf form) or any other; ``n_inner`` other
than 4 * n_embd; ``scale_attn_weights: false``; ``scale_attn_by_inverse_layer_idx:
true``; ``add_cross_attention: true``; dropout rates that differ (unless
``load_pretrained(..., dropout=p)`` chooses one). ``reorder_and_upcast_attn`` only
changes float16 arithmetic, and is accepted. Export refuses a numpyllm GPT without
biases, with post-LN, or with positions other than learned (a RoPE GPT exports as GPT-NeoX, `gpt_neox.py`;
sinusoidal and ALiBi have no Hugging Face form).
"""
from __future__ import annotations

import re

from ..nn.gpt import GPT, GPTConfig
from .architectures import TRANSPOSE, Architecture, TensorMap
from .errors import NotExpressible
from .hfconfig import HFConfig

__all__ = ["ARCHITECTURES", "config_from_hf", "config_to_hf", "tensors", "layers"]

_ACTIVATIONS = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu"}
_DEFAULT_DROPOUT = 0.1            # GPT2Config's default for all three rates


def config_from_hf(hf: HFConfig, *, dtype: str = "float32",
                   dropout: float | None = None) -> tuple:
    """``(GPT, GPTConfig)`` for a GPT-2 config.json (absent fields take GPT2Config's
    defaults, as transformers does). `dropout` overrides the file's three rates."""
    n_embd = hf.int("n_embd", 768)
    n_head = hf.int("n_head", 12)
    if n_embd % n_head:
        raise hf.refuse("n_head", f"n_embd ({n_embd}) must be divisible by n_head")
    n_inner = hf.optional_int("n_inner")
    if n_inner is not None and n_inner != 4 * n_embd:
        raise hf.refuse("n_inner", f"numpyllm's MLP is 4 * n_embd = {4 * n_embd} wide")
    activation = hf.choice("activation_function", _ACTIVATIONS, "gelu_new",
                           why="numpyllm's GELU is the tanh approximation, GPT-2's gelu_new")
    if not hf.bool("scale_attn_weights", True):
        raise hf.refuse("scale_attn_weights", "numpyllm always scales attention scores by "
                        "1/sqrt(head size)")
    if hf.bool("scale_attn_by_inverse_layer_idx", False):
        raise hf.refuse("scale_attn_by_inverse_layer_idx", "numpyllm scales every layer's "
                        "scores alike")
    if hf.bool("add_cross_attention", False):
        raise hf.refuse("add_cross_attention", "numpyllm's GPT is decoder-only, without "
                        "cross-attention")
    hf.bool("reorder_and_upcast_attn", False)     # float16 arithmetic only: same values
    hf.optional_int("n_ctx")                      # legacy; transformers ignores it
    rates = {key: hf.number(key, _DEFAULT_DROPOUT, below=1.0)
             for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if dropout is None:
        if len(set(rates.values())) > 1:
            raise NotExpressible(
                f"{hf.where}: resid_pdrop, embd_pdrop, attn_pdrop: numpyllm's GPT has one "
                f"dropout rate, the file has {sorted(set(rates.values()))}; choose one with "
                "load_pretrained(..., dropout=p) (dropout acts only in training)")
        dropout = rates["resid_pdrop"]
    config = GPTConfig(
        vocab_size=hf.int("vocab_size", 50257), block_size=hf.int("n_positions", 1024),
        n_layer=hf.int("n_layer", 12), n_head=n_head, n_embd=n_embd, dropout=dropout,
        bias=True, positions="learned", norm="pre",
        tie_weights=hf.bool("tie_word_embeddings", True), activation=activation,
        layer_norm_eps=hf.number("layer_norm_epsilon", 1e-5, positive=True), dtype=dtype)
    return GPT, config


def config_to_hf(model) -> dict:
    """The config.json of a numpyllm `GPT` as a ``GPT2LMHeadModel``, or `NotExpressible`."""
    c = model.config
    if c.positions != "learned":
        raise NotExpressible(f"positions={c.positions!r}: GPT-2 learns its positions "
                             "(wpe)")
    if c.norm != "pre":
        raise NotExpressible(f"norm={c.norm!r}: GPT-2 normalises before each sub-layer "
                             "(pre-LN); GPT2Config cannot say post-LN")
    if not c.bias:
        raise NotExpressible("bias=False: GPT-2 always has biases in its linear layers and "
                             "layer norms; GPT2Config cannot turn them off")
    activation = {"gelu": "gelu_new", "relu": "relu"}.get(c.activation)
    if activation is None:
        raise NotExpressible(f"activation={c.activation!r} has no GPT-2 equivalent")
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": c.vocab_size, "n_positions": c.block_size, "n_embd": c.n_embd,
        "n_layer": c.n_layer, "n_head": c.n_head, "n_inner": None,
        "activation_function": activation, "layer_norm_epsilon": c.layer_norm_eps,
        "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
        "tie_word_embeddings": c.tie_weights, "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "add_cross_attention": False, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": None, "eos_token_id": None,
    }


_LAYER = (("ln_1.weight", "C"), ("ln_1.bias", "C"), ("attn.c_attn.weight", "C,3C"),
          ("attn.c_attn.bias", "3C"), ("attn.c_proj.weight", "C,C"), ("attn.c_proj.bias", "C"),
          ("ln_2.weight", "C"), ("ln_2.bias", "C"), ("mlp.c_fc.weight", "C,4C"),
          ("mlp.c_fc.bias", "4C"), ("mlp.c_proj.weight", "4C,C"), ("mlp.c_proj.bias", "C"))


def tensors(config: GPTConfig) -> list:
    """Every tensor of a GPT2LMHeadModel file for `config`, as `TensorMap` rows."""
    C, V, P = config.n_embd, config.vocab_size, config.block_size
    size = {"C": C, "3C": 3 * C, "4C": 4 * C}
    rows = [TensorMap("transformer.wte.weight", "wte.weight", (V, C)),
            TensorMap("transformer.wpe.weight", "wpe.weight", (P, C))]
    for i in range(config.n_layer):
        for name, dims in _LAYER:
            rows.append(TensorMap(f"transformer.h.{i}.{name}", f"h.{i}.{name}",
                                  tuple(size[d] for d in dims.split(","))))
    rows += [TensorMap("transformer.ln_f.weight", "ln_f.weight", (C,)),
             TensorMap("transformer.ln_f.bias", "ln_f.bias", (C,))]
    if not config.tie_weights:      # an nn.Linear: [out, in] = [V, C]; ours is [C, V]
        rows.append(TensorMap("lm_head.weight", "lm_head.weight", (V, C), TRANSPOSE))
    return rows


def layers(config: GPTConfig) -> dict:
    return {"transformer.h": config.n_layer}


def _aliases(config: GPTConfig) -> dict:
    # A tied head is one tensor; a saver that writes it twice must write the same values.
    return {"lm_head.weight": "transformer.wte.weight"} if config.tie_weights else {}


ARCHITECTURES = (Architecture(
    name="GPT2LMHeadModel", model_type="gpt2", config_from_hf=config_from_hf,
    config_to_hf=config_to_hf, tensors=tensors, layers=layers, exports=(GPT,),
    base_prefix="transformer.", head=("lm_head.weight",),
    # the causal-mask buffers of older saves (GPT-2's own release has h.{i}.attn.bias)
    ignored=re.compile(r"transformer\.h\.[0-9]+\.attn\.(?:bias|masked_bias)"),
    aliases=_aliases,
    special_tokens={"bos_token_id": "<|endoftext|>", "eos_token_id": "<|endoftext|>"}),)
