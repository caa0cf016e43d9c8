"""The LLaMA family as Hugging Face directories: ``LlamaForCausalLM``, ``Qwen2ForCausalLM``,
``MistralForCausalLM`` <-> numpyllm's `Llama`.

numpyllm's `Llama` uses Hugging Face's parameter names without the ``model.`` prefix, and
stores each Linear ``[in, out]`` where PyTorch's ``nn.Linear`` stores ``[out, in]``: so
every projection maps with `TRANSPOSE`, the embedding and the norms with `COPY`.

    model.embed_tokens.weight                      [V, C]        embed_tokens.weight
    model.layers.{i}.input_layernorm.weight        [C]           layers.{i}.input_layernorm.weight
    model.layers.{i}.self_attn.q_proj.weight       [nh·hd, C]    ...q_proj.weight [C, nh·hd]  (ᵀ)
    model.layers.{i}.self_attn.k_proj.weight       [nkv·hd, C]   ...k_proj.weight             (ᵀ)
    model.layers.{i}.self_attn.v_proj.weight       [nkv·hd, C]   ...v_proj.weight             (ᵀ)
    model.layers.{i}.self_attn.{q,k,v}_proj.bias   [nh·hd] ...   Qwen2 only
    model.layers.{i}.self_attn.o_proj.weight       [C, nh·hd]    ...o_proj.weight             (ᵀ)
    model.layers.{i}.post_attention_layernorm.weight  [C]
    model.layers.{i}.mlp.{gate,up}_proj.weight     [I, C]        (ᵀ)
    model.layers.{i}.mlp.down_proj.weight          [C, I]        (ᵀ)
    model.norm.weight                              [C]
    lm_head.weight                                 [V, C]        lm_head.weight [C, V] (ᵀ); absent when tied

config.json -> `LlamaConfig` (the three architectures share these fields):

    vocab_size, hidden_size -> n_embd, intermediate_size, num_hidden_layers -> n_layer,
    num_attention_heads -> n_head, num_key_value_heads -> n_kv_head (absent: n_head),
    head_dim (absent: hidden_size / heads), max_position_embeddings -> block_size,
    rms_norm_eps, tie_word_embeddings -> tie_weights, attention_dropout -> dropout,
    rope_parameters {"rope_type": "default", "rope_theta": θ} (transformers 5), or the
    older rope_theta with rope_scaling null -> rope_theta

and where they differ:

    Llama    attention_bias must be false (Llama's puts a bias on o_proj too, numpyllm's
             attention has none there); mlp_bias must be false
    Qwen2    q, k and v always have biases (o_proj none): attention_bias=True;
             use_sliding_window + sliding_window + max_window_layers/layer_types: a window on
             every layer or none (numpyllm has one window for the whole model)
    Mistral  sliding_window (null: none) on every layer

Refused (`NotExpressible`): ``hidden_act`` other than silu; RoPE scaling (``linear``,
``dynamic``, ``yarn``, Llama 3.1's ``llama3``: positions would be rotated differently);
biases numpyllm lacks; a window on some layers only. Export picks the first architecture
that expresses the model: Llama (no biases, no window), Qwen2 (q/k/v biases), Mistral
(a window, no biases).
"""
from __future__ import annotations

import re

from ..nn.llama import Llama, LlamaConfig
from .architectures import COPY, TRANSPOSE, Architecture, TensorMap
from .errors import NotExpressible
from .hfconfig import HFConfig

__all__ = ["ARCHITECTURES", "tensors", "layers"]

# transformers' defaults for fields a config.json may leave out, per model_type
_DEFAULTS = {
    "llama": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, layers=32,
                  heads=32, positions=2048, eps=1e-6, theta=10000.0),
    "qwen2": dict(vocab_size=151936, hidden_size=4096, intermediate_size=22016, layers=32,
                  heads=32, positions=32768, eps=1e-6, theta=10000.0),
    "mistral": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, layers=32,
                    heads=32, positions=4096 * 32, eps=1e-6, theta=10000.0),
}


