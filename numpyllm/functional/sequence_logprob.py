"""Log-probability of whole sequences (a response given its prompt), as one node.

Preference tuning (DPO) scores a response y to a prompt x by the log-probability the model
gives it, one next-token prediction per response token:

    log π(y|x) = Σ_t  m_t · log softmax(logits_t)[y_t]           (summed)
               = (Σ_t m_t · log softmax(logits_t)[y_t]) / Σ_t m_t  (length-averaged)

where m_t is 1 at the positions whose target is a response token and 0 at prompt and
padding positions (targets equal to `ignore_index`). Composed from primitives this
would build log_softmax [B, T, V], pick, mask and sum: two tensors of the logits' size
in the graph. As one node, forward keeps only the softmax of the counted positions.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from .embedding import _index_array
from .loss import counted_targets

__all__ = ["sequence_logprob"]


class SequenceLogProb(Function):
    # Per counted position n (logits x_n of length V, target t_n, in row b(n)):
    #   logp_n = x_n[t_n] - logsumexp(x_n)
    #   d logp_n / d x_n[j] = [j == t_n] - softmax(x_n)[j]
    # Row b's output is s_b = c_b Σ_{n in b} logp_n with c_b = 1 (sum) or 1/len_b (mean),
    # so with upstream g_b:  d/dx_n = g_b c_b (onehot(t_n) - softmax(x_n)),
    # and 0 at every position that is not counted (prompt, padding).
    @staticmethod
    def forward(ctx, x, rows, targets, owner, scale):
        # x: [B, T, V] logits; rows: [n] flat positions counted; targets: [n] their
        # classes; owner: [n] the row b of each; scale: [B] the c_b above
        B, T, V = x.shape
        z = x.reshape(B * T, V)[rows]               # [n, V] (a copy: gathered)
        z -= z.max(axis=1, keepdims=True)           # max 0 in each row
        picked = z[np.arange(len(rows)), targets]   # [n]
        np.exp(z, out=z)
        total = z.sum(axis=1)                       # [n], in [1, V]
        logp = picked - np.log(total)               # [n]
        out = np.bincount(owner, weights=logp, minlength=B).astype(x.dtype) * scale   # [B]
        if ctx.needs_input_grad[0]:
            z /= total[:, None]                     # [n, V] softmax, in place
            ctx.save_for_backward(z)
            ctx.rows, ctx.targets, ctx.owner, ctx.scale, ctx.shape = \
                rows, targets, owner, scale, x.shape
        return out

    @staticmethod
    def backward(ctx, g):
        probs, = ctx.saved                          # [n, V]
        B, T, V = ctx.shape
        w = (np.asarray(g) * ctx.scale)[ctx.owner]  # [n]: g_b c_b for each position
        grad = np.zeros((B * T, V), dtype=probs.dtype)
        grad[ctx.rows] = probs * -w[:, None]        # -w softmax
        grad[ctx.rows, ctx.targets] += w            # + w onehot
        return grad.reshape(B, T, V), None, None, None, None


def sequence_logprob(logits: Tensor, targets, *, average: bool = False,
                     ignore_index: int = -100) -> Tensor:
    """Per-row log-probability of the targets that count: ``logits [B, T, V]``,
    ``targets [B, T]`` (class indices, `ignore_index` where a position does not count)
    -> ``[B]``, the sum over counted positions of ``log softmax(logits)[target]``, or
    (``average=True``) its mean over them. A row with no counted target gives 0 with a zero
    gradient (an empty sum; its mean is taken as 0 too, not 0/0).

    Errors: ValueError for logits that are not [B, T, V] or targets of another shape;
    IndexError for a target outside [0, V) that is not `ignore_index`.

    >>> logits = Tensor(np.log([[[1., 1.], [1., 3.]]]), requires_grad=True)   # [1, 2, 2]
    >>> logp = sequence_logprob(logits, [[-100, 1]])       # only position 1: log 3/4
    >>> round(logp.item(), 6)
    -0.287682
    >>> logp.backward()
    >>> logits.grad.tolist()                               # onehot - softmax, 0 at position 0
    [[[0.0, 0.0], [-0.25, 0.25]]]
    """
    targets = _index_array(targets, "sequence_logprob", "targets (class indices)")
    shape = np.shape(logits.data if isinstance(logits, Tensor) else logits)
    if len(shape) != 3:
        raise ValueError(f"sequence_logprob: logits must be [B, T, V], got shape {shape}")
    if targets.shape != shape[:2]:
        raise ValueError(f"sequence_logprob: logits of shape {shape} [B, T, V] need targets "
                         f"of shape {shape[:2]}, got {targets.shape}")
    B, T, V = shape
    rows, kept = counted_targets(targets, V, ignore_index, "sequence_logprob")   # [n] each
    owner = rows // T                                            # [n] the row of each
    dtype = logits.dtype if isinstance(logits, Tensor) else np.asarray(logits).dtype
    scale = np.ones(B, dtype=dtype)
    if average:
        scale /= np.maximum(np.bincount(owner, minlength=B), 1)
    return SequenceLogProb.apply(logits, rows, kept, owner, scale)
