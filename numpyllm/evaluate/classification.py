"""Classification metrics from true and predicted class ids.

Everything is read off the **confusion matrix** ``M [K, K]``: ``M[i, j]`` counts the
examples of true class i predicted as class j (rows true, columns predicted, as
scikit-learn). For class k:

    TP_k = M[k, k]                 predicted k, and k
    FP_k = Σ_i M[i, k] - TP_k      predicted k, but not k       (column k, off the diagonal)
    FN_k = Σ_j M[k, j] - TP_k      k, but predicted otherwise   (row k, off the diagonal)

    precision_k = TP / (TP + FP)   of the examples called k, the share that are k
    recall_k    = TP / (TP + FN)   of the examples that are k, the share called k
    F1_k        = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN)     their harmonic mean
    support_k   = TP + FN          how many examples are k

    accuracy    = Σ_k TP_k / N     the trace over the total

**Zero division.** A class never predicted has TP + FP = 0: its precision is 0/0. Like
scikit-learn's ``zero_division=0`` (its default value, without the warning) every 0/0 here
is `zero_division`, 0.0 unless you say otherwise; so is the recall of a class with no
example, and an F1 whose ``2 TP + FP + FN`` is 0. (F1 uses the count form, so a class
never predicted but present has F1 = 0/(FN) = 0, whatever `zero_division` is.)

**Averages** over the K classes:

- ``"macro"``: the plain mean of the per-class figures (every class weighs the same);
- ``"weighted"``: the mean weighted by support (a class with no example weighs nothing);
- ``"micro"``: the figures of the pooled counts ΣTP, ΣFP, ΣFN. With one label per example
  every error is one FP and one FN, so micro precision = recall = F1 = accuracy.

>>> y_true = np.array([0, 0, 1, 1, 2])
>>> y_pred = np.array([0, 1, 1, 1, 1])          # class 2 is never predicted
>>> confusion_matrix(y_true, y_pred).tolist()
[[1, 1, 0], [0, 2, 0], [0, 1, 0]]
>>> p, r, f, support = precision_recall_f1(y_true, y_pred)
>>> p.round(3).tolist(), r.tolist(), support.tolist()
([1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [2, 2, 1])
>>> round(precision_recall_f1(y_true, y_pred, average="micro")[2], 3) == accuracy(y_true, y_pred)
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "scores_from_confusion",
           "classification_report", "report_from_confusion", "AVERAGES"]

AVERAGES = ("macro", "micro", "weighted")


def _ids(name: str, values) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)) or \
            (a.size and a.min() < 0):
        raise ValueError(f"{name} must be a 1-D array of class ids >= 0, got dtype {a.dtype}, "
                         f"shape {a.shape}")
    return a.astype(np.int64, copy=False)


def _pair(y_true, y_pred) -> tuple:
    y_true, y_pred = _ids("y_true", y_true), _ids("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    if not y_true.size:
        raise ValueError("no predictions to score")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """``M [K, K]`` int64: ``M[i, j]`` = the number of examples of class i predicted j.
    K is `n_classes`, or 1 + the largest id seen."""
    y_true, y_pred = _pair(y_true, y_pred)
    seen = int(max(y_true.max(), y_pred.max())) + 1
    K = seen if n_classes is None else int(n_classes)
    if K < seen:
        raise ValueError(f"confusion_matrix: class id {seen - 1} is outside n_classes={K}")
    # one bincount over the flattened (true, predicted) pair: cell i*K + j
    return np.bincount(y_true * K + y_pred, minlength=K * K).reshape(K, K)


def accuracy(y_true, y_pred) -> float:
    """The share of predictions equal to the truth."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float((y_true == y_pred).mean())


