"""Evaluation metrics (`numpyllm.evaluate`): numbers computed from a model's predictions,
plain NumPy in and out, no model inside.

One concept per file:
  classification.py  accuracy, confusion matrix, per-class precision/recall/F1 and their
                     macro, micro and weighted averages, a text report

(Perplexity and the training-time evaluation loop live in `numpyllm.training.evaluate`.)
"""
from .classification import (accuracy, classification_report, confusion_matrix,
                             precision_recall_f1, report_from_confusion, scores_from_confusion)

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "scores_from_confusion",
           "classification_report", "report_from_confusion"]
