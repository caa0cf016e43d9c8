"""Choosing the next token from the logits: greedy, temperature, top-k, top-p.

Given the logits ``z`` ``[B, V]`` of the last position, the strategies apply in this
order (Hugging Face's order for its logits warpers, so the same settings mean the same
thing in both libraries):

1. **temperature** T: ``z / T``. T < 1 sharpens the distribution, T > 1 flattens it;
   T -> 0 tends to greedy (pass ``greedy=True`` for exactly that; T <= 0 is an error).
2. **top-k**: keep the k largest logits (ties at the k-th value are all kept), the rest
   get probability 0.
3. **top-p** (nucleus, Holtzman et al. 2019): of what is left, keep the smallest set of
   most probable tokens whose total probability reaches p; always at least one token.
   ``top_p=1`` keeps everything.

then sample from ``softmax`` of what remains, drawing one uniform number per row from
an explicit `np.random.Generator` (the same seed gives the same tokens). ``greedy=True``
takes the argmax of the raw logits instead (the first one on a tie) and ignores the
three settings.

>>> import numpy as np
>>> z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
>>> probabilities(z, top_k=3).round(3).tolist()
[[0.526, 0.316, 0.158, 0.0]]
>>> probabilities(z, top_p=0.7).round(3).tolist()         # 0.5 + 0.3 reaches 0.7
[[0.625, 0.375, 0.0, 0.0]]
>>> sample(z, greedy=True).tolist()
[0]
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_sampling", "warp_logits", "probabilities", "sample", "make_rng"]


def check_sampling(temperature=1.0, top_k=None, top_p=None, greedy=False) -> None:
    """Raise ValueError for settings that mean nothing (checked before any work)."""
    if not isinstance(greedy, (bool, np.bool_)):
        raise ValueError(f"greedy must be True or False, got {greedy!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number, got {temperature!r}")
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature} (for the most likely "
                         "token every time, use greedy=True)")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None for no limit), got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be a number in (0, 1] (or None), got {top_p!r}")


def make_rng(rng) -> np.random.Generator:
    """`rng` as a Generator: None gives a fresh unseeded one, an int seeds one."""
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be an np.random.Generator, an int seed or None, got "
                         f"{type(rng).__name__}")
    return rng


def warp_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None) -> np.ndarray:
    """Temperature, then top-k, then top-p, on ``[B, V]`` logits (a float64 copy):
    removed tokens get -inf."""
    z = np.array(logits, dtype=np.float64)                  # a copy: the caller's stays
    if temperature != 1.0:
        z /= temperature
    V = z.shape[-1]
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=-1)[:, V - top_k, None]   # the k-th largest
        z[z < kth] = -np.inf
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-z, axis=-1, kind="stable")      # most probable first
        p_sorted = _softmax(np.take_along_axis(z, order, axis=-1))
        before = np.cumsum(p_sorted, axis=-1) - p_sorted    # mass of the tokens ahead
        drop_sorted = before >= top_p                       # the set already reached p
        drop_sorted[:, 0] = False                           # always keep the best token
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        z[drop] = -np.inf
    return z


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(logits, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> np.ndarray:
    """The distribution ``[B, V]`` (float64) that `sample` draws from."""
    return _softmax(warp_logits(np.atleast_2d(logits), temperature, top_k, top_p))


def sample(logits, *, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, greedy: bool = False,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """The next token of each row of `logits` ``[B, V]``: ids ``[B]`` (int64).

    Sampling draws ``u ~ U[0, 1)`` per row and takes the first token whose cumulative
    probability exceeds ``u`` (inverse transform): one draw per row and step, so a
    seeded `rng` replays exactly.
    """
    logits = np.atleast_2d(logits)
    if greedy:
        return logits.argmax(axis=-1).astype(np.int64)
    probs = probabilities(logits, temperature, top_k, top_p)
    cdf = np.cumsum(probs, axis=-1)                          # [B, V]
    u = make_rng(rng).random(len(cdf))[:, None] * cdf[:, -1:]
    ids = (cdf <= u).sum(axis=-1)                            # first index with cdf > u
    # rounding can leave u == cdf[-1]: fall back to the last token of nonzero probability
    over = ids >= cdf.shape[-1]
    if over.any():
        last = cdf.shape[-1] - 1 - np.argmax(probs[over][:, ::-1] > 0, axis=-1)
        ids[over] = last
    return ids.astype(np.int64)
