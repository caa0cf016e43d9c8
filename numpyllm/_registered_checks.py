"""Check builders for `numpyllm.checks`, one section per part of the library.

Each builder returns ``(fn, inputs)``; inputs are float64 Tensors (Parameters included)
with requires_grad=True where the gradient is checked.
"""
from __future__ import annotations

import numpy as np  # noqa: F401

from .autograd import Tensor  # noqa: F401
from .checks import register  # noqa: F401

# Sections (added as the parts land): functional (fused ops), positions, attention,
# layers, models.


# --- functional: the fused ops of numpyllm.functional -----------------------------------
from .functional import (cross_entropy, dropout, embedding, gelu, layer_norm,  # noqa: E402
                         linear, log_softmax, softmax)


def _leaf(rng, *shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


@register("linear", "x [2, 3, 4], W [4, 5], b [5]")
def _linear(rng):
    return linear, (_leaf(rng, 2, 3, 4), _leaf(rng, 4, 5), _leaf(rng, 5))


@register("softmax", "x [2, 3, 5], axis -1")
def _softmax(rng):
    return softmax, (_leaf(rng, 2, 3, 5),)


@register("log_softmax", "x [2, 3, 5], axis 1")
def _log_softmax(rng):
    return (lambda x: log_softmax(x, axis=1)), (_leaf(rng, 2, 3, 5),)


@register("gelu (tanh)", "x [3, 8]")
def _gelu_tanh(rng):
    return gelu, (_leaf(rng, 3, 8),)


@register("gelu (exact, erf)", "x [3, 8]")
def _gelu_erf(rng):
    return (lambda x: gelu(x, approximate="none")), (_leaf(rng, 3, 8),)


@register("cross_entropy", "logits [2, 4, 7], 2 ignored")
def _cross_entropy(rng):
    targets = rng.integers(0, 7, size=(2, 4))
    targets[0, 1] = targets[1, 3] = -100
    return (lambda x: cross_entropy(x, targets)), (_leaf(rng, 2, 4, 7),)


@register("layer_norm", "x [2, 3, 8], w [8], b [8]")
def _layer_norm(rng):
    return layer_norm, (_leaf(rng, 2, 3, 8), _leaf(rng, 8), _leaf(rng, 8))


@register("embedding", "ids [2, 5] of 4, W [4, 3]")
def _embedding(rng):
    ids = rng.integers(0, 4, size=(2, 5))          # 10 ids into 4 rows: repeats
    return (lambda w: embedding(ids, w)), (_leaf(rng, 4, 3),)


@register("dropout", "x [4, 6], p 0.3")
def _dropout(rng):
    seed = int(rng.integers(2**31))     # a fresh generator per call: the same mask each time
    return (lambda x: dropout(x, 0.3, rng=np.random.default_rng(seed))), (_leaf(rng, 4, 6),)


# --- layers: the Modules of numpyllm.nn.layers, w.r.t. the input and every parameter ----
from .nn import GELU, MLP, Dropout, Embedding, LayerNorm, Linear, ReLU  # noqa: E402


def _layer_check(layer, *inputs):
    """(fn, inputs) for a layer: its Parameters are checked as extra inputs."""
    return (lambda *args: layer(*args[:len(inputs)])), inputs + tuple(layer.parameters())


@register("Linear", "x [2, 3, 4] -> 5")
def _linear_layer(rng):
    return _layer_check(Linear(4, 5, rng=rng, dtype=np.float64, std=1.0), _leaf(rng, 2, 3, 4))


@register("Embedding", "ids [2, 5] of 4, W [4, 3]")
def _embedding_layer(rng):
    layer = Embedding(4, 3, rng=rng, dtype=np.float64, std=1.0)
    ids = rng.integers(0, 4, size=(2, 5))
    return (lambda w: layer(ids)), (layer.weight,)


@register("LayerNorm", "x [2, 3, 6]")
def _layer_norm_layer(rng):
    layer = LayerNorm(6, dtype=np.float64)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    return _layer_check(layer, _leaf(rng, 2, 3, 6))


@register("Dropout", "x [4, 6], p 0.3")
def _dropout_layer(rng):
    seed = int(rng.integers(2**31))     # a fresh generator per call: the same mask each time
    return (lambda x: Dropout(0.3, rng=np.random.default_rng(seed))(x)), (_leaf(rng, 4, 6),)


@register("ReLU", "x [3, 8], |x| >= 0.1")
def _relu_layer(rng):
    x = rng.standard_normal((3, 8))
    return ReLU(), (Tensor(np.sign(x) * (0.1 + np.abs(x)), requires_grad=True),)


@register("GELU", "x [3, 8]")
def _gelu_layer(rng):
    return GELU(), (_leaf(rng, 3, 8),)


@register("MLP (gelu)", "x [2, 3, 4], hidden 16")
def _mlp_layer(rng):
    layer = MLP(4, activation="gelu", rng=rng, dtype=np.float64, proj_std=0.5)
    layer.c_fc.bias.data[...] = rng.standard_normal(16)
    return _layer_check(layer, _leaf(rng, 2, 3, 4))


# --- positions: RoPE's fused rotation (sinusoidal and ALiBi have no gradient) ----------
from .nn import RotaryEmbedding, apply_rope  # noqa: E402


@register("apply_rope", "x [2,2,5,4], positions 3..7")
def _apply_rope(rng):
    cos, sin = RotaryEmbedding(4).cos_sin(5, offset=3, dtype=np.float64)
    return (lambda x: apply_rope(x, cos, sin)), (_leaf(rng, 2, 2, 5, 4),)


# --- attention: scaled_dot_product_attention and MultiHeadAttention ---------------------
from .functional import padding_mask, prefix_lm_mask, scaled_dot_product_attention  # noqa: E402
from .nn import MultiHeadAttention  # noqa: E402


def _qkv(rng, B, nh, Tq, Tk, hs):
    return _leaf(rng, B, nh, Tq, hs), _leaf(rng, B, nh, Tk, hs), _leaf(rng, B, nh, Tk, hs)


@register("sdpa causal, Tq < Tk", "q [2,2,3,4], k v [2,2,5,4]")
def _sdpa_causal(rng):
    return (lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=True)), \
        _qkv(rng, 2, 2, 3, 5, 4)


