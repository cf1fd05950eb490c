"""Reads a split of a GLUE task from the GLUE TSV layout (`download_glue_data.py`).

The files are unquoted TSV: sentences hold bare `"` characters (MRPC, SST-2,
RTE, QNLI), so they are split on tabs only (`csv.QUOTE_NONE`); ordinary CSV
quoting would merge rows. Texts are kept verbatim (SST-2's trailing space
before the tab included, as BERT's readers keep it; the tokenizer drops it).
A UTF-8 BOM (MRPC train/dev) is removed from the first line; a missing final
newline (CoLA dev, diagnostic) needs nothing. Blank lines are skipped.

Every per-task difference (header or not, column names or positions, index
column, QQP's broken rows) is data in `tasks.TsvLayout`; this reader has no
task names in it.

Example:
    examples = load_glue_split("mrpc", "dev", "/data/glue/MRPC")
    examples.num_examples, examples.labels[:3]  # 408, [1, 0, 0]
"""

import csv

import numpy as np
import tensorflow as tf
from absl import logging

from bert_adapters import io_utils
from bert_adapters.data.examples import Examples
from bert_adapters.data.registry import get_task

_BOM = "\ufeff"


def find_split_file(task, split, data_dir):
    """Returns the path of a split's TSV file under `data_dir`.

    `data_dir` is either the task's own folder (`$GLUE_DIR/MRPC`, as in BERT)
    or a GLUE root holding that folder (`$GLUE_DIR`); both are tried.
    """
    task = get_task(task)
    layout = task.layout(split)
    candidates = []
    for base in (io_utils.join(data_dir, task.folder), data_dir):
        candidates += [io_utils.join(base, name) for name in layout.file_names]
    for path in candidates:
        if tf.io.gfile.exists(path):
            return path
    raise FileNotFoundError(
        f"{task.name} {task.resolve_split(split)}: no file {' or '.join(layout.file_names)} "
        f"in {data_dir!r}. --data_dir must be the task's folder in the GLUE layout "
        f"($GLUE_DIR/{task.folder}) or the GLUE root holding {task.folder}/; looked for "
        f"{candidates}")


def load_glue_split(task, split, data_dir):
    """Reads one split of a GLUE task from its TSV file.

    Args:
        task: a `Task` or a task name (`"rte"`, `"SST-2"`, ...).
        split: `"train"`, `"dev"`, `"test"` (MNLI: `"dev_matched"`,
            `"dev_mismatched"`, `"test_matched"`, `"test_mismatched"`);
            TFDS names (`"validation"`) are accepted.
        data_dir: the task's folder or the GLUE root (local or `gs://`).

    Returns:
        `Examples`; `labels` is `None` for test splits.

    Raises:
        FileNotFoundError: the split's file is not there.
        ValueError: a malformed row, an unknown label, a header without an
            expected column, or a split without examples; the message names
            the file and line.
    """
    task = get_task(task)
    split = task.resolve_split(split)
    path = find_split_file(task, split, data_dir)
    return read_tsv(path, task, task.layout(split))


def _lines(f):
    """The file's lines, with a UTF-8 BOM removed from the first."""
    first = True
    for line in f:
        if first:
            line = line.removeprefix(_BOM)
            first = False
        yield line


def _column(path, header, spec, field):
    """Resolves a column given by name (against the header) or position."""
    if spec is None or isinstance(spec, int):
        return spec
    if spec not in header:
        raise ValueError(f"{path}: header lacks column {spec!r} (the {field}); "
                         f"header is {header}")
    return header.index(spec)


def read_tsv(path, task, layout):
    """Reads a GLUE TSV file laid out as `layout` into `Examples` of `task`."""
    task = get_task(task)
    regression = task.is_regression
    label_ids = None if regression else {name: i for i, name in enumerate(task.label_names)}
    texts_a, texts_b, labels, indices = [], [], [], []
    skipped, blank = [], 0
    with tf.io.gfile.GFile(path, "rb") as f:
        reader = csv.reader(_lines(io_utils.decoded_lines(f, path)), delimiter="\t",
                            quoting=csv.QUOTE_NONE)
        rows = _numbered_rows(reader, path)
        header = None
        if layout.has_header:
            header = next((row for _, row in rows if row), None)
            if header is None:
                raise ValueError(f"{path}: empty file (expected a header line)")
            header = [name.strip() for name in header]
        cols = {field: _column(path, header, getattr(layout, field), field)
                for field in ("text_a", "text_b", "label", "index")}
        num_columns = layout.num_columns or len(header)
        for line, row in rows:
            if not row:
                blank += 1
                continue
            if len(row) != num_columns:
                if layout.skip_malformed_rows:
                    skipped.append(line)
                    continue
                raise ValueError(f"{path}:{line}: malformed row: expected {num_columns} "
                                 f"tab-separated columns, found {len(row)}")
            texts_a.append(row[cols["text_a"]])
            if cols["text_b"] is not None:
                texts_b.append(row[cols["text_b"]])
            if cols["index"] is not None:
                indices.append(row[cols["index"]].strip())
            else:
                indices.append(str(len(indices)))
            if cols["label"] is not None:
                labels.append(_parse_label(row[cols["label"]], label_ids, path, line))
    if skipped:
        logging.warning("%s: skipped %d malformed rows (not %d columns) at lines %s%s",
                        path, len(skipped), num_columns, skipped[:10],
                        " ..." if len(skipped) > 10 else "")
    if blank:
        logging.info("%s: skipped %d blank lines", path, blank)
    if not texts_a:
        raise ValueError(f"{path}: no examples (the {task.name} split is empty)")
    if cols["label"] is None:
        label_array = None
    else:
        label_array = np.asarray(labels, dtype=np.float32 if regression else np.int64)
    return Examples(texts_a=texts_a, texts_b=texts_b if cols["text_b"] is not None else None,
                    labels=label_array, indices=indices, source=path,
                    label_names=task.label_names)


def _numbered_rows(reader, path):
    """Yields `(line_number, row)`; csv errors are reported with file and line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ValueError(f"{path}:{reader.line_num}: {e}") from e
        yield reader.line_num, row


def _parse_label(value, label_ids, path, line):
    value = value.strip()
    if label_ids is None:  # Regression: a float.
        try:
            score = float(value)
        except ValueError:
            score = float("nan")
        if not np.isfinite(score):
            raise ValueError(f"{path}:{line}: score {value!r} is not a finite number")
        return score
    if value not in label_ids:
        raise ValueError(f"{path}:{line}: label {value!r} is not one of {list(label_ids)}")
    return label_ids[value]
