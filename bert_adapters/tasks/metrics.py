"""GLUE and custom-task metrics: NumPy (from the confusion matrix) and SciPy.

`compute_metrics(task, labels, predictions)` returns the metrics the task
names (`Task.metrics`), as GLUE defines them:

- `accuracy`;
- `f1`: binary F1 of the task's positive class (`Task.positive_label`, GLUE's
  `1`: paraphrase for MRPC, duplicate for QQP);
- `macro_f1`: unweighted mean of per-class F1 over the classes present in the
  labels or predictions (custom tasks);
- `matthews_corrcoef`: CoLA; with three classes it is GLUE's R3 of AX;
- `pearson`, `spearman`: STS-B, on float predictions.

Example:
    compute_metrics(get_task("mrpc"), [1, 0, 1, 1], [1, 0, 0, 1])
    # {"f1": 0.8, "accuracy": 0.75}
"""

import numpy as np
from scipy import stats

from bert_adapters.data.registry import get_task


# scikit-learn's definitions (GLUE's scorer uses it), written out on the
# confusion matrix: with scikit-learn installed Keras imports it (and SciPy's
# statistics) at start-up, 60 MB and 0.7 s in every process.
def _confusion(labels, predictions):
    """`[classes, classes]` counts (rows: labels, columns: predictions)."""
    classes = int(max(labels.max(initial=0), predictions.max(initial=0))) + 1
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return counts


def _f1_per_class(counts):
    """F1 of every class (0 where a class has neither labels nor predictions)."""
    true_positives = np.diag(counts).astype(np.float64)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)   # 2TP + FP + FN
    return np.divide(2 * true_positives, denominator, out=np.zeros_like(true_positives),
                     where=denominator > 0)


def _accuracy(task, labels, predictions):
    return float(np.mean(labels == predictions))


def _f1(task, labels, predictions):
    positive = task.label_index(task.positive_label)
    counts = _confusion(labels, predictions)
    return float(_f1_per_class(counts)[positive]) if positive < len(counts) else 0.0


def _macro_f1(task, labels, predictions):
    # Over the classes present in the labels or the predictions.
    counts = _confusion(labels, predictions)
    present = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    return float(_f1_per_class(counts)[present].mean())


def _matthews_corrcoef(task, labels, predictions):
    # Gorodkin's multi-class R_K; two classes: (TP TN - FP FN) / sqrt(...).
    counts = _confusion(labels, predictions).astype(np.float64)
    n, correct = counts.sum(), np.trace(counts)
    true, predicted = counts.sum(axis=1), counts.sum(axis=0)
    covariance = correct * n - true @ predicted
    denominator = np.sqrt((n * n - predicted @ predicted) * (n * n - true @ true))
    return float(covariance / denominator) if denominator > 0 else 0.0


def _pearson(task, labels, predictions):
    return stats.pearsonr(labels, predictions).statistic


def _spearman(task, labels, predictions):
    return stats.spearmanr(labels, predictions).statistic


_METRICS = {
    "accuracy": _accuracy,
    "f1": _f1,
    "macro_f1": _macro_f1,
    "matthews_corrcoef": _matthews_corrcoef,
    "pearson": _pearson,
    "spearman": _spearman,
}


def compute_metrics(task, labels, predictions):
    """The task's metrics on one split.

    Args:
        task: a `Task` or task name.
        labels: `[num_examples]` label indices (int) or regression targets.
        predictions: `[num_examples]` predicted label indices (int), or
            predicted scores (float) for a regression task.

    Returns:
        `{metric_name: float}` in the order of `task.metrics`.
    """
    task = get_task(task)
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if predictions.ndim == 2 and not task.is_regression:
        raise ValueError(f"{task.name}: predictions of shape {predictions.shape} look like "
                         f"logits; pass label indices (their argmax)")
    if labels.ndim != 1 or predictions.shape != labels.shape:
        raise ValueError(f"{task.name}: labels {labels.shape} and predictions "
                         f"{predictions.shape} must be 1-D and of the same length")
    if labels.size == 0:
        raise ValueError(f"{task.name}: no examples to score")
    if task.is_regression:
        labels, predictions = labels.astype(np.float64), predictions.astype(np.float64)
    else:
        labels = _as_label_indices(task, labels, "labels")
        predictions = _as_label_indices(task, predictions, "predictions")
    return {name: float(_METRICS[name](task, labels, predictions)) for name in task.metrics}


def _as_label_indices(task, values, what):
    if not np.issubdtype(values.dtype, np.integer):
        if not (np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values))):
            raise ValueError(f"{task.name}: {what} must be label indices (integers), got "
                             f"dtype {values.dtype}; take the argmax of the logits first")
        values = values.astype(np.int64)
    bad = values[(values < 0) | (values >= task.num_outputs)]
    if bad.size:
        raise ValueError(f"{task.name}: {what} hold {bad[0]}, outside label indices "
                         f"0..{task.num_outputs - 1} of {list(task.label_names)}")
    return values
