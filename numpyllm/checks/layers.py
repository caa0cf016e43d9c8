"""Checks of the layers of `numpyllm.nn` with respect to their input and every
parameter, at weights moved away from the initial ones (`perturb`)."""
from __future__ import annotations

import numpy as np

from ..functional import padding_mask
from ..nn import GELU, MLP, Dropout, Embedding, LayerNorm, Linear, MultiHeadAttention, ReLU
from ..nn.llama import LlamaAttention, LlamaConfig, RMSNorm, SwiGLU
from ..nn.lora import LoRALinear
from .case import Case, Check, leaf, module_case, perturb
from .functional import _away_from_zero

__all__ = ["CHECKS"]


def _linear(bias):
    def build(rng):
        layer = perturb(Linear(4, 5, bias, rng=rng, dtype=np.float64, std=1.0), rng)
        return module_case(layer, layer, leaf(rng, 2, 3, 4))
    return build


def _lora(frozen, dropout=0.0):
    """A LoRA layer (B moved away from its zero start by `perturb`); with a frozen base
    the check covers x, A and B alone, as training an adapter does."""
    def build(rng):
        base = Linear(4, 5, rng=rng, dtype=np.float64, std=1.0)
        layer = perturb(LoRALinear(base, r=2, alpha=3.0, dropout=dropout, rng=rng), rng)
        if frozen:
            base.requires_grad_(False)
        seed = int(rng.integers(2**31))

        def fn(x):
            if dropout:                   # the same mask at every call
                layer.rng = np.random.default_rng(seed)
            return layer(x)
        return module_case(layer, fn, leaf(rng, 2, 3, 4))
    return build


def _embedding(rng):
    layer = perturb(Embedding(4, 3, rng=rng, dtype=np.float64, std=1.0), rng)
    ids = rng.integers(0, 4, size=(2, 5))
    ids[0, :4] = np.arange(4)                     # every row used, some twice
    return module_case(layer, lambda: layer(ids))


def _layer_norm(bias):
    def build(rng):
        layer = perturb(LayerNorm(6, bias=bias, dtype=np.float64), rng)
        return module_case(layer, layer, leaf(rng, 2, 3, 6))
    return build


def _dropout(rng):
    seed = int(rng.integers(2**31))     # a fresh generator per call: the same mask each time
    return Case(lambda x: Dropout(0.3, rng=np.random.default_rng(seed))(x), (leaf(rng, 4, 6),))


def _mlp(activation):
    def build(rng):
        layer = perturb(MLP(4, activation=activation, rng=rng, dtype=np.float64), rng, std=0.5)
        return module_case(layer, layer, leaf(rng, 2, 3, 4))
    return build


# --- MultiHeadAttention: self (causal, RoPE, ALiBi with key padding), cross, and the
# memory-efficient blocked path
def _mha(rng, **kwargs):
    # weights large enough for attention far from uniform
    return perturb(MultiHeadAttention(8, 2, rng=rng, dtype=np.float64, **kwargs), rng, std=0.5)


def _mha_self(**kwargs):
    def build(rng):
        layer = _mha(rng, **kwargs)
        valid = padding_mask([3, 2], 3)[:, 0, 0]      # [B, Tk]: the second row is padded
        return module_case(layer, lambda x: layer(x, key_padding_mask=valid), leaf(rng, 2, 3, 8))
    return build


def _mha_cross(**kwargs):
    def build(rng):
        layer = _mha(rng, cross=True, **kwargs)
        valid = padding_mask([4, 3], 4)[:, 0, 0]
        return module_case(layer, lambda x, c: layer(x, c, key_padding_mask=valid),
                           leaf(rng, 2, 3, 8), leaf(rng, 2, 4, 8))
    return build


def _rms_norm(rng):
    layer = perturb(RMSNorm(6, dtype=np.float64), rng)
    return module_case(layer, layer, leaf(rng, 2, 3, 6))


def _swiglu(rng):
    layer = perturb(SwiGLU(4, 10, rng=rng, dtype=np.float64), rng, std=0.5)
    return module_case(layer, layer, leaf(rng, 2, 3, 4))


def _llama_attention(**kwargs):
    def build(rng):
        cfg = LlamaConfig(vocab_size=5, block_size=8, n_layer=1, n_head=4, n_embd=8,
                          intermediate_size=8, dtype="float64", **kwargs)
        layer = perturb(LlamaAttention(cfg, rng=rng, dtype=np.float64), rng, std=0.5)
        return module_case(layer, layer, leaf(rng, 2, 5, 8))
    return build


# --- quantized layers (numpyllm.quantize): the weight is a constant of int8/4-bit codes;
# the gradient reaches the input, the bias and the LoRA matrices through it (QLoRA)
def _quantized_linear(fmt):
    def build(rng):
        from ..quantize import QuantizedLinear
        base = perturb(Linear(32, 5, rng=rng, dtype=np.float64, std=1.0), rng)
        layer = QuantizedLinear.from_linear(base, fmt)
        layer.adapter_path = True              # as apply_lora sets it on a quantized model
        layer.bias.requires_grad_(True)
        return module_case(layer, layer, leaf(rng, 2, 3, 32))
    return build


