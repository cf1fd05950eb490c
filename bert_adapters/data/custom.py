"""Custom classification tasks: the paper's "additional tasks" (section 3.3).

Files are CSV (`.csv`), TSV (`.tsv`) or JSON lines (`.jsonl`, `.json`,
`.ndjson`), one example per record, with column names: a header line for CSV
and TSV, the object keys for JSON lines. CSV and TSV follow Excel/pandas
quoting: a field may hold commas, tabs, newlines and doubled quotes `""`
inside double quotes, so texts of thousands of characters over several lines
read as one field. (GLUE's own unquoted TSVs are read by `glue_tsv`.) A UTF-8
BOM is stripped; extra columns are ignored; blank lines are skipped.

Labels are strings. They are normalised by stripping surrounding whitespace
only, then matched exactly: `" positive "` is `positive`, but `Positive` and
`positive` are different strings. Two spellings that differ only in case are
almost always one class typed two ways, and silently merging or splitting
them would both be wrong, so inferring the label set from a file that holds
both is an error listing the variants and where each first appears; fix the
file, or pass the intended label set. With a given label set, a label outside
it is an error at its line (suggesting the set's spelling where only case
differs). JSON numbers are labels too (`1` is `"1"`).

The label set taken from a training file is sorted, numerically if every
label is an integer (`2 < 10`), otherwise as strings.

Example:
    labels = read_custom_labels("train.csv", "label")
    task = make_custom_task(labels, text_fields="title,body")
    train = load_split(task, "train", data_dir)  # finds train.csv there
"""

import csv
import json

import numpy as np
import tensorflow as tf

from bert_adapters import io_utils
from bert_adapters.data.examples import Examples
from bert_adapters.data.registry import CustomFormat, Task

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
              ".ndjson": "jsonl"}
_FIELD_SIZE_LIMIT = 1 << 24  # csv's default (128 KiB) is too small for long documents.


def parse_text_fields(text_fields):
    """`"a,b"` or `["a", "b"]` -> `("a", "b")`; one or two names."""
    if isinstance(text_fields, str):
        text_fields = text_fields.split(",")
    fields = tuple(str(f).strip() for f in text_fields)
    if not 1 <= len(fields) <= 2 or not all(fields):
        raise ValueError(f"text_fields must be one or two column names, got {text_fields!r}")
    return fields


def make_custom_task(labels, text_fields, label_field="label", *, name="custom",
                     index_field=None):
    """A `Task` for a custom classification data set.

    It behaves like a GLUE task to the trainer: splits `train`, `dev`, `test`;
    predictions of `test` go to `test_predictions.tsv` with the label names as
    label strings; metrics accuracy (primary) and macro-F1.

    Args:
        labels: the label names, in output order (at least 2).
        text_fields: one or two column names, or `"a,b"`.
        label_field: the label column.
        name: the task's name.
        index_field: a column identifying each example in the predictions
            file; `None` uses row numbers.
    """
    names = _normalise_label_set(labels)
    if len(names) < 2:
        raise ValueError(f"a classification task needs at least 2 labels, got {list(names)}")
    return Task(
        name=name, label_names=names, submission_labels=names,
        metrics=("accuracy", "macro_f1"), primary_metric="accuracy",
        train_split="train", eval_splits=("dev",), test_files={"test": "test_predictions.tsv"},
        custom_format=CustomFormat(text_fields=parse_text_fields(text_fields),
                                   label_field=label_field, index_field=index_field))


def find_custom_file(data_dir, split):
    """The one file `<data_dir>/<split>.{csv,tsv,jsonl,json,ndjson}`."""
    found = [io_utils.join(data_dir, split + ext) for ext in EXTENSIONS
             if tf.io.gfile.exists(io_utils.join(data_dir, split + ext))]
    if not found:
        raise FileNotFoundError(f"no {split} file in {data_dir!r}: expected one of "
                                f"{[split + ext for ext in EXTENSIONS]}")
    if len(found) > 1:
        raise ValueError(f"several {split} files in {data_dir!r}: {found}; keep one")
    return found[0]


def load_custom_task_split(task, split, data_dir):
    """Reads `split` of a custom `task` from `data_dir` (labels required but in test)."""
    split = task.resolve_split(split)
    fmt = task.custom_format
    return load_custom_split(find_custom_file(data_dir, split), fmt.text_fields,
                             label_field=fmt.label_field, labels=task.label_names,
                             index_field=fmt.index_field,
                             labels_required=not task.is_test_split(split))


def read_custom_labels(path, label_field):
    """The sorted label set of a (training) file; see the module docstring."""
    raw = [(line, _label(record.get(label_field), path, line, label_field))
           for line, record in _records(path, [label_field])]
    if not raw:
        raise ValueError(f"{path}: no examples (only a header, or nothing)")
    return _infer_label_set(raw, path)


