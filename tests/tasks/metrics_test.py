"""Metrics against values worked out by hand."""

import numpy as np
import pytest

from bert_adapters.data import get_task, make_custom_task
from bert_adapters.tasks.metrics import compute_metrics


def test_mcc_of_a_known_confusion_matrix():
    # TP 5, TN 3, FP 1, FN 1: (5*3 - 1*1) / sqrt(6 * 6 * 4 * 4) = 14 / 24.
    labels = [1] * 5 + [0] * 3 + [0] + [1]
    predictions = [1] * 5 + [0] * 3 + [1] + [0]
    result = compute_metrics("cola", labels, predictions)
    assert list(result) == ["matthews_corrcoef", "accuracy"]
    assert result["matthews_corrcoef"] == pytest.approx(14 / 24)
    assert result["accuracy"] == pytest.approx(0.8)
    assert all(type(v) is float for v in result.values())


def test_f1_of_the_positive_class():
    # MRPC: TP 2, FP 0, FN 1 -> precision 1, recall 2/3, F1 0.8.
    result = compute_metrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1])
    assert result == pytest.approx({"f1": 0.8, "accuracy": 0.75})
    # QQP: F1 of class "1" is 2/3 (TP 1, FP 1); that of class "0" would be 0.8.
    result = compute_metrics(get_task("qqp"), np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]))
    assert result["f1"] == pytest.approx(2 / 3)


def test_pearson_and_spearman():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert compute_metrics("stsb", x, 0.5 * x + 0.3) == pytest.approx(
        {"pearson": 1.0, "spearman": 1.0})
    # Monotonic but not linear: Spearman 1, Pearson below 1.
    result = compute_metrics("sts-b", x, np.exp(x))
    assert result["spearman"] == pytest.approx(1.0) and result["pearson"] < 0.95
    # x = [1, 2, 3], y = [1, 3, 2]: covariance 1 / variance 2 = 0.5 (ranks too).
    assert compute_metrics("stsb", [1, 2, 3], [1, 3, 2]) == pytest.approx(
        {"pearson": 0.5, "spearman": 0.5})


def test_accuracy_tasks_and_ax_r3():
    assert compute_metrics("rte", [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 0.75}
    assert compute_metrics("mnli", [0, 1, 2], [0, 1, 2]) == {"accuracy": 1.0}
    # AX: multi-class Matthews correlation (GLUE's R3); perfect = 1.
    assert compute_metrics("ax", [0, 1, 2, 2], [0, 1, 2, 2]) == {"matthews_corrcoef": 1.0}


def test_custom_macro_f1():
    task = make_custom_task(["a", "b", "c"], "text")
    # Per class F1: a 1, b 2/3 (TP 1, FN 1), c 0.8 (TP 2, FP 1): mean 0.8222.
    result = compute_metrics(task, [0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 2, 2])
    assert result == pytest.approx({"accuracy": 5 / 6, "macro_f1": (1 + 2 / 3 + 0.8) / 3})


def test_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        compute_metrics("rte", [0, 1], [0])
    with pytest.raises(ValueError, match="argmax"):
        compute_metrics("rte", [0, 1], [[0.2, 0.8], [0.9, 0.1]])
    with pytest.raises(ValueError, match="outside label indices 0..1"):
        compute_metrics("rte", [0, 1], [0, 2])
    with pytest.raises(ValueError, match="no examples"):
        compute_metrics("rte", [], [])


def test_multiclass_mcc_and_degenerate_cases():
    # Three classes, confusion [[2,1,0],[0,2,1],[1,0,3]]: n 10, correct 7,
    # labels per class t = (3,3,4), predictions p = (3,3,4):
    # (7*10 - t.p) / sqrt((100 - p.p)(100 - t.t)) = (70 - 34) / (100 - 34) = 36 / 66.
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    predictions = [0, 0, 1, 1, 1, 2, 0, 2, 2, 2]
    assert compute_metrics("ax", labels, predictions)["matthews_corrcoef"] == pytest.approx(
        36 / 66)
    # A constant prediction has no correlation (0, not NaN); F1 without any
    # positive prediction or label is 0.
    assert compute_metrics("cola", [0, 1, 1, 0], [1, 1, 1, 1])["matthews_corrcoef"] == 0.0
    assert compute_metrics("mrpc", [0, 0, 0], [0, 0, 0]) == {"f1": 0.0, "accuracy": 1.0}
    # Macro F1 counts only classes present in labels or predictions.
    task = make_custom_task(["a", "b", "c"], "text")
    assert compute_metrics(task, [0, 0, 1], [0, 0, 1])["macro_f1"] == 1.0