def _quantized_lora(fmt, dropout=0.0):
    def build(rng):
        from ..quantize import QuantizedLinear, QuantizedLoRALinear
        base = QuantizedLinear.from_linear(Linear(32, 5, rng=rng, dtype=np.float64, std=1.0), fmt)
        layer = perturb(QuantizedLoRALinear(base, r=2, alpha=3.0, dropout=dropout, rng=rng), rng)
        seed = int(rng.integers(2**31))

        def fn(x):
            if dropout:                        # the same mask at every call
                layer.rng = np.random.default_rng(seed)
            return layer(x)
        return module_case(layer, fn, leaf(rng, 2, 3, 32))
    return build


def _layer(name, build, shapes) -> Check:
    return Check(name, build, shapes, kind="layer")


CHECKS = [
    _layer("Linear", _linear(True), "x [2, 3, 4] -> 5"),
    _layer("Linear (no bias)", _linear(False), "x [2, 3, 4] -> 5"),
    _layer("LoRALinear (frozen base)", _lora(True), "x [2, 3, 4] -> 5, r 2"),
    _layer("LoRALinear (dropout 0.3)", _lora(False, 0.3), "x [2, 3, 4] -> 5, r 2, all"),
    _layer("Embedding", _embedding, "ids [2, 5] of 4, W [4, 3]"),
    _layer("LayerNorm", _layer_norm(True), "x [2, 3, 6]"),
    _layer("LayerNorm (no bias)", _layer_norm(False), "x [2, 3, 6]"),
    _layer("Dropout", _dropout, "x [4, 6], p 0.3"),
    _layer("ReLU", lambda rng: Case(ReLU(), (_away_from_zero(rng, 3, 8),)), "x [3, 8], |x| >= 0.1"),
    _layer("GELU", lambda rng: Case(GELU(), (leaf(rng, 3, 8),)), "x [3, 8]"),
    _layer("MLP (gelu)", _mlp("gelu"), "x [2, 3, 4], hidden 16"),
    _layer("MLP (relu)", _mlp("relu"), "x [2, 3, 4], hidden 16"),
    _layer("MHA causal", _mha_self(causal=True), "x [2, 3, 8], 2 heads, padding"),
    _layer("MHA causal, no bias", _mha_self(causal=True, bias=False), "x [2, 3, 8], 2 heads"),
    _layer("MHA causal RoPE", _mha_self(causal=True, positions="rope"), "x [2, 3, 8], 2 heads"),
    _layer("MHA ALiBi", _mha_self(positions="alibi"), "x [2, 3, 8], 2 heads, padding"),
    _layer("MHA cross", _mha_cross(), "x [2,3,8], context [2,4,8]"),
    _layer("MHA blocked causal RoPE", _mha_self(causal=True, positions="rope", block_size=2),
           "x [2, 3, 8], blocks of 2"),
    _layer("MHA blocked cross", _mha_cross(block_size=2), "x [2,3,8], ctx [2,4,8], blk 2"),
    _layer("RMSNorm", _rms_norm, "x [2, 3, 6]"),
    _layer("SwiGLU", _swiglu, "x [2, 3, 4], hidden 10"),
    _layer("LlamaAttention (GQA)", _llama_attention(n_kv_head=2), "x [2,5,8], 4 q / 2 kv heads"),
    _layer("LlamaAttention (MQA, bias)", _llama_attention(n_kv_head=1, attention_bias=True),
           "x [2,5,8], 4 q / 1 kv head"),
    _layer("LlamaAttention (window 2)", _llama_attention(n_kv_head=2, sliding_window=2),
           "x [2,5,8], sliding window 2"),
    _layer("LlamaAttention (blocked)", _llama_attention(n_kv_head=2, attn_block_size=2),
           "x [2,5,8], blocks of 2"),
    _layer("QuantizedLinear (q8_0, adapter path)", _quantized_linear("q8_0"),
           "x [2, 3, 32] -> 5, x and bias"),
    _layer("QuantizedLoRALinear (q4_0 base)", _quantized_lora("q4_0"), "x [2, 3, 32] -> 5, r 2"),
    _layer("QuantizedLoRALinear (int8, dropout 0.3)", _quantized_lora("int8", 0.3),
           "x [2, 3, 32] -> 5, r 2"),
]


# --- a quantized token table read backwards: the tied LM head x Eᵀ over a Q4_0 table
# (numpyllm.quantize.QuantizedEmbedding). E gets no gradient; on the adapter path x does
# (dL/dx = G E, the table dequantized tile by tile), which is how QLoRA's adapters below
# the head receive any gradient at all.
def _quantized_tied_head(fmt):
    def build(rng):
        from ..quantize import QuantizedEmbedding
        table = Embedding(7, 32, rng=rng, dtype=np.float64, std=1.0)      # E [V=7, C=32]
        emb = QuantizedEmbedding.from_embedding(table, fmt, tile=3)      # tiles of 3 rows
        emb.adapter_path = True              # as apply_lora sets it on a quantized model
        return Case(emb.tied_logits, (leaf(rng, 2, 3, 32),), {0: "x"}, emb)
    return build


CHECKS.append(_layer("QuantizedEmbedding tied head (q4_0, adapter path)",
                     _quantized_tied_head("q4_0"), "x [2, 3, 32] @ E [7, 32]ᵀ, dL/dx"))