def load_custom_split(path, text_fields, label_field=None, labels=None, *,
                      index_field=None, labels_required=True):
    """Reads a custom CSV / TSV / JSON-lines file into `Examples`.

    Args:
        path: the file (local or `gs://`); its extension picks the format.
        text_fields: one or two column names, or `"a,b"`.
        label_field: the label column; `None` reads no labels (a test file).
        labels: the label names; `None` takes them from this file (sorted).
        index_field: the column used as `indices`; `None` uses row numbers.
        labels_required: every row must have a label. With `False` (test
            files) a missing label column, or one that is empty on every row,
            gives `labels=None`; a column filled on some rows only is an error.

    Raises:
        ValueError: a missing column (named, with the header), an empty file,
            a malformed row or JSON line, a missing or unknown label (file:line),
            or case-variants of one label when the set is inferred.
    """
    text_fields = parse_text_fields(text_fields)
    required = list(text_fields) + ([index_field] if index_field else [])
    if label_field and labels_required:
        required.append(label_field)
    texts = [[] for _ in text_fields]
    indices, raw_labels = [], []
    for line, record in _records(path, required):
        for column, field in zip(texts, text_fields):
            column.append(_text(record[field], path, line, field))
        indices.append(_text(record[index_field], path, line, index_field).strip()
                       if index_field else str(len(indices)))
        if label_field:
            raw_labels.append((line, _label(record.get(label_field), path, line, label_field)))
    if not indices:
        raise ValueError(f"{path}: no examples (only a header, or nothing)")

    label_array, names = None, (_normalise_label_set(labels) if labels is not None else None)
    missing = [line for line, value in raw_labels if value is None]
    if label_field and (labels_required or len(missing) < len(raw_labels)):
        if missing:
            raise ValueError(f"{path}:{missing[0]}: missing label in column {label_field!r} "
                             f"({len(missing)} rows without a label)")
        if names is None:
            names = _infer_label_set(raw_labels, path)
        label_array = np.asarray([_label_id(value, names, path, line)
                                  for line, value in raw_labels], dtype=np.int64)
    return Examples(texts_a=texts[0], texts_b=texts[1] if len(texts) > 1 else None,
                    labels=label_array, indices=indices, source=str(path), label_names=names)


# ---------------------------------------------------------------------------
# Records: (line number, {column: value}) from CSV / TSV / JSON lines.
# ---------------------------------------------------------------------------

def _format(path):
    lowered = str(path).lower()
    for ext, fmt in EXTENSIONS.items():
        if lowered.endswith(ext):
            return fmt
    raise ValueError(f"{path}: unknown file type; expected one of {sorted(EXTENSIONS)}")


def _records(path, required):
    """Yields `(line, record)`; checks that `required` columns exist."""
    fmt = _format(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = _strip_bom(io_utils.decoded_lines(f, path))
        if fmt == "jsonl":
            yield from _json_records(lines, path, required)
        else:
            yield from _csv_records(lines, path, required, fmt)


def _strip_bom(f):
    first = True
    for line in f:
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        yield line


def _csv_records(lines, path, required, fmt):
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_SIZE_LIMIT))
    reader = csv.reader(lines, dialect="excel-tab" if fmt == "tsv" else "excel")
    header, start = None, 1
    while True:
        start = reader.line_num + 1  # A quoted record may span lines: report its first.
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise ValueError(f"{path}:{start}: malformed {fmt.upper()} ({e})") from e
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            header = [name.strip() for name in row]
            missing = [c for c in required if c not in header]
            if missing:
                raise ValueError(f"{path}: no column {missing[0]!r}; the header is {header}")
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{start}: malformed row: expected {len(header)} "
                             f"columns (as the header), found {len(row)}")
        yield start, dict(zip(header, row))
    if header is None:
        raise ValueError(f"{path}: empty file (expected a header line)")


def _json_records(lines, path, required):
    seen_any = False
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        seen_any = True
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            hint = " (a JSON array? write one object per line)" if line.lstrip()[:1] == "[" else ""
            raise ValueError(f"{path}:{line_number}: malformed JSON line: {e.msg}{hint}") from e
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{line_number}: expected a JSON object, "
                             f"got {type(record).__name__}")
        missing = [c for c in required if c not in record]
        if missing:
            raise ValueError(f"{path}:{line_number}: no field {missing[0]!r}; "
                             f"the record has {sorted(record)}")
        yield line_number, record
    if not seen_any:
        raise ValueError(f"{path}: empty file")


def _text(value, path, line, field):
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{path}:{line}: field {field!r} is {value!r}, expected a string")


def _label(value, path, line, field):
    """A label value -> its stripped string, or None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{path}:{line}: label {value!r} in {field!r} is not a string or number")
    value = str(value).strip()
    return value or None


# ---------------------------------------------------------------------------
# Label sets.
# ---------------------------------------------------------------------------

def _normalise_label_set(labels):
    names = tuple(str(label).strip() for label in labels)
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"labels must be distinct and non-empty, got {list(labels)}")
    bad = [n for n in names if any(c in n for c in "\t\r\n")]
    if bad:
        raise ValueError(f"labels must not hold tabs or newlines (they are written to "
                         f"TSV files): {bad}")
    return names


def _sort_key_fn(names):
    try:
        ints = {n: int(n) for n in names}
    except ValueError:
        return lambda n: n
    return lambda n: (ints[n], n)


def _infer_label_set(raw_labels, path):
    """Sorted distinct labels of `[(line, label)]`; case-variants are an error."""
    first_line = {}
    for line, value in raw_labels:
        if value is None:
            raise ValueError(f"{path}:{line}: missing label")
        first_line.setdefault(value, line)
    by_fold = {}
    for value in first_line:
        by_fold.setdefault(value.casefold(), []).append(value)
    clashes = [v for v in by_fold.values() if len(v) > 1]
    if clashes:
        detail = "; ".join(", ".join(f"{v!r} (first at line {first_line[v]})" for v in group)
                           for group in clashes)
        raise ValueError(f"{path}: labels that differ only in case: {detail}. Spell each "
                         f"label one way in the file, or pass the label set explicitly")
    return tuple(sorted(first_line, key=_sort_key_fn(first_line)))


def _label_id(value, names, path, line):
    try:
        return names.index(value)
    except ValueError:
        close = [n for n in names if n.casefold() == value.casefold()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{path}:{line}: label {value!r} is not one of "
                         f"{list(names)}{hint}") from None

