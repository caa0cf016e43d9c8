"""HotFlip (Ebrahimi et al. 2018): the fewest token substitutions that flip a classifier's
prediction, guided by the gradient with respect to the token choices.

**The estimate.** For a message ``x`` with label ``y`` (the model's own prediction by
default), swapping token ``x_t`` for ``v`` changes the loss ``L = CE(model(x), y)`` by

    ΔL(t, v)  ≈  (E[v] - E[x_t]) · ∂L/∂e_t          (`input_grad.swap_scores`)

one backward pass scores every (position, token) pair at once. The flip that raises the
loss most is the most promising; the estimate is only first order, so each proposal is
then **verified exactly** (a forward pass of the edited message).

**The search.** Greedy (``beam=1``): take the best-estimated swap, run the edited
message, stop if the prediction left ``y``, else keep the swap and repeat from the
edited message, up to `max_edits`. Beam search of width b (the paper's): each of the b
messages kept proposes its b best-estimated swaps; all b² are run exactly; a flipped one
ends the search (the one with the highest loss, at this number of edits: the fewest);
otherwise the b with the highest exact loss (distinct) are kept. Ranking the kept
messages by the exact loss, not by summed estimates as the paper does, costs one forward
pass per proposal and is never misled by a poor estimate. A position is edited at most
once, so "edits" counts changed positions.

**What is never touched.** Padding (`lengths` or `mask`; the message is attacked
unpadded, which gives the classifier's exact logits, and written back in place), the
first real token with ``keep_first`` (a [CLS], a BOS), and no swap ever proposes a token
of the `forbidden` set (special tokens, an [UNK]) or outside the model's vocabulary.

>>> import numpy as np
>>> from numpyllm.nn import ClassifierConfig, GPTConfig, SequenceClassifier
>>> cfg = ClassifierConfig("GPT", GPTConfig(vocab_size=11, block_size=8, n_layer=1,
...                        n_head=2, n_embd=8).to_dict(), n_classes=2)
>>> model = SequenceClassifier(cfg, rng=0)
>>> [r] = hotflip(model, np.array([[3, 4, 5, 6, 0]]), lengths=np.array([4]), max_edits=3,
...               forbidden=[0])
>>> int(r.ids[4]), r.label_before == r.label, r.edits <= 3, all(new != 0 for _, _, new in r.swaps)
(0, True, True, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autograd import no_grad
from ..functional import cross_entropy
from .embedding_attack import real_positions
from .input_grad import input_gradient, swap_scores, token_table

__all__ = ["HotFlipResult", "hotflip"]


@dataclass
class HotFlipResult:
    """One message's attack. `ids`: the message as given (same length and padding) with
    the substitutions made; `swaps`: ``(position, old id, new id)`` in that row, in the
    order made; `label`: the label attacked (the prediction moved away from);
    `label_before` / `label_after`: the model's predictions on the clean and the returned
    ids; `flipped`: ``label_after != label``; `edits`: ``len(swaps)`` (when the attack
    fails: the most damaging message found, with up to max_edits swaps)."""

    flipped: bool
    edits: int
    ids: np.ndarray
    label: int
    label_before: int
    label_after: int
    swaps: list = field(default_factory=list)
    loss_before: float = 0.0
    loss_after: float = 0.0


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"hotflip: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def _exact(model, seqs: np.ndarray, label: int | None) -> tuple:
    """``(loss [N], prediction [N])`` of N unpadded messages of one length; `label` None:
    each message's own prediction."""
    with no_grad():
        logits, _ = model(seqs)                                          # [N, K]
    predicted = logits.data.argmax(axis=-1)
    labels = predicted if label is None else np.full(len(seqs), label)
    losses = cross_entropy(logits, labels, reduction="none").data
    return np.asarray(losses, dtype=np.float64).reshape(-1), predicted


