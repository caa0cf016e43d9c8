"""Direct preference optimisation (DPO, Rafailov et al. 2023) of a decoder on preference
pairs: a prompt x, a chosen response y_w and a rejected one y_l.

    loss = -log σ(β[(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])

π is the model being trained, π_ref a frozen reference (the model as it was before DPO).
log π(y|x) sums (or, with ``average=True``, averages) the log-probabilities of the
response tokens only: prompt and padding positions never count
(`numpyllm.functional.sequence_logprob`). The implicit rewards are
``r = β (log π(y|x) - log π_ref(y|x))``; evaluation reports the mean chosen and rejected
rewards, their margin ``r_w - r_l`` and the preference accuracy, the share of pairs with
``r_w > r_l``.

**The reference** (``DPO(reference=...)``) is either a model (a GPT or Llama, run in
eval mode without a graph) or a function ``(ids [B, L], mask [B, L]) -> [B]`` that gives
the reference log-probabilities of the same rows (e.g. the base model with its LoRA
adapters switched off: no second copy of the weights). Without one, the Trainer's
`check_model` takes a frozen copy of the model it is about to train. The reference never
changes, so each pair's reference log-probabilities are computed once, the first time the
pair is drawn, and cached (`reference_logps`); `make_batch` puts them into the batch, so
the threads of data parallelism run the policy only.

A checkpoint records the settings (beta, label_smoothing, average, pad_id), not the
reference: a resumed run needs it again (``DPO.from_dict``-built objectives have
``reference=None``; set it, or the resumed model itself would become the reference), or
the reference log-probabilities of its pairs, computed before training
(`set_reference_logps`: what ``numpyllm finetune dpo`` does without LoRA).
"""
from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...autograd import Tensor, no_grad
from ...data.preference import PreferencePairs, collate_preferences
from ...functional import dpo_loss, sequence_logprob
from .base import Batch, ExampleObjective

__all__ = ["DPO", "sequence_logprobs"]


def sequence_logprobs(model, ids, mask, *, average: bool = False) -> Tensor:
    """log π(y|x) of each row: ``ids [B, L]`` (prompt, response, padding) and ``mask
    [B, L]`` (True at the response tokens) -> ``[B]``. Position t of the model's input
    ``ids[:, :-1]`` predicts token t+1, which counts where ``mask[:, t+1]``; the first
    token is never predicted. Right padding is harmless: causal attention keeps it out of
    every real position's context."""
    ids, mask = np.asarray(ids), np.asarray(mask, dtype=bool)
    if ids.ndim != 2 or mask.shape != ids.shape or ids.shape[1] < 2:
        raise ValueError(f"sequence_logprobs: ids and mask must be [B, L] with L >= 2, got "
                         f"{ids.shape} and {mask.shape}")
    logits = model(ids[:, :-1])[0]                                # [B, L-1, V]
    targets = np.where(mask[:, 1:], ids[:, 1:], -100)             # [B, L-1]
    return sequence_logprob(logits, targets, average=average)


