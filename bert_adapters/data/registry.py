"""The task registry: every GLUE task as data, so callers never branch on a name.

A `Task` says where a task's data is (GLUE TSV layout per split, TFDS name),
what its labels are called (the GLUE TSV strings; `None` for STS-B's
regression), which metrics are reported and which one selects the model, and
which submission file each test split goes to. The trainer reads these fields;
it never asks "is this MNLI?".

Labels are always handled by NAME. A label index is a position in
`Task.label_names`; every source (GLUE TSV strings, TFDS ClassLabel names) is
mapped by name onto that tuple. This matters for MNLI: TFDS orders its classes
[entailment, neutral, contradiction], BERT's `MnliProcessor`
[contradiction, entailment, neutral]. We keep BERT's order, so a classifier
head trained by BERT's `run_classifier.py` means the same thing here.

Example:
    task = get_task("sts-b")
    task.name, task.is_regression, task.submission_file("test")
    # ("STS-B", True, "STS-B.tsv")
"""

import dataclasses
import types
from typing import Mapping

# Metric names `bert_adapters.tasks.metrics.compute_metrics` knows.
METRIC_NAMES = ("accuracy", "f1", "macro_f1", "matthews_corrcoef", "pearson", "spearman")

# TFDS-style split names accepted as aliases of ours.
_SPLIT_ALIASES = {
    "validation": "dev",
    "validation_matched": "dev_matched",
    "validation_mismatched": "dev_mismatched",
}


@dataclasses.dataclass(frozen=True)
class TsvLayout:
    """Where the fields of one GLUE TSV split are.

    Columns are given by header name (str) where the file has a header, so a
    file with extra or re-ordered columns still reads, and a wrong file fails
    with "header lacks column ..."; by 0-based position (int) otherwise.

    Args:
        file_names: the split's file name; further names are alternatives
            tried in order (AX: `diagnostic.tsv`, as GLUE's download script
            names it, or `AX.tsv`, as the GLUE site does).
        has_header: whether the first line is a header.
        num_columns: columns per row for a file without a header; `None`
            means "as many as the header".
        text_a, text_b, label, index: the column of each field; `None` where
            the split has no such field. Without an `index` column the
            indices are the data-row numbers 0..n-1.
        skip_malformed_rows: skip (and count in a warning) rows with the wrong
            number of columns instead of failing. Only QQP's train and dev
            files, whose public release has a few broken rows, as BERT-era
            readers did; a test row can never be skipped, since the
            submission must hold every test index.
    """

    file_names: tuple[str, ...]
    has_header: bool
    text_a: int | str
    text_b: int | str | None = None
    label: int | str | None = None
    index: int | str | None = None
    num_columns: int | None = None
    skip_malformed_rows: bool = False

    def __post_init__(self):
        columns = (self.text_a, self.text_b, self.label, self.index)
        if not self.has_header and (self.num_columns is None or any(
                isinstance(c, str) for c in columns)):
            raise ValueError(f"{self.file_names}: a file without a header needs num_columns "
                             f"and columns given by position")