def hotflip(model, ids, lengths=None, labels=None, *, mask=None, max_edits: int = 3,
            beam: int = 1, forbidden=(), keep_first: bool = False) -> list:
    """Attack each row of `ids` ``[B, T]`` (a batch for a `SequenceClassifier`, padded as
    its `lengths` ``[B]`` or `mask` ``[B, T]`` say); returns one `HotFlipResult` per row.

    `labels` ``[B]``: the labels to move the prediction away from (default: the model's
    own predictions; a row already predicted otherwise counts as flipped with 0 edits).
    `max_edits`: most substitutions; `beam`: the search's width (1: greedy);
    `forbidden`: token ids never proposed; `keep_first`: never edit the first real token.
    The model runs in eval mode (restored after); its weights and ``.grad`` are untouched.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"hotflip: ids must be integers [B, T], got {ids.dtype} of shape "
                         f"{ids.shape}")
    max_edits, beam = _positive("max_edits", max_edits), _positive("beam", beam)
    table = token_table(model)                                           # [V, C]
    V = len(table)
    valid = real_positions(ids.shape, lengths, mask)                     # [B, T]
    if (ids[valid] < 0).any() or (ids[valid] >= V).any():
        raise ValueError(f"hotflip: token ids must lie in the model's vocabulary [0, {V})")
    if not valid.any(axis=1).all():
        raise ValueError("hotflip: every row needs a real token")
    banned = np.zeros(V, dtype=bool)
    for t in forbidden:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < V:
            raise ValueError(f"hotflip: forbidden token {t!r} is not an id in [0, {V})")
        banned[t] = True
    if banned.all():
        raise ValueError("hotflip: every token is forbidden: nothing to swap in")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != ids.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"hotflip: labels must be integers [B] = ({len(ids)},), got "
                             f"{labels.shape}")
    was_training = model.training
    model.eval()                                                  # no dropout: exact answers
    try:
        results = []
        for b in range(len(ids)):
            where = np.flatnonzero(valid[b])                             # real positions
            label = None if labels is None else int(labels[b])
            results.append(_attack_one(model, table, banned, ids[b], where, label,
                                       max_edits, beam, keep_first))
        return results
    finally:
        model.train(was_training)


def _attack_one(model, table, banned, row, where, label, max_edits, beam, keep_first):
    seq = row[where].astype(np.int64)                                    # [L], unpadded
    L = len(seq)
    K = model.config.n_classes
    if label is not None and not 0 <= label < K:
        raise ValueError(f"hotflip: label {label} is not a class of the model [0, {K})")
    loss0, before = _exact(model, seq[None], label)
    before = int(before[0])
    label = before if label is None else label

    def result(s, swaps, loss, predicted):
        out = row.copy()
        out[where] = s
        return HotFlipResult(bool(predicted != label), len(swaps), out, label, before,
                             int(predicted), [(int(where[p]), int(o), int(n))
                                              for p, o, n in swaps],
                             float(loss0[0]), float(loss))

    if before != label:                                          # already not `label`
        return result(seq, [], loss0[0], before)
    editable = np.ones(L, dtype=bool)
    if keep_first:
        editable[0] = False
    # the search's state: (message [L], swaps so far as (index into seq, old, new))
    beams = [(seq, [])]
    best = (seq, [], loss0[0], before)
    for _ in range(max_edits):
        seqs = np.stack([s for s, _ in beams])                           # [nb, L]
        _, grad = input_gradient(model, seqs, lambda e: model(
            inputs_embeds=e, labels=np.full(len(seqs), label))[1])       # [nb, L, C]
        scores = swap_scores(grad, table, seqs)                          # [nb, L, V]
        scores[:, :, banned] = -np.inf
        np.put_along_axis(scores, seqs[..., None], -np.inf, axis=-1)    # no swap to itself
        scores[:, ~editable] = -np.inf
        for i, (_, swaps) in enumerate(beams):
            for p, _, _ in swaps:
                scores[i, p] = -np.inf                                   # edited once
        proposals = []                                                   # [(beam, pos, tok)]
        for i in range(len(beams)):
            flat = scores[i].reshape(-1)
            top = np.argsort(-flat, kind="stable")[:beam]
            proposals += [(i, *divmod(int(j), len(table))) for j in top
                          if np.isfinite(flat[j])]
        if not proposals:
            break                                                        # nothing to edit
        candidates = []
        for i, p, v in proposals:
            s = beams[i][0].copy()
            old, s[p] = s[p], v
            candidates.append((s, beams[i][1] + [(p, old, v)]))
        losses, predicted = _exact(model, np.stack([s for s, _ in candidates]), label)
        order = np.argsort(-losses, kind="stable")
        flipped = [j for j in order if predicted[j] != label]
        if flipped:
            j = flipped[0]
            return result(candidates[j][0], candidates[j][1], losses[j], predicted[j])
        beams, seen = [], set()
        for j in order:                                  # the b best distinct messages
            key = candidates[j][0].tobytes()
            if key not in seen:
                seen.add(key)
                beams.append(candidates[j])
            if len(beams) == beam:
                break
        j = order[0]
        best = (candidates[j][0], candidates[j][1], losses[j], predicted[j])
    return result(*best)
