"""Sequence classification: one label per sequence (`numpyllm.nn.SequenceClassifier`,
a GPT or an encoder with a pooled score layer).

Sequences of different lengths are padded on the right with `pad_id`; `lengths` says how
many tokens of each row are real (the classifier pools over those). Each row counts one
target, its label, in the mean cross-entropy. Scores: the loss and the accuracy; the
per-class precision, recall and F1 and the confusion matrix come from `confusion`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...autograd import no_grad
from ...data import pad_sequences
from ...data.examples import Labelled
from ...functional import cross_entropy
from ...validation import positive_int
from .base import Batch, ExampleObjective

__all__ = ["Classification"]


@dataclass
class Classification(ExampleObjective):
    """Cross-entropy over `n_classes` labels, one per sequence."""

    n_classes: int
    pad_id: int = 0

    name: ClassVar[str] = "classify"
    models: ClassVar[tuple] = ("SequenceClassifier",)
    perplexity: ClassVar[bool] = False
    eval_scores: ClassVar[tuple] = ("accuracy",)

    def __post_init__(self):
        super().__post_init__()
        self.n_classes = positive_int("Classification.n_classes", self.n_classes)

    def check_model(self, model) -> None:
        super().check_model(model)
        self.check_ids(model.config.backbone_cfg().vocab_size, pad_id=self.pad_id)
        if model.config.n_classes != self.n_classes:
            raise ValueError(f"Classification: the model has {model.config.n_classes} "
                             f"classes, the objective {self.n_classes}")

    def dataset(self, data) -> Labelled:
        if isinstance(data, Labelled):
            return data
        sequences, labels = data
        return Labelled(sequences, labels, self.n_classes)

    def make_batch(self, data: Labelled, rows: np.ndarray) -> Batch:
        ids, mask = pad_sequences([data.sequences[i] for i in rows], self.pad_id)   # [B, T]
        return Batch({"ids": ids, "lengths": mask.sum(axis=1), "labels": data.labels[rows]},
                     np.ones(len(rows), dtype=np.int64), ids.size)

    def loss(self, model, batch):
        return model(batch["ids"], batch["lengths"], batch["labels"])[1]

    def scores(self, model, batch) -> dict:
        with no_grad():
            logits, _ = model(batch["ids"], batch["lengths"])
        labels = batch["labels"]
        predicted = logits.data.argmax(axis=-1)
        K = self.n_classes                                   # [true, predicted] counts
        confusion = np.bincount(labels * K + predicted, minlength=K * K).reshape(K, K)
        return {"loss": float(cross_entropy(logits, labels, reduction="sum").item()),
                "count": len(labels), "correct": int((predicted == labels).sum()),
                "confusion": confusion}