@register("sdpa padding+prefix, bias", "qkv [2,2,4,3], bias [2,4,4]")
def _sdpa_masks_bias(rng):
    mask = padding_mask([4, 2], 4) & prefix_lm_mask(4, np.array([1, 2]))
    return (lambda q, k, v, b: scaled_dot_product_attention(q, k, v, mask=mask, bias=b)), \
        _qkv(rng, 2, 2, 4, 4, 3) + (_leaf(rng, 2, 4, 4),)


@register("sdpa dropout 0.2", "q, k, v [2, 2, 4, 3]")
def _sdpa_dropout(rng):
    seed = int(rng.integers(2**31))     # a fresh generator per call: the same mask each time
    return (lambda q, k, v: scaled_dot_product_attention(
        q, k, v, causal=True, dropout_p=0.2, rng=np.random.default_rng(seed))), \
        _qkv(rng, 2, 2, 4, 4, 3)


@register("sdpa blocked causal+padding", "qkv[2,2,5,3] bias drop 0.2")
def _sdpa_blocked(rng):
    seed = int(rng.integers(2**31))     # a fresh generator per call: the same mask each time
    mask = padding_mask([5, 3], 5)
    return (lambda q, k, v, b: scaled_dot_product_attention(
        q, k, v, mask=mask, causal=True, bias=b, dropout_p=0.2,
        rng=np.random.default_rng(seed), block_size=2)), \
        _qkv(rng, 2, 2, 5, 5, 3) + (_leaf(rng, 2, 5, 5),)


def _mha(rng, **kwargs):
    layer = MultiHeadAttention(8, 2, rng=rng, dtype=np.float64, **kwargs)
    for p in layer.parameters():      # weights large enough for attention far from uniform
        p.data[...] = 0.5 * rng.standard_normal(p.shape)
    return layer


@register("MHA causal", "x [2, 3, 8], 2 heads")
def _mha_causal(rng):
    return _layer_check(_mha(rng, causal=True), _leaf(rng, 2, 3, 8))


