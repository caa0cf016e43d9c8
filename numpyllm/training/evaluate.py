"""Evaluating a model on a whole data set: mean loss, perplexity, accuracy.

Perplexity is exp(mean cross-entropy in nats): the effective number of equally likely
next tokens; bits per byte is the total in bits over the text's UTF-8 bytes.
`evaluate_tokens` predicts every token of a text exactly once, in sliding windows with a
stride, so its figure does not depend on how batches were sampled. `evaluate_objective` scores any objective
the same way (for masked LM, the accuracy of the masked tokens; for classification, of
the labels), and `exact_match` decodes an encoder-decoder's outputs and compares them
whole with the targets.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..functional import cross_entropy

__all__ = ["perplexity", "evaluate_tokens", "sliding_windows", "bits_per_byte", "evaluate_objective", "exact_match"]


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy in nats): the effective number of equally likely next tokens."""
    return math.exp(loss) if loss < 700 else float("inf")


def sliding_windows(n_pred: int, context: int, stride: int | None = None) -> list:
    """The windows of the sliding-window recipe over a text of ``n_pred + 1`` tokens,
    as ``(begin, end, scored)``: the window reads tokens ``begin .. end-1`` (at most
    `context` of them) to predict tokens ``begin+1 .. end``, and only its last `scored`
    predictions count, those the previous window did not make. Windows start every
    `stride` tokens, so after the first one each counted token has at least
    ``context - stride + 1`` tokens of left context; every token 1..n_pred is counted
    exactly once. stride == context: non-overlapping windows.

    >>> sliding_windows(10, 4, 2)
    [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    >>> sliding_windows(10, 4)
    [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    """
    stride = context if stride is None else stride
    if context < 1 or not 1 <= stride <= context:
        raise ValueError(f"sliding windows need 1 <= stride <= context, got stride {stride}, "
                         f"context {context}")
    windows, prev_end = [], 0
    for begin in range(0, n_pred, stride):
        end = min(begin + context, n_pred)
        windows.append((begin, end, end - prev_end))
        prev_end = end
        if end == n_pred:
            break
    return windows


def evaluate_tokens(model, tokens, *, batch_size: int = 32, block_size: int | None = None,
                    stride: int | None = None) -> dict:
    """Mean cross-entropy of `model` over a whole token array, each token after the
    first predicted exactly once, with sliding windows (the Hugging Face perplexity
    recipe, `sliding_windows`): windows of `block_size` tokens (the model's context by
    default) start every `stride` tokens, and each counts only the tokens the previous
    window did not. ``stride == block_size`` (the default) cuts the text into
    non-overlapping windows; a smaller stride gives every token more left context, at
    ``block_size / stride`` times the cost.

    Returns ``{"loss", "perplexity", "tokens", "nats", "windows"}``: the mean and the total
    loss in nats over the ``len(tokens) - 1`` predicted tokens, and how many windows were
    run. Deterministic: no sampling.
    """
    tokens = np.asarray(tokens)
    T = block_size or model.config.block_size
    n_pred = len(tokens) - 1
    if n_pred < 1:
        raise ValueError(f"evaluation needs at least 2 tokens, got {len(tokens)}")
    windows = sliding_windows(n_pred, T, stride)
    total, count = 0.0, 0
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with no_grad():
            # windows of the same length go through the model together
            by_length: dict = {}
            for w in windows:
                by_length.setdefault(w[1] - w[0], []).append(w)
            for L, group in by_length.items():
                for start in range(0, len(group), batch_size):
                    rows = group[start:start + batch_size]
                    x = np.stack([tokens[b:e] for b, e, _ in rows]).astype(np.int64)  # [B, L]
                    y = np.stack([tokens[b + 1:e + 1] for b, e, _ in rows]).astype(np.int64)
                    for r, (_, _, scored) in enumerate(rows):
                        y[r, :L - scored] = -100       # predicted by an earlier window
                    logits, _ = model(x)                                          # [B, L, V]
                    total += float(cross_entropy(logits, y, reduction="sum").item())
                    count += int((y != -100).sum())
    finally:
        if was_training:
            model.train(True)
    assert count == n_pred
    loss = total / count
    return {"loss": loss, "perplexity": perplexity(loss), "tokens": count, "nats": total,
            "windows": len(windows)}


def bits_per_byte(nats: float, n_bytes: int) -> float:
    """Total loss in nats over the UTF-8 bytes of the predicted text, in bits: a figure
    that does not depend on the tokenizer (a tokenizer with longer tokens has a higher
    loss per token but fewer tokens).

    >>> round(bits_per_byte(nats=2 * math.log(2), n_bytes=4), 6)     # 2 bits over 4 bytes
    0.5
    """
    if n_bytes < 1:
        raise ValueError(f"bits per byte needs at least one byte, got {n_bytes}")
    return nats / n_bytes / math.log(2)


def evaluate_objective(model, objective, data, *, batch_size: int = 32, seed: int = 0) -> dict:
    """`model` scored by `objective` on every example of `data` once, in order
    (`Objective.batches`); what the objective corrupts at random (prefix lengths, masked
    tokens, spans) is drawn from `seed`, so the figure is the same every time.

    Returns ``{"loss", "perplexity", "count"}`` (the mean loss over the counted targets,
    and how many there were), plus ``"accuracy"`` where the objective counts correct
    predictions (masked tokens, teacher-forced target tokens, labels) and ``"confusion"``
    (a [true, predicted] count matrix) for classification. Any other score an objective
    sums is reported as its mean per counted target (DPO: ``margin``, ``chosen_reward``,
    ``rejected_reward``, per pair).
    """
    data = objective.dataset(data)
    rng = np.random.default_rng(seed)
    totals: dict = {}
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for batch in objective.batches(data, batch_size, rng):
                for key, value in objective.scores(model, batch).items():
                    totals[key] = totals[key] + value if key in totals else value
    finally:
        model.train(was_training)
    count = totals.get("count", 0)
    if not count:
        raise ValueError("evaluation: the data gave no target to score")
    loss = totals["loss"] / count
    out = {"loss": loss, "perplexity": perplexity(loss), "count": count}
    if "correct" in totals:
        out["accuracy"] = totals["correct"] / count
    if "confusion" in totals:
        out["confusion"] = totals["confusion"]
    for key, value in totals.items():            # other sums (DPO's rewards): their means
        if key not in ("loss", "count", "correct", "confusion"):
            out[key] = value / count
    return out


def exact_match(model, pairs, *, bos_id: int, eos_id: int, batch_size: int = 32,
                max_new_tokens: int | None = None) -> float:
    """The share of `pairs` (`numpyllm.data.examples.Pairs`) whose target an
    encoder-decoder writes exactly, decoding greedily from each source until EOS."""
    from ..data import pad_sequences
    from ..generate import generate_seq2seq
    pad = model.config.pad_id
    if pad is None:
        raise ValueError("exact_match: the model needs a pad_id to batch sources")
    right = 0
    for start in range(0, len(pairs), batch_size):
        rows = range(start, min(start + batch_size, len(pairs)))
        src = pad_sequences([pairs.sources[i] for i in rows], pad)[0]
        targets = [pairs.targets[i] for i in rows]
        limit = max_new_tokens or max(len(t) for t in targets) + 1
        outs = generate_seq2seq(model, src, limit, bos_id=bos_id, eos_id=eos_id, greedy=True)
        for out, target in zip(outs, targets):
            out = np.asarray(out)
            if out.size and out[-1] == eos_id:
                out = out[:-1]
            right += int(out.shape == target.shape and (out == target).all())
    return right / len(pairs)
