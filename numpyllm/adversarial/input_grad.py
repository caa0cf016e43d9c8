"""Gradients with respect to the input: the vectors a model reads, and the token choices.

A model reads ids through a lookup, ``e_t = E[x_t]`` (``E [V, C]``: the rows
`token_embeddings` gives). Write the lookup as a product with a one-hot row,
``e_t = onehot(x_t) · E``; the one-hot is then an input like any other, and

    ∂L/∂onehot(x_t) = ∂L/∂e_t · Eᵀ                    [C] · [C, V] -> [V]

is the gradient with respect to every token choice at position t at once (GCG, HotFlip).
Its entries differ by a constant from the first-order estimate of swapping ``x_t`` for
token v:

    L(x with x_t := v) - L(x)  ≈  (E[v] - E[x_t]) · ∂L/∂e_t
                               =  ∂L/∂onehot(x_t)[v] - ∂L/∂onehot(x_t)[x_t]

which is what `swap_scores` returns (0 at the current token; negative where the swap is
predicted to lower the loss). It is a first-order estimate only: attacks use it to
propose candidates and then evaluate them exactly.

    >>> import numpy as np
    >>> from numpyllm.nn.gpt import GPT, GPTConfig
    >>> model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8), rng=0)
    >>> ids, y = np.array([[1, 2, 3]]), np.array([[2, 3, 4]])
    >>> loss, grad = input_gradient(model, ids, lambda e: model(inputs_embeds=e, targets=y)[1])
    >>> grad.shape, swap_scores(grad, token_table(model), ids).shape
    ((1, 3, 8), (1, 3, 11))
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, no_grad

__all__ = ["token_table", "input_gradient", "one_hot_gradient", "swap_scores"]


def token_table(model) -> np.ndarray:
    """``E [V, C]``: row v is the vector `model` reads for token v (its
    ``token_embeddings``: the embedding row, times √d_model for the scaled encoder)."""
    if not hasattr(model, "token_embeddings"):
        raise TypeError(f"token_table: {type(model).__name__} has no token_embeddings")
    cfg = getattr(model, "backbone", model).config
    V = cfg.vocab_size
    with no_grad():
        return model.token_embeddings(np.arange(V)[:, None]).data[:, 0]  # [V, 1, C] -> [V, C]


def input_gradient(model, ids, loss_fn) -> tuple:
    """``(loss, ∂loss/∂e [B, T, C])`` where ``e = model.token_embeddings(ids)`` and
    ``loss = loss_fn(e)`` (a scalar Tensor: ``loss_fn`` runs the model on
    ``inputs_embeds=e``). The parameters' gradients are left as they were: the weights
    are fixed, only the input is differentiated."""
    with no_grad():
        e0 = model.token_embeddings(ids).data                            # [B, T, C]
    e = Tensor(e0.copy(), requires_grad=True)
    frozen = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    for p, _, _ in frozen:                # no parameter gradient: faster, and theirs kept
        p.requires_grad = False
    try:
        loss = loss_fn(e)
        if not isinstance(loss, Tensor) or loss.data.size != 1:
            raise ValueError("input_gradient: loss_fn must return a scalar Tensor")
        loss.backward()
    finally:
        for p, requires, grad in frozen:
            p.requires_grad, p.grad = requires, grad
    return float(loss.data), e.grad


def one_hot_gradient(grad: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``∂L/∂onehot [B, T, V] = ∂L/∂e [B, T, C] · Eᵀ [C, V]``."""
    return grad @ table.T


def swap_scores(grad: np.ndarray, table: np.ndarray, ids) -> np.ndarray:
    """``[B, T, V]``: the first-order estimate of the loss change when position t's token
    becomes v, ``(E[v] - E[x_t]) · ∂L/∂e_t`` (0 at the current token)."""
    ids = np.asarray(ids)
    g = one_hot_gradient(grad, table)                                    # [B, T, V]
    current = np.take_along_axis(g, ids[..., None], axis=-1)             # [B, T, 1]
    return g - current