@register("MHA causal RoPE", "x [2, 3, 8], 2 heads")
def _mha_rope(rng):
    return _layer_check(_mha(rng, causal=True, positions="rope"), _leaf(rng, 2, 3, 8))


@register("MHA ALiBi, key padding", "x [2, 3, 8], 2 heads")
def _mha_alibi(rng):
    layer, valid = _mha(rng, positions="alibi"), padding_mask([3, 2], 3)[:, 0, 0]
    return (lambda x, *params: layer(x, key_padding_mask=valid)), \
        (_leaf(rng, 2, 3, 8),) + tuple(layer.parameters())


@register("MHA cross", "x [2,3,8], context [2,4,8]")
def _mha_cross(rng):
    return _layer_check(_mha(rng, cross=True), _leaf(rng, 2, 3, 8), _leaf(rng, 2, 4, 8))


# --- transformer: the loss of the encoder-decoder and the encoder-only model w.r.t. every
# parameter (random projections: the parameters hold more than 256 numbers)
from .nn.transformer import (Transformer, TransformerConfig,  # noqa: E402
                             TransformerEncoderConfig, TransformerEncoderModel)


def _model_check(model, rng, loss):
    """(fn, inputs) for a model's loss, its weights moved away from the tiny initial
    values (attention far from uniform, layer-norm gains away from 1)."""
    params = tuple(model.parameters())
    for p in params:
        p.data += 0.3 * rng.standard_normal(p.shape)
    return (lambda *_: loss()), params


def _seq2seq_check(rng, **kwargs):
    cfg = TransformerConfig(src_vocab_size=7, tgt_vocab_size=7, d_model=8, n_head=2,
                            n_encoder_layers=2, n_decoder_layers=2, d_ff=12, dropout=0.0,
                            pad_id=0, **kwargs)
    model = Transformer(cfg, rng=rng, dtype=np.float64)
    src = np.array([[3, 4, 5, 6], [2, 5, 0, 0]])           # the second is padded
    tgt = np.array([[1, 6, 5], [1, 5, 2]])
    y = np.array([[6, 5, 4], [5, 2, 0]])                   # the last target is PAD: ignored
    return _model_check(model, rng, lambda: model(src, tgt, y)[1])


@register("Transformer post-LN", "src [2,4], tgt [2,3], d 8")
def _transformer_post(rng):
    return _seq2seq_check(rng, norm="post")


@register("Transformer pre-LN, shared", "src [2,4], tgt [2,3], d 8")
def _transformer_pre_shared(rng):
    return _seq2seq_check(rng, norm="pre", share_embeddings=True)


@register("TransformerEncoderModel", "ids [2,5], d 8, learned pos")
def _transformer_encoder(rng):
    cfg = TransformerEncoderConfig(vocab_size=7, d_model=8, n_head=2, n_layers=2, d_ff=12,
                                   dropout=0.0, max_len=5, positions="learned",
                                   activation="gelu")
    model = TransformerEncoderModel(cfg, rng=rng, dtype=np.float64)
    ids = np.array([[1, 2, 3, 4, 5], [6, 5, 4, 0, 0]])
    y = np.array([[-100, 2, -100, 4, 1], [3, -100, 4, 1, 1]])
    return _model_check(model, rng, lambda: model(ids, np.array([5, 3]), y)[1])


# --- gpt: the loss of a tiny GPT w.r.t. every parameter, for each position scheme
from .nn.gpt import GPT, GPTConfig  # noqa: E402


def _gpt_check(rng, **kwargs):
    cfg = GPTConfig(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dtype="float64",
                    **kwargs)
    model = GPT(cfg, rng=rng)
    x = rng.integers(0, 11, size=(2, 5))
    y = rng.integers(0, 11, size=(2, 5))
    return _model_check(model, rng, lambda: model(x, targets=y)[1])


for _positions in ("learned", "sinusoidal", "rope", "alibi"):
    register(f"GPT ({_positions})", "idx [2, 5], 2 layers, d 8")(
        lambda rng, _p=_positions: _gpt_check(rng, positions=_p))
register("GPT (post-LN, untied)", "idx [2, 5], 2 layers, d 8")(
    lambda rng: _gpt_check(rng, norm="post", tie_weights=False))