def _rope_theta(hf: HFConfig, default: float) -> float:
    """θ from ``rope_parameters`` (transformers 5) or the older ``rope_theta`` +
    ``rope_scaling``; any scaling of the positions is refused."""
    params = hf.get("rope_parameters", None)
    if params is None:
        scaling = hf.get("rope_scaling", None)
        if scaling is not None:
            raise hf.refuse("rope_scaling", "numpyllm's RoPE rotates positions unscaled "
                            "(rope_type default)")
        return hf.number("rope_theta", default, positive=True)
    if not isinstance(params, dict):
        raise hf._bad("rope_parameters", "a JSON object", params)
    sub = HFConfig(params, f"{hf.where}: rope_parameters")
    kind = sub.str("rope_type", sub.str("type", "default"))
    if kind != "default":
        raise hf.refuse("rope_parameters", f"rope_type {kind!r} scales the positions; "
                        "numpyllm's RoPE is rope_type default", value=kind)
    return sub.number("rope_theta", hf.number("rope_theta", default, positive=True),
                      positive=True)


def _window(hf: HFConfig, model_type: str, n_layer: int):
    """The sliding window numpyllm's config gets (None: attention sees every position)."""
    if model_type == "llama":
        return None
    if model_type == "mistral":
        return hf.optional_int("sliding_window")
    # Qwen2: a window only with use_sliding_window, and then on the layers from
    # max_window_layers on, unless layer_types lists the kind of each layer.
    window = hf.optional_int("sliding_window", 4096)
    if not hf.bool("use_sliding_window", False) or window is None:
        hf.get("layer_types", None)
        hf.get("max_window_layers", None)
        return None
    kinds = hf.get("layer_types", None)
    if kinds is None:
        start = hf.int("max_window_layers", 28, minimum=0)
        kinds = ["sliding_attention" if i >= start else "full_attention"
                 for i in range(n_layer)]
    allowed = {"sliding_attention", "full_attention"}
    if (not isinstance(kinds, list) or len(kinds) != n_layer
            or not all(isinstance(k, str) and k in allowed for k in kinds)):
        raise hf._bad("layer_types", f"a list of {n_layer} 'full_attention' or "
                      "'sliding_attention'", kinds)
    if len(set(kinds)) > 1:
        raise hf.refuse("layer_types", "a sliding window on some layers only; numpyllm's "
                        "Llama has one window for every layer")
    return window if kinds[0] == "sliding_attention" else None


def _from_hf(model_type: str):
    defaults = _DEFAULTS[model_type]

    def config_from_hf(hf: HFConfig, *, dtype: str = "float32",
                       dropout: float | None = None) -> tuple:
        d = defaults
        hidden = hf.int("hidden_size", d["hidden_size"])
        heads = hf.int("num_attention_heads", d["heads"])
        n_kv = hf.optional_int("num_key_value_heads") or heads
        head_dim = hf.optional_int("head_dim")
        n_layer = hf.int("num_hidden_layers", d["layers"])
        hf.choice("hidden_act", {"silu": "silu"}, "silu",
                  why="numpyllm's SwiGLU gates with SiLU")
        if model_type == "llama":
            if hf.bool("attention_bias", False):
                raise hf.refuse("attention_bias", "Llama's attention_bias also puts a bias "
                                "on o_proj, which numpyllm's attention lacks")
            if hf.bool("mlp_bias", False):
                raise hf.refuse("mlp_bias", "numpyllm's SwiGLU has no biases")
            hf.int("pretraining_tp", 1)          # only the order of a sum: same values
        rate = hf.number("attention_dropout", 0.0, below=1.0)
        config = LlamaConfig(
            vocab_size=hf.int("vocab_size", d["vocab_size"]),
            block_size=hf.int("max_position_embeddings", d["positions"]),
            n_layer=n_layer, n_head=heads, n_kv_head=n_kv, n_embd=hidden,
            intermediate_size=hf.int("intermediate_size", d["intermediate_size"]),
            head_dim=head_dim, rope_theta=_rope_theta(hf, d["theta"]),
            rms_norm_eps=hf.number("rms_norm_eps", d["eps"], positive=True),
            attention_bias=model_type == "qwen2",
            sliding_window=_window(hf, model_type, n_layer),
            tie_weights=hf.bool("tie_word_embeddings", False),
            dropout=rate if dropout is None else dropout, dtype=dtype)
        return Llama, config
    return config_from_hf


def _common(c: LlamaConfig, name: str, model_type: str) -> dict:
    return {
        "architectures": [name], "model_type": model_type,
        "vocab_size": c.vocab_size, "hidden_size": c.n_embd,
        "intermediate_size": c.intermediate_size, "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim, "hidden_act": "silu",
        "max_position_embeddings": c.block_size, "rms_norm_eps": c.rms_norm_eps,
        "tie_word_embeddings": c.tie_weights, "attention_dropout": c.dropout,
        # transformers 5 reads rope_parameters; older versions rope_theta
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "rope_theta": c.rope_theta, "initializer_range": 0.02, "use_cache": True,
        "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
    }