def _divide(num, den, zero_division: float):
    """num / den elementwise, `zero_division` where den is 0 (no warning)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.full(np.broadcast(num, den).shape, float(zero_division))
    np.divide(num, den, out=out, where=den != 0)
    return out


def scores_from_confusion(confusion, *, average: str | None = None,
                          zero_division: float = 0.0):
    """``(precision, recall, f1, support)`` from a confusion matrix ``[K, K]``.

    ``average=None``: four arrays ``[K]``. ``"macro"``, ``"micro"``, ``"weighted"``: three
    floats and the total support (see the module doc)."""
    M = np.asarray(confusion)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or not np.issubdtype(M.dtype, np.integer) \
            or (M < 0).any():
        raise ValueError(f"confusion must be a square [K, K] matrix of counts, got dtype "
                         f"{M.dtype}, shape {M.shape}")
    if average is not None and average not in AVERAGES:
        raise ValueError(f"average must be None or one of {AVERAGES}, got {average!r}")
    tp = np.diag(M)                                   # [K]
    fp = M.sum(axis=0) - tp                           # column sums: predicted k
    fn = M.sum(axis=1) - tp                           # row sums: truly k
    support = tp + fn
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    precision = _divide(tp, tp + fp, zero_division)
    recall = _divide(tp, tp + fn, zero_division)
    f1 = _divide(2 * tp, 2 * tp + fp + fn, zero_division)
    if average is None:
        return precision, recall, f1, support
    total = int(support.sum())
    if average == "micro":
        return float(precision), float(recall), float(f1), total
    weights = np.ones(len(support)) if average == "macro" else support.astype(np.float64)
    mean = lambda x: float(_divide((x * weights).sum(), weights.sum(), zero_division))
    return mean(precision), mean(recall), mean(f1), total


def precision_recall_f1(y_true, y_pred, *, n_classes: int | None = None,
                        average: str | None = None, zero_division: float = 0.0):
    """Per-class ``(precision [K], recall [K], f1 [K], support [K])``, or with `average`
    three floats and the total support; `scores_from_confusion` of `confusion_matrix`."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes),
                                 average=average, zero_division=zero_division)


def report_from_confusion(confusion, class_names: Sequence[str] | None = None, *,
                          digits: int = 4, zero_division: float = 0.0) -> str:
    """A table: one row per class (precision, recall, F1, support), then the accuracy and
    the macro and weighted averages, then the confusion matrix itself."""
    M = np.asarray(confusion)
    precision, recall, f1, support = scores_from_confusion(M, zero_division=zero_division)
    K = len(support)
    names = [str(c) for c in (range(K) if class_names is None else class_names)]
    if len(names) != K:
        raise ValueError(f"report: {len(names)} class names for {K} classes")
    width = max(12, *(len(n) for n in names))
    head = f"{'':>{width}} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>10}"
    fmt = lambda name, p, r, f, s: (f"{name:>{width}} {p:>10.{digits}f} {r:>10.{digits}f} "
                                    f"{f:>10.{digits}f} {s:>10d}")
    lines = [head, ""]
    lines += [fmt(n, p, r, f, int(s)) for n, p, r, f, s in zip(names, precision, recall, f1,
                                                                 support)]
    total = int(support.sum())
    acc = float(_divide(np.trace(M), total, zero_division))
    lines += ["", f"{'accuracy':>{width}} {'':>10} {'':>10} {acc:>10.{digits}f} {total:>10d}"]
    for avg in ("macro", "weighted"):
        p, r, f, s = scores_from_confusion(M, average=avg, zero_division=zero_division)
        lines.append(fmt(f"{avg} avg", p, r, f, s))
    cell = max(7, len(str(int(M.max()) if M.size else 0)) + 1, *(len(n) + 1 for n in names))
    lines += ["", "confusion (rows: true, columns: predicted)",
              f"{'':>{width}}" + "".join(f"{n:>{cell}}" for n in names)]
    lines += [f"{n:>{width}}" + "".join(f"{int(v):>{cell}d}" for v in row)
              for n, row in zip(names, M)]
    return "\n".join(lines)


def classification_report(y_true, y_pred, class_names: Sequence[str] | None = None, *,
                          digits: int = 4, zero_division: float = 0.0) -> str:
    """`report_from_confusion` of the predictions (K: the class names' count, if given).

    >>> print(classification_report([0, 1, 1, 0], [0, 1, 0, 0], ["ham", "spam"], digits=2))
                  precision     recall         f1    support
    <BLANKLINE>
             ham       0.67       1.00       0.80          2
            spam       1.00       0.50       0.67          2
    <BLANKLINE>
        accuracy                             0.75          4
       macro avg       0.83       0.75       0.73          4
    weighted avg       0.83       0.75       0.73          4
    <BLANKLINE>
    confusion (rows: true, columns: predicted)
                    ham   spam
             ham      2      0
            spam      1      1
    """
    K = None if class_names is None else len(class_names)
    return report_from_confusion(confusion_matrix(y_true, y_pred, K), class_names,
                                 digits=digits, zero_division=zero_division)
