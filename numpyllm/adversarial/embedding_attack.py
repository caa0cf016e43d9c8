"""Adversarial perturbations in embedding space: PGD (Madry et al. 2018) and FreeLB's
ascent path (Zhu et al. 2020), against a classifier.

Text is discrete, but a model reads vectors: ``e = model.token_embeddings(ids)``
``[B, T, C]`` (see `numpyllm.adversarial.input_grad`). An attacker in embedding space
may move those vectors by a perturbation ``δ [B, T, C]`` inside a ball of radius ε:

    maximise  L(θ; e + δ, y)   over  δ  with  ‖δ_b‖ ≤ ε  for every row b, δ = 0 at padding

**PGD** (projected gradient ascent) takes K steps of size α from δ_0 (zero, or a random
point of the ball with ``random_start``); each step follows the gradient ``g = ∂L/∂δ``
(from the model's ``inputs_embeds`` path) and projects back onto the ball:

    L2:  δ ← Π(δ + α g / ‖g‖₂)      Π(δ) = δ · min(1, ε / ‖δ‖₂)
    L∞:  δ ← Π(δ + α sign(g))       Π(δ) = clip(δ, -ε, ε)

Norms are per row (a message), over all its real positions and channels: ‖δ_b‖₂ is
the Frobenius norm of ``δ[b]`` ``[T, C]`` (as FreeLB's code), ‖δ_b‖∞ its largest entry.
So an L2 budget is shared by the whole message; an L∞ budget is per coordinate.
Padding positions (``lengths``/``mask``) are zero at every step: the attack moves only
the vectors of real tokens.

`pgd` returns every iterate ``δ_0 .. δ_K``: PGD trains on the last one, FreeLB on the
mean of the losses at ``δ_0 .. δ_{K-1}`` (`numpyllm.training.objectives.adversarial`).
The weights are fixed here: only δ is differentiated (and the parameters' ``.grad`` are
left as they were).

    >>> import numpy as np
    >>> from numpyllm.nn import ClassifierConfig, GPTConfig, SequenceClassifier
    >>> cfg = ClassifierConfig("GPT", GPTConfig(vocab_size=11, block_size=8, n_layer=1,
    ...                        n_head=2, n_embd=8).to_dict(), n_classes=2)
    >>> model = SequenceClassifier(cfg, rng=0)
    >>> ids, lengths, y = np.array([[3, 4, 5, 0], [6, 7, 8, 9]]), np.array([3, 4]), np.array([1, 0])
    >>> path = pgd(model, ids, y, lengths=lengths, epsilon=0.5, steps=3)
    >>> len(path), path[-1].shape, bool(np.abs(path[-1][0, 3]).max() == 0)
    (4, (2, 4, 8), True)
    >>> bool(np.sqrt((path[-1] ** 2).sum(axis=(1, 2))).max() <= 0.5 + 1e-6)
    True
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, enable_grad
from .input_grad import input_gradient

__all__ = ["NORMS", "real_positions", "project", "ascent_step", "random_start", "pgd"]

NORMS = ("l2", "linf")
_TINY = 1e-12                    # a zero gradient (or δ) has no direction: divide by this


def _check(epsilon, norm) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) \
            or not np.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")


def real_positions(shape: tuple, lengths=None, mask=None) -> np.ndarray:
    """bool ``[B, T]``: True at real tokens, from `lengths` ``[B]`` (right padding) or
    `mask` ``[B, T]`` (True/1 at real tokens, either side); all True with neither. (The
    classifier checks the values themselves when it runs.)"""
    B, T = shape
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (B, T):
            raise ValueError(f"mask must have shape [B, T] = {(B, T)}, got {mask.shape}")
        return mask.astype(bool)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths must have shape [B] = ({B},), got {lengths.shape}")
        return np.arange(T)[None, :] < lengths[:, None]
    return np.ones((B, T), dtype=bool)


def _row_l2(x: np.ndarray) -> np.ndarray:
    """‖x_b‖₂ over each row's [T, C], shaped [B, 1, 1] to broadcast."""
    return np.sqrt((x * x).sum(axis=(1, 2), keepdims=True))


