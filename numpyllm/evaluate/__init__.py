"""Evaluation metrics (`numpyllm.evaluate`): numbers computed from a model's predictions,
plain NumPy (or plain Python) in and out, no model inside.

One concept per file:
  classification.py  accuracy, confusion matrix, per-class precision/recall/F1 and their
                     macro, micro and weighted averages, a text report
  bleu.py            BLEU as sacrebleu computes it: corpus and sentence level, tokenizers,
                     smoothing, several references
  chrf.py            chrF and chrF++ (character and word n-gram F-scores) as sacrebleu
                     computes them
  rouge.py           ROUGE-N, ROUGE-L and ROUGE-Lsum as Google's rouge-score computes them
  resampling.py      confidence intervals of a mean score by bootstrap resampling
  significance.py    BLEU's bootstrap interval and paired significance tests (paired
                     bootstrap, approximate randomization) as sacrebleu computes them

(Perplexity, bits per byte and the evaluation loop over a text live in
`numpyllm.training.evaluate`: they need a model.)
"""
from . import bleu, chrf, resampling, rouge, significance
from .bleu import BLEUScore, bleu_from_stats, corpus_bleu, sentence_bleu, tokenize_bleu
from .chrf import CHRFScore, chrf_from_stats, chrf_stats, corpus_chrf, sentence_chrf
from .resampling import AggregateScore, bootstrap, bootstrap_means
from .classification import (accuracy, classification_report, confusion_matrix,
                             precision_recall_f1, report_from_confusion, scores_from_confusion)
from .significance import (BootstrapCI, PairedResult, bootstrap_ci, paired_approximate_randomization,
                           paired_bootstrap)
from .rouge import ROUGE_TYPES, RougeScorer, Score, rouge_scores, rouge_tokenize

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "scores_from_confusion",
           "classification_report", "report_from_confusion",
           "BLEUScore", "corpus_bleu", "sentence_bleu", "bleu_from_stats", "tokenize_bleu",
           "CHRFScore", "corpus_chrf", "sentence_chrf", "chrf_stats", "chrf_from_stats",
           "Score", "RougeScorer", "rouge_scores", "rouge_tokenize", "ROUGE_TYPES",
           "AggregateScore", "bootstrap", "bootstrap_means",
           "BootstrapCI", "PairedResult", "bootstrap_ci", "paired_bootstrap",
           "paired_approximate_randomization"]
