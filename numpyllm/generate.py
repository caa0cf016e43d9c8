"""Autoregressive generation: predict a token, append it, predict again.

    ids [B, T] --model--> logits at the last position [B, V] --sample--> next id [B, 1]

(The full set of strategies, the KV cache and stop conditions build on this.)
"""
from __future__ import annotations

import numpy as np

from .autograd import no_grad

__all__ = ["generate"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def generate(model, ids, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
             greedy: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """Continue each row of `ids` ([B, T] or [T]) by `max_new_tokens` tokens; returns a new
    array [B, T + max_new_tokens] (the caller's array is not modified). Sequences longer
    than the model's block_size are cropped to the last block_size tokens as context."""
    ids = np.array(ids, dtype=np.int64)               # a copy: never mutate the caller's
    squeeze = ids.ndim == 1
    ids = ids[None] if squeeze else ids
    if greedy is False and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature} (use greedy=True)")
    rng = np.random.default_rng() if rng is None else rng
    block = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                logits, _ = model(ids[:, -block:])
                last = logits.data[:, -1, :].astype(np.float64)        # [B, V]
                if greedy:
                    nxt = last.argmax(axis=-1)
                else:
                    last = last / temperature
                    if top_k is not None and top_k < last.shape[-1]:
                        kth = np.partition(last, -top_k, axis=-1)[:, -top_k][:, None]
                        last = np.where(last < kth, -np.inf, last)
                    probs = _softmax(last)
                    nxt = np.array([rng.choice(len(p), p=p) for p in probs])
                ids = np.concatenate([ids, nxt[:, None]], axis=1)
    finally:
        model.train(was_training)
    return ids[0] if squeeze else ids
