"""GLUE server submission files: writing and checking them.

Format (shared/reference/glue-submission.md): a header `index\\tprediction`,
then one `index\\tlabel` row per test example in the order of the test file's
`index` column. The label strings are the task's `submission_labels` (`0`/`1`;
`entailment`/`neutral`/`contradiction`; `entailment`/`not_entailment`), and
STS-B's are its scores clipped to [0, 5] with 3 decimals. Custom tasks write
`test_predictions.tsv` the same way with their label names.

Example:
    task = get_task("mnli")
    write_submission(io_utils.join(out, task.submission_file("test_matched")),
                     task, "test_matched", test.indices, predictions)
"""

import math

import numpy as np
import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.data.registry import get_task

HEADER = "index\tprediction"
STSB_RANGE = (0.0, 5.0)


def submission_path(output_dir, task, split):
    """`<output_dir>/<the split's submission file name>` (`MNLI-mm.tsv`, ...)."""
    return io_utils.join(output_dir, get_task(task).submission_file(split))


def format_predictions(task, predictions):
    """Predictions -> the label strings of the submission file."""
    task = get_task(task)
    predictions = np.asarray(predictions)
    if predictions.ndim != 1:
        raise ValueError(f"{task.name}: predictions must be 1-D, got shape {predictions.shape}"
                         + ("" if task.is_regression else "; take the argmax of the logits"))
    if task.is_regression:
        if not np.all(np.isfinite(predictions)):
            raise ValueError(f"{task.name}: predictions hold NaN or infinity")
        low, high = STSB_RANGE
        return [f"{v:.3f}" for v in np.clip(predictions.astype(np.float64), low, high)]
    if not np.issubdtype(predictions.dtype, np.integer):
        raise ValueError(f"{task.name}: predictions must be label indices (integers), "
                         f"got dtype {predictions.dtype}")
    bad = predictions[(predictions < 0) | (predictions >= task.num_outputs)]
    if bad.size:
        raise ValueError(f"{task.name}: prediction {bad[0]} is not a label index "
                         f"0..{task.num_outputs - 1}")
    return [task.submission_labels[i] for i in predictions]


def write_submission(path, task, split, indices, predictions):
    """Writes a submission file atomically.

    Args:
        path: the file to write (see `submission_path`).
        task: a `Task` or task name.
        split: the test split predicted (`"test"`, `"test_matched"`, ...).
        indices: the test file's index column, in its order.
        predictions: `[num_examples]` label indices, or floats for STS-B.

    Returns:
        `path`.
    """
    task = get_task(task)
    split = task.resolve_split(split)
    task.submission_file(split)  # Raises unless `split` is a test split.
    labels = format_predictions(task, predictions)
    indices = [str(i) for i in indices]
    if len(indices) != len(labels):
        raise ValueError(f"{task.name} {split}: {len(indices)} indices but "
                         f"{len(labels)} predictions")
    bad = [i for i in indices if not i or any(c in i for c in "\t\r\n")]
    if bad:
        raise ValueError(f"{task.name} {split}: index {bad[0]!r} is empty or holds a tab "
                         f"or newline")
    lines = [HEADER] + [f"{i}\t{label}" for i, label in zip(indices, labels)]
    io_utils.write_text(path, "\n".join(lines) + "\n")
    return path


def validate_submission(path, task, split, expected_indices):
    """Checks a submission file against the test split it answers.

    Args:
        path: the submission file.
        task: a `Task` or task name.
        split: the test split it predicts.
        expected_indices: the test file's index column, in order.

    Returns:
        The number of data rows.

    Raises:
        ValueError: naming the file and line: wrong header, a row that is
            not two tab-separated fields, an index out of order, a label
            string the server does not accept, or too few / too many rows.
    """
    task = get_task(task)
    split = task.resolve_split(split)
    task.submission_file(split)
    expected = [str(i) for i in expected_indices]
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # The final newline.
    if not lines or lines[0] != HEADER:
        found = lines[0] if lines else "an empty file"
        raise ValueError(f"{path}:1: header must be {HEADER!r}, found {found!r}")
    rows = lines[1:]
    allowed = None if task.is_regression else set(task.submission_labels)
    for n, (row, want) in enumerate(zip(rows, expected)):
        line = n + 2
        fields = row.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{line}: expected 2 tab-separated fields "
                             f"(index, prediction), found {len(fields)}: {row!r}")
        index, label = fields
        if index != want:
            raise ValueError(f"{path}:{line}: index {index!r}, expected {want!r}: rows must "
                             f"follow the order of the {task.name} {split} file")
        _check_label(label, allowed, task, path, line)
    if len(rows) != len(expected):
        kind = "short" if len(rows) < len(expected) else "long"
        raise ValueError(f"{path}: {kind} file: {len(rows)} prediction rows, expected "
                         f"{len(expected)} (one per {task.name} {split} example)")
    return len(rows)


def _check_label(label, allowed, task, path, line):
    if allowed is not None:
        if label not in allowed:
            raise ValueError(f"{path}:{line}: prediction {label!r} is not a {task.name} label; "
                             f"allowed: {list(task.submission_labels)}")
        return
    try:
        value = float(label)
    except ValueError:
        value = math.nan
    low, high = STSB_RANGE
    if not low <= value <= high:  # False for NaN too.
        raise ValueError(f"{path}:{line}: prediction {label!r} is not a score in "
                         f"[{low:g}, {high:g}]")
