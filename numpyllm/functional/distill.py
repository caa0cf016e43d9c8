"""The knowledge-distillation loss (Hinton, Vinyals and Dean 2015), as one node.

A student with logits s learns from a teacher's logits t (a constant: the teacher is
not trained) and from the hard labels y. At a temperature T both are softened,

    q = softmax(s / T)        p = softmax(t / T)

and per counted position n (targets equal to `ignore_index` count for nothing):

    KL_n   = Σ_j p_j (log p_j - log q_j)            KL(p_teacher^T || p_student^T) >= 0
    CE_n   = logsumexp(s) - s[y]                    ordinary cross-entropy, at T = 1
    loss_n = α T² KL_n + (1 - α) CE_n
    loss   = mean of loss_n over the counted positions   ("sum", "none": as cross_entropy)

**Why T²**: d KL_n / d s = (q - p) / T. For a large T, with logits of zero mean,
q - p ≈ (s - t) / (T V), so the soft term's gradient shrinks like 1/T²; multiplying it
by T² keeps its weight against the hard term the same whatever T is (Hinton et al. §2).

**Conventions in the literature.** This is Hinton's form with one weight α on the soft
term and 1 - α on the hard one (as the PyTorch knowledge-distillation tutorial, which
uses two free weights). DistilBERT sums weighted KL (×T²), masked-LM and cosine terms
(weights 5, 2, 1); some code omits T², some takes KL's "batchmean" over sequences rather
than tokens (here: a mean over the counted tokens, like the cross-entropy it is mixed
with). MiniLLM (Gu et al. 2024) uses the reverse KL(q || p) and GKD (Agarwal et al. 2024)
a generalised Jensen-Shannon divergence: not these.

**Memory.** The vocabulary can be 50k wide, so the work runs in chunks of rows (about
4M numbers each), and only what backward needs is kept: one ``[n_counted, V]`` array
(the gradient's direction, below), none for ignored positions.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from .embedding import _index_array
from .loss import counted_targets

__all__ = ["distill_loss"]

_REDUCTIONS = ("mean", "sum", "none")
CHUNK_ELEMENTS = 1 << 22          # numbers per chunk of rows (4M: 16 MB in float32)


def _log_softmax_rows(x: np.ndarray) -> np.ndarray:
    """log softmax along the last axis of a [c, V] array, in a new array."""
    z = x - x.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    return z


class DistillLoss(Function):
    # Per counted position n (student logits s, teacher logits t, target y):
    #   d (T² KL_n) / d s = T (q - p)              (d/ds_j log q_k = ([j == k] - q_j) / T)
    #   d CE_n / d s     = softmax(s) - onehot(y)
    # so d loss_n / d s = G_n - (1 - α) onehot(y), with G_n = α T (q - p) + (1 - α) softmax(s).
    # Forward keeps G [n, V] for the counted rows only; backward scales it by each row's
    # upstream weight w_n (g / n for "mean", g for "sum", g_n for "none") and subtracts
    # (1 - α) w_n at the target, as cross_entropy's index trick does (no one-hot).
    @staticmethod
    def forward(ctx, s, t, rows, targets, temperature, alpha, reduction):
        # s, t: [..., V]; rows: [n] flat positions counted; targets: [n] their classes
        V = s.shape[-1]
        s2, t2 = s.reshape(-1, V), t.reshape(-1, V)          # [N, V]
        n = rows.size
        losses = np.zeros(n, dtype=s.dtype)                  # [n] per counted position
        keep = any(ctx.needs_input_grad)
        G = np.empty((n, V), dtype=s.dtype) if keep else None
        T = temperature
        step = max(1, CHUNK_ELEMENTS // V)
        for lo in range(0, n, step):
            r = rows[lo:lo + step]                           # [c]
            part = slice(lo, lo + len(r))
            if alpha < 1.0:                                  # the hard term, at T = 1
                z = s2[r]                                    # [c, V] (a copy: gathered)
                z -= z.max(axis=1, keepdims=True)            # max 0 in each row
                picked = z[np.arange(len(r)), targets[part]]
                np.exp(z, out=z)
                total = z.sum(axis=1)                        # [c], in [1, V]
                ce = np.log(total) - picked                  # [c]
                losses[part] = ce if alpha == 0.0 else (1.0 - alpha) * ce
                if keep:
                    z /= total[:, None]                      # softmax(s)
                    G[part] = z if alpha == 0.0 else (1.0 - alpha) * z
            if alpha > 0.0:                                  # the soft term, at T
                log_q = _log_softmax_rows(s2[r] / T)         # [c, V] student
                log_p = _log_softmax_rows(t2[r] / T)         # [c, V] teacher
                p = np.exp(log_p)
                kl = (p * (log_p - log_q)).sum(axis=1)       # [c]; p = 0 adds 0, not nan
                soft = alpha * T * T * kl
                losses[part] = soft if alpha == 1.0 else losses[part] + soft
                if keep:
                    np.exp(log_q, out=log_q)                 # q
                    log_q -= p                               # q - p
                    log_q *= alpha * T
                    if alpha == 1.0:
                        G[part] = log_q
                    else:
                        G[part] += log_q
        if keep:
            ctx.save_for_backward(G)
            ctx.rows, ctx.targets, ctx.alpha, ctx.reduction = rows, targets, alpha, reduction
            ctx.shape = s.shape
        if reduction == "none":
            out = np.zeros(s2.shape[0], dtype=s.dtype)       # ignored positions: loss 0
            out[rows] = losses
            return out.reshape(s.shape[:-1])                 # [N] -> [...]
        out = losses.sum()
        if reduction == "mean" and n:
            out = out / n
        return np.asarray(out, dtype=s.dtype)

    @staticmethod
    def backward(ctx, g):
        G, = ctx.saved                                       # [n, V]
        rows, targets = ctx.rows, ctx.targets
        N, V = int(np.prod(ctx.shape[:-1])), ctx.shape[-1]
        grad = np.zeros((N, V), dtype=G.dtype)
        if rows.size:
            if ctx.reduction == "none":
                w = np.asarray(g).reshape(-1)[rows]          # [n]
            else:
                w = np.full(rows.size, g / rows.size if ctx.reduction == "mean" else g,
                            dtype=G.dtype)
            grad[rows] = G * w[:, None]                      # a new array: G stays intact
            if ctx.alpha < 1.0:
                grad[rows, targets] -= (1.0 - ctx.alpha) * w
        return grad.reshape(ctx.shape), None, None, None, None, None, None


def distill_loss(student_logits: Tensor, teacher_logits, targets, *,
                 temperature: float = 2.0, alpha: float = 0.5, ignore_index: int = -100,
                 reduction: str = "mean") -> Tensor:
    """``α T² KL(softmax(t/T) || softmax(s/T)) + (1 - α) CE(s, y)`` per position, over
    the positions whose target is not `ignore_index` (see the module doc).

    - `student_logits` ``[..., V]``: a Tensor, the only input with a gradient;
    - `teacher_logits` ``[..., V]``: an array (or Tensor, taken as a constant);
    - `targets` ``[...]``: class indices in [0, V), or `ignore_index`;
    - `temperature` T > 0; `alpha` α in [0, 1] (1: the teacher only; 0: the labels only,
      and at α = 0 the result is `cross_entropy` exactly, whatever T);
    - `reduction`: "mean" (over the counted positions; 0 when none counts), "sum", or
      "none" (per position, 0 where ignored).

    A student that equals its teacher has KL 0 and no gradient from the soft term:

    >>> s = Tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    >>> loss = distill_loss(s, s.data, [0], temperature=3.0, alpha=1.0)
    >>> loss.backward()
    >>> loss.item(), float(np.abs(s.grad).max())
    (0.0, 0.0)
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"distill_loss: reduction must be one of {_REDUCTIONS}, got "
                         f"{reduction!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"distill_loss: temperature must be a finite number > 0, got "
                         f"{temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
            or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill_loss: alpha must be a number in [0, 1], got {alpha!r}")
    s = student_logits if isinstance(student_logits, Tensor) else Tensor(student_logits)
    t = np.asarray(teacher_logits.data if isinstance(teacher_logits, Tensor)
                   else teacher_logits)
    if s.ndim == 0 or t.shape != s.shape:
        raise ValueError(f"distill_loss: student logits {s.shape} and teacher logits "
                         f"{t.shape} must have one shape [..., V] (the same vocabulary)")
    if not np.issubdtype(t.dtype, np.floating):
        raise TypeError(f"distill_loss: teacher logits must be floats, got {t.dtype}")
    targets = _index_array(targets, "distill_loss", "targets (class indices)")
    if targets.shape != s.shape[:-1]:
        raise ValueError(f"distill_loss: logits of shape {s.shape} [..., V] need targets of "
                         f"shape {s.shape[:-1]}, got {targets.shape}")
    rows, kept = counted_targets(targets, s.shape[-1], ignore_index, "distill_loss")
    t = t.astype(s.dtype, copy=False)
    return DistillLoss.apply(s, t, rows, kept, float(temperature), float(alpha), reduction)