@dataclass
class DPO(ExampleObjective):
    """DPO on `numpyllm.data.preference.PreferencePairs` (see the module doc).
    Settings: `beta` (the KL strength: small lets the policy move far from the reference),
    `label_smoothing` ε in [0, 0.5) (conservative DPO), `average` (length-averaged rather
    than summed log-probabilities), `pad_id`, and `sft_weight` λ ≥ 0: adds λ times the
    chosen response's negative log-likelihood per token (RPO, Pang et al. 2024), which
    keeps the chosen answers likely while DPO widens the gap (DPO alone may lower both)."""

    beta: float = 0.1
    label_smoothing: float = 0.0
    average: bool = False
    pad_id: int = 0
    sft_weight: float = 0.0
    reference: object = field(default=None, repr=False, compare=False)

    name: ClassVar[str] = "dpo"
    models: ClassVar[tuple] = ("GPT", "Llama")
    perplexity: ClassVar[bool] = False
    eval_scores: ClassVar[tuple] = ("margin", "accuracy")

    def __post_init__(self):
        super().__post_init__()
        if not self.beta > 0:
            raise ValueError(f"DPO.beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"DPO.label_smoothing must be in [0, 0.5), got "
                             f"{self.label_smoothing}")
        if not (isinstance(self.sft_weight, (int, float, np.floating))
                and np.isfinite(self.sft_weight) and self.sft_weight >= 0):
            raise ValueError(f"DPO.sft_weight must be a finite number >= 0, got "
                             f"{self.sft_weight!r:.40}")
        if not isinstance(self.average, (bool, np.bool_)):
            raise ValueError(f"DPO.average must be true or false, got {self.average!r:.40}")
        if not (isinstance(self.pad_id, (int, np.integer)) and self.pad_id >= 0):
            raise ValueError(f"DPO.pad_id must be an integer >= 0, got {self.pad_id!r:.40}")
        self._cache = weakref.WeakKeyDictionary()     # data set -> [N, 2] reference logps

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        """The settings; the reference is not one (a model or a function: see the module
        doc on resuming)."""
        out = super().to_dict()
        del out["reference"]
        return out

    # ------------------------------------------------------------------ model, data
    def check_model(self, model) -> None:
        """The model is a decoder, `pad_id` in its vocabulary; and, when no reference was
        given, the reference becomes a frozen copy of `model` as it is now."""
        super().check_model(model)
        self.check_ids(model.config.vocab_size, pad_id=self.pad_id)
        if self.reference is None:
            self.reference = copy.deepcopy(model).requires_grad_(False)
            self.reference.eval()

    def dataset(self, data) -> PreferencePairs:
        if isinstance(data, PreferencePairs):
            return data
        prompts, chosen, rejected = data
        return PreferencePairs(prompts, chosen, rejected)

    def reference_logps(self, data: PreferencePairs, rows=None, *,
                        batch_size: int = 32) -> np.ndarray:
        """The reference's ``[len(rows), 2]`` log-probabilities (chosen, rejected) of the
        pairs `rows` (all by default), float64, computed once per pair and cached."""
        if self.reference is None:
            raise ValueError("DPO: no reference: pass reference= (a model or a function), "
                             "or let the Trainer's check_model copy the model")
        rows = np.arange(len(data)) if rows is None else np.asarray(rows, dtype=np.int64)
        cache = self._cache.get(data)
        if cache is None:
            cache = self._cache[data] = np.full((len(data), 2), np.nan)
        todo = np.unique(rows[np.isnan(cache[rows, 0])])
        for start in range(0, len(todo), batch_size):
            part = todo[start:start + batch_size]
            arrays = collate_preferences(data, part, self.pad_id)
            ids = np.concatenate([arrays["chosen_ids"], arrays["rejected_ids"]])   # [2b, L]
            mask = np.concatenate([arrays["chosen_mask"], arrays["rejected_mask"]])
            cache[part] = self._reference(ids, mask).reshape(2, -1).T               # [b, 2]
        return cache[rows]

    def set_reference_logps(self, data: PreferencePairs, logps) -> None:
        """Give the reference log-probabilities of every pair of `data`, ``[N, 2]``
        (chosen, rejected, as `reference_logps` returns them), computed earlier: e.g.
        before training, saved, and read back by a resumed run, which then needs no
        reference model at all."""
        logps = np.asarray(logps, dtype=np.float64)
        if logps.shape != (len(data), 2) or not np.isfinite(logps).all():
            raise ValueError(f"DPO.set_reference_logps: need [{len(data)}, 2] finite "
                             f"log-probabilities for {len(data)} pairs, got shape "
                             f"{logps.shape}")
        self._cache[data] = logps.copy()

    def _reference(self, ids, mask) -> np.ndarray:
        ref = self.reference
        with no_grad():
            if callable(ref) and not hasattr(ref, "named_parameters"):
                out = ref(ids, mask)
                out = np.asarray(out.data if isinstance(out, Tensor) else out, dtype=np.float64)
            else:
                was = ref.training
                ref.eval()
                try:
                    out = sequence_logprobs(ref, ids, mask, average=self.average).data
                finally:
                    ref.train(was)
        if out.shape != (len(ids),) or not np.isfinite(out).all():
            raise ValueError(f"DPO: the reference must give {len(ids)} finite "
                             f"log-probabilities, one per row, got shape {out.shape}")
        return out.astype(np.float64)

    def make_batch(self, data: PreferencePairs, rows) -> Batch:
        arrays = collate_preferences(data, rows, self.pad_id)                  # [B, L] each
        ref = self.reference_logps(data, rows)                                 # [B, 2]
        arrays["ref_chosen"], arrays["ref_rejected"] = ref[:, 0], ref[:, 1]
        B = len(ref)
        return Batch(arrays, np.ones(B, dtype=np.int64), 2 * arrays["chosen_ids"].size)

    # ------------------------------------------------------------------ loss, scores
    def policy_logps(self, model, batch) -> tuple[Tensor, Tensor]:
        """log π(y_w|x) and log π(y_l|x), ``[B]`` each, in one forward pass of 2B rows."""
        B = len(batch)
        ids = np.concatenate([batch["chosen_ids"], batch["rejected_ids"]])          # [2B, L]
        mask = np.concatenate([batch["chosen_mask"], batch["rejected_mask"]])
        logps = sequence_logprobs(model, ids, mask, average=self.average)           # [2B]
        return logps[:B], logps[B:]

    def loss(self, model, batch, reduction: str = "mean"):
        chosen, rejected = self.policy_logps(model, batch)
        loss = dpo_loss(chosen, rejected, batch["ref_chosen"], batch["ref_rejected"],
                        beta=self.beta, label_smoothing=self.label_smoothing,
                        reduction=reduction)
        if self.sft_weight:
            loss = loss + self.sft_weight * self._reduce(self.chosen_nll(chosen, batch),
                                                         reduction)
        return loss

    def chosen_nll(self, chosen, batch):
        """−log π(y_w|x) per response token, ``[B]``: the SFT term of `sft_weight`."""
        if self.average:                       # already a mean over the response tokens
            return -chosen
        n = batch["chosen_mask"][:, 1:].sum(axis=1)          # [B] tokens scored per row
        return chosen * (-1.0 / np.maximum(n, 1))

    @staticmethod
    def _reduce(values, reduction: str):
        return values if reduction == "none" else values.sum() if reduction == "sum" \
            else values.mean()

    def scores(self, model, batch) -> dict:
        """Sums over the batch's pairs: the loss, the chosen and rejected rewards, the
        margin, and ``correct`` (pairs with r_w > r_l: the preference accuracy)."""
        with no_grad():
            chosen, rejected = self.policy_logps(model, batch)
            losses = dpo_loss(chosen, rejected, batch["ref_chosen"], batch["ref_rejected"],
                              beta=self.beta, label_smoothing=self.label_smoothing,
                              reduction="none").data
            if self.sft_weight:
                losses = losses + self.sft_weight * self.chosen_nll(chosen, batch).data
        r_w = self.beta * (chosen.data.astype(np.float64) - batch["ref_chosen"])     # [B]
        r_l = self.beta * (rejected.data.astype(np.float64) - batch["ref_rejected"])
        return {"loss": float(losses.sum()), "count": len(losses),
                "correct": int((r_w > r_l).sum()), "margin": float((r_w - r_l).sum()),
                "chosen_reward": float(r_w.sum()), "rejected_reward": float(r_l.sum())}