@dataclasses.dataclass(frozen=True)
class CustomFormat:
    """Which columns of a custom CSV / TSV / JSON-lines file hold what.

    Args:
        text_fields: one or two column names (text_a, then text_b).
        label_field: the label column.
        index_field: the column whose values become the indices of
            `test_predictions.tsv`; `None` uses the data-row numbers.
    """

    text_fields: tuple[str, ...]
    label_field: str = "label"
    index_field: str | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """One classification or regression task: a registry entry.

    Args:
        name: canonical name, as GLUE spells it (`"SST-2"`).
        label_names: the label strings of the data files, in the order of the
            classifier's outputs; `None` for a regression task.
        submission_labels: the string written to the submission file for each
            label index (GLUE server: `0`/`1`, or the NLI label names).
        metrics: metric names reported on the eval splits (`METRIC_NAMES`).
        primary_metric: the metric that selects the best run; it is read on
            `eval_splits[0]` (MNLI: matched).
        train_split: the split trained on; `None` for AX (test only).
        eval_splits: the labelled splits evaluated, primary first.
        test_files: test split -> submission file name (`"MNLI-m.tsv"`).
        folder: the task's folder in the GLUE layout (`$GLUE_DIR/<folder>`).
        layouts: split -> `TsvLayout` of the GLUE TSV files.
        tfds_name: the TFDS dataset (`"glue/mrpc"`).
        tfds_splits: our split -> TFDS split (`"dev"` -> `"validation"`).
        tfds_text_features: the TFDS features holding text_a (and text_b).
        tfds_labels: TFDS ClassLabel name -> our label name.
        positive_label: the class whose F1 the `f1` metric reports.
        predicted_by: the task whose model predicts this one (AX: MNLI).
        custom_format: the columns of a custom task's files; `None` for GLUE.
    """

    name: str
    label_names: tuple[str, ...] | None
    submission_labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    primary_metric: str
    train_split: str | None
    eval_splits: tuple[str, ...]
    test_files: Mapping[str, str]
    folder: str | None = None
    layouts: Mapping[str, TsvLayout] = dataclasses.field(default_factory=dict)
    tfds_name: str | None = None
    tfds_splits: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tfds_text_features: tuple[str, ...] = ()
    tfds_labels: Mapping[str, str] | None = None
    positive_label: str | None = None
    predicted_by: str | None = None
    custom_format: CustomFormat | None = None

    def __post_init__(self):
        # Read-only views: a registry entry must not change under its users.
        for field in ("test_files", "layouts", "tfds_splits", "tfds_labels"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, types.MappingProxyType(dict(value)))
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"task {self.name}: unknown metrics {unknown}; known: {METRIC_NAMES}")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"task {self.name}: primary_metric {self.primary_metric!r} "
                             f"is not among its metrics {self.metrics}")
        if (self.label_names is None) != (self.submission_labels is None) or (
                self.label_names is not None
                and len(self.label_names) != len(self.submission_labels)):
            raise ValueError(f"task {self.name}: submission_labels {self.submission_labels} "
                             f"do not match label_names {self.label_names}")
        if self.positive_label is not None and self.positive_label not in self.label_names:
            raise ValueError(f"task {self.name}: positive_label {self.positive_label!r} "
                             f"is not in {self.label_names}")

    def __hash__(self):
        return hash((self.name, self.label_names))

    @property
    def is_regression(self):
        return self.label_names is None

    @property
    def num_outputs(self):
        """Width of the task head: the number of labels, 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def splits(self):
        """Every split of the task: train, eval splits, test splits."""
        head = (self.train_split,) if self.train_split else ()
        return head + tuple(self.eval_splits) + tuple(self.test_files)

    def resolve_split(self, split):
        """Returns the canonical split name; TFDS names (`validation`) are accepted."""
        key = str(split).strip().lower().replace("-", "_")
        key = _SPLIT_ALIASES.get(key, key)
        if key not in self.splits:
            raise ValueError(f"task {self.name} has no split {split!r}; "
                             f"its splits are {list(self.splits)}")
        return key

    def is_test_split(self, split):
        return self.resolve_split(split) in self.test_files

    def layout(self, split):
        """The `TsvLayout` of a split in the GLUE TSV layout."""
        split = self.resolve_split(split)
        if split not in self.layouts:
            raise ValueError(f"task {self.name} has no GLUE TSV layout for split {split!r}")
        return self.layouts[split]

    def submission_file(self, split):
        """The file name the predictions of a test split are written to."""
        split = self.resolve_split(split)
        if split not in self.test_files:
            raise ValueError(f"task {self.name}: {split!r} is not a test split; "
                             f"test splits: {list(self.test_files)}")
        return self.test_files[split]

    def label_index(self, label):
        """The index of a label name (exact match)."""
        if self.is_regression:
            raise ValueError(f"task {self.name} is a regression task: it has no label names")
        try:
            return self.label_names.index(label)
        except ValueError:
            raise ValueError(f"task {self.name}: label {label!r} is not one of "
                             f"{list(self.label_names)}") from None


# ---------------------------------------------------------------------------
# GLUE layouts. Header names are those of the GLUE TSVs written by
# `download_glue_data.py`; shared/data/MANIFEST.md lists the quirks.
# ---------------------------------------------------------------------------

_GLUE_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
_BINARY = ("0", "1")
_NLI3 = ("contradiction", "entailment", "neutral")  # BERT's MnliProcessor order.
_NLI2 = ("entailment", "not_entailment")


def _pair_layouts(text_a, text_b, label, index, train_index=None, **kwargs):
    """train/dev/test layouts of a headed pair task (test: no label column)."""
    labelled = TsvLayout(("train.tsv",), True, text_a, text_b, label, train_index, **kwargs)
    return {
        "train": labelled,
        "dev": dataclasses.replace(labelled, file_names=("dev.tsv",)),
        "test": TsvLayout(("test.tsv",), True, text_a, text_b, None, index),
    }


_NAME_INDEX_PAIR = dict(text_a="sentence1", text_b="sentence2", label="label",
                        index="index", train_index="index")

COLA = Task(
    name="CoLA", label_names=_BINARY, submission_labels=_BINARY,
    metrics=("matthews_corrcoef", "accuracy"), primary_metric="matthews_corrcoef",
    train_split="train", eval_splits=("dev",), test_files={"test": "CoLA.tsv"},
    folder="CoLA",
    layouts={
        # train/dev: no header; source, label, original mark, sentence.
        "train": TsvLayout(("train.tsv",), False, text_a=3, label=1, num_columns=4),
        "dev": TsvLayout(("dev.tsv",), False, text_a=3, label=1, num_columns=4),
        "test": TsvLayout(("test.tsv",), True, text_a="sentence", index="index"),
    },
    tfds_name="glue/cola", tfds_splits=_GLUE_SPLITS, tfds_text_features=("sentence",),
    tfds_labels={"unacceptable": "0", "acceptable": "1"},
)

SST2 = Task(
    name="SST-2", label_names=_BINARY, submission_labels=_BINARY,
    metrics=("accuracy",), primary_metric="accuracy",
    train_split="train", eval_splits=("dev",), test_files={"test": "SST-2.tsv"},
    folder="SST-2",
    layouts={
        "train": TsvLayout(("train.tsv",), True, text_a="sentence", label="label"),
        "dev": TsvLayout(("dev.tsv",), True, text_a="sentence", label="label"),
        "test": TsvLayout(("test.tsv",), True, text_a="sentence", index="index"),
    },
    tfds_name="glue/sst2", tfds_splits=_GLUE_SPLITS, tfds_text_features=("sentence",),
    tfds_labels={"negative": "0", "positive": "1"},
)

MRPC = Task(
    name="MRPC", label_names=_BINARY, submission_labels=_BINARY,
    metrics=("f1", "accuracy"), primary_metric="f1", positive_label="1",
    train_split="train", eval_splits=("dev",), test_files={"test": "MRPC.tsv"},
    folder="MRPC",
    # Label first (`Quality`); train/dev start with a UTF-8 BOM.
    layouts=_pair_layouts("#1 String", "#2 String", "Quality", "index"),
    tfds_name="glue/mrpc", tfds_splits=_GLUE_SPLITS,
    tfds_text_features=("sentence1", "sentence2"),
    tfds_labels={"not_equivalent": "0", "equivalent": "1"},
)

STSB = Task(
    name="STS-B", label_names=None, submission_labels=None,
    metrics=("pearson", "spearman"), primary_metric="pearson",
    train_split="train", eval_splits=("dev",), test_files={"test": "STS-B.tsv"},
    folder="STS-B",
    # 10 columns (9 in test); the score, a float in [0, 5], is the last.
    layouts=_pair_layouts("sentence1", "sentence2", "score", "index", train_index="index"),
    tfds_name="glue/stsb", tfds_splits=_GLUE_SPLITS,
    tfds_text_features=("sentence1", "sentence2"),
)

QQP = Task(
    name="QQP", label_names=_BINARY, submission_labels=_BINARY,
    metrics=("f1", "accuracy"), primary_metric="f1", positive_label="1",
    train_split="train", eval_splits=("dev",), test_files={"test": "QQP.tsv"},
    folder="QQP",
    # train/dev: id qid1 qid2 question1 question2 is_duplicate; test: id question1 question2.
    layouts=_pair_layouts("question1", "question2", "is_duplicate", "id", train_index="id",
                          skip_malformed_rows=True),
    tfds_name="glue/qqp", tfds_splits=_GLUE_SPLITS,
    tfds_text_features=("question1", "question2"),
    tfds_labels={"not_duplicate": "0", "duplicate": "1"},
)


def _mnli_layout(file_name, labelled):
    # train 12 columns, dev 16 (label1..label5, gold_label), test 10: read by name.
    return TsvLayout((file_name,), True, text_a="sentence1", text_b="sentence2",
                     label="gold_label" if labelled else None, index="index")


MNLI = Task(
    name="MNLI", label_names=_NLI3, submission_labels=_NLI3,
    metrics=("accuracy",), primary_metric="accuracy",
    train_split="train", eval_splits=("dev_matched", "dev_mismatched"),
    test_files={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
    folder="MNLI",
    layouts={
        "train": _mnli_layout("train.tsv", True),
        "dev_matched": _mnli_layout("dev_matched.tsv", True),
        "dev_mismatched": _mnli_layout("dev_mismatched.tsv", True),
        "test_matched": _mnli_layout("test_matched.tsv", False),
        "test_mismatched": _mnli_layout("test_mismatched.tsv", False),
    },
    tfds_name="glue/mnli",
    tfds_splits={"train": "train", "dev_matched": "validation_matched",
                 "dev_mismatched": "validation_mismatched",
                 "test_matched": "test_matched", "test_mismatched": "test_mismatched"},
    tfds_text_features=("premise", "hypothesis"),
    tfds_labels={name: name for name in _NLI3},
)

QNLI = Task(
    name="QNLI", label_names=_NLI2, submission_labels=_NLI2,
    metrics=("accuracy",), primary_metric="accuracy",
    train_split="train", eval_splits=("dev",), test_files={"test": "QNLI.tsv"},
    folder="QNLI",
    layouts=_pair_layouts("question", "sentence", "label", "index", train_index="index"),
    tfds_name="glue/qnli", tfds_splits=_GLUE_SPLITS,
    tfds_text_features=("question", "sentence"),
    tfds_labels={name: name for name in _NLI2},
)

RTE = Task(
    name="RTE", label_names=_NLI2, submission_labels=_NLI2,
    metrics=("accuracy",), primary_metric="accuracy",
    train_split="train", eval_splits=("dev",), test_files={"test": "RTE.tsv"},
    folder="RTE",
    layouts=_pair_layouts(**_NAME_INDEX_PAIR),
    tfds_name="glue/rte", tfds_splits=_GLUE_SPLITS,
    tfds_text_features=("sentence1", "sentence2"),
    tfds_labels={name: name for name in _NLI2},
)

WNLI = Task(
    name="WNLI", label_names=_BINARY, submission_labels=_BINARY,
    metrics=("accuracy",), primary_metric="accuracy",
    train_split="train", eval_splits=("dev",), test_files={"test": "WNLI.tsv"},
    folder="WNLI",
    layouts=_pair_layouts(**_NAME_INDEX_PAIR),
    tfds_name="glue/wnli", tfds_splits=_GLUE_SPLITS,
    tfds_text_features=("sentence1", "sentence2"),
    tfds_labels={"not_entailment": "0", "entailment": "1"},
)

# The diagnostic set: test only, predicted by the MNLI model, so it shares
# MNLI's label names (and order). GLUE scores it with R3, the multi-class
# Matthews correlation.
AX = Task(
    name="AX", label_names=_NLI3, submission_labels=_NLI3,
    metrics=("matthews_corrcoef",), primary_metric="matthews_corrcoef",
    train_split=None, eval_splits=(), test_files={"test": "AX.tsv"},
    folder="diagnostic",
    layouts={"test": TsvLayout(("diagnostic.tsv", "AX.tsv"), True, text_a="sentence1",
                               text_b="sentence2", index="index")},
    tfds_name="glue/ax", tfds_splits={"test": "test"},
    tfds_text_features=("premise", "hypothesis"),
    tfds_labels={name: name for name in _NLI3},
    predicted_by="MNLI",
)

GLUE_TASKS = (COLA, SST2, MRPC, STSB, QQP, MNLI, QNLI, RTE, WNLI, AX)


def _key(name):
    return "".join(c for c in str(name).lower() if c.isalnum())


_REGISTRY = {_key(task.name): task for task in GLUE_TASKS}
_REGISTRY["diagnostic"] = AX


def get_task(name):
    """Returns the registered `Task` called `name` (a `Task` is returned as is).

    Case, dashes and underscores are ignored: `rte` = `RTE`, `sst2` = `SST-2`,
    `sts-b` = `STS-B`; `diagnostic` = `AX`.
    """
    if isinstance(name, Task):
        return name
    task = _REGISTRY.get(_key(name))
    if task is None:
        raise ValueError(f"unknown task {name!r}; known tasks: "
                         f"{', '.join(t.name for t in GLUE_TASKS)} (and 'diagnostic' = AX)")
    return task


def tasks_predicted_by(task):
    """The registered tasks predicted by `task`'s model (MNLI -> (AX,))."""
    name = get_task(task).name
    return tuple(t for t in GLUE_TASKS if t.predicted_by == name)
