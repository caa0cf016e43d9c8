"""Classification metrics against an independent computation from the definitions (counts
per class by comparison, no confusion matrix; scikit-learn is not installed here, so no
oracle), the zero-division convention, the averages, the report, the errors."""
import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyllm.evaluate import classification as metrics
from numpyllm.evaluate import (accuracy, classification_report, confusion_matrix,
                               precision_recall_f1, scores_from_confusion)


def by_definition(y_true, y_pred, K, zero_division):
    """Per-class precision, recall, F1 and support, one class at a time, from the words:
    precision = right among those called k, recall = right among those that are k."""
    def ratio(a, b):
        return a / b if b else zero_division
    out = []
    for k in range(K):
        called, truly = y_pred == k, y_true == k
        p = ratio(int((called & truly).sum()), int(called.sum()))
        r = ratio(int((called & truly).sum()), int(truly.sum()))
        if called.sum() and truly.sum():
            f = 2 * p * r / (p + r) if p + r else 0.0        # the harmonic mean
        else:
            tp, fp, fn = (called & truly).sum(), (called & ~truly).sum(), (~called & truly).sum()
            f = ratio(2 * tp, 2 * tp + fp + fn)
        out.append((p, r, f, int(truly.sum())))
    return [np.array(col) for col in zip(*out)]


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


pairs = st.integers(1, 5).flatmap(lambda K: st.tuples(
    st.just(K), st.lists(st.tuples(st.integers(0, K - 1), st.integers(0, K - 1)),
                         min_size=1, max_size=50)))


@given(case=pairs, zero_division=st.sampled_from([0.0, 1.0]))
def test_per_class_and_averages_equal_the_definitions(case, zero_division):
    K, rows = case
    y_true, y_pred = (np.array(col) for col in zip(*rows))
    p, r, f, s = precision_recall_f1(y_true, y_pred, n_classes=K, zero_division=zero_division)
    ep, er, ef, es = by_definition(y_true, y_pred, K, zero_division)
    np.testing.assert_allclose(p, ep)
    np.testing.assert_allclose(r, er)
    np.testing.assert_allclose(f, ef)
    np.testing.assert_array_equal(s, es)
    M = confusion_matrix(y_true, y_pred, K)
    assert M.sum() == len(y_true) and np.trace(M) == (y_true == y_pred).sum()
    macro = precision_recall_f1(y_true, y_pred, n_classes=K, average="macro",
                                zero_division=zero_division)
    np.testing.assert_allclose(macro[:3], [ep.mean(), er.mean(), ef.mean()])
    weighted = scores_from_confusion(M, average="weighted", zero_division=zero_division)
    np.testing.assert_allclose(weighted[:3], [(x * es).sum() / es.sum() for x in (ep, er, ef)])
    micro = scores_from_confusion(M, average="micro")
    np.testing.assert_allclose(micro[:3], [accuracy(y_true, y_pred)] * 3)   # one label each
    assert macro[3] == weighted[3] == micro[3] == len(y_true)


def test_a_class_never_predicted_and_a_class_never_present():
    y_true, y_pred = np.array([0, 0, 1]), np.array([0, 0, 0])        # 1 never predicted
    p, r, f, s = precision_recall_f1(y_true, y_pred, n_classes=3)     # 2 never present
    np.testing.assert_allclose(p, [2 / 3, 0.0, 0.0])
    np.testing.assert_allclose(r, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(f, [0.8, 0.0, 0.0])
    p1, r1, f1, _ = precision_recall_f1(y_true, y_pred, n_classes=3, zero_division=1.0)
    np.testing.assert_allclose(p1, [2 / 3, 1.0, 1.0])       # 0/0 -> 1
    np.testing.assert_allclose(r1, [1.0, 0.0, 1.0])         # class 1's recall is 0/1, not 0/0
    np.testing.assert_allclose(f1, [0.8, 0.0, 1.0])


def test_the_report_lists_classes_averages_and_the_matrix():
    text = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["ham", "spam", "eggs"])
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1", "support"]
    assert lines[2].split() == ["ham", "1.0000", "1.0000", "1.0000", "1"]
    assert lines[3].split() == ["spam", "1.0000", "0.5000", "0.6667", "2"]
    assert "accuracy" in text and "macro avg" in text and "weighted avg" in text
    assert lines[-1].split() == ["eggs", "0", "0", "1"]


@pytest.mark.parametrize("call, match", [
    (lambda: confusion_matrix([0, 1], [0]), "y_true has 2 labels, y_pred 1"),
    (lambda: confusion_matrix([0, 3], [0, 1], n_classes=2), "class id 3 is outside"),
    (lambda: confusion_matrix([0.5], [0]), "y_true must be a 1-D array of class ids"),
    (lambda: confusion_matrix([-1], [0]), "class ids >= 0"),
    (lambda: accuracy([], []), "no predictions"),
    (lambda: scores_from_confusion(np.ones((2, 3), int)), "square"),
    (lambda: scores_from_confusion(np.eye(2, dtype=int), average="mean"), "average must be"),
    (lambda: classification_report([0, 1], [0, 1], ["a"]), "outside n_classes=1"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
