"""Evaluating a model on a whole data set: mean loss, perplexity, accuracy.

Perplexity is exp(mean cross-entropy in nats): the effective number of equally likely
next tokens. `evaluate_tokens` predicts every token of a text exactly once, so its figure
does not depend on how batches were sampled. `evaluate_objective` scores any objective
the same way (for masked LM, the accuracy of the masked tokens; for classification, of
the labels), and `exact_match` decodes an encoder-decoder's outputs and compares them
whole with the targets.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..data import TokenWindows
from ..functional import cross_entropy

__all__ = ["perplexity", "evaluate_tokens", "evaluate_objective", "exact_match"]


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy in nats): the effective number of equally likely next tokens."""
    return math.exp(loss) if loss < 700 else float("inf")


def evaluate_tokens(model, tokens, *, batch_size: int = 32, block_size: int | None = None) -> dict:
    """Mean cross-entropy of `model` over a whole token array, each token predicted
    exactly once: the array is cut into non-overlapping windows of `block_size`
    (the model's by default), window w predicting tokens ``w*T+1 .. w*T+T`` from the
    ones before them inside the window. The last window may be shorter.

    Returns ``{"loss", "perplexity", "tokens"}`` where tokens is the number predicted
    (``len(tokens) - 1``). Deterministic: no sampling.
    """
    tokens = np.asarray(tokens)
    T = block_size or model.config.block_size
    n_pred = len(tokens) - 1
    if n_pred < 1:
        raise ValueError(f"evaluation needs at least 2 tokens, got {len(tokens)}")
    total, count = 0.0, 0
    model.eval()
    with no_grad():
        n_full = n_pred // T
        if n_full:
            windows = TokenWindows(tokens[:n_full * T + 1], T, stride=T)
            for x, y in windows.iter_batches(batch_size):
                logits, _ = model(x)
                total += float(cross_entropy(logits, y, reduction="sum").item())
                count += y.size
        tail = n_pred - n_full * T
        if tail:
            x = np.asarray(tokens[n_full * T:n_full * T + tail], dtype=np.int64)[None]
            y = np.asarray(tokens[n_full * T + 1:], dtype=np.int64)[None]
            logits, _ = model(x)
            total += float(cross_entropy(logits, y, reduction="sum").item())
            count += y.size
    assert count == n_pred
    loss = total / count
    return {"loss": loss, "perplexity": perplexity(loss), "tokens": count}


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