def _llama_to_hf(model) -> dict:
    c = model.config
    if c.attention_bias:
        raise NotExpressible("attention_bias=True: Llama's attention_bias also puts a bias on "
                             "o_proj (Qwen2 has q/k/v biases only)")
    if c.sliding_window is not None:
        raise NotExpressible(f"sliding_window={c.sliding_window}: LlamaForCausalLM attends "
                             "to every position")
    return _common(c, "LlamaForCausalLM", "llama") | {
        "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1}


def _qwen2_to_hf(model) -> dict:
    c = model.config
    if not c.attention_bias:
        raise NotExpressible("attention_bias=False: Qwen2 always has q/k/v biases")
    window = c.sliding_window
    return _common(c, "Qwen2ForCausalLM", "qwen2") | {
        "use_sliding_window": window is not None, "sliding_window": window,
        "max_window_layers": 0 if window is not None else c.n_layer,
        "layer_types": [("sliding_attention" if window is not None else "full_attention")
                        for _ in range(c.n_layer)]}


def _mistral_to_hf(model) -> dict:
    c = model.config
    if c.attention_bias:
        raise NotExpressible("attention_bias=True: Mistral's attention has no biases")
    return _common(c, "MistralForCausalLM", "mistral") | {"sliding_window": c.sliding_window}


def tensors(config: LlamaConfig) -> list:
    """Every tensor of a LLaMA-family file for `config`, as `TensorMap` rows."""
    C, V, I = config.n_embd, config.vocab_size, config.intermediate_size
    q, kv = config.n_head * config.head_dim, config.n_kv_head * config.head_dim
    rows = [TensorMap("model.embed_tokens.weight", "embed_tokens.weight", (V, C), COPY)]
    for i in range(config.n_layer):
        h, o = f"model.layers.{i}.", f"layers.{i}."
        rows.append(TensorMap(h + "input_layernorm.weight", o + "input_layernorm.weight", (C,)))
        for proj, out in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            name = f"self_attn.{proj}."
            rows.append(TensorMap(h + name + "weight", o + name + "weight", (out, C), TRANSPOSE))
            if config.attention_bias:
                rows.append(TensorMap(h + name + "bias", o + name + "bias", (out,)))
        rows += [
            TensorMap(h + "self_attn.o_proj.weight", o + "self_attn.o_proj.weight", (C, q),
                      TRANSPOSE),
            TensorMap(h + "post_attention_layernorm.weight",
                      o + "post_attention_layernorm.weight", (C,)),
            TensorMap(h + "mlp.gate_proj.weight", o + "mlp.gate_proj.weight", (I, C), TRANSPOSE),
            TensorMap(h + "mlp.up_proj.weight", o + "mlp.up_proj.weight", (I, C), TRANSPOSE),
            TensorMap(h + "mlp.down_proj.weight", o + "mlp.down_proj.weight", (C, I), TRANSPOSE),
        ]
    rows.append(TensorMap("model.norm.weight", "norm.weight", (C,)))
    if not config.tie_weights:      # an nn.Linear: [out, in] = [V, C]; ours is [C, V]
        rows.append(TensorMap("lm_head.weight", "lm_head.weight", (V, C), TRANSPOSE))
    return rows


def layers(config: LlamaConfig) -> dict:
    return {"model.layers": config.n_layer}


def _aliases(config: LlamaConfig) -> dict:
    # a tied head is one tensor; a saver that writes it twice must write the same values
    return {"lm_head.weight": "model.embed_tokens.weight"} if config.tie_weights else {}


def _architecture(name: str, model_type: str, to_hf) -> Architecture:
    return Architecture(
        name=name, model_type=model_type, config_from_hf=_from_hf(model_type),
        config_to_hf=to_hf, tensors=tensors, layers=layers, exports=(Llama,),
        base_prefix="model.", head=("lm_head.weight",),
        # the rotary tables some older saves hold: computed, not learned
        ignored=re.compile(r"model\.layers\.[0-9]+\.self_attn\.rotary_emb\.inv_freq"),
        aliases=_aliases)


ARCHITECTURES = (
    _architecture("LlamaForCausalLM", "llama", _llama_to_hf),
    _architecture("Qwen2ForCausalLM", "qwen2", _qwen2_to_hf),
    _architecture("MistralForCausalLM", "mistral", _mistral_to_hf),
)