def project(delta: np.ndarray, epsilon: float, norm: str, valid: np.ndarray) -> np.ndarray:
    """δ ``[B, T, C]`` projected onto the ball of radius ε (each row), zero at padding
    (`valid` ``[B, T]`` False). A new array."""
    _check(epsilon, norm)
    delta = delta * valid[:, :, None]                                    # [B, T, C]
    if norm == "linf":
        return np.clip(delta, -epsilon, epsilon)
    return delta * np.minimum(1.0, epsilon / np.maximum(_row_l2(delta), _TINY))


def ascent_step(delta: np.ndarray, grad: np.ndarray, alpha: float, epsilon: float,
                norm: str, valid: np.ndarray) -> np.ndarray:
    """One PGD step: ``Π(δ + α g/‖g‖₂)`` (L2) or ``Π(δ + α sign(g))`` (L∞). Normalising
    the gradient makes the step length α whatever the loss's scale (and the batch's:
    a mean loss divides each row's gradient by B)."""
    grad = grad * valid[:, :, None]
    if norm == "linf":
        step = np.sign(grad)
    else:
        step = grad / np.maximum(_row_l2(grad), _TINY)
    return project(delta + alpha * step, epsilon, norm, valid)


def random_start(shape: tuple, epsilon: float, norm: str, valid: np.ndarray,
                 seeds) -> np.ndarray:
    """A random δ_0 in the ball, zero at padding: L∞ uniform in [-ε, ε] per coordinate;
    L2 a uniform direction (a normalised Gaussian) at a radius uniform in [0, ε]. Row b
    draws from ``np.random.default_rng(seeds[b])``, so a row's start depends on its seed
    only, not on which other rows share its batch (data-parallel slices, resume)."""
    _check(epsilon, norm)
    B, T, C = shape
    seeds = np.asarray(seeds)
    if seeds.shape != (B,):
        raise ValueError(f"random_start: seeds must have shape [B] = ({B},), got {seeds.shape}")
    delta = np.empty(shape)
    for b in range(B):
        rng = np.random.default_rng(int(seeds[b]))
        if norm == "linf":
            delta[b] = rng.uniform(-epsilon, epsilon, size=(T, C))
        else:
            d = rng.standard_normal((T, C)) * valid[b, :, None]
            delta[b] = d * (epsilon * rng.uniform() / max(np.sqrt((d * d).sum()), _TINY))
    return project(delta, epsilon, norm, valid)


def pgd(model, ids, labels, *, lengths=None, mask=None, epsilon: float, norm: str = "l2",
        steps: int = 3, alpha: float | None = None, seeds=None) -> list:
    """PGD against a `SequenceClassifier`: the iterates ``[δ_0, δ_1, ..., δ_K]`` (each
    ``[B, T, C]`` in the model's dtype, zero at padding, inside the ball) that raise the mean
    cross-entropy of `labels` ``[B]`` on ``model(inputs_embeds=e + δ, lengths, mask)``.

    `alpha`: the step size (default 2.5 ε / K, Madry et al.'s choice: K steps can reach
    the boundary and move along it); `seeds` ``[B]``: a random start per row (None: δ_0
    = 0). The model runs in the mode it is in (training mode: dropout, as FreeLB); only
    δ is differentiated, the weights are constants and their ``.grad`` untouched.
    """
    _check(epsilon, norm)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"pgd: steps must be an integer >= 0, got {steps!r}")
    alpha = 2.5 * epsilon / max(steps, 1) if alpha is None else alpha
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"pgd: alpha must be a finite number > 0, got {alpha!r}")
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"pgd: ids must be [B, T], got shape {ids.shape}")
    labels = np.asarray(labels)
    valid = real_positions(ids.shape, lengths, mask)                     # [B, T]
    probe = model.token_embeddings(ids[:1, :1])                          # [1, 1, C]
    shape, dtype = ids.shape + probe.shape[-1:], probe.dtype             # [B, T, C]
    delta = np.zeros(shape, dtype) if seeds is None else \
        random_start(shape, epsilon, norm, valid, seeds).astype(dtype)
    path = [delta]
    with enable_grad():                 # also inside an evaluation's no_grad
        for _ in range(steps):
            d = Tensor(delta)                                            # a constant
            _, grad = input_gradient(model, ids, lambda e: model(
                inputs_embeds=e + d, lengths=lengths, labels=labels, mask=mask)[1])
            delta = ascent_step(delta, grad, alpha, epsilon, norm, valid)
            path.append(delta)
    return path
