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
                         log_softmax, softmax)


def _leaf(rng, *shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


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
