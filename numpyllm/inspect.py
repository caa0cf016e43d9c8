"""Looking inside a model: the attention weights of every layer, for study and plots.

`MultiHeadAttention` returns its weights when asked (``return_weights=True``), but a
model calls its layers itself. `record_attention` asks for them on the model's behalf:
inside the ``with`` block every `MultiHeadAttention` of the model returns its output as
usual and, on the side, appends its weights ``[B, n_head, Tq, Tk]`` (the softmax, before
dropout) to a list under the layer's dotted name. Nothing in the model's code changes
and nothing stays changed: on leaving the block the layers are as they were.

    >>> import numpy as np
    >>> from numpyllm.nn import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8),
    ...             rng=np.random.default_rng(0))
    >>> maps = attention_maps(model, np.array([[1, 2, 3]]))
    >>> {name: w.shape for name, w in maps.items()}
    {'h.0.attn': (1, 2, 3, 3), 'h.1.attn': (1, 2, 3, 3)}
    >>> bool(np.allclose(maps["h.0.attn"].sum(axis=-1), 1.0))     # each row a distribution
    True

It works for any model built from `MultiHeadAttention` (GPT, the encoder-decoder
`Transformer`, whose decoder layers hold ``self_attn`` and ``cross_attn``, the
encoder-only model). The weights are those of the standard attention path, which
`MultiHeadAttention` always takes.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .autograd import no_grad
from .nn.attention import MultiHeadAttention

__all__ = ["record_attention", "attention_maps"]


def _attention_layers(model) -> list:
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MultiHeadAttention layer to record")
    return layers


def _recording_forward(layer: MultiHeadAttention, calls: list):
    """`layer.forward` that also appends a copy of its weights to `calls`."""
    forward = type(layer).forward

    def recorded(*args, return_weights: bool = False, **kwargs):
        out, weights = forward(layer, *args, return_weights=True, **kwargs)
        calls.append(np.array(weights))               # a writable copy: the layer's is read-only
        return (out, weights) if return_weights else out
    return recorded


@contextmanager
def record_attention(model):
    """Within the block, every `MultiHeadAttention` of `model` records its weights.

    Yields a dict ``{dotted layer name: [weights of each call, in call order]}``, each
    ``[B, n_head, Tq, Tk]``. One forward pass makes one entry per layer; decoding with a
    KV cache makes one per step. The layers are restored on exit, also after an error.
    """
    layers = _attention_layers(model)
    maps = {name: [] for name, _ in layers}
    for name, layer in layers:
        # an instance attribute shadows the class's forward, which Module.__call__ calls
        layer.forward = _recording_forward(layer, maps[name])
    try:
        yield maps
    finally:
        for _, layer in layers:
            vars(layer).pop("forward", None)


def attention_maps(model, *inputs, **kwargs) -> dict:
    """``{layer name: weights [B, n_head, Tq, Tk]}`` of one forward pass
    ``model(*inputs, **kwargs)``, run in evaluation mode (no dropout) without building a
    graph. The model's training mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with no_grad(), record_attention(model) as maps:
            model(*inputs, **kwargs)
    finally:
        model.train(was_training)
    return {name: calls[-1] for name, calls in maps.items() if calls}
