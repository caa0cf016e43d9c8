"""Cross-entropy of logits against integer class targets, as one node."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..parallel import for_slices
from .embedding import _index_array

__all__ = ["cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


# rows of logits are processed in chunks of about this many elements (4 MB of float32):
# a chunk's scratch comes back from malloc's heap at every call, where a whole [N, V]
# temporary (200 MB at GPT-2's vocabulary) would be fresh pages the kernel zero-fills
# first, every step: that cost more than all of the arithmetic
_CHUNK_ELEMENTS = 1 << 20
# below this many logits the work stays on one thread (threads cost ~10 µs each)
_PARALLEL_MIN = 1 << 18


def _row_chunks(sl: slice, V: int):
    """``(r0, r1)`` ranges covering the rows of `sl`, ~`_CHUNK_ELEMENTS` logits each."""
    step = max(1, _CHUNK_ELEMENTS // V)
    for r0 in range(sl.start, sl.stop, step):
        yield r0, min(r0 + step, sl.stop)


class CrossEntropy(Function):
    # Per row n (logits x_n of length V, target t_n), with m_n = max_j x_nj:
    #   loss_n = -log softmax(x_n)[t_n] = log Σ_j exp(x_nj - m_n) - (x_n[t_n] - m_n)
    #   d loss_n / d x_n[j] = softmax(x_n)[j] - [j == t_n]
    # so the gradient is the softmax with 1 subtracted at the target: the "index trick"
    # subtracts at (n, t_n) by fancy indexing instead of building a one-hot [N, V].
    # Each row's gradient is scaled by its upstream weight w_n: g / n_valid for "mean",
    # g for "sum", g_n for "none", and 0 for an ignored row.
    #
    # Label smoothing ε (Szegedy et al. 2016) aims at (1 - ε) onehot + ε/V instead:
    #   loss_n = logsumexp(x_n) - (1 - ε) x_n[t_n] - (ε/V) Σ_j x_n[j]
    #   d loss_n / d x_n[j] = softmax(x_n)[j] - (1 - ε)[j == t_n] - ε/V
    #
    # Memory: forward keeps only m [N] and s = Σ_j exp(x_nj - m_n) [N] beside a reference
    # to the logits themselves (not a copy: the array the head produced); backward
    # recomputes the softmax exp(x - m) / s into the gradient's own array. Rows are
    # independent: chunks of rows run on `numpyllm.parallel`'s threads, and every row's
    # figures are the same however the rows are split.
    @staticmethod
    def forward(ctx, x, rows, targets, reduction, smoothing):
        # x: [..., V] logits; rows: [n_valid] flat positions not ignored;
        # targets: [n_valid] their classes, in [0, V)
        x2 = x.reshape(-1, x.shape[-1])             # [..., V] -> [N, V] (a view)
        N, V = x2.shape
        m = np.empty(N, dtype=x.dtype)              # [N]: each row's max
        s = np.empty(N, dtype=x.dtype)              # [N]: sum_j exp(x_nj - m_n), in [1, V]
        means = np.empty(N, dtype=x.dtype) if smoothing else None

        def piece(sl):
            for r0, r1 in _row_chunks(sl, V):
                chunk = x2[r0:r1]                   # [r, V]
                m[r0:r1] = chunk.max(axis=1)
                z = chunk - m[r0:r1, None]          # [r, V] scratch, max 0 in each row
                if means is not None:
                    means[r0:r1] = z.mean(axis=1)
                np.exp(z, out=z)
                z.sum(axis=1, out=s[r0:r1])
        for_slices(N, piece, min_work=_PARALLEL_MIN, work_per_item=V)
        picked = x2[rows, targets] - m[rows]        # [n_valid]: z_n[t_n]
        if smoothing:                               # the max cancels: (1-ε) + V ε/V = 1
            picked = (1.0 - smoothing) * picked + smoothing * means[rows]
        losses = np.log(s[rows]) - picked           # [n_valid]
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(x2, m, s)
            ctx.rows, ctx.targets, ctx.reduction = rows, targets, reduction
            ctx.shape, ctx.smoothing = x.shape, smoothing
        if reduction == "none":
            out = np.zeros(N, dtype=x.dtype)        # ignored positions: loss 0
            out[rows] = losses
            return out.reshape(x.shape[:-1])        # [N] -> [...]
        out = losses.sum()
        if reduction == "mean" and rows.size:
            out = out / rows.size
        return np.asarray(out, dtype=x.dtype)

    @staticmethod
    def backward(ctx, g):
        x2, m, s = ctx.saved                        # [N, V], [N], [N]
        rows, targets = ctx.rows, ctx.targets
        N, V = x2.shape
        w = np.zeros(N, dtype=x2.dtype)             # [N], 0 on ignored rows
        if ctx.reduction == "none":
            w[rows] = g.reshape(-1)[rows]           # [...] -> [N]
        elif rows.size:
            w[rows] = g / rows.size if ctx.reduction == "mean" else g
        grad = np.empty_like(x2)                    # [N, V]

        def piece(sl):                              # grad = exp(x - m) / s * w, by rows
            out = grad[sl]                          # (the softmax first, then the weight:
            np.subtract(x2[sl], m[sl, None], out=out)   # the order distill_loss uses too)
            np.exp(out, out=out)
            out /= s[sl, None]
            out *= w[sl, None]
        for_slices(N, piece, min_work=_PARALLEL_MIN, work_per_item=V)
        eps = ctx.smoothing
        grad[rows, targets] -= (1.0 - eps) * w[rows]
        if eps:                                     # w is 0 on ignored rows: no gather
            grad -= (eps / V) * w[:, None]
        return grad.reshape(ctx.shape), None, None, None, None


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between `logits` [..., V] and integer `targets` [...], as one node:
    ``-log softmax(logits)[..., targets]``, stable for any finite logits.

    `targets` is an int array (or int Tensor, or list) of class indices in [0, V);
    positions equal to `ignore_index` (default -100, as in PyTorch) count for nothing.
    `reduction`: "mean" (over the targets that are not ignored), "sum", or "none" (the
    loss per position, shape [...], 0 at ignored positions).
    `label_smoothing` ε in [0, 1]: the target distribution is (1 - ε) on the class and ε/V
    spread over all V classes, as PyTorch's ``label_smoothing``.

    When every target is ignored, "mean" gives a loss of 0 with a zero gradient (PyTorch
    gives nan, from 0/0): a batch made entirely of padding then does not poison a run.

    Errors: ValueError when targets.shape != logits.shape[:-1] or for an unknown
    reduction; IndexError for a target outside [0, V) that is not `ignore_index`;
    TypeError for float targets (this function takes class indices, not probabilities).

    >>> logits = Tensor([[0.0, 0.0], [0.0, np.log(3.0)]], requires_grad=True)
    >>> loss = cross_entropy(logits, [0, 1])      # (ln 2 + ln(4/3)) / 2
    >>> round(loss.item(), 6)
    0.490415
    >>> loss.backward()
    >>> logits.grad.round(3).tolist()             # (softmax - onehot) / 2
    [[-0.25, 0.25], [0.125, -0.125]]
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, "
                         f"got {reduction!r}")
    if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"cross_entropy: label_smoothing must be a number in [0, 1], "
                         f"got {label_smoothing!r}")
    targets = _index_array(targets, "cross_entropy", "targets (class indices)")
    shape = np.shape(logits.data if isinstance(logits, Tensor) else logits)
    if len(shape) == 0 or targets.shape != shape[:-1]:
        raise ValueError(f"cross_entropy: logits of shape {shape} [..., V] need targets of "
                         f"shape {shape[:-1]}, got targets of shape {targets.shape}")
    rows, kept = counted_targets(targets, shape[-1], ignore_index, "cross_entropy")
    return CrossEntropy.apply(logits, rows, kept, reduction, float(label_smoothing))


def counted_targets(targets: np.ndarray, V: int, ignore_index: int, fn: str):
    """``(rows, kept)``: the flat positions whose target is not `ignore_index` and those
    targets, each checked to lie in [0, V) (an IndexError naming `fn` otherwise)."""
    flat = targets.reshape(-1)                                  # [N]
    rows = np.flatnonzero(flat != ignore_index)                 # [n_valid]
    kept = flat[rows]
    bad = (kept < 0) | (kept >= V)
    if bad.any():
        raise IndexError(f"{fn}: target {kept[np.argmax(bad)]} is out of range for "
                         f"V={V} classes (targets must be in [0, {V}) or ignore_index="
                         f"{ignore_index})")
    return rows, kept
